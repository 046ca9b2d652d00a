/* SPDX-License-Identifier: MIT */
/*
 * NAME
 *	testlib - helpers shared by the Check suites
 * DESCRIPTION
 *	test_packets[] was written from the protocol notes (milter-protocol.md
 *	sections 2-4), not from the encoder: each row is the exact wire form
 *	of one command or reply and its expected listing.
 */

/* System library. */
#include <string.h>

/* Application-specific. */
#include "testlib.h"

const TestPacket test_packets[] = {
    { "optneg", MILTER_DIR_COMMAND, "0000000d4f00000006000001ff001fffff",
      "> SMFIC_OPTNEG version=6 actions=0x1ff protocol=0x1fffff" },
    { "macro", MILTER_DIR_COMMAND,
      "0000003d44436a006d782e6578616d706c652e636f6d007b6461656d6f6e5f6e616d657d00736d747064005f0075"
      "6e6b"
      "6e6f776e205b3132372e302e302e315d00",
      "> SMFIC_MACRO cmd=C \"j\" \"mx.example.com\" \"{daemon_name}\" \"smtpd\" \"_\" \"unknown "
      "[127.0.0.1]\"" },
    { "macro_none", MILTER_DIR_COMMAND, "00000002444c", "> SMFIC_MACRO cmd=L" },
    { "macro_empty_value", MILTER_DIR_COMMAND, "0000000f444d7b6d61696c5f616464727d0000",
      "> SMFIC_MACRO cmd=M \"{mail_addr}\" \"\"" },
    { "connect_inet", MILTER_DIR_COMMAND,
      "0000002143636c69656e742e6578616d706c652e6f7267003430393139322e302e322e3100",
      "> SMFIC_CONNECT \"client.example.org\" family=4 port=12345 \"192.0.2.1\"" },
    { "connect_inet6", MILTER_DIR_COMMAND,
      "0000001e435b323030313a6462383a3a315d00360019323030313a6462383a3a3100",
      "> SMFIC_CONNECT \"[2001:db8::1]\" family=6 port=25 \"2001:db8::1\"" },
    { "connect_unix", MILTER_DIR_COMMAND,
      "0000001d436c6f63616c686f7374004c00002f72756e2f736d74702e736f636b00",
      "> SMFIC_CONNECT \"localhost\" family=L port=0 \"/run/smtp.sock\"" },
    { "connect_unknown", MILTER_DIR_COMMAND, "0000000c436c6f63616c686f73740055",
      "> SMFIC_CONNECT \"localhost\" family=U" },
    { "helo", MILTER_DIR_COMMAND, "0000001448636c69656e742e6578616d706c652e6f726700",
      "> SMFIC_HELO \"client.example.org\"" },
    { "mail", MILTER_DIR_COMMAND,
      "0000002d4d3c616c696365406578616d706c652e636f6d3e0053495a453d3130323400424f44593d384249544d49"
      "4d45"
      "00",
      "> SMFIC_MAIL \"<alice@example.com>\" \"SIZE=1024\" \"BODY=8BITMIME\"" },
    { "mail_null", MILTER_DIR_COMMAND, "000000044d3c3e00", "> SMFIC_MAIL \"<>\"" },
    { "rcpt", MILTER_DIR_COMMAND, "00000013523c626f62406578616d706c652e6e65743e00",
      "> SMFIC_RCPT \"<bob@example.net>\"" },
    { "data", MILTER_DIR_COMMAND, "0000000154", "> SMFIC_DATA" },
    { "header", MILTER_DIR_COMMAND,
      "000000214c5375626a6563740068656c6c6f0a09776f726c64202271756f74656422205c00",
      "> SMFIC_HEADER \"Subject\" \"hello\\n\\tworld \\\"quoted\\\" \\\\\"" },
    { "header_8bit", MILTER_DIR_COMMAND, "000000104c582d3862697400636166c3a9017f00",
      "> SMFIC_HEADER \"X-8bit\" \"caf\\xc3\\xa9\\x01\\x7f\"" },
    { "eoh", MILTER_DIR_COMMAND, "000000014e", "> SMFIC_EOH" },
    { "body", MILTER_DIR_COMMAND, "00000015426c696e65206f6e650d0a6c696e652074776f0d0a",
      "> SMFIC_BODY data=\"line one\\r\\nline two\\r\\n\"" },
    { "body_nul", MILTER_DIR_COMMAND, "0000000442610062", "> SMFIC_BODY data=\"a\\x00b\"" },
    { "body_empty", MILTER_DIR_COMMAND, "0000000142", "> SMFIC_BODY data=\"\"" },
    { "body_long", MILTER_DIR_COMMAND,
      "0000012d427878787878787878787878787878787878787878787878787878787878787878787878787878787878"
      "7878"
      "78787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878"
      "7878"
      "78787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878"
      "7878"
      "78787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878"
      "7878"
      "78787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878"
      "7878"
      "78787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878"
      "7878"
      "7878787878787878787878787878787878",
      "> SMFIC_BODY len=300 "
      "sha256=0d4e2ca9e9cbced7a7a5380eb29e1a3783b9b6d0db72de36a1051038e1c1fbc7" },
    { "eob", MILTER_DIR_COMMAND, "0000000145", "> SMFIC_BODYEOB" },
    { "eob_data", MILTER_DIR_COMMAND, "000000084566696e616c0d0a",
      "> SMFIC_BODYEOB data=\"final\\r\\n\"" },
    { "unknown", MILTER_DIR_COMMAND, "0000000955464f4f2062617200", "> SMFIC_UNKNOWN \"FOO bar\"" },
    { "abort", MILTER_DIR_COMMAND, "0000000141", "> SMFIC_ABORT" },
    { "quit", MILTER_DIR_COMMAND, "0000000151", "> SMFIC_QUIT" },
    { "quit_nc", MILTER_DIR_COMMAND, "000000014b", "> SMFIC_QUIT_NC" },
    { "optneg_reply", MILTER_DIR_REPLY,
      "000000334f000000060000003f00100000000000006a207b6461656d6f6e5f6e616d657d00000000027b6d61696c"
      "5f61"
      "6464727d2c6900",
      "< SMFIR_OPTNEG version=6 actions=0x3f protocol=0x100000 stage=0 \"j {daemon_name}\" stage=2 "
      "\"{mail_addr},i\"" },
    { "optneg_reply_plain", MILTER_DIR_REPLY, "0000000d4f00000002000000010000007f",
      "< SMFIR_OPTNEG version=2 actions=0x1 protocol=0x7f" },
    { "continue", MILTER_DIR_REPLY, "0000000163", "< SMFIR_CONTINUE" },
    { "accept", MILTER_DIR_REPLY, "0000000161", "< SMFIR_ACCEPT" },
    { "reject", MILTER_DIR_REPLY, "0000000172", "< SMFIR_REJECT" },
    { "tempfail", MILTER_DIR_REPLY, "0000000174", "< SMFIR_TEMPFAIL" },
    { "discard", MILTER_DIR_REPLY, "0000000164", "< SMFIR_DISCARD" },
    { "skip", MILTER_DIR_REPLY, "0000000173", "< SMFIR_SKIP" },
    { "progress", MILTER_DIR_REPLY, "0000000170", "< SMFIR_PROGRESS" },
    { "shutdown", MILTER_DIR_REPLY, "0000000134", "< SMFIR_SHUTDOWN" },
    { "replycode", MILTER_DIR_REPLY,
      "0000001e7935353020352e372e312052656a656374656420627920706f6c69637900",
      "< SMFIR_REPLYCODE \"550 5.7.1 Rejected by policy\"" },
    { "replycode_multi", MILTER_DIR_REPLY,
      "00000023793535302d352e372e312066697273740d0a35353020352e372e31207365636f6e6400",
      "< SMFIR_REPLYCODE \"550-5.7.1 first\\r\\n550 5.7.1 second\"" },
    { "addheader", MILTER_DIR_REPLY, "0000000e68582d536861646f770079657300",
      "< SMFIR_ADDHEADER \"X-Shadow\" \"yes\"" },
    { "insheader", MILTER_DIR_REPLY, "000000116900000000582d466972737400746f7000",
      "< SMFIR_INSHEADER index=0 \"X-First\" \"top\"" },
    { "chgheader", MILTER_DIR_REPLY, "0000001a6d000000015375626a656374005b5350414d5d2068656c6c6f00",
      "< SMFIR_CHGHEADER index=1 \"Subject\" \"[SPAM] hello\"" },
    { "chgheader_delete", MILTER_DIR_REPLY, "0000000c6d00000002582d4f6c640000",
      "< SMFIR_CHGHEADER index=2 \"X-Old\" \"\"" },
    { "replbody", MILTER_DIR_REPLY, "0000000b626e657720626f64790d0a",
      "< SMFIR_REPLBODY data=\"new body\\r\\n\"" },
    { "replbody_empty", MILTER_DIR_REPLY, "0000000162", "< SMFIR_REPLBODY data=\"\"" },
    { "chgfrom", MILTER_DIR_REPLY, "00000016653c626f756e6365406578616d706c652e636f6d3e00",
      "< SMFIR_CHGFROM \"<bounce@example.com>\"" },
    { "chgfrom_args", MILTER_DIR_REPLY,
      "0000001f653c626f756e6365406578616d706c652e636f6d3e0053495a453d31303000",
      "< SMFIR_CHGFROM \"<bounce@example.com>\" \"SIZE=100\"" },
    { "addrcpt", MILTER_DIR_REPLY, "000000152b3c6361726f6c406578616d706c652e6f72673e00",
      "< SMFIR_ADDRCPT \"<carol@example.org>\"" },
    { "addrcpt_par", MILTER_DIR_REPLY,
      "00000021323c64617665406578616d706c652e6f72673e004e4f544946593d4e4556455200",
      "< SMFIR_ADDRCPT_PAR \"<dave@example.org>\" \"NOTIFY=NEVER\"" },
    { "addrcpt_par_plain", MILTER_DIR_REPLY, "00000014323c64617665406578616d706c652e6f72673e00",
      "< SMFIR_ADDRCPT_PAR \"<dave@example.org>\"" },
    { "delrcpt", MILTER_DIR_REPLY, "000000132d3c626f62406578616d706c652e6e65743e00",
      "< SMFIR_DELRCPT \"<bob@example.net>\"" },
    { "quarantine", MILTER_DIR_REPLY, "000000117168656c6420666f722072657669657700",
      "< SMFIR_QUARANTINE \"held for review\"" },
};
const gsize n_test_packets = G_N_ELEMENTS(test_packets);

/* hexval - value of one hex digit, or -1 */
static int
hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* test_hex - bytes from hex digits; spaces are ignored, anything else aborts */
GByteArray *
test_hex(const char *hex)
{
    GByteArray *out = g_byte_array_new();
    int hi = -1;

    for (const char *p = hex; *p; p++) {
        int v;

        if (*p == ' ')
            continue;
        v = hexval(*p);
        g_assert(v >= 0);
        if (hi < 0) {
            hi = v;
        } else {
            guint8 b = (guint8)(hi << 4 | v);

            g_byte_array_append(out, &b, 1);
            hi = -1;
        }
    }
    g_assert(hi < 0);
    return out;
}

/* test_hexdump - lowercase hex of bytes (caller frees) */
char *
test_hexdump(const guint8 *buf, gsize len)
{
    GString *s = g_string_sized_new(len * 2 + 1);

    for (gsize i = 0; i < len; i++)
        g_string_append_printf(s, "%02x", buf[i]);
    return g_string_free(s, FALSE);
}

/*
 * test_decode_listing - decode a whole stream fed in slices of slice bytes
 *
 * slice 0 feeds everything at once. Returns one listing line per packet
 * (caller frees); on a decode error returns NULL and sets error. A stream
 * that ends inside a packet is an error too.
 */
GPtrArray *
test_decode_listing(MilterDirection dir, const guint8 *buf, gsize len, gsize slice, GError **error)
{
    g_autoptr(MilterDecoder) d = milter_decoder_new(dir, 0);
    g_autoptr(GPtrArray) lines = g_ptr_array_new_with_free_func(g_free);
    gsize off = 0;

    while (off < len) {
        gsize avail = slice ? MIN(slice, len - off) : len - off;

        while (avail > 0) {
            MilterPacket pkt;
            gsize n;
            MilterDecodeStatus st = milter_decoder_feed(d, buf + off, avail, &n, &pkt, error);

            g_assert(n <= avail);
            off += n;
            avail -= n;
            if (st == MILTER_DECODE_FAILED)
                return NULL;
            if (st == MILTER_DECODE_PACKET) {
                GString *line = g_string_new(NULL);

                milter_packet_format(line, dir, &pkt);
                g_ptr_array_add(lines, g_string_free(line, FALSE));
            }
        }
    }
    if (!milter_decoder_idle(d)) {
        g_set_error(error, MILTER_DECODE_ERROR, MILTER_DECODE_ERROR_SHORT,
                    "stream ends inside a packet");
        return NULL;
    }
    return g_steal_pointer(&lines);
}
