/* SPDX-License-Identifier: MIT */
/* nf_aggregate.c - mw-balancer's merged Netflow stream of every PVM */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "balancer/nf_aggregate.h"
#include "common/keystore.h"
#include "common/log.h"
#include "common/sockid.h"
#include "netflow/client.h"
#include "netflow/server.h"

/*
 * Theory of operation
 *
 * Upstreams: one Netflow client per PVM, found at /mw/pvms/<index>/netflow_unix
 * (preferred: mw-balancer runs as root, so a PVM's AF_UNIX socket makes it a
 * control consumer) or /mw/pvms/<index>/netflow (TCP, with the token of
 * balancer.netflow_upstream_token_file).  The key tree is watched, and re-read
 * once a second, so an upstream is created when its key appears, reconnected
 * when its address changes or its connection drops, and removed when the key
 * goes.  Nothing here blocks the balancer's loop (which also moves the front
 * end's client bytes): connects are non-blocking and finished by a write
 * watcher (abandoned after UPSTREAM_CONNECT_S), requests are queued in a
 * bounded per-upstream buffer written by a watcher, and a forwarded request
 * not answered within balancer.netflow_request_timeout_ms is answered
 * -ETIMEDOUT (a late answer is then ignored).
 *
 * Downstream: consumers of the merged stream are served by the same
 * netflow/server.c as a PVM's (bounded queues, stall cut-off).  Every
 * observation from any upstream is re-published unchanged: socket ids carry
 * the PVM index in bits 32-39 (common/sockid.h), so they are already unique
 * across PVMs, and a request names its PVM by the id alone.  An observation
 * whose ids name another PVM than the one that sent it is dropped and counted
 * (one PVM cannot pose as another).
 *
 * Requests: BY_SOCK goes to the PVM of the id's index, under a fresh request
 * id on that upstream; AddrBlock and INS-wide settings go to every connected
 * PVM (each fans them out to its INS), except an AddrBlock scoped to one INS
 * (a socket id in val1), which goes to that id's PVM.  A fan records how many answers it
 * waits for; the consumer gets one response, with the first error if any.  An
 * upstream that drops fails its outstanding answers with -ENOENT.  While no
 * downstream consumer watches, upstreams are asked to stop monitoring, so the
 * PVMs' data paths pay nothing.
 */

#define UPSTREAM_CONNECT_S 3.0
#define UPSTREAM_OUT	   (MW_NF_REQUEST_SIZE * 256) /* queued requests per upstream */
#define RESYNC_S	   1.0
#define TIMEOUT_SWEEP_S	   0.1

struct nf_fan {
	struct mw_nf_reply to;
	bool silent; /* our own MonitorOn/Off: nobody to answer */
	unsigned pending;
	int status;
	uint64_t val0, val1;
};

struct nf_pending {
	struct nf_pending *next;
	uint32_t up_id;
	ev_tstamp deadline;
	struct nf_fan *fan;
};

struct nf_upstream {
	struct bal_nf *agg;
	struct nf_upstream *next;
	int index;
	char address[MW_ADDR_STRLEN + MW_PATH_MAX];
	struct mw_nf_client *c; /* NULL while disconnected */
	bool connecting;	/* connect in progress since @since */
	ev_tstamp since;
	ev_io io, wio;
	uint8_t out[UPSTREAM_OUT];
	size_t out_len;
	struct nf_pending *pending;
	bool seen; /* still published (during a resync) */
	uint64_t obs;
	uint64_t spoofed; /* observations naming another PVM, dropped */
	uint64_t timeouts;
};

struct bal_nf {
	struct ev_loop *loop;
	struct mw_keystore *ks;
	struct mw_nf_server *srv;
	struct mw_nf_tokens tokens;	    /* the merged stream's TCP consumers */
	char up_token[MW_NF_TOKEN_MAX + 1]; /* sent to PVMs reached over TCP; "" = none */
	ev_tstamp req_timeout;
	ev_io ks_io;
	ev_timer resync, sweep;
	struct nf_upstream *ups;
	bool watching;
	char address[MW_ADDR_STRLEN + MW_PATH_MAX];
	char tag_key[64]; /* MW_NF_KEY_BALANCERS/<tag>/netflow */
	bool legacy_key;  /* we wrote MW_NF_KEY_BALANCER */
};

static void fan_answer(struct bal_nf *a, struct nf_fan *f, int status, uint64_t v0, uint64_t v1)
{
	if (status && !f->status)
		f->status = status;
	if (!status && !f->val0 && !f->val1) {
		f->val0 = v0;
		f->val1 = v1;
	}
	if (--f->pending)
		return;
	if (!f->silent)
		mw_nf_server_respond(a->srv, f->to, f->status, f->status ? 0 : f->val0,
				     f->status ? 0 : f->val1);
	free(f);
}

static void up_disconnect(struct nf_upstream *u, const char *why)
{
	struct nf_pending *p;

	if (!u->c)
		return;
	if (u->connecting)
		mw_log_ratelimited(MW_LOG_INFO, "netflow: PVM %d stream (%s): connect failed: %s",
				   u->index, u->address, why);
	else
		mw_notice("netflow: PVM %d stream (%s) lost: %s", u->index, u->address, why);
	ev_io_stop(u->agg->loop, &u->io);
	ev_io_stop(u->agg->loop, &u->wio);
	mw_nf_client_close(u->c);
	u->c = NULL;
	u->connecting = false;
	u->out_len = 0;
	while ((p = u->pending)) {
		u->pending = p->next;
		fan_answer(u->agg, p->fan, -ENOENT, 0, 0);
		free(p);
	}
}

/* Queue @req (id replaced) for @u as part of @f; written by up_write_cb. */
static void up_forward(struct nf_upstream *u, const struct mw_nf_request *req, struct nf_fan *f)
{
	struct mw_nf_request copy = *req;
	struct nf_pending *p;

	f->pending++;
	if (!u->c || u->connecting) {
		fan_answer(u->agg, f, -ENOENT, 0, 0);
		return;
	}
	if (u->out_len + MW_NF_REQUEST_SIZE > sizeof(u->out)) {
		mw_log_ratelimited(MW_LOG_WARN,
				   "netflow: PVM %d does not take requests: %zu "
				   "bytes queued, request refused",
				   u->index, u->out_len);
		fan_answer(u->agg, f, -EBUSY, 0, 0);
		return;
	}
	p = calloc(1, sizeof(*p));
	if (!p) {
		fan_answer(u->agg, f, -ENOMEM, 0, 0);
		return;
	}
	copy.id = mw_nf_client_alloc_id(u->c);
	mw_nf_encode_request(u->out + u->out_len, &copy);
	u->out_len += MW_NF_REQUEST_SIZE;
	ev_io_start(u->agg->loop, &u->wio);
	p->up_id = copy.id;
	p->deadline = ev_now(u->agg->loop) + u->agg->req_timeout;
	p->fan = f;
	p->next = u->pending;
	u->pending = p;
}

static void up_response(struct nf_upstream *u, const struct mw_nf_response *r)
{
	struct nf_pending **pp, *p;

	for (pp = &u->pending; (p = *pp); pp = &p->next) {
		if (p->up_id != r->id)
			continue;
		*pp = p->next;
		fan_answer(u->agg, p->fan, r->status, r->val0, r->val1);
		free(p);
		return;
	}
	mw_log_ratelimited(MW_LOG_WARN,
			   "netflow: PVM %d answered unknown request %u (timed out already?)",
			   u->index, r->id);
}

/* Fail the forwarded requests whose time is up: the consumer gets -ETIMEDOUT. */
static void up_expire(struct nf_upstream *u, ev_tstamp now)
{
	struct nf_pending **pp, *p;

	for (pp = &u->pending; (p = *pp);) {
		if (p->deadline > now) {
			pp = &p->next;
			continue;
		}
		*pp = p->next;
		u->timeouts++;
		mw_log_ratelimited(
			MW_LOG_WARN,
			"netflow: PVM %d did not answer request %u in %.1f s: -ETIMEDOUT "
			"to the consumer",
			u->index, p->up_id, u->agg->req_timeout);
		fan_answer(u->agg, p->fan, -ETIMEDOUT, 0, 0);
		free(p);
	}
}

/* An observation must name the PVM that sent it. */
static bool up_obs_ok(struct nf_upstream *u, const struct mw_nf_info *info)
{
	if (mw_sockid_pvm(info->sockfd) == u->index &&
	    (!info->extra || mw_sockid_pvm(info->extra) == u->index))
		return true;
	u->spoofed++;
	mw_log_ratelimited(MW_LOG_WARN,
			   "netflow: PVM %d sent an observation of socket %#llx (PVM %d): dropped "
			   "(%llu so far)",
			   u->index, (unsigned long long)info->sockfd, mw_sockid_pvm(info->sockfd),
			   (unsigned long long)u->spoofed);
	return false;
}

static void up_monitor(struct nf_upstream *u, bool on)
{
	struct mw_nf_request req = { .name = on ? MW_NF_ATTR_MONITOR_ON : MW_NF_ATTR_MONITOR_OFF };
	struct nf_fan *f = calloc(1, sizeof(*f));

	if (!f)
		return;
	f->silent = true;
	f->pending = 1; /* held across the send */
	up_forward(u, &req, f);
	fan_answer(u->agg, f, 0, 0, 0);
}

static void up_read_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	struct nf_upstream *u = w->data;
	struct mw_nf_msg m;
	int n, ret;

	(void)loop;
	(void)revents;
	do {
		n = mw_nf_client_read(u->c);
		if (n < 0 && n != -ENOBUFS) {
			up_disconnect(u, n == -ECONNRESET ? "closed" : strerror(-n));
			return;
		}
		while ((ret = mw_nf_client_next(u->c, &m)) == 1) {
			if (m.sig == MW_NF_SIG_INFO) {
				u->obs++;
				/* Shared out by PVM: one cannot drown the rest. */
				if (up_obs_ok(u, &m.u.info))
					mw_nf_server_publish_src(u->agg->srv, &m.u.info,
								 (uint32_t)u->index);
			} else {
				up_response(u, &m.u.response);
			}
		}
		if (ret < 0) {
			up_disconnect(u, "sent a bad message");
			return;
		}
	} while (n != 0);
}

static void up_write_cb(struct ev_loop *loop, ev_io *w, int revents);

/* Connected: authenticate if over TCP, read, and mute it while nobody watches. */
static void up_ready(struct nf_upstream *u)
{
	u->connecting = false;
	ev_io_init(&u->io, up_read_cb, mw_nf_client_fd(u->c), EV_READ);
	u->io.data = u;
	ev_io_start(u->agg->loop, &u->io);
	mw_notice("netflow: merging PVM %d stream from %s", u->index, u->address);
	if (u->address[0] != '/') {
		struct mw_nf_request req = { 0 };
		struct nf_fan *f = calloc(1, sizeof(*f));

		if (!f) {
			up_disconnect(u, "out of memory");
			return;
		}
		mw_nf_request_set_auth(&req, u->agg->up_token);
		f->silent = true;
		f->pending = 1;
		up_forward(u, &req, f);
		fan_answer(u->agg, f, 0, 0, 0);
		explicit_bzero(&req, sizeof(req));
	}
	if (!u->agg->watching)
		up_monitor(u, false);
}

static void up_write_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	struct nf_upstream *u = w->data;
	ssize_t n;
	int ret;

	(void)revents;
	if (u->connecting) {
		ret = mw_nf_client_connect_finish(u->c);
		if (ret) {
			up_disconnect(u, strerror(-ret));
			return;
		}
		ev_io_stop(loop, w);
		up_ready(u);
		return;
	}
	n = send(mw_nf_client_fd(u->c), u->out, u->out_len, MSG_NOSIGNAL | MSG_DONTWAIT);
	if (n < 0) {
		if (errno != EAGAIN && errno != EINTR)
			up_disconnect(u, strerror(errno));
		return;
	}
	memmove(u->out, u->out + n, u->out_len - (size_t)n);
	u->out_len -= (size_t)n;
	if (!u->out_len)
		ev_io_stop(loop, w);
}

/* Start connecting (never waits); a connect that hangs is abandoned by the resync. */
static void up_connect(struct nf_upstream *u)
{
	char err[256];
	int ret;

	if (u->c && u->connecting && ev_now(u->agg->loop) - u->since > UPSTREAM_CONNECT_S)
		up_disconnect(u, "connect timed out");
	if (u->c)
		return;
	if (u->address[0] != '/' && !u->agg->up_token[0]) {
		mw_log_ratelimited(MW_LOG_WARN,
				   "netflow: PVM %d serves only TCP (%s): set "
				   "balancer.netflow_upstream_token_file to merge it",
				   u->index, u->address);
		return;
	}
	ret = mw_nf_client_connect_start(&u->c, u->address, err, sizeof(err));
	if (ret && ret != -EINPROGRESS) {
		mw_log_ratelimited(MW_LOG_INFO, "%s", err);
		return; /* retried at the next resync */
	}
	u->connecting = true;
	u->since = ev_now(u->agg->loop);
	ev_io_init(&u->wio, up_write_cb, mw_nf_client_fd(u->c), EV_WRITE);
	u->wio.data = u;
	if (ret == -EINPROGRESS) {
		ev_io_start(u->agg->loop, &u->wio);
		return;
	}
	up_ready(u);
}

static void agg_seen(void *arg, const char *name)
{
	struct bal_nf *a = arg;
	char key[128], addr[MW_ADDR_STRLEN + MW_PATH_MAX];
	struct nf_upstream *u;
	char *end;
	long idx;

	idx = strtol(name, &end, 10);
	if (*end || end == name || idx < 0 || idx > 255)
		return;
	snprintf(key, sizeof(key), MW_NF_KEY_PVMS "/%ld/netflow_unix", idx);
	if (mw_keystore_read(a->ks, key, addr, sizeof(addr)) < 0 || !addr[0]) {
		snprintf(key, sizeof(key), MW_NF_KEY_PVMS "/%ld/netflow", idx);
		if (mw_keystore_read(a->ks, key, addr, sizeof(addr)) < 0 || !addr[0])
			return;
	}
	for (u = a->ups; u && u->index != idx; u = u->next)
		;
	if (!u) {
		u = calloc(1, sizeof(*u));
		if (!u)
			return;
		u->agg = a;
		u->index = (int)idx;
		u->next = a->ups;
		a->ups = u;
	}
	u->seen = true;
	if (strcmp(u->address, addr)) {
		up_disconnect(u, "address changed");
		snprintf(u->address, sizeof(u->address), "%s", addr);
	}
	up_connect(u);
}

static void agg_resync(struct bal_nf *a)
{
	struct nf_upstream **pp, *u;

	for (u = a->ups; u; u = u->next)
		u->seen = false;
	mw_keystore_list(a->ks, MW_NF_KEY_PVMS, agg_seen, a);
	for (pp = &a->ups; (u = *pp);) {
		if (u->seen) {
			pp = &u->next;
			continue;
		}
		up_disconnect(u, "no longer published");
		*pp = u->next;
		free(u);
	}
}

static void agg_ks_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	struct bal_nf *a = w->data;
	char key[256], watch[256];
	bool changed = false;

	(void)loop;
	(void)revents;
	while (mw_keystore_next_event(a->ks, key, sizeof(key), watch, sizeof(watch)) == 1)
		changed = true;
	if (changed)
		agg_resync(a);
}

static void agg_timer_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	(void)loop;
	(void)revents;
	agg_resync(w->data);
}

static void agg_sweep_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct bal_nf *a = w->data;
	struct nf_upstream *u;

	(void)revents;
	for (u = a->ups; u; u = u->next)
		up_expire(u, ev_now(loop));
}

static void agg_request(void *ctx, struct mw_nf_reply to, const struct mw_nf_request *req)
{
	struct bal_nf *a = ctx;
	struct nf_upstream *u;
	struct nf_fan *f = calloc(1, sizeof(*f));
	bool block = req->name == MW_NF_ATTR_ADDR_BLOCK;
	/* A scoped AddrBlock names its INS by a socket id in val1 (docs/netflow.md). */
	uint64_t id = block ? mw_nf_val_get(req, 1) : req->sockfd;
	bool all = block ? !id : (req->name & MW_NF_ATTR_PER_INS) != 0;

	if (!f) {
		mw_nf_server_respond(a->srv, to, -ENOMEM, 0, 0);
		return;
	}
	f->to = to;
	f->pending = 1; /* held while forwarding */
	if (all) {
		bool any = false;

		for (u = a->ups; u; u = u->next) {
			if (u->c && !u->connecting) {
				up_forward(u, req, f);
				any = true;
			}
		}
		fan_answer(a, f, any ? 0 : -ENOENT, 0, 0);
		return;
	}
	if (!block && !(req->flags & MW_NF_FLAG_BY_SOCK)) {
		fan_answer(a, f, -EINVAL, 0, 0);
		return;
	}
	for (u = a->ups; u && u->index != mw_sockid_pvm(id); u = u->next)
		;
	if (u && u->c && !u->connecting)
		up_forward(u, req, f);
	fan_answer(a, f, u && u->c && !u->connecting ? 0 : -EBADF, 0, 0);
}

static void agg_watching(void *ctx, bool on)
{
	struct bal_nf *a = ctx;
	struct nf_upstream *u;

	a->watching = on;
	for (u = a->ups; u; u = u->next)
		if (u->c && !u->connecting)
			up_monitor(u, on);
}

/* Startup only, before the loop runs: a short blocking probe is harmless. */
#define TAG_PROBE_MS 500

/**
 * bal_nf_tag_check() - refuse a balancer.tag another live mw-balancer holds
 * @cfg:    balancer.tag and the common keystore settings
 * @err:    one line when refused
 * @errlen: its size
 *
 * Return: 0 (free, or a stale key of a balancer that is gone), -EADDRINUSE,
 * or -errno when the keystore cannot be opened
 */
int bal_nf_tag_check(const struct mw_config *cfg, char *err, size_t errlen)
{
	char key[MW_KEY_MAX], cur[MW_ADDR_STRLEN + MW_PATH_MAX], cerr[256];
	struct mw_nf_client *c;
	struct mw_keystore *ks;
	int ret;

	ret = mw_keystore_open(&ks, cfg->common.keystore, cfg->common.keystore_root, err, errlen);
	if (ret)
		return ret;
	snprintf(key, sizeof(key), MW_NF_KEY_BALANCERS "/%s/netflow", cfg->balancer.tag);
	if (mw_keystore_read(ks, key, cur, sizeof(cur)) >= 0 && cur[0] &&
	    !mw_nf_client_connect(&c, cur, TAG_PROBE_MS, cerr, sizeof(cerr))) {
		mw_nf_client_close(c);
		snprintf(err, errlen,
			 "balancer.tag \"%s\" is already used by another mw-balancer (its Netflow "
			 "stream answers at %s, keystore key %s): give every mw-balancer sharing "
			 "a keystore its own balancer.tag",
			 cfg->balancer.tag, cur, key);
		ret = -EADDRINUSE;
	}
	mw_keystore_close(ks);
	return ret;
}

/*
 * Publish at our own key, and at the untagged legacy key unless another live
 * balancer holds it: several balancers sharing a keystore never overwrite
 * each other.
 */
static int agg_publish(struct bal_nf *a, char *err, size_t errlen)
{
	char cur[MW_ADDR_STRLEN + MW_PATH_MAX], cerr[256];
	struct mw_nf_client *c;
	int ret;

	ret = mw_keystore_write(a->ks, a->tag_key, a->address, strlen(a->address));
	if (ret) {
		snprintf(err, errlen, "netflow: cannot publish %s: %s", a->tag_key, strerror(-ret));
		return ret;
	}
	if (mw_keystore_read(a->ks, MW_NF_KEY_BALANCER, cur, sizeof(cur)) >= 0 && cur[0] &&
	    strcmp(cur, a->address)) {
		if (!mw_nf_client_connect(&c, cur, TAG_PROBE_MS, cerr, sizeof(cerr))) {
			mw_nf_client_close(c);
			mw_notice("netflow: %s belongs to another balancer (%s): left alone",
				  MW_NF_KEY_BALANCER, cur);
			return 0;
		}
	}
	ret = mw_keystore_write(a->ks, MW_NF_KEY_BALANCER, a->address, strlen(a->address));
	if (ret) {
		snprintf(err, errlen, "netflow: cannot publish %s: %s", MW_NF_KEY_BALANCER,
			 strerror(-ret));
		return ret;
	}
	a->legacy_key = true;
	return 0;
}

static int agg_access(struct bal_nf *a, struct mw_nf_server_config *sc, const struct mw_config *cfg,
		      char *err, size_t errlen)
{
	const char *tf = cfg->balancer.netflow_upstream_token_file;
	int ret;

	ret = mw_nf_access_config(sc, &a->tokens, &cfg->pvm, sc->listen, err, errlen);
	if (ret)
		return ret;
	sc->allow = cfg->balancer.netflow_allow;
	if (tf[0])
		ret = mw_nf_token_read(a->up_token, tf, err, errlen);
	return ret;
}

/**
 * bal_nf_open() - serve the merged stream and follow the PVMs that publish theirs
 * @out:    the aggregator
 * @loop:   the balancer's loop
 * @cfg:    the configuration
 * @err:    one line on failure
 * @errlen: its size
 * Return: 0 or -errno
 */
int bal_nf_open(struct bal_nf **out, struct ev_loop *loop, const struct mw_config *cfg, char *err,
		size_t errlen)
{
	struct mw_nf_server_config sc = { .listen = cfg->balancer.netflow_listen };
	struct mw_nf_server_ops ops = { .request = agg_request, .watching = agg_watching };
	char upath[MW_PATH_MAX + 64];
	struct bal_nf *a;
	int ret;

	*out = NULL;
	a = calloc(1, sizeof(*a));
	if (!a) {
		snprintf(err, errlen, "netflow: out of memory");
		return -ENOMEM;
	}
	a->loop = loop;
	a->req_timeout = cfg->balancer.netflow_request_timeout_ms / 1000.;
	ops.ctx = a;
	snprintf(a->tag_key, sizeof(a->tag_key), MW_NF_KEY_BALANCERS "/%s/netflow",
		 cfg->balancer.tag);
	if (cfg->balancer.netflow_unix[0])
		snprintf(upath, sizeof(upath), "%s", cfg->balancer.netflow_unix);
	else
		snprintf(upath, sizeof(upath), "%s/balancer-%s-netflow.sock",
			 cfg->common.runtime_dir, cfg->balancer.tag);
	sc.unix_path = upath;
	ret = agg_access(a, &sc, cfg, err, errlen);
	if (ret)
		goto fail;
	ret = mw_keystore_open(&a->ks, cfg->common.keystore, cfg->common.keystore_root, err,
			       errlen);
	if (ret)
		goto fail;
	ret = mw_keystore_watch(a->ks, MW_NF_KEY_PVMS);
	if (ret) {
		snprintf(err, errlen, "netflow: cannot watch %s: %s", MW_NF_KEY_PVMS,
			 strerror(-ret));
		goto fail;
	}
	ret = mw_nf_server_open(&a->srv, loop, &sc, &ops, err, errlen);
	if (ret)
		goto fail;
	mw_nf_server_address(a->srv, a->address, sizeof(a->address));
	ret = agg_publish(a, err, errlen);
	if (ret)
		goto fail;
	ev_io_init(&a->ks_io, agg_ks_cb, mw_keystore_fd(a->ks), EV_READ);
	a->ks_io.data = a;
	ev_io_start(loop, &a->ks_io);
	ev_timer_init(&a->resync, agg_timer_cb, RESYNC_S, RESYNC_S);
	a->resync.data = a;
	ev_timer_start(loop, &a->resync);
	ev_timer_init(&a->sweep, agg_sweep_cb, TIMEOUT_SWEEP_S, TIMEOUT_SWEEP_S);
	a->sweep.data = a;
	ev_timer_start(loop, &a->sweep);
	agg_resync(a);
	mw_notice("netflow: merged stream on %s, published at %s%s", a->address, a->tag_key,
		  a->legacy_key ? " and " MW_NF_KEY_BALANCER : "");
	*out = a;
	return 0;
fail:
	mw_nf_server_close(a->srv);
	mw_keystore_close(a->ks);
	explicit_bzero(a, sizeof(*a));
	free(a);
	return ret;
}

/**
 * bal_nf_reload() - apply what a reload may change
 * @a:   the aggregate (NULL: nothing)
 * @cfg: the configuration, updated by bal_reload()
 *
 * balancer.netflow_request_timeout_ms: requests forwarded from now on; the
 * rest of the stream's settings are restart-only (ins.c names them).
 */
void bal_nf_reload(struct bal_nf *a, const struct mw_config *cfg)
{
	if (a)
		a->req_timeout = cfg->balancer.netflow_request_timeout_ms / 1000.;
}

void bal_nf_close(struct bal_nf *a)
{
	struct nf_upstream *u;
	char cur[MW_ADDR_STRLEN + MW_PATH_MAX];

	if (!a)
		return;
	ev_io_stop(a->loop, &a->ks_io);
	ev_timer_stop(a->loop, &a->resync);
	ev_timer_stop(a->loop, &a->sweep);
	while ((u = a->ups)) {
		a->ups = u->next;
		up_disconnect(u, "mw-balancer is stopping");
		free(u);
	}
	mw_nf_server_close(a->srv);
	if (mw_keystore_read(a->ks, MW_NF_KEY_BALANCER, cur, sizeof(cur)) >= 0 &&
	    !strcmp(cur, a->address))
		mw_keystore_remove(a->ks, MW_NF_KEY_BALANCER);
	if (mw_keystore_read(a->ks, a->tag_key, cur, sizeof(cur)) >= 0 && !strcmp(cur, a->address))
		mw_keystore_remove(a->ks, a->tag_key);
	mw_keystore_close(a->ks);
	explicit_bzero(a, sizeof(*a));
	free(a);
}

struct list_ctx {
	void (*fn)(void *ctx, const char *line);
	void *ctx;
};

static void list_one(void *arg, const struct mw_nf_consumer_info *ci)
{
	struct list_ctx *l = arg;
	char line[256], peer[MW_ADDR_STRLEN];
	size_t i;

	/* mwctl's records are space-separated key=value words. */
	for (i = 0; ci->peer[i] && i + 1 < sizeof(peer); i++)
		peer[i] = ci->peer[i] == ' ' ? '_' : ci->peer[i];
	peer[i] = '\0';
	snprintf(line, sizeof(line),
		 "netflow_consumer peer=%s role=%s monitor=%d queued=%zu drops=%llu", peer,
		 mw_nf_role_name(ci->role), ci->monitor, ci->queued, (unsigned long long)ci->drops);
	l->fn(l->ctx, line);
}

/**
 * bal_nf_list() - one line per consumer of the merged stream
 * @a:   the aggregate, or NULL
 * @fn:  called with each line
 * @ctx: its argument
 */
void bal_nf_list(const struct bal_nf *a, void (*fn)(void *ctx, const char *line), void *ctx)
{
	struct list_ctx l = { .fn = fn, .ctx = ctx };

	if (a)
		mw_nf_server_foreach(a->srv, list_one, &l);
}

void bal_nf_status(const struct bal_nf *a, char *buf, size_t len)
{
	struct mw_nf_server_stats st;
	const struct nf_upstream *u;
	uint64_t spoofed = 0, timeouts = 0;
	unsigned n = 0;

	if (!a) {
		snprintf(buf, len, "netflow off");
		return;
	}
	for (u = a->ups; u; u = u->next) {
		n += u->c && !u->connecting;
		spoofed += u->spoofed;
		timeouts += u->timeouts;
	}
	mw_nf_server_get_stats(a->srv, &st);
	snprintf(buf, len,
		 "%u PVM stream(s), %llu netflow consumer(s), %llu spoofed observation(s) "
		 "dropped, %llu request timeout(s)",
		 n, (unsigned long long)st.consumers, (unsigned long long)spoofed,
		 (unsigned long long)timeouts);
}
