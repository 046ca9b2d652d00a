/* SPDX-License-Identifier: MIT */
/*
 * NAME
 *	shadow_message - shadowd's private copy of a message, edited as a chain would
 * DESCRIPTION
 *	See shadow_message.h.
 */

/* System library. */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* GLib. */
#include <glib/gstdio.h>

/* Shadow libraries. */
#include "shadow_message.h"

struct _ShadowSpool {
    guint refs;
    GByteArray *mem; /* while in memory */
    int fd;          /* once on disk, else -1 */
    gsize size;
    gsize limit;
    char *dir;
    ShadowSpoolBudget *budget; /* charged with `charged` while in memory */
    gsize charged;             /* what mem has allocated, as GByteArray grows it */
};

/* shadow_spool_new - an empty spool that moves to dir above memory_limit bytes */
ShadowSpool *
shadow_spool_new(gsize memory_limit, const char *dir)
{
    ShadowSpool *s = g_new0(ShadowSpool, 1);

    s->refs = 1;
    s->mem = g_byte_array_new();
    s->fd = -1;
    s->limit = memory_limit;
    s->dir = g_strdup(dir ? dir : g_get_tmp_dir());
    return s;
}

/* shadow_spool_ref - take a reference */
ShadowSpool *
shadow_spool_ref(ShadowSpool *s)
{
    s->refs++;
    return s;
}

/* release - give the budget back what the in-memory bytes took */
static void
release(ShadowSpool *s)
{
    if (s->budget)
        s->budget->used -= MIN(s->budget->used, s->charged);
    s->charged = 0;
}

/* Smallest allocation of a GByteArray (GLib's MIN_ARRAY_SIZE). */
#define SPOOL_MIN_ALLOCATION 16

/* allocation - what a GByteArray holding len bytes has allocated (it grows by powers of two) */
static gsize
allocation(gsize len)
{
    gsize n = SPOOL_MIN_ALLOCATION;

    if (len == 0)
        return 0;
    while (n < len && n <= G_MAXSIZE / 2)
        n <<= 1;
    return MAX(n, len);
}

/* shadow_spool_set_budget - share budget with other spools; only while empty */
void
shadow_spool_set_budget(ShadowSpool *s, ShadowSpoolBudget *budget)
{
    g_return_if_fail(s != NULL && s->size == 0);
    s->budget = budget;
}

/* shadow_spool_free - drop a reference; the last frees and closes; NULL is allowed */
void
shadow_spool_free(ShadowSpool *s)
{
    if (s == NULL || --s->refs > 0)
        return;
    release(s);
    if (s->mem)
        g_byte_array_unref(s->mem);
    if (s->fd >= 0)
        close(s->fd);
    g_free(s->dir);
    g_free(s);
}

/* write_all - write len bytes or fail */
static gboolean
write_all(int fd, const guint8 *p, gsize len, const char *what, GError **error)
{
    while (len > 0) {
        ssize_t n = write(fd, p, len);

        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            int e = errno;

            g_set_error(error, G_FILE_ERROR, g_file_error_from_errno(e), "spool %s: write: %s",
                        what, g_strerror(e));
            return FALSE;
        }
        p += n;
        len -= (gsize)n;
    }
    return TRUE;
}

/* to_disk - move the in-memory bytes to an unlinked temp file */
static gboolean
to_disk(ShadowSpool *s, GError **error)
{
    g_autofree char *path = g_build_filename(s->dir, "shadowd-spool-XXXXXX", NULL);
    int fd = g_mkstemp_full(path, O_RDWR, 0600);

    if (fd < 0) {
        int e = errno;

        g_set_error(error, G_FILE_ERROR, g_file_error_from_errno(e), "spool %s: mkstemp: %s",
                    s->dir, g_strerror(e));
        return FALSE;
    }
    (void)g_unlink(path);
    if (!write_all(fd, s->mem->data, s->mem->len, s->dir, error)) {
        close(fd);
        return FALSE;
    }
    s->fd = fd;
    release(s);
    g_clear_pointer(&s->mem, g_byte_array_unref);
    return TRUE;
}

/* over_budget - len more bytes in memory would take the shared budget over its limit */
static gboolean
over_budget(const ShadowSpool *s, gsize len)
{
    return s->budget && s->budget->used - s->charged + allocation(s->size + len) > s->budget->limit;
}

/* shadow_spool_append - add bytes; moves to disk over its limit or its budget's */
gboolean
shadow_spool_append(ShadowSpool *s, const guint8 *data, gsize len, GError **error)
{
    g_return_val_if_fail(s != NULL && (data != NULL || len == 0), FALSE);

    if (s->fd < 0 && len > 0 && s->size + len > s->limit && !to_disk(s, error))
        return FALSE;
    if (s->fd < 0 && len > 0 && over_budget(s, len) && !to_disk(s, NULL))
        s->budget->failed++; /* within its own limit memory is no worse than without a budget */
    if (s->fd >= 0) {
        if (!write_all(s->fd, data, len, s->dir, error))
            return FALSE;
    } else {
        g_byte_array_append(s->mem, data, (guint)len);
        if (s->budget) {
            gsize now = allocation(s->mem->len);

            s->budget->used += now - s->charged;
            s->charged = now;
        }
    }
    s->size += len;
    return TRUE;
}

/* shadow_spool_size - bytes held */
gsize
shadow_spool_size(const ShadowSpool *s)
{
    return s ? s->size : 0;
}

/* shadow_spool_on_disk - whether the bytes moved to the temp file */
gboolean
shadow_spool_on_disk(const ShadowSpool *s)
{
    return s != NULL && s->fd >= 0;
}

/* shadow_spool_read - copy up to len bytes from offset; *got 0 at the end */
gboolean
shadow_spool_read(ShadowSpool *s, gsize offset, guint8 *buf, gsize len, gsize *got, GError **error)
{
    gsize n;

    g_return_val_if_fail(s != NULL && buf != NULL && got != NULL, FALSE);
    *got = 0;
    if (offset >= s->size)
        return TRUE;
    n = MIN(len, s->size - offset);
    if (s->fd < 0) {
        memcpy(buf, s->mem->data + offset, n);
        *got = n;
        return TRUE;
    }
    while (*got < n) {
        ssize_t r = pread(s->fd, buf + *got, n - *got, (off_t)(offset + *got));

        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0) {
            int e = r < 0 ? errno : EIO;

            g_set_error(error, G_FILE_ERROR, g_file_error_from_errno(e), "spool %s: read: %s",
                        s->dir, g_strerror(e));
            return FALSE;
        }
        *got += (gsize)r;
    }
    return TRUE;
}

/* header_free - free a ShadowHeader */
static void
header_free(gpointer p)
{
    ShadowHeader *h = p;

    g_free(h->name);
    g_free(h->value);
    g_free(h);
}

/* header_new - a ShadowHeader with copies of name and value */
static ShadowHeader *
header_new(const char *name, const char *value)
{
    ShadowHeader *h = g_new(ShadowHeader, 1);

    h->name = g_strdup(name);
    h->value = g_strdup(value);
    return h;
}

/* shadow_message_new - an empty message */
ShadowMessage *
shadow_message_new(gsize spool_memory, const char *spool_dir)
{
    ShadowMessage *m = g_new0(ShadowMessage, 1);

    m->headers = g_ptr_array_new_with_free_func(header_free);
    m->spool_memory = spool_memory;
    m->spool_dir = g_strdup(spool_dir);
    m->body = shadow_spool_new(spool_memory, spool_dir);
    return m;
}

/* shadow_message_free - free a message; NULL is allowed */
void
shadow_message_free(ShadowMessage *m)
{
    if (m == NULL)
        return;
    g_ptr_array_unref(m->headers);
    shadow_spool_free(m->body);
    g_free(m->spool_dir);
    g_free(m);
}

/* Copy unit for spools. */
#define SPOOL_COPY_CHUNK 65536

/* shadow_message_set_budget - the memory budget of its spools, this one's and later ones */
void
shadow_message_set_budget(ShadowMessage *m, ShadowSpoolBudget *budget)
{
    m->budget = budget;
    if (shadow_spool_size(m->body) == 0)
        shadow_spool_set_budget(m->body, budget);
}

/* shadow_message_copy - an independent copy (headers and body) */
ShadowMessage *
shadow_message_copy(ShadowMessage *m, GError **error)
{
    g_autoptr(ShadowMessage) c = shadow_message_new(m->spool_memory, m->spool_dir);
    g_autofree guint8 *buf = g_malloc(SPOOL_COPY_CHUNK);
    gsize off = 0, got;

    for (guint i = 0; i < m->headers->len; i++) {
        const ShadowHeader *h = g_ptr_array_index(m->headers, i);

        g_ptr_array_add(c->headers, header_new(h->name, h->value));
    }
    shadow_message_set_budget(c, m->budget);
    do {
        if (!shadow_spool_read(m->body, off, buf, SPOOL_COPY_CHUNK, &got, error) ||
            !shadow_spool_append(c->body, buf, got, error))
            return NULL;
        off += got;
    } while (got > 0);
    return g_steal_pointer(&c);
}

/* shadow_message_fork - a copy with its own headers and the same body spool */
ShadowMessage *
shadow_message_fork(const ShadowMessage *m)
{
    ShadowMessage *c = g_new0(ShadowMessage, 1);

    c->headers = g_ptr_array_new_with_free_func(header_free);
    for (guint i = 0; i < m->headers->len; i++) {
        const ShadowHeader *h = g_ptr_array_index(m->headers, i);

        g_ptr_array_add(c->headers, header_new(h->name, h->value));
    }
    c->spool_memory = m->spool_memory;
    c->spool_dir = g_strdup(m->spool_dir);
    c->budget = m->budget;
    c->body = shadow_spool_ref(m->body);
    return c;
}

/* shadow_message_add_header - append a header (SMFIC_HEADER, SMFIR_ADDHEADER) */
void
shadow_message_add_header(ShadowMessage *m, const char *name, const char *value)
{
    g_return_if_fail(m != NULL && name != NULL && value != NULL);
    g_ptr_array_add(m->headers, header_new(name, value));
}

/* shadow_message_insert_header - SMFIR_INSHEADER with Postfix's index */
void
shadow_message_insert_header(ShadowMessage *m, guint32 index, const char *name, const char *value)
{
    guint pos;

    g_return_if_fail(m != NULL && name != NULL && value != NULL);
    /* Index 0 is above the MTA's hidden Received:, index 1 just below it. */
    pos = index == 0 ? 0 : MIN(index - 1, m->headers->len);
    g_ptr_array_insert(m->headers, (gint)pos, header_new(name, value));
}

/* shadow_message_change_header - SMFIR_CHGHEADER: change, delete, or append */
void
shadow_message_change_header(ShadowMessage *m, guint32 index, const char *name, const char *value)
{
    guint32 seen = 0, want = index == 0 ? 1 : index;

    g_return_if_fail(m != NULL && name != NULL && value != NULL);
    for (guint i = 0; i < m->headers->len; i++) {
        ShadowHeader *h = g_ptr_array_index(m->headers, i);

        if (g_ascii_strcasecmp(h->name, name) != 0 || ++seen != want)
            continue;
        if (*value == '\0') {
            g_ptr_array_remove_index(m->headers, i);
        } else {
            g_free(h->value);
            h->value = g_strdup(value);
        }
        return;
    }
    if (*value != '\0')
        shadow_message_add_header(m, name, value);
}

/* shadow_message_get_header - value of the first header of that name, or NULL */
const char *
shadow_message_get_header(const ShadowMessage *m, const char *name)
{
    for (guint i = 0; i < m->headers->len; i++) {
        const ShadowHeader *h = g_ptr_array_index(m->headers, i);

        if (g_ascii_strcasecmp(h->name, name) == 0)
            return h->value;
    }
    return NULL;
}

/* shadow_message_replace_body - take body as the new body (transfer full) */
void
shadow_message_replace_body(ShadowMessage *m, ShadowSpool *body)
{
    g_return_if_fail(m != NULL && body != NULL);
    shadow_spool_free(m->body);
    m->body = body;
}
