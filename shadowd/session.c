/* SPDX-License-Identifier: MIT */
/*
 * NAME
 *	session - shadowd as the milter of one MTA connection
 * DESCRIPTION
 *	The MTA talks to one milter; the session fans every command out to
 *	the children and answers the MTA itself, with nothing but what a
 *	passive milter may say: SMFIR_OPTNEG, SMFIR_CONTINUE and, while the
 *	MTA waits at end of message, SMFIR_PROGRESS.
 *
 *	Stages outside the content go to every child at once. The content
 *	(headers, body) is kept as it comes, in memory and then a spool file,
 *	and at end of message each child gets a content job that replays it at
 *	its own pace. content = independent releases it to every child at
 *	once; content = chained hands it down the chain, each child getting
 *	the copy the children before it edited (a refusing child's edits are
 *	dropped, as an enforced chain would drop them).
 *
 *	reply = immediate answers the MTA at once and asks it for no replies
 *	where it offered that; reply = wait answers each envelope command when
 *	every child has, and end of message when the whole message is done, or
 *	at a deadline that keeps inside the MTA's timeouts.
 */

/* Build configuration. */
#include "config.h"

/* System library. */
#include <string.h>

/* Application-specific. */
#include "shadowd.h"
#include "log.h"

/* The NR bits shadowd asks the MTA for in reply = immediate. */
#define SESSION_NR_BITS                                                                            \
    (SMFIP_NR_CONN | SMFIP_NR_HELO | SMFIP_NR_MAIL | SMFIP_NR_RCPT | SMFIP_NR_DATA |               \
     SMFIP_NR_UNKN | SMFIP_NR_EOH | SMFIP_NR_BODY | SMFIP_NR_HDR)

/* Protocol bits never passed on to children: shadowd does not handle them. */
#define SESSION_CHILD_MASKED (SMFIP_RCPT_REJ | SMFI_INTERNAL)

/*
 * Macros the MTAs send by default, per SMFIM stage (Postfix 3.7's
 * milter_*_macros and Sendmail's Milter.macros.*). When a child asks for a
 * list at a stage, shadowd asks the MTA for that list plus these, so that
 * children that rely on the defaults still get them.
 */
static const char *const default_macros[SMFIM_COUNT] = {
    "j {daemon_name} {daemon_addr} v _ {if_name} {if_addr} {client_addr} {client_name}",
    "{tls_version} {cipher} {cipher_bits} {cert_subject} {cert_issuer}",
    "i {auth_type} {auth_authen} {auth_author} {auth_ssf} {mail_addr} {mail_host} {mail_mailer}",
    "i {rcpt_addr} {rcpt_host} {rcpt_mailer}",
    "i",
    "i {msg_id}",
    "i",
};

static void mta_data(ShadowConn *conn, const guint8 *buf, gsize len, gpointer user);
static void mta_event(ShadowConn *conn, ShadowConnEvent ev, const GError *error, gpointer user);
static void msg_finalize(ShadowMsg *m);
static void maybe_reply_optneg(ShadowSession *s);

static const ShadowConnFuncs mta_funcs = { mta_data, mta_event };

/* ---- messages and waits ------------------------------------------------ */

/* shadow_msg_ref - take a reference */
ShadowMsg *
shadow_msg_ref(ShadowMsg *m)
{
    m->refs++;
    return m;
}

/* shadow_msg_unref - drop a reference; the last frees the message */
void
shadow_msg_unref(ShadowMsg *m)
{
    if (m == NULL || --m->refs > 0)
        return;
    for (guint i = 0; i < m->n_children; i++)
        shadow_verdict_free(m->verdicts[i]);
    g_free(m->verdicts);
    g_free(m->finished);
    if (m->children)
        g_ptr_array_unref(m->children);
    g_free(m->id);
    g_free(m->helo);
    g_free(m->from);
    g_ptr_array_unref(m->from_args);
    g_ptr_array_unref(m->rcpts);
    g_free(m->queue_id);
    g_free(m->auth);
    g_free(m->message_id);
    shadow_message_free(m->content);
    shadow_message_free(m->chain);
    for (int i = 0; i < 4; i++)
        if (m->content_macros[i])
            g_bytes_unref(m->content_macros[i]);
    if (m->eom_wait)
        shadow_wait_unref(m->eom_wait);
    g_free(m);
}

/* msg_new - a message starting at MAIL FROM */
static ShadowMsg *
msg_new(ShadowSession *s)
{
    ShadowMsg *m = g_new0(ShadowMsg, 1);

    m->refs = 1;
    m->session = s;
    m->seq = ++s->msg_seq;
    m->id = g_strdup_printf("%s.%u", s->id, m->seq);
    m->started = g_get_real_time();
    m->from_args = g_ptr_array_new_with_free_func(g_free);
    m->rcpts = g_ptr_array_new_with_free_func(g_free);
    m->n_children = s->children->len;
    m->verdicts = g_new0(ShadowVerdict *, m->n_children + 1);
    m->finished = g_new0(gboolean, m->n_children + 1);
    m->unfinished = m->n_children;
    for (guint i = 0; i < m->n_children; i++) {
        ShadowChild *c = g_ptr_array_index(s->children, i);

        m->verdicts[i] = shadow_verdict_new(c->cfg->name);
    }
    m->content = shadow_message_new(s->config->spool_memory, s->config->spool_dir);
    shadow_message_set_budget(m->content, &s->server->spool_budget);
    m->children = g_ptr_array_new();
    for (guint i = 0; i < m->n_children; i++)
        g_ptr_array_add(m->children, g_ptr_array_index(s->children, i));
    s->msgs_in_flight++;
    s->inflight = g_list_prepend(s->inflight, m);
    return m;
}

/* shadow_session_verdict - a child's verdict for a message */
ShadowVerdict *
shadow_session_verdict(ShadowMsg *msg, ShadowChild *c)
{
    return c->index < msg->n_children ? msg->verdicts[c->index] : NULL;
}

/* shadow_wait_ref - take a reference */
ShadowWait *
shadow_wait_ref(ShadowWait *w)
{
    w->refs++;
    return w;
}

/* wait_stop - cancel a wait's timers */
static void
wait_stop(ShadowWait *w)
{
    shadow_deadline_disarm(&w->deadline);
    shadow_deadline_disarm(&w->progress);
}

/* shadow_wait_unref - drop a reference */
void
shadow_wait_unref(ShadowWait *w)
{
    if (w == NULL || --w->refs > 0)
        return;
    wait_stop(w);
    g_free(w);
}

/* send_empty - one fixed reply to the MTA */
static void
send_empty(ShadowSession *s, guint8 code)
{
    guint8 p[MILTER_LEN_SIZE + 1] = { 0, 0, 0, 1, code };

    if (s->mta)
        shadow_conn_write(s->mta, p, sizeof(p));
}

/* wait_answer - answer the MTA for a wait, once */
static void
wait_answer(ShadowWait *w)
{
    ShadowSession *s = w->session;

    if (s == NULL)
        return;
    w->session = NULL;
    wait_stop(w);
    send_empty(s, SMFIR_CONTINUE);
}

/* shadow_wait_done - one child is through with the waited-for command */
void
shadow_wait_done(ShadowWait *w)
{
    if (w->pending > 0 && --w->pending == 0)
        wait_answer(w);
}

/* wait_deadline - the MTA must have its answer now */
static void
wait_deadline(ShadowDeadline *d, gpointer data)
{
    ShadowWait *w = data;

    (void)d;
    if (w->session)
        shadow_log_warning("%s: children still busy with %s after the deadline; answered the MTA",
                           w->session->id, milter_command_name(w->code));
    wait_answer(w);
}

/* wait_progress - keep the MTA waiting at end of message */
static void
wait_progress(ShadowDeadline *d, gpointer data)
{
    ShadowWait *w = data;

    if (w->session) {
        send_empty(w->session, SMFIR_PROGRESS);
        shadow_deadline_arm(d, SHADOW_PROGRESS_INTERVAL_MS);
    }
}

/* wait_new - the MTA waits for children on code (reply = wait) */
static ShadowWait *
wait_new(ShadowSession *s, guint8 code, guint pending)
{
    ShadowWait *w = g_new0(ShadowWait, 1);
    guint deadline =
        code == SMFIC_BODYEOB ? SHADOW_MTA_EOM_DEADLINE_MS : SHADOW_MTA_COMMAND_DEADLINE_MS;

    w->refs = 1;
    w->session = s;
    w->code = code;
    w->pending = pending;
    shadow_deadline_init(&w->deadline, wait_deadline, w);
    shadow_deadline_init(&w->progress, wait_progress, w);
    shadow_deadline_arm(&w->deadline, deadline);
    if (code == SMFIC_BODYEOB)
        shadow_deadline_arm(&w->progress, SHADOW_PROGRESS_INTERVAL_MS);
    return w;
}

/* ---- fan-out ----------------------------------------------------------- */

/* answer_due - whether the MTA waits for an answer to this command */
static gboolean
answer_due(const ShadowSession *s, guint8 code)
{
    static const struct {
        guint8 code;
        guint32 nr;
    } nr[] = {
        { SMFIC_CONNECT, SMFIP_NR_CONN }, { SMFIC_HELO, SMFIP_NR_HELO },
        { SMFIC_MAIL, SMFIP_NR_MAIL },    { SMFIC_RCPT, SMFIP_NR_RCPT },
        { SMFIC_DATA, SMFIP_NR_DATA },    { SMFIC_UNKNOWN, SMFIP_NR_UNKN },
        { SMFIC_HEADER, SMFIP_NR_HDR },   { SMFIC_EOH, SMFIP_NR_EOH },
        { SMFIC_BODY, SMFIP_NR_BODY },
    };

    if (code == SMFIC_MACRO || code == SMFIC_ABORT || code == SMFIC_QUIT || code == SMFIC_QUIT_NC)
        return FALSE;
    for (gsize i = 0; i < G_N_ELEMENTS(nr); i++)
        if (nr[i].code == code)
            return (s->up_protocol & nr[i].nr) == 0;
    return TRUE;
}

/* broadcast - give a command to every child; in wait mode the answer waits for them */
static void
broadcast(ShadowSession *s, guint8 code, GBytes *bytes, ShadowMsg *msg, const char *arg)
{
    ShadowWait *w = NULL;
    gboolean due = answer_due(s, code);

    if (due && s->config->reply == SHADOW_REPLY_WAIT && code != SMFIC_BODYEOB)
        w = wait_new(s, code, s->children->len + 1);
    for (guint i = 0; i < s->children->len; i++)
        shadow_child_enqueue(g_ptr_array_index(s->children, i), JOB_PACKET, code, bytes, msg, w,
                             arg);
    if (w) {
        shadow_wait_done(w); /* the +1: all enqueued */
        shadow_wait_unref(w);
    } else if (due && code != SMFIC_BODYEOB) {
        send_empty(s, SMFIR_CONTINUE);
    }
}

/* ---- negotiation ------------------------------------------------------- */

/* add_names - add the space/comma separated names of list to set (in order) */
static void
add_names(GPtrArray *set, const char *list)
{
    g_auto(GStrv) names = g_strsplit_set(list, " ,", -1);

    for (guint i = 0; names[i]; i++) {
        gboolean have = FALSE;

        if (names[i][0] == '\0')
            continue;
        for (guint k = 0; k < set->len && !have; k++)
            have = strcmp(set->pdata[k], names[i]) == 0;
        if (!have)
            g_ptr_array_add(set, g_strdup(names[i]));
    }
}

/* reply_optneg - answer the MTA's SMFIC_OPTNEG from what the children want */
static void
reply_optneg(ShadowSession *s)
{
    g_autoptr(GByteArray) out = g_byte_array_new();
    GPtrArray *lists[SMFIM_COUNT] = { NULL };
    MilterSymlist syms[SMFIM_COUNT];
    g_autofree char *joined[SMFIM_COUNT] = { NULL };
    gsize n_syms = 0;
    guint32 actions = 0, protocol = 0;
    gboolean want_leadspc = FALSE;

    for (guint i = 0; i < s->children->len; i++) {
        ShadowChild *c = g_ptr_array_index(s->children, i);

        if (c->state != CHILD_READY)
            continue;
        if (c->protocol & SMFIP_HDR_LEADSPC)
            want_leadspc = TRUE;
        for (guint k = 0; k < c->symlists->len; k++) {
            const MilterSymlist *sl = g_ptr_array_index(c->symlists, k);

            if (sl->stage >= SMFIM_COUNT)
                continue;
            if (lists[sl->stage] == NULL) {
                lists[sl->stage] = g_ptr_array_new_with_free_func(g_free);
                add_names(lists[sl->stage], default_macros[sl->stage]);
            }
            add_names(lists[sl->stage], sl->macros);
        }
    }
    for (guint st = 0; st < SMFIM_COUNT; st++) {
        if (lists[st] == NULL)
            continue;
        g_ptr_array_add(lists[st], NULL);
        joined[st] = g_strjoinv(" ", (char **)lists[st]->pdata);
        syms[n_syms].stage = st;
        syms[n_syms].macros = joined[st];
        n_syms++;
        g_ptr_array_unref(lists[st]);
    }
    if (n_syms > 0 && (s->mta_actions & SMFIF_SETSYMLIST))
        actions |= SMFIF_SETSYMLIST;
    else
        n_syms = 0;
    if (s->config->reply == SHADOW_REPLY_IMMEDIATE)
        protocol |= s->mta_protocol & SESSION_NR_BITS;
    if (want_leadspc && (s->mta_protocol & SMFIP_HDR_LEADSPC)) {
        protocol |= SMFIP_HDR_LEADSPC;
        s->leadspc = TRUE;
    }
    s->up_protocol = protocol;
    milter_encode_optneg(out, SMFIR_OPTNEG, MIN(s->mta_version, MILTER_PROTO_VERSION), actions,
                         protocol, syms, n_syms);
    shadow_conn_write(s->mta, out->data, out->len);
    s->negotiated = TRUE;
    shadow_deadline_disarm(&s->negotiate_deadline);
}

/* maybe_reply_optneg - answer once no child is still negotiating */
static void
maybe_reply_optneg(ShadowSession *s)
{
    if (s->negotiated || s->mta == NULL || s->mta_version == 0)
        return;
    for (guint i = 0; i < s->children->len; i++) {
        ShadowChild *c = g_ptr_array_index(s->children, i);

        if (c->state == CHILD_CONNECTING || c->state == CHILD_NEGOTIATING)
            return;
    }
    reply_optneg(s);
}

/* negotiate_deadline - children too slow to negotiate are given up */
static void
negotiate_deadline(ShadowDeadline *d, gpointer data)
{
    ShadowSession *s = data;

    (void)d;
    for (guint i = 0; i < s->children->len; i++) {
        ShadowChild *c = g_ptr_array_index(s->children, i);

        if (c->state == CHILD_CONNECTING || c->state == CHILD_NEGOTIATING)
            shadow_child_kill(c, SHADOW_ACTION_UNAVAILABLE,
                              "not negotiated before the MTA's deadline");
    }
    maybe_reply_optneg(s);
}

/* start_children - one child per enabled milter, negotiating with the MTA's offer */
static void
start_children(ShadowSession *s)
{
    guint32 protocol = s->mta_protocol & ~SESSION_CHILD_MASKED;
    guint32 version = MIN(s->mta_version, MILTER_PROTO_VERSION);
    guint deadline = 0;

    for (guint i = 0; i < s->config->milters->len && !s->overloaded; i++) {
        const ShadowMilterConfig *mc = g_ptr_array_index(s->config->milters, i);

        if (mc->enabled)
            g_ptr_array_add(s->children, shadow_child_new(s, mc, s->children->len));
    }
    for (guint i = 0; i < s->children->len; i++) {
        ShadowChild *c = g_ptr_array_index(s->children, i);

        deadline = MAX(deadline, c->cfg->connect_timeout_ms + c->cfg->command_timeout_ms);
        shadow_child_start(c, version, s->mta_actions, protocol);
    }
    deadline = MIN(deadline, SHADOW_MTA_COMMAND_DEADLINE_MS);
    if (!s->negotiated && s->children->len > 0) {
        shadow_deadline_init(&s->negotiate_deadline, negotiate_deadline, s);
        shadow_deadline_arm(&s->negotiate_deadline, deadline);
    }
    maybe_reply_optneg(s);
}

/* shadow_session_child_ready - a child finished negotiating */
void
shadow_session_child_ready(ShadowSession *s, ShadowChild *c)
{
    shadow_log_debug("%s milter %s: negotiated version %u actions 0x%x protocol 0x%x", s->id,
                     c->cfg->name, c->version, c->actions, c->protocol);
    maybe_reply_optneg(s);
}

/* shadow_session_child_dead - a child is gone for this connection */
void
shadow_session_child_dead(ShadowSession *s, ShadowChild *c)
{
    if (c->dead_action != SHADOW_ACTION_CONTINUE)
        s->errors++;
    maybe_reply_optneg(s);
    shadow_session_maybe_free(s);
}

/* ---- the chain --------------------------------------------------------- */

/* chain_advance - hand the message to the next child whose turn it is */
static void
chain_advance(ShadowMsg *m)
{
    while (m->chain_pos < m->n_children) {
        ShadowChild *c = g_ptr_array_index(m->children, m->chain_pos);
        ShadowMessage *model = g_steal_pointer(&m->chain);

        /* The child hands it back through shadow_session_child_content_done(). */
        shadow_child_release_content(c, m, model);
        return;
    }
}

/* shadow_session_child_content_done - a child is through with the content */
void
shadow_session_child_content_done(ShadowSession *s, ShadowChild *c, ShadowMsg *msg,
                                  ShadowMessage *result)
{
    if (result == NULL)
        return; /* it skipped its turn before the chain reached it */
    if (s->config->content != SHADOW_CONTENT_CHAINED) {
        shadow_message_free(result); /* independent: nobody sees this child's edits */
        return;
    }
    shadow_message_free(msg->chain);
    msg->chain = result;
    if (c->index == msg->chain_pos) {
        msg->chain_pos++;
        chain_advance(msg);
    }
}

/* shadow_session_child_finished - a child's part in a message is over */
void
shadow_session_child_finished(ShadowSession *s, ShadowChild *c, ShadowMsg *msg)
{
    if (c->index >= msg->n_children || msg->finished[c->index])
        return;
    msg->finished[c->index] = TRUE;
    msg->unfinished--;
    msg_finalize(msg);
}

/* ---- records ----------------------------------------------------------- */

/* msg_finalize - all children done and the MTA done: predict and log */
static void
msg_finalize(ShadowMsg *m)
{
    ShadowSession *s = m->session;
    ShadowPrediction p;

    if (m->finalized || !m->mta_ended || m->unfinished > 0 || s == NULL)
        return;
    m->finalized = TRUE;
    shadow_predict(m->verdicts, m->n_children, (const char *const *)m->rcpts->pdata, m->rcpts->len,
                   &p);
    shadow_event_log_message(s->server->log, s, m, &p);
    shadow_prediction_clear(&p);
    if (m->eom_wait) {
        shadow_wait_done(m->eom_wait);
        g_clear_pointer(&m->eom_wait, shadow_wait_unref);
    }
    g_clear_pointer(&m->content, shadow_message_free);
    g_clear_pointer(&m->chain, shadow_message_free);
    s->msgs_in_flight--;
    s->inflight = g_list_remove(s->inflight, m);
    shadow_msg_unref(m);
    shadow_session_maybe_free(s);
}

static void forget_macro(ShadowSession *s, const char *name);

/* msg_end - the MTA is done with the message (end of message or abort) */
static void
msg_end(ShadowSession *s, gboolean aborted)
{
    ShadowMsg *m = s->msg;

    /* The queue id belongs to the message: the next one gets its own. */
    forget_macro(s, "i");
    if (m == NULL)
        return;
    s->msg = NULL;
    m->mta_ended = TRUE;
    m->aborted = aborted;
    s->messages++;
    msg_finalize(m);
}

/* ---- the MTA side ------------------------------------------------------ */

/* macro_value - the latest value the MTA sent for a macro, or NULL */
static const char *
macro_value(ShadowSession *s, const char *name)
{
    g_autofree char *braced = g_strdup_printf("{%s}", name);

    for (guint i = 0; i + 1 < s->macros->len; i += 2) {
        const char *n = s->macros->pdata[i];

        if (strcmp(n, name) == 0 || strcmp(n, braced) == 0)
            return s->macros->pdata[i + 1];
    }
    return NULL;
}

/* forget_macro - drop a remembered macro */
static void
forget_macro(ShadowSession *s, const char *name)
{
    for (guint i = 0; i + 1 < s->macros->len; i += 2)
        if (strcmp(s->macros->pdata[i], name) == 0) {
            g_ptr_array_remove_range(s->macros, i, 2);
            return;
        }
}

/* remember_macros - keep the values of a D packet (latest wins) */
static void
remember_macros(ShadowSession *s, const MilterPacket *pkt)
{
    for (gsize i = 0; i + 1 < pkt->argc; i += 2) {
        gboolean found = FALSE;

        for (guint k = 0; k + 1 < s->macros->len && !found; k += 2)
            if (strcmp(s->macros->pdata[k], pkt->argv[i]) == 0) {
                g_free(s->macros->pdata[k + 1]);
                s->macros->pdata[k + 1] = g_strdup(pkt->argv[i + 1]);
                found = TRUE;
            }
        if (!found) {
            g_ptr_array_add(s->macros, g_strdup(pkt->argv[i]));
            g_ptr_array_add(s->macros, g_strdup(pkt->argv[i + 1]));
        }
    }
}

/* content_slot - which stored content D a macro packet is for, or -1 */
static int
content_slot(guint8 cmd)
{
    switch (cmd) {
    case SMFIC_HEADER:
        return 0;
    case SMFIC_EOH:
        return 1;
    case SMFIC_BODY:
        return 2;
    case SMFIC_BODYEOB:
        return 3;
    default:
        return -1;
    }
}

/* chained - whether this session keeps content for the chain */
static gboolean
chained(const ShadowSession *s)
{
    return s->config->content == SHADOW_CONTENT_CHAINED;
}

/* spool_body - keep body bytes for the chain */
static void
spool_body(ShadowSession *s, ShadowMsg *m, const guint8 *data, gsize len)
{
    g_autoptr(GError) error = NULL;
    guint failed = s->server->spool_budget.failed;

    if (m->content == NULL || m->content_lost)
        return;
    if (m->size > s->config->max_message) {
        m->content_lost = TRUE;
        shadow_log_warning("%s: message over max_message (%" G_GSIZE_FORMAT
                           " bytes): its content is not shadowed",
                           m->id, s->config->max_message);
        return;
    }
    if (!shadow_spool_append(m->content->body, data, len, &error)) {
        m->content_lost = TRUE;
        shadow_log_warning("%s: %s: its content is not shadowed", m->id, error->message);
    } else if (s->server->spool_budget.failed != failed) {
        shadow_log_warning("%s: no spool file could be made in %s: the message stays in memory, "
                           "over spool_memory_total",
                           m->id, s->config->spool_dir);
    }
}

/* release_all - independent mode: every child gets the original at once */
static void
release_all(ShadowMsg *m)
{
    for (guint i = 0; i < m->n_children; i++)
        shadow_child_release_content(g_ptr_array_index(m->children, i), m,
                                     shadow_message_fork(m->content));
    g_clear_pointer(&m->content, shadow_message_free);
}

/* lose_content - no content to show: the children's verdicts on it are lost, not faked */
static void
lose_content(ShadowSession *s, ShadowMsg *m)
{
    g_autoptr(GByteArray) out = g_byte_array_new();
    g_autoptr(GBytes) abort_pkt = NULL;

    for (guint i = 0; i < m->n_children; i++) {
        if (m->finished[i])
            continue;
        m->verdicts[i]->action = SHADOW_ACTION_OVERFLOW;
        g_free(m->verdicts[i]->reason);
        m->verdicts[i]->reason =
            g_strdup("message over max_message or not spooled: its content was not shown");
    }
    milter_encode_empty(out, SMFIC_ABORT);
    abort_pkt = g_bytes_new(out->data, out->len);
    for (guint i = 0; i < s->children->len; i++)
        shadow_child_enqueue(g_ptr_array_index(s->children, i), JOB_PACKET, SMFIC_ABORT, abort_pkt,
                             m, NULL, NULL);
}

/*
 * end_of_message - SMFIC_BODYEOB from the MTA
 *
 * The content was kept as it came (headers, body spool); each child now
 * gets a content job that replays it at the child's own pace, so a slow
 * child holds up nobody but, in chained mode, the children after it.
 * Chained: released down the chain; independent: to all at once.
 */
static void
end_of_message(ShadowSession *s, const MilterPacket *pkt)
{
    ShadowMsg *m = s->msg;

    if (m == NULL) {
        /* End of message outside a message: nothing to shadow, answer anyway. */
        send_empty(s, SMFIR_CONTINUE);
        return;
    }
    if (pkt->body_len > 0) {
        /* libmilter takes data in EOB as a last chunk: children get it as BODY (pitfall 5). */
        m->size += pkt->body_len;
        spool_body(s, m, pkt->body, pkt->body_len);
    }
    if (s->config->reply == SHADOW_REPLY_WAIT)
        m->eom_wait = wait_new(s, SMFIC_BODYEOB, 1);
    else
        send_empty(s, SMFIR_CONTINUE);

    if (m->content_lost) {
        lose_content(s, m);
    } else {
        for (guint i = 0; i < s->children->len; i++)
            shadow_child_enqueue(g_ptr_array_index(s->children, i), JOB_CONTENT, SMFIC_BODYEOB,
                                 NULL, m, NULL, NULL);
        if (chained(s)) {
            m->chain = g_steal_pointer(&m->content);
            m->chain_pos = 0;
            chain_advance(m);
        } else {
            release_all(m);
        }
    }
    msg_end(s, FALSE);
}

/* quit_children - every child gets SMFIC_QUIT after the jobs it has queued */
static void
quit_children(ShadowSession *s)
{
    for (guint i = 0; i < s->children->len; i++)
        shadow_child_enqueue(g_ptr_array_index(s->children, i), JOB_QUIT, SMFIC_QUIT, NULL, NULL,
                             NULL, NULL);
}

/* mta_packet - one command from the MTA */
static void
mta_packet(ShadowSession *s, const MilterPacket *pkt, GBytes *raw)
{
    ShadowMsg *m = s->msg;

    switch (pkt->code) {
    case SMFIC_OPTNEG:
        if (s->mta_version != 0) {
            shadow_log_warning("%s: second SMFIC_OPTNEG from the MTA ignored", s->id);
            return;
        }
        s->mta_version = pkt->version ? pkt->version : 2;
        s->mta_actions = pkt->actions ? pkt->actions : SMFI_V1_ACTS;
        s->mta_protocol = pkt->protocol ? pkt->protocol : SMFI_V1_PROT;
        start_children(s);
        return;
    case SMFIC_MACRO: {
        int slot = content_slot(pkt->macro_cmd);

        remember_macros(s, pkt);
        if (m && slot >= 0) {
            if (m->content_macros[slot])
                g_bytes_unref(m->content_macros[slot]);
            m->content_macros[slot] = g_bytes_ref(raw);
            return;
        }
        broadcast(s, SMFIC_MACRO, raw, m, NULL);
        return;
    }
    case SMFIC_CONNECT:
        g_free(s->client_name);
        g_free(s->client_addr);
        s->client_name = g_strdup(pkt->argv[0]);
        s->client_addr = g_strdup(pkt->argc > 1 ? pkt->argv[1] : NULL);
        g_free(s->client_port);
        s->client_port = pkt->family != SMFIA_UNKNOWN ? g_strdup_printf("%u", pkt->port) : NULL;
        shadow_event_log_connection(s->server->log, s, TRUE);
        broadcast(s, pkt->code, raw, NULL, NULL);
        return;
    case SMFIC_HELO:
        g_free(s->helo);
        s->helo = g_strdup(pkt->argv[0]);
        broadcast(s, pkt->code, raw, m, NULL);
        return;
    case SMFIC_MAIL:
        if (m)
            msg_end(s, TRUE);
        m = s->msg = msg_new(s);
        m->helo = g_strdup(s->helo);
        m->from = g_strdup(pkt->argv[0]);
        for (gsize i = 1; i < pkt->argc; i++)
            g_ptr_array_add(m->from_args, g_strdup(pkt->argv[i]));
        m->auth = g_strdup(macro_value(s, "auth_authen"));
        m->queue_id = g_strdup(macro_value(s, "i"));
        broadcast(s, pkt->code, raw, m, NULL);
        return;
    case SMFIC_RCPT:
        if (m)
            g_ptr_array_add(m->rcpts, g_strdup(pkt->argv[0]));
        broadcast(s, pkt->code, raw, m, pkt->argv[0]);
        return;
    case SMFIC_DATA:
    case SMFIC_UNKNOWN:
        if (m && macro_value(s, "i") && m->queue_id == NULL)
            m->queue_id = g_strdup(macro_value(s, "i"));
        broadcast(s, pkt->code, raw, m, NULL);
        return;
    case SMFIC_HEADER:
        if (m) {
            if (g_ascii_strcasecmp(pkt->argv[0], "Message-ID") == 0 && m->message_id == NULL)
                m->message_id = g_strstrip(g_strdup(pkt->argv[1]));
            m->header_bytes += strlen(pkt->argv[0]) + strlen(pkt->argv[1]) + 3;
            if (m->queue_id == NULL && macro_value(s, "i"))
                m->queue_id = g_strdup(macro_value(s, "i"));
        }
        if (m) {
            shadow_message_add_header(m->content, pkt->argv[0], pkt->argv[1]);
            if (answer_due(s, SMFIC_HEADER))
                send_empty(s, SMFIR_CONTINUE);
            return;
        }
        broadcast(s, pkt->code, raw, m, NULL);
        return;
    case SMFIC_EOH:
        if (m) {
            if (answer_due(s, SMFIC_EOH))
                send_empty(s, SMFIR_CONTINUE);
            return;
        }
        broadcast(s, pkt->code, raw, m, NULL);
        return;
    case SMFIC_BODY:
        if (m) {
            m->size += pkt->body_len;
            spool_body(s, m, pkt->body, pkt->body_len);
            if (answer_due(s, SMFIC_BODY))
                send_empty(s, SMFIR_CONTINUE);
            return;
        }
        broadcast(s, pkt->code, raw, m, NULL);
        return;
    case SMFIC_BODYEOB:
        end_of_message(s, pkt);
        return;
    case SMFIC_ABORT:
        broadcast(s, pkt->code, raw, m, NULL);
        msg_end(s, TRUE);
        return;
    case SMFIC_QUIT_NC: {
        ShadowChild *c;

        msg_end(s, TRUE);
        quit_children(s);
        /* The same socket carries a new connection: its own id, records and children. */
        shadow_event_log_connection(s->server->log, s, FALSE);
        g_free(s->id);
        s->id = g_strdup_printf("%06" G_GINT64_MODIFIER "x", ++s->server->next_session);
        s->msg_seq = 0;
        s->messages = 0;
        s->errors = 0;
        s->opened = g_get_real_time();
        while (s->children->len > 0) {
            c = g_ptr_array_steal_index(s->children, 0);
            g_ptr_array_add(s->retired, c);
        }
        start_children(s);
        return;
    }
    case SMFIC_QUIT:
        msg_end(s, TRUE);
        quit_children(s);
        s->mta_gone = TRUE;
        shadow_conn_close(s->mta);
        shadow_session_maybe_free(s);
        return;
    default:
        return;
    }
}

/* mta_data - bytes from the MTA */
static void
mta_data(ShadowConn *conn, const guint8 *buf, gsize len, gpointer user)
{
    ShadowSession *s = user;

    while (len > 0 && !s->mta_gone) {
        g_autoptr(GError) error = NULL;
        MilterPacket pkt;
        gsize used, frame_len;
        MilterDecodeStatus st = milter_decoder_feed(s->decoder, buf, len, &used, &pkt, &error);

        buf += used;
        len -= used;
        if (st == MILTER_DECODE_FAILED) {
            shadow_log_error("%s: MTA %s: %s; closing the connection", s->id,
                             shadow_conn_peer(conn), error->message);
            s->errors++;
            msg_end(s, TRUE);
            quit_children(s);
            s->mta_gone = TRUE;
            shadow_conn_close(conn);
            shadow_session_maybe_free(s);
            return;
        }
        if (st == MILTER_DECODE_PACKET) {
            const guint8 *frame = milter_decoder_frame(s->decoder, &frame_len);
            g_autoptr(GBytes) raw = g_bytes_new(frame, frame_len);

            mta_packet(s, &pkt, raw);
        }
    }
}

/* mta_event - the MTA closed or failed */
static void
mta_event(ShadowConn *conn, ShadowConnEvent ev, const GError *error, gpointer user)
{
    ShadowSession *s = user;

    if (ev == SHADOW_CONN_CONNECTED || s->mta_gone)
        return;
    if (ev == SHADOW_CONN_FAILED)
        shadow_log_warning("%s: MTA: %s", s->id, error ? error->message : "failed");
    /* Postfix closes without QUIT after a connection-level verdict: same thing. */
    msg_end(s, TRUE);
    quit_children(s);
    s->mta_gone = TRUE;
    shadow_session_maybe_free(s);
}

/* shadow_session_new - a session for an accepted MTA connection */
ShadowSession *
shadow_session_new(ShadowServer *server, int fd, const char *peer)
{
    ShadowSession *s = g_new0(ShadowSession, 1);

    s->server = server;
    s->config = server->config;
    s->id = g_strdup_printf("%06" G_GINT64_MODIFIER "x", ++server->next_session);
    s->decoder = milter_decoder_new(MILTER_DIR_COMMAND, SHADOW_MTA_MAX_DATA);
    s->children = g_ptr_array_new_with_free_func((GDestroyNotify)shadow_child_free);
    s->retired = g_ptr_array_new_with_free_func((GDestroyNotify)shadow_child_free);
    s->macros = g_ptr_array_new_with_free_func(g_free);
    s->opened = g_get_real_time();
    s->mta = shadow_conn_new(fd, peer, &mta_funcs, s);
    return s;
}

/* shadow_session_maybe_free - free the session once nothing refers to it */
void
shadow_session_maybe_free(ShadowSession *s)
{
    if (!s->mta_gone || s->msgs_in_flight > 0)
        return;
    for (guint i = 0; i < s->children->len; i++) {
        ShadowChild *c = g_ptr_array_index(s->children, i);

        if (c->state != CHILD_DEAD)
            return;
    }
    for (guint i = 0; i < s->retired->len; i++) {
        ShadowChild *c = g_ptr_array_index(s->retired, i);

        if (c->state != CHILD_DEAD)
            return;
    }
    /* Defer: we may be deep inside a child's or the MTA's callback. At the default
     * priority, not idle: an idle source never runs while sockets are busy, and the
     * finished sessions it holds count against max_connections (bench/README.md). */
    if (!s->freeing) {
        s->freeing = TRUE;
        g_idle_add_full(G_PRIORITY_DEFAULT, shadow_server_session_done, s, NULL);
    }
}

/* shadow_session_free - free a finished session */
void
shadow_session_free(ShadowSession *s)
{
    shadow_event_log_connection(s->server->log, s, FALSE);
    shadow_deadline_disarm(&s->negotiate_deadline);
    /* Only at exit can messages still be in flight: drop the session's references. */
    g_list_free_full(g_steal_pointer(&s->inflight), (GDestroyNotify)shadow_msg_unref);
    g_ptr_array_unref(s->children);
    g_ptr_array_unref(s->retired);
    if (s->mta) {
        shadow_conn_close(s->mta);
        shadow_conn_unref(s->mta);
    }
    milter_decoder_free(s->decoder);
    g_ptr_array_unref(s->macros);
    g_free(s->id);
    g_free(s->client_addr);
    g_free(s->client_name);
    g_free(s->client_port);
    g_free(s->helo);
    g_free(s);
}
