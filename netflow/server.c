/* SPDX-License-Identifier: MIT */
/* server.c - Netflow server: consumers, bounded per-consumer queues, request dispatch */
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/cidr.h"
#include "common/log.h"
#include "netflow/server.h"

/*
 * Theory of operation
 *
 * The protected app must never wait for a consumer (the original wrote
 * observations with a blocking send from its one relay thread, so a stuck
 * consumer stalled every socket of the app).  Here every consumer has its own
 * output buffer and a non-blocking socket:
 *
 *   publish:  the observation is encoded once and appended to each watching
 *             consumer's buffer, unless that holds `queue` observations'
 *             worth of bytes already: then it is dropped and counted.
 *   respond:  always appended (a response is never dropped); responses are
 *             bounded because a consumer's socket is not read while it has
 *             MAX_INFLIGHT requests unanswered or a full buffer.
 *   write:    a write watcher runs while the buffer is not empty.
 *   stall:    a buffer that has not moved for stall_ms (the consumer does not
 *             read) gets the consumer disconnected.
 *
 * Requests are framed by their signature (the wire has no length field): an
 * unknown signature, or a message that is not a request, cannot be skipped
 * and ends that consumer; a well-framed request that fails the semantic
 * check is answered -EINVAL.  MonitorOn/Off are answered here (val 1, as the
 * original); every other request goes to ops->request, which answers later
 * through mw_nf_server_respond() with the consumer's serial, so an answer for
 * a consumer that has left finds nobody and is discarded.
 */

#define NF_IN_BUF	  (MW_NF_REQUEST_SIZE * 64)
#define NF_OUT_MIN	  (16 * 1024)
#define NF_ACCEPT_BATCH	  32
#define NF_ACCEPT_PAUSE_S 0.1 /* accept paused this long when out of fds (EMFILE...) */
#define NF_SNDBUF	  (64 * 1024)

struct nf_consumer {
	struct mw_nf_server *srv;
	struct nf_consumer *next, *prev;
	uint64_t serial;
	int fd;
	ev_io rio, wio;
	bool monitor;
	bool broken; /* a response could not be queued: dropped by the next callback */
	unsigned inflight;
	uint8_t in[NF_IN_BUF];
	size_t in_len;
	uint8_t *out;
	size_t out_head, out_len, out_cap;
	ev_tstamp since; /* the buffer last moved (or became non-empty) */
	uint64_t drops;
	char peer[MW_ADDR_STRLEN];
};

struct mw_nf_server {
	struct ev_loop *loop;
	struct mw_nf_server_ops ops;
	struct mw_cidr allow;
	size_t out_limit; /* observation bytes held per consumer */
	ev_tstamp stall;
	int fd;
	ev_io lio;
	ev_timer stall_timer;
	ev_timer accept_timer; /* accept paused: out of fds or memory */
	struct mw_addr addr;
	struct nf_consumer *consumers;
	unsigned nwatching;
	uint64_t next_serial;
	struct mw_nf_server_stats st;
};

static void nf_drop(struct nf_consumer *c, const char *why)
{
	struct mw_nf_server *srv = c->srv;

	mw_info("netflow: consumer %s disconnected: %s (%llu observation(s) dropped)", c->peer, why,
		(unsigned long long)c->drops);
	if (c->monitor && --srv->nwatching == 0 && srv->ops.watching)
		srv->ops.watching(srv->ops.ctx, false);
	ev_io_stop(srv->loop, &c->rio);
	ev_io_stop(srv->loop, &c->wio);
	close(c->fd);
	if (c->prev)
		c->prev->next = c->next;
	else
		srv->consumers = c->next;
	if (c->next)
		c->next->prev = c->prev;
	srv->st.consumers--;
	free(c->out);
	free(c);
}

static void nf_set_monitor(struct nf_consumer *c, bool on)
{
	struct mw_nf_server *srv = c->srv;

	if (c->monitor == on)
		return;
	c->monitor = on;
	if (on && srv->nwatching++ == 0 && srv->ops.watching)
		srv->ops.watching(srv->ops.ctx, true);
	else if (!on && --srv->nwatching == 0 && srv->ops.watching)
		srv->ops.watching(srv->ops.ctx, false);
}

/* Room for @n more bytes at the end of the buffer: compact, then grow. */
static int nf_reserve(struct nf_consumer *c, size_t n)
{
	size_t cap;
	uint8_t *p;

	if (c->out_head + c->out_len + n <= c->out_cap)
		return 0;
	if (c->out_head) {
		memmove(c->out, c->out + c->out_head, c->out_len);
		c->out_head = 0;
		if (c->out_len + n <= c->out_cap)
			return 0;
	}
	cap = c->out_cap ? c->out_cap : NF_OUT_MIN;
	while (cap < c->out_len + n)
		cap *= 2;
	p = realloc(c->out, cap);
	if (!p)
		return -ENOMEM;
	c->out = p;
	c->out_cap = cap;
	return 0;
}

static int nf_append(struct nf_consumer *c, const uint8_t *msg, size_t n, bool response)
{
	struct mw_nf_server *srv = c->srv;

	if (!response && c->out_len + n > srv->out_limit)
		return -ENOBUFS;
	if (nf_reserve(c, n))
		return -ENOMEM;
	if (!c->out_len) {
		c->since = ev_now(srv->loop);
		ev_io_start(srv->loop, &c->wio);
	}
	memcpy(c->out + c->out_head + c->out_len, msg, n);
	c->out_len += n;
	return 0;
}

/* Read requests only while their answers have somewhere to go. */
static void nf_update_reading(struct nf_consumer *c)
{
	bool want = c->inflight < MW_NF_SERVER_MAX_INFLIGHT && c->out_len < c->srv->out_limit;

	if (want && !ev_is_active(&c->rio))
		ev_io_start(c->srv->loop, &c->rio);
	else if (!want && ev_is_active(&c->rio))
		ev_io_stop(c->srv->loop, &c->rio);
}

/*
 * A response that cannot be queued would break the one-answer-per-request
 * promise: the consumer is marked and dropped by its write callback (never
 * here, so no caller finds its consumer freed under it).
 */
static void nf_respond_to(struct nf_consumer *c, uint32_t id, int status, uint64_t v0, uint64_t v1)
{
	struct mw_nf_response r = { .id = id, .status = status, .val0 = v0, .val1 = v1 };
	uint8_t msg[MW_NF_RESPONSE_SIZE];

	mw_nf_encode_response(msg, &r);
	if (!c->broken && nf_append(c, msg, sizeof(msg), true)) {
		c->broken = true;
		ev_feed_event(c->srv->loop, &c->wio, EV_WRITE);
	}
}

static void nf_request(struct nf_consumer *c, const uint8_t *msg)
{
	struct mw_nf_server *srv = c->srv;
	struct mw_nf_reply to = { .consumer = c->serial };
	struct mw_nf_request req;
	const char *why = "";

	srv->st.requests++;
	mw_nf_decode_request(&req, msg, MW_NF_REQUEST_SIZE, &why); /* framed: cannot fail */
	to.id = req.id;
	if (mw_nf_request_check(&req, &why)) {
		srv->st.bad++;
		mw_log_ratelimited(MW_LOG_INFO, "netflow: consumer %s: request %u: %s", c->peer,
				   req.id, why);
		nf_respond_to(c, req.id, -EINVAL, 0, 0);
		return;
	}
	if (req.name == MW_NF_ATTR_MONITOR_ON || req.name == MW_NF_ATTR_MONITOR_OFF) {
		nf_set_monitor(c, req.name == MW_NF_ATTR_MONITOR_ON);
		nf_respond_to(c, req.id, 0, 1, 0);
		return;
	}
	c->inflight++;
	srv->ops.request(srv->ops.ctx, to, &req);
}

/* Return: false if the consumer was dropped */
static bool nf_parse(struct nf_consumer *c)
{
	struct mw_nf_server *srv = c->srv;
	size_t off = 0;
	int n, sig;

	while (off < c->in_len) {
		n = mw_nf_frame_next(c->in + off, c->in_len - off);
		if (n == 0)
			break;
		sig = mw_nf_peek_sig(c->in + off, c->in_len - off);
		if (n < 0 || sig != MW_NF_SIG_REQUEST) {
			char why[64];

			srv->st.bad++;
			snprintf(why, sizeof(why), "sent %s signature 0x%04x",
				 n < 0 ? "an unknown" : "a non-request", (unsigned)sig);
			nf_drop(c, why);
			return false;
		}
		nf_request(c, c->in + off);
		off += (size_t)n;
		if (c->broken) {
			nf_drop(c, "out of memory queueing a response");
			return false;
		}
	}
	memmove(c->in, c->in + off, c->in_len - off);
	c->in_len -= off;
	return true;
}

static void nf_read_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	struct nf_consumer *c = w->data;
	ssize_t n;

	(void)loop;
	(void)revents;
	n = read(c->fd, c->in + c->in_len, sizeof(c->in) - c->in_len);
	if (n == 0) {
		nf_drop(c, c->in_len ? "closed inside a message" : "closed");
		return;
	}
	if (n < 0) {
		if (errno != EAGAIN && errno != EINTR)
			nf_drop(c, strerror(errno));
		return;
	}
	c->in_len += (size_t)n;
	if (nf_parse(c))
		nf_update_reading(c);
}

static void nf_write_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	struct nf_consumer *c = w->data;
	ssize_t n;

	(void)revents;
	if (c->broken) {
		nf_drop(c, "out of memory queueing a response");
		return;
	}
	n = send(c->fd, c->out + c->out_head, c->out_len, MSG_NOSIGNAL | MSG_DONTWAIT);
	if (n < 0) {
		if (errno != EAGAIN && errno != EINTR)
			nf_drop(c, strerror(errno));
		return;
	}
	c->out_head += (size_t)n;
	c->out_len -= (size_t)n;
	c->since = ev_now(loop);
	if (!c->out_len) {
		c->out_head = 0;
		ev_io_stop(loop, &c->wio);
	}
	nf_update_reading(c);
}

static void nf_stall_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct mw_nf_server *srv = w->data;
	struct nf_consumer *c, *next;
	ev_tstamp now = ev_now(loop);
	char why[96];

	(void)revents;
	for (c = srv->consumers; c; c = next) {
		next = c->next;
		if (!c->out_len || now - c->since < srv->stall)
			continue;
		srv->st.stalled++;
		snprintf(why, sizeof(why), "did not read for %.1f s, %zu bytes waiting",
			 now - c->since, c->out_len);
		nf_drop(c, why);
	}
}

static void nf_add_consumer(struct mw_nf_server *srv, int fd, const struct mw_addr *peer)
{
	struct nf_consumer *c;

	c = calloc(1, sizeof(*c));
	if (!c) {
		close(fd);
		srv->st.refused++;
		return;
	}
	/*
	 * A small kernel buffer keeps the accounting honest: the queue that
	 * counts and drops is ours, not megabytes of autotuned socket buffer.
	 */
	setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &(int){ NF_SNDBUF }, sizeof(int));
	c->srv = srv;
	c->fd = fd;
	c->serial = ++srv->next_serial;
	mw_addr_format(peer, c->peer, sizeof(c->peer));
	ev_io_init(&c->rio, nf_read_cb, fd, EV_READ);
	ev_io_init(&c->wio, nf_write_cb, fd, EV_WRITE);
	c->rio.data = c->wio.data = c;
	c->next = srv->consumers;
	if (c->next)
		c->next->prev = c;
	srv->consumers = c;
	srv->st.consumers++;
	srv->st.accepted++;
	ev_io_start(srv->loop, &c->rio);
	/* The seed: "as soon as a Netflow connection is established" data flows. */
	nf_set_monitor(c, true);
	mw_info("netflow: consumer %s connected", c->peer);
}

static void nf_accept_retry_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct mw_nf_server *srv = w->data;

	(void)revents;
	ev_io_start(loop, &srv->lio);
}

/* Out of fds or memory: pause accepting instead of spinning on a listener that stays ready. */
static void nf_accept_pause(struct mw_nf_server *srv)
{
	mw_log_ratelimited(MW_LOG_WARN, "netflow: accept: %s; pausing %.0f ms", strerror(errno),
			   NF_ACCEPT_PAUSE_S * 1000);
	ev_io_stop(srv->loop, &srv->lio);
	ev_timer_stop(srv->loop, &srv->accept_timer);
	ev_timer_set(&srv->accept_timer, NF_ACCEPT_PAUSE_S, 0.);
	ev_timer_start(srv->loop, &srv->accept_timer);
}

static void nf_accept_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	struct mw_nf_server *srv = w->data;
	struct sockaddr_storage ss;
	struct mw_addr peer;
	socklen_t len;
	int i, fd;

	(void)loop;
	(void)revents;
	for (i = 0; i < NF_ACCEPT_BATCH; i++) {
		len = sizeof(ss);
		fd = accept4(srv->fd, (struct sockaddr *)&ss, &len, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd < 0) {
			if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS ||
			    errno == ENOMEM)
				nf_accept_pause(srv);
			else if (errno != EAGAIN && errno != EINTR && errno != ECONNABORTED)
				mw_log_ratelimited(MW_LOG_WARN, "netflow: accept: %s",
						   strerror(errno));
			return;
		}
		if (mw_addr_from_sockaddr(&peer, (struct sockaddr *)&ss, len) ||
		    !mw_cidr_match(&srv->allow, &peer) ||
		    srv->st.consumers >= MW_NF_SERVER_MAX_CONSUMERS) {
			char text[MW_ADDR_STRLEN];

			srv->st.refused++;
			mw_log_ratelimited(MW_LOG_WARN, "netflow: refused consumer %s: %s",
					   mw_addr_format(&peer, text, sizeof(text)),
					   srv->st.consumers >= MW_NF_SERVER_MAX_CONSUMERS
						   ? "too many consumers"
						   : "not in netflow_allow");
			close(fd);
			continue;
		}
		nf_add_consumer(srv, fd, &peer);
	}
}

static int nf_listen(struct mw_nf_server *srv, const char *text, char *err, size_t errlen)
{
	struct sockaddr_storage ss;
	socklen_t len;
	int one = 1;

	if (mw_addr_parse(&srv->addr, text) || mw_addr_to_sockaddr(&srv->addr, &ss, &len)) {
		snprintf(err, errlen, "netflow: bad listen address \"%s\"", text);
		return -EINVAL;
	}
	srv->fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (srv->fd < 0 || setsockopt(srv->fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) ||
	    bind(srv->fd, (struct sockaddr *)&ss, len) || listen(srv->fd, 64)) {
		int ret = -errno;

		snprintf(err, errlen, "netflow: cannot listen on %s: %s", text, strerror(-ret));
		return ret;
	}
	len = sizeof(ss);
	if (getsockname(srv->fd, (struct sockaddr *)&ss, &len) ||
	    mw_addr_from_sockaddr(&srv->addr, (struct sockaddr *)&ss, len)) {
		snprintf(err, errlen, "netflow: getsockname: %s", strerror(errno));
		return -EIO;
	}
	return 0;
}

int mw_nf_server_open(struct mw_nf_server **out, struct ev_loop *loop,
		      const struct mw_nf_server_config *cfg, const struct mw_nf_server_ops *ops,
		      char *err, size_t errlen)
{
	struct mw_nf_server *srv;
	ev_tstamp every;
	int ret;

	*out = NULL;
	if (!ops->request || cfg->queue < 1 || cfg->stall_ms < 1) {
		snprintf(err, errlen, "netflow: bad server configuration");
		return -EINVAL;
	}
	srv = calloc(1, sizeof(*srv));
	if (!srv) {
		snprintf(err, errlen, "netflow: out of memory");
		return -ENOMEM;
	}
	srv->loop = loop;
	srv->ops = *ops;
	srv->fd = -1;
	srv->out_limit = (size_t)cfg->queue * MW_NF_INFO_SIZE;
	srv->stall = cfg->stall_ms / 1000.;
	if (mw_cidr_parse(&srv->allow, cfg->allow)) {
		snprintf(err, errlen, "netflow: bad allow network \"%s\"", cfg->allow);
		ret = -EINVAL;
		goto fail;
	}
	ret = nf_listen(srv, cfg->listen, err, errlen);
	if (ret)
		goto fail;
	ev_io_init(&srv->lio, nf_accept_cb, srv->fd, EV_READ);
	srv->lio.data = srv;
	ev_io_start(loop, &srv->lio);
	ev_timer_init(&srv->accept_timer, nf_accept_retry_cb, NF_ACCEPT_PAUSE_S, 0.);
	srv->accept_timer.data = srv;
	every = srv->stall / 4 < 1. ? srv->stall / 4 : 1.;
	ev_timer_init(&srv->stall_timer, nf_stall_cb, every, every);
	srv->stall_timer.data = srv;
	ev_timer_start(loop, &srv->stall_timer);
	*out = srv;
	return 0;
fail:
	if (srv->fd >= 0)
		close(srv->fd);
	free(srv);
	return ret;
}

void mw_nf_server_close(struct mw_nf_server *srv)
{
	struct nf_consumer *c, *next;

	if (!srv)
		return;
	srv->ops.watching = NULL; /* the owner is going away too */
	for (c = srv->consumers; c; c = next) {
		next = c->next;
		nf_drop(c, "server stopping");
	}
	ev_io_stop(srv->loop, &srv->lio);
	ev_timer_stop(srv->loop, &srv->accept_timer);
	ev_timer_stop(srv->loop, &srv->stall_timer);
	close(srv->fd);
	free(srv);
}

char *mw_nf_server_address(const struct mw_nf_server *srv, char *buf, size_t len)
{
	static const uint8_t any6[16];
	struct mw_addr a = srv->addr;

	if (a.family == 4 && !memcmp(a.addr, any6, 4)) {
		memcpy(a.addr, (uint8_t[]){ 127, 0, 0, 1 }, 4);
	} else if (a.family == 6 && !memcmp(a.addr, any6, 16)) {
		a.addr[15] = 1;
	}
	return mw_addr_format(&a, buf, len);
}

bool mw_nf_server_watching(const struct mw_nf_server *srv)
{
	return srv->nwatching > 0;
}

bool mw_nf_server_has_room(struct mw_nf_server *srv)
{
	struct nf_consumer *c;

	for (c = srv->consumers; c; c = c->next)
		if (c->monitor && c->out_len + MW_NF_INFO_SIZE <= srv->out_limit)
			return true;
	if (!srv->nwatching)
		return false;
	srv->st.published++;
	for (c = srv->consumers; c; c = c->next) {
		if (c->monitor) {
			c->drops++;
			srv->st.drops++;
		}
	}
	return false;
}

void mw_nf_server_publish(struct mw_nf_server *srv, const struct mw_nf_info *info)
{
	uint8_t msg[MW_NF_INFO_SIZE];
	struct nf_consumer *c;

	if (!srv->nwatching || mw_nf_encode_info(msg, info) < 0)
		return;
	srv->st.published++;
	for (c = srv->consumers; c; c = c->next) {
		if (!c->monitor)
			continue;
		if (nf_append(c, msg, sizeof(msg), false)) {
			c->drops++;
			srv->st.drops++;
			if (c->drops == 1 || !(c->drops & 0xffff))
				mw_log_ratelimited(MW_LOG_WARN,
						   "netflow: consumer %s is behind: %llu "
						   "observation(s) dropped",
						   c->peer, (unsigned long long)c->drops);
		}
	}
}

void mw_nf_server_respond(struct mw_nf_server *srv, struct mw_nf_reply to, int status,
			  uint64_t val0, uint64_t val1)
{
	struct nf_consumer *c;

	for (c = srv->consumers; c; c = c->next) {
		if (c->serial != to.consumer)
			continue;
		if (c->inflight)
			c->inflight--;
		nf_respond_to(c, to.id, status, val0, val1);
		nf_update_reading(c);
		return;
	}
}

void mw_nf_server_get_stats(const struct mw_nf_server *srv, struct mw_nf_server_stats *st)
{
	*st = srv->st;
}
