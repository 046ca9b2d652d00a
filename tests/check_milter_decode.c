/* SPDX-License-Identifier: MIT */
/*
 * NAME
 *	check_milter_decode - Check suite for the incremental decoder
 * DESCRIPTION
 *	core: every well-formed command and reply of testlib's table decodes
 *	to its listing, whole and one byte at a time, and re-encodes to the
 *	same bytes. errors: a table of malformed packets, each with its
 *	error code and exact message, fed whole and byte by byte from
 *	exactly-sized copies (so ASan sees any read past the input). limits:
 *	the length limit, stream state after an error, slicing.
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

/* BadPacket - malformed input and the error it must give */
typedef struct {
    const char *id;
    MilterDirection dir;
    const char *hex;
    gsize max_data; /* 0: the default */
    MilterDecodeError code;
    const char *message;
} BadPacket;

static const BadPacket bad_packets[] = {
    { "zero_length", MILTER_DIR_COMMAND, "00000000", 0, MILTER_DECODE_ERROR_ZERO_LENGTH,
      "packet 1 at byte 0: length 0, need at least 1 for the code" },
    { "zero_length_second", MILTER_DIR_COMMAND, "000000015400000000", 0,
      MILTER_DECODE_ERROR_ZERO_LENGTH,
      "packet 2 at byte 5: length 0, need at least 1 for the code" },
    { "zero_length_reply", MILTER_DIR_REPLY, "00000000", 0, MILTER_DECODE_ERROR_ZERO_LENGTH,
      "packet 1 at byte 0: length 0, need at least 1 for the code" },
    { "too_long", MILTER_DIR_COMMAND, "00010002", 0, MILTER_DECODE_ERROR_TOO_LONG,
      "packet 1 at byte 0: 65537 data bytes, over the limit of 65536" },
    { "too_long_huge", MILTER_DIR_COMMAND, "ffffffff", 0, MILTER_DECODE_ERROR_TOO_LONG,
      "packet 1 at byte 0: 4294967294 data bytes, over the limit of 65536" },
    { "too_long_reply", MILTER_DIR_REPLY, "00010002", 0, MILTER_DECODE_ERROR_TOO_LONG,
      "packet 1 at byte 0: 65537 data bytes, over the limit of 65536" },
    { "too_long_configured", MILTER_DIR_COMMAND, "0000000c", 10, MILTER_DECODE_ERROR_TOO_LONG,
      "packet 1 at byte 0: 11 data bytes, over the limit of 10" },
    { "unknown_command", MILTER_DIR_COMMAND, "0000000178", 0, MILTER_DECODE_ERROR_UNKNOWN_CODE,
      "packet 1 at byte 0: unknown command code 'x' (0x78)" },
    { "unknown_command_ctrl", MILTER_DIR_COMMAND, "0000000101", 0, MILTER_DECODE_ERROR_UNKNOWN_CODE,
      "packet 1 at byte 0: unknown command code 0x01" },
    { "unknown_command_reply_code", MILTER_DIR_COMMAND, "0000000163", 0,
      MILTER_DECODE_ERROR_UNKNOWN_CODE, "packet 1 at byte 0: unknown command code 'c' (0x63)" },
    { "unknown_command_late", MILTER_DIR_COMMAND, "0000000154000000014e000000645a", 0,
      MILTER_DECODE_ERROR_UNKNOWN_CODE, "packet 3 at byte 10: unknown command code 'Z' (0x5a)" },
    { "optneg_short", MILTER_DIR_COMMAND, "000000094f00000006000001ff", 0,
      MILTER_DECODE_ERROR_SHORT, "packet 1 at byte 0: SMFIC_OPTNEG: 8 data bytes, need 12" },
    { "optneg_trailing", MILTER_DIR_COMMAND, "000000104f00000006000001ff001fffff616263", 0,
      MILTER_DECODE_ERROR_TRAILING, "packet 1 at byte 0: SMFIC_OPTNEG: 3 trailing bytes" },
    { "macro_no_cmd", MILTER_DIR_COMMAND, "0000000144", 0, MILTER_DECODE_ERROR_SHORT,
      "packet 1 at byte 0: SMFIC_MACRO: data ends before the command letter" },
    { "macro_no_value", MILTER_DIR_COMMAND, "0000001544436a006d78007b6461656d6f6e5f6e616d657d00", 0,
      MILTER_DECODE_ERROR_BAD_MACROS,
      "packet 1 at byte 0: SMFIC_MACRO: macro \"{daemon_name}\" has no value" },
    { "macro_no_value_escaped", MILTER_DIR_COMMAND, "00000006444361220a00", 0,
      MILTER_DECODE_ERROR_BAD_MACROS,
      "packet 1 at byte 0: SMFIC_MACRO: macro \"a\\\"\\n\" has no value" },
    { "macro_missing_nul", MILTER_DIR_COMMAND, "0000000644436a006d78", 0,
      MILTER_DECODE_ERROR_MISSING_NUL,
      "packet 1 at byte 0: SMFIC_MACRO: macro not terminated by NUL" },
    { "connect_empty", MILTER_DIR_COMMAND, "0000000143", 0, MILTER_DECODE_ERROR_SHORT,
      "packet 1 at byte 0: SMFIC_CONNECT: data ends before hostname" },
    { "connect_hostname_nul", MILTER_DIR_COMMAND, "0000000543686f7374", 0,
      MILTER_DECODE_ERROR_MISSING_NUL,
      "packet 1 at byte 0: SMFIC_CONNECT: hostname not terminated by NUL" },
    { "connect_no_family", MILTER_DIR_COMMAND, "0000000643686f737400", 0, MILTER_DECODE_ERROR_SHORT,
      "packet 1 at byte 0: SMFIC_CONNECT: data ends before the address family" },
    { "connect_family_unknown", MILTER_DIR_COMMAND, "0000001143686f737400580019312e322e332e3400", 0,
      MILTER_DECODE_ERROR_UNKNOWN_FAMILY,
      "packet 1 at byte 0: SMFIC_CONNECT: unknown address family 'X' (0x58)" },
    { "connect_family_nul", MILTER_DIR_COMMAND, "0000000743686f73740000", 0,
      MILTER_DECODE_ERROR_UNKNOWN_FAMILY,
      "packet 1 at byte 0: SMFIC_CONNECT: unknown address family 0x00" },
    { "connect_family_lowercase", MILTER_DIR_COMMAND, "0000000743686f73740075", 0,
      MILTER_DECODE_ERROR_UNKNOWN_FAMILY,
      "packet 1 at byte 0: SMFIC_CONNECT: unknown address family 'u' (0x75)" },
    { "connect_unknown_trailing", MILTER_DIR_COMMAND, "0000000943686f737400550019", 0,
      MILTER_DECODE_ERROR_TRAILING, "packet 1 at byte 0: SMFIC_CONNECT: 2 trailing bytes" },
    { "connect_no_port", MILTER_DIR_COMMAND, "0000000743686f73740034", 0, MILTER_DECODE_ERROR_SHORT,
      "packet 1 at byte 0: SMFIC_CONNECT: 0 bytes left, need 2 for the port" },
    { "connect_half_port", MILTER_DIR_COMMAND, "0000000843686f7374003400", 0,
      MILTER_DECODE_ERROR_SHORT,
      "packet 1 at byte 0: SMFIC_CONNECT: 1 byte left, need 2 for the port" },
    { "connect_no_address", MILTER_DIR_COMMAND, "0000000943686f737400360019", 0,
      MILTER_DECODE_ERROR_SHORT, "packet 1 at byte 0: SMFIC_CONNECT: data ends before address" },
    { "connect_address_nul", MILTER_DIR_COMMAND, "0000001043686f737400340019312e322e332e34", 0,
      MILTER_DECODE_ERROR_MISSING_NUL,
      "packet 1 at byte 0: SMFIC_CONNECT: address not terminated by NUL" },
    { "connect_trailing", MILTER_DIR_COMMAND, "0000001043686f7374004c00002f736f636b0078", 0,
      MILTER_DECODE_ERROR_TRAILING, "packet 1 at byte 0: SMFIC_CONNECT: 1 trailing byte" },
    { "helo_empty", MILTER_DIR_COMMAND, "0000000148", 0, MILTER_DECODE_ERROR_SHORT,
      "packet 1 at byte 0: SMFIC_HELO: data ends before HELO argument" },
    { "helo_missing_nul", MILTER_DIR_COMMAND, "0000000448616263", 0,
      MILTER_DECODE_ERROR_MISSING_NUL,
      "packet 1 at byte 0: SMFIC_HELO: HELO argument not terminated by NUL" },
    { "helo_trailing", MILTER_DIR_COMMAND, "0000000748616263006465", 0,
      MILTER_DECODE_ERROR_TRAILING, "packet 1 at byte 0: SMFIC_HELO: 2 trailing bytes" },
    { "helo_two_strings", MILTER_DIR_COMMAND, "000000054861006200", 0, MILTER_DECODE_ERROR_TRAILING,
      "packet 1 at byte 0: SMFIC_HELO: 2 trailing bytes" },
    { "mail_empty", MILTER_DIR_COMMAND, "000000014d", 0, MILTER_DECODE_ERROR_SHORT,
      "packet 1 at byte 0: SMFIC_MAIL: data ends before address" },
    { "mail_missing_nul", MILTER_DIR_COMMAND, "000000064d3c6140623e", 0,
      MILTER_DECODE_ERROR_MISSING_NUL,
      "packet 1 at byte 0: SMFIC_MAIL: address not terminated by NUL" },
    { "mail_arg_missing_nul", MILTER_DIR_COMMAND, "0000000d4d3c6140623e0053495a453d31", 0,
      MILTER_DECODE_ERROR_MISSING_NUL,
      "packet 1 at byte 0: SMFIC_MAIL: ESMTP argument not terminated by NUL" },
    { "rcpt_empty", MILTER_DIR_COMMAND, "0000000152", 0, MILTER_DECODE_ERROR_SHORT,
      "packet 1 at byte 0: SMFIC_RCPT: data ends before address" },
    { "rcpt_missing_nul", MILTER_DIR_COMMAND, "00000006523c6240633e", 0,
      MILTER_DECODE_ERROR_MISSING_NUL,
      "packet 1 at byte 0: SMFIC_RCPT: address not terminated by NUL" },
    { "header_name_only", MILTER_DIR_COMMAND, "000000094c5375626a65637400", 0,
      MILTER_DECODE_ERROR_SHORT,
      "packet 1 at byte 0: SMFIC_HEADER: data ends before header value" },
    { "header_name_nul", MILTER_DIR_COMMAND, "000000084c5375626a656374", 0,
      MILTER_DECODE_ERROR_MISSING_NUL,
      "packet 1 at byte 0: SMFIC_HEADER: header name not terminated by NUL" },
    { "header_value_nul", MILTER_DIR_COMMAND, "0000000b4c5375626a656374006869", 0,
      MILTER_DECODE_ERROR_MISSING_NUL,
      "packet 1 at byte 0: SMFIC_HEADER: header value not terminated by NUL" },
    { "header_three_strings", MILTER_DIR_COMMAND, "000000074c610062006300", 0,
      MILTER_DECODE_ERROR_TRAILING, "packet 1 at byte 0: SMFIC_HEADER: 2 trailing bytes" },
    { "data_trailing", MILTER_DIR_COMMAND, "000000025478", 0, MILTER_DECODE_ERROR_TRAILING,
      "packet 1 at byte 0: SMFIC_DATA: 1 trailing byte" },
    { "eoh_trailing", MILTER_DIR_COMMAND, "000000024e00", 0, MILTER_DECODE_ERROR_TRAILING,
      "packet 1 at byte 0: SMFIC_EOH: 1 trailing byte" },
    { "abort_trailing", MILTER_DIR_COMMAND, "00000003416162", 0, MILTER_DECODE_ERROR_TRAILING,
      "packet 1 at byte 0: SMFIC_ABORT: 2 trailing bytes" },
    { "quit_trailing", MILTER_DIR_COMMAND, "0000000451000000", 0, MILTER_DECODE_ERROR_TRAILING,
      "packet 1 at byte 0: SMFIC_QUIT: 3 trailing bytes" },
    { "quit_nc_trailing", MILTER_DIR_COMMAND, "000000024b6b", 0, MILTER_DECODE_ERROR_TRAILING,
      "packet 1 at byte 0: SMFIC_QUIT_NC: 1 trailing byte" },
    { "unknown_missing_nul", MILTER_DIR_COMMAND, "0000000455464f4f", 0,
      MILTER_DECODE_ERROR_MISSING_NUL,
      "packet 1 at byte 0: SMFIC_UNKNOWN: command line not terminated by NUL" },
    { "unknown_trailing", MILTER_DIR_COMMAND, "0000000955464f4f0042415200", 0,
      MILTER_DECODE_ERROR_TRAILING, "packet 1 at byte 0: SMFIC_UNKNOWN: 4 trailing bytes" },
    { "reply_unknown", MILTER_DIR_REPLY, "000000017a", 0, MILTER_DECODE_ERROR_UNKNOWN_CODE,
      "packet 1 at byte 0: unknown reply code 'z' (0x7a)" },
    { "reply_command_code", MILTER_DIR_REPLY, "00000003487800", 0, MILTER_DECODE_ERROR_UNKNOWN_CODE,
      "packet 1 at byte 0: unknown reply code 'H' (0x48)" },
    { "reply_high_byte", MILTER_DIR_REPLY, "00000001ff", 0, MILTER_DECODE_ERROR_UNKNOWN_CODE,
      "packet 1 at byte 0: unknown reply code 0xff" },
    { "reply_conn_fail", MILTER_DIR_REPLY, "0000000166", 0, MILTER_DECODE_ERROR_UNKNOWN_CODE,
      "packet 1 at byte 0: unsupported reply code 'f' (0x66), SMFIR_CONN_FAIL" },
    { "reply_setsymlist", MILTER_DIR_REPLY, "000000016c", 0, MILTER_DECODE_ERROR_UNKNOWN_CODE,
      "packet 1 at byte 0: unsupported reply code 'l' (0x6c), SMFIR_SETSYMLIST" },
    { "optneg_reply_short", MILTER_DIR_REPLY, "0000000c4f0000000600000001000000", 0,
      MILTER_DECODE_ERROR_SHORT, "packet 1 at byte 0: SMFIR_OPTNEG: 11 data bytes, need 12" },
    { "optneg_reply_stage_short", MILTER_DIR_REPLY, "0000000f4f0000000600000001000000000000", 0,
      MILTER_DECODE_ERROR_SHORT,
      "packet 1 at byte 0: SMFIR_OPTNEG: 2 bytes left, need 4 for a macro stage" },
    { "optneg_reply_no_list", MILTER_DIR_REPLY, "000000114f00000006000000010000000000000002", 0,
      MILTER_DECODE_ERROR_SHORT, "packet 1 at byte 0: SMFIR_OPTNEG: data ends before macro list" },
    { "optneg_reply_list_nul", MILTER_DIR_REPLY,
      "0000001c4f000000060000000100000000000000027b6d61696c5f616464727d", 0,
      MILTER_DECODE_ERROR_MISSING_NUL,
      "packet 1 at byte 0: SMFIR_OPTNEG: macro list not terminated by NUL" },
    { "continue_trailing", MILTER_DIR_REPLY, "000000026300", 0, MILTER_DECODE_ERROR_TRAILING,
      "packet 1 at byte 0: SMFIR_CONTINUE: 1 trailing byte" },
    { "accept_trailing", MILTER_DIR_REPLY, "00000003617879", 0, MILTER_DECODE_ERROR_TRAILING,
      "packet 1 at byte 0: SMFIR_ACCEPT: 2 trailing bytes" },
    { "reject_trailing", MILTER_DIR_REPLY, "0000000472353530", 0, MILTER_DECODE_ERROR_TRAILING,
      "packet 1 at byte 0: SMFIR_REJECT: 3 trailing bytes" },
    { "tempfail_trailing", MILTER_DIR_REPLY, "000000027434", 0, MILTER_DECODE_ERROR_TRAILING,
      "packet 1 at byte 0: SMFIR_TEMPFAIL: 1 trailing byte" },
    { "discard_trailing", MILTER_DIR_REPLY, "000000026434", 0, MILTER_DECODE_ERROR_TRAILING,
      "packet 1 at byte 0: SMFIR_DISCARD: 1 trailing byte" },
    { "skip_trailing", MILTER_DIR_REPLY, "000000027334", 0, MILTER_DECODE_ERROR_TRAILING,
      "packet 1 at byte 0: SMFIR_SKIP: 1 trailing byte" },
    { "progress_trailing", MILTER_DIR_REPLY, "000000027034", 0, MILTER_DECODE_ERROR_TRAILING,
      "packet 1 at byte 0: SMFIR_PROGRESS: 1 trailing byte" },
    { "shutdown_trailing", MILTER_DIR_REPLY, "000000023434", 0, MILTER_DECODE_ERROR_TRAILING,
      "packet 1 at byte 0: SMFIR_SHUTDOWN: 1 trailing byte" },
    { "replycode_empty", MILTER_DIR_REPLY, "0000000179", 0, MILTER_DECODE_ERROR_SHORT,
      "packet 1 at byte 0: SMFIR_REPLYCODE: data ends before reply text" },
    { "replycode_missing_nul", MILTER_DIR_REPLY, "0000000d7935353020352e372e31206e6f", 0,
      MILTER_DECODE_ERROR_MISSING_NUL,
      "packet 1 at byte 0: SMFIR_REPLYCODE: reply text not terminated by NUL" },
    { "replycode_trailing", MILTER_DIR_REPLY, "0000000f7935353020352e372e31206e6f0078", 0,
      MILTER_DECODE_ERROR_TRAILING, "packet 1 at byte 0: SMFIR_REPLYCODE: 1 trailing byte" },
    { "addheader_no_value", MILTER_DIR_REPLY, "0000000568582d4100", 0, MILTER_DECODE_ERROR_SHORT,
      "packet 1 at byte 0: SMFIR_ADDHEADER: data ends before header value" },
    { "addheader_value_nul", MILTER_DIR_REPLY, "0000000668582d410076", 0,
      MILTER_DECODE_ERROR_MISSING_NUL,
      "packet 1 at byte 0: SMFIR_ADDHEADER: header value not terminated by NUL" },
    { "insheader_short_index", MILTER_DIR_REPLY, "0000000469000000", 0, MILTER_DECODE_ERROR_SHORT,
      "packet 1 at byte 0: SMFIR_INSHEADER: 3 bytes left, need 4 for the header index" },
    { "insheader_no_name", MILTER_DIR_REPLY, "000000056900000000", 0, MILTER_DECODE_ERROR_SHORT,
      "packet 1 at byte 0: SMFIR_INSHEADER: data ends before header name" },
    { "chgheader_value_nul", MILTER_DIR_REPLY, "0000000e6d000000015375626a6563740078", 0,
      MILTER_DECODE_ERROR_MISSING_NUL,
      "packet 1 at byte 0: SMFIR_CHGHEADER: header value not terminated by NUL" },
    { "chgheader_trailing", MILTER_DIR_REPLY, "000000116d000000015375626a6563740078007900", 0,
      MILTER_DECODE_ERROR_TRAILING, "packet 1 at byte 0: SMFIR_CHGHEADER: 2 trailing bytes" },
    { "chgfrom_empty", MILTER_DIR_REPLY, "0000000165", 0, MILTER_DECODE_ERROR_SHORT,
      "packet 1 at byte 0: SMFIR_CHGFROM: data ends before address" },
    { "chgfrom_args_nul", MILTER_DIR_REPLY, "0000000d653c6140623e0053495a453d31", 0,
      MILTER_DECODE_ERROR_MISSING_NUL,
      "packet 1 at byte 0: SMFIR_CHGFROM: ESMTP arguments not terminated by NUL" },
    { "chgfrom_three", MILTER_DIR_REPLY, "00000010653c6140623e0053495a453d31007800", 0,
      MILTER_DECODE_ERROR_TRAILING, "packet 1 at byte 0: SMFIR_CHGFROM: 2 trailing bytes" },
    { "addrcpt_missing_nul", MILTER_DIR_REPLY, "000000062b3c6340643e", 0,
      MILTER_DECODE_ERROR_MISSING_NUL,
      "packet 1 at byte 0: SMFIR_ADDRCPT: address not terminated by NUL" },
    { "addrcpt_trailing", MILTER_DIR_REPLY, "000000092b3c6340643e007800", 0,
      MILTER_DECODE_ERROR_TRAILING, "packet 1 at byte 0: SMFIR_ADDRCPT: 2 trailing bytes" },
    { "addrcpt_par_empty", MILTER_DIR_REPLY, "0000000132", 0, MILTER_DECODE_ERROR_SHORT,
      "packet 1 at byte 0: SMFIR_ADDRCPT_PAR: data ends before address" },
    { "addrcpt_par_three", MILTER_DIR_REPLY, "0000000d323c6340643e004e3d31007800", 0,
      MILTER_DECODE_ERROR_TRAILING, "packet 1 at byte 0: SMFIR_ADDRCPT_PAR: 2 trailing bytes" },
    { "delrcpt_empty", MILTER_DIR_REPLY, "000000012d", 0, MILTER_DECODE_ERROR_SHORT,
      "packet 1 at byte 0: SMFIR_DELRCPT: data ends before address" },
    { "delrcpt_trailing", MILTER_DIR_REPLY, "000000082d3c6340643e0000", 0,
      MILTER_DECODE_ERROR_TRAILING, "packet 1 at byte 0: SMFIR_DELRCPT: 1 trailing byte" },
    { "quarantine_missing_nul", MILTER_DIR_REPLY, "0000000471776879", 0,
      MILTER_DECODE_ERROR_MISSING_NUL,
      "packet 1 at byte 0: SMFIR_QUARANTINE: reason not terminated by NUL" },
    { "quarantine_empty", MILTER_DIR_REPLY, "0000000171", 0, MILTER_DECODE_ERROR_SHORT,
      "packet 1 at byte 0: SMFIR_QUARANTINE: data ends before reason" },
};

/* FeedResult - what feeding a whole input produced */
typedef struct {
    guint packets;  /* complete packets before the error */
    GError *error;  /* the error, or NULL */
    gsize consumed; /* bytes consumed in all */
} FeedResult;

/*
 * feed_exact - feed input in slices, each slice in its own exactly-sized copy
 *
 * Stops at the first error. slice 0 feeds the whole input in one copy.
 */
static FeedResult
feed_exact(MilterDecoder *d, const guint8 *buf, gsize len, gsize slice)
{
    FeedResult r = { 0, NULL, 0 };
    gsize off = 0;

    while (off < len) {
        gsize n = slice ? MIN(slice, len - off) : len - off;
        guint8 *copy = g_memdup2(buf + off, n);
        gsize pos = 0;

        while (pos < n) {
            MilterPacket pkt;
            gsize used;
            MilterDecodeStatus st =
                milter_decoder_feed(d, copy + pos, n - pos, &used, &pkt, &r.error);

            ck_assert_uint_le(used, n - pos);
            pos += used;
            r.consumed += used;
            if (st == MILTER_DECODE_FAILED) {
                ck_assert_ptr_nonnull(r.error);
                g_free(copy);
                return r;
            }
            ck_assert_ptr_null(r.error);
            if (st == MILTER_DECODE_PACKET)
                r.packets++;
            else
                ck_assert_uint_eq(pos, n);
        }
        g_free(copy);
        off += n;
    }
    return r;
}

/* test_packet_decodes - one table packet: listing, frame, re-encoding */
START_TEST(test_packet_decodes)
{
    const TestPacket *tp = &test_packets[_i];
    g_autoptr(GByteArray) in = test_hex(tp->hex);
    static const gsize slices[] = { 0, 1, 2, 3, 5, 7 };

    for (gsize s = 0; s < G_N_ELEMENTS(slices); s++) {
        g_autoptr(GError) error = NULL;
        g_autoptr(GPtrArray) lines =
            test_decode_listing(tp->dir, in->data, in->len, slices[s], &error);

        ck_assert_msg(lines != NULL, "%s (slice %zu): %s", tp->id, slices[s],
                      error ? error->message : "?");
        ck_assert_uint_eq(lines->len, 1);
        ck_assert_msg(strcmp(lines->pdata[0], tp->listing) == 0,
                      "%s (slice %zu):\n got %s\nwant %s", tp->id, slices[s],
                      (char *)lines->pdata[0], tp->listing);
    }

    /* Decode once more, keep the packet, and write it back. */
    {
        g_autoptr(MilterDecoder) d = milter_decoder_new(tp->dir, 0);
        g_autoptr(GByteArray) out = g_byte_array_new();
        g_autoptr(GError) error = NULL;
        MilterPacket pkt;
        gsize used, frame_len;
        const guint8 *frame;

        ck_assert_int_eq(milter_decoder_feed(d, in->data, in->len, &used, &pkt, &error),
                         MILTER_DECODE_PACKET);
        ck_assert_uint_eq(used, in->len);
        frame = milter_decoder_frame(d, &frame_len);
        ck_assert_uint_eq(frame_len, in->len);
        ck_assert_mem_eq(frame, in->data, in->len);
        ck_assert_ptr_null(pkt.argv[pkt.argc]);
        milter_encode_packet(out, tp->dir, &pkt);
        ck_assert_msg(out->len == in->len && memcmp(out->data, in->data, in->len) == 0,
                      "%s re-encoded:\n got %s\nwant %s", tp->id, test_hexdump(out->data, out->len),
                      tp->hex);
        ck_assert(milter_decoder_idle(d));
        ck_assert_uint_eq(milter_decoder_offset(d), in->len);
    }
}
END_TEST

/* test_bad_packet - one malformed input, whole and byte by byte */
START_TEST(test_bad_packet)
{
    const BadPacket *bp = &bad_packets[_i];
    g_autoptr(GByteArray) in = test_hex(bp->hex);
    static const gsize slices[] = { 0, 1, 3 };

    gsize consumed = 0;

    for (gsize s = 0; s < G_N_ELEMENTS(slices); s++) {
        g_autoptr(MilterDecoder) d = milter_decoder_new(bp->dir, bp->max_data);
        FeedResult r = feed_exact(d, in->data, in->len, slices[s]);
        g_autoptr(GError) error = r.error;

        ck_assert_msg(error != NULL, "%s (slice %zu): no error", bp->id, slices[s]);
        ck_assert_msg(g_error_matches(error, MILTER_DECODE_ERROR, bp->code),
                      "%s (slice %zu): got code %d, want %d (%s)", bp->id, slices[s], error->code,
                      bp->code, error->message);
        ck_assert_msg(strcmp(error->message, bp->message) == 0, "%s (slice %zu):\n got %s\nwant %s",
                      bp->id, slices[s], error->message, bp->message);
        /* The error comes at the same byte however the input is sliced. */
        if (s == 0)
            consumed = r.consumed;
        ck_assert_uint_eq(r.consumed, consumed);
        ck_assert_uint_le(r.consumed, in->len);
    }
}
END_TEST

/* test_length_checked_first - an oversized length fails before any data */
START_TEST(test_length_checked_first)
{
    static const guint8 huge[] = { 0xff, 0xff, 0xff, 0xfe };
    g_autoptr(MilterDecoder) d = milter_decoder_new(MILTER_DIR_COMMAND, 0);
    g_autoptr(GError) error = NULL;
    MilterPacket pkt;
    gsize used;

    /* Three bytes: nothing to say yet. */
    ck_assert_int_eq(milter_decoder_feed(d, huge, 3, &used, &pkt, &error), MILTER_DECODE_NEED_MORE);
    ck_assert_uint_eq(used, 3);
    ck_assert(!milter_decoder_idle(d));
    /* The fourth byte completes the length word: refused at once. */
    ck_assert_int_eq(milter_decoder_feed(d, huge + 3, 1, &used, &pkt, &error),
                     MILTER_DECODE_FAILED);
    ck_assert_int_eq(error->code, MILTER_DECODE_ERROR_TOO_LONG);
}
END_TEST

/* test_code_checked_first - an unknown code fails before its data arrives */
START_TEST(test_code_checked_first)
{
    static const guint8 head[] = { 0x00, 0x00, 0x10, 0x00, 'Z' };
    g_autoptr(MilterDecoder) d = milter_decoder_new(MILTER_DIR_REPLY, 0);
    g_autoptr(GError) error = NULL;
    MilterPacket pkt;
    gsize used;

    ck_assert_int_eq(milter_decoder_feed(d, head, sizeof(head), &used, &pkt, &error),
                     MILTER_DECODE_FAILED);
    ck_assert_int_eq(error->code, MILTER_DECODE_ERROR_UNKNOWN_CODE);
}
END_TEST

/* body_packet - a BODY packet with n data bytes (caller frees) */
static GByteArray *
body_packet(gsize n)
{
    g_autofree guint8 *data = g_malloc(n ? n : 1);
    GByteArray *out = g_byte_array_new();

    memset(data, 'b', n);
    milter_encode_body(out, SMFIC_BODY, data, n);
    return out;
}

/* test_limit_boundary - the default limit admits 65536 data bytes, not 65537 */
START_TEST(test_limit_boundary)
{
    g_autoptr(GByteArray) chunk = body_packet(MILTER_CHUNK_SIZE);
    g_autoptr(GByteArray) at = body_packet(MILTER_DATA_MAX_DEFAULT);
    g_autoptr(GByteArray) over = body_packet(MILTER_DATA_MAX_DEFAULT + 1);
    const GByteArray *ok[] = { chunk, at };

    for (gsize i = 0; i < G_N_ELEMENTS(ok); i++) {
        g_autoptr(MilterDecoder) d = milter_decoder_new(MILTER_DIR_COMMAND, 0);
        FeedResult r = feed_exact(d, ok[i]->data, ok[i]->len, 1000);

        ck_assert_ptr_null(r.error);
        ck_assert_uint_eq(r.packets, 1);
    }
    {
        g_autoptr(MilterDecoder) d = milter_decoder_new(MILTER_DIR_COMMAND, 0);
        FeedResult r = feed_exact(d, over->data, over->len, 0);
        g_autoptr(GError) error = r.error;

        ck_assert(g_error_matches(error, MILTER_DECODE_ERROR, MILTER_DECODE_ERROR_TOO_LONG));
        ck_assert_str_eq(error->message,
                         "packet 1 at byte 0: 65537 data bytes, over the limit of 65536");
        /* Only the length word was taken. */
        ck_assert_uint_eq(r.consumed, MILTER_LEN_SIZE);
    }
    {
        /* A larger configured limit admits what the default refuses. */
        g_autoptr(MilterDecoder) d = milter_decoder_new(MILTER_DIR_COMMAND, 1 << 20);
        FeedResult r = feed_exact(d, over->data, over->len, 4096);

        ck_assert_ptr_null(r.error);
        ck_assert_uint_eq(r.packets, 1);
    }
}
END_TEST

/* test_dead_after_error - a failed stream stays failed */
START_TEST(test_dead_after_error)
{
    static const guint8 bad[] = { 0, 0, 0, 0 };
    static const guint8 good[] = { 0, 0, 0, 1, 'T' };
    g_autoptr(MilterDecoder) d = milter_decoder_new(MILTER_DIR_COMMAND, 0);
    g_autoptr(GError) first = NULL;
    g_autoptr(GError) second = NULL;
    MilterPacket pkt;
    gsize used;

    ck_assert_int_eq(milter_decoder_feed(d, bad, sizeof(bad), &used, &pkt, &first),
                     MILTER_DECODE_FAILED);
    ck_assert_int_eq(milter_decoder_feed(d, good, sizeof(good), &used, &pkt, &second),
                     MILTER_DECODE_FAILED);
    ck_assert_uint_eq(used, 0);
    ck_assert(g_error_matches(second, MILTER_DECODE_ERROR, MILTER_DECODE_ERROR_DEAD));
    ck_assert_str_eq(second->message, "packet 1 at byte 0: stream already failed");
}
END_TEST

/* all_packets - every table packet of one direction, concatenated */
static GByteArray *
all_packets(MilterDirection dir, GPtrArray *want)
{
    GByteArray *out = g_byte_array_new();

    for (gsize i = 0; i < n_test_packets; i++) {
        g_autoptr(GByteArray) one = NULL;

        if (test_packets[i].dir != dir)
            continue;
        one = test_hex(test_packets[i].hex);
        g_byte_array_append(out, one->data, one->len);
        g_ptr_array_add(want, (gpointer)test_packets[i].listing);
    }
    return out;
}

/* test_stream_slicing - a whole stream in random slices gives the same listing */
START_TEST(test_stream_slicing)
{
    static const MilterDirection dirs[] = { MILTER_DIR_COMMAND, MILTER_DIR_REPLY };
    g_autoptr(GRand) rand = g_rand_new_with_seed(20261203);

    for (gsize k = 0; k < G_N_ELEMENTS(dirs); k++) {
        g_autoptr(GPtrArray) want = g_ptr_array_new();
        g_autoptr(GByteArray) stream = all_packets(dirs[k], want);

        /* 200 runs with random slice sizes, each run bounded by the stream length. */
        for (int run = 0; run < 200; run++) {
            g_autoptr(MilterDecoder) d = milter_decoder_new(dirs[k], 0);
            g_autoptr(GError) error = NULL;
            gsize off = 0;
            guint got = 0;

            while (off < stream->len) {
                gsize want_n = (gsize)g_rand_int_range(rand, 1, 64); /* not inside MIN() */
                gsize n = MIN(want_n, stream->len - off);

                while (n > 0) {
                    MilterPacket pkt;
                    gsize used;
                    MilterDecodeStatus st =
                        milter_decoder_feed(d, stream->data + off, n, &used, &pkt, &error);

                    ck_assert_msg(st != MILTER_DECODE_FAILED, "run %d at %zu: %s", run, off,
                                  error ? error->message : "");
                    off += used;
                    n -= used;
                    if (st == MILTER_DECODE_PACKET) {
                        g_autoptr(GString) line = g_string_new(NULL);

                        milter_packet_format(line, dirs[k], &pkt);
                        ck_assert_uint_lt(got, want->len);
                        ck_assert_str_eq(line->str, want->pdata[got]);
                        got++;
                    }
                }
            }
            ck_assert_uint_eq(got, want->len);
            ck_assert(milter_decoder_idle(d));
            ck_assert_uint_eq(milter_decoder_offset(d), stream->len);
        }
    }
}
END_TEST

/* test_truncated_stream - a stream cut inside a packet is not idle */
START_TEST(test_truncated_stream)
{
    g_autoptr(GByteArray) in = test_hex(test_packets[0].hex);
    g_autoptr(GError) error = NULL;
    g_autoptr(GPtrArray) lines =
        test_decode_listing(test_packets[0].dir, in->data, in->len - 1, 1, &error);

    ck_assert_ptr_null(lines);
    ck_assert_ptr_nonnull(error);
}
END_TEST

/* milter_decode_suite - core, errors, limits */
static Suite *
milter_decode_suite(void)
{
    Suite *s = suite_create("milter_decode");
    TCase *tc;

    tc = tcase_create("core");
    tcase_add_loop_test(tc, test_packet_decodes, 0, (int)n_test_packets);
    tcase_add_test(tc, test_stream_slicing);
    tcase_add_test(tc, test_truncated_stream);
    suite_add_tcase(s, tc);

    tc = tcase_create("errors");
    tcase_add_loop_test(tc, test_bad_packet, 0, (int)G_N_ELEMENTS(bad_packets));
    suite_add_tcase(s, tc);

    tc = tcase_create("limits");
    tcase_add_test(tc, test_length_checked_first);
    tcase_add_test(tc, test_code_checked_first);
    tcase_add_test(tc, test_limit_boundary);
    tcase_add_test(tc, test_dead_after_error);
    suite_add_tcase(s, tc);
    return s;
}

int
main(void)
{
    SRunner *sr = srunner_create(milter_decode_suite());
    int failed;

    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
