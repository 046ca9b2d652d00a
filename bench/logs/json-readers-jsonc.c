/* SPDX-License-Identifier: MIT */
/*
 * NAME
 *	json-readers-jsonc - the json-c reader of json-readers
 * DESCRIPTION
 *	One reader of json-readers (json-readers.c says what the task is).
 */

/* JSON library. */
#include <json-c/json.h>

/* Application-specific. */
#include "json-readers.h"

/* jsonc_str - a string member of a json-c object, or NULL */
static const char *
jsonc_str(struct json_object *o, const char *key)
{
    struct json_object *v;

    if (!json_object_object_get_ex(o, key, &v) || !json_object_is_type(v, json_type_string))
        return NULL;
    return json_object_get_string(v);
}

/* jr_read_json_c - json-c's tokener (reused), one line at a time */
gboolean
jr_read_json_c(const char *path, JrSum *sum, GError **error)
{
    struct json_tokener *tok = json_tokener_new();
    JrLines l;
    gsize len;
    char *s;

    if (!jr_lines_open(&l, path, error)) {
        json_tokener_free(tok);
        return FALSE;
    }
    while ((s = jr_lines_next(&l, &len)) != NULL) {
        struct json_object *o;

        sum->lines++;
        json_tokener_reset(tok);
        o = json_tokener_parse_ex(tok, s, (int)len);
        if (o == NULL)
            continue;
        if (json_object_is_type(o, json_type_object))
            jr_add_record(sum, jsonc_str(o, "type"), jsonc_str(o, "ts"), jsonc_str(o, "milter"),
                          jsonc_str(o, "action"), jsonc_str(o, "outcome"));
        json_object_put(o);
    }
    jr_lines_close(&l);
    json_tokener_free(tok);
    return TRUE;
}
