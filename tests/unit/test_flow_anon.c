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

#include "common/siphash.h"
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
	assert_true(mw_siphash24(k0, k1, msg, 15) == 0xa129ca6149be45e5ULL);
	assert_true(mw_siphash24(k0, k1, msg, 0) == 0x726fdb47dd0e0e31ULL);
	assert_true(mw_siphash24(k0, k1, msg, 8) == 0x93f5f5799a932462ULL);
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
	/* Not IP (ARP names addresses): cut to the Ethernet header, strip or not. */
	memset(f, 0, 60);
	f[12] = 0x08;
	f[13] = 0x06;
	assert_int_equal(fl_anon_frame(&a, f, 60, 0), 14);
	assert_int_equal(fl_anon_frame(&a, f, 60, 1), 14);
	/* UDP-Lite (136) and DCCP (33) sum the pseudo-header too: adjusted, no oracle left. */
	for (int p = 0; p < 2; p++) {
		n = ff_v4(f, "10.1.2.3", "198.51.100.7", p ? 33 : 136, 5353, 53, 0, 30);
		set_l4_sum_v4(f + 14, 6);
		assert_int_equal(fl_anon_frame(&a, f, n, 0), n);
		assert_int_equal(l4_sum_v4(f + 14), 0xffff);
	}
	/* A TCP data offset under 5: strip still cuts after the fixed header, never later. */
	n = ff_v4(f, "10.1.2.3", "198.51.100.7", 6, 40000, 80, 0x18, 100);
	f[46] = 0x20;
	assert_int_equal(fl_anon_frame(&a, f, n, 1), 14 + 20 + 20);
	/* A host's MAC becomes a keyed, locally administered pseudonym (the same each
	 * time); a group address (broadcast) names no host and stays. */
	n = ff_v4(f, "10.1.2.3", "198.51.100.7", 6, 40000, 80, 0x18, 0);
	f[0] = 0x00; /* 00:16:3e:11:22:33, a global unicast address */
	f[1] = 0x16;
	f[2] = 0x3e;
	f[3] = 0x11;
	f[4] = 0x22;
	f[5] = 0x33;
	memset(f + 6, 0xff, 6);
	memcpy(orig, f, n);
	fl_anon_frame(&a, f, n, 0);
	assert_memory_not_equal(f, orig, 6);
	assert_int_equal(f[0] & 3, 2);
	assert_memory_equal(f + 6, orig + 6, 6);
	memcpy(want, f, 4);
	memcpy(f, orig, n);
	fl_anon_frame(&a, f, n, 0);
	assert_memory_equal(f, want, 4);
	/* Shorter than an Ethernet header: nothing of it leaves. */
	assert_int_equal(fl_anon_frame(&a, orig, 10, 0), 0);
}

/* Does @hay hold the 4 or 16 bytes of @addr anywhere? */
static int holds(const uint8_t *hay, size_t n, const uint8_t *addr, size_t alen)
{
	return memmem(hay, n, addr, alen) != NULL;
}

/*
 * Other places a frame names an address: IPv4 options (a source route), IPv6
 * routing headers, the ICMPv6 checksum, frames inside MPLS and behind three VLAN
 * tags.  None of the original addresses may be found in the output.
 */
static void test_frame_no_leaks(void **state)
{
	uint8_t f[256], hop[4], src[4], src6[16], dst6[16], seg[16];
	struct fl_anon a;
	uint32_t pseudo;
	uint16_t ck;
	size_t n;

	(void)state;
	fl_anon_init(&a, "leaks", 5);
	inet_pton(AF_INET, "203.0.113.9", hop);
	inet_pton(AF_INET, "10.1.2.3", src);
	/* IPv4 with a loose source route naming 203.0.113.9 (header 28 bytes) + TCP. */
	memset(f, 0, sizeof(f));
	f[12] = 0x08;
	f[14] = 0x47;
	f[17] = 48; /* total length */
	f[22] = 64;
	f[23] = 6;
	memcpy(f + 26, src, 4);
	inet_pton(AF_INET, "198.51.100.7", f + 30);
	f[34] = 0x83; /* LSRR, length 7, pointer 4 */
	f[35] = 7;
	f[36] = 4;
	memcpy(f + 37, hop, 4);
	f[42 + 12] = 0x50; /* TCP, data offset 5 */
	ck = (uint16_t)~sum16(f + 14, 28, 0);
	f[24] = (uint8_t)(ck >> 8);
	f[25] = (uint8_t)ck;
	assert_int_equal(fl_anon_frame(&a, f, 14 + 48, 0), 14 + 48);
	assert_false(holds(f, 14 + 48, hop, 4));
	assert_false(holds(f, 14 + 48, src, 4));
	assert_int_equal(sum16(f + 14, 28, 0), 0xffff); /* the header checksum still right */
	/* Captured with the route cut (a snap length of 40): what is there is blanked too. */
	memcpy(f + 34, ((uint8_t[]){ 0x83, 7, 4 }), 3);
	memcpy(f + 37, hop, 3);
	assert_int_equal(fl_anon_frame(&a, f, 40, 0), 40);
	assert_memory_equal(f + 34, ((uint8_t[]){ 1, 1, 1, 1, 1, 1 }), 6);
	/* The same inside MPLS (a label, then IPv4): cut to the Ethernet header. */
	memmove(f + 18, f + 14, 48);
	f[12] = 0x88;
	f[13] = 0x47;
	memcpy(f + 18 + 12, src, 4);
	assert_int_equal(fl_anon_frame(&a, f, 18 + 48, 0), 14);
	/* Behind three VLAN tags (0x9100, 0x88a8, 0x8100): anonymised, not passed through. */
	n = ff_v4(f + 12, "10.1.2.3", "198.51.100.7", 6, 1, 2, 0x10, 0);
	memset(f, 0, 24);
	f[12] = 0x91;
	f[16] = 0x88;
	f[17] = 0xa8;
	f[20] = 0x81;
	f[24] = 0x08; /* the IPv4 frame's own type field follows the third tag */
	f[25] = 0x00;
	assert_int_equal(fl_anon_frame(&a, f, n + 12, 0), n + 12);
	assert_false(holds(f, n + 12, src, 4));
	/* IPv6 + routing header (segment list naming 2001:db8:99::9) + ICMPv6 echo. */
	memset(f, 0, sizeof(f));
	f[12] = 0x86;
	f[13] = 0xdd;
	f[14] = 0x60;
	f[19] = 24 + 8;
	f[20] = 43;
	f[21] = 64;
	inet_pton(AF_INET6, "2001:db8::1", src6);
	inet_pton(AF_INET6, "2001:db8:1::2", dst6);
	inet_pton(AF_INET6, "2001:db8:99::9", seg);
	memcpy(f + 22, src6, 16);
	memcpy(f + 38, dst6, 16);
	f[54] = 58; /* next: ICMPv6; length 2: 24 bytes; type 4 (segment routing) */
	f[55] = 2;
	f[56] = 4;
	memcpy(f + 62, seg, 16);
	f[78] = 128; /* echo request */
	pseudo = sum16(f + 22, 32, 0) + 58 + 8;
	ck = (uint16_t)~sum16(f + 78, 8, pseudo);
	f[80] = (uint8_t)(ck >> 8);
	f[81] = (uint8_t)ck;
	n = 14 + 40 + 24 + 8;
	assert_int_equal(fl_anon_frame(&a, f, n, 0), n);
	assert_false(holds(f, n, seg, 16));
	assert_false(holds(f, n, src6, 16));
	assert_false(holds(f, n, dst6, 16));
	pseudo = sum16(f + 22, 32, 0) + 58 + 8;
	assert_int_equal(sum16(f + 78, 8, pseudo), 0xffff); /* ICMPv6's checksum follows */
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
		cmocka_unit_test(test_frame_v6),	  cmocka_unit_test(test_frame_no_leaks),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
