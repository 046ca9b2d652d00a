/* SPDX-License-Identifier: MIT */
/*
 * NAME
 *	gr_state - shadow-graphs' state file: log positions and the minute not yet written
 * DESCRIPTION
 *	See gr_state.h. Count vectors are written as ';'-separated numbers in
 *	the order of the data sources of gr_store.h.
 */

/* System library. */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* Application-specific. */
#include "gr_state.h"

#define GR_STATE_ERROR (gr_state_error_quark())
GQuark gr_state_error_quark(void);
G_DEFINE_QUARK(gr - state - error - quark, gr_state_error)

#define GROUP_MAIN  "shadow-graphs"
#define LOG_PREFIX  "log "
#define HOST_PREFIX "host "

struct _GrState {
    char *path;
    GKeyFile *kf;
};

/* bad_value - the error for a value that does not parse */
static gboolean
bad_value(GrState *st, const char *group, const char *key, const char *text, GError **error)
{
    g_set_error(error, GR_STATE_ERROR, 0, "%s: [%s] %s: bad value \"%s\"", st->path, group, key,
                text != NULL ? text : "");
    return FALSE;
}

/* get_int - an integer key (absent: DEF) */
static gboolean
get_int(GrState *st, const char *group, const char *key, gint64 def, gint64 *out, GError **error)
{
    g_autofree char *text = g_key_file_get_value(st->kf, group, key, NULL);
    if (text == NULL) {
        *out = def;
        return TRUE;
    }
    char *end;
    errno = 0;
    gint64 v = g_ascii_strtoll(text, &end, 10);
    if (errno != 0 || end == text || *end != '\0')
        return bad_value(st, group, key, text, error);
    *out = v;
    return TRUE;
}

/* get_vector - N numbers separated by ';' (absent: zeros) */
static gboolean
get_vector(GrState *st, const char *group, const char *key, double *out, guint n, GError **error)
{
    g_autofree char *text = g_key_file_get_value(st->kf, group, key, NULL);
    for (guint i = 0; i < n; i++)
        out[i] = 0;
    if (text == NULL)
        return TRUE;
    g_auto(GStrv) parts = g_strsplit(text, ";", -1);
    if (g_strv_length(parts) != n)
        return bad_value(st, group, key, text, error);
    for (guint i = 0; i < n; i++) {
        char *end;
        out[i] = g_ascii_strtod(parts[i], &end);
        if (end == parts[i] || *end != '\0' || !isfinite(out[i]) || out[i] < 0)
            return bad_value(st, group, key, text, error);
    }
    return TRUE;
}

/* set_vector - write N numbers separated by ';' */
static void
set_vector(GrState *st, const char *group, const char *key, const double *v, guint n)
{
    GString *s = g_string_new(NULL);
    char buf[G_ASCII_DTOSTR_BUF_SIZE];
    for (guint i = 0; i < n; i++)
        g_string_append_printf(s, "%s%s", i ? ";" : "", g_ascii_dtostr(buf, sizeof buf, v[i]));
    g_key_file_set_value(st->kf, group, key, s->str);
    g_string_free(s, TRUE);
}

/* bad_line - the number of the first line GKeyFile cannot have parsed, or 0 */
static guint
bad_line(const char *path)
{
    g_autofree char *text = NULL;
    if (!g_file_get_contents(path, &text, NULL, NULL))
        return 0;
    g_auto(GStrv) lines = g_strsplit(text, "\n", -1);
    for (guint i = 0; lines[i] != NULL; i++) {
        const char *l = lines[i];
        while (*l == ' ' || *l == '\t')
            l++;
        gsize n = strlen(l);
        gboolean group = n >= 2 && l[0] == '[' && l[n - 1] == ']' && strchr(l + 1, '[') == NULL;
        if (*l != '\0' && *l != '#' && !group && strchr(l, '=') == NULL)
            return i + 1;
    }
    return 0;
}

/* gr_state_load - read the state file; a missing one is an empty state */
GrState *
gr_state_load(const char *path, GError **error)
{
    g_autoptr(GKeyFile) kf = g_key_file_new();
    GError *e = NULL;
    if (!g_key_file_load_from_file(kf, path, G_KEY_FILE_NONE, &e)) {
        if (!g_error_matches(e, G_FILE_ERROR, G_FILE_ERROR_NOENT)) {
            guint line = bad_line(path);
            if (line > 0)
                g_set_error(error, GR_STATE_ERROR, 0, "state file %s:%u: %s", path, line,
                            e->message);
            else
                g_set_error(error, GR_STATE_ERROR, 0, "state file %s: %s", path, e->message);
            g_error_free(e);
            return NULL;
        }
        g_error_free(e);
    } else {
        g_autofree char *v = g_key_file_get_value(kf, GROUP_MAIN, "version", NULL);
        if (v == NULL || strcmp(v, G_STRINGIFY(GR_STATE_VERSION)) != 0) {
            g_set_error(error, GR_STATE_ERROR, 0,
                        "state file %s: [" GROUP_MAIN "] version: %s, want %d (not a "
                        "shadow-graphs state file?)",
                        path, v != NULL ? v : "missing", GR_STATE_VERSION);
            return NULL;
        }
    }
    GrState *st = g_new0(GrState, 1);
    st->path = g_strdup(path);
    st->kf = g_steal_pointer(&kf);
    return st;
}

/* gr_state_free - free the state */
void
gr_state_free(GrState *st)
{
    if (st == NULL)
        return;
    g_key_file_unref(st->kf);
    g_free(st->path);
    g_free(st);
}

/* gr_state_updated - when the state was last saved (seconds), or -1 */
gint64
gr_state_updated(GrState *st)
{
    gint64 v = -1;
    if (!get_int(st, GROUP_MAIN, "updated", -1, &v, NULL))
        return -1;
    return v;
}

/* path_encode - a path as a key file value: bytes outside '!'..'~' and '\\' as \\OOO */
static char *
path_encode(const char *path)
{
    GString *s = g_string_new(NULL);
    for (const unsigned char *p = (const unsigned char *)path; *p != '\0'; p++) {
        if (*p <= ' ' || *p > '~' || *p == '\\')
            g_string_append_printf(s, "\\%03o", *p);
        else
            g_string_append_c(s, (char)*p);
    }
    return g_string_free(s, FALSE);
}

/* log_group_path - the log a [log N] group is for (its path key; a version 1 file's [log PATH]
 * groups name it in the group), or NULL */
static char *
log_group_path(GrState *st, const char *group)
{
    if (!g_str_has_prefix(group, LOG_PREFIX))
        return NULL;
    g_autofree char *v = g_key_file_get_value(st->kf, group, "path", NULL);
    if (v == NULL)
        return g_strdup(group + strlen(LOG_PREFIX));
    return g_strcompress(v);
}

/* find_log_group - the group holding the position of the log at PATH, or NULL */
static char *
find_log_group(GrState *st, const char *path)
{
    g_auto(GStrv) groups = g_key_file_get_groups(st->kf, NULL);
    for (guint i = 0; groups[i] != NULL; i++) {
        g_autofree char *p = log_group_path(st, groups[i]);
        if (p != NULL && strcmp(p, path) == 0)
            return g_strdup(groups[i]);
    }
    return NULL;
}

/* gr_state_log - the saved position of a log (by its canonical path); FALSE with no error when
 * there is none */
gboolean
gr_state_log(GrState *st, const char *log, GrLogPos *out, GError **error)
{
    memset(out, 0, sizeof *out);
    out->last_ts = -1;
    g_autofree char *group = find_log_group(st, log);
    if (group == NULL)
        return FALSE;
    gint64 dev, ino, off, line, last;
    if (!get_int(st, group, "device", 0, &dev, error) ||
        !get_int(st, group, "inode", 0, &ino, error) ||
        !get_int(st, group, "offset", 0, &off, error) ||
        !get_int(st, group, "line", 0, &line, error) ||
        !get_int(st, group, "last_ts", -1, &last, error))
        return FALSE;
    if (off < 0 || line < 0 || ino < 0 || dev < 0) {
        g_autofree char *t = g_key_file_get_value(st->kf, group, off < 0 ? "offset" : "line", NULL);
        return bad_value(st, group, off < 0 ? "offset" : "line", t, error);
    }
    g_autofree char *fp = g_key_file_get_value(st->kf, group, "fingerprint", NULL);
    if (fp != NULL) {
        char *end;
        errno = 0;
        out->fingerprint = g_ascii_strtoull(fp, &end, 16);
        if (errno != 0 || end == fp || *end != '\0')
            return bad_value(st, group, "fingerprint", fp, error);
        out->has_fingerprint = TRUE;
    }
    out->path = g_strdup(log);
    out->key = g_strdup(log);
    out->device = (guint64)dev;
    out->inode = (guint64)ino;
    out->offset = (guint64)off;
    out->line = (guint64)line;
    out->last_ts = last;
    return TRUE;
}

/* restore_host - one [host NAME] group into the model */
static gboolean
restore_host(GrState *st, GrModel *m, const char *group, GError **error)
{
    GrHost *h = gr_model_host(m, group + strlen(HOST_PREFIX));
    if (h == NULL)
        return TRUE; /* past GR_MAX_HOSTS: reported */
    g_auto(GStrv) milters = g_key_file_get_string_list(st->kf, group, "milters", NULL, NULL);
    for (guint i = 0; milters != NULL && milters[i] != NULL; i++) {
        g_autoptr(GError) e = NULL;
        if (*milters[i] != '\0' && gr_model_milter(m, h, milters[i], &e) < 0 &&
            !h->overflow_warned) {
            g_printerr("shadow-graphs: %s; the others are not graphed\n", e->message);
            h->overflow_warned = TRUE;
        }
    }
    gint64 pending, first, last;
    if (!get_int(st, group, "pending_minute", -1, &pending, error) ||
        !get_int(st, group, "first_ts", -1, &first, error) ||
        !get_int(st, group, "last_ts", -1, &last, error))
        return FALSE;
    h->first_ts = first;
    h->last_ts = last;
    if (pending < 0)
        return TRUE;
    if (pending % GR_STEP != 0) {
        g_autofree char *t = g_key_file_get_value(st->kf, group, "pending_minute", NULL);
        return bad_value(st, group, "pending_minute", t, error);
    }
    if (h->written >= 0 && pending + GR_STEP <= h->written)
        return TRUE; /* already written (a run that wrote the RRDs and then failed) */
    h->pending = pending;
    h->restored = TRUE;
    if (!get_vector(st, group, "chain", h->chain, GR_C_COUNT, error))
        return FALSE;
    for (guint i = 0; i < h->milters->len; i++) {
        GrMilter *ml = h->milters->pdata[i];
        g_autofree char *k1 = g_strconcat("milter.", ml->name, NULL);
        g_autofree char *k2 = g_strconcat("latency.", ml->name, NULL);
        if (!get_vector(st, group, k1, ml->c, GR_M_COUNT, error) ||
            !get_vector(st, group, k2, ml->lat, GR_L_COUNT, error))
            return FALSE;
        for (guint j = i + 1; j < h->milters->len; j++) {
            GrMilter *other = h->milters->pdata[j];
            g_autofree char *k3 = g_strconcat("pair.", ml->name, "+", other->name, NULL);
            if (!g_key_file_has_key(st->kf, group, k3, NULL))
                continue;
            GrPair *p = gr_model_pair(m, h, i, j, error);
            if (!get_vector(st, group, k3, p->c, GR_P_COUNT, error))
                return FALSE;
        }
    }
    return TRUE;
}

/* gr_state_restore - hosts, milters and pending minutes of the state into the model */
gboolean
gr_state_restore(GrState *st, GrModel *m, GError **error)
{
    g_auto(GStrv) groups = g_key_file_get_groups(st->kf, NULL);
    for (guint i = 0; groups[i] != NULL; i++)
        if (g_str_has_prefix(groups[i], HOST_PREFIX) && !restore_host(st, m, groups[i], error))
            return FALSE;
    return TRUE;
}

/* save_host - one host into its [host NAME] group */
static void
save_host(GrState *st, GrHost *h)
{
    g_autofree char *group = g_strconcat(HOST_PREFIX, h->name, NULL);
    g_key_file_remove_group(st->kf, group, NULL);
    g_autoptr(GPtrArray) names = g_ptr_array_new();
    for (guint i = 0; i < h->milters->len; i++)
        g_ptr_array_add(names, ((GrMilter *)h->milters->pdata[i])->name);
    g_key_file_set_string_list(st->kf, group, "milters", (const char *const *)names->pdata,
                               names->len);
    g_key_file_set_int64(st->kf, group, "first_ts", h->first_ts);
    g_key_file_set_int64(st->kf, group, "last_ts", h->last_ts);
    g_key_file_set_int64(st->kf, group, "pending_minute", h->pending);
    if (h->pending < 0)
        return;
    set_vector(st, group, "chain", h->chain, GR_C_COUNT);
    for (guint i = 0; i < h->milters->len; i++) {
        GrMilter *ml = h->milters->pdata[i];
        g_autofree char *k1 = g_strconcat("milter.", ml->name, NULL);
        g_autofree char *k2 = g_strconcat("latency.", ml->name, NULL);
        set_vector(st, group, k1, ml->c, GR_M_COUNT);
        set_vector(st, group, k2, ml->lat, GR_L_COUNT);
        for (guint j = i + 1; j < h->milters->len; j++) {
            GrPair *p = h->pairs[i * GR_MAX_MILTERS + j];
            if (p == NULL)
                continue;
            GrMilter *other = h->milters->pdata[j];
            g_autofree char *k3 = g_strconcat("pair.", ml->name, "+", other->name, NULL);
            set_vector(st, group, k3, p->c, GR_P_COUNT);
        }
    }
}

/* copy_group - every key of GROUP of FROM into TO's group AS */
static void
copy_group(GKeyFile *from, const char *group, GKeyFile *to, const char *as)
{
    g_auto(GStrv) keys = g_key_file_get_keys(from, group, NULL, NULL);
    for (guint i = 0; keys != NULL && keys[i] != NULL; i++) {
        g_autofree char *v = g_key_file_get_value(from, group, keys[i], NULL);
        if (v != NULL)
            g_key_file_set_value(to, as, keys[i], v);
    }
}

/* save_logs - the state's groups again, the logs as [log 1], [log 2]...: first those of earlier
 * runs this one did not read, then this run's */
static void
save_logs(GrState *st, const GrLogPos *logs, guint n)
{
    g_autoptr(GKeyFile) kf = g_key_file_new();
    g_auto(GStrv) groups = g_key_file_get_groups(st->kf, NULL);
    g_autoptr(GHashTable) kept = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
    guint no = 0;
    for (guint i = 0; groups[i] != NULL; i++) {
        g_autofree char *path = log_group_path(st, groups[i]);
        if (path == NULL) {
            copy_group(st->kf, groups[i], kf, groups[i]);
            continue;
        }
        gboolean now = FALSE;
        for (guint j = 0; j < n && !now; j++)
            now = strcmp(logs[j].key, path) == 0;
        if (now || !g_hash_table_add(kept, g_strdup(path)))
            continue; /* read by this run, or a second group for it (the first is the one read) */
        g_autofree char *group = g_strdup_printf(LOG_PREFIX "%u", ++no);
        g_autofree char *enc = path_encode(path);
        copy_group(st->kf, groups[i], kf, group);
        g_key_file_set_value(kf, group, "path", enc);
    }
    for (guint i = 0; i < n; i++) {
        g_autofree char *group = g_strdup_printf(LOG_PREFIX "%u", ++no);
        g_autofree char *enc = path_encode(logs[i].key);
        g_key_file_set_value(kf, group, "path", enc);
        g_key_file_set_uint64(kf, group, "device", logs[i].device);
        g_key_file_set_uint64(kf, group, "inode", logs[i].inode);
        g_key_file_set_uint64(kf, group, "offset", logs[i].offset);
        g_key_file_set_uint64(kf, group, "line", logs[i].line);
        g_key_file_set_int64(kf, group, "last_ts", logs[i].last_ts);
        if (logs[i].has_fingerprint) {
            char fp[GR_FP_HEX + 1];
            g_snprintf(fp, sizeof fp, "%016" G_GINT64_MODIFIER "x", logs[i].fingerprint);
            g_key_file_set_value(kf, group, "fingerprint", fp);
        }
    }
    g_key_file_unref(st->kf);
    st->kf = g_steal_pointer(&kf);
}

/* gr_state_save - positions and hosts, written atomically (temporary file, fsync, rename) */
gboolean
gr_state_save(GrState *st, GrModel *m, const GrLogPos *logs, guint n, GError **error)
{
    g_key_file_set_integer(st->kf, GROUP_MAIN, "version", GR_STATE_VERSION);
    g_key_file_set_int64(st->kf, GROUP_MAIN, "updated", (gint64)time(NULL));
    save_logs(st, logs, n);
    GPtrArray *hosts = gr_model_hosts(m);
    for (guint i = 0; i < hosts->len; i++)
        save_host(st, hosts->pdata[i]);
    gsize len;
    g_autofree char *data = g_key_file_to_data(st->kf, &len, NULL);
    GError *e = NULL;
    if (!g_file_set_contents(st->path, data, (gssize)len, &e)) {
        g_set_error(error, GR_STATE_ERROR, 0, "state file %s: cannot write: %s", st->path,
                    e->message);
        g_error_free(e);
        return FALSE;
    }
    return TRUE;
}
