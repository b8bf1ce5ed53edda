/* SPDX-License-Identifier: MIT */
/* pvm_shim.c - the shim's control socket (registrations, requests) and data socket */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "common/fdpass.h"
#include "common/log.h"
#include "common/norights.h"
#include "common/shield.h"
#include "common/sockid.h"
#include "common/sockname.h"
#include "pvm/observe.h"
#include "pvm/pvm.h"

/*
 * Theory of operation
 *
 * Control (SOCK_SEQPACKET): one connection per app thread; REGISTER first,
 * then one request -> one response.  Any local user may register, as any user
 * may open TCP sockets; binding a port below 1024 needs root (or our uid).
 * Authority over one socket is possession of its fd, as in the kernel: every
 * request that names a socket carries the app's fd (SCM_RIGHTS), and it must
 * be that socket (see shim_authorize()), so an nginx worker running as nobody
 * may accept on the listener its root master made, and nobody else may touch
 * it.  CLOSE_HINT carries no fd; it is believed only once the socket's name
 * is free, i.e. the app's socket is really gone.  A request
 * that needs the INS parks the client (its watcher stopped) until the
 * MW_RESULT arrives, or, for CONNECT_WAIT, until the connect outcome is
 * known; the client's next request cannot arrive before that.
 * getsockopt(SO_ERROR) never waits: 0 while the connect is in progress.
 *
 * Passed fds: only AF_UNIX sockets are kept; a request that carries anything
 * else is refused (ENOTSOCK).  Every passed fd, and every control connection,
 * is closed by the closer threads (pvm_closer.c), never on the loop: a last
 * close may wait (a FUSE file, a lingering socket, fds queued in a socket).
 *
 * Bounds per uid (pvm_quota.c): control connections plus the uid's fds the
 * closer holds, pvm.max_connections_per_user.  A connection takes fds only
 * once admitted (the listener has SO_PASSRIGHTS 0, an admitted connection 1),
 * so one refused is closed on the loop: nothing in it can make its close wait.
 * A client whose uid has that many fds waiting for the closer is not read
 * until they are closed (parked), so a user whose closes hang cannot make
 * mw-pvm hold more of its fds.
 *
 * Data: CONNECT's fd is the app's socket; mw-pvm connects it to itself and
 * holds it unwritable until the outcome (pvm_connect.c).
 */

#define PVM_SCM_MAX_FD 253 /* the kernel's SCM_MAX_FD: fds one message may carry */

#define ACCEPTS_PER_EVENT 32

/*
 * Close the request's fd, on the closer threads: even the app's own socket may
 * hold anything (the app can turn SO_PASSRIGHTS back on and have fds queued in
 * it or in its pending connections), and a last close of it frees them.  The
 * closer takes microseconds when nothing waits; if the app asks at once whether
 * the socket is still open anywhere (its close hint) and mw-pvm's copy was
 * still queued, the hint's check is made again shortly (pvm_appsock_kick()).
 */
static void client_drop_req_fd(struct pvm_client *c)
{
	if (c->req_fd < 0)
		return;
	pvm_closer_put(c->pvm, c->req_fd, c->acct);
	c->req_fd = -1;
}

static void client_close(struct pvm_client *c)
{
	struct pvm *p = c->pvm;

	if (c->req)
		c->req->client = NULL;
	if (c->wait_sock)
		c->wait_sock->waiter = NULL;
	ev_io_stop(p->loop, &c->io);
	/* Its queue may hold passed fds whose release waits (pvm_closer.c). */
	pvm_closer_put(p, c->fd, c->acct);
	client_drop_req_fd(c);
	if (c->pidfd >= 0)
		close(c->pidfd);
	if (c->parked)
		p->nparked--;
	pvm_quota_client_put(p, c->acct);
	if (c->prev)
		c->prev->next = c->next;
	else
		p->clients = c->next;
	if (c->next)
		c->next->prev = c->prev;
	p->nclients--;
	free(c);
}

/*
 * Send @resp, with @fd (SCM_RIGHTS) unless it is -1.  The request's own fd is
 * closed first (client_drop_req_fd()).
 */
static void client_send(struct pvm_client *c, struct mw_shimctl_resp *resp, int fd)
{
	client_drop_req_fd(c);
	c->req = NULL;
	c->wait_sock = NULL;
	if (c->noreply) /* the shim did not wait: its next request is read now */
		c->noreply = false;
	else if (mw_fdpass_send(c->fd, resp, sizeof(*resp), fd, MSG_NOSIGNAL | MSG_DONTWAIT) !=
		 sizeof(*resp))
		shutdown(c->fd, SHUT_RDWR); /* the watcher reads EOF and closes it */
	ev_io_start(c->pvm->loop, &c->io);
}

/**
 * pvm_shim_answer_fd() - answer a SOCKET request with the app's socket
 * @c:    the client
 * @sock: the new socket id
 * @fd:   the app's named AF_UNIX socket (the caller closes its copy)
 */
void pvm_shim_answer_fd(struct pvm_client *c, uint64_t sock, int fd)
{
	struct mw_shimctl_resp resp;

	memset(&resp, 0, sizeof(resp));
	resp.sock = sock;
	client_send(c, &resp, fd);
}

/**
 * pvm_shim_answer() - send the response to a client's pending request
 * @c:      the client
 * @status: 0 or -errno
 * @sock:   socket id
 * @addr:   address for BIND/GETNAME, or NULL
 * @val:    option value for GETOPT, or NULL
 * @len:    its length (<= MW_SOCKOPT_MAX)
 */
void pvm_shim_answer(struct pvm_client *c, int status, uint64_t sock, const struct mw_addr *addr,
		     const void *val, uint32_t len)
{
	struct mw_shimctl_resp resp;

	memset(&resp, 0, sizeof(resp));
	resp.status = status;
	resp.sock = sock;
	if (addr)
		resp.addr = *addr;
	if (val && len <= sizeof(resp.val)) {
		memcpy(resp.val, val, len);
		resp.len = len;
	}
	client_send(c, &resp, -1);
}

/* Hand the connect outcome to whoever asked. */
static void shim_consume_outcome(struct pvm_sock *s, struct pvm_client *c, int op)
{
	int err = s->connect_err;

	s->outcome_consumed = true;
	if (op == MW_SHIMCTL_GETOPT)
		pvm_shim_answer(c, 0, s->id, NULL, &err, sizeof(err));
	else
		pvm_shim_answer(c, err ? -err : 0, s->id, NULL, NULL, 0);
}

/**
 * pvm_shim_outcome() - EV_CONNECTED/EV_ERROR arrived: wake the parked caller, relay
 * @s: the connecting socket (outcome_known set)
 *
 * A failure frees everything now, whatever the app does next: our end of its
 * socket is closed over the unread filler (the app's socket reports an error
 * and hangs up), the INS socket is aborted, and the errno waits in a small
 * table for the app's getsockopt(SO_ERROR).
 */
void pvm_shim_outcome(struct pvm_sock *s)
{
	struct pvm_client *c = s->waiter;

	if (pvm_observe_active())
		pvm_observe_sock(PVM_OBS_CONNECT, s, -s->connect_err);
	pvm_connect_release(s, !s->connect_err);
	if (c) {
		s->waiter = NULL;
		shim_consume_outcome(s, c, s->waiter_op);
	}
	if (s->connect_err) {
		if (!s->outcome_consumed)
			pvm_connect_failed_put(s); /* SO_ERROR answers from there */
		s->outcome_consumed = true;
		pvm_sock_close(s, true);
		return;
	}
	if (s->fd >= 0)
		pvm_relay_attach(s, s->fd);
}

static int shim_register(struct pvm_client *c, const struct mw_shimctl_req *req)
{
	struct pvm *p = c->pvm;
	struct mw_shimctl_resp resp;

	if (req->arg != MW_SHIMCTL_VERSION)
		return -EPROTO;
	c->registered = true;
	memset(&resp, 0, sizeof(resp));
	resp.sock = p->tag;
	resp.arg = getpid();
	client_send(c, &resp, -1);
	return 0;
}

static int shim_socket(struct pvm_client *c, const struct mw_shimctl_req *req)
{
	struct pvm *p = c->pvm;
	struct mw_op_socket op = { .family = (uint32_t)req->arg };
	struct pvm_ins *ins;
	struct pvm_sock *s;
	uint64_t id;
	int ret;

	if (req->arg != 4 && req->arg != 6)
		return -EAFNOSUPPORT;
	ins = pvm_ins_pick(p);
	if (!ins)
		return -ENETDOWN;
	id = pvm_ins_new_id(ins);
	if (!id)
		return -ENFILE;
	s = pvm_sock_new(p, ins, id, PVM_SOCK_APP, (uint8_t)req->arg);
	if (!s)
		return -ENOMEM;
	s->owner_pid = c->pid;
	s->owner_uid = c->uid;
	s->owner_acct = c->acct;
	s->owner_client = c->serial;
	ret = pvm_quota_take(s);
	if (!ret)
		ret = pvm_appsock_create(s);
	if (ret) {
		if (ret != -EMFILE)
			mw_log_ratelimited(MW_LOG_WARN, "SOCKET for pid %d: %s", (int)c->pid,
					   strerror(-ret));
		pvm_sock_free(s);
		return ret;
	}
	pvm_appsock_watch(s);
	pvm_sock_created(s);
	ret = pvm_ins_op(ins, MW_OP_SOCKET, s->id, &op, sizeof(op), PVM_REQ_SOCKET, c, NULL);
	if (ret)
		pvm_sock_free(s);
	return ret;
}

static int shim_bind(struct pvm_client *c, struct pvm_sock *s, const struct mw_shimctl_req *req)
{
	struct mw_op_addr ba = { .addr = req->addr };
	struct mw_op_int gn = { .value = 0 };
	int ret;

	if (s->state != PVM_ST_NEW || s->bound.family || s->name_refused)
		return -EINVAL;
	if (req->addr.family != s->family)
		return s->family == 6 ? -EINVAL : -EAFNOSUPPORT;
	if (req->addr.port && req->addr.port < PVM_PRIVILEGED_PORTS && c->uid != 0 &&
	    c->uid != geteuid())
		return -EACCES;
	/* A dead app's listener on this port must not make its restart fail. */
	pvm_appsock_check_port(c->pvm, s, req->addr.port);
	if (req->addr.port && pvm_appsock_reuseport_on(s) &&
	    pvm_appsock_reuseport_taken(c->pvm, s, &req->addr))
		return -EADDRINUSE; /* SO_REUSEPORT shares a port within one uid only */
	s->bound = req->addr;
	s->op_status = 0;
	/* BIND then GETNAME, pipelined: the name resolves port 0 for the replicas. */
	ret = pvm_ins_op(s->ins, MW_OP_BIND, s->id, &ba, sizeof(ba), PVM_REQ_BIND, NULL, NULL);
	if (!ret)
		ret = pvm_ins_op(s->ins, MW_OP_GETNAME, s->id, &gn, sizeof(gn), PVM_REQ_BIND_NAME,
				 c, NULL);
	return ret;
}

static int shim_listen(struct pvm_client *c, struct pvm_sock *s, const struct mw_shimctl_req *req)
{
	struct mw_op_int li = { .value = req->arg };
	struct pvm_sock *r;
	int ret = 0;

	if ((s->state != PVM_ST_NEW && s->state != PVM_ST_BOUND && s->state != PVM_ST_LISTENING) ||
	    s->name_refused)
		return -EINVAL;
	/* SO_REUSEPORT set after bind counts at listen, as in the kernel. */
	if (s->state != PVM_ST_LISTENING && s->bound.port && pvm_appsock_reuseport_on(s) &&
	    pvm_appsock_reuseport_taken(c->pvm, s, &s->bound))
		return -EADDRINUSE;
	s->backlog = req->arg;
	s->listen_uid = c->uid; /* listen() just ran in this client: the hand-over checks it */
	for (r = s->replicas; r; r = r->rnext) {
		r->backlog = req->arg;
		if (!pvm_ins_op(r->ins, MW_OP_LISTEN, r->id, &li, sizeof(li), PVM_REQ_QUIET, NULL,
				NULL))
			r->state = PVM_ST_LISTENING;
	}
	if (!s->ins) {
		/* Its INS died: the replicas carry the listener. */
		s->state = PVM_ST_LISTENING;
		pvm_shim_answer(c, 0, s->id, NULL, NULL, 0);
		return 0;
	}
	ret = pvm_ins_op(s->ins, MW_OP_LISTEN, s->id, &li, sizeof(li), PVM_REQ_LISTEN, c, NULL);
	return ret;
}

static int shim_connect(struct pvm_client *c, struct pvm_sock *s, const struct mw_shimctl_req *req,
			int fd)
{
	struct mw_op_addr ca = { .addr = req->addr };
	enum pvm_sock_state was = s->state;
	int ret;

	if (s->name_refused)
		return -EINVAL; /* its INS socket holds a name we refused */
	switch (s->state) {
	case PVM_ST_CONNECTING:
		return -EALREADY;
	case PVM_ST_CONNECTED:
	case PVM_ST_LISTENING:
		return -EISCONN;
	case PVM_ST_CLOSING:
		return -EBADF;
	default:
		break;
	}
	if (req->addr.family != s->family)
		return s->family == 6 ? -EINVAL : -EAFNOSUPPORT;
	/* A bound socket that connects is a client: it needs no listener replicas. */
	while (s->replicas)
		pvm_sock_close(s->replicas, false);
	s->state = PVM_ST_CONNECTING;
	s->outcome_known = s->outcome_consumed = false;
	s->connect_err = 0;
	s->peer = req->addr;
	/* Kept until the RESULT: then mw-pvm connects the app's socket to itself. */
	s->connect_fd = fcntl(fd, F_DUPFD_CLOEXEC, 0);
	ret = s->connect_fd < 0 ? -errno : 0;
	s->connect_acct = c->acct; /* it came from this client, whoever made the socket */
	if (!ret)
		ret = pvm_ins_op(s->ins, MW_OP_CONNECT, s->id, &ca, sizeof(ca), PVM_REQ_CONNECT, c,
				 NULL);
	if (ret) { /* not started: as it was (a CONNECT_WAIT must not wait for nothing) */
		pvm_connect_forget(s);
		s->state = was;
	}
	return ret;
}

/* CONNECT_WAIT (answer now or park until the outcome) and getsockopt(SO_ERROR) (never waits). */
static int shim_wait(struct pvm_client *c, struct pvm_sock *s, int op)
{
	int zero = 0;

	if (s->outcome_known && !s->outcome_consumed) {
		shim_consume_outcome(s, c, op);
		return 0;
	}
	if (s->state == PVM_ST_CONNECTING && !s->outcome_known && op != MW_SHIMCTL_GETOPT) {
		if (s->waiter)
			return -EALREADY;
		s->waiter = c;
		s->waiter_op = op;
		c->wait_sock = s;
		return 0;
	}
	if (op == MW_SHIMCTL_GETOPT)
		pvm_shim_answer(c, 0, s->id, NULL, &zero, sizeof(zero));
	else if (s->state == PVM_ST_CONNECTED)
		pvm_shim_answer(c, 0, s->id, NULL, NULL, 0);
	else
		return -ENOTCONN;
	return 0;
}

static int shim_setopt(struct pvm_client *c, struct pvm_sock *s, const struct mw_shimctl_req *req)
{
	struct pvm_req *r = NULL;
	struct mw_op_sockopt op = { .level = req->arg, .name = req->arg2, .len = req->len };
	struct pvm_opt o = { .level = req->arg, .name = req->arg2, .len = req->len };
	struct pvm_sock *rep;
	int ret;

	if (req->arg == MW_SOL_SHIELD)
		return -ENOPROTOOPT; /* the shield is the operator's, through Netflow */
	if (req->len > MW_SOCKOPT_MAX)
		return -EINVAL;
	if (s->state == PVM_ST_CLOSING)
		return -EBADF;
	/*
	 * The app did not wait, but the client is not read again until the INS
	 * answered (the answer is swallowed, client_send()): one op in flight per
	 * client, as for every request, so a flood of them cannot take all of an
	 * INS's pvm.ins_max_queued from the other users.
	 */
	c->noreply = req->flags & MW_SHIMCTL_F_NOREPLY;
	memcpy(op.val, req->val, req->len);
	memcpy(o.val, req->val, req->len);
	for (rep = s->replicas; rep; rep = rep->rnext) {
		struct mw_op_sockopt ro = op;

		pvm_ins_op(rep->ins, MW_OP_SETOPT, rep->id, &ro, sizeof(ro), PVM_REQ_QUIET, NULL,
			   NULL);
	}
	if (!s->ins) {
		ret = pvm_sock_opt_record(s, &o);
		if (!ret)
			pvm_shim_answer(c, 0, s->id, NULL, NULL, 0);
		c->noreply = false;
		return ret;
	}
	pvm_relay_flush(s); /* the option acts after the bytes written before it */
	ret = pvm_ins_op(s->ins, MW_OP_SETOPT, s->id, &op, sizeof(op), PVM_REQ_SETOPT, c, &r);
	if (!ret)
		r->opt = o;
	else
		c->noreply = false;
	return ret;
}

/* Does @req ask for a connect outcome (getsockopt(SO_ERROR) or CONNECT_WAIT)? */
static bool shim_asks_outcome(const struct mw_shimctl_req *req)
{
	return (req->op == MW_SHIMCTL_GETOPT && req->arg == SOL_SOCKET && req->arg2 == SO_ERROR) ||
	       req->op == MW_SHIMCTL_CONNECT_WAIT;
}

/*
 * The outcome of a connect that failed before anyone asked; the socket is
 * being or was freed.  SO_ERROR: the errno once, then 0, as the kernel;
 * CONNECT_WAIT (a blocking connect that the INS failed before it waited):
 * the errno.  @fd must be the socket that failed (its inode as first seen);
 * it is an AF_UNIX socket (client_take_fd()), so fstat() asks sockfs only.
 * Return: 0 (answered), or -errno to answer with.
 */
static int shim_failed_outcome(struct pvm_client *c, const struct mw_shimctl_req *req, int fd)
{
	struct stat st;
	int err;

	if (fd < 0 || fstat(fd, &st) || !S_ISSOCK(st.st_mode))
		return -ENOENT;
	err = pvm_connect_failed_take(c->pvm, req->sock, st.st_dev, st.st_ino);
	if (req->op == MW_SHIMCTL_CONNECT_WAIT)
		return err ? -err : -ECONNABORTED;
	pvm_shim_answer(c, 0, req->sock, NULL, &err, sizeof(err));
	return 0;
}

static int shim_getopt(struct pvm_client *c, struct pvm_sock *s, const struct mw_shimctl_req *req)
{
	struct mw_op_sockopt op = { .level = req->arg, .name = req->arg2 };

	if (req->arg == MW_SOL_SHIELD)
		return -ENOPROTOOPT;
	if (req->arg == SOL_SOCKET && req->arg2 == SO_ERROR)
		return shim_wait(c, s, MW_SHIMCTL_GETOPT);
	if (!s->ins)
		return -ENOENT;
	op.len = req->len < MW_SOCKOPT_MAX ? req->len : MW_SOCKOPT_MAX;
	return pvm_ins_op(s->ins, MW_OP_GETOPT, s->id, &op, sizeof(op), PVM_REQ_GETOPT, c, NULL);
}

static int shim_getname(struct pvm_client *c, struct pvm_sock *s, const struct mw_shimctl_req *req)
{
	struct mw_op_int op = { .value = req->arg ? 1 : 0 };

	if (req->arg) {
		if (s->state != PVM_ST_CONNECTED)
			return -ENOTCONN;
		pvm_shim_answer(c, 0, s->id, &s->peer, NULL, 0);
		return 0;
	}
	if (s->state == PVM_ST_CONNECTED && s->local.family) {
		pvm_shim_answer(c, 0, s->id, &s->local, NULL, 0);
		return 0;
	}
	if (s->state != PVM_ST_CONNECTING && s->bound.family) {
		pvm_shim_answer(c, 0, s->id, &s->bound, NULL, 0);
		return 0;
	}
	if (!s->ins)
		return -ENOENT;
	return pvm_ins_op(s->ins, MW_OP_GETNAME, s->id, &op, sizeof(op), PVM_REQ_GETNAME, c, NULL);
}

/*
 * May the sender of @req, who passed @fd, act on @s?  Only if @fd is that
 * socket: an accepted connection's peer is mw-pvm itself, under our own 'A'
 * name for it with the hand-over's nonce (anyone can bind a forged 'A' name);
 * an app socket is the very socket we
 * made for it at SOCKET (its inode), which carries its 'S' name.  @fd is an
 * AF_UNIX socket (client_take_fd()), so fstat() asks sockfs only.
 * Return: 0 or -ENOENT.
 */
static int shim_authorize(struct pvm *p, struct pvm_sock *s, int fd)
{
	struct sockaddr_un sun;
	socklen_t len = sizeof(sun);
	struct mw_sockname n;
	struct stat st;

	if (fd < 0 || fstat(fd, &st) || !S_ISSOCK(st.st_mode))
		return -ENOENT;
	if (s->kind == PVM_SOCK_ACCEPTED) {
		struct ucred cred;
		socklen_t clen = sizeof(cred);

		/* Its peer is mw-pvm's own socket, not one bound to a forged 'A' name. */
		if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &clen) || cred.pid != getpid())
			return -ENOENT;
		if (getpeername(fd, (struct sockaddr *)&sun, &len))
			return -ENOENT;
		return !mw_sockname_decode(&n, &sun, len) && n.kind == MW_SOCKNAME_ACCEPTED &&
				       n.tag == p->tag && n.id == s->id && n.nonce == s->nonce
			       ? 0
			       : -ENOENT;
	}
	if (getsockname(fd, (struct sockaddr *)&sun, &len) || mw_sockname_decode(&n, &sun, len) ||
	    n.kind != MW_SOCKNAME_SOCKET || n.tag != p->tag || n.id != s->id || n.nonce != s->nonce)
		return -ENOENT;
	return st.st_dev == s->app_dev && st.st_ino == s->app_ino ? 0 : -ENOENT;
}

/*
 * Return: -errno to answer with, or 0 (answered, parked, or no answer due).
 * @fd: the fd that came with the request (-1: none); the caller closes it.
 */
static int shim_dispatch(struct pvm_client *c, const struct mw_shimctl_req *req, int fd)
{
	struct pvm_sock *s;

	if (req->op == MW_SHIMCTL_REGISTER)
		return c->registered ? -EISCONN : shim_register(c, req);
	if (!c->registered)
		return -EPERM;
	if (req->op == MW_SHIMCTL_SOCKET)
		return shim_socket(c, req);
	s = pvm_sock_find(c->pvm, req->sock);
	/* Accepted connections answer option and name requests (TCP_NODELAY on an accepted
	 * fd is the common case); only app sockets take bind/listen/connect. */
	if (s && s->kind == PVM_SOCK_ACCEPTED && req->op != MW_SHIMCTL_SETOPT &&
	    req->op != MW_SHIMCTL_GETOPT && req->op != MW_SHIMCTL_GETNAME)
		s = NULL;
	if (req->op == MW_SHIMCTL_CLOSE_HINT) {
		/* Only a hint: what counts is that the socket's name is free. */
		if (s && s->kind == PVM_SOCK_APP && !pvm_appsock_check(s, "close hint"))
			pvm_appsock_kick(c->pvm, s->owner_pid); /* mw-pvm's copy may be queued */
		return 0;
	}
	if (shim_asks_outcome(req) &&
	    (!s || (s->kind == PVM_SOCK_APP && s->outcome_consumed && s->state == PVM_ST_CLOSING)))
		return shim_failed_outcome(c, req, fd);
	if (!s || s->kind == PVM_SOCK_REPLICA || shim_authorize(c->pvm, s, fd))
		return -ENOENT;
	if (!s->ins && s->state != PVM_ST_LISTENING)
		return -ENOENT;
	switch (req->op) {
	case MW_SHIMCTL_BIND:
		return shim_bind(c, s, req);
	case MW_SHIMCTL_LISTEN:
		return shim_listen(c, s, req);
	case MW_SHIMCTL_CONNECT:
		return s->ins ? shim_connect(c, s, req, fd) : -EISCONN;
	case MW_SHIMCTL_CONNECT_WAIT:
		return shim_wait(c, s, MW_SHIMCTL_CONNECT_WAIT);
	case MW_SHIMCTL_SETOPT:
		return shim_setopt(c, s, req);
	case MW_SHIMCTL_GETOPT:
		return shim_getopt(c, s, req);
	case MW_SHIMCTL_GETNAME:
		return shim_getname(c, s, req);
	default:
		return -EOPNOTSUPP;
	}
}

/*
 * The socket family of @fd, or -1 if it is not a socket.  Asked of the socket
 * layer only (ENOTSOCK for a file, without calling its file system): on a
 * FUSE mount fstat() and close() wait for the mount's server, which a hostile
 * user's server never answers.
 */
static int shim_fd_family(int fd)
{
	socklen_t len = sizeof(int);
	int domain;

	return getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &domain, &len) ? -1 : domain;
}

/*
 * Keep @fd as the request's if it is the first and an AF_UNIX socket (every fd
 * the shim passes is one); else drop it, on the closer threads (which turn a
 * socket's SO_LINGER off first, pvm_closer_put_foreign()).  Return: false if @fd was not an AF_UNIX
 * socket.
 */
static bool client_take_fd(struct pvm_client *c, int fd, int *out)
{
	if (shim_fd_family(fd) != AF_UNIX) {
		pvm_closer_put_foreign(c->pvm, fd, c->acct);
		return false;
	}
	if (*out < 0)
		*out = fd;
	else
		pvm_closer_put(c->pvm, fd, c->acct); /* one fd per request; surplus ones are dropped */
	return true;
}

/*
 * Receive one request and the fd that may come with it (*@fd -1: none).
 * *@foreign: an fd that is not an AF_UNIX socket came with it (dropped).
 */
static ssize_t client_recv(struct pvm_client *c, struct mw_shimctl_req *req, int *fd,
			   bool *foreign)
{
	/*
	 * Room for as many fds as one message can carry (SCM_MAX_FD): those a
	 * truncated buffer leaves behind are closed by the kernel in this
	 * process, on the loop, and such a close may wait (a lingering TCP
	 * socket, a FUSE file); ours go through client_take_fd().
	 */
	union {
		struct cmsghdr h;
		char buf[CMSG_SPACE(PVM_SCM_MAX_FD * sizeof(int))];
	} ctl;
	struct iovec iov = { .iov_base = req, .iov_len = sizeof(*req) };
	struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1 };
	struct cmsghdr *cm;
	size_t i, nfds;
	ssize_t n;
	int fds[PVM_SCM_MAX_FD];

	*fd = -1;
	*foreign = false;
	msg.msg_control = ctl.buf;
	msg.msg_controllen = sizeof(ctl.buf);
	n = recvmsg(c->fd, &msg, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
	if (n < 0)
		return n;
	for (cm = CMSG_FIRSTHDR(&msg); cm; cm = CMSG_NXTHDR(&msg, cm)) {
		if (cm->cmsg_level != SOL_SOCKET || cm->cmsg_type != SCM_RIGHTS ||
		    cm->cmsg_len < CMSG_LEN(0))
			continue;
		nfds = (cm->cmsg_len - CMSG_LEN(0)) / sizeof(int);
		if (nfds > PVM_SCM_MAX_FD)
			nfds = PVM_SCM_MAX_FD; /* cannot be: the buffer holds no more */
		memcpy(fds, CMSG_DATA(cm), nfds * sizeof(int));
		for (i = 0; i < nfds; i++)
			if (!client_take_fd(c, fds[i], fd))
				*foreign = true;
	}
	if (msg.msg_flags & MSG_CTRUNC) {
		/* Out of fds (EMFILE) to install them all: the kernel closed the rest. */
		if (*fd >= 0)
			pvm_closer_put(c->pvm, *fd, c->acct);
		*fd = -1;
		errno = EPROTO;
		return -1;
	}
	return n;
}

#define PVM_PARK_RETRY_S 0.1

/*
 * @c's uid has pvm.max_connections_per_user fds waiting for the closer (its
 * closes hang): @c is not read until they are closed.  Return: parked.
 */
static bool client_park(struct pvm_client *c)
{
	struct pvm *p = c->pvm;
	unsigned max = (unsigned)p->cfg->max_connections_per_user, n;

	if (!max || (n = pvm_closer_backlog(p, c->acct)) < max)
		return false;
	ev_io_stop(p->loop, &c->io);
	c->parked = true;
	p->nparked++;
	mw_log_ratelimited(MW_LOG_WARN,
			   "uid %u (pid %d, account %u): %u fds wait to be closed: its requests "
			   "wait too",
			   (unsigned)c->uid, (int)c->pid, (unsigned)c->acct, n);
	if (!ev_is_active(&p->park_timer)) {
		ev_timer_set(&p->park_timer, PVM_PARK_RETRY_S, 0.);
		ev_timer_start(p->loop, &p->park_timer);
	}
	return true;
}

/* Parked clients whose uid's closes went on are read again. */
static void park_retry_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct pvm *p = w->data;
	unsigned max = (unsigned)p->cfg->max_connections_per_user;
	struct pvm_client *c;

	(void)revents;
	for (c = p->clients; c && p->nparked; c = c->next) {
		if (!c->parked || (max && pvm_closer_backlog(p, c->acct) >= max))
			continue;
		c->parked = false;
		p->nparked--;
		ev_io_start(loop, &c->io);
	}
	if (p->nparked) {
		ev_timer_set(w, PVM_PARK_RETRY_S, 0.);
		ev_timer_start(loop, w);
	}
}

static void client_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	struct pvm_client *c = w->data;
	struct pvm *p = c->pvm;
	pid_t pid = c->pid;
	struct mw_shimctl_req req;
	bool foreign;
	ssize_t n;
	int ret, fd;

	if (client_park(c))
		return;
	n = client_recv(c, &req, &fd, &foreign);
	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	if (n <= 0) {
		if (fd >= 0)
			pvm_closer_put(p, fd, c->acct); /* a message of 0 bytes may carry one too */
		if (n < 0 && errno == EPROTO)
			mw_log_ratelimited(MW_LOG_WARN, "shim pid %d: too many fds in a request",
					   (int)c->pid);
		client_close(c);
		/* Its thread or process ended (exit, kill, crash, exec): look for what it left. */
		pvm_appsock_kick(p, pid);
		return;
	}
	if (n != sizeof(req)) {
		mw_log_ratelimited(MW_LOG_WARN,
				   "shim pid %d: request of %zd bytes (want %zu): dropped",
				   (int)c->pid, n, sizeof(req));
		if (fd >= 0)
			pvm_closer_put(p, fd, c->acct);
		client_close(c);
		return;
	}
	/* One request at a time: nothing more is read until this one is answered. */
	ev_io_stop(loop, &c->io);
	c->req_fd = fd;
	if (foreign)
		mw_log_ratelimited(MW_LOG_WARN,
				   "shim pid %d: a passed fd is not an AF_UNIX socket: refused",
				   (int)c->pid);
	ret = foreign ? -ENOTSOCK : shim_dispatch(c, &req, fd);
	client_drop_req_fd(c);
	if (ret < 0 && !(req.op == MW_SHIMCTL_SETOPT && (req.flags & MW_SHIMCTL_F_NOREPLY))) {
		pvm_shim_answer(c, ret, req.sock, NULL, NULL, 0);
		return;
	}
	if (!c->req && !c->wait_sock && !ev_is_active(&c->io))
		ev_io_start(loop, &c->io); /* CLOSE_HINT, F_NOREPLY: no response */
}

/* Out of fds or memory: stop accepting for a while instead of spinning on a ready socket. */
static bool shim_accept_park(struct pvm *p, ev_io *w, const char *what)
{
	int err = errno;

	if (err != EMFILE && err != ENFILE && err != ENOBUFS && err != ENOMEM) {
		if (err != EAGAIN && err != EINTR)
			mw_log_ratelimited(MW_LOG_WARN, "accept on %s: %s", what, strerror(err));
		return false;
	}
	mw_log_ratelimited(MW_LOG_WARN, "accept on %s: %s; retrying in %.0f ms", what,
			   strerror(err), PVM_ACCEPT_RETRY_S * 1000);
	ev_io_stop(p->loop, w);
	if (!ev_is_active(&p->accept_timer)) {
		/* Set anew: a timer restarted after it expired would fire at once. */
		ev_timer_set(&p->accept_timer, PVM_ACCEPT_RETRY_S, 0.);
		ev_timer_start(p->loop, &p->accept_timer);
	}
	return true;
}

static void accept_retry_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct pvm *p = w->data;

	(void)revents;
	if (p->ctl_fd >= 0)
		ev_io_start(loop, &p->ctl_io);
}

/*
 * A connection over its uid's pvm.max_connections_per_user: the answer to the
 * REGISTER it is about to send is queued first (EMFILE, which the shim's
 * socket() returns), then it is closed.  The answer stays readable after the
 * close, whether or not the REGISTER got through.  Its close is the loop's
 * when it cannot hold fds (a kernel with SO_PASSRIGHTS): counted nowhere, it
 * must not wait for the closer.
 */
static void ctl_refuse(struct pvm *p, int fd, uid_t uid, int err)
{
	struct mw_shimctl_resp resp;

	memset(&resp, 0, sizeof(resp));
	resp.status = err;
	int rights = 1;
	socklen_t len = sizeof(rights);

	(void)send(fd, &resp, sizeof(resp), MSG_NOSIGNAL | MSG_DONTWAIT);
	if (p->ctl_rights_gated &&
	    !getsockopt(fd, SOL_SOCKET, SO_PASSRIGHTS, &rights, &len) && !rights)
		close(fd);
	else
		pvm_closer_put(p, fd, uid); /* it may already hold passed fds */
}

/* An admitted connection may pass fds (the listener's SO_PASSRIGHTS 0 is inherited). */
static int ctl_admit_rights(struct pvm *p, int fd)
{
	int on = 1;

	if (!p->ctl_rights_gated ||
	    !setsockopt(fd, SOL_SOCKET, SO_PASSRIGHTS, &on, sizeof(on)))
		return 0;
	return -errno;
}

static void ctl_accept_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	struct pvm *p = w->data;
	struct pvm_client *c;
	struct ucred cred;
	socklen_t len;
	uid_t acct;
	int i, fd, ret;

	for (i = 0; i < ACCEPTS_PER_EVENT; i++) {
		fd = accept4(w->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd < 0) {
			shim_accept_park(p, w, p->ctl_path);
			return;
		}
		len = sizeof(cred);
		c = calloc(1, sizeof(*c));
		if (!c || getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len)) {
			free(c);
			pvm_closer_put(p, fd, PVM_UID_UNKNOWN); /* it may already hold passed fds */
			continue;
		}
		mw_subuids_refresh(&p->subuids, ev_now(p->loop)); /* a range added since */
		acct = pvm_uid_account(p, cred.uid);
		ret = pvm_quota_client_take(p, acct, cred.pid);
		if (!ret && (ret = ctl_admit_rights(p, fd)))
			pvm_quota_client_put(p, acct);
		if (ret) {
			free(c);
			ctl_refuse(p, fd, acct, ret);
			continue;
		}
		c->pvm = p;
		c->fd = fd;
		c->req_fd = -1;
		c->pid = cred.pid;
		c->uid = cred.uid;
		c->acct = acct;
		c->pidfd = pvm_peer_pidfd(fd, cred.pid);
		c->serial = ++p->client_serial;
		c->next = p->clients;
		if (p->clients)
			p->clients->prev = c;
		p->clients = c;
		p->nclients++;
		ev_io_init(&c->io, client_cb, fd, EV_READ);
		/*
		 * Requests before the app's bytes: an F_NOREPLY option sent before a
		 * write reaches the INS before that write's data when both are ready
		 * in one loop iteration.  (A second one, read only once the INS has
		 * answered the first, may act after bytes written after it: none of
		 * those options, TCP_NODELAY, TCP_QUICKACK, SO_KEEPALIVE, depends on
		 * that order.)
		 */
		ev_set_priority(&c->io, EV_MAXPRI);
		c->io.data = c;
		ev_io_start(loop, &c->io);
	}
}

/*
 * Listen on @path; *@gated: its connections take no fds until admitted
 * (SO_PASSRIGHTS 0, set before listen() so that no early connection has 1).
 */
static int shim_listen_path(const char *path, int type, int *out, bool *gated)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	int fd, ret = 0;

	if (strlen(path) >= sizeof(sun.sun_path))
		return -ENAMETOOLONG;
	memcpy(sun.sun_path, path, strlen(path));
	fd = socket(AF_UNIX, type | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	*gated = !mw_refuse_rights(fd);
	unlink(path);
	if (bind(fd, (struct sockaddr *)&sun, sizeof(sun)) || chmod(path, 0666) ||
	    listen(fd, 1024)) {
		ret = -errno;
		close(fd);
		return ret;
	}
	*out = fd;
	return 0;
}

/**
 * pvm_shim_open() - listen on the control socket
 * @p:      the daemon
 * @err:    one line on failure
 * @errlen: its size
 * Return: 0 or -errno
 */
int pvm_shim_open(struct pvm *p, char *err, size_t errlen)
{
	int ret, probe;

	probe = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (probe >= 0 && mw_refuse_rights(probe))
		mw_warn("SO_PASSRIGHTS unknown to this kernel (before 6.16): an app or a "
			"consumer can pass fds into mw-pvm's sockets, and the kernel closes "
			"them on its loop, where such a close may wait");
	if (probe >= 0)
		close(probe);

	snprintf(p->ctl_path, sizeof(p->ctl_path), "%s", p->cfg->control_socket);
	pvm_subuid_load(p);
	ret = shim_listen_path(p->ctl_path, SOCK_SEQPACKET, &p->ctl_fd, &p->ctl_rights_gated);
	if (ret) {
		snprintf(err, errlen, "control socket %s: %s", p->ctl_path, strerror(-ret));
		return ret;
	}
	ev_io_init(&p->ctl_io, ctl_accept_cb, p->ctl_fd, EV_READ);
	p->ctl_io.data = p;
	ev_io_start(p->loop, &p->ctl_io);
	ev_timer_init(&p->accept_timer, accept_retry_cb, PVM_ACCEPT_RETRY_S, 0.);
	p->accept_timer.data = p;
	ev_timer_init(&p->park_timer, park_retry_cb, PVM_PARK_RETRY_S, 0.);
	p->park_timer.data = p;
	pvm_appsock_open(p);
	return 0;
}

/**
 * pvm_shim_close() - at exit: drop clients, close and remove the control socket
 * @p: the daemon
 */
void pvm_shim_close(struct pvm *p)
{
	struct pvm_client *c, *next;

	ev_timer_stop(p->loop, &p->accept_timer);
	ev_timer_stop(p->loop, &p->park_timer);
	pvm_appsock_close(p);
	for (c = p->clients; c; c = next) {
		next = c->next;
		client_close(c);
	}
	if (p->ctl_fd >= 0) {
		ev_io_stop(p->loop, &p->ctl_io);
		pvm_closer_put(p, p->ctl_fd, getuid()); /* connections not accepted may hold fds */
		unlink(p->ctl_path);
		mw_subuids_free(&p->subuids);
		p->ctl_fd = -1;
	}
}
