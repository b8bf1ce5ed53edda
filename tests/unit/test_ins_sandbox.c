/* SPDX-License-Identifier: MIT */
/* test_ins_sandbox.c - mw-ins's seccomp allow-list: allowed calls work, others die of SIGSYS */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "ins/ins_sandbox.h"

enum probe {
	PROBE_ALLOWED,
	PROBE_UNSHARE,
	PROBE_PACKET_SOCKET,
	PROBE_EXECVE,
	PROBE_SPLICE_BLOCKING
};

/* In a child: sandbox, then @p; its stderr into @out. Return: the wait status. */
static int run_probe(enum probe p, char *out, size_t outlen)
{
	int fds[2], status = 0, fd, pp[2];
	ssize_t n, got = 0;
	pid_t pid;

	assert_int_equal(pipe(fds), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		char err[256] = "";

		dup2(fds[1], STDERR_FILENO);
		close(fds[0]);
		if (pipe2(pp, O_NONBLOCK)) /* a data pipe, passed before the sandbox as in mw-ins */
			_exit(2);
		if (ins_sandbox_enter(true, false, err, sizeof(err)) <= 0) {
			fprintf(stderr, "enter: %s\n", err);
			_exit(3);
		}
		switch (p) {
		case PROBE_ALLOWED:
			/* What the loop does: TCP and UNIX sockets, memory, time, reads. */
			fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
			if (fd < 0 || close(fd))
				_exit(4);
			fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
			if (fd < 0 || close(fd))
				_exit(4);
			free(malloc(1 << 20));
			fd = open("/proc/sys/net/ipv4/tcp_available_congestion_control",
				  O_RDONLY | O_CLOEXEC);
			if (fd < 0 || close(fd))
				_exit(5);
			/* DATA_PIPE: out of a pipe without waiting for it (empty: EAGAIN) */
			if (splice(pp[0], NULL, fds[1], NULL, 1, SPLICE_F_NONBLOCK) != -1 ||
			    errno != EAGAIN)
				_exit(6);
			_exit(0);
		case PROBE_UNSHARE:
			syscall(SYS_unshare, 0);
			break;
		case PROBE_PACKET_SOCKET:
			socket(AF_PACKET, SOCK_RAW, 0);
			break;
		case PROBE_SPLICE_BLOCKING:
			splice(pp[0], NULL, fds[1], NULL, 1, 0);
			break;
		case PROBE_EXECVE: {
			char *const argv[] = { "/bin/true", NULL };

			execv(argv[0], argv);
			_exit(errno == EPERM ? 7 : 8); /* sanitizer builds refuse it with EPERM */
		}
		}
		_exit(9); /* the call returned: the filter let it through */
	}
	close(fds[1]);
	while (got < (ssize_t)outlen - 1 && (n = read(fds[0], out + got, outlen - 1 - got)) > 0)
		got += n;
	out[got] = '\0';
	close(fds[0]);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	return status;
}

static void assert_sigsys(int status, const char *out, long nr)
{
	char want[64];

	snprintf(want, sizeof(want), "seccomp: system call %ld is not on the allow-list", nr);
	if (!WIFSIGNALED(status) || WTERMSIG(status) != SIGSYS)
		fail_msg("want death by SIGSYS, got status 0x%x, stderr: %s", status, out);
	if (!strstr(out, want))
		fail_msg("want \"%s\" on stderr, got: %s", want, out);
}

static void test_allowed_calls_work(void **state)
{
	char out[1024];
	int status = run_probe(PROBE_ALLOWED, out, sizeof(out));

	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
		fail_msg("allowed calls failed: status 0x%x, stderr: %s", status, out);
}

static void test_unshare_dies_of_sigsys(void **state)
{
	char out[1024];

	assert_sigsys(run_probe(PROBE_UNSHARE, out, sizeof(out)), out, SYS_unshare);
}

static void test_packet_socket_dies_of_sigsys(void **state)
{
	char out[1024];

	assert_sigsys(run_probe(PROBE_PACKET_SOCKET, out, sizeof(out)), out, SYS_socket);
}

/* A splice that may wait for the data pipe is refused (docs/ins-protocol.md, the pipe's lock). */
static void test_blocking_splice_dies_of_sigsys(void **state)
{
	char out[1024];

	assert_sigsys(run_probe(PROBE_SPLICE_BLOCKING, out, sizeof(out)), out, SYS_splice);
}

static void test_execve_refused(void **state)
{
	char out[1024];
	int status = run_probe(PROBE_EXECVE, out, sizeof(out));

	if (WIFEXITED(status) && WEXITSTATUS(status) == 7)
		return; /* sanitizer build: EPERM, documented */
	assert_sigsys(status, out, SYS_execve);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_allowed_calls_work),
		cmocka_unit_test(test_unshare_dies_of_sigsys),
		cmocka_unit_test(test_packet_socket_dies_of_sigsys),
		cmocka_unit_test(test_execve_refused),
		cmocka_unit_test(test_blocking_splice_dies_of_sigsys),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
