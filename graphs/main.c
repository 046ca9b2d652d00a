/* SPDX-License-Identifier: MIT */
/*
 * NAME
 *	shadow-graphs - RRD time series, graphs and a static HTML page from shadowd's event log
 * SYNOPSIS
 *	shadow-graphs --log FILE [--log FILE...] --rrd-dir DIR --out DIR [--config shadowd.conf]
 *	              [--state FILE] [--daemon ADDRESS] [--now TIME] [--settle SECONDS]
 *	              [--mta-timeout SECONDS] [--no-graphs]
 * DESCRIPTION
 *	One run, from cron or a systemd timer: read what is new in the logs,
 *	update the RRD files, redraw the graphs and the page. See
 *	shadow-graphs(1) for the files and what they hold.
 * SECURITY
 *	Reads the event logs and writes the RRD, state and output directories;
 *	talks to nothing but rrdcached when --daemon is given. Needs no
 *	privilege: run it as a user who can read the logs.
 */

/* System library. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sysexits.h>
#include <time.h>
#include <unistd.h>

/* GLib. */
#include <glib.h>

/* Shadow libraries. */
#include "shadow_config.h"

/* Application-specific. */
#include "gr_ingest.h"
#include "gr_output.h"
#include "gr_state.h"

/* Defaults. */
#define DEFAULT_SETTLE      60 /* seconds a minute is left open after it ended */
#define DEFAULT_MTA_TIMEOUT 30 /* seconds: Postfix's milter_command_timeout */
#define STATE_NAME          "shadow-graphs.state"

/* Options - the command line */
typedef struct {
    char **logs;
    char *rrd_dir;
    char *out_dir;
    char *config;
    char *state;
    char *daemon;
    char *now;
    gint settle;
    gint mta_timeout;
    gboolean no_graphs;
} Options;

/* parse_time - --now: seconds since the epoch or an ISO 8601 / RFC 3339 time */
static gboolean
parse_time(const char *text, gint64 *out)
{
    char *end;
    gint64 v = g_ascii_strtoll(text, &end, 10);
    if (end != text && *end == '\0') {
        *out = v;
        return TRUE;
    }
    g_autoptr(GTimeZone) tz = g_time_zone_new_utc();
    g_autoptr(GDateTime) d = g_date_time_new_from_iso8601(text, tz);
    if (d == NULL)
        return FALSE;
    *out = g_date_time_to_unix(d);
    return TRUE;
}

/* parse_options - the command line into O; FALSE with the message on standard error */
static gboolean
parse_options(int argc, char **argv, Options *o)
{
    GOptionEntry entries[] = {
        { "log", 'l', 0, G_OPTION_ARG_FILENAME_ARRAY, &o->logs, "event log to read (repeat)",
          "FILE" },
        { "rrd-dir", 'r', 0, G_OPTION_ARG_FILENAME, &o->rrd_dir, "directory of the RRD files",
          "DIR" },
        { "out", 'o', 0, G_OPTION_ARG_FILENAME, &o->out_dir, "directory for graphs and index.html",
          "DIR" },
        { "config", 'c', 0, G_OPTION_ARG_FILENAME, &o->config,
          "shadowd.conf: milters in chain order", "FILE" },
        { "state", 's', 0, G_OPTION_ARG_FILENAME, &o->state,
          "state file (default: RRD-DIR/" STATE_NAME ")", "FILE" },
        { "daemon", 'd', 0, G_OPTION_ARG_STRING, &o->daemon,
          "send updates to rrdcached at ADDRESS (unix:/path or host:port)", "ADDRESS" },
        { "now", 0, 0, G_OPTION_ARG_STRING, &o->now, "the current time (for tests)", "TIME" },
        { "settle", 0, 0, G_OPTION_ARG_INT, &o->settle,
          "a minute is complete this long after it ended (default 60)", "SECONDS" },
        { "mta-timeout", 0, 0, G_OPTION_ARG_INT, &o->mta_timeout,
          "MTA milter timeout drawn on latency graphs (default 30)", "SECONDS" },
        { "no-graphs", 0, 0, G_OPTION_ARG_NONE, &o->no_graphs, "update the RRD files only", NULL },
        { NULL },
    };
    g_autoptr(GOptionContext) ctx = g_option_context_new("- RRD graphs of shadowd's event log");
    g_option_context_add_main_entries(ctx, entries, NULL);
    g_autoptr(GError) error = NULL;
    if (!g_option_context_parse(ctx, &argc, &argv, &error)) {
        g_printerr("shadow-graphs: %s (see --help)\n", error->message);
        return FALSE;
    }
    const char *why = NULL;
    if (argc > 1)
        why = "unexpected argument";
    else if (o->rrd_dir == NULL)
        why = "--rrd-dir is required";
    else if (o->out_dir == NULL && !o->no_graphs)
        why = "--out is required (or --no-graphs)";
    else if (o->settle < 0)
        why = "--settle must not be negative";
    else if (o->mta_timeout <= 0)
        why = "--mta-timeout must be positive";
    if (why != NULL) {
        g_printerr("shadow-graphs: %s%s%s (see --help)\n", why, argc > 1 ? ": " : "",
                   argc > 1 ? argv[1] : "");
        return FALSE;
    }
    return TRUE;
}

/* lock_state - take the lock beside the state file, or say who holds it */
static int
lock_state(const char *state, GError **error)
{
    g_autofree char *path = g_strconcat(state, ".lock", NULL);
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0) {
        g_set_error(error, G_FILE_ERROR, g_file_error_from_errno(errno), "%s: cannot open: %s",
                    path, g_strerror(errno));
        return -1;
    }
    if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
        g_set_error(error, G_FILE_ERROR, g_file_error_from_errno(errno),
                    "%s: another shadow-graphs is updating these files (%s); try again later", path,
                    g_strerror(errno));
        close(fd);
        return -1;
    }
    return fd;
}

/* update - read the logs into the RRD files and save the state */
static gboolean
update(const Options *o, GrState *st, GrModel *m, GrStore *store, gint64 now, GError **error)
{
    if (!gr_state_restore(st, m, error))
        return FALSE;
    g_autoptr(GArray) positions = g_array_new(FALSE, TRUE, sizeof(GrLogPos));
    g_array_set_clear_func(positions, gr_log_pos_clear);
    guint64 damaged = 0;
    if (!gr_ingest(st, m, (const char *const *)o->logs, positions, &damaged, error))
        return FALSE;
    if (!gr_model_finish(m, now - o->settle, error) || !gr_store_flush(store, error))
        return FALSE;
    GPtrArray *hosts = gr_model_hosts(m);
    for (guint i = 0; i < hosts->len; i++) {
        GrHost *h = hosts->pdata[i];
        if (h->late > 0)
            g_printerr("shadow-graphs: host %s: %" G_GUINT64_FORMAT
                       " messages not counted: their minutes were already written\n",
                       h->name, h->late);
    }
    if (damaged > 0)
        g_printerr("shadow-graphs: %" G_GUINT64_FORMAT " damaged lines skipped\n", damaged);
    return gr_state_save(st, m, (const GrLogPos *)positions->data, positions->len, error);
}

/* chain_order - milter names of shadowd.conf in chain order, or NULL without --config */
static char **
chain_order(const char *config, GError **error)
{
    if (config == NULL)
        return g_new0(char *, 1);
    g_autoptr(ShadowConfig) c = shadow_config_load(config, error);
    if (c == NULL)
        return NULL;
    GStrvBuilder *b = g_strv_builder_new();
    for (guint i = 0; i < c->milters->len; i++)
        g_strv_builder_add(b, ((ShadowMilterConfig *)c->milters->pdata[i])->name);
    char **v = g_strv_builder_end(b);
    g_strv_builder_unref(b);
    return v;
}

/* options_clear - free the command line's strings */
static void
options_clear(Options *o)
{
    g_strfreev(o->logs);
    g_free(o->rrd_dir);
    g_free(o->out_dir);
    g_free(o->config);
    g_free(o->state);
    g_free(o->daemon);
    g_free(o->now);
}

/* run - lock, update, draw; the exit status */
static int
run(const Options *o)
{
    gint64 now = (gint64)time(NULL);
    if (o->now != NULL && !parse_time(o->now, &now)) {
        g_printerr("shadow-graphs: --now %s: not a time (seconds or 2026-12-03T21:43:28Z)\n",
                   o->now);
        return EX_USAGE;
    }
    g_autoptr(GError) error = NULL;
    g_auto(GStrv) order = chain_order(o->config, &error);
    if (order == NULL) {
        g_printerr("shadow-graphs: --config: %s\n", error->message);
        return EX_CONFIG;
    }
    g_autofree char *state_path =
        o->state != NULL ? g_strdup(o->state) : g_build_filename(o->rrd_dir, STATE_NAME, NULL);
    g_autoptr(GrStore) store = gr_store_new(o->rrd_dir, o->daemon, &error);
    if (store == NULL) {
        g_printerr("shadow-graphs: %s\n", error->message);
        return EX_UNAVAILABLE;
    }
    int lock = lock_state(state_path, &error);
    if (lock < 0) {
        g_printerr("shadow-graphs: %s\n", error->message);
        return EX_TEMPFAIL;
    }
    g_autoptr(GrState) st = gr_state_load(state_path, &error);
    g_autoptr(GrModel) m = gr_model_new(store);
    int rc = EXIT_SUCCESS;
    if (st == NULL || !update(o, st, m, store, now, &error)) {
        g_printerr("shadow-graphs: %s\n", error->message);
        rc = EXIT_FAILURE;
    } else if (!o->no_graphs) {
        GrOutputOptions out = {
            .out_dir = o->out_dir,
            .chain_order = (const char *const *)order,
            .mta_timeout_ms = o->mta_timeout * 1000.0,
            .now = now,
            .update_time = now,
        };
        if (!gr_output_discover(m, store, &error) || !gr_output_write(&out, m, store, &error)) {
            g_printerr("shadow-graphs: %s\n", error->message);
            rc = EXIT_FAILURE;
        }
    }
    close(lock);
    return rc;
}

/* main - parse the command line and run */
int
main(int argc, char **argv)
{
    Options o = { .settle = DEFAULT_SETTLE, .mta_timeout = DEFAULT_MTA_TIMEOUT };
    int rc = parse_options(argc, argv, &o) ? run(&o) : EX_USAGE;
    options_clear(&o);
    return rc;
}
