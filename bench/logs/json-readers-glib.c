/* SPDX-License-Identifier: MIT */
/*
 * NAME
 *	json-readers-glib - the json-glib reader of json-readers
 * DESCRIPTION
 *	One reader of json-readers (json-readers.c says what the task is).
 */

/* JSON library. */
#include <json-glib/json-glib.h>

/* Application-specific. */
#include "json-readers.h"

/* glib_str - a string member of a json-glib object, or NULL */
static const char *
glib_str(JsonObject *o, const char *key)
{
    JsonNode *n = json_object_get_member(o, key);

    return n && JSON_NODE_HOLDS_VALUE(n) ? json_node_get_string(n) : NULL;
}

/* jr_read_json_glib - json-glib's JsonParser, one line at a time */
gboolean
jr_read_json_glib(const char *path, JrSum *sum, GError **error)
{
    g_autoptr(JsonParser) parser = json_parser_new_immutable();
    JrLines l;
    gsize len;
    char *s;

    if (!jr_lines_open(&l, path, error))
        return FALSE;
    while ((s = jr_lines_next(&l, &len)) != NULL) {
        JsonNode *root;
        JsonObject *o;

        sum->lines++;
        if (!json_parser_load_from_data(parser, s, (gssize)len, NULL))
            continue;
        root = json_parser_get_root(parser);
        if (root == NULL || !JSON_NODE_HOLDS_OBJECT(root))
            continue;
        o = json_node_get_object(root);
        jr_add_record(sum, glib_str(o, "type"), glib_str(o, "ts"), glib_str(o, "milter"),
                      glib_str(o, "action"), glib_str(o, "outcome"));
    }
    jr_lines_close(&l);
    return TRUE;
}
