/* SPDX-License-Identifier: MIT */
/*
 * NAME
 *	gr_ingest - read what is new in the event logs into the model, across rotation
 * SYNOPSIS
 *	#include "gr_ingest.h"
 *
 *	gboolean gr_ingest(GrState *st, GrModel *m, const char *const *logs,
 *	                   GArray *positions, GError **error);
 * DESCRIPTION
 *	Each log resumes where the state says (shadow_log_reader_add_at, tail
 *	mode). When the path's inode is no longer the saved one, the log was
 *	rotated: the old file is looked for as PATH.1 (same device and inode)
 *	and read to its end from the saved offset, then the new file from the
 *	start; the reader merges them in time order. A file shorter than the
 *	saved offset, or whose byte before it is no longer a newline, was
 *	truncated in place (copytruncate) and is read from the start. Damaged
 *	lines are reported as FILE:LINE: WHAT on standard error and skipped. POSITIONS receives one GrLogPos per log (where to resume).
 */
#ifndef GR_INGEST_H
#define GR_INGEST_H

/* GLib. */
#include <glib.h>

/* Application-specific. */
#include "gr_model.h"
#include "gr_state.h"

G_BEGIN_DECLS

/* Logs on one command line, at most. */
#define GR_MAX_LOGS 256

gboolean gr_ingest(GrState *st, GrModel *m, const char *const *logs, GArray *positions,
                   guint64 *damaged, GError **error);
void gr_log_pos_clear(gpointer p);

G_END_DECLS

#endif /* GR_INGEST_H */
