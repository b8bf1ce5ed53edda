/* SPDX-License-Identifier: MIT */
/* observe.h - observer hooks on mw-pvm's socket life cycle (Netflow attaches here later) */
#ifndef MW_PVM_OBSERVE_H
#define MW_PVM_OBSERVE_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>
#include <time.h>

#include "common/addr.h"

/*
 * One observer at a time (the Netflow server).  Call sites test
 * pvm_observe_active() first, so with no observer the hot path pays one
 * predictable branch and builds no event.  RECV/SEND are emitted once per relay
 * batch with cumulative counters, not per byte or per frame.
 */
enum pvm_obs_type {
	PVM_OBS_CREATE = 1,
	PVM_OBS_BIND,
	PVM_OBS_ACCEPT,
	PVM_OBS_CONNECT,
	PVM_OBS_RECV, /* network -> app */
	PVM_OBS_SEND, /* app -> network */
	PVM_OBS_CLOSE,
};

struct pvm_obs_event {
	enum pvm_obs_type type;
	int status;	/* 0 or -errno (CONNECT, BIND) */
	uint64_t id;	/* the socket; for ACCEPT the listener */
	uint64_t extra; /* the socket; for ACCEPT the new connection */
	struct mw_addr local, peer;
	uint64_t bytes_in, bytes_out; /* cumulative */
	pid_t owner_pid;
	uid_t owner_acct;      /* its owner's account (common/subuid.c): whose share it is */
	struct timespec start; /* CLOCK_REALTIME at creation */
};

struct pvm_observer {
	/* Optional: false means nobody can take an event now, so none is built. */
	bool (*wants)(void *ctx);
	void (*event)(void *ctx, const struct pvm_obs_event *ev);
	void *ctx;
};

extern const struct pvm_observer *pvm_observer_current;

static inline bool pvm_observe_active(void)
{
	return __builtin_expect(pvm_observer_current != NULL, 0);
}

/**
 * pvm_observe_set() - attach @o (NULL detaches; the default is none)
 * @o: must stay valid until detached
 */
void pvm_observe_set(const struct pvm_observer *o);

struct pvm_sock;
/**
 * pvm_observe_sock() - emit @type for @s (call only when pvm_observe_active())
 * @type:   what happened
 * @s:      the socket (its counters, addresses, owner)
 * @status: 0 or -errno
 */
void pvm_observe_sock(enum pvm_obs_type type, const struct pvm_sock *s, int status);

#endif /* MW_PVM_OBSERVE_H */
