/* SPDX-License-Identifier: MIT */
/*
 * test_balancer_frontend.c - balancer/frontend.c, the splice proxy, on real loopback
 * TCP: an EOF met in the pump's last round still reaches the other side; a pipe with
 * bytes left is never pooled, and a pooled pipe gives the next connection nothing
 * but its own bytes; a peer that resets while nobody watches its leg ends its
 * connection, but a reset INS's last bytes reach a client that reads them slowly.
 *
 * The proxy is compiled in (its statics are what is tested); the four functions it
 * needs from the rest of mw-balancer are stand-ins: one INS, 127.0.0.1, whose
 * "listener" is the test's own socket.  Big socket buffers (SO_RCVBUFFORCE, root)
 * let 1 MiB wait in one socket, so one pump call meets it all; without them the
 * EOF case only loses its edge, it cannot fail for it.
 */
#include "balancer/frontend.c" /* NOLINT(bugprone-suspicious-include): its statics under test */
#include "balancer/srclimit.c" /* NOLINT(bugprone-suspicious-include): the front end's table */

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

static struct bal_ins ins1;

struct bal_ins *bal_pick(struct bal *b, const void *key, size_t klen, const int *skip, int nskip)
{
	(void)b, (void)key, (void)klen, (void)skip;
	return nskip ? NULL : &ins1;
}

void bal_ins_conn_done(struct bal_ins *i)
{
	i->conns--;
}

void bal_count(struct bal *b, enum bal_reason r)
{
	b->reasons[r]++;
}

const char *bal_reason_text(enum bal_reason r)
{
	(void)r;
	return "reason";
}

static struct bal B;
static struct mw_config CFG;
static struct bal_fe *FE;
static int BL; /* the INS's listener: 127.0.0.1:port, the front end 127.0.0.2:port */
static uint16_t PORT;

static void big_buffers(int fd)
{
	int v = 8 << 20;

	setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &v, sizeof(v));
	setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, &v, sizeof(v));
}

static void run_loop(int ms)
{
	for (int i = 0; i < ms; i++) {
		ev_run(B.loop, EVRUN_NOWAIT);
		usleep(1000);
	}
}

static int setup(void **state)
{
	struct sockaddr_in sa = { .sin_family = AF_INET };
	socklen_t sl = sizeof(sa);
	char err[256];
	int one = 1;

	(void)state;
	B.loop = ev_default_loop(0);
	B.cfg = &CFG;
	BL = socket(AF_INET, SOCK_STREAM, 0);
	assert_true(BL >= 0);
	setsockopt(BL, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	big_buffers(BL);
	inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
	assert_int_equal(bind(BL, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_int_equal(listen(BL, 16), 0);
	assert_int_equal(getsockname(BL, (struct sockaddr *)&sa, &sl), 0);
	PORT = ntohs(sa.sin_port);
	snprintf(CFG.balancer.listen[0], sizeof(CFG.balancer.listen[0]), "127.0.0.2:%u", PORT);
	CFG.balancer.listen_count = 1;
	CFG.balancer.max_conns = 100;
	CFG.balancer.keepalive_ms = 60000;
	CFG.balancer.connect_timeout_ms = 3000;
	inet_pton(AF_INET, "127.0.0.1", &ins1.h.addr);
	assert_int_equal(bal_fe_open(&B, &FE, err, sizeof(err)), 0);
	B.fe = FE;
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	bal_fe_close(FE);
	close(BL);
	return 0;
}

/* A client through the proxy: *cl its socket, *ins the INS side, @return the proxy's. */
static struct fe_conn *open_conn_bufs(int *cl, int *ins, bool small_client);

static struct fe_conn *open_conn(int *cl, int *ins)
{
	return open_conn_bufs(cl, ins, false);
}

/* With @small_client, 32 KiB at the client's end (its receive, the proxy's send): a slow reader. */
static struct fe_conn *open_conn_bufs(int *cl, int *ins, bool small_client)
{
	int small = 32768;
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons(PORT) };
	unsigned before = FE->nconns;
	int i;

	inet_pton(AF_INET, "127.0.0.2", &sa.sin_addr);
	*cl = socket(AF_INET, SOCK_STREAM, 0);
	if (small_client)
		setsockopt(*cl, SOL_SOCKET, SO_RCVBUF, &small, sizeof(small));
	else
		big_buffers(*cl);
	assert_int_equal(connect(*cl, (struct sockaddr *)&sa, sizeof(sa)), 0);
	for (i = 0; i < 2000 && !(FE->nconns > before && FE->conns->connected); i++)
		run_loop(1);
	assert_true(FE->nconns > before && FE->conns->connected);
	*ins = accept(BL, NULL, NULL);
	assert_true(*ins >= 0);
	if (small_client)
		setsockopt(FE->conns->cfd, SOL_SOCKET, SO_SNDBUF, &small, sizeof(small));
	else
		big_buffers(FE->conns->cfd);
	big_buffers(FE->conns->bfd);
	fcntl(*cl, F_SETFL, O_NONBLOCK);
	fcntl(*ins, F_SETFL, O_NONBLOCK);
	return FE->conns;
}

/*
 * Move @total bytes from @src to @dst through the proxy (loop running), then, with the
 * loop stopped, @tail bytes and a FIN; return once @dst saw the EOF (or 3 s passed).
 * Return: the bytes @dst got after the first @total.
 */
static size_t through(int src, int dst, size_t total, size_t tail, bool *eof)
{
	static char buf[1 << 20];
	size_t sent = 0, got = 0;
	ssize_t n;
	int i;

	memset(buf, 'x', sizeof(buf));
	while (got < total) {
		if (sent < total) {
			n = write(src, buf, total - sent < 65536 ? total - sent : 65536);
			if (n > 0)
				sent += (size_t)n;
		}
		ev_run(B.loop, EVRUN_NOWAIT);
		n = read(dst, buf, sizeof(buf));
		if (n > 0)
			got += (size_t)n;
	}
	run_loop(20);
	for (sent = 0; sent < tail;) {
		n = write(src, buf, tail - sent);
		if (n <= 0)
			break;
		sent += (size_t)n;
	}
	shutdown(src, SHUT_WR);
	usleep(100000); /* all of it waits in the proxy's socket */
	*eof = false;
	for (got = 0, i = 0; i < 3000 && !*eof; i++) {
		ev_run(B.loop, EVRUN_NOWAIT);
		n = read(dst, buf, sizeof(buf));
		if (n > 0)
			got += (size_t)n;
		else if (n == 0)
			*eof = true;
		else
			usleep(1000);
	}
	return got;
}

/*
 * 14, 15, 16 x 64 KiB then FIN, each way: 15 puts the EOF in the pump's 16th and
 * last round.  The far side must get every byte and the EOF (it waited forever).
 */
static void test_eof_in_last_round(void **state)
{
	int cl, ins, k, up;
	bool eof;
	size_t got;

	(void)state;
	for (up = 0; up < 2; up++) {
		for (k = 14; k <= 16; k++) {
			open_conn(&cl, &ins);
			got = through(up ? cl : ins, up ? ins : cl, 4 << 20,
				      (size_t)k * SPLICE_CHUNK, &eof);
			assert_int_equal(got, (size_t)k * SPLICE_CHUNK);
			assert_true(eof);
			close(cl);
			close(ins);
			run_loop(50);
		}
	}
	assert_int_equal(FE->nconns, 0);
}

/* @text written on @from comes out of @to through the proxy, exactly. */
static void send_through(int from, int to, const char *text)
{
	size_t len = strlen(text);
	char got[64] = { 0 };
	ssize_t n = -1;
	int i;

	assert_int_equal(write(from, text, len), (ssize_t)len);
	for (i = 0; i < 2000 && (n = read(to, got, sizeof(got))) <= 0; i++)
		run_loop(1);
	assert_int_equal(n, (ssize_t)len);
	assert_memory_equal(got, text, len);
}

/*
 * A connection whose INS resets while bytes wait in its up pipe: that pipe is closed,
 * the empty one pooled.  The next connections reuse pooled pipes and get exactly
 * their own bytes each way.
 */
static void test_pipe_pool(void **state)
{
	static char buf[1 << 16];
	struct linger lg = { .l_onoff = 1, .l_linger = 0 };
	struct fe_conn *c;
	int cl, ins, i, k;

	(void)state;
	/* a clean connection: both its pipes go to the pool */
	pipe_pool_drain(FE);
	open_conn(&cl, &ins);
	send_through(cl, ins, "ping");
	close(cl);
	close(ins);
	run_loop(50);
	assert_int_equal(FE->nconns, 0);
	assert_int_equal(FE->npool, 2);

	/* the INS stops reading: the up pipe fills, then the INS resets */
	c = open_conn(&cl, &ins);
	assert_int_equal(FE->npool, 0);
	memset(buf, 'A', sizeof(buf));
	for (i = 0; i < 5000 && c->up.inpipe == 0; i++) {
		if (write(cl, buf, sizeof(buf)) < 0 && errno != EAGAIN)
			fail_msg("client write: %s", strerror(errno));
		run_loop(1);
	}
	assert_true(c->up.inpipe > 0);
	setsockopt(ins, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
	close(ins);
	for (i = 0; i < 2000 && FE->nconns; i++)
		run_loop(1);
	assert_int_equal(FE->nconns, 0);
	assert_int_equal(FE->npool, 1); /* the empty down pipe only */
	close(cl);

	/* next connections: their own bytes, nothing of the 'A's */
	for (k = 0; k < 3; k++) {
		char text[16];

		open_conn(&cl, &ins);
		snprintf(text, sizeof(text), "conn %d up", k);
		send_through(cl, ins, text);
		snprintf(text, sizeof(text), "conn %d down", k);
		send_through(ins, cl, text);
		close(cl);
		close(ins);
		run_loop(50);
		assert_int_equal(FE->nconns, 0);
	}
	assert_int_equal(FE->npool, 2);
}

/* Fill one direction until the proxy holds bytes for a peer that takes nothing. */
static void fill_until_held(int from, struct fe_dir *d)
{
	static char buf[1 << 16];
	int i;

	memset(buf, 'B', sizeof(buf));
	for (i = 0; i < 5000 && d->inpipe == 0; i++) {
		if (write(from, buf, sizeof(buf)) < 0 && errno != EAGAIN)
			fail_msg("write: %s", strerror(errno));
		run_loop(1);
	}
	assert_true(d->inpipe > 0);
}

/* Close @fd with a reset. */
static void reset_close(int fd)
{
	struct linger lg = { .l_onoff = 1, .l_linger = 0 };

	setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
	close(fd);
}

/*
 * A peer that resets while its bytes wait for the other side, which reads nothing:
 * its leg has no watcher then.  The connection must end within about WATCH_CHECK_S
 * (idle_timeout_ms is 0 here: without the check it lived for ever).  Both ways.
 */
static void test_unwatched_reset(void **state)
{
	uint64_t before;
	struct fe_conn *c;
	int cl, ins, up, i;

	(void)state;
	for (up = 0; up < 2; up++) {
		before = B.reasons[BAL_R_IO_ERROR];
		c = open_conn(&cl, &ins);
		fill_until_held(up ? cl : ins, up ? &c->up : &c->down);
		assert_true(c->unwatched);
		reset_close(up ? cl : ins);
		for (i = 0; i < 3000 && FE->nconns; i++)
			run_loop(1);
		assert_int_equal(FE->nconns, 0);
		assert_int_equal(B.reasons[BAL_R_IO_ERROR], before + 1);
		close(up ? ins : cl);
	}
}

/*
 * The INS sends 2 MiB and resets (an app closing with unread input does) while
 * the client reads 64 KiB every 100 ms: the INS leg is unwatched and failed, but
 * its socket still holds the response.  The client gets all of it, then the end.
 */
static void test_slow_client_ins_reset(void **state)
{
	static char buf[1 << 16];
	uint64_t before = B.reasons[BAL_R_IO_ERROR];
	size_t wrote = 0, got = 0;
	bool end = false;
	ssize_t n;
	int cl, ins, i;

	(void)state;
	open_conn_bufs(&cl, &ins, true);
	memset(buf, 'R', sizeof(buf));
	for (i = 0; i < 20000 && wrote < (2u << 20); i++) {
		n = write(ins, buf, sizeof(buf));
		if (n > 0)
			wrote += (size_t)n;
		run_loop(1);
	}
	assert_int_equal(wrote, 2u << 20);
	run_loop(100);
	assert_true(FE->conns->unwatched);
	reset_close(ins);
	for (i = 0; i < 150 && !end; i++) { /* 15 s at most; 3.2 s at this pace */
		n = read(cl, buf, sizeof(buf));
		if (n > 0)
			got += (size_t)n;
		else if (n == 0 || errno != EAGAIN)
			end = true;
		run_loop(100);
	}
	assert_true(end);
	assert_int_equal(got, wrote);
	assert_int_equal(FE->nconns, 0);
	assert_int_equal(B.reasons[BAL_R_IO_ERROR], before + 1);
	close(cl);
}

/*
 * balancer.max_conns_per_source: the client address's third connection is closed at
 * once (counted as limit_source) while two are open; once one ends, a new one is in.
 */
static void test_per_source_limit(void **state)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons(PORT) };
	unsigned before = B.reasons[BAL_R_LIMIT_SOURCE];
	int cl[3], ins[3], third, i;
	char b;

	(void)state;
	CFG.balancer.max_conns_per_source = 2;
	open_conn(&cl[0], &ins[0]);
	open_conn(&cl[1], &ins[1]);
	inet_pton(AF_INET, "127.0.0.2", &sa.sin_addr);
	third = socket(AF_INET, SOCK_STREAM, 0);
	assert_int_equal(connect(third, (struct sockaddr *)&sa, sizeof(sa)), 0);
	for (i = 0; i < 2000 && B.reasons[BAL_R_LIMIT_SOURCE] == before; i++)
		run_loop(1);
	assert_int_equal(B.reasons[BAL_R_LIMIT_SOURCE], before + 1);
	assert_int_equal(FE->nconns, 2);
	assert_true(read(third, &b, 1) <= 0); /* closed by the proxy */
	close(third);
	/* One ends: the address may open another. */
	close(cl[0]);
	close(ins[0]);
	for (i = 0; i < 2000 && FE->nconns != 1; i++)
		run_loop(1);
	assert_int_equal(FE->nconns, 1);
	open_conn(&cl[2], &ins[2]);
	assert_int_equal(FE->nconns, 2);
	assert_int_equal(B.reasons[BAL_R_LIMIT_SOURCE], before + 1);
	for (i = 1; i < 3; i++) {
		close(cl[i]);
		close(ins[i]);
	}
	for (i = 0; i < 2000 && FE->nconns; i++)
		run_loop(1);
	assert_int_equal(FE->nconns, 0);
	CFG.balancer.max_conns_per_source = 0;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_eof_in_last_round),
		cmocka_unit_test(test_pipe_pool),
		cmocka_unit_test(test_unwatched_reset),
		cmocka_unit_test(test_slow_client_ins_reset),
		cmocka_unit_test(test_per_source_limit),
	};

	signal(SIGPIPE, SIG_IGN);
	return cmocka_run_group_tests(tests, setup, teardown);
}
