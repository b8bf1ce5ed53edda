/* SPDX-License-Identifier: MIT */
/* ring.c - SPSC ring of framed records in shared memory, hostile-peer safe (see ring.h) */
#include <errno.h>
#include <stdatomic.h>
#include <string.h>

#include "common/ring.h"

/*
 * Record kinds.  Non-trivial values so that a zeroed or scribbled area is
 * recognised as corruption rather than read as an empty record.
 */
#define RING_KIND_REC 0x52454331u /* "1CER" */
#define RING_KIND_PAD 0x44415031u /* "1PAD" */

struct ring_rec_hdr {
	uint32_t len;
	uint32_t kind;
};
static_assert(sizeof(struct ring_rec_hdr) == MW_RING_REC_HDR, "record header");

/*
 * The shared fields are plain integers in ring.h (the layout is a wire
 * format), so they are accessed through _Atomic casts: same size and
 * alignment on every target we build for, and lock-free.
 */
static_assert(sizeof(_Atomic uint64_t) == sizeof(uint64_t), "lock-free u64");
static_assert(sizeof(_Atomic uint32_t) == sizeof(uint32_t), "lock-free u32");

static inline uint64_t ring_load_acq64(uint64_t *p)
{
	return atomic_load_explicit((_Atomic uint64_t *)p, memory_order_acquire);
}

static inline void ring_store_rel64(uint64_t *p, uint64_t v)
{
	atomic_store_explicit((_Atomic uint64_t *)p, v, memory_order_release);
}

static inline uint32_t ring_load32(uint32_t *p)
{
	return atomic_load_explicit((_Atomic uint32_t *)p, memory_order_relaxed);
}

static inline void ring_store32(uint32_t *p, uint32_t v)
{
	atomic_store_explicit((_Atomic uint32_t *)p, v, memory_order_relaxed);
}

static inline uint32_t ring_xchg32(uint32_t *p, uint32_t v)
{
	return atomic_exchange_explicit((_Atomic uint32_t *)p, v, memory_order_seq_cst);
}

static inline uint32_t ring_align8(uint32_t len)
{
	return (len + 7u) & ~7u;
}

/**
 * mw_ring_init() - attach to a shared header and data area
 * @r:     private ring state (filled)
 * @sh:    shared header
 * @data:  shared data area of @size bytes, 8-byte aligned
 * @size:  power of two, MW_RING_MIN_SIZE..MW_RING_MAX_SIZE
 * @reset: true for the side that creates the region (zeroes the header)
 *
 * The side that does not reset starts from the indices it finds; they are
 * checked like everything else the peer writes.
 * Return: 0, -EINVAL if @size is not a power of two in range, -EBADMSG if
 * (without @reset) the indices found are impossible
 */
int mw_ring_init(struct mw_ring *r, struct mw_ring_shared *sh, void *data, uint32_t size,
		 bool reset)
{
	uint64_t head, tail;

	if (!r || !sh || !data || size < MW_RING_MIN_SIZE || size > MW_RING_MAX_SIZE ||
	    (size & (size - 1)) || ((uintptr_t)data & 7u))
		return -EINVAL;
	memset(r, 0, sizeof(*r));
	r->sh = sh;
	r->data = data;
	r->size = size;
	if (reset) {
		memset(sh, 0, sizeof(*sh));
		atomic_thread_fence(memory_order_seq_cst);
		return 0;
	}
	head = ring_load_acq64(&sh->head);
	tail = ring_load_acq64(&sh->tail);
	if (tail > head || head - tail > size || ((head | tail) & 7u))
		return -EBADMSG;
	r->prod_head = head;
	r->prod_tail_cache = tail;
	r->cons_tail = tail;
	r->cons_head_cache = tail;
	return 0;
}

/**
 * mw_ring_max_record() - largest record payload a ring of this size can carry
 * @r: the ring
 *
 * A record may fill the whole data area: a producer that cannot fit it before
 * the end publishes the PAD alone and waits for the ring to drain to offset 0.
 * Return: payload bytes
 */
uint32_t mw_ring_max_record(const struct mw_ring *r)
{
	return r->size - MW_RING_REC_HDR;
}

/*
 * Producer: is there room for @need more bytes?  Reloads the consumer's tail
 * only when the cached one says no, so the tail line is read rarely.  An
 * impossible tail is not adopted: the ring then just looks full (the channel
 * layer checks the tail itself when a reserve fails and ends the channel).
 */
static bool ring_room(struct mw_ring *r, uint32_t need)
{
	uint64_t tail;

	if ((uint64_t)r->size - (r->prod_head - r->prod_tail_cache) >= need)
		return true;
	tail = ring_load_acq64(&r->sh->tail);
	if (tail > r->prod_head || r->prod_head - tail > r->size || (tail & 7u))
		return false;
	r->prod_tail_cache = tail;
	return (uint64_t)r->size - (r->prod_head - tail) >= need;
}

static void ring_put_hdr(struct mw_ring *r, uint32_t off, uint32_t len, uint32_t kind)
{
	struct ring_rec_hdr h = { .len = len, .kind = kind };

	memcpy(r->data + off, &h, sizeof(h));
}

/**
 * mw_ring_reserve() - producer: room for a record of @len payload bytes
 * @r:   the ring
 * @len: payload bytes (the record takes 8 + @len rounded up to 8)
 *
 * If the record does not fit before the end of the data area, a PAD record
 * covering the remainder is written and published first (as soon as it
 * fits), even if the record itself must then wait for room.
 * Return: where to write the payload, or NULL if the ring is full now
 */
void *mw_ring_reserve(struct mw_ring *r, uint32_t len)
{
	uint32_t rec, off, to_end;

	if (len > mw_ring_max_record(r))
		return NULL;
	rec = MW_RING_REC_HDR + ring_align8(len);
	off = (uint32_t)(r->prod_head & (r->size - 1));
	to_end = r->size - off;
	if (rec > to_end) {
		if (!ring_room(r, to_end))
			return NULL;
		ring_put_hdr(r, off, to_end - MW_RING_REC_HDR, RING_KIND_PAD);
		r->prod_head += to_end;
		ring_store_rel64(&r->sh->head, r->prod_head);
		off = 0;
	}
	if (!ring_room(r, rec))
		return NULL;
	r->reserved = ring_align8(len);
	return r->data + off + MW_RING_REC_HDR;
}

/**
 * mw_ring_commit() - producer: publish the reserved record
 * @r:   the ring
 * @len: final payload length, <= what was reserved (larger values are clamped)
 */
void mw_ring_commit(struct mw_ring *r, uint32_t len)
{
	uint32_t off = (uint32_t)(r->prod_head & (r->size - 1));

	if (len > r->reserved)
		len = r->reserved;
	ring_put_hdr(r, off, len, RING_KIND_REC);
	r->prod_head += MW_RING_REC_HDR + ring_align8(len);
	r->reserved = 0;
	ring_store_rel64(&r->sh->head, r->prod_head);
}

/**
 * mw_ring_peek() - consumer: the oldest record, left in place
 * @r:   the ring
 * @rec: set to the payload (in shared memory)
 * @len: set to the payload length
 *
 * Skips (and releases) a PAD record.  Everything read from shared memory is
 * copied once and checked: head within one ring of our tail and 8-aligned,
 * record kind known, a PAD only where a record would not fit and exactly up
 * to the end, a record not straddling the end and within the written range.
 * Return: 1 with *@rec and *@len set, 0 if empty, -EBADMSG if the peer corrupted the ring
 */
int mw_ring_peek(struct mw_ring *r, const void **rec, uint32_t *len)
{
	struct ring_rec_hdr h;
	uint32_t off, to_end, recb;
	uint64_t avail, head;
	int pass;

	/* At most a PAD and then one record: a PAD at offset 0 is never valid. */
	for (pass = 0; pass < 2; pass++) {
		avail = r->cons_head_cache - r->cons_tail;
		if (!avail) {
			head = ring_load_acq64(&r->sh->head);
			if (head < r->cons_tail || head - r->cons_tail > r->size || (head & 7u))
				return -EBADMSG;
			r->cons_head_cache = head;
			avail = head - r->cons_tail;
			if (!avail)
				return 0;
		}
		off = (uint32_t)(r->cons_tail & (r->size - 1));
		to_end = r->size - off;
		if (avail < MW_RING_REC_HDR)
			return -EBADMSG;
		memcpy(&h, r->data + off, sizeof(h));
		if (h.kind == RING_KIND_PAD) {
			if (off == 0 || h.len != to_end - MW_RING_REC_HDR || avail < to_end)
				return -EBADMSG;
			r->cons_tail += to_end;
			/* Publish now: a producer may be waiting for exactly this room. */
			ring_store_rel64(&r->sh->tail, r->cons_tail);
			continue;
		}
		if (h.kind != RING_KIND_REC || h.len > mw_ring_max_record(r))
			return -EBADMSG;
		recb = MW_RING_REC_HDR + ring_align8(h.len);
		if (recb > to_end || recb > avail)
			return -EBADMSG;
		*rec = r->data + off + MW_RING_REC_HDR;
		*len = h.len;
		r->peeked = recb;
		return 1;
	}
	return -EBADMSG;
}

/**
 * mw_ring_consume() - consumer: release the record returned by the last peek()
 * @r: the ring
 */
void mw_ring_consume(struct mw_ring *r)
{
	if (!r->peeked)
		return;
	r->cons_tail += r->peeked;
	r->peeked = 0;
	ring_store_rel64(&r->sh->tail, r->cons_tail);
}

/**
 * mw_ring_consumer_needs_kick() - producer, after commits: must the consumer be woken?
 * @r: the ring
 *
 * The fence orders our head store before the flag load (the consumer does
 * the mirror image), which is what makes a lost wake-up impossible.
 * Return: true if the consumer sleeps (the flag is cleared: kick it once)
 */
bool mw_ring_consumer_needs_kick(struct mw_ring *r)
{
	atomic_thread_fence(memory_order_seq_cst);
	if (!ring_load32(&r->sh->consumer_sleeping))
		return false;
	return ring_xchg32(&r->sh->consumer_sleeping, 0) != 0;
}

/**
 * mw_ring_consumer_asleep() - producer: a hint that the consumer announced sleep
 * @r: the ring
 * Return: the flag as last seen, without fence or side effect
 */
bool mw_ring_consumer_asleep(struct mw_ring *r)
{
	return ring_load32(&r->sh->consumer_sleeping) != 0;
}

/**
 * mw_ring_producer_needs_kick() - consumer, after consumes: must the producer be woken?
 * @r: the ring
 * Return: true if the producer waits for room (the flag is cleared: kick it once)
 */
bool mw_ring_producer_needs_kick(struct mw_ring *r)
{
	atomic_thread_fence(memory_order_seq_cst);
	if (!ring_load32(&r->sh->producer_waiting))
		return false;
	return ring_xchg32(&r->sh->producer_waiting, 0) != 0;
}

/**
 * mw_ring_consumer_sleep() - consumer: announce sleep, then re-check
 * @r: the ring
 *
 * A head that moved, even to an impossible value, counts as "records
 * arrived": the caller's next peek() reports the corruption.
 * Return: true if it may sleep now, false if records arrived (flag cleared)
 */
bool mw_ring_consumer_sleep(struct mw_ring *r)
{
	if (r->cons_head_cache != r->cons_tail)
		return false;
	ring_store32(&r->sh->consumer_sleeping, 1);
	atomic_thread_fence(memory_order_seq_cst);
	if (ring_load_acq64(&r->sh->head) != r->cons_tail) {
		ring_store32(&r->sh->consumer_sleeping, 0);
		return false;
	}
	return true;
}

/**
 * mw_ring_consumer_wake() - consumer: back awake
 * @r: the ring
 */
void mw_ring_consumer_wake(struct mw_ring *r)
{
	ring_store32(&r->sh->consumer_sleeping, 0);
}

/*
 * Room for a record of @len, counting the PAD it may need; a PAD alone is
 * progress too (reserve() publishes it), so it also ends the wait.
 */
static bool ring_room_for(struct mw_ring *r, uint32_t len)
{
	uint32_t rec, off, to_end;

	if (len > mw_ring_max_record(r))
		return false;
	rec = MW_RING_REC_HDR + ring_align8(len);
	off = (uint32_t)(r->prod_head & (r->size - 1));
	to_end = r->size - off;
	return ring_room(r, rec > to_end ? to_end : rec);
}

/**
 * mw_ring_producer_wait() - producer found the ring full: announce, re-check
 * @r:   the ring
 * @len: payload bytes it wants to reserve
 * Return: true if it must wait for a kick, false if room for @len appeared
 */
bool mw_ring_producer_wait(struct mw_ring *r, uint32_t len)
{
	if (ring_room_for(r, len))
		return false;
	ring_store32(&r->sh->producer_waiting, 1);
	atomic_thread_fence(memory_order_seq_cst);
	if (ring_room_for(r, len)) {
		ring_store32(&r->sh->producer_waiting, 0);
		return false;
	}
	return true;
}
