/* SPDX-License-Identifier: MIT */
/* backend.c - what every INS backend shares: lookup by name, exec of mw-ins, running ip(8) */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "balancer/backend.h"

extern char **environ;

const struct bal_backend_ops *bal_backend_find(const char *name)
{
	static const struct bal_backend_ops *const all[] = { &bal_backend_netns,
							     &bal_backend_process,
							     &bal_backend_xl };
	size_t i;

	for (i = 0; i < sizeof(all) / sizeof(all[0]); i++)
		if (!strcmp(all[i]->name, name))
			return all[i];
	return NULL;
}

void bal_child_reset(void)
{
	static const int sigs[] = { SIGPIPE, SIGCHLD, SIGTERM, SIGINT, SIGHUP, SIGUSR1, SIGUSR2 };
	sigset_t none;
	size_t i;

	/* The balancer's handlers (libev's, writing to its loop's pipe) must not run here. */
	for (i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++)
		signal(sigs[i], SIG_DFL);
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
}

void bal_backend_exec_ins(const struct bal_backend *b, int id)
{
	char idtext[16], err[256] = "";
	const char *argv[6];
	int n = 0;

	bal_child_reset();
	prctl(PR_SET_PDEATHSIG, SIGTERM);
	if (getppid() == 1)
		_exit(127); /* the balancer already died */
	/* The balancer's own systemd notification socket is not the INS's. */
	unsetenv("NOTIFY_SOCKET");
	unsetenv("WATCHDOG_USEC");
	unsetenv("WATCHDOG_PID");
	if (b->confine && bal_confine_child(b, err, sizeof(err))) {
		fprintf(stderr, "mw-balancer: INS %d not started: %s\n", id, err);
		_exit(127);
	}
	snprintf(idtext, sizeof(idtext), "%d", id);
	argv[n++] = b->ins_binary;
	argv[n++] = "--id";
	argv[n++] = idtext;
	if (b->cfg->path[0]) {
		argv[n++] = "-c";
		argv[n++] = b->cfg->path;
	}
	argv[n] = NULL;
	/*
	 * Nothing of the balancer's past exec: the INS opens what it needs.  libnftables
	 * opens its netlink socket without O_CLOEXEC, and an INS holding it could read
	 * the balancer's replies or have errors sent to it (docs/balancer.md).
	 */
	if (close_range(3, ~0u, CLOSE_RANGE_CLOEXEC)) {
		fprintf(stderr, "mw-balancer: INS %d not started: close_range: %s\n", id,
			strerror(errno));
		_exit(127);
	}
	execv(b->ins_binary, (char *const *)argv);
	fprintf(stderr, "mw-balancer: cannot run %s: %s\n", b->ins_binary, strerror(errno));
	_exit(127);
}

int bal_run(char *const argv[], bool quiet)
{
	posix_spawn_file_actions_t fa;
	pid_t pid;
	int ret, status;

	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
	if (quiet)
		posix_spawn_file_actions_addopen(&fa, 2, "/dev/null", O_WRONLY, 0);
	ret = posix_spawnp(&pid, argv[0], &fa, NULL, argv, environ);
	posix_spawn_file_actions_destroy(&fa);
	if (ret)
		return -ret;
	while (waitpid(pid, &status, 0) < 0)
		if (errno != EINTR)
			return -errno;
	return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : -EIO;
}
