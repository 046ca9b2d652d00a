/* SPDX-License-Identifier: MIT */
/*
 * NAME
 *	explain - shadow-report explain: everything about one message
 * SYNOPSIS
 *	shadow-report explain ID [options] [--log FILE]... [FILE...]
 * DESCRIPTION
 *	Finds the messages whose queue ID, Message-ID (with or without its
 *	angle brackets) or shadowd message id (conn.seq) is ID, and prints for
 *	each the envelope, every child's verdict in chain order with its stage,
 *	reply, refused recipients, quarantine, edits and latency per stage,
 *	and the outcome shadowd predicted for the enforced chain: in a form
 *	that can be pasted into a ticket. The report is collected in memory
 *	and written at the end (only the matching messages are kept, as text
 *	or JSON, not the log); values from the log are cleaned to one line of
 *	text each (controls as '?'). No match is exit 1.
 */

/* System library. */
#include <string.h>

/* Application. */
#include "report.h"

/* Explain - the state of the explain subcommand */
typedef struct {
    const ReportOptions *opts;
    const char *id;
    guint64 found;
    GString *out;
    ShadowJson json;
} Explain;

/* id_matches - is msg the message id names? */
static gboolean
id_matches(const ShadowLogMessage *msg, const char *id)
{
    gsize len = strlen(id);

    if (g_strcmp0(msg->queue_id, id) == 0 || g_strcmp0(msg->msg, id) == 0 ||
        g_strcmp0(msg->message_id, id) == 0)
        return TRUE;
    /* A Message-ID given without its angle brackets. */
    if (msg->message_id != NULL && msg->message_id[0] == '<' && len + 2 == strlen(msg->message_id))
        return strncmp(msg->message_id + 1, id, len) == 0;
    return FALSE;
}

/* edit_text - one edit for people */
static char *
edit_text(const ShadowLogEdit *e)
{
    const char *op = report_or_dash(e->op);

    if (strcmp(op, "add_header") == 0)
        return g_strdup_printf("add header %s: %s", report_or_dash(e->name),
                               report_or_dash(e->value));
    if (strcmp(op, "insert_header") == 0)
        return g_strdup_printf("insert header at %" G_GINT64_FORMAT " %s: %s", e->index,
                               report_or_dash(e->name), report_or_dash(e->value));
    if (strcmp(op, "change_header") == 0)
        return g_strdup_printf("change header %s[%" G_GINT64_FORMAT "] to: %s",
                               report_or_dash(e->name), e->index, report_or_dash(e->value));
    if (strcmp(op, "delete_header") == 0)
        return g_strdup_printf("delete header %s[%" G_GINT64_FORMAT "]", report_or_dash(e->name),
                               e->index);
    if (strcmp(op, "replace_body") == 0)
        return g_strdup_printf("replace body (%" G_GINT64_FORMAT " bytes)", e->size);
    if (strcmp(op, "change_from") == 0 || strcmp(op, "add_rcpt") == 0)
        return g_strdup_printf(
            "%s %s%s%s", strcmp(op, "add_rcpt") == 0 ? "add rcpt" : "change from",
            report_or_dash(e->addr), e->args != NULL ? " " : "", e->args != NULL ? e->args : "");
    if (strcmp(op, "delete_rcpt") == 0)
        return g_strdup_printf("delete rcpt %s", report_or_dash(e->addr));
    return g_strdup(op);
}

/* reply_text - a reply, quoted, or the MTA's default */
static char *
reply_text(const char *reply)
{
    if (reply == NULL)
        return g_strdup("the MTA's default reply");
    return g_strdup_printf("\"%s\"", reply);
}

/* latency_text - "mail 310 us, rcpt 512 us; total 822 us" */
static char *
latency_text(const ShadowLogVerdict *v, gint64 *total)
{
    GString *s = g_string_new(NULL);

    *total = 0;
    for (guint st = 0; st < SHADOW_STAGE_COUNT; st++) {
        g_autofree char *d = NULL;

        if (v->latency_us[st] < 0)
            continue;
        d = report_duration_us(v->latency_us[st]);
        g_string_append_printf(s, "%s%s %s", s->len > 0 ? ", " : "",
                               shadow_stage_name((ShadowStage)st), d);
        *total += v->latency_us[st];
    }
    if (s->len == 0)
        g_string_append(s, "-");
    else {
        g_autofree char *d = report_duration_us(*total);

        g_string_append_printf(s, "; total %s", d);
    }
    return g_string_free(s, FALSE);
}

/* text_verdict - one child's verdict block; every value from the log cleaned to one line */
static void
text_verdict(GString *out, guint i, const ShadowLogVerdict *v)
{
    g_autoptr(GPtrArray) keep = g_ptr_array_new_with_free_func(g_free);
    gint64 total;
    g_autofree char *lat = latency_text(v, &total);

    g_string_append_printf(out, "  %u. %s: %s", i + 1, report_clean_keep(keep, v->milter),
                           shadow_action_name(v->action));
    if (v->stage == SHADOW_STAGE_NONE)
        g_string_append(out, " (before any stage)");
    else if (v->action == SHADOW_ACTION_CONTINUE || v->action == SHADOW_ACTION_ACCEPT)
        g_string_append_printf(out, " (last stage %s)", shadow_stage_name(v->stage));
    else
        g_string_append_printf(out, " at %s", shadow_stage_name(v->stage));
    if (v->connection)
        g_string_append(out, ", for the whole connection");
    if (v->action == SHADOW_ACTION_REJECT || v->action == SHADOW_ACTION_TEMPFAIL) {
        g_autofree char *r = reply_text(v->reply);

        g_string_append_printf(out, ", reply %s", report_clean_keep(keep, r));
    }
    g_string_append_c(out, '\n');
    if (v->reason != NULL)
        g_string_append_printf(out, "     reason      %s\n", report_clean_keep(keep, v->reason));
    for (guint k = 0; k < v->n_rcpts; k++) {
        g_autofree char *r = reply_text(v->rcpts[k].reply);

        g_string_append_printf(out, "     refused     %s: %s, %s\n",
                               report_clean_keep(keep, v->rcpts[k].rcpt),
                               shadow_action_name(v->rcpts[k].action), report_clean_keep(keep, r));
    }
    if (v->quarantine != NULL)
        g_string_append_printf(out, "     quarantine  %s\n",
                               report_clean_keep(keep, v->quarantine));
    for (guint k = 0; k < v->n_edits; k++) {
        g_autofree char *e = edit_text(&v->edits[k]);

        g_string_append_printf(out, "     edit        %s\n", report_clean_keep(keep, e));
    }
    g_string_append_printf(out, "     latency     %s\n", lat);
}

/* text_envelope - where a message was logged and its envelope; values cleaned to one line */
static void
text_envelope(GString *out, const ShadowLogMessage *m, const ShadowLogRecord *rec)
{
    g_autoptr(GPtrArray) keep = g_ptr_array_new_with_free_func(g_free);
    g_autofree char *ts = report_time_iso(m->ts_ms);
    g_autofree char *size = m->size >= 0 ? g_strdup_printf("%" G_GINT64_FORMAT " bytes", m->size)
                                         : g_strdup("size unknown");
    g_autofree char *dur = m->duration_ms >= 0
                               ? g_strdup_printf("%" G_GINT64_FORMAT " ms", m->duration_ms)
                               : g_strdup("-");

    g_string_append_printf(out, "Message %s %s\n",
                           report_or_dash(report_clean_keep(keep, m->queue_id)),
                           report_or_dash(report_clean_keep(keep, m->message_id)));
    g_string_append_printf(out, "  logged      %s on %s (%s:%" G_GUINT64_FORMAT ")\n", ts,
                           report_or_dash(report_clean_keep(keep, m->host)),
                           report_clean_keep(keep, rec->file), rec->line);
    g_string_append_printf(out, "  shadowd id  %s (connection %s)\n",
                           report_or_dash(report_clean_keep(keep, m->msg)),
                           report_or_dash(report_clean_keep(keep, m->conn)));
    g_string_append_printf(out, "  client      %s %s, HELO %s\n",
                           report_or_dash(report_clean_keep(keep, m->client_name)),
                           report_or_dash(report_clean_keep(keep, m->client_addr)),
                           report_or_dash(report_clean_keep(keep, m->helo)));
    g_string_append_printf(out, "  auth        %s\n",
                           m->auth != NULL ? report_clean_keep(keep, m->auth)
                                           : "- (not authenticated)");
    g_string_append_printf(out, "  from        %s\n",
                           report_or_dash(report_clean_keep(keep, m->from)));
    for (guint i = 0; i < m->n_rcpts; i++)
        g_string_append_printf(out, "  %-11s %s\n", i == 0 ? "to" : "",
                               report_clean_keep(keep, m->rcpts[i]));
    if (m->n_rcpts == 0)
        g_string_append(out, "  to          -\n");
    g_string_append_printf(out, "  size        %s; MTA %s the message; %s from MAIL FROM\n", size,
                           m->mta_ended ? "ended" : "aborted", dur);
}

/* text_message - one message for people; every value from the log cleaned to one line */
static void
text_message(GString *out, const ShadowLogMessage *m, const ShadowLogRecord *rec)
{
    g_autoptr(GPtrArray) keep = g_ptr_array_new_with_free_func(g_free);

    text_envelope(out, m, rec);
    g_string_append(out, "\nVerdicts, in chain order\n");
    for (guint i = 0; i < m->n_verdicts; i++)
        text_verdict(out, i, &m->verdicts[i]);
    if (m->n_verdicts == 0)
        g_string_append(out, "  (none)\n");
    g_string_append_printf(out, "\nPredicted outcome of the enforced chain: %s",
                           shadow_outcome_name(m->outcome));
    if (m->decided_by != NULL)
        g_string_append_printf(out, " by %s at %s", report_clean_keep(keep, m->decided_by),
                               shadow_stage_name(m->stage));
    if (m->outcome == SHADOW_OUTCOME_REJECTED || m->outcome == SHADOW_OUTCOME_TEMPFAILED) {
        g_autofree char *r = reply_text(m->reply);

        g_string_append_printf(out, ", reply %s", report_clean_keep(keep, r));
    }
    if (m->quarantine != NULL)
        g_string_append_printf(out, ", held: %s", report_clean_keep(keep, m->quarantine));
    g_string_append_c(out, '\n');
    for (guint i = 0; i < m->n_refused; i++) {
        g_autofree char *r = reply_text(m->refused[i].reply);

        g_string_append_printf(out, "  refused     %s: %s by %s, %s\n",
                               report_clean_keep(keep, m->refused[i].rcpt),
                               shadow_action_name(m->refused[i].action),
                               report_or_dash(report_clean_keep(keep, m->refused[i].milter)),
                               report_clean_keep(keep, r));
    }
    for (guint i = 0; i < m->n_edits; i++) {
        g_autofree char *e = edit_text(&m->edits[i]);

        g_string_append_printf(out, "  edit        %s (%s)\n", report_clean_keep(keep, e),
                               report_or_dash(report_clean_keep(keep, m->edits[i].milter)));
    }
    if (m->n_unknown > 0) {
        g_string_append(out, "  incomplete: no verdict from");
        for (guint i = 0; i < m->n_unknown; i++)
            g_string_append_printf(out, "%s %s", i > 0 ? "," : "",
                                   report_clean_keep(keep, m->unknown[i]));
        g_string_append(out, " (counted as continue)\n");
    }
}

/* json_edits - an edits array */
static void
json_edits(ShadowJson *j, const ShadowLogEdit *edits, guint n)
{
    shadow_json_array_begin(j, "edits");
    for (guint i = 0; i < n; i++) {
        g_autofree char *text = edit_text(&edits[i]);

        shadow_json_object_begin(j, NULL);
        shadow_json_str(j, "op", edits[i].op);
        if (edits[i].milter != NULL)
            shadow_json_str(j, "milter", edits[i].milter);
        shadow_json_str(j, "text", text);
        shadow_json_object_end(j);
    }
    shadow_json_array_end(j);
}

/* json_rcpts - a refused-recipients array */
static void
json_rcpts(ShadowJson *j, const char *key, const ShadowLogRcpt *r, guint n)
{
    shadow_json_array_begin(j, key);
    for (guint i = 0; i < n; i++) {
        shadow_json_object_begin(j, NULL);
        shadow_json_str(j, "rcpt", r[i].rcpt);
        shadow_json_str(j, "action", shadow_action_name(r[i].action));
        shadow_json_str(j, "reply", r[i].reply);
        if (r[i].milter != NULL)
            shadow_json_str(j, "milter", r[i].milter);
        shadow_json_object_end(j);
    }
    shadow_json_array_end(j);
}

/* json_message - one message object in the "messages" array */
static void
json_message(ShadowJson *j, const ShadowLogMessage *m, const ShadowLogRecord *rec)
{
    g_autofree char *ts = report_time_iso(m->ts_ms);

    shadow_json_object_begin(j, NULL);
    shadow_json_str(j, "ts", ts);
    shadow_json_str(j, "file", rec->file);
    shadow_json_int(j, "line", (gint64)rec->line);
    shadow_json_str(j, "host", m->host);
    shadow_json_str(j, "msg", m->msg);
    shadow_json_str(j, "queue_id", m->queue_id);
    shadow_json_str(j, "message_id", m->message_id);
    shadow_json_str(j, "client_addr", m->client_addr);
    shadow_json_str(j, "client_name", m->client_name);
    shadow_json_str(j, "helo", m->helo);
    shadow_json_str(j, "auth", m->auth);
    shadow_json_str(j, "from", m->from);
    shadow_json_array_begin(j, "rcpts");
    for (guint i = 0; i < m->n_rcpts; i++)
        shadow_json_str(j, NULL, m->rcpts[i]);
    shadow_json_array_end(j);
    shadow_json_array_begin(j, "verdicts");
    for (guint i = 0; i < m->n_verdicts; i++) {
        const ShadowLogVerdict *v = &m->verdicts[i];

        shadow_json_object_begin(j, NULL);
        shadow_json_str(j, "milter", v->milter);
        shadow_json_str(j, "action", shadow_action_name(v->action));
        shadow_json_str(j, "stage", shadow_stage_name(v->stage));
        shadow_json_str(j, "reply", v->reply);
        shadow_json_str(j, "reason", v->reason);
        shadow_json_str(j, "quarantine", v->quarantine);
        json_rcpts(j, "rcpts", v->rcpts, v->n_rcpts);
        json_edits(j, v->edits, v->n_edits);
        shadow_json_object_begin(j, "latency_us");
        for (guint st = 0; st < SHADOW_STAGE_COUNT; st++)
            if (v->latency_us[st] >= 0)
                shadow_json_int(j, shadow_stage_name((ShadowStage)st), v->latency_us[st]);
        shadow_json_object_end(j);
        shadow_json_object_end(j);
    }
    shadow_json_array_end(j);
    shadow_json_str(j, "outcome", shadow_outcome_name(m->outcome));
    shadow_json_str(j, "decided_by", m->decided_by);
    shadow_json_str(j, "stage", m->decided_by != NULL ? shadow_stage_name(m->stage) : NULL);
    shadow_json_str(j, "reply", m->reply);
    shadow_json_str(j, "quarantine", m->quarantine);
    json_rcpts(j, "refused", m->refused, m->n_refused);
    json_edits(j, m->edits, m->n_edits);
    shadow_json_array_begin(j, "unknown");
    for (guint i = 0; i < m->n_unknown; i++)
        shadow_json_str(j, NULL, m->unknown[i]);
    shadow_json_array_end(j);
    shadow_json_object_end(j);
}

/* csv_message - one row per verdict */
static void
csv_message(GString *out, const ShadowLogMessage *m)
{
    for (guint i = 0; i < m->n_verdicts; i++) {
        const ShadowLogVerdict *v = &m->verdicts[i];
        gint64 total;
        g_autofree char *lat = latency_text(v, &total);
        g_autofree char *total_text = g_strdup_printf("%" G_GINT64_FORMAT, total);
        g_autofree char *nr = g_strdup_printf("%u", v->n_rcpts);
        g_autofree char *ne = g_strdup_printf("%u", v->n_edits);
        const char *cells[] = {
            m->queue_id,
            m->message_id,
            m->msg,
            m->host,
            v->milter,
            shadow_action_name(v->action),
            shadow_stage_name(v->stage),
            v->reply,
            v->reason,
            v->quarantine,
            nr,
            ne,
            total_text,
            shadow_outcome_name(m->outcome),
            m->decided_by,
        };

        report_csv_rowv(out, cells, G_N_ELEMENTS(cells));
    }
}

/* explain_record - ReportRecordFunc: write a matching message */
static void
explain_record(const ShadowLogRecord *rec, gpointer data)
{
    Explain *e = data;

    if (rec->kind != SHADOW_LOG_MESSAGE || !id_matches(&rec->message, e->id))
        return;
    e->found++;
    switch (e->opts->fmt) {
    case REPORT_FORMAT_JSON:
        json_message(&e->json, &rec->message, rec);
        break;
    case REPORT_FORMAT_CSV:
        csv_message(e->out, &rec->message);
        break;
    default:
        if (e->found > 1)
            g_string_append(e->out, "\n");
        text_message(e->out, &rec->message, rec);
        break;
    }
}

/* report_explain - the explain subcommand */
int
report_explain(int argc, char **argv)
{
    g_autoptr(GOptionContext) ctx =
        g_option_context_new("ID [FILE...] - everything about one message");
    ReportOptions opts = { 0 };
    ReportStats st = { 0 };
    Explain e = { 0 };
    g_autoptr(GError) error = NULL;
    g_autoptr(GString) out = g_string_new(NULL);
    int rc;

    g_option_context_set_summary(
        ctx, "The envelope, each milter's verdict by stage with reply and latency, edits and\n"
             "the predicted outcome of one message. ID is a queue ID, a Message-ID (brackets\n"
             "optional) or shadowd's message id.");
    rc = report_parse_args(ctx, &argc, &argv, &opts);
    if (rc != REPORT_EXIT_OK)
        goto done;
    if (argc < 2 || argv[1][0] == '\0') {
        g_printerr("shadow-report: explain: missing ID (a queue ID or Message-ID)\n");
        rc = REPORT_EXIT_USAGE;
        goto done;
    }
    report_options_add_files(&opts, argc, argv, 2);
    e.opts = &opts;
    e.id = argv[1];
    e.out = out;
    if (opts.fmt == REPORT_FORMAT_JSON) {
        shadow_json_begin(&e.json, out);
        shadow_json_str(&e.json, "id", e.id);
        shadow_json_array_begin(&e.json, "messages");
    } else if (opts.fmt == REPORT_FORMAT_CSV) {
        report_csv_row(out, "queue_id", "message_id", "msg", "host", "milter", "action", "stage",
                       "reply", "reason", "quarantine", "rcpts_refused", "edits", "latency_us",
                       "outcome", "decided_by", NULL);
    }
    if (!report_read(&opts, explain_record, &e, &st, &error)) {
        g_printerr("shadow-report: %s\n", error->message);
        rc = report_exit_code(error);
        goto done;
    }
    if (opts.fmt == REPORT_FORMAT_JSON) {
        shadow_json_array_end(&e.json);
        report_footer_json(&e.json, &st);
        shadow_json_end(&e.json);
        g_string_append_c(out, '\n');
    } else if (opts.fmt == REPORT_FORMAT_TEXT && st.damaged > 0) {
        g_string_append_printf(
            out, "\nDamaged lines: %" G_GUINT64_FORMAT " (listed on standard error)\n", st.damaged);
    }
    if (e.found == 0) {
        g_printerr("shadow-report: explain: no message with ID \"%s\" in the range\n", e.id);
        rc = REPORT_EXIT_RUNTIME;
        goto done;
    }
    report_write(out, opts.fmt);
done:
    report_stats_clear(&st);
    report_options_clear(&opts);
    return rc;
}
