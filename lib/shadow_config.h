/* SPDX-License-Identifier: MIT */
/*
 * NAME
 *	shadow_config - shadowd.conf: load, validate, and the address forms
 * SYNOPSIS
 *	#include "shadow_config.h"
 *
 *	ShadowConfig *shadow_config_load(const char *path, GError **error);
 *	gboolean shadow_address_parse(const char *spec, ShadowAddress *out, GError **error);
 * DESCRIPTION
 *	A GKeyFile with one [shadowd] group and one [milter NAME] group per
 *	child, in chain order. conf/shadowd.conf ships every key with its
 *	default, commented. Every key has a default, so an empty file is valid
 *	(shadowd with no children: it accepts and logs connections only).
 *
 *	Addresses: unix:/path, inet:PORT@HOST, inet6:PORT@HOST (Sendmail's and
 *	milter-manager's forms) and inet:HOST:PORT (Postfix's; an IPv6 HOST
 *	goes in brackets: inet:[::1]:8891).
 *
 *	Durations: an integer with a unit, ms, s, m or h ("250ms", "7s",
 *	"5m"); a bare integer is seconds. Sizes: an integer with an optional
 *	k, M or G suffix (powers of 1024); a bare integer is bytes.
 * DIAGNOSTICS
 *	SHADOW_CONFIG_ERROR; every message starts "FILE:LINE: " and names the
 *	group and key, e.g.
 *	"/etc/shadowd/shadowd.conf:12: [milter spamd] connect_timeout: bad duration \"5x\"".
 *	A missing file is G_FILE_ERROR_NOENT with the path in the message.
 */
#ifndef SHADOW_CONFIG_H
#define SHADOW_CONFIG_H

/* GLib. */
#include <glib.h>

G_BEGIN_DECLS

#define SHADOW_CONFIG_ERROR (shadow_config_error_quark())
GQuark shadow_config_error_quark(void);

/* ShadowConfigError - what was wrong with the file */
typedef enum {
    SHADOW_CONFIG_ERROR_SYNTAX, /* not a key file (GKeyFile's own error, with line) */
    SHADOW_CONFIG_ERROR_GROUP,  /* unknown or duplicate group, bad milter name */
    SHADOW_CONFIG_ERROR_KEY,    /* unknown or duplicate key */
    SHADOW_CONFIG_ERROR_VALUE,  /* a value that does not parse or is out of range */
} ShadowConfigError;

/* ShadowAddressKind - socket family of an address */
typedef enum {
    SHADOW_ADDRESS_UNIX,
    SHADOW_ADDRESS_INET,  /* IPv4 address or host name resolved to IPv4 */
    SHADOW_ADDRESS_INET6, /* IPv6 address or host name resolved to IPv6 */
} ShadowAddressKind;

/* ShadowAddress - a parsed socket address */
typedef struct {
    ShadowAddressKind kind;
    char *spec;   /* as written, for messages */
    char *path;   /* unix */
    char *host;   /* inet, inet6: as written, without brackets */
    guint16 port; /* inet, inet6 */
} ShadowAddress;

/* ShadowReplyMode - when the MTA gets its answer */
typedef enum {
    SHADOW_REPLY_IMMEDIATE, /* at once; children run behind on a bounded buffer */
    SHADOW_REPLY_WAIT,      /* after the children, within their timeouts */
} ShadowReplyMode;

/* ShadowContentMode - what message the children see */
typedef enum {
    SHADOW_CONTENT_CHAINED,     /* child N sees children 1..N-1's edits */
    SHADOW_CONTENT_INDEPENDENT, /* every child sees the original */
} ShadowContentMode;

/* ShadowMilterConfig - one [milter NAME] group */
typedef struct {
    char *name;               /* NAME: letters, digits, '.', '_', '-' */
    ShadowAddress connect;    /* key connect (required) */
    gboolean enabled;         /* key enabled, default true */
    guint connect_timeout_ms; /* key connect_timeout, default 5s */
    guint command_timeout_ms; /* key command_timeout, default 7s */
    guint eom_timeout_ms;     /* key eom_timeout, default 60s */
    guint line;               /* line of the group header, for messages */
} ShadowMilterConfig;

/* ShadowConfig - the whole file */
typedef struct {
    char *path;            /* as given to shadow_config_load() */
    ShadowAddress listen;  /* key listen, default inet:8899@127.0.0.1 */
    char *event_log;       /* key event_log, default /var/log/shadowd/events.log */
    char *pid_file;        /* key pid_file, default /run/shadowd/shadowd.pid */
    int syslog_facility;   /* key syslog_facility (mail, daemon, local0..local7), default mail */
    char *syslog_ident;    /* key syslog_ident, default shadowd */
    guint socket_mode;     /* key socket_mode, octal, default 0660 */
    char *socket_owner;    /* key socket_owner, "user" or "user:group", default NULL (unchanged) */
    guint max_connections; /* key max_connections, default 256, 1..65535 */
    gsize spool_memory;    /* key spool_memory, default 1M: message bytes kept in memory */
    gsize spool_memory_total;  /* key spool_memory_total, default 32M: all messages together */
    char *spool_dir;           /* key spool_dir, default /var/tmp: for larger messages */
    gsize max_message;         /* key max_message, default 64M: larger messages are not shadowed */
    gsize backlog;             /* key backlog, default 4M: bytes queued per child before overflow */
    ShadowReplyMode reply;     /* key reply, immediate | wait, default immediate */
    ShadowContentMode content; /* key content, chained | independent, default chained */
    char *host;                /* key host, default: the machine's host name */
    char *user;                /* key user: drop to this user when started as root, default NULL */
    char *group;               /* key group: and this group, default NULL (the user's own group) */
    gboolean allow_root;       /* key allow_root: go on as root without user, default false */
    GPtrArray *milters;        /* ShadowMilterConfig *, in file (chain) order, enabled or not */
} ShadowConfig;

ShadowConfig *shadow_config_load(const char *path, GError **error);
ShadowConfig *shadow_config_new_default(void);
void shadow_config_free(ShadowConfig *config);
gboolean shadow_address_parse(const char *spec, ShadowAddress *out, GError **error);
void shadow_address_clear(ShadowAddress *address);
gboolean shadow_parse_duration_ms(const char *text, guint *out_ms);
gboolean shadow_parse_size(const char *text, gsize *out);

G_DEFINE_AUTOPTR_CLEANUP_FUNC(ShadowConfig, shadow_config_free)

G_END_DECLS

#endif /* SHADOW_CONFIG_H */
