/* SPDX-License-Identifier: MIT */
/* fuzz_flow_anon.c - arbitrary frames through ANONYMIZE's frame walker (anon.c) */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "flowd/anon.h"

/*
 * The first byte chooses strip (bit 0); the rest is a frame.  The walker reads
 * Ethernet, VLAN tags, IPv4/IPv6 and extension headers, TCP/UDP from it and
 * writes addresses and checksums back: it must stay inside the frame, never
 * grow it, and with strip keep at most what it walked.
 */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct fl_anon a;
	uint8_t *frame;
	size_t n;

	if (!size)
		return 0;
	if (!a.k0)
		fl_anon_init(&a, "fuzz", 4);
	frame = malloc(size - 1 ? size - 1 : 1);
	if (!frame)
		return 0;
	memcpy(frame, data + 1, size - 1);
	n = fl_anon_frame(&a, frame, size - 1, data[0] & 1);
	if (n > size - 1)
		abort();
	free(frame);
	return 0;
}
