/* SPDX-License-Identifier: MIT */
/*
 * NAME
 *	gr_output - every graph, chart and the page for the hosts of a model
 * DESCRIPTION
 *	See gr_output.h. The page is static HTML with no script and no
 *	external asset: the images are files beside it, and it reloads itself
 *	every five minutes (meta refresh), as mailgraph's and milter manager's
 *	pages do.
 */

/* System library. */
#include <errno.h>
#include <math.h>
#include <string.h>
#include <time.h>

/* Application-specific. */
#include "gr_chart.h"
#include "gr_output.h"
#include "gr_render.h"

#define GR_OUTPUT_ERROR (gr_output_error_quark())
GQuark gr_output_error_quark(void);
G_DEFINE_QUARK(gr - output - error - quark, gr_output_error)

/* The page reloads itself this often (seconds). */
#define GR_REFRESH 300

/* GrScope - one section of the page: a host, or all hosts merged */
typedef struct {
    char *id;
    char *label;
    GPtrArray *hosts;   /* GrHost * (not owned) */
    GPtrArray *milters; /* char * names, owned */
    gint64 end;         /* data end, seconds */
    gint64 first_ts, last_ts;
    double chain[GR_N_PERIODS][GR_C_COUNT];
    double *milter[GR_N_PERIODS]; /* n x GR_M_COUNT */
    double *lat[GR_N_PERIODS];    /* n x GR_L_COUNT (n, sum) */
    double *pair[GR_N_PERIODS];   /* n x n x GR_P_COUNT */
} GrScope;

/* scope_free - free one scope */
static void
scope_free(gpointer p)
{
    GrScope *sc = p;
    for (guint i = 0; i < GR_N_PERIODS; i++) {
        g_free(sc->milter[i]);
        g_free(sc->lat[i]);
        g_free(sc->pair[i]);
    }
    g_ptr_array_unref(sc->hosts);
    g_ptr_array_unref(sc->milters);
    g_free(sc->id);
    g_free(sc->label);
    g_free(sc);
}

/* gr_output_discover - add the hosts and milters that have files in the RRD directory */
gboolean
gr_output_discover(GrModel *m, GrStore *s, GError **error)
{
    g_autoptr(GDir) dir = g_dir_open(gr_store_dir(s), 0, NULL);
    if (dir == NULL)
        return TRUE; /* with rrdcached the files may live elsewhere: the state names them */
    const char *name;
    while ((name = g_dir_read_name(dir)) != NULL) {
        if (!g_str_has_suffix(name, ".rrd"))
            continue;
        const char *at = strrchr(name, '@');
        if (at == NULL)
            continue;
        g_autofree char *host = g_strndup(at + 1, strlen(at + 1) - strlen(".rrd"));
        if (g_str_has_prefix(name, "chain@")) {
            gr_model_host(m, host); /* NULL past GR_MAX_HOSTS: reported, not drawn */
        } else if (g_str_has_prefix(name, "milter-")) {
            g_autofree char *milter =
                g_strndup(name + strlen("milter-"), (gsize)(at - name) - strlen("milter-"));
            GrHost *h = gr_model_host(m, host);
            g_autoptr(GError) e = NULL;
            if (h != NULL && gr_model_milter(m, h, milter, &e) < 0 && !h->overflow_warned) {
                g_printerr("shadow-graphs: %s; the others are not drawn\n", e->message);
                h->overflow_warned = TRUE;
            }
        }
    }
    return TRUE;
}

/* name_index - index of NAME in an array of strings, or -1 */
static gint
name_index(GPtrArray *names, const char *name)
{
    for (guint i = 0; i < names->len; i++)
        if (strcmp(names->pdata[i], name) == 0)
            return (gint)i;
    return -1;
}

/* scope_new - a scope over HOSTS, milters in chain order first */
static GrScope *
scope_new(const char *id, const char *label, GPtrArray *hosts, guint from, guint to,
          const char *const *order)
{
    GrScope *sc = g_new0(GrScope, 1);
    sc->id = g_strdup(id);
    sc->label = g_strdup(label);
    sc->hosts = g_ptr_array_new();
    sc->milters = g_ptr_array_new_with_free_func(g_free);
    sc->end = -1;
    sc->first_ts = sc->last_ts = -1;
    g_autoptr(GPtrArray) seen = g_ptr_array_new();
    for (guint i = from; i < to; i++) {
        GrHost *h = hosts->pdata[i];
        if (h->written < 0)
            continue;
        g_ptr_array_add(sc->hosts, h);
        sc->end = sc->end < 0 ? h->written : MIN(sc->end, h->written);
        if (h->first_ts >= 0 && (sc->first_ts < 0 || h->first_ts < sc->first_ts))
            sc->first_ts = h->first_ts;
        sc->last_ts = MAX(sc->last_ts, h->last_ts);
        for (guint j = 0; j < h->milters->len; j++) {
            const char *n = ((GrMilter *)h->milters->pdata[j])->name;
            if (name_index(seen, n) < 0)
                g_ptr_array_add(seen, (gpointer)n);
        }
    }
    for (guint i = 0; order != NULL && order[i] != NULL; i++)
        if (name_index(seen, order[i]) >= 0 && name_index(sc->milters, order[i]) < 0)
            g_ptr_array_add(sc->milters, g_strdup(order[i]));
    for (guint i = 0; i < seen->len; i++)
        if (name_index(sc->milters, seen->pdata[i]) < 0)
            g_ptr_array_add(sc->milters, g_strdup(seen->pdata[i]));
    guint n = sc->milters->len;
    for (guint p = 0; p < GR_N_PERIODS; p++) {
        sc->milter[p] = g_new0(double, MAX(n, 1) * GR_M_COUNT);
        sc->lat[p] = g_new0(double, MAX(n, 1) * GR_L_COUNT);
        sc->pair[p] = g_new0(double, MAX(n * n, 1) * GR_P_COUNT);
    }
    return sc;
}

/* host_has - whether a host has a milter of that name */
static gboolean
host_has(const GrHost *h, const char *milter)
{
    return g_hash_table_contains(h->index, milter);
}

/* scope_files - the files of a series in every host of the scope that has it */
static GPtrArray *
scope_files(GrStore *s, GrScope *sc, GrKind kind, const char *name, const char *other)
{
    GPtrArray *files = g_ptr_array_new_with_free_func(g_free);
    for (guint i = 0; i < sc->hosts->len; i++) {
        GrHost *h = sc->hosts->pdata[i];
        if (name != NULL && !host_has(h, name))
            continue;
        if (other != NULL && !host_has(h, other))
            continue;
        if (kind == GR_KIND_PAIR) {
            g_autofree char *pn = strcmp(name, other) < 0 ? g_strconcat(name, "+", other, NULL)
                                                          : g_strconcat(other, "+", name, NULL);
            g_autofree char *path = gr_store_path(s, kind, h->name, pn);
            if (gr_store_last(s, path) >= 0)
                g_ptr_array_add(files, g_steal_pointer(&path));
        } else {
            g_ptr_array_add(files, gr_store_path(s, kind, h->name, name));
        }
    }
    g_ptr_array_add(files, NULL);
    return files;
}

/* scope_draw_period - every graph and chart of one scope and period */
static gboolean
scope_draw_period(const GrOutputOptions *o, GrStore *s, GrScope *sc, guint pi, const char *dir,
                  GError **error)
{
    const GrPeriod *p = &gr_periods[pi];
    gint64 end = gr_period_end(p, MIN(sc->end, o->now));
    guint n = sc->milters->len;
    GrGraph g = { .period = p, .end = end, .daemon = gr_store_daemon(s) };

    g_autoptr(GPtrArray) chain = scope_files(s, sc, GR_KIND_CHAIN, NULL, NULL);
    g_autofree char *title =
        g_strdup_printf("%s: predicted chain outcome, %s", sc->label, p->title);
    g_autofree char *base = g_strdup_printf("%s/chain-%s", dir, p->name);
    g.kind = GR_KIND_CHAIN;
    g.files = (const char *const *)chain->pdata;
    g.title = title;
    g.base = base;
    if (!gr_render_counts(&g, error))
        return FALSE;
    memcpy(sc->chain[pi], g.totals, sizeof sc->chain[pi]);

    for (guint i = 0; i < n; i++) {
        const char *name = sc->milters->pdata[i];
        g_autoptr(GPtrArray) files = scope_files(s, sc, GR_KIND_MILTER, name, NULL);
        g_autofree char *t1 =
            g_strdup_printf("%s: milter %s, would-be actions, %s", sc->label, name, p->title);
        g_autofree char *b1 = g_strdup_printf("%s/milter-%s-%s", dir, name, p->name);
        g.kind = GR_KIND_MILTER;
        g.files = (const char *const *)files->pdata;
        g.title = t1;
        g.base = b1;
        if (!gr_render_counts(&g, error))
            return FALSE;
        memcpy(&sc->milter[pi][i * GR_M_COUNT], g.totals, sizeof(double) * GR_M_COUNT);

        g_autoptr(GPtrArray) lat = scope_files(s, sc, GR_KIND_LATENCY, name, NULL);
        g_autofree char *t2 =
            g_strdup_printf("%s: milter %s, latency per message, %s", sc->label, name, p->title);
        g_autofree char *b2 = g_strdup_printf("%s/latency-%s-%s", dir, name, p->name);
        g.kind = GR_KIND_LATENCY;
        g.files = (const char *const *)lat->pdata;
        g.title = t2;
        g.base = b2;
        if (!gr_render_latency(&g, o->mta_timeout_ms, error))
            return FALSE;
        sc->lat[pi][i * GR_L_COUNT + GR_L_N] = g.totals[0];
        sc->lat[pi][i * GR_L_COUNT + GR_L_SUM] = g.totals[1];
    }

    for (guint i = 0; i < n; i++)
        for (guint j = i + 1; j < n; j++) {
            g_autoptr(GPtrArray) files =
                scope_files(s, sc, GR_KIND_PAIR, sc->milters->pdata[i], sc->milters->pdata[j]);
            double *out = &sc->pair[pi][(i * n + j) * GR_P_COUNT];
            for (guint k = 0; files->pdata[k] != NULL; k++) {
                double t[GR_P_COUNT];
                if (!gr_store_totals(s, files->pdata[k], end - p->span, end, p->res, t, GR_P_COUNT,
                                     error))
                    return FALSE;
                for (guint d = 0; d < GR_P_COUNT; d++)
                    out[d] += t[d];
            }
        }
    GrAgreement ag = { n, (const char *const *)sc->milters->pdata, sc->milter[pi], sc->pair[pi] };
    g_autofree char *t3 = g_strdup_printf("%s: agreement to block, %s", sc->label, p->title);
    g_autofree char *b3 = g_strdup_printf("%s/agreement-%s", dir, p->name);
    g_autofree char *t4 = g_strdup_printf(
        "%s: share of messages each milter would have blocked, %s", sc->label, p->title);
    g_autofree char *b4 = g_strdup_printf("%s/share-%s", dir, p->name);
    return gr_chart_agreement(&ag, t3, b3, error) && gr_chart_share(&ag, t4, b4, error);
}

/* html_escape_append - append text with HTML's special characters escaped */
static void
html_escape_append(GString *out, const char *s)
{
    g_autofree char *e = g_markup_escape_text(s, -1);
    g_string_append(out, e);
}

/* utc - a time in seconds as "YYYY-MM-DD HH:MM UTC" */
static char *
utc(gint64 t)
{
    g_autoptr(GDateTime) d = g_date_time_new_from_unix_utc(t);
    return d != NULL ? g_date_time_format(d, "%Y-%m-%d %H:%M UTC") : g_strdup("?");
}

/* html_img - one image with its SVG linked */
static void
html_img(GString *h, const char *id, const char *name, const char *period, int w, int hgt,
         const char *alt)
{
    g_string_append_printf(h,
                           "<figure><a href=\"%s/%s-%s.svg\"><img src=\"%s/%s-%s.png\" "
                           "width=\"%d\" height=\"%d\" alt=\"",
                           id, name, period, id, name, period, w, hgt);
    html_escape_append(h, alt);
    g_string_append(h, "\"></a></figure>\n");
}

/* cnt - a count as a table cell; unknown (no complete row yet) as "-" */
static void
cnt(GString *h, double v)
{
    if (isnan(v))
        g_string_append(h, "<td>-</td>");
    else
        g_string_append_printf(h, "<td>%.0f</td>", v);
}

/* pct - a share as text */
static void
pct(GString *h, double part, double whole)
{
    if (whole > 0 && !isnan(part))
        g_string_append_printf(h, "<td>%.1f%%</td>", 100.0 * part / whole);
    else
        g_string_append(h, "<td>-</td>");
}

/* html_summary - the scope's table: per series and period, messages and share blocked */
static void
html_summary(GString *h, const GrScope *sc)
{
    g_string_append(h, "<div class=\"scroll\"><table>\n<tr><th rowspan=\"2\">series</th>");
    for (guint p = 0; p < GR_N_PERIODS; p++)
        g_string_append_printf(h, "<th colspan=\"4\">%s</th>", gr_periods[p].title);
    g_string_append(h, "</tr>\n<tr>");
    for (guint p = 0; p < GR_N_PERIODS; p++)
        g_string_append(h, "<th>messages</th><th>blocked</th><th>held</th><th>errors</th>");
    g_string_append(h, "</tr>\n<tr><td>chain</td>");
    for (guint p = 0; p < GR_N_PERIODS; p++) {
        const double *c = sc->chain[p];
        cnt(h, c[GR_C_SEEN]);
        pct(h, c[GR_C_REJECTED] + c[GR_C_TEMPFAILED] + c[GR_C_DISCARDED], c[GR_C_SEEN]);
        pct(h, c[GR_C_QUARANTINED], c[GR_C_SEEN]);
        pct(h, c[GR_C_INCOMPLETE], c[GR_C_SEEN]);
    }
    g_string_append(h, "</tr>\n");
    for (guint i = 0; i < sc->milters->len; i++) {
        g_string_append(h, "<tr><td>");
        html_escape_append(h, sc->milters->pdata[i]);
        g_string_append(h, "</td>");
        for (guint p = 0; p < GR_N_PERIODS; p++) {
            const double *c = &sc->milter[p][i * GR_M_COUNT];
            cnt(h, c[GR_M_SEEN]);
            pct(h, c[GR_M_REJECT] + c[GR_M_TEMPFAIL] + c[GR_M_DISCARD], c[GR_M_SEEN]);
            pct(h, c[GR_M_QUARANTINE], c[GR_M_SEEN]);
            pct(h, c[GR_M_ERROR] + c[GR_M_TIMEOUT], c[GR_M_SEEN]);
        }
        g_string_append(h, "</tr>\n");
    }
    g_string_append(h,
                    "</table></div>\n<p class=\"note\">blocked: reject, tempfail or discard; held: "
                    "quarantine; errors: no verdict (error, timeout, unavailable, overflow; "
                    "for the chain: messages with such a milter). Totals count complete archive "
                    "rows: up to 3 minutes (day), 56 minutes (week), 4 h 40 min (35 days) or "
                    "56 hours (420 days) behind.</p>\n");
}

/* html_scope - one scope's section: span, summary table, graphs by period */
static void
html_scope(GString *h, const GrScope *sc)
{
    g_string_append_printf(h, "<section id=\"%s\">\n<h2>", sc->id);
    html_escape_append(h, sc->label);
    g_string_append(h, "</h2>\n");
    g_autofree char *from = utc(sc->first_ts / 1000);
    g_autofree char *to = utc(sc->last_ts / 1000);
    g_autofree char *end = utc(sc->end);
    if (sc->first_ts >= 0)
        g_string_append_printf(h, "<p>Data from %s to %s; series written up to %s.</p>\n", from, to,
                               end);
    g_string_append(h, "<p>");
    for (guint p = 0; p < GR_N_PERIODS; p++)
        g_string_append_printf(h, "%s<a href=\"#%s-%s\">%s</a>", p ? " | " : "", sc->id,
                               gr_periods[p].name, gr_periods[p].title);
    g_string_append(h, "</p>\n");
    html_summary(h, sc);
    for (guint p = 0; p < GR_N_PERIODS; p++) {
        const char *pn = gr_periods[p].name;
        g_string_append_printf(h, "<h3 id=\"%s-%s\">", sc->id, pn);
        html_escape_append(h, sc->label);
        g_string_append_printf(h, ", %s</h3>\n<div class=\"row\">\n", gr_periods[p].title);
        html_img(h, sc->id, "chain", pn, GR_GRAPH_WIDTH, GR_COUNTS_HEIGHT, "chain outcome");
        html_img(h, sc->id, "share", pn, GR_CHART_WIDTH, GR_CHART_HEIGHT, "share blocked");
        html_img(h, sc->id, "agreement", pn, GR_CHART_WIDTH, GR_CHART_HEIGHT, "agreement");
        for (guint i = 0; i < sc->milters->len; i++) {
            g_autofree char *a = g_strconcat("milter-", (char *)sc->milters->pdata[i], NULL);
            g_autofree char *l = g_strconcat("latency-", (char *)sc->milters->pdata[i], NULL);
            html_img(h, sc->id, a, pn, GR_GRAPH_WIDTH, GR_COUNTS_HEIGHT, a);
            html_img(h, sc->id, l, pn, GR_GRAPH_WIDTH, GR_LATENCY_HEIGHT, l);
        }
        g_string_append(h, "</div>\n");
    }
    g_string_append(h, "</section>\n");
}

/* html_page - the whole page */
static char *
html_page(const GrOutputOptions *o, GPtrArray *scopes)
{
    GString *h = g_string_new(NULL);
    g_autofree char *updated = utc(o->update_time);
    g_string_append_printf(
        h,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
        "<meta http-equiv=\"refresh\" content=\"%d\">\n"
        "<meta name=\"viewport\" content=\"width=device-width, "
        "initial-scale=1\">\n<title>shadow-graphs: milters in shadow "
        "mode</title>\n<style>\n"
        "body{font-family:'DejaVu Sans',sans-serif;margin:1.5em;color:#333;background:#fff;"
        "overflow-wrap:anywhere}\n"
        "h1{font-size:1.4em;margin-bottom:.2em}h2{border-bottom:2px solid #ddd;padding-top:1em}\n"
        "h3{font-size:1.05em;margin-top:1.5em}\n"
        "table{border-collapse:collapse;font-size:.9em}td,th{border:1px solid #ddd;"
        "padding:.25em .6em;text-align:right}td:first-child{text-align:left}\n"
        "th{background:#f4f4f4}.note{font-size:.85em;color:#666}\n"
        ".row{display:flex;flex-wrap:wrap;gap:12px}figure{margin:0;min-width:0;max-width:100%%}"
        "img{border:1px solid #eee;max-width:100%%;height:auto}\n"
        ".scroll{overflow-x:auto;max-width:100%%}\n"
        "</style>\n</head>\n<body>\n<h1>Milters in shadow mode</h1>\n"
        "<p>Updated %s; this page reloads every %d minutes.</p>\n",
        GR_REFRESH, updated, GR_REFRESH / 60);
    if (scopes->len == 0)
        g_string_append(h, "<p>No data yet.</p>\n");
    if (scopes->len > 1) {
        g_string_append(h, "<p>Hosts:");
        for (guint i = 0; i < scopes->len; i++) {
            const GrScope *sc = scopes->pdata[i];
            g_string_append_printf(h, " <a href=\"#%s\">", sc->id);
            html_escape_append(h, sc->label);
            g_string_append(h, "</a>");
        }
        g_string_append(h, "</p>\n");
    }
    for (guint i = 0; i < scopes->len; i++)
        html_scope(h, scopes->pdata[i]);
    g_string_append(h, "</body>\n</html>\n");
    return g_string_free(h, FALSE);
}

/* json_vector - append "NAME":{ds:value,...} for one series */
static void
json_vector(GString *j, const char *name, GrKind kind, const double *v, guint n)
{
    const char *const *ds = gr_kind_ds_names(kind);
    g_string_append_printf(j, "\"%s\":{", name);
    for (guint i = 0; i < n; i++) {
        if (isnan(v[i]))
            g_string_append_printf(j, "%s\"%s\":null", i ? "," : "", ds[i]);
        else
            g_string_append_printf(j, "%s\"%s\":%.0f", i ? "," : "", ds[i], v[i]);
    }
    g_string_append(j, "}");
}

/* json_summary - the totals shown, for scripts and tests */
static char *
json_summary(GPtrArray *scopes, const GrOutputOptions *o)
{
    GString *j = g_string_new("{\"scopes\":{");
    for (guint s = 0; s < scopes->len; s++) {
        const GrScope *sc = scopes->pdata[s];
        g_string_append_printf(j, "%s\"%s\":{\"end\":%" G_GINT64_FORMAT ",\"periods\":{",
                               s ? "," : "", sc->id, sc->end);
        for (guint p = 0; p < GR_N_PERIODS; p++) {
            gint64 end = gr_period_end(&gr_periods[p], MIN(sc->end, o->now));
            g_string_append_printf(
                j, "%s\"%s\":{\"start\":%" G_GINT64_FORMAT ",\"end\":%" G_GINT64_FORMAT ",",
                p ? "," : "", gr_periods[p].name, end - gr_periods[p].span, end);
            json_vector(j, "chain", GR_KIND_CHAIN, sc->chain[p], GR_C_COUNT);
            for (guint i = 0; i < sc->milters->len; i++) {
                g_autofree char *n = g_strconcat("milter-", (char *)sc->milters->pdata[i], NULL);
                g_string_append(j, ",");
                json_vector(j, n, GR_KIND_MILTER, &sc->milter[p][i * GR_M_COUNT], GR_M_COUNT);
            }
            g_string_append(j, "}");
        }
        g_string_append(j, "}}");
    }
    g_string_append(j, "}}\n");
    return g_string_free(j, FALSE);
}

/* write_file - write a whole file atomically, naming it on error */
static gboolean
write_file(const char *path, const char *data, GError **error)
{
    GError *e = NULL;
    if (!g_file_set_contents(path, data, -1, &e)) {
        g_set_error(error, GR_OUTPUT_ERROR, 0, "%s: cannot write: %s", path, e->message);
        g_error_free(e);
        return FALSE;
    }
    return TRUE;
}

/* gr_output_write - draw everything and write the page */
gboolean
gr_output_write(const GrOutputOptions *o, GrModel *m, GrStore *s, GError **error)
{
    GPtrArray *hosts = gr_model_hosts(m);
    g_autoptr(GPtrArray) scopes = g_ptr_array_new_with_free_func(scope_free);
    guint live = 0;
    for (guint i = 0; i < hosts->len; i++)
        live += ((GrHost *)hosts->pdata[i])->written >= 0;
    if (live > 1)
        g_ptr_array_add(scopes,
                        scope_new(GR_ALL_HOSTS, "all hosts", hosts, 0, hosts->len, o->chain_order));
    for (guint i = 0; i < hosts->len; i++) {
        GrHost *h = hosts->pdata[i];
        if (h->written >= 0)
            g_ptr_array_add(scopes, scope_new(h->name, h->name, hosts, i, i + 1, o->chain_order));
    }
    if (g_mkdir_with_parents(o->out_dir, 0755) != 0) {
        g_set_error(error, GR_OUTPUT_ERROR, 0, "--out %s: cannot create: %s", o->out_dir,
                    g_strerror(errno));
        return FALSE;
    }
    for (guint i = 0; i < scopes->len; i++) {
        GrScope *sc = scopes->pdata[i];
        g_autofree char *dir = g_build_filename(o->out_dir, sc->id, NULL);
        if (g_mkdir_with_parents(dir, 0755) != 0) {
            g_set_error(error, GR_OUTPUT_ERROR, 0, "%s: cannot create: %s", dir, g_strerror(errno));
            return FALSE;
        }
        for (guint p = 0; p < GR_N_PERIODS; p++)
            if (!scope_draw_period(o, s, sc, p, dir, error))
                return FALSE;
    }
    g_autofree char *page = html_page(o, scopes);
    g_autofree char *json = json_summary(scopes, o);
    g_autofree char *index = g_build_filename(o->out_dir, "index.html", NULL);
    g_autofree char *summary = g_build_filename(o->out_dir, "summary.json", NULL);
    return write_file(summary, json, error) && write_file(index, page, error);
}
