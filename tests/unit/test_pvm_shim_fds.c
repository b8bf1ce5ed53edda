/* SPDX-License-Identifier: MIT */
/* test_pvm_shim_fds.c - passed fds: a non-AF_UNIX one refused, none ever closed on the loop */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sched.h>
#include <setjmp.h>
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

#include "common/fdpass.h"
#include "common/log.h"
#include "common/sockname.h"
#include "pvm/pvm.h"

/*
 * The real pvm_shim.c (control socket, request dispatch) on a loop that this
 * thread turns, and a client that speaks the shim's protocol.  A close() that
 * waits for a FUSE server needs a FUSE mount; a TCP socket with SO_LINGER
 * whose peer's window is shut waits the same way (for its linger time), so
 * it stands in for one: mw-pvm's loop must never be the one that waits.
 */

#define LINGER_S 20 /* a close that waits; the loop must answer far sooner */
#define LOOP_MAX_S                                                       \
	15.0 /* ... within this, however loaded the machine (5 s was not \
		under CI's parallel attack tests); a close on the loop takes 20 */

static struct mw_config cfg;
static struct pvm p;
static char dir[64];
static int cl = -1;

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static void pump(void)
{
	for (int i = 0; i < 8; i++)
		ev_run(p.loop, EVRUN_NOWAIT);
}

/* One request with @n fds (SCM_RIGHTS). */
static void send_req(const struct mw_shimctl_req *req, const int *fds, unsigned n)
{
	union {
		struct cmsghdr h;
		char buf[CMSG_SPACE(4 * sizeof(int))];
	} ctl;
	struct iovec iov = { .iov_base = (void *)req, .iov_len = sizeof(*req) };
	struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1 };
	struct cmsghdr *cm;

	if (n) {
		memset(&ctl, 0, sizeof(ctl));
		msg.msg_control = ctl.buf;
		msg.msg_controllen = CMSG_SPACE(n * sizeof(int));
		cm = CMSG_FIRSTHDR(&msg);
		cm->cmsg_level = SOL_SOCKET;
		cm->cmsg_type = SCM_RIGHTS;
		cm->cmsg_len = CMSG_LEN(n * sizeof(int));
		memcpy(CMSG_DATA(cm), fds, n * sizeof(int));
	}
	assert_int_equal(sendmsg(cl, &msg, MSG_NOSIGNAL), (ssize_t)sizeof(*req));
}

/* The answer to the request just sent (the loop turned until it comes). */
static int answer(void)
{
	struct mw_shimctl_resp resp;
	double end = now_s() + 5;
	ssize_t n;

	do {
		pump();
		n = recv(cl, &resp, sizeof(resp), MSG_DONTWAIT);
	} while (n < 0 && errno == EAGAIN && now_s() < end);
	assert_int_equal(n, (ssize_t)sizeof(resp));
	return resp.status;
}

static int ask(uint32_t op, const int *fds, unsigned n)
{
	struct mw_shimctl_req req = { .op = op, .sock = 0x1234, .arg = 0 };

	send_req(&req, fds, n);
	return answer();
}

static int setup(void **state)
{
	struct mw_shimctl_req reg = { .op = MW_SHIMCTL_REGISTER, .arg = MW_SHIMCTL_VERSION };
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	char err[256];

	(void)state;
	snprintf(dir, sizeof(dir), "/tmp/mw-test-shimfds-XXXXXX");
	assert_non_null(mkdtemp(dir));
	mw_config_defaults(&cfg);
	snprintf(cfg.pvm.control_socket, sizeof(cfg.pvm.control_socket), "%s/pvm.sock", dir);
	memset(&p, 0, sizeof(p));
	p.loop = ev_loop_new(EVFLAG_AUTO);
	p.cfg = &cfg.pvm;
	p.ctl_fd = p.ins_fd = p.hold_fd = -1;
	p.tag = 0x6d7774657374ULL;
	assert_int_equal(pvm_table_init(&p.socks, 64), 0);
	assert_int_equal(pvm_shim_open(&p, err, sizeof(err)), 0);
	cl = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	snprintf(sun.sun_path, sizeof(sun.sun_path), "%s", p.ctl_path);
	assert_int_equal(connect(cl, (struct sockaddr *)&sun, sizeof(sun)), 0);
	pump();
	send_req(&reg, NULL, 0);
	assert_int_equal(answer(), 0);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	close(cl);
	pvm_shim_close(&p);
	assert_null(p.quota); /* every connection's count given back */
	pvm_closer_stop(&p);
	pvm_table_fini(&p.socks);
	ev_loop_destroy(p.loop);
	rmdir(dir);
	return 0;
}

/* The fd mw-pvm was passed is closed (by its closer thread): @rd reads EOF. */
static void assert_closed(int rd)
{
	struct pollfd pf = { .fd = rd, .events = POLLIN };

	assert_int_equal(poll(&pf, 1, 5000), 1);
	assert_true(pf.revents & POLLHUP);
	close(rd);
}

/* A pipe and a regular file, first or surplus: ENOTSOCK, closed, and mw-pvm answers on. */
static void test_file_refused(void **state)
{
	char path[96];
	int pp[2], fds[2], file;

	(void)state;
	assert_int_equal(pipe2(pp, O_CLOEXEC), 0);
	assert_int_equal(ask(MW_SHIMCTL_BIND, &pp[1], 1), -ENOTSOCK);
	close(pp[1]);
	assert_closed(pp[0]);

	snprintf(path, sizeof(path), "%s/file", dir);
	file = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	assert_true(file >= 0);
	unlink(path);
	assert_int_equal(ask(MW_SHIMCTL_GETOPT, &file, 1), -ENOTSOCK);
	close(file);

	/* Surplus: an AF_UNIX socket first, then a pipe. */
	assert_int_equal(pipe2(pp, O_CLOEXEC), 0);
	fds[0] = cl;
	fds[1] = pp[1];
	assert_int_equal(ask(MW_SHIMCTL_SETOPT, fds, 2), -ENOTSOCK);
	close(pp[1]);
	assert_closed(pp[0]);

	/* Still serving: an unknown id with no fd, and with an AF_UNIX socket. */
	assert_int_equal(ask(MW_SHIMCTL_GETNAME, NULL, 0), -ENOENT);
	assert_int_equal(ask(MW_SHIMCTL_GETNAME, &cl, 1), -ENOENT);
}

/* The peers of lingering connections (lingering(), closed by unlinger()). */
#define LING_MAX 48
static int ling_lsn[LING_MAX], ling_peer[LING_MAX], ling_n;

/*
 * A TCP connection whose peer reads nothing, its window shut, with SO_LINGER:
 * its last close() waits LINGER_S.
 */
static int lingering(void)
{
	struct sockaddr_in sin = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	struct linger lg = { .l_onoff = 1, .l_linger = LINGER_S };
	socklen_t len = sizeof(sin);
	int c, small = 4096;
	static char junk[65536];

	int lsn, peer;

	assert_true(ling_n < LING_MAX);
	lsn = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	assert_true(lsn >= 0);
	setsockopt(lsn, SOL_SOCKET, SO_RCVBUF, &small, sizeof(small));
	assert_int_equal(bind(lsn, (struct sockaddr *)&sin, sizeof(sin)), 0);
	assert_int_equal(listen(lsn, 1), 0);
	assert_int_equal(getsockname(lsn, (struct sockaddr *)&sin, &len), 0);
	c = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	assert_int_equal(connect(c, (struct sockaddr *)&sin, sizeof(sin)), 0);
	peer = accept(lsn, NULL, NULL);
	assert_true(peer >= 0);
	ling_lsn[ling_n] = lsn;
	ling_peer[ling_n++] = peer;
	fcntl(c, F_SETFL, O_NONBLOCK);
	while (send(c, junk, sizeof(junk), MSG_NOSIGNAL) > 0)
		; /* until the peer's window and our buffer are full */
	assert_int_equal(setsockopt(c, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg)), 0);
	fcntl(c, F_SETFL, 0); /* a blocking socket's close() lingers */
	return c;
}

static void unlinger(void)
{
	while (ling_n) {
		ling_n--;
		close(ling_peer[ling_n]);
		close(ling_lsn[ling_n]);
	}
}

/* Put a lingering TCP socket in the queue of @tx's peer, sent from @tx. */
static void stuff(int tx)
{
	int c = lingering();

	assert_int_equal(mw_fdpass_send(tx, "x", 1, c, 0), 1);
	close(c);
}

/* A connection to a listener this process binds to @sun: its connecting end; *@acc the other. */
static int connected_to(const struct sockaddr_un *sun, socklen_t len, int *acc)
{
	int lsn = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0), e;

	assert_int_equal(bind(lsn, (const struct sockaddr *)sun, len), 0);
	assert_int_equal(listen(lsn, 1), 0);
	e = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	assert_int_equal(connect(e, (const struct sockaddr *)sun, len), 0);
	*acc = accept(lsn, NULL, NULL);
	assert_true(*acc >= 0);
	close(lsn);
	return e;
}

/*
 * An AF_UNIX socket (accepted as a request's fd) whose queue holds a lingering
 * TCP socket: when mw-pvm's copy of it is the last, closing it releases the
 * TCP socket's last reference, which lingers.  The loop answers at once.
 */
static void test_nested_close_off_loop(void **state)
{
	int sp[2], st, st2;
	double t0;

	(void)state;
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sp), 0);
	stuff(sp[0]); /* a lingering socket now waits in sp[1]'s queue */
	close(sp[0]);
	t0 = now_s();
	send_req(&(struct mw_shimctl_req){ .op = MW_SHIMCTL_GETNAME, .sock = 0x1234 }, &sp[1], 1);
	close(sp[1]); /* mw-pvm's copy is the last */
	st = answer();
	st2 = ask(MW_SHIMCTL_GETNAME, NULL, 0);
	assert_true(now_s() - t0 < LOOP_MAX_S); /* the loop did not linger */
	assert_int_equal(st, -ENOENT);
	assert_int_equal(st2, -ENOENT);
	unlinger();
}

/*
 * A client sends a bad request, then one with a lingering TCP socket: mw-pvm
 * drops the connection with the second unread in its queue, and closing it
 * releases the TCP socket's last reference.  Another client is answered at once.
 */
static void test_unread_close_off_loop(void **state)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	struct mw_shimctl_req reg = { .op = MW_SHIMCTL_REGISTER, .arg = MW_SHIMCTL_VERSION };
	int c, evil;
	double t0;

	(void)state;
	c = lingering();
	evil = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	snprintf(sun.sun_path, sizeof(sun.sun_path), "%s", p.ctl_path);
	assert_int_equal(connect(evil, (struct sockaddr *)&sun, sizeof(sun)), 0);
	pump(); /* admitted: it may pass fds from now on */
	assert_int_equal(send(evil, "bad", 3, 0), 3);
	{
		int keep = cl;

		cl = evil; /* send_req() sends on cl */
		send_req(&reg, &c, 1);
		cl = keep;
	}
	close(c);
	close(evil); /* the bad request's connection and its queue: mw-pvm's */
	t0 = now_s();
	pump();
	assert_int_equal(ask(MW_SHIMCTL_GETNAME, NULL, 0), -ENOENT);
	assert_true(now_s() - t0 < LOOP_MAX_S); /* the loop did not linger */
	unlinger();
}

/* A socket entry of @kind with @id, as SOCKET or a hand-over would make it. */
static struct pvm_sock *entry(uint64_t id, enum pvm_sock_kind kind)
{
	struct pvm_sock *s = calloc(1, sizeof(*s));

	assert_non_null(s);
	s->id = id;
	s->pvm = &p;
	s->kind = kind;
	s->family = 4;
	s->fd = s->app_fd = s->connect_fd = -1;
	s->state = PVM_ST_CONNECTED;
	assert_int_equal(pvm_table_put(&p.socks, id, s), 0);
	return s;
}

/*
 * A socket whose peer is bound to a forged 'A' name (the tag is every client's,
 * ids are in /proc/net/unix) by another process: not the accepted connection
 * (its peer is not mw-pvm), so a GETNAME of its peer is refused, where the same
 * entry answers it for a socket whose peer mw-pvm made (this process).  And its
 * close is not the loop's: a lingering TCP socket waits in its queue.
 */
static void test_forged_accepted(void **state)
{
	static struct pvm_ins dummy; /* GETNAME of a peer never reaches it */
	struct mw_sockname n = { .kind = MW_SOCKNAME_ACCEPTED, .tag = 0x6d7774657374ULL,
				 .id = 0x777, .nonce = 42 };
	struct pvm_sock *acc = entry(0x777, PVM_SOCK_ACCEPTED);
	struct sockaddr_un sun;
	int lsn, e, b, st, go[2], ready[2];
	char x;
	socklen_t len;
	pid_t child;
	double t0;

	(void)state;
	acc->ins = &dummy;
	acc->nonce = 42; /* the hand-over's name: with another nonce, a hijacker's */
	len = mw_sockname_encode(&n, &sun);
	/* mw-pvm's own: this process listens on the name; authorized, answered. */
	e = connected_to(&sun, len, &b);
	send_req(&(struct mw_shimctl_req){ .op = MW_SHIMCTL_GETNAME, .sock = 0x777, .arg = 1 }, &e, 1);
	assert_int_equal(answer(), 0);
	acc->nonce = 43; /* the same socket for an entry whose name has another nonce */
	send_req(&(struct mw_shimctl_req){ .op = MW_SHIMCTL_GETNAME, .sock = 0x777, .arg = 1 }, &e, 1);
	assert_int_equal(answer(), -ENOENT);
	acc->nonce = 42;
	close(e);
	close(b);
	/* Another process binds the name: refused. */
	assert_int_equal(pipe(go), 0);
	assert_int_equal(pipe(ready), 0);
	child = fork();
	assert_true(child >= 0);
	if (!child) {
		lsn = socket(AF_UNIX, SOCK_STREAM, 0);
		if (bind(lsn, (struct sockaddr *)&sun, len) || listen(lsn, 1))
			_exit(1);
		if (write(ready[1], "r", 1) != 1 || read(go[0], &x, 1) < 0)
			_exit(1);
		_exit(0);
	}
	assert_int_equal(read(ready[0], &x, 1), 1);
	e = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	assert_int_equal(connect(e, (struct sockaddr *)&sun, len), 0);
	send_req(&(struct mw_shimctl_req){ .op = MW_SHIMCTL_GETNAME, .sock = 0x777, .arg = 1 }, &e, 1);
	st = answer();
	close(e);
	assert_int_equal(write(go[1], "g", 1), 1);
	waitpid(child, NULL, 0);
	close(go[0]);
	close(go[1]);
	close(ready[0]);
	close(ready[1]);
	assert_int_equal(st, -ENOENT);
	/* A lingering TCP socket queued in it: the loop does not wait for its close. */
	e = connected_to(&sun, len, &b);
	stuff(b);
	close(b);
	t0 = now_s();
	send_req(&(struct mw_shimctl_req){ .op = MW_SHIMCTL_GETNAME, .sock = 0x777, .arg = 1 }, &e, 1);
	close(e); /* mw-pvm's copy is the last */
	assert_int_equal(answer(), 0);
	assert_int_equal(ask(MW_SHIMCTL_GETNAME, NULL, 0), -ENOENT);
	assert_true(now_s() - t0 < LOOP_MAX_S);
	unlinger();
	free(pvm_table_del(&p.socks, 0x777));
}

/*
 * The app's own socket (pvm_appsock_create()), SO_PASSRIGHTS turned back on by
 * the app, connected, a lingering TCP socket queued in it: authorized, answered,
 * and its close is not the loop's.
 */
static void test_app_socket_close_off_loop(void **state)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	socklen_t len = sizeof(sa_family_t);
	struct pvm_sock *s;
	int app, lsn, b, on = 1;
	double t0;

	(void)state;
	s = entry(0x888, PVM_SOCK_APP);
	s->state = PVM_ST_NEW;
	assert_int_equal(pvm_appsock_create(s), 0);
	app = s->app_fd;
	s->app_fd = -1; /* the app has it now */
	assert_int_equal(setsockopt(app, SOL_SOCKET, 83 /* SO_PASSRIGHTS */, &on, sizeof(on)), 0);
	lsn = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	assert_int_equal(bind(lsn, (struct sockaddr *)&sun, len), 0); /* autobind */
	assert_int_equal(listen(lsn, 1), 0);
	len = sizeof(sun);
	assert_int_equal(getsockname(lsn, (struct sockaddr *)&sun, &len), 0);
	assert_int_equal(connect(app, (struct sockaddr *)&sun, len), 0);
	b = accept(lsn, NULL, NULL);
	assert_true(b >= 0);
	stuff(b);
	close(b);
	close(lsn);
	t0 = now_s();
	send_req(&(struct mw_shimctl_req){ .op = MW_SHIMCTL_GETNAME, .sock = 0x888 }, &app, 1);
	close(app); /* mw-pvm's copy is the last */
	answer();
	assert_int_equal(ask(MW_SHIMCTL_GETNAME, NULL, 0), -ENOENT);
	assert_true(now_s() - t0 < LOOP_MAX_S); /* the loop did not linger */
	unlinger();
	free(pvm_table_del(&p.socks, 0x888));
}

/*
 * A lingering TCP socket passed and closed by the client, mw-pvm holding the
 * last copy: refused, and the loop answers at once all the same.
 */
static void test_waiting_close_off_loop(void **state)
{
	int c, st, st2;
	double t0;

	(void)state;
	c = lingering();
	t0 = now_s();
	send_req(&(struct mw_shimctl_req){ .op = MW_SHIMCTL_BIND, .sock = 0x1234 }, &c, 1);
	close(c); /* mw-pvm's copy is the last */
	st = answer();
	st2 = ask(MW_SHIMCTL_GETNAME, NULL, 0);
	assert_true(now_s() - t0 < LOOP_MAX_S); /* the loop did not linger */
	assert_int_equal(st, -ENOTSOCK);
	assert_int_equal(st2, -ENOENT);
	unlinger();
}

/* A new control connection, and the answer to its REGISTER. */
static int connect_register(int *status)
{
	struct mw_shimctl_req reg = { .op = MW_SHIMCTL_REGISTER, .arg = MW_SHIMCTL_VERSION };
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	struct mw_shimctl_resp resp;
	double end = now_s() + 5;
	ssize_t n;
	int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);

	snprintf(sun.sun_path, sizeof(sun.sun_path), "%s", p.ctl_path);
	assert_int_equal(connect(fd, (struct sockaddr *)&sun, sizeof(sun)), 0);
	pump(); /* accepted (or refused) before the REGISTER is sent */
	(void)send(fd, &reg, sizeof(reg), MSG_NOSIGNAL);
	do {
		pump();
		n = recv(fd, &resp, sizeof(resp), MSG_DONTWAIT);
	} while (n < 0 && errno == EAGAIN && now_s() < end);
	assert_int_equal(n, (ssize_t)sizeof(resp));
	*status = resp.status;
	return fd;
}

/*
 * pvm.max_connections_per_user: this uid's third connection is answered
 * EMFILE and closed; one closed makes room; the counts are freed at the end.
 */
static void test_connections_per_user(void **state)
{
	struct pollfd pf;
	int a, b, c, st;
	ssize_t n;

	(void)state;
	cfg.pvm.max_connections_per_user = 2; /* cl is the first */
	a = connect_register(&st);
	assert_int_equal(st, 0);
	b = connect_register(&st);
	assert_int_equal(st, -EMFILE);
	pf = (struct pollfd){ .fd = b, .events = POLLIN };
	assert_int_equal(poll(&pf, 1, 5000), 1); /* closed by mw-pvm: EOF */
	n = recv(b, &st, sizeof(st), MSG_DONTWAIT); /* ECONNRESET: its REGISTER unread */
	assert_true(n == 0 || (n < 0 && errno == ECONNRESET));
	assert_int_equal(p.clients_refused, 1);
	assert_int_equal(p.nclients, 2);
	close(b);
	close(a);
	pump(); /* a's close seen ... */
	pvm_closer_drain(&p, 20); /* ... and mw-pvm's end closed: room for one */
	c = connect_register(&st);
	assert_int_equal(st, 0);
	assert_int_equal(p.nclients, 2);
	close(c);
	pump();
	assert_int_equal(p.nclients, 1);
}

/*
 * A close stuck for good on one closer thread: pvm_closer_drain() (before
 * each bind with a port) still waits for what is queued after it, but not
 * for the stuck one again and again: 100 drains of 2 ms cost far less than
 * 100 bounds of the loop's time.
 */
static void test_drain_skips_stuck_close(void **state)
{
	cpu_set_t one, all;
	int pf[2];
	double t0, spent;

	(void)state;
	pvm_closer_put(&p, lingering(), 1000); /* mw-pvm's copy is the only one */
	usleep(1000 * 1000);		 /* its thread is in close() by now */
	assert_int_equal(pipe2(pf, O_CLOEXEC), 0);
	/* One CPU: the thread made for the pipe has not run when the drain begins. */
	assert_int_equal(sched_getaffinity(0, sizeof(all), &all), 0);
	CPU_ZERO(&one);
	CPU_SET(sched_getcpu(), &one);
	assert_int_equal(sched_setaffinity(0, sizeof(one), &one), 0);
	pvm_closer_put(&p, pf[1], 1000);
	pvm_closer_drain(&p, 800); /* the stuck close began 1 s ago: not waited for */
	assert_int_equal(poll(&(struct pollfd){ .fd = pf[0], .events = POLLIN }, 1, 0), 1);
	assert_int_equal(sched_setaffinity(0, sizeof(all), &all), 0);
	close(pf[0]);

	t0 = now_s();
	for (int i = 0; i < 100; i++)
		pvm_closer_drain(&p, 2);
	spent = now_s() - t0;
	assert_true(spent < 0.1); /* each one waiting for the stuck close: >= 0.2 s */
	unlinger();
}

/*
 * A user whose closes all hang (four lingering sockets) holds its share of
 * the closer threads, two: another user's fd is closed at once all the same,
 * and so is the hostile user's next one once a share is free.
 */
static void test_stuck_user_holds_its_share(void **state)
{
	struct pollfd pf;
	int pp[2], i;

	(void)state;
	for (i = 0; i < 4; i++)
		pvm_closer_put(&p, lingering(), 1000);
	assert_int_equal(pipe2(pp, O_CLOEXEC), 0);
	usleep(300 * 1000); /* every thread it may have is in close() by now */
	pvm_closer_put(&p, pp[1], 0);
	pf = (struct pollfd){ .fd = pp[0], .events = POLLIN };
	assert_int_equal(poll(&pf, 1, (int)(LOOP_MAX_S * 1000)), 1); /* not after LINGER_S */
	assert_true(pf.revents & POLLHUP);
	close(pp[0]);
	unlinger(); /* the lingering closes end: the queued ones follow */
}

/*
 * A hostile user passes a fresh slow close before each bind (16 uids of its
 * own, a share each): each drain would wait its whole bound for it.  All
 * drains together wait at most DRAIN_BUDGET_MS (20 ms) of a second.
 */
static void test_drain_budget(void **state)
{
	double waited = 0, t0;
	int i;

	(void)state;
	for (i = 0; i < 16; i++) {
		pvm_closer_put(&p, lingering(), 2000 + i);
		t0 = now_s();
		pvm_closer_drain(&p, 5);
		waited += now_s() - t0;
	}
	assert_true(waited < 0.05); /* without a budget: 16 x 5 ms */
	unlinger();
}

/*
 * A user whose closes hang: the fds of its uid the closer holds count with its
 * connections (a new one refused), and at the bound its requests wait (the
 * client parked) until the closes end, then are answered.
 */
static void test_closer_backlog_parks(void **state)
{
	struct mw_shimctl_resp resp;
	uid_t me = getuid();
	double end;
	int st, fd;

	(void)state;
	cfg.pvm.max_connections_per_user = 4; /* cl is one */
	for (int i = 0; i < 3; i++)
		pvm_closer_put(&p, lingering(), me);
	assert_int_equal(pvm_closer_backlog(&p, me), 3);
	assert_int_equal(ask(MW_SHIMCTL_GETNAME, NULL, 0), -ENOENT); /* 1 + 3: served */
	fd = connect_register(&st);
	assert_int_equal(st, -EMFILE); /* a fifth: refused */
	close(fd);
	pvm_closer_put(&p, lingering(), me); /* 4 of its fds with the closer */
	send_req(&(struct mw_shimctl_req){ .op = MW_SHIMCTL_GETNAME, .sock = 0x1234 }, NULL, 0);
	end = now_s() + 0.3;
	while (now_s() < end) {
		pump();
		assert_int_equal(recv(cl, &resp, sizeof(resp), MSG_DONTWAIT), -1); /* parked */
		usleep(10 * 1000);
	}
	assert_int_equal(p.nparked, 1);
	unlinger(); /* the closes end */
	assert_int_equal(answer(), -ENOENT);
	assert_int_equal(p.nparked, 0);
}

/* A connection not yet admitted cannot be passed an fd (its close stays the loop's). */
static void test_fds_only_once_admitted(void **state)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0), pf[2];

	(void)state;
	assert_true(p.ctl_rights_gated); /* Linux 6.16 or later */
	snprintf(sun.sun_path, sizeof(sun.sun_path), "%s", p.ctl_path);
	assert_int_equal(connect(fd, (struct sockaddr *)&sun, sizeof(sun)), 0);
	assert_int_equal(pipe2(pf, O_CLOEXEC), 0);
	assert_int_equal(mw_fdpass_send(fd, "x", 1, pf[0], MSG_NOSIGNAL), -1);
	assert_int_equal(errno, EPERM);
	pump(); /* admitted: now it may */
	assert_int_equal(mw_fdpass_send(fd, "x", 1, pf[0], MSG_NOSIGNAL), 1);
	close(pf[0]);
	close(pf[1]);
	close(fd);
	pump();
}

/* Connect as @uid, register; 0: answered 0, 1: answered EMFILE, 2: else.  Holds until @go. */
static void child_register(uid_t uid, int go, int done)
{
	struct mw_shimctl_req reg = { .op = MW_SHIMCTL_REGISTER, .arg = MW_SHIMCTL_VERSION };
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	struct mw_shimctl_resp resp;
	bool ok = false;
	char b = 2;
	int fd;

	memset(&resp, 0, sizeof(resp));
	if (setresgid(uid, uid, uid) || setresuid(uid, uid, uid))
		_exit(3);
	fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	snprintf(sun.sun_path, sizeof(sun.sun_path), "%s", p.ctl_path);
	/* As the shim: a refusal is read even after a failed send or a reset. */
	if (!connect(fd, (struct sockaddr *)&sun, sizeof(sun))) {
		if (send(fd, &reg, sizeof(reg), MSG_NOSIGNAL) == sizeof(reg))
			ok = recv(fd, &resp, sizeof(resp), 0) == sizeof(resp);
		if (!ok)
			ok = recv(fd, &resp, sizeof(resp), MSG_DONTWAIT) == sizeof(resp);
	}
	if (ok)
		b = resp.status == 0 ? 0 : resp.status == -EMFILE ? 1 : 2;
	(void)!write(done, &b, 1);
	(void)!read(go, &b, 1);
	_exit(0);
}

/* The parent's loop turns until a child reports (a byte on @done). */
static int child_result(int done)
{
	struct pollfd pf = { .fd = done, .events = POLLIN };
	double end = now_s() + 5;
	char b = 9;

	while (now_s() < end && poll(&pf, 1, 0) == 0)
		pump();
	assert_int_equal(read(done, &b, 1), 1);
	return b;
}

/*
 * A subordinate uid range is one account: with one connection per account,
 * a second uid of the range is refused while the first holds its own, and a
 * uid outside it is not.  Lines that are not ranges are skipped.  A range
 * added to the file while mw-pvm runs counts from the next registration a
 * second on (before, its uids were each an account until a restart).
 */
static void test_subuid_one_account(void **state)
{
	char path[96], tmp[104];
	int go[2], done[2], i;
	uid_t uids[4] = { 200001, 265535, 300000, 300050 };
	int want[4] = { 0, 1, 0, 1 };
	pid_t kids[4];
	FILE *f;

	(void)state;
	snprintf(path, sizeof(path), "%s/subuid", dir);
	f = fopen(path, "w");
	assert_non_null(f);
	fputs("# a comment\nalice:200000:65536\nbogus\nbob:4294967295:2\nbob::5\n"
	      "carol:+400000:3\nroot:0:65536\nalice:300001:10\n#", f);
	for (i = 0; i < 300; i++) /* a long comment whose tail looks like a range */
		fputc('x', f);
	fputs(":500000:10\n", f);
	fclose(f);
	snprintf(cfg.pvm.subuid_file, sizeof(cfg.pvm.subuid_file), "%s", path);
	pvm_subuid_load(&p);
	assert_int_equal(p.subuids.n, 2);
	assert_int_equal(pvm_uid_account(&p, 200000), 200000);
	assert_int_equal(pvm_uid_account(&p, 265535), 200000);
	assert_int_equal(pvm_uid_account(&p, 300005), 200000); /* alice's second range */
	assert_int_equal(pvm_uid_account(&p, 265536), 265536);
	assert_int_equal(pvm_uid_account(&p, 400001), 400001);
	assert_int_equal(pvm_uid_account(&p, 500001), 500001);
	assert_int_equal(pvm_uid_account(&p, 5), 5); /* root's range skipped */
	assert_int_equal(pvm_uid_account(&p, 0), 0);
	cfg.pvm.max_connections_per_user = 1;
	assert_int_equal(chmod(dir, 0755), 0); /* the children reach the control socket */
	assert_int_equal(pipe2(go, O_CLOEXEC), 0);
	assert_int_equal(pipe2(done, O_CLOEXEC), 0);
	for (i = 0; i < 4; i++) {
		if (i == 3) {
			/* dave's range is added while mw-pvm runs (rename, as useradd does):
			 * read at the next registration a second on, 300050 is 300000's. */
			snprintf(tmp, sizeof(tmp), "%s.new", path);
			f = fopen(tmp, "w");
			assert_non_null(f);
			fputs("alice:200000:65536\ndave:300000:100\n", f);
			fclose(f);
			assert_int_equal(rename(tmp, path), 0);
			usleep(1100 * 1000);
			pump();
		}
		kids[i] = fork();
		assert_true(kids[i] >= 0);
		if (!kids[i]) {
			close(go[1]); /* the parent's exit, whatever it is, frees the child */
			child_register(uids[i], go[0], done[1]);
		}
		assert_int_equal(child_result(done[0]), want[i]);
	}
	assert_int_equal(write(go[1], "xxxx", 4), 4);
	for (i = 0; i < 4; i++) {
		int st;

		assert_int_equal(waitpid(kids[i], &st, 0), kids[i]);
		assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	}
	for (i = 0; i < 2; i++)
		close(go[i]), close(done[i]);
	unlink(path);
}

/*
 * Twenty accounts whose closes hang, two each: 40 stuck closes, more than
 * CLOSER_THREADS (32).  Stuck ones (over a second) do not count against it,
 * so another account's fd is closed all the same.
 */
static void test_many_stuck_accounts(void **state)
{
	struct pollfd pf;
	int pp[2], i;

	(void)state;
	for (i = 0; i < 40; i++)
		pvm_closer_put(&p, lingering(), 3000 + i / 2);
	usleep(2000 * 1000); /* every close under way is stuck (over 1 s) by now */
	assert_int_equal(pipe2(pp, O_CLOEXEC), 0);
	pvm_closer_put(&p, pp[1], 0);
	pf = (struct pollfd){ .fd = pp[0], .events = POLLIN };
	assert_int_equal(poll(&pf, 1, (int)(LOOP_MAX_S * 1000)), 1); /* not after LINGER_S */
	assert_true(pf.revents & POLLHUP);
	close(pp[0]);
	unlinger();
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_file_refused, setup, teardown),
		cmocka_unit_test_setup_teardown(test_waiting_close_off_loop, setup, teardown),
		cmocka_unit_test_setup_teardown(test_nested_close_off_loop, setup, teardown),
		cmocka_unit_test_setup_teardown(test_unread_close_off_loop, setup, teardown),
		cmocka_unit_test_setup_teardown(test_forged_accepted, setup, teardown),
		cmocka_unit_test_setup_teardown(test_app_socket_close_off_loop, setup, teardown),
		cmocka_unit_test_setup_teardown(test_drain_skips_stuck_close, setup, teardown),
		cmocka_unit_test_setup_teardown(test_connections_per_user, setup, teardown),
		cmocka_unit_test_setup_teardown(test_stuck_user_holds_its_share, setup, teardown),
		cmocka_unit_test_setup_teardown(test_drain_budget, setup, teardown),
		cmocka_unit_test_setup_teardown(test_closer_backlog_parks, setup, teardown),
		cmocka_unit_test_setup_teardown(test_fds_only_once_admitted, setup, teardown),
		cmocka_unit_test_setup_teardown(test_subuid_one_account, setup, teardown),
		cmocka_unit_test_setup_teardown(test_many_stuck_accounts, setup, teardown),
	};

	mw_log_init("test_pvm_shim_fds", MW_LOG_ERR);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
