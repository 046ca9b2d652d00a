/* SPDX-License-Identifier: MIT */
/*
 * NAME
 *	check_shadow_logread - Check suite for the event log reader
 * DESCRIPTION
 *	Written from docs/event-log.md and shadow_logread.h. Each test writes
 *	a small log into a temporary directory (plain, or gzip with zlib) and
 *	reads it back.
 *
 *	time: RFC 3339 forms, offsets, bad dates. records: a connection, a
 *	message with two verdicts (every field, edits of every op, latency),
 *	escapes decoded in place (UTF-8, surrogate pairs, \u0000). merge: two
 *	files (two hosts) in time order, ties to the file added first; a gzip
 *	file reads like the plain one. damage: torn last line, garbage, a v:2
 *	line, an unknown type, a missing and a mistyped field, verdicts with no
 *	message record, a truncated gzip file; each reported with its line and
 *	exact text, and the good records around them kept. range: since/until.
 *	tail: a torn last line and waiting verdicts are left for the next run,
 *	which resumes at the offset given and reads only what is new.
 *	predict: verdict records turned back into ShadowVerdicts fold to the
 *	outcome the message record states.
 */

/* System library. */
#include <string.h>
#include <zlib.h>

/* Check. */
#include <check.h>

/* GLib. */
#include <glib/gstdio.h>

/* Shadow libraries. */
#include "shadow_logread.h"

/* Lines used by several tests. */
#define OPEN1                                                                                      \
    "{\"v\":1,\"type\":\"connection\",\"ts\":\"2026-12-03T21:43:28.100Z\",\"host\":\"mx1\","       \
    "\"conn\":\"000001\",\"event\":\"open\",\"client_addr\":\"192.0.2.7\",\"client_name\":"        \
    "\"mail.example.com\",\"client_port\":\"40000\"}\n"
#define VERDICT1_T1                                                                                \
    "{\"v\":1,\"type\":\"verdict\",\"ts\":\"2026-12-03T21:43:28.654Z\",\"host\":\"mx1\","          \
    "\"conn\":\"000001\",\"msg\":\"000001.1\",\"queue_id\":\"22F23A72578\",\"message_id\":"        \
    "\"<a@example.com>\",\"milter\":\"t1\",\"action\":\"continue\",\"stage\":\"eom\","             \
    "\"connection\":false,\"reply\":null,\"reason\":null,\"quarantine\":null,\"rcpts\":[],"        \
    "\"edits\":[{\"op\":\"add_header\",\"name\":\"X-Spam\",\"value\":\"no\"},{\"op\":"             \
    "\"insert_header\",\"index\":0,\"name\":\"X-A\",\"value\":\"1\"},{\"op\":\"change_header\","   \
    "\"index\":1,\"name\":\"Subject\",\"value\":\"[tag] hi\"},{\"op\":\"delete_header\","          \
    "\"index\":2,\"name\":\"X-B\",\"value\":\"\"},{\"op\":\"replace_body\",\"size\":12},"          \
    "{\"op\":\"change_from\",\"addr\":\"<b@example.com>\",\"args\":\"SIZE=1\"},{\"op\":"           \
    "\"add_rcpt\",\"addr\":\"<c@example.net>\"},{\"op\":\"delete_rcpt\",\"addr\":"                 \
    "\"<d@example.net>\"}],\"latency_us\":{\"mail\":310,\"eom\":1220,\"later\":5}}\n"
#define VERDICT1_T2                                                                                \
    "{\"v\":1,\"type\":\"verdict\",\"ts\":\"2026-12-03T21:43:28.654Z\",\"host\":\"mx1\","          \
    "\"conn\":\"000001\",\"msg\":\"000001.1\",\"queue_id\":\"22F23A72578\",\"message_id\":"        \
    "\"<a@example.com>\",\"milter\":\"t2\",\"action\":\"reject\",\"stage\":\"eom\","               \
    "\"connection\":false,\"reply\":\"550 5.7.1 no\",\"reason\":null,\"quarantine\":null,"         \
    "\"rcpts\":[{\"rcpt\":\"<carol@example.net>\",\"action\":\"tempfail\",\"reply\":null}],"       \
    "\"edits\":[],\"latency_us\":{\"rcpt\":512}}\n"
#define MESSAGE1                                                                                   \
    "{\"v\":1,\"type\":\"message\",\"ts\":\"2026-12-03T21:43:28.654Z\",\"host\":\"mx1\","          \
    "\"conn\":\"000001\",\"msg\":\"000001.1\",\"queue_id\":\"22F23A72578\",\"message_id\":"        \
    "\"<a@example.com>\",\"client_addr\":\"192.0.2.7\",\"client_name\":\"mail.example.com\","      \
    "\"helo\":\"client.example.com\",\"auth\":null,\"from\":\"<alice@example.com>\",\"rcpts\":"    \
    "[\"<bob@example.net>\",\"<carol@example.net>\"],\"size\":643,\"mta\":\"ended\",\"outcome\":"  \
    "\"rejected\",\"decided_by\":\"t2\",\"stage\":\"eom\",\"reply\":\"550 5.7.1 no\","             \
    "\"quarantine\":null,\"refused\":[{\"rcpt\":\"<carol@example.net>\",\"action\":"               \
    "\"tempfail\",\"reply\":null,\"milter\":\"t2\"}],\"edits\":[],\"unknown\":[],\"milters\":"     \
    "{\"t1\":\"continue\",\"t2\":\"reject\"},\"duration_ms\":49,\"new_field\":[1,{\"x\":2}]}\n"
#define CLOSE1                                                                                     \
    "{\"v\":1,\"type\":\"connection\",\"ts\":\"2026-12-03T21:43:29.000Z\",\"host\":\"mx1\","       \
    "\"conn\":\"000001\",\"event\":\"close\",\"client_addr\":\"192.0.2.7\",\"client_name\":"       \
    "\"mail.example.com\",\"client_port\":\"40000\",\"helo\":\"client.example.com\","              \
    "\"messages\":1,\"errors\":1,\"duration_ms\":900,\"milters\":[{\"milter\":\"t1\","             \
    "\"state\":\"ok\",\"reason\":null,\"version\":6},{\"milter\":\"t2\",\"state\":\"timeout\","    \
    "\"reason\":\"no reply in 7s\"}]}\n"

/* conn_line - a connection open record at a time, for merge tests */
static char *
conn_line(const char *host, const char *conn, const char *ts)
{
    return g_strdup_printf("{\"v\":1,\"type\":\"connection\",\"ts\":\"%s\",\"host\":\"%s\","
                           "\"conn\":\"%s\",\"event\":\"open\",\"client_addr\":null,"
                           "\"client_name\":null,\"client_port\":null}\n",
                           ts, host, conn);
}

/* Damage - what the damage function collected */
typedef struct {
    GPtrArray *lines; /* "BASENAME:LINE: what" */
} Damage;

/* on_damage - collect one damaged line */
static void
on_damage(const char *file, guint64 line, const char *what, gpointer data)
{
    Damage *d = data;
    g_autofree char *base = g_path_get_basename(file);
    g_ptr_array_add(d->lines, g_strdup_printf("%s:%" G_GUINT64_FORMAT ": %s", base, line, what));
}

static char *tmpdir;

/* setup - a fresh temporary directory per test */
static void
setup(void)
{
    tmpdir = g_dir_make_tmp("check_logread.XXXXXX", NULL);
    ck_assert_ptr_nonnull(tmpdir);
}

/* teardown - remove the directory and what is in it */
static void
teardown(void)
{
    GDir *d = g_dir_open(tmpdir, 0, NULL);
    const char *name;
    while (d && (name = g_dir_read_name(d)) != NULL) {
        g_autofree char *p = g_build_filename(tmpdir, name, NULL);
        g_unlink(p);
    }
    if (d)
        g_dir_close(d);
    g_rmdir(tmpdir);
    g_free(tmpdir);
}

/* write_file - a plain file in the temporary directory; its path */
static char *
write_file(const char *name, const char *text)
{
    char *path = g_build_filename(tmpdir, name, NULL);
    ck_assert(g_file_set_contents(path, text, -1, NULL));
    return path;
}

/* write_gz - a gzip file; keep only the first keep bytes of it when keep > 0 */
static char *
write_gz(const char *name, const char *text, gsize keep)
{
    char *path = g_build_filename(tmpdir, name, NULL);
    gzFile gz = gzopen(path, "wb");
    ck_assert_ptr_nonnull(gz);
    ck_assert_int_eq(gzwrite(gz, text, (unsigned)strlen(text)), (int)strlen(text));
    ck_assert_int_eq(gzclose(gz), Z_OK);
    if (keep > 0)
        ck_assert_int_eq(truncate(path, (off_t)keep), 0);
    return path;
}

/* reader_for - a reader with damage collected into d */
static ShadowLogReader *
reader_for(Damage *d)
{
    ShadowLogReader *r = shadow_log_reader_new();
    d->lines = g_ptr_array_new_with_free_func(g_free);
    shadow_log_reader_set_damage_func(r, on_damage, d);
    return r;
}

/* summarize - one line per record: kind, host, conn or msg, line; and verdict names */
static char *
summarize(ShadowLogReader *r)
{
    GString *out = g_string_new(NULL);
    const ShadowLogRecord *rec;
    GError *error = NULL;
    while ((rec = shadow_log_reader_next(r, &error)) != NULL) {
        g_autofree char *base = g_path_get_basename(rec->file);
        if (rec->kind == SHADOW_LOG_CONNECTION) {
            g_string_append_printf(out, "conn %s %s %s %s:%" G_GUINT64_FORMAT "\n",
                                   rec->connection.host, rec->connection.conn,
                                   rec->connection.open ? "open" : "close", base, rec->line);
        } else {
            g_string_append_printf(out, "msg %s %s %s", rec->message.host, rec->message.msg,
                                   shadow_outcome_name(rec->message.outcome));
            for (guint k = 0; k < rec->message.n_verdicts; k++)
                g_string_append_printf(out, " %s=%s", rec->message.verdicts[k].milter,
                                       shadow_action_name(rec->message.verdicts[k].action));
            g_string_append_printf(out, " %s:%" G_GUINT64_FORMAT "\n", base, rec->line);
        }
    }
    ck_assert_ptr_null(error);
    return g_string_free(out, FALSE);
}

/* joined - damage lines joined by newlines */
static char *
joined(Damage *d)
{
    g_ptr_array_add(d->lines, NULL);
    char *s = g_strjoinv("\n", (char **)d->lines->pdata);
    g_ptr_array_unref(d->lines);
    return s;
}

START_TEST(test_time)
{
    static const struct {
        const char *text;
        gboolean ok;
        gint64 ms;
    } cases[] = {
        { "1970-01-01T00:00:00Z", TRUE, 0 },
        { "1970-01-01T00:00:00.001Z", TRUE, 1 },
        { "2026-12-03T21:43:28.654Z", TRUE, 1796334208654 },
        { "2026-12-03T21:43:28.6Z", TRUE, 1796334208600 },
        { "2026-12-03T21:43:28.654321Z", TRUE, 1796334208654 },
        { "2026-12-03T22:43:28.654+01:00", TRUE, 1796334208654 },
        { "2026-12-03T20:43:28.654-01:00", TRUE, 1796334208654 },
        { "2024-02-29T00:00:00Z", TRUE, 1709164800000 },
        { "1969-12-31T23:59:59Z", TRUE, -1000 },
        { "2026-12-03 21:43:28Z", TRUE, 1796334208000 },
        { "2026-13-03T21:43:28Z", FALSE, 0 },
        { "2026-02-30T21:43:28Z", FALSE, 0 },
        { "2026-02-29T21:43:28Z", FALSE, 0 },
        { "2000-02-29T00:00:00Z", TRUE, 951782400000 },
        { "1900-02-29T00:00:00Z", FALSE, 0 },
        { "2026-12-03T24:00:00Z", FALSE, 0 },
        { "2026-12-03T21:43:28", FALSE, 0 },
        { "2026-12-03T21:43:28.Z", FALSE, 0 },
        { "2026-12-03T21:43:28ZZ", FALSE, 0 },
        { "2026-12-03T21:43:28+0100", FALSE, 0 },
        { "2026-12-3T21:43:28Z", FALSE, 0 },
        { "yesterday", FALSE, 0 },
    };
    for (gsize k = 0; k < G_N_ELEMENTS(cases); k++) {
        gint64 ms = -7;
        gboolean ok = shadow_log_parse_time(cases[k].text, strlen(cases[k].text), &ms);
        ck_assert_msg(ok == cases[k].ok, "%s: parse %d", cases[k].text, ok);
        if (ok)
            ck_assert_msg(ms == cases[k].ms, "%s: %" G_GINT64_FORMAT, cases[k].text, ms);
    }
}
END_TEST

START_TEST(test_records)
{
    Damage d;
    g_autofree char *path = write_file("events.log", OPEN1 VERDICT1_T1 VERDICT1_T2 MESSAGE1 CLOSE1);
    g_autoptr(ShadowLogReader) r = reader_for(&d);
    GError *error = NULL;
    ck_assert(shadow_log_reader_add(r, path, &error));

    const ShadowLogRecord *rec = shadow_log_reader_next(r, &error);
    ck_assert_ptr_nonnull(rec);
    ck_assert_int_eq(rec->kind, SHADOW_LOG_CONNECTION);
    ck_assert_uint_eq(rec->line, 1);
    ck_assert(rec->connection.open);
    ck_assert_str_eq(rec->connection.host, "mx1");
    ck_assert_str_eq(rec->connection.conn, "000001");
    ck_assert_str_eq(rec->connection.client_addr, "192.0.2.7");
    ck_assert_str_eq(rec->connection.client_port, "40000");
    ck_assert_ptr_null(rec->connection.helo);
    ck_assert_int_eq(rec->connection.messages, -1);
    ck_assert(rec->connection.ts_ms == 1796334208100);

    rec = shadow_log_reader_next(r, &error);
    ck_assert_ptr_nonnull(rec);
    ck_assert_int_eq(rec->kind, SHADOW_LOG_MESSAGE);
    ck_assert_uint_eq(rec->line, 4);
    const ShadowLogMessage *m = &rec->message;
    ck_assert_str_eq(m->msg, "000001.1");
    ck_assert_str_eq(m->queue_id, "22F23A72578");
    ck_assert_str_eq(m->message_id, "<a@example.com>");
    ck_assert_str_eq(m->helo, "client.example.com");
    ck_assert_ptr_null(m->auth);
    ck_assert_str_eq(m->from, "<alice@example.com>");
    ck_assert_uint_eq(m->n_rcpts, 2);
    ck_assert_str_eq(m->rcpts[1], "<carol@example.net>");
    ck_assert_int_eq(m->size, 643);
    ck_assert(m->mta_ended);
    ck_assert_int_eq(m->outcome, SHADOW_OUTCOME_REJECTED);
    ck_assert_str_eq(m->decided_by, "t2");
    ck_assert_int_eq(m->stage, SHADOW_STAGE_EOM);
    ck_assert_str_eq(m->reply, "550 5.7.1 no");
    ck_assert_uint_eq(m->n_refused, 1);
    ck_assert_str_eq(m->refused[0].milter, "t2");
    ck_assert_int_eq(m->refused[0].action, SHADOW_ACTION_TEMPFAIL);
    ck_assert_ptr_null(m->refused[0].reply);
    ck_assert_uint_eq(m->n_unknown, 0);
    ck_assert_int_eq(m->duration_ms, 49);

    ck_assert_uint_eq(m->n_verdicts, 2);
    const ShadowLogVerdict *v = &m->verdicts[0];
    ck_assert_str_eq(v->milter, "t1");
    ck_assert_int_eq(v->action, SHADOW_ACTION_CONTINUE);
    ck_assert_int_eq(v->stage, SHADOW_STAGE_EOM);
    ck_assert(!v->connection);
    ck_assert_ptr_null(v->reply);
    ck_assert_uint_eq(v->n_edits, 8);
    ck_assert_str_eq(v->edits[0].op, "add_header");
    ck_assert_str_eq(v->edits[0].name, "X-Spam");
    ck_assert_int_eq(v->edits[0].index, -1);
    ck_assert_int_eq(v->edits[1].index, 0);
    ck_assert_str_eq(v->edits[2].value, "[tag] hi");
    ck_assert_int_eq(v->edits[4].size, 12);
    ck_assert_str_eq(v->edits[5].addr, "<b@example.com>");
    ck_assert_str_eq(v->edits[5].args, "SIZE=1");
    ck_assert_ptr_null(v->edits[6].args);
    ck_assert_int_eq(v->latency_us[SHADOW_STAGE_MAIL], 310);
    ck_assert_int_eq(v->latency_us[SHADOW_STAGE_EOM], 1220);
    ck_assert_int_eq(v->latency_us[SHADOW_STAGE_RCPT], -1);
    v = &m->verdicts[1];
    ck_assert_str_eq(v->milter, "t2");
    ck_assert_int_eq(v->action, SHADOW_ACTION_REJECT);
    ck_assert_str_eq(v->reply, "550 5.7.1 no");
    ck_assert_uint_eq(v->n_rcpts, 1);
    ck_assert_str_eq(v->rcpts[0].rcpt, "<carol@example.net>");
    ck_assert_ptr_null(v->rcpts[0].milter);

    rec = shadow_log_reader_next(r, &error);
    ck_assert_ptr_nonnull(rec);
    ck_assert(!rec->connection.open);
    ck_assert_int_eq(rec->connection.messages, 1);
    ck_assert_int_eq(rec->connection.duration_ms, 900);
    ck_assert_uint_eq(rec->connection.n_milters, 2);
    ck_assert_str_eq(rec->connection.milters[1].state, "timeout");
    ck_assert_str_eq(rec->connection.milters[1].reason, "no reply in 7s");
    ck_assert_ptr_null(shadow_log_reader_next(r, &error));
    ck_assert_ptr_null(error);
    ck_assert_uint_eq(shadow_log_reader_damaged(r), 0);
    g_autofree char *dmg = joined(&d);
    ck_assert_str_eq(dmg, "");
}
END_TEST

START_TEST(test_escapes)
{
    Damage d;
    g_autofree char *path = write_file(
        "events.log",
        "{\"v\":1, \"type\" : \"connection\",\"ts\":\"2026-12-03T21:43:28.100Z\",\"host\":"
        "\"caf\\u00e9\",\"conn\":\"a\\\"b\\\\c\\/d\\n\\t\",\"event\":\"open\",\"client_addr\":"
        "\"\\ud83d\\ude00\",\"client_name\":\"x\\u0000y\",\"client_port\":\"\xc3\xa9\"}\n");
    g_autoptr(ShadowLogReader) r = reader_for(&d);
    ck_assert(shadow_log_reader_add(r, path, NULL));
    const ShadowLogRecord *rec = shadow_log_reader_next(r, NULL);
    ck_assert_ptr_nonnull(rec);
    ck_assert_str_eq(rec->connection.host, "caf\xc3\xa9");
    ck_assert_str_eq(rec->connection.conn, "a\"b\\c/d\n\t");
    ck_assert_str_eq(rec->connection.client_addr, "\xf0\x9f\x98\x80");
    ck_assert_str_eq(rec->connection.client_name, "x\xef\xbf\xbdy");
    ck_assert_str_eq(rec->connection.client_port, "\xc3\xa9");
    ck_assert_ptr_null(shadow_log_reader_next(r, NULL));
    g_autofree char *dmg = joined(&d);
    ck_assert_str_eq(dmg, "");
}
END_TEST

START_TEST(test_merge)
{
    Damage d;
    g_autofree char *a1 = conn_line("mx1", "1", "2026-12-03T10:00:00.000Z");
    g_autofree char *a2 = conn_line("mx1", "2", "2026-12-03T10:00:02.000Z");
    g_autofree char *a3 = conn_line("mx1", "3", "2026-12-03T10:00:04.000Z");
    g_autofree char *b1 = conn_line("mx2", "1", "2026-12-03T10:00:01.000Z");
    g_autofree char *b2 = conn_line("mx2", "2", "2026-12-03T10:00:02.000Z");
    g_autofree char *b3 = conn_line("mx2", "3", "2026-12-03T11:00:03.000+01:00");
    g_autofree char *ta = g_strconcat(a1, a2, a3, NULL);
    g_autofree char *tb = g_strconcat(b1, b2, b3, NULL);
    g_autofree char *pa = write_file("a.log", ta);
    g_autofree char *pb = write_gz("b.log.1.gz", tb, 0);
    g_autoptr(ShadowLogReader) r = reader_for(&d);
    ck_assert(shadow_log_reader_add(r, pa, NULL));
    ck_assert(shadow_log_reader_add(r, pb, NULL));
    g_autofree char *got = summarize(r);
    ck_assert_str_eq(got, "conn mx1 1 open a.log:1\n"
                          "conn mx2 1 open b.log.1.gz:1\n"
                          "conn mx1 2 open a.log:2\n"
                          "conn mx2 2 open b.log.1.gz:2\n"
                          "conn mx2 3 open b.log.1.gz:3\n"
                          "conn mx1 3 open a.log:3\n");
    g_autofree char *dmg = joined(&d);
    ck_assert_str_eq(dmg, "");
}
END_TEST

START_TEST(test_gzip_same)
{
    Damage d1, d2;
    const char *text = OPEN1 VERDICT1_T1 VERDICT1_T2 MESSAGE1 CLOSE1;
    g_autofree char *plain = write_file("events.log", text);
    g_autofree char *gz = write_gz("events.log.1.gz", text, 0);
    g_autoptr(ShadowLogReader) r1 = reader_for(&d1);
    g_autoptr(ShadowLogReader) r2 = reader_for(&d2);
    ck_assert(shadow_log_reader_add(r1, plain, NULL));
    ck_assert(shadow_log_reader_add(r2, gz, NULL));
    g_autofree char *s1 = summarize(r1);
    g_autofree char *s2 = summarize(r2);
    ck_assert_str_eq(s1, "conn mx1 000001 open events.log:1\n"
                         "msg mx1 000001.1 rejected t1=continue t2=reject events.log:4\n"
                         "conn mx1 000001 close events.log:5\n");
    g_auto(GStrv) parts = g_strsplit(s1, "events.log:", -1);
    g_autofree char *s1gz = g_strjoinv("events.log.1.gz:", parts);
    ck_assert_str_eq(s2, s1gz);
    g_autofree char *e1 = joined(&d1);
    g_autofree char *e2 = joined(&d2);
    ck_assert_str_eq(e1, "");
    ck_assert_str_eq(e2, "");
}
END_TEST

START_TEST(test_damage)
{
    Damage d;
    g_autofree char *text = g_strconcat(
        OPEN1,                                                                  /* 1 */
        "garbage\n",                                                            /* 2 */
        "{\"v\":2,\"type\":\"message\",\"ts\":\"2026-12-03T21:43:28.654Z\"}\n", /* 3 */
        "{\"v\":1,\"type\":\"alert\",\"ts\":\"2026-12-03T21:43:28.654Z\",\"host\":\"h\","
        "\"conn\":\"c\"}\n", /* 4 */
        "{\"v\":1,\"type\":\"verdict\",\"ts\":\"2026-12-03T21:43:28.654Z\",\"host\":\"h\","
        "\"conn\":\"c\",\"msg\":\"c.1\",\"action\":\"reject\"}\n", /* 5 */
        "{\"v\":1,\"type\":\"verdict\",\"ts\":\"2026-12-03T21:43:28.654Z\",\"host\":\"h\","
        "\"conn\":\"c\",\"msg\":\"c.1\",\"milter\":\"m\",\"action\":\"reject\","
        "\"size\":\"big\",\"rcpts\":{}}\n",                                             /* 6 */
        VERDICT1_T1,                                                                    /* 7 */
        CLOSE1,                                                                         /* 8 */
        "{\"v\":1,\"type\":\"message\",\"ts\":\"2026-12-03T21:43:28Z\",\"host\":\"h\"," /* 9 */
        "\"conn\":\"c\",\"msg\":\"c.1\",\"outcome\":\"lost\"}\n",
        "{\"v\":1,\"type\":\"connection\",\"ts\":\"yesterday\",\"host\":\"h\"}\n", /* 10 */
        "{\"v\":1,\"type\":\"connection\",\"ts\":\"2026-12-03T21:43:28Z\",\"host\":\"h\","
        "\"conn\":\"c\",\"event\":\"open\"} x\n",                        /* 11 */
        "\n",                                                            /* 12 */
        VERDICT1_T1, VERDICT1_T2, MESSAGE1,                              /* 13-15 */
        "{\"v\":1,\"type\":\"message\",\"ts\":\"2026-12-03T21:4", NULL); /* 16 */
    g_autofree char *path = write_file("events.log", text);
    g_autoptr(ShadowLogReader) r = reader_for(&d);
    ck_assert(shadow_log_reader_add(r, path, NULL));
    g_autofree char *got = summarize(r);
    ck_assert_str_eq(got, "conn mx1 000001 open events.log:1\n"
                          "conn mx1 000001 close events.log:8\n"
                          "msg mx1 000001.1 rejected t1=continue t2=reject events.log:15\n");
    g_autofree char *dmg = joined(&d);
    ck_assert_str_eq(dmg, "events.log:2: not a JSON object (column 1)\n"
                          "events.log:3: format version 2 (this reader knows version 1)\n"
                          "events.log:4: unknown record type \"alert\"\n"
                          "events.log:5: field \"milter\": missing\n"
                          "events.log:6: field \"rcpts\": expected an array\n"
                          "events.log:7: 1 verdict record for message 000001.1 followed by a "
                          "connection record\n"
                          "events.log:9: field \"outcome\": not an outcome\n"
                          "events.log:10: field \"ts\": not an RFC 3339 time\n"
                          "events.log:11: not JSON: text after the object at column 94\n"
                          "events.log:12: empty line\n"
                          "events.log:16: torn line (no newline at the end of the file)");
    ck_assert_uint_eq(shadow_log_reader_damaged(r), 11);
}
END_TEST

START_TEST(test_orphans_at_end)
{
    Damage d;
    g_autofree char *path = write_file("events.log", OPEN1 VERDICT1_T1 VERDICT1_T2);
    g_autoptr(ShadowLogReader) r = reader_for(&d);
    ck_assert(shadow_log_reader_add(r, path, NULL));
    g_autofree char *got = summarize(r);
    ck_assert_str_eq(got, "conn mx1 000001 open events.log:1\n");
    g_autofree char *dmg = joined(&d);
    ck_assert_str_eq(dmg, "events.log:2: 2 verdict records for message 000001.1 with no "
                          "message record before the end of the file");
}
END_TEST

START_TEST(test_gzip_truncated)
{
    Damage d;
    GString *text = g_string_new(NULL);
    for (int k = 0; k < 2000; k++) {
        g_autofree char *ts = g_strdup_printf("2026-12-03T10:%02d:%02d.000Z", k / 60 % 60, k % 60);
        g_autofree char *conn = g_strdup_printf("%06d", k);
        g_autofree char *line = conn_line("mx1", conn, ts);
        g_string_append(text, line);
    }
    g_autofree char *full = write_gz("whole.gz", text->str, 0);
    GStatBuf st;
    ck_assert_int_eq(g_stat(full, &st), 0);
    g_autofree char *path = write_gz("events.log.2.gz", text->str, (gsize)st.st_size / 2);
    g_string_free(text, TRUE);
    g_autoptr(ShadowLogReader) r = reader_for(&d);
    ck_assert(shadow_log_reader_add(r, path, NULL));
    guint n = 0;
    const ShadowLogRecord *rec;
    GError *error = NULL;
    while ((rec = shadow_log_reader_next(r, &error)) != NULL)
        n++;
    ck_assert_ptr_null(error);
    ck_assert_uint_gt(n, 100);
    ck_assert_uint_lt(n, 2000);
    ck_assert_uint_ge(d.lines->len, 1);
    /* The data ends inside a line: the piece is torn; zlib's complaint comes first. */
    const char *first = g_ptr_array_index(d.lines, 0);
    g_autofree char *prefix = g_strdup_printf("events.log.2.gz:%u: gzip: ", n + 1);
    ck_assert_msg(g_str_has_prefix(first, prefix), "%s", first);
    ck_assert_msg(g_str_has_suffix(first, "; the rest of the file is unreadable"), "%s", first);
    g_ptr_array_unref(d.lines);
}
END_TEST

START_TEST(test_open_error)
{
    g_autoptr(ShadowLogReader) r = shadow_log_reader_new();
    GError *error = NULL;
    g_autofree char *path = g_build_filename(tmpdir, "missing.log", NULL);
    ck_assert(!shadow_log_reader_add(r, path, &error));
    ck_assert_ptr_nonnull(error);
    ck_assert(g_error_matches(error, SHADOW_LOG_ERROR, SHADOW_LOG_ERROR_OPEN));
    g_autofree char *want = g_strdup_printf("cannot open %s: No such file or directory", path);
    ck_assert_str_eq(error->message, want);
    g_error_free(error);
}
END_TEST

START_TEST(test_range)
{
    Damage d;
    g_autofree char *path = write_file("events.log", OPEN1 VERDICT1_T1 VERDICT1_T2 MESSAGE1 CLOSE1);
    g_autoptr(ShadowLogReader) r = reader_for(&d);
    gint64 since, until;
    ck_assert(shadow_log_parse_time("2026-12-03T21:43:28.200Z", 24, &since));
    ck_assert(shadow_log_parse_time("2026-12-03T21:43:29.000Z", 24, &until));
    shadow_log_reader_set_range(r, since, until);
    ck_assert(shadow_log_reader_add(r, path, NULL));
    g_autofree char *got = summarize(r);
    ck_assert_str_eq(got, "msg mx1 000001.1 rejected t1=continue t2=reject events.log:4\n");
    g_autofree char *dmg = joined(&d);
    ck_assert_str_eq(dmg, "");
}
END_TEST

START_TEST(test_tail)
{
    Damage d;
    const char *part1 = OPEN1 VERDICT1_T1;
    g_autofree char *text = g_strconcat(part1, "{\"v\":1,\"type\":\"verd", NULL);
    g_autofree char *path = write_file("events.log", text);
    guint64 offset, line;
    {
        g_autoptr(ShadowLogReader) r = reader_for(&d);
        shadow_log_reader_set_tail(r, TRUE);
        ck_assert(shadow_log_reader_add(r, path, NULL));
        g_autofree char *got = summarize(r);
        ck_assert_str_eq(got, "conn mx1 000001 open events.log:1\n");
        offset = shadow_log_reader_resume_offset(r, path, &line);
        ck_assert_uint_eq(offset, strlen(OPEN1));
        ck_assert_uint_eq(line, 1);
        g_autofree char *dmg = joined(&d);
        ck_assert_str_eq(dmg, "");
    }
    /* The writer finishes: the rest of the message, and a new connection. */
    g_autofree char *text2 = g_strconcat(part1, VERDICT1_T2, MESSAGE1, CLOSE1, NULL);
    g_free(path);
    path = write_file("events.log", text2);
    {
        g_autoptr(ShadowLogReader) r = reader_for(&d);
        shadow_log_reader_set_tail(r, TRUE);
        ck_assert(shadow_log_reader_add_at(r, path, offset, line, NULL));
        g_autofree char *got = summarize(r);
        ck_assert_str_eq(got, "msg mx1 000001.1 rejected t1=continue t2=reject events.log:4\n"
                              "conn mx1 000001 close events.log:5\n");
        offset = shadow_log_reader_resume_offset(r, path, &line);
        ck_assert_uint_eq(offset, strlen(text2));
        ck_assert_uint_eq(line, 5);
        g_autofree char *dmg = joined(&d);
        ck_assert_str_eq(dmg, "");
    }
    /* Nothing new: nothing read. */
    {
        g_autoptr(ShadowLogReader) r = reader_for(&d);
        shadow_log_reader_set_tail(r, TRUE);
        ck_assert(shadow_log_reader_add_at(r, path, offset, line, NULL));
        g_autofree char *got = summarize(r);
        ck_assert_str_eq(got, "");
        ck_assert_uint_eq(shadow_log_reader_resume_offset(r, path, NULL), offset);
        g_autofree char *dmg = joined(&d);
        ck_assert_str_eq(dmg, "");
    }
}
END_TEST

START_TEST(test_many)
{
    /* Enough messages for many batches: each keeps its two verdicts, in order. */
    Damage d;
    GString *text = g_string_new(NULL);
    const guint n = 6000;
    for (guint k = 0; k < n; k++) {
        char id[32];
        g_snprintf(id, sizeof id, "%06u.1", k);
        const char *parts[] = { VERDICT1_T1, VERDICT1_T2, MESSAGE1 };
        for (gsize p = 0; p < G_N_ELEMENTS(parts); p++) {
            g_auto(GStrv) pieces = g_strsplit(parts[p], "000001.1", -1);
            g_autofree char *line = g_strjoinv(id, pieces);
            g_string_append(text, line);
        }
    }
    g_autofree char *path = write_file("events.log", text->str);
    gsize total = text->len;
    g_string_free(text, TRUE);
    g_autoptr(ShadowLogReader) r = reader_for(&d);
    shadow_log_reader_set_tail(r, TRUE);
    ck_assert(shadow_log_reader_add(r, path, NULL));
    const ShadowLogRecord *rec;
    guint k = 0;
    while ((rec = shadow_log_reader_next(r, NULL)) != NULL) {
        char id[32];
        g_snprintf(id, sizeof id, "%06u.1", k);
        ck_assert_int_eq(rec->kind, SHADOW_LOG_MESSAGE);
        ck_assert_str_eq(rec->message.msg, id);
        ck_assert_uint_eq(rec->line, 3 * k + 3);
        ck_assert_uint_eq(rec->message.n_verdicts, 2);
        ck_assert_str_eq(rec->message.verdicts[0].milter, "t1");
        ck_assert_uint_eq(rec->message.verdicts[0].n_edits, 8);
        ck_assert_str_eq(rec->message.verdicts[1].milter, "t2");
        ck_assert_str_eq(rec->message.verdicts[1].rcpts[0].rcpt, "<carol@example.net>");
        k++;
    }
    ck_assert_uint_eq(k, n);
    guint64 line;
    ck_assert_uint_eq(shadow_log_reader_resume_offset(r, path, &line), total);
    ck_assert_uint_eq(line, 3 * n);
    g_autofree char *dmg = joined(&d);
    ck_assert_str_eq(dmg, "");
}
END_TEST

START_TEST(test_many_files)
{
    /* More files than get threads of their own: read on this thread, merged alike. */
    Damage d;
    g_autoptr(ShadowLogReader) r = reader_for(&d);
    GString *want = g_string_new(NULL);
    const guint files = 7, per_file = 300;
    for (guint f = 0; f < files; f++) {
        GString *text = g_string_new(NULL);
        for (guint k = 0; k < per_file; k++) {
            char ts[64], conn[16];
            guint t = k * files + f; /* file f holds every files-th second */
            g_snprintf(ts, sizeof ts, "2026-12-03T%02u:%02u:%02u.000Z", t / 3600, t / 60 % 60,
                       t % 60);
            g_snprintf(conn, sizeof conn, "%u", t);
            g_autofree char *line = conn_line("mx", conn, ts);
            g_string_append(text, line);
        }
        char name[32];
        g_snprintf(name, sizeof name, "events.log.%u", f);
        g_autofree char *path = f % 2 ? write_gz(name, text->str, 0) : write_file(name, text->str);
        g_string_free(text, TRUE);
        ck_assert(shadow_log_reader_add(r, path, NULL));
    }
    for (guint t = 0; t < files * per_file; t++)
        g_string_append_printf(want, "conn mx %u open events.log.%u:%u\n", t, t % files,
                               t / files + 1);
    g_autofree char *got = summarize(r);
    ck_assert_str_eq(got, want->str);
    g_string_free(want, TRUE);
    g_autofree char *dmg = joined(&d);
    ck_assert_str_eq(dmg, "");
}
END_TEST

START_TEST(test_predict)
{
    Damage d;
    g_autofree char *path = write_file("events.log", VERDICT1_T1 VERDICT1_T2 MESSAGE1);
    g_autoptr(ShadowLogReader) r = reader_for(&d);
    ck_assert(shadow_log_reader_add(r, path, NULL));
    const ShadowLogRecord *rec = shadow_log_reader_next(r, NULL);
    ck_assert_ptr_nonnull(rec);
    const ShadowLogMessage *m = &rec->message;
    ShadowVerdict *chain[2];
    for (guint k = 0; k < m->n_verdicts; k++)
        chain[k] = shadow_log_verdict_to_verdict(&m->verdicts[k]);
    ck_assert_uint_eq(chain[0]->edits->len, 8);
    ShadowPrediction p;
    shadow_predict(chain, 2, m->rcpts, m->n_rcpts, &p);
    ck_assert_int_eq(p.outcome, m->outcome);
    ck_assert_str_eq(p.decided_by, m->decided_by);
    ck_assert_int_eq(p.stage, m->stage);
    ck_assert_uint_eq(p.refused->len, m->n_refused);
    shadow_prediction_clear(&p);
    /* Only t1: its edits are the chain's, nothing is refused. */
    shadow_predict(chain, 1, m->rcpts, m->n_rcpts, &p);
    ck_assert_int_eq(p.outcome, SHADOW_OUTCOME_DELIVERED);
    ck_assert_uint_eq(p.edits->len, 8);
    shadow_prediction_clear(&p);
    shadow_verdict_free(chain[0]);
    shadow_verdict_free(chain[1]);
    g_autofree char *dmg = joined(&d);
    ck_assert_str_eq(dmg, "");
}
END_TEST

/* logread_suite - every test case */
static Suite *
logread_suite(void)
{
    Suite *s = suite_create("shadow_logread");
    TCase *tc = tcase_create("reader");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_time);
    tcase_add_test(tc, test_records);
    tcase_add_test(tc, test_escapes);
    tcase_add_test(tc, test_merge);
    tcase_add_test(tc, test_gzip_same);
    tcase_add_test(tc, test_damage);
    tcase_add_test(tc, test_orphans_at_end);
    tcase_add_test(tc, test_gzip_truncated);
    tcase_add_test(tc, test_open_error);
    tcase_add_test(tc, test_range);
    tcase_add_test(tc, test_tail);
    tcase_add_test(tc, test_predict);
    tcase_add_test(tc, test_many);
    tcase_add_test(tc, test_many_files);
    suite_add_tcase(s, tc);
    return s;
}

int
main(void)
{
    SRunner *sr = srunner_create(logread_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? 0 : 1;
}
