/* SPDX-License-Identifier: MIT */
/* pvm_splice.h - the splicer: an app's bytes into an INS's data pipe, off mw-pvm's loop */
#ifndef MW_PVM_SPLICE_H
#define MW_PVM_SPLICE_H

#include <stddef.h>
#include <sys/types.h>

struct pvm_splicer;

/**
 * pvm_splicer_new() - a splicer thread for one INS's data pipe
 * @pipe_fd:    the pipe's write end; owned by the splicer from here on, even on failure
 * @timeout_ms: how long one splice may take before the INS is deemed to hold the pipe
 * Return: the splicer, or NULL (errno set; @pipe_fd is closed)
 */
struct pvm_splicer *pvm_splicer_new(int pipe_fd, int timeout_ms);

/**
 * pvm_splicer_move() - splice up to @len bytes of @app_fd into the pipe, without blocking
 * @sp:     the splicer
 * @app_fd: the app's socket (non-blocking); the splicer works on a duplicate of it
 * @len:    at most this many bytes
 *
 * Waits for the splicer's thread, at most the timeout.  Return: as splice():
 * bytes moved, 0 at the app's EOF, or -1 with errno (EAGAIN: pipe full or
 * nothing to read, also when the thread did not start in time).  -1 with
 * ETIMEDOUT: the splice is stuck (the INS holds the pipe's lock); the splicer
 * is no longer usable: pvm_splicer_free() it and end the INS.
 */
ssize_t pvm_splicer_move(struct pvm_splicer *sp, int app_fd, size_t len);

/**
 * pvm_splicer_free() - let go of @sp; never blocks
 * @sp: the splicer, or NULL
 *
 * The thread ends, closes the pipe and frees everything when its splice (if
 * one is stuck) returns: closing the pipe's last writer takes the pipe's lock too.
 */
void pvm_splicer_free(struct pvm_splicer *sp);

#endif /* MW_PVM_SPLICE_H */
