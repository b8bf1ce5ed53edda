/* SPDX-License-Identifier: MIT */
/* test_flow_anon.c - anon.c: SipHash vectors, prefix preservation, bijection, frames and checksums
 */
#include <arpa/inet.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "flowd/anon.h"
#include "tests/unit/flow_frames.h"

static uint64_t rng = 88172645463325252ULL;

static uint64_t rnd(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return rng;
}

/* The first bits two addresses share. */
static unsigned common_prefix(const uint8_t *a, const uint8_t *b, unsigned bits)
{
	unsigned i;

	for (i = 0; i < bits; i++)
		if (((a[i / 8] ^ b[i / 8]) >> (7 - i % 8)) & 1)
			break;
	return i;
}

static void test_siphash_vectors(void **state)
{
	uint8_t msg[15];
	uint64_t k0 = 0x0706050403020100ULL, k1 = 0x0f0e0d0c0b0a0908ULL;
	unsigned i;

	(void)state;
	for (i = 0; i < sizeof(msg); i++)
		msg[i] = (uint8_t)i;
	/* SipHash paper, appendix A, and the reference's vectors[0] and vectors[8]. */
	assert_true(fl_siphash24(k0, k1, msg, 15) == 0xa129ca6149be45e5ULL);
	assert_true(fl_siphash24(k0, k1, msg, 0) == 0x726fdb47dd0e0e31ULL);
	assert_true(fl_siphash24(k0, k1, msg, 8) == 0x93f5f5799a932462ULL);
}

/* Pairs sharing exactly k bits (bit k differs) keep exactly k shared bits. */
static void check_prefixes(const struct fl_anon *a, unsigned bits, int pairs)
{
	int n;

	for (n = 0; n < pairs; n++) {
		uint8_t x[16], y[16], ax[16], ay[16];
		unsigned k = (unsigned)(rnd() % bits), i;

		for (i = 0; i < 16; i++)
			x[i] = (uint8_t)rnd();
		memcpy(y, x, 16);
		for (i = k; i < bits; i++) {
			uint8_t m = (uint8_t)(1u << (7 - i % 8));

			if (i == k || (rnd() & 1))
				y[i / 8] ^= m;
		}
		assert_int_equal(common_prefix(x, y, bits), k);
		memcpy(ax, x, 16);
		memcpy(ay, y, 16);
		fl_anon_addr(a, ax, bits);
		fl_anon_addr(a, ay, bits);
		assert_int_equal(common_prefix(ax, ay, bits), k);
	}
}

static void test_prefix_preserving(void **state)
{
	struct fl_anon a;

	(void)state;
	fl_anon_init(&a, "correct horse battery staple", 28);
	check_prefixes(&a, 32, 50000);
	check_prefixes(&a, 128, 5000);
}

/* Every address of a /16 maps to a distinct address of one (anonymised) /16. */
static void test_bijection_and_key(void **state)
{
	static uint8_t seen[65536 / 8];
	struct fl_anon a, b, c;
	uint8_t first[4] = { 0 }, x[4];
	unsigned i, moved = 0;

	(void)state;
	fl_anon_init(&a, "key one", 7);
	fl_anon_init(&b, "key one", 7);
	fl_anon_init(&c, "key two", 7);
	memset(seen, 0, sizeof(seen));
	for (i = 0; i < 65536; i++) {
		uint8_t y[4] = { 192, 168, (uint8_t)(i >> 8), (uint8_t)i }, z[4];

		memcpy(x, y, 4);
		fl_anon_addr(&a, x, 32);
		if (!i)
			memcpy(first, x, 4);
		assert_memory_equal(x, first, 2);
		assert_false(seen[(x[2] << 8 | x[3]) / 8] & (1u << (x[3] % 8)));
		seen[(x[2] << 8 | x[3]) / 8] |= (uint8_t)(1u << (x[3] % 8));
		memcpy(z, y, 4);
		fl_anon_addr(&b, z, 32); /* same key text, same mapping */
		assert_memory_equal(z, x, 4);
		memcpy(z, y, 4);
		fl_anon_addr(&c, z, 32);
		moved += memcmp(z, x, 4) != 0;
	}
	assert_true(moved > 65000); /* another key, another mapping */
}

static uint16_t sum16(const uint8_t *p, size_t len, uint32_t sum)
{
	size_t i;

	for (i = 0; i + 1 < len; i += 2)
		sum += (uint32_t)(p[i] << 8 | p[i + 1]);
	if (len & 1)
		sum += (uint32_t)p[len - 1] << 8;
	while (sum >> 16)
		sum = (sum & 0xffff) + (sum >> 16);
	return (uint16_t)sum;
}

/* TCP/UDP checksum over the IPv4 pseudo-header: 0xffff when the stored one is right. */
static uint16_t l4_sum_v4(const uint8_t *ip)
{
	size_t ihl = (size_t)(ip[0] & 0xf) * 4, len = (size_t)(ip[2] << 8 | ip[3]) - ihl;
	uint32_t pseudo = sum16(ip + 12, 8, 0) + ip[9] + (uint32_t)len;

	return sum16(ip + ihl, len, pseudo);
}

static void set_l4_sum_v4(uint8_t *ip, size_t ckoff)
{
	size_t ihl = (size_t)(ip[0] & 0xf) * 4;
	uint16_t s;

	ip[ihl + ckoff] = ip[ihl + ckoff + 1] = 0;
	s = (uint16_t)~l4_sum_v4(ip);
	ip[ihl + ckoff] = (uint8_t)(s >> 8);
	ip[ihl + ckoff + 1] = (uint8_t)s;
}

static void test_frame_v4(void **state)
{
	uint8_t f[256], orig[256], want[4];
	struct fl_anon a;
	size_t n = ff_v4(f, "10.1.2.3", "198.51.100.7", 6, 40000, 80, 0x18, 100), m;
	uint16_t s;

	(void)state;
	fl_anon_init(&a, "k", 1);
	memset(f + 54, 'x', 100); /* the payload */
	s = (uint16_t)~sum16(f + 14, 20, 0);
	f[24] = (uint8_t)(s >> 8);
	f[25] = (uint8_t)s;
	set_l4_sum_v4(f + 14, 16);
	memcpy(orig, f, n);
	m = fl_anon_frame(&a, f, n, 0);
	assert_int_equal(m, n);
	memcpy(want, orig + 26, 4);
	fl_anon_addr(&a, want, 32);
	assert_memory_equal(f + 26, want, 4);
	memcpy(want, orig + 30, 4);
	fl_anon_addr(&a, want, 32);
	assert_memory_equal(f + 30, want, 4);
	assert_int_equal(sum16(f + 14, 20, 0), 0xffff); /* IPv4 header checksum still right */
	assert_int_equal(l4_sum_v4(f + 14), 0xffff);	/* and TCP's */
	/* ports, flags and payload untouched (only the checksum at 50 moved) */
	assert_memory_equal(f + 34, orig + 34, 16);
	assert_memory_equal(f + 52, orig + 52, n - 52);
	/* Strip: the frame ends after the TCP header, the addresses as without strip. */
	memcpy(want, f + 26, 4);
	memcpy(f, orig, n);
	assert_int_equal(fl_anon_frame(&a, f, n, 1), 14 + 20 + 20);
	assert_memory_equal(f + 26, want, 4);
	/* UDP: checksum adjusted; a UDP checksum of 0 (none) stays 0. */
	n = ff_v4(f, "10.1.2.3", "198.51.100.7", 17, 5353, 53, 0, 30);
	set_l4_sum_v4(f + 14, 6);
	assert_int_equal(fl_anon_frame(&a, f, n, 1), 14 + 20 + 8);
	n = ff_v4(f, "10.1.2.3", "198.51.100.7", 17, 5353, 53, 0, 30);
	set_l4_sum_v4(f + 14, 6);
	fl_anon_frame(&a, f, n, 0);
	assert_int_equal(l4_sum_v4(f + 14), 0xffff);
	n = ff_v4(f, "10.1.2.3", "198.51.100.7", 17, 5353, 53, 0, 30);
	fl_anon_frame(&a, f, n, 0);
	assert_int_equal(f[40] | f[41], 0);
	/* Captured too short for both addresses: nothing of them leaves. */
	(void)ff_v4(f, "10.1.2.3", "198.51.100.7", 6, 1, 2, 0, 0);
	assert_int_equal(fl_anon_frame(&a, f, 14 + 18, 0), 14);
	/* Not IP: kept whole, or cut to the Ethernet header with strip. */
	memset(f, 0, 60);
	f[12] = 0x08;
	f[13] = 0x06;
	assert_int_equal(fl_anon_frame(&a, f, 60, 0), 60);
	assert_int_equal(fl_anon_frame(&a, f, 60, 1), 14);
}

static void test_frame_v6(void **state)
{
	uint8_t f[256], orig[256], want[16];
	struct fl_anon a;
	size_t n = ff_v6_udp(f, "2001:db8::1", "2001:db8:1::2", 5000, 53);
	uint32_t pseudo;
	uint16_t s;

	(void)state;
	fl_anon_init(&a, "k6", 2);
	/* a valid UDP checksum over the IPv6 pseudo-header */
	pseudo = sum16(f + 22, 32, 0) + 17 + 8;
	s = (uint16_t)~sum16(f + 62, 8, pseudo);
	f[68] = (uint8_t)(s >> 8);
	f[69] = (uint8_t)s;
	memcpy(orig, f, n);
	assert_int_equal(fl_anon_frame(&a, f, n, 1), n); /* strip: ext header + UDP header stay */
	memcpy(want, orig + 22, 16);
	fl_anon_addr(&a, want, 128);
	assert_memory_equal(f + 22, want, 16);
	memcpy(want, orig + 38, 16);
	fl_anon_addr(&a, want, 128);
	assert_memory_equal(f + 38, want, 16);
	pseudo = sum16(f + 22, 32, 0) + 17 + 8;
	assert_int_equal(sum16(f + 62, 8, pseudo), 0xffff);
	assert_int_equal(common_prefix(f + 22, f + 38, 128),
			 common_prefix(orig + 22, orig + 38, 128));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_siphash_vectors),	  cmocka_unit_test(test_prefix_preserving),
		cmocka_unit_test(test_bijection_and_key), cmocka_unit_test(test_frame_v4),
		cmocka_unit_test(test_frame_v6),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
