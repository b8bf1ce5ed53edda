/* SPDX-License-Identifier: MIT */
/* test_sdnotify.c - the real daemons speak sd_notify (READY, STATUS, WATCHDOG, STOPPING) over a
 * real datagram socket */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#define WAIT_MS 10000 /* generous for sanitizer builds; every wait is bounded by it */

struct fixture {
	char dir[64];
	char sock_path[96];
	char conf_path[128];
	char binary[4096]; /* mw-balancer */
	char build[4000];
	int sock;   /* our end of NOTIFY_SOCKET */
	int err_rd; /* the child's stderr */
	pid_t pid;
};

static int fixture_setup(void **state)
{
	static struct fixture f;
	const char *build = getenv("MW_BUILD_DIR");
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	FILE *fp;

	memset(&f, 0, sizeof(f));
	f.sock = f.err_rd = -1;
	if (!build) {
		print_error("MW_BUILD_DIR is not set (run through ctest)\n");
		return -1;
	}
	snprintf(f.build, sizeof(f.build), "%s", build);
	snprintf(f.binary, sizeof(f.binary), "%s/balancer/mw-balancer", build);
	if (access(f.binary, X_OK) < 0) {
		print_error("%s: %s\n", f.binary, strerror(errno));
		return -1;
	}
	snprintf(f.dir, sizeof(f.dir), "/tmp/mw-test-sdnotify-XXXXXX");
	if (!mkdtemp(f.dir))
		return -1;
	snprintf(f.sock_path, sizeof(f.sock_path), "%s/notify.sock", f.dir);
	snprintf(f.conf_path, sizeof(f.conf_path), "%s/mwcomms.conf", f.dir);

	fp = fopen(f.conf_path, "w");
	if (!fp)
		return -1;
	fprintf(fp, "common: { runtime_dir = \"%s/run\"; };\n", f.dir);
	/*
	 * The balancer spawns an INS in a namespace on a bridge: per-run tag,
	 * bridge and subnet, since another checkout's run of this test (or the
	 * ASan one) may overlap, and a shared name fails the spawn.
	 */
	fprintf(fp,
		"balancer: { control_socket = \"%s/run/balancer.sock\";\n"
		"            tag = \"s%d\"; bridge = \"mwsb%d\"; subnet = \"10.%d.%d.0/24\"; };\n",
		f.dir, (int)(getpid() % 100000), (int)(getpid() % 100000),
		150 + (int)(getpid() % 50), (int)(getpid() % 250));
	fprintf(fp, "pvm: { control_socket = \"%s/run/pvm.sock\";\n", f.dir);
	fprintf(fp, "       ins_socket = \"%s/run/pvm-ins.sock\"; };\n", f.dir);
	/* No mw-pvm listens there: mw-ins keeps retrying and never gets READY. */
	fprintf(fp, "ins: { pvm_socket = \"%s/run/no-pvm.sock\"; };\n", f.dir);
	fclose(fp);

	f.sock = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (f.sock < 0)
		return -1;
	snprintf(sun.sun_path, sizeof(sun.sun_path), "%s", f.sock_path);
	if (bind(f.sock, (struct sockaddr *)&sun, sizeof(sun)) < 0)
		return -1;
	*state = &f;
	return 0;
}

static int fixture_teardown(void **state)
{
	struct fixture *f = *state;
	char path[192];

	if (f->pid > 0) {
		kill(f->pid, SIGKILL);
		waitpid(f->pid, NULL, 0);
	}
	if (f->sock >= 0)
		close(f->sock);
	if (f->err_rd >= 0)
		close(f->err_rd);
	unlink(f->sock_path);
	unlink(f->conf_path);
	snprintf(path, sizeof(path), "%s/run", f->dir);
	rmdir(path);
	rmdir(f->dir);
	return 0;
}

/* Start @binary (-c the fixture config), with or without NOTIFY_SOCKET and a watchdog. */
static void spawn_bin(struct fixture *f, const char *binary, bool with_notify,
		      const char *watchdog_usec)
{
	int p[2];

	assert_int_equal(pipe2(p, O_CLOEXEC), 0);
	f->pid = fork();
	assert_true(f->pid >= 0);
	if (f->pid == 0) {
		dup2(p[1], STDERR_FILENO);
		if (with_notify)
			setenv("NOTIFY_SOCKET", f->sock_path, 1);
		else
			unsetenv("NOTIFY_SOCKET");
		if (watchdog_usec)
			setenv("WATCHDOG_USEC", watchdog_usec, 1);
		else
			unsetenv("WATCHDOG_USEC");
		unsetenv("WATCHDOG_PID");
		unsetenv("MW_CONFIG");
		execl(binary, binary, "-c", f->conf_path, (char *)NULL);
		_exit(127);
	}
	close(p[1]);
	f->err_rd = p[0];
}

/* Start mw-balancer on the fixture config. */
static void spawn(struct fixture *f, bool with_notify, const char *watchdog_usec)
{
	spawn_bin(f, f->binary, with_notify, watchdog_usec);
}

/* The next datagram, or fail after WAIT_MS. */
static void recv_notify(struct fixture *f, char *buf, size_t len)
{
	struct pollfd pfd = { .fd = f->sock, .events = POLLIN };
	ssize_t n;

	if (poll(&pfd, 1, WAIT_MS) != 1)
		fail_msg("no sd_notify message within %d ms", WAIT_MS);
	n = recv(f->sock, buf, len - 1, 0);
	assert_true(n > 0);
	buf[n] = '\0';
}

/* Read the child's stderr until @needle shows up (bounded by WAIT_MS). */
static void wait_stderr(struct fixture *f, const char *needle, char *buf, size_t len)
{
	struct pollfd pfd = { .fd = f->err_rd, .events = POLLIN };
	size_t used = strlen(buf);
	ssize_t n;

	while (!strstr(buf, needle)) {
		if (poll(&pfd, 1, WAIT_MS) != 1)
			fail_msg("\"%s\" not logged within %d ms; got:\n%s", needle, WAIT_MS, buf);
		n = read(f->err_rd, buf + used, len - 1 - used);
		if (n <= 0)
			fail_msg("stderr closed before \"%s\"; got:\n%s", needle, buf);
		used += (size_t)n;
		buf[used] = '\0';
	}
}

/* Reap the child within WAIT_MS and return its wait status. */
static int reap(struct fixture *f)
{
	struct timespec tick = { 0, 10 * 1000000L };
	int i, status;

	for (i = 0; i < WAIT_MS / 10; i++) {
		pid_t r = waitpid(f->pid, &status, WNOHANG);

		assert_true(r >= 0);
		if (r == f->pid) {
			f->pid = 0;
			return status;
		}
		nanosleep(&tick, NULL);
	}
	fail_msg("mw-balancer did not exit within %d ms", WAIT_MS);
	return -1;
}

static void assert_clean_exit(int status)
{
	if (!WIFEXITED(status))
		fail_msg("mw-balancer died with signal %d", WTERMSIG(status));
	assert_int_equal(WEXITSTATUS(status), 0);
}

/*
 * After READY the daemon's loop may still send STATUS lines (the balancer
 * reports its load every tick) and watchdog pings before it handles the
 * signal; under load any number of them can come first.  Read until
 * STOPPING=1 (bounded: 200 messages, each within WAIT_MS) and check the
 * order that is real: nothing but STATUS= and WATCHDOG=1 in between, in
 * particular no second READY.
 */
static void await_stopping(struct fixture *f)
{
	char msg[1024];
	int i;

	for (i = 0; i < 200; i++) {
		recv_notify(f, msg, sizeof(msg));
		if (!strcmp(msg, "STOPPING=1"))
			return;
		if (strncmp(msg, "STATUS=", strlen("STATUS=")) && strcmp(msg, "WATCHDOG=1"))
			fail_msg("before STOPPING=1: unexpected \"%s\"", msg);
	}
	fail_msg("no STOPPING=1 among 200 messages");
}

/* STOPPING=1 is the last word: once the daemon is reaped nothing follows it. */
static void assert_nothing_after_stopping(struct fixture *f)
{
	struct pollfd pfd = { .fd = f->sock, .events = POLLIN };
	char msg[1024];

	if (poll(&pfd, 1, 0) == 1) {
		recv_notify(f, msg, sizeof(msg));
		fail_msg("after STOPPING=1: \"%s\"", msg);
	}
}

static void test_ready_status_stopping(void **state)
{
	struct fixture *f = *state;
	char msg[1024];

	spawn(f, true, NULL);
	recv_notify(f, msg, sizeof(msg));
	assert_non_null(strstr(msg, "READY=1"));
	assert_non_null(strstr(msg, "STATUS=backend netns, policy round-robin, 0 listener(s)"));

	assert_int_equal(kill(f->pid, SIGTERM), 0);
	await_stopping(f);
	assert_clean_exit(reap(f));
	assert_nothing_after_stopping(f);
}

static void test_sigint_is_clean_too(void **state)
{
	struct fixture *f = *state;
	char msg[1024];

	spawn(f, true, NULL);
	recv_notify(f, msg, sizeof(msg));
	assert_non_null(strstr(msg, "READY=1"));
	assert_int_equal(kill(f->pid, SIGINT), 0);
	await_stopping(f);
	assert_clean_exit(reap(f));
	assert_nothing_after_stopping(f);
}

/*
 * Count WATCHDOG=1 pings among the next messages until @want of them came;
 * READY/STATUS lines may come in between.  Bounded: at most 50 messages, each
 * within WAIT_MS.  Returns whether a READY=1 was among them.
 */
static bool await_pings(struct fixture *f, int want)
{
	char msg[1024];
	bool ready = false;
	int i, pings = 0;

	for (i = 0; i < 50 && pings < want; i++) {
		recv_notify(f, msg, sizeof(msg));
		if (!strcmp(msg, "WATCHDOG=1"))
			pings++;
		else if (strstr(msg, "READY=1"))
			ready = true;
	}
	assert_int_equal(pings, want);
	return ready;
}

static void test_watchdog_pings(void **state)
{
	struct fixture *f = *state;
	char msg[1024];

	spawn(f, true, "100000"); /* 100 ms: pings every 50 ms */
	recv_notify(f, msg, sizeof(msg));
	assert_non_null(strstr(msg, "READY=1"));
	/* STATUS lines may come in between (the daemon reports its load). */
	await_pings(f, 3);
	assert_int_equal(kill(f->pid, SIGTERM), 0);
	assert_clean_exit(reap(f));
}

/* mw-pvm: READY with its STATUS line, then watchdog pings from its loop. */
static void test_pvm_ready_and_watchdog(void **state)
{
	struct fixture *f = *state;
	char bin[4200], msg[1024], want[256];

	snprintf(bin, sizeof(bin), "%s/pvm/mw-pvm", f->build);
	spawn_bin(f, bin, true, "100000");
	/* Pings may start before READY: the timer runs from mw_daemon_init(). */
	for (int i = 0; i < 50; i++) {
		recv_notify(f, msg, sizeof(msg));
		if (strstr(msg, "READY=1"))
			break;
		assert_string_equal(msg, "WATCHDOG=1");
	}
	snprintf(want, sizeof(want), "STATUS=waiting for INS; control socket %s/run/pvm.sock",
		 f->dir);
	assert_non_null(strstr(msg, "READY=1"));
	assert_non_null(strstr(msg, want));
	await_pings(f, 3);
	assert_int_equal(kill(f->pid, SIGTERM), 0);
	await_stopping(f);
	assert_clean_exit(reap(f));
	assert_nothing_after_stopping(f);
}

/*
 * mw-ins waiting for an mw-pvm that is not there: no READY, but its loop runs
 * and feeds the watchdog, so systemd does not kill an INS that waits.
 */
static void test_ins_watchdog_while_waiting(void **state)
{
	struct fixture *f = *state;
	char bin[4200];

	snprintf(bin, sizeof(bin), "%s/ins/mw-ins", f->build);
	spawn_bin(f, bin, true, "100000");
	assert_false(await_pings(f, 4));
	assert_int_equal(kill(f->pid, SIGTERM), 0);
	await_stopping(f);
	assert_clean_exit(reap(f));
	assert_nothing_after_stopping(f);
}

/* Outside systemd nothing is sent and nothing breaks. */
static void test_without_notify_socket(void **state)
{
	struct fixture *f = *state;
	struct pollfd pfd = { .fd = 0, .events = POLLIN };
	char log[8192] = "";

	spawn(f, false, NULL);
	wait_stderr(f, "mw-balancer: notice: ready:", log, sizeof(log));
	assert_int_equal(kill(f->pid, SIGTERM), 0);
	wait_stderr(f, "mw-balancer: notice: stopped", log, sizeof(log));
	assert_clean_exit(reap(f));
	pfd.fd = f->sock;
	assert_int_equal(poll(&pfd, 1, 0), 0); /* the socket got nothing */
	/* An error line of ours, or a sanitizer's report; not ASan's own warning about a
	 * spawned INS's stack ("False positive error reports may follow"). */
	if (strstr(log, ": error:") || strstr(log, "ERROR:"))
		fail_msg("an error was logged:\n%s", log);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_ready_status_stopping, fixture_setup,
						fixture_teardown),
		cmocka_unit_test_setup_teardown(test_sigint_is_clean_too, fixture_setup,
						fixture_teardown),
		cmocka_unit_test_setup_teardown(test_watchdog_pings, fixture_setup,
						fixture_teardown),
		cmocka_unit_test_setup_teardown(test_without_notify_socket, fixture_setup,
						fixture_teardown),
		cmocka_unit_test_setup_teardown(test_pvm_ready_and_watchdog, fixture_setup,
						fixture_teardown),
		cmocka_unit_test_setup_teardown(test_ins_watchdog_while_waiting, fixture_setup,
						fixture_teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
