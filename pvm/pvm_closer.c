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
 * read (turned off here first for a foreign fd, pvm_closer_put_foreign(); even
 * that setsockopt() waits for the socket's lock, which a thread of the sender
 * can hold asleep in a page fault), an AF_PACKET socket for
 * synchronize_net(), and an AF_UNIX socket's release frees the descriptors still queued in it (or
 * in its listener's pending connections), each of which may be any of these.  Done on the loop, a
 * hostile user's close stops mw-pvm until the watchdog kills it.  So every descriptor a control
 * client passed, the app's own sockets included (the app can have fds queued in them), and every
 * control connection, is closed here: queued for closer threads, never on the loop.
 *
 * Each fd is queued under the account it came from (the uid of the client
 * that passed it; a subordinate uid range is one account, common/subuid.c), one
 * FIFO per account, and an account has at most CLOSER_PER_UID closes under
 * way: a user whose closes hang holds that many threads, and the others' fds
 * are closed by the rest.  Threads take from the accounts in turn.  The queues
 * grow as needed (nothing is ever forgotten); an account's is bounded by
 * pvm.max_connections_per_user, as its clients are not read while it is that
 * long (pvm_shim.c).  When more fds can be taken than threads are idle or
 * starting, one more starts, up to CLOSER_THREADS not counting the stuck ones
 * (a close under way for over CLOSER_STUCK_MS), and CLOSER_THREADS_MAX in
 * all: a healthy close takes microseconds, the extra threads are for closes
 * that wait, and accounts whose closes hang must be many to hold them all
 * (CLOSER_THREADS_MAX / CLOSER_PER_UID).  The last thread to leave after
 * pvm_closer_stop() frees the queues, so a stuck one holds nothing mw-pvm's
 * exit needs.
 *
 * Each thread notes when its close() began.  pvm_closer_drain() waits for the
 * queue and for the closes begun within its bound; one that has waited longer
 * is a stuck one, and waiting again for it on every call would hand a hostile
 * user the loop, the bound at a time.  A user can still pass a slow close
 * before each bind, so the drains together wait at most DRAIN_BUDGET_MS of
 * each second; beyond, a bind judges at once (a socket whose copy is still
 * queued is released by the close hint's second look or the sweep).
 */

#define CLOSER_THREADS 32	/* at most, the stuck ones aside */
#define CLOSER_THREADS_MAX 256 /* at most in all: 128 accounts' stuck closes */
#define CLOSER_STUCK_MS 1000	/* a close under way longer is stuck */
#define CLOSER_PER_UID 2  /* closes one uid may have under way */
#define CLOSER_QUEUE_MIN 16
#define CLOSER_UIDS_KEPT 8 /* empty queues kept for reuse (few uids use the shim) */
#define DRAIN_BUDGET_MS 20 /* of each second, the most the drains wait together */

/* One uid's queued fds (a ring) and its closes under way. */
struct closer_uidq {
	struct closer_uidq *next;
	uid_t uid;
	int *fds;
	unsigned head, count, cap;
	unsigned busy;
};

struct pvm_closer {
	pthread_mutex_t lock;
	pthread_cond_t wake; /* work queued, or stop */
	struct closer_uidq *uids, *turn; /* the queues; the next to serve */
	unsigned nuids;
	pthread_cond_t done;		 /* a close() ended (pvm_closer_drain()) */
	unsigned threads, idle;		 /* running; waiting for work */
	unsigned starting;		 /* made, not yet at work */
	bool slot_used[CLOSER_THREADS_MAX];
	int64_t busy_since[CLOSER_THREADS_MAX]; /* ns a thread's close() began; 0: none */
	int64_t drain_second, drain_spent;  /* ns: the current second, waited in it (loop only) */
	bool stop;
};

static int64_t mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void closer_free(struct pvm_closer *cl)
{
	struct closer_uidq *q, *next;

	for (q = cl->uids; q; q = next) {
		next = q->next;
		free(q->fds);
		free(q);
	}
	pthread_cond_destroy(&cl->done);
	pthread_cond_destroy(&cl->wake);
	pthread_mutex_destroy(&cl->lock);
	free(cl);
}

/* A free slot for the calling thread's close times; with the lock held. */
static unsigned closer_slot(struct pvm_closer *cl)
{
	unsigned i = 0;

	while (cl->slot_used[i]) /* threads <= CLOSER_THREADS_MAX: one is free */
		i++;
	cl->slot_used[i] = true;
	cl->busy_since[i] = 0;
	return i;
}

/* Fds a thread could take now: each uid's queued ones, up to its share. */
static unsigned closer_takeable(const struct pvm_closer *cl)
{
	const struct closer_uidq *q;
	unsigned n = 0;

	for (q = cl->uids; q; q = q->next)
		if (q->busy < CLOSER_PER_UID)
			n += q->count < CLOSER_PER_UID - q->busy ? q->count : CLOSER_PER_UID - q->busy;
	return n;
}

/* The next uid in turn with an fd to take (its count taken), or NULL. */
static struct closer_uidq *closer_next(struct pvm_closer *cl)
{
	struct closer_uidq *q = cl->turn ? cl->turn : cl->uids;

	for (struct closer_uidq *first = q; q;) {
		if (q->count && q->busy < CLOSER_PER_UID) {
			cl->turn = q->next;
			return q;
		}
		q = q->next ? q->next : cl->uids;
		if (q == first)
			break;
	}
	return NULL;
}

/* @q has nothing queued and nothing under way: unlinked and freed, unless kept. */
static void closer_forget(struct pvm_closer *cl, struct closer_uidq *q)
{
	struct closer_uidq **pp;

	if (q->count || q->busy || cl->nuids <= CLOSER_UIDS_KEPT)
		return;
	cl->nuids--;
	for (pp = &cl->uids; *pp != q; pp = &(*pp)->next)
		;
	*pp = q->next;
	if (cl->turn == q)
		cl->turn = q->next;
	free(q->fds);
	free(q);
}

static void *closer_main(void *arg)
{
	static const struct linger no_linger = { 0, 0 };
	struct pvm_closer *cl = arg;
	struct closer_uidq *q;
	unsigned slot;
	bool last;
	int fd;

	pthread_mutex_lock(&cl->lock);
	cl->starting--;
	slot = closer_slot(cl);
	for (;;) {
		while (!(q = closer_next(cl)) && !cl->stop) {
			cl->idle++;
			pthread_cond_wait(&cl->wake, &cl->lock);
			cl->idle--;
		}
		if (!q)
			break; /* stopped, and nothing left this thread may take */
		fd = q->fds[q->head];
		q->head = (q->head + 1) % q->cap;
		q->count--;
		q->busy++;
		cl->busy_since[slot] = mono_ns();
		pthread_mutex_unlock(&cl->lock);
		if (fd < 0) { /* pvm_closer_put_foreign(): its close need not wait for a peer */
			fd = ~fd;
			(void)setsockopt(fd, SOL_SOCKET, SO_LINGER, &no_linger, sizeof(no_linger));
		}
		close(fd); /* may wait: the loop does not */
		pthread_mutex_lock(&cl->lock);
		cl->busy_since[slot] = 0;
		q->busy--;
		closer_forget(cl, q);
		pthread_cond_broadcast(&cl->done);
	}
	cl->slot_used[slot] = false;
	last = !--cl->threads;
	pthread_mutex_unlock(&cl->lock);
	if (last)
		closer_free(cl);
	return NULL;
}

/* One more thread; called with the lock held (or before @cl is shared). Return: 0 or -errno */
static int closer_spawn(struct pvm_closer *cl)
{
	pthread_attr_t attr;
	pthread_t t;
	int ret;

	/* Counted first: the thread may run (and take the lock) before pthread_create returns. */
	cl->threads++;
	cl->starting++;
	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	pthread_attr_setstacksize(&attr, 64 * 1024);
	ret = pthread_create(&t, &attr, closer_main, cl);
	pthread_attr_destroy(&attr);
	if (ret) {
		cl->threads--;
		cl->starting--;
	}
	return -ret;
}

/* The queues and the first thread, made on first use. */
static struct pvm_closer *closer_start(void)
{
	struct pvm_closer *cl = calloc(1, sizeof(*cl));
	pthread_condattr_t ca;

	if (!cl)
		return NULL;
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

/* @uid's queue, made if need be; with the lock held.  NULL: out of memory. */
static struct closer_uidq *closer_uidq(struct pvm_closer *cl, uid_t uid)
{
	struct closer_uidq *q;

	for (q = cl->uids; q; q = q->next)
		if (q->uid == uid)
			return q;
	q = calloc(1, sizeof(*q));
	if (!q)
		return NULL;
	q->uid = uid;
	q->next = cl->uids;
	cl->uids = q;
	cl->nuids++;
	return q;
}

/* Whether one more thread may start: CLOSER_THREADS not stuck, CLOSER_THREADS_MAX in all. */
static bool closer_room(const struct pvm_closer *cl)
{
	int64_t now = mono_ns();
	unsigned stuck = 0;

	if (cl->threads >= CLOSER_THREADS_MAX)
		return false;
	if (cl->threads < CLOSER_THREADS)
		return true;
	for (unsigned i = 0; i < CLOSER_THREADS_MAX; i++)
		if (cl->slot_used[i] && cl->busy_since[i] &&
		    now - cl->busy_since[i] >= (int64_t)CLOSER_STUCK_MS * 1000000)
			stuck++;
	return cl->threads - stuck < CLOSER_THREADS;
}

/* Queue @fd under @uid; called with the lock held.  Return: false if it could not be. */
static bool closer_push(struct pvm_closer *cl, int fd, uid_t uid)
{
	struct closer_uidq *q = closer_uidq(cl, uid);

	if (!q)
		return false;
	if (q->count == q->cap) {
		unsigned cap = q->cap ? q->cap * 2 : CLOSER_QUEUE_MIN, i;
		int *fds = calloc(cap, sizeof(int));

		if (!fds) {
			closer_forget(cl, q);
			return false;
		}
		for (i = 0; i < q->count; i++)
			fds[i] = q->fds[(q->head + i) % q->cap];
		free(q->fds);
		q->fds = fds;
		q->cap = cap;
		q->head = 0;
	}
	q->fds[(q->head + q->count) % q->cap] = fd;
	q->count++;
	pthread_cond_signal(&cl->wake);
	/* As many as can be taken: behind stuck closes, a thread for each. */
	while (closer_takeable(cl) > cl->idle + cl->starting) {
		if (!closer_room(cl)) {
			mw_log_ratelimited(MW_LOG_WARN, "closer: %u threads, all busy",
					   cl->threads);
			break;
		}
		if (closer_spawn(cl))
			break;
	}
	return true;
}

/* Queue @fd (~fd: a foreign one, its SO_LINGER to be turned off) under @uid. */
static void closer_put(struct pvm *p, int fd, uid_t uid)
{
	struct pvm_closer *cl;
	bool queued;

	if (!p->closer)
		p->closer = closer_start();
	cl = p->closer;
	if (!cl) {
		close(fd < 0 ? ~fd : fd); /* no thread can be made: mw-pvm is in worse trouble */
		return;
	}
	pthread_mutex_lock(&cl->lock);
	queued = closer_push(cl, fd, uid);
	pthread_mutex_unlock(&cl->lock);
	if (!queued)
		close(fd < 0 ? ~fd : fd); /* out of memory for the queue */
}

/**
 * pvm_closer_put() - close @fd off the loop, never waiting
 * @p:   the daemon
 * @fd:  a descriptor a client passed, or a control connection (a last close()
 *       of either may wait)
 * @uid: the account it is charged to (pvm_uid_account() of the client that
 *       passed it): an account has at most CLOSER_PER_UID of the threads
 */
void pvm_closer_put(struct pvm *p, int fd, uid_t uid)
{
	closer_put(p, fd, uid);
}

/**
 * pvm_closer_put_foreign() - pvm_closer_put() of an fd that is not an AF_UNIX socket
 * @p:   the daemon
 * @fd:  what a client passed where an AF_UNIX socket belongs
 * @uid: the account it is charged to
 *
 * A socket's SO_LINGER is turned off before its close, on the closer thread: not
 * on the loop, as that setsockopt() takes the socket's lock, which a thread of the
 * sender can hold asleep in send() for as long as it likes.
 */
void pvm_closer_put_foreign(struct pvm *p, int fd, uid_t uid)
{
	closer_put(p, ~fd, uid);
}

/**
 * pvm_closer_backlog() - how many of account @uid's fds wait to be closed or are being closed
 * @p:   the daemon
 * @uid: the uid they were queued under
 */
unsigned pvm_closer_backlog(struct pvm *p, uid_t uid)
{
	struct pvm_closer *cl = p->closer;
	struct closer_uidq *q;
	unsigned n = 0;

	if (!cl)
		return 0;
	pthread_mutex_lock(&cl->lock);
	for (q = cl->uids; q; q = q->next)
		if (q->uid == uid)
			n = q->count + q->busy;
	pthread_mutex_unlock(&cl->lock);
	return n;
}

/*
 * Whether a close() that may be the caller's is still to come or under way,
 * with the lock held: an fd that a thread can take now and a thread to take
 * it (an idle or a starting one, or one whose close began under @ms ago), or
 * a close begun under @ms ago.  A close begun longer ago is stuck: not waited
 * for, nor are the fds of a uid whose share is all stuck.
 */
static bool closer_pending(const struct pvm_closer *cl, int64_t now, int ms)
{
	bool fresh = false;

	for (unsigned i = 0; i < CLOSER_THREADS_MAX; i++)
		if (cl->slot_used[i] && cl->busy_since[i] &&
		    now - cl->busy_since[i] < (int64_t)ms * 1000000)
			fresh = true;
	return fresh || ((cl->idle || cl->starting) && closer_takeable(cl));
}

/**
 * pvm_closer_drain() - wait until what is queued is closed, @ms at most
 * @p:  the daemon
 * @ms: the bound (a close that waits on a hostile user is not waited for)
 *
 * For a caller about to judge whether a socket is still open anywhere: a copy
 * mw-pvm just queued is closed first, unless its close waits.  Returns at once
 * when the only closes under way began @ms or more ago (stuck ones): a user
 * whose close hangs for good costs the loop one bound, not one per call; and
 * all calls together wait at most DRAIN_BUDGET_MS of each second.  Called
 * from the loop only.
 */
void pvm_closer_drain(struct pvm *p, int ms)
{
	struct pvm_closer *cl = p->closer;
	int64_t t0 = mono_ns(), left, end;
	struct timespec until;

	if (!cl)
		return;
	if (t0 - cl->drain_second >= 1000000000) {
		cl->drain_second = t0;
		cl->drain_spent = 0;
	}
	left = (int64_t)DRAIN_BUDGET_MS * 1000000 - cl->drain_spent;
	if (left <= 0)
		return; /* this second's budget is spent: judge at once */
	end = t0 + ((int64_t)ms * 1000000 < left ? (int64_t)ms * 1000000 : left);
	until.tv_sec = end / 1000000000;
	until.tv_nsec = end % 1000000000;
	pthread_mutex_lock(&cl->lock);
	while (closer_pending(cl, mono_ns(), ms) &&
	       pthread_cond_timedwait(&cl->done, &cl->lock, &until) == 0)
		;
	pthread_mutex_unlock(&cl->lock);
	cl->drain_spent += mono_ns() - t0;
}

/**
 * pvm_closer_stop() - at exit: the threads close what is queued and end
 * @p: the daemon
 *
 * Never waits: a thread stuck in a close() frees the queues if it is the last
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
