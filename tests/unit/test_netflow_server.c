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
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <grp.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cmocka.h>

#include "common/addr.h"
#include "netflow/auth.h"
#include "netflow/codec.h"
#include "netflow/server.h"

#define TOKEN_CONTROL "control-token-0123456789"
#define TOKEN_OBSERVE "observe-token-0123456789"
#define OBSERVE_GID   4242

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

static char unix_path[108];
static struct mw_nf_tokens tokens;

/* Limits beyond queue/stall: 0 = generous defaults. */
static int opt_per_user, opt_min_rate;
static size_t opt_mem;

static struct fixture *fx_open(const char *allow, int queue, int stall_ms)
{
	static struct fixture f;
	struct mw_nf_server_config cfg = { .listen = "127.0.0.1:0",
					   .allow = allow,
					   .queue = queue,
					   .stall_ms = stall_ms,
					   .unix_path = unix_path,
					   .observe_gid = OBSERVE_GID,
					   .control_gid = -1,
					   .tokens = &tokens,
					   .min_rate = opt_min_rate ? opt_min_rate : 1,
					   .mem_total = opt_mem ? opt_mem : (size_t)1 << 30,
					   .max_per_user = opt_per_user ? opt_per_user : 64 };
	struct mw_nf_server_ops ops = { .request = on_request, .watching = on_watching, .ctx = &f };
	char err[256];

	snprintf(unix_path, sizeof(unix_path), "/tmp/mw-test-nf-%d.sock", (int)getpid());
	tokens.count = 2;
	tokens.t[0].role = MW_NF_ROLE_CONTROL;
	snprintf(tokens.t[0].text, sizeof(tokens.t[0].text), "%s", TOKEN_CONTROL);
	tokens.t[1].role = MW_NF_ROLE_OBSERVE;
	snprintf(tokens.t[1].text, sizeof(tokens.t[1].text), "%s", TOKEN_OBSERVE);
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

static void send_auth(int fd, uint32_t id, const char *token)
{
	struct mw_nf_request r = { .id = id };
	uint8_t msg[MW_NF_REQUEST_SIZE];

	mw_nf_request_set_auth(&r, token);
	mw_nf_encode_request(msg, &r);
	assert_int_equal(write(fd, msg, sizeof(msg)), (ssize_t)sizeof(msg));
}

static size_t drain(struct fixture *f, int fd, uint8_t *buf, size_t cap, bool *closed);

/* A TCP connection, not authenticated. */
static int consumer_raw(struct fixture *f, int rcvbuf)
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

/* A TCP consumer authenticated with @token; its Auth response is checked and consumed. */
static int consumer_as(struct fixture *f, int rcvbuf, const char *token, uint64_t role)
{
	struct mw_nf_response resp;
	uint8_t buf[MW_NF_RESPONSE_SIZE];
	bool closed;
	int fd = consumer_raw(f, rcvbuf);

	send_auth(fd, 1, token);
	assert_int_equal(drain(f, fd, buf, sizeof(buf), &closed), MW_NF_RESPONSE_SIZE);
	assert_int_equal(mw_nf_decode_response(&resp, buf, MW_NF_RESPONSE_SIZE, NULL), 0);
	assert_int_equal(resp.id, 1);
	assert_int_equal(resp.status, 0);
	assert_int_equal(resp.val0, role);
	return fd;
}

static int consumer(struct fixture *f, int rcvbuf)
{
	return consumer_as(f, rcvbuf, TOKEN_CONTROL, MW_NF_ROLE_CONTROL);
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
	fd = consumer_raw(f, 0);
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

/*
 * A consumer that stopped reading, with observations queued for it, then half-closes:
 * it is reset, so mw-pvm's kernel keeps nothing of it (a plain close would leave the
 * queue behind its zero window, FIN_WAIT1, for minutes): it reads what reached it,
 * then ECONNRESET, not an EOF after the rest.  One that read everything gets an EOF.
 */
static void test_halfclose_with_queue_resets(void **state)
{
	struct fixture *f = fx_open("127.0.0.0/8", 64, 60000);
	struct mw_nf_server_stats st;
	struct mw_nf_info in = sample_info(1);
	static uint8_t buf[1 << 20];
	int fd, i, j, err, reader;
	size_t got;
	bool closed;
	ssize_t n;

	(void)state;
	for (reader = 0; reader < 2; reader++) {
		fd = consumer(f, 4096);
		for (i = 0; i < 40; i++) {
			for (j = 0; j < (reader ? 4 : 64); j++)
				mw_nf_server_publish(f->srv, &in);
			spin(f, 2);
			if (reader) /* takes everything as it comes */
				drain(f, fd, buf, sizeof(buf), &closed);
		}
		shutdown(fd, SHUT_WR);
		spin(f, 20);
		mw_nf_server_get_stats(f->srv, &st);
		assert_int_equal(st.consumers, 0);
		for (i = 0, got = 0, err = -1; i < 2000 && err < 0; i++) {
			n = read(fd, buf, sizeof(buf));
			if (n > 0)
				got += (size_t)n;
			else if (n == 0)
				err = 0;
			else if (errno == EAGAIN)
				usleep(1000);
			else
				err = errno;
		}
		assert_int_equal(err, reader ? 0 : ECONNRESET);
		if (!reader)
			assert_true(got <= 64 * 1024); /* what its buffers held, not the queue */
		close(fd);
	}
	fx_close(f);
}

/* TCP: nothing before the token; a wrong token or another request closes, unanswered. */
static void test_tcp_token_required(void **state)
{
	struct fixture *f = fx_open("127.0.0.0/8", 100, 5000);
	struct mw_nf_info in = sample_info(3);
	struct mw_nf_server_stats st;
	uint8_t buf[4096];
	bool closed;
	int fd1, fd2, fd3;

	(void)state;
	fd1 = consumer_raw(f, 0);
	fd2 = consumer_raw(f, 0);
	fd3 = consumer_raw(f, 0);
	assert_int_equal(f->watching_on, 0); /* nobody watches before authenticating */
	mw_nf_server_publish(f->srv, &in);
	assert_int_equal(drain(f, fd1, buf, sizeof(buf), &closed), 0);
	assert_false(closed);
	send_auth(fd1, 1, "wrong-token-0123456789");
	assert_int_equal(drain(f, fd1, buf, sizeof(buf), &closed), 0);
	assert_true(closed);
	send_request(fd2, 2, MW_NF_FLAG_WRITE | MW_NF_FLAG_BY_SOCK, MW_NF_ATTR_IS_OPEN, 1);
	assert_int_equal(drain(f, fd2, buf, sizeof(buf), &closed), 0);
	assert_true(closed);
	assert_int_equal(f->requests, 0);
	/* A short token is no token. */
	send_auth(fd3, 3, "short");
	assert_int_equal(drain(f, fd3, buf, sizeof(buf), &closed), 0);
	assert_true(closed);
	mw_nf_server_get_stats(f->srv, &st);
	assert_int_equal(st.unauthorised, 3);
	assert_int_equal(st.consumers, 0);
	close(fd1);
	close(fd2);
	close(fd3);
	fx_close(f);
}

/* An observe consumer sees observations and may read, but every WRITE is -EPERM. */
static void test_observe_role(void **state)
{
	struct fixture *f = fx_open("127.0.0.0/8", 100, 5000);
	struct mw_nf_info in = sample_info(5);
	struct mw_nf_response resp;
	struct mw_nf_server_stats st;
	static const uint16_t writes[] = { MW_NF_ATTR_IS_OPEN, MW_NF_ATTR_OWNER_RUNNING,
					   MW_NF_ATTR_SNDBUF, MW_NF_ATTR_ADDR_BLOCK,
					   MW_NF_ATTR_GLOBAL_CONGCTL };
	uint8_t buf[4096];
	bool closed;
	size_t i;
	int fd;

	(void)state;
	fd = consumer_as(f, 0, TOKEN_OBSERVE, MW_NF_ROLE_OBSERVE);
	mw_nf_server_publish(f->srv, &in);
	assert_int_equal(drain(f, fd, buf, sizeof(buf), &closed), MW_NF_INFO_SIZE);
	for (i = 0; i < sizeof(writes) / sizeof(writes[0]); i++) {
		send_request(fd, 20 + (uint32_t)i, MW_NF_FLAG_WRITE | MW_NF_FLAG_BY_SOCK, writes[i],
			     5);
		assert_int_equal(drain(f, fd, buf, sizeof(buf), &closed), MW_NF_RESPONSE_SIZE);
		mw_nf_decode_response(&resp, buf, MW_NF_RESPONSE_SIZE, NULL);
		assert_int_equal(resp.id, 20 + i);
		assert_int_equal(resp.status, -EPERM);
	}
	assert_int_equal(f->requests, 0);
	send_request(fd, 30, MW_NF_FLAG_BY_SOCK, MW_NF_ATTR_SNDBUF, 5); /* a read */
	spin(f, 5);
	assert_int_equal(f->requests, 1);
	mw_nf_server_get_stats(f->srv, &st);
	assert_int_equal(st.denied, sizeof(writes) / sizeof(writes[0]));
	close(fd);
	fx_close(f);
}

/* Connect to the AF_UNIX socket as @uid/@gid (in a child); Return: bytes read before EOF, -1 if
 * kept. */
static int unix_try(struct fixture *f, uid_t uid, gid_t gid)
{
	pid_t pid = fork();
	int status = 0;

	assert_true(pid >= 0);
	if (pid == 0) {
		struct sockaddr_un sun = { .sun_family = AF_UNIX };
		char b[256];
		ssize_t n, got = 0;
		int fd, i;

		if (setgroups(0, NULL) || setgid(gid) || setuid(uid))
			_exit(100);
		memcpy(sun.sun_path, unix_path, strlen(unix_path) + 1);
		fd = socket(AF_UNIX, SOCK_STREAM, 0);
		if (fd < 0 || connect(fd, (struct sockaddr *)&sun, sizeof(sun)))
			_exit(101);
		fcntl(fd, F_SETFL, O_NONBLOCK);
		for (i = 0; i < 100; i++) {
			n = read(fd, b, sizeof(b));
			if (n == 0)
				_exit(got > 50 ? 50 : (int)got);
			if (n > 0)
				got += n;
			usleep(10000);
		}
		_exit(got ? 60 : 99); /* still open after 1 s */
	}
	for (int i = 0; i < 300 && waitpid(pid, &status, WNOHANG) == 0; i++) {
		spin(f, 1);
		usleep(5000);
		if (i == 20) {
			struct mw_nf_info in = sample_info(9);

			mw_nf_server_publish(f->srv, &in);
		}
	}
	assert_true(WIFEXITED(status));
	return WEXITSTATUS(status);
}

/* SO_PEERCRED: a stranger gets nothing and is closed; a group member observes. */
static void test_unix_peercred(void **state)
{
	struct fixture *f;
	struct mw_nf_server_stats st;

	(void)state;
	if (geteuid() != 0)
		skip(); /* needs to become other users; integration tests cover it too */
	f = fx_open("127.0.0.0/8", 100, 5000);
	chmod(unix_path, 0666);
	assert_int_equal(unix_try(f, 65534, 65534), 0);	       /* refused: EOF, no byte */
	assert_int_equal(unix_try(f, 65534, OBSERVE_GID), 60); /* kept, received data */
	mw_nf_server_get_stats(f->srv, &st);
	assert_int_equal(st.unauthorised, 1);
	fx_close(f);
	assert_int_equal(access(unix_path, F_OK), -1); /* the socket file is removed */
}

/* netflow_max_per_user: a third connection from one address is refused at accept. */
static void test_per_user_limit(void **state)
{
	struct fixture *f;
	struct mw_nf_server_stats st;
	uint8_t buf[64];
	bool closed;
	int fd[3];

	(void)state;
	opt_per_user = 2;
	f = fx_open("127.0.0.0/8", 100, 5000);
	opt_per_user = 0;
	fd[0] = consumer_raw(f, 0);
	fd[1] = consumer_as(f, 0, TOKEN_OBSERVE, MW_NF_ROLE_OBSERVE);
	fd[2] = consumer_raw(f, 0);
	drain(f, fd[2], buf, sizeof(buf), &closed);
	assert_false(closed); /* the authenticated one counts for its token, not its address */
	close(fd[2]);
	spin(f, 5);
	fd[2] = consumer_as(f, 0, TOKEN_OBSERVE, MW_NF_ROLE_OBSERVE);
	/* A third observe-token consumer: over the limit for that token. */
	close(fd[0]);
	spin(f, 5);
	fd[0] = consumer_raw(f, 0);
	send_auth(fd[0], 1, TOKEN_OBSERVE);
	assert_int_equal(drain(f, fd[0], buf, sizeof(buf), &closed), 0);
	assert_true(closed);
	mw_nf_server_get_stats(f->srv, &st);
	assert_int_equal(st.consumers, 2);
	for (int i = 0; i < 3; i++)
		close(fd[i]);
	fx_close(f);
}

/*
 * TCP peers that never send their token: at most 16 wait at once (each is cut after
 * 5 s), so they cannot hold the consumer slots; a token-holder still gets in.
 */
static void test_preauth_limit(void **state)
{
	struct fixture *f = fx_open("127.0.0.0/8", 100, 5000);
	struct mw_nf_server_stats st;
	uint8_t buf[64];
	bool closed;
	int fd[17], ok;

	(void)state;
	for (int i = 0; i < 17; i++)
		fd[i] = consumer_raw(f, 0);
	drain(f, fd[16], buf, sizeof(buf), &closed);
	assert_true(closed); /* the 17th: refused at accept */
	drain(f, fd[15], buf, sizeof(buf), &closed);
	assert_false(closed);
	mw_nf_server_get_stats(f->srv, &st);
	assert_int_equal(st.consumers, 16);
	assert_int_equal(st.refused, 1);
	/* One of them authenticates: a slot frees for the next peer. */
	send_auth(fd[0], 1, TOKEN_OBSERVE);
	drain(f, fd[0], buf, sizeof(buf), &closed);
	assert_false(closed);
	close(fd[16]);
	fd[16] = consumer_raw(f, 0);
	drain(f, fd[16], buf, sizeof(buf), &closed);
	assert_false(closed);
	close(fd[1]); /* a waiting peer leaves: a token-holder gets in */
	fd[1] = -1;
	spin(f, 5);
	ok = consumer_as(f, 0, TOKEN_CONTROL, MW_NF_ROLE_CONTROL);
	close(ok);
	for (int i = 0; i < 17; i++)
		close(fd[i]);
	fx_close(f);
}

/*
 * Sixteen silent peers that have waited a second: the next peer takes the place of
 * the oldest of them, so a token-holder gets in without waiting for their 5 s (on the
 * old server it was refused until one of them was cut).
 */
static void test_preauth_stale_replaced(void **state)
{
	struct fixture *f = fx_open("127.0.0.0/8", 100, 5000);
	struct mw_nf_server_stats st;
	uint8_t buf[64];
	bool closed;
	int fd[16], ok;

	(void)state;
	for (int i = 0; i < 16; i++) {
		fd[i] = consumer_raw(f, 0);
		spin(f, 2); /* accepted one by one: fd[0] is the oldest */
	}
	usleep(1100 * 1000);
	ok = consumer_as(f, 0, TOKEN_CONTROL, MW_NF_ROLE_CONTROL);
	drain(f, fd[0], buf, sizeof(buf), &closed);
	assert_true(closed); /* the oldest silent peer made room */
	drain(f, fd[1], buf, sizeof(buf), &closed);
	assert_false(closed);
	mw_nf_server_get_stats(f->srv, &st);
	assert_int_equal(st.consumers, 16);
	assert_int_equal(st.unauthorised, 1);
	close(ok);
	for (int i = 0; i < 16; i++)
		close(fd[i]);
	fx_close(f);
}

/* netflow_memory: observations beyond the total are dropped, whatever the per-consumer queue. */
static void test_memory_total(void **state)
{
	struct mw_nf_info in = sample_info(1);
	struct mw_nf_server_stats st;
	struct fixture *f;
	int fd1, fd2, i;

	(void)state;
	opt_mem = 10 * MW_NF_INFO_SIZE;
	f = fx_open("127.0.0.0/8", 1000, 5000);
	opt_mem = 0;
	fd1 = consumer(f, 0);
	fd2 = consumer(f, 0);
	for (i = 0; i < 100; i++)
		mw_nf_server_publish(f->srv, &in);
	mw_nf_server_get_stats(f->srv, &st);
	assert_true(st.queued <= 10 * MW_NF_INFO_SIZE);
	assert_int_equal(st.drops, 200 - 10);
	assert_true(st.mem_drops > 0);
	close(fd1);
	close(fd2);
	fx_close(f);
}

/*
 * Shares: a source that floods a consumer's queue keeps out of the reserve at
 * its top (a quarter of a 100-observation queue), so every other source gets
 * its first NF_NEWCOMER (8) observations in (without shares they all dropped
 * behind the flood); drained, the queue serves the flooder again.
 */
static void test_source_shares(void **state)
{
	struct fixture *f = fx_open("127.0.0.0/8", 100, 5000);
	struct mw_nf_info a = sample_info(1), b = sample_info(2), c = sample_info(3), info;
	struct mw_nf_server_stats st;
	static uint8_t buf[1 << 20];
	size_t got, i, na = 0, nb = 0, nc = 0;
	bool closed;
	int fd;

	(void)state;
	fd = consumer(f, 0);
	for (i = 0; i < 200; i++)
		mw_nf_server_publish_src(f->srv, &a, 1000);
	mw_nf_server_get_stats(f->srv, &st);
	assert_int_equal(st.queued, 75 * MW_NF_INFO_SIZE); /* all but the reserve */
	assert_int_equal(st.share_drops, 125);
	for (i = 0; i < 10; i++) {
		mw_nf_server_publish_src(f->srv, &b, 2000);
		mw_nf_server_publish_src(f->srv, &c, 3000);
	}
	mw_nf_server_get_stats(f->srv, &st);
	assert_int_equal(st.share_drops, 125 + 2 + 2); /* 8 each got in */
	for (i = 0; i < 100; i++)		       /* unbounded by shares, up to the queue */
		mw_nf_server_publish(f->srv, &a);
	mw_nf_server_get_stats(f->srv, &st);
	assert_int_equal(st.queued, 100 * MW_NF_INFO_SIZE);
	got = drain(f, fd, buf, sizeof(buf), &closed);
	assert_false(closed);
	assert_int_equal(got, 100 * MW_NF_INFO_SIZE);
	for (i = 0; i < got; i += MW_NF_INFO_SIZE) {
		assert_int_equal(mw_nf_decode_info(&info, buf + i, MW_NF_INFO_SIZE, NULL), 0);
		na += info.sockfd == 1;
		nb += info.sockfd == 2;
		nc += info.sockfd == 3;
	}
	assert_int_equal(nb, 8);
	assert_int_equal(nc, 8);
	assert_int_equal(na, 84);
	/* Drained: the flooder's count fell with its writes, it gets as much again. */
	for (i = 0; i < 200; i++)
		mw_nf_server_publish_src(f->srv, &a, 1000);
	mw_nf_server_get_stats(f->srv, &st);
	assert_int_equal(st.queued, 75 * MW_NF_INFO_SIZE);
	assert_int_equal(st.share_drops, 129 + 125);
	close(fd);
	fx_close(f);
}

/*
 * The records follow partial writes, a ring that wraps and grows, responses
 * between observations, and more sources than slots: after the queue has
 * drained bit by bit, every count is back to 0 (a flooder alone gets all but
 * the reserve again, two newcomers their 8 each).
 */
static void test_source_shares_drain(void **state)
{
	struct fixture *f = fx_open("127.0.0.0/8", 2000, 60000);
	struct mw_nf_server_stats st;
	struct mw_nf_info in = sample_info(1);
	static uint8_t buf[1 << 22];
	size_t reserve = 2000 / 4, i; /* min(65 x 8, a quarter of the queue) */
	uint32_t id = 100;
	ssize_t n;
	int fd, round;

	(void)state;
	f->answer_now = true;
	fd = consumer(f, 4096); /* a small receive buffer: the server's sends are partial */
	for (round = 0; round < 40; round++) {
		for (i = 0; i < 150; i++) {
			in.sockfd = 1 + (i % 90); /* 90 sources: more than the slots */
			mw_nf_server_publish_src(f->srv, &in, (uint32_t)(1 + i % 90));
		}
		send_request(fd, id++, MW_NF_FLAG_BY_SOCK, MW_NF_ATTR_SNDBUF, 5);
		spin(f, 2);
		n = read(fd, buf, 3001); /* a part, across message boundaries */
		assert_true(n > 0 || errno == EAGAIN);
	}
	/* Read until the server holds nothing (bounded: 20 s), whatever the machine's load. */
	for (i = 0; i < 20000; i++) {
		spin(f, 1);
		while (read(fd, buf, sizeof(buf)) > 0)
			;
		mw_nf_server_get_stats(f->srv, &st);
		if (!st.queued)
			break;
	}
	assert_int_equal(st.queued, 0);
	assert_int_equal(st.consumers, 1);
	for (i = 0; i < 5000; i++)
		mw_nf_server_publish_src(f->srv, &in, 7);
	mw_nf_server_get_stats(f->srv, &st);
	assert_int_equal(st.queued, (2000 - reserve) * MW_NF_INFO_SIZE);
	for (i = 0; i < 20; i++) {
		mw_nf_server_publish_src(f->srv, &in, 8);
		mw_nf_server_publish_src(f->srv, &in, 9);
	}
	mw_nf_server_get_stats(f->srv, &st);
	assert_int_equal(st.queued, (2000 - reserve + 16) * MW_NF_INFO_SIZE);
	close(fd);
	fx_close(f);
}

/* A consumer that reads, but slower than min_rate, is cut (progress alone does not save it). */
static void test_slow_reader_cut(void **state)
{
	struct mw_nf_info in = sample_info(1);
	struct mw_nf_server_stats st;
	struct fixture *f;
	uint8_t b[8];
	int fd, i;

	(void)state;
	opt_min_rate = 100000; /* bytes/s */
	f = fx_open("127.0.0.0/8", 100000, 300);
	opt_min_rate = 0;
	fd = consumer(f, 4096);
	st.consumers = 1;
	for (i = 0; i < 400 && st.consumers; i++) {
		for (int j = 0; j < 50; j++)
			mw_nf_server_publish(f->srv, &in);
		assert_true(read(fd, b, sizeof(b)) != 0); /* 8 bytes per 10 ms: 800 B/s */
		usleep(10000);
		ev_run(f->loop, EVRUN_NOWAIT);
		mw_nf_server_get_stats(f->srv, &st);
	}
	assert_int_equal(st.consumers, 0);
	assert_int_equal(st.stalled, 1);
	assert_true(i < 300); /* within a few windows of 0.3 s */
	close(fd);
	fx_close(f);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_tcp_token_required),
		cmocka_unit_test(test_observe_role),
		cmocka_unit_test(test_unix_peercred),
		cmocka_unit_test(test_per_user_limit),
		cmocka_unit_test(test_preauth_limit),
		cmocka_unit_test(test_preauth_stale_replaced),
		cmocka_unit_test(test_memory_total),
		cmocka_unit_test(test_source_shares),
		cmocka_unit_test(test_source_shares_drain),
		cmocka_unit_test(test_slow_reader_cut),
		cmocka_unit_test(test_monitor_and_requests),
		cmocka_unit_test(test_bad_signature_disconnects),
		cmocka_unit_test(test_allow_list_refuses),
		cmocka_unit_test(test_stalled_consumer_drops_then_disconnects),
		cmocka_unit_test(test_halfclose_with_queue_resets),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
