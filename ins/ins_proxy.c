/* SPDX-License-Identifier: MIT */
/* ins_proxy.c - mw-ins PROXY v2 reader: a connection's header is read before the PVM hears of it */
#include <errno.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/log.h"
#include "ins/ins.h"

/*
 * Theory of operation
 *
 * With ins.proxy_protocol, mw-balancer splices client connections to this
 * INS and writes a PROXY v2 header (common/proxy2.h) first, so the app can
 * see the real client.  A freshly accepted connection is therefore not
 * reported at once: it becomes an ins_pp, outside the socket table (it has
 * no id; the PVM never hears of it unless it passes), with its own read
 * watcher and a deadline:
 *
 *   accept -> untrusted sender (ins.proxy_from) ------------------> reset
 *          -> ins_pp: recv() header bytes -> complete -> admit (EV_ACCEPTED)
 *                                         -> invalid / EOF / error -> reset
 *                     deadline (2 s) ------------------------------> reset
 *
 * The reader never takes a byte past the header: it asks for the 16 fixed
 * bytes, then for exactly the length they announce (mw_proxy2_need()), so
 * whatever the client sent after the header stays in the kernel and is the
 * first DATA the normal relay reads.  A garbage first byte fails at once.
 * The header is bounded by MW_PROXY2_MAX, and the number of connections
 * waiting at once by INS_PP_MAX (plus ins.max_sockets), so a slow or hostile
 * sender costs at most that much memory for at most the deadline.
 *
 * A PROXY header's source becomes the accept event's peer (and what address
 * blocks match), its destination the local address; LOCAL (the balancer's
 * own health checks) and an UNSPEC family keep the connection's real ones.
 */

#define INS_PP_DEADLINE 2.0   /* seconds for the whole header */
#define INS_PP_MAX	16384 /* connections waiting for their header at once */
#define INS_PP_READS	4     /* recv() calls per wake: fixed part, rest, slack */

/**
 * ins_proxy_init() - parse ins.proxy_from once
 * @ins: the daemon (cfg set)
 * Return: 0, or -EINVAL if proxy_from is not a network (the config check
 * already refuses that, so this only guards a caller that skipped it)
 */
int ins_proxy_init(struct ins *ins)
{
	struct ins_proxy *pp = &ins->pp;

	memset(pp, 0, sizeof(*pp));
	pp->any = !ins->cfg->proxy_from[0];
	if (pp->any)
		return 0;
	return mw_cidr_parse(&pp->from, ins->cfg->proxy_from);
}

static void pp_unlink(struct ins_pp *p)
{
	struct ins *ins = p->ins;

	ev_io_stop(ins->loop, &p->io);
	ev_timer_stop(ins->loop, &p->deadline);
	if (p->prev)
		p->prev->next = p->next;
	else
		ins->pp.head = p->next;
	if (p->next)
		p->next->prev = p->prev;
	ins->pp.count--;
}

/* Refuse: reset (the fd is gone at once, nothing lingers), count, log (rate-limited). */
static void pp_refuse(struct ins_pp *p, uint64_t *counter, const char *why)
{
	struct ins *ins = p->ins;
	char text[MW_ADDR_STRLEN];

	(*counter)++;
	mw_log_ratelimited(MW_LOG_INFO,
			   "connection from %s closed: %s (PROXY header: %llu bad, %llu untrusted, "
			   "%llu timed out, %llu over the limit)",
			   mw_addr_format(&p->peer, text, sizeof(text)), why,
			   (unsigned long long)ins->pp.bad, (unsigned long long)ins->pp.untrusted,
			   (unsigned long long)ins->pp.timeout,
			   (unsigned long long)ins->pp.overflow);
	pp_unlink(p);
	ins_sock_rst_close(p->fd);
	free(p);
}

/*
 * The app sees addresses of its listener's family, as the kernel would show
 * them: an IPv4 client on an IPv6 listener as ::ffff:a.b.c.d, an IPv4-mapped
 * one on an IPv4 listener as a.b.c.d.  A real IPv6 client of an IPv4 listener
 * has no IPv4 form: the caller refuses it (an AF_INET app handed an IPv6
 * peer would truncate it to garbage, and handing it the balancer's address
 * instead would defeat the header).
 */
static void pp_fit_family(struct mw_addr *a, uint8_t family)
{
	static const uint8_t mapped[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff };

	if (family == 6 && a->family == 4) {
		memmove(a->addr + 12, a->addr, 4);
		memcpy(a->addr, mapped, sizeof(mapped));
		a->family = 6;
	} else if (family == 4 && a->family == 6 && !memcmp(a->addr, mapped, sizeof(mapped))) {
		memmove(a->addr, a->addr + 12, 4);
		memset(a->addr + 4, 0, 12);
		a->family = 4;
		a->scope_id = 0;
	}
}

/* The header is complete: hand the connection over as if it had just been accepted. */
static void pp_done(struct ins_pp *p, const struct mw_proxy2_hdr *h)
{
	struct ins *ins = p->ins;
	struct mw_addr peer = p->peer, local = p->local;
	struct ins_sock *ls = ins_table_find(&ins->socks, p->listener);
	bool proxied = h->cmd == MW_PROXY2_PROXY && h->src.ss_family != AF_UNSPEC;
	int fd = p->fd;

	if (!ls || ls->state != INS_ST_LISTENING) {
		pp_refuse(p, &ins->pp.bad, "its listener closed meanwhile");
		return;
	}
	if (proxied) {
		if (mw_addr_from_sockaddr(&peer, (const struct sockaddr *)&h->src,
					  sizeof(h->src)) ||
		    mw_addr_from_sockaddr(&local, (const struct sockaddr *)&h->dst,
					  sizeof(h->dst))) {
			pp_refuse(p, &ins->pp.bad, "PROXY header addresses unusable");
			return;
		}
		pp_fit_family(&peer, ls->family);
		pp_fit_family(&local, ls->family);
		if (peer.family != ls->family || local.family != ls->family) {
			pp_refuse(p, &ins->pp.bad, "PROXY header names IPv6 for an IPv4 listener");
			return;
		}
	}
	ins->pp.ok++;
	pp_unlink(p);
	free(p);
	ins_sock_admit(ins, ls->id, fd, &peer, &local, proxied);
}

static void pp_read_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	struct ins_pp *p = w->data;
	struct ins *ins = p->ins;
	struct mw_proxy2_hdr h;
	ssize_t n;
	int need, i, ret;

	(void)loop;
	(void)revents;
	for (i = 0; i < INS_PP_READS; i++) {
		need = mw_proxy2_need(p->buf, p->have);
		if (need < 0) {
			pp_refuse(p, &ins->pp.bad, "no valid PROXY v2 header");
			return;
		}
		n = recv(p->fd, p->buf + p->have, (size_t)need - p->have, MSG_DONTWAIT);
		if (n == 0) {
			pp_refuse(p, &ins->pp.bad, "closed before its PROXY header ended");
			return;
		}
		if (n < 0) {
			if (errno == EAGAIN || errno == EINTR)
				return;
			pp_refuse(p, &ins->pp.bad, strerror(errno));
			return;
		}
		p->have = (uint16_t)(p->have + n);
		ret = mw_proxy2_decode(p->buf, p->have, &h);
		if (ret < 0) {
			pp_refuse(p, &ins->pp.bad,
				  ret == -EPROTONOSUPPORT
					  ? "PROXY header for a transport other than TCP"
					  : "no valid PROXY v2 header");
			return;
		}
		if (ret > 0) {
			pp_done(p, &h);
			return;
		}
	}
	/* Still incomplete: the level-triggered watcher calls again if more is there. */
}

static void pp_deadline_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct ins_pp *p = w->data;

	(void)loop;
	(void)revents;
	pp_refuse(p, &p->ins->pp.timeout, "no PROXY header within 2 s");
}

/**
 * ins_proxy_start() - an accepted connection must first send its PROXY v2 header
 * @ins:      the daemon
 * @listener: id of the listener it came from
 * @fd:       the connection, non-blocking; owned from here on
 * @peer:     its real peer (the sender of the header)
 * @local:    its real local address
 *
 * Untrusted senders and connections over the limit are reset at once.
 */
void ins_proxy_start(struct ins *ins, uint64_t listener, int fd, const struct mw_addr *peer,
		     const struct mw_addr *local)
{
	struct ins_proxy *pp = &ins->pp;
	char text[MW_ADDR_STRLEN];
	uint64_t *counter = NULL;
	struct ins_pp *p = NULL;
	const char *why = NULL;

	if (!pp->any && !mw_cidr_match(&pp->from, peer)) {
		counter = &pp->untrusted;
		why = "not in ins.proxy_from";
		goto refuse;
	}
	if (pp->count >= INS_PP_MAX ||
	    (ins->cfg->max_sockets &&
	     ins->socks.count + pp->count >= (size_t)ins->cfg->max_sockets)) {
		counter = &pp->overflow;
		why = "too many connections waiting for their PROXY header";
		goto refuse;
	}
	p = malloc(sizeof(*p));
	if (!p) {
		counter = &pp->overflow;
		why = "out of memory";
		goto refuse;
	}
	p->ins = ins;
	p->listener = listener;
	p->fd = fd;
	p->have = 0;
	p->peer = *peer;
	p->local = *local;
	p->prev = NULL;
	p->next = pp->head;
	if (pp->head)
		pp->head->prev = p;
	pp->head = p;
	pp->count++;
	ev_io_init(&p->io, pp_read_cb, fd, EV_READ);
	p->io.data = p;
	ev_timer_init(&p->deadline, pp_deadline_cb, INS_PP_DEADLINE, 0.);
	p->deadline.data = p;
	ev_io_start(ins->loop, &p->io);
	ev_timer_start(ins->loop, &p->deadline);
	mw_debug("connection from %s: waiting for its PROXY header",
		 mw_addr_format(peer, text, sizeof(text)));
	return;
refuse:
	(*counter)++;
	mw_log_ratelimited(MW_LOG_INFO, "connection from %s closed: %s (%llu so far)",
			   mw_addr_format(peer, text, sizeof(text)), why,
			   (unsigned long long)*counter);
	ins_sock_rst_close(fd);
}

/**
 * ins_proxy_close_all() - at exit: drop every connection still waiting for its header
 * @ins: the daemon
 */
void ins_proxy_close_all(struct ins *ins)
{
	struct ins_pp *p, *next;

	for (p = ins->pp.head; p; p = next) {
		next = p->next;
		ev_io_stop(ins->loop, &p->io);
		ev_timer_stop(ins->loop, &p->deadline);
		close(p->fd);
		free(p);
	}
	ins->pp.head = NULL;
	ins->pp.count = 0;
}
