/* SPDX-License-Identifier: MIT */
/* server.c - Netflow server: consumers, bounded per-consumer queues, request dispatch */
#include <errno.h>
#include <linux/sockios.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "common/cidr.h"
#include "common/linger.h"
#include "common/log.h"
#include "common/norights.h"
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
 *   share:    an observation names its source (mw-pvm: the account of the
 *             socket's owner; the balancer: the PVM; MW_NF_SRC_NONE: none).
 *             A source with fewer than NF_NEWCOMER observations queued may
 *             add up to the queue's limit; any other stays out of a reserve
 *             at the top (room for NF_NEWCOMER of every counted source, at
 *             most a quarter of the queue), and past half of the queue adds
 *             only while it holds less than an equal share of the rest among
 *             the sources queued there.  So one user whose sockets churn
 *             cannot make the observations of another user's sockets drop:
 *             its own drop, every other source still gets its first ones in
 *             and its share of the room the flood leaves as it drains.  64
 *             sources are counted apart per consumer, the others together as
 *             one (which share one allowance: a user holding 64 accounts with
 *             observations queued can crowd the rest into it).  Each
 *             queued message is recorded (its source's slot, its length) in a
 *             ring that the writes consume, so a count falls as its
 *             observations leave.
 *   respond:  always appended (a response is never dropped); responses are
 *             bounded because a consumer's socket is not read while it has
 *             MAX_INFLIGHT requests unanswered or a full buffer.
 *   write:    a write watcher runs while the buffer is not empty.
 *   rate:     while a consumer has a backlog, what it takes is measured over
 *             a window of stall_ms; below min_rate bytes/s it is cut (a
 *             consumer reading one byte a second does not keep its slot).
 *   memory:   observations queued across all consumers stay under
 *             mem_total; beyond, they are dropped and counted.
 *
 * Access (docs/netflow.md "Access control"): an AF_UNIX consumer is
 * authorised at accept by SO_PEERCRED (root, or a member of the control or
 * observe group); a TCP consumer must first send the Auth request with a
 * token from the token file.  Until then it receives nothing, and anything
 * but a valid token closes it unanswered.  An observe consumer's WRITE
 * requests (other than MonitorOn/Off) are answered -EPERM.  Consumers per
 * user (uid, token, or address while unauthenticated) are limited.
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
/* Of MW_NF_SERVER_MAX_CONSUMERS, slots TCP consumers can never take: mw-guard and the
 * balancer's aggregator (AF_UNIX) must get in whatever a TCP peer does. */
#define NF_LOCAL_RESERVED 32
/*
 * TCP consumers that have not sent their token yet (each is cut after 5 s): at most.
 * One more takes the place of the oldest if that one has waited NF_PREAUTH_STALE_S
 * (an honest consumer sends its token at once): silent peers must keep coming back.
 */
#define NF_PREAUTH_MAX	   16
#define NF_PREAUTH_STALE_S 1.0

/* One queued message: whose count it is in (a slot of srcs[], or NF_REC_NONE) and how long. */
struct nf_rec {
	uint32_t slot;
	uint32_t len;
};

#define NF_REC_NONE UINT32_MAX

/* Observations of one source queued for a consumer (n > 0: the slot is in use). */
struct nf_src {
	uint32_t src;
	uint32_t n;
};

/*
 * Sources counted apart per consumer; every other one shares the last slot
 * (NF_SRC_OTHER), counted as one source.  A source holding fewer than
 * NF_NEWCOMER observations may use the reserve at the top of the queue
 * (room for that many of every slot's, at most a quarter of the queue).
 */
#define NF_SRC_SLOTS 64
#define NF_SRC_OTHER (MW_NF_SRC_NONE - 1)
#define NF_NEWCOMER  8

struct nf_consumer {
	struct mw_nf_server *srv;
	struct nf_consumer *next, *prev;
	uint64_t serial;
	int fd;
	ev_io rio, wio;
	enum mw_nf_role role; /* NONE: a TCP consumer that has not sent its token yet */
	char who[48];	      /* whose slot it takes, for max_per_user */
	ev_tstamp born;
	bool monitor;
	bool broken; /* a response could not be queued: dropped by the next callback */
	unsigned inflight;
	uint8_t in[NF_IN_BUF];
	size_t in_len;
	uint8_t *out;
	size_t out_head, out_len, out_cap;
	ev_tstamp win_start; /* a backlog exists since (0: none) */
	size_t win_sent;     /* bytes taken since win_start */
	uint64_t drops;
	char peer[MW_ADDR_STRLEN];
	/* what is queued, message by message (see "share" above) */
	struct nf_rec *rec;
	size_t rec_head, rec_len, rec_cap;
	uint32_t rec_sent;		      /* bytes of the head message already written */
	struct nf_src srcs[NF_SRC_SLOTS + 1]; /* + the shared slot */
};

struct mw_nf_server {
	struct ev_loop *loop;
	struct mw_nf_server_ops ops;
	struct mw_cidr allow;
	struct mw_nf_tokens tokens;
	long observe_gid, control_gid;
	size_t out_limit; /* observation bytes held per consumer */
	size_t mem_total;
	double min_rate;
	int max_per_user;
	ev_tstamp stall;
	int fd, ufd;
	ev_io lio, uio;
	char unix_path[sizeof(((struct sockaddr_un *)0)->sun_path)];
	dev_t unix_dev;
	ino_t unix_ino;
	ev_timer stall_timer;
	ev_timer accept_timer; /* accept paused: out of fds or memory */
	struct mw_addr addr;
	struct nf_consumer *consumers;
	unsigned nwatching;
	uint64_t next_serial;
	struct mw_nf_server_stats st;
};

/* nf_close() - @c is disconnected, a plain close (the kernel delivers what it holds) */
static void nf_close(struct nf_consumer *c, const char *why)
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
	srv->st.queued -= c->out_len;
	free(c->out);
	free(c->rec);
	free(c);
}

/*
 * nf_abort() - @c is disconnected by a reset: for a consumer that does not read,
 * a plain close would leave the kernel holding what is queued behind a zero window
 * (FIN_WAIT1, retried for minutes) and the consumer would see no EOF until it read
 * it all.  A reset frees that memory now and tells the consumer at once.
 */
static void nf_abort(struct nf_consumer *c, const char *why)
{
	mw_linger_reset(c->fd);
	nf_close(c, why);
}

/*
 * nf_drop() - @c is disconnected for what it did (a bad or refused message, its
 * own close, an error): reset when anything is still queued for it, here or in the
 * kernel (SIOCOUTQ), for a consumer that stopped reading and then half-closes or
 * misbehaves must not leave that queue behind either; else a plain close.
 */
static void nf_drop(struct nf_consumer *c, const char *why)
{
	int outq = 0;

	if (c->out_len || (!ioctl(c->fd, SIOCOUTQ, &outq) && outq > 0))
		nf_abort(c, why);
	else
		nf_close(c, why);
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

/* @src's slot in @c's counts: its own, else a free one (n == 0), else the shared one. */
static struct nf_src *nf_src_slot(struct nf_consumer *c, uint32_t src)
{
	struct nf_src *free_slot = NULL;
	unsigned i;

	for (i = 0; i < NF_SRC_SLOTS; i++) {
		if (c->srcs[i].n && c->srcs[i].src == src)
			return &c->srcs[i];
		if (!c->srcs[i].n && !free_slot)
			free_slot = &c->srcs[i];
	}
	if (free_slot) {
		free_slot->src = src;
		return free_slot;
	}
	c->srcs[NF_SRC_SLOTS].src = NF_SRC_OTHER;
	return &c->srcs[NF_SRC_SLOTS];
}

/* The top of @c's queue kept for sources with fewer than NF_NEWCOMER queued. */
static size_t nf_reserve_bytes(const struct nf_consumer *c)
{
	size_t limit = c->srv->out_limit,
	       r = (size_t)(NF_SRC_SLOTS + 1) * NF_NEWCOMER * MW_NF_INFO_SIZE;

	return r < limit / 4 ? r : limit / 4;
}

/*
 * May an observation counted in @slot (NULL: no source) join @c's queue (see
 * "share" above)?  A newcomer (fewer than NF_NEWCOMER queued) may, up to the
 * whole queue.  Any other, not into the reserve, and past half of the queue
 * only while it holds less than an equal share of the rest among the sources
 * queued there.
 */
static bool nf_fair(struct nf_consumer *c, const struct nf_src *slot)
{
	size_t limit = c->srv->out_limit, body = limit - nf_reserve_bytes(c);
	unsigned i, active = 0;
	uint32_t held;

	if (!slot)
		return true;
	held = slot->n;
	if (held < NF_NEWCOMER)
		return true; /* up to the queue's own limit */
	if (c->out_len + MW_NF_INFO_SIZE > body)
		return false;
	if (c->out_len + MW_NF_INFO_SIZE <= limit / 2)
		return true;
	for (i = 0; i <= NF_SRC_SLOTS; i++)
		active += c->srcs[i].n > 0;
	return ((size_t)held + 1) * MW_NF_INFO_SIZE <= body / active;
}

/* Record a queued message counted in @slot (NULL: uncounted); false: no memory. */
static bool nf_rec_push(struct nf_consumer *c, struct nf_src *slot, size_t n)
{
	struct nf_rec *r;
	size_t cap, i;

	if (c->rec_len == c->rec_cap) {
		cap = c->rec_cap ? c->rec_cap * 2 : 256;
		r = malloc(cap * sizeof(*r));
		if (!r)
			return false;
		for (i = 0; i < c->rec_len; i++) /* unrolled from the ring, oldest first */
			r[i] = c->rec[(c->rec_head + i) % c->rec_cap];
		free(c->rec);
		c->rec = r;
		c->rec_cap = cap;
		c->rec_head = 0;
	}
	if (slot)
		slot->n++;
	c->rec[(c->rec_head + c->rec_len) % c->rec_cap] =
		(struct nf_rec){ slot ? (uint32_t)(slot - c->srcs) : NF_REC_NONE, (uint32_t)n };
	c->rec_len++;
	return true;
}

/*
 * @n bytes of @c's queue were written: its records (and the sources' counts)
 * follow.  A record's slot still counts it (n >= 1), so it was not reused.
 */
static void nf_rec_sent(struct nf_consumer *c, size_t n)
{
	struct nf_rec *r;
	uint32_t left;

	while (n && c->rec_len) {
		r = &c->rec[c->rec_head];
		left = r->len - c->rec_sent;
		if (n < left) {
			c->rec_sent += (uint32_t)n;
			return;
		}
		n -= left;
		c->rec_sent = 0;
		if (r->slot != NF_REC_NONE)
			c->srcs[r->slot].n--;
		c->rec_head = (c->rec_head + 1) % c->rec_cap;
		c->rec_len--;
	}
	if (!c->rec_len && c->rec_cap > 256) { /* drained: a burst's ring is not kept */
		free(c->rec);
		c->rec = NULL;
		c->rec_cap = c->rec_head = 0;
	}
}

static int nf_append(struct nf_consumer *c, const uint8_t *msg, size_t n, bool response,
		     uint32_t src)
{
	struct mw_nf_server *srv = c->srv;
	/* A free slot taken here stays free (n == 0) if the observation is refused. */
	struct nf_src *slot = !response && src != MW_NF_SRC_NONE ? nf_src_slot(c, src) : NULL;

	if (!response && c->out_len + n > srv->out_limit)
		return -ENOBUFS;
	if (!response && !nf_fair(c, slot)) {
		srv->st.share_drops++;
		return -ENOBUFS;
	}
	if (!response && srv->st.queued + n > srv->mem_total) {
		srv->st.mem_drops++;
		return -ENOBUFS;
	}
	if (nf_reserve(c, n) || !nf_rec_push(c, slot, n))
		return -ENOMEM;
	if (!c->out_len) {
		c->win_start = ev_now(srv->loop);
		c->win_sent = 0;
		ev_io_start(srv->loop, &c->wio);
	}
	memcpy(c->out + c->out_head + c->out_len, msg, n);
	c->out_len += n;
	srv->st.queued += n;
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
	if (!c->broken && nf_append(c, msg, sizeof(msg), true, MW_NF_SRC_NONE)) {
		c->broken = true;
		ev_feed_event(c->srv->loop, &c->wio, EV_WRITE);
	}
}

/* The TCP consumers waiting for their token; *@oldest the one that waited longest. */
static int nf_count_preauth(const struct mw_nf_server *srv, struct nf_consumer **oldest)
{
	struct nf_consumer *c;
	int n = 0;

	*oldest = NULL;
	for (c = srv->consumers; c; c = c->next) {
		if (c->role != MW_NF_ROLE_NONE)
			continue;
		n++;
		if (!*oldest || c->born < (*oldest)->born)
			*oldest = c;
	}
	return n;
}

static int nf_count_who(const struct mw_nf_server *srv, const char *who)
{
	const struct nf_consumer *c;
	int n = 0;

	for (c = srv->consumers; c; c = c->next)
		n += !strcmp(c->who, who);
	return n;
}

/*
 * The first request of a TCP consumer: its token.  Return: false if the
 * consumer must be closed unanswered (why in @why).
 */
static bool nf_authenticate(struct nf_consumer *c, const struct mw_nf_request *req,
			    const char **why)
{
	struct mw_nf_server *srv = c->srv;
	char tok[MW_NF_TOKEN_MAX + 1], who[sizeof(c->who)];
	int i;

	if (mw_nf_request_get_auth(req, tok)) {
		*why = "its first request is not a valid Auth request";
		return false;
	}
	i = mw_nf_tokens_match(&srv->tokens, tok);
	explicit_bzero(tok, sizeof(tok));
	if (i < 0) {
		*why = "wrong token";
		return false;
	}
	snprintf(who, sizeof(who), "token %d", i + 1);
	if (nf_count_who(srv, who) >= srv->max_per_user) {
		*why = "too many consumers with this token (netflow_max_per_user)";
		return false;
	}
	snprintf(c->who, sizeof(c->who), "%s", who);
	c->role = srv->tokens.t[i].role;
	mw_info("netflow: consumer %s authenticated with %s: role %s", c->peer, c->who,
		mw_nf_role_name(c->role));
	nf_respond_to(c, req->id, 0, (uint64_t)c->role, 0);
	nf_set_monitor(c, true);
	return true;
}

/* Return: false if the consumer must be dropped (why in @why) */
static bool nf_request(struct nf_consumer *c, const uint8_t *msg, const char **why)
{
	struct mw_nf_server *srv = c->srv;
	struct mw_nf_reply to = { .consumer = c->serial };
	struct mw_nf_request req;

	srv->st.requests++;
	mw_nf_decode_request(&req, msg, MW_NF_REQUEST_SIZE, why); /* framed: cannot fail */
	to.id = req.id;
	if (c->role == MW_NF_ROLE_NONE) {
		if (nf_authenticate(c, &req, why))
			return true;
		srv->st.unauthorised++;
		return false;
	}
	if (req.name == MW_NF_ATTR_AUTH) {
		nf_respond_to(c, req.id, -EALREADY, (uint64_t)c->role, 0);
		return true;
	}
	if (mw_nf_request_check(&req, why)) {
		srv->st.bad++;
		mw_log_ratelimited(MW_LOG_INFO, "netflow: consumer %s: request %u: %s", c->peer,
				   req.id, *why);
		nf_respond_to(c, req.id, -EINVAL, 0, 0);
		return true;
	}
	if (req.name == MW_NF_ATTR_MONITOR_ON || req.name == MW_NF_ATTR_MONITOR_OFF) {
		nf_set_monitor(c, req.name == MW_NF_ATTR_MONITOR_ON);
		nf_respond_to(c, req.id, 0, 1, 0);
		return true;
	}
	if ((req.flags & MW_NF_FLAG_WRITE) && c->role != MW_NF_ROLE_CONTROL) {
		srv->st.denied++;
		mw_log_ratelimited(MW_LOG_WARN,
				   "netflow: consumer %s (observe) may not write %s: request %u "
				   "refused",
				   c->peer,
				   mw_nf_attr_name(req.name) ? mw_nf_attr_name(req.name) : "?",
				   req.id);
		nf_respond_to(c, req.id, -EPERM, 0, 0);
		return true;
	}
	c->inflight++;
	srv->ops.request(srv->ops.ctx, to, &req);
	return true;
}

/* Return: false if the consumer was dropped */
static bool nf_parse(struct nf_consumer *c)
{
	struct mw_nf_server *srv = c->srv;
	const char *why1 = "";
	size_t off = 0;
	int n, sig;

	while (off < c->in_len) {
		n = mw_nf_frame_next(c->in + off, c->in_len - off);
		if (n == 0)
			break;
		sig = mw_nf_peek_sig(c->in + off, c->in_len - off);
		if (n < 0 || sig != MW_NF_SIG_REQUEST) {
			char why[64];

			if (c->role == MW_NF_ROLE_NONE)
				srv->st.unauthorised++;
			srv->st.bad++;
			snprintf(why, sizeof(why), "sent %s signature 0x%04x",
				 n < 0 ? "an unknown" : "a non-request", (unsigned)sig);
			nf_drop(c, why);
			return false;
		}
		if (!nf_request(c, c->in + off, &why1)) {
			char why[128];

			snprintf(why, sizeof(why), "not authorised: %s", why1);
			nf_drop(c, why);
			return false;
		}
		off += (size_t)n;
		if (c->broken) {
			nf_abort(c, "out of memory queueing a response");
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
		nf_abort(c, "out of memory queueing a response");
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
	c->srv->st.queued -= (size_t)n;
	nf_rec_sent(c, (size_t)n);
	c->win_sent += (size_t)n;
	if (!c->out_len) {
		c->out_head = 0;
		c->win_start = 0;
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
		if (c->role == MW_NF_ROLE_NONE && now - c->born >= MW_NF_SERVER_AUTH_MS / 1000.) {
			srv->st.unauthorised++;
			nf_drop(c, "not authorised: no Auth request in time");
			continue;
		}
		if (!c->win_start || now - c->win_start < srv->stall)
			continue;
		if ((double)c->win_sent >= srv->min_rate * (now - c->win_start)) {
			c->win_start = now; /* fast enough: a new window */
			c->win_sent = 0;
			continue;
		}
		srv->st.stalled++;
		snprintf(why, sizeof(why),
			 "read %.0f B/s over %.1f s, below netflow_min_rate %.0f B/s; %zu bytes "
			 "waiting",
			 (double)c->win_sent / (now - c->win_start), now - c->win_start,
			 srv->min_rate, c->out_len);
		nf_abort(c, why);
	}
}

static void nf_add_consumer(struct mw_nf_server *srv, int fd, const char *peer, const char *who,
			    enum mw_nf_role role)
{
	struct nf_consumer *c;

	c = calloc(1, sizeof(*c));
	if (!c) {
		mw_log_ratelimited(MW_LOG_WARN, "netflow: refused consumer %s: out of memory",
				   peer);
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
	c->role = role;
	c->born = ev_now(srv->loop);
	snprintf(c->peer, sizeof(c->peer), "%s", peer);
	snprintf(c->who, sizeof(c->who), "%s", who);
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
	if (role == MW_NF_ROLE_NONE) {
		mw_info("netflow: consumer %s connected, waiting for its token", c->peer);
		return;
	}
	/* The seed: "as soon as a Netflow connection is established" data flows. */
	nf_set_monitor(c, true);
	mw_info("netflow: consumer %s connected: role %s", c->peer, mw_nf_role_name(role));
}

static void nf_accept_retry_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct mw_nf_server *srv = w->data;

	(void)revents;
	if (srv->fd >= 0)
		ev_io_start(loop, &srv->lio);
	if (srv->ufd >= 0)
		ev_io_start(loop, &srv->uio);
}

/* Out of fds or memory: pause accepting instead of spinning on a listener that stays ready. */
static void nf_accept_pause(struct mw_nf_server *srv)
{
	mw_log_ratelimited(MW_LOG_WARN, "netflow: accept: %s; pausing %.0f ms", strerror(errno),
			   NF_ACCEPT_PAUSE_S * 1000);
	ev_io_stop(srv->loop, &srv->lio);
	ev_io_stop(srv->loop, &srv->uio);
	ev_timer_stop(srv->loop, &srv->accept_timer);
	ev_timer_set(&srv->accept_timer, NF_ACCEPT_PAUSE_S, 0.);
	ev_timer_start(srv->loop, &srv->accept_timer);
}

/* An AF_UNIX peer's role from its credentials: root, or a member of a configured group. */
static enum mw_nf_role nf_unix_role(const struct mw_nf_server *srv, int fd, struct ucred *cred)
{
	gid_t groups[256];
	socklen_t len = sizeof(*cred);
	enum mw_nf_role role = MW_NF_ROLE_NONE;
	size_t i, n;

	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, cred, &len))
		return MW_NF_ROLE_NONE;
	if (cred->uid == 0)
		return MW_NF_ROLE_CONTROL;
	groups[0] = cred->gid;
	len = sizeof(groups) - sizeof(groups[0]);
	n = 1;
	if (!getsockopt(fd, SOL_SOCKET, SO_PEERGROUPS, groups + 1, &len))
		n += len / sizeof(groups[0]);
	for (i = 0; i < n; i++) {
		if (srv->control_gid >= 0 && groups[i] == (gid_t)srv->control_gid)
			return MW_NF_ROLE_CONTROL;
		if (srv->observe_gid >= 0 && groups[i] == (gid_t)srv->observe_gid)
			role = MW_NF_ROLE_OBSERVE;
	}
	return role;
}

/* Return: the reason @fd is refused, or NULL and @peer, @who, @role filled. */
static const char *nf_admit(struct mw_nf_server *srv, int fd, bool local,
			    const struct sockaddr_storage *ss, socklen_t sslen, char *peer,
			    size_t peerlen, char *who, size_t wholen, enum mw_nf_role *role)
{
	struct nf_consumer *oldest = NULL;
	struct ucred cred = { 0 };
	struct mw_addr a;

	if (local) {
		*role = nf_unix_role(srv, fd, &cred);
		snprintf(peer, peerlen, "uid %u pid %d", (unsigned)cred.uid, (int)cred.pid);
		snprintf(who, wholen, "uid %u", (unsigned)cred.uid);
		if (*role == MW_NF_ROLE_NONE) {
			srv->st.unauthorised++;
			return "not root nor in netflow_group / netflow_control_group";
		}
	} else {
		*role = MW_NF_ROLE_NONE;
		if (mw_addr_from_sockaddr(&a, (const struct sockaddr *)ss, sslen)) {
			snprintf(peer, peerlen, "?");
			return "unknown address family";
		}
		mw_addr_format(&a, peer, peerlen);
		if (!mw_cidr_match(&srv->allow, &a))
			return "not in netflow_allow";
		a.port = 0;
		snprintf(who, wholen, "address ");
		mw_addr_format(&a, who + strlen(who), wholen - strlen(who));
		if (srv->st.consumers >= MW_NF_SERVER_MAX_CONSUMERS - NF_LOCAL_RESERVED)
			return "too many TCP consumers (the rest is kept for local ones)";
		if (nf_count_preauth(srv, &oldest) < NF_PREAUTH_MAX)
			oldest = NULL;
		else if (ev_now(srv->loop) - oldest->born < NF_PREAUTH_STALE_S)
			return "too many TCP consumers waiting to authenticate";
	}
	if (srv->st.consumers >= MW_NF_SERVER_MAX_CONSUMERS)
		return "too many consumers";
	if (nf_count_who(srv, who) >= srv->max_per_user)
		return "too many consumers of this user (netflow_max_per_user)";
	if (oldest) {
		srv->st.unauthorised++;
		nf_drop(oldest, "not authorised: no Auth request in 1 s, and others wait");
	}
	return NULL;
}

static void nf_accept(struct mw_nf_server *srv, int lfd, bool local)
{
	char peer[MW_ADDR_STRLEN], who[48];
	struct sockaddr_storage ss;
	enum mw_nf_role role;
	const char *why;
	socklen_t len;
	int i, fd;

	for (i = 0; i < NF_ACCEPT_BATCH; i++) {
		len = sizeof(ss);
		fd = accept4(lfd, (struct sockaddr *)&ss, &len, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd < 0) {
			if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS ||
			    errno == ENOMEM)
				nf_accept_pause(srv);
			else if (errno != EAGAIN && errno != EINTR && errno != ECONNABORTED)
				mw_log_ratelimited(MW_LOG_WARN, "netflow: accept: %s",
						   strerror(errno));
			return;
		}
		why = nf_admit(srv, fd, local, &ss, len, peer, sizeof(peer), who, sizeof(who),
			       &role);
		if (why) {
			srv->st.refused++;
			mw_log_ratelimited(MW_LOG_WARN, "netflow: refused consumer %s: %s", peer,
					   why);
			close(fd); /* nothing was sent: an unauthorised peer learns nothing */
			continue;
		}
		nf_add_consumer(srv, fd, peer, who, role);
	}
}

static void nf_accept_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	struct mw_nf_server *srv = w->data;

	(void)loop;
	(void)revents;
	nf_accept(srv, w->fd, w == &srv->uio);
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

/*
 * The AF_UNIX socket.  A file left at @path by a server that is gone is
 * replaced; one that still answers is another live server: -EADDRINUSE.  The
 * socket is connectable by anyone (mode 0666) so that SO_PEERCRED, not the
 * file mode, decides, and a refusal is counted and logged.
 */
static int nf_listen_unix(struct mw_nf_server *srv, const char *path, char *err, size_t errlen)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	struct stat st;
	int fd, ret;

	if (strlen(path) >= sizeof(sun.sun_path)) {
		snprintf(err, errlen, "netflow: socket path too long: %s", path);
		return -ENAMETOOLONG;
	}
	memcpy(sun.sun_path, path, strlen(path) + 1);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd >= 0 && !connect(fd, (struct sockaddr *)&sun, sizeof(sun))) {
		close(fd);
		snprintf(err, errlen, "netflow: another server already answers at %s", path);
		return -EADDRINUSE;
	}
	if (fd >= 0)
		close(fd);
	if (!lstat(path, &st) && S_ISSOCK(st.st_mode))
		unlink(path);
	srv->ufd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (srv->ufd >= 0)
		mw_refuse_rights_or_warn(srv->ufd, "netflow socket"); /* consumers pass none */
	if (srv->ufd < 0 || bind(srv->ufd, (struct sockaddr *)&sun, sizeof(sun)) ||
	    chmod(path, 0666) || listen(srv->ufd, 64) || stat(path, &st)) {
		ret = -errno;
		snprintf(err, errlen, "netflow: cannot listen on %s: %s", path, strerror(-ret));
		return ret;
	}
	snprintf(srv->unix_path, sizeof(srv->unix_path), "%s", path);
	srv->unix_dev = st.st_dev;
	srv->unix_ino = st.st_ino;
	return 0;
}

static void nf_watch_listener(struct mw_nf_server *srv, ev_io *w, int fd)
{
	ev_io_init(w, nf_accept_cb, fd, EV_READ);
	w->data = srv;
	ev_io_start(srv->loop, w);
}

static void nf_unlisten(struct mw_nf_server *srv)
{
	struct stat st;

	if (srv->fd >= 0)
		close(srv->fd);
	if (srv->ufd >= 0)
		close(srv->ufd);
	/* Remove our socket file only: a later server may have replaced it. */
	if (srv->unix_path[0] && !stat(srv->unix_path, &st) && st.st_dev == srv->unix_dev &&
	    st.st_ino == srv->unix_ino)
		unlink(srv->unix_path);
}

static int nf_configure(struct mw_nf_server *srv, const struct mw_nf_server_config *cfg, char *err,
			size_t errlen)
{
	bool tcp = cfg->listen && cfg->listen[0];

	if (cfg->queue < 1 || cfg->stall_ms < 1 || cfg->max_per_user < 1 || cfg->min_rate < 0 ||
	    !cfg->mem_total || (!tcp && !(cfg->unix_path && *cfg->unix_path))) {
		snprintf(err, errlen, "netflow: bad server configuration");
		return -EINVAL;
	}
	if (tcp && (!cfg->tokens || !cfg->tokens->count)) {
		snprintf(err, errlen,
			 "netflow: TCP listen %s needs netflow_token_file (TCP consumers must "
			 "authenticate)",
			 cfg->listen);
		return -EINVAL;
	}
	if (tcp)
		srv->tokens = *cfg->tokens;
	srv->out_limit = (size_t)cfg->queue * MW_NF_INFO_SIZE;
	srv->mem_total = cfg->mem_total;
	srv->min_rate = cfg->min_rate;
	srv->max_per_user = cfg->max_per_user;
	srv->stall = cfg->stall_ms / 1000.;
	srv->observe_gid = cfg->observe_gid;
	srv->control_gid = cfg->control_gid;
	if (tcp && mw_cidr_parse(&srv->allow, cfg->allow)) {
		snprintf(err, errlen, "netflow: bad allow network \"%s\"", cfg->allow);
		return -EINVAL;
	}
	return 0;
}

/**
 * mw_nf_server_open() - listen and serve consumers on @loop
 * @out:    the server
 * @loop:   its loop
 * @cfg:    copied; strings need not outlive the call
 * @ops:    kept by reference
 * @err:    one line on failure
 * @errlen: its size
 * Return: 0 or -errno
 */
int mw_nf_server_open(struct mw_nf_server **out, struct ev_loop *loop,
		      const struct mw_nf_server_config *cfg, const struct mw_nf_server_ops *ops,
		      char *err, size_t errlen)
{
	struct mw_nf_server *srv;
	ev_tstamp every;
	int ret;

	*out = NULL;
	if (!ops->request) {
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
	srv->fd = srv->ufd = -1;
	ret = nf_configure(srv, cfg, err, errlen);
	if (!ret && cfg->listen && cfg->listen[0])
		ret = nf_listen(srv, cfg->listen, err, errlen);
	if (!ret && cfg->unix_path && cfg->unix_path[0])
		ret = nf_listen_unix(srv, cfg->unix_path, err, errlen);
	if (ret)
		goto fail;
	if (srv->fd >= 0)
		nf_watch_listener(srv, &srv->lio, srv->fd);
	if (srv->ufd >= 0)
		nf_watch_listener(srv, &srv->uio, srv->ufd);
	ev_timer_init(&srv->accept_timer, nf_accept_retry_cb, NF_ACCEPT_PAUSE_S, 0.);
	srv->accept_timer.data = srv;
	every = srv->stall / 4 < 1. ? srv->stall / 4 : 1.;
	ev_timer_init(&srv->stall_timer, nf_stall_cb, every, every);
	srv->stall_timer.data = srv;
	ev_timer_start(loop, &srv->stall_timer);
	*out = srv;
	return 0;
fail:
	nf_unlisten(srv);
	explicit_bzero(&srv->tokens, sizeof(srv->tokens));
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
		nf_close(c, "server stopping"); /* a reading consumer gets the tail */
	}
	ev_io_stop(srv->loop, &srv->lio);
	ev_io_stop(srv->loop, &srv->uio);
	ev_timer_stop(srv->loop, &srv->accept_timer);
	ev_timer_stop(srv->loop, &srv->stall_timer);
	nf_unlisten(srv);
	explicit_bzero(&srv->tokens, sizeof(srv->tokens));
	free(srv);
}

char *mw_nf_server_address(const struct mw_nf_server *srv, char *buf, size_t len)
{
	static const uint8_t any6[16];
	struct mw_addr a = srv->addr;

	if (srv->fd < 0) {
		snprintf(buf, len, "%s", srv->unix_path);
		return buf;
	}
	if (a.family == 4 && !memcmp(a.addr, any6, 4)) {
		memcpy(a.addr, (uint8_t[]){ 127, 0, 0, 1 }, 4);
	} else if (a.family == 6 && !memcmp(a.addr, any6, 16)) {
		a.addr[15] = 1;
	}
	return mw_addr_format(&a, buf, len);
}

const char *mw_nf_server_unix_path(const struct mw_nf_server *srv)
{
	return srv->unix_path;
}

void mw_nf_server_foreach(const struct mw_nf_server *srv,
			  void (*fn)(void *ctx, const struct mw_nf_consumer_info *ci), void *ctx)
{
	const struct nf_consumer *c;

	for (c = srv->consumers; c; c = c->next) {
		struct mw_nf_consumer_info ci = { .peer = c->peer,
						  .role = c->role,
						  .monitor = c->monitor,
						  .queued = c->out_len,
						  .drops = c->drops };

		fn(ctx, &ci);
	}
}

bool mw_nf_server_watching(const struct mw_nf_server *srv)
{
	return srv->nwatching > 0;
}

bool mw_nf_server_has_room(struct mw_nf_server *srv)
{
	bool mem = srv->st.queued + MW_NF_INFO_SIZE <= srv->mem_total;
	struct nf_consumer *c;

	for (c = srv->consumers; mem && c; c = c->next)
		if (c->monitor && c->out_len + MW_NF_INFO_SIZE <= srv->out_limit)
			return true;
	if (!srv->nwatching)
		return false;
	srv->st.published++;
	if (!mem)
		srv->st.mem_drops++;
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
	mw_nf_server_publish_src(srv, info, MW_NF_SRC_NONE);
}

void mw_nf_server_publish_src(struct mw_nf_server *srv, const struct mw_nf_info *info, uint32_t src)
{
	uint8_t msg[MW_NF_INFO_SIZE];
	struct nf_consumer *c;

	if (!srv->nwatching || mw_nf_encode_info(msg, info) < 0)
		return;
	srv->st.published++;
	for (c = srv->consumers; c; c = c->next) {
		if (!c->monitor)
			continue;
		if (nf_append(c, msg, sizeof(msg), false, src)) {
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
