/* SPDX-License-Identifier: MIT */
/* test_ins_logic.c - mw-ins pure parts: socket table, option whitelist, blocked addresses */
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <cmocka.h>

#include "common/sockid.h"
#include "ins/ins.h"

static void test_table_grows_without_cap(void **state)
{
	enum { N = 5000 };
	struct ins_table t;
	struct ins_sock *s = calloc(N, sizeof(*s)), dup = { 0 };
	int i;

	assert_non_null(s);
	assert_int_equal(ins_table_init(&t, 1), 0);
	assert_int_equal(t.nbuckets, 16);
	for (i = 0; i < N; i++) {
		/* Half PVM-assigned, half INS-assigned ids, as on a live channel. */
		s[i].id = mw_sockid_make(7, 1, (i & 1 ? MW_SOCKID_INS_ASSIGNED : 0) | (uint32_t)i);
		assert_int_equal(ins_table_insert(&t, &s[i]), 0);
	}
	assert_int_equal(t.count, N);
	assert_true(t.nbuckets >= N);
	dup.id = s[17].id;
	assert_int_equal(ins_table_insert(&t, &dup), -EEXIST);
	for (i = 0; i < N; i++)
		assert_ptr_equal(ins_table_find(&t, s[i].id), &s[i]);
	assert_null(ins_table_find(&t, mw_sockid_make(7, 1, 999999)));
	/* Remove every other one; the rest stay findable. */
	for (i = 0; i < N; i += 2)
		assert_ptr_equal(ins_table_remove(&t, s[i].id), &s[i]);
	assert_null(ins_table_remove(&t, s[0].id));
	assert_int_equal(t.count, N / 2);
	for (i = 0; i < N; i++)
		assert_ptr_equal(ins_table_find(&t, s[i].id), i & 1 ? &s[i] : NULL);
	ins_table_fini(&t);
	assert_null(ins_table_find(&t, s[1].id));
	free(s);
}

static void test_option_whitelist(void **state)
{
	assert_int_equal(ins_opt_allowed(IPPROTO_TCP, TCP_NODELAY, true), 0);
	assert_int_equal(ins_opt_allowed(IPPROTO_TCP, TCP_CONGESTION, false), 0);
	assert_int_equal(ins_opt_allowed(SOL_SOCKET, SO_LINGER, true), 0);
	assert_int_equal(ins_opt_allowed(IPPROTO_IPV6, IPV6_V6ONLY, true), 0);
	/* Read-only and unlisted options. */
	assert_int_equal(ins_opt_allowed(SOL_SOCKET, SO_ERROR, false), 0);
	assert_int_equal(ins_opt_allowed(SOL_SOCKET, SO_ERROR, true), -ENOPROTOOPT);
	assert_int_equal(ins_opt_allowed(SOL_SOCKET, SO_BINDTODEVICE, true), -ENOPROTOOPT);
	assert_int_equal(ins_opt_allowed(SOL_SOCKET, SO_MARK, true), -ENOPROTOOPT);
	assert_int_equal(ins_opt_allowed(IPPROTO_IP, IP_TRANSPARENT, true), -ENOPROTOOPT);
	/* The same number at another level is another option. */
	assert_int_equal(ins_opt_allowed(IPPROTO_IP, TCP_CONGESTION, true), -ENOPROTOOPT);
	assert_int_equal(ins_opt_allowed(12345, 1, false), -ENOPROTOOPT);
}


static void test_blockset(void **state)
{
	struct ins_blockset b = { 0 };
	struct mw_addr mapped = { .family = 6, .port = 9,
				  .addr = { [10] = 0xff, [11] = 0xff, 10, 0, 0, 5 } };
	struct mw_addr six = { .family = 6, .addr = { 0x20, 0x01, 0x0d, 0xb8, [15] = 1 } };
	int i;

	assert_false(ins_blockset_has(&b, &mapped));
	assert_int_equal(
		ins_blockset_add(&b, &(struct mw_addr){ .family = 4, .addr = { 10, 0, 0, 5 } }, 0),
		0);
	/* Any port; the v4-mapped form of the same address too. */
	assert_true(ins_blockset_has(&b, &(struct mw_addr){ .family = 4, .port = 80, .addr = { 10, 0, 0, 5 } }));
	assert_true(ins_blockset_has(&b, &mapped));
	assert_false(ins_blockset_has(&b, &six));
	assert_int_equal(ins_blockset_add(&b, &mapped, 0), 0); /* already there */
	assert_int_equal(b.n, 1);
	for (i = 0; i < 100; i++)
		assert_int_equal(
			ins_blockset_add(&b,
					 &(struct mw_addr){ .family = 4,
							    .addr = { 192, 168, 0, (uint8_t)i } },
					 0),
			0);
	assert_int_equal(ins_blockset_add(&b, &six, 0), 0);
	assert_int_equal(b.n, 102);
	for (i = 0; i < 100; i++)
		assert_true(ins_blockset_has(&b, &(struct mw_addr){ .family = 4, .addr = { 192, 168, 0, (uint8_t)i } }));
	assert_true(ins_blockset_has(&b, &six));
	assert_int_equal(ins_blockset_del(&b, &mapped, 0), 0);
	assert_false(ins_blockset_has(&b, &mapped));
	assert_int_equal(ins_blockset_del(&b, &mapped, 0), -ENOENT);
	assert_true(ins_blockset_has(&b, &six));
	ins_blockset_fini(&b);
	assert_false(ins_blockset_has(&b, &six));
}

/* Prefixes: a /64 covers its addresses only; a /24 in v4 and v4-mapped form; exact lengths. */
static void test_blockset_prefix(void **state)
{
	struct ins_blockset b = { 0 };
	struct mw_addr in64 = { .family = 6,
				.addr = { 0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 7, 1, 2, 3, 4, 5, 6, 7,
					  8 } },
		       other = in64, v4 = { .family = 4, .addr = { 10, 9, 0, 77 } },
		       mapped = { .family = 6,
				  .addr = { [10] = 0xff, [11] = 0xff, 10, 9, 0, 200 } },
		       v4out = { .family = 4, .addr = { 10, 9, 1, 1 } };

	other.addr[7] = 8; /* the next /64 */
	assert_int_equal(ins_blockset_add(&b, &in64, 64), 0);
	assert_true(ins_blockset_has(&b, &in64));
	in64.addr[15] = 99; /* another address of the same /64 */
	assert_true(ins_blockset_has(&b, &in64));
	assert_false(ins_blockset_has(&b, &other));
	assert_int_equal(b.prefixes[1][64], 1);
	/* Deleting the address alone leaves the /64; the /64 as blocked lifts it. */
	assert_int_equal(ins_blockset_del(&b, &in64, 0), -ENOENT);
	assert_int_equal(ins_blockset_del(&b, &in64, 64), 0);
	assert_false(ins_blockset_has(&b, &in64));
	assert_int_equal(b.prefixes[1][64], 0);
	/* IPv4 /24, given as ::ffff:10.9.0.77/120 */
	mapped.addr[15] = 77;
	assert_int_equal(ins_blockset_add(&b, &mapped, 120), 0);
	assert_int_equal(b.prefixes[0][24], 1);
	assert_true(ins_blockset_has(&b, &v4));
	mapped.addr[15] = 200;
	assert_true(ins_blockset_has(&b, &mapped));
	assert_false(ins_blockset_has(&b, &v4out));
	assert_int_equal(ins_blockset_add(&b, &v4, 24), 0); /* the same prefix */
	assert_int_equal(b.n, 1);
	/* 32 is the address alone; longer than the address is refused. */
	assert_int_equal(ins_blockset_add(&b, &v4out, 32), 0);
	assert_true(ins_blockset_has(&b, &v4out));
	assert_int_equal(ins_blockset_del(&b, &v4out, 0), 0);
	assert_int_equal(ins_blockset_add(&b, &v4out, 33), -EINVAL);
	/* An IPv6 prefix holding ::ffff:0:0/96 (its IPv4 peers are looked up as IPv4). */
	assert_int_equal(ins_blockset_add(&b, &mapped, 96), -EINVAL);
	assert_int_equal(
		ins_blockset_add(&b, &(struct mw_addr){ .family = 6, .addr = { [15] = 1 } }, 64),
		-EINVAL);
	assert_int_equal(ins_blockset_del(&b, &v4, 24), 0);
	assert_false(ins_blockset_has(&b, &v4));
	assert_int_equal(b.n, 0);
	ins_blockset_fini(&b);
}

static void test_tune_set(void **state)
{
	struct ins_tune t = { 0 };
	struct mw_op_ins_set o = { .name = MW_INS_DELACK, .value = 0 };

	assert_int_equal(ins_tune_set(&t, &o), 0);
	assert_true(t.quickack);
	o.value = 1;
	assert_int_equal(ins_tune_set(&t, &o), 0);
	assert_false(t.quickack);
	o.value = 2;
	assert_int_equal(ins_tune_set(&t, &o), -EINVAL);
	o = (struct mw_op_ins_set){ .name = MW_INS_SNDBUF, .value = 1u << 20 };
	assert_int_equal(ins_tune_set(&t, &o), 0);
	assert_int_equal(t.sndbuf, 1 << 20);
	o.value = (1ull << 30) + 1;
	assert_int_equal(ins_tune_set(&t, &o), -EINVAL);
	o = (struct mw_op_ins_set){ .name = MW_INS_CONGESTION, .text = "not-an-algorithm" };
	assert_int_equal(ins_tune_set(&t, &o), -ENOENT);
	o = (struct mw_op_ins_set){ .name = MW_INS_CONGESTION, .text = "cubic" };
	assert_int_equal(ins_tune_set(&t, &o), 0);
	assert_string_equal(t.congestion, "cubic");
	o = (struct mw_op_ins_set){ .name = MW_INS_CONGESTION, .text = "" };
	assert_int_equal(ins_tune_set(&t, &o), 0);
	assert_string_equal(t.congestion, "");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_table_grows_without_cap),
		cmocka_unit_test(test_option_whitelist),
		cmocka_unit_test(test_blockset),
		cmocka_unit_test(test_blockset_prefix),
		cmocka_unit_test(test_tune_set),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
