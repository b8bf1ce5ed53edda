/* SPDX-License-Identifier: MIT */
/* backend_netns.c - INS backend: mw-ins in its own network namespace, a veth into our bridge */
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "balancer/backend.h"
#include "common/cidr.h"

/*
 * Theory of operation
 *
 * init: the bridge cfg.bridge is created in the root namespace (or reused)
 * and given the subnet's first host address.  Everything else this backend
 * creates carries cfg.tag in its name: namespaces "mw-<tag>-ins<N>" and
 * host-side veths "<tag>h<N>".  So at start-up, what an earlier balancer
 * with the same tag left behind (it crashed, or was killed -9) is found by
 * prefix and removed: the processes in those namespaces are killed, the veths
 * and namespaces deleted.
 *
 * spawn(N): namespace, veth pair (host end into the bridge, the other end
 * moved into the namespace and renamed eth0), address slot k (the lowest
 * free; host k+1 of the subnet, the bridge being host 1), lo and eth0 up, a
 * default route via the bridge; then fork, setns() in the child and exec
 * mw-ins, so the pid we watch is mw-ins itself.  Any failing step undoes the
 * earlier ones.  cleanup(N) deletes the veth (both ends go) and the namespace.
 *
 * The network configuration runs ip(8), synchronously: a spawn takes a few
 * tens of milliseconds of the event loop, which is rare (scaling) and cheap
 * next to mw-ins's own start.
 */

#define NETNS_DIR "/run/netns"
#define SLOTS_MAX 4096

struct netns_priv {
	uint32_t net; /* subnet, host order */
	int prefix;
	int slots; /* usable INS slots: hosts minus the bridge */
	unsigned char used[SLOTS_MAX + 1];
};

static void ns_name(const struct bal_backend *b, int id, char *buf, size_t len)
{
	snprintf(buf, len, "mw-%s-ins%d", b->cfg->balancer.tag, id);
}

static void veth_name(const struct bal_backend *b, int id, char side, char *buf, size_t len)
{
	snprintf(buf, len, "%s%c%d", b->cfg->balancer.tag, side, id);
}

static int ip(bool quiet, const char *a0, const char *a1, const char *a2, const char *a3,
	      const char *a4, const char *a5, const char *a6, const char *a7, const char *a8)
{
	const char *argv[] = { "ip", a0, a1, a2, a3, a4, a5, a6, a7, a8, NULL };

	return bal_run((char *const *)argv, quiet);
}

/* Kill whatever still runs in namespace @ns (a leftover mw-ins). */
static void ns_kill_all(const char *ns)
{
	char path[300], link[300];
	struct stat st_ns, st;
	DIR *d;
	struct dirent *e;

	snprintf(path, sizeof(path), NETNS_DIR "/%s", ns);
	if (stat(path, &st_ns))
		return;
	d = opendir("/proc");
	if (!d)
		return;
	while ((e = readdir(d))) {
		char *end;
		long pid;

		errno = 0;
		pid = strtol(e->d_name, &end, 10);
		if (errno || *end || pid <= 0 || pid > INT32_MAX)
			continue;
		snprintf(link, sizeof(link), "/proc/%s/ns/net", e->d_name);
		if (stat(link, &st) || st.st_ino != st_ns.st_ino || st.st_dev != st_ns.st_dev)
			continue;
		kill((pid_t)pid, SIGKILL);
	}
	closedir(d);
}

/* Remove every namespace and veth with our tag (an earlier balancer's). */
static void netns_sweep(struct bal_backend *b)
{
	char prefix[32], vprefix[32];
	DIR *d;
	struct dirent *e;

	snprintf(prefix, sizeof(prefix), "mw-%s-ins", b->cfg->balancer.tag);
	snprintf(vprefix, sizeof(vprefix), "%sh", b->cfg->balancer.tag);
	d = opendir("/sys/class/net");
	if (d) {
		while ((e = readdir(d))) {
			const char *rest = e->d_name + strlen(vprefix);

			if (strncmp(e->d_name, vprefix, strlen(vprefix)) || !*rest ||
			    strspn(rest, "0123456789") != strlen(rest))
				continue;
			ip(true, "link", "del", e->d_name, NULL, NULL, NULL, NULL, NULL, NULL);
		}
		closedir(d);
	}
	d = opendir(NETNS_DIR);
	if (!d)
		return;
	while ((e = readdir(d))) {
		if (strncmp(e->d_name, prefix, strlen(prefix)))
			continue;
		ns_kill_all(e->d_name);
		ip(true, "netns", "del", e->d_name, NULL, NULL, NULL, NULL, NULL, NULL);
	}
	closedir(d);
}

static int netns_init(struct bal_backend *b, char *err, size_t errlen)
{
	const struct mw_balancer_config *bc = &b->cfg->balancer;
	struct netns_priv *p;
	struct mw_cidr c;
	char addr[64], tmp[INET_ADDRSTRLEN];
	uint32_t hosts;
	int ret;

	if (mw_cidr_parse(&c, bc->subnet) || c.family != 4 || c.prefix > 29) {
		snprintf(err, errlen, "balancer.subnet %s: need an IPv4 subnet of /29 or larger",
			 bc->subnet);
		return -EINVAL;
	}
	p = calloc(1, sizeof(*p));
	if (!p) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	memcpy(&p->net, c.net, 4);
	p->net = ntohl(p->net);
	p->prefix = c.prefix;
	hosts = (1u << (32 - c.prefix)) - 2;
	p->slots = hosts - 1 > SLOTS_MAX ? SLOTS_MAX : (int)hosts - 1;
	b->priv = p;

	netns_sweep(b);
	ip(true, "link", "add", bc->bridge, "type", "bridge", NULL, NULL, NULL, NULL);
	{
		struct in_addr a = { .s_addr = htonl(p->net + 1) };

		inet_ntop(AF_INET, &a, tmp, sizeof(tmp));
	}
	snprintf(addr, sizeof(addr), "%s/%d", tmp, p->prefix);
	ret = ip(false, "addr", "replace", addr, "dev", bc->bridge, NULL, NULL, NULL, NULL);
	if (!ret)
		ret = ip(false, "link", "set", bc->bridge, "up", NULL, NULL, NULL, NULL, NULL);
	if (ret) {
		snprintf(err, errlen, "cannot set up bridge %s with %s (ip failed; root?)",
			 bc->bridge, addr);
		ip(true, "link", "del", bc->bridge, NULL, NULL, NULL, NULL, NULL, NULL);
		free(p);
		b->priv = NULL;
		return ret;
	}
	return 0;
}

static void netns_undo(struct bal_backend *b, int id)
{
	char ns[64], veth[32];

	ns_name(b, id, ns, sizeof(ns));
	veth_name(b, id, 'h', veth, sizeof(veth));
	ns_kill_all(ns);
	ip(true, "link", "del", veth, NULL, NULL, NULL, NULL, NULL, NULL);
	ip(true, "netns", "del", ns, NULL, NULL, NULL, NULL, NULL, NULL);
}

static int netns_spawn(struct bal_backend *b, struct bal_ins_handle *h, char *err, size_t errlen)
{
	struct netns_priv *p = b->priv;
	const char *br = b->cfg->balancer.bridge;
	char ns[64], vh[32], vn[32], addr[64], gw[INET_ADDRSTRLEN], path[300];
	struct in_addr a;
	int slot, ret, fd;
	pid_t pid;

	for (slot = 1; slot <= p->slots && p->used[slot]; slot++)
		;
	if (slot > p->slots) {
		snprintf(err, errlen, "subnet %s has no free address", b->cfg->balancer.subnet);
		return -ENOSPC;
	}
	ns_name(b, h->id, ns, sizeof(ns));
	veth_name(b, h->id, 'h', vh, sizeof(vh));
	veth_name(b, h->id, 'n', vn, sizeof(vn));
	h->addr.s_addr = htonl(p->net + 1 + slot);
	inet_ntop(AF_INET, &h->addr, gw, sizeof(gw));
	snprintf(addr, sizeof(addr), "%s/%d", gw, p->prefix);
	a.s_addr = htonl(p->net + 1);
	inet_ntop(AF_INET, &a, gw, sizeof(gw));

	netns_undo(b, h->id); /* a same-named leftover would make every step fail */
	ret = ip(false, "netns", "add", ns, NULL, NULL, NULL, NULL, NULL, NULL);
	if (!ret)
		ret = ip(false, "link", "add", vh, "type", "veth", "peer", "name", vn, NULL);
	if (!ret)
		ret = ip(false, "link", "set", vn, "netns", ns, NULL, NULL, NULL, NULL);
	if (!ret)
		ret = ip(false, "link", "set", vh, "master", br, "up", NULL, NULL, NULL);
	if (!ret)
		ret = ip(false, "-n", ns, "link", "set", vn, "name", "eth0", NULL, NULL);
	if (!ret)
		ret = ip(false, "-n", ns, "addr", "add", addr, "dev", "eth0", NULL, NULL);
	if (!ret)
		ret = ip(false, "-n", ns, "link", "set", "eth0", "up", NULL, NULL, NULL);
	if (!ret)
		ret = ip(false, "-n", ns, "link", "set", "lo", "up", NULL, NULL, NULL);
	if (!ret)
		ret = ip(false, "-n", ns, "route", "add", "default", "via", gw, NULL, NULL);
	if (ret) {
		snprintf(err, errlen, "setting up namespace %s (veth %s, %s) failed", ns, vh, addr);
		goto fail;
	}
	snprintf(path, sizeof(path), NETNS_DIR "/%s", ns);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		ret = -errno;
		snprintf(err, errlen, "open %s: %s", path, strerror(errno));
		goto fail;
	}
	pid = fork();
	if (pid == 0) {
		if (setns(fd, CLONE_NEWNET)) {
			fprintf(stderr, "mw-balancer: setns %s: %s\n", ns, strerror(errno));
			_exit(127);
		}
		bal_backend_exec_ins(b, h->id);
	}
	ret = pid < 0 ? -errno : 0;
	close(fd);
	if (ret) {
		snprintf(err, errlen, "fork: %s", strerror(-ret));
		goto fail;
	}
	h->pid = pid;
	h->slot = slot;
	p->used[slot] = 1;
	snprintf(h->name, sizeof(h->name), "%s", ns);
	return 0;
fail:
	netns_undo(b, h->id);
	return ret;
}

static void netns_stop(struct bal_backend *b, struct bal_ins_handle *h)
{
	if (h->pid > 0)
		kill(h->pid, SIGTERM);
}

static void netns_cleanup(struct bal_backend *b, struct bal_ins_handle *h)
{
	struct netns_priv *p = b->priv;
	char addr[INET_ADDRSTRLEN];

	netns_undo(b, h->id);
	/*
	 * The next INS may get this address: the bridge's neighbour entry would
	 * keep the dead veth's MAC for up to a minute, and nothing would reach it.
	 */
	if (h->slot > 0 && inet_ntop(AF_INET, &h->addr, addr, sizeof(addr)))
		ip(true, "neigh", "del", addr, "dev", b->cfg->balancer.bridge, NULL, NULL, NULL,
		   NULL);
	if (h->slot > 0 && h->slot <= SLOTS_MAX)
		p->used[h->slot] = 0;
	h->slot = 0;
}

static void netns_fini(struct bal_backend *b)
{
	if (!b->priv)
		return;
	netns_sweep(b);
	ip(true, "link", "del", b->cfg->balancer.bridge, NULL, NULL, NULL, NULL, NULL, NULL);
	free(b->priv);
	b->priv = NULL;
}

const struct bal_backend_ops bal_backend_netns = {
	.name = "netns",
	.init = netns_init,
	.spawn = netns_spawn,
	.stop = netns_stop,
	.cleanup = netns_cleanup,
	.fini = netns_fini,
};
