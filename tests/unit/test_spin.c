/* SPDX-License-Identifier: MIT */
/* test_spin.c - common/spin.c: windows open on work, close by themselves, adapt, never hold the loop */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/spin.h"

struct pipe_ctx {
	int fds[2];
	int reads;
	int stop_after;
	ev_io io;
};

static void pipe_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	struct pipe_ctx *c = w->data;
	char b;

	assert_int_equal(read(c->fds[0], &b, 1), 1);
	if (++c->reads >= c->stop_after)
		ev_io_stop(loop, w);
	else
		assert_int_equal(write(c->fds[1], "x", 1), 1); /* the next event, at once */
}

static void run_pipe(int spin_us, int events, struct mw_spin *s, ev_tstamp *took)
{
	struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
	struct pipe_ctx c = { .stop_after = events };
	ev_tstamp t0;

	assert_non_null(loop);
	assert_int_equal(pipe(c.fds), 0);
	mw_spin_start(loop, s, spin_us);
	ev_io_init(&c.io, pipe_cb, c.fds[0], EV_READ);
	c.io.data = &c;
	ev_io_start(loop, &c.io);
	assert_int_equal(write(c.fds[1], "x", 1), 1);
	t0 = ev_time();
	/* Returns only when no watcher keeps the loop alive: the spin must not. */
	ev_run(loop, 0);
	*took = ev_time() - t0;
	assert_int_equal(c.reads, events);
	mw_spin_stop(loop, s);
	close(c.fds[0]);
	close(c.fds[1]);
	ev_loop_destroy(loop);
}

/* Off: no window ever opens, and the loop ends when its work does. */
static void test_spin_off(void **state)
{
	struct mw_spin s;
	ev_tstamp took;

	run_pipe(0, 100, &s, &took);
	assert_int_equal(s.windows, 0);
}

/*
 * On: work opens a window; work that keeps coming keeps it open (one window
 * for a burst, not one per event); and the loop still ends once the last
 * watcher stops, the open window notwithstanding... after it has passed.
 */
static void test_spin_on(void **state)
{
	struct mw_spin s;
	ev_tstamp took;

	run_pipe(20000, 1000, &s, &took);
	assert_true(s.windows >= 1);
	assert_true(s.windows < 10);
	assert_true(took < 5.0); /* bounded: a window that never closed would hang */
}

/*
 * A window closes by itself with no work: a later event opens a new one.
 * Each round arms a one-shot timer and runs the loop until nothing keeps it
 * alive, i.e. the timer fired and the window it opened closed again (the
 * idle watcher holds the loop while the window is open), so the count does
 * not depend on how long a loaded machine takes between two timers.
 */
static void timer_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	int *n = w->data;

	++*n;
}

static void test_spin_windows_close(void **state)
{
	struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
	struct mw_spin s;
	ev_timer t;
	int n = 0;

	/* The largest window (1 s) is far above the 20 ms gaps: they count as
	 * short, so each opens a window, a little wider than the last. */
	mw_spin_start(loop, &s, 1000000);
	ev_timer_init(&t, timer_cb, 0.02, 0.);
	t.data = &n;
	for (int round = 1; round <= 3; round++) {
		ev_timer_set(&t, 0.02, 0.);
		ev_timer_start(loop, &t);
		ev_run(loop, 0);
		assert_int_equal(n, round);
		assert_false(ev_is_active(&s.idle)); /* the window closed by itself */
		assert_int_equal(s.windows, round);  /* each wake-up opened its own window */
	}
	assert_true(s.window > MW_SPIN_GROW_START_S);
	assert_true(s.window <= 4 * MW_SPIN_GROW_START_S);
	mw_spin_stop(loop, &s);
	ev_loop_destroy(loop);
}

/* Work that only trickles in (gaps beyond the largest window) opens none. */
static void test_spin_trickle_never_spins(void **state)
{
	struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
	struct mw_spin s;
	ev_timer t;
	int n = 0;

	mw_spin_start(loop, &s, 1000); /* 1 ms at most, gaps of 20 ms */
	ev_timer_init(&t, timer_cb, 0.02, 0.);
	t.data = &n;
	for (int round = 1; round <= 3; round++) {
		ev_timer_set(&t, 0.02, 0.);
		ev_timer_start(loop, &t);
		ev_run(loop, 0);
		assert_int_equal(n, round);
	}
	assert_int_equal(s.windows, 0);
	assert_true(s.window == 0);
	mw_spin_stop(loop, &s);
	ev_loop_destroy(loop);
}

static void adapt_init(struct mw_spin *s, ev_tstamp max)
{
	s->max = max;
	s->window = 0;
	s->longs = 0;
}

/* Short gaps beyond the window grow it, doubling, never above the maximum. */
static void test_spin_adapt_grows(void **state)
{
	struct mw_spin s;

	adapt_init(&s, 50e-6);
	mw_spin_adapt(&s, 30e-6);
	assert_true(s.window == MW_SPIN_GROW_START_S);
	mw_spin_adapt(&s, 30e-6);
	assert_true(s.window == 2 * MW_SPIN_GROW_START_S);
	mw_spin_adapt(&s, 15e-6); /* within the window: caught, kept */
	assert_true(s.window == 2 * MW_SPIN_GROW_START_S);
	mw_spin_adapt(&s, 45e-6);
	assert_true(s.window == 4 * MW_SPIN_GROW_START_S);
	mw_spin_adapt(&s, 45e-6);
	assert_true(s.window == 50e-6); /* 80 us, capped at 50 */
	mw_spin_adapt(&s, 45e-6);
	assert_true(s.window == 50e-6);
}

/*
 * Long gaps shrink the window only when they come MW_SPIN_SHRINK_AFTER in a
 * row: request/response traffic alternates a reply (short) with the next
 * request (long) and keeps its window; a trickle closes it.
 */
static void test_spin_adapt_shrinks(void **state)
{
	struct mw_spin s;
	int i;

	adapt_init(&s, 50e-6);
	s.window = 50e-6;
	for (i = 0; i < 100; i++) {
		mw_spin_adapt(&s, 20e-6);
		mw_spin_adapt(&s, 500e-6);
	}
	assert_true(s.window == 50e-6);
	mw_spin_adapt(&s, 20e-6);
	for (i = 0; i < MW_SPIN_SHRINK_AFTER - 1; i++)
		mw_spin_adapt(&s, 500e-6);
	assert_true(s.window == 50e-6);
	mw_spin_adapt(&s, 500e-6);
	assert_true(s.window == 25e-6);
	for (i = 0; i < 10 * MW_SPIN_SHRINK_AFTER; i++)
		mw_spin_adapt(&s, 1.0);
	assert_true(s.window == 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_spin_off),
		cmocka_unit_test(test_spin_on),
		cmocka_unit_test(test_spin_windows_close),
		cmocka_unit_test(test_spin_trickle_never_spins),
		cmocka_unit_test(test_spin_adapt_grows),
		cmocka_unit_test(test_spin_adapt_shrinks),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
