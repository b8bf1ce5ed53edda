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

/* Connect, authenticate (TCP), MonitorOn.  Return: 0 or -errno with @err. */
static int nf_connect(struct fl_nf *n, char *err, size_t errlen)
{
	struct mw_nf_request req = { .name = MW_NF_ATTR_MONITOR_ON };
	const char *tf = n->cfg->netflow_token_file;
	struct mw_nf_response rsp;
	enum mw_nf_role role;
	char token[64];
	int ret;

	ret = mw_nf_client_connect(&n->nf, n->addr, NF_CONNECT_MS, err, errlen);
	if (ret)
		return ret;
	if (n->addr[0] != '/') {
		ret = tf[0] ? mw_nf_token_read(token, tf, err, errlen) : -EACCES;
		if (!tf[0])
			snprintf(err, errlen,
				 "a TCP Netflow server needs flowd.netflow_token_file");
		if (!ret) {
			ret = mw_nf_client_auth(n->nf, token, NF_CONNECT_MS, &role);
			explicit_bzero(token, sizeof(token));
			if (ret)
				snprintf(err, errlen, "%s refused the token of %s: %s",
					 n->addr, tf, strerror(-ret));
		}
		if (ret)
			goto fail;
	}
	ret = mw_nf_client_request(n->nf, &req, NF_CONNECT_MS, &rsp);
	if (!ret && rsp.status)
		ret = rsp.status;
	if (ret) {
		snprintf(err, errlen, "MonitorOn: %s (not root nor in pvm.netflow_group?)",
			 strerror(-ret));
		goto fail;
	}
	return 0;
fail:
	mw_nf_client_close(n->nf);
	n->nf = NULL;
	return ret;
}

static void nf_retry_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct fl_nf *n = w->data;
	char err[256] = "";

	(void)revents;
	if (n->nf)
		return;
	if (nf_connect(n, err, sizeof(err))) {
		if (strcmp(err, n->last_error))
			mw_warn("netflow sensor: %s (retrying every %.0f s)", err, NF_RETRY_S);
		snprintf(n->last_error, sizeof(n->last_error), "%s", err);
		return;
	}
	ev_timer_stop(loop, &n->retry);
	n->connects++;
	n->last_error[0] = 0;
	ev_io_init(&n->io, nf_read_cb, mw_nf_client_fd(n->nf), EV_READ);
	n->io.data = n;
	mw_notice("netflow sensor: %s subscribed", n->addr);
	nf_read_cb(loop, &n->io, EV_READ); /* what arrived with MonitorOn's answer; then polls */
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
	ev_timer_start(loop, &n->retry);
	return 0;
}

/* fl_nf_tick() - the report clock (wall-clock seconds): what has arrived belongs to the second */
void fl_nf_tick(struct fl_nf *n, uint64_t now_s)
{
	if (n->nf)
		nf_drain(n);
	fl_socks_tick(&n->socks, now_s);
}

/* fl_nf_close() - read what is pending, report the interval so far, disconnect, free */
void fl_nf_close(struct fl_nf *n, uint64_t now_s)
{
	ev_timer_stop(n->loop, &n->retry);
	ev_timer_stop(n->loop, &n->batch);
	if (n->nf && nf_drain(n) >= 0)
		ev_io_stop(n->loop, &n->io);
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
