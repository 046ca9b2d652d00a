/* SPDX-License-Identifier: MIT */
/*
 * NAME
 *	whatif - shadow-report whatif: enforcing only some milters, in an order
 * SYNOPSIS
 *	shadow-report whatif MILTER[,MILTER...] [options] [--log FILE]... [FILE...]
 * DESCRIPTION
 *	For each message, folds the verdicts of the named milters, in the
 *	order given, with shadow_predict() (lib/shadow_verdict.h), the rule
 *	shadowd itself predicts with, and sets the result against the outcome
 *	shadowd logged for the full chain. A message is blocked when its
 *	outcome is rejected, tempfailed or discarded; quarantined is counted
 *	on its own.
 *
 *	Reported: the outcomes of the subset and of the full chain, the
 *	messages newly blocked (blocked by the subset, not by the full chain)
 *	and newly passed (the reverse), which milter of the subset decided,
 *	and for each milter the messages it would block on its own, its unique
 *	catches (no other milter of the subset would block them on its own),
 *	and the overlap matrix: messages both of two milters would block on
 *	their own. A milter with no verdict for a message takes no part in it
 *	(counted as "no verdict").
 */

/* System library. */
#include <string.h>

/* Application. */
#include "report.h"

/* Milters a subset may name (the overlap matrix is this square). */
#define WHATIF_MAX_MILTERS 32

/* Whatif - the state of the whatif subcommand */
typedef struct {
    const ReportOptions *opts;
    char **names; /* the subset, in order */
    guint n;
    char **chain; /* the full chain's milters, as first seen */
    guint64 messages;
    guint64 outcomes[SHADOW_OUTCOME_COUNT];
    guint64 full[SHADOW_OUTCOME_COUNT];
    guint64 newly_blocked, newly_passed, changed;
    guint64 partly; /* delivered by the subset with some recipients refused */
    guint64 decided[WHATIF_MAX_MILTERS];
    guint64 missing[WHATIF_MAX_MILTERS];
    guint64 unique[WHATIF_MAX_MILTERS];
    guint64 overlap[WHATIF_MAX_MILTERS][WHATIF_MAX_MILTERS];
} Whatif;

/* blocked - does the outcome keep the message from its recipients? */
static gboolean
blocked(ShadowOutcome o)
{
    return o == SHADOW_OUTCOME_REJECTED || o == SHADOW_OUTCOME_TEMPFAILED ||
           o == SHADOW_OUTCOME_DISCARDED;
}

/* find_verdict - the verdict of milter name in a message, or NULL */
static const ShadowLogVerdict *
find_verdict(const ShadowLogMessage *m, const char *name)
{
    for (guint i = 0; i < m->n_verdicts; i++)
        if (g_strcmp0(m->verdicts[i].milter, name) == 0)
            return &m->verdicts[i];
    return NULL;
}

/* whatif_record - ReportRecordFunc: fold one message both ways */
static void
whatif_record(const ShadowLogRecord *rec, gpointer data)
{
    Whatif *w = data;
    const ShadowLogMessage *m = &rec->message;
    ShadowVerdict *conv[WHATIF_MAX_MILTERS] = { 0 };
    ShadowVerdict *chain[WHATIF_MAX_MILTERS];
    guint index[WHATIF_MAX_MILTERS];
    gboolean alone[WHATIF_MAX_MILTERS] = { 0 };
    guint n = 0;
    ShadowPrediction p;

    if (rec->kind != SHADOW_LOG_MESSAGE)
        return;
    if (w->chain == NULL && m->n_verdicts > 0) {
        w->chain = g_new0(char *, m->n_verdicts + 1);
        for (guint i = 0; i < m->n_verdicts; i++)
            w->chain[i] = g_strdup(m->verdicts[i].milter);
    }
    w->messages++;
    for (guint i = 0; i < w->n; i++) {
        const ShadowLogVerdict *v = find_verdict(m, w->names[i]);

        if (v == NULL) {
            w->missing[i]++;
            continue;
        }
        conv[i] = shadow_log_verdict_to_verdict(v);
        chain[n] = conv[i];
        index[n] = i;
        n++;
    }
    shadow_predict(chain, n, m->rcpts, m->n_rcpts, &p);
    if (p.outcome < SHADOW_OUTCOME_COUNT)
        w->outcomes[p.outcome]++;
    if (m->outcome < SHADOW_OUTCOME_COUNT)
        w->full[m->outcome]++;
    if (blocked(p.outcome) && !blocked(m->outcome))
        w->newly_blocked++;
    if (!blocked(p.outcome) && blocked(m->outcome))
        w->newly_passed++;
    if (p.outcome != m->outcome)
        w->changed++;
    if (p.outcome == SHADOW_OUTCOME_DELIVERED && p.refused->len > 0)
        w->partly++;
    if (p.decided_by != NULL && p.outcome != SHADOW_OUTCOME_DELIVERED)
        for (guint k = 0; k < n; k++)
            if (strcmp(p.decided_by, w->names[index[k]]) == 0)
                w->decided[index[k]]++;
    shadow_prediction_clear(&p);
    for (guint k = 0; k < n; k++) {
        shadow_predict(&chain[k], 1, m->rcpts, m->n_rcpts, &p);
        alone[index[k]] = blocked(p.outcome);
        shadow_prediction_clear(&p);
    }
    for (guint i = 0; i < w->n; i++) {
        guint others = 0;

        if (!alone[i])
            continue;
        for (guint j = 0; j < w->n; j++) {
            if (alone[j]) {
                w->overlap[i][j]++;
                others += j != i;
            }
        }
        if (others == 0)
            w->unique[i]++;
    }
    for (guint i = 0; i < w->n; i++)
        if (conv[i] != NULL)
            shadow_verdict_free(conv[i]);
}

/* u64 - a count as text */
static char *
u64(guint64 n)
{
    return g_strdup_printf("%" G_GUINT64_FORMAT, n);
}

/* sum_blocked - blocked messages of an outcome table */
static guint64
sum_blocked(const guint64 *o)
{
    return o[SHADOW_OUTCOME_REJECTED] + o[SHADOW_OUTCOME_TEMPFAILED] + o[SHADOW_OUTCOME_DISCARDED];
}

/* text_report - whatif for people */
static void
text_report(GString *out, const Whatif *w, const ReportStats *st)
{
    static const char *const oheads[] = { "outcome", "subset", "full chain" };
    g_autoptr(ReportTable) ot = report_table_new(3, oheads, "lrr");
    static const char *const mheads[] = { "milter", "decided", "blocks alone", "unique",
                                          "no verdict" };
    g_autoptr(ReportTable) mt = report_table_new(5, mheads, "lrrrr");
    g_autofree char *subset_raw = g_strjoinv(", ", w->names);
    g_autofree char *full_raw = w->chain != NULL ? g_strjoinv(", ", w->chain) : g_strdup("-");
    g_autofree char *subset = report_clean(subset_raw);
    g_autofree char *full = report_clean(full_raw);
    g_autoptr(GPtrArray) heads = g_ptr_array_new_with_free_func(g_free);
    g_autoptr(ReportTable) xt = NULL;
    g_autofree char *align = g_strnfill(w->n + 1, 'r');

    g_string_append_printf(out,
                           "shadow-report whatif: enforcing only %s, in that order\n"
                           "against the full chain as logged (%s); %" G_GUINT64_FORMAT
                           " messages\n\n",
                           subset, full, w->messages);
    for (guint o = 0; o < SHADOW_OUTCOME_COUNT; o++) {
        g_autofree char *a = u64(w->outcomes[o]);
        g_autofree char *b = u64(w->full[o]);

        report_table_add(ot, shadow_outcome_name((ShadowOutcome)o), a, b, NULL);
    }
    {
        g_autofree char *a = u64(sum_blocked(w->outcomes));
        g_autofree char *b = u64(sum_blocked(w->full));

        report_table_add(ot, "blocked", a, b, NULL);
    }
    report_table_print(ot, out, "  ");
    {
        g_autofree char *nb = report_share(w->newly_blocked, w->messages);
        g_autofree char *np = report_share(w->newly_passed, w->messages);
        g_autofree char *pr = report_share(w->partly, w->messages);

        g_string_append_printf(
            out,
            "\n  newly blocked  %" G_GUINT64_FORMAT
            " (%s): blocked by the subset, not by the full chain\n"
            "  newly passed   %" G_GUINT64_FORMAT
            " (%s): blocked by the full chain, not by the subset\n"
            "  outcome changed in %" G_GUINT64_FORMAT
            " messages; delivered with some recipients refused: %" G_GUINT64_FORMAT " (%s)\n",
            w->newly_blocked, nb, w->newly_passed, np, w->changed, w->partly, pr);
    }
    for (guint i = 0; i < w->n; i++) {
        g_autofree char *d = u64(w->decided[i]);
        g_autofree char *a = u64(w->overlap[i][i]);
        g_autofree char *u = u64(w->unique[i]);
        g_autofree char *m = u64(w->missing[i]);

        report_table_add(mt, w->names[i], d, a, u, m, NULL);
    }
    g_string_append(out, "\nPer milter: messages it decided in the subset, would block on its "
                         "own, and\nunique catches (no other milter of the subset would block "
                         "them on its own)\n");
    report_table_print(mt, out, "  ");
    g_ptr_array_add(heads, g_strdup(""));
    for (guint i = 0; i < w->n; i++)
        g_ptr_array_add(heads, g_strdup(w->names[i]));
    align[0] = 'l';
    xt = report_table_new(w->n + 1, (const char *const *)heads->pdata, align);
    for (guint i = 0; i < w->n; i++) {
        g_autoptr(GPtrArray) row = g_ptr_array_new_with_free_func(g_free);

        g_ptr_array_add(row, g_strdup(w->names[i]));
        for (guint j = 0; j < w->n; j++)
            g_ptr_array_add(row, u64(w->overlap[i][j]));
        report_table_addv(xt, (char **)row->pdata);
    }
    g_string_append(out, "\nOverlap: messages both milters would block on their own\n");
    report_table_print(xt, out, "  ");
    report_footer_text(out, st);
}

/* json_outcomes - an outcome -> count object */
static void
json_outcomes(ShadowJson *j, const char *key, const guint64 *o)
{
    shadow_json_object_begin(j, key);
    for (guint k = 0; k < SHADOW_OUTCOME_COUNT; k++)
        shadow_json_int(j, shadow_outcome_name((ShadowOutcome)k), (gint64)o[k]);
    shadow_json_object_end(j);
}

/* json_report - whatif as one JSON object */
static void
json_report(GString *out, const Whatif *w, const ReportStats *st)
{
    ShadowJson j;

    shadow_json_begin(&j, out);
    shadow_json_array_begin(&j, "subset");
    for (guint i = 0; i < w->n; i++)
        shadow_json_str(&j, NULL, w->names[i]);
    shadow_json_array_end(&j);
    shadow_json_int(&j, "messages", (gint64)w->messages);
    json_outcomes(&j, "outcomes", w->outcomes);
    json_outcomes(&j, "full_outcomes", w->full);
    shadow_json_int(&j, "blocked", (gint64)sum_blocked(w->outcomes));
    shadow_json_int(&j, "full_blocked", (gint64)sum_blocked(w->full));
    shadow_json_int(&j, "newly_blocked", (gint64)w->newly_blocked);
    shadow_json_int(&j, "newly_passed", (gint64)w->newly_passed);
    shadow_json_int(&j, "changed", (gint64)w->changed);
    shadow_json_int(&j, "partly_refused", (gint64)w->partly);
    shadow_json_object_begin(&j, "milters");
    for (guint i = 0; i < w->n; i++) {
        shadow_json_object_begin(&j, w->names[i]);
        shadow_json_int(&j, "decided", (gint64)w->decided[i]);
        shadow_json_int(&j, "blocks_alone", (gint64)w->overlap[i][i]);
        shadow_json_int(&j, "unique", (gint64)w->unique[i]);
        shadow_json_int(&j, "no_verdict", (gint64)w->missing[i]);
        shadow_json_object_begin(&j, "overlap");
        for (guint k = 0; k < w->n; k++)
            shadow_json_int(&j, w->names[k], (gint64)w->overlap[i][k]);
        shadow_json_object_end(&j);
        shadow_json_object_end(&j);
    }
    shadow_json_object_end(&j);
    report_footer_json(&j, st);
    shadow_json_end(&j);
    g_string_append_c(out, '\n');
}

/* csv_num - one "section,name,field,value" record */
static void
csv_num(GString *out, const char *section, const char *name, const char *field, guint64 value)
{
    g_autofree char *v = u64(value);

    report_csv_row(out, section, name, field, v, NULL);
}

/* csv_report - whatif as section,name,field,value records */
static void
csv_report(GString *out, const Whatif *w)
{
    report_csv_row(out, "section", "name", "field", "value", NULL);
    csv_num(out, "totals", "", "messages", w->messages);
    csv_num(out, "totals", "", "blocked", sum_blocked(w->outcomes));
    csv_num(out, "totals", "", "full_blocked", sum_blocked(w->full));
    csv_num(out, "totals", "", "newly_blocked", w->newly_blocked);
    csv_num(out, "totals", "", "newly_passed", w->newly_passed);
    csv_num(out, "totals", "", "changed", w->changed);
    csv_num(out, "totals", "", "partly_refused", w->partly);
    for (guint o = 0; o < SHADOW_OUTCOME_COUNT; o++) {
        csv_num(out, "outcome", "subset", shadow_outcome_name((ShadowOutcome)o), w->outcomes[o]);
        csv_num(out, "outcome", "full", shadow_outcome_name((ShadowOutcome)o), w->full[o]);
    }
    for (guint i = 0; i < w->n; i++) {
        csv_num(out, "milter", w->names[i], "decided", w->decided[i]);
        csv_num(out, "milter", w->names[i], "blocks_alone", w->overlap[i][i]);
        csv_num(out, "milter", w->names[i], "unique", w->unique[i]);
        csv_num(out, "milter", w->names[i], "no_verdict", w->missing[i]);
        for (guint k = 0; k < w->n; k++) {
            g_autofree char *field = g_strconcat("overlap:", w->names[k], NULL);

            csv_num(out, "milter", w->names[i], field, w->overlap[i][k]);
        }
    }
}

/* parse_subset - "a,b,c" into names; FALSE with a usage error */
static gboolean
parse_subset(Whatif *w, const char *arg, GError **error)
{
    w->names = g_strsplit(arg, ",", -1);
    w->n = g_strv_length(w->names);
    if (w->n > WHATIF_MAX_MILTERS) {
        g_set_error(error, REPORT_ERROR, REPORT_ERROR_USAGE, "whatif: at most %d milters, not %u",
                    WHATIF_MAX_MILTERS, w->n);
        return FALSE;
    }
    for (guint i = 0; i < w->n; i++) {
        if (w->names[i][0] == '\0') {
            g_set_error(error, REPORT_ERROR, REPORT_ERROR_USAGE,
                        "whatif: empty milter name in \"%s\"", arg);
            return FALSE;
        }
        for (guint k = 0; k < i; k++) {
            if (strcmp(w->names[i], w->names[k]) == 0) {
                g_set_error(error, REPORT_ERROR, REPORT_ERROR_USAGE,
                            "whatif: milter \"%s\" named twice in \"%s\"", w->names[i], arg);
                return FALSE;
            }
        }
    }
    return TRUE;
}

/* report_whatif - the whatif subcommand */
int
report_whatif(int argc, char **argv)
{
    g_autoptr(GOptionContext) ctx = g_option_context_new(
        "MILTER[,MILTER...] [FILE...] - what enforcing only these milters would have done");
    ReportOptions opts = { 0 };
    ReportStats st = { 0 };
    Whatif *w = g_new0(Whatif, 1);
    g_autoptr(GError) error = NULL;
    g_autoptr(GString) out = g_string_new(NULL);
    int rc;

    g_option_context_set_summary(
        ctx, "Folds the verdicts of the named milters, in that order, as shadowd predicts the\n"
             "enforced chain, and compares with the full chain: newly blocked and newly passed\n"
             "messages, each milter's unique catches, and their overlap.");
    rc = report_parse_args(ctx, &argc, &argv, &opts);
    if (rc != REPORT_EXIT_OK)
        goto done;
    if (argc < 2) {
        g_printerr("shadow-report: whatif: missing MILTER[,MILTER...]\n");
        rc = REPORT_EXIT_USAGE;
        goto done;
    }
    if (!parse_subset(w, argv[1], &error)) {
        g_printerr("shadow-report: %s\n", error->message);
        rc = REPORT_EXIT_USAGE;
        goto done;
    }
    report_options_add_files(&opts, argc, argv, 2);
    w->opts = &opts;
    if (!report_read(&opts, whatif_record, w, &st, &error)) {
        g_printerr("shadow-report: %s\n", error->message);
        rc = report_exit_code(error);
        goto done;
    }
    if (opts.fmt == REPORT_FORMAT_JSON)
        json_report(out, w, &st);
    else if (opts.fmt == REPORT_FORMAT_CSV)
        csv_report(out, w);
    else
        text_report(out, w, &st);
    report_write(out, opts.fmt);
done:
    g_strfreev(w->names);
    g_strfreev(w->chain);
    g_free(w);
    report_stats_clear(&st);
    report_options_clear(&opts);
    return rc;
}
