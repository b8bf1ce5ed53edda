/* SPDX-License-Identifier: MIT */
/* pvm_splice.c - the splicer: an app's bytes into an INS's data pipe, off mw-pvm's loop */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
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
 * So the splice runs on a thread of the INS's own, and the loop never waits
 * for it: it submits a job (a duplicate of the app's fd, so that a fd number
 * the loop closes and reuses meanwhile can never be read by a late splice),
 * goes on, and learns the outcome from an eventfd (pvm_relay.c commits the
 * DATA_PIPE frame then; pvm_ins.c cuts an INS whose splice stays stuck).  A
 * thread stuck for good finishes when its INS lets go or dies, then frees
 * everything; at most PVM_SPLICER_STUCK_MAX such threads are tolerated, then
 * new INS get no data pipe.  The pipe's write end belongs to the thread: its
 * last close takes the lock too, so the loop never closes it.
 */

enum splicer_state {
	SP_IDLE,    /* no job */
	SP_JOB,     /* a job waits for the thread */
	SP_RUNNING, /* the thread is in splice() */
	SP_DONE,    /* result ready for the loop */
};

struct pvm_splicer {
	pthread_mutex_t mu;
	pthread_cond_t cv; /* a job or quit for the thread */
	pthread_t thread;
	int pipe_fd;
	int done_fd; /* eventfd: a job ended */
	int job_fd;  /* the duplicate of the app's fd; closed by the thread */
	size_t job_len;
	struct timespec started; /* when the thread entered splice() */
	ssize_t result;
	int err;
	enum splicer_state state;
	bool quit;  /* the loop let go: the thread frees everything */
	bool stuck; /* let go while in splice(): counted in splicers_stuck */
};

static atomic_int splicers_stuck;

static void splicer_destroy(struct pvm_splicer *sp)
{
	if (sp->stuck)
		atomic_fetch_sub(&splicers_stuck, 1);
	close(sp->pipe_fd);
	close(sp->done_fd);
	pthread_cond_destroy(&sp->cv);
	pthread_mutex_destroy(&sp->mu);
	free(sp);
}

static void *splicer_main(void *arg)
{
	struct pvm_splicer *sp = arg;
	uint64_t one = 1;
	ssize_t n;
	int err, fd;

	pthread_mutex_lock(&sp->mu);
	for (;;) {
		while (sp->state != SP_JOB && !sp->quit)
			pthread_cond_wait(&sp->cv, &sp->mu);
		if (sp->quit)
			break;
		sp->state = SP_RUNNING;
		clock_gettime(CLOCK_MONOTONIC, &sp->started);
		pthread_mutex_unlock(&sp->mu);
		n = splice(sp->job_fd, NULL, sp->pipe_fd, NULL, sp->job_len,
			   SPLICE_F_NONBLOCK | SPLICE_F_MOVE);
		err = errno;
		/*
		 * The fd is taken under the lock before its close: a shutdown from
		 * the loop meanwhile must not reach a number the loop reused.
		 */
		pthread_mutex_lock(&sp->mu);
		fd = sp->job_fd;
		sp->job_fd = -1;
		pthread_mutex_unlock(&sp->mu);
		close(fd);
		pthread_mutex_lock(&sp->mu);
		sp->result = n;
		sp->err = err;
		sp->state = SP_DONE;
		if (!sp->quit)
			(void)!write(sp->done_fd, &one, sizeof(one)); /* EAGAIN: readable anyway */
	}
	if (sp->state == SP_JOB)
		close(sp->job_fd);
	pthread_mutex_unlock(&sp->mu);
	splicer_destroy(sp);
	return NULL;
}

struct pvm_splicer *pvm_splicer_new(int pipe_fd)
{
	struct pvm_splicer *sp;
	sigset_t all, old;
	pthread_attr_t ta;
	int ret;

	if (atomic_load(&splicers_stuck) >= PVM_SPLICER_STUCK_MAX) {
		close(pipe_fd);
		errno = EMFILE;
		return NULL;
	}
	sp = calloc(1, sizeof(*sp));
	if (!sp) {
		close(pipe_fd);
		errno = ENOMEM;
		return NULL;
	}
	sp->pipe_fd = pipe_fd;
	sp->job_fd = -1;
	sp->done_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	pthread_mutex_init(&sp->mu, NULL);
	pthread_cond_init(&sp->cv, NULL);
	if (sp->done_fd < 0) {
		ret = errno;
		splicer_destroy(sp);
		errno = ret;
		return NULL;
	}
	pthread_attr_init(&ta);
	pthread_attr_setdetachstate(&ta, PTHREAD_CREATE_DETACHED);
	pthread_attr_setstacksize(&ta, 64 * 1024);
	/* Signals stay the loop's business (libev's signalfd). */
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	ret = pthread_create(&sp->thread, &ta, splicer_main, sp);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	pthread_attr_destroy(&ta);
	if (ret) {
		splicer_destroy(sp);
		errno = ret;
		return NULL;
	}
	return sp;
}

int pvm_splicer_fd(const struct pvm_splicer *sp)
{
	return sp->done_fd;
}

int pvm_splicer_submit(struct pvm_splicer *sp, int app_fd, size_t len)
{
	int fd, ret = 0;

	pthread_mutex_lock(&sp->mu);
	if (sp->state != SP_IDLE) {
		ret = -EBUSY;
	} else if ((fd = fcntl(app_fd, F_DUPFD_CLOEXEC, 0)) < 0) {
		ret = -errno;
	} else {
		sp->job_fd = fd;
		sp->job_len = len;
		sp->state = SP_JOB;
		pthread_cond_signal(&sp->cv);
	}
	pthread_mutex_unlock(&sp->mu);
	return ret;
}

bool pvm_splicer_result(struct pvm_splicer *sp, ssize_t *n, int *err)
{
	uint64_t v;
	bool done;

	pthread_mutex_lock(&sp->mu);
	done = sp->state == SP_DONE;
	if (done) {
		*n = sp->result;
		*err = sp->err;
		sp->state = SP_IDLE;
		(void)!read(sp->done_fd, &v, sizeof(v));
	}
	pthread_mutex_unlock(&sp->mu);
	return done;
}

void pvm_splicer_shutdown(struct pvm_splicer *sp)
{
	pthread_mutex_lock(&sp->mu);
	if ((sp->state == SP_JOB || sp->state == SP_RUNNING) && sp->job_fd >= 0)
		shutdown(sp->job_fd, SHUT_RDWR);
	pthread_mutex_unlock(&sp->mu);
}

long pvm_splicer_running_ms(struct pvm_splicer *sp)
{
	struct timespec now;
	long ms = -1;

	clock_gettime(CLOCK_MONOTONIC, &now);
	pthread_mutex_lock(&sp->mu);
	if (sp->state == SP_RUNNING)
		ms = (now.tv_sec - sp->started.tv_sec) * 1000L +
		     (now.tv_nsec - sp->started.tv_nsec) / 1000000L;
	pthread_mutex_unlock(&sp->mu);
	return ms;
}

void pvm_splicer_free(struct pvm_splicer *sp)
{
	if (!sp)
		return;
	pthread_mutex_lock(&sp->mu);
	sp->quit = true;
	if (sp->state == SP_RUNNING) {
		sp->stuck = true;
		atomic_fetch_add(&splicers_stuck, 1);
	}
	pthread_cond_signal(&sp->cv);
	pthread_mutex_unlock(&sp->mu);
}
