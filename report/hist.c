/* SPDX-License-Identifier: MIT */
/*
 * NAME
 *	hist - a fixed-size log-bucketed histogram for latency percentiles
 * SYNOPSIS
 *	#include "report.h"
 *
 *	ReportHist h = { 0 };
 *	report_hist_add(&h, latency_us);
 *	gint64 p95 = report_hist_quantile(&h, 0.95);
 * DESCRIPTION
 *	Bucket 0 holds 0 us; bucket i > 0 holds values in
 *	[REPORT_HIST_RATIO^(i-1), REPORT_HIST_RATIO^i). A quantile is the
 *	nearest-rank one (the value at rank ceil(q * count)), reported as the
 *	geometric middle of its bucket, so it is within about 1% of the true
 *	value (half the 2% bucket width); it is never above the exact maximum,
 *	which is kept. Memory is REPORT_HIST_BUCKETS counters however many
 *	values are added.
 */

/* System library. */
#include <math.h>

/* Application. */
#include "report.h"

/* bucket_of - the bucket a value falls in */
static guint
bucket_of(gint64 value)
{
    double b;

    if (value <= 0)
        return 0;
    b = floor(log((double)value) / log(REPORT_HIST_RATIO)) + 1;
    if (b >= REPORT_HIST_BUCKETS - 1)
        return REPORT_HIST_BUCKETS - 1;
    return (guint)b;
}

/* report_hist_add - count one value */
void
report_hist_add(ReportHist *h, gint64 value)
{
    h->buckets[bucket_of(value)]++;
    h->count++;
    if (value > h->max)
        h->max = value;
}

/* report_hist_quantile - the q-quantile (0 < q <= 1), nearest rank; -1 when empty */
gint64
report_hist_quantile(const ReportHist *h, double q)
{
    guint64 rank, seen = 0;

    if (h->count == 0)
        return -1;
    rank = (guint64)ceil(q * (double)h->count);
    if (rank < 1)
        rank = 1;
    for (guint i = 0; i < REPORT_HIST_BUCKETS; i++) {
        seen += h->buckets[i];
        if (seen >= rank) {
            double mid;

            if (i == 0)
                return 0;
            if (i == REPORT_HIST_BUCKETS - 1)
                return h->max;
            mid = pow(REPORT_HIST_RATIO, (double)i - 0.5);
            return MIN((gint64)llround(mid), h->max);
        }
    }
    return h->max;
}
