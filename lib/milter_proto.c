/* SPDX-License-Identifier: MIT */
/*
 * NAME
 *	milter_proto - name tables and the text form of milter packets
 * DESCRIPTION
 *	Logs print SMFIC_HELO, not 'H'. milter_packet_format() writes the
 *	one-line "packet listing v1" form used in debug logs and in the
 *	captured-packet fixtures (tests/fixtures/postfix-3.7/README.md).
 */

/* System library. */
#include <string.h>

/* Shadow libraries. */
#include "milter_proto.h"

/* NameCode - a wire code and its Sendmail name */
typedef struct {
    guint8 code;
    const char *name;
} NameCode;

static const NameCode command_names[] = {
    { SMFIC_ABORT, "SMFIC_ABORT" },     { SMFIC_BODY, "SMFIC_BODY" },
    { SMFIC_CONNECT, "SMFIC_CONNECT" }, { SMFIC_MACRO, "SMFIC_MACRO" },
    { SMFIC_BODYEOB, "SMFIC_BODYEOB" }, { SMFIC_HELO, "SMFIC_HELO" },
    { SMFIC_QUIT_NC, "SMFIC_QUIT_NC" }, { SMFIC_HEADER, "SMFIC_HEADER" },
    { SMFIC_MAIL, "SMFIC_MAIL" },       { SMFIC_EOH, "SMFIC_EOH" },
    { SMFIC_OPTNEG, "SMFIC_OPTNEG" },   { SMFIC_QUIT, "SMFIC_QUIT" },
    { SMFIC_RCPT, "SMFIC_RCPT" },       { SMFIC_DATA, "SMFIC_DATA" },
    { SMFIC_UNKNOWN, "SMFIC_UNKNOWN" },
};

static const NameCode reply_names[] = {
    { SMFIR_ADDRCPT, "SMFIR_ADDRCPT" },         { SMFIR_DELRCPT, "SMFIR_DELRCPT" },
    { SMFIR_ADDRCPT_PAR, "SMFIR_ADDRCPT_PAR" }, { SMFIR_SHUTDOWN, "SMFIR_SHUTDOWN" },
    { SMFIR_ACCEPT, "SMFIR_ACCEPT" },           { SMFIR_REPLBODY, "SMFIR_REPLBODY" },
    { SMFIR_CONTINUE, "SMFIR_CONTINUE" },       { SMFIR_DISCARD, "SMFIR_DISCARD" },
    { SMFIR_CHGFROM, "SMFIR_CHGFROM" },         { SMFIR_CONN_FAIL, "SMFIR_CONN_FAIL" },
    { SMFIR_ADDHEADER, "SMFIR_ADDHEADER" },     { SMFIR_INSHEADER, "SMFIR_INSHEADER" },
    { SMFIR_SETSYMLIST, "SMFIR_SETSYMLIST" },   { SMFIR_CHGHEADER, "SMFIR_CHGHEADER" },
    { SMFIR_PROGRESS, "SMFIR_PROGRESS" },       { SMFIR_QUARANTINE, "SMFIR_QUARANTINE" },
    { SMFIR_REJECT, "SMFIR_REJECT" },           { SMFIR_SKIP, "SMFIR_SKIP" },
    { SMFIR_TEMPFAIL, "SMFIR_TEMPFAIL" },       { SMFIR_REPLYCODE, "SMFIR_REPLYCODE" },
    { SMFIR_OPTNEG, "SMFIR_OPTNEG" },
};

/* FlagName - one bit of a flag word and its name without prefix */
typedef struct {
    guint32 bit;
    const char *name;
} FlagName;

static const FlagName action_names[] = {
    { SMFIF_ADDHDRS, "ADDHDRS" },       { SMFIF_CHGBODY, "CHGBODY" },
    { SMFIF_ADDRCPT, "ADDRCPT" },       { SMFIF_DELRCPT, "DELRCPT" },
    { SMFIF_CHGHDRS, "CHGHDRS" },       { SMFIF_QUARANTINE, "QUARANTINE" },
    { SMFIF_CHGFROM, "CHGFROM" },       { SMFIF_ADDRCPT_PAR, "ADDRCPT_PAR" },
    { SMFIF_SETSYMLIST, "SETSYMLIST" },
};

static const FlagName protocol_names[] = {
    { SMFIP_NOCONNECT, "NOCONNECT" },
    { SMFIP_NOHELO, "NOHELO" },
    { SMFIP_NOMAIL, "NOMAIL" },
    { SMFIP_NORCPT, "NORCPT" },
    { SMFIP_NOBODY, "NOBODY" },
    { SMFIP_NOHDRS, "NOHDRS" },
    { SMFIP_NOEOH, "NOEOH" },
    { SMFIP_NR_HDR, "NR_HDR" },
    { SMFIP_NOUNKNOWN, "NOUNKNOWN" },
    { SMFIP_NODATA, "NODATA" },
    { SMFIP_SKIP, "SKIP" },
    { SMFIP_RCPT_REJ, "RCPT_REJ" },
    { SMFIP_NR_CONN, "NR_CONN" },
    { SMFIP_NR_HELO, "NR_HELO" },
    { SMFIP_NR_MAIL, "NR_MAIL" },
    { SMFIP_NR_RCPT, "NR_RCPT" },
    { SMFIP_NR_DATA, "NR_DATA" },
    { SMFIP_NR_UNKN, "NR_UNKN" },
    { SMFIP_NR_EOH, "NR_EOH" },
    { SMFIP_NR_BODY, "NR_BODY" },
    { SMFIP_HDR_LEADSPC, "HDR_LEADSPC" },
    { SMFIP_MDS_256K, "MDS_256K" },
    { SMFIP_MDS_1M, "MDS_1M" },
};

static const char *const stage_names[SMFIM_COUNT] = {
    "SMFIM_CONNECT", "SMFIM_HELO", "SMFIM_ENVFROM", "SMFIM_ENVRCPT",
    "SMFIM_DATA",    "SMFIM_EOM",  "SMFIM_EOH",
};

/* lookup - find a code in a name table */
static const char *
lookup(const NameCode *table, gsize n, guint8 code)
{
    for (gsize i = 0; i < n; i++)
        if (table[i].code == code)
            return table[i].name;
    return NULL;
}

/* milter_command_name - SMFIC_* name of an MTA command, or NULL */
const char *
milter_command_name(guint8 code)
{
    return lookup(command_names, G_N_ELEMENTS(command_names), code);
}

/* milter_reply_name - SMFIR_* name of a filter reply, or NULL */
const char *
milter_reply_name(guint8 code)
{
    return lookup(reply_names, G_N_ELEMENTS(reply_names), code);
}

/* milter_code_name - name of a code in the given direction, or NULL */
const char *
milter_code_name(MilterDirection dir, guint8 code)
{
    return dir == MILTER_DIR_COMMAND ? milter_command_name(code) : milter_reply_name(code);
}

/* milter_stage_name - SMFIM_* name of a macro stage, or NULL */
const char *
milter_stage_name(guint32 stage)
{
    return stage < SMFIM_COUNT ? stage_names[stage] : NULL;
}

/* milter_reply_action - the SMFIF_* action a modification reply needs, 0 for others */
guint32
milter_reply_action(guint8 code)
{
    switch (code) {
    case SMFIR_ADDHEADER:
    case SMFIR_INSHEADER:
        return SMFIF_ADDHDRS;
    case SMFIR_CHGHEADER:
        return SMFIF_CHGHDRS;
    case SMFIR_REPLBODY:
        return SMFIF_CHGBODY;
    case SMFIR_CHGFROM:
        return SMFIF_CHGFROM;
    case SMFIR_ADDRCPT:
        return SMFIF_ADDRCPT;
    case SMFIR_ADDRCPT_PAR:
        return SMFIF_ADDRCPT_PAR;
    case SMFIR_DELRCPT:
        return SMFIF_DELRCPT;
    case SMFIR_QUARANTINE:
        return SMFIF_QUARANTINE;
    default:
        return 0;
    }
}

/* flags_to_string - "A|B|0x..." for a flag word; "0" when empty */
static char *
flags_to_string(const FlagName *table, gsize n, guint32 flags)
{
    GString *s = g_string_new(NULL);
    guint32 rest = flags;

    for (gsize i = 0; i < n; i++) {
        if (flags & table[i].bit) {
            if (s->len > 0)
                g_string_append_c(s, '|');
            g_string_append(s, table[i].name);
            rest &= ~table[i].bit;
        }
    }
    if (rest != 0 || s->len == 0) {
        if (s->len > 0)
            g_string_append_c(s, '|');
        g_string_append_printf(s, "0x%x", rest);
    }
    return g_string_free(s, FALSE);
}

/* milter_actions_to_string - SMFIF_* names of an action mask (caller frees) */
char *
milter_actions_to_string(guint32 actions)
{
    return flags_to_string(action_names, G_N_ELEMENTS(action_names), actions);
}

/* milter_protocol_to_string - SMFIP_* names of a protocol mask (caller frees) */
char *
milter_protocol_to_string(guint32 protocol)
{
    return flags_to_string(protocol_names, G_N_ELEMENTS(protocol_names), protocol);
}

/* milter_format_string - append bytes quoted and escaped, listing v1 rules */
void
milter_format_string(GString *out, const guint8 *s, gsize len)
{
    static const char hex[] = "0123456789abcdef";

    g_string_append_c(out, '"');
    for (gsize i = 0; i < len; i++) {
        guint8 c = s[i];

        switch (c) {
        case '\\':
            g_string_append(out, "\\\\");
            break;
        case '"':
            g_string_append(out, "\\\"");
            break;
        case '\r':
            g_string_append(out, "\\r");
            break;
        case '\n':
            g_string_append(out, "\\n");
            break;
        case '\t':
            g_string_append(out, "\\t");
            break;
        default:
            if (c < 0x20 || c >= 0x7f) {
                g_string_append(out, "\\x");
                g_string_append_c(out, hex[c >> 4]);
                g_string_append_c(out, hex[c & 0xf]);
            } else {
                g_string_append_c(out, (char)c);
            }
        }
    }
    g_string_append_c(out, '"');
}

/* Raw data up to this many bytes is shown; longer data by length and hash. */
#define FORMAT_DATA_SHOWN 256

/* format_strings - append argv[from..] as quoted strings */
static void
format_strings(GString *out, const MilterPacket *pkt, gsize from)
{
    for (gsize i = from; i < pkt->argc; i++) {
        g_string_append_c(out, ' ');
        milter_format_string(out, (const guint8 *)pkt->argv[i], strlen(pkt->argv[i]));
    }
}

/* format_body - append raw data as data="..." or len=N sha256=H */
static void
format_body(GString *out, const MilterPacket *pkt)
{
    if (pkt->body_len <= FORMAT_DATA_SHOWN) {
        g_string_append(out, " data=");
        milter_format_string(out, pkt->body, pkt->body_len);
    } else {
        g_autofree char *sum =
            g_compute_checksum_for_data(G_CHECKSUM_SHA256, pkt->body, pkt->body_len);
        g_string_append_printf(out, " len=%" G_GSIZE_FORMAT " sha256=%s", pkt->body_len, sum);
    }
}

/* milter_packet_format - append the one-line listing of a packet (no newline) */
void
milter_packet_format(GString *out, MilterDirection dir, const MilterPacket *pkt)
{
    const char *name = milter_code_name(dir, pkt->code);

    g_string_append(out, dir == MILTER_DIR_COMMAND ? "> " : "< ");
    if (name)
        g_string_append(out, name);
    else
        g_string_append_printf(out, "0x%02x", pkt->code);

    switch (pkt->code) {
    case SMFIC_OPTNEG: /* == SMFIR_OPTNEG */
        g_string_append_printf(out, " version=%u actions=0x%x protocol=0x%x", pkt->version,
                               pkt->actions, pkt->protocol);
        for (gsize i = 0; i < pkt->n_symlists; i++) {
            g_string_append_printf(out, " stage=%u ", pkt->symlists[i].stage);
            milter_format_string(out, (const guint8 *)pkt->symlists[i].macros,
                                 strlen(pkt->symlists[i].macros));
        }
        return;
    default:
        break;
    }

    if (dir == MILTER_DIR_COMMAND) {
        switch (pkt->code) {
        case SMFIC_MACRO:
            if (pkt->macro_cmd >= 0x21 && pkt->macro_cmd <= 0x7e)
                g_string_append_printf(out, " cmd=%c", pkt->macro_cmd);
            else
                g_string_append_printf(out, " cmd=\\x%02x", pkt->macro_cmd);
            format_strings(out, pkt, 0);
            return;
        case SMFIC_CONNECT: /* wire order: hostname, family[, port, address] */
            if (pkt->argc < 1)
                return;
            g_string_append_c(out, ' ');
            milter_format_string(out, (const guint8 *)pkt->argv[0], strlen(pkt->argv[0]));
            g_string_append_printf(out, " family=%c", pkt->family);
            if (pkt->family != SMFIA_UNKNOWN) {
                g_string_append_printf(out, " port=%u", pkt->port);
                format_strings(out, pkt, 1);
            }
            return;
        case SMFIC_BODY:
        case SMFIC_BODYEOB:
            if (pkt->code == SMFIC_BODYEOB && pkt->body_len == 0)
                return;
            format_body(out, pkt);
            return;
        default:
            format_strings(out, pkt, 0);
            return;
        }
    }

    switch (pkt->code) {
    case SMFIR_INSHEADER:
    case SMFIR_CHGHEADER:
        g_string_append_printf(out, " index=%u", pkt->index);
        format_strings(out, pkt, 0);
        return;
    case SMFIR_REPLBODY:
        format_body(out, pkt);
        return;
    default:
        format_strings(out, pkt, 0);
        return;
    }
}
