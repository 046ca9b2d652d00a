/* SPDX-License-Identifier: MIT */
/*
 * NAME
 *	shadow_logread - read shadowd event logs: plain or gzip, several merged in time order
 * SYNOPSIS
 *	#include "shadow_logread.h"
 *
 *	g_autoptr(ShadowLogReader) r = shadow_log_reader_new();
 *	shadow_log_reader_set_damage_func(r, report_damage, NULL);
 *	shadow_log_reader_set_range(r, since_ms, until_ms);
 *	if (!shadow_log_reader_add(r, "/var/log/shadowd/events.log.1.gz", &error)) ...
 *	const ShadowLogRecord *rec;
 *	while ((rec = shadow_log_reader_next(r, &error)) != NULL) ...
 *	if (error != NULL) ...   // a read error, not a damaged line
 * DESCRIPTION
 *	Reads the JSON Lines event log of docs/event-log.md (format version 1)
 *	with a scanner of its own: each line is copied into an arena and
 *	decoded in place (strings unescaped where they lie), so a record costs
 *	no allocation once the arena has grown to the largest record, and
 *	memory stays flat however long the log is.
 *
 *	Files are opened with zlib's gzread, so plain and gzip-compressed logs
 *	(events.log.1.gz) read alike; "-" is standard input. Each file is a
 *	stream in time order; with several files (rotated generations, several
 *	hosts) the next record is the earliest head of all of them, ties going
 *	to the file added first.
 *
 *	With up to four files, each is read ahead by a thread of its own and
 *	parsed in batches by a pool of one worker per processor; with more
 *	(a glob of a year of rotated logs), each is read on the caller's
 *	thread with small buffers. Either way a few megabytes per file at
 *	most, whatever the files' length.
 *
 *	A message comes as one record: shadowd writes its verdict records,
 *	one per child in chain order, just before the message record, so the
 *	reader gathers them and hands out a ShadowLogMessage with its
 *	verdicts attached. Connection records come as ShadowLogConnection.
 *
 *	Every string and array of a record points into the reader's memory:
 *	valid until the next shadow_log_reader_next() or shadow_log_reader_free().
 *	An absent or null string field is NULL.
 *
 *	A damaged line (torn, not JSON, a field missing or of the wrong type, a
 *	format version other than 1, an unknown record type, verdicts with no
 *	message record after them) is counted, passed to the damage function
 *	with its file and line number, and skipped; reading goes on with the
 *	next line. Fields the reader does not know are ignored, as the format
 *	allows.
 *
 *	Records outside [since, until) are skipped (after parsing, so damage in
 *	them is still reported).
 *
 *	Tail mode (shadow_log_reader_set_tail) is for readers that come back
 *	later, like shadow-graphs: a last line without its newline may be a
 *	record still being written, so it is left unread (not damage), and
 *	verdicts waiting at end of file for their message record are left too;
 *	shadow_log_reader_resume_offset() says where to start next time.
 */
#ifndef SHADOW_LOGREAD_H
#define SHADOW_LOGREAD_H

/* GLib. */
#include <glib.h>

/* Library. */
#include "shadow_verdict.h"

G_BEGIN_DECLS

/* The event log format version this reader knows. */
#define SHADOW_LOG_VERSION 1
/* A line longer than this is damage (shadowd's longest records are far below it). */
#define SHADOW_LOG_MAX_LINE (16 * 1024 * 1024)
/* Verdict records gathered for one message before its message record; more is damage. */
#define SHADOW_LOG_MAX_VERDICTS 256

#define SHADOW_LOG_ERROR (shadow_log_error_quark())
GQuark shadow_log_error_quark(void);

/* ShadowLogError - why a file could not be read (damaged lines are not errors) */
typedef enum {
    SHADOW_LOG_ERROR_OPEN, /* could not open: message names the file */
    SHADOW_LOG_ERROR_READ, /* read or decompression error: message names file and line */
} ShadowLogError;

/* ShadowLogKind - what a ShadowLogRecord holds */
typedef enum {
    SHADOW_LOG_CONNECTION,
    SHADOW_LOG_MESSAGE,
} ShadowLogKind;

/* ShadowLogRcpt - a refused recipient (verdict "rcpts", message "refused") */
typedef struct {
    const char *rcpt;
    ShadowAction action; /* REJECT or TEMPFAIL */
    const char *reply;   /* NULL: the MTA's default */
    const char *milter;  /* message "refused" only: who refused it; else NULL */
} ShadowLogRcpt;

/* ShadowLogEdit - one edit (docs/event-log.md, Edits) */
typedef struct {
    const char *op;     /* "add_header", "insert_header", ..., as written */
    const char *milter; /* message "edits" only; else NULL */
    const char *name;   /* header ops */
    const char *value;  /* header ops */
    const char *addr;   /* change_from, add_rcpt, delete_rcpt */
    const char *args;   /* change_from, add_rcpt; NULL when absent */
    gint64 index;       /* insert/change/delete_header; -1 when absent */
    gint64 size;        /* replace_body; -1 when absent */
} ShadowLogEdit;

/* ShadowLogVerdict - one child's verdict record */
typedef struct {
    gint64 ts_ms;
    const char *milter;
    ShadowAction action;
    ShadowStage stage; /* SHADOW_STAGE_NONE when null or "none" */
    gboolean connection;
    const char *reply;
    const char *reason;
    const char *quarantine; /* non-NULL: it would have quarantined (held) the message */
    const ShadowLogRcpt *rcpts;
    guint n_rcpts;
    const ShadowLogEdit *edits;
    guint n_edits;
    gint64 latency_us[SHADOW_STAGE_COUNT]; /* -1: absent (not answered, or under 1 us) */
} ShadowLogVerdict;

/* ShadowLogMessage - a message record with its verdicts */
typedef struct {
    gint64 ts_ms;
    const char *host;
    const char *conn;
    const char *msg;
    const char *queue_id;
    const char *message_id;
    const char *client_addr;
    const char *client_name;
    const char *helo;
    const char *auth;
    const char *from;
    const char *const *rcpts;
    guint n_rcpts;
    gint64 size;        /* -1 when null */
    gboolean mta_ended; /* "mta": "ended"; FALSE for "aborted" */
    ShadowOutcome outcome;
    const char *decided_by;
    ShadowStage stage;
    const char *reply;
    const char *quarantine;
    const ShadowLogRcpt *refused;
    guint n_refused;
    const ShadowLogEdit *edits;
    guint n_edits;
    const char *const *unknown;
    guint n_unknown;
    gint64 duration_ms;               /* -1 when null */
    const ShadowLogVerdict *verdicts; /* in chain order */
    guint n_verdicts;
} ShadowLogMessage;

/* ShadowLogConnMilter - one child in a connection close record */
typedef struct {
    const char *milter;
    const char *state; /* "ok", "error", "timeout", "unavailable", "overflow" */
    const char *reason;
} ShadowLogConnMilter;

/* ShadowLogConnection - a connection open or close record */
typedef struct {
    gint64 ts_ms;
    const char *host;
    const char *conn;
    gboolean open; /* "event": "open"; FALSE for "close" */
    const char *client_addr;
    const char *client_name;
    const char *client_port;
    const char *helo;                   /* close only */
    gint64 messages;                    /* close only; else -1 */
    gint64 errors;                      /* close only; else -1 */
    gint64 duration_ms;                 /* close only; else -1 */
    const ShadowLogConnMilter *milters; /* close only */
    guint n_milters;
} ShadowLogConnection;

/* ShadowLogRecord - what shadow_log_reader_next() hands out */
typedef struct {
    ShadowLogKind kind;
    const char *file; /* the path as added */
    guint64 line;     /* line number of the record (for a message: of its message record) */
    union {
        ShadowLogConnection connection;
        ShadowLogMessage message;
    };
} ShadowLogRecord;

/* ShadowLogDamageFunc - told of each damaged line; what says what is wrong */
typedef void (*ShadowLogDamageFunc)(const char *file, guint64 line, const char *what,
                                    gpointer data);

typedef struct _ShadowLogReader ShadowLogReader;

ShadowLogReader *shadow_log_reader_new(void);
void shadow_log_reader_free(ShadowLogReader *r);
void shadow_log_reader_set_damage_func(ShadowLogReader *r, ShadowLogDamageFunc func, gpointer data);
void shadow_log_reader_set_range(ShadowLogReader *r, gint64 since_ms, gint64 until_ms);
void shadow_log_reader_set_tail(ShadowLogReader *r, gboolean tail);
gboolean shadow_log_reader_add(ShadowLogReader *r, const char *path, GError **error);
gboolean shadow_log_reader_add_at(ShadowLogReader *r, const char *path, guint64 offset,
                                  guint64 first_line, GError **error);
const ShadowLogRecord *shadow_log_reader_next(ShadowLogReader *r, GError **error);
guint64 shadow_log_reader_damaged(const ShadowLogReader *r);
guint64 shadow_log_reader_resume_offset(const ShadowLogReader *r, const char *path, guint64 *line);

/* Parsing one record line on its own (for tests and fuzzing). */
gboolean shadow_log_parse_time(const char *s, gsize len, gint64 *ms);
gboolean shadow_log_stage_parse(const char *s, ShadowStage *out);
gboolean shadow_log_action_parse(const char *s, ShadowAction *out);
gboolean shadow_log_outcome_parse(const char *s, ShadowOutcome *out);

/* A verdict record as shadow_predict() takes it (for what-if folds). */
ShadowVerdict *shadow_log_verdict_to_verdict(const ShadowLogVerdict *v);

G_DEFINE_AUTOPTR_CLEANUP_FUNC(ShadowLogReader, shadow_log_reader_free)

G_END_DECLS

#endif /* SHADOW_LOGREAD_H */
