/* SPDX-License-Identifier: MIT */
/*
 * NAME
 *	milter_decode - incremental decoder for milter packets, both directions
 * SYNOPSIS
 *	#include "milter_decode.h"
 *
 *	MilterDecoder *milter_decoder_new(MilterDirection dir, gsize max_data);
 *	MilterDecodeStatus milter_decoder_feed(MilterDecoder *d, const guint8 *buf,
 *	                                       gsize len, gsize *consumed,
 *	                                       MilterPacket *pkt, GError **error);
 * DESCRIPTION
 *	The decoder is fed arbitrary slices of a byte stream (one byte at a
 *	time works) and hands back one packet at a time. Each call consumes
 *	bytes up to the end of at most one packet and says how many in
 *	*consumed; the caller feeds the rest again:
 *
 *	    while (len > 0) {
 *	        st = milter_decoder_feed(d, buf, len, &n, &pkt, &error);
 *	        buf += n, len -= n;
 *	        if (st == MILTER_DECODE_FAILED) ...give up on the stream...
 *	        if (st == MILTER_DECODE_PACKET) ...use pkt...
 *	    }
 *
 *	A packet's pointers refer to the caller's buffer (when the packet
 *	arrived whole) or to the decoder's own: they stay valid until the next
 *	call on the decoder or its free. milter_decoder_frame() gives the whole
 *	packet as received, length word included, for forwarding unchanged.
 *
 *	The length word is checked against the limit as soon as its four bytes
 *	are in, and the code byte as soon as it is in, before any data is
 *	buffered. After an error the stream's framing is lost: every later
 *	call fails with MILTER_DECODE_ERROR_DEAD.
 * DIAGNOSTICS
 *	Malformed input: MILTER_DECODE_ERROR, with a message that names the
 *	packet's number and byte offset in the stream, the code's name and the
 *	fault. Programming errors: g_return_val_if_fail().
 * SECURITY
 *	Parses untrusted bytes from the MTA and from child milters. No
 *	sockets, no main loop, no globals.
 */
#ifndef SHADOW_MILTER_DECODE_H
#define SHADOW_MILTER_DECODE_H

/* Shadow libraries. */
#include "milter_proto.h"

G_BEGIN_DECLS

#define MILTER_DECODE_ERROR (milter_decode_error_quark())
GQuark milter_decode_error_quark(void);

/* MilterDecodeError - what was wrong with the stream */
typedef enum {
    MILTER_DECODE_ERROR_ZERO_LENGTH,    /* length word 0: not even a code byte */
    MILTER_DECODE_ERROR_TOO_LONG,       /* more data bytes than the limit */
    MILTER_DECODE_ERROR_UNKNOWN_CODE,   /* code byte unknown in this direction */
    MILTER_DECODE_ERROR_SHORT,          /* data ends before a required field */
    MILTER_DECODE_ERROR_MISSING_NUL,    /* a string field lacks its NUL */
    MILTER_DECODE_ERROR_TRAILING,       /* bytes after the last field */
    MILTER_DECODE_ERROR_UNKNOWN_FAMILY, /* CONNECT family byte not 4 6 L U */
    MILTER_DECODE_ERROR_BAD_MACROS,     /* SMFIC_MACRO name without a value */
    MILTER_DECODE_ERROR_DEAD,           /* fed again after an error */
} MilterDecodeError;

/* MilterDecodeStatus - what one milter_decoder_feed() call produced */
typedef enum {
    MILTER_DECODE_NEED_MORE, /* all input consumed, no packet complete yet */
    MILTER_DECODE_PACKET,    /* *pkt holds a packet */
    MILTER_DECODE_FAILED,    /* *error is set; the stream is dead */
} MilterDecodeStatus;

typedef struct _MilterDecoder MilterDecoder;

MilterDecoder *milter_decoder_new(MilterDirection dir, gsize max_data);
void milter_decoder_free(MilterDecoder *d);
MilterDecodeStatus milter_decoder_feed(MilterDecoder *d, const guint8 *buf, gsize len,
                                       gsize *consumed, MilterPacket *pkt, GError **error);
const guint8 *milter_decoder_frame(const MilterDecoder *d, gsize *len);
gboolean milter_decoder_idle(const MilterDecoder *d);
guint64 milter_decoder_offset(const MilterDecoder *d);

G_DEFINE_AUTOPTR_CLEANUP_FUNC(MilterDecoder, milter_decoder_free)

G_END_DECLS

#endif /* SHADOW_MILTER_DECODE_H */
