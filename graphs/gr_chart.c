/* SPDX-License-Identifier: MIT */
/*
 * NAME
 *	gr_chart - cairo charts RRD cannot draw: milter agreement matrix, share blocked
 * DESCRIPTION
 *	See gr_chart.h. Each chart is drawn by one function on a cairo
 *	context, once on an image surface (PNG) and once on an SVG surface.
 */

/* System library. */
#include <math.h>

/* Cairo. */
#include <cairo-svg.h>
#include <cairo.h>

/* Application-specific. */
#include "gr_chart.h"

#define GR_CHART_ERROR (gr_chart_error_quark())
GQuark gr_chart_error_quark(void);
G_DEFINE_QUARK(gr - chart - error - quark, gr_chart_error)

/* Layout, in pixels. */
#define MARGIN   16
#define LABEL_W  150
#define TITLE_Y  26
#define TOP      76
#define FOOT     52
#define CELL_MAX 96
#define BAR_MAX  34
#define FONT     "DejaVu Sans"

typedef void (*DrawFunc)(cairo_t *cr, const GrAgreement *a, const char *title);

/* rgb - set a colour from 0xRRGGBB */
static void
rgb(cairo_t *cr, guint32 c)
{
    cairo_set_source_rgb(cr, ((c >> 16) & 0xff) / 255.0, ((c >> 8) & 0xff) / 255.0,
                         (c & 0xff) / 255.0);
}

/* text - draw TEXT with its left (ALIGN 0), centre (0.5) or right (1) at X, baseline Y */
static void
text(cairo_t *cr, double x, double y, double align, double size, const char *s)
{
    cairo_text_extents_t e;
    cairo_set_font_size(cr, size);
    cairo_text_extents(cr, s, &e);
    cairo_move_to(cr, x - align * e.x_advance, y);
    cairo_show_text(cr, s);
}

/* background - white page and the title */
static void
background(cairo_t *cr, const char *title)
{
    rgb(cr, 0xFFFFFF);
    cairo_paint(cr);
    cairo_select_font_face(cr, FONT, CAIRO_FONT_SLANT_NORMAL, CAIRO_FONT_WEIGHT_BOLD);
    rgb(cr, 0x333333);
    text(cr, GR_CHART_WIDTH / 2.0, TITLE_Y, 0.5, 13, title);
    cairo_select_font_face(cr, FONT, CAIRO_FONT_SLANT_NORMAL, CAIRO_FONT_WEIGHT_NORMAL);
}

/* blocked - messages a milter would have blocked */
static double
blocked(const GrAgreement *a, guint i)
{
    const double *c = &a->milter[i * GR_M_COUNT];
    return c[GR_M_REJECT] + c[GR_M_TEMPFAIL] + c[GR_M_DISCARD];
}

/* draw_agreement - the matrix: Jaccard of blocking per pair, share blocked on the diagonal */
static void
draw_agreement(cairo_t *cr, const GrAgreement *a, const char *title)
{
    background(cr, title);
    if (a->n == 0) {
        text(cr, GR_CHART_WIDTH / 2.0, GR_CHART_HEIGHT / 2.0, 0.5, 12, "no milters yet");
        return;
    }
    double cell = MIN(CELL_MAX, MIN((GR_CHART_WIDTH - LABEL_W - 2 * MARGIN) / (double)a->n,
                                    (GR_CHART_HEIGHT - TOP - FOOT) / (double)a->n));
    double x0 = LABEL_W + MARGIN, y0 = TOP;
    double fs = MIN(11, cell / 5.5);
    for (guint i = 0; i < a->n; i++) {
        rgb(cr, 0x333333);
        text(cr, x0 - 8, y0 + (i + 0.5) * cell + 4, 1, 11, a->names[i]);
        cairo_save(cr);
        cairo_move_to(cr, x0 + (i + 0.5) * cell, y0 - 8);
        cairo_rotate(cr, -M_PI / 6);
        cairo_set_font_size(cr, 11);
        cairo_show_text(cr, a->names[i]);
        cairo_restore(cr);
    }
    for (guint i = 0; i < a->n; i++)
        for (guint j = 0; j < a->n; j++) {
            double x = x0 + j * cell, y = y0 + i * cell, v = -1;
            char top[32], bottom[48];
            if (i == j) {
                double seen = a->milter[i * GR_M_COUNT + GR_M_SEEN];
                if (seen > 0)
                    v = blocked(a, i) / seen;
                if (v >= 0)
                    g_snprintf(top, sizeof top, "%.1f%%", v * 100);
                else
                    g_strlcpy(top, "-", sizeof top);
                g_snprintf(bottom, sizeof bottom, "%.0f/%.0f", blocked(a, i), seen);
                cairo_set_source_rgb(cr, 1.0, 1.0 - 0.45 * MAX(v, 0), 0.85 - 0.6 * MAX(v, 0));
            } else {
                guint p = MIN(i, j), q = MAX(i, j);
                const double *c = &a->pair[(p * a->n + q) * GR_P_COUNT];
                if (c[GR_P_EITHER_BLOCK] > 0)
                    v = c[GR_P_BOTH_BLOCK] / c[GR_P_EITHER_BLOCK];
                if (v >= 0)
                    g_snprintf(top, sizeof top, "%.0f%%", v * 100);
                else
                    g_strlcpy(top, "-", sizeof top);
                g_snprintf(bottom, sizeof bottom, "%.0f/%.0f", c[GR_P_BOTH_BLOCK],
                           c[GR_P_EITHER_BLOCK]);
                if (v < 0)
                    rgb(cr, 0xF0F0F0);
                else
                    cairo_set_source_rgb(cr, 0.93 - 0.75 * v, 0.95 - 0.55 * v, 1.0 - 0.3 * v);
            }
            cairo_rectangle(cr, x + 1, y + 1, cell - 2, cell - 2);
            cairo_fill(cr);
            if (v > 0.6 && i != j)
                rgb(cr, 0xFFFFFF);
            else
                rgb(cr, 0x222222);
            text(cr, x + cell / 2, y + cell / 2, 0.5, fs * 1.2, top);
            text(cr, x + cell / 2, y + cell / 2 + fs * 1.4, 0.5, fs * 0.9, bottom);
        }
    rgb(cr, 0x555555);
    text(cr, MARGIN, GR_CHART_HEIGHT - 30, 0, 10,
         "cell: messages both would have blocked / messages either would have blocked");
    text(cr, MARGIN, GR_CHART_HEIGHT - 14, 0, 10,
         "diagonal: messages the milter would have blocked / messages it gave a verdict on");
}

/* draw_share - one bar per milter: reject, tempfail, discard, quarantine shares */
static void
draw_share(cairo_t *cr, const GrAgreement *a, const char *title)
{
    static const guint ds[] = { GR_M_REJECT, GR_M_TEMPFAIL, GR_M_DISCARD, GR_M_QUARANTINE };
    static const guint32 colors[] = { 0xD8443C, 0xF39C34, 0x8E5DB8, 0xF2CF3B };
    static const char *const labels[] = { "reject", "tempfail", "discard", "quarantine" };
    background(cr, title);
    if (a->n == 0) {
        text(cr, GR_CHART_WIDTH / 2.0, GR_CHART_HEIGHT / 2.0, 0.5, 12, "no milters yet");
        return;
    }
    double top_share = 0;
    for (guint i = 0; i < a->n; i++) {
        double seen = a->milter[i * GR_M_COUNT + GR_M_SEEN], s = 0;
        for (guint k = 0; k < G_N_ELEMENTS(ds); k++)
            s += a->milter[i * GR_M_COUNT + ds[k]];
        if (seen > 0)
            top_share = MAX(top_share, s / seen);
    }
    double scale = MAX(0.1, ceil(top_share * 10.0) / 10.0);
    double x0 = LABEL_W + MARGIN, x1 = GR_CHART_WIDTH - 130;
    double bar = MIN(BAR_MAX, (GR_CHART_HEIGHT - TOP - FOOT) / (double)a->n);
    double y0 = TOP - 20;
    for (guint t = 0; t <= 10; t++) {
        double x = x0 + (x1 - x0) * t / 10.0;
        rgb(cr, t == 0 ? 0x999999 : 0xE4E4E4);
        cairo_set_line_width(cr, 1);
        cairo_move_to(cr, floor(x) + 0.5, y0);
        cairo_line_to(cr, floor(x) + 0.5, y0 + bar * a->n);
        cairo_stroke(cr);
        if (t % 2 == 0) {
            char l[16];
            g_snprintf(l, sizeof l, "%.0f%%", scale * t * 10);
            rgb(cr, 0x666666);
            text(cr, x, y0 + bar * a->n + 14, 0.5, 9, l);
        }
    }
    for (guint i = 0; i < a->n; i++) {
        const double *c = &a->milter[i * GR_M_COUNT];
        double y = y0 + i * bar, x = x0, s = 0;
        rgb(cr, 0x333333);
        text(cr, x0 - 8, y + bar / 2 + 4, 1, 11, a->names[i]);
        for (guint k = 0; k < G_N_ELEMENTS(ds) && c[GR_M_SEEN] > 0; k++) {
            double w = (x1 - x0) * (c[ds[k]] / c[GR_M_SEEN]) / scale;
            rgb(cr, colors[k]);
            cairo_rectangle(cr, x, y + bar * 0.15, w, bar * 0.7);
            cairo_fill(cr);
            x += w;
            s += c[ds[k]];
        }
        char l[64];
        if (c[GR_M_SEEN] > 0)
            g_snprintf(l, sizeof l, "%.1f%% of %.0f", 100 * s / c[GR_M_SEEN], c[GR_M_SEEN]);
        else
            g_snprintf(l, sizeof l, "no messages");
        rgb(cr, 0x333333);
        text(cr, x1 + 8, y + bar / 2 + 4, 0, 10, l);
    }
    double lx = MARGIN;
    for (guint k = 0; k < G_N_ELEMENTS(ds); k++) {
        rgb(cr, colors[k]);
        cairo_rectangle(cr, lx, GR_CHART_HEIGHT - 24, 12, 12);
        cairo_fill(cr);
        rgb(cr, 0x333333);
        text(cr, lx + 16, GR_CHART_HEIGHT - 14, 0, 10, labels[k]);
        lx += 110;
    }
}

/* chart_write - draw with FUNC into BASE.png and BASE.svg */
static gboolean
chart_write(DrawFunc func, const GrAgreement *a, const char *title, const char *base,
            GError **error)
{
    g_autofree char *png = g_strconcat(base, ".png", NULL);
    g_autofree char *svg = g_strconcat(base, ".svg", NULL);
    cairo_surface_t *s =
        cairo_image_surface_create(CAIRO_FORMAT_RGB24, GR_CHART_WIDTH, GR_CHART_HEIGHT);
    cairo_t *cr = cairo_create(s);
    func(cr, a, title);
    cairo_destroy(cr);
    cairo_status_t st = cairo_surface_write_to_png(s, png);
    cairo_surface_destroy(s);
    if (st != CAIRO_STATUS_SUCCESS) {
        g_set_error(error, GR_CHART_ERROR, 0, "chart %s: %s", png, cairo_status_to_string(st));
        return FALSE;
    }
    s = cairo_svg_surface_create(svg, GR_CHART_WIDTH, GR_CHART_HEIGHT);
    cr = cairo_create(s);
    func(cr, a, title);
    cairo_destroy(cr);
    cairo_surface_finish(s);
    st = cairo_surface_status(s);
    cairo_surface_destroy(s);
    if (st != CAIRO_STATUS_SUCCESS) {
        g_set_error(error, GR_CHART_ERROR, 0, "chart %s: %s", svg, cairo_status_to_string(st));
        return FALSE;
    }
    return TRUE;
}

/* gr_chart_agreement - the agreement matrix as BASE.png and BASE.svg */
gboolean
gr_chart_agreement(const GrAgreement *a, const char *title, const char *base, GError **error)
{
    return chart_write(draw_agreement, a, title, base, error);
}

/* gr_chart_share - the share-blocked bars as BASE.png and BASE.svg */
gboolean
gr_chart_share(const GrAgreement *a, const char *title, const char *base, GError **error)
{
    return chart_write(draw_share, a, title, base, error);
}
