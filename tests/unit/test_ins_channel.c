/* SPDX-License-Identifier: MIT */
/* test_ins_channel.c - the real mw-ins driven over a local channel by a fake PVM, against loopback
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
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
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/channel.h"
#include "common/shield.h"
#include "common/sockid.h"

#include "tests/unit/fake_pvm.h"

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

/* A copy of the INS's own socket whose peer is @port on loopback (pidfd_getfd), or -1. */
static int ins_sock_copy(uint16_t port)
{
	char path[64];
	struct dirent *d;
	struct sockaddr_in sin;
	socklen_t len;
	int pidfd, fd, found = -1;
	DIR *dir;

	pidfd = (int)syscall(SYS_pidfd_open, H.pid, 0);
	snprintf(path, sizeof(path), "/proc/%d/fd", (int)H.pid);
	dir = opendir(path);
	if (pidfd < 0 || !dir) {
		print_error("pidfd_open/opendir of mw-ins: %s\n", strerror(errno));
		goto out;
	}
	while (found < 0 && (d = readdir(dir))) {
		if (d->d_name[0] == '.')
			continue;
		fd = (int)syscall(SYS_pidfd_getfd, pidfd, (int)strtol(d->d_name, NULL, 10), 0);
		if (fd < 0)
			continue;
		memset(&sin, 0, sizeof(sin));
		len = sizeof(sin);
		if (!getpeername(fd, (struct sockaddr *)&sin, &len) && sin.sin_family == AF_INET &&
		    ntohs(sin.sin_port) == port)
			found = fd;
		else
			close(fd);
	}
out:
	if (dir)
		closedir(dir);
	if (pidfd >= 0)
		close(pidfd);
	return found;
}

static int tcp_opt(int fd, int name)
{
	socklen_t len = sizeof(int);
	int v = -1;

	assert_int_equal(getsockopt(fd, IPPROTO_TCP, name, &v, &len), 0);
	return v;
}

/*
 * An accepted connection is set as the INS wants it with no setsockopt() of
 * its own: Nagle off and FIN_WAIT2 bounded by ins.fin_timeout_ms (7 s here),
 * both inherited from the listener.  Read on the INS's own socket.
 */
static void test_accepted_socket_options(void **state)
{
	struct mw_ev_accepted acc;
	uint16_t port;
	uint64_t lid = ins_listener(&port);
	int cfd = tcp_connect(port), fd;
	struct ev e = take(MW_EV_ACCEPTED, lid);

	memcpy(&acc, e.p, sizeof(acc));
	fd = ins_sock_copy(local_port(cfd));
	assert_true(fd >= 0);
	assert_int_equal(tcp_opt(fd, TCP_NODELAY), 1);
	assert_int_equal(tcp_opt(fd, TCP_LINGER2), 7);
	close(fd);
	op_close(acc.new_sock, false);
	op_close(lid, false);
	close(cfd);
}

static int ins_start_fin7(void **state)
{
	int ret;

	fake_pvm_ins_extra = "fin_timeout_ms = 7000;";
	ret = ins_start(state);
	fake_pvm_ins_extra = NULL; /* written: the next tests get the defaults */
	return ret;
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

/* SETOPT level MW_SOL_SHIELD name @name = @v; Return: the INS's status. */
static int shield_set(uint64_t id, int name, uint64_t v)
{
	struct mw_op_sockopt o = { .level = MW_SOL_SHIELD, .name = name, .len = 8 };

	memcpy(o.val, &v, sizeof(v));
	return op(MW_OP_SETOPT, id, &o, sizeof(o), NULL, NULL);
}

/* Is an EV_ACCEPTED for @lid waiting (without taking it)? */
static bool accepted_pending(uint64_t lid)
{
	size_t i;

	pump_wait(0);
	for (i = 0; i < H.nevs; i++)
		if (H.evs[i].f.type == MW_EV_ACCEPTED && H.evs[i].f.sock == lid)
			return true;
	return false;
}

/*
 * A listener with an accept filter (line, deadline 400 ms): a connection is
 * announced only once its line is complete, its bytes then relayed in full;
 * a silent one is reset at the deadline, never announced.
 */
static void test_shield_accept_filter(void **state)
{
	struct mw_op_sockopt o = { .level = MW_SOL_SHIELD, .name = MW_SHIELD_FILTER, .len = 8 };
	struct mw_ev_accepted acc;
	uint8_t val[MW_SOCKOPT_MAX];
	uint32_t len = 0;
	uint16_t port;
	uint64_t lid = ins_listener(&port), v = 0;
	int cfd, quiet;
	struct ev e;
	char c;

	(void)state;
	assert_int_equal(shield_set(lid, MW_SHIELD_FILTER, MW_ACCF_LINE), 0);
	assert_int_equal(shield_set(lid, MW_SHIELD_DEADLINE_MS, 400), 0);
	assert_int_equal(shield_set(lid, MW_SHIELD_FILTER, MW_ACCF_MAX + 1), -EINVAL);
	assert_int_equal(op(MW_OP_GETOPT, lid, &o, sizeof(o), val, &len), 0);
	assert_int_equal(len, 8);
	memcpy(&v, val, sizeof(v));
	assert_int_equal(v, MW_ACCF_LINE);

	cfd = tcp_connect(port);
	assert_int_equal(send(cfd, "PI", 2, 0), 2);
	pump_wait(200);
	assert_false(accepted_pending(lid));
	assert_int_equal(send(cfd, "NG\n", 3, 0), 3);
	e = take(MW_EV_ACCEPTED, lid);
	memcpy(&acc, e.p, sizeof(acc));
	assert_int_equal(acc.peer.port, local_port(cfd));
	/* The filter only peeked: every byte is relayed. */
	for (int i = 0; i < WAIT_MS / 20 && stream_of(acc.new_sock)->len < 5; i++)
		pump_wait(20);
	assert_int_equal(stream_of(acc.new_sock)->len, 5);
	assert_memory_equal(stream_of(acc.new_sock)->buf, "PING\n", 5);
	/* The connection's shield is its listener's: not settable on its own. */
	assert_int_equal(shield_set(acc.new_sock, MW_SHIELD_FILTER, MW_ACCF_DATA), -EOPNOTSUPP);

	quiet = tcp_connect(port);
	assert_true(readable(quiet, WAIT_MS));
	errno = 0;
	assert_int_equal(recv(quiet, &c, 1, 0), -1);
	assert_int_equal(errno, ECONNRESET);
	assert_false(accepted_pending(lid));
	close(quiet);
	op_close(acc.new_sock, false);
	op_close(lid, false);
	close(cfd);
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
	enum {
		N = 1000
	};
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
	struct sockaddr_in sin = { .sin_family = AF_INET,
				   .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
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
		cmocka_unit_test_setup_teardown(test_accepted_socket_options, ins_start_fin7,
						ins_stop),
		cmocka_unit_test_setup_teardown(test_connect_refused_connected_abort, ins_start,
						ins_stop),
		cmocka_unit_test_setup_teardown(test_addr_block, ins_start, ins_stop),
		cmocka_unit_test_setup_teardown(test_options, ins_start, ins_stop),
		cmocka_unit_test_setup_teardown(test_shield_accept_filter, ins_start, ins_stop),
		cmocka_unit_test_setup_teardown(test_ins_set_congestion, ins_start, ins_stop),
		cmocka_unit_test_setup_teardown(test_heartbeat_and_stats, ins_start, ins_stop),
		cmocka_unit_test_setup_teardown(test_thousand_sockets, ins_start, ins_stop),
		cmocka_unit_test_setup_teardown(test_malformed_frame_kills, ins_start, ins_stop),
		cmocka_unit_test_setup_teardown(test_data_beyond_credit_kills, ins_start, ins_stop),
		cmocka_unit_test_setup_teardown(test_credit_beyond_kills, ins_start, ins_stop),
		cmocka_unit_test_setup_teardown(test_data_on_unconnected_kills, ins_start,
						ins_stop),
		cmocka_unit_test_setup_teardown(test_pvm_gone_exits, ins_start, ins_stop),
	};

	signal(SIGPIPE, SIG_IGN);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
