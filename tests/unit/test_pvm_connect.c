/* SPDX-License-Identifier: MIT */
/* test_pvm_connect.c - connecting an app's socket never puts mw-pvm to sleep */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cmocka.h>

#include "pvm/pvm.h"

/*
 * pvm_connect_nowait() is how mw-pvm connects an app's socket to its private
 * listener (pvm_connect.c).  The app shares that socket's open file and may
 * have left it blocking; anyone who learns the listener's abstract name may
 * fill its backlog.  A plain connect() then sleeps, with mw-pvm's whole loop
 * behind it: here an alarm turns that sleep into a failure.
 */

static void on_alarm(int sig)
{
	(void)sig;
	static const char msg[] = "connect slept: mw-pvm's loop would hang\n";
	(void)!write(2, msg, sizeof(msg) - 1);
	_exit(1);
}

/* A listener with a full backlog under an autobound abstract name, in *@sun. */
static int full_listener(struct sockaddr_un *sun, socklen_t *len, int *fillers, int *nfill)
{
	int lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0), fd;

	assert_true(lfd >= 0);
	memset(sun, 0, sizeof(*sun));
	sun->sun_family = AF_UNIX;
	assert_int_equal(bind(lfd, (struct sockaddr *)sun, sizeof(sa_family_t)), 0);
	assert_int_equal(listen(lfd, 0), 0);
	*len = sizeof(*sun);
	assert_int_equal(getsockname(lfd, (struct sockaddr *)sun, len), 0);
	for (*nfill = 0; *nfill < 16; (*nfill)++) {
		fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
		assert_true(fd >= 0);
		if (connect(fd, (struct sockaddr *)sun, *len)) {
			assert_int_equal(errno, EAGAIN);
			close(fd);
			break;
		}
		fillers[*nfill] = fd;
	}
	assert_true(*nfill > 0 && *nfill < 16);
	return lfd;
}

/* A blocking app socket and a full backlog: -EAGAIN at once, its flags as they were. */
static void test_full_backlog_blocking_socket(void **state)
{
	struct sockaddr_un sun;
	socklen_t len;
	int fillers[16], nfill, i, lfd, app, fl;

	(void)state;
	lfd = full_listener(&sun, &len, fillers, &nfill);
	app = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	assert_true(app >= 0);
	fl = fcntl(app, F_GETFL);
	assert_false(fl & O_NONBLOCK);
	signal(SIGALRM, on_alarm);
	alarm(5);
	assert_int_equal(pvm_connect_nowait(app, (struct sockaddr *)&sun, len), -EAGAIN);
	alarm(0);
	assert_int_equal(fcntl(app, F_GETFL), fl);
	/* Room again: the same socket connects, and stays blocking for the app. */
	for (i = 0; i < nfill; i++)
		close(accept(lfd, NULL, NULL));
	assert_int_equal(pvm_connect_nowait(app, (struct sockaddr *)&sun, len), 0);
	assert_int_equal(fcntl(app, F_GETFL), fl);
	for (i = 0; i < nfill; i++)
		close(fillers[i]);
	close(app);
	close(lfd);
}

/* A non-blocking app socket stays non-blocking; a missing listener is an error, not a wait. */
static void test_nonblocking_and_missing(void **state)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	socklen_t len;
	int lfd, app, fl;

	(void)state;
	lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	assert_int_equal(bind(lfd, (struct sockaddr *)&sun, sizeof(sa_family_t)), 0);
	assert_int_equal(listen(lfd, 4), 0);
	len = sizeof(sun);
	assert_int_equal(getsockname(lfd, (struct sockaddr *)&sun, &len), 0);
	app = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	fl = fcntl(app, F_GETFL);
	assert_int_equal(pvm_connect_nowait(app, (struct sockaddr *)&sun, len), 0);
	assert_int_equal(fcntl(app, F_GETFL), fl);
	close(app);
	close(lfd);
	/* The listener is gone: its name refuses. */
	app = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	fl = fcntl(app, F_GETFL);
	assert_int_equal(pvm_connect_nowait(app, (struct sockaddr *)&sun, len), -ECONNREFUSED);
	assert_int_equal(fcntl(app, F_GETFL), fl);
	assert_int_equal(pvm_connect_nowait(-1, (struct sockaddr *)&sun, len), -EBADF);
	close(app);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_full_backlog_blocking_socket),
		cmocka_unit_test(test_nonblocking_and_missing),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
