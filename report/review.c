/* SPDX-License-Identifier: MIT */
/*
 * NAME
 *	review - shadow-report review: would-be-blocked mail that looks wanted
 * SYNOPSIS
 *	shadow-report review [--allow FILE] [--trusted CIDR]... [--all] [options] [FILE...]
 * DESCRIPTION
 *	Lists, for a person to check for false positives, the messages the
 *	enforced chain would have blocked (rejected, tempfailed, discarded,
 *	quarantined, or delivered with some recipients refused) that carry a
 *	sign of wanted mail:
 *
 *	auth       the sender authenticated (message "auth" not null);
 *	trusted    the client address is in a --trusted network (IPv4 or
 *	           IPv6; Sendmail's "IPv6:" prefix is ignored);
 *	allowed    the sender address or its domain is on the --allow list;
 *	disagree   one milter refused it (reject, tempfail, discard) while
 *	           another accepted or continued it without refusing a
 *	           recipient or holding it.
 *
 *	The allow list has one entry a line: an address (alice@example.com)
 *	or a domain (@example.com, which also covers its subdomains); "#"
 *	starts a comment. With --milter only messages one of those milters
 *	refused are listed. --all lists blocked messages without a sign too.
 */

/* System library. */
#include <string.h>

/* GLib. */
#include <gio/gio.h>

/* Application. */
#include "report.h"

/* Longest allow-list line accepted. */
#define ALLOW_MAX_LINE 1024

/* Review - the state of the review subcommand */
typedef struct {
    const ReportOptions *opts;
    GHashTable *allow_addrs;  /* lower-case addresses */
    GPtrArray *allow_domains; /* lower-case domains */
    GPtrArray *trusted;       /* GInetAddressMask * */
    gboolean all;
    guint64 messages;
    guint64 blocked;
    guint64 listed;
    guint64 signs[4]; /* auth, trusted, allowed, disagree */
    GString *out;
    ShadowJson json;
} Review;

static const char *const sign_names[4] = { "auth", "trusted", "allowed", "disagree" };

/* load_allow - read the allow list; FALSE with an error naming file and line */
static gboolean
load_allow(Review *rv, const char *path, GError **error)
{
    g_autofree char *text = NULL;
    g_auto(GStrv) lines = NULL;
    g_autoptr(GError) local = NULL;

    if (!g_file_get_contents(path, &text, NULL, &local)) {
        g_set_error(error, REPORT_ERROR, REPORT_ERROR_RUNTIME, "--allow: %s", local->message);
        return FALSE;
    }
    lines = g_strsplit(text, "\n", -1);
    for (guint i = 0; lines[i] != NULL; i++) {
        char *hash = strchr(lines[i], '#');
        char *entry;
        g_autofree char *lower = NULL;

        if (hash != NULL)
            *hash = '\0';
        entry = g_strstrip(lines[i]);
        if (entry[0] == '\0')
            continue;
        if (strlen(entry) > ALLOW_MAX_LINE || strchr(entry, ' ') != NULL ||
            strchr(entry, '\t') != NULL || strchr(entry, '@') == NULL ||
            entry[strlen(entry) - 1] == '@') {
            g_set_error(error, REPORT_ERROR, REPORT_ERROR_RUNTIME,
                        "%s:%u: not an address or @domain: \"%s\"", path, i + 1, entry);
            return FALSE;
        }
        if (entry[0] == '<' && entry[strlen(entry) - 1] == '>') {
            entry[strlen(entry) - 1] = '\0';
            entry++;
        }
        lower = g_ascii_strdown(entry, -1);
        if (lower[0] == '@')
            g_ptr_array_add(rv->allow_domains, g_strdup(lower + 1));
        else
            g_hash_table_add(rv->allow_addrs, g_steal_pointer(&lower));
    }
    return TRUE;
}

/* load_trusted - parse the --trusted networks; FALSE with a usage error */
static gboolean
load_trusted(Review *rv, char **cidrs, GError **error)
{
    for (guint i = 0; cidrs != NULL && cidrs[i] != NULL; i++) {
        g_autoptr(GError) local = NULL;
        GInetAddressMask *mask = g_inet_address_mask_new_from_string(cidrs[i], &local);

        if (mask == NULL) {
            g_set_error(error, REPORT_ERROR, REPORT_ERROR_USAGE,
                        "--trusted: bad network \"%s\" (want ADDRESS[/LENGTH], IPv4 or IPv6)",
                        cidrs[i]);
            return FALSE;
        }
        g_ptr_array_add(rv->trusted, mask);
    }
    return TRUE;
}

/* is_trusted - is the client address in a trusted network? */
static gboolean
is_trusted(const Review *rv, const char *client)
{
    g_autoptr(GInetAddress) addr = NULL;
    g_autofree char *bare = NULL;
    gsize len;

    if (client == NULL || rv->trusted->len == 0)
        return FALSE;
    if (g_ascii_strncasecmp(client, "IPv6:", 5) == 0)
        client += 5;
    bare = g_strdup(client);
    len = strlen(bare);
    if (len >= 2 && bare[0] == '[' && bare[len - 1] == ']') {
        bare[len - 1] = '\0';
        memmove(bare, bare + 1, len - 1);
    }
    addr = g_inet_address_new_from_string(bare);
    if (addr == NULL)
        return FALSE;
    for (guint i = 0; i < rv->trusted->len; i++) {
        GInetAddressMask *mask = g_ptr_array_index(rv->trusted, i);

        if (g_inet_address_get_family(addr) == g_inet_address_mask_get_family(mask) &&
            g_inet_address_mask_matches(mask, addr))
            return TRUE;
    }
    return FALSE;
}

/* is_allowed - is the sender or its domain (or a parent domain) on the allow list? */
static gboolean
is_allowed(const Review *rv, const char *from)
{
    g_autofree char *bare = report_addr_bare(from);
    const char *at = strrchr(bare, '@');

    if (g_hash_table_contains(rv->allow_addrs, bare))
        return TRUE;
    if (at == NULL)
        return FALSE;
    for (guint i = 0; i < rv->allow_domains->len; i++) {
        const char *d = g_ptr_array_index(rv->allow_domains, i);
        const char *dom = at + 1;
        gsize dl = strlen(d), l = strlen(dom);

        if (strcmp(dom, d) == 0 ||
            (l > dl && dom[l - dl - 1] == '.' && strcmp(dom + l - dl, d) == 0))
            return TRUE;
    }
    return FALSE;
}

/* disagrees - did one milter refuse while another let it pass untouched? */
static gboolean
disagrees(const ShadowLogMessage *m)
{
    gboolean refused = FALSE, passed = FALSE;

    for (guint i = 0; i < m->n_verdicts; i++) {
        const ShadowLogVerdict *v = &m->verdicts[i];

        if (shadow_action_is_refusal(v->action))
            refused = TRUE;
        else if ((v->action == SHADOW_ACTION_ACCEPT || v->action == SHADOW_ACTION_CONTINUE) &&
                 v->n_rcpts == 0 && v->quarantine == NULL)
            passed = TRUE;
    }
    return refused && passed;
}

/* selected_refusal - with --milter: did one of those milters refuse it? */
static gboolean
selected_refusal(const Review *rv, const ShadowLogMessage *m)
{
    if (rv->opts->milters == NULL || rv->opts->milters[0] == NULL)
        return TRUE;
    for (guint i = 0; i < m->n_verdicts; i++) {
        const ShadowLogVerdict *v = &m->verdicts[i];

        if (report_milter_selected(rv->opts, v->milter) &&
            (shadow_action_is_refusal(v->action) || v->n_rcpts > 0 || v->quarantine != NULL))
            return TRUE;
    }
    return FALSE;
}

/* refusers - "spamd:reject,dkim:tempfail" of the milters that refused or held */
static char *
refusers(const ShadowLogMessage *m)
{
    GString *s = g_string_new(NULL);

    for (guint i = 0; i < m->n_verdicts; i++) {
        const ShadowLogVerdict *v = &m->verdicts[i];
        const char *what = NULL;

        if (shadow_action_is_refusal(v->action))
            what = shadow_action_name(v->action);
        else if (v->n_rcpts > 0)
            what = "rcpt";
        else if (v->quarantine != NULL)
            what = "quarantine";
        if (what != NULL)
            g_string_append_printf(s, "%s%s:%s", s->len > 0 ? "," : "", v->milter, what);
    }
    return g_string_free(s, FALSE);
}

/* text_message - one listed message for people; every value from the log cleaned to one line */
static void
text_message(GString *out, const ShadowLogMessage *m, const char *by, const char *signs)
{
    g_autoptr(GPtrArray) keep = g_ptr_array_new_with_free_func(g_free);
    g_autoptr(GString) rcpts = g_string_new(NULL);
    g_autofree char *when = report_time_text(m->ts_ms);
    const char *outcome =
        m->outcome == SHADOW_OUTCOME_DELIVERED ? "partly refused" : shadow_outcome_name(m->outcome);

    for (guint i = 0; i < m->n_rcpts; i++)
        g_string_append_printf(rcpts, "%s%s", i > 0 ? " " : "",
                               report_clean_keep(keep, m->rcpts[i]));
    g_string_append_printf(out, "\n%s  %s  %s\n", when,
                           report_or_dash(report_clean_keep(keep, m->queue_id)),
                           report_or_dash(report_clean_keep(keep, m->message_id)));
    g_string_append_printf(out, "  from %s to %s\n",
                           report_or_dash(report_clean_keep(keep, m->from)), rcpts->str);
    g_string_append_printf(
        out, "  client %s %s%s%s\n", report_or_dash(report_clean_keep(keep, m->client_name)),
        report_or_dash(report_clean_keep(keep, m->client_addr)), m->auth != NULL ? ", auth " : "",
        m->auth != NULL ? report_clean_keep(keep, m->auth) : "");
    g_string_append_printf(out, "  %s%s%s; refused by %s\n", outcome,
                           m->decided_by != NULL ? " by " : "",
                           m->decided_by != NULL ? report_clean_keep(keep, m->decided_by) : "",
                           report_clean_keep(keep, by));
    g_string_append_printf(out, "  signs: %s\n", signs[0] != '\0' ? signs : "none");
}

/* review_record - ReportRecordFunc: list a blocked message with signs of wanted mail */
static void
review_record(const ShadowLogRecord *rec, gpointer data)
{
    Review *rv = data;
    const ShadowLogMessage *m = &rec->message;
    gboolean sign[4];
    g_autoptr(GString) signs = g_string_new(NULL);
    g_autofree char *by = NULL;
    g_autofree char *ts = NULL;
    g_autoptr(GString) rcpts = g_string_new(NULL);
    gboolean any = FALSE;

    if (rec->kind != SHADOW_LOG_MESSAGE)
        return;
    rv->messages++;
    if (m->outcome == SHADOW_OUTCOME_DELIVERED && m->n_refused == 0)
        return;
    if (!selected_refusal(rv, m))
        return;
    rv->blocked++;
    sign[0] = m->auth != NULL;
    sign[1] = is_trusted(rv, m->client_addr);
    sign[2] = is_allowed(rv, m->from);
    sign[3] = disagrees(m);
    for (guint i = 0; i < 4; i++) {
        if (!sign[i])
            continue;
        any = TRUE;
        rv->signs[i]++;
        g_string_append_printf(signs, "%s%s", signs->len > 0 ? "," : "", sign_names[i]);
    }
    if (!any && !rv->all)
        return;
    rv->listed++;
    by = refusers(m);
    ts = report_time_iso(m->ts_ms);
    for (guint i = 0; i < m->n_rcpts; i++)
        g_string_append_printf(rcpts, "%s%s", i > 0 ? " " : "", m->rcpts[i]);
    if (rv->opts->fmt == REPORT_FORMAT_JSON) {
        shadow_json_object_begin(&rv->json, NULL);
        shadow_json_str(&rv->json, "ts", ts);
        shadow_json_str(&rv->json, "host", m->host);
        shadow_json_str(&rv->json, "queue_id", m->queue_id);
        shadow_json_str(&rv->json, "message_id", m->message_id);
        shadow_json_str(&rv->json, "from", m->from);
        shadow_json_array_begin(&rv->json, "rcpts");
        for (guint i = 0; i < m->n_rcpts; i++)
            shadow_json_str(&rv->json, NULL, m->rcpts[i]);
        shadow_json_array_end(&rv->json);
        shadow_json_str(&rv->json, "client_addr", m->client_addr);
        shadow_json_str(&rv->json, "auth", m->auth);
        shadow_json_str(&rv->json, "outcome", shadow_outcome_name(m->outcome));
        shadow_json_str(&rv->json, "decided_by", m->decided_by);
        shadow_json_str(&rv->json, "refused_by", by);
        shadow_json_array_begin(&rv->json, "signs");
        for (guint i = 0; i < 4; i++)
            if (sign[i])
                shadow_json_str(&rv->json, NULL, sign_names[i]);
        shadow_json_array_end(&rv->json);
        shadow_json_object_end(&rv->json);
    } else if (rv->opts->fmt == REPORT_FORMAT_CSV) {
        const char *cells[] = { ts,
                                m->host,
                                m->queue_id,
                                m->message_id,
                                m->from,
                                rcpts->str,
                                m->client_addr,
                                m->auth,
                                shadow_outcome_name(m->outcome),
                                m->decided_by,
                                by,
                                signs->str };

        report_csv_rowv(rv->out, cells, G_N_ELEMENTS(cells));
    } else {
        text_message(rv->out, m, by, signs->str);
    }
}

/* finish - the head (text), the totals and the footer */
static void
finish(Review *rv, GString *out, const ReportStats *st)
{
    if (rv->opts->fmt == REPORT_FORMAT_JSON) {
        shadow_json_array_end(&rv->json);
        shadow_json_int(&rv->json, "messages_total", (gint64)rv->messages);
        shadow_json_int(&rv->json, "blocked", (gint64)rv->blocked);
        shadow_json_int(&rv->json, "listed", (gint64)rv->listed);
        shadow_json_object_begin(&rv->json, "signs");
        for (guint i = 0; i < 4; i++)
            shadow_json_int(&rv->json, sign_names[i], (gint64)rv->signs[i]);
        shadow_json_object_end(&rv->json);
        report_footer_json(&rv->json, st);
        shadow_json_end(&rv->json);
        g_string_append_c(out, '\n');
    } else if (rv->opts->fmt == REPORT_FORMAT_TEXT) {
        g_autoptr(GString) head = g_string_new(NULL);

        g_string_append_printf(head,
                               "shadow-report review: %" G_GUINT64_FORMAT " of %" G_GUINT64_FORMAT
                               " would-be-blocked messages (of %" G_GUINT64_FORMAT
                               ") to check for false positives\n",
                               rv->listed, rv->blocked, rv->messages);
        g_string_append_printf(head,
                               "signs: auth %" G_GUINT64_FORMAT ", trusted %" G_GUINT64_FORMAT
                               ", allowed %" G_GUINT64_FORMAT ", disagree %" G_GUINT64_FORMAT "\n",
                               rv->signs[0], rv->signs[1], rv->signs[2], rv->signs[3]);
        g_string_prepend(out, head->str);
        report_footer_text(out, st);
    }
}

/* report_review - the review subcommand */
int
report_review(int argc, char **argv)
{
    g_autoptr(GOptionContext) ctx =
        g_option_context_new("[FILE...] - would-be-blocked mail that looks wanted");
    ReportOptions opts = { 0 };
    ReportStats st = { 0 };
    g_autofree char *allow = NULL;
    g_auto(GStrv) trusted = NULL;
    Review rv = { 0 };
    const GOptionEntry entries[] = {
        { "allow", 'a', 0, G_OPTION_ARG_FILENAME, &allow,
          "Allow list: addresses or @domains, one a line, # comments", "FILE" },
        { "trusted", 't', 0, G_OPTION_ARG_STRING_ARRAY, &trusted,
          "Trusted client network (repeatable; IPv4 or IPv6)", "CIDR" },
        { "all", 0, 0, G_OPTION_ARG_NONE, &rv.all, "List blocked messages without a sign too",
          NULL },
        { NULL, 0, 0, 0, NULL, NULL, NULL },
    };
    g_autoptr(GError) error = NULL;
    g_autoptr(GString) out = g_string_new(NULL);
    int rc;

    g_option_context_add_main_entries(ctx, entries, NULL);
    g_option_context_set_summary(
        ctx, "Would-be-blocked messages with signs of wanted mail (authenticated sender,\n"
             "trusted client network, allow-listed sender or domain, milters disagreeing).");
    rc = report_parse_args(ctx, &argc, &argv, &opts);
    if (rc != REPORT_EXIT_OK)
        goto done;
    report_options_add_files(&opts, argc, argv, 1);
    rv.opts = &opts;
    rv.out = out;
    rv.allow_addrs = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
    rv.allow_domains = g_ptr_array_new_with_free_func(g_free);
    rv.trusted = g_ptr_array_new_with_free_func(g_object_unref);
    if (!load_trusted(&rv, trusted, &error) || (allow != NULL && !load_allow(&rv, allow, &error))) {
        g_printerr("shadow-report: %s\n", error->message);
        rc = report_exit_code(error);
        goto done;
    }
    if (opts.fmt == REPORT_FORMAT_JSON) {
        shadow_json_begin(&rv.json, out);
        shadow_json_array_begin(&rv.json, "messages");
    } else if (opts.fmt == REPORT_FORMAT_CSV) {
        report_csv_row(out, "ts", "host", "queue_id", "message_id", "from", "rcpts", "client_addr",
                       "auth", "outcome", "decided_by", "refused_by", "signs", NULL);
    }
    if (!report_read(&opts, review_record, &rv, &st, &error)) {
        g_printerr("shadow-report: %s\n", error->message);
        rc = report_exit_code(error);
        goto done;
    }
    finish(&rv, out, &st);
    report_write(out, opts.fmt);
done:
    g_clear_pointer(&rv.allow_addrs, g_hash_table_unref);
    g_clear_pointer(&rv.allow_domains, g_ptr_array_unref);
    g_clear_pointer(&rv.trusted, g_ptr_array_unref);
    report_stats_clear(&st);
    report_options_clear(&opts);
    return rc;
}
