/* SPDX-License-Identifier: MIT */
/* fuzz_proxy2.c - arbitrary bytes into the PROXY v2 decoder; what it accepts must re-encode */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/proxy2.h"

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
		    memcmp(&h.src, &h2.src, sizeof(h.src)) ||
		    memcmp(&h.dst, &h2.dst, sizeof(h.dst)))
			abort();
	}
	free(copy);
	return 0;
}
