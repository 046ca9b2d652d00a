/* SPDX-License-Identifier: MIT */
/*
 * NAME
 *	gr_chart - cairo charts RRD cannot draw: milter agreement matrix, share blocked
 * SYNOPSIS
 *	#include "gr_chart.h"
 *
 *	gboolean gr_chart_agreement(const GrAgreement *a, const char *title, const char *base,
 *	                            GError **error);
 *	gboolean gr_chart_share(const GrAgreement *a, const char *title, const char *base,
 *	                        GError **error);
 * DESCRIPTION
 *	Both take the totals of one period (from the RRD files, so no log is
 *	read again) and write BASE.png and BASE.svg of GR_CHART_WIDTH x
 *	GR_CHART_HEIGHT pixels.
 *
 *	The agreement matrix has a cell per pair of milters: of the messages
 *	that at least one of the two would have blocked (reject, tempfail or
 *	discard), the share that both would have (the Jaccard index), with the
 *	count; the diagonal shows each milter's own share blocked. The share
 *	chart has one bar per milter: reject, tempfail, discard and quarantine
 *	as shares of the messages it gave a verdict on.
 */
#ifndef GR_CHART_H
#define GR_CHART_H

/* GLib. */
#include <glib.h>

/* Application-specific. */
#include "gr_store.h"

G_BEGIN_DECLS

#define GR_CHART_WIDTH  720
#define GR_CHART_HEIGHT 480

/* GrAgreement - one period's totals for the charts */
typedef struct {
    guint n;
    const char *const *names; /* n milters */
    const double *milter;     /* n x GR_M_COUNT */
    const double *pair;       /* n x n x GR_P_COUNT, [i][j] for i < j */
} GrAgreement;

gboolean gr_chart_agreement(const GrAgreement *a, const char *title, const char *base,
                            GError **error);
gboolean gr_chart_share(const GrAgreement *a, const char *title, const char *base, GError **error);

G_END_DECLS

#endif /* GR_CHART_H */
