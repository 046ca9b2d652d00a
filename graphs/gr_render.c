/* SPDX-License-Identifier: MIT */
/*
 * NAME
 *	gr_render - RRD graphs (PNG and SVG) of would-be actions, chain outcomes and latency
 * DESCRIPTION
 *	See gr_render.h. Graphs are drawn with rrd_graph_v, as `rrdtool
 *	graphv` would; rates are per second in the files and are shown per
 *	minute.
 */

/* System library. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* RRDtool. */
#include <rrd.h>

/* Application-specific. */
#include "gr_render.h"

#define GR_RENDER_ERROR (gr_render_error_quark())
GQuark gr_render_error_quark(void);
G_DEFINE_QUARK(gr - render - error - quark, gr_render_error)

/* Files summed in one graph, at most (hosts). */
#define GR_MAX_FILES 64
/* The day is drawn at 3 minutes a point (1440 rows on a canvas of fewer than 720 pixels). */
#define GR_DAY_POINT 180

const GrPeriod gr_periods[GR_N_PERIODS] = {
    { "day", "last day", 86400, 60, GR_DAY_POINT },
    { "week", "last week", 7 * 86400, 56 * 60, 56 * 60 },
    { "month", "last 35 days", 35 * 86400, 280 * 60, 280 * 60 },
    { "year", "last 420 days", 420 * 86400, 3360 * 60, 3360 * 60 },
};

/* GrSeries - how one data source is drawn */
typedef struct {
    guint ds;
    const char *label;
    const char *color;
} GrSeries;

static const GrSeries milter_series[] = {
    { GR_M_CONTINUE, "continue", "#8CC68A" }, { GR_M_ACCEPT, "accept", "#3E8E41" },
    { GR_M_REJECT, "reject", "#D8443C" },     { GR_M_TEMPFAIL, "tempfail", "#F39C34" },
    { GR_M_DISCARD, "discard", "#8E5DB8" },   { GR_M_QUARANTINE, "quarantine", "#F2CF3B" },
    { GR_M_ERROR, "error", "#7A7A7A" },       { GR_M_TIMEOUT, "timeout", "#3B5B75" },
};
static const GrSeries chain_series[] = {
    { GR_C_DELIVERED, "delivered", "#8CC68A" },     { GR_C_REJECTED, "rejected", "#D8443C" },
    { GR_C_TEMPFAILED, "tempfailed", "#F39C34" },   { GR_C_DISCARDED, "discarded", "#8E5DB8" },
    { GR_C_QUARANTINED, "quarantined", "#F2CF3B" },
};

/* gr_period_end - where a period's graph ends: the data's end, down to the period's alignment */
gint64
gr_period_end(const GrPeriod *p, gint64 data_end)
{
    return data_end - (data_end % p->align + p->align) % p->align;
}

/* rrd_escape - a file name for a DEF: ':' and '\' escaped */
static char *
rrd_escape(const char *path)
{
    GString *s = g_string_new(NULL);
    for (const char *p = path; *p != '\0'; p++) {
        if (*p == ':' || *p == '\\')
            g_string_append_c(s, '\\');
        g_string_append_c(s, *p);
    }
    return g_string_free(s, FALSE);
}

/* add - append a formatted argument */
G_GNUC_PRINTF(2, 3)
static void
add(GPtrArray *args, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    g_ptr_array_add(args, g_strdup_vprintf(fmt, ap));
    va_end(ap);
}

/* common_args - the options every graph has: period, size, colours, fonts */
static GPtrArray *
common_args(const GrGraph *g, const char *file, const char *format, int height)
{
    GPtrArray *a = g_ptr_array_new_with_free_func(g_free);
    add(a, "graphv");
    add(a, "%s", file);
    add(a, "--imgformat=%s", format);
    add(a, "--start=%" G_GINT64_FORMAT, g->end - g->period->span);
    add(a, "--end=%" G_GINT64_FORMAT, g->end);
    add(a, "--step=%" G_GINT64_FORMAT, g->period->align);
    add(a, "--width=%d", GR_GRAPH_WIDTH);
    add(a, "--height=%d", height);
    add(a, "--full-size-mode");
    add(a, "--title=%s", g->title);
    add(a, "--border=0");
    add(a, "--color=BACK#FFFFFF");
    add(a, "--color=CANVAS#FCFCFC");
    add(a, "--color=SHADEA#FFFFFF");
    add(a, "--color=SHADEB#FFFFFF");
    add(a, "--color=GRID#E4E4E4");
    add(a, "--color=MGRID#C4C4C4");
    add(a, "--color=FRAME#FFFFFF");
    add(a, "--color=AXIS#777777");
    add(a, "--color=ARROW#777777");
    add(a, "--color=FONT#333333");
    add(a, "--font=DEFAULT:8:DejaVu Sans");
    add(a, "--font=TITLE:10:DejaVu Sans");
    add(a, "--font=LEGEND:8:DejaVu Sans Mono");
    if (g->daemon != NULL)
        add(a, "--daemon=%s", g->daemon);
    return a;
}

/* def_sum - DEFs of one data source in every file, and a CDEF NAME summing them (ADDNAN) */
static void
def_sum(GPtrArray *a, const GrGraph *g, const char *name, const char *ds, const char *cf,
        const char *join)
{
    GString *cdef = g_string_new(NULL);
    g_string_printf(cdef, "CDEF:%s=", name);
    for (guint k = 0; g->files[k] != NULL && k < GR_MAX_FILES; k++) {
        g_autofree char *esc = rrd_escape(g->files[k]);
        add(a, "DEF:%s_%u=%s:%s:%s", name, k, esc, ds, cf);
        g_string_append_printf(cdef, "%s%s_%u", k ? "," : "", name, k);
        if (k > 0)
            g_string_append_printf(cdef, ",%s", join);
    }
    g_ptr_array_add(a, g_string_free(cdef, FALSE));
}

/* run_graph - call rrd_graph_v; PRINT results go to TOTALS in order */
static gboolean
run_graph(GPtrArray *a, double *totals, guint n_totals, const char *file, GError **error)
{
    rrd_clear_error();
    rrd_info_t *info = rrd_graph_v((int)a->len, (char **)a->pdata);
    if (info == NULL) {
        const char *e = rrd_get_error();
        g_set_error(error, GR_RENDER_ERROR, 0, "graph %s: %s", file,
                    e != NULL && *e ? e : "rrd_graph_v failed");
        rrd_clear_error();
        return FALSE;
    }
    for (rrd_info_t *i = info; i != NULL; i = i->next) {
        if (strncmp(i->key, "print[", 6) != 0 || i->type != RD_I_STR)
            continue;
        guint idx = (guint)strtoul(i->key + 6, NULL, 10);
        if (idx < n_totals && totals != NULL)
            totals[idx] = g_ascii_strtod(i->value.u_str, NULL);
    }
    rrd_info_free(info);
    return TRUE;
}

/* counts_args - the elements of a counts graph: stacked actions, the seen line, the legend */
static void
counts_args(GPtrArray *a, const GrGraph *g)
{
    const char *const *names = gr_kind_ds_names(g->kind);
    const GrSeries *series = g->kind == GR_KIND_CHAIN ? chain_series : milter_series;
    guint n = g->kind == GR_KIND_CHAIN ? G_N_ELEMENTS(chain_series) : G_N_ELEMENTS(milter_series);
    guint n_ds = gr_kind_n_ds(g->kind);
    add(a, "--vertical-label=messages/min");
    add(a, "--lower-limit=0");
    for (guint i = 0; i < n_ds; i++) {
        g_autofree char *r = g_strdup_printf("%s_r", names[i]);
        g_autofree char *x = g_strdup_printf("%s_x", names[i]);
        def_sum(a, g, r, names[i], "AVERAGE", "ADDNAN");
        def_sum(a, g, x, names[i], "MAX", "ADDNAN");
        add(a, "CDEF:%s_m=%s_r,60,*", names[i], names[i]);
        add(a, "CDEF:%s_xm=%s_x,60,*", names[i], names[i]);
        add(a, "VDEF:%s_tot=%s_r,TOTAL", names[i], names[i]);
        add(a, "VDEF:%s_avg=%s_m,AVERAGE", names[i], names[i]);
        add(a, "VDEF:%s_max=%s_xm,MAXIMUM", names[i], names[i]);
    }
    add(a, "COMMENT:%-14s%10s%10s%10s\\l", " ", "total", "avg/min", "max/min");
    for (guint i = 0; i < n; i++) {
        const char *ds = names[series[i].ds];
        add(a, "AREA:%s_m%s:%-12s%s", ds, series[i].color, series[i].label, i ? ":STACK" : "");
        add(a, "GPRINT:%s_tot:%%10.0lf", ds);
        add(a, "GPRINT:%s_avg:%%10.2lf", ds);
        add(a, "GPRINT:%s_max:%%10.0lf\\l", ds);
    }
    add(a, "LINE1:seen_m#303030:%-12s", g->kind == GR_KIND_CHAIN ? "messages" : "seen");
    add(a, "GPRINT:seen_tot:%%10.0lf");
    add(a, "GPRINT:seen_avg:%%10.2lf");
    add(a, "GPRINT:seen_max:%%10.0lf\\l");
    if (g->kind == GR_KIND_CHAIN) {
        add(a, "LINE1:incomplete_m#3B5B75:%-12s:dashes", "incomplete");
        add(a, "GPRINT:incomplete_tot:%%10.0lf");
        add(a, "GPRINT:incomplete_avg:%%10.2lf");
        add(a, "GPRINT:incomplete_max:%%10.0lf\\l");
    }
    for (guint i = 0; i < n_ds; i++)
        add(a, "PRINT:%s_tot:%%.0lf", names[i]);
}

/* gr_render_counts - a milter's actions or the chain's outcomes, as BASE.png and BASE.svg */
gboolean
gr_render_counts(GrGraph *g, GError **error)
{
    static const char *const formats[] = { "PNG", "SVG" };
    static const char *const exts[] = { "png", "svg" };
    for (guint f = 0; f < G_N_ELEMENTS(formats); f++) {
        g_autofree char *file = g_strdup_printf("%s.%s", g->base, exts[f]);
        g_autoptr(GPtrArray) a = common_args(g, file, formats[f], GR_COUNTS_HEIGHT);
        counts_args(a, g);
        if (!run_graph(a, f == 0 ? g->totals : NULL, gr_kind_n_ds(g->kind), file, error))
            return FALSE;
    }
    return TRUE;
}

/* latency_args - the elements of a latency graph: average, maximum and the MTA timeout */
static void
latency_args(GPtrArray *a, const GrGraph *g, double timeout_ms)
{
    add(a, "--vertical-label=milliseconds");
    add(a, "--logarithmic");
    add(a, "--units=si");
    add(a, "--upper-limit=%.0f", timeout_ms * 1.5); /* the timeout is always in view */
    def_sum(a, g, "n", "n", "AVERAGE", "ADDNAN");
    def_sum(a, g, "sum", "sum_ms", "AVERAGE", "ADDNAN");
    def_sum(a, g, "mx", "max_ms", "MAX", "MAXNAN");
    add(a, "CDEF:avg=n,0,GT,sum,n,/,UNKN,IF");
    add(a, "VDEF:n_tot=n,TOTAL");
    add(a, "VDEF:sum_tot=sum,TOTAL");
    add(a, "VDEF:avg_avg=avg,AVERAGE");
    add(a, "VDEF:avg_max=avg,MAXIMUM");
    add(a, "VDEF:mx_max=mx,MAXIMUM");
    add(a, "COMMENT:%-18s%12s%12s\\l", " ", "average", "maximum");
    add(a, "AREA:avg#9CC9F0:%-18s", "average latency");
    add(a, "LINE1:avg#1F6FB5");
    add(a, "GPRINT:avg_avg:%%9.1lf ms");
    add(a, "GPRINT:avg_max:%%9.1lf ms\\l");
    add(a, "LINE1:mx#C0392B:%-18s", "maximum latency");
    add(a, "COMMENT:%12s", " ");
    add(a, "GPRINT:mx_max:%%9.1lf ms\\l");
    add(a, "HRULE:%.0f#000000:MTA timeout %.0f s\\l:dashes", timeout_ms, timeout_ms / 1000.0);
    add(a, "GPRINT:n_tot:answered %%.0lf messages\\l");
    add(a, "PRINT:n_tot:%%.0lf");
    add(a, "PRINT:sum_tot:%%.3lf");
}

/* gr_render_latency - a milter's latency with the MTA timeout, as BASE.png and BASE.svg */
gboolean
gr_render_latency(GrGraph *g, double timeout_ms, GError **error)
{
    static const char *const formats[] = { "PNG", "SVG" };
    static const char *const exts[] = { "png", "svg" };
    for (guint f = 0; f < G_N_ELEMENTS(formats); f++) {
        g_autofree char *file = g_strdup_printf("%s.%s", g->base, exts[f]);
        g_autoptr(GPtrArray) a = common_args(g, file, formats[f], GR_LATENCY_HEIGHT);
        latency_args(a, g, timeout_ms);
        if (!run_graph(a, f == 0 ? g->totals : NULL, GR_L_COUNT, file, error))
            return FALSE;
    }
    return TRUE;
}
