/* SPDX-License-Identifier: MIT */
/* ctl.c - mw-balancer's control socket: one text command per connection, for mwctl */
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
#include <arpa/inet.h>

#include "balancer/bal.h"
#include "balancer/nf_aggregate.h"
#include "common/log.h"

/*
 * Protocol (docs/balancer.md, "Control socket"): the client connects, sends
 * one line (at most CTL_LINE_MAX bytes, "\n"-terminated), and reads until
 * EOF.  The answer's first line is "ok" or "error MESSAGE"; after "ok" come
 * records, one a line, "KIND key=value key=value ...", values without spaces.
 * A client that sends nothing within CTL_TIMEOUT_S is dropped.  The socket
 * is 0600: only root (or the balancer's user) can drive the balancer.
 *
 * Nothing here blocks the loop that moves client bytes: the client socket
 * is non-blocking, the answer is built whole into a buffer of at most
 * CTL_OUT_MAX bytes and written as the client reads it (EV_WRITE); a client
 * that has not read it all within CTL_TIMEOUT_S is dropped (logged).  At
 * most CTL_CLIENTS_MAX clients at once; more wait in the listen backlog.
 */

#define CTL_LINE_MAX	512
#define CTL_TIMEOUT_S	2.0
#define CTL_OUT_MAX	(1 << 20)
#define CTL_CLIENTS_MAX 16

struct out {
	char *buf;
	size_t len, cap;
	bool cut; /* CTL_OUT_MAX reached or no memory: the answer is incomplete */
};

struct ctl_client {
	struct bal_ctl *ctl;
	int fd;
	ev_io io;
	ev_timer timer;
	char buf[CTL_LINE_MAX + 1];
	size_t len;
	struct out out; /* the answer, once the line is in */
	size_t sent;
};

struct bal_ctl {
	struct bal *b;
	int fd;
	ev_io io;
	unsigned clients;
	char path[MW_PATH_MAX];
};

static void outf(struct out *o, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void outf(struct out *o, const char *fmt, ...)
{
	va_list ap;
	int n;
	char *nb;

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

static void rec_ins(struct out *o, const struct bal *b, const struct bal_ins *i)
{
	char addr[INET_ADDRSTRLEN];

	inet_ntop(AF_INET, &i->h.addr, addr, sizeof(addr));
	outf(o,
	     "ins id=%d state=%s address=%s pid=%d name=%s conns=%u total=%" PRIu64
	     " failed=%" PRIu64 " rx=%" PRIu64 " tx=%" PRIu64 " uptime=%.1f health=%s"
	     " health_fails=%u health_checks=%" PRIu64 " health_failed=%" PRIu64
	     " health_last=%s health_pvm=%s proxy_protocol=%s\n",
	     i->h.id, bal_ins_state_name(i->state), addr, (int)i->h.pid,
	     i->h.name[0] ? i->h.name : "-", i->conns, i->total, i->failed, i->rx, i->tx,
	     ev_now(b->loop) - i->spawned_at, bal_health_state_name(i->hc.state), i->hc.fails,
	     i->hc.checks, i->hc.failed, i->hc.failed ? bal_reason_token(i->hc.last) : "-",
	     bal_health_pvm_view_name(i), i->proxy_protocol ? "on" : "off");
}

/* Parse a decimal int, whole string.  Return: 0 or -EINVAL */
static int parse_int(const char *s, int *v)
{
	char *end;
	long n;

	errno = 0;
	n = strtol(s, &end, 10);
	if (errno || end == s || *end || n < -1000000 || n > 1000000)
		return -EINVAL;
	*v = (int)n;
	return 0;
}

/* One consumer of the merged Netflow stream, with its role. */
static void ctl_nf_line(void *ctx, const char *line)
{
	outf(ctx, "%s\n", line);
}

static void run(struct bal *b, char *line, struct out *o)
{
	const struct mw_balancer_config *bc = &b->cfg->balancer;
	char *argv[8], *save = NULL, *t, err[1024] = "";
	const struct bal_ins *i;
	enum bal_policy p;
	unsigned conns = 0;
	uint64_t total = 0, kf_updates, kf_us_max, kf_us_last;
	int argc = 0, n, ret = 0;

	for (t = strtok_r(line, " \t\r", &save); t && argc < 8; t = strtok_r(NULL, " \t\r", &save))
		argv[argc++] = t;
	if (t) {
		outf(o, "error too many words\n");
		return;
	}
	if (argc == 1 && !strcmp(argv[0], "netflow")) {
		outf(o, "ok\n");
		bal_nf_list(b->nf, ctl_nf_line, o);
		return;
	}
	if (argc == 1 && !strcmp(argv[0], "status")) {
		for (i = b->ins; i; i = i->next) {
			conns += i->conns;
			total += i->total;
		}
		outf(o, "ok\n");
		outf(o,
		     "status backend=%s policy=%s live=%d target=%d min=%d max=%d conns=%u "
		     "total=%" PRIu64 " spawned=%" PRIu64 " replaced=%" PRIu64
		     " listeners=%d proxy_protocol=%s autoscale=%s autoscale_up_conns=%d"
		     " autoscale_down_conns=%d autoscale_cooldown_ms=%d autoscale_state=%s"
		     " autoscale_ups=%" PRIu64 " autoscale_downs=%" PRIu64 "\n",
		     b->be.ops->name, bal_policy_name(b->policy), bal_ins_live(b), b->target,
		     bc->min_ins, bc->max_ins, conns, total, b->spawned, b->replaced,
		     bc->listen_count, b->cfg->ins.proxy_protocol ? "on" : "off",
		     bc->autoscale ? "on" : "off", bc->autoscale_up_conns, bc->autoscale_down_conns,
		     bc->autoscale_cooldown_ms,
		     bc->autoscale ? bal_autoscale_reason_name(b->as_reason) : "off", b->as_ups,
		     b->as_downs);
		if (o->len)
			o->len--; /* the record goes on: front-end and health counters */
		outf(o, " fe_conns=%u max_conns=%d draining=%d in_rotation=%d accept_paused=%s",
		     b->kf ? conns : bal_fe_conns(b->fe), bc->max_conns,
		     bal_ins_running(b) - bal_ins_live(b), bal_ins_in_rotation(b),
		     bal_fe_accept_paused(b->fe) ? "yes" : "no");
		bal_kf_stats(b->kf, &kf_updates, &kf_us_max, &kf_us_last);
		outf(o,
		     " mode=%s kf_updates=%" PRIu64 " kf_update_us_max=%" PRIu64
		     " kf_update_us_last=%" PRIu64,
		     b->kf ? "kernel" : "splice", kf_updates, kf_us_max, kf_us_last);
		for (n = 0; n < BAL_R_COUNT; n++)
			outf(o, " fail_%s=%" PRIu64, bal_reason_token((enum bal_reason)n),
			     b->reasons[n]);
		outf(o, "\n");
		return;
	}
	if (argc == 2 && !strcmp(argv[0], "ins") && !strcmp(argv[1], "list")) {
		outf(o, "ok\n");
		/* in id order */
		for (n = 0;;) {
			const struct bal_ins *next = NULL;

			for (i = b->ins; i; i = i->next)
				if (i->h.id > n && (!next || i->h.id < next->h.id))
					next = i;
			if (!next)
				break;
			rec_ins(o, b, next);
			n = next->h.id;
		}
		return;
	}
	if (argc == 2 && !strcmp(argv[0], "ins") && !strcmp(argv[1], "spawn")) {
		ret = bal_ins_spawn(b, err, sizeof(err));
		if (ret > 0) {
			outf(o, "ok\n");
			rec_ins(o, b, bal_ins_find(b, ret));
			return;
		}
	} else if ((argc == 3 || argc == 4) && !strcmp(argv[0], "ins") &&
		   !strcmp(argv[1], "retire")) {
		if (parse_int(argv[2], &n) || n < 1) {
			outf(o, "error ins retire: '%s' is not an INS id\n", argv[2]);
			return;
		}
		if (argc == 4 && strcmp(argv[3], "drain")) {
			outf(o, "error ins retire: unknown option '%s' (drain)\n", argv[3]);
			return;
		}
		ret = bal_ins_retire(b, n, argc == 4, err, sizeof(err));
	} else if (argc == 2 && !strcmp(argv[0], "scale")) {
		if (parse_int(argv[1], &n)) {
			outf(o, "error scale: '%s' is not a number\n", argv[1]);
			return;
		}
		ret = bal_scale(b, n, err, sizeof(err));
	} else if (argc == 2 && !strcmp(argv[0], "policy")) {
		if (bal_policy_parse(argv[1], &p)) {
			outf(o,
			     "error unknown policy '%s' (round-robin, least-connections, "
			     "least-busy, hash)\n",
			     argv[1]);
			return;
		}
		b->policy = p;
		bal_kf_sync(b); /* kernel mode: the new policy steers from now on */
		snprintf(b->cfg->balancer.policy, sizeof(b->cfg->balancer.policy), "%s", argv[1]);
		mw_notice("policy %s", argv[1]);
	} else if (argc == 1 && !strcmp(argv[0], "reload")) {
		ret = bal_reload(b, err, sizeof(err));
		if (ret == -EAGAIN)
			mw_warn("%s", err);
		else if (ret)
			mw_warn("reload rejected, old configuration kept: %s", err);
	} else {
		outf(o, "error unknown command '%s'\n", argc ? argv[0] : "");
		return;
	}
	if (ret < 0)
		outf(o, "error %s\n", err);
	else
		outf(o, "ok\n");
}

static void client_free(struct ctl_client *c)
{
	struct ev_loop *loop = c->ctl->b->loop;

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
		mw_warn("control client did not read its answer within %.0f s (%zu of %zu "
			"bytes): dropped",
			CTL_TIMEOUT_S, c->sent, c->out.len);
	client_free(c);
}

/* Write what the client takes now; done (or failed): free it. */
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

static void client_cb(struct ev_loop *loop, ev_io *w, int revents)
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
	if (!nl)
		outf(&c->out, "error command longer than %d bytes\n", CTL_LINE_MAX);
	else {
		*nl = 0;
		run(c->ctl->b, c->buf, &c->out);
	}
	if (c->out.cut)
		mw_warn("control answer cut at %zu bytes (limit %d, or out of memory)", c->out.len,
			CTL_OUT_MAX);
	/* The answer goes out as the client reads it; the clock restarts for it. */
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
	struct bal_ctl *ctl = w->data;
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
	ev_io_init(&c->io, client_cb, fd, EV_READ);
	c->io.data = c;
	ev_io_start(loop, &c->io);
	ev_timer_init(&c->timer, client_timeout_cb, CTL_TIMEOUT_S, 0);
	c->timer.data = c;
	ev_timer_start(loop, &c->timer);
}

int bal_ctl_open(struct bal *b, struct bal_ctl **out, char *err, size_t errlen)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	struct bal_ctl *ctl;
	mode_t old;
	int ret;

	ctl = calloc(1, sizeof(*ctl));
	if (!ctl)
		return -ENOMEM;
	ctl->b = b;
	snprintf(ctl->path, sizeof(ctl->path), "%s", b->cfg->balancer.control_socket);
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
	if (ret || chmod(ctl->path, 0600) || listen(ctl->fd, 64)) {
		ret = -errno;
		goto fail;
	}
	ev_io_init(&ctl->io, accept_cb, ctl->fd, EV_READ);
	ctl->io.data = ctl;
	ev_io_start(b->loop, &ctl->io);
	*out = ctl;
	return 0;
fail:
	snprintf(err, errlen, "control socket %s: %s", ctl->path, strerror(-ret));
	if (ctl->fd >= 0)
		close(ctl->fd);
	free(ctl);
	return ret;
}

void bal_ctl_close(struct bal_ctl *ctl)
{
	if (!ctl)
		return;
	ev_io_stop(ctl->b->loop, &ctl->io);
	close(ctl->fd);
	unlink(ctl->path);
	free(ctl);
}
