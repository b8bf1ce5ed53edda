/* SPDX-License-Identifier: MIT */
/* fuzz_proto.c - arbitrary frames into mw_proto_check, both directions, and as a hello */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/proto.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct mw_frame f;
	struct mw_hello h;
	char why[128];
	uint8_t *payload;
	size_t plen;

	if (size >= sizeof(h)) {
		memcpy(&h, data, sizeof(h));
		mw_proto_check_hello(&h, why, sizeof(why));
	}
	if (size < sizeof(f))
		return 0;
	memcpy(&f, data, sizeof(f));
	plen = size - sizeof(f);
	/* The header's len must describe the payload, as the channel guarantees. */
	f.len = (uint32_t)plen;
	payload = malloc(plen ? plen : 1); /* exactly sized: ASan sees any over-read */
	if (!payload)
		return 0;
	memcpy(payload, data + sizeof(f), plen);
	mw_proto_check(&f, plen ? payload : NULL, MW_DIR_TO_INS, why, sizeof(why));
	mw_proto_check(&f, plen ? payload : NULL, MW_DIR_TO_PVM, why, sizeof(why));
	free(payload);
	return 0;
}
