/* SPDX-License-Identifier: MIT */
/* ctl_server.h - a daemon's line-framed control socket (mwctl's side of the daemons) */
#ifndef MW_CTL_SERVER_H
#define MW_CTL_SERVER_H

#include <stdbool.h>
#include <stddef.h>
#include <ev.h>

/*
 * Protocol (docs/balancer.md, "Control socket"): a client connects, sends one
 * line of at most MW_CTL_LINE_MAX bytes ending in "\n", and reads until EOF.
 * The daemon's answer starts "ok" or "error MESSAGE"; after "ok" come records,
 * one a line, "KIND key=value ...".  The socket is 0600.
 *
 * Nothing blocks the daemon's loop: clients are non-blocking, the answer is
 * built whole (at most MW_CTL_OUT_MAX bytes) and written as the client reads
 * it; a client that has not sent its line, or not read its answer, within
 * MW_CTL_TIMEOUT_S is dropped; beyond clients_max at once, new clients wait
 * in the listen backlog.
 */

#define MW_CTL_LINE_MAX	 512
#define MW_CTL_TIMEOUT_S 2.0
#define MW_CTL_OUT_MAX	 (1 << 20)

/* An answer being built: grows to MW_CTL_OUT_MAX, then sets cut. */
struct mw_ctl_out {
	char *buf;
	size_t len, cap;
	bool cut; /* limit reached or out of memory: the answer is incomplete */
};

void mw_ctl_outf(struct mw_ctl_out *o, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Answer one command line (no "\n"; may be modified) into @o. */
typedef void mw_ctl_run_fn(void *ctx, char *line, struct mw_ctl_out *o);

struct mw_ctl_server;

int mw_ctl_server_open(struct mw_ctl_server **out, struct ev_loop *loop, const char *path,
		       unsigned clients_max, mw_ctl_run_fn *run, void *ctx, char *err,
		       size_t errlen);
void mw_ctl_server_close(struct mw_ctl_server *s);

#endif
