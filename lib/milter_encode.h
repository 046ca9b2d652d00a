/* SPDX-License-Identifier: MIT */
/*
 * NAME
 *	milter_encode - milter packet encoder, both directions
 * SYNOPSIS
 *	#include "milter_encode.h"
 * DESCRIPTION
 *	Every function appends exactly one packet, length word included, to
 *	out. milter_encode_packet() writes any MilterPacket as the decoder
 *	returns it, so decode-then-encode gives the same bytes; the others
 *	are shorthands for building packets from scratch.
 *
 *	The encoder does not split: a caller sending a body passes chunks of at
 *	most MILTER_CHUNK_SIZE bytes (milter_encode_body_chunks() does that).
 * DIAGNOSTICS
 *	Programming errors (a code of the wrong kind, data over
 *	MILTER_DATA_MAX_CEILING): g_return_if_fail(), nothing appended.
 */
#ifndef SHADOW_MILTER_ENCODE_H
#define SHADOW_MILTER_ENCODE_H

/* Shadow libraries. */
#include "milter_proto.h"

G_BEGIN_DECLS

void milter_encode_packet(GByteArray *out, MilterDirection dir, const MilterPacket *pkt);
void milter_encode_empty(GByteArray *out, guint8 code);
void milter_encode_optneg(GByteArray *out, guint8 code, guint32 version, guint32 actions,
                          guint32 protocol, const MilterSymlist *symlists, gsize n_symlists);
void milter_encode_macro(GByteArray *out, guint8 cmd, const char *const *pairs, gsize n_strings);
void milter_encode_connect(GByteArray *out, const char *hostname, guint8 family, guint16 port,
                           const char *address);
void milter_encode_strings(GByteArray *out, guint8 code, const char *const *argv, gsize argc);
void milter_encode_string(GByteArray *out, guint8 code, const char *s);
void milter_encode_header(GByteArray *out, guint8 code, guint32 index, const char *name,
                          const char *value);
void milter_encode_body(GByteArray *out, guint8 code, const guint8 *data, gsize len);
void milter_encode_body_chunks(GByteArray *out, guint8 code, const guint8 *data, gsize len,
                               gsize chunk);

G_END_DECLS

#endif /* SHADOW_MILTER_ENCODE_H */
