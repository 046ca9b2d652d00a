/* SPDX-License-Identifier: MIT */
/*
 * NAME
 *	check_shadow_message - Check suite for the message copy and its spool
 * DESCRIPTION
 *	Written from the contract in shadow_message.h (milter-protocol notes
 *	§7.2 and pitfall 12), not from the implementation.
 *
 *	headers: a table of header lists, each edited by a sequence of
 *	add/insert/change calls and compared with the list Postfix would
 *	leave: INSHEADER counts the headers as delivered, with the MTA's own
 *	Received: above ours (0 and 1 both insert first, k inserts before our
 *	header k-1, past the end appends); CHGHEADER counts occurrences of the
 *	name from 1 (0 is 1), an empty value deletes, a missing occurrence is
 *	appended. spool: bytes up to the memory limit stay in memory, past it
 *	they move to an unlinked file in the spool directory (a
 *	g_dir_make_tmp() directory per test), and read back the same across
 *	the boundary; references. message: new, deep copy, fork (shared
 *	body), body replacement.
 */

/* System library. */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Check. */
#include <check.h>

/* GLib. */
#include <glib/gstdio.h>

/* Shadow libraries. */
#include "shadow_message.h"

#define MAX_HEADERS 6
#define MAX_OPS     4

/* HeaderSpec - a header as the table gives it */
typedef struct {
    const char *name; /* NULL ends the list */
    const char *value;
} HeaderSpec;

/* HeaderOp - one edit: 'a' add, 'i' insert, 'c' change */
typedef struct {
    char op; /* 0 ends the list */
    guint32 index;
    const char *name;
    const char *value;
} HeaderOp;

/* HeaderCase - headers, the edits applied in order, and the headers wanted */
typedef struct {
    const char *id;
    HeaderSpec before[MAX_HEADERS];
    HeaderOp ops[MAX_OPS];
    HeaderSpec want[MAX_HEADERS];
} HeaderCase;

static const HeaderCase header_cases[] = {
    /* SMFIR_ADDHEADER appends, whatever is already there. */
    { "add_appends",
      { { "From", "<a@example.org>" }, { "Subject", "hi" } },
      { { 'a', 0, "X-Spam", "no" } },
      { { "From", "<a@example.org>" }, { "Subject", "hi" }, { "X-Spam", "no" } } },
    { "add_same_name_again",
      { { "X-Tag", "1" } },
      { { 'a', 0, "X-Tag", "2" } },
      { { "X-Tag", "1" }, { "X-Tag", "2" } } },
    { "add_to_empty", {}, { { 'a', 0, "X-Spam", "no" } }, { { "X-Spam", "no" } } },
    { "add_value_verbatim",
      {},
      { { 'a', 0, "X-Long", " leading space\n\tfolded" } },
      { { "X-Long", " leading space\n\tfolded" } } },

    /* SMFIR_INSHEADER: index 0 is above the MTA's Received:, so first of ours. */
    { "insert_0_first",
      { { "A", "1" }, { "B", "2" } },
      { { 'i', 0, "X", "x" } },
      { { "X", "x" }, { "A", "1" }, { "B", "2" } } },
    /* Index 1 is below the MTA's Received: but before our header 0: first too. */
    { "insert_1_first",
      { { "A", "1" }, { "B", "2" } },
      { { 'i', 1, "X", "x" } },
      { { "X", "x" }, { "A", "1" }, { "B", "2" } } },
    { "insert_2_before_second",
      { { "A", "1" }, { "B", "2" }, { "C", "3" } },
      { { 'i', 2, "X", "x" } },
      { { "A", "1" }, { "X", "x" }, { "B", "2" }, { "C", "3" } } },
    { "insert_3_before_third",
      { { "A", "1" }, { "B", "2" }, { "C", "3" } },
      { { 'i', 3, "X", "x" } },
      { { "A", "1" }, { "B", "2" }, { "X", "x" }, { "C", "3" } } },
    /* Index n+1 is before our header n, which does not exist: the end. */
    { "insert_n_plus_1_appends",
      { { "A", "1" }, { "B", "2" } },
      { { 'i', 3, "X", "x" } },
      { { "A", "1" }, { "B", "2" }, { "X", "x" } } },
    { "insert_n_before_last",
      { { "A", "1" }, { "B", "2" } },
      { { 'i', 2, "X", "x" } },
      { { "A", "1" }, { "X", "x" }, { "B", "2" } } },
    { "insert_far_past_end_appends",
      { { "A", "1" }, { "B", "2" } },
      { { 'i', 100, "X", "x" } },
      { { "A", "1" }, { "B", "2" }, { "X", "x" } } },
    { "insert_max_index_appends",
      { { "A", "1" } },
      { { 'i', G_MAXUINT32, "X", "x" } },
      { { "A", "1" }, { "X", "x" } } },
    { "insert_into_empty", {}, { { 'i', 0, "X", "x" } }, { { "X", "x" } } },
    { "insert_into_empty_past_end", {}, { { 'i', 5, "X", "x" } }, { { "X", "x" } } },
    /* Indexes count the list as it is now, after earlier edits. */
    { "insert_after_insert",
      { { "A", "1" }, { "B", "2" } },
      { { 'i', 0, "X", "x" }, { 'i', 2, "Y", "y" } },
      { { "X", "x" }, { "Y", "y" }, { "A", "1" }, { "B", "2" } } },

    /* SMFIR_CHGHEADER: the 1-based occurrence of that name. */
    { "change_first",
      { { "A", "1" }, { "Subject", "old" }, { "B", "2" } },
      { { 'c', 1, "Subject", "new" } },
      { { "A", "1" }, { "Subject", "new" }, { "B", "2" } } },
    { "change_index_0_is_1",
      { { "Subject", "old" }, { "Subject", "older" } },
      { { 'c', 0, "Subject", "new" } },
      { { "Subject", "new" }, { "Subject", "older" } } },
    { "change_second_occurrence",
      { { "X", "1" }, { "A", "a" }, { "X", "2" }, { "X", "3" } },
      { { 'c', 2, "X", "two" } },
      { { "X", "1" }, { "A", "a" }, { "X", "two" }, { "X", "3" } } },
    /* Other names do not count towards the occurrence. */
    { "change_counts_only_that_name",
      { { "Y", "1" }, { "X", "1" }, { "Y", "2" }, { "X", "2" } },
      { { 'c', 2, "X", "new" } },
      { { "Y", "1" }, { "X", "1" }, { "Y", "2" }, { "X", "new" } } },
    { "change_missing_name_appends",
      { { "A", "1" } },
      { { 'c', 1, "X-New", "v" } },
      { { "A", "1" }, { "X-New", "v" } } },
    { "change_missing_occurrence_appends",
      { { "X", "1" }, { "A", "a" } },
      { { 'c', 2, "X", "v" } },
      { { "X", "1" }, { "A", "a" }, { "X", "v" } } },
    { "delete_first",
      { { "A", "1" }, { "X", "1" }, { "B", "2" } },
      { { 'c', 1, "X", "" } },
      { { "A", "1" }, { "B", "2" } } },
    { "delete_index_0_is_1",
      { { "X", "1" }, { "X", "2" } },
      { { 'c', 0, "X", "" } },
      { { "X", "2" } } },
    { "delete_second",
      { { "X", "1" }, { "X", "2" }, { "X", "3" } },
      { { 'c', 2, "X", "" } },
      { { "X", "1" }, { "X", "3" } } },
    /* A delete shifts the occurrences after it. */
    { "delete_shifts_later_occurrences",
      { { "X", "1" }, { "X", "2" }, { "X", "3" } },
      { { 'c', 1, "X", "" }, { 'c', 1, "X", "" } },
      { { "X", "3" } } },
    /* Deleting what is not there changes nothing (nothing to append). */
    { "delete_missing_name_no_op", { { "A", "1" } }, { { 'c', 1, "X", "" } }, { { "A", "1" } } },
    { "delete_missing_occurrence_no_op",
      { { "X", "1" } },
      { { 'c', 3, "X", "" } },
      { { "X", "1" } } },
    /* Insert indexes see the list after a delete. */
    { "insert_after_delete",
      { { "A", "1" }, { "B", "2" }, { "C", "3" } },
      { { 'c', 1, "B", "" }, { 'i', 2, "X", "x" } },
      { { "A", "1" }, { "X", "x" }, { "C", "3" } } },
    /* A changed header keeps its place; a later change finds it by name. */
    { "change_then_change",
      { { "X", "1" }, { "A", "a" }, { "X", "2" } },
      { { 'c', 2, "X", "b" }, { 'c', 1, "X", "c" }, { 'a', 0, "X", "d" }, { 'c', 3, "X", "e" } },
      { { "X", "c" }, { "A", "a" }, { "X", "b" }, { "X", "e" } } },
};

/* Per-test spool directory, from g_dir_make_tmp() in the fixture. */
static char *spool_dir;

/* spool_setup - a fresh, empty spool directory for each test */
static void
spool_setup(void)
{
    GError *error = NULL;

    spool_dir = g_dir_make_tmp("check_shadow_message-XXXXXX", &error);
    ck_assert_msg(spool_dir != NULL, "g_dir_make_tmp: %s", error ? error->message : "?");
}

/* spool_teardown - remove whatever is left in the directory, then the directory */
static void
spool_teardown(void)
{
    GDir *d = g_dir_open(spool_dir, 0, NULL);
    const char *name;

    if (d) {
        while ((name = g_dir_read_name(d)) != NULL) {
            g_autofree char *path = g_build_filename(spool_dir, name, NULL);

            g_unlink(path);
        }
        g_dir_close(d);
    }
    g_rmdir(spool_dir);
    g_clear_pointer(&spool_dir, g_free);
}

/* dir_entries - number of names in a directory */
static guint
dir_entries(const char *dir)
{
    GDir *d = g_dir_open(dir, 0, NULL);
    guint n = 0;

    ck_assert_ptr_nonnull(d);
    while (g_dir_read_name(d) != NULL)
        n++;
    g_dir_close(d);
    return n;
}

/* open_deleted_in - open descriptors of this process on unlinked files in dir */
static guint
open_deleted_in(const char *dir)
{
    GDir *d = g_dir_open("/proc/self/fd", 0, NULL);
    g_autofree char *prefix = g_strconcat(dir, "/", NULL);
    const char *name;
    guint n = 0;

    ck_assert_ptr_nonnull(d);
    while ((name = g_dir_read_name(d)) != NULL) {
        g_autofree char *link = g_build_filename("/proc/self/fd", name, NULL);
        g_autofree char *target = g_file_read_link(link, NULL);

        if (target && g_str_has_prefix(target, prefix) && g_str_has_suffix(target, " (deleted)"))
            n++;
    }
    g_dir_close(d);
    return n;
}

/* headers_text - "Name: value" lines of a message, for comparison */
static char *
headers_text(const ShadowMessage *m)
{
    GString *s = g_string_new(NULL);

    for (guint i = 0; i < m->headers->len; i++) {
        const ShadowHeader *h = m->headers->pdata[i];

        g_string_append_printf(s, "[%s: %s]", h->name, h->value);
    }
    return g_string_free(s, FALSE);
}

/* specs_text - the same text for a table list */
static char *
specs_text(const HeaderSpec *hs)
{
    GString *s = g_string_new(NULL);

    for (guint i = 0; i < MAX_HEADERS && hs[i].name; i++)
        g_string_append_printf(s, "[%s: %s]", hs[i].name, hs[i].value);
    return g_string_free(s, FALSE);
}

/* test_header_edits - one table case: edits in order, then the whole list */
START_TEST(test_header_edits)
{
    const HeaderCase *hc = &header_cases[_i];
    g_autoptr(ShadowMessage) m = shadow_message_new(4096, "/nonexistent");
    g_autofree char *got = NULL;
    g_autofree char *want = NULL;

    for (guint i = 0; i < MAX_HEADERS && hc->before[i].name; i++)
        shadow_message_add_header(m, hc->before[i].name, hc->before[i].value);
    for (guint i = 0; i < MAX_OPS && hc->ops[i].op; i++) {
        const HeaderOp *op = &hc->ops[i];

        switch (op->op) {
        case 'a':
            shadow_message_add_header(m, op->name, op->value);
            break;
        case 'i':
            shadow_message_insert_header(m, op->index, op->name, op->value);
            break;
        case 'c':
            shadow_message_change_header(m, op->index, op->name, op->value);
            break;
        default:
            ck_abort_msg("%s: bad op '%c'", hc->id, op->op);
        }
    }
    got = headers_text(m);
    want = specs_text(hc->want);
    ck_assert_msg(strcmp(got, want) == 0, "%s:\n got %s\nwant %s", hc->id, got, want);
}
END_TEST

/* test_header_copies - names and values are copied in */
START_TEST(test_header_copies)
{
    g_autoptr(ShadowMessage) m = shadow_message_new(4096, "/nonexistent");
    char name[] = "Subject";
    char value[] = "hello";
    const ShadowHeader *h;

    shadow_message_add_header(m, name, value);
    shadow_message_insert_header(m, 0, name, value);
    shadow_message_change_header(m, 2, name, value);
    name[0] = 'X';
    value[0] = 'X';
    ck_assert_uint_eq(m->headers->len, 2);
    for (guint i = 0; i < m->headers->len; i++) {
        h = m->headers->pdata[i];
        ck_assert_str_eq(h->name, "Subject");
        ck_assert_str_eq(h->value, "hello");
        ck_assert_ptr_ne(h->name, name);
        ck_assert_ptr_ne(h->value, value);
    }
}
END_TEST

/* test_get_header - the value of the first occurrence, or NULL */
START_TEST(test_get_header)
{
    g_autoptr(ShadowMessage) m = shadow_message_new(4096, "/nonexistent");

    ck_assert_ptr_null(shadow_message_get_header(m, "Subject"));
    shadow_message_add_header(m, "From", "<a@example.org>");
    shadow_message_add_header(m, "Subject", "first");
    shadow_message_add_header(m, "Subject", "second");
    ck_assert_str_eq(shadow_message_get_header(m, "Subject"), "first");
    ck_assert_str_eq(shadow_message_get_header(m, "From"), "<a@example.org>");
    ck_assert_ptr_null(shadow_message_get_header(m, "To"));
    shadow_message_change_header(m, 1, "Subject", "");
    ck_assert_str_eq(shadow_message_get_header(m, "Subject"), "second");
}
END_TEST

/* test_header_name_case - header names match without regard to case, as in Postfix */
START_TEST(test_header_name_case)
{
    g_autoptr(ShadowMessage) m = shadow_message_new(4096, "/nonexistent");
    const ShadowHeader *h;

    shadow_message_add_header(m, "Subject", "old");
    shadow_message_add_header(m, "X-Tag", "1");
    shadow_message_change_header(m, 1, "SUBJECT", "new");
    ck_assert_uint_eq(m->headers->len, 2);
    h = m->headers->pdata[0];
    ck_assert_msg(g_ascii_strcasecmp(h->name, "subject") == 0 && strcmp(h->value, "new") == 0,
                  "change SUBJECT: got [%s: %s] first, want [Subject: new]", h->name, h->value);
    shadow_message_change_header(m, 1, "x-tag", "");
    ck_assert_msg(m->headers->len == 1, "delete x-tag: got %u headers, want 1", m->headers->len);
    ck_assert_ptr_nonnull(shadow_message_get_header(m, "subject"));
    ck_assert_str_eq(shadow_message_get_header(m, "subject"), "new");
}
END_TEST

/* pattern - deterministic test bytes, different at every offset of a 251-byte cycle */
static guint8
pattern(gsize off)
{
    return (guint8)((off * 7 + 3) % 251);
}

/* append_pattern - append len pattern bytes that continue from the spool's size */
static void
append_pattern(ShadowSpool *s, gsize len)
{
    g_autofree guint8 *buf = g_malloc(len ? len : 1);
    g_autoptr(GError) error = NULL;
    gsize base = shadow_spool_size(s);

    for (gsize i = 0; i < len; i++)
        buf[i] = pattern(base + i);
    ck_assert_msg(shadow_spool_append(s, buf, len, &error), "append %zu at %zu: %s", len, base,
                  error ? error->message : "FALSE without error");
    ck_assert_ptr_null(error);
    ck_assert_uint_eq(shadow_spool_size(s), base + len);
}

/* check_read - read [off, off+len) and compare with the pattern; want bytes must come */
static void
check_read(ShadowSpool *s, gsize off, gsize len, gsize want)
{
    g_autofree guint8 *buf = g_malloc0(len ? len : 1);
    g_autoptr(GError) error = NULL;
    gsize got = G_MAXSIZE;

    ck_assert_msg(shadow_spool_read(s, off, buf, len, &got, &error), "read %zu at %zu: %s", len,
                  off, error ? error->message : "FALSE without error");
    ck_assert_msg(got == want, "read %zu at %zu: got %zu bytes, want %zu", len, off, got, want);
    for (gsize i = 0; i < got; i++)
        ck_assert_msg(buf[i] == pattern(off + i), "read %zu at %zu: byte %zu: got %u, want %u", len,
                      off, off + i, buf[i], pattern(off + i));
}

/* check_spool_pattern - a spool holds exactly the pattern bytes 0..size */
static void
check_spool_pattern(ShadowSpool *s, gsize size)
{
    ck_assert_uint_eq(shadow_spool_size(s), size);
    check_read(s, 0, size, size);
}

/* test_spool_memory - under the limit: in memory, no file, reads of every shape */
START_TEST(test_spool_memory)
{
    g_autoptr(ShadowSpool) s = shadow_spool_new(1024, spool_dir);

    ck_assert_ptr_nonnull(s);
    ck_assert_uint_eq(shadow_spool_size(s), 0);
    ck_assert(!shadow_spool_on_disk(s));
    check_read(s, 0, 10, 0);
    append_pattern(s, 5);
    append_pattern(s, 0);
    append_pattern(s, 6);
    ck_assert(!shadow_spool_on_disk(s));
    check_read(s, 0, 11, 11);
    check_read(s, 6, 5, 5);
    check_read(s, 8, 10, 3); /* short at the end */
    check_read(s, 11, 5, 0); /* at the end */
    check_read(s, 3, 0, 0);  /* zero length */
    ck_assert_uint_eq(dir_entries(spool_dir), 0);
    ck_assert_uint_eq(open_deleted_in(spool_dir), 0);
}
END_TEST

/* test_spool_at_limit - exactly the limit stays in memory, one byte more goes to disk */
START_TEST(test_spool_at_limit)
{
    g_autoptr(ShadowSpool) s = shadow_spool_new(16, spool_dir);

    append_pattern(s, 16);
    ck_assert_msg(!shadow_spool_on_disk(s), "16 bytes, limit 16: got on disk, want in memory");
    append_pattern(s, 1);
    ck_assert_msg(shadow_spool_on_disk(s), "17 bytes, limit 16: got in memory, want on disk");
    check_spool_pattern(s, 17);
}
END_TEST

/* test_spool_spill - past the limit: an unlinked file in the spool dir, same bytes back */
START_TEST(test_spool_spill)
{
    ShadowSpool *s = shadow_spool_new(100, spool_dir);

    append_pattern(s, 60);
    ck_assert(!shadow_spool_on_disk(s));
    append_pattern(s, 60); /* crosses the limit */
    ck_assert(shadow_spool_on_disk(s));
    append_pattern(s, 60); /* appends on disk */
    ck_assert(shadow_spool_on_disk(s));
    check_spool_pattern(s, 180);

    /* Reads across what was the memory part and what came later. */
    check_read(s, 50, 100, 100);
    check_read(s, 59, 2, 2);
    check_read(s, 99, 2, 2);
    check_read(s, 119, 2, 2);
    check_read(s, 170, 100, 10);
    check_read(s, 180, 1, 0);
    for (gsize off = 0; off < 180; off += 13)
        check_read(s, off, 17, MIN(17, 180 - off));

    /* The file is in the spool directory but has no name there. */
    ck_assert_msg(dir_entries(spool_dir) == 0, "spool dir: got %u names, want 0 (unlinked)",
                  dir_entries(spool_dir));
    ck_assert_msg(open_deleted_in(spool_dir) == 1,
                  "open unlinked files in spool dir: got %u, want 1", open_deleted_in(spool_dir));
    shadow_spool_free(s);
    ck_assert_msg(open_deleted_in(spool_dir) == 0, "after free: got %u open spool files, want 0",
                  open_deleted_in(spool_dir));
    shadow_spool_free(NULL);
}
END_TEST

/* test_spool_read_then_append - reads do not move where the next append goes */
START_TEST(test_spool_read_then_append)
{
    g_autoptr(ShadowSpool) s = shadow_spool_new(50, spool_dir);

    append_pattern(s, 30);
    check_read(s, 0, 10, 10);
    append_pattern(s, 40); /* crosses the limit after a read */
    ck_assert(shadow_spool_on_disk(s));
    check_read(s, 5, 10, 10);
    append_pattern(s, 7);
    check_read(s, 0, 1, 1);
    append_pattern(s, 100);
    check_spool_pattern(s, 177);
}
END_TEST

/* test_spool_one_big_append - a single append far past the limit */
START_TEST(test_spool_one_big_append)
{
    g_autoptr(ShadowSpool) s = shadow_spool_new(64, spool_dir);

    append_pattern(s, 10);
    append_pattern(s, 70000);
    ck_assert(shadow_spool_on_disk(s));
    check_spool_pattern(s, 70010);
    check_read(s, 60, 8, 8);
}
END_TEST

/* test_spool_large - a megabyte of random bytes in odd chunks, read back at random */
START_TEST(test_spool_large)
{
    const gsize total = 1024 * 1024 + 17;
    g_autoptr(ShadowSpool) s = shadow_spool_new(4096, spool_dir);
    g_autoptr(GRand) rand = g_rand_new_with_seed(20261204);
    g_autofree guint8 *data = g_malloc(total);
    g_autofree guint8 *buf = g_malloc(65535);
    gsize off = 0;

    for (gsize i = 0; i < total; i++)
        data[i] = (guint8)g_rand_int_range(rand, 0, 256);
    while (off < total) {
        g_autoptr(GError) error = NULL;
        gsize n = MIN((gsize)7919, total - off);

        ck_assert_msg(shadow_spool_append(s, data + off, n, &error), "append at %zu: %s", off,
                      error ? error->message : "FALSE without error");
        off += n;
    }
    ck_assert(shadow_spool_on_disk(s));
    ck_assert_uint_eq(shadow_spool_size(s), total);

    /* Whole, in 65535-byte reads. */
    for (off = 0; off < total; off += 65535) {
        g_autoptr(GError) error = NULL;
        gsize want = MIN((gsize)65535, total - off);
        gsize got = 0;

        ck_assert(shadow_spool_read(s, off, buf, 65535, &got, &error));
        ck_assert_msg(got == want, "read at %zu: got %zu bytes, want %zu", off, got, want);
        ck_assert_msg(memcmp(buf, data + off, got) == 0, "read at %zu: bytes differ", off);
    }
    /* Random places, the memory boundary included. */
    for (guint k = 0; k < 200; k++) {
        g_autoptr(GError) error = NULL;
        gsize at = k == 0 ? 4090 : (gsize)g_rand_int_range(rand, 0, (gint32)total);
        gsize len = (gsize)g_rand_int_range(rand, 1, 65535);
        gsize want = MIN(len, total - at);
        gsize got = 0;

        ck_assert(shadow_spool_read(s, at, buf, len, &got, &error));
        ck_assert_msg(got == want, "read %zu at %zu: got %zu bytes, want %zu", len, at, got, want);
        ck_assert_msg(memcmp(buf, data + at, got) == 0, "read %zu at %zu: bytes differ", len, at);
    }
    ck_assert_uint_eq(dir_entries(spool_dir), 0);
}
END_TEST

/* test_spool_bad_dir - spilling into a missing directory fails with the directory named */
START_TEST(test_spool_bad_dir)
{
    g_autofree char *missing = g_build_filename(spool_dir, "missing", "sub", NULL);
    g_autoptr(ShadowSpool) s = shadow_spool_new(8, missing);
    g_autoptr(GError) error = NULL;
    static const guint8 bytes[32] = { 0 };

    ck_assert(shadow_spool_append(s, bytes, 4, &error)); /* still in memory */
    ck_assert_ptr_null(error);
    ck_assert(!shadow_spool_append(s, bytes, sizeof(bytes), &error));
    ck_assert_ptr_nonnull(error);
    /* G_IO_ERROR is GIO's; this suite links GLib only, so name its quark. */
    ck_assert_msg(error->domain == g_quark_from_static_string("g-io-error-quark") ||
                      error->domain == G_FILE_ERROR,
                  "got domain %s, want G_IO_ERROR or G_FILE_ERROR",
                  g_quark_to_string(error->domain));
    ck_assert_msg(strstr(error->message, missing) != NULL, "got \"%s\", want it to name %s",
                  error->message, missing);
}
END_TEST

/*
 * test_spool_budget - spools sharing a budget hold no more than its limit in memory
 *
 * The budget counts what the spools have allocated: GByteArray grows by
 * powers of two, so 600 bytes take 1024. Under a 1536-byte budget (each
 * spool's own limit 4096): a first spool of 1024 bytes stays in memory, a
 * second one fits at 256 and moves to disk with all it held once it would
 * take 1024 more; freeing the first gives its bytes back, so the next
 * fits in memory again. Contents survive the move.
 */
START_TEST(test_spool_budget)
{
    ShadowSpoolBudget budget = { .limit = 1536 };
    ShadowSpool *a = shadow_spool_new(4096, spool_dir);
    ShadowSpool *b = shadow_spool_new(4096, spool_dir);
    ShadowSpool *c = shadow_spool_new(4096, spool_dir);

    shadow_spool_set_budget(a, &budget);
    shadow_spool_set_budget(b, &budget);
    shadow_spool_set_budget(c, &budget);
    append_pattern(a, 1024);
    ck_assert(!shadow_spool_on_disk(a));
    ck_assert_uint_eq(budget.used, 1024);

    append_pattern(b, 256); /* 1280: fits */
    ck_assert(!shadow_spool_on_disk(b));
    ck_assert_uint_eq(budget.used, 1280);
    append_pattern(b, 300); /* 556 bytes take 1024: 2048 would not fit, so b moves to disk */
    ck_assert(shadow_spool_on_disk(b));
    ck_assert_uint_eq(budget.used, 1024);
    check_spool_pattern(b, 556);

    append_pattern(c, 600); /* 1024 more: straight to disk */
    ck_assert(shadow_spool_on_disk(c));
    ck_assert_uint_eq(budget.used, 1024);
    shadow_spool_free(c);

    shadow_spool_free(a); /* gives its 1024 back */
    ck_assert_uint_eq(budget.used, 0);
    c = shadow_spool_new(4096, spool_dir);
    shadow_spool_set_budget(c, &budget);
    append_pattern(c, 600);
    ck_assert(!shadow_spool_on_disk(c));
    ck_assert_uint_eq(budget.used, 1024);
    check_spool_pattern(c, 600);
    shadow_spool_free(b);
    shadow_spool_free(c);
    ck_assert_uint_eq(budget.used, 0);
    ck_assert_uint_eq(budget.failed, 0);

    /* A limit of 0: nothing in memory at all, empty appends aside. */
    budget.limit = 0;
    a = shadow_spool_new(4096, spool_dir);
    shadow_spool_set_budget(a, &budget);
    append_pattern(a, 0);
    ck_assert(!shadow_spool_on_disk(a));
    append_pattern(a, 1);
    ck_assert(shadow_spool_on_disk(a));
    ck_assert_uint_eq(budget.used, 0);
    shadow_spool_free(a);
}
END_TEST

/*
 * test_spool_budget_no_disk - a move only the budget asks for, that fails, keeps the bytes
 *
 * The spool directory does not exist: under its own limit the spool stays
 * in memory (no worse than without a budget) and the budget counts the
 * failure; over its own limit the append fails as it always did.
 */
START_TEST(test_spool_budget_no_disk)
{
    ShadowSpoolBudget budget = { .limit = 16 };
    ShadowSpool *s = shadow_spool_new(4096, "/nonexistent/spool");
    g_autoptr(GError) error = NULL;
    guint8 big[4096] = { 0 };

    shadow_spool_set_budget(s, &budget);
    append_pattern(s, 100);
    ck_assert(!shadow_spool_on_disk(s));
    ck_assert_uint_eq(budget.failed, 1);
    ck_assert_uint_eq(budget.used, 128);
    check_spool_pattern(s, 100);
    ck_assert(!shadow_spool_append(s, big, sizeof(big), &error));
    ck_assert_ptr_nonnull(error);
    ck_assert_msg(strstr(error->message, "/nonexistent/spool") != NULL, "got \"%s\"",
                  error->message);
    shadow_spool_free(s);
    ck_assert_uint_eq(budget.used, 0);
}
END_TEST

/* test_message_budget - copies and forks of a message share its budget */
START_TEST(test_message_budget)
{
    ShadowSpoolBudget budget = { .limit = 1536 };
    g_autoptr(ShadowMessage) m = shadow_message_new(4096, spool_dir);
    g_autoptr(ShadowMessage) copy = NULL;
    g_autoptr(ShadowMessage) fork = NULL;
    g_autoptr(GError) error = NULL;
    ShadowSpool *extra;

    shadow_message_set_budget(m, &budget);
    append_pattern(m->body, 600); /* takes 1024 */
    ck_assert_uint_eq(budget.used, 1024);
    fork = shadow_message_fork(m); /* shares the body: nothing more */
    ck_assert_ptr_eq(fork->budget, &budget);
    ck_assert_uint_eq(budget.used, 1024);
    copy = shadow_message_copy(m, &error); /* 2048 would not fit: the copy is on disk */
    ck_assert_msg(copy != NULL, "copy: %s", error ? error->message : "?");
    ck_assert(shadow_spool_on_disk(copy->body));
    check_spool_pattern(copy->body, 600);
    ck_assert_uint_eq(budget.used, 1024);
    extra = shadow_spool_new(4096, spool_dir);
    shadow_spool_set_budget(extra, &budget);
    append_pattern(extra, 400); /* takes 512: 1536 fits exactly */
    ck_assert(!shadow_spool_on_disk(extra));
    ck_assert_uint_eq(budget.used, 1536);
    shadow_message_replace_body(fork, extra); /* fork gives up its share of m's body */
    ck_assert_uint_eq(budget.used, 1536);
    g_clear_pointer(&fork, shadow_message_free);
    ck_assert_uint_eq(budget.used, 1024);
    g_clear_pointer(&m, shadow_message_free);
    ck_assert_uint_eq(budget.used, 0);
}
END_TEST

/* test_message_new - empty headers, an empty body spool, settings kept */
START_TEST(test_message_new)
{
    char dir[] = "/var/spool/shadowd";
    g_autoptr(ShadowMessage) m = shadow_message_new(1234, dir);

    ck_assert_ptr_nonnull(m);
    ck_assert_ptr_nonnull(m->headers);
    ck_assert_uint_eq(m->headers->len, 0);
    ck_assert_ptr_nonnull(m->body);
    ck_assert_uint_eq(shadow_spool_size(m->body), 0);
    ck_assert(!shadow_spool_on_disk(m->body));
    ck_assert_uint_eq(m->spool_memory, 1234);
    ck_assert_ptr_ne(m->spool_dir, dir);
    dir[1] = 'X';
    ck_assert_str_eq(m->spool_dir, "/var/spool/shadowd");
    shadow_message_free(NULL);
}
END_TEST

/* copy_case - a message with headers and a body of n bytes, copied and checked */
static void
copy_case(gsize spool_memory, gsize body_len, gboolean want_disk)
{
    ShadowMessage *m = shadow_message_new(spool_memory, spool_dir);
    g_autoptr(ShadowMessage) c = NULL;
    g_autoptr(GError) error = NULL;
    g_autofree char *before = NULL;
    g_autofree char *copied = NULL;

    shadow_message_add_header(m, "From", "<a@example.org>");
    shadow_message_add_header(m, "Subject", "hi");
    append_pattern(m->body, body_len);
    ck_assert(!shadow_spool_on_disk(m->body) == !want_disk);

    c = shadow_message_copy(m, &error);
    ck_assert_msg(c != NULL, "copy: %s", error ? error->message : "NULL without error");
    ck_assert_ptr_null(error);
    before = headers_text(m);
    copied = headers_text(c);
    ck_assert_str_eq(copied, before);
    ck_assert_ptr_ne(c->headers, m->headers);
    for (guint i = 0; i < c->headers->len; i++) {
        const ShadowHeader *hc = c->headers->pdata[i];
        const ShadowHeader *hm = m->headers->pdata[i];

        ck_assert_ptr_ne(hc, hm);
        ck_assert_ptr_ne(hc->name, hm->name);
        ck_assert_ptr_ne(hc->value, hm->value);
    }
    ck_assert_ptr_ne(c->body, m->body);
    ck_assert(!shadow_spool_on_disk(c->body) == !want_disk);
    check_spool_pattern(c->body, body_len);
    ck_assert_uint_eq(c->spool_memory, spool_memory);
    ck_assert_str_eq(c->spool_dir, spool_dir);

    /* Edits of the copy leave the original alone. */
    shadow_message_change_header(c, 1, "Subject", "changed");
    shadow_message_add_header(c, "X-New", "1");
    append_pattern(c->body, 10);
    g_free(copied);
    copied = headers_text(m);
    ck_assert_str_eq(copied, before);
    ck_assert_uint_eq(shadow_spool_size(m->body), body_len);
    check_spool_pattern(m->body, body_len);

    /* The original still appends at its end after being read for the copy. */
    append_pattern(m->body, 5);
    check_spool_pattern(m->body, body_len + 5);
    check_spool_pattern(c->body, body_len + 10);

    /* And the copy outlives the original. */
    shadow_message_free(m);
    ck_assert_str_eq(shadow_message_get_header(c, "Subject"), "changed");
    check_spool_pattern(c->body, body_len + 10);
}

/* test_message_copy_memory - a deep copy of a message whose body is in memory */
START_TEST(test_message_copy_memory)
{
    copy_case(4096, 300, FALSE);
}
END_TEST

/* test_message_copy_disk - a deep copy of a message whose body is on disk */
START_TEST(test_message_copy_disk)
{
    copy_case(128, 100000, TRUE);
    ck_assert_uint_eq(dir_entries(spool_dir), 0);
    ck_assert_uint_eq(open_deleted_in(spool_dir), 0);
}
END_TEST

/* test_message_copy_error - a body that must go to disk, with the spool dir gone */
START_TEST(test_message_copy_error)
{
    g_autoptr(ShadowMessage) m = shadow_message_new(16, spool_dir);
    g_autoptr(GError) error = NULL;
    ShadowMessage *c;

    append_pattern(m->body, 100);
    ck_assert(shadow_spool_on_disk(m->body));
    ck_assert_int_eq(g_rmdir(spool_dir), 0); /* empty: the spool file is unlinked */
    c = shadow_message_copy(m, &error);
    ck_assert_int_eq(g_mkdir(spool_dir, 0700), 0); /* for the teardown */
    ck_assert_msg(c == NULL, "copy into a missing spool dir: got a copy, want NULL");
    ck_assert_ptr_nonnull(error);
    ck_assert_msg(strstr(error->message, spool_dir) != NULL, "got \"%s\", want it to name %s",
                  error->message, spool_dir);
}
END_TEST

/* test_replace_body - the message takes the new spool; the old one is freed */
START_TEST(test_replace_body)
{
    g_autoptr(ShadowMessage) m = shadow_message_new(64, spool_dir);
    ShadowSpool *small = shadow_spool_new(64, spool_dir);
    ShadowSpool *big = shadow_spool_new(64, spool_dir);

    append_pattern(m->body, 200); /* on disk */
    ck_assert_uint_eq(open_deleted_in(spool_dir), 1);

    append_pattern(small, 20);
    shadow_message_replace_body(m, small);
    ck_assert_ptr_eq(m->body, small);
    check_spool_pattern(m->body, 20);
    ck_assert_msg(open_deleted_in(spool_dir) == 0,
                  "old on-disk body: got %u files still open, want 0", open_deleted_in(spool_dir));

    append_pattern(big, 1000);
    shadow_message_replace_body(m, big);
    ck_assert_ptr_eq(m->body, big);
    ck_assert(shadow_spool_on_disk(m->body));
    check_spool_pattern(m->body, 1000);
    ck_assert_uint_eq(open_deleted_in(spool_dir), 1);
}
END_TEST

/* test_spool_ref - a reference keeps the spool alive; free drops one */
START_TEST(test_spool_ref)
{
    ShadowSpool *s = shadow_spool_new(16, spool_dir);

    append_pattern(s, 40); /* on disk */
    ck_assert_ptr_eq(shadow_spool_ref(s), s);
    shadow_spool_free(s);
    check_spool_pattern(s, 40); /* still alive: one reference left */
    ck_assert_uint_eq(open_deleted_in(spool_dir), 1);
    shadow_spool_free(s);
    ck_assert_uint_eq(open_deleted_in(spool_dir), 0);
}
END_TEST

/* test_message_fork - own headers, the same body spool, each outliving the other */
START_TEST(test_message_fork)
{
    ShadowMessage *m = shadow_message_new(32, spool_dir);
    g_autoptr(ShadowMessage) f = NULL;
    g_autofree char *before = NULL;
    g_autofree char *after = NULL;

    shadow_message_add_header(m, "Subject", "hi");
    append_pattern(m->body, 100);
    before = headers_text(m);

    f = shadow_message_fork(m);
    ck_assert_ptr_nonnull(f);
    ck_assert_ptr_eq(f->body, m->body);
    ck_assert_ptr_ne(f->headers, m->headers);
    ck_assert_uint_eq(f->spool_memory, 32);
    ck_assert_str_eq(f->spool_dir, spool_dir);
    shadow_message_change_header(f, 1, "Subject", "changed");
    shadow_message_insert_header(f, 0, "X-First", "1");
    after = headers_text(m);
    ck_assert_str_eq(after, before);
    ck_assert_str_eq(shadow_message_get_header(f, "Subject"), "changed");

    /* The original goes; the fork's body stays. */
    shadow_message_free(m);
    check_spool_pattern(f->body, 100);
    ck_assert_uint_eq(open_deleted_in(spool_dir), 1);
}
END_TEST

/* test_fork_replace_body - replacing a fork's body leaves the original's alone */
START_TEST(test_fork_replace_body)
{
    g_autoptr(ShadowMessage) m = shadow_message_new(32, spool_dir);
    g_autoptr(ShadowMessage) f = NULL;
    ShadowSpool *body = shadow_spool_new(32, spool_dir);

    append_pattern(m->body, 50);
    f = shadow_message_fork(m);
    append_pattern(body, 5);
    shadow_message_replace_body(f, body);
    ck_assert_ptr_eq(f->body, body);
    check_spool_pattern(f->body, 5);
    check_spool_pattern(m->body, 50);
}
END_TEST

/* shadow_message_suite - headers, spool, message */
static Suite *
shadow_message_suite(void)
{
    Suite *s = suite_create("shadow_message");
    TCase *tc;

    tc = tcase_create("headers");
    tcase_add_loop_test(tc, test_header_edits, 0, (int)G_N_ELEMENTS(header_cases));
    tcase_add_test(tc, test_header_copies);
    tcase_add_test(tc, test_get_header);
    tcase_add_test(tc, test_header_name_case);
    suite_add_tcase(s, tc);

    tc = tcase_create("spool");
    tcase_add_checked_fixture(tc, spool_setup, spool_teardown);
    tcase_set_timeout(tc, 20);
    tcase_add_test(tc, test_spool_memory);
    tcase_add_test(tc, test_spool_at_limit);
    tcase_add_test(tc, test_spool_spill);
    tcase_add_test(tc, test_spool_read_then_append);
    tcase_add_test(tc, test_spool_one_big_append);
    tcase_add_test(tc, test_spool_large);
    tcase_add_test(tc, test_spool_bad_dir);
    tcase_add_test(tc, test_spool_ref);
    tcase_add_test(tc, test_spool_budget);
    tcase_add_test(tc, test_spool_budget_no_disk);
    suite_add_tcase(s, tc);

    tc = tcase_create("message");
    tcase_add_checked_fixture(tc, spool_setup, spool_teardown);
    tcase_add_test(tc, test_message_new);
    tcase_add_test(tc, test_message_copy_memory);
    tcase_add_test(tc, test_message_copy_disk);
    tcase_add_test(tc, test_message_copy_error);
    tcase_add_test(tc, test_replace_body);
    tcase_add_test(tc, test_message_fork);
    tcase_add_test(tc, test_message_budget);
    tcase_add_test(tc, test_fork_replace_body);
    suite_add_tcase(s, tc);
    return s;
}

int
main(void)
{
    SRunner *sr = srunner_create(shadow_message_suite());
    int failed;

    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
