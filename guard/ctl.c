/* SPDX-License-Identifier: MIT */
/* ctl.c - mw-guard's control socket: one text command per connection, for mwctl guard */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "common/log.h"
#include "guard/guardd.h"

/*
 * Protocol: the balancer's (docs/balancer.md, "Control socket"): the client
 * sends one line, "status", "actions" or "reload", and reads until EOF: "ok"
 * or "error MESSAGE", then records "KIND key=value ...", values without
 * spaces.  The socket is 0600 (root, or mw-guard's user).  Nothing blocks the
 * loop: clients are non-blocking, the answer is built whole (at most
 * CTL_OUT_MAX bytes) and written as the client reads it; a client that takes
 * longer than CTL_TIMEOUT_S is dropped; at most CTL_CLIENTS_MAX at once.
 */

#define CTL_LINE_MAX	256
#define CTL_TIMEOUT_S	2.0
#define CTL_OUT_MAX	(1 << 20)
#define CTL_CLIENTS_MAX 8

struct out {
	char *buf;
	size_t len, cap;
	bool cut;
};

struct ctl_client {
	struct gd_ctl *ctl;
	int fd;
	ev_io io;
	ev_timer timer;
	char buf[CTL_LINE_MAX + 1];
	size_t len, sent;
	struct out out;
};

struct gd_ctl {
	struct guardd *g;
	int fd;
	ev_io io;
	unsigned clients;
	char path[MW_PATH_MAX];
};

static void outf(struct out *o, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void outf(struct out *o, const char *fmt, ...)
{
	va_list ap;
	char *nb;
	int n;

	for (;;) {
		va_start(ap, fmt);
		n = vsnprintf(o->buf ? o->buf + o->len : NULL, o->buf ? o->cap - o->len : 0, fmt,
			      ap);
		va_end(ap);
		if (n < 0)
			return;
		if (o->buf && o->len + (size_t)n < o->cap) {
			o->len += (size_t)n;
			return;
		}
		if (o->cap >= CTL_OUT_MAX) {
			o->cut = true;
			return;
		}
		nb = realloc(o->buf, o->cap ? o->cap * 2 : 4096);
		if (!nb) {
			o->cut = true;
			return;
		}
		o->buf = nb;
		o->cap = o->cap ? o->cap * 2 : 4096;
	}
}

static void cmd_status(struct guardd *g, struct out *o)
{
	const struct gd_engine *e = &g->eng;
	const struct gd_counters *st = &e->st;
	char local[MW_ADDR_STRLEN];
	int i;

	outf(o,
	     "status mode=%s netflow=%s netflow_addr=%s connects=%" PRIu64 " disconnects=%" PRIu64
	     " observations=%" PRIu64 " accepts=%" PRIu64
	     " conns=%zu sources=%zu blocks=%zu listeners=%d conn_drops=%" PRIu64
	     " source_drops=%" PRIu64 " block_drops=%" PRIu64 " listener_drops=%" PRIu64
	     " actions=%" PRIu64 " shield_set=%" PRIu64 " shield_clear=%" PRIu64 " close=%" PRIu64
	     " block=%" PRIu64 " unblock=%" PRIu64 " rotate=%" PRIu64 " rotate_ok=%" PRIu64
	     " rotate_failed=%" PRIu64 " requests=%" PRIu64 " accepted=%" PRIu64
	     " gone=%" PRIu64 " refused=%" PRIu64 " not_sent=%" PRIu64 " reloads=%" PRIu64
	     " reload_errors=%" PRIu64 "\n",
	     g->cfg->guard.mode, g->nf ? "connected" : "disconnected", g->nf_addr, g->connects,
	     g->disconnects, st->observations, st->accepts, e->conns.n, e->sources.n, e->blocks.n,
	     e->nlisteners, e->conns.drops, e->sources.drops, e->blocks.drops, st->listener_drops,
	     g->act.seq, st->actions[GD_SHIELD_SET], st->actions[GD_SHIELD_CLEAR],
	     st->actions[GD_CLOSE], st->actions[GD_BLOCK], st->actions[GD_UNBLOCK],
	     st->actions[GD_ROTATE], g->rotations_ok, g->rotations_failed, g->act.requests,
	     g->act.responses_ok, g->act.gone, g->act.rejected, g->act.send_failed, g->reloads,
	     g->reload_errors);
	for (i = 0; i < e->nlisteners; i++) {
		const struct gd_listener *l = &e->listeners[i];

		outf(o,
		     "listener sock=%" PRIu64 " local=%s protected=%s baseline=%s held=%u slow=%u"
		     " accept_ms=%u response_ms=%u pressure=%s levers=%s closes=%" PRIu64 "\n",
		     l->id, mw_addr_format(&l->local, local, sizeof(local)),
		     l->proto >= 0 ? "yes" : "no", l->baseline ? "set" : "-", l->held, l->slow,
		     l->accept_ms, l->response_ms, l->pressure ? "yes" : "no",
		     l->levers ? "on" : "off", l->closes);
	}
}

static void cmd_actions(struct guardd *g, struct out *o)
{
	const struct gd_record *r;
	size_t i;

	for (i = 0; (r = gd_act_record(&g->act, i)); i++)
		outf(o,
		     "action n=%" PRIu64 " time=%.3f kind=%s%s target=%s reason=%s result=%s"
		     " evidence=%s\n",
		     r->n, r->when,
		     r->result[0] == 'r' && !strcmp(r->result, "report") ? "would_" : "",
		     gd_kind_name(r->kind), r->target, r->reason, r->result, r->evidence);
}

static void run(struct guardd *g, char *line, struct out *o)
{
	char err[512];

	line[strcspn(line, "\r")] = 0;
	if (!strcmp(line, "status")) {
		outf(o, "ok\n");
		cmd_status(g, o);
	} else if (!strcmp(line, "actions")) {
		outf(o, "ok\n");
		cmd_actions(g, o);
	} else if (!strcmp(line, "reload")) {
		if (gd_reload(g, err, sizeof(err))) {
			mw_warn("reload rejected, old configuration kept: %s", err);
			outf(o, "error %s\n", err);
		} else {
			outf(o, "ok\n");
		}
	} else {
		outf(o, "error unknown command '%.64s' (status, actions, reload)\n", line);
	}
}

static void client_free(struct ctl_client *c)
{
	struct ev_loop *loop = c->ctl->g->d->loop;

	ev_io_stop(loop, &c->io);
	ev_timer_stop(loop, &c->timer);
	close(c->fd);
	if (c->ctl->clients-- == CTL_CLIENTS_MAX)
		ev_io_start(loop, &c->ctl->io);
	free(c->out.buf);
	free(c);
}

static void client_timeout_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct ctl_client *c = w->data;

	if (c->out.len)
		mw_warn("control client did not read its answer within %.0f s: dropped",
			CTL_TIMEOUT_S);
	client_free(c);
}

static void client_write_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	struct ctl_client *c = w->data;
	ssize_t n;

	while (c->sent < c->out.len) {
		n = send(c->fd, c->out.buf + c->sent, c->out.len - c->sent,
			 MSG_NOSIGNAL | MSG_DONTWAIT);
		if (n < 0 && errno == EAGAIN)
			return;
		if (n <= 0) {
			mw_info("control client: send: %s", n < 0 ? strerror(errno) : "closed");
			break;
		}
		c->sent += (size_t)n;
	}
	client_free(c);
}

static void client_read_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	struct ctl_client *c = w->data;
	char *nl;
	ssize_t n;

	n = recv(c->fd, c->buf + c->len, CTL_LINE_MAX - c->len, MSG_DONTWAIT);
	if (n < 0 && errno == EAGAIN)
		return;
	if (n <= 0) {
		client_free(c);
		return;
	}
	c->len += (size_t)n;
	c->buf[c->len] = 0;
	nl = strchr(c->buf, '\n');
	if (!nl && c->len < CTL_LINE_MAX)
		return;
	if (!nl) {
		outf(&c->out, "error command longer than %d bytes\n", CTL_LINE_MAX);
	} else {
		*nl = 0;
		run(c->ctl->g, c->buf, &c->out);
	}
	if (c->out.cut)
		mw_warn("control answer cut at %zu bytes", c->out.len);
	ev_io_stop(loop, &c->io);
	ev_io_set(&c->io, c->fd, EV_WRITE);
	ev_set_cb(&c->io, client_write_cb);
	ev_io_start(loop, &c->io);
	ev_timer_stop(loop, &c->timer);
	ev_timer_set(&c->timer, CTL_TIMEOUT_S, 0);
	ev_timer_start(loop, &c->timer);
	client_write_cb(loop, &c->io, EV_WRITE);
}

static void accept_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	struct gd_ctl *ctl = w->data;
	struct ctl_client *c;
	int fd;

	if (ctl->clients >= CTL_CLIENTS_MAX) {
		ev_io_stop(loop, &ctl->io); /* client_free() starts it again */
		return;
	}
	fd = accept4(ctl->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
	if (fd < 0) {
		if (errno != EAGAIN && errno != ECONNABORTED)
			mw_log_ratelimited(MW_LOG_WARN, "control socket: accept: %s",
					   strerror(errno));
		return;
	}
	c = calloc(1, sizeof(*c));
	if (!c) {
		mw_warn("control socket: out of memory for a client");
		close(fd);
		return;
	}
	ctl->clients++;
	c->ctl = ctl;
	c->fd = fd;
	ev_io_init(&c->io, client_read_cb, fd, EV_READ);
	c->io.data = c;
	ev_io_start(loop, &c->io);
	ev_timer_init(&c->timer, client_timeout_cb, CTL_TIMEOUT_S, 0);
	c->timer.data = c;
	ev_timer_start(loop, &c->timer);
}

/**
 * gd_ctl_open() - listen on guard.control_socket (0600)
 * Return: 0 or -errno with @err
 */
int gd_ctl_open(struct guardd *g, char *err, size_t errlen)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	struct gd_ctl *ctl;
	mode_t old;
	int ret;

	ctl = calloc(1, sizeof(*ctl));
	if (!ctl)
		return -ENOMEM;
	ctl->g = g;
	snprintf(ctl->path, sizeof(ctl->path), "%s", g->cfg->guard.control_socket);
	snprintf(sun.sun_path, sizeof(sun.sun_path), "%s", ctl->path);
	ctl->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (ctl->fd < 0) {
		ret = -errno;
		goto fail;
	}
	unlink(ctl->path);
	old = umask(0077);
	ret = bind(ctl->fd, (struct sockaddr *)&sun, sizeof(sun));
	umask(old);
	if (ret || chmod(ctl->path, 0600) || listen(ctl->fd, 16)) {
		ret = -errno;
		goto fail;
	}
	ev_io_init(&ctl->io, accept_cb, ctl->fd, EV_READ);
	ctl->io.data = ctl;
	ev_io_start(g->d->loop, &ctl->io);
	g->ctl = ctl;
	return 0;
fail:
	snprintf(err, errlen, "control socket %s: %s", ctl->path, strerror(-ret));
	if (ctl->fd >= 0)
		close(ctl->fd);
	free(ctl);
	return ret;
}

void gd_ctl_close(struct guardd *g)
{
	struct gd_ctl *ctl = g->ctl;

	if (!ctl)
		return;
	ev_io_stop(g->d->loop, &ctl->io);
	close(ctl->fd);
	unlink(ctl->path);
	free(ctl);
	g->ctl = NULL;
}
