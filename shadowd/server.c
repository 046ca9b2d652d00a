/* SPDX-License-Identifier: MIT */
/*
 * NAME
 *	server - the listening socket and the set of sessions
 * DESCRIPTION
 *	Accepts MTA connections on the main loop. Over max_connections a new
 *	connection is still served, as a milter with no children (so the MTA
 *	is never refused), and a warning says so.
 */

/* Build configuration. */
#include "config.h"

/* System library. */
#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <sys/socket.h>
#include <unistd.h>

/* GLib. */
#include <glib-unix.h>

/* Application-specific. */
#include "log.h"
#include "shadowd.h"

/* How long accepting pauses when out of fds or memory: the listen socket stays readable. */
#define SERVER_ACCEPT_PAUSE_MS 100

static void prune_configs(ShadowServer *server);
static void listen_start(ShadowServer *server);

/* accept_resume - the pause is over: watch the listen socket again */
static void
accept_resume(ShadowDeadline *d, gpointer data)
{
    ShadowServer *server = data;

    (void)d;
    if (!server->stopping && server->listen_fd >= 0 && server->listen_source == NULL)
        listen_start(server);
}

/* accept_pause - stop accepting for a while (EMFILE and the like), instead of spinning */
static void
accept_pause(ShadowServer *server, int err)
{
    shadow_log_warning("accept on %s: %s; not accepting for %d ms", server->config->listen.spec,
                       g_strerror(err), SERVER_ACCEPT_PAUSE_MS);
    g_source_destroy(server->listen_source);
    g_clear_pointer(&server->listen_source, g_source_unref);
    shadow_deadline_init(&server->accept_pause, accept_resume, server);
    shadow_deadline_arm(&server->accept_pause, SERVER_ACCEPT_PAUSE_MS);
}

/* accept_ready - accept every pending connection */
static gboolean
accept_ready(gint fd, GIOCondition cond, gpointer data)
{
    ShadowServer *server = data;

    for (;;) {
        struct sockaddr_storage ss;
        socklen_t len = sizeof(ss);
        int cfd = accept4(fd, (struct sockaddr *)&ss, &len, SOCK_CLOEXEC | SOCK_NONBLOCK);
        ShadowSession *s;

        if (cfd < 0) {
            int e = errno;

            if (e == EMFILE || e == ENFILE || e == ENOBUFS || e == ENOMEM) {
                accept_pause(server, e);
                return G_SOURCE_REMOVE; /* accept_pause dropped the source */
            }
            if (e != EAGAIN && e != EWOULDBLOCK && e != EINTR)
                shadow_log_warning("accept on %s: %s", server->config->listen.spec, g_strerror(e));
            return G_SOURCE_CONTINUE;
        }
        s = shadow_session_new(server, cfd, "mta");
        if (g_hash_table_size(server->sessions) >= server->config->max_connections) {
            s->overloaded = TRUE;
            shadow_log_warning("%s: over max_connections (%u): served without children", s->id,
                               server->config->max_connections);
        }
        g_hash_table_add(server->sessions, s);
    }
}

/* own_socket - give a unix socket the configured user[:group] */
static gboolean
own_socket(const ShadowConfig *config, GError **error)
{
    g_auto(GStrv) parts = NULL;
    struct passwd *pw;
    gid_t gid = (gid_t)-1;

    if (config->listen.kind != SHADOW_ADDRESS_UNIX || config->socket_owner == NULL)
        return TRUE;
    parts = g_strsplit(config->socket_owner, ":", 2);
    pw = getpwnam(parts[0]);
    if (pw == NULL) {
        g_set_error(error, G_FILE_ERROR, G_FILE_ERROR_NOENT, "socket_owner: no user %s", parts[0]);
        return FALSE;
    }
    gid = pw->pw_gid;
    if (parts[1] != NULL) {
        struct group *gr = getgrnam(parts[1]);

        if (gr == NULL) {
            g_set_error(error, G_FILE_ERROR, G_FILE_ERROR_NOENT, "socket_owner: no group %s",
                        parts[1]);
            return FALSE;
        }
        gid = gr->gr_gid;
    }
    if (chown(config->listen.path, pw->pw_uid, gid) < 0) {
        int e = errno;

        g_set_error(error, G_FILE_ERROR, g_file_error_from_errno(e), "chown %s to %s: %s",
                    config->listen.path, config->socket_owner, g_strerror(e));
        return FALSE;
    }
    return TRUE;
}

/* shadow_server_new - listen on the configured address */
ShadowServer *
shadow_server_new(ShadowConfig *config, ShadowEventLog *log, GError **error)
{
    ShadowServer *server = g_new0(ShadowServer, 1);

    server->config = config;
    server->spool_budget.limit = config->spool_memory_total;
    server->log = log;
    server->sessions = g_hash_table_new(NULL, NULL);
    server->old_configs = g_ptr_array_new_with_free_func((GDestroyNotify)shadow_config_free);
    server->listen_fd = -1;
    if (!shadow_socket_listen(&config->listen, config->socket_mode, &server->listen_fd, error) ||
        !own_socket(config, error)) {
        if (server->listen_fd >= 0)
            close(server->listen_fd);
        g_hash_table_unref(server->sessions);
        g_ptr_array_unref(server->old_configs);
        g_free(server);
        return NULL;
    }
    listen_start(server);
    return server;
}

/* listen_start - watch the listen socket */
static void
listen_start(ShadowServer *server)
{
    server->listen_source = g_unix_fd_source_new(server->listen_fd, G_IO_IN);
    g_source_set_callback(server->listen_source, (GSourceFunc)(void (*)(void))accept_ready, server,
                          NULL);
    /* Not blocked around each dispatch: blocking removes and re-adds its fd, two wakeups. */
    g_source_set_can_recurse(server->listen_source, TRUE);
    g_source_attach(server->listen_source, NULL);
}

/* shadow_server_stop - accept no more connections */
void
shadow_server_stop(ShadowServer *server)
{
    shadow_deadline_disarm(&server->accept_pause);
    if (server->listen_source) {
        g_source_destroy(server->listen_source);
        g_clear_pointer(&server->listen_source, g_source_unref);
    }
    if (server->listen_fd >= 0) {
        close(server->listen_fd);
        server->listen_fd = -1;
        if (server->config->listen.kind == SHADOW_ADDRESS_UNIX)
            (void)unlink(server->config->listen.path);
    }
    server->stopping = TRUE;
    if (g_hash_table_size(server->sessions) == 0 && server->loop)
        g_main_loop_quit(server->loop);
}

/* shadow_server_session_done - idle callback: free a finished session */
gboolean
shadow_server_session_done(gpointer data)
{
    ShadowSession *s = data;
    ShadowServer *server = s->server;

    g_hash_table_remove(server->sessions, s);
    shadow_session_free(s);
    prune_configs(server);
    if (server->stopping && g_hash_table_size(server->sessions) == 0 && server->loop)
        g_main_loop_quit(server->loop);
    return G_SOURCE_REMOVE;
}

/* prune_configs - free replaced configurations no session uses any more */
static void
prune_configs(ShadowServer *server)
{
    for (guint i = 0; i < server->old_configs->len;) {
        ShadowConfig *old = g_ptr_array_index(server->old_configs, i);
        gboolean used = FALSE;
        GHashTableIter it;
        gpointer key;

        g_hash_table_iter_init(&it, server->sessions);
        while (!used && g_hash_table_iter_next(&it, &key, NULL))
            used = ((ShadowSession *)key)->config == old;
        if (used)
            i++;
        else
            g_ptr_array_remove_index_fast(server->old_configs, i);
    }
}

/* shadow_server_reload - new connections use config; running ones keep theirs */
void
shadow_server_reload(ShadowServer *server, ShadowConfig *config)
{
    g_ptr_array_add(server->old_configs, server->config);
    server->config = config;
    server->spool_budget.limit = config->spool_memory_total; /* what is held stays until freed */
    prune_configs(server);
}

/* shadow_server_free - free the server and any sessions left */
void
shadow_server_free(ShadowServer *server)
{
    GHashTableIter it;
    gpointer key;

    if (server == NULL)
        return;
    shadow_server_stop(server);
    g_hash_table_iter_init(&it, server->sessions);
    while (g_hash_table_iter_next(&it, &key, NULL))
        shadow_session_free(key);
    g_hash_table_unref(server->sessions);
    g_ptr_array_unref(server->old_configs);
    shadow_config_free(server->config);
    g_free(server);
}
