/* SPDX-License-Identifier: MIT */
/*
 * NAME
 *	check_milter_proto - Check suite for the constants and name tables
 * DESCRIPTION
 *	names: every code of both directions has its Sendmail name, codes of
 *	the other direction and unknown bytes have none. flags: action and
 *	protocol masks as text. format: string escaping of the listing.
 */

/* System library. */
#include <stdlib.h>
#include <string.h>

/* Check. */
#include <check.h>

/* Shadow libraries. */
#include "milter_proto.h"

/* test_command_names - all fifteen SMFIC codes, nothing else */
START_TEST(test_command_names)
{
    static const struct {
        guint8 code;
        const char *name;
    } want[] = {
        { 'O', "SMFIC_OPTNEG" }, { 'D', "SMFIC_MACRO" },   { 'C', "SMFIC_CONNECT" },
        { 'H', "SMFIC_HELO" },   { 'M', "SMFIC_MAIL" },    { 'R', "SMFIC_RCPT" },
        { 'T', "SMFIC_DATA" },   { 'L', "SMFIC_HEADER" },  { 'N', "SMFIC_EOH" },
        { 'B', "SMFIC_BODY" },   { 'E', "SMFIC_BODYEOB" }, { 'U', "SMFIC_UNKNOWN" },
        { 'A', "SMFIC_ABORT" },  { 'Q', "SMFIC_QUIT" },    { 'K', "SMFIC_QUIT_NC" },
    };
    guint named = 0;

    for (gsize i = 0; i < G_N_ELEMENTS(want); i++) {
        const char *got = milter_command_name(want[i].code);

        ck_assert_ptr_nonnull(got);
        ck_assert_str_eq(got, want[i].name);
        ck_assert_str_eq(milter_code_name(MILTER_DIR_COMMAND, want[i].code), want[i].name);
    }
    for (int c = 0; c < 256; c++)
        if (milter_command_name((guint8)c))
            named++;
    ck_assert_uint_eq(named, G_N_ELEMENTS(want));
}
END_TEST

/* test_reply_names - all SMFIR codes, the two defined-only ones included */
START_TEST(test_reply_names)
{
    static const struct {
        guint8 code;
        const char *name;
    } want[] = {
        { 'O', "SMFIR_OPTNEG" },      { 'c', "SMFIR_CONTINUE" },  { 'a', "SMFIR_ACCEPT" },
        { 'r', "SMFIR_REJECT" },      { 't', "SMFIR_TEMPFAIL" },  { 'd', "SMFIR_DISCARD" },
        { 'y', "SMFIR_REPLYCODE" },   { 's', "SMFIR_SKIP" },      { 'p', "SMFIR_PROGRESS" },
        { 'h', "SMFIR_ADDHEADER" },   { 'i', "SMFIR_INSHEADER" }, { 'm', "SMFIR_CHGHEADER" },
        { 'b', "SMFIR_REPLBODY" },    { 'e', "SMFIR_CHGFROM" },   { '+', "SMFIR_ADDRCPT" },
        { '2', "SMFIR_ADDRCPT_PAR" }, { '-', "SMFIR_DELRCPT" },   { 'q', "SMFIR_QUARANTINE" },
        { '4', "SMFIR_SHUTDOWN" },    { 'f', "SMFIR_CONN_FAIL" }, { 'l', "SMFIR_SETSYMLIST" },
    };
    guint named = 0;

    for (gsize i = 0; i < G_N_ELEMENTS(want); i++) {
        const char *got = milter_reply_name(want[i].code);

        ck_assert_ptr_nonnull(got);
        ck_assert_str_eq(got, want[i].name);
        ck_assert_str_eq(milter_code_name(MILTER_DIR_REPLY, want[i].code), want[i].name);
    }
    for (int c = 0; c < 256; c++)
        if (milter_reply_name((guint8)c))
            named++;
    ck_assert_uint_eq(named, G_N_ELEMENTS(want));
    ck_assert_ptr_null(milter_reply_name('H'));
    ck_assert_ptr_null(milter_command_name('c'));
}
END_TEST

/* test_stage_names - wire numbering: EOM is 5, EOH is 6 */
START_TEST(test_stage_names)
{
    ck_assert_str_eq(milter_stage_name(SMFIM_CONNECT), "SMFIM_CONNECT");
    ck_assert_str_eq(milter_stage_name(5), "SMFIM_EOM");
    ck_assert_str_eq(milter_stage_name(6), "SMFIM_EOH");
    ck_assert_ptr_null(milter_stage_name(SMFIM_COUNT));
    ck_assert_ptr_null(milter_stage_name(G_MAXUINT32));
}
END_TEST

/* test_flag_strings - masks as names, unknown bits as hex */
START_TEST(test_flag_strings)
{
    static const struct {
        gboolean actions;
        guint32 mask;
        const char *want;
    } cases[] = {
        { TRUE, 0, "0x0" },
        { TRUE, SMFIF_ADDHDRS | SMFIF_CHGHDRS, "ADDHDRS|CHGHDRS" },
        { TRUE, SMFI_CURR_ACTS,
          "ADDHDRS|CHGBODY|ADDRCPT|DELRCPT|CHGHDRS|QUARANTINE|CHGFROM|ADDRCPT_PAR|SETSYMLIST" },
        { TRUE, 0x400 | SMFIF_QUARANTINE, "QUARANTINE|0x400" },
        { FALSE, SMFIP_NOHELO | SMFIP_NR_RCPT | SMFIP_HDR_LEADSPC, "NOHELO|NR_RCPT|HDR_LEADSPC" },
        { FALSE, SMFIP_MDS_1M | 0x40000000, "MDS_1M|0x40000000" },
    };

    for (gsize i = 0; i < G_N_ELEMENTS(cases); i++) {
        g_autofree char *got = cases[i].actions ? milter_actions_to_string(cases[i].mask)
                                                : milter_protocol_to_string(cases[i].mask);

        ck_assert_str_eq(got, cases[i].want);
    }
}
END_TEST

/* test_reply_action - each modification reply and the action it needs */
START_TEST(test_reply_action)
{
    static const struct {
        guint8 code;
        guint32 action;
    } cases[] = {
        { SMFIR_ADDHEADER, SMFIF_ADDHDRS },
        { SMFIR_INSHEADER, SMFIF_ADDHDRS },
        { SMFIR_CHGHEADER, SMFIF_CHGHDRS },
        { SMFIR_REPLBODY, SMFIF_CHGBODY },
        { SMFIR_CHGFROM, SMFIF_CHGFROM },
        { SMFIR_ADDRCPT, SMFIF_ADDRCPT },
        { SMFIR_ADDRCPT_PAR, SMFIF_ADDRCPT_PAR },
        { SMFIR_DELRCPT, SMFIF_DELRCPT },
        { SMFIR_QUARANTINE, SMFIF_QUARANTINE },
        { SMFIR_CONTINUE, 0 },
        { SMFIR_REJECT, 0 },
        { SMFIR_PROGRESS, 0 },
    };

    for (gsize i = 0; i < G_N_ELEMENTS(cases); i++)
        ck_assert_uint_eq(milter_reply_action(cases[i].code), cases[i].action);
}
END_TEST

/* test_format_string - the listing's escapes, and no others */
START_TEST(test_format_string)
{
    static const guint8 in[] = { 'a',  '"',  '\\', '\r', '\n', '\t', 0x00,
                                 0x1f, 0x7f, 0x80, 0xff, ' ',  '~',  '%' };
    g_autoptr(GString) out = g_string_new(NULL);

    milter_format_string(out, in, sizeof(in));
    ck_assert_str_eq(out->str, "\"a\\\"\\\\\\r\\n\\t\\x00\\x1f\\x7f\\x80\\xff ~%\"");
}
END_TEST

/* test_format_unknown_code - a packet with a code outside the tables */
START_TEST(test_format_unknown_code)
{
    MilterPacket pkt = { 0 };
    g_autoptr(GString) out = g_string_new(NULL);

    pkt.code = 0x01;
    milter_packet_format(out, MILTER_DIR_REPLY, &pkt);
    ck_assert_str_eq(out->str, "< 0x01");
}
END_TEST

/* milter_proto_suite - names, flags, format */
static Suite *
milter_proto_suite(void)
{
    Suite *s = suite_create("milter_proto");
    TCase *tc;

    tc = tcase_create("names");
    tcase_add_test(tc, test_command_names);
    tcase_add_test(tc, test_reply_names);
    tcase_add_test(tc, test_stage_names);
    suite_add_tcase(s, tc);

    tc = tcase_create("flags");
    tcase_add_test(tc, test_flag_strings);
    tcase_add_test(tc, test_reply_action);
    suite_add_tcase(s, tc);

    tc = tcase_create("format");
    tcase_add_test(tc, test_format_string);
    tcase_add_test(tc, test_format_unknown_code);
    suite_add_tcase(s, tc);
    return s;
}

int
main(void)
{
    SRunner *sr = srunner_create(milter_proto_suite());
    int failed;

    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
