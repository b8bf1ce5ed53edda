/* SPDX-License-Identifier: MIT */
/* test_ins_channel.c - the real mw-ins driven over a local channel by a fake PVM, against loopback */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/channel.h"
#include "common/sockid.h"

/*
 * The test plays mw-pvm: it listens where ins.pvm_socket points, starts the
 * built mw-ins with a temp config, offers the channel and drives ops.  Frames
 * from the INS are sorted as they arrive: DATA into per-socket buffers, CREDIT
 * into per-socket counters, heartbeats into the last stats, everything else
 * into a FIFO the tests take matching frames from.  Every wait has a deadline.
 */

#define INS_ID	    3
#define PVM_INDEX   2
#define RING	    (256u * 1024u)
#define PVM_WINDOW  65536u  /* credit we grant the INS per socket */
#define INS_WINDOW  65536   /* ins.socket_window: credit the INS grants us */
#define WAIT_MS	    10000
#define MAX_EVENTS  8192
#define MAX_STREAMS 16

struct ev {
	struct mw_frame f;
	uint8_t p[128];
};

struct stream {
	uint64_t id;
	uint8_t *buf;
	size_t len, cap;
	uint64_t credit_back; /* CREDIT the INS returned for our DATA */
};

static struct harness {
	char dir[40], conf[96], sock[96], log[96];
	int lfd;
	pid_t pid;
	struct mw_channel ch;
	bool up;
	struct ev *evs;
	size_t nevs;
	struct stream st[MAX_STREAMS];
	struct mw_stats hb;
	unsigned hb_count;
	uint32_t next_req, next_local;
} H;

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static struct stream *stream_of(uint64_t id)
{
	int i;

	for (i = 0; i < MAX_STREAMS; i++)
		if (H.st[i].id == id)
			return &H.st[i];
	for (i = 0; i < MAX_STREAMS; i++) {
		if (!H.st[i].id) {
			H.st[i].id = id;
			return &H.st[i];
		}
	}
	fail_msg("too many streams");
	return NULL;
}

/* Take every frame that is there now; true if any. */
static bool pump(void)
{
	const void *pl;
	struct mw_frame f;
	struct stream *s;
	struct mw_credit cr;
	bool any = false;
	int ret;

	while ((ret = mw_channel_recv(&H.ch, &f, &pl)) == 1) {
		any = true;
		if (f.type == MW_DATA) {
			s = stream_of(f.sock);
			if (s->len + f.len > s->cap) {
				s->cap = (s->len + f.len) * 2;
				s->buf = realloc(s->buf, s->cap);
				assert_non_null(s->buf);
			}
			memcpy(s->buf + s->len, pl, f.len);
			s->len += f.len;
		} else if (f.type == MW_CREDIT) {
			memcpy(&cr, pl, sizeof(cr));
			stream_of(f.sock)->credit_back += cr.bytes;
		} else if (f.type == MW_EV_HEARTBEAT) {
			assert_int_equal(f.len, sizeof(H.hb));
			memcpy(&H.hb, pl, sizeof(H.hb));
			H.hb_count++;
		} else {
			assert_true(f.len <= sizeof(H.evs[0].p));
			assert_true(H.nevs < MAX_EVENTS);
			H.evs[H.nevs].f = f;
			memcpy(H.evs[H.nevs].p, pl, f.len);
			H.nevs++;
		}
		mw_channel_done(&H.ch);
	}
	assert_int_equal(ret, 0);
	return any;
}

/* Wait up to @ms for more frames (or until the INS kicks us). */
static void pump_wait(int ms)
{
	struct pollfd p = { .fd = H.ch.wait_fd, .events = POLLIN };

	mw_channel_flush(&H.ch);
	if (pump())
		return;
	if (!mw_channel_sleep(&H.ch)) {
		pump();
		return;
	}
	if (poll(&p, 1, ms) == 1)
		mw_channel_woken(&H.ch);
	else
		mw_ring_consumer_wake(&H.ch.rx);
	pump();
}

/* The first queued event of @type on @sock (any sock if ~0), removed; fails after WAIT_MS. */
static struct ev take(uint16_t type, uint64_t sock)
{
	int64_t end = now_ms() + WAIT_MS;
	struct ev e;
	size_t i;

	for (;;) {
		for (i = 0; i < H.nevs; i++) {
			if (H.evs[i].f.type == type && (sock == ~0ULL || H.evs[i].f.sock == sock)) {
				e = H.evs[i];
				memmove(&H.evs[i], &H.evs[i + 1], (H.nevs - i - 1) * sizeof(e));
				H.nevs--;
				return e;
			}
		}
		if (now_ms() > end)
			fail_msg("no %s for %#llx within %d ms", mw_proto_type_name(type),
				 (unsigned long long)sock, WAIT_MS);
		pump_wait(50);
	}
}

static void send_frame(uint16_t type, uint64_t sock, const void *p, uint32_t len)
{
	int64_t end = now_ms() + WAIT_MS;

	while (mw_channel_send(&H.ch, type, sock, p, len) == -EAGAIN) {
		assert_true(now_ms() < end);
		pump_wait(10);
	}
	mw_channel_flush(&H.ch);
}

/* Send an op (request id filled in) and return its RESULT's status; value into @val. */
static int op(uint16_t type, uint64_t sock, void *payload, uint32_t len, void *val, uint32_t *vlen)
{
	struct mw_result r;
	uint32_t req = ++H.next_req;
	int64_t end = now_ms() + WAIT_MS;
	size_t i;

	memcpy(payload, &req, sizeof(req));
	send_frame(type, sock, payload, len);
	for (;;) {
		for (i = 0; i < H.nevs; i++) {
			memcpy(&r, H.evs[i].p, sizeof(r));
			if (H.evs[i].f.type != MW_RESULT || r.req != req)
				continue;
			assert_int_equal(H.evs[i].f.sock, sock);
			assert_int_equal(H.evs[i].f.len, sizeof(r) + r.len);
			if (val)
				memcpy(val, H.evs[i].p + sizeof(r), r.len);
			if (vlen)
				*vlen = r.len;
			memmove(&H.evs[i], &H.evs[i + 1], (H.nevs - i - 1) * sizeof(H.evs[0]));
			H.nevs--;
			return r.status;
		}
		if (now_ms() > end)
			fail_msg("no RESULT for %s", mw_proto_type_name(type));
		pump_wait(50);
	}
}

static uint64_t new_id(void)
{
	return mw_sockid_make(INS_ID, PVM_INDEX, ++H.next_local);
}

static uint64_t op_socket(void)
{
	struct mw_op_socket o = { .family = 4 };
	uint64_t id = new_id();

	assert_int_equal(op(MW_OP_SOCKET, id, &o, sizeof(o), NULL, NULL), 0);
	return id;
}

static struct mw_addr loopback(uint16_t port)
{
	struct mw_addr a = { .family = 4, .port = port, .addr = { 127, 0, 0, 1 } };

	return a;
}

static int op_addr(uint16_t type, uint64_t id, struct mw_addr a)
{
	struct mw_op_addr o = { .addr = a };

	return op(type, id, &o, sizeof(o), NULL, NULL);
}

static struct mw_addr op_getname(uint64_t id, int which)
{
	struct mw_op_int o = { .value = which };
	struct mw_addr a;
	uint32_t len = 0;

	assert_int_equal(op(MW_OP_GETNAME, id, &o, sizeof(o), &a, &len), 0);
	assert_int_equal(len, sizeof(a));
	return a;
}

static void op_close(uint64_t id, bool abort)
{
	struct mw_op_req o;

	assert_int_equal(op(abort ? MW_OP_ABORT : MW_OP_CLOSE, id, &o, sizeof(o), NULL, NULL), 0);
	take(MW_EV_CLOSED, id);
}

static void credit(uint64_t id, uint32_t bytes)
{
	struct mw_credit c = { .bytes = bytes };

	send_frame(MW_CREDIT, id, &c, sizeof(c));
}

static uint64_t ins_listener(uint16_t *port)
{
	struct mw_op_int l = { .value = 64 };
	uint64_t id = op_socket();
	struct mw_addr a;

	assert_int_equal(op_addr(MW_OP_BIND, id, loopback(0)), 0);
	a = op_getname(id, 0);
	assert_int_equal(a.family, 4);
	assert_int_not_equal(a.port, 0);
	assert_int_equal(op(MW_OP_LISTEN, id, &l, sizeof(l), NULL, NULL), 0);
	*port = a.port;
	return id;
}

static int tcp_connect(uint16_t port)
{
	struct sockaddr_in sin = { .sin_family = AF_INET, .sin_port = htons(port),
				   .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	assert_true(fd >= 0);
	assert_int_equal(connect(fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
	return fd;
}

static int tcp_listener(uint16_t *port)
{
	struct sockaddr_in sin = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t len = sizeof(sin);
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	assert_true(fd >= 0);
	assert_int_equal(bind(fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
	assert_int_equal(listen(fd, 16), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&sin, &len), 0);
	*port = ntohs(sin.sin_port);
	return fd;
}

static uint16_t local_port(int fd)
{
	struct sockaddr_in sin = { 0 };
	socklen_t len = sizeof(sin);

	assert_int_equal(getsockname(fd, (struct sockaddr *)&sin, &len), 0);
	return ntohs(sin.sin_port);
}

static bool readable(int fd, int ms)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };

	return poll(&p, 1, ms) == 1;
}

static void write_config(const char *extra)
{
	FILE *f = fopen(H.conf, "w");

	assert_non_null(f);
	fprintf(f,
		"common: { runtime_dir = \"%s/run\"; keystore_root = \"%s/store\"; };\n"
		"ins: { pvm_socket = \"%s\"; heartbeat_ms = 100; socket_window = %d; %s };\n",
		H.dir, H.dir, H.sock, INS_WINDOW, extra ? extra : "");
	fclose(f);
}

static int ins_start(void **state)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	struct mw_hello mine = {
		.magic = MW_PROTO_MAGIC, .version_min = MW_PROTO_VERSION_MIN,
		.version_max = MW_PROTO_VERSION_MAX, .pvm_index = PVM_INDEX, .ring_size = RING,
		.window = PVM_WINDOW, .pid = getpid(),
	};
	const char *bd = getenv("MW_BUILD_DIR");
	char bin[512], err[160] = "", id[8];
	struct pollfd p;
	int fd, out;

	memset(&H, 0, sizeof(H));
	H.evs = calloc(MAX_EVENTS, sizeof(*H.evs));
	assert_non_null(H.evs);
	assert_non_null(bd);
	snprintf(bin, sizeof(bin), "%s/ins/mw-ins", bd);
	snprintf(H.dir, sizeof(H.dir), "/tmp/mwins-test.XXXXXX");
	assert_non_null(mkdtemp(H.dir));
	snprintf(H.conf, sizeof(H.conf), "%s/mwcomms.conf", H.dir);
	snprintf(H.sock, sizeof(H.sock), "%s/pvm-ins.sock", H.dir);
	snprintf(H.log, sizeof(H.log), "%s/ins.log", H.dir);
	write_config(NULL);

	H.lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	assert_true(H.lfd >= 0);
	snprintf(sun.sun_path, sizeof(sun.sun_path), "%s", H.sock);
	assert_int_equal(bind(H.lfd, (struct sockaddr *)&sun, sizeof(sun)), 0);
	assert_int_equal(listen(H.lfd, 4), 0);

	snprintf(id, sizeof(id), "%d", INS_ID);
	H.pid = fork();
	assert_true(H.pid >= 0);
	if (H.pid == 0) {
		out = open(H.log, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
		if (out >= 0) {
			dup2(out, 2);
			dup2(out, 1);
		}
		unsetenv("NOTIFY_SOCKET");
		unsetenv("MW_CONFIG");
		execl(bin, bin, "-c", H.conf, "--id", id, "--log-level", "debug", (char *)NULL);
		_exit(127);
	}
	p = (struct pollfd){ .fd = H.lfd, .events = POLLIN };
	assert_int_equal(poll(&p, 1, WAIT_MS), 1);
	fd = accept4(H.lfd, NULL, NULL, SOCK_CLOEXEC);
	assert_true(fd >= 0);
	assert_int_equal(mw_channel_local_offer(&H.ch, fd, &mine, err, sizeof(err)), 0);
	assert_int_equal(H.ch.peer.ins_id, INS_ID);
	assert_int_equal(H.ch.peer.window, INS_WINDOW);
	H.up = true;
	return 0;
}

/* Wait for the INS to exit; its status, or -1 on timeout (then it is killed). */
static int ins_wait_exit(int ms)
{
	int64_t end = now_ms() + ms;
	struct timespec ts = { 0, 10 * 1000 * 1000 };
	int st;

	while (now_ms() < end) {
		if (waitpid(H.pid, &st, WNOHANG) == H.pid) {
			H.pid = 0;
			return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
		}
		nanosleep(&ts, NULL);
	}
	kill(H.pid, SIGKILL);
	waitpid(H.pid, &st, 0);
	H.pid = 0;
	return -1;
}

static bool log_has(const char *needle)
{
	char buf[65536];
	size_t n;
	FILE *f = fopen(H.log, "r");

	if (!f)
		return false;
	n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = 0;
	return strstr(buf, needle) != NULL;
}

static int ins_stop(void **state)
{
	char cmd[256];
	int i, rc = 0;

	if (H.pid > 0) {
		kill(H.pid, SIGTERM);
		rc = ins_wait_exit(5000);
	}
	if (H.up)
		mw_channel_close(&H.ch);
	if (H.lfd > 0)
		close(H.lfd);
	for (i = 0; i < MAX_STREAMS; i++)
		free(H.st[i].buf);
	free(H.evs);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", H.dir);
	if (system(cmd) != 0) /* NOLINT(cert-env33-c): fixed command, mkdtemp path */
		fprintf(stderr, "cleanup of %s failed\n", H.dir);
	H.up = false;
	/* SIGTERM is a clean stop: exit 0. */
	return rc == 0 ? 0 : -1;
}

static void fill(uint8_t *b, size_t n, uint32_t seed)
{
	size_t i;

	for (i = 0; i < n; i++) {
		seed = seed * 1103515245u + 12345u;
		b[i] = (uint8_t)(seed >> 16);
	}
}

/* Client -> INS -> us, holding credit back to see the INS stop at the window. */
static void relay_in(int cfd, uint64_t id, size_t total)
{
	uint8_t *src = malloc(total);
	struct stream *s = stream_of(id);
	size_t sent = 0, granted = PVM_WINDOW, returned = 0;
	int64_t end = now_ms() + WAIT_MS;
	ssize_t n;

	assert_non_null(src);
	fill(src, total, 42);
	fcntl(cfd, F_SETFL, O_NONBLOCK);
	s->len = 0;
	/* Phase 1: exactly the window arrives, then nothing more without credit. */
	while (s->len < PVM_WINDOW && now_ms() < end) {
		n = send(cfd, src + sent, total - sent, MSG_NOSIGNAL);
		if (n > 0)
			sent += (size_t)n;
		pump_wait(20);
	}
	assert_int_equal(s->len, PVM_WINDOW);
	while (sent < total) { /* the kernel buffers take the rest */
		n = send(cfd, src + sent, total - sent, MSG_NOSIGNAL);
		if (n <= 0)
			break;
		sent += (size_t)n;
	}
	/* Absence of DATA cannot be awaited: give the INS a fair chance to overstep. */
	pump_wait(300);
	pump_wait(100);
	assert_int_equal(s->len, PVM_WINDOW);
	/* Phase 2: credit as it arrives, until everything is here. */
	while (s->len < total && now_ms() < end) {
		if (s->len > returned) {
			credit(id, (uint32_t)(s->len - returned));
			granted += s->len - returned;
			returned = s->len;
		}
		if (sent < total) {
			n = send(cfd, src + sent, total - sent, MSG_NOSIGNAL);
			if (n > 0)
				sent += (size_t)n;
		}
		pump_wait(20);
		assert_true(s->len <= granted);
	}
	assert_int_equal(s->len, total);
	assert_memory_equal(s->buf, src, total);
	if (s->len > returned)
		credit(id, (uint32_t)(s->len - returned));
	free(src);
}

/* Us -> INS -> client, within the credit the INS grants. */
static void relay_out(int cfd, uint64_t id, size_t total)
{
	uint8_t *src = malloc(total), *dst = malloc(total);
	struct stream *s = stream_of(id);
	size_t sent = 0, got = 0, chunk;
	int64_t end = now_ms() + WAIT_MS;
	ssize_t n;

	assert_non_null(src);
	assert_non_null(dst);
	fill(src, total, 7);
	s->credit_back = 0;
	while (got < total && now_ms() < end) {
		chunk = total - sent;
		if (chunk > INS_WINDOW - (sent - s->credit_back))
			chunk = INS_WINDOW - (sent - s->credit_back);
		if (chunk > 60000)
			chunk = 60000;
		if (chunk) {
			send_frame(MW_DATA, id, src + sent, (uint32_t)chunk);
			sent += chunk;
		}
		while ((n = recv(cfd, dst + got, total - got, MSG_DONTWAIT)) > 0)
			got += (size_t)n;
		pump_wait(chunk ? 0 : 10);
		assert_true(s->credit_back <= sent);
	}
	assert_int_equal(got, total);
	assert_memory_equal(dst, src, total);
	free(src);
	free(dst);
}

static void test_listen_accept_relay_eof_close(void **state)
{
	struct mw_op_int sh = { .value = SHUT_WR };
	struct mw_ev_accepted acc;
	uint16_t port;
	uint64_t lid = ins_listener(&port);
	int cfd = tcp_connect(port);
	struct ev e = take(MW_EV_ACCEPTED, lid);
	char c;

	assert_int_equal(e.f.len, sizeof(acc));
	memcpy(&acc, e.p, sizeof(acc));
	assert_true(mw_sockid_valid(acc.new_sock));
	assert_int_equal(mw_sockid_ins(acc.new_sock), INS_ID);
	assert_int_equal(mw_sockid_pvm(acc.new_sock), PVM_INDEX);
	assert_true(mw_sockid_local(acc.new_sock) & MW_SOCKID_INS_ASSIGNED);
	assert_int_equal(acc.peer.family, 4);
	assert_memory_equal(acc.peer.addr, loopback(0).addr, 4);
	assert_int_equal(acc.peer.port, local_port(cfd));
	assert_int_equal(acc.local.port, port);

	relay_in(cfd, acc.new_sock, 300000);
	relay_out(cfd, acc.new_sock, 400000);

	/* Client FIN -> EV_EOF; our SHUT_WR -> client reads EOF. */
	assert_int_equal(shutdown(cfd, SHUT_WR), 0);
	take(MW_EV_EOF, acc.new_sock);
	assert_int_equal(op(MW_OP_SHUTDOWN, acc.new_sock, &sh, sizeof(sh), NULL, NULL), 0);
	assert_true(readable(cfd, WAIT_MS));
	assert_int_equal(recv(cfd, &c, 1, 0), 0);
	op_close(acc.new_sock, false);
	op_close(lid, false);
	/* The id is dead now: ops on it fail cleanly. */
	assert_int_equal(op(MW_OP_SHUTDOWN, acc.new_sock, &sh, sizeof(sh), NULL, NULL), -EBADF);
	close(cfd);
}

static void test_connect_refused_connected_abort(void **state)
{
	struct mw_ev_connected conn;
	struct mw_ev_errno eno;
	uint16_t port, closed_port;
	int lfd = tcp_listener(&port), afd, tmp;
	uint64_t id;
	struct ev e;
	char c;

	/* A port nobody listens on: bound, never listening. */
	tmp = tcp_listener(&closed_port);
	close(tmp);
	id = op_socket();
	assert_int_equal(op_addr(MW_OP_CONNECT, id, loopback(closed_port)), 0);
	e = take(MW_EV_ERROR, id);
	memcpy(&eno, e.p, sizeof(eno));
	assert_int_equal(eno.err, ECONNREFUSED);
	op_close(id, false);

	id = op_socket();
	assert_int_equal(op_addr(MW_OP_CONNECT, id, loopback(port)), 0);
	e = take(MW_EV_CONNECTED, id);
	memcpy(&conn, e.p, sizeof(conn));
	assert_int_equal(conn.peer.port, port);
	assert_int_equal(conn.local.family, 4);
	assert_true(readable(lfd, WAIT_MS));
	afd = accept(lfd, NULL, NULL);
	assert_true(afd >= 0);
	assert_int_equal(local_port(afd), port);
	/* A second connect on a connected socket is refused by the INS. */
	assert_int_equal(op_addr(MW_OP_CONNECT, id, loopback(port)), -EISCONN);

	relay_out(afd, id, 100000);
	op_close(id, true);
	assert_true(readable(afd, WAIT_MS));
	errno = 0;
	assert_int_equal(recv(afd, &c, 1, 0), -1);
	assert_int_equal(errno, ECONNRESET);
	close(afd);
	close(lfd);
}

static void test_addr_block(void **state)
{
	struct mw_op_addr_block ab = { .block = 1, .addr = loopback(0) };
	struct mw_ev_accepted acc;
	uint16_t port;
	uint64_t lid = ins_listener(&port), bid;
	int cfd, cfd2;
	struct ev e;
	char c;

	assert_int_equal(op(MW_OP_ADDR_BLOCK, 0, &ab, sizeof(ab), NULL, NULL), 0);
	/* Connecting to a blocked address from the INS is refused too. */
	bid = op_socket();
	assert_int_equal(op_addr(MW_OP_CONNECT, bid, loopback(port)), -EACCES);
	op_close(bid, false);

	cfd = tcp_connect(port); /* the kernel completes the handshake; the INS resets it */
	assert_true(readable(cfd, WAIT_MS));
	errno = 0;
	assert_int_equal(recv(cfd, &c, 1, 0), -1);
	assert_int_equal(errno, ECONNRESET);
	close(cfd);

	ab.block = 0;
	assert_int_equal(op(MW_OP_ADDR_BLOCK, 0, &ab, sizeof(ab), NULL, NULL), 0);
	assert_int_equal(op(MW_OP_ADDR_BLOCK, 0, &ab, sizeof(ab), NULL, NULL), -ENOENT);
	cfd2 = tcp_connect(port);
	/* The first EV_ACCEPTED is the second client's: the blocked one was never reported. */
	e = take(MW_EV_ACCEPTED, lid);
	memcpy(&acc, e.p, sizeof(acc));
	assert_int_equal(acc.peer.port, local_port(cfd2));

	/* Blocking again aborts the live connection: EV_RESET, client sees RST. */
	ab.block = 1;
	assert_int_equal(op(MW_OP_ADDR_BLOCK, 0, &ab, sizeof(ab), NULL, NULL), 0);
	e = take(MW_EV_RESET, acc.new_sock);
	assert_int_equal(e.f.sock, acc.new_sock);
	assert_true(readable(cfd2, WAIT_MS));
	assert_int_equal(recv(cfd2, &c, 1, 0), -1);
	ab.block = 0;
	assert_int_equal(op(MW_OP_ADDR_BLOCK, 0, &ab, sizeof(ab), NULL, NULL), 0);
	op_close(acc.new_sock, false);
	op_close(lid, false);
	close(cfd2);
}

static void test_options(void **state)
{
	struct mw_op_sockopt o = { .level = IPPROTO_TCP, .name = TCP_NODELAY, .len = sizeof(int) };
	uint64_t id = op_socket();
	uint32_t len = 0;
	int one = 1, v = 0;

	memcpy(o.val, &one, sizeof(one));
	assert_int_equal(op(MW_OP_SETOPT, id, &o, sizeof(o), NULL, NULL), 0);
	memset(o.val, 0, sizeof(o.val));
	assert_int_equal(op(MW_OP_GETOPT, id, &o, sizeof(o), &v, &len), 0);
	assert_int_equal(len, sizeof(int));
	assert_int_equal(v, 1);

	o.level = SOL_SOCKET;
	o.name = SO_BINDTODEVICE;
	assert_int_equal(op(MW_OP_SETOPT, id, &o, sizeof(o), NULL, NULL), -ENOPROTOOPT);
	o.name = SO_ERROR; /* readable, not writable */
	assert_int_equal(op(MW_OP_SETOPT, id, &o, sizeof(o), NULL, NULL), -ENOPROTOOPT);
	assert_int_equal(op(MW_OP_GETOPT, id, &o, sizeof(o), &v, &len), 0);
	assert_int_equal(v, 0);
	op_close(id, false);
}

static void test_ins_set_congestion(void **state)
{
	struct mw_op_ins_set s = { .name = MW_INS_CONGESTION };
	struct mw_op_sockopt o = { .level = IPPROTO_TCP, .name = TCP_CONGESTION, .len = 16 };
	char val[MW_SOCKOPT_MAX + 1] = "";
	uint32_t len = 0;
	uint64_t id;

	snprintf(s.text, sizeof(s.text), "no-such-cc");
	assert_int_equal(op(MW_OP_INS_SET, 0, &s, sizeof(s), NULL, NULL), -ENOENT);
	snprintf(s.text, sizeof(s.text), "reno");
	assert_int_equal(op(MW_OP_INS_SET, 0, &s, sizeof(s), NULL, NULL), 0);
	id = op_socket();
	assert_int_equal(op(MW_OP_GETOPT, id, &o, sizeof(o), val, &len), 0);
	assert_true(len >= 4);
	assert_string_equal(val, "reno");
	op_close(id, false);
	snprintf(s.text, sizeof(s.text), "cubic");
	assert_int_equal(op(MW_OP_INS_SET, 0, &s, sizeof(s), NULL, NULL), 0);
	id = op_socket();
	memset(val, 0, sizeof(val));
	assert_int_equal(op(MW_OP_GETOPT, id, &o, sizeof(o), val, &len), 0);
	assert_string_equal(val, "cubic");
	op_close(id, false);
}

static void test_heartbeat_and_stats(void **state)
{
	struct mw_op_req rq;
	struct mw_stats st;
	uint64_t a = op_socket(), b = op_socket();
	unsigned seen = H.hb_count;
	int64_t end = now_ms() + WAIT_MS;
	uint32_t len = 0;

	while ((H.hb_count < seen + 2 || H.hb.used_sockets != 2) && now_ms() < end)
		pump_wait(50);
	assert_true(H.hb_count >= seen + 2);
	assert_int_equal(H.hb.used_sockets, 2);
	assert_int_equal(op(MW_OP_STATS, 0, &rq, sizeof(rq), &st, &len), 0);
	assert_int_equal(len, sizeof(st));
	assert_int_equal(st.used_sockets, 2);
	op_close(a, false);
	op_close(b, true);
}

static void test_thousand_sockets(void **state)
{
	enum { N = 1000 };
	struct mw_op_socket so = { .family = 4 };
	struct mw_op_req rq;
	struct mw_stats st;
	uint64_t ids[N];
	uint32_t len;
	int i;

	for (i = 0; i < N; i++) {
		ids[i] = new_id();
		so.req = ++H.next_req;
		send_frame(MW_OP_SOCKET, ids[i], &so, sizeof(so));
	}
	for (i = 0; i < N; i++) {
		struct mw_result r;
		struct ev e = take(MW_RESULT, ids[i]);

		memcpy(&r, e.p, sizeof(r));
		assert_int_equal(r.status, 0);
	}
	assert_int_equal(op(MW_OP_STATS, 0, &rq, sizeof(rq), &st, &len), 0);
	assert_int_equal(st.used_sockets, N);
	for (i = 0; i < N; i++) {
		rq.req = ++H.next_req;
		send_frame(MW_OP_CLOSE, ids[i], &rq, sizeof(rq));
	}
	for (i = 0; i < N; i++) {
		take(MW_RESULT, ids[i]);
		take(MW_EV_CLOSED, ids[i]);
	}
	assert_int_equal(op(MW_OP_STATS, 0, &rq, sizeof(rq), &st, &len), 0);
	assert_int_equal(st.used_sockets, 0);
}

static void test_malformed_frame_kills(void **state)
{
	struct mw_op_socket o = { .req = 1, .family = 9 };

	send_frame(MW_OP_SOCKET, new_id(), &o, sizeof(o));
	assert_int_equal(ins_wait_exit(WAIT_MS), 1);
	assert_true(log_has("bad frame from mw-pvm"));
	assert_true(log_has("family 9"));
}

/* An accepted connection whose client never reads, with small buffers on both ends. */
static uint64_t stalled_conn(int *cfd)
{
	struct sockaddr_in sin = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	struct mw_op_sockopt o = { .level = SOL_SOCKET, .name = SO_SNDBUF, .len = sizeof(int) };
	int small = 4096;
	struct mw_ev_accepted acc;
	uint16_t port;
	uint64_t lid = ins_listener(&port);
	struct ev e;

	*cfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	assert_true(*cfd >= 0);
	assert_int_equal(setsockopt(*cfd, SOL_SOCKET, SO_RCVBUF, &small, sizeof(small)), 0);
	sin.sin_port = htons(port);
	assert_int_equal(connect(*cfd, (struct sockaddr *)&sin, sizeof(sin)), 0);
	e = take(MW_EV_ACCEPTED, lid);
	memcpy(&acc, e.p, sizeof(acc));
	memcpy(o.val, &small, sizeof(small));
	assert_int_equal(op(MW_OP_SETOPT, acc.new_sock, &o, sizeof(o), NULL, NULL), 0);
	return acc.new_sock;
}

static void test_data_beyond_credit_kills(void **state)
{
	static uint8_t big[60000];
	int cfd, i;
	uint64_t id = stalled_conn(&cfd);

	/* 180000 bytes against a 65536 window: the kernel cannot absorb enough to cover it. */
	for (i = 0; i < 3; i++)
		send_frame(MW_DATA, id, big, sizeof(big));
	assert_int_equal(ins_wait_exit(WAIT_MS), 1);
	assert_true(log_has("beyond the credit"));
	close(cfd);
}

static void test_credit_beyond_kills(void **state)
{
	int cfd;
	uint64_t id = stalled_conn(&cfd);

	credit(id, 1); /* the INS sent nothing on it yet */
	assert_int_equal(ins_wait_exit(WAIT_MS), 1);
	assert_true(log_has("exceeds what was sent"));
	close(cfd);
}

static void test_data_on_unconnected_kills(void **state)
{
	uint64_t id = op_socket();
	uint8_t b = 1;

	send_frame(MW_DATA, id, &b, 1);
	assert_int_equal(ins_wait_exit(WAIT_MS), 1);
	assert_true(log_has("not connected"));
}

static void test_pvm_gone_exits(void **state)
{
	mw_channel_close(&H.ch);
	H.up = false;
	assert_int_equal(ins_wait_exit(WAIT_MS), 1);
	assert_true(log_has("pvm channel lost"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_listen_accept_relay_eof_close, ins_start,
						ins_stop),
		cmocka_unit_test_setup_teardown(test_connect_refused_connected_abort, ins_start,
						ins_stop),
		cmocka_unit_test_setup_teardown(test_addr_block, ins_start, ins_stop),
		cmocka_unit_test_setup_teardown(test_options, ins_start, ins_stop),
		cmocka_unit_test_setup_teardown(test_ins_set_congestion, ins_start, ins_stop),
		cmocka_unit_test_setup_teardown(test_heartbeat_and_stats, ins_start, ins_stop),
		cmocka_unit_test_setup_teardown(test_thousand_sockets, ins_start, ins_stop),
		cmocka_unit_test_setup_teardown(test_malformed_frame_kills, ins_start, ins_stop),
		cmocka_unit_test_setup_teardown(test_data_beyond_credit_kills, ins_start,
						ins_stop),
		cmocka_unit_test_setup_teardown(test_credit_beyond_kills, ins_start, ins_stop),
		cmocka_unit_test_setup_teardown(test_data_on_unconnected_kills, ins_start,
						ins_stop),
		cmocka_unit_test_setup_teardown(test_pvm_gone_exits, ins_start, ins_stop),
	};

	signal(SIGPIPE, SIG_IGN);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
