/* SPDX-License-Identifier: MIT */
/*
 * NAME
 *	gr_model - per host, per minute counts of what the milters and the chain would have done
 * SYNOPSIS
 *	#include "gr_model.h"
 *
 *	GrModel *gr_model_new(GrStore *store);
 *	gboolean gr_model_add_message(GrModel *m, const ShadowLogMessage *msg, gboolean unsaved,
                              GError **error);
 *	gboolean gr_model_finish(GrModel *m, gint64 horizon, GError **error);
 * DESCRIPTION
 *	Counts are kept for one minute per host (the "pending" minute: that of
 *	the latest message). When a message of a later minute comes, the
 *	pending minute is complete and is queued for every file of the host:
 *	its counts at the end of the minute, preceded, after a gap, by an
 *	explicit zero update at the start of it (so the gap reads as zeros).
 *	Every file of a host is updated for every written minute, so a milter
 *	that saw nothing gets zeros.
 *
 *	A message of a log the state has no position for (UNSAVED: a new
 *	log, or one given under a name the state does not know) may repeat
 *	what the restored pending minute holds: when it falls in that minute,
 *	the restored counts are dropped (with a warning) and the minute is
 *	counted again from the logs.
 *
 *	A host or milter name is cleaned for file names (gr_name_clean): a
 *	name that had to change, and the page's own file names, get "-" and
 *	8 hex digits of an FNV-1a hash of the name as logged, so two names
 *	never share a series. Hosts past GR_MAX_HOSTS are named once on
 *	standard error and their messages skipped; reading goes on.
 *
 *	A message whose minute ends at or before what the host's files already
 *	hold is not counted (it was, by an earlier run) and is counted as late.
 *
 *	gr_model_finish() writes the pending minute if it ended before HORIZON
 *	and fills zeros up to HORIZON (or up to the pending minute). A pending
 *	minute that is not complete stays in memory and goes to the state file,
 *	with the log positions after it, so the next run goes on with it.
 *
 *	What is counted for a message: the chain's outcome, and "incomplete"
 *	when a child gave no verdict; per verdict its action ("quarantine"
 *	when it would have held the message and not refused it; "error" is
 *	error, unavailable and overflow), its latency (sum over stages, in ms)
 *	and, for each pair of milters with a verdict on the message, whether
 *	both or either would have blocked it (reject, tempfail or discard).
 */
#ifndef GR_MODEL_H
#define GR_MODEL_H

/* GLib. */
#include <glib.h>

/* Shadow libraries. */
#include "shadow_logread.h"

/* Application-specific. */
#include "gr_store.h"

G_BEGIN_DECLS

/* Hosts and milters per host, at most; more are reported once and not graphed. */
#define GR_MAX_HOSTS   64
#define GR_MAX_MILTERS 32
/* Hosts past GR_MAX_HOSTS named on standard error per run, at most. */
#define GR_MAX_SKIPPED 64
/*
 * New files start on a row boundary of the coarsest archive (3360 steps), so no consolidated row
 * is part unknown (which with xff 0.5 could make it unknown, or with a larger xff extrapolate); the
 * time from there to the first minute written reads as zeros.
 */
#define GR_START_ALIGN (3360 * GR_STEP)
/* Host and milter names are cut to this many bytes (with the hash a changed name gets). */
#define GR_NAME_MAX 64
/* "-" and 8 hex digits of the hash */
#define GR_NAME_HASH_LEN 9
/* FNV-1a, 32 bits */
#define GR_FNV32_BASIS 2166136261u
#define GR_FNV32_PRIME 16777619u

/* GrMilter - one milter of one host */
typedef struct {
    char *name;
    double c[GR_M_COUNT];
    double lat[GR_L_COUNT];
    GrFile *file;
    GrFile *lat_file;
} GrMilter;

/* GrPair - two milters of one host */
typedef struct {
    double c[GR_P_COUNT];
    GrFile *file;
} GrPair;

/* GrHost - the series of one host */
typedef struct {
    char *name;
    GPtrArray *milters; /* GrMilter *, in order of first appearance */
    GHashTable *index;  /* name -> index + 1 */
    GrPair **pairs;     /* [i * GR_MAX_MILTERS + j], i < j; NULL until seen */
    double chain[GR_C_COUNT];
    GrFile *chain_file;
    gint64 pending;    /* start of the minute the counts are for; -1: none */
    gboolean restored; /* the pending counts came from the state file */
    gint64 written;    /* end of the last minute written */
    gint64 first_ts;   /* first and last message times seen, ms; -1: none */
    gint64 last_ts;
    guint64 late;     /* messages not counted this run: their minute was written */
    guint64 messages; /* counted this run */
    gboolean overflow_warned;
    char *cache_raw[GR_MAX_MILTERS]; /* milter names of its previous message, as logged */
    gint cache_idx[GR_MAX_MILTERS];
    guint cache_n;
} GrHost;

typedef struct _GrModel GrModel;

GrModel *gr_model_new(GrStore *store);
void gr_model_free(GrModel *m);
GPtrArray *gr_model_hosts(GrModel *m);
GrHost *gr_model_host(GrModel *m, const char *name);
gint gr_model_milter(GrModel *m, GrHost *h, const char *name, GError **error);
GrPair *gr_model_pair(GrModel *m, GrHost *h, guint i, guint j, GError **error);
gboolean gr_model_add_message(GrModel *m, const ShadowLogMessage *msg, gboolean unsaved,
                              GError **error);
gboolean gr_model_finish(GrModel *m, gint64 horizon, GError **error);
char *gr_name_clean(const char *name);

G_DEFINE_AUTOPTR_CLEANUP_FUNC(GrModel, gr_model_free)

G_END_DECLS

#endif /* GR_MODEL_H */
