/* SPDX-License-Identifier: MIT */
/*
 * NAME
 *	shadow_message - shadowd's private copy of a message, edited as a chain would
 * SYNOPSIS
 *	#include "shadow_message.h"
 * DESCRIPTION
 *	In chained mode child N must see the message as children 1..N-1 would
 *	have left it. ShadowMessage holds the headers (name and value as the
 *	milter protocol carries them) and the body, and applies a child's
 *	header edits and body replacement the way Postfix does
 *	(milter-protocol notes §7.2, pitfall 12):
 *
 *	- SMFIR_ADDHEADER appends.
 *	- SMFIR_INSHEADER index counts the headers as delivered, with the
 *	  MTA's own Received: header that milters never see at the top: index
 *	  0 inserts above it, so first of ours; index k > 0 inserts before our
 *	  header k-1.
 *	- SMFIR_CHGHEADER index is the 1-based occurrence of that name (0 is
 *	  taken as 1); an empty value deletes; a change of an occurrence that
 *	  does not exist appends the header.
 *
 *	ShadowSpool keeps bytes in memory up to a limit, then in an unlinked
 *	temporary file, so a large message costs disk, not memory. Spools may
 *	share a ShadowSpoolBudget, the memory they may hold together (counted
 *	as allocated, not as used): a spool that would take the budget over
 *	its limit moves to disk as well, so many messages at once (children
 *	behind the MTA) cost disk too. If only the budget asked for the move
 *	and the temp file cannot be made, the spool stays in memory (within
 *	its own limit, as without a budget) and budget->failed counts it. Spools are
 *	reference counted (shadow_spool_free drops one reference), so that
 *	shadow_message_fork() shares the body of a copy whose headers change.
 * DIAGNOSTICS
 *	Spool I/O errors: G_IO_ERROR / G_FILE_ERROR with the spool directory.
 */
#ifndef SHADOW_MESSAGE_H
#define SHADOW_MESSAGE_H

/* GLib. */
#include <glib.h>

G_BEGIN_DECLS

/* ShadowSpool - bytes in memory up to a limit, then in a temp file */
typedef struct _ShadowSpool ShadowSpool;

/* ShadowSpoolBudget - memory the spools sharing it may hold together */
typedef struct {
    gsize limit;  /* bytes; may change while spools hold memory */
    gsize used;   /* bytes allocated in memory now */
    guint failed; /* moves the budget asked for that failed (the bytes stayed in memory) */
} ShadowSpoolBudget;

ShadowSpool *shadow_spool_new(gsize memory_limit, const char *dir);
void shadow_spool_free(ShadowSpool *s);
ShadowSpool *shadow_spool_ref(ShadowSpool *s);
void shadow_spool_set_budget(ShadowSpool *s, ShadowSpoolBudget *budget);
gboolean shadow_spool_append(ShadowSpool *s, const guint8 *data, gsize len, GError **error);
gsize shadow_spool_size(const ShadowSpool *s);
gboolean shadow_spool_on_disk(const ShadowSpool *s);
gboolean shadow_spool_read(ShadowSpool *s, gsize offset, guint8 *buf, gsize len, gsize *got,
                           GError **error);

/* ShadowHeader - one header */
typedef struct {
    char *name;
    char *value;
} ShadowHeader;

/* ShadowMessage - headers and body */
typedef struct {
    GPtrArray *headers; /* ShadowHeader *, in order */
    ShadowSpool *body;
    gsize spool_memory;        /* for body replacements */
    ShadowSpoolBudget *budget; /* shared by its spools and copies, or NULL */
    char *spool_dir;
} ShadowMessage;

ShadowMessage *shadow_message_new(gsize spool_memory, const char *spool_dir);
void shadow_message_set_budget(ShadowMessage *m, ShadowSpoolBudget *budget);
void shadow_message_free(ShadowMessage *m);
ShadowMessage *shadow_message_copy(ShadowMessage *m, GError **error);
ShadowMessage *shadow_message_fork(const ShadowMessage *m);
void shadow_message_add_header(ShadowMessage *m, const char *name, const char *value);
void shadow_message_insert_header(ShadowMessage *m, guint32 index, const char *name,
                                  const char *value);
void shadow_message_change_header(ShadowMessage *m, guint32 index, const char *name,
                                  const char *value);
const char *shadow_message_get_header(const ShadowMessage *m, const char *name);
void shadow_message_replace_body(ShadowMessage *m, ShadowSpool *body);

G_DEFINE_AUTOPTR_CLEANUP_FUNC(ShadowSpool, shadow_spool_free)
G_DEFINE_AUTOPTR_CLEANUP_FUNC(ShadowMessage, shadow_message_free)

G_END_DECLS

#endif /* SHADOW_MESSAGE_H */
