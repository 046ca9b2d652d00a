/* SPDX-License-Identifier: MIT */
/*
 * NAME
 *	gr_store - RRD files of shadow-graphs: create, last update, batched updates, totals
 * SYNOPSIS
 *	#include "gr_store.h"
 *
 *	GrStore *gr_store_new(const char *dir, const char *daemon, GError **error);
 *	GrFile *gr_store_file(GrStore *s, GrKind kind, const char *host, const char *name,
 *	                      gint64 start, GError **error);
 *	void gr_file_append(GrFile *f, gint64 ts, const double *v);
 *	gboolean gr_store_flush(GrStore *s, GError **error);
 *	gboolean gr_store_totals(GrStore *s, const char *path, gint64 start, gint64 end,
 *	                         gint64 res, double *out, guint n, GError **error);
 * DESCRIPTION
 *	Every RRD has a 60 s step and the same archives: AVERAGE and MAX at 1,
 *	8, 56, 280 and 3360 steps (1.1 days, then 198 rows each: a day, a week,
 *	35 days and 420 days), as mailgraph and milter manager's log analyzer
 *	have. Counts are ABSOLUTE data sources, so a row's rate times its
 *	length is the number of events in it and totals over a period are
 *	right. The heartbeat is longer than the longest archive, so a gap
 *	that the caller closes with an explicit zero update reads as zeros,
 *	never as unknown or interpolated.
 *
 *	Files are named KIND-NAME@HOST.rrd (KIND milter, latency, pair) or
 *	chain@HOST.rrd in one directory; '@' occurs in no milter or host name.
 *
 *	Updates are queued per file ("ts:v:v:...") and written in batches with
 *	one rrd_update_r (or rrdc_update, with a daemon) per file and batch.
 *	A file knows its last update time; an update at or before it is
 *	dropped, so re-reading a log never counts a minute twice.
 *
 *	With a daemon address (as rrdtool's --daemon: unix:/path or host:port)
 *	creation, updates, last-update queries and fetches go to rrdcached.
 */
#ifndef GR_STORE_H
#define GR_STORE_H

/* GLib. */
#include <glib.h>

G_BEGIN_DECLS

/* The RRD step: one row per minute. */
#define GR_STEP 60
/* Longer than the longest archive (420 days), so gaps closed by a zero update read as zeros. */
#define GR_HEARTBEAT (430 * 86400)
/* Queued updates per file before they are written. */
#define GR_BATCH 512
/* Data sources in one file, at most. */
#define GR_MAX_DS 16

#define GR_STORE_ERROR (gr_store_error_quark())
GQuark gr_store_error_quark(void);

/* GrStoreError - what failed in librrd or rrdcached */
typedef enum {
    GR_STORE_ERROR_RRD, /* librrd or rrdcached said no: message names the file */
} GrStoreError;

/* GrKind - what a file holds */
typedef enum {
    GR_KIND_MILTER,  /* one milter's would-be actions */
    GR_KIND_LATENCY, /* one milter's latency */
    GR_KIND_CHAIN,   /* the chain's predicted outcomes */
    GR_KIND_PAIR,    /* two milters' agreement: NAME is "A+B" */
    GR_KIND_COUNT,
} GrKind;

/* Milter data sources (GR_KIND_MILTER), in file order. */
enum {
    GR_M_SEEN,
    GR_M_CONTINUE,
    GR_M_ACCEPT,
    GR_M_REJECT,
    GR_M_TEMPFAIL,
    GR_M_DISCARD,
    GR_M_QUARANTINE,
    GR_M_ERROR,
    GR_M_TIMEOUT,
    GR_M_COUNT,
};

/* Chain data sources (GR_KIND_CHAIN). */
enum {
    GR_C_SEEN,
    GR_C_DELIVERED,
    GR_C_REJECTED,
    GR_C_TEMPFAILED,
    GR_C_DISCARDED,
    GR_C_QUARANTINED,
    GR_C_INCOMPLETE,
    GR_C_COUNT,
};

/* Latency data sources (GR_KIND_LATENCY): answered messages, sum and maximum in ms. */
enum {
    GR_L_N,
    GR_L_SUM,
    GR_L_MAX,
    GR_L_COUNT,
};

/* Pair data sources (GR_KIND_PAIR). */
enum {
    GR_P_BOTH_SEEN,    /* messages both milters gave a verdict on */
    GR_P_BOTH_BLOCK,   /* ... both would have blocked */
    GR_P_EITHER_BLOCK, /* ... at least one would have blocked */
    GR_P_COUNT,
};

/* GrFile - one RRD file and its queued updates */
typedef struct {
    char *path;
    GrKind kind;
    gint64 last;      /* last update time (queued included) */
    GPtrArray *queue; /* char *: "ts:v:..." not yet written */
} GrFile;

typedef struct _GrStore GrStore;

GrStore *gr_store_new(const char *dir, const char *daemon, GError **error);
void gr_store_free(GrStore *s);
const char *gr_store_daemon(const GrStore *s);
const char *gr_store_dir(const GrStore *s);
guint gr_kind_n_ds(GrKind kind);
const char *const *gr_kind_ds_names(GrKind kind);
char *gr_store_path(const GrStore *s, GrKind kind, const char *host, const char *name);
GrFile *gr_store_file(GrStore *s, GrKind kind, const char *host, const char *name, gint64 start,
                      GError **error);
void gr_file_append(GrStore *s, GrFile *f, gint64 ts, const double *v);
gboolean gr_store_flush(GrStore *s, GError **error);
gboolean gr_store_totals(GrStore *s, const char *path, gint64 start, gint64 end, gint64 res,
                         double *out, guint n, GError **error);
gint64 gr_store_last(GrStore *s, const char *path);

G_DEFINE_AUTOPTR_CLEANUP_FUNC(GrStore, gr_store_free)

G_END_DECLS

#endif /* GR_STORE_H */
