/* SPDX-License-Identifier: MIT */
/*
 * NAME
 *	shadowd - run milters in shadow mode in front of an MTA
 * SYNOPSIS
 *	shadowd [-c FILE] [-f] [-v]
 *	shadowd [-c FILE] --check
 *	shadowd [-c FILE] --probe
 * DESCRIPTION
 *	To the MTA shadowd is one milter; to each configured child milter it
 *	is an MTA. It forwards every event to the children, never lets their
 *	verdicts or edits reach the MTA, and writes what each would have done,
 *	and what the whole chain would have done, to the event log.
 *
 *	-c FILE   configuration (default SYSCONFDIR/shadowd/shadowd.conf,
 *	          /etc/shadowd in the Debian package; without it, built-in
 *	          defaults and no children)
 *	-f        stay in the foreground and also log to stderr
 *	--check   validate the configuration and exit
 *	--probe   connect to each child, negotiate, print what it asks for
 * SECURITY
 *	shadowd talks to the MTA and to the children over sockets and parses
 *	what both send (lib/milter_decode.c). It needs no privilege: run it as
 *	its own user with the socket in a directory that user owns.
 *
 *	Started as root, it binds its socket, opens the event log and writes
 *	the pid file, then drops to [shadowd] user and group for good in
 *	Postfix's order: look the user up, setgid, initgroups, setuid; then it
 *	checks that the real and effective ids are the user's and that
 *	setuid(0) fails. Before dropping, the event log (when root owns it)
 *	and a unix socket without socket_owner are given to the user, so that
 *	a reopen after rotation and the cleanup at stop work. Started as root
 *	without user it stops, unless allow_root = true.
 * DIAGNOSTICS
 *	Exit 0 on a clean stop, 78 (EX_CONFIG) for a bad configuration (an
 *	unknown user or group, root without user), 71 (EX_OSERR) when the
 *	socket, log or pid file cannot be opened or the ids cannot be changed,
 *	64 (EX_USAGE).
 */

/* Build configuration. */
#include "config.h"

/* System library. */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sysexits.h>
#include <unistd.h>

/* GLib. */
#include <glib-unix.h>

/* Application-specific. */
#include "log.h"
#include "probe.h"
#include "shadowd.h"

/* The file read without -c: $(sysconfdir)/shadowd/shadowd.conf, from shadowd/Makefile.am. */
#ifndef SHADOWD_CONFIG
#define SHADOWD_CONFIG "/etc/shadowd/shadowd.conf"
#endif
#define DEFAULT_CONFIG SHADOWD_CONFIG

/* Seconds a stopping shadowd lets sessions finish before it exits anyway. */
#define STOP_GRACE_SECONDS 10

/* The user id of root, which shadowd gives up when it has a user to become. */
#define ROOT_UID ((uid_t)0)

/* ShadowIdentity - whom shadowd becomes once its files are open */
typedef struct {
    gboolean drop; /* started as root with a user: change ids */
    char *user;    /* for initgroups and messages */
    char *group;   /* for messages */
    uid_t uid;
    gid_t gid;
} ShadowIdentity;

static gboolean opt_foreground, opt_check, opt_probe, opt_verbose, opt_version;
static char *opt_config;

static const GOptionEntry options[] = {
    { "config", 'c', 0, G_OPTION_ARG_FILENAME, &opt_config,
      "Configuration file (default " DEFAULT_CONFIG ")", "FILE" },
    { "foreground", 'f', 0, G_OPTION_ARG_NONE, &opt_foreground,
      "Stay in the foreground and log to stderr too", NULL },
    { "check", 0, 0, G_OPTION_ARG_NONE, &opt_check, "Validate the configuration and exit", NULL },
    { "probe", 0, 0, G_OPTION_ARG_NONE, &opt_probe,
      "Negotiate with each child milter and print what it asks for", NULL },
    { "verbose", 'v', 0, G_OPTION_ARG_NONE, &opt_verbose, "Log debug detail", NULL },
    { "version", 0, 0, G_OPTION_ARG_NONE, &opt_version, "Print the version and exit", NULL },
    { NULL },
};

/* load_config - the file given, the default file if present, or built-in defaults */
static ShadowConfig *
load_config(GError **error)
{
    if (opt_config == NULL && !g_file_test(DEFAULT_CONFIG, G_FILE_TEST_EXISTS))
        return shadow_config_new_default();
    return shadow_config_load(opt_config ? opt_config : DEFAULT_CONFIG, error);
}

/* stop_now - the grace period for running sessions is over */
static gboolean
stop_now(gpointer data)
{
    ShadowServer *server = data;

    if (g_hash_table_size(server->sessions) > 0)
        shadow_log_warning("stopping with %u sessions unfinished",
                           g_hash_table_size(server->sessions));
    g_main_loop_quit(server->loop);
    return G_SOURCE_REMOVE;
}

/* on_stop - SIGTERM/SIGINT: stop accepting, let sessions finish */
static gboolean
on_stop(gpointer data)
{
    ShadowServer *server = data;

    shadow_log_info("stopping: no new connections; %u sessions finishing",
                    g_hash_table_size(server->sessions));
    shadow_server_stop(server);
    if (!server->stopping_timer) {
        server->stopping_timer = TRUE;
        g_timeout_add_seconds(STOP_GRACE_SECONDS, stop_now, server);
    }
    return G_SOURCE_CONTINUE;
}

/* on_hup - SIGHUP: reload the configuration for new connections, reopen the log */
static gboolean
on_hup(gpointer data)
{
    ShadowServer *server = data;
    g_autoptr(GError) error = NULL;
    ShadowConfig *config = load_config(&error);

    if (config == NULL) {
        shadow_log_error("reload: %s; keeping the running configuration", error->message);
    } else {
        shadow_server_reload(server, config);
        shadow_log_info("reloaded %s: %u milters", config->path ? config->path : "defaults",
                        config->milters->len);
    }
    g_clear_error(&error);
    if (!shadow_event_log_reopen(server->log, &error))
        shadow_log_error("reload: %s", error->message);
    return G_SOURCE_CONTINUE;
}

/* write_pid_file - the pid file of a daemon */
static gboolean
write_pid_file(const char *path, pid_t pid)
{
    g_autoptr(GError) error = NULL;
    g_autofree char *text = g_strdup_printf("%ld\n", (long)pid);

    if (path && *path && !g_file_set_contents(path, text, -1, &error)) {
        shadow_log_error("pid file: %s", error->message);
        return FALSE;
    }
    return TRUE;
}

/*
 * daemonize - fork; the parent waits for the child to be ready, writes its pid file, exits
 *
 * Returns in the child only, with the write end of a pipe: the child calls
 * daemon_ready() on it once it has changed user. The parent exits 0 only
 * then, with the pid file holding the child's pid, so that a service
 * manager (systemd's Type=forking, PIDFile=) finds a running, listening,
 * unprivileged shadowd. If the child fails first, or the pid file cannot
 * be written, the parent exits with EX_OSERR (and stops the child).
 */
static int
daemonize(const char *pid_file)
{
    int ready[2];
    pid_t pid;
    ssize_t n;
    char byte;

    if (pipe2(ready, O_CLOEXEC) < 0 || (pid = fork()) < 0) {
        shadow_log_error("fork: %s", g_strerror(errno));
        exit(EX_OSERR);
    }
    if (pid > 0) {
        close(ready[1]);
        do
            n = read(ready[0], &byte, 1);
        while (n < 0 && errno == EINTR);
        if (n != 1)
            _exit(EX_OSERR);
        if (!write_pid_file(pid_file, pid)) {
            (void)kill(pid, SIGKILL);
            _exit(EX_OSERR);
        }
        _exit(0);
    }
    close(ready[0]);
    if (setsid() < 0 || chdir("/") < 0) {
        shadow_log_error("detach: %s", g_strerror(errno));
        exit(EX_OSERR);
    }
    return ready[1];
}

/* daemon_ready - tell the waiting parent, and leave the terminal's files */
static void
daemon_ready(int ready)
{
    const char byte = 1;
    int fd;

    if (write(ready, &byte, 1) != 1)
        shadow_log_warning("start-up: cannot tell the parent: %s", g_strerror(errno));
    close(ready);
    fd = open("/dev/null", O_RDWR);
    if (fd >= 0) {
        dup2(fd, STDIN_FILENO);
        dup2(fd, STDOUT_FILENO);
        dup2(fd, STDERR_FILENO);
        if (fd > STDERR_FILENO)
            close(fd);
    }
}

/* identity_clear - free an identity's strings */
static void
identity_clear(ShadowIdentity *id)
{
    g_clear_pointer(&id->user, g_free);
    g_clear_pointer(&id->group, g_free);
}

/* config_name - the configuration file for messages */
static const char *
config_name(const ShadowConfig *config)
{
    return config->path ? config->path : "the built-in defaults";
}

/*
 * find_identity - whom to become: nothing unless root; then [shadowd] user and group
 *
 * Started as root without user, this fails unless allow_root = true. The
 * messages name the file and the key, as the configuration's own do.
 */
static gboolean
find_identity(const ShadowConfig *config, ShadowIdentity *id, GError **error)
{
    struct passwd *pw;

    memset(id, 0, sizeof(*id));
    if (geteuid() != ROOT_UID)
        return TRUE;
    if (config->user == NULL && config->group != NULL) {
        g_set_error(error, SHADOW_CONFIG_ERROR, SHADOW_CONFIG_ERROR_VALUE,
                    "%s: [shadowd] group: \"%s\" needs user, which is not set", config_name(config),
                    config->group);
        return FALSE;
    }
    if (config->user == NULL) {
        if (config->allow_root)
            return TRUE;
        g_set_error(error, SHADOW_CONFIG_ERROR, SHADOW_CONFIG_ERROR_VALUE,
                    "%s: [shadowd] user: not set, and shadowd was started as root; set user to "
                    "the account shadowd should run as (e.g. user = shadowd), or allow_root = "
                    "true to run as root",
                    config_name(config));
        return FALSE;
    }
    errno = 0;
    pw = getpwnam(config->user);
    if (pw == NULL) {
        g_set_error(error, SHADOW_CONFIG_ERROR, SHADOW_CONFIG_ERROR_VALUE,
                    "%s: [shadowd] user: no user \"%s\" on this system%s%s", config_name(config),
                    config->user, errno ? ": " : "", errno ? g_strerror(errno) : "");
        return FALSE;
    }
    if (pw->pw_uid == ROOT_UID) {
        g_set_error(error, SHADOW_CONFIG_ERROR, SHADOW_CONFIG_ERROR_VALUE,
                    "%s: [shadowd] user: \"%s\" has uid 0, which is root; name an unprivileged "
                    "user (or leave user empty and set allow_root = true)",
                    config_name(config), config->user);
        return FALSE;
    }
    id->drop = TRUE;
    id->user = g_strdup(pw->pw_name);
    id->uid = pw->pw_uid;
    id->gid = pw->pw_gid;
    if (config->group != NULL) {
        struct group *gr;

        errno = 0;
        gr = getgrnam(config->group);
        if (gr == NULL) {
            g_set_error(error, SHADOW_CONFIG_ERROR, SHADOW_CONFIG_ERROR_VALUE,
                        "%s: [shadowd] group: no group \"%s\" on this system%s%s",
                        config_name(config), config->group, errno ? ": " : "",
                        errno ? g_strerror(errno) : "");
            identity_clear(id);
            return FALSE;
        }
        id->gid = gr->gr_gid;
    }
    if (config->group != NULL) {
        id->group = g_strdup(config->group);
    } else {
        struct group *own = getgrgid(id->gid);

        id->group = own ? g_strdup(own->gr_name) : g_strdup_printf("%ld", (long)id->gid);
    }
    return TRUE;
}

/* give_to_identity - chown path to the identity; only_from_root: only a file root owns */
static gboolean
give_to_identity(const ShadowIdentity *id, const char *path, gboolean only_from_root,
                 GError **error)
{
    struct stat st;
    int e;

    if (!id->drop || path == NULL || *path == '\0')
        return TRUE;
    if (lstat(path, &st) == 0) {
        if (only_from_root && st.st_uid != ROOT_UID)
            return TRUE;
        if (lchown(path, id->uid, id->gid) == 0)
            return TRUE;
    }
    e = errno;
    g_set_error(error, G_FILE_ERROR, g_file_error_from_errno(e), "chown %s to %s:%s: %s", path,
                id->user, id->group, g_strerror(e));
    return FALSE;
}

/* drop_privileges - setgid, initgroups, setuid; then prove root cannot come back */
static gboolean
drop_privileges(const ShadowIdentity *id, GError **error)
{
    int e;

    if (!id->drop)
        return TRUE;
    if (setgid(id->gid) < 0 || initgroups(id->user, id->gid) < 0 || setuid(id->uid) < 0) {
        e = errno;
        g_set_error(error, G_FILE_ERROR, g_file_error_from_errno(e),
                    "cannot become user %s, group %s: %s", id->user, id->group, g_strerror(e));
        return FALSE;
    }
    if (getuid() != id->uid || geteuid() != id->uid || getgid() != id->gid ||
        getegid() != id->gid) {
        g_set_error(error, G_FILE_ERROR, G_FILE_ERROR_PERM,
                    "became uid %ld/%ld gid %ld/%ld, want user %s (%ld) group %s (%ld)",
                    (long)getuid(), (long)geteuid(), (long)getgid(), (long)getegid(), id->user,
                    (long)id->uid, id->group, (long)id->gid);
        return FALSE;
    }
    if (setuid(ROOT_UID) == 0) {
        g_set_error(error, G_FILE_ERROR, G_FILE_ERROR_PERM,
                    "setuid(0) still works after becoming user %s", id->user);
        return FALSE;
    }
    return TRUE;
}

/*
 * start_server - the start-up of a daemon: log, socket, pid file, then the change of user
 *
 * Takes config. NULL, with the error logged, when any step fails (EX_OSERR).
 */
static ShadowServer *
start_server(ShadowConfig *config, const ShadowIdentity *id)
{
    g_autoptr(GError) error = NULL;
    ShadowEventLog *log;
    ShadowServer *server;
    int ready = -1;

    log = shadow_event_log_open(config->event_log, &error);
    if (log == NULL || !give_to_identity(id, config->event_log, TRUE, &error)) {
        shadow_log_error("%s", error->message);
        shadow_event_log_close(log);
        shadow_config_free(config);
        return NULL;
    }
    server = shadow_server_new(config, log, &error);
    if (server == NULL) {
        shadow_log_error("%s", error->message);
        shadow_event_log_close(log);
        shadow_config_free(config);
        return NULL;
    }
    if (config->listen.kind == SHADOW_ADDRESS_UNIX && config->socket_owner == NULL &&
        !give_to_identity(id, config->listen.path, FALSE, &error)) {
        shadow_log_error("%s", error->message);
        shadow_server_free(server);
        shadow_event_log_close(log);
        return NULL;
    }
    if (!opt_foreground)
        ready = daemonize(config->pid_file);
    if (!drop_privileges(id, &error)) {
        shadow_log_error("%s", error->message);
        shadow_server_free(server);
        shadow_event_log_close(log);
        return NULL;
    }
    if (ready >= 0)
        daemon_ready(ready);
    if (id->drop)
        shadow_log_info("running as user %s, group %s", id->user, id->group);
    else if (geteuid() == ROOT_UID)
        shadow_log_info("running as root (allow_root = true in %s)", config_name(config));
    return server;
}

int
main(int argc, char **argv)
{
    g_autoptr(GOptionContext) ctx = g_option_context_new("- run milters in shadow mode");
    g_autoptr(GError) error = NULL;
    g_autoptr(ShadowConfig) config = NULL;
    ShadowIdentity id;
    ShadowEventLog *log;
    ShadowServer *server;
    int status;

    g_option_context_add_main_entries(ctx, options, NULL);
    if (!g_option_context_parse(ctx, &argc, &argv, &error) || argc > 1) {
        fprintf(stderr, "shadowd: %s\n", error ? error->message : "unexpected argument");
        return EX_USAGE;
    }
    if (opt_version) {
        printf("shadowd %s\n", PACKAGE_VERSION);
        return 0;
    }
    config = load_config(&error);
    if (config == NULL) {
        fprintf(stderr, "shadowd: %s\n", error->message);
        return EX_CONFIG;
    }
    if (opt_check) {
        printf("%s: ok, %u milters\n", config->path ? config->path : "defaults",
               config->milters->len);
        return 0;
    }
    if (opt_probe)
        return shadow_probe(config) ? 0 : EX_UNAVAILABLE;

    if (!find_identity(config, &id, &error)) {
        fprintf(stderr, "shadowd: %s\n", error->message);
        return EX_CONFIG;
    }

    shadow_log_open(config->syslog_ident, config->syslog_facility, opt_foreground);
    shadow_log_set_debug(opt_verbose);
    server = start_server(g_steal_pointer(&config), &id);
    identity_clear(&id);
    if (server == NULL)
        return EX_OSERR;
    log = server->log;
    server->loop = g_main_loop_new(NULL, FALSE);
    g_unix_signal_add(SIGTERM, on_stop, server);
    g_unix_signal_add(SIGINT, on_stop, server);
    g_unix_signal_add(SIGHUP, on_hup, server);
    shadow_log_info("listening on %s with %u milters, reply=%s content=%s",
                    server->config->listen.spec, server->config->milters->len,
                    server->config->reply == SHADOW_REPLY_WAIT ? "wait" : "immediate",
                    server->config->content == SHADOW_CONTENT_CHAINED ? "chained" : "independent");
    g_main_loop_run(server->loop);
    status = 0;
    shadow_log_info("stopped");
    g_clear_pointer(&server->loop, g_main_loop_unref);
    shadow_server_free(server);
    shadow_event_log_close(log);
    g_free(opt_config);
    return status;
}
