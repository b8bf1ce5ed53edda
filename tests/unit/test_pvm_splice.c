/* SPDX-License-Identifier: MIT */
/* test_pvm_splice.c - the splicer moves an app's bytes into a pipe, and never makes mw-pvm's loop wait */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "pvm/pvm_splice.h"

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* An app's socket pair (non-blocking, as mw-pvm's end is) and a data pipe. */
static void setup(int app[2], int pp[2])
{
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, app), 0);
	assert_int_equal(pipe2(pp, O_NONBLOCK), 0);
}

/* Wait for the job to end (at most 10 s); its result. */
static ssize_t wait_result(struct pvm_splicer *sp, int *err)
{
	struct pollfd p = { .fd = pvm_splicer_fd(sp), .events = POLLIN };
	ssize_t n = -2;

	assert_int_equal(poll(&p, 1, 10000), 1);
	assert_true(pvm_splicer_result(sp, &n, err));
	return n;
}

static void test_moves_bytes_in_order(void **state)
{
	int app[2], pp[2], err = 0;
	char buf[4096], got[4096];
	struct pvm_splicer *sp;
	ssize_t n;

	setup(app, pp);
	sp = pvm_splicer_new(pp[1]);
	assert_non_null(sp);
	assert_false(pvm_splicer_result(sp, &n, &err)); /* no job: nothing to report */
	for (int round = 0; round < 50; round++) {
		memset(buf, 'a' + round % 26, sizeof(buf));
		assert_int_equal(write(app[0], buf, 1000 + (size_t)round), 1000 + round);
		assert_int_equal(pvm_splicer_submit(sp, app[1], sizeof(buf)), 0);
		if (round == 0) /* one job at a time (or it just ended: then EBUSY is not seen) */
			assert_true(pvm_splicer_submit(sp, app[1], 1) == -EBUSY ||
				    pvm_splicer_running_ms(sp) < 0);
		n = wait_result(sp, &err);
		assert_int_equal(n, 1000 + round);
		assert_int_equal(read(pp[0], got, sizeof(got)), n);
		assert_memory_equal(got, buf, (size_t)n);
	}
	/* nothing to read: EAGAIN, as splice() says it */
	assert_int_equal(pvm_splicer_submit(sp, app[1], sizeof(buf)), 0);
	assert_int_equal(wait_result(sp, &err), -1);
	assert_int_equal(err, EAGAIN);
	/* the app's EOF: 0 */
	close(app[0]);
	assert_int_equal(pvm_splicer_submit(sp, app[1], sizeof(buf)), 0);
	assert_int_equal(wait_result(sp, &err), 0);
	pvm_splicer_free(sp);
	close(app[1]);
	close(pp[0]);
}

struct holder {
	int pipe_rd, sock;
	_Atomic int tid;
	ssize_t result;
};

/* A hostile INS: splice out of the data pipe into a full blocking socket, holding the pipe's lock. */
static void *hold_pipe(void *arg)
{
	struct holder *h = arg;

	h->tid = (int)syscall(SYS_gettid);
	h->result = splice(h->pipe_rd, NULL, h->sock, NULL, 1 << 20, 0);
	return NULL;
}

/* Is thread @tid asleep (state S, in its send), not about to start? */
static bool sleeping(int tid)
{
	char path[64], line[256], *p;
	FILE *f;
	bool s = false;

	snprintf(path, sizeof(path), "/proc/self/task/%d/stat", tid);
	f = fopen(path, "r");
	if (!f)
		return false;
	if (fgets(line, sizeof(line), f) && (p = strrchr(line, ')')))
		s = p[1] == ' ' && p[2] == 'S';
	fclose(f);
	return s;
}

static void test_held_pipe_never_blocks(void **state)
{
	int app[2], pp[2], sink[2], fl, sndbuf = 4096, err = 0;
	static char fill[1 << 16];
	struct holder h = { 0 };
	struct pvm_splicer *sp;
	size_t filled = 0, drained = 0;
	struct pollfd pfd;
	pthread_t t;
	int64_t t0, took;
	char late[8];
	ssize_t n;

	signal(SIGPIPE, SIG_IGN);
	alarm(60); /* a splice on the caller's thread would sleep until the holder lets go */
	setup(app, pp);
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sink), 0);
	assert_int_equal(setsockopt(sink[0], SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof(sndbuf)), 0);
	/* Fill the sink while non-blocking, then make it blocking: the next send waits. */
	fl = fcntl(sink[0], F_GETFL);
	assert_int_equal(fcntl(sink[0], F_SETFL, fl | O_NONBLOCK), 0);
	while ((n = write(sink[0], fill, sizeof(fill))) > 0)
		filled += (size_t)n;
	assert_int_equal(fcntl(sink[0], F_SETFL, fl), 0);
	assert_int_equal(write(pp[1], fill, 8192), 8192); /* bytes for the holder to send */
	h.pipe_rd = pp[0];
	h.sock = sink[0];
	sp = pvm_splicer_new(pp[1]);
	assert_non_null(sp);
	assert_int_equal(pthread_create(&t, NULL, hold_pipe, &h), 0);
	t0 = now_ms();
	while (!(h.tid && sleeping(h.tid)) && now_ms() - t0 < 20000)
		usleep(1000); /* until the holder sleeps in its send, the pipe locked */
	assert_true(h.tid && sleeping(h.tid));

	/* The loop submits and goes on: nothing it calls waits for the pipe. */
	assert_int_equal(write(app[0], "late", 4), 4);
	assert_int_equal(pvm_splicer_submit(sp, app[1], 4), 0);
	pfd = (struct pollfd){ .fd = pvm_splicer_fd(sp), .events = POLLIN };
	assert_int_equal(poll(&pfd, 1, 300), 0); /* no result: the job is stuck */
	t0 = now_ms();
	while (pvm_splicer_running_ms(sp) < 0 && now_ms() - t0 < 20000)
		usleep(1000);
	usleep(50 * 1000);
	assert_true(pvm_splicer_running_ms(sp) >= 40); /* in splice(), behind the holder */
	assert_false(pvm_splicer_result(sp, &n, &err));
	assert_int_equal(pvm_splicer_submit(sp, app[1], 4), -EBUSY);
	t0 = now_ms();
	pvm_splicer_free(sp); /* never blocks: the thread cleans up later */
	took = now_ms() - t0;
	assert_true(took < 1000);
	close(app[1]); /* the loop closes its fd: the stuck splice has its own */

	/* The INS lets go (its peer reads all): the holder's send and the stuck splice finish. */
	while (drained < filled + 8192) {
		n = read(sink[1], fill, sizeof(fill));
		assert_true(n > 0);
		drained += (size_t)n;
	}
	pthread_join(t, NULL);
	assert_int_equal(h.result, 8192);
	/* The stuck splice moved the 4 late bytes from its own duplicate, then the
	 * thread closed the pipe's write end and freed itself: EOF after them. */
	pfd = (struct pollfd){ .fd = pp[0], .events = POLLIN };
	assert_int_equal(fcntl(pp[0], F_SETFL, fcntl(pp[0], F_GETFL) & ~O_NONBLOCK), 0);
	assert_int_equal(poll(&pfd, 1, 20000), 1);
	assert_int_equal(read(pp[0], late, sizeof(late)), 4);
	assert_memory_equal(late, "late", 4);
	assert_int_equal(read(pp[0], late, sizeof(late)), 0); /* every writer gone */
	alarm(0);
	close(sink[0]);
	close(sink[1]);
	close(app[0]);
	close(pp[0]);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_moves_bytes_in_order),
		cmocka_unit_test(test_held_pipe_never_blocks),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
