/* SPDX-License-Identifier: MIT */
/* pvm_handshake.c - INS handshakes read without blocking: one small state machine each */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/log.h"
#include "pvm/pvm.h"

/*
 * Theory of operation
 *
 * An INS that connects to pvm.ins_socket owes us one struct mw_hello.  The
 * socket is non-blocking; a watcher collects the bytes as they come and a
 * timer bounds the wait (PVM_HS_TIMEOUT_S).  Only once the hello is complete
 * does pvm_ins_join() answer it (mw_channel_local_answer(): one small send on
 * an empty socket, which never waits) and start the channel.  So a peer that
 * connects and says nothing costs one fd and its deadline, never a stall of
 * the loop.  At most pvm.handshake_max handshakes are pending; a new one
 * beyond that drops the oldest, so idle connections cannot lock an honest
 * INS (which sends its hello at once) out.
 */

#define PVM_HS_TIMEOUT_S 2.0

struct pvm_hs {
	struct pvm_hs *next, *prev;
	struct pvm *p;
	int fd;
	ev_io io;
	ev_timer timer;
	size_t got;
	struct mw_hello hello;
};

static void hs_end(struct pvm_hs *h, bool close_fd)
{
	struct pvm *p = h->p;

	ev_io_stop(p->loop, &h->io);
	ev_timer_stop(p->loop, &h->timer);
	if (h->prev)
		h->prev->next = h->next;
	else
		p->hs_head = h->next;
	if (h->next)
		h->next->prev = h->prev;
	else
		p->hs_tail = h->prev;
	p->nhs--;
	if (close_fd)
		close(h->fd);
	free(h);
}

static void hs_read_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	struct pvm_hs *h = w->data;
	struct pvm *p = h->p;
	struct mw_hello hello;
	ssize_t n;
	int fd;

	(void)loop;
	(void)revents;
	n = recv(h->fd, (char *)&h->hello + h->got, sizeof(h->hello) - h->got, MSG_DONTWAIT);
	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	if (n <= 0) {
		mw_log_ratelimited(MW_LOG_WARN, "INS handshake failed: %s",
				   n == 0 ? "peer closed the socket during the handshake"
					  : strerror(errno));
		hs_end(h, true);
		return;
	}
	h->got += (size_t)n;
	if (h->got < sizeof(h->hello))
		return;
	hello = h->hello;
	fd = h->fd;
	hs_end(h, false);
	pvm_ins_join(p, fd, &hello);
}

static void hs_timeout_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct pvm_hs *h = w->data;

	(void)loop;
	(void)revents;
	mw_log_ratelimited(MW_LOG_WARN,
			   "INS handshake failed: no complete hello within %.0f s (%zu of %zu "
			   "bytes); dropped",
			   PVM_HS_TIMEOUT_S, h->got, sizeof(h->hello));
	hs_end(h, true);
}

/**
 * pvm_hs_start() - a connection on pvm.ins_socket: wait for its hello without blocking
 * @p:  the daemon
 * @fd: the accepted connection (non-blocking); owned from here on
 */
void pvm_hs_start(struct pvm *p, int fd)
{
	struct pvm_hs *h;

	if (p->nhs >= (unsigned)p->cfg->handshake_max && p->hs_head) {
		mw_log_ratelimited(
			MW_LOG_WARN,
			"INS handshake: %u in progress (pvm.handshake_max); dropping the "
			"oldest",
			p->nhs);
		hs_end(p->hs_head, true);
	}
	h = calloc(1, sizeof(*h));
	if (!h) {
		mw_log_ratelimited(MW_LOG_ERR, "INS handshake: out of memory; connection dropped");
		close(fd);
		return;
	}
	h->p = p;
	h->fd = fd;
	h->prev = p->hs_tail;
	if (p->hs_tail)
		p->hs_tail->next = h;
	else
		p->hs_head = h;
	p->hs_tail = h;
	p->nhs++;
	ev_io_init(&h->io, hs_read_cb, fd, EV_READ);
	h->io.data = h;
	ev_io_start(p->loop, &h->io);
	ev_timer_init(&h->timer, hs_timeout_cb, PVM_HS_TIMEOUT_S, 0.0);
	h->timer.data = h;
	ev_timer_start(p->loop, &h->timer);
}

/**
 * pvm_hs_close_all() - at exit: drop every handshake in progress
 * @p: the daemon
 */
void pvm_hs_close_all(struct pvm *p)
{
	struct pvm_hs *h, *next;

	for (h = p->hs_head; h; h = next) {
		next = h->next;
		hs_end(h, true);
	}
}
