/* SPDX-License-Identifier: MIT */
/* bench_channel.c - B5: the INS channel alone (local backend, two processes, one core each) */
#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <sched.h>
#include <stdatomic.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
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
 *   large:  frames of 64 KiB payload through a 4 MiB ring (the shipped
 *           ring_size), copied in and out; large_1m: the same through a 1 MiB
 *           ring, which stays in a core's 2 MiB L2.
 *   rtt:    1-frame ping-pong, both sides sleeping on their eventfd every time.
 *   spin:   the same ping-pong busy-polling (no sleep, no kick), for comparison.
 *   spinsleep: the sleeping ping-pong, but each side looks again for up to
 *           SPINSLEEP_US before it sleeps (MW_B5_SPIN_US=n applies such a
 *           spin to every other mode too).
 *   rtt_onecpu: the sleeping ping-pong with both processes on CPU 0.
 *   floor:  bare eventfd + poll() ping-pong across the two CPUs, no channel:
 *           the platform's wake-up cost, which bounds rtt from below.
 *   copy floor: 64 KiB blocks copied in and out through a bare spinning
 *           shared buffer (4 MiB and 1 MiB): the platform's limit for large.
 * Every side sleeps on its eventfd whenever it cannot progress (never spins in
 * small/large).  Medians of the rounds are printed last as "name: value".
 */

#if defined(__x86_64__) || defined(__i386__)
#define bench_relax() __builtin_ia32_pause()
#else
#define bench_relax() atomic_signal_fence(memory_order_seq_cst)
#endif

enum bench_mode { B_SMALL, B_LARGE, B_LARGE_1M, B_RTT, B_SPIN, B_RTT_SPINSLEEP, B_RTT_ONECPU };

#define SMALL_LEN 64u
#define SMALL_N 20000000ull
#define LARGE_LEN (64u * 1024u)
#define LARGE_N 100000ull
#define RTT_N 20000
#define WAIT_MS 10000
/* The spin-then-sleep ping-pong looks again for this long before it sleeps. */
#define SPINSLEEP_US 20u

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

/*
 * Spin-then-sleep policy (what an event loop can do with the unchanged API):
 * before announcing sleep, look again for up to spin_us; recv() on an empty
 * ring and a failed reserve() cost one cached load each.  0 = sleep at once.
 */
static uint32_t spin_us, env_spin_us;

static bool spin_expired(uint64_t *deadline)
{
	if (!*deadline) {
		*deadline = now_ns() + (uint64_t)spin_us * 1000u;
		return false;
	}
	return now_ns() >= *deadline;
}

/* Next frame, sleeping on the eventfd when there is none. */
static void bench_recv(struct mw_channel *ch, struct mw_frame *f, const void **pl, bool spin)
{
	uint64_t deadline = 0;
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
		if (spin_us && !spin_expired(&deadline)) {
			bench_relax();
			continue;
		}
		deadline = 0;
		if (mw_channel_sleep(ch))
			bench_block(ch);
	}
}

static void bench_send(struct mw_channel *ch, uint16_t type, const void *src, uint32_t len)
{
	uint64_t deadline = 0;
	void *p;

	while (!(p = mw_channel_reserve(ch, type, 1, len))) {
		if (ch->dead_reason[0])
			die(ch->dead_reason);
		if (spin_us && !spin_expired(&deadline)) {
			mw_channel_flush(ch);
			bench_relax();
			continue;
		}
		deadline = 0;
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

	if (mode != B_SMALL && mode != B_LARGE && mode != B_LARGE_1M) {
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
	bool large = mode == B_LARGE || mode == B_LARGE_1M, bulk = large || mode == B_SMALL;
	uint32_t ring = mode == B_LARGE ? large_ring : mode == B_LARGE_1M ? 1u << 20 : 4u << 20;
	uint32_t len = large ? LARGE_LEN : mode == B_SMALL ? SMALL_LEN : 16;
	uint64_t n = large ? LARGE_N : mode == B_SMALL ? SMALL_N : RTT_N;
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
	spin_us = mode == B_RTT_SPINSLEEP ? SPINSLEEP_US : env_spin_us; /* the child inherits it */
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
	if (!bulk) {
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
	if (bulk)
		fprintf(stderr, "  %s (ring %u KiB): %.2f s, %llu frames, %llu kicks, %llu full\n",
			mode == B_SMALL ? "64 B" : "64 KiB", ring >> 10, result,
			(unsigned long long)n, (unsigned long long)ch.kicks_tx,
			(unsigned long long)ch.full_events);
	mw_channel_close(&ch);
	if (mode == B_SMALL)
		return (double)n / result;
	if (large)
		return (double)n * len / result / 1e9;
	qsort(rtts, (size_t)n, sizeof(rtts[0]), cmp_double);
	*p99 = rtts[(size_t)n * 99 / 100];
	return rtts[n / 2];
}

/*
 * Bare copy floor: 64 KiB blocks through a @ring-byte shared buffer between
 * CPUs 0 and 1, copied in and out, both sides spinning on two atomic indices;
 * no records, no checks, no sleeping.  What the platform allows the 64 KiB test.
 */
static double copy_floor(uint32_t ring)
{
	static uint8_t src[LARGE_LEN], sink[LARGE_LEN];
	uint8_t *m = mmap(NULL, 4096 + (size_t)ring, PROT_READ | PROT_WRITE,
			  MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	_Atomic uint64_t *head, *tail;
	uint64_t h = 0, t0;
	double secs;
	pid_t pid;

	if (m == MAP_FAILED)
		die("mmap");
	head = (_Atomic uint64_t *)m;
	tail = (_Atomic uint64_t *)(m + 64);
	memset(src, 0x5a, sizeof(src));
	pid = fork();
	if (pid < 0)
		die("fork");
	if (pid == 0) {
		uint64_t t = 0;

		pin(1);
		for (uint64_t i = 0; i < LARGE_N; i++) {
			while (atomic_load_explicit(head, memory_order_acquire) == t)
				bench_relax();
			memcpy(sink, m + 4096 + t % ring, LARGE_LEN);
			t += LARGE_LEN;
			atomic_store_explicit(tail, t, memory_order_release);
		}
		_exit(sink[0] == 0x5a ? 0 : 1);
	}
	pin(0);
	t0 = now_ns();
	for (uint64_t i = 0; i < LARGE_N; i++) {
		while (h - atomic_load_explicit(tail, memory_order_acquire) >= ring)
			bench_relax();
		memcpy(m + 4096 + h % ring, src, LARGE_LEN);
		h += LARGE_LEN;
		atomic_store_explicit(head, h, memory_order_release);
	}
	while (atomic_load_explicit(tail, memory_order_acquire) != h)
		bench_relax();
	secs = (double)(now_ns() - t0) / 1e9;
	waitpid(pid, NULL, 0);
	munmap(m, 4096 + (size_t)ring);
	return (double)LARGE_N * LARGE_LEN / secs / 1e9;
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

/* A whole number in [min, max] (base 0: 0x... accepted), or die naming @what. */
static unsigned long parse_num(const char *what, const char *text, unsigned long min,
			       unsigned long max)
{
	char *end;
	unsigned long v;

	errno = 0;
	v = strtoul(text, &end, 0);
	if (errno || end == text || *end || text[0] == '-' || v < min || v > max) {
		fprintf(stderr, "bench_channel: %s '%s' is not a number in %lu..%lu\n", what, text,
			min, max);
		exit(1);
	}
	return v;
}

static double median(double *v, int n)
{
	qsort(v, (size_t)n, sizeof(v[0]), cmp_double);
	return v[n / 2];
}

int main(int argc, char **argv)
{
	int rounds = argc > 1 ? (int)parse_num("rounds", argv[1], 0, INT_MAX) : 5;
	const char *env;
	double small[16], large[16], rtt[16], rtt99[16], spin[16], spin99[16];
	double one[16], one99[16], flr[16], flr99[16], large1m[16], ss[16], ss99[16];
	double cf4[16], cf1[16];

	env = getenv("MW_B5_SPIN_US");
	if (env)
		env_spin_us = (uint32_t)parse_num("MW_B5_SPIN_US", env, 0, UINT32_MAX);
	env = getenv("MW_B5_LARGE_RING");
	if (env)
		large_ring = (uint32_t)parse_num("MW_B5_LARGE_RING", env, 1, UINT32_MAX);
	if (rounds < 1 || rounds > 16)
		die("rounds must be 1..16");
	signal(SIGPIPE, SIG_IGN);
	for (int r = 0; r < rounds; r++) {
		small[r] = run(B_SMALL, NULL);
		large[r] = run(B_LARGE, NULL);
		large1m[r] = run(B_LARGE_1M, NULL);
		rtt[r] = run(B_RTT, &rtt99[r]);
		spin[r] = run(B_SPIN, &spin99[r]);
		ss[r] = run(B_RTT_SPINSLEEP, &ss99[r]);
		one[r] = run(B_RTT_ONECPU, &one99[r]);
		flr[r] = floor_rtt(&flr99[r]);
		cf4[r] = copy_floor(large_ring);
		cf1[r] = copy_floor(1u << 20);
		fprintf(stderr,
			"round %d: %.2f M msg/s, %.2f GB/s (1 MiB ring %.2f), rtt %.2f/%.2f us, "
			"busy-poll %.2f/%.2f us, spin-then-sleep %.2f/%.2f us, onecpu %.2f/%.2f us, "
			"floor %.2f/%.2f us, copy floor %.2f GB/s (1 MiB %.2f)\n",
			r + 1, small[r] / 1e6, large[r], large1m[r], rtt[r], rtt99[r], spin[r],
			spin99[r], ss[r], ss99[r], one[r], one99[r], flr[r], flr99[r], cf4[r], cf1[r]);
	}
	printf("rounds: %d\n", rounds);
	printf("msgs_per_s_64B: %.0f\n", median(small, rounds));
	printf("gb_per_s_64KiB: %.2f\n", median(large, rounds));
	printf("gb_per_s_64KiB_ring1MiB: %.2f\n", median(large1m, rounds));
	printf("rtt_wakeup_p50_us: %.2f\n", median(rtt, rounds));
	printf("rtt_wakeup_p99_us: %.2f\n", median(rtt99, rounds));
	printf("rtt_busypoll_p50_us: %.2f\n", median(spin, rounds));
	printf("rtt_busypoll_p99_us: %.2f\n", median(spin99, rounds));
	printf("rtt_spin%uus_then_sleep_p50_us: %.2f\n", SPINSLEEP_US, median(ss, rounds));
	printf("rtt_spin%uus_then_sleep_p99_us: %.2f\n", SPINSLEEP_US, median(ss99, rounds));
	printf("rtt_wakeup_onecpu_p50_us: %.2f\n", median(one, rounds));
	printf("rtt_wakeup_onecpu_p99_us: %.2f\n", median(one99, rounds));
	printf("rtt_eventfd_floor_p50_us: %.2f\n", median(flr, rounds));
	printf("rtt_eventfd_floor_p99_us: %.2f\n", median(flr99, rounds));
	printf("copy_floor_gb_per_s_64KiB: %.2f\n", median(cf4, rounds));
	printf("copy_floor_gb_per_s_64KiB_ring1MiB: %.2f\n", median(cf1, rounds));
	return 0;
}
