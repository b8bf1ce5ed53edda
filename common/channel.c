/* SPDX-License-Identifier: MIT */
/* channel.c - backend-independent channel logic: frames on the rings, batching, sleep and kicks */
#include <errno.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "common/channel.h"
#include "common/channel_backend.h"

/*
 * Theory of operation (wake-ups; the ring layer has the memory-ordering part)
 *
 * One wake-up object per direction: the peer's kick makes our wait_fd
 * readable, whatever it was for (frames in our rx ring, or room in our tx
 * ring).  So every kick decision checks both reasons at once:
 *   flush():      tx consumer asleep?  or rx producer waiting for room?  => one kick
 *   done():       cheap unfenced look at the rx producer's flag, so a blocked
 *                 peer is released in the middle of a long batch
 *   sleep():      release a waiting producer, then announce sleep and re-check
 *   want_space(): flush what we committed first (otherwise both sides could
 *                 wait for each other), then announce and re-check
 * A kick is an eventfd write (level-triggered until drained), so a kick that
 * arrives between a re-check and the actual poll() is never lost.
 */

/* Frame types the channel accepts structurally; mw_proto_check() does the rest. */
static bool channel_type_known(uint16_t type)
{
	return (type >= MW_OP_SOCKET && type <= MW_OP_GETNAME) ||
	       (type >= MW_RESULT && type <= MW_EV_HEARTBEAT) || type == MW_DATA ||
	       type == MW_CREDIT || type == MW_DATA_PIPE;
}

/**
 * mw_channel_reset() - zero a channel with every fd at -1
 * @ch: the channel
 */
void mw_channel_reset(struct mw_channel *ch)
{
	memset(ch, 0, sizeof(*ch));
	ch->wait_fd = -1;
	ch->kick_fd = -1;
	ch->sock_fd = -1;
	ch->pipe_fd = -1;
}

/**
 * mw_channel_region_size() - bytes of the shared region for two rings
 * @ring_size: bytes per direction
 * Return: header page plus two data areas
 */
size_t mw_channel_region_size(uint32_t ring_size)
{
	return MW_CHANNEL_HDR_AREA + 2 * (size_t)ring_size;
}

/**
 * mw_channel_check_ring_size() - is @ring_size usable for a channel?
 * @ring_size: bytes per direction
 * @err:       reason on failure
 * @errlen:    size of @err
 * Return: 0 or -EINVAL
 */
int mw_channel_check_ring_size(uint32_t ring_size, char *err, size_t errlen)
{
	if (ring_size < MW_CHANNEL_MIN_RING || ring_size > MW_RING_MAX_SIZE ||
	    (ring_size & (ring_size - 1))) {
		snprintf(err, errlen, "ring_size %u is not a power of two in %u..%u", ring_size,
			 MW_CHANNEL_MIN_RING, MW_RING_MAX_SIZE);
		return -EINVAL;
	}
	return 0;
}

/**
 * mw_channel_attach() - set up both rings over a mapped region
 * @ch:        the channel (role, tx, rx, region set)
 * @region:    mapping of mw_channel_region_size(@ring_size) bytes
 * @ring_size: bytes per direction
 * @role:      PVM (tx = PVM->INS, the first ring) or INS
 * @reset:     zero the headers (creator) or check them (joiner)
 * Return: 0, -EINVAL or -EBADMSG
 */
int mw_channel_attach(struct mw_channel *ch, void *region, uint32_t ring_size,
		      enum mw_channel_role role, bool reset)
{
	struct mw_ring_shared *sh = region;
	uint8_t *data = (uint8_t *)region + MW_CHANNEL_HDR_AREA;
	struct mw_ring *to_ins = role == MW_CHANNEL_PVM ? &ch->tx : &ch->rx;
	struct mw_ring *to_pvm = role == MW_CHANNEL_PVM ? &ch->rx : &ch->tx;
	int ret;

	static_assert(2 * sizeof(struct mw_ring_shared) <= MW_CHANNEL_HDR_AREA, "headers fit");
	ret = mw_ring_init(to_ins, &sh[0], data, ring_size, reset);
	if (!ret)
		ret = mw_ring_init(to_pvm, &sh[1], data + ring_size, ring_size, reset);
	if (ret)
		return ret;
	ch->role = role;
	ch->region = region;
	ch->region_len = mw_channel_region_size(ring_size);
	return 0;
}

/**
 * mw_channel_negotiate() - check the peer's hello, pick the highest common version
 * @mine:      our hello
 * @peer:      the peer's hello (a private copy)
 * @peer_name: "INS" or "PVM", for the message
 * @err:       reason on failure
 * @errlen:    size of @err
 * Return: version >= 1, or -EPROTO
 */
int mw_channel_negotiate(const struct mw_hello *mine, const struct mw_hello *peer,
			 const char *peer_name, char *err, size_t errlen)
{
	unsigned int lo, hi;

	if (peer->magic != MW_PROTO_MAGIC) {
		snprintf(err, errlen, "%s hello has bad magic 0x%08x (want 0x%08x)", peer_name,
			 peer->magic, MW_PROTO_MAGIC);
		return -EPROTO;
	}
	if (peer->version_min == 0 && peer->version_max == 0) {
		snprintf(err, errlen, "%s rejected our protocol versions %u..%u", peer_name,
			 mine->version_min, mine->version_max);
		return -EPROTO;
	}
	lo = peer->version_min > mine->version_min ? peer->version_min : mine->version_min;
	hi = peer->version_max < mine->version_max ? peer->version_max : mine->version_max;
	if (peer->version_min > peer->version_max || lo > hi) {
		snprintf(err, errlen, "%s speaks protocol versions %u..%u, we speak %u..%u",
			 peer_name, peer->version_min, peer->version_max, mine->version_min,
			 mine->version_max);
		return -EPROTO;
	}
	return (int)hi;
}

/**
 * mw_channel_close() - unmap, close every fd, leave the channel reset
 * @ch: the channel (a reset or zero-initialised-and-never-opened one is fine)
 */
void mw_channel_close(struct mw_channel *ch)
{
	if (!ch->ops)
		return;
	if (ch->ops->release)
		ch->ops->release(ch);
	if (ch->sock_fd >= 0)
		close(ch->sock_fd);
	mw_channel_reset(ch);
}

/**
 * mw_channel_kill() - end the channel
 * @ch:     the channel
 * @reason: recorded in dead_reason; the first reason wins
 */
void mw_channel_kill(struct mw_channel *ch, const char *reason)
{
	if (ch->dead_reason[0])
		return;
	snprintf(ch->dead_reason, sizeof(ch->dead_reason), "%s",
		 reason && reason[0] ? reason : "killed");
}

static void channel_killf(struct mw_channel *ch, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
static void channel_killf(struct mw_channel *ch, const char *fmt, ...)
{
	char reason[sizeof(ch->dead_reason)];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(reason, sizeof(reason), fmt, ap);
	va_end(ap);
	mw_channel_kill(ch, reason);
}

static void channel_kick(struct mw_channel *ch)
{
	if (ch->ops->kick(ch) == 0)
		ch->kicks_tx++;
}

/*
 * The ring only reports "full"; a consumer tail that is impossible would keep
 * it full for ever, so a failed reserve looks at the tail once more.
 */
static void channel_check_tx_tail(struct mw_channel *ch)
{
	uint64_t tail = atomic_load_explicit((_Atomic uint64_t *)&ch->tx.sh->tail,
					     memory_order_acquire);

	if (tail > ch->tx.prod_head || ch->tx.prod_head - tail > ch->tx.size || (tail & 7u))
		channel_killf(ch, "peer corrupted the tx ring: tail %llu, head %llu",
			      (unsigned long long)tail, (unsigned long long)ch->tx.prod_head);
}

/**
 * mw_channel_reserve() - room for one frame
 * @ch:   the channel
 * @type: frame type
 * @sock: socket id, 0 for channel-wide frames
 * @len:  payload bytes
 * Return: pointer to the payload, NULL if the ring is full, the frame too big
 * or the channel dead
 */
void *mw_channel_reserve(struct mw_channel *ch, uint16_t type, uint64_t sock, uint32_t len)
{
	struct mw_frame f = { .type = type, .len = len, .sock = sock };
	uint8_t *p;

	if (!ch->ops || ch->dead_reason[0] || len > MW_FRAME_MAX_PAYLOAD)
		return NULL;
	p = mw_ring_reserve(&ch->tx, (uint32_t)sizeof(f) + len);
	if (!p) {
		ch->full_events++;
		channel_check_tx_tail(ch);
		return NULL;
	}
	memcpy(p, &f, sizeof(f));
	return p + sizeof(f);
}

/**
 * mw_channel_commit() - publish the reserved frame
 * @ch:  the channel
 * @len: final payload length (<= reserved)
 */
void mw_channel_commit(struct mw_channel *ch, uint32_t len)
{
	struct mw_frame f;
	uint8_t *rec;

	if (!ch->tx.reserved)
		return;
	/* The record starts at our private head (after any PAD reserve wrote). */
	rec = ch->tx.data + (ch->tx.prod_head & (ch->tx.size - 1)) + MW_RING_REC_HDR;
	if (len > ch->tx.reserved - sizeof(f))
		len = ch->tx.reserved - (uint32_t)sizeof(f);
	memcpy(&f, rec, sizeof(f));
	f.len = len;
	memcpy(rec, &f, sizeof(f));
	mw_ring_commit(&ch->tx, (uint32_t)sizeof(f) + len);
	ch->frames_tx++;
	ch->bytes_tx += len;
}

/**
 * mw_channel_send() - reserve, copy and commit one frame
 * @ch:      the channel
 * @type:    frame type
 * @sock:    socket id or 0
 * @payload: @len bytes
 * @len:     payload bytes
 * Return: 0, -EAGAIN if the ring is full, -EMSGSIZE if the frame can never fit,
 * -EPIPE if the channel is dead
 */
int mw_channel_send(struct mw_channel *ch, uint16_t type, uint64_t sock, const void *payload,
		    uint32_t len)
{
	void *p;

	if (!ch->ops || ch->dead_reason[0])
		return -EPIPE;
	if (len > MW_FRAME_MAX_PAYLOAD ||
	    len + sizeof(struct mw_frame) > mw_ring_max_record(&ch->tx))
		return -EMSGSIZE;
	p = mw_channel_reserve(ch, type, sock, len);
	if (!p)
		return ch->dead_reason[0] ? -EPIPE : -EAGAIN;
	if (len)
		memcpy(p, payload, len);
	mw_channel_commit(ch, len);
	return 0;
}

/**
 * mw_channel_flush() - kick the peer once if it sleeps on our frames or waits for room
 * @ch: the channel
 */
void mw_channel_flush(struct mw_channel *ch)
{
	bool kick;

	if (!ch->ops || ch->dead_reason[0])
		return;
	/*
	 * Wake a sleeping peer only for frames it has not been told about: a
	 * peer asleep on an ring we did not add to has nothing to do, and
	 * kicking it anyway woke mw-ins on every unrelated mw-pvm loop
	 * iteration (and two spinning loops kicked each other forever).
	 * Frames committed before the peer announced sleep are safe: its
	 * re-check after announcing sees them.
	 */
	kick = false;
	if (ch->frames_tx != ch->frames_flushed) {
		ch->frames_flushed = ch->frames_tx;
		kick = mw_ring_consumer_needs_kick(&ch->tx);
	}
	kick |= mw_ring_producer_needs_kick(&ch->rx);
	if (kick)
		channel_kick(ch);
}

/**
 * mw_channel_peer_asleep() - a hint: has the peer announced sleep on our frames?
 * @ch: the channel
 *
 * Read without fence from shared memory the peer writes: good for choosing
 * between two correct paths, never for deciding whether to kick.
 */
bool mw_channel_peer_asleep(struct mw_channel *ch)
{
	return ch->ops && !ch->dead_reason[0] && mw_ring_consumer_asleep(&ch->tx);
}

/**
 * mw_channel_recv() - the next frame, header copied out and checked
 * @ch:      the channel
 * @hdr:     the frame header (a private copy)
 * @payload: set to the payload in shared memory, valid until mw_channel_done()
 * Return: 1 frame, 0 none, -EBADMSG (the channel is dead: see dead_reason)
 */
int mw_channel_recv(struct mw_channel *ch, struct mw_frame *hdr, const void **payload)
{
	const uint8_t *rec;
	const void *r;
	uint32_t len;
	int ret;

	if (!ch->ops || ch->dead_reason[0])
		return -EBADMSG;
	ret = mw_ring_peek(&ch->rx, &r, &len);
	if (ret == 0)
		return 0;
	if (ret < 0) {
		mw_channel_kill(ch, "peer corrupted the rx ring (bad index or record header)");
		return -EBADMSG;
	}
	rec = r;
	if (len < sizeof(*hdr)) {
		channel_killf(ch, "record of %u bytes is shorter than a frame header", len);
		return -EBADMSG;
	}
	memcpy(hdr, rec, sizeof(*hdr));
	if (hdr->len != len - sizeof(*hdr) || hdr->len > MW_FRAME_MAX_PAYLOAD) {
		channel_killf(ch, "frame len %u does not match its record (%u payload bytes)",
			      hdr->len, len - (uint32_t)sizeof(*hdr));
		return -EBADMSG;
	}
	if (!channel_type_known(hdr->type)) {
		channel_killf(ch, "unknown frame type 0x%04x", hdr->type);
		return -EBADMSG;
	}
	*payload = rec + sizeof(*hdr);
	ch->frames_rx++;
	ch->bytes_rx += hdr->len;
	return 1;
}

/**
 * mw_channel_done() - release the frame returned by the last mw_channel_recv()
 * @ch: the channel
 *
 * Releases a producer blocked on a full ring at once rather than at the end
 * of our batch: an unfenced look at its flag is enough here because sleep()
 * and flush() repeat it with the fence.
 */
void mw_channel_done(struct mw_channel *ch)
{
	if (!ch->ops)
		return;
	mw_ring_consume(&ch->rx);
	if (atomic_load_explicit((_Atomic uint32_t *)&ch->rx.sh->producer_waiting,
				 memory_order_relaxed) &&
	    !ch->dead_reason[0] && mw_ring_producer_needs_kick(&ch->rx))
		channel_kick(ch);
}

/**
 * mw_channel_sleep() - prepare to block on wait_fd
 * @ch: the channel
 * Return: true if it is safe to sleep; false if frames arrived meanwhile
 */
bool mw_channel_sleep(struct mw_channel *ch)
{
	if (!ch->ops || ch->dead_reason[0])
		return true;
	if (mw_ring_producer_needs_kick(&ch->rx))
		channel_kick(ch);
	return mw_ring_consumer_sleep(&ch->rx);
}

/**
 * mw_channel_woken() - wait_fd became readable: drain it, clear the sleeping flag
 * @ch: the channel
 */
void mw_channel_woken(struct mw_channel *ch)
{
	if (!ch->ops)
		return;
	ch->ops->ack(ch);
	mw_ring_consumer_wake(&ch->rx);
}

/**
 * mw_channel_want_space() - ask to be kicked when the tx ring has room
 * @ch:  the channel
 * @len: payload bytes of the frame that did not fit
 * Return: true if the caller must wait for wait_fd; false if room appeared
 * (or the frame can never fit, or the channel is dead: the next send says so)
 */
bool mw_channel_want_space(struct mw_channel *ch, uint32_t len)
{
	uint32_t need = len + (uint32_t)sizeof(struct mw_frame);

	if (!ch->ops || ch->dead_reason[0] || len > MW_FRAME_MAX_PAYLOAD ||
	    need > mw_ring_max_record(&ch->tx))
		return false;
	mw_channel_flush(ch);
	return mw_ring_producer_wait(&ch->tx, need);
}
