/* SPDX-License-Identifier: MIT */
/* test_ctl_server.c - common/ctl_server.c: one line in, the whole answer out, bounded
 * clients, lines and time, nothing blocking the loop */
#include <errno.h>
#include <fcntl.h>
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
#include <unistd.h>

#include <cmocka.h>

#include "common/ctl_server.h"

struct fixture {
	struct ev_loop *loop;
	struct mw_ctl_server *s;
	char path[108];
	int runs;
	size_t big; /* the "big" command answers this many bytes */
};

/* The daemon's side: echo the line; "big" answers more than the limit. */
static void run(void *ctx, char *line, struct mw_ctl_out *o)
{
	struct fixture *f = ctx;
	size_t i;

	f->runs++;
	if (!strcmp(line, "big")) {
		mw_ctl_outf(o, "ok\n");
		for (i = 0; i < f->big / 64; i++)
			mw_ctl_outf(o, "%063zu\n", i);
		return;
	}
	mw_ctl_outf(o, "ok\nline %s\n", line);
}

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	char err[256];

	assert_non_null(f);
	f->loop = ev_loop_new(EVFLAG_AUTO);
	snprintf(f->path, sizeof(f->path), "/tmp/mw-test-ctl.%d", (int)getpid());
	assert_int_equal(mw_ctl_server_open(&f->s, f->loop, f->path, 2, run, f, err, sizeof(err)),
			 0);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;

	mw_ctl_server_close(f->s);
	assert_int_equal(access(f->path, F_OK), -1); /* the socket file is gone */
	ev_loop_destroy(f->loop);
	free(f);
	return 0;
}

static int client(struct fixture *f)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0);

	assert_true(fd >= 0);
	snprintf(sun.sun_path, sizeof(sun.sun_path), "%s", f->path);
	assert_int_equal(connect(fd, (struct sockaddr *)&sun, sizeof(sun)), 0);
	return fd;
}

/* Run the loop until @fd reads EOF (or @secs pass); the answer into @buf. */
static size_t answer(struct fixture *f, int fd, char *buf, size_t cap, double secs)
{
	ev_tstamp end = ev_time() + secs;
	size_t len = 0;
	ssize_t n;

	while (ev_time() < end) {
		ev_run(f->loop, EVRUN_NOWAIT);
		n = read(fd, buf + len, cap - 1 - len);
		if (n == 0)
			break;
		if (n > 0)
			len += (size_t)n;
		else if (errno == EAGAIN)
			usleep(1000);
		else
			break;
	}
	buf[len] = 0;
	return len;
}

static void test_answers_one_line(void **state)
{
	struct fixture *f = *state;
	char buf[256];
	struct stat st;
	int fd;

	assert_int_equal(stat(f->path, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	fd = client(f);
	assert_int_equal(write(fd, "hello\r\n", 7), 7);
	answer(f, fd, buf, sizeof(buf), 5);
	assert_string_equal(buf, "ok\nline hello\n"); /* "\r" dropped, then EOF */
	close(fd);
	assert_int_equal(f->runs, 1);
}

static void test_line_too_long(void **state)
{
	struct fixture *f = *state;
	char line[MW_CTL_LINE_MAX + 10], buf[256];
	int fd;

	memset(line, 'a', sizeof(line));
	fd = client(f);
	assert_int_equal(write(fd, line, sizeof(line)), (ssize_t)sizeof(line));
	answer(f, fd, buf, sizeof(buf), 5);
	assert_non_null(strstr(buf, "error command longer than"));
	assert_int_equal(f->runs, 0);
	close(fd);
}

static void test_answer_bounded(void **state)
{
	struct fixture *f = *state;
	char *buf = malloc(2 * MW_CTL_OUT_MAX);
	size_t len;
	int fd;

	f->big = 2 * MW_CTL_OUT_MAX;
	fd = client(f);
	assert_int_equal(write(fd, "big\n", 4), 4);
	len = answer(f, fd, buf, 2 * MW_CTL_OUT_MAX, 10);
	assert_true(len > MW_CTL_OUT_MAX / 2 && len <= MW_CTL_OUT_MAX);
	assert_memory_equal(buf, "ok\n", 3);
	close(fd);
	free(buf);
}

/* A client that never sends is dropped after MW_CTL_TIMEOUT_S, and while two
 * silent clients hold both slots, a third waits in the backlog until one goes. */
static void test_silent_clients_dropped(void **state)
{
	struct fixture *f = *state;
	ev_tstamp t0 = ev_time();
	int a = client(f), b = client(f), c;
	char buf[256];

	ev_run(f->loop, EVRUN_NOWAIT);
	ev_run(f->loop, EVRUN_NOWAIT);
	c = client(f);
	assert_int_equal(write(c, "third\n", 6), 6);
	answer(f, c, buf, sizeof(buf), 10);
	assert_string_equal(buf, "ok\nline third\n");
	assert_true(ev_time() - t0 >= MW_CTL_TIMEOUT_S - 0.1); /* it waited for a slot */
	assert_int_equal(read(a, buf, sizeof(buf)), 0);	       /* dropped: EOF */
	close(a);
	close(b);
	close(c);
}

/* Closing the server with clients still connected frees them (ASan sees leaks). */
static void test_close_with_clients(void **state)
{
	struct fixture *f = *state;
	int a = client(f);

	ev_run(f->loop, EVRUN_NOWAIT);
	mw_ctl_server_close(f->s);
	f->s = NULL;
	close(a);
	{
		char err[256];

		assert_int_equal(mw_ctl_server_open(&f->s, f->loop, f->path, 2, run, f, err,
						    sizeof(err)),
				 0);
	}
}

static void test_bad_path(void **state)
{
	struct fixture *f = *state;
	struct mw_ctl_server *s = NULL;
	char path[200], err[256];

	memset(path, 'x', sizeof(path) - 1);
	path[sizeof(path) - 1] = 0;
	assert_int_equal(mw_ctl_server_open(&s, f->loop, path, 1, run, f, err, sizeof(err)),
			 -ENAMETOOLONG);
	assert_non_null(strstr(err, "path longer than"));
	assert_int_equal(mw_ctl_server_open(&s, f->loop, "/nonexistent-dir/ctl", 1, run, f, err,
					    sizeof(err)),
			 -ENOENT);
	assert_non_null(strstr(err, "/nonexistent-dir/ctl"));
	assert_null(s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_answers_one_line, setup, teardown),
		cmocka_unit_test_setup_teardown(test_line_too_long, setup, teardown),
		cmocka_unit_test_setup_teardown(test_answer_bounded, setup, teardown),
		cmocka_unit_test_setup_teardown(test_silent_clients_dropped, setup, teardown),
		cmocka_unit_test_setup_teardown(test_close_with_clients, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bad_path, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
