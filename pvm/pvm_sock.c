/* SPDX-License-Identifier: MIT */
/* pvm_sock.c - the socket table: life cycle, op results, listener replication and replay */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "common/log.h"
#include "common/norights.h"
#include "common/sockid.h"
#include "common/sockname.h"
#include "pvm/observe.h"
#include "pvm/pvm.h"

#define PVM_MAX_OPTS 64

static void handover_cancel(struct pvm_sock *c);

/**
 * pvm_sock_find() - look up a socket by id
 * @p:  the daemon
 * @id: socket id
 * Return: the socket or NULL
 */
struct pvm_sock *pvm_sock_find(struct pvm *p, uint64_t id)
{
	return pvm_table_get(&p->socks, id);
}

/**
 * pvm_sock_new() - create and index a socket entry
 * @p:      the daemon
 * @ins:    where it lives
 * @id:     its id (unique)
 * @kind:   APP, REPLICA or ACCEPTED
 * @family: 4 or 6
 * Return: the socket, or NULL (out of memory, or the id exists)
 */
struct pvm_sock *pvm_sock_new(struct pvm *p, struct pvm_ins *ins, uint64_t id,
			      enum pvm_sock_kind kind, uint8_t family)
{
	struct pvm_sock *s = calloc(1, sizeof(*s));

	if (!s)
		return NULL;
	s->id = id;
	s->pvm = p;
	s->ins = ins;
	s->kind = kind;
	s->family = family;
	s->fd = -1;
	s->app_fd = -1;
	s->connect_fd = -1;
	clock_gettime(CLOCK_REALTIME, &s->created);
	pvm_credit_init(&s->cr, ins->ch.peer.window, (uint32_t)p->cfg->socket_window);
	if (pvm_table_put(&p->socks, id, s)) {
		free(s);
		return NULL;
	}
	ins->nsocks++;
	if (kind == PVM_SOCK_ACCEPTED)
		ins->nconns++;
	/* An app socket's CREATE comes once it is the app's (pvm_sock_created()); an
	 * accepted connection's first observation is ACCEPT, with its endpoints. */
	return s;
}

/**
 * pvm_sock_created() - app socket @s is the app's now (its owner set, its quota
 * taken): its CREATE observation, charged to that owner (Netflow shares)
 * @s: the socket
 */
void pvm_sock_created(struct pvm_sock *s)
{
	s->obs_created = true;
	if (pvm_observe_active())
		pvm_observe_sock(PVM_OBS_CREATE, s, 0);
}

static void sock_unlink_replica(struct pvm_sock *r)
{
	struct pvm_sock **pp;

	if (!r->primary)
		return;
	for (pp = &r->primary->replicas; *pp; pp = &(*pp)->rnext) {
		if (*pp == r) {
			*pp = r->rnext;
			break;
		}
	}
	r->primary = NULL;
	r->rnext = NULL;
}

/* @s enters CLOSING: last on its INS's list of closes awaiting EV_CLOSED. */
static void close_link(struct pvm_sock *s)
{
	struct pvm_ins *ins = s->ins;

	if (s->cl_linked)
		return;
	s->cl_linked = true;
	s->cl_since = ev_now(s->pvm->loop);
	s->cl_next = NULL;
	s->cl_prev = ins->cl_tail;
	if (ins->cl_tail)
		ins->cl_tail->cl_next = s;
	else
		ins->cl_head = s;
	ins->cl_tail = s;
}

static void close_unlink(struct pvm_sock *s)
{
	struct pvm_ins *ins = s->ins;

	if (!s->cl_linked)
		return;
	if (s->cl_prev)
		s->cl_prev->cl_next = s->cl_next;
	else
		ins->cl_head = s->cl_next;
	if (s->cl_next)
		s->cl_next->cl_prev = s->cl_prev;
	else
		ins->cl_tail = s->cl_prev;
	s->cl_next = s->cl_prev = NULL;
	s->cl_linked = false;
}

/**
 * pvm_sock_close_overdue() - has @ins left its oldest close unconfirmed past pvm.close_confirm_ms?
 * @ins: the INS
 * @now: the loop's time
 * Return: how long that close has waited (seconds), or 0 if none is overdue
 */
double pvm_sock_close_overdue(const struct pvm_ins *ins, ev_tstamp now)
{
	const struct pvm_sock *s = ins->cl_head;

	if (!s || (now - s->cl_since) * 1000.0 <= ins->pvm->cfg->close_confirm_ms)
		return 0;
	return now - s->cl_since;
}

/**
 * pvm_sock_free() - forget a socket: close the app end, unindex, free
 * @s: the socket (a waiting shim client must have been answered)
 */
void pvm_sock_free(struct pvm_sock *s)
{
	struct pvm *p = s->pvm;
	struct pvm_opt *o;
	struct pvm_sock *r;

	handover_cancel(s);
	pvm_connect_forget(s);
	pvm_relay_detach(s);
	pvm_appsock_unwatch(s);
	pvm_quota_put(s);
	if (s->app_fd >= 0)
		close(s->app_fd);
	if (s->waiter) {
		s->waiter->wait_sock = NULL;
		s->waiter = NULL;
	}
	sock_unlink_replica(s);
	while ((r = s->replicas)) {
		s->replicas = r->rnext;
		r->primary = NULL;
		r->rnext = NULL;
	}
	while ((o = s->opts)) {
		s->opts = o->next;
		free(o);
	}
	if (s->kind != PVM_SOCK_REPLICA && (s->kind != PVM_SOCK_APP || s->obs_created) &&
	    pvm_observe_active())
		pvm_observe_sock(PVM_OBS_CLOSE, s, 0);
	pvm_table_del(&p->socks, s->id);
	if (s->ins) {
		s->ins->nsocks--;
		if (s->kind == PVM_SOCK_ACCEPTED)
			s->ins->nconns--;
		close_unlink(s);
	}
	free(s);
}

/**
 * pvm_sock_close() - ask the INS to close (or abort) a socket; freed on EV_CLOSED
 * @s:     the socket (freed now if its INS is gone)
 * @abort: RST and drop queued data instead of a graceful close (also when a
 *         graceful close is already under way: the INS still holds it)
 * Return: 0, or -errno if the op could not be sent (the socket was freed)
 */
int pvm_sock_close(struct pvm_sock *s, bool abort)
{
	struct mw_op_req op = { 0 };
	int ret;

	handover_cancel(s);
	if (s->state == PVM_ST_CLOSING) {
		/* A graceful close still draining to the client becomes a reset. */
		if (!abort || s->abort_sent || !s->ins)
			return 0;
		s->abort_sent = true;
		return pvm_ins_op(s->ins, MW_OP_ABORT, s->id, &op, sizeof(op), PVM_REQ_QUIET, NULL,
				  NULL);
	}
	pvm_relay_detach(s);
	sock_unlink_replica(s);
	if (!s->ins) {
		pvm_sock_free(s);
		return 0;
	}
	s->state = PVM_ST_CLOSING;
	s->abort_sent = abort;
	/*
	 * The app has let go: its user may open another socket now, whenever the
	 * INS confirms (a compromised one never would, and would hold the user's
	 * pvm.max_sockets_per_user for good).  The INS confirms within its
	 * ins.fin_timeout_ms: one that leaves a close unconfirmed for
	 * pvm.close_confirm_ms is cut (pvm_sock_close_overdue()).  Not a count:
	 * any user can have many closes linger on an honest INS (peers that stop
	 * acknowledging).
	 */
	pvm_quota_put(s);
	close_link(s);
	ret = pvm_ins_op(s->ins, abort ? MW_OP_ABORT : MW_OP_CLOSE, s->id, &op, sizeof(op),
			 PVM_REQ_QUIET, NULL, NULL);
	if (ret)
		pvm_sock_free(s);
	return ret;
}

/**
 * pvm_sock_opt_record() - remember an option (replace the same level/name) for replay
 * @s: the socket
 * @o: the option
 * Return: 0, -ENOSPC (too many distinct options) or -ENOMEM
 */
int pvm_sock_opt_record(struct pvm_sock *s, const struct pvm_opt *o)
{
	struct pvm_opt **pp, *n;
	int count = 0;

	for (pp = &s->opts; *pp; pp = &(*pp)->next, count++) {
		if ((*pp)->level == o->level && (*pp)->name == o->name) {
			n = (*pp)->next;
			**pp = *o;
			(*pp)->next = n;
			return 0;
		}
	}
	if (count >= PVM_MAX_OPTS)
		return -ENOSPC;
	n = malloc(sizeof(*n));
	if (!n)
		return -ENOMEM;
	*n = *o;
	n->next = NULL;
	*pp = n;
	return 0;
}

/**
 * pvm_sock_send_opt() - set a recorded option on @s's INS (failures handled quietly)
 * Return: 0 or -errno (the op could not be sent)
 */
int pvm_sock_send_opt(struct pvm_sock *s, const struct pvm_opt *o)
{
	struct mw_op_sockopt op = { .level = o->level, .name = o->name, .len = o->len };

	memcpy(op.val, o->val, o->len);
	return pvm_ins_op(s->ins, MW_OP_SETOPT, s->id, &op, sizeof(op), PVM_REQ_QUIET, NULL, NULL);
}

/**
 * pvm_sock_replicate() - copy a bound (listening) APP socket onto @ins
 * @app: the APP socket; its bound address has the port resolved
 * @ins: an INS where it does not live yet
 *
 * Socket, options, bind and (if listening) listen are pipelined; a failure
 * shows up later in pvm_sock_result() and drops the replica.
 * Return: 0 or -errno
 */
int pvm_sock_replicate(struct pvm_sock *app, struct pvm_ins *ins)
{
	struct pvm *p = app->pvm;
	struct mw_op_socket so = { .family = app->family };
	struct mw_op_addr ba = { .addr = app->bound };
	struct mw_op_int li = { .value = app->backlog };
	struct pvm_sock *r;
	struct pvm_opt *o;
	uint64_t id;
	int ret;

	id = pvm_ins_new_id(ins);
	if (!id)
		return -ENFILE;
	r = pvm_sock_new(p, ins, id, PVM_SOCK_REPLICA, app->family);
	if (!r)
		return -ENOMEM;
	r->primary = app;
	r->rnext = app->replicas;
	app->replicas = r;
	r->bound = app->bound;
	r->owner_pid = app->owner_pid;
	r->owner_client = app->owner_client;
	r->owner_uid = app->owner_uid;
	r->owner_acct = app->owner_acct;
	ret = pvm_ins_op(ins, MW_OP_SOCKET, r->id, &so, sizeof(so), PVM_REQ_QUIET, NULL, NULL);
	for (o = app->opts; o && !ret; o = o->next)
		ret = pvm_sock_send_opt(r, o);
	if (!ret)
		ret = pvm_ins_op(ins, MW_OP_BIND, r->id, &ba, sizeof(ba), PVM_REQ_QUIET, NULL,
				 NULL);
	r->state = PVM_ST_BOUND;
	if (!ret && app->state == PVM_ST_LISTENING) {
		ret = pvm_ins_op(ins, MW_OP_LISTEN, r->id, &li, sizeof(li), PVM_REQ_QUIET, NULL,
				 NULL);
		r->state = PVM_ST_LISTENING;
	}
	if (ret)
		pvm_sock_free(r);
	return ret;
}

/**
 * pvm_sock_replay_all() - a new INS joined: replicate every listener on it
 * @ins: the new INS
 */
void pvm_sock_replay_all(struct pvm_ins *ins)
{
	struct pvm *p = ins->pvm;
	size_t n, i, count = 0;
	struct pvm_sock *s;
	void **all;
	int ret;

	if (!p->socks.count)
		return;
	all = malloc(p->socks.count * sizeof(*all));
	if (!all) {
		mw_err("INS %u: out of memory replaying listeners", ins->id);
		return;
	}
	n = pvm_table_snapshot(&p->socks, all, p->socks.count);
	for (i = 0; i < n; i++) {
		s = all[i];
		if (s->kind != PVM_SOCK_APP || s->state != PVM_ST_LISTENING || s->ins == ins)
			continue;
		/* Also when its own INS died (ins NULL): replicas carry it on. */
		ret = pvm_sock_replicate(s, ins);
		if (ret)
			mw_warn("INS %u: cannot replicate listener %#llx: %s", ins->id,
				(unsigned long long)s->id, strerror(-ret));
		else
			count++;
	}
	free(all);
	if (count)
		mw_info("INS %u: %zu listener(s) replicated", ins->id, count);
}

/**
 * pvm_sock_free_all() - at exit, after every INS is gone: free what is left
 * @p: the daemon
 *
 * APP listeners outlive their INS (they wait for INS that join later), so the
 * table is not empty when the channels are.
 */
void pvm_sock_free_all(struct pvm *p)
{
	size_t n, i;
	void **all;

	if (!p->socks.count)
		return;
	all = malloc(p->socks.count * sizeof(*all));
	if (!all)
		return; /* exiting anyway */
	n = pvm_table_snapshot(&p->socks, all, p->socks.count);
	for (i = 0; i < n; i++)
		pvm_sock_free(all[i]);
	free(all);
}

/**
 * pvm_sock_close_listener() - the app closed a listener: close it and its replicas
 * @app: the APP socket
 */
void pvm_sock_close_listener(struct pvm_sock *app)
{
	struct pvm_sock *r, *next;

	for (r = app->replicas; r; r = next) {
		next = r->rnext;
		pvm_sock_close(r, false); /* unlinks r from app->replicas */
	}
	pvm_sock_close(app, false);
}

/**
 * pvm_sock_reap_ins() - its INS died: free what lived there, keep APP listeners
 * @ins: the dead INS
 *
 * Connections close their app end (the app reads EOF); a parked shim op gets
 * -ENOENT; an APP listener stays (ins = NULL) while it has replicas, and new
 * INS replicate it on join.
 */
void pvm_sock_reap_ins(struct pvm_ins *ins)
{
	struct pvm *p = ins->pvm;
	size_t n, i;
	struct pvm_sock *s, *r, *next;
	uint64_t *ids;
	void **all;

	if (!ins->nsocks || !p->socks.count)
		return;
	all = malloc(p->socks.count * sizeof(*all));
	ids = malloc(p->socks.count * sizeof(*ids));
	if (!all || !ids) {
		mw_err("INS %u: out of memory while reaping; sockets leak", ins->id);
		free(all);
		free(ids);
		return;
	}
	n = pvm_table_snapshot(&p->socks, all, p->socks.count);
	/* By id: closing a copy on another INS may free it at once (its ring is full). */
	for (i = 0; i < n; i++)
		ids[i] = ((struct pvm_sock *)all[i])->id;
	free(all);
	for (i = 0; i < n; i++) {
		s = pvm_table_get(&p->socks, ids[i]);
		if (!s || s->ins != ins)
			continue;
		if (s->kind == PVM_SOCK_APP && s->state == PVM_ST_LISTENING) {
			s->ins = NULL;
			ins->nsocks--;
			continue;
		}
		/* Bound, not yet listening: its copies on the other INS go with it (else
		 * they would hold the port there with no app behind them). */
		for (r = s->replicas; r; r = next) {
			next = r->rnext;
			pvm_sock_close(r, false); /* unlinks r */
		}
		if (s->waiter)
			pvm_shim_answer(s->waiter, -ENOENT, s->id, NULL, NULL, 0);
		pvm_sock_free(s);
	}
	free(ids);
}

static void sock_answer(struct pvm_req *r, int status, uint64_t id, const struct mw_addr *addr,
			const void *val, uint32_t len)
{
	if (r->client)
		pvm_shim_answer(r->client, status, id, addr, val, len);
}

static void sock_quiet_result(struct pvm_ins *ins, struct pvm_req *r, struct pvm_sock *s,
			      int status)
{
	if (status >= 0 || !s)
		return;
	if (s->state == PVM_ST_CLOSING && (r->type == MW_OP_CLOSE || r->type == MW_OP_ABORT)) {
		/* The INS does not know it (its socket op failed earlier): no EV_CLOSED will come.
		 */
		pvm_sock_free(s);
		return;
	}
	if (s->kind == PVM_SOCK_REPLICA && s->state != PVM_ST_CLOSING) {
		mw_warn("INS %u: replica %#llx of listener %#llx: %s failed: %s; dropped", ins->id,
			(unsigned long long)s->id,
			(unsigned long long)(s->primary ? s->primary->id : 0),
			mw_proto_type_name(r->type), strerror(-status));
		if (r->type == MW_OP_SOCKET)
			pvm_sock_free(s);
		else
			pvm_sock_close(s, false);
		return;
	}
	mw_debug("INS %u: %s on %#llx failed: %s", ins->id, mw_proto_type_name(r->type),
		 (unsigned long long)s->id, strerror(-status));
}

/* An IPv6 link-local address (fe80::/10): the only kind whose scope id the kernel keeps. */
static bool addr_link_local(const struct mw_addr *a)
{
	return a->family == 6 && a->addr[0] == 0xfe && (a->addr[1] & 0xc0) == 0x80;
}

/*
 * Is @a, the name the INS gives @s after its bind, the address the app asked
 * for (@s->bound)?  The replicas on every other INS are bound to it: a
 * compromised INS must not choose it.  Port 0 resolves to an ephemeral port:
 * never 0 nor a privileged one.
 * Return: 0; -EBADMSG: a name no kernel gives (the INS lies); -EADDRINUSE: a
 * port another user's SO_REUSEPORT group holds (the check shim_bind() made on
 * a port the app named: refused, the INS not blamed, our record may be stale)
 */
static int bind_name_check(struct pvm_sock *s, const struct mw_addr *a)
{
	const struct mw_addr *want = &s->bound;
	size_t alen = want->family == 4 ? 4 : sizeof(want->addr);

	if (a->family != want->family || memcmp(a->addr, want->addr, alen) ||
	    (addr_link_local(want) && a->scope_id != want->scope_id))
		return -EBADMSG;
	if (want->port)
		return a->port == want->port ? 0 : -EBADMSG;
	if (a->port < PVM_PRIVILEGED_PORTS)
		return -EBADMSG; /* not ephemeral, for any user */
	if (pvm_appsock_reuseport_on(s) && pvm_appsock_reuseport_taken(s->pvm, s, a))
		return -EADDRINUSE;
	return 0;
}

static void sock_bound(struct pvm_sock *s, struct pvm_req *r, int status, const void *val,
		       uint32_t len)
{
	struct pvm_ins *i;
	struct mw_addr a;
	int ret;

	if (s->op_status < 0) {
		s->bound.family = 0;
		sock_answer(r, s->op_status, s->id, NULL, NULL, 0);
		return;
	}
	if (status || len != sizeof(a)) {
		/* Bound, but no name: port 0 stays unknown, no replica could follow. */
		s->bound.family = 0;
		s->name_refused = true;
		sock_answer(r, status ? status : -EIO, s->id, NULL, NULL, 0);
		return;
	}
	memcpy(&a, val, sizeof(a));
	ret = bind_name_check(s, &a);
	if (ret) {
		char got[MW_ADDR_STRLEN], want[MW_ADDR_STRLEN];

		mw_addr_format(&a, got, sizeof(got));
		mw_addr_format(&s->bound, want, sizeof(want));
		if (ret == -EBADMSG) {
			pvm_ins_cut(s->ins, "its bind's name is not the address asked for");
			mw_warn("INS %u: socket %#llx bound to %s, named %s: cut", s->ins->id,
				(unsigned long long)s->id, want, got);
		}
		s->bound.family = 0;
		s->name_refused = true; /* the INS socket holds the name: it may not listen */
		sock_answer(r, ret == -EBADMSG ? -EADDRNOTAVAIL : ret, s->id, NULL, NULL, 0);
		return;
	}
	s->bound = a;
	s->state = PVM_ST_BOUND;
	sock_answer(r, 0, s->id, &s->bound, NULL, 0);
	if (pvm_observe_active())
		pvm_observe_sock(PVM_OBS_BIND, s, 0);
	/* Replicate on every other live INS; port 0 was resolved by the first one. */
	for (i = s->pvm->ins_list; i; i = i->next) {
		if (i == s->ins || i->dead)
			continue;
		ret = pvm_sock_replicate(s, i);
		if (ret)
			mw_warn("INS %u: cannot replicate %#llx: %s", i->id,
				(unsigned long long)s->id, strerror(-ret));
	}
}

/**
 * pvm_sock_result() - an MW_RESULT arrived for request @r
 * @ins:    the INS that answered
 * @r:      the request (freed by the caller)
 * @status: 0 or -errno
 * @val:    value bytes (GETOPT, GETNAME, BIND's name)
 * @len:    their length (<= MW_SOCKOPT_MAX)
 */
void pvm_sock_result(struct pvm_ins *ins, struct pvm_req *r, int status, const void *val,
		     uint32_t len)
{
	struct pvm_sock *s = pvm_sock_find(ins->pvm, r->sock);
	struct mw_addr a;

	if (r->kind == PVM_REQ_NETFLOW) {
		r->done(r->done_ctx, status, val, len);
		return;
	}
	if (r->client)
		r->client->req = NULL;
	if (s && s->ins != ins)
		s = NULL;
	if (r->kind == PVM_REQ_QUIET) {
		sock_quiet_result(ins, r, s, status);
		return;
	}
	if (r->kind == PVM_REQ_BIND) {
		if (s)
			s->op_status = status;
		return;
	}
	if (!s) {
		sock_answer(r, -ENOENT, r->sock, NULL, NULL, 0);
		return;
	}
	if (s->state == PVM_ST_CLOSING &&
	    (r->kind == PVM_REQ_BIND_NAME || r->kind == PVM_REQ_LISTEN ||
	     r->kind == PVM_REQ_CONNECT)) {
		/* Closed meanwhile (its app gone): CLOSING until EV_CLOSED, no replica made. */
		sock_answer(r, status ? status : -ENOENT, s->id, NULL, NULL, 0);
		return;
	}
	switch (r->kind) {
	case PVM_REQ_SOCKET:
		if (status) {
			sock_answer(r, status, s->id, NULL, NULL, 0);
			pvm_sock_free(s);
			break;
		}
		/*
		 * The app gets its socket; ours goes, so its name is free once the
		 * app's is.  Once passed, the app may have fds queued in it before our
		 * close: the closer's (microseconds); kept, it held nothing: ours.
		 */
		if (r->client) {
			pvm_shim_answer_fd(r->client, s->id, s->app_fd);
			pvm_closer_put(s->pvm, s->app_fd, s->owner_acct);
		} else {
			close(s->app_fd);
		}
		s->app_fd = -1;
		if (!r->client)
			pvm_appsock_check(s, "its app left before the answer");
		break;
	case PVM_REQ_BIND_NAME:
		sock_bound(s, r, status, val, len);
		break;
	case PVM_REQ_LISTEN:
		if (!status)
			s->state = PVM_ST_LISTENING;
		sock_answer(r, status, s->id, NULL, NULL, 0);
		break;
	case PVM_REQ_CONNECT:
		if (status) {
			pvm_connect_forget(s);
			s->state = s->bound.family ? PVM_ST_BOUND : PVM_ST_NEW;
		} else {
			status = pvm_connect_attach(s);
		}
		sock_answer(r, status, s->id, NULL, NULL, 0);
		if (status && s->state == PVM_ST_CONNECTING) {
			/* Started on the INS, but the app's socket is not ours: give up. */
			mw_log_ratelimited(MW_LOG_WARN, "socket %#llx: data connection: %s",
					   (unsigned long long)s->id, strerror(-status));
			pvm_sock_close(s, true);
			break;
		}
		if (pvm_observe_active())
			pvm_observe_sock(PVM_OBS_CONNECT, s, status);
		break;
	case PVM_REQ_SETOPT:
		if (!status)
			status = pvm_sock_opt_record(s, &r->opt);
		sock_answer(r, status, s->id, NULL, NULL, 0);
		break;
	case PVM_REQ_GETNAME:
		memset(&a, 0, sizeof(a));
		if (!status && len == sizeof(a))
			memcpy(&a, val, sizeof(a));
		else if (!status)
			status = -EPROTO;
		sock_answer(r, status, s->id, &a, NULL, 0);
		break;
	default:
		sock_answer(r, status, s->id, NULL, val, len);
		break;
	}
}

/*
 * Is the listener @fd reached someone else's?  For AF_UNIX the connecting
 * side sees the credentials of the process that called listen(); they must
 * be those of the app that sent LISTEN.  A mismatch means the app's socket
 * is gone and someone bound its name again: that listener is released.
 */
static bool handover_hijacked(struct pvm_sock *app, int fd)
{
	struct ucred cred = { .pid = 0, .uid = (uid_t)-1, .gid = (gid_t)-1 };
	socklen_t len = sizeof(cred);

	if (!getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) && cred.uid == app->listen_uid)
		return false;
	app->pvm->listener_hijacks++;
	mw_warn("listener %#llx (port %u): its name is held by pid %d uid %u, not by the app "
		"(uid %u): connection aborted, listener released",
		(unsigned long long)app->id, (unsigned)app->bound.port, (int)cred.pid,
		(unsigned)cred.uid, (unsigned)app->listen_uid);
	return true;
}

/* How many accepted connections may wait for room in @app's accept queue. */
static unsigned handover_limit(const struct pvm_sock *app)
{
	uint64_t n = app->backlog > 0 ? 8 * (uint64_t)app->backlog : 0; /* the app's number */

	if (n < PVM_HANDOVER_LISTENER_MIN)
		return PVM_HANDOVER_LISTENER_MIN;
	return n > PVM_HANDOVER_LISTENER_MAX ? PVM_HANDOVER_LISTENER_MAX : (unsigned)n;
}

/*
 * Hand an accepted connection to the app: connect to its listening AF_UNIX
 * socket from one bound to an 'A' name carrying the id and endpoints, so the
 * app's accept() needs no round trip.  The app's accept queue is bounded (by
 * its backlog and the host's net.core.somaxconn): when it is full the
 * connection waits here, as it would in a kernel's accept queue, instead of
 * being reset.
 * Return: 0 (handed over, or failed and closed), -EAGAIN (the queue is full)
 */
static int sock_handover(struct pvm_sock *c, struct pvm_sock *app)
{
	struct pvm *p = c->pvm;
	struct mw_sockname an = { .kind = MW_SOCKNAME_ACCEPTED,
				  .tag = p->tag,
				  .id = c->id,
				  .peer = c->peer,
				  .local = c->local };
	struct mw_sockname sn = {
		.kind = MW_SOCKNAME_SOCKET, .tag = p->tag, .id = app->id, .nonce = app->nonce
	};
	struct sockaddr_un sa, sb;
	socklen_t la, lb;
	int fd, err;

	if (app->state == PVM_ST_CLOSING) {
		pvm_sock_close(c, true); /* the listener is being released */
		return 0;
	}
	err = -pvm_nonce(&an.nonce); /* nobody can bind the name first and fail the hand-over */
	c->nonce = an.nonce; /* shim_authorize() compares it: a hijacker's name has another */
	lb = mw_sockname_encode(&sn, &sb);
	la = mw_sockname_encode(&an, &sa);
	fd = err ? -1 : socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd >= 0)
		mw_refuse_rights_or_warn(fd, "app connection"); /* the app passes none */
	if (!err && (fd < 0 || bind(fd, (struct sockaddr *)&sa, la) ||
		     connect(fd, (struct sockaddr *)&sb, lb)))
		err = errno;
	if (!err && handover_hijacked(app, fd)) {
		close(fd);
		pvm_sock_close(c, true);
		pvm_sock_close_listener(app);
		return 0;
	}
	if (err) {
		if (fd >= 0)
			close(fd);
		if (err == EAGAIN && p->ho_count < PVM_HANDOVER_MAX &&
		    app->ho_waiters < handover_limit(app))
			return -EAGAIN;
		mw_log_ratelimited(
			MW_LOG_WARN, "listener %#llx: cannot hand over connection %#llx: %s",
			(unsigned long long)app->id, (unsigned long long)c->id,
			err != EAGAIN			  ? strerror(err)
			: p->ho_count >= PVM_HANDOVER_MAX ? "too many connections wait for the apps"
							  : "too many connections wait for this "
							    "listener (8 x its backlog)");
		pvm_sock_close(c, true);
		if (err == ECONNREFUSED || err == ENOENT) {
			/* Nobody listens on the app side any more: the app closed it. */
			pvm_sock_close_listener(app);
		}
		return 0;
	}
	p->accepted_total++;
	if (pvm_observe_active())
		pvm_observe_sock(PVM_OBS_ACCEPT, c, 0);
	pvm_relay_attach(c, fd);
	return 0;
}

static void handover_wait(struct pvm_sock *c);

static void handover_cancel(struct pvm_sock *c)
{
	struct pvm *p = c->pvm;
	struct pvm_sock *app;

	if (!c->ho_waiting)
		return;
	app = pvm_sock_find(p, c->listener);
	if (app && app->ho_waiters)
		app->ho_waiters--;
	if (c->ho_prev)
		c->ho_prev->ho_next = c->ho_next;
	else
		p->ho_head = c->ho_next;
	if (c->ho_next)
		c->ho_next->ho_prev = c->ho_prev;
	else
		p->ho_tail = c->ho_prev;
	c->ho_next = c->ho_prev = NULL;
	c->ho_waiting = false;
	if (--p->ho_count == 0)
		ev_timer_stop(p->loop, &p->ho_timer);
}

/*
 * Retry in arrival order; a listener whose queue is still full keeps the rest of its
 * connections waiting (marked with this pass: one failed hand-over per listener and
 * pass, however many listeners are full).
 */
static void handover_retry_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct pvm *p = w->data;
	struct pvm_sock *c, *next, *app;
	unsigned n = p->ho_count;
	uint64_t pass = ++p->ho_pass;

	(void)loop;
	(void)revents;
	/* Exactly the ones waiting now: a retry that fails goes back to the tail. */
	for (c = p->ho_head; c && n; c = next, n--) {
		next = c->ho_next;
		app = pvm_sock_find(p, c->listener);
		if (app && app->ho_full_pass == pass)
			continue; /* keep the order per listener */
		handover_cancel(c);
		if (!app || app->kind != PVM_SOCK_APP) {
			pvm_sock_close(c, true);
			continue;
		}
		if (sock_handover(c, app) == -EAGAIN) {
			handover_wait(c);
			app->ho_full_pass = pass;
		}
	}
}

/* Queue @c (at the tail) until the app's accept queue has room. */
static void handover_wait(struct pvm_sock *c)
{
	struct pvm *p = c->pvm;
	struct pvm_sock *app;

	c->ho_waiting = true;
	c->ho_next = NULL;
	c->ho_prev = p->ho_tail;
	if (p->ho_tail)
		p->ho_tail->ho_next = c;
	else
		p->ho_head = c;
	p->ho_tail = c;
	app = pvm_sock_find(p, c->listener);
	if (app)
		app->ho_waiters++;
	if (p->ho_count++ == 0) {
		ev_timer_init(&p->ho_timer, handover_retry_cb, PVM_HANDOVER_RETRY_S,
			      PVM_HANDOVER_RETRY_S);
		p->ho_timer.data = p;
		ev_timer_start(p->loop, &p->ho_timer);
	}
}

/**
 * pvm_sock_accepted() - EV_ACCEPTED: hand the new connection to the app's listener
 * @ins: the INS that accepted
 * @lsn: the listener (APP or REPLICA) on @ins
 * @ev:  new id (validated by the caller) and TCP endpoints
 *
 * mw-pvm connects to the app's listening AF_UNIX socket from a socket bound to
 * an 'A' name carrying the id and endpoints, so the app's accept() needs no
 * round trip.  While the app's accept queue is full the connection waits and
 * is retried every PVM_HANDOVER_RETRY_S (data that arrives meanwhile is held
 * within the socket's window); a vanished listener aborts it.
 * Return: 0 (failures are handled here), or -ENOMEM
 */
int pvm_sock_accepted(struct pvm_ins *ins, struct pvm_sock *lsn, const struct mw_ev_accepted *ev)
{
	struct pvm *p = ins->pvm;
	struct pvm_sock *app = lsn->kind == PVM_SOCK_REPLICA ? lsn->primary : lsn;
	struct pvm_sock *c;

	c = pvm_sock_new(p, ins, ev->new_sock, PVM_SOCK_ACCEPTED, lsn->family);
	if (!c)
		return -ENOMEM;
	c->state = PVM_ST_CONNECTED;
	c->local = ev->local;
	c->peer = ev->peer;
	c->owner_pid = lsn->owner_pid;
	c->owner_client = lsn->owner_client;
	c->owner_uid = lsn->owner_uid;
	c->owner_acct = lsn->owner_acct;
	c->listener = app ? app->id : lsn->id;
	if (!app) {
		pvm_sock_close(c, true);
		return 0;
	}
	if (sock_handover(c, app) == -EAGAIN)
		handover_wait(c);
	return 0;
}
