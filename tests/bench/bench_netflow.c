/* SPDX-License-Identifier: MIT */
/* bench_netflow.c - B6: Netflow observations per second delivered to one consumer over loopback */
#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "common/addr.h"
#include "netflow/codec.h"
#include "netflow/server.h"

/*
 * The server (this process, one libev loop, as inside mw-pvm) publishes
 * observations as fast as its loop turns, 256 per iteration; a forked
 * consumer reads and frames them (mw_nf_frame_next + decode of the fields a
 * console uses) for a fixed time and reports how many arrived.  Observations
 * the consumer cannot keep up with are dropped by the server's bounded queue,
 * so "offered" minus "delivered" is the drop count, not a backlog.
 */

#define BATCH 256

struct bench {
	struct ev_loop *loop;
	struct mw_nf_server *srv;
	ev_idle idle;
	ev_child child;
	struct mw_nf_info info;
	uint64_t offered;
	int result_fd;
	double delivered_per_s;
	int done;
};

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void on_request(void *ctx, struct mw_nf_reply to, const struct mw_nf_request *req)
{
	struct bench *b = ctx;

	(void)req;
	mw_nf_server_respond(b->srv, to, -EINVAL, 0, 0);
}

static void idle_cb(struct ev_loop *loop, ev_idle *w, int revents)
{
	struct bench *b = w->data;

	(void)loop;
	(void)revents;
	for (int i = 0; i < BATCH; i++) {
		b->info.bytes_in += 1460;
		mw_nf_server_publish(b->srv, &b->info);
	}
	b->offered += BATCH;
}

static void child_cb(struct ev_loop *loop, ev_child *w, int revents)
{
	struct bench *b = w->data;

	(void)revents;
	ev_child_stop(loop, w);
	if (read(b->result_fd, &b->delivered_per_s, sizeof(b->delivered_per_s)) !=
	    sizeof(b->delivered_per_s))
		b->delivered_per_s = -1;
	b->done = 1;
	ev_break(loop, EVBREAK_ALL);
}

/* The consumer: connect, count whole INFO messages for @seconds. */
static int consume(const char *addr_text, double seconds, int result_fd)
{
	static uint8_t buf[1 << 20];
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	struct mw_nf_info info;
	size_t have = 0, off;
	uint64_t count = 0, last = 0;
	double t0, t;
	ssize_t n;
	int fd, m;

	/* The server's AF_UNIX socket: the bench runs as root, an authorised consumer. */
	if (strlen(addr_text) >= sizeof(sun.sun_path))
		return 1;
	memcpy(sun.sun_path, addr_text, strlen(addr_text) + 1);
	fd = socket(AF_UNIX, SOCK_STREAM, 0);
	if (fd < 0 || connect(fd, (struct sockaddr *)&sun, sizeof(sun)))
		return 1;
	t0 = now_s();
	do {
		n = read(fd, buf + have, sizeof(buf) - have);
		if (n <= 0)
			return 1;
		have += (size_t)n;
		for (off = 0; (m = mw_nf_frame_next(buf + off, have - off)) > 0; off += (size_t)m) {
			if (mw_nf_decode_info(&info, buf + off, (size_t)m, NULL))
				return 1;
			if (info.bytes_in < last) /* in order, nothing torn */
				return 1;
			last = info.bytes_in;
			count++;
		}
		if (m < 0)
			return 1;
		memmove(buf, buf + off, have - off);
		have -= off;
		t = now_s();
	} while (t - t0 < seconds);
	double rate = count / (t - t0);

	return write(result_fd, &rate, sizeof(rate)) == sizeof(rate) ? 0 : 1;
}

static int run_round(double seconds, double *delivered, double *offered)
{
	char upath[64];
	struct mw_nf_server_config cfg = { .listen = "",
					   .unix_path = upath,
					   .observe_gid = -1,
					   .control_gid = -1,
					   .queue = 65536,
					   .stall_ms = 10000,
					   .min_rate = 1,
					   .mem_total = (size_t)1 << 30,
					   .max_per_user = 4 };
	struct bench b = { .info = { .obs = MW_NF_OBS_RECV, .sockfd = 0x100000001ull } };
	struct mw_nf_server_ops ops = { .request = on_request, .ctx = &b };
	char err[256], addr[64];
	int pfd[2];
	pid_t pid;
	double t0;

	snprintf(upath, sizeof(upath), "/tmp/mw-bench-nf-%d.sock", (int)getpid());
	b.loop = ev_default_loop(0);
	if (mw_nf_server_open(&b.srv, b.loop, &cfg, &ops, err, sizeof(err))) {
		fprintf(stderr, "bench_netflow: %s\n", err);
		return 1;
	}
	mw_nf_server_address(b.srv, addr, sizeof(addr));
	if (pipe(pfd))
		return 1;
	pid = fork();
	if (pid == 0) {
		close(pfd[0]);
		_exit(consume(addr, seconds, pfd[1]));
	}
	close(pfd[1]);
	b.result_fd = pfd[0];
	ev_child_init(&b.child, child_cb, pid, 0);
	b.child.data = &b;
	ev_child_start(b.loop, &b.child);
	ev_idle_init(&b.idle, idle_cb);
	b.idle.data = &b;
	/* Publish only once the consumer is there (monitoring starts at connect). */
	while (!mw_nf_server_watching(b.srv) && !b.done)
		ev_run(b.loop, EVRUN_ONCE);
	t0 = now_s();
	ev_idle_start(b.loop, &b.idle);
	ev_run(b.loop, 0);
	ev_idle_stop(b.loop, &b.idle);
	*offered = b.offered / (now_s() - t0);
	*delivered = b.delivered_per_s;
	mw_nf_server_close(b.srv);
	close(pfd[0]);
	return b.delivered_per_s > 0 ? 0 : 1;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

int main(int argc, char **argv)
{
	long rounds = 5;
	double seconds = 2.0, del[64], off[64];
	char *end;
	int bad = 0;

	/* Whole arguments only: "3x" or "" is an error, not 3 or 0. */
	if (argc > 1) {
		errno = 0;
		rounds = strtol(argv[1], &end, 10);
		bad |= errno || end == argv[1] || *end;
	}
	if (argc > 2) {
		errno = 0;
		seconds = strtod(argv[2], &end);
		bad |= errno || end == argv[2] || *end || !isfinite(seconds);
	}
	if (bad || rounds < 1 || rounds > 64 || !(seconds > 0)) {
		fprintf(stderr, "usage: bench_netflow [rounds 1..64] [seconds]\n");
		return 2;
	}
	signal(SIGPIPE, SIG_IGN);
	for (int i = 0; i < rounds; i++) {
		if (run_round(seconds, &del[i], &off[i])) {
			fprintf(stderr, "bench_netflow: round %d failed\n", i);
			return 1;
		}
		fprintf(stderr, "# round %d: delivered %.0f obs/s, offered %.0f obs/s\n", i, del[i],
			off[i]);
	}
	qsort(del, (size_t)rounds, sizeof(double), cmp_double);
	qsort(off, (size_t)rounds, sizeof(double), cmp_double);
	printf("netflow_obs_delivered_per_s: %.0f\n", del[rounds / 2]);
	printf("netflow_obs_offered_per_s: %.0f\n", off[rounds / 2]);
	return 0;
}
