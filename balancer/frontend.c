/* SPDX-License-Identifier: MIT */
/* frontend.c - mw-balancer's L4 front end: accept, pick an INS, splice bytes both ways */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "balancer/bal.h"
#include "balancer/srclimit.h"
#include "common/addr.h"
#include "common/log.h"
#include "common/proxy2.h"

/*
 * Theory of operation
 *
 * Each cfg.listen "ip:port" is a listening socket in the balancer's own
 * namespace.  An accepted client gets an INS from the policy (bal_pick: READY
 * INS under the per-INS limit) and a non-blocking connect to INS_addr:port,
 * bounded by connect_timeout_ms.  A refused or timed-out connect marks that
 * INS as tried and goes to the next one (up to MAX_TRIES): an INS that just
 * died, or whose listener is not there yet, costs the client nothing.  With
 * no INS left, the client is closed.
 *
 * Connected: when the INS was spawned with ins.proxy_protocol on (read from
 * the file at its spawn, as mw-ins reads it, so both ends agree even after
 * the file changed), a PROXY v2 header with the client and the address it
 * reached goes first, so the app's getpeername() is the client.
 * Then two directions, each src -> pipe -> dst with splice(2): the pipe is
 * refilled only once empty, so "pipe has bytes" means "wait for dst
 * writable" and "pipe empty" means "wait for src readable", never both.  EOF
 * from src, once its pipe is drained, becomes shutdown(dst, SHUT_WR) (half
 * close); the connection ends when both directions are shut, or at once on
 * an error.  idle_timeout_ms closes a connection with no bytes either way.
 * A leg left without a watcher (its peer's bytes wait for the other side,
 * which takes nothing) is polled for an error every WATCH_CHECK_S, so a
 * client that resets while the INS does not read (or the reverse) ends its
 * connection then, not after idle_timeout_ms.
 *
 * EMFILE/ENFILE (and ENOBUFS/ENOMEM) on accept: the listeners stop for
 * ACCEPT_PAUSE_S and resume, instead of spinning on a readable listener.
 * At balancer.max_conns connections a new client is closed at once (reason
 * "limit"), so the balancer's fds and pipes stay bounded; and one address
 * holding balancer.max_conns_per_source has its next closed (reason
 * "limit_source", srclimit.c), so one source cannot take them all.  Both legs get
 * TCP keepalive (balancer.keepalive_ms; the client leg inherits it from the
 * listener), so a peer that vanished without a FIN or RST ends its
 * connection even where idle_timeout_ms is 0.
 *
 * Every failure is counted under its reason (enum bal_reason, reason.c).
 */

#define MAX_TRIES	  8
#define ACCEPT_BATCH	  64
#define PUMP_ROUNDS	  16
#define SPLICE_CHUNK	  (1 << 16)
#define ACCEPT_PAUSE_S	  0.1
#define PIPE_POOL	  64 /* empty pipes kept for the next connections */
#define KEEPALIVE_INTVL_S 10 /* between two keepalive probes */
#define KEEPALIVE_CNT	  6  /* unanswered probes that end the connection */
#define WATCH_CHECK_S	  1.0 /* a leg without a watcher is polled for an error this often */

struct fe_listener {
	struct bal_fe *fe;
	int fd;
	uint16_t port;
	ev_io io;
	char text[MW_ADDR_TEXT_MAX];
};

struct fe_dir {
	int pipe[2];
	size_t inpipe;
	bool eof;  /* src said EOF */
	bool shut; /* dst got SHUT_WR */
};

struct fe_conn {
	struct fe_conn *prev, *next;
	struct bal_fe *fe;
	int cfd, bfd;
	ev_io cio, bio;
	ev_timer timer; /* connect timeout, then idle timeout and the unwatched check */
	ev_tstamp last;
	bool connected;
	bool unwatched; /* a leg has no watcher (conn_update): idle_cb polls it */
	struct bal_ins *ins;
	uint16_t port;
	struct sockaddr_storage peer, local;
	int tried[MAX_TRIES];
	int ntried;
	struct fe_dir up, down; /* client->INS, INS->client */
	uint8_t hdr[MW_PROXY2_V6_LEN];
	size_t hdrlen, hdroff;
	uint8_t src[BAL_SRC_KEY]; /* its client address in fe->src */
};

struct bal_fe {
	struct bal *b;
	struct fe_listener ls[MW_LISTEN_MAX];
	int nls;
	ev_timer pause;
	struct fe_conn *conns;
	unsigned nconns;
	struct mw_ratelimit rl;
	int pool[PIPE_POOL][2]; /* empty pipes, [0] read end, [1] write end */
	int npool;
	struct bal_srclimit src; /* connections per client address */
};

static void conn_update(struct fe_conn *c);

unsigned bal_fe_conns(const struct bal_fe *fe)
{
	return fe ? fe->nconns : 0;
}

/**
 * bal_fe_accept_paused() - are the listeners paused (out of fds or memory)?
 * @fe: the front end (NULL: no)
 *
 * Return: true while the ACCEPT_PAUSE_S pause runs
 */
bool bal_fe_accept_paused(const struct bal_fe *fe)
{
	return fe && ev_is_active(&fe->pause);
}

static void close_fd(int *fd)
{
	if (*fd >= 0)
		close(*fd);
	*fd = -1;
}

/*
 * Pipes are reused: creating and freeing two per connection was a fifth of
 * what a short connection cost the balancer in system calls.  A pipe goes
 * back to the pool only when d->inpipe says it is empty (every byte spliced
 * in was spliced out: the count is exact, splice() reports what it moved), so
 * no byte of one connection can reach another; any other pipe is closed.
 */
static int pipe_get(struct bal_fe *fe, struct fe_dir *d)
{
	if (fe->npool) {
		fe->npool--;
		d->pipe[0] = fe->pool[fe->npool][0];
		d->pipe[1] = fe->pool[fe->npool][1];
		return 0;
	}
	return pipe2(d->pipe, O_NONBLOCK | O_CLOEXEC) ? -errno : 0;
}

static void pipe_put(struct bal_fe *fe, struct fe_dir *d)
{
	if (d->pipe[0] >= 0 && !d->inpipe && fe->npool < PIPE_POOL && !ev_is_active(&fe->pause)) {
		fe->pool[fe->npool][0] = d->pipe[0];
		fe->pool[fe->npool][1] = d->pipe[1];
		fe->npool++;
		d->pipe[0] = d->pipe[1] = -1;
		return;
	}
	close_fd(&d->pipe[0]);
	close_fd(&d->pipe[1]);
}

/*
 * Close every pooled pipe: out of fds (accept or socket() failed; nothing is
 * pooled while the listeners pause for it), or the front end closes.
 */
static void pipe_pool_drain(struct bal_fe *fe)
{
	while (fe->npool) {
		fe->npool--;
		close(fe->pool[fe->npool][0]);
		close(fe->pool[fe->npool][1]);
	}
}

static void conn_free(struct fe_conn *c)
{
	struct bal_fe *fe = c->fe;
	struct ev_loop *loop = fe->b->loop;

	ev_io_stop(loop, &c->cio);
	ev_io_stop(loop, &c->bio);
	ev_timer_stop(loop, &c->timer);
	close_fd(&c->cfd);
	close_fd(&c->bfd);
	pipe_put(fe, &c->up);
	pipe_put(fe, &c->down);
	if (c->ins)
		bal_ins_conn_done(c->ins);
	bal_srclimit_put(&fe->src, c->src);
	if (c->prev)
		c->prev->next = c->next;
	else
		fe->conns = c->next;
	if (c->next)
		c->next->prev = c->prev;
	fe->nconns--;
	free(c);
}

/* A connection ends on a failure: counted under @r, then freed. */
static void conn_fail(struct fe_conn *c, enum bal_reason r)
{
	bal_count(c->fe->b, r);
	conn_free(c);
}

/*
 * TCP keepalive on one leg (or a listener, for the legs it accepts): first
 * probe after @ms of silence (rounded up to seconds), then every
 * KEEPALIVE_INTVL_S, KEEPALIVE_CNT unanswered end it; @ms 0 turns it off.
 * Return: 0 or -errno
 */
static int set_keepalive(int fd, int ms)
{
	int on = !!ms, idle = (ms + 999) / 1000, intvl = KEEPALIVE_INTVL_S, cnt = KEEPALIVE_CNT;

	if (setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &on, sizeof(on)))
		return -errno;
	if (!ms)
		return 0;
	if (setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &idle, sizeof(idle)) ||
	    setsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &intvl, sizeof(intvl)) ||
	    setsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, &cnt, sizeof(cnt)))
		return -errno;
	return 0;
}

/*
 * Move what can move in one direction.  A splice from src that came back
 * short took all src had: once it is out of the pipe, the pump stops instead
 * of asking again for an EAGAIN (the watchers are level-triggered: more bytes,
 * or the EOF, make src readable again).  That is one system call less per
 * message each way, most of what a short request or response costs here.
 * Return: 0, or -errno (connection over).
 */
static int pump(struct fe_conn *c, struct fe_dir *d, int src, int dst, uint64_t *bytes)
{
	bool drained = false;
	ssize_t n;
	int r;

	for (r = 0; r < PUMP_ROUNDS; r++) {
		if (d->inpipe) {
			n = splice(d->pipe[0], NULL, dst, NULL, d->inpipe,
				   SPLICE_F_NONBLOCK | SPLICE_F_MOVE);
			if (n < 0)
				return errno == EAGAIN ? 0 : -errno;
			d->inpipe -= (size_t)n;
			*bytes += (uint64_t)n;
			c->last = ev_now(c->fe->b->loop);
			if (d->inpipe)
				return 0;
		}
		if (d->eof) {
			if (!d->shut) {
				shutdown(dst, SHUT_WR);
				d->shut = true;
			}
			return 0;
		}
		if (drained)
			return 0;
		n = splice(src, NULL, d->pipe[1], NULL, SPLICE_CHUNK,
			   SPLICE_F_NONBLOCK | SPLICE_F_MOVE);
		if (n < 0)
			return errno == EAGAIN ? 0 : -errno;
		if (n == 0)
			d->eof = true;
		drained = n > 0 && n < SPLICE_CHUNK;
		d->inpipe = (size_t)n;
		c->last = ev_now(c->fe->b->loop);
	}
	/*
	 * An EOF met in the last round, its pipe empty: shut dst now, for no
	 * watcher is left that would bring this direction back (src is at EOF,
	 * the pipe has nothing for dst) and the connection would never end.
	 */
	if (d->eof && !d->inpipe && !d->shut) {
		shutdown(dst, SHUT_WR);
		d->shut = true;
	}
	return 0;
}

/* Which directions a readiness can move (conn_pump's @dirs). */
#define DIR_UP	 1 /* client -> INS (and the PROXY header) */
#define DIR_DOWN 2 /* INS -> client */
#define DIR_BOTH (DIR_UP | DIR_DOWN)

/*
 * Pump the directions in @dirs: a readable client or a writable INS can only
 * move bytes up, the other two only down; asking the other direction too
 * would cost a splice that finds nothing (EAGAIN) on every message.
 */
static void conn_pump(struct fe_conn *c, int dirs)
{
	ssize_t n;
	int ret;

	if (c->hdroff < c->hdrlen) {
		n = send(c->bfd, c->hdr + c->hdroff, c->hdrlen - c->hdroff, MSG_NOSIGNAL);
		if (n < 0 && errno != EAGAIN) {
			mw_debug("PROXY header to INS %d: %s", c->ins->h.id, strerror(errno));
			conn_fail(c, BAL_R_IO_ERROR);
			return;
		}
		if (n > 0)
			c->hdroff += (size_t)n;
	}
	ret = 0;
	if ((dirs & DIR_UP) && c->hdroff == c->hdrlen)
		ret = pump(c, &c->up, c->cfd, c->bfd, &c->ins->rx);
	if (!ret && (dirs & DIR_DOWN))
		ret = pump(c, &c->down, c->bfd, c->cfd, &c->ins->tx);
	if (ret) {
		mw_debug("connection to INS %d ended: %s", c->ins->h.id, strerror(-ret));
		conn_fail(c, BAL_R_IO_ERROR);
		return;
	}
	if (c->up.shut && c->down.shut) {
		conn_free(c);
		return;
	}
	conn_update(c);
}

static void set_io(struct ev_loop *loop, ev_io *w, int fd, int events)
{
	if (w->events == events && ev_is_active(w))
		return;
	ev_io_stop(loop, w);
	if (!events)
		return;
	ev_io_set(w, fd, events);
	ev_io_start(loop, w);
}

static void conn_update(struct fe_conn *c)
{
	struct ev_loop *loop = c->fe->b->loop;
	int ce = 0, be = 0;

	if (c->hdroff < c->hdrlen) {
		be |= EV_WRITE;
	} else {
		if (c->up.inpipe)
			be |= EV_WRITE;
		else if (!c->up.eof)
			ce |= EV_READ;
	}
	if (c->down.inpipe)
		ce |= EV_WRITE;
	else if (!c->down.eof)
		be |= EV_READ;
	set_io(loop, &c->cio, c->cfd, ce);
	set_io(loop, &c->bio, c->bfd, be);
	/*
	 * A leg nobody watches would not show its peer's reset until the other
	 * side moves: have idle_cb poll it within WATCH_CHECK_S.
	 */
	if ((!ce || !be) && !c->unwatched) {
		c->timer.repeat = WATCH_CHECK_S;
		ev_timer_again(loop, &c->timer);
	}
	c->unwatched = !ce || !be;
}

/*
 * Has a leg a pending error (a reset, a keepalive timeout) that ends the
 * connection now?  The client's: yes.  The INS's: only once its last bytes are
 * no longer on their way, for a reset INS socket still holds what it received
 * before the reset, readable, and the down pipe may hold more: a client that
 * takes them (anything within @quiet < WATCH_CHECK_S) gets all of them first,
 * then the reset when the pump reads the socket dry.
 */
static bool leg_error(const struct fe_conn *c, ev_tstamp quiet)
{
	struct pollfd p[2] = { { .fd = c->cfd }, { .fd = c->bfd } };

	if (poll(p, 2, 0) <= 0)
		return false;
	if (p[0].revents & POLLERR)
		return true;
	return (p[1].revents & POLLERR) && (!c->down.inpipe || quiet >= WATCH_CHECK_S);
}

static void io_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	struct fe_conn *c = w->data;
	int dirs = 0;

	if (revents & EV_READ)
		dirs |= w == &c->cio ? DIR_UP : DIR_DOWN;
	if (revents & EV_WRITE)
		dirs |= w == &c->cio ? DIR_DOWN : DIR_UP;
	conn_pump(c, dirs);
}

static void connect_next(struct fe_conn *c);
static void connected(struct fe_conn *c);

/* Has the non-blocking connect on @fd completed (a peer, no pending error)? */
static bool connect_done(int fd)
{
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	int soerr = 0;
	socklen_t el = sizeof(soerr);

	return !getpeername(fd, (struct sockaddr *)&ss, &sl) &&
	       !getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &el) && !soerr;
}

static void idle_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct fe_conn *c = w->data;
	double idle = c->fe->b->cfg->balancer.idle_timeout_ms / 1000.0;
	ev_tstamp quiet = ev_now(loop) - c->last;

	if (!c->connected && connect_done(c->bfd)) {
		/* The loop was held up past the deadline; the connect made it. */
		ev_set_cb(&c->bio, io_cb);
		connected(c);
		return;
	}
	if (!c->connected) {
		/* connect timeout */
		c->ins->failed++;
		bal_count(c->fe->b, BAL_R_CONNECT_TIMEOUT);
		mw_info("connect to INS %d timed out; trying another", c->ins->h.id);
		ev_io_stop(loop, &c->bio);
		close_fd(&c->bfd);
		bal_ins_conn_done(c->ins);
		c->ins = NULL;
		connect_next(c);
		return;
	}
	if (c->unwatched && leg_error(c, quiet)) {
		mw_debug("connection to INS %d: a leg without a watcher failed", c->ins->h.id);
		conn_fail(c, BAL_R_IO_ERROR);
		return;
	}
	if (idle > 0 && quiet >= idle) {
		mw_debug("connection to INS %d idle for %.1f s: closed", c->ins->h.id, quiet);
		conn_fail(c, BAL_R_IDLE_TIMEOUT);
		return;
	}
	w->repeat = idle > 0 ? idle - quiet : 0;
	if (c->unwatched && (!w->repeat || w->repeat > WATCH_CHECK_S))
		w->repeat = WATCH_CHECK_S;
	ev_timer_again(loop, w); /* repeat 0: stopped */
}

static void connected(struct fe_conn *c)
{
	struct ev_loop *loop = c->fe->b->loop;
	const struct mw_config *cfg = c->fe->b->cfg;
	int ret;

	ev_timer_stop(loop, &c->timer);
	c->connected = true;
	c->ins->total++;
	c->last = ev_now(loop);
	if (pipe_get(c->fe, &c->up) || pipe_get(c->fe, &c->down)) {
		if (mw_ratelimit_ok(&c->fe->rl, 5, 1000))
			mw_warn("front end: no pipes for a connection: %s", strerror(errno));
		conn_fail(c, BAL_R_RESOURCE);
		return;
	}
	ret = set_keepalive(c->bfd, cfg->balancer.keepalive_ms);
	if (ret && mw_ratelimit_ok(&c->fe->rl, 5, 1000))
		mw_warn("front end: keepalive on the INS leg: %s", strerror(-ret));
	if (c->ins->proxy_protocol) {
		ret = mw_proxy2_encode(c->hdr, sizeof(c->hdr), &c->peer, &c->local);
		if (ret < 0) {
			mw_warn("front end: PROXY header: %s", strerror(-ret));
			conn_fail(c, BAL_R_RESOURCE);
			return;
		}
		c->hdrlen = (size_t)ret;
	}
	ev_timer_init(&c->timer, idle_cb, 0, cfg->balancer.idle_timeout_ms / 1000.0);
	c->timer.data = c;
	ev_timer_again(loop, &c->timer); /* idle_timeout_ms 0: stays stopped */
	ev_io_stop(loop, &c->bio);
	c->bio.events = 0;
	conn_pump(c, DIR_BOTH);
}

static void connect_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	struct fe_conn *c = w->data;
	int soerr = 0;
	socklen_t sl = sizeof(soerr);

	if (getsockopt(c->bfd, SOL_SOCKET, SO_ERROR, &soerr, &sl) || soerr) {
		c->ins->failed++;
		bal_count(c->fe->b,
			  soerr == ECONNREFUSED ? BAL_R_CONNECT_REFUSED : BAL_R_CONNECT_ERROR);
		mw_info("connect to INS %d: %s; trying another", c->ins->h.id,
			strerror(soerr ? soerr : errno));
		ev_io_stop(loop, &c->bio);
		ev_timer_stop(loop, &c->timer);
		close_fd(&c->bfd);
		bal_ins_conn_done(c->ins);
		c->ins = NULL;
		connect_next(c);
		return;
	}
	ev_set_cb(&c->bio, io_cb);
	connected(c);
}

static void connect_next(struct fe_conn *c)
{
	struct bal_fe *fe = c->fe;
	struct ev_loop *loop = fe->b->loop;
	struct sockaddr_in sin = { .sin_family = AF_INET };
	const void *key = NULL;
	size_t klen = 0;
	struct bal_ins *i;

	if (c->peer.ss_family == AF_INET) {
		key = &((struct sockaddr_in *)&c->peer)->sin_addr;
		klen = 4;
	} else if (c->peer.ss_family == AF_INET6) {
		key = &((struct sockaddr_in6 *)&c->peer)->sin6_addr;
		klen = 16;
	}
	i = c->ntried < MAX_TRIES ? bal_pick(fe->b, key, klen, c->tried, c->ntried) : NULL;
	if (!i) {
		if (mw_ratelimit_ok(&fe->rl, 5, 1000))
			mw_warn("front end: %s on port %u (%d tried)",
				bal_reason_text(BAL_R_NO_INS), c->port, c->ntried);
		conn_fail(c, BAL_R_NO_INS);
		return;
	}
	c->tried[c->ntried++] = i->h.id;
	c->ins = i;
	i->conns++;
	c->bfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (c->bfd < 0 && (errno == EMFILE || errno == ENFILE) && fe->npool) {
		pipe_pool_drain(fe); /* pooled pipes give way to a connection */
		c->bfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	}
	if (c->bfd < 0) {
		if (mw_ratelimit_ok(&fe->rl, 5, 1000))
			mw_warn("front end: socket: %s", strerror(errno));
		conn_fail(c, BAL_R_RESOURCE);
		return;
	}
	sin.sin_addr = i->h.addr;
	sin.sin_port = htons(c->port);
	if (connect(c->bfd, (struct sockaddr *)&sin, sizeof(sin)) && errno != EINPROGRESS) {
		i->failed++;
		bal_count(fe->b,
			  errno == ECONNREFUSED ? BAL_R_CONNECT_REFUSED : BAL_R_CONNECT_ERROR);
		close_fd(&c->bfd);
		bal_ins_conn_done(i);
		c->ins = NULL;
		connect_next(c);
		return;
	}
	ev_io_init(&c->bio, connect_cb, c->bfd, EV_WRITE);
	c->bio.data = c;
	ev_io_start(loop, &c->bio);
	ev_timer_init(&c->timer, idle_cb, fe->b->cfg->balancer.connect_timeout_ms / 1000.0, 0);
	c->timer.data = c;
	ev_timer_start(loop, &c->timer);
}

static void pause_listeners(struct bal_fe *fe, bool pause)
{
	int k;

	for (k = 0; k < fe->nls; k++) {
		if (pause)
			ev_io_stop(fe->b->loop, &fe->ls[k].io);
		else
			ev_io_start(fe->b->loop, &fe->ls[k].io);
	}
}

static void pause_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	pause_listeners(w->data, false);
}

static void accept_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	struct fe_listener *l = w->data;
	struct bal_fe *fe = l->fe;
	unsigned per_src = (unsigned)fe->b->cfg->balancer.max_conns_per_source;
	struct sockaddr_storage peer;
	uint8_t src[BAL_SRC_KEY];
	struct fe_conn *c;
	socklen_t sl, pl;
	int fd, k, ret;

	for (k = 0; k < ACCEPT_BATCH; k++) {
		pl = sizeof(peer);
		fd = accept4(l->fd, (struct sockaddr *)&peer, &pl, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd < 0) {
			if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS ||
			    errno == ENOMEM) {
				pipe_pool_drain(fe);
				bal_count(fe->b, BAL_R_ACCEPT_PAUSED);
				if (mw_ratelimit_ok(&fe->rl, 5, 1000))
					mw_warn("front end: accept: %s; pausing %.0f ms",
						strerror(errno), ACCEPT_PAUSE_S * 1000);
				pause_listeners(fe, true);
				ev_timer_set(&fe->pause, ACCEPT_PAUSE_S, 0);
				ev_timer_start(loop, &fe->pause);
			}
			return;
		}
		if (fe->nconns >= (unsigned)fe->b->cfg->balancer.max_conns) {
			bal_count(fe->b, BAL_R_LIMIT);
			if (mw_ratelimit_ok(&fe->rl, 5, 1000))
				mw_warn("front end: %u connections, balancer.max_conns: client "
					"closed",
					fe->nconns);
			close(fd);
			continue;
		}
		bal_srclimit_key(&peer, src);
		ret = bal_srclimit_take(&fe->src, src, per_src);
		if (ret == -EUSERS) {
			bal_count(fe->b, BAL_R_LIMIT_SOURCE);
			if (mw_ratelimit_ok(&fe->rl, 5, 1000))
				mw_warn("front end: a client address holds %u connections, "
					"balancer.max_conns_per_source: client closed",
					per_src);
			close(fd);
			continue;
		}
		c = ret ? NULL : calloc(1, sizeof(*c));
		if (!c) {
			if (!ret)
				bal_srclimit_put(&fe->src, src);
			bal_count(fe->b, BAL_R_RESOURCE);
			close(fd);
			return;
		}
		memcpy(c->src, src, sizeof(src));
		c->fe = fe;
		c->cfd = fd;
		c->bfd = -1;
		c->up.pipe[0] = c->up.pipe[1] = c->down.pipe[0] = c->down.pipe[1] = -1;
		c->port = l->port;
		c->peer = peer;
		sl = sizeof(c->local);
		getsockname(fd, (struct sockaddr *)&c->local, &sl);
		ev_io_init(&c->cio, io_cb, fd, EV_READ);
		c->cio.data = c;
		c->cio.events = 0;
		ev_io_init(&c->bio, io_cb, -1, EV_READ);
		c->bio.data = c;
		c->next = fe->conns;
		if (fe->conns)
			fe->conns->prev = c;
		fe->conns = c;
		fe->nconns++;
		connect_next(c);
	}
}

/*
 * TCP keepalive on the client leg: set on the listeners, which every accepted
 * socket inherits (the keepalive timer is armed at accept), instead of four
 * setsockopt() per client.  Called at open and on reload, so a new
 * keepalive_ms applies to clients whose handshake completes from then on
 * (one already in the accept queue has the old one).  Return: 0 or -errno
 */
static int fe_keepalive(struct bal_fe *fe)
{
	int k, ret;

	for (k = 0; k < fe->nls; k++) {
		ret = set_keepalive(fe->ls[k].fd, fe->b->cfg->balancer.keepalive_ms);
		if (ret)
			return ret;
	}
	return 0;
}

/**
 * bal_fe_reload() - apply a reloaded balancer.keepalive_ms to the listeners
 * @fe: the front end (NULL: nothing to do)
 */
void bal_fe_reload(struct bal_fe *fe)
{
	int ret;

	if (fe && (ret = fe_keepalive(fe)))
		mw_warn("front end: keepalive on the listeners: %s", strerror(-ret));
}

int bal_fe_open(struct bal *b, struct bal_fe **out, char *err, size_t errlen)
{
	const struct mw_balancer_config *bc = &b->cfg->balancer;
	struct bal_fe *fe;
	struct sockaddr_storage ss;
	struct mw_addr a;
	socklen_t sl;
	int k, one = 1, ret = 0;

	fe = calloc(1, sizeof(*fe));
	if (!fe) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	fe->b = b;
	ev_timer_init(&fe->pause, pause_cb, ACCEPT_PAUSE_S, 0);
	fe->pause.data = fe;
	ret = bal_srclimit_init(&fe->src);
	if (ret) {
		snprintf(err, errlen, "front end: the table of client addresses: %s",
			 strerror(-ret));
		free(fe);
		return ret;
	}
	for (k = 0; k < bc->listen_count; k++) {
		struct fe_listener *l = &fe->ls[k];

		l->fe = fe;
		snprintf(l->text, sizeof(l->text), "%s", bc->listen[k]);
		if (mw_addr_parse(&a, bc->listen[k]) || mw_addr_to_sockaddr(&a, &ss, &sl)) {
			snprintf(err, errlen, "balancer.listen %s: not an address", bc->listen[k]);
			ret = -EINVAL;
			goto fail;
		}
		l->port = a.port;
		l->fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
		if (l->fd < 0 || setsockopt(l->fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) ||
		    bind(l->fd, (struct sockaddr *)&ss, sl) || listen(l->fd, 4096)) {
			ret = -errno;
			snprintf(err, errlen, "front end: cannot listen on %s: %s", bc->listen[k],
				 strerror(errno));
			if (l->fd >= 0)
				close(l->fd);
			goto fail;
		}
		fe->nls++;
		ev_io_init(&l->io, accept_cb, l->fd, EV_READ);
		l->io.data = l;
		ev_io_start(b->loop, &l->io);
	}
	ret = fe_keepalive(fe);
	if (ret) {
		snprintf(err, errlen, "front end: keepalive on the listeners: %s", strerror(-ret));
		goto fail;
	}
	*out = fe;
	return 0;
fail:
	bal_fe_close(fe);
	return ret;
}

void bal_fe_close(struct bal_fe *fe)
{
	struct fe_conn *c, *next;
	int k;

	if (!fe)
		return;
	for (c = fe->conns; c; c = next) {
		next = c->next;
		conn_free(c);
	}
	pipe_pool_drain(fe);
	ev_timer_stop(fe->b->loop, &fe->pause);
	for (k = 0; k < fe->nls; k++) {
		ev_io_stop(fe->b->loop, &fe->ls[k].io);
		close(fe->ls[k].fd);
	}
	bal_srclimit_free(&fe->src);
	free(fe);
}
