/* SPDX-License-Identifier: MIT */
/*
 * NAME
 *	top - shadow-report top: who would have been hurt most
 * SYNOPSIS
 *	shadow-report top [-n N] [options] [--log FILE]... [FILE...]
 * DESCRIPTION
 *	Counts, per milter and for the enforced chain, the messages a would-be
 *	reject, tempfail or discard hit, by sender, sender domain, client
 *	address, recipient and reply text, and prints the N most frequent of
 *	each (ties in key order). Each key counts once per message.
 *
 *	A milter hits a message when its action is reject, tempfail or discard
 *	(every recipient and its reply count) or when it refused recipients at
 *	RCPT (those recipients and their replies count). The chain hits a
 *	message whose predicted outcome is rejected, tempfailed or discarded,
 *	or whose recipients it would partly have refused. Quarantine is not a
 *	hit. A reply the MTA would have chosen is shown as "(default reject)",
 *	"(default tempfail)" or "(discard)".
 *
 *	Shares are of all messages in the range. Memory grows with the number
 *	of distinct keys. The chain is kept apart from the milters in every
 *	format, so a milter named "chain" is not taken for it: text "Enforced
 *	chain" and "Milter NAME", JSON "chain" and "milters", CSV scope "chain"
 *	and "milter:NAME". CSV shares are written with a decimal point whatever
 *	the locale.
 */

/* System library. */
#include <stdlib.h>
#include <string.h>

/* Application. */
#include "report.h"

/* What a top list counts. */
typedef enum {
    KIND_SENDER,
    KIND_DOMAIN,
    KIND_CLIENT,
    KIND_RCPT,
    KIND_REPLY,
    KIND_COUNT,
} TopKind;

static const char *const kind_names[KIND_COUNT] = { "senders", "sender_domains", "clients",
                                                    "recipients", "replies" };
static const char *const kind_titles[KIND_COUNT] = { "sender", "sender domain", "client address",
                                                     "recipient", "reply" };

/* How CSV writes a share: a fraction of 1 with four decimals (g_ascii_formatd, no locale). */
#define CSV_SHARE_FORMAT "%.4f"

/* TopScope - counts for one milter or the chain */
typedef struct {
    char *name;                     /* the milter, or NULL for the chain */
    guint64 hit;                    /* messages hit */
    GHashTable *counts[KIND_COUNT]; /* key -> GUINT_TO_POINTER-free guint64 * count */
} TopScope;

/* Top - the state of the top subcommand */
typedef struct {
    const ReportOptions *opts;
    guint64 messages;
    TopScope chain;
    GPtrArray *milters; /* TopScope * in order of first appearance */
} Top;

/* TopEntry - one key and its count, for sorting */
typedef struct {
    const char *key;
    guint64 count;
} TopEntry;

/* scope_init - empty counters named name (NULL for the chain) */
static void
scope_init(TopScope *s, const char *name)
{
    s->name = g_strdup(name);
    for (guint k = 0; k < KIND_COUNT; k++)
        s->counts[k] = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, g_free);
}

/* scope_clear - free a scope's counters */
static void
scope_clear(TopScope *s)
{
    g_free(s->name);
    for (guint k = 0; k < KIND_COUNT; k++)
        g_clear_pointer(&s->counts[k], g_hash_table_unref);
}

/* scope_free - free a heap TopScope */
static void
scope_free(gpointer p)
{
    scope_clear(p);
    g_free(p);
}

/* scope_get - the scope of a milter, made on first sight */
static TopScope *
scope_get(Top *t, const char *name)
{
    TopScope *s;

    for (guint i = 0; i < t->milters->len; i++) {
        s = g_ptr_array_index(t->milters, i);
        if (strcmp(s->name, name) == 0)
            return s;
    }
    s = g_new0(TopScope, 1);
    scope_init(s, name);
    g_ptr_array_add(t->milters, s);
    return s;
}

/* count_key - count key once for this message (seen holds this message's keys) */
static void
count_key(TopScope *s, TopKind kind, const char *key, GPtrArray *seen)
{
    guint64 *n;

    for (guint i = 0; i < seen->len; i++)
        if (strcmp(g_ptr_array_index(seen, i), key) == 0)
            return;
    g_ptr_array_add(seen, g_strdup(key));
    n = g_hash_table_lookup(s->counts[kind], key);
    if (n == NULL) {
        n = g_new0(guint64, 1);
        g_hash_table_insert(s->counts[kind], g_strdup(key), n);
    }
    (*n)++;
}

/* reply_key - a reply text, or what the MTA would have said */
static const char *
reply_key(ShadowAction action, const char *reply)
{
    if (reply != NULL)
        return reply;
    switch (action) {
    case SHADOW_ACTION_REJECT:
        return "(default reject)";
    case SHADOW_ACTION_TEMPFAIL:
        return "(default tempfail)";
    default:
        return "(discard)";
    }
}

/* outcome_action - the action behind a refusing outcome */
static ShadowAction
outcome_action(ShadowOutcome o)
{
    switch (o) {
    case SHADOW_OUTCOME_REJECTED:
        return SHADOW_ACTION_REJECT;
    case SHADOW_OUTCOME_TEMPFAILED:
        return SHADOW_ACTION_TEMPFAIL;
    default:
        return SHADOW_ACTION_DISCARD;
    }
}

/* hit - count one hit message in a scope */
static void
hit(TopScope *s, const ShadowLogMessage *msg, gboolean whole, ShadowAction action,
    const char *reply, const ShadowLogRcpt *refused, guint n_refused)
{
    g_autoptr(GPtrArray) seen = g_ptr_array_new_with_free_func(g_free);
    g_autofree char *sender = report_addr_bare(msg->from);
    g_autofree char *domain = report_addr_domain(msg->from);

    s->hit++;
    count_key(s, KIND_SENDER, sender, seen);
    g_ptr_array_set_size(seen, 0);
    count_key(s, KIND_DOMAIN, domain, seen);
    g_ptr_array_set_size(seen, 0);
    count_key(s, KIND_CLIENT, report_or_dash(msg->client_addr), seen);
    g_ptr_array_set_size(seen, 0);
    if (whole) {
        for (guint i = 0; i < msg->n_rcpts; i++) {
            g_autofree char *r = report_addr_bare(msg->rcpts[i]);

            count_key(s, KIND_RCPT, r, seen);
        }
    }
    for (guint i = 0; i < n_refused; i++) {
        g_autofree char *r = report_addr_bare(refused[i].rcpt);

        count_key(s, KIND_RCPT, r, seen);
    }
    g_ptr_array_set_size(seen, 0);
    if (whole)
        count_key(s, KIND_REPLY, reply_key(action, reply), seen);
    for (guint i = 0; i < n_refused; i++)
        count_key(s, KIND_REPLY, reply_key(refused[i].action, refused[i].reply), seen);
}

/* top_record - ReportRecordFunc: count the hits of one message */
static void
top_record(const ShadowLogRecord *rec, gpointer data)
{
    Top *t = data;
    const ShadowLogMessage *msg = &rec->message;
    gboolean whole;

    if (rec->kind != SHADOW_LOG_MESSAGE)
        return;
    t->messages++;
    whole = msg->outcome == SHADOW_OUTCOME_REJECTED || msg->outcome == SHADOW_OUTCOME_TEMPFAILED ||
            msg->outcome == SHADOW_OUTCOME_DISCARDED;
    if (whole || msg->n_refused > 0)
        hit(&t->chain, msg, whole, outcome_action(msg->outcome), msg->reply, msg->refused,
            msg->n_refused);
    for (guint i = 0; i < msg->n_verdicts; i++) {
        const ShadowLogVerdict *v = &msg->verdicts[i];
        TopScope *s;

        if (!report_milter_selected(t->opts, v->milter))
            continue;
        s = scope_get(t, v->milter);
        whole = shadow_action_is_refusal(v->action);
        if (whole || v->n_rcpts > 0)
            hit(s, msg, whole, v->action, v->reply, v->rcpts, v->n_rcpts);
    }
}

/* entry_cmp - count descending, then key */
static int
entry_cmp(const void *a, const void *b)
{
    const TopEntry *x = a, *y = b;

    if (x->count != y->count)
        return x->count > y->count ? -1 : 1;
    return strcmp(x->key, y->key);
}

/* sorted - a scope's entries of one kind, most frequent first */
static GArray *
sorted(const TopScope *s, TopKind kind)
{
    GArray *a = g_array_new(FALSE, FALSE, sizeof(TopEntry));
    GHashTableIter it;
    gpointer key, value;

    g_hash_table_iter_init(&it, s->counts[kind]);
    while (g_hash_table_iter_next(&it, &key, &value)) {
        TopEntry e = { key, *(guint64 *)value };

        g_array_append_val(a, e);
    }
    if (a->len > 1)
        qsort(a->data, a->len, sizeof(TopEntry), entry_cmp);
    return a;
}

/* text_scope - one scope's lists */
static void
text_scope(GString *out, const TopScope *s, guint n, guint64 messages)
{
    g_autofree char *title =
        s->name == NULL ? g_strdup("Enforced chain") : g_strdup_printf("Milter %s", s->name);
    g_autofree char *clean = report_clean(title);

    g_string_append_printf(out, "\n%s: %" G_GUINT64_FORMAT " message%s hit\n", clean, s->hit,
                           s->hit == 1 ? "" : "s");
    for (guint k = 0; k < KIND_COUNT; k++) {
        g_autoptr(GArray) a = sorted(s, (TopKind)k);
        const char *heads[] = { kind_titles[k], "messages", "share" };
        g_autoptr(ReportTable) t = report_table_new(3, heads, "lrr");

        if (a->len == 0)
            continue;
        for (guint i = 0; i < a->len && i < n; i++) {
            const TopEntry *e = &g_array_index(a, TopEntry, i);
            g_autofree char *count = g_strdup_printf("%" G_GUINT64_FORMAT, e->count);
            g_autofree char *share = report_share(e->count, messages);

            report_table_add(t, e->key, count, share, NULL);
        }
        g_string_append_c(out, '\n');
        report_table_print(t, out, "  ");
    }
}

/* json_scope - one scope's object, as member key */
static void
json_scope(ShadowJson *j, const char *key, const TopScope *s, guint n)
{
    shadow_json_object_begin(j, key);
    shadow_json_int(j, "hit", (gint64)s->hit);
    for (guint k = 0; k < KIND_COUNT; k++) {
        g_autoptr(GArray) a = sorted(s, (TopKind)k);

        shadow_json_array_begin(j, kind_names[k]);
        for (guint i = 0; i < a->len && i < n; i++) {
            const TopEntry *e = &g_array_index(a, TopEntry, i);

            shadow_json_object_begin(j, NULL);
            shadow_json_str(j, "key", e->key);
            shadow_json_int(j, "count", (gint64)e->count);
            shadow_json_object_end(j);
        }
        shadow_json_array_end(j);
    }
    shadow_json_object_end(j);
}

/* csv_scope - one scope's rows: scope ("chain" or "milter:NAME"),kind,rank,key,count,share */
static void
csv_scope(GString *out, const TopScope *s, guint n, guint64 messages)
{
    g_autofree char *scope =
        s->name == NULL ? g_strdup("chain") : g_strdup_printf("milter:%s", s->name);

    for (guint k = 0; k < KIND_COUNT; k++) {
        g_autoptr(GArray) a = sorted(s, (TopKind)k);

        for (guint i = 0; i < a->len && i < n; i++) {
            const TopEntry *e = &g_array_index(a, TopEntry, i);
            g_autofree char *rank = g_strdup_printf("%u", i + 1);
            g_autofree char *count = g_strdup_printf("%" G_GUINT64_FORMAT, e->count);
            char share[G_ASCII_DTOSTR_BUF_SIZE];

            g_ascii_formatd(share, sizeof(share), CSV_SHARE_FORMAT,
                            report_share_value(e->count, messages));
            report_csv_row(out, scope, kind_names[k], rank, e->key, count, share, NULL);
        }
    }
}

/* print_top - the report in the chosen format */
static void
print_top(GString *out, const Top *t, guint n, const ReportStats *st)
{
    if (t->opts->fmt == REPORT_FORMAT_JSON) {
        ShadowJson j;

        shadow_json_begin(&j, out);
        shadow_json_int(&j, "messages", (gint64)t->messages);
        shadow_json_int(&j, "n", n);
        json_scope(&j, "chain", &t->chain, n);
        shadow_json_object_begin(&j, "milters");
        for (guint i = 0; i < t->milters->len; i++) {
            const TopScope *s = g_ptr_array_index(t->milters, i);

            json_scope(&j, s->name, s, n);
        }
        shadow_json_object_end(&j);
        report_footer_json(&j, st);
        shadow_json_end(&j);
        g_string_append_c(out, '\n');
    } else if (t->opts->fmt == REPORT_FORMAT_CSV) {
        report_csv_row(out, "scope", "kind", "rank", "key", "messages", "share", NULL);
        csv_scope(out, &t->chain, n, t->messages);
        for (guint i = 0; i < t->milters->len; i++)
            csv_scope(out, g_ptr_array_index(t->milters, i), n, t->messages);
    } else {
        g_string_append_printf(out,
                               "shadow-report top: the %u most often hit by a would-be reject, "
                               "tempfail or discard\n(share of all %" G_GUINT64_FORMAT
                               " messages)\n",
                               n, t->messages);
        text_scope(out, &t->chain, n, t->messages);
        for (guint i = 0; i < t->milters->len; i++)
            text_scope(out, g_ptr_array_index(t->milters, i), n, t->messages);
        report_footer_text(out, st);
    }
}

/* report_top - the top subcommand */
int
report_top(int argc, char **argv)
{
    g_autoptr(GOptionContext) ctx =
        g_option_context_new("[FILE...] - who would have been hurt most");
    ReportOptions opts = { 0 };
    ReportStats st = { 0 };
    int n = REPORT_DEFAULT_TOP;
    const GOptionEntry entries[] = {
        { "number", 'n', 0, G_OPTION_ARG_INT, &n, "Rows per list (default 10)", "N" },
        { NULL, 0, 0, 0, NULL, NULL, NULL },
    };
    Top t = { 0 };
    g_autoptr(GError) error = NULL;
    g_autoptr(GString) out = g_string_new(NULL);
    int rc;

    g_option_context_add_main_entries(ctx, entries, NULL);
    g_option_context_set_summary(ctx, "Senders, sender domains, client addresses, recipients and "
                                      "reply texts most often hit by a\nwould-be reject, tempfail "
                                      "or discard, per milter and for the enforced chain.");
    rc = report_parse_args(ctx, &argc, &argv, &opts);
    if (rc != REPORT_EXIT_OK)
        goto done;
    if (n < 1) {
        g_printerr("shadow-report: -n: want a positive number of rows, not %d\n", n);
        rc = REPORT_EXIT_USAGE;
        goto done;
    }
    report_options_add_files(&opts, argc, argv, 1);
    t.opts = &opts;
    scope_init(&t.chain, NULL);
    t.milters = g_ptr_array_new_with_free_func(scope_free);
    if (!report_read(&opts, top_record, &t, &st, &error)) {
        g_printerr("shadow-report: %s\n", error->message);
        rc = report_exit_code(error);
        goto done;
    }
    print_top(out, &t, (guint)n, &st);
    report_write(out, opts.fmt);
done:
    scope_clear(&t.chain);
    g_clear_pointer(&t.milters, g_ptr_array_unref);
    report_stats_clear(&st);
    report_options_clear(&opts);
    return rc;
}
