/* SPDX-License-Identifier: MIT */
/*
 * NAME
 *	testlib - helpers shared by the Check suites
 * DESCRIPTION
 *	Hex input, whole-stream decoding into "packet listing v1" lines, and
 *	the table of well-formed packets that the decoder and encoder suites
 *	both check byte for byte.
 */
#ifndef SHADOW_TESTLIB_H
#define SHADOW_TESTLIB_H

/* GLib. */
#include <glib.h>

/* Shadow libraries. */
#include "milter_decode.h"

/* TestPacket - one well-formed packet: its bytes and its listing */
typedef struct {
    const char *id; /* name used by the encoder suite to build it */
    MilterDirection dir;
    const char *hex;     /* whole packet, length word included */
    const char *listing; /* milter_packet_format() output */
} TestPacket;

extern const TestPacket test_packets[];
extern const gsize n_test_packets;

GByteArray *test_hex(const char *hex);
char *test_hexdump(const guint8 *buf, gsize len);
GPtrArray *test_decode_listing(MilterDirection dir, const guint8 *buf, gsize len, gsize slice,
                               GError **error);

#endif /* SHADOW_TESTLIB_H */
