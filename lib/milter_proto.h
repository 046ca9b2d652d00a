/* SPDX-License-Identifier: MIT */
/*
 * NAME
 *	milter_proto - Sendmail milter protocol version 6: constants, packets, names
 * SYNOPSIS
 *	#include "milter_proto.h"
 * DESCRIPTION
 *	Our own definitions of the wire protocol, with Sendmail's names, so that
 *	the project builds without libmilter (as Postfix's milter8.c does).
 *	Values are from Sendmail's include/libmilter/mfdef.h and mfapi.h; see
 *	docs/milter-protocol.md in the shared notes for where each comes from.
 *
 *	MilterPacket is one decoded packet of either direction. Its pointers
 *	refer to memory owned by whoever produced it (the decoder, until its
 *	next call); see milter_decode.h.
 */
#ifndef SHADOW_MILTER_PROTO_H
#define SHADOW_MILTER_PROTO_H

/* GLib. */
#include <glib.h>

G_BEGIN_DECLS

/* Protocol version this code speaks. */
#define MILTER_PROTO_VERSION 6

/*
 * Size limits. A packet is a 4-byte big-endian length, a command byte and
 * length-1 data bytes. libmilter refuses packets with more than
 * MILTER_MAX_DATA_SIZE data bytes; MTAs split bodies into chunks of at most
 * MILTER_CHUNK_SIZE. MILTER_DATA_MAX_DEFAULT, the decoder's default limit, sits
 * just above that, so every packet libmilter may send passes and anything
 * larger is refused before a byte of it is buffered.
 */
#define MILTER_LEN_SIZE         4
#define MILTER_CHUNK_SIZE       65535
#define MILTER_MAX_DATA_SIZE    65535
#define MILTER_DATA_MAX_DEFAULT (MILTER_MAX_DATA_SIZE + 1)
/* Hard ceiling on any configured limit: Postfix's INT_MAX/2, far above need. */
#define MILTER_DATA_MAX_CEILING (G_MAXINT / 2)

/* MTA to filter commands (SMFIC_*). */
#define SMFIC_ABORT   'A' /* abort the current message */
#define SMFIC_BODY    'B' /* body chunk */
#define SMFIC_CONNECT 'C' /* connection information */
#define SMFIC_MACRO   'D' /* macros for the next command */
#define SMFIC_BODYEOB 'E' /* end of body (end of message) */
#define SMFIC_HELO    'H' /* HELO/EHLO argument */
#define SMFIC_QUIT_NC 'K' /* quit, keep the connection for a new CONNECT */
#define SMFIC_HEADER  'L' /* one header */
#define SMFIC_MAIL    'M' /* MAIL FROM and its ESMTP arguments */
#define SMFIC_EOH     'N' /* end of headers */
#define SMFIC_OPTNEG  'O' /* option negotiation */
#define SMFIC_QUIT    'Q' /* quit */
#define SMFIC_RCPT    'R' /* RCPT TO and its ESMTP arguments */
#define SMFIC_DATA    'T' /* DATA */
#define SMFIC_UNKNOWN 'U' /* unknown SMTP command */

/* Filter to MTA replies (SMFIR_*). */
#define SMFIR_ADDRCPT     '+' /* add recipient */
#define SMFIR_DELRCPT     '-' /* delete recipient */
#define SMFIR_ADDRCPT_PAR '2' /* add recipient with ESMTP arguments */
#define SMFIR_SHUTDOWN    '4' /* 421: shut down (internal to the MTA) */
#define SMFIR_ACCEPT      'a' /* accept */
#define SMFIR_REPLBODY    'b' /* replace body (chunk) */
#define SMFIR_CONTINUE    'c' /* continue */
#define SMFIR_DISCARD     'd' /* discard the message */
#define SMFIR_CHGFROM     'e' /* change envelope sender */
#define SMFIR_CONN_FAIL   'f' /* cause a connection failure (defined only) */
#define SMFIR_ADDHEADER   'h' /* add header */
#define SMFIR_INSHEADER   'i' /* insert header */
#define SMFIR_SETSYMLIST  'l' /* set symbol list (defined only) */
#define SMFIR_CHGHEADER   'm' /* change or delete header */
#define SMFIR_PROGRESS    'p' /* progress, keep-alive */
#define SMFIR_QUARANTINE  'q' /* quarantine the message */
#define SMFIR_REJECT      'r' /* reject */
#define SMFIR_SKIP        's' /* skip further events of this kind */
#define SMFIR_TEMPFAIL    't' /* tempfail */
#define SMFIR_REPLYCODE   'y' /* reply with an explicit SMTP reply */
#define SMFIR_OPTNEG      'O' /* option negotiation reply */

/* Action flags (SMFIF_*), what a filter may do at end of message. */
#define SMFIF_NONE        0x000U
#define SMFIF_ADDHDRS     0x001U /* add (and insert) headers */
#define SMFIF_CHGBODY     0x002U /* replace the body */
#define SMFIF_MODBODY     SMFIF_CHGBODY
#define SMFIF_ADDRCPT     0x004U /* add recipients */
#define SMFIF_DELRCPT     0x008U /* delete recipients */
#define SMFIF_CHGHDRS     0x010U /* change or delete headers */
#define SMFIF_QUARANTINE  0x020U /* quarantine */
#define SMFIF_CHGFROM     0x040U /* change the envelope sender */
#define SMFIF_ADDRCPT_PAR 0x080U /* add recipients with ESMTP arguments */
#define SMFIF_SETSYMLIST  0x100U /* request macros */
#define SMFI_V1_ACTS      0x00FU
#define SMFI_V2_ACTS      0x03FU
#define SMFI_CURR_ACTS    0x1FFU

/* Protocol flags (SMFIP_*): NO-event, no-reply and "yes" capability bits. */
#define SMFIP_NOCONNECT   0x00000001U /* do not send CONNECT */
#define SMFIP_NOHELO      0x00000002U /* do not send HELO */
#define SMFIP_NOMAIL      0x00000004U /* do not send MAIL */
#define SMFIP_NORCPT      0x00000008U /* do not send RCPT */
#define SMFIP_NOBODY      0x00000010U /* do not send BODY */
#define SMFIP_NOHDRS      0x00000020U /* do not send HEADER */
#define SMFIP_NOEOH       0x00000040U /* do not send EOH */
#define SMFIP_NR_HDR      0x00000080U /* no reply to HEADER */
#define SMFIP_NOHREPL     SMFIP_NR_HDR
#define SMFIP_NOUNKNOWN   0x00000100U /* do not send UNKNOWN */
#define SMFIP_NODATA      0x00000200U /* do not send DATA */
#define SMFIP_SKIP        0x00000400U /* the MTA understands SMFIR_SKIP */
#define SMFIP_RCPT_REJ    0x00000800U /* also send rejected RCPTs */
#define SMFIP_NR_CONN     0x00001000U /* no reply to CONNECT */
#define SMFIP_NR_HELO     0x00002000U /* no reply to HELO */
#define SMFIP_NR_MAIL     0x00004000U /* no reply to MAIL */
#define SMFIP_NR_RCPT     0x00008000U /* no reply to RCPT */
#define SMFIP_NR_DATA     0x00010000U /* no reply to DATA */
#define SMFIP_NR_UNKN     0x00020000U /* no reply to UNKNOWN */
#define SMFIP_NR_EOH      0x00040000U /* no reply to EOH */
#define SMFIP_NR_BODY     0x00080000U /* no reply to BODY */
#define SMFIP_HDR_LEADSPC 0x00100000U /* header values keep their leading space */
#define SMFIP_MDS_256K    0x10000000U /* FFR: 256K-1 byte packets */
#define SMFIP_MDS_1M      0x20000000U /* FFR: 1M-1 byte packets */
#define SMFI_INTERNAL     0x70000000U
#define SMFI_V1_PROT      0x0000003FU
#define SMFI_V2_PROT      0x0000007FU
#define SMFI_CURR_PROT    0x001FFFFFU

/* Macro stages (SMFIM_*) as numbered on the wire: EOM before EOH. */
#define SMFIM_CONNECT 0U
#define SMFIM_HELO    1U
#define SMFIM_ENVFROM 2U
#define SMFIM_ENVRCPT 3U
#define SMFIM_DATA    4U
#define SMFIM_EOM     5U
#define SMFIM_EOH     6U
#define SMFIM_COUNT   7U

/* CONNECT address families. */
#define SMFIA_UNKNOWN 'U' /* unknown: no port, no address follow */
#define SMFIA_UNIX    'L' /* unix socket: port 0 and a path */
#define SMFIA_INET    '4' /* IPv4 */
#define SMFIA_INET6   '6' /* IPv6 */

/* MilterDirection - which side sent a stream of packets */
typedef enum {
    MILTER_DIR_COMMAND, /* MTA to filter: SMFIC_* */
    MILTER_DIR_REPLY,   /* filter to MTA: SMFIR_* */
} MilterDirection;

/* MilterSymlist - one macro request in an SMFIR_OPTNEG reply */
typedef struct {
    guint32 stage;      /* SMFIM_*; unknown stages are kept as sent */
    const char *macros; /* names separated by spaces or commas, as sent */
} MilterSymlist;

/*
 * MilterPacket - one packet of either direction.
 *
 * Which fields carry what depends on code (other fields are zero/NULL):
 *
 *	code				scalars			argv
 *	SMFIC_OPTNEG, SMFIR_OPTNEG	version actions protocol
 *					symlists (reply only)
 *	SMFIC_MACRO			macro_cmd		name, value, ...
 *	SMFIC_CONNECT			family port		hostname[, address]
 *	SMFIC_HELO, SMFIC_UNKNOWN					the string
 *	SMFIC_MAIL, SMFIC_RCPT						address, ESMTP args...
 *	SMFIC_HEADER, SMFIR_ADDHEADER					name, value
 *	SMFIR_INSHEADER, SMFIR_CHGHEADER	index			name, value
 *	SMFIR_REPLYCODE, SMFIR_ADDRCPT, SMFIR_DELRCPT, SMFIR_QUARANTINE	the string
 *	SMFIR_CHGFROM, SMFIR_ADDRCPT_PAR				address[, args]
 *	SMFIC_BODY, SMFIC_BODYEOB, SMFIR_REPLBODY	body, body_len
 *	everything else			no fields
 *
 * Strings are NUL-terminated and may contain any other byte.
 */
typedef struct {
    guint8 code;                   /* SMFIC_* or SMFIR_* */
    guint32 version;               /* OPTNEG */
    guint32 actions;               /* OPTNEG: SMFIF_* */
    guint32 protocol;              /* OPTNEG: SMFIP_* */
    const MilterSymlist *symlists; /* SMFIR_OPTNEG macro requests */
    gsize n_symlists;
    guint8 macro_cmd;        /* SMFIC_MACRO: the command the macros belong to */
    guint8 family;           /* SMFIC_CONNECT: SMFIA_* */
    guint16 port;            /* SMFIC_CONNECT: host byte order */
    guint32 index;           /* SMFIR_INSHEADER, SMFIR_CHGHEADER */
    const char *const *argv; /* string fields in wire order */
    gsize argc;
    const guint8 *body; /* raw data of BODY, BODYEOB, REPLBODY */
    gsize body_len;
} MilterPacket;

const char *milter_command_name(guint8 code);
const char *milter_reply_name(guint8 code);
const char *milter_code_name(MilterDirection dir, guint8 code);
const char *milter_stage_name(guint32 stage);
char *milter_actions_to_string(guint32 actions);
guint32 milter_reply_action(guint8 code);
char *milter_protocol_to_string(guint32 protocol);
void milter_packet_format(GString *out, MilterDirection dir, const MilterPacket *pkt);
void milter_format_string(GString *out, const guint8 *s, gsize len);

G_END_DECLS

#endif /* SHADOW_MILTER_PROTO_H */
