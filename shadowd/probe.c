/* SPDX-License-Identifier: MIT */
/*
 * NAME
 *	probe - shadowd --probe: negotiate with each child and say what it wants
 * DESCRIPTION
 *	Connects to every enabled child in turn, offers what Postfix 3.7
 *	offers (version 6, every action, every protocol bit), prints the
 *	child's answer in words (events it wants, replies it will not send,
 *	actions, macros per stage) or why it failed, and quits. The same
 *	ShadowConn and decoder as the daemon, on a private loop per child.
 */

/* Build configuration. */
#include "config.h"

/* System library. */
#include <stdio.h>

/* Application-specific. */
#include "conn.h"
#include "probe.h"
#include "shadowd.h"

/* Probe - one child's probe */
typedef struct {
    const ShadowMilterConfig *cfg;
    GMainLoop *loop;
    ShadowConn *conn;
    MilterDecoder *decoder;
    gboolean ok;
    char *why;
    guint timer; /* the answer's deadline; 0 once it fired */
} Probe;

/* event names for the NO and NR bits, in protocol order */
static const struct {
    const char *event;
    guint32 no, nr;
} events[] = {
    { "connect", SMFIP_NOCONNECT, SMFIP_NR_CONN }, { "helo", SMFIP_NOHELO, SMFIP_NR_HELO },
    { "mail", SMFIP_NOMAIL, SMFIP_NR_MAIL },       { "rcpt", SMFIP_NORCPT, SMFIP_NR_RCPT },
    { "data", SMFIP_NODATA, SMFIP_NR_DATA },       { "unknown", SMFIP_NOUNKNOWN, SMFIP_NR_UNKN },
    { "header", SMFIP_NOHDRS, SMFIP_NR_HDR },      { "eoh", SMFIP_NOEOH, SMFIP_NR_EOH },
    { "body", SMFIP_NOBODY, SMFIP_NR_BODY },
};

/* print_reply - the child's SMFIR_OPTNEG in words */
static void
print_reply(const ShadowMilterConfig *cfg, const MilterPacket *pkt)
{
    g_autofree char *actions = milter_actions_to_string(pkt->actions);
    g_autofree char *protocol = milter_protocol_to_string(pkt->protocol);
    GString *wants = g_string_new(NULL), *noreply = g_string_new(NULL);

    for (gsize i = 0; i < G_N_ELEMENTS(events); i++) {
        if (!(pkt->protocol & events[i].no))
            g_string_append_printf(wants, "%s%s", wants->len ? " " : "", events[i].event);
        if (pkt->protocol & events[i].nr)
            g_string_append_printf(noreply, "%s%s", noreply->len ? " " : "", events[i].event);
    }
    printf("milter %s (%s): ok\n", cfg->name, cfg->connect.spec);
    printf("  version   %u\n", pkt->version);
    printf("  actions   %s\n", actions);
    printf("  protocol  %s\n", protocol);
    printf("  events    %s eom\n", wants->str);
    printf("  no reply  %s\n", noreply->len ? noreply->str : "(none)");
    printf("  skip      %s\n", pkt->protocol & SMFIP_SKIP ? "yes" : "no");
    printf("  leadspace %s\n", pkt->protocol & SMFIP_HDR_LEADSPC ? "yes" : "no");
    for (gsize i = 0; i < pkt->n_symlists; i++) {
        const char *stage = milter_stage_name(pkt->symlists[i].stage);

        printf("  macros    %s: %s\n", stage ? stage : "?", pkt->symlists[i].macros);
    }
    if (pkt->n_symlists == 0)
        printf("  macros    (the MTA's defaults)\n");
    g_string_free(wants, TRUE);
    g_string_free(noreply, TRUE);
}

/* probe_done - stop the probe's loop with a result */
static void
probe_done(Probe *p, gboolean ok, const char *why)
{
    p->ok = ok;
    if (why && p->why == NULL)
        p->why = g_strdup(why);
    g_main_loop_quit(p->loop);
}

/* probe_data - the child's answer */
static void
probe_data(ShadowConn *c, const guint8 *buf, gsize len, gpointer user)
{
    Probe *p = user;

    while (len > 0) {
        g_autoptr(GError) error = NULL;
        MilterPacket pkt;
        gsize used;
        MilterDecodeStatus st = milter_decoder_feed(p->decoder, buf, len, &used, &pkt, &error);

        buf += used;
        len -= used;
        if (st == MILTER_DECODE_FAILED) {
            probe_done(p, FALSE, error->message);
            return;
        }
        if (st == MILTER_DECODE_PACKET) {
            if (pkt.code == SMFIR_OPTNEG) {
                GByteArray *out = g_byte_array_new();

                print_reply(p->cfg, &pkt);
                milter_encode_empty(out, SMFIC_QUIT);
                shadow_conn_write(c, out->data, out->len);
                g_byte_array_unref(out);
                probe_done(p, TRUE, NULL);
            } else {
                g_autofree char *why =
                    g_strdup_printf("answered with %s", milter_reply_name(pkt.code));

                probe_done(p, FALSE, why);
            }
            return;
        }
    }
}

/* probe_event - connected (send the offer), closed or failed */
static void
probe_event(ShadowConn *c, ShadowConnEvent ev, const GError *error, gpointer user)
{
    Probe *p = user;
    GByteArray *out;

    switch (ev) {
    case SHADOW_CONN_CONNECTED:
        out = g_byte_array_new();
        milter_encode_optneg(out, SMFIC_OPTNEG, MILTER_PROTO_VERSION, SMFI_CURR_ACTS,
                             SMFI_CURR_PROT, NULL, 0);
        shadow_conn_write(c, out->data, out->len);
        g_byte_array_unref(out);
        return;
    case SHADOW_CONN_CLOSED:
        probe_done(p, FALSE, "closed the connection during negotiation");
        return;
    case SHADOW_CONN_FAILED:
        probe_done(p, FALSE, error ? error->message : "failed");
        return;
    }
}

/* probe_timeout - no answer in time */
static gboolean
probe_timeout(gpointer user)
{
    Probe *p = user;

    p->timer = 0; /* removed by returning G_SOURCE_REMOVE */
    probe_done(p, FALSE, "no answer to SMFIC_OPTNEG in time");
    return G_SOURCE_REMOVE;
}

/* shadow_probe - probe every enabled child; TRUE if all answered */
gboolean
shadow_probe(const ShadowConfig *config)
{
    static const ShadowConnFuncs funcs = { probe_data, probe_event };
    gboolean all = TRUE;

    if (config->milters->len == 0)
        printf("no [milter] groups configured\n");
    for (guint i = 0; i < config->milters->len; i++) {
        const ShadowMilterConfig *cfg = g_ptr_array_index(config->milters, i);
        Probe p = { cfg, g_main_loop_new(NULL, FALSE), NULL, NULL, FALSE, NULL, 0 };
        g_autoptr(GError) error = NULL;

        if (!cfg->enabled) {
            printf("milter %s (%s): disabled\n", cfg->name, cfg->connect.spec);
            g_main_loop_unref(p.loop);
            continue;
        }
        p.decoder = milter_decoder_new(MILTER_DIR_REPLY, 0);
        p.conn = shadow_conn_connect(&cfg->connect, cfg->connect_timeout_ms, &funcs, &p, &error);
        if (p.conn == NULL) {
            p.why = g_strdup(error->message);
        } else {
            p.timer =
                g_timeout_add(cfg->connect_timeout_ms + cfg->command_timeout_ms, probe_timeout, &p);
            g_main_loop_run(p.loop);
            if (p.timer != 0)
                g_source_remove(p.timer);
            shadow_conn_close(p.conn);
            shadow_conn_unref(p.conn);
        }
        if (!p.ok) {
            printf("milter %s (%s): failed: %s\n", cfg->name, cfg->connect.spec, p.why);
            all = FALSE;
        }
        g_free(p.why);
        milter_decoder_free(p.decoder);
        g_main_loop_unref(p.loop);
    }
    return all;
}
