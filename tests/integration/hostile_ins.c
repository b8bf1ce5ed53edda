/* SPDX-License-Identifier: MIT */
/* hostile_ins.c - test harness: a lying INS against the real mw-pvm (the mirror of fake_pvm.c) */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "common/channel.h"
#include "common/proto.h"
#include "common/shield.h"
#include "common/sockid.h"

/*
 * Usage: hostile_ins SOCKET ID SCENARIO [N [SECS]]
 *
 * Joins mw-pvm through the real handshake and channel code (mw_channel_local_join)
 * as INS ID, answers every op with RESULT 0 (BIND/GETNAME with the address) and
 * heartbeats every HB_MS, like an honest INS, until it has seen N OP_LISTEN (1 by
 * default: the replica of the app's listener); then it lies once, as SCENARIO says,
 * and waits for mw-pvm to cut it (EOF on the handshake socket).
 *
 * Scenarios: second (a second channel from this process: refused, the first kept),
 * rejoin (the channel ended, a join as another id: refused; as ID again: accepted),
 * closed (EV_CLOSED on every listener it serves), connected (EV_CONNECTED
 * on a listener), accepted-on-conn, replay-accepted, replay-eof, replay-result,
 * credit (CREDIT for bytes never sent), data (DATA beyond the window on the
 * listener of port N, whose app does not read), garbage
 * (unknown frame type), foreign (DATA for a socket of another INS), flood (N
 * EV_ACCEPTED, aborts never answered), unconfirmed (closes answered, never confirmed by EV_CLOSED),
 * misname (the name of every later bind on
 * us says port 22, whatever the app asked for), no-drain (stops consuming its rx ring, then
 * pushes DATA on CONNS connections of the listener of port N, whose app reads it
 * and writes back: mw-pvm's ring to us fills and the CREDIT it owes us queues),
 * pipe-lock (a connection on port N's listener, whose app writes in bulk: once
 * bytes are in the data pipe, a thread splices them out into a full blocking
 * socket, holding the pipe's lock for good, and the CREDIT it sends makes mw-pvm
 * splice into the pipe again).
 * forge (N connections on the first listener, reported from the address ADDR, the
 * 5th argument, that never send a byte; then serves honestly for SECS seconds, the
 * 6th, saying "blocked on us: ADDR" for each AddrBlock it gets: a lie mw-pvm cannot
 * see, which must not get ADDR blocked on the other INS); spread (the same, each
 * connection from the next address: ADDR, ADDR + 1, ...: made-up connections from
 * as many addresses, filling mw-guard's tables).
 * mute (4 connections on the listener of port N, then no op answered for SECS
 * seconds, the 5th argument, while heartbeating).
 * misport (a connection accepted on the listener of port N at port 40000, not its
 * listener's: a name mw-pvm
 * does not pass on as the listener's port; not cut, it serves 2 s).
 * Not lying: stall (N connections that never finish a hello, kept up for SECS
 * seconds, the 5th argument: re-made when mw-pvm drops one) and
 * wedge (joins, heartbeats, answers no op for N seconds).
 *
 * Exit: 0 cut by mw-pvm as expected (or stall/wedge done), 3 not cut within
 * CUT_WAIT_MS, 1 setup failure.  Lines on stdout say what happened.
 */

#define HB_MS	      100
#define CUT_WAIT_MS   5000
#define APP_WAIT_MS   20000 /* misname, unconfirmed: the app's binds or closes, then the cut */
#define JOIN_WAIT_MS  10000
#define MAX_LISTEN    16
#define FAKE_PORT     40000
#define MISNAME_PORT  22   /* the misname lie: a privileged port the app never asked for */
#define NODRAIN_CONNS 200  /* connections of the no-drain lie */
#define NODRAIN_FRAME 1024 /* DATA bytes per frame: a CREDIT per frame the app drains */

struct hostile {
	struct mw_channel ch;
	uint16_t id;
	uint8_t pvm_index;
	uint64_t listeners[MAX_LISTEN];
	uint16_t ports[MAX_LISTEN];
	int nlisten;
	uint64_t bound[MAX_LISTEN]; /* OP_BIND seen: id, port */
	struct mw_addr bound_addr[MAX_LISTEN];
	int nbound;
	uint64_t data_sock; /* the "data" lie: credit the PVM returned on it */
	uint64_t credited;
	uint64_t got_data, got_piped; /* pipe-lock: DATA / DATA_PIPE bytes on data_sock */
	uint32_t next_conn;
	uint32_t last_req;
	uint64_t last_req_sock;
	bool answer_ops;
	bool misname; /* the misname lie: every bind's name says port MISNAME_PORT */
	bool misport; /* the misport lie: a connection accepted at FAKE_PORT */
	bool unconfirmed; /* the unconfirmed lie: closes answered, never EV_CLOSED */
	bool no_rx; /* the no-drain lie: frames for us stay in the ring */
	unsigned aborts, ops_unanswered;
	int64_t last_hb;
	uint64_t hb_seq;
	bool cut;
};

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static __attribute__((format(printf, 1, 2))) void say(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	printf("hostile: ");
	vprintf(fmt, ap);
	printf("\n");
	fflush(stdout);
	va_end(ap);
}

static int connect_unix(const char *path)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

	if (fd < 0 || strlen(path) >= sizeof(sun.sun_path))
		goto fail;
	memcpy(sun.sun_path, path, strlen(path));
	if (connect(fd, (struct sockaddr *)&sun, sizeof(sun)) == 0)
		return fd;
fail:
	if (fd >= 0)
		close(fd);
	return -1;
}

/* Send, waiting for room; frames must not be lost (the lies are counted on). */
static void send_frame(struct hostile *h, uint16_t type, uint64_t sock, const void *pl,
		       uint32_t len)
{
	int64_t end = now_ms() + 2000;

	while (mw_channel_send(&h->ch, type, sock, pl, len) == -EAGAIN && now_ms() < end) {
		mw_channel_flush(&h->ch);
		usleep(1000);
	}
	mw_channel_flush(&h->ch);
}

static void result(struct hostile *h, uint64_t sock, uint32_t req, const void *val, uint32_t len)
{
	uint8_t buf[sizeof(struct mw_result) + MW_SOCKOPT_MAX] = { 0 };
	struct mw_result r = { .req = req, .status = 0, .len = len };

	memcpy(buf, &r, sizeof(r));
	if (len)
		memcpy(buf + sizeof(r), val, len);
	send_frame(h, MW_RESULT, sock, buf, (uint32_t)sizeof(r) + len);
	h->last_req = req;
	h->last_req_sock = sock;
}

static void result_status(struct hostile *h, uint64_t sock, uint32_t req, int status)
{
	struct mw_result r = { .req = req, .status = status };

	send_frame(h, MW_RESULT, sock, &r, sizeof(r));
}

static void on_op(struct hostile *h, const struct mw_frame *f, const uint8_t *pl)
{
	struct mw_stats st = { 0 };
	struct mw_op_addr_block ab;
	struct mw_op_sockopt so;
	struct mw_op_addr oa;
	char text[INET6_ADDRSTRLEN];
	struct mw_addr a = { 0 };
	uint32_t req;

	memcpy(&req, pl, sizeof(req));
	if (f->type == MW_OP_ABORT || f->type == MW_OP_CLOSE)
		h->aborts++;
	if (!h->answer_ops) {
		h->ops_unanswered++;
		return;
	}
	switch (f->type) {
	case MW_OP_BIND:
		memcpy(&oa, pl, sizeof(oa));
		if (h->nbound < MAX_LISTEN) {
			h->bound[h->nbound] = f->sock;
			h->bound_addr[h->nbound++] = oa.addr;
		}
		result(h, f->sock, req, &oa.addr, sizeof(oa.addr));
		break;
	case MW_OP_LISTEN:
		if (h->nlisten < MAX_LISTEN) {
			for (int i = 0; i < h->nbound; i++)
				if (h->bound[i] == f->sock)
					h->ports[h->nlisten] = h->bound_addr[i].port;
			h->listeners[h->nlisten++] = f->sock;
		}
		result(h, f->sock, req, NULL, 0);
		break;
	case MW_OP_GETNAME: /* the address it was bound to, as a kernel would say */
		a.family = 4;
		a.port = FAKE_PORT;
		for (int i = 0; i < h->nbound; i++)
			if (h->bound[i] == f->sock)
				a = h->bound_addr[i];
		if (h->misname) {
			say("naming a bind port %u", MISNAME_PORT);
			a.port = MISNAME_PORT;
		}
		result(h, f->sock, req, &a, sizeof(a));
		break;
	case MW_OP_STATS:
		result(h, 0, req, &st, sizeof(st));
		break;
	case MW_OP_ADDR_BLOCK:
		memcpy(&ab, pl, sizeof(ab));
		if (ab.addr.family == 4 && inet_ntop(AF_INET, ab.addr.addr, text, sizeof(text)))
			say("%s on us: %s", ab.block ? "blocked" : "unblocked", text);
		result(h, f->sock, req, NULL, 0);
		break;
	case MW_OP_CLOSE:
	case MW_OP_ABORT:
		result(h, f->sock, req, NULL, 0);
		if (!h->unconfirmed)
			send_frame(h, MW_EV_CLOSED, f->sock, NULL, 0);
		break;
	case MW_OP_SETOPT: /* like mw-ins: a few options; the others are refused */
		memcpy(&so, pl, sizeof(so));
		if ((so.level == SOL_SOCKET &&
		     (so.name == SO_REUSEADDR || so.name == SO_REUSEPORT)) ||
		    (so.level == IPPROTO_TCP && so.name == TCP_NODELAY) ||
		    so.level == MW_SOL_SHIELD)
			result(h, f->sock, req, NULL, 0);
		else
			result_status(h, f->sock, req, -ENOPROTOOPT);
		break;
	default:
		result(h, f->sock, req, NULL, 0);
		break;
	}
}

/* Take every frame, answer ops, heartbeat; notice the cut (EOF on the handshake socket). */
static void serve(struct hostile *h, int ms)
{
	int64_t end = now_ms() + ms;
	struct pollfd p[2];
	const void *pl;
	struct mw_frame f;
	uint8_t priv[128];
	char c;
	int ret;

	do {
		while (!h->no_rx && mw_channel_recv(&h->ch, &f, &pl) == 1) {
			if (f.type < MW_RESULT && f.len <= sizeof(priv) && f.len >= 4) {
				memcpy(priv, pl, f.len);
				mw_channel_done(&h->ch);
				on_op(h, &f, priv);
			} else {
				if (f.type == MW_CREDIT && f.sock == h->data_sock &&
				    f.len == sizeof(struct mw_credit)) {
					struct mw_credit cr;

					memcpy(&cr, pl, sizeof(cr));
					h->credited += cr.bytes;
				}
				if (f.type == MW_DATA && f.sock == h->data_sock)
					h->got_data += f.len;
				if (f.type == MW_DATA_PIPE && f.sock == h->data_sock &&
				    f.len == sizeof(struct mw_data_pipe)) {
					struct mw_data_pipe dp;

					memcpy(&dp, pl, sizeof(dp));
					h->got_piped += dp.len;
				}
				mw_channel_done(&h->ch); /* DATA: dropped */
			}
		}
		if (now_ms() - h->last_hb >= HB_MS) {
			struct mw_stats st = { .seq = ++h->hb_seq };

			send_frame(h, MW_EV_HEARTBEAT, 0, &st, sizeof(st));
			h->last_hb = now_ms();
		}
		mw_channel_flush(&h->ch);
		p[0] = (struct pollfd){ .fd = h->ch.wait_fd, .events = POLLIN };
		p[1] = (struct pollfd){ .fd = h->ch.sock_fd, .events = POLLIN };
		if (!h->no_rx && !mw_channel_sleep(&h->ch))
			continue;
		ret = poll(p, 2, HB_MS / 2);
		mw_channel_woken(&h->ch);
		if (ret > 0 && p[1].revents &&
		    recv(h->ch.sock_fd, &c, 1, MSG_DONTWAIT | MSG_PEEK) <= 0) {
			h->cut = true;
			return;
		}
	} while (now_ms() < end);
}

static uint64_t conn_id(struct hostile *h)
{
	return mw_sockid_make(h->id, h->pvm_index, MW_SOCKID_INS_ASSIGNED | ++h->next_conn);
}

/*
 * An accepted connection on listener @on from @peer (NULL: 192.0.2.1:FAKE_PORT),
 * at the listener's own port (the misport lie: at FAKE_PORT).
 */
static uint64_t accept_from(struct hostile *h, uint64_t on, const struct mw_addr *peer)
{
	struct mw_ev_accepted ev = { .new_sock = conn_id(h) };

	ev.peer.family = ev.local.family = 4;
	ev.peer.addr[0] = 192;
	ev.peer.addr[1] = 0;
	ev.peer.addr[2] = 2;
	ev.peer.addr[3] = 1;
	ev.peer.port = FAKE_PORT;
	ev.local = ev.peer;
	for (int i = 0; i < h->nbound && !h->misport; i++)
		if (h->bound[i] == on)
			ev.local.port = h->bound_addr[i].port;
	if (peer)
		ev.peer = *peer;
	send_frame(h, MW_EV_ACCEPTED, on, &ev, sizeof(ev));
	return ev.new_sock;
}

static uint64_t accept_one(struct hostile *h, uint64_t on)
{
	return accept_from(h, on, NULL);
}

/* Enough listeners to lie about: N for "closed", port N's for "data", else one. */
static bool listeners_ready(const struct hostile *h, const char *what, int n)
{
	int i;

	if (!strcmp(what, "closed"))
		return h->nlisten >= n;
	if (!strcmp(what, "data") || !strcmp(what, "no-drain") || !strcmp(what, "pipe-lock") ||
	    !strcmp(what, "mute") || !strcmp(what, "misport")) {
		for (i = 0; i < h->nlisten; i++)
			if (h->ports[i] == n)
				return true;
		return false;
	}
	return h->nlisten >= 1;
}

/* pipe-lock: splice out of the data pipe into a full blocking socket; never returns. */
static void *hold_pipe(void *arg)
{
	struct hostile *h = arg;
	static char fill[65536];
	int sv[2], fl;

	if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv))
		return NULL;
	fl = fcntl(sv[0], F_GETFL);
	fcntl(sv[0], F_SETFL, fl | O_NONBLOCK);
	while (write(sv[0], fill, sizeof(fill)) > 0)
		;
	fcntl(sv[0], F_SETFL, fl); /* blocking again, and full: the next send waits */
	say("holding the data pipe's lock");
	splice(h->ch.pipe_fd, NULL, sv[0], NULL, 1 << 20, 0);
	return NULL;
}

/* The lie; returns 0, or -1 for an unknown scenario. */
static int lie(struct hostile *h, const char *what, int n)
{
	uint64_t lsn = h->listeners[0], c;
	struct mw_ev_connected ec = { 0 };
	struct mw_credit cr = { .bytes = 1000 };
	struct mw_result r = { 0 };
	static uint8_t junk[MW_FRAME_MAX_PAYLOAD];
	uint64_t sent = 0;
	uint32_t left;
	int i;

	if (!strcmp(what, "closed")) {
		for (i = 0; i < h->nlisten; i++)
			send_frame(h, MW_EV_CLOSED, h->listeners[i], NULL, 0);
	} else if (!strcmp(what, "connected")) {
		send_frame(h, MW_EV_CONNECTED, lsn, &ec, sizeof(ec));
	} else if (!strcmp(what, "accepted-on-conn")) {
		c = accept_one(h, lsn);
		accept_one(h, c);
	} else if (!strcmp(what, "replay-accepted")) {
		struct mw_ev_accepted ev = { .new_sock = conn_id(h) };

		ev.peer.family = ev.local.family = 4;
		ev.local.port = h->ports[0];
		send_frame(h, MW_EV_ACCEPTED, lsn, &ev, sizeof(ev));
		send_frame(h, MW_EV_ACCEPTED, lsn, &ev, sizeof(ev));
	} else if (!strcmp(what, "replay-eof")) {
		c = accept_one(h, lsn);
		send_frame(h, MW_EV_EOF, c, NULL, 0);
		send_frame(h, MW_EV_EOF, c, NULL, 0);
	} else if (!strcmp(what, "replay-result")) {
		r.req = h->last_req;
		send_frame(h, MW_RESULT, h->last_req_sock, &r, sizeof(r));
	} else if (!strcmp(what, "credit")) {
		c = accept_one(h, lsn);
		send_frame(h, MW_CREDIT, c, &cr, sizeof(cr));
	} else if (!strcmp(what, "data")) {
		/* On port N's listener: an app that does not read. Exceed what was granted. */
		for (i = 0; i < h->nlisten; i++)
			if (h->ports[i] == n)
				lsn = h->listeners[i];
		c = accept_one(h, lsn);
		h->data_sock = c;
		serve(h, 300); /* handed over to the app, which accepts */
		memset(junk, 'x', sizeof(junk));
		for (i = 0; i < 1000 && !h->cut; i++) {
			serve(h, 0);
			if (sent > h->ch.peer.window + h->credited)
				break;
			left = (uint32_t)(h->ch.peer.window + h->credited + 1 - sent);
			left = left < sizeof(junk) ? left : (uint32_t)sizeof(junk);
			send_frame(h, MW_DATA, c, junk, left);
			sent += left;
		}
	} else if (!strcmp(what, "no-drain")) {
		for (i = 0; i < h->nlisten; i++)
			if (h->ports[i] == n)
				lsn = h->listeners[i];
		h->no_rx = true;
		memset(junk, 'x', sizeof(junk));
		for (i = 0; i < NODRAIN_CONNS && !h->cut; i++) {
			c = accept_one(h, lsn);
			for (sent = 0; sent + NODRAIN_FRAME <= h->ch.peer.window;
			     sent += NODRAIN_FRAME)
				send_frame(h, MW_DATA, c, junk, NODRAIN_FRAME);
			serve(h, 0);
		}
	} else if (!strcmp(what, "pipe-lock")) {
		pthread_t t;
		int64_t end = now_ms() + 5000;

		for (i = 0; i < h->nlisten; i++)
			if (h->ports[i] == n)
				lsn = h->listeners[i];
		if (h->ch.pipe_fd < 0) {
			say("no data pipe");
			return 0;
		}
		h->data_sock = c = accept_one(h, lsn);
		while (!h->got_piped && !h->cut && now_ms() < end)
			serve(h, 50);
		say("%llu bytes as DATA, %llu in the pipe", (unsigned long long)h->got_data,
		    (unsigned long long)h->got_piped);
		if (!h->got_piped || pthread_create(&t, NULL, hold_pipe, h))
			return 0;
		pthread_detach(t);
		usleep(200 * 1000);
		/* Honest credit for what came: mw-pvm splices again, into a locked pipe. */
		cr.bytes = (uint32_t)(h->got_data + h->got_piped);
		send_frame(h, MW_CREDIT, c, &cr, sizeof(cr));
	} else if (!strcmp(what, "garbage")) {
		send_frame(h, 0x7777, lsn, junk, 8);
	} else if (!strcmp(what, "foreign")) {
		send_frame(h, MW_DATA, mw_sockid_make((uint16_t)(h->id + 1), h->pvm_index, 1), junk,
			   8);
	} else if (!strcmp(what, "unconfirmed")) {
		h->unconfirmed = true; /* the lie waits for the apps' closes */
	} else if (!strcmp(what, "misname")) {
		h->misname = true; /* the lie waits for an app's bind placed on us */
	} else if (!strcmp(what, "flood")) {
		h->answer_ops = false;
		for (i = 0; i < n; i++)
			accept_one(h, lsn);
	} else {
		return -1;
	}
	return 0;
}

/* One stalling connection: odd ones send half a hello, the others nothing. */
static int stall_one(const char *path, int i)
{
	struct mw_hello half = { .magic = MW_PROTO_MAGIC };
	int fd = connect_unix(path);

	if (fd >= 0 && i % 2)
		(void)send(fd, &half, sizeof(half) / 2, MSG_NOSIGNAL);
	return fd;
}

/*
 * Keep @n handshakes stalled for @secs seconds: a connection mw-pvm drops (at its
 * deadline, or for pvm.handshake_max) is made again on the next 100 ms tick.
 */
static int stall(const char *path, int n, int secs)
{
	struct pollfd p[64];
	int64_t end = now_ms() + secs * 1000LL;
	unsigned remade = 0, i;
	char c;

	if (n < 1 || n > 64)
		return 1;
	for (i = 0; i < (unsigned)n; i++) {
		p[i].fd = stall_one(path, (int)i);
		p[i].events = POLLIN;
		if (p[i].fd < 0)
			return 1;
	}
	say("stalled %d handshake(s), for %d s", n, secs);
	while (now_ms() < end) {
		if (poll(p, (nfds_t)n, 100) < 0 && errno != EINTR)
			return 1;
		for (i = 0; i < (unsigned)n; i++) {
			if (!p[i].revents || recv(p[i].fd, &c, 1, MSG_DONTWAIT) > 0)
				continue;
			close(p[i].fd);
			p[i].fd = stall_one(path, (int)i);
			remade++;
			if (p[i].fd < 0)
				return 1;
		}
		usleep(100 * 1000);
	}
	say("stall done: %u connection(s) dropped by mw-pvm and made again", remade);
	for (i = 0; i < (unsigned)n; i++)
		close(p[i].fd);
	return 0;
}

/*
 * "second": a second channel from this process, as INS ID + 1000, naming pid 1;
 * mw-pvm must refuse it and keep the first.  Exit 0 if so, 3 if it was accepted.
 */
static int second(struct hostile *h, const char *path, const struct mw_hello *first)
{
	struct mw_hello other = *first;
	struct mw_channel ch2;
	char err[160] = "";
	int fd;

	other.ins_id = (uint16_t)(h->id + 1000);
	other.pid = 1;
	fd = connect_unix(path);
	if (fd >= 0 && !mw_channel_local_join(&ch2, fd, &other, err, sizeof(err))) {
		say("second channel ACCEPTED as INS %u", other.ins_id);
		return 3;
	}
	say("second channel refused: %s; pid %d", fd < 0 ? strerror(errno) : err, (int)getpid());
	serve(h, 3 * HB_MS);
	say("first channel %s", h->cut ? "cut" : "alive");
	return h->cut ? 3 : 0;
}

/*
 * "rejoin": end the channel, then join again as INS ID + 1000 (refused: this
 * process was INS ID), then as ID (accepted: a restart keeps its id).  Exit 0 if
 * so, 3 if the other id was accepted or the same id refused.
 */
static int rejoin(struct hostile *h, const char *path, const struct mw_hello *first)
{
	struct mw_hello other = *first;
	struct mw_channel ch2;
	char err[160] = "";
	int fd;

	mw_channel_close(&h->ch);
	usleep(200 * 1000);
	other.ins_id = (uint16_t)(h->id + 1000);
	fd = connect_unix(path);
	if (fd >= 0 && !mw_channel_local_join(&ch2, fd, &other, err, sizeof(err))) {
		say("joined again as INS %u: ACCEPTED", other.ins_id);
		return 3;
	}
	say("join as INS %u refused: %s; pid %d", other.ins_id, fd < 0 ? strerror(errno) : err,
	    (int)getpid());
	fd = connect_unix(path);
	if (fd < 0 || mw_channel_local_join(&h->ch, fd, first, err, sizeof(err))) {
		say("join again as INS %u refused: %s", h->id, fd < 0 ? strerror(errno) : err);
		return 3;
	}
	say("joined again as INS %u", h->id);
	serve(h, 3 * HB_MS);
	return h->cut ? 3 : 0;
}

/*
 * "mute": 4 connections on the listener of port @port, then no op answered for
 * @secs seconds (heartbeats go on): whatever the app asks of those connections
 * waits in mw-pvm for a result that never comes.
 */
static int mute(struct hostile *h, int port, int secs)
{
	int i, k;

	for (k = 0; k < h->nlisten && h->ports[k] != port; k++)
		;
	for (i = 0; i < 4; i++)
		accept_one(h, h->listeners[k]);
	h->answer_ops = false;
	say("4 connection(s) on port %d; answering no op for %d s", port, secs);
	serve(h, secs * 1000);
	say("mute done: %u op(s) unanswered%s", h->ops_unanswered, h->cut ? ", cut" : "");
	return h->cut ? 3 : 0;
}

/*
 * "forge": @n silent connections from @addr (or, @spread, from @addr, @addr + 1, ...),
 * then honest service for @secs seconds.
 */
static int forge(struct hostile *h, int n, const char *addr, int secs, bool spread)
{
	struct mw_addr peer = { .family = 4 };
	uint32_t first;
	int i;

	if (inet_pton(AF_INET, addr, peer.addr) != 1) {
		say("forge: not an IPv4 address: %s", addr);
		return 1;
	}
	memcpy(&first, peer.addr, 4);
	for (i = 0; i < n && !h->cut; i++) {
		uint32_t a = htonl(ntohl(first) + (spread ? (uint32_t)i : 0));

		memcpy(peer.addr, &a, 4);
		peer.port = (uint16_t)(FAKE_PORT + i);
		accept_from(h, h->listeners[0], &peer);
	}
	say("forged %d connection(s) from %s%s", n, addr, spread ? " on" : "");
	serve(h, secs * 1000);
	say("forge done, %u abort(s)%s", h->aborts, h->cut ? ", cut" : "");
	return h->cut ? 3 : 0;
}

int main(int argc, char **argv)
{
	struct hostile h = { .answer_ops = true };
	struct mw_hello mine = {
		.magic = MW_PROTO_MAGIC,
		.version_min = MW_PROTO_VERSION_MIN,
		.version_max = MW_PROTO_VERSION_MAX,
		.window = 262144,
		.heartbeat_ms = HB_MS,
	};
	const char *what;
	char err[160];
	int64_t t0;
	int fd, n;

	if (argc < 4) {
		fprintf(stderr, "usage: hostile_ins SOCKET ID SCENARIO [N]\n");
		return 1;
	}
	signal(SIGPIPE, SIG_IGN);
	what = argv[3];
	n = argc > 4 ? (int)strtol(argv[4], NULL, 10) : 0;
	if (!strcmp(what, "stall"))
		return stall(argv[1], n, argc > 5 ? (int)strtol(argv[5], NULL, 10) : n);
	h.id = (uint16_t)strtol(argv[2], NULL, 10);
	mine.ins_id = h.id;
	mine.pid = strcmp(what, "second") ? (uint32_t)getpid() : 1; /* a lie mw-pvm ignores */
	fd = connect_unix(argv[1]);
	if (fd < 0 || mw_channel_local_join(&h.ch, fd, &mine, err, sizeof(err))) {
		say("cannot join: %s", fd < 0 ? strerror(errno) : err);
		return 1;
	}
	h.pvm_index = h.ch.peer.pvm_index;
	say("joined as INS %u", h.id);
	if (!strcmp(what, "second"))
		return second(&h, argv[1], &mine);
	if (!strcmp(what, "rejoin"))
		return rejoin(&h, argv[1], &mine);
	if (!strcmp(what, "wedge")) {
		h.answer_ops = false;
		serve(&h, n * 1000);
		say("wedged for %d s, %u op(s) unanswered, %s", n, h.ops_unanswered,
		    h.cut ? "cut" : "not cut");
		return 0;
	}
	t0 = now_ms();
	while (!h.cut && now_ms() - t0 < JOIN_WAIT_MS && !listeners_ready(&h, what, n))
		serve(&h, HB_MS);
	if (h.cut || !h.nlisten) {
		say("no listener replayed on us (%d seen)%s", h.nlisten, h.cut ? ", cut" : "");
		return 1;
	}
	say("%d listener(s), first %#llx; lying: %s", h.nlisten, (unsigned long long)h.listeners[0],
	    what);
	if (!strcmp(what, "forge") || !strcmp(what, "spread"))
		return argc > 6 ? forge(&h, n, argv[5], (int)strtol(argv[6], NULL, 10),
					!strcmp(what, "spread"))
				: 1;
	if (!strcmp(what, "mute"))
		return argc > 5 ? mute(&h, n, (int)strtol(argv[5], NULL, 10)) : 1;
	if (!strcmp(what, "misport")) {
		h.misport = true;
		for (int i = 0; i < h.nlisten; i++)
			if (h.ports[i] == n)
				accept_one(&h, h.listeners[i]);
		serve(&h, 2000);
		say("misport done: %s", h.cut ? "cut" : "not cut");
		return h.cut ? 3 : 0;
	}
	if (lie(&h, what, n)) {
		say("unknown scenario %s", what);
		return 1;
	}
	t0 = now_ms();
	/* misname, unconfirmed: the lie waits for the app's binds or closes. */
	serve(&h,
	      strcmp(what, "misname") && strcmp(what, "unconfirmed") ? CUT_WAIT_MS : APP_WAIT_MS);
	if (!strcmp(what, "flood"))
		say("aborts received: %u", h.aborts);
	if (!h.cut) {
		say("NOT cut within %d ms", CUT_WAIT_MS);
		return 3;
	}
	say("cut by mw-pvm after %lld ms", (long long)(now_ms() - t0));
	return 0;
}
