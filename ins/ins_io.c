/* SPDX-License-Identifier: MIT */
/* ins_io.c - mw-ins data relay: TCP <-> ring with per-socket credit, pending buffers */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/log.h"
#include "ins/ins.h"

/*
 * Theory of operation
 *
 * Network -> PVM: a connected socket's rio runs while it has credit (bytes the
 * PVM still accepts for it).  Each wake reserves a DATA frame of
 * min(credit, 64 KiB) in the ring and recv()s straight into it; the frame is
 * committed with the bytes read, or not at all (EOF: EV_EOF; error: EV_RESET).
 * No credit: rio stops until MW_CREDIT.  Reading also stops for every socket
 * while the ring is full or control frames wait in the overflow queue (events
 * must not be overtaken by later DATA): such sockets are "parked" and resumed
 * when room appears (or by the retry timer, for listeners out of descriptors).
 *
 * PVM -> network: DATA is send()t straight from the ring; what the kernel does
 * not take is copied to the socket's pending buffer (bounded by the window we
 * granted, so it cannot grow without limit; all of them together by
 * ins.pending_total, see pend_bound()) and wio drains it.  Bytes that
 * reached the kernel are credited back in batches of window/4: the PVM then
 * always keeps at least 3/4 of the window while nothing is pending, so
 * batching cannot stall it.  OP_SHUTDOWN / OP_CLOSE wait for pending bytes.
 *
 * DATA_PIPE (local channel, version 2): the bytes wait in the channel's pipe,
 * shared by every socket in ring order, so each frame takes exactly its bytes
 * off the pipe at once: splice()d into the TCP socket by page reference, the
 * rest read into the pending buffer (a copy only when TCP is full), or read
 * and dropped when the socket can no longer send.  Fewer bytes in the pipe
 * than announced is a broken PVM: the channel dies.
 */

#define READ_FRAMES_PER_WAKE 4
#define MIN_DATA_FRAME	     4096u

static void credit_back(struct ins_sock *s, bool force)
{
	struct mw_credit cr = { 0 };
	uint32_t window = s->ins->window;

	if (!s->rx_unacked || (!force && s->rx_unacked < window / 4))
		return;
	cr.bytes = s->rx_unacked;
	s->rx_outstanding -= s->rx_unacked;
	s->rx_unacked = 0;
	ins_ctl(s->ins, MW_CREDIT, s->id, &cr, sizeof(cr));
}

/* @n bytes from the PVM reached the kernel (or were dropped for good). */
static void acked(struct ins_sock *s, uint32_t n)
{
	s->rx_unacked += n;
	credit_back(s, false);
}

/**
 * ins_io_park() - stop reading @s until ins_io_resume_parked()
 * @s: the socket
 */
void ins_io_park(struct ins_sock *s)
{
	struct ins *ins = s->ins;

	ev_io_stop(ins->loop, &s->rio);
	if (s->parked)
		return;
	s->parked = true;
	s->pprev = NULL;
	s->pnext = ins->parked;
	if (ins->parked)
		ins->parked->pprev = s;
	ins->parked = s;
	if (!ev_is_active(&ins->retry_timer))
		ev_timer_again(ins->loop, &ins->retry_timer);
}

/**
 * ins_io_unpark() - take @s off the parked list (its watcher stays as it is)
 * @s: the socket
 */
void ins_io_unpark(struct ins_sock *s)
{
	if (!s->parked)
		return;
	if (s->pprev)
		s->pprev->pnext = s->pnext;
	else
		s->ins->parked = s->pnext;
	if (s->pnext)
		s->pnext->pprev = s->pprev;
	s->parked = false;
	s->pprev = s->pnext = NULL;
}

/**
 * ins_io_resume_parked() - room appeared: let every parked socket read again
 * @ins: the daemon
 *
 * A socket that still finds no room parks itself again on its next wake.
 */
void ins_io_resume_parked(struct ins *ins)
{
	struct ins_sock *s;

	if (!ins_can_produce(ins))
		return;
	while ((s = ins->parked)) {
		ins_io_unpark(s);
		ins_io_update_read(s);
	}
}

/**
 * ins_io_update_read() - start or stop @s's read watcher from its state
 * @s: the socket
 */
void ins_io_update_read(struct ins_sock *s)
{
	struct ins *ins = s->ins;
	bool want;

	if (s->state == INS_ST_LISTENING)
		want = s->fd >= 0;
	else
		want = s->state == INS_ST_CONNECTED && s->fd >= 0 && !s->rd_done && s->credit;
	if (want && !ins_can_produce(ins)) {
		ins_io_park(s);
		return;
	}
	if (want)
		ev_io_start(ins->loop, &s->rio);
	else
		ev_io_stop(ins->loop, &s->rio);
}

/**
 * ins_io_lost() - the connection is gone (reset, send error, address block)
 * @s:   the socket
 * @err: positive errno for EV_RESET
 *
 * Reported once; pending bytes are dropped and credited so the PVM's
 * accounting stays whole; the entry lives until OP_CLOSE/OP_ABORT.
 */
void ins_io_lost(struct ins_sock *s, int err)
{
	struct mw_ev_errno e = { .err = err > 0 && err < 4096 ? err : ECONNRESET };
	struct ins *ins = s->ins;
	uint32_t early = ins_shield_out_drop(s); /* shield: already credited */

	ev_io_stop(ins->loop, &s->wio);
	if (s->pend_len) {
		s->rx_unacked += s->pend_len - early;
		ins->pend_total -= s->pend_len;
		s->pend_len = s->pend_off = 0;
	}
	credit_back(s, true);
	s->wr_dead = true;
	if (!s->rd_done) {
		s->rd_done = true;
		ev_io_stop(ins->loop, &s->rio);
		ins_io_unpark(s);
		ins_ctl(ins, MW_EV_RESET, s->id, &e, sizeof(e));
	}
	if (s->close_pending)
		ins_linger_check(s);
}

/**
 * ins_io_finish_close() - close the fd, send EV_CLOSED, forget the socket
 * @s: the socket; freed
 */
void ins_io_finish_close(struct ins_sock *s)
{
	struct ins *ins = s->ins;
	uint64_t id = s->id;

	ins_sock_free(s);
	ins_ctl(ins, MW_EV_CLOSED, id, NULL, 0);
}

static void read_some(struct ins_sock *s)
{
	struct ins *ins = s->ins;
	struct mw_ev_errno e = { 0 };
	uint32_t want;
	ssize_t n;
	void *buf;
	int i, one = 1;

	for (i = 0; i < READ_FRAMES_PER_WAKE; i++) {
		if (!ins_can_produce(ins)) {
			ins_io_park(s);
			return;
		}
		if (!s->credit) {
			ev_io_stop(ins->loop, &s->rio);
			return;
		}
		want = s->credit < MW_FRAME_MAX_PAYLOAD ? s->credit : MW_FRAME_MAX_PAYLOAD;
		buf = mw_channel_reserve(&ins->ch, MW_DATA, s->id, want);
		if (!buf && want > MIN_DATA_FRAME) {
			want = MIN_DATA_FRAME;
			buf = mw_channel_reserve(&ins->ch, MW_DATA, s->id, want);
		}
		if (!buf) {
			/* Room may have appeared meanwhile: then rio simply fires again. */
			if (!mw_channel_want_space(&ins->ch, want))
				return;
			ins->ring_full = true;
			ins_io_park(s);
			return;
		}
		n = recv(s->fd, buf, want, MSG_DONTWAIT);
		if (n > 0) {
			mw_channel_commit(&ins->ch, (uint32_t)n);
			s->credit -= (uint32_t)n;
			ins->stats.rx_bytes += (uint64_t)n;
			if (ins->tune.quickack)
				setsockopt(s->fd, IPPROTO_TCP, TCP_QUICKACK, &one, sizeof(one));
			if ((uint32_t)n < want)
				return;
			continue;
		}
		/* The reservation is dropped by not committing it. */
		if (n < 0 && (errno == EAGAIN || errno == EINTR))
			return;
		if (n == 0) {
			s->rd_done = true;
			ev_io_stop(ins->loop, &s->rio);
			ins_ctl(ins, MW_EV_EOF, s->id, NULL, 0);
			return;
		}
		e.err = errno;
		ins_io_lost(s, e.err);
		return;
	}
}

/**
 * ins_io_read_cb() - rio: accept on listeners, relay bytes on connections
 * @loop:    the loop
 * @w:       the socket's rio
 * @revents: EV_READ
 */
void ins_io_read_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	struct ins_sock *s = w->data;

	if (s->state == INS_ST_LISTENING)
		ins_sock_accept(s);
	else
		read_some(s);
}

/* A drained pending buffer larger than this is freed (allocated again from 16 KiB). */
#define PEND_KEEP_MAX (64 * 1024)

/* The socket holding the most pending bytes; @asking counts with the @len it asks for. */
static struct ins_sock *pend_largest(struct ins *ins, struct ins_sock *asking, uint32_t len)
{
	struct ins_sock *s, *big = asking;
	uint64_t most = (uint64_t)asking->pend_len + len;
	size_t i;

	/* Ties go to another socket: the one asking is the one still moving. */
	for (i = 0; i < ins->socks.nbuckets; i++)
		for (s = ins->socks.b[i]; s; s = s->hnext)
			if (s != asking && s->fd >= 0 && s->pend_len && s->pend_len >= most) {
				big = s;
				most = s->pend_len;
			}
	return big;
}

/*
 * ins.pending_total: @s is about to hold @len more pending bytes.  A client
 * that stops reading pins up to a window here, so many of them (a slow-read
 * attack) would pin a window each without bound.  Over the bound, the
 * connection holding the most (a stuck full window) is reset, again while
 * still over.  The linear scan over the table runs only when the bound is hit.
 * Return: 0, or -ECONNRESET if @s itself was the largest and is now reset
 * (then it holds nothing; it is not freed: ins_io_data() never appends for a
 * closing socket, the only kind a reset frees).
 */
static int pend_bound(struct ins_sock *s, uint32_t len)
{
	struct ins *ins = s->ins;
	uint64_t max = (uint64_t)ins->cfg->pending_total;
	struct ins_sock *big;
	unsigned long long id;
	uint32_t held;
	bool self;

	while (ins->pend_total + len > max) {
		big = pend_largest(ins, s, len);
		self = big == s;
		id = (unsigned long long)big->id;
		held = big->pend_len;
		ins->pend_resets++;
		ins_sock_reset(big); /* may free big */
		mw_log_ratelimited(MW_LOG_WARN,
				   "pending total reached: socket %#llx reset, %u bytes held "
				   "(%llu of %llu bytes pending now, %llu resets so far)",
				   id, held, (unsigned long long)ins->pend_total,
				   (unsigned long long)max, (unsigned long long)ins->pend_resets);
		if (self)
			return -ECONNRESET;
	}
	return 0;
}

/*
 * Room for @len more pending bytes at *@dst (then pend_added()).
 * Return: 0, -ENOMEM, or -ECONNRESET if pend_bound() reset @s.
 */
static int pend_reserve(struct ins_sock *s, uint32_t len, uint8_t **dst)
{
	uint32_t need, ncap;
	uint8_t *nb;
	int ret = pend_bound(s, len);

	if (ret)
		return ret;
	need = s->pend_len + len;

	if (s->pend_off && s->pend_off + need > s->pend_cap) {
		memmove(s->pend, s->pend + s->pend_off, s->pend_len);
		s->pend_off = 0;
	}
	if (s->pend_off + need > s->pend_cap) {
		ncap = s->pend_cap ? s->pend_cap : 16384;
		while (ncap < need)
			ncap *= 2;
		nb = realloc(s->pend, ncap);
		if (!nb)
			return -ENOMEM;
		s->pend = nb;
		s->pend_cap = ncap;
	}
	*dst = s->pend + s->pend_off + s->pend_len;
	return 0;
}

static void pend_added(struct ins_sock *s, uint32_t len)
{
	s->pend_len += len;
	s->ins->pend_total += len;
}

/* Pending drained: apply what waited for it. */
static void drained(struct ins_sock *s)
{
	struct ins *ins = s->ins;

	ev_io_stop(ins->loop, &s->wio);
	credit_back(s, true);
	if (s->shut_pending >= 0) {
		if (shutdown(s->fd, s->shut_pending == SHUT_RDWR ? SHUT_WR : s->shut_pending) < 0)
			mw_log_ratelimited(MW_LOG_INFO, "socket %#llx: deferred shutdown: %s",
					   (unsigned long long)s->id, strerror(errno));
		s->shut_pending = -1;
	}
	if (s->close_pending)
		ins_linger_check(s);
}

/*
 * Push pending bytes to the kernel until it takes no more.
 * Return: true if none are left (the caller then calls drained()); false if
 * some wait for wio, or the connection was lost (wr_dead).
 */
static bool pend_push(struct ins_sock *s)
{
	struct ins *ins = s->ins;
	ssize_t n;

	while (s->pend_len) {
		n = send(s->fd, s->pend + s->pend_off, s->pend_len, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (n < 0) {
			if (errno != EAGAIN && errno != EINTR)
				ins_io_lost(s, errno);
			else
				acked(s, ins_shield_out_more(s)); /* shield: OUT_BUFFER */
			return false;
		}
		s->pend_off += (uint32_t)n;
		s->pend_len -= (uint32_t)n;
		ins->pend_total -= (uint64_t)n;
		ins->stats.tx_bytes += (uint64_t)n;
		acked(s, ins_shield_out_sent(s, (uint32_t)n)); /* shield: less what went early */
	}
	s->pend_off = 0;
	if (s->pend_cap > PEND_KEEP_MAX) {
		/* A client that caught up should not keep a window's worth pinned. */
		free(s->pend);
		s->pend = NULL;
		s->pend_cap = 0;
	}
	return true;
}

/**
 * ins_io_write_cb() - wio: push pending bytes to the kernel
 * @loop:    the loop
 * @w:       the socket's wio
 * @revents: EV_WRITE
 */
void ins_io_write_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	struct ins_sock *s = w->data;

	if (pend_push(s))
		drained(s);
}

/*
 * Checks common to DATA and DATA_PIPE; counts @len as outstanding.
 * Return: 0 to send, 1 if the socket cannot send any more (drop the bytes,
 * acked here), -EBADMSG if the PVM broke the protocol
 */
static int data_admit(struct ins_sock *s, const char *type, uint32_t len, char *why, size_t wl)
{
	struct ins *ins = s->ins;

	if (len > ins->window - s->rx_outstanding) {
		snprintf(why, wl, "%s %u bytes on %#llx beyond the credit granted (%u)", type, len,
			 (unsigned long long)s->id, ins->window - s->rx_outstanding);
		return -EBADMSG;
	}
	if (s->state != INS_ST_CONNECTED && s->state != INS_ST_CLOSING) {
		snprintf(why, wl, "%s on %#llx which is not connected", type,
			 (unsigned long long)s->id);
		return -EBADMSG;
	}
	s->rx_outstanding += len;
	if (s->fd < 0 || s->wr_dead || s->close_pending) {
		acked(s, len);
		return 1;
	}
	return 0;
}

/* Sent @n of what came in (a send error or EAGAIN has been dealt with). */
static void data_sent(struct ins_sock *s, uint32_t n)
{
	s->ins->stats.tx_bytes += (uint64_t)n;
	if (n)
		acked(s, n);
}

/*
 * @len bytes could not be kept as pending (pend_reserve() failed with @ret):
 * the stream ends with a reset.
 */
static void pend_failed(struct ins_sock *s, uint32_t len, int ret)
{
	acked(s, len);
	if (ret == -ENOMEM)
		ins_io_lost(s, ENOMEM);
	else
		credit_back(s, true); /* reset by pend_bound(): not freed */
}

/* Bytes are pending now: drain them when TCP has room. */
static void pend_wait(struct ins_sock *s)
{
	ev_io_start(s->ins->loop, &s->wio);
	acked(s, ins_shield_out_more(s)); /* shield: OUT_BUFFER, MIN_OUT_RATE */
}

/**
 * ins_io_data() - DATA from the PVM for @s
 * @s:    the socket
 * @data: the payload, in the ring (only read here, copied if it must wait)
 * @len:  1..64 KiB
 * @why:  reason on failure
 * @wl:   its size
 * Return: 0, or -EBADMSG if the PVM broke the protocol (beyond credit, wrong state)
 */
int ins_io_data(struct ins_sock *s, const void *data, uint32_t len, char *why, size_t wl)
{
	const uint8_t *p = data;
	uint8_t *dst;
	ssize_t n = 0;
	int ret = data_admit(s, "DATA", len, why, wl);

	if (ret)
		return ret < 0 ? ret : 0;
	if (!s->pend_len) {
		n = send(s->fd, p, len, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (n < 0) {
			if (errno != EAGAIN && errno != EINTR) {
				acked(s, len);
				ins_io_lost(s, errno);
				return 0;
			}
			n = 0;
		}
		data_sent(s, (uint32_t)n);
		if ((uint32_t)n == len)
			return 0;
	}
	len -= (uint32_t)n;
	ret = pend_reserve(s, len, &dst);
	if (ret) {
		pend_failed(s, len, ret);
		return 0;
	}
	memcpy(dst, p + n, len);
	pend_added(s, len);
	pend_wait(s);
	return 0;
}

/*
 * Read exactly @len bytes of the data pipe into @dst, or into nowhere if
 * @dst is NULL.  Return: 0, or -EBADMSG if fewer were there (a broken PVM).
 */
static int pipe_take(struct ins *ins, uint8_t *dst, uint32_t len, char *why, size_t wl)
{
	static uint8_t sink[16384]; /* dropped bytes land here (one thread) */
	uint32_t left = len;
	ssize_t n;

	while (left) {
		if (dst)
			n = read(ins->ch.pipe_fd, dst, left);
		else
			n = read(ins->ch.pipe_fd, sink, left < sizeof(sink) ? left : sizeof(sink));
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			snprintf(why, wl, "DATA_PIPE: %u of %u bytes announced are not in the pipe",
				 left, len);
			return -EBADMSG;
		}
		left -= (uint32_t)n;
		if (dst)
			dst += n;
	}
	return 0;
}

/**
 * ins_io_data_pipe() - DATA_PIPE from the PVM: @len bytes of @s wait in the data pipe
 * @s:   the socket
 * @len: 1..MW_PIPE_FRAME_MAX (checked by mw_proto_check)
 * @why: reason on failure
 * @wl:  its size
 * Return: 0, or -EBADMSG (beyond credit, wrong state, no pipe, bytes missing)
 */
int ins_io_data_pipe(struct ins_sock *s, uint32_t len, char *why, size_t wl)
{
	struct ins *ins = s->ins;
	uint32_t step;
	uint8_t *dst;
	ssize_t n = 0;
	int ret;

	if (ins->ch.pipe_fd < 0) {
		snprintf(why, wl, "DATA_PIPE on a channel without a data pipe");
		return -EBADMSG;
	}
	ret = data_admit(s, "DATA_PIPE", len, why, wl);
	if (ret)
		return ret < 0 ? ret : pipe_take(ins, NULL, len, why, wl);
	/* What waits goes first, and if TCP takes it all these bytes need no copy. */
	if (s->pend_len && pend_push(s))
		drained(s);
	if (s->wr_dead) {
		acked(s, len);
		return pipe_take(ins, NULL, len, why, wl);
	}
	if (!s->pend_len) {
		n = splice(ins->ch.pipe_fd, NULL, s->fd, NULL, len, SPLICE_F_NONBLOCK | SPLICE_F_MOVE);
		if (n < 0) {
			/* EINVAL: no splice here after all; the copy below still works */
			if (errno != EAGAIN && errno != EINTR && errno != EINVAL) {
				acked(s, len);
				ins_io_lost(s, errno);
				return pipe_take(ins, NULL, len, why, wl);
			}
			n = 0;
		}
		data_sent(s, (uint32_t)n);
		ins->pipe_spliced += (uint64_t)n;
		if ((uint32_t)n == len)
			return 0;
	}
	/*
	 * The rest waits in the pending buffer, appended a DATA frame's worth at
	 * a time: ins.pending_total then weighs this socket as it would the same
	 * bytes in DATA frames, not as one 1 MiB step that makes it the largest.
	 */
	for (len -= (uint32_t)n; len; len -= step) {
		step = len < MW_FRAME_MAX_PAYLOAD ? len : MW_FRAME_MAX_PAYLOAD;
		ret = pend_reserve(s, step, &dst);
		if (ret) {
			pend_failed(s, len, ret);
			return pipe_take(ins, NULL, len, why, wl);
		}
		ret = pipe_take(ins, dst, step, why, wl);
		if (ret)
			return ret;
		ins->pipe_copied += step;
		pend_added(s, step);
		pend_wait(s);
	}
	return 0;
}

/**
 * ins_io_credit() - the PVM drained @bytes of what we sent for @s
 * @s:     the socket
 * @bytes: 1.. (checked by mw_proto_check)
 * @why:   reason on failure
 * @wl:    its size
 * Return: 0, or -EBADMSG if it returns more than was ever outstanding
 */
int ins_io_credit(struct ins_sock *s, uint32_t bytes, char *why, size_t wl)
{
	uint32_t window = s->ins->peer_window;

	if (bytes > window - s->credit) {
		snprintf(why, wl, "CREDIT %u on %#llx exceeds what was sent", bytes,
			 (unsigned long long)s->id);
		return -EBADMSG;
	}
	s->credit += bytes;
	if (!s->parked)
		ins_io_update_read(s);
	return 0;
}
