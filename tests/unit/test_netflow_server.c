/* SPDX-License-Identifier: MIT */
/* test_netflow_server.c - netflow/server.c on a real loop and loopback sockets: queues, drops,
 * stalls, refusals */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <cmocka.h>

#include "common/addr.h"
#include "netflow/codec.h"
#include "netflow/server.h"

struct fixture {
	struct ev_loop *loop;
	struct mw_nf_server *srv;
	int requests, watching_on, watching_off;
	struct mw_nf_reply last;
	bool answer_now;
};

static void on_request(void *ctx, struct mw_nf_reply to, const struct mw_nf_request *req)
{
	struct fixture *f = ctx;

	f->requests++;
	f->last = to;
	if (f->answer_now)
		mw_nf_server_respond(f->srv, to, -(int)req->name, req->sockfd, 7);
}

static void on_watching(void *ctx, bool on)
{
	struct fixture *f = ctx;

	if (on)
		f->watching_on++;
	else
		f->watching_off++;
}

static struct fixture *fx_open(const char *allow, int queue, int stall_ms)
{
	static struct fixture f;
	struct mw_nf_server_config cfg = {
		.listen = "127.0.0.1:0", .allow = allow, .queue = queue, .stall_ms = stall_ms
	};
	struct mw_nf_server_ops ops = { .request = on_request, .watching = on_watching, .ctx = &f };
	char err[256];

	memset(&f, 0, sizeof(f));
	f.loop = ev_loop_new(EVFLAG_AUTO);
	assert_non_null(f.loop);
	assert_int_equal(mw_nf_server_open(&f.srv, f.loop, &cfg, &ops, err, sizeof(err)), 0);
	return &f;
}

static void fx_close(struct fixture *f)
{
	mw_nf_server_close(f->srv);
	ev_loop_destroy(f->loop);
}

/* Run the loop a little: @n non-blocking iterations with short pauses. */
static void spin(struct fixture *f, int n)
{
	for (int i = 0; i < n; i++) {
		ev_run(f->loop, EVRUN_NOWAIT);
		usleep(1000);
	}
}

static int consumer(struct fixture *f, int rcvbuf)
{
	struct sockaddr_storage ss;
	struct mw_addr a;
	char text[64];
	socklen_t len;
	int fd;

	mw_nf_server_address(f->srv, text, sizeof(text));
	assert_int_equal(mw_addr_parse(&a, text), 0);
	assert_int_equal(mw_addr_to_sockaddr(&a, &ss, &len), 0);
	fd = socket(AF_INET, SOCK_STREAM, 0);
	assert_true(fd >= 0);
	if (rcvbuf)
		setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof(rcvbuf));
	assert_int_equal(connect(fd, (struct sockaddr *)&ss, len), 0);
	fcntl(fd, F_SETFL, O_NONBLOCK);
	spin(f, 5);
	return fd;
}

/* Everything readable now (after letting the server write). */
static size_t drain(struct fixture *f, int fd, uint8_t *buf, size_t cap, bool *closed)
{
	size_t got = 0;
	ssize_t n;

	*closed = false;
	for (int i = 0; i < 50; i++) {
		spin(f, 1);
		while (got < cap && (n = read(fd, buf + got, cap - got)) > 0)
			got += (size_t)n;
		if (n == 0 || (n < 0 && errno != EAGAIN)) {
			*closed = true;
			break;
		}
	}
	return got;
}

static void send_request(int fd, uint32_t id, uint16_t flags, uint16_t name, uint64_t sock)
{
	struct mw_nf_request r = { .id = id, .flags = flags, .name = name, .sockfd = sock };
	uint8_t msg[MW_NF_REQUEST_SIZE];

	mw_nf_encode_request(msg, &r);
	assert_int_equal(write(fd, msg, sizeof(msg)), (ssize_t)sizeof(msg));
}

static struct mw_nf_info sample_info(uint64_t sock)
{
	struct mw_nf_info in = { .obs = MW_NF_OBS_RECV, .sockfd = sock, .extra = sock };

	in.bytes_in = 1000 + sock;
	return in;
}

static void test_monitor_and_requests(void **state)
{
	struct fixture *f = fx_open("127.0.0.0/8", 100, 5000);
	uint8_t buf[4096];
	struct mw_nf_response resp;
	struct mw_nf_info info, in = sample_info(42);
	bool closed;
	int fd;

	(void)state;
	fd = consumer(f, 0);
	assert_int_equal(f->watching_on, 1); /* on from connect */
	mw_nf_server_publish(f->srv, &in);
	assert_int_equal(drain(f, fd, buf, sizeof(buf), &closed), MW_NF_INFO_SIZE);
	assert_int_equal(mw_nf_decode_info(&info, buf, MW_NF_INFO_SIZE, NULL), 0);
	assert_int_equal(info.sockfd, 42);
	assert_int_equal(info.bytes_in, 1042);

	/* MonitorOff: answered with val 1, and nothing more is sent. */
	send_request(fd, 5, 0, MW_NF_ATTR_MONITOR_OFF, 0);
	assert_int_equal(drain(f, fd, buf, sizeof(buf), &closed), MW_NF_RESPONSE_SIZE);
	assert_int_equal(mw_nf_decode_response(&resp, buf, MW_NF_RESPONSE_SIZE, NULL), 0);
	assert_int_equal(resp.id, 5);
	assert_int_equal(resp.status, 0);
	assert_int_equal(resp.val0, 1);
	assert_int_equal(f->watching_off, 1);
	assert_false(mw_nf_server_watching(f->srv));
	mw_nf_server_publish(f->srv, &in);
	assert_int_equal(drain(f, fd, buf, sizeof(buf), &closed), 0);

	/* Another request goes to the owner, answered later with its id. */
	send_request(fd, 9, MW_NF_FLAG_BY_SOCK, MW_NF_ATTR_SNDBUF, 77);
	spin(f, 5);
	assert_int_equal(f->requests, 1);
	mw_nf_server_respond(f->srv, f->last, -5, 77, 7);
	assert_int_equal(drain(f, fd, buf, sizeof(buf), &closed), MW_NF_RESPONSE_SIZE);
	mw_nf_decode_response(&resp, buf, MW_NF_RESPONSE_SIZE, NULL);
	assert_int_equal(resp.id, 9);
	assert_int_equal(resp.status, -5);
	assert_int_equal(resp.val0, 77);
	assert_int_equal(resp.val1, 7);

	/* A request with an unknown flag bit: -EINVAL, never reaches the owner. */
	send_request(fd, 10, 0x8, MW_NF_ATTR_SNDBUF, 0);
	assert_int_equal(drain(f, fd, buf, sizeof(buf), &closed), MW_NF_RESPONSE_SIZE);
	mw_nf_decode_response(&resp, buf, MW_NF_RESPONSE_SIZE, NULL);
	assert_int_equal(resp.id, 10);
	assert_int_equal(resp.status, -EINVAL);
	assert_int_equal(f->requests, 1);

	/* An answer for a consumer that left is discarded. */
	send_request(fd, 11, MW_NF_FLAG_BY_SOCK, MW_NF_ATTR_RCVBUF, 1);
	spin(f, 5);
	close(fd);
	spin(f, 5);
	mw_nf_server_respond(f->srv, f->last, 0, 0, 0);
	fx_close(f);
}

static void test_bad_signature_disconnects(void **state)
{
	struct fixture *f = fx_open("127.0.0.0/8", 100, 5000);
	struct mw_nf_server_stats st;
	uint8_t buf[512] = { 0xbe, 0xef };
	bool closed;
	int fd, fd2;

	(void)state;
	fd = consumer(f, 0);
	fd2 = consumer(f, 0);
	assert_int_equal(write(fd, buf, 6), 6);
	drain(f, fd, buf, sizeof(buf), &closed);
	assert_true(closed);
	/* A well-framed message that is not a request (an INFO) ends the consumer too. */
	memset(buf, 0, MW_NF_INFO_SIZE);
	buf[0] = 0xd3;
	buf[1] = 0x10;
	assert_int_equal(write(fd2, buf, MW_NF_INFO_SIZE), MW_NF_INFO_SIZE);
	drain(f, fd2, buf, sizeof(buf), &closed);
	assert_true(closed);
	mw_nf_server_get_stats(f->srv, &st);
	assert_int_equal(st.bad, 2);
	assert_int_equal(st.consumers, 0);
	assert_int_equal(f->watching_off, 1);
	close(fd);
	close(fd2);
	fx_close(f);
}

static void test_allow_list_refuses(void **state)
{
	struct fixture *f = fx_open("10.0.0.0/8", 100, 5000);
	struct mw_nf_server_stats st;
	uint8_t buf[64];
	bool closed;
	int fd;

	(void)state;
	fd = consumer(f, 0);
	drain(f, fd, buf, sizeof(buf), &closed);
	assert_true(closed);
	mw_nf_server_get_stats(f->srv, &st);
	assert_int_equal(st.refused, 1);
	assert_int_equal(st.consumers, 0);
	assert_int_equal(f->watching_on, 0);
	close(fd);
	fx_close(f);
}

/*
 * A consumer that does not read: the publisher never waits, the overflow is
 * counted, a response still gets through, and after stall_ms it is dropped.
 */
static void test_stalled_consumer_drops_then_disconnects(void **state)
{
	struct fixture *f = fx_open("127.0.0.0/8", 16, 300);
	struct mw_nf_server_stats st;
	struct mw_nf_info in = sample_info(1);
	static uint8_t buf[4 << 20];
	size_t got;
	bool closed;
	int fd, i;

	(void)state;
	fd = consumer(f, 4096);
	assert_true(mw_nf_server_has_room(f->srv));
	for (i = 0; i < 20000; i++)
		mw_nf_server_publish(f->srv, &in);
	mw_nf_server_get_stats(f->srv, &st);
	assert_int_equal(st.published, 20000);
	assert_int_equal(st.drops, 20000 - 16); /* the queue holds 16 before the loop runs */
	/* Full everywhere: has_room says so and counts the drop the caller skips. */
	assert_false(mw_nf_server_has_room(f->srv));
	mw_nf_server_get_stats(f->srv, &st);
	assert_int_equal(st.drops, 20000 - 16 + 1);
	assert_int_equal(st.published, 20001);
	assert_int_equal(st.consumers, 1);
	/* Keep publishing, as a busy app would, until the kernel buffers are full too. */
	for (i = 0; i < 300 && st.consumers; i++) {
		for (int j = 0; j < 200; j++)
			mw_nf_server_publish(f->srv, &in);
		usleep(10000);
		ev_run(f->loop, EVRUN_NOWAIT);
		mw_nf_server_get_stats(f->srv, &st);
	}
	assert_int_equal(st.consumers, 0);
	assert_int_equal(st.stalled, 1);
	/* What reached the socket before the cut arrives, then EOF. */
	got = drain(f, fd, buf, sizeof(buf), &closed);
	assert_true(closed);
	assert_true(got >= 16 * MW_NF_INFO_SIZE);
	close(fd);
	fx_close(f);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_monitor_and_requests),
		cmocka_unit_test(test_bad_signature_disconnects),
		cmocka_unit_test(test_allow_list_refuses),
		cmocka_unit_test(test_stalled_consumer_drops_then_disconnects),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
