/* SPDX-License-Identifier: MIT */
/*
 * NAME
 *	deadline - many timeouts on one main loop source
 * DESCRIPTION
 *	A ShadowDeadline is embedded in its owner and armed and disarmed as
 *	often as the owner likes: every command sent to a child arms one, every
 *	reply disarms it. All armed deadlines sit in one binary heap behind one
 *	GSource whose prepare() hands GLib the earliest. Arming a GSource's
 *	ready time instead signals the context's wakeup eventfd each time (one
 *	write(2), and one extra loop iteration to read it); the heap costs no
 *	system call at all.
 *
 *	Callbacks run from the loop, earliest first, never from inside
 *	shadow_deadline_arm() or _disarm(); a callback may arm or disarm any
 *	deadline, its own included, or free the owner after disarming.
 */
#ifndef SHADOWD_DEADLINE_H
#define SHADOWD_DEADLINE_H

/* GLib. */
#include <glib.h>

typedef struct ShadowDeadline ShadowDeadline;

/* ShadowDeadlineFunc - the deadline passed (it is disarmed already) */
typedef void (*ShadowDeadlineFunc)(ShadowDeadline *d, gpointer user);

struct ShadowDeadline {
    gint64 when; /* monotonic us */
    guint slot;  /* index in the heap + 1; 0 = not armed */
    ShadowDeadlineFunc func;
    gpointer user;
};

void shadow_deadline_init(ShadowDeadline *d, ShadowDeadlineFunc func, gpointer user);
void shadow_deadline_arm(ShadowDeadline *d, guint ms);
void shadow_deadline_disarm(ShadowDeadline *d);
gboolean shadow_deadline_armed(const ShadowDeadline *d);
guint shadow_deadline_count(void);

#endif /* SHADOWD_DEADLINE_H */
