/* SPDX-License-Identifier: MIT */
/*
 * NAME
 *	conn - buffered non-blocking socket on the main loop
 * SYNOPSIS
 *	#include "conn.h"
 * DESCRIPTION
 *	One ShadowConn per socket, MTA side or child side. Reads are handed to
 *	a callback as they arrive; writes are queued and flushed when the
 *	socket is writable. Connecting is non-blocking with a timeout.
 *	Callbacks may close or unref the connection; a dispatch holds a
 *	reference while it runs.
 */
#ifndef SHADOWD_CONN_H
#define SHADOWD_CONN_H

/* GLib. */
#include <glib.h>

/* Shadow libraries. */
#include "shadow_config.h"

/* ShadowConnEvent - what happened to a connection */
typedef enum {
    SHADOW_CONN_CONNECTED, /* a connect finished */
    SHADOW_CONN_CLOSED,    /* the peer closed (read returned 0) */
    SHADOW_CONN_FAILED,    /* connect or I/O failed; error says why */
} ShadowConnEvent;

typedef struct _ShadowConn ShadowConn;

/* ShadowConnFuncs - callbacks of a connection */
typedef struct {
    void (*data)(ShadowConn *c, const guint8 *buf, gsize len, gpointer user);
    void (*event)(ShadowConn *c, ShadowConnEvent ev, const GError *error, gpointer user);
} ShadowConnFuncs;

ShadowConn *shadow_conn_new(int fd, const char *peer, const ShadowConnFuncs *funcs, gpointer user);
ShadowConn *shadow_conn_connect(const ShadowAddress *address, guint timeout_ms,
                                const ShadowConnFuncs *funcs, gpointer user, GError **error);
void shadow_conn_write(ShadowConn *c, const guint8 *data, gsize len);
gsize shadow_conn_pending(const ShadowConn *c);
void shadow_conn_close(ShadowConn *c);
ShadowConn *shadow_conn_ref(ShadowConn *c);
void shadow_conn_unref(ShadowConn *c);
const char *shadow_conn_peer(const ShadowConn *c);

gboolean shadow_socket_listen(const ShadowAddress *address, guint mode, int *out_fd,
                              GError **error);
void shadow_socket_nodelay(int fd);

G_DEFINE_AUTOPTR_CLEANUP_FUNC(ShadowConn, shadow_conn_unref)

#endif /* SHADOWD_CONN_H */
