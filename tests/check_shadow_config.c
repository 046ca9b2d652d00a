/* SPDX-License-Identifier: MIT */
/*
 * NAME
 *	check_shadow_config - Check suite for shadowd.conf and its value forms
 * DESCRIPTION
 *	defaults: shadow_config_new_default() against the header's list; an
 *	empty file and files of comments only give the defaults; the shipped
 *	conf/shadowd.conf loads as shipped, with every "#key = value" line
 *	uncommented (and then still gives the defaults), and with its example
 *	[milter NAME] group uncommented too. values: tables of durations,
 *	sizes, addresses in all their forms, and of every key's accepted
 *	values; a file that sets every key. errors: a table of bad files,
 *	each with its exact message and code; bad addresses; a missing file.
 *
 *	Test files are written at run time into a g_dir_make_tmp() directory
 *	that each test's teardown removes. CONF_DIR names the source tree's
 *	conf/ directory.
 */

/* System library. */
#include <stdlib.h>
#include <string.h>
#include <syslog.h>

/* GLib. */
#include <glib.h>
#include <glib/gstdio.h>

/* Check. */
#include <check.h>

/* Shadow libraries. */
#include "shadow_config.h"

#ifndef CONF_DIR
#error "CONF_DIR must be defined: -DCONF_DIR='\"$(abs_top_srcdir)/conf\"'"
#endif
#define SHIPPED_CONF CONF_DIR "/shadowd.conf"

/* The keys conf/shadowd.conf must show, as in shadow_config.h. */
static const char *const shadowd_key_names[] = {
    "listen",      "event_log",    "pid_file",        "syslog_facility", "syslog_ident",
    "socket_mode", "socket_owner", "max_connections", "spool_memory",    "spool_memory_total",
    "spool_dir",   "max_message",  "backlog",         "reply",           "content",
    "host",        "user",         "group",           "allow_root",
};
static const char *const milter_key_names[] = {
    "connect", "enabled", "connect_timeout", "command_timeout", "eom_timeout",
};

/* The temporary directory of the running test. */
static char *tmp_dir;

/* setup - a fresh temporary directory for the test's files */
static void
setup(void)
{
    GError *error = NULL;

    tmp_dir = g_dir_make_tmp("check_shadow_config-XXXXXX", &error);
    ck_assert_msg(tmp_dir != NULL, "g_dir_make_tmp: %s", error ? error->message : "?");
}

/* teardown - remove the temporary directory and the files in it */
static void
teardown(void)
{
    GDir *dir = g_dir_open(tmp_dir, 0, NULL);
    const char *name;

    while (dir != NULL && (name = g_dir_read_name(dir)) != NULL) {
        g_autofree char *path = g_build_filename(tmp_dir, name, NULL);

        g_unlink(path);
    }
    if (dir != NULL)
        g_dir_close(dir);
    g_rmdir(tmp_dir);
    g_clear_pointer(&tmp_dir, g_free);
}

/* write_conf - write len bytes of text (-1: all of it) to tmp_dir/name; the path */
static char *
write_conf(const char *name, const char *text, gssize len)
{
    g_autoptr(GError) error = NULL;
    char *path = g_build_filename(tmp_dir, name, NULL);

    ck_assert_msg(g_file_set_contents(path, text, len, &error), "write %s: %s", path,
                  error ? error->message : "?");
    return path;
}

/* load_ok - write text to a file and load it; the test fails on an error */
static ShadowConfig *
load_ok(const char *name, const char *text)
{
    g_autofree char *path = write_conf(name, text, -1);
    g_autoptr(GError) error = NULL;
    ShadowConfig *config = shadow_config_load(path, &error);

    ck_assert_msg(config != NULL, "%s: load: got error \"%s\", want success; text:\n%s", name,
                  error ? error->message : "(none)", text);
    ck_assert_ptr_null(error);
    ck_assert_str_eq(config->path, path);
    return config;
}

/* read_shipped - the text of conf/shadowd.conf */
static char *
read_shipped(void)
{
    g_autoptr(GError) error = NULL;
    char *text = NULL;

    ck_assert_msg(g_file_get_contents(SHIPPED_CONF, &text, NULL, &error), "read %s: %s",
                  SHIPPED_CONF, error ? error->message : "?");
    return text;
}

/* uncomment - drop the comment marker matched by pattern (a lookahead) from each line */
static char *
uncomment(const char *text, const char *pattern)
{
    g_autoptr(GRegex) re = g_regex_new(pattern, G_REGEX_MULTILINE, 0, NULL);

    ck_assert_ptr_nonnull(re);
    return g_regex_replace_literal(re, text, -1, 0, "", 0, NULL);
}

/* Every "#key = value" line of the [shadowd] group; an empty value counts. */
#define UNCOMMENT_KEYS "^#(?=[a-z_]+ =( |$))"
/* The example [milter NAME] group: "# [milter NAME]" and "# key = value". */
#define UNCOMMENT_EXAMPLE "^# (?=\\[milter [A-Za-z0-9._-]+\\]$|[a-z_]+ = )"

/* kind_name - a ShadowAddressKind as text */
static const char *
kind_name(ShadowAddressKind kind)
{
    switch (kind) {
    case SHADOW_ADDRESS_UNIX:
        return "unix";
    case SHADOW_ADDRESS_INET:
        return "inet";
    case SHADOW_ADDRESS_INET6:
        return "inet6";
    }
    return "?";
}

/* address_text - "KIND spec=S path=P host=H port=N", for comparisons */
static char *
address_text(const ShadowAddress *a)
{
    return g_strdup_printf("%s spec=%s path=%s host=%s port=%u", kind_name(a->kind),
                           a->spec ? a->spec : "(null)", a->path ? a->path : "(null)",
                           a->host ? a->host : "(null)", a->port);
}

/* diff_str - note "FIELD: got X, want Y" when two strings differ */
static void
diff_str(GString *out, const char *field, const char *got, const char *want)
{
    if (g_strcmp0(got, want) != 0)
        g_string_append_printf(out, "%s: got %s, want %s\n", field, got ? got : "(null)",
                               want ? want : "(null)");
}

/* diff_num - note "FIELD: got X, want Y" when two numbers differ */
static void
diff_num(GString *out, const char *field, guint64 got, guint64 want)
{
    if (got != want)
        g_string_append_printf(out, "%s: got %" G_GUINT64_FORMAT ", want %" G_GUINT64_FORMAT "\n",
                               field, got, want);
}

/* diff_address - note each field of two addresses that differs */
static void
diff_address(GString *out, const char *field, const ShadowAddress *got, const ShadowAddress *want)
{
    g_autofree char *got_text = address_text(got);
    g_autofree char *want_text = address_text(want);

    diff_str(out, field, got_text, want_text);
}

/* diff_milter - note each field of two milter groups that differs */
static void
diff_milter(GString *out, const ShadowMilterConfig *got, const ShadowMilterConfig *want)
{
    diff_str(out, "milter name", got->name, want->name);
    diff_address(out, "milter connect", &got->connect, &want->connect);
    diff_num(out, "milter enabled", (guint64)got->enabled, (guint64)want->enabled);
    diff_num(out, "milter connect_timeout_ms", got->connect_timeout_ms, want->connect_timeout_ms);
    diff_num(out, "milter command_timeout_ms", got->command_timeout_ms, want->command_timeout_ms);
    diff_num(out, "milter eom_timeout_ms", got->eom_timeout_ms, want->eom_timeout_ms);
    diff_num(out, "milter line", got->line, want->line);
}

/* config_diff - every field that differs, path aside, as "FIELD: got X, want Y" lines */
static char *
config_diff(const ShadowConfig *got, const ShadowConfig *want)
{
    GString *out = g_string_new(NULL);

    diff_address(out, "listen", &got->listen, &want->listen);
    diff_str(out, "event_log", got->event_log, want->event_log);
    diff_str(out, "pid_file", got->pid_file, want->pid_file);
    diff_num(out, "syslog_facility", (guint64)got->syslog_facility, (guint64)want->syslog_facility);
    diff_str(out, "syslog_ident", got->syslog_ident, want->syslog_ident);
    diff_num(out, "socket_mode", got->socket_mode, want->socket_mode);
    diff_str(out, "socket_owner", got->socket_owner, want->socket_owner);
    diff_num(out, "max_connections", got->max_connections, want->max_connections);
    diff_num(out, "spool_memory", got->spool_memory, want->spool_memory);
    diff_str(out, "spool_dir", got->spool_dir, want->spool_dir);
    diff_num(out, "max_message", got->max_message, want->max_message);
    diff_num(out, "backlog", got->backlog, want->backlog);
    diff_num(out, "spool_memory_total", got->spool_memory_total, want->spool_memory_total);
    diff_num(out, "reply", got->reply, want->reply);
    diff_num(out, "content", got->content, want->content);
    diff_str(out, "host", got->host, want->host);
    diff_str(out, "user", got->user, want->user);
    diff_str(out, "group", got->group, want->group);
    diff_num(out, "allow_root", (guint64)got->allow_root, (guint64)want->allow_root);
    diff_num(out, "milters", got->milters->len, want->milters->len);
    for (guint i = 0; i < got->milters->len && i < want->milters->len; i++)
        diff_milter(out, g_ptr_array_index(got->milters, i), g_ptr_array_index(want->milters, i));
    return g_string_free(out, FALSE);
}

/* assert_same - got and want agree in every field but path */
static void
assert_same(const char *what, const ShadowConfig *got, const ShadowConfig *want)
{
    g_autofree char *diff = config_diff(got, want);

    ck_assert_msg(*diff == '\0', "%s:\n%s", what, diff);
}

/* want_defaults - the defaults as shadow_config.h lists them, built by hand */
static ShadowConfig *
want_defaults(void)
{
    ShadowConfig *c = g_new0(ShadowConfig, 1);

    c->listen.kind = SHADOW_ADDRESS_INET;
    c->listen.spec = g_strdup("inet:8899@127.0.0.1");
    c->listen.host = g_strdup("127.0.0.1");
    c->listen.port = 8899;
    c->event_log = g_strdup("/var/log/shadowd/events.log");
    c->pid_file = g_strdup("/run/shadowd/shadowd.pid");
    c->syslog_facility = LOG_MAIL;
    c->syslog_ident = g_strdup("shadowd");
    c->socket_mode = 0660;
    c->socket_owner = NULL;
    c->max_connections = 256;
    c->spool_memory = 1024 * 1024;
    c->spool_dir = g_strdup("/var/tmp");
    c->max_message = 64 * 1024 * 1024;
    c->backlog = 4 * 1024 * 1024;
    c->spool_memory_total = 32 * 1024 * 1024;
    c->reply = SHADOW_REPLY_IMMEDIATE;
    c->content = SHADOW_CONTENT_CHAINED;
    c->host = g_strdup(g_get_host_name());
    c->user = NULL;
    c->group = NULL;
    c->allow_root = FALSE;
    c->milters = g_ptr_array_new();
    return c;
}

/* new_milter - a ShadowMilterConfig with the header's defaults (test side) */
static ShadowMilterConfig *
new_milter(const char *name, const char *connect, guint line)
{
    ShadowMilterConfig *m = g_new0(ShadowMilterConfig, 1);

    m->name = g_strdup(name);
    ck_assert(shadow_address_parse(connect, &m->connect, NULL));
    m->enabled = TRUE;
    m->connect_timeout_ms = 5000;
    m->command_timeout_ms = 7000;
    m->eom_timeout_ms = 60000;
    m->line = line;
    return m;
}

/* free_milter - what new_milter() made */
static void
free_milter(gpointer data)
{
    ShadowMilterConfig *m = data;

    g_free(m->name);
    shadow_address_clear(&m->connect);
    g_free(m);
}

/* line_of_text - the line number at which needle starts in text */
static guint
line_of_text(const char *text, const char *needle)
{
    const char *at = strstr(text, needle);
    guint line = 1;

    ck_assert_msg(at != NULL, "\"%s\" not found", needle);
    for (const char *p = text; p < at; p++)
        if (*p == '\n')
            line++;
    return line;
}

/* test_new_default - shadow_config_new_default() has the header's defaults */
START_TEST(test_new_default)
{
    g_autoptr(ShadowConfig) got = shadow_config_new_default();
    g_autoptr(ShadowConfig) want = want_defaults();

    ck_assert_ptr_null(got->path);
    ck_assert_ptr_nonnull(got->milters);
    assert_same("new_default", got, want);
}
END_TEST

/* test_empty_files - empty files and comment-only files give the defaults */
START_TEST(test_empty_files)
{
    static const char *const texts[] = {
        "",
        "\n\n",
        "# only a comment\n",
        "; only a comment\n",
        "[shadowd]\n",
        "[shadowd]",
        "  # indented comment\n\t; indented ; comment\n[shadowd]\n\n",
        "[shadowd]\r\n# CRLF\r\n",
    };
    g_autoptr(ShadowConfig) want = shadow_config_new_default();

    for (gsize i = 0; i < G_N_ELEMENTS(texts); i++) {
        g_autofree char *name = g_strdup_printf("empty%" G_GSIZE_FORMAT ".conf", i);
        g_autoptr(ShadowConfig) got = load_ok(name, texts[i]);
        g_autofree char *what = g_strdup_printf("text \"%s\"", texts[i]);

        assert_same(what, got, want);
    }
}
END_TEST

/* test_shipped - conf/shadowd.conf loads as shipped and shows every key */
START_TEST(test_shipped)
{
    g_autoptr(GError) error = NULL;
    g_autoptr(ShadowConfig) got = shadow_config_load(SHIPPED_CONF, &error);
    g_autoptr(ShadowConfig) want = shadow_config_new_default();
    g_autofree char *text = read_shipped();

    ck_assert_msg(got != NULL, "%s: got error \"%s\", want success", SHIPPED_CONF,
                  error ? error->message : "");
    assert_same(SHIPPED_CONF, got, want);

    for (gsize i = 0; i < G_N_ELEMENTS(shadowd_key_names); i++) {
        g_autofree char *line = g_strdup_printf("\n#%s =", shadowd_key_names[i]);

        ck_assert_msg(strstr(text, line) != NULL, "%s: got no \"#%s =\" line, want one",
                      SHIPPED_CONF, shadowd_key_names[i]);
    }
    for (gsize i = 0; i < G_N_ELEMENTS(milter_key_names); i++) {
        g_autofree char *line = g_strdup_printf("\n# %s = ", milter_key_names[i]);

        ck_assert_msg(strstr(text, line) != NULL, "%s: got no \"# %s = \" line, want one",
                      SHIPPED_CONF, milter_key_names[i]);
    }
}
END_TEST

/* test_shipped_uncommented - every "#key = default" uncommented still gives the defaults */
START_TEST(test_shipped_uncommented)
{
    g_autofree char *text = read_shipped();
    g_autofree char *open = uncomment(text, UNCOMMENT_KEYS);
    g_autoptr(ShadowConfig) got = load_ok("uncommented.conf", open);
    g_autoptr(ShadowConfig) want = shadow_config_new_default();

    for (gsize i = 0; i < G_N_ELEMENTS(shadowd_key_names); i++) {
        g_autofree char *line = g_strdup_printf("\n%s =", shadowd_key_names[i]);

        ck_assert_msg(strstr(open, line) != NULL, "uncommented: got no \"%s =\" line, want one",
                      shadowd_key_names[i]);
    }
    assert_same("uncommented conf/shadowd.conf", got, want);
}
END_TEST

/* test_shipped_example - the example [milter NAME] group uncommented is one default child */
START_TEST(test_shipped_example)
{
    g_autofree char *text = read_shipped();
    g_autofree char *keys = uncomment(text, UNCOMMENT_KEYS);
    g_autofree char *open = uncomment(keys, UNCOMMENT_EXAMPLE);
    g_autoptr(ShadowConfig) got = load_ok("example.conf", open);
    g_autoptr(ShadowConfig) want = shadow_config_new_default();

    g_ptr_array_add(want->milters,
                    new_milter("spamass", "unix:/var/spool/postfix/spamass/spamass.sock",
                               line_of_text(open, "\n[milter spamass]") + 1));
    assert_same("conf/shadowd.conf with its example uncommented", got, want);
}
END_TEST

/* test_durations - shadow_parse_duration_ms() */
START_TEST(test_durations)
{
    static const struct {
        const char *text;
        gboolean ok;
        guint want_ms;
    } cases[] = {
        { "250ms", TRUE, 250 },
        { "7s", TRUE, 7000 },
        { "5m", TRUE, 300000 },
        { "1h", TRUE, 3600000 },
        { "7", TRUE, 7000 },
        { "0", TRUE, 0 },
        { "0ms", TRUE, 0 },
        { "007s", TRUE, 7000 },
        { "4294967295ms", TRUE, G_MAXUINT },
        { "4294967s", TRUE, 4294967000u },
        { "71582m", TRUE, 4294920000u },
        { "1193h", TRUE, 4294800000u },
        { "4294968", FALSE },
        { "4294967296ms", FALSE },
        { "4294968s", FALSE },
        { "71583m", FALSE },
        { "1194h", FALSE },
        { "99999999999999999999999ms", FALSE },
        { "", FALSE },
        { "s", FALSE },
        { "ms", FALSE },
        { "-1s", FALSE },
        { "+1s", FALSE },
        { "5x", FALSE },
        { "5 s", FALSE },
        { " 5s", FALSE },
        { "5s ", FALSE },
        { "5S", FALSE },
        { "5sec", FALSE },
        { "1.5s", FALSE },
        { "5d", FALSE },
        { "0x10", FALSE },
    };

    for (gsize i = 0; i < G_N_ELEMENTS(cases); i++) {
        guint got = 12345;
        gboolean ok = shadow_parse_duration_ms(cases[i].text, &got);

        ck_assert_msg(ok == cases[i].ok, "duration \"%s\": got %s, want %s", cases[i].text,
                      ok ? "ok" : "error", cases[i].ok ? "ok" : "error");
        if (ok)
            ck_assert_msg(got == cases[i].want_ms, "duration \"%s\": got %ums, want %ums",
                          cases[i].text, got, cases[i].want_ms);
        else
            ck_assert_msg(got == 12345, "duration \"%s\": failed but wrote %u", cases[i].text, got);
    }
}
END_TEST

/* test_sizes - shadow_parse_size() */
START_TEST(test_sizes)
{
    static const struct {
        const char *text;
        gboolean ok;
        guint64 want;
    } cases[] = {
        { "0", TRUE, 0 },
        { "4096", TRUE, 4096 },
        { "512k", TRUE, 512 * 1024 },
        { "1M", TRUE, 1024 * 1024 },
        { "64M", TRUE, 64 * 1024 * 1024 },
        { "1G", TRUE, 1024 * 1024 * 1024 },
        { "0k", TRUE, 0 },
        { "", FALSE },
        { "k", FALSE },
        { "-1", FALSE },
        { "+1", FALSE },
        { "1K", FALSE },
        { "1m", FALSE },
        { "1g", FALSE },
        { "1T", FALSE },
        { "1 M", FALSE },
        { "1MB", FALSE },
        { "1.5M", FALSE },
        { "18446744073709551616", FALSE },
        { "17179869184G", FALSE },
        { "99999999999999999999999k", FALSE },
    };

    for (gsize i = 0; i < G_N_ELEMENTS(cases); i++) {
        gsize got = 12345;
        gboolean ok = shadow_parse_size(cases[i].text, &got);

        ck_assert_msg(ok == cases[i].ok, "size \"%s\": got %s, want %s", cases[i].text,
                      ok ? "ok" : "error", cases[i].ok ? "ok" : "error");
        if (ok)
            ck_assert_msg(got == cases[i].want,
                          "size \"%s\": got %" G_GSIZE_FORMAT ", want %" G_GUINT64_FORMAT,
                          cases[i].text, got, cases[i].want);
    }
    /* The largest sizes gsize holds. */
    if (sizeof(gsize) == 8) {
        gsize got = 0;

        ck_assert(shadow_parse_size("18446744073709551615", &got));
        ck_assert_uint_eq(got, G_MAXSIZE);
        ck_assert(shadow_parse_size("17179869183G", &got));
        ck_assert_uint_eq(got, (gsize)17179869183u * 1024 * 1024 * 1024);
    }
}
END_TEST

/* test_addresses - every address form, and the kind each gives */
START_TEST(test_addresses)
{
    static const struct {
        const char *spec;
        ShadowAddressKind kind;
        const char *path;
        const char *host;
        guint port;
    } cases[] = {
        { "unix:/run/shadowd/milter.sock", SHADOW_ADDRESS_UNIX, "/run/shadowd/milter.sock" },
        { "local:/var/run/milter.sock", SHADOW_ADDRESS_UNIX, "/var/run/milter.sock" },
        { "unix:/", SHADOW_ADDRESS_UNIX, "/" },
        /* Sendmail's PORT@HOST. */
        { "inet:8891@127.0.0.1", SHADOW_ADDRESS_INET, NULL, "127.0.0.1", 8891 },
        { "inet:1@localhost", SHADOW_ADDRESS_INET, NULL, "localhost", 1 },
        { "inet:65535@mx-1.example_test.org", SHADOW_ADDRESS_INET, NULL, "mx-1.example_test.org",
          65535 },
        { "inet:8891@::1", SHADOW_ADDRESS_INET6, NULL, "::1", 8891 },
        { "inet6:8891@::1", SHADOW_ADDRESS_INET6, NULL, "::1", 8891 },
        { "inet6:8891@localhost", SHADOW_ADDRESS_INET6, NULL, "localhost", 8891 },
        { "inet6:8891@[2001:db8::25]", SHADOW_ADDRESS_INET6, NULL, "2001:db8::25", 8891 },
        { "inet:8891@[::1]", SHADOW_ADDRESS_INET6, NULL, "::1", 8891 },
        { "inet:8891@[127.0.0.1]", SHADOW_ADDRESS_INET, NULL, "127.0.0.1", 8891 },
        { "inet:08891@127.0.0.1", SHADOW_ADDRESS_INET, NULL, "127.0.0.1", 8891 },
        /* Postfix's HOST:PORT, IPv6 in brackets. */
        { "inet:127.0.0.1:8891", SHADOW_ADDRESS_INET, NULL, "127.0.0.1", 8891 },
        { "inet:localhost:10025", SHADOW_ADDRESS_INET, NULL, "localhost", 10025 },
        { "inet:[::1]:8891", SHADOW_ADDRESS_INET6, NULL, "::1", 8891 },
        { "inet:[2001:db8::1:25]:65535", SHADOW_ADDRESS_INET6, NULL, "2001:db8::1:25", 65535 },
        { "inet:[::ffff:192.0.2.1]:25", SHADOW_ADDRESS_INET6, NULL, "::ffff:192.0.2.1", 25 },
        { "inet:[127.0.0.1]:8891", SHADOW_ADDRESS_INET, NULL, "127.0.0.1", 8891 },
    };

    for (gsize i = 0; i < G_N_ELEMENTS(cases); i++) {
        g_autoptr(GError) error = NULL;
        ShadowAddress got = { 0 };
        ShadowAddress want = { 0 };
        g_autofree char *got_text = NULL;
        g_autofree char *want_text = NULL;

        ck_assert_msg(shadow_address_parse(cases[i].spec, &got, &error),
                      "address \"%s\": got error \"%s\", want success", cases[i].spec,
                      error ? error->message : "");
        want.kind = cases[i].kind;
        want.spec = (char *)cases[i].spec;
        want.path = (char *)cases[i].path;
        want.host = (char *)cases[i].host;
        want.port = (guint16)cases[i].port;
        got_text = address_text(&got);
        want_text = address_text(&want);
        ck_assert_msg(strcmp(got_text, want_text) == 0, "address \"%s\": got %s, want %s",
                      cases[i].spec, got_text, want_text);
        shadow_address_clear(&got);
    }
}
END_TEST

/* field_text - a key's stored value as text, from [shadowd] or the first milter */
static char *
field_text(const ShadowConfig *c, const char *key)
{
    const ShadowMilterConfig *m = c->milters->len ? g_ptr_array_index(c->milters, 0) : NULL;

    if (strcmp(key, "listen") == 0)
        return address_text(&c->listen);
    if (strcmp(key, "event_log") == 0)
        return g_strdup(c->event_log);
    if (strcmp(key, "pid_file") == 0)
        return g_strdup(c->pid_file);
    if (strcmp(key, "syslog_facility") == 0)
        return g_strdup_printf("%d", c->syslog_facility);
    if (strcmp(key, "syslog_ident") == 0)
        return g_strdup(c->syslog_ident);
    if (strcmp(key, "socket_mode") == 0)
        return g_strdup_printf("%#o", c->socket_mode);
    if (strcmp(key, "socket_owner") == 0)
        return g_strdup(c->socket_owner ? c->socket_owner : "(null)");
    if (strcmp(key, "max_connections") == 0)
        return g_strdup_printf("%u", c->max_connections);
    if (strcmp(key, "spool_memory") == 0)
        return g_strdup_printf("%" G_GSIZE_FORMAT, c->spool_memory);
    if (strcmp(key, "spool_dir") == 0)
        return g_strdup(c->spool_dir);
    if (strcmp(key, "max_message") == 0)
        return g_strdup_printf("%" G_GSIZE_FORMAT, c->max_message);
    if (strcmp(key, "backlog") == 0)
        return g_strdup_printf("%" G_GSIZE_FORMAT, c->backlog);
    if (strcmp(key, "spool_memory_total") == 0)
        return g_strdup_printf("%" G_GSIZE_FORMAT, c->spool_memory_total);
    if (strcmp(key, "reply") == 0)
        return g_strdup(c->reply == SHADOW_REPLY_WAIT ? "wait" : "immediate");
    if (strcmp(key, "content") == 0)
        return g_strdup(c->content == SHADOW_CONTENT_INDEPENDENT ? "independent" : "chained");
    if (strcmp(key, "host") == 0)
        return g_strdup(c->host);
    if (strcmp(key, "user") == 0)
        return g_strdup(c->user ? c->user : "(null)");
    if (strcmp(key, "group") == 0)
        return g_strdup(c->group ? c->group : "(null)");
    if (strcmp(key, "allow_root") == 0)
        return g_strdup(c->allow_root ? "true" : "false");
    ck_assert_ptr_nonnull(m);
    if (strcmp(key, "connect") == 0)
        return address_text(&m->connect);
    if (strcmp(key, "enabled") == 0)
        return g_strdup(m->enabled ? "true" : "false");
    if (strcmp(key, "connect_timeout") == 0)
        return g_strdup_printf("%u", m->connect_timeout_ms);
    if (strcmp(key, "command_timeout") == 0)
        return g_strdup_printf("%u", m->command_timeout_ms);
    if (strcmp(key, "eom_timeout") == 0)
        return g_strdup_printf("%u", m->eom_timeout_ms);
    ck_abort_msg("field_text: no key %s", key);
    return NULL;
}

/* test_key_values - each key's accepted forms, loaded from a file */
START_TEST(test_key_values)
{
    static const struct {
        gboolean milter; /* the key goes in a [milter t] group */
        const char *key;
        const char *value; /* as written after "key = " */
        const char *want;  /* field_text(); NULL: this machine's host name */
    } cases[] = {
        { FALSE, "listen", "unix:/run/shadowd/shadowd.sock",
          "unix spec=unix:/run/shadowd/shadowd.sock path=/run/shadowd/shadowd.sock "
          "host=(null) port=0" },
        { FALSE, "listen", "inet:[::1]:8899",
          "inet6 spec=inet:[::1]:8899 path=(null) host=::1 port=8899" },
        { FALSE, "event_log", "/srv/shadowd/events.log", "/srv/shadowd/events.log" },
        { FALSE, "event_log", "/var/log/a\\\\b.log", "/var/log/a\\b.log" },
        { FALSE, "pid_file", "  /run/x.pid", "/run/x.pid" },
        { FALSE, "spool_dir", "/var/spool/shadowd \t ", "/var/spool/shadowd" },
        { FALSE, "spool_dir", "/var/spool/two\\swords", "/var/spool/two words" },
        { FALSE, "syslog_ident", "shadowd-test", "shadowd-test" },
        { FALSE, "socket_mode", "0660", "0660" },
        { FALSE, "socket_mode", "660", "0660" },
        { FALSE, "socket_mode", "0600", "0600" },
        { FALSE, "socket_mode", "00640", "0640" },
        { FALSE, "socket_mode", "777", "0777" },
        { FALSE, "socket_mode", "0", "0" },
        { FALSE, "socket_owner", "", "(null)" },
        { FALSE, "socket_owner", "postfix", "postfix" },
        { FALSE, "socket_owner", "shadowd:postfix", "shadowd:postfix" },
        { FALSE, "max_connections", "1", "1" },
        { FALSE, "max_connections", "65535", "65535" },
        { FALSE, "max_connections", "0100", "100" },
        { FALSE, "spool_memory", "0", "0" },
        { FALSE, "spool_memory", "512k", "524288" },
        { FALSE, "max_message", "1G", "1073741824" },
        { FALSE, "backlog", "4096", "4096" },
        { FALSE, "spool_memory_total", "0", "0" },
        { FALSE, "spool_memory_total", "256M", "268435456" },
        { FALSE, "reply", "wait", "wait" },
        { FALSE, "reply", "immediate", "immediate" },
        { FALSE, "content", "independent", "independent" },
        { FALSE, "content", "chained", "chained" },
        { FALSE, "host", "mx1.example.org", "mx1.example.org" },
        { FALSE, "host", "", NULL },
        { FALSE, "user", "", "(null)" },
        { FALSE, "user", "shadowd", "shadowd" },
        { FALSE, "user", "_milter.shadow-2", "_milter.shadow-2" },
        { FALSE, "user", "abcdefghijklmnopqrstuvwxyz012345", "abcdefghijklmnopqrstuvwxyz012345" },
        { FALSE, "group", "", "(null)" },
        { FALSE, "group", "postfix", "postfix" },
        { FALSE, "group", "shadowd  ", "shadowd" },
        { FALSE, "allow_root", "true", "true" },
        { FALSE, "allow_root", "false", "false" },
        { FALSE, "allow_root", "1", "true" },
        { FALSE, "allow_root", "0", "false" },
        { TRUE, "connect", "inet:8891@127.0.0.1",
          "inet spec=inet:8891@127.0.0.1 path=(null) host=127.0.0.1 port=8891" },
        { TRUE, "connect", "local:/run/opendkim/opendkim.sock",
          "unix spec=local:/run/opendkim/opendkim.sock path=/run/opendkim/opendkim.sock "
          "host=(null) port=0" },
        { TRUE, "enabled", "true", "true" },
        { TRUE, "enabled", "false", "false" },
        { TRUE, "enabled", "1", "true" },
        { TRUE, "enabled", "0", "false" },
        { TRUE, "enabled", "false  ", "false" },
        { TRUE, "connect_timeout", "1ms", "1" },
        { TRUE, "connect_timeout", "250ms", "250" },
        { TRUE, "connect_timeout", "2", "2000" },
        { TRUE, "connect_timeout", "1h", "3600000" },
        { TRUE, "connect_timeout", "4294967295ms", "4294967295" },
        { TRUE, "command_timeout", "1ms", "1" },
        { TRUE, "command_timeout", "10s", "10000" },
        { TRUE, "command_timeout", "10000ms", "10000" },
        { TRUE, "eom_timeout", "1ms", "1" },
        { TRUE, "eom_timeout", "300s", "300000" },
        { TRUE, "eom_timeout", "5m", "300000" },
    };

    for (gsize i = 0; i < G_N_ELEMENTS(cases); i++) {
        g_autofree char *name = g_strdup_printf("key%" G_GSIZE_FORMAT ".conf", i);
        g_autofree char *text = NULL;
        g_autoptr(ShadowConfig) config = NULL;
        g_autofree char *got = NULL;
        const char *want = cases[i].want ? cases[i].want : g_get_host_name();

        if (!cases[i].milter)
            text = g_strdup_printf("[shadowd]\n%s = %s\n", cases[i].key, cases[i].value);
        else if (strcmp(cases[i].key, "connect") == 0)
            text = g_strdup_printf("[milter t]\nconnect = %s\n", cases[i].value);
        else
            text = g_strdup_printf("[milter t]\nconnect = unix:/run/t.sock\n%s = %s\n",
                                   cases[i].key, cases[i].value);
        config = load_ok(name, text);
        got = field_text(config, cases[i].key);
        ck_assert_msg(strcmp(got, want) == 0, "%s = \"%s\": got %s, want %s", cases[i].key,
                      cases[i].value, got, want);
    }
}
END_TEST

/* test_facilities - every syslog_facility word and its LOG_* value */
START_TEST(test_facilities)
{
    static const struct {
        const char *name;
        int want;
    } cases[] = {
        { "mail", LOG_MAIL },     { "daemon", LOG_DAEMON }, { "user", LOG_USER },
        { "local0", LOG_LOCAL0 }, { "local1", LOG_LOCAL1 }, { "local2", LOG_LOCAL2 },
        { "local3", LOG_LOCAL3 }, { "local4", LOG_LOCAL4 }, { "local5", LOG_LOCAL5 },
        { "local6", LOG_LOCAL6 }, { "local7", LOG_LOCAL7 },
    };

    for (gsize i = 0; i < G_N_ELEMENTS(cases); i++) {
        g_autofree char *text = g_strdup_printf("[shadowd]\nsyslog_facility = %s\n", cases[i].name);
        g_autoptr(ShadowConfig) config = load_ok("facility.conf", text);

        ck_assert_msg(config->syslog_facility == cases[i].want, "facility %s: got %d, want %d",
                      cases[i].name, config->syslog_facility, cases[i].want);
    }
}
END_TEST

/* The file of test_full_file: every key set away from its default, two children. */
static const char full_text[] = "# every key\n"
                                "[shadowd]\n"
                                "listen = unix:/run/shadowd/shadowd.sock\n"
                                "event_log = /srv/shadowd/events.log\n"
                                "pid_file = /srv/shadowd/shadowd.pid\n"
                                "syslog_facility = local3\n"
                                "syslog_ident = shadow-test\n"
                                "socket_mode = 600\n"
                                "socket_owner = shadowd:postfix\n"
                                "max_connections = 65535\n"
                                "spool_memory = 512k\n"
                                "spool_dir = /srv/spool\n"
                                "max_message = 1G\n"
                                "backlog = 4096\n"
                                "spool_memory_total = 8M\n"
                                "reply = wait\n"
                                "content = independent\n"
                                "host = mx1.example.org\n"
                                "user = shadowd\n"
                                "group = postfix\n"
                                "allow_root = true\n"
                                "\n"
                                "; the first child\n"
                                "[milter spamd]\n"
                                "connect = inet:[::1]:783\n"
                                "enabled = false\n"
                                "connect_timeout = 250ms\n"
                                "command_timeout = 10s\n"
                                "eom_timeout = 5m\n"
                                "\n"
                                "  # the second child, all defaults\n"
                                "  [milter dkim.sign-2_X]  \n"
                                "  connect=local:/run/opendkim/opendkim.sock\n";

/* test_full_file - a file that sets every key; LF and CRLF line ends */
START_TEST(test_full_file)
{
    g_autoptr(ShadowConfig) want = g_new0(ShadowConfig, 1);
    ShadowMilterConfig *spamd = new_milter("spamd", "inet:[::1]:783", 24);
    g_autoptr(GRegex) lf = g_regex_new("\n", 0, 0, NULL);
    g_autofree char *crlf_text = g_regex_replace_literal(lf, full_text, -1, 0, "\r\n", 0, NULL);
    const char *texts[] = { full_text, crlf_text };

    ck_assert(shadow_address_parse("unix:/run/shadowd/shadowd.sock", &want->listen, NULL));
    want->event_log = g_strdup("/srv/shadowd/events.log");
    want->pid_file = g_strdup("/srv/shadowd/shadowd.pid");
    want->syslog_facility = LOG_LOCAL3;
    want->syslog_ident = g_strdup("shadow-test");
    want->socket_mode = 0600;
    want->socket_owner = g_strdup("shadowd:postfix");
    want->max_connections = 65535;
    want->spool_memory = 512 * 1024;
    want->spool_dir = g_strdup("/srv/spool");
    want->max_message = 1024 * 1024 * 1024;
    want->backlog = 4096;
    want->spool_memory_total = 8 * 1024 * 1024;
    want->reply = SHADOW_REPLY_WAIT;
    want->content = SHADOW_CONTENT_INDEPENDENT;
    want->host = g_strdup("mx1.example.org");
    want->user = g_strdup("shadowd");
    want->group = g_strdup("postfix");
    want->allow_root = TRUE;
    want->milters = g_ptr_array_new_with_free_func(free_milter);
    spamd->enabled = FALSE;
    spamd->connect_timeout_ms = 250;
    spamd->command_timeout_ms = 10000;
    spamd->eom_timeout_ms = 300000;
    g_ptr_array_add(want->milters, spamd);
    g_ptr_array_add(want->milters,
                    new_milter("dkim.sign-2_X", "local:/run/opendkim/opendkim.sock", 32));

    for (gsize i = 0; i < G_N_ELEMENTS(texts); i++) {
        g_autoptr(ShadowConfig) got = load_ok(i == 0 ? "full.conf" : "full-crlf.conf", texts[i]);

        assert_same(i == 0 ? "full file" : "full file, CRLF", got, want);
    }
}
END_TEST

/* test_clear_null - the destructors take NULL, zeroed and cleared structs */
START_TEST(test_clear_null)
{
    ShadowAddress address = { 0 };

    shadow_config_free(NULL);
    shadow_address_clear(NULL);
    shadow_address_clear(&address);
    ck_assert(shadow_address_parse("inet:25@[::1]", &address, NULL));
    shadow_address_clear(&address);
    ck_assert_ptr_null(address.spec);
    ck_assert_ptr_null(address.host);
    ck_assert_uint_eq(address.port, 0);
    shadow_address_clear(&address);
}
END_TEST

/* test_missing_file - G_FILE_ERROR_NOENT, with the path in the message */
START_TEST(test_missing_file)
{
    g_autofree char *path = g_build_filename(tmp_dir, "missing.conf", NULL);
    g_autoptr(GError) error = NULL;
    g_autoptr(ShadowConfig) config = shadow_config_load(path, &error);

    ck_assert_ptr_null(config);
    ck_assert_ptr_nonnull(error);
    ck_assert_msg(g_error_matches(error, G_FILE_ERROR, G_FILE_ERROR_NOENT),
                  "got %s %d, want G_FILE_ERROR_NOENT", g_quark_to_string(error->domain),
                  error->code);
    ck_assert_msg(strstr(error->message, path) != NULL, "got message \"%s\", want it to name %s",
                  error->message, path);
}
END_TEST

/* A connect line for files whose fault lies elsewhere. */
#define CONNECT "connect = unix:/run/t.sock\n"

/* The bad files: each fault, its code, and the message after "PATH:". */
static const struct {
    const char *name;
    const char *text;
    gssize len; /* 0: strlen(text) */
    ShadowConfigError code;
    const char *want;
} bad_files[] = {
    /* The example from the brief, on line 12. */
    { "conf.test",
      "# a test\n\n[shadowd]\nlisten = unix:/run/s.sock\n\n[milter a]\n" CONNECT "\n"
      "[milter spamd]\n" CONNECT "enabled = true\nconnect_timeout = 5x\n",
      0, SHADOW_CONFIG_ERROR_VALUE,
      "12: [milter spamd] connect_timeout: bad duration \"5x\" (want e.g. 250ms, 7s, 5m)" },

    /* Text and syntax: GKeyFile's own messages, with the line. */
    { "nul", "[shadowd]\n\0\n", sizeof("[shadowd]\n\0\n") - 1, SHADOW_CONFIG_ERROR_SYNTAX,
      "2: NUL byte" },
    { "latin1", "[shadowd]\n\n# caf\xe9\n", 0, SHADOW_CONFIG_ERROR_SYNTAX, "3: not UTF-8" },
    { "not_a_line", "[shadowd]\nlisten\n", 0, SHADOW_CONFIG_ERROR_SYNTAX,
      "2: Key file contains line “listen” which is not a key-value pair, group, or comment" },
    { "no_group", "# c\n\nlisten = unix:/run/s.sock\n", 0, SHADOW_CONFIG_ERROR_SYNTAX,
      "3: Key file does not start with a group" },
    { "open_bracket", "[shadowd]\n\n\n[milter a\n", 0, SHADOW_CONFIG_ERROR_SYNTAX,
      "4: Key file contains line “[milter a” which is not a key-value pair, group, or comment" },
    { "bad_key_name", "[shadowd]\nlisten] = unix:/run/s.sock\n", 0, SHADOW_CONFIG_ERROR_SYNTAX,
      "2: Invalid key name: listen]" },
    { "encoding", "[shadowd]\nEncoding = latin1\n", 0, SHADOW_CONFIG_ERROR_SYNTAX,
      "2: Key file contains unsupported encoding “latin1”" },
    { "syntax_after_value", "[shadowd]\nreply = later\n\n# c\n= x\n", 0, SHADOW_CONFIG_ERROR_SYNTAX,
      "5: Key file contains line “= x” which is not a key-value pair, group, or comment" },

    { "syntax_first_line", "reply = wait\n[shadowd]\n# c\n# c\n# c\n# c\n", 0,
      SHADOW_CONFIG_ERROR_SYNTAX, "1: Key file does not start with a group" },
    { "syntax_mid_file",
      "# c\n[shadowd]\nreply = wait\n\n[milter a\n" CONNECT "\n# c\n[milter b]\n" CONNECT, 0,
      SHADOW_CONFIG_ERROR_SYNTAX,
      "5: Key file contains line “[milter a” which is not a key-value pair, group, or comment" },
    { "syntax_second_of_many",
      "[shadowd]\n[]\n# c\n# c\n# c\n# c\n# c\n# c\n# c\n# c\n# c\n# c\n# c\n# c\n", 0,
      SHADOW_CONFIG_ERROR_SYNTAX, "2: Invalid group name: " },

    /* Groups. */
    { "unknown_group", "[shadowd]\n[spamd]\n" CONNECT, 0, SHADOW_CONFIG_ERROR_GROUP,
      "2: [spamd]: unknown group (want [shadowd] or [milter NAME])" },
    { "group_case", "[Shadowd]\n", 0, SHADOW_CONFIG_ERROR_GROUP,
      "1: [Shadowd]: unknown group (want [shadowd] or [milter NAME])" },
    { "milter_no_space", "[milterx]\n" CONNECT, 0, SHADOW_CONFIG_ERROR_GROUP,
      "1: [milterx]: unknown group (want [shadowd] or [milter NAME])" },
    { "milter_no_name", "[milter]\n" CONNECT, 0, SHADOW_CONFIG_ERROR_GROUP,
      "1: [milter]: missing milter name (want [milter NAME])" },
    { "milter_blank_name", "[milter  ]\n" CONNECT, 0, SHADOW_CONFIG_ERROR_GROUP,
      "1: [milter  ]: missing milter name (want [milter NAME])" },
    { "milter_slash", "[milter spam/d]\n" CONNECT, 0, SHADOW_CONFIG_ERROR_GROUP,
      "1: [milter spam/d]: bad milter name \"spam/d\" (want 1..64 letters, digits, '.', '_' or "
      "'-')" },
    { "milter_two_words", "[milter spam d]\n" CONNECT, 0, SHADOW_CONFIG_ERROR_GROUP,
      "1: [milter spam d]: bad milter name \"spam d\" (want 1..64 letters, digits, '.', '_' or "
      "'-')" },
    { "milter_long_name",
      "[milter a0123456789012345678901234567890123456789012345678901234567890123]\n" CONNECT, 0,
      SHADOW_CONFIG_ERROR_GROUP,
      "1: [milter a0123456789012345678901234567890123456789012345678901234567890123]: bad milter "
      "name \"a0123456789012345678901234567890123456789012345678901234567890123\" (want 1..64 "
      "letters, digits, '.', '_' or '-')" },
    { "duplicate_shadowd", "[shadowd]\nreply = wait\n\n[shadowd]\ncontent = chained\n", 0,
      SHADOW_CONFIG_ERROR_GROUP, "4: [shadowd]: duplicate group (first at line 1)" },
    { "duplicate_milter", "[milter a]\n" CONNECT "[milter b]\n" CONNECT "[milter a]\n" CONNECT, 0,
      SHADOW_CONFIG_ERROR_GROUP, "5: [milter a]: duplicate group (first at line 1)" },
    { "duplicate_milter_name", "[milter a]\n" CONNECT "[milter  a ]\n" CONNECT, 0,
      SHADOW_CONFIG_ERROR_GROUP, "3: [milter  a ]: duplicate milter name \"a\" (first at line 1)" },

    /* Keys. */
    { "unknown_key", "[shadowd]\nlisten_on = unix:/run/s.sock\n", 0, SHADOW_CONFIG_ERROR_KEY,
      "2: [shadowd] listen_on: unknown key" },
    { "milter_key_in_shadowd", "[shadowd]\nconnect = unix:/run/s.sock\n", 0,
      SHADOW_CONFIG_ERROR_KEY,
      "2: [shadowd] connect: unknown key (it belongs in a [milter NAME] group)" },
    { "shadowd_key_in_milter", "[milter a]\n" CONNECT "listen = unix:/run/s.sock\n", 0,
      SHADOW_CONFIG_ERROR_KEY, "3: [milter a] listen: unknown key (it belongs in [shadowd])" },
    { "locale_key", "[shadowd]\nlisten[de] = unix:/run/s.sock\n", 0, SHADOW_CONFIG_ERROR_KEY,
      "2: [shadowd] listen[de]: unknown key" },
    { "key_case", "[milter a]\nConnect = unix:/run/s.sock\n", 0, SHADOW_CONFIG_ERROR_KEY,
      "1: [milter a]: missing key connect" },
    { "duplicate_key", "[shadowd]\nlisten = unix:/run/a.sock\n# again\nlisten = unix:/run/b.sock\n",
      0, SHADOW_CONFIG_ERROR_KEY, "4: [shadowd] listen: duplicate key (first at line 2)" },
    { "duplicate_key_spacing", "[milter a]\n" CONNECT "  connect=unix:/run/b.sock\n", 0,
      SHADOW_CONFIG_ERROR_KEY, "3: [milter a] connect: duplicate key (first at line 2)" },
    { "missing_connect", "[shadowd]\n\n[milter a]\nenabled = true\n", 0, SHADOW_CONFIG_ERROR_KEY,
      "3: [milter a]: missing key connect" },
    { "missing_connect_empty", "[milter a]\n", 0, SHADOW_CONFIG_ERROR_KEY,
      "1: [milter a]: missing key connect" },

    /* The first fault in the file is the one reported. */
    { "first_fault", "[shadowd]\nreply = later\n[nope]\n", 0, SHADOW_CONFIG_ERROR_VALUE,
      "2: [shadowd] reply: bad reply \"later\" (want immediate or wait)" },
    { "first_fault_group", "[nope]\n[shadowd]\nreply = later\n", 0, SHADOW_CONFIG_ERROR_GROUP,
      "1: [nope]: unknown group (want [shadowd] or [milter NAME])" },

    /* Values: addresses. */
    { "listen_port", "[shadowd]\nlisten = inet:99999@127.0.0.1\n", 0, SHADOW_CONFIG_ERROR_VALUE,
      "2: [shadowd] listen: bad address \"inet:99999@127.0.0.1\": port 99999 out of range "
      "1..65535" },
    { "listen_empty", "[shadowd]\nlisten =\n", 0, SHADOW_CONFIG_ERROR_VALUE,
      "2: [shadowd] listen: bad address \"\": want unix:/path, local:/path, inet:PORT@HOST, "
      "inet6:PORT@HOST or inet:HOST:PORT" },
    { "connect_relative", "[milter a]\nconnect = unix:milter.sock\n", 0, SHADOW_CONFIG_ERROR_VALUE,
      "2: [milter a] connect: bad address \"unix:milter.sock\": path \"milter.sock\" is not "
      "absolute" },

    /* Values: durations and timeouts. */
    { "duration_empty", "[milter a]\n" CONNECT "connect_timeout =\n", 0, SHADOW_CONFIG_ERROR_VALUE,
      "3: [milter a] connect_timeout: bad duration \"\" (want e.g. 250ms, 7s, 5m)" },
    { "duration_negative", "[milter a]\n" CONNECT "eom_timeout = -1s\n", 0,
      SHADOW_CONFIG_ERROR_VALUE,
      "3: [milter a] eom_timeout: bad duration \"-1s\" (want e.g. 250ms, 7s, 5m)" },
    { "duration_blank", "[milter a]\n" CONNECT "command_timeout = 5 s\n", 0,
      SHADOW_CONFIG_ERROR_VALUE,
      "3: [milter a] command_timeout: bad duration \"5 s\" (want e.g. 250ms, 7s, 5m)" },
    { "duration_overflow", "[milter a]\n" CONNECT "connect_timeout = 1194h\n", 0,
      SHADOW_CONFIG_ERROR_VALUE,
      "3: [milter a] connect_timeout: duration \"1194h\" is too long (at most 4294967295ms)" },
    { "connect_timeout_zero", "[milter a]\n" CONNECT "connect_timeout = 0\n", 0,
      SHADOW_CONFIG_ERROR_VALUE,
      "3: [milter a] connect_timeout: \"0\" is too short (want at least 1ms)" },
    { "command_timeout_zero", "[milter a]\n" CONNECT "command_timeout = 0ms\n", 0,
      SHADOW_CONFIG_ERROR_VALUE,
      "3: [milter a] command_timeout: \"0ms\" is too short (want at least 1ms)" },
    { "eom_timeout_zero", "[milter a]\n" CONNECT "eom_timeout = 0s\n", 0, SHADOW_CONFIG_ERROR_VALUE,
      "3: [milter a] eom_timeout: \"0s\" is too short (want at least 1ms)" },
    { "command_timeout_cap", "[milter a]\n" CONNECT "command_timeout = 11s\n", 0,
      SHADOW_CONFIG_ERROR_VALUE,
      "3: [milter a] command_timeout: \"11s\" is more than 10s: it must stay inside Sendmail's "
      "10s milter read timeout (T=R), because shadowd must never answer the MTA late" },
    { "command_timeout_cap_ms", "[milter a]\n" CONNECT "command_timeout = 10001ms\n", 0,
      SHADOW_CONFIG_ERROR_VALUE,
      "3: [milter a] command_timeout: \"10001ms\" is more than 10s: it must stay inside "
      "Sendmail's 10s milter read timeout (T=R), because shadowd must never answer the MTA late" },
    { "eom_timeout_cap", "[milter a]\n" CONNECT "eom_timeout = 6m\n", 0, SHADOW_CONFIG_ERROR_VALUE,
      "3: [milter a] eom_timeout: \"6m\" is more than 300s: it must stay inside Postfix's 300s "
      "milter_content_timeout and Sendmail's 300s end-of-message timeout (T=E), because shadowd "
      "must never answer the MTA late" },

    /* Values: the rest. */
    { "enabled_yes", "[milter a]\n" CONNECT "enabled = yes\n", 0, SHADOW_CONFIG_ERROR_VALUE,
      "3: [milter a] enabled: bad boolean \"yes\" (want true or false)" },
    { "enabled_case", "[milter a]\n" CONNECT "enabled = True\n", 0, SHADOW_CONFIG_ERROR_VALUE,
      "3: [milter a] enabled: bad boolean \"True\" (want true or false)" },
    { "size_unit", "[shadowd]\nspool_memory = 1T\n", 0, SHADOW_CONFIG_ERROR_VALUE,
      "2: [shadowd] spool_memory: bad size \"1T\" (want e.g. 4096, 512k, 1M, 64M, 1G)" },
    { "size_lower_m", "[shadowd]\nmax_message = 64m\n", 0, SHADOW_CONFIG_ERROR_VALUE,
      "2: [shadowd] max_message: bad size \"64m\" (want e.g. 4096, 512k, 1M, 64M, 1G)" },
    { "size_empty", "[shadowd]\nbacklog =\n", 0, SHADOW_CONFIG_ERROR_VALUE,
      "2: [shadowd] backlog: bad size \"\" (want e.g. 4096, 512k, 1M, 64M, 1G)" },
    { "mode_digit", "[shadowd]\nsocket_mode = 0698\n", 0, SHADOW_CONFIG_ERROR_VALUE,
      "2: [shadowd] socket_mode: bad mode \"0698\" (want octal 0..0777, e.g. 0660)" },
    { "mode_range", "[shadowd]\nsocket_mode = 1777\n", 0, SHADOW_CONFIG_ERROR_VALUE,
      "2: [shadowd] socket_mode: bad mode \"1777\" (want octal 0..0777, e.g. 0660)" },
    { "mode_hex", "[shadowd]\nsocket_mode = 0x1b0\n", 0, SHADOW_CONFIG_ERROR_VALUE,
      "2: [shadowd] socket_mode: bad mode \"0x1b0\" (want octal 0..0777, e.g. 0660)" },
    { "mode_empty", "[shadowd]\nsocket_mode =\n", 0, SHADOW_CONFIG_ERROR_VALUE,
      "2: [shadowd] socket_mode: bad mode \"\" (want octal 0..0777, e.g. 0660)" },
    { "connections_zero", "[shadowd]\nmax_connections = 0\n", 0, SHADOW_CONFIG_ERROR_VALUE,
      "2: [shadowd] max_connections: bad number \"0\" (want 1..65535)" },
    { "connections_range", "[shadowd]\nmax_connections = 65536\n", 0, SHADOW_CONFIG_ERROR_VALUE,
      "2: [shadowd] max_connections: bad number \"65536\" (want 1..65535)" },
    { "connections_word", "[shadowd]\nmax_connections = many\n", 0, SHADOW_CONFIG_ERROR_VALUE,
      "2: [shadowd] max_connections: bad number \"many\" (want 1..65535)" },
    { "facility_kern", "[shadowd]\nsyslog_facility = kern\n", 0, SHADOW_CONFIG_ERROR_VALUE,
      "2: [shadowd] syslog_facility: bad facility \"kern\" (want mail, daemon, user or "
      "local0..local7)" },
    { "facility_local8", "[shadowd]\nsyslog_facility = local8\n", 0, SHADOW_CONFIG_ERROR_VALUE,
      "2: [shadowd] syslog_facility: bad facility \"local8\" (want mail, daemon, user or "
      "local0..local7)" },
    { "facility_case", "[shadowd]\nsyslog_facility = LOG_MAIL\n", 0, SHADOW_CONFIG_ERROR_VALUE,
      "2: [shadowd] syslog_facility: bad facility \"LOG_MAIL\" (want mail, daemon, user or "
      "local0..local7)" },
    { "reply_later", "[shadowd]\nreply = later\n", 0, SHADOW_CONFIG_ERROR_VALUE,
      "2: [shadowd] reply: bad reply \"later\" (want immediate or wait)" },
    { "content_copy", "[shadowd]\ncontent = copy\n", 0, SHADOW_CONFIG_ERROR_VALUE,
      "2: [shadowd] content: bad content \"copy\" (want chained or independent)" },
    { "path_relative", "[shadowd]\nevent_log = var/log/events.log\n", 0, SHADOW_CONFIG_ERROR_VALUE,
      "2: [shadowd] event_log: path \"var/log/events.log\" is not absolute" },
    { "path_empty", "[shadowd]\npid_file =\n", 0, SHADOW_CONFIG_ERROR_VALUE,
      "2: [shadowd] pid_file: empty value (want an absolute path)" },
    { "spool_dir_relative", "[shadowd]\nspool_dir = tmp\n", 0, SHADOW_CONFIG_ERROR_VALUE,
      "2: [shadowd] spool_dir: path \"tmp\" is not absolute" },
    { "ident_empty", "[shadowd]\nsyslog_ident =\n", 0, SHADOW_CONFIG_ERROR_VALUE,
      "2: [shadowd] syslog_ident: empty value" },
    { "ident_blank", "[shadowd]\nsyslog_ident = shadow d\n", 0, SHADOW_CONFIG_ERROR_VALUE,
      "2: [shadowd] syslog_ident: bad value \"shadow d\" (want one word, no blanks)" },
    { "host_blank", "[shadowd]\nhost = mx 1\n", 0, SHADOW_CONFIG_ERROR_VALUE,
      "2: [shadowd] host: bad value \"mx 1\" (want one word, no blanks)" },
    { "owner_three", "[shadowd]\nsocket_owner = a:b:c\n", 0, SHADOW_CONFIG_ERROR_VALUE,
      "2: [shadowd] socket_owner: bad owner \"a:b:c\" (want user or user:group)" },
    { "owner_no_user", "[shadowd]\nsocket_owner = :postfix\n", 0, SHADOW_CONFIG_ERROR_VALUE,
      "2: [shadowd] socket_owner: bad owner \":postfix\" (want user or user:group)" },
    { "owner_no_group", "[shadowd]\nsocket_owner = shadowd:\n", 0, SHADOW_CONFIG_ERROR_VALUE,
      "2: [shadowd] socket_owner: bad owner \"shadowd:\" (want user or user:group)" },
    { "user_blank", "[shadowd]\nuser = shadow d\n", 0, SHADOW_CONFIG_ERROR_VALUE,
      "2: [shadowd] user: bad name \"shadow d\" (want 1..32 letters, digits, '.', '_' or '-', "
      "not starting with '-')" },
    { "user_colon", "[shadowd]\nuser = shadowd:postfix\n", 0, SHADOW_CONFIG_ERROR_VALUE,
      "2: [shadowd] user: bad name \"shadowd:postfix\" (want 1..32 letters, digits, '.', '_' or "
      "'-', not starting with '-')" },
    { "user_dash", "[shadowd]\nuser = -shadowd\n", 0, SHADOW_CONFIG_ERROR_VALUE,
      "2: [shadowd] user: bad name \"-shadowd\" (want 1..32 letters, digits, '.', '_' or '-', "
      "not starting with '-')" },
    { "user_long", "[shadowd]\nuser = abcdefghijklmnopqrstuvwxyz0123456\n", 0,
      SHADOW_CONFIG_ERROR_VALUE,
      "2: [shadowd] user: bad name \"abcdefghijklmnopqrstuvwxyz0123456\" (want 1..32 letters, "
      "digits, '.', '_' or '-', not starting with '-')" },
    { "group_slash", "[shadowd]\ngroup = mail/postfix\n", 0, SHADOW_CONFIG_ERROR_VALUE,
      "2: [shadowd] group: bad name \"mail/postfix\" (want 1..32 letters, digits, '.', '_' or "
      "'-', not starting with '-')" },
    { "allow_root_yes", "[shadowd]\nallow_root = yes\n", 0, SHADOW_CONFIG_ERROR_VALUE,
      "2: [shadowd] allow_root: bad boolean \"yes\" (want true or false)" },
    { "user_in_milter", "[milter a]\n" CONNECT "user = shadowd\n", 0, SHADOW_CONFIG_ERROR_KEY,
      "3: [milter a] user: unknown key (it belongs in [shadowd])" },
    { "bad_escape", "[shadowd]\nevent_log = /var/log/\\q.log\n", 0, SHADOW_CONFIG_ERROR_VALUE,
      "2: [shadowd] event_log: bad escape sequence in \"/var/log/\\q.log\"" },
    { "control_char", "[shadowd]\nevent_log = /var/log/a\\tb.log\n", 0, SHADOW_CONFIG_ERROR_VALUE,
      "2: [shadowd] event_log: control character in \"/var/log/a\\tb.log\"" },
};

/* test_bad_files - each bad file fails with its code and exact message */
START_TEST(test_bad_files)
{
    for (gsize i = 0; i < G_N_ELEMENTS(bad_files); i++) {
        gssize len = bad_files[i].len ? bad_files[i].len : -1;
        g_autofree char *path = write_conf(bad_files[i].name, bad_files[i].text, len);
        g_autofree char *want = g_strdup_printf("%s:%s", path, bad_files[i].want);
        g_autoptr(GError) error = NULL;
        g_autoptr(ShadowConfig) config = shadow_config_load(path, &error);

        ck_assert_msg(config == NULL, "%s: got success, want \"%s\"", bad_files[i].name, want);
        ck_assert_msg(error != NULL, "%s: got NULL and no error", bad_files[i].name);
        ck_assert_msg(strcmp(error->message, want) == 0, "%s:\n got  %s\n want %s",
                      bad_files[i].name, error->message, want);
        ck_assert_msg(g_error_matches(error, SHADOW_CONFIG_ERROR, (gint)bad_files[i].code),
                      "%s: got %s code %d, want SHADOW_CONFIG_ERROR code %d", bad_files[i].name,
                      g_quark_to_string(error->domain), error->code, bad_files[i].code);
        /* And with no GError to fill in. */
        ck_assert_ptr_null(shadow_config_load(path, NULL));
    }
}
END_TEST

/* test_syntax_lines - a syntax error is placed on its line wherever it is */
START_TEST(test_syntax_lines)
{
    enum { LINES = 20 };

    for (guint bad = 1; bad <= LINES; bad++) {
        g_autoptr(GString) text = g_string_new(NULL);
        g_autofree char *path = NULL;
        g_autofree char *want = NULL;
        g_autoptr(GError) error = NULL;
        g_autoptr(ShadowConfig) config = NULL;

        for (guint line = 1; line <= LINES; line++)
            g_string_append(text, line == bad ? "bad\n" : line == 1 ? "[shadowd]\n" : "# c\n");
        path = write_conf("syntax.conf", text->str, -1);
        want = g_strdup_printf("%s:%u: Key file contains line “bad” which is not a key-value "
                               "pair, group, or comment",
                               path, bad);
        config = shadow_config_load(path, &error);
        ck_assert_ptr_null(config);
        ck_assert_msg(error != NULL && strcmp(error->message, want) == 0,
                      "bad line %u:\n got  %s\n want %s", bad, error ? error->message : "(none)",
                      want);
    }
}
END_TEST

/* test_bad_addresses - shadow_address_parse() names the spec and the fault */
START_TEST(test_bad_addresses)
{
    static const struct {
        const char *spec;
        const char *want; /* after "bad address \"SPEC\": " */
    } cases[] = {
        { "", "want unix:/path, local:/path, inet:PORT@HOST, inet6:PORT@HOST or inet:HOST:PORT" },
        { "tcp:25@localhost",
          "want unix:/path, local:/path, inet:PORT@HOST, inet6:PORT@HOST or inet:HOST:PORT" },
        { "UNIX:/run/s.sock",
          "want unix:/path, local:/path, inet:PORT@HOST, inet6:PORT@HOST or inet:HOST:PORT" },
        { "/run/s.sock",
          "want unix:/path, local:/path, inet:PORT@HOST, inet6:PORT@HOST or inet:HOST:PORT" },
        { "unix:", "empty path" },
        { "local:", "empty path" },
        { "unix:run/s.sock", "path \"run/s.sock\" is not absolute" },
        { "local:s.sock", "path \"s.sock\" is not absolute" },
        { "inet:99999@127.0.0.1", "port 99999 out of range 1..65535" },
        { "inet:0@127.0.0.1", "port 0 out of range 1..65535" },
        { "inet:65536@127.0.0.1", "port 65536 out of range 1..65535" },
        { "inet:99999999999999999999999@127.0.0.1",
          "port 99999999999999999999999 out of range 1..65535" },
        { "inet:127.0.0.1:0", "port 0 out of range 1..65535" },
        { "inet:[::1]:70000", "port 70000 out of range 1..65535" },
        { "inet:milter@127.0.0.1", "port \"milter\" is not a decimal number" },
        { "inet:-1@127.0.0.1", "port \"-1\" is not a decimal number" },
        { "inet:+25@127.0.0.1", "port \"+25\" is not a decimal number" },
        { "inet: 25@127.0.0.1", "port \" 25\" is not a decimal number" },
        { "inet:localhost:smtp", "port \"smtp\" is not a decimal number" },
        { "inet:@127.0.0.1", "empty port" },
        { "inet:localhost:", "empty port" },
        { "inet:[::1]:", "empty port" },
        { "inet:25@", "empty host" },
        { "inet::25", "empty host" },
        { "inet:[]:25", "empty host" },
        { "inet6:25@", "empty host" },
        { "inet:25@mx 1", "bad host \"mx 1\"" },
        { "inet:25@mx/1", "bad host \"mx/1\"" },
        { "inet:25@1::2::3", "bad host \"1::2::3\"" },
        { "inet:8891", "want inet:PORT@HOST or inet:HOST:PORT" },
        { "inet:", "want inet:PORT@HOST or inet:HOST:PORT" },
        { "inet:::1:8891", "an IPv6 host goes in brackets, as in inet:[::1]:PORT" },
        { "inet:2001:db8::1:25", "an IPv6 host goes in brackets, as in inet:[::1]:PORT" },
        { "inet:[::1:8891", "missing \"]\" after the host" },
        { "inet:[::1]8891", "want \":PORT\" after \"]\"" },
        { "inet:[::1]", "want \":PORT\" after \"]\"" },
        { "inet:[localhost]:8891", "host \"localhost\" in brackets is not an IP address" },
        { "inet:25@[localhost]", "host \"localhost\" in brackets is not an IP address" },
        { "inet:25@[::1", "want [ADDRESS] after \"@[\"" },
        { "inet:25@[::1]x", "want [ADDRESS] after \"@[\"" },
        { "inet6:[::1]:8891", "want inet6:PORT@HOST" },
        { "inet6:8891", "want inet6:PORT@HOST" },
        { "inet6:8891@127.0.0.1", "host 127.0.0.1 is an IPv4 address (use inet:)" },
        { "inet6:8891@[127.0.0.1]", "host 127.0.0.1 is an IPv4 address (use inet:)" },
    };

    for (gsize i = 0; i < G_N_ELEMENTS(cases); i++) {
        g_autoptr(GError) error = NULL;
        g_autofree char *want =
            g_strdup_printf("bad address \"%s\": %s", cases[i].spec, cases[i].want);
        ShadowAddress got = { 0 };

        ck_assert_msg(!shadow_address_parse(cases[i].spec, &got, &error),
                      "address \"%s\": got success, want \"%s\"", cases[i].spec, want);
        ck_assert_msg(error != NULL && strcmp(error->message, want) == 0,
                      "address \"%s\":\n got  %s\n want %s", cases[i].spec,
                      error ? error->message : "(no error)", want);
        ck_assert_msg(g_error_matches(error, SHADOW_CONFIG_ERROR, SHADOW_CONFIG_ERROR_VALUE),
                      "address \"%s\": got %s code %d, want SHADOW_CONFIG_ERROR_VALUE",
                      cases[i].spec, g_quark_to_string(error->domain), error->code);
        ck_assert_msg(got.spec == NULL && got.host == NULL && got.path == NULL,
                      "address \"%s\": failed but filled in the address", cases[i].spec);
    }
}
END_TEST

/* test_address_limits - a unix path fills sun_path at most, a host name 253 bytes */
START_TEST(test_address_limits)
{
    static const struct {
        const char *prefix;
        gsize fill; /* bytes of 'a' after prefix */
        const char *suffix;
        const char *want; /* NULL: success */
    } cases[] = {
        { "unix:/", 106, "", NULL },
        { "unix:/", 107, "", "path is 108 bytes, more than 107" },
        { "inet:25@", 253, "", NULL },
        { "inet:25@", 254, "", "host name is 254 bytes, more than 253" },
        { "inet:", 254, ":25", "host name is 254 bytes, more than 253" },
    };

    for (gsize i = 0; i < G_N_ELEMENTS(cases); i++) {
        g_autofree char *fill = g_strnfill(cases[i].fill, 'a');
        g_autofree char *spec = g_strconcat(cases[i].prefix, fill, cases[i].suffix, NULL);
        g_autofree char *want = NULL;
        g_autoptr(GError) error = NULL;
        ShadowAddress got = { 0 };
        gboolean ok = shadow_address_parse(spec, &got, &error);

        shadow_address_clear(&got);
        if (cases[i].want == NULL) {
            ck_assert_msg(ok, "address %s%s: got \"%s\", want success", cases[i].prefix,
                          cases[i].suffix, error ? error->message : "");
            continue;
        }
        want = g_strdup_printf("bad address \"%s\": %s", spec, cases[i].want);
        ck_assert_msg(!ok && strcmp(error->message, want) == 0,
                      "%" G_GSIZE_FORMAT ": got %s, want %s", i, ok ? "success" : error->message,
                      want);
    }
}
END_TEST

/* shadow_config_suite - defaults, values, errors */
static Suite *
shadow_config_suite(void)
{
    Suite *s = suite_create("shadow_config");
    TCase *tc;

    tc = tcase_create("defaults");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_new_default);
    tcase_add_test(tc, test_empty_files);
    tcase_add_test(tc, test_shipped);
    tcase_add_test(tc, test_shipped_uncommented);
    tcase_add_test(tc, test_shipped_example);
    suite_add_tcase(s, tc);

    tc = tcase_create("values");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_durations);
    tcase_add_test(tc, test_sizes);
    tcase_add_test(tc, test_addresses);
    tcase_add_test(tc, test_key_values);
    tcase_add_test(tc, test_facilities);
    tcase_add_test(tc, test_full_file);
    tcase_add_test(tc, test_clear_null);
    suite_add_tcase(s, tc);

    tc = tcase_create("errors");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_missing_file);
    tcase_add_test(tc, test_bad_files);
    tcase_add_test(tc, test_syntax_lines);
    tcase_add_test(tc, test_bad_addresses);
    tcase_add_test(tc, test_address_limits);
    suite_add_tcase(s, tc);
    return s;
}

int
main(void)
{
    SRunner *sr = srunner_create(shadow_config_suite());
    int failed;

    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
