/* SPDX-License-Identifier: MIT */
/* test_log.c - log levels, line formats (plain and journald), atomic lines, rate limiting */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/log.h"

/* stderr is swapped for a pipe around each test so lines can be read back. */
struct capture {
	int saved_stderr;
	int rd;
};

static int capture_setup(void **state)
{
	static struct capture cap;
	int p[2];

	assert_int_equal(pipe2(p, O_CLOEXEC), 0);
	assert_int_equal(fcntl(p[0], F_SETFL, O_NONBLOCK), 0);
	/* Big enough for the thread test: a full pipe would block the writers. */
	fcntl(p[1], F_SETPIPE_SZ, 1 << 20);
	cap.saved_stderr = dup(STDERR_FILENO);
	assert_true(cap.saved_stderr >= 0);
	assert_int_equal(dup2(p[1], STDERR_FILENO), STDERR_FILENO);
	close(p[1]);
	cap.rd = p[0];
	unsetenv("JOURNAL_STREAM");
	*state = &cap;
	return 0;
}

static int capture_teardown(void **state)
{
	struct capture *cap = *state;

	dup2(cap->saved_stderr, STDERR_FILENO);
	close(cap->saved_stderr);
	close(cap->rd);
	unsetenv("JOURNAL_STREAM");
	return 0;
}

/* Everything written so far (the writers are this process, so it is all there). */
static size_t drain(struct capture *cap, char *buf, size_t len)
{
	size_t used = 0;
	ssize_t n;

	while (used < len - 1 && (n = read(cap->rd, buf + used, len - 1 - used)) > 0)
		used += (size_t)n;
	buf[used] = '\0';
	return used;
}

static void set_journal_stream_to_stderr(void)
{
	struct stat st;
	char v[64];

	assert_int_equal(fstat(STDERR_FILENO, &st), 0);
	snprintf(v, sizeof(v), "%llu:%llu", (unsigned long long)st.st_dev,
		 (unsigned long long)st.st_ino);
	assert_int_equal(setenv("JOURNAL_STREAM", v, 1), 0);
}

static void test_level_parse(void **state)
{
	assert_int_equal(mw_log_level_parse("error"), MW_LOG_ERR);
	assert_int_equal(mw_log_level_parse("warning"), MW_LOG_WARN);
	assert_int_equal(mw_log_level_parse("notice"), MW_LOG_NOTICE);
	assert_int_equal(mw_log_level_parse("info"), MW_LOG_INFO);
	assert_int_equal(mw_log_level_parse("debug"), MW_LOG_DEBUG);
	assert_int_equal(mw_log_level_parse("warn"), -1);
	assert_int_equal(mw_log_level_parse("INFO"), -1);
	assert_int_equal(mw_log_level_parse(""), -1);
	assert_int_equal(mw_log_level_parse(NULL), -1);
}

static void test_plain_format_and_threshold(void **state)
{
	struct capture *cap = *state;
	char buf[4096];

	mw_log_init("mw-test", MW_LOG_NOTICE);
	assert_int_equal(mw_log_get_level(), MW_LOG_NOTICE);
	mw_err("disk %s", "full");
	mw_warn("w %d", 2);
	mw_notice("n\n"); /* the trailing newline is not doubled */
	mw_info("dropped");
	mw_debug("dropped too");
	drain(cap, buf, sizeof(buf));
	assert_string_equal(buf, "mw-test: error: disk full\nmw-test: warning: w 2\n"
				 "mw-test: notice: n\n");

	mw_log_set_level(MW_LOG_DEBUG);
	mw_debug("now %s", "visible");
	drain(cap, buf, sizeof(buf));
	assert_string_equal(buf, "mw-test: debug: now visible\n");
}

static void test_journald_prefix(void **state)
{
	struct capture *cap = *state;
	char buf[4096];

	set_journal_stream_to_stderr();
	mw_log_init("mw-test", MW_LOG_INFO);
	mw_err("e");
	mw_notice("n %d", 5);
	mw_info("i");
	mw_debug("d");
	drain(cap, buf, sizeof(buf));
	assert_string_equal(buf, "<3>e\n<5>n 5\n<6>i\n");
}

/* A JOURNAL_STREAM inherited by a process whose stderr went elsewhere is ignored. */
static void test_journald_mismatch_is_plain(void **state)
{
	struct capture *cap = *state;
	char buf[4096];

	assert_int_equal(setenv("JOURNAL_STREAM", "1:2", 1), 0);
	mw_log_init("mw-test", MW_LOG_INFO);
	mw_err("e");
	drain(cap, buf, sizeof(buf));
	assert_string_equal(buf, "mw-test: error: e\n");
}

static void test_long_line_cut_to_one_line(void **state)
{
	struct capture *cap = *state;
	char big[3000], buf[8192];
	size_t n;

	memset(big, 'x', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	mw_log_init("mw-test", MW_LOG_INFO);
	mw_err("%s", big);
	n = drain(cap, buf, sizeof(buf));
	assert_true(n > 900 && n <= 1024);
	assert_int_equal(buf[n - 1], '\n');
	assert_ptr_equal(strchr(buf, '\n'), buf + n - 1);
	assert_int_equal(strncmp(buf, "mw-test: error: xxx", 19), 0);
}

#define LOG_THREADS 4
#define LOG_LINES   200

static void *log_thread(void *arg)
{
	int i, id = (int)(intptr_t)arg;

	for (i = 0; i < LOG_LINES; i++)
		mw_info("thread %d line %03d %s", id, i, "................................");
	return NULL;
}

/* Every line arrives whole: one write(2) per line. */
static void test_threads_do_not_interleave(void **state)
{
	struct capture *cap = *state;
	static char buf[LOG_THREADS * LOG_LINES * 128];
	pthread_t t[LOG_THREADS];
	int i, seen[LOG_THREADS] = { 0 }, lines = 0;
	char *line, *save = NULL;

	mw_log_init("mw-test", MW_LOG_INFO);
	for (i = 0; i < LOG_THREADS; i++)
		assert_int_equal(pthread_create(&t[i], NULL, log_thread, (void *)(intptr_t)i), 0);
	for (i = 0; i < LOG_THREADS; i++)
		pthread_join(t[i], NULL);
	drain(cap, buf, sizeof(buf));
	for (line = strtok_r(buf, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		const size_t at = strlen("mw-test: info: thread ");
		char want[128];
		int id;

		id = strlen(line) > at ? line[at] - '0' : -1;
		if (id < 0 || id >= LOG_THREADS)
			fail_msg("mangled line: \"%s\"", line);
		/* Whole, and each thread's lines in order. */
		snprintf(want, sizeof(want), "mw-test: info: thread %d line %03d %s", id, seen[id],
			 "................................");
		assert_string_equal(line, want);
		seen[id]++;
		lines++;
	}
	assert_int_equal(lines, LOG_THREADS * LOG_LINES);
}

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static void test_ratelimit_window(void **state)
{
	struct capture *cap = *state;
	struct mw_ratelimit rl = { 0 };
	struct timespec pause = { 0, 120 * 1000000L };
	char buf[4096];
	int i, ok = 0;

	mw_log_init("mw-test", MW_LOG_INFO);
	/*
	 * The 8 calls must fall in one 100 ms window; a loaded machine may
	 * preempt us for longer in between, which is then seen on the clock
	 * and the burst is tried again (bounded), never judged.
	 */
	for (int attempt = 0; attempt < 20; attempt++) {
		uint64_t t0 = now_ms();

		memset(&rl, 0, sizeof(rl));
		for (i = 0, ok = 0; i < 8; i++)
			ok += mw_ratelimit_ok(&rl, 3, 100);
		if (now_ms() - t0 < 90)
			break;
		drain(cap, buf, sizeof(buf));
	}
	assert_int_equal(ok, 3);
	assert_int_equal(rl.printed, 3);
	assert_int_equal(rl.suppressed, 5);
	drain(cap, buf, sizeof(buf));
	assert_string_equal(buf, "");

	/* The window is the behaviour under test, so here time itself must pass. */
	nanosleep(&pause, NULL);
	assert_true(mw_ratelimit_ok(&rl, 3, 100));
	assert_int_equal(rl.suppressed, 0);
	assert_int_equal(rl.printed, 1);
	drain(cap, buf, sizeof(buf));
	assert_string_equal(buf, "mw-test: notice: 5 similar messages suppressed\n");
}

static void test_ratelimited_macro(void **state)
{
	struct capture *cap = *state;
	char buf[8192], *p;
	int i, lines = 0;

	mw_log_init("mw-test", MW_LOG_INFO);
	for (i = 0; i < 50; i++)
		mw_log_ratelimited(MW_LOG_WARN, "hot path %d", i);
	drain(cap, buf, sizeof(buf));
	for (p = buf; (p = strchr(p, '\n')); p++)
		lines++;
	assert_int_equal(lines, 10);
	assert_non_null(strstr(buf, "mw-test: warning: hot path 9\n"));
	assert_null(strstr(buf, "hot path 10\n"));

	/* Below the threshold the limiter is not even consulted. */
	for (i = 0; i < 50; i++)
		mw_log_ratelimited(MW_LOG_DEBUG, "quiet %d", i);
	drain(cap, buf, sizeof(buf));
	assert_string_equal(buf, "");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_level_parse),
		cmocka_unit_test_setup_teardown(test_plain_format_and_threshold, capture_setup,
						capture_teardown),
		cmocka_unit_test_setup_teardown(test_journald_prefix, capture_setup,
						capture_teardown),
		cmocka_unit_test_setup_teardown(test_journald_mismatch_is_plain, capture_setup,
						capture_teardown),
		cmocka_unit_test_setup_teardown(test_long_line_cut_to_one_line, capture_setup,
						capture_teardown),
		cmocka_unit_test_setup_teardown(test_threads_do_not_interleave, capture_setup,
						capture_teardown),
		cmocka_unit_test_setup_teardown(test_ratelimit_window, capture_setup,
						capture_teardown),
		cmocka_unit_test_setup_teardown(test_ratelimited_macro, capture_setup,
						capture_teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
