/* SPDX-License-Identifier: MIT */
/* pvm_closer.c - close descriptors whose close() may wait, on threads of their own */
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include "common/log.h"
#include "pvm/pvm.h"

/*
 * Theory of operation
 *
 * Any local user may pass mw-pvm a descriptor with a control request, and the
 * last close() of a descriptor may wait: a file's flush on a FUSE mount waits
 * for the mount's server, a TCP socket's SO_LINGER for a peer that does not
 * read, an AF_PACKET socket for synchronize_net(), and an AF_UNIX socket's
 * release frees the descriptors still queued in it (or in its listener's
 * pending connections), each of which may be any of these.  Done on the loop,
 * a hostile user's close stops mw-pvm until the watchdog kills it.  So every
 * descriptor a control client passed, the app's own sockets included (the app
 * can have fds queued in them), and every control connection, is closed here:
 * queued for closer threads, never on the loop.
 *
 * The queue grows as needed (nothing is ever forgotten: the descriptors are
 * bounded by the fd limit).  When more fds are queued than threads are idle
 * or starting, one more starts, up to CLOSER_THREADS (a healthy close takes
 * microseconds: the extra ones are for a close that waits); the last thread
 * to leave after pvm_closer_stop() frees the queue, so a stuck one holds
 * nothing mw-pvm's exit needs.
 *
 * Each thread notes when its close() began.  pvm_closer_drain() waits for the
 * queue and for the closes begun within its bound; one that has waited longer
 * is a stuck one, and waiting again for it on every call would hand a hostile
 * user the loop, the bound at a time.
 */

#define CLOSER_THREADS 4	/* at most, the extra ones only while one is stuck */
#define CLOSER_QUEUE_MIN 64

struct pvm_closer {
	pthread_mutex_t lock;
	pthread_cond_t wake; /* work queued, or stop */
	int *fds;
	unsigned head, count, cap;
	pthread_cond_t done;	 /* a close() ended (pvm_closer_drain()) */
	unsigned threads, idle;	 /* running; waiting for work */
	unsigned starting;	 /* made, not yet at work */
	bool slot_used[CLOSER_THREADS];
	int64_t busy_since[CLOSER_THREADS]; /* ns a thread's close() began; 0: none */
	bool stop;
};

static int64_t mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* A free slot for the calling thread's close times; with the lock held. */
static unsigned closer_slot(struct pvm_closer *cl)
{
	unsigned i = 0;

	while (cl->slot_used[i]) /* threads <= CLOSER_THREADS: one is free */
		i++;
	cl->slot_used[i] = true;
	cl->busy_since[i] = 0;
	return i;
}

static void closer_free(struct pvm_closer *cl)
{
	pthread_cond_destroy(&cl->done);
	pthread_cond_destroy(&cl->wake);
	pthread_mutex_destroy(&cl->lock);
	free(cl->fds);
	free(cl);
}

static void *closer_main(void *arg)
{
	struct pvm_closer *cl = arg;
	unsigned slot;
	bool last;
	int fd;

	pthread_mutex_lock(&cl->lock);
	cl->starting--;
	slot = closer_slot(cl);
	for (;;) {
		while (!cl->count && !cl->stop) {
			cl->idle++;
			pthread_cond_wait(&cl->wake, &cl->lock);
			cl->idle--;
		}
		if (!cl->count)
			break; /* stopped, and nothing left */
		fd = cl->fds[cl->head];
		cl->head = (cl->head + 1) % cl->cap;
		cl->count--;
		cl->busy_since[slot] = mono_ns();
		pthread_mutex_unlock(&cl->lock);
		close(fd); /* may wait: the loop does not */
		pthread_mutex_lock(&cl->lock);
		cl->busy_since[slot] = 0;
		pthread_cond_broadcast(&cl->done);
	}
	cl->slot_used[slot] = false;
	last = !--cl->threads;
	pthread_mutex_unlock(&cl->lock);
	if (last)
		closer_free(cl);
	return NULL;
}

/* One more thread; called with the lock held. Return: 0 or -errno */
static int closer_spawn(struct pvm_closer *cl)
{
	pthread_attr_t attr;
	pthread_t t;
	int ret;

	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	pthread_attr_setstacksize(&attr, 64 * 1024);
	ret = pthread_create(&t, &attr, closer_main, cl);
	pthread_attr_destroy(&attr);
	if (!ret) {
		cl->threads++;
		cl->starting++;
	}
	return -ret;
}

/* The queue and its first thread, made on first use. */
static struct pvm_closer *closer_start(void)
{
	struct pvm_closer *cl = calloc(1, sizeof(*cl));
	pthread_condattr_t ca;

	if (!cl)
		return NULL;
	cl->fds = calloc(CLOSER_QUEUE_MIN, sizeof(int));
	if (!cl->fds) {
		free(cl);
		return NULL;
	}
	cl->cap = CLOSER_QUEUE_MIN;
	pthread_mutex_init(&cl->lock, NULL);
	pthread_cond_init(&cl->wake, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&cl->done, &ca);
	pthread_condattr_destroy(&ca);
	if (closer_spawn(cl)) {
		closer_free(cl);
		return NULL;
	}
	return cl;
}

/* Queue @fd; called with the lock held.  Return: false if it could not be queued. */
static bool closer_push(struct pvm_closer *cl, int fd)
{
	if (cl->count == cl->cap) {
		unsigned cap = cl->cap * 2, i;
		int *fds = calloc(cap, sizeof(int));

		if (!fds)
			return false;
		for (i = 0; i < cl->count; i++)
			fds[i] = cl->fds[(cl->head + i) % cl->cap];
		free(cl->fds);
		cl->fds = fds;
		cl->cap = cap;
		cl->head = 0;
	}
	cl->fds[(cl->head + cl->count) % cl->cap] = fd;
	cl->count++;
	pthread_cond_signal(&cl->wake);
	if (cl->count > cl->idle + cl->starting && cl->threads < CLOSER_THREADS &&
	    !closer_spawn(cl) && cl->threads == CLOSER_THREADS)
		mw_log_ratelimited(MW_LOG_WARN, "closer: %u threads, all busy (%u fds queued)",
				   cl->threads, cl->count);
	return true;
}

/**
 * pvm_closer_put() - close @fd off the loop, never waiting
 * @p:  the daemon
 * @fd: a descriptor a client passed, or a control connection (a last close()
 *      of either may wait)
 */
void pvm_closer_put(struct pvm *p, int fd)
{
	struct pvm_closer *cl;
	bool queued;

	if (!p->closer)
		p->closer = closer_start();
	cl = p->closer;
	if (!cl) {
		close(fd); /* no thread can be made: mw-pvm is in worse trouble */
		return;
	}
	pthread_mutex_lock(&cl->lock);
	queued = closer_push(cl, fd);
	pthread_mutex_unlock(&cl->lock);
	if (!queued)
		close(fd); /* out of memory for the queue */
}

/*
 * Whether a close() that may be the caller's is still to come or under way,
 * with the lock held: a queued fd that a thread can still take (an idle or a
 * starting one, or one whose close began under @ms ago), or a close begun
 * under @ms ago.  A close begun longer ago is stuck: not waited for.
 */
static bool closer_pending(const struct pvm_closer *cl, int64_t now, int ms)
{
	bool fresh = false;

	for (unsigned i = 0; i < CLOSER_THREADS; i++)
		if (cl->slot_used[i] && cl->busy_since[i] &&
		    now - cl->busy_since[i] < (int64_t)ms * 1000000)
			fresh = true;
	return fresh || (cl->count && (cl->idle || cl->starting));
}

/**
 * pvm_closer_drain() - wait until what is queued is closed, @ms at most
 * @p:  the daemon
 * @ms: the bound (a close that waits on a hostile user is not waited for)
 *
 * For a caller about to judge whether a socket is still open anywhere: a copy
 * mw-pvm just queued is closed first, unless its close waits.  Returns at once
 * when the only closes under way began @ms or more ago (stuck ones): a user
 * whose close hangs for good costs the loop one bound, not one per call.
 */
void pvm_closer_drain(struct pvm *p, int ms)
{
	struct pvm_closer *cl = p->closer;
	struct timespec until;

	if (!cl)
		return;
	clock_gettime(CLOCK_MONOTONIC, &until);
	until.tv_nsec += (long)ms * 1000000L;
	until.tv_sec += until.tv_nsec / 1000000000L;
	until.tv_nsec %= 1000000000L;
	pthread_mutex_lock(&cl->lock);
	while (closer_pending(cl, mono_ns(), ms) &&
	       pthread_cond_timedwait(&cl->done, &cl->lock, &until) == 0)
		;
	pthread_mutex_unlock(&cl->lock);
}

/**
 * pvm_closer_stop() - at exit: the threads close what is queued and end
 * @p: the daemon
 *
 * Never waits: a thread stuck in a close() frees the queue if it is the last
 * to return.
 */
void pvm_closer_stop(struct pvm *p)
{
	struct pvm_closer *cl = p->closer;

	if (!cl)
		return;
	p->closer = NULL;
	pthread_mutex_lock(&cl->lock);
	cl->stop = true;
	pthread_cond_broadcast(&cl->wake);
	pthread_mutex_unlock(&cl->lock);
}
