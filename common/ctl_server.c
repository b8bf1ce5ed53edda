/* SPDX-License-Identifier: MIT */
/* ctl_server.c - a daemon's line-framed control socket: one command per connection */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "common/config.h"
#include "common/ctl_server.h"
#include "common/log.h"

struct ctl_client {
	struct mw_ctl_server *s;
	struct ctl_client *prev, *next; /* the server's clients */
	int fd;
	ev_io io;
	ev_timer timer;
	char buf[MW_CTL_LINE_MAX + 1];
	size_t len;
	struct mw_ctl_out out; /* the answer, once the line is in */
	size_t sent;
};

struct mw_ctl_server {
	struct ev_loop *loop;
	mw_ctl_run_fn *run;
	void *ctx;
	int fd;
	ev_io io;
	struct ctl_client *list;
	unsigned clients, clients_max;
	char path[MW_PATH_MAX];
};

/**
 * mw_ctl_outf() - append to an answer, growing it up to MW_CTL_OUT_MAX
 */
void mw_ctl_outf(struct mw_ctl_out *o, const char *fmt, ...)
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
		if (o->cap >= MW_CTL_OUT_MAX) {
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

static void client_free(struct ctl_client *c)
{
	struct mw_ctl_server *s = c->s;

	ev_io_stop(s->loop, &c->io);
	ev_timer_stop(s->loop, &c->timer);
	close(c->fd);
	if (c->prev)
		c->prev->next = c->next;
	else
		s->list = c->next;
	if (c->next)
		c->next->prev = c->prev;
	if (s->clients-- == s->clients_max && s->fd >= 0)
		ev_io_start(s->loop, &s->io);
	free(c->out.buf);
	free(c);
}

static void client_timeout_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct ctl_client *c = w->data;

	if (c->out.len)
		mw_warn("control client did not read its answer within %.0f s (%zu of %zu "
			"bytes): dropped",
			MW_CTL_TIMEOUT_S, c->sent, c->out.len);
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

static void client_read_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	struct ctl_client *c = w->data;
	char *nl;
	ssize_t n;

	n = recv(c->fd, c->buf + c->len, MW_CTL_LINE_MAX - c->len, MSG_DONTWAIT);
	if (n < 0 && errno == EAGAIN)
		return;
	if (n <= 0) {
		client_free(c);
		return;
	}
	c->len += (size_t)n;
	c->buf[c->len] = 0;
	nl = strchr(c->buf, '\n');
	if (!nl && c->len < MW_CTL_LINE_MAX)
		return;
	if (!nl) {
		mw_ctl_outf(&c->out, "error command longer than %d bytes\n", MW_CTL_LINE_MAX);
	} else {
		*nl = 0;
		c->buf[strcspn(c->buf, "\r")] = 0;
		c->s->run(c->s->ctx, c->buf, &c->out);
	}
	if (c->out.cut)
		mw_warn("control answer cut at %zu bytes (limit %d, or out of memory)", c->out.len,
			MW_CTL_OUT_MAX);
	/* The answer goes out as the client reads it; the clock restarts for it. */
	ev_io_stop(loop, &c->io);
	ev_io_set(&c->io, c->fd, EV_WRITE);
	ev_set_cb(&c->io, client_write_cb);
	ev_io_start(loop, &c->io);
	ev_timer_stop(loop, &c->timer);
	ev_timer_set(&c->timer, MW_CTL_TIMEOUT_S, 0);
	ev_timer_start(loop, &c->timer);
	client_write_cb(loop, &c->io, EV_WRITE);
}

static void accept_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	struct mw_ctl_server *s = w->data;
	struct ctl_client *c;
	int fd;

	if (s->clients >= s->clients_max) {
		ev_io_stop(loop, &s->io); /* client_free() starts it again */
		return;
	}
	fd = accept4(s->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
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
	s->clients++;
	c->s = s;
	c->next = s->list;
	if (s->list)
		s->list->prev = c;
	s->list = c;
	c->fd = fd;
	ev_io_init(&c->io, client_read_cb, fd, EV_READ);
	c->io.data = c;
	ev_io_start(loop, &c->io);
	ev_timer_init(&c->timer, client_timeout_cb, MW_CTL_TIMEOUT_S, 0);
	c->timer.data = c;
	ev_timer_start(loop, &c->timer);
}

/**
 * mw_ctl_server_open() - listen on @path (0600) and answer each line with @run
 * @clients_max: clients served at once (at least 1)
 * Return: 0 or -errno with @err
 */
int mw_ctl_server_open(struct mw_ctl_server **out, struct ev_loop *loop, const char *path,
		       unsigned clients_max, mw_ctl_run_fn *run, void *ctx, char *err,
		       size_t errlen)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	struct mw_ctl_server *s;
	mode_t old;
	int ret;

	if (strlen(path) >= sizeof(sun.sun_path)) {
		snprintf(err, errlen, "control socket %s: path longer than %zu bytes", path,
			 sizeof(sun.sun_path) - 1);
		return -ENAMETOOLONG;
	}
	s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	s->loop = loop;
	s->run = run;
	s->ctx = ctx;
	s->clients_max = clients_max ? clients_max : 1;
	snprintf(s->path, sizeof(s->path), "%s", path);
	snprintf(sun.sun_path, sizeof(sun.sun_path), "%s", path);
	s->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (s->fd < 0) {
		ret = -errno;
		goto fail;
	}
	unlink(s->path);
	old = umask(0077);
	ret = bind(s->fd, (struct sockaddr *)&sun, sizeof(sun));
	umask(old);
	if (ret || chmod(s->path, 0600) || listen(s->fd, 64)) {
		ret = -errno;
		goto fail;
	}
	ev_io_init(&s->io, accept_cb, s->fd, EV_READ);
	s->io.data = s;
	ev_io_start(loop, &s->io);
	*out = s;
	return 0;
fail:
	snprintf(err, errlen, "control socket %s: %s", s->path, strerror(-ret));
	if (s->fd >= 0)
		close(s->fd);
	free(s);
	return ret;
}

/* mw_ctl_server_close() - stop listening and remove the socket; clients being
 * answered are dropped. */
void mw_ctl_server_close(struct mw_ctl_server *s)
{
	struct ctl_client *c, *next;

	if (!s)
		return;
	ev_io_stop(s->loop, &s->io);
	close(s->fd);
	s->fd = -1;
	for (c = s->list; c; c = next) {
		next = c->next;
		client_free(c);
	}
	unlink(s->path);
	free(s);
}
