/* SPDX-License-Identifier: MIT */
/* nf.c - mw-guard's Netflow link: connect, authenticate, subscribe, feed the engine, reconnect */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "common/log.h"
#include "guard/guardd.h"
#include "netflow/auth.h"

/*
 * Theory of operation
 *
 * One connection to one Netflow server (mw-pvm's, or a balancer's merged
 * stream).  Connecting, the Auth request (TCP only) and MonitorOn are done
 * with short timeouts when the retry timer fires; then the socket is watched
 * and every observation goes to the engine, every response to the action
 * sink.  A lost stream (server gone, broken framing) resets the engine's model
 * (connections and listeners are seen again from the next observations) and
 * retries once a second; the blocks mw-guard placed are kept, to be lifted.
 */

#define NF_CONNECT_MS 2000
#define NF_RETRY_S    1.0

/* gd_nf_address() - guard.netflow, or mw-pvm's AF_UNIX socket of the same configuration */
void gd_nf_address(const struct mw_config *cfg, char *out, size_t len)
{
	if (cfg->guard.netflow[0])
		snprintf(out, len, "%s", cfg->guard.netflow);
	else if (cfg->pvm.netflow_unix[0])
		snprintf(out, len, "%s", cfg->pvm.netflow_unix);
	else
		snprintf(out, len, "%s/netflow-%d.sock", cfg->common.runtime_dir, cfg->pvm.index);
}

static int64_t mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void nf_lost(struct guardd *g, const char *why)
{
	mw_warn("netflow: lost %s: %s; retrying every %.0f s", g->nf_addr, why, NF_RETRY_S);
	snprintf(g->last_error, sizeof(g->last_error), "%s", why);
	ev_io_stop(g->d->loop, &g->nf_io);
	mw_nf_client_close(g->nf);
	g->nf = NULL;
	g->act.nf = NULL;
	g->disconnects++;
	gd_engine_reset(&g->eng);
	ev_timer_start(g->d->loop, &g->retry);
}

static void nf_read_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	struct guardd *g = w->data;
	struct mw_nf_msg msg;
	int64_t now = mono_ms();
	int n, ret, budget;

	/* At most 64 buffers a wake-up, so that the ticks and mwctl go on under a flood. */
	for (budget = 64; budget; budget--) {
		n = mw_nf_client_read(g->nf);
		if (n < 0 && n != -ENOBUFS) {
			nf_lost(g, n == -ECONNRESET ? "the server closed the connection"
						    : strerror(-n));
			return;
		}
		while ((ret = mw_nf_client_next(g->nf, &msg)) == 1) {
			if (msg.sig == MW_NF_SIG_INFO)
				gd_engine_observe(&g->eng, &msg.u.info, now);
			else
				gd_act_response(&g->act, &msg.u.response);
		}
		if (ret < 0) {
			nf_lost(g, "the stream is broken (unknown signature)");
			return;
		}
		if (!n)
			return; /* nothing more to read now */
	}
}

/* Connect, authenticate (TCP), MonitorOn.  Return: 0 or -errno with @err. */
static int nf_connect(struct guardd *g, char *err, size_t errlen)
{
	struct mw_nf_request req = { .name = MW_NF_ATTR_MONITOR_ON };
	const char *tf = g->cfg->guard.netflow_token_file;
	struct mw_nf_response rsp;
	enum mw_nf_role role = MW_NF_ROLE_CONTROL;
	char token[64];
	int ret;

	ret = mw_nf_client_connect(&g->nf, g->nf_addr, NF_CONNECT_MS, err, errlen);
	if (ret)
		return ret;
	if (g->nf_addr[0] != '/') {
		ret = tf[0] ? mw_nf_token_read(token, tf, err, errlen) : -EACCES;
		if (!tf[0])
			snprintf(err, errlen,
				 "a TCP Netflow server needs guard.netflow_token_file");
		if (!ret) {
			ret = mw_nf_client_auth(g->nf, token, NF_CONNECT_MS, &role);
			explicit_bzero(token, sizeof(token));
			if (ret)
				snprintf(err, errlen, "%s refused the token of %s: %s", g->nf_addr,
					 tf, strerror(-ret));
		}
		if (ret)
			goto fail;
	}
	ret = mw_nf_client_request(g->nf, &req, NF_CONNECT_MS, &rsp);
	if (!ret && rsp.status)
		ret = rsp.status;
	if (ret) {
		snprintf(err, errlen, "MonitorOn: %s (not root nor in pvm.netflow_control_group?)",
			 strerror(-ret));
		goto fail;
	}
	if (role != MW_NF_ROLE_CONTROL && !g->act.report)
		mw_warn("netflow: %s gave the observe role: every action will be refused",
			g->nf_addr);
	return 0;
fail:
	mw_nf_client_close(g->nf);
	g->nf = NULL;
	return ret;
}

static void nf_retry_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct guardd *g = w->data;
	char err[256] = "";

	if (g->nf)
		return;
	if (nf_connect(g, err, sizeof(err))) {
		if (strcmp(err, g->last_error))
			mw_warn("netflow: %s (retrying every %.0f s)", err, NF_RETRY_S);
		snprintf(g->last_error, sizeof(g->last_error), "%s", err);
		return;
	}
	ev_timer_stop(loop, &g->retry);
	g->connects++;
	g->last_error[0] = 0;
	g->act.nf = g->nf;
	ev_io_init(&g->nf_io, nf_read_cb, mw_nf_client_fd(g->nf), EV_READ);
	g->nf_io.data = g;
	ev_io_start(loop, &g->nf_io);
	mw_notice("ready: netflow %s subscribed, mode %s, %d listener(s) configured, baseline %s",
		  g->nf_addr, g->cfg->guard.mode, g->cfg->guard.listeners_count,
		  g->cfg->guard.baseline ? "on" : "off");
	if (!g->ready_sent)
		mw_daemon_ready(g->d, "netflow %s, mode %s", g->nf_addr, g->cfg->guard.mode);
	g->ready_sent = true;
	nf_read_cb(loop, &g->nf_io, EV_READ); /* what arrived with MonitorOn's answer */
}

static void tick_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct guardd *g = w->data;

	if (g->nf)
		gd_engine_tick(&g->eng, mono_ms());
	mw_daemon_status(g->d, "netflow %s, %s, %" PRIu64 " action(s)",
			 g->nf ? "connected" : "disconnected", g->cfg->guard.mode, g->act.seq);
}

/* gd_nf_start() - connect now and every second until it works; start the ticks */
void gd_nf_start(struct guardd *g)
{
	double tick = g->cfg->guard.tick_ms / 1000.0;

	gd_nf_address(g->cfg, g->nf_addr, sizeof(g->nf_addr));
	ev_timer_init(&g->retry, nf_retry_cb, 0, NF_RETRY_S);
	g->retry.data = g;
	ev_timer_start(g->d->loop, &g->retry);
	ev_timer_init(&g->tick, tick_cb, tick, tick);
	g->tick.data = g;
	ev_timer_start(g->d->loop, &g->tick);
}

void gd_nf_stop(struct guardd *g)
{
	ev_timer_stop(g->d->loop, &g->retry);
	ev_timer_stop(g->d->loop, &g->tick);
	if (g->nf)
		ev_io_stop(g->d->loop, &g->nf_io);
	mw_nf_client_close(g->nf);
	g->nf = NULL;
	g->act.nf = NULL;
}
