/* SPDX-License-Identifier: MIT */
/* test_flow_sketch.c - Space-Saving keeps its stated bound; HyperLogLog stays within 4 sigma */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "flowd/ftab.h"
#include "flowd/sketch.h"

/* Deterministic xorshift32: the same sequence on every run, so a failure reproduces. */
static uint32_t rng_state = 2463534242u;

static uint32_t rng(void)
{
	rng_state ^= rng_state << 13;
	rng_state ^= rng_state >> 17;
	rng_state ^= rng_state << 5;
	return rng_state;
}

static void test_exact_below_capacity(void **state)
{
	struct fl_topn t;
	uint32_t k, n;

	(void)state;
	assert_int_equal(fl_topn_init(&t, 16, 4), 0);
	for (k = 1; k <= 10; k++)
		fl_topn_add(&t, &k, k * 100);
	k = 3;
	fl_topn_add(&t, &k, 5000);
	n = fl_topn_top(&t, 3);
	assert_int_equal(n, 3);
	memcpy(&k, t.sorted[0].key, 4);
	assert_int_equal(k, 3);
	assert_int_equal(t.sorted[0].count, 5300);
	assert_int_equal(t.sorted[0].error, 0);
	memcpy(&k, t.sorted[1].key, 4);
	assert_int_equal(k, 10);
	fl_topn_fini(&t);
}

/* Skewed stream with many more keys than counters: the heavy keys are found, the bound holds. */
static void test_bound_under_pressure(void **state)
{
	enum {
		KEYS = 5000,
		M = 64,
		N = 200000
	};
	static uint64_t truth[KEYS];
	struct fl_topn t;
	uint32_t i, n;

	(void)state;
	assert_int_equal(fl_topn_init(&t, M, 4), 0);
	for (i = 0; i < N; i++) {
		/* keys 0..4 take half the weight, the rest is spread over 5000 */
		uint32_t k = rng() % 2 ? rng() % 5 : rng() % KEYS;
		uint64_t w = 1 + (uint64_t)(rng() % 1500);

		truth[k] += w;
		fl_topn_add(&t, &k, w);
	}
	n = fl_topn_top(&t, 5);
	assert_int_equal(n, 5);
	for (i = 0; i < n; i++) {
		uint32_t k;

		memcpy(&k, t.sorted[i].key, 4);
		assert_true(k < 5);
		assert_true(t.sorted[i].count >= truth[k]);
		assert_true(t.sorted[i].count - truth[k] <= t.sorted[i].error);
		assert_true(t.sorted[i].error <= t.total / M);
	}
	fl_topn_fini(&t);
}

/* After every update: the heap root holds the least count, each parent <= its children. */
static void test_heap_invariant(void **state)
{
	enum {
		M = 32,
		N = 20000
	};
	struct fl_topn t;
	uint32_t i, j;

	(void)state;
	assert_int_equal(fl_topn_init(&t, M, 4), 0);
	for (i = 0; i < N; i++) {
		uint32_t k = rng() % 200;

		fl_topn_add(&t, &k, 1 + rng() % 100);
		for (j = 1; j < t.used; j++)
			assert_true(t.items[t.heap[(j - 1) / 2]].count <= t.items[t.heap[j]].count);
		for (j = 0; j < t.used; j++)
			assert_int_equal(t.pos[t.heap[j]], j);
	}
	/* Every counted key is found again (the index survived the replacements). */
	for (j = 0; j < t.used; j++) {
		uint64_t before = t.items[j].count, total = t.total;
		uint32_t k;

		memcpy(&k, t.items[j].key, 4);
		fl_topn_add(&t, &k, 1);
		assert_int_equal(t.items[j].count, before + 1);
		assert_int_equal(t.total, total + 1);
	}
	fl_topn_fini(&t);
}

static void test_hll_error(void **state)
{
	static const uint32_t sizes[] = { 1, 10, 100, 1000, 20000 };
	size_t s;

	(void)state;
	for (s = 0; s < sizeof(sizes) / sizeof(sizes[0]); s++) {
		struct fl_hll h;
		uint32_t i, rep;
		double est, err;

		memset(&h, 0, sizeof(h));
		/* each value twice: duplicates must not count */
		for (rep = 0; rep < 2; rep++)
			for (i = 0; i < sizes[s]; i++)
				fl_hll_add(&h, fl_hash(99, &i, sizeof(i)));
		est = (double)fl_hll_estimate(&h);
		err = est > sizes[s] ? est - sizes[s] : sizes[s] - est;
		/* 4 standard errors of 6.5 %, and small counts nearly exact */
		assert_true(err <= 0.26 * sizes[s] + 1);
		if (sizes[s] <= 100)
			assert_true(err <= 0.05 * sizes[s] + 1);
	}
}

/*
 * Hash flooding: 64 keys aimed at one index slot under a seed an attacker could read
 * (the source's old constant, or any fixed one) would make one probe run of 64.  The
 * index is seeded per process at random, so the aimed keys spread as any keys do.
 */
static void test_index_not_aimable(void **state)
{
	const uint64_t known_seeds[] = { 0x70b5eedULL, 0 };
	struct fl_topn t;
	uint32_t keys[64], k, n, s, run, longest;
	size_t i;

	(void)state;
	assert_int_not_equal(fl_salt(), 0);
	for (i = 0; i < sizeof(known_seeds) / sizeof(known_seeds[0]); i++) {
		assert_int_equal(fl_topn_init(&t, 256, 4), 0); /* 512 index slots */
		for (n = 0, k = 1; n < 64; k++)
			if ((fl_hash(known_seeds[i], &k, sizeof(k)) & t.mask) == 7)
				keys[n++] = k;
		for (n = 0; n < 64; n++)
			fl_topn_add(&t, &keys[n], 1);
		assert_int_equal(t.used, 64);
		for (s = 0, run = 0, longest = 0; s <= 2 * t.mask; s++) {
			run = t.index[s & t.mask] != UINT32_MAX ? run + 1 : 0;
			longest = run > longest ? run : longest;
		}
		assert_true(longest < 16);
		fl_topn_fini(&t);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_exact_below_capacity),
		cmocka_unit_test(test_bound_under_pressure),
		cmocka_unit_test(test_heap_invariant),
		cmocka_unit_test(test_hll_error),
		cmocka_unit_test(test_index_not_aimable),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
