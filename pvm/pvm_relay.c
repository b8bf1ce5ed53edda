/* SPDX-License-Identifier: MIT */
/* pvm_relay.c - bytes between the app's AF_UNIX sockets and the INS rings, with credits */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/log.h"
#include "pvm/observe.h"
#include "pvm/pvm.h"

/*
 * Theory of operation
 *
 * app -> INS: when the app's socket is readable and the socket has tx credit,
 * reserve a DATA frame of min(credit, 64 KiB) in the ring and read() straight
 * into it; commit what was read.  No credit: stop reading until MW_CREDIT.
 * Ring full: stop reading, park the socket on ins->blocked, resume on wake-up.
 * A read of 0 is the app's FIN: OP_SHUTDOWN(SHUT_WR), or OP_CLOSE when the app
 * closed its end completely (POLLHUP) or our direction is already shut too.
 *
 * Peek, kick, then consume: taking bytes off the app's socket frees their
 * skbs, and the kernel then wakes every thread waiting on that socket for
 * write space, also an app blocked in read() for its reply, for nothing
 * (docs/benchmarks.md, B7).  That wake-up must not come before the INS's
 * kick: on a busy CPU it preempts mw-pvm and puts a useless run of the app
 * on the round trip.
 * So when the INS sleeps (only then is there a kick to put first), a small
 * message (the previous read did not fill a frame) is copied into the ring
 * with MSG_PEEK, the frame is published and the INS kicked, and only then are
 * the bytes consumed (a second, small copy and system call).  Bulk reads (one
 * that fills its frame) and reads while the INS is awake (busy, as under
 * load) read directly.  So does a message after which the app has shut its
 * end (POLLRDHUP: an HTTP server's last response before its close): nobody
 * waits for its room, and its EOF is read at once behind it, so the DATA and
 * the OP_SHUTDOWN/OP_CLOSE reach the INS with one kick, not two wake-ups.
 *
 * Bulk over a local channel with a data pipe (protocol version 2): the bytes
 * move by page reference instead, splice()d from the app's socket into the
 * channel's pipe and announced by a small DATA_PIPE frame in the ring, whose
 * order is the pipe's.  mw-ins splices them on into TCP: no copy in either
 * daemon, and for an app that sendfile()s, none at all.  The splice runs on
 * the INS's splicer thread (pvm_splice.c), because the INS can hold the
 * pipe's lock and this loop must never sleep on it, and the loop does not
 * wait for it: one job per INS in flight; its socket stops reading, and the
 * INS's control frames queue (everything the app does after those bytes
 * must reach the INS after them) until the thread reports, when the frame
 * is committed with the splice's count (Netflow's bytes stay exact; credit
 * is spent as for DATA) and the queue thaws.  Other sockets of the INS use
 * the ring meanwhile; a job that moved nothing (a full pipe) makes the next
 * read go to the ring.
 *
 * INS -> app: write() straight from the ring; what the app's socket does not
 * take is copied into the socket's pending buffer and written when the fd is
 * writable.  Bytes that reach the app are credited back in batches (>= window/4,
 * or when the pending buffer drains).  EV_EOF shuts the app's read side after
 * pending data; EV_RESET closes the app end after pending data.
 *
 * Pending buffers are where a client's bytes wait for an app that has not taken
 * them (a connection not accepted yet, or an app that does not read): PEND_MIN
 * bytes, doubled as needed up to the window we granted, and freed when it drains.  All of them
 * together hold at most pvm.pending_total: a buffer that would go beyond first makes room by
 * resetting the connections holding larger buffers, largest first, and is itself reset if none is
 * larger (a client with a request waiting costs what it sent, rounded up to a power of two; the
 * ones that fill windows go first).  But a connection whose app reads it (app_read: a write went
 * through after one found the app's socket full, so the app took bytes out) is spared for the
 * ones whose app has read nothing (not accepted yet, or never read): an upload the app is reading
 * gives way neither to a flood of connections the app has not taken, larger or not, nor to one
 * the same size as itself, whose room it takes instead.  A connection whose app has read nothing
 * (or nothing for PEND_STALE_S) takes the room of a larger one whose app has read only if that
 * app stopped reading it PEND_STALE_S ago; between two the app reads, the larger goes first.
 * Buffers are on rings by whether the app has read and by size class, the least recently read or
 * linked at the tail, so finding a victim costs a walk over the classes, not over the connections.
 */

#define RELAY_READS_PER_EVENT 8
#define PEND_MIN_SHIFT	      10
#define PEND_MIN	      (1u << PEND_MIN_SHIFT)
#define PEND_STALE_S	      2.0 /* an app that read nothing for this long is not reading */

static void relay_block(struct pvm_sock *s)
{
	struct pvm_ins *ins = s->ins;

	ev_io_stop(s->pvm->loop, &s->rio);
	if (s->blocked)
		return;
	s->blocked = true;
	s->blk_next = ins->blocked;
	ins->blocked = s;
}

static void relay_unblock(struct pvm_sock *s)
{
	struct pvm_sock **pp;

	if (!s->blocked || !s->ins)
		return;
	for (pp = &s->ins->blocked; *pp; pp = &(*pp)->blk_next) {
		if (*pp == s) {
			*pp = s->blk_next;
			break;
		}
	}
	s->blocked = false;
	s->blk_next = NULL;
}

/* The app closed its end (or broke it): tell the INS, forget the fd. */
static void relay_app_gone(struct pvm_sock *s, bool abort)
{
	pvm_relay_detach(s);
	pvm_sock_close(s, abort);
}

/* The class of buffers of @cap bytes: the power of two at or below it. */
static unsigned pend_class_of(uint32_t cap)
{
	unsigned c = 31 - (unsigned)__builtin_clz(cap | PEND_MIN) - PEND_MIN_SHIFT;

	return c < PVM_PEND_CLASSES ? c : PVM_PEND_CLASSES - 1;
}

/* The ring @s's buffer is on. */
static struct pvm_sock **pend_class(struct pvm_sock *s)
{
	return &s->pvm->pend_class[s->app_read > 0][pend_class_of(s->pend_cap)];
}

/*
 * Put @s on its ring: at the head, unless its app read less recently than the head's
 * (a buffer that grew into another class), then at the tail: the tail stays the
 * least recently read, or nearly.
 */
static void pend_link(struct pvm_sock *s)
{
	struct pvm_sock **head = pend_class(s);

	if (!*head) {
		s->pend_next = s->pend_prev = s;
		*head = s;
		return;
	}
	s->pend_next = *head;
	s->pend_prev = (*head)->pend_prev;
	s->pend_prev->pend_next = s;
	(*head)->pend_prev = s;
	if (s->app_read >= (*head)->app_read)
		*head = s;
}

static void pend_unlink(struct pvm_sock *s)
{
	struct pvm_sock **head = pend_class(s);

	if (s->pend_next == s) {
		*head = NULL;
	} else {
		s->pend_prev->pend_next = s->pend_next;
		s->pend_next->pend_prev = s->pend_prev;
		if (*head == s)
			*head = s->pend_next;
	}
	s->pend_next = s->pend_prev = NULL;
}

static void pend_free(struct pvm_sock *s)
{
	if (!s->pend)
		return;
	pend_unlink(s);
	s->pvm->pend_bytes -= s->pend_cap;
	free(s->pend);
	s->pend = NULL;
	s->pend_off = s->pend_len = s->pend_cap = 0;
}

/* The tail (least recently linked or read) of ring @c of @read, other than @s, or NULL. */
static struct pvm_sock *pend_tail(const struct pvm *p, bool read, int c, const struct pvm_sock *s)
{
	struct pvm_sock *h = p->pend_class[read][c], *t;

	if (!h)
		return NULL;
	t = h->pend_prev;
	if (t == s)
		t = t == h ? NULL : t->pend_prev;
	return t;
}

/* Whose buffer gives way to @s's growing to @cap bytes (see the theory above), or NULL. */
static struct pvm_sock *pend_victim(const struct pvm_sock *s, uint32_t cap)
{
	const struct pvm *p = s->pvm;
	ev_tstamp now = ev_now(p->loop);
	int c, lo = (int)pend_class_of(cap);
	bool read = s->app_read > 0 && now - s->app_read < PEND_STALE_S; /* it reads now */
	struct pvm_sock *t;

	for (c = PVM_PEND_CLASSES - 1; c >= lo; c--) { /* those whose app read nothing */
		t = pend_tail(p, false, c, s);
		if (!t)
			continue;
		if (t->pend_cap > cap || (read && t->pend_cap >= cap))
			return t;
		break; /* the largest of them is not larger: the others are not either */
	}
	for (c = PVM_PEND_CLASSES - 1; c >= lo; c--) { /* those whose app read */
		t = pend_tail(p, true, c, s);
		if (t && t->pend_cap > cap && (read || now - t->app_read >= PEND_STALE_S))
			return t;
	}
	return NULL;
}

/* The app took bytes out of @s's full socket: it reads (see the theory above). */
static void pend_app_read(struct pvm_sock *s)
{
	if (s->pend)
		pend_unlink(s);
	s->app_read = ev_now(s->pvm->loop);
	if (s->pend)
		pend_link(s);
}

/*
 * Room in @s's pending buffer for @add more bytes, within pvm.pending_total (see the
 * theory above).  Return: 0, -ENOBUFS (@s is among the largest: reset it), -ENOMEM
 */
static int pend_reserve(struct pvm_sock *s, uint32_t add)
{
	struct pvm *p = s->pvm;
	uint32_t need = s->pend_len + add, cap = PEND_MIN;
	uint64_t limit = (uint64_t)p->cfg->pending_total;
	struct pvm_sock *big;
	uint8_t *nb;

	if (s->pend && s->pend_off + need <= s->pend_cap)
		return 0;
	if (s->pend && s->pend_off) { /* the bytes to the front: room behind, or before realloc */
		memmove(s->pend, s->pend + s->pend_off, s->pend_len);
		s->pend_off = 0;
	}
	if (s->pend && need <= s->pend_cap)
		return 0;
	while (cap < need)
		cap *= 2;
	if (cap > s->cr.rx_window && need <= s->cr.rx_window)
		cap = s->cr.rx_window; /* pending bytes are credit outstanding: <= window */
	while (p->pend_bytes - s->pend_cap + cap > limit) {
		big = pend_victim(s, cap);
		if (!big)
			return -ENOBUFS;
		p->pend_resets++;
		mw_log_ratelimited(MW_LOG_WARN,
				   "socket %#llx reset: its %u pending byte(s) make room for "
				   "socket %#llx within pvm.pending_total (%llu reset so far)",
				   (unsigned long long)big->id, big->pend_len,
				   (unsigned long long)s->id, (unsigned long long)p->pend_resets);
		relay_app_gone(big, true);
	}
	nb = realloc(s->pend, cap);
	if (!nb)
		return -ENOMEM;
	if (s->pend)
		pend_unlink(s);
	p->pend_bytes += cap - s->pend_cap;
	s->pend = nb;
	s->pend_cap = cap;
	pend_link(s);
	return 0;
}

/*
 * A write to the app failed with EPIPE.  If the app only shut its read side
 * (it can still write: our end has not seen its EOF), TCP would accept and
 * ignore what the peer sends, so the bytes are dropped and credited back.
 * If the app closed (or shut both ways) the peer gets a reset, as from TCP.
 * Return: true if the bytes were dropped and the connection lives on
 */
static bool relay_app_shut_rd(struct pvm_sock *s)
{
	struct pollfd pfd = { .fd = s->fd, .events = POLLRDHUP };

	if (errno != EPIPE || poll(&pfd, 1, 0) < 0)
		return false;
	return !(pfd.revents & (POLLRDHUP | POLLHUP | POLLERR));
}

static void relay_credit_back(struct pvm_sock *s, uint32_t n, bool force)
{
	struct mw_credit c = { 0 };

	c.bytes = pvm_credit_rx_drained(&s->cr, n, force);
	if (c.bytes && s->ins)
		pvm_ins_ctl(s->ins, MW_CREDIT, s->id, &c, sizeof(c));
}

static void relay_app_eof(struct pvm_sock *s)
{
	struct pollfd pfd = { .fd = s->fd, .events = 0 };
	struct mw_op_int op = { .value = SHUT_WR };

	s->app_eof = true;
	ev_io_stop(s->pvm->loop, &s->rio);
	/* POLLHUP: the app closed the socket, not just shut its write side (final once seen). */
	if ((s->net_eof && !s->pend_len) || s->app_hup ||
	    (poll(&pfd, 1, 0) == 1 && (pfd.revents & POLLHUP))) {
		relay_app_gone(s, false);
		return;
	}
	if (pvm_ins_op(s->ins, MW_OP_SHUTDOWN, s->id, &op, sizeof(op), PVM_REQ_QUIET, NULL, NULL))
		relay_app_gone(s, true);
	else
		pvm_connect_watch_hup(s); /* it may still read; when it closes, so do we */
}

/*
 * Has the app shut its end (its EOF follows what is queued)?  Both answers
 * are final once seen, so they are kept: a response and the close that
 * follows it cost one poll(), not one per read and one more at the EOF.
 */
static bool app_shut(struct pvm_sock *s)
{
	struct pollfd p = { .fd = s->fd, .events = POLLRDHUP };

	if (!s->app_shut && poll(&p, 1, 0) == 1 && (p.revents & (POLLRDHUP | POLLHUP))) {
		s->app_shut = true;
		s->app_hup = (p.revents & POLLHUP) != 0;
	}
	return s->app_shut;
}

/*
 * Read up to @want bytes of the app's into the reservation @buf and commit
 * them, peeking and kicking before consuming when the message is small (see
 * the top of this file).  *@eof_next is set when the app's EOF follows.
 * Return: as read(); the bytes are committed if > 0.
 */
static ssize_t relay_read(struct pvm_sock *s, void *buf, uint32_t want, bool *eof_next)
{
	struct pvm_ins *ins = s->ins;
	uint8_t sink[1024];
	ssize_t n, got;
	bool direct = s->bulk || !mw_channel_peer_asleep(&ins->ch);

	if (!direct && app_shut(s))
		direct = *eof_next = true;
	if (direct) {
		n = read(s->fd, buf, want);
		if (n > 0) {
			mw_channel_commit(&ins->ch, (uint32_t)n);
			pvm_credit_tx_use(&s->cr, (uint32_t)n);
			s->bulk = (uint32_t)n == want;
		}
		return n;
	}
	n = recv(s->fd, buf, want < sizeof(sink) ? want : sizeof(sink), MSG_PEEK | MSG_DONTWAIT);
	if (n <= 0)
		return n;
	if ((size_t)n == sizeof(sink) && want > sizeof(sink)) {
		/* Not small: read it all now, directly (the peeked bytes come again). */
		s->bulk = true;
		return relay_read(s, buf, want, eof_next);
	}
	mw_channel_commit(&ins->ch, (uint32_t)n);
	pvm_credit_tx_use(&s->cr, (uint32_t)n);
	mw_channel_flush(&ins->ch);
	/* Only mw-pvm reads this socket: the peeked bytes are still first. */
	got = read(s->fd, sink, (size_t)n);
	if (got != n) {
		mw_warn("socket 0x%016llx: %zd of %zd peeked bytes consumed", (unsigned long long)s->id,
			got, n);
		s->bytes_out += (uint64_t)n; /* they are in the ring: count what the INS gets */
		errno = EIO;
		return -1;
	}
	return n;
}

/* A splice at least this large keeps the socket in bulk mode. */
#define RELAY_BULK_MIN (MW_FRAME_MAX_PAYLOAD / 4)

/*
 * Bulk through the channel's data pipe (see the top of this file): hand up to
 * @credit bytes to the INS's splicer and stop reading @s until the job ends
 * (pvm_relay_splice_done()).  Meanwhile the INS's control frames wait, so
 * whatever the app does next reaches the INS after these bytes.
 * Return: true if the job was submitted; false: read into the ring instead
 * (the splicer is busy with another socket, or no fd for the job)
 */
static bool relay_splice(struct pvm_sock *s, uint32_t credit)
{
	struct pvm_ins *ins = s->ins;

	if (ins->splice_sock || pvm_splicer_submit(ins->splicer, s->fd,
						   credit < MW_PIPE_FRAME_MAX ? credit
									      : MW_PIPE_FRAME_MAX))
		return false;
	ins->splice_sock = s->id;
	s->splicing = true;
	ev_io_stop(s->pvm->loop, &s->rio);
	pvm_ins_splice_timer(ins, s->pvm->cfg->splice_timeout_ms / 1000.0);
	return true;
}

/* The job's socket, if it still relays: its bytes are counted, its reading resumed. */
static void relay_splice_ended(struct pvm_sock *s, ssize_t n, int err)
{
	s->splicing = false;
	if (n > 0) {
		pvm_credit_tx_use(&s->cr, (uint32_t)n);
		s->bytes_out += (uint64_t)n;
		s->bulk = n >= RELAY_BULK_MIN;
		if (pvm_observe_active())
			pvm_observe_sock(PVM_OBS_SEND, s, 0);
	}
	if (s->fd < 0 || s->app_eof || s->state != PVM_ST_CONNECTED)
		return;
	if (n == 0) {
		relay_app_eof(s);
	} else if (n < 0 && err == ECONNRESET) {
		/* Reported once, and the splice took it: a reset stays a reset. */
		relay_app_gone(s, true);
	} else {
		/* A full pipe, nothing to read, an INS that closed its end: the ring next. */
		s->no_splice = n < 0;
		pvm_relay_start(s);
	}
}

/**
 * pvm_relay_splice_done() - the INS's splicer reports: announce the bytes, thaw the INS
 * @ins: the INS
 *
 * The DATA_PIPE frame goes before every control frame queued meanwhile (a
 * full ring puts it at the head of the queue), even if the socket has gone
 * since: its bytes are in the pipe, and the INS, which still knows the
 * socket (its close is among the queued frames), takes them off.
 */
void pvm_relay_splice_done(struct pvm_ins *ins)
{
	struct mw_data_pipe dp = { 0 };
	struct pvm_sock *s;
	uint64_t id = ins->splice_sock;
	ssize_t n;
	int err;

	if (!ins->splicer || !pvm_splicer_result(ins->splicer, &n, &err))
		return;
	ev_timer_stop(ins->pvm->loop, &ins->splice_timer);
	ins->splice_sock = 0;
	if (n > 0) {
		dp.len = (uint32_t)n;
		if (mw_channel_send(&ins->ch, MW_DATA_PIPE, id, &dp, sizeof(dp)) == -EAGAIN)
			pvm_ins_ctl_first(ins, MW_DATA_PIPE, id, &dp, sizeof(dp));
	}
	if (n < 0 && err == EPIPE) {
		/* The INS closed its end of the pipe: the ring from now on, no job each time. */
		mw_warn("INS %u: its data pipe has no reader: bulk goes through the ring", ins->id);
		ev_io_stop(ins->pvm->loop, &ins->splice_io);
		pvm_splicer_free(ins->splicer);
		ins->splicer = NULL;
	}
	s = pvm_sock_find(ins->pvm, id);
	if (s && s->ins == ins && s->splicing)
		relay_splice_ended(s, n, err);
	pvm_ins_flush(ins);
}

/**
 * pvm_relay_splice_stuck() - a splice has run past pvm.splice_timeout_ms: the INS holds the pipe
 * @ins: the INS; cut at the next prepare
 */
void pvm_relay_splice_stuck(struct pvm_ins *ins)
{
	char why[96];

	snprintf(why, sizeof(why), "a splice into its data pipe took over %d ms",
		 ins->pvm->cfg->splice_timeout_ms);
	pvm_ins_cut(ins, why);
	/* The stuck splice has its own fd (even if ours is closed already): end the
	 * connection itself, so the app sees its end now and the late splice finds nothing. */
	pvm_splicer_shutdown(ins->splicer);
}

/*
 * Move what the app wrote into DATA frames, within credit and ring room.
 * Never tears anything down: Return 0 (drained, or waiting for credit/room),
 * 1 if the app's end reads EOF, -1 if it broke (errno set).
 */
static int relay_move(struct pvm_sock *s)
{
	struct pvm_ins *ins = s->ins;
	uint64_t before = s->bytes_out;
	uint32_t want;
	ssize_t n;
	void *buf;
	int i, ret = 0;
	bool eof_next = false;

	for (i = 0; i < RELAY_READS_PER_EVENT; i++) {
		want = s->cr.tx_credit < MW_FRAME_MAX_PAYLOAD ? s->cr.tx_credit
							      : MW_FRAME_MAX_PAYLOAD;
		if (!want) {
			ev_io_stop(s->pvm->loop, &s->rio); /* resumed by MW_CREDIT */
			break;
		}
		if (ins->q) {
			relay_block(s); /* queued control frames go first */
			break;
		}
		if (s->bulk && ins->splicer && !s->no_splice && relay_splice(s, s->cr.tx_credit))
			break; /* pvm_relay_splice_done() goes on */
		s->no_splice = false;
		buf = mw_channel_reserve(&ins->ch, MW_DATA, s->id, want);
		if (!buf) {
			if (ins->ch.dead_reason[0]) {
				ev_io_stop(s->pvm->loop, &s->rio);
				break;
			}
			if (mw_channel_want_space(&ins->ch, want)) {
				relay_block(s);
				break;
			}
			continue;
		}
		n = relay_read(s, buf, want, &eof_next);
		if (n > 0) {
			s->bytes_out += (uint64_t)n;
			if ((uint32_t)n < want && !eof_next)
				break; /* drained: save the EAGAIN round trip */
			continue;
		}
		/* Nothing committed: the reservation is simply not published. */
		if (n == 0)
			ret = 1;
		else if (errno != EAGAIN && errno != EINTR)
			ret = -1;
		break;
	}
	if (s->bytes_out != before && pvm_observe_active())
		pvm_observe_sock(PVM_OBS_SEND, s, 0);
	return ret;
}

static void relay_pump(struct pvm_sock *s)
{
	int ret = relay_move(s);

	if (ret > 0)
		relay_app_eof(s);
	else if (ret < 0)
		relay_app_gone(s, true);
}

/**
 * pvm_relay_flush() - put what the app wrote so far into the ring now
 * @s: the socket (never freed here: EOF and errors are left to the read watcher)
 *
 * A socket option must act after the bytes written before it, as in the
 * kernel: nginx uncorks (TCP_CORK 0) right after writing a response, and an
 * uncork that overtook the response left it to Nagle and delayed ACKs (40 ms
 * per request).  Called before an option goes to the INS; what credit or ring
 * room does not allow stays behind (the option then goes first, as before).
 */
void pvm_relay_flush(struct pvm_sock *s)
{
	int avail = 0;

	if (s->fd < 0 || s->app_eof || s->state != PVM_ST_CONNECTED || s->blocked || !s->ins ||
	    s->splicing)
		return; /* splicing: the option waits behind the splice (pvm_ins_ctl()) */
	if (ioctl(s->fd, FIONREAD, &avail) || avail <= 0)
		return;
	relay_move(s);
}

static void relay_read_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	relay_pump(w->data);
}

/* Pending data for the app fully written: apply what waited for it. */
static void relay_drained(struct pvm_sock *s)
{
	if (s->net_reset) {
		relay_app_gone(s, false);
		return;
	}
	if (s->net_eof) {
		shutdown(s->fd, SHUT_WR);
		if (s->app_eof)
			relay_app_gone(s, false);
	}
}

static void relay_write_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	struct pvm_sock *s = w->data;
	ssize_t n;

	n = write(s->fd, s->pend + s->pend_off, s->pend_len);
	if (n > 0 && s->app_full)
		pend_app_read(s);
	s->app_full = n < (ssize_t)s->pend_len;
	if (n < 0) {
		if (errno == EAGAIN || errno == EINTR)
			return;
		if (!relay_app_shut_rd(s)) {
			relay_app_gone(s, true);
			return;
		}
		/* The app reads no more: what waited for it is dropped. */
		relay_credit_back(s, s->pend_len, true);
		pend_free(s);
		ev_io_stop(loop, &s->wio);
		relay_drained(s);
		return;
	}
	s->pend_off += (uint32_t)n;
	s->pend_len -= (uint32_t)n;
	s->bytes_in += (uint64_t)n;
	if (s->pend_len) {
		relay_credit_back(s, (uint32_t)n, false);
		return;
	}
	pend_free(s); /* drained: an idle connection holds nothing against pvm.pending_total */
	ev_io_stop(loop, &s->wio);
	relay_credit_back(s, (uint32_t)n, true);
	if (pvm_observe_active())
		pvm_observe_sock(PVM_OBS_RECV, s, 0);
	relay_drained(s);
}

/**
 * pvm_relay_attach() - give a connection its app end and relay if it is established
 * @s:  the socket; may be closed before return (do not use it afterwards)
 * @fd: mw-pvm's end of the app's AF_UNIX stream socket (non-blocking)
 *
 * Data, EOF or reset that arrived before the app's data connection (an
 * outgoing connection whose server spoke first) are delivered now.
 */
void pvm_relay_attach(struct pvm_sock *s, int fd)
{
	s->fd = fd;
	ev_io_init(&s->rio, relay_read_cb, fd, EV_READ);
	s->rio.data = s;
	ev_io_init(&s->wio, relay_write_cb, fd, EV_WRITE);
	s->wio.data = s;
	if (s->state != PVM_ST_CONNECTED)
		return;
	if (s->pend_len) {
		ev_io_start(s->pvm->loop, &s->wio);
	} else if (s->net_eof || s->net_reset) {
		relay_drained(s);
		if (s->net_reset)
			return;
	}
	pvm_relay_start(s);
}

/**
 * pvm_relay_start() - begin relaying app -> INS (the connection is established)
 * @s: the socket
 */
void pvm_relay_start(struct pvm_sock *s)
{
	if (s->fd < 0 || s->app_eof || s->state != PVM_ST_CONNECTED || s->blocked || !s->ins ||
	    s->splicing)
		return;
	ev_io_start(s->pvm->loop, &s->rio);
}

/**
 * pvm_relay_detach() - stop relaying, close the app end, drop pending data
 * @s: the socket
 */
void pvm_relay_detach(struct pvm_sock *s)
{
	relay_unblock(s);
	if (s->fd >= 0) {
		ev_io_stop(s->pvm->loop, &s->rio);
		ev_io_stop(s->pvm->loop, &s->wio);
		close(s->fd);
		s->fd = -1;
	}
	pend_free(s);
}

/**
 * pvm_relay_data() - DATA from the INS (already within credit): to the app
 * @s:   the socket
 * @buf: payload in the ring
 * @len: its length
 * Return: 0, or -ENOBUFS (over pvm.pending_total) or -ENOMEM: the connection was aborted
 */
int pvm_relay_data(struct pvm_sock *s, const void *buf, uint32_t len)
{
	ssize_t n = 0;
	int ret;

	if (s->state == PVM_ST_CLOSING)
		return 0; /* app end gone: the socket is being closed */
	if (s->fd >= 0 && !s->pend_len) {
		n = write(s->fd, buf, len);
		if (n < 0) {
			if (relay_app_shut_rd(s)) {
				relay_credit_back(s, len, false);
				return 0;
			}
			if (errno != EAGAIN && errno != EINTR) {
				/* Data for an app that closed: like TCP, answer with RST. */
				relay_app_gone(s, true);
				return 0;
			}
			n = 0;
		}
		s->bytes_in += (uint64_t)n;
		s->app_full = (uint32_t)n < len;
		if ((uint32_t)n == len) {
			relay_credit_back(s, len, false);
			if (pvm_observe_active())
				pvm_observe_sock(PVM_OBS_RECV, s, 0);
			return 0;
		}
	}
	ret = pend_reserve(s, len - (uint32_t)n);
	if (ret) {
		if (ret == -ENOBUFS) {
			s->pvm->pend_resets++;
			mw_log_ratelimited(MW_LOG_WARN,
					   "socket %#llx reset: its app has not taken %u byte(s) "
					   "and pvm.pending_total is reached (%llu reset so far)",
					   (unsigned long long)s->id,
					   s->pend_len + len - (uint32_t)n,
					   (unsigned long long)s->pvm->pend_resets);
		}
		relay_app_gone(s, true);
		return ret;
	}
	memcpy(s->pend + s->pend_off + s->pend_len, (const uint8_t *)buf + n, len - (uint32_t)n);
	s->pend_len += len - (uint32_t)n;
	if (n)
		relay_credit_back(s, (uint32_t)n, false);
	if (s->fd >= 0)
		ev_io_start(s->pvm->loop, &s->wio);
	return 0;
}

/**
 * pvm_relay_eof() - EV_EOF: the TCP peer sent FIN
 * @s: the socket
 */
void pvm_relay_eof(struct pvm_sock *s)
{
	s->net_eof = true;
	if (s->fd >= 0 && !s->pend_len)
		relay_drained(s);
}

/**
 * pvm_relay_reset() - EV_RESET: the connection is lost
 * @s: the socket
 */
void pvm_relay_reset(struct pvm_sock *s)
{
	s->net_reset = true;
	if (s->fd >= 0 && !s->pend_len)
		relay_app_gone(s, false);
}

/**
 * pvm_relay_credit() - MW_CREDIT arrived: resume reading the app if it waited
 * @s: the socket
 */
void pvm_relay_credit(struct pvm_sock *s)
{
	if (s->fd >= 0 && !ev_is_active(&s->rio))
		pvm_relay_start(s);
}

/**
 * pvm_relay_resume() - the ring has room again: resume every parked socket
 * @ins: the INS
 */
void pvm_relay_resume(struct pvm_ins *ins)
{
	struct pvm_sock *s;

	while ((s = ins->blocked)) {
		ins->blocked = s->blk_next;
		s->blocked = false;
		s->blk_next = NULL;
		pvm_relay_start(s);
	}
}
