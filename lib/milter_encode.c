/* SPDX-License-Identifier: MIT */
/*
 * NAME
 *	milter_encode - milter packet encoder, both directions
 * DESCRIPTION
 *	See milter_encode.h. Each packet is built in place: a length word
 *	placeholder, the code, the fields, then the length is patched.
 */

/* System library. */
#include <string.h>

/* Shadow libraries. */
#include "milter_encode.h"

/* begin - start a packet; returns where its length word is */
static guint
begin(GByteArray *out, guint8 code)
{
    static const guint8 zero[MILTER_LEN_SIZE] = { 0 };
    guint start = out->len;

    g_byte_array_append(out, zero, sizeof(zero));
    g_byte_array_append(out, &code, 1);
    return start;
}

/* end - patch the length word of the packet started at start */
static void
end(GByteArray *out, guint start)
{
    guint32 len = out->len - start - MILTER_LEN_SIZE;
    guint8 *p = out->data + start;

    p[0] = (guint8)(len >> 24);
    p[1] = (guint8)(len >> 16);
    p[2] = (guint8)(len >> 8);
    p[3] = (guint8)len;
}

/* put_u32 - append a big-endian u32 */
static void
put_u32(GByteArray *out, guint32 v)
{
    guint8 b[4] = { (guint8)(v >> 24), (guint8)(v >> 16), (guint8)(v >> 8), (guint8)v };

    g_byte_array_append(out, b, sizeof(b));
}

/* put_string - append a string with its NUL */
static void
put_string(GByteArray *out, const char *s)
{
    g_byte_array_append(out, (const guint8 *)s, strlen(s) + 1);
}

/* milter_encode_empty - a packet with no data (SMFIC_DATA, SMFIR_CONTINUE, ...) */
void
milter_encode_empty(GByteArray *out, guint8 code)
{
    g_return_if_fail(out != NULL);
    end(out, begin(out, code));
}

/* milter_encode_optneg - SMFIC_OPTNEG, or SMFIR_OPTNEG with macro requests */
void
milter_encode_optneg(GByteArray *out, guint8 code, guint32 version, guint32 actions,
                     guint32 protocol, const MilterSymlist *symlists, gsize n_symlists)
{
    guint start;

    g_return_if_fail(out != NULL && code == SMFIC_OPTNEG);
    g_return_if_fail(symlists != NULL || n_symlists == 0);

    start = begin(out, code);
    put_u32(out, version);
    put_u32(out, actions);
    put_u32(out, protocol);
    for (gsize i = 0; i < n_symlists; i++) {
        put_u32(out, symlists[i].stage);
        put_string(out, symlists[i].macros);
    }
    end(out, start);
}

/* milter_encode_macro - SMFIC_MACRO for cmd; pairs holds n_strings names and values */
void
milter_encode_macro(GByteArray *out, guint8 cmd, const char *const *pairs, gsize n_strings)
{
    guint start;

    g_return_if_fail(out != NULL && n_strings % 2 == 0);
    g_return_if_fail(pairs != NULL || n_strings == 0);

    start = begin(out, SMFIC_MACRO);
    g_byte_array_append(out, &cmd, 1);
    for (gsize i = 0; i < n_strings; i++)
        put_string(out, pairs[i]);
    end(out, start);
}

/* milter_encode_connect - SMFIC_CONNECT; port and address unused for family U */
void
milter_encode_connect(GByteArray *out, const char *hostname, guint8 family, guint16 port,
                      const char *address)
{
    guint start;

    g_return_if_fail(out != NULL && hostname != NULL);
    g_return_if_fail(family == SMFIA_UNKNOWN || address != NULL);

    start = begin(out, SMFIC_CONNECT);
    put_string(out, hostname);
    g_byte_array_append(out, &family, 1);
    if (family != SMFIA_UNKNOWN) {
        guint8 p[2] = { (guint8)(port >> 8), (guint8)port };

        g_byte_array_append(out, p, sizeof(p));
        put_string(out, address);
    }
    end(out, start);
}

/* milter_encode_strings - a packet whose data is argc strings (HELO, MAIL, ...) */
void
milter_encode_strings(GByteArray *out, guint8 code, const char *const *argv, gsize argc)
{
    guint start;

    g_return_if_fail(out != NULL && (argv != NULL || argc == 0));

    start = begin(out, code);
    for (gsize i = 0; i < argc; i++)
        put_string(out, argv[i]);
    end(out, start);
}

/* milter_encode_string - a packet whose data is one string */
void
milter_encode_string(GByteArray *out, guint8 code, const char *s)
{
    g_return_if_fail(s != NULL);
    milter_encode_strings(out, code, &s, 1);
}

/* milter_encode_header - SMFIC_HEADER, SMFIR_ADDHEADER, or with index SMFIR_INS/CHGHEADER */
void
milter_encode_header(GByteArray *out, guint8 code, guint32 index, const char *name,
                     const char *value)
{
    guint start;

    g_return_if_fail(out != NULL && name != NULL && value != NULL);
    g_return_if_fail(code == SMFIC_HEADER || code == SMFIR_ADDHEADER || code == SMFIR_INSHEADER ||
                     code == SMFIR_CHGHEADER);

    start = begin(out, code);
    if (code == SMFIR_INSHEADER || code == SMFIR_CHGHEADER)
        put_u32(out, index);
    put_string(out, name);
    put_string(out, value);
    end(out, start);
}

/* milter_encode_body - SMFIC_BODY, SMFIC_BODYEOB or SMFIR_REPLBODY with raw data */
void
milter_encode_body(GByteArray *out, guint8 code, const guint8 *data, gsize len)
{
    guint start;

    g_return_if_fail(out != NULL && (data != NULL || len == 0));
    g_return_if_fail(len <= MILTER_DATA_MAX_CEILING);

    start = begin(out, code);
    if (len > 0)
        g_byte_array_append(out, data, (guint)len);
    end(out, start);
}

/*
 * milter_encode_body_chunks - raw data split into packets of at most chunk bytes
 *
 * At least one packet is written, so an empty SMFIR_REPLBODY replaces the
 * body with nothing, as libmilter does.
 */
void
milter_encode_body_chunks(GByteArray *out, guint8 code, const guint8 *data, gsize len, gsize chunk)
{
    gsize off = 0;

    g_return_if_fail(chunk > 0 && chunk <= MILTER_DATA_MAX_CEILING);
    do {
        gsize n = MIN(chunk, len - off);

        milter_encode_body(out, code, data ? data + off : NULL, n);
        off += n;
    } while (off < len);
}

/* milter_encode_packet - any packet from its decoded fields */
void
milter_encode_packet(GByteArray *out, MilterDirection dir, const MilterPacket *pkt)
{
    g_return_if_fail(out != NULL && pkt != NULL);
    g_return_if_fail(pkt->argv != NULL || pkt->argc == 0);

    switch (pkt->code) {
    case SMFIC_OPTNEG: /* == SMFIR_OPTNEG */
        milter_encode_optneg(out, pkt->code, pkt->version, pkt->actions, pkt->protocol,
                             pkt->symlists, dir == MILTER_DIR_REPLY ? pkt->n_symlists : 0);
        return;
    default:
        break;
    }
    if (dir == MILTER_DIR_COMMAND) {
        switch (pkt->code) {
        case SMFIC_MACRO:
            milter_encode_macro(out, pkt->macro_cmd, pkt->argv, pkt->argc);
            return;
        case SMFIC_CONNECT:
            g_return_if_fail(pkt->argc >= 1);
            milter_encode_connect(out, pkt->argv[0], pkt->family, pkt->port,
                                  pkt->argc > 1 ? pkt->argv[1] : NULL);
            return;
        case SMFIC_BODY:
        case SMFIC_BODYEOB:
            milter_encode_body(out, pkt->code, pkt->body, pkt->body_len);
            return;
        default:
            break;
        }
    } else {
        switch (pkt->code) {
        case SMFIR_INSHEADER:
        case SMFIR_CHGHEADER:
            g_return_if_fail(pkt->argc == 2);
            milter_encode_header(out, pkt->code, pkt->index, pkt->argv[0], pkt->argv[1]);
            return;
        case SMFIR_REPLBODY:
            milter_encode_body(out, pkt->code, pkt->body, pkt->body_len);
            return;
        default:
            break;
        }
    }
    /* Everything else is a code and zero or more strings. */
    milter_encode_strings(out, pkt->code, pkt->argv, pkt->argc);
}
