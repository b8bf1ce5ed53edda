/* SPDX-License-Identifier: MIT */
/* test_ins_shield.c - mw-ins shield options: what a listener accepts, refuses and reads back */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "ins/ins.h"

/* SETOPT @name = @v on @s, as the channel carries it (u64, len 8). */
static int set64(struct ins_sock *s, int name, uint64_t v)
{
	uint8_t val[8];

	memcpy(val, &v, sizeof(v));
	return ins_shield_opt(s, name, true, val, sizeof(val), NULL, NULL);
}

/* GETOPT @name on @s; fails the test unless it answers 8 bytes. */
static uint64_t get64(struct ins_sock *s, int name)
{
	uint8_t out[MW_SOCKOPT_MAX];
	uint32_t outlen = 0;
	uint64_t v;

	assert_int_equal(ins_shield_opt(s, name, false, NULL, MW_SOCKOPT_MAX, out, &outlen), 0);
	assert_int_equal(outlen, 8);
	memcpy(&v, out, sizeof(v));
	return v;
}

static void test_set_get_round_trip(void **state)
{
	struct ins_sock s = { .state = INS_ST_LISTENING };
	int name;

	(void)state;
	assert_int_equal(set64(&s, MW_SHIELD_FILTER, MW_ACCF_HTTP), 0);
	assert_int_equal(set64(&s, MW_SHIELD_DEADLINE_MS, 2000), 0);
	assert_int_equal(set64(&s, MW_SHIELD_HOLD_MAX, 100), 0);
	assert_int_equal(set64(&s, MW_SHIELD_MIN_IN_RATE, 500), 0);
	assert_int_equal(set64(&s, MW_SHIELD_MIN_OUT_RATE, 600), 0);
	assert_int_equal(set64(&s, MW_SHIELD_OUT_BUFFER, 1 << 20), 0);
	assert_int_equal(set64(&s, MW_SHIELD_SRC_MAX_CONNS, 7), 0);
	assert_int_equal(set64(&s, MW_SHIELD_SRC_RATE, 8), 0);
	assert_int_equal(set64(&s, MW_SHIELD_PFX_MAX_CONNS, 9), 0);
	assert_int_equal(set64(&s, MW_SHIELD_PFX_RATE, 10), 0);
	assert_int_equal(set64(&s, MW_SHIELD_STALL_MAX, 32), 0);
	/* The struct holds what was set, field by field. */
	assert_int_equal(s.shield.filter, MW_ACCF_HTTP);
	assert_int_equal(s.shield.deadline_ms, 2000);
	assert_int_equal(s.shield.hold_max, 100);
	assert_int_equal(s.shield.min_in_rate, 500);
	assert_int_equal(s.shield.min_out_rate, 600);
	assert_int_equal(s.shield.out_buffer, 1 << 20);
	assert_int_equal(s.shield.src_max_conns, 7);
	assert_int_equal(s.shield.src_rate, 8);
	assert_int_equal(s.shield.pfx_max_conns, 9);
	assert_int_equal(s.shield.pfx_rate, 10);
	assert_int_equal(s.shield.stall_max, 32);
	/* ...and GETOPT reads it back. */
	assert_int_equal(get64(&s, MW_SHIELD_FILTER), MW_ACCF_HTTP);
	assert_int_equal(get64(&s, MW_SHIELD_DEADLINE_MS), 2000);
	assert_int_equal(get64(&s, MW_SHIELD_OUT_BUFFER), 1 << 20);
	assert_int_equal(get64(&s, MW_SHIELD_PFX_RATE), 10);
	assert_int_equal(get64(&s, MW_SHIELD_STALL_MAX), 32);
	/* Zero turns each off again. */
	for (name = MW_SHIELD_FILTER; name <= MW_SHIELD_OPT_MAX; name++) {
		assert_int_equal(set64(&s, name, 0), 0);
		assert_int_equal(get64(&s, name), 0);
	}
}

static void test_out_of_range_refused_and_unchanged(void **state)
{
	struct ins_sock s = { .state = INS_ST_LISTENING };
	uint8_t val[8] = { MW_ACCF_DATA };

	(void)state;
	assert_int_equal(set64(&s, MW_SHIELD_FILTER, MW_ACCF_DATA), 0);
	assert_int_equal(set64(&s, MW_SHIELD_FILTER, MW_ACCF_MAX + 1), -EINVAL);
	assert_int_equal(set64(&s, MW_SHIELD_FILTER, 0x100 | MW_ACCF_HTTP), -EINVAL);
	assert_int_equal(s.shield.filter, MW_ACCF_DATA);
	assert_int_equal(set64(&s, MW_SHIELD_DEADLINE_MS, 3600001), -EINVAL);
	assert_int_equal(set64(&s, MW_SHIELD_HOLD_MAX, (1u << 20) + 1), -EINVAL);
	assert_int_equal(set64(&s, MW_SHIELD_MIN_IN_RATE, UINT64_MAX), -EINVAL);
	assert_int_equal(set64(&s, MW_SHIELD_OUT_BUFFER, (64u << 20) + 1), -EINVAL);
	assert_int_equal(set64(&s, MW_SHIELD_SRC_MAX_CONNS, 1ull << 32), -EINVAL);
	assert_int_equal(set64(&s, MW_SHIELD_STALL_MAX, (1u << 24) + 1), -EINVAL);
	assert_int_equal(s.shield.deadline_ms, 0);
	assert_int_equal(s.shield.src_max_conns, 0);
	/* The value is a u64: any other length is refused. */
	assert_int_equal(ins_shield_opt(&s, MW_SHIELD_FILTER, true, val, 4, NULL, NULL), -EINVAL);
	assert_int_equal(ins_shield_opt(&s, MW_SHIELD_FILTER, true, val, 9, NULL, NULL), -EINVAL);
	/* No such option. */
	assert_int_equal(set64(&s, 0, 1), -ENOPROTOOPT);
	assert_int_equal(set64(&s, MW_SHIELD_OPT_MAX + 1, 1), -ENOPROTOOPT);
}

static void test_getopt_needs_room(void **state)
{
	struct ins_sock s = { .state = INS_ST_LISTENING };
	uint8_t out[8];
	uint32_t outlen = 0;

	(void)state;
	assert_int_equal(ins_shield_opt(&s, MW_SHIELD_FILTER, false, NULL, 4, out, &outlen),
			 -EINVAL);
	assert_int_equal(ins_shield_opt(&s, 42, false, NULL, 8, out, &outlen), -ENOPROTOOPT);
}

static uint64_t delim_val(const char *bytes, unsigned n)
{
	uint64_t v = (uint64_t)n << 56;
	unsigned i;

	for (i = 0; i < n; i++)
		v |= (uint64_t)(uint8_t)bytes[i] << (8 * i);
	return v;
}

static void test_delim(void **state)
{
	struct ins_sock s = { .state = INS_ST_BOUND };

	(void)state;
	assert_int_equal(set64(&s, MW_SHIELD_DELIM, delim_val("\r\n", 2)), 0);
	assert_int_equal(s.shield.delim_len, 2);
	assert_memory_equal(s.shield.delim, "\r\n\0\0\0\0\0\0", 8);
	assert_int_equal(get64(&s, MW_SHIELD_DELIM), delim_val("\r\n", 2));
	assert_int_equal(set64(&s, MW_SHIELD_DELIM, delim_val("END\r\n\0\xff", 7)), 0);
	assert_int_equal(s.shield.delim_len, 7);
	assert_memory_equal(s.shield.delim, "END\r\n\0\xff", 7);
	/* A count over 7 (the top byte is the count), a stray byte past it, bytes with count 0. */
	assert_int_equal(set64(&s, MW_SHIELD_DELIM, 8ull << 56), -EINVAL);
	assert_int_equal(set64(&s, MW_SHIELD_DELIM, delim_val("ab", 2) | 0x630000), -EINVAL);
	assert_int_equal(set64(&s, MW_SHIELD_DELIM, 0x0a), -EINVAL);
	assert_int_equal(s.shield.delim_len, 7);
	/* 0 clears it. */
	assert_int_equal(set64(&s, MW_SHIELD_DELIM, 0), 0);
	assert_int_equal(s.shield.delim_len, 0);
	assert_memory_equal(s.shield.delim, "\0\0\0\0\0\0\0\0", 8);
}

static void test_only_listeners(void **state)
{
	static const uint8_t states[] = { INS_ST_CONNECTING, INS_ST_CONNECTED, INS_ST_FAILED,
					  INS_ST_CLOSING };
	struct ins_sock s = { 0 };
	size_t i;

	(void)state;
	/* A replica gets its options between OP_SOCKET and OP_BIND: NEW and BOUND take them. */
	s.state = INS_ST_NEW;
	assert_int_equal(set64(&s, MW_SHIELD_FILTER, MW_ACCF_LINE), 0);
	s.state = INS_ST_BOUND;
	assert_int_equal(set64(&s, MW_SHIELD_DEADLINE_MS, 5), 0);
	for (i = 0; i < sizeof(states); i++) {
		s.state = states[i];
		assert_int_equal(set64(&s, MW_SHIELD_FILTER, MW_ACCF_DATA), -EOPNOTSUPP);
	}
	assert_int_equal(s.shield.filter, MW_ACCF_LINE);
}

static void test_level_allowed(void **state)
{
	(void)state;
	assert_int_equal(ins_opt_allowed(MW_SOL_SHIELD, MW_SHIELD_FILTER, true), 0);
	assert_int_equal(ins_opt_allowed(MW_SOL_SHIELD, MW_SHIELD_DELIM, false), 0);
	assert_int_equal(ins_opt_allowed(MW_SOL_SHIELD, 0, true), -ENOPROTOOPT);
	assert_int_equal(ins_opt_allowed(MW_SOL_SHIELD, MW_SHIELD_OPT_MAX + 1, false),
			 -ENOPROTOOPT);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_set_get_round_trip),
		cmocka_unit_test(test_out_of_range_refused_and_unchanged),
		cmocka_unit_test(test_getopt_needs_room),
		cmocka_unit_test(test_delim),
		cmocka_unit_test(test_only_listeners),
		cmocka_unit_test(test_level_allowed),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
