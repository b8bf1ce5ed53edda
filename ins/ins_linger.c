/* SPDX-License-Identifier: MIT */
/* ins_linger.c - a connection the app closed: hold it until the client has our data, at most
 * fin_timeout */
#include <errno.h>
#include <linux/sockios.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>

#include "common/log.h"
#include "ins/ins.h"

/*
 * Theory of operation
 *
 * A graceful OP_CLOSE must not hand the connection to the kernel while bytes
 * are still on their way: an orphaned socket can no longer be reset, so a
 * mitigation close (OP_ABORT) would find nothing to abort while the kernel
 * drains megabytes at a slow client's pace, and a client that never reads
 * would hold it for as long as the kernel's orphan probes last.  So the
 * socket lingers here: first the pending bytes drain (ins_io.c), then
 * shutdown(SHUT_WR) sends the FIN after the data, and the fd is closed once
 * SIOCOUTQ says the client acknowledged everything, FIN included.  A socket
 * with nothing unacknowledged closes at once (the common case).  Past
 * ins.fin_timeout_ms it is reset instead.  The closed socket's FIN_WAIT2 then
 * lasts at most as long (TCP_LINGER2), like the kernel's tcp_fin_timeout for
 * an orphan: set once when the socket is made (ins_linger_bound()), and
 * inherited by every connection a listener accepts, so closing costs no
 * setsockopt() (the app cannot change it: not on ins_tune.c's list).
 * OP_ABORT on a lingering socket resets it at once.  EV_CLOSED goes to the
 * PVM when the fd is really closed.
 */

#define LINGER_TICK_S 0.02
#define LINGER2_MAX_S 120 /* the kernel caps TCP_LINGER2 at TCP_FIN_TIMEOUT_MAX */

static void linger_unlink(struct ins_sock *s)
{
	struct ins *ins = s->ins;

	if (!s->lingering)
		return;
	if (s->lprev)
		s->lprev->lnext = s->lnext;
	else
		ins->lingering = s->lnext;
	if (s->lnext)
		s->lnext->lprev = s->lprev;
	s->lprev = s->lnext = NULL;
	s->lingering = false;
	if (!ins->lingering)
		ev_timer_stop(ins->loop, &ins->linger_timer);
}

/**
 * ins_linger_bound() - bound a new socket's FIN_WAIT2 to ins.fin_timeout_ms (TCP_LINGER2)
 * @ins: the daemon
 * @fd:  a TCP socket just made (a listener passes the bound to what it accepts)
 * Return: 0 or -errno
 */
int ins_linger_bound(const struct ins *ins, int fd)
{
	int secs = ins->cfg->fin_timeout_ms / 1000;

	if (secs < 1)
		secs = 1;
	if (secs > LINGER2_MAX_S)
		secs = LINGER2_MAX_S;
	return setsockopt(fd, IPPROTO_TCP, TCP_LINGER2, &secs, sizeof(secs)) < 0 ? -errno : 0;
}

/* Everything acknowledged (or nothing more to wait for): close; FIN_WAIT2 is bounded already. */
static void linger_close(struct ins_sock *s)
{
	linger_unlink(s);
	ins_io_finish_close(s);
}

/* Bytes the client has not acknowledged yet (FIN included); 0 on error. */
static int linger_outq(const struct ins_sock *s)
{
	int n = 0;

	if (ioctl(s->fd, SIOCOUTQ, &n) < 0)
		return 0;
	return n;
}

/**
 * ins_linger_check() - a lingering socket may be done: close it if so
 * @s: the socket (close_pending); may be freed
 */
void ins_linger_check(struct ins_sock *s)
{
	if (s->fd < 0 || s->wr_dead) {
		linger_close(s);
		return;
	}
	if (s->pend_len)
		return; /* wio drains them first, then calls us again */
	if (!s->fin_sent) {
		if (!linger_outq(s)) {
			linger_close(s); /* nothing in flight: the kernel sends the FIN */
			return;
		}
		s->fin_sent = true;
		if (shutdown(s->fd, SHUT_WR) < 0) {
			linger_close(s);
			return;
		}
	}
	if (!linger_outq(s))
		linger_close(s);
}

/**
 * ins_linger_abort() - reset a socket now (OP_ABORT, or its time is up)
 * @s: the socket; freed
 */
void ins_linger_abort(struct ins_sock *s)
{
	linger_unlink(s);
	if (s->fd >= 0)
		ins_sock_rst_close(s->fd);
	s->fd = -1;
	ins_io_finish_close(s);
}

static void linger_tick_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct ins *ins = w->data;
	struct ins_sock *s, *next;
	ev_tstamp now = ev_now(loop);

	(void)revents;
	for (s = ins->lingering; s; s = next) {
		next = s->lnext;
		if (now >= s->linger_until) {
			mw_log_ratelimited(MW_LOG_INFO,
					   "socket %#llx: client did not take its data within "
					   "fin_timeout_ms: reset",
					   (unsigned long long)s->id);
			ins_linger_abort(s);
			continue;
		}
		ins_linger_check(s);
	}
}

/**
 * ins_linger_start() - OP_CLOSE: stop reading, drain, FIN, close when acknowledged
 * @s: the socket; may be freed
 */
void ins_linger_start(struct ins_sock *s)
{
	struct ins *ins = s->ins;

	s->close_pending = true;
	s->state = INS_ST_CLOSING;
	ev_io_stop(ins->loop, &s->rio);
	ins_io_unpark(s);
	if (!s->lingering) {
		s->lingering = true;
		s->linger_until = ev_now(ins->loop) + ins->cfg->fin_timeout_ms / 1000.0;
		s->lprev = NULL;
		s->lnext = ins->lingering;
		if (ins->lingering)
			ins->lingering->lprev = s;
		ins->lingering = s;
		if (!ev_is_active(&ins->linger_timer)) {
			ev_timer_init(&ins->linger_timer, linger_tick_cb, LINGER_TICK_S,
				      LINGER_TICK_S);
			ins->linger_timer.data = ins;
			ev_timer_start(ins->loop, &ins->linger_timer);
		}
	}
	ins_linger_check(s);
}

/**
 * ins_linger_forget() - the socket is being freed: take it off the list
 * @s: the socket
 */
void ins_linger_forget(struct ins_sock *s)
{
	linger_unlink(s);
}
