/* SPDX-License-Identifier: MIT */
/* test_flow_tables.c - flowd/ftab.c: fixed capacity, drop and count, deletes under churn */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "flowd/ftab.h"

/* Deterministic xorshift32: the same sequence on every run, so a failure reproduces. */
static uint32_t rng_state = 2463534242u;

static uint32_t rng(void)
{
	rng_state ^= rng_state << 13;
	rng_state ^= rng_state >> 17;
	rng_state ^= rng_state << 5;
	return rng_state;
}

struct entry {
	uint32_t key;
	uint32_t value;
};

static void test_full_drops_and_counts(void **state)
{
	struct fl_ftab t;
	bool created;
	uint32_t k;

	(void)state;
	assert_int_equal(fl_ftab_init(&t, 100, sizeof(struct entry), 4), 0);
	for (k = 0; k < 100; k++) {
		struct entry *e = fl_ftab_get(&t, &k, &created);

		assert_non_null(e);
		assert_true(created);
		e->value = k * 3;
	}
	k = 1000;
	assert_null(fl_ftab_get(&t, &k, &created));
	assert_null(fl_ftab_get(&t, &k, &created));
	assert_int_equal(t.drops, 2);
	assert_int_equal(t.count, 100);
	/* An existing key is still found when the table is full. */
	k = 42;
	assert_int_equal(((struct entry *)fl_ftab_get(&t, &k, &created))->value, 126);
	assert_false(created);
	/* Freeing one makes room for exactly one. */
	fl_ftab_del(&t, fl_ftab_find(&t, &k));
	k = 1000;
	assert_non_null(fl_ftab_get(&t, &k, &created));
	k = 1001;
	assert_null(fl_ftab_get(&t, &k, &created));
	fl_ftab_fini(&t);
}

/* Random inserts and deletes against a plain array: every key stays findable. */
static void test_churn_matches_reference(void **state)
{
	enum {
		CAP = 512,
		KEYS = 2048,
		ROUNDS = 200000
	};
	static bool present[KEYS];
	struct fl_ftab t;
	uint32_t i, n = 0;

	(void)state;
	assert_int_equal(fl_ftab_init(&t, CAP, sizeof(struct entry), 4), 0);
	for (i = 0; i < ROUNDS; i++) {
		uint32_t k = rng() % KEYS;
		struct entry *e = fl_ftab_find(&t, &k);
		bool created;

		assert_int_equal(e != NULL, present[k]);
		if (e && rng() % 2) {
			assert_int_equal(e->value, k + 1);
			fl_ftab_del(&t, e);
			present[k] = false;
			n--;
		} else if (!e) {
			e = fl_ftab_get(&t, &k, &created);
			if (n == CAP) {
				assert_null(e);
				continue;
			}
			assert_non_null(e);
			e->value = k + 1;
			present[k] = true;
			n++;
		}
		assert_int_equal(t.count, n);
	}
	for (i = 0; i < KEYS; i++)
		assert_int_equal(fl_ftab_find(&t, &i) != NULL, present[i]);
	fl_ftab_fini(&t);
}

static void test_walk_sees_every_entry(void **state)
{
	struct fl_ftab t;
	uint32_t k, n, seen = 0;
	bool created;

	(void)state;
	assert_int_equal(fl_ftab_init(&t, 64, sizeof(struct entry), 4), 0);
	for (k = 0; k < 40; k++)
		fl_ftab_get(&t, &k, &created);
	for (k = 0; k < 40; k += 2)
		fl_ftab_del(&t, fl_ftab_find(&t, &k));
	for (n = 0; n < t.cap; n++) {
		struct entry *e = fl_ftab_at(&t, n);

		if (e) {
			assert_int_equal(e->key % 2, 1);
			seen++;
		}
	}
	assert_int_equal(seen, 20);
	fl_ftab_fini(&t);
}

static void test_bad_sizes(void **state)
{
	struct fl_ftab t;

	(void)state;
	assert_int_equal(fl_ftab_init(&t, 0, 8, 4), -EINVAL);
	assert_int_equal(fl_ftab_init(&t, 10, 2, 4), -EINVAL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_full_drops_and_counts),
		cmocka_unit_test(test_churn_matches_reference),
		cmocka_unit_test(test_walk_sees_every_entry),
		cmocka_unit_test(test_bad_sizes),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
