/* SPDX-License-Identifier: MIT */
/* fake_pvm.c - test harness: the real mw-ins driven over a local channel by a fake PVM */
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

#include "common/sockid.h"
#include "tests/unit/fake_pvm.h"

struct harness H;
const char *fake_pvm_ins_extra;

int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

struct stream *stream_of(uint64_t id)
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
bool pump(void)
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
void pump_wait(int ms)
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
struct ev take(uint16_t type, uint64_t sock)
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

void send_frame(uint16_t type, uint64_t sock, const void *p, uint32_t len)
{
	int64_t end = now_ms() + WAIT_MS;

	while (mw_channel_send(&H.ch, type, sock, p, len) == -EAGAIN) {
		assert_true(now_ms() < end);
		pump_wait(10);
	}
	mw_channel_flush(&H.ch);
}

/* Send an op (request id filled in) and return its RESULT's status; value into @val. */
int op(uint16_t type, uint64_t sock, void *payload, uint32_t len, void *val, uint32_t *vlen)
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

uint64_t new_id(void)
{
	return mw_sockid_make(INS_ID, PVM_INDEX, ++H.next_local);
}

uint64_t op_socket(void)
{
	struct mw_op_socket o = { .family = 4 };
	uint64_t id = new_id();

	assert_int_equal(op(MW_OP_SOCKET, id, &o, sizeof(o), NULL, NULL), 0);
	return id;
}

struct mw_addr loopback(uint16_t port)
{
	struct mw_addr a = { .family = 4, .port = port, .addr = { 127, 0, 0, 1 } };

	return a;
}

int op_addr(uint16_t type, uint64_t id, struct mw_addr a)
{
	struct mw_op_addr o = { .addr = a };

	return op(type, id, &o, sizeof(o), NULL, NULL);
}

struct mw_addr op_getname(uint64_t id, int which)
{
	struct mw_op_int o = { .value = which };
	struct mw_addr a;
	uint32_t len = 0;

	assert_int_equal(op(MW_OP_GETNAME, id, &o, sizeof(o), &a, &len), 0);
	assert_int_equal(len, sizeof(a));
	return a;
}

void op_close(uint64_t id, bool abort)
{
	struct mw_op_req o;

	assert_int_equal(op(abort ? MW_OP_ABORT : MW_OP_CLOSE, id, &o, sizeof(o), NULL, NULL), 0);
	take(MW_EV_CLOSED, id);
}

void credit(uint64_t id, uint32_t bytes)
{
	struct mw_credit c = { .bytes = bytes };

	send_frame(MW_CREDIT, id, &c, sizeof(c));
}

uint64_t ins_listener(uint16_t *port)
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

int tcp_connect(uint16_t port)
{
	struct sockaddr_in sin = { .sin_family = AF_INET,
				   .sin_port = htons(port),
				   .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	assert_true(fd >= 0);
	assert_int_equal(connect(fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
	return fd;
}

int tcp_listener(uint16_t *port)
{
	struct sockaddr_in sin = { .sin_family = AF_INET,
				   .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t len = sizeof(sin);
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	assert_true(fd >= 0);
	assert_int_equal(bind(fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
	assert_int_equal(listen(fd, 16), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&sin, &len), 0);
	*port = ntohs(sin.sin_port);
	return fd;
}

uint16_t local_port(int fd)
{
	struct sockaddr_in sin = { 0 };
	socklen_t len = sizeof(sin);

	assert_int_equal(getsockname(fd, (struct sockaddr *)&sin, &len), 0);
	return ntohs(sin.sin_port);
}

bool readable(int fd, int ms)
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
		"ins: { pvm_socket = \"%s\"; heartbeat_ms = 100; socket_window = %d; %s "
		"};\n",
		H.dir, H.dir, H.sock, INS_WINDOW, extra ? extra : "");
	fclose(f);
}

int ins_start(void **state)
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
	write_config(fake_pvm_ins_extra);

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
int ins_wait_exit(int ms)
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

bool log_has(const char *needle)
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

int ins_stop(void **state)
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
