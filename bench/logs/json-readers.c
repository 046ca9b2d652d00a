/* SPDX-License-Identifier: MIT */
/*
 * NAME
 *	json-readers - read one event log with several JSON readers and compare speed
 * SYNOPSIS
 *	json-readers [--repeat R] [--only NAME,...] FILE
 * DESCRIPTION
 *	Reads FILE (an event log, docs/event-log.md) once per pass with each
 *	reader: "lines" (line splitting only, the floor), json-glib, json-c,
 *	jansson and, when built with -DHAVE_SHADOW_LOGREAD, the project's own
 *	lib/shadow_logread (shadow_log_reader_next over the file). Every reader
 *	does the same task per record: the record type, its time (ts, parsed
 *	to milliseconds), and for verdicts the milter and action, for
 *	messages the outcome. The library readers parse each line into their
 *	document tree, as a program using them would; shadow_logread hands a
 *	message with its verdicts attached, which counts as the same records.
 *
 *	The passes are interleaved (every reader once, R times over; default
 *	3). Each reader's best wall time gives lines per second and MB per
 *	second; its best wall and CPU (user and system) times are also given
 *	as ratios to the fastest JSON reader's. CPU time is the steadier one
 *	on a machine shared with other work. A checksum of what each reader
 *	extracted must be the same for all of them, else the run fails: a
 *	reader that skips work cannot win.
 */

/* Build configuration: HAVE_SHADOW_LOGREAD comes from the compile command. */

/* System library. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

/* Application-specific. */
#include "json-readers.h"

#ifdef HAVE_SHADOW_LOGREAD
/* Shadow libraries. */
#include "shadow_logread.h"
#endif

/* Passes per reader by default (the best one counts). */
#define JR_DEFAULT_REPEAT 3
/* Bytes per megabyte in the MB/s column. */
#define JR_MB (1024.0 * 1024.0)

/* JrReader - one reader: name and the function that reads the file */
typedef struct {
    const char *name;
    gboolean (*read)(const char *path, JrSum *sum, GError **error);
} JrReader;

/* jr_hash_str - FNV-1a of a string (NULL hashes as empty) */
guint64
jr_hash_str(const char *s)
{
    guint64 h = 0xcbf29ce484222325ULL;

    for (; s && *s; s++)
        h = (h ^ (guchar)*s) * 0x100000001b3ULL;
    return h;
}

/* digits - n decimal digits at s as a number; -1 if one is not a digit */
static int
digits(const char *s, int n)
{
    int v = 0;

    for (int i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        v = v * 10 + (s[i] - '0');
    }
    return v;
}

/* days_from_civil - days since 1970-01-01 of a proleptic Gregorian date */
static gint64
days_from_civil(int y, int m, int d)
{
    int era, yoe, doy, doe;

    y -= m <= 2;
    era = (y >= 0 ? y : y - 399) / 400;
    yoe = y - era * 400;
    doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return (gint64)era * 146097 + doe - 719468;
}

/* parse_ts - "2026-12-03T21:43:28.654Z" to milliseconds since the epoch; -1 if not */
static gint64
parse_ts(const char *s)
{
    int y, mo, d, h, mi, se, ms;

    if (s == NULL || strlen(s) != 24 || s[4] != '-' || s[7] != '-' || s[10] != 'T' ||
        s[13] != ':' || s[16] != ':' || s[19] != '.' || s[23] != 'Z')
        return -1;
    y = digits(s, 4), mo = digits(s + 5, 2), d = digits(s + 8, 2);
    h = digits(s + 11, 2), mi = digits(s + 14, 2), se = digits(s + 17, 2), ms = digits(s + 20, 3);
    if (y < 0 || mo < 1 || d < 1 || h < 0 || mi < 0 || se < 0 || ms < 0)
        return -1;
    return ((days_from_civil(y, mo, d) * 24 + h) * 60 + mi) * 60000 + se * 1000 + ms;
}

/* jr_add_record - account one record the way every reader must */
void
jr_add_record(JrSum *sum, const char *type, const char *ts, const char *milter, const char *action,
              const char *outcome)
{
    gint64 ms = parse_ts(ts);

    sum->ts_sum += (guint64)ms;
    if (g_strcmp0(type, "connection") == 0) {
        sum->connections++;
    } else if (g_strcmp0(type, "verdict") == 0) {
        sum->verdicts++;
        sum->milter_hash += jr_hash_str(milter);
        sum->actions[jr_hash_str(action) % G_N_ELEMENTS(sum->actions)]++;
    } else if (g_strcmp0(type, "message") == 0) {
        sum->messages++;
        sum->outcomes[jr_hash_str(outcome) % G_N_ELEMENTS(sum->outcomes)]++;
    }
}

/* jr_lines_open - open path for line reading */
gboolean
jr_lines_open(JrLines *l, const char *path, GError **error)
{
    memset(l, 0, sizeof(*l));
    l->f = fopen(path, "r");
    if (l->f == NULL) {
        g_set_error(error, G_FILE_ERROR, g_file_error_from_errno(errno), "%s: %s", path,
                    g_strerror(errno));
        return FALSE;
    }
    l->iobuf = g_malloc(JR_IO_BUFFER);
    setvbuf(l->f, l->iobuf, _IOFBF, JR_IO_BUFFER);
    return TRUE;
}

/* jr_lines_next - the next line without its newline, its length in *len; NULL at the end */
char *
jr_lines_next(JrLines *l, gsize *len)
{
    ssize_t n = getline(&l->line, &l->cap, l->f);

    if (n < 0)
        return NULL;
    if (n > 0 && l->line[n - 1] == '\n')
        l->line[--n] = '\0';
    *len = (gsize)n;
    return l->line;
}

/* jr_lines_close - close and free */
void
jr_lines_close(JrLines *l)
{
    if (l->f)
        fclose(l->f);
    free(l->line);
    g_free(l->iobuf);
}

/* read_lines - the floor: split lines, parse nothing */
static gboolean
read_lines(const char *path, JrSum *sum, GError **error)
{
    JrLines l;
    gsize len;

    if (!jr_lines_open(&l, path, error))
        return FALSE;
    while (jr_lines_next(&l, &len) != NULL)
        sum->lines++;
    jr_lines_close(&l);
    return TRUE;
}

#ifdef HAVE_SHADOW_LOGREAD
/* add_ms - like add_record, from a reader that parsed the time already */
static void
add_ms(JrSum *sum, gint64 ms)
{
    sum->ts_sum += (guint64)ms;
}

/* read_shadow_logread - the project's reader: messages come with their verdicts */
static gboolean
read_shadow_logread(const char *path, JrSum *sum, GError **error)
{
    g_autoptr(ShadowLogReader) r = shadow_log_reader_new();
    const ShadowLogRecord *rec;

    if (!shadow_log_reader_add(r, path, error))
        return FALSE;
    while ((rec = shadow_log_reader_next(r, error)) != NULL) {
        if (rec->kind == SHADOW_LOG_CONNECTION) {
            sum->lines++;
            sum->connections++;
            add_ms(sum, rec->connection.ts_ms);
            continue;
        }
        for (guint i = 0; i < rec->message.n_verdicts; i++) {
            const ShadowLogVerdict *v = &rec->message.verdicts[i];

            sum->lines++;
            sum->verdicts++;
            add_ms(sum, v->ts_ms);
            sum->milter_hash += jr_hash_str(v->milter);
            sum->actions[jr_hash_str(shadow_action_name(v->action)) % G_N_ELEMENTS(sum->actions)]++;
        }
        sum->lines++;
        sum->messages++;
        add_ms(sum, rec->message.ts_ms);
        sum->outcomes[jr_hash_str(shadow_outcome_name(rec->message.outcome)) %
                      G_N_ELEMENTS(sum->outcomes)]++;
    }
    sum->lines += shadow_log_reader_damaged(r);
    return *error == NULL;
}
#endif

static const JrReader readers[] = {
    { "lines", read_lines },
    { "json-glib", jr_read_json_glib },
    { "json-c", jr_read_json_c },
    { "jansson", jr_read_jansson },
#ifdef HAVE_SHADOW_LOGREAD
    { "shadow_logread", read_shadow_logread },
#endif
};

/* wanted - is reader name in the comma list only (NULL: all)? */
static gboolean
wanted(const char *only, const char *name)
{
    g_auto(GStrv) names = NULL;

    if (only == NULL)
        return TRUE;
    names = g_strsplit(only, ",", -1);
    return g_strv_contains((const char *const *)names, name);
}

/* same_sum - did two readers extract the same (lines excepted for "lines") */
static gboolean
same_sum(const JrSum *a, const JrSum *b)
{
    JrSum x = *a, y = *b;

    x.lines = y.lines = 0;
    return memcmp(&x, &y, sizeof(x)) == 0 && a->lines == b->lines;
}

/* cpu_now - CPU seconds (user and system) this process has used */
static double
cpu_now(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* run_reader - one pass; keeps the best wall and CPU time so far; FALSE on a read error */
static gboolean
run_reader(const JrReader *rd, const char *path, JrSum *sum, double *best_s, double *best_cpu,
           GError **error)
{
    JrSum s = { 0 };
    gint64 t0 = g_get_monotonic_time();
    double c0 = cpu_now(), dt, dc;

    if (!rd->read(path, &s, error))
        return FALSE;
    dt = (g_get_monotonic_time() - t0) / 1e6;
    dc = cpu_now() - c0;
    if (*best_s < 0 || dt < *best_s)
        *best_s = dt;
    if (*best_cpu < 0 || dc < *best_cpu)
        *best_cpu = dc;
    *sum = s;
    return TRUE;
}

/* fastest_of - the least of the JSON readers' times (the "lines" floor excepted) */
static double
fastest_of(guint n, const char *const *names, const double *t)
{
    double fastest = -1;

    for (guint i = 0; i < n; i++)
        if (strcmp(names[i], "lines") != 0 && (fastest < 0 || t[i] < fastest))
            fastest = t[i];
    return fastest;
}

/* report - the table, ratios to the fastest JSON reader by wall and by CPU time */
static void
report(const char *path, guint64 bytes, guint n, const char *const *names, const JrSum *sums,
       const double *secs, const double *cpu)
{
    double fastest = fastest_of(n, names, secs), fastest_cpu = fastest_of(n, names, cpu);

    printf("json-readers: %s: %" G_GUINT64_FORMAT " lines, %.1f MB\n", path, sums[0].lines,
           bytes / JR_MB);
    printf("%-16s %9s %9s %11s %8s %12s %11s\n", "reader", "wall s", "CPU s", "lines/s", "MB/s",
           "wall/fastest", "CPU/fastest");
    for (guint i = 0; i < n; i++)
        printf("%-16s %9.3f %9.3f %11.0f %8.1f %12.2f %11.2f\n", names[i], secs[i], cpu[i],
               sums[i].lines / secs[i], bytes / JR_MB / secs[i],
               fastest > 0 ? secs[i] / fastest : 0.0, fastest_cpu > 0 ? cpu[i] / fastest_cpu : 0.0);
}

/* main - run the readers over FILE and print the table */
int
main(int argc, char **argv)
{
    int repeat = JR_DEFAULT_REPEAT;
    g_autofree char *only = NULL;
    GOptionEntry entries[] = {
        { "repeat", 'r', 0, G_OPTION_ARG_INT, &repeat, "passes per reader, best counts (3)", "R" },
        { "only", 0, 0, G_OPTION_ARG_STRING, &only, "readers to run, comma-separated", "NAMES" },
        { NULL },
    };
    g_autoptr(GOptionContext) ctx = g_option_context_new("FILE");
    g_autoptr(GError) error = NULL;
    JrSum sums[G_N_ELEMENTS(readers)];
    double secs[G_N_ELEMENTS(readers)], cpu[G_N_ELEMENTS(readers)];
    const JrReader *run[G_N_ELEMENTS(readers)];
    const char *names[G_N_ELEMENTS(readers)];
    guint n = 0;
    gboolean agree = TRUE;
    struct stat st;

    g_option_context_add_main_entries(ctx, entries, NULL);
    if (!g_option_context_parse(ctx, &argc, &argv, &error) || argc != 2 || repeat < 1) {
        fprintf(stderr, "json-readers: %s\n", error ? error->message : "need one FILE, -r >= 1");
        return 2;
    }
    if (stat(argv[1], &st) != 0) {
        fprintf(stderr, "json-readers: %s: %s\n", argv[1], g_strerror(errno));
        return 1;
    }
    for (guint i = 0; i < G_N_ELEMENTS(readers); i++)
        if (wanted(only, readers[i].name)) {
            run[n] = &readers[i];
            names[n] = readers[i].name;
            secs[n] = cpu[n] = -1;
            n++;
        }
    if (n == 0) {
        fprintf(stderr, "json-readers: --only %s: no such reader\n", only);
        return 2;
    }
    /* Passes interleaved, so a change of load on the machine hits every reader alike. */
    for (int k = 0; k < repeat; k++)
        for (guint i = 0; i < n; i++)
            if (!run_reader(run[i], argv[1], &sums[i], &secs[i], &cpu[i], &error)) {
                fprintf(stderr, "json-readers: %s: %s\n", names[i], error->message);
                return 1;
            }
    report(argv[1], (guint64)st.st_size, n, names, sums, secs, cpu);
    for (guint i = 0; i < n; i++) {
        if (strcmp(names[i], "lines") == 0)
            continue;
        for (guint k = i + 1; k < n; k++)
            if (strcmp(names[k], "lines") != 0 && !same_sum(&sums[i], &sums[k])) {
                fprintf(stderr,
                        "json-readers: %s and %s extracted different data: "
                        "records %" G_GUINT64_FORMAT "/%" G_GUINT64_FORMAT "/%" G_GUINT64_FORMAT
                        " vs %" G_GUINT64_FORMAT "/%" G_GUINT64_FORMAT "/%" G_GUINT64_FORMAT
                        ", ts sum %" G_GUINT64_FORMAT " vs %" G_GUINT64_FORMAT "\n",
                        names[i], names[k], sums[i].connections, sums[i].verdicts, sums[i].messages,
                        sums[k].connections, sums[k].verdicts, sums[k].messages, sums[i].ts_sum,
                        sums[k].ts_sum);
                agree = FALSE;
            }
    }
    printf("json-readers: extracted data %s\n", agree ? "identical for all readers" : "DIFFER");
    return agree ? 0 : 1;
}
