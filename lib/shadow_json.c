/* SPDX-License-Identifier: MIT */
/*
 * NAME
 *	shadow_json - append-only JSON object writer for one-line records
 * DESCRIPTION
 *	See shadow_json.h. A NULL key means "inside an array": the value is
 *	written without a name.
 */

/* System library. */
#include <string.h>

/* Shadow libraries. */
#include "shadow_json.h"

/* shadow_json_escape - append s as a JSON string, quotes included */
void
shadow_json_escape(GString *out, const char *s, gsize len)
{
    static const char hex[] = "0123456789abcdef";
    const char *p = s, *end = s + len;

    g_string_append_c(out, '"');
    while (p < end) {
        guchar c = (guchar)*p;

        if (c < 0x80) {
            switch (c) {
            case '"':
                g_string_append(out, "\\\"");
                break;
            case '\\':
                g_string_append(out, "\\\\");
                break;
            case '\n':
                g_string_append(out, "\\n");
                break;
            case '\r':
                g_string_append(out, "\\r");
                break;
            case '\t':
                g_string_append(out, "\\t");
                break;
            default:
                if (c < 0x20 || c == 0x7f) {
                    g_string_append(out, "\\u00");
                    g_string_append_c(out, hex[c >> 4]);
                    g_string_append_c(out, hex[c & 0xf]);
                } else {
                    g_string_append_c(out, (char)c);
                }
            }
            p++;
            continue;
        }
        /* A whole valid UTF-8 sequence passes; a stray byte is escaped alone. */
        {
            gunichar u = g_utf8_get_char_validated(p, end - p);

            if (u != (gunichar)-1 && u != (gunichar)-2) {
                const char *after = g_utf8_next_char(p);

                g_string_append_len(out, p, after - p);
                p = after;
                continue;
            }
        }
        g_string_append(out, "\\u00");
        g_string_append_c(out, hex[c >> 4]);
        g_string_append_c(out, hex[c & 0xf]);
        p++;
    }
    g_string_append_c(out, '"');
}

/* key - comma if due, then "key": unless inside an array */
static void
key(ShadowJson *j, const char *k)
{
    g_return_if_fail(j->depth > 0);
    if (j->need_comma[j->depth - 1])
        g_string_append_c(j->out, ',');
    j->need_comma[j->depth - 1] = TRUE;
    if (k != NULL) {
        shadow_json_escape(j->out, k, strlen(k));
        g_string_append_c(j->out, ':');
    }
}

/* open_level - start a nested object or array */
static void
open_level(ShadowJson *j, const char *k, char c)
{
    g_return_if_fail(j->depth < SHADOW_JSON_MAX_DEPTH);
    if (j->depth > 0)
        key(j, k);
    g_string_append_c(j->out, c);
    j->need_comma[j->depth++] = FALSE;
}

/* close_level - end a nested object or array */
static void
close_level(ShadowJson *j, char c)
{
    g_return_if_fail(j->depth > 0);
    j->depth--;
    g_string_append_c(j->out, c);
}

/* shadow_json_begin - start the top-level object */
void
shadow_json_begin(ShadowJson *j, GString *out)
{
    j->out = out;
    j->depth = 0;
    open_level(j, NULL, '{');
}

/* shadow_json_end - end the top-level object */
void
shadow_json_end(ShadowJson *j)
{
    close_level(j, '}');
    g_warn_if_fail(j->depth == 0);
}

/* shadow_json_str - "key":"value"; a NULL value writes null */
void
shadow_json_str(ShadowJson *j, const char *k, const char *value)
{
    if (value == NULL) {
        shadow_json_null(j, k);
        return;
    }
    shadow_json_strn(j, k, value, strlen(value));
}

/* shadow_json_strn - "key":"value" from bytes */
void
shadow_json_strn(ShadowJson *j, const char *k, const char *value, gsize len)
{
    key(j, k);
    shadow_json_escape(j->out, value, len);
}

/* shadow_json_int - "key":N */
void
shadow_json_int(ShadowJson *j, const char *k, gint64 value)
{
    key(j, k);
    g_string_append_printf(j->out, "%" G_GINT64_FORMAT, value);
}

/* shadow_json_bool - "key":true|false */
void
shadow_json_bool(ShadowJson *j, const char *k, gboolean value)
{
    key(j, k);
    g_string_append(j->out, value ? "true" : "false");
}

/* shadow_json_null - "key":null */
void
shadow_json_null(ShadowJson *j, const char *k)
{
    key(j, k);
    g_string_append(j->out, "null");
}

/* shadow_json_object_begin - "key":{ */
void
shadow_json_object_begin(ShadowJson *j, const char *k)
{
    open_level(j, k, '{');
}

/* shadow_json_object_end - } */
void
shadow_json_object_end(ShadowJson *j)
{
    close_level(j, '}');
}

/* shadow_json_array_begin - "key":[ */
void
shadow_json_array_begin(ShadowJson *j, const char *k)
{
    open_level(j, k, '[');
}

/* shadow_json_array_end - ] */
void
shadow_json_array_end(ShadowJson *j)
{
    close_level(j, ']');
}
