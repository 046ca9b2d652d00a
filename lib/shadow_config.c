/* SPDX-License-Identifier: MIT */
/*
 * NAME
 *	shadow_config - load and check shadowd.conf; address, duration and size forms
 * DESCRIPTION
 *	See shadow_config.h for the interface and conf/shadowd.conf for every
 *	key. The file is read whole and checked in four passes, each of which
 *	stops at the first fault it finds:
 *
 *	1. The text must be UTF-8 without NUL bytes. Comment lines that start
 *	   with ';' become '#' lines, the only comments GKeyFile knows. Only
 *	   that one byte changes, so line numbers stay put.
 *	2. GKeyFile parses the text. Its messages carry no line number, so on
 *	   a syntax error the line is found by loading shorter and shorter
 *	   prefixes of the text (a binary search). GKeyFile parses line by
 *	   line, so the shortest prefix that fails ends at the faulty line.
 *	3. A line scanner records each group header and each key with its
 *	   line, following GKeyFile's rules for group, key and comment lines.
 *	   GKeyFile silently merges a repeated group or key. The scanner's
 *	   record is what lets us reject repeats, and it gives every message
 *	   its line.
 *	4. Groups and keys are checked in file order against the key tables
 *	   below. Values come from GKeyFile, which undoes escapes such as \s;
 *	   trailing blanks are dropped. Each value is stored over its default.
 *
 *	Every message starts "FILE:LINE: " and then names the group, or the
 *	group and the key, as in
 *	    shadowd.conf:12: [milter spamd] connect_timeout: bad duration "5x"
 *	    (want e.g. 250ms, 7s, 5m)
 *	(one line). A syntax error keeps GKeyFile's own message after the
 *	prefix. The code is SHADOW_CONFIG_ERROR_GROUP for groups and milter
 *	names, _KEY for unknown, repeated and missing keys, _VALUE for values
 *	and _SYNTAX for the text; a file that cannot be read keeps its
 *	G_FILE_ERROR.
 *
 *	XXX The timeout caps hold for one child. With reply = wait and
 *	several children run one after another (content = chained), the MTA
 *	waits for the sum of their times, so shadowd itself must also keep a
 *	deadline per MTA command; no per-child limit in this file can do that.
 */

/* System library. */
#include <stdarg.h>
#include <string.h>
#include <syslog.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/un.h>

/* Shadow libraries. */
#include "shadow_config.h"

/* The groups. A milter group is "milter NAME". */
#define GROUP_SHADOWD       "shadowd"
#define GROUP_MILTER        "milter"
#define GROUP_MILTER_PREFIX "milter "

/* A milter NAME: 1..64 of [A-Za-z0-9._-]. It names the child in logs and reports. */
#define MILTER_NAME_MAX 64

/* TCP ports, decimal only (no service names). */
#define PORT_MIN 1
#define PORT_MAX 65535

/* A host name in an address: the longest name DNS allows, in text. */
#define HOST_NAME_MAX_LEN 253

/* A unix socket path must fit in sun_path with its NUL (107 bytes on Linux). */
#define UNIX_PATH_MAX_LEN (G_SIZEOF_MEMBER(struct sockaddr_un, sun_path) - 1)

/* max_connections, as shadow_config.h gives the range. */
#define MAX_CONNECTIONS_MIN 1
#define MAX_CONNECTIONS_MAX 65535

/* socket_mode: permission bits only, no setuid, setgid or sticky bit. */
#define SOCKET_MODE_MAX 0777

/* user, group: the longest account name useradd(8) and adduser(8) accept. */
#define ACCOUNT_NAME_MAX 32

/* A timeout of 0 would fail every call at once. */
#define TIMEOUT_MIN_MS 1

/*
 * shadowd must never answer the MTA late (milter-protocol.md section 6).
 * A command must end inside Sendmail's milter read timeout (T=R, 10s), and
 * end-of-message inside Postfix's milter_content_timeout and Sendmail's
 * end-of-message timeout (T=E), both 300s.
 */
#define COMMAND_TIMEOUT_MAX_MS 10000
#define COMMAND_TIMEOUT_WHY                                                                        \
    "it must stay inside Sendmail's 10s milter read timeout (T=R), because shadowd must never "    \
    "answer the MTA late"
#define EOM_TIMEOUT_MAX_MS 300000
#define EOM_TIMEOUT_WHY                                                                            \
    "it must stay inside Postfix's 300s milter_content_timeout and Sendmail's 300s "               \
    "end-of-message timeout (T=E), because shadowd must never answer the MTA late"

/* Powers of 1024 for sizes. */
#define KIB ((guint64)1024)
#define MIB (KIB * 1024)
#define GIB (MIB * 1024)

/* Defaults, as shadow_config.h and conf/shadowd.conf give them. */
#define DEFAULT_LISTEN             "inet:8899@127.0.0.1"
#define DEFAULT_EVENT_LOG          "/var/log/shadowd/events.log"
#define DEFAULT_PID_FILE           "/run/shadowd/shadowd.pid"
#define DEFAULT_SYSLOG_FACILITY    LOG_MAIL
#define DEFAULT_SYSLOG_IDENT       "shadowd"
#define DEFAULT_SOCKET_MODE        0660
#define DEFAULT_MAX_CONNECTIONS    256
#define DEFAULT_SPOOL_MEMORY       (1 * MIB)
#define DEFAULT_SPOOL_MEMORY_TOTAL (32 * MIB)
#define DEFAULT_SPOOL_DIR          "/var/tmp"
#define DEFAULT_MAX_MESSAGE        (64 * MIB)
#define DEFAULT_BACKLOG            (4 * MIB)
#define DEFAULT_CONNECT_TIMEOUT_MS 5000
#define DEFAULT_COMMAND_TIMEOUT_MS 7000
#define DEFAULT_EOM_TIMEOUT_MS     60000

/* What "want" says for values with a fixed form. */
#define WANT_ADDRESS                                                                               \
    "want unix:/path, local:/path, inet:PORT@HOST, inet6:PORT@HOST or inet:HOST:PORT"
#define WANT_DURATION "want e.g. 250ms, 7s, 5m"
#define WANT_SIZE     "want e.g. 4096, 512k, 1M, 64M, 1G"

/* NumberStatus - outcome of parsing a number with a unit */
typedef enum {
    NUMBER_OK,
    NUMBER_BAD,   /* not digits followed by a known unit */
    NUMBER_RANGE, /* well formed, but above the maximum */
} NumberStatus;

/* Unit - a suffix and what it multiplies by */
typedef struct {
    const char *suffix;
    guint64 scale;
} Unit;

static const Unit duration_units[] = {
    { "", 1000 }, { "ms", 1 }, { "s", 1000 }, { "m", 60 * 1000 }, { "h", 60 * 60 * 1000 },
};

static const Unit size_units[] = {
    { "", 1 },
    { "k", KIB },
    { "M", MIB },
    { "G", GIB },
};

static const Unit decimal_units[] = {
    { "", 1 },
};

/* NameValue - one word of a value with a fixed set of words */
typedef struct {
    const char *name;
    int value;
} NameValue;

static const NameValue facilities[] = {
    { "mail", LOG_MAIL },     { "daemon", LOG_DAEMON }, { "user", LOG_USER },
    { "local0", LOG_LOCAL0 }, { "local1", LOG_LOCAL1 }, { "local2", LOG_LOCAL2 },
    { "local3", LOG_LOCAL3 }, { "local4", LOG_LOCAL4 }, { "local5", LOG_LOCAL5 },
    { "local6", LOG_LOCAL6 }, { "local7", LOG_LOCAL7 },
};

static const NameValue reply_modes[] = {
    { "immediate", SHADOW_REPLY_IMMEDIATE },
    { "wait", SHADOW_REPLY_WAIT },
};

static const NameValue content_modes[] = {
    { "chained", SHADOW_CONTENT_CHAINED },
    { "independent", SHADOW_CONTENT_INDEPENDENT },
};

/* ValueType - how a key's value is checked and stored */
typedef enum {
    VALUE_ADDRESS,     /* ShadowAddress */
    VALUE_PATH,        /* char *: an absolute path */
    VALUE_WORD,        /* char *: non-empty, no blanks */
    VALUE_HOST,        /* char *: a word; empty means the machine's host name */
    VALUE_OWNER,       /* char *: user or user:group; empty means NULL */
    VALUE_ACCOUNT,     /* char *: a user or group name; empty means NULL */
    VALUE_FACILITY,    /* int: LOG_* */
    VALUE_MODE,        /* guint: octal permission bits */
    VALUE_CONNECTIONS, /* guint: 1..65535 */
    VALUE_SIZE,        /* gsize */
    VALUE_REPLY,       /* ShadowReplyMode */
    VALUE_CONTENT,     /* ShadowContentMode */
    VALUE_BOOLEAN,     /* gboolean */
    VALUE_TIMEOUT,     /* guint milliseconds, at least 1ms */
} ValueType;

/* KeyRule - one key of a group: its type and where it is stored */
typedef struct {
    const char *key;
    ValueType type;
    gsize offset;    /* of the field in ShadowConfig or ShadowMilterConfig */
    guint max_ms;    /* VALUE_TIMEOUT: the cap, 0 for none */
    const char *why; /* VALUE_TIMEOUT: why the cap */
} KeyRule;

static const KeyRule shadowd_keys[] = {
    { "listen", VALUE_ADDRESS, G_STRUCT_OFFSET(ShadowConfig, listen) },
    { "event_log", VALUE_PATH, G_STRUCT_OFFSET(ShadowConfig, event_log) },
    { "pid_file", VALUE_PATH, G_STRUCT_OFFSET(ShadowConfig, pid_file) },
    { "syslog_facility", VALUE_FACILITY, G_STRUCT_OFFSET(ShadowConfig, syslog_facility) },
    { "syslog_ident", VALUE_WORD, G_STRUCT_OFFSET(ShadowConfig, syslog_ident) },
    { "socket_mode", VALUE_MODE, G_STRUCT_OFFSET(ShadowConfig, socket_mode) },
    { "socket_owner", VALUE_OWNER, G_STRUCT_OFFSET(ShadowConfig, socket_owner) },
    { "max_connections", VALUE_CONNECTIONS, G_STRUCT_OFFSET(ShadowConfig, max_connections) },
    { "spool_memory", VALUE_SIZE, G_STRUCT_OFFSET(ShadowConfig, spool_memory) },
    { "spool_memory_total", VALUE_SIZE, G_STRUCT_OFFSET(ShadowConfig, spool_memory_total) },
    { "spool_dir", VALUE_PATH, G_STRUCT_OFFSET(ShadowConfig, spool_dir) },
    { "max_message", VALUE_SIZE, G_STRUCT_OFFSET(ShadowConfig, max_message) },
    { "backlog", VALUE_SIZE, G_STRUCT_OFFSET(ShadowConfig, backlog) },
    { "reply", VALUE_REPLY, G_STRUCT_OFFSET(ShadowConfig, reply) },
    { "content", VALUE_CONTENT, G_STRUCT_OFFSET(ShadowConfig, content) },
    { "host", VALUE_HOST, G_STRUCT_OFFSET(ShadowConfig, host) },
    { "user", VALUE_ACCOUNT, G_STRUCT_OFFSET(ShadowConfig, user) },
    { "group", VALUE_ACCOUNT, G_STRUCT_OFFSET(ShadowConfig, group) },
    { "allow_root", VALUE_BOOLEAN, G_STRUCT_OFFSET(ShadowConfig, allow_root) },
};

static const KeyRule milter_keys[] = {
    { "connect", VALUE_ADDRESS, G_STRUCT_OFFSET(ShadowMilterConfig, connect) },
    { "enabled", VALUE_BOOLEAN, G_STRUCT_OFFSET(ShadowMilterConfig, enabled) },
    { "connect_timeout", VALUE_TIMEOUT, G_STRUCT_OFFSET(ShadowMilterConfig, connect_timeout_ms) },
    { "command_timeout", VALUE_TIMEOUT, G_STRUCT_OFFSET(ShadowMilterConfig, command_timeout_ms),
      COMMAND_TIMEOUT_MAX_MS, COMMAND_TIMEOUT_WHY },
    { "eom_timeout", VALUE_TIMEOUT, G_STRUCT_OFFSET(ShadowMilterConfig, eom_timeout_ms),
      EOM_TIMEOUT_MAX_MS, EOM_TIMEOUT_WHY },
};

/* ScanKey - a key line as the scanner saw it */
typedef struct {
    char *name;
    guint line;
} ScanKey;

/* ScanGroup - a group header line and the key lines after it */
typedef struct {
    char *name;
    guint line;
    GArray *keys; /* ScanKey, in file order */
} ScanGroup;

static void address_error(GError **error, const char *spec, const char *format, ...)
    G_GNUC_PRINTF(3, 4);
static gboolean value_error(GError **error, const char *format, ...) G_GNUC_PRINTF(2, 3);
static gboolean group_error(GError **error, const char *path, const ScanGroup *group,
                            const char *format, ...) G_GNUC_PRINTF(4, 5);

/* shadow_config_error_quark - the SHADOW_CONFIG_ERROR domain */
GQuark
shadow_config_error_quark(void)
{
    return g_quark_from_static_string("shadow-config-error-quark");
}

/* parse_number - digits and one of the units, at most max after scaling */
static NumberStatus
parse_number(const char *text, const Unit *units, gsize n_units, guint64 max, guint64 *out)
{
    const char *p = text;
    guint64 value = 0;
    gboolean overflow = FALSE;

    if (!g_ascii_isdigit(*p))
        return NUMBER_BAD;
    for (; g_ascii_isdigit(*p); p++) {
        guint digit = (guint)(*p - '0');

        if (value > (G_MAXUINT64 - digit) / 10)
            overflow = TRUE;
        else
            value = value * 10 + digit;
    }
    for (gsize i = 0; i < n_units; i++) {
        if (strcmp(p, units[i].suffix) != 0)
            continue;
        if (overflow || value > max / units[i].scale)
            return NUMBER_RANGE;
        *out = value * units[i].scale;
        return NUMBER_OK;
    }
    return NUMBER_BAD;
}

/* shadow_parse_duration_ms - "250ms", "7s", "5m", "1h"; a bare integer is seconds */
gboolean
shadow_parse_duration_ms(const char *text, guint *out_ms)
{
    guint64 ms;

    g_return_val_if_fail(text != NULL, FALSE);
    g_return_val_if_fail(out_ms != NULL, FALSE);

    if (parse_number(text, duration_units, G_N_ELEMENTS(duration_units), G_MAXUINT, &ms) !=
        NUMBER_OK)
        return FALSE;
    *out_ms = (guint)ms;
    return TRUE;
}

/* shadow_parse_size - "4096", "512k", "1M", "2G" (powers of 1024); a bare integer is bytes */
gboolean
shadow_parse_size(const char *text, gsize *out)
{
    guint64 bytes;

    g_return_val_if_fail(text != NULL, FALSE);
    g_return_val_if_fail(out != NULL, FALSE);

    if (parse_number(text, size_units, G_N_ELEMENTS(size_units), G_MAXSIZE, &bytes) != NUMBER_OK)
        return FALSE;
    *out = (gsize)bytes;
    return TRUE;
}

/* address_error - SHADOW_CONFIG_ERROR_VALUE: bad address "SPEC": what */
static void
address_error(GError **error, const char *spec, const char *format, ...)
{
    g_autofree char *what = NULL;
    va_list ap;

    va_start(ap, format);
    what = g_strdup_vprintf(format, ap);
    va_end(ap);
    g_set_error(error, SHADOW_CONFIG_ERROR, SHADOW_CONFIG_ERROR_VALUE, "bad address \"%s\": %s",
                spec, what);
}

/* skip_prefix - the text after prefix, or NULL when text does not start with it */
static const char *
skip_prefix(const char *text, const char *prefix)
{
    gsize n = strlen(prefix);

    return strncmp(text, prefix, n) == 0 ? text + n : NULL;
}

/* check_unix_path - an absolute path that fits a unix socket address */
static gboolean
check_unix_path(const char *spec, const char *path, GError **error)
{
    gsize len = strlen(path);

    if (len == 0) {
        address_error(error, spec, "empty path");
        return FALSE;
    }
    if (path[0] != '/') {
        address_error(error, spec, "path \"%s\" is not absolute", path);
        return FALSE;
    }
    if (len > UNIX_PATH_MAX_LEN) {
        address_error(error, spec, "path is %" G_GSIZE_FORMAT " bytes, more than %" G_GSIZE_FORMAT,
                      len, (gsize)UNIX_PATH_MAX_LEN);
        return FALSE;
    }
    return TRUE;
}

/* parse_port - a decimal port, 1..65535 */
static gboolean
parse_port(const char *spec, const char *text, guint16 *out, GError **error)
{
    guint64 port = 0;

    if (*text == '\0') {
        address_error(error, spec, "empty port");
        return FALSE;
    }
    switch (parse_number(text, decimal_units, G_N_ELEMENTS(decimal_units), PORT_MAX, &port)) {
    case NUMBER_BAD:
        address_error(error, spec, "port \"%s\" is not a decimal number", text);
        return FALSE;
    case NUMBER_RANGE:
        break;
    case NUMBER_OK:
        if (port >= PORT_MIN) {
            *out = (guint16)port;
            return TRUE;
        }
        break;
    }
    address_error(error, spec, "port %s out of range %d..%d", text, PORT_MIN, PORT_MAX);
    return FALSE;
}

/* HostKind - what an address's host is */
typedef enum {
    HOST_NAME,
    HOST_IPV4,
    HOST_IPV6,
} HostKind;

/* check_host - an IP address literal, or (not in brackets) a host name */
static gboolean
check_host(const char *spec, const char *host, gboolean bracketed, HostKind *kind, GError **error)
{
    struct in6_addr addr6;
    struct in_addr addr4;
    gsize len = strlen(host);

    if (len == 0) {
        address_error(error, spec, "empty host");
        return FALSE;
    }
    if (inet_pton(AF_INET6, host, &addr6) == 1) {
        *kind = HOST_IPV6;
        return TRUE;
    }
    if (inet_pton(AF_INET, host, &addr4) == 1) {
        *kind = HOST_IPV4;
        return TRUE;
    }
    if (bracketed) {
        address_error(error, spec, "host \"%s\" in brackets is not an IP address", host);
        return FALSE;
    }
    if (len > HOST_NAME_MAX_LEN) {
        address_error(error, spec, "host name is %" G_GSIZE_FORMAT " bytes, more than %d", len,
                      HOST_NAME_MAX_LEN);
        return FALSE;
    }
    for (const char *p = host; *p; p++) {
        if (!g_ascii_isalnum(*p) && *p != '.' && *p != '-' && *p != '_') {
            address_error(error, spec, "bad host \"%s\"", host);
            return FALSE;
        }
    }
    *kind = HOST_NAME;
    return TRUE;
}

/* parse_inet - PORT@HOST (inet: and inet6:) or HOST:PORT (inet: only) */
static gboolean
parse_inet(const char *spec, const char *rest, gboolean inet6, ShadowAddress *out, GError **error)
{
    g_autofree char *host = NULL;
    g_autofree char *port_text = NULL;
    const char *at = strchr(rest, '@');
    gboolean bracketed = FALSE;
    HostKind kind;
    guint16 port = 0;

    if (at != NULL) {
        /* Sendmail's PORT@HOST; HOST may be [ADDRESS], as Sendmail allows. */
        const char *h = at + 1;

        port_text = g_strndup(rest, (gsize)(at - rest));
        if (*h == '[') {
            const char *close = strchr(h, ']');

            if (close == NULL || close[1] != '\0') {
                address_error(error, spec, "want [ADDRESS] after \"@[\"");
                return FALSE;
            }
            host = g_strndup(h + 1, (gsize)(close - h - 1));
            bracketed = TRUE;
        } else {
            host = g_strdup(h);
        }
    } else if (inet6) {
        address_error(error, spec, "want inet6:PORT@HOST");
        return FALSE;
    } else if (*rest == '[') {
        /* Postfix's [HOST]:PORT. */
        const char *close = strchr(rest, ']');

        if (close == NULL) {
            address_error(error, spec, "missing \"]\" after the host");
            return FALSE;
        }
        if (close[1] != ':') {
            address_error(error, spec, "want \":PORT\" after \"]\"");
            return FALSE;
        }
        host = g_strndup(rest + 1, (gsize)(close - rest - 1));
        port_text = g_strdup(close + 2);
        bracketed = TRUE;
    } else {
        /* Postfix's HOST:PORT. */
        const char *colon = strrchr(rest, ':');

        if (colon == NULL) {
            address_error(error, spec, "want inet:PORT@HOST or inet:HOST:PORT");
            return FALSE;
        }
        host = g_strndup(rest, (gsize)(colon - rest));
        if (strchr(host, ':') != NULL) {
            address_error(error, spec, "an IPv6 host goes in brackets, as in inet:[::1]:PORT");
            return FALSE;
        }
        port_text = g_strdup(colon + 1);
    }

    if (!parse_port(spec, port_text, &port, error))
        return FALSE;
    if (!check_host(spec, host, bracketed, &kind, error))
        return FALSE;
    if (inet6 && kind == HOST_IPV4) {
        address_error(error, spec, "host %s is an IPv4 address (use inet:)", host);
        return FALSE;
    }
    out->kind = (inet6 || kind == HOST_IPV6) ? SHADOW_ADDRESS_INET6 : SHADOW_ADDRESS_INET;
    out->host = g_steal_pointer(&host);
    out->port = port;
    return TRUE;
}

/*
 * shadow_address_parse - unix:/path, local:/path, inet:PORT@HOST, inet6:PORT@HOST, inet:HOST:PORT
 *
 * On success *out is overwritten (not cleared first: pass a zeroed or
 * cleared struct) and the caller frees it with shadow_address_clear(). On
 * failure *out is left alone.
 */
gboolean
shadow_address_parse(const char *spec, ShadowAddress *out, GError **error)
{
    ShadowAddress address = { 0 };
    const char *rest;

    g_return_val_if_fail(spec != NULL, FALSE);
    g_return_val_if_fail(out != NULL, FALSE);

    if ((rest = skip_prefix(spec, "unix:")) != NULL ||
        (rest = skip_prefix(spec, "local:")) != NULL) {
        if (!check_unix_path(spec, rest, error))
            return FALSE;
        address.kind = SHADOW_ADDRESS_UNIX;
        address.path = g_strdup(rest);
    } else if ((rest = skip_prefix(spec, "inet:")) != NULL) {
        if (!parse_inet(spec, rest, FALSE, &address, error))
            return FALSE;
    } else if ((rest = skip_prefix(spec, "inet6:")) != NULL) {
        if (!parse_inet(spec, rest, TRUE, &address, error))
            return FALSE;
    } else {
        address_error(error, spec, WANT_ADDRESS);
        return FALSE;
    }
    address.spec = g_strdup(spec);
    *out = address;
    return TRUE;
}

/* shadow_address_clear - free an address's strings and zero it; NULL is fine */
void
shadow_address_clear(ShadowAddress *address)
{
    if (address == NULL)
        return;
    g_free(address->spec);
    g_free(address->path);
    g_free(address->host);
    memset(address, 0, sizeof(*address));
}

/* milter_config_free - a ShadowMilterConfig and its strings */
static void
milter_config_free(gpointer data)
{
    ShadowMilterConfig *milter = data;

    if (milter == NULL)
        return;
    g_free(milter->name);
    shadow_address_clear(&milter->connect);
    g_free(milter);
}

/* shadow_config_new_default - every default, no milters, no path */
ShadowConfig *
shadow_config_new_default(void)
{
    ShadowConfig *config = g_new0(ShadowConfig, 1);

    if (!shadow_address_parse(DEFAULT_LISTEN, &config->listen, NULL))
        g_warn_if_reached();
    config->event_log = g_strdup(DEFAULT_EVENT_LOG);
    config->pid_file = g_strdup(DEFAULT_PID_FILE);
    config->syslog_facility = DEFAULT_SYSLOG_FACILITY;
    config->syslog_ident = g_strdup(DEFAULT_SYSLOG_IDENT);
    config->socket_mode = DEFAULT_SOCKET_MODE;
    config->socket_owner = NULL;
    config->max_connections = DEFAULT_MAX_CONNECTIONS;
    config->spool_memory = DEFAULT_SPOOL_MEMORY;
    config->spool_memory_total = DEFAULT_SPOOL_MEMORY_TOTAL;
    config->spool_dir = g_strdup(DEFAULT_SPOOL_DIR);
    config->max_message = DEFAULT_MAX_MESSAGE;
    config->backlog = DEFAULT_BACKLOG;
    config->reply = SHADOW_REPLY_IMMEDIATE;
    config->content = SHADOW_CONTENT_CHAINED;
    config->host = g_strdup(g_get_host_name());
    config->user = NULL;
    config->group = NULL;
    config->allow_root = FALSE;
    config->milters = g_ptr_array_new_with_free_func(milter_config_free);
    return config;
}

/* shadow_config_free - everything the config owns, milters included; NULL is fine */
void
shadow_config_free(ShadowConfig *config)
{
    if (config == NULL)
        return;
    g_free(config->path);
    shadow_address_clear(&config->listen);
    g_free(config->event_log);
    g_free(config->pid_file);
    g_free(config->syslog_ident);
    g_free(config->socket_owner);
    g_free(config->spool_dir);
    g_free(config->host);
    g_free(config->user);
    g_free(config->group);
    if (config->milters != NULL)
        g_ptr_array_unref(config->milters);
    g_free(config);
}

/* syntax_error - SHADOW_CONFIG_ERROR_SYNTAX with "PATH:LINE: " */
static void
syntax_error(GError **error, const char *path, guint line, const char *what)
{
    g_set_error(error, SHADOW_CONFIG_ERROR, SHADOW_CONFIG_ERROR_SYNTAX, "%s:%u: %s", path, line,
                what);
}

/* line_of - the line number of byte offset in text */
static guint
line_of(const char *text, gsize offset)
{
    guint line = 1;

    for (gsize i = 0; i < offset; i++)
        if (text[i] == '\n')
            line++;
    return line;
}

/* check_text - UTF-8 without NUL bytes */
static gboolean
check_text(const char *path, const char *text, gsize len, GError **error)
{
    const char *end;

    if (g_utf8_validate_len(text, len, &end))
        return TRUE;
    syntax_error(error, path, line_of(text, (gsize)(end - text)),
                 *end == '\0' ? "NUL byte" : "not UTF-8");
    return FALSE;
}

/* next_line - the line at *p as [start, end) without "\n" or "\r\n"; advances *p */
static gboolean
next_line(const char **p, const char *text_end, const char **start, const char **end)
{
    const char *eol;

    if (*p >= text_end)
        return FALSE;
    eol = memchr(*p, '\n', (gsize)(text_end - *p));
    *start = *p;
    if (eol == NULL) {
        *end = text_end;
        *p = text_end;
    } else {
        *end = (eol > *start && eol[-1] == '\r') ? eol - 1 : eol;
        *p = eol + 1;
    }
    while (*start < *end && g_ascii_isspace(**start))
        (*start)++;
    return TRUE;
}

/* blank_semicolon_comments - turn ';' comment lines into '#' lines for GKeyFile */
static void
blank_semicolon_comments(char *text, gsize len)
{
    const char *p = text;
    const char *start, *end;

    while (next_line(&p, text + len, &start, &end))
        if (start < end && *start == ';')
            text[start - text] = '#';
}

/* prefix_fails - GKeyFile rejects the first len bytes of text */
static gboolean
prefix_fails(const char *text, gsize len)
{
    g_autoptr(GKeyFile) kf = g_key_file_new();

    return !g_key_file_load_from_data(kf, text, len, G_KEY_FILE_NONE, NULL);
}

/* syntax_line - the line GKeyFile stopped at: where the shortest failing prefix ends */
static guint
syntax_line(const char *text, gsize len)
{
    g_autoptr(GArray) ends = g_array_new(FALSE, FALSE, sizeof(gsize));
    const char *p = text;
    const char *start, *end;
    guint lo = 1, hi;

    while (next_line(&p, text + len, &start, &end)) {
        gsize offset = (gsize)(p - text);

        g_array_append_val(ends, offset);
    }
    hi = ends->len;
    if (hi == 0)
        return 1;
    /* Invariant: the prefix of hi lines fails (the whole text does). */
    while (lo < hi) {
        guint mid = lo + (hi - lo) / 2;

        if (prefix_fails(text, g_array_index(ends, gsize, mid - 1)))
            hi = mid;
        else
            lo = mid + 1;
    }
    return lo;
}

/* scan_key_clear - GArray clear function for ScanKey */
static void
scan_key_clear(gpointer data)
{
    ScanKey *key = data;

    g_free(key->name);
}

/* scan_group_free - a ScanGroup and its keys */
static void
scan_group_free(gpointer data)
{
    ScanGroup *group = data;

    g_free(group->name);
    g_array_unref(group->keys);
    g_free(group);
}

/*
 * scan_text - every group header and key line, with its line number
 *
 * Called only on text GKeyFile has accepted, with its rules: leading
 * blanks are skipped; '#' and blank lines are comments; "[NAME]" (blanks
 * may follow) is a group; otherwise the key runs to the first '=', less
 * trailing blanks. A line that fits none of these is still an error here,
 * so that no line can be skipped unseen.
 */
static GPtrArray *
scan_text(const char *path, const char *text, gsize len, GError **error)
{
    g_autoptr(GPtrArray) groups = g_ptr_array_new_with_free_func(scan_group_free);
    ScanGroup *group = NULL;
    const char *p = text;
    const char *start, *end;
    guint line = 0;

    while (next_line(&p, text + len, &start, &end)) {
        const char *mark;

        line++;
        if (start == end || *start == '#')
            continue;
        if (*start == '[' && (mark = memchr(start, ']', (gsize)(end - start))) != NULL) {
            group = g_new0(ScanGroup, 1);
            group->name = g_strndup(start + 1, (gsize)(mark - start - 1));
            group->line = line;
            group->keys = g_array_new(FALSE, FALSE, sizeof(ScanKey));
            g_array_set_clear_func(group->keys, scan_key_clear);
            g_ptr_array_add(groups, group);
        } else if (group != NULL && (mark = memchr(start, '=', (gsize)(end - start))) != NULL) {
            ScanKey key;

            while (mark > start && g_ascii_isspace(mark[-1]))
                mark--;
            key.name = g_strndup(start, (gsize)(mark - start));
            key.line = line;
            g_array_append_val(group->keys, key);
        } else {
            syntax_error(error, path, line, "not a group, key or comment line");
            return NULL;
        }
    }
    return g_steal_pointer(&groups);
}

/* value_error - SHADOW_CONFIG_ERROR_VALUE without context (the caller adds it) */
static gboolean
value_error(GError **error, const char *format, ...)
{
    g_autofree char *what = NULL;
    va_list ap;

    va_start(ap, format);
    what = g_strdup_vprintf(format, ap);
    va_end(ap);
    g_set_error_literal(error, SHADOW_CONFIG_ERROR, SHADOW_CONFIG_ERROR_VALUE, what);
    return FALSE;
}

/* read_value - a key's value: escapes undone, trailing blanks dropped, no control characters */
static char *
read_value(GKeyFile *kf, const char *group, const char *key, GError **error)
{
    g_autoptr(GError) local = NULL;
    g_autofree char *value = g_key_file_get_string(kf, group, key, &local);
    g_autofree char *raw = NULL;

    /* On a bad escape GKeyFile returns a string and an error, so test the error. */
    if (local != NULL) {
        raw = g_key_file_get_value(kf, group, key, NULL);
        value_error(error, "bad escape sequence in \"%s\"", raw != NULL ? raw : "");
        return NULL;
    }
    g_strchomp(value);
    for (const char *p = value; *p; p++) {
        if (g_ascii_iscntrl(*p)) {
            raw = g_key_file_get_value(kf, group, key, NULL);
            value_error(error, "control character in \"%s\"", raw != NULL ? raw : "");
            return NULL;
        }
    }
    return g_steal_pointer(&value);
}

/* lookup_name - the value of a word in a table */
static gboolean
lookup_name(const NameValue *table, gsize n, const char *name, int *out)
{
    for (gsize i = 0; i < n; i++) {
        if (strcmp(table[i].name, name) == 0) {
            *out = table[i].value;
            return TRUE;
        }
    }
    return FALSE;
}

/* has_blank - text contains a space or tab */
static gboolean
has_blank(const char *text)
{
    return strpbrk(text, " \t") != NULL;
}

/* parse_mode - octal permission bits, "0660" or "660" */
static gboolean
parse_mode(const char *text, guint *out)
{
    guint mode = 0;

    if (*text == '\0')
        return FALSE;
    for (const char *p = text; *p; p++) {
        if (*p < '0' || *p > '7')
            return FALSE;
        mode = mode * 8 + (guint)(*p - '0');
        if (mode > SOCKET_MODE_MAX)
            return FALSE;
    }
    *out = mode;
    return TRUE;
}

/* check_owner - "user" or "user:group", neither part empty */
static gboolean
check_owner(const char *text)
{
    const char *colon = strchr(text, ':');

    if (text[0] == ':' || has_blank(text))
        return FALSE;
    return colon == NULL || (colon[1] != '\0' && strchr(colon + 1, ':') == NULL);
}

/* check_account - 1..32 letters, digits, '.', '_' or '-', not starting with '-' */
static gboolean
check_account(const char *text)
{
    gsize len = strlen(text);

    if (len == 0 || len > ACCOUNT_NAME_MAX || text[0] == '-')
        return FALSE;
    for (const char *p = text; *p; p++)
        if (!g_ascii_isalnum(*p) && *p != '.' && *p != '_' && *p != '-')
            return FALSE;
    return TRUE;
}

/* replace_string - free *field and store value there */
static void
replace_string(gpointer field, char *value)
{
    char **p = field;

    g_free(*p);
    *p = value;
}

/* set_timeout - a duration of at least 1ms, and at most the rule's cap */
static gboolean
set_timeout(const KeyRule *rule, const char *text, guint *field, GError **error)
{
    guint64 ms;

    switch (parse_number(text, duration_units, G_N_ELEMENTS(duration_units), G_MAXUINT, &ms)) {
    case NUMBER_BAD:
        return value_error(error, "bad duration \"%s\" (" WANT_DURATION ")", text);
    case NUMBER_RANGE:
        return value_error(error, "duration \"%s\" is too long (at most %ums)", text, G_MAXUINT);
    case NUMBER_OK:
        break;
    }
    if (ms < TIMEOUT_MIN_MS)
        return value_error(error, "\"%s\" is too short (want at least %dms)", text, TIMEOUT_MIN_MS);
    if (rule->max_ms != 0 && ms > rule->max_ms)
        return value_error(error, "\"%s\" is more than %us: %s", text, rule->max_ms / 1000,
                           rule->why);
    *field = (guint)ms;
    return TRUE;
}

/* set_value - check text by the rule's type and store it in the field at base */
static gboolean
set_value(const KeyRule *rule, const char *text, gpointer base, GError **error)
{
    gpointer field = G_STRUCT_MEMBER_P(base, rule->offset);
    guint64 number;
    int word;

    switch (rule->type) {
    case VALUE_ADDRESS: {
        ShadowAddress address = { 0 };

        if (!shadow_address_parse(text, &address, error))
            return FALSE;
        shadow_address_clear(field);
        *(ShadowAddress *)field = address;
        return TRUE;
    }
    case VALUE_PATH:
        if (*text == '\0')
            return value_error(error, "empty value (want an absolute path)");
        if (text[0] != '/')
            return value_error(error, "path \"%s\" is not absolute", text);
        replace_string(field, g_strdup(text));
        return TRUE;
    case VALUE_HOST:
        if (*text == '\0') {
            replace_string(field, g_strdup(g_get_host_name()));
            return TRUE;
        }
        /* fall through */
    case VALUE_WORD:
        if (*text == '\0')
            return value_error(error, "empty value");
        if (has_blank(text))
            return value_error(error, "bad value \"%s\" (want one word, no blanks)", text);
        replace_string(field, g_strdup(text));
        return TRUE;
    case VALUE_OWNER:
        if (*text != '\0' && !check_owner(text))
            return value_error(error, "bad owner \"%s\" (want user or user:group)", text);
        replace_string(field, *text != '\0' ? g_strdup(text) : NULL);
        return TRUE;
    case VALUE_ACCOUNT:
        if (*text != '\0' && !check_account(text))
            return value_error(error,
                               "bad name \"%s\" (want 1..%d letters, digits, '.', '_' or '-', "
                               "not starting with '-')",
                               text, ACCOUNT_NAME_MAX);
        replace_string(field, *text != '\0' ? g_strdup(text) : NULL);
        return TRUE;
    case VALUE_FACILITY:
        if (!lookup_name(facilities, G_N_ELEMENTS(facilities), text, &word))
            return value_error(
                error, "bad facility \"%s\" (want mail, daemon, user or local0..local7)", text);
        *(int *)field = word;
        return TRUE;
    case VALUE_MODE:
        if (!parse_mode(text, field))
            return value_error(error, "bad mode \"%s\" (want octal 0..0777, e.g. 0660)", text);
        return TRUE;
    case VALUE_CONNECTIONS:
        if (parse_number(text, decimal_units, G_N_ELEMENTS(decimal_units), MAX_CONNECTIONS_MAX,
                         &number) != NUMBER_OK ||
            number < MAX_CONNECTIONS_MIN)
            return value_error(error, "bad number \"%s\" (want %d..%d)", text, MAX_CONNECTIONS_MIN,
                               MAX_CONNECTIONS_MAX);
        *(guint *)field = (guint)number;
        return TRUE;
    case VALUE_SIZE:
        switch (parse_number(text, size_units, G_N_ELEMENTS(size_units), G_MAXSIZE, &number)) {
        case NUMBER_BAD:
            return value_error(error, "bad size \"%s\" (" WANT_SIZE ")", text);
        case NUMBER_RANGE:
            return value_error(error,
                               "size \"%s\" is too large (at most %" G_GSIZE_FORMAT " bytes)", text,
                               (gsize)G_MAXSIZE);
        case NUMBER_OK:
            break;
        }
        *(gsize *)field = (gsize)number;
        return TRUE;
    case VALUE_REPLY:
        if (!lookup_name(reply_modes, G_N_ELEMENTS(reply_modes), text, &word))
            return value_error(error, "bad reply \"%s\" (want immediate or wait)", text);
        *(ShadowReplyMode *)field = (ShadowReplyMode)word;
        return TRUE;
    case VALUE_CONTENT:
        if (!lookup_name(content_modes, G_N_ELEMENTS(content_modes), text, &word))
            return value_error(error, "bad content \"%s\" (want chained or independent)", text);
        *(ShadowContentMode *)field = (ShadowContentMode)word;
        return TRUE;
    case VALUE_BOOLEAN:
        /* GKeyFile's words for booleans. */
        if (strcmp(text, "true") == 0 || strcmp(text, "1") == 0)
            *(gboolean *)field = TRUE;
        else if (strcmp(text, "false") == 0 || strcmp(text, "0") == 0)
            *(gboolean *)field = FALSE;
        else
            return value_error(error, "bad boolean \"%s\" (want true or false)", text);
        return TRUE;
    case VALUE_TIMEOUT:
        return set_timeout(rule, text, field, error);
    }
    g_return_val_if_reached(FALSE);
}

/* find_rule - the rule for key, or NULL */
static const KeyRule *
find_rule(const KeyRule *rules, gsize n, const char *key)
{
    for (gsize i = 0; i < n; i++)
        if (strcmp(rules[i].key, key) == 0)
            return &rules[i];
    return NULL;
}

/* apply_keys - check a group's keys in order and store their values at base */
static gboolean
apply_keys(const char *path, GKeyFile *kf, const ScanGroup *group, gboolean is_milter,
           gpointer base, GError **error)
{
    g_autoptr(GHashTable) seen = g_hash_table_new(g_str_hash, g_str_equal);
    const KeyRule *rules = is_milter ? milter_keys : shadowd_keys;
    gsize n_rules = is_milter ? G_N_ELEMENTS(milter_keys) : G_N_ELEMENTS(shadowd_keys);

    for (guint i = 0; i < group->keys->len; i++) {
        const ScanKey *key = &g_array_index(group->keys, ScanKey, i);
        g_autofree char *value = NULL;
        const KeyRule *rule;
        gpointer first;

        if (g_hash_table_lookup_extended(seen, key->name, NULL, &first)) {
            g_set_error(error, SHADOW_CONFIG_ERROR, SHADOW_CONFIG_ERROR_KEY,
                        "%s:%u: [%s] %s: duplicate key (first at line %u)", path, key->line,
                        group->name, key->name, GPOINTER_TO_UINT(first));
            return FALSE;
        }
        g_hash_table_insert(seen, key->name, GUINT_TO_POINTER(key->line));

        rule = find_rule(rules, n_rules, key->name);
        if (rule == NULL) {
            const char *hint = "";

            if (is_milter && find_rule(shadowd_keys, G_N_ELEMENTS(shadowd_keys), key->name))
                hint = " (it belongs in [" GROUP_SHADOWD "])";
            else if (!is_milter && find_rule(milter_keys, G_N_ELEMENTS(milter_keys), key->name))
                hint = " (it belongs in a [" GROUP_MILTER " NAME] group)";
            g_set_error(error, SHADOW_CONFIG_ERROR, SHADOW_CONFIG_ERROR_KEY,
                        "%s:%u: [%s] %s: unknown key%s", path, key->line, group->name, key->name,
                        hint);
            return FALSE;
        }

        value = read_value(kf, group->name, key->name, error);
        if (value == NULL || !set_value(rule, value, base, error)) {
            g_prefix_error(error, "%s:%u: [%s] %s: ", path, key->line, group->name, key->name);
            return FALSE;
        }
    }
    return TRUE;
}

/* group_error - SHADOW_CONFIG_ERROR_GROUP: "PATH:LINE: [GROUP]: what" */
static gboolean
group_error(GError **error, const char *path, const ScanGroup *group, const char *format, ...)
{
    g_autofree char *what = NULL;
    va_list ap;

    va_start(ap, format);
    what = g_strdup_vprintf(format, ap);
    va_end(ap);
    g_set_error(error, SHADOW_CONFIG_ERROR, SHADOW_CONFIG_ERROR_GROUP, "%s:%u: [%s]: %s", path,
                group->line, group->name, what);
    return FALSE;
}

/* valid_milter_name - 1..64 of letters, digits, '.', '_', '-' */
static gboolean
valid_milter_name(const char *name)
{
    gsize len = strlen(name);

    if (len == 0 || len > MILTER_NAME_MAX)
        return FALSE;
    for (const char *p = name; *p; p++)
        if (!g_ascii_isalnum(*p) && *p != '.' && *p != '_' && *p != '-')
            return FALSE;
    return TRUE;
}

/* has_key - the group has a key line for key */
static gboolean
has_key(const ScanGroup *group, const char *key)
{
    for (guint i = 0; i < group->keys->len; i++)
        if (strcmp(g_array_index(group->keys, ScanKey, i).name, key) == 0)
            return TRUE;
    return FALSE;
}

/* add_milter - check a [milter NAME] header and append its defaults to the chain */
static ShadowMilterConfig *
add_milter(ShadowConfig *config, const ScanGroup *group, GHashTable *names, GError **error)
{
    g_autofree char *name = NULL;
    ShadowMilterConfig *milter;
    gpointer first;

    if (strcmp(group->name, GROUP_MILTER) == 0)
        name = g_strdup("");
    else
        name = g_strstrip(g_strdup(group->name + strlen(GROUP_MILTER_PREFIX)));
    if (*name == '\0') {
        group_error(error, config->path, group,
                    "missing milter name (want [" GROUP_MILTER " NAME])");
        return NULL;
    }
    if (!valid_milter_name(name)) {
        group_error(error, config->path, group,
                    "bad milter name \"%s\" (want 1..%d letters, digits, '.', '_' or '-')", name,
                    MILTER_NAME_MAX);
        return NULL;
    }
    if (g_hash_table_lookup_extended(names, name, NULL, &first)) {
        group_error(error, config->path, group, "duplicate milter name \"%s\" (first at line %u)",
                    name, GPOINTER_TO_UINT(first));
        return NULL;
    }
    if (!has_key(group, "connect")) {
        g_set_error(error, SHADOW_CONFIG_ERROR, SHADOW_CONFIG_ERROR_KEY,
                    "%s:%u: [%s]: missing key connect", config->path, group->line, group->name);
        return NULL;
    }

    milter = g_new0(ShadowMilterConfig, 1);
    milter->name = g_steal_pointer(&name);
    milter->enabled = TRUE;
    milter->connect_timeout_ms = DEFAULT_CONNECT_TIMEOUT_MS;
    milter->command_timeout_ms = DEFAULT_COMMAND_TIMEOUT_MS;
    milter->eom_timeout_ms = DEFAULT_EOM_TIMEOUT_MS;
    milter->line = group->line;
    g_ptr_array_add(config->milters, milter);
    g_hash_table_insert(names, milter->name, GUINT_TO_POINTER(group->line));
    return milter;
}

/* apply_groups - check the scanned groups in file order and fill in config */
static gboolean
apply_groups(ShadowConfig *config, GKeyFile *kf, const GPtrArray *groups, GError **error)
{
    g_autoptr(GHashTable) seen = g_hash_table_new(g_str_hash, g_str_equal);
    g_autoptr(GHashTable) names = g_hash_table_new(g_str_hash, g_str_equal);

    for (guint i = 0; i < groups->len; i++) {
        const ScanGroup *group = g_ptr_array_index(groups, i);
        gpointer first;
        gpointer base;
        gboolean is_milter;

        if (g_hash_table_lookup_extended(seen, group->name, NULL, &first))
            return group_error(error, config->path, group, "duplicate group (first at line %u)",
                               GPOINTER_TO_UINT(first));
        g_hash_table_insert(seen, group->name, GUINT_TO_POINTER(group->line));

        is_milter = strcmp(group->name, GROUP_MILTER) == 0 ||
                    g_str_has_prefix(group->name, GROUP_MILTER_PREFIX);
        if (strcmp(group->name, GROUP_SHADOWD) == 0)
            base = config;
        else if (is_milter)
            base = add_milter(config, group, names, error);
        else
            return group_error(error, config->path, group,
                               "unknown group (want [" GROUP_SHADOWD "] or [" GROUP_MILTER
                               " NAME])");
        if (base == NULL)
            return FALSE;
        if (!apply_keys(config->path, kf, group, is_milter, base, error))
            return FALSE;
    }
    return TRUE;
}

/* shadow_config_load - read, check and return path's configuration */
ShadowConfig *
shadow_config_load(const char *path, GError **error)
{
    g_autoptr(GKeyFile) kf = g_key_file_new();
    g_autoptr(GError) local = NULL;
    g_autoptr(GPtrArray) groups = NULL;
    g_autoptr(ShadowConfig) config = NULL;
    g_autofree char *text = NULL;
    gsize len = 0;

    g_return_val_if_fail(path != NULL, NULL);
    g_return_val_if_fail(error == NULL || *error == NULL, NULL);

    if (!g_file_get_contents(path, &text, &len, error))
        return NULL;
    if (!check_text(path, text, len, error))
        return NULL;
    blank_semicolon_comments(text, len);
    if (!g_key_file_load_from_data(kf, text, len, G_KEY_FILE_NONE, &local)) {
        syntax_error(error, path, syntax_line(text, len), local->message);
        return NULL;
    }
    groups = scan_text(path, text, len, error);
    if (groups == NULL)
        return NULL;

    config = shadow_config_new_default();
    config->path = g_strdup(path);
    if (!apply_groups(config, kf, groups, error))
        return NULL;
    return g_steal_pointer(&config);
}
