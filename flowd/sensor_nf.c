/* SPDX-License-Identifier: MIT */
/* sensor_nf.c - mw-flowd's Netflow link: connect, authenticate, MonitorOn, observations in,
 * reconnect */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "common/log.h"
#include "flowd/sensor_nf.h"
#include "netflow/auth.h"

/*
 * Theory of operation: one consumer connection to flowd.netflow or an entry
 * of flowd.netflow_streams (mw-pvm's AF_UNIX socket, or a balancer's merged
 * stream; TCP with flowd.netflow_token_file), each its own sensor.  The observe role is enough: mw-flowd only sends
 * MonitorOn, which starts the observations.  Every observation goes to the
 * socket table; a lost stream reports the interval so far as partial, forgets
 * the sockets (their cumulative counters come back with the next
 * observations, as "seen") and retries once a second.
 *
 * Reading is batched, as the live sensor's ring is (its blocks retire every
 * 100 ms): a busy app sends two observations per keep-alive request, and a
 * wake-up per observation (a context switch and two recv) cost more than the
 * observation itself.  Idle, the socket is watched; the first data read
 * switches to polling: the socket leaves the watch and is drained every
 * NF_BATCH_S, in as few recv as its bytes need (64 KiB each, stopping at the
 * first short one); a poll that finds nothing goes back to watching.  So a
 * steady stream costs NF_BATCH_S's wake-ups, not one per observation, and
 * mw-pvm's send wakes nobody.
 *
 * The socket holds little (mw-pvm's SO_SNDBUF of 64 KiB, which the kernel
 * doubles): mw-pvm queues the rest (pvm.netflow_queue) and sends it only once
 * a drain made room, so a fixed period would cap the stream at a socketful
 * per period and mw-pvm would drop the excess.  The period therefore follows
 * the rate: the next drain comes when NF_DRAIN_BYTES (about half a socketful) has
 * arrived at the last drain's rate, every NF_BATCH_S at most and
 * NF_BATCH_MIN_S at least (a backlog, after mw-flowd was not scheduled for a
 * while, drains at a socketful a millisecond).  The clock drains the stream
 * before it closes a second.
 */

#define NF_CONNECT_MS  2000
#define NF_RETRY_S     1.0
#define NF_BATCH_S     0.025
#define NF_BATCH_MIN_S 0.001
#define NF_DRAIN_BYTES (64 * 1024)
#define NF_READS_MAX   64 /* recv per drain: 4 MiB, so that the clock and MAPI go on under a flood */

static uint64_t wall_s(void)
{
	return (uint64_t)time(NULL);
}

static void nf_lost(struct fl_nf *n, const char *why)
{
	n->state = FL_NF_DOWN;
	mw_warn("netflow sensor: lost %s: %s; retrying every %.0f s", n->addr, why,
		NF_RETRY_S);
	snprintf(n->last_error, sizeof(n->last_error), "%s", why);
	ev_io_stop(n->loop, &n->io);
	ev_timer_stop(n->loop, &n->batch);
	mw_nf_client_close(n->nf);
	n->nf = NULL;
	n->disconnects++;
	fl_socks_reset(&n->socks, wall_s());
	ev_timer_start(n->loop, &n->retry);
}

/* Read and take every observation the socket holds.  Return: bytes read, or -1 (lost). */
static long nf_drain(struct fl_nf *n)
{
	struct mw_nf_msg msg;
	uint64_t now = wall_s();
	long total = 0;
	int r, ret, reads;
	ev_tstamp dt;

	for (reads = 0; reads < NF_READS_MAX; reads++) {
		r = mw_nf_client_read(n->nf);
		if (r < 0 && r != -ENOBUFS) {
			nf_lost(n, r == -ECONNRESET ? "the server closed the connection"
						    : strerror(-r));
			return -1;
		}
		while ((ret = mw_nf_client_next(n->nf, &msg)) == 1) {
			if (msg.sig == MW_NF_SIG_INFO)
				fl_socks_observe(&n->socks, &msg.u.info, now);
		}
		if (ret < 0) {
			nf_lost(n, "the stream is broken (unknown signature)");
			return -1;
		}
		if (r > 0)
			total += r;
		if (mw_nf_client_drained(n->nf))
			break;
	}
	n->reads += (uint64_t)reads + (reads < NF_READS_MAX);
	n->wakeups++;
	dt = ev_now(n->loop) - n->drained_at;
	n->drained_at += dt;
	n->rate = dt > 0 ? (double)total / dt : 0;
	return total;
}

/* Poll again when NF_DRAIN_BYTES will have come at the rate the last drain saw. */
static void nf_poll_next(struct fl_nf *n)
{
	ev_tstamp next = NF_BATCH_S;

	if (n->rate * NF_BATCH_S > NF_DRAIN_BYTES)
		next = NF_DRAIN_BYTES / n->rate;
	n->batch.repeat = next < NF_BATCH_MIN_S ? NF_BATCH_MIN_S : next;
	ev_timer_again(n->loop, &n->batch);
}

/* Data while watching: take it, then poll while the stream flows. */
static void nf_read_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	struct fl_nf *n = w->data;

	(void)revents;
	if (nf_drain(n) < 0)
		return;
	ev_io_stop(loop, &n->io);
	nf_poll_next(n);
}

static void nf_batch_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct fl_nf *n = w->data;
	long got;

	(void)revents;
	got = nf_drain(n);
	if (got < 0)
		return; /* lost: nf_lost stopped the timer */
	if (got) {
		nf_poll_next(n);
		return;
	}
	ev_timer_stop(loop, &n->batch);
	ev_io_start(loop, &n->io);
}

/*
 * The handshake (connect, Auth over TCP, MonitorOn) never waits in the loop:
 * a server that does not answer SYNs, or accepts and then says nothing, would
 * hold every sensor, MAPI client and the report clock for its timeouts, once a
 * second.  Each step is started and its outcome met by hs_io; hs_timer ends
 * the attempt after NF_CONNECT_MS, and the retry timer tries again.
 */

/* The attempt failed: say why (once per new reason), drop it; the retry timer goes on. */
static void hs_fail(struct fl_nf *n, const char *err)
{
	ev_io_stop(n->loop, &n->hs_io);
	ev_timer_stop(n->loop, &n->hs_timer);
	mw_nf_client_close(n->nf);
	n->nf = NULL;
	n->state = FL_NF_DOWN;
	if (strcmp(err, n->last_error))
		mw_warn("netflow sensor: %s (retrying every %.0f s)", err, NF_RETRY_S);
	snprintf(n->last_error, sizeof(n->last_error), "%s", err);
}

/* Send @req (one small write: a fresh socket takes it) and wait for its answer on hs_io. */
static int hs_send(struct fl_nf *n, struct mw_nf_request *req, enum fl_nf_state next)
{
	int ret = mw_nf_client_send(n->nf, req, 0);

	n->req_id = req->id;		   /* given by the send */
	explicit_bzero(req, sizeof(*req)); /* Auth carries the token */
	if (ret)
		return ret;
	n->state = next;
	ev_io_stop(n->loop, &n->hs_io);
	ev_io_set(&n->hs_io, mw_nf_client_fd(n->nf), EV_READ);
	ev_io_start(n->loop, &n->hs_io);
	return 0;
}

static void hs_monitor_on(struct fl_nf *n)
{
	struct mw_nf_request req = { .name = MW_NF_ATTR_MONITOR_ON };
	char err[256];
	int ret = hs_send(n, &req, FL_NF_MONITOR);

	if (ret) {
		snprintf(err, sizeof(err), "%s: MonitorOn: %s", n->addr, strerror(-ret));
		hs_fail(n, err);
	}
}

/* Connected: Auth first over TCP (flowd.netflow_token_file), else MonitorOn. */
static void hs_connected(struct fl_nf *n)
{
	const char *tf = n->cfg->netflow_token_file;
	struct mw_nf_request req = { 0 };
	char token[64], err[256];
	int ret;

	if (n->addr[0] == '/') {
		hs_monitor_on(n);
		return;
	}
	if (!tf[0]) {
		hs_fail(n, "a TCP Netflow server needs flowd.netflow_token_file");
		return;
	}
	ret = mw_nf_token_read(token, tf, err, sizeof(err));
	if (ret) {
		hs_fail(n, err);
		return;
	}
	mw_nf_request_set_auth(&req, token);
	explicit_bzero(token, sizeof(token));
	ret = hs_send(n, &req, FL_NF_AUTH);
	if (ret) {
		snprintf(err, sizeof(err), "%s: Auth: %s", n->addr, strerror(-ret));
		hs_fail(n, err);
	}
}

/* Subscribed: the stream is read from here on (nf_read_cb, nf_batch_cb). */
static void hs_up(struct fl_nf *n)
{
	ev_io_stop(n->loop, &n->hs_io);
	ev_timer_stop(n->loop, &n->hs_timer);
	ev_timer_stop(n->loop, &n->retry);
	n->state = FL_NF_UP;
	n->connects++;
	n->last_error[0] = 0;
	ev_io_init(&n->io, nf_read_cb, mw_nf_client_fd(n->nf), EV_READ);
	n->io.data = n;
	mw_notice("netflow sensor: %s subscribed", n->addr);
	nf_read_cb(n->loop, &n->io, EV_READ); /* what arrived with MonitorOn's answer; then polls */
}

/*
 * The answer to the request in flight, from what the socket holds now: at most
 * NF_READS_MAX reads a call (a server that streams frames cannot keep the loop
 * here), other messages dropped (none is due before MonitorOn's answer; what
 * follows that answer stays buffered for nf_drain()).  Return: 0 with @rsp,
 * -EAGAIN (not yet), or -errno (-ECONNRESET: the server closed)
 */
static int hs_response(struct fl_nf *n, struct mw_nf_response *rsp)
{
	struct mw_nf_msg msg;
	int r, ret, reads;

	for (reads = 0;; reads++) {
		while ((ret = mw_nf_client_next(n->nf, &msg)) == 1)
			if (msg.sig == MW_NF_SIG_RESPONSE && msg.u.response.id == n->req_id) {
				*rsp = msg.u.response;
				return 0;
			}
		if (ret < 0)
			return ret;
		if (reads == NF_READS_MAX || (reads && mw_nf_client_drained(n->nf)))
			return -EAGAIN;
		r = mw_nf_client_read(n->nf);
		if (r < 0 && r != -ENOBUFS)
			return r;
	}
}

static void hs_io_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	struct fl_nf *n = w->data;
	struct mw_nf_response rsp;
	char err[256];
	int ret;

	(void)loop;
	(void)revents;
	if (n->state == FL_NF_CONNECTING) {
		ret = mw_nf_client_connect_finish(n->nf);
		if (ret) {
			snprintf(err, sizeof(err), "netflow: connect to %s: %s", n->addr,
				 strerror(-ret));
			hs_fail(n, err);
			return;
		}
		hs_connected(n);
		return;
	}
	ret = hs_response(n, &rsp);
	if (ret == -EAGAIN)
		return; /* not all of it yet */
	if (!ret && rsp.status)
		ret = rsp.status;
	if (n->state == FL_NF_AUTH) {
		if (ret) { /* a wrong token gets no answer: the server closes */
			snprintf(err, sizeof(err), "%s refused the token of %s: %s", n->addr,
				 n->cfg->netflow_token_file,
				 strerror(ret == -ECONNRESET ? EACCES : -ret));
			hs_fail(n, err);
			return;
		}
		hs_monitor_on(n);
		return;
	}
	if (ret) {
		snprintf(err, sizeof(err), "MonitorOn: %s (not root nor in pvm.netflow_group?)",
			 strerror(-ret));
		hs_fail(n, err);
		return;
	}
	hs_up(n);
}

static void hs_timer_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct fl_nf *n = w->data;
	char err[256];

	(void)loop;
	(void)revents;
	snprintf(err, sizeof(err), "%s: no %s within %d ms", n->addr,
		 n->state == FL_NF_CONNECTING ? "connection"
		 : n->state == FL_NF_AUTH     ? "answer to Auth"
					      : "answer to MonitorOn",
		 NF_CONNECT_MS);
	hs_fail(n, err);
}

static void nf_retry_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct fl_nf *n = w->data;
	char err[256] = "";
	int ret;

	(void)revents;
	if (n->state != FL_NF_DOWN)
		return; /* an attempt is under way */
	ret = mw_nf_client_connect_start(&n->nf, n->addr, err, sizeof(err));
	if (ret && ret != -EINPROGRESS) {
		n->nf = NULL;
		hs_fail(n, err);
		return;
	}
	ev_timer_set(&n->hs_timer, NF_CONNECT_MS / 1000.0, 0.);
	ev_timer_start(loop, &n->hs_timer);
	if (!ret) {
		hs_connected(n); /* AF_UNIX connects at once */
		return;
	}
	n->state = FL_NF_CONNECTING;
	ev_io_set(&n->hs_io, mw_nf_client_fd(n->nf), EV_WRITE);
	ev_io_start(loop, &n->hs_io);
}

/**
 * fl_nf_open() - allocate the socket table and start connecting (now, then every second)
 * Return: 0 or -ENOMEM with @err
 */
int fl_nf_open(struct fl_nf *n, struct ev_loop *loop, const struct mw_flowd_config *cfg,
	       const char *addr, FILE *out, char *err, size_t errlen)
{
	int ret;

	n->loop = loop;
	n->cfg = cfg;
	n->addr = addr;
	snprintf(n->name, sizeof(n->name), "netflow:%s", addr);
	ret = fl_socks_init(&n->socks, cfg, out, n->name, err, errlen);
	if (ret)
		return ret;
	ev_timer_init(&n->retry, nf_retry_cb, 0, NF_RETRY_S);
	n->retry.data = n;
	ev_timer_init(&n->batch, nf_batch_cb, 0, NF_BATCH_S);
	n->batch.data = n;
	ev_init(&n->hs_io, hs_io_cb);
	n->hs_io.data = n;
	ev_init(&n->hs_timer, hs_timer_cb);
	n->hs_timer.data = n;
	ev_timer_start(loop, &n->retry);
	return 0;
}

/* fl_nf_tick() - the report clock (wall-clock seconds): what has arrived belongs to the second */
void fl_nf_tick(struct fl_nf *n, uint64_t now_s)
{
	if (n->nf && n->state == FL_NF_UP)
		nf_drain(n);
	fl_socks_tick(&n->socks, now_s);
}

/* fl_nf_close() - read what is pending, report the interval so far, disconnect, free */
void fl_nf_close(struct fl_nf *n, uint64_t now_s)
{
	ev_io_stop(n->loop, &n->hs_io);
	ev_timer_stop(n->loop, &n->hs_timer);
	if (n->nf && n->state == FL_NF_UP && nf_drain(n) >= 0)
		ev_io_stop(n->loop, &n->io);
	ev_timer_stop(n->loop, &n->retry); /* after the drain: a loss there restarts it */
	ev_timer_stop(n->loop, &n->batch);
	mw_info("netflow sensor: %s: %" PRIu64 " observations in %" PRIu64 " drains, %" PRIu64
		" recv",
		n->addr, n->socks.obs, n->wakeups, n->reads);
	fl_socks_second(&n->socks, now_s + 1);
	fl_socks_report(&n->socks, now_s, true);
	fl_socks_reset(&n->socks, now_s); /* still open: exported as at the end of a file */
	mw_nf_client_close(n->nf);
	n->nf = NULL;
	fl_socks_fini(&n->socks);
}
