/* SPDX-License-Identifier: MIT */
/*
 * test_balancer_srclimit.c - balancer/srclimit.c, the front end's connections per client
 * address: counts, the limit, IPv4 and IPv6 keys apart, and a table that grows and
 * shrinks through thousands of sources with every count right (removal shifts clusters
 * back, checked against a plain array).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "balancer/srclimit.h"

static void key4(const char *ip, uint8_t *key)
{
	struct sockaddr_storage ss = { .ss_family = AF_INET };

	assert_int_equal(inet_pton(AF_INET, ip, &((struct sockaddr_in *)&ss)->sin_addr), 1);
	bal_srclimit_key(&ss, key);
}

static void key6(const char *ip, uint8_t *key)
{
	struct sockaddr_storage ss = { .ss_family = AF_INET6 };

	assert_int_equal(inet_pton(AF_INET6, ip, &((struct sockaddr_in6 *)&ss)->sin6_addr), 1);
	bal_srclimit_key(&ss, key);
}

static void test_limit(void **state)
{
	uint8_t a[BAL_SRC_KEY], a6[BAL_SRC_KEY], b[BAL_SRC_KEY], m[BAL_SRC_KEY];
	struct bal_srclimit t;

	(void)state;
	assert_int_equal(bal_srclimit_init(&t), 0);
	key4("192.0.2.1", a);
	key6("::ffff:192.0.2.1", m);
	key6("2001:db8::1", a6);
	key4("192.0.2.2", b);
	assert_memory_equal(a, m, BAL_SRC_KEY); /* v4 and v4-mapped are one address */
	{
		uint8_t o[BAL_SRC_KEY], n[BAL_SRC_KEY];

		key6("2001:db8::2", o);	    /* the same /64: one source */
		key6("2001:db8:0:1::1", n); /* the next /64: another */
		assert_memory_equal(a6, o, BAL_SRC_KEY);
		assert_memory_not_equal(a6, n, BAL_SRC_KEY);
	}
	assert_int_equal(bal_srclimit_take(&t, a, 2), 0);
	assert_int_equal(bal_srclimit_take(&t, m, 2), 0);
	assert_int_equal(bal_srclimit_take(&t, a, 2), -EUSERS);
	assert_int_equal(bal_srclimit_take(&t, b, 2), 0);
	assert_int_equal(bal_srclimit_take(&t, a6, 2), 0);
	assert_int_equal(bal_srclimit_count(&t, a), 2);
	assert_int_equal(t.n, 3);
	bal_srclimit_put(&t, a);
	assert_int_equal(bal_srclimit_take(&t, a, 2), 0);
	assert_int_equal(bal_srclimit_take(&t, a, 0), 0); /* 0: counted, no limit */
	assert_int_equal(bal_srclimit_count(&t, a), 3);
	bal_srclimit_put(&t, a);
	bal_srclimit_put(&t, a);
	bal_srclimit_put(&t, a);
	bal_srclimit_put(&t, a); /* one more than taken: nothing to undo */
	assert_int_equal(bal_srclimit_count(&t, a), 0);
	assert_int_equal(t.n, 2);
	bal_srclimit_free(&t);
}

#define NSRC 5000

/* A fixed sequence (xorshift32): the same shuffle every run. */
static uint32_t next_rand(uint32_t *x)
{
	*x ^= *x << 13;
	*x ^= *x >> 17;
	*x ^= *x << 5;
	return *x;
}

/* Thousands of sources in and out in a shuffled order: every count as a plain array says. */
static void test_grow_and_shift(void **state)
{
	static uint8_t keys[NSRC][BAL_SRC_KEY];
	static unsigned want[NSRC];
	struct bal_srclimit t;
	unsigned i, k, round;
	uint32_t x = 7;

	(void)state;
	assert_int_equal(bal_srclimit_init(&t), 0);
	for (i = 0; i < NSRC; i++) {
		memset(keys[i], 0, BAL_SRC_KEY);
		keys[i][0] = 0x20;
		keys[i][1] = 0x01;
		memcpy(keys[i] + 12, &i, sizeof(i));
	}
	for (round = 0; round < 20 * NSRC; round++) {
		k = next_rand(&x) % NSRC;
		if (want[k] && next_rand(&x) % 2) {
			bal_srclimit_put(&t, keys[k]);
			want[k]--;
		} else {
			assert_int_equal(bal_srclimit_take(&t, keys[k], 0), 0);
			want[k]++;
		}
	}
	for (i = 0, k = 0; i < NSRC; i++) {
		assert_int_equal(bal_srclimit_count(&t, keys[i]), want[i]);
		k += want[i] > 0;
	}
	assert_int_equal(t.n, k);
	assert_true(t.cap >= 2 * t.n);
	for (i = 0; i < NSRC; i++)
		while (want[i]--)
			bal_srclimit_put(&t, keys[i]);
	assert_int_equal(t.n, 0);
	for (i = 0; i < t.cap; i++)
		assert_int_equal(t.e[i].n, 0);
	bal_srclimit_free(&t);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_limit),
		cmocka_unit_test(test_grow_and_shift),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
