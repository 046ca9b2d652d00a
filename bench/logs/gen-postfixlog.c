/* SPDX-License-Identifier: MIT */
/*
 * NAME
 *	gen-postfixlog - write a synthetic Postfix mail.log for benchmarks
 * SYNOPSIS
 *	gen-postfixlog [-n MESSAGES] [-s SEED] [-t START] [-H HOSTS] [-r RATE]
 *	               [-o FILE] [-q]
 * DESCRIPTION
 *	Writes the Postfix log (classic syslog lines, "Nov  2 00:00:01 mx
 *	postfix/smtpd[1234]: ...", UTC) of the traffic gen-eventlog describes
 *	for the same options (genmodel): a mail gateway that relays to an
 *	internal mail store over SMTP. Per connection smtpd connect and
 *	disconnect; per transaction smtpd client= (with SASL login when
 *	authenticated), cleanup message-id=, qmgr from= size= nrcpt=, smtp
 *	status=sent per recipient, qmgr removed; Postfix's own refusals as
 *	NOQUEUE reject (blocklisted clients, unknown users); deferrals that are
 *	retried five minutes later, and bounces with their non-delivery
 *	notification. Lines come in time order, as pflogsumm and mailgraph
 *	need.
 *
 *	Unless -q, standard error gets the counts pflogsumm (received,
 *	delivered, deferred, deferrals, bounced, rejected) and mailgraph (sent,
 *	received, bounced, rejected) should report, so a run can check that
 *	both tools read every message.
 */

/* System library. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

/* Application-specific. */
#include "genmodel.h"

/* Output is written in chunks of about this many bytes. */
#define PF_FLUSH_BYTES (4 * 1024 * 1024)
/* Random stream of deliveries (the traffic is stream 0). */
#define PF_STREAM 2
/* A deferred recipient is retried after this long (microseconds). */
#define PF_RETRY_US (300 * G_GINT64_CONSTANT(1000000))
/* Chances per accepted recipient. */
#define P_DEFER  0.02
#define P_BOUNCE 0.01
/* The internal mail store the gateway relays to. */
#define PF_RELAY "mailstore.example.net[10.0.0.5]:25"

/* PfPending - lines due later (a retry), in time order */
typedef struct {
    gint64 due_us;
    GString *lines;
} PfPending;

/* PfGen - the generator's state */
typedef struct {
    GenRng rng;
    FILE *out;
    GString *buf;
    GQueue pending; /* PfPending *, due times non-decreasing */
    guint64 bounce_counter;
    guint64 bytes, lines;
    /* What pflogsumm and mailgraph should count. */
    guint64 received, sent, deferred_msgs, deferrals, bounced, rejected;
} PfGen;

/* flush - write what is buffered */
static gboolean
flush(PfGen *g, GError **error)
{
    if (g->buf->len > 0 && fwrite(g->buf->str, 1, g->buf->len, g->out) != g->buf->len) {
        g_set_error(error, G_FILE_ERROR, G_FILE_ERROR_IO, "write: %s", g_strerror(errno));
        return FALSE;
    }
    g->bytes += g->buf->len;
    g_string_truncate(g->buf, 0);
    return TRUE;
}

/* line - append one syslog line to out: time, host, program[pid], text */
static void line(PfGen *g, GString *out, gint64 us, const char *host, const char *prog, guint pid,
                 const char *fmt, ...) G_GNUC_PRINTF(7, 8);

static void
line(PfGen *g, GString *out, gint64 us, const char *host, const char *prog, guint pid,
     const char *fmt, ...)
{
    char ts[32];
    va_list ap;

    gen_format_syslog(us, ts);
    g_string_append_printf(out, "%s %s postfix/%s[%u]: ", ts, host, prog, pid);
    va_start(ap, fmt);
    g_string_append_vprintf(out, fmt, ap);
    va_end(ap);
    g_string_append_c(out, '\n');
    g->lines++;
}

/* release - write the pending lines due by now */
static void
release(PfGen *g, gint64 now_us)
{
    PfPending *p;

    while ((p = g_queue_peek_head(&g->pending)) != NULL && p->due_us <= now_us) {
        g_queue_pop_head(&g->pending);
        g_string_append_len(g->buf, p->lines->str, p->lines->len);
        g_string_free(p->lines, TRUE);
        g_free(p);
    }
}

/* delays - pflogsumm's delay= and delays= fields */
static void
delays(PfGen *g, char *out, gsize len, double extra_s)
{
    double a = 0.05 + gen_rng_exp(&g->rng, 0.2), b = 0.01, c = 0.02 + gen_rng_exp(&g->rng, 0.05),
           d = 0.05 + gen_rng_exp(&g->rng, 0.1);

    g_snprintf(out, len, "delay=%.2f, delays=%.2f/%.2f/%.2f/%.2f", a + b + c + d + extra_s,
               a + extra_s, b, c, d);
}

/* bounce - the non-delivery notification to the sender, and its delivery */
static void
bounce(PfGen *g, GString *out, gint64 us, const GenConn *c, const GenMsg *msg, guint host_pid)
{
    char qid[16], dl[96];
    const char *domain = strchr(msg->from, '@');

    gen_queue_id(GEN_QUEUE_ID_EXTRA + ++g->bounce_counter, qid);
    line(g, out, us, c->host_name, "bounce", host_pid + 3,
         "%s: sender non-delivery notification: %s", msg->queue_id, qid);
    line(g, out, us, c->host_name, "qmgr", host_pid + 2,
         "%s: from=<>, size=%" G_GINT64_FORMAT ", nrcpt=1 (queue active)", qid,
         2000 + msg->size / 4);
    delays(g, dl, sizeof(dl), 0);
    line(g, out, us, c->host_name, "smtp", 20000 + gen_rng_below(&g->rng, 40000),
         "%s: to=%s, relay=mx.%.*s[192.0.2.%u]:25, %s, dsn=2.0.0, status=sent (250 2.0.0 Ok)", qid,
         msg->from, (int)strlen(domain + 1) - 1, domain + 1, 1 + gen_rng_below(&g->rng, 250), dl);
    line(g, out, us, c->host_name, "qmgr", host_pid + 2, "%s: removed", qid);
    g->sent++;
}

/* deliver - one recipient's delivery attempt; TRUE when it is done (sent or bounced) */
static gboolean
deliver(PfGen *g, GString *out, gint64 us, const GenConn *c, const GenMsg *msg, const char *rcpt,
        gboolean retry, guint host_pid)
{
    char dl[96];
    double u = gen_rng_unit(&g->rng);
    guint pid = 20000 + gen_rng_below(&g->rng, 40000);

    delays(g, dl, sizeof(dl), retry ? PF_RETRY_US / 1e6 : 0);
    if (!retry && u < P_DEFER) {
        line(g, out, us, c->host_name, "smtp", pid,
             "%s: to=%s, relay=none, %s, dsn=4.4.1, status=deferred (connect to %s: Connection "
             "timed out)",
             msg->queue_id, rcpt, dl, PF_RELAY);
        g->deferrals++;
        return FALSE;
    }
    if (u < P_DEFER + P_BOUNCE) {
        line(g, out, us, c->host_name, "smtp", pid,
             "%s: to=%s, relay=%s, %s, dsn=5.1.1, status=bounced (host %.*s said: 550 5.1.1 %s: "
             "Recipient address rejected: User unknown (in reply to RCPT TO command))",
             msg->queue_id, rcpt, PF_RELAY, dl, (int)strcspn(PF_RELAY, "["), PF_RELAY, rcpt);
        g->bounced++;
        if (strcmp(msg->from, "<>") != 0)
            bounce(g, out, us, c, msg, host_pid);
        return TRUE;
    }
    line(g, out, us, c->host_name, "smtp", pid,
         "%s: to=%s, relay=%s, %s, dsn=2.0.0, status=sent (250 2.0.0 Ok: queued as %08X)",
         msg->queue_id, rcpt, PF_RELAY, dl, (guint)gen_rng_next(&g->rng));
    g->sent++;
    return TRUE;
}

/* reject - Postfix refuses one recipient itself */
static void
reject(PfGen *g, const GenConn *c, const GenMsg *msg, const char *who, const char *rcpt, gint64 us)
{
    const char *bare = c->verified ? c->client_name : "unknown";

    if (msg->rbl)
        line(g, g->buf, us, c->host_name, "smtpd", c->smtpd_pid,
             "%s: reject: RCPT from %s[%s]: 554 5.7.1 Service unavailable; Client host [%s] "
             "blocked using zen.spamhaus.org; from=%s to=%s proto=ESMTP helo=<%s>",
             who, bare, c->client_addr, c->client_addr, msg->from, rcpt, c->helo);
    else
        line(g, g->buf, us, c->host_name, "smtpd", c->smtpd_pid,
             "%s: reject: RCPT from %s[%s]: 550 5.1.1 %s: Recipient address rejected: User "
             "unknown in local recipient table; from=%s to=%s proto=ESMTP helo=<%s>",
             who, bare, c->client_addr, rcpt, msg->from, rcpt, c->helo);
    g->rejected++;
}

/* one_message - the lines of one transaction */
static void
one_message(PfGen *g, const GenConn *c, const GenMsg *msg, guint host_pid)
{
    const char *bare = c->verified ? c->client_name : "unknown";
    gboolean queued = FALSE, any_deferred = FALSE;
    gint64 t = msg->start_us;
    g_autoptr(GString) later = NULL;

    for (guint k = 0; k < msg->n_rcpts; k++) {
        if (msg->rcpt_refused[k]) {
            reject(g, c, msg, queued ? msg->queue_id : "NOQUEUE", msg->rcpts[k], t);
            continue;
        }
        if (!queued) {
            if (msg->has_auth)
                line(g, g->buf, t, c->host_name, "smtpd", c->smtpd_pid,
                     "%s: client=%s[%s], sasl_method=PLAIN, sasl_username=%s", msg->queue_id, bare,
                     c->client_addr, msg->auth);
            else
                line(g, g->buf, t, c->host_name, "smtpd", c->smtpd_pid, "%s: client=%s[%s]",
                     msg->queue_id, bare, c->client_addr);
            g->received++;
            queued = TRUE;
        }
    }
    if (!queued)
        return;
    t = msg->end_us;
    release(g, t);
    line(g, g->buf, t, c->host_name, "cleanup", host_pid + 1, "%s: message-id=%s", msg->queue_id,
         msg->has_message_id ? msg->message_id : "<>");
    line(g, g->buf, t, c->host_name, "qmgr", host_pid + 2,
         "%s: from=%s, size=%" G_GINT64_FORMAT ", nrcpt=%u (queue active)", msg->queue_id,
         msg->from, msg->size, msg->n_accepted);
    for (guint k = 0; k < msg->n_rcpts; k++) {
        if (msg->rcpt_refused[k] || deliver(g, g->buf, t, c, msg, msg->rcpts[k], FALSE, host_pid))
            continue;
        if (later == NULL)
            later = g_string_new(NULL);
        deliver(g, later, t + PF_RETRY_US, c, msg, msg->rcpts[k], TRUE, host_pid);
        any_deferred = TRUE;
    }
    if (any_deferred) {
        PfPending *p = g_new0(PfPending, 1);

        g->deferred_msgs++;
        line(g, later, t + PF_RETRY_US, c->host_name, "qmgr", host_pid + 2, "%s: removed",
             msg->queue_id);
        p->due_us = t + PF_RETRY_US;
        p->lines = g_steal_pointer(&later);
        g_queue_push_tail(&g->pending, p);
    } else {
        line(g, g->buf, t, c->host_name, "qmgr", host_pid + 2, "%s: removed", msg->queue_id);
    }
}

/* disconnect - smtpd's disconnect line with its command counts */
static void
disconnect(PfGen *g, const GenConn *c, guint rcpt_ok, guint rcpt_all, guint data)
{
    const char *bare = c->verified ? c->client_name : "unknown";
    guint commands = 2 + c->n_messages + rcpt_all + data;

    line(g, g->buf, c->close_us, c->host_name, "smtpd", c->smtpd_pid,
         "disconnect from %s[%s] ehlo=1 mail=%u rcpt=%u/%u data=%u quit=1 commands=%u/%u", bare,
         c->client_addr, c->n_messages, rcpt_ok, rcpt_all, data, commands - (rcpt_all - rcpt_ok),
         commands);
}

/* generate - the whole log */
static gboolean
generate(PfGen *g, GenModel *m, GError **error)
{
    GenConn c;
    GenMsg msg;

    while (gen_model_next_conn(m, &c)) {
        guint host_pid = 500 + 10 * c.host, rcpt_ok = 0, rcpt_all = 0, data = 0;

        release(g, c.open_us);
        line(g, g->buf, c.open_us, c.host_name, "smtpd", c.smtpd_pid, "connect from %s[%s]",
             c.verified ? c.client_name : "unknown", c.client_addr);
        for (guint k = 0; k < c.n_messages; k++) {
            gen_model_next_msg(m, &c, &msg);
            release(g, msg.start_us);
            one_message(g, &c, &msg, host_pid);
            rcpt_ok += msg.n_accepted;
            rcpt_all += msg.n_rcpts;
            data += !msg.mta_rejected;
        }
        gen_model_close_conn(m, &c);
        release(g, c.close_us);
        disconnect(g, &c, rcpt_ok, rcpt_all, data);
        if (g->buf->len >= PF_FLUSH_BYTES && !flush(g, error))
            return FALSE;
    }
    release(g, G_MAXINT64);
    return flush(g, error) && fflush(g->out) == 0;
}

/* summary - what pflogsumm and mailgraph should count, to standard error */
static void
summary(const PfGen *g, guint64 n)
{
    fprintf(stderr,
            "gen-postfixlog: messages=%" G_GUINT64_FORMAT " lines=%" G_GUINT64_FORMAT
            " bytes=%" G_GUINT64_FORMAT "\n"
            "pflogsumm: received=%" G_GUINT64_FORMAT " delivered=%" G_GUINT64_FORMAT
            " deferred=%" G_GUINT64_FORMAT " deferrals=%" G_GUINT64_FORMAT
            " bounced=%" G_GUINT64_FORMAT " rejected=%" G_GUINT64_FORMAT "\n"
            "mailgraph: sent=%" G_GUINT64_FORMAT " received=%" G_GUINT64_FORMAT
            " bounced=%" G_GUINT64_FORMAT " rejected=%" G_GUINT64_FORMAT "\n",
            n, g->lines, g->bytes, g->received, g->sent, g->deferred_msgs, g->deferrals, g->bounced,
            g->rejected, g->sent, g->received, g->bounced, g->rejected);
}

/* main - parse options, generate, report */
int
main(int argc, char **argv)
{
    gboolean quiet = FALSE;
    g_autofree char *output = NULL;
    GOptionEntry extra[] = {
        { "output", 'o', 0, G_OPTION_ARG_FILENAME, &output, "write to FILE (default stdout)",
          "FILE" },
        { "quiet", 'q', 0, G_OPTION_ARG_NONE, &quiet, "no counts on stderr", NULL },
        { NULL },
    };
    g_autoptr(GError) error = NULL;
    g_autoptr(GenModel) m = NULL;
    GenOptions opts;
    PfGen g = { 0 };

    if (!gen_parse_options(&argc, &argv, "Write a synthetic Postfix mail.log.", extra, &opts,
                           &error)) {
        fprintf(stderr, "gen-postfixlog: %s\n", error->message);
        return 2;
    }
    g.out = output ? fopen(output, "w") : stdout;
    if (g.out == NULL) {
        fprintf(stderr, "gen-postfixlog: %s: %s\n", output, g_strerror(errno));
        return 1;
    }
    gen_rng_seed(&g.rng, opts.seed, PF_STREAM);
    g_queue_init(&g.pending);
    g.buf = g_string_sized_new(PF_FLUSH_BYTES + 64 * 1024);
    m = gen_model_new(&opts);
    if (!generate(&g, m, &error) || (output && fclose(g.out) != 0)) {
        fprintf(stderr, "gen-postfixlog: %s: %s\n", output ? output : "stdout",
                error ? error->message : g_strerror(errno));
        return 1;
    }
    if (!quiet)
        summary(&g, opts.n_messages);
    g_string_free(g.buf, TRUE);
    return 0;
}
