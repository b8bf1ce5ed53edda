/* SPDX-License-Identifier: MIT */
/* pvm_xen.c - INS domUs join mw-pvm through XenStore /mw/ins: watched, answered without blocking */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/channel_xen.h"
#include "common/keystore.h"
#include "common/log.h"
#include "pvm/pvm.h"

/*
 * Theory of operation (pvm.xen_channel; the keys are in channel_xen.h)
 *
 * mw-pvm in dom0 watches /mw/ins in XenStore.  A domain may write only below
 * /mw/ins/<its domid>/, which mw-balancer creates owned by it before the
 * domain runs (mw_keystore_give()); everything a domain writes there is
 * untrusted: the changed key is parsed strictly (mw_xen_parse_ins_key(), a
 * fuzz target), values are read into bounded buffers and parsed strictly by
 * the channel backend, and the hello's ins_id must be the domid.
 *
 *   ins_hello written      -> refusal checks as for a local INS (id in use,
 *                             window 0), then mw_channel_xen_answer(): pages
 *                             shared, port bound, keys and pvm_hello written;
 *                             a pending handshake with a PVM_XEN_HS_S deadline
 *   vm_evt_chn_is_bound    -> mw_channel_xen_confirm(): the channel goes to
 *                             pvm_ins_start(), as a local one does
 *
 * Nothing waits: a domain that never binds costs its shared pages until the
 * deadline; at most pvm.handshake_max are pending (one more drops the
 * oldest).  A new hello from a domain whose INS is joined means mw-ins there
 * started again: the old channel is ended first (a domain can only end its
 * own).  The same hello seen twice (the watch fires once when registered,
 * and the start-up scan) is answered once.  Peer death is the heartbeat
 * timeout's job: there is no socket.
 */

/*
 * A domU binds after it read our keys and mapped the pages: slower than a local
 * peer (a loaded or emulated host takes seconds).  The INS itself waits 5 s for us.
 */
#define PVM_XEN_HS_S 10.0
/* Watch events handled per wake-up, so a chatty domain cannot hold the loop. */
#define PVM_XEN_EVENTS 256

struct xen_hs {
	struct xen_hs *next;
	struct pvm_xen *x;
	uint16_t domid;
	struct mw_channel ch;
	char hello[MW_XEN_HELLO_MAX];
	ev_timer timer;
};

struct pvm_xen {
	struct pvm *p;
	struct mw_keystore *ks;
	ev_io io;
	struct xen_hs *hs; /* pending, newest first */
	unsigned nhs;
	uint64_t answered, refused, expired;
};

/* Undo a pending handshake already unlinked from the list. */
static void hs_release(struct xen_hs *h)
{
	struct pvm_xen *x = h->x;

	x->nhs--;
	ev_timer_stop(x->p->loop, &h->timer);
	mw_channel_close(&h->ch);
	free(h);
}

static void hs_free(struct xen_hs *h)
{
	struct xen_hs **pp;

	for (pp = &h->x->hs; *pp; pp = &(*pp)->next)
		if (*pp == h) {
			*pp = h->next;
			break;
		}
	hs_release(h);
}

static struct xen_hs *hs_find(struct pvm_xen *x, uint16_t domid)
{
	struct xen_hs *h;

	for (h = x->hs; h; h = h->next)
		if (h->domid == domid)
			return h;
	return NULL;
}

static void hs_timeout_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct xen_hs *h = w->data;

	(void)loop;
	(void)revents;
	h->x->expired++;
	mw_log_ratelimited(MW_LOG_WARN,
			   "INS domain %u: did not bind the event channel within %.0f s; "
			   "handshake dropped",
			   h->domid, PVM_XEN_HS_S);
	hs_free(h);
}

/* The oldest pending handshake (the list is newest first). */
static struct xen_hs *hs_oldest(struct pvm_xen *x)
{
	struct xen_hs *h = x->hs;

	while (h && h->next)
		h = h->next;
	return h;
}

/* An INS with @domid is joined: is @peer the hello it joined with (a repeated event)? */
static bool same_join(struct pvm_ins *ins, const struct mw_hello *peer)
{
	return !memcmp(&ins->ch.peer, peer, sizeof(*peer));
}

/* /mw/ins/<domid>/ins_hello changed: answer it (or ignore a repeat). */
static void xen_hello(struct pvm_xen *x, uint16_t domid)
{
	struct pvm *p = x->p;
	char key[MW_KEY_MAX], text[MW_XEN_HELLO_MAX], err[192] = "";
	struct mw_hello mine, peer;
	struct pvm_ins *old;
	struct xen_hs *h;
	const char *refuse;
	int ret;

	if (mw_xen_key(key, sizeof(key), domid, "ins_hello"))
		return;
	ret = mw_keystore_read(x->ks, key, text, sizeof(text));
	if (ret == -ENOENT)
		return; /* removed: the INS starts a new handshake */
	h = hs_find(x, domid);
	if (ret >= 0 && h && !strcmp(h->hello, text))
		return; /* already answered */
	if (h)
		hs_free(h); /* the INS started over */
	if (ret < 0 || mw_xen_hello_decode(text, &peer)) {
		x->refused++;
		mw_log_ratelimited(MW_LOG_WARN, "INS domain %u: hello %s; ignored", domid,
				   ret < 0 ? "unreadable or too long" : "malformed");
		return;
	}
	old = pvm_ins_by_id(p, domid);
	if (old && old->ch.sock_fd < 0 && peer.ins_id == domid) {
		if (same_join(old, &peer))
			return;
		pvm_ins_kill(old, "its domain started a new handshake (mw-ins restarted)");
	}
	refuse = pvm_ins_refusal(p, &peer);
	if (refuse) {
		x->refused++;
		mw_warn("INS handshake: rejecting domain %u, INS id %u (%s)", domid, peer.ins_id,
			refuse);
		return;
	}
	if (x->nhs >= (unsigned)p->cfg->handshake_max) {
		mw_log_ratelimited(MW_LOG_WARN,
				   "INS handshake: %u in progress (pvm.handshake_max); dropping the "
				   "oldest",
				   x->nhs);
		hs_free(hs_oldest(x));
	}
	h = calloc(1, sizeof(*h));
	if (!h) {
		mw_err("INS handshake: out of memory");
		return;
	}
	pvm_ins_hello(p, &mine);
	ret = mw_channel_xen_answer(&h->ch, x->ks, domid, &mine, text, err, sizeof(err));
	if (ret) {
		x->refused++;
		mw_warn("INS handshake with domain %u failed: %s", domid,
			err[0] ? err : strerror(-ret));
		free(h);
		return;
	}
	h->x = x;
	h->domid = domid;
	snprintf(h->hello, sizeof(h->hello), "%s", text);
	ev_timer_init(&h->timer, hs_timeout_cb, PVM_XEN_HS_S, 0.0);
	h->timer.data = h;
	ev_timer_start(p->loop, &h->timer);
	h->next = x->hs;
	x->hs = h;
	x->nhs++;
	x->answered++;
}

/* /mw/ins/<domid>/vm_evt_chn_is_bound changed: is the channel up? */
static void xen_bound(struct pvm_xen *x, uint16_t domid)
{
	struct xen_hs *h = hs_find(x, domid);
	char err[160] = "";
	int ret;

	if (!h)
		return;
	ret = mw_channel_xen_confirm(&h->ch, x->ks, domid, err, sizeof(err));
	if (ret == 0)
		return;
	if (ret < 0) {
		mw_warn("INS handshake with domain %u failed: %s", domid, err);
		hs_free(h);
		return;
	}
	/* A local INS may have taken the id meanwhile. */
	if (pvm_ins_by_id(x->p, domid)) {
		mw_warn("INS handshake: rejecting domain %u (id in use)", domid);
		hs_free(h);
		return;
	}
	pvm_ins_start(x->p, &h->ch);
	hs_free(h);
}

/* One changed key under /mw/ins. */
static void xen_key(struct pvm_xen *x, const char *key)
{
	char name[MW_XEN_NAME_MAX];
	uint16_t domid;

	if (mw_xen_parse_ins_key(key, &domid, name, sizeof(name)))
		return; /* not a key of ours: a guest may create anything below its directory */
	if (!strcmp(name, "ins_hello"))
		xen_hello(x, domid);
	else if (!strcmp(name, "vm_evt_chn_is_bound"))
		xen_bound(x, domid);
}

static void xen_io_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	struct pvm_xen *x = w->data;
	char key[MW_KEY_MAX], watch[MW_KEY_MAX];
	int i, ret;

	(void)loop;
	(void)revents;
	for (i = 0; i < PVM_XEN_EVENTS; i++) {
		ret = mw_keystore_next_event(x->ks, key, sizeof(key), watch, sizeof(watch));
		if (ret <= 0) {
			if (ret < 0)
				mw_log_ratelimited(MW_LOG_WARN, "XenStore watch: %s", strerror(-ret));
			return;
		}
		xen_key(x, key);
	}
}

/* At start: domains that wrote their hello before we watched. */
static void xen_scan_one(void *arg, const char *name)
{
	char key[MW_KEY_MAX];

	snprintf(key, sizeof(key), "/mw/ins/%s/ins_hello", name);
	xen_key(arg, key);
}

/* Can this host share pages and bind event channels?  Return: 0 or -errno with @err. */
static int xen_probe_devices(char *err, size_t errlen)
{
	static const char *const devs[] = { "/dev/xen/gntalloc", "/dev/xen/evtchn" };

	for (size_t i = 0; i < sizeof(devs) / sizeof(devs[0]); i++) {
		int fd = open(devs[i], O_RDWR | O_CLOEXEC);

		if (fd < 0)
			return mw_xen_open_error(devs[i], errno, err, errlen);
		close(fd);
	}
	return 0;
}

/**
 * pvm_xen_open() - with pvm.xen_channel, watch /mw/ins for INS domUs
 * @p:      the daemon (loop, cfg)
 * @err:    one line on failure
 * @errlen: its size
 * Return: 0 (also when off), or -errno: no Xen devices or no xenstored is fatal
 * when the channel was asked for
 */
int pvm_xen_open(struct pvm *p, char *err, size_t errlen)
{
	struct pvm_xen *x;
	char why[224];
	int ret;

	if (!p->cfg->xen_channel)
		return 0;
	ret = xen_probe_devices(why, sizeof(why));
	if (ret) {
		snprintf(err, errlen, "pvm.xen_channel: %s", why);
		return ret;
	}
	x = calloc(1, sizeof(*x));
	if (!x) {
		snprintf(err, errlen, "pvm.xen_channel: out of memory");
		return -ENOMEM;
	}
	x->p = p;
	ret = mw_keystore_open(&x->ks, "xenstore", NULL, why, sizeof(why));
	if (!ret)
		ret = mw_keystore_watch(x->ks, "/mw/ins");
	if (ret) {
		snprintf(err, errlen, "pvm.xen_channel: %s", why[0] ? why : strerror(-ret));
		if (x->ks)
			mw_keystore_close(x->ks);
		free(x);
		return ret;
	}
	p->xen = x;
	ev_io_init(&x->io, xen_io_cb, mw_keystore_fd(x->ks), EV_READ);
	x->io.data = x;
	ev_io_start(p->loop, &x->io);
	mw_keystore_list(x->ks, "/mw/ins", xen_scan_one, x);
	mw_notice("Xen channel: accepting INS domUs through XenStore /mw/ins");
	return 0;
}

/**
 * pvm_xen_close() - drop pending handshakes, stop watching
 * @p: the daemon
 */
void pvm_xen_close(struct pvm *p)
{
	struct pvm_xen *x = p->xen;
	struct xen_hs *h;

	if (!x)
		return;
	while ((h = x->hs)) {
		x->hs = h->next;
		hs_release(h);
	}
	ev_io_stop(p->loop, &x->io);
	mw_keystore_unwatch(x->ks, "/mw/ins");
	mw_keystore_close(x->ks);
	mw_notice("Xen channel: %llu handshake(s) answered, %llu refused, %llu expired",
		  (unsigned long long)x->answered, (unsigned long long)x->refused,
		  (unsigned long long)x->expired);
	free(x);
	p->xen = NULL;
}
