/* SPDX-License-Identifier: MIT */
/* ins_sock.c - mw-ins socket table and the control ops the PVM sends (socket .. close) */
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "common/linger.h"
#include "common/log.h"
#include "common/sockid.h"
#include "ins/ins.h"

/*
 * Theory of operation
 *
 * The PVM names every socket by a 64-bit id; the INS keeps id -> ins_sock in a
 * chained hash that doubles when it holds more entries than buckets (no cap
 * but ins.max_sockets and RLIMIT_NOFILE).  A socket lives from OP_SOCKET (or
 * accept) until the PVM's OP_CLOSE/OP_ABORT is answered with EV_CLOSED: the
 * INS never forgets an id on its own, so the PVM never sees a frame for an id
 * it did not expect.  A connection the INS loses (peer reset, address block)
 * keeps its entry with rd_done/wr_dead set until the PVM closes it.
 *
 *   NEW -bind-> BOUND -listen-> LISTENING
 *   NEW/BOUND -connect-> CONNECTING -> CONNECTED | FAILED
 *   accept -> CONNECTED;  CONNECTED -OP_CLOSE-> CLOSING (pending drains) -> gone
 *   any -OP_ABORT-> gone (RST)
 *
 * Each op gets exactly one MW_RESULT with its request id; failures of the
 * socket call are -errno results, never fatal.
 */

#define ACCEPT_BUDGET 64

static size_t hash_id(uint64_t id, size_t nbuckets)
{
	id ^= id >> 33;
	id *= 0xff51afd7ed558ccdULL;
	id ^= id >> 33;
	return (size_t)id & (nbuckets - 1);
}

/**
 * ins_table_init() - an empty table
 * @t:        the table
 * @nbuckets: initial buckets (rounded up to a power of two, at least 16)
 * Return: 0 or -ENOMEM
 */
int ins_table_init(struct ins_table *t, size_t nbuckets)
{
	size_t n = 16;

	while (n < nbuckets)
		n <<= 1;
	t->b = calloc(n, sizeof(struct ins_sock *));
	if (!t->b)
		return -ENOMEM;
	t->nbuckets = n;
	t->count = 0;
	return 0;
}

/**
 * ins_table_fini() - free the buckets (not the sockets)
 * @t: the table
 */
void ins_table_fini(struct ins_table *t)
{
	free(t->b);
	t->b = NULL;
	t->nbuckets = 0;
	t->count = 0;
}

/**
 * ins_table_find() - look a socket up
 * @t:  the table
 * @id: socket id
 * Return: the socket or NULL
 */
struct ins_sock *ins_table_find(const struct ins_table *t, uint64_t id)
{
	struct ins_sock *s;

	if (!t->nbuckets)
		return NULL;
	for (s = t->b[hash_id(id, t->nbuckets)]; s; s = s->hnext)
		if (s->id == id)
			return s;
	return NULL;
}

static int table_grow(struct ins_table *t)
{
	size_t n = t->nbuckets ? t->nbuckets * 2 : 16, i, h;
	struct ins_sock **nb, *s, *next;

	nb = calloc(n, sizeof(struct ins_sock *));
	if (!nb)
		return -ENOMEM;
	for (i = 0; i < t->nbuckets; i++) {
		for (s = t->b[i]; s; s = next) {
			next = s->hnext;
			h = hash_id(s->id, n);
			s->hnext = nb[h];
			nb[h] = s;
		}
	}
	free(t->b);
	t->b = nb;
	t->nbuckets = n;
	return 0;
}

/**
 * ins_table_insert() - add a socket under s->id
 * @t: the table
 * @s: the socket
 * Return: 0, -EEXIST if the id is in use, -ENOMEM
 */
int ins_table_insert(struct ins_table *t, struct ins_sock *s)
{
	size_t h;

	if (ins_table_find(t, s->id))
		return -EEXIST;
	/* A failed grow only makes chains longer. */
	if (t->count >= t->nbuckets && table_grow(t) && !t->nbuckets)
		return -ENOMEM;
	h = hash_id(s->id, t->nbuckets);
	s->hnext = t->b[h];
	t->b[h] = s;
	t->count++;
	return 0;
}

/**
 * ins_table_remove() - unlink a socket
 * @t:  the table
 * @id: socket id
 * Return: the socket, or NULL if it was not there
 */
struct ins_sock *ins_table_remove(struct ins_table *t, uint64_t id)
{
	struct ins_sock **pp, *s;

	if (!t->nbuckets)
		return NULL;
	for (pp = &t->b[hash_id(id, t->nbuckets)]; (s = *pp); pp = &s->hnext) {
		if (s->id == id) {
			*pp = s->hnext;
			s->hnext = NULL;
			t->count--;
			return s;
		}
	}
	return NULL;
}

static struct ins_sock *sock_new(struct ins *ins, uint64_t id, int fd, uint8_t family)
{
	struct ins_sock *s = calloc(1, sizeof(*s));

	if (!s)
		return NULL;
	s->id = id;
	s->ins = ins;
	s->fd = fd;
	s->family = family;
	s->shut_pending = -1;
	s->credit = ins->peer_window;
	ev_io_init(&s->rio, ins_io_read_cb, fd, EV_READ);
	s->rio.data = s;
	ev_io_init(&s->wio, ins_io_write_cb, fd, EV_WRITE);
	s->wio.data = s;
	if (ins_table_insert(&ins->socks, s)) {
		free(s);
		return NULL;
	}
	ins->stats.used_sockets = ins->socks.count;
	return s;
}

/*
 * An app of this INS set SO_LINGER with a time (ins->app_linger), on this socket or
 * on the listener it came from: close() would wait up to that time for the FIN's
 * ACK, blocking or not, and the loop with it.  Turn such a linger off (the graceful
 * close has waited for the client's ACKs already, ins_linger.c); {1, 0}, a reset,
 * stays as the app set it.
 */
static void sock_unlinger(int fd)
{
	static const struct linger off = { 0, 0 };
	struct linger lg = { 0, 0 };
	socklen_t len = sizeof(lg);

	if (!getsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, &len) && lg.l_onoff && lg.l_linger)
		(void)setsockopt(fd, SOL_SOCKET, SO_LINGER, &off, sizeof(off));
}

/**
 * ins_sock_free() - forget a socket: watchers, fd, buffers, table entry
 * @s: the socket
 */
void ins_sock_free(struct ins_sock *s)
{
	struct ins *ins = s->ins;

	ev_io_stop(ins->loop, &s->rio);
	ev_io_stop(ins->loop, &s->wio);
	ins_io_unpark(s);
	ins_linger_forget(s);
	ins_accf_drop(s);
	ins_shield_sock_free(s); /* shield: counts, out buffer */
	if (s->fd >= 0) {
		if (ins->app_linger)
			sock_unlinger(s->fd);
		close(s->fd);
	}
	ins_table_remove(&ins->socks, s->id);
	ins->stats.used_sockets = ins->socks.count;
	ins->pend_total -= s->pend_len;
	free(s->pend);
	free(s);
}

/**
 * ins_sock_close_all() - at exit: drop every socket without telling anyone
 * @ins: the daemon
 */
void ins_sock_close_all(struct ins *ins)
{
	struct ins_sock *s, *next;
	size_t i;

	ins_proxy_close_all(ins);
	/* ins_sock_free() unlinks s from its chain, so the chain's head becomes next. */
	for (i = 0; i < ins->socks.nbuckets; i++)
		for (s = ins->socks.b[i]; s; s = next) {
			next = s->hnext;
			ins_sock_free(s);
		}
}

/**
 * ins_sock_rst_close() - close @fd with a reset, freeing it at once
 * @fd: a TCP socket
 */
void ins_sock_rst_close(int fd)
{
	mw_linger_reset(fd);
	close(fd);
}

#define rst_close ins_sock_rst_close

/**
 * ins_sock_reset() - reset a live connection; the PVM hears EV_RESET (ECONNRESET)
 * @s: the socket; may be freed (a closing one that waited for its pending bytes)
 *
 * The entry stays (fd -1) until the PVM closes it.  Address blocks, the
 * shield's limits and ins.pending_total all reset connections this way.
 */
void ins_sock_reset(struct ins_sock *s)
{
	struct ins *ins = s->ins;

	ev_io_stop(ins->loop, &s->rio);
	ev_io_stop(ins->loop, &s->wio);
	ins_io_unpark(s);
	rst_close(s->fd);
	s->fd = -1;
	ins_io_lost(s, ECONNRESET);
}

static int sock_name(int fd, bool peer, struct mw_addr *a)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);
	int ret = peer ? getpeername(fd, (struct sockaddr *)&ss, &len)
		       : getsockname(fd, (struct sockaddr *)&ss, &len);

	memset(a, 0, sizeof(*a));
	if (ret < 0)
		return -errno;
	return mw_addr_from_sockaddr(a, (struct sockaddr *)&ss, len);
}

/**
 * ins_sock_block_live() - abort live connections whose peer is now blocked
 * @ins: the daemon
 *
 * The entry stays (fd -1) until the PVM closes it; the PVM hears EV_RESET.
 */
void ins_sock_block_live(struct ins *ins)
{
	struct ins_sock *s;
	size_t i;

	for (i = 0; i < ins->socks.nbuckets; i++) {
		for (s = ins->socks.b[i]; s; s = s->hnext) {
			ins_accf_block_live(s);
			if (s->fd < 0 || s->state != INS_ST_CONNECTED ||
			    !ins_blockset_has(&ins->blocked, &s->peer))
				continue;
			ins_sock_reset(s);
		}
	}
}

/* Connect finished (or failed at once): tell the PVM. */
static void sock_connect_outcome(struct ins_sock *s, int err)
{
	struct ins *ins = s->ins;
	struct mw_ev_connected ev;
	struct mw_ev_errno e = { .err = err };

	ev_io_stop(ins->loop, &s->wio);
	if (err) {
		s->state = INS_ST_FAILED;
		ins_ctl(ins, MW_EV_ERROR, s->id, &e, sizeof(e));
		return;
	}
	s->state = INS_ST_CONNECTED;
	sock_name(s->fd, false, &ev.local);
	sock_name(s->fd, true, &ev.peer);
	s->peer = ev.peer;
	ins_ctl(ins, MW_EV_CONNECTED, s->id, &ev, sizeof(ev));
	ins_io_update_read(s);
}

static void sock_connect_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	struct ins_sock *s = w->data;
	socklen_t len = sizeof(int);
	int err = 0;

	if (getsockopt(s->fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
		err = errno;
	if (err == EINPROGRESS || err == EINTR)
		return;
	ev_set_cb(&s->wio, ins_io_write_cb);
	sock_connect_outcome(s, err);
}

/* Errors the network gives back: the outcome of a started connect, not a bad request. */
static bool connect_err_is_outcome(int err)
{
	return err == ECONNREFUSED || err == ETIMEDOUT || err == ENETUNREACH ||
	       err == EHOSTUNREACH || err == ECONNRESET || err == ENETDOWN || err == EHOSTDOWN;
}

static int op_connect(struct ins_sock *s, const struct mw_op_addr *o)
{
	struct ins *ins = s->ins;
	struct sockaddr_storage ss;
	socklen_t len;
	int ret;

	if (s->state == INS_ST_CONNECTING)
		return -EALREADY;
	if (s->state != INS_ST_NEW && s->state != INS_ST_BOUND)
		return s->state == INS_ST_CONNECTED ? -EISCONN : -EINVAL;
	if (ins_blockset_has(&ins->blocked, &o->addr))
		return -EACCES;
	ret = mw_addr_to_sockaddr(&o->addr, &ss, &len);
	if (ret)
		return ret;
	if (connect(s->fd, (struct sockaddr *)&ss, len) == 0) {
		ins_result(ins, s->id, o->req, 0, NULL, 0);
		sock_connect_outcome(s, 0);
		return 1;
	}
	ret = errno;
	if (ret == EINPROGRESS) {
		s->state = INS_ST_CONNECTING;
		ev_set_cb(&s->wio, sock_connect_cb);
		ev_io_start(ins->loop, &s->wio);
		return 0;
	}
	if (!connect_err_is_outcome(ret))
		return -ret;
	ins_result(ins, s->id, o->req, 0, NULL, 0);
	sock_connect_outcome(s, ret);
	return 1;
}

/*
 * Nagle stays off on every INS socket: mw-pvm already gathers what the app
 * writes into frames of up to 64 KiB, and Nagle on top of that relay turned a
 * response split across two frames into a 40 ms stall on the peer's delayed
 * ACK.  The app still sees its own TCP_NODELAY value; TCP_CORK is applied.
 * Set when a socket is made; an accepted connection inherits it from its
 * listener (the app's TCP_NODELAY never reaches the kernel: op_sockopt()).
 */
static void sock_nodelay(int fd)
{
	int one = 1;

	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
}

static int op_socket(struct ins *ins, uint64_t id, const struct mw_op_socket *o)
{
	struct ins_sock *s;
	int fd, ret;

	if (ins->cfg->max_sockets && ins->socks.count >= (size_t)ins->cfg->max_sockets)
		return -EMFILE;
	fd = socket(o->family == 6 ? AF_INET6 : AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC,
		    IPPROTO_TCP);
	if (fd < 0)
		return -errno;
	sock_nodelay(fd);
	ret = ins_linger_bound(ins, fd);
	if (ret)
		mw_log_ratelimited(MW_LOG_WARN, "socket %#llx: TCP_LINGER2: %s",
				   (unsigned long long)id, strerror(-ret));
	ret = ins_tune_apply(&ins->tune, fd);
	if (ret)
		mw_log_ratelimited(MW_LOG_WARN, "socket %#llx: INS settings not applied: %s",
				   (unsigned long long)id, strerror(-ret));
	s = sock_new(ins, id, fd, (uint8_t)o->family);
	if (!s) {
		close(fd);
		return -ENOMEM;
	}
	return 0;
}

static int op_sockopt(struct ins_sock *s, const struct mw_op_sockopt *o, bool set, uint8_t *val,
		      uint32_t *vlen)
{
	socklen_t len = o->len;
	int ret = ins_opt_allowed(o->level, o->name, set);
	struct linger lg;
	int v;

	if (ret)
		return ret;
	if (s->fd < 0)
		return -ECONNRESET;
	if (o->level == MW_SOL_SHIELD)
		return ins_shield_opt(s, o->name, set, o->val, o->len, val, vlen);
	if (o->level == IPPROTO_TCP && o->name == TCP_NODELAY) {
		if (set) {
			if (len < sizeof(int))
				return -EINVAL;
			memcpy(&v, o->val, sizeof(v));
			s->app_nodelay = v != 0;
			return 0;
		}
		v = s->app_nodelay;
		*vlen = len < sizeof(int) ? len : sizeof(int);
		memcpy(val, &v, *vlen);
		return 0;
	}
	if (set && o->level == SOL_SOCKET && o->name == SO_LINGER && len >= sizeof(lg)) {
		memcpy(&lg, o->val, sizeof(lg));
		if (lg.l_onoff && lg.l_linger)
			s->ins->app_linger = true; /* see ins_sock_free() */
	}
	if (set)
		return setsockopt(s->fd, o->level, o->name, o->val, len) < 0 ? -errno : 0;
	if (getsockopt(s->fd, o->level, o->name, val, &len) < 0)
		return -errno;
	*vlen = len > MW_SOCKOPT_MAX ? MW_SOCKOPT_MAX : len;
	return 0;
}

static int op_shutdown(struct ins_sock *s, int how)
{
	if (s->fd < 0)
		return -ENOTCONN;
	if (s->pend_len && how != SHUT_RD) {
		/* Queued bytes go first; SHUT_RD part (if any) now. */
		s->shut_pending = (int8_t)how;
		if (how == SHUT_RDWR && shutdown(s->fd, SHUT_RD) < 0)
			return -errno;
		return 0;
	}
	return shutdown(s->fd, how) < 0 ? -errno : 0;
}

static void op_close(struct ins_sock *s, const struct mw_frame *f, const struct mw_op_req *o)
{
	struct ins *ins = s->ins;

	ins_result(ins, s->id, o->req, 0, NULL, 0);
	if (f->type == MW_OP_ABORT)
		ins_linger_abort(s); /* also a graceful close still in progress */
	else if (s->state != INS_ST_CLOSING)
		ins_linger_start(s);
}

static int op_getname(struct ins_sock *s, int which, struct mw_addr *a)
{
	if (s->fd < 0)
		return -ENOTCONN;
	if (s->proxied) {
		*a = which == 1 ? s->peer : s->local;
		return 0;
	}
	return sock_name(s->fd, which == 1, a);
}

static void op_global(struct ins *ins, const struct mw_frame *f, const void *payload)
{
	const struct mw_op_addr_block *ab = payload;
	const struct mw_op_ins_set *is = payload;
	const struct mw_op_req *rq = payload;
	char text[MW_ADDR_STRLEN];
	int ret;

	switch (f->type) {
	case MW_OP_ADDR_BLOCK:
		if (ab->block)
			ret = ins_blockset_add(&ins->blocked, &ab->addr, ab->prefix_len);
		else
			ret = ins_blockset_del(&ins->blocked, &ab->addr, ab->prefix_len);
		mw_info("address %s/%u %s (%s)", mw_addr_format(&ab->addr, text, sizeof(text)),
			ab->prefix_len, ab->block ? "blocked" : "unblocked",
			ret ? strerror(-ret) : "ok");
		if (!ret && ab->block)
			ins_sock_block_live(ins);
		ins_result(ins, 0, ab->req, ret, NULL, 0);
		break;
	case MW_OP_INS_SET:
		ret = ins_tune_set(&ins->tune, is);
		mw_info("setting %u (value %llu, text \"%s\"): %s", is->name,
			(unsigned long long)is->value, is->text, ret ? strerror(-ret) : "ok");
		ins_result(ins, 0, is->req, ret, NULL, 0);
		break;
	default: /* MW_OP_STATS */
		ins_result(ins, 0, rq->req, 0, &ins->stats, sizeof(ins->stats));
		break;
	}
}

/**
 * ins_sock_op() - execute one checked control op from the PVM
 * @ins:     the daemon
 * @f:       the frame header
 * @payload: private, checked copy of the payload
 *
 * Protocol violations (an id that is not ours or is reused) are fatal through
 * ins_fatal(); socket call failures become -errno results.
 */
void ins_sock_op(struct ins *ins, const struct mw_frame *f, const void *payload)
{
	const struct mw_op_req *rq = payload;
	const struct mw_op_int *oi = payload;
	const struct mw_op_addr *oa = payload;
	const struct mw_op_sockopt *oo = payload;
	uint8_t val[MW_SOCKOPT_MAX];
	struct sockaddr_storage ss;
	struct mw_addr a;
	struct ins_sock *s;
	uint32_t vlen = 0;
	socklen_t len;
	int ret = 0;

	if (f->type == MW_OP_ADDR_BLOCK || f->type == MW_OP_INS_SET || f->type == MW_OP_STATS) {
		op_global(ins, f, payload);
		return;
	}
	if (f->type == MW_OP_SOCKET) {
		if (mw_sockid_ins(f->sock) != ins->cfg->id ||
		    mw_sockid_pvm(f->sock) != ins->pvm_index ||
		    (mw_sockid_local(f->sock) & MW_SOCKID_INS_ASSIGNED)) {
			ins_fatal(ins, "OP_SOCKET with id %#llx not for INS %d / PVM %u",
				  (unsigned long long)f->sock, ins->cfg->id, ins->pvm_index);
			return;
		}
		if (ins_table_find(&ins->socks, f->sock)) {
			ins_fatal(ins, "OP_SOCKET reuses live id %#llx",
				  (unsigned long long)f->sock);
			return;
		}
		ret = op_socket(ins, f->sock, payload);
		ins_result(ins, f->sock, rq->req, ret, NULL, 0);
		return;
	}
	s = ins_table_find(&ins->socks, f->sock);
	if (!s || (s->state == INS_ST_CLOSING && f->type != MW_OP_ABORT)) {
		ins_result(ins, f->sock, rq->req, -EBADF, NULL, 0);
		return;
	}
	switch (f->type) {
	case MW_OP_BIND:
		ret = mw_addr_to_sockaddr(&oa->addr, &ss, &len);
		if (!ret && s->fd < 0)
			ret = -EINVAL;
		if (!ret)
			ret = bind(s->fd, (struct sockaddr *)&ss, len) < 0 ? -errno : 0;
		if (!ret)
			s->state = INS_ST_BOUND;
		break;
	case MW_OP_LISTEN:
		if (s->state != INS_ST_NEW && s->state != INS_ST_BOUND &&
		    s->state != INS_ST_LISTENING) {
			ret = -EINVAL;
			break;
		}
		ret = listen(s->fd, oi->value) < 0 ? -errno : 0;
		if (!ret) {
			s->state = INS_ST_LISTENING;
			ev_io_start(ins->loop, &s->rio);
		}
		break;
	case MW_OP_CONNECT:
		ret = op_connect(s, oa);
		if (ret > 0)
			return; /* result already sent, before the outcome */
		break;
	case MW_OP_SETOPT:
	case MW_OP_GETOPT:
		ret = op_sockopt(s, oo, f->type == MW_OP_SETOPT, val, &vlen);
		if (!ret && f->type == MW_OP_GETOPT) {
			ins_result(ins, s->id, rq->req, 0, val, vlen);
			return;
		}
		break;
	case MW_OP_SHUTDOWN:
		ret = op_shutdown(s, oi->value);
		break;
	case MW_OP_CLOSE:
	case MW_OP_ABORT:
		op_close(s, f, rq);
		return;
	case MW_OP_GETNAME:
		ret = op_getname(s, oi->value, &a);
		if (!ret) {
			ins_result(ins, s->id, rq->req, 0, &a, sizeof(a));
			return;
		}
		break;
	default:
		ret = -EOPNOTSUPP;
		break;
	}
	ins_result(ins, s->id, rq->req, ret, NULL, 0);
}

/*
 * The id of an accepted connection: local part MW_SOCKID_INS_ASSIGNED | 1..ins.id_space.
 * The counter starts at a random point (a restarted INS does not hand out its
 * predecessor's ids again at once), wraps around and skips ids in use, so it
 * never runs out while connections are freed.
 * Return: the id, or 0 when every id of the space is in use
 */
static uint64_t sock_accept_id(struct ins *ins)
{
	uint32_t space = (uint32_t)ins->cfg->id_space, local, tries;
	uint64_t id;

	if (space == 0 || space >= MW_SOCKID_INS_ASSIGNED)
		space = MW_SOCKID_INS_ASSIGNED - 1;
	if (!ins->next_accept || ins->next_accept > space) {
		if (getrandom(&local, sizeof(local), GRND_NONBLOCK) != (ssize_t)sizeof(local))
			local = (uint32_t)time(NULL) ^ (uint32_t)getpid() << 8;
		ins->next_accept = local % space + 1;
	}
	for (tries = 0; tries < space && tries <= ins->socks.count; tries++) {
		local = ins->next_accept;
		ins->next_accept = local >= space ? 1 : local + 1;
		id = mw_sockid_make((uint16_t)ins->cfg->id, ins->pvm_index,
				    MW_SOCKID_INS_ASSIGNED | local);
		if (!ins_table_find(&ins->socks, id))
			return id;
	}
	return 0;
}

/**
 * ins_sock_admit() - an accepted connection: address block, then accept filter or announce
 * @ins:      the daemon
 * @listener: id of the listener it came from (still listening: the caller checked)
 * @fd:       the connection; owned from here on (closed on refusal)
 * @peer:     the client as the app will see it
 * @local:    the address it reached
 * @proxied:  @peer/@local came from a PROXY header, not from the socket
 */
void ins_sock_admit(struct ins *ins, uint64_t listener, int fd, const struct mw_addr *peer,
		    const struct mw_addr *local, bool proxied)
{
	struct ins_sock *ls = ins_table_find(&ins->socks, listener);
	struct ins_rates_ref ref;
	char text[MW_ADDR_STRLEN];

	if (ins_blockset_has(&ins->blocked, peer)) {
		ins->refused_blocked++;
		mw_log_ratelimited(MW_LOG_INFO, "connection from blocked %s reset",
				   mw_addr_format(peer, text, sizeof(text)));
		rst_close(fd);
		return;
	}
	/* An accept filter holds it first: held connections cost the app nothing, so the
	 * per-source and per-prefix limits (which guard the app's slots) judge it only
	 * when it passes; a NAT address's benign clients are not refused because of the
	 * held attack connections that share it. */
	if (ls && ls->shield.filter != MW_ACCF_NONE) {
		ins_accf_hold(ls, fd, peer, local, proxied);
		return;
	}
	/* shield: SRC_*, PFX_* */
	if (!ins_shield_admit(ins, listener, peer, &ref)) {
		rst_close(fd);
		return;
	}
	ins_sock_announce(ins, listener, fd, peer, local, proxied, ls ? &ls->shield : NULL,
			  &ref);
}

/**
 * ins_sock_announce() - id, table entry, EV_ACCEPTED for an admitted connection
 * @ins:      the daemon
 * @listener: id of the listener it came from
 * @fd:       the connection; owned from here on (reset on refusal)
 * @peer:     the client as the app will see it
 * @local:    the address it reached
 * @proxied:  @peer/@local came from a PROXY header, not from the socket
 * @shield:   its listener's shield at accept (NULL: none)
 * @ref:      the source/prefix entries it counts in (ins_shield_admit()): the
 *            socket takes them, or they are released on refusal
 */
void ins_sock_announce(struct ins *ins, uint64_t listener, int fd, const struct mw_addr *peer,
		       const struct mw_addr *local, bool proxied, const struct mw_shield *shield,
		       struct ins_rates_ref *ref)
{
	struct mw_ev_accepted ev = { .peer = *peer, .local = *local };
	struct ins_sock *s;
	char text[MW_ADDR_STRLEN];

	if (!(ins->cfg->max_sockets && ins->socks.count >= (size_t)ins->cfg->max_sockets))
		ev.new_sock = sock_accept_id(ins);
	if (!ev.new_sock) {
		mw_log_ratelimited(MW_LOG_WARN, "connection from %s reset: socket limit",
				   mw_addr_format(&ev.peer, text, sizeof(text)));
		ins_shield_release(ref);
		rst_close(fd);
		return;
	}
	s = sock_new(ins, ev.new_sock, fd, ev.peer.family);
	if (!s) {
		ins_shield_release(ref);
		rst_close(fd);
		return;
	}
	s->rates.ref = *ref;
	s->rates.listener = listener;
	if (ins->tune.quickack)
		ins_tune_apply(&ins->tune, fd);
	s->state = INS_ST_CONNECTED;
	s->peer = ev.peer;
	if (shield)
		s->shield = *shield;
	if (proxied) {
		s->proxied = true;
		s->local = ev.local;
	}
	ins->accepted++;
	ins_ctl(ins, MW_EV_ACCEPTED, listener, &ev, sizeof(ev));
	ins_io_update_read(s);
	/*
	 * A client's first bytes usually follow its handshake at once: read
	 * them now, so they leave in the same flush (one kick of the PVM) as
	 * the accept, not a loop iteration later.  May free @s.
	 */
	if (ev_is_active(&s->rio))
		ins_io_read_cb(ins->loop, &s->rio, EV_READ);
}

/* One accepted connection: its endpoints, then a PROXY header (if configured) or admit. */
static void sock_accepted(struct ins_sock *ls, int fd, const struct sockaddr_storage *ss,
			  socklen_t len)
{
	struct ins *ins = ls->ins;
	struct mw_addr peer, local;

	if (mw_addr_from_sockaddr(&peer, (const struct sockaddr *)ss, len) ||
	    sock_name(fd, false, &local)) {
		rst_close(fd);
		return;
	}
	if (ins->cfg->proxy_protocol) {
		ins_proxy_start(ins, ls->id, fd, &peer, &local);
		return;
	}
	ins_sock_admit(ins, ls->id, fd, &peer, &local, false);
}

/**
 * ins_sock_accept() - a listener is readable: accept a bounded batch
 * @ls: the listener
 *
 * Out of descriptors: the listener is parked and retried by a timer rather
 * than spinning on a level-triggered watcher.
 */
void ins_sock_accept(struct ins_sock *ls)
{
	struct sockaddr_storage ss;
	socklen_t len;
	int i, fd;

	for (i = 0; i < ACCEPT_BUDGET; i++) {
		len = sizeof(ss);
		fd = accept4(ls->fd, (struct sockaddr *)&ss, &len, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd < 0) {
			if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS ||
			    errno == ENOMEM) {
				mw_log_ratelimited(MW_LOG_WARN, "accept on %#llx: %s; retrying",
						   (unsigned long long)ls->id, strerror(errno));
				ins_io_park(ls);
			}
			return;
		}
		sock_accepted(ls, fd, &ss, len);
	}
}
