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
 *	-c FILE   configuration (default /etc/shadowd/shadowd.conf; without
 *	          it, built-in defaults and no children)
 *	-f        stay in the foreground and also log to stderr
 *	--check   validate the configuration and exit
 *	--probe   connect to each child, negotiate, print what it asks for
 * SECURITY
 *	shadowd talks to the MTA and to the children over sockets and parses
 *	what both send (lib/milter_decode.c). It needs no privilege: run it as
 *	its own user with the socket in a directory that user owns.
 * DIAGNOSTICS
 *	Exit 0 on a clean stop, 78 (EX_CONFIG) for a bad configuration, 71
 *	(EX_OSERR) when the socket or log cannot be opened, 64 (EX_USAGE).
 */

/* Build configuration. */
#include "config.h"

/* System library. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sysexits.h>
#include <unistd.h>

/* GLib. */
#include <glib-unix.h>

/* Application-specific. */
#include "log.h"
#include "probe.h"
#include "shadowd.h"

#define DEFAULT_CONFIG "/etc/shadowd/shadowd.conf"

/* Seconds a stopping shadowd lets sessions finish before it exits anyway. */
#define STOP_GRACE_SECONDS 10

static gboolean opt_foreground, opt_check, opt_probe, opt_verbose, opt_version;
static char *opt_config;

static const GOptionEntry options[] = {
    { "config", 'c', 0, G_OPTION_ARG_FILENAME, &opt_config, "Configuration file", "FILE" },
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

/* write_pid_file - the pid file of a daemon; failure is fatal */
static void
write_pid_file(const char *path)
{
    g_autoptr(GError) error = NULL;
    g_autofree char *text = g_strdup_printf("%ld\n", (long)getpid());

    if (path && *path && !g_file_set_contents(path, text, -1, &error)) {
        shadow_log_error("pid file: %s", error->message);
        exit(EX_OSERR);
    }
}

/* daemonize - detach from the terminal */
static void
daemonize(void)
{
    int fd;

    if (daemon(0, 1) < 0) {
        shadow_log_error("daemon: %s", g_strerror(errno));
        exit(EX_OSERR);
    }
    fd = open("/dev/null", O_RDWR);
    if (fd >= 0) {
        dup2(fd, STDIN_FILENO);
        dup2(fd, STDOUT_FILENO);
        dup2(fd, STDERR_FILENO);
        if (fd > STDERR_FILENO)
            close(fd);
    }
}

int
main(int argc, char **argv)
{
    g_autoptr(GOptionContext) ctx = g_option_context_new("- run milters in shadow mode");
    g_autoptr(GError) error = NULL;
    g_autoptr(ShadowConfig) config = NULL;
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

    shadow_log_open(config->syslog_ident, config->syslog_facility, opt_foreground);
    shadow_log_set_debug(opt_verbose);
    log = shadow_event_log_open(config->event_log, &error);
    if (log == NULL) {
        shadow_log_error("%s", error->message);
        return EX_OSERR;
    }
    server = shadow_server_new(g_steal_pointer(&config), log, &error);
    if (server == NULL) {
        shadow_log_error("%s", error->message);
        return EX_OSERR;
    }
    if (!opt_foreground) {
        daemonize();
        write_pid_file(server->config->pid_file);
    }
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
