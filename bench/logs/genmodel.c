/* SPDX-License-Identifier: MIT */
/*
 * NAME
 *	genmodel - synthetic mail traffic shared by gen-eventlog and gen-postfixlog
 * DESCRIPTION
 *	See genmodel.h. Every choice is drawn from one splitmix64 stream, so a
 *	seed and the options fix the traffic exactly.
 */

/* System library. */
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

/* Application-specific. */
#include "genmodel.h"

/* Clients in the pool. */
#define GEN_CLIENTS 5000
/* Sender domains in the pool. */
#define GEN_DOMAINS 600
/* Local recipients (mailboxes) in the pool. */
#define GEN_MAILBOXES 3000
/* Default mean rate, messages per second. */
#define GEN_DEFAULT_RATE 10.0
/* Default start: 2026-11-02T00:00:00Z (a past date inside any RRD's day range of a run). */
#define GEN_DEFAULT_START_S 1793577600
/* Microseconds per second and per millisecond. */
#define US_PER_S  1000000
#define US_PER_MS 1000

/* Percent chances of the traffic (per message, per recipient or per client). */
#define P_CLIENT_VERIFIED 0.70
#define P_CLIENT_IPV6     0.10
#define P_AUTH            0.05
#define P_NO_MESSAGE_ID   0.01
#define P_RCPT_UNKNOWN    0.02 /* Postfix: User unknown in local recipient table */
#define P_RBL             0.02 /* Postfix: client blocked using a DNS blocklist */

struct _GenModel {
    GenOptions opts;
    GenRng rng;
    char *hosts[GEN_MAX_HOSTS];
    guint64 host_seq[GEN_MAX_HOSTS];
    guint64 messages_left;
    guint64 queue_counter;
    gint64 now_us;
    char **domains;
    char **clients_addr;
    char **clients_name; /* NULL: not verified */
    char **mailboxes;
};

static const char *const syllables[] = {
    "ka",  "lo", "mi",  "ra", "ten", "vo",  "qua", "ser", "dan", "bel", "cor", "fi",
    "gra", "hu", "jas", "ne", "pol", "sto", "tri", "wen", "xo",  "zel", "mar", "li",
};
static const char *const tlds[] = { "com", "net", "org", "de", "fr", "io", "co.uk", "example" };
static const char *const locals[] = {
    "alice",   "bob",           "carol",   "dave",   "news",  "noreply",   "info",
    "billing", "support",       "j.smith", "office", "sales", "mailer",    "hr",
    "ceo",     "notifications", "orders",  "team",   "admin", "marketing",
};
static const char *const local_domains[] = { "example.net", "example.org", "mail.example.net" };

/* gen_rng_next - the next 64 random bits (splitmix64) */
guint64
gen_rng_next(GenRng *r)
{
    guint64 z = (r->state += 0x9E3779B97F4A7C15ULL);

    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

/* gen_rng_seed - start a stream: one seed, several independent streams */
void
gen_rng_seed(GenRng *r, guint64 seed, guint64 stream)
{
    r->state = seed * 0xD1B54A32D192ED03ULL + stream * 0x8CB92BA72F3D8DD7ULL + 1;
    (void)gen_rng_next(r);
}

/* gen_rng_below - uniform in [0, n) */
guint32
gen_rng_below(GenRng *r, guint32 n)
{
    return n == 0 ? 0 : (guint32)(((gen_rng_next(r) >> 32) * (guint64)n) >> 32);
}

/* gen_rng_unit - uniform in [0, 1) */
double
gen_rng_unit(GenRng *r)
{
    return (double)(gen_rng_next(r) >> 11) * (1.0 / 9007199254740992.0);
}

/* gen_rng_chance - TRUE with probability p */
gboolean
gen_rng_chance(GenRng *r, double p)
{
    return gen_rng_unit(r) < p;
}

/* gen_rng_skewed - in [0, n), small values far more likely (a few busy clients) */
guint32
gen_rng_skewed(GenRng *r, guint32 n)
{
    double u = gen_rng_unit(r);

    return (guint32)(u * u * u * n);
}

/* gen_rng_exp - exponentially distributed with the given mean */
double
gen_rng_exp(GenRng *r, double mean)
{
    return -mean * log(1.0 - gen_rng_unit(r));
}

/* make_domain - a pronounceable domain name */
static char *
make_domain(GenRng *r)
{
    return g_strdup_printf("%s%s%s.%s", syllables[gen_rng_below(r, G_N_ELEMENTS(syllables))],
                           syllables[gen_rng_below(r, G_N_ELEMENTS(syllables))],
                           syllables[gen_rng_below(r, G_N_ELEMENTS(syllables))],
                           tlds[gen_rng_below(r, G_N_ELEMENTS(tlds))]);
}

/* make_pools - clients, domains and mailboxes, drawn from the seed */
static void
make_pools(GenModel *m)
{
    GenRng *r = &m->rng;

    m->domains = g_new0(char *, GEN_DOMAINS);
    for (guint i = 0; i < GEN_DOMAINS; i++)
        m->domains[i] = make_domain(r);
    m->clients_addr = g_new0(char *, GEN_CLIENTS);
    m->clients_name = g_new0(char *, GEN_CLIENTS);
    for (guint i = 0; i < GEN_CLIENTS; i++) {
        if (gen_rng_chance(r, P_CLIENT_IPV6))
            m->clients_addr[i] = g_strdup_printf("2001:db8:%x::%x", gen_rng_below(r, 0xffff),
                                                 gen_rng_below(r, 0xffff) + 1);
        else
            m->clients_addr[i] =
                g_strdup_printf("%u.%u.%u.%u", 1 + gen_rng_below(r, 222), gen_rng_below(r, 256),
                                gen_rng_below(r, 256), 1 + gen_rng_below(r, 254));
        if (gen_rng_chance(r, P_CLIENT_VERIFIED))
            m->clients_name[i] = g_strdup_printf("mail%u.%s", gen_rng_below(r, 20),
                                                 m->domains[gen_rng_below(r, GEN_DOMAINS)]);
    }
    m->mailboxes = g_new0(char *, GEN_MAILBOXES);
    for (guint i = 0; i < GEN_MAILBOXES; i++)
        m->mailboxes[i] =
            g_strdup_printf("%s%u@%s", locals[gen_rng_below(r, G_N_ELEMENTS(locals))], i,
                            local_domains[gen_rng_below(r, G_N_ELEMENTS(local_domains))]);
}

/* gen_model_new - a traffic stream for the options */
GenModel *
gen_model_new(const GenOptions *opts)
{
    GenModel *m = g_new0(GenModel, 1);

    m->opts = *opts;
    gen_rng_seed(&m->rng, opts->seed, 0);
    for (guint i = 0; i < opts->n_hosts; i++)
        m->hosts[i] = opts->n_hosts == 1 ? g_strdup("mx") : g_strdup_printf("mx%u", i + 1);
    m->messages_left = opts->n_messages;
    m->now_us = opts->start_us;
    make_pools(m);
    return m;
}

/* free_pool - free an array of n strings */
static void
free_pool(char **pool, guint n)
{
    if (pool == NULL)
        return;
    for (guint i = 0; i < n; i++)
        g_free(pool[i]);
    g_free(pool);
}

/* gen_model_free - free a model; NULL is allowed */
void
gen_model_free(GenModel *m)
{
    if (m == NULL)
        return;
    for (guint i = 0; i < m->opts.n_hosts; i++)
        g_free(m->hosts[i]);
    free_pool(m->domains, GEN_DOMAINS);
    free_pool(m->clients_addr, GEN_CLIENTS);
    free_pool(m->clients_name, GEN_CLIENTS);
    free_pool(m->mailboxes, GEN_MAILBOXES);
    g_free(m);
}

/* gen_model_now - the model's clock */
gint64
gen_model_now(const GenModel *m)
{
    return m->now_us;
}

/* messages_in_conn - how many transactions the next connection has */
static guint
messages_in_conn(GenRng *r)
{
    double u = gen_rng_unit(r);

    return u < 0.80 ? 1 : u < 0.92 ? 2 : GEN_MAX_MSGS_PER_CONN;
}

/* gen_model_next_conn - the next connection; FALSE when every message is out */
gboolean
gen_model_next_conn(GenModel *m, GenConn *c)
{
    GenRng *r = &m->rng;
    guint client;

    if (m->messages_left == 0)
        return FALSE;
    memset(c, 0, sizeof(*c));
    c->n_messages = messages_in_conn(r);
    if (c->n_messages > m->messages_left)
        c->n_messages = (guint)m->messages_left;
    m->messages_left -= c->n_messages;
    m->now_us += (gint64)gen_rng_exp(r, c->n_messages * US_PER_S / m->opts.rate);
    c->open_us = m->now_us;
    c->host = gen_rng_below(r, m->opts.n_hosts);
    c->host_name = m->hosts[c->host];
    c->seq = ++m->host_seq[c->host];
    g_snprintf(c->conn, sizeof(c->conn), "%06" G_GUINT64_FORMAT, c->seq);
    client = gen_rng_skewed(r, GEN_CLIENTS);
    g_strlcpy(c->client_addr, m->clients_addr[client], sizeof(c->client_addr));
    c->verified = m->clients_name[client] != NULL;
    if (c->verified) {
        g_strlcpy(c->client_name, m->clients_name[client], sizeof(c->client_name));
        g_strlcpy(c->helo, c->client_name, sizeof(c->helo));
    } else {
        g_snprintf(c->client_name, sizeof(c->client_name), "[%s]", c->client_addr);
        g_snprintf(c->helo, sizeof(c->helo), "%s",
                   gen_rng_chance(r, 0.5) ? "localhost"
                                          : m->domains[gen_rng_below(r, GEN_DOMAINS)]);
    }
    g_snprintf(c->client_port, sizeof(c->client_port), "%u", 1024 + gen_rng_below(r, 64511));
    c->smtpd_pid = 1000 + gen_rng_below(r, 60000);
    return TRUE;
}

/* gen_queue_id - a unique Postfix-like short queue id: a bijection of n below 2^44 */
void
gen_queue_id(guint64 n, char out[16])
{
    /* Multiplication by an odd constant and xor-shift are bijective modulo 2^44. */
    const guint64 mask = (G_GUINT64_CONSTANT(1) << 44) - 1;
    guint64 x = (n * 0x9E3779B97F5ULL + 0x5A17) & mask;

    x ^= x >> 21;
    x = (x * 0x2545F4914F6CDD1DULL) & mask;
    g_snprintf(out, 16, "%011" G_GINT64_MODIFIER "X", x);
}

/* draw_rcpts - 1 to 3 recipients, some refused by the MTA itself */
static void
draw_rcpts(GenModel *m, GenMsg *msg)
{
    GenRng *r = &m->rng;
    double u = gen_rng_unit(r);

    msg->n_rcpts = u < 0.75 ? 1 : u < 0.93 ? 2 : GEN_MAX_RCPTS;
    msg->rbl = gen_rng_chance(r, P_RBL);
    for (guint i = 0; i < msg->n_rcpts; i++) {
        guint k = gen_rng_skewed(r, GEN_MAILBOXES);

        g_snprintf(msg->rcpts[i], GEN_STR_MAX, "<%s>", m->mailboxes[k]);
        msg->rcpt_refused[i] = msg->rbl || gen_rng_chance(r, P_RCPT_UNKNOWN);
        if (!msg->rcpt_refused[i])
            msg->n_accepted++;
    }
    msg->mta_rejected = msg->n_accepted == 0;
}

/* gen_model_next_msg - the next transaction of connection c */
void
gen_model_next_msg(GenModel *m, GenConn *c, GenMsg *msg)
{
    GenRng *r = &m->rng;
    const char *domain = m->domains[gen_rng_skewed(r, GEN_DOMAINS)];

    memset(msg, 0, sizeof(*msg));
    msg->seq = ++c->messages_done;
    g_snprintf(msg->msg, sizeof(msg->msg), "%s.%u", c->conn, msg->seq);
    m->now_us += 2 * US_PER_MS + (gint64)gen_rng_exp(r, 20 * US_PER_MS);
    msg->start_us = m->now_us;
    if (gen_rng_chance(r, 0.1))
        g_snprintf(msg->from, GEN_STR_MAX, "<>");
    else
        g_snprintf(msg->from, GEN_STR_MAX, "<%s@%s>",
                   locals[gen_rng_below(r, G_N_ELEMENTS(locals))], domain);
    draw_rcpts(m, msg);
    msg->has_auth = gen_rng_chance(r, P_AUTH);
    if (msg->has_auth)
        g_snprintf(msg->auth, sizeof(msg->auth), "user%u", gen_rng_below(r, 500));
    /* Sizes: log-normal around 6 kB, a few large ones. */
    msg->size = 300 + (gint64)exp(8.5 + 1.2 * (gen_rng_unit(r) + gen_rng_unit(r) - 1.0) * 2.0);
    if (!msg->mta_rejected) {
        gen_queue_id(++m->queue_counter, msg->queue_id);
        msg->has_message_id = !gen_rng_chance(r, P_NO_MESSAGE_ID);
        if (msg->has_message_id)
            g_snprintf(msg->message_id, GEN_STR_MAX, "<%016" G_GINT64_MODIFIER "x.%s@%s>",
                       gen_rng_next(r), msg->queue_id, domain);
        m->now_us += 10 * US_PER_MS + (gint64)gen_rng_exp(r, 150 * US_PER_MS);
    } else {
        m->now_us += US_PER_MS + (gint64)gen_rng_exp(r, 5 * US_PER_MS);
    }
    msg->end_us = m->now_us;
}

/* gen_model_close_conn - QUIT: the connection ends a moment after its last message */
void
gen_model_close_conn(GenModel *m, GenConn *c)
{
    m->now_us += US_PER_MS + (gint64)gen_rng_exp(&m->rng, 3 * US_PER_MS);
    c->close_us = m->now_us;
}

/* gen_format_rfc3339 - "2026-12-03T21:43:28.654Z" (the event log's form) */
void
gen_format_rfc3339(gint64 us, char out[32])
{
    static gint64 cached_s = -1;
    static char cached[24];
    gint64 s = us / US_PER_S;

    if (s != cached_s) {
        time_t t = (time_t)s;
        struct tm tm;

        gmtime_r(&t, &tm);
        strftime(cached, sizeof(cached), "%Y-%m-%dT%H:%M:%S", &tm);
        cached_s = s;
    }
    g_snprintf(out, 32, "%s.%03dZ", cached, (int)((us % US_PER_S) / US_PER_MS));
}

/* gen_format_syslog - "Dec  3 21:43:28" (classic syslog, UTC) */
void
gen_format_syslog(gint64 us, char out[32])
{
    static gint64 cached_s = -1;
    static char cached[32];
    gint64 s = us / US_PER_S;

    if (s != cached_s) {
        static const char *const months[] = { "Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                              "Jul", "Aug", "Sep", "Oct", "Nov", "Dec" };
        time_t t = (time_t)s;
        struct tm tm;

        gmtime_r(&t, &tm);
        g_snprintf(cached, sizeof(cached), "%s %2d %02d:%02d:%02d", months[tm.tm_mon], tm.tm_mday,
                   tm.tm_hour, tm.tm_min, tm.tm_sec);
        cached_s = s;
    }
    g_strlcpy(out, cached, 32);
}

/* parse_start - RFC 3339 time or seconds since the epoch */
static gboolean
parse_start(const char *s, gint64 *us, GError **error)
{
    char *end = NULL;
    gint64 v = g_ascii_strtoll(s, &end, 10);

    if (end != s && *end == '\0') {
        *us = v * US_PER_S;
        return TRUE;
    }
    {
        g_autoptr(GDateTime) t = g_date_time_new_from_iso8601(s, NULL);

        if (t == NULL) {
            g_set_error(error, G_OPTION_ERROR, G_OPTION_ERROR_BAD_VALUE,
                        "--start %s: not RFC 3339 (2026-11-02T00:00:00Z) nor epoch seconds", s);
            return FALSE;
        }
        *us = g_date_time_to_unix(t) * US_PER_S;
    }
    return TRUE;
}

/*
 * gen_parse_options - the options both generators take, plus extra ones
 *
 * -n messages, -s seed, -t start, -H hosts, -r rate; what names the
 * program for --help.
 */
gboolean
gen_parse_options(int *argc, char ***argv, const char *what, GOptionEntry *extra, GenOptions *opts,
                  GError **error)
{
    gint64 n = 1000, seed = 1;
    int hosts = 1;
    double rate = GEN_DEFAULT_RATE;
    g_autofree char *start = NULL;
    GOptionEntry entries[] = {
        { "messages", 'n', 0, G_OPTION_ARG_INT64, &n, "messages to write (default 1000)", "N" },
        { "seed", 's', 0, G_OPTION_ARG_INT64, &seed, "random seed (default 1)", "S" },
        { "start", 't', 0, G_OPTION_ARG_STRING, &start,
          "time of the first connection: RFC 3339 or epoch seconds (default 2026-11-02T00:00:00Z)",
          "TIME" },
        { "hosts", 'H', 0, G_OPTION_ARG_INT, &hosts, "hosts mx1..mxN (default 1: \"mx\")", "N" },
        { "rate", 'r', 0, G_OPTION_ARG_DOUBLE, &rate, "messages per second on average (default 10)",
          "R" },
        { NULL },
    };
    g_autoptr(GOptionContext) ctx = g_option_context_new(NULL);

    g_option_context_set_summary(ctx, what);
    g_option_context_add_main_entries(ctx, entries, NULL);
    if (extra != NULL)
        g_option_context_add_main_entries(ctx, extra, NULL);
    if (!g_option_context_parse(ctx, argc, argv, error))
        return FALSE;
    if (*argc > 1) {
        g_set_error(error, G_OPTION_ERROR, G_OPTION_ERROR_FAILED, "unexpected argument: %s",
                    (*argv)[1]);
        return FALSE;
    }
    if (n < 0 || hosts < 1 || hosts > GEN_MAX_HOSTS || !(rate > 0.0)) {
        g_set_error(error, G_OPTION_ERROR, G_OPTION_ERROR_BAD_VALUE,
                    "need -n >= 0, 1 <= -H <= %d and -r > 0", GEN_MAX_HOSTS);
        return FALSE;
    }
    opts->seed = (guint64)seed;
    opts->n_messages = (guint64)n;
    opts->n_hosts = (guint)hosts;
    opts->rate = rate;
    opts->start_us = (gint64)GEN_DEFAULT_START_S * US_PER_S;
    if (start != NULL && !parse_start(start, &opts->start_us, error))
        return FALSE;
    return TRUE;
}
