/* SPDX-License-Identifier: MIT */
/* client.c - Netflow consumer client: non-blocking socket, stream framer, response matching */
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "common/keystore.h"
#include "netflow/client.h"

/*
 * Theory of operation
 *
 * The socket is always non-blocking; "blocking" calls poll() against a
 * monotonic deadline.  Received bytes accumulate in rbuf[rstart..rend); the
 * framer (mw_nf_frame_next) cuts whole messages off the front by their
 * signature.  Because the wire has no length field, an unknown signature (or a
 * request coming the wrong way) loses the stream for good: the client turns
 * "broken" and every later call fails with -EBADMSG, and the owner
 * disconnects.
 *
 * wait_response() must not lose what arrives before the awaited response, so
 * it moves every other message into a bounded FIFO (queue) that next() drains
 * before it looks at rbuf again; arrival order is kept.
 */

#define RBUF_SIZE	   65536 /* a consumer's 10 ms batch of a busy stream in one recv */
#define DEFAULT_TIMEOUT_MS 5000

struct mw_nf_client {
	int fd;
	bool broken;
	uint32_t next_id;
	uint8_t rbuf[RBUF_SIZE];
	size_t rstart, rend;
	bool drained; /* the last read found the socket empty or did not fill the buffer */
	struct mw_nf_msg *queue; /* ring of MW_NF_CLIENT_QUEUE */
	size_t qhead, qlen;
	struct mw_nf_client_stats stats;
};

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Milliseconds left until @deadline, for poll(). */
static int remaining(int64_t deadline)
{
	int64_t left = deadline - now_ms();

	return left <= 0 ? 0 : left > 1000000 ? 1000000 : (int)left;
}

static int wait_fd(int fd, short events, int64_t deadline)
{
	struct pollfd p = { .fd = fd, .events = events };
	int n;

	for (;;) {
		n = poll(&p, 1, remaining(deadline));
		if (n > 0)
			return 0;
		if (n == 0)
			return -ETIMEDOUT;
		if (errno != EINTR)
			return -errno;
		if (!remaining(deadline))
			return -ETIMEDOUT;
	}
}

/* "ip:port", "[ip6]:port", and the original's unbracketed "ip6:port". */
static int parse_server(struct mw_addr *a, const char *text)
{
	char buf[MW_ADDR_STRLEN];
	const char *colon;

	if (!mw_addr_parse(a, text) && a->port)
		return 0;
	colon = text ? strrchr(text, ':') : NULL;
	if (!colon || text[0] == '[' ||
	    snprintf(buf, sizeof(buf), "[%.*s]%s", (int)(colon - text), text, colon) >=
		    (int)sizeof(buf))
		return -EINVAL;
	if (mw_addr_parse(a, buf) || !a->port)
		return -EINVAL;
	return 0;
}

/* @text as a socket address: "/path" is AF_UNIX, anything else TCP. */
static int server_sockaddr(const char *text, struct sockaddr_storage *ss, socklen_t *len)
{
	struct sockaddr_un *sun = (struct sockaddr_un *)ss;
	struct mw_addr a;

	memset(ss, 0, sizeof(*ss));
	if (text && text[0] == '/') {
		if (strlen(text) >= sizeof(sun->sun_path))
			return -EINVAL;
		sun->sun_family = AF_UNIX;
		memcpy(sun->sun_path, text, strlen(text) + 1);
		*len = sizeof(*sun);
		return 0;
	}
	if (parse_server(&a, text))
		return -EINVAL;
	return mw_addr_to_sockaddr(&a, ss, len) ? -EINVAL : 0;
}

/**
 * mw_nf_client_connect_start() - begin connecting, without waiting
 * @cp:     the client, usable once the connection completes
 * @text:   "/path", "ip:port", "[ip6]:port", "ip6:port"
 * @err:    one line on failure
 * @errlen: its size
 * Return: 0 (connected), -EINPROGRESS (watch the fd for writability, then
 * mw_nf_client_connect_finish()), or -errno
 */
int mw_nf_client_connect_start(struct mw_nf_client **cp, const char *text, char *err, size_t errlen)
{
	struct mw_nf_client *c = NULL;
	struct sockaddr_storage ss;
	socklen_t sslen;
	int ret, one = 1;

	*cp = NULL;
	if (server_sockaddr(text, &ss, &sslen)) {
		snprintf(err, errlen, "netflow: cannot parse server address '%s'",
			 text ? text : "(null)");
		return -EINVAL;
	}
	c = calloc(1, sizeof(*c));
	if (c)
		c->fd = -1;
	if (!c || !(c->queue = calloc(MW_NF_CLIENT_QUEUE, sizeof(*c->queue)))) {
		ret = -ENOMEM;
		snprintf(err, errlen, "netflow: out of memory");
		goto fail;
	}
	c->next_id = 1;
	c->fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (c->fd < 0) {
		ret = -errno;
		snprintf(err, errlen, "netflow: socket: %s", strerror(-ret));
		goto fail;
	}
	/* A request is one small write that the server waits for: send it now. */
	if (ss.ss_family != AF_UNIX)
		setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	ret = connect(c->fd, (struct sockaddr *)&ss, sslen) ? -errno : 0;
	if (ret && ret != -EINPROGRESS) {
		snprintf(err, errlen, "netflow: connect to %s: %s", text, strerror(-ret));
		goto fail;
	}
	*cp = c;
	return ret;
fail:
	mw_nf_client_close(c);
	return ret;
}

/**
 * mw_nf_client_connect_finish() - the outcome of a connect that was in progress
 * @c: the client
 * Return: 0 or the connect's -errno
 */
int mw_nf_client_connect_finish(struct mw_nf_client *c)
{
	socklen_t elen;
	int soerr = 0;

	elen = sizeof(soerr);
	if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &soerr, &elen))
		soerr = errno;
	return -soerr;
}

int mw_nf_client_connect(struct mw_nf_client **cp, const char *text, int timeout_ms, char *err,
			 size_t errlen)
{
	int64_t deadline = now_ms() + (timeout_ms < 0 ? DEFAULT_TIMEOUT_MS : timeout_ms);
	struct mw_nf_client *c;
	int ret;

	ret = mw_nf_client_connect_start(&c, text, err, errlen);
	if (ret != -EINPROGRESS || !c)
		goto out;
	ret = wait_fd(c->fd, POLLOUT, deadline);
	if (!ret)
		ret = mw_nf_client_connect_finish(c);
	if (ret)
		snprintf(err, errlen, "netflow: connect to %s: %s", text, strerror(-ret));
out:
	if (ret) {
		mw_nf_client_close(c);
		c = NULL;
	}
	*cp = c;
	return ret;
}

/**
 * mw_nf_client_auth() - authenticate with @token (the Auth request, netflow/auth.h)
 * @c:          a connected client
 * @token:      the token
 * @timeout_ms: how long to wait for the answer
 * @role:       the role granted
 * Return: 0, -EACCES if the server closed the connection (a wrong token gets
 * no answer), or -errno
 */
int mw_nf_client_auth(struct mw_nf_client *c, const char *token, int timeout_ms,
		      enum mw_nf_role *role)
{
	struct mw_nf_request req = { 0 };
	struct mw_nf_response rsp;
	int ret;

	mw_nf_request_set_auth(&req, token);
	ret = mw_nf_client_request(c, &req, timeout_ms, &rsp);
	explicit_bzero(&req, sizeof(req));
	if (ret == -ECONNRESET)
		return -EACCES;
	if (ret)
		return ret;
	if (rsp.status)
		return rsp.status;
	*role = (enum mw_nf_role)rsp.val0;
	return 0;
}

int mw_nf_client_connect_keystore(struct mw_nf_client **cp, struct mw_keystore *ks, const char *key,
				  int timeout_ms, char *err, size_t errlen)
{
	char val[128];
	int ret;

	*cp = NULL;
	if (!key)
		key = MW_NF_KEY_PVM;
	ret = mw_keystore_read(ks, key, val, sizeof(val));
	if (ret < 0) {
		snprintf(err, errlen, "netflow: keystore %s: %s", key,
			 ret == -ENOENT ? "not published" : strerror(-ret));
		return ret;
	}
	/* The original writes "PVM's IP not found!" here; parsing says so clearly. */
	return mw_nf_client_connect(cp, val, timeout_ms, err, errlen);
}

void mw_nf_client_close(struct mw_nf_client *c)
{
	if (!c)
		return;
	if (c->fd >= 0)
		close(c->fd);
	free(c->queue);
	free(c);
}

int mw_nf_client_fd(const struct mw_nf_client *c)
{
	return c->fd;
}

void mw_nf_client_set_next_id(struct mw_nf_client *c, uint32_t id)
{
	c->next_id = id;
}

uint32_t mw_nf_client_alloc_id(struct mw_nf_client *c)
{
	if (!c->next_id)
		c->next_id = 1; /* 0 is what observations carry */
	return c->next_id++;
}

int mw_nf_client_send(struct mw_nf_client *c, struct mw_nf_request *req, int timeout_ms)
{
	uint8_t buf[MW_NF_REQUEST_SIZE];
	int64_t deadline = now_ms() + (timeout_ms < 0 ? DEFAULT_TIMEOUT_MS : timeout_ms);
	size_t off = 0;
	ssize_t n;
	int ret = 0;

	if (c->broken)
		return -EBADMSG;
	if (!req->id)
		req->id = mw_nf_client_alloc_id(c);
	mw_nf_encode_request(buf, req);
	while (off < sizeof(buf)) {
		n = send(c->fd, buf + off, sizeof(buf) - off, MSG_NOSIGNAL);
		if (n > 0) {
			off += (size_t)n;
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			ret = wait_fd(c->fd, POLLOUT, deadline);
			if (!ret)
				continue;
		} else {
			ret = n < 0 ? -errno : -EPIPE;
		}
		/* Half a request on the wire would misframe everything after it. */
		if (off)
			c->broken = true;
		return ret;
	}
	c->stats.requests_out++;
	return 0;
}

int mw_nf_client_read(struct mw_nf_client *c)
{
	ssize_t n;

	if (c->broken)
		return -EBADMSG;
	if (c->rstart && c->rstart == c->rend) {
		c->rstart = c->rend = 0;
	} else if (c->rend == RBUF_SIZE && c->rstart) {
		memmove(c->rbuf, c->rbuf + c->rstart, c->rend - c->rstart);
		c->rend -= c->rstart;
		c->rstart = 0;
	}
	c->drained = false;
	if (c->rend == RBUF_SIZE)
		return -ENOBUFS;
	do
		n = recv(c->fd, c->rbuf + c->rend, RBUF_SIZE - c->rend, 0);
	while (n < 0 && errno == EINTR);
	if (n < 0) {
		c->drained = errno == EAGAIN || errno == EWOULDBLOCK;
		return c->drained ? 0 : -errno;
	}
	if (n == 0)
		return -ECONNRESET;
	/* A stream socket's recv stops short only when its queue is empty. */
	c->drained = (size_t)n < RBUF_SIZE - c->rend;
	c->rend += (size_t)n;
	return (int)n;
}

bool mw_nf_client_drained(const struct mw_nf_client *c)
{
	return c->drained;
}

/* Frame and decode one message from rbuf.  Return: 1, 0 (need more), -EBADMSG. */
static int parse_one(struct mw_nf_client *c, struct mw_nf_msg *msg)
{
	for (;;) {
		const uint8_t *p = c->rbuf + c->rstart;
		int size = mw_nf_frame_next(p, c->rend - c->rstart);
		int ret;

		if (size <= 0) {
			if (size < 0)
				c->broken = true;
			return size;
		}
		c->rstart += (size_t)size;
		c->stats.msgs_in++;
		msg->sig = mw_nf_get16(p);
		if (msg->sig == MW_NF_SIG_INFO)
			ret = mw_nf_decode_info(&msg->u.info, p, (size_t)size, NULL);
		else if (msg->sig == MW_NF_SIG_RESPONSE)
			ret = mw_nf_decode_response(&msg->u.response, p, (size_t)size, NULL);
		else
			ret = -EPROTO; /* a request from the server: not our protocol */
		if (ret == -EPROTO) {
			c->broken = true;
			return -EBADMSG;
		}
		if (!ret)
			return 1;
		/* Framing is intact: skip the one bad message and say so in the stats. */
		c->stats.bad_msgs++;
	}
}

int mw_nf_client_next(struct mw_nf_client *c, struct mw_nf_msg *msg)
{
	if (c->qlen) {
		*msg = c->queue[c->qhead];
		c->qhead = (c->qhead + 1) % MW_NF_CLIENT_QUEUE;
		c->qlen--;
		return 1;
	}
	if (c->broken)
		return -EBADMSG;
	return parse_one(c, msg);
}

/* Drop the oldest queued observation; Return: 0, or -ENOSPC if all are responses. */
static int queue_drop_observation(struct mw_nf_client *c)
{
	size_t i, at, next;

	for (i = 0; i < c->qlen; i++) {
		at = (c->qhead + i) % MW_NF_CLIENT_QUEUE;
		if (c->queue[at].sig != MW_NF_SIG_INFO)
			continue;
		for (; i + 1 < c->qlen; i++) {
			next = (c->qhead + i + 1) % MW_NF_CLIENT_QUEUE;
			c->queue[(c->qhead + i) % MW_NF_CLIENT_QUEUE] = c->queue[next];
		}
		c->qlen--;
		return 0;
	}
	return -ENOSPC;
}

static void queue_push(struct mw_nf_client *c, const struct mw_nf_msg *msg)
{
	if (c->qlen == MW_NF_CLIENT_QUEUE) {
		c->stats.queue_drops++;
		if (msg->sig == MW_NF_SIG_INFO || queue_drop_observation(c))
			return;
	}
	c->queue[(c->qhead + c->qlen) % MW_NF_CLIENT_QUEUE] = *msg;
	c->qlen++;
}

int mw_nf_client_recv(struct mw_nf_client *c, struct mw_nf_msg *msg, int timeout_ms)
{
	int64_t deadline = now_ms() + (timeout_ms < 0 ? 0 : timeout_ms);
	int ret;

	for (;;) {
		ret = mw_nf_client_next(c, msg);
		if (ret)
			return ret;
		ret = mw_nf_client_read(c);
		if (ret < 0)
			return ret;
		if (ret > 0)
			continue;
		ret = wait_fd(c->fd, POLLIN, deadline);
		if (ret)
			return ret;
	}
}

int mw_nf_client_wait_response(struct mw_nf_client *c, uint32_t id, int timeout_ms,
			       struct mw_nf_response *out)
{
	int64_t deadline = now_ms() + (timeout_ms < 0 ? 0 : timeout_ms);
	struct mw_nf_msg msg;
	size_t i, at;
	int ret;

	/* It may already be queued by an earlier wait for another id. */
	for (i = 0; i < c->qlen; i++) {
		at = (c->qhead + i) % MW_NF_CLIENT_QUEUE;
		if (c->queue[at].sig != MW_NF_SIG_RESPONSE || c->queue[at].u.response.id != id)
			continue;
		*out = c->queue[at].u.response;
		for (; i + 1 < c->qlen; i++)
			c->queue[(c->qhead + i) % MW_NF_CLIENT_QUEUE] =
				c->queue[(c->qhead + i + 1) % MW_NF_CLIENT_QUEUE];
		c->qlen--;
		return 0;
	}
	for (;;) {
		if (c->broken)
			return -EBADMSG;
		ret = parse_one(c, &msg);
		if (ret < 0)
			return ret;
		if (ret > 0) {
			if (msg.sig == MW_NF_SIG_RESPONSE && msg.u.response.id == id) {
				*out = msg.u.response;
				return 0;
			}
			queue_push(c, &msg);
			continue;
		}
		ret = mw_nf_client_read(c);
		if (ret < 0)
			return ret;
		if (ret > 0)
			continue;
		ret = wait_fd(c->fd, POLLIN, deadline);
		if (ret)
			return ret;
	}
}

int mw_nf_client_request(struct mw_nf_client *c, struct mw_nf_request *req, int timeout_ms,
			 struct mw_nf_response *out)
{
	int64_t start = now_ms();
	int ret = mw_nf_client_send(c, req, timeout_ms);
	int left;

	if (ret)
		return ret;
	left = timeout_ms < 0 ? DEFAULT_TIMEOUT_MS : timeout_ms;
	left -= (int)(now_ms() - start);
	return mw_nf_client_wait_response(c, req->id, left < 0 ? 0 : left, out);
}

void mw_nf_client_get_stats(const struct mw_nf_client *c, struct mw_nf_client_stats *st)
{
	*st = c->stats;
}
