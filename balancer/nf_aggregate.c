/* SPDX-License-Identifier: MIT */
/* nf_aggregate.c - mw-balancer's merged Netflow stream of every PVM */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "balancer/nf_aggregate.h"
#include "common/keystore.h"
#include "common/log.h"
#include "common/sockid.h"
#include "netflow/client.h"
#include "netflow/server.h"

/*
 * Theory of operation
 *
 * Upstreams: one Netflow client per PVM, found at /mw/pvms/<index>/netflow.
 * The key tree is watched, and re-read once a second, so an upstream is
 * created when its key appears, reconnected when its address changes or its
 * connection drops, and removed when the key goes.
 *
 * Downstream: consumers of the merged stream are served by the same
 * netflow/server.c as a PVM's (bounded queues, stall cut-off).  Every
 * observation from any upstream is re-published unchanged: socket ids carry
 * the PVM index in bits 32-39 (common/sockid.h), so they are already unique
 * across PVMs, and a request names its PVM by the id alone.
 *
 * Requests: BY_SOCK goes to the PVM of the id's index, under a fresh request
 * id on that upstream; AddrBlock and INS-wide settings go to every connected
 * PVM (each fans them out to its INS).  A fan records how many answers it
 * waits for; the consumer gets one response, with the first error if any.  An
 * upstream that drops fails its outstanding answers with -ENOENT.  While no
 * downstream consumer watches, upstreams are asked to stop monitoring, so the
 * PVMs' data paths pay nothing.
 */

#define UPSTREAM_CONNECT_MS 500
#define UPSTREAM_SEND_MS    200
#define RESYNC_S	    1.0

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
	struct nf_fan *fan;
};

struct nf_upstream {
	struct bal_nf *agg;
	struct nf_upstream *next;
	int index;
	char address[MW_ADDR_STRLEN];
	struct mw_nf_client *c; /* NULL while disconnected */
	ev_io io;
	struct nf_pending *pending;
	bool seen; /* still published (during a resync) */
	uint64_t obs;
};

struct bal_nf {
	struct ev_loop *loop;
	struct mw_keystore *ks;
	struct mw_nf_server *srv;
	ev_io ks_io;
	ev_timer resync;
	struct nf_upstream *ups;
	bool watching;
	char address[MW_ADDR_STRLEN];
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
	mw_notice("netflow: PVM %d stream (%s) lost: %s", u->index, u->address, why);
	ev_io_stop(u->agg->loop, &u->io);
	mw_nf_client_close(u->c);
	u->c = NULL;
	while ((p = u->pending)) {
		u->pending = p->next;
		fan_answer(u->agg, p->fan, -ENOENT, 0, 0);
		free(p);
	}
}

/* Send @req (id replaced) to @u as part of @f. */
static void up_forward(struct nf_upstream *u, const struct mw_nf_request *req, struct nf_fan *f)
{
	struct mw_nf_request copy = *req;
	struct nf_pending *p;
	int ret;

	f->pending++;
	p = calloc(1, sizeof(*p));
	if (!u->c || !p) {
		free(p);
		fan_answer(u->agg, f, u->c ? -ENOMEM : -ENOENT, 0, 0);
		return;
	}
	copy.id = mw_nf_client_alloc_id(u->c);
	ret = mw_nf_client_send(u->c, &copy, UPSTREAM_SEND_MS);
	if (ret) {
		free(p);
		fan_answer(u->agg, f, -ENOENT, 0, 0);
		up_disconnect(u, strerror(-ret));
		return;
	}
	p->up_id = copy.id;
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
	mw_log_ratelimited(MW_LOG_WARN, "netflow: PVM %d answered unknown request %u", u->index,
			   r->id);
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
				mw_nf_server_publish(u->agg->srv, &m.u.info);
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

static void up_connect(struct nf_upstream *u)
{
	char err[256];

	if (u->c || mw_nf_client_connect(&u->c, u->address, UPSTREAM_CONNECT_MS, err, sizeof(err)))
		return; /* retried at the next resync */
	ev_io_init(&u->io, up_read_cb, mw_nf_client_fd(u->c), EV_READ);
	u->io.data = u;
	ev_io_start(u->agg->loop, &u->io);
	mw_notice("netflow: merging PVM %d stream from %s", u->index, u->address);
	if (!u->agg->watching)
		up_monitor(u, false);
}

static void agg_seen(void *arg, const char *name)
{
	struct bal_nf *a = arg;
	char key[128], addr[MW_ADDR_STRLEN];
	struct nf_upstream *u;
	char *end;
	long idx;

	idx = strtol(name, &end, 10);
	if (*end || end == name || idx < 0 || idx > 255)
		return;
	snprintf(key, sizeof(key), MW_NF_KEY_PVMS "/%ld/netflow", idx);
	if (mw_keystore_read(a->ks, key, addr, sizeof(addr)) < 0 || !addr[0])
		return;
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

static void agg_request(void *ctx, struct mw_nf_reply to, const struct mw_nf_request *req)
{
	struct bal_nf *a = ctx;
	struct nf_upstream *u;
	struct nf_fan *f = calloc(1, sizeof(*f));
	bool all = req->name == MW_NF_ATTR_ADDR_BLOCK || (req->name & MW_NF_ATTR_PER_INS);

	if (!f) {
		mw_nf_server_respond(a->srv, to, -ENOMEM, 0, 0);
		return;
	}
	f->to = to;
	f->pending = 1; /* held while forwarding */
	if (all) {
		bool any = false;

		for (u = a->ups; u; u = u->next) {
			if (u->c) {
				up_forward(u, req, f);
				any = true;
			}
		}
		fan_answer(a, f, any ? 0 : -ENOENT, 0, 0);
		return;
	}
	if (!(req->flags & MW_NF_FLAG_BY_SOCK)) {
		fan_answer(a, f, -EINVAL, 0, 0);
		return;
	}
	for (u = a->ups; u && u->index != mw_sockid_pvm(req->sockfd); u = u->next)
		;
	if (u && u->c)
		up_forward(u, req, f);
	fan_answer(a, f, u && u->c ? 0 : -EBADF, 0, 0);
}

static void agg_watching(void *ctx, bool on)
{
	struct bal_nf *a = ctx;
	struct nf_upstream *u;

	a->watching = on;
	for (u = a->ups; u; u = u->next)
		if (u->c)
			up_monitor(u, on);
}

int bal_nf_open(struct bal_nf **out, struct ev_loop *loop, const struct mw_config *cfg, char *err,
		size_t errlen)
{
	struct mw_nf_server_config sc = {
		.listen = cfg->balancer.netflow_listen,
		.allow = cfg->balancer.netflow_allow,
		.queue = cfg->pvm.netflow_queue,
		.stall_ms = cfg->pvm.netflow_stall_ms,
	};
	struct mw_nf_server_ops ops = { .request = agg_request, .watching = agg_watching };
	struct bal_nf *a;
	int ret;

	*out = NULL;
	a = calloc(1, sizeof(*a));
	if (!a) {
		snprintf(err, errlen, "netflow: out of memory");
		return -ENOMEM;
	}
	a->loop = loop;
	ops.ctx = a;
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
	ret = mw_keystore_write(a->ks, MW_NF_KEY_BALANCER, a->address, strlen(a->address));
	if (ret) {
		snprintf(err, errlen, "netflow: cannot publish %s: %s", MW_NF_KEY_BALANCER,
			 strerror(-ret));
		goto fail;
	}
	ev_io_init(&a->ks_io, agg_ks_cb, mw_keystore_fd(a->ks), EV_READ);
	a->ks_io.data = a;
	ev_io_start(loop, &a->ks_io);
	ev_timer_init(&a->resync, agg_timer_cb, RESYNC_S, RESYNC_S);
	a->resync.data = a;
	ev_timer_start(loop, &a->resync);
	agg_resync(a);
	mw_notice("netflow: merged stream on %s, published at %s", a->address, MW_NF_KEY_BALANCER);
	*out = a;
	return 0;
fail:
	mw_nf_server_close(a->srv);
	mw_keystore_close(a->ks);
	free(a);
	return ret;
}

void bal_nf_close(struct bal_nf *a)
{
	struct nf_upstream *u;
	char cur[MW_ADDR_STRLEN];

	if (!a)
		return;
	ev_io_stop(a->loop, &a->ks_io);
	ev_timer_stop(a->loop, &a->resync);
	while ((u = a->ups)) {
		a->ups = u->next;
		up_disconnect(u, "mw-balancer is stopping");
		free(u);
	}
	mw_nf_server_close(a->srv);
	if (mw_keystore_read(a->ks, MW_NF_KEY_BALANCER, cur, sizeof(cur)) >= 0 &&
	    !strcmp(cur, a->address))
		mw_keystore_remove(a->ks, MW_NF_KEY_BALANCER);
	mw_keystore_close(a->ks);
	free(a);
}

void bal_nf_status(const struct bal_nf *a, char *buf, size_t len)
{
	struct mw_nf_server_stats st;
	const struct nf_upstream *u;
	unsigned n = 0;

	if (!a) {
		snprintf(buf, len, "netflow off");
		return;
	}
	for (u = a->ups; u; u = u->next)
		n += u->c != NULL;
	mw_nf_server_get_stats(a->srv, &st);
	snprintf(buf, len, "%u PVM stream(s), %llu netflow consumer(s)", n,
		 (unsigned long long)st.consumers);
}
