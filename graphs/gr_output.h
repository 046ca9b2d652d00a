/* SPDX-License-Identifier: MIT */
/*
 * NAME
 *	gr_output - every graph, chart and the page for the hosts of a model
 * SYNOPSIS
 *	#include "gr_output.h"
 *
 *	gboolean gr_output_discover(GrModel *m, GrStore *s, GError **error);
 *	gboolean gr_output_write(const GrOutputOptions *o, GrModel *m, GrStore *s,
 *	                         GError **error);
 * DESCRIPTION
 *	A scope is what one section of the page shows: one host, or, with
 *	several hosts, all of them merged (directory "_all": no cleaned host
 *	name starts with '_', see gr_name_clean). For each scope and
 *	period it draws the chain graph, each milter's action and latency
 *	graphs, the share-blocked chart and the agreement matrix into
 *	OUT/SCOPE/NAME-PERIOD.{png,svg}, then writes OUT/index.html and
 *	OUT/summary.json (the totals shown, per scope, period and series).
 */
#ifndef GR_OUTPUT_H
#define GR_OUTPUT_H

/* GLib. */
#include <glib.h>

/* Application-specific. */
#include "gr_model.h"
#include "gr_store.h"

G_BEGIN_DECLS

/* The directory of the merged view of several hosts. */
#define GR_ALL_HOSTS "_all"

/* GrOutputOptions - what the page needs besides the data */
typedef struct {
    const char *out_dir;
    const char *const *chain_order; /* milter names from shadowd.conf, or NULL */
    double mta_timeout_ms;
    gint64 now;           /* seconds: the graphs end at min(now, data end) */
    gint64 update_time;   /* seconds: shown as the time of the last update */
    guint64 run_messages; /* messages counted by this run */
} GrOutputOptions;

gboolean gr_output_discover(GrModel *m, GrStore *s, GError **error);
gboolean gr_output_write(const GrOutputOptions *o, GrModel *m, GrStore *s, GError **error);

G_END_DECLS

#endif /* GR_OUTPUT_H */
