/* SPDX-License-Identifier: MIT */
/* test_ring.c - SPSC ring: ordering, wrap-around, full ring, max record, wake-up flags, corruption */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "common/ring.h"

#define RSIZE 4096u

struct fixture {
	struct mw_ring_shared sh;
	_Alignas(64) uint8_t data[RSIZE];
	struct mw_ring prod, cons;
};

static int setup(void **state)
{
	struct fixture *f = aligned_alloc(64, sizeof(*f));

	assert_non_null(f);
	memset(f, 0xa5, sizeof(*f));
	assert_int_equal(mw_ring_init(&f->prod, &f->sh, f->data, RSIZE, true), 0);
	assert_int_equal(mw_ring_init(&f->cons, &f->sh, f->data, RSIZE, false), 0);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	free(*state);
	return 0;
}

static uint8_t pattern(uint64_t seq, uint32_t i)
{
	return (uint8_t)(seq * 131u + i * 7u + 1u);
}

static bool push(struct mw_ring *r, uint64_t seq, uint32_t len)
{
	uint8_t *p = mw_ring_reserve(r, len);

	if (!p)
		return false;
	for (uint32_t i = 0; i < len; i++)
		p[i] = pattern(seq, i);
	mw_ring_commit(r, len);
	return true;
}

static void pop_expect(struct mw_ring *r, uint64_t seq, uint32_t len)
{
	const uint8_t *p;
	const void *rec;
	uint32_t got;

	assert_int_equal(mw_ring_peek(r, &rec, &got), 1);
	assert_int_equal(got, len);
	p = rec;
	for (uint32_t i = 0; i < len; i++)
		assert_int_equal(p[i], pattern(seq, i));
	mw_ring_consume(r);
}

static void test_init_sizes(void **state)
{
	struct fixture *f = *state;
	struct mw_ring r;

	assert_int_equal(mw_ring_init(&r, &f->sh, f->data, 0, true), -EINVAL);
	assert_int_equal(mw_ring_init(&r, &f->sh, f->data, 2048, true), -EINVAL);
	assert_int_equal(mw_ring_init(&r, &f->sh, f->data, 6000, true), -EINVAL);
	assert_int_equal(mw_ring_init(&r, &f->sh, f->data + 1, RSIZE, true), -EINVAL);
	assert_int_equal(mw_ring_init(&r, &f->sh, f->data, RSIZE, true), 0);
	assert_int_equal(mw_ring_max_record(&r), RSIZE - 8);
}

static void test_ordering(void **state)
{
	struct fixture *f = *state;
	const void *rec;
	uint32_t len;
	uint64_t seq;

	assert_int_equal(mw_ring_peek(&f->cons, &rec, &len), 0);
	for (seq = 0; seq < 20; seq++)
		assert_true(push(&f->prod, seq, (uint32_t)(seq * 13 % 97)));
	for (seq = 0; seq < 20; seq++)
		pop_expect(&f->cons, seq, (uint32_t)(seq * 13 % 97));
	assert_int_equal(mw_ring_peek(&f->cons, &rec, &len), 0);
	/* peek without consume returns the same record again */
	assert_true(push(&f->prod, 99, 5));
	assert_int_equal(mw_ring_peek(&f->cons, &rec, &len), 1);
	pop_expect(&f->cons, 99, 5);
	assert_int_equal(f->sh.head, f->sh.tail);
}

/* Every length 0..600 many times round the ring, two records in flight. */
static void test_wrap_many_sizes(void **state)
{
	struct fixture *f = *state;
	uint64_t seq = 0, done = 0;
	uint32_t lens[4];

	for (uint32_t len = 0; len <= 600; len++) {
		for (int k = 0; k < 12; k++) {
			assert_true(push(&f->prod, seq, len));
			lens[seq % 4] = len;
			seq++;
			if (seq - done == 2) {
				pop_expect(&f->cons, done, lens[done % 4]);
				done++;
			}
		}
	}
	while (done < seq) {
		pop_expect(&f->cons, done, lens[done % 4]);
		done++;
	}
	assert_true(f->sh.head > 10 * RSIZE); /* wrapped many times */
	assert_int_equal(f->sh.head, f->sh.tail);
}

/* A record ending exactly at the end needs no PAD; one byte more does. */
static void test_exact_fit_and_pad(void **state)
{
	struct fixture *f = *state;
	const void *rec;
	uint32_t len;

	/* Move to offset 4096 - 64. */
	assert_true(push(&f->prod, 1, RSIZE - 64 - 8));
	pop_expect(&f->cons, 1, RSIZE - 64 - 8);
	assert_int_equal(f->sh.head % RSIZE, RSIZE - 64);
	/* 56 payload + 8 header = 64: exact fit, next record at 0 */
	assert_true(push(&f->prod, 2, 56));
	assert_int_equal(f->sh.head % RSIZE, 0);
	pop_expect(&f->cons, 2, 56);
	/* Now at 0; go to 4096-64 again and push 57 bytes: PAD 64 + record 72 */
	assert_true(push(&f->prod, 3, RSIZE - 64 - 8));
	pop_expect(&f->cons, 3, RSIZE - 64 - 8);
	assert_true(push(&f->prod, 4, 57));
	assert_int_equal(f->sh.head % RSIZE, 72);
	assert_int_equal(mw_ring_peek(&f->cons, &rec, &len), 1);
	assert_ptr_equal(rec, f->data + 8);
	pop_expect(&f->cons, 4, 57);
}

static void test_full_ring(void **state)
{
	struct fixture *f = *state;
	uint64_t n = 0, i;

	while (push(&f->prod, n, 100))
		n++;
	assert_int_equal(n, RSIZE / 112); /* 8 + 104 per record */
	assert_null(mw_ring_reserve(&f->prod, 100));
	assert_true(mw_ring_producer_wait(&f->prod, 100));
	pop_expect(&f->cons, 0, 100);
	assert_true(mw_ring_producer_needs_kick(&f->cons));
	assert_false(mw_ring_producer_needs_kick(&f->cons)); /* one kick only */
	assert_false(mw_ring_producer_wait(&f->prod, 100));
	assert_true(push(&f->prod, n, 100));
	for (i = 1; i <= n; i++)
		pop_expect(&f->cons, i, 100);
}

static void test_max_record(void **state)
{
	struct fixture *f = *state;
	uint32_t max = mw_ring_max_record(&f->prod);
	const void *rec;
	uint32_t len;

	assert_null(mw_ring_reserve(&f->prod, max + 1));
	assert_true(push(&f->prod, 1, max)); /* at offset 0: fills the ring */
	assert_null(mw_ring_reserve(&f->prod, 0));
	pop_expect(&f->cons, 1, max);
	/* Not at offset 0: the PAD goes out alone, the record waits for it to drain. */
	assert_true(push(&f->prod, 2, 8));
	pop_expect(&f->cons, 2, 8);
	assert_null(mw_ring_reserve(&f->prod, max));
	assert_int_equal(f->sh.head % RSIZE, 0); /* PAD published */
	assert_true(mw_ring_producer_wait(&f->prod, max));
	assert_int_equal(mw_ring_peek(&f->cons, &rec, &len), 0); /* PAD skipped */
	assert_true(mw_ring_producer_needs_kick(&f->cons));
	assert_false(mw_ring_producer_wait(&f->prod, max));
	assert_true(push(&f->prod, 3, max));
	pop_expect(&f->cons, 3, max);
}

static void test_wakeup_flags(void **state)
{
	struct fixture *f = *state;

	assert_false(mw_ring_consumer_asleep(&f->prod));
	assert_false(mw_ring_consumer_needs_kick(&f->prod)); /* awake: no kick */
	assert_true(mw_ring_consumer_sleep(&f->cons));
	assert_true(mw_ring_consumer_asleep(&f->prod)); /* the hint: no side effect */
	assert_true(mw_ring_consumer_asleep(&f->prod));
	assert_true(push(&f->prod, 1, 10));
	assert_true(mw_ring_consumer_needs_kick(&f->prod));
	assert_false(mw_ring_consumer_asleep(&f->prod)); /* kicked: flag cleared */
	assert_true(push(&f->prod, 2, 10));
	assert_false(mw_ring_consumer_needs_kick(&f->prod)); /* already kicked */
	mw_ring_consumer_wake(&f->cons);
	/* Records pending: may not sleep, and the flag is left clear. */
	assert_false(mw_ring_consumer_sleep(&f->cons));
	assert_int_equal(f->sh.consumer_sleeping, 0);
	pop_expect(&f->cons, 1, 10);
	assert_false(mw_ring_consumer_sleep(&f->cons));
	pop_expect(&f->cons, 2, 10);
	assert_true(mw_ring_consumer_sleep(&f->cons));
	assert_int_equal(f->sh.consumer_sleeping, 1);
	mw_ring_consumer_wake(&f->cons);
	assert_int_equal(f->sh.consumer_sleeping, 0);
}

/* Commit trims to a smaller final length. */
static void test_commit_trim(void **state)
{
	struct fixture *f = *state;
	uint8_t *p = mw_ring_reserve(&f->prod, 500);

	assert_non_null(p);
	for (uint32_t i = 0; i < 33; i++)
		p[i] = pattern(7, i);
	mw_ring_commit(&f->prod, 33);
	assert_int_equal(f->sh.head, 8 + 40);
	pop_expect(&f->cons, 7, 33);
}

static void expect_bad(struct fixture *f)
{
	const void *rec;
	uint32_t len;

	assert_int_equal(mw_ring_peek(&f->cons, &rec, &len), -EBADMSG);
}

static void test_corrupt_head(void **state)
{
	struct fixture *f = *state;

	f->sh.head = RSIZE + 8; /* more than a ring ahead */
	expect_bad(f);
	f->sh.head = 12; /* unaligned */
	expect_bad(f);
	assert_true(push(&f->prod, 1, 8));
	pop_expect(&f->cons, 1, 8);
	f->sh.head = 0; /* behind our tail */
	expect_bad(f);
}

static void test_corrupt_records(void **state)
{
	struct fixture *f = *state;
	uint32_t *hdr = (uint32_t *)f->data;

	assert_true(push(&f->prod, 1, 16));
	hdr[0] = 0xffffff00; /* len way over the ring */
	expect_bad(f);
	hdr[0] = 24; /* record beyond what was written (only 24 bytes published) */
	expect_bad(f);
	hdr[0] = 16;
	hdr[1] = 0x12345678; /* unknown kind */
	expect_bad(f);
	hdr[1] = 0x44415031u; /* PAD at offset 0 */
	expect_bad(f);
}

static void test_corrupt_pad_and_straddle(void **state)
{
	struct fixture *f = *state;
	uint32_t *hdr;

	assert_true(push(&f->prod, 1, RSIZE - 64 - 8));
	pop_expect(&f->cons, 1, RSIZE - 64 - 8);
	assert_true(push(&f->prod, 2, 100)); /* PAD at 4032 + record at 0 */
	hdr = (uint32_t *)(f->data + RSIZE - 64);
	hdr[0] = 8; /* PAD shorter than the remainder */
	expect_bad(f);
	hdr[0] = 56;
	hdr[1] = 0x52454331u; /* turn the PAD into a record straddling the end */
	hdr[0] = 120;
	expect_bad(f);
}

static void test_corrupt_tail_seen_by_producer(void **state)
{
	struct fixture *f = *state;
	struct mw_ring r;

	while (push(&f->prod, 0, 200))
		;
	f->sh.tail = f->sh.head + 8; /* impossible: consumer ahead of producer */
	assert_null(mw_ring_reserve(&f->prod, 8));
	f->sh.tail = 3;
	assert_null(mw_ring_reserve(&f->prod, 8));
	/* A joiner refuses impossible indices. */
	f->sh.tail = f->sh.head + 8;
	assert_int_equal(mw_ring_init(&r, &f->sh, f->data, RSIZE, false), -EBADMSG);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_init_sizes, setup, teardown),
		cmocka_unit_test_setup_teardown(test_ordering, setup, teardown),
		cmocka_unit_test_setup_teardown(test_wrap_many_sizes, setup, teardown),
		cmocka_unit_test_setup_teardown(test_exact_fit_and_pad, setup, teardown),
		cmocka_unit_test_setup_teardown(test_full_ring, setup, teardown),
		cmocka_unit_test_setup_teardown(test_max_record, setup, teardown),
		cmocka_unit_test_setup_teardown(test_wakeup_flags, setup, teardown),
		cmocka_unit_test_setup_teardown(test_commit_trim, setup, teardown),
		cmocka_unit_test_setup_teardown(test_corrupt_head, setup, teardown),
		cmocka_unit_test_setup_teardown(test_corrupt_records, setup, teardown),
		cmocka_unit_test_setup_teardown(test_corrupt_pad_and_straddle, setup, teardown),
		cmocka_unit_test_setup_teardown(test_corrupt_tail_seen_by_producer, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
