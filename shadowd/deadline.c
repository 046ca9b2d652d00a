/* SPDX-License-Identifier: MIT */
/*
 * NAME
 *	deadline - many timeouts on one main loop source
 * DESCRIPTION
 *	See deadline.h. A binary min-heap of armed deadlines by time; each
 *	deadline knows its slot, so disarming is O(log n) and needs no search.
 */

/* Build configuration. */
#include "config.h"

/* Application-specific. */
#include "deadline.h"

static GPtrArray *heap; /* ShadowDeadline *, heap-ordered by when */
static GSource *source; /* the one source behind them all */

/* at - the deadline in heap index i */
static inline ShadowDeadline *
at(guint i)
{
    return g_ptr_array_index(heap, i);
}

/* place - put d at heap index i */
static inline void
place(ShadowDeadline *d, guint i)
{
    heap->pdata[i] = d;
    d->slot = i + 1;
}

/* sift_up - move the deadline at i towards the root while earlier than its parent */
static void
sift_up(guint i)
{
    ShadowDeadline *d = at(i);

    while (i > 0) {
        guint parent = (i - 1) / 2;

        if (at(parent)->when <= d->when)
            break;
        place(at(parent), i);
        i = parent;
    }
    place(d, i);
}

/* sift_down - move the deadline at i towards the leaves while later than a child */
static void
sift_down(guint i)
{
    ShadowDeadline *d = at(i);
    guint n = heap->len;

    for (;;) {
        guint l = 2 * i + 1, r = l + 1, m = l;

        if (l >= n)
            break;
        if (r < n && at(r)->when < at(l)->when)
            m = r;
        if (d->when <= at(m)->when)
            break;
        place(at(m), i);
        i = m;
    }
    place(d, i);
}

/* remove_at - take the deadline at heap index i out */
static void
remove_at(guint i)
{
    ShadowDeadline *d = at(i);
    ShadowDeadline *last = g_ptr_array_steal_index(heap, heap->len - 1);

    d->slot = 0;
    if (last == d)
        return;
    place(last, i);
    sift_up(i);
    sift_down(last->slot - 1);
}

/* deadline_prepare - ready if the earliest deadline passed; else how long to poll */
static gboolean
deadline_prepare(GSource *s, gint *timeout)
{
    gint64 now, left;

    if (heap->len == 0) {
        *timeout = -1;
        return FALSE;
    }
    now = g_source_get_time(s);
    left = at(0)->when - now;
    if (left <= 0) {
        *timeout = 0;
        return TRUE;
    }
    *timeout = (gint)MIN((left + 999) / 1000, (gint64)G_MAXINT);
    return FALSE;
}

/* deadline_check - after the poll: did the earliest deadline pass */
static gboolean
deadline_check(GSource *s)
{
    return heap->len > 0 && at(0)->when <= g_source_get_time(s);
}

/* deadline_dispatch - run the callbacks of the deadlines that passed, earliest first */
static gboolean
deadline_dispatch(GSource *s, GSourceFunc callback, gpointer data)
{
    gint64 now = g_source_get_time(s);
    guint budget = heap->len; /* a callback re-arming at 0 ms runs next iteration, not forever */

    (void)callback;
    (void)data;
    while (budget-- > 0 && heap->len > 0 && at(0)->when <= now) {
        ShadowDeadline *d = at(0);

        remove_at(0);
        d->func(d, d->user);
    }
    return G_SOURCE_CONTINUE;
}

static GSourceFuncs deadline_funcs = {
    deadline_prepare, deadline_check, deadline_dispatch, NULL, NULL, NULL
};

/* shadow_deadline_init - an unarmed deadline calling func(d, user) when it passes */
void
shadow_deadline_init(ShadowDeadline *d, ShadowDeadlineFunc func, gpointer user)
{
    d->when = 0;
    d->slot = 0;
    d->func = func;
    d->user = user;
}

/* shadow_deadline_arm - (re)arm for ms milliseconds from now */
void
shadow_deadline_arm(ShadowDeadline *d, guint ms)
{
    gint64 when = g_get_monotonic_time() + (gint64)ms * 1000;

    if (source == NULL) {
        heap = g_ptr_array_new();
        source = g_source_new(&deadline_funcs, sizeof(GSource));
        g_source_set_name(source, "shadowd deadlines");
        g_source_set_can_recurse(source, TRUE);
        g_source_attach(source, NULL);
    }
    if (d->slot != 0) {
        guint i = d->slot - 1;
        gint64 was = d->when;

        d->when = when;
        if (when < was)
            sift_up(i);
        else
            sift_down(i);
        return;
    }
    d->when = when;
    g_ptr_array_add(heap, d);
    sift_up(heap->len - 1);
}

/* shadow_deadline_disarm - no callback for d unless armed again */
void
shadow_deadline_disarm(ShadowDeadline *d)
{
    if (d->slot != 0)
        remove_at(d->slot - 1);
}

/* shadow_deadline_armed - is d waiting to pass */
gboolean
shadow_deadline_armed(const ShadowDeadline *d)
{
    return d->slot != 0;
}

/* shadow_deadline_count - deadlines armed now (tests, diagnostics) */
guint
shadow_deadline_count(void)
{
    return heap ? heap->len : 0;
}
