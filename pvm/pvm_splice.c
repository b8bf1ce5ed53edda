/* SPDX-License-Identifier: MIT */
/* pvm_splice.c - the splicer: an app's bytes into an INS's data pipe, off mw-pvm's loop */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include "pvm/pvm_splice.h"

/*
 * Theory of operation
 *
 * Every write into a pipe takes the pipe's mutex, whatever the flags say, and
 * the reader holds the same mutex for the whole of its splice() out of the
 * pipe, including a send that may wait on a full blocking socket.  The data
 * pipe's reader is mw-ins, which mw-pvm does not trust: a compromised INS can
 * hold the mutex as long as it likes, and a splice() into the pipe from
 * mw-pvm's event loop would then sleep uninterruptibly with every app and INS
 * behind it (docs/ins-protocol.md, "The data pipe's lock").
 *
 * So the splice runs on a thread of the INS's own.  The loop hands it a job
 * (a duplicate of the app's fd, so that a fd number closed and reused by the
 * loop meanwhile can never be read by a late splice) and waits for the
 * result: microseconds normally.  If the thread has not finished after
 * pvm.splice_timeout_ms, the loop gives up on the INS and goes on; the thread,
 * stuck in the kernel, finishes when the INS lets go or dies, then frees
 * everything.  A job the thread has not even started by then is taken back
 * (a busy machine, not a hostile INS): the caller reads into the ring instead.
 * The pipe's write end belongs to the thread: its last close takes the lock
 * too, so the loop never closes it.
 */

enum splicer_state {
	SP_IDLE,    /* no job */
	SP_JOB,     /* a job waits for the thread */
	SP_RUNNING, /* the thread is in splice() */
	SP_DONE,    /* result ready for the loop */
};

struct pvm_splicer {
	pthread_mutex_t mu;
	pthread_cond_t cv; /* state changes, both ways */
	pthread_t thread;
	int pipe_fd;
	int timeout_ms;
	int job_fd; /* the duplicate of the app's fd; closed by whoever ends the job */
	size_t job_len;
	ssize_t result;
	int err;
	enum splicer_state state;
	bool quit; /* the loop let go: the thread frees everything */
};

static void splicer_destroy(struct pvm_splicer *sp)
{
	close(sp->pipe_fd);
	pthread_cond_destroy(&sp->cv);
	pthread_mutex_destroy(&sp->mu);
	free(sp);
}

static void *splicer_main(void *arg)
{
	struct pvm_splicer *sp = arg;
	ssize_t n;
	int err;

	pthread_mutex_lock(&sp->mu);
	for (;;) {
		while (sp->state != SP_JOB && !sp->quit)
			pthread_cond_wait(&sp->cv, &sp->mu);
		if (sp->quit)
			break;
		sp->state = SP_RUNNING;
		pthread_mutex_unlock(&sp->mu);
		n = splice(sp->job_fd, NULL, sp->pipe_fd, NULL, sp->job_len,
			   SPLICE_F_NONBLOCK | SPLICE_F_MOVE);
		err = errno;
		close(sp->job_fd);
		pthread_mutex_lock(&sp->mu);
		sp->job_fd = -1;
		sp->result = n;
		sp->err = err;
		sp->state = SP_DONE;
		pthread_cond_broadcast(&sp->cv);
	}
	if (sp->state == SP_JOB)
		close(sp->job_fd);
	pthread_mutex_unlock(&sp->mu);
	splicer_destroy(sp);
	return NULL;
}

struct pvm_splicer *pvm_splicer_new(int pipe_fd, int timeout_ms)
{
	struct pvm_splicer *sp = calloc(1, sizeof(*sp));
	pthread_condattr_t ca;
	pthread_attr_t ta;
	int ret;

	if (!sp) {
		close(pipe_fd);
		errno = ENOMEM;
		return NULL;
	}
	sp->pipe_fd = pipe_fd;
	sp->timeout_ms = timeout_ms;
	sp->job_fd = -1;
	pthread_mutex_init(&sp->mu, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&sp->cv, &ca);
	pthread_condattr_destroy(&ca);
	pthread_attr_init(&ta);
	pthread_attr_setdetachstate(&ta, PTHREAD_CREATE_DETACHED);
	pthread_attr_setstacksize(&ta, 64 * 1024);
	ret = pthread_create(&sp->thread, &ta, splicer_main, sp);
	pthread_attr_destroy(&ta);
	if (ret) {
		splicer_destroy(sp);
		errno = ret;
		return NULL;
	}
	return sp;
}

ssize_t pvm_splicer_move(struct pvm_splicer *sp, int app_fd, size_t len)
{
	struct timespec deadline;
	ssize_t n;
	int fd = fcntl(app_fd, F_DUPFD_CLOEXEC, 0), err;

	if (fd < 0)
		return -1; /* EMFILE: the caller reads into the ring */
	clock_gettime(CLOCK_MONOTONIC, &deadline);
	deadline.tv_sec += sp->timeout_ms / 1000;
	deadline.tv_nsec += (long)(sp->timeout_ms % 1000) * 1000000L;
	if (deadline.tv_nsec >= 1000000000L) {
		deadline.tv_sec++;
		deadline.tv_nsec -= 1000000000L;
	}
	pthread_mutex_lock(&sp->mu);
	sp->job_fd = fd;
	sp->job_len = len;
	sp->state = SP_JOB;
	pthread_cond_broadcast(&sp->cv);
	while (sp->state != SP_DONE) {
		if (pthread_cond_timedwait(&sp->cv, &sp->mu, &deadline) != ETIMEDOUT)
			continue;
		if (sp->state == SP_JOB) {
			/* Never started (a busy machine): take it back. */
			close(sp->job_fd);
			sp->job_fd = -1;
			sp->state = SP_IDLE;
			pthread_mutex_unlock(&sp->mu);
			errno = EAGAIN;
			return -1;
		}
		if (sp->state == SP_RUNNING) {
			pthread_mutex_unlock(&sp->mu);
			errno = ETIMEDOUT;
			return -1;
		}
	}
	n = sp->result;
	err = sp->err;
	sp->state = SP_IDLE;
	pthread_mutex_unlock(&sp->mu);
	errno = err;
	return n;
}

void pvm_splicer_free(struct pvm_splicer *sp)
{
	if (!sp)
		return;
	pthread_mutex_lock(&sp->mu);
	sp->quit = true;
	pthread_cond_broadcast(&sp->cv);
	pthread_mutex_unlock(&sp->mu);
}
