/* SPDX-License-Identifier: MIT */
/* pvm.h - mw-pvm internal types shared by its files (shim control, INS, sockets, relay) */
#ifndef MW_PVM_H
#define MW_PVM_H

#include <ev.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

#include "common/addr.h"
#include "common/channel.h"
#include "common/config.h"
#include "common/daemon.h"
#include "common/proto.h"
#include "common/spin.h"
#include "common/shimctl.h"
#include "common/subuid.h"
#include "pvm/pvm_splice.h"
#include "pvm/pvm_table.h"

/* Accepted connections waiting for room in the app's accept queue: at most, retry period. */
#define PVM_HANDOVER_MAX     65536
#define PVM_HANDOVER_RETRY_S 0.002
/* Of them, per listener: 8 x its backlog, at least PVM_HANDOVER_LISTENER_MIN and at most
 * PVM_HANDOVER_LISTENER_MAX (a kernel holds its backlog; clients beyond would retry their
 * SYNs).  One unread listener cannot take the whole queue from the others. */
#define PVM_HANDOVER_LISTENER_MIN 512
#define PVM_HANDOVER_LISTENER_MAX (PVM_HANDOVER_MAX / 16) /* whatever backlog the app asks */
/* The shim's control/data accept, out of fds (EMFILE...): paused this long. */
#define PVM_ACCEPT_RETRY_S 0.1
/* Processes whose sockets are checked again after their control connection closed. */
#define PVM_LIVE_RECHECK_PIDS 64
#define PVM_PEND_CLASSES      21 /* pending buffer sizes 1 KiB .. 1 GiB, by power of two */

struct pvm;
struct pvm_ins;
struct pvm_client;
struct pvm_netflow;
struct mw_keystore;
struct pvm_uidq;
struct pvm_closer;

/*
 * Theory of operation (docs/pvm.md has the whole story)
 *
 * A struct pvm_sock exists for every id the PVM knows, in one hash table:
 *   APP      created by the shim's SOCKET; the id the app sees.  When it binds,
 *            REPLICAs (one per other live INS) are created, bound to the same
 *            address and listened with it; accepted connections from any of
 *            them are delivered to the app's listener named by the APP id.
 *   REPLICA  a listener copy on another INS; never seen by the app.
 *   ACCEPTED an INS-assigned id for a connection accepted on an APP/REPLICA.
 * States: NEW -> BOUND -> LISTENING, or NEW|BOUND -> CONNECTING -> CONNECTED;
 * any -> CLOSING (OP_CLOSE/OP_ABORT sent, waiting for EV_CLOSED, then freed).
 * A connection owns fd, mw-pvm's end of the app's AF_UNIX socket, relayed to
 * the ring by pvm_relay.c.  When an INS dies its sockets are freed, except
 * APP listeners, which live on through their replicas (ins = NULL).
 */
enum pvm_sock_kind {
	PVM_SOCK_APP,
	PVM_SOCK_REPLICA,
	PVM_SOCK_ACCEPTED
};
enum pvm_sock_state {
	PVM_ST_NEW,
	PVM_ST_BOUND,
	PVM_ST_LISTENING,
	PVM_ST_CONNECTING,
	PVM_ST_CONNECTED,
	PVM_ST_CLOSING,
};

/* One recorded option, replayed on replicas. */
struct pvm_opt {
	struct pvm_opt *next;
	int32_t level, name;
	uint32_t len;
	uint8_t val[MW_SOCKOPT_MAX];
};

struct pvm_sock {
	uint64_t id;
	struct pvm *pvm;
	struct pvm_ins *ins; /* NULL: its INS died (APP listener kept alive) */
	enum pvm_sock_kind kind;
	enum pvm_sock_state state;
	uint8_t family; /* 4 or 6 */
	int backlog;
	int op_status; /* bind status while its GETNAME is in flight */
	struct mw_addr bound, local, peer;
	struct pvm_opt *opts;
	struct pvm_sock *primary;  /* REPLICA: its APP socket */
	struct pvm_sock *replicas; /* APP: first replica; linked through rnext */
	struct pvm_sock *rnext;

	/* relay (connections only) */
	int fd; /* -1 when none */
	ev_io rio, wio;
	struct pvm_credit cr;
	uint8_t *pend; /* bytes for the app that did not fit its socket */
	uint32_t pend_off, pend_len, pend_cap;	/* cap counted in pvm.pending_total */
	struct pvm_sock *pend_next, *pend_prev; /* on a pvm->pend_class ring while @pend is held */
	/* last time a write to the app went through after one found its socket full
	 * (app_full): the app read; 0: never (pvm_relay.c) */
	ev_tstamp app_read;
	bool app_full;
	bool app_eof;	       /* read 0 from the app: OP_SHUTDOWN sent */
	bool app_shut;	       /* the app's EOF is queued (POLLRDHUP seen): no need to ask again */
	bool app_hup;	       /* and it closed, not just shut its write side (POLLHUP) */
	bool net_eof;	       /* EV_EOF: shut the app's read side once pend drains */
	bool net_reset;	       /* EV_RESET: close the app end once pend drains */
	bool rx_eof, rx_reset; /* the INS sent EV_EOF / EV_RESET: what may follow is checked */
	bool blocked;	       /* on ins->blocked: waiting for ring room */
	bool bulk;	       /* last read filled its frame: read, do not peek (pvm_relay.c) */
	bool splicing;	       /* a splice of its bytes is in flight (pvm_relay.c) */
	bool no_splice;	       /* the last one moved nothing: read the next into the ring */
	bool abort_sent;       /* CLOSING by OP_ABORT (else OP_CLOSE, which an abort may follow) */
	struct pvm_sock *blk_next;

	/* connect outcome (pvm_connect.c) */
	int connect_fd;	 /* the app's fd, from CONNECT until its RESULT; -1 */
	uid_t connect_acct; /* whose CONNECT passed it: its close is charged there */
	uint32_t filler; /* bytes from the app's socket left unread at fd: it is held */
	bool held;	 /* fd in pvm->hold_fd until the outcome */
	bool hup_watch;	 /* fd in pvm->hold_fd: the app shut its write side */
	bool outcome_known, outcome_consumed;
	int connect_err;	   /* positive errno, 0 = connected */
	struct pvm_client *waiter; /* CONNECT_WAIT / GETOPT SO_ERROR parked here */
	int waiter_op;

	/* observation */
	uint64_t bytes_in, bytes_out; /* in: network -> app; out: app -> network */
	struct timespec created;
	pid_t owner_pid;
	uint64_t owner_client; /* serial of the registration that created it (Netflow signals) */
	uint64_t listener; /* ACCEPTED: the app's listener it was accepted on */
	/* ACCEPTED, waiting for room in the app's accept queue (pvm->handover) */
	struct pvm_sock *ho_next, *ho_prev;
	bool ho_waiting;
	unsigned ho_waiters;   /* APP listener: its accepted connections waiting for room */
	uint64_t ho_full_pass; /* APP listener: the retry pass that found its queue full */
	uid_t owner_uid;   /* who created it (observation only: the fd is the authority) */
	uid_t owner_acct;  /* its account (pvm_uid_account()): the copy's close is charged there */
	dev_t app_dev;	   /* the app's AF_UNIX socket, made by us at SOCKET (app sockets) */
	ino_t app_ino;
	uint64_t nonce;	  /* the random part of its 'S' name ('A' for an accepted one) */
	int app_fd;	  /* our copy of the app's socket until the SOCKET answer passed it */
	uid_t listen_uid; /* who sent LISTEN: the hand-over's listener must be theirs */
	bool quota_held;  /* counted against owner_uid (pvm_quota.c) */
	bool lv_linked;	  /* on the liveness list (pvm_appsock.c) */
	bool obs_created; /* APP: its CREATE was due (pvm_sock_created()), so is its CLOSE */
	struct pvm_sock *lv_next, *lv_prev;
	bool cl_linked;	   /* on its INS's list of closes awaiting EV_CLOSED */
	bool name_refused; /* its INS socket is bound to a name we refused or never learned:
			      no bind, listen or connect */
	struct pvm_sock *cl_next, *cl_prev;
	ev_tstamp cl_since; /* when it was closed */
};

enum pvm_req_kind {
	PVM_REQ_QUIET, /* internal (replicas, close): failures handled, no reply */
	PVM_REQ_SOCKET,
	PVM_REQ_BIND, /* followed by PVM_REQ_BIND_NAME */
	PVM_REQ_BIND_NAME,
	PVM_REQ_LISTEN,
	PVM_REQ_CONNECT,
	PVM_REQ_SETOPT,
	PVM_REQ_GETOPT,
	PVM_REQ_GETNAME,
	PVM_REQ_NETFLOW, /* a Netflow request: the result goes to done() */
};

/* A failed connect's errno, kept for the app's getsockopt(SO_ERROR) after the socket is freed. */
struct pvm_failed {
	uint64_t id;
	int err;
	dev_t dev; /* the app's socket, as its fd was first seen */
	ino_t ino;
};

/* One control op in flight to an INS; answered by its MW_RESULT. */
struct pvm_req {
	struct pvm_req *next;
	uint32_t req;
	uint16_t type;
	enum pvm_req_kind kind;
	uint64_t sock;
	struct pvm_client *client; /* NULL if nobody waits (or the client left) */
	struct pvm_opt opt;	   /* SETOPT: recorded on success */
	/* PVM_REQ_NETFLOW: called once with the result, or -ENOENT if the INS dies */
	void (*done)(void *ctx, int status, const void *val, uint32_t len);
	void *done_ctx;
	ev_tstamp sent; /* a client still waiting after pvm.op_timeout_ms gets ETIMEDOUT */
};

/* A control frame that found the ring full, sent first when room appears. */
struct pvm_ctlq {
	struct pvm_ctlq *next;
	uint16_t type;
	uint64_t sock;
	uint32_t len;
	uint8_t payload[];
};

struct pvm_ins {
	struct pvm *pvm;
	struct pvm_ins *next;
	uint16_t id;
	struct mw_channel ch;
	ev_io wait_io, sock_io;
	ev_timer hb_timer;
	ev_tstamp last_heard;
	uint32_t next_req;
	struct pvm_req *reqs, *reqs_tail;
	struct pvm_ctlq *q, *q_tail;
	uint32_t nreqs, nq; /* lengths of reqs and q, each at most pvm.ins_max_queued */
	uint32_t nconns;    /* ACCEPTED sockets on it (pvm.ins_max_conns, then aborted) */
	struct pvm_sock *cl_head, *cl_tail; /* closes awaiting EV_CLOSED, oldest first */
	uint64_t conns_refused;
	char cut[128]; /* set: a bound was broken deep in a call chain; killed at prepare */
	struct pvm_sock *blocked; /* sockets waiting for ring room */
	struct pvm_splicer *splicer; /* bulk into the data pipe (pvm_splice.c); NULL: ring only */
	ev_io splice_io;	     /* its job ended */
	ev_timer splice_timer;	     /* its job runs too long: the INS holds the pipe */
	uint64_t splice_sock;	     /* the socket whose job is in flight; 0 if none */
	bool dead;
	bool more_rx; /* frames left after a batch */
	uint32_t nsocks;
	struct mw_stats stats;
};

struct pvm_client {
	struct pvm *pvm;
	struct pvm_client *next, *prev;
	int fd;
	ev_io io;
	pid_t pid;
	uid_t uid;
	uid_t acct; /* what its uid is charged to: connections, fds to close (common/subuid.c) */
	int pidfd;	 /* the peer process, from connect time: signals never hit a reused pid */
	uint64_t serial; /* unique per connection, never reused */
	bool registered;
	bool parked; /* its uid's fds wait for the closer: not read meanwhile */
	bool noreply; /* the op in flight is an F_NOREPLY SETOPT: its answer is not sent */
	struct pvm_req *req;	    /* op in flight on its behalf */
	struct pvm_sock *wait_sock; /* parked on this socket's connect outcome */
	int req_fd; /* the fd that came with the request being handled; -1: none */
};

/* A local INS process and the id it joined as (pvm_insproc.c). */
struct pvm_insproc {
	int pidfd; /* readable once the process exited */
	pid_t pid;
	uint16_t id;
};

#define PVM_INS_PROCS 256

struct pvm {
	struct mw_daemon *d;
	struct ev_loop *loop;
	const struct mw_pvm_config *cfg;
	uint64_t tag;
	char ctl_path[MW_PATH_MAX], ins_path[MW_PATH_MAX];
	int ctl_fd, ins_fd;
	ev_io ctl_io, ins_io;
	int hold_fd; /* epoll set of app sockets held until their connect outcome */
	char connect_dir[MW_PATH_MAX + 32]; /* private (0700): the app connections' listeners */
	int connect_dirfd;		    /* that directory, open (-1: none) */
	unsigned connect_seq;		    /* their names */
	ev_io hold_io;
	struct pvm_failed *failed; /* ring of FAILED_SLOTS, allocated on first use */
	unsigned failed_next;
	ev_prepare prep;
	ev_idle idle;
	struct mw_spin spin;
	ev_timer status_timer;
	struct pvm_ins *ins_list;
	struct pvm_insproc insprocs[PVM_INS_PROCS]; /* oldest first */
	unsigned ninsprocs;
	uint16_t rr_last;	/* id of the INS picked last */
	struct pvm_idalloc ids; /* PVM-assigned local ids, shared by all INS (pvm_table.h) */
	struct pvm_hs *hs_head; /* INS handshakes in progress, oldest first (pvm_handshake.c) */
	struct pvm_hs *hs_tail;
	unsigned nhs;
	ev_timer ins_accept_pause; /* accept on pvm.ins_socket paused after EMFILE/ENFILE */
	struct pvm_table socks;
	struct pvm_client *clients;
	uint64_t client_serial; /* last pvm_client.serial given */
	/* accepted connections the app's full accept queue could not take yet */
	struct pvm_sock *ho_head, *ho_tail;
	unsigned ho_count;
	uint64_t ho_pass; /* retry passes so far */
	ev_timer ho_timer;
	struct pvm_netflow *nf; /* the Netflow server, NULL if it could not start */
	struct pvm_xen *xen;      /* INS domUs through XenStore (pvm_xen.c), NULL if off */
	struct mw_keystore *view; /* where each INS channel's state is published (pvm_view.c) */
	/* app sockets without a data connection, swept for liveness (pvm_appsock.c) */
	struct pvm_sock *lv_head, *lv_cursor;
	unsigned lv_count;
	ev_timer lv_timer;
	ev_timer lv_recheck;		      /* processes whose control connection closed */
	pid_t lv_pids[PVM_LIVE_RECHECK_PIDS]; /* ... checked again shortly */
	unsigned lv_npids;
	unsigned lv_kick_visits, lv_kick_checks; /* left to kicks until the recheck */
	uint64_t lv_checks;			 /* name checks made (tests) */
	struct pvm_uidq *quota; /* sockets per uid (pvm_quota.c) */
	struct mw_subuids subuids; /* subordinate uid ranges, each one account (common/subuid.c) */
	struct pvm_closer *closer; /* closes passed fds and control connections off the loop */
	ev_timer accept_timer;	/* control/data accept parked on EMFILE and the like */
	ev_timer park_timer;	/* clients parked on their uid's closer backlog */
	unsigned nparked;
	bool ctl_rights_gated; /* control connections take fds once admitted (SO_PASSRIGHTS) */
	uint64_t released_total, quota_refused, listener_hijacks;
	uint64_t clients_refused; /* control connections over pvm.max_connections_per_user */
	unsigned nclients, nins;
	uint64_t accepted_total, ins_killed;
	/* client bytes held for apps that have not taken them (pvm_relay.c) */
	/* by whether the app has read ([app_read > 0]), then capacity: 1 KiB << index and up;
	 * circular, the head the last linked or read */
	struct pvm_sock *pend_class[2][PVM_PEND_CLASSES];
	uint64_t pend_bytes, pend_resets;
};

/* pvm_shim.c */
int pvm_shim_open(struct pvm *p, char *err, size_t errlen);
void pvm_shim_close(struct pvm *p);
void pvm_shim_answer(struct pvm_client *c, int status, uint64_t sock, const struct mw_addr *addr,
		     const void *val, uint32_t len);
void pvm_shim_answer_fd(struct pvm_client *c, uint64_t sock, int fd);
void pvm_shim_outcome(struct pvm_sock *s);

/* pvm_handshake.c */
struct pvm_hs;
void pvm_hs_start(struct pvm *p, int fd);
void pvm_hs_close_all(struct pvm *p);

/* pvm_insproc.c */
const char *pvm_insproc_refusal(struct pvm *p, pid_t pid, uint16_t id, char *buf, size_t bl);
void pvm_insproc_joined(struct pvm *p, int pidfd, pid_t pid, uint16_t id);
void pvm_insproc_close_all(struct pvm *p);

/* pvm_connect.c */
int pvm_connect_open(struct pvm *p, const char *runtime_dir);
int pvm_connect_app(struct pvm *p, int app, int *end);
void pvm_connect_close(struct pvm *p);
int pvm_connect_attach(struct pvm_sock *s);
void pvm_connect_release(struct pvm_sock *s, bool ok);
void pvm_connect_forget(struct pvm_sock *s);
void pvm_connect_watch_hup(struct pvm_sock *s);
void pvm_connect_failed_put(struct pvm_sock *s);
int pvm_connect_failed_take(struct pvm *p, uint64_t id, dev_t dev, ino_t ino);

/* pvm_ins.c */
int pvm_ins_open(struct pvm *p, char *err, size_t errlen);
void pvm_ins_join(struct pvm *p, int fd, const struct mw_hello *hello);
void pvm_ins_hello(const struct pvm *p, struct mw_hello *mine);
const char *pvm_ins_refusal(struct pvm *p, const struct mw_hello *hello);
void pvm_ins_start(struct pvm *p, struct mw_channel *ch);
struct pvm_ins *pvm_ins_by_id(struct pvm *p, uint16_t id);
uint64_t pvm_ins_new_id(struct pvm_ins *ins);
void pvm_ins_close_all(struct pvm *p);
struct pvm_ins *pvm_ins_pick(struct pvm *p);
int pvm_ins_op(struct pvm_ins *ins, uint16_t type, uint64_t sock, void *payload, uint32_t len,
	       enum pvm_req_kind kind, struct pvm_client *c, struct pvm_req **out);
int pvm_ins_ctl(struct pvm_ins *ins, uint16_t type, uint64_t sock, const void *payload,
		uint32_t len);
void pvm_ins_kill(struct pvm_ins *ins, const char *reason);
void pvm_ins_cut(struct pvm_ins *ins, const char *reason);
void pvm_ins_flush(struct pvm_ins *ins);
void pvm_ins_splice_timer(struct pvm_ins *ins, double secs);
void pvm_ins_ctl_first(struct pvm_ins *ins, uint16_t type, uint64_t sock, const void *payload,
		       uint32_t len);

/* pvm_sock.c */
struct pvm_sock *pvm_sock_new(struct pvm *p, struct pvm_ins *ins, uint64_t id,
			      enum pvm_sock_kind kind, uint8_t family);
void pvm_sock_created(struct pvm_sock *s);
struct pvm_sock *pvm_sock_find(struct pvm *p, uint64_t id);
void pvm_sock_free(struct pvm_sock *s);
int pvm_sock_close(struct pvm_sock *s, bool abort);
double pvm_sock_close_overdue(const struct pvm_ins *ins, ev_tstamp now);
int pvm_sock_replicate(struct pvm_sock *app, struct pvm_ins *ins);
void pvm_sock_replay_all(struct pvm_ins *ins);
void pvm_sock_close_listener(struct pvm_sock *app);
void pvm_sock_free_all(struct pvm *p);
void pvm_sock_reap_ins(struct pvm_ins *ins);
void pvm_sock_result(struct pvm_ins *ins, struct pvm_req *r, int status, const void *val,
		     uint32_t len);
int pvm_sock_accepted(struct pvm_ins *ins, struct pvm_sock *lsn, const struct mw_ev_accepted *ev);
int pvm_sock_opt_record(struct pvm_sock *s, const struct pvm_opt *o);
int pvm_sock_send_opt(struct pvm_sock *s, const struct pvm_opt *o);

/* pvm_appsock.c */
int pvm_nonce(uint64_t *out);
int pvm_appsock_create(struct pvm_sock *s);
bool pvm_appsock_gone(const struct pvm_sock *s);
/* Ports below this are bound only for root or mw-pvm's own user (as the kernel's
 * CAP_NET_BIND_SERVICE). */
#define PVM_PRIVILEGED_PORTS 1024

void pvm_appsock_watch(struct pvm_sock *s);
void pvm_appsock_unwatch(struct pvm_sock *s);
bool pvm_appsock_check(struct pvm_sock *s, const char *why);
void pvm_appsock_check_port(struct pvm *p, const struct pvm_sock *self, uint16_t port);
bool pvm_appsock_reuseport_taken(struct pvm *p, const struct pvm_sock *self,
				 const struct mw_addr *addr);
bool pvm_appsock_reuseport_on(const struct pvm_sock *s);
void pvm_appsock_kick(struct pvm *p, pid_t pid);
void pvm_appsock_open(struct pvm *p);
void pvm_appsock_close(struct pvm *p);

/* Subordinate uid ranges of pvm.subuid_file, each one account (common/subuid.c). */
static inline void pvm_subuid_load(struct pvm *p)
{
	mw_subuids_load(&p->subuids, p->cfg->subuid_file, geteuid());
}

static inline uid_t pvm_uid_account(const struct pvm *p, uid_t uid)
{
	return mw_subuid_account(&p->subuids, uid);
}

/* pvm_closer.c */
#define PVM_UID_UNKNOWN ((uid_t)-1) /* a connection whose peer's uid is unknown */
void pvm_closer_put(struct pvm *p, int fd, uid_t uid);
void pvm_closer_put_foreign(struct pvm *p, int fd, uid_t uid);
void pvm_closer_drain(struct pvm *p, int ms);
unsigned pvm_closer_backlog(struct pvm *p, uid_t uid);
void pvm_closer_stop(struct pvm *p);

/* pvm_quota.c */
int pvm_quota_take(struct pvm_sock *s);
void pvm_quota_put(struct pvm_sock *s);
int pvm_quota_client_take(struct pvm *p, uid_t uid, pid_t pid);
void pvm_quota_client_put(struct pvm *p, uid_t uid);

/* pvm_xen.c */
int pvm_xen_open(struct pvm *p, char *err, size_t errlen);
void pvm_xen_close(struct pvm *p);

/* pvm_view.c */
void pvm_view_open(struct pvm *p);
void pvm_view_close(struct pvm *p);
void pvm_view_ins_up(struct pvm_ins *ins);
void pvm_view_ins_down(struct pvm_ins *ins);

/* pvm_netflow.c */
int pvm_netflow_open(struct pvm *p, char *err, size_t errlen);
void pvm_netflow_close(struct pvm *p);
void pvm_netflow_ins_joined(struct pvm_ins *ins);
void pvm_netflow_ins_gone(struct pvm_ins *ins);
void pvm_netflow_status(struct pvm *p, char *buf, size_t len);
int pvm_peer_pidfd(int fd, pid_t pid);

/* pvm_relay.c */
void pvm_relay_attach(struct pvm_sock *s, int fd);
void pvm_relay_start(struct pvm_sock *s);
void pvm_relay_flush(struct pvm_sock *s);
void pvm_relay_detach(struct pvm_sock *s);
int pvm_relay_data(struct pvm_sock *s, const void *buf, uint32_t len);
void pvm_relay_eof(struct pvm_sock *s);
void pvm_relay_reset(struct pvm_sock *s);
void pvm_relay_credit(struct pvm_sock *s);
void pvm_relay_resume(struct pvm_ins *ins);
void pvm_relay_splice_done(struct pvm_ins *ins);
void pvm_relay_splice_stuck(struct pvm_ins *ins);

#endif /* MW_PVM_H */
