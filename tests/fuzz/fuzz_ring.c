/* SPDX-License-Identifier: MIT */
/* fuzz_ring.c - hostile shared ring headers and records: -EBADMSG or in-bounds records, never a crash */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/channel.h"
#include "common/channel_backend.h"

/*
 * Input: u64 head, u64 tail, u32 producer request length, then the bytes of the
 * data area (zero-filled to the ring size).  The shared header and data are
 * what a hostile peer controls.  Checked: every record the consumer is given
 * lies inside the data area, every frame the channel hands out is consistent,
 * and every space the producer reserves is inside the data area.
 */

#define FZ_RING 4096u

static void fz_check(int cond)
{
	if (!cond)
		abort();
}

static int fz_nop(struct mw_channel *ch)
{
	return 0;
}

static const struct mw_channel_ops fz_ops = { .name = "fuzz", .kick = fz_nop, .ack = fz_nop };

static void fz_ring(const uint64_t hdr[2], uint32_t want, const uint8_t *data, size_t n)
{
	static struct mw_ring_shared shared;
	static _Alignas(64) uint8_t area[FZ_RING];
	struct mw_ring_shared *sh = &shared;
	struct mw_ring r;
	const void *rec;
	uint32_t len;
	int i, ret;

	memset(sh, 0, sizeof(*sh));
	memset(area, 0, FZ_RING);
	memcpy(area, data, n);
	sh->head = hdr[0];
	sh->tail = hdr[1];
	if (mw_ring_init(&r, sh, area, FZ_RING, false) == 0) {
		for (i = 0; i < 64; i++) {
			ret = mw_ring_peek(&r, &rec, &len);
			if (ret <= 0) {
				fz_check(ret == 0 || ret == -EBADMSG);
				break;
			}
			fz_check((const uint8_t *)rec >= area + 8);
			fz_check((const uint8_t *)rec + len <= area + FZ_RING);
			mw_ring_consume(&r);
		}
		/* The producer side of the same header: reserve stays in bounds. */
		for (i = 0; i < 4; i++) {
			uint8_t *p = mw_ring_reserve(&r, want % FZ_RING);

			if (!p)
				break;
			fz_check(p >= area + 8 && p + want % FZ_RING <= area + FZ_RING);
			memset(p, 0xee, want % FZ_RING);
			mw_ring_commit(&r, want % FZ_RING);
		}
	}
}

/* The same bytes as the INS->PVM data area of a channel: frames checked structurally. */
static void fz_channel(const uint64_t hdr[2], const uint8_t *data, size_t n)
{
	static _Alignas(4096) uint8_t region[4096 + 2 * MW_CHANNEL_MIN_RING];
	size_t len = mw_channel_region_size(MW_CHANNEL_MIN_RING);
	struct mw_ring_shared *sh = (struct mw_ring_shared *)region;
	struct mw_channel ch;
	struct mw_frame f;
	const void *pl;
	int i, ret;

	fz_check(len == sizeof(region));
	/* Only the header page and what the input can reach need clearing. */
	memset(region, 0, 4096);
	memset(region + 4096 + MW_CHANNEL_MIN_RING, 0, FZ_RING + 64);
	mw_channel_reset(&ch);
	fz_check(mw_channel_attach(&ch, region, MW_CHANNEL_MIN_RING, MW_CHANNEL_PVM, true) == 0);
	ch.ops = &fz_ops;
	memcpy(region + 4096 + MW_CHANNEL_MIN_RING, data, n);
	sh[1].head = hdr[0] % (2ull * MW_CHANNEL_MIN_RING);
	for (i = 0; i < 64; i++) {
		ret = mw_channel_recv(&ch, &f, &pl);
		if (ret <= 0) {
			fz_check(ret == 0 || (ret == -EBADMSG && ch.dead_reason[0]));
			break;
		}
		fz_check(f.len <= MW_FRAME_MAX_PAYLOAD);
		fz_check((const uint8_t *)pl >= region + 4096 + MW_CHANNEL_MIN_RING);
		fz_check((const uint8_t *)pl + f.len <= region + len);
		mw_channel_done(&ch);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint64_t hdr[2];
	uint32_t want;

	if (size < 20)
		return 0;
	memcpy(hdr, data, 16);
	memcpy(&want, data + 16, 4);
	data += 20;
	size -= 20;
	if (size > FZ_RING)
		size = FZ_RING;
	fz_ring(hdr, want, data, size);
	fz_channel(hdr, data, size);
	return 0;
}
