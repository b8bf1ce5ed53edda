/* SPDX-License-Identifier: MIT */
/* netns_ehash.c - INS namespaces with a TCP hash table of their own (net.ipv4.tcp_child_ehash_entries) */
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "balancer/netns_ehash.h"
#include "common/log.h"

/*
 * Why: by default every network namespace shares the host's TCP hash table
 * (262,144 buckets here), and a sock_diag dump of one namespace walks all of
 * it, every bucket and every socket of every namespace.  Kernel mode counts
 * each INS's connections that way every 100 ms tick: with 4 INS on the 2-core
 * machine that was a third of a CPU (docs/benchmarks.md).  A namespace made
 * while its creator sits in a namespace whose tcp_child_ehash_entries is N
 * gets a table of its own with N buckets, and a dump walks only that.
 *
 * The setting is read from the creator's namespace at creation, so the host's
 * is left alone: the balancer keeps a namespace of its own, the "parent"
 * (empty, no interface), where it is set, and creates each INS namespace
 * while it stands in the parent.  The kernel derives two limits of the new
 * namespace from N (tcp_max_tw_buckets = N / 2, tcp_max_syn_backlog = N /
 * 128); the INS gets the host's values of both instead, as before.
 */

#define CHILD_EHASH "/proc/sys/net/ipv4/tcp_child_ehash_entries"
#define TW_BUCKETS  "/proc/sys/net/ipv4/tcp_max_tw_buckets"
#define SYN_BACKLOG "/proc/sys/net/ipv4/tcp_max_syn_backlog"

static int write_sysctl(const char *path, const char *value)
{
	size_t len = strlen(value);
	int fd, ret = 0;

	fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	if (write(fd, value, len) != (ssize_t)len)
		ret = errno ? -errno : -EIO;
	if (close(fd) && !ret)
		ret = -errno;
	return ret;
}

static void read_sysctl(const char *path, char *buf, size_t len)
{
	FILE *f = fopen(path, "re");

	buf[0] = '\0';
	if (!f)
		return;
	if (!fgets(buf, (int)len, f))
		buf[0] = '\0';
	fclose(f);
	buf[strcspn(buf, "\n")] = '\0';
}

int bal_ehash_open(struct bal_ehash *e, int entries, int host_netns)
{
	char v[24];
	int ret = 0;

	e->parent = -1;
	if (entries <= 0)
		return 0;
	read_sysctl(TW_BUCKETS, e->tw_buckets, sizeof(e->tw_buckets));
	read_sysctl(SYN_BACKLOG, e->syn_backlog, sizeof(e->syn_backlog));
	if (unshare(CLONE_NEWNET))
		return -errno;
	snprintf(v, sizeof(v), "%d\n", entries);
	ret = write_sysctl(CHILD_EHASH, v);
	if (!ret) {
		e->parent = open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC);
		if (e->parent < 0)
			ret = -errno;
	}
	if (setns(host_netns, CLONE_NEWNET)) {
		/* Our sockets would be made in the wrong namespace from here on. */
		mw_err("cannot return to the host's network namespace: %s", strerror(errno));
		abort();
	}
	if (ret && e->parent >= 0) {
		close(e->parent);
		e->parent = -1;
	}
	return ret;
}

void bal_ehash_close(struct bal_ehash *e)
{
	if (e->parent >= 0)
		close(e->parent);
	e->parent = -1;
}

pid_t bal_ehash_clone(const struct bal_ehash *e, int host_netns, int (*fn)(void *), void *stack,
		      void *arg)
{
	pid_t pid;
	int saved;

	if (e->parent >= 0 && setns(e->parent, CLONE_NEWNET))
		return -1;
	pid = clone(fn, stack, CLONE_NEWNET | SIGCHLD, arg);
	saved = errno;
	if (e->parent >= 0 && setns(host_netns, CLONE_NEWNET)) {
		mw_err("cannot return to the host's network namespace: %s", strerror(errno));
		abort();
	}
	errno = saved;
	return pid;
}

int bal_ehash_child_limits(const struct bal_ehash *e)
{
	char v[32];
	int ret = 0;

	if (e->parent < 0)
		return 0;
	if (e->tw_buckets[0]) {
		snprintf(v, sizeof(v), "%s\n", e->tw_buckets);
		ret = write_sysctl(TW_BUCKETS, v);
	}
	if (!ret && e->syn_backlog[0]) {
		snprintf(v, sizeof(v), "%s\n", e->syn_backlog);
		ret = write_sysctl(SYN_BACKLOG, v);
	}
	return ret;
}
