/* SPDX-License-Identifier: MIT */
/* balctl.c - mw-guard's rotations: "ins spawn" and "ins retire pvm:ID drain" to mw-balancer */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "common/log.h"
#include "guard/guardd.h"

/*
 * Theory of operation
 *
 * A rotate action (decide.c) names the attacked INS.  Here it becomes two
 * commands on guard.balancer_socket, in the framing mwctl uses with the
 * balancer (docs/balancer.md, "Control socket": one line per connection, the
 * answer "ok" and records, or "error MESSAGE", read until EOF):
 *   1. "ins spawn": a fresh INS, ready for the connections to come;
 *   2. "ins retire pvm:ID drain": the attacked INS (by mw-pvm's id: the domid on
 *      Xen) takes no new connection and is stopped once its own have ended (or
 *      after balancer.drain_timeout_ms).
 * The second is sent only when the first succeeded: draining without a fresh
 * INS would only take capacity away.  Nothing blocks the loop (non-blocking
 * socket, watchers, BALCTL_TIMEOUT_S per command).  One rotation at a time (the
 * engine decides at most one per guard.rotate_interval_ms anyway); a rotation
 * decided while one is under way is not sent ("not_sent:busy").  The action's
 * record gets "ok", "rejected:spawn" / "rejected:retire" (the balancer's message
 * is logged), or "not_sent:WHY".  When the spawn failed nothing was drained: the
 * engine may choose the same INS again at the next interval.
 */

#define BALCTL_TIMEOUT_S 5.0
#define BALCTL_IN_MAX	 4096

enum step { IDLE, SPAWN, RETIRE };

struct gd_balctl {
	struct guardd *g;
	enum step step;
	uint64_t n;	/* the action */
	uint16_t ins;	/* the INS to drain */
	int fresh;	/* the INS spawned */
	int fd;
	ev_io io;
	ev_timer timer;
	char in[BALCTL_IN_MAX];
	size_t in_len;
};

static void finish(struct gd_balctl *b, const char *result)
{
	struct ev_loop *loop = b->g->d->loop;

	ev_io_stop(loop, &b->io);
	ev_timer_stop(loop, &b->timer);
	if (b->fd >= 0)
		close(b->fd);
	b->fd = -1;
	if (!strcmp(result, "ok")) {
		b->g->rotations_ok++;
	} else {
		b->g->rotations_failed++;
		/* Nothing drained: the INS may be rotated at the next interval. */
		if (b->step == SPAWN)
			gd_engine_unrotate(&b->g->eng, b->ins);
	}
	b->step = IDLE;
	gd_act_result(&b->g->act, b->n, result);
}

/* Connect and write one command line. Return: 0 or -errno */
static int send_line(struct gd_balctl *b, const char *line)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	const char *path = b->g->cfg->guard.balancer_socket;
	size_t len = strlen(line);
	ssize_t n;

	if (strlen(path) >= sizeof(sun.sun_path))
		return -ENAMETOOLONG;
	memcpy(sun.sun_path, path, strlen(path) + 1);
	b->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (b->fd < 0)
		return -errno;
	/* AF_UNIX: connected at once, or refused (EAGAIN: its backlog is full). */
	if (connect(b->fd, (struct sockaddr *)&sun, sizeof(sun)))
		return -errno;
	n = send(b->fd, line, len, MSG_NOSIGNAL | MSG_DONTWAIT);
	if (n != (ssize_t)len)
		return n < 0 ? -errno : -EAGAIN;
	b->in_len = 0;
	ev_io_set(&b->io, b->fd, EV_READ);
	ev_io_start(b->g->d->loop, &b->io);
	ev_timer_set(&b->timer, BALCTL_TIMEOUT_S, 0);
	ev_timer_start(b->g->d->loop, &b->timer);
	return 0;
}

static void start_step(struct gd_balctl *b, enum step step)
{
	char line[64];
	int ret;

	b->step = step;
	if (step == SPAWN)
		snprintf(line, sizeof(line), "ins spawn\n");
	else
		/* By mw-pvm's id: on Xen that is the domid, not the balancer's id. */
		snprintf(line, sizeof(line), "ins retire pvm:%u drain\n", b->ins);
	ret = send_line(b, line);
	if (ret) {
		char result[48];

		mw_warn("action %" PRIu64 ": rotate: balancer %s: %s", b->n,
			b->g->cfg->guard.balancer_socket, strerror(-ret));
		snprintf(result, sizeof(result), "not_sent:%s", step == SPAWN ? "spawn" : "retire");
		finish(b, result);
	}
}

/* The whole answer is in: "ok" (and records) or "error MESSAGE". */
static void answered(struct gd_balctl *b)
{
	const char *id;

	b->in[b->in_len] = 0;
	if (strncmp(b->in, "ok\n", 3)) {
		b->in[strcspn(b->in, "\n")] = 0;
		mw_warn("action %" PRIu64 ": rotate: the balancer refused %s: %s", b->n,
			b->step == SPAWN ? "ins spawn" : "ins retire", b->in[0] ? b->in : "(empty)");
		finish(b, b->step == SPAWN ? "rejected:spawn" : "rejected:retire");
		return;
	}
	if (b->step == SPAWN) {
		id = strstr(b->in, "ins id=");
		b->fresh = id ? (int)strtol(id + 7, NULL, 10) : 0;
		ev_io_stop(b->g->d->loop, &b->io);
		ev_timer_stop(b->g->d->loop, &b->timer);
		close(b->fd);
		b->fd = -1;
		start_step(b, RETIRE);
		return;
	}
	mw_notice("action %" PRIu64 ": rotate: INS %d spawned, INS %u draining", b->n, b->fresh,
		  b->ins);
	finish(b, "ok");
}

static void read_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	struct gd_balctl *b = w->data;
	ssize_t n;

	n = recv(b->fd, b->in + b->in_len, sizeof(b->in) - 1 - b->in_len, MSG_DONTWAIT);
	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	if (n > 0) {
		b->in_len += (size_t)n;
		if (b->in_len < sizeof(b->in) - 1)
			return;
	}
	if (n < 0) {
		mw_warn("action %" PRIu64 ": rotate: balancer: %s", b->n, strerror(errno));
		finish(b, b->step == SPAWN ? "not_sent:spawn" : "not_sent:retire");
		return;
	}
	answered(b); /* EOF, or the answer filled the buffer (its first line is all we need) */
}

static void timeout_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct gd_balctl *b = w->data;

	mw_warn("action %" PRIu64 ": rotate: the balancer did not answer %s within %.0f s", b->n,
		b->step == SPAWN ? "ins spawn" : "ins retire", BALCTL_TIMEOUT_S);
	finish(b, b->step == SPAWN ? "not_sent:spawn_timeout" : "not_sent:retire_timeout");
}

/* gd_balctl_rotate() - struct gd_act's rotate hook: spawn, then drain @ins */
static int gd_balctl_rotate(void *ctx, uint64_t n, uint16_t ins)
{
	struct gd_balctl *b = ctx;

	if (!b->g->cfg->guard.balancer_socket[0]) {
		gd_act_result(&b->g->act, n, "not_sent:no_balancer");
		b->g->rotations_failed++;
		return -ENOTCONN;
	}
	if (b->step != IDLE) {
		gd_act_result(&b->g->act, n, "not_sent:busy");
		b->g->rotations_failed++;
		return -EBUSY;
	}
	b->n = n;
	b->ins = ins;
	b->fresh = 0;
	start_step(b, SPAWN);
	return 0;
}

/* gd_balctl_open() - the rotate hook of @g's action sink. Return: 0 or -ENOMEM */
int gd_balctl_open(struct guardd *g)
{
	struct gd_balctl *b = calloc(1, sizeof(*b));

	if (!b)
		return -ENOMEM;
	b->g = g;
	b->fd = -1;
	ev_init(&b->io, read_cb);
	b->io.data = b;
	ev_init(&b->timer, timeout_cb);
	b->timer.data = b;
	g->balctl = b;
	g->act.rotate = gd_balctl_rotate;
	g->act.rotate_ctx = b;
	return 0;
}

void gd_balctl_close(struct guardd *g)
{
	struct gd_balctl *b = g->balctl;

	if (!b)
		return;
	ev_io_stop(g->d->loop, &b->io);
	ev_timer_stop(g->d->loop, &b->timer);
	if (b->fd >= 0)
		close(b->fd);
	free(b);
	g->balctl = NULL;
	g->act.rotate = NULL;
}
