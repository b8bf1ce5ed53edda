/* SPDX-License-Identifier: MIT */
/* ins_accf.c - accept filters: hold a connection until its first request is complete */
#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/log.h"
#include "ins/ins.h"

/*
 * Theory of operation
 *
 * A listener whose shield has an accept filter does not announce a new
 * connection (EV_ACCEPTED) at accept: ins_sock_admit() hands it here after the
 * address-block check, and it is held, with no socket id and no table entry,
 * so mw-pvm and the app know nothing of it and it costs the app no slot.  Its
 * bytes stay in the kernel: each wake peeks at the stream (at most
 * INS_ACCF_PEEK_MAX bytes) and ins_accf_parse() says whether the first
 * request is complete.  SO_RCVLOWAT is then set one past what is there, so
 * the level-triggered watcher wakes only when more arrives (or on FIN/RST).
 * Once complete, or INS_ACCF_PEEK_MAX bytes arrived without completing (the
 * app decides), or the client half-closed after sending something, the
 * connection is announced like any other (ins_sock_announce()) and its bytes
 * are relayed as usual.  A connection that sent nothing and closed is dropped.
 *
 * Bounds: a held connection is reset (SO_LINGER {1,0}: RST) when its
 * shield's deadline passes; a listener holds at most hold_max (0:
 * ins.shield_hold_max) and resets the oldest to make room for a new one.
 * Held connections die with their listener, and with an address block.
 * With a min_in_rate, one that sends slower is reset (ins_shield_in_slow(), on
 * each wake and from a per-listener 1 s timer, since a silent one never wakes).
 * A held connection does not count in its listener's per-source and per-prefix
 * limits: they guard the app's slots, and are judged (ins_shield_admit()) when it
 * passes; the entries it then counts in go with it to its socket.
 */

static uint8_t accf_scratch[INS_ACCF_PEEK_MAX];

static uint32_t accf_hold_max(const struct ins_sock *ls)
{
	if (ls->shield.hold_max)
		return ls->shield.hold_max;
	return ls->ins->cfg->shield_hold_max > 0 ? (uint32_t)ls->ins->cfg->shield_hold_max : 1;
}

/* Off the listener's list, watchers stopped; the fd stays open. */
static void accf_unlink(struct ins_held *h)
{
	struct ins_sock *ls = h->ls;
	struct ins *ins = ls->ins;

	ev_io_stop(ins->loop, &h->io);
	ev_timer_stop(ins->loop, &h->deadline);
	if (h->prev)
		h->prev->next = h->next;
	else
		ls->held_head = h->next;
	if (h->next)
		h->next->prev = h->prev;
	else
		ls->held_tail = h->prev;
	ls->held_count--;
	ins->accf.holding--;
}

/* Reset @h (RST) and forget it, counted in @counter. */
static void accf_reset(struct ins_held *h, uint64_t *counter)
{
	accf_unlink(h);
	ins_shield_release(&h->ref);
	(*counter)++;
	ins_sock_rst_close(h->fd);
	free(h);
}

/* Satisfied: the app may have it now. */
static void accf_pass(struct ins_held *h)
{
	struct ins_sock *ls = h->ls;
	struct ins *ins = ls->ins;
	int one = 1;

	if (ls->state != INS_ST_LISTENING) {
		accf_reset(h, &ins->accf.gone); /* closing: nobody to announce it to */
		return;
	}
	accf_unlink(h);
	/* shield: SRC_*, PFX_* judge it now that it would reach the app */
	if (!ins_shield_admit(ins, ls->id, &h->peer, &h->ref)) {
		ins_sock_rst_close(h->fd);
		free(h);
		return;
	}
	ins->accf.passed++;
	/* The relay reads whatever is there: readiness from the first byte again. */
	if (h->lowat_set)
		setsockopt(h->fd, SOL_SOCKET, SO_RCVLOWAT, &one, sizeof(one));
	ins_sock_announce(ins, ls->id, h->fd, &h->peer, &h->local, h->proxied, &h->shield, &h->ref);
	free(h);
}

/* Has the client half-closed (or reset) with bytes still unread? */
static bool accf_peer_closed(int fd)
{
	struct pollfd pfd = { .fd = fd, .events = POLLRDHUP };

	return poll(&pfd, 1, 0) > 0 && (pfd.revents & (POLLRDHUP | POLLHUP | POLLERR));
}

/* Wake only once more than @have bytes are there. Return: false if the kernel refused. */
static bool accf_wait_more(struct ins_held *h, int have)
{
	int want = have + 1, got = 0;
	socklen_t len = sizeof(got);

	h->lowat_set = true;
	if (setsockopt(h->fd, SOL_SOCKET, SO_RCVLOWAT, &want, sizeof(want)) ||
	    getsockopt(h->fd, SOL_SOCKET, SO_RCVLOWAT, &got, &len))
		return false;
	return got >= want; /* capped (a small receive buffer): the watcher would spin */
}

/* Look at what @h sent so far: pass it, drop it, or wait for more (@h may be freed). */
static void accf_check(struct ins_held *h)
{
	struct ins *ins = h->ls->ins;
	ssize_t n;

	if (ins_shield_in_slow(ins, h->fd, &h->shield, &h->in)) {
		accf_reset(h, &ins->rates.n.in_slow);
		return;
	}
	n = recv(h->fd, accf_scratch, sizeof(accf_scratch), MSG_PEEK | MSG_DONTWAIT);
	if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
		return;
	if (n <= 0) {
		accf_reset(h, &ins->accf.gone); /* nothing sent, and gone */
		return;
	}
	if (ins_accf_parse(&h->parser, accf_scratch, (size_t)n) == INS_ACCF_PASS ||
	    (size_t)n >= sizeof(accf_scratch) || accf_peer_closed(h->fd) ||
	    !accf_wait_more(h, (int)n))
		accf_pass(h);
}

static void accf_read_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	(void)loop;
	(void)revents;
	accf_check(w->data);
}

static void accf_deadline_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct ins_held *h = w->data;
	char text[MW_ADDR_STRLEN];

	(void)loop;
	(void)revents;
	mw_log_ratelimited(MW_LOG_INFO, "connection from %s reset: no complete request in %u ms",
			   mw_addr_format(&h->peer, text, sizeof(text)), h->shield.deadline_ms);
	accf_reset(h, &h->ls->ins->accf.deadline);
}

/* Every second while @ls holds connections with a MIN_IN_RATE: a silent one never wakes. */
static void accf_tick_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct ins_sock *ls = w->data;
	struct ins *ins = ls->ins;
	struct ins_held *h, *next;
	bool any = false;

	(void)revents;
	for (h = ls->held_head; h; h = next) {
		next = h->next;
		if (!h->shield.min_in_rate)
			continue;
		if (ins_shield_in_slow(ins, h->fd, &h->shield, &h->in))
			accf_reset(h, &ins->rates.n.in_slow);
		else
			any = true;
	}
	if (!any)
		ev_timer_stop(loop, w);
}

/**
 * ins_accf_hold() - hold a new connection until its listener's accept filter is satisfied
 * @ls:      the listener (its shield has a filter)
 * @fd:      the connection, non-blocking; owned from here on
 * @peer:    the client as the app will see it
 * @local:   the address it reached
 * @proxied: @peer/@local came from a PROXY header
 */
void ins_accf_hold(struct ins_sock *ls, int fd, const struct mw_addr *peer,
		   const struct mw_addr *local, bool proxied)
{
	struct ins *ins = ls->ins;
	struct ins_held *h, *next;

	for (h = ls->held_head; h && ls->held_count >= accf_hold_max(ls); h = next) {
		next = h->next; /* the oldest goes: the next one is the oldest then */
		accf_reset(h, &ins->accf.evicted);
	}
	h = calloc(1, sizeof(*h));
	if (!h) {
		ins->accf.gone++;
		ins_sock_rst_close(fd);
		return;
	}
	h->ls = ls;
	h->fd = fd;
	h->proxied = proxied;
	h->peer = *peer;
	h->local = *local;
	h->shield = ls->shield;
	ins_accf_parse_init(&h->parser, &h->shield);
	h->prev = ls->held_tail;
	if (ls->held_tail)
		ls->held_tail->next = h;
	else
		ls->held_head = h;
	ls->held_tail = h;
	ls->held_count++;
	ins->accf.holding++;
	ins->accf.held++;
	ev_io_init(&h->io, accf_read_cb, fd, EV_READ);
	h->io.data = h;
	ev_io_start(ins->loop, &h->io);
	ev_timer_init(&h->deadline, accf_deadline_cb, h->shield.deadline_ms / 1000., 0.);
	h->deadline.data = h;
	if (h->shield.deadline_ms)
		ev_timer_start(ins->loop, &h->deadline);
	if (h->shield.min_in_rate && !ev_is_active(&ls->held_tick)) {
		ev_timer_init(&ls->held_tick, accf_tick_cb, 1., 1.);
		ls->held_tick.data = ls;
		ev_timer_start(ins->loop, &ls->held_tick);
	}
	accf_check(h); /* the request often came with the handshake: no wait for a wake */
}

/**
 * ins_accf_drop() - reset every connection @ls holds (it is going away)
 * @ls: the listener
 */
void ins_accf_drop(struct ins_sock *ls)
{
	struct ins_held *h, *next;

	ev_timer_stop(ls->ins->loop, &ls->held_tick);
	for (h = ls->held_head; h; h = next) {
		next = h->next;
		accf_reset(h, &ls->ins->accf.gone);
	}
}

/**
 * ins_accf_block_live() - reset held connections whose peer is now blocked
 * @ls: a listener
 */
void ins_accf_block_live(struct ins_sock *ls)
{
	struct ins_held *h, *next;

	for (h = ls->held_head; h; h = next) {
		next = h->next;
		if (ins_blockset_has(&ls->ins->blocked, &h->peer))
			accf_reset(h, &ls->ins->accf.gone);
	}
}
