/* SPDX-License-Identifier: MIT */
/* test_balancer_policy.c - balancer/policy.c: each policy's choice, names, consistent hashing */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "balancer/policy.h"

#define N(a) (sizeof(a) / sizeof((a)[0]))

static void test_names(void **state)
{
	static const char *names[] = { "round-robin", "least-connections", "least-busy", "hash" };
	enum bal_policy p;

	(void)state;
	for (size_t i = 0; i < N(names); i++) {
		assert_int_equal(bal_policy_parse(names[i], &p), 0);
		assert_string_equal(bal_policy_name(p), names[i]);
	}
	assert_int_equal(bal_policy_parse("random", &p), -EINVAL);
	assert_int_equal(bal_policy_parse("", &p), -EINVAL);
	assert_int_equal(bal_policy_parse("Round-Robin", &p), -EINVAL);
}

static void test_empty(void **state)
{
	int rr = 0;

	(void)state;
	for (int p = BAL_POLICY_RR; p <= BAL_POLICY_HASH; p++)
		assert_int_equal(bal_policy_pick((enum bal_policy)p, NULL, 0, &rr, 1, 50), -1);
}

static void test_round_robin(void **state)
{
	struct bal_cand c[] = { { .id = 2 }, { .id = 5 }, { .id = 9 } };
	int rr = 0, got[7];

	(void)state;
	for (int i = 0; i < 7; i++)
		got[i] = c[bal_policy_pick(BAL_POLICY_RR, c, N(c), &rr, 0, 50)].id;
	assert_int_equal(got[0], 2);
	assert_int_equal(got[1], 5);
	assert_int_equal(got[2], 9);
	assert_int_equal(got[3], 2);
	assert_int_equal(got[6], 2);
	/* INS 5 leaves after 5 was last chosen: the next is the one after it. */
	rr = 5;
	struct bal_cand d[] = { { .id = 2 }, { .id = 9 } };
	assert_int_equal(d[bal_policy_pick(BAL_POLICY_RR, d, N(d), &rr, 0, 50)].id, 9);
	assert_int_equal(rr, 9);
}

static void test_least_connections(void **state)
{
	struct bal_cand c[] = { { .id = 1, .conns = 4 },
				{ .id = 2, .conns = 2 },
				{ .id = 3, .conns = 2 },
				{ .id = 4, .conns = 7 } };
	int rr = 0;

	(void)state;
	/* Fewest, lowest id on a tie. */
	assert_int_equal(bal_policy_pick(BAL_POLICY_LEASTCONN, c, N(c), &rr, 0, 50), 1);
	c[1].conns = 3;
	assert_int_equal(bal_policy_pick(BAL_POLICY_LEASTCONN, c, N(c), &rr, 0, 50), 2);
}

/*
 * The share bound: an INS whose connections end at once (conns stays 0) against
 * three that keep theirs.  Simulated as bal_pick() drives it, whatever the rate:
 * each pick takes 1/64 off every recent and adds 1024 to the one picked.  (A decay
 * in time let all fall to one floor between sparse connections: no bound at all
 * under about 2 a second.)  Unbounded it would take every
 * new connection; bounded it takes about 2 / (n + 1) = 2/5, and still the
 * most of the four.
 */
static void test_least_connections_share_bound(void **state)
{
	struct bal_cand c[] = { { .id = 1, .conns = 50 },
				{ .id = 2, .conns = 50 },
				{ .id = 3, .conns = 50 },
				{ .id = 4, .conns = 0 } };
	unsigned got[4] = { 0 }, total = 0, k;
	int rr = 0, i, idx;

	(void)state;
	for (i = 0; i < 10000; i++) {
		idx = bal_policy_pick(BAL_POLICY_LEASTCONN, c, N(c), &rr, 0, 50);
		assert_true(idx >= 0 && idx < 4);
		for (k = 0; k < 4; k++) /* as bal_pick() */
			c[k].recent -= c[k].recent >> 6;
		c[idx].recent += 1024;
		got[idx]++;
		if (idx != 3)
			c[idx].conns++; /* the others keep what they get */
	}
	for (k = 0; k < 4; k++)
		total += got[k];
	assert_true(got[3] * 100 <= total * 41);
	assert_true(got[3] > got[0] && got[3] > got[1] && got[3] > got[2]);
	/* The bound never leaves no one: all at once over it cannot happen, the least is in. */
	c[0].conns = 5;
	c[1].conns = 6;
	c[2].conns = 7;
	c[0].recent = c[1].recent = c[2].recent = 0;
	c[3].recent = 1000;
	assert_int_equal(bal_policy_pick(BAL_POLICY_LEASTCONN, c, N(c), &rr, 0, 50), 0);
	/* One candidate: nothing to bound. */
	assert_int_equal(bal_policy_pick(BAL_POLICY_LEASTCONN, &c[3], 1, &rr, 0, 50), 0);
	/* Nothing given lately: plain least-connections. */
	for (k = 0; k < 4; k++)
		c[k].recent = 0;
	assert_int_equal(bal_policy_pick(BAL_POLICY_LEASTCONN, c, N(c), &rr, 0, 50), 3);
}

static void test_least_busy(void **state)
{
	struct bal_cand c[] = { { .id = 1, .conns = 40, .cap = 100 },
				{ .id = 2, .conns = 10, .cap = 100 },
				{ .id = 3, .conns = 0, .cap = 100 } };
	int rr = 0;

	(void)state;
	/* The first under the threshold keeps taking connections (packing). */
	assert_int_equal(bal_policy_pick(BAL_POLICY_LEASTBUSY, c, N(c), &rr, 0, 50), 0);
	c[0].conns = 50; /* at the threshold: overloaded */
	assert_int_equal(bal_policy_pick(BAL_POLICY_LEASTBUSY, c, N(c), &rr, 0, 50), 1);
	c[1].conns = 60;
	c[2].conns = 55;
	/* all overloaded: the least loaded */
	assert_int_equal(bal_policy_pick(BAL_POLICY_LEASTBUSY, c, N(c), &rr, 0, 50), 0);
	/* threshold 100: 99 % is still fine */
	c[0].conns = 99;
	assert_int_equal(bal_policy_pick(BAL_POLICY_LEASTBUSY, c, N(c), &rr, 0, 100), 0);
	/* no cap: compares connections, as least-connections */
	struct bal_cand u[] = { { .id = 1, .conns = 5 }, { .id = 2, .conns = 3 } };
	assert_int_equal(bal_policy_pick(BAL_POLICY_LEASTBUSY, u, N(u), &rr, 0, 50), 1);
}

static void test_hash_consistent(void **state)
{
	struct bal_cand four[] = { { .id = 1 }, { .id = 2 }, { .id = 3 }, { .id = 4 } };
	struct bal_cand three[] = { { .id = 1 }, { .id = 2 }, { .id = 4 } };
	unsigned count[5] = { 0 }, moved = 0;
	int rr = 0;

	(void)state;
	for (uint32_t ip = 0; ip < 4000; ip++) {
		uint32_t addr = 0x0a000000 + ip, key = bal_hash_addr(&addr, 4);
		int a = four[bal_policy_pick(BAL_POLICY_HASH, four, 4, &rr, key, 50)].id;
		int b = three[bal_policy_pick(BAL_POLICY_HASH, three, 3, &rr, key, 50)].id;

		/* the same key always lands on the same INS */
		assert_int_equal(four[bal_policy_pick(BAL_POLICY_HASH, four, 4, &rr, key, 50)].id,
				 a);
		count[a]++;
		/* INS 3 leaving moves only the keys it had */
		if (a != 3)
			assert_int_equal(a, b);
		else
			moved++;
	}
	/* a fair spread: each INS within 20 % of 1000 */
	for (int i = 1; i <= 4; i++) {
		assert_true(count[i] > 800);
		assert_true(count[i] < 1200);
	}
	assert_int_equal(moved, count[3]);
	/* the port is not part of the key: only the address bytes are hashed */
	uint32_t x = 0x7f000001;
	assert_int_equal(bal_hash_addr(&x, 4), bal_hash_addr(&x, 4));
	uint32_t y = 0x7f000002;
	assert_int_not_equal(bal_hash_addr(&x, 4), bal_hash_addr(&y, 4));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_names),
		cmocka_unit_test(test_empty),
		cmocka_unit_test(test_round_robin),
		cmocka_unit_test(test_least_connections),
		cmocka_unit_test(test_least_connections_share_bound),
		cmocka_unit_test(test_least_busy),
		cmocka_unit_test(test_hash_consistent),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
