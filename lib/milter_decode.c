/* SPDX-License-Identifier: MIT */
/*
 * NAME
 *	milter_decode - incremental decoder for milter packets, both directions
 * DESCRIPTION
 *	See milter_decode.h for the interface. The decoder keeps only the
 *	packet in progress. A packet that arrives whole in the caller's buffer
 *	is decoded in place; otherwise its bytes are gathered into one buffer
 *	sized to the checked length. Strings are decoded in place: the NUL that
 *	ends each one on the wire is its C terminator.
 *
 *	The rules follow Sendmail's libmilter (engine.c) and Postfix
 *	(milter8.c), and are stricter where those are lax: every string must
 *	end in NUL, fixed-size packets must not carry extra bytes, and a
 *	packet with fields must not carry bytes after its last field.
 */

/* System library. */
#include <stdarg.h>
#include <string.h>

/* Shadow libraries. */
#include "milter_decode.h"

/* milter_decode_error_quark - the error domain (not G_DEFINE_QUARK: clang-format spaces its name) */
GQuark
milter_decode_error_quark(void)
{
    return g_quark_from_static_string("milter-decode-error-quark");
}

/* Initial buffer: enough for most envelope packets without a realloc. */
#define DECODER_INITIAL_BUF 512

/* The fixed part of an SMFIC_OPTNEG/SMFIR_OPTNEG packet: three u32. */
#define OPTNEG_FIXED_SIZE 12

struct _MilterDecoder {
    MilterDirection dir;
    gsize max_data;      /* data bytes (after the code) allowed per packet */
    guint8 *buf;         /* the packet being gathered, length word first */
    gsize cap;           /* allocated size of buf */
    gsize have;          /* bytes of the current packet in buf */
    gsize need;          /* its total size, once the length word is in */
    const guint8 *frame; /* the last packet returned, as received */
    gsize frame_len;
    GPtrArray *argv;  /* string fields of the last packet */
    GArray *symlists; /* MilterSymlist of the last SMFIR_OPTNEG */
    guint64 offset;   /* stream offset where the current packet starts */
    guint64 packets;  /* packets completed so far */
    gboolean dead;    /* an error has been reported */
};

/* read_be32 - big-endian 32-bit integer */
static guint32
read_be32(const guint8 *p)
{
    return ((guint32)p[0] << 24) | ((guint32)p[1] << 16) | ((guint32)p[2] << 8) | p[3];
}

/* milter_decoder_new - decoder for one direction; max_data 0 means the default */
MilterDecoder *
milter_decoder_new(MilterDirection dir, gsize max_data)
{
    MilterDecoder *d;

    g_return_val_if_fail(dir == MILTER_DIR_COMMAND || dir == MILTER_DIR_REPLY, NULL);
    g_return_val_if_fail(max_data <= MILTER_DATA_MAX_CEILING, NULL);

    d = g_new0(MilterDecoder, 1);
    d->dir = dir;
    d->max_data = max_data ? max_data : MILTER_DATA_MAX_DEFAULT;
    d->cap = DECODER_INITIAL_BUF;
    d->buf = g_malloc(d->cap);
    d->argv = g_ptr_array_new();
    d->symlists = g_array_new(FALSE, FALSE, sizeof(MilterSymlist));
    return d;
}

/* milter_decoder_free - destroy a decoder; NULL is allowed */
void
milter_decoder_free(MilterDecoder *d)
{
    if (d == NULL)
        return;
    g_free(d->buf);
    g_ptr_array_unref(d->argv);
    g_array_unref(d->symlists);
    g_free(d);
}

/* milter_decoder_frame - the last packet returned, length word included */
const guint8 *
milter_decoder_frame(const MilterDecoder *d, gsize *len)
{
    g_return_val_if_fail(d != NULL && len != NULL, NULL);
    *len = d->frame_len;
    return d->frame;
}

/* milter_decoder_idle - no partial packet pending (a clean place to stop) */
gboolean
milter_decoder_idle(const MilterDecoder *d)
{
    g_return_val_if_fail(d != NULL, FALSE);
    return d->have == 0;
}

/* milter_decoder_offset - stream bytes consumed by complete packets */
guint64
milter_decoder_offset(const MilterDecoder *d)
{
    g_return_val_if_fail(d != NULL, 0);
    return d->offset;
}

/* fail - set an error about the current packet, kill the stream */
G_GNUC_PRINTF(4, 5)
static MilterDecodeStatus
fail(MilterDecoder *d, GError **error, MilterDecodeError code, const char *fmt, ...)
{
    va_list ap;
    g_autofree char *what = NULL;

    va_start(ap, fmt);
    what = g_strdup_vprintf(fmt, ap);
    va_end(ap);
    g_set_error(error, MILTER_DECODE_ERROR, code,
                "packet %" G_GUINT64_FORMAT " at byte %" G_GUINT64_FORMAT ": %s", d->packets + 1,
                d->offset, what);
    d->dead = TRUE;
    return MILTER_DECODE_FAILED;
}

/* code_text - "'H' (0x48)" for printable codes, "0x01" otherwise */
static char *
code_text(guint8 code)
{
    if (code >= 0x21 && code <= 0x7e)
        return g_strdup_printf("'%c' (0x%02x)", code, code);
    return g_strdup_printf("0x%02x", code);
}

/* check_length - refuse a length word before anything is buffered */
static gboolean
check_length(MilterDecoder *d, guint32 len, GError **error)
{
    if (len == 0) {
        fail(d, error, MILTER_DECODE_ERROR_ZERO_LENGTH, "length 0, need at least 1 for the code");
        return FALSE;
    }
    if (len - 1 > d->max_data) {
        fail(d, error, MILTER_DECODE_ERROR_TOO_LONG,
             "%u data bytes, over the limit of %" G_GSIZE_FORMAT, len - 1, d->max_data);
        return FALSE;
    }
    return TRUE;
}

/* check_code - refuse a code byte this direction does not carry */
static gboolean
check_code(MilterDecoder *d, guint8 code, GError **error)
{
    const char *name = milter_code_name(d->dir, code);
    const char *kind = d->dir == MILTER_DIR_COMMAND ? "command" : "reply";
    g_autofree char *text = NULL;

    /* Defined by Sendmail but handled by no MTA (milter-protocol notes §3). */
    if (name != NULL &&
        !(d->dir == MILTER_DIR_REPLY && (code == SMFIR_CONN_FAIL || code == SMFIR_SETSYMLIST)))
        return TRUE;
    text = code_text(code);
    if (name)
        fail(d, error, MILTER_DECODE_ERROR_UNKNOWN_CODE, "unsupported %s code %s, %s", kind, text,
             name);
    else
        fail(d, error, MILTER_DECODE_ERROR_UNKNOWN_CODE, "unknown %s code %s", kind, text);
    return FALSE;
}

/* Field parsing over the payload of one packet. */
typedef struct {
    MilterDecoder *d;
    const char *name; /* SMFIC_/SMFIR_ name, for messages */
    const guint8 *p;  /* next unparsed byte */
    const guint8 *end;
} Fields;

/* plural - "s" unless n is 1, for counts in messages */
static const char *
plural(gsize n)
{
    return n == 1 ? "" : "s";
}

/* fields_left - unparsed bytes */
static gsize
fields_left(const Fields *f)
{
    return (gsize)(f->end - f->p);
}

/* take_u32 - a big-endian u32 field */
static gboolean
take_u32(Fields *f, const char *what, guint32 *out, GError **error)
{
    if (fields_left(f) < 4) {
        fail(f->d, error, MILTER_DECODE_ERROR_SHORT,
             "%s: %" G_GSIZE_FORMAT " byte%s left, need 4 for %s", f->name, fields_left(f),
             plural(fields_left(f)), what);
        return FALSE;
    }
    *out = read_be32(f->p);
    f->p += 4;
    return TRUE;
}

/* take_string - a NUL-terminated string field, appended to argv */
static gboolean
take_string(Fields *f, const char *what, GError **error)
{
    const guint8 *nul;

    if (fields_left(f) == 0) {
        fail(f->d, error, MILTER_DECODE_ERROR_SHORT, "%s: data ends before %s", f->name, what);
        return FALSE;
    }
    nul = memchr(f->p, 0, fields_left(f));
    if (nul == NULL) {
        fail(f->d, error, MILTER_DECODE_ERROR_MISSING_NUL, "%s: %s not terminated by NUL", f->name,
             what);
        return FALSE;
    }
    g_ptr_array_add(f->d->argv, (gpointer)f->p);
    f->p = nul + 1;
    return TRUE;
}

/* take_rest_strings - zero or more strings up to the end */
static gboolean
take_rest_strings(Fields *f, const char *what, GError **error)
{
    while (fields_left(f) > 0)
        if (!take_string(f, what, error))
            return FALSE;
    return TRUE;
}

/* at_end - no bytes may follow the last field */
static gboolean
at_end(Fields *f, GError **error)
{
    if (fields_left(f) != 0) {
        fail(f->d, error, MILTER_DECODE_ERROR_TRAILING, "%s: %" G_GSIZE_FORMAT " trailing byte%s",
             f->name, fields_left(f), plural(fields_left(f)));
        return FALSE;
    }
    return TRUE;
}

/* take_optneg - version, actions, protocol */
static gboolean
take_optneg(Fields *f, MilterPacket *pkt, GError **error)
{
    if (fields_left(f) < OPTNEG_FIXED_SIZE) {
        fail(f->d, error, MILTER_DECODE_ERROR_SHORT, "%s: %" G_GSIZE_FORMAT " data byte%s, need %d",
             f->name, fields_left(f), plural(fields_left(f)), OPTNEG_FIXED_SIZE);
        return FALSE;
    }
    pkt->version = read_be32(f->p);
    pkt->actions = read_be32(f->p + 4);
    pkt->protocol = read_be32(f->p + 8);
    f->p += OPTNEG_FIXED_SIZE;
    return TRUE;
}

/* take_symlists - the macro requests after an SMFIR_OPTNEG's fixed part */
static gboolean
take_symlists(Fields *f, MilterPacket *pkt, GError **error)
{
    while (fields_left(f) > 0) {
        MilterSymlist sl;

        if (!take_u32(f, "a macro stage", &sl.stage, error))
            return FALSE;
        if (!take_string(f, "macro list", error))
            return FALSE;
        sl.macros = g_ptr_array_steal_index(f->d->argv, f->d->argv->len - 1);
        g_array_append_val(f->d->symlists, sl);
    }
    pkt->symlists = (const MilterSymlist *)(void *)f->d->symlists->data;
    pkt->n_symlists = f->d->symlists->len;
    return TRUE;
}

/* take_connect - hostname, family, and for all but U: port and address */
static gboolean
take_connect(Fields *f, MilterPacket *pkt, GError **error)
{
    g_autofree char *text = NULL;

    if (!take_string(f, "hostname", error))
        return FALSE;
    if (fields_left(f) == 0) {
        fail(f->d, error, MILTER_DECODE_ERROR_SHORT, "%s: data ends before the address family",
             f->name);
        return FALSE;
    }
    pkt->family = *f->p++;
    switch (pkt->family) {
    case SMFIA_UNKNOWN:
        return at_end(f, error);
    case SMFIA_INET:
    case SMFIA_INET6:
    case SMFIA_UNIX:
        if (fields_left(f) < 2) {
            fail(f->d, error, MILTER_DECODE_ERROR_SHORT,
                 "%s: %" G_GSIZE_FORMAT " byte%s left, need 2 for the port", f->name,
                 fields_left(f), plural(fields_left(f)));
            return FALSE;
        }
        pkt->port = (guint16)((f->p[0] << 8) | f->p[1]);
        f->p += 2;
        return take_string(f, "address", error) && at_end(f, error);
    default:
        text = code_text(pkt->family);
        fail(f->d, error, MILTER_DECODE_ERROR_UNKNOWN_FAMILY, "%s: unknown address family %s",
             f->name, text);
        return FALSE;
    }
}

/* take_macros - command letter, then name/value pairs (possibly none) */
static gboolean
take_macros(Fields *f, MilterPacket *pkt, GError **error)
{
    if (fields_left(f) == 0) {
        fail(f->d, error, MILTER_DECODE_ERROR_SHORT, "%s: data ends before the command letter",
             f->name);
        return FALSE;
    }
    pkt->macro_cmd = *f->p++;
    if (!take_rest_strings(f, "macro", error))
        return FALSE;
    if (f->d->argv->len % 2 != 0) {
        g_autoptr(GString) name = g_string_new(NULL);
        const char *last = g_ptr_array_index(f->d->argv, f->d->argv->len - 1);

        milter_format_string(name, (const guint8 *)last, strlen(last));
        fail(f->d, error, MILTER_DECODE_ERROR_BAD_MACROS, "%s: macro %s has no value", f->name,
             name->str);
        return FALSE;
    }
    return TRUE;
}

/* take_body - all remaining bytes, raw */
static gboolean
take_body(Fields *f, MilterPacket *pkt)
{
    pkt->body = f->p;
    pkt->body_len = fields_left(f);
    f->p = f->end;
    return TRUE;
}

/* decode_command - fields of an MTA-to-filter packet */
static gboolean
decode_command(Fields *f, MilterPacket *pkt, GError **error)
{
    switch (pkt->code) {
    case SMFIC_OPTNEG:
        return take_optneg(f, pkt, error) && at_end(f, error);
    case SMFIC_MACRO:
        return take_macros(f, pkt, error);
    case SMFIC_CONNECT:
        return take_connect(f, pkt, error);
    case SMFIC_HELO:
        return take_string(f, "HELO argument", error) && at_end(f, error);
    case SMFIC_MAIL:
    case SMFIC_RCPT:
        return take_string(f, "address", error) && take_rest_strings(f, "ESMTP argument", error);
    case SMFIC_HEADER:
        return take_string(f, "header name", error) && take_string(f, "header value", error) &&
               at_end(f, error);
    case SMFIC_BODY:
    case SMFIC_BODYEOB:
        return take_body(f, pkt);
    case SMFIC_UNKNOWN:
        return take_string(f, "command line", error) && at_end(f, error);
    default: /* SMFIC_DATA, SMFIC_EOH, SMFIC_ABORT, SMFIC_QUIT, SMFIC_QUIT_NC */
        return at_end(f, error);
    }
}

/* decode_reply - fields of a filter-to-MTA packet */
static gboolean
decode_reply(Fields *f, MilterPacket *pkt, GError **error)
{
    switch (pkt->code) {
    case SMFIR_OPTNEG:
        return take_optneg(f, pkt, error) && take_symlists(f, pkt, error);
    case SMFIR_REPLYCODE:
        return take_string(f, "reply text", error) && at_end(f, error);
    case SMFIR_ADDHEADER:
        return take_string(f, "header name", error) && take_string(f, "header value", error) &&
               at_end(f, error);
    case SMFIR_INSHEADER:
    case SMFIR_CHGHEADER:
        return take_u32(f, "the header index", &pkt->index, error) &&
               take_string(f, "header name", error) && take_string(f, "header value", error) &&
               at_end(f, error);
    case SMFIR_REPLBODY:
        return take_body(f, pkt);
    case SMFIR_CHGFROM:
    case SMFIR_ADDRCPT_PAR:
        if (!take_string(f, "address", error))
            return FALSE;
        if (fields_left(f) > 0 && !take_string(f, "ESMTP arguments", error))
            return FALSE;
        return at_end(f, error);
    case SMFIR_ADDRCPT:
    case SMFIR_DELRCPT:
        return take_string(f, "address", error) && at_end(f, error);
    case SMFIR_QUARANTINE:
        return take_string(f, "reason", error) && at_end(f, error);
    default: /* c a r t d s p 4 */
        return at_end(f, error);
    }
}

/* finish - decode a complete packet held in frame */
static MilterDecodeStatus
finish(MilterDecoder *d, const guint8 *frame, gsize frame_len, MilterPacket *pkt, GError **error)
{
    Fields f;
    gboolean ok;

    memset(pkt, 0, sizeof(*pkt));
    g_ptr_array_set_size(d->argv, 0);
    g_array_set_size(d->symlists, 0);
    pkt->code = frame[MILTER_LEN_SIZE];
    f.d = d;
    f.name = milter_code_name(d->dir, pkt->code);
    f.p = frame + MILTER_LEN_SIZE + 1;
    f.end = frame + frame_len;

    ok = d->dir == MILTER_DIR_COMMAND ? decode_command(&f, pkt, error)
                                      : decode_reply(&f, pkt, error);
    if (!ok)
        return MILTER_DECODE_FAILED;

    pkt->argc = d->argv->len;
    g_ptr_array_add(d->argv, NULL); /* argv[argc] == NULL, as for main() */
    pkt->argv = (const char *const *)d->argv->pdata;
    d->frame = frame;
    d->frame_len = frame_len;
    d->packets++;
    d->offset += frame_len;
    return MILTER_DECODE_PACKET;
}

/* milter_decoder_feed - consume bytes up to the end of at most one packet */
MilterDecodeStatus
milter_decoder_feed(MilterDecoder *d, const guint8 *buf, gsize len, gsize *consumed,
                    MilterPacket *pkt, GError **error)
{
    gsize used = 0;

    g_return_val_if_fail(d != NULL && consumed != NULL && pkt != NULL, MILTER_DECODE_FAILED);
    g_return_val_if_fail(buf != NULL || len == 0, MILTER_DECODE_FAILED);
    g_return_val_if_fail(error == NULL || *error == NULL, MILTER_DECODE_FAILED);

    *consumed = 0;
    if (d->dead) {
        g_set_error(error, MILTER_DECODE_ERROR, MILTER_DECODE_ERROR_DEAD,
                    "packet %" G_GUINT64_FORMAT " at byte %" G_GUINT64_FORMAT
                    ": stream already failed",
                    d->packets + 1, d->offset);
        return MILTER_DECODE_FAILED;
    }

    /* Fast path: a whole packet at the start of the caller's buffer. */
    if (d->have == 0 && len > MILTER_LEN_SIZE) {
        guint32 plen = read_be32(buf);

        if (!check_length(d, plen, error)) {
            *consumed = MILTER_LEN_SIZE;
            return MILTER_DECODE_FAILED;
        }
        if (!check_code(d, buf[MILTER_LEN_SIZE], error)) {
            *consumed = MILTER_LEN_SIZE + 1;
            return MILTER_DECODE_FAILED;
        }
        if (len - MILTER_LEN_SIZE >= plen) {
            *consumed = MILTER_LEN_SIZE + (gsize)plen;
            return finish(d, buf, *consumed, pkt, error);
        }
    }

    /* Slow path: gather the packet in our buffer. */
    while (used < len) {
        if (d->have <= MILTER_LEN_SIZE) {
            d->buf[d->have++] = buf[used++];
            if (d->have == MILTER_LEN_SIZE) {
                guint32 plen = read_be32(d->buf);

                if (!check_length(d, plen, error)) {
                    *consumed = used;
                    return MILTER_DECODE_FAILED;
                }
                d->need = MILTER_LEN_SIZE + (gsize)plen;
                if (d->need > d->cap) {
                    d->cap = d->need;
                    d->buf = g_realloc(d->buf, d->cap);
                }
            } else if (d->have == MILTER_LEN_SIZE + 1 &&
                       !check_code(d, d->buf[MILTER_LEN_SIZE], error)) {
                *consumed = used;
                return MILTER_DECODE_FAILED;
            }
        } else {
            gsize n = MIN(len - used, d->need - d->have);

            memcpy(d->buf + d->have, buf + used, n);
            d->have += n;
            used += n;
        }
        if (d->have > MILTER_LEN_SIZE && d->have == d->need) {
            *consumed = used;
            d->have = 0;
            return finish(d, d->buf, d->need, pkt, error);
        }
    }
    *consumed = used;
    return MILTER_DECODE_NEED_MORE;
}
