/* SPDX-License-Identifier: MIT */
/* pvm_closer.c - close descriptors whose close() may wait, on a thread of their own */
#include <pthread.h>
#include <stdlib.h>
#include <unistd.h>

#include "common/log.h"
#include "pvm/pvm.h"

/*
 * Theory of operation
 *
 * Any local user may pass mw-pvm a descriptor with a control request, and it
 * need not be a socket.  close() of a file calls its file system's flush: on
 * a FUSE mount that is a FLUSH request to the mount's server, and close()
 * waits for the answer, which a hostile user's server never gives.  Done on
 * the loop, that stops mw-pvm until the watchdog kills it.  So descriptors
 * that are not AF_UNIX sockets (pvm_shim.c decides, without touching the file)
 * are handed to one closer thread through a bounded queue.  The loop never
 * waits for the thread: it only takes the queue's lock, which the thread
 * never holds across a close().  A thread stuck in a close() for good fills
 * the queue; descriptors that find it full are kept open (counted, logged),
 * never closed on the loop.  At exit the thread is told to stop and frees
 * the queue itself, so a stuck thread holds nothing mw-pvm's exit needs.
 */

#define CLOSER_QUEUE 1024 /* descriptors waiting for the thread, at most */

struct pvm_closer {
	pthread_mutex_t lock;
	pthread_cond_t wake;
	int fds[CLOSER_QUEUE];
	unsigned head, count;
	bool stop;
};

static void *closer_main(void *arg)
{
	struct pvm_closer *cl = arg;
	int fd;

	pthread_mutex_lock(&cl->lock);
	for (;;) {
		while (!cl->count && !cl->stop)
			pthread_cond_wait(&cl->wake, &cl->lock);
		if (!cl->count)
			break; /* stopped, and nothing left */
		fd = cl->fds[cl->head];
		cl->head = (cl->head + 1) % CLOSER_QUEUE;
		cl->count--;
		pthread_mutex_unlock(&cl->lock);
		close(fd); /* may wait for a file system's server: the loop does not */
		pthread_mutex_lock(&cl->lock);
	}
	pthread_mutex_unlock(&cl->lock);
	pthread_cond_destroy(&cl->wake);
	pthread_mutex_destroy(&cl->lock);
	free(cl);
	return NULL;
}

/* The thread and its queue, made on first use (most runs never need them). */
static struct pvm_closer *closer_start(void)
{
	struct pvm_closer *cl = calloc(1, sizeof(*cl));
	pthread_attr_t attr;
	pthread_t t;
	int ret;

	if (!cl)
		return NULL;
	pthread_mutex_init(&cl->lock, NULL);
	pthread_cond_init(&cl->wake, NULL);
	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	pthread_attr_setstacksize(&attr, 64 * 1024);
	ret = pthread_create(&t, &attr, closer_main, cl);
	pthread_attr_destroy(&attr);
	if (ret) {
		pthread_cond_destroy(&cl->wake);
		pthread_mutex_destroy(&cl->lock);
		free(cl);
		return NULL;
	}
	return cl;
}

/**
 * pvm_closer_put() - close @fd off the loop, never waiting
 * @p:  the daemon
 * @fd: a descriptor whose close() may wait (not an AF_UNIX socket)
 *
 * If the thread cannot be made or its queue is full, @fd stays open: a
 * descriptor kept is better than a loop that waits.
 */
void pvm_closer_put(struct pvm *p, int fd)
{
	struct pvm_closer *cl;
	bool queued = false;

	if (!p->closer)
		p->closer = closer_start();
	cl = p->closer;
	if (cl) {
		pthread_mutex_lock(&cl->lock);
		if (cl->count < CLOSER_QUEUE) {
			cl->fds[(cl->head + cl->count) % CLOSER_QUEUE] = fd;
			cl->count++;
			queued = true;
			pthread_cond_signal(&cl->wake);
		}
		pthread_mutex_unlock(&cl->lock);
	}
	if (queued)
		return;
	p->closer_kept++;
	mw_log_ratelimited(MW_LOG_WARN,
			   "closer %s: a passed descriptor is kept open (%llu so far)",
			   cl ? "busy" : "not running", (unsigned long long)p->closer_kept);
}

/**
 * pvm_closer_stop() - at exit: the thread closes what is queued and ends
 * @p: the daemon
 *
 * Never waits: a thread stuck in a close() frees its queue if it ever returns.
 */
void pvm_closer_stop(struct pvm *p)
{
	struct pvm_closer *cl = p->closer;

	if (!cl)
		return;
	p->closer = NULL;
	pthread_mutex_lock(&cl->lock);
	cl->stop = true;
	pthread_cond_signal(&cl->wake);
	pthread_mutex_unlock(&cl->lock);
}
