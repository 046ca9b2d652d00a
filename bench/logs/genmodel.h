/* SPDX-License-Identifier: MIT */
/*
 * NAME
 *	genmodel - synthetic mail traffic shared by gen-eventlog and gen-postfixlog
 * SYNOPSIS
 *	#include "genmodel.h"
 *
 *	g_autoptr(GenModel) m = gen_model_new(&opts);
 *	GenConn c;
 *	GenMsg msg;
 *	while (gen_model_next_conn(m, &c)) {
 *	    for (guint i = 0; i < c.n_messages; i++)
 *	        gen_model_next_msg(m, &c, &msg);
 *	    gen_model_close_conn(m, &c);
 *	}
 * DESCRIPTION
 *	A deterministic stream of SMTP connections and messages for a seed:
 *	clients from a pool (some with verified names, some IPv6), senders
 *	from a pool of domains, 1 to 3 recipients in local domains, sizes,
 *	queue ids (unique, Postfix-like), Message-IDs, SASL logins, and the
 *	MTA's own refusals (a recipient or a whole transaction rejected by
 *	Postfix before the milters see it). Time advances at a mean rate of
 *	messages per second with exponential gaps, so records come in time
 *	order. Both generators draw the same stream for the same options, so
 *	the event log and the Postfix log describe the same traffic; what a
 *	generator adds (verdicts, deliveries) comes from its own generator
 *	of random numbers (gen_rng_seed with another stream number).
 */
#ifndef GENMODEL_H
#define GENMODEL_H

/* GLib. */
#include <glib.h>

G_BEGIN_DECLS

/* Recipients a message has at most. */
#define GEN_MAX_RCPTS 3
/* Messages a connection has at most. */
#define GEN_MAX_MSGS_PER_CONN 3
/* Longest address, name or id the model writes (with NUL). */
#define GEN_STR_MAX 128
/* Queue ids from this number on are never the model's (for bounce notifications). */
#define GEN_QUEUE_ID_EXTRA (G_GUINT64_CONSTANT(1) << 43)
/* Hosts (shadowd/Postfix instances) at most. */
#define GEN_MAX_HOSTS 64

/* GenRng - splitmix64: small, fast, the same on every platform */
typedef struct {
    guint64 state;
} GenRng;

void gen_rng_seed(GenRng *r, guint64 seed, guint64 stream);
guint64 gen_rng_next(GenRng *r);
guint32 gen_rng_below(GenRng *r, guint32 n);
double gen_rng_unit(GenRng *r);
gboolean gen_rng_chance(GenRng *r, double p);
guint32 gen_rng_skewed(GenRng *r, guint32 n);
double gen_rng_exp(GenRng *r, double mean);

/* GenOptions - what the command line sets */
typedef struct {
    guint64 seed;
    guint64 n_messages;
    guint n_hosts;   /* 1: one host called "mx"; more: mx1, mx2, ... */
    gint64 start_us; /* time of the first connection */
    double rate;     /* messages per second, on average */
} GenOptions;

/* GenConn - one SMTP connection */
typedef struct {
    guint host;            /* index into the host names */
    const char *host_name; /* "mx" or "mx1", ... */
    guint64 seq;           /* connection number on its host, from 1 */
    char conn[24];         /* shadowd's connection id: "%06" of seq */
    char client_addr[48];
    char client_name[GEN_STR_MAX]; /* as Postfix sends it: a name or "[addr]" */
    char client_port[8];
    gboolean verified; /* the client has a name (else Postfix says "unknown") */
    char helo[GEN_STR_MAX];
    guint n_messages;
    guint messages_done;
    guint smtpd_pid; /* the Postfix smtpd process that served it */
    gint64 open_us;
    gint64 close_us; /* set by gen_model_close_conn */
} GenConn;

/* GenMsg - one mail transaction (MAIL FROM to end of message, or the MTA's refusal) */
typedef struct {
    guint seq;    /* in the connection, from 1 */
    char msg[40]; /* shadowd's message id: conn "." seq */
    char queue_id[16];
    char message_id[GEN_STR_MAX];
    gboolean has_message_id;
    char auth[40];
    gboolean has_auth;
    char from[GEN_STR_MAX];
    char rcpts[GEN_MAX_RCPTS][GEN_STR_MAX]; /* as sent, with <> */
    gboolean rcpt_refused[GEN_MAX_RCPTS];   /* refused by the MTA itself (unknown user) */
    guint n_rcpts;
    guint n_accepted;      /* recipients the MTA accepted (milters see only these) */
    gboolean mta_rejected; /* every recipient refused by the MTA: no queue file */
    gboolean rbl;          /* the client was refused by a DNS blocklist (all recipients) */
    gint64 size;           /* header and body bytes */
    gint64 start_us;       /* MAIL FROM */
    gint64 end_us;         /* end of message (or the refusal) */
} GenMsg;

typedef struct _GenModel GenModel;

GenModel *gen_model_new(const GenOptions *opts);
void gen_model_free(GenModel *m);
gboolean gen_model_next_conn(GenModel *m, GenConn *c);
void gen_model_next_msg(GenModel *m, GenConn *c, GenMsg *msg);
void gen_model_close_conn(GenModel *m, GenConn *c);
gint64 gen_model_now(const GenModel *m);
void gen_queue_id(guint64 n, char out[16]);

gboolean gen_parse_options(int *argc, char ***argv, const char *what, GOptionEntry *extra,
                           GenOptions *opts, GError **error);
void gen_format_rfc3339(gint64 us, char out[32]);
void gen_format_syslog(gint64 us, char out[32]);

G_DEFINE_AUTOPTR_CLEANUP_FUNC(GenModel, gen_model_free)

G_END_DECLS

#endif /* GENMODEL_H */
