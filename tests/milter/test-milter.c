/* SPDX-License-Identifier: MIT */
/*
 * NAME
 *	test-milter - scriptable child milter for shadowd tests and benchmarks
 * SYNOPSIS
 *	test-milter --socket SPEC [--name NAME] [--log FILE] [OPTION...]
 *	test-milter --help
 * DESCRIPTION
 *	A milter on Sendmail's libmilter whose every answer is chosen on the
 *	command line, so that tests can start several instances behind shadowd
 *	(or straight behind Postfix) and know exactly what each one says. It
 *	logs one line per callback it receives, in a stable key=value format,
 *	and flushes each line at once so that a test can read the log while the
 *	milter runs. tests/milter/README.md has the full manual with examples;
 *	--help prints the same grammar in short.
 *
 *	With --raw (implied by --garbage) it does not use libmilter at all: it
 *	runs its own small accept loop and protocol engine, so that it can write
 *	bytes that are not a valid milter reply onto the MTA socket. libmilter
 *	keeps that socket private, and guessing it from /proc or from the
 *	opaque SMFICTX is fragile with concurrent sessions (Debian's libmilter
 *	runs callbacks on a pool of worker threads), so the raw engine is the
 *	one place where garbage is produced. The raw engine answers OPTNEG
 *	properly, honours the same --action, --sleep, --crash, --progress,
 *	--no, --nr, --symlist and --leadspace options, and logs in the same
 *	format; it cannot make message edits. Unlike libmilter it logs every
 *	ABORT it gets (libmilter drops those outside a transaction) and it
 *	cannot fake an NR reply the MTA did not offer.
 * STOPPING
 *	SIGTERM and SIGINT stop the process with status 0 and an "exit" line,
 *	and so does --exit-after. libmilter itself notices a stop only every 5
 *	seconds; a watcher thread sees its stop flag within 20 ms and ends the
 *	process at once, cutting sessions that are still open, as smfi_main's
 *	return would.
 * LOG FORMAT
 *	NAME conn=N msg=M EVENT key=value...
 *
 *	conn counts connections (sessions) of this process from 1; msg counts
 *	messages inside the connection from 1 (0 before the first MAIL).
 *	Process-level lines use conn=0 msg=0. Values in double quotes escape
 *	backslash as \\, a double quote as \", CR, LF and TAB as \r \n \t and
 *	every other byte below 0x20 and 0x7f as \xHH; bytes from 0x80 up are
 *	written as they are. Events: ready, negotiate, connect, helo, mail,
 *	rcpt, data, header, eoh, body, eom, unknown, abort, close, macro,
 *	reply, edit, progress, sleep, crash, garbage, warning, error, stopping,
 *	exit.
 * ACTIONS AND MATCHES
 *	--action STAGE:VERDICT[:ARG][@MATCH]. The first action (in command-line
 *	order) whose stage and match fit the event decides the reply; without
 *	one the milter continues. VERDICT is continue, accept, reject,
 *	tempfail, discard, skip or reply:TEXT, where TEXT is "CODE [X.Y.Z]
 *	text" with "|" between the lines of a multi-line reply; "@@" in TEXT is
 *	a literal "@" and a single "@" starts the match. MATCH (an optional
 *	leading "!" negates it):
 *	    auth                {auth_authen} is set and not empty
 *	    macro:NAME[=VALUE]  macro NAME is set and not empty [equals VALUE]
 *	    header:NAME[~TEXT]  this header (at header) or any header seen so
 *	                        far (later stages) is NAME [and contains TEXT]
 *	    mail:ADDR           the envelope sender is ADDR
 *	    rcpt:ADDR           this recipient (at rcpt) or any recipient seen
 *	                        so far (later stages) is ADDR
 *	    body~TEXT           this chunk (at body) or the whole body (at eom)
 *	                        contains TEXT
 *	    conn:N / msg:N      the Nth connection / the Nth message in it
 *	    ADDR                short for mail:ADDR at mail, rcpt:ADDR at rcpt
 *	    NAME~TEXT           short for header:NAME~TEXT at header
 *	Addresses compare without case and without the angle brackets; header
 *	names without case; TEXT is a case-sensitive substring.
 * SECURITY
 *	A test tool. It listens on the socket it is given, trusts its command
 *	line, and needs no privilege. Never run it on a production MTA.
 */

/* System library. */
#define _GNU_SOURCE /* memmem, accept4 */
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

/* GLib. */
#include <glib.h>
#include <glib-unix.h>

/* Sendmail libmilter. */
#include <libmilter/mfapi.h>

/* Exit status of --crash-kind exit (EX_SOFTWARE). */
#define CRASH_STATUS 70

/* Exit status for a bad command line (EX_USAGE) and a failed start (EX_OSERR). */
#define USAGE_STATUS 64
#define START_STATUS 71

/* Length word of --garbage-kind huge: 16 MiB, far above the 65535 limit. */
#define GARBAGE_HUGE_LEN 0x01000000u

/* Reply byte of --garbage-kind code: no SMFIR_* has this value. */
#define GARBAGE_CODE 'Z'

/* Raw mode: read timeout without --timeout, libmilter's MI_TIMEOUT (seconds). */
#define RAW_TIMEOUT 7210

/* Raw mode: largest packet accepted from the MTA (Postfix does not split long headers). */
#define RAW_MAX_PACKET (1024 * 1024)

/* Largest body kept in memory for body~TEXT at eom. */
#define BODY_KEEP_MAX (64 * 1024 * 1024)

/* libmilter's limits for one reply (smfi_setmlreply). */
#define REPLY_MAX_LINES 32
#define REPLY_MAX_LINE  980

/* Raw mode macro slots, numbered as libmilter's CI_* (EOH before EOM). */
#define MACRO_SLOTS 7

/* Bytes of each body chunk copied into the log by default. */
#define DEFAULT_LOG_BODY 128

/* How often the stop watcher looks at libmilter's stop flag (microseconds). */
#define WATCH_INTERVAL_US 20000

/* ---------------------------------------------------------------------- */
/* Stages, verdicts, rules, edits                                         */
/* ---------------------------------------------------------------------- */

typedef enum {
    ST_NEGOTIATE,
    ST_CONNECT,
    ST_HELO,
    ST_MAIL,
    ST_RCPT,
    ST_DATA,
    ST_HEADER,
    ST_EOH,
    ST_BODY,
    ST_EOM,
    ST_UNKNOWN,
    ST_ABORT,
    ST_CLOSE,
    ST_COUNT
} Stage;

typedef struct {
    const char *name;
    unsigned long no_flag; /* SMFIP_NO* for --no, 0 if none */
    unsigned long nr_flag; /* SMFIP_NR_* for --nr, 0 if none */
    int smfim;             /* SMFIM_* for --symlist, -1 if none */
    int slot;              /* raw mode macro slot of this command, -1 if none */
    gboolean macros;       /* log visible macros at this stage */
} StageInfo;

static const StageInfo stage_info[ST_COUNT] = {
    [ST_NEGOTIATE] = { "negotiate", 0, 0, -1, -1, FALSE },
    [ST_CONNECT] = { "connect", SMFIP_NOCONNECT, SMFIP_NR_CONN, SMFIM_CONNECT, 0, TRUE },
    [ST_HELO] = { "helo", SMFIP_NOHELO, SMFIP_NR_HELO, SMFIM_HELO, 1, TRUE },
    [ST_MAIL] = { "mail", SMFIP_NOMAIL, SMFIP_NR_MAIL, SMFIM_ENVFROM, 2, TRUE },
    [ST_RCPT] = { "rcpt", SMFIP_NORCPT, SMFIP_NR_RCPT, SMFIM_ENVRCPT, 3, TRUE },
    [ST_DATA] = { "data", SMFIP_NODATA, SMFIP_NR_DATA, SMFIM_DATA, 4, TRUE },
    [ST_HEADER] = { "header", SMFIP_NOHDRS, SMFIP_NR_HDR, -1, -1, FALSE },
    [ST_EOH] = { "eoh", SMFIP_NOEOH, SMFIP_NR_EOH, SMFIM_EOH, 5, TRUE },
    [ST_BODY] = { "body", SMFIP_NOBODY, SMFIP_NR_BODY, -1, -1, FALSE },
    [ST_EOM] = { "eom", 0, 0, SMFIM_EOM, 6, TRUE },
    [ST_UNKNOWN] = { "unknown", SMFIP_NOUNKNOWN, SMFIP_NR_UNKN, -1, -1, TRUE },
    [ST_ABORT] = { "abort", 0, 0, -1, -1, FALSE },
    [ST_CLOSE] = { "close", 0, 0, -1, -1, FALSE },
};

#define STAGE_BIT(s) (1u << (s))
#define ALL_STAGES   ((1u << ST_COUNT) - 1)
#define ACTION_STAGES                                                                              \
    (STAGE_BIT(ST_CONNECT) | STAGE_BIT(ST_HELO) | STAGE_BIT(ST_MAIL) | STAGE_BIT(ST_RCPT) |        \
     STAGE_BIT(ST_DATA) | STAGE_BIT(ST_HEADER) | STAGE_BIT(ST_EOH) | STAGE_BIT(ST_BODY) |          \
     STAGE_BIT(ST_EOM) | STAGE_BIT(ST_UNKNOWN))
#define REPLY_STAGES (ACTION_STAGES | STAGE_BIT(ST_NEGOTIATE))
#define NO_STAGES    (ACTION_STAGES & ~STAGE_BIT(ST_EOM))
#define SYMLIST_STAGES                                                                             \
    (STAGE_BIT(ST_CONNECT) | STAGE_BIT(ST_HELO) | STAGE_BIT(ST_MAIL) | STAGE_BIT(ST_RCPT) |        \
     STAGE_BIT(ST_DATA) | STAGE_BIT(ST_EOH) | STAGE_BIT(ST_EOM))

typedef enum {
    V_CONTINUE,
    V_ACCEPT,
    V_REJECT,
    V_TEMPFAIL,
    V_DISCARD,
    V_SKIP,
    V_REPLY,
    V_NOREPLY
} Verdict;

static const char *const verdict_names[] = { "continue", "accept", "reject", "tempfail",
                                             "discard",  "skip",   "reply",  "noreply" };

typedef enum {
    M_ALWAYS,
    M_AUTH,
    M_MACRO,
    M_HEADER,
    M_MAIL,
    M_RCPT,
    M_BODY,
    M_CONN,
    M_MSG
} MatchKind;

/* Match - the optional @MATCH of a rule */
typedef struct {
    MatchKind kind;
    gboolean negate;
    char *name; /* macro or header name */
    char *text; /* value, substring or address; NULL tests presence only */
    guint num;  /* conn:N, msg:N */
} Match;

/* Reply - an SMTP reply for verdict reply */
typedef struct {
    char *code;   /* "550" */
    char *xcode;  /* "5.7.1" or NULL */
    char **lines; /* NULL-terminated; may be empty */
    char *spec;   /* the text as given, for the log */
} Reply;

/* Rule - one --action, --sleep, --crash or --garbage */
typedef struct {
    Stage stage;
    Verdict verdict; /* --action */
    Reply reply;     /* --action ...:reply:TEXT */
    guint ms;        /* --sleep */
    Match match;
} Rule;

typedef enum {
    ED_ADD_HEADER,
    ED_INSERT_HEADER,
    ED_CHANGE_HEADER,
    ED_DELETE_HEADER,
    ED_REPLACE_BODY,
    ED_CHGFROM,
    ED_ADD_RCPT,
    ED_ADD_RCPT_PAR,
    ED_DEL_RCPT,
    ED_QUARANTINE,
    ED_SUBJECT_PREFIX
} EditKind;

static const char *const edit_names[] = { "add-header",    "insert-header", "change-header",
                                          "delete-header", "replace-body",  "chgfrom",
                                          "add-rcpt",      "add-rcpt-par",  "del-rcpt",
                                          "quarantine",    "subject-prefix" };

/* Edit - one EOM modification, applied in command-line order */
typedef struct {
    EditKind kind;
    char *name;  /* header name, or address */
    char *value; /* header value, ESMTP args, reason or prefix */
    int index;   /* insert/change index */
    GBytes *body;
} Edit;

/* rule_free - free a rule and what it holds */
static void
rule_free(Rule *r)
{
    if (r == NULL)
        return;
    g_free(r->match.name);
    g_free(r->match.text);
    g_free(r->reply.code);
    g_free(r->reply.xcode);
    g_strfreev(r->reply.lines);
    g_free(r->reply.spec);
    g_free(r);
}

/* edit_free - free an edit and what it holds */
static void
edit_free(Edit *e)
{
    if (e == NULL)
        return;
    g_free(e->name);
    g_free(e->value);
    if (e->body != NULL)
        g_bytes_unref(e->body);
    g_free(e);
}

G_DEFINE_AUTOPTR_CLEANUP_FUNC(Rule, rule_free)
G_DEFINE_AUTOPTR_CLEANUP_FUNC(Edit, edit_free)

typedef enum { GARBAGE_ZERO, GARBAGE_HUGE, GARBAGE_CODE_BYTE } GarbageKind;

/* Config - everything from the command line; read-only once sessions run */
typedef struct {
    char *socket;
    char *name;
    char *log_path;
    int log_fd;
    gboolean quiet;
    gboolean no_macro_log;
    guint log_body;
    GPtrArray *macro_names; /* char *, logged when visible */
    GPtrArray *actions;     /* Rule * */
    GPtrArray *sleeps;      /* Rule * */
    GPtrArray *crashes;     /* Rule * */
    GPtrArray *garbage;     /* Rule * */
    GPtrArray *edits;       /* Edit * */
    gboolean crash_abort;
    GarbageKind garbage_kind;
    gboolean raw;
    guint progress;
    guint exit_after;
    unsigned long no_flags;
    unsigned long nr_flags;
    gboolean leadspace;
    gboolean rcpt_rej;
    gboolean want_skip; /* some action says skip */
    char *symlists[SMFIM_LAST + 1];
    gboolean actions_all;
    gboolean actions_fixed;
    unsigned long actions_mask;
    gboolean keep_body; /* some match needs the whole body */
    int timeout;
    int backlog;
    int debug;
} Config;

static Config cfg;

/* ---------------------------------------------------------------------- */
/* Per-connection state                                                   */
/* ---------------------------------------------------------------------- */

/* Message - what the milter saw of the current message */
typedef struct {
    char *mail;
    GPtrArray *rcpts;      /* char * */
    GPtrArray *hdr_names;  /* char * */
    GPtrArray *hdr_values; /* char * */
    guint64 body_len;
    guint body_chunks;
    GChecksum *body_sum;
    GByteArray *body; /* only with cfg.keep_body */
} Message;

/* Conn - one MTA session (libmilter context or raw socket) */
typedef struct {
    guint id;
    guint msg;
    gboolean in_msg;
    SMFICTX *ctx;                   /* libmilter mode */
    int fd;                         /* raw mode */
    GPtrArray *macros[MACRO_SLOTS]; /* raw mode: name, value, name, value... */
    unsigned long actions;          /* negotiated */
    unsigned long protocol;         /* negotiated */
    Message m;
} Conn;

/* Event - the facts of one callback that matches can test */
typedef struct {
    Stage stage;
    const char *addr;   /* mail, rcpt */
    const char *hname;  /* header */
    const char *hvalue; /* header */
    const guint8 *data; /* body */
    gsize len;          /* body */
} Event;

static gint conn_counter;
static gint closed_counter;
static GMutex log_lock;
static gint exit_logged;
static gint stop_logged;
static const char *stop_reason = "signal";
static GMainLoop *raw_loop;

/*
 * libmilter's stop flag. It is exported but not in mfapi.h, hence weak: a
 * libmilter without it still works, it only stops as slowly as libmilter's
 * listener notices (every MI_CHK_TIME, 5 s).
 */
extern int mi_stop(void) __attribute__((weak));

/* ---------------------------------------------------------------------- */
/* Logging                                                                */
/* ---------------------------------------------------------------------- */

/* esc_append - append bytes with the log's escaping rules */
static void
esc_append(GString *l, const guint8 *p, gsize n)
{
    for (gsize i = 0; i < n; i++) {
        guint8 ch = p[i];

        switch (ch) {
        case '\\':
            g_string_append(l, "\\\\");
            break;
        case '"':
            g_string_append(l, "\\\"");
            break;
        case '\r':
            g_string_append(l, "\\r");
            break;
        case '\n':
            g_string_append(l, "\\n");
            break;
        case '\t':
            g_string_append(l, "\\t");
            break;
        default:
            if (ch < 0x20 || ch == 0x7f)
                g_string_append_printf(l, "\\x%02x", ch);
            else
                g_string_append_c(l, (char)ch);
        }
    }
}

/* line_new - start a log line for connection c (NULL: process level) */
static GString *
line_new(const Conn *c, const char *event)
{
    GString *l = g_string_sized_new(128);

    g_string_append_printf(l, "%s conn=%u msg=%u %s", cfg.name, c ? c->id : 0, c ? c->msg : 0,
                           event);
    return l;
}

/* kv_mem - append key="escaped bytes" */
static void
kv_mem(GString *l, const char *key, const void *p, gsize n)
{
    g_string_append_printf(l, " %s=\"", key);
    esc_append(l, p, n);
    g_string_append_c(l, '"');
}

/* kv_str - append key="escaped string"; nothing for NULL */
static void
kv_str(GString *l, const char *key, const char *v)
{
    if (v != NULL)
        kv_mem(l, key, v, strlen(v));
}

/* kv_word - append key=word, unquoted */
static void
kv_word(GString *l, const char *key, const char *word)
{
    g_string_append_printf(l, " %s=%s", key, word);
}

/* kv_uint - append key=decimal */
static void
kv_uint(GString *l, const char *key, guint64 v)
{
    g_string_append_printf(l, " %s=%" G_GUINT64_FORMAT, key, v);
}

/* kv_hex - append key=0xhex */
static void
kv_hex(GString *l, const char *key, unsigned long v)
{
    g_string_append_printf(l, " %s=0x%lx", key, v);
}

/* line_end - finish, write in one write(2) and free a log line */
static void
line_end(GString *l)
{
    const char *p;
    gsize left;

    g_string_append_c(l, '\n');
    p = l->str;
    left = l->len;
    g_mutex_lock(&log_lock);
    while (left > 0) {
        ssize_t n = write(cfg.log_fd, p, left);

        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        p += n;
        left -= (gsize)n;
    }
    g_mutex_unlock(&log_lock);
    g_string_free(l, TRUE);
}

/* line_event_end - line_end, or drop the line under --quiet */
static void
line_event_end(GString *l)
{
    if (cfg.quiet)
        g_string_free(l, TRUE);
    else
        line_end(l);
}

/* log_note - write "EVENT what=TEXT" (warning, error, stopping) */
static void
log_note(const Conn *c, const char *event, const char *what)
{
    GString *l = line_new(c, event);

    kv_str(l, "what", what);
    line_end(l);
}

/* note_stopping - the "stopping" line, once per process; reason goes to the exit line too */
static void
note_stopping(const char *reason)
{
    if (!g_atomic_int_compare_and_exchange(&stop_logged, 0, 1))
        return;
    stop_reason = reason;
    log_note(NULL, "stopping", reason);
}

/* ---------------------------------------------------------------------- */
/* Message and connection state                                           */
/* ---------------------------------------------------------------------- */

/* message_clear - free what a message holds and make it empty */
static void
message_clear(Message *m)
{
    g_clear_pointer(&m->mail, g_free);
    g_clear_pointer(&m->rcpts, g_ptr_array_unref);
    g_clear_pointer(&m->hdr_names, g_ptr_array_unref);
    g_clear_pointer(&m->hdr_values, g_ptr_array_unref);
    g_clear_pointer(&m->body_sum, g_checksum_free);
    g_clear_pointer(&m->body, g_byte_array_unref);
    m->body_len = 0;
    m->body_chunks = 0;
}

/* message_init - set up an empty message */
static void
message_init(Message *m)
{
    m->mail = NULL;
    m->rcpts = g_ptr_array_new_with_free_func(g_free);
    m->hdr_names = g_ptr_array_new_with_free_func(g_free);
    m->hdr_values = g_ptr_array_new_with_free_func(g_free);
    m->body_sum = g_checksum_new(G_CHECKSUM_SHA256);
    m->body = cfg.keep_body ? g_byte_array_new() : NULL;
    m->body_len = 0;
    m->body_chunks = 0;
}

/* conn_new - a new session with the next connection number */
static Conn *
conn_new(void)
{
    Conn *c = g_new0(Conn, 1);

    c->id = (guint)g_atomic_int_add(&conn_counter, 1) + 1;
    c->fd = -1;
    message_init(&c->m);
    return c;
}

/* conn_clear_macros - raw mode: forget macro slots from slot on */
static void
conn_clear_macros(Conn *c, int slot)
{
    for (int i = slot; i < MACRO_SLOTS; i++)
        g_clear_pointer(&c->macros[i], g_ptr_array_unref);
}

/* conn_free - free a session */
static void
conn_free(Conn *c)
{
    if (c == NULL)
        return;
    message_clear(&c->m);
    conn_clear_macros(c, 0);
    g_free(c);
}

/* message_begin - MAIL: a new message starts */
static void
message_begin(Conn *c)
{
    message_clear(&c->m);
    message_init(&c->m);
    c->msg++;
    c->in_msg = TRUE;
}

/* message_ensure - a message event without MAIL before it (SMFIP_NOMAIL) */
static void
message_ensure(Conn *c)
{
    if (!c->in_msg)
        message_begin(c);
}

/* message_end - EOM or ABORT: the message is over */
static void
message_end(Conn *c)
{
    message_clear(&c->m);
    message_init(&c->m);
    c->in_msg = FALSE;
}

/* conn_macro - value of a macro as the milter sees it now, or NULL */
static const char *
conn_macro(const Conn *c, const char *name)
{
    char alt[64];

    if (c->ctx != NULL)
        return smfi_getsymval(c->ctx, (char *)name);

    /* Raw mode: the same lookup as smfi_getsymval, newest slot first. */
    alt[0] = '\0';
    if (strlen(name) == 1)
        g_snprintf(alt, sizeof(alt), "{%s}", name);
    else if (strlen(name) == 3 && name[0] == '{' && name[2] == '}')
        g_snprintf(alt, sizeof(alt), "%c", name[1]);
    for (int i = MACRO_SLOTS - 1; i >= 0; i--) {
        GPtrArray *a = c->macros[i];

        if (a == NULL)
            continue;
        for (guint j = 0; j + 1 < a->len; j += 2) {
            const char *n = g_ptr_array_index(a, j);

            if (strcmp(n, name) == 0 || (alt[0] != '\0' && strcmp(n, alt) == 0))
                return g_ptr_array_index(a, j + 1);
        }
    }
    return NULL;
}

/* log_macros - one "macro" line per listed macro visible at this stage */
static void
log_macros(const Conn *c, Stage st)
{
    if (cfg.quiet || cfg.no_macro_log || !stage_info[st].macros)
        return;
    for (guint i = 0; i < cfg.macro_names->len; i++) {
        const char *name = g_ptr_array_index(cfg.macro_names, i);
        const char *v = conn_macro(c, name);
        GString *l;

        if (v == NULL)
            continue;
        l = line_new(c, "macro");
        kv_word(l, "stage", stage_info[st].name);
        kv_str(l, "name", name);
        kv_str(l, "value", v);
        line_end(l);
    }
}

/* ---------------------------------------------------------------------- */
/* Matching                                                               */
/* ---------------------------------------------------------------------- */

/* addr_eq - compare two addresses without case and without <> */
static gboolean
addr_eq(const char *a, const char *b)
{
    gsize la, lb;

    if (a == NULL || b == NULL)
        return FALSE;
    la = strlen(a);
    lb = strlen(b);
    if (la >= 2 && a[0] == '<' && a[la - 1] == '>') {
        a++;
        la -= 2;
    }
    if (lb >= 2 && b[0] == '<' && b[lb - 1] == '>') {
        b++;
        lb -= 2;
    }
    return la == lb && g_ascii_strncasecmp(a, b, la) == 0;
}

/* header_fits - header name and optional substring test */
static gboolean
header_fits(const Match *m, const char *name, const char *value)
{
    if (name == NULL || g_ascii_strcasecmp(name, m->name) != 0)
        return FALSE;
    return m->text == NULL || (value != NULL && strstr(value, m->text) != NULL);
}

/* match_raw - evaluate a match without its negation */
static gboolean
match_raw(const Match *m, const Conn *c, const Event *ev)
{
    const char *v;

    switch (m->kind) {
    case M_ALWAYS:
        return TRUE;
    case M_AUTH:
        v = conn_macro(c, "{auth_authen}");
        return v != NULL && *v != '\0';
    case M_MACRO:
        v = conn_macro(c, m->name);
        if (m->text == NULL)
            return v != NULL && *v != '\0';
        return v != NULL && strcmp(v, m->text) == 0;
    case M_HEADER:
        if (ev->stage == ST_HEADER)
            return header_fits(m, ev->hname, ev->hvalue);
        for (guint i = 0; i < c->m.hdr_names->len; i++)
            if (header_fits(m, g_ptr_array_index(c->m.hdr_names, i),
                            g_ptr_array_index(c->m.hdr_values, i)))
                return TRUE;
        return FALSE;
    case M_MAIL:
        return addr_eq(ev->stage == ST_MAIL ? ev->addr : c->m.mail, m->text);
    case M_RCPT:
        if (ev->stage == ST_RCPT)
            return addr_eq(ev->addr, m->text);
        for (guint i = 0; i < c->m.rcpts->len; i++)
            if (addr_eq(g_ptr_array_index(c->m.rcpts, i), m->text))
                return TRUE;
        return FALSE;
    case M_BODY:
        if (ev->stage == ST_BODY)
            return ev->data != NULL && memmem(ev->data, ev->len, m->text, strlen(m->text)) != NULL;
        return c->m.body != NULL &&
               memmem(c->m.body->data, c->m.body->len, m->text, strlen(m->text)) != NULL;
    case M_CONN:
        return c->id == m->num;
    case M_MSG:
        return c->msg == m->num;
    }
    return FALSE;
}

/* match_eval - does the match fit the event */
static gboolean
match_eval(const Match *m, const Conn *c, const Event *ev)
{
    return match_raw(m, c, ev) != m->negate;
}

/* rule_find - first rule of the list for this stage whose match fits */
static const Rule *
rule_find(GPtrArray *rules, const Conn *c, const Event *ev)
{
    for (guint i = 0; i < rules->len; i++) {
        const Rule *r = g_ptr_array_index(rules, i);

        if (r->stage == ev->stage && match_eval(&r->match, c, ev))
            return r;
    }
    return NULL;
}

/* ---------------------------------------------------------------------- */
/* Faults and verdicts, shared by both engines                            */
/* ---------------------------------------------------------------------- */

/* fault_crash - die here if a --crash rule fits */
static void
fault_crash(const Conn *c, const Event *ev)
{
    GString *l;

    if (rule_find(cfg.crashes, c, ev) == NULL)
        return;
    l = line_new(c, "crash");
    kv_word(l, "stage", stage_info[ev->stage].name);
    kv_word(l, "kind", cfg.crash_abort ? "abort" : "exit");
    line_end(l);
    if (cfg.crash_abort)
        abort();
    _exit(CRASH_STATUS);
}

/* fault_sleep_ms - milliseconds of the first fitting --sleep rule, 0 if none */
static guint
fault_sleep_ms(const Conn *c, const Event *ev)
{
    const Rule *r = rule_find(cfg.sleeps, c, ev);
    GString *l;

    if (r == NULL || r->ms == 0)
        return 0;
    l = line_new(c, "sleep");
    kv_word(l, "stage", stage_info[ev->stage].name);
    kv_uint(l, "ms", r->ms);
    line_event_end(l);
    return r->ms;
}

/* faults - crash or sleep as the rules say (at eom the sleep is returned, not slept) */
static guint
faults(const Conn *c, const Event *ev)
{
    guint ms;

    fault_crash(c, ev);
    ms = fault_sleep_ms(c, ev);
    if (ev->stage == ST_EOM)
        return ms;
    if (ms > 0)
        g_usleep((gulong)ms * 1000);
    return 0;
}

/* decide - the verdict for this event: NR, first fitting action, or continue */
static Verdict
decide(const Conn *c, const Event *ev, const Rule **rule)
{
    const Rule *r;

    *rule = NULL;
    if (stage_info[ev->stage].nr_flag != 0 && (c->protocol & stage_info[ev->stage].nr_flag) != 0)
        return V_NOREPLY;
    r = rule_find(cfg.actions, c, ev);
    if (r == NULL)
        return V_CONTINUE;
    *rule = r;
    return r->verdict;
}

/* log_reply - the "reply" line */
static void
log_reply(const Conn *c, Stage st, Verdict v, const Rule *r, gboolean ok)
{
    GString *l = line_new(c, "reply");

    kv_word(l, "stage", stage_info[st].name);
    kv_word(l, "verdict", verdict_names[v]);
    if (v == V_REPLY && r != NULL)
        kv_str(l, "text", r->reply.spec);
    if (!ok)
        kv_word(l, "status", "fail");
    line_event_end(l);
}

/* expand - header values and reasons: %n name, %c conn, %m msg, %q queue id, %% */
static char *
expand(const Conn *c, const char *s)
{
    GString *out = g_string_new(NULL);

    for (const char *p = s; *p != '\0'; p++) {
        const char *q;

        if (*p != '%' || p[1] == '\0') {
            g_string_append_c(out, *p);
            continue;
        }
        switch (*++p) {
        case 'n':
            g_string_append(out, cfg.name);
            break;
        case 'c':
            g_string_append_printf(out, "%u", c->id);
            break;
        case 'm':
            g_string_append_printf(out, "%u", c->msg);
            break;
        case 'q':
            q = conn_macro(c, "i");
            g_string_append(out, q != NULL ? q : "");
            break;
        case '%':
            g_string_append_c(out, '%');
            break;
        default:
            g_string_append_c(out, '%');
            g_string_append_c(out, *p);
        }
    }
    return g_string_free(out, FALSE);
}

/* ---------------------------------------------------------------------- */
/* libmilter engine                                                       */
/* ---------------------------------------------------------------------- */

/* lm_conn - the Conn of a libmilter context, made on first use */
static Conn *
lm_conn(SMFICTX *ctx)
{
    Conn *c = smfi_getpriv(ctx);

    if (c == NULL) {
        c = conn_new();
        c->ctx = ctx;
        smfi_setpriv(ctx, c);
    }
    return c;
}

/* lm_set_reply - smfi_setreply or smfi_setmlreply from a Reply */
static int
lm_set_reply(SMFICTX *ctx, const Reply *r)
{
    const char *l[REPLY_MAX_LINES + 1] = { NULL };
    guint n = r->lines != NULL ? g_strv_length(r->lines) : 0;

    if (n <= 1)
        return smfi_setreply(ctx, r->code, r->xcode, n == 1 ? r->lines[0] : NULL);
    for (guint i = 0; i < n && i < REPLY_MAX_LINES; i++)
        l[i] = r->lines[i];
    /* smfi_setmlreply stops at the first NULL; pass all slots. */
    return smfi_setmlreply(ctx, r->code, r->xcode, l[0], l[1], l[2], l[3], l[4], l[5], l[6], l[7],
                           l[8], l[9], l[10], l[11], l[12], l[13], l[14], l[15], l[16], l[17],
                           l[18], l[19], l[20], l[21], l[22], l[23], l[24], l[25], l[26], l[27],
                           l[28], l[29], l[30], l[31], (char *)NULL);
}

/* lm_verdict - turn a decision into the callback's return value, logging it */
static sfsistat
lm_verdict(Conn *c, const Event *ev)
{
    const Rule *r;
    Verdict v = decide(c, ev, &r);
    gboolean ok = TRUE;
    sfsistat ret = SMFIS_CONTINUE;

    switch (v) {
    case V_CONTINUE:
        ret = SMFIS_CONTINUE;
        break;
    case V_ACCEPT:
        ret = SMFIS_ACCEPT;
        break;
    case V_REJECT:
        ret = SMFIS_REJECT;
        break;
    case V_TEMPFAIL:
        ret = SMFIS_TEMPFAIL;
        break;
    case V_DISCARD:
        ret = SMFIS_DISCARD;
        break;
    case V_SKIP:
        ret = SMFIS_SKIP;
        break;
    case V_NOREPLY:
        ret = SMFIS_NOREPLY;
        break;
    case V_REPLY:
        ok = lm_set_reply(c->ctx, &r->reply) == MI_SUCCESS;
        ret = r->reply.code[0] == '4' ? SMFIS_TEMPFAIL : SMFIS_REJECT;
        break;
    }
    log_reply(c, ev->stage, v, r, ok);
    return ret;
}

/* lm_edit_line - start an "edit" line */
static GString *
lm_edit_line(const Conn *c, EditKind k)
{
    GString *l = line_new(c, "edit");

    kv_word(l, "op", edit_names[k]);
    return l;
}

/* lm_edit_done - finish an "edit" line with the libmilter result */
static void
lm_edit_done(GString *l, int r)
{
    kv_word(l, "status", r == MI_SUCCESS ? "ok" : "fail");
    line_event_end(l);
}

/* lm_subject_prefix - --subject-prefix: change the first Subject, or add one */
static void
lm_subject_prefix(Conn *c, const Edit *e)
{
    g_autofree char *prefix = expand(c, e->value);
    gboolean leadspc = (c->protocol & SMFIP_HDR_LEADSPC) != 0;
    GString *l = lm_edit_line(c, e->kind);
    GString *nv = g_string_new(NULL);
    const char *hname = NULL, *v = NULL;
    int r;

    for (guint i = 0; i < c->m.hdr_names->len; i++) {
        if (g_ascii_strcasecmp(g_ptr_array_index(c->m.hdr_names, i), "Subject") == 0) {
            hname = g_ptr_array_index(c->m.hdr_names, i);
            v = g_ptr_array_index(c->m.hdr_values, i);
            break;
        }
    }
    if (hname != NULL) {
        /* With HDR_LEADSPC the value keeps its leading blanks; keep them first. */
        if (leadspc)
            while (*v == ' ' || *v == '\t')
                g_string_append_c(nv, *v++);
        g_string_append(nv, prefix);
        if (*v != '\0') {
            if (nv->len > 0 && nv->str[nv->len - 1] != ' ')
                g_string_append_c(nv, ' ');
            g_string_append(nv, v);
        }
        r = smfi_chgheader(c->ctx, (char *)hname, 1, nv->str);
        kv_word(l, "how", "change");
    } else {
        if (leadspc)
            g_string_append_c(nv, ' ');
        g_string_append(nv, prefix);
        r = smfi_addheader(c->ctx, "Subject", nv->str);
        kv_word(l, "how", "add");
    }
    kv_str(l, "value", nv->str);
    lm_edit_done(l, r);
    g_string_free(nv, TRUE);
}

/* lm_delete_header - --delete-header: every occurrence seen, last first */
static void
lm_delete_header(Conn *c, const Edit *e)
{
    guint n = 0;

    for (guint i = 0; i < c->m.hdr_names->len; i++)
        if (g_ascii_strcasecmp(g_ptr_array_index(c->m.hdr_names, i), e->name) == 0)
            n++;
    if (n == 0) {
        GString *l = lm_edit_line(c, e->kind);

        kv_str(l, "name", e->name);
        kv_word(l, "status", "absent");
        line_event_end(l);
        return;
    }
    /* Last first: an MTA that renumbers after a delete still hits the right ones. */
    for (guint k = n; k >= 1; k--) {
        GString *l = lm_edit_line(c, e->kind);

        kv_str(l, "name", e->name);
        kv_uint(l, "index", k);
        lm_edit_done(l, smfi_chgheader(c->ctx, e->name, (int)k, NULL));
    }
}

/* lm_apply_edits - every edit option, in command-line order */
static void
lm_apply_edits(Conn *c)
{
    for (guint i = 0; i < cfg.edits->len; i++) {
        const Edit *e = g_ptr_array_index(cfg.edits, i);
        g_autofree char *v = NULL;
        GString *l;
        int r;

        switch (e->kind) {
        case ED_SUBJECT_PREFIX:
            lm_subject_prefix(c, e);
            continue;
        case ED_DELETE_HEADER:
            lm_delete_header(c, e);
            continue;
        default:
            break;
        }
        l = lm_edit_line(c, e->kind);
        switch (e->kind) {
        case ED_ADD_HEADER:
            v = expand(c, e->value);
            kv_str(l, "name", e->name);
            kv_str(l, "value", v);
            r = smfi_addheader(c->ctx, e->name, v);
            break;
        case ED_INSERT_HEADER:
            v = expand(c, e->value);
            kv_uint(l, "index", (guint64)e->index);
            kv_str(l, "name", e->name);
            kv_str(l, "value", v);
            r = smfi_insheader(c->ctx, e->index, e->name, v);
            break;
        case ED_CHANGE_HEADER:
            v = expand(c, e->value);
            kv_str(l, "name", e->name);
            kv_uint(l, "index", (guint64)e->index);
            kv_str(l, "value", v);
            r = smfi_chgheader(c->ctx, e->name, e->index, *v != '\0' ? v : NULL);
            break;
        case ED_REPLACE_BODY: {
            gsize n;
            const guint8 *p = g_bytes_get_data(e->body, &n);

            kv_uint(l, "len", n);
            r = smfi_replacebody(c->ctx, (unsigned char *)(p != NULL ? p : (const guint8 *)""),
                                 (int)n);
            break;
        }
        case ED_CHGFROM:
            kv_str(l, "addr", e->name);
            kv_str(l, "args", e->value);
            r = smfi_chgfrom(c->ctx, e->name, e->value);
            break;
        case ED_ADD_RCPT:
            kv_str(l, "addr", e->name);
            r = smfi_addrcpt(c->ctx, e->name);
            break;
        case ED_ADD_RCPT_PAR:
            kv_str(l, "addr", e->name);
            kv_str(l, "args", e->value);
            r = smfi_addrcpt_par(c->ctx, e->name, e->value);
            break;
        case ED_DEL_RCPT:
            kv_str(l, "addr", e->name);
            r = smfi_delrcpt(c->ctx, e->name);
            break;
        case ED_QUARANTINE:
            v = expand(c, e->value);
            kv_str(l, "reason", v);
            r = smfi_quarantine(c->ctx, v);
            break;
        default:
            r = MI_FAILURE;
        }
        lm_edit_done(l, r);
    }
}

/* progress_sleep - sleep ms in progress+1 slices with a progress after each but the last */
static void
progress_sleep(Conn *c, guint ms, gboolean (*send_progress)(Conn *))
{
    guint slices = cfg.progress + 1;
    guint slice = ms / slices;

    for (guint i = 1; i <= cfg.progress; i++) {
        GString *l;
        gboolean ok;

        if (slice > 0)
            g_usleep((gulong)slice * 1000);
        ok = send_progress(c);
        l = line_new(c, "progress");
        kv_uint(l, "n", i);
        kv_word(l, "status", ok ? "ok" : "fail");
        line_event_end(l);
    }
    if (ms - slice * cfg.progress > 0)
        g_usleep((gulong)(ms - slice * cfg.progress) * 1000);
}

/* lm_progress - send one SMFIR_PROGRESS through libmilter */
static gboolean
lm_progress(Conn *c)
{
    return smfi_progress(c->ctx) == MI_SUCCESS;
}

/* lm_answer - macros, faults, eom work, verdict: the tail of every replying callback */
static sfsistat
lm_answer(Conn *c, const Event *ev)
{
    guint eom_ms;

    log_macros(c, ev->stage);
    eom_ms = faults(c, ev);
    if (ev->stage == ST_EOM) {
        progress_sleep(c, eom_ms, lm_progress);
        lm_apply_edits(c);
    }
    return lm_verdict(c, ev);
}

/* wanted_actions - SMFIF_* this configuration may use */
static unsigned long
wanted_actions(unsigned long offered)
{
    unsigned long a = 0;

    if (cfg.actions_all)
        return offered;
    if (cfg.actions_fixed)
        return cfg.actions_mask;
    for (guint i = 0; i < cfg.edits->len; i++) {
        const Edit *e = g_ptr_array_index(cfg.edits, i);

        switch (e->kind) {
        case ED_ADD_HEADER:
        case ED_INSERT_HEADER:
            a |= SMFIF_ADDHDRS;
            break;
        case ED_CHANGE_HEADER:
        case ED_DELETE_HEADER:
            a |= SMFIF_CHGHDRS;
            break;
        case ED_SUBJECT_PREFIX:
            a |= SMFIF_CHGHDRS | SMFIF_ADDHDRS;
            break;
        case ED_REPLACE_BODY:
            a |= SMFIF_CHGBODY;
            break;
        case ED_CHGFROM:
            a |= SMFIF_CHGFROM;
            break;
        case ED_ADD_RCPT:
            a |= SMFIF_ADDRCPT;
            break;
        case ED_ADD_RCPT_PAR:
            a |= SMFIF_ADDRCPT_PAR;
            break;
        case ED_DEL_RCPT:
            a |= SMFIF_DELRCPT;
            break;
        case ED_QUARANTINE:
            a |= SMFIF_QUARANTINE;
            break;
        }
    }
    for (int i = 0; i <= SMFIM_LAST; i++)
        if (cfg.symlists[i] != NULL)
            a |= SMFIF_SETSYMLIST;
    return a;
}

/* wanted_protocol - SMFIP_* this configuration asks for */
static unsigned long
wanted_protocol(void)
{
    unsigned long p = cfg.no_flags | cfg.nr_flags;

    if (cfg.leadspace)
        p |= SMFIP_HDR_LEADSPC;
    if (cfg.rcpt_rej)
        p |= SMFIP_RCPT_REJ;
    if (cfg.want_skip)
        p |= SMFIP_SKIP;
    return p;
}

/* log_negotiate - the "negotiate" line, plus a warning for what was not offered */
static void
log_negotiate(const Conn *c, unsigned long version, unsigned long offer_a, unsigned long offer_p,
              unsigned long want_a, unsigned long want_p)
{
    GString *l = line_new(c, "negotiate");

    if (version != 0)
        kv_uint(l, "version", version);
    kv_hex(l, "actions", c->actions);
    kv_hex(l, "protocol", c->protocol);
    kv_hex(l, "offer_actions", offer_a);
    kv_hex(l, "offer_protocol", offer_p);
    line_event_end(l);
    if ((want_a & ~offer_a) != 0 || (want_p & ~offer_p) != 0) {
        l = line_new(c, "warning");
        kv_str(l, "what", "not offered, left out");
        kv_hex(l, "actions", want_a & ~offer_a);
        kv_hex(l, "protocol", want_p & ~offer_p);
        line_end(l);
    }
}

/* lm_negotiate - xxfi_negotiate: ask for what the options need, within the offer */
static sfsistat
lm_negotiate(SMFICTX *ctx, unsigned long f0, unsigned long f1, unsigned long f2, unsigned long f3,
             unsigned long *pf0, unsigned long *pf1, unsigned long *pf2, unsigned long *pf3)
{
    Conn *c = lm_conn(ctx);
    Event ev = { .stage = ST_NEGOTIATE };
    unsigned long want_a = wanted_actions(f0), want_p = wanted_protocol();

    /*
     * f1 is the MTA's offer plus every NR bit, which libmilter can fake: an
     * NR bit the MTA lacks is kept from the MTA, and libmilter then sends
     * the "continue" itself. Either way the callback returns SMFIS_NOREPLY.
     */
    c->actions = want_a & f0;
    c->protocol = want_p & f1;
    *pf0 = c->actions;
    *pf1 = c->protocol;
    *pf2 = 0;
    *pf3 = 0;
    for (int i = 0; i <= SMFIM_LAST; i++) {
        if (cfg.symlists[i] != NULL && smfi_setsymlist(ctx, i, cfg.symlists[i]) != MI_SUCCESS) {
            GString *l = line_new(c, "warning");

            kv_str(l, "what", "smfi_setsymlist failed");
            kv_uint(l, "smfim", (guint64)i);
            line_end(l);
        }
    }
    log_negotiate(c, 0, f0, f1, want_a, want_p);
    (void)faults(c, &ev);
    return SMFIS_CONTINUE;
}

/* log_sockaddr - family, addr and port of a connect event */
static void
log_sockaddr(GString *l, const struct sockaddr *sa)
{
    char buf[INET6_ADDRSTRLEN];

    if (sa == NULL) {
        kv_word(l, "family", "unknown");
        return;
    }
    switch (sa->sa_family) {
    case AF_INET: {
        const struct sockaddr_in *in = (const struct sockaddr_in *)sa;

        kv_word(l, "family", "inet");
        kv_str(l, "addr", inet_ntop(AF_INET, &in->sin_addr, buf, sizeof(buf)));
        kv_uint(l, "port", ntohs(in->sin_port));
        break;
    }
    case AF_INET6: {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)sa;

        kv_word(l, "family", "inet6");
        kv_str(l, "addr", inet_ntop(AF_INET6, &in6->sin6_addr, buf, sizeof(buf)));
        kv_uint(l, "port", ntohs(in6->sin6_port));
        break;
    }
    case AF_UNIX: {
        const struct sockaddr_un *un = (const struct sockaddr_un *)sa;

        kv_word(l, "family", "unix");
        kv_mem(l, "addr", un->sun_path, strnlen(un->sun_path, sizeof(un->sun_path)));
        break;
    }
    default:
        g_string_append_printf(l, " family=%d", sa->sa_family);
    }
}

/* log_args - the ESMTP arguments of MAIL or RCPT, space-separated */
static void
log_args(GString *l, char **argv)
{
    g_autofree char *joined = g_strjoinv(" ", argv);

    kv_str(l, "args", joined);
}

/* lm_connect - xxfi_connect */
static sfsistat
lm_connect(SMFICTX *ctx, char *host, struct sockaddr *sa)
{
    Conn *c = lm_conn(ctx);
    Event ev = { .stage = ST_CONNECT };
    GString *l = line_new(c, "connect");

    kv_str(l, "host", host);
    log_sockaddr(l, sa);
    line_event_end(l);
    return lm_answer(c, &ev);
}

/* lm_helo - xxfi_helo */
static sfsistat
lm_helo(SMFICTX *ctx, char *helo)
{
    Conn *c = lm_conn(ctx);
    Event ev = { .stage = ST_HELO };
    GString *l = line_new(c, "helo");

    kv_str(l, "name", helo);
    line_event_end(l);
    return lm_answer(c, &ev);
}

/* lm_envfrom - xxfi_envfrom */
static sfsistat
lm_envfrom(SMFICTX *ctx, char **argv)
{
    Conn *c = lm_conn(ctx);
    Event ev = { .stage = ST_MAIL, .addr = argv[0] };
    GString *l;

    message_begin(c);
    c->m.mail = g_strdup(argv[0]);
    l = line_new(c, "mail");
    kv_str(l, "addr", argv[0]);
    log_args(l, argv + 1);
    line_event_end(l);
    return lm_answer(c, &ev);
}

/* lm_envrcpt - xxfi_envrcpt */
static sfsistat
lm_envrcpt(SMFICTX *ctx, char **argv)
{
    Conn *c = lm_conn(ctx);
    Event ev = { .stage = ST_RCPT, .addr = argv[0] };
    GString *l;

    message_ensure(c);
    g_ptr_array_add(c->m.rcpts, g_strdup(argv[0]));
    l = line_new(c, "rcpt");
    kv_str(l, "addr", argv[0]);
    log_args(l, argv + 1);
    line_event_end(l);
    return lm_answer(c, &ev);
}

/* lm_data - xxfi_data */
static sfsistat
lm_data(SMFICTX *ctx)
{
    Conn *c = lm_conn(ctx);
    Event ev = { .stage = ST_DATA };

    message_ensure(c);
    line_event_end(line_new(c, "data"));
    return lm_answer(c, &ev);
}

/* note_header - remember and log a header */
static void
note_header(Conn *c, const char *name, const char *value)
{
    GString *l;

    message_ensure(c);
    g_ptr_array_add(c->m.hdr_names, g_strdup(name));
    g_ptr_array_add(c->m.hdr_values, g_strdup(value));
    l = line_new(c, "header");
    kv_str(l, "name", name);
    kv_str(l, "value", value);
    line_event_end(l);
}

/* lm_header - xxfi_header */
static sfsistat
lm_header(SMFICTX *ctx, char *name, char *value)
{
    Conn *c = lm_conn(ctx);
    Event ev = { .stage = ST_HEADER, .hname = name, .hvalue = value };

    note_header(c, name, value);
    return lm_answer(c, &ev);
}

/* lm_eoh - xxfi_eoh */
static sfsistat
lm_eoh(SMFICTX *ctx)
{
    Conn *c = lm_conn(ctx);
    Event ev = { .stage = ST_EOH };

    message_ensure(c);
    line_event_end(line_new(c, "eoh"));
    return lm_answer(c, &ev);
}

/* note_body - remember and log a body chunk */
static void
note_body(Conn *c, const guint8 *p, gsize n)
{
    GString *l;

    message_ensure(c);
    c->m.body_len += n;
    c->m.body_chunks++;
    g_checksum_update(c->m.body_sum, p, (gssize)n);
    if (c->m.body != NULL && c->m.body->len + n <= BODY_KEEP_MAX)
        g_byte_array_append(c->m.body, p, (guint)n);
    l = line_new(c, "body");
    kv_uint(l, "len", n);
    if (cfg.log_body > 0)
        kv_mem(l, "data", p, MIN(n, (gsize)cfg.log_body));
    line_event_end(l);
}

/* lm_body - xxfi_body */
static sfsistat
lm_body(SMFICTX *ctx, unsigned char *p, size_t n)
{
    Conn *c = lm_conn(ctx);
    Event ev = { .stage = ST_BODY, .data = p, .len = n };

    note_body(c, p, n);
    return lm_answer(c, &ev);
}

/* note_eom - log the eom line with a summary of the message */
static void
note_eom(Conn *c)
{
    GString *l;

    message_ensure(c);
    l = line_new(c, "eom");
    kv_uint(l, "headers", c->m.hdr_names->len);
    kv_uint(l, "rcpts", c->m.rcpts->len);
    kv_uint(l, "body_len", c->m.body_len);
    kv_uint(l, "body_chunks", c->m.body_chunks);
    kv_word(l, "body_sha256", g_checksum_get_string(c->m.body_sum));
    line_event_end(l);
}

/* lm_eom - xxfi_eom */
static sfsistat
lm_eom(SMFICTX *ctx)
{
    Conn *c = lm_conn(ctx);
    Event ev = { .stage = ST_EOM };
    sfsistat r;

    note_eom(c);
    r = lm_answer(c, &ev);
    message_end(c);
    return r;
}

/* lm_unknown - xxfi_unknown */
static sfsistat
lm_unknown(SMFICTX *ctx, const char *cmd)
{
    Conn *c = lm_conn(ctx);
    Event ev = { .stage = ST_UNKNOWN };
    GString *l = line_new(c, "unknown");

    kv_str(l, "cmd", cmd);
    line_event_end(l);
    return lm_answer(c, &ev);
}

/* lm_abort - xxfi_abort */
static sfsistat
lm_abort(SMFICTX *ctx)
{
    Conn *c = lm_conn(ctx);
    Event ev = { .stage = ST_ABORT };

    line_event_end(line_new(c, "abort"));
    (void)faults(c, &ev);
    message_end(c);
    return SMFIS_CONTINUE;
}

/* count_close - a session ended: maybe time to stop (--exit-after) */
static gboolean
count_close(void)
{
    gint n = g_atomic_int_add(&closed_counter, 1) + 1;

    return cfg.exit_after > 0 && (guint)n == cfg.exit_after;
}

/* lm_close - xxfi_close */
static sfsistat
lm_close(SMFICTX *ctx)
{
    Conn *c = lm_conn(ctx);
    Event ev = { .stage = ST_CLOSE };

    line_event_end(line_new(c, "close"));
    (void)faults(c, &ev);
    smfi_setpriv(ctx, NULL);
    conn_free(c);
    if (count_close()) {
        note_stopping("exit-after");
        smfi_stop();
    }
    return SMFIS_CONTINUE;
}

/* find_listen_port - TCP port of this process's listening socket (0 for unix, -1 none) */
static int
find_listen_port(void)
{
    DIR *d = opendir("/proc/self/fd");
    struct dirent *de;
    int port = -1;

    if (d == NULL)
        return -1;
    while (port < 0 && (de = readdir(d)) != NULL) {
        int fd = atoi(de->d_name), on = 0;
        socklen_t len = sizeof(on);
        struct sockaddr_storage ss;

        if (de->d_name[0] < '0' || de->d_name[0] > '9')
            continue;
        if (getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &on, &len) != 0 || !on)
            continue;
        len = sizeof(ss);
        if (getsockname(fd, (struct sockaddr *)&ss, &len) != 0)
            continue;
        if (ss.ss_family == AF_INET)
            port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
        else if (ss.ss_family == AF_INET6)
            port = ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
        else
            port = 0;
    }
    closedir(d);
    return port;
}

/* log_ready - the "ready" line */
static void
log_ready(const char *mode, int port)
{
    GString *l = line_new(NULL, "ready");

    kv_str(l, "socket", cfg.socket);
    if (port >= 0)
        kv_uint(l, "port", (guint64)port);
    kv_uint(l, "pid", (guint64)getpid());
    kv_word(l, "mode", mode);
    line_end(l);
}

/* log_exit - the "exit" line, once per process */
static void
log_exit(int status)
{
    GString *l;

    if (!g_atomic_int_compare_and_exchange(&exit_logged, 0, 1))
        return;
    l = line_new(NULL, "exit");

    kv_word(l, "reason", stop_reason);
    kv_uint(l, "connections", (guint64)g_atomic_int_get(&conn_counter));
    kv_uint(l, "status", (guint64)status);
    line_end(l);
}

/* unix_socket_path - the path of a unix:/local: socket spec, or NULL */
static const char *
unix_socket_path(const char *spec)
{
    if (g_str_has_prefix(spec, "unix:") || g_str_has_prefix(spec, "local:"))
        return strchr(spec, ':') + 1;
    return spec[0] == '/' ? spec : NULL;
}

/*
 * lm_watch - exit as soon as libmilter has been told to stop
 *
 * On SIGTERM, SIGINT (libmilter's signal thread) or smfi_stop() libmilter
 * only sets a flag; its listener sees it up to 5 s later. Tests stop
 * milters all the time, so this thread ends the process at once, the way
 * smfi_main's return would: sessions still open are cut.
 */
static gpointer
lm_watch(gpointer data)
{
    const char *path = unix_socket_path(cfg.socket);

    while (mi_stop() == 0)
        g_usleep(WATCH_INTERVAL_US);
    note_stopping("signal"); /* no-op after --exit-after */
    if (path != NULL)
        (void)unlink(path);
    log_exit(0);
    _exit(0);
}

/* lm_main - register with libmilter, open the socket, say ready, run */
static int
lm_main(void)
{
    struct smfiDesc desc = {
        .xxfi_name = cfg.name,
        .xxfi_version = SMFI_VERSION,
        .xxfi_flags = 0,
        .xxfi_connect = lm_connect,
        .xxfi_helo = lm_helo,
        .xxfi_envfrom = lm_envfrom,
        .xxfi_envrcpt = lm_envrcpt,
        .xxfi_header = lm_header,
        .xxfi_eoh = lm_eoh,
        .xxfi_body = lm_body,
        .xxfi_eom = lm_eom,
        .xxfi_abort = lm_abort,
        .xxfi_close = lm_close,
        .xxfi_unknown = lm_unknown,
        .xxfi_data = lm_data,
        .xxfi_negotiate = lm_negotiate,
    };
    int status;

    if (smfi_setconn(cfg.socket) != MI_SUCCESS) {
        log_note(NULL, "error", "smfi_setconn failed");
        return START_STATUS;
    }
    if (cfg.timeout > 0)
        smfi_settimeout(cfg.timeout);
    if (cfg.backlog > 0)
        smfi_setbacklog(cfg.backlog);
    if (cfg.debug > 0)
        smfi_setdbg(cfg.debug);
    if (smfi_register(desc) != MI_SUCCESS) {
        log_note(NULL, "error", "smfi_register failed");
        return START_STATUS;
    }
    if (smfi_opensocket(true) != MI_SUCCESS) {
        log_note(NULL, "error", "smfi_opensocket failed (address in use or bad socket spec?)");
        return START_STATUS;
    }
    log_ready("libmilter", find_listen_port());
    if (mi_stop != NULL) {
        sigset_t set;

        /* libmilter blocks these in every thread for its sigwait thread; so must the watcher. */
        sigemptyset(&set);
        sigaddset(&set, SIGHUP);
        sigaddset(&set, SIGTERM);
        sigaddset(&set, SIGINT);
        pthread_sigmask(SIG_BLOCK, &set, NULL);
        g_thread_unref(g_thread_new("stop-watch", lm_watch, NULL));
    }
    status = smfi_main() == MI_SUCCESS ? 0 : 1;
    log_exit(status);
    return status;
}

/* ---------------------------------------------------------------------- */
/* Raw engine: own accept loop and protocol, for --garbage                */
/* ---------------------------------------------------------------------- */

/* raw_write_all - write everything or fail */
static gboolean
raw_write_all(int fd, const void *buf, gsize len)
{
    const char *p = buf;

    while (len > 0) {
        ssize_t n = send(fd, p, len, MSG_NOSIGNAL);

        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return FALSE;
        p += n;
        len -= (gsize)n;
    }
    return TRUE;
}

/* raw_send - one packet: length word, code, data */
static gboolean
raw_send(int fd, char code, const void *data, gsize len)
{
    g_autoptr(GByteArray) b = g_byte_array_sized_new((guint)len + 5);
    guint32 be = htonl((guint32)len + 1);

    g_byte_array_append(b, (const guint8 *)&be, 4);
    g_byte_array_append(b, (const guint8 *)&code, 1);
    if (len > 0)
        g_byte_array_append(b, data, (guint)len);
    return raw_write_all(fd, b->data, b->len);
}

/* raw_read_full - read exactly len bytes within timeout seconds per wait */
static gboolean
raw_read_full(int fd, guint8 *buf, gsize len, const char **why)
{
    gsize got = 0;

    while (got < len) {
        struct pollfd pfd = { .fd = fd, .events = POLLIN };
        int timeout_ms = (cfg.timeout > 0 ? cfg.timeout : RAW_TIMEOUT) * 1000;
        int r = poll(&pfd, 1, timeout_ms);
        ssize_t n;

        if (r < 0 && errno == EINTR)
            continue;
        if (r == 0) {
            *why = "read timeout";
            return FALSE;
        }
        n = read(fd, buf + got, len - got);
        if (n < 0 && errno == EINTR)
            continue;
        if (n == 0) {
            *why = got == 0 ? "eof" : "eof inside a packet";
            return FALSE;
        }
        if (n < 0) {
            *why = g_strerror(errno);
            return FALSE;
        }
        got += (gsize)n;
    }
    return TRUE;
}

/* raw_garbage - write the chosen bytes instead of a reply */
static void
raw_garbage(Conn *c, Stage st)
{
    static const guint8 zero[4] = { 0, 0, 0, 0 };
    static const guint8 code[5] = { 0, 0, 0, 1, GARBAGE_CODE };
    guint8 huge[5 + 16];
    GString *l = line_new(c, "garbage");
    const guint8 *p;
    gsize n;

    switch (cfg.garbage_kind) {
    case GARBAGE_ZERO:
        p = zero;
        n = sizeof(zero);
        break;
    case GARBAGE_HUGE: {
        guint32 be = htonl(GARBAGE_HUGE_LEN);

        /* A believable start: the length, 'c', then a few filler bytes. */
        memcpy(huge, &be, 4);
        huge[4] = 'c';
        memset(huge + 5, 'x', sizeof(huge) - 5);
        p = huge;
        n = sizeof(huge);
        break;
    }
    default:
        p = code;
        n = sizeof(code);
    }
    kv_word(l, "stage", stage_info[st].name);
    kv_word(l, "kind",
            cfg.garbage_kind == GARBAGE_ZERO   ? "zero"
            : cfg.garbage_kind == GARBAGE_HUGE ? "huge"
                                               : "code");
    kv_uint(l, "bytes", n);
    kv_word(l, "status", raw_write_all(c->fd, p, n) ? "ok" : "fail");
    line_end(l);
}

/* raw_progress - send one SMFIR_PROGRESS */
static gboolean
raw_progress(Conn *c)
{
    return raw_send(c->fd, 'p', NULL, 0);
}

/* raw_reply_text - the REPLYCODE text, built as libmilter would */
static char *
raw_reply_text(const Reply *r)
{
    guint n = r->lines != NULL ? g_strv_length(r->lines) : 0;
    GString *s = g_string_new(NULL);

    if (n <= 1) {
        /* smfi_setreply: "code[ xcode][ text]" */
        g_string_append(s, r->code);
        g_string_append_c(s, ' ');
        if (r->xcode != NULL)
            g_string_append(s, r->xcode);
        if (n == 1) {
            if (r->xcode != NULL)
                g_string_append_c(s, ' ');
            g_string_append(s, r->lines[0]);
        }
        return g_string_free(s, FALSE);
    }
    /* smfi_setmlreply: "code-xcode text\r\n...code xcode text" */
    for (guint i = 0; i < n; i++) {
        const char *xc = r->xcode != NULL ? r->xcode : r->code[0] == '4' ? "4.0.0" : "5.0.0";

        g_string_append_printf(s, "%s%c%s %s%s", r->code, i + 1 < n ? '-' : ' ', xc, r->lines[i],
                               i + 1 < n ? "\r\n" : "");
    }
    return g_string_free(s, FALSE);
}

/* raw_answer - macros, garbage, faults, eom progress, then the reply packet */
static void
raw_answer(Conn *c, const Event *ev)
{
    static const char codes[] = { [V_CONTINUE] = 'c', [V_ACCEPT] = 'a',  [V_REJECT] = 'r',
                                  [V_TEMPFAIL] = 't', [V_DISCARD] = 'd', [V_SKIP] = 's' };
    const Rule *r;
    Verdict v;
    guint eom_ms;
    gboolean ok;

    log_macros(c, ev->stage);
    if (rule_find(cfg.garbage, c, ev) != NULL) {
        raw_garbage(c, ev->stage);
        return;
    }
    eom_ms = faults(c, ev);
    if (ev->stage == ST_EOM)
        progress_sleep(c, eom_ms, raw_progress);
    v = decide(c, ev, &r);
    if (v == V_NOREPLY) {
        ok = TRUE;
    } else if (v == V_REPLY) {
        g_autofree char *text = raw_reply_text(&r->reply);

        ok = raw_send(c->fd, 'y', text, strlen(text) + 1);
    } else {
        ok = raw_send(c->fd, codes[v], NULL, 0);
    }
    log_reply(c, ev->stage, v, r, ok);
}

/* get_u32 - big-endian u32 */
static guint32
get_u32(const guint8 *p)
{
    return ((guint32)p[0] << 24) | ((guint32)p[1] << 16) | ((guint32)p[2] << 8) | p[3];
}

/* put_u32 - append a big-endian u32 */
static void
put_u32(GByteArray *b, guint32 v)
{
    guint32 be = htonl(v);

    g_byte_array_append(b, (const guint8 *)&be, 4);
}

/* split_strings - the NUL-terminated strings of a packet's data (last one may lack its NUL) */
static GPtrArray *
split_strings(const guint8 *p, gsize n)
{
    GPtrArray *a = g_ptr_array_new_with_free_func(g_free);
    gsize i = 0;

    while (i < n) {
        gsize j = i;

        while (j < n && p[j] != '\0')
            j++;
        g_ptr_array_add(a, g_strndup((const char *)p + i, j - i));
        i = j + 1;
    }
    g_ptr_array_add(a, NULL);
    return a;
}

/* raw_negotiate - answer OPTNEG: version, no actions, the protocol bits asked for */
static void
raw_negotiate(Conn *c, const guint8 *p, gsize n)
{
    Event ev = { .stage = ST_NEGOTIATE };
    g_autoptr(GByteArray) b = g_byte_array_new();
    guint32 version, offer_a, offer_p;
    unsigned long want_p = wanted_protocol();

    if (n < 12) {
        log_note(c, "error", "short OPTNEG");
        return;
    }
    version = get_u32(p);
    offer_a = get_u32(p + 4);
    offer_p = get_u32(p + 8);
    /* No fake NR here: what the MTA did not offer is not asked for. */
    c->actions = 0;
    c->protocol = want_p & offer_p;
    log_negotiate(c, version, offer_a, offer_p, 0, want_p);
    if (rule_find(cfg.garbage, c, &ev) != NULL) {
        raw_garbage(c, ST_NEGOTIATE);
        return;
    }
    (void)faults(c, &ev);
    put_u32(b, MIN(version, 6u));
    put_u32(b, 0);
    put_u32(b, (guint32)c->protocol);
    for (int i = 0; i <= SMFIM_LAST; i++) {
        if (cfg.symlists[i] == NULL)
            continue;
        put_u32(b, (guint32)i);
        g_byte_array_append(b, (const guint8 *)cfg.symlists[i], (guint)strlen(cfg.symlists[i]) + 1);
    }
    if (!raw_send(c->fd, 'O', b->data, b->len))
        log_note(c, "error", "write OPTNEG reply failed");
}

/* raw_macro_packet - store a D packet as libmilter does (only C H M R T N E) */
static void
raw_macro_packet(Conn *c, const guint8 *p, gsize n)
{
    static const char letters[MACRO_SLOTS] = { 'C', 'H', 'M', 'R', 'T', 'N', 'E' };
    GPtrArray *a;
    int slot = -1;

    if (n < 1)
        return;
    for (int i = 0; i < MACRO_SLOTS; i++)
        if (letters[i] == (char)p[0])
            slot = i;
    if (slot < 0)
        return;
    a = split_strings(p + 1, n - 1);
    g_ptr_array_remove_index(a, a->len - 1); /* the NULL terminator */
    g_clear_pointer(&c->macros[slot], g_ptr_array_unref);
    c->macros[slot] = a;
}

/* raw_connect - C: host\0 family [port addr\0] */
static void
raw_connect(Conn *c, const guint8 *p, gsize n)
{
    Event ev = { .stage = ST_CONNECT };
    GString *l = line_new(c, "connect");
    gsize h = strnlen((const char *)p, n);

    conn_clear_macros(c, 1);
    kv_mem(l, "host", p, h);
    if (h + 1 >= n) {
        kv_word(l, "family", "missing");
    } else {
        char fam = (char)p[h + 1];
        const guint8 *rest = p + h + 2;
        gsize rn = n - h - 2;

        switch (fam) {
        case 'U':
            kv_word(l, "family", "unknown");
            break;
        case '4':
        case '6':
        case 'L':
            kv_word(l, "family", fam == '4' ? "inet" : fam == '6' ? "inet6" : "unix");
            if (rn >= 2) {
                kv_mem(l, "addr", rest + 2, strnlen((const char *)rest + 2, rn - 2));
                if (fam != 'L')
                    kv_uint(l, "port", ((guint)rest[0] << 8) | rest[1]);
            }
            break;
        default:
            g_string_append_printf(l, " family=0x%02x", (guint8)fam);
        }
    }
    line_event_end(l);
    raw_answer(c, &ev);
}

/* raw_envelope - M or R: argv */
static void
raw_envelope(Conn *c, Stage st, const guint8 *p, gsize n)
{
    g_autoptr(GPtrArray) a = split_strings(p, n);
    const char *addr = a->len > 1 ? g_ptr_array_index(a, 0) : "";
    Event ev = { .stage = st, .addr = addr };
    GString *l;

    conn_clear_macros(c, stage_info[st].slot + 1);
    if (st == ST_MAIL) {
        message_begin(c);
        c->m.mail = g_strdup(addr);
    } else {
        message_ensure(c);
        g_ptr_array_add(c->m.rcpts, g_strdup(addr));
    }
    l = line_new(c, stage_info[st].name);
    kv_str(l, "addr", addr);
    log_args(l, a->len > 1 ? (char **)a->pdata + 1 : (char **)a->pdata);
    line_event_end(l);
    raw_answer(c, &ev);
}

/* raw_stop - end the accept loop (any thread) */
static void
raw_stop(const char *reason)
{
    note_stopping(reason);
    if (raw_loop != NULL)
        g_main_loop_quit(raw_loop);
}

/* raw_session - serve one MTA connection until QUIT, EOF or an error */
static gpointer
raw_session(gpointer data)
{
    Conn *c = data;
    gboolean done = FALSE, closed = FALSE, counted = FALSE;

    while (!done) {
        guint8 hdr[4];
        g_autofree guint8 *buf = NULL;
        const char *why = NULL;
        guint32 len;
        const guint8 *p;
        gsize n;
        char cmd;

        if (!raw_read_full(c->fd, hdr, 4, &why)) {
            if (strcmp(why, "eof") != 0)
                log_note(c, "error", why);
            break;
        }
        len = get_u32(hdr);
        if (len < 1 || len > RAW_MAX_PACKET) {
            GString *l = line_new(c, "error");

            kv_str(l, "what", "bad packet length");
            kv_uint(l, "len", len);
            line_end(l);
            break;
        }
        buf = g_malloc(len);
        if (!raw_read_full(c->fd, buf, len, &why)) {
            log_note(c, "error", why);
            break;
        }
        cmd = (char)buf[0];
        p = buf + 1;
        n = len - 1;
        switch (cmd) {
        case 'O':
            raw_negotiate(c, p, n);
            break;
        case 'D':
            raw_macro_packet(c, p, n);
            break;
        case 'C':
            raw_connect(c, p, n);
            break;
        case 'H': {
            Event ev = { .stage = ST_HELO };
            GString *l = line_new(c, "helo");

            conn_clear_macros(c, 2);
            kv_mem(l, "name", p, strnlen((const char *)p, n));
            line_event_end(l);
            raw_answer(c, &ev);
            break;
        }
        case 'M':
            raw_envelope(c, ST_MAIL, p, n);
            break;
        case 'R':
            raw_envelope(c, ST_RCPT, p, n);
            break;
        case 'T': {
            Event ev = { .stage = ST_DATA };

            message_ensure(c);
            line_event_end(line_new(c, "data"));
            raw_answer(c, &ev);
            break;
        }
        case 'L': {
            g_autoptr(GPtrArray) a = split_strings(p, n);
            const char *name = a->len > 1 ? g_ptr_array_index(a, 0) : "";
            const char *value = a->len > 2 ? g_ptr_array_index(a, 1) : "";
            Event ev = { .stage = ST_HEADER, .hname = name, .hvalue = value };

            note_header(c, name, value);
            raw_answer(c, &ev);
            break;
        }
        case 'N': {
            Event ev = { .stage = ST_EOH };

            message_ensure(c);
            line_event_end(line_new(c, "eoh"));
            raw_answer(c, &ev);
            break;
        }
        case 'B': {
            Event ev = { .stage = ST_BODY, .data = p, .len = n };

            note_body(c, p, n);
            raw_answer(c, &ev);
            break;
        }
        case 'E': {
            Event ev = { .stage = ST_EOM };

            /* Data in E is a last body chunk (libmilter st_bodyend); no reply of its own here. */
            if (n > 0)
                note_body(c, p, n);
            note_eom(c);
            raw_answer(c, &ev);
            message_end(c);
            break;
        }
        case 'U': {
            Event ev = { .stage = ST_UNKNOWN };
            GString *l = line_new(c, "unknown");

            kv_mem(l, "cmd", p, strnlen((const char *)p, n));
            line_event_end(l);
            raw_answer(c, &ev);
            break;
        }
        case 'A': {
            Event ev = { .stage = ST_ABORT };

            line_event_end(line_new(c, "abort"));
            (void)faults(c, &ev);
            message_end(c);
            break;
        }
        case 'Q':
        case 'K': {
            Event ev = { .stage = ST_CLOSE };

            line_event_end(line_new(c, "close"));
            closed = TRUE;
            (void)faults(c, &ev);
            if (cmd == 'Q') {
                done = TRUE;
                break;
            }
            /* QUIT_NC: a new session on the same socket, without OPTNEG. */
            if (count_close()) {
                raw_stop("exit-after");
                counted = TRUE;
                done = TRUE;
                break;
            }
            {
                Conn *next = conn_new();

                next->fd = c->fd;
                next->actions = c->actions;
                next->protocol = c->protocol;
                c->fd = -1;
                conn_free(c);
                c = next;
                closed = FALSE;
            }
            break;
        }
        default: {
            GString *l = line_new(c, "error");

            kv_str(l, "what", "unknown command");
            g_string_append_printf(l, " cmd=0x%02x", (guint8)cmd);
            line_end(l);
        }
        }
    }
    /* Like libmilter: the close callback runs also when the MTA just went away. */
    if (!closed)
        line_event_end(line_new(c, "close"));
    close(c->fd);
    c->fd = -1;
    if (!counted && count_close())
        raw_stop("exit-after");
    conn_free(c);
    return NULL;
}

/* raw_listen - open the listening socket of SPEC (libmilter's forms) */
static int
raw_listen(const char *spec, int *port, char **unix_path, GError **error)
{
    const char *path;
    int fd;

    *port = -1;
    *unix_path = NULL;
    path = unix_socket_path(spec);
    if (path != NULL) {
        struct sockaddr_un un = { .sun_family = AF_UNIX };

        if (strlen(path) >= sizeof(un.sun_path)) {
            g_set_error(error, G_FILE_ERROR, G_FILE_ERROR_INVAL, "socket path too long");
            return -1;
        }
        strcpy(un.sun_path, path);
        fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0)
            goto fail;
        (void)unlink(path);
        if (bind(fd, (struct sockaddr *)&un, sizeof(un)) != 0)
            goto fail_close;
        *unix_path = g_strdup(path);
        *port = 0;
    } else {
        g_autofree char *portstr = NULL;
        const char *at, *host = NULL;
        struct addrinfo hints = { .ai_socktype = SOCK_STREAM,
                                  .ai_flags = AI_PASSIVE | AI_NUMERICSERV };
        struct addrinfo *ai = NULL;
        struct sockaddr_storage ss;
        socklen_t sl = sizeof(ss);
        int on = 1, r;

        if (g_str_has_prefix(spec, "inet:")) {
            hints.ai_family = AF_INET;
            spec += 5;
        } else if (g_str_has_prefix(spec, "inet6:")) {
            hints.ai_family = AF_INET6;
            spec += 6;
        } else {
            g_set_error(error, G_FILE_ERROR, G_FILE_ERROR_INVAL,
                        "socket spec must be inet:PORT@HOST, inet6:PORT@HOST or unix:PATH");
            return -1;
        }
        at = strchr(spec, '@');
        portstr = at != NULL ? g_strndup(spec, (gsize)(at - spec)) : g_strdup(spec);
        if (at != NULL && at[1] != '\0')
            host = at + 1;
        r = getaddrinfo(host, portstr, &hints, &ai);
        if (r != 0) {
            g_set_error(error, G_FILE_ERROR, G_FILE_ERROR_INVAL, "%s: %s", spec, gai_strerror(r));
            return -1;
        }
        fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0) {
            freeaddrinfo(ai);
            goto fail;
        }
        (void)setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on));
        if (bind(fd, ai->ai_addr, ai->ai_addrlen) != 0) {
            freeaddrinfo(ai);
            goto fail_close;
        }
        freeaddrinfo(ai);
        if (getsockname(fd, (struct sockaddr *)&ss, &sl) == 0)
            *port = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
                                                   : ((struct sockaddr_in *)&ss)->sin_port);
    }
    if (listen(fd, cfg.backlog > 0 ? cfg.backlog : SOMAXCONN) != 0)
        goto fail_close;
    return fd;

fail_close:
    g_set_error(error, G_FILE_ERROR, g_file_error_from_errno(errno), "bind/listen: %s",
                g_strerror(errno));
    close(fd);
    if (*unix_path != NULL) {
        (void)unlink(*unix_path);
        g_clear_pointer(unix_path, g_free);
    }
    return -1;
fail:
    g_set_error(error, G_FILE_ERROR, g_file_error_from_errno(errno), "socket: %s",
                g_strerror(errno));
    return -1;
}

/* raw_accept - a new MTA connection: one thread per session */
static gboolean
raw_accept(gint fd, GIOCondition cond, gpointer data)
{
    g_autoptr(GError) error = NULL;
    GThread *t;
    Conn *c;
    int cfd = accept4(fd, NULL, NULL, SOCK_CLOEXEC);

    if (cfd < 0)
        return G_SOURCE_CONTINUE;
    c = conn_new();
    c->fd = cfd;
    t = g_thread_try_new("session", raw_session, c, &error);
    if (t == NULL) {
        log_note(c, "error", error->message);
        close(cfd);
        conn_free(c);
        return G_SOURCE_CONTINUE;
    }
    g_thread_unref(t);
    return G_SOURCE_CONTINUE;
}

/* raw_on_signal - SIGTERM, SIGINT */
static gboolean
raw_on_signal(gpointer data)
{
    raw_stop("signal");
    return G_SOURCE_CONTINUE;
}

/* raw_main - listen, say ready, accept until a signal or --exit-after */
static int
raw_main(void)
{
    g_autoptr(GError) error = NULL;
    g_autofree char *unix_path = NULL;
    int port, lfd;

    raw_loop = g_main_loop_new(NULL, FALSE);
    g_unix_signal_add(SIGTERM, raw_on_signal, NULL);
    g_unix_signal_add(SIGINT, raw_on_signal, NULL);
    lfd = raw_listen(cfg.socket, &port, &unix_path, &error);
    if (lfd < 0) {
        log_note(NULL, "error", error->message);
        return START_STATUS;
    }
    g_unix_fd_add(lfd, G_IO_IN, raw_accept, NULL);
    log_ready("raw", port);
    g_main_loop_run(raw_loop);
    close(lfd);
    if (unix_path != NULL)
        (void)unlink(unix_path);
    log_exit(0);
    return 0;
}

/* ---------------------------------------------------------------------- */
/* Command line                                                           */
/* ---------------------------------------------------------------------- */

#define OPT_ERROR(...)                                                                             \
    (g_set_error(error, G_OPTION_ERROR, G_OPTION_ERROR_BAD_VALUE, __VA_ARGS__), FALSE)

/* parse_stage - a stage name of the allowed set */
static gboolean
parse_stage(const char *opt, const char *s, gsize n, guint allowed, Stage *out, GError **error)
{
    GString *names;

    for (int i = 0; i < ST_COUNT; i++) {
        if ((allowed & STAGE_BIT(i)) != 0 && strlen(stage_info[i].name) == n &&
            strncmp(stage_info[i].name, s, n) == 0) {
            *out = (Stage)i;
            return TRUE;
        }
    }
    names = g_string_new(NULL);
    for (int i = 0; i < ST_COUNT; i++)
        if ((allowed & STAGE_BIT(i)) != 0)
            g_string_append_printf(names, "%s%s", names->len ? " " : "", stage_info[i].name);
    g_set_error(error, G_OPTION_ERROR, G_OPTION_ERROR_BAD_VALUE,
                "%s: bad stage \"%.*s\" (one of: %s)", opt, (int)n, s, names->str);
    g_string_free(names, TRUE);
    return FALSE;
}

/* parse_uint - a whole decimal number */
static gboolean
parse_uint(const char *opt, const char *s, guint *out, GError **error)
{
    guint64 v;

    if (!g_ascii_string_to_unsigned(s, 10, 0, G_MAXINT, &v, NULL))
        return OPT_ERROR("%s: \"%s\" is not a number", opt, s);
    *out = (guint)v;
    return TRUE;
}

/* macro_name_add - log this macro name too (no duplicates) */
static void
macro_name_add(const char *name)
{
    for (guint i = 0; i < cfg.macro_names->len; i++)
        if (strcmp(g_ptr_array_index(cfg.macro_names, i), name) == 0)
            return;
    g_ptr_array_add(cfg.macro_names, g_strdup(name));
}

/* stage_allows - may a match of this kind ever fit at stage st */
static gboolean
stage_allows(MatchKind k, Stage st)
{
    switch (k) {
    case M_HEADER:
        return st == ST_HEADER || st == ST_EOH || st == ST_BODY || st == ST_EOM || st == ST_ABORT;
    case M_MAIL:
        return (st >= ST_MAIL && st <= ST_EOM) || st == ST_ABORT;
    case M_RCPT:
        return (st >= ST_RCPT && st <= ST_EOM) || st == ST_ABORT;
    case M_BODY:
        return st == ST_BODY || st == ST_EOM;
    default:
        return TRUE;
    }
}

/* parse_header_match - NAME[~TEXT] */
static gboolean
parse_header_match(const char *opt, const char *s, Match *m, GError **error)
{
    const char *tilde = strchr(s, '~');

    m->kind = M_HEADER;
    m->name = tilde != NULL ? g_strndup(s, (gsize)(tilde - s)) : g_strdup(s);
    m->text = tilde != NULL ? g_strdup(tilde + 1) : NULL;
    if (*m->name == '\0')
        return OPT_ERROR("%s: header match without a header name", opt);
    return TRUE;
}

/* parse_match - the text after "@" (see the file-top comment) */
static gboolean
parse_match(const char *opt, const char *s, Stage st, Match *m, GError **error)
{
    const char *rest;

    memset(m, 0, sizeof(*m));
    if (*s == '!') {
        m->negate = TRUE;
        s++;
    }
    if (*s == '\0')
        return OPT_ERROR("%s: empty match after \"@\"", opt);
    if (strcmp(s, "auth") == 0) {
        m->kind = M_AUTH;
        macro_name_add("{auth_authen}");
    } else if ((rest = g_str_has_prefix(s, "macro:") ? s + 6 : NULL) != NULL) {
        const char *eq = strchr(rest, '=');

        m->kind = M_MACRO;
        m->name = eq != NULL ? g_strndup(rest, (gsize)(eq - rest)) : g_strdup(rest);
        m->text = eq != NULL ? g_strdup(eq + 1) : NULL;
        if (*m->name == '\0')
            return OPT_ERROR("%s: macro match without a macro name", opt);
        macro_name_add(m->name);
    } else if (g_str_has_prefix(s, "header:")) {
        if (!parse_header_match(opt, s + 7, m, error))
            return FALSE;
    } else if (g_str_has_prefix(s, "mail:")) {
        m->kind = M_MAIL;
        m->text = g_strdup(s + 5);
    } else if (g_str_has_prefix(s, "rcpt:")) {
        m->kind = M_RCPT;
        m->text = g_strdup(s + 5);
    } else if (g_str_has_prefix(s, "body~")) {
        m->kind = M_BODY;
        m->text = g_strdup(s + 5);
        if (*m->text == '\0')
            return OPT_ERROR("%s: body~ needs a text", opt);
        if (st != ST_BODY)
            cfg.keep_body = TRUE;
    } else if (g_str_has_prefix(s, "conn:") || g_str_has_prefix(s, "msg:")) {
        m->kind = s[0] == 'c' ? M_CONN : M_MSG;
        if (!parse_uint(opt, strchr(s, ':') + 1, &m->num, error))
            return FALSE;
    } else if (st == ST_HEADER && strchr(s, '~') != NULL) {
        if (!parse_header_match(opt, s, m, error))
            return FALSE;
    } else if (st == ST_MAIL || st == ST_RCPT) {
        m->kind = st == ST_MAIL ? M_MAIL : M_RCPT;
        m->text = g_strdup(s);
    } else {
        return OPT_ERROR("%s: cannot tell what match \"%s\" means at stage %s; use one of auth, "
                         "macro:, header:, mail:, rcpt:, body~, conn:, msg:",
                         opt, s, stage_info[st].name);
    }
    if (!stage_allows(m->kind, st))
        return OPT_ERROR("%s: match \"%s\" can never fit at stage %s", opt, s, stage_info[st].name);
    return TRUE;
}

/* is_enhanced_code - "D.DDD.DDD" as libmilter's myisenhsc wants it */
static gboolean
is_enhanced_code(const char *s)
{
    int h;

    if (!((s[0] == '2' || s[0] == '4' || s[0] == '5') && s[1] == '.'))
        return FALSE;
    s += 2;
    for (h = 0; h < 3 && g_ascii_isdigit(s[h]); h++)
        ;
    if (h == 0 || s[h] != '.')
        return FALSE;
    s += h + 1;
    for (h = 0; h < 3 && g_ascii_isdigit(s[h]); h++)
        ;
    return h > 0 && s[h] == '\0';
}

/* parse_reply - "CODE [X.Y.Z] text|more|lines" */
static gboolean
parse_reply(const char *opt, const char *text, Reply *r, GError **error)
{
    g_auto(GStrv) parts = g_strsplit(text, "|", -1);
    GPtrArray *lines = g_ptr_array_new();
    const char *p = text;
    guint n = g_strv_length(parts);

    if (!(p[0] == '4' || p[0] == '5') || !g_ascii_isdigit(p[1]) || !g_ascii_isdigit(p[2]) ||
        (p[3] != '\0' && p[3] != ' ' && p[3] != '|')) {
        g_ptr_array_free(lines, TRUE);
        return OPT_ERROR("%s: reply \"%s\" must start with a 4xx or 5xx code", opt, text);
    }
    r->spec = g_strdup(text);
    r->code = g_strndup(p, 3);
    p = parts[0] + 3;
    if (*p == ' ')
        p++;
    {
        gsize tl = strcspn(p, " ");
        g_autofree char *tok = g_strndup(p, tl);

        if (is_enhanced_code(tok)) {
            r->xcode = g_steal_pointer(&tok);
            p += tl;
            if (*p == ' ')
                p++;
        }
    }
    if (*p != '\0' || n > 1)
        g_ptr_array_add(lines, g_strdup(p));
    for (guint i = 1; i < n; i++)
        g_ptr_array_add(lines, g_strdup(parts[i]));
    g_ptr_array_add(lines, NULL);
    r->lines = (char **)g_ptr_array_free(lines, FALSE);
    if (g_strv_length(r->lines) > REPLY_MAX_LINES)
        return OPT_ERROR("%s: more than %d reply lines", opt, REPLY_MAX_LINES);
    for (guint i = 0; r->lines[i] != NULL; i++)
        if (strlen(r->lines[i]) > REPLY_MAX_LINE || strpbrk(r->lines[i], "\r\n") != NULL)
            return OPT_ERROR("%s: reply line %u too long or has CR/LF", opt, i + 1);
    return TRUE;
}

/* opt_action - --action STAGE:VERDICT[:ARG][@MATCH] */
static gboolean
opt_action(const gchar *opt, const gchar *value, gpointer data, GError **error)
{
    g_autoptr(Rule) r = g_new0(Rule, 1);
    const char *colon = strchr(value, ':'), *v, *rest;
    gsize vl;
    int i;

    if (colon == NULL)
        return OPT_ERROR("%s: \"%s\" is not STAGE:VERDICT", opt, value);
    if (!parse_stage(opt, value, (gsize)(colon - value), ACTION_STAGES, &r->stage, error))
        return FALSE;
    v = colon + 1;
    vl = strcspn(v, ":@");
    for (i = V_CONTINUE; i <= V_REPLY; i++)
        if (strlen(verdict_names[i]) == vl && strncmp(verdict_names[i], v, vl) == 0)
            break;
    if (i > V_REPLY)
        return OPT_ERROR("%s: bad verdict \"%.*s\" (continue, accept, reject, tempfail, discard, "
                         "skip or reply:TEXT)",
                         opt, (int)vl, v);
    r->verdict = (Verdict)i;
    rest = v + vl;
    if (r->verdict == V_REPLY) {
        GString *text = g_string_new(NULL);
        gboolean ok;

        if (*rest != ':') {
            g_string_free(text, TRUE);
            return OPT_ERROR("%s: reply needs :TEXT, e.g. reply:550 5.7.1 go away", opt);
        }
        for (rest++; *rest != '\0'; rest++) {
            if (*rest == '@') {
                if (rest[1] != '@')
                    break;
                rest++;
            }
            g_string_append_c(text, *rest);
        }
        ok = parse_reply(opt, text->str, &r->reply, error);
        g_string_free(text, TRUE);
        if (!ok)
            return FALSE;
    } else if (*rest == ':') {
        return OPT_ERROR("%s: verdict %s takes no argument", opt, verdict_names[r->verdict]);
    }
    if (*rest == '@' && !parse_match(opt, rest + 1, r->stage, &r->match, error))
        return FALSE;
    if (r->verdict == V_SKIP) {
        if (r->stage != ST_BODY)
            return OPT_ERROR("%s: skip is only for stage body", opt);
        cfg.want_skip = TRUE;
    }
    g_ptr_array_add(cfg.actions, g_steal_pointer(&r));
    return TRUE;
}

/* parse_fault - STAGE[:MS][@MATCH] for --sleep (with_ms), --crash, --garbage */
static gboolean
parse_fault(const char *opt, const char *value, guint allowed, gboolean with_ms, GPtrArray *list,
            GError **error)
{
    g_autoptr(Rule) r = g_new0(Rule, 1);
    gsize sl = strcspn(value, with_ms ? ":@" : "@");
    const char *rest = value + sl;

    if (!parse_stage(opt, value, sl, allowed, &r->stage, error))
        return FALSE;
    if (with_ms) {
        g_autofree char *ms = NULL;
        gsize ml;

        if (*rest != ':')
            return OPT_ERROR("%s: \"%s\" is not STAGE:MS", opt, value);
        rest++;
        ml = strcspn(rest, "@");
        ms = g_strndup(rest, ml);
        if (!parse_uint(opt, ms, &r->ms, error))
            return FALSE;
        rest += ml;
    }
    if (*rest == '@' && !parse_match(opt, rest + 1, r->stage, &r->match, error))
        return FALSE;
    g_ptr_array_add(list, g_steal_pointer(&r));
    return TRUE;
}

/* opt_sleep - --sleep STAGE:MS[@MATCH] */
static gboolean
opt_sleep(const gchar *opt, const gchar *value, gpointer data, GError **error)
{
    return parse_fault(opt, value, ALL_STAGES, TRUE, cfg.sleeps, error);
}

/* opt_crash - --crash STAGE[@MATCH] */
static gboolean
opt_crash(const gchar *opt, const gchar *value, gpointer data, GError **error)
{
    return parse_fault(opt, value, ALL_STAGES, FALSE, cfg.crashes, error);
}

/* opt_garbage - --garbage STAGE[@MATCH] (implies --raw) */
static gboolean
opt_garbage(const gchar *opt, const gchar *value, gpointer data, GError **error)
{
    cfg.raw = TRUE;
    return parse_fault(opt, value, REPLY_STAGES, FALSE, cfg.garbage, error);
}

/* opt_kind - --crash-kind exit|abort, --garbage-kind zero|huge|code */
static gboolean
opt_kind(const gchar *opt, const gchar *value, gpointer data, GError **error)
{
    if (strcmp(opt, "--crash-kind") == 0) {
        if (strcmp(value, "exit") != 0 && strcmp(value, "abort") != 0)
            return OPT_ERROR("%s: exit or abort", opt);
        cfg.crash_abort = strcmp(value, "abort") == 0;
        return TRUE;
    }
    if (strcmp(value, "zero") == 0)
        cfg.garbage_kind = GARBAGE_ZERO;
    else if (strcmp(value, "huge") == 0)
        cfg.garbage_kind = GARBAGE_HUGE;
    else if (strcmp(value, "code") == 0)
        cfg.garbage_kind = GARBAGE_CODE_BYTE;
    else
        return OPT_ERROR("%s: zero, huge or code", opt);
    return TRUE;
}

/* opt_flags - --no STAGE[,STAGE...], --nr STAGE[,STAGE...] */
static gboolean
opt_flags(const gchar *opt, const gchar *value, gpointer data, GError **error)
{
    gboolean nr = strcmp(opt, "--nr") == 0;
    g_auto(GStrv) names = g_strsplit(value, ",", -1);

    for (guint i = 0; names[i] != NULL; i++) {
        Stage st;

        if (!parse_stage(opt, names[i], strlen(names[i]), NO_STAGES, &st, error))
            return FALSE;
        if (nr)
            cfg.nr_flags |= stage_info[st].nr_flag;
        else
            cfg.no_flags |= stage_info[st].no_flag;
    }
    return TRUE;
}

/* opt_symlist - --symlist STAGE:"macro list" */
static gboolean
opt_symlist(const gchar *opt, const gchar *value, gpointer data, GError **error)
{
    const char *colon = strchr(value, ':');
    g_auto(GStrv) names = NULL;
    Stage st;
    int i;

    if (colon == NULL)
        return OPT_ERROR("%s: \"%s\" is not STAGE:LIST", opt, value);
    if (!parse_stage(opt, value, (gsize)(colon - value), SYMLIST_STAGES, &st, error))
        return FALSE;
    i = stage_info[st].smfim;
    if (cfg.symlists[i] != NULL)
        return OPT_ERROR("%s: stage %s given twice", opt, stage_info[st].name);
    cfg.symlists[i] = g_strdup(colon + 1);
    names = g_strsplit_set(colon + 1, " ,", -1);
    for (guint k = 0; names[k] != NULL; k++)
        if (*names[k] != '\0')
            macro_name_add(names[k]);
    return TRUE;
}

/* opt_macro - --macro NAME: log this macro too */
static gboolean
opt_macro(const gchar *opt, const gchar *value, gpointer data, GError **error)
{
    if (*value == '\0')
        return OPT_ERROR("%s: empty macro name", opt);
    macro_name_add(value);
    return TRUE;
}

/* opt_actions - --actions used|all|MASK (decimal or 0x hex, at most 0x1ff) */
static gboolean
opt_actions(const gchar *opt, const gchar *value, gpointer data, GError **error)
{
    gboolean hex = value[0] == '0' && (value[1] == 'x' || value[1] == 'X');
    guint64 v;

    cfg.actions_all = strcmp(value, "all") == 0;
    cfg.actions_fixed = FALSE;
    if (cfg.actions_all || strcmp(value, "used") == 0)
        return TRUE;
    if (!g_ascii_string_to_unsigned(hex ? value + 2 : value, hex ? 16 : 10, 0, SMFI_CURR_ACTS, &v,
                                    NULL))
        return OPT_ERROR("%s: used, all, or a mask up to 0x1ff", opt);
    cfg.actions_fixed = TRUE;
    cfg.actions_mask = (unsigned long)v;
    return TRUE;
}

/* lf_to_crlf - body text as the MTA sends it: bare LF becomes CRLF */
static GBytes *
lf_to_crlf(const char *p, gsize n)
{
    GByteArray *b = g_byte_array_sized_new((guint)n + 16);

    for (gsize i = 0; i < n; i++) {
        if (p[i] == '\n' && (i == 0 || p[i - 1] != '\r'))
            g_byte_array_append(b, (const guint8 *)"\r", 1);
        g_byte_array_append(b, (const guint8 *)p + i, 1);
    }
    return g_byte_array_free_to_bytes(b);
}

/* split_addr_args - ADDR[:ARGS]; ADDR may be <...> containing ':' */
static gboolean
split_addr_args(const char *opt, const char *value, char **addr, char **args, GError **error)
{
    const char *end;

    if (value[0] == '<') {
        end = strchr(value, '>');
        if (end == NULL)
            return OPT_ERROR("%s: \"%s\" has no closing \">\"", opt, value);
        end++;
        if (*end != '\0' && *end != ':')
            return OPT_ERROR("%s: \"%s\": want ADDR[:ARGS]", opt, value);
    } else {
        end = value + strcspn(value, ":");
    }
    if (end == value)
        return OPT_ERROR("%s: empty address", opt);
    *addr = g_strndup(value, (gsize)(end - value));
    *args = *end == ':' ? g_strdup(end + 1) : NULL;
    return TRUE;
}

/* header_name_ok - a header field name: printable, no blank, no colon */
static gboolean
header_name_ok(const char *s, gsize n)
{
    if (n == 0)
        return FALSE;
    for (gsize i = 0; i < n; i++)
        if (s[i] <= ' ' || s[i] == ':' || s[i] == 0x7f)
            return FALSE;
    return TRUE;
}

/* opt_edit - every EOM edit option, kept in command-line order */
static gboolean
opt_edit(const gchar *opt, const gchar *value, gpointer data, GError **error)
{
    g_autoptr(Edit) e = g_new0(Edit, 1);
    const char *colon;
    int k;

    for (k = 0; k < (int)G_N_ELEMENTS(edit_names); k++)
        if (strcmp(opt + 2, edit_names[k]) == 0)
            break;
    if (strcmp(opt, "--replace-body-file") == 0)
        k = ED_REPLACE_BODY;
    if (k >= (int)G_N_ELEMENTS(edit_names))
        return OPT_ERROR("%s: unknown edit", opt);
    e->kind = (EditKind)k;
    switch (e->kind) {
    case ED_ADD_HEADER:
        colon = strchr(value, ':');
        if (colon == NULL || !header_name_ok(value, (gsize)(colon - value)))
            return OPT_ERROR("%s: \"%s\" is not NAME:VALUE", opt, value);
        e->name = g_strndup(value, (gsize)(colon - value));
        e->value = g_strdup(colon + 1);
        break;
    case ED_INSERT_HEADER:
    case ED_CHANGE_HEADER: {
        g_auto(GStrv) f = g_strsplit(value, ":", 3);
        const char *name, *idx;
        guint n;

        if (g_strv_length(f) != 3)
            return OPT_ERROR("%s: \"%s\" is not %s", opt, value,
                             e->kind == ED_INSERT_HEADER ? "INDEX:NAME:VALUE" : "NAME:INDEX:VALUE");
        name = e->kind == ED_INSERT_HEADER ? f[1] : f[0];
        idx = e->kind == ED_INSERT_HEADER ? f[0] : f[1];
        if (!header_name_ok(name, strlen(name)))
            return OPT_ERROR("%s: bad header name \"%s\"", opt, name);
        if (!parse_uint(opt, idx, &n, error))
            return FALSE;
        e->index = (int)n;
        e->name = g_strdup(name);
        e->value = g_strdup(f[2]);
        break;
    }
    case ED_DELETE_HEADER:
        if (!header_name_ok(value, strlen(value)))
            return OPT_ERROR("%s: bad header name \"%s\"", opt, value);
        e->name = g_strdup(value);
        break;
    case ED_REPLACE_BODY:
        if (strcmp(opt, "--replace-body-file") == 0) {
            g_autofree char *text = NULL;
            gsize n;

            if (!g_file_get_contents(value, &text, &n, error))
                return FALSE;
            e->body = lf_to_crlf(text, n);
        } else {
            e->body = lf_to_crlf(value, strlen(value));
        }
        break;
    case ED_CHGFROM:
    case ED_ADD_RCPT_PAR:
        if (!split_addr_args(opt, value, &e->name, &e->value, error))
            return FALSE;
        break;
    case ED_ADD_RCPT:
    case ED_DEL_RCPT:
        if (*value == '\0')
            return OPT_ERROR("%s: empty address", opt);
        e->name = g_strdup(value);
        break;
    case ED_QUARANTINE:
    case ED_SUBJECT_PREFIX:
        if (*value == '\0')
            return OPT_ERROR("%s: empty text", opt);
        e->value = g_strdup(value);
        break;
    }
    g_ptr_array_add(cfg.edits, g_steal_pointer(&e));
    return TRUE;
}

static const char help_text[] =
    "Log: one line per event, \"NAME conn=N msg=M EVENT key=value...\", flushed at once.\n"
    "  Values in quotes escape \\\\ \\\" \\r \\n \\t and other control bytes as \\xHH.\n"
    "\n"
    "STAGE: connect helo mail rcpt data header eoh body eom unknown (actions);\n"
    "  faults also take negotiate, abort and close; --garbage takes negotiate too.\n"
    "\n"
    "--action STAGE:VERDICT[:ARG][@MATCH], first fitting one wins, default continue.\n"
    "  VERDICT: continue accept reject tempfail discard skip(body) reply:TEXT\n"
    "  TEXT: \"CODE [X.Y.Z] text|line 2|line 3\"; \"@@\" is a literal \"@\" in TEXT.\n"
    "  MATCH (\"!\" in front negates):\n"
    "    auth                {auth_authen} set and not empty\n"
    "    macro:NAME[=VALUE]  macro set and not empty [equal to VALUE]\n"
    "    header:NAME[~TEXT]  this header / a header seen so far, containing TEXT\n"
    "    mail:ADDR rcpt:ADDR envelope sender / this or any recipient so far\n"
    "    body~TEXT           this body chunk / at eom the whole body contains TEXT\n"
    "    conn:N msg:N        the Nth connection / Nth message of a connection\n"
    "    ADDR                at mail or rcpt: the address (no case, <> optional)\n"
    "    NAME~TEXT           at header: short for header:NAME~TEXT\n"
    "\n"
    "Edits run at eom in command-line order, before the verdict. In header values,\n"
    "  --quarantine and --subject-prefix: %n name, %c conn, %m msg, %q queue id, %%.\n"
    "  --replace-body turns bare LF into CRLF; several replace-body edits concatenate.\n"
    "\n"
    "Faults: --sleep STAGE:MS[@MATCH]; --crash STAGE[@MATCH] (exit status 70, or\n"
    "  abort()); --exit-after N (stop after N sessions closed); --garbage STAGE[@MATCH]\n"
    "  writes --garbage-kind bytes instead of the reply: zero = 00000000,\n"
    "  huge = 01000000 'c' + 16 filler bytes, code = 00000001 'Z'. --garbage implies\n"
    "  --raw: no libmilter, own protocol engine, no edits.\n"
    "With --progress N the eom sleep is cut in N+1 slices with a progress after each\n"
    "  slice but the last.\n";

/* parse_args - fill cfg from the command line or exit with status 64 */
static void
parse_args(int argc, char **argv)
{
    gint log_body = DEFAULT_LOG_BODY, progress = 0, exit_after = 0;
    gint timeout = 0, backlog = 0, debug = 0;
    gboolean raw = FALSE;
    const GOptionEntry entries[] = {
        { "socket", 's', 0, G_OPTION_ARG_STRING, &cfg.socket,
          "Listen on SPEC: inet:PORT@HOST, inet6:PORT@HOST, unix:PATH (PORT 0: any free port, "
          "see the ready line)",
          "SPEC" },
        { "name", 'n', 0, G_OPTION_ARG_STRING, &cfg.name,
          "Name in the log and for %n (default test-milter)", "NAME" },
        { "log", 'l', 0, G_OPTION_ARG_FILENAME, &cfg.log_path,
          "Append the log to FILE (default stderr)", "FILE" },
        { "quiet", 'q', 0, G_OPTION_ARG_NONE, &cfg.quiet,
          "Log only process-level lines, crashes, garbage, errors", NULL },
        { "no-macro-log", 0, 0, G_OPTION_ARG_NONE, &cfg.no_macro_log, "Do not log macro lines",
          NULL },
        { "macro", 0, 0, G_OPTION_ARG_CALLBACK, (gpointer)opt_macro,
          "Also log macro NAME when visible (repeatable)", "NAME" },
        { "log-body", 0, 0, G_OPTION_ARG_INT, &log_body,
          "Log the first N bytes of each body chunk (default 128)", "N" },
        { "action", 'a', 0, G_OPTION_ARG_CALLBACK, (gpointer)opt_action,
          "Reply VERDICT at STAGE (repeatable, see below)", "STAGE:VERDICT[:ARG][@MATCH]" },
        { "add-header", 0, 0, G_OPTION_ARG_CALLBACK, (gpointer)opt_edit, "EOM: smfi_addheader",
          "NAME:VALUE" },
        { "insert-header", 0, 0, G_OPTION_ARG_CALLBACK, (gpointer)opt_edit, "EOM: smfi_insheader",
          "INDEX:NAME:VALUE" },
        { "change-header", 0, 0, G_OPTION_ARG_CALLBACK, (gpointer)opt_edit,
          "EOM: smfi_chgheader (empty VALUE deletes)", "NAME:INDEX:VALUE" },
        { "delete-header", 0, 0, G_OPTION_ARG_CALLBACK, (gpointer)opt_edit,
          "EOM: delete every NAME header seen, last first", "NAME" },
        { "replace-body", 0, 0, G_OPTION_ARG_CALLBACK, (gpointer)opt_edit,
          "EOM: smfi_replacebody with TEXT", "TEXT" },
        { "replace-body-file", 0, 0, G_OPTION_ARG_CALLBACK, (gpointer)opt_edit,
          "EOM: smfi_replacebody with the contents of FILE", "FILE" },
        { "chgfrom", 0, 0, G_OPTION_ARG_CALLBACK, (gpointer)opt_edit, "EOM: smfi_chgfrom",
          "ADDR[:ARGS]" },
        { "add-rcpt", 0, 0, G_OPTION_ARG_CALLBACK, (gpointer)opt_edit, "EOM: smfi_addrcpt",
          "ADDR" },
        { "add-rcpt-par", 0, 0, G_OPTION_ARG_CALLBACK, (gpointer)opt_edit, "EOM: smfi_addrcpt_par",
          "ADDR:ARGS" },
        { "del-rcpt", 0, 0, G_OPTION_ARG_CALLBACK, (gpointer)opt_edit, "EOM: smfi_delrcpt",
          "ADDR" },
        { "quarantine", 0, 0, G_OPTION_ARG_CALLBACK, (gpointer)opt_edit, "EOM: smfi_quarantine",
          "REASON" },
        { "subject-prefix", 0, 0, G_OPTION_ARG_CALLBACK, (gpointer)opt_edit,
          "EOM: prefix the Subject with TEXT and a space (add one if missing)", "TEXT" },
        { "progress", 0, 0, G_OPTION_ARG_INT, &progress,
          "EOM: send N smfi_progress before the final answer", "N" },
        { "sleep", 0, 0, G_OPTION_ARG_CALLBACK, (gpointer)opt_sleep,
          "Sleep MS in that callback before answering", "STAGE:MS[@MATCH]" },
        { "crash", 0, 0, G_OPTION_ARG_CALLBACK, (gpointer)opt_crash,
          "Die in that callback (the connection drops)", "STAGE[@MATCH]" },
        { "crash-kind", 0, 0, G_OPTION_ARG_CALLBACK, (gpointer)opt_kind,
          "exit: _exit(70) (default); abort: abort()", "exit|abort" },
        { "exit-after", 0, 0, G_OPTION_ARG_INT, &exit_after, "Stop after N sessions have closed",
          "N" },
        { "raw", 0, 0, G_OPTION_ARG_NONE, &raw, "Own protocol engine instead of libmilter", NULL },
        { "garbage", 0, 0, G_OPTION_ARG_CALLBACK, (gpointer)opt_garbage,
          "Write an invalid reply at STAGE (implies --raw)", "STAGE[@MATCH]" },
        { "garbage-kind", 0, 0, G_OPTION_ARG_CALLBACK, (gpointer)opt_kind,
          "What --garbage writes (default zero)", "zero|huge|code" },
        { "no", 0, 0, G_OPTION_ARG_CALLBACK, (gpointer)opt_flags,
          "Set SMFIP_NO* for STAGE (repeatable, or a comma list)", "STAGE" },
        { "nr", 0, 0, G_OPTION_ARG_CALLBACK, (gpointer)opt_flags,
          "Set SMFIP_NR_* for STAGE and never reply there", "STAGE" },
        { "symlist", 0, 0, G_OPTION_ARG_CALLBACK, (gpointer)opt_symlist,
          "Request macros for STAGE (smfi_setsymlist)", "STAGE:LIST" },
        { "leadspace", 0, 0, G_OPTION_ARG_NONE, &cfg.leadspace, "Request SMFIP_HDR_LEADSPC", NULL },
        { "rcpt-rej", 0, 0, G_OPTION_ARG_NONE, &cfg.rcpt_rej, "Request SMFIP_RCPT_REJ", NULL },
        { "actions", 0, 0, G_OPTION_ARG_CALLBACK, (gpointer)opt_actions,
          "SMFIF_* to request: used by the edits (default), all offered, or a mask",
          "used|all|MASK" },
        { "timeout", 0, 0, G_OPTION_ARG_INT, &timeout,
          "Read/write timeout in seconds (libmilter default 7210)", "S" },
        { "backlog", 0, 0, G_OPTION_ARG_INT, &backlog, "listen(2) backlog", "N" },
        { "debug", 0, 0, G_OPTION_ARG_INT, &debug, "libmilter debug level (smfi_setdbg)", "N" },
        { NULL, 0, 0, G_OPTION_ARG_NONE, NULL, NULL, NULL },
    };
    g_autoptr(GOptionContext) oc = g_option_context_new("- scriptable test milter");
    g_autoptr(GError) error = NULL;

    g_option_context_add_main_entries(oc, entries, NULL);
    g_option_context_set_description(oc, help_text);
    if (!g_option_context_parse(oc, &argc, &argv, &error)) {
        g_printerr("test-milter: %s\n", error->message);
        exit(USAGE_STATUS);
    }
    if (argc > 1) {
        g_printerr("test-milter: unexpected argument \"%s\"\n", argv[1]);
        exit(USAGE_STATUS);
    }
    if (cfg.socket == NULL) {
        g_printerr("test-milter: --socket is required (try --help)\n");
        exit(USAGE_STATUS);
    }
    if (cfg.name == NULL)
        cfg.name = g_strdup("test-milter");
    for (const char *p = cfg.name; *p != '\0'; p++) {
        if (*p <= ' ' || *p == 0x7f || *p == '"') {
            g_printerr("test-milter: --name must not contain blanks, quotes or control bytes\n");
            exit(USAGE_STATUS);
        }
    }
    if (log_body < 0 || progress < 0 || exit_after < 0 || timeout < 0 || backlog < 0 || debug < 0) {
        g_printerr("test-milter: numbers must not be negative\n");
        exit(USAGE_STATUS);
    }
    cfg.log_body = (guint)log_body;
    cfg.progress = (guint)progress;
    cfg.exit_after = (guint)exit_after;
    cfg.timeout = timeout;
    cfg.backlog = backlog;
    cfg.debug = debug;
    cfg.raw = cfg.raw || raw;
    if (cfg.raw && cfg.edits->len > 0) {
        g_printerr("test-milter: edits need libmilter (--raw is set or implied by --garbage)\n");
        exit(USAGE_STATUS);
    }
}

/* config_init - defaults before parsing */
static void
config_init(void)
{
    static const char *const default_macros[] = {
        "j",
        "_",
        "v",
        "{daemon_name}",
        "{daemon_addr}",
        "{if_name}",
        "{if_addr}",
        "{client_addr}",
        "{client_port}",
        "{client_name}",
        "{tls_version}",
        "{cipher}",
        "i",
        "{auth_type}",
        "{auth_authen}",
        "{auth_author}",
        "{mail_mailer}",
        "{mail_host}",
        "{mail_addr}",
        "{rcpt_mailer}",
        "{rcpt_host}",
        "{rcpt_addr}",
        "{msg_id}",
    };

    cfg.log_fd = STDERR_FILENO;
    cfg.macro_names = g_ptr_array_new_with_free_func(g_free);
    for (gsize i = 0; i < G_N_ELEMENTS(default_macros); i++)
        g_ptr_array_add(cfg.macro_names, g_strdup(default_macros[i]));
    cfg.actions = g_ptr_array_new_with_free_func((GDestroyNotify)rule_free);
    cfg.sleeps = g_ptr_array_new_with_free_func((GDestroyNotify)rule_free);
    cfg.crashes = g_ptr_array_new_with_free_func((GDestroyNotify)rule_free);
    cfg.garbage = g_ptr_array_new_with_free_func((GDestroyNotify)rule_free);
    cfg.edits = g_ptr_array_new_with_free_func((GDestroyNotify)edit_free);
    cfg.garbage_kind = GARBAGE_ZERO;
}

/* warn_nr_actions - an action at a stage that has --nr can never be sent */
static void
warn_nr_actions(void)
{
    for (guint i = 0; i < cfg.actions->len; i++) {
        const Rule *r = g_ptr_array_index(cfg.actions, i);

        if ((cfg.nr_flags & stage_info[r->stage].nr_flag) != 0) {
            GString *l = line_new(NULL, "warning");

            kv_str(l, "what", "action ignored: --nr for its stage");
            kv_word(l, "stage", stage_info[r->stage].name);
            line_end(l);
        }
    }
}

int
main(int argc, char **argv)
{
    config_init();
    parse_args(argc, argv);
    if (cfg.log_path != NULL) {
        cfg.log_fd = open(cfg.log_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
        if (cfg.log_fd < 0) {
            g_printerr("test-milter: open %s: %s\n", cfg.log_path, g_strerror(errno));
            return START_STATUS;
        }
    }
    (void)signal(SIGPIPE, SIG_IGN);
    warn_nr_actions();
    return cfg.raw ? raw_main() : lm_main();
}
