/* SPDX-License-Identifier: MIT */
/*
 * NAME
 *	report - what shadow-report's subcommands share
 * SYNOPSIS
 *	#include "report.h"
 *
 *	ReportOptions opts;           // filled by report_options_*() from the command line
 *	int rc = report_run(&opts, each_record, state, &error);
 * DESCRIPTION
 *	Common options (--log, --config, --since, --until, --milter, --host,
 *	--format), the reader loop over the event log with the filters applied,
 *	time range parsing, and the output helpers: aligned text tables, CSV
 *	with RFC 4180 quoting, shares printed as percentages, and
 *	report_clean() for every value from the log put into text output.
 *
 *	Exit codes: REPORT_EXIT_OK, REPORT_EXIT_RUNTIME (a file could not be
 *	read), REPORT_EXIT_USAGE (bad option or value).
 */
#ifndef REPORT_H
#define REPORT_H

/* GLib. */
#include <glib.h>

/* Library. */
#include "shadow_json.h"
#include "shadow_logread.h"

G_BEGIN_DECLS

#define REPORT_EXIT_OK      0
#define REPORT_EXIT_RUNTIME 1
#define REPORT_EXIT_USAGE   2

/* shadowd.conf when --config is not given. */
#define REPORT_DEFAULT_CONFIG "/etc/shadowd/shadowd.conf"

/* Default number of rows in top lists (-n). */
#define REPORT_DEFAULT_TOP 10

#define REPORT_ERROR (report_error_quark())
GQuark report_error_quark(void);

/* ReportError - why a report could not be made */
typedef enum {
    REPORT_ERROR_USAGE,   /* bad option value: exit 2 */
    REPORT_ERROR_RUNTIME, /* unreadable file: exit 1 */
} ReportError;

/* ReportFormat - --format */
typedef enum {
    REPORT_FORMAT_TEXT,
    REPORT_FORMAT_JSON,
    REPORT_FORMAT_CSV,
} ReportFormat;

/* ReportOptions - the options every subcommand takes, as parsed */
typedef struct {
    char **logs;    /* --log, repeatable; NULL: event_log from the config */
    char *config;   /* --config */
    char *since;    /* --since, as written */
    char *until;    /* --until, as written */
    char **milters; /* --milter, repeatable */
    char **hosts;   /* --host, repeatable */
    char *format;   /* --format, as written */
    /* Derived by report_options_check(). */
    ReportFormat fmt;
    gint64 since_ms; /* G_MININT64 when not given */
    gint64 until_ms; /* G_MAXINT64 when not given */
} ReportOptions;

/* ReportStats - what the reader loop saw, for every report's footer */
typedef struct {
    guint64 damaged; /* damaged lines */
    guint64 records; /* records in range after filters */
    gint64 first_ms; /* earliest record in range, or -1 */
    gint64 last_ms;  /* latest record in range, or -1 */
    guint n_files;   /* files read */
    char **files;    /* their paths */
} ReportStats;

/* ReportRecordFunc - called for each record in range that passes --host */
typedef void (*ReportRecordFunc)(const ShadowLogRecord *rec, gpointer data);

/* Options (common.c). */
void report_options_add(GOptionContext *ctx, ReportOptions *opts);
gboolean report_options_check(ReportOptions *opts, GError **error);
void report_options_clear(ReportOptions *opts);
void report_options_add_files(ReportOptions *opts, int argc, char **argv, int first);
gboolean report_parse_time(const char *option, const char *text, gint64 *ms, GError **error);
gboolean report_milter_selected(const ReportOptions *opts, const char *milter);
gboolean report_read(const ReportOptions *opts, ReportRecordFunc func, gpointer data,
                     ReportStats *stats, GError **error);
void report_stats_clear(ReportStats *stats);
int report_exit_code(const GError *error);
int report_parse_args(GOptionContext *ctx, int *argc, char ***argv, ReportOptions *opts);

/* Output helpers (output.c). */
typedef struct _ReportTable ReportTable;
ReportTable *report_table_new(guint n_cols, const char *const *headers, const char *align);
void report_table_add(ReportTable *t, ...) G_GNUC_NULL_TERMINATED;
void report_table_addv(ReportTable *t, char **cells);
void report_table_print(const ReportTable *t, GString *out, const char *indent);
void report_table_free(ReportTable *t);
char *report_clean(const char *s);
const char *report_clean_keep(GPtrArray *keep, const char *s);
void report_csv_row(GString *out, ...) G_GNUC_NULL_TERMINATED;
void report_csv_rowv(GString *out, const char *const *cells, guint n);
char *report_share(guint64 count, guint64 total);
double report_share_value(guint64 count, guint64 total);
char *report_time_text(gint64 ms);
char *report_time_iso(gint64 ms);
char *report_duration_us(gint64 us);
void report_footer_text(GString *out, const ReportStats *stats);
void report_footer_json(ShadowJson *j, const ReportStats *stats);
const char *report_or_dash(const char *s);
char *report_addr_domain(const char *addr);
char *report_addr_bare(const char *addr);
void report_write(GString *out, ReportFormat fmt);

G_DEFINE_AUTOPTR_CLEANUP_FUNC(ReportTable, report_table_free)

/* Latency histogram (hist.c). */
/* Relative width of a bucket: values are reported within half of it (about 1%). */
#define REPORT_HIST_RATIO 1.02
/* Buckets: 1 us up to 1.02^REPORT_HIST_BUCKETS us (about 90 days); larger go in the last. */
#define REPORT_HIST_BUCKETS 1500

/* ReportHist - log-bucketed latency histogram of fixed size */
typedef struct {
    guint64 count;
    gint64 max;
    guint64 buckets[REPORT_HIST_BUCKETS];
} ReportHist;

void report_hist_add(ReportHist *h, gint64 value);
gint64 report_hist_quantile(const ReportHist *h, double q);

/* Subcommands. */
int report_summary(int argc, char **argv);
int report_top(int argc, char **argv);
int report_explain(int argc, char **argv);
int report_review(int argc, char **argv);
int report_whatif(int argc, char **argv);

G_END_DECLS

#endif /* REPORT_H */
