/* SPDX-License-Identifier: MIT */
/*
 * NAME
 *	noop-milter - a libmilter child that continues at every event (benchmarks)
 * SYNOPSIS
 *	noop-milter SPEC [BACKLOG]
 * DESCRIPTION
 *	The cheapest real milter there is: Sendmail's libmilter with every
 *	callback registered (so the MTA, or shadowd, sends it every event) and
 *	every callback answering SMFIS_CONTINUE without looking at its
 *	arguments. bench/run uses it as the "no-op libmilter child" of issue 7:
 *	the baseline that shadowd's own cost per message is compared with.
 *
 *	SPEC is libmilter's socket form: inet:PORT@HOST, inet6:PORT@HOST or
 *	unix:PATH (local:PATH). BACKLOG is the listen(2) backlog (default
 *	BACKLOG_DEFAULT), so that hundreds of MTA connections can arrive at once.
 *	It writes nothing. It stops on SIGTERM or SIGINT the way libmilter
 *	does (within libmilter's own check interval of a few seconds); the
 *	benchmark runner reads its CPU time from /proc and then kills it.
 * EXIT STATUS
 *	0 after a stop, 64 for a bad command line, 71 when libmilter cannot
 *	open the socket or refuses to start.
 */

/* System library. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Sendmail's libmilter. */
#include <libmilter/mfapi.h>

#define PROGRAM         "noop-milter"
#define BACKLOG_DEFAULT 1024
#define BACKLOG_MAX     65535
#define EXIT_USAGE      64
#define EXIT_OSERR      71

/* noop_connect - xxfi_connect: continue */
static sfsistat
noop_connect(SMFICTX *ctx, char *host, _SOCK_ADDR *addr)
{
    return SMFIS_CONTINUE;
}

/* noop_helo - xxfi_helo: continue */
static sfsistat
noop_helo(SMFICTX *ctx, char *name)
{
    return SMFIS_CONTINUE;
}

/* noop_envelope - xxfi_envfrom and xxfi_envrcpt: continue */
static sfsistat
noop_envelope(SMFICTX *ctx, char **argv)
{
    return SMFIS_CONTINUE;
}

/* noop_header - xxfi_header: continue */
static sfsistat
noop_header(SMFICTX *ctx, char *name, char *value)
{
    return SMFIS_CONTINUE;
}

/* noop_body - xxfi_body: continue */
static sfsistat
noop_body(SMFICTX *ctx, unsigned char *data, size_t len)
{
    return SMFIS_CONTINUE;
}

/* noop_unknown - xxfi_unknown: continue */
static sfsistat
noop_unknown(SMFICTX *ctx, const char *cmd)
{
    return SMFIS_CONTINUE;
}

/* noop_plain - xxfi_eoh, xxfi_eom, xxfi_abort, xxfi_close, xxfi_data: continue */
static sfsistat
noop_plain(SMFICTX *ctx)
{
    return SMFIS_CONTINUE;
}

/* parse_backlog - BACKLOG from the command line, or -1 when it is not 1..BACKLOG_MAX */
static int
parse_backlog(const char *text)
{
    char *end = NULL;
    long v = strtol(text, &end, 10);

    if (end == text || *end != '\0' || v < 1 || v > BACKLOG_MAX)
        return -1;
    return (int)v;
}

/* main - register the no-op callbacks on SPEC and run libmilter */
int
main(int argc, char **argv)
{
    struct smfiDesc desc = {
        .xxfi_name = PROGRAM,
        .xxfi_version = SMFI_VERSION,
        .xxfi_flags = 0,
        .xxfi_connect = noop_connect,
        .xxfi_helo = noop_helo,
        .xxfi_envfrom = noop_envelope,
        .xxfi_envrcpt = noop_envelope,
        .xxfi_header = noop_header,
        .xxfi_eoh = noop_plain,
        .xxfi_body = noop_body,
        .xxfi_eom = noop_plain,
        .xxfi_abort = noop_plain,
        .xxfi_close = noop_plain,
        .xxfi_unknown = noop_unknown,
        .xxfi_data = noop_plain,
    };
    int backlog = BACKLOG_DEFAULT;

    if (argc < 2 || argc > 3 || argv[1][0] == '\0' || strcmp(argv[1], "--help") == 0) {
        fprintf(stderr, "usage: %s SPEC [BACKLOG]   (SPEC: inet:PORT@HOST or unix:PATH)\n",
                PROGRAM);
        return EXIT_USAGE;
    }
    if (argc == 3 && (backlog = parse_backlog(argv[2])) < 0) {
        fprintf(stderr, "%s: BACKLOG '%s': not a number from 1 to %d\n", PROGRAM, argv[2],
                BACKLOG_MAX);
        return EXIT_USAGE;
    }
    if (smfi_setconn(argv[1]) != MI_SUCCESS || smfi_setbacklog(backlog) != MI_SUCCESS ||
        smfi_register(desc) != MI_SUCCESS) {
        fprintf(stderr, "%s: %s: libmilter refused the socket or the registration\n", PROGRAM,
                argv[1]);
        return EXIT_OSERR;
    }
    if (smfi_opensocket(1) != MI_SUCCESS) {
        fprintf(stderr, "%s: %s: cannot open the socket\n", PROGRAM, argv[1]);
        return EXIT_OSERR;
    }
    return smfi_main() == MI_SUCCESS ? 0 : EXIT_OSERR;
}
