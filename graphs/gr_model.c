/* SPDX-License-Identifier: MIT */
/*
 * NAME
 *	gr_model - per host, per minute counts of what the milters and the chain would have done
 * DESCRIPTION
 *	See gr_model.h. The per-message path allocates nothing: the host and
 *	the milters of the previous message are remembered by name, so a run
 *	of messages through the same chain costs string comparisons only.
 */

/* System library. */
#include <math.h>
#include <string.h>

/* Application-specific. */
#include "gr_model.h"

#define GR_MODEL_ERROR (gr_model_error_quark())
GQuark gr_model_error_quark(void);
G_DEFINE_QUARK(gr - model - error - quark, gr_model_error)

struct _GrModel {
    GrStore *store;
    GPtrArray *hosts;   /* GrHost * */
    GHashTable *byname; /* name -> GrHost * */
    GrHost *last_host;  /* host of the previous message, by its name as logged */
    char *last_host_raw;
    GHashTable *skipped; /* cleaned names of hosts past GR_MAX_HOSTS, reported */
};

/* name_hash - FNV-1a (32 bits) of a name: the stable suffix that keeps cleaned names apart */
static guint32
name_hash(const char *name)
{
    guint32 h = GR_FNV32_BASIS;
    for (const unsigned char *p = (const unsigned char *)name; *p != '\0'; p++)
        h = (h ^ *p) * GR_FNV32_PRIME;
    return h;
}

/* name_reserved - whether a name is one of the page's own files in the output directory */
static gboolean
name_reserved(const char *name)
{
    static const char *const reserved[] = { "index.html", "summary.json", NULL };
    for (guint i = 0; reserved[i] != NULL; i++)
        if (strcmp(name, reserved[i]) == 0)
            return TRUE;
    return FALSE;
}

/* gr_name_clean - a host or milter name fit for a file name: [A-Za-z0-9._-], others '-'; a name
 * that had to change (or is a page file's) gets "-" and 8 hex digits of a hash of it as given,
 * so two names never share a file; a clean name is its own cleaned name */
char *
gr_name_clean(const char *name)
{
    if (name == NULL)
        name = "";
    gboolean changed = *name == '\0' || strlen(name) > GR_NAME_MAX || name_reserved(name);
    GString *s = g_string_new(*name == '\0' ? "unknown" : NULL);
    for (const char *p = name; *p != '\0' && s->len < GR_NAME_MAX; p++) {
        gboolean ok = g_ascii_isalnum(*p) || *p == '.' || *p == '-' || *p == '_';
        if (p == name && (*p == '.' || *p == '_'))
            ok = FALSE;
        g_string_append_c(s, ok ? *p : '-');
        changed |= !ok;
    }
    if (changed) {
        g_string_truncate(s, MIN(s->len, GR_NAME_MAX - GR_NAME_HASH_LEN));
        g_string_append_printf(s, "-%08" G_GINT32_MODIFIER "x", name_hash(name));
    }
    return g_string_free(s, FALSE);
}

/* milter_free - free one milter's record */
static void
milter_free(gpointer p)
{
    GrMilter *ml = p;
    g_free(ml->name);
    g_free(ml);
}

/* host_free - free one host's record */
static void
host_free(gpointer p)
{
    GrHost *h = p;
    for (guint i = 0; i < h->cache_n; i++)
        g_free(h->cache_raw[i]);
    for (guint i = 0; i < GR_MAX_MILTERS * GR_MAX_MILTERS; i++)
        g_free(h->pairs[i]);
    g_free(h->pairs);
    g_ptr_array_unref(h->milters);
    g_hash_table_unref(h->index);
    g_free(h->name);
    g_free(h);
}

/* gr_model_new - an empty model writing to STORE */
GrModel *
gr_model_new(GrStore *store)
{
    GrModel *m = g_new0(GrModel, 1);
    m->store = store;
    m->hosts = g_ptr_array_new_with_free_func(host_free);
    m->byname = g_hash_table_new(g_str_hash, g_str_equal);
    m->skipped = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
    return m;
}

/* gr_model_free - free the model (queued updates stay in the store) */
void
gr_model_free(GrModel *m)
{
    if (m == NULL)
        return;
    g_free(m->last_host_raw);
    g_hash_table_unref(m->byname);
    g_hash_table_unref(m->skipped);
    g_ptr_array_unref(m->hosts);
    g_free(m);
}

/* gr_model_hosts - the hosts, in order of first appearance */
GPtrArray *
gr_model_hosts(GrModel *m)
{
    return m->hosts;
}

/* note_last - raise the host's written time to an existing file's last update */
static void
note_last(GrModel *m, GrHost *h, GrKind kind, const char *name)
{
    g_autofree char *path = gr_store_path(m->store, kind, h->name, name);
    gint64 last = gr_store_last(m->store, path);
    if (last > h->written)
        h->written = last;
}

/* gr_model_host - the host of that name (cleaned), added if new; NULL past GR_MAX_HOSTS (each such
 * host is named once on standard error: its messages are skipped, and reading goes on) */
GrHost *
gr_model_host(GrModel *m, const char *name)
{
    g_autofree char *clean = gr_name_clean(name);
    GrHost *h = g_hash_table_lookup(m->byname, clean);
    if (h != NULL)
        return h;
    if (m->hosts->len >= GR_MAX_HOSTS) {
        guint n = g_hash_table_size(m->skipped);
        if (n < GR_MAX_SKIPPED && !g_hash_table_contains(m->skipped, clean)) {
            g_printerr("shadow-graphs: host %s: more than %d hosts; its messages are not "
                       "counted%s\n",
                       clean, GR_MAX_HOSTS,
                       n + 1 == GR_MAX_SKIPPED ? " (further such hosts are not named)" : "");
            g_hash_table_add(m->skipped, g_steal_pointer(&clean));
        }
        return NULL;
    }
    h = g_new0(GrHost, 1);
    h->name = g_steal_pointer(&clean);
    h->milters = g_ptr_array_new_with_free_func(milter_free);
    h->index = g_hash_table_new(g_str_hash, g_str_equal);
    h->pairs = g_new0(GrPair *, GR_MAX_MILTERS * GR_MAX_MILTERS);
    h->pending = -1;
    h->written = -1;
    h->first_ts = -1;
    h->last_ts = -1;
    note_last(m, h, GR_KIND_CHAIN, NULL);
    g_ptr_array_add(m->hosts, h);
    g_hash_table_insert(m->byname, h->name, h);
    return h;
}

/* gr_model_milter - index of a host's milter (cleaned name), added if new; -1 past the limit */
gint
gr_model_milter(GrModel *m, GrHost *h, const char *name, GError **error)
{
    g_autofree char *clean = gr_name_clean(name);
    gpointer v = g_hash_table_lookup(h->index, clean);
    if (v != NULL)
        return GPOINTER_TO_INT(v) - 1;
    if (h->milters->len >= GR_MAX_MILTERS) {
        g_set_error(error, GR_MODEL_ERROR, 0, "host %s: milter %s: more than %d milters", h->name,
                    clean, GR_MAX_MILTERS);
        return -1;
    }
    GrMilter *ml = g_new0(GrMilter, 1);
    ml->name = g_steal_pointer(&clean);
    note_last(m, h, GR_KIND_MILTER, ml->name);
    g_ptr_array_add(h->milters, ml);
    g_hash_table_insert(h->index, ml->name, GINT_TO_POINTER((gint)h->milters->len));
    return (gint)h->milters->len - 1;
}

/* gr_model_pair - the pair record of milters I < J of a host, added if new */
GrPair *
gr_model_pair(GrModel *m, GrHost *h, guint i, guint j, GError **error)
{
    GrPair **slot = &h->pairs[i * GR_MAX_MILTERS + j];
    if (*slot == NULL)
        *slot = g_new0(GrPair, 1);
    return *slot;
}

/* pair_name - "A+B" for milters I and J of a host, in name order */
static char *
pair_name(GrHost *h, guint i, guint j)
{
    const char *a = ((GrMilter *)h->milters->pdata[i])->name;
    const char *b = ((GrMilter *)h->milters->pdata[j])->name;
    return strcmp(a, b) < 0 ? g_strconcat(a, "+", b, NULL) : g_strconcat(b, "+", a, NULL);
}

/* host_files - make sure every series of the host has its file, new ones starting at START */
static gboolean
host_files(GrModel *m, GrHost *h, gint64 start, GError **error)
{
    if (h->chain_file == NULL && (h->chain_file = gr_store_file(m->store, GR_KIND_CHAIN, h->name,
                                                                NULL, start, error)) == NULL)
        return FALSE;
    for (guint i = 0; i < h->milters->len; i++) {
        GrMilter *ml = h->milters->pdata[i];
        if (ml->file == NULL && (ml->file = gr_store_file(m->store, GR_KIND_MILTER, h->name,
                                                          ml->name, start, error)) == NULL)
            return FALSE;
        if (ml->lat_file == NULL &&
            (ml->lat_file =
                 gr_store_file(m->store, GR_KIND_LATENCY, h->name, ml->name, start, error)) == NULL)
            return FALSE;
    }
    for (guint i = 0; i < h->milters->len; i++)
        for (guint j = i + 1; j < h->milters->len; j++) {
            GrPair *p = h->pairs[i * GR_MAX_MILTERS + j];
            if (p == NULL || p->file != NULL)
                continue;
            g_autofree char *name = pair_name(h, i, j);
            if ((p->file = gr_store_file(m->store, GR_KIND_PAIR, h->name, name, start, error)) ==
                NULL)
                return FALSE;
        }
    return TRUE;
}

/* host_write - queue one update at TS for every file of the host: counts, or zeros */
static void
host_write(GrModel *m, GrHost *h, gint64 ts, gboolean zeros)
{
    static const double zero[GR_MAX_DS];
    const double lat_zero[GR_L_COUNT] = { 0, 0, NAN };
    gr_file_append(m->store, h->chain_file, ts, zeros ? zero : h->chain);
    for (guint i = 0; i < h->milters->len; i++) {
        GrMilter *ml = h->milters->pdata[i];
        gr_file_append(m->store, ml->file, ts, zeros ? zero : ml->c);
        if (zeros || ml->lat[GR_L_N] == 0) {
            double v[GR_L_COUNT] = { 0, zeros ? 0 : ml->lat[GR_L_SUM], NAN };
            gr_file_append(m->store, ml->lat_file, ts, zeros ? lat_zero : v);
        } else {
            gr_file_append(m->store, ml->lat_file, ts, ml->lat);
        }
    }
    for (guint i = 0; i < h->milters->len; i++)
        for (guint j = i + 1; j < h->milters->len; j++) {
            GrPair *p = h->pairs[i * GR_MAX_MILTERS + j];
            if (p != NULL)
                gr_file_append(m->store, p->file, ts, zeros ? zero : p->c);
        }
    if (ts > h->written)
        h->written = ts;
}

/* host_clear - forget the pending minute's counts */
static void
host_clear(GrHost *h)
{
    memset(h->chain, 0, sizeof h->chain);
    for (guint i = 0; i < h->milters->len; i++) {
        GrMilter *ml = h->milters->pdata[i];
        memset(ml->c, 0, sizeof ml->c);
        memset(ml->lat, 0, sizeof ml->lat);
    }
    for (guint i = 0; i < GR_MAX_MILTERS * GR_MAX_MILTERS; i++)
        if (h->pairs[i] != NULL)
            memset(h->pairs[i]->c, 0, sizeof h->pairs[i]->c);
    h->pending = -1;
    h->restored = FALSE;
}

/* host_new_start - where new files start: on a row of the coarsest archive, before any data */
static gint64
host_new_start(const GrHost *h, gint64 minute)
{
    gint64 base = h->written >= 0 ? h->written : minute - GR_STEP;
    return base - (base % GR_START_ALIGN + GR_START_ALIGN) % GR_START_ALIGN;
}

/* host_flush - queue the pending minute (after zeros for a gap before it) */
static gboolean
host_flush(GrModel *m, GrHost *h, GError **error)
{
    gint64 minute = h->pending;
    if (!host_files(m, h, host_new_start(h, minute), error))
        return FALSE;
    host_write(m, h, minute, TRUE);
    host_write(m, h, minute + GR_STEP, FALSE);
    host_clear(h);
    return TRUE;
}

/* message_milters - the host's milter index of each verdict, -1 for one past the limit; the
 * host's previous message's milters are remembered by name, so the usual case allocates nothing */
static void
message_milters(GrModel *m, GrHost *h, const ShadowLogMessage *msg, gint *idx)
{
    gboolean same = msg->n_verdicts == h->cache_n;
    for (guint k = 0; same && k < msg->n_verdicts; k++)
        same = msg->verdicts[k].milter != NULL &&
               strcmp(msg->verdicts[k].milter, h->cache_raw[k]) == 0;
    if (same) {
        memcpy(idx, h->cache_idx, sizeof(gint) * h->cache_n);
        return;
    }
    for (guint k = 0; k < h->cache_n; k++)
        g_clear_pointer(&h->cache_raw[k], g_free);
    h->cache_n = 0;
    for (guint k = 0; k < msg->n_verdicts; k++) {
        g_autoptr(GError) e = NULL;
        idx[k] = gr_model_milter(m, h, msg->verdicts[k].milter, &e);
        if (idx[k] < 0 && !h->overflow_warned) {
            g_printerr("shadow-graphs: %s; the others are not graphed\n", e->message);
            h->overflow_warned = TRUE;
        }
    }
    if (msg->n_verdicts <= GR_MAX_MILTERS) {
        for (guint k = 0; k < msg->n_verdicts; k++) {
            h->cache_raw[k] = g_strdup(msg->verdicts[k].milter ? msg->verdicts[k].milter : "");
            h->cache_idx[k] = idx[k];
        }
        h->cache_n = msg->n_verdicts;
    }
}

/* message_host - the host of a message (NULL: past the limit), remembered from the previous one
 * when the same */
static GrHost *
message_host(GrModel *m, const ShadowLogMessage *msg)
{
    const char *raw = msg->host != NULL ? msg->host : "";
    if (m->last_host_raw != NULL && strcmp(raw, m->last_host_raw) == 0)
        return m->last_host;
    g_free(m->last_host_raw);
    m->last_host_raw = g_strdup(raw);
    m->last_host = gr_model_host(m, raw);
    return m->last_host;
}

/* verdict_class - the data source a verdict counts in */
static guint
verdict_class(const ShadowLogVerdict *v)
{
    switch (v->action) {
    case SHADOW_ACTION_REJECT:
        return GR_M_REJECT;
    case SHADOW_ACTION_TEMPFAIL:
        return GR_M_TEMPFAIL;
    case SHADOW_ACTION_DISCARD:
        return GR_M_DISCARD;
    case SHADOW_ACTION_TIMEOUT:
        return GR_M_TIMEOUT;
    case SHADOW_ACTION_ERROR:
    case SHADOW_ACTION_UNAVAILABLE:
    case SHADOW_ACTION_OVERFLOW:
        return GR_M_ERROR;
    case SHADOW_ACTION_ACCEPT:
        return v->quarantine != NULL ? GR_M_QUARANTINE : GR_M_ACCEPT;
    default:
        return v->quarantine != NULL ? GR_M_QUARANTINE : GR_M_CONTINUE;
    }
}

/* count_verdicts - per milter actions and latency, per pair agreement */
static void
count_verdicts(GrModel *m, GrHost *h, const ShadowLogMessage *msg, const gint *idx)
{
    gboolean blocked[GR_MAX_MILTERS];
    for (guint k = 0; k < msg->n_verdicts; k++) {
        if (idx[k] < 0)
            continue;
        const ShadowLogVerdict *v = &msg->verdicts[k];
        GrMilter *ml = h->milters->pdata[idx[k]];
        ml->c[GR_M_SEEN]++;
        ml->c[verdict_class(v)]++;
        blocked[idx[k]] = shadow_action_is_refusal(v->action);
        gint64 us = -1;
        for (guint s = 0; s < SHADOW_STAGE_COUNT; s++)
            if (v->latency_us[s] >= 0)
                us = (us < 0 ? 0 : us) + v->latency_us[s];
        if (us >= 0) {
            double ms = (double)us / 1000.0;
            ml->lat[GR_L_N]++;
            ml->lat[GR_L_SUM] += ms;
            if (ms > ml->lat[GR_L_MAX])
                ml->lat[GR_L_MAX] = ms;
        }
    }
    for (guint a = 0; a < msg->n_verdicts; a++)
        for (guint b = 0; b < msg->n_verdicts; b++) {
            gint i = idx[a], j = idx[b];
            if (i < 0 || j < 0 || i >= j)
                continue;
            GrPair *p = gr_model_pair(m, h, (guint)i, (guint)j, NULL);
            p->c[GR_P_BOTH_SEEN]++;
            if (blocked[i] && blocked[j])
                p->c[GR_P_BOTH_BLOCK]++;
            if (blocked[i] || blocked[j])
                p->c[GR_P_EITHER_BLOCK]++;
        }
}

/* gr_model_add_message - count one message in its host's pending minute; UNSAVED: it comes from a
 * log the state has no position for (read from its start) */
gboolean
gr_model_add_message(GrModel *m, const ShadowLogMessage *msg, gboolean unsaved, GError **error)
{
    GrHost *h = message_host(m, msg);
    if (h == NULL)
        return TRUE; /* past GR_MAX_HOSTS: reported once */
    gint64 sec = msg->ts_ms >= 0 ? msg->ts_ms / 1000 : (msg->ts_ms - 999) / 1000;
    gint64 minute = sec - (sec % GR_STEP + GR_STEP) % GR_STEP;
    if (h->written >= 0 && minute + GR_STEP <= h->written) {
        h->late++;
        return TRUE;
    }
    if (unsaved && h->restored && minute <= h->pending) {
        /* The restored counts may be this log's own: counting it again would double them. */
        g_printerr("shadow-graphs: host %s: a log with no saved position has messages of the "
                   "minute the last run left pending; that minute is counted from the logs "
                   "again, and what the last run had of it from other logs is dropped\n",
                   h->name);
        gint64 pending = h->pending;
        host_clear(h);
        h->pending = pending;
    }
    if (h->pending >= 0 && minute > h->pending && !host_flush(m, h, error))
        return FALSE;
    if (h->pending < 0)
        h->pending = minute;
    if (h->first_ts < 0 || msg->ts_ms < h->first_ts)
        h->first_ts = msg->ts_ms;
    if (msg->ts_ms > h->last_ts)
        h->last_ts = msg->ts_ms;
    h->messages++;

    h->chain[GR_C_SEEN]++;
    if (msg->outcome < SHADOW_OUTCOME_COUNT)
        h->chain[GR_C_DELIVERED + msg->outcome]++;
    if (msg->n_unknown > 0)
        h->chain[GR_C_INCOMPLETE]++;
    if (msg->n_verdicts == 0)
        return TRUE;
    gint idx[SHADOW_LOG_MAX_VERDICTS];
    message_milters(m, h, msg, idx);
    count_verdicts(m, h, msg, idx);
    return TRUE;
}

/* gr_model_finish - write pending minutes complete by HORIZON, fill zeros up to it */
gboolean
gr_model_finish(GrModel *m, gint64 horizon, GError **error)
{
    horizon -= (horizon % GR_STEP + GR_STEP) % GR_STEP;
    for (guint i = 0; i < m->hosts->len; i++) {
        GrHost *h = m->hosts->pdata[i];
        if (h->pending >= 0 && h->pending + GR_STEP <= horizon && !host_flush(m, h, error))
            return FALSE;
        gint64 upto = h->pending >= 0 ? h->pending : horizon;
        if (h->written < 0 && h->pending < 0)
            continue; /* nothing ever counted for it */
        if (upto > h->written) {
            if (!host_files(m, h, host_new_start(h, upto), error))
                return FALSE;
            host_write(m, h, upto, TRUE);
        }
    }
    return TRUE;
}
