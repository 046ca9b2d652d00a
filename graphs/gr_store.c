/* SPDX-License-Identifier: MIT */
/*
 * NAME
 *	gr_store - RRD files of shadow-graphs: create, last update, batched updates, totals
 * DESCRIPTION
 *	See gr_store.h. librrd keeps its error in a per-thread buffer
 *	(rrd_get_error); every call here clears it first and copies it into a
 *	GError naming the file after.
 */

/* System library. */
#include <math.h>
#include <string.h>

/* RRDtool. */
#include <rrd.h>
#include <rrd_client.h>

/* Application-specific. */
#include "gr_store.h"

G_DEFINE_QUARK(gr - store - error - quark, gr_store_error)

/* Row counts: the 1-step archive keeps 1.1 days, the others 198 rows (180 shown, 10 % spare). */
#define GR_ROWS_FINE 1584
#define GR_ROWS      198
/* RRA definitions longer than this do not exist. */
#define GR_DEF_MAX 64

struct _GrStore {
    char *dir;
    char *daemon;
    GHashTable *files; /* path -> GrFile * */
    GError *deferred;  /* first error of an automatic batch flush */
};

static const char *const milter_ds[GR_M_COUNT] = {
    "seen", "continue", "accept", "reject", "tempfail", "discard", "quarantine", "error", "timeout",
};
static const char *const chain_ds[GR_C_COUNT] = {
    "seen", "delivered", "rejected", "tempfailed", "discarded", "quarantined", "incomplete",
};
static const char *const latency_ds[GR_L_COUNT] = { "n", "sum_ms", "max_ms" };
static const char *const pair_ds[GR_P_COUNT] = { "both_seen", "both_block", "either_block" };
static const char *const kind_names[GR_KIND_COUNT] = { "milter", "latency", "chain", "pair" };
static const guint consolidations[] = { 1, 8, 56, 280, 3360 };

/* gr_kind_n_ds - number of data sources of a kind */
guint
gr_kind_n_ds(GrKind kind)
{
    static const guint n[GR_KIND_COUNT] = { GR_M_COUNT, GR_L_COUNT, GR_C_COUNT, GR_P_COUNT };
    return n[kind];
}

/* gr_kind_ds_names - data source names of a kind, in file order */
const char *const *
gr_kind_ds_names(GrKind kind)
{
    static const char *const *names[GR_KIND_COUNT] = { milter_ds, latency_ds, chain_ds, pair_ds };
    return names[kind];
}

/* gr_file_free - free a file record and its queue */
static void
gr_file_free(gpointer p)
{
    GrFile *f = p;
    g_free(f->path);
    g_ptr_array_unref(f->queue);
    g_free(f);
}

/* rrd_error_set - set a GError from librrd's error buffer, naming the file and the action */
static void
rrd_error_set(GError **error, const char *path, const char *what)
{
    const char *e = rrd_get_error();
    g_set_error(error, GR_STORE_ERROR, GR_STORE_ERROR_RRD, "%s: %s: %s", path, what,
                e != NULL && *e != '\0' ? e : "unknown librrd error");
    rrd_clear_error();
}

/* gr_store_new - a store over DIR, optionally through rrdcached at DAEMON */
GrStore *
gr_store_new(const char *dir, const char *daemon, GError **error)
{
    if (daemon != NULL) {
        rrd_clear_error();
        if (rrdc_connect(daemon) != 0) {
            rrd_error_set(error, daemon, "cannot connect to rrdcached");
            return NULL;
        }
    } else if (g_mkdir_with_parents(dir, 0755) != 0) {
        g_set_error(error, G_FILE_ERROR, g_file_error_from_errno(errno),
                    "--rrd-dir %s: cannot create: %s", dir, g_strerror(errno));
        return NULL;
    }
    GrStore *s = g_new0(GrStore, 1);
    s->dir = g_strdup(dir);
    s->daemon = g_strdup(daemon);
    s->files = g_hash_table_new_full(g_str_hash, g_str_equal, NULL, gr_file_free);
    return s;
}

/* gr_store_free - write nothing more and free the store */
void
gr_store_free(GrStore *s)
{
    if (s == NULL)
        return;
    if (s->daemon != NULL)
        rrdc_disconnect();
    g_hash_table_unref(s->files);
    g_clear_error(&s->deferred);
    g_free(s->dir);
    g_free(s->daemon);
    g_free(s);
}

/* gr_store_daemon - the rrdcached address, or NULL */
const char *
gr_store_daemon(const GrStore *s)
{
    return s->daemon;
}

/* gr_store_dir - the RRD directory */
const char *
gr_store_dir(const GrStore *s)
{
    return s->dir;
}

/* gr_store_path - the file name of a series: DIR/KIND-NAME@HOST.rrd or DIR/chain@HOST.rrd */
char *
gr_store_path(const GrStore *s, GrKind kind, const char *host, const char *name)
{
    if (kind == GR_KIND_CHAIN)
        return g_strdup_printf("%s/chain@%s.rrd", s->dir, host);
    return g_strdup_printf("%s/%s-%s@%s.rrd", s->dir, kind_names[kind], name, host);
}

/* gr_store_last - last update time of an RRD, or -1 when it does not exist or cannot be read */
gint64
gr_store_last(GrStore *s, const char *path)
{
    time_t t;
    rrd_clear_error();
    if (s->daemon != NULL) {
        t = rrdc_last(path);
    } else {
        if (!g_file_test(path, G_FILE_TEST_EXISTS))
            return -1;
        t = rrd_last_r(path);
    }
    rrd_clear_error();
    return t > 0 ? (gint64)t : -1;
}

/* store_create - create an RRD of a kind whose first row ends after START */
static gboolean
store_create(GrStore *s, const char *path, GrKind kind, gint64 start, GError **error)
{
    const char *const *names = gr_kind_ds_names(kind);
    guint n = gr_kind_n_ds(kind);
    g_autoptr(GPtrArray) args = g_ptr_array_new_with_free_func(g_free);
    for (guint i = 0; i < n; i++) {
        gboolean gauge = kind == GR_KIND_LATENCY && i == GR_L_MAX;
        g_ptr_array_add(args, g_strdup_printf("DS:%s:%s:%d:0:U", names[i],
                                              gauge ? "GAUGE" : "ABSOLUTE", GR_HEARTBEAT));
    }
    static const char *const cfs[] = { "AVERAGE", "MAX" };
    for (guint c = 0; c < G_N_ELEMENTS(cfs); c++)
        for (guint i = 0; i < G_N_ELEMENTS(consolidations); i++)
            g_ptr_array_add(args, g_strdup_printf("RRA:%s:0.5:%u:%u", cfs[c], consolidations[i],
                                                  i == 0 ? GR_ROWS_FINE : GR_ROWS));
    int rc;
    rrd_clear_error();
    if (s->daemon != NULL)
        rc = rrdc_create_r2(path, GR_STEP, (time_t)start, 1, NULL, NULL, (int)args->len,
                            (const char **)args->pdata);
    else
        rc = rrd_create_r2(path, GR_STEP, (time_t)start, 1, NULL, NULL, (int)args->len,
                           (const char **)args->pdata);
    if (rc != 0) {
        rrd_error_set(error, path, "cannot create");
        return FALSE;
    }
    return TRUE;
}

/* gr_store_file - the file of a series, created with its last update at START if new */
GrFile *
gr_store_file(GrStore *s, GrKind kind, const char *host, const char *name, gint64 start,
              GError **error)
{
    g_autofree char *path = gr_store_path(s, kind, host, name);
    GrFile *f = g_hash_table_lookup(s->files, path);
    if (f != NULL)
        return f;
    gint64 last = gr_store_last(s, path);
    if (last < 0) {
        start -= start % GR_STEP;
        if (!store_create(s, path, kind, start, error))
            return NULL;
        last = start;
    }
    f = g_new0(GrFile, 1);
    f->path = g_steal_pointer(&path);
    f->kind = kind;
    f->last = last;
    f->queue = g_ptr_array_new_with_free_func(g_free);
    g_hash_table_insert(s->files, f->path, f);
    return f;
}

/* file_write - write a file's queued updates in one call */
static gboolean
file_write(GrStore *s, GrFile *f, GError **error)
{
    if (f->queue->len == 0)
        return TRUE;
    int rc;
    rrd_clear_error();
    if (s->daemon != NULL)
        rc = rrdc_update(f->path, (int)f->queue->len, (const char *const *)f->queue->pdata);
    else
        rc = rrd_update_r(f->path, NULL, (int)f->queue->len, (const char **)f->queue->pdata);
    g_ptr_array_set_size(f->queue, 0);
    if (rc != 0) {
        rrd_error_set(error, f->path, "cannot update");
        return FALSE;
    }
    return TRUE;
}

/* format_value - one value of an update: integers exactly, others to 1/1000, NaN as U */
static void
format_value(GString *out, double v)
{
    char buf[G_ASCII_DTOSTR_BUF_SIZE];
    if (isnan(v))
        g_string_append(out, ":U");
    else if (v == floor(v) && fabs(v) < 1e15)
        g_string_append_printf(out, ":%" G_GINT64_FORMAT, (gint64)v);
    else
        g_string_append_printf(out, ":%s", g_ascii_formatd(buf, sizeof buf, "%.3f", v));
}

/* gr_file_append - queue an update at TS unless the file already has one at or after it */
void
gr_file_append(GrStore *s, GrFile *f, gint64 ts, const double *v)
{
    if (ts <= f->last)
        return;
    GString *line = g_string_sized_new(64);
    g_string_append_printf(line, "%" G_GINT64_FORMAT, ts);
    for (guint i = 0; i < gr_kind_n_ds(f->kind); i++)
        format_value(line, v[i]);
    g_ptr_array_add(f->queue, g_string_free(line, FALSE));
    f->last = ts;
    if (f->queue->len >= GR_BATCH) {
        GError *e = NULL;
        if (!file_write(s, f, &e)) {
            if (s->deferred == NULL)
                s->deferred = e;
            else
                g_error_free(e);
        }
    }
}

/* gr_store_flush - write every queued update; the first failure is returned */
gboolean
gr_store_flush(GrStore *s, GError **error)
{
    GHashTableIter it;
    gpointer value;
    g_hash_table_iter_init(&it, s->files);
    while (g_hash_table_iter_next(&it, NULL, &value)) {
        GError *e = NULL;
        if (!file_write(s, value, &e)) {
            if (s->deferred == NULL)
                s->deferred = e;
            else
                g_error_free(e);
        }
    }
    if (s->deferred != NULL) {
        g_propagate_error(error, s->deferred);
        s->deferred = NULL;
        return FALSE;
    }
    if (s->daemon != NULL) {
        g_hash_table_iter_init(&it, s->files);
        while (g_hash_table_iter_next(&it, NULL, &value))
            rrdc_flush(((GrFile *)value)->path);
        rrd_clear_error();
    }
    return TRUE;
}

/* gr_store_totals - events per data source in (START, END] from the archive of resolution RES */
gboolean
gr_store_totals(GrStore *s, const char *path, gint64 start, gint64 end, gint64 res, double *out,
                guint n, GError **error)
{
    time_t t0 = (time_t)start, t1 = (time_t)end;
    unsigned long step = (unsigned long)res, ds_cnt = 0;
    char **names = NULL;
    rrd_value_t *data = NULL;
    int rc;
    rrd_clear_error();
    if (s->daemon != NULL)
        rc = rrdc_fetch(path, "AVERAGE", &t0, &t1, &step, &ds_cnt, &names, &data);
    else
        rc = rrd_fetch_r(path, "AVERAGE", &t0, &t1, &step, &ds_cnt, &names, &data);
    if (rc != 0) {
        rrd_error_set(error, path, "cannot fetch");
        return FALSE;
    }
    for (guint i = 0; i < n; i++)
        out[i] = 0;
    guint64 rows = step > 0 ? (guint64)(t1 - t0) / step : 0;
    for (guint64 r = 0; r < rows; r++) {
        gint64 t = (gint64)t0 + (gint64)((r + 1) * step);
        if (t <= start || t > end)
            continue;
        for (guint i = 0; i < n && i < ds_cnt; i++) {
            double v = data[r * ds_cnt + i];
            if (!isnan(v))
                out[i] += v * (double)step;
        }
    }
    for (unsigned long i = 0; i < ds_cnt; i++)
        rrd_freemem(names[i]);
    rrd_freemem(names);
    rrd_freemem(data);
    return TRUE;
}
