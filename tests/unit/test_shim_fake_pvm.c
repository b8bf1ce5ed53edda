/* SPDX-License-Identifier: MIT */
/* test_shim_fake_pvm.c - libmwshim.so against a fake mw-pvm (no mw-pvm or mw-ins needed) */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <setjmp.h>
#include <cmocka.h>

#include "common/fdpass.h"
#include "common/shimctl.h"
#include "common/sockid.h"
#include "common/sockname.h"

/*
 * The fake pvm is a thread of this process: it implements just enough of the
 * shimctl protocol (common/shimctl.h) and records what the shim asked.  The
 * shim runs inside shim_probe (tests/unit/shim_probe.c), started under
 * LD_PRELOAD; the probe prints key=value lines that the tests match.
 */

/*
 * The tag in every abstract name the fake makes: unique per process, so that
 * two runs of this test at once (two build trees, ctest -j) never bind the
 * same name.  Set by setup().
 */
static uint64_t fake_tag;
#define FAKE_TAG fake_tag
/* The nonce in a socket's name: random in mw-pvm, any value will do here. */
#define FAKE_NONCE(id) ((id) ^ 0xa5a5a5a5deadbeefULL)
#define FAKE_MAX 32
#define PROBE_TIMEOUT_MS 20000

enum accept_mode { ACC_NONE, ACC_GENUINE_AFTER_FORGED, ACC_FORGED_ONLY };

struct fake_sock {
	uint64_t id;
	int family;
	bool connected;
	int outcome; /* positive errno of the connect */
	struct mw_addr bound, peer;
	int opt_level, opt_name, opt_val;
};

struct fake {
	char dir[64], ctl_path[108], data_path[108];
	int ctl_lfd, data_lfd, stop[2];
	pthread_t thr;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	enum accept_mode accept_mode;
	/* recorded, under mu */
	int nconns, nclosed, nregs, nsocks;
	struct fake_sock socks[FAKE_MAX];
	struct mw_addr last_connect;
	int nconnect, nsetopt;
	uint64_t hints[FAKE_MAX];
	int nhints;
	uint64_t data_id;
	char data[256];
	size_t ndata;
	bool data_eof;
	int keep[FAKE_MAX]; /* fds handed to the app listener */
	int nkeep;
};

static struct fake_sock *fake_find(struct fake *f, uint64_t id)
{
	int i;

	for (i = 0; i < f->nsocks; i++)
		if (f->socks[i].id == id)
			return &f->socks[i];
	return NULL;
}

/* Connect to the app's listener from a socket bound to @name (NULL: unnamed). */
static int fake_dial(const struct mw_sockname *name, uint64_t lsn_id)
{
	struct mw_sockname ln = { .kind = MW_SOCKNAME_SOCKET, .tag = FAKE_TAG, .id = lsn_id,
				  .nonce = FAKE_NONCE(lsn_id) };
	struct sockaddr_un a, l;
	socklen_t al, ll;
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

	if (fd < 0)
		return -1;
	ll = mw_sockname_encode(&ln, &l);
	if (name) {
		al = mw_sockname_encode(name, &a);
		if (bind(fd, (struct sockaddr *)&a, al)) {
			close(fd);
			return -1;
		}
	}
	if (connect(fd, (struct sockaddr *)&l, ll)) {
		close(fd);
		return -1;
	}
	return fd;
}

static struct mw_addr addr4(uint8_t a, uint8_t b, uint8_t c, uint8_t d, uint16_t port)
{
	struct mw_addr x = { .family = 4, .port = port, .addr = { a, b, c, d } };

	return x;
}

/* At LISTEN: queue injection attempts, then (maybe) the genuine connection. */
static void fake_inject(struct fake *f, uint64_t lsn)
{
	struct mw_sockname forged = { .kind = MW_SOCKNAME_ACCEPTED, .tag = FAKE_TAG,
				      .id = 0x999, .peer = addr4(6, 6, 6, 6, 666) };
	struct mw_sockname wrongtag = { .kind = MW_SOCKNAME_ACCEPTED, .tag = FAKE_TAG ^ 1,
					.id = 0x998, .peer = addr4(7, 7, 7, 7, 777) };
	struct mw_sockname good = { .kind = MW_SOCKNAME_ACCEPTED, .tag = FAKE_TAG,
				    .id = mw_sockid_make(1, 0, MW_SOCKID_INS_ASSIGNED | 1),
				    .peer = addr4(10, 1, 2, 3, 4567),
				    .local = addr4(10, 0, 0, 2, 8080) };
	pid_t pid;
	int fd, st;

	if (f->accept_mode == ACC_NONE)
		return;
	/* 1: a perfect 'A' name, but from another process. */
	pid = fork();
	if (pid == 0) {
		fd = fake_dial(&forged, lsn);
		_exit(fd < 0 ? 1 : 0);
	}
	waitpid(pid, &st, 0);
	/* 2: from the right pid, an unnamed socket; 3: a name with the wrong tag. */
	fd = fake_dial(NULL, lsn);
	if (fd >= 0)
		f->keep[f->nkeep++] = fd;
	if (f->accept_mode == ACC_FORGED_ONLY)
		return;
	fd = fake_dial(&wrongtag, lsn);
	if (fd >= 0)
		f->keep[f->nkeep++] = fd;
	fd = fake_dial(&good, lsn);
	if (fd >= 0) {
		f->keep[f->nkeep++] = fd;
		if (write(fd, "hello", 5) != 5)
			fprintf(stderr, "fake: write to the accepted connection failed\n");
	}
}

/* As mw-pvm does at SOCKET: the app's AF_UNIX socket, already named. */
static int fake_app_socket(uint64_t id)
{
	struct mw_sockname n = { .kind = MW_SOCKNAME_SOCKET, .tag = FAKE_TAG, .id = id,
				 .nonce = FAKE_NONCE(id) };
	struct sockaddr_un sun;
	socklen_t len = mw_sockname_encode(&n, &sun);
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

	if (fd >= 0 && bind(fd, (struct sockaddr *)&sun, len)) {
		close(fd);
		fd = -1;
	}
	return fd;
}

/* Send a response, with @fd (SCM_RIGHTS) unless it is -1. */
static ssize_t fake_send(int cfd, const struct mw_shimctl_resp *r, int fd)
{
	return mw_fdpass_send(cfd, r, sizeof(*r), fd, MSG_NOSIGNAL);
}


/* As mw-pvm: CONNECT's fd is the app's socket, connected here to the data listener. */
static int fake_connect_app(struct fake *f, int app_fd)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };

	snprintf(sun.sun_path, sizeof(sun.sun_path), "%s", f->data_path);
	if (app_fd < 0 || connect(app_fd, (struct sockaddr *)&sun, sizeof(sun)))
		return -EIO;
	return 0;
}

/*
 * Answer one request.  @req_fd (the fd that came with it, -1: none) is closed
 * here, before the answer goes out, as mw-pvm does: an app told "done" may at
 * once check that the socket is open nowhere else.
 */
static void fake_request(struct fake *f, int fd, const struct mw_shimctl_req *req, int req_fd)
{
	struct mw_shimctl_resp r;
	struct fake_sock *s = NULL;
	int zero = 0, app_fd = -1;

	memset(&r, 0, sizeof(r));
	r.sock = req->sock;
	pthread_mutex_lock(&f->mu);
	if (req->op != MW_SHIMCTL_REGISTER && req->op != MW_SHIMCTL_SOCKET) {
		s = fake_find(f, req->sock);
		if (!s) {
			r.status = -ENOENT;
			goto answer;
		}
	}
	switch (req->op) {
	case MW_SHIMCTL_REGISTER:
		f->nregs++;
		r.status = req->arg == MW_SHIMCTL_VERSION ? 0 : -EPROTO;
		r.sock = FAKE_TAG;
		r.arg = getpid();
		break;
	case MW_SHIMCTL_SOCKET:
		if (f->nsocks == FAKE_MAX) {
			r.status = -ENFILE;
			break;
		}
		s = &f->socks[f->nsocks++];
		memset(s, 0, sizeof(*s));
		s->id = mw_sockid_make(1, 0, (uint32_t)f->nsocks);
		s->family = req->arg;
		r.sock = s->id;
		app_fd = fake_app_socket(s->id);
		if (app_fd < 0)
			r.status = -EIO;
		break;
	case MW_SHIMCTL_BIND:
		s->bound = req->addr;
		if (!s->bound.port)
			s->bound.port = 40000;
		r.addr = s->bound;
		break;
	case MW_SHIMCTL_LISTEN:
		pthread_mutex_unlock(&f->mu);
		fake_inject(f, s->id);
		pthread_mutex_lock(&f->mu);
		break;
	case MW_SHIMCTL_CONNECT:
		if (s->connected) {
			r.status = -EISCONN;
			break;
		}
		f->last_connect = req->addr;
		f->nconnect++;
		s->peer = req->addr;
		s->connected = true;
		s->outcome = req->addr.port == 1 ? ECONNREFUSED : 0;
		r.status = fake_connect_app(f, req_fd);
		break;
	case MW_SHIMCTL_CONNECT_WAIT:
		r.status = -s->outcome;
		break;
	case MW_SHIMCTL_SETOPT:
		f->nsetopt++;
		s->opt_level = req->arg;
		s->opt_name = req->arg2;
		memcpy(&s->opt_val, req->val, sizeof(int));
		break;
	case MW_SHIMCTL_GETOPT:
		if (req->arg == IPPROTO_TCP && req->arg2 == TCP_CONGESTION) {
			/* As a lying INS: more than was asked for. */
			memset(r.val, 'c', MW_SOCKOPT_MAX);
			r.len = MW_SOCKOPT_MAX;
			break;
		}
		if (req->arg == SOL_SOCKET && req->arg2 == SO_ERROR)
			memcpy(r.val, &s->outcome, sizeof(int));
		else if (req->arg == s->opt_level && req->arg2 == s->opt_name)
			memcpy(r.val, &s->opt_val, sizeof(int));
		else
			memcpy(r.val, &zero, sizeof(int));
		r.len = sizeof(int);
		break;
	case MW_SHIMCTL_GETNAME:
		if (req->arg) {
			if (s->connected && !s->outcome)
				r.addr = s->peer;
			else
				r.status = -ENOTCONN;
		} else if (s->bound.family) {
			r.addr = s->bound;
		} else {
			r.addr.family = (uint8_t)s->family;
		}
		break;
	case MW_SHIMCTL_CLOSE_HINT:
		if (f->nhints < FAKE_MAX)
			f->hints[f->nhints++] = req->sock;
		pthread_cond_broadcast(&f->cv);
		pthread_mutex_unlock(&f->mu);
		if (req_fd >= 0)
			close(req_fd);
		return; /* no response */
	default:
		r.status = -EOPNOTSUPP;
	}
answer:
	pthread_mutex_unlock(&f->mu);
	if (req_fd >= 0)
		close(req_fd);
	if (fake_send(fd, &r, app_fd) != sizeof(r))
		fprintf(stderr, "fake: short response\n");
	if (app_fd >= 0)
		close(app_fd);
}

static void fake_data_accept(struct fake *f, int fd)
{
	struct sockaddr_un sun;
	socklen_t len = sizeof(sun);
	struct mw_sockname n;

	pthread_mutex_lock(&f->mu);
	if (!getpeername(fd, (struct sockaddr *)&sun, &len) && !mw_sockname_decode(&n, &sun, len) &&
	    n.kind == MW_SOCKNAME_SOCKET && n.tag == FAKE_TAG)
		f->data_id = n.id;
	pthread_mutex_unlock(&f->mu);
}

static void fake_data_read(struct fake *f, int fd, bool *done)
{
	char buf[256];
	ssize_t n = read(fd, buf, sizeof(buf));

	pthread_mutex_lock(&f->mu);
	if (n > 0) {
		if ((size_t)n > sizeof(f->data) - 1 - f->ndata)
			n = (ssize_t)(sizeof(f->data) - 1 - f->ndata);
		memcpy(f->data + f->ndata, buf, (size_t)n);
		f->ndata += (size_t)n;
	} else {
		f->data_eof = true;
		*done = true;
		pthread_cond_broadcast(&f->cv);
	}
	pthread_mutex_unlock(&f->mu);
}

/* One request and the fd that came with it (-1: none). */
static ssize_t fake_recv(int fd, struct mw_shimctl_req *req, int *app_fd)
{
	union {
		struct cmsghdr h;
		char buf[CMSG_SPACE(sizeof(int))];
	} ctl;
	struct iovec iov = { .iov_base = req, .iov_len = sizeof(*req) };
	struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1 };
	struct cmsghdr *cm;
	ssize_t n;

	*app_fd = -1;
	msg.msg_control = ctl.buf;
	msg.msg_controllen = sizeof(ctl.buf);
	n = recvmsg(fd, &msg, MSG_CMSG_CLOEXEC);
	cm = n > 0 ? CMSG_FIRSTHDR(&msg) : NULL;
	if (cm && cm->cmsg_level == SOL_SOCKET && cm->cmsg_type == SCM_RIGHTS)
		memcpy(app_fd, CMSG_DATA(cm), sizeof(int));
	return n;
}

static void *fake_main(void *arg)
{
	struct fake *f = arg;
	struct pollfd p[3 + 2 * FAKE_MAX];
	int clients[FAKE_MAX] = { 0 }, datas[FAKE_MAX] = { 0 }, nc = 0, nd = 0, nc0, i, n, fd;

	for (;;) {
		p[0] = (struct pollfd){ .fd = f->stop[0], .events = POLLIN };
		p[1] = (struct pollfd){ .fd = f->ctl_lfd, .events = POLLIN };
		p[2] = (struct pollfd){ .fd = f->data_lfd, .events = POLLIN };
		for (i = 0; i < nc; i++)
			p[3 + i] = (struct pollfd){ .fd = clients[i], .events = POLLIN };
		for (i = 0; i < nd; i++)
			p[3 + nc + i] = (struct pollfd){ .fd = datas[i], .events = POLLIN };
		n = poll(p, (nfds_t)3 + (nfds_t)nc + (nfds_t)nd, -1);
		nc0 = nc;
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 || p[0].revents)
			break;
		for (i = nc - 1; i >= 0; i--) {
			struct mw_shimctl_req req;
			ssize_t r;
			int app_fd;

			if (!p[3 + i].revents)
				continue;
			r = fake_recv(clients[i], &req, &app_fd);
			if (r == (ssize_t)sizeof(req)) {
				fake_request(f, clients[i], &req, app_fd);
				continue;
			}
			if (app_fd >= 0)
				close(app_fd);
			close(clients[i]);
			clients[i] = clients[--nc];
			pthread_mutex_lock(&f->mu);
			f->nclosed++;
			pthread_cond_broadcast(&f->cv);
			pthread_mutex_unlock(&f->mu);
		}
		for (i = nd - 1; i >= 0; i--) {
			bool done = false;

			if (!p[3 + nc0 + i].revents)
				continue;
			fake_data_read(f, datas[i], &done);
			if (done) {
				close(datas[i]);
				datas[i] = datas[--nd];
			}
		}
		/* New connections last: p[] indexes stay valid above. */
		if ((p[1].revents & POLLIN) && nc < FAKE_MAX) {
			fd = accept4(f->ctl_lfd, NULL, NULL, SOCK_CLOEXEC);
			if (fd >= 0) {
				clients[nc++] = fd;
				pthread_mutex_lock(&f->mu);
				f->nconns++;
				pthread_mutex_unlock(&f->mu);
			}
		}
		if ((p[2].revents & POLLIN) && nd < FAKE_MAX) {
			fd = accept4(f->data_lfd, NULL, NULL, SOCK_CLOEXEC);
			if (fd >= 0) {
				fake_data_accept(f, fd);
				datas[nd++] = fd;
			}
		}
	}
	for (i = 0; i < nc; i++)
		close(clients[i]);
	for (i = 0; i < nd; i++)
		close(datas[i]);
	return NULL;
}

static int listen_path(const char *path, int type)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	int fd = socket(AF_UNIX, type | SOCK_CLOEXEC, 0);

	assert_true(fd >= 0);
	snprintf(sun.sun_path, sizeof(sun.sun_path), "%s", path);
	assert_int_equal(bind(fd, (struct sockaddr *)&sun, sizeof(sun)), 0);
	assert_int_equal(listen(fd, 64), 0);
	return fd;
}

static int setup(void **state)
{
	struct fake *f = calloc(1, sizeof(*f));

	assert_non_null(f);
	if (!fake_tag && getrandom(&fake_tag, sizeof(fake_tag), 0) != (ssize_t)sizeof(fake_tag))
		fake_tag = (uint64_t)getpid() << 32 ^ (uint64_t)time(NULL);
	snprintf(f->dir, sizeof(f->dir), "/tmp/mwshimtest.XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	snprintf(f->ctl_path, sizeof(f->ctl_path), "%s/pvm.sock", f->dir);
	snprintf(f->data_path, sizeof(f->data_path), "%s/pvm.sock.data", f->dir);
	f->ctl_lfd = listen_path(f->ctl_path, SOCK_SEQPACKET);
	f->data_lfd = listen_path(f->data_path, SOCK_STREAM);
	assert_int_equal(pipe2(f->stop, O_CLOEXEC), 0);
	pthread_mutex_init(&f->mu, NULL);
	pthread_cond_init(&f->cv, NULL);
	assert_int_equal(pthread_create(&f->thr, NULL, fake_main, f), 0);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fake *f = *state;
	int i;

	if (write(f->stop[1], "x", 1) != 1)
		fprintf(stderr, "cannot stop the fake pvm\n");
	pthread_join(f->thr, NULL);
	for (i = 0; i < f->nkeep; i++)
		close(f->keep[i]);
	close(f->ctl_lfd);
	close(f->data_lfd);
	close(f->stop[0]);
	close(f->stop[1]);
	unlink(f->ctl_path);
	unlink(f->data_path);
	rmdir(f->dir);
	free(f);
	return 0;
}

static const char *build_path(char *buf, size_t len, const char *env, const char *rel)
{
	const char *over = getenv(env);
	const char *dir = getenv("MW_BUILD_DIR");

	if (over && *over)
		snprintf(buf, len, "%s", over);
	else
		snprintf(buf, len, "%s/%s", dir ? dir : ".", rel);
	return buf;
}

/*
 * Run shim_probe ARGS under the shim with the fake's socket (or @ctl).  Its
 * stdout+stderr land in @out, with a leading newline so "\nkey=value\n" matches.
 * Return: the exit status, or -1 on timeout (the probe is killed).
 */
static int run_probe(struct fake *f, const char *ctl, const char *failopen, char *out,
		     size_t outlen, ...)
{
	char shim[512], probe[512];
	const char *argv[8];
	struct timespec t0, t1;
	va_list ap;
	int pfd[2], argc = 0, st = -1;
	size_t used = 1;
	pid_t pid;

	build_path(shim, sizeof(shim), "MW_SHIM_LIB", "shim/libmwshim.so");
	build_path(probe, sizeof(probe), "MW_SHIM_PROBE", "tests/unit/shim_probe");
	assert_int_equal(access(shim, R_OK), 0);
	assert_int_equal(access(probe, X_OK), 0);
	argv[argc++] = probe;
	va_start(ap, outlen);
	while (argc < 7 && (argv[argc] = va_arg(ap, const char *)))
		argc++;
	va_end(ap);
	argv[argc] = NULL;
	assert_int_equal(pipe2(pfd, O_CLOEXEC), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		dup2(pfd[1], 1);
		dup2(pfd[1], 2);
		setenv("LD_PRELOAD", shim, 1);
		setenv("MW_PVM_SOCKET", ctl ? ctl : f->ctl_path, 1);
		/* A sanitizer build preloads an instrumented shim ahead of the runtime. */
		setenv("ASAN_OPTIONS", "verify_asan_link_order=0:detect_leaks=0", 1);
		if (failopen)
			setenv("MW_SHIM_FAILOPEN", failopen, 1);
		else
			unsetenv("MW_SHIM_FAILOPEN");
		execv(probe, (char *const *)argv);
		_exit(127);
	}
	close(pfd[1]);
	out[0] = '\n';
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (;;) {
		struct pollfd p = { .fd = pfd[0], .events = POLLIN };
		long ms;
		ssize_t n;

		clock_gettime(CLOCK_MONOTONIC, &t1);
		ms = (t1.tv_sec - t0.tv_sec) * 1000 + (t1.tv_nsec - t0.tv_nsec) / 1000000;
		if (ms >= PROBE_TIMEOUT_MS || poll(&p, 1, (int)(PROBE_TIMEOUT_MS - ms)) <= 0) {
			kill(pid, SIGKILL);
			waitpid(pid, NULL, 0);
			close(pfd[0]);
			out[used] = '\0';
			fprintf(stderr, "probe timed out; output so far:%s\n", out);
			return -1;
		}
		n = read(pfd[0], out + used, outlen - 1 - used);
		if (n <= 0)
			break;
		used += (size_t)n;
		if (used >= outlen - 1)
			break;
	}
	out[used] = '\0';
	close(pfd[0]);
	waitpid(pid, &st, 0);
	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

#define assert_has(out, line)                                                       \
	do {                                                                        \
		if (!strstr((out), "\n" line "\n"))                                \
			fail_msg("probe output lacks \"%s\":%s", line, (out));      \
	} while (0)

/* Wait (bounded) until the fake saw @what; Return: whether it did. */
static bool fake_wait(struct fake *f, bool (*what)(struct fake *))
{
	struct timespec dl;
	bool ok;

	clock_gettime(CLOCK_REALTIME, &dl);
	dl.tv_sec += 10;
	pthread_mutex_lock(&f->mu);
	while (!(ok = what(f)))
		if (pthread_cond_timedwait(&f->cv, &f->mu, &dl) == ETIMEDOUT) {
			ok = what(f);
			break;
		}
	pthread_mutex_unlock(&f->mu);
	return ok;
}

static bool saw_data_eof(struct fake *f) { return f->data_eof; }
static bool saw_hint(struct fake *f) { return f->nhints > 0; }
static bool saw_all_closed(struct fake *f) { return f->nconns > 0 && f->nclosed == f->nconns; }

static void test_socket_is_named_unix(void **state)
{
	struct fake *f = *state;
	char out[4096], line[64];

	assert_int_equal(run_probe(f, NULL, NULL, out, sizeof(out), "socket4", (char *)NULL), 0);
	assert_has(out, "real_family=1");
	assert_has(out, "real_kind=mwS");
	snprintf(line, sizeof(line), "\nreal_tag=%llx\n", (unsigned long long)FAKE_TAG);
	assert_non_null(strstr(out, line));
	snprintf(line, sizeof(line), "\nreal_id=%llx\n",
		 (unsigned long long)mw_sockid_make(1, 0, 1));
	assert_non_null(strstr(out, line));
	assert_has(out, "so_type=1");      /* SOCK_STREAM */
	assert_has(out, "so_domain=2");    /* AF_INET, although the fd is AF_UNIX */
	assert_has(out, "so_protocol=6");  /* IPPROTO_TCP */
	assert_has(out, "real_domain=1");
	assert_int_equal(f->nregs, 1);
	assert_int_equal(f->socks[0].family, 4);

	assert_int_equal(run_probe(f, NULL, NULL, out, sizeof(out), "socket6", (char *)NULL), 0);
	assert_has(out, "so_domain=10");   /* AF_INET6 */
	assert_int_equal(f->socks[1].family, 6);
}

static void test_udp_and_unix_untouched(void **state)
{
	struct fake *f = *state;
	char out[4096];

	assert_int_equal(run_probe(f, NULL, NULL, out, sizeof(out), "untouched", (char *)NULL), 0);
	assert_has(out, "udp_domain=2");
	assert_has(out, "udp_type=2");
	assert_has(out, "unix_domain=1");
	assert_has(out, "udp_so_domain=2");
	assert_has(out, "udp_sockname=0.0.0.0:0/2");
	assert_has(out, "udp_close=0");
	/* Not even a connection to mw-pvm. */
	assert_int_equal(f->nconns, 0);
	assert_int_equal(f->nsocks, 0);
}

static void test_connect_blocking(void **state)
{
	struct fake *f = *state;
	char out[4096];

	assert_int_equal(run_probe(f, NULL, NULL, out, sizeof(out), "connect", "10.9.8.7", "80",
				   (char *)NULL),
			 0);
	assert_has(out, "connect=0");
	assert_has(out, "write=4");
	assert_has(out, "peername=10.9.8.7:80/2");
	assert_int_equal(f->nconnect, 1);
	assert_int_equal(f->last_connect.family, 4);
	assert_int_equal(f->last_connect.port, 80);
	assert_memory_equal(f->last_connect.addr, ((uint8_t[]){ 10, 9, 8, 7 }), 4);
	/* The fd itself became the data connection, named by its id. */
	assert_true(fake_wait(f, saw_data_eof));
	assert_int_equal(f->data_id, f->socks[0].id);
	assert_int_equal(f->ndata, 4);
	assert_memory_equal(f->data, "ping", 4);
	/* A connected socket's close is no listener close: no hint. */
	assert_int_equal(f->nhints, 0);
}

static void test_connect_refused(void **state)
{
	struct fake *f = *state;
	char out[4096];

	assert_int_equal(run_probe(f, NULL, NULL, out, sizeof(out), "connect", "10.9.8.7", "1",
				   (char *)NULL),
			 0);
	assert_has(out, "connect=ECONNREFUSED");
}

static void test_connect_nonblocking(void **state)
{
	struct fake *f = *state;
	char out[4096];

	assert_int_equal(run_probe(f, NULL, NULL, out, sizeof(out), "connect_nb", "::1", "443",
				   (char *)NULL),
			 0);
	assert_has(out, "connect=EINPROGRESS");
	assert_has(out, "so_error=0");
	assert_has(out, "connect2=EISCONN");
	assert_has(out, "write=4");
	assert_has(out, "peername=::1:443/10");
	assert_int_equal(f->last_connect.family, 6);
	assert_int_equal(f->last_connect.port, 443);
	assert_true(fake_wait(f, saw_data_eof));
	assert_memory_equal(f->data, "ping", 4);
}

static void test_accept_rejects_injection(void **state)
{
	struct fake *f = *state;
	char out[4096];

	f->accept_mode = ACC_GENUINE_AFTER_FORGED;
	assert_int_equal(run_probe(f, NULL, NULL, out, sizeof(out), "accept", "8080", (char *)NULL),
			 0);
	assert_has(out, "bind=0");
	assert_has(out, "listen=0");
	assert_has(out, "accept=0");
	/* Three forged connections were queued first: the genuine one comes out. */
	assert_has(out, "accept_peer=10.1.2.3:4567/2");
	assert_has(out, "accept_len=16");
	assert_has(out, "acc_peername=10.1.2.3:4567/2");
	assert_has(out, "acc_sockname=10.0.0.2:8080/2");
	assert_has(out, "acc_so_domain=2");
	assert_has(out, "data=hello");
	assert_int_equal(f->socks[0].bound.port, 8080);
	/* TCP_CORK: kept in the shim for the connection and for its dup, never
	 * sent to the kernel's AF_UNIX socket; a foreign socket reusing the
	 * closed connection's number is corked by the kernel. */
	assert_has(out, "acc_cork_set=0");
	assert_has(out, "acc_cork=1");
	assert_has(out, "dup_cork_before=0");
	assert_has(out, "dup_cork_set=0");
	assert_has(out, "dup_cork=1");
	assert_has(out, "dup_cork_real=-95"); /* EOPNOTSUPP: the kernel never saw it */
	assert_has(out, "reuse_same_fd=1");
	assert_has(out, "reuse_cork_set=0");
	assert_has(out, "reuse_cork_real=1");
}

static void test_accept_nonblocking(void **state)
{
	struct fake *f = *state;
	char out[4096];

	f->accept_mode = ACC_FORGED_ONLY;
	assert_int_equal(
		run_probe(f, NULL, NULL, out, sizeof(out), "accept_nb", "8081", (char *)NULL), 0);
	assert_has(out, "listen=0");
	assert_has(out, "accept1=ECONNABORTED"); /* another process */
	assert_has(out, "accept2=ECONNABORTED"); /* no name */
	assert_has(out, "accept3=EAGAIN");       /* nothing left, as the kernel says */
}

/*
 * accept() trusts the bit of a listener made here and identifies the fd only
 * when a connection does not prove itself: behind a stale bit (the fd closed
 * by a raw system call and its number reused by a listener the shim never saw)
 * the connection is handed out as the kernel would, not dropped.
 */
static void test_accept_stale_bit(void **state)
{
	struct fake *f = *state;
	char out[4096];

	assert_int_equal(run_probe(f, NULL, NULL, out, sizeof(out), "accept_stale", (char *)NULL),
			 0);
	assert_has(out, "tcp_same_fd=1");
	assert_has(out, "tcp_accept=0");
	assert_has(out, "tcp_accept_len=16");
	assert_has(out, "tcp_accept_family=2");
	assert_has(out, "tcp_accept_peer_is_client=1");
	assert_has(out, "tcp_accept2=EAGAIN");
	assert_has(out, "unix_same_fd=1");
	assert_has(out, "unix_accept=0");
	assert_has(out, "unix_accept_len=2"); /* an unnamed client */
	assert_has(out, "unix_accept_family=1");
	assert_has(out, "unix_accept2=EAGAIN");
}

/*
 * A connection to the app's listener from a local user's socket named like
 * mw-pvm's hand-over ('A', the right tag, a made-up peer), accepted past the
 * shim: getpeername() must not report the made-up peer (its peer is not mw-pvm).
 */
static void test_forged_peer_name(void **state)
{
	struct fake *f = *state;
	char out[4096];

	assert_int_equal(run_probe(f, NULL, NULL, out, sizeof(out), "forged_peer", (char *)NULL),
			 0);
	assert_has(out, "forged_accept=0");
	assert_has(out, "forged_peername=ENOTCONN"); /* the listener's: not connected */
	if (strstr(out, "203.0.113.9"))
		fail_msg("the forged peer was reported: %s", out);
}

static void test_options_names_and_close_hint(void **state)
{
	struct fake *f = *state;
	char out[4096];

	assert_int_equal(run_probe(f, NULL, NULL, out, sizeof(out), "opts", (char *)NULL), 0);
	assert_has(out, "setopt_nodelay=0");
	assert_has(out, "setopt_rcvtimeo=0");
	assert_has(out, "rcvtimeo_native=2");     /* applied to the AF_UNIX fd */
	assert_has(out, "nodelay=1");             /* read back through GETOPT */
	assert_has(out, "congestion=0");
	assert_has(out, "congestion_len=16 canary=1"); /* 64 came back: never more than asked */
	assert_has(out, "sockname=0.0.0.0:0/2");
	assert_has(out, "peername=ENOTCONN");
	assert_has(out, "bind=0");
	assert_has(out, "bound=127.0.0.1:40000/2");
	assert_has(out, "close=0");
	assert_has(out, "close_dup_first=0");
	assert_has(out, "close_dup_second=0");
	assert_int_equal(f->nsetopt, 1);          /* SO_RCVTIMEO did not go to mw-pvm */
	assert_int_equal(f->socks[0].opt_level, IPPROTO_TCP);
	assert_int_equal(f->socks[0].opt_name, 1 /* TCP_NODELAY */);
	assert_int_equal(f->socks[0].opt_val, 1);
	assert_true(fake_wait(f, saw_hint));
	/*
	 * The first socket is gone: hinted.  The dup'd one must not be hinted while
	 * a copy lives; its copy (made by dup(), which the shim does not track)
	 * closes without a hint: a known limit (docs/shim.md).  Wait until the
	 * fake has read everything the probe sent (its EOF) before counting.
	 */
	assert_true(fake_wait(f, saw_all_closed));
	assert_int_equal(f->nhints, 1);
	assert_int_equal(f->hints[0], f->socks[0].id);
}

static void test_fail_closed(void **state)
{
	struct fake *f = *state;
	char out[4096], missing[160];

	snprintf(missing, sizeof(missing), "%s/absent.sock", f->dir);
	assert_int_equal(run_probe(f, missing, NULL, out, sizeof(out), "socket4", (char *)NULL), 0);
	assert_has(out, "socket=EACCES");
	assert_non_null(strstr(out, "mwshim: cannot reach mw-pvm at "));
	assert_non_null(strstr(out, missing));
	assert_non_null(strstr(out, ": No such file or directory (set MW_SHIM_FAILOPEN=1"));
}

static void test_fail_open(void **state)
{
	struct fake *f = *state;
	char out[4096], missing[160];

	snprintf(missing, sizeof(missing), "%s/absent.sock", f->dir);
	assert_int_equal(run_probe(f, missing, "1", out, sizeof(out), "socket4", (char *)NULL), 0);
	assert_has(out, "real_family=2");        /* a real TCP socket */
	assert_has(out, "real_domain=2");
	assert_has(out, "so_domain=2");
	assert_null(strstr(out, "mwshim:"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_socket_is_named_unix, setup, teardown),
		cmocka_unit_test_setup_teardown(test_udp_and_unix_untouched, setup, teardown),
		cmocka_unit_test_setup_teardown(test_connect_blocking, setup, teardown),
		cmocka_unit_test_setup_teardown(test_connect_refused, setup, teardown),
		cmocka_unit_test_setup_teardown(test_connect_nonblocking, setup, teardown),
		cmocka_unit_test_setup_teardown(test_accept_rejects_injection, setup, teardown),
		cmocka_unit_test_setup_teardown(test_accept_stale_bit, setup, teardown),
		cmocka_unit_test_setup_teardown(test_forged_peer_name, setup, teardown),
		cmocka_unit_test_setup_teardown(test_accept_nonblocking, setup, teardown),
		cmocka_unit_test_setup_teardown(test_options_names_and_close_hint, setup, teardown),
		cmocka_unit_test_setup_teardown(test_fail_closed, setup, teardown),
		cmocka_unit_test_setup_teardown(test_fail_open, setup, teardown),
	};

	signal(SIGPIPE, SIG_IGN);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
