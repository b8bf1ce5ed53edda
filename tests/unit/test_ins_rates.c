/* SPDX-License-Identifier: MIT */
/* test_ins_rates.c - shield rates and limits: buckets, source/prefix tables, rate windows */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "ins/ins_rates.h"

static struct mw_addr v4(uint8_t a, uint8_t b, uint8_t c, uint8_t d)
{
	struct mw_addr x = { .family = 4, .port = 1234 };

	x.addr[0] = a;
	x.addr[1] = b;
	x.addr[2] = c;
	x.addr[3] = d;
	return x;
}

/* 2001:db8:<w2>:<w3>::<last> */
static struct mw_addr v6(uint8_t w2, uint8_t w3, uint8_t last)
{
	struct mw_addr x = { .family = 6, .port = 80 };

	x.addr[0] = 0x20;
	x.addr[1] = 0x01;
	x.addr[2] = 0x0d;
	x.addr[3] = 0xb8;
	x.addr[5] = w2;
	x.addr[7] = w3;
	x.addr[15] = last;
	return x;
}

static void test_bucket_refill(void **state)
{
	struct ins_bucket b = { .milli = 3000, .at_ms = 1000 };
	int i;

	(void)state;
	/* rate 3/s, full: three pass at once, the fourth does not */
	for (i = 0; i < 3; i++) {
		assert_true(ins_bucket_ok(&b, 3, 1000));
		ins_bucket_take(&b);
	}
	assert_false(ins_bucket_ok(&b, 3, 1000));
	/* a third of a second later exactly one token is back (3/s) */
	assert_false(ins_bucket_ok(&b, 3, 1332));
	assert_true(ins_bucket_ok(&b, 3, 1334));
	ins_bucket_take(&b);
	assert_false(ins_bucket_ok(&b, 3, 1334));
	/* a long pause refills to the burst (3), not beyond */
	assert_true(ins_bucket_ok(&b, 3, 60000));
	assert_int_equal(b.milli, 3000);
	/* rate 0: no limit */
	assert_true(ins_bucket_ok(&b, 0, 0));
	/* time going backwards does not add tokens */
	b.milli = 0;
	b.at_ms = 5000;
	assert_false(ins_bucket_ok(&b, 1000, 4000));
}

static void test_prefix_grouping(void **state)
{
	struct mw_addr m = { .family = 6 };
	struct mw_addr x = v4(10, 1, 2, 3), y = v4(10, 1, 2, 200), z = v4(10, 1, 3, 3);
	struct ins_rkey a, b;

	(void)state;
	/* v4: same /24 -> same prefix key, different source keys */
	ins_rkey_make(&a, 7, &x, true);
	ins_rkey_make(&b, 7, &y, true);
	assert_memory_equal(&a, &b, sizeof(a));
	ins_rkey_make(&b, 7, &z, true);
	assert_memory_not_equal(&a, &b, sizeof(a));
	ins_rkey_make(&a, 7, &x, false);
	ins_rkey_make(&b, 7, &y, false);
	assert_memory_not_equal(&a, &b, sizeof(a));
	/* the port never matters */
	y = x;
	y.port = 9;
	ins_rkey_make(&b, 7, &y, false);
	assert_memory_equal(&a, &b, sizeof(a));
	/* another listener is another key */
	ins_rkey_make(&b, 8, &x, false);
	assert_memory_not_equal(&a, &b, sizeof(a));
	/* ::ffff:10.1.2.3 is 10.1.2.3 */
	m.addr[10] = m.addr[11] = 0xff;
	m.addr[12] = 10;
	m.addr[13] = 1;
	m.addr[14] = 2;
	m.addr[15] = 3;
	ins_rkey_make(&b, 7, &m, false);
	assert_memory_equal(&a, &b, sizeof(a));
	assert_int_equal(b.family, 4);
	/* v6: same /64 -> same prefix key; another /64 -> another */
	x = v6(1, 2, 1);
	y = v6(1, 2, 99);
	z = v6(1, 3, 1);
	ins_rkey_make(&a, 7, &x, true);
	ins_rkey_make(&b, 7, &y, true);
	assert_memory_equal(&a, &b, sizeof(a));
	ins_rkey_make(&b, 7, &z, true);
	assert_memory_not_equal(&a, &b, sizeof(a));
	ins_rkey_make(&a, 7, &x, false);
	ins_rkey_make(&b, 7, &y, false);
	assert_memory_not_equal(&a, &b, sizeof(a));
}

static void test_table_find_and_full(void **state)
{
	struct ins_rtab t;
	struct ins_rent *e[INS_RTAB_PROBE + 1], *again;
	struct ins_rkey k;
	struct mw_addr a;
	unsigned i, made = 0, failed = 0;

	(void)state;
	/* 40 entries asked for: 64 slots (power of two) */
	assert_int_equal(ins_rtab_init(&t, 40, 42), 0);
	assert_int_equal(t.mask, 63);
	a = v4(192, 0, 2, 1);
	ins_rkey_make(&k, 1, &a, false);
	e[0] = ins_rtab_get(&t, &k, 1);
	assert_non_null(e[0]);
	e[0]->conns = 1;
	assert_ptr_equal(ins_rtab_get(&t, &k, 2), e[0]);
	assert_int_equal(e[0]->conns, 1);
	/* fill the table with live entries (one connection each): lookups then fail */
	for (i = 0; i < 1000; i++) {
		struct ins_rent *x;

		a = v4(198, 51, (uint8_t)(i >> 8), (uint8_t)i);
		ins_rkey_make(&k, 1, &a, false);
		x = ins_rtab_get(&t, &k, 3);
		if (x) {
			x->conns = 1;
			made++;
		} else {
			failed++;
		}
	}
	assert_int_equal(made, 63); /* every slot but e[0]'s */
	assert_int_equal(failed, 1000 - 63);
	/* the first entry is still found */
	a = v4(192, 0, 2, 1);
	ins_rkey_make(&k, 1, &a, false);
	assert_ptr_equal(ins_rtab_get(&t, &k, 4), e[0]);
	/* a stale entry (no connection, full bucket) is reused: the table is not stuck */
	e[0]->conns = 0;
	a = v4(203, 0, 113, 9);
	ins_rkey_make(&k, 1, &a, false);
	again = ins_rtab_get(&t, &k, 5);
	assert_ptr_equal(again, e[0]);
	assert_int_equal(again->conns, 0);
	assert_memory_equal(&again->key, &k, sizeof(k));
	/* one with a partly spent bucket is not stale until it refilled */
	again->rate = 2;
	again->b.milli = 1000;
	again->b.at_ms = 5;
	a = v4(203, 0, 113, 10);
	ins_rkey_make(&k, 1, &a, false);
	assert_null(ins_rtab_get(&t, &k, 6));
	assert_ptr_equal(ins_rtab_get(&t, &k, 600), again);
	ins_rtab_fini(&t);
	assert_null(t.e);
}

static void test_out_window(void **state)
{
	struct ins_rates_out o;

	(void)state;
	/* 4096 B/s wanted; the client takes 1 KiB/s: too slow once a whole window passed */
	ins_rates_out_start(&o, 10000, 500);
	assert_int_equal(o.rate, INS_RATE_UNKNOWN);
	assert_false(ins_rates_out_too_slow(&o, 4096, 10500, 1000)); /* under a second: unknown */
	assert_int_equal(o.rate, INS_RATE_UNKNOWN);
	assert_false(ins_rates_out_too_slow(&o, 4096, 12000, 2548));
	assert_int_equal(o.rate, 1024);
	assert_true(ins_rates_out_too_slow(&o, 4096, 10000 + INS_RATES_WINDOW_MS, 500 + 5 * 1024));
	/* a fast client: the window rolls over */
	ins_rates_out_start(&o, 10000, 0);
	assert_false(ins_rates_out_too_slow(&o, 4096, 15000, 5 * 100000));
	assert_int_equal(o.rate, 100000);
	assert_int_equal(o.win_start_ms, 15000);
	assert_int_equal(o.win_base, 500000);
	/* ... and the next window is judged on its own bytes */
	assert_true(ins_rates_out_too_slow(&o, 4096, 20000, 500000 + 100));
	/* min 0: measured, never too slow */
	ins_rates_out_start(&o, 1, 0);
	assert_false(ins_rates_out_too_slow(&o, 0, 100000, 0));
	assert_int_equal(o.rate, 0);
}

static void test_eviction_choice(void **state)
{
	struct ins_rates_out slow = { .rate = 100 }, fast = { .rate = 100000 },
			     unknown = { .rate = INS_RATE_UNKNOWN };

	(void)state;
	assert_true(ins_rates_slower(&slow, &fast));
	assert_false(ins_rates_slower(&fast, &slow));
	assert_true(ins_rates_slower(&fast, &unknown));
	assert_false(ins_rates_slower(&unknown, &slow)); /* unmeasured: never cut first */
	assert_false(ins_rates_slower(&slow, &slow));
}

static void test_out_stall(void **state)
{
	struct ins_rates_out a, b, never = { 0 };

	(void)state;
	/* still since the start: stalled once INS_RATES_STALL_MS passed without an ack */
	ins_rates_out_start(&a, 10000, 700);
	ins_rates_out_progress(&a, 10100, 700);
	assert_false(ins_rates_out_stalled(&a, 10000 + INS_RATES_STALL_MS - 1));
	assert_true(ins_rates_out_stalled(&a, 10000 + INS_RATES_STALL_MS));
	/* any acknowledged byte restarts the clock (a reader, however slow) */
	ins_rates_out_progress(&a, 10250, 701);
	assert_int_equal(a.still_ms, 10250);
	assert_false(ins_rates_out_stalled(&a, 10300));
	assert_true(ins_rates_out_stalled(&a, 10250 + INS_RATES_STALL_MS));
	/* the same count again is no progress */
	ins_rates_out_progress(&a, 10500, 701);
	assert_int_equal(a.still_ms, 10250);
	/* the one still for longer goes first; equal: neither */
	ins_rates_out_start(&b, 10400, 0);
	assert_true(ins_rates_stalled_longer(&a, &b));
	assert_false(ins_rates_stalled_longer(&b, &a));
	assert_false(ins_rates_stalled_longer(&a, &a));
	/* a 50 KiB/s reader sampled every 250 ms is never stalled */
	ins_rates_out_start(&b, 20000, 0);
	for (uint64_t t = 20250; t <= 30000; t += 250) {
		ins_rates_out_progress(&b, t, (t - 20000) * 50);
		assert_false(ins_rates_out_stalled(&b, t));
	}
	/* not measuring: never stalled */
	assert_false(ins_rates_out_stalled(&never, 100000));
}

static void test_in_rate(void **state)
{
	struct ins_rates_in st = { 0 };

	(void)state;
	/* 500 B/s wanted over 5 s windows: the first call starts the window */
	assert_false(ins_rates_in_too_slow(&st, 500, 1000, 10));
	assert_false(ins_rates_in_too_slow(&st, 500, 5999, 10)); /* not a whole window yet */
	/* 2,600 bytes in 5 s: enough; the window rolls */
	assert_false(ins_rates_in_too_slow(&st, 500, 6000, 2610));
	assert_int_equal(st.win_base, 2610);
	/* then 2,000 in 5 s: under 2,500 */
	assert_true(ins_rates_in_too_slow(&st, 500, 11000, 4610));
	/* min 0: never */
	memset(&st, 0, sizeof(st));
	assert_false(ins_rates_in_too_slow(&st, 0, 1, 0));
	assert_false(ins_rates_in_too_slow(&st, 0, 100000, 0));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_bucket_refill),
		cmocka_unit_test(test_prefix_grouping),
		cmocka_unit_test(test_table_find_and_full),
		cmocka_unit_test(test_out_window),
		cmocka_unit_test(test_eviction_choice),
		cmocka_unit_test(test_out_stall),
		cmocka_unit_test(test_in_rate),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
