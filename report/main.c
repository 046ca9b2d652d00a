/* SPDX-License-Identifier: MIT */
/*
 * NAME
 *	shadow-report - the trial's answers from shadowd's event log
 * SYNOPSIS
 *	shadow-report SUBCOMMAND [options] [--log FILE]... [FILE...]
 *	SUBCOMMAND: summary, top, explain ID, review, whatif MILTER[,MILTER...]
 * DESCRIPTION
 *	Picks the subcommand and hands it the rest of the command line; each
 *	subcommand parses its own options (--help on each). The locale is the
 *	user's except LC_NUMERIC, which stays "C": numbers are written with a
 *	decimal point. See shadow-report(1).
 */

/* System library. */
#include <locale.h>
#include <stdio.h>
#include <string.h>

/* Application. */
#include "report.h"

/* ReportCommand - a subcommand and its one-line description */
typedef struct {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *what;
} ReportCommand;

static const ReportCommand commands[] = {
    { "summary", report_summary, "totals, per milter, chain outcome, per hour/day, latency" },
    { "top", report_top, "senders, domains, clients, recipients, replies most often refused" },
    { "explain", report_explain, "everything about one message (queue ID or Message-ID)" },
    { "review", report_review, "would-be-blocked mail with signs of wanted mail" },
    { "whatif", report_whatif, "what enforcing only some milters, in an order, would have done" },
};

/* usage - the list of subcommands, to out */
static void
usage(FILE *out)
{
    fprintf(out, "Usage: shadow-report SUBCOMMAND [options] [--log FILE]... [FILE...]\n\n"
                 "Subcommands:\n");
    for (gsize i = 0; i < G_N_ELEMENTS(commands); i++)
        fprintf(out, "  %-8s %s\n", commands[i].name, commands[i].what);
    fprintf(out, "\n\"shadow-report SUBCOMMAND --help\" lists its options.\n");
}

/* main - dispatch to the subcommand */
int
main(int argc, char **argv)
{
    setlocale(LC_ALL, "");
    /* Numbers in JSON and CSV (and text, for one look everywhere) take a decimal point,
     * whatever the locale's LC_NUMERIC says. */
    setlocale(LC_NUMERIC, "C");
    if (argc < 2) {
        usage(stderr);
        return REPORT_EXIT_USAGE;
    }
    if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 ||
        strcmp(argv[1], "help") == 0) {
        usage(stdout);
        return REPORT_EXIT_OK;
    }
    for (gsize i = 0; i < G_N_ELEMENTS(commands); i++)
        if (strcmp(argv[1], commands[i].name) == 0)
            return commands[i].run(argc - 1, argv + 1);
    fprintf(stderr, "shadow-report: unknown subcommand \"%s\"\n", argv[1]);
    usage(stderr);
    return REPORT_EXIT_USAGE;
}
