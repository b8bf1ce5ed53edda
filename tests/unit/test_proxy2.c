/* SPDX-License-Identifier: MIT */
/* test_proxy2.c - common/proxy2.c against byte vectors written by hand from the haproxy spec */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "common/proxy2.h"

#define SIG 0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a

/* Laid out field by field as in the spec, so each vector reads against it. */
/* clang-format off */
/* PROXY TCP4 192.0.2.7:4242 -> 10.77.0.2:80 */
static const uint8_t v4[] = {
	SIG,
	0x21,                   /* version 2, PROXY */
	0x11,                   /* TCP over IPv4 */
	0x00, 0x0c,             /* 12 address bytes */
	192, 0, 2, 7,           /* src */
	10, 77, 0, 2,           /* dst */
	0x10, 0x92,             /* sport 4242 */
	0x00, 0x50,             /* dport 80 */
};

/* PROXY TCP6 [2001:db8::7]:4242 -> [2001:db8::1]:443 */
static const uint8_t v6[] = {
	SIG,
	0x21,                   /* version 2, PROXY */
	0x21,                   /* TCP over IPv6 */
	0x00, 0x24,             /* 36 address bytes */
	0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x07, /* src */
	0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x01, /* dst */
	0x10, 0x92,             /* sport 4242 */
	0x01, 0xbb,             /* dport 443 */
};

/* LOCAL, UNSPEC, no addresses */
static const uint8_t local[] = { SIG, 0x20, 0x00, 0x00, 0x00 };

/* PROXY TCP4 as v4 plus a NOOP TLV (type 0x04, 4 bytes) and an AUTHORITY TLV "ab" */
static const uint8_t v4tlv[] = {
	SIG,
	0x21, 0x11,
	0x00, 0x18,             /* 12 address bytes + 7 + 5 TLV bytes */
	192, 0, 2, 7,
	10, 77, 0, 2,
	0x10, 0x92,
	0x00, 0x50,
	0x04, 0x00, 0x04, 0xde, 0xad, 0xbe, 0xef, /* PP2_TYPE_NOOP */
	0x02, 0x00, 0x02, 'a', 'b',               /* PP2_TYPE_AUTHORITY */
};
/* clang-format on */

static struct sockaddr_storage sin4(const char *ip, uint16_t port)
{
	struct sockaddr_storage ss = { 0 };
	struct sockaddr_in *s = (struct sockaddr_in *)&ss;

	s->sin_family = AF_INET;
	s->sin_port = htons(port);
	assert_int_equal(inet_pton(AF_INET, ip, &s->sin_addr), 1);
	return ss;
}

static struct sockaddr_storage sin6(const char *ip, uint16_t port)
{
	struct sockaddr_storage ss = { 0 };
	struct sockaddr_in6 *s = (struct sockaddr_in6 *)&ss;

	s->sin6_family = AF_INET6;
	s->sin6_port = htons(port);
	assert_int_equal(inet_pton(AF_INET6, ip, &s->sin6_addr), 1);
	return ss;
}

static void assert_sin4(const struct sockaddr_storage *ss, const char *ip, uint16_t port)
{
	const struct sockaddr_in *s = (const struct sockaddr_in *)ss;
	char text[INET_ADDRSTRLEN];

	assert_int_equal(ss->ss_family, AF_INET);
	assert_non_null(inet_ntop(AF_INET, &s->sin_addr, text, sizeof(text)));
	assert_string_equal(text, ip);
	assert_int_equal(ntohs(s->sin_port), port);
}

static void assert_sin6(const struct sockaddr_storage *ss, const char *ip, uint16_t port)
{
	const struct sockaddr_in6 *s = (const struct sockaddr_in6 *)ss;
	char text[INET6_ADDRSTRLEN];

	assert_int_equal(ss->ss_family, AF_INET6);
	assert_non_null(inet_ntop(AF_INET6, &s->sin6_addr, text, sizeof(text)));
	assert_string_equal(text, ip);
	assert_int_equal(ntohs(s->sin6_port), port);
}

static void test_encode_v4_bytes(void **state)
{
	struct sockaddr_storage src = sin4("192.0.2.7", 4242), dst = sin4("10.77.0.2", 80);
	uint8_t buf[MW_PROXY2_MAX];

	(void)state;
	memset(buf, 0xaa, sizeof(buf));
	assert_int_equal(mw_proxy2_encode(buf, sizeof(buf), &src, &dst), sizeof(v4));
	assert_memory_equal(buf, v4, sizeof(v4));
	assert_int_equal(buf[sizeof(v4)], 0xaa); /* nothing written beyond */
}

static void test_encode_v6_bytes(void **state)
{
	struct sockaddr_storage src = sin6("2001:db8::7", 4242), dst = sin6("2001:db8::1", 443);
	uint8_t buf[MW_PROXY2_V6_LEN];

	(void)state;
	assert_int_equal(mw_proxy2_encode(buf, sizeof(buf), &src, &dst), sizeof(v6));
	assert_memory_equal(buf, v6, sizeof(v6));
}

static void test_encode_local_bytes(void **state)
{
	uint8_t buf[MW_PROXY2_FIXED];

	(void)state;
	assert_int_equal(mw_proxy2_encode(buf, sizeof(buf), NULL, NULL), sizeof(local));
	assert_memory_equal(buf, local, sizeof(local));
}

/* A dual-stack listener sees IPv4 clients as ::ffff:a.b.c.d: still TCP4 on the wire. */
static void test_encode_mapped_is_v4(void **state)
{
	struct sockaddr_storage src = sin6("::ffff:192.0.2.7", 4242);
	struct sockaddr_storage dst = sin6("::ffff:10.77.0.2", 80);
	uint8_t buf[MW_PROXY2_MAX];

	(void)state;
	assert_int_equal(mw_proxy2_encode(buf, sizeof(buf), &src, &dst), sizeof(v4));
	assert_memory_equal(buf, v4, sizeof(v4));
}

/* One side IPv4, the other IPv6: TCP6 with the IPv4 address mapped. */
static void test_encode_mixed_is_v6(void **state)
{
	struct sockaddr_storage src = sin4("192.0.2.7", 4242), dst = sin6("2001:db8::1", 443);
	struct mw_proxy2_hdr h;
	uint8_t buf[MW_PROXY2_MAX];

	(void)state;
	assert_int_equal(mw_proxy2_encode(buf, sizeof(buf), &src, &dst), MW_PROXY2_V6_LEN);
	assert_int_equal(buf[13], 0x21);
	assert_int_equal(mw_proxy2_decode(buf, MW_PROXY2_V6_LEN, &h), MW_PROXY2_V6_LEN);
	assert_sin6(&h.src, "::ffff:192.0.2.7", 4242);
	assert_sin6(&h.dst, "2001:db8::1", 443);
}

static void test_encode_errors(void **state)
{
	struct sockaddr_storage src = sin4("192.0.2.7", 4242), dst = sin6("2001:db8::1", 443);
	struct sockaddr_storage un = { .ss_family = AF_UNIX };
	uint8_t buf[MW_PROXY2_MAX];

	(void)state;
	assert_int_equal(mw_proxy2_encode(buf, MW_PROXY2_V6_LEN - 1, &src, &dst), -ENOSPC);
	assert_int_equal(mw_proxy2_encode(buf, MW_PROXY2_FIXED - 1, NULL, NULL), -ENOSPC);
	src = sin4("192.0.2.7", 4242);
	dst = sin4("10.77.0.2", 80);
	assert_int_equal(mw_proxy2_encode(buf, MW_PROXY2_V4_LEN - 1, &src, &dst), -ENOSPC);
	assert_int_equal(mw_proxy2_encode(buf, MW_PROXY2_V4_LEN, &src, &dst), MW_PROXY2_V4_LEN);
	assert_int_equal(mw_proxy2_encode(buf, sizeof(buf), &un, &dst), -EAFNOSUPPORT);
	assert_int_equal(mw_proxy2_encode(buf, sizeof(buf), &src, &un), -EAFNOSUPPORT);
	assert_int_equal(mw_proxy2_encode(buf, sizeof(buf), &src, NULL), -EINVAL);
	assert_int_equal(mw_proxy2_encode(buf, sizeof(buf), NULL, &dst), -EINVAL);
}

static void test_decode_v4(void **state)
{
	struct mw_proxy2_hdr h;

	(void)state;
	assert_int_equal(mw_proxy2_decode(v4, sizeof(v4), &h), sizeof(v4));
	assert_int_equal(h.cmd, MW_PROXY2_PROXY);
	assert_int_equal(h.fam, 0x11);
	assert_int_equal(h.len, sizeof(v4));
	assert_sin4(&h.src, "192.0.2.7", 4242);
	assert_sin4(&h.dst, "10.77.0.2", 80);
}

static void test_decode_v6(void **state)
{
	struct mw_proxy2_hdr h;

	(void)state;
	assert_int_equal(mw_proxy2_decode(v6, sizeof(v6), &h), sizeof(v6));
	assert_int_equal(h.cmd, MW_PROXY2_PROXY);
	assert_int_equal(h.fam, 0x21);
	assert_sin6(&h.src, "2001:db8::7", 4242);
	assert_sin6(&h.dst, "2001:db8::1", 443);
}

static void test_decode_local(void **state)
{
	/* LOCAL with a family and addresses: the spec says ignore them. */
	static const uint8_t local_addr[] = { SIG, 0x20, 0x11, 0x00, 0x0c, 1, 2, 3, 4,
					      5,   6,	 7,    8,    0,	   1, 0, 2 };
	struct mw_proxy2_hdr h;

	(void)state;
	assert_int_equal(mw_proxy2_decode(local, sizeof(local), &h), sizeof(local));
	assert_int_equal(h.cmd, MW_PROXY2_LOCAL);
	assert_int_equal(h.src.ss_family, AF_UNSPEC);
	assert_int_equal(h.dst.ss_family, AF_UNSPEC);
	assert_int_equal(mw_proxy2_decode(local_addr, sizeof(local_addr), &h), sizeof(local_addr));
	assert_int_equal(h.cmd, MW_PROXY2_LOCAL);
	assert_int_equal(h.src.ss_family, AF_UNSPEC);
}

static void test_decode_proxy_unspec(void **state)
{
	static const uint8_t unspec[] = { SIG, 0x21, 0x00, 0x00, 0x00 };
	struct mw_proxy2_hdr h;

	(void)state;
	assert_int_equal(mw_proxy2_decode(unspec, sizeof(unspec), &h), sizeof(unspec));
	assert_int_equal(h.cmd, MW_PROXY2_PROXY);
	assert_int_equal(h.src.ss_family, AF_UNSPEC);
}

static void test_decode_tlvs_skipped(void **state)
{
	struct mw_proxy2_hdr h;

	(void)state;
	assert_int_equal(mw_proxy2_decode(v4tlv, sizeof(v4tlv), &h), sizeof(v4tlv));
	assert_int_equal(h.len, sizeof(v4tlv));
	assert_sin4(&h.src, "192.0.2.7", 4242);
	assert_sin4(&h.dst, "10.77.0.2", 80);
	for (size_t n = 0; n < sizeof(v4tlv); n++)
		assert_int_equal(mw_proxy2_decode(v4tlv, n, &h), 0);
}

/* Bytes after the header are the stream's own: decode must not claim them. */
static void test_decode_leaves_payload(void **state)
{
	uint8_t buf[sizeof(v4) + 5];
	struct mw_proxy2_hdr h;

	(void)state;
	memcpy(buf, v4, sizeof(v4));
	/* NOLINTNEXTLINE(bugprone-not-null-terminated-result): stream bytes, no NUL */
	memcpy(buf + sizeof(v4), "hello", 5);
	assert_int_equal(mw_proxy2_decode(buf, sizeof(buf), &h), sizeof(v4));
	assert_int_equal(mw_proxy2_need(buf, sizeof(buf)), sizeof(v4));
}

/* Every strict prefix of a valid header is "need more", never an error. */
static void test_truncations(void **state)
{
	static const struct {
		const uint8_t *b;
		size_t n;
	} vec[] = { { v4, sizeof(v4) }, { v6, sizeof(v6) }, { local, sizeof(local) } };
	struct mw_proxy2_hdr h;
	uint8_t *copy;

	(void)state;
	for (size_t i = 0; i < sizeof(vec) / sizeof(vec[0]); i++) {
		for (size_t n = 0; n < vec[i].n; n++) {
			/* exactly n bytes on the heap: reading beyond is an ASan error */
			copy = malloc(n ? n : 1);
			assert_non_null(copy);
			memcpy(copy, vec[i].b, n);
			assert_int_equal(mw_proxy2_decode(copy, n, &h), 0);
			assert_int_equal(mw_proxy2_need(copy, n),
					 n < MW_PROXY2_FIXED ? MW_PROXY2_FIXED : (int)vec[i].n);
			free(copy);
		}
	}
}

static int decode_mut(size_t off, uint8_t val, size_t len)
{
	uint8_t buf[sizeof(v4tlv)];
	struct mw_proxy2_hdr h;

	memcpy(buf, v4tlv, sizeof(buf));
	buf[off] = val;
	return mw_proxy2_decode(buf, len, &h);
}

static void test_bad_signature(void **state)
{
	(void)state;
	/* Wrong at byte i: rejected as soon as byte i is there. */
	for (size_t i = 0; i < MW_PROXY2_SIG_LEN; i++) {
		assert_int_equal(decode_mut(i, v4[i] ^ 0x20, i + 1), -EINVAL);
		assert_int_equal(decode_mut(i, v4[i] ^ 0x20, sizeof(v4)), -EINVAL);
	}
	/* An HTTP request or a v1 header is not a v2 header. */
	assert_int_equal(mw_proxy2_decode((const uint8_t *)"GET / HTTP/1.1\r\n", 16, NULL),
			 -EINVAL);
	assert_int_equal(mw_proxy2_decode((const uint8_t *)"PROXY TCP4 ", 11, NULL), -EINVAL);
	assert_int_equal(mw_proxy2_need((const uint8_t *)"G", 1), -EINVAL);
}

static void test_bad_version_command(void **state)
{
	(void)state;
	assert_int_equal(decode_mut(12, 0x11, 13), -EINVAL); /* version 1 */
	assert_int_equal(decode_mut(12, 0x31, sizeof(v4)), -EINVAL);
	assert_int_equal(decode_mut(12, 0x01, sizeof(v4)), -EINVAL);
	assert_int_equal(decode_mut(12, 0x22, 13), -EINVAL); /* command 2 */
	assert_int_equal(decode_mut(12, 0x2f, sizeof(v4)), -EINVAL);
}

static void test_bad_family(void **state)
{
	(void)state;
	assert_int_equal(decode_mut(13, 0x12, 14), -EPROTONOSUPPORT);	      /* UDP4 */
	assert_int_equal(decode_mut(13, 0x22, sizeof(v4)), -EPROTONOSUPPORT); /* UDP6 */
	assert_int_equal(decode_mut(13, 0x31, sizeof(v4)), -EPROTONOSUPPORT); /* UNIX stream */
	assert_int_equal(decode_mut(13, 0x41, 14), -EINVAL);		      /* no such AF */
	assert_int_equal(decode_mut(13, 0x13, sizeof(v4)), -EINVAL); /* no such transport */
	assert_int_equal(decode_mut(13, 0xff, sizeof(v4)), -EINVAL);
}

static void test_bad_length(void **state)
{
	uint8_t buf[sizeof(v6)];

	(void)state;
	/* TCP4 with fewer than 12 address bytes, even when they are all there */
	assert_int_equal(decode_mut(15, 11, 16), -EINVAL);
	assert_int_equal(decode_mut(15, 0, sizeof(v4)), -EINVAL);
	/* TCP6 claiming TCP4's length */
	memcpy(buf, v6, sizeof(buf));
	buf[15] = 12;
	assert_int_equal(mw_proxy2_decode(buf, sizeof(buf), NULL), -EINVAL);
	/* longer than MW_PROXY2_MAX: refused at once, not buffered */
	assert_int_equal(decode_mut(14, 0x02, 16), -EINVAL); /* 0x0218 */
	memcpy(buf, v6, sizeof(buf));
	buf[14] = (MW_PROXY2_MAX - MW_PROXY2_FIXED) >> 8;
	buf[15] = (MW_PROXY2_MAX - MW_PROXY2_FIXED) & 0xff;
	assert_int_equal(mw_proxy2_need(buf, 16), MW_PROXY2_MAX); /* the limit itself is fine */
	buf[15]++;
	assert_int_equal(mw_proxy2_need(buf, 16), -EINVAL);
	assert_int_equal(mw_proxy2_decode(buf, 16, NULL), -EINVAL);
}

static void test_round_trip(void **state)
{
	struct sockaddr_storage src, dst;
	struct mw_proxy2_hdr h;
	uint8_t buf[MW_PROXY2_MAX];
	unsigned int seed = 7;
	int n;

	(void)state;
	for (int i = 0; i < 1000; i++) {
		memset(&src, 0, sizeof(src));
		memset(&dst, 0, sizeof(dst));
		if (i & 1) {
			struct sockaddr_in6 *s = (struct sockaddr_in6 *)&src;
			struct sockaddr_in6 *d = (struct sockaddr_in6 *)&dst;

			s->sin6_family = d->sin6_family = AF_INET6;
			for (int k = 0; k < 16; k++) {
				s->sin6_addr.s6_addr[k] = (uint8_t)rand_r(&seed);
				d->sin6_addr.s6_addr[k] = (uint8_t)rand_r(&seed);
			}
			s->sin6_addr.s6_addr[0] = 0x20; /* never v4-mapped */
			s->sin6_port = (uint16_t)rand_r(&seed);
			d->sin6_port = (uint16_t)rand_r(&seed);
		} else {
			struct sockaddr_in *s = (struct sockaddr_in *)&src;
			struct sockaddr_in *d = (struct sockaddr_in *)&dst;

			s->sin_family = d->sin_family = AF_INET;
			s->sin_addr.s_addr = (uint32_t)rand_r(&seed);
			d->sin_addr.s_addr = (uint32_t)rand_r(&seed);
			s->sin_port = (uint16_t)rand_r(&seed);
			d->sin_port = (uint16_t)rand_r(&seed);
		}
		n = mw_proxy2_encode(buf, sizeof(buf), &src, &dst);
		assert_int_equal(n, i & 1 ? MW_PROXY2_V6_LEN : MW_PROXY2_V4_LEN);
		assert_int_equal(mw_proxy2_decode(buf, (size_t)n, &h), n);
		assert_int_equal(h.cmd, MW_PROXY2_PROXY);
		assert_memory_equal(&h.src, &src, sizeof(src));
		assert_memory_equal(&h.dst, &dst, sizeof(dst));
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_encode_v4_bytes),
		cmocka_unit_test(test_encode_v6_bytes),
		cmocka_unit_test(test_encode_local_bytes),
		cmocka_unit_test(test_encode_mapped_is_v4),
		cmocka_unit_test(test_encode_mixed_is_v6),
		cmocka_unit_test(test_encode_errors),
		cmocka_unit_test(test_decode_v4),
		cmocka_unit_test(test_decode_v6),
		cmocka_unit_test(test_decode_local),
		cmocka_unit_test(test_decode_proxy_unspec),
		cmocka_unit_test(test_decode_tlvs_skipped),
		cmocka_unit_test(test_decode_leaves_payload),
		cmocka_unit_test(test_truncations),
		cmocka_unit_test(test_bad_signature),
		cmocka_unit_test(test_bad_version_command),
		cmocka_unit_test(test_bad_family),
		cmocka_unit_test(test_bad_length),
		cmocka_unit_test(test_round_trip),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
