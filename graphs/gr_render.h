/* SPDX-License-Identifier: MIT */
/*
 * NAME
 *	gr_render - RRD graphs (PNG and SVG) of would-be actions, chain outcomes and latency
 * SYNOPSIS
 *	#include "gr_render.h"
 *
 *	const GrPeriod *p = &gr_periods[i];
 *	gint64 end = gr_period_end(p, data_end);
 *	gboolean gr_render_counts(const GrGraph *g, GError **error);
 *	gboolean gr_render_latency(const GrGraph *g, double timeout_ms, GError **error);
 * DESCRIPTION
 *	Periods are those of mailgraph: a day, a week, 35 days and 420 days,
 *	each drawn from the archive whose 180 rows span it exactly (1-minute
 *	rows for the day), and each ending on a boundary of its archive's rows
 *	(the day on 3 minutes, as it is drawn at 3 minutes a point), so the
 *	totals in the legends are the sums of the rows, not interpolations.
 *
 *	A graph sums the same series over several files (one per host), so the
 *	merged view of several hosts is drawn from their files with CDEF
 *	ADDNAN, with no file of its own. Every graph is written twice,
 *	BASE.png and BASE.svg, at a fixed size (--full-size-mode). The totals
 *	of the legend are also returned (PRINT) for the page and the tests.
 */
#ifndef GR_RENDER_H
#define GR_RENDER_H

/* GLib. */
#include <glib.h>

/* Application-specific. */
#include "gr_store.h"

G_BEGIN_DECLS

/* Image sizes in pixels (the whole image: canvas, axes and legend). */
#define GR_GRAPH_WIDTH    720
#define GR_COUNTS_HEIGHT  330
#define GR_LATENCY_HEIGHT 250
#define GR_N_PERIODS      4

/* GrPeriod - one graph period */
typedef struct {
    const char *name;  /* "day", ... */
    const char *title; /* "last day", ... */
    gint64 span;       /* seconds shown */
    gint64 res;        /* seconds per row of the archive it is drawn from */
    gint64 align;      /* the end is a multiple of this */
} GrPeriod;

extern const GrPeriod gr_periods[GR_N_PERIODS];

/* GrGraph - one graph to draw */
typedef struct {
    const GrPeriod *period;
    gint64 end;               /* from gr_period_end() */
    GrKind kind;              /* MILTER, CHAIN (counts) or LATENCY */
    const char *const *files; /* NULL-terminated: summed */
    const char *title;
    const char *base; /* output path without extension */
    const char *daemon;
    double totals[GR_MAX_DS]; /* out: per data source, events in the period */
} GrGraph;

gint64 gr_period_end(const GrPeriod *p, gint64 data_end);
gboolean gr_render_counts(GrGraph *g, GError **error);
gboolean gr_render_latency(GrGraph *g, double timeout_ms, GError **error);

G_END_DECLS

#endif /* GR_RENDER_H */
