/* SPDX-License-Identifier: MIT */
/*
 * NAME
 *	summary - shadow-report summary: totals, per milter, chain, per hour/day, latency
 * SYNOPSIS
 *	shadow-report summary [options] [--log FILE]... [FILE...]
 * DESCRIPTION
 *	One pass over the log with no per-message storage: counters per milter
 *	(a handful), per outcome, per hour of the day (24 rows), per day (at
 *	most SUMMARY_MAX_DAYS rows; later days are added to the last row), and
 *	one fixed-size latency histogram per milter (hist.c). Memory does not
 *	grow with the number of messages.
 *
 *	Shares are of the messages the milter saw (one verdict per message per
 *	milter), or of all messages for the chain's outcomes.
 *
 *	Latency per verdict is the sum over its stages of latency_us; the
 *	timeout columns compare the slowest stage against half of the MTAs'
 *	default timeouts: Postfix milter_command_timeout 30s (connect to DATA)
 *	and milter_content_timeout 300s (header to end of message); Sendmail's
 *	T=S/R 10s (every stage but end of message) and T=E 5m (end of
 *	message). A stage's latency is summed over its commands (every header,
 *	every recipient), so the comparison errs on the safe side.
 */

/* System library. */
#include <string.h>

/* Application. */
#include "report.h"

/* Per-day rows kept; records of later days count in the last row. */
#define SUMMARY_MAX_DAYS 1000
/* Hours in a day, for the per-hour table. */
#define HOURS_PER_DAY 24
#define MS_PER_HOUR   3600000
#define MS_PER_MINUTE 60000
#define MS_PER_SECOND 1000
/* Half of the MTAs' default milter timeouts, in microseconds. */
#define POSTFIX_COMMAND_HALF_US (15LL * 1000000)  /* milter_command_timeout 30s */
#define POSTFIX_CONTENT_HALF_US (150LL * 1000000) /* milter_content_timeout 300s */
#define SENDMAIL_SR_HALF_US     (5LL * 1000000)   /* T=S:10s;R:10s */
#define SENDMAIL_E_HALF_US      (150LL * 1000000) /* T=E:5m */
#define QUANTILE_MEDIAN         0.50
#define QUANTILE_P95            0.95
#define QUANTILE_P99            0.99

/* MilterStats - counters for one milter */
typedef struct {
    char *name;
    guint64 seen;
    guint64 actions[SHADOW_ACTION_COUNT];
    guint64 quarantine;
    guint64 edit;
    guint64 rcpt_verdicts; /* verdicts that refused at least one recipient */
    guint64 rcpts_refused; /* recipients it refused */
    guint64 decided;       /* messages whose predicted outcome it decided */
    guint64 over[4];       /* slowest stage over half of: PF command, PF content, SM S/R, SM E */
    ReportHist latency;    /* per verdict, summed over stages */
} MilterStats;

/* Rows of the per-hour and per-day tables: messages and each outcome. */
#define ROW_COLS (1 + SHADOW_OUTCOME_COUNT)
typedef guint64 RowCounts[ROW_COLS];

/* DayRow - one day's counts */
typedef struct {
    char label[16]; /* YYYY-MM-DD, local */
    guint64 counts[ROW_COLS];
} DayRow;

/* Summary - everything summary counts */
typedef struct {
    guint64 connections;
    guint64 messages;
    guint64 recipients;
    guint64 outcomes[SHADOW_OUTCOME_COUNT];
    guint64 partly_refused; /* delivered, with some recipients refused */
    guint64 incomplete;     /* a milter gave no verdict */
    guint64 aborted;        /* the MTA aborted the message */
    GPtrArray *milters;     /* MilterStats *, in order of first appearance */
    guint64 hours[HOURS_PER_DAY][ROW_COLS];
    GArray *days;                /* DayRow */
    gint64 hour_start, hour_end; /* cache: local hour holding the last record */
    guint hour;
    guint day; /* index in days of the cached hour */
} Summary;

/* milter_stats_free - free one MilterStats */
static void
milter_stats_free(gpointer p)
{
    MilterStats *m = p;

    g_free(m->name);
    g_free(m);
}

/* milter_get - the stats of a milter, made on first sight */
static MilterStats *
milter_get(Summary *s, const char *name)
{
    MilterStats *m;

    for (guint i = 0; i < s->milters->len; i++) {
        m = g_ptr_array_index(s->milters, i);
        if (strcmp(m->name, name) == 0)
            return m;
    }
    m = g_new0(MilterStats, 1);
    m->name = g_strdup(name);
    g_ptr_array_add(s->milters, m);
    return m;
}

/* locate_hour - set the cached local hour and day row for a timestamp */
static void
locate_hour(Summary *s, gint64 ts)
{
    g_autoptr(GDateTime) dt = NULL;
    g_autofree char *label = NULL;
    gint64 into;

    if (ts >= s->hour_start && ts < s->hour_end)
        return;
    dt = g_date_time_new_from_unix_local(ts / MS_PER_SECOND);
    if (dt == NULL)
        return;
    s->hour = (guint)g_date_time_get_hour(dt);
    into = (gint64)g_date_time_get_minute(dt) * MS_PER_MINUTE +
           (gint64)g_date_time_get_second(dt) * MS_PER_SECOND + ts % MS_PER_SECOND;
    s->hour_start = ts - into;
    s->hour_end = s->hour_start + MS_PER_HOUR;
    label = g_date_time_format(dt, "%Y-%m-%d");
    /* Merged logs are in time order: the day is the last row or a new one. */
    for (guint i = s->days->len; i > 0; i--) {
        if (strcmp(g_array_index(s->days, DayRow, i - 1).label, label) == 0) {
            s->day = i - 1;
            return;
        }
    }
    if (s->days->len < SUMMARY_MAX_DAYS) {
        DayRow row = { 0 };

        g_strlcpy(row.label, label, sizeof(row.label));
        g_array_append_val(s->days, row);
    }
    s->day = s->days->len - 1;
}

/* add_latency - fold one verdict's latencies into its milter's stats */
static void
add_latency(MilterStats *m, const ShadowLogVerdict *v)
{
    gint64 total = 0, pf_cmd = 0, pf_content = 0, sm_sr = 0, sm_e = 0;
    gboolean any = FALSE;

    for (guint st = 0; st < SHADOW_STAGE_COUNT; st++) {
        gint64 us = v->latency_us[st];

        if (us < 0)
            continue;
        any = TRUE;
        total += us;
        if (shadow_stage_is_content((ShadowStage)st))
            pf_content = MAX(pf_content, us);
        else
            pf_cmd = MAX(pf_cmd, us);
        if (st == SHADOW_STAGE_EOM)
            sm_e = MAX(sm_e, us);
        else
            sm_sr = MAX(sm_sr, us);
    }
    if (!any)
        return;
    report_hist_add(&m->latency, total);
    m->over[0] += pf_cmd > POSTFIX_COMMAND_HALF_US;
    m->over[1] += pf_content > POSTFIX_CONTENT_HALF_US;
    m->over[2] += sm_sr > SENDMAIL_SR_HALF_US;
    m->over[3] += sm_e > SENDMAIL_E_HALF_US;
}

/* add_message - count one message record */
static void
add_message(Summary *s, const ShadowLogMessage *msg)
{
    guint col = 1 + (guint)msg->outcome;

    s->messages++;
    s->recipients += msg->n_rcpts;
    if (msg->outcome < SHADOW_OUTCOME_COUNT)
        s->outcomes[msg->outcome]++;
    else
        col = 0;
    if (msg->outcome == SHADOW_OUTCOME_DELIVERED && msg->n_refused > 0)
        s->partly_refused++;
    if (msg->n_unknown > 0)
        s->incomplete++;
    if (!msg->mta_ended)
        s->aborted++;
    locate_hour(s, msg->ts_ms);
    s->hours[s->hour][0]++;
    if (col > 0)
        s->hours[s->hour][col]++;
    if (s->days->len > 0) {
        DayRow *d = &g_array_index(s->days, DayRow, s->day);

        d->counts[0]++;
        if (col > 0)
            d->counts[col]++;
    }
    for (guint i = 0; i < msg->n_verdicts; i++) {
        const ShadowLogVerdict *v = &msg->verdicts[i];
        MilterStats *m = milter_get(s, v->milter);

        m->seen++;
        if (v->action < SHADOW_ACTION_COUNT)
            m->actions[v->action]++;
        if (v->quarantine != NULL)
            m->quarantine++;
        if (v->n_edits > 0)
            m->edit++;
        if (v->n_rcpts > 0)
            m->rcpt_verdicts++;
        m->rcpts_refused += v->n_rcpts;
        add_latency(m, v);
    }
    /* After the verdicts, so that milters are listed in chain order. */
    if (msg->decided_by != NULL && msg->outcome != SHADOW_OUTCOME_DELIVERED)
        milter_get(s, msg->decided_by)->decided++;
}

/* summary_record - ReportRecordFunc: count a record */
static void
summary_record(const ShadowLogRecord *rec, gpointer data)
{
    Summary *s = data;

    if (rec->kind == SHADOW_LOG_CONNECTION) {
        if (rec->connection.open)
            s->connections++;
        return;
    }
    add_message(s, &rec->message);
}

/* count_share - "12 (40.0%)" */
static char *
count_share(guint64 n, guint64 total)
{
    g_autofree char *share = report_share(n, total);

    return g_strdup_printf("%" G_GUINT64_FORMAT " (%s)", n, share);
}

/* u64 - a count as text */
static char *
u64(guint64 n)
{
    return g_strdup_printf("%" G_GUINT64_FORMAT, n);
}

/* milter_row_value - the count of row r of the per-milter table */
static guint64
milter_row_value(const MilterStats *m, guint r)
{
    static const ShadowAction order[] = {
        SHADOW_ACTION_ACCEPT,   SHADOW_ACTION_CONTINUE,    SHADOW_ACTION_REJECT,
        SHADOW_ACTION_TEMPFAIL, SHADOW_ACTION_DISCARD,     SHADOW_ACTION_ERROR,
        SHADOW_ACTION_TIMEOUT,  SHADOW_ACTION_UNAVAILABLE, SHADOW_ACTION_OVERFLOW,
    };

    if (r < G_N_ELEMENTS(order))
        return m->actions[order[r]];
    switch (r - G_N_ELEMENTS(order)) {
    case 0:
        return m->quarantine;
    case 1:
        return m->edit;
    case 2:
        return m->rcpt_verdicts;
    default:
        return m->decided;
    }
}

static const char *const milter_rows[] = {
    "accept",      "continue", "reject",     "tempfail", "discard",      "error",         "timeout",
    "unavailable", "overflow", "quarantine", "edit",     "rcpt refusal", "decided chain",
};

/* selected_milters - the milters to show (--milter), in order */
static GPtrArray *
selected_milters(const Summary *s, const ReportOptions *opts)
{
    GPtrArray *out = g_ptr_array_new();

    for (guint i = 0; i < s->milters->len; i++) {
        MilterStats *m = g_ptr_array_index(s->milters, i);

        if (report_milter_selected(opts, m->name))
            g_ptr_array_add(out, m);
    }
    return out;
}

/* text_milters - the per-milter table: one column per milter */
static void
text_milters(GString *out, GPtrArray *ms)
{
    g_autoptr(GPtrArray) heads = g_ptr_array_new_with_free_func(g_free);
    g_autofree char *align = NULL;
    g_autoptr(ReportTable) t = NULL;
    g_autoptr(GPtrArray) cells = g_ptr_array_new_with_free_func(g_free);

    g_ptr_array_add(heads, g_strdup(""));
    for (guint i = 0; i < ms->len; i++)
        g_ptr_array_add(heads, g_strdup(((MilterStats *)g_ptr_array_index(ms, i))->name));
    align = g_strnfill(ms->len + 1, 'r');
    align[0] = 'l';
    t = report_table_new(ms->len + 1, (const char *const *)heads->pdata, align);
    g_ptr_array_add(cells, g_strdup("seen"));
    for (guint i = 0; i < ms->len; i++)
        g_ptr_array_add(cells, u64(((MilterStats *)g_ptr_array_index(ms, i))->seen));
    report_table_addv(t, (char **)cells->pdata);
    for (guint r = 0; r < G_N_ELEMENTS(milter_rows); r++) {
        g_ptr_array_set_size(cells, 0);
        g_ptr_array_add(cells, g_strdup(milter_rows[r]));
        for (guint i = 0; i < ms->len; i++) {
            const MilterStats *m = g_ptr_array_index(ms, i);

            g_ptr_array_add(cells, count_share(milter_row_value(m, r), m->seen));
        }
        report_table_addv(t, (char **)cells->pdata);
    }
    g_string_append(out, "\nPer milter: what each would have done (share of messages it saw)\n");
    report_table_print(t, out, "  ");
}

/* text_rows - a per-hour or per-day table */
static void
text_rows(GString *out, const char *title, guint n, const char *const *labels,
          const RowCounts *counts)
{
    static const char *const heads[] = { "",           "messages",  "delivered",  "rejected",
                                         "tempfailed", "discarded", "quarantined" };
    g_autoptr(ReportTable) t = report_table_new(ROW_COLS + 1, heads, "lrrrrrr");

    for (guint i = 0; i < n; i++) {
        char *cells[ROW_COLS + 1];

        cells[0] = g_strdup(labels[i]);
        for (guint c = 0; c < ROW_COLS; c++)
            cells[c + 1] = u64(counts[i][c]);
        report_table_addv(t, cells);
        for (guint c = 0; c < ROW_COLS + 1; c++)
            g_free(cells[c]);
    }
    g_string_append_printf(out, "\n%s\n", title);
    report_table_print(t, out, "  ");
}

/* text_latency - the latency table */
static void
text_latency(GString *out, GPtrArray *ms)
{
    static const char *const heads[] = { "milter", "answers", "median",  "p95",   "p99",
                                         "max",    "PF>15s",  "PF>150s", "SM>5s", "SM E>150s" };
    g_autoptr(ReportTable) t = report_table_new(G_N_ELEMENTS(heads), heads, "lrrrrrrrrr");

    for (guint i = 0; i < ms->len; i++) {
        const MilterStats *m = g_ptr_array_index(ms, i);
        const ReportHist *h = &m->latency;
        char *cells[G_N_ELEMENTS(heads)] = {
            g_strdup(m->name),
            u64(h->count),
            report_duration_us(report_hist_quantile(h, QUANTILE_MEDIAN)),
            report_duration_us(report_hist_quantile(h, QUANTILE_P95)),
            report_duration_us(report_hist_quantile(h, QUANTILE_P99)),
            report_duration_us(h->count > 0 ? h->max : -1),
            report_share(m->over[0], h->count),
            report_share(m->over[1], h->count),
            report_share(m->over[2], h->count),
            report_share(m->over[3], h->count),
        };

        report_table_addv(t, cells);
        for (guint c = 0; c < G_N_ELEMENTS(cells); c++)
            g_free(cells[c]);
    }
    g_string_append(
        out, "\nLatency per message, summed over stages (median, p95, p99 within 1%), and the\n"
             "share of answers whose slowest stage took over half of a default timeout:\n"
             "PF>15s: Postfix milter_command_timeout 30s (connect to DATA)\n"
             "PF>150s: Postfix milter_content_timeout 300s (header to end of message)\n"
             "SM>5s: Sendmail T=S/R 10s (any stage but end of message)\n"
             "SM E>150s: Sendmail T=E 5m (end of message)\n");
    report_table_print(t, out, "  ");
}

/* text_report - the summary for people */
static void
text_report(GString *out, const Summary *s, const ReportOptions *opts, const ReportStats *st)
{
    g_autoptr(GPtrArray) ms = selected_milters(s, opts);
    g_autofree char *first = report_time_text(st->first_ms);
    g_autofree char *last = report_time_text(st->last_ms);
    static const char *const oheads[] = { "outcome", "messages", "share" };
    g_autoptr(ReportTable) ot = report_table_new(3, oheads, "lrr");
    static const char *const dheads[] = { "milter", "messages", "share" };
    g_autoptr(ReportTable) dt = report_table_new(3, dheads, "lrr");
    g_autofree const char **hour_labels = g_new0(const char *, HOURS_PER_DAY);
    g_autofree const char **day_labels = g_new0(const char *, s->days->len + 1);
    g_autofree RowCounts *day_counts = g_new0(RowCounts, s->days->len + 1);
    char hour_text[HOURS_PER_DAY][8];
    guint first_hour = 0, last_hour = HOURS_PER_DAY - 1;

    g_string_append_printf(out, "shadow-report summary: %s to %s\n\n", first, last);
    g_string_append_printf(out,
                           "Totals\n  connections  %" G_GUINT64_FORMAT
                           "\n  messages     %" G_GUINT64_FORMAT
                           "\n  recipients   %" G_GUINT64_FORMAT "\n",
                           s->connections, s->messages, s->recipients);
    for (guint o = 0; o < SHADOW_OUTCOME_COUNT; o++) {
        g_autofree char *n = u64(s->outcomes[o]);
        g_autofree char *share = report_share(s->outcomes[o], s->messages);

        report_table_add(ot, shadow_outcome_name((ShadowOutcome)o), n, share, NULL);
    }
    g_string_append(out, "\nEnforced chain: what it would have done\n");
    report_table_print(ot, out, "  ");
    {
        g_autofree char *pr = count_share(s->partly_refused, s->messages);
        g_autofree char *inc = count_share(s->incomplete, s->messages);
        g_autofree char *ab = count_share(s->aborted, s->messages);

        g_string_append_printf(out,
                               "  delivered with some recipients refused: %s\n"
                               "  prediction incomplete (a milter gave no verdict): %s\n"
                               "  aborted by the MTA before end of message: %s\n",
                               pr, inc, ab);
    }
    for (guint i = 0; i < ms->len; i++) {
        const MilterStats *m = g_ptr_array_index(ms, i);
        g_autofree char *n = u64(m->decided);
        g_autofree char *share = report_share(m->decided, s->messages);

        report_table_add(dt, m->name, n, share, NULL);
    }
    g_string_append(out, "\nDecided by (messages not delivered, share of all messages)\n");
    report_table_print(dt, out, "  ");
    text_milters(out, ms);
    for (guint h = 0; h < HOURS_PER_DAY; h++) {
        g_snprintf(hour_text[h], sizeof(hour_text[h]), "%02u:00", h);
        hour_labels[h] = hour_text[h];
    }
    /* Hours with no messages before the first busy hour and after the last are left out. */
    while (first_hour < HOURS_PER_DAY - 1 && s->hours[first_hour][0] == 0)
        first_hour++;
    while (last_hour > first_hour && s->hours[last_hour][0] == 0)
        last_hour--;
    text_rows(out, s->days->len > 1 ? "Per hour of the day (totals over all days)" : "Per hour",
              s->messages > 0 ? last_hour - first_hour + 1 : 0, hour_labels + first_hour,
              (const RowCounts *)s->hours + first_hour);
    if (s->days->len > 1) {
        for (guint d = 0; d < s->days->len; d++) {
            const DayRow *row = &g_array_index(s->days, DayRow, d);

            day_labels[d] = row->label;
            memcpy(day_counts[d], row->counts, sizeof(row->counts));
        }
        text_rows(out, "Per day", s->days->len, day_labels, day_counts);
    }
    text_latency(out, ms);
    report_footer_text(out, st);
}

/* json_counts - "messages" and each outcome of a row */
static void
json_row(ShadowJson *j, const char *key, const char *label, const guint64 *counts)
{
    shadow_json_object_begin(j, NULL);
    shadow_json_str(j, key, label);
    shadow_json_int(j, "messages", (gint64)counts[0]);
    for (guint o = 0; o < SHADOW_OUTCOME_COUNT; o++)
        shadow_json_int(j, shadow_outcome_name((ShadowOutcome)o), (gint64)counts[1 + o]);
    shadow_json_object_end(j);
}

/* json_milter - one milter's object */
static void
json_milter(ShadowJson *j, const MilterStats *m)
{
    shadow_json_object_begin(j, m->name);
    shadow_json_int(j, "seen", (gint64)m->seen);
    for (guint a = 0; a < SHADOW_ACTION_COUNT; a++)
        shadow_json_int(j, shadow_action_name((ShadowAction)a), (gint64)m->actions[a]);
    shadow_json_int(j, "quarantine", (gint64)m->quarantine);
    shadow_json_int(j, "edit", (gint64)m->edit);
    shadow_json_int(j, "rcpt_refusal", (gint64)m->rcpt_verdicts);
    shadow_json_int(j, "rcpts_refused", (gint64)m->rcpts_refused);
    shadow_json_int(j, "decided", (gint64)m->decided);
    shadow_json_object_begin(j, "latency_us");
    shadow_json_int(j, "answers", (gint64)m->latency.count);
    shadow_json_int(j, "median", report_hist_quantile(&m->latency, QUANTILE_MEDIAN));
    shadow_json_int(j, "p95", report_hist_quantile(&m->latency, QUANTILE_P95));
    shadow_json_int(j, "p99", report_hist_quantile(&m->latency, QUANTILE_P99));
    shadow_json_int(j, "max", m->latency.count > 0 ? m->latency.max : -1);
    shadow_json_int(j, "postfix_command_over_half", (gint64)m->over[0]);
    shadow_json_int(j, "postfix_content_over_half", (gint64)m->over[1]);
    shadow_json_int(j, "sendmail_sr_over_half", (gint64)m->over[2]);
    shadow_json_int(j, "sendmail_e_over_half", (gint64)m->over[3]);
    shadow_json_object_end(j);
    shadow_json_object_end(j);
}

/* json_report - the summary as one JSON object */
static void
json_report(GString *out, const Summary *s, const ReportOptions *opts, const ReportStats *st)
{
    g_autoptr(GPtrArray) ms = selected_milters(s, opts);
    ShadowJson j;

    shadow_json_begin(&j, out);
    shadow_json_int(&j, "connections", (gint64)s->connections);
    shadow_json_int(&j, "messages", (gint64)s->messages);
    shadow_json_int(&j, "recipients", (gint64)s->recipients);
    shadow_json_object_begin(&j, "outcomes");
    for (guint o = 0; o < SHADOW_OUTCOME_COUNT; o++)
        shadow_json_int(&j, shadow_outcome_name((ShadowOutcome)o), (gint64)s->outcomes[o]);
    shadow_json_object_end(&j);
    shadow_json_int(&j, "partly_refused", (gint64)s->partly_refused);
    shadow_json_int(&j, "incomplete", (gint64)s->incomplete);
    shadow_json_int(&j, "aborted", (gint64)s->aborted);
    shadow_json_object_begin(&j, "decided_by");
    for (guint i = 0; i < ms->len; i++) {
        const MilterStats *m = g_ptr_array_index(ms, i);

        shadow_json_int(&j, m->name, (gint64)m->decided);
    }
    shadow_json_object_end(&j);
    shadow_json_object_begin(&j, "milters");
    for (guint i = 0; i < ms->len; i++)
        json_milter(&j, g_ptr_array_index(ms, i));
    shadow_json_object_end(&j);
    shadow_json_array_begin(&j, "hours");
    for (guint h = 0; h < HOURS_PER_DAY; h++) {
        char label[8];

        g_snprintf(label, sizeof(label), "%02u", h);
        json_row(&j, "hour", label, s->hours[h]);
    }
    shadow_json_array_end(&j);
    shadow_json_array_begin(&j, "days");
    for (guint d = 0; d < s->days->len; d++) {
        const DayRow *row = &g_array_index(s->days, DayRow, d);

        json_row(&j, "day", row->label, row->counts);
    }
    shadow_json_array_end(&j);
    report_footer_json(&j, st);
    shadow_json_end(&j);
    g_string_append_c(out, '\n');
}

/* csv_num - one "section,name,field,value" record */
static void
csv_num(GString *out, const char *section, const char *name, const char *field, gint64 value)
{
    char num[32];

    g_snprintf(num, sizeof(num), "%" G_GINT64_FORMAT, value);
    report_csv_row(out, section, name, field, num, NULL);
}

/* csv_report - the summary as section,name,field,value records */
static void
csv_report(GString *out, const Summary *s, const ReportOptions *opts, const ReportStats *st)
{
    g_autoptr(GPtrArray) ms = selected_milters(s, opts);

    report_csv_row(out, "section", "name", "field", "value", NULL);
    csv_num(out, "totals", "", "connections", (gint64)s->connections);
    csv_num(out, "totals", "", "messages", (gint64)s->messages);
    csv_num(out, "totals", "", "recipients", (gint64)s->recipients);
    csv_num(out, "totals", "", "partly_refused", (gint64)s->partly_refused);
    csv_num(out, "totals", "", "incomplete", (gint64)s->incomplete);
    csv_num(out, "totals", "", "aborted", (gint64)s->aborted);
    csv_num(out, "totals", "", "damaged", (gint64)st->damaged);
    for (guint o = 0; o < SHADOW_OUTCOME_COUNT; o++)
        csv_num(out, "outcome", "", shadow_outcome_name((ShadowOutcome)o), (gint64)s->outcomes[o]);
    for (guint i = 0; i < ms->len; i++) {
        const MilterStats *m = g_ptr_array_index(ms, i);

        csv_num(out, "milter", m->name, "seen", (gint64)m->seen);
        for (guint a = 0; a < SHADOW_ACTION_COUNT; a++)
            csv_num(out, "milter", m->name, shadow_action_name((ShadowAction)a),
                    (gint64)m->actions[a]);
        csv_num(out, "milter", m->name, "quarantine", (gint64)m->quarantine);
        csv_num(out, "milter", m->name, "edit", (gint64)m->edit);
        csv_num(out, "milter", m->name, "rcpt_refusal", (gint64)m->rcpt_verdicts);
        csv_num(out, "milter", m->name, "rcpts_refused", (gint64)m->rcpts_refused);
        csv_num(out, "milter", m->name, "decided", (gint64)m->decided);
        csv_num(out, "latency_us", m->name, "answers", (gint64)m->latency.count);
        csv_num(out, "latency_us", m->name, "median",
                report_hist_quantile(&m->latency, QUANTILE_MEDIAN));
        csv_num(out, "latency_us", m->name, "p95", report_hist_quantile(&m->latency, QUANTILE_P95));
        csv_num(out, "latency_us", m->name, "p99", report_hist_quantile(&m->latency, QUANTILE_P99));
        csv_num(out, "latency_us", m->name, "max", m->latency.count > 0 ? m->latency.max : -1);
    }
    for (guint h = 0; h < HOURS_PER_DAY; h++) {
        char label[8];

        g_snprintf(label, sizeof(label), "%02u", h);
        csv_num(out, "hour", label, "messages", (gint64)s->hours[h][0]);
        for (guint o = 0; o < SHADOW_OUTCOME_COUNT; o++)
            csv_num(out, "hour", label, shadow_outcome_name((ShadowOutcome)o),
                    (gint64)s->hours[h][1 + o]);
    }
    for (guint d = 0; d < s->days->len; d++) {
        const DayRow *row = &g_array_index(s->days, DayRow, d);

        csv_num(out, "day", row->label, "messages", (gint64)row->counts[0]);
        for (guint o = 0; o < SHADOW_OUTCOME_COUNT; o++)
            csv_num(out, "day", row->label, shadow_outcome_name((ShadowOutcome)o),
                    (gint64)row->counts[1 + o]);
    }
}

/* report_summary - the summary subcommand */
int
report_summary(int argc, char **argv)
{
    g_autoptr(GOptionContext) ctx = g_option_context_new("[FILE...] - totals of a shadow trial");
    ReportOptions opts = { 0 };
    ReportStats st = { 0 };
    Summary s = { 0 };
    g_autoptr(GError) error = NULL;
    g_autoptr(GString) out = g_string_new(NULL);
    int rc;

    g_option_context_set_summary(
        ctx, "Totals, what each milter and the enforced chain would have done, per hour and\n"
             "per day, and latency against the MTAs' default milter timeouts.");
    rc = report_parse_args(ctx, &argc, &argv, &opts);
    if (rc != REPORT_EXIT_OK)
        goto done;
    report_options_add_files(&opts, argc, argv, 1);
    s.milters = g_ptr_array_new_with_free_func(milter_stats_free);
    s.days = g_array_new(FALSE, TRUE, sizeof(DayRow));
    s.hour_end = G_MININT64;
    if (!report_read(&opts, summary_record, &s, &st, &error)) {
        g_printerr("shadow-report: %s\n", error->message);
        rc = report_exit_code(error);
        goto done;
    }
    if (opts.fmt == REPORT_FORMAT_JSON)
        json_report(out, &s, &opts, &st);
    else if (opts.fmt == REPORT_FORMAT_CSV)
        csv_report(out, &s, &opts, &st);
    else
        text_report(out, &s, &opts, &st);
    report_write(out, opts.fmt);
done:
    g_clear_pointer(&s.milters, g_ptr_array_unref);
    g_clear_pointer(&s.days, g_array_unref);
    report_stats_clear(&st);
    report_options_clear(&opts);
    return rc;
}
