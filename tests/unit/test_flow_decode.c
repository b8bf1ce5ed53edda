/* SPDX-License-Identifier: MIT */
/* test_flow_decode.c - flowd/decode.c: what it reads, and what it refuses, byte by byte */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <cmocka.h>

#include "flowd/decode.h"
#include "tests/unit/flow_frames.h"

static const uint8_t mapped_prefix[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff };

static void test_ipv4_tcp(void **state)
{
	uint8_t f[128], want[4];
	size_t n = ff_v4(f, "10.0.0.1", "192.0.2.7", 6, 40000, 80, FL_TCP_SYN, 0);
	struct fl_pkt p;

	(void)state;
	f[38] = 0x12; /* sequence number 0x12345678 */
	f[39] = 0x34;
	f[40] = 0x56;
	f[41] = 0x78;
	assert_int_equal(fl_decode_ether(&p, f, n), FL_DECODE_OK);
	assert_int_equal(p.family, 4);
	assert_int_equal(p.proto, 6);
	assert_true(p.has_ports);
	assert_int_equal(p.sport, 40000);
	assert_int_equal(p.dport, 80);
	assert_int_equal(p.tcp_flags, FL_TCP_SYN);
	assert_int_equal(p.tcp_seq, 0x12345678);
	assert_int_equal(p.ip_len, 40);
	assert_memory_equal(p.src, mapped_prefix, 12);
	inet_pton(AF_INET, "192.0.2.7", want);
	assert_memory_equal(p.dst + 12, want, 4);
}

static void test_vlan_tags(void **state)
{
	uint8_t f[128], tagged[136];
	size_t n = ff_v4(f, "10.0.0.1", "10.0.0.2", 17, 5353, 53, 0, 4);
	struct fl_pkt p;

	(void)state;
	/* 802.1ad outer, 802.1Q inner, then IPv4 */
	memcpy(tagged, f, 12);
	tagged[12] = 0x88;
	tagged[13] = 0xa8;
	tagged[16] = 0x81;
	tagged[17] = 0x00;
	memcpy(tagged + 20, f + 12, n - 12);
	assert_int_equal(fl_decode_ether(&p, tagged, n + 8), FL_DECODE_OK);
	assert_int_equal(p.proto, 17);
	assert_int_equal(p.dport, 53);
}

static void test_ipv6_ext_udp(void **state)
{
	uint8_t f[128], want[16];
	size_t n = ff_v6_udp(f, "2001:db8::1", "2001:db8::2", 1234, 443);
	struct fl_pkt p;

	(void)state;
	assert_int_equal(fl_decode_ether(&p, f, n), FL_DECODE_OK);
	assert_int_equal(p.family, 6);
	assert_int_equal(p.proto, 17);
	assert_true(p.has_ports);
	assert_int_equal(p.dport, 443);
	inet_pton(AF_INET6, "2001:db8::2", want);
	assert_memory_equal(p.dst, want, 16);
}

static void test_later_fragment_has_no_ports(void **state)
{
	uint8_t f[128];
	size_t n = ff_v4(f, "10.0.0.1", "10.0.0.2", 6, 1, 2, 0, 0);
	struct fl_pkt p;

	(void)state;
	f[20] = 0x00;
	f[21] = 0x10; /* fragment offset 16 * 8 */
	assert_int_equal(fl_decode_ether(&p, f, n), FL_DECODE_OK);
	assert_false(p.has_ports);
	assert_int_equal(p.sport, 0);
}

static void test_not_ip(void **state)
{
	uint8_t f[64] = { 0 };
	struct fl_pkt p;

	(void)state;
	f[12] = 0x08;
	f[13] = 0x06; /* ARP */
	assert_int_equal(fl_decode_ether(&p, f, sizeof(f)), FL_DECODE_NOT_IP);
}

static void test_bad_headers(void **state)
{
	uint8_t f[128];
	size_t n = ff_v4(f, "10.0.0.1", "10.0.0.2", 6, 1, 2, 0, 0);
	struct fl_pkt p;

	(void)state;
	f[14] = 0x44; /* IHL 4 words < 20 bytes */
	assert_int_equal(fl_decode_ether(&p, f, n), FL_DECODE_MALFORMED);
	f[14] = 0x4f; /* IHL 60 bytes > captured */
	assert_int_equal(fl_decode_ether(&p, f, n), FL_DECODE_MALFORMED);
	f[14] = 0x45;
	f[16] = 0;
	f[17] = 10; /* total length below the header */
	assert_int_equal(fl_decode_ether(&p, f, n), FL_DECODE_MALFORMED);
}

/* Every truncation of a valid frame decodes without reading past it (ASan checks). */
static void test_every_truncation(void **state)
{
	uint8_t f[128];
	size_t n = ff_v4(f, "10.0.0.1", "10.0.0.2", 6, 1000, 22, FL_TCP_ACK, 0), len;
	uint8_t g[128];
	size_t m = ff_v6_udp(g, "::1", "::2", 7, 9);
	struct fl_pkt p;

	(void)state;
	for (len = 0; len < n; len++) {
		uint8_t *copy = malloc(len ? len : 1);

		memcpy(copy, f, len);
		fl_decode_ether(&p, copy, len);
		/* Ports only when the whole TCP header was captured. */
		assert_true(!p.has_ports || len >= n);
		free(copy);
	}
	for (len = 0; len < m; len++) {
		uint8_t *copy = malloc(len ? len : 1);

		memcpy(copy, g, len);
		fl_decode_ether(&p, copy, len);
		assert_true(!p.has_ports || len >= m);
		free(copy);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_ipv4_tcp),
		cmocka_unit_test(test_vlan_tags),
		cmocka_unit_test(test_ipv6_ext_udp),
		cmocka_unit_test(test_later_fragment_has_no_ports),
		cmocka_unit_test(test_not_ip),
		cmocka_unit_test(test_bad_headers),
		cmocka_unit_test(test_every_truncation),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
