/* SPDX-License-Identifier: MIT */
/*
 * NAME
 *	gr_ingest - read what is new in the event logs into the model, across rotation
 * DESCRIPTION
 *	See gr_ingest.h.
 */

/* System library. */
#include <errno.h>
#include <fcntl.h>
#include <unistd.h>
#include <string.h>
#include <sys/stat.h>

/* Shadow libraries. */
#include "shadow_logread.h"

/* Application-specific. */
#include "gr_ingest.h"

#define GR_INGEST_ERROR (gr_ingest_error_quark())
GQuark gr_ingest_error_quark(void);
G_DEFINE_QUARK(gr - ingest - error - quark, gr_ingest_error)

/* The suffix logrotate gives the previous generation. */
#define ROTATED_SUFFIX ".1"

/* FNV-1a, 64 bits */
#define GR_FNV64_BASIS 14695981039346656037u
#define GR_FNV64_PRIME 1099511628211u

/* GrLogPosSaved - a saved position read from the state, freed with its strings */
typedef GrLogPos GrLogPosSaved;

/* log_pos_free - free a position read from the state */
static void
log_pos_free(GrLogPos *p)
{
    gr_log_pos_clear(p);
    g_free(p);
}
G_DEFINE_AUTOPTR_CLEANUP_FUNC(GrLogPosSaved, log_pos_free)

/* gr_log_pos_clear - free a position's strings (GArray clear function) */
void
gr_log_pos_clear(gpointer p)
{
    g_free(((GrLogPos *)p)->path);
    g_free(((GrLogPos *)p)->key);
}

/* report_damage - a damaged line: FILE:LINE: WHAT on standard error */
static void
report_damage(const char *file, guint64 line, const char *what, gpointer data)
{
    g_printerr("%s:%" G_GUINT64_FORMAT ": %s (line skipped)\n", file, line, what);
}

/* ends_line_at - whether the byte before OFFSET is a newline (where a resumed read must start) */
static gboolean
ends_line_at(const char *path, guint64 offset)
{
    if (offset == 0 || g_str_has_suffix(path, ".gz"))
        return TRUE;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return TRUE; /* the reader says why it cannot open it */
    char c = 0;
    ssize_t n = pread(fd, &c, 1, (off_t)(offset - 1));
    close(fd);
    return n == 1 && c == '\n';
}

/* fingerprint_at - FNV-1a (64 bits) of the GR_FP_BYTES bytes (fewer at the start) before OFFSET of
 * a file; FALSE when it cannot be read that far */
static gboolean
fingerprint_at(const char *path, guint64 offset, guint64 *out)
{
    guint64 n = MIN(offset, (guint64)GR_FP_BYTES);
    unsigned char buf[GR_FP_BYTES];
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return FALSE;
    ssize_t got = n > 0 ? pread(fd, buf, (size_t)n, (off_t)(offset - n)) : 0;
    close(fd);
    if (got < 0 || (guint64)got != n)
        return FALSE;
    guint64 h = GR_FNV64_BASIS;
    for (guint64 i = 0; i < n; i++)
        h = (h ^ buf[i]) * GR_FNV64_PRIME;
    *out = h;
    return TRUE;
}

/* same_before - whether a file has, before OFFSET, what the saved position's file had */
static gboolean
same_before(const char *path, const GrLogPos *saved)
{
    guint64 fp;
    if (!saved->has_fingerprint) /* a state written before fingerprints */
        return ends_line_at(path, saved->offset);
    return fingerprint_at(path, saved->offset, &fp) && fp == saved->fingerprint;
}

/* add_truncated - a log truncated in place: its copy PATH.1 from the saved offset (when its
 * content before it is the same), then the log from the start */
static gboolean
add_truncated(ShadowLogReader *r, const char *path, const char *canon, const struct stat *sb,
              const GrLogPos *saved, GError **error)
{
    g_autofree char *old = g_strconcat(canon, ROTATED_SUFFIX, NULL);
    struct stat ob;
    if (saved->has_fingerprint && stat(old, &ob) == 0 && S_ISREG(ob.st_mode) &&
        !(ob.st_ino == sb->st_ino && ob.st_dev == sb->st_dev) &&
        (guint64)ob.st_size >= saved->offset && same_before(old, saved)) {
        g_printerr("shadow-graphs: log %s: truncated in place since the last run (copytruncate); "
                   "reading its copy %s from byte %" G_GUINT64_FORMAT ", then it from the start\n",
                   path, old, saved->offset);
        if (!shadow_log_reader_add_at(r, old, saved->offset, saved->line, error))
            return FALSE;
    } else {
        g_printerr("shadow-graphs: log %s: truncated in place since the last run (it no longer "
                   "has, before byte %" G_GUINT64_FORMAT
                   ", what the last run read; now %" G_GINT64_FORMAT
                   " bytes), and %s is not its copy: EVENTS MAY HAVE BEEN LOST (those written "
                   "between the last run and the truncation); reading it from the start\n",
                   path, saved->offset, (gint64)sb->st_size, old);
    }
    return shadow_log_reader_add(r, path, error);
}

/* add_log - add one log to the reader at its saved position, or its rotated file and it */
static gboolean
add_log(ShadowLogReader *r, GrState *st, const char *path, GrLogPos *pos, GError **error)
{
    struct stat sb;
    g_autofree char *canon = realpath(path, NULL);
    if (canon == NULL || stat(path, &sb) != 0) {
        g_set_error(error, GR_INGEST_ERROR, 0, "log %s: cannot read: %s", path, g_strerror(errno));
        return FALSE;
    }
    if (!S_ISREG(sb.st_mode)) {
        g_set_error(error, GR_INGEST_ERROR, 0, "log %s: not a regular file", path);
        return FALSE;
    }
    g_autoptr(GrLogPosSaved) saved = g_new0(GrLogPos, 1);
    gboolean have = gr_state_log(st, canon, saved, error);
    if (!have && error != NULL && *error != NULL)
        return FALSE;
    pos->path = g_strdup(path);
    pos->key = g_strdup(canon);
    pos->device = (guint64)sb.st_dev;
    pos->inode = (guint64)sb.st_ino;
    pos->last_ts = have ? saved->last_ts : -1;
    pos->unsaved = !have;
    if (have && saved->inode == pos->inode && saved->device == pos->device) {
        if ((guint64)sb.st_size >= saved->offset &&
            (g_str_has_suffix(canon, ".gz") || same_before(path, saved)))
            return shadow_log_reader_add_at(r, path, saved->offset, saved->line, error);
        return add_truncated(r, path, canon, &sb, saved, error);
    }
    if (have) {
        g_autofree char *old = g_strconcat(canon, ROTATED_SUFFIX, NULL);
        struct stat ob;
        if (stat(old, &ob) == 0 && (guint64)ob.st_ino == saved->inode &&
            (guint64)ob.st_dev == saved->device && (guint64)ob.st_size >= saved->offset) {
            if (!shadow_log_reader_add_at(r, old, saved->offset, saved->line, error))
                return FALSE;
        } else {
            g_printerr("shadow-graphs: log %s: rotated since the last run, and %s is not the old "
                       "file (inode %" G_GUINT64_FORMAT "): what was written to it after the last "
                       "run is not counted\n",
                       path, old, saved->inode);
        }
    }
    return shadow_log_reader_add(r, path, error);
}

/* gr_ingest - read every log from where the last run stopped into the model */
gboolean
gr_ingest(GrState *st, GrModel *m, const char *const *logs, GArray *positions, guint64 *damaged,
          GError **error)
{
    g_autoptr(ShadowLogReader) r = shadow_log_reader_new();
    shadow_log_reader_set_damage_func(r, report_damage, NULL);
    shadow_log_reader_set_tail(r, TRUE);
    for (guint i = 0; logs != NULL && logs[i] != NULL; i++) {
        gboolean dup = FALSE;
        struct stat sb;
        gboolean have_sb = stat(logs[i], &sb) == 0;
        for (guint j = 0; j < positions->len; j++) {
            const GrLogPos *q = &g_array_index(positions, GrLogPos, j);
            if (strcmp(q->path, logs[i]) == 0 ||
                (have_sb && q->inode == (guint64)sb.st_ino && q->device == (guint64)sb.st_dev)) {
                g_printerr("shadow-graphs: --log %s: the same file as --log %s; read once\n",
                           logs[i], q->path);
                dup = TRUE;
                break;
            }
        }
        if (dup)
            continue;
        if (positions->len >= GR_MAX_LOGS) {
            g_set_error(error, GR_INGEST_ERROR, 0, "--log %s: more than %d logs", logs[i],
                        GR_MAX_LOGS);
            return FALSE;
        }
        if (strcmp(logs[i], "-") == 0) {
            g_set_error(error, GR_INGEST_ERROR, 0,
                        "--log -: standard input cannot be resumed; give the log file");
            return FALSE;
        }
        GrLogPos pos = { 0 };
        if (!add_log(r, st, logs[i], &pos, error)) {
            g_free(pos.path);
            return FALSE;
        }
        g_array_append_val(positions, pos);
    }
    const ShadowLogRecord *rec;
    const char *last_file = NULL;
    GrLogPos *last_pos = NULL;
    while ((rec = shadow_log_reader_next(r, error)) != NULL) {
        if (rec->kind != SHADOW_LOG_MESSAGE)
            continue;
        if (rec->file != last_file) {
            last_file = rec->file;
            last_pos = NULL;
            for (guint j = 0; j < positions->len; j++)
                if (strcmp(g_array_index(positions, GrLogPos, j).path, rec->file) == 0)
                    last_pos = &g_array_index(positions, GrLogPos, j);
        }
        if (last_pos != NULL && rec->message.ts_ms > last_pos->last_ts)
            last_pos->last_ts = rec->message.ts_ms;
        if (!gr_model_add_message(m, &rec->message, last_pos != NULL && last_pos->unsaved, error))
            return FALSE;
    }
    if (error != NULL && *error != NULL)
        return FALSE;
    for (guint j = 0; j < positions->len; j++) {
        GrLogPos *p = &g_array_index(positions, GrLogPos, j);
        p->offset = shadow_log_reader_resume_offset(r, p->path, &p->line);
        p->has_fingerprint =
            !g_str_has_suffix(p->key, ".gz") && fingerprint_at(p->path, p->offset, &p->fingerprint);
    }
    *damaged = shadow_log_reader_damaged(r);
    return TRUE;
}
