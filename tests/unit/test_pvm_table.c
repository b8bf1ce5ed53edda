/* SPDX-License-Identifier: MIT */
/* test_pvm_table.c - mw-pvm's socket table, id allocation and credit accounting */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include <cmocka.h>

#include "common/sockid.h"
#include "pvm/pvm_table.h"

static void test_table_put_get_del(void **state)
{
	struct pvm_table t;
	int a, b;

	assert_int_equal(pvm_table_init(&t, 0), 0);
	assert_null(pvm_table_get(&t, 42));
	assert_int_equal(pvm_table_put(&t, 42, &a), 0);
	assert_int_equal(pvm_table_put(&t, 42, &b), -EEXIST);
	assert_int_equal(pvm_table_put(&t, 0, &b), -EINVAL);
	assert_int_equal(pvm_table_put(&t, 7, NULL), -EINVAL);
	assert_ptr_equal(pvm_table_get(&t, 42), &a);
	assert_ptr_equal(pvm_table_del(&t, 42), &a);
	assert_null(pvm_table_del(&t, 42));
	assert_null(pvm_table_get(&t, 42));
	assert_int_equal(t.count, 0);
	pvm_table_fini(&t);
}

/* The hash mw-pvm used before its key (a fixed mix an INS can compute). */
static uint32_t unkeyed_hash(uint64_t key, uint32_t mask)
{
	key ^= key >> 33;
	key *= 0xff51afd7ed558ccdULL;
	key ^= key >> 33;
	return (uint32_t)key & mask;
}

/*
 * A hostile INS picks its connections' ids (bit 31 set): 512 ids that a fixed
 * hash sends to one slot would make one probe run that every lookup near it
 * walks.  The table's hash is keyed: they spread like any ids.
 */
static void test_table_chosen_ids_do_not_collide(void **state)
{
	enum {
		N = 512,
		CAP = 2048 /* pvm_table_init(1024): N stay under half */
	};
	struct pvm_table t;
	uint32_t local = MW_SOCKID_INS_ASSIGNED, run = 0, longest = 0, i, n = 0;
	uint64_t id;

	assert_int_equal(pvm_table_init(&t, CAP / 2), 0);
	assert_int_equal(t.cap, CAP);
	while (n < N) {
		id = mw_sockid_make(3, 0, local++);
		if (unkeyed_hash(id, CAP - 1))
			continue;
		assert_int_equal(pvm_table_put(&t, id, &t), 0);
		n++;
	}
	assert_int_equal(t.cap, CAP);
	for (i = 0; i < 2 * CAP; i++) { /* twice round: a run may wrap */
		run = t.keys[i % CAP] ? run + 1 : 0;
		if (run > longest)
			longest = run;
	}
	assert_true(longest < 48); /* one run of 512 with the fixed hash */
	pvm_table_fini(&t);
}

/* Grow past many doublings with ids shaped like real ones, delete half, check the rest. */
static void test_table_grow_and_delete_keeps_others(void **state)
{
	enum {
		N = 100000
	};
	struct pvm_table t;
	uint64_t id;
	uint32_t i;

	assert_int_equal(pvm_table_init(&t, 4), 0);
	for (i = 1; i <= N; i++) {
		id = mw_sockid_make((uint16_t)(i % 5 + 1), 0, i);
		assert_int_equal(pvm_table_put(&t, id, (void *)(uintptr_t)id), 0);
	}
	assert_int_equal(t.count, N);
	assert_true(t.cap >= 2 * N);
	for (i = 1; i <= N; i += 2) {
		id = mw_sockid_make((uint16_t)(i % 5 + 1), 0, i);
		assert_ptr_equal(pvm_table_del(&t, id), (void *)(uintptr_t)id);
	}
	assert_int_equal(t.count, N / 2);
	for (i = 1; i <= N; i++) {
		id = mw_sockid_make((uint16_t)(i % 5 + 1), 0, i);
		if (i % 2)
			assert_null(pvm_table_get(&t, id));
		else
			assert_ptr_equal(pvm_table_get(&t, id), (void *)(uintptr_t)id);
	}
	pvm_table_fini(&t);
}

/* Backward-shift deletion in one long probe run, including wrap-around of the array. */
static void test_table_delete_in_collision_run(void **state)
{
	struct pvm_table t;
	void *snap[64];
	uint64_t k;
	size_t n;

	assert_int_equal(pvm_table_init(&t, 0), 0);
	for (k = 1; k <= 31; k++)
		assert_int_equal(pvm_table_put(&t, k * 64, (void *)(uintptr_t)k), 0);
	for (k = 1; k <= 31; k += 3)
		assert_non_null(pvm_table_del(&t, k * 64));
	for (k = 1; k <= 31; k++) {
		if ((k - 1) % 3 == 0)
			assert_null(pvm_table_get(&t, k * 64));
		else
			assert_ptr_equal(pvm_table_get(&t, k * 64), (void *)(uintptr_t)k);
	}
	n = pvm_table_snapshot(&t, snap, 64);
	assert_int_equal(n, t.count);
	assert_int_equal(pvm_table_snapshot(&t, snap, 3), 3);
	pvm_table_fini(&t);
}

#define BASE_INS(n) (0x53ULL << 56 | (uint64_t)(n) << 40)

static void test_idalloc_wraps_and_skips_ids_in_use(void **state)
{
	struct pvm_table t;
	struct pvm_idalloc a;
	int v = 1;

	(void)state;
	assert_int_equal(pvm_table_init(&t, 0), 0);
	pvm_idalloc_init(&a, 4);
	assert_int_equal(pvm_idalloc(&a, &t, BASE_INS(1)), 1);
	assert_int_equal(pvm_table_put(&t, BASE_INS(1) | 1, &v), 0);
	assert_int_equal(pvm_idalloc(&a, &t, BASE_INS(1)), 2);
	assert_int_equal(pvm_table_put(&t, BASE_INS(1) | 2, &v), 0);
	assert_int_equal(pvm_idalloc(&a, &t, BASE_INS(1)), 3);
	assert_int_equal(pvm_table_put(&t, BASE_INS(1) | 3, &v), 0);
	assert_int_equal(pvm_idalloc(&a, &t, BASE_INS(1)), 4);
	assert_int_equal(pvm_table_put(&t, BASE_INS(1) | 4, &v), 0);
	/* all four in use under INS 1: exhausted, but INS 2's ids are free */
	assert_int_equal(pvm_idalloc(&a, &t, BASE_INS(1)), 0);
	assert_int_equal(pvm_idalloc(&a, &t, BASE_INS(2)), 1);
	/* freeing one makes it available again, after the counter wrapped (one turn) */
	assert_non_null(pvm_table_del(&t, BASE_INS(1) | 3));
	assert_int_equal(pvm_idalloc(&a, &t, BASE_INS(1)), 3);
	assert_true(a.turns >= 1);
	/* every id in use again: exhausted */
	assert_int_equal(pvm_table_put(&t, BASE_INS(1) | 3, &v), 0);
	assert_int_equal(pvm_idalloc(&a, &t, BASE_INS(1)), 0);
	pvm_table_fini(&t);
}

static void test_idalloc_never_gives_bit31_and_survives_many_turns(void **state)
{
	struct pvm_table t;
	struct pvm_idalloc a;
	uint32_t i, id, last = 0;

	(void)state;
	assert_int_equal(pvm_table_init(&t, 0), 0);
	pvm_idalloc_init(&a, 0); /* 0 = the whole space */
	assert_int_equal(a.space, 0x7fffffffu);
	a.next = 0x7ffffffeu;
	assert_int_equal(pvm_idalloc(&a, &t, BASE_INS(1)), 0x7ffffffeu);
	assert_int_equal(pvm_idalloc(&a, &t, BASE_INS(1)), 0x7fffffffu);
	assert_int_equal(pvm_idalloc(&a, &t, BASE_INS(1)), 1); /* wrapped, never bit 31 */
	/* a small space never runs out while ids are freed */
	pvm_idalloc_init(&a, 16);
	for (i = 0; i < 1000; i++) {
		id = pvm_idalloc(&a, &t, BASE_INS(7));
		assert_true(id >= 1 && id <= 16);
		assert_int_not_equal(id, last);
		last = id;
	}
	assert_true(a.turns >= 60);
	pvm_table_fini(&t);
}

static void test_credit_rx_window_enforced(void **state)
{
	struct pvm_credit c;

	pvm_credit_init(&c, 1000, 4096);
	assert_int_equal(pvm_credit_rx_take(&c, 4000), 0);
	assert_int_equal(pvm_credit_rx_take(&c, 97), -EPROTO); /* one byte over */
	assert_int_equal(pvm_credit_rx_take(&c, 96), 0);
	assert_int_equal(pvm_credit_rx_take(&c, 1), -EPROTO);
	/* below window/4 nothing is acked unless forced */
	assert_int_equal(pvm_credit_rx_drained(&c, 1000, false), 0);
	assert_int_equal(pvm_credit_rx_take(&c, 1), -EPROTO);
	assert_int_equal(pvm_credit_rx_drained(&c, 24, false), 1024);
	assert_int_equal(pvm_credit_rx_take(&c, 1024), 0);
	assert_int_equal(pvm_credit_rx_take(&c, 1), -EPROTO);
	assert_int_equal(pvm_credit_rx_drained(&c, 10, true), 10);
	assert_int_equal(pvm_credit_rx_drained(&c, 0, true), 0);
	assert_int_equal(c.rx_outstanding, 4096 - 10);
}

/* A full window never deadlocks: once everything is drained, an ack is always due. */
static void test_credit_full_window_always_acked(void **state)
{
	struct pvm_credit c;
	uint32_t i, acked = 0;

	pvm_credit_init(&c, 1, 65536);
	assert_int_equal(pvm_credit_rx_take(&c, 65536), 0);
	for (i = 0; i < 65536; i += 1000)
		acked += pvm_credit_rx_drained(&c, 65536 - i < 1000 ? 65536 - i : 1000, false);
	acked += pvm_credit_rx_drained(&c, 0, false);
	assert_true(c.rx_window - c.rx_outstanding >= c.rx_window / 4);
	assert_int_equal(acked + c.rx_unacked, 65536);
}

static void test_credit_tx_grant_checks(void **state)
{
	struct pvm_credit c;

	pvm_credit_init(&c, 1000, 4096);
	assert_int_equal(pvm_credit_tx_grant(&c, 1), -EPROTO); /* nothing in flight */
	pvm_credit_tx_use(&c, 600);
	assert_int_equal(c.tx_credit, 400);
	assert_int_equal(pvm_credit_tx_grant(&c, 0), -EPROTO);
	assert_int_equal(pvm_credit_tx_grant(&c, 601), -EPROTO);
	assert_int_equal(pvm_credit_tx_grant(&c, 500), 0);
	assert_int_equal(pvm_credit_tx_grant(&c, 100), 0);
	assert_int_equal(c.tx_credit, 1000);
	pvm_credit_tx_use(&c, 5000); /* clamps, never wraps */
	assert_int_equal(c.tx_credit, 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_table_put_get_del),
		cmocka_unit_test(test_table_grow_and_delete_keeps_others),
		cmocka_unit_test(test_table_chosen_ids_do_not_collide),
		cmocka_unit_test(test_table_delete_in_collision_run),
		cmocka_unit_test(test_idalloc_wraps_and_skips_ids_in_use),
		cmocka_unit_test(test_idalloc_never_gives_bit31_and_survives_many_turns),
		cmocka_unit_test(test_credit_rx_window_enforced),
		cmocka_unit_test(test_credit_full_window_always_acked),
		cmocka_unit_test(test_credit_tx_grant_checks),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
