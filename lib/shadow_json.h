/* SPDX-License-Identifier: MIT */
/*
 * NAME
 *	shadow_json - append-only JSON object writer for one-line records
 * SYNOPSIS
 *	#include "shadow_json.h"
 *
 *	ShadowJson j;
 *	shadow_json_begin(&j, out);          // {
 *	shadow_json_str(&j, "type", "verdict");
 *	shadow_json_int(&j, "n", 3);
 *	shadow_json_array_begin(&j, "rcpts"); ... shadow_json_array_end(&j);
 *	shadow_json_end(&j);                 // }
 * DESCRIPTION
 *	Writes into a GString, with no allocation of its own, so records are
 *	built in one buffer and written with one write(2). Strings may hold
 *	any bytes: valid UTF-8 passes through, control characters are
 *	escaped, and bytes that are not UTF-8 become \u00XX of their value
 *	(Latin-1), so every line is valid JSON whatever a peer sent.
 */
#ifndef SHADOW_JSON_H
#define SHADOW_JSON_H

/* GLib. */
#include <glib.h>

G_BEGIN_DECLS

/* Nesting depth of objects and arrays a record may use. */
#define SHADOW_JSON_MAX_DEPTH 8

/* ShadowJson - writer state: output, and whether a comma is due per level */
typedef struct {
    GString *out;
    guint depth;
    gboolean need_comma[SHADOW_JSON_MAX_DEPTH];
} ShadowJson;

void shadow_json_begin(ShadowJson *j, GString *out);
void shadow_json_end(ShadowJson *j);
void shadow_json_str(ShadowJson *j, const char *key, const char *value);
void shadow_json_strn(ShadowJson *j, const char *key, const char *value, gsize len);
void shadow_json_int(ShadowJson *j, const char *key, gint64 value);
void shadow_json_bool(ShadowJson *j, const char *key, gboolean value);
void shadow_json_null(ShadowJson *j, const char *key);
void shadow_json_object_begin(ShadowJson *j, const char *key);
void shadow_json_object_end(ShadowJson *j);
void shadow_json_array_begin(ShadowJson *j, const char *key);
void shadow_json_array_end(ShadowJson *j);
void shadow_json_escape(GString *out, const char *s, gsize len);

G_END_DECLS

#endif /* SHADOW_JSON_H */
