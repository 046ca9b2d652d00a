/* SPDX-License-Identifier: MIT */
/*
 * NAME
 *	common - shadow-report's common options, time ranges and reader loop
 * SYNOPSIS
 *	#include "report.h"
 * DESCRIPTION
 *	Every subcommand takes --log (repeatable, or file arguments), --config,
 *	--since, --until, --milter, --host and --format. Without --log the
 *	event_log of shadowd.conf is read (REPORT_DEFAULT_CONFIG, or --config).
 *
 *	Times: YYYY-MM-DD (local midnight), YYYY-MM-DDTHH:MM[:SS[.fff]] with an
 *	optional Z or +HH:MM (local time without one; a space may stand for
 *	the T), "now", "today", "yesterday" (local midnight), and -N followed
 *	by s, m, h, d or w (that long before now). The range is
 *	[--since, --until).
 */

/* System library. */
#include <stdio.h>
#include <string.h>

/* Library. */
#include "shadow_config.h"

/* Application. */
#include "report.h"

/* Seconds per unit of a relative time (-24h). */
#define SECONDS_PER_MINUTE 60
#define SECONDS_PER_HOUR   3600
#define SECONDS_PER_DAY    86400
#define SECONDS_PER_WEEK   604800
#define MS_PER_SECOND      1000

/* report_error_quark - the error domain of shadow-report */
GQuark
report_error_quark(void)
{
    return g_quark_from_static_string("shadow-report-error-quark");
}

/* report_options_add - add the common options to a subcommand's context */
void
report_options_add(GOptionContext *ctx, ReportOptions *opts)
{
    const GOptionEntry entries[] = {
        { "log", 'l', 0, G_OPTION_ARG_FILENAME_ARRAY, &opts->logs,
          "Event log to read (repeatable; plain or .gz; - is standard input)", "FILE" },
        { "config", 'c', 0, G_OPTION_ARG_FILENAME, &opts->config,
          "shadowd.conf whose event_log is the default log (" REPORT_DEFAULT_CONFIG ")", "FILE" },
        { "since", 's', 0, G_OPTION_ARG_STRING, &opts->since,
          "Records at or after TIME (YYYY-MM-DD[THH:MM[:SS]][Z], today, yesterday, -24h)", "TIME" },
        { "until", 'u', 0, G_OPTION_ARG_STRING, &opts->until, "Records before TIME", "TIME" },
        { "milter", 'm', 0, G_OPTION_ARG_STRING_ARRAY, &opts->milters,
          "Only this milter's tables (repeatable)", "NAME" },
        { "host", 'H', 0, G_OPTION_ARG_STRING_ARRAY, &opts->hosts,
          "Only records of this shadowd host (repeatable)", "HOST" },
        { "format", 'f', 0, G_OPTION_ARG_STRING, &opts->format, "Output: text, json or csv",
          "FORMAT" },
        { NULL, 0, 0, 0, NULL, NULL, NULL },
    };
    GOptionGroup *group = g_option_group_new(
        "common", "Options every subcommand takes:", "Show the common options", NULL, NULL);

    g_option_group_add_entries(group, entries);
    g_option_context_add_group(ctx, group);
}

/* relative_time - "-24h" style: ms before now; FALSE if text is not of that form */
static gboolean
relative_time(const char *text, gint64 now_ms, gint64 *ms)
{
    char *end = NULL;
    guint64 n;
    gint64 unit;

    if (text[0] != '-' || !g_ascii_isdigit(text[1]))
        return FALSE;
    n = g_ascii_strtoull(text + 1, &end, 10);
    if (end == NULL || end[0] == '\0' || end[1] != '\0')
        return FALSE;
    switch (end[0]) {
    case 's':
        unit = 1;
        break;
    case 'm':
        unit = SECONDS_PER_MINUTE;
        break;
    case 'h':
        unit = SECONDS_PER_HOUR;
        break;
    case 'd':
        unit = SECONDS_PER_DAY;
        break;
    case 'w':
        unit = SECONDS_PER_WEEK;
        break;
    default:
        return FALSE;
    }
    if (n > (guint64)(G_MAXINT64 / MS_PER_SECOND / unit) / 2)
        return FALSE;
    *ms = now_ms - (gint64)n * unit * MS_PER_SECOND;
    return TRUE;
}

/* local_midnight - ms of local midnight of the day days_back before today */
static gint64
local_midnight(int days_back)
{
    g_autoptr(GDateTime) now = g_date_time_new_now_local();
    g_autoptr(GDateTime) day =
        g_date_time_new_local(g_date_time_get_year(now), g_date_time_get_month(now),
                              g_date_time_get_day_of_month(now), 0, 0, 0);
    g_autoptr(GDateTime) back = g_date_time_add_days(day, -days_back);

    return g_date_time_to_unix(back) * MS_PER_SECOND;
}

/* absolute_time - ISO date or date and time; FALSE if it does not parse */
static gboolean
absolute_time(const char *text, gint64 *ms)
{
    g_autoptr(GTimeZone) local = g_time_zone_new_local();
    g_autoptr(GDateTime) dt = NULL;
    int y, mo, d;
    char tail;

    if (sscanf(text, "%4d-%2d-%2d%c", &y, &mo, &d, &tail) == 3 && strlen(text) == 10) {
        dt = g_date_time_new_local(y, mo, d, 0, 0, 0);
    } else {
        g_autofree char *copy = g_strdup(text);

        if (strlen(copy) > 10 && copy[10] == ' ')
            copy[10] = 'T';
        /* HH:MM without seconds: GLib wants them. */
        if (strlen(copy) >= 16 && copy[13] == ':' &&
            (copy[16] == '\0' || copy[16] == 'Z' || copy[16] == '+' || copy[16] == '-')) {
            g_autofree char *head = g_strndup(copy, 16);

            g_free(copy);
            copy = g_strconcat(head, ":00", text + 16, NULL);
        }
        dt = g_date_time_new_from_iso8601(copy, local);
    }
    if (dt == NULL)
        return FALSE;
    *ms = g_date_time_to_unix(dt) * MS_PER_SECOND + g_date_time_get_microsecond(dt) / 1000;
    return TRUE;
}

/* report_parse_time - a --since/--until value to ms since the epoch; error names option */
gboolean
report_parse_time(const char *option, const char *text, gint64 *ms, GError **error)
{
    gint64 now_ms = g_get_real_time() / 1000;

    if (g_strcmp0(text, "now") == 0) {
        *ms = now_ms;
        return TRUE;
    }
    if (g_strcmp0(text, "today") == 0) {
        *ms = local_midnight(0);
        return TRUE;
    }
    if (g_strcmp0(text, "yesterday") == 0) {
        *ms = local_midnight(1);
        return TRUE;
    }
    if (text != NULL && (relative_time(text, now_ms, ms) || absolute_time(text, ms)))
        return TRUE;
    g_set_error(error, REPORT_ERROR, REPORT_ERROR_USAGE,
                "%s: bad time \"%s\" (want YYYY-MM-DD, YYYY-MM-DDTHH:MM[:SS][Z|+HH:MM], now, "
                "today, yesterday, or -N with s, m, h, d or w, as in -24h)",
                option, text != NULL ? text : "");
    return FALSE;
}

/* report_options_check - derive the format and range; FALSE with a usage error */
gboolean
report_options_check(ReportOptions *opts, GError **error)
{
    opts->since_ms = G_MININT64;
    opts->until_ms = G_MAXINT64;
    if (opts->format == NULL || strcmp(opts->format, "text") == 0) {
        opts->fmt = REPORT_FORMAT_TEXT;
    } else if (strcmp(opts->format, "json") == 0) {
        opts->fmt = REPORT_FORMAT_JSON;
    } else if (strcmp(opts->format, "csv") == 0) {
        opts->fmt = REPORT_FORMAT_CSV;
    } else {
        g_set_error(error, REPORT_ERROR, REPORT_ERROR_USAGE,
                    "--format: unknown format \"%s\" (want text, json or csv)", opts->format);
        return FALSE;
    }
    if (opts->since != NULL && !report_parse_time("--since", opts->since, &opts->since_ms, error))
        return FALSE;
    if (opts->until != NULL && !report_parse_time("--until", opts->until, &opts->until_ms, error))
        return FALSE;
    return TRUE;
}

/* report_options_clear - free what option parsing allocated */
void
report_options_clear(ReportOptions *opts)
{
    g_clear_pointer(&opts->logs, g_strfreev);
    g_clear_pointer(&opts->config, g_free);
    g_clear_pointer(&opts->since, g_free);
    g_clear_pointer(&opts->until, g_free);
    g_clear_pointer(&opts->milters, g_strfreev);
    g_clear_pointer(&opts->hosts, g_strfreev);
    g_clear_pointer(&opts->format, g_free);
}

/* report_parse_args - parse argv into opts; REPORT_EXIT_OK, or the code to exit with */
int
report_parse_args(GOptionContext *ctx, int *argc, char ***argv, ReportOptions *opts)
{
    g_autoptr(GError) error = NULL;

    report_options_add(ctx, opts);
    if (!g_option_context_parse(ctx, argc, argv, &error) || !report_options_check(opts, &error)) {
        fprintf(stderr, "shadow-report: %s\n", error->message);
        return REPORT_EXIT_USAGE;
    }
    return REPORT_EXIT_OK;
}

/* report_milter_selected - is milter among --milter (or no --milter given)? */
gboolean
report_milter_selected(const ReportOptions *opts, const char *milter)
{
    if (opts->milters == NULL || opts->milters[0] == NULL)
        return TRUE;
    return milter != NULL && g_strv_contains((const char *const *)opts->milters, milter);
}

/* host_selected - is host among --host (or no --host given)? */
static gboolean
host_selected(const ReportOptions *opts, const char *host)
{
    if (opts->hosts == NULL || opts->hosts[0] == NULL)
        return TRUE;
    return host != NULL && g_strv_contains((const char *const *)opts->hosts, host);
}

/* report_damage - print a damaged line as "shadow-report: FILE:LINE: what" */
static void
report_damage(const char *file, guint64 line, const char *what, gpointer data)
{
    (void)data;
    fprintf(stderr, "shadow-report: %s:%" G_GUINT64_FORMAT ": %s\n", file, line, what);
}

/* default_logs - the event_log of shadowd.conf, as a one-element list */
static char **
default_logs(const ReportOptions *opts, GError **error)
{
    const char *path = opts->config != NULL ? opts->config : REPORT_DEFAULT_CONFIG;
    g_autoptr(GError) local = NULL;
    g_autoptr(ShadowConfig) config = shadow_config_load(path, &local);
    char **logs;

    if (config == NULL) {
        /* No shadowd.conf at the default place: shadowd's own default event_log. */
        if (opts->config == NULL && g_error_matches(local, G_FILE_ERROR, G_FILE_ERROR_NOENT)) {
            config = shadow_config_new_default();
        } else {
            g_set_error(error, REPORT_ERROR, REPORT_ERROR_RUNTIME, "%s", local->message);
            return NULL;
        }
    }
    logs = g_new0(char *, 2);
    logs[0] = g_strdup(config->event_log);
    return logs;
}

/* report_read - read every log, calling func for each record in range and on --host */
gboolean
report_read(const ReportOptions *opts, ReportRecordFunc func, gpointer data, ReportStats *stats,
            GError **error)
{
    g_autoptr(ShadowLogReader) r = shadow_log_reader_new();
    g_auto(GStrv) from_config = NULL;
    const char *const *logs = (const char *const *)opts->logs;
    const ShadowLogRecord *rec;
    g_autoptr(GError) local = NULL;

    memset(stats, 0, sizeof(*stats));
    stats->first_ms = -1;
    stats->last_ms = -1;
    if (logs == NULL || logs[0] == NULL) {
        from_config = default_logs(opts, error);
        if (from_config == NULL)
            return FALSE;
        logs = (const char *const *)from_config;
    }
    shadow_log_reader_set_damage_func(r, report_damage, NULL);
    if (opts->since_ms != G_MININT64 || opts->until_ms != G_MAXINT64)
        shadow_log_reader_set_range(r, opts->since_ms, opts->until_ms);
    for (guint i = 0; logs[i] != NULL; i++) {
        if (!shadow_log_reader_add(r, logs[i], &local)) {
            g_set_error(error, REPORT_ERROR, REPORT_ERROR_RUNTIME, "%s", local->message);
            return FALSE;
        }
    }
    stats->files = g_strdupv((char **)logs);
    stats->n_files = g_strv_length(stats->files);
    while ((rec = shadow_log_reader_next(r, &local)) != NULL) {
        gint64 ts;
        const char *host;

        if (rec->kind == SHADOW_LOG_MESSAGE) {
            ts = rec->message.ts_ms;
            host = rec->message.host;
        } else {
            ts = rec->connection.ts_ms;
            host = rec->connection.host;
        }
        if (!host_selected(opts, host))
            continue;
        stats->records++;
        if (stats->first_ms < 0 || ts < stats->first_ms)
            stats->first_ms = ts;
        if (ts > stats->last_ms)
            stats->last_ms = ts;
        func(rec, data);
    }
    stats->damaged = shadow_log_reader_damaged(r);
    if (local != NULL) {
        g_set_error(error, REPORT_ERROR, REPORT_ERROR_RUNTIME, "%s", local->message);
        return FALSE;
    }
    return TRUE;
}

/* report_stats_clear - free what report_read() put in stats */
void
report_stats_clear(ReportStats *stats)
{
    g_clear_pointer(&stats->files, g_strfreev);
}

/* report_exit_code - the exit code for an error */
int
report_exit_code(const GError *error)
{
    if (error != NULL && error->domain == REPORT_ERROR && error->code == REPORT_ERROR_USAGE)
        return REPORT_EXIT_USAGE;
    return REPORT_EXIT_RUNTIME;
}

/* report_options_add_files - append argv[first..argc-1] to --log */
void
report_options_add_files(ReportOptions *opts, int argc, char **argv, int first)
{
    guint n = opts->logs != NULL ? g_strv_length(opts->logs) : 0;

    if (first >= argc)
        return;
    opts->logs = g_renew(char *, opts->logs, n + (guint)(argc - first) + 1);
    for (int i = first; i < argc; i++)
        opts->logs[n++] = g_strdup(argv[i]);
    opts->logs[n] = NULL;
}
