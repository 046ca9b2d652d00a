/* SPDX-License-Identifier: MIT */
/*
 * NAME
 *	gr_state - shadow-graphs' state file: log positions and the minute not yet written
 * SYNOPSIS
 *	#include "gr_state.h"
 *
 *	GrState *gr_state_load(const char *path, GError **error);
 *	gboolean gr_state_log(GrState *st, const char *canonical_path, GrLogPos *out,
 *	                      GError **error);
 *	gboolean gr_state_restore(GrState *st, GrModel *m, GError **error);
 *	gboolean gr_state_save(GrState *st, GrModel *m, const GrLogPos *logs, guint n,
 *	                       GError **error);
 * DESCRIPTION
 *	A key file (GKeyFile). One [log N] group per log (N = 1, 2...): its
 *	canonical path (path; bytes outside '!'..'~' and '\\' written \\OOO,
 *	so any path works), device, inode, offset and line to resume at, the
 *	fingerprint of the bytes before the offset (16 hex digits) and the
 *	time of its last record. Logs of earlier runs that this run did not
 *	read keep their groups. A [log PATH] group (no path key) of an older
 *	state file is read as the position of PATH. One
 *	[host NAME] group per host: its milters in order of first appearance,
 *	the time span of its messages, and its pending minute with the counts
 *	gathered for it so far (pending_minute=-1: none).
 *
 *	The file is written to a temporary name, synced and renamed over the
 *	old one, so a crash leaves the old state or the new one, never half.
 * DIAGNOSTICS
 *	GKeyFile's own errors (with a line number) for syntax; for values
 *	"STATE: [GROUP] KEY: bad value \"TEXT\"".
 */
#ifndef GR_STATE_H
#define GR_STATE_H

/* GLib. */
#include <glib.h>

/* Application-specific. */
#include "gr_model.h"

G_BEGIN_DECLS

/* The state file format this program writes and reads. */
#define GR_STATE_VERSION 1

/* Hex digits of a fingerprint. */
#define GR_FP_HEX 16

/* GrLogPos - where reading a log resumes */
typedef struct {
    char *path; /* as given */
    char *key;  /* canonical (realpath): what the state knows it by */
    guint64 device;
    guint64 inode;
    guint64 offset;
    guint64 line;
    gint64 last_ts; /* ms; -1: none */
    gboolean has_fingerprint;
    guint64 fingerprint; /* of the bytes before offset, see gr_ingest.h */
    gboolean unsaved;    /* the state had no position for it: read from its start */
} GrLogPos;

typedef struct _GrState GrState;

GrState *gr_state_load(const char *path, GError **error);
void gr_state_free(GrState *st);
gboolean gr_state_log(GrState *st, const char *log, GrLogPos *out, GError **error);
gboolean gr_state_restore(GrState *st, GrModel *m, GError **error);
gboolean gr_state_save(GrState *st, GrModel *m, const GrLogPos *logs, guint n, GError **error);
gint64 gr_state_updated(GrState *st);

G_DEFINE_AUTOPTR_CLEANUP_FUNC(GrState, gr_state_free)

G_END_DECLS

#endif /* GR_STATE_H */
