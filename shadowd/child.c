/* SPDX-License-Identifier: MIT */
/*
 * NAME
 *	child - shadowd as the MTA of one child milter
 * DESCRIPTION
 *	A child works through its job queue strictly in order, one packet with
 *	a reply outstanding at a time, as libmilter expects. It never receives
 *	an event it switched off (SMFIP_NO*), nobody waits for a reply it
 *	promised not to send (SMFIP_NR*), and after it has decided a message
 *	it is sent only SMFIC_ABORT until the next message (libmilter drops
 *	other commands silently: pitfall 7 of the protocol notes).
 *
 *	Whatever the child does, the MTA does not see it: replies only become
 *	its verdict. A child that is slow, dies, or breaks the protocol is
 *	killed for the rest of the MTA connection, and the messages it leaves
 *	get timeout, error or unavailable as their verdict.
 */

/* Build configuration. */
#include "config.h"

/* System library. */
#include <stdarg.h>
#include <string.h>

/* Application-specific. */
#include "shadowd.h"
#include "log.h"

/* Bytes of an SMFIC_BODY chunk when replaying content (Postfix's size). */
#define CHILD_CHUNK MILTER_CHUNK_SIZE

static void pump(ShadowChild *c);
static void protocol_error(ShadowChild *c, const char *fmt, ...) G_GNUC_PRINTF(2, 3);
static void child_data(ShadowConn *conn, const guint8 *buf, gsize len, gpointer user);
static void child_event(ShadowConn *conn, ShadowConnEvent ev, const GError *error, gpointer user);

static const ShadowConnFuncs child_funcs = { child_data, child_event };

/* code_stage - the stage a command belongs to */
static ShadowStage
code_stage(guint8 code)
{
    switch (code) {
    case SMFIC_CONNECT:
        return SHADOW_STAGE_CONNECT;
    case SMFIC_HELO:
        return SHADOW_STAGE_HELO;
    case SMFIC_MAIL:
        return SHADOW_STAGE_MAIL;
    case SMFIC_RCPT:
        return SHADOW_STAGE_RCPT;
    case SMFIC_DATA:
        return SHADOW_STAGE_DATA;
    case SMFIC_UNKNOWN:
        return SHADOW_STAGE_UNKNOWN;
    case SMFIC_HEADER:
        return SHADOW_STAGE_HEADER;
    case SMFIC_EOH:
        return SHADOW_STAGE_EOH;
    case SMFIC_BODY:
        return SHADOW_STAGE_BODY;
    case SMFIC_BODYEOB:
        return SHADOW_STAGE_EOM;
    default:
        return SHADOW_STAGE_NONE;
    }
}

/* no_bit - the SMFIP_NO* flag that switches a command off, or 0 */
static guint32
no_bit(guint8 code)
{
    switch (code) {
    case SMFIC_CONNECT:
        return SMFIP_NOCONNECT;
    case SMFIC_HELO:
        return SMFIP_NOHELO;
    case SMFIC_MAIL:
        return SMFIP_NOMAIL;
    case SMFIC_RCPT:
        return SMFIP_NORCPT;
    case SMFIC_DATA:
        return SMFIP_NODATA;
    case SMFIC_UNKNOWN:
        return SMFIP_NOUNKNOWN;
    case SMFIC_HEADER:
        return SMFIP_NOHDRS;
    case SMFIC_EOH:
        return SMFIP_NOEOH;
    case SMFIC_BODY:
        return SMFIP_NOBODY;
    default:
        return 0;
    }
}

/* nr_bit - the SMFIP_NR* flag that says a command gets no reply, or 0 */
static guint32
nr_bit(guint8 code)
{
    switch (code) {
    case SMFIC_CONNECT:
        return SMFIP_NR_CONN;
    case SMFIC_HELO:
        return SMFIP_NR_HELO;
    case SMFIC_MAIL:
        return SMFIP_NR_MAIL;
    case SMFIC_RCPT:
        return SMFIP_NR_RCPT;
    case SMFIC_DATA:
        return SMFIP_NR_DATA;
    case SMFIC_UNKNOWN:
        return SMFIP_NR_UNKN;
    case SMFIC_HEADER:
        return SMFIP_NR_HDR;
    case SMFIC_EOH:
        return SMFIP_NR_EOH;
    case SMFIC_BODY:
        return SMFIP_NR_BODY;
    default:
        return 0;
    }
}

/* expects_reply - whether the child answers this command */
static gboolean
expects_reply(const ShadowChild *c, guint8 code)
{
    switch (code) {
    case SMFIC_MACRO:
    case SMFIC_ABORT:
    case SMFIC_QUIT:
    case SMFIC_QUIT_NC:
        return FALSE;
    case SMFIC_BODYEOB:
    case SMFIC_OPTNEG:
        return TRUE;
    default:
        return (c->protocol & nr_bit(code)) == 0;
    }
}

/* shadow_child_wants - whether the child receives this command at all */
gboolean
shadow_child_wants(const ShadowChild *c, guint8 code)
{
    return (c->protocol & no_bit(code)) == 0;
}

/* job_free - free a job */
static void
job_free(ShadowJob *j)
{
    if (j->bytes)
        g_bytes_unref(j->bytes);
    if (j->msg)
        shadow_msg_unref(j->msg);
    if (j->wait) {
        shadow_wait_done(j->wait);
        shadow_wait_unref(j->wait);
    }
    if (j->model)
        shadow_message_free(j->model);
    g_free(j->arg);
    g_free(j);
}

static void reply_timeout(ShadowDeadline *d, gpointer data);

/* shadow_child_new - a child for one session, not yet connected */
ShadowChild *
shadow_child_new(ShadowSession *s, const ShadowMilterConfig *cfg, guint index)
{
    ShadowChild *c = g_new0(ShadowChild, 1);

    c->session = s;
    c->cfg = cfg;
    c->index = index;
    c->state = CHILD_CONNECTING;
    shadow_deadline_init(&c->timer, reply_timeout, c);
    c->decoder = milter_decoder_new(MILTER_DIR_REPLY, 0);
    c->symlists = g_ptr_array_new_with_free_func(g_free);
    g_queue_init(&c->jobs);
    return c;
}

/* stop_timer - disarm the reply timeout */
static void
stop_timer(ShadowChild *c)
{
    shadow_deadline_disarm(&c->timer);
}

/* shadow_child_free - free a child (after it is dead) */
void
shadow_child_free(ShadowChild *c)
{
    ShadowJob *j;

    if (c == NULL)
        return;
    stop_timer(c);
    if (c->conn) {
        shadow_conn_close(c->conn);
        g_clear_pointer(&c->conn, shadow_conn_unref);
    }
    if (c->current && c->current->kind != JOB_CONTENT)
        job_free(c->current);
    while ((j = g_queue_pop_head(&c->jobs)) != NULL)
        job_free(j);
    if (c->msg)
        shadow_msg_unref(c->msg);
    shadow_spool_free(c->replbody);
    shadow_message_free(c->edited);
    milter_decoder_free(c->decoder);
    g_ptr_array_unref(c->symlists);
    g_free(c->conn_reply);
    g_free(c->dead_reason);
    g_free(c);
}

/* verdict - this child's verdict for its current message, or NULL */
static ShadowVerdict *
verdict(ShadowChild *c)
{
    return c->msg ? shadow_session_verdict(c->msg, c) : NULL;
}

/* finish - this child's part in its current message is over */
static void
finish(ShadowChild *c)
{
    if (c->msg)
        shadow_session_child_finished(c->session, c, c->msg);
}

/* fail_msg - give msg this child's failure as its verdict, unless it decided already */
static void
fail_msg(ShadowChild *c, ShadowMsg *msg)
{
    ShadowVerdict *v = shadow_session_verdict(msg, c);

    /* A child that decided already keeps its verdict. */
    if (v && !msg->finished[c->index]) {
        v->action = c->dead_action;
        g_free(v->reason);
        v->reason = g_strdup(c->dead_reason);
    }
    shadow_session_child_finished(c->session, c, msg);
}

/* drop_job - a job that will not run: release its waiters and its message */
static void
drop_job(ShadowChild *c, ShadowJob *j)
{
    if (j->kind == JOB_CONTENT && j->msg) {
        ShadowMessage *model = g_steal_pointer(&j->model);

        shadow_session_child_content_done(c->session, c, j->msg, model);
    }
    if (j->msg && c->state == CHILD_DEAD)
        fail_msg(c, j->msg);
    job_free(j);
}

/* shadow_child_kill - give up on the child for this MTA connection */
void
shadow_child_kill(ShadowChild *c, ShadowAction why, const char *reason)
{
    ShadowJob *j;

    if (c->state == CHILD_DEAD)
        return;
    c->state = CHILD_DEAD;
    c->dead_action = why;
    c->dead_reason = g_strdup(reason);
    stop_timer(c);
    if (c->conn) {
        shadow_conn_close(c->conn);
        g_clear_pointer(&c->conn, shadow_conn_unref);
    }
    if (why != SHADOW_ACTION_CONTINUE)
        shadow_log_warning("%s milter %s: %s: %s", c->session->id, c->cfg->name,
                           shadow_action_name(why), reason);
    if (c->msg && !c->done_msg)
        fail_msg(c, c->msg);
    /* A running content job is both current and at the head of the queue. */
    j = g_steal_pointer(&c->current);
    if (j && j->kind != JOB_CONTENT)
        drop_job(c, j);
    while ((j = g_queue_pop_head(&c->jobs)) != NULL)
        drop_job(c, j);
    c->backlog = 0;
    c->held = 0;
    shadow_session_child_dead(c->session, c);
}

/* reply_timeout - the child did not answer in time */
static void
reply_timeout(ShadowDeadline *d, gpointer data)
{
    ShadowChild *c = data;
    guint8 code = c->current_code; /* the command waiting, not the job (a content job sends many) */
    g_autofree char *why = g_strdup_printf("no reply to %s within %u ms", milter_command_name(code),
                                           code == SMFIC_BODYEOB ? c->cfg->eom_timeout_ms
                                                                 : c->cfg->command_timeout_ms);

    if (c->state == CHILD_CLOSING)
        shadow_child_kill(c, SHADOW_ACTION_CONTINUE, "did not close after SMFIC_QUIT");
    else
        shadow_child_kill(c, SHADOW_ACTION_TIMEOUT, why);
    (void)d;
}

/*
 * start_timer - (re)arm the reply timeout for a command
 *
 * A deadline in the shared heap (deadline.h), armed and disarmed for every
 * command: a GSource per child, or its ready time, cost a wakeup each.
 */
static void
start_timer(ShadowChild *c, guint8 code)
{
    shadow_deadline_arm(&c->timer, code == SMFIC_BODYEOB ? c->cfg->eom_timeout_ms
                                                         : c->cfg->command_timeout_ms);
}

/* send_packet - write bytes; if a reply is due, make j the current job */
static gboolean
send_packet(ShadowChild *c, ShadowJob *j, guint8 code, const guint8 *data, gsize len)
{
    shadow_conn_write(c->conn, data, len);
    if (!expects_reply(c, code))
        return FALSE;
    c->current = j;
    c->current_code = code;
    c->sent_at = g_get_monotonic_time();
    start_timer(c, code);
    return TRUE;
}

/* child_event - connection events */
static void
child_event(ShadowConn *conn, ShadowConnEvent ev, const GError *error, gpointer user)
{
    ShadowChild *c = user;
    GByteArray *out;
    ShadowSession *s = c->session;

    switch (ev) {
    case SHADOW_CONN_CONNECTED:
        c->state = CHILD_NEGOTIATING;
        out = g_byte_array_new();
        milter_encode_optneg(out, SMFIC_OPTNEG, c->version, c->actions, c->protocol, NULL, 0);
        shadow_conn_write(c->conn, out->data, out->len);
        g_byte_array_unref(out);
        c->current_code = SMFIC_OPTNEG;
        c->sent_at = g_get_monotonic_time();
        start_timer(c, SMFIC_OPTNEG);
        return;
    case SHADOW_CONN_CLOSED:
        if (c->state == CHILD_CLOSING) {
            c->state = CHILD_DEAD;
            stop_timer(c);
            g_clear_pointer(&c->conn, shadow_conn_unref);
            shadow_session_child_dead(s, c);
            return;
        }
        shadow_child_kill(
            c, c->state == CHILD_NEGOTIATING ? SHADOW_ACTION_UNAVAILABLE : SHADOW_ACTION_ERROR,
            c->current || c->state == CHILD_NEGOTIATING
                ? "closed the connection while a reply was due"
                : "closed the connection");
        return;
    case SHADOW_CONN_FAILED:
        shadow_child_kill(c,
                          c->state == CHILD_CONNECTING || c->state == CHILD_NEGOTIATING
                              ? SHADOW_ACTION_UNAVAILABLE
                              : SHADOW_ACTION_ERROR,
                          error ? error->message : "connection failed");
        return;
    }
}

/* shadow_child_start - connect and offer what the MTA offered us */
void
shadow_child_start(ShadowChild *c, guint32 version, guint32 actions, guint32 protocol)
{
    g_autoptr(GError) error = NULL;

    c->version = version;
    c->actions = actions;
    c->protocol = protocol;
    c->offered_protocol = protocol;
    c->conn =
        shadow_conn_connect(&c->cfg->connect, c->cfg->connect_timeout_ms, &child_funcs, c, &error);
    if (c->conn == NULL)
        shadow_child_kill(c, SHADOW_ACTION_UNAVAILABLE, error->message);
}

/* negotiated - the child's SMFIR_OPTNEG: check it against the offer and keep it */
static void
negotiated(ShadowChild *c, const MilterPacket *pkt)
{
    g_autofree char *why = NULL;

    stop_timer(c);
    if (pkt->code != SMFIR_OPTNEG) {
        why = g_strdup_printf("answered option negotiation with %s", milter_reply_name(pkt->code));
        shadow_child_kill(c, SHADOW_ACTION_UNAVAILABLE, why);
        return;
    }
    if (pkt->version < 2 || pkt->version > c->version) {
        why = g_strdup_printf("protocol version %u, offered 2..%u", pkt->version, c->version);
        shadow_child_kill(c, SHADOW_ACTION_UNAVAILABLE, why);
        return;
    }
    if ((pkt->actions & ~c->actions) != 0) {
        g_autofree char *extra = milter_actions_to_string(pkt->actions & ~c->actions);

        why = g_strdup_printf("asks for actions not offered: %s", extra);
        shadow_child_kill(c, SHADOW_ACTION_UNAVAILABLE, why);
        return;
    }
    c->version = pkt->version;
    c->actions = pkt->actions;
    /* Bits we did not offer are dropped, as libmilter would have (Postfix keeps them). */
    c->protocol = pkt->protocol & c->offered_protocol;
    for (gsize i = 0; i < pkt->n_symlists; i++) {
        MilterSymlist *sl = g_malloc(sizeof(MilterSymlist) + strlen(pkt->symlists[i].macros) + 1);

        sl->stage = pkt->symlists[i].stage;
        sl->macros = strcpy((char *)(sl + 1), pkt->symlists[i].macros);
        g_ptr_array_add(c->symlists, sl);
    }
    c->state = CHILD_READY;
    c->latency_negotiate_ms = (guint)((g_get_monotonic_time() - c->sent_at) / 1000);
    shadow_session_child_ready(c->session, c);
    /* Jobs may have queued while it negotiated (a new connection after QUIT_NC). */
    pump(c);
}

/* reply_action - REJECT/TEMPFAIL of an SMFIR_REPLYCODE text; ERROR if malformed */
static ShadowAction
reply_action(const char *text)
{
    if (text[0] == '4' && g_ascii_isdigit(text[1]) && g_ascii_isdigit(text[2]))
        return SHADOW_ACTION_TEMPFAIL;
    if (text[0] == '5' && g_ascii_isdigit(text[1]) && g_ascii_isdigit(text[2]))
        return SHADOW_ACTION_REJECT;
    return SHADOW_ACTION_ERROR;
}

/* decided - the child gave its verdict on the message at stage */
static void
decided(ShadowChild *c, ShadowAction action, ShadowStage stage, const char *reply)
{
    ShadowVerdict *v = verdict(c);

    if (v == NULL)
        return;
    v->action = action;
    v->stage = stage;
    g_free(v->reply);
    v->reply = g_strdup(reply);
    c->done_msg = TRUE;
    finish(c);
}

/* decided_conn - the child gave its verdict on the whole connection */
static void
decided_conn(ShadowChild *c, ShadowAction action, ShadowStage stage, const char *reply)
{
    c->done_conn = TRUE;
    c->conn_action = action;
    c->conn_stage = stage;
    g_free(c->conn_reply);
    c->conn_reply = g_strdup(reply);
    if (c->msg && !c->done_msg) {
        ShadowVerdict *v = verdict(c);

        v->connection = TRUE;
        decided(c, action, stage, reply);
    }
}

/* apply_edit - record an end-of-message edit; in chained mode apply it to the copy */
static void
apply_edit(ShadowChild *c, const MilterPacket *pkt)
{
    ShadowVerdict *v = verdict(c);
    const char *a0 = pkt->argc > 0 ? pkt->argv[0] : NULL;
    const char *a1 = pkt->argc > 1 ? pkt->argv[1] : NULL;
    g_autofree char *value = NULL;

    if (v == NULL)
        return;
    if (pkt->code == SMFIR_REPLBODY) {
        const ShadowConfig *cfg = c->session->config;
        g_autoptr(GError) error = NULL;

        if (shadow_spool_size(c->replbody) + pkt->body_len > cfg->max_message) {
            protocol_error(c,
                           "sent a replacement body over max_message (%" G_GSIZE_FORMAT " bytes)",
                           cfg->max_message);
            return;
        }
        if (c->replbody == NULL) {
            /* Recorded where it came; its size is known at the final answer. Spooled like the
             * message itself: a replacement body is as large as a message. */
            c->replbody = shadow_spool_new(cfg->spool_memory, cfg->spool_dir);
            shadow_spool_set_budget(c->replbody, &c->session->server->spool_budget);
            c->replbody_failed = FALSE;
            shadow_verdict_add_edit(v, SMFIR_REPLBODY, 0, NULL, "0");
            c->replbody_edit = g_ptr_array_index(v->edits, v->edits->len - 1);
        }
        if (!c->replbody_failed &&
            !shadow_spool_append(c->replbody, pkt->body, pkt->body_len, &error)) {
            shadow_log_warning("%s milter %s: replacement body: %s; the children after it see "
                               "the body unreplaced",
                               c->session->id, c->cfg->name, error->message);
            c->replbody_failed = TRUE;
        }
        return;
    }
    shadow_verdict_add_edit(v, pkt->code, pkt->index, a0, a1);
    if (c->edited == NULL)
        return;
    /* A child without HDR_LEADSPC gets and gives values without the space. */
    if (a1 != NULL && c->session->leadspc && !(c->protocol & SMFIP_HDR_LEADSPC))
        value = g_strconcat(" ", a1, NULL);
    switch (pkt->code) {
    case SMFIR_ADDHEADER:
        shadow_message_add_header(c->edited, a0, value ? value : a1);
        break;
    case SMFIR_INSHEADER:
        shadow_message_insert_header(c->edited, pkt->index, a0, value ? value : a1);
        break;
    case SMFIR_CHGHEADER:
        shadow_message_change_header(c->edited, pkt->index, a0, a1[0] ? (value ? value : a1) : "");
        break;
    default:
        break; /* envelope edits: recorded only */
    }
}

/* eom_final - the last reply to SMFIC_BODYEOB */
static void
eom_final(ShadowChild *c, ShadowAction action, const char *reply)
{
    ShadowVerdict *v = verdict(c);
    ShadowJob *j = g_steal_pointer(&c->current);
    ShadowMessage *result = NULL;

    if (v && c->replbody && c->replbody_edit) {
        g_free(c->replbody_edit->value);
        c->replbody_edit->value =
            g_strdup_printf("%" G_GSIZE_FORMAT, shadow_spool_size(c->replbody));
    }
    c->replbody_edit = NULL;
    if (j->kind == JOB_CONTENT) {
        /* Chained: a child that refuses leaves the message as it found it. */
        if (shadow_action_is_refusal(action)) {
            result = g_steal_pointer(&j->model);
            g_clear_pointer(&c->edited, shadow_message_free);
        } else {
            result = g_steal_pointer(&c->edited);
            if (c->replbody && !c->replbody_failed)
                shadow_message_replace_body(result, g_steal_pointer(&c->replbody));
        }
    }
    g_clear_pointer(&c->replbody, shadow_spool_free);
    decided(c, action, SHADOW_STAGE_EOM, reply);
    if (j->kind == JOB_CONTENT) {
        /* A content job stays queued while it runs: it is done now. */
        g_queue_remove(&c->jobs, j);
        shadow_session_child_content_done(c->session, c, j->msg, result);
    }
    job_free(j);
}

/* protocol_error - kill the child for an illegal reply */
G_GNUC_PRINTF(2, 3)
static void
protocol_error(ShadowChild *c, const char *fmt, ...)
{
    va_list ap;
    g_autofree char *why = NULL;

    va_start(ap, fmt);
    why = g_strdup_vprintf(fmt, ap);
    va_end(ap);
    shadow_child_kill(c, SHADOW_ACTION_ERROR, why);
}

/* on_reply - one packet from a ready child */
static void
on_reply(ShadowChild *c, const MilterPacket *pkt)
{
    ShadowJob *j = c->current;
    guint8 code = c->current_code;
    ShadowStage stage = code_stage(code);
    ShadowVerdict *v = verdict(c);
    const char *name = milter_reply_name(pkt->code);
    ShadowAction action;

    if (j == NULL) {
        protocol_error(c, "sent %s with no command outstanding", name);
        return;
    }
    switch (pkt->code) {
    case SMFIR_PROGRESS:
        /* Progress restarts the wait but not the total: a child cannot stall forever. */
        {
            guint total =
                code == SMFIC_BODYEOB ? c->cfg->eom_timeout_ms : c->cfg->command_timeout_ms;
            gint64 spent = (g_get_monotonic_time() - c->sent_at) / 1000;

            if (spent >= total) {
                g_autofree char *why = g_strdup_printf(
                    "no final reply to %s within %u ms (progress does not extend it)",
                    milter_command_name(code), total);

                shadow_child_kill(c, SHADOW_ACTION_TIMEOUT, why);
                return;
            }
        }
        return;
    case SMFIR_QUARANTINE:
        /* Postfix takes it at any stage, libmilter sends it at EOM. Not a verdict. */
        if (v) {
            g_free(v->quarantine);
            v->quarantine = g_strdup(pkt->argv[0]);
        }
        return;
    case SMFIR_ADDHEADER:
    case SMFIR_INSHEADER:
    case SMFIR_CHGHEADER:
    case SMFIR_REPLBODY:
    case SMFIR_CHGFROM:
    case SMFIR_ADDRCPT:
    case SMFIR_ADDRCPT_PAR:
    case SMFIR_DELRCPT:
        if (code != SMFIC_BODYEOB) {
            protocol_error(c, "sent %s before end of message", name);
            return;
        }
        if ((c->actions & milter_reply_action(pkt->code)) == 0) {
            protocol_error(c, "sent %s without negotiating it", name);
            return;
        }
        apply_edit(c, pkt);
        return;
    case SMFIR_OPTNEG:
        protocol_error(c, "sent %s after negotiation", name);
        return;
    default:
        break;
    }

    /* A final answer to the outstanding command. */
    stop_timer(c);
    if (v)
        v->latency_us[stage] += (guint64)(g_get_monotonic_time() - c->sent_at);
    switch (pkt->code) {
    case SMFIR_CONTINUE:
        action = SHADOW_ACTION_CONTINUE;
        break;
    case SMFIR_ACCEPT:
        action = SHADOW_ACTION_ACCEPT;
        break;
    case SMFIR_REJECT:
        action = SHADOW_ACTION_REJECT;
        break;
    case SMFIR_TEMPFAIL:
        action = SHADOW_ACTION_TEMPFAIL;
        break;
    case SMFIR_DISCARD:
        action = SHADOW_ACTION_DISCARD;
        break;
    case SMFIR_SHUTDOWN: /* Postfix: 421 and disconnect */
        action = SHADOW_ACTION_TEMPFAIL;
        break;
    case SMFIR_SKIP:
        action = SHADOW_ACTION_CONTINUE;
        if (code == SMFIC_BODY)
            c->skip_body = TRUE;
        break;
    case SMFIR_REPLYCODE:
        action = reply_action(pkt->argv[0]);
        if (action == SHADOW_ACTION_ERROR) {
            protocol_error(c, "sent a malformed reply code \"%s\"", pkt->argv[0]);
            return;
        }
        break;
    default:
        protocol_error(c, "sent unexpected %s", name);
        return;
    }
    {
        const char *reply = pkt->code == SMFIR_REPLYCODE  ? pkt->argv[0]
                            : pkt->code == SMFIR_SHUTDOWN ? "421 4.7.0 shutdown"
                                                          : NULL;

        if (code == SMFIC_BODYEOB) {
            eom_final(c, action, reply);
            pump(c);
            return;
        }
        c->current = NULL;
        if (stage == SHADOW_STAGE_CONNECT || stage == SHADOW_STAGE_HELO ||
            pkt->code == SMFIR_SHUTDOWN) {
            /* Discard is not allowed here; Postfix ignores it (pitfall 18). */
            if (action != SHADOW_ACTION_CONTINUE && action != SHADOW_ACTION_DISCARD)
                decided_conn(c, action, stage, reply);
        } else if (stage == SHADOW_STAGE_RCPT &&
                   (action == SHADOW_ACTION_REJECT || action == SHADOW_ACTION_TEMPFAIL)) {
            if (v && j->arg)
                shadow_verdict_refuse_rcpt(v, j->arg, action, reply);
        } else if (stage == SHADOW_STAGE_UNKNOWN) {
            /* A refusal of an unknown command refuses only that command. */
        } else if (action != SHADOW_ACTION_CONTINUE && c->msg && !c->done_msg) {
            decided(c, action, stage, reply);
        }
        if (v && action == SHADOW_ACTION_CONTINUE && !c->done_msg)
            v->stage = stage;
        if (j->kind == JOB_CONTENT)
            c->current = NULL; /* the content job stays at the head of the queue */
        else
            job_free(j);
        pump(c);
    }
}

/* child_data - bytes from the child */
static void
child_data(ShadowConn *conn, const guint8 *buf, gsize len, gpointer user)
{
    ShadowChild *c = user;

    while (len > 0 && c->state != CHILD_DEAD) {
        g_autoptr(GError) error = NULL;
        MilterPacket pkt;
        gsize used;
        MilterDecodeStatus st = milter_decoder_feed(c->decoder, buf, len, &used, &pkt, &error);

        buf += used;
        len -= used;
        if (st == MILTER_DECODE_FAILED) {
            shadow_child_kill(
                c, c->state == CHILD_NEGOTIATING ? SHADOW_ACTION_UNAVAILABLE : SHADOW_ACTION_ERROR,
                error->message);
            return;
        }
        if (st != MILTER_DECODE_PACKET)
            continue;
        if (c->state == CHILD_NEGOTIATING)
            negotiated(c, &pkt);
        else if (c->state == CHILD_READY)
            on_reply(c, &pkt);
    }
}

/* switch_msg - the child's jobs have moved on to another message */
static void
switch_msg(ShadowChild *c, ShadowMsg *msg)
{
    if (c->msg && !c->msg->finished[c->index])
        finish(c);
    if (c->msg)
        shadow_msg_unref(c->msg);
    c->msg = shadow_msg_ref(msg);
    c->done_msg = FALSE;
    c->skip_body = FALSE;
    c->replbody_edit = NULL;
    g_clear_pointer(&c->replbody, shadow_spool_free);
    if (c->done_conn) {
        /* Decided for the whole connection: the same verdict for every message. */
        ShadowVerdict *v = verdict(c);

        v->connection = TRUE;
        decided(c, c->conn_action, c->conn_stage, c->conn_reply);
    }
}

/*
 * header_packet - SMFIC_HEADER for this child: its leading-space form, at most 64 KB
 *
 * Postfix sends a header of any length whole; libmilter drops the session on
 * a packet over 65535 data bytes (pitfall 13). Such a value is cut to fit,
 * so the child still judges the message.
 */
static GBytes *
header_packet(ShadowChild *c, const char *name, const char *value)
{
    GByteArray *out = g_byte_array_new();
    gsize name_len = strlen(name), value_len;
    g_autofree char *cut = NULL;

    if (c->session->leadspc && !(c->protocol & SMFIP_HDR_LEADSPC) && value[0] == ' ')
        value++;
    value_len = strlen(value);
    if (name_len + value_len + 2 > MILTER_MAX_DATA_SIZE && name_len + 2 < MILTER_MAX_DATA_SIZE) {
        cut = g_strndup(value, MILTER_MAX_DATA_SIZE - name_len - 2);
        value = cut;
        shadow_log_warning("%s milter %s: header %s of %" G_GSIZE_FORMAT
                           " bytes cut to fit a 64 KB milter packet",
                           c->session->id, c->cfg->name, name, value_len);
    }
    milter_encode_header(out, SMFIC_HEADER, 0, name, value);
    return g_byte_array_free_to_bytes(out);
}

/* send_macros - the content D packet stored for a command, if any */
static void
send_macros(ShadowChild *c, ShadowMsg *msg, int slot)
{
    GBytes *d = msg->content_macros[slot];

    if (d)
        shadow_conn_write(c->conn, g_bytes_get_data(d, NULL), g_bytes_get_size(d));
}

/* content_step - send the next packet of a released content job; TRUE if a reply is due */
static gboolean
content_step(ShadowChild *c, ShadowJob *j, gboolean *done)
{
    ShadowMessage *m = j->model;
    guint8 chunk[CHILD_CHUNK];
    g_autoptr(GError) error = NULL;
    GByteArray *out;
    gsize got;

    *done = FALSE;
    for (;;) {
        switch (j->phase) {
        case 0: /* headers */
            if (!shadow_child_wants(c, SMFIC_HEADER) || j->next_header >= m->headers->len) {
                j->phase = 1;
                continue;
            } else {
                const ShadowHeader *h = g_ptr_array_index(m->headers, j->next_header++);
                g_autoptr(GBytes) p = header_packet(c, h->name, h->value);

                send_macros(c, j->msg, 0);
                if (send_packet(c, j, SMFIC_HEADER, g_bytes_get_data(p, NULL), g_bytes_get_size(p)))
                    return TRUE;
                continue;
            }
        case 1: /* end of headers */
            j->phase = 2;
            if (!shadow_child_wants(c, SMFIC_EOH))
                continue;
            send_macros(c, j->msg, 1);
            out = g_byte_array_new();
            milter_encode_empty(out, SMFIC_EOH);
            if (send_packet(c, j, SMFIC_EOH, out->data, out->len)) {
                g_byte_array_unref(out);
                return TRUE;
            }
            g_byte_array_unref(out);
            continue;
        case 2: /* body */
            if (!shadow_child_wants(c, SMFIC_BODY) || c->skip_body) {
                j->phase = 3;
                continue;
            }
            if (!shadow_spool_read(m->body, j->next_body, chunk, sizeof(chunk), &got, &error)) {
                shadow_child_kill(c, SHADOW_ACTION_ERROR, error->message);
                return FALSE;
            }
            if (got == 0) {
                j->phase = 3;
                continue;
            }
            j->next_body += got;
            send_macros(c, j->msg, 2);
            out = g_byte_array_new();
            milter_encode_body(out, SMFIC_BODY, chunk, got);
            if (send_packet(c, j, SMFIC_BODY, out->data, out->len)) {
                g_byte_array_unref(out);
                return TRUE;
            }
            g_byte_array_unref(out);
            continue;
        case 3: /* end of message */
            j->phase = 4;
            shadow_message_free(c->edited);
            c->edited = shadow_message_fork(m);
            send_macros(c, j->msg, 3);
            out = g_byte_array_new();
            milter_encode_empty(out, SMFIC_BODYEOB);
            send_packet(c, j, SMFIC_BODYEOB, out->data, out->len);
            g_byte_array_unref(out);
            return TRUE;
        default:
            *done = TRUE;
            return FALSE;
        }
    }
}

/* skip_job - whether a job is not to be sent to this child */
static gboolean
skip_job(ShadowChild *c, const ShadowJob *j)
{
    if (j->kind == JOB_QUIT)
        return FALSE;
    if (c->done_conn)
        return TRUE;
    if (j->msg && c->done_msg && j->code != SMFIC_ABORT)
        return TRUE;
    if (j->code == SMFIC_BODY && c->skip_body)
        return TRUE;
    return !shadow_child_wants(c, j->code);
}

/* pump - send queued jobs until one needs a reply or the queue is empty */
static void
pump(ShadowChild *c)
{
    ShadowJob *j;

    while (c->state == CHILD_READY && c->current == NULL &&
           (j = g_queue_peek_head(&c->jobs)) != NULL) {
        if (j->msg && j->msg != c->msg)
            switch_msg(c, j->msg);
        if (c->state != CHILD_READY)
            return;
        if (j->kind == JOB_CONTENT) {
            gboolean done;

            if (c->done_msg || c->done_conn) {
                g_queue_pop_head(&c->jobs);
                drop_job(c, j);
                continue;
            }
            if (j->model == NULL)
                return; /* not our turn in the chain yet */
            if (content_step(c, j, &done) || c->state != CHILD_READY)
                return;
            if (!done)
                continue;
            g_queue_pop_head(&c->jobs);
            job_free(j);
            continue;
        }
        g_queue_pop_head(&c->jobs);
        c->backlog -= j->bytes ? g_bytes_get_size(j->bytes) : 0;
        if (j->held)
            c->held -= j->bytes ? g_bytes_get_size(j->bytes) : 0;
        if (j->kind == JOB_QUIT) {
            GByteArray *out = g_byte_array_new();

            if (c->msg && !c->msg->finished[c->index])
                finish(c);
            milter_encode_empty(out, SMFIC_QUIT);
            shadow_conn_write(c->conn, out->data, out->len);
            g_byte_array_unref(out);
            c->state = CHILD_CLOSING;
            start_timer(c, SMFIC_QUIT);
            job_free(j);
            return;
        }
        if (skip_job(c, j)) {
            job_free(j);
            continue;
        }
        if (j->code == SMFIC_ABORT && c->msg && j->msg == c->msg && !c->done_msg) {
            /* The MTA gave the message up: the child's part ends here. */
            c->done_msg = TRUE;
            finish(c);
        }
        if (!send_packet(c, j, j->code, g_bytes_get_data(j->bytes, NULL),
                         g_bytes_get_size(j->bytes)))
            job_free(j);
    }
}

/* waits_for_chain - some queued content job is still held by the chain */
static gboolean
waits_for_chain(const ShadowChild *c)
{
    for (const GList *l = c->jobs.head; l; l = l->next) {
        const ShadowJob *j = l->data;

        if (j->kind == JOB_CONTENT && j->model == NULL)
            return TRUE;
    }
    return FALSE;
}

/* shadow_child_enqueue - add a job; a dead child fails it at once */
void
shadow_child_enqueue(ShadowChild *c, ShadowJobKind kind, guint8 code, GBytes *bytes, ShadowMsg *msg,
                     ShadowWait *wait, const char *arg)
{
    ShadowJob *j = g_new0(ShadowJob, 1);

    j->kind = kind;
    j->code = code;
    j->bytes = bytes ? g_bytes_ref(bytes) : NULL;
    j->msg = msg ? shadow_msg_ref(msg) : NULL;
    j->wait = wait ? shadow_wait_ref(wait) : NULL;
    j->arg = g_strdup(arg);
    if (c->state == CHILD_DEAD || c->state == CHILD_CLOSING) {
        if (kind == JOB_QUIT) {
            job_free(j);
            return;
        }
        drop_job(c, j);
        return;
    }
    /*
     * What queues while the chain holds the child up is the fault of a
     * slower child before it in the chain, which has at least as much
     * queued and overflows first; it does not count against this one.
     */
    j->held = waits_for_chain(c);
    g_queue_push_tail(&c->jobs, j);
    c->backlog += bytes ? g_bytes_get_size(bytes) : 0;
    if (j->held)
        c->held += bytes ? g_bytes_get_size(bytes) : 0;
    if (c->backlog - c->held > c->session->config->backlog) {
        g_autofree char *why = g_strdup_printf(
            "fell %" G_GSIZE_FORMAT " bytes behind the MTA (backlog %" G_GSIZE_FORMAT ")",
            c->backlog, c->session->config->backlog);

        shadow_child_kill(c, SHADOW_ACTION_OVERFLOW, why);
        return;
    }
    pump(c);
}

/* shadow_child_release_content - chained mode: it is this child's turn for msg */
void
shadow_child_release_content(ShadowChild *c, ShadowMsg *msg, ShadowMessage *model)
{
    for (GList *l = c->jobs.head; l; l = l->next) {
        ShadowJob *j = l->data;

        if (j->kind == JOB_CONTENT && j->msg == msg && j->model == NULL) {
            j->model = model;
            pump(c);
            return;
        }
    }
    /* No content job waits (the child died or already passed it): hand it back. */
    shadow_session_child_content_done(c->session, c, msg, model);
}
