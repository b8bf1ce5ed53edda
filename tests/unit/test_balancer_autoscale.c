/* SPDX-License-Identifier: MIT */
/* test_balancer_autoscale.c - balancer/autoscale.c: marks, bounds, cool-down, no flapping */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "balancer/autoscale.h"

/* min 1, max 4, up above 10 per INS, down below 3, cool-down 5 s */
static const struct bal_as_params P = {
	.min_ins = 1, .max_ins = 4, .up_conns = 10, .down_conns = 3, .cooldown_s = 5.0
};

/* One decision; the caller's side (target follows the action) done here too. */
static enum bal_as_action step(const struct bal_as_params *p, struct bal_as_state *st, double now,
			       int *live, unsigned conns, enum bal_as_reason *why)
{
	struct bal_as_input in = { .now = now, .live = *live, .conns = conns, .target = *live };
	enum bal_as_action a = bal_autoscale_decide(p, st, &in, why);

	if (a == BAL_AS_UP)
		(*live)++;
	else if (a == BAL_AS_DOWN)
		(*live)--;
	return a;
}

static void test_names(void **state)
{
	(void)state;
	assert_string_equal(bal_autoscale_reason_name(BAL_AS_STEADY), "steady");
	assert_string_equal(bal_autoscale_reason_name(BAL_AS_HIGH), "high");
	assert_string_equal(bal_autoscale_reason_name(BAL_AS_NO_FLAP), "would-flap");
	assert_string_equal(bal_autoscale_reason_name(BAL_AS_NONE), "no-ins");
	assert_string_equal(bal_autoscale_reason_name((enum bal_as_reason)99), "?");
}

/* The marks are strict: exactly up_conns per INS holds, one more scales up. */
static void test_thresholds(void **state)
{
	struct bal_as_state st = { 0 };
	enum bal_as_reason why;
	int live = 2;

	(void)state;
	/* first call starts the cool-down: nothing before 5 s */
	assert_int_equal(step(&P, &st, 0, &live, 100, &why), BAL_AS_HOLD);
	assert_int_equal(why, BAL_AS_COOLDOWN);
	assert_int_equal(step(&P, &st, 10, &live, 20, &why), BAL_AS_HOLD); /* 10.0 avg */
	assert_int_equal(why, BAL_AS_STEADY);
	assert_int_equal(step(&P, &st, 10, &live, 21, &why), BAL_AS_UP); /* 10.5 */
	assert_int_equal(why, BAL_AS_HIGH);
	assert_int_equal(live, 3);
	/* 3 INS, low mark 3: 9 connections is exactly 3.0, steady */
	assert_int_equal(step(&P, &st, 20, &live, 9, &why), BAL_AS_HOLD);
	assert_int_equal(why, BAL_AS_STEADY);
	/* 8 is below: must stay below a whole cool-down */
	assert_int_equal(step(&P, &st, 21, &live, 8, &why), BAL_AS_HOLD);
	assert_int_equal(why, BAL_AS_LOW_WAIT);
	assert_int_equal(step(&P, &st, 25.9, &live, 8, &why), BAL_AS_HOLD);
	assert_int_equal(why, BAL_AS_LOW_WAIT);
	assert_int_equal(step(&P, &st, 26, &live, 8, &why), BAL_AS_DOWN);
	assert_int_equal(why, BAL_AS_LOW);
	assert_int_equal(live, 2);
}

/* A blip above the low mark restarts the wait. */
static void test_low_must_last(void **state)
{
	struct bal_as_state st = { 0 };
	enum bal_as_reason why;
	int live = 3;

	(void)state;
	step(&P, &st, 0, &live, 0, &why);
	assert_int_equal(step(&P, &st, 4, &live, 0, &why), BAL_AS_HOLD);
	assert_int_equal(step(&P, &st, 6, &live, 20, &why), BAL_AS_HOLD); /* back up: steady */
	assert_int_equal(why, BAL_AS_STEADY);
	assert_int_equal(step(&P, &st, 7, &live, 0, &why), BAL_AS_HOLD);
	assert_int_equal(why, BAL_AS_LOW_WAIT);
	assert_int_equal(step(&P, &st, 11.5, &live, 0, &why), BAL_AS_HOLD);
	assert_int_equal(step(&P, &st, 12, &live, 0, &why), BAL_AS_DOWN);
}

static void test_bounds(void **state)
{
	struct bal_as_state st = { 0 };
	enum bal_as_reason why;
	int live = 1, k;
	double t = 0;

	(void)state;
	/* a huge load climbs one INS per cool-down, to max_ins and no further */
	step(&P, &st, t, &live, 1000, &why);
	for (k = 0; k < 20; k++) {
		t += 5;
		step(&P, &st, t, &live, 1000, &why);
		assert_true(live <= P.max_ins);
	}
	assert_int_equal(live, 4);
	assert_int_equal(why, BAL_AS_AT_MAX);
	/* no load: back down one per cool-down, to min_ins and no further */
	for (k = 0; k < 40; k++) {
		t += 2.5;
		step(&P, &st, t, &live, 0, &why);
		assert_true(live >= P.min_ins);
	}
	assert_int_equal(live, 1);
	assert_int_equal(why, BAL_AS_AT_MIN);
	/* no live INS at all: autoscale stays out of it */
	live = 0;
	assert_int_equal(step(&P, &st, t + 100, &live, 5, &why), BAL_AS_HOLD);
	assert_int_equal(why, BAL_AS_NONE);
}

/* One step at most per cool-down, whatever the load does in between. */
static void test_cooldown(void **state)
{
	struct bal_as_state st = { 0 };
	enum bal_as_reason why;
	int live = 1, changes = 0;
	int i;

	(void)state;
	step(&P, &st, 0, &live, 0, &why);
	for (i = 50; i < 300; i++) /* t = 5.0 .. 29.9 s in exact 0.1 s steps */
		changes += step(&P, &st, i / 10.0, &live, 1000, &why) != BAL_AS_HOLD;
	assert_int_equal(changes, 3); /* 1->2 at 5, 2->3 at 10, 3->4 at 15 */
	assert_int_equal(live, 4);
}

/* An operator's change of the target restarts the cool-down. */
static void test_operator_change(void **state)
{
	struct bal_as_state st = { 0 };
	struct bal_as_input in = { .now = 0, .live = 1, .conns = 0, .target = 1 };
	enum bal_as_reason why;

	(void)state;
	bal_autoscale_decide(&P, &st, &in, &why);
	/* mwctl scale 4 at t=20 with no load: not undone before t=20+5 (the
	 * low period runs during the cool-down) */
	in = (struct bal_as_input){ .now = 20, .live = 4, .conns = 0, .target = 4 };
	assert_int_equal(bal_autoscale_decide(&P, &st, &in, &why), BAL_AS_HOLD);
	assert_int_equal(why, BAL_AS_COOLDOWN);
	in.now = 24.9;
	assert_int_equal(bal_autoscale_decide(&P, &st, &in, &why), BAL_AS_HOLD);
	assert_int_equal(why, BAL_AS_COOLDOWN);
	in.now = 25;
	assert_int_equal(bal_autoscale_decide(&P, &st, &in, &why), BAL_AS_DOWN);
	/* and another operator change (scale 4 again) restarts it */
	in = (struct bal_as_input){ .now = 26, .live = 4, .conns = 0, .target = 4 };
	assert_int_equal(bal_autoscale_decide(&P, &st, &in, &why), BAL_AS_HOLD);
	assert_int_equal(why, BAL_AS_COOLDOWN);
	in.now = 30.9;
	assert_int_equal(bal_autoscale_decide(&P, &st, &in, &why), BAL_AS_HOLD);
}

/* While an INS is starting, no decision either way. */
static void test_starting(void **state)
{
	struct bal_as_state st = { 0 };
	struct bal_as_input in = { .now = 0, .live = 2, .starting = 1, .conns = 100, .target = 2 };
	enum bal_as_reason why;

	(void)state;
	bal_autoscale_decide(&P, &st, &in, &why);
	in.now = 100;
	assert_int_equal(bal_autoscale_decide(&P, &st, &in, &why), BAL_AS_HOLD);
	assert_int_equal(why, BAL_AS_STARTING);
	in.conns = 0;
	assert_int_equal(bal_autoscale_decide(&P, &st, &in, &why), BAL_AS_HOLD);
	assert_int_equal(why, BAL_AS_STARTING);
	in.starting = 0;
	in.now = 106; /* low since 100 */
	assert_int_equal(bal_autoscale_decide(&P, &st, &in, &why), BAL_AS_DOWN);
}

/*
 * Marks close together (down 9, up 10): 2 INS with 17 connections is 8.5 per
 * INS, below the low mark, but 17 on one INS is above the high mark: the step
 * down would be undone.  Held, for ever, under every load level tried.
 */
static void test_no_flapping(void **state)
{
	const struct bal_as_params close = {
		.min_ins = 1, .max_ins = 8, .up_conns = 10, .down_conns = 9, .cooldown_s = 1.0
	};
	struct bal_as_state st = { 0 };
	enum bal_as_reason why;
	unsigned conns;
	int live = 2, last, dir, flips;
	double t = 0;

	(void)state;
	step(&close, &st, t, &live, 17, &why);
	for (int k = 0; k < 50; k++)
		assert_int_equal(step(&close, &st, t += 1, &live, 17, &why), BAL_AS_HOLD);
	assert_int_equal(why, BAL_AS_NO_FLAP);
	assert_int_equal(live, 2);
	/* every constant load: the INS count moves one way only, then stays */
	for (conns = 0; conns <= 100; conns++) {
		struct bal_as_state s2 = { 0 };

		live = 4;
		dir = 0;
		flips = 0;
		last = live;
		for (int k = 0; k < 100; k++) {
			step(&close, &s2, k * 0.5, &live, conns, &why);
			if (live != last) {
				int d = live > last ? 1 : -1;

				flips += dir && d != dir;
				dir = d;
				last = live;
			}
		}
		assert_int_equal(flips, 0);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_names),	      cmocka_unit_test(test_thresholds),
		cmocka_unit_test(test_low_must_last), cmocka_unit_test(test_bounds),
		cmocka_unit_test(test_cooldown),      cmocka_unit_test(test_operator_change),
		cmocka_unit_test(test_starting),      cmocka_unit_test(test_no_flapping),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
