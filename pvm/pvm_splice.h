/* SPDX-License-Identifier: MIT */
/* pvm_splice.h - the splicer: an app's bytes into an INS's data pipe, off mw-pvm's loop */
#ifndef MW_PVM_SPLICE_H
#define MW_PVM_SPLICE_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

struct pvm_splicer;

/* Splicers stuck for good (their INS holds the pipe) that mw-pvm tolerates at once. */
#define PVM_SPLICER_STUCK_MAX 8

/**
 * pvm_splicer_new() - a splicer thread for one INS's data pipe
 * @pipe_fd: the pipe's write end; owned by the splicer from here on, even on failure
 * Return: the splicer, or NULL (errno set, EMFILE when PVM_SPLICER_STUCK_MAX
 * splicers are stuck; @pipe_fd is closed)
 */
struct pvm_splicer *pvm_splicer_new(int pipe_fd);

/* Readable (an eventfd) when a job has ended: then pvm_splicer_result(). */
int pvm_splicer_fd(const struct pvm_splicer *sp);

/**
 * pvm_splicer_submit() - start splicing up to @len bytes of @app_fd into the pipe
 * @app_fd: the app's socket (non-blocking); the job works on a duplicate of it
 * Return: 0, or -errno (-EBUSY: a job is in flight; -EMFILE: no duplicate)
 */
int pvm_splicer_submit(struct pvm_splicer *sp, int app_fd, size_t len);

/**
 * pvm_splicer_result() - the outcome of the job, once it has ended
 * @n:   as splice(): bytes moved, 0 at the app's EOF, -1 on error
 * @err: errno of the splice when *@n is -1
 * Return: true if the job had ended (the splicer is idle again), false if not yet
 */
bool pvm_splicer_result(struct pvm_splicer *sp, ssize_t *n, int *err);

/*
 * End the connection the job in flight reads (shutdown of its duplicate): the
 * app then sees its end even while the splice stays stuck.  No job: nothing.
 */
void pvm_splicer_shutdown(struct pvm_splicer *sp);

/* How long the job has been inside splice(), in ms; -1 if it is not (waiting, or ended). */
long pvm_splicer_running_ms(struct pvm_splicer *sp);

/**
 * pvm_splicer_free() - let go of @sp; never blocks
 * @sp: the splicer, or NULL; the loop no longer watches pvm_splicer_fd()
 *
 * The thread ends, closes the pipe and frees everything when its splice (if
 * one is stuck) returns: closing the pipe's last writer takes the pipe's lock too.
 */
void pvm_splicer_free(struct pvm_splicer *sp);

#endif /* MW_PVM_SPLICE_H */
