/* SPDX-License-Identifier: MIT */
/* pvm_appsock.c - the app's AF_UNIX sockets: made and named here, watched until their app is gone
 */
#include <errno.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "common/log.h"
#include "common/norights.h"
#include "common/sockname.h"
#include "common/cidr.h"
#include "pvm/pvm.h"

/*
 * Theory of operation (docs/pvm.md, "Socket identity" and "Liveness")
 *
 * Identity: at SOCKET mw-pvm creates the app's AF_UNIX stream socket, binds
 * it to 'S' {tag, id, nonce} with a random nonce, records its inode and
 * passes it to the app in the answer.  Nobody can bind a socket's name first
 * (it is unknown until it is taken), so no one can make socket() fail or sit
 * on a future listener's name.
 *
 * Liveness: an app socket without a data connection (new, bound, listening,
 * or connecting before the shim connected it to us) is watched on a list.
 * Its name is free exactly when no process holds an fd of it any more, which
 * mw-pvm tests by binding the name itself.  A gone socket is released (closed
 * on its INS, with its replicas).  The sockets a process made are checked at
 * once when one of its control connections closes (exit, kill, crash, exec);
 * the whole list is swept a bounded number of entries per tick every
 * pvm.liveness_interval_ms (dup2 over a socket, a copy in another process
 * that ended); and the sockets bound to a port are checked before that port
 * is bound again.
 */

#define APPSOCK_NAME_TRIES   4
#define LIVE_VISITS_PER_TICK 4096 /* list entries looked at per tick */
#define LIVE_CHECKS_PER_TICK 256  /* name checks (socket + bind + close) per tick */
/* A process's control connection closes before its other fds (they close in
 * fd order at exit): its sockets that still looked alive are checked again. */
#define LIVE_RECHECK_S 0.05
/*
 * Kicks come from anyone: any local user may connect to the control socket
 * and close it as fast as it likes, after making up to its quota of sockets.
 * So the work kicks cause is bounded per LIVE_RECHECK_S, not per kick: at
 * most LIVE_CHECKS_PER_KICK name checks at once for one kick, all kicks
 * together at most LIVE_VISITS_PER_TICK list entries and LIVE_CHECKS_PER_TICK
 * checks until the recheck, which shares LIVE_CHECKS_PER_TICK among the
 * pending processes (at least LIVE_RECHECK_MIN_SHARE each).  What is left is
 * the sweep's.
 */
#define LIVE_CHECKS_PER_KICK  64
#define PORT_CHECKS_PER_BIND   64 /* pvm_appsock_check_port() */
#define LIVE_RECHECK_MIN_SHARE 4
_Static_assert(PVM_LIVE_RECHECK_PIDS * LIVE_RECHECK_MIN_SHARE <= LIVE_CHECKS_PER_TICK,
	       "the recheck's shares exceed its budget");

/*
 * Nonces come from a pool refilled by one getrandom() per PVM_NONCE_POOL
 * values: one per accepted connection was a system call (1.3 µs here) in
 * every connection's hand-over.  Each value is wiped from the pool as it
 * is handed out.  256 bytes: getrandom() never returns fewer, even on a
 * signal.  The loop's thread only.
 */
#define PVM_NONCE_POOL 32
_Static_assert(PVM_NONCE_POOL * sizeof(uint64_t) <= 256, "getrandom() may return less");

/**
 * pvm_nonce() - a random 64-bit value nobody can predict
 * @out: filled
 * Return: 0 or -errno
 */
int pvm_nonce(uint64_t *out)
{
	static uint64_t pool[PVM_NONCE_POOL];
	static unsigned left;
	ssize_t n;

	if (!left) {
		do
			n = getrandom(pool, sizeof(pool), 0);
		while (n < 0 && errno == EINTR);
		if (n != (ssize_t)sizeof(pool))
			return n < 0 ? -errno : -EIO;
		left = PVM_NONCE_POOL;
	}
	left--;
	*out = pool[left];
	explicit_bzero(&pool[left], sizeof(pool[left]));
	return 0;
}

static void appsock_name(const struct pvm_sock *s, struct mw_sockname *n)
{
	memset(n, 0, sizeof(*n));
	n->kind = MW_SOCKNAME_SOCKET;
	n->tag = s->pvm->tag;
	n->id = s->id;
	n->nonce = s->nonce;
}

/**
 * pvm_appsock_create() - make the app's AF_UNIX socket for @s and name it
 * @s: a new APP socket
 *
 * The fd (s->app_fd) is held until the SOCKET answer passes it to the app.
 * Return: 0 or -errno
 */
int pvm_appsock_create(struct pvm_sock *s)
{
	struct sockaddr_un sun;
	struct mw_sockname n;
	struct stat st;
	socklen_t len;
	int fd, i, ret = -EADDRINUSE;

	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	/*
	 * By default nobody passes an fd into it, nor into its pending connections
	 * if it listens (they inherit this; TCP carries no fds).  The app holds it
	 * and may turn that back on: mw-pvm relies on nothing of it (pvm_shim.c
	 * closes every passed fd off the loop).
	 */
	(void)mw_refuse_rights(fd);
	/* A taken name means a 2^-64 collision: draw again. */
	for (i = 0; i < APPSOCK_NAME_TRIES && ret == -EADDRINUSE; i++) {
		ret = pvm_nonce(&s->nonce);
		if (ret)
			break;
		appsock_name(s, &n);
		len = mw_sockname_encode(&n, &sun);
		ret = bind(fd, (struct sockaddr *)&sun, len) ? -errno : 0;
	}
	if (!ret && fstat(fd, &st))
		ret = -errno;
	if (ret) {
		close(fd);
		return ret;
	}
	s->app_dev = st.st_dev;
	s->app_ino = st.st_ino;
	s->app_fd = fd;
	return 0;
}

/**
 * pvm_appsock_gone() - is no fd of @s's AF_UNIX socket left anywhere?
 * @s: an APP socket
 *
 * True when mw-pvm can bind its name; the probe is released at once.
 * Return: true if the socket is gone
 */
bool pvm_appsock_gone(const struct pvm_sock *s)
{
	struct sockaddr_un sun;
	struct mw_sockname n;
	socklen_t len;
	bool gone;
	int fd;

	if (s->kind != PVM_SOCK_APP || s->app_fd >= 0)
		return false;
	appsock_name(s, &n);
	len = mw_sockname_encode(&n, &sun);
	s->pvm->lv_checks++;
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		mw_log_ratelimited(MW_LOG_WARN, "liveness check of %#llx: %s",
				   (unsigned long long)s->id, strerror(errno));
		return false;
	}
	gone = !bind(fd, (struct sockaddr *)&sun, len);
	close(fd);
	return gone;
}

/**
 * pvm_appsock_watch() - put an APP socket on the liveness list
 * @s: the socket
 */
void pvm_appsock_watch(struct pvm_sock *s)
{
	struct pvm *p = s->pvm;

	if (s->lv_linked)
		return;
	s->lv_prev = NULL;
	s->lv_next = p->lv_head;
	if (p->lv_head)
		p->lv_head->lv_prev = s;
	p->lv_head = s;
	s->lv_linked = true;
	p->lv_count++;
}

/**
 * pvm_appsock_unwatch() - take @s off the liveness list (connected, or freed)
 * @s: the socket
 */
void pvm_appsock_unwatch(struct pvm_sock *s)
{
	struct pvm *p = s->pvm;

	if (!s->lv_linked)
		return;
	if (p->lv_cursor == s)
		p->lv_cursor = s->lv_next;
	if (s->lv_prev)
		s->lv_prev->lv_next = s->lv_next;
	else
		p->lv_head = s->lv_next;
	if (s->lv_next)
		s->lv_next->lv_prev = s->lv_prev;
	s->lv_next = s->lv_prev = NULL;
	s->lv_linked = false;
	p->lv_count--;
}

/* Is @s a socket whose app end alone keeps it (no data connection to us)? */
static bool appsock_candidate(const struct pvm_sock *s)
{
	return s->kind == PVM_SOCK_APP && s->state != PVM_ST_CLOSING && s->fd < 0 &&
	       s->app_fd < 0 && !s->waiter;
}

/**
 * pvm_appsock_check() - release @s (and its replicas) if its app end is gone
 * @s:   an APP socket
 * @why: for the log line
 * Return: true if it was released (it may have been freed)
 */
bool pvm_appsock_check(struct pvm_sock *s, const char *why)
{
	struct pvm *p = s->pvm;
	bool listening = s->state == PVM_ST_LISTENING;
	uint64_t id = s->id;

	if (!appsock_candidate(s) || !pvm_appsock_gone(s))
		return false;
	p->released_total++;
	if (listening)
		mw_info("listener %#llx (pid %d, uid %u, port %u): app gone (%s), released",
			(unsigned long long)id, (int)s->owner_pid, (unsigned)s->owner_uid,
			(unsigned)s->bound.port, why);
	else
		mw_debug("socket %#llx: app gone (%s), released", (unsigned long long)id, why);
	pvm_appsock_unwatch(s);
	pvm_sock_close_listener(s);
	return true;
}

/**
 * pvm_appsock_check_port() - before binding @port: release gone sockets bound to it
 * @p:    the daemon
 * @self: the socket about to bind (skipped)
 * @port: the port
 *
 * So a restarted app binds at once instead of meeting its dead self's
 * listener (EADDRINUSE).  The OP_CLOSE frames precede the OP_BIND in each
 * INS's ring.  At most PORT_CHECKS_PER_BIND name checks per BIND, listeners first
 * (a dead listener is what refuses the bind): a local user holding thousands of
 * sockets bound to one port (SO_REUSEADDR) must not make every bind cost
 * thousands of checks in the loop; whatever is left is the sweep's.
 */
void pvm_appsock_check_port(struct pvm *p, const struct pvm_sock *self, uint16_t port)
{
	uint64_t lis[PORT_CHECKS_PER_BIND], oth[PORT_CHECKS_PER_BIND];
	size_t nl = 0, no = 0, i;
	struct pvm_sock *s;

	if (!port)
		return;
	pvm_closer_drain(p, 2); /* mw-pvm's copy of a socket the app just closed */
	for (s = p->lv_head; s && nl < PORT_CHECKS_PER_BIND; s = s->lv_next) {
		if (s == self || !s->bound.family || s->bound.port != port || !appsock_candidate(s))
			continue;
		if (s->state == PVM_ST_LISTENING)
			lis[nl++] = s->id;
		else if (no < PORT_CHECKS_PER_BIND)
			oth[no++] = s->id;
	}
	/* By id: a release frees the socket. */
	for (i = 0; i < nl + no && i < PORT_CHECKS_PER_BIND; i++) {
		s = pvm_table_get(&p->socks, i < nl ? lis[i] : oth[i - nl]);
		if (s)
			pvm_appsock_check(s, "its port is bound again");
	}
}

/* Is @o, a recorded int option of @s, on? */
static bool sock_opt_on(const struct pvm_sock *s, int level, int name)
{
	const struct pvm_opt *o;
	int v = 0;

	for (o = s->opts; o; o = o->next)
		if (o->level == level && o->name == name && o->len >= sizeof(v)) {
			memcpy(&v, o->val, sizeof(v));
			break;
		}
	return v != 0;
}

/*
 * Can @a0 and @b0 (the same port) be the same address: equal, or one of them any?
 * ::ffff:a.b.c.d is a.b.c.d, as in the kernel.
 */
static bool addr_overlap(const struct mw_addr *a0, const struct mw_addr *b0)
{
	static const uint8_t any[16];
	struct mw_addr a = *a0, b = *b0;
	unsigned len = 0;
	size_t n;

	mw_cidr_unmap(&a, &len);
	mw_cidr_unmap(&b, &len);
	n = a.family == 4 ? 4 : 16;
	if (a.family != b.family) /* a v6 any without IPV6_V6ONLY takes v4 too */
		return !memcmp((a.family == 6 ? &a : &b)->addr, any, 16);
	return !memcmp(a.addr, b.addr, n) || !memcmp(a.addr, any, n) || !memcmp(b.addr, any, n);
}

/**
 * pvm_appsock_reuseport_taken() - would @self share @addr's port with another user's socket?
 * @p:    the daemon
 * @self: an APP socket with SO_REUSEPORT on, about to bind to @addr or to listen there
 * @addr: the address
 *
 * The kernel lets sockets share a port through SO_REUSEPORT only if one uid
 * owns them all, so that no user can draw a share of another's connections.
 * In the INS every socket is the INS's, so the kernel's check passes whoever
 * the app is: mw-pvm keeps the rule by the owner of each app socket (the uid
 * that made it).  A walk over the app sockets without a data connection (as
 * pvm_appsock_check_port()), only for a socket with SO_REUSEPORT on.
 * Return: true if another uid's socket with SO_REUSEPORT is bound there
 */
bool pvm_appsock_reuseport_taken(struct pvm *p, const struct pvm_sock *self,
				 const struct mw_addr *addr)
{
	const struct pvm_sock *s;

	for (s = p->lv_head; s; s = s->lv_next)
		if (s != self && s->kind == PVM_SOCK_APP && s->state != PVM_ST_CLOSING &&
		    s->bound.family && s->bound.port == addr->port &&
		    s->owner_uid != self->owner_uid && addr_overlap(&s->bound, addr) &&
		    sock_opt_on(s, SOL_SOCKET, SO_REUSEPORT))
			return true;
	return false;
}

/**
 * pvm_appsock_reuseport_on() - has @s SO_REUSEPORT on (as recorded from the app's SETOPT)?
 * @s: the socket
 * Return: true if so
 */
bool pvm_appsock_reuseport_on(const struct pvm_sock *s)
{
	return sock_opt_on(s, SOL_SOCKET, SO_REUSEPORT);
}

static void live_arm(struct pvm *p, double after)
{
	ev_timer_stop(p->loop, &p->lv_timer);
	ev_timer_set(&p->lv_timer, after, 0.);
	ev_timer_start(p->loop, &p->lv_timer);
}

/* One bounded slice of the sweep, from the cursor on, wrapping at the end. */
static void live_tick_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct pvm *p = w->data;
	unsigned visits = 0, checks = 0, total = p->lv_count;
	struct pvm_sock *s;

	(void)loop;
	(void)revents;
	while (visits < total && visits < LIVE_VISITS_PER_TICK && checks < LIVE_CHECKS_PER_TICK) {
		s = p->lv_cursor ? p->lv_cursor : p->lv_head;
		if (!s)
			break;
		p->lv_cursor = s->lv_next;
		visits++;
		if (!appsock_candidate(s))
			continue;
		checks++;
		pvm_appsock_check(s, "found by the sweep");
	}
	live_arm(p, p->cfg->liveness_interval_ms / 1000.);
}

/* Index of @pid among the processes waiting for the recheck, or lv_npids. */
static unsigned live_pid_index(const struct pvm *p, pid_t pid)
{
	unsigned i;

	for (i = 0; i < p->lv_npids && p->lv_pids[i] != pid; i++)
		;
	return i;
}

/* The sockets @pid made, within this window's budget for kicks. */
static void live_kick_pass(struct pvm *p, pid_t pid)
{
	struct pvm_sock *s, *next;
	unsigned checks = 0;

	for (s = p->lv_head; s && p->lv_kick_visits; s = next) {
		next = s->lv_next; /* a release frees only s and its replicas (not listed) */
		p->lv_kick_visits--;
		if (s->owner_pid != pid || !appsock_candidate(s))
			continue;
		if (checks == LIVE_CHECKS_PER_KICK || !p->lv_kick_checks)
			break; /* the rest is the recheck's and the sweep's */
		checks++;
		p->lv_kick_checks--;
		pvm_appsock_check(s, "a control connection of its process closed");
	}
}

/**
 * pvm_appsock_kick() - a control connection of process @pid closed: check its sockets
 * @p:   the daemon
 * @pid: the process (its thread, or itself, ended, or it exec'd)
 *
 * Only the sockets @pid made get a name check; sockets it inherited or was
 * passed are the sweep's.  They are checked at once and again after
 * LIVE_RECHECK_S: an exiting process closes its control connection before its
 * higher fds.  A process already waiting for that recheck gets nothing more
 * (one closes many connections at exit; a hostile one closes them in a loop),
 * and all kicks share one budget until the recheck, so a local user cannot
 * keep the loop busy by closing control connections.
 */
void pvm_appsock_kick(struct pvm *p, pid_t pid)
{
	if (live_pid_index(p, pid) < p->lv_npids)
		return; /* coalesced: its recheck is due */
	if (!ev_is_active(&p->lv_recheck)) {
		/* A new window: its budget, and the recheck that ends it. */
		p->lv_kick_visits = LIVE_VISITS_PER_TICK;
		p->lv_kick_checks = LIVE_CHECKS_PER_TICK;
		ev_timer_set(&p->lv_recheck, LIVE_RECHECK_S, 0.);
		ev_timer_start(p->loop, &p->lv_recheck);
	}
	if (p->lv_npids < PVM_LIVE_RECHECK_PIDS)
		p->lv_pids[p->lv_npids++] = pid; /* else: the sweep finds them */
	live_kick_pass(p, pid);
}

/*
 * The processes whose control connection closed a moment ago: check their
 * sockets again, each process at most its share of LIVE_CHECKS_PER_TICK, so
 * one with many sockets does not crowd out the others.
 */
static void live_recheck_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct pvm *p = w->data;
	unsigned checks[PVM_LIVE_RECHECK_PIDS] = { 0 };
	unsigned share, i;
	struct pvm_sock *s, *next;

	(void)loop;
	(void)revents;
	if (!p->lv_npids)
		return;
	share = LIVE_CHECKS_PER_TICK / p->lv_npids;
	if (share < LIVE_RECHECK_MIN_SHARE)
		share = LIVE_RECHECK_MIN_SHARE;
	for (s = p->lv_head; s; s = next) {
		next = s->lv_next;
		i = live_pid_index(p, s->owner_pid);
		if (i == p->lv_npids || checks[i] == share || !appsock_candidate(s))
			continue;
		checks[i]++;
		pvm_appsock_check(s, "its process ended");
	}
	p->lv_npids = 0;
}

/**
 * pvm_appsock_open() - start the periodic sweep
 * @p: the daemon
 */
void pvm_appsock_open(struct pvm *p)
{
	ev_timer_init(&p->lv_timer, live_tick_cb, p->cfg->liveness_interval_ms / 1000., 0.);
	p->lv_timer.data = p;
	ev_timer_start(p->loop, &p->lv_timer);
	ev_timer_init(&p->lv_recheck, live_recheck_cb, LIVE_RECHECK_S, 0.);
	p->lv_recheck.data = p;
}

/**
 * pvm_appsock_close() - stop the sweep (at exit)
 * @p: the daemon
 */
void pvm_appsock_close(struct pvm *p)
{
	ev_timer_stop(p->loop, &p->lv_timer);
	ev_timer_stop(p->loop, &p->lv_recheck);
}
