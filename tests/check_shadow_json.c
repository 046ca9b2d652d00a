/* SPDX-License-Identifier: MIT */
/*
 * NAME
 *	check_shadow_json - Check suite for the one-line JSON record writer
 * DESCRIPTION
 *	Written from the contract in shadow_json.h, not from the
 *	implementation. Every record the writer makes is run through a strict
 *	JSON parser in this file (RFC 8259: no raw control characters in
 *	strings, valid UTF-8 only, escapes and surrogate pairs checked,
 *	number grammar, nothing after the value). The parser prints the
 *	record in a canonical form (no spaces; in strings, printable ASCII as
 *	itself with \" and \\, every other code point as \u{hex}), so a test
 *	compares structure and decoded values without depending on which
 *	equivalent escape the writer picked.
 *
 *	escape: a table of byte strings (quotes, backslash, every control
 *	character, NUL, valid UTF-8 of every length, and malformed UTF-8 of
 *	every kind), written with shadow_json_strn(), shadow_json_str() and
 *	shadow_json_escape(); valid UTF-8 must pass through as raw bytes, a
 *	byte that is not UTF-8 must become \u00XX of its value. structure:
 *	scalars, nesting, arrays with NULL keys, the depth limit, records
 *	appended one after another to one GString.
 */

/* System library. */
#include <stdlib.h>
#include <string.h>

/* Check. */
#include <check.h>

/* Shadow libraries. */
#include "shadow_json.h"

/* Parser - strict JSON reader that writes the canonical form */
typedef struct {
    const char *p;
    const char *end;
    GString *out;
    const char *error; /* first error, static text */
    gsize error_at;
    const char *start;
} Parser;

static gboolean parse_value(Parser *ps, guint depth);

/* parse_fail - record the first parse error and its offset */
static gboolean
parse_fail(Parser *ps, const char *what)
{
    if (ps->error == NULL) {
        ps->error = what;
        ps->error_at = (gsize)(ps->p - ps->start);
    }
    return FALSE;
}

/* skip_ws - the four JSON whitespace characters */
static void
skip_ws(Parser *ps)
{
    while (ps->p < ps->end && (*ps->p == ' ' || *ps->p == '\t' || *ps->p == '\n' || *ps->p == '\r'))
        ps->p++;
}

/* emit_cp - one code point in the canonical form */
static void
emit_cp(GString *out, gunichar cp)
{
    if (cp == '"')
        g_string_append(out, "\\\"");
    else if (cp == '\\')
        g_string_append(out, "\\\\");
    else if (cp >= 0x20 && cp < 0x7f)
        g_string_append_c(out, (char)cp);
    else
        g_string_append_printf(out, "\\u{%x}", cp);
}

/* hex4 - four hex digits of a \u escape */
static gboolean
hex4(Parser *ps, guint *v)
{
    *v = 0;
    for (int i = 0; i < 4; i++) {
        int d;

        if (ps->p >= ps->end || (d = g_ascii_xdigit_value(*ps->p)) < 0)
            return parse_fail(ps, "bad \\u escape");
        *v = *v * 16 + (guint)d;
        ps->p++;
    }
    return TRUE;
}

/* parse_string - a JSON string, decoded and written canonically */
static gboolean
parse_string(Parser *ps)
{
    if (ps->p >= ps->end || *ps->p != '"')
        return parse_fail(ps, "string expected");
    ps->p++;
    g_string_append_c(ps->out, '"');
    for (;;) {
        guchar c;

        if (ps->p >= ps->end)
            return parse_fail(ps, "unterminated string");
        c = (guchar)*ps->p;
        if (c == '"') {
            ps->p++;
            break;
        }
        if (c < 0x20)
            return parse_fail(ps, "raw control character in string");
        if (c == '\\') {
            guint u, lo;

            ps->p++;
            if (ps->p >= ps->end)
                return parse_fail(ps, "unterminated escape");
            switch (*ps->p++) {
            case '"':
                emit_cp(ps->out, '"');
                break;
            case '\\':
                emit_cp(ps->out, '\\');
                break;
            case '/':
                emit_cp(ps->out, '/');
                break;
            case 'b':
                emit_cp(ps->out, '\b');
                break;
            case 'f':
                emit_cp(ps->out, '\f');
                break;
            case 'n':
                emit_cp(ps->out, '\n');
                break;
            case 'r':
                emit_cp(ps->out, '\r');
                break;
            case 't':
                emit_cp(ps->out, '\t');
                break;
            case 'u':
                if (!hex4(ps, &u))
                    return FALSE;
                if (u >= 0xdc00 && u <= 0xdfff)
                    return parse_fail(ps, "lone low surrogate");
                if (u >= 0xd800 && u <= 0xdbff) {
                    if (ps->end - ps->p < 2 || ps->p[0] != '\\' || ps->p[1] != 'u')
                        return parse_fail(ps, "high surrogate without low");
                    ps->p += 2;
                    if (!hex4(ps, &lo))
                        return FALSE;
                    if (lo < 0xdc00 || lo > 0xdfff)
                        return parse_fail(ps, "high surrogate without low");
                    u = 0x10000 + ((u - 0xd800) << 10) + (lo - 0xdc00);
                }
                emit_cp(ps->out, u);
                break;
            default:
                return parse_fail(ps, "unknown escape");
            }
            continue;
        }
        if (c < 0x80) {
            emit_cp(ps->out, c);
            ps->p++;
        } else {
            gunichar cp = g_utf8_get_char_validated(ps->p, ps->end - ps->p);

            if (cp == (gunichar)-1 || cp == (gunichar)-2)
                return parse_fail(ps, "invalid UTF-8 in string");
            emit_cp(ps->out, cp);
            ps->p = g_utf8_next_char(ps->p);
        }
    }
    g_string_append_c(ps->out, '"');
    return TRUE;
}

/* parse_number - RFC 8259 number grammar, copied as written */
static gboolean
parse_number(Parser *ps)
{
    const char *s = ps->p;

    if (ps->p < ps->end && *ps->p == '-')
        ps->p++;
    if (ps->p >= ps->end || !g_ascii_isdigit(*ps->p))
        return parse_fail(ps, "bad number");
    if (*ps->p == '0')
        ps->p++;
    else
        while (ps->p < ps->end && g_ascii_isdigit(*ps->p))
            ps->p++;
    if (ps->p < ps->end && *ps->p == '.') {
        ps->p++;
        if (ps->p >= ps->end || !g_ascii_isdigit(*ps->p))
            return parse_fail(ps, "bad fraction");
        while (ps->p < ps->end && g_ascii_isdigit(*ps->p))
            ps->p++;
    }
    if (ps->p < ps->end && (*ps->p == 'e' || *ps->p == 'E')) {
        ps->p++;
        if (ps->p < ps->end && (*ps->p == '+' || *ps->p == '-'))
            ps->p++;
        if (ps->p >= ps->end || !g_ascii_isdigit(*ps->p))
            return parse_fail(ps, "bad exponent");
        while (ps->p < ps->end && g_ascii_isdigit(*ps->p))
            ps->p++;
    }
    g_string_append_len(ps->out, s, ps->p - s);
    return TRUE;
}

/* parse_word - true, false or null */
static gboolean
parse_word(Parser *ps, const char *word)
{
    gsize n = strlen(word);

    if ((gsize)(ps->end - ps->p) < n || memcmp(ps->p, word, n) != 0)
        return parse_fail(ps, "unexpected character");
    ps->p += n;
    g_string_append(ps->out, word);
    return TRUE;
}

/* parse_container - an object or an array */
static gboolean
parse_container(Parser *ps, guint depth, gboolean object)
{
    char close = object ? '}' : ']';

    g_string_append_c(ps->out, *ps->p++);
    skip_ws(ps);
    if (ps->p < ps->end && *ps->p == close) {
        g_string_append_c(ps->out, *ps->p++);
        return TRUE;
    }
    for (;;) {
        skip_ws(ps);
        if (object) {
            if (!parse_string(ps))
                return FALSE;
            skip_ws(ps);
            if (ps->p >= ps->end || *ps->p != ':')
                return parse_fail(ps, "':' expected");
            g_string_append_c(ps->out, *ps->p++);
        }
        if (!parse_value(ps, depth + 1))
            return FALSE;
        skip_ws(ps);
        if (ps->p < ps->end && *ps->p == ',') {
            g_string_append_c(ps->out, *ps->p++);
            continue;
        }
        if (ps->p < ps->end && *ps->p == close) {
            g_string_append_c(ps->out, *ps->p++);
            return TRUE;
        }
        return parse_fail(ps, object ? "',' or '}' expected" : "',' or ']' expected");
    }
}

/* parse_value - any JSON value */
static gboolean
parse_value(Parser *ps, guint depth)
{
    if (depth > 64)
        return parse_fail(ps, "too deep");
    skip_ws(ps);
    if (ps->p >= ps->end)
        return parse_fail(ps, "value expected");
    switch (*ps->p) {
    case '{':
        return parse_container(ps, depth, TRUE);
    case '[':
        return parse_container(ps, depth, FALSE);
    case '"':
        return parse_string(ps);
    case 't':
        return parse_word(ps, "true");
    case 'f':
        return parse_word(ps, "false");
    case 'n':
        return parse_word(ps, "null");
    default:
        return parse_number(ps);
    }
}

/*
 * json_canon - parse one JSON object record; its canonical form, or NULL
 *
 * On failure *error says what and where. Whitespace around the value is
 * allowed, a newline inside the record is not (records are one line).
 */
static char *
json_canon(const char *buf, gsize len, char **error)
{
    Parser ps = { buf, buf + len, g_string_new(NULL), NULL, 0, buf };
    const char *nl = memchr(buf, '\n', len);

    if (nl && nl != buf + len - 1) {
        *error = g_strdup_printf("newline inside the record at byte %zu", (gsize)(nl - buf));
        g_string_free(ps.out, TRUE);
        return NULL;
    }
    skip_ws(&ps);
    if (ps.p >= ps.end || *ps.p != '{')
        parse_fail(&ps, "record is not an object");
    else if (parse_value(&ps, 0)) {
        skip_ws(&ps);
        if (ps.p != ps.end)
            parse_fail(&ps, "trailing bytes after the record");
    }
    if (ps.error) {
        *error = g_strdup_printf("%s at byte %zu", ps.error, ps.error_at);
        g_string_free(ps.out, TRUE);
        return NULL;
    }
    *error = NULL;
    return g_string_free(ps.out, FALSE);
}

/* show - a buffer as C-escaped text (NUL and non-ASCII as \xNN), for failure messages */
static char *
show(const char *buf, gsize len)
{
    GString *s = g_string_new(NULL);

    for (gsize i = 0; i < len; i++) {
        guchar c = (guchar)buf[i];

        if (c >= 0x20 && c < 0x7f && c != '\\')
            g_string_append_c(s, (char)c);
        else
            g_string_append_printf(s, "\\x%02x", c);
    }
    return g_string_free(s, FALSE);
}

/* assert_record - out holds one record whose canonical form is want */
static void
assert_record(const char *id, const GString *out, const char *want)
{
    g_autofree char *error = NULL;
    g_autofree char *got = json_canon(out->str, out->len, &error);
    g_autofree char *raw = show(out->str, out->len);

    ck_assert_msg(got != NULL, "%s: does not parse: %s\n in %s", id, error, raw);
    ck_assert_msg(strcmp(got, want) == 0, "%s:\n got %s\nwant %s\n raw %s", id, got, want, raw);
}

/* EscapeCase - bytes to write, their decoded value, and raw text that must (not) appear */
typedef struct {
    const char *id;
    const char *in;
    gsize len;
    const char *want;   /* canonical, without the quotes */
    const char *raw;    /* must appear verbatim in the output, or NULL */
    const char *raw_ci; /* must appear, ignoring ASCII case, or NULL */
} EscapeCase;

#define E(id, lit, want, raw, raw_ci)                                                              \
    {                                                                                              \
        id, lit, sizeof(lit) - 1, want, raw, raw_ci                                                \
    }

static const EscapeCase escape_cases[] = {
    E("plain", "hello", "hello", "\"hello\"", NULL),
    E("empty", "", "", "\"\"", NULL),
    E("quote", "say \"hi\"", "say \\\"hi\\\"", "say \\\"hi\\\"", NULL),
    E("backslash", "a\\b", "a\\\\b", "a\\\\b", NULL),
    E("quote_backslash_end", "\\\"", "\\\\\\\"", NULL, NULL),
    E("slash", "a/b", "a/b", NULL, NULL),
    E("newline", "a\nb", "a\\u{a}b", NULL, NULL),
    E("crlf", "a\r\nb", "a\\u{d}\\u{a}b", NULL, NULL),
    E("tab", "\tx", "\\u{9}x", NULL, NULL),
    E("nul", "a\0b", "a\\u{0}b", NULL, NULL),
    E("controls",
      "\x01\x02\x03\x04\x05\x06\x07\x08\x0b\x0c\x0e\x0f\x10\x11\x12\x13\x14\x15\x16\x17"
      "\x18\x19\x1a\x1b\x1c\x1d\x1e\x1f",
      "\\u{1}\\u{2}\\u{3}\\u{4}\\u{5}\\u{6}\\u{7}\\u{8}\\u{b}\\u{c}\\u{e}\\u{f}\\u{10}\\u{11}"
      "\\u{12}\\u{13}\\u{14}\\u{15}\\u{16}\\u{17}\\u{18}\\u{19}\\u{1a}\\u{1b}\\u{1c}\\u{1d}"
      "\\u{1e}\\u{1f}",
      NULL, NULL),
    E("del", "a\x7f", "a\\u{7f}", NULL, NULL),
    E("printable_ascii", " !#$%&'()*+,-.0123456789:;<=>?@AZ[]^_`az{|}~",
      " !#$%&'()*+,-.0123456789:;<=>?@AZ[]^_`az{|}~",
      " !#$%&'()*+,-.0123456789:;<=>?@AZ[]^_`az{|}~", NULL),
    /* Valid UTF-8 passes through as the same bytes. */
    E("utf8_2", "caf\xc3\xa9", "caf\\u{e9}", "caf\xc3\xa9", NULL),
    E("utf8_3", "5 \xe2\x82\xac", "5 \\u{20ac}", "5 \xe2\x82\xac", NULL),
    E("utf8_4", "\xf0\x9f\x98\x80!", "\\u{1f600}!", "\xf0\x9f\x98\x80!", NULL),
    E("utf8_line_separator", "a\xe2\x80\xa8z", "a\\u{2028}z", "a\xe2\x80\xa8z", NULL),
    E("utf8_max", "\xf4\x8f\xbf\xbf", "\\u{10ffff}", "\xf4\x8f\xbf\xbf", NULL),
    E("utf8_nbsp", "\xc2\xa0", "\\u{a0}", "\xc2\xa0", NULL),
    /* U+0085, a C1 control in valid UTF-8: raw or escaped, it must decode the same. */
    E("utf8_c1_control", "\xc2\x85", "\\u{85}", NULL, NULL),
    /* Bytes that are not UTF-8 become \u00XX of their value. */
    E("latin1_ff", "\xff", "\\u{ff}", NULL, "\\u00ff"),
    E("latin1_word",
      "Gr\xfc\xdf"
      "e",
      "Gr\\u{fc}\\u{df}e", NULL, "Gr\\u00fc\\u00dfe"),
    E("lone_continuation", "\x80", "\\u{80}", NULL, "\\u0080"),
    E("truncated_2_at_end", "x\xc3", "x\\u{c3}", NULL, "x\\u00c3"),
    E("truncated_2_then_ascii", "\xc3(", "\\u{c3}(", NULL, "\\u00c3("),
    E("truncated_3_then_ascii",
      "\xe2\x82"
      "A",
      "\\u{e2}\\u{82}A", NULL, "\\u00e2\\u0082A"),
    E("truncated_4_at_end", "\xf0\x9f\x98", "\\u{f0}\\u{9f}\\u{98}", NULL, NULL),
    E("overlong_2", "\xc0\xaf", "\\u{c0}\\u{af}", NULL, "\\u00c0\\u00af"),
    E("overlong_3", "\xe0\x80\xaf", "\\u{e0}\\u{80}\\u{af}", NULL, NULL),
    E("surrogate", "\xed\xa0\x80", "\\u{ed}\\u{a0}\\u{80}", NULL, "\\u00ed\\u00a0\\u0080"),
    E("above_10ffff", "\xf4\x90\x80\x80", "\\u{f4}\\u{90}\\u{80}\\u{80}", NULL, NULL),
    E("five_byte_form", "\xf8\x88\x80\x80\x80", "\\u{f8}\\u{88}\\u{80}\\u{80}\\u{80}", NULL, NULL),
    E("fe_ff", "\xfe\xff", "\\u{fe}\\u{ff}", NULL, NULL),
    E("invalid_then_valid", "\xff\xc3\xa9", "\\u{ff}\\u{e9}", "\xc3\xa9", "\\u00ff"),
    E("valid_invalid_valid", "\xc3\xa9\xa9\xc3\xa9", "\\u{e9}\\u{a9}\\u{e9}", NULL, NULL),
    E("invalid_then_quote", "\xc3\"", "\\u{c3}\\\"", NULL, NULL),
    E("invalid_then_nul", "\xe2\0", "\\u{e2}\\u{0}", NULL, NULL),
};

/* contains_ci - needle in haystack (len bytes), ignoring ASCII case */
static gboolean
contains_ci(const char *hay, gsize len, const char *needle)
{
    gsize n = strlen(needle);

    for (gsize i = 0; i + n <= len; i++)
        if (g_ascii_strncasecmp(hay + i, needle, n) == 0)
            return TRUE;
    return FALSE;
}

/* contains - needle in haystack (len bytes), exactly */
static gboolean
contains(const char *hay, gsize len, const char *needle)
{
    gsize n = strlen(needle);

    for (gsize i = 0; i + n <= len; i++)
        if (memcmp(hay + i, needle, n) == 0)
            return TRUE;
    return FALSE;
}

/* test_escape - one table string: strn, str and escape agree and decode to want */
START_TEST(test_escape)
{
    const EscapeCase *ec = &escape_cases[_i];
    g_autoptr(GString) out = g_string_new(NULL);
    g_autofree char *want = g_strdup_printf("{\"s\":\"%s\"}", ec->want);
    g_autofree char *raw = NULL;
    ShadowJson j;

    shadow_json_begin(&j, out);
    shadow_json_strn(&j, "s", ec->in, ec->len);
    shadow_json_end(&j);
    assert_record(ec->id, out, want);
    raw = show(out->str, out->len);
    if (ec->raw)
        ck_assert_msg(contains(out->str, out->len, ec->raw), "%s: raw output %s lacks %s", ec->id,
                      raw, ec->raw);
    if (ec->raw_ci)
        ck_assert_msg(contains_ci(out->str, out->len, ec->raw_ci), "%s: raw output %s lacks %s",
                      ec->id, raw, ec->raw_ci);

    /* shadow_json_str gives the same bytes when there is no NUL inside. */
    if (memchr(ec->in, '\0', ec->len) == NULL) {
        g_autoptr(GString) out2 = g_string_new(NULL);

        shadow_json_begin(&j, out2);
        shadow_json_str(&j, "s", ec->in);
        shadow_json_end(&j);
        ck_assert_msg(g_string_equal(out, out2), "%s: str and strn differ", ec->id);
    }

    /* shadow_json_escape writes the same string, with or without its quotes. */
    {
        g_autoptr(GString) esc = g_string_new(NULL);
        g_autofree char *esc_shown = NULL;
        const char *tok = memchr(out->str, ':', out->len);
        const char *end = out->str + out->len;

        shadow_json_escape(esc, ec->in, ec->len);
        esc_shown = show(esc->str, esc->len);
        /* The value token: between ':' and the closing '}', without whitespace. */
        ck_assert_ptr_nonnull(tok);
        tok++;
        while (end > tok && end[-1] != '}')
            end--;
        end--;
        while (tok < end && g_ascii_isspace(*tok))
            tok++;
        while (end > tok && g_ascii_isspace(end[-1]))
            end--;
        if (esc->len > 0 && esc->str[0] == '"')
            ck_assert_msg(esc->len == (gsize)(end - tok) && memcmp(esc->str, tok, esc->len) == 0,
                          "%s: escape gave %s, the record has %s", ec->id, esc_shown, raw);
        else
            ck_assert_msg(esc->len + 2 == (gsize)(end - tok) &&
                              memcmp(esc->str, tok + 1, esc->len) == 0,
                          "%s: escape gave %s, the record has %s", ec->id, esc_shown, raw);
    }
}
END_TEST

/* test_escape_appends - escape appends to what the GString already holds */
START_TEST(test_escape_appends)
{
    g_autoptr(GString) out = g_string_new("keep:");

    shadow_json_escape(out, "a\"b", 3);
    ck_assert(g_str_has_prefix(out->str, "keep:"));
    ck_assert_msg(contains(out->str, out->len, "a\\\"b"), "got %s, want it to hold a\\\"b",
                  out->str);
}
END_TEST

/* test_strn_length - strn writes exactly len bytes, not up to the NUL */
START_TEST(test_strn_length)
{
    g_autoptr(GString) out = g_string_new(NULL);
    ShadowJson j;

    shadow_json_begin(&j, out);
    shadow_json_strn(&j, "a", "abcdef", 3);
    shadow_json_strn(&j, "b", "abcdef", 0);
    shadow_json_strn(&j, "c", "\xc3\xa9xyz", 1); /* cut inside a character */
    shadow_json_end(&j);
    assert_record("strn_length", out, "{\"a\":\"abc\",\"b\":\"\",\"c\":\"\\u{c3}\"}");
}
END_TEST

/* test_keys_escaped - keys are strings too, and get the same escaping */
START_TEST(test_keys_escaped)
{
    g_autoptr(GString) out = g_string_new(NULL);
    ShadowJson j;

    shadow_json_begin(&j, out);
    shadow_json_str(&j, "we\"ird\\\n", "v");
    shadow_json_int(&j, "caf\xc3\xa9", 1);
    shadow_json_bool(&j, "\xff", TRUE);
    shadow_json_end(&j);
    assert_record("keys_escaped", out,
                  "{\"we\\\"ird\\\\\\u{a}\":\"v\",\"caf\\u{e9}\":1,\"\\u{ff}\":true}");
}
END_TEST

/* test_scalars - every scalar type, the int64 extremes included */
START_TEST(test_scalars)
{
    g_autoptr(GString) out = g_string_new(NULL);
    ShadowJson j;

    shadow_json_begin(&j, out);
    shadow_json_str(&j, "type", "verdict");
    shadow_json_int(&j, "n", 3);
    shadow_json_bool(&j, "t", TRUE);
    shadow_json_bool(&j, "f", FALSE);
    shadow_json_bool(&j, "t2", 42); /* any non-zero gboolean is true */
    shadow_json_null(&j, "z");
    shadow_json_int(&j, "zero", 0);
    shadow_json_int(&j, "neg", -42);
    shadow_json_int(&j, "max", G_MAXINT64);
    shadow_json_int(&j, "min", G_MININT64);
    shadow_json_end(&j);
    assert_record("scalars", out,
                  "{\"type\":\"verdict\",\"n\":3,\"t\":true,\"f\":false,\"t2\":true,\"z\":null,"
                  "\"zero\":0,\"neg\":-42,\"max\":9223372036854775807,"
                  "\"min\":-9223372036854775808}");
}
END_TEST

/* test_empty - an empty record, an empty object and an empty array */
START_TEST(test_empty)
{
    g_autoptr(GString) out = g_string_new(NULL);
    ShadowJson j;

    shadow_json_begin(&j, out);
    shadow_json_end(&j);
    assert_record("empty_record", out, "{}");

    g_string_truncate(out, 0);
    shadow_json_begin(&j, out);
    shadow_json_object_begin(&j, "o");
    shadow_json_object_end(&j);
    shadow_json_array_begin(&j, "a");
    shadow_json_array_end(&j);
    shadow_json_int(&j, "after", 1);
    shadow_json_end(&j);
    assert_record("empty_containers", out, "{\"o\":{},\"a\":[],\"after\":1}");
}
END_TEST

/* test_nesting - objects in objects, arrays of every value with NULL keys */
START_TEST(test_nesting)
{
    g_autoptr(GString) out = g_string_new(NULL);
    ShadowJson j;

    shadow_json_begin(&j, out);
    shadow_json_str(&j, "type", "verdict");
    shadow_json_object_begin(&j, "a");
    shadow_json_object_begin(&j, "b");
    shadow_json_int(&j, "c", 1);
    shadow_json_object_end(&j);
    shadow_json_array_begin(&j, "d");
    shadow_json_array_end(&j);
    shadow_json_object_end(&j);
    shadow_json_array_begin(&j, "rcpts");
    shadow_json_str(&j, NULL, "<a@example.net>");
    shadow_json_str(&j, NULL, "<b@example.net>");
    shadow_json_array_end(&j);
    shadow_json_array_begin(&j, "mixed");
    shadow_json_int(&j, NULL, 1);
    shadow_json_strn(&j, NULL, "tw\"o", 4);
    shadow_json_bool(&j, NULL, TRUE);
    shadow_json_null(&j, NULL);
    shadow_json_object_begin(&j, NULL);
    shadow_json_str(&j, "k", "v");
    shadow_json_array_begin(&j, "in");
    shadow_json_int(&j, NULL, -1);
    shadow_json_array_end(&j);
    shadow_json_object_end(&j);
    shadow_json_array_begin(&j, NULL);
    shadow_json_array_end(&j);
    shadow_json_array_begin(&j, NULL);
    shadow_json_int(&j, NULL, 3);
    shadow_json_array_begin(&j, NULL);
    shadow_json_int(&j, NULL, 4);
    shadow_json_array_end(&j);
    shadow_json_array_end(&j);
    shadow_json_object_begin(&j, NULL);
    shadow_json_object_end(&j);
    shadow_json_array_end(&j);
    shadow_json_int(&j, "last", 0);
    shadow_json_end(&j);
    assert_record("nesting", out,
                  "{\"type\":\"verdict\",\"a\":{\"b\":{\"c\":1},\"d\":[]},"
                  "\"rcpts\":[\"<a@example.net>\",\"<b@example.net>\"],"
                  "\"mixed\":[1,\"tw\\\"o\",true,null,{\"k\":\"v\",\"in\":[-1]},[],[3,[4]],{}],"
                  "\"last\":0}");
}
END_TEST

/* test_array_of_verdicts - the shape a ledger line uses: an array of objects */
START_TEST(test_array_of_verdicts)
{
    static const char *const names[] = { "spamd", "clam\"av", "grey\xfflist" };
    g_autoptr(GString) out = g_string_new(NULL);
    ShadowJson j;

    shadow_json_begin(&j, out);
    shadow_json_array_begin(&j, "children");
    for (gsize i = 0; i < G_N_ELEMENTS(names); i++) {
        shadow_json_object_begin(&j, NULL);
        shadow_json_str(&j, "milter", names[i]);
        shadow_json_int(&j, "ms", (gint64)i * 10);
        shadow_json_object_end(&j);
    }
    shadow_json_array_end(&j);
    shadow_json_end(&j);
    assert_record("array_of_verdicts", out,
                  "{\"children\":[{\"milter\":\"spamd\",\"ms\":0},{\"milter\":\"clam\\\"av\","
                  "\"ms\":10},{\"milter\":\"grey\\u{ff}list\",\"ms\":20}]}");
}
END_TEST

/* test_max_depth - SHADOW_JSON_MAX_DEPTH levels, the record's own object included */
START_TEST(test_max_depth)
{
    g_autoptr(GString) out = g_string_new(NULL);
    g_autoptr(GString) want = g_string_new("{");
    gboolean is_array[SHADOW_JSON_MAX_DEPTH] = { FALSE }; /* level 0: the record */
    ShadowJson j;

    /* Levels 1..MAX-1 alternate array and object, each after a scalar sibling. */
    shadow_json_begin(&j, out);
    for (guint l = 1; l < SHADOW_JSON_MAX_DEPTH; l++) {
        gboolean in_array = is_array[l - 1];
        const char *key = in_array ? NULL : "x";

        if (in_array) {
            shadow_json_int(&j, NULL, l);
            g_string_append_printf(want, "%u,", l);
        } else {
            shadow_json_int(&j, "n", l);
            g_string_append_printf(want, "\"n\":%u,\"x\":", l);
        }
        is_array[l] = l % 2 == 1;
        if (is_array[l]) {
            shadow_json_array_begin(&j, key);
            g_string_append_c(want, '[');
        } else {
            shadow_json_object_begin(&j, key);
            g_string_append_c(want, '{');
        }
    }
    if (is_array[SHADOW_JSON_MAX_DEPTH - 1]) {
        shadow_json_str(&j, NULL, "deepest");
        g_string_append(want, "\"deepest\"");
    } else {
        shadow_json_str(&j, "deepest", "yes");
        g_string_append(want, "\"deepest\":\"yes\"");
    }
    /* Close them again, each followed by a sibling in its parent. */
    for (guint l = SHADOW_JSON_MAX_DEPTH - 1; l >= 1; l--) {
        if (is_array[l]) {
            shadow_json_array_end(&j);
            g_string_append_c(want, ']');
        } else {
            shadow_json_object_end(&j);
            g_string_append_c(want, '}');
        }
        if (is_array[l - 1]) {
            shadow_json_int(&j, NULL, -(gint64)l);
            g_string_append_printf(want, ",-%u", l);
        } else {
            shadow_json_int(&j, "after", l);
            g_string_append_printf(want, ",\"after\":%u", l);
        }
    }
    shadow_json_end(&j);
    g_string_append_c(want, '}');
    ck_assert_uint_eq(j.depth, 0);
    assert_record("max_depth", out, want->str);
}
END_TEST

/* test_records_append - records go one after another into one buffer */
START_TEST(test_records_append)
{
    g_autoptr(GString) out = g_string_new(NULL);
    g_auto(GStrv) lines = NULL;
    g_autofree char *first = NULL;
    ShadowJson j;

    shadow_json_begin(&j, out);
    shadow_json_str(&j, "type", "session");
    shadow_json_int(&j, "n", 1);
    shadow_json_end(&j);
    if (out->len == 0 || out->str[out->len - 1] != '\n')
        g_string_append_c(out, '\n');
    first = g_strdup(out->str);

    shadow_json_begin(&j, out); /* same writer: fresh comma state */
    shadow_json_str(&j, "type", "verdict");
    shadow_json_end(&j);

    ck_assert_msg(g_str_has_prefix(out->str, first), "the second record changed the first:\n%s",
                  out->str);
    lines = g_strsplit(out->str, "\n", -1);
    ck_assert_ptr_nonnull(lines[0]);
    ck_assert_ptr_nonnull(lines[1]);
    {
        g_autoptr(GString) a = g_string_new(lines[0]);
        g_autoptr(GString) b = g_string_new(lines[1]);

        assert_record("record_1", a, "{\"type\":\"session\",\"n\":1}");
        assert_record("record_2", b, "{\"type\":\"verdict\"}");
    }
    ck_assert_msg(lines[2] == NULL || lines[2][0] == '\0', "got a third line \"%s\"", lines[2]);
}
END_TEST

/* test_appends_to_buffer - begin keeps what the GString already holds */
START_TEST(test_appends_to_buffer)
{
    g_autoptr(GString) out = g_string_new("2026-12-04T10:00:00Z ");
    g_autoptr(GString) rec = NULL;
    ShadowJson j;

    shadow_json_begin(&j, out);
    shadow_json_int(&j, "n", 7);
    shadow_json_end(&j);
    ck_assert(g_str_has_prefix(out->str, "2026-12-04T10:00:00Z "));
    rec = g_string_new(out->str + strlen("2026-12-04T10:00:00Z "));
    assert_record("appends_to_buffer", rec, "{\"n\":7}");
}
END_TEST

/* test_parser_rejects - the checker itself refuses what is not JSON */
START_TEST(test_parser_rejects)
{
    static const char *const bad[] = {
        "",
        "[]",
        "{",
        "{\"a\":1,}",
        "{\"a\" 1}",
        "{\"a\":01}",
        "{\"a\":\"x\ny\"}",
        "{\"a\":\"\\x41\"}",
        "{\"a\":\"\xff\"}",
        "{\"a\":\"\\ud800\"}",
        "{\"a\":tru}",
        "{\"a\":1}{",
        "{\"a\":1}\n{\"b\":2}",
        "{a:1}",
    };

    for (gsize i = 0; i < G_N_ELEMENTS(bad); i++) {
        g_autofree char *error = NULL;
        g_autofree char *got = json_canon(bad[i], strlen(bad[i]), &error);

        ck_assert_msg(got == NULL, "parser accepted %s as %s", bad[i], got);
        ck_assert_ptr_nonnull(error);
    }
}
END_TEST

/* shadow_json_suite - escape, structure */
static Suite *
shadow_json_suite(void)
{
    Suite *s = suite_create("shadow_json");
    TCase *tc;

    tc = tcase_create("escape");
    tcase_add_loop_test(tc, test_escape, 0, (int)G_N_ELEMENTS(escape_cases));
    tcase_add_test(tc, test_escape_appends);
    tcase_add_test(tc, test_strn_length);
    tcase_add_test(tc, test_keys_escaped);
    suite_add_tcase(s, tc);

    tc = tcase_create("structure");
    tcase_add_test(tc, test_parser_rejects);
    tcase_add_test(tc, test_scalars);
    tcase_add_test(tc, test_empty);
    tcase_add_test(tc, test_nesting);
    tcase_add_test(tc, test_array_of_verdicts);
    tcase_add_test(tc, test_max_depth);
    tcase_add_test(tc, test_records_append);
    tcase_add_test(tc, test_appends_to_buffer);
    suite_add_tcase(s, tc);
    return s;
}

int
main(void)
{
    SRunner *sr = srunner_create(shadow_json_suite());
    int failed;

    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
