/* SPDX-License-Identifier: MIT */
/*
 * NAME
 *	fuzz_milter_decode - libFuzzer target for one decoder direction
 * DESCRIPTION
 *	Built twice, with FUZZ_DIRECTION set to MILTER_DIR_COMMAND (bytes an
 *	MTA sends) and MILTER_DIR_REPLY (bytes a filter sends).
 *
 *	The first input byte picks a slice size; the rest is the stream. The
 *	stream is decoded whole and again in slices, and these must agree
 *	packet for packet; every packet must re-encode to exactly its frame
 *	and format without fault. Any disagreement aborts, so the fuzzer
 *	finds logic errors as well as memory errors.
 */

/* System library. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* Shadow libraries. */
#include "milter_decode.h"
#include "milter_encode.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Packets kept per input for the comparison; the rest is still decoded. */
#define FUZZ_MAX_KEPT 256

/* Small limit on one decoder so that the length check is reached often. */
#define FUZZ_SMALL_LIMIT 300

/* check - abort with a message when a property fails */
static void
check(gboolean ok, const char *what)
{
    if (!ok) {
        g_printerr("fuzz_milter_decode: %s\n", what);
        abort();
    }
}

/* decode_stream - decode in slices; collect frames; return the error code or -1 */
static int
decode_stream(const guint8 *buf, gsize len, gsize slice, gsize max_data, GPtrArray *frames)
{
    g_autoptr(MilterDecoder) d = milter_decoder_new(FUZZ_DIRECTION, max_data);
    g_autoptr(GByteArray) re = g_byte_array_new();
    gsize off = 0;

    while (off < len) {
        gsize avail = slice ? MIN(slice, len - off) : len - off;
        /* An exactly-sized copy, so ASan sees reads past the slice. */
        g_autofree guint8 *copy = g_memdup2(buf + off, avail);
        gsize pos = 0;

        while (pos < avail) {
            g_autoptr(GError) error = NULL;
            MilterPacket pkt;
            gsize used;
            MilterDecodeStatus st =
                milter_decoder_feed(d, copy + pos, avail - pos, &used, &pkt, &error);

            check(used <= avail - pos, "consumed more than given");
            pos += used;
            if (st == MILTER_DECODE_FAILED) {
                check(error != NULL, "failure without an error");
                return error->code;
            }
            check(error == NULL, "error set without failure");
            if (st == MILTER_DECODE_NEED_MORE) {
                check(pos == avail, "need more with input left");
                continue;
            }
            {
                gsize frame_len;
                const guint8 *frame = milter_decoder_frame(d, &frame_len);
                g_autoptr(GString) line = g_string_new(NULL);

                g_byte_array_set_size(re, 0);
                milter_encode_packet(re, FUZZ_DIRECTION, &pkt);
                check(re->len == frame_len && memcmp(re->data, frame, frame_len) == 0,
                      "re-encoding differs from the frame");
                check(pkt.argv != NULL && pkt.argv[pkt.argc] == NULL, "argv not terminated");
                milter_packet_format(line, FUZZ_DIRECTION, &pkt);
                if (frames->len < FUZZ_MAX_KEPT)
                    g_ptr_array_add(frames, g_bytes_new(frame, frame_len));
            }
        }
        off += avail;
    }
    return -1;
}

/* same_frames - two decodings produced the same packets */
static gboolean
same_frames(GPtrArray *a, GPtrArray *b)
{
    if (a->len != b->len)
        return FALSE;
    for (guint i = 0; i < a->len; i++)
        if (!g_bytes_equal(a->pdata[i], b->pdata[i]))
            return FALSE;
    return TRUE;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    g_autoptr(GPtrArray) whole = g_ptr_array_new_with_free_func((GDestroyNotify)g_bytes_unref);
    g_autoptr(GPtrArray) sliced = g_ptr_array_new_with_free_func((GDestroyNotify)g_bytes_unref);
    g_autoptr(GPtrArray) small = g_ptr_array_new_with_free_func((GDestroyNotify)g_bytes_unref);
    gsize slice;
    int e1, e2;

    if (size < 1)
        return 0;
    slice = (gsize)(data[0] % 16) + 1;
    data++, size--;

    e1 = decode_stream(data, size, 0, 0, whole);
    e2 = decode_stream(data, size, slice, 0, sliced);
    check(e1 == e2, "whole and sliced decoding end differently");
    check(same_frames(whole, sliced), "whole and sliced decoding differ");
    /* With a small limit: must fail cleanly or agree with the default. */
    if (decode_stream(data, size, slice, FUZZ_SMALL_LIMIT, small) == -1)
        check(e1 == -1 && same_frames(whole, small), "small limit changed the packets");
    return 0;
}
