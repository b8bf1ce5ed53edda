/* SPDX-License-Identifier: MIT */
/* test_cidr.c - common/cidr.c: parsing, prefix edges, IPv4-mapped clients and prefixes */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "common/cidr.h"

static bool in(const char *net, const char *ip)
{
	struct mw_cidr c;
	struct mw_addr a;

	assert_int_equal(mw_cidr_parse(&c, net), 0);
	assert_int_equal(mw_addr_parse(&a, ip), 0);
	return mw_cidr_match(&c, &a);
}

static void test_parse_rejects(void **state)
{
	static const char *bad[] = { "",
				     "10.0.0.0",
				     "10.0.0.0/",
				     "10.0.0.0/33",
				     "10.0.0.0/-1",
				     "10.0.0.0/+8",
				     "10.0.0.0/8x",
				     "::/129",
				     "host/8",
				     "/8",
				     "1.2.3.4/8/8" };
	struct mw_cidr c;

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_int_equal(mw_cidr_parse(&c, bad[i]), -EINVAL);
}

static void test_match(void **state)
{
	(void)state;
	assert_true(in("127.0.0.0/8", "127.1.2.3"));
	assert_false(in("127.0.0.0/8", "128.0.0.1"));
	assert_true(in("10.1.2.3/8", "10.200.0.1")); /* host bits ignored */
	assert_true(in("0.0.0.0/0", "192.0.2.1"));
	assert_true(in("192.0.2.1/32", "192.0.2.1"));
	assert_false(in("192.0.2.1/32", "192.0.2.2"));
	assert_true(in("10.0.0.0/9", "10.127.255.255"));
	assert_false(in("10.0.0.0/9", "10.128.0.0"));
	assert_true(in("fd00::/64", "[fd00::1]:0"));
	assert_false(in("fd00::/64", "[fd00:0:0:1::1]:0"));
	assert_true(in("::1/128", "[::1]:80"));
	assert_false(in("127.0.0.0/8", "[::1]:80"));
	assert_true(in("127.0.0.0/8", "[::ffff:127.0.0.1]:80")); /* dual-stack IPv4 client */
	assert_false(in("::1/128", "127.0.0.1"));
}

/* @ip with prefix @len through mw_cidr_unmap(): the text and length it becomes. */
static void unmap(const char *ip, unsigned len, bool folded, const char *want, unsigned want_len)
{
	struct mw_addr a, w;

	assert_int_equal(mw_addr_parse(&a, ip), 0);
	assert_int_equal(mw_addr_parse(&w, want), 0);
	assert_int_equal(mw_cidr_unmap(&a, &len), folded);
	assert_int_equal(a.family, w.family);
	assert_memory_equal(a.addr, w.addr, 16);
	assert_int_equal(len, want_len);
}

static void test_unmap(void **state)
{
	(void)state;
	unmap("[::ffff:192.0.2.7]:0", 0, true, "192.0.2.7", 0);
	unmap("[::ffff:192.0.2.7]:0", 128, true, "192.0.2.7", 32);
	unmap("[::ffff:192.0.2.0]:0", 120, true, "192.0.2.0", 24);
	unmap("[::ffff:192.0.0.0]:0", 97, true, "192.0.0.0", 1);
	/* Not inside ::ffff:0:0/96: as it was. */
	unmap("[::ffff:0.0.0.0]:0", 96, false, "[::ffff:0.0.0.0]:0", 96);
	unmap("[::ffff:192.0.2.7]:0", 64, false, "[::ffff:192.0.2.7]:0", 64);
	unmap("[2001:db8::ffff:c000:207]:0", 0, false, "[2001:db8::ffff:c000:207]:0", 0);
	unmap("[::192.0.2.7]:0", 0, false, "[::192.0.2.7]:0", 0);
	unmap("192.0.2.7", 24, false, "192.0.2.7", 24);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse_rejects),
		cmocka_unit_test(test_match),
		cmocka_unit_test(test_unmap),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
