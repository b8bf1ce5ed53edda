/* SPDX-License-Identifier: MIT */
/* fuzz_netflow.c - arbitrary bytes through the Netflow framer and decoders; re-encoding must agree */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "netflow/codec.h"

/* Decode one framed message; what decodes must re-encode to the same meaning. */
static void check_message(const uint8_t *p, size_t size)
{
	uint8_t out[MW_NF_MAX_SIZE];
	struct mw_nf_info info;
	struct mw_nf_request req, again;
	struct mw_nf_response rsp;
	struct mw_addr a;
	const char *why;

	if (!mw_nf_decode_info(&info, p, size, &why)) {
		/* INFO keeps every byte (id included), so the round trip is exact. */
		if (mw_nf_encode_info(out, &info) != MW_NF_INFO_SIZE ||
		    memcmp(out, p, MW_NF_INFO_SIZE))
			abort();
		mw_nf_obs_name(info.obs);
		mw_nf_endpoint_to_addr(&info.pvm, &a);
	}
	if (!mw_nf_decode_request(&req, p, size, &why)) {
		/* The ident padding is dropped, so compare decoded meanings. */
		mw_nf_encode_request(out, &req);
		if (mw_nf_decode_request(&again, out, MW_NF_REQUEST_SIZE, &why) ||
		    again.id != req.id || again.flags != req.flags || again.name != req.name ||
		    memcmp(again.val, req.val, 16) || again.sockfd != req.sockfd ||
		    again.addr.af != req.addr.af || memcmp(again.addr.addr, req.addr.addr, 16))
			abort();
		mw_nf_request_check(&req, &why);
		if (!mw_nf_request_block_addr(&req, &a) && a.family != 4 && a.family != 6)
			abort();
		mw_nf_attr_name(req.name);
	}
	if (!mw_nf_decode_response(&rsp, p, size, &why)) {
		if (mw_nf_encode_response(out, &rsp) != MW_NF_RESPONSE_SIZE ||
		    memcmp(out, p, MW_NF_RESPONSE_SIZE))
			abort();
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint8_t *copy = malloc(size ? size : 1); /* exactly sized: ASan sees any over-read */
	size_t off = 0;
	int n;

	if (!copy)
		return 0;
	memcpy(copy, data, size);
	/* Every decoder on the raw input, whatever its length. */
	check_message(copy, size);
	/* The input as a stream: frame message after message until it stops. */
	while (off < size) {
		n = mw_nf_frame_next(copy + off, size - off);
		if (n <= 0)
			break;
		if ((size_t)n > size - off)
			abort();
		check_message(copy + off, (size_t)n);
		off += (size_t)n;
	}
	free(copy);
	return 0;
}
