/* SPDX-License-Identifier: MIT */
/*
 * NAME
 *	json-readers - what the reader programs of json-readers share
 * SYNOPSIS
 *	#include "json-readers.h"
 * DESCRIPTION
 *	The three JSON libraries' headers cannot be included together
 *	(json-c and jansson both define json_object), so each reader is a
 *	file of its own: json-readers-glib.c, json-readers-jsonc.c,
 *	json-readers-jansson.c. They read lines with jr_lines_*() and account
 *	every record with jr_add_record(); json-readers.c has main().
 */
#ifndef JSON_READERS_H
#define JSON_READERS_H

/* System library. */
#include <stdio.h>

/* GLib. */
#include <glib.h>

G_BEGIN_DECLS

/* stdio buffer for the line readers. */
#define JR_IO_BUFFER (1024 * 1024)
/* Buckets of the action and outcome counts. */
#define JR_BUCKETS 16

/* JrSum - what a reader extracted: equal for all readers, or one cheated */
typedef struct {
    guint64 lines;
    guint64 connections, verdicts, messages;
    guint64 ts_sum;              /* sum of record times in milliseconds */
    guint64 milter_hash;         /* sum of a hash of each verdict's milter name */
    guint64 actions[JR_BUCKETS]; /* verdict actions, by their name's hash bucket */
    guint64 outcomes[JR_BUCKETS];
} JrSum;

/* JrLines - a FILE read line by line into one growing buffer */
typedef struct {
    FILE *f;
    char *line;
    size_t cap;
    char *iobuf;
} JrLines;

guint64 jr_hash_str(const char *s);
void jr_add_record(JrSum *sum, const char *type, const char *ts, const char *milter,
                   const char *action, const char *outcome);
gboolean jr_lines_open(JrLines *l, const char *path, GError **error);
char *jr_lines_next(JrLines *l, gsize *len);
void jr_lines_close(JrLines *l);

gboolean jr_read_json_glib(const char *path, JrSum *sum, GError **error);
gboolean jr_read_json_c(const char *path, JrSum *sum, GError **error);
gboolean jr_read_jansson(const char *path, JrSum *sum, GError **error);

G_END_DECLS

#endif /* JSON_READERS_H */
