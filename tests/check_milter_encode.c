/* SPDX-License-Identifier: MIT */
/*
 * NAME
 *	check_milter_encode - Check suite for the encoder
 * DESCRIPTION
 *	core: every packet of testlib's table is built with the typed encoder
 *	functions and must equal the table's bytes (written by hand from the
 *	protocol notes). chunks: body splitting.
 */

/* System library. */
#include <stdlib.h>
#include <string.h>

/* Check. */
#include <check.h>

/* Shadow libraries. */
#include "milter_encode.h"

/* Application-specific. */
#include "testlib.h"

/* build - append the packet a table id names; FALSE for an unknown id */
static gboolean
build(const char *id, GByteArray *out)
{
    static const char *const macro_pairs[] = {
        "j", "mx.example.com", "{daemon_name}", "smtpd", "_", "unknown [127.0.0.1]",
    };
    static const char *const empty_value[] = { "{mail_addr}", "" };
    static const char *const mail[] = { "<alice@example.com>", "SIZE=1024", "BODY=8BITMIME" };
    static const MilterSymlist symlists[] = { { SMFIM_CONNECT, "j {daemon_name}" },
                                              { SMFIM_ENVFROM, "{mail_addr},i" } };
    static const char *const chgfrom_args[] = { "<bounce@example.com>", "SIZE=100" };
    static const char *const addrcpt_par[] = { "<dave@example.org>", "NOTIFY=NEVER" };
    static const struct {
        const char *id;
        guint8 code;
    } empty[] = {
        { "data", SMFIC_DATA },         { "eoh", SMFIC_EOH },
        { "eob", SMFIC_BODYEOB },       { "abort", SMFIC_ABORT },
        { "quit", SMFIC_QUIT },         { "quit_nc", SMFIC_QUIT_NC },
        { "continue", SMFIR_CONTINUE }, { "accept", SMFIR_ACCEPT },
        { "reject", SMFIR_REJECT },     { "tempfail", SMFIR_TEMPFAIL },
        { "discard", SMFIR_DISCARD },   { "skip", SMFIR_SKIP },
        { "progress", SMFIR_PROGRESS }, { "shutdown", SMFIR_SHUTDOWN },
        { "body_empty", SMFIC_BODY },   { "replbody_empty", SMFIR_REPLBODY },
    };
    static const struct {
        const char *id;
        guint8 code;
        const char *s;
    } one[] = {
        { "helo", SMFIC_HELO, "client.example.org" },
        { "mail_null", SMFIC_MAIL, "<>" },
        { "rcpt", SMFIC_RCPT, "<bob@example.net>" },
        { "unknown", SMFIC_UNKNOWN, "FOO bar" },
        { "replycode", SMFIR_REPLYCODE, "550 5.7.1 Rejected by policy" },
        { "replycode_multi", SMFIR_REPLYCODE, "550-5.7.1 first\r\n550 5.7.1 second" },
        { "chgfrom", SMFIR_CHGFROM, "<bounce@example.com>" },
        { "addrcpt", SMFIR_ADDRCPT, "<carol@example.org>" },
        { "addrcpt_par_plain", SMFIR_ADDRCPT_PAR, "<dave@example.org>" },
        { "delrcpt", SMFIR_DELRCPT, "<bob@example.net>" },
        { "quarantine", SMFIR_QUARANTINE, "held for review" },
    };
    guint8 long_body[300];

    for (gsize i = 0; i < G_N_ELEMENTS(empty); i++)
        if (g_str_equal(id, empty[i].id)) {
            milter_encode_empty(out, empty[i].code);
            return TRUE;
        }
    for (gsize i = 0; i < G_N_ELEMENTS(one); i++)
        if (g_str_equal(id, one[i].id)) {
            milter_encode_string(out, one[i].code, one[i].s);
            return TRUE;
        }

    if (g_str_equal(id, "optneg"))
        milter_encode_optneg(out, SMFIC_OPTNEG, 6, SMFI_CURR_ACTS, SMFI_CURR_PROT, NULL, 0);
    else if (g_str_equal(id, "macro"))
        milter_encode_macro(out, SMFIC_CONNECT, macro_pairs, G_N_ELEMENTS(macro_pairs));
    else if (g_str_equal(id, "macro_none"))
        milter_encode_macro(out, SMFIC_HEADER, NULL, 0);
    else if (g_str_equal(id, "macro_empty_value"))
        milter_encode_macro(out, SMFIC_MAIL, empty_value, G_N_ELEMENTS(empty_value));
    else if (g_str_equal(id, "connect_inet"))
        milter_encode_connect(out, "client.example.org", SMFIA_INET, 12345, "192.0.2.1");
    else if (g_str_equal(id, "connect_inet6"))
        milter_encode_connect(out, "[2001:db8::1]", SMFIA_INET6, 25, "2001:db8::1");
    else if (g_str_equal(id, "connect_unix"))
        milter_encode_connect(out, "localhost", SMFIA_UNIX, 0, "/run/smtp.sock");
    else if (g_str_equal(id, "connect_unknown"))
        milter_encode_connect(out, "localhost", SMFIA_UNKNOWN, 0, NULL);
    else if (g_str_equal(id, "mail"))
        milter_encode_strings(out, SMFIC_MAIL, mail, G_N_ELEMENTS(mail));
    else if (g_str_equal(id, "header"))
        milter_encode_header(out, SMFIC_HEADER, 0, "Subject", "hello\n\tworld \"quoted\" \\");
    else if (g_str_equal(id, "header_8bit"))
        milter_encode_header(out, SMFIC_HEADER, 0, "X-8bit", "caf\xc3\xa9\x01\x7f");
    else if (g_str_equal(id, "body"))
        milter_encode_body(out, SMFIC_BODY, (const guint8 *)"line one\r\nline two\r\n", 20);
    else if (g_str_equal(id, "body_nul"))
        milter_encode_body(out, SMFIC_BODY, (const guint8 *)"a\0b", 3);
    else if (g_str_equal(id, "body_long")) {
        memset(long_body, 'x', sizeof(long_body));
        milter_encode_body(out, SMFIC_BODY, long_body, sizeof(long_body));
    } else if (g_str_equal(id, "eob_data"))
        milter_encode_body(out, SMFIC_BODYEOB, (const guint8 *)"final\r\n", 7);
    else if (g_str_equal(id, "optneg_reply"))
        milter_encode_optneg(out, SMFIR_OPTNEG, 6, SMFI_V2_ACTS, SMFIP_HDR_LEADSPC, symlists,
                             G_N_ELEMENTS(symlists));
    else if (g_str_equal(id, "optneg_reply_plain"))
        milter_encode_optneg(out, SMFIR_OPTNEG, 2, SMFIF_ADDHDRS, SMFI_V2_PROT, NULL, 0);
    else if (g_str_equal(id, "addheader"))
        milter_encode_header(out, SMFIR_ADDHEADER, 0, "X-Shadow", "yes");
    else if (g_str_equal(id, "insheader"))
        milter_encode_header(out, SMFIR_INSHEADER, 0, "X-First", "top");
    else if (g_str_equal(id, "chgheader"))
        milter_encode_header(out, SMFIR_CHGHEADER, 1, "Subject", "[SPAM] hello");
    else if (g_str_equal(id, "chgheader_delete"))
        milter_encode_header(out, SMFIR_CHGHEADER, 2, "X-Old", "");
    else if (g_str_equal(id, "replbody"))
        milter_encode_body(out, SMFIR_REPLBODY, (const guint8 *)"new body\r\n", 10);
    else if (g_str_equal(id, "chgfrom_args"))
        milter_encode_strings(out, SMFIR_CHGFROM, chgfrom_args, 2);
    else if (g_str_equal(id, "addrcpt_par"))
        milter_encode_strings(out, SMFIR_ADDRCPT_PAR, addrcpt_par, 2);
    else
        return FALSE;
    return TRUE;
}

/* test_packet_encodes - one table packet built from scratch */
START_TEST(test_packet_encodes)
{
    const TestPacket *tp = &test_packets[_i];
    g_autoptr(GByteArray) want = test_hex(tp->hex);
    g_autoptr(GByteArray) got = g_byte_array_new();
    g_autofree char *got_hex = NULL;

    ck_assert_msg(build(tp->id, got), "no encoder case for table packet %s", tp->id);
    got_hex = test_hexdump(got->data, got->len);
    ck_assert_msg(got->len == want->len && memcmp(got->data, want->data, want->len) == 0,
                  "%s:\n got %s\nwant %s", tp->id, got_hex, tp->hex);
}
END_TEST

/* test_appends - encoders append, they do not overwrite */
START_TEST(test_appends)
{
    g_autoptr(GByteArray) out = g_byte_array_new();
    g_autoptr(GByteArray) want = test_hex("0000000163 0000000172 0000000448616200");

    milter_encode_empty(out, SMFIR_CONTINUE);
    milter_encode_empty(out, SMFIR_REJECT);
    milter_encode_string(out, SMFIC_HELO, "ab");
    ck_assert_uint_eq(out->len, want->len);
    ck_assert_mem_eq(out->data, want->data, want->len);
}
END_TEST

/* count_packets - walk length words; check each chunk's size */
static guint
count_packets(const GByteArray *out, gsize chunk, gsize total)
{
    gsize off = 0, data = 0;
    guint n = 0;

    while (off < out->len) {
        guint32 len = (guint32)out->data[off] << 24 | (guint32)out->data[off + 1] << 16 |
                      (guint32)out->data[off + 2] << 8 | out->data[off + 3];

        ck_assert_uint_ge(len, 1);
        ck_assert_uint_le(len - 1, chunk);
        data += len - 1;
        off += MILTER_LEN_SIZE + len;
        n++;
    }
    ck_assert_uint_eq(off, out->len);
    ck_assert_uint_eq(data, total);
    return n;
}

/* test_body_chunks - bodies split at the chunk size; an empty body is one packet */
START_TEST(test_body_chunks)
{
    static const struct {
        gsize len;
        guint packets;
    } cases[] = {
        { 0, 1 },
        { 1, 1 },
        { MILTER_CHUNK_SIZE, 1 },
        { MILTER_CHUNK_SIZE + 1, 2 },
        { 3 * MILTER_CHUNK_SIZE, 3 },
        { 140000, 3 },
    };

    for (gsize i = 0; i < G_N_ELEMENTS(cases); i++) {
        g_autofree guint8 *data = g_malloc0(cases[i].len + 1);
        g_autoptr(GByteArray) out = g_byte_array_new();

        milter_encode_body_chunks(out, SMFIR_REPLBODY, data, cases[i].len, MILTER_CHUNK_SIZE);
        ck_assert_uint_eq(count_packets(out, MILTER_CHUNK_SIZE, cases[i].len), cases[i].packets);
    }
}
END_TEST

/* milter_encode_suite - core and chunks */
static Suite *
milter_encode_suite(void)
{
    Suite *s = suite_create("milter_encode");
    TCase *tc;

    tc = tcase_create("core");
    tcase_add_loop_test(tc, test_packet_encodes, 0, (int)n_test_packets);
    tcase_add_test(tc, test_appends);
    suite_add_tcase(s, tc);

    tc = tcase_create("chunks");
    tcase_add_test(tc, test_body_chunks);
    suite_add_tcase(s, tc);
    return s;
}

int
main(void)
{
    SRunner *sr = srunner_create(milter_encode_suite());
    int failed;

    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
