/* SPDX-License-Identifier: MIT */
/*
 * NAME
 *	output - shadow-report's text tables, CSV rows and value formatting
 * SYNOPSIS
 *	#include "report.h"
 *
 *	static const char *const head[] = { "milter", "seen", "reject" };
 *	g_autoptr(ReportTable) t = report_table_new(3, head, "lrr");
 *	report_table_add(t, "spamd", "120", "7", NULL);
 *	report_table_print(t, out, "  ");
 * DESCRIPTION
 *	Tables are aligned in columns for a terminal or a cron mail: cells are
 *	measured in characters (UTF-8), and bytes a peer sent that would upset
 *	a terminal (control characters, invalid UTF-8) are shown as '?'. Every
 *	value from the log that goes into text output outside a table passes
 *	through report_clean() or report_clean_keep() first, so a CR or LF in a
 *	reply or an address cannot start a line of its own.
 *	CSV follows RFC 4180: CRLF line ends, a field with a comma, quote, CR or
 *	LF is quoted and its quotes doubled.
 */

/* System library. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

/* Application. */
#include "report.h"

/* Microseconds per millisecond and per second, for durations. */
#define US_PER_MS 1000
#define US_PER_S  1000000

/* ReportTable - rows of text cells, aligned when printed */
struct _ReportTable {
    guint n_cols;
    char **headers;
    char *align;     /* per column: 'l' or 'r' */
    GPtrArray *rows; /* char ** of n_cols cells */
};

/* report_clean - a copy of s fit for one line of text: controls and bad UTF-8 as '?' */
char *
report_clean(const char *s)
{
    g_autofree char *valid = g_utf8_make_valid(s != NULL ? s : "", -1);
    GString *out = g_string_sized_new(strlen(valid));

    for (const char *p = valid; *p != '\0'; p = g_utf8_next_char(p)) {
        gunichar c = g_utf8_get_char(p);

        /* g_utf8_make_valid put U+FFFD for each bad byte. */
        if (c < 0x20 || c == 0x7f || c == 0xfffd || (c >= 0x80 && c < 0xa0))
            g_string_append_c(out, '?');
        else
            g_string_append_unichar(out, c);
    }
    return g_string_free(out, FALSE);
}

/* report_clean_keep - s cleaned as report_clean() does, owned by keep; NULL stays NULL */
const char *
report_clean_keep(GPtrArray *keep, const char *s)
{
    char *clean;

    if (s == NULL)
        return NULL;
    clean = report_clean(s);
    g_ptr_array_add(keep, clean);
    return clean;
}

/* report_table_new - a table with n_cols columns, headers and per-column alignment */
ReportTable *
report_table_new(guint n_cols, const char *const *headers, const char *align)
{
    ReportTable *t = g_new0(ReportTable, 1);

    t->n_cols = n_cols;
    t->headers = g_new0(char *, n_cols + 1);
    for (guint i = 0; i < n_cols; i++)
        t->headers[i] = report_clean(headers[i]);
    t->align = g_strdup(align);
    t->rows = g_ptr_array_new_with_free_func((GDestroyNotify)g_strfreev);
    return t;
}

/* report_table_addv - add a row of n_cols cells (copied) */
void
report_table_addv(ReportTable *t, char **cells)
{
    char **row = g_new0(char *, t->n_cols + 1);

    for (guint i = 0; i < t->n_cols; i++)
        row[i] = report_clean(cells[i]);
    g_ptr_array_add(t->rows, row);
}

/* report_table_add - add a row from n_cols string arguments, then NULL */
void
report_table_add(ReportTable *t, ...)
{
    g_autofree char **cells = g_new0(char *, t->n_cols + 1);
    va_list ap;

    va_start(ap, t);
    for (guint i = 0; i < t->n_cols; i++) {
        cells[i] = va_arg(ap, char *);
        if (cells[i] == NULL)
            break;
    }
    va_end(ap);
    report_table_addv(t, cells);
}

/* pad - append s to out, padded to width characters on the side align says */
static void
pad(GString *out, const char *s, guint width, char align, gboolean last)
{
    glong len = g_utf8_strlen(s, -1);
    guint fill = len < (glong)width ? width - (guint)len : 0;

    if (align == 'r')
        for (guint i = 0; i < fill; i++)
            g_string_append_c(out, ' ');
    g_string_append(out, s);
    if (align != 'r' && !last)
        for (guint i = 0; i < fill; i++)
            g_string_append_c(out, ' ');
}

/* print_row - one table row, columns two spaces apart, no trailing blanks */
static void
print_row(const ReportTable *t, GString *out, const char *indent, char *const *cells,
          const guint *widths)
{
    gsize start = out->len;

    g_string_append(out, indent);
    for (guint i = 0; i < t->n_cols; i++) {
        if (i > 0)
            g_string_append(out, "  ");
        pad(out, cells[i] != NULL ? cells[i] : "", widths[i], t->align[i], i + 1 == t->n_cols);
    }
    while (out->len > start && out->str[out->len - 1] == ' ')
        g_string_truncate(out, out->len - 1);
    g_string_append_c(out, '\n');
}

/* report_table_print - append the table, header first, to out */
void
report_table_print(const ReportTable *t, GString *out, const char *indent)
{
    g_autofree guint *widths = g_new0(guint, t->n_cols);

    for (guint i = 0; i < t->n_cols; i++)
        widths[i] = (guint)g_utf8_strlen(t->headers[i], -1);
    for (guint r = 0; r < t->rows->len; r++) {
        char **row = g_ptr_array_index(t->rows, r);

        for (guint i = 0; i < t->n_cols; i++) {
            guint len = row[i] != NULL ? (guint)g_utf8_strlen(row[i], -1) : 0;

            widths[i] = MAX(widths[i], len);
        }
    }
    print_row(t, out, indent, t->headers, widths);
    for (guint r = 0; r < t->rows->len; r++)
        print_row(t, out, indent, g_ptr_array_index(t->rows, r), widths);
}

/* report_table_free - free a table */
void
report_table_free(ReportTable *t)
{
    if (t == NULL)
        return;
    g_strfreev(t->headers);
    g_free(t->align);
    g_ptr_array_unref(t->rows);
    g_free(t);
}

/* csv_field - append one field with RFC 4180 quoting */
static void
csv_field(GString *out, const char *s)
{
    if (s == NULL)
        s = "";
    if (strpbrk(s, ",\"\r\n") == NULL) {
        g_string_append(out, s);
        return;
    }
    g_string_append_c(out, '"');
    for (const char *p = s; *p != '\0'; p++) {
        if (*p == '"')
            g_string_append_c(out, '"');
        g_string_append_c(out, *p);
    }
    g_string_append_c(out, '"');
}

/* report_csv_rowv - append a CSV record of n fields, CRLF-terminated */
void
report_csv_rowv(GString *out, const char *const *cells, guint n)
{
    for (guint i = 0; i < n; i++) {
        if (i > 0)
            g_string_append_c(out, ',');
        csv_field(out, cells[i]);
    }
    g_string_append(out, "\r\n");
}

/* report_csv_row - append a CSV record from string arguments up to NULL */
void
report_csv_row(GString *out, ...)
{
    va_list ap;
    const char *s;
    gboolean first = TRUE;

    va_start(ap, out);
    while ((s = va_arg(ap, const char *)) != NULL) {
        if (!first)
            g_string_append_c(out, ',');
        csv_field(out, s);
        first = FALSE;
    }
    va_end(ap);
    g_string_append(out, "\r\n");
}

/* report_share_value - count / total, 0 when total is 0 */
double
report_share_value(guint64 count, guint64 total)
{
    return total == 0 ? 0.0 : (double)count / (double)total;
}

/* report_share - count / total as "12.3%", "-" when total is 0 */
char *
report_share(guint64 count, guint64 total)
{
    if (total == 0)
        return g_strdup("-");
    return g_strdup_printf("%.1f%%", 100.0 * report_share_value(count, total));
}

/* report_time_text - ms since the epoch as local "YYYY-MM-DD HH:MM:SS" */
char *
report_time_text(gint64 ms)
{
    g_autoptr(GDateTime) dt = g_date_time_new_from_unix_local(ms / 1000);

    if (ms < 0 || dt == NULL)
        return g_strdup("-");
    return g_date_time_format(dt, "%Y-%m-%d %H:%M:%S");
}

/* report_time_iso - ms since the epoch as RFC 3339 UTC with milliseconds, as the log writes */
char *
report_time_iso(gint64 ms)
{
    g_autoptr(GDateTime) dt = g_date_time_new_from_unix_utc(ms / 1000);
    g_autofree char *base = NULL;

    if (ms < 0 || dt == NULL)
        return NULL;
    base = g_date_time_format(dt, "%Y-%m-%dT%H:%M:%S");
    return g_strdup_printf("%s.%03dZ", base, (int)(ms % 1000));
}

/* report_duration_us - microseconds for people: "512 us", "1.2 ms", "3.40 s" */
char *
report_duration_us(gint64 us)
{
    if (us < 0)
        return g_strdup("-");
    if (us < US_PER_MS)
        return g_strdup_printf("%" G_GINT64_FORMAT " us", us);
    if (us < US_PER_S)
        return g_strdup_printf("%.1f ms", (double)us / US_PER_MS);
    return g_strdup_printf("%.2f s", (double)us / US_PER_S);
}

/* report_footer_text - the lines every text report ends with: span, files, damage */
void
report_footer_text(GString *out, const ReportStats *stats)
{
    g_autofree char *first = report_time_text(stats->first_ms);
    g_autofree char *last = report_time_text(stats->last_ms);
    g_autofree char *joined =
        g_strjoinv(", ", stats->files != NULL ? stats->files : (char *[]){ NULL });
    g_autofree char *files = report_clean(joined);

    g_string_append_printf(out, "\nCovered: %s to %s; %" G_GUINT64_FORMAT " records from %s\n",
                           first, last, stats->records, files);
    g_string_append_printf(out, "Damaged lines: %" G_GUINT64_FORMAT "%s\n", stats->damaged,
                           stats->damaged > 0 ? " (listed on standard error)" : "");
}

/* report_footer_json - "span", "files" and "damaged" members */
void
report_footer_json(ShadowJson *j, const ReportStats *stats)
{
    g_autofree char *first = report_time_iso(stats->first_ms);
    g_autofree char *last = report_time_iso(stats->last_ms);

    shadow_json_object_begin(j, "span");
    shadow_json_str(j, "first", first);
    shadow_json_str(j, "last", last);
    shadow_json_object_end(j);
    shadow_json_array_begin(j, "files");
    for (guint i = 0; i < stats->n_files; i++)
        shadow_json_str(j, NULL, stats->files[i]);
    shadow_json_array_end(j);
    shadow_json_int(j, "records", (gint64)stats->records);
    shadow_json_int(j, "damaged", (gint64)stats->damaged);
}

/* report_or_dash - s, or "-" when NULL */
const char *
report_or_dash(const char *s)
{
    return s != NULL ? s : "-";
}

/* report_addr_bare - "<Alice@Example.COM>" as "alice@example.com"; "<>" stays "<>" */
char *
report_addr_bare(const char *addr)
{
    gsize len;

    if (addr == NULL)
        return g_strdup("-");
    len = strlen(addr);
    if (len >= 2 && addr[0] == '<' && addr[len - 1] == '>') {
        if (len == 2)
            return g_strdup("<>");
        return g_ascii_strdown(addr + 1, (gssize)len - 2);
    }
    return g_ascii_strdown(addr, -1);
}

/* report_addr_domain - the domain of an address, lower case; "<>" for the null sender */
char *
report_addr_domain(const char *addr)
{
    g_autofree char *bare = report_addr_bare(addr);
    const char *at = strrchr(bare, '@');

    if (strcmp(bare, "<>") == 0)
        return g_strdup("<>");
    if (at == NULL)
        return g_strdup("-");
    return g_strdup(at + 1);
}

/* report_write - write out to standard output; text made safe for a terminal first */
void
report_write(GString *out, ReportFormat fmt)
{
    if (fmt == REPORT_FORMAT_TEXT) {
        /* Peers' strings (HELO, replies, addresses) may hold escapes: show them as '?'. */
        char *clean = NULL;
        g_auto(GStrv) lines = g_strsplit(out->str, "\n", -1);

        g_string_truncate(out, 0);
        for (guint i = 0; lines[i] != NULL; i++) {
            clean = report_clean(lines[i]);
            g_string_append(out, clean);
            if (lines[i + 1] != NULL)
                g_string_append_c(out, '\n');
            g_free(clean);
        }
    }
    fwrite(out->str, 1, out->len, stdout);
    fflush(stdout);
}
