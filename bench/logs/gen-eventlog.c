/* SPDX-License-Identifier: MIT */
/*
 * NAME
 *	gen-eventlog - write a synthetic shadowd event log for benchmarks
 * SYNOPSIS
 *	gen-eventlog [-n MESSAGES] [-m MILTERS] [-s SEED] [-t START] [-H HOSTS]
 *	             [-r RATE] [-o FILE] [-q]
 * DESCRIPTION
 *	Writes the JSON Lines event log of docs/event-log.md, record for
 *	record as shadowd/evlog.c writes it (the same field order and forms,
 *	through the same lib/shadow_json writer): connection open and close
 *	records, and per message one verdict record per milter in chain
 *	order followed by the message record. The traffic (clients, senders,
 *	recipients, sizes, queue ids, times) is genmodel's, the same as
 *	gen-postfixlog's for the same options. The verdicts are drawn from a
 *	realistic mix: mostly continue, with edits (add_header,
 *	change_header, insert_header, delete_header, replace_body, add_rcpt,
 *	change_from), recipient refusals, rejects and tempfails at MAIL and
 *	at end of message, connection-level refusals at CONNECT or HELO,
 *	early accepts, discards, quarantines, and now and then an error,
 *	timeout, unavailable or overflow. The message record's outcome,
 *	decided_by, stage, refused, edits and unknown are what
 *	shadow_predict() (lib/shadow_verdict.c) folds from those verdicts, as
 *	in shadowd. The same options give the same bytes.
 *
 *	A summary (messages, records, bytes, outcomes) goes to standard error
 *	unless -q.
 */

/* System library. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

/* Shadow libraries. */
#include "milter_proto.h"
#include "shadow_json.h"
#include "shadow_verdict.h"

/* Application-specific. */
#include "genmodel.h"

/* Milters in the chain at most. */
#define EV_MAX_MILTERS 32
/* Output is written in chunks of about this many bytes. */
#define EV_FLUSH_BYTES (4 * 1024 * 1024)
/* Format version of the records (docs/event-log.md). */
#define EV_FORMAT_VERSION 1
/* Random stream of the verdicts (the traffic is stream 0). */
#define EV_STREAM 1
/* A timeout is declared after this long (microseconds). */
#define EV_TIMEOUT_US 30000000

/* Per-message chances of each verdict, cumulative in this order. */
#define P_ERROR       0.004
#define P_TIMEOUT     0.003
#define P_UNAVAILABLE 0.001
#define P_OVERFLOW    0.0005
#define P_REJECT_MAIL 0.005
#define P_ACCEPT_MAIL 0.010
#define P_ACCEPT_RCPT 0.005
#define P_DISCARD     0.002
#define P_REJECT_EOM  0.030
#define P_TEMPFAIL    0.010
/* Per-connection chance that a milter decides at CONNECT or HELO. */
#define P_CONN_DECISION 0.005
/* Per-recipient chances of a refusal by a milter. */
#define P_RCPT_REJECT   0.015
#define P_RCPT_TEMPFAIL 0.005
/* Per-message chance of a quarantine by a continuing milter. */
#define P_QUARANTINE 0.007

/* ConnDecision - a milter's connection-level verdict (connect or helo) */
typedef struct {
    ShadowAction action; /* CONTINUE: none */
    ShadowStage stage;
    const char *reply;
    ShadowAction failed; /* the worst failure of the milter on the connection */
    const char *failed_reason;
} ConnDecision;

/* EvGen - the generator's state */
typedef struct {
    GenRng rng;
    guint n_milters;
    char *names[EV_MAX_MILTERS];
    char *reasons[SHADOW_ACTION_COUNT][EV_MAX_MILTERS];
    FILE *out;
    GString *buf;
    guint64 records, bytes, messages, connections;
    guint64 outcomes[SHADOW_OUTCOME_COUNT];
} EvGen;

static const char *const milter_names[] = {
    "spamd", "clamav", "dkim", "policyd", "rspamd", "greylist", "dmarc", "tagger",
};
static const char *const eom_replies[] = {
    NULL,
    "550 5.7.1 Message rejected as spam",
    "554 5.7.1 Virus found: Eicar-Test-Signature",
    "550 5.7.1 DMARC policy violation",
};
static const char *const quarantines[] = {
    "suspicious attachment",
    "spam score 7.5",
    "held for review",
};

/* flush - write what is buffered */
static gboolean
flush(EvGen *g, GError **error)
{
    if (g->buf->len > 0 && fwrite(g->buf->str, 1, g->buf->len, g->out) != g->buf->len) {
        g_set_error(error, G_FILE_ERROR, G_FILE_ERROR_IO, "write: %s", g_strerror(errno));
        return FALSE;
    }
    g->bytes += g->buf->len;
    g_string_truncate(g->buf, 0);
    return TRUE;
}

/* begin - the fields every record has (as evlog.c's begin()) */
static void
begin(EvGen *g, ShadowJson *j, const char *type, gint64 us, const GenConn *c)
{
    char ts[32];

    gen_format_rfc3339(us, ts);
    shadow_json_begin(j, g->buf);
    shadow_json_int(j, "v", EV_FORMAT_VERSION);
    shadow_json_str(j, "type", type);
    shadow_json_str(j, "ts", ts);
    shadow_json_str(j, "host", c->host_name);
    shadow_json_str(j, "conn", c->conn);
}

/* end - close a record and end its line */
static void
end(EvGen *g, ShadowJson *j)
{
    shadow_json_end(j);
    g_string_append_c(g->buf, '\n');
    g->records++;
}

/* connection_record - "connection" open or close (as evlog.c's) */
static void
connection_record(EvGen *g, const GenConn *c, gboolean open, guint errors, const ConnDecision *cd)
{
    ShadowJson j;

    begin(g, &j, "connection", open ? c->open_us : c->close_us, c);
    shadow_json_str(&j, "event", open ? "open" : "close");
    shadow_json_str(&j, "client_addr", c->client_addr);
    shadow_json_str(&j, "client_name", c->client_name);
    shadow_json_str(&j, "client_port", c->client_port);
    if (!open) {
        shadow_json_str(&j, "helo", c->helo);
        shadow_json_int(&j, "messages", c->n_messages);
        shadow_json_int(&j, "errors", errors);
        shadow_json_int(&j, "duration_ms", (c->close_us - c->open_us) / 1000);
        shadow_json_array_begin(&j, "milters");
        for (guint i = 0; i < g->n_milters; i++) {
            shadow_json_object_begin(&j, NULL);
            shadow_json_str(&j, "milter", g->names[i]);
            shadow_json_str(
                &j, "state",
                cd[i].failed == SHADOW_ACTION_CONTINUE ? "ok" : shadow_action_name(cd[i].failed));
            shadow_json_str(&j, "reason", cd[i].failed_reason);
            shadow_json_int(&j, "version", 6);
            shadow_json_int(&j, "actions", i % 2 ? 0 : 0x1ff);
            shadow_json_int(&j, "protocol", 0);
            shadow_json_int(&j, "negotiate_ms", 1 + gen_rng_below(&g->rng, 3));
            shadow_json_object_end(&j);
        }
        shadow_json_array_end(&j);
    }
    end(g, &j);
}

/* edit_op - record name of an edit (as evlog.c's) */
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
    case SMFIR_ADDRCPT_PAR:
        return "add_rcpt";
    case SMFIR_DELRCPT:
        return "delete_rcpt";
    default:
        return "unknown";
    }
}

/* write_edit - one edit object (as evlog.c's) */
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

/* write_refusal - one refused recipient (as evlog.c's) */
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

/* refused_by - the milter whose verdict holds this refusal */
static const char *
refused_by(ShadowVerdict *const *chain, guint n, const ShadowRcptResult *r)
{
    for (guint i = 0; i < n; i++)
        for (guint k = 0; k < chain[i]->rcpts->len; k++)
            if (g_ptr_array_index(chain[i]->rcpts, k) == r)
                return chain[i]->milter;
    return NULL;
}

/* message_ids - msg, queue_id, message_id */
static void
message_ids(ShadowJson *j, const GenMsg *msg)
{
    shadow_json_str(j, "msg", msg->msg);
    shadow_json_str(j, "queue_id", msg->queue_id[0] ? msg->queue_id : NULL);
    shadow_json_str(j, "message_id", msg->has_message_id ? msg->message_id : NULL);
}

/* verdict_record - one milter's verdict on one message (as evlog.c's) */
static void
verdict_record(EvGen *g, const GenConn *c, const GenMsg *msg, const ShadowVerdict *v)
{
    ShadowJson j;

    begin(g, &j, "verdict", msg->end_us, c);
    message_ids(&j, msg);
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
    end(g, &j);
}

/* message_record - the message record (as evlog.c's) */
static void
message_record(EvGen *g, const GenConn *c, const GenMsg *msg, ShadowVerdict *const *chain,
               const char *const *rcpts, guint n_rcpts, const ShadowPrediction *p)
{
    ShadowJson j;

    begin(g, &j, "message", msg->end_us, c);
    message_ids(&j, msg);
    shadow_json_str(&j, "client_addr", c->client_addr);
    shadow_json_str(&j, "client_name", c->client_name);
    shadow_json_str(&j, "helo", c->helo);
    shadow_json_str(&j, "auth", msg->has_auth ? msg->auth : NULL);
    shadow_json_str(&j, "from", msg->from);
    shadow_json_array_begin(&j, "rcpts");
    for (guint i = 0; i < n_rcpts; i++)
        shadow_json_str(&j, NULL, rcpts[i]);
    shadow_json_array_end(&j);
    shadow_json_int(&j, "size", msg->mta_rejected ? 0 : msg->size);
    shadow_json_str(&j, "mta", msg->mta_rejected ? "aborted" : "ended");
    shadow_json_str(&j, "outcome", shadow_outcome_name(p->outcome));
    shadow_json_str(&j, "decided_by", p->decided_by);
    shadow_json_str(&j, "stage", p->decided_by ? shadow_stage_name(p->stage) : NULL);
    shadow_json_str(&j, "reply", p->reply);
    shadow_json_str(&j, "quarantine", p->quarantine);
    shadow_json_array_begin(&j, "refused");
    for (guint i = 0; i < p->refused->len; i++)
        write_refusal(&j, g_ptr_array_index(p->refused, i),
                      refused_by(chain, g->n_milters, g_ptr_array_index(p->refused, i)));
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
    for (guint i = 0; i < g->n_milters; i++)
        shadow_json_str(&j, chain[i]->milter, shadow_action_name(chain[i]->action));
    shadow_json_object_end(&j);
    shadow_json_int(&j, "duration_ms", (msg->end_us - msg->start_us) / 1000);
    end(g, &j);
}

/* stage_latency - a plausible time to answer one stage, in microseconds */
static guint64
stage_latency(EvGen *g, ShadowStage st, guint n_rcpts)
{
    static const double mean_us[SHADOW_STAGE_COUNT] = {
        [SHADOW_STAGE_CONNECT] = 120, [SHADOW_STAGE_HELO] = 60, [SHADOW_STAGE_MAIL] = 90,
        [SHADOW_STAGE_RCPT] = 70,     [SHADOW_STAGE_DATA] = 50, [SHADOW_STAGE_HEADER] = 600,
        [SHADOW_STAGE_EOH] = 40,      [SHADOW_STAGE_BODY] = 80, [SHADOW_STAGE_EOM] = 4000,
    };
    double m = mean_us[st] * (st == SHADOW_STAGE_RCPT ? n_rcpts : 1);

    return 1 + (guint64)(m * 0.3 + gen_rng_exp(&g->rng, m));
}

/* fill_latency - latencies of the message stages up to and including last */
static void
fill_latency(EvGen *g, ShadowVerdict *v, ShadowStage last, guint n_rcpts)
{
    for (int st = SHADOW_STAGE_MAIL; st <= (int)last && st < SHADOW_STAGE_COUNT; st++)
        if (st != SHADOW_STAGE_UNKNOWN)
            v->latency_us[st] = stage_latency(g, st, n_rcpts);
}

/* refuse_some_rcpts - the milter refuses a few of the recipients it saw */
static void
refuse_some_rcpts(EvGen *g, ShadowVerdict *v, const char *const *rcpts, guint n_rcpts)
{
    for (guint k = 0; k < n_rcpts; k++) {
        double u = gen_rng_unit(&g->rng);

        if (u < P_RCPT_REJECT)
            shadow_verdict_refuse_rcpt(
                v, rcpts[k], SHADOW_ACTION_REJECT,
                gen_rng_chance(&g->rng, 0.5) ? "550 5.1.1 Recipient address rejected" : NULL);
        else if (u < P_RCPT_REJECT + P_RCPT_TEMPFAIL)
            shadow_verdict_refuse_rcpt(v, rcpts[k], SHADOW_ACTION_TEMPFAIL,
                                       gen_rng_chance(&g->rng, 0.5) ? "450 4.2.0 Greylisted"
                                                                    : NULL);
    }
}

/* add_edits - the modifications a continuing milter asks for */
static void
add_edits(EvGen *g, ShadowVerdict *v, guint i, const GenMsg *msg)
{
    GenRng *r = &g->rng;

    if (gen_rng_chance(r, 0.20)) {
        g_autofree char *name = g_strdup_printf("X-%s-Status", v->milter);
        g_autofree char *value =
            g_strdup_printf("checked; score=%u.%u", gen_rng_below(r, 9), gen_rng_below(r, 10));

        shadow_verdict_add_edit(v, SMFIR_ADDHEADER, 0, name, value);
    }
    if (gen_rng_chance(r, 0.03))
        shadow_verdict_add_edit(v, SMFIR_CHGHEADER, 1, "Subject", "[SPAM] Re: your invoice");
    if (gen_rng_chance(r, 0.02)) {
        g_autofree char *value =
            g_strdup_printf("mx; dkim=pass header.i=@%s",
                            strchr(msg->from, '@') ? strchr(msg->from, '@') + 1 : "unknown>");

        value[strlen(value) - 1] = '\0'; /* the '>' of the address */
        shadow_verdict_add_edit(v, SMFIR_INSHEADER, 0, "Authentication-Results", value);
    }
    if (gen_rng_chance(r, 0.005)) {
        g_autofree char *size = g_strdup_printf("%" G_GINT64_FORMAT, msg->size / 2 + 100);

        shadow_verdict_add_edit(v, SMFIR_REPLBODY, 0, NULL, size);
    }
    if (gen_rng_chance(r, 0.003))
        shadow_verdict_add_edit(v, SMFIR_ADDRCPT, 0, "<archive@example.net>", NULL);
    if (gen_rng_chance(r, 0.002))
        shadow_verdict_add_edit(v, SMFIR_CHGFROM, 0, "<bounces@example.net>", NULL);
    if (gen_rng_chance(r, 0.002))
        shadow_verdict_add_edit(v, SMFIR_CHGHEADER, 1 + i % 2, "X-Spam-Flag", "");
}

/* fail - a milter that gave no verdict: error, timeout, unavailable or overflow */
static void
fail(EvGen *g, ShadowVerdict *v, ShadowAction a, guint i, guint n_rcpts, ConnDecision *cd)
{
    ShadowStage st =
        SHADOW_STAGE_MAIL + gen_rng_below(&g->rng, SHADOW_STAGE_EOM - SHADOW_STAGE_MAIL + 1);

    if (st == SHADOW_STAGE_UNKNOWN || a == SHADOW_ACTION_UNAVAILABLE)
        st = a == SHADOW_ACTION_UNAVAILABLE ? SHADOW_STAGE_MAIL : SHADOW_STAGE_EOM;
    v->action = a;
    v->stage = st;
    v->reason = g_strdup(g->reasons[a][i]);
    if (a != SHADOW_ACTION_UNAVAILABLE) {
        fill_latency(g, v, st, n_rcpts);
        if (a == SHADOW_ACTION_TIMEOUT)
            v->latency_us[st] = EV_TIMEOUT_US;
    }
    cd->failed = a;
    cd->failed_reason = g->reasons[a][i];
}

/* draw_verdict - milter i's verdict on one message */
static ShadowVerdict *
draw_verdict(EvGen *g, guint i, const GenMsg *msg, const char *const *rcpts, guint n_rcpts,
             ConnDecision *cd)
{
    ShadowVerdict *v = shadow_verdict_new(g->names[i]);
    GenRng *r = &g->rng;
    double u = gen_rng_unit(r);
    double p = 0;

    if (cd->action != SHADOW_ACTION_CONTINUE) {
        v->action = cd->action;
        v->stage = cd->stage;
        v->connection = TRUE;
        v->reply = g_strdup(cd->reply);
        v->latency_us[SHADOW_STAGE_CONNECT] = stage_latency(g, SHADOW_STAGE_CONNECT, 1);
        if (cd->stage == SHADOW_STAGE_HELO)
            v->latency_us[SHADOW_STAGE_HELO] = stage_latency(g, SHADOW_STAGE_HELO, 1);
        return v;
    }
    if (msg->mta_rejected) { /* Postfix refused every recipient: the milters saw MAIL only */
        v->stage = SHADOW_STAGE_MAIL;
        fill_latency(g, v, SHADOW_STAGE_MAIL, 0);
        return v;
    }
    if (u < (p += P_ERROR)) {
        fail(g, v, SHADOW_ACTION_ERROR, i, n_rcpts, cd);
    } else if (u < (p += P_TIMEOUT)) {
        fail(g, v, SHADOW_ACTION_TIMEOUT, i, n_rcpts, cd);
    } else if (u < (p += P_UNAVAILABLE)) {
        fail(g, v, SHADOW_ACTION_UNAVAILABLE, i, n_rcpts, cd);
    } else if (u < (p += P_OVERFLOW)) {
        fail(g, v, SHADOW_ACTION_OVERFLOW, i, n_rcpts, cd);
    } else if (u < (p += P_REJECT_MAIL)) {
        v->action = SHADOW_ACTION_REJECT;
        v->stage = SHADOW_STAGE_MAIL;
        v->reply = g_strdup("550 5.7.1 Sender address rejected: access denied");
        fill_latency(g, v, SHADOW_STAGE_MAIL, n_rcpts);
    } else if (u < (p += P_ACCEPT_MAIL)) {
        v->action = SHADOW_ACTION_ACCEPT;
        v->stage = SHADOW_STAGE_MAIL;
        fill_latency(g, v, SHADOW_STAGE_MAIL, n_rcpts);
    } else if (u < (p += P_ACCEPT_RCPT)) {
        v->action = SHADOW_ACTION_ACCEPT;
        v->stage = SHADOW_STAGE_RCPT;
        fill_latency(g, v, SHADOW_STAGE_RCPT, n_rcpts);
    } else {
        refuse_some_rcpts(g, v, rcpts, n_rcpts);
        v->stage = SHADOW_STAGE_EOM;
        fill_latency(g, v, SHADOW_STAGE_EOM, n_rcpts);
        if (u < (p += P_DISCARD)) {
            v->action = SHADOW_ACTION_DISCARD;
        } else if (u < (p += P_REJECT_EOM)) {
            v->action = SHADOW_ACTION_REJECT;
            v->reply = g_strdup(eom_replies[gen_rng_below(r, G_N_ELEMENTS(eom_replies))]);
        } else if (u < (p += P_TEMPFAIL)) {
            v->action = SHADOW_ACTION_TEMPFAIL;
            v->reply = gen_rng_chance(r, 0.5) ? NULL : g_strdup("451 4.7.1 Try again later");
        } else {
            add_edits(g, v, i, msg);
            if (gen_rng_chance(r, P_QUARANTINE))
                v->quarantine = g_strdup(quarantines[gen_rng_below(r, G_N_ELEMENTS(quarantines))]);
        }
    }
    return v;
}

/* draw_conn_decisions - which milters refuse the whole connection at CONNECT or HELO */
static void
draw_conn_decisions(EvGen *g, ConnDecision *cd)
{
    for (guint i = 0; i < g->n_milters; i++) {
        memset(&cd[i], 0, sizeof(cd[i]));
        cd[i].action = SHADOW_ACTION_CONTINUE;
        cd[i].failed = SHADOW_ACTION_CONTINUE;
        if (!gen_rng_chance(&g->rng, P_CONN_DECISION))
            continue;
        if (gen_rng_chance(&g->rng, 0.7)) {
            cd[i].action = SHADOW_ACTION_REJECT;
            cd[i].reply = "554 5.7.1 Client host rejected: listed at a DNS blocklist";
        } else {
            cd[i].action = SHADOW_ACTION_TEMPFAIL;
            cd[i].reply = NULL;
        }
        cd[i].stage = gen_rng_chance(&g->rng, 0.5) ? SHADOW_STAGE_CONNECT : SHADOW_STAGE_HELO;
    }
}

/* one_message - verdicts, prediction and records of one message; returns failures */
static guint
one_message(EvGen *g, const GenConn *c, const GenMsg *msg, ConnDecision *cd)
{
    ShadowVerdict *chain[EV_MAX_MILTERS];
    const char *rcpts[GEN_MAX_RCPTS];
    guint n_rcpts = 0, failures = 0;
    ShadowPrediction p;

    for (guint k = 0; k < msg->n_rcpts; k++)
        if (!msg->rcpt_refused[k])
            rcpts[n_rcpts++] = msg->rcpts[k];
    for (guint i = 0; i < g->n_milters; i++) {
        chain[i] = draw_verdict(g, i, msg, rcpts, n_rcpts, &cd[i]);
        failures += shadow_action_is_failure(chain[i]->action);
    }
    shadow_predict(chain, g->n_milters, rcpts, n_rcpts, &p);
    for (guint i = 0; i < g->n_milters; i++)
        verdict_record(g, c, msg, chain[i]);
    message_record(g, c, msg, chain, rcpts, n_rcpts, &p);
    g->outcomes[p.outcome]++;
    g->messages++;
    shadow_prediction_clear(&p);
    for (guint i = 0; i < g->n_milters; i++)
        shadow_verdict_free(chain[i]);
    return failures;
}

/* make_names - milter names and their failure reasons */
static void
make_names(EvGen *g)
{
    for (guint i = 0; i < g->n_milters; i++) {
        guint port = 10025 + i;

        g->names[i] = i < G_N_ELEMENTS(milter_names) ? g_strdup(milter_names[i])
                                                     : g_strdup_printf("milter%u", i + 1);
        g->reasons[SHADOW_ACTION_ERROR][i] =
            g_strdup_printf("inet:%u@127.0.0.1: read: Connection reset by peer", port);
        g->reasons[SHADOW_ACTION_TIMEOUT][i] =
            g_strdup_printf("inet:%u@127.0.0.1: no reply in %d s", port, EV_TIMEOUT_US / 1000000);
        g->reasons[SHADOW_ACTION_UNAVAILABLE][i] =
            g_strdup_printf("inet:%u@127.0.0.1: connect: Connection refused", port);
        g->reasons[SHADOW_ACTION_OVERFLOW][i] =
            g_strdup_printf("inet:%u@127.0.0.1: more than 1024 events behind", port);
    }
}

/* free_names - free what make_names made */
static void
free_names(EvGen *g)
{
    for (guint i = 0; i < g->n_milters; i++) {
        g_free(g->names[i]);
        for (int a = 0; a < SHADOW_ACTION_COUNT; a++)
            g_free(g->reasons[a][i]);
    }
}

/* generate - the whole log */
static gboolean
generate(EvGen *g, GenModel *m, GError **error)
{
    GenConn c;
    GenMsg msg;
    ConnDecision cd[EV_MAX_MILTERS];

    while (gen_model_next_conn(m, &c)) {
        guint errors = 0;

        draw_conn_decisions(g, cd);
        connection_record(g, &c, TRUE, 0, cd);
        for (guint k = 0; k < c.n_messages; k++) {
            gen_model_next_msg(m, &c, &msg);
            errors += one_message(g, &c, &msg, cd);
        }
        gen_model_close_conn(m, &c);
        connection_record(g, &c, FALSE, errors, cd);
        g->connections++;
        if (g->buf->len >= EV_FLUSH_BYTES && !flush(g, error))
            return FALSE;
    }
    return flush(g, error) && fflush(g->out) == 0;
}

/* summary - counts to standard error */
static void
summary(const EvGen *g)
{
    fprintf(stderr,
            "gen-eventlog: messages=%" G_GUINT64_FORMAT " connections=%" G_GUINT64_FORMAT
            " records=%" G_GUINT64_FORMAT " bytes=%" G_GUINT64_FORMAT,
            g->messages, g->connections, g->records, g->bytes);
    for (int o = 0; o < SHADOW_OUTCOME_COUNT; o++)
        fprintf(stderr, " %s=%" G_GUINT64_FORMAT, shadow_outcome_name(o), g->outcomes[o]);
    fputc('\n', stderr);
}

/* main - parse options, generate, report */
int
main(int argc, char **argv)
{
    int milters = 4;
    gboolean quiet = FALSE;
    g_autofree char *output = NULL;
    GOptionEntry extra[] = {
        { "milters", 'm', 0, G_OPTION_ARG_INT, &milters, "milters in the chain (default 4)", "M" },
        { "output", 'o', 0, G_OPTION_ARG_FILENAME, &output, "write to FILE (default stdout)",
          "FILE" },
        { "quiet", 'q', 0, G_OPTION_ARG_NONE, &quiet, "no summary on stderr", NULL },
        { NULL },
    };
    g_autoptr(GError) error = NULL;
    g_autoptr(GenModel) m = NULL;
    GenOptions opts;
    EvGen g = { 0 };

    if (!gen_parse_options(&argc, &argv, "Write a synthetic shadowd event log.", extra, &opts,
                           &error)) {
        fprintf(stderr, "gen-eventlog: %s\n", error->message);
        return 2;
    }
    if (milters < 1 || milters > EV_MAX_MILTERS) {
        fprintf(stderr, "gen-eventlog: -m %d: need 1 to %d milters\n", milters, EV_MAX_MILTERS);
        return 2;
    }
    g.out = output ? fopen(output, "w") : stdout;
    if (g.out == NULL) {
        fprintf(stderr, "gen-eventlog: %s: %s\n", output, g_strerror(errno));
        return 1;
    }
    g.n_milters = (guint)milters;
    gen_rng_seed(&g.rng, opts.seed, EV_STREAM);
    make_names(&g);
    g.buf = g_string_sized_new(EV_FLUSH_BYTES + 64 * 1024);
    m = gen_model_new(&opts);
    if (!generate(&g, m, &error) || (output && fclose(g.out) != 0)) {
        fprintf(stderr, "gen-eventlog: %s: %s\n", output ? output : "stdout",
                error ? error->message : g_strerror(errno));
        return 1;
    }
    if (!quiet)
        summary(&g);
    g_string_free(g.buf, TRUE);
    free_names(&g);
    return 0;
}
