/* SPDX-License-Identifier: MIT */
/*
 * NAME
 *	milter-driver - play mail into a milter the way Postfix 3.7 does
 * SYNOPSIS
 *	milter-driver --connect SPEC [option...] FILE.eml...
 *	milter-driver --connect SPEC [option...] --generate-body BYTES
 *	milter-driver --connect SPEC [option...] --script FILE
 * DESCRIPTION
 *	An MTA-side milter client for tests, the demo and benchmarks. It
 *	drives shadowd (which is a milter to the MTA) and child milters
 *	directly. It is built on the project's codec: milter_encode_*()
 *	writes every packet, a MilterDecoder in MILTER_DIR_REPLY reads the
 *	replies, and milter_packet_format() prints both directions. The I/O
 *	is plain non-blocking GSocket calls in one thread per connection,
 *	and every wait (connect, write, read) has a timeout.
 *
 *	SPEC is inet:PORT@HOST, inet6:PORT@HOST, inet:HOST:PORT (HOST may
 *	be [IPV6]), unix:PATH or local:PATH. A host name is resolved once,
 *	at start.
 *
 *	Each connection sends SMFIC_OPTNEG (version 6, actions 0x1ff,
 *	protocol 0x1fffff unless --offer-* say otherwise), SMFIC_CONNECT
 *	and SMFIC_HELO, then each message as Postfix 3.7's smtpd and
 *	cleanup do (PF milter8.c): MAIL, RCPT per recipient, DATA, HEADER
 *	per header, EOH, BODY per 65535-byte chunk, BODYEOB; then ABORT
 *	after every transaction and QUIT at the end. Every command follows
 *	its SMFIC_MACRO, also when it is empty. The negotiated reply is
 *	honoured as Postfix honours it:
 *
 *	  - SMFIP_NO*: the event is not sent. For the envelope events
 *	    (C H M R T U) its SMFIC_MACRO still is; for the content events
 *	    (L N B) neither is, as cleanup does not run them at all.
 *	  - SMFIP_NR_*: the command is sent and no reply is awaited.
 *	  - SMFIP_HDR_LEADSPC: header values keep their leading space;
 *	    otherwise one leading space (not tab) is removed.
 *	  - macro lists (symlists) replace Postfix's defaults stage by
 *	    stage; names are sent as the milter spelled them.
 *	  - a version below 4 gets no DATA, below 3 no UNKNOWN.
 *
 *	The messages (FILE.eml, "-" for standard input) are headers, an
 *	empty line and the body, with LF or CRLF line ends; a leading
 *	"From " line is skipped. Folded headers are sent as Postfix sends
 *	them: continuation lines joined by a bare LF, indent kept. A line
 *	that is not a header ends the headers and starts the body, as in
 *	Postfix. Body lines are sent with CRLF, in chunks of 65535 bytes
 *	filled across line borders.
 *
 *	Macro values follow what Postfix 3.7 over SMTP knows at each
 *	stage: at connect j, {daemon_name} (both "localhost"), {daemon_addr},
 *	v ("Postfix 3.7.11"), _ ("unknown [ADDR]" without reverse lookup),
 *	{client_addr} ("IPv6:" prefix for family 6), {client_name},
 *	{client_ptr}, {client_port}; i (the queue ID) from the first
 *	accepted recipient on; {mail_addr} (no angle brackets, empty for
 *	<>), {mail_host}, {mail_mailer}, {rcpt_*}; {auth_type} and
 *	{auth_authen} with --auth. The content stages (L N B E) know only
 *	the connect values and i, as Postfix's cleanup does. --macro
 *	STAGE:NAME=VALUE overrides a value at one stage, and adds the name
 *	to that stage's default list when the milter sent no list for it.
 *	STAGE is connect, helo, mail, rcpt, data, eoh (also used for
 *	HEADER), eom (also used for BODY) or unknown.
 *
 *	Replies are handled as the MTA does. a/r/t/y/4 at CONNECT or HELO
 *	decide the whole connection (the socket is closed without QUIT and
 *	every message gets that verdict); d there is ignored with a
 *	warning. At MAIL, DATA, HEADER, EOH and BODY a/r/t/y/d end the
 *	message (an accept stops its events, the rest are refused), then
 *	ABORT. At RCPT r/t/y refuse only that recipient; a and d decide
 *	the message. s skips further events of the same kind (Postfix
 *	semantics). At BODYEOB progress, quarantine and modifications are
 *	read until the final reply. 4 (shutdown) closes the connection. A
 *	reply Postfix refuses after that event (a modification before
 *	BODYEOB, SMFIR_OPTNEG, a malformed SMFIR_REPLYCODE, body
 *	replacement mixed with other edits) is a protocol error; what only
 *	Sendmail or libmilter would object to is a warning (--strict makes
 *	warnings errors).
 *
 *	Output on stdout: one "packet listing v1" line per packet, "> "
 *	sent and "< " received, so tests can diff it; with --quiet one
 *	summary line per message instead:
 *	    message N: VERDICT stage=STAGE [reply="..."] [edits=K]
 *	        [quarantine="..."] [rcpt-rejected=K]
 *	VERDICT is accept, reject, tempfail, discard or shutdown. --stats
 *	prints throughput and the latency per stage (median, p99, max,
 *	from writing the command to reading its final reply) on stderr.
 *
 *	--timeout bounds the connect, each write and each reply;
 *	--eom-timeout each packet after BODYEOB, and every packet (progress
 *	included) restarts it, as in Postfix. --connections N repeats the
 *	whole run N times; the messages are split into connections of
 *	--messages-per-connection each (default: all on one); --concurrency
 *	C runs C connections at a time. File mode sends one ABORT after
 *	each transaction, where Postfix sends a second one before QUIT;
 *	a script reproduces such flows exactly.
 * SCRIPT
 *	With --script FILE the driver sends the steps of FILE instead of
 *	messages, one step per line, literally: it does not stop after a
 *	verdict, but it still honours the negotiated NO*, NR_* and
 *	HDR_LEADSPC bits and checks every reply. Empty lines and lines
 *	starting with # are ignored. The connection and SMFIC_OPTNEG are
 *	opened before the first step that sends something, and again after
 *	quit. TEXT and VALUE take the escapes \r \n \t \\ \xHH (and \0 in
 *	body TEXT).
 *
 *	    connect                 SMFIC_CONNECT with the client options
 *	    helo NAME               SMFIC_HELO
 *	    mail ADDR [ARG...]      SMFIC_MAIL; ADDR as written (<a@b>, <>)
 *	    rcpt ADDR [ARG...]      SMFIC_RCPT
 *	    data                    SMFIC_DATA
 *	    header NAME: VALUE      SMFIC_HEADER
 *	    eoh                     SMFIC_EOH
 *	    body TEXT               SMFIC_BODY, split at 65535 bytes
 *	    eom                     SMFIC_BODYEOB, up to the final reply
 *	    abort                   SMFIC_ABORT (no reply)
 *	    unknown COMMAND         SMFIC_UNKNOWN
 *	    quit                    SMFIC_QUIT, then close
 *	    quit-nc                 SMFIC_QUIT_NC; the connection stays
 *	    macro STAGE:NAME=VALUE  as --macro, for the steps after it
 *	    sleep MS                wait MS milliseconds
 *	    expect CODE [GLOB]      the last step's final reply was CODE: a
 *	                            letter (c a r t d y s 4), an SMFIR_* name,
 *	                            a word (continue, reject, ...) or "none";
 *	                            GLOB (the rest of the line, * and ?
 *	                            wildcards) must match the SMFIR_REPLYCODE
 *	                            text
 *
 *	The script ends without QUIT unless it says quit.
 * DIAGNOSTICS
 *	Errors go to stderr as "milter-driver: SPEC: what: why", for example
 *	"milter-driver: inet:8899@127.0.0.1: read SMFIC_RCPT reply: timed
 *	out after 10000 ms", with " (connection N, message M)" appended when
 *	the run has several. The first error stops the run: no new
 *	connection is started. Exit status 0 when every conversation
 *	completed (whatever the verdicts), 1 after a protocol error, a
 *	timeout, an I/O error or a failed expect, 2 on bad usage.
 * SECURITY
 *	A test tool. It connects to the given socket only, reads the named
 *	files, and needs no privilege. Replies are parsed by the project's
 *	decoder, which refuses packets over 65536 data bytes.
 */

/* System library. */
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>

/* GLib. */
#include <gio/gio.h>
#include <glib/gstdio.h>

/* Shadow libraries. */
#include "milter_decode.h"
#include "milter_encode.h"
#include "milter_proto.h"

#define PROGRAM "milter-driver"

/* Defaults, as in the brief and in Postfix 3.7 over SMTP without lookups. */
#define DEFAULT_TIMEOUT_MS     10000
#define DEFAULT_EOM_TIMEOUT_MS 300000
#define DEFAULT_CLIENT_ADDR    "127.0.0.1"
#define DEFAULT_HELO           "client.example.org"
#define DEFAULT_FROM           "sender@example.org"
#define DEFAULT_RCPT           "recipient@example.org"
#define DEFAULT_MYHOSTNAME     "localhost"
#define POSTFIX_MAIL_VERSION   "Postfix 3.7.11"
#define DEFAULT_DAEMON_PORT    "25"
#define OFFER_VERSION          MILTER_PROTO_VERSION
#define OFFER_ACTIONS          SMFI_CURR_ACTS
#define OFFER_PROTOCOL         SMFI_CURR_PROT

/* Limits: anything above them is a mistake on the command line. */
#define TIMEOUT_MAX_MS      (24 * 3600 * 1000) /* one day */
#define CONNECTIONS_MAX     10000000
#define CONCURRENCY_MAX     1024
#define JOBS_MAX            (G_MAXINT / 2) /* connections in one run */
#define MESSAGE_FILE_MAX    (256 * 1024 * 1024)
#define SCRIPT_FILE_MAX     (64 * 1024 * 1024)
#define GENERATE_BODY_MAX   (1024 * 1024 * 1024)
#define SCRIPT_SLEEP_MAX_MS 600000
#define READ_CHUNK          65536 /* bytes asked of one receive */
#define GENERATED_LINE      80    /* bytes per generated body line, CRLF included */

/* Queue IDs: 11 upper-case hex digits as Postfix's short IDs, deterministic. */
#define QUEUE_ID_BASE 0xA0000U

/* Macro list slots: the wire stages SMFIM_* and one for UNKNOWN. */
#define STAGE_UNKNOWN SMFIM_COUNT
#define STAGE_SLOTS   (SMFIM_COUNT + 1)

#define DRIVER_ERROR (driver_error_quark())

/* DriverError - what went wrong */
typedef enum {
    DRIVER_ERROR_USAGE,    /* bad command line, file or script */
    DRIVER_ERROR_IO,       /* socket error or peer closed */
    DRIVER_ERROR_TIMEOUT,  /* a wait timed out */
    DRIVER_ERROR_PROTOCOL, /* a reply the MTA would refuse */
    DRIVER_ERROR_EXPECT,   /* a script expectation failed */
} DriverError;

/* driver_error_quark - the error domain (not G_DEFINE_QUARK: clang-format spaces its name) */
static GQuark
driver_error_quark(void)
{
    return g_quark_from_static_string("milter-driver-error-quark");
}

/* EventInfo - how one MTA event is sent, after Postfix's milter8.c */
typedef struct {
    guint8 cmd;        /* SMFIC_* */
    guint32 no_flag;   /* SMFIP_NO*: the milter does not want the event */
    guint32 nr_flag;   /* SMFIP_NR_*: the milter sends no reply */
    guint slot;        /* macro list: SMFIM_* or STAGE_UNKNOWN */
    gboolean content;  /* sent by cleanup: no SMFIC_MACRO when switched off */
    const char *stage; /* name in summaries and statistics */
} EventInfo;

#define N_EVENTS 10
static const EventInfo events[N_EVENTS] = {
    { SMFIC_CONNECT, SMFIP_NOCONNECT, SMFIP_NR_CONN, SMFIM_CONNECT, FALSE, "connect" },
    { SMFIC_HELO, SMFIP_NOHELO, SMFIP_NR_HELO, SMFIM_HELO, FALSE, "helo" },
    { SMFIC_MAIL, SMFIP_NOMAIL, SMFIP_NR_MAIL, SMFIM_ENVFROM, FALSE, "mail" },
    { SMFIC_RCPT, SMFIP_NORCPT, SMFIP_NR_RCPT, SMFIM_ENVRCPT, FALSE, "rcpt" },
    { SMFIC_DATA, SMFIP_NODATA, SMFIP_NR_DATA, SMFIM_DATA, FALSE, "data" },
    { SMFIC_UNKNOWN, SMFIP_NOUNKNOWN, SMFIP_NR_UNKN, STAGE_UNKNOWN, FALSE, "unknown" },
    { SMFIC_HEADER, SMFIP_NOHDRS, SMFIP_NR_HDR, SMFIM_EOH, TRUE, "header" },
    { SMFIC_EOH, SMFIP_NOEOH, SMFIP_NR_EOH, SMFIM_EOH, TRUE, "eoh" },
    { SMFIC_BODY, SMFIP_NOBODY, SMFIP_NR_BODY, SMFIM_EOM, TRUE, "body" },
    { SMFIC_BODYEOB, 0, 0, SMFIM_EOM, TRUE, "eom" },
};

/* Statistics slots: SMFIC_OPTNEG, then one per event in table order. */
#define STAT_OPTNEG 0
#define STAT_SLOTS  (N_EVENTS + 1)

/* Postfix 3.7's default milter_*_macros (PF mail_params.h), by slot. */
static const char *const postfix_macros[STAGE_SLOTS] = {
    [SMFIM_CONNECT] = "j {daemon_name} {daemon_addr} v _",
    [SMFIM_HELO] = "{tls_version} {cipher} {cipher_bits} {cert_subject} {cert_issuer}",
    [SMFIM_ENVFROM] =
        "i {auth_type} {auth_authen} {auth_author} {mail_addr} {mail_host} {mail_mailer}",
    [SMFIM_ENVRCPT] = "i {rcpt_addr} {rcpt_host} {rcpt_mailer}",
    [SMFIM_DATA] = "i",
    [SMFIM_EOM] = "i",
    [SMFIM_EOH] = "i",
    [STAGE_UNKNOWN] = "",
};

/* StageWord - a --macro stage name and its slot */
typedef struct {
    const char *word;
    guint slot;
} StageWord;

static const StageWord stage_words[] = {
    { "connect", SMFIM_CONNECT }, { "helo", SMFIM_HELO },    { "mail", SMFIM_ENVFROM },
    { "envfrom", SMFIM_ENVFROM }, { "rcpt", SMFIM_ENVRCPT }, { "envrcpt", SMFIM_ENVRCPT },
    { "data", SMFIM_DATA },       { "eoh", SMFIM_EOH },      { "header", SMFIM_EOH },
    { "eom", SMFIM_EOM },         { "body", SMFIM_EOM },     { "unknown", STAGE_UNKNOWN },
};

/* ReplyWord - a word accepted by "expect" and the reply code it means */
typedef struct {
    const char *word;
    guint8 code;
} ReplyWord;

static const ReplyWord reply_words[] = {
    { "continue", SMFIR_CONTINUE }, { "accept", SMFIR_ACCEPT },
    { "reject", SMFIR_REJECT },     { "tempfail", SMFIR_TEMPFAIL },
    { "discard", SMFIR_DISCARD },   { "replycode", SMFIR_REPLYCODE },
    { "skip", SMFIR_SKIP },         { "shutdown", SMFIR_SHUTDOWN },
};

/* MacroSetting - one --macro STAGE:NAME=VALUE */
typedef struct {
    guint slot;
    char *name;  /* as written */
    char *canon; /* without braces */
    char *value;
} MacroSetting;

/* Rcpt - one --rcpt with its --rcpt-arg values */
typedef struct {
    char *addr; /* with angle brackets */
    GPtrArray *args;
} Rcpt;

/* Header - one message header as Postfix's cleanup hands it over */
typedef struct {
    char *name;
    char *value; /* after the colon, leading space kept; folded lines joined by LF */
} Header;

/* Message - one message to play */
typedef struct {
    char *label;        /* file name, for diagnostics */
    GPtrArray *headers; /* Header */
    GBytes *body;       /* CRLF line ends, as sent */
} Message;

/* StepKind - one --script step */
typedef enum {
    STEP_CONNECT,
    STEP_HELO,
    STEP_MAIL,
    STEP_RCPT,
    STEP_DATA,
    STEP_HEADER,
    STEP_EOH,
    STEP_BODY,
    STEP_EOM,
    STEP_ABORT,
    STEP_UNKNOWN,
    STEP_QUIT,
    STEP_QUIT_NC,
    STEP_MACRO,
    STEP_SLEEP,
    STEP_EXPECT,
} StepKind;

/* Step - one parsed script line */
typedef struct {
    StepKind kind;
    guint line;
    GPtrArray *args;     /* helo/unknown: one string; mail/rcpt: address and ESMTP args */
    char *name;          /* header name */
    GBytes *data;        /* header value or body text */
    guint8 code;         /* expect: SMFIR_*, 0 for "none" */
    char *glob;          /* expect: pattern for the SMFIR_REPLYCODE text */
    guint ms;            /* sleep */
    MacroSetting *macro; /* macro */
} Step;

/* Config - everything from the command line, read-only while running */
typedef struct {
    char *spec;
    GSocketAddress *address;
    gboolean inet;
    guint32 offer_version;
    guint32 offer_actions;
    guint32 offer_protocol;
    char *client_addr;
    char *client_name; /* CONNECT hostname */
    char *client_ptr;  /* {client_name}: "unknown" when client_name is [addr] */
    guint client_port;
    guint8 family;
    char *helo;
    char *from; /* with angle brackets */
    GPtrArray *from_args;
    GPtrArray *rcpts; /* Rcpt */
    char *auth;
    char *queue_id;
    GPtrArray *macros;   /* MacroSetting */
    GPtrArray *messages; /* Message */
    char *script_path;
    GPtrArray *steps; /* Step */
    guint messages_per_connection;
    guint connections;
    guint concurrency;
    guint timeout_ms;
    guint eom_timeout_ms;
    gboolean quiet;
    gboolean stats;
    gboolean strict;
} Config;

/* Stats - latencies and counts of one worker */
typedef struct {
    GArray *lat[STAT_SLOTS]; /* gint64 microseconds */
    guint messages;
    guint connections;
} Stats;

/* Shared - state of one run, shared by the workers */
typedef struct {
    const Config *cfg;
    GMutex out_lock; /* stdout and stderr lines */
    gint next_job;   /* atomic */
    gint failed;     /* atomic flag: stop taking jobs */
    guint njobs;
    guint jobs_per_round; /* connections per round over the messages */
    gboolean many;        /* more than one connection or message: say which */
} Shared;

/* Reply - what one event got back */
typedef struct {
    guint8 code;      /* final reply; 0 when none was read */
    gboolean sent;    /* the command itself went out */
    char *text;       /* SMFIR_REPLYCODE text */
    guint edits;      /* modification packets at BODYEOB */
    char *quarantine; /* SMFIR_QUARANTINE reason */
} Reply;

/* Outcome - what happened to one message */
typedef struct {
    const char *verdict; /* accept reject tempfail discard shutdown; NULL: undecided */
    const char *stage;
    char *reply;
    char *quarantine;
    guint edits;
    guint rcpt_rejected;
} Outcome;

/* Txn - the macro context of the transaction in progress */
typedef struct {
    char *queue_id;
    gboolean qid_visible; /* Postfix has it from the first accepted RCPT on */
    char *mail_addr;      /* without angle brackets; NULL before MAIL */
    char *rcpt_addr;      /* the last RCPT sent */
    guint accepted;       /* recipients not refused */
} Txn;

/* Conn - one milter connection */
typedef struct {
    const Config *cfg;
    Shared *shared;
    Stats *stats;
    guint conn_no;          /* 1-based job number */
    guint msg_no;           /* message in progress, for diagnostics */
    GSocket *sock;          /* NULL when closed */
    MilterDecoder *replies; /* MILTER_DIR_REPLY */
    MilterDecoder *lister;  /* MILTER_DIR_COMMAND: re-reads what we send, for the listing */
    GByteArray *in;
    gsize in_pos;
    GByteArray *out;
    gsize out_pos;
    GString *listing; /* output not yet written */
    guint32 version;  /* negotiated */
    guint32 actions;
    guint32 protocol;
    guint32 np_mask; /* events the milter's protocol version lacks */
    char *symlist[STAGE_SLOTS];
    gboolean honour_skip; /* file mode: SMFIR_SKIP suppresses events */
    guint8 skip_event;
    Txn txn;
    guint txn_count;
    GPtrArray *script_macros; /* MacroSetting, owned by the steps */
    guint8 last_code;         /* script: final reply of the last step */
    char *last_text;
} Conn;

/* Worker - one thread of connections */
typedef struct {
    Shared *shared;
    Stats stats;
    GThread *thread;
} Worker;

/* Flow - how a message goes on after an event */
typedef enum {
    FLOW_ERROR,    /* *error is set */
    FLOW_CONTINUE, /* send the next event */
    FLOW_DECIDED,  /* the outcome has a verdict */
} Flow;

/* macro_setting_free - free a MacroSetting; NULL is allowed */
static void
macro_setting_free(MacroSetting *m)
{
    if (m == NULL)
        return;
    g_free(m->name);
    g_free(m->canon);
    g_free(m->value);
    g_free(m);
}

/* rcpt_free - free a Rcpt */
static void
rcpt_free(Rcpt *r)
{
    g_free(r->addr);
    g_ptr_array_unref(r->args);
    g_free(r);
}

/* header_free - free a Header */
static void
header_free(Header *h)
{
    g_free(h->name);
    g_free(h->value);
    g_free(h);
}

/* message_new - an empty message called label */
static Message *
message_new(const char *label)
{
    Message *m = g_new0(Message, 1);

    m->label = g_strdup(label);
    m->headers = g_ptr_array_new_with_free_func((GDestroyNotify)header_free);
    return m;
}

/* message_free - free a Message; NULL is allowed */
static void
message_free(Message *m)
{
    if (m == NULL)
        return;
    g_free(m->label);
    g_ptr_array_unref(m->headers);
    if (m->body)
        g_bytes_unref(m->body);
    g_free(m);
}

G_DEFINE_AUTOPTR_CLEANUP_FUNC(Message, message_free)

/* step_free - free a Step; NULL is allowed */
static void
step_free(Step *s)
{
    if (s == NULL)
        return;
    if (s->args)
        g_ptr_array_unref(s->args);
    g_free(s->name);
    if (s->data)
        g_bytes_unref(s->data);
    g_free(s->glob);
    macro_setting_free(s->macro);
    g_free(s);
}

G_DEFINE_AUTOPTR_CLEANUP_FUNC(Step, step_free)

/* config_new - a Config with every default */
static Config *
config_new(void)
{
    Config *cfg = g_new0(Config, 1);

    cfg->offer_version = OFFER_VERSION;
    cfg->offer_actions = OFFER_ACTIONS;
    cfg->offer_protocol = OFFER_PROTOCOL;
    cfg->from_args = g_ptr_array_new_with_free_func(g_free);
    cfg->rcpts = g_ptr_array_new_with_free_func((GDestroyNotify)rcpt_free);
    cfg->macros = g_ptr_array_new_with_free_func((GDestroyNotify)macro_setting_free);
    cfg->messages = g_ptr_array_new_with_free_func((GDestroyNotify)message_free);
    cfg->steps = g_ptr_array_new_with_free_func((GDestroyNotify)step_free);
    cfg->connections = 1;
    cfg->concurrency = 1;
    cfg->timeout_ms = DEFAULT_TIMEOUT_MS;
    cfg->eom_timeout_ms = DEFAULT_EOM_TIMEOUT_MS;
    return cfg;
}

/* config_free - free a Config; NULL is allowed */
static void
config_free(Config *cfg)
{
    if (cfg == NULL)
        return;
    g_free(cfg->spec);
    g_clear_object(&cfg->address);
    g_free(cfg->client_addr);
    g_free(cfg->client_name);
    g_free(cfg->client_ptr);
    g_free(cfg->helo);
    g_free(cfg->from);
    g_ptr_array_unref(cfg->from_args);
    g_ptr_array_unref(cfg->rcpts);
    g_free(cfg->auth);
    g_free(cfg->queue_id);
    g_ptr_array_unref(cfg->macros);
    g_ptr_array_unref(cfg->messages);
    g_free(cfg->script_path);
    g_ptr_array_unref(cfg->steps);
    g_free(cfg);
}

G_DEFINE_AUTOPTR_CLEANUP_FUNC(Config, config_free)

/* reply_clear - free what a Reply holds and zero it */
static void
reply_clear(Reply *r)
{
    g_free(r->text);
    g_free(r->quarantine);
    memset(r, 0, sizeof(*r));
}

G_DEFINE_AUTO_CLEANUP_CLEAR_FUNC(Reply, reply_clear)

/* outcome_clear - free what an Outcome holds and zero it */
static void
outcome_clear(Outcome *o)
{
    g_free(o->reply);
    g_free(o->quarantine);
    memset(o, 0, sizeof(*o));
}

G_DEFINE_AUTO_CLEANUP_CLEAR_FUNC(Outcome, outcome_clear)

/* txn_clear - forget the transaction's macro context */
static void
txn_clear(Txn *t)
{
    g_free(t->queue_id);
    g_free(t->mail_addr);
    g_free(t->rcpt_addr);
    memset(t, 0, sizeof(*t));
}

/* event_info - the EventInfo of an SMFIC_* event */
static const EventInfo *
event_info(guint8 cmd)
{
    for (gsize i = 0; i < N_EVENTS; i++)
        if (events[i].cmd == cmd)
            return &events[i];
    g_return_val_if_reached(NULL);
}

/* code_label - "SMFIR_X" for a reply code, "no reply" for 0 */
static char *
code_label(guint8 code)
{
    const char *name = milter_reply_name(code);

    if (code == 0)
        return g_strdup("no reply");
    return name ? g_strdup(name) : g_strdup_printf("0x%02x", code);
}

/* ---------------------------------------------------------------- parsing */

/* parse_uint - a decimal or 0x-hexadecimal number in [min, max] */
static gboolean
parse_uint(const char *what, const char *s, guint64 min, guint64 max, guint64 *out, GError **error)
{
    g_autoptr(GError) err = NULL;
    guint base = 10;
    const char *digits = s;

    if (g_str_has_prefix(s, "0x") || g_str_has_prefix(s, "0X")) {
        base = 16;
        digits = s + 2;
    }
    if (!g_ascii_string_to_unsigned(digits, base, min, max, out, &err)) {
        g_set_error(error, DRIVER_ERROR, DRIVER_ERROR_USAGE, "%s: %s", what, err->message);
        return FALSE;
    }
    return TRUE;
}

/* parse_guint - parse_uint() into a guint */
static gboolean
parse_guint(const char *what, const char *s, guint64 min, guint64 max, guint *out, GError **error)
{
    guint64 v;

    if (!parse_uint(what, s, min, max, &v, error))
        return FALSE;
    *out = (guint)v;
    return TRUE;
}

/* angle_addr - ADDR with angle brackets, as Postfix passes MAIL and RCPT */
static char *
angle_addr(const char *addr)
{
    gsize len = strlen(addr);

    if (len >= 2 && addr[0] == '<' && addr[len - 1] == '>')
        return g_strdup(addr);
    return g_strdup_printf("<%s>", addr);
}

/* bare_addr - ADDR without angle brackets, as in {mail_addr} */
static char *
bare_addr(const char *addr)
{
    gsize len = strlen(addr);

    if (len >= 2 && addr[0] == '<' && addr[len - 1] == '>')
        return g_strndup(addr + 1, len - 2);
    return g_strdup(addr);
}

/* macro_canonical - a macro name without its braces: "{mail_addr}" -> "mail_addr" */
static char *
macro_canonical(const char *name)
{
    gsize len = strlen(name);

    if (len >= 2 && name[0] == '{' && name[len - 1] == '}')
        return g_strndup(name + 1, len - 2);
    return g_strdup(name);
}

/* macro_setting_parse - STAGE:NAME=VALUE */
static MacroSetting *
macro_setting_parse(const char *s, GError **error)
{
    const char *colon = strchr(s, ':');
    const char *eq = colon ? strchr(colon + 1, '=') : NULL;
    g_autofree char *stage = NULL;
    MacroSetting *m;
    gsize i;

    if (colon == NULL || eq == NULL || eq == colon + 1) {
        g_set_error(error, DRIVER_ERROR, DRIVER_ERROR_USAGE, "macro \"%s\": want STAGE:NAME=VALUE",
                    s);
        return NULL;
    }
    stage = g_strndup(s, (gsize)(colon - s));
    for (i = 0; i < G_N_ELEMENTS(stage_words); i++)
        if (g_ascii_strcasecmp(stage, stage_words[i].word) == 0)
            break;
    if (i == G_N_ELEMENTS(stage_words)) {
        g_set_error(error, DRIVER_ERROR, DRIVER_ERROR_USAGE,
                    "macro \"%s\": unknown stage \"%s\" (connect, helo, mail, rcpt, data, "
                    "eoh, eom, unknown)",
                    s, stage);
        return NULL;
    }
    m = g_new0(MacroSetting, 1);
    m->slot = stage_words[i].slot;
    m->name = g_strndup(colon + 1, (gsize)(eq - colon - 1));
    m->canon = macro_canonical(m->name);
    m->value = g_strdup(eq + 1);
    return m;
}

/* unescape - TEXT with \r \n \t \\ \xHH (and \0 if allow_nul) decoded */
static GByteArray *
unescape(const char *text, gboolean allow_nul, GError **error)
{
    g_autoptr(GByteArray) out = g_byte_array_new();

    for (const char *p = text; *p; p++) {
        guint8 c = (guint8)*p;

        if (c == '\\') {
            p++;
            switch (*p) {
            case 'r':
                c = '\r';
                break;
            case 'n':
                c = '\n';
                break;
            case 't':
                c = '\t';
                break;
            case '\\':
                c = '\\';
                break;
            case '0':
                c = 0;
                break;
            case 'x':
                if (!g_ascii_isxdigit(p[1]) || !g_ascii_isxdigit(p[2])) {
                    g_set_error(error, DRIVER_ERROR, DRIVER_ERROR_USAGE,
                                "\\x needs two hexadecimal digits");
                    return NULL;
                }
                c = (guint8)(g_ascii_xdigit_value(p[1]) * 16 + g_ascii_xdigit_value(p[2]));
                p += 2;
                break;
            default:
                g_set_error(error, DRIVER_ERROR, DRIVER_ERROR_USAGE, "unknown escape \\%c%s",
                            *p ? *p : ' ', *p ? "" : "(end of line)");
                return NULL;
            }
            if (c == 0 && !allow_nul) {
                g_set_error(error, DRIVER_ERROR, DRIVER_ERROR_USAGE,
                            "a NUL byte cannot be sent in a string field");
                return NULL;
            }
        }
        g_byte_array_append(out, &c, 1);
    }
    return g_steal_pointer(&out);
}

/* parse_spec - a milter socket SPEC as a socket address */
static GSocketAddress *
parse_spec(const char *spec, gboolean *inet, GError **error)
{
    const char *rest;
    g_autofree char *host = NULL;
    g_autofree char *port_text = NULL;
    g_autoptr(GInetAddress) addr = NULL;
    gboolean want6 = FALSE;
    guint port;

    *inet = FALSE;
    if (g_str_has_prefix(spec, "unix:") || g_str_has_prefix(spec, "local:")) {
        rest = strchr(spec, ':') + 1;
        if (*rest == '\0') {
            g_set_error(error, DRIVER_ERROR, DRIVER_ERROR_USAGE, "%s: empty socket path", spec);
            return NULL;
        }
        return g_unix_socket_address_new(rest);
    }
    if (g_str_has_prefix(spec, "inet:"))
        rest = spec + 5;
    else if (g_str_has_prefix(spec, "inet6:"))
        rest = spec + 6, want6 = TRUE;
    else {
        g_set_error(error, DRIVER_ERROR, DRIVER_ERROR_USAGE,
                    "%s: want inet:PORT@HOST, inet:HOST:PORT, inet6:PORT@HOST or unix:PATH", spec);
        return NULL;
    }
    if (strchr(rest, '@')) {
        const char *at = strchr(rest, '@');

        port_text = g_strndup(rest, (gsize)(at - rest));
        host = g_strdup(at + 1);
    } else if (strrchr(rest, ':')) {
        const char *colon = strrchr(rest, ':');

        host = g_strndup(rest, (gsize)(colon - rest));
        port_text = g_strdup(colon + 1);
    } else {
        g_set_error(error, DRIVER_ERROR, DRIVER_ERROR_USAGE, "%s: want PORT@HOST or HOST:PORT",
                    spec);
        return NULL;
    }
    if (host[0] == '[' && host[strlen(host) - 1] == ']') {
        char *inner = g_strndup(host + 1, strlen(host) - 2);

        g_free(host);
        host = inner;
    }
    if (*host == '\0') {
        g_set_error(error, DRIVER_ERROR, DRIVER_ERROR_USAGE, "%s: no host", spec);
        return NULL;
    }
    if (!parse_guint(spec, port_text, 1, 65535, &port, error))
        return NULL;
    addr = g_inet_address_new_from_string(host);
    if (addr == NULL) {
        g_autoptr(GResolver) resolver = g_resolver_get_default();
        g_autoptr(GError) err = NULL;
        GList *list = g_resolver_lookup_by_name(resolver, host, NULL, &err);

        if (list == NULL) {
            g_set_error(error, DRIVER_ERROR, DRIVER_ERROR_USAGE, "%s: %s", spec, err->message);
            return NULL;
        }
        for (GList *l = list; l; l = l->next)
            if (addr == NULL ||
                (want6 && g_inet_address_get_family(l->data) == G_SOCKET_FAMILY_IPV6))
                g_set_object(&addr, l->data);
        g_resolver_free_addresses(list);
    }
    *inet = TRUE;
    return g_inet_socket_address_new(addr, (guint16)port);
}

/* header_label - length of NAME if LINE is "NAME [spaces]:...", else 0 (Postfix is_header) */
static gsize
header_label(const char *line, gsize len, gsize *colon)
{
    gsize i = 0;
    gsize label;

    while (i < len && (guchar)line[i] > ' ' && (guchar)line[i] < 0x7f && line[i] != ':')
        i++;
    label = i;
    while (i < len && (line[i] == ' ' || line[i] == '\t'))
        i++;
    if (label == 0 || i >= len || line[i] != ':')
        return 0;
    *colon = i;
    return label;
}

/* message_add_header - finish a header being gathered */
static gboolean
message_add_header(Message *m, char *name, GString *value, GError **error)
{
    Header *h;

    if (memchr(value->str, 0, value->len) != NULL) {
        g_set_error(error, DRIVER_ERROR, DRIVER_ERROR_USAGE, "%s: NUL byte in header %s", m->label,
                    name);
        g_free(name);
        g_string_free(value, TRUE);
        return FALSE;
    }
    h = g_new0(Header, 1);
    h->name = name;
    h->value = g_string_free(value, FALSE);
    g_ptr_array_add(m->headers, h);
    return TRUE;
}

/* message_parse - headers, empty line, body; LF or CRLF line ends */
static Message *
message_parse(const char *label, const char *data, gsize len, GError **error)
{
    g_autoptr(Message) m = message_new(label);
    g_autoptr(GByteArray) body = g_byte_array_new();
    char *name = NULL;
    GString *value = NULL;
    gboolean in_headers = TRUE;
    gsize pos = 0;

    while (pos < len) {
        const char *line = data + pos;
        const char *nl = memchr(line, '\n', len - pos);
        gsize llen = nl ? (gsize)(nl - line) : len - pos;
        gsize colon, label_len;

        pos += llen + (nl ? 1 : 0);
        if (llen > 0 && line[llen - 1] == '\r')
            llen--;
        if (line == data && llen >= 5 && memcmp(line, "From ", 5) == 0)
            continue; /* an mbox separator, as Postfix's sendmail skips it */
        if (in_headers) {
            if ((line[0] == ' ' || line[0] == '\t') && llen > 0 && value != NULL) {
                g_string_append_c(value, '\n');
                g_string_append_len(value, line, (gssize)llen);
                continue;
            }
            if (value != NULL) {
                if (!message_add_header(m, name, value, error))
                    return NULL;
                name = NULL;
                value = NULL;
            }
            if (llen == 0) {
                in_headers = FALSE;
                continue;
            }
            label_len = header_label(line, llen, &colon);
            if (label_len > 0) {
                name = g_strndup(line, label_len);
                value = g_string_new_len(line + colon + 1, (gssize)(llen - colon - 1));
                continue;
            }
            in_headers = FALSE; /* not a header: the body starts here, as in Postfix */
        }
        g_byte_array_append(body, (const guint8 *)line, (guint)llen);
        g_byte_array_append(body, (const guint8 *)"\r\n", 2);
    }
    if (value != NULL && !message_add_header(m, name, value, error))
        return NULL;
    m->body = g_byte_array_free_to_bytes(g_steal_pointer(&body));
    return g_steal_pointer(&m);
}

/* message_load - read and parse FILE ("-": standard input) */
static Message *
message_load(const char *path, GError **error)
{
    g_autofree char *data = NULL;
    gsize len = 0;
    g_autoptr(GError) err = NULL;

    if (strcmp(path, "-") == 0) {
        g_autoptr(GIOChannel) ch = g_io_channel_unix_new(0);

        g_io_channel_set_encoding(ch, NULL, NULL);
        if (g_io_channel_read_to_end(ch, &data, &len, &err) != G_IO_STATUS_NORMAL) {
            g_set_error(error, DRIVER_ERROR, DRIVER_ERROR_USAGE, "standard input: %s",
                        err ? err->message : "read failed");
            return NULL;
        }
    } else {
        GStatBuf st;

        if (g_stat(path, &st) == 0 && st.st_size > MESSAGE_FILE_MAX) {
            g_set_error(error, DRIVER_ERROR, DRIVER_ERROR_USAGE, "%s: larger than %d bytes", path,
                        MESSAGE_FILE_MAX);
            return NULL;
        }
        if (!g_file_get_contents(path, &data, &len, &err)) {
            g_set_error(error, DRIVER_ERROR, DRIVER_ERROR_USAGE, "%s", err->message);
            return NULL;
        }
    }
    if (len > MESSAGE_FILE_MAX) {
        g_set_error(error, DRIVER_ERROR, DRIVER_ERROR_USAGE, "%s: larger than %d bytes", path,
                    MESSAGE_FILE_MAX);
        return NULL;
    }
    return message_parse(path, data, len, error);
}

/* message_generate - a message whose body is exactly bytes bytes of numbered CRLF lines */
static Message *
message_generate(guint64 bytes)
{
    static const char pattern[] = "abcdefghijklmnopqrstuvwxyz0123456789";
    g_autofree char *label = g_strdup_printf("generated-%" G_GUINT64_FORMAT, bytes);
    Message *m = message_new(label);
    GByteArray *body = g_byte_array_sized_new((guint)bytes + GENERATED_LINE);
    const char *const names[] = { "From", "To", "Subject", "Date", "Message-ID" };
    g_autofree char *subject =
        g_strdup_printf(" generated message, %" G_GUINT64_FORMAT "-byte body", bytes);
    g_autofree char *msgid = g_strdup_printf(" <%s@example.org>", label);
    const char *const values[] = { " <" DEFAULT_FROM ">", " <" DEFAULT_RCPT ">", subject,
                                   " Thu, 03 Dec 2026 12:00:00 +0000", msgid };

    for (gsize i = 0; i < G_N_ELEMENTS(names); i++) {
        Header *h = g_new0(Header, 1);

        h->name = g_strdup(names[i]);
        h->value = g_strdup(values[i]);
        g_ptr_array_add(m->headers, h);
    }
    for (guint n = 1; body->len < bytes; n++) {
        char line[GENERATED_LINE + 1];
        int k = g_snprintf(line, sizeof(line), "%06u ", n);

        while (k < GENERATED_LINE - 2) {
            line[k] = pattern[(k + n) % (sizeof(pattern) - 1)];
            k++;
        }
        line[k++] = '\r';
        line[k++] = '\n';
        g_byte_array_append(body, (const guint8 *)line, (guint)k);
    }
    g_byte_array_set_size(body, (guint)bytes);
    if (bytes >= 2) {
        body->data[bytes - 2] = '\r';
        body->data[bytes - 1] = '\n';
    }
    m->body = g_byte_array_free_to_bytes(body);
    return m;
}

/* parse_reply_word - an "expect" CODE: letter, SMFIR_* name, word, or "none" */
static gboolean
parse_reply_word(const char *word, guint8 *code)
{
    if (g_ascii_strcasecmp(word, "none") == 0) {
        *code = 0;
        return TRUE;
    }
    if (strlen(word) == 1 && milter_reply_name((guint8)word[0]) != NULL &&
        word[0] != SMFIR_OPTNEG) {
        *code = (guint8)word[0];
        return TRUE;
    }
    for (guint c = 1; c < 256; c++) {
        const char *name = milter_reply_name((guint8)c);

        if (name && g_ascii_strcasecmp(word, name) == 0) {
            *code = (guint8)c;
            return TRUE;
        }
    }
    for (gsize i = 0; i < G_N_ELEMENTS(reply_words); i++) {
        if (g_ascii_strcasecmp(word, reply_words[i].word) == 0) {
            *code = reply_words[i].code;
            return TRUE;
        }
    }
    return FALSE;
}

/* split_words - the non-empty words of TEXT separated by spaces or tabs */
static GPtrArray *
split_words(const char *text)
{
    g_auto(GStrv) parts = g_strsplit_set(text, " \t", -1);
    GPtrArray *words = g_ptr_array_new_with_free_func(g_free);

    for (char **p = parts; *p; p++)
        if (**p)
            g_ptr_array_add(words, g_strdup(*p));
    return words;
}

/* step_parse_args - fill a step from the text after its keyword */
static gboolean
step_parse_args(Step *s, const char *raw, const char *rest, GError **error)
{
    g_autoptr(GByteArray) bytes = NULL;
    g_autoptr(GPtrArray) words = split_words(rest);
    gboolean want_none = FALSE;
    guint64 ms;

    switch (s->kind) {
    case STEP_CONNECT:
    case STEP_DATA:
    case STEP_EOH:
    case STEP_EOM:
    case STEP_ABORT:
    case STEP_QUIT:
    case STEP_QUIT_NC:
        want_none = TRUE;
        break;
    case STEP_HELO:
    case STEP_UNKNOWN:
        if (*rest == '\0')
            break;
        if (!(bytes = unescape(rest, FALSE, error)))
            return FALSE;
        s->args = g_ptr_array_new_with_free_func(g_free);
        g_ptr_array_add(s->args, g_strndup((const char *)bytes->data, bytes->len));
        return TRUE;
    case STEP_MAIL:
    case STEP_RCPT:
        if (words->len == 0)
            break;
        s->args = g_steal_pointer(&words);
        return TRUE;
    case STEP_HEADER: {
        const char *colon = strchr(rest, ':');
        g_autofree char *name = colon ? g_strstrip(g_strndup(rest, (gsize)(colon - rest))) : NULL;

        if (name == NULL || *name == '\0') {
            g_set_error(error, DRIVER_ERROR, DRIVER_ERROR_USAGE, "header: want NAME: VALUE");
            return FALSE;
        }
        if (!(bytes = unescape(colon + 1, FALSE, error)))
            return FALSE;
        s->name = g_steal_pointer(&name);
        s->data = g_byte_array_free_to_bytes(g_steal_pointer(&bytes));
        return TRUE;
    }
    case STEP_BODY:
        if (!(bytes = unescape(raw, TRUE, error)))
            return FALSE;
        s->data = g_byte_array_free_to_bytes(g_steal_pointer(&bytes));
        return TRUE;
    case STEP_MACRO:
        if (words->len != 1)
            break;
        s->macro = macro_setting_parse(g_ptr_array_index(words, 0), error);
        return s->macro != NULL;
    case STEP_SLEEP:
        if (words->len != 1)
            break;
        if (!parse_uint("sleep", g_ptr_array_index(words, 0), 0, SCRIPT_SLEEP_MAX_MS, &ms, error))
            return FALSE;
        s->ms = (guint)ms;
        return TRUE;
    case STEP_EXPECT: {
        const char *glob = rest + strcspn(rest, " \t");

        if (words->len < 1)
            break;
        if (!parse_reply_word(g_ptr_array_index(words, 0), &s->code)) {
            g_set_error(error, DRIVER_ERROR, DRIVER_ERROR_USAGE, "expect: unknown reply \"%s\"",
                        (const char *)g_ptr_array_index(words, 0));
            return FALSE;
        }
        glob += strspn(glob, " \t");
        if (*glob) /* the rest of the line, spaces included */
            s->glob = g_strdup(glob);
        return TRUE;
    }
    }
    if (want_none && words->len == 0)
        return TRUE;
    g_set_error(error, DRIVER_ERROR, DRIVER_ERROR_USAGE, "wrong arguments; see --help");
    return FALSE;
}

/* step_parse - one script line; NULL with no error for blank and comment lines */
static Step *
step_parse(const char *line, guint lineno, GError **error)
{
    static const struct {
        const char *word;
        StepKind kind;
    } keywords[] = {
        { "connect", STEP_CONNECT }, { "helo", STEP_HELO },       { "mail", STEP_MAIL },
        { "rcpt", STEP_RCPT },       { "data", STEP_DATA },       { "header", STEP_HEADER },
        { "eoh", STEP_EOH },         { "body", STEP_BODY },       { "eom", STEP_EOM },
        { "abort", STEP_ABORT },     { "unknown", STEP_UNKNOWN }, { "quit", STEP_QUIT },
        { "quit-nc", STEP_QUIT_NC }, { "macro", STEP_MACRO },     { "sleep", STEP_SLEEP },
        { "expect", STEP_EXPECT },
    };
    const char *p = line;
    const char *end;
    g_autofree char *word = NULL;
    g_autofree char *rest = NULL;
    g_autoptr(Step) s = NULL;
    gsize i;

    while (*p == ' ' || *p == '\t')
        p++;
    if (*p == '\0' || *p == '#')
        return NULL;
    end = p + strcspn(p, " \t");
    word = g_strndup(p, (gsize)(end - p));
    for (i = 0; i < G_N_ELEMENTS(keywords); i++)
        if (strcmp(word, keywords[i].word) == 0)
            break;
    if (i == G_N_ELEMENTS(keywords)) {
        g_set_error(error, DRIVER_ERROR, DRIVER_ERROR_USAGE, "unknown step \"%s\"", word);
        return NULL;
    }
    s = g_new0(Step, 1);
    s->kind = keywords[i].kind;
    s->line = lineno;
    rest = g_strstrip(g_strdup(end));
    /* body TEXT is taken verbatim after one separator, trailing blanks included. */
    if (!step_parse_args(s, *end ? end + 1 : end, rest, error))
        return NULL;
    return g_steal_pointer(&s);
}

/* script_load - read a script into cfg->steps */
static gboolean
script_load(Config *cfg, const char *path, GError **error)
{
    g_autofree char *data = NULL;
    g_autoptr(GError) err = NULL;
    g_auto(GStrv) lines = NULL;
    gsize len = 0;
    GStatBuf st;

    if (g_stat(path, &st) == 0 && st.st_size > SCRIPT_FILE_MAX) {
        g_set_error(error, DRIVER_ERROR, DRIVER_ERROR_USAGE, "%s: larger than %d bytes", path,
                    SCRIPT_FILE_MAX);
        return FALSE;
    }
    if (!g_file_get_contents(path, &data, &len, &err)) {
        g_set_error(error, DRIVER_ERROR, DRIVER_ERROR_USAGE, "%s", err->message);
        return FALSE;
    }
    if (memchr(data, 0, len) != NULL) {
        g_set_error(error, DRIVER_ERROR, DRIVER_ERROR_USAGE, "%s: NUL byte in script", path);
        return FALSE;
    }
    lines = g_strsplit(data, "\n", -1);
    for (guint i = 0; lines[i]; i++) {
        gsize l = strlen(lines[i]);
        Step *s;

        if (l > 0 && lines[i][l - 1] == '\r')
            lines[i][l - 1] = '\0';
        s = step_parse(lines[i], i + 1, &err);
        if (err) {
            g_set_error(error, DRIVER_ERROR, DRIVER_ERROR_USAGE, "%s:%u: %s", path, i + 1,
                        err->message);
            return FALSE;
        }
        if (s)
            g_ptr_array_add(cfg->steps, s);
    }
    return TRUE;
}

/* ------------------------------------------------------------ diagnostics */

/* conn_context - " (connection N, message M)" when the run has several, else "" */
static char *
conn_context(const Conn *c)
{
    if (!c->shared->many)
        return g_strdup("");
    if (c->msg_no == 0)
        return g_strdup_printf(" (connection %u)", c->conn_no);
    return g_strdup_printf(" (connection %u, message %u)", c->conn_no, c->msg_no);
}

/* conn_output - write the pending listing to stdout in one piece */
static void
conn_output(Conn *c)
{
    if (c->listing->len == 0)
        return;
    g_mutex_lock(&c->shared->out_lock);
    fwrite(c->listing->str, 1, c->listing->len, stdout);
    fflush(stdout);
    g_mutex_unlock(&c->shared->out_lock);
    g_string_truncate(c->listing, 0);
}

/* conn_warn - report something only Sendmail or libmilter would object to */
G_GNUC_PRINTF(3, 4)
static gboolean
conn_warn(Conn *c, GError **error, const char *fmt, ...)
{
    va_list ap;
    g_autofree char *msg = NULL;
    g_autofree char *where = conn_context(c);

    va_start(ap, fmt);
    msg = g_strdup_vprintf(fmt, ap);
    va_end(ap);
    if (c->cfg->strict) {
        g_set_error(error, DRIVER_ERROR, DRIVER_ERROR_PROTOCOL, "%s (--strict)", msg);
        return FALSE;
    }
    conn_output(c); /* keep the order with the listing */
    g_mutex_lock(&c->shared->out_lock);
    g_printerr("%s: %s: warning: %s%s\n", PROGRAM, c->cfg->spec, msg, where);
    g_mutex_unlock(&c->shared->out_lock);
    return TRUE;
}

/* ---------------------------------------------------------------- sockets */

/* conn_wait - wait for cond until deadline (monotonic microseconds) */
static gboolean
conn_wait(Conn *c, GIOCondition cond, gint64 deadline, guint timeout_ms, const char *what,
          GError **error)
{
    gint64 left = deadline - g_get_monotonic_time();
    g_autoptr(GError) err = NULL;

    if (left > 0 && g_socket_condition_timed_wait(c->sock, cond, left, NULL, &err))
        return TRUE;
    if (err == NULL || g_error_matches(err, G_IO_ERROR, G_IO_ERROR_TIMED_OUT))
        g_set_error(error, DRIVER_ERROR, DRIVER_ERROR_TIMEOUT, "%s: timed out after %u ms", what,
                    timeout_ms);
    else
        g_set_error(error, DRIVER_ERROR, DRIVER_ERROR_IO, "%s: %s", what, err->message);
    return FALSE;
}

/* conn_close - close the socket, if open */
static void
conn_close(Conn *c)
{
    if (c->sock == NULL)
        return;
    g_socket_close(c->sock, NULL);
    g_clear_object(&c->sock);
}

/* conn_open - connect to the milter and reset the per-socket state */
static gboolean
conn_open(Conn *c, GError **error)
{
    const Config *cfg = c->cfg;
    g_autoptr(GError) err = NULL;

    c->sock = g_socket_new(g_socket_address_get_family(cfg->address), G_SOCKET_TYPE_STREAM,
                           G_SOCKET_PROTOCOL_DEFAULT, &err);
    if (c->sock == NULL) {
        g_set_error(error, DRIVER_ERROR, DRIVER_ERROR_IO, "socket: %s", err->message);
        return FALSE;
    }
    g_socket_set_blocking(c->sock, FALSE);
    if (!g_socket_connect(c->sock, cfg->address, NULL, &err)) {
        if (!g_error_matches(err, G_IO_ERROR, G_IO_ERROR_PENDING)) {
            g_set_error(error, DRIVER_ERROR, DRIVER_ERROR_IO, "connect: %s", err->message);
            conn_close(c);
            return FALSE;
        }
        g_clear_error(&err);
        if (!conn_wait(c, G_IO_OUT, g_get_monotonic_time() + (gint64)cfg->timeout_ms * 1000,
                       cfg->timeout_ms, "connect", error)) {
            conn_close(c);
            return FALSE;
        }
        if (!g_socket_check_connect_result(c->sock, &err)) {
            g_set_error(error, DRIVER_ERROR, DRIVER_ERROR_IO, "connect: %s", err->message);
            conn_close(c);
            return FALSE;
        }
    }
    if (cfg->inet)
        g_socket_set_option(c->sock, IPPROTO_TCP, TCP_NODELAY, 1, NULL);
    milter_decoder_free(c->replies);
    milter_decoder_free(c->lister);
    c->replies = milter_decoder_new(MILTER_DIR_REPLY, 0);
    c->lister = milter_decoder_new(MILTER_DIR_COMMAND, MILTER_DATA_MAX_CEILING);
    g_byte_array_set_size(c->in, 0);
    g_byte_array_set_size(c->out, 0);
    c->in_pos = c->out_pos = 0;
    c->version = c->actions = c->protocol = c->np_mask = 0;
    for (guint i = 0; i < STAGE_SLOTS; i++)
        g_clear_pointer(&c->symlist[i], g_free);
    c->skip_event = 0;
    c->stats->connections++;
    return TRUE;
}

/* conn_flush - write everything queued; each write waits at most --timeout */
static gboolean
conn_flush(Conn *c, guint8 cmd, GError **error)
{
    guint timeout = c->cfg->timeout_ms;
    gint64 deadline = g_get_monotonic_time() + (gint64)timeout * 1000;
    g_autofree char *what = g_strdup_printf("write %s", milter_command_name(cmd));

    while (c->out_pos < c->out->len) {
        g_autoptr(GError) err = NULL;
        gssize n = g_socket_send(c->sock, (const gchar *)c->out->data + c->out_pos,
                                 c->out->len - c->out_pos, NULL, &err);

        if (n < 0) {
            if (!g_error_matches(err, G_IO_ERROR, G_IO_ERROR_WOULD_BLOCK)) {
                g_set_error(error, DRIVER_ERROR, DRIVER_ERROR_IO, "%s: %s", what, err->message);
                return FALSE;
            }
            if (!conn_wait(c, G_IO_OUT, deadline, timeout, what, error))
                return FALSE;
            continue;
        }
        c->out_pos += (gsize)n;
        deadline = g_get_monotonic_time() + (gint64)timeout * 1000;
    }
    g_byte_array_set_size(c->out, 0);
    c->out_pos = 0;
    return TRUE;
}

/* conn_list - append one packet to the listing, formatted by the codec */
static void
conn_list(Conn *c, MilterDirection dir, const MilterPacket *pkt)
{
    milter_packet_format(c->listing, dir, pkt);
    g_string_append_c(c->listing, '\n');
}

/* conn_queue - queue an encoded command for writing and list it */
static void
conn_queue(Conn *c, const guint8 *data, gsize len)
{
    g_autoptr(GError) err = NULL;
    MilterPacket pkt;
    gsize n = 0;

    g_byte_array_append(c->out, data, (guint)len);
    if (c->cfg->quiet)
        return;
    /* Listing what we send by decoding it also checks our own encoding. */
    if (milter_decoder_feed(c->lister, data, len, &n, &pkt, &err) == MILTER_DECODE_PACKET)
        conn_list(c, MILTER_DIR_COMMAND, &pkt);
    else
        g_string_append_printf(c->listing, "# cannot list a sent packet: %s\n",
                               err ? err->message : "incomplete packet");
}

/* conn_queue_empty - queue a command without data (A, Q, K, T, N, E) */
static void
conn_queue_empty(Conn *c, guint8 cmd)
{
    g_autoptr(GByteArray) p = g_byte_array_new();

    milter_encode_empty(p, cmd);
    conn_queue(c, p->data, p->len);
}

/* conn_read - the next reply packet; waits at most timeout_ms for each read */
static gboolean
conn_read(Conn *c, guint timeout_ms, const char *what, MilterPacket *pkt, GError **error)
{
    gint64 deadline = g_get_monotonic_time() + (gint64)timeout_ms * 1000;

    for (;;) {
        g_autoptr(GError) err = NULL;
        gssize got;

        if (c->in_pos < c->in->len) {
            gsize n = 0;
            MilterDecodeStatus st = milter_decoder_feed(c->replies, c->in->data + c->in_pos,
                                                        c->in->len - c->in_pos, &n, pkt, &err);

            c->in_pos += n;
            if (st == MILTER_DECODE_FAILED) {
                g_set_error(error, DRIVER_ERROR, DRIVER_ERROR_PROTOCOL, "%s: %s", what,
                            err->message);
                return FALSE;
            }
            if (st == MILTER_DECODE_PACKET) {
                if (!c->cfg->quiet)
                    conn_list(c, MILTER_DIR_REPLY, pkt);
                return TRUE;
            }
        }
        /* Everything buffered is consumed: the last packet was used already. */
        g_byte_array_set_size(c->in, 0);
        c->in_pos = 0;
        if (c->cfg->concurrency == 1)
            conn_output(c);
        if (!conn_wait(c, G_IO_IN, deadline, timeout_ms, what, error))
            return FALSE;
        g_byte_array_set_size(c->in, READ_CHUNK);
        got = g_socket_receive(c->sock, (gchar *)c->in->data, READ_CHUNK, NULL, &err);
        g_byte_array_set_size(c->in, got > 0 ? (guint)got : 0);
        if (got < 0) {
            if (g_error_matches(err, G_IO_ERROR, G_IO_ERROR_WOULD_BLOCK))
                continue;
            g_set_error(error, DRIVER_ERROR, DRIVER_ERROR_IO, "%s: %s", what, err->message);
            return FALSE;
        }
        if (got == 0) {
            g_set_error(error, DRIVER_ERROR, DRIVER_ERROR_IO,
                        "%s: connection closed by the milter%s", what,
                        milter_decoder_idle(c->replies) ? "" : " in the middle of a packet");
            return FALSE;
        }
    }
}

/* ----------------------------------------------------------------- macros */

/* find_setting - the --macro or script macro for a slot and name, last one wins */
static const MacroSetting *
find_setting(const Conn *c, guint slot, const char *canon)
{
    for (guint i = c->script_macros->len; i > 0; i--) {
        const MacroSetting *m = g_ptr_array_index(c->script_macros, i - 1);

        if (m->slot == slot && strcmp(m->canon, canon) == 0)
            return m;
    }
    for (guint i = c->cfg->macros->len; i > 0; i--) {
        const MacroSetting *m = g_ptr_array_index(c->cfg->macros, i - 1);

        if (m->slot == slot && strcmp(m->canon, canon) == 0)
            return m;
    }
    return NULL;
}

/* addr_host - the next hop Postfix would name in {mail_host}/{rcpt_host} */
static char *
addr_host(const char *addr)
{
    const char *at = strrchr(addr, '@');

    return g_strdup(at ? at + 1 : DEFAULT_MYHOSTNAME);
}

/* addr_mailer - the transport Postfix would name in {mail_mailer}/{rcpt_mailer} */
static char *
addr_mailer(const char *addr)
{
    return g_strdup(strrchr(addr, '@') ? "smtp" : "local");
}

/*
 * conn_macro_value - what Postfix 3.7 would send for a macro at an event, or NULL
 *
 * The envelope events come from smtpd (smtpd_milter.c), the content events
 * from cleanup (cleanup_milter.c), which over SMTP knows only the connect
 * values and the queue ID.
 */
static char *
conn_macro_value(const Conn *c, const EventInfo *ev, const char *canon)
{
    const Config *cfg = c->cfg;
    const MacroSetting *set = find_setting(c, ev->slot, canon);
    const Txn *t = &c->txn;

    if (set)
        return g_strdup(set->value);
    if (strcmp(canon, "j") == 0 || strcmp(canon, "daemon_name") == 0)
        return g_strdup(DEFAULT_MYHOSTNAME);
    if (strcmp(canon, "v") == 0)
        return g_strdup(POSTFIX_MAIL_VERSION);
    if (strcmp(canon, "_") == 0)
        return g_strdup_printf("%s [%s]", cfg->client_ptr, cfg->client_addr);
    if (strcmp(canon, "client_addr") == 0)
        return !ev->content && cfg->family == SMFIA_INET6
                   ? g_strconcat("IPv6:", cfg->client_addr, NULL)
                   : g_strdup(cfg->client_addr);
    if (strcmp(canon, "client_name") == 0 || strcmp(canon, "client_ptr") == 0)
        return g_strdup(cfg->client_ptr);
    if (strcmp(canon, "client_port") == 0)
        return g_strdup_printf("%u", cfg->client_port);
    if (strcmp(canon, "i") == 0)
        return t->queue_id && t->qid_visible ? g_strdup(t->queue_id) : NULL;
    if (strcmp(canon, "auth_type") == 0)
        return cfg->auth ? g_strdup("PLAIN") : NULL;
    if (strcmp(canon, "auth_authen") == 0)
        return g_strdup(cfg->auth);
    if (ev->content)
        return NULL;
    if (strcmp(canon, "daemon_addr") == 0)
        return g_strdup(cfg->family == SMFIA_INET6 ? "::1" : "127.0.0.1");
    if (strcmp(canon, "daemon_port") == 0)
        return g_strdup(DEFAULT_DAEMON_PORT);
    if (strcmp(canon, "client_resolve") == 0)
        return g_strdup(strcmp(cfg->client_ptr, "unknown") == 0 ? "FAIL" : "OK");
    if (strcmp(canon, "mail_addr") == 0)
        return g_strdup(t->mail_addr);
    if (t->mail_addr && *t->mail_addr && strcmp(canon, "mail_host") == 0)
        return addr_host(t->mail_addr);
    if (t->mail_addr && *t->mail_addr && strcmp(canon, "mail_mailer") == 0)
        return addr_mailer(t->mail_addr);
    if (strcmp(canon, "rcpt_addr") == 0)
        return g_strdup(t->rcpt_addr);
    if (t->rcpt_addr && *t->rcpt_addr && strcmp(canon, "rcpt_host") == 0)
        return addr_host(t->rcpt_addr);
    if (t->rcpt_addr && *t->rcpt_addr && strcmp(canon, "rcpt_mailer") == 0)
        return addr_mailer(t->rcpt_addr);
    return NULL;
}

/* add_macro - append NAME and its value to pairs if it has one */
static void
add_macro(const Conn *c, const EventInfo *ev, const char *name, GPtrArray *pairs, GHashTable *seen)
{
    g_autofree char *canon = macro_canonical(name);
    char *value = conn_macro_value(c, ev, canon);

    g_hash_table_add(seen, g_strdup(canon));
    if (value == NULL)
        return;
    g_ptr_array_add(pairs, g_strdup(name));
    g_ptr_array_add(pairs, value);
}

/* add_settings - append the --macro names of a slot not listed already */
static void
add_settings(const Conn *c, const EventInfo *ev, const GPtrArray *settings, GPtrArray *pairs,
             GHashTable *seen)
{
    for (guint i = 0; i < settings->len; i++) {
        const MacroSetting *m = g_ptr_array_index(settings, i);

        if (m->slot == ev->slot && !g_hash_table_contains(seen, m->canon))
            add_macro(c, ev, m->name, pairs, seen);
    }
}

/* conn_queue_macros - queue the SMFIC_MACRO that precedes an event */
static void
conn_queue_macros(Conn *c, const EventInfo *ev)
{
    g_autoptr(GPtrArray) pairs = g_ptr_array_new_with_free_func(g_free);
    g_autoptr(GHashTable) seen = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
    g_autoptr(GByteArray) p = g_byte_array_new();
    const char *list = c->symlist[ev->slot] ? c->symlist[ev->slot] : postfix_macros[ev->slot];
    g_auto(GStrv) names = g_strsplit_set(list, " ,\t\r\n", -1);

    for (char **n = names; *n; n++)
        if (**n)
            add_macro(c, ev, *n, pairs, seen);
    if (c->symlist[ev->slot] == NULL) {
        add_settings(c, ev, c->cfg->macros, pairs, seen);
        add_settings(c, ev, c->script_macros, pairs, seen);
    }
    milter_encode_macro(p, ev->cmd, (const char *const *)pairs->pdata, pairs->len);
    conn_queue(c, p->data, p->len);
}

/* ----------------------------------------------------------------- replies */

/* check_replycode - Postfix 3.7 refuses what fails here (PF milter8.c); newer Postfix is stricter */
static gboolean
check_replycode(Conn *c, const char *text, GError **error)
{
    g_auto(GStrv) lines = NULL;
    guint n;

    if (!(text[0] == '4' || text[0] == '5') || !g_ascii_isdigit(text[1]) ||
        !g_ascii_isdigit(text[2]) || (text[3] != ' ' && text[3] != '-') ||
        (g_ascii_isdigit(text[4]) && text[4] != text[0])) {
        g_set_error(error, DRIVER_ERROR, DRIVER_ERROR_PROTOCOL,
                    "malformed SMFIR_REPLYCODE \"%s\" (Postfix: want [45]dd, then a space or "
                    "'-', and an enhanced code of the same class)",
                    text);
        return FALSE;
    }
    lines = g_strsplit(text, "\r\n", -1);
    n = g_strv_length(lines);
    for (guint i = 0; i < n; i++) {
        const char *l = lines[i];
        gboolean last = i + 1 == n;

        if (strlen(l) < 4 || strncmp(l, text, 3) != 0 || l[3] != (last ? ' ' : '-') ||
            strpbrk(l, "\r\n") != NULL || (g_ascii_isdigit(l[4]) && l[4] != text[0]))
            return conn_warn(c, error,
                             "SMFIR_REPLYCODE line %u \"%s\" is not \"%.3s%c...\" (newer Postfix "
                             "and libmilter refuse it)",
                             i + 1, l, text, last ? ' ' : '-');
    }
    return TRUE;
}

/* check_reply - is a reply legal after this event, as Postfix 3.7 sees it */
static gboolean
check_reply(Conn *c, const EventInfo *ev, const MilterPacket *pkt, GError **error)
{
    const char *rname = milter_reply_name(pkt->code);
    const char *cname = milter_command_name(ev->cmd);
    gboolean eom = ev->cmd == SMFIC_BODYEOB;
    guint32 need = milter_reply_action(pkt->code);

    switch (pkt->code) {
    case SMFIR_CONTINUE:
    case SMFIR_ACCEPT:
    case SMFIR_REJECT:
    case SMFIR_TEMPFAIL:
    case SMFIR_SHUTDOWN:
        return TRUE;
    case SMFIR_DISCARD:
        if (ev->cmd == SMFIC_CONNECT || ev->cmd == SMFIC_HELO)
            return conn_warn(c, error,
                             "SMFIR_DISCARD after %s is not allowed; ignored, as "
                             "Postfix does",
                             cname);
        return TRUE;
    case SMFIR_REPLYCODE:
        return check_replycode(c, pkt->argv[0], error);
    case SMFIR_SKIP:
        if (!(c->protocol & SMFIP_SKIP) && !conn_warn(c, error,
                                                      "SMFIR_SKIP after %s, but "
                                                      "SMFIP_SKIP was not negotiated",
                                                      cname))
            return FALSE;
        if (ev->cmd != SMFIC_BODY)
            return conn_warn(c, error,
                             "SMFIR_SKIP after %s: libmilter sends it only for body "
                             "chunks (Postfix skips further %s events)",
                             cname, cname);
        return TRUE;
    case SMFIR_PROGRESS:
        if (!eom)
            return conn_warn(c, error,
                             "SMFIR_PROGRESS after %s: Sendmail accepts it only "
                             "after SMFIC_BODYEOB",
                             cname);
        return TRUE;
    case SMFIR_QUARANTINE:
        if (!eom && !conn_warn(c, error,
                               "SMFIR_QUARANTINE after %s: libmilter sends it only "
                               "after SMFIC_BODYEOB",
                               cname))
            return FALSE;
        break;
    case SMFIR_ADDHEADER:
    case SMFIR_INSHEADER:
    case SMFIR_CHGHEADER:
    case SMFIR_REPLBODY:
    case SMFIR_CHGFROM:
    case SMFIR_ADDRCPT:
    case SMFIR_ADDRCPT_PAR:
    case SMFIR_DELRCPT:
        if (!eom) {
            g_set_error(error, DRIVER_ERROR, DRIVER_ERROR_PROTOCOL,
                        "unexpected filter response %s after event %s (modifications are "
                        "legal only after SMFIC_BODYEOB)",
                        rname, cname);
            return FALSE;
        }
        if (pkt->code == SMFIR_CHGHEADER && pkt->argv[0][0] == '\0') {
            g_set_error(error, DRIVER_ERROR, DRIVER_ERROR_PROTOCOL,
                        "SMFIR_CHGHEADER with an empty header name (Postfix: configuration "
                        "error)");
            return FALSE;
        }
        break;
    default:
        g_set_error(error, DRIVER_ERROR, DRIVER_ERROR_PROTOCOL,
                    "unexpected filter response %s after event %s", rname ? rname : "?", cname);
        return FALSE;
    }
    if (need && !(c->actions & need)) {
        g_autofree char *bits = milter_actions_to_string(need);

        return conn_warn(c, error, "%s without SMFIF_%s negotiated (Sendmail: \"lied\")", rname,
                         bits);
    }
    return TRUE;
}

/* stats_add - record one latency */
static void
stats_add(Stats *s, guint slot, gint64 usec)
{
    if (s->lat[slot] == NULL)
        s->lat[slot] = g_array_new(FALSE, FALSE, sizeof(gint64));
    g_array_append_val(s->lat[slot], usec);
}

/* conn_await - read replies to an event up to the final one */
static gboolean
conn_await(Conn *c, const EventInfo *ev, Reply *reply, GError **error)
{
    gboolean eom = ev->cmd == SMFIC_BODYEOB;
    guint timeout = eom ? c->cfg->eom_timeout_ms : c->cfg->timeout_ms;
    g_autofree char *what = g_strdup_printf("read %s reply", milter_command_name(ev->cmd));
    gboolean in_body = FALSE;
    gboolean body_done = FALSE;

    for (;;) {
        MilterPacket pkt;

        /* Every packet, progress included, restarts the clock, as in Postfix. */
        if (!conn_read(c, timeout, what, &pkt, error))
            return FALSE;
        if (!check_reply(c, ev, &pkt, error))
            return FALSE;
        if (pkt.code == SMFIR_REPLBODY) {
            if (body_done) {
                g_set_error(error, DRIVER_ERROR, DRIVER_ERROR_PROTOCOL,
                            "SMFIR_REPLBODY after other requests that followed SMFIR_REPLBODY "
                            "(Postfix: body replacement can't be mixed with other requests)");
                return FALSE;
            }
            in_body = TRUE;
        } else if (in_body) {
            in_body = FALSE;
            body_done = TRUE;
        }
        switch (pkt.code) {
        case SMFIR_PROGRESS:
            continue;
        case SMFIR_QUARANTINE:
            g_free(reply->quarantine);
            reply->quarantine = g_strdup(pkt.argv[0]);
            continue;
        case SMFIR_ADDHEADER:
        case SMFIR_INSHEADER:
        case SMFIR_CHGHEADER:
        case SMFIR_REPLBODY:
        case SMFIR_CHGFROM:
        case SMFIR_ADDRCPT:
        case SMFIR_ADDRCPT_PAR:
        case SMFIR_DELRCPT:
            reply->edits++;
            continue;
        default:
            reply->code = pkt.code;
            if (pkt.code == SMFIR_REPLYCODE)
                reply->text = g_strdup(pkt.argv[0]);
            return TRUE;
        }
    }
}

/*
 * conn_event - send one event as Postfix's milter8_event() does, and read its reply
 *
 * reply->code stays 0 when the event was not sent or no reply was due.
 */
static gboolean
conn_event(Conn *c, guint8 cmd, const GByteArray *pkt, Reply *reply, GError **error)
{
    const EventInfo *ev = event_info(cmd);
    gint64 t0;

    reply_clear(reply);
    if (ev->content && (c->protocol & ev->no_flag))
        return TRUE; /* cleanup does not run the callback at all */
    if (c->np_mask & ev->no_flag)
        return TRUE; /* not in the milter's protocol version */
    if (c->honour_skip) {
        if (c->skip_event == cmd)
            return TRUE;
        c->skip_event = 0;
    }
    conn_queue_macros(c, ev);
    if (c->protocol & ev->no_flag)
        return TRUE;
    conn_queue(c, pkt->data, pkt->len);
    reply->sent = TRUE;
    if (c->protocol & ev->nr_flag)
        return TRUE;
    t0 = g_get_monotonic_time();
    if (!conn_flush(c, cmd, error) || !conn_await(c, ev, reply, error))
        return FALSE;
    stats_add(c->stats, (guint)(ev - events) + 1, g_get_monotonic_time() - t0);
    if (reply->code == SMFIR_SKIP)
        c->skip_event = cmd;
    return TRUE;
}

/* conn_negotiate - SMFIC_OPTNEG and the checks Postfix makes on the answer */
static gboolean
conn_negotiate(Conn *c, GError **error)
{
    const Config *cfg = c->cfg;
    g_autoptr(GByteArray) p = g_byte_array_new();
    MilterPacket pkt;
    gint64 t0;

    milter_encode_optneg(p, SMFIC_OPTNEG, cfg->offer_version, cfg->offer_actions,
                         cfg->offer_protocol, NULL, 0);
    conn_queue(c, p->data, p->len);
    t0 = g_get_monotonic_time();
    if (!conn_flush(c, SMFIC_OPTNEG, error) ||
        !conn_read(c, cfg->timeout_ms, "read SMFIC_OPTNEG reply", &pkt, error))
        return FALSE;
    stats_add(c->stats, STAT_OPTNEG, g_get_monotonic_time() - t0);
    if (pkt.code != SMFIR_OPTNEG) {
        g_set_error(error, DRIVER_ERROR, DRIVER_ERROR_PROTOCOL,
                    "unexpected reply %s in initial handshake", milter_reply_name(pkt.code));
        return FALSE;
    }
    if (pkt.version > cfg->offer_version) {
        g_set_error(error, DRIVER_ERROR, DRIVER_ERROR_PROTOCOL,
                    "protocol version %u conflicts with the offered version %u", pkt.version,
                    cfg->offer_version);
        return FALSE;
    }
    if (pkt.actions & ~cfg->offer_actions) {
        g_set_error(error, DRIVER_ERROR, DRIVER_ERROR_PROTOCOL,
                    "action mask 0x%x is not a subset of the offered 0x%x", pkt.actions,
                    cfg->offer_actions);
        return FALSE;
    }
    c->version = pkt.version;
    c->actions = pkt.actions;
    c->protocol = pkt.protocol;
    c->np_mask = 0;
    if (c->version < 3)
        c->np_mask |= SMFIP_NOUNKNOWN;
    if (c->version < 4)
        c->np_mask |= SMFIP_NODATA;
    for (gsize i = 0; i < pkt.n_symlists; i++) {
        guint32 stage = pkt.symlists[i].stage;

        if (stage >= SMFIM_COUNT) {
            if (!conn_warn(c, error, "ignoring unknown macro stage %u, as Postfix does", stage))
                return FALSE;
            continue;
        }
        g_free(c->symlist[stage]);
        c->symlist[stage] = g_strdup(pkt.symlists[i].macros);
    }
    if (pkt.version < 2 &&
        !conn_warn(c, error, "protocol version %u: libmilter and Sendmail need at least 2",
                   pkt.version))
        return FALSE;
    if (pkt.protocol & ~cfg->offer_protocol) {
        g_autofree char *extra = milter_protocol_to_string(pkt.protocol & ~cfg->offer_protocol);

        if (!conn_warn(c, error,
                       "protocol mask 0x%x has bits that were not offered (%s); "
                       "honoured, as Postfix does",
                       pkt.protocol, extra))
            return FALSE;
    }
    return TRUE;
}

/* ----------------------------------------------------------------- outcomes */

/* outcome_absorb - add what a reply carried besides its verdict */
static void
outcome_absorb(Outcome *o, Reply *r)
{
    o->edits += r->edits;
    if (r->quarantine) {
        g_free(o->quarantine);
        o->quarantine = g_steal_pointer(&r->quarantine);
    }
}

/* outcome_decide - the verdict a final reply gives the message; FALSE if it goes on */
static gboolean
outcome_decide(Outcome *o, const EventInfo *ev, Reply *r)
{
    gboolean eom = ev->cmd == SMFIC_BODYEOB;

    switch (r->code) {
    case 0:
    case SMFIR_CONTINUE:
    case SMFIR_SKIP:
        if (!eom)
            return FALSE;
        o->verdict = "accept";
        break;
    case SMFIR_DISCARD:
        if (ev->cmd == SMFIC_CONNECT || ev->cmd == SMFIC_HELO)
            return FALSE;
        o->verdict = "discard";
        break;
    case SMFIR_ACCEPT:
        o->verdict = "accept";
        break;
    case SMFIR_REJECT:
        o->verdict = "reject";
        break;
    case SMFIR_TEMPFAIL:
        o->verdict = "tempfail";
        break;
    case SMFIR_SHUTDOWN:
        o->verdict = "shutdown";
        break;
    case SMFIR_REPLYCODE:
        o->verdict = r->text[0] == '4' ? "tempfail" : "reject";
        g_free(o->reply);
        o->reply = g_steal_pointer(&r->text);
        break;
    default:
        return FALSE;
    }
    o->stage = ev->stage;
    return TRUE;
}

/* outcome_copy - dst becomes a copy of src */
static void
outcome_copy(Outcome *dst, const Outcome *src)
{
    outcome_clear(dst);
    *dst = *src;
    dst->reply = g_strdup(src->reply);
    dst->quarantine = g_strdup(src->quarantine);
}

/* conn_print_outcome - the --quiet summary line of a message */
static void
conn_print_outcome(Conn *c, guint msg_no, const Outcome *o)
{
    GString *l = c->listing;

    if (!c->cfg->quiet)
        return;
    g_string_append_printf(l, "message %u: %s stage=%s", msg_no, o->verdict, o->stage);
    if (o->reply) {
        g_string_append(l, " reply=");
        milter_format_string(l, (const guint8 *)o->reply, strlen(o->reply));
    }
    if (o->edits)
        g_string_append_printf(l, " edits=%u", o->edits);
    if (o->quarantine) {
        g_string_append(l, " quarantine=");
        milter_format_string(l, (const guint8 *)o->quarantine, strlen(o->quarantine));
    }
    if (o->rcpt_rejected)
        g_string_append_printf(l, " rcpt-rejected=%u", o->rcpt_rejected);
    g_string_append_c(l, '\n');
}

/* conn_message_event - one event of a message; FLOW_DECIDED when it settles the message */
static Flow
conn_message_event(Conn *c, guint8 cmd, const GByteArray *pkt, Outcome *o, GError **error)
{
    g_auto(Reply) r = { 0 };

    if (!conn_event(c, cmd, pkt, &r, error))
        return FLOW_ERROR;
    outcome_absorb(o, &r);
    return outcome_decide(o, event_info(cmd), &r) ? FLOW_DECIDED : FLOW_CONTINUE;
}

/* ----------------------------------------------------------------- packets */

/* pkt_strings - a packet of one command and strings */
static GByteArray *
pkt_strings(guint8 cmd, const char *first, const GPtrArray *more)
{
    GByteArray *p = g_byte_array_new();
    g_autoptr(GPtrArray) argv = g_ptr_array_new();

    g_ptr_array_add(argv, (gpointer)first);
    for (guint i = 0; more && i < more->len; i++)
        g_ptr_array_add(argv, g_ptr_array_index(more, i));
    milter_encode_strings(p, cmd, (const char *const *)argv->pdata, argv->len);
    return p;
}

/* pkt_connect - SMFIC_CONNECT from the client options */
static GByteArray *
pkt_connect(const Config *cfg)
{
    GByteArray *p = g_byte_array_new();

    milter_encode_connect(p, cfg->client_name, cfg->family, (guint16)cfg->client_port,
                          cfg->client_addr);
    return p;
}

/* pkt_header - SMFIC_HEADER, one leading space removed unless HDR_LEADSPC */
static GByteArray *
pkt_header(const Conn *c, const char *name, const char *value)
{
    GByteArray *p = g_byte_array_new();

    if (!(c->protocol & SMFIP_HDR_LEADSPC) && value[0] == ' ')
        value++;
    milter_encode_header(p, SMFIC_HEADER, 0, name, value);
    return p;
}

/* pkt_empty - a command without data */
static GByteArray *
pkt_empty(guint8 cmd)
{
    GByteArray *p = g_byte_array_new();

    milter_encode_empty(p, cmd);
    return p;
}

/* txn_begin - a new transaction: queue ID, sender, no recipients */
static void
txn_begin(Conn *c, const char *from, guint serial)
{
    txn_clear(&c->txn);
    c->txn.queue_id = c->cfg->queue_id
                          ? g_strdup(c->cfg->queue_id)
                          : g_strdup_printf("%05X%06X", (QUEUE_ID_BASE + c->conn_no) & 0xFFFFFU,
                                            serial & 0xFFFFFFU);
    c->txn.mail_addr = bare_addr(from);
}

/* txn_rcpt - the recipient being sent */
static void
txn_rcpt(Conn *c, const char *addr)
{
    g_free(c->txn.rcpt_addr);
    c->txn.rcpt_addr = bare_addr(addr);
}

/* ---------------------------------------------------------------- file mode */

/* conn_play_rcpts - every RCPT; FLOW_DECIDED if the message is settled */
static Flow
conn_play_rcpts(Conn *c, Outcome *o, GError **error)
{
    const EventInfo *ev = event_info(SMFIC_RCPT);
    g_auto(Reply) refused = { 0 };

    for (guint i = 0; i < c->cfg->rcpts->len; i++) {
        const Rcpt *rc = g_ptr_array_index(c->cfg->rcpts, i);
        g_autoptr(GByteArray) p = pkt_strings(SMFIC_RCPT, rc->addr, rc->args);
        g_auto(Reply) r = { 0 };

        txn_rcpt(c, rc->addr);
        if (!conn_event(c, SMFIC_RCPT, p, &r, error))
            return FLOW_ERROR;
        outcome_absorb(o, &r);
        switch (r.code) {
        case SMFIR_REJECT:
        case SMFIR_TEMPFAIL:
        case SMFIR_REPLYCODE: /* only this recipient */
            o->rcpt_rejected++;
            reply_clear(&refused);
            refused.code = r.code;
            refused.text = g_steal_pointer(&r.text);
            break;
        default:
            if (outcome_decide(o, ev, &r))
                return FLOW_DECIDED;
            c->txn.accepted++;
            c->txn.qid_visible = TRUE; /* Postfix opens the queue file now */
            break;
        }
    }
    if (c->txn.accepted == 0) {
        outcome_decide(o, ev, &refused); /* no recipient left: no DATA */
        return FLOW_DECIDED;
    }
    return FLOW_CONTINUE;
}

/* conn_play_content - DATA, headers, EOH, body chunks and BODYEOB */
static Flow
conn_play_content(Conn *c, const Message *m, Outcome *o, GError **error)
{
    gsize len = 0;
    const guint8 *body = g_bytes_get_data(m->body, &len);
    Flow f;

    c->txn.qid_visible = TRUE;
    {
        g_autoptr(GByteArray) p = pkt_empty(SMFIC_DATA);

        if ((f = conn_message_event(c, SMFIC_DATA, p, o, error)) != FLOW_CONTINUE)
            return f;
    }
    for (guint i = 0; i < m->headers->len; i++) {
        const Header *h = g_ptr_array_index(m->headers, i);
        g_autoptr(GByteArray) p = pkt_header(c, h->name, h->value);

        if ((f = conn_message_event(c, SMFIC_HEADER, p, o, error)) != FLOW_CONTINUE)
            return f;
    }
    {
        g_autoptr(GByteArray) p = pkt_empty(SMFIC_EOH);

        if ((f = conn_message_event(c, SMFIC_EOH, p, o, error)) != FLOW_CONTINUE)
            return f;
    }
    for (gsize off = 0; off < len; off += MILTER_CHUNK_SIZE) {
        g_autoptr(GByteArray) p = g_byte_array_new();

        milter_encode_body(p, SMFIC_BODY, body + off, MIN(MILTER_CHUNK_SIZE, len - off));
        if ((f = conn_message_event(c, SMFIC_BODY, p, o, error)) != FLOW_CONTINUE)
            return f;
    }
    {
        g_autoptr(GByteArray) p = pkt_empty(SMFIC_BODYEOB);

        return conn_message_event(c, SMFIC_BODYEOB, p, o, error);
    }
}

/* conn_play_message - one transaction as Postfix's smtpd and cleanup send it */
static gboolean
conn_play_message(Conn *c, const Message *m, Outcome *o, GError **error)
{
    g_autoptr(GByteArray) mail = pkt_strings(SMFIC_MAIL, c->cfg->from, c->cfg->from_args);
    Flow f;

    txn_begin(c, c->cfg->from, c->msg_no);
    f = conn_message_event(c, SMFIC_MAIL, mail, o, error);
    if (f == FLOW_CONTINUE)
        f = conn_play_rcpts(c, o, error);
    if (f == FLOW_CONTINUE)
        f = conn_play_content(c, m, o, error);
    txn_clear(&c->txn);
    return f != FLOW_ERROR;
}

/* conn_greet - CONNECT and HELO; a verdict there settles the whole connection */
static gboolean
conn_greet(Conn *c, Outcome *sticky, GError **error)
{
    g_autoptr(GByteArray) conn = pkt_connect(c->cfg);
    g_autoptr(GByteArray) helo = pkt_strings(SMFIC_HELO, c->cfg->helo, NULL);
    Flow f;

    f = conn_message_event(c, SMFIC_CONNECT, conn, sticky, error);
    if (f == FLOW_CONTINUE)
        f = conn_message_event(c, SMFIC_HELO, helo, sticky, error);
    if (f == FLOW_DECIDED)
        conn_close(c); /* Postfix closes the socket, without QUIT */
    return f != FLOW_ERROR;
}

/* run_file_job - one connection over a slice of the messages */
static gboolean
run_file_job(Conn *c, guint job, GError **error)
{
    const Config *cfg = c->cfg;
    guint nmsg = cfg->messages->len;
    guint round = job / c->shared->jobs_per_round;
    guint first = (job % c->shared->jobs_per_round) * cfg->messages_per_connection;
    guint count = MIN(cfg->messages_per_connection, nmsg - first);
    g_auto(Outcome) sticky = { 0 };

    c->honour_skip = TRUE;
    if (!conn_open(c, error) || !conn_negotiate(c, error) || !conn_greet(c, &sticky, error))
        return FALSE;
    for (guint k = 0; k < count; k++) {
        g_auto(Outcome) o = { 0 };

        c->msg_no = round * nmsg + first + k + 1;
        if (sticky.verdict) {
            conn_print_outcome(c, c->msg_no, &sticky);
        } else {
            if (!conn_play_message(c, g_ptr_array_index(cfg->messages, first + k), &o, error))
                return FALSE;
            if (strcmp(o.verdict, "shutdown") == 0) {
                conn_close(c);
                outcome_copy(&sticky, &o);
            } else {
                conn_queue_empty(c, SMFIC_ABORT); /* after every transaction, as Postfix */
                if (!conn_flush(c, SMFIC_ABORT, error))
                    return FALSE;
            }
            conn_print_outcome(c, c->msg_no, &o);
        }
        c->stats->messages++;
        conn_output(c);
    }
    c->msg_no = 0;
    if (c->sock) {
        conn_queue_empty(c, SMFIC_QUIT);
        if (!conn_flush(c, SMFIC_QUIT, error))
            return FALSE;
        conn_close(c);
    }
    conn_output(c);
    return TRUE;
}

/* -------------------------------------------------------------- script mode */

/* script_event - one scripted event; its final reply becomes "the last reply" */
static gboolean
script_event(Conn *c, guint8 cmd, const GByteArray *pkt, Reply *r, GError **error)
{
    if (!conn_event(c, cmd, pkt, r, error))
        return FALSE;
    c->last_code = r->code;
    g_free(c->last_text);
    c->last_text = g_strdup(r->text);
    return TRUE;
}

/* script_expect - check the last reply against an expect step */
static gboolean
script_expect(Conn *c, const Step *s, GError **error)
{
    g_autofree char *want = code_label(s->code);
    g_autofree char *got = code_label(c->last_code);

    if (c->last_code == s->code &&
        (s->glob == NULL || (c->last_text && g_pattern_match_simple(s->glob, c->last_text))))
        return TRUE;
    g_set_error(error, DRIVER_ERROR, DRIVER_ERROR_EXPECT, "expect %s%s%s: got %s%s%s%s", want,
                s->glob ? " " : "", s->glob ? s->glob : "", got, c->last_text ? " \"" : "",
                c->last_text ? c->last_text : "", c->last_text ? "\"" : "");
    return FALSE;
}

/* script_send_only - queue and write a command that gets no reply */
static gboolean
script_send_only(Conn *c, guint8 cmd, GError **error)
{
    conn_queue_empty(c, cmd);
    c->last_code = 0;
    g_clear_pointer(&c->last_text, g_free);
    return conn_flush(c, cmd, error);
}

/* script_eom - BODYEOB, and the summary line with --quiet */
static gboolean
script_eom(Conn *c, GError **error)
{
    g_autoptr(GByteArray) p = pkt_empty(SMFIC_BODYEOB);
    g_auto(Reply) r = { 0 };
    g_auto(Outcome) o = { 0 };

    if (!script_event(c, SMFIC_BODYEOB, p, &r, error))
        return FALSE;
    outcome_absorb(&o, &r);
    outcome_decide(&o, event_info(SMFIC_BODYEOB), &r);
    conn_print_outcome(c, c->txn_count, &o);
    c->stats->messages++;
    return TRUE;
}

/* script_body - one body step, split into chunks as an MTA would */
static gboolean
script_body(Conn *c, GBytes *data, GError **error)
{
    gsize len = 0;
    const guint8 *d = g_bytes_get_data(data, &len);
    gsize off = 0;

    do {
        g_autoptr(GByteArray) p = g_byte_array_new();
        g_auto(Reply) r = { 0 };
        gsize n = MIN(MILTER_CHUNK_SIZE, len - off);

        milter_encode_body(p, SMFIC_BODY, d ? d + off : NULL, n);
        if (!script_event(c, SMFIC_BODY, p, &r, error))
            return FALSE;
        off += n;
    } while (off < len);
    return TRUE;
}

/* script_step_event - a step that sends one event */
static gboolean
script_step_event(Conn *c, const Step *s, GError **error)
{
    g_autoptr(GByteArray) p = NULL;
    g_auto(Reply) r = { 0 };
    guint8 cmd;

    switch (s->kind) {
    case STEP_CONNECT:
        cmd = SMFIC_CONNECT, p = pkt_connect(c->cfg);
        break;
    case STEP_HELO:
        cmd = SMFIC_HELO, p = pkt_strings(cmd, g_ptr_array_index(s->args, 0), NULL);
        break;
    case STEP_UNKNOWN:
        cmd = SMFIC_UNKNOWN, p = pkt_strings(cmd, g_ptr_array_index(s->args, 0), NULL);
        break;
    case STEP_MAIL: {
        g_autoptr(GPtrArray) rest = g_ptr_array_new();

        for (guint i = 1; i < s->args->len; i++)
            g_ptr_array_add(rest, g_ptr_array_index(s->args, i));
        txn_begin(c, g_ptr_array_index(s->args, 0), ++c->txn_count);
        cmd = SMFIC_MAIL, p = pkt_strings(cmd, g_ptr_array_index(s->args, 0), rest);
        break;
    }
    case STEP_RCPT: {
        g_autoptr(GPtrArray) rest = g_ptr_array_new();

        for (guint i = 1; i < s->args->len; i++)
            g_ptr_array_add(rest, g_ptr_array_index(s->args, i));
        txn_rcpt(c, g_ptr_array_index(s->args, 0));
        cmd = SMFIC_RCPT, p = pkt_strings(cmd, g_ptr_array_index(s->args, 0), rest);
        break;
    }
    case STEP_DATA:
        c->txn.qid_visible = c->txn.queue_id != NULL;
        cmd = SMFIC_DATA, p = pkt_empty(cmd);
        break;
    case STEP_HEADER: {
        gsize len = 0;
        const char *v = g_bytes_get_data(s->data, &len);
        g_autofree char *value = g_strndup(v ? v : "", len);

        cmd = SMFIC_HEADER, p = pkt_header(c, s->name, value);
        break;
    }
    case STEP_EOH:
        cmd = SMFIC_EOH, p = pkt_empty(cmd);
        break;
    default:
        g_return_val_if_reached(FALSE);
    }
    if (!script_event(c, cmd, p, &r, error))
        return FALSE;
    if (cmd == SMFIC_RCPT && c->txn.queue_id &&
        (r.code == 0 || r.code == SMFIR_CONTINUE || r.code == SMFIR_SKIP)) {
        c->txn.accepted++;
        c->txn.qid_visible = TRUE;
    }
    return TRUE;
}

/* script_step - run one script step */
static gboolean
script_step(Conn *c, Step *s, GError **error)
{
    switch (s->kind) {
    case STEP_MACRO:
        g_ptr_array_add(c->script_macros, s->macro);
        return TRUE;
    case STEP_SLEEP:
        conn_output(c);
        g_usleep((gulong)s->ms * 1000);
        return TRUE;
    case STEP_EXPECT:
        return script_expect(c, s, error);
    default:
        break;
    }
    if (c->sock == NULL && (!conn_open(c, error) || !conn_negotiate(c, error)))
        return FALSE;
    switch (s->kind) {
    case STEP_BODY:
        return script_body(c, s->data, error);
    case STEP_EOM:
        return script_eom(c, error);
    case STEP_ABORT:
        txn_clear(&c->txn);
        return script_send_only(c, SMFIC_ABORT, error);
    case STEP_QUIT:
        if (!script_send_only(c, SMFIC_QUIT, error))
            return FALSE;
        conn_close(c);
        return TRUE;
    case STEP_QUIT_NC:
        return script_send_only(c, SMFIC_QUIT_NC, error);
    default:
        return script_step_event(c, s, error);
    }
}

/* run_script_job - one connection through the whole script */
static gboolean
run_script_job(Conn *c, GError **error)
{
    const Config *cfg = c->cfg;

    c->honour_skip = FALSE; /* steps are sent literally */
    for (guint i = 0; i < cfg->steps->len; i++) {
        Step *s = g_ptr_array_index(cfg->steps, i);

        if (!script_step(c, s, error)) {
            g_prefix_error(error, "%s:%u: ", cfg->script_path, s->line);
            return FALSE;
        }
    }
    if (c->sock && !conn_flush(c, SMFIC_QUIT, error))
        return FALSE;
    conn_close(c);
    conn_output(c);
    return TRUE;
}

/* ------------------------------------------------------------------ workers */

/* conn_new - a connection context for job number conn_no */
static Conn *
conn_new(Shared *shared, Stats *stats, guint conn_no)
{
    Conn *c = g_new0(Conn, 1);

    c->cfg = shared->cfg;
    c->shared = shared;
    c->stats = stats;
    c->conn_no = conn_no;
    c->in = g_byte_array_sized_new(READ_CHUNK);
    c->out = g_byte_array_new();
    c->listing = g_string_new(NULL);
    c->script_macros = g_ptr_array_new();
    return c;
}

/* conn_free - close and free a connection context; NULL is allowed */
static void
conn_free(Conn *c)
{
    if (c == NULL)
        return;
    conn_close(c);
    milter_decoder_free(c->replies);
    milter_decoder_free(c->lister);
    g_byte_array_unref(c->in);
    g_byte_array_unref(c->out);
    g_string_free(c->listing, TRUE);
    for (guint i = 0; i < STAGE_SLOTS; i++)
        g_free(c->symlist[i]);
    txn_clear(&c->txn);
    g_ptr_array_unref(c->script_macros);
    g_free(c->last_text);
    g_free(c);
}

G_DEFINE_AUTOPTR_CLEANUP_FUNC(Conn, conn_free)

/* worker_main - take connection jobs until none are left or one failed */
static gpointer
worker_main(gpointer data)
{
    Worker *w = data;
    Shared *sh = w->shared;

    while (!g_atomic_int_get(&sh->failed)) {
        guint job = (guint)g_atomic_int_add(&sh->next_job, 1);
        g_autoptr(GError) error = NULL;
        g_autoptr(Conn) c = NULL;
        gboolean ok;

        if (job >= sh->njobs)
            break;
        c = conn_new(sh, &w->stats, job + 1);
        ok = sh->cfg->steps->len ? run_script_job(c, &error) : run_file_job(c, job, &error);
        if (!ok) {
            g_autofree char *where = conn_context(c);

            conn_output(c);
            g_mutex_lock(&sh->out_lock);
            g_printerr("%s: %s: %s%s\n", PROGRAM, sh->cfg->spec, error->message, where);
            g_mutex_unlock(&sh->out_lock);
            g_atomic_int_set(&sh->failed, 1);
        }
    }
    return NULL;
}

/* compare_gint64 - qsort order for latencies */
static gint
compare_gint64(gconstpointer a, gconstpointer b)
{
    gint64 x = *(const gint64 *)a, y = *(const gint64 *)b;

    return x < y ? -1 : x > y;
}

/* stats_print - throughput and latency per stage on stderr */
static void
stats_print(Worker *workers, guint n, gdouble elapsed)
{
    Stats total = { 0 };

    for (guint w = 0; w < n; w++) {
        total.messages += workers[w].stats.messages;
        total.connections += workers[w].stats.connections;
        for (guint s = 0; s < STAT_SLOTS; s++) {
            GArray *a = workers[w].stats.lat[s];

            if (a == NULL)
                continue;
            if (total.lat[s] == NULL)
                total.lat[s] = g_array_new(FALSE, FALSE, sizeof(gint64));
            g_array_append_vals(total.lat[s], a->data, a->len);
        }
    }
    g_printerr("%s: stats: messages=%u connections=%u elapsed=%.3fs rate=%.1f/s\n", PROGRAM,
               total.messages, total.connections, elapsed,
               elapsed > 0 ? total.messages / elapsed : 0.0);
    for (guint s = 0; s < STAT_SLOTS; s++) {
        GArray *a = total.lat[s];
        guint len;

        if (a == NULL)
            continue;
        len = a->len;
        g_array_sort(a, compare_gint64);
        /* Nearest rank: the p-th percentile is the ceil(p * n / 100)-th value. */
        g_printerr("%s: stats: stage=%s n=%u median=%.3fms p99=%.3fms max=%.3fms\n", PROGRAM,
                   s == STAT_OPTNEG ? "optneg" : events[s - 1].stage, len,
                   g_array_index(a, gint64, (len + 1) / 2 - 1) / 1000.0,
                   g_array_index(a, gint64, (len * 99 + 99) / 100 - 1) / 1000.0,
                   g_array_index(a, gint64, len - 1) / 1000.0);
        g_array_unref(a);
    }
}

/* run - all connections, with --concurrency workers; FALSE if one failed */
static gboolean
run(const Config *cfg)
{
    Shared sh = { 0 };
    guint nworkers;
    g_autofree Worker *workers = NULL;
    gint64 t0 = g_get_monotonic_time();
    gboolean ok;

    sh.cfg = cfg;
    g_mutex_init(&sh.out_lock);
    sh.jobs_per_round = cfg->steps->len ? 1
                                        : (cfg->messages->len + cfg->messages_per_connection - 1) /
                                              cfg->messages_per_connection;
    sh.njobs = cfg->connections * sh.jobs_per_round;
    sh.many = sh.njobs > 1 || cfg->messages->len > 1;
    nworkers = MIN(cfg->concurrency, sh.njobs);
    workers = g_new0(Worker, nworkers);
    for (guint w = 0; w < nworkers; w++)
        workers[w].shared = &sh;
    if (nworkers == 1) {
        worker_main(&workers[0]);
    } else {
        for (guint w = 0; w < nworkers; w++)
            workers[w].thread = g_thread_new("connection", worker_main, &workers[w]);
        for (guint w = 0; w < nworkers; w++)
            g_thread_join(workers[w].thread);
    }
    if (cfg->stats)
        stats_print(workers, nworkers, (g_get_monotonic_time() - t0) / 1e6);
    for (guint w = 0; w < nworkers; w++)
        for (guint s = 0; s < STAT_SLOTS; s++)
            if (workers[w].stats.lat[s])
                g_array_unref(workers[w].stats.lat[s]);
    ok = !g_atomic_int_get(&sh.failed);
    g_mutex_clear(&sh.out_lock);
    return ok;
}

/* ------------------------------------------------------------ command line */

/* An integer option that was not given. */
#define OPT_UNSET (-1)

/* OptState - command-line values before they are checked into a Config */
typedef struct {
    Config *cfg;
    char *offer_version;
    char *offer_actions;
    char *offer_protocol;
    char *family;
    char *generate_body;
    gint client_port;
    gint messages_per_connection;
    gint connections;
    gint concurrency;
    gint timeout_ms;
    gint eom_timeout_ms;
    char **files;
} OptState;

/* opt_rcpt - --rcpt ADDR */
static gboolean
opt_rcpt(const gchar *name, const gchar *value, gpointer data, GError **error)
{
    OptState *st = data;
    Rcpt *r = g_new0(Rcpt, 1);

    r->addr = angle_addr(value);
    r->args = g_ptr_array_new_with_free_func(g_free);
    g_ptr_array_add(st->cfg->rcpts, r);
    return TRUE;
}

/* opt_rcpt_arg - --rcpt-arg ARG, for the --rcpt before it */
static gboolean
opt_rcpt_arg(const gchar *name, const gchar *value, gpointer data, GError **error)
{
    OptState *st = data;
    Rcpt *r;

    if (st->cfg->rcpts->len == 0) {
        g_set_error(error, G_OPTION_ERROR, G_OPTION_ERROR_BAD_VALUE,
                    "--rcpt-arg %s: no --rcpt before it", value);
        return FALSE;
    }
    r = g_ptr_array_index(st->cfg->rcpts, st->cfg->rcpts->len - 1);
    g_ptr_array_add(r->args, g_strdup(value));
    return TRUE;
}

/* opt_from_arg - --from-arg ARG */
static gboolean
opt_from_arg(const gchar *name, const gchar *value, gpointer data, GError **error)
{
    OptState *st = data;

    g_ptr_array_add(st->cfg->from_args, g_strdup(value));
    return TRUE;
}

/* opt_macro - --macro STAGE:NAME=VALUE */
static gboolean
opt_macro(const gchar *name, const gchar *value, gpointer data, GError **error)
{
    OptState *st = data;
    MacroSetting *m = macro_setting_parse(value, error);

    if (m == NULL)
        return FALSE;
    g_ptr_array_add(st->cfg->macros, m);
    return TRUE;
}

#define HELP_SUMMARY                                                                               \
    "Plays each FILE.eml into the milter at SPEC as Postfix 3.7 does, and prints every packet\n"   \
    "in both directions (packet listing v1: \"> \" sent, \"< \" received).\n"                      \
    "SPEC: inet:PORT@HOST, inet:HOST:PORT, inet6:PORT@HOST, unix:PATH or local:PATH."

#define HELP_DESCRIPTION                                                                           \
    "Script steps (--script FILE, one per line, # comments):\n"                                    \
    "  connect | helo NAME | mail ADDR [ARG...] | rcpt ADDR [ARG...] | data\n"                     \
    "  header NAME: VALUE | eoh | body TEXT | eom | abort | unknown COMMAND\n"                     \
    "  quit | quit-nc | macro STAGE:NAME=VALUE | sleep MS\n"                                       \
    "  expect CODE [GLOB]   last final reply: c a r t d y s 4, SMFIR_*, continue, reject,\n"       \
    "                       ... or none; GLOB (rest of the line, * ?) matches the reply text\n"    \
    "  TEXT and VALUE take \\r \\n \\t \\\\ \\xHH (and \\0 in body). Steps are sent as "           \
    "written,\n"                                                                                   \
    "  honouring the negotiated NO/NR flags; no QUIT at the end unless the script says quit.\n"    \
    "\n"                                                                                           \
    "Macro STAGE: connect helo mail rcpt data eoh (HEADER too) eom (BODY too) unknown.\n"          \
    "Output with --quiet: message N: VERDICT stage=STAGE [reply=\"...\"] [edits=K]\n"              \
    "  [quarantine=\"...\"] [rcpt-rejected=K]\n"                                                   \
    "Exit status: 0 conversation completed, 1 protocol error or timeout, 2 bad usage."

/* options_parse - parse argv into st; FALSE with a usage error */
static gboolean
options_parse(OptState *st, int *argc, char ***argv, GError **error)
{
    Config *cfg = st->cfg;
    const GOptionEntry entries[] = {
        { "connect", 0, 0, G_OPTION_ARG_STRING, &cfg->spec, "milter socket", "SPEC" },
        { "client-addr", 0, 0, G_OPTION_ARG_STRING, &cfg->client_addr, "client address (127.0.0.1)",
          "ADDR" },
        { "client-name", 0, 0, G_OPTION_ARG_STRING, &cfg->client_name,
          "client host name ([ADDR], as without reverse lookup)", "NAME" },
        { "client-port", 0, 0, G_OPTION_ARG_INT, &st->client_port, "client port (0)", "PORT" },
        { "family", 0, 0, G_OPTION_ARG_STRING, &st->family,
          "CONNECT family 4, 6, L or U (from --client-addr)", "F" },
        { "helo", 0, 0, G_OPTION_ARG_STRING, &cfg->helo, "HELO name (" DEFAULT_HELO ")", "NAME" },
        { "from", 0, 0, G_OPTION_ARG_STRING, &cfg->from, "envelope sender (" DEFAULT_FROM ")",
          "ADDR" },
        { "from-arg", 0, 0, G_OPTION_ARG_CALLBACK, (gpointer)opt_from_arg,
          "ESMTP argument of MAIL (repeatable)", "ARG" },
        { "rcpt", 0, 0, G_OPTION_ARG_CALLBACK, (gpointer)opt_rcpt,
          "recipient (repeatable; " DEFAULT_RCPT ")", "ADDR" },
        { "rcpt-arg", 0, 0, G_OPTION_ARG_CALLBACK, (gpointer)opt_rcpt_arg,
          "ESMTP argument of the previous --rcpt (repeatable)", "ARG" },
        { "auth", 0, 0, G_OPTION_ARG_STRING, &cfg->auth,
          "SASL user: {auth_authen}, and {auth_type}=PLAIN", "USER" },
        { "queue-id", 0, 0, G_OPTION_ARG_STRING, &cfg->queue_id,
          "macro i (default: generated per message)", "ID" },
        { "macro", 0, 0, G_OPTION_ARG_CALLBACK, (gpointer)opt_macro,
          "set a macro at a stage (repeatable)", "STAGE:NAME=VALUE" },
        { "offer-version", 0, 0, G_OPTION_ARG_STRING, &st->offer_version,
          "offered protocol version (6)", "N" },
        { "offer-actions", 0, 0, G_OPTION_ARG_STRING, &st->offer_actions, "offered actions (0x1ff)",
          "MASK" },
        { "offer-protocol", 0, 0, G_OPTION_ARG_STRING, &st->offer_protocol,
          "offered protocol flags (0x1fffff)", "MASK" },
        { "messages-per-connection", 0, 0, G_OPTION_ARG_INT, &st->messages_per_connection,
          "messages per connection (all)", "N" },
        { "connections", 0, 0, G_OPTION_ARG_INT, &st->connections, "repeat everything N times",
          "N" },
        { "concurrency", 0, 0, G_OPTION_ARG_INT, &st->concurrency, "connections in parallel (1)",
          "C" },
        { "timeout", 0, 0, G_OPTION_ARG_INT, &st->timeout_ms,
          "wait for connect, write, reply (10000)", "MS" },
        { "eom-timeout", 0, 0, G_OPTION_ARG_INT, &st->eom_timeout_ms,
          "wait for each BODYEOB reply packet (300000)", "MS" },
        { "generate-body", 0, 0, G_OPTION_ARG_STRING, &st->generate_body,
          "also send a generated message with a body of BYTES", "BYTES" },
        { "script", 0, 0, G_OPTION_ARG_FILENAME, &cfg->script_path,
          "send the steps of FILE instead of messages", "FILE" },
        { "quiet", 'q', 0, G_OPTION_ARG_NONE, &cfg->quiet, "one summary line per message", NULL },
        { "stats", 0, 0, G_OPTION_ARG_NONE, &cfg->stats, "throughput and latencies on stderr",
          NULL },
        { "strict", 0, 0, G_OPTION_ARG_NONE, &cfg->strict, "make warnings errors", NULL },
        { G_OPTION_REMAINING, 0, 0, G_OPTION_ARG_FILENAME_ARRAY, &st->files, NULL,
          "[FILE.eml...]" },
        { NULL },
    };
    g_autoptr(GOptionContext) ctx = g_option_context_new(NULL);
    GOptionGroup *group = g_option_group_new(PROGRAM, "options", "options", st, NULL);

    g_option_group_add_entries(group, entries);
    g_option_context_set_main_group(ctx, group);
    g_option_context_set_summary(ctx, HELP_SUMMARY);
    g_option_context_set_description(ctx, HELP_DESCRIPTION);
    return g_option_context_parse(ctx, argc, argv, error);
}

/* options_numbers - check the numeric options into cfg */
static gboolean
options_numbers(OptState *st, GError **error)
{
    Config *cfg = st->cfg;
    guint64 v;

    if (st->offer_version && !parse_guint("--offer-version", st->offer_version, 1, G_MAXUINT32,
                                          &cfg->offer_version, error))
        return FALSE;
    if (st->offer_actions) {
        if (!parse_uint("--offer-actions", st->offer_actions, 0, G_MAXUINT32, &v, error))
            return FALSE;
        cfg->offer_actions = (guint32)v;
    }
    if (st->offer_protocol) {
        if (!parse_uint("--offer-protocol", st->offer_protocol, 0, G_MAXUINT32, &v, error))
            return FALSE;
        cfg->offer_protocol = (guint32)v;
    }
    /* OPT_UNSET marks an option not given; 0 is refused where it makes no sense. */
    if (st->client_port < 0 || st->client_port > 65535 || st->messages_per_connection < 0 ||
        (st->connections != OPT_UNSET &&
         (st->connections < 1 || st->connections > CONNECTIONS_MAX)) ||
        (st->concurrency != OPT_UNSET &&
         (st->concurrency < 1 || st->concurrency > CONCURRENCY_MAX)) ||
        (st->timeout_ms != OPT_UNSET && (st->timeout_ms < 1 || st->timeout_ms > TIMEOUT_MAX_MS)) ||
        (st->eom_timeout_ms != OPT_UNSET &&
         (st->eom_timeout_ms < 1 || st->eom_timeout_ms > TIMEOUT_MAX_MS))) {
        g_set_error(error, DRIVER_ERROR, DRIVER_ERROR_USAGE,
                    "a number is out of range (port 0-65535, connections 1-%d, concurrency 1-%d, "
                    "timeouts 1-%d ms)",
                    CONNECTIONS_MAX, CONCURRENCY_MAX, TIMEOUT_MAX_MS);
        return FALSE;
    }
    cfg->client_port = (guint)st->client_port;
    if (st->connections != OPT_UNSET)
        cfg->connections = (guint)st->connections;
    if (st->concurrency != OPT_UNSET)
        cfg->concurrency = (guint)st->concurrency;
    if (st->timeout_ms != OPT_UNSET)
        cfg->timeout_ms = (guint)st->timeout_ms;
    if (st->eom_timeout_ms != OPT_UNSET)
        cfg->eom_timeout_ms = (guint)st->eom_timeout_ms;
    cfg->messages_per_connection = (guint)st->messages_per_connection;
    return TRUE;
}

/* options_client - the client and envelope defaults that depend on other options */
static gboolean
options_client(OptState *st, GError **error)
{
    Config *cfg = st->cfg;
    char *from;

    if (cfg->client_addr == NULL)
        cfg->client_addr = g_strdup(DEFAULT_CLIENT_ADDR);
    if (st->family == NULL)
        cfg->family = strchr(cfg->client_addr, ':') ? SMFIA_INET6
                      : cfg->client_addr[0] == '/'  ? SMFIA_UNIX
                                                    : SMFIA_INET;
    else if (strlen(st->family) == 1 && strchr("46LlUu", st->family[0]))
        cfg->family = (guint8)g_ascii_toupper(st->family[0]);
    else {
        g_set_error(error, DRIVER_ERROR, DRIVER_ERROR_USAGE, "--family %s: want 4, 6, L or U",
                    st->family);
        return FALSE;
    }
    if (cfg->client_name == NULL)
        cfg->client_name = g_strdup_printf("[%s]", cfg->client_addr);
    cfg->client_ptr = g_strdup(
        cfg->client_name[0] == '[' || cfg->client_name[0] == '\0' ? "unknown" : cfg->client_name);
    if (cfg->family == SMFIA_UNIX)
        cfg->client_port = 0; /* Postfix sends port 0 with the path */
    if (cfg->helo == NULL)
        cfg->helo = g_strdup(DEFAULT_HELO);
    from = angle_addr(cfg->from ? cfg->from : DEFAULT_FROM);
    g_free(cfg->from);
    cfg->from = from;
    if (cfg->rcpts->len == 0 && !opt_rcpt("--rcpt", DEFAULT_RCPT, st, error))
        return FALSE;
    return TRUE;
}

/* options_input - the messages or the script */
static gboolean
options_input(OptState *st, GError **error)
{
    Config *cfg = st->cfg;
    guint64 bytes;

    if (cfg->script_path) {
        if (st->files || st->generate_body) {
            g_set_error(error, DRIVER_ERROR, DRIVER_ERROR_USAGE,
                        "--script cannot be combined with messages");
            return FALSE;
        }
        if (!script_load(cfg, cfg->script_path, error))
            return FALSE;
        if (cfg->steps->len == 0) {
            g_set_error(error, DRIVER_ERROR, DRIVER_ERROR_USAGE, "%s: no steps", cfg->script_path);
            return FALSE;
        }
        return TRUE;
    }
    for (char **f = st->files; f && *f; f++) {
        Message *m = message_load(*f, error);

        if (m == NULL)
            return FALSE;
        g_ptr_array_add(cfg->messages, m);
    }
    if (st->generate_body) {
        if (!parse_uint("--generate-body", st->generate_body, 0, GENERATE_BODY_MAX, &bytes, error))
            return FALSE;
        g_ptr_array_add(cfg->messages, message_generate(bytes));
    }
    if (cfg->messages->len == 0) {
        g_set_error(error, DRIVER_ERROR, DRIVER_ERROR_USAGE,
                    "nothing to send: give FILE.eml, --generate-body or --script");
        return FALSE;
    }
    if (cfg->messages_per_connection == 0 || cfg->messages_per_connection > cfg->messages->len)
        cfg->messages_per_connection = cfg->messages->len;
    if ((guint64)cfg->connections * cfg->messages->len > JOBS_MAX) {
        g_set_error(error, DRIVER_ERROR, DRIVER_ERROR_USAGE, "too many connections");
        return FALSE;
    }
    return TRUE;
}

/* config_from_args - the whole command line as a Config; NULL with a usage error */
static Config *
config_from_args(int argc, char **argv, GError **error)
{
    g_autoptr(Config) cfg = config_new();
    OptState st = { 0 };
    gboolean ok;

    st.cfg = cfg;
    st.connections = st.concurrency = st.timeout_ms = st.eom_timeout_ms = OPT_UNSET;
    ok = options_parse(&st, &argc, &argv, error) && options_numbers(&st, error);
    if (ok && cfg->spec == NULL) {
        g_set_error(error, DRIVER_ERROR, DRIVER_ERROR_USAGE, "--connect SPEC is required");
        ok = FALSE;
    }
    ok = ok && options_client(&st, error) && options_input(&st, error);
    if (ok && !(cfg->address = parse_spec(cfg->spec, &cfg->inet, error)))
        ok = FALSE;
    g_free(st.offer_version);
    g_free(st.offer_actions);
    g_free(st.offer_protocol);
    g_free(st.family);
    g_free(st.generate_body);
    g_strfreev(st.files);
    return ok ? g_steal_pointer(&cfg) : NULL;
}

/* main - parse the command line, run, report */
int
main(int argc, char **argv)
{
    g_autoptr(GError) error = NULL;
    g_autoptr(Config) cfg = NULL;

    signal(SIGPIPE, SIG_IGN); /* a closed milter socket is an error, not a death */
    cfg = config_from_args(argc, argv, &error);
    if (cfg == NULL) {
        g_printerr("%s: %s\nTry '%s --help'.\n", PROGRAM, error->message, PROGRAM);
        return 2;
    }
    return run(cfg) ? 0 : 1;
}
