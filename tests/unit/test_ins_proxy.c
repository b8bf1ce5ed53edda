/* SPDX-License-Identifier: MIT */
/* test_ins_proxy.c - ins.proxy_protocol: the real mw-ins, a fake PVM, clients sending PROXY v2
 * headers */
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
#include "common/proxy2.h"
#include "common/sockid.h"

/*
 * The harness (fake PVM) is test_ins_channel.c's, with the config's ins keys
 * chosen per test (ins_extra).  The test plays mw-pvm: it listens where
 * ins.pvm_socket points, starts the built mw-ins with a temp config, offers the channel and drives
 * ops.  Frames from the INS are sorted as they arrive: DATA into per-socket buffers, CREDIT into
 * per-socket counters, heartbeats into the last stats, everything else into a FIFO the tests take
 * matching frames from.  Every wait has a deadline.
 */

#define INS_ID	    3
#define PVM_INDEX   2
#define RING	    (256u * 1024u)
#define PVM_WINDOW  65536u /* credit we grant the INS per socket */
#define INS_WINDOW  65536  /* ins.socket_window: credit the INS grants us */
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

static const char *ins_extra; /* ins keys for the next ins_start() */

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
	struct sockaddr_in sin = { .sin_family = AF_INET,
				   .sin_port = htons(port),
				   .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	assert_true(fd >= 0);
	assert_int_equal(connect(fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
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
		.magic = MW_PROTO_MAGIC,
		.version_min = MW_PROTO_VERSION_MIN,
		.version_max = MW_PROTO_VERSION_MAX,
		.pvm_index = PVM_INDEX,
		.ring_size = RING,
		.window = PVM_WINDOW,
		.pid = getpid(),
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
	write_config(ins_extra);

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

/* Headers from a client on loopback; the INS trusts 127.0.0.0/8 unless a test says otherwise. */
#define TRUSTED "proxy_protocol = true; proxy_from = \"127.0.0.0/8\";"

static int start_trusted(void **state)
{
	ins_extra = TRUSTED;
	return ins_start(state);
}

static int start_untrusted(void **state)
{
	ins_extra = "proxy_protocol = true; proxy_from = \"10.0.0.0/8\";";
	return ins_start(state);
}

static struct sockaddr_storage sin4(const uint8_t ip[4], uint16_t port)
{
	struct sockaddr_storage ss = { 0 };
	struct sockaddr_in *s = (struct sockaddr_in *)&ss;

	s->sin_family = AF_INET;
	s->sin_port = htons(port);
	memcpy(&s->sin_addr, ip, 4);
	return ss;
}

static const uint8_t client_ip[4] = { 192, 0, 2, 7 };
static const uint8_t server_ip[4] = { 198, 51, 100, 1 };

/* A PROXY TCP4 header naming client_ip:@sport -> server_ip:80, into @buf. */
static size_t header(uint8_t *buf, uint16_t sport)
{
	struct sockaddr_storage src = sin4(client_ip, sport), dst = sin4(server_ip, 80);
	int n = mw_proxy2_encode(buf, MW_PROXY2_MAX, &src, &dst);

	assert_int_equal(n, MW_PROXY2_V4_LEN);
	return (size_t)n;
}

static void send_all(int fd, const void *p, size_t n)
{
	assert_int_equal(send(fd, p, n, MSG_NOSIGNAL), (ssize_t)n);
}

/* The INS closed @cfd without a byte: EOF or RST within @ms. */
static void assert_closed(int cfd, int ms)
{
	char c;
	ssize_t n;

	assert_true(readable(cfd, ms));
	n = recv(cfd, &c, 1, 0);
	assert_true(n == 0 || (n < 0 && errno == ECONNRESET));
}

static struct mw_ev_accepted take_accepted(uint64_t lid)
{
	struct mw_ev_accepted acc;
	struct ev e = take(MW_EV_ACCEPTED, lid);

	assert_int_equal(e.f.len, sizeof(acc));
	memcpy(&acc, e.p, sizeof(acc));
	return acc;
}

/* DATA from the INS for @id until @n bytes are there. */
static struct stream *wait_data(uint64_t id, size_t n)
{
	int64_t end = now_ms() + WAIT_MS;
	struct stream *s = stream_of(id);

	while (s->len < n) {
		assert_true(now_ms() < end);
		pump_wait(50);
	}
	return s;
}

/*
 * Header and data in one send(): EV_ACCEPTED names the header's client and
 * destination, OP_GETNAME answers the same, the data after the header is the
 * first DATA, byte-exact, and data flows back.
 */
static void test_proxied_accept(void **state)
{
	static const char hello[] = "hello after the header";
	uint8_t buf[MW_PROXY2_MAX + sizeof(hello)];
	struct mw_ev_accepted acc;
	struct mw_addr a;
	struct stream *st;
	uint16_t port;
	uint64_t lid = ins_listener(&port);
	size_t n = header(buf, 4242);
	int cfd = tcp_connect(port);
	char back[6] = { 0 };

	(void)state;
	memcpy(buf + n, hello, sizeof(hello));
	send_all(cfd, buf, n + sizeof(hello));
	acc = take_accepted(lid);
	assert_int_equal(acc.peer.family, 4);
	assert_memory_equal(acc.peer.addr, client_ip, 4);
	assert_int_equal(acc.peer.port, 4242);
	assert_int_equal(acc.local.family, 4);
	assert_memory_equal(acc.local.addr, server_ip, 4);
	assert_int_equal(acc.local.port, 80);
	a = op_getname(acc.new_sock, 1);
	assert_memory_equal(&a, &acc.peer, sizeof(a));
	a = op_getname(acc.new_sock, 0);
	assert_memory_equal(&a, &acc.local, sizeof(a));

	st = wait_data(acc.new_sock, sizeof(hello));
	assert_int_equal(st->len, sizeof(hello));
	assert_memory_equal(st->buf, hello, sizeof(hello));

	send_frame(MW_DATA, acc.new_sock, "world", 5);
	assert_true(readable(cfd, WAIT_MS));
	assert_int_equal(recv(cfd, back, 5, MSG_WAITALL), 5);
	assert_string_equal(back, "world");
	op_close(acc.new_sock, false);
	op_close(lid, false);
	close(cfd);
	assert_true(log_has("PROXY v2 header required from 127.0.0.0/8"));
}

/* LOCAL: the real endpoints; a header arriving in pieces is assembled. */
static void test_local_in_pieces(void **state)
{
	uint8_t buf[MW_PROXY2_FIXED + 3];
	struct mw_ev_accepted acc;
	struct timespec ts = { 0, 20 * 1000 * 1000 };
	uint16_t port;
	uint64_t lid = ins_listener(&port);
	int cfd = tcp_connect(port);
	size_t i;

	(void)state;
	assert_int_equal(mw_proxy2_encode(buf, sizeof(buf), NULL, NULL), MW_PROXY2_FIXED);
	/* NOLINTNEXTLINE(bugprone-not-null-terminated-result): stream bytes, no NUL */
	memcpy(buf + MW_PROXY2_FIXED, "abc", 3);
	for (i = 0; i < sizeof(buf); i++) {
		send_all(cfd, buf + i, 1);
		nanosleep(&ts, NULL); /* pacing: one segment per byte; nothing waits on it */
	}
	acc = take_accepted(lid);
	assert_memory_equal(acc.peer.addr, loopback(0).addr, 4);
	assert_int_equal(acc.peer.port, local_port(cfd));
	assert_int_equal(acc.local.port, port);
	assert_memory_equal(wait_data(acc.new_sock, 3)->buf, "abc", 3);
	op_close(acc.new_sock, false);
	op_close(lid, false);
	close(cfd);
}

/*
 * Garbage, a bad family, EOF inside the header, silence: each connection is
 * closed and never reported: the next EV_ACCEPTED is a later, good one.
 */
static void test_refusals(void **state)
{
	uint8_t buf[MW_PROXY2_MAX];
	struct mw_ev_accepted acc;
	int64_t t0;
	uint16_t port;
	uint64_t lid = ins_listener(&port);
	size_t n;
	int cfd;

	(void)state;
	cfd = tcp_connect(port);
	send_all(cfd, "GET / HTTP/1.1\r\n\r\n", 18);
	assert_closed(cfd, WAIT_MS);
	close(cfd);

	cfd = tcp_connect(port);
	n = header(buf, 1);
	buf[13] = 0x12; /* UDP over IPv4 */
	send_all(cfd, buf, n);
	assert_closed(cfd, WAIT_MS);
	close(cfd);

	cfd = tcp_connect(port);
	header(buf, 1);
	send_all(cfd, buf, 20);
	assert_int_equal(shutdown(cfd, SHUT_WR), 0);
	assert_closed(cfd, WAIT_MS);
	close(cfd);

	cfd = tcp_connect(port);
	t0 = now_ms();
	assert_closed(cfd, WAIT_MS);
	assert_true(now_ms() - t0 >= 1500); /* the 2 s deadline, not earlier */
	close(cfd);

	cfd = tcp_connect(port);
	n = header(buf, 7777);
	send_all(cfd, buf, n);
	acc = take_accepted(lid);
	assert_int_equal(acc.peer.port, 7777);
	op_close(acc.new_sock, false);
	op_close(lid, false);
	close(cfd);
	assert_true(log_has("closed: no valid PROXY v2 header"));
	assert_true(log_has("closed: PROXY header for a transport other than TCP"));
	assert_true(log_has("closed: closed before its PROXY header ended"));
	assert_true(log_has("closed: no PROXY header within 2 s"));
}

/* Address blocks match the client the header names, not the balancer. */
static void test_block_matches_header_client(void **state)
{
	struct mw_op_addr_block ab = { .block = 1, .addr = { .family = 4 } };
	uint8_t buf[MW_PROXY2_MAX];
	struct mw_ev_accepted acc;
	uint16_t port;
	uint64_t lid = ins_listener(&port);
	size_t n = header(buf, 1000);
	int cfd, cfd2;

	(void)state;
	memcpy(ab.addr.addr, client_ip, 4);
	assert_int_equal(op(MW_OP_ADDR_BLOCK, 0, &ab, sizeof(ab), NULL, NULL), 0);
	cfd = tcp_connect(port);
	send_all(cfd, buf, n);
	assert_closed(cfd, WAIT_MS);
	close(cfd);

	ab.block = 0;
	assert_int_equal(op(MW_OP_ADDR_BLOCK, 0, &ab, sizeof(ab), NULL, NULL), 0);
	cfd2 = tcp_connect(port);
	send_all(cfd2, buf, header(buf, 2000));
	acc = take_accepted(lid);
	assert_int_equal(acc.peer.port, 2000);

	/* Blocking again resets the live proxied connection. */
	ab.block = 1;
	assert_int_equal(op(MW_OP_ADDR_BLOCK, 0, &ab, sizeof(ab), NULL, NULL), 0);
	take(MW_EV_RESET, acc.new_sock);
	assert_closed(cfd2, WAIT_MS);
	op_close(acc.new_sock, false);
	op_close(lid, false);
	close(cfd2);
}

/* The listener closes while a connection is still sending its header. */
static void test_listener_closed_while_waiting(void **state)
{
	uint8_t buf[MW_PROXY2_MAX];
	uint16_t port;
	uint64_t lid = ins_listener(&port);
	size_t n = header(buf, 3000);
	int cfd = tcp_connect(port);
	char line[96];
	int64_t end = now_ms() + WAIT_MS;

	(void)state;
	send_all(cfd, buf, 10);
	/* Close the listener only once the INS holds the connection, waiting for the rest. */
	snprintf(line, sizeof(line), "connection from 127.0.0.1:%u: waiting for its PROXY header",
		 local_port(cfd));
	while (!log_has(line)) {
		assert_true(now_ms() < end);
		pump_wait(10);
	}
	op_close(lid, false);
	send_all(cfd, buf + 10, n - 10);
	assert_closed(cfd, WAIT_MS);
	close(cfd);
	assert_true(log_has("its listener closed meanwhile"));
}

/* A sender outside ins.proxy_from is reset at once, header or not. */
static void test_untrusted_sender(void **state)
{
	uint8_t buf[MW_PROXY2_MAX];
	uint16_t port;
	uint64_t lid = ins_listener(&port);
	size_t n = header(buf, 4000);
	int cfd = tcp_connect(port);
	int64_t t0 = now_ms();

	(void)state;
	(void)send(cfd, buf, n, MSG_NOSIGNAL); /* may already meet the reset */
	assert_closed(cfd, WAIT_MS);
	assert_true(now_ms() - t0 < 1500);
	close(cfd);
	op_close(lid, false);
	assert_true(log_has("closed: not in ins.proxy_from"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_proxied_accept, start_trusted, ins_stop),
		cmocka_unit_test_setup_teardown(test_local_in_pieces, start_trusted, ins_stop),
		cmocka_unit_test_setup_teardown(test_refusals, start_trusted, ins_stop),
		cmocka_unit_test_setup_teardown(test_block_matches_header_client, start_trusted,
						ins_stop),
		cmocka_unit_test_setup_teardown(test_listener_closed_while_waiting, start_trusted,
						ins_stop),
		cmocka_unit_test_setup_teardown(test_untrusted_sender, start_untrusted, ins_stop),
	};

	signal(SIGPIPE, SIG_IGN);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
