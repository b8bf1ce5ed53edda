/* SPDX-License-Identifier: MIT */
/* test_netflow_client.c - the consumer client against a scripted TCP server on 127.0.0.1 */
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "common/keystore.h"
#include "netflow/client.h"

#define IO_TIMEOUT_MS 5000

/*
 * The server thread runs a script of writes and expected reads.  It never
 * asserts (cmocka is not thread-safe): it records the first failure in
 * srv.fail, which the main thread checks after joining.
 */
struct srv {
	int lfd;
	uint16_t port;
	pthread_t th;
	int (*script)(struct srv *s, int fd);
	char fail[256];
};

static int srv_write(int fd, const void *buf, size_t len)
{
	return send(fd, buf, len, MSG_NOSIGNAL) == (ssize_t)len ? 0 : -1;
}

/* Read exactly @len bytes within IO_TIMEOUT_MS; Return: 0, or -1 (EOF, timeout, error). */
static int srv_read(int fd, void *buf, size_t len)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };
	size_t off = 0;
	ssize_t n;

	while (off < len) {
		if (poll(&p, 1, IO_TIMEOUT_MS) != 1)
			return -1;
		n = recv(fd, (uint8_t *)buf + off, len - off, 0);
		if (n <= 0)
			return -1;
		off += (size_t)n;
	}
	return 0;
}

/* Expect one request equal to @want, byte for byte. */
static int srv_expect(struct srv *s, int fd, const uint8_t *want)
{
	uint8_t got[MW_NF_REQUEST_SIZE];
	size_t i;

	if (srv_read(fd, got, sizeof(got))) {
		snprintf(s->fail, sizeof(s->fail), "request did not arrive");
		return -1;
	}
	for (i = 0; i < sizeof(got); i++) {
		if (got[i] != want[i]) {
			snprintf(s->fail, sizeof(s->fail), "request byte %zu: 0x%02x, want 0x%02x",
				 i, got[i], want[i]);
			return -1;
		}
	}
	return 0;
}

/* Wait until the client closes its end, so our close cannot race its reads with an RST. */
static void srv_wait_eof(int fd)
{
	uint8_t b[256];

	while (srv_read(fd, b, 1) == 0)
		;
}

static void *srv_main(void *arg)
{
	struct srv *s = arg;
	struct pollfd p = { .fd = s->lfd, .events = POLLIN };
	int fd;

	if (poll(&p, 1, IO_TIMEOUT_MS) != 1) {
		snprintf(s->fail, sizeof(s->fail), "no client connected");
		return NULL;
	}
	fd = accept(s->lfd, NULL, NULL);
	if (fd < 0) {
		snprintf(s->fail, sizeof(s->fail), "accept: %s", strerror(errno));
		return NULL;
	}
	if (s->script(s, fd) && !s->fail[0])
		snprintf(s->fail, sizeof(s->fail), "script write failed");
	close(fd);
	return NULL;
}

/* Listen on 127.0.0.1, or on ::1 with @v6. */
static void srv_start_on(struct srv *s, int (*script)(struct srv *, int), int v6)
{
	struct sockaddr_storage ss = { 0 };
	struct sockaddr_in *sin = (struct sockaddr_in *)&ss;
	struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&ss;
	socklen_t len = v6 ? sizeof(*sin6) : sizeof(*sin);

	memset(s, 0, sizeof(*s));
	s->script = script;
	if (v6) {
		sin6->sin6_family = AF_INET6;
		sin6->sin6_addr = in6addr_loopback;
	} else {
		sin->sin_family = AF_INET;
		sin->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	}
	s->lfd = socket(v6 ? AF_INET6 : AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	assert_true(s->lfd >= 0);
	assert_int_equal(bind(s->lfd, (struct sockaddr *)&ss, len), 0);
	assert_int_equal(listen(s->lfd, 4), 0);
	assert_int_equal(getsockname(s->lfd, (struct sockaddr *)&ss, &len), 0);
	/* NOLINTNEXTLINE(clang-analyzer-core.CallAndMessage): getsockname() was asserted */
	s->port = ntohs(v6 ? sin6->sin6_port : sin->sin_port);
	assert_int_equal(pthread_create(&s->th, NULL, srv_main, s), 0);
}

static void srv_start(struct srv *s, int (*script)(struct srv *, int))
{
	srv_start_on(s, script, 0);
}

static void srv_join(struct srv *s)
{
	pthread_join(s->th, NULL);
	close(s->lfd);
	if (s->fail[0])
		fail_msg("server: %s", s->fail);
}

static struct mw_nf_client *connect_to(struct srv *s)
{
	struct mw_nf_client *c;
	char text[32], err[256];

	snprintf(text, sizeof(text), "127.0.0.1:%u", s->port);
	if (mw_nf_client_connect(&c, text, IO_TIMEOUT_MS, err, sizeof(err)))
		fail_msg("%s", err);
	return c;
}

/* An observation whose fields tell which one it is. */
static void make_info(uint8_t out[MW_NF_INFO_SIZE], uint16_t obs, uint64_t seq)
{
	struct mw_nf_info i = { .obs = obs, .sockfd = 0x5300010200000000ULL | seq,
				.pvm = { .af = 4, .addr = { 127, 0, 0, 1 }, .port = 80 },
				.bytes_in = seq, .extra = 0x5300010280000000ULL | seq };

	mw_nf_encode_info(out, &i);
}

static void make_response(uint8_t out[MW_NF_RESPONSE_SIZE], uint32_t id, int32_t status,
			  uint64_t val0)
{
	struct mw_nf_response r = { .id = id, .status = status, .val0 = val0 };

	mw_nf_encode_response(out, &r);
}

/* Requests as the spec tables give them, written out by hand. */
static const uint8_t want_close[MW_NF_REQUEST_SIZE] = {
	0xD3, 0x20, 0x01, 0x02, 0x03, 0x04, /* sig, id 0x01020304 */
	0x00, 0x03, 0x01, 0x01,             /* flags WRITE|BY_SOCK, name IsOpen */
	0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, /* val 0, 0 */
	0x53, 0x00, 0x01, 0x02, 0x80, 0x00, 0x00, 0x2A, /* ident.sockfd */
	0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,             /* padding */
};

static const uint8_t want_block[MW_NF_REQUEST_SIZE] = {
	0xD3, 0x20, 0x01, 0x02, 0x03, 0x05, /* sig, id 0x01020305 (the next one) */
	0x00, 0x01, 0x11, 0x03,             /* flags WRITE, name AddrBlock */
	0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, /* val 1 = block, 0 */
	0x00, 0x00, 0x00, 0x02,                         /* af 2, as the original console */
	'1', '0', '.', '1', '.', '2', '.', '3', 0, 0, 0, 0, 0, 0, 0, 0,
};

static int script_split_stream(struct srv *s, int fd)
{
	uint8_t a[MW_NF_INFO_SIZE], b[MW_NF_INFO_SIZE], r[MW_NF_RESPONSE_SIZE];
	uint8_t mid[66 + 10], tail[16 + 60];

	make_info(a, MW_NF_OBS_ACCEPT, 1);
	make_info(b, MW_NF_OBS_RECV, 2);
	make_response(r, 0x01020304, -EBADF, 0);
	/* INFO a is cut in two around the client's request. */
	if (srv_write(fd, a, 50) || srv_expect(s, fd, want_close))
		return -1;
	/* The response arrives in the middle of the observation stream, itself cut. */
	memcpy(mid, a + 50, 66);
	memcpy(mid + 66, r, 10);
	memcpy(tail, r + 10, 16);
	memcpy(tail + 16, b, 60);
	if (srv_write(fd, mid, sizeof(mid)) || srv_write(fd, tail, sizeof(tail)) ||
	    srv_write(fd, b + 60, 56))
		return -1;
	if (srv_expect(s, fd, want_block))
		return -1;
	make_response(r, 0x01020305, 0, 1);
	if (srv_write(fd, r, sizeof(r)))
		return -1;
	/* Then a signature nobody knows: the client must give up the stream. */
	if (srv_write(fd, "\xD3\x11\0\0\0\0", 6))
		return -1;
	srv_wait_eof(fd);
	return 0;
}

static void test_split_stream_and_responses(void **state)
{
	struct srv s;
	struct mw_nf_client *c;
	struct mw_nf_request req = { .flags = MW_NF_FLAG_WRITE | MW_NF_FLAG_BY_SOCK,
				     .name = MW_NF_ATTR_IS_OPEN, .sockfd = 0x530001028000002AULL };
	struct mw_nf_response rsp;
	struct mw_nf_msg m;
	struct mw_nf_client_stats st;
	struct pollfd p;

	srv_start(&s, script_split_stream);
	c = connect_to(&s);
	mw_nf_client_set_next_id(c, 0x01020304);

	/* The first 50 bytes of an observation: buffered, no message yet. */
	p = (struct pollfd){ .fd = mw_nf_client_fd(c), .events = POLLIN };
	assert_int_equal(poll(&p, 1, IO_TIMEOUT_MS), 1);
	assert_int_equal(mw_nf_client_read(c), 50);
	assert_int_equal(mw_nf_client_next(c, &m), 0);

	assert_int_equal(mw_nf_client_request(c, &req, IO_TIMEOUT_MS, &rsp), 0);
	assert_int_equal(req.id, 0x01020304);
	assert_int_equal(rsp.id, 0x01020304);
	assert_int_equal(rsp.status, -EBADF);

	/* The observation that straddled the response was kept, then the next one. */
	assert_int_equal(mw_nf_client_next(c, &m), 1);
	assert_int_equal(m.sig, MW_NF_SIG_INFO);
	assert_int_equal(m.u.info.obs, MW_NF_OBS_ACCEPT);
	assert_true(m.u.info.extra == 0x5300010280000001ULL);
	assert_int_equal(m.u.info.pvm.port, 80);
	assert_int_equal(mw_nf_client_recv(c, &m, IO_TIMEOUT_MS), 1);
	assert_int_equal(m.sig, MW_NF_SIG_INFO);
	assert_int_equal(m.u.info.obs, MW_NF_OBS_RECV);
	assert_true(m.u.info.bytes_in == 2);

	memset(&req, 0, sizeof(req));
	req.flags = MW_NF_FLAG_WRITE;
	req.name = MW_NF_ATTR_ADDR_BLOCK;
	mw_nf_val_set(&req, 0, 1);
	assert_int_equal(mw_nf_request_set_block_text(&req, "10.1.2.3"), 0);
	assert_int_equal(mw_nf_client_request(c, &req, IO_TIMEOUT_MS, &rsp), 0);
	assert_int_equal(rsp.id, 0x01020305);
	assert_int_equal(rsp.status, 0);
	assert_true(rsp.val0 == 1);

	assert_int_equal(mw_nf_client_recv(c, &m, IO_TIMEOUT_MS), -EBADMSG);
	assert_int_equal(mw_nf_client_next(c, &m), -EBADMSG); /* and stays lost */
	assert_int_equal(mw_nf_client_send(c, &req, IO_TIMEOUT_MS), -EBADMSG);
	mw_nf_client_get_stats(c, &st);
	assert_true(st.msgs_in == 4 && st.requests_out == 2 && st.queue_drops == 0);
	mw_nf_client_close(c);
	srv_join(&s);
}

#define BATCH_OBS 600 /* 69,600 bytes: more than the client's 64 KiB read buffer */

static int script_batch(struct srv *s, int fd)
{
	uint8_t info[MW_NF_INFO_SIZE];
	int i;

	(void)s;
	for (i = 0; i < BATCH_OBS; i++) {
		make_info(info, MW_NF_OBS_SEND, (uint64_t)i);
		if (srv_write(fd, info, sizeof(info)))
			return -1;
	}
	srv_wait_eof(fd);
	return 0;
}

/* A read fills the buffer at most; drained says when the socket had no more. */
static void test_read_batch_and_drained(void **state)
{
	struct srv s;
	struct mw_nf_client *c;
	struct mw_nf_msg m;
	int i, n = 0, pending = 0;

	(void)state;
	srv_start(&s, script_batch);
	c = connect_to(&s);
	/* Wait until every byte is in the client's socket. */
	for (i = 0; i < IO_TIMEOUT_MS / 10 && pending < BATCH_OBS * MW_NF_INFO_SIZE; i++) {
		assert_int_equal(ioctl(mw_nf_client_fd(c), FIONREAD, &pending), 0);
		if (pending < BATCH_OBS * MW_NF_INFO_SIZE)
			poll(NULL, 0, 10);
	}
	assert_int_equal(pending, BATCH_OBS * MW_NF_INFO_SIZE);

	assert_int_equal(mw_nf_client_read(c), 65536); /* one recv, as much as fits */
	assert_false(mw_nf_client_drained(c));
	while (mw_nf_client_next(c, &m) == 1)
		assert_true(m.u.info.bytes_in == (uint64_t)n++);
	assert_int_equal(n, 65536 / MW_NF_INFO_SIZE);
	/* The rest: a short read, which says the socket is empty; another finds nothing. */
	assert_int_equal(mw_nf_client_read(c), BATCH_OBS * MW_NF_INFO_SIZE - 65536);
	assert_true(mw_nf_client_drained(c));
	while (mw_nf_client_next(c, &m) == 1)
		assert_true(m.u.info.bytes_in == (uint64_t)n++);
	assert_int_equal(n, BATCH_OBS);
	assert_int_equal(mw_nf_client_read(c), 0);
	assert_true(mw_nf_client_drained(c));
	mw_nf_client_close(c);
	srv_join(&s);
}

static int script_no_answer(struct srv *s, int fd)
{
	uint8_t info[MW_NF_INFO_SIZE], req[MW_NF_REQUEST_SIZE];

	if (srv_read(fd, req, sizeof(req)))
		return -1;
	make_info(info, MW_NF_OBS_CLOSE, 7);
	if (srv_write(fd, info, sizeof(info)))
		return -1;
	/* The client's second request says it has timed out; then hang up. */
	if (srv_read(fd, req, sizeof(req)))
		return -1;
	return 0;
}

static void test_wait_timeout_keeps_observations(void **state)
{
	struct srv s;
	struct mw_nf_client *c;
	struct mw_nf_request req = { .name = MW_NF_ATTR_MONITOR_ON };
	struct mw_nf_response rsp;
	struct mw_nf_msg m;

	srv_start(&s, script_no_answer);
	c = connect_to(&s);
	assert_int_equal(mw_nf_client_request(c, &req, 200, &rsp), -ETIMEDOUT);
	assert_int_equal(req.id, 1); /* ids start at 1 */
	req.id = 0;
	assert_int_equal(mw_nf_client_send(c, &req, IO_TIMEOUT_MS), 0);
	assert_int_equal(req.id, 2);
	/* The observation that arrived while waiting comes first, then the hang-up. */
	assert_int_equal(mw_nf_client_recv(c, &m, IO_TIMEOUT_MS), 1);
	assert_int_equal(m.sig, MW_NF_SIG_INFO);
	assert_int_equal(m.u.info.obs, MW_NF_OBS_CLOSE);
	assert_int_equal(mw_nf_client_recv(c, &m, IO_TIMEOUT_MS), -ECONNRESET);
	mw_nf_client_close(c);
	srv_join(&s);
}

#define FLOOD (MW_NF_CLIENT_QUEUE + 76)

static int script_flood(struct srv *s, int fd)
{
	static uint8_t buf[FLOOD * MW_NF_INFO_SIZE + MW_NF_RESPONSE_SIZE];
	uint8_t req[MW_NF_REQUEST_SIZE];
	size_t i;

	if (srv_read(fd, req, sizeof(req)))
		return -1;
	for (i = 0; i < FLOOD; i++)
		make_info(buf + i * MW_NF_INFO_SIZE, MW_NF_OBS_SEND, i);
	make_response(buf + FLOOD * MW_NF_INFO_SIZE, mw_nf_get32(req + 2), 0, 5);
	if (srv_write(fd, buf, sizeof(buf)))
		return -1;
	srv_wait_eof(fd);
	return 0;
}

static void test_wait_queue_is_bounded(void **state)
{
	struct srv s;
	struct mw_nf_client *c;
	struct mw_nf_request req = { .name = MW_NF_ATTR_MONITOR_ON };
	struct mw_nf_response rsp;
	struct mw_nf_client_stats st;
	struct mw_nf_msg m;
	uint64_t i;

	srv_start(&s, script_flood);
	c = connect_to(&s);
	assert_int_equal(mw_nf_client_request(c, &req, IO_TIMEOUT_MS, &rsp), 0);
	assert_true(rsp.val0 == 5);
	mw_nf_client_get_stats(c, &st);
	assert_true(st.queue_drops == FLOOD - MW_NF_CLIENT_QUEUE);
	/* The queue holds the oldest observations, in order; the overflow was dropped. */
	for (i = 0; i < MW_NF_CLIENT_QUEUE; i++) {
		assert_int_equal(mw_nf_client_next(c, &m), 1);
		assert_true(m.u.info.bytes_in == i);
	}
	assert_int_equal(mw_nf_client_next(c, &m), 0);
	mw_nf_client_close(c);
	srv_join(&s);
}

static int script_wrong_direction(struct srv *s, int fd)
{
	uint8_t req[MW_NF_REQUEST_SIZE] = { 0xD3, 0x20 };

	if (srv_write(fd, req, sizeof(req)))
		return -1;
	srv_wait_eof(fd);
	return 0;
}

static void test_request_from_server_is_refused(void **state)
{
	struct srv s;
	struct mw_nf_client *c;
	struct mw_nf_msg m;

	srv_start(&s, script_wrong_direction);
	c = connect_to(&s);
	assert_int_equal(mw_nf_client_recv(c, &m, IO_TIMEOUT_MS), -EBADMSG);
	mw_nf_client_close(c);
	srv_join(&s);
}

static int script_accept_only(struct srv *s, int fd)
{
	srv_wait_eof(fd);
	return 0;
}

static void test_keystore_discovery(void **state)
{
	char root[] = "/tmp/mw-nf-ks-XXXXXX", val[32], err[256], cmd[64];
	struct mw_keystore *ks;
	struct mw_nf_client *c = NULL;
	struct srv s;

	assert_non_null(mkdtemp(root));
	assert_int_equal(mw_keystore_open(&ks, "local", root, err, sizeof(err)), 0);

	assert_int_equal(mw_nf_client_connect_keystore(&c, ks, NULL, 100, err, sizeof(err)),
			 -ENOENT);
	assert_non_null(strstr(err, "/mw/pvm/netflow"));
	/* What the original publishes when it has no address. */
	assert_int_equal(mw_keystore_write(ks, MW_NF_KEY_PVM, "PVM's IP not found!", 19), 0);
	assert_int_equal(mw_nf_client_connect_keystore(&c, ks, NULL, 100, err, sizeof(err)),
			 -EINVAL);
	assert_non_null(strstr(err, "cannot parse"));
	assert_null(c);

	srv_start(&s, script_accept_only);
	snprintf(val, sizeof(val), "127.0.0.1:%u", s.port);
	assert_int_equal(mw_keystore_write(ks, MW_NF_KEY_PVM, val, strlen(val)), 0);
	assert_int_equal(mw_nf_client_connect_keystore(&c, ks, NULL, IO_TIMEOUT_MS, err,
						       sizeof(err)), 0);
	assert_true(mw_nf_client_fd(c) >= 0);
	mw_nf_client_close(c);
	srv_join(&s);

	mw_keystore_close(ks);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", root);
	assert_int_equal(system(cmd), 0); /* NOLINT(cert-env33-c): fixed command, mkdtemp path */
}

/* The original prints IPv6 without brackets ("%pISc:port"); both forms connect. */
static void test_connect_ipv6_forms(void **state)
{
	struct mw_nf_client *c;
	char text[64], err[256];
	struct srv s;
	size_t i;

	for (i = 0; i < 2; i++) {
		srv_start_on(&s, script_accept_only, 1);
		snprintf(text, sizeof(text), "%s::1%s:%u", i ? "" : "[", i ? "" : "]", s.port);
		if (mw_nf_client_connect(&c, text, IO_TIMEOUT_MS, err, sizeof(err)))
			fail_msg("%s", err);
		mw_nf_client_close(c);
		srv_join(&s);
	}
}

static void test_connect_errors(void **state)
{
	struct sockaddr_in sin = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t len = sizeof(sin);
	struct mw_nf_client *c;
	char text[32], err[256];
	int fd;

	assert_int_equal(mw_nf_client_connect(&c, "127.0.0.1", 100, err, sizeof(err)), -EINVAL);
	assert_int_equal(mw_nf_client_connect(&c, "nonsense:1", 100, err, sizeof(err)), -EINVAL);
	assert_int_equal(mw_nf_client_connect(&c, NULL, 100, err, sizeof(err)), -EINVAL);
	/* A bound port nobody listens on refuses. */
	fd = socket(AF_INET, SOCK_STREAM, 0);
	assert_int_equal(bind(fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&sin, &len), 0);
	snprintf(text, sizeof(text), "127.0.0.1:%u", ntohs(sin.sin_port));
	assert_int_equal(mw_nf_client_connect(&c, text, IO_TIMEOUT_MS, err, sizeof(err)),
			 -ECONNREFUSED);
	assert_non_null(strstr(err, text));
	close(fd);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_split_stream_and_responses),
		cmocka_unit_test(test_read_batch_and_drained),
		cmocka_unit_test(test_wait_timeout_keeps_observations),
		cmocka_unit_test(test_wait_queue_is_bounded),
		cmocka_unit_test(test_request_from_server_is_refused),
		cmocka_unit_test(test_keystore_discovery),
		cmocka_unit_test(test_connect_ipv6_forms),
		cmocka_unit_test(test_connect_errors),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
