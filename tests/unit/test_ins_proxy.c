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
#include "common/shield.h"
#include "common/sockid.h"

#include "tests/unit/fake_pvm.h" /* the fake PVM; fake_pvm_ins_extra picks ins keys per test */

/* Headers from a client on loopback; the INS trusts 127.0.0.0/8 unless a test says otherwise. */
#define TRUSTED "proxy_protocol = true; proxy_from = \"127.0.0.0/8\";"

static int start_trusted(void **state)
{
	fake_pvm_ins_extra = TRUSTED;
	return ins_start(state);
}

static int start_untrusted(void **state)
{
	fake_pvm_ins_extra = "proxy_protocol = true; proxy_from = \"10.0.0.0/8\";";
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

/*
 * PROXY header, then an accept filter (http): the filter looks at what follows
 * the header, and the connection is announced with the header's client once
 * the request head is complete; its DATA is the request, header excluded.
 */
static void test_proxied_then_filtered(void **state)
{
	static const char head1[] = "GET / HTTP/1.1\r\nHost: a\r\n";
	static const char head2[] = "\r\n";
	struct mw_op_sockopt o = { .level = MW_SOL_SHIELD, .name = MW_SHIELD_FILTER, .len = 8 };
	uint64_t filter = MW_ACCF_HTTP;
	uint8_t buf[MW_PROXY2_MAX + sizeof(head1)];
	struct mw_ev_accepted acc;
	struct stream *st;
	uint16_t port;
	uint64_t lid = ins_listener(&port);
	size_t n = header(buf, 4343);
	int cfd = tcp_connect(port);
	size_t i;

	(void)state;
	memcpy(o.val, &filter, sizeof(filter));
	assert_int_equal(op(MW_OP_SETOPT, lid, &o, sizeof(o), NULL, NULL), 0);
	memcpy(buf + n, head1, sizeof(head1) - 1);
	send_all(cfd, buf, n + sizeof(head1) - 1);
	pump_wait(300);
	for (i = 0; i < H.nevs; i++)
		assert_false(H.evs[i].f.type == MW_EV_ACCEPTED);
	send_all(cfd, head2, sizeof(head2) - 1);
	acc = take_accepted(lid);
	assert_memory_equal(acc.peer.addr, client_ip, 4);
	assert_int_equal(acc.peer.port, 4343);
	st = wait_data(acc.new_sock, sizeof(head1) - 1 + sizeof(head2) - 1);
	assert_int_equal(st->len, sizeof(head1) - 1 + sizeof(head2) - 1);
	assert_memory_equal(st->buf, head1, sizeof(head1) - 1);
	assert_memory_equal(st->buf + sizeof(head1) - 1, head2, sizeof(head2) - 1);
	op_close(acc.new_sock, false);
	op_close(lid, false);
	close(cfd);
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
		cmocka_unit_test_setup_teardown(test_proxied_then_filtered, start_trusted,
						ins_stop),
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
