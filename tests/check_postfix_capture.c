/* SPDX-License-Identifier: MIT */
/*
 * NAME
 *	check_postfix_capture - decode packets captured from Postfix 3.7
 * DESCRIPTION
 *	fixtures/postfix-3.7/NAME.packets holds the packets of one milter
 *	connection between Debian's Postfix 3.7 and a libmilter (pymilter)
 *	milter, recorded by tests/capture (see the README there). NAME.expect
 *	is the listing of those packets made by an independent renderer
 *	(tests/capture/render-packets.py). Each stream must decode, whole and
 *	in slices, to exactly that listing, and re-encode to the same bytes.
 *	"fields" then checks chosen packets field by field.
 */

/* System library. */
#include <stdlib.h>
#include <string.h>

/* Check. */
#include <check.h>

/* Shadow libraries. */
#include "milter_decode.h"
#include "milter_encode.h"

/* Application-specific. */
#include "testlib.h"

#define CAPTURE_DIR FIXTURE_DIR "/postfix-3.7"

/* The recorded sessions; each must be present. */
static const char *const captures[] = { "basic", "session", "ipv6", "pickup" };

/* Capture - one fixture: packets in order, with direction */
typedef struct {
    GPtrArray *packets; /* GBytes, whole packets */
    GArray *dirs;       /* MilterDirection per packet */
    GPtrArray *expect;  /* char *, listing lines */
} Capture;

/* capture_free - free a Capture */
static void
capture_free(Capture *c)
{
    g_ptr_array_unref(c->packets);
    g_array_unref(c->dirs);
    g_ptr_array_unref(c->expect);
    g_free(c);
}
G_DEFINE_AUTOPTR_CLEANUP_FUNC(Capture, capture_free)

/* read_lines - a text file as lines, without the final empty one */
static char **
read_lines(const char *path)
{
    g_autoptr(GError) error = NULL;
    g_autofree char *text = NULL;
    char **lines;
    guint n;

    ck_assert_msg(g_file_get_contents(path, &text, NULL, &error), "%s",
                  error ? error->message : "");
    lines = g_strsplit(text, "\n", -1);
    n = g_strv_length(lines);
    if (n > 0 && lines[n - 1][0] == '\0') {
        g_free(lines[n - 1]);
        lines[n - 1] = NULL;
    }
    return lines;
}

/* capture_load - parse NAME.packets and NAME.expect */
static Capture *
capture_load(const char *name)
{
    g_autofree char *ppath = g_strdup_printf("%s/%s.packets", CAPTURE_DIR, name);
    g_autofree char *epath = g_strdup_printf("%s/%s.expect", CAPTURE_DIR, name);
    g_auto(GStrv) plines = read_lines(ppath);
    g_auto(GStrv) elines = read_lines(epath);
    Capture *c = g_new0(Capture, 1);

    c->packets = g_ptr_array_new_with_free_func((GDestroyNotify)g_bytes_unref);
    c->dirs = g_array_new(FALSE, FALSE, sizeof(MilterDirection));
    c->expect = g_ptr_array_new_with_free_func(g_free);
    for (guint i = 0; plines[i]; i++) {
        const char *l = plines[i];
        MilterDirection dir;
        GByteArray *bytes;

        if (l[0] == '#')
            continue;
        ck_assert_msg((l[0] == '>' || l[0] == '<') && l[1] == ' ', "%s:%u: bad line", ppath, i + 1);
        dir = l[0] == '>' ? MILTER_DIR_COMMAND : MILTER_DIR_REPLY;
        bytes = test_hex(l + 2);
        g_ptr_array_add(c->packets, g_byte_array_free_to_bytes(bytes));
        g_array_append_val(c->dirs, dir);
    }
    for (guint i = 0; elines[i]; i++)
        g_ptr_array_add(c->expect, g_strdup(elines[i]));
    ck_assert_msg(c->packets->len > 0, "%s: no packets", ppath);
    return c;
}

/* capture_stream - the packets of one direction, concatenated */
static GByteArray *
capture_stream(const Capture *c, MilterDirection dir)
{
    GByteArray *out = g_byte_array_new();

    for (guint i = 0; i < c->packets->len; i++) {
        gsize len;
        const guint8 *p;

        if (g_array_index(c->dirs, MilterDirection, i) != dir)
            continue;
        p = g_bytes_get_data(c->packets->pdata[i], &len);
        g_byte_array_append(out, p, (guint)len);
    }
    return out;
}

/* test_capture_listing - both streams decode to the independent listing */
START_TEST(test_capture_listing)
{
    static const gsize slices[] = { 0, 1, 7, 4096 };
    const char *name = captures[_i];
    g_autoptr(Capture) c = capture_load(name);
    g_autoptr(GByteArray) cmd = capture_stream(c, MILTER_DIR_COMMAND);
    g_autoptr(GByteArray) rep = capture_stream(c, MILTER_DIR_REPLY);

    ck_assert_uint_eq(c->expect->len, c->packets->len);
    for (gsize s = 0; s < G_N_ELEMENTS(slices); s++) {
        g_autoptr(GError) error = NULL;
        g_autoptr(GPtrArray) cl =
            test_decode_listing(MILTER_DIR_COMMAND, cmd->data, cmd->len, slices[s], &error);
        g_autoptr(GPtrArray) rl = NULL;
        guint ci = 0, ri = 0;

        ck_assert_msg(cl != NULL, "%s commands: %s", name, error ? error->message : "");
        rl = test_decode_listing(MILTER_DIR_REPLY, rep->data, rep->len, slices[s], &error);
        ck_assert_msg(rl != NULL, "%s replies: %s", name, error ? error->message : "");
        ck_assert_uint_eq(cl->len + rl->len, c->packets->len);
        /* Interleave in capture order and compare line by line. */
        for (guint i = 0; i < c->packets->len; i++) {
            MilterDirection dir = g_array_index(c->dirs, MilterDirection, i);
            const char *got = dir == MILTER_DIR_COMMAND ? cl->pdata[ci++] : rl->pdata[ri++];

            ck_assert_msg(strcmp(got, c->expect->pdata[i]) == 0,
                          "%s.expect line %u (slice %zu):\n got %s\nwant %s", name, i + 1,
                          slices[s], got, (char *)c->expect->pdata[i]);
        }
    }
}
END_TEST

/* test_capture_reencode - every captured packet re-encodes to its bytes */
START_TEST(test_capture_reencode)
{
    const char *name = captures[_i];
    g_autoptr(Capture) c = capture_load(name);

    for (guint i = 0; i < c->packets->len; i++) {
        MilterDirection dir = g_array_index(c->dirs, MilterDirection, i);
        g_autoptr(MilterDecoder) d = milter_decoder_new(dir, 0);
        g_autoptr(GByteArray) out = g_byte_array_new();
        g_autoptr(GError) error = NULL;
        gsize len, used;
        const guint8 *p = g_bytes_get_data(c->packets->pdata[i], &len);
        MilterPacket pkt;

        ck_assert_int_eq(milter_decoder_feed(d, p, len, &used, &pkt, &error), MILTER_DECODE_PACKET);
        ck_assert_uint_eq(used, len);
        milter_encode_packet(out, dir, &pkt);
        ck_assert_msg(out->len == len && memcmp(out->data, p, len) == 0,
                      "%s packet %u re-encodes differently", name, i + 1);
    }
}
END_TEST

/*
 * nth_packet - decode the nth (0-based) packet with this code and direction
 *
 * The packet is decoded alone into *d, which the caller frees; pkt stays
 * valid while *d and c live.
 */
static void
nth_packet(const Capture *c, MilterDirection dir, guint8 code, guint nth, MilterDecoder **d,
           MilterPacket *pkt)
{
    for (guint i = 0; i < c->packets->len; i++) {
        gsize len, used;
        const guint8 *p = g_bytes_get_data(c->packets->pdata[i], &len);
        g_autoptr(GError) error = NULL;

        if (g_array_index(c->dirs, MilterDirection, i) != dir || p[MILTER_LEN_SIZE] != code)
            continue;
        if (nth-- > 0)
            continue;
        *d = milter_decoder_new(dir, 0);
        ck_assert_int_eq(milter_decoder_feed(*d, p, len, &used, pkt, &error), MILTER_DECODE_PACKET);
        return;
    }
    ck_abort_msg("no packet %c number %u", code, nth);
}

/* test_fields_basic - the basic session, field by field */
START_TEST(test_fields_basic)
{
    static const guint8 eom_replies[] = {
        SMFIR_PROGRESS,  SMFIR_ADDHEADER, SMFIR_INSHEADER,  SMFIR_CHGHEADER,
        SMFIR_CHGHEADER, SMFIR_CHGFROM,   SMFIR_ADDRCPT,    SMFIR_ADDRCPT_PAR,
        SMFIR_DELRCPT,   SMFIR_REPLBODY,  SMFIR_QUARANTINE, SMFIR_CONTINUE,
    };
    g_autoptr(Capture) c = capture_load("basic");
    MilterPacket pkt;
    guint i, k;

    {
        g_autoptr(MilterDecoder) d = NULL;

        /* Postfix's offer: version 6, every action, every protocol bit. */
        nth_packet(c, MILTER_DIR_COMMAND, SMFIC_OPTNEG, 0, &d, &pkt);
        ck_assert_uint_eq(pkt.version, 6);
        ck_assert_uint_eq(pkt.actions, SMFI_CURR_ACTS);
        ck_assert_uint_eq(pkt.protocol, SMFI_CURR_PROT);
    }
    {
        g_autoptr(MilterDecoder) d = NULL;

        /* libmilter's answer: all actions, SKIP, macro lists per stage. */
        nth_packet(c, MILTER_DIR_REPLY, SMFIR_OPTNEG, 0, &d, &pkt);
        ck_assert_uint_eq(pkt.version, 6);
        ck_assert_uint_eq(pkt.actions, SMFI_CURR_ACTS);
        ck_assert_uint_eq(pkt.protocol, SMFIP_SKIP);
        ck_assert_uint_ge(pkt.n_symlists, 3);
        ck_assert_uint_eq(pkt.symlists[0].stage, SMFIM_CONNECT);
        ck_assert_str_eq(pkt.symlists[0].macros, "j _ {daemon_name} {client_addr} {client_name}");
        ck_assert_uint_eq(pkt.symlists[1].stage, SMFIM_HELO);
    }
    {
        g_autoptr(MilterDecoder) d = NULL;

        /* Peer name lookups are off: Postfix sends [addr] as the hostname. */
        nth_packet(c, MILTER_DIR_COMMAND, SMFIC_CONNECT, 0, &d, &pkt);
        ck_assert_uint_eq(pkt.argc, 2);
        ck_assert_str_eq(pkt.argv[0], "[127.0.0.1]");
        ck_assert_int_eq(pkt.family, SMFIA_INET);
        ck_assert_uint_eq(pkt.port, 58488);
        ck_assert_str_eq(pkt.argv[1], "127.0.0.1");
    }
    {
        g_autoptr(MilterDecoder) d = NULL;

        /* The first D carries the connect macros, as name/value pairs. */
        nth_packet(c, MILTER_DIR_COMMAND, SMFIC_MACRO, 0, &d, &pkt);
        ck_assert_int_eq(pkt.macro_cmd, SMFIC_CONNECT);
        ck_assert_uint_eq(pkt.argc % 2, 0);
        ck_assert_str_eq(pkt.argv[0], "j");
        ck_assert_str_eq(pkt.argv[1], "mx.tb.test");
    }
    {
        g_autoptr(MilterDecoder) d = NULL;

        /* The empty D before HELO (no helo macros without TLS). */
        nth_packet(c, MILTER_DIR_COMMAND, SMFIC_MACRO, 1, &d, &pkt);
        ck_assert_int_eq(pkt.macro_cmd, SMFIC_HELO);
        ck_assert_uint_eq(pkt.argc, 0);
    }
    {
        g_autoptr(MilterDecoder) d = NULL;

        /* MAIL keeps its angle brackets and ESMTP arguments. */
        nth_packet(c, MILTER_DIR_COMMAND, SMFIC_MAIL, 0, &d, &pkt);
        ck_assert_uint_eq(pkt.argc, 3);
        ck_assert_str_eq(pkt.argv[0], "<alice@example.com>");
        ck_assert_str_eq(pkt.argv[1], "SIZE=659");
        ck_assert_str_eq(pkt.argv[2], "BODY=8BITMIME");
    }
    {
        g_autoptr(MilterDecoder) d = NULL;

        /* A folded header: lines joined by a bare LF, leading space stripped. */
        nth_packet(c, MILTER_DIR_COMMAND, SMFIC_HEADER, 5, &d, &pkt);
        ck_assert_str_eq(pkt.argv[0], "X-Folded");
        ck_assert_str_eq(pkt.argv[1], "first line of a folded header\n"
                                      "\tsecond line, indented with a tab\n"
                                      "  third line, indented with two spaces");
    }
    {
        g_autoptr(MilterDecoder) d = NULL;

        nth_packet(c, MILTER_DIR_REPLY, SMFIR_INSHEADER, 0, &d, &pkt);
        ck_assert_uint_eq(pkt.index, 1);
        ck_assert_str_eq(pkt.argv[0], "X-Capture-Inserted");
    }
    {
        g_autoptr(MilterDecoder) d = NULL;

        /* Deleting a header is a change to the empty value. */
        nth_packet(c, MILTER_DIR_REPLY, SMFIR_CHGHEADER, 1, &d, &pkt);
        ck_assert_uint_eq(pkt.index, 1);
        ck_assert_str_eq(pkt.argv[0], "X-Delete-Me");
        ck_assert_str_eq(pkt.argv[1], "");
    }

    /* After EOB: progress, every edit, then the verdict, in that order. */
    for (i = 0; i < c->packets->len; i++) {
        const guint8 *p = g_bytes_get_data(c->packets->pdata[i], NULL);

        if (g_array_index(c->dirs, MilterDirection, i) == MILTER_DIR_COMMAND &&
            p[MILTER_LEN_SIZE] == SMFIC_BODYEOB)
            break;
    }
    ck_assert_uint_lt(i, c->packets->len);
    for (k = 0; k < G_N_ELEMENTS(eom_replies); k++) {
        const guint8 *p = g_bytes_get_data(c->packets->pdata[i + 1 + k], NULL);

        ck_assert_int_eq(g_array_index(c->dirs, MilterDirection, i + 1 + k), MILTER_DIR_REPLY);
        ck_assert_int_eq(p[MILTER_LEN_SIZE], eom_replies[k]);
    }
}
END_TEST

/* test_fields_session - chunking, unknown command, replies in one connection */
START_TEST(test_fields_session)
{
    static const gsize chunks[] = { MILTER_CHUNK_SIZE, MILTER_CHUNK_SIZE, 11920 };
    g_autoptr(Capture) c = capture_load("session");
    MilterPacket pkt;
    guint first_big = G_MAXUINT;

    /* The large body arrives in chunks of exactly 65535 bytes. */
    for (guint n = 0; n < 16 && first_big == G_MAXUINT; n++) {
        g_autoptr(MilterDecoder) d = NULL;

        nth_packet(c, MILTER_DIR_COMMAND, SMFIC_BODY, n, &d, &pkt);
        if (pkt.body_len == MILTER_CHUNK_SIZE)
            first_big = n;
    }
    ck_assert_uint_ne(first_big, G_MAXUINT);
    for (gsize k = 0; k < G_N_ELEMENTS(chunks); k++) {
        g_autoptr(MilterDecoder) d = NULL;

        nth_packet(c, MILTER_DIR_COMMAND, SMFIC_BODY, first_big + (guint)k, &d, &pkt);
        ck_assert_uint_eq(pkt.body_len, chunks[k]);
    }
    {
        g_autoptr(MilterDecoder) d = NULL;

        nth_packet(c, MILTER_DIR_COMMAND, SMFIC_UNKNOWN, 0, &d, &pkt);
        ck_assert_str_eq(pkt.argv[0], "XCAPTURE");
    }
    {
        g_autoptr(MilterDecoder) d = NULL;

        /* A multi-line reply keeps its CRLFs and has none at the end. */
        nth_packet(c, MILTER_DIR_REPLY, SMFIR_REPLYCODE, 0, &d, &pkt);
        ck_assert(g_str_has_prefix(pkt.argv[0], "550-5.7.1 "));
        ck_assert(strstr(pkt.argv[0], "\r\n550 5.7.1 third and last line") != NULL);
        ck_assert(!g_str_has_suffix(pkt.argv[0], "\r\n"));
    }
    {
        g_autoptr(MilterDecoder) d = NULL;

        /* A second EHLO mid-session. */
        nth_packet(c, MILTER_DIR_COMMAND, SMFIC_HELO, 1, &d, &pkt);
        ck_assert_str_eq(pkt.argv[0], "client2.tb.test");
    }
}
END_TEST

/* test_fields_connect - IPv6 and local submission connect forms */
START_TEST(test_fields_connect)
{
    MilterPacket pkt;

    {
        g_autoptr(Capture) c = capture_load("ipv6");
        g_autoptr(MilterDecoder) d = NULL;

        /* Postfix sends the bare IPv6 address (Sendmail would prefix IPv6:). */
        nth_packet(c, MILTER_DIR_COMMAND, SMFIC_CONNECT, 0, &d, &pkt);
        ck_assert_str_eq(pkt.argv[0], "[::1]");
        ck_assert_int_eq(pkt.family, SMFIA_INET6);
        ck_assert_str_eq(pkt.argv[1], "::1");
    }
    {
        g_autoptr(Capture) c = capture_load("pickup");
        g_autoptr(MilterDecoder) d = NULL;

        /* sendmail(1) submissions: localhost, IPv4 loopback, port 0. */
        nth_packet(c, MILTER_DIR_COMMAND, SMFIC_CONNECT, 0, &d, &pkt);
        ck_assert_str_eq(pkt.argv[0], "localhost");
        ck_assert_int_eq(pkt.family, SMFIA_INET);
        ck_assert_uint_eq(pkt.port, 0);
        ck_assert_str_eq(pkt.argv[1], "127.0.0.1");
    }
}
END_TEST

/* postfix_capture_suite - listing, re-encoding, fields */
static Suite *
postfix_capture_suite(void)
{
    Suite *s = suite_create("postfix_capture");
    TCase *tc;

    tc = tcase_create("listing");
    tcase_set_timeout(tc, 30);
    tcase_add_loop_test(tc, test_capture_listing, 0, (int)G_N_ELEMENTS(captures));
    tcase_add_loop_test(tc, test_capture_reencode, 0, (int)G_N_ELEMENTS(captures));
    suite_add_tcase(s, tc);

    tc = tcase_create("fields");
    tcase_add_test(tc, test_fields_basic);
    tcase_add_test(tc, test_fields_session);
    tcase_add_test(tc, test_fields_connect);
    suite_add_tcase(s, tc);
    return s;
}

int
main(void)
{
    SRunner *sr = srunner_create(postfix_capture_suite());
    int failed;

    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
