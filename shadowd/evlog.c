/* SPDX-License-Identifier: MIT */
/*
 * NAME
 *	evlog - the event log: JSON Lines that shadow-report and shadow-graphs read
 * DESCRIPTION
 *	docs/event-log.md documents every record and field. Each record is
 *	built whole in memory and written with one write(2) to a file opened
 *	O_APPEND (a message's verdicts and its message record together), so
 *	lines never interleave and a crash can only tear the last write: its
 *	last line, or leave verdicts without their message, which readers
 *	report. A failed write is reported (once until writes work again) and
 *	never stops mail. The same outcome goes to syslog as one line per
 *	message.
 */

/* Build configuration. */
#include "config.h"

/* System library. */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

/* Shadow libraries. */
#include "shadow_json.h"

/* Application-specific. */
#include "log.h"
#include "shadowd.h"

/* Version of the record format; docs/event-log.md says what each version holds. */
#define EVLOG_FORMAT_VERSION 1

struct _ShadowEventLog {
    char *path;
    int fd;
    gboolean failing; /* the last write failed: do not repeat the warning */
};

/* open_fd - open the log for appending */
static int
open_fd(const char *path, GError **error)
{
    int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);

    if (fd < 0) {
        int e = errno;

        g_set_error(error, G_FILE_ERROR, g_file_error_from_errno(e), "event log %s: open: %s", path,
                    g_strerror(e));
    }
    return fd;
}

/* shadow_event_log_open - open (create) the log; NULL path: no log */
ShadowEventLog *
shadow_event_log_open(const char *path, GError **error)
{
    ShadowEventLog *log = g_new0(ShadowEventLog, 1);

    log->fd = -1;
    if (path != NULL && *path != '\0') {
        log->path = g_strdup(path);
        log->fd = open_fd(path, error);
        if (log->fd < 0) {
            shadow_event_log_close(log);
            return NULL;
        }
    }
    return log;
}

/* shadow_event_log_reopen - after rotation: a new file at the same path */
gboolean
shadow_event_log_reopen(ShadowEventLog *log, GError **error)
{
    int fd;

    if (log->path == NULL)
        return TRUE;
    fd = open_fd(log->path, error);
    if (fd < 0)
        return FALSE;
    if (log->fd >= 0)
        close(log->fd);
    log->fd = fd;
    log->failing = FALSE;
    return TRUE;
}

/* shadow_event_log_close - close and free; NULL is allowed */
void
shadow_event_log_close(ShadowEventLog *log)
{
    if (log == NULL)
        return;
    if (log->fd >= 0)
        close(log->fd);
    g_free(log->path);
    g_free(log);
}

/* emit - write one finished record line */
static void
emit(ShadowEventLog *log, GString *line)
{
    ssize_t n;

    g_string_append_c(line, '\n');
    if (log == NULL || log->fd < 0)
        return;
    do
        n = write(log->fd, line->str, line->len);
    while (n < 0 && errno == EINTR);
    if (n == (ssize_t)line->len) {
        log->failing = FALSE;
        return;
    }
    if (!log->failing)
        shadow_log_error("event log %s: write: %s", log->path,
                         n < 0 ? g_strerror(errno) : "short write");
    log->failing = TRUE;
}

/* timestamp - RFC 3339, UTC, milliseconds (caller frees) */
static char *
timestamp(gint64 real_us)
{
    g_autoptr(GDateTime) t = g_date_time_new_from_unix_utc(real_us / G_USEC_PER_SEC);
    g_autofree char *base = g_date_time_format(t, "%Y-%m-%dT%H:%M:%S");

    return g_strdup_printf("%s.%03dZ", base, (int)((real_us % G_USEC_PER_SEC) / 1000));
}

/* begin - the fields every record has */
static void
begin(ShadowJson *j, GString *out, const char *type, ShadowSession *s)
{
    g_autofree char *ts = timestamp(g_get_real_time());

    shadow_json_begin(j, out);
    shadow_json_int(j, "v", EVLOG_FORMAT_VERSION);
    shadow_json_str(j, "type", type);
    shadow_json_str(j, "ts", ts);
    shadow_json_str(j, "host", s->config->host);
    shadow_json_str(j, "conn", s->id);
}

/* shadow_event_log_connection - "connection" open or close record */
void
shadow_event_log_connection(ShadowEventLog *log, ShadowSession *s, gboolean open)
{
    g_autoptr(GString) out = g_string_sized_new(256);
    ShadowJson j;

    begin(&j, out, "connection", s);
    shadow_json_str(&j, "event", open ? "open" : "close");
    shadow_json_str(&j, "client_addr", s->client_addr);
    shadow_json_str(&j, "client_name", s->client_name);
    shadow_json_str(&j, "client_port", s->client_port);
    if (!open) {
        shadow_json_str(&j, "helo", s->helo);
        shadow_json_int(&j, "messages", s->messages);
        shadow_json_int(&j, "errors", s->errors);
        shadow_json_int(&j, "duration_ms", (g_get_real_time() - s->opened) / 1000);
        shadow_json_array_begin(&j, "milters");
        for (guint i = 0; i < s->children->len; i++) {
            ShadowChild *c = g_ptr_array_index(s->children, i);

            shadow_json_object_begin(&j, NULL);
            shadow_json_str(&j, "milter", c->cfg->name);
            shadow_json_str(&j, "state",
                            c->dead_action == SHADOW_ACTION_CONTINUE
                                ? "ok"
                                : shadow_action_name(c->dead_action));
            shadow_json_str(&j, "reason", c->dead_reason);
            shadow_json_int(&j, "version", c->version);
            shadow_json_int(&j, "actions", c->actions);
            shadow_json_int(&j, "protocol", c->protocol);
            shadow_json_int(&j, "negotiate_ms", c->latency_negotiate_ms);
            shadow_json_object_end(&j);
        }
        shadow_json_array_end(&j);
    }
    shadow_json_end(&j);
    emit(log, out);
}

/* edit_op - record name of an edit */
static const char *
edit_op(const ShadowEdit *e)
{
    switch (e->code) {
    case SMFIR_ADDHEADER:
        return "add_header";
    case SMFIR_INSHEADER:
        return "insert_header";
    case SMFIR_CHGHEADER:
        return e->value && *e->value ? "change_header" : "delete_header";
    case SMFIR_REPLBODY:
        return "replace_body";
    case SMFIR_CHGFROM:
        return "change_from";
    case SMFIR_ADDRCPT:
        return "add_rcpt";
    case SMFIR_ADDRCPT_PAR:
        return "add_rcpt";
    case SMFIR_DELRCPT:
        return "delete_rcpt";
    default:
        return "unknown";
    }
}

/* write_edit - one edit object */
static void
write_edit(ShadowJson *j, const ShadowEdit *e, const char *by)
{
    shadow_json_object_begin(j, NULL);
    if (by)
        shadow_json_str(j, "milter", by);
    shadow_json_str(j, "op", edit_op(e));
    switch (e->code) {
    case SMFIR_ADDHEADER:
    case SMFIR_INSHEADER:
    case SMFIR_CHGHEADER:
        if (e->code != SMFIR_ADDHEADER)
            shadow_json_int(j, "index", e->index);
        shadow_json_str(j, "name", e->name);
        shadow_json_str(j, "value", e->value);
        break;
    case SMFIR_REPLBODY:
        shadow_json_int(j, "size", g_ascii_strtoll(e->value, NULL, 10));
        break;
    default:
        shadow_json_str(j, "addr", e->name);
        if (e->value)
            shadow_json_str(j, "args", e->value);
        break;
    }
    shadow_json_object_end(j);
}

/* write_refusal - one refused recipient */
static void
write_refusal(ShadowJson *j, const ShadowRcptResult *r, const char *by)
{
    shadow_json_object_begin(j, NULL);
    shadow_json_str(j, "rcpt", r->rcpt);
    shadow_json_str(j, "action", shadow_action_name(r->action));
    shadow_json_str(j, "reply", r->reply);
    if (by)
        shadow_json_str(j, "milter", by);
    shadow_json_object_end(j);
}

/* refused_by - the child whose verdict holds this refusal */
static const char *
refused_by(ShadowMsg *m, const ShadowRcptResult *r)
{
    for (guint i = 0; i < m->n_children; i++)
        for (guint k = 0; k < m->verdicts[i]->rcpts->len; k++)
            if (g_ptr_array_index(m->verdicts[i]->rcpts, k) == r)
                return m->verdicts[i]->milter;
    return NULL;
}

/* message_ids - the identifiers every message and verdict record carries */
static void
message_ids(ShadowJson *j, ShadowMsg *m)
{
    shadow_json_str(j, "msg", m->id);
    shadow_json_str(j, "queue_id", m->queue_id);
    shadow_json_str(j, "message_id", m->message_id);
}

/* verdict_record - one child's verdict on one message, a line appended to out */
static void
verdict_record(GString *out, ShadowSession *s, ShadowMsg *m, const ShadowVerdict *v)
{
    ShadowJson j;

    begin(&j, out, "verdict", s);
    message_ids(&j, m);
    shadow_json_str(&j, "milter", v->milter);
    shadow_json_str(&j, "action", shadow_action_name(v->action));
    shadow_json_str(&j, "stage", shadow_stage_name(v->stage));
    shadow_json_bool(&j, "connection", v->connection);
    shadow_json_str(&j, "reply", v->reply);
    shadow_json_str(&j, "reason", v->reason);
    shadow_json_str(&j, "quarantine", v->quarantine);
    shadow_json_array_begin(&j, "rcpts");
    for (guint i = 0; i < v->rcpts->len; i++)
        write_refusal(&j, g_ptr_array_index(v->rcpts, i), NULL);
    shadow_json_array_end(&j);
    shadow_json_array_begin(&j, "edits");
    for (guint i = 0; i < v->edits->len; i++)
        write_edit(&j, g_ptr_array_index(v->edits, i), NULL);
    shadow_json_array_end(&j);
    shadow_json_object_begin(&j, "latency_us");
    for (int st = SHADOW_STAGE_CONNECT; st < SHADOW_STAGE_COUNT; st++)
        if (v->latency_us[st] > 0)
            shadow_json_int(&j, shadow_stage_name(st), (gint64)v->latency_us[st]);
    shadow_json_object_end(&j);
    shadow_json_end(&j);
    g_string_append_c(out, '\n');
}

/* syslog_line - the outcome as one readable line */
static void
syslog_line(ShadowSession *s, ShadowMsg *m, const ShadowPrediction *p)
{
    g_autoptr(GString) line = g_string_sized_new(256);

    g_string_append_printf(line, "%s: msg=%s from=%s to=", m->queue_id ? m->queue_id : "NOQUEUE",
                           m->id, m->from ? m->from : "?");
    for (guint i = 0; i < m->rcpts->len; i++)
        g_string_append_printf(line, "%s%s", i ? "," : "", (char *)m->rcpts->pdata[i]);
    g_string_append_printf(line, " shadow=%s", shadow_outcome_name(p->outcome));
    if (p->decided_by)
        g_string_append_printf(line, " by=%s stage=%s", p->decided_by, shadow_stage_name(p->stage));
    if (p->reply)
        g_string_append_printf(line, " reply=\"%s\"", p->reply);
    if (p->quarantine)
        g_string_append_printf(line, " hold=\"%s\"", p->quarantine);
    if (p->refused->len > 0)
        g_string_append_printf(line, " refused=%u", p->refused->len);
    if (p->edits->len > 0)
        g_string_append_printf(line, " edits=%u", p->edits->len);
    g_string_append(line, " milters=");
    for (guint i = 0; i < m->n_children; i++)
        g_string_append_printf(line, "%s%s:%s", i ? "," : "", m->verdicts[i]->milter,
                               shadow_action_name(m->verdicts[i]->action));
    if (m->aborted)
        g_string_append(line, " mta=aborted");
    shadow_log_info("%s", line->str);
}

/*
 * shadow_event_log_message - the verdicts and the "message" record of a message
 *
 * All in one write(2): a message's lines stay together, and a crash can
 * tear only the last group (the reader reports the verdicts it leaves
 * without their message).
 */
void
shadow_event_log_message(ShadowEventLog *log, ShadowSession *s, ShadowMsg *m,
                         const ShadowPrediction *p)
{
    g_autoptr(GString) out = g_string_sized_new(1024 + 512 * m->n_children);
    ShadowJson j;

    for (guint i = 0; i < m->n_children; i++)
        verdict_record(out, s, m, m->verdicts[i]);

    begin(&j, out, "message", s);
    message_ids(&j, m);
    shadow_json_str(&j, "client_addr", s->client_addr);
    shadow_json_str(&j, "client_name", s->client_name);
    shadow_json_str(&j, "helo", m->helo);
    shadow_json_str(&j, "auth", m->auth);
    shadow_json_str(&j, "from", m->from);
    shadow_json_array_begin(&j, "rcpts");
    for (guint i = 0; i < m->rcpts->len; i++)
        shadow_json_str(&j, NULL, m->rcpts->pdata[i]);
    shadow_json_array_end(&j);
    shadow_json_int(&j, "size", (gint64)(m->size + m->header_bytes));
    shadow_json_str(&j, "mta", m->aborted ? "aborted" : "ended");
    shadow_json_str(&j, "outcome", shadow_outcome_name(p->outcome));
    shadow_json_str(&j, "decided_by", p->decided_by);
    shadow_json_str(&j, "stage", p->decided_by ? shadow_stage_name(p->stage) : NULL);
    shadow_json_str(&j, "reply", p->reply);
    shadow_json_str(&j, "quarantine", p->quarantine);
    shadow_json_array_begin(&j, "refused");
    for (guint i = 0; i < p->refused->len; i++)
        write_refusal(&j, g_ptr_array_index(p->refused, i),
                      refused_by(m, g_ptr_array_index(p->refused, i)));
    shadow_json_array_end(&j);
    shadow_json_array_begin(&j, "edits");
    for (guint i = 0; i < p->edits->len; i++)
        write_edit(&j, g_ptr_array_index(p->edits, i), g_ptr_array_index(p->edits_by, i));
    shadow_json_array_end(&j);
    shadow_json_array_begin(&j, "unknown");
    for (guint i = 0; i < p->unknown->len; i++)
        shadow_json_str(&j, NULL, g_ptr_array_index(p->unknown, i));
    shadow_json_array_end(&j);
    shadow_json_object_begin(&j, "milters");
    for (guint i = 0; i < m->n_children; i++)
        shadow_json_str(&j, m->verdicts[i]->milter, shadow_action_name(m->verdicts[i]->action));
    shadow_json_object_end(&j);
    shadow_json_int(&j, "duration_ms", (g_get_real_time() - m->started) / 1000);
    shadow_json_end(&j);
    emit(log, out);
    syslog_line(s, m, p);
}
