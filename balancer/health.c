/* SPDX-License-Identifier: MIT */
/* health.c - mw-balancer's active health checks of every INS: process state, TCP probe, accept */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/inet_diag.h>
#include <linux/netlink.h>
#include <linux/sock_diag.h>
#include <netinet/in.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "balancer/bal.h"
#include "common/addr.h"
#include "common/keystore.h"
#include "common/linger.h"
#include "common/log.h"
#include "common/proxy2.h"

/*
 * Theory of operation
 *
 * The tick (ins.c, every 100 ms) starts a check of each READY or DRAINING
 * INS once health_interval_ms has passed since its last one began.  A check
 * has four steps, all without blocking:
 *
 *   0. mw-pvm's view of the INS's channel: key /mw/pvms/<pvm.index>/ins/<id>
 *      holds "up <pid>" while mw-pvm has a live channel to it (pvm/pvm_view.c);
 *      once seen, a key that is gone (mw-pvm's heartbeat timeout, EOF, a
 *      protocol error) or names another pid fails the check at once
 *      (health_pvm_lost).  Until it has been seen (no keystore, an mw-pvm
 *      that does not publish) the step is skipped.  A read of a tmpfs file
 *      (or a XenStore node): no network round trip.
 *   1. The process: /proc/PID/stat state 'T' or 't' (SIGSTOP, traced)
 *      fails at once (health_stopped).
 *   2. A TCP probe: non-blocking connect from the balancer's namespace to
 *      INS_address:first front-end port, as a client's connection goes
 *      (health_refused; health_timeout after health_timeout_ms).
 *   3. The accept: an INS's kernel completes handshakes even while mw-ins
 *      is stopped or wedged, so a connected probe proves little.  mw-ins
 *      must accept it: the INS side of the probe, looked up by its four
 *      addresses through NETLINK_SOCK_DIAG in the INS's own namespace, has
 *      inode 0 while it waits in the accept queue and a real inode once
 *      accepted.  Polled every ACCEPT_POLL_S until health_timeout_ms after
 *      the check began (health_not_accepted).  When the INS speaks PROXY v2,
 *      the probe first sends a LOCAL header (a check, not a relayed client),
 *      so mw-ins hands it to the app as its own connection, which ends at
 *      once.
 *
 * An INS without a pid (xl) has no step 1 and 3, and is READY only once
 * mw-pvm's view shows it up (when the keystore is readable) and a probe of
 * step 2 connected: bal_health_ready() runs them every READY_POLL_S while
 * it starts, failures not counted; when the diag socket
 * cannot be had (setns refused), step 3 is skipped, logged once.
 *
 * A passed check puts the INS (back) in the rotation; a failed one takes it
 * out (bal_pick skips a FAILING INS), counts the reason, and after
 * health_failures failures in a row bal_ins_down() stops and replaces it.
 */

#define ACCEPT_POLL_S 0.02
#define READY_POLL_S  0.2

static void check_done(struct bal *b, struct bal_ins *i, bool ok, enum bal_reason why);

/**
 * bal_health_state_name() - the status token of @s ("ok", "failing", ...)
 * @s: health state
 *
 * Return: a static string; "?" out of range
 */
const char *bal_health_state_name(enum bal_health_state s)
{
	static const char *const n[] = { "unknown", "ok", "failing", "down" };

	return (unsigned)s < sizeof(n) / sizeof(n[0]) ? n[s] : "?";
}

/**
 * bal_health_open() - open the keystore where mw-pvm publishes its view of each INS
 * @b: the balancer; b->pvm_view stays NULL (step 0 skipped) when it cannot be opened
 */
void bal_health_open(struct bal *b)
{
	char err[256];

	if (mw_keystore_open(&b->pvm_view, b->cfg->common.keystore,
			     b->cfg->common.keystore_root, err, sizeof(err))) {
		mw_warn("health: mw-pvm's view of the INS cannot be read (%s); "
			"checking INS without it",
			err);
		b->pvm_view = NULL;
	}
}

/**
 * bal_health_close() - close that keystore
 * @b: the balancer
 */
void bal_health_close(struct bal *b)
{
	if (b->pvm_view)
		mw_keystore_close(b->pvm_view);
	b->pvm_view = NULL;
}

/* Is @val mw-pvm's "up PID" for @pid (any pid when @pid <= 0)? */
static bool pvm_view_up(const char *val, pid_t pid)
{
	char *end;
	long v;

	if (strncmp(val, "up ", 3))
		return false;
	errno = 0;
	v = strtol(val + 3, &end, 10);
	if (errno || end == val + 3 || *end || v <= 0)
		return false;
	return pid <= 0 || v == (long)pid;
}

/*
 * mw-pvm's view of @i's channel.  Return: 1 up, 0 gone since it was seen up,
 * -1 not known (never seen: no keystore, or an mw-pvm that does not publish).
 */
static int pvm_view_state(struct bal *b, struct bal_ins *i)
{
	char key[MW_KEY_MAX], val[32];

	if (!b->pvm_view)
		return -1;
	/* On Xen mw-pvm knows the INS by its domid. */
	snprintf(key, sizeof(key), "/mw/pvms/%d/ins/%d", b->cfg->pvm.index,
		 i->h.domid ? (int)i->h.domid : i->h.id);
	if (mw_keystore_read(b->pvm_view, key, val, sizeof(val)) >= 0 &&
	    pvm_view_up(val, i->h.pid)) {
		i->hc.pvm_seen = true;
		i->hc.pvm_view = 1;
	} else {
		i->hc.pvm_view = i->hc.pvm_seen ? 0 : -1;
	}
	return i->hc.pvm_view;
}

/**
 * bal_health_pvm_view_name() - the status token of mw-pvm's view of @i
 * @i: the INS
 *
 * Return: "up", "lost" or "unknown"
 */
const char *bal_health_pvm_view_name(const struct bal_ins *i)
{
	return i->hc.pvm_view > 0 ? "up" : i->hc.pvm_view == 0 ? "lost" : "unknown";
}

/**
 * bal_health_init() - a new INS: not checked yet, no sockets
 * @i: the INS
 */
void bal_health_init(struct bal_ins *i)
{
	memset(&i->hc, 0, sizeof(i->hc));
	i->hc.fd = -1;
	i->hc.diag = -1;
	i->hc.pvm_view = -1;
	ev_io_init(&i->hc.io, NULL, -1, EV_WRITE);
	ev_timer_init(&i->hc.timer, NULL, 0, 0);
	i->hc.io.data = i;
	i->hc.timer.data = i;
}

static void probe_close(struct bal *b, struct bal_ins *i, bool reset)
{
	ev_io_stop(b->loop, &i->hc.io);
	ev_timer_stop(b->loop, &i->hc.timer);
	if (i->hc.fd >= 0) {
		/* A probe mw-ins never took must not stay in its accept queue. */
		if (reset)
			mw_linger_reset(i->hc.fd);
		close(i->hc.fd);
	}
	i->hc.fd = -1;
	i->hc.connected = false;
}

/**
 * bal_health_stop() - stop checking @i and close its sockets
 * @b: the balancer
 * @i: the INS (stopping, dead, or shutting down)
 */
void bal_health_stop(struct bal *b, struct bal_ins *i)
{
	probe_close(b, i, true);
	if (i->hc.diag >= 0)
		close(i->hc.diag);
	i->hc.diag = -1;
}

/* Is the process stopped (SIGSTOP) or traced?  Return: 1 yes, 0 no, -errno. */
static int proc_stopped(pid_t pid)
{
	char path[64], buf[512], *p;
	ssize_t n;
	int fd, ret;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	n = read(fd, buf, sizeof(buf) - 1);
	ret = n < 0 ? -errno : 0;
	close(fd);
	if (ret)
		return ret;
	buf[n] = 0;
	p = strrchr(buf, ')'); /* the command name may hold spaces and parentheses */
	if (!p || p[1] != ' ' || !p[2])
		return -EINVAL;
	return p[2] == 'T' || p[2] == 't';
}

int bal_diag_open(pid_t pid)
{
	char path[64];
	struct stat mine, theirs;
	int self = -1, ns = -1, fd = -1, ret;

	snprintf(path, sizeof(path), "/proc/%d/ns/net", (int)pid);
	self = open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC);
	ns = open(path, O_RDONLY | O_CLOEXEC);
	if (self < 0 || ns < 0 || fstat(self, &mine) || fstat(ns, &theirs)) {
		ret = -errno;
		goto out;
	}
	if (mine.st_ino != theirs.st_ino && setns(ns, CLONE_NEWNET)) {
		ret = -errno;
		goto out;
	}
	fd = socket(AF_NETLINK, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, NETLINK_SOCK_DIAG);
	ret = fd < 0 ? -errno : fd;
	if (mine.st_ino != theirs.st_ino && setns(self, CLONE_NEWNET)) {
		/* Cannot happen with the right to enter: stay nowhere but home. */
		mw_err("health: cannot return to my own network namespace: %s", strerror(errno));
		abort();
	}
out:
	if (self >= 0)
		close(self);
	if (ns >= 0)
		close(ns);
	return ret;
}

/*
 * Has mw-ins accepted the probe?  The INS side is INS_addr:@port <->
 * @local.  Return: 1 accepted, 0 not yet (still queued, or not there yet),
 * -errno when the lookup itself failed.
 */
static int probe_accepted(struct bal_ins *i, uint16_t port, const struct sockaddr_in *local)
{
	struct {
		struct nlmsghdr nlh;
		struct inet_diag_req_v2 r;
	} req = { 0 };
	union {
		struct nlmsghdr nlh;
		char buf[1024];
	} ans;
	const struct inet_diag_msg *m;
	const struct nlmsgerr *e;
	ssize_t n;

	req.nlh.nlmsg_len = sizeof(req);
	req.nlh.nlmsg_type = SOCK_DIAG_BY_FAMILY;
	req.nlh.nlmsg_flags = NLM_F_REQUEST;
	req.r.sdiag_family = AF_INET;
	req.r.sdiag_protocol = IPPROTO_TCP;
	req.r.idiag_states = ~0U;
	req.r.id.idiag_sport = htons(port);
	req.r.id.idiag_dport = local->sin_port;
	req.r.id.idiag_src[0] = i->h.addr.s_addr;
	req.r.id.idiag_dst[0] = local->sin_addr.s_addr;
	req.r.id.idiag_cookie[0] = INET_DIAG_NOCOOKIE;
	req.r.id.idiag_cookie[1] = INET_DIAG_NOCOOKIE;
	if (send(i->hc.diag, &req, sizeof(req), MSG_DONTWAIT) < 0)
		return -errno;
	/* The kernel answers within send(): the reply is already queued. */
	n = recv(i->hc.diag, &ans, sizeof(ans), MSG_DONTWAIT);
	if (n < 0)
		return -errno;
	if ((size_t)n < sizeof(struct nlmsghdr) || !NLMSG_OK(&ans.nlh, (unsigned)n))
		return -EBADMSG;
	if (ans.nlh.nlmsg_type == NLMSG_ERROR) {
		if (ans.nlh.nlmsg_len < NLMSG_LENGTH(sizeof(*e)))
			return -EBADMSG;
		e = NLMSG_DATA(&ans.nlh);
		return e->error == -ENOENT ? 0 : (e->error ? e->error : -EBADMSG);
	}
	if (ans.nlh.nlmsg_type != SOCK_DIAG_BY_FAMILY ||
	    ans.nlh.nlmsg_len < NLMSG_LENGTH(sizeof(*m)))
		return -EBADMSG;
	m = NLMSG_DATA(&ans.nlh);
	return m->idiag_inode != 0;
}

static uint16_t probe_port(const struct bal *b)
{
	struct mw_addr a;

	if (!b->cfg->balancer.listen_count || mw_addr_parse(&a, b->cfg->balancer.listen[0]))
		return 0;
	return a.port;
}

static void accept_poll_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct bal_ins *i = w->data;
	struct bal *b = i->bal;
	struct sockaddr_in local = { 0 };
	socklen_t sl = sizeof(local);
	int ret;

	if (getsockname(i->hc.fd, (struct sockaddr *)&local, &sl) || local.sin_family != AF_INET) {
		check_done(b, i, false, BAL_R_HEALTH_ERROR);
		return;
	}
	ret = probe_accepted(i, probe_port(b), &local);
	if (ret == 1) {
		check_done(b, i, true, BAL_R_COUNT);
		return;
	}
	if (ret < 0) {
		mw_log_ratelimited(MW_LOG_WARN, "health: INS %d: sock_diag lookup: %s", i->h.id,
				   strerror(-ret));
		check_done(b, i, false, BAL_R_HEALTH_ERROR);
		return;
	}
	if (ev_now(loop) - i->hc.started >= b->cfg->balancer.health_timeout_ms / 1000.0) {
		check_done(b, i, false, BAL_R_HEALTH_NOT_ACCEPTED);
		return;
	}
	ev_timer_set(w, ACCEPT_POLL_S, 0);
	ev_timer_start(loop, w);
}

static void connect_cb(struct ev_loop *loop, ev_io *w, int revents);

static void deadline_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct bal_ins *i = w->data;
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);

	/* The loop was held up past the deadline but the probe connected: go on. */
	if (!getpeername(i->hc.fd, (struct sockaddr *)&ss, &sl)) {
		connect_cb(loop, &i->hc.io, EV_WRITE);
		return;
	}
	check_done(i->bal, i, false, BAL_R_HEALTH_TIMEOUT);
}

static void connect_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	struct bal_ins *i = w->data;
	struct bal *b = i->bal;
	uint8_t hdr[MW_PROXY2_V6_LEN];
	int soerr = 0, ret;
	socklen_t sl = sizeof(soerr);

	ev_io_stop(loop, w);
	ev_timer_stop(loop, &i->hc.timer);
	if (getsockopt(i->hc.fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) || soerr) {
		check_done(b, i, false,
			   soerr == ECONNREFUSED ? BAL_R_HEALTH_REFUSED : BAL_R_HEALTH_ERROR);
		return;
	}
	i->hc.connected = true;
	if (i->proxy_protocol) {
		ret = mw_proxy2_encode(hdr, sizeof(hdr), NULL, NULL);
		/* 16 bytes into an empty send buffer of a new connection: sent whole, or failed. */
		if (ret < 0 ||
		    send(i->hc.fd, hdr, (size_t)ret, MSG_NOSIGNAL | MSG_DONTWAIT) != ret) {
			check_done(b, i, false, BAL_R_HEALTH_ERROR);
			return;
		}
	}
	if (i->hc.no_diag) {
		check_done(b, i, true, BAL_R_COUNT);
		return;
	}
	ev_set_cb(&i->hc.timer, accept_poll_cb);
	accept_poll_cb(loop, &i->hc.timer, 0);
}

/* Start the TCP probe.  Return: 0, or the reason it failed at once. */
static enum bal_reason probe_start(struct bal *b, struct bal_ins *i, uint16_t port)
{
	struct sockaddr_in sin = { .sin_family = AF_INET, .sin_port = htons(port) };
	int ret;

	if (i->h.pid > 0 && i->hc.diag < 0 && !i->hc.no_diag) {
		ret = bal_diag_open(i->h.pid);
		if (ret < 0) {
			mw_warn("health: INS %d: no sock_diag socket in its namespace (%s); "
				"checking without the accept step",
				i->h.id, strerror(-ret));
			i->hc.no_diag = true;
		} else {
			i->hc.diag = ret;
		}
	}
	if (i->h.pid <= 0)
		i->hc.no_diag = true;
	i->hc.fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (i->hc.fd < 0)
		return BAL_R_HEALTH_ERROR;
	sin.sin_addr = i->h.addr;
	if (connect(i->hc.fd, (struct sockaddr *)&sin, sizeof(sin)) && errno != EINPROGRESS)
		return errno == ECONNREFUSED ? BAL_R_HEALTH_REFUSED : BAL_R_HEALTH_ERROR;
	ev_io_set(&i->hc.io, i->hc.fd, EV_WRITE);
	ev_set_cb(&i->hc.io, connect_cb);
	ev_io_start(b->loop, &i->hc.io);
	ev_set_cb(&i->hc.timer, deadline_cb);
	ev_timer_set(&i->hc.timer, b->cfg->balancer.health_timeout_ms / 1000.0, 0);
	ev_timer_start(b->loop, &i->hc.timer);
	return BAL_R_COUNT;
}

static void check_done(struct bal *b, struct bal_ins *i, bool ok, enum bal_reason why)
{
	probe_close(b, i, !ok);
	if (i->state == BAL_INS_STARTING) {
		/* A readiness probe (bal_health_ready): a failure is only "not yet". */
		if (ok)
			i->hc.state = BAL_HEALTH_OK;
		return;
	}
	if (ok) {
		if (i->hc.state == BAL_HEALTH_FAILING)
			mw_notice("INS %d healthy again: back in the rotation", i->h.id);
		i->hc.state = BAL_HEALTH_OK;
		i->hc.fails = 0;
		bal_kf_sync(b); /* kernel mode: a new or healed INS joins steering now */
		return;
	}
	i->hc.failed++;
	i->hc.fails++;
	i->hc.last = why;
	bal_count(b, why);
	if (i->hc.state != BAL_HEALTH_FAILING)
		mw_warn("INS %d failed a health check (%s): out of the rotation", i->h.id,
			bal_reason_text(why));
	i->hc.state = BAL_HEALTH_FAILING;
	bal_kf_sync(b); /* kernel mode: out of new-connection steering now */
	if (i->hc.fails >= (unsigned)b->cfg->balancer.health_failures)
		bal_ins_down(b, i); /* frees nothing: the INS lives on as STOPPING */
}

/**
 * bal_health_tick() - start a check of @i if one is due (called every tick)
 * @b: the balancer
 * @i: a READY or DRAINING INS
 */
void bal_health_tick(struct bal *b, struct bal_ins *i)
{
	ev_tstamp now = ev_now(b->loop);
	uint16_t port = probe_port(b);
	enum bal_reason why;
	int st;

	if (i->hc.fd >= 0 || now < i->hc.next)
		return; /* a check is running, or not due */
	i->hc.started = now;
	i->hc.next = now + b->cfg->balancer.health_interval_ms / 1000.0;
	i->hc.checks++;
	if (!pvm_view_state(b, i)) {
		check_done(b, i, false, BAL_R_HEALTH_PVM_LOST);
		return;
	}
	if (i->h.pid > 0) {
		st = proc_stopped(i->h.pid);
		if (st == 1) {
			check_done(b, i, false, BAL_R_HEALTH_STOPPED);
			return;
		}
	}
	if (!port) {
		/* No front-end port to probe: the process state is all there is. */
		check_done(b, i, true, BAL_R_COUNT);
		return;
	}
	why = probe_start(b, i, port);
	if (why != BAL_R_COUNT)
		check_done(b, i, false, why);
}

/**
 * bal_health_joined() - has mw-pvm's view shown @i's channel up since its spawn?
 * @b: the balancer
 * @i: the INS
 * Return: 1 yes, 0 not yet, -1 not known (no readable view)
 */
int bal_health_joined(struct bal *b, struct bal_ins *i)
{
	if (!b->pvm_view)
		return -1;
	if (!i->hc.pvm_seen && (i->h.pid > 0 || i->h.domid))
		pvm_view_state(b, i);
	return i->hc.pvm_seen ? 1 : 0;
}

/**
 * bal_health_ready() - is a STARTING INS without a pid (xl) ready?
 * @b: the balancer
 * @i: the INS, STARTING, h.pid 0
 *
 * Ready once its domain exists, mw-pvm's view shows its channel up (skipped
 * without a readable keystore) and a probe of the first front-end port at
 * its address connected (the listener is there only because mw-pvm
 * replicated it).  Starts that probe every READY_POLL_S meanwhile.
 * Return: true when ready
 */
bool bal_health_ready(struct bal *b, struct bal_ins *i)
{
	ev_tstamp now = ev_now(b->loop);
	uint16_t port = probe_port(b);
	enum bal_reason why;

	if (!i->h.domid || pvm_view_state(b, i) == 0 || (b->pvm_view && i->hc.pvm_view != 1))
		return false;
	if (i->hc.state == BAL_HEALTH_OK || !port)
		return true;
	if (i->hc.fd >= 0 || now < i->hc.next)
		return false;
	i->hc.next = now + READY_POLL_S;
	i->hc.started = now;
	why = probe_start(b, i, port);
	if (why != BAL_R_COUNT)
		probe_close(b, i, true);
	return false;
}
