/* SPDX-License-Identifier: MIT */
/* pvm_ins.c - INS channels: handshake, frame validation and dispatch, heartbeats, death */
#include <errno.h>
#include <fcntl.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "common/log.h"
#include "common/pidfd.h"
#include "common/norights.h"
#include "common/sockid.h"
#include "pvm/pvm.h"

/*
 * Theory of operation
 *
 * An mw-ins connects to pvm.ins_socket and runs the local handshake; from then
 * on the channel's wait_fd says "frames or room arrived" and its sock_fd says
 * "the INS is gone" (EOF/HUP).  Every INS is hostile: each frame is validated
 * by mw_proto_check() on a private copy of its payload (DATA payloads stay in
 * the ring: their content is opaque), then checked against our state (the
 * socket exists and lives on this INS, the request id is ours, DATA stays in
 * the credit we granted).  Any violation, a dead handshake socket, or silence
 * beyond heartbeat_timeout_ms kills the channel: pending shim ops get -ENOENT,
 * connections on it are closed, listeners survive on the other INS.
 *
 * Loop integration: frames are processed in batches of RX_BUDGET; a prepare
 * watcher flushes every channel once per loop iteration (one kick per batch at
 * most) and announces sleep; if frames slipped in, an idle watcher runs
 * another batch before the loop may block.
 */

#define RX_BUDGET 1024
/* Batches the heartbeat check drains before it judges silence (64 x RX_BUDGET frames). */
#define HB_DRAIN_BATCHES 64
/* Accept on pvm.ins_socket pauses this long after EMFILE/ENFILE instead of spinning. */
#define ACCEPT_PAUSE_S 0.1

static bool ins_poll(struct pvm_ins *ins);

/**
 * pvm_ins_cut() - end @ins at the next prepare, not under the caller's feet
 * @ins:    the INS (a bound was broken, or it misbehaved, deep in a call chain)
 * @reason: logged when it is killed; the first one wins
 */
void pvm_ins_cut(struct pvm_ins *ins, const char *reason)
{
	if (!ins->cut[0])
		snprintf(ins->cut, sizeof(ins->cut), "%s", reason);
	ins->dead = true;
}

/**
 * pvm_ins_by_id() - the live INS with @id
 * @p:  the daemon
 * @id: INS id
 * Return: it, or NULL
 */
struct pvm_ins *pvm_ins_by_id(struct pvm *p, uint16_t id)
{
	struct pvm_ins *ins;

	for (ins = p->ins_list; ins; ins = ins->next)
		if (ins->id == id)
			return ins;
	return NULL;
}

/**
 * pvm_ins_pick() - round-robin placement of a new socket
 * @p: the daemon
 * Return: the live INS whose id follows the last one picked, or NULL if none
 */
struct pvm_ins *pvm_ins_pick(struct pvm *p)
{
	struct pvm_ins *ins, *next = NULL, *first = NULL;

	for (ins = p->ins_list; ins; ins = ins->next) {
		if (ins->dead)
			continue;
		if (!first || ins->id < first->id)
			first = ins;
		if (ins->id > p->rr_last && (!next || ins->id < next->id))
			next = ins;
	}
	if (!next)
		next = first;
	if (next)
		p->rr_last = next->id;
	return next;
}

static int ins_enqueue(struct pvm_ins *ins, uint16_t type, uint64_t sock, const void *payload,
		       uint32_t len)
{
	struct pvm_ctlq *q;
	char why[96];

	if (ins->nq >= (uint32_t)ins->pvm->cfg->ins_max_queued) {
		snprintf(why, sizeof(why),
			 "it does not drain its ring: %u control frames wait (pvm.ins_max_queued)",
			 ins->nq);
		pvm_ins_cut(ins, why);
		return -ENOBUFS;
	}
	q = malloc(sizeof(*q) + len);
	if (!q)
		return -ENOMEM;
	q->next = NULL;
	q->type = type;
	q->sock = sock;
	q->len = len;
	memcpy(q->payload, payload, len);
	if (ins->q_tail)
		ins->q_tail->next = q;
	else
		ins->q = q;
	ins->q_tail = q;
	ins->nq++;
	return 0;
}

static void ins_flush_queue(struct pvm_ins *ins)
{
	struct pvm_ctlq *q;
	int ret;

	if (ins->splice_sock)
		return; /* frozen until the splice's DATA_PIPE is committed (pvm_relay.c) */
	while ((q = ins->q)) {
		ret = mw_channel_send(&ins->ch, q->type, q->sock, q->payload, q->len);
		if (ret == -EAGAIN) {
			if (mw_channel_want_space(&ins->ch, q->len))
				return;
			continue;
		}
		/* Sent, or the channel is dead (the kill path reaps everything). */
		ins->q = q->next;
		if (!ins->q)
			ins->q_tail = NULL;
		ins->nq--;
		free(q);
	}
}

/**
 * pvm_ins_ctl_first() - queue a frame ahead of every queued control frame
 * @ins: the INS (its ring was full)
 *
 * For a splice's DATA_PIPE, which belongs before what was queued while it ran.
 * Not bounded by pvm.ins_max_queued (one at a time); out of memory, the INS
 * would get bytes without their frame: it is cut.
 */
void pvm_ins_ctl_first(struct pvm_ins *ins, uint16_t type, uint64_t sock, const void *payload,
		       uint32_t len)
{
	struct pvm_ctlq *q = malloc(sizeof(*q) + len);

	if (!q) {
		pvm_ins_cut(ins, "out of memory for a DATA_PIPE frame");
		return;
	}
	q->type = type;
	q->sock = sock;
	q->len = len;
	memcpy(q->payload, payload, len);
	q->next = ins->q;
	ins->q = q;
	if (!ins->q_tail)
		ins->q_tail = q;
	ins->nq++;
	mw_channel_want_space(&ins->ch, len);
}

/**
 * pvm_ins_flush() - send what waits in @ins's control queue, resume parked sockets
 * @ins: the INS (a splice's DATA_PIPE was just committed: the queue thaws)
 */
void pvm_ins_flush(struct pvm_ins *ins)
{
	ins_flush_queue(ins);
	if (!ins->q)
		pvm_relay_resume(ins);
}

/**
 * pvm_ins_ctl() - send a control frame that needs no result (CREDIT, or a built op)
 * @ins:     the INS
 * @type:    frame type
 * @sock:    socket id or 0
 * @payload: bytes copied into the ring (or the overflow queue if it is full)
 * @len:     payload length
 *
 * Control frames are never lost to a full ring: they wait in order in a small
 * queue that is sent first when room appears.  They also wait while a splice
 * into the data pipe is in flight: whatever the app did after writing those
 * bytes (an option, a shutdown, a close) must reach the INS after them.
 * Return: 0, -ENOENT if the INS is dead, -ENOMEM
 */
int pvm_ins_ctl(struct pvm_ins *ins, uint16_t type, uint64_t sock, const void *payload,
		uint32_t len)
{
	int ret;

	if (ins->dead)
		return -ENOENT;
	/* CREDIT's order does not matter: it never waits for a splice (nor stalls the INS). */
	if (type != MW_CREDIT && (ins->q || ins->splice_sock))
		return ins_enqueue(ins, type, sock, payload, len);
	ret = mw_channel_send(&ins->ch, type, sock, payload, len);
	if (ret == -EAGAIN) {
		ret = ins_enqueue(ins, type, sock, payload, len);
		if (!ret)
			mw_channel_want_space(&ins->ch, len);
	} else if (ret == -EPIPE) {
		ret = -ENOENT;
	}
	return ret;
}

/**
 * pvm_ins_op() - send a control op and remember it until its MW_RESULT
 * @ins:     the INS
 * @type:    MW_OP_*
 * @sock:    socket id (0 for channel-wide ops)
 * @payload: the op payload; its first u32 (the request id) is filled in here
 * @len:     payload length (>= 4)
 * @kind:    what to do with the result (pvm_sock_result())
 * @c:       the shim client waiting for it, or NULL
 * @out:     if not NULL, the request (valid until its result)
 * Return: 0, -ENOENT (INS dead), -ENOBUFS (pvm.ins_max_queued requests wait) or -ENOMEM
 */
int pvm_ins_op(struct pvm_ins *ins, uint16_t type, uint64_t sock, void *payload, uint32_t len,
	       enum pvm_req_kind kind, struct pvm_client *c, struct pvm_req **out)
{
	struct pvm_req *r;
	int ret;

	if (ins->dead)
		return -ENOENT;
	if (ins->nreqs >= (uint32_t)ins->pvm->cfg->ins_max_queued) {
		mw_log_ratelimited(MW_LOG_WARN,
				   "INS %u: %u requests wait for a result (pvm.ins_max_queued); %s "
				   "refused",
				   ins->id, ins->nreqs, mw_proto_type_name(type));
		return -ENOBUFS;
	}
	r = calloc(1, sizeof(*r));
	if (!r)
		return -ENOMEM;
	if (++ins->next_req == 0)
		ins->next_req = 1;
	r->req = ins->next_req;
	r->type = type;
	r->kind = kind;
	r->sock = sock;
	r->client = c;
	r->sent = ev_now(ins->pvm->loop);
	memcpy(payload, &r->req, sizeof(r->req));
	ret = pvm_ins_ctl(ins, type, sock, payload, len);
	if (ret) {
		free(r);
		return ret;
	}
	if (ins->reqs_tail)
		ins->reqs_tail->next = r;
	else
		ins->reqs = r;
	ins->reqs_tail = r;
	ins->nreqs++;
	if (c)
		c->req = r;
	if (out)
		*out = r;
	return 0;
}

/* Results come back in order in practice: the search almost always stops at the head. */
static struct pvm_req *ins_take_req(struct pvm_ins *ins, uint32_t id)
{
	struct pvm_req **pp, *r, *prev = NULL;

	for (pp = &ins->reqs; (r = *pp); prev = r, pp = &r->next) {
		if (r->req != id)
			continue;
		*pp = r->next;
		if (ins->reqs_tail == r)
			ins->reqs_tail = prev;
		ins->nreqs--;
		return r;
	}
	return NULL;
}

/* A connection, also while closing: accepted, or an app socket whose connect succeeded. */
static bool ins_is_conn(const struct pvm_sock *s)
{
	return s->kind == PVM_SOCK_ACCEPTED ||
	       (s->kind == PVM_SOCK_APP && s->outcome_known && !s->connect_err);
}

static int ins_rx_result(struct pvm_ins *ins, const struct mw_frame *f, const uint8_t *pl,
			 char *why, size_t wl)
{
	struct mw_result res;
	struct pvm_req *r;

	memcpy(&res, pl, sizeof(res));
	if (res.len > MW_SOCKOPT_MAX || f->len < sizeof(res) + res.len) {
		snprintf(why, wl, "RESULT value length %u does not fit", res.len);
		return -EBADMSG;
	}
	r = ins_take_req(ins, res.req);
	if (!r) {
		snprintf(why, wl, "RESULT for unknown request %u", res.req);
		return -EBADMSG;
	}
	if (res.status > 0 || res.status < -4095) {
		free(r);
		snprintf(why, wl, "RESULT status %d out of range", res.status);
		return -EBADMSG;
	}
	pvm_sock_result(ins, r, res.status, pl + sizeof(res), res.len);
	free(r);
	return 0;
}

static int ins_rx_accepted(struct pvm_ins *ins, struct pvm_sock *s, const uint8_t *pl, char *why,
			   size_t wl)
{
	struct pvm *p = ins->pvm;
	struct mw_ev_accepted ev;

	memcpy(&ev, pl, sizeof(ev));
	if (!mw_sockid_valid(ev.new_sock) || mw_sockid_ins(ev.new_sock) != ins->id ||
	    mw_sockid_pvm(ev.new_sock) != (uint8_t)p->cfg->index ||
	    !(mw_sockid_local(ev.new_sock) & MW_SOCKID_INS_ASSIGNED) ||
	    pvm_sock_find(p, ev.new_sock)) {
		snprintf(why, wl, "EV_ACCEPTED with bad or reused new id %#llx",
			 (unsigned long long)ev.new_sock);
		return -EBADMSG;
	}
	if (ins->nconns >= (uint32_t)p->cfg->ins_max_conns) {
		/* Aborted, not ignored: the INS holds the TCP connection until it is told. */
		if (ins->nconns >=
		    (uint32_t)p->cfg->ins_max_conns + (uint32_t)p->cfg->ins_max_conns / 8 + 64) {
			snprintf(why, wl,
				 "EV_ACCEPTED flood: %u connections (pvm.ins_max_conns %d) and it "
				 "does not answer our aborts",
				 ins->nconns, p->cfg->ins_max_conns);
			return -EBADMSG;
		}
		ins->conns_refused++;
		mw_log_ratelimited(MW_LOG_WARN,
				   "INS %u: %u connections open (pvm.ins_max_conns); connection "
				   "%#llx aborted",
				   ins->id, ins->nconns, (unsigned long long)ev.new_sock);
		s = pvm_sock_new(p, ins, ev.new_sock, PVM_SOCK_ACCEPTED, s->family);
		if (s)
			pvm_sock_close(s, true);
		return 0;
	}
	if (s->state == PVM_ST_CLOSING) {
		/* A listener we just closed may still have accepted: not hostile. */
		s = pvm_sock_new(p, ins, ev.new_sock, PVM_SOCK_ACCEPTED, s->family);
		if (s)
			pvm_sock_close(s, true);
		return 0;
	}
	if ((s->kind != PVM_SOCK_APP && s->kind != PVM_SOCK_REPLICA) ||
	    s->state != PVM_ST_LISTENING) {
		snprintf(why, wl, "EV_ACCEPTED on %#llx which is not listening",
			 (unsigned long long)s->id);
		return -EBADMSG;
	}
	return pvm_sock_accepted(ins, s, &ev);
}

static int ins_rx_frame(struct pvm_ins *ins, const struct mw_frame *f, const void *payload,
			char *why, size_t wl)
{
	struct pvm *p = ins->pvm;
	uint8_t priv[256] __attribute__((aligned(8)));
	const uint8_t *pl = payload;
	struct pvm_sock *s = NULL;
	struct mw_ev_connected conn;
	struct mw_ev_errno eno;
	struct mw_credit cr;

	if (f->type != MW_DATA) {
		if (f->len > sizeof(priv)) {
			snprintf(why, wl, "%s payload %u bytes is too long",
				 mw_proto_type_name(f->type), f->len);
			return -EBADMSG;
		}
		memcpy(priv, payload, f->len);
		pl = priv;
	}
	if (mw_proto_check(f, pl, MW_DIR_TO_PVM, why, wl))
		return -EBADMSG;
	ins->last_heard = ev_now(p->loop);

	if (f->type == MW_RESULT)
		return ins_rx_result(ins, f, pl, why, wl);
	if (f->type == MW_EV_HEARTBEAT) {
		memcpy(&ins->stats, pl, sizeof(ins->stats));
		return 0;
	}
	s = pvm_sock_find(p, f->sock);
	if (!s || s->ins != ins) {
		snprintf(why, wl, "%s for socket %#llx that is not on this INS",
			 mw_proto_type_name(f->type), (unsigned long long)f->sock);
		return -EBADMSG;
	}
	switch (f->type) {
	case MW_DATA:
		if (!ins_is_conn(s) || s->rx_eof || s->rx_reset) {
			snprintf(why, wl, "DATA on %#llx which is %s", (unsigned long long)s->id,
				 !ins_is_conn(s) ? "not a connection"
				 : s->rx_eof	 ? "past its EV_EOF"
						 : "past its EV_RESET");
			return -EBADMSG;
		}
		if (pvm_credit_rx_take(&s->cr, f->len)) {
			snprintf(why, wl, "DATA %u bytes on %#llx beyond the credit granted (%u)",
				 f->len, (unsigned long long)s->id,
				 s->cr.rx_window - s->cr.rx_outstanding);
			return -EBADMSG;
		}
		pvm_relay_data(s, payload, f->len);
		return 0;
	case MW_CREDIT:
		memcpy(&cr, pl, sizeof(cr));
		if (pvm_credit_tx_grant(&s->cr, cr.bytes)) {
			snprintf(why, wl, "CREDIT %u on %#llx exceeds what was sent", cr.bytes,
				 (unsigned long long)s->id);
			return -EBADMSG;
		}
		pvm_relay_credit(s);
		return 0;
	case MW_EV_ACCEPTED:
		return ins_rx_accepted(ins, s, pl, why, wl);
	case MW_EV_CONNECTED:
	case MW_EV_ERROR:
		if (s->state == PVM_ST_CLOSING)
			return 0;
		if (s->state != PVM_ST_CONNECTING || s->outcome_known) {
			snprintf(why, wl, "%s on %#llx which is not connecting",
				 mw_proto_type_name(f->type), (unsigned long long)s->id);
			return -EBADMSG;
		}
		s->outcome_known = true;
		if (f->type == MW_EV_CONNECTED) {
			memcpy(&conn, pl, sizeof(conn));
			s->local = conn.local;
			s->peer = conn.peer;
			s->state = PVM_ST_CONNECTED;
			s->connect_err = 0;
		} else {
			memcpy(&eno, pl, sizeof(eno));
			s->connect_err = eno.err > 0 && eno.err < 4096 ? eno.err : ECONNREFUSED;
		}
		pvm_shim_outcome(s);
		return 0;
	case MW_EV_EOF:
	case MW_EV_RESET:
		if (!ins_is_conn(s) || s->rx_reset || (f->type == MW_EV_EOF && s->rx_eof)) {
			snprintf(why, wl, "%s on %#llx which is %s", mw_proto_type_name(f->type),
				 (unsigned long long)s->id,
				 !ins_is_conn(s) ? "not connected" : "past that event already");
			return -EBADMSG;
		}
		if (f->type == MW_EV_EOF)
			s->rx_eof = true;
		else
			s->rx_reset = true;
		if (s->state == PVM_ST_CLOSING)
			return 0;
		if (f->type == MW_EV_EOF)
			pvm_relay_eof(s);
		else
			pvm_relay_reset(s);
		return 0;
	case MW_EV_CLOSED:
		/* Only the answer to our OP_CLOSE/OP_ABORT: a lie here would drop a live listener.
		 */
		if (s->state != PVM_ST_CLOSING) {
			snprintf(why, wl, "EV_CLOSED for %#llx which we did not close",
				 (unsigned long long)s->id);
			return -EBADMSG;
		}
		if (s->waiter)
			pvm_shim_answer(s->waiter, -ENOENT, s->id, NULL, NULL, 0);
		pvm_sock_free(s);
		return 0;
	default:
		snprintf(why, wl, "%s not expected from an INS", mw_proto_type_name(f->type));
		return -EBADMSG;
	}
}

/* One batch of frames; then send what waited for room. Return: true if @ins was killed (freed). */
static bool ins_poll(struct pvm_ins *ins)
{
	const void *payload;
	struct mw_frame f;
	char why[160];
	int budget, ret;

	if (ins->cut[0]) {
		snprintf(why, sizeof(why), "%s", ins->cut);
		pvm_ins_kill(ins, why);
		return true;
	}
	for (budget = RX_BUDGET; budget > 0; budget--) {
		ret = mw_channel_recv(&ins->ch, &f, &payload);
		if (ret == 0)
			break;
		if (ret < 0) {
			pvm_ins_kill(ins,
				     ins->ch.dead_reason[0] ? ins->ch.dead_reason : "corrupt ring");
			return true;
		}
		why[0] = 0;
		ret = ins_rx_frame(ins, &f, payload, why, sizeof(why));
		mw_channel_done(&ins->ch);
		if (!ret && ins->cut[0])
			snprintf(why, sizeof(why), "%s", ins->cut);
		if (ret || ins->cut[0]) {
			pvm_ins_kill(ins, why[0] ? why : "bad frame");
			return true;
		}
	}
	ins->more_rx = budget == 0;
	ins_flush_queue(ins);
	if (!ins->q)
		pvm_relay_resume(ins);
	return false;
}

static void ins_wait_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	struct pvm_ins *ins = w->data;

	mw_channel_woken(&ins->ch);
	ins_poll(ins);
}

/* Anything on the handshake socket ends the INS. Return: true if it was killed (freed). */
static bool ins_sock_check(struct pvm_ins *ins)
{
	char c;
	ssize_t n;

	if (ins->ch.sock_fd < 0)
		return false; /* Xen: no socket; the heartbeat timeout tells */
	n = recv(ins->ch.sock_fd, &c, 1, MSG_PEEK | MSG_DONTWAIT);
	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return false;
	if (n == 0)
		pvm_ins_kill(ins, "INS closed its handshake socket (process gone)");
	else if (n < 0)
		pvm_ins_kill(ins, "handshake socket error");
	else
		pvm_ins_kill(ins, "unexpected bytes on the handshake socket");
	return true;
}

static void ins_sock_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	(void)loop;
	(void)revents;
	ins_sock_check(w->data);
}

/* Shim clients whose request has waited pvm.op_timeout_ms get ETIMEDOUT; the request stays. */
static void ins_expire_ops(struct pvm_ins *ins, ev_tstamp now)
{
	ev_tstamp limit = ins->pvm->cfg->op_timeout_ms / 1000.0;
	struct pvm_client *c;
	struct pvm_req *r;
	unsigned n = 0;

	/* Requests are appended as sent: the oldest come first. */
	for (r = ins->reqs; r && now - r->sent >= limit; r = r->next) {
		if (!r->client)
			continue;
		c = r->client;
		r->client = NULL;
		n++;
		pvm_shim_answer(c, -ETIMEDOUT, r->sock, NULL, NULL, 0);
	}
	if (n)
		mw_log_ratelimited(
			MW_LOG_WARN,
			"INS %u: %u request(s) unanswered after %d ms (pvm.op_timeout_ms); "
			"the apps got ETIMEDOUT",
			ins->id, n, ins->pvm->cfg->op_timeout_ms);
}

static void ins_hb_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct pvm_ins *ins = w->data;
	char why[96];
	double silent;
	int i;

	(void)revents;
	/* Frames waiting in the ring are not silence: judge after draining them. */
	for (i = 0; i < HB_DRAIN_BATCHES; i++) {
		if (ins_poll(ins))
			return;
		if (!ins->more_rx)
			break;
	}
	if (ins->more_rx)
		ins->last_heard = ev_now(loop);
	silent = ev_now(loop) - ins->last_heard;
	if (silent * 1000.0 > ins->pvm->cfg->heartbeat_timeout_ms) {
		snprintf(why, sizeof(why), "silent for %.0f ms (heartbeat_timeout_ms %d)",
			 silent * 1000.0, ins->pvm->cfg->heartbeat_timeout_ms);
		pvm_ins_kill(ins, why);
		return;
	}
	ins_expire_ops(ins, ev_now(loop));
	/* Frames still pending may hold the EV_CLOSED: one heartbeat timeout more, no longer. */
	silent = pvm_sock_close_overdue(
		ins,
		ev_now(loop) - (ins->more_rx ? ins->pvm->cfg->heartbeat_timeout_ms / 1000.0 : 0));
	if (silent > 0) {
		snprintf(why, sizeof(why),
			 "a close unconfirmed (EV_CLOSED) for %.0f s (close_confirm_ms %d)", silent,
			 ins->pvm->cfg->close_confirm_ms);
		pvm_ins_kill(ins, why);
	}
}

/**
 * pvm_ins_kill() - end an INS channel and reap everything that lived on it
 * @ins:    the INS; freed on return
 * @reason: logged, and recorded in the channel
 */
void pvm_ins_kill(struct pvm_ins *ins, const char *reason)
{
	struct pvm *p = ins->pvm;
	struct pvm_ins **pp;
	struct pvm_req *r;
	struct pvm_ctlq *q;

	mw_channel_kill(&ins->ch, reason);
	if (ins->splicer) {
		ev_io_stop(p->loop, &ins->splice_io);
		ev_timer_stop(p->loop, &ins->splice_timer);
		pvm_splicer_shutdown(ins->splicer); /* a job in flight holds the app's socket */
		pvm_splicer_free(ins->splicer);
		ins->splicer = NULL;
	}
	pvm_view_ins_down(ins);
	mw_warn("INS %u: channel ended: %s; reaping %u socket(s)", ins->id, reason, ins->nsocks);
	if (ins->conns_refused)
		mw_warn("INS %u: %llu connection(s) had been aborted over pvm.ins_max_conns",
			ins->id, (unsigned long long)ins->conns_refused);
	ins->dead = true;
	p->ins_killed++;
	ev_io_stop(p->loop, &ins->wait_io);
	ev_io_stop(p->loop, &ins->sock_io);
	ev_timer_stop(p->loop, &ins->hb_timer);
	for (pp = &p->ins_list; *pp; pp = &(*pp)->next) {
		if (*pp == ins) {
			*pp = ins->next;
			break;
		}
	}
	p->nins--;
	pvm_netflow_ins_gone(ins);
	while ((r = ins->reqs)) {
		ins->reqs = r->next;
		if (r->client)
			pvm_shim_answer(r->client, -ENOENT, r->sock, NULL, NULL, 0);
		else if (r->done)
			r->done(r->done_ctx, -ENOENT, NULL, 0);
		free(r);
	}
	ins->reqs_tail = NULL;
	pvm_sock_reap_ins(ins);
	while ((q = ins->q)) {
		ins->q = q->next;
		free(q);
	}
	mw_channel_close(&ins->ch);
	free(ins);
}

/**
 * pvm_ins_new_id() - a free PVM-assigned socket id on @ins
 * @ins: the INS the socket will live on
 *
 * The counter is shared by all INS and survives their restarts (pvm_table.h):
 * an INS that comes back with the same id never gets its predecessor's ids
 * (still held by APP listeners, or by apps) again until the counter wrapped.
 * Return: the id, or 0 when pvm.id_space ids are all in use
 */
uint64_t pvm_ins_new_id(struct pvm_ins *ins)
{
	struct pvm *p = ins->pvm;
	uint64_t base = mw_sockid_make(ins->id, (uint8_t)p->cfg->index, 0);
	uint32_t local = pvm_idalloc(&p->ids, &p->socks, base);

	if (!local) {
		mw_log_ratelimited(MW_LOG_WARN,
				   "INS %u: all %d socket ids are in use (pvm.id_space)", ins->id,
				   p->cfg->id_space);
		return 0;
	}
	return base | local;
}

/* An INS with @id is up: is it really, or did it just die (a restart with the same id)? */
static bool ins_id_taken(struct pvm *p, uint16_t id)
{
	struct pvm_ins *old = pvm_ins_by_id(p, id);

	return old && !ins_sock_check(old);
}

/**
 * pvm_ins_hello() - the hello every INS sends us, for its answer
 * @p:    the daemon
 * @mine: filled
 */
void pvm_ins_hello(const struct pvm *p, struct mw_hello *mine)
{
	memset(mine, 0, sizeof(*mine));
	mine->magic = MW_PROTO_MAGIC;
	mine->version_min = MW_PROTO_VERSION_MIN;
	mine->version_max = MW_PROTO_VERSION_MAX;
	mine->pvm_index = (uint8_t)p->cfg->index;
	mine->ring_size = (uint32_t)p->cfg->ring_size;
	mine->window = (uint32_t)p->cfg->socket_window;
	mine->pid = getpid();
}

/**
 * pvm_ins_refusal() - why an INS with @hello may not join, whatever its backend
 * @p:     the daemon
 * @hello: its hello (untrusted)
 * Return: NULL if it may, else a short reason for the log
 */
const char *pvm_ins_refusal(struct pvm *p, const struct mw_hello *hello)
{
	return !hello->ins_id		       ? "id 0"
	       : hello->window < 1	       ? "window 0"
	       : ins_id_taken(p, hello->ins_id) ? "id in use"
						: NULL;
}

static void ins_splice_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	pvm_relay_splice_done(w->data);
}

/**
 * pvm_ins_splice_timer() - (re)arm the check on @ins's splice in flight
 * @ins:  the INS
 * @secs: check after this long
 *
 * Set before every start: libev keeps a stopped timer's remaining time.
 */
void pvm_ins_splice_timer(struct pvm_ins *ins, double secs)
{
	ev_timer_stop(ins->pvm->loop, &ins->splice_timer);
	ev_timer_set(&ins->splice_timer, secs, 0.0);
	ev_timer_start(ins->pvm->loop, &ins->splice_timer);
}

/* Stuck means inside splice() for the whole timeout, by the thread's own clock. */
static void ins_splice_timer_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct pvm_ins *ins = w->data;
	long limit = ins->pvm->cfg->splice_timeout_ms, ran;

	if (!ins->splicer || !ins->splice_sock)
		return;
	ran = pvm_splicer_running_ms(ins->splicer);
	if (ran < limit) {
		/* not started yet (a busy machine), ended (its report is next), or not long enough */
		pvm_ins_splice_timer(ins, (ran < 0 ? limit : limit - ran) / 1000.0);
		return;
	}
	pvm_relay_splice_stuck(ins);
}

/*
 * The data pipe's write end (protocol v2, local channel) goes to a splicer
 * thread (pvm_splice.c), never to the loop.  Closed here when unused: it is
 * still empty, so no INS can be holding its lock in a send.
 */
static void ins_data_pipe(struct pvm_ins *ins)
{
	int fd = ins->ch.pipe_fd;

	if (fd < 0)
		return;
	ins->ch.pipe_fd = -1;
	if (!ins->pvm->cfg->data_pipe) {
		close(fd);
		return;
	}
	ins->splicer = pvm_splicer_new(fd);
	if (!ins->splicer) {
		mw_warn("INS %u: no splicer thread (%s): bulk goes through the ring", ins->id,
			errno == EMFILE ? "too many are stuck in INS that hold their pipe"
					: strerror(errno));
		return;
	}
	ev_io_init(&ins->splice_io, ins_splice_cb, pvm_splicer_fd(ins->splicer), EV_READ);
	ins->splice_io.data = ins;
	ev_io_start(ins->pvm->loop, &ins->splice_io);
	ev_timer_init(&ins->splice_timer, ins_splice_timer_cb,
		      ins->pvm->cfg->splice_timeout_ms / 1000.0, 0.0);
	ins->splice_timer.data = ins;
}

/**
 * pvm_ins_start() - a channel is up (local or Xen handshake done): run the INS on it
 * @p:  the daemon
 * @ch: the channel; moved into the INS (reset here) or closed
 */
void pvm_ins_start(struct pvm *p, struct mw_channel *ch)
{
	struct pvm_ins *ins;
	double period;

	ins = calloc(1, sizeof(*ins));
	if (!ins) {
		mw_err("INS handshake: out of memory");
		mw_channel_close(ch);
		return;
	}
	ins->ch = *ch;
	/* The caller's copy no longer owns anything: closing it is a no-op. */
	memset(ch, 0, sizeof(*ch));
	ch->wait_fd = ch->kick_fd = ch->sock_fd = ch->pipe_fd = -1;
	ins->pvm = p;
	ins->id = ins->ch.peer.ins_id;
	ins->last_heard = ev_now(p->loop);
	ins->next = p->ins_list;
	p->ins_list = ins;
	p->nins++;
	ev_io_init(&ins->wait_io, ins_wait_cb, ins->ch.wait_fd, EV_READ);
	ins->wait_io.data = ins;
	ev_io_start(p->loop, &ins->wait_io);
	/* Xen has no handshake socket: the heartbeat timeout alone notices death. */
	ev_io_init(&ins->sock_io, ins_sock_cb, ins->ch.sock_fd, EV_READ);
	ins->sock_io.data = ins;
	if (ins->ch.sock_fd >= 0)
		ev_io_start(p->loop, &ins->sock_io);
	period =
		(p->cfg->heartbeat_timeout_ms < p->cfg->op_timeout_ms ? p->cfg->heartbeat_timeout_ms
								      : p->cfg->op_timeout_ms) /
		4000.0;
	ev_timer_init(&ins->hb_timer, ins_hb_cb, period, period);
	ins->hb_timer.data = ins;
	ev_timer_start(p->loop, &ins->hb_timer);
	ins_data_pipe(ins);
	mw_notice("INS %u joined over the %s channel (pid %d, window %u, heartbeat %u ms, "
		  "protocol v%u%s)",
		  ins->id, ins->ch.ops->name, ins->ch.peer.pid, ins->ch.peer.window,
		  ins->ch.peer.heartbeat_ms, ins->ch.version,
		  ins->splicer ? ", data pipe" : "");
	pvm_sock_replay_all(ins);
	pvm_netflow_ins_joined(ins);
	pvm_view_ins_up(ins);
	ins_poll(ins);
}

/**
 * pvm_ins_join() - a complete hello arrived (pvm_handshake.c): answer it, start the channel
 * @p:     the daemon
 * @fd:    the INS's connection (non-blocking); owned from here on
 * @hello: its hello
 */
void pvm_ins_join(struct pvm *p, int fd, const struct mw_hello *hello)
{
	struct mw_hello mine, peer = *hello;
	struct ucred cred = { 0 };
	socklen_t len = sizeof(cred);
	struct mw_channel ch;
	struct pvm_ins *ins, *next;
	const char *refuse;
	char err[160];
	int ret, pidfd;

	pvm_ins_hello(p, &mine);
	/* The kernel's word for who connected, not the hello's: a compromised INS
	 * (confined, it cannot fork) gets one channel, and cannot name another pid. */
	ret = getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) ? errno : 0;
	if (ret || cred.pid <= 0) {
		mw_warn("INS handshake: rejecting INS id %u (no peer credentials: %s)",
			hello->ins_id, ret ? strerror(ret) : "pid unknown");
		close(fd);
		return;
	}
	peer.pid = (uint32_t)cred.pid;
	for (ins = p->ins_list; ins; ins = next) {
		next = ins->next; /* a dead one found by the check is reaped */
		if (!ins->dead && ins->ch.sock_fd >= 0 && ins->ch.peer.pid == peer.pid &&
		    !ins_sock_check(ins)) {
			mw_warn("INS handshake: rejecting INS id %u (pid %d already holds the "
				"channel of INS %u)",
				hello->ins_id, (int)cred.pid, ins->id);
			close(fd);
			return;
		}
	}
	refuse = pvm_insproc_refusal(p, cred.pid, hello->ins_id, err, sizeof(err));
	if (!refuse)
		refuse = pvm_ins_refusal(p, &peer);
	if (refuse) {
		mw_warn("INS handshake: rejecting INS id %u (%s)", hello->ins_id, refuse);
		close(fd);
		return;
	}
	err[0] = 0;
	pidfd = mw_peer_pidfd(fd, cred.pid);
	ret = mw_channel_local_answer(&ch, fd, &mine, &peer, err, sizeof(err));
	if (ret) {
		mw_warn("INS handshake failed: %s", err[0] ? err : strerror(-ret));
		close(fd);
		if (pidfd >= 0)
			close(pidfd);
		return;
	}
	pvm_insproc_joined(p, pidfd, cred.pid, peer.ins_id);
	pvm_ins_start(p, &ch);
}

static void ins_accept_resume_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct pvm *p = w->data;

	(void)revents;
	ev_io_start(loop, &p->ins_io);
}

static void ins_listen_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	struct pvm *p = w->data;
	int i, fd;

	(void)revents;
	for (i = 0; i < 16; i++) {
		fd = accept4(w->fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
		if (fd < 0) {
			if (errno == EAGAIN || errno == EINTR)
				return;
			mw_log_ratelimited(MW_LOG_WARN, "accept on %s: %s", p->ins_path,
					   strerror(errno));
			if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS ||
			    errno == ENOMEM) {
				/* The connection stays queued: retry later, do not spin. */
				ev_io_stop(loop, w);
				ev_timer_start(loop, &p->ins_accept_pause);
			}
			return;
		}
		pvm_hs_start(p, fd);
	}
}

static void ins_prepare_cb(struct ev_loop *loop, ev_prepare *w, int revents)
{
	struct pvm *p = w->data;
	struct pvm_ins *ins, *next;
	bool again = false;

	for (ins = p->ins_list; ins; ins = next) {
		next = ins->next;
		if (ins->cut[0]) {
			ins_poll(ins); /* kills it */
			continue;
		}
		mw_channel_flush(&ins->ch);
		if (ins->more_rx || !mw_channel_sleep(&ins->ch))
			again = true;
	}
	if (again)
		ev_idle_start(loop, &p->idle);
}

static void ins_idle_cb(struct ev_loop *loop, ev_idle *w, int revents)
{
	struct pvm *p = w->data;
	struct pvm_ins *ins, *next;

	ev_idle_stop(loop, w);
	for (ins = p->ins_list; ins; ins = next) {
		next = ins->next;
		ins_poll(ins);
	}
}

/*
 * Confined INS run as ins.user (docs/ins.md "Confinement"): the socket (0660)
 * goes to that user's group.  Without the user, or without the right to give
 * the file away (the unit grants the group as a supplementary one), it stays
 * root's and a warning says that confined INS cannot join.
 */
static void ins_socket_group(struct pvm *p)
{
	const char *user = p->d->cfg.ins.user;
	struct passwd *pw;

	if (!user[0])
		return;
	pw = getpwnam(user);
	if (!pw) {
		mw_warn("ins.user %s does not exist: %s stays root-only, confined INS cannot join",
			user, p->ins_path);
		return;
	}
	if (chown(p->ins_path, (uid_t)-1, pw->pw_gid))
		mw_warn("cannot give %s to %s's group %u (%s): confined INS cannot join",
			p->ins_path, user, (unsigned)pw->pw_gid, strerror(errno));
}

/**
 * pvm_ins_open() - listen for INS handshakes on pvm.ins_socket
 * @p:      the daemon
 * @err:    one line on failure
 * @errlen: its size
 * Return: 0 or -errno
 */
int pvm_ins_open(struct pvm *p, char *err, size_t errlen)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	int fd, ret;

	snprintf(p->ins_path, sizeof(p->ins_path), "%s", p->cfg->ins_socket);
	if (strlen(p->ins_path) >= sizeof(sun.sun_path)) {
		snprintf(err, errlen, "pvm.ins_socket %s: path too long", p->ins_path);
		return -ENAMETOOLONG;
	}
	memcpy(sun.sun_path, p->ins_path, strlen(p->ins_path));
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		ret = -errno;
		goto fail;
	}
	unlink(p->ins_path);
	mw_refuse_rights_or_warn(fd, "pvm.ins_socket"); /* an INS passes none */
	if (bind(fd, (struct sockaddr *)&sun, sizeof(sun)) || chmod(p->ins_path, 0660) ||
	    listen(fd, 64)) {
		ret = -errno;
		close(fd);
		goto fail;
	}
	ins_socket_group(p);
	p->ins_fd = fd;
	ev_io_init(&p->ins_io, ins_listen_cb, fd, EV_READ);
	p->ins_io.data = p;
	ev_io_start(p->loop, &p->ins_io);
	ev_prepare_init(&p->prep, ins_prepare_cb);
	p->prep.data = p;
	ev_prepare_start(p->loop, &p->prep);
	ev_idle_init(&p->idle, ins_idle_cb);
	p->idle.data = p;
	ev_timer_init(&p->ins_accept_pause, ins_accept_resume_cb, ACCEPT_PAUSE_S, 0.0);
	p->ins_accept_pause.data = p;
	pvm_idalloc_init(&p->ids, (uint32_t)p->cfg->id_space);
	return 0;
fail:
	snprintf(err, errlen, "INS socket %s: %s", p->ins_path, strerror(-ret));
	return ret;
}

/**
 * pvm_ins_close_all() - at exit: end every channel, stop listening, remove the socket file
 * @p: the daemon
 */
void pvm_ins_close_all(struct pvm *p)
{
	struct pvm_ins *ins, *next;

	for (ins = p->ins_list; ins; ins = next) {
		next = ins->next;
		pvm_ins_kill(ins, "mw-pvm is stopping");
	}
	pvm_hs_close_all(p);
	pvm_insproc_close_all(p);
	ev_prepare_stop(p->loop, &p->prep);
	ev_idle_stop(p->loop, &p->idle);
	ev_timer_stop(p->loop, &p->ins_accept_pause);
	if (p->ins_fd >= 0) {
		ev_io_stop(p->loop, &p->ins_io);
		close(p->ins_fd);
		unlink(p->ins_path);
		p->ins_fd = -1;
	}
}
