/* SPDX-License-Identifier: MIT */
/* bench_channel.c - B5: the INS channel alone (local backend, two processes, one core each) */
#include <errno.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "common/channel.h"

/*
 * Usage: bench_channel [rounds]
 * Each measurement forks a peer (the "INS", pinned to CPU 1; we are the PVM on
 * CPU 0), does the real local handshake and runs:
 *   small:  N frames of 64 B payload PVM->INS, batches of 64 then flush; the
 *           consumer copies each payload out.  Result in messages/s.
 *   large:  frames of 64 KiB payload through a 16 MiB ring, copied in and out.
 *   rtt:    1-frame ping-pong, both sides sleeping on their eventfd every time.
 *   spin:   the same ping-pong busy-polling (no sleep, no kick), for comparison.
 *   rtt_onecpu: the sleeping ping-pong with both processes on CPU 0.
 *   floor:  bare eventfd + poll() ping-pong across the two CPUs, no channel:
 *           the platform's wake-up cost, which bounds rtt from below.
 * Every side sleeps on its eventfd whenever it cannot progress (never spins in
 * small/large).  Medians of the rounds are printed last as "name: value".
 */

enum bench_mode { B_SMALL, B_LARGE, B_RTT, B_SPIN, B_RTT_ONECPU };

#define SMALL_LEN 64u
#define SMALL_N 20000000ull
#define LARGE_LEN (64u * 1024u)
#define LARGE_N 100000ull
#define RTT_N 20000
#define WAIT_MS 10000

/* MW_B5_LARGE_RING=bytes overrides the 64 KiB test's ring (default 4 MiB, the shipped ring_size). */
static uint32_t large_ring = 4u << 20;

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void pin(int cpu)
{
	cpu_set_t set;

	if (sysconf(_SC_NPROCESSORS_ONLN) <= cpu)
		return;
	CPU_ZERO(&set);
	CPU_SET(cpu, &set);
	sched_setaffinity(0, sizeof(set), &set);
}

static void die(const char *what)
{
	fprintf(stderr, "bench_channel: %s\n", what);
	exit(1);
}

/* Block until kicked (or the peer is gone). */
static void bench_block(struct mw_channel *ch)
{
	struct pollfd p[2] = { { .fd = ch->wait_fd, .events = POLLIN },
			       { .fd = ch->sock_fd, .events = POLLIN } };

	if (poll(p, 2, WAIT_MS) <= 0)
		die("stalled (lost wake-up?)");
	/* A peer that kicked and then exited leaves both set: the frames come first. */
	if (p[1].revents && !p[0].revents)
		die("peer hung up");
	mw_channel_woken(ch);
}

/* Next frame, sleeping on the eventfd when there is none. */
static void bench_recv(struct mw_channel *ch, struct mw_frame *f, const void **pl, bool spin)
{
	int ret;

	for (;;) {
		ret = mw_channel_recv(ch, f, pl);
		if (ret == 1)
			return;
		if (ret < 0)
			die(ch->dead_reason);
		if (spin)
			continue;
		mw_channel_flush(ch);
		if (mw_channel_sleep(ch))
			bench_block(ch);
	}
}

static void bench_send(struct mw_channel *ch, uint16_t type, const void *src, uint32_t len)
{
	void *p;

	while (!(p = mw_channel_reserve(ch, type, 1, len))) {
		if (ch->dead_reason[0])
			die(ch->dead_reason);
		if (mw_channel_want_space(ch, len))
			bench_block(ch);
	}
	memcpy(p, src, len);
	mw_channel_commit(ch, len);
}

/* The INS side: consume @n frames copying them out, then answer once. */
static void peer_main(struct mw_channel *ch, enum bench_mode mode, uint64_t n)
{
	static uint8_t sink[LARGE_LEN];
	struct mw_frame f;
	const void *pl;
	uint64_t i, sum = 0;

	if (mode != B_SMALL && mode != B_LARGE) {
		for (i = 0; i < n; i++) {
			bench_recv(ch, &f, &pl, mode == B_SPIN);
			memcpy(sink, pl, f.len);
			mw_channel_done(ch);
			bench_send(ch, MW_DATA, sink, f.len);
			mw_channel_flush(ch);
		}
		return;
	}
	for (i = 0; i < n; i++) {
		bench_recv(ch, &f, &pl, false);
		memcpy(sink, pl, f.len);
		sum += sink[0];
		mw_channel_done(ch);
	}
	bench_send(ch, MW_CREDIT, &sum, sizeof(sum));
	mw_channel_flush(ch);
}

/* One measurement; returns the figure (msgs/s, GB/s, or RTT us median; *@p99 for RTT). */
static double run(enum bench_mode mode, double *p99)
{
	static uint8_t src[LARGE_LEN];
	static double rtts[RTT_N];
	uint32_t ring = mode == B_LARGE ? large_ring : 4u << 20;
	uint32_t len = mode == B_LARGE ? LARGE_LEN : mode == B_SMALL ? SMALL_LEN : 16;
	uint64_t n = mode == B_LARGE ? LARGE_N : mode == B_SMALL ? SMALL_N : RTT_N;
	struct mw_hello h = { .magic = MW_PROTO_MAGIC, .version_min = MW_PROTO_VERSION_MIN,
			      .version_max = MW_PROTO_VERSION_MAX, .ins_id = 1,
			      .ring_size = ring, .window = 1, .pid = getpid() };
	struct mw_channel ch;
	struct mw_frame f;
	const void *pl;
	char err[160];
	double result;
	uint64_t t0, i;
	int sv[2], status;
	pid_t pid;

	memset(src, 0x5a, sizeof(src));
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv))
		die("socketpair");
	pid = fork();
	if (pid < 0)
		die("fork");
	if (pid == 0) {
		close(sv[0]);
		pin(mode == B_RTT_ONECPU ? 0 : 1);
		if (mw_channel_local_join(&ch, sv[1], &h, err, sizeof(err)))
			die(err);
		peer_main(&ch, mode, n);
		mw_channel_close(&ch);
		_exit(0);
	}
	close(sv[1]);
	pin(0);
	if (mw_channel_local_offer(&ch, sv[0], &h, err, sizeof(err)))
		die(err);
	t0 = now_ns();
	if (mode != B_SMALL && mode != B_LARGE) {
		for (i = 0; i < n; i++) {
			uint64_t t = now_ns();

			bench_send(&ch, MW_DATA, src, len);
			mw_channel_flush(&ch);
			bench_recv(&ch, &f, &pl, mode == B_SPIN);
			mw_channel_done(&ch);
			rtts[i] = (double)(now_ns() - t) / 1000.0;
		}
	} else {
		for (i = 0; i < n; i++) {
			bench_send(&ch, MW_DATA, src, len);
			if ((i & 63) == 63)
				mw_channel_flush(&ch);
		}
		mw_channel_flush(&ch);
		bench_recv(&ch, &f, &pl, false); /* the peer's "all consumed" */
		mw_channel_done(&ch);
	}
	result = (double)(now_ns() - t0) / 1e9;
	if (waitpid(pid, &status, 0) != pid || !WIFEXITED(status) || WEXITSTATUS(status))
		die("peer failed");
	if (mode == B_SMALL)
		fprintf(stderr, "  small: %.1f M msg/s, %llu kicks\n", (double)n / result / 1e6,
			(unsigned long long)ch.kicks_tx);
	mw_channel_close(&ch);
	if (mode == B_SMALL)
		return (double)n / result;
	if (mode == B_LARGE)
		return (double)n * len / result / 1e9;
	qsort(rtts, (size_t)n, sizeof(rtts[0]), cmp_double);
	*p99 = rtts[(size_t)n * 99 / 100];
	return rtts[n / 2];
}

/* Bare eventfd ping-pong across CPUs 0 and 1: no channel at all. */
static double floor_rtt(double *p99)
{
	static double rtts[RTT_N];
	int a = eventfd(0, EFD_CLOEXEC), b = eventfd(0, EFD_CLOEXEC);
	uint64_t one = 1, v;
	pid_t pid;

	if (a < 0 || b < 0)
		die("eventfd");
	pid = fork();
	if (pid < 0)
		die("fork");
	if (pid == 0) {
		pin(1);
		for (int i = 0; i < RTT_N; i++) {
			if (read(a, &v, sizeof(v)) != sizeof(v) || write(b, &one, sizeof(one)) < 0)
				_exit(1);
		}
		_exit(0);
	}
	pin(0);
	for (int i = 0; i < RTT_N; i++) {
		uint64_t t = now_ns();

		if (write(a, &one, sizeof(one)) < 0 || read(b, &v, sizeof(v)) != sizeof(v))
			die("eventfd ping-pong");
		rtts[i] = (double)(now_ns() - t) / 1000.0;
	}
	waitpid(pid, NULL, 0);
	close(a);
	close(b);
	qsort(rtts, RTT_N, sizeof(rtts[0]), cmp_double);
	*p99 = rtts[RTT_N * 99 / 100];
	return rtts[RTT_N / 2];
}

static double median(double *v, int n)
{
	qsort(v, (size_t)n, sizeof(v[0]), cmp_double);
	return v[n / 2];
}

int main(int argc, char **argv)
{
	int rounds = argc > 1 ? atoi(argv[1]) : 5;
	double small[16], large[16], rtt[16], rtt99[16], spin[16], spin99[16];
	double one[16], one99[16], flr[16], flr99[16];

	if (getenv("MW_B5_LARGE_RING"))
		large_ring = (uint32_t)strtoul(getenv("MW_B5_LARGE_RING"), NULL, 0);
	if (rounds < 1 || rounds > 16)
		die("rounds must be 1..16");
	signal(SIGPIPE, SIG_IGN);
	for (int r = 0; r < rounds; r++) {
		small[r] = run(B_SMALL, NULL);
		large[r] = run(B_LARGE, NULL);
		rtt[r] = run(B_RTT, &rtt99[r]);
		spin[r] = run(B_SPIN, &spin99[r]);
		one[r] = run(B_RTT_ONECPU, &one99[r]);
		flr[r] = floor_rtt(&flr99[r]);
		fprintf(stderr,
			"round %d: %.2f M msg/s, %.2f GB/s, rtt %.2f/%.2f us, spin %.2f/%.2f us, "
			"onecpu %.2f/%.2f us, floor %.2f/%.2f us\n",
			r + 1, small[r] / 1e6, large[r], rtt[r], rtt99[r], spin[r], spin99[r], one[r],
			one99[r], flr[r], flr99[r]);
	}
	printf("rounds: %d\n", rounds);
	printf("msgs_per_s_64B: %.0f\n", median(small, rounds));
	printf("gb_per_s_64KiB: %.2f\n", median(large, rounds));
	printf("rtt_wakeup_p50_us: %.2f\n", median(rtt, rounds));
	printf("rtt_wakeup_p99_us: %.2f\n", median(rtt99, rounds));
	printf("rtt_busypoll_p50_us: %.2f\n", median(spin, rounds));
	printf("rtt_busypoll_p99_us: %.2f\n", median(spin99, rounds));
	printf("rtt_wakeup_onecpu_p50_us: %.2f\n", median(one, rounds));
	printf("rtt_wakeup_onecpu_p99_us: %.2f\n", median(one99, rounds));
	printf("rtt_eventfd_floor_p50_us: %.2f\n", median(flr, rounds));
	printf("rtt_eventfd_floor_p99_us: %.2f\n", median(flr99, rounds));
	return 0;
}
