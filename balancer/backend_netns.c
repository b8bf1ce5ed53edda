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
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "balancer/backend.h"
#include "balancer/netns_ehash.h"
#include "common/cidr.h"
#include "common/log.h"

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
 * spawn(N) never waits in the event loop: it picks an address slot k (host
 * k+1 of the subnet, the bridge being host 1; slots are handed out in turn,
 * so a slot just freed is not at once given again while the kernel still
 * tears its old namespace down), then clone(CLONE_NEWNET) starts the child
 * already in a fresh network namespace (one system call: /proc/PID/net shows
 * the new, empty namespace at once, so readiness is never read from ours).
 * The child does the rest while the loop goes on, and becomes mw-ins:
 *
 *   ip netns attach (the name, for ip -n and cleanup), the port sysctl
 *   net.ipv4.ip_unprivileged_port_start = 0 (mw-ins binds the app's low
 *   ports without any capability), in our namespace: a veth pair whose peer
 *   is created directly in the new namespace as eth0, the host end into the
 *   bridge as an isolated port (IFLA_BRPORT_ISOLATED: INS cannot reach each
 *   other, the bridge, i.e. the host, reaches all), then in the namespace:
 *   address, lo and eth0 up, default route via the bridge; then confinement
 *   (confine.c) and exec of mw-ins.
 *
 * With balancer.netns_tcp_ehash, the namespace has a TCP hash table of its
 * own (netns_ehash.c): kernel mode's per-tick connection count then walks
 * only the INS's sockets, not every socket of the host.
 *
 * A failing step ends the child with status 127 and a line on stderr, which
 * the balancer sees as an INS that died at once (logged, backed off).
 * cleanup(N), after the INS exited, only unmounts and removes the name: the
 * namespace dies with its last process and takes the veth pair with it.
 */

#define NETNS_DIR	   "/run/netns"
#define SLOTS_MAX	   4096
#define CHILD_STACK	   (256 * 1024)
#define UNPRIV_PORT_SYSCTL "/proc/sys/net/ipv4/ip_unprivileged_port_start"

struct netns_priv {
	uint32_t net; /* subnet, host order */
	int prefix;
	int slots;     /* usable INS slots: hosts minus the bridge */
	int last_slot; /* the slot given last: the next spawn looks after it */
	struct bal_ehash ehash; /* each namespace's own TCP hash table (netns_ehash.c) */
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

/* Is @name @prefix and a number, exactly (not mw-<tag>-ins2-ins1, another tag's)? */
static bool tagged(const char *name, const char *prefix)
{
	size_t n = strlen(prefix);

	return !strncmp(name, prefix, n) && name[n] &&
	       strspn(name + n, "0123456789") == strlen(name + n);
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
			if (!tagged(e->d_name, vprefix))
				continue;
			ip(true, "link", "del", e->d_name, NULL, NULL, NULL, NULL, NULL, NULL);
		}
		closedir(d);
	}
	d = opendir(NETNS_DIR);
	if (!d)
		return;
	while ((e = readdir(d))) {
		if (!tagged(e->d_name, prefix))
			continue;
		ns_kill_all(e->d_name);
		ip(true, "netns", "del", e->d_name, NULL, NULL, NULL, NULL, NULL, NULL);
	}
	closedir(d);
}

/*
 * A bridge whose address was never set takes the lowest of its ports' MACs, so
 * it changes when an INS with a lower one joins, and every INS's ARP entry
 * for its gateway goes stale (replies to the front end are lost until it
 * expires).  Setting the address it has now, once, stops that.
 */
static int bridge_pin_mac(const char *br)
{
	char path[128], mac[32] = "";
	FILE *f;

	snprintf(path, sizeof(path), "/sys/class/net/%s/address", br);
	f = fopen(path, "re");
	if (!f)
		return -errno;
	if (!fgets(mac, sizeof(mac), f))
		mac[0] = '\0';
	fclose(f);
	mac[strcspn(mac, "\n")] = '\0';
	if (!mac[0])
		return -EIO;
	return ip(false, "link", "set", br, "address", mac, NULL, NULL, NULL, NULL);
}

static int netns_init(struct bal_backend *b, char *err, size_t errlen)
{
	const struct mw_balancer_config *bc = &b->cfg->balancer;
	struct netns_priv *p;
	struct mw_cidr c;
	char addr[64], tmp[INET_ADDRSTRLEN];
	uint32_t hosts;
	int ret;

	b->host_netns = -1;
	if (mw_cidr_parse(&c, bc->subnet) || c.family != 4 || c.prefix > 29) {
		snprintf(err, errlen, "balancer.subnet %s: need an IPv4 subnet of /29 or larger",
			 bc->subnet);
		return -EINVAL;
	}
	ret = bal_confine_prepare(b, err, errlen);
	if (ret)
		return ret;
	b->host_netns = open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC);
	if (b->host_netns < 0) {
		ret = -errno;
		snprintf(err, errlen, "/proc/self/ns/net: %s", strerror(errno));
		return ret;
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
	ret = bal_ehash_open(&p->ehash, bc->netns_tcp_ehash, b->host_netns);
	if (ret)
		mw_warn("balancer.netns_tcp_ehash %d: %s; INS namespaces share the host's TCP "
			"hash table",
			bc->netns_tcp_ehash, strerror(-ret));

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
	if (!ret)
		ret = bridge_pin_mac(bc->bridge);
	if (ret) {
		snprintf(err, errlen, "cannot set up bridge %s with %s (ip failed; root?)",
			 bc->bridge, addr);
		ip(true, "link", "del", bc->bridge, NULL, NULL, NULL, NULL, NULL, NULL);
		bal_ehash_close(&p->ehash);
		free(p);
		b->priv = NULL;
		close(b->host_netns);
		b->host_netns = -1;
		return ret;
	}
	return 0;
}

/*
 * In the child: one `ip -batch -` fed @script on its stdin, in the balancer's
 * own network namespace when @host, else in ours.  ip(8) stops at the first
 * failing line; its message names it.
 */
static int ip_batch(const struct bal_backend *b, bool host, const char *script)
{
	char *const argv[] = { "ip", "-batch", "-", NULL };
	size_t len = strlen(script);
	int p[2], status, ret = 0;
	pid_t pid;

	if (pipe2(p, O_CLOEXEC))
		return -errno;
	pid = fork();
	if (pid < 0) {
		ret = -errno;
		close(p[0]);
		close(p[1]);
		return ret;
	}
	if (pid == 0) {
		if ((host && setns(b->host_netns, CLONE_NEWNET)) || dup2(p[0], STDIN_FILENO) < 0)
			_exit(126);
		if (close_range(3, ~0u, CLOSE_RANGE_CLOEXEC)) /* as for an INS (backend.c) */
			_exit(126);
		execvp(argv[0], argv);
		_exit(127);
	}
	close(p[0]);
	/* A few hundred bytes: the pipe takes them all before ip reads. */
	if (write(p[1], script, len) != (ssize_t)len)
		ret = -EIO;
	close(p[1]);
	while (waitpid(pid, &status, 0) < 0)
		if (errno != EINTR)
			return -errno;
	if (!ret && !(WIFEXITED(status) && WEXITSTATUS(status) == 0))
		ret = -EIO;
	return ret;
}

/* In the child: let unprivileged processes bind any port in this namespace. */
static int low_ports(void)
{
	int fd, ret = 0;

	fd = open(UNPRIV_PORT_SYSCTL, O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	if (write(fd, "0\n", 2) != 2)
		ret = -EIO;
	if (close(fd) && !ret)
		ret = -errno;
	return ret;
}

struct spawn_arg {
	struct bal_backend *b;
	int id;
	char ns[64], vh[32], addr[64], ip[INET_ADDRSTRLEN], gw[INET_ADDRSTRLEN];
};

/* The child, in its new network namespace: wire it up, then become mw-ins. */
static int spawn_child(void *data)
{
	struct spawn_arg *a = data;
	struct bal_backend *b = a->b;
	const char *br = b->cfg->balancer.bridge;
	char script[1024], step[160] = "";
	int ret;

	bal_child_reset();
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	/*
	 * Ours: forget the address's neighbour entry (an earlier INS may have had
	 * it, and the bridge would keep the dead veth's MAC for up to a minute),
	 * name the namespace, a veth whose peer is born in it, an isolated bridge port.
	 */
	snprintf(script, sizeof(script),
		 "neigh flush to %s dev %s\n"
		 "netns attach %s %d\n"
		 "link add %s type veth peer name eth0 netns %s\n"
		 "link set %s master %s\n"
		 "link set %s type bridge_slave isolated on\n"
		 "link set %s up\n",
		 a->ip, br, a->ns, (int)getpid(), a->vh, a->ns, a->vh, br, a->vh, a->vh);
	ret = ip_batch(b, true, script);
	if (ret)
		snprintf(step, sizeof(step), "namespace, veth %s, bridge %s", a->vh, br);
	if (!ret && (ret = low_ports()))
		snprintf(step, sizeof(step), "%s", UNPRIV_PORT_SYSCTL);
	if (!ret && (ret = bal_ehash_child_limits(&((struct netns_priv *)b->priv)->ehash)))
		snprintf(step, sizeof(step), "the host's tcp_max_tw_buckets, tcp_max_syn_backlog");
	if (!ret) {
		/* Its own: address, links up, default route via the bridge. */
		snprintf(script, sizeof(script),
			 "addr add %s dev eth0\n"
			 "link set eth0 up\n"
			 "link set lo up\n"
			 "route add default via %s\n",
			 a->addr, a->gw);
		ret = ip_batch(b, false, script);
		if (ret)
			snprintf(step, sizeof(step), "address %s, default route via %s", a->addr,
				 a->gw);
	}
	if (ret) {
		fprintf(stderr, "mw-balancer: INS %d: setting up namespace %s failed at %s: %s\n",
			a->id, a->ns, step, strerror(-ret));
		_exit(127);
	}
	close(b->host_netns);
	bal_backend_exec_ins(b, a->id);
}

static int netns_spawn(struct bal_backend *b, struct bal_ins_handle *h, char *err, size_t errlen)
{
	struct netns_priv *p = b->priv;
	struct spawn_arg a = { .b = b, .id = h->id };
	struct in_addr gw;
	char *stack;
	int slot, k, ret = 0;
	pid_t pid;

	for (k = 0, slot = 0; k < p->slots; k++) {
		int s = (p->last_slot + k) % p->slots + 1;

		if (!p->used[s]) {
			slot = s;
			break;
		}
	}
	if (!slot) {
		snprintf(err, errlen, "subnet %s has no free address", b->cfg->balancer.subnet);
		return -ENOSPC;
	}
	ns_name(b, h->id, a.ns, sizeof(a.ns));
	veth_name(b, h->id, 'h', a.vh, sizeof(a.vh));
	h->addr.s_addr = htonl(p->net + 1 + slot);
	inet_ntop(AF_INET, &h->addr, a.ip, sizeof(a.ip));
	snprintf(a.addr, sizeof(a.addr), "%s/%d", a.ip, p->prefix);
	gw.s_addr = htonl(p->net + 1);
	inet_ntop(AF_INET, &gw, a.gw, sizeof(a.gw));

	/* The child has its own copy of everything (no CLONE_VM): @a and the stack too. */
	stack = malloc(CHILD_STACK);
	if (!stack) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	pid = bal_ehash_clone(&p->ehash, b->host_netns, spawn_child, stack + CHILD_STACK, &a);
	if (pid < 0) {
		ret = -errno;
		snprintf(err, errlen, "clone(CLONE_NEWNET): %s", strerror(errno));
	}
	free(stack);
	if (ret)
		return ret;
	h->pid = pid;
	h->slot = slot;
	p->used[slot] = 1;
	p->last_slot = slot;
	snprintf(h->name, sizeof(h->name), "%s", a.ns);
	return 0;
}

static void netns_stop(struct bal_backend *b, struct bal_ins_handle *h)
{
	if (h->pid > 0)
		kill(h->pid, SIGTERM);
}

static void netns_cleanup(struct bal_backend *b, struct bal_ins_handle *h)
{
	struct netns_priv *p = b->priv;
	char ns[64], path[300];

	/* What `ip netns del` does, without a process: the namespace ends with its INS. */
	ns_name(b, h->id, ns, sizeof(ns));
	snprintf(path, sizeof(path), NETNS_DIR "/%s", ns);
	if (umount2(path, MNT_DETACH) && errno != EINVAL && errno != ENOENT)
		mw_warn("INS %d: umount %s: %s", h->id, path, strerror(errno));
	if (unlink(path) && errno != ENOENT)
		mw_warn("INS %d: rm %s: %s", h->id, path, strerror(errno));
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
	bal_ehash_close(&((struct netns_priv *)b->priv)->ehash);
	free(b->priv);
	b->priv = NULL;
	if (b->host_netns >= 0)
		close(b->host_netns);
	b->host_netns = -1;
}

const struct bal_backend_ops bal_backend_netns = {
	.name = "netns",
	.init = netns_init,
	.spawn = netns_spawn,
	.stop = netns_stop,
	.cleanup = netns_cleanup,
	.fini = netns_fini,
};
