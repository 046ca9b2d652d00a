/* SPDX-License-Identifier: MIT */
/*
 * NAME
 *	check_deadline - Check suite for shadowd's shared deadline heap
 * DESCRIPTION
 *	Written from the contract in shadowd/deadline.h. The deadlines run on
 *	a real GMainLoop with real time (a few tens of milliseconds per case,
 *	every loop bounded by a guard timeout). What is checked: each armed
 *	deadline fires exactly once, never before its time, in time order;
 *	a disarmed one never fires; re-arming moves it both ways; callbacks
 *	may arm, disarm and free deadlines, their own included; and the loop
 *	sleeps until the earliest deadline instead of spinning.
 */

/* System library. */
#include <stdlib.h>

/* Check. */
#include <check.h>

/* Application-specific. */
#include "deadline.h"

/* Bound on every loop run: far above any deadline a case arms. */
#define GUARD_MS 5000

/* Deadlines armed by the randomized case. */
#define RANDOM_COUNT 400

/* Item - a deadline and what happened to it */
typedef struct {
    ShadowDeadline d;
    gint64 due;   /* earliest monotonic us it may fire */
    gint64 fired; /* monotonic us it fired, 0 if not */
    guint times;  /* how often it fired */
    guint order;  /* position among the fired */
} Item;

static guint fired_count;
static gint64 last_fired_when;
static gboolean out_of_order;

/* guard - the loop ran too long */
static gboolean
guard(gpointer data)
{
    gboolean *hit = data;

    *hit = TRUE;
    return G_SOURCE_REMOVE;
}

/* run_until_idle - run the loop until no deadline is armed (or the guard) */
static void
run_until_idle(void)
{
    gboolean hit = FALSE;
    guint g = g_timeout_add(GUARD_MS, guard, &hit);

    while (shadow_deadline_count() > 0 && !hit)
        g_main_context_iteration(NULL, TRUE);
    if (!hit)
        g_source_remove(g);
    ck_assert_msg(!hit, "deadlines still armed after %d ms: %u", GUARD_MS, shadow_deadline_count());
}

/* on_fire - record the firing */
static void
on_fire(ShadowDeadline *d, gpointer user)
{
    Item *it = user;

    ck_assert_ptr_eq(d, &it->d);
    ck_assert(!shadow_deadline_armed(d));
    it->fired = g_get_monotonic_time();
    it->times++;
    it->order = fired_count++;
    if (d->when < last_fired_when)
        out_of_order = TRUE;
    last_fired_when = d->when;
}

/* reset - a fresh case */
static void
reset(void)
{
    fired_count = 0;
    last_fired_when = 0;
    out_of_order = FALSE;
}

/* arm - arm an item for ms and note when it may fire at the earliest */
static void
arm(Item *it, guint ms)
{
    it->due = g_get_monotonic_time() + (gint64)ms * 1000;
    shadow_deadline_arm(&it->d, ms);
}

START_TEST(test_random)
{
    Item *items = g_new0(Item, RANDOM_COUNT);
    gboolean *disarmed = g_new0(gboolean, RANDOM_COUNT);
    GRand *rand = g_rand_new_with_seed(7);
    guint expected = 0;

    reset();
    for (guint i = 0; i < RANDOM_COUNT; i++) {
        shadow_deadline_init(&items[i].d, on_fire, &items[i]);
        arm(&items[i], (guint)g_rand_int_range(rand, 0, 40));
    }
    ck_assert_uint_eq(shadow_deadline_count(), RANDOM_COUNT);
    /* Re-arm some later, some earlier, disarm others, disarm twice. */
    for (guint i = 0; i < RANDOM_COUNT; i++) {
        switch (g_rand_int_range(rand, 0, 4)) {
        case 0:
            arm(&items[i], (guint)g_rand_int_range(rand, 20, 60));
            break;
        case 1:
            arm(&items[i], (guint)g_rand_int_range(rand, 0, 5));
            break;
        case 2:
            shadow_deadline_disarm(&items[i].d);
            shadow_deadline_disarm(&items[i].d);
            disarmed[i] = TRUE;
            break;
        default:
            break;
        }
        expected += !disarmed[i];
    }
    ck_assert_uint_eq(shadow_deadline_count(), expected);
    run_until_idle();
    ck_assert_uint_eq(fired_count, expected);
    ck_assert_msg(!out_of_order, "deadlines fired out of time order");
    for (guint i = 0; i < RANDOM_COUNT; i++) {
        if (disarmed[i]) {
            ck_assert_uint_eq(items[i].times, 0);
            continue;
        }
        ck_assert_uint_eq(items[i].times, 1);
        ck_assert_msg(items[i].fired >= items[i].due, "item %u fired %" G_GINT64_FORMAT " us early",
                      i, items[i].due - items[i].fired);
    }
    g_rand_free(rand);
    g_free(disarmed);
    g_free(items);
}
END_TEST

/* Reentrant: the first to fire re-arms itself once, disarms one, frees another. */
static Item *victim_disarm;
static Item *victim_free;

/* on_fire_meddle - fire, then change other deadlines from inside the callback */
static void
on_fire_meddle(ShadowDeadline *d, gpointer user)
{
    Item *it = user;

    on_fire(d, user);
    if (it->times == 1) {
        arm(it, 5); /* its own, again */
        if (victim_disarm)
            shadow_deadline_disarm(&victim_disarm->d);
        if (victim_free) {
            shadow_deadline_disarm(&victim_free->d);
            g_free(victim_free);
            victim_free = NULL;
        }
    }
}

START_TEST(test_reentrant)
{
    Item *first = g_new0(Item, 1), *other = g_new0(Item, 1), *late = g_new0(Item, 1);

    reset();
    victim_disarm = other;
    victim_free = g_new0(Item, 1);
    shadow_deadline_init(&first->d, on_fire_meddle, first);
    shadow_deadline_init(&other->d, on_fire, other);
    shadow_deadline_init(&victim_free->d, on_fire, victim_free);
    shadow_deadline_init(&late->d, on_fire, late);
    arm(first, 1);
    arm(other, 3); /* disarmed by first before it is due */
    arm(victim_free, 3);
    arm(late, 10);
    run_until_idle();
    ck_assert_uint_eq(first->times, 2); /* re-armed from its own callback */
    ck_assert_uint_eq(other->times, 0);
    ck_assert_ptr_null(victim_free);
    ck_assert_uint_eq(late->times, 1);
    ck_assert(first->fired >= first->due);
    victim_disarm = NULL;
    g_free(first);
    g_free(other);
    g_free(late);
}
END_TEST

/* on_fire_zero - re-arm at 0 ms a bounded number of times */
static void
on_fire_zero(ShadowDeadline *d, gpointer user)
{
    Item *it = user;

    on_fire(d, user);
    if (it->times < 3)
        shadow_deadline_arm(d, 0);
}

START_TEST(test_zero_rearm)
{
    Item it = { 0 };

    reset();
    shadow_deadline_init(&it.d, on_fire_zero, &it);
    arm(&it, 0);
    /* One iteration runs it once: a 0 ms re-arm waits for the next one. */
    g_main_context_iteration(NULL, FALSE);
    ck_assert_uint_le(it.times, 1);
    run_until_idle();
    ck_assert_uint_eq(it.times, 3);
}
END_TEST

START_TEST(test_sleeps)
{
    Item it = { 0 };
    guint polls = 0;

    /* Nothing else is on the loop: one 50 ms deadline takes one or a few polls, not a spin. */
    reset();
    shadow_deadline_init(&it.d, on_fire, &it);
    arm(&it, 50);
    while (it.times == 0 && polls < 1000) {
        g_main_context_iteration(NULL, TRUE);
        polls++;
    }
    ck_assert_uint_eq(it.times, 1);
    ck_assert_msg(polls <= 5, "the loop woke %u times for one 50 ms deadline", polls);
    ck_assert(it.fired >= it.due);
}
END_TEST

/* deadline_suite - the cases */
static Suite *
deadline_suite(void)
{
    Suite *s = suite_create("deadline");
    TCase *tc = tcase_create("core");

    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, test_random);
    tcase_add_test(tc, test_reentrant);
    tcase_add_test(tc, test_zero_rearm);
    tcase_add_test(tc, test_sleeps);
    suite_add_tcase(s, tc);
    return s;
}

int
main(void)
{
    SRunner *sr = srunner_create(deadline_suite());
    int failed;

    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
