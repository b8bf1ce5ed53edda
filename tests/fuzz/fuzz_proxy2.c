/* SPDX-License-Identifier: MIT */
/* fuzz_proxy2.c - arbitrary bytes into the PROXY v2 decoder; what it accepts must re-encode */
#include <errno.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/proxy2.h"

/*
 * The encoder writes an IPv4-mapped IPv6 pair as TCP4 (what a dual-stack
 * listener sees of an IPv4 client is an IPv4 client), so a round trip
 * compares meanings: a mapped address equals its IPv4 address, same port.
 */
static struct sockaddr_storage fz_unmap(const struct sockaddr_storage *ss)
{
	static const uint8_t mapped[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff };
	const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)ss;
	struct sockaddr_storage out;
	struct sockaddr_in *s4 = (struct sockaddr_in *)&out;

	memset(&out, 0, sizeof(out));
	if (ss->ss_family != AF_INET6 || memcmp(s6->sin6_addr.s6_addr, mapped, sizeof(mapped))) {
		memcpy(&out, ss, sizeof(out));
		return out;
	}
	s4->sin_family = AF_INET;
	s4->sin_port = s6->sin6_port;
	memcpy(&s4->sin_addr, s6->sin6_addr.s6_addr + 12, 4);
	return out;
}

static bool fz_same(const struct sockaddr_storage *a, const struct sockaddr_storage *b)
{
	struct sockaddr_storage x = fz_unmap(a), y = fz_unmap(b);

	return !memcmp(&x, &y, sizeof(x));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct mw_proxy2_hdr h, h2;
	uint8_t out[MW_PROXY2_MAX];
	uint8_t *copy;
	int n, need, m;

	copy = malloc(size ? size : 1); /* exactly sized: ASan sees any over-read */
	if (!copy)
		return 0;
	memcpy(copy, data, size);
	n = mw_proxy2_decode(copy, size, &h);
	need = mw_proxy2_need(copy, size);
	/* The two agree: an error is an error for both, and a success takes what need said. */
	if (n < 0 && n != -EINVAL && n != -EPROTONOSUPPORT)
		abort();
	if (need == -EINVAL && n != -EINVAL)
		abort();
	if (n > 0 && (n != need || n > MW_PROXY2_MAX || (size_t)n > size || h.len != n))
		abort();
	if (n > 0 && h.cmd == MW_PROXY2_PROXY && h.src.ss_family != AF_UNSPEC) {
		m = mw_proxy2_encode(out, sizeof(out), &h.src, &h.dst);
		if (m <= 0 || mw_proxy2_decode(out, (size_t)m, &h2) != m ||
		    !fz_same(&h.src, &h2.src) || !fz_same(&h.dst, &h2.dst))
			abort();
	}
	free(copy);
	return 0;
}
