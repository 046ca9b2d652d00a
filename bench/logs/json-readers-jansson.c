/* SPDX-License-Identifier: MIT */
/*
 * NAME
 *	json-readers-jansson - the jansson reader of json-readers
 * DESCRIPTION
 *	One reader of json-readers (json-readers.c says what the task is).
 */

/* System library. */
#include <string.h>

/* JSON library. */
#include <jansson.h>

/* Application-specific. */
#include "json-readers.h"

/*
 * jansson_str - a string member of a jansson object, or NULL
 *
 * json_object_getn, not json_object_get: json-c exports a json_object_get
 * too, and linked into one program the call would go to json-c's.
 */
static const char *
jansson_str(json_t *o, const char *key)
{
    return json_string_value(json_object_getn(o, key, strlen(key)));
}

/* jr_read_jansson - jansson's json_loadb, one line at a time */
gboolean
jr_read_jansson(const char *path, JrSum *sum, GError **error)
{
    JrLines l;
    gsize len;
    char *s;

    if (!jr_lines_open(&l, path, error))
        return FALSE;
    while ((s = jr_lines_next(&l, &len)) != NULL) {
        json_error_t jerr;
        json_t *o;

        sum->lines++;
        o = json_loadb(s, len, 0, &jerr);
        if (o == NULL)
            continue;
        if (json_is_object(o))
            jr_add_record(sum, jansson_str(o, "type"), jansson_str(o, "ts"),
                          jansson_str(o, "milter"), jansson_str(o, "action"),
                          jansson_str(o, "outcome"));
        json_decref(o);
    }
    jr_lines_close(&l);
    return TRUE;
}
