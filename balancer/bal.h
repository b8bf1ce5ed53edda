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

/*
 * Every way a connection, a check or an INS can fail, as a named reason:
 * counted in struct bal.reasons, shown by `mwctl status` as fail_<token>=N
 * (reason.c has the token and the text of each).
 */
enum bal_reason {
	BAL_R_NO_INS,		   /* no ready INS could take a client */
	BAL_R_CONNECT_TIMEOUT,	   /* connect to an INS timed out */
	BAL_R_CONNECT_REFUSED,	   /* an INS refused the connect */
	BAL_R_CONNECT_ERROR,	   /* connect to an INS failed otherwise */
	BAL_R_LIMIT,		   /* balancer.max_conns reached: client closed */
	BAL_R_ACCEPT_PAUSED,	   /* accept out of fds or memory: listeners paused */
	BAL_R_RESOURCE,		   /* no socket, pipe or memory for a connection */
	BAL_R_IDLE_TIMEOUT,	   /* no byte either way for idle_timeout_ms */
	BAL_R_IO_ERROR,		   /* a leg failed while moving bytes */
	BAL_R_DRAIN_TIMEOUT,	   /* a draining INS outlived drain_timeout_ms */
	BAL_R_HEALTH_REFUSED,	   /* health probe refused */
	BAL_R_HEALTH_TIMEOUT,	   /* health probe not connected in time */
	BAL_R_HEALTH_NOT_ACCEPTED, /* health probe connected, mw-ins did not accept it */
	BAL_R_HEALTH_STOPPED,	   /* the INS process is stopped (SIGSTOP, traced) */
	BAL_R_HEALTH_PVM_LOST,	   /* mw-pvm no longer has a channel to the INS */
	BAL_R_HEALTH_ERROR,	   /* health probe could not run */
	BAL_R_HEALTH_DOWN,	   /* INS stopped after health_failures failed checks */
	BAL_R_START_TIMEOUT,	   /* INS not joined mw-pvm within start_timeout_ms */
	BAL_R_LIMIT_SOURCE,	   /* balancer.max_conns_per_source reached: client closed */
	BAL_R_COUNT
};

/* Health of one INS as its checks see it (health.c). */
enum bal_health_state {
	BAL_HEALTH_UNKNOWN, /* not checked yet (starting) */
	BAL_HEALTH_OK,	    /* last check passed */
	BAL_HEALTH_FAILING, /* last check failed: out of the rotation */
	BAL_HEALTH_DOWN,    /* health_failures in a row: stopped and replaced */
};

struct bal_health {
	enum bal_health_state state;
	enum bal_reason last;	 /* reason of the last failure (valid once one failed) */
	unsigned fails;		 /* failed checks in a row */
	uint64_t checks, failed; /* checks run / failed */
	int fd;			 /* probe socket, -1 between checks */
	int diag;		 /* NETLINK_SOCK_DIAG socket in the INS's namespace, -1 if none */
	bool no_diag;		 /* that socket cannot be had: probe without the accept check */
	bool pvm_seen;		 /* mw-pvm has published this INS's channel as up */
	int pvm_view;		 /* at the last check: 1 up, 0 lost, -1 not known */
	bool connected;		 /* probe connected; waiting for mw-ins to accept it */
	ev_tstamp started, next; /* this check began / the next one is due */
	ev_io io;
	ev_timer timer; /* check deadline, and the accept poll */
};

/*
 * bal_ins.recent, the new connections given an INS lately (least-connections' share
 * bound, balancer/policy.h): each pick adds BAL_RECENT_ONE to the INS picked and
 * takes 1/2^BAL_RECENT_SHIFT off every INS, so it weighs the last ~64 picks whatever
 * their rate (a decay in time let every INS fall to one floor between sparse
 * connections, and the bound did nothing).  At most ONE << SHIFT: no overflow.
 */
#define BAL_RECENT_ONE	 1024u
#define BAL_RECENT_SHIFT 6

struct bal_ins {
	struct bal_ins *next;
	struct bal *bal;
	struct bal_ins_handle h;
	enum bal_ins_state state;
	ev_child child;
	ev_timer kill_timer; /* SIGKILL if it ignores SIGTERM */
	ev_tstamp spawned_at;
	unsigned conns;		/* front-end connections now */
	unsigned half_open;	/* kernel mode: in their handshake (drain waits for them too) */
	unsigned recent;	/* new connections given it lately (BAL_RECENT_ONE each, decayed) */
	uint64_t total, failed; /* connections proxied / backend connects that failed */
	uint64_t rx, tx;	/* bytes client->INS, INS->client */
	bool proxy_protocol;	/* ins.proxy_protocol as the file said when it was spawned */
	ev_tstamp drain_since;	/* when it became DRAINING */
	int kf_diag;		/* kernel front end: sock_diag socket in its namespace, or -1 */
	int pidfd;		/* its process (readable once it exited), or -1 */
	struct bal_health hc;
};

struct bal_fe;
struct bal_kf;
struct bal_fence;
struct mw_config;
struct mw_keystore;
struct mw_ctl_server;

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
	struct bal_fe *fe; /* balancer.mode splice: the proxy, else NULL */
	struct bal_kf *kf; /* balancer.mode kernel: the nftables steering, else NULL */
	struct bal_fence *fence; /* splice mode with PROXY v2: fence.c, else NULL */
	struct mw_ctl_server *ctl;
	struct bal_nf *nf; /* the merged Netflow stream (nf_aggregate.h), NULL if not open */
	struct mw_keystore *pvm_view; /* mw-pvm's view of each INS channel (health.c), or NULL */
	bool stopping;
	uint64_t spawned, replaced;
	struct bal_as_state as;	       /* autoscale (balancer.autoscale) */
	enum bal_as_reason as_reason;  /* its last verdict, for status */
	uint64_t as_ups, as_downs;     /* steps it took */
	uint64_t reasons[BAL_R_COUNT]; /* failures by reason */
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
struct bal_ins *bal_ins_find_pvm(struct bal *b, int id);
const char *bal_ins_state_name(enum bal_ins_state s);
int bal_ins_live(const struct bal *b);	  /* STARTING + READY */
int bal_ins_running(const struct bal *b); /* STARTING + READY + DRAINING: against max_ins */
int bal_ins_in_rotation(const struct bal *b);
void bal_ins_down(struct bal *b, struct bal_ins *i);
bool bal_ins_reap(struct bal *b);
/* The INS for a new connection, skipping @skip (n ids); NULL if none. */
struct bal_ins *bal_pick(struct bal *b, const void *client_addr, size_t alen, const int *skip,
			 int nskip);
/* Drop one connection from @i; frees a DEAD INS with none left. */
void bal_ins_conn_done(struct bal_ins *i);

/* frontend.c */
int bal_fe_open(struct bal *b, struct bal_fe **out, char *err, size_t errlen);
void bal_fe_close(struct bal_fe *fe);
/* fence.c */
int bal_fence_render(char *buf, size_t len, const char *table, const char *subnet,
		     const char *bridge, unsigned uid);
int bal_fence_open(struct bal *b, struct bal_fence **out, char *err, size_t errlen);
void bal_fence_close(struct bal_fence *f);
void bal_nft_sweep(const struct mw_config *cfg);
void bal_fe_reload(struct bal_fe *fe);
unsigned bal_fe_conns(const struct bal_fe *fe);
bool bal_fe_accept_paused(const struct bal_fe *fe);

/* kfront.c (balancer/kfront.h: the rules) */
/* A kernel-mode configuration's problem as one line; 0 for a good one or splice mode. */
int bal_kf_check(const struct mw_config *cfg, char *err, size_t errlen);
/* Create the table (replacing a stale one); 0 or -errno with @err set. */
int bal_kf_open(struct bal *b, struct bal_kf **out, char *err, size_t errlen);
/* Delete the table; NULL is a no-op. */
void bal_kf_close(struct bal_kf *kf);
/* Rebuild new-connection steering if what it should be changed (cheap when not). */
void bal_kf_sync(struct bal *b);
/* balancer.max_conns into "front" after a reload changed it. */
void bal_kf_set_limit(struct bal *b);
/* Each tick: counters and per-INS connections read back, then bal_kf_sync(). */
void bal_kf_poll(struct bal *b);
/* For ctl: the totals read back now, and each INS's connections counted unless they
 * were in this loop iteration. */
void bal_kf_count(struct bal *b);
void bal_kf_stats(const struct bal_kf *kf, uint64_t *updates, uint64_t *us_max, uint64_t *us_last);

/* health.c */
/* A NETLINK_SOCK_DIAG socket in the network namespace of @pid.  Return: fd or -errno. */
int bal_diag_open(pid_t pid);
void bal_health_open(struct bal *b);
void bal_health_close(struct bal *b);
void bal_health_init(struct bal_ins *i);
void bal_health_tick(struct bal *b, struct bal_ins *i);
bool bal_health_ready(struct bal *b, struct bal_ins *i);
int bal_health_joined(struct bal *b, struct bal_ins *i);
void bal_health_stop(struct bal *b, struct bal_ins *i);
const char *bal_health_state_name(enum bal_health_state s);
const char *bal_health_pvm_view_name(const struct bal_ins *i);

/* reason.c */
const char *bal_reason_token(enum bal_reason r);
const char *bal_reason_text(enum bal_reason r);
void bal_count(struct bal *b, enum bal_reason r);

/* ctl.c */
int bal_ctl_open(struct bal *b, struct mw_ctl_server **out, char *err, size_t errlen);
void bal_ctl_close(struct mw_ctl_server *c);

#endif /* BAL_BAL_H */
