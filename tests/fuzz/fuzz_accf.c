/* SPDX-License-Identifier: MIT */
/* fuzz_accf.c - hostile streams into the accept filters' completeness parser */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ins/ins_accf.h"
#include "tests/fuzz/fz_input.h"

/*
 * Input: filter (byte 0 mod 5), delimiter count and 8 delimiter bytes, 8 split
 * points, then the stream.  The stream is fed in growing prefixes, as peeks at
 * a trickling client return them; at every step the incremental verdict must
 * equal a fresh parser's over the same prefix, and PASS, once said, stays.
 */
#define FZ_SPLITS 8

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fz_in in = { data, size };
	struct mw_shield sh = { 0 };
	struct ins_accf_parser inc, once;
	size_t cut[FZ_SPLITS + 1], len, i;
	uint8_t *stream;
	int v, w, passed = 0;

	sh.filter = (uint8_t)(fz_u8(&in) % (MW_ACCF_MAX + 1));
	sh.delim_len = (uint8_t)(fz_u8(&in) % 9);
	fz_bytes(&in, sh.delim, sizeof(sh.delim));
	for (i = 0; i < FZ_SPLITS; i++)
		cut[i] = fz_u16(&in);
	len = in.left;
	stream = malloc(len ? len : 1); /* exactly sized: ASan sees any over-read */
	if (!stream)
		return 0;
	memcpy(stream, in.p, len);
	cut[FZ_SPLITS] = len;
	ins_accf_parse_init(&inc, &sh);
	for (i = 0; i <= FZ_SPLITS; i++) {
		size_t n = cut[i] < len ? cut[i] : len;

		if (i && n < cut[i - 1] && cut[i - 1] <= len)
			n = cut[i - 1]; /* a stream only grows while it is held */
		v = ins_accf_parse(&inc, stream, n);
		ins_accf_parse_init(&once, &sh);
		w = ins_accf_parse(&once, stream, n);
		if ((v != INS_ACCF_PASS && v != INS_ACCF_MORE) || v != w || (passed && !v))
			abort();
		if (inc.pos > INS_ACCF_PEEK_MAX || inc.pos > n)
			abort();
		passed |= v;
		cut[i] = n;
	}
	free(stream);
	return 0;
}
