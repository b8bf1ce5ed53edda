/* SPDX-License-Identifier: MIT */
/* ring.h - single-producer/single-consumer ring of framed records in shared memory */
#ifndef MW_RING_H
#define MW_RING_H

#include <assert.h>
#include <stdbool.h>
#include <stdint.h>

/*
 * Theory of operation
 *
 * A ring is a shared header (struct mw_ring_shared) plus a power-of-two data
 * area.  head and tail count bytes ever written and consumed (64-bit, never
 * wrap), each on its own cache line; only the producer stores head, only the
 * consumer stores tail.  A record is an 8-byte header {u32 len, u32 kind}
 * followed by len bytes, padded to 8.  A record never straddles the end of the
 * data area: the producer writes a PAD record over the remainder and starts
 * again at offset 0.
 *
 * Wake-ups: the consumer sets consumer_sleeping, issues a full fence and
 * re-checks head before it sleeps; the producer publishes head, issues a full
 * fence and kicks only if consumer_sleeping is set (and clears it).  Either the
 * consumer sees the new head or the producer sees the flag: no lost wake-up,
 * and no kick at all while the consumer is busy.  producer_waiting works the
 * same way in the other direction, for a producer that found the ring full.
 *
 * The peer is not trusted: every index and length read from shared memory is
 * checked (head - tail <= size, record fits, len <= size) and a violation is
 * reported as -EBADMSG, never followed.
 */

struct mw_ring_shared {
	_Alignas(64) uint64_t head;          /* written by the producer only */
	_Alignas(64) uint64_t tail;          /* written by the consumer only */
	_Alignas(64) uint32_t consumer_sleeping;
	_Alignas(64) uint32_t producer_waiting;
};
static_assert(sizeof(struct mw_ring_shared) == 256, "one cache line per field");

#define MW_RING_REC_HDR 8u
#define MW_RING_MIN_SIZE 4096u
#define MW_RING_MAX_SIZE (1u << 30)

struct mw_ring {
	struct mw_ring_shared *sh;
	uint8_t *data;
	uint32_t size;          /* power of two */
	/* producer side */
	uint64_t prod_head;     /* private head, published on commit */
	uint64_t prod_tail_cache;
	uint32_t reserved;      /* bytes reserved by the last reserve() */
	/* consumer side */
	uint64_t cons_tail;     /* private tail, published on consume */
	uint64_t cons_head_cache;
	uint32_t peeked;        /* bytes of the record returned by peek() */
};

/**
 * mw_ring_init() - attach to a shared header and data area
 * @reset: true for the side that creates the region (zeroes the header)
 * Return: 0, or -EINVAL if @size is not a power of two in range
 */
int mw_ring_init(struct mw_ring *r, struct mw_ring_shared *sh, void *data, uint32_t size,
		 bool reset);

/* Largest record payload a ring of this size can carry. */
uint32_t mw_ring_max_record(const struct mw_ring *r);

/**
 * mw_ring_reserve() - producer: room for a record of @len payload bytes
 * Return: where to write the payload, or NULL if the ring is full now
 */
void *mw_ring_reserve(struct mw_ring *r, uint32_t len);

/* Producer: publish the reserved record with its final length (<= reserved). */
void mw_ring_commit(struct mw_ring *r, uint32_t len);

/**
 * mw_ring_peek() - consumer: the oldest record, left in place
 * Return: 1 with *@rec and *@len set, 0 if empty, -EBADMSG if the peer corrupted the ring
 */
int mw_ring_peek(struct mw_ring *r, const void **rec, uint32_t *len);

/* Consumer: release the record returned by the last peek(). */
void mw_ring_consume(struct mw_ring *r);

/* Producer, after commits: true if the consumer must be kicked (clears the flag). */
bool mw_ring_consumer_needs_kick(struct mw_ring *r);
/* Consumer, after consumes: true if a waiting producer must be kicked. */
bool mw_ring_producer_needs_kick(struct mw_ring *r);
/* Producer: has the consumer announced sleep?  An unfenced hint (the peer
 * writes it), never a substitute for mw_ring_consumer_needs_kick(). */
bool mw_ring_consumer_asleep(struct mw_ring *r);

/**
 * mw_ring_consumer_sleep() - consumer: announce sleep, then re-check
 * Return: true if it may sleep now, false if records arrived (flag cleared)
 */
bool mw_ring_consumer_sleep(struct mw_ring *r);
/* Consumer: back awake (clears the flag). */
void mw_ring_consumer_wake(struct mw_ring *r);

/**
 * mw_ring_producer_wait() - producer found the ring full: announce, re-check
 * Return: true if it must wait for a kick, false if room for @len appeared
 */
bool mw_ring_producer_wait(struct mw_ring *r, uint32_t len);

#endif /* MW_RING_H */
