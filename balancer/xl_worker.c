/* SPDX-License-Identifier: MIT */
/* xl_worker.c - the xl backend's domains: one worker thread makes the hypervisor calls */
#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "balancer/xl_worker.h"
#include "common/log.h"

/*
 * Theory of operation
 *
 * libxl calls block (creating a domain waits for xenstored, the hypervisor
 * and the vif hotplug script: seconds), and the balancer's loop also moves
 * every client's bytes.  So the loop never calls the driver: it queues
 * wishes on a record per INS (create, shutdown, destroy, forget) and reads
 * the record's phase; a worker thread does the calls, one at a time, and
 * posts what happened back with an ev_async, whose callback logs it on the
 * loop's thread.  Per record:
 *
 *   QUEUED --create ok--> RUNNING --state gone/shut down, or destroyed--> GONE
 *      \--create failed or destroyed before it started-----------------> GONE
 *
 * A RUNNING domain is asked its state every poll_s (death detection: the
 * balancer's tick sees alive() turn 0 and replaces it like a dead process);
 * one that shut down is destroyed (libxl keeps a shut-down domain until
 * someone does), and so is one already gone (`xl destroy` behind our
 * back): the driver's destroy also removes what the domain left in
 * XenStore (/mw/ins/<domid>), which nobody else would.  A shutdown that has not ended the domain after stop_s
 * becomes a destroy.  A forgotten record is destroyed if needed, then freed.
 *
 * libxl forks (hotplug scripts) and, told so with libxl_childproc_setmode
 * (libxl_sigchld_owner_mainloop), leaves reaping to us: libev owns SIGCHLD
 * and reaps every child, so an ev_child on any pid hands each one to the
 * driver (libxl_childproc_reaped), which ignores those that are not its own.
 */

enum rec_phase { R_QUEUED, R_RUNNING, R_GONE };

struct rec {
	struct rec *next;
	int id;
	struct bal_xl_domcfg cfg;
	enum rec_phase phase;
	bool busy; /* the worker is in a call for it */
	uint32_t domid;
	bool want_shutdown, shutdown_sent, want_destroy, forgotten;
	double shutdown_at, next_poll;
	char msg[320];
	bool msg_warn;
};

struct bal_xlw {
	const struct bal_xl_driver *drv;
	void *ctx;
	struct ev_loop *loop;
	ev_async async;
	ev_child child;
	bool child_on;
	pthread_t th;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	bool quit;
	struct rec *recs;
	struct bal_xlw_timing t;
};

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static struct rec *rec_find(struct bal_xlw *w, int id)
{
	struct rec *r;

	for (r = w->recs; r; r = r->next)
		if (r->id == id && !r->forgotten)
			return r;
	return NULL;
}

/* Called with the lock held: a line for the loop to log. */
static void rec_say(struct rec *r, bool warn, const char *what, const char *detail)
{
	snprintf(r->msg, sizeof(r->msg), "INS %d (%s, domain %u): %s%s", r->id, r->cfg.name,
		 r->domid, what, detail);
	r->msg_warn = warn;
}

/* One call for @r, made without the lock.  Return: true if something was done. */
static bool rec_step(struct bal_xlw *w, struct rec *r, double now)
{
	const struct bal_xl_driver *d = w->drv;
	struct bal_xl_domcfg cfg;
	char err[256] = "";
	uint32_t domid = 0;
	int ret;

	if (r->phase == R_QUEUED && (r->want_destroy || r->forgotten || w->quit)) {
		r->phase = R_GONE;
		return true;
	}
	if (r->phase == R_QUEUED) {
		cfg = r->cfg;
		r->busy = true;
		pthread_mutex_unlock(&w->mu);
		ret = d->create(w->ctx, &cfg, &domid, err, sizeof(err));
		pthread_mutex_lock(&w->mu);
		r->busy = false;
		if (ret) {
			r->phase = R_GONE;
			rec_say(r, true, "not created: ", err[0] ? err : "error");
			return true;
		}
		r->domid = domid;
		r->phase = R_RUNNING;
		r->next_poll = now_s() + w->t.poll_s;
		rec_say(r, false, "created and running", "");
		return true;
	}
	if (r->phase != R_RUNNING)
		return false;
	domid = r->domid;
	if (r->want_destroy || r->forgotten || w->quit ||
	    (r->shutdown_sent && now - r->shutdown_at >= w->t.stop_s)) {
		bool late = !r->want_destroy && !r->forgotten && !w->quit;

		r->busy = true;
		pthread_mutex_unlock(&w->mu);
		d->destroy(w->ctx, domid);
		pthread_mutex_lock(&w->mu);
		r->busy = false;
		r->phase = R_GONE;
		if (late)
			rec_say(r, true, "did not shut down within the stop timeout: destroyed", "");
		return true;
	}
	if (r->want_shutdown && !r->shutdown_sent) {
		r->busy = true;
		pthread_mutex_unlock(&w->mu);
		ret = d->shutdown(w->ctx, domid);
		pthread_mutex_lock(&w->mu);
		r->busy = false;
		r->shutdown_sent = true;
		r->shutdown_at = now_s();
		if (ret)
			rec_say(r, true, "shutdown refused, destroyed after the stop timeout: ",
				strerror(-ret));
		return true;
	}
	if (now < r->next_poll)
		return false;
	r->busy = true;
	pthread_mutex_unlock(&w->mu);
	ret = d->state(w->ctx, domid);
	pthread_mutex_lock(&w->mu);
	r->next_poll = now_s() + w->t.poll_s;
	if (ret == BAL_XL_D_SHUTDOWN || ret == BAL_XL_D_GONE) {
		r->phase = R_GONE;
		if (!r->want_shutdown)
			rec_say(r, true, ret == BAL_XL_D_GONE ? "vanished" : "shut down by itself",
				"");
		/*
		 * Seen dead now; the destroy after it may wait (an `xl destroy` in
		 * progress holds the hotplug scripts' lock) and also removes what a
		 * gone domain left in XenStore.  The record stays busy meanwhile.
		 */
		ev_async_send(w->loop, &w->async);
		pthread_mutex_unlock(&w->mu);
		d->destroy(w->ctx, domid);
		pthread_mutex_lock(&w->mu);
	}
	r->busy = false;
	return true;
}

static void *worker_main(void *arg)
{
	struct bal_xlw *w = arg;

	pthread_mutex_lock(&w->mu);
	for (;;) {
		bool did = false, left = false;
		struct rec **pp, *r;
		double now = now_s();

		for (r = w->recs; r; r = r->next)
			if (!r->busy && rec_step(w, r, now)) {
				did = true;
				break; /* the list may have changed while unlocked */
			}
		/* Forgotten records whose domain is gone: freed here, the only place. */
		for (pp = &w->recs; (r = *pp);) {
			if (r->forgotten && r->phase == R_GONE && !r->busy) {
				*pp = r->next;
				free(r);
				did = true;
				continue;
			}
			left |= r->phase != R_GONE;
			pp = &r->next;
		}
		if (did) {
			ev_async_send(w->loop, &w->async);
			continue;
		}
		if (w->quit && !left)
			break;
		{
			struct timespec ts;
			double until = now + w->t.poll_s / 4;

			ts.tv_sec = (time_t)until;
			ts.tv_nsec = (long)((until - (double)ts.tv_sec) * 1e9);
			pthread_cond_timedwait(&w->cv, &w->mu, &ts);
		}
	}
	pthread_mutex_unlock(&w->mu);
	return NULL;
}

/**
 * bal_xlw_drain() - log what the worker did, on the loop's thread
 * @w: the worker
 */
void bal_xlw_drain(struct bal_xlw *w)
{
	char lines[8][320];
	bool warn[8];
	int n = 0, k;
	struct rec *r;

	do {
		pthread_mutex_lock(&w->mu);
		for (r = w->recs, n = 0; r && n < 8; r = r->next) {
			if (!r->msg[0])
				continue;
			snprintf(lines[n], sizeof(lines[n]), "%s", r->msg);
			warn[n++] = r->msg_warn;
			r->msg[0] = 0;
		}
		pthread_mutex_unlock(&w->mu);
		for (k = 0; k < n; k++) {
			if (warn[k])
				mw_warn("%s", lines[k]);
			else
				mw_notice("%s", lines[k]);
		}
	} while (n == 8);
}

static void async_cb(struct ev_loop *loop, ev_async *a, int revents)
{
	(void)loop;
	(void)revents;
	bal_xlw_drain(a->data);
}

static void child_cb(struct ev_loop *loop, ev_child *c, int revents)
{
	struct bal_xlw *w = c->data;

	(void)loop;
	(void)revents;
	w->drv->child_reaped(w->ctx, c->rpid, c->rstatus);
}

int bal_xlw_start(struct bal_xlw **out, const struct bal_xl_driver *drv, struct ev_loop *loop,
		  const struct bal_xlw_timing *t, char *err, size_t errlen)
{
	struct bal_xlw *w = calloc(1, sizeof(*w));
	pthread_condattr_t ca;
	int ret;

	*out = NULL;
	if (!w) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	w->drv = drv;
	w->loop = loop;
	w->t = *t;
	ret = drv->open(&w->ctx, err, errlen);
	if (ret) {
		free(w);
		return ret;
	}
	pthread_mutex_init(&w->mu, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&w->cv, &ca);
	pthread_condattr_destroy(&ca);
	ev_async_init(&w->async, async_cb);
	w->async.data = w;
	ev_async_start(loop, &w->async);
	if (drv->child_reaped) {
		ev_child_init(&w->child, child_cb, 0, 0);
		w->child.data = w;
		ev_child_start(loop, &w->child);
		w->child_on = true;
	}
	ret = pthread_create(&w->th, NULL, worker_main, w);
	if (ret) {
		snprintf(err, errlen, "xl worker thread: %s", strerror(ret));
		ev_async_stop(loop, &w->async);
		if (w->child_on)
			ev_child_stop(loop, &w->child);
		drv->close(w->ctx);
		pthread_cond_destroy(&w->cv);
		pthread_mutex_destroy(&w->mu);
		free(w);
		return -ret;
	}
	*out = w;
	return 0;
}

void bal_xlw_stop(struct bal_xlw *w)
{
	struct rec *r;

	if (!w)
		return;
	pthread_mutex_lock(&w->mu);
	w->quit = true;
	pthread_cond_signal(&w->cv);
	pthread_mutex_unlock(&w->mu);
	pthread_join(w->th, NULL);
	bal_xlw_drain(w);
	while ((r = w->recs)) {
		w->recs = r->next;
		free(r);
	}
	ev_async_stop(w->loop, &w->async);
	if (w->child_on)
		ev_child_stop(w->loop, &w->child);
	w->drv->close(w->ctx);
	pthread_cond_destroy(&w->cv);
	pthread_mutex_destroy(&w->mu);
	free(w);
}

/* Run @fn on INS @id's record under the lock, then wake the worker. */
static void rec_wish(struct bal_xlw *w, int id, void (*fn)(struct rec *r))
{
	struct rec *r;

	pthread_mutex_lock(&w->mu);
	r = rec_find(w, id);
	if (r)
		fn(r);
	pthread_cond_signal(&w->cv);
	pthread_mutex_unlock(&w->mu);
}

int bal_xlw_create(struct bal_xlw *w, int id, const struct bal_xl_domcfg *c)
{
	struct rec *r;
	int ret = 0;

	pthread_mutex_lock(&w->mu);
	if (rec_find(w, id)) {
		ret = -EEXIST;
	} else if (!(r = calloc(1, sizeof(*r)))) {
		ret = -ENOMEM;
	} else {
		r->id = id;
		r->cfg = *c;
		r->phase = R_QUEUED;
		r->next = w->recs;
		w->recs = r;
		pthread_cond_signal(&w->cv);
	}
	pthread_mutex_unlock(&w->mu);
	return ret;
}

static void wish_shutdown(struct rec *r)
{
	r->want_shutdown = true;
}

static void wish_destroy(struct rec *r)
{
	r->want_destroy = true;
}

static void wish_forget(struct rec *r)
{
	r->forgotten = true;
}

void bal_xlw_shutdown(struct bal_xlw *w, int id)
{
	rec_wish(w, id, wish_shutdown);
}

void bal_xlw_destroy(struct bal_xlw *w, int id)
{
	rec_wish(w, id, wish_destroy);
}

void bal_xlw_forget(struct bal_xlw *w, int id)
{
	rec_wish(w, id, wish_forget);
}

int bal_xlw_alive(struct bal_xlw *w, int id, uint32_t *domid)
{
	struct rec *r;
	int alive = 0;

	pthread_mutex_lock(&w->mu);
	r = rec_find(w, id);
	if (r) {
		alive = r->phase != R_GONE;
		if (domid)
			*domid = r->domid;
	}
	pthread_mutex_unlock(&w->mu);
	return alive;
}

int bal_xlw_count(struct bal_xlw *w)
{
	struct rec *r;
	int n = 0;

	pthread_mutex_lock(&w->mu);
	for (r = w->recs; r; r = r->next)
		n++;
	pthread_mutex_unlock(&w->mu);
	return n;
}
