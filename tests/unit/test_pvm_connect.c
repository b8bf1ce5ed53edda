/* SPDX-License-Identifier: MIT */
/* test_pvm_connect.c - an app's socket connected to mw-pvm through a directory of its own */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "pvm/pvm.h"

/*
 * pvm_connect_app() is how mw-pvm connects an app's socket (the fd the app passed,
 * perhaps blocking) to a listener of its own when the INS started the TCP connect.
 * The listener lives in pvm_connect_open()'s directory, 0700: no other user can
 * reach it, so nobody can fill its backlog and put mw-pvm's loop to sleep in the
 * app's connect() (with an abstract name, anyone who read it from /proc/net/unix
 * could), and mw-pvm never touches the flags of a file the app shares.
 */

static struct mw_config cfg;
static struct pvm p;
static char root[64];

static void on_alarm(int sig)
{
	static const char msg[] = "connect slept: mw-pvm's loop would hang\n";

	(void)sig;
	(void)!write(2, msg, sizeof(msg) - 1);
	_exit(1);
}

static int setup(void **state)
{
	(void)state;
	mw_config_defaults(&cfg);
	memset(&p, 0, sizeof(p));
	p.cfg = &cfg.pvm;
	p.loop = ev_loop_new(EVFLAG_AUTO);
	p.hold_fd = p.connect_dirfd = -1;
	snprintf(root, sizeof(root), "/tmp/mw-connect-XXXXXX");
	assert_non_null(mkdtemp(root));
	return 0;
}

static int teardown(void **state)
{
	char dir[128];

	(void)state;
	pvm_connect_close(&p);
	ev_loop_destroy(p.loop);
	snprintf(dir, sizeof(dir), "%s/pvm0-connect", root);
	rmdir(dir);
	rmdir(root);
	return 0;
}

/* Entries of @dir besides . and .. */
static int entries(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	int n = 0;

	assert_non_null(d);
	while ((e = readdir(d)))
		n += strcmp(e->d_name, ".") && strcmp(e->d_name, "..");
	closedir(d);
	return n;
}

/* A blocking app socket is connected at once; the listener's name is gone after. */
static void test_connect_blocking_app(void **state)
{
	char dir[128], moved[128], b = 0;
	struct stat st;
	int app, end, fl, i;

	(void)state;
	assert_int_equal(pvm_connect_open(&p, root), 0);
	snprintf(dir, sizeof(dir), "%s/pvm0-connect", root);
	assert_string_equal(p.connect_dir, dir);
	assert_int_equal(lstat(dir, &st), 0);
	assert_true(S_ISDIR(st.st_mode) && (st.st_mode & 0777) == 0700);
	signal(SIGALRM, on_alarm);
	alarm(5);
	for (i = 0; i < 3; i++) {
		app = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
		fl = fcntl(app, F_GETFL);
		assert_false(fl & O_NONBLOCK);
		assert_int_equal(pvm_connect_app(&p, app, &end), 0);
		assert_true(end >= 0);
		assert_int_equal(fcntl(app, F_GETFL), fl); /* the app's flags untouched */
		assert_int_equal(send(app, "x", 1, 0), 1);
		assert_int_equal(recv(end, &b, 1, 0), 1);
		assert_int_equal(b, 'x');
		close(app);
		close(end);
	}
	alarm(0);
	assert_int_equal(entries(dir), 0);
	/* The path renamed and replaced (by whoever can write runtime_dir): the listeners
	 * stay in the directory opened at start, not in the new one. */
	snprintf(moved, sizeof(moved), "%s/moved", root);
	assert_int_equal(rename(dir, moved), 0);
	assert_int_equal(mkdir(dir, 0777), 0);
	app = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	assert_int_equal(pvm_connect_app(&p, app, &end), 0);
	assert_int_equal(send(app, "y", 1, 0), 1);
	assert_int_equal(recv(end, &b, 1, 0), 1);
	assert_int_equal(b, 'y');
	close(app);
	close(end);
	assert_int_equal(entries(moved), 0);
	assert_int_equal(rmdir(dir), 0);
	assert_int_equal(rename(moved, dir), 0);
}

/* Another user cannot reach a listener in the directory: no one can fill its backlog. */
static void test_other_user_shut_out(void **state)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	int lfd, st;
	pid_t kid;

	(void)state;
	if (geteuid() != 0)
		fail_msg("needs root (setuid to another user)");
	assert_int_equal(chmod(root, 0755), 0);
	assert_int_equal(pvm_connect_open(&p, root), 0);
	assert_true(snprintf(sun.sun_path, sizeof(sun.sun_path), "%.90s/probe", p.connect_dir) <
		    (int)sizeof(sun.sun_path));
	lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	assert_int_equal(bind(lfd, (struct sockaddr *)&sun, sizeof(sun)), 0);
	assert_int_equal(listen(lfd, 0), 0);
	kid = fork();
	assert_true(kid >= 0);
	if (!kid) {
		int fd;

		if (setresgid(65534, 65534, 65534) || setresuid(65534, 65534, 65534))
			_exit(3);
		fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0);
		_exit(connect(fd, (struct sockaddr *)&sun, sizeof(sun)) == 0 ? 1
		      : errno == EACCES					     ? 0
									     : 2);
	}
	assert_int_equal(waitpid(kid, &st, 0), kid);
	assert_true(WIFEXITED(st));
	assert_int_equal(WEXITSTATUS(st), 0);
	close(lfd);
	unlink(sun.sun_path);
}

/* A directory others may enter, a symlink, a mount point, one its owner cannot use: refused. */
static void test_directory_not_private(void **state)
{
	char dir[128], target[160];

	(void)state;
	snprintf(dir, sizeof(dir), "%s/pvm0-connect", root);
	assert_int_equal(mkdir(dir, 0755), 0);
	assert_int_equal(chmod(dir, 0755), 0);
	assert_int_equal(pvm_connect_open(&p, root), -EPERM);
	assert_int_equal(p.connect_dirfd, -1);
	assert_int_equal(rmdir(dir), 0);
	snprintf(target, sizeof(target), "%s/elsewhere", root);
	assert_int_equal(mkdir(target, 0700), 0);
	assert_int_equal(symlink(target, dir), 0);
	assert_int_equal(pvm_connect_open(&p, root), -EPERM);
	assert_int_equal(unlink(dir), 0);
	assert_int_equal(rmdir(target), 0);
	/* Another file system mounted on it (FUSE answers any owner and mode): refused. */
	assert_int_equal(mkdir(dir, 0700), 0);
	assert_int_equal(mount("none", dir, "tmpfs", 0, "mode=0700"), 0);
	assert_int_equal(pvm_connect_open(&p, root), -EPERM);
	assert_int_equal(umount(dir), 0);
	assert_int_equal(rmdir(dir), 0);
	/* Its owner cannot use it (a umask that took the owner's bits): refused too. */
	assert_int_equal(mkdir(dir, 0700), 0);
	assert_int_equal(chmod(dir, 0500), 0);
	assert_int_equal(pvm_connect_open(&p, root), -EPERM);
	assert_int_equal(pvm_connect_app(&p, 0, &(int){ 0 }), -ENOTDIR);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_connect_blocking_app, setup, teardown),
		cmocka_unit_test_setup_teardown(test_other_user_shut_out, setup, teardown),
		cmocka_unit_test_setup_teardown(test_directory_not_private, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
