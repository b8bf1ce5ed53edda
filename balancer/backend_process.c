/* SPDX-License-Identifier: MIT */
/* backend_process.c - INS backend without isolation: mw-ins in the balancer's own namespace */
#include <arpa/inet.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "balancer/backend.h"

/*
 * For development: no privileges needed, nothing created.  Run as root, it
 * confines every mw-ins as the netns backend does (confine.c: own mount view,
 * ins.user, no capabilities) except for the network: the INS shares ours, so
 * its ports below 1024 need ip_unprivileged_port_start lowered on the host.  Every INS shares the
 * host's network stack and is reached at 127.0.0.1, so the limits are those of
 * one stack: a replicated listener can be bound by one INS only (the others'
 * binds fail with EADDRINUSE unless the app uses SO_REUSEPORT), and the front
 * end must listen on another address than the app's port on 127.0.0.1 /
 * 0.0.0.0.  See docs/balancer.md.
 */

static int proc_init(struct bal_backend *b, char *err, size_t errlen)
{
	b->host_netns = -1;
	return bal_confine_prepare(b, err, errlen);
}

static int proc_spawn(struct bal_backend *b, struct bal_ins_handle *h, char *err, size_t errlen)
{
	pid_t pid;

	pid = fork();
	if (pid < 0) {
		snprintf(err, errlen, "fork: %s", strerror(errno));
		return -errno;
	}
	if (pid == 0)
		bal_backend_exec_ins(b, h->id);
	h->pid = pid;
	h->slot = 0;
	inet_pton(AF_INET, "127.0.0.1", &h->addr);
	snprintf(h->name, sizeof(h->name), "pid %d", (int)pid);
	return 0;
}

static void proc_stop(struct bal_backend *b, struct bal_ins_handle *h)
{
	if (h->pid > 0)
		kill(h->pid, SIGTERM);
}

static void proc_cleanup(struct bal_backend *b, struct bal_ins_handle *h)
{
}

static void proc_fini(struct bal_backend *b)
{
}

const struct bal_backend_ops bal_backend_process = {
	.name = "process",
	.init = proc_init,
	.spawn = proc_spawn,
	.stop = proc_stop,
	.cleanup = proc_cleanup,
	.fini = proc_fini,
};
