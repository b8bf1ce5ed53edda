/* SPDX-License-Identifier: MIT */
/* ins.c - mw-balancer's INS set: spawn through the backend, readiness, replacement, scaling */
#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <libgen.h>
#include <poll.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "balancer/bal.h"
#include "balancer/nf_aggregate.h"
#include "common/addr.h"
#include "common/log.h"

/*
 * Theory of operation
 *
 * Every INS is STARTING -> READY -> (DRAINING ->) STOPPING -> DEAD.
 *
 * STARTING: spawned; it becomes READY once every front-end port is a
 * listening socket in its network namespace (read from /proc/PID/net/tcp*,
 * which shows the namespace of PID): mw-pvm has replicated the app's
 * listeners on it, so a connection sent there is served.  Without front-end
 * ports it is READY at once.  A backend without a pid (xl) has no /proc to
 * look into: its INS is READY once mw-pvm publishes its channel as up and a
 * probe of the first front-end port at the domain's address is accepted
 * (health.c, bal_health_ready()): the listener exists there only because
 * mw-pvm replicated it.
 * Only READY INS take new connections.  An INS still STARTING
 * balancer.start_timeout_ms after its spawn that never joined mw-pvm
 * (mw-pvm's view never showed its channel up; when the view cannot be read:
 * not READY) is taken down and replaced like one that failed its health
 * checks (reason start_timeout): a domain whose kernel or init hangs, an
 * mw-ins that cannot reach mw-pvm.  One that joined and waits for the app's
 * listeners is left alone: the app may simply not listen yet.
 *
 * An INS exits (ev_child, or its pidfd between the tick's slow steps,
 * bal_ins_reap(); for xl, alive() polled by the tick): if we had not
 * asked it to stop, that is a death: logged, counted, and the backend's
 * resources removed at once; the reconcile step then spawns a replacement.
 * Its object stays DEAD until the front end's last connection to it is gone
 * (they end with errors of their own), then is freed.
 *
 * Reconcile (each 100 ms tick, and after any exit): while fewer than
 * `target` INS are STARTING or READY, spawn (a failing spawn, or an INS that
 * died within a second of its start, backs off for a second so a broken
 * binary does not spin); while more, drain the newest.  DRAINING INS stop
 * when their last connection ends.  `target` is min_ins at start, changed by
 * `scale N`, `ins spawn` and `ins retire`, always within min_ins..max_ins.
 *
 * DRAINING INS count against max_ins (they still hold a namespace, fds and
 * connections): reconcile spawns only while STARTING + READY + DRAINING is
 * under max_ins.  A drain ends when the last connection does, or after
 * balancer.drain_timeout_ms, when the INS is stopped with what it still
 * carries (reason drain_timeout).
 *
 * Health (health.c): READY and DRAINING INS are checked every
 * health_interval_ms; a failed check takes an INS out of the rotation
 * (bal_pick skips it), health_failures in a row take it down:
 * bal_ins_down() kills it (SIGKILL: a stopped or wedged process would not
 * act on SIGTERM) and reconcile replaces it at once.
 *
 * Autoscale (balancer.autoscale): each tick, before reconcile, the pure
 * bal_autoscale_decide() (autoscale.c) may move `target` one step up or
 * down on the connections per live INS; reconcile then spawns or drains as
 * for an operator's `scale`.
 */

#define TICK_S	      0.1
#define KILL_AFTER_S  5.0
#define BACKOFF_S     1.0
/*
 * Kernel front end: a draining INS is stopped at 0 connections only this
 * long after it left steering, so a SYN steered to it just before, still
 * on its way when its connections were counted, is not met by a closed
 * listener.
 */
#define KF_DRAIN_MIN_S 0.5
/*
 * How long a drain waits for half-open connections alone: a handshake under way
 * ends well within it, and a SYN resent on and on (no answer needed, the source
 * may be forged) keeps a request socket alive for as long as it is resent.
 */
#define KF_HALF_OPEN_MAX_S 5.0
#define SHUTDOWN_WAIT 100 /* x 50 ms */

static void reconcile(struct bal *b);

const char *bal_ins_state_name(enum bal_ins_state s)
{
	static const char *const n[] = { "starting", "ready", "draining", "stopping", "dead" };

	return (unsigned)s < sizeof(n) / sizeof(n[0]) ? n[s] : "?";
}

struct bal_ins *bal_ins_find(struct bal *b, int id)
{
	struct bal_ins *i;

	for (i = b->ins; i; i = i->next)
		if (i->h.id == id)
			return i;
	return NULL;
}

/**
 * bal_ins_find_pvm() - the INS mw-pvm knows as @id (a socket id's bits 40-55)
 * @b:  the balancer
 * @id: its domid for a Xen domU (xl backend), its id otherwise
 * Return: the INS, or NULL
 */
struct bal_ins *bal_ins_find_pvm(struct bal *b, int id)
{
	bool xl = !strcmp(b->cfg->balancer.backend, "xl");
	struct bal_ins *i;

	for (i = b->ins; i; i = i->next) {
		if (i->state == BAL_INS_DEAD)
			continue;
		/* A domU not created yet (domid 0) is not the one mw-pvm knows as @id. */
		if (xl ? i->h.domid && (int)i->h.domid == id : i->h.id == id)
			return i;
	}
	return NULL;
}

/**
 * bal_ins_running() - INS that hold resources and count against max_ins
 * @b: the balancer
 *
 * Return: how many are STARTING, READY or DRAINING
 */
/**
 * bal_ins_in_rotation() - INS a new connection may go to now
 * @b: the balancer
 *
 * Return: READY INS whose health checks are not failing (per_ins_max_conns aside)
 */
int bal_ins_in_rotation(const struct bal *b)
{
	const struct bal_ins *i;
	int n = 0;

	for (i = b->ins; i; i = i->next)
		n += i->state == BAL_INS_READY && i->hc.state != BAL_HEALTH_FAILING &&
		     i->hc.state != BAL_HEALTH_DOWN;
	return n;
}

int bal_ins_running(const struct bal *b)
{
	const struct bal_ins *i;
	int n = 0;

	for (i = b->ins; i; i = i->next)
		n += i->state == BAL_INS_STARTING || i->state == BAL_INS_READY ||
		     i->state == BAL_INS_DRAINING;
	return n;
}

int bal_ins_live(const struct bal *b)
{
	const struct bal_ins *i;
	int n = 0;

	for (i = b->ins; i; i = i->next)
		n += i->state == BAL_INS_STARTING || i->state == BAL_INS_READY;
	return n;
}

/*
 * One line of /proc/net/tcp{,6}: "  N: LOCALADDR:PORT REMADDR:PORT ST ...", all hex.
 * Return: true and the local port and state, or false for the header or junk.
 */
static bool tcp_line(const char *line, unsigned *port, unsigned *state)
{
	const char *p = strchr(line, ':'), *colon;
	char *end;
	unsigned long v;

	if (!p)
		return false;
	colon = strchr(p + 1, ':'); /* between the local address and port */
	if (!colon)
		return false;
	errno = 0;
	v = strtoul(colon + 1, &end, 16);
	if (errno || end == colon + 1 || *end != ' ' || v > 0xffff)
		return false;
	*port = (unsigned)v;
	p = strchr(end + 1, ' '); /* after the remote address:port */
	if (!p)
		return false;
	v = strtoul(p + 1, &end, 16);
	if (errno || end == p + 1 || v > 0xff)
		return false;
	*state = (unsigned)v;
	return true;
}

/* Is TCP port @port listening in the namespace of @pid? */
static bool listens(pid_t pid, unsigned port)
{
	static const char *const files[] = { "tcp", "tcp6" };
	char path[64], line[512];
	unsigned lport, st;
	bool found = false;
	size_t f;
	FILE *fp;

	for (f = 0; f < 2 && !found; f++) {
		snprintf(path, sizeof(path), "/proc/%d/net/%s", (int)pid, files[f]);
		fp = fopen(path, "re");
		if (!fp)
			continue;
		while (!found && fgets(line, sizeof(line), fp))
			if (tcp_line(line, &lport, &st) && lport == port && st == 0x0A)
				found = true;
		fclose(fp);
	}
	return found;
}

/* Is @pid still in the balancer's own network namespace (or gone)? */
static bool in_my_netns(pid_t pid)
{
	char path[64];
	struct stat mine, theirs;

	snprintf(path, sizeof(path), "/proc/%d/ns/net", (int)pid);
	if (stat("/proc/self/ns/net", &mine) || stat(path, &theirs))
		return true;
	return mine.st_ino == theirs.st_ino && mine.st_dev == theirs.st_dev;
}

static bool ins_ready(struct bal *b, struct bal_ins *i)
{
	struct mw_addr a;
	int k;

	/* No process to look into (xl): mw-pvm's view and a probe of the domain's listener. */
	if (i->h.pid <= 0)
		return bal_health_ready(b, i);
	/*
	 * Until the child has entered its namespace, /proc/PID/net shows ours,
	 * where the front end listens on the same ports: not a sign of anything.
	 */
	if (b->be.ops == &bal_backend_netns && in_my_netns(i->h.pid))
		return false;
	for (k = 0; k < b->cfg->balancer.listen_count; k++)
		if (!mw_addr_parse(&a, b->cfg->balancer.listen[k]) && !listens(i->h.pid, a.port))
			return false;
	return true;
}

static void kf_diag_close(struct bal_ins *i)
{
	if (i->kf_diag >= 0)
		close(i->kf_diag);
	i->kf_diag = -1;
	if (i->pidfd >= 0)
		close(i->pidfd);
	i->pidfd = -1;
}

static void ins_free(struct bal *b, struct bal_ins *i)
{
	struct bal_ins **pp;

	kf_diag_close(i);
	for (pp = &b->ins; *pp; pp = &(*pp)->next)
		if (*pp == i) {
			*pp = i->next;
			break;
		}
	free(i);
}

void bal_ins_conn_done(struct bal_ins *i)
{
	if (i->conns)
		i->conns--;
	if (i->state == BAL_INS_DEAD && !i->conns)
		ins_free(i->bal, i);
}

/* It exited (or its domain went): clean up, and say why if we did not ask. */
static void ins_gone(struct bal *b, struct bal_ins *i, int status)
{
	char why[64];
	bool asked = i->state == BAL_INS_STOPPING || i->state == BAL_INS_DRAINING;

	/*
	 * Kernel mode: its listener is closed already (the process exits
	 * before SIGCHLD), so every SYN steered to it now is refused.  Out of
	 * steering and its conntrack entries gone first, before the cleanup
	 * below (the namespace's unmount can wait for an RCU grace period)
	 * and the log line, which says it is done.
	 */
	i->state = BAL_INS_DEAD;
	bal_kf_sync(b);
	if (status < 0)
		snprintf(why, sizeof(why), "domain gone");
	else if (WIFSIGNALED(status))
		snprintf(why, sizeof(why), "killed by signal %d", WTERMSIG(status));
	else
		snprintf(why, sizeof(why), "exit status %d", WEXITSTATUS(status));
	if (i->h.pid > 0)
		ev_child_stop(b->loop, &i->child);
	ev_timer_stop(b->loop, &i->kill_timer);
	bal_health_stop(b, i);
	b->be.ops->cleanup(&b->be, &i->h);
	if (asked || b->stopping) {
		mw_notice("INS %d (%s) stopped (%s)", i->h.id, i->h.name, why);
	} else {
		b->replaced++;
		mw_warn("INS %d (%s) died (%s), %u connection(s) lost; replacing it", i->h.id,
			i->h.name, why, i->conns);
		if (ev_now(b->loop) - i->spawned_at < 1.0)
			b->spawn_backoff_until = ev_now(b->loop) + BACKOFF_S;
	}
	i->h.pid = 0;
	if (b->kf)
		i->conns = 0; /* they ended in its namespace, with it */
	if (!i->conns)
		ins_free(b, i);
	if (!b->stopping)
		reconcile(b);
}

static void child_cb(struct ev_loop *loop, ev_child *w, int revents)
{
	struct bal_ins *i = w->data;

	ins_gone(i->bal, i, w->rstatus);
}

/**
 * bal_ins_reap() - handle one INS that has exited, now rather than after the callback
 * @b: the balancer
 *
 * SIGCHLD is handled between callbacks; the tick's callback can run for
 * tens of milliseconds (kernel mode: a sock_diag dump per INS walks the
 * host's whole TCP hash), while a dead INS's kernel refuses every SYN
 * steered to it.  Its pidfd turns readable at its exit: the tick calls
 * this between its slow steps, so the dead INS leaves steering within one
 * step.  If libev reaped it first, its child callback does the same.
 * Return: true when an INS was handled (the list changed: start again)
 */
bool bal_ins_reap(struct bal *b)
{
	struct bal_ins *i;

	for (i = b->ins; i; i = i->next) {
		struct pollfd p = { .fd = i->pidfd, .events = POLLIN };
		siginfo_t si;
		int status;

		if (i->pidfd < 0 || i->state == BAL_INS_DEAD || poll(&p, 1, 0) != 1)
			continue;
		memset(&si, 0, sizeof(si));
		if (waitid((idtype_t)P_PIDFD, (id_t)i->pidfd, &si, WEXITED | WNOHANG) || !si.si_pid)
			continue; /* reaped by libev: its callback follows */
		status = si.si_code == CLD_EXITED
				 ? (si.si_status & 0xff) << 8
				 : (si.si_status & 0x7f) | (si.si_code == CLD_DUMPED) << 7;
		ins_gone(b, i, status);
		return true;
	}
	return false;
}

static void kill_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct bal_ins *i = w->data;

	struct bal *b = i->bal;

	mw_warn("INS %d did not stop within %.0f s: %s", i->h.id, KILL_AFTER_S,
		i->h.pid > 0 ? "SIGKILL" : "destroyed");
	if (i->h.pid > 0)
		kill(i->h.pid, SIGKILL);
	else if (b->be.ops->kill)
		b->be.ops->kill(&b->be, &i->h);
}

static void ins_stop(struct bal *b, struct bal_ins *i)
{
	if (i->state == BAL_INS_STOPPING || i->state == BAL_INS_DEAD)
		return;
	i->state = BAL_INS_STOPPING;
	b->be.ops->stop(&b->be, &i->h);
	ev_timer_start(b->loop, &i->kill_timer);
	bal_kf_sync(b);
}

static void ins_drain(struct bal *b, struct bal_ins *i)
{
	i->state = BAL_INS_DRAINING;
	i->drain_since = ev_now(b->loop);
	bal_kf_sync(b); /* no new connection; conntrack keeps the ones it has */
}

/**
 * bal_ins_down() - health checks failed: take @i down and have it replaced
 * @b: the balancer
 * @i: an INS that is not STOPPING or DEAD
 *
 * SIGKILL at once for an INS with a pid (a stopped or wedged mw-ins would
 * not act on SIGTERM; its connections are stuck anyway), the backend's
 * stop otherwise.  Counted as health_down and as replaced; reconcile then
 * spawns its replacement.
 */
/* Kill @i (SIGKILL, or destroy its domain) and let reconcile replace it. */
static void ins_take_down(struct bal *b, struct bal_ins *i)
{
	bal_health_stop(b, i);
	i->state = BAL_INS_STOPPING;
	bal_kf_sync(b);
	if (i->h.pid > 0)
		kill(i->h.pid, SIGKILL);
	else if (b->be.ops->kill)
		b->be.ops->kill(&b->be, &i->h);
	else
		b->be.ops->stop(&b->be, &i->h);
	ev_timer_start(b->loop, &i->kill_timer);
	reconcile(b);
}

void bal_ins_down(struct bal *b, struct bal_ins *i)
{
	bool wanted = i->state == BAL_INS_READY; /* a draining one is not replaced */

	if (i->state == BAL_INS_STOPPING || i->state == BAL_INS_DEAD)
		return;
	bal_count(b, BAL_R_HEALTH_DOWN);
	if (wanted)
		b->replaced++;
	mw_warn("INS %d (%s) down: %u failed health check(s), the last: %s; %u connection(s) "
		"lost%s",
		i->h.id, i->h.name, i->hc.fails, bal_reason_text(i->hc.last), i->conns,
		wanted ? "; replacing it" : "");
	i->hc.state = BAL_HEALTH_DOWN;
	ins_take_down(b, i);
}

/* A STARTING INS past balancer.start_timeout_ms that never joined mw-pvm: replaced. */
static bool start_timed_out(struct bal *b, struct bal_ins *i)
{
	int ms = b->cfg->balancer.start_timeout_ms;

	if (!ms || ev_now(b->loop) - i->spawned_at < ms / 1000.0 ||
	    bal_health_joined(b, i) == 1)
		return false;
	bal_count(b, BAL_R_START_TIMEOUT);
	b->replaced++;
	mw_warn("INS %d (%s) not joined mw-pvm %.1f s after its spawn (balancer.start_timeout_ms): "
		"%s; replacing it",
		i->h.id, i->h.name, ev_now(b->loop) - i->spawned_at,
		i->h.pid > 0 ? "killed" : "destroyed");
	ins_take_down(b, i);
	return true;
}

/* ins.proxy_protocol as the file says now: what the mw-ins about to start reads. */
static bool file_proxy_protocol(const struct bal *b)
{
	struct mw_config *n = calloc(1, sizeof(*n));
	struct mw_config_errors *errs = calloc(1, sizeof(*errs));
	bool on = b->cfg->ins.proxy_protocol;

	/* A file that does not load stops mw-ins too: the value then does not matter. */
	if (n && errs && b->cfg->path[0] && !mw_config_load(n, b->cfg->path, errs))
		on = n->ins.proxy_protocol;
	free(n);
	free(errs);
	return on;
}

static int spawn_one(struct bal *b, struct bal_ins **out, char *err, size_t errlen)
{
	struct bal_ins *i;
	int id, tries, ret;

	i = calloc(1, sizeof(*i));
	if (!i) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	/* Fresh ids (wrapping within 1..65535): mw-pvm may still know a dead one. */
	for (tries = 0, id = b->next_id; tries < 65535; tries++) {
		id = id % 65535 + 1;
		if (!bal_ins_find(b, id))
			break;
	}
	b->next_id = id;
	i->bal = b;
	i->kf_diag = -1;
	i->pidfd = -1;
	i->h.id = id;
	i->proxy_protocol = file_proxy_protocol(b);
	bal_health_init(i);
	ret = b->be.ops->spawn(&b->be, &i->h, err, errlen);
	if (ret) {
		free(i);
		return ret;
	}
	i->state = BAL_INS_STARTING;
	i->spawned_at = ev_now(b->loop);
	ev_timer_init(&i->kill_timer, kill_cb, KILL_AFTER_S, 0);
	i->kill_timer.data = i;
	if (i->h.pid > 0) {
		i->pidfd = (int)syscall(SYS_pidfd_open, i->h.pid, 0); /* -1: ev_child alone */
		ev_child_init(&i->child, child_cb, i->h.pid, 0);
		i->child.data = i;
		ev_child_start(b->loop, &i->child);
	}
	i->next = b->ins;
	b->ins = i;
	b->spawned++;
	mw_notice("INS %d spawned (%s, %s, pid %d)", id, i->h.name, inet_ntoa(i->h.addr),
		  (int)i->h.pid);
	if (out)
		*out = i;
	return 0;
}

static void reconcile(struct bal *b)
{
	struct bal_ins *i, *next, *newest;
	char err[256];
	int live;

	if (b->stopping)
		return;
	for (live = bal_ins_live(b); live < b->target; live++) {
		if (ev_now(b->loop) < b->spawn_backoff_until)
			break;
		if (bal_ins_running(b) >= b->cfg->balancer.max_ins)
			break; /* draining ones hold the rest; they end, at the latest on
				  drain_timeout_ms */
		if (spawn_one(b, NULL, err, sizeof(err))) {
			mw_err("cannot spawn an INS: %s", err);
			b->spawn_backoff_until = ev_now(b->loop) + BACKOFF_S;
			break;
		}
	}
	while (bal_ins_live(b) > b->target) {
		newest = NULL;
		for (i = b->ins; i; i = i->next)
			if ((i->state == BAL_INS_STARTING || i->state == BAL_INS_READY) &&
			    (!newest || i->h.id > newest->h.id))
				newest = i;
		if (!newest)
			break; /* cannot happen: bal_ins_live() counted starting/ready ones */
		mw_notice("INS %d draining (scale down to %d)", newest->h.id, b->target);
		ins_drain(b, newest);
	}
	for (i = b->ins; i; i = next) {
		next = i->next;
		if (i->state != BAL_INS_DRAINING)
			continue;
		if (!i->conns &&
		    (!i->half_open || ev_now(b->loop) - i->drain_since >= KF_HALF_OPEN_MAX_S) &&
		    (!b->kf || ev_now(b->loop) - i->drain_since >= KF_DRAIN_MIN_S)) {
			mw_notice("INS %d drained", i->h.id);
			ins_stop(b, i);
		} else if (b->cfg->balancer.drain_timeout_ms &&
			   ev_now(b->loop) - i->drain_since >=
				   b->cfg->balancer.drain_timeout_ms / 1000.0) {
			bal_count(b, BAL_R_DRAIN_TIMEOUT);
			mw_warn("INS %d: %s; %u connection(s) end (and %u half-open)", i->h.id,
				bal_reason_text(BAL_R_DRAIN_TIMEOUT), i->conns, i->half_open);
			ins_stop(b, i);
		}
	}
}

/* One autoscale check: @conns are the connections on every INS not dead. */
static void autoscale(struct bal *b, unsigned conns)
{
	const struct mw_balancer_config *bc = &b->cfg->balancer;
	const struct bal_as_params p = { .min_ins = bc->min_ins,
					 .max_ins = bc->max_ins,
					 .up_conns = (unsigned)bc->autoscale_up_conns,
					 .down_conns = (unsigned)bc->autoscale_down_conns,
					 .cooldown_s = bc->autoscale_cooldown_ms / 1000.0 };
	struct bal_as_input in = { .now = ev_now(b->loop), .conns = conns, .target = b->target };
	const struct bal_ins *i;
	enum bal_as_action a;

	if (!bc->autoscale) {
		b->as.seen = false; /* turned on by a reload: start with a cool-down */
		return;
	}
	for (i = b->ins; i; i = i->next)
		in.starting += i->state == BAL_INS_STARTING;
	in.live = bal_ins_live(b);
	a = bal_autoscale_decide(&p, &b->as, &in, &b->as_reason);
	if (a == BAL_AS_HOLD)
		return;
	b->target = in.live + (a == BAL_AS_UP ? 1 : -1);
	if (a == BAL_AS_UP)
		b->as_ups++;
	else
		b->as_downs++;
	mw_notice("autoscale: %s to %d INS: %u connection(s) over %d INS is %.1f per INS, %s "
		  "balancer.autoscale_%s_conns (%d)",
		  a == BAL_AS_UP ? "up" : "down", b->target, conns, in.live,
		  (double)conns / in.live, a == BAL_AS_UP ? "above" : "below",
		  a == BAL_AS_UP ? "up" : "down",
		  a == BAL_AS_UP ? bc->autoscale_up_conns : bc->autoscale_down_conns);
}

static void tick_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct bal *b = w->data;
	struct bal_ins *i, *next;
	unsigned conns = 0;

	while (bal_ins_reap(b))
		;
	bal_kf_poll(b); /* kernel mode: the INS's connections now */
	for (i = b->ins; i; i = next) {
		next = i->next;
		if (b->be.ops->alive && i->state != BAL_INS_DEAD &&
		    !b->be.ops->alive(&b->be, &i->h)) {
			ins_gone(b, i, -1);
			continue;
		}
		if (i->state == BAL_INS_STARTING && ins_ready(b, i)) {
			i->state = BAL_INS_READY;
			mw_notice("INS %d ready (%.2f s after spawn)", i->h.id,
				  ev_now(loop) - i->spawned_at);
		} else if (i->state == BAL_INS_STARTING && start_timed_out(b, i)) {
			continue;
		}
		if (i->state == BAL_INS_READY || i->state == BAL_INS_DRAINING)
			bal_health_tick(b, i);
		if (i->state != BAL_INS_DEAD)
			conns += i->conns;
	}
	autoscale(b, conns);
	reconcile(b);
	bal_kf_sync(b); /* an INS that became ready joins */
	mw_daemon_status(b->d, "%d INS (target %d), %u connection(s), policy %s", bal_ins_live(b),
			 b->target, conns, bal_policy_name(b->policy));
}

int bal_init(struct bal *b, struct mw_daemon *d, char *err, size_t errlen)
{
	char self[MW_PATH_MAX];
	ssize_t n;
	int ret;

	memset(b, 0, sizeof(*b));
	b->d = d;
	b->loop = d->loop;
	b->cfg = &d->cfg;
	b->target = b->cfg->balancer.min_ins;
	if (bal_policy_parse(b->cfg->balancer.policy, &b->policy))
		b->policy = BAL_POLICY_RR;
	b->be.cfg = b->cfg;
	b->be.loop = b->loop;
	b->be.ops = bal_backend_find(b->cfg->balancer.backend);
	if (!b->be.ops) {
		snprintf(err, errlen, "unknown backend %s", b->cfg->balancer.backend);
		return -EINVAL;
	}
	if (b->cfg->balancer.ins_binary[0]) {
		snprintf(b->be.ins_binary, sizeof(b->be.ins_binary), "%s",
			 b->cfg->balancer.ins_binary);
	} else {
		/* mw-ins next to mw-balancer: same dir when installed, ../ins in a build tree */
		n = readlink("/proc/self/exe", self, sizeof(self) - 1);
		if (n <= 0) {
			snprintf(err, errlen, "cannot find my own path: %s", strerror(errno));
			return -EINVAL;
		}
		self[n] = 0;
		snprintf(b->be.ins_binary, sizeof(b->be.ins_binary), "%s/mw-ins", dirname(self));
		if (access(b->be.ins_binary, X_OK)) {
			n = readlink("/proc/self/exe", self, sizeof(self) - 1);
			self[n] = 0;
			snprintf(b->be.ins_binary, sizeof(b->be.ins_binary), "%s/../ins/mw-ins",
				 dirname(self));
		}
	}
	if (b->be.ops != &bal_backend_xl && access(b->be.ins_binary, X_OK)) {
		snprintf(err, errlen, "mw-ins not found at %s (set balancer.ins_binary)",
			 b->be.ins_binary);
		return -ENOENT;
	}
	ret = b->be.ops->init(&b->be, err, errlen);
	if (ret)
		return ret;
	bal_health_open(b);
	ev_timer_init(&b->tick, tick_cb, TICK_S, TICK_S);
	b->tick.data = b;
	return 0;
}

void bal_start(struct bal *b)
{
	ev_timer_start(b->loop, &b->tick);
	reconcile(b);
}

void bal_shutdown(struct bal *b)
{
	struct bal_ins *i, *next;
	int status, t, left;

	b->stopping = true;
	ev_timer_stop(b->loop, &b->tick);
	for (i = b->ins; i; i = i->next) {
		bal_health_stop(b, i);
		if (i->state != BAL_INS_DEAD) {
			i->state = BAL_INS_STOPPING;
			b->be.ops->stop(&b->be, &i->h);
		}
	}
	/* The loop no longer runs: reap directly, bounded, then SIGKILL. */
	for (t = 0; t <= SHUTDOWN_WAIT; t++) {
		left = 0;
		for (i = b->ins; i; i = i->next) {
			if (i->state == BAL_INS_DEAD)
				continue;
			if (i->h.pid > 0) {
				if (t == SHUTDOWN_WAIT)
					kill(i->h.pid, SIGKILL);
				if (waitpid(i->h.pid, &status, t == SHUTDOWN_WAIT ? 0 : WNOHANG) !=
				    i->h.pid) {
					left++;
					continue;
				}
				ev_child_stop(b->loop, &i->child);
			} else if (b->be.ops->alive && b->be.ops->alive(&b->be, &i->h) &&
				   t < SHUTDOWN_WAIT) {
				left++;
				continue;
			}
			ev_timer_stop(b->loop, &i->kill_timer);
			b->be.ops->cleanup(&b->be, &i->h);
			i->state = BAL_INS_DEAD;
			mw_notice("INS %d stopped", i->h.id);
		}
		if (!left)
			break;
		usleep(50000);
	}
	for (i = b->ins; i; i = next) {
		next = i->next;
		kf_diag_close(i);
		free(i);
	}
	b->ins = NULL;
	b->be.ops->fini(&b->be);
	bal_health_close(b);
}

int bal_ins_spawn(struct bal *b, char *err, size_t errlen)
{
	struct bal_ins *i;
	int ret;

	if (bal_ins_running(b) >= b->cfg->balancer.max_ins) {
		snprintf(err, errlen,
			 "already %d INS (%d draining), the maximum (balancer.max_ins)",
			 bal_ins_running(b), bal_ins_running(b) - bal_ins_live(b));
		return -ERANGE;
	}
	ret = spawn_one(b, &i, err, errlen);
	if (ret)
		return ret;
	b->target = bal_ins_live(b);
	return i->h.id;
}

int bal_ins_retire(struct bal *b, int id, bool drain, char *err, size_t errlen)
{
	struct bal_ins *i = bal_ins_find(b, id);

	if (!i || i->state == BAL_INS_DEAD) {
		snprintf(err, errlen, "no INS %d", id);
		return -ENOENT;
	}
	if (i->state == BAL_INS_STOPPING || (i->state == BAL_INS_DRAINING && drain)) {
		snprintf(err, errlen, "INS %d is already %s", id, bal_ins_state_name(i->state));
		return -EALREADY;
	}
	if ((i->state == BAL_INS_STARTING || i->state == BAL_INS_READY) &&
	    bal_ins_live(b) <= b->cfg->balancer.min_ins) {
		snprintf(err, errlen, "INS %d is one of the minimum %d (balancer.min_ins)", id,
			 b->cfg->balancer.min_ins);
		return -ERANGE;
	}
	if (i->state != BAL_INS_DRAINING)
		b->target = bal_ins_live(b) - 1;
	mw_notice("INS %d retired%s", id, drain ? ", draining" : "");
	if (drain)
		ins_drain(b, i);
	else
		ins_stop(b, i);
	reconcile(b);
	return 0;
}

int bal_scale(struct bal *b, int n, char *err, size_t errlen)
{
	const struct mw_balancer_config *bc = &b->cfg->balancer;

	if (n < bc->min_ins || n > bc->max_ins) {
		snprintf(err, errlen, "%d is outside balancer.min_ins..max_ins (%d..%d)", n,
			 bc->min_ins, bc->max_ins);
		return -ERANGE;
	}
	mw_notice("scale %d -> %d INS", b->target, n);
	b->target = n;
	reconcile(b);
	return 0;
}

/* NOLINTBEGIN(bugprone-macro-parentheses) */
#define RESTART_KEY(sec, k)                                     \
	{                                                       \
#sec "." #k, offsetof(struct mw_config, sec.k), \
			sizeof(((struct mw_config *)0)->sec.k)  \
	}
/* NOLINTEND(bugprone-macro-parentheses) */

/*
 * Keys a reload cannot apply: they shape what already exists (sockets,
 * namespaces, the bridge, the keystore, the merged Netflow stream's server
 * and its access rules, each INS's mount view and user, the key mw-pvm
 * publishes its INS view at), or, for ins.proxy_protocol, are read by every
 * running mw-ins once at its start, so switching the balancer alone would
 * break every connection (off: the app reads the header as request bytes;
 * on: every INS refuses every connection).  Every key mw-balancer reads is
 * here or applied by bal_reload(): a reload never drops a change silently.
 */
static const struct restart_key {
	const char *name;
	size_t off, size;
} restart_keys[] = {
	RESTART_KEY(common, runtime_dir),      RESTART_KEY(common, log_level),
	RESTART_KEY(common, keystore),	       RESTART_KEY(common, keystore_root),
	RESTART_KEY(balancer, control_socket), RESTART_KEY(balancer, backend),
	RESTART_KEY(balancer, mode),
	RESTART_KEY(balancer, listen),	       RESTART_KEY(balancer, listen_count),
	RESTART_KEY(balancer, subnet),	       RESTART_KEY(balancer, bridge),
	RESTART_KEY(balancer, netns_tcp_ehash),
	RESTART_KEY(balancer, ins_binary),     RESTART_KEY(balancer, netflow_listen),
	RESTART_KEY(balancer, netflow_allow),  RESTART_KEY(balancer, tag),
	RESTART_KEY(balancer, xl_kernel),      RESTART_KEY(balancer, xl_ramdisk),
	RESTART_KEY(balancer, xl_memory_mb),   RESTART_KEY(balancer, xl_vcpus),
	RESTART_KEY(balancer, netflow_unix),   RESTART_KEY(balancer, netflow_upstream_token_file),
	RESTART_KEY(ins, proxy_protocol),      RESTART_KEY(ins, user),
	RESTART_KEY(ins, pvm_socket),	       RESTART_KEY(pvm, control_socket),
	RESTART_KEY(pvm, index),	       RESTART_KEY(pvm, netflow_group),
	RESTART_KEY(pvm, netflow_control_group), RESTART_KEY(pvm, netflow_token_file),
	RESTART_KEY(pvm, netflow_max_per_user), RESTART_KEY(pvm, netflow_queue),
	RESTART_KEY(pvm, netflow_memory),      RESTART_KEY(pvm, netflow_stall_ms),
	RESTART_KEY(pvm, netflow_min_rate),
};

/*
 * Name every restart-only key whose value in @n differs from the running
 * one in @msg ("" when none).  Return: how many.
 */
static int restart_keys_changed(const struct mw_config *cur, const struct mw_config *n, char *msg,
				size_t len)
{
	size_t k, used = 0;
	int count = 0;

	msg[0] = 0;
	for (k = 0; k < sizeof(restart_keys) / sizeof(restart_keys[0]); k++) {
		const struct restart_key *r = &restart_keys[k];

		if (!memcmp((const char *)cur + r->off, (const char *)n + r->off, r->size))
			continue;
		if (!strcmp(r->name, "balancer.listen_count") && strstr(msg, "balancer.listen"))
			continue; /* named once, as balancer.listen */
		used += (size_t)snprintf(
			msg + used, used < len ? len - used : 0, "%s%s", count ? ", " : "",
			strcmp(r->name, "balancer.listen_count") ? r->name : "balancer.listen");
		count++;
		if (used >= len)
			break;
	}
	return count;
}

int bal_reload(struct bal *b, char *err, size_t errlen)
{
	struct mw_config *n;
	struct mw_config_errors *errs;
	struct mw_balancer_config *bc = &b->cfg->balancer;
	enum bal_policy p;
	char keys[768];
	int ret = 0, unapplied;

	n = calloc(1, sizeof(*n));
	errs = calloc(1, sizeof(*errs));
	if (!n || !errs) {
		snprintf(err, errlen, "out of memory");
		ret = -ENOMEM;
		goto out;
	}
	if (mw_config_load(n, b->cfg->path[0] ? b->cfg->path : NULL, errs)) {
		snprintf(err, errlen, "%s%s", errs->msg[0],
			 errs->count > 1 ? " (and more; see --check-config)" : "");
		ret = -EINVAL;
		goto out;
	}
	if (bal_policy_parse(n->balancer.policy, &p)) {
		snprintf(err, errlen, "unknown policy %s", n->balancer.policy);
		ret = -EINVAL;
		goto out;
	}
	unapplied = restart_keys_changed(b->cfg, n, keys, sizeof(keys));
	bc->min_ins = n->balancer.min_ins;
	bc->max_ins = n->balancer.max_ins;
	snprintf(bc->policy, sizeof(bc->policy), "%s", n->balancer.policy);
	b->policy = p;
	bal_kf_sync(b);
	bc->overload_threshold = n->balancer.overload_threshold;
	bc->per_ins_max_conns = n->balancer.per_ins_max_conns;
	bc->connect_timeout_ms = n->balancer.connect_timeout_ms;
	bc->idle_timeout_ms = n->balancer.idle_timeout_ms;
	bc->drain_timeout_ms = n->balancer.drain_timeout_ms;
	bc->start_timeout_ms = n->balancer.start_timeout_ms;
	bc->keepalive_ms = n->balancer.keepalive_ms;
	bal_fe_reload(b->fe);
	bc->max_conns = n->balancer.max_conns;
	bc->max_conns_per_source = n->balancer.max_conns_per_source;
	bal_kf_set_limit(b);
	bc->health_interval_ms = n->balancer.health_interval_ms;
	bc->health_timeout_ms = n->balancer.health_timeout_ms;
	bc->health_failures = n->balancer.health_failures;
	bc->autoscale = n->balancer.autoscale;
	bc->autoscale_up_conns = n->balancer.autoscale_up_conns;
	bc->autoscale_down_conns = n->balancer.autoscale_down_conns;
	bc->autoscale_cooldown_ms = n->balancer.autoscale_cooldown_ms;
	bc->netflow_request_timeout_ms = n->balancer.netflow_request_timeout_ms;
	bal_nf_reload(b->nf, b->cfg);
	if (b->target < bc->min_ins)
		b->target = bc->min_ins;
	if (b->target > bc->max_ins)
		b->target = bc->max_ins;
	mw_notice("reloaded %s: policy %s, %d..%d INS, target %d, autoscale %s", b->cfg->path,
		  bc->policy, bc->min_ins, bc->max_ins, b->target, bc->autoscale ? "on" : "off");
	reconcile(b);
	if (unapplied) {
		snprintf(err, errlen,
			 "reload: not applied, restart-only (restart mw-balancer and its INS to "
			 "change): %s; their running values are kept (running INS keep "
			 "ins.proxy_protocol %s; an INS spawned later follows the file, and the "
			 "front end follows each INS); every other key was applied",
			 keys, b->cfg->ins.proxy_protocol ? "on" : "off");
		ret = -EAGAIN;
	}
out:
	free(n);
	free(errs);
	return ret;
}

struct bal_ins *bal_pick(struct bal *b, const void *client_addr, size_t alen, const int *skip,
			 int nskip)
{
	struct bal_cand c[256];
	struct bal_ins *map[256], *i, *sorted = NULL;
	unsigned cap = (unsigned)b->cfg->balancer.per_ins_max_conns;
	size_t n = 0;
	int k, idx, best;

	/* Candidates in id order (the list is newest first): repeated min-scan, bounded. */
	for (best = 0;;) {
		int next_id = -1;

		sorted = NULL;
		for (i = b->ins; i; i = i->next)
			if (i->h.id > best && (next_id < 0 || i->h.id < next_id)) {
				next_id = i->h.id;
				sorted = i;
			}
		if (!sorted || n == sizeof(c) / sizeof(c[0]))
			break;
		best = next_id;
		i = sorted;
		if (i->state != BAL_INS_READY || (cap && i->conns >= cap) ||
		    i->hc.state == BAL_HEALTH_FAILING || i->hc.state == BAL_HEALTH_DOWN)
			continue;
		for (k = 0; k < nskip && skip[k] != i->h.id; k++)
			;
		if (k < nskip)
			continue;
		c[n].id = i->h.id;
		c[n].conns = i->conns;
		c[n].cap = cap;
		c[n].recent = i->recent;
		map[n++] = i;
	}
	idx = bal_policy_pick(b->policy, c, n, &b->rr, bal_hash_addr(client_addr, alen),
			      b->cfg->balancer.overload_threshold);
	if (idx < 0)
		return NULL;
	/* least-connections' share bound: what each was given over the last ~64 picks */
	for (i = b->ins; i; i = i->next)
		i->recent -= i->recent >> BAL_RECENT_SHIFT;
	map[idx]->recent += BAL_RECENT_ONE;
	return map[idx];
}
