/* SPDX-License-Identifier: MIT */
/* pvm_netflow.c - mw-pvm's Netflow server: observations out, requests applied on the INS */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/pidfd.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "common/cidr.h"
#include "common/keystore.h"
#include "common/log.h"
#include "common/pidfd.h"
#include "common/shield.h"
#include "common/sockid.h"
#include "netflow/client.h"
#include "netflow/server.h"
#include "pvm/observe.h"
#include "pvm/pvm.h"

/*
 * Theory of operation
 *
 * netflow/server.c owns the consumers; this file connects it to mw-pvm.
 *
 * Observations: the observer hook (pvm/observe.h) is attached only while some
 * consumer watches, so with nobody watching the data path pays one branch.
 *
 * Requests are applied where the socket really lives, and answered with what
 * the INS answered (the original returned junk for every attribute read):
 *   socket attributes   GETOPT/SETOPT on the socket's INS (a listener: on its
 *                       own INS, and a set is recorded and copied to every
 *                       replica, so INS that join later get it too);
 *   Shield* attributes  the same at level MW_SOL_SHIELD, on listeners only,
 *                       val0 a u64 (common/shield.h); the app can never
 *                       reach that level (pvm_shim.c refuses it);
 *   IsOpen WRITE        mitigation close: the app's end is shut both ways
 *                       (its next read is EOF, its next write EPIPE), the TCP
 *                       connection is aborted on the INS, and the close
 *                       observation follows when the INS confirms;
 *   OwnerRunning        is the creating process alive / SIGINT to it (another
 *                       signal only if pvm.netflow_signals lists it), through
 *                       the pidfd taken when that process connected, and only
 *                       while its registration lasts (for an accepted socket:
 *                       the listener's owner's): a reused pid is never hit;
 *   INS-wide settings   MW_OP_INS_SET and MW_OP_ADDR_BLOCK on every live INS
 *   and AddrBlock       (one struct nf_op counts the answers); they are also
 *                       remembered and replayed on every INS that joins;
 *   AddrBlock, scoped   val1 a socket id: the block applies to that id's INS
 *                       only, and ends with it (mw-guard's evidence from one
 *                       INS, which a compromised INS could have made up).
 * An op waiting for INS answers holds only the consumer's serial, so a
 * consumer that leaves meanwhile is simply not answered.
 *
 * Blocks are bounded: at most pvm.netflow_block_max, each expiring after
 * pvm.netflow_block_ttl_s (a block of an address already blocked renews it);
 * an expired or lifted block is lifted on every INS it covered that no other
 * block of the address still covers.  An unblock without a scope lifts every
 * block of the address.
 */

#define NF_BLOCK_SWEEP_S  1.0
#define NF_INDEX_PROBE_MS 500
#define NF_SIGNALS_MAX	  8

struct nf_block {
	struct nf_block *next;
	struct mw_addr addr;
	ev_tstamp expires; /* 0 = never */
	bool scoped;	   /* on INS @ins only, until it ends; else on every INS */
	uint16_t ins;
	uint8_t prefix_len; /* 0: @addr alone; else the addresses sharing its first bits */
};

struct pvm_netflow {
	struct pvm *p;
	struct mw_nf_server *srv;
	struct mw_keystore *ks;
	struct pvm_observer observer;
	char address[MW_ADDR_STRLEN + MW_PATH_MAX];
	char index_key[64]; /* MW_NF_KEY_PVMS/<index>/netflow */
	char unix_key[64];  /* MW_NF_KEY_PVMS/<index>/netflow_unix */
	struct mw_nf_tokens tokens;
	int signals[NF_SIGNALS_MAX]; /* allowed besides SIGINT */
	int nsignals;
	/* INS-wide state, replayed on join */
	struct nf_block *blocks;
	unsigned nblocks;
	ev_timer block_timer;
	char congctl[32];     /* "" = never set */
	uint64_t congctl_val; /* as the consumer sent it */
	int delack;	      /* -1 = never set, else 0/1 */
	uint64_t delack_ticks;
};

/* One request waiting for one or more INS answers. */
struct nf_op {
	struct pvm_netflow *nf;
	struct mw_nf_reply to;
	const struct nf_attr *attr; /* socket attributes */
	bool write;
	uint64_t sock;
	struct pvm_opt opt; /* a set on a listener: recorded when its INS agrees */
	unsigned pending;
	int status;
	uint64_t val0, val1;
};

/* Netflow attribute -> socket option on the INS. */
struct nf_attr {
	uint16_t name;
	int level, opt;
	bool timeval; /* val = {sec, usec} */
	bool readonly;
	bool shield; /* MW_SOL_SHIELD: a listener's only, val0 a u64 (common/shield.h) */
};

#define NF_SHIELD(o) { MW_NF_ATTR_SHIELD_BASE + (o), MW_SOL_SHIELD, (o), false, false, true }

static const struct nf_attr nf_attrs[] = {
	{ MW_NF_ATTR_REUSEADDR, SOL_SOCKET, SO_REUSEADDR, false, false, false },
	{ MW_NF_ATTR_REUSEPORT, SOL_SOCKET, SO_REUSEPORT, false, false, false },
	{ MW_NF_ATTR_KEEPALIVE, SOL_SOCKET, SO_KEEPALIVE, false, false, false },
	{ MW_NF_ATTR_DEFER_ACCEPT, IPPROTO_TCP, TCP_DEFER_ACCEPT, false, false, false },
	{ MW_NF_ATTR_NODELAY, IPPROTO_TCP, TCP_NODELAY, false, false, false },
	{ MW_NF_ATTR_SNDBUF, SOL_SOCKET, SO_SNDBUF, false, false, false },
	{ MW_NF_ATTR_RCVBUF, SOL_SOCKET, SO_RCVBUF, false, false, false },
	{ MW_NF_ATTR_SNDTIMEO, SOL_SOCKET, SO_SNDTIMEO, true, false, false },
	{ MW_NF_ATTR_RCVTIMEO, SOL_SOCKET, SO_RCVTIMEO, true, false, false },
	{ MW_NF_ATTR_SNDLOWAT, SOL_SOCKET, SO_SNDLOWAT, false, false, false },
	{ MW_NF_ATTR_RCVLOWAT, SOL_SOCKET, SO_RCVLOWAT, false, false, false },
	{ MW_NF_ATTR_ERROR, SOL_SOCKET, SO_ERROR, false, true, false },
	NF_SHIELD(MW_SHIELD_FILTER),
	NF_SHIELD(MW_SHIELD_DEADLINE_MS),
	NF_SHIELD(MW_SHIELD_HOLD_MAX),
	NF_SHIELD(MW_SHIELD_MIN_IN_RATE),
	NF_SHIELD(MW_SHIELD_MIN_OUT_RATE),
	NF_SHIELD(MW_SHIELD_OUT_BUFFER),
	NF_SHIELD(MW_SHIELD_SRC_MAX_CONNS),
	NF_SHIELD(MW_SHIELD_SRC_RATE),
	NF_SHIELD(MW_SHIELD_PFX_MAX_CONNS),
	NF_SHIELD(MW_SHIELD_PFX_RATE),
	NF_SHIELD(MW_SHIELD_DELIM),
	NF_SHIELD(MW_SHIELD_STALL_MAX),
};
static_assert(MW_SHIELD_OPT_MAX == MW_SHIELD_STALL_MAX, "a shield option without its attribute");

static const struct nf_attr *nf_attr_find(uint16_t name)
{
	size_t i;

	for (i = 0; i < sizeof(nf_attrs) / sizeof(nf_attrs[0]); i++)
		if (nf_attrs[i].name == name)
			return &nf_attrs[i];
	return NULL;
}

/* ---- observations --------------------------------------------------------------- */

static void nf_observe(void *ctx, const struct pvm_obs_event *ev)
{
	struct pvm_netflow *nf = ctx;
	struct mw_nf_info info = { .obs = (uint16_t)ev->type };
	struct timespec now;

	clock_gettime(CLOCK_REALTIME, &now);
	info.ts_session_start.sec = (uint64_t)ev->start.tv_sec;
	info.ts_session_start.ns = (uint64_t)ev->start.tv_nsec;
	info.ts_curr.sec = (uint64_t)now.tv_sec;
	info.ts_curr.ns = (uint64_t)now.tv_nsec;
	info.sockfd = ev->id;
	info.extra = ev->extra;
	mw_nf_endpoint_from_addr(&info.pvm, &ev->local);
	mw_nf_endpoint_from_addr(&info.remote, &ev->peer);
	info.bytes_in = ev->bytes_in;
	info.bytes_out = ev->bytes_out;
	/* Shared out by account: one user's churn does not drop another's observations
	 * (the unknown account, (uid_t)-1, is not MW_NF_SRC_NONE's "unbounded"). */
	mw_nf_server_publish_src(nf->srv, &info,
				 (uint32_t)ev->owner_acct == MW_NF_SRC_NONE
					 ? MW_NF_SRC_NONE - 1
					 : (uint32_t)ev->owner_acct);
}

static bool nf_wants(void *ctx)
{
	struct pvm_netflow *nf = ctx;

	return mw_nf_server_has_room(nf->srv);
}

static void nf_watching(void *ctx, bool on)
{
	struct pvm_netflow *nf = ctx;

	pvm_observe_set(on ? &nf->observer : NULL);
}

/* ---- ops waiting for INS answers ---------------------------------------------------- */

static struct nf_op *nf_op_new(struct pvm_netflow *nf, struct mw_nf_reply to)
{
	struct nf_op *op = calloc(1, sizeof(*op));

	if (op) {
		op->nf = nf;
		op->to = to;
	}
	return op;
}

static void nf_op_finish(struct nf_op *op)
{
	mw_nf_server_respond(op->nf->srv, op->to, op->status, op->status ? 0 : op->val0,
			     op->status ? 0 : op->val1);
	free(op);
}

static void nf_fanout_done(void *ctx, int status, const void *val, uint32_t len)
{
	struct nf_op *op = ctx;

	(void)val;
	(void)len;
	if (status && !op->status)
		op->status = status;
	if (--op->pending == 0)
		nf_op_finish(op);
}

/* Send @type with @payload to @ins for @op (set op->pending to 1 first), or quietly. */
static void nf_send(struct nf_op *op, struct pvm_ins *ins, uint16_t type, void *payload,
		    uint32_t len)
{
	struct pvm_req *r;
	int ret;

	if (!op) {
		pvm_ins_op(ins, type, 0, payload, len, PVM_REQ_QUIET, NULL, NULL);
		return;
	}
	ret = pvm_ins_op(ins, type, 0, payload, len, PVM_REQ_NETFLOW, NULL, &r);
	if (ret) {
		if (!op->status)
			op->status = ret;
		return;
	}
	r->done = nf_fanout_done;
	r->done_ctx = op;
	op->pending++;
}

/* Send @type with @payload to every live INS; answered when all have answered. */
static void nf_fanout(struct nf_op *op, uint16_t type, void *payload, uint32_t len)
{
	struct pvm_ins *ins;

	op->pending = 1; /* held while sending, so an early answer cannot finish it */
	for (ins = op->nf->p->ins_list; ins; ins = ins->next)
		if (!ins->dead)
			nf_send(op, ins, type, payload, len);
	nf_fanout_done(op, 0, NULL, 0);
}

static void nf_sockopt_done(void *ctx, int status, const void *val, uint32_t len)
{
	struct nf_op *op = ctx;
	struct pvm_sock *s = pvm_sock_find(op->nf->p, op->sock);
	struct timeval tv;
	uint64_t v64;
	int v = 0;

	op->status = status;
	if (!status && op->write && s && s->kind == PVM_SOCK_APP && s->state == PVM_ST_LISTENING) {
		/* Listeners live on every INS: keep the replicas and later joiners in step. */
		struct pvm_sock *r;

		op->status = pvm_sock_opt_record(s, &op->opt);
		for (r = s->replicas; r && !op->status; r = r->rnext)
			if (r->ins && r->ins != s->ins)
				pvm_sock_send_opt(r, &op->opt);
	}
	if (!status && !op->write) {
		if (op->attr->timeval && len >= sizeof(tv)) {
			memcpy(&tv, val, sizeof(tv));
			op->val0 = (uint64_t)tv.tv_sec;
			op->val1 = (uint64_t)tv.tv_usec;
		} else if (op->attr->shield) {
			if (len == sizeof(v64)) {
				memcpy(&v64, val, sizeof(v64));
				op->val0 = v64;
			} else {
				op->status = -EIO;
			}
		} else if (len >= sizeof(v)) {
			memcpy(&v, val, sizeof(v));
			op->val0 = (uint64_t)(int64_t)v;
		} else {
			op->status = -EIO;
		}
	}
	nf_op_finish(op);
}

/* ---- requests --------------------------------------------------------------------- */

/* The socket a BY_SOCK request names, as the app knows it. */
static struct pvm_sock *nf_sock(struct pvm_netflow *nf, const struct mw_nf_request *req)
{
	struct pvm_sock *s;

	if (!(req->flags & MW_NF_FLAG_BY_SOCK))
		return NULL;
	s = pvm_sock_find(nf->p, req->sockfd);
	return s && s->kind != PVM_SOCK_REPLICA ? s : NULL;
}

/* Where a socket's options are read and written: its INS, or a replica's if that died. */
static struct pvm_sock *nf_sock_on_ins(struct pvm_sock *s)
{
	struct pvm_sock *r;

	if (s->ins && !s->ins->dead)
		return s;
	for (r = s->replicas; r; r = r->rnext)
		if (r->ins && !r->ins->dead)
			return r;
	return NULL;
}

static int nf_sockattr(struct pvm_netflow *nf, struct mw_nf_reply to,
		       const struct mw_nf_request *req, const struct nf_attr *attr)
{
	struct pvm_sock *s = nf_sock(nf, req), *on;
	struct mw_op_sockopt so = { .level = attr->level, .name = attr->opt };
	bool write = req->flags & MW_NF_FLAG_WRITE;
	struct timeval tv;
	struct pvm_req *r;
	struct nf_op *op;
	int v, ret;

	if (!(req->flags & MW_NF_FLAG_BY_SOCK))
		return -EINVAL;
	if (!s || s->state == PVM_ST_CLOSING)
		return -EBADF;
	if (write && attr->readonly)
		return -EPERM;
	/* A listener's, or a bound socket's about to listen: mw-guard sets the shield on the
	 * bind it observes, before the app's listen() and its first client. */
	if (attr->shield && !(s->kind == PVM_SOCK_APP &&
			      (s->state == PVM_ST_LISTENING || s->state == PVM_ST_BOUND)))
		return -EOPNOTSUPP;
	on = nf_sock_on_ins(s);
	if (!on)
		return -ENOENT;
	if (attr->timeval) {
		tv.tv_sec = (time_t)mw_nf_val_get(req, 0);
		tv.tv_usec = (suseconds_t)mw_nf_val_get(req, 1);
		if (write && (tv.tv_sec < 0 || tv.tv_usec < 0 || tv.tv_usec >= 1000000))
			return -EINVAL;
		memcpy(so.val, &tv, sizeof(tv));
		so.len = sizeof(tv);
	} else if (attr->shield) {
		uint64_t val = mw_nf_val_get(req, 0); /* the INS checks the range */

		memcpy(so.val, &val, sizeof(val));
		so.len = sizeof(val);
	} else {
		uint64_t val = mw_nf_val_get(req, 0);

		if (write && val > INT32_MAX)
			return -EINVAL;
		v = (int)val;
		memcpy(so.val, &v, sizeof(v));
		so.len = sizeof(v);
	}
	op = nf_op_new(nf, to);
	if (!op)
		return -ENOMEM;
	op->attr = attr;
	op->write = write;
	op->sock = s->id;
	op->opt.level = so.level;
	op->opt.name = so.name;
	op->opt.len = so.len;
	memcpy(op->opt.val, so.val, so.len);
	if (write)
		pvm_relay_flush(on); /* after the bytes the app wrote before */
	ret = pvm_ins_op(on->ins, write ? MW_OP_SETOPT : MW_OP_GETOPT, on->id, &so, sizeof(so),
			 PVM_REQ_NETFLOW, NULL, &r);
	if (ret) {
		free(op);
		return ret;
	}
	r->done = nf_sockopt_done;
	r->done_ctx = op;
	return 1; /* answered later */
}

/*
 * Mitigation close.  Shutting mw-pvm's end both ways makes the app read EOF
 * and get EPIPE on write; what the app had already written is discarded
 * first, or closing over unread bytes would turn its EOF into ECONNRESET.
 * The INS resets the connection (OP_ABORT), also one the app already closed
 * and the INS still drains to a slow client.
 */
static int nf_close(struct pvm_netflow *nf, const struct mw_nf_request *req)
{
	struct pvm_sock *s = nf_sock(nf, req);
	char sink[4096];
	int i;

	if (!s)
		return -EBADF;
	mw_notice("netflow: mitigation close of socket %#llx", (unsigned long long)s->id);
	if (s->kind == PVM_SOCK_APP && (s->state == PVM_ST_LISTENING || s->replicas)) {
		pvm_sock_close_listener(s);
		return 0;
	}
	if (s->fd >= 0) {
		shutdown(s->fd, SHUT_RDWR);
		for (i = 0; i < 1024 && read(s->fd, sink, sizeof(sink)) > 0; i++)
			;
	}
	pvm_sock_close(s, true);
	return 0;
}

/**
 * pvm_peer_pidfd() - a pidfd for the process at the other end of @fd
 * @fd:  an accepted AF_UNIX connection
 * @pid: its SO_PEERCRED pid (used only where SO_PEERPIDFD is missing)
 * Return: the pidfd, or -1 (that client's sockets cannot be signalled)
 */
int pvm_peer_pidfd(int fd, pid_t pid)
{
	int pidfd = mw_peer_pidfd(fd, pid);

	if (pidfd < 0)
		mw_log_ratelimited(
			MW_LOG_WARN,
			"netflow: no pidfd for pid %d (%s): OwnerRunning cannot signal it",
			(int)pid, strerror(errno));
	return pidfd;
}

/* The registration that created @s (a listener's for an accepted socket), if it lasts. */
static const struct pvm_client *nf_owner_client(struct pvm *p, const struct pvm_sock *s)
{
	const struct pvm_client *c;

	for (c = p->clients; c; c = c->next)
		if (c->serial == s->owner_client && c->registered && c->pidfd >= 0)
			return c;
	return NULL;
}

static bool nf_signal_allowed(const struct pvm_netflow *nf, uint64_t sig)
{
	int i;

	for (i = 0; i < nf->nsignals; i++)
		if ((uint64_t)nf->signals[i] == sig)
			return true;
	return false;
}

static int nf_owner(struct pvm_netflow *nf, const struct mw_nf_request *req, uint64_t *val0)
{
	struct pvm_sock *s = nf_sock(nf, req);
	uint64_t sig = mw_nf_val_get(req, 0);
	const struct pvm_client *c;

	if (!(req->flags & MW_NF_FLAG_BY_SOCK))
		return -EINVAL;
	if (!s)
		return -EBADF;
	c = nf_owner_client(nf->p, s);
	if (!(req->flags & MW_NF_FLAG_WRITE)) {
		*val0 = c && pidfd_send_signal(c->pidfd, 0, NULL, 0) == 0;
		return 0;
	}
	/* The original always sent SIGINT; another signal only if configured. */
	if (sig == 0)
		sig = SIGINT;
	if (sig != SIGINT && !nf_signal_allowed(nf, sig)) {
		mw_log_ratelimited(MW_LOG_WARN,
				   "netflow: signal %llu refused (not SIGINT nor in "
				   "pvm.netflow_signals)",
				   (unsigned long long)sig);
		return -EPERM;
	}
	if (!c)
		return -ESRCH; /* its process left (or never registered): nobody to signal */
	mw_notice("netflow: signal %llu to pid %d, owner of socket %#llx", (unsigned long long)sig,
		  (int)c->pid, (unsigned long long)s->id);
	return pidfd_send_signal(c->pidfd, (int)sig, NULL, 0) ? -errno : 0;
}

static bool nf_block_same(const struct nf_block *b, const struct mw_op_addr_block *ab)
{
	return b->addr.family == ab->addr.family && b->prefix_len == ab->prefix_len &&
	       !memcmp(b->addr.addr, ab->addr.addr, 16);
}

/* "10.1.2.3:0", or "2001:db8::/64" for a prefix. */
static const char *nf_block_text(const struct mw_op_addr_block *ab, char *buf, size_t len)
{
	char ip[INET6_ADDRSTRLEN];

	if (!ab->prefix_len)
		return mw_addr_format(&ab->addr, buf, len);
	if (!inet_ntop(ab->addr.family == 4 ? AF_INET : AF_INET6, ab->addr.addr, ip, sizeof(ip)))
		snprintf(ip, sizeof(ip), "?");
	snprintf(buf, len, "%s/%u", ip, ab->prefix_len);
	return buf;
}

/* Is what @a names blocked on INS @ins by a block other than @skip? */
static bool nf_block_covers(const struct pvm_netflow *nf, const struct mw_op_addr_block *a,
			    uint16_t ins, const struct nf_block *skip)
{
	const struct nf_block *b;

	for (b = nf->blocks; b; b = b->next)
		if (b != skip && nf_block_same(b, a) && (!b->scoped || b->ins == ins))
			return true;
	return false;
}

/*
 * Send AddrBlock @ab where @scope says (NULL: every live INS; else its INS only), for
 * @op or quietly.  An unblock skips the INS another block of the address still covers.
 */
static void nf_block_apply(struct pvm_netflow *nf, struct nf_op *op, struct mw_op_addr_block *ab,
			   const struct nf_block *scope)
{
	struct pvm_ins *ins;

	if (op)
		op->pending = 1; /* held while sending (nf_fanout) */
	for (ins = nf->p->ins_list; ins; ins = ins->next) {
		if (ins->dead || (scope && scope->scoped && ins->id != scope->ins))
			continue;
		if (!ab->block && nf_block_covers(nf, ab, ins->id, NULL))
			continue;
		nf_send(op, ins, MW_OP_ADDR_BLOCK, ab, sizeof(*ab));
	}
	if (op)
		nf_fanout_done(op, 0, NULL, 0);
}

static void nf_block_unlink(struct pvm_netflow *nf, struct nf_block *b)
{
	struct nf_block **pp;

	for (pp = &nf->blocks; *pp != b; pp = &(*pp)->next)
		;
	*pp = b->next;
	nf->nblocks--;
}

/*
 * Record a block of @a (@scoped: on INS @ins only), renewing one already there, or
 * forget the unblocked ones: an unblock without a scope forgets every block of @a.
 * A block of every INS takes the place of the scoped ones of @a; a scoped block that
 * one covers is not recorded.
 */
static int nf_block_record(struct pvm_netflow *nf, const struct mw_op_addr_block *a, bool scoped,
			   uint16_t ins)
{
	int ttl = nf->p->cfg->netflow_block_ttl_s;
	struct nf_block *b, *next;
	ev_tstamp expires = ttl ? ev_now(nf->p->loop) + ttl : 0;
	bool block = a->block;

	for (b = nf->blocks; b; b = next) {
		next = b->next;
		if (!nf_block_same(b, a))
			continue;
		if (block && scoped && !b->scoped)
			return 0; /* covered */
		if (scoped && (!b->scoped || b->ins != ins))
			continue;
		if (block && b->scoped == scoped) {
			b->expires = expires; /* renewed */
			return 0;
		}
		nf_block_unlink(nf,
				b); /* unblocked, or a scoped one a block of every INS replaces */
		free(b);
	}
	if (!block)
		return 0;
	if (nf->nblocks >= (unsigned)nf->p->cfg->netflow_block_max) {
		mw_log_ratelimited(MW_LOG_WARN,
				   "netflow: block refused: %u addresses blocked "
				   "already (pvm.netflow_block_max)",
				   nf->nblocks);
		return -ENOSPC;
	}
	b = calloc(1, sizeof(*b));
	if (!b)
		return -ENOMEM;
	b->addr = a->addr;
	b->prefix_len = a->prefix_len;
	b->expires = expires;
	b->scoped = scoped;
	b->ins = ins;
	b->next = nf->blocks;
	nf->blocks = b;
	nf->nblocks++;
	return 0;
}

/* Lift @b (unlinked already) where no other block of its address holds, and free it. */
static void nf_block_lift(struct pvm_netflow *nf, struct nf_block *b)
{
	struct mw_op_addr_block ab = { .block = 0, .prefix_len = b->prefix_len, .addr = b->addr };

	nf_block_apply(nf, NULL, &ab, b);
	free(b);
}

/* Lift the blocks whose time is up, on every live INS. */
static void nf_block_sweep(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct pvm_netflow *nf = w->data;
	ev_tstamp now = ev_now(loop);
	struct nf_block *b, *next;
	char text[MW_ADDR_STRLEN];

	(void)revents;
	for (b = nf->blocks; b; b = next) {
		next = b->next;
		if (!b->expires || b->expires > now)
			continue;
		mw_notice("netflow: block of %s expired (pvm.netflow_block_ttl_s): unblocked",
			  nf_block_text(&(struct mw_op_addr_block){ .prefix_len = b->prefix_len,
								    .addr = b->addr },
					text, sizeof(text)));
		nf_block_unlink(nf, b);
		nf_block_lift(nf, b);
	}
}

/*
 * The INS an AddrBlock is scoped to: val1 0 = every INS (*@scoped false), else a
 * socket id of this PVM naming a live INS (bits 40-55).
 * Return: 0, -EINVAL (not an id of ours), -ENOENT (no such INS now)
 */
static int nf_block_scope(struct pvm_netflow *nf, const struct mw_nf_request *req, bool *scoped,
			  uint16_t *ins)
{
	uint64_t id = mw_nf_val_get(req, 1);
	struct pvm_ins *live;

	*scoped = id != 0;
	*ins = 0;
	if (!id)
		return 0;
	if (!mw_sockid_valid(id) || mw_sockid_pvm(id) != (uint8_t)nf->p->cfg->index)
		return -EINVAL;
	*ins = mw_sockid_ins(id);
	live = pvm_ins_by_id(nf->p, *ins);
	return live && !live->dead ? 0 : -ENOENT;
}

static int nf_addr_block(struct pvm_netflow *nf, struct mw_nf_reply to,
			 const struct mw_nf_request *req)
{
	struct mw_op_addr_block ab = { .block = (mw_nf_val_get(req, 0) & 0xffffffffu) != 0 };
	struct nf_block scope = { .scoped = false };
	struct nf_op *op;
	char text[MW_ADDR_STRLEN], where[32];
	unsigned plen, full;
	int ret;

	if (!(req->flags & MW_NF_FLAG_WRITE) || (req->flags & MW_NF_FLAG_BY_SOCK))
		return -EINVAL;
	if (mw_nf_request_block_addr(req, &ab.addr))
		return -EINVAL;
	/* mwcomms extension: bits 32-39 of val0 a prefix length (0 = the address alone) */
	plen = (unsigned)(mw_nf_val_get(req, 0) >> 32) & 0xff;
	full = ab.addr.family == 4 ? 32 : 128;
	if (plen > full || (ab.addr.family == 6 && plen && plen < full &&
			    mw_cidr_v6_reaches_mapped(ab.addr.addr, plen)))
		return -EINVAL; /* IPv4 peers are looked up as IPv4: say it as an IPv4 prefix */
	/*
	 * mw-ins looks ::ffff:a.b.c.d up as a.b.c.d: one record for both forms, or
	 * lifting one form would lift the other's block on the INS behind our back.
	 */
	if (mw_cidr_unmap(&ab.addr, &plen))
		full = 32;
	ab.prefix_len = (uint8_t)(plen == full ? 0 : plen);
	if (ab.prefix_len)
		mw_cidr_mask(ab.addr.addr, plen);
	ret = nf_block_scope(nf, req, &scope.scoped, &scope.ins);
	if (ret == -ENOENT && !ab.block)
		return 0; /* its blocks ended with it */
	if (ret)
		return ret;
	ret = nf_block_record(nf, &ab, scope.scoped, scope.ins);
	if (ret)
		return ret;
	if (scope.scoped)
		snprintf(where, sizeof(where), "on INS %u", scope.ins);
	else
		snprintf(where, sizeof(where), "on every INS");
	mw_notice("netflow: %s %s %s", ab.block ? "block" : "unblock",
		  nf_block_text(&ab, text, sizeof(text)), where);
	op = nf_op_new(nf, to);
	if (!op)
		return -ENOMEM;
	op->val0 = 1;
	nf_block_apply(nf, op, &ab, &scope);
	return 1;
}

/* Congestion control: the original's codes, or a Linux algorithm name in val. */
static int nf_congctl_name(const struct mw_nf_request *req, char *name, size_t len)
{
	uint64_t code = mw_nf_val_get(req, 0);
	size_t i;

	if (code == MW_NF_CONGCTL_RENO || code == MW_NF_CONGCTL_NEWRENO) {
		snprintf(name, len, "reno"); /* Linux reno is NewReno */
		return 0;
	}
	if (code == MW_NF_CONGCTL_CUBIC) {
		snprintf(name, len, "cubic");
		return 0;
	}
	for (i = 0; i < sizeof(req->val) && i + 1 < len && req->val[i]; i++) {
		char ch = (char)req->val[i];

		if (!((ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') || ch == '_' ||
		      ch == '-'))
			return -EINVAL;
		name[i] = ch;
	}
	name[i] = '\0';
	return i ? 0 : -EINVAL;
}

static int nf_global(struct pvm_netflow *nf, struct mw_nf_reply to, const struct mw_nf_request *req,
		     uint64_t *val0)
{
	struct mw_op_ins_set set = { 0 };
	struct nf_op *op;
	int ret;

	if (!(req->flags & MW_NF_FLAG_WRITE)) {
		if (req->name == MW_NF_ATTR_GLOBAL_CONGCTL)
			*val0 = nf->congctl_val;
		else
			*val0 = nf->delack < 0 ? 0 : nf->delack_ticks;
		return 0;
	}
	if (req->name == MW_NF_ATTR_GLOBAL_CONGCTL) {
		set.name = MW_INS_CONGESTION;
		ret = nf_congctl_name(req, set.text, sizeof(set.text));
		if (ret)
			return ret;
		snprintf(nf->congctl, sizeof(nf->congctl), "%s", set.text);
		nf->congctl_val = mw_nf_val_get(req, 0);
	} else {
		/* Linux has no tick count: any delay means delayed ACKs, 0 quick ACKs. */
		nf->delack_ticks = mw_nf_val_get(req, 0);
		nf->delack = nf->delack_ticks != 0;
		set.name = MW_INS_DELACK;
		set.value = (uint64_t)nf->delack;
	}
	op = nf_op_new(nf, to);
	if (!op)
		return -ENOMEM;
	op->val0 = 1;
	nf_fanout(op, MW_OP_INS_SET, &set, sizeof(set));
	return 1;
}

static void nf_request(void *ctx, struct mw_nf_reply to, const struct mw_nf_request *req)
{
	struct pvm_netflow *nf = ctx;
	const struct nf_attr *attr;
	uint64_t val0 = 0;
	int ret;

	if (req->flags & MW_NF_FLAG_BY_PEER) {
		ret = -EOPNOTSUPP; /* declared by the original, never implemented */
		goto answer;
	}
	switch (req->name) {
	case MW_NF_ATTR_IS_OPEN:
		if (req->flags & MW_NF_FLAG_WRITE) {
			ret = nf_close(nf, req);
			val0 = 1;
		} else {
			struct pvm_sock *s = nf_sock(nf, req);

			ret = s ? 0 : -EBADF;
			val0 = s && s->state != PVM_ST_CLOSING;
		}
		break;
	case MW_NF_ATTR_OWNER_RUNNING:
		ret = nf_owner(nf, req, &val0);
		break;
	case MW_NF_ATTR_NONBLOCK:
		/* O_NONBLOCK is the app's own descriptor's flag; the INS socket is always so. */
		ret = -EOPNOTSUPP;
		break;
	case MW_NF_ATTR_ADDR_BLOCK:
		ret = nf_addr_block(nf, to, req);
		break;
	case MW_NF_ATTR_GLOBAL_CONGCTL:
	case MW_NF_ATTR_GLOBAL_DELACK_TICKS:
		ret = nf_global(nf, to, req, &val0);
		break;
	default:
		attr = nf_attr_find(req->name);
		ret = attr ? nf_sockattr(nf, to, req, attr) : -EINVAL;
		break;
	}
	if (ret > 0)
		return; /* answered when the INS answers */
answer:
	mw_nf_server_respond(nf->srv, to, ret, ret ? 0 : val0, 0);
}

/* ---- life cycle ------------------------------------------------------------------- */

/**
 * pvm_netflow_ins_gone() - forget the blocks scoped to an INS that ended
 * @ins: the INS whose channel ended (out of the list already)
 *
 * Another INS that later joins under the same id does not inherit them.
 */
void pvm_netflow_ins_gone(struct pvm_ins *ins)
{
	struct pvm_netflow *nf = ins->pvm->nf;
	struct nf_block *b, *next;

	if (!nf)
		return;
	for (b = nf->blocks; b; b = next) {
		next = b->next;
		if (b->scoped && b->ins == ins->id) {
			nf_block_unlink(nf, b);
			free(b);
		}
	}
}

/**
 * pvm_netflow_ins_joined() - give a new INS the blocks and INS-wide settings made so far
 * @ins: the INS that just joined
 */
void pvm_netflow_ins_joined(struct pvm_ins *ins)
{
	struct pvm_netflow *nf = ins->pvm->nf;
	struct nf_block *b;

	if (!nf)
		return;
	for (b = nf->blocks; b; b = b->next) {
		struct mw_op_addr_block ab = { .block = 1,
					       .prefix_len = b->prefix_len,
					       .addr = b->addr };

		if (!b->scoped) /* a scoped one ended with its INS (pvm_netflow_ins_gone) */
			nf_send(NULL, ins, MW_OP_ADDR_BLOCK, &ab, sizeof(ab));
	}
	if (nf->congctl[0]) {
		struct mw_op_ins_set set = { .name = MW_INS_CONGESTION };

		snprintf(set.text, sizeof(set.text), "%s", nf->congctl);
		pvm_ins_op(ins, MW_OP_INS_SET, 0, &set, sizeof(set), PVM_REQ_QUIET, NULL, NULL);
	}
	if (nf->delack >= 0) {
		struct mw_op_ins_set set = { .name = MW_INS_DELACK, .value = (uint64_t)nf->delack };

		pvm_ins_op(ins, MW_OP_INS_SET, 0, &set, sizeof(set), PVM_REQ_QUIET, NULL, NULL);
	}
}

/* pvm.netflow_signals: "SIGTERM", "TERM" or a number; Return: 0 or -EINVAL. */
static int nf_parse_signals(struct pvm_netflow *nf, char *err, size_t errlen)
{
	const struct mw_pvm_config *pc = nf->p->cfg;
	int i, sig;

	for (i = 0; i < pc->netflow_signals_count && i < NF_SIGNALS_MAX; i++) {
		const char *name = pc->netflow_signals[i];
		char *end;

		if (!strncmp(name, "SIG", 3))
			name += 3;
		sig = (int)strtol(name, &end, 10);
		if (*end || end == name) {
			for (sig = 1; sig < NSIG; sig++)
				if (sigabbrev_np(sig) && !strcmp(sigabbrev_np(sig), name))
					break;
		}
		if (sig < 1 || sig >= NSIG) {
			snprintf(err, errlen, "netflow: pvm.netflow_signals: unknown signal \"%s\"",
				 pc->netflow_signals[i]);
			return -EINVAL;
		}
		nf->signals[nf->nsignals++] = sig;
	}
	return 0;
}

/*
 * Another mw-pvm with our index, sharing the keystore, would hand out the same
 * socket ids: if the address published at our index key still answers, refuse.
 */
static int nf_check_index(struct pvm_netflow *nf, char *err, size_t errlen)
{
	char cur[MW_ADDR_STRLEN + MW_PATH_MAX], cerr[256];
	struct mw_nf_client *c;

	if (mw_keystore_read(nf->ks, nf->index_key, cur, sizeof(cur)) < 0 || !cur[0])
		return 0;
	if (mw_nf_client_connect(&c, cur, NF_INDEX_PROBE_MS, cerr, sizeof(cerr)))
		return 0; /* a stale key: that PVM is gone */
	mw_nf_client_close(c);
	snprintf(err, errlen,
		 "pvm.index %d is already used by another mw-pvm (its Netflow server answers at "
		 "%s, keystore key %s): give every mw-pvm sharing a keystore its own pvm.index",
		 nf->p->cfg->index, cur, nf->index_key);
	return -EADDRINUSE;
}

static void nf_publish(struct pvm_netflow *nf)
{
	const char *upath = mw_nf_server_unix_path(nf->srv);
	int ret;

	ret = mw_keystore_write(nf->ks, MW_NF_KEY_PVM, nf->address, strlen(nf->address));
	/* Per index too: several PVMs share one keystore, and the balancer merges them all. */
	if (!ret)
		ret = mw_keystore_write(nf->ks, nf->index_key, nf->address, strlen(nf->address));
	if (!ret && upath[0])
		ret = mw_keystore_write(nf->ks, nf->unix_key, upath, strlen(upath));
	if (ret)
		mw_warn("netflow: cannot publish %s at %s: %s", nf->address, MW_NF_KEY_PVM,
			strerror(-ret));
}

/* Remove @key if it still holds @val (another mw-pvm may have published since). */
static void nf_withdraw(struct pvm_netflow *nf, const char *key, const char *val)
{
	char cur[MW_ADDR_STRLEN + MW_PATH_MAX];

	if (val[0] && mw_keystore_read(nf->ks, key, cur, sizeof(cur)) >= 0 && !strcmp(cur, val))
		mw_keystore_remove(nf->ks, key);
}

static void nf_free(struct pvm_netflow *nf)
{
	struct nf_block *b;

	mw_keystore_close(nf->ks);
	while ((b = nf->blocks)) {
		nf->blocks = b->next;
		free(b);
	}
	explicit_bzero(&nf->tokens, sizeof(nf->tokens));
	free(nf);
}

/**
 * pvm_netflow_open() - start the Netflow server and publish its address
 * @p:      the daemon (p->nf is set on success)
 * @err:    one line on failure
 * @errlen: its size
 *
 * The address (TCP "ip:port" if pvm.netflow_listen is set, else the AF_UNIX
 * path) goes to keystore keys /mw/pvm/netflow and /mw/pvms/<index>/netflow,
 * the AF_UNIX path also to /mw/pvms/<index>/netflow_unix.  A keystore that
 * cannot be written is logged and the server still runs.  Another live
 * mw-pvm with the same index is refused (-EADDRINUSE).
 * Return: 0 or -errno
 */
int pvm_netflow_open(struct pvm *p, char *err, size_t errlen)
{
	const struct mw_config *cfg = &p->d->cfg;
	struct mw_nf_server_config sc = { .listen = p->cfg->netflow_listen };
	struct mw_nf_server_ops ops = { .request = nf_request, .watching = nf_watching };
	char upath[MW_PATH_MAX + 32];
	struct pvm_netflow *nf;
	int ret;

	nf = calloc(1, sizeof(*nf));
	if (!nf) {
		snprintf(err, errlen, "netflow: out of memory");
		return -ENOMEM;
	}
	nf->p = p;
	nf->delack = -1;
	nf->observer.wants = nf_wants;
	nf->observer.event = nf_observe;
	nf->observer.ctx = nf;
	ops.ctx = nf;
	snprintf(nf->index_key, sizeof(nf->index_key), MW_NF_KEY_PVMS "/%d/netflow", p->cfg->index);
	snprintf(nf->unix_key, sizeof(nf->unix_key), MW_NF_KEY_PVMS "/%d/netflow_unix",
		 p->cfg->index);
	if (p->cfg->netflow_unix[0])
		snprintf(upath, sizeof(upath), "%s", p->cfg->netflow_unix);
	else
		snprintf(upath, sizeof(upath), "%s/netflow-%d.sock", cfg->common.runtime_dir,
			 p->cfg->index);
	sc.unix_path = upath;
	ret = nf_parse_signals(nf, err, errlen);
	if (!ret)
		ret = mw_nf_access_config(&sc, &nf->tokens, p->cfg, sc.listen, err, errlen);
	if (!ret)
		ret = mw_keystore_open(&nf->ks, cfg->common.keystore, cfg->common.keystore_root,
				       err, errlen);
	if (!ret)
		ret = nf_check_index(nf, err, errlen);
	if (!ret)
		ret = mw_nf_server_open(&nf->srv, p->loop, &sc, &ops, err, errlen);
	if (ret) {
		nf_free(nf);
		return ret;
	}
	mw_nf_server_address(nf->srv, nf->address, sizeof(nf->address));
	nf_publish(nf);
	ev_timer_init(&nf->block_timer, nf_block_sweep, NF_BLOCK_SWEEP_S, NF_BLOCK_SWEEP_S);
	nf->block_timer.data = nf;
	ev_timer_start(p->loop, &nf->block_timer);
	mw_notice("netflow: serving on %s%s%s, published at %s and %s", upath,
		  sc.listen[0] ? " and TCP " : "", sc.listen[0] ? nf->address : "", MW_NF_KEY_PVM,
		  nf->index_key);
	p->nf = nf;
	return 0;
}

/**
 * pvm_netflow_close() - stop serving, withdraw the published address
 * @p: the daemon; call after the INS channels are closed (their pending ops answered)
 */
void pvm_netflow_close(struct pvm *p)
{
	struct pvm_netflow *nf = p->nf;
	char upath[MW_PATH_MAX];

	if (!nf)
		return;
	pvm_observe_set(NULL);
	ev_timer_stop(p->loop, &nf->block_timer);
	snprintf(upath, sizeof(upath), "%s", mw_nf_server_unix_path(nf->srv));
	mw_nf_server_close(nf->srv);
	nf_withdraw(nf, MW_NF_KEY_PVM, nf->address);
	nf_withdraw(nf, nf->index_key, nf->address);
	nf_withdraw(nf, nf->unix_key, upath);
	nf_free(nf);
	p->nf = NULL;
}

/**
 * pvm_netflow_status() - "N consumer(s)" for the STATUS line
 * @p:   the daemon
 * @buf: the text
 * @len: its size
 */
void pvm_netflow_status(struct pvm *p, char *buf, size_t len)
{
	struct mw_nf_server_stats st;

	if (!p->nf) {
		snprintf(buf, len, "netflow off");
		return;
	}
	mw_nf_server_get_stats(p->nf->srv, &st);
	snprintf(buf, len,
		 "%llu netflow consumer(s), %llu dropped (%llu over a share), %llu refused "
		 "(%llu unauthorised), %llu denied, %u blocked",
		 (unsigned long long)st.consumers, (unsigned long long)st.drops,
		 (unsigned long long)st.share_drops, (unsigned long long)st.refused,
		 (unsigned long long)st.unauthorised, (unsigned long long)st.denied,
		 p->nf->nblocks);
}
