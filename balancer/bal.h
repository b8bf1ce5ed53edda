/* SPDX-License-Identifier: MIT */
/* bal.h - mw-balancer's shared state: the INS set, its lifecycle, front end and control socket */
#ifndef BAL_BAL_H
#define BAL_BAL_H

#include <ev.h>
#include <stdbool.h>
#include <stdint.h>

#include "balancer/autoscale.h"
#include "balancer/backend.h"
#include "balancer/policy.h"
#include "common/daemon.h"

enum bal_ins_state {
	BAL_INS_STARTING, /* spawned; its listeners are not all there yet */
	BAL_INS_READY,	  /* takes new connections */
	BAL_INS_DRAINING, /* retired with --drain: no new connections; stops at 0 */
	BAL_INS_STOPPING, /* asked to stop; waiting for it to exit */
	BAL_INS_DEAD,	  /* exited, cleaned up; freed when its last connection ends */
};

struct bal_ins {
	struct bal_ins *next;
	struct bal *bal;
	struct bal_ins_handle h;
	enum bal_ins_state state;
	ev_child child;
	ev_timer kill_timer; /* SIGKILL if it ignores SIGTERM */
	ev_tstamp spawned_at;
	unsigned conns;		/* front-end connections now */
	uint64_t total, failed; /* connections proxied / backend connects that failed */
	uint64_t rx, tx;	/* bytes client->INS, INS->client */
};

struct bal_fe;
struct bal_ctl;

struct bal {
	struct mw_daemon *d;
	struct ev_loop *loop;
	struct mw_config *cfg; /* &d->cfg, updated in place by reload */
	struct bal_backend be;
	struct bal_ins *ins;
	int target;  /* INS wanted (min_ins..max_ins) */
	int next_id; /* last INS id given */
	enum bal_policy policy;
	int rr;
	ev_timer tick;
	ev_tstamp spawn_backoff_until;
	struct bal_fe *fe;
	struct bal_ctl *ctl;
	struct bal_nf *nf; /* the merged Netflow stream (nf_aggregate.h), NULL if not open */
	bool stopping;
	uint64_t spawned, replaced;
	struct bal_as_state as;	      /* autoscale (balancer.autoscale) */
	enum bal_as_reason as_reason; /* its last verdict, for status */
	uint64_t as_ups, as_downs;    /* steps it took */
};

/* ins.c */
int bal_init(struct bal *b, struct mw_daemon *d, char *err, size_t errlen);
void bal_start(struct bal *b);
/* Stop every INS and wait (bounded) for them to exit, then clean up. */
void bal_shutdown(struct bal *b);
int bal_ins_spawn(struct bal *b, char *err, size_t errlen);
int bal_ins_retire(struct bal *b, int id, bool drain, char *err, size_t errlen);
int bal_scale(struct bal *b, int n, char *err, size_t errlen);
int bal_reload(struct bal *b, char *err, size_t errlen);
struct bal_ins *bal_ins_find(struct bal *b, int id);
const char *bal_ins_state_name(enum bal_ins_state s);
int bal_ins_live(const struct bal *b); /* STARTING + READY */
/* The INS for a new connection, skipping @skip (n ids); NULL if none. */
struct bal_ins *bal_pick(struct bal *b, const void *client_addr, size_t alen, const int *skip,
			 int nskip);
/* Drop one connection from @i; frees a DEAD INS with none left. */
void bal_ins_conn_done(struct bal_ins *i);

/* frontend.c */
int bal_fe_open(struct bal *b, struct bal_fe **out, char *err, size_t errlen);
void bal_fe_close(struct bal_fe *fe);
unsigned bal_fe_conns(const struct bal_fe *fe);

/* ctl.c */
int bal_ctl_open(struct bal *b, struct bal_ctl **out, char *err, size_t errlen);
void bal_ctl_close(struct bal_ctl *c);

#endif /* BAL_BAL_H */
