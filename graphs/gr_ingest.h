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
 *	Each log is known to the state by its canonical path (realpath), so
 *	a log given as a relative path, an absolute one or through a symlink
 *	keeps its place. It resumes where the state says
 *	(shadow_log_reader_add_at, tail mode). When the path's inode is no
 *	longer the saved one, the log was rotated: the old file is looked for
 *	as PATH.1 (same device and inode) and read to its end from the saved
 *	offset, then the new file from the start; the reader merges them in
 *	time order.
 *
 *	The state keeps a fingerprint of each log: FNV-1a (64 bits) of the
 *	GR_FP_BYTES bytes before the saved offset. A file of the same inode
 *	that is shorter than the offset, or whose bytes before it no longer
 *	have that fingerprint (truncated and written again past it), was
 *	truncated in place (copytruncate): PATH.1 is read from the saved
 *	offset when its bytes before it have the fingerprint (the copy), then
 *	PATH from the start; with no such copy, the run says that events may
 *	have been lost. A log the state has no position for is read from its
 *	start (see gr_model_add_message for the pending minute).
 *
 *	Damaged lines are reported as FILE:LINE: WHAT on standard error and
 *	skipped. POSITIONS receives one GrLogPos per log (where to resume).
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
/* Bytes before the saved offset the fingerprint covers. */
#define GR_FP_BYTES 4096

gboolean gr_ingest(GrState *st, GrModel *m, const char *const *logs, GArray *positions,
                   guint64 *damaged, GError **error);
void gr_log_pos_clear(gpointer p);

G_END_DECLS

#endif /* GR_INGEST_H */
