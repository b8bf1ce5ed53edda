/* SPDX-License-Identifier: MIT */
/* fence.c - splice mode with PROXY v2: only the balancer's own connections reach the INS */
#include <errno.h>
#include <linux/netlink.h>
#include <nftables/libnftables.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "balancer/bal.h"
#include "balancer/kfront.h"
#include "common/cidr.h"
#include "common/log.h"

/*
 * With ins.proxy_protocol the INS believes the PROXY v2 header of any connection from
 * ins.proxy_from, the bridge address.  Every process of the host reaches the INS from
 * that address, so without a fence a local user could connect to an INS directly and
 * name any client: mw-guard would block that client, and the user would escape the
 * per-source levers.  The fence is one nftables table: on the host's output hook, a
 * new connection to balancer.subnet from a socket not owned by the balancer's
 * effective uid is reset.  Root's other processes pass (root is trusted anyway); the
 * balancer's proxy and health checks are its own.  On the forward hook, a new
 * connection to the subnet that did not come in on balancer.bridge is reset too: a
 * container's or VM's traffic that the host routes there is masqueraded to the bridge
 * address by the usual "MASQUERADE ! -o their-bridge" rules of Docker, libvirt or
 * podman, and would pass for the balancer's (INS to INS over the bridge, which
 * br_netfilter also shows this hook, comes in on the bridge and passes).  The table is
 * named after the tag, replaced at start (a crashed run's is gone) and deleted at exit.
 */

struct bal_fence {
	struct nft_ctx *nft;
	char table[64];
};

/**
 * bal_fence_render() - the fence's nftables commands
 * @buf, @len: output
 * @table:     its table (inet)
 * @subnet:    balancer.subnet, "ip/prefix"
 * @bridge:    balancer.bridge (an interface name, checked by the configuration)
 * @uid:       the one uid whose sockets may connect there
 * Return: 0, or -EINVAL (a bad subnet, or @buf too small)
 */
int bal_fence_render(char *buf, size_t len, const char *table, const char *subnet,
		     const char *bridge, unsigned uid)
{
	struct mw_cidr c;
	const char *fam;
	int n;

	if (mw_cidr_parse(&c, subnet))
		return -EINVAL;
	fam = c.family == 4 ? "ip" : "ip6";
	n = snprintf(buf, len,
		     "add table inet %s\n"
		     "delete table inet %s\n"
		     "table inet %s {\n"
		     "\tchain out {\n"
		     "\t\ttype filter hook output priority 0; policy accept;\n"
		     "\t\t%s daddr %s tcp flags & (syn | ack) == syn meta skuid != %u "
		     "counter reject with tcp reset\n"
		     "\t}\n"
		     "\tchain routed {\n"
		     "\t\ttype filter hook forward priority 0; policy accept;\n"
		     "\t\tiifname != \"%s\" %s daddr %s tcp flags & (syn | ack) == syn "
		     "counter reject with tcp reset\n"
		     "\t}\n"
		     "}\n",
		     table, table, table, fam, subnet, uid, bridge, fam, subnet);
	return n < 0 || (size_t)n >= len ? -EINVAL : 0;
}

/**
 * bal_fence_open() - set the fence up (splice mode, ins.proxy_protocol); else nothing
 * @b:   the balancer
 * @out: the fence, or NULL when none is needed
 * Return: 0, or -errno with @err set
 */
int bal_fence_open(struct bal *b, struct bal_fence **out, char *err, size_t errlen)
{
	const struct mw_config *cfg = b->cfg;
	char buf[1024], base[48];
	struct bal_fence *f;
	int ret;

	*out = NULL;
	if (!cfg->ins.proxy_protocol || strcmp(cfg->balancer.mode, "splice"))
		return 0;
	if (!bal_nft_kernel()) {
		snprintf(err, errlen,
			 "PROXY v2 fence: this kernel has no nf_tables (nfnetlink): "
			 "ins.proxy_protocol needs it");
		return -EPROTONOSUPPORT;
	}
	f = calloc(1, sizeof(*f));
	if (!f || !(f->nft = nft_ctx_new(NFT_CTX_DEFAULT))) {
		free(f);
		snprintf(err, errlen, "PROXY v2 fence: out of memory");
		return -ENOMEM;
	}
	nft_ctx_buffer_output(f->nft);
	nft_ctx_buffer_error(f->nft);
	ret = bal_kf_table_name(cfg->balancer.tag, base, sizeof(base));
	if (!ret) {
		snprintf(f->table, sizeof(f->table), "%s_fence", base);
		ret = bal_fence_render(buf, sizeof(buf), f->table, cfg->balancer.subnet,
				       cfg->balancer.bridge, (unsigned)geteuid());
	}
	if (ret) {
		snprintf(err, errlen, "PROXY v2 fence: bad balancer.tag or balancer.subnet");
	} else {
		ret = bal_nft_run(f->nft, buf, err, errlen);
	}
	if (ret) {
		nft_ctx_free(f->nft);
		free(f);
		return ret;
	}
	mw_notice("PROXY v2 fence: nftables table inet %s: only uid %u connects to %s, nothing "
		  "forwarded from outside %s",
		  f->table, (unsigned)geteuid(), cfg->balancer.subnet, cfg->balancer.bridge);
	*out = f;
	return 0;
}

/**
 * bal_fence_close() - delete the fence's table
 * @f: the fence, or NULL
 */
void bal_fence_close(struct bal_fence *f)
{
	char buf[128], err[256];

	if (!f)
		return;
	snprintf(buf, sizeof(buf), "delete table inet %s\n", f->table);
	if (bal_nft_run(f->nft, buf, err, sizeof(err)))
		mw_warn("PROXY v2 fence: removing table %s: %s", f->table, err);
	nft_ctx_free(f->nft);
	free(f);
}

/**
 * bal_nft_kernel() - does the kernel speak nftables' netlink?
 *
 * Asked before any nft_ctx_new(): libnftables exits the process when it cannot
 * open its socket (a kernel without nfnetlink, such as a Xen dom0's without the
 * modules).  Return: true if a NETLINK_NETFILTER socket opens
 */
bool bal_nft_kernel(void)
{
	int fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_NETFILTER);

	if (fd < 0)
		return false;
	close(fd);
	return true;
}

/**
 * bal_nft_sweep() - at start: remove this tag's tables that this run will not make
 * @cfg: the configuration
 *
 * A run killed in the other mode left its table: a kernel-mode one would go on
 * steering the port to the INS addresses past this run's proxy (and its
 * balancer.max_conns), a fence one would go on resetting connections to the
 * subnet.  The tables this run makes replace their stale selves when made.
 * Skipped without root or without nf_tables in the kernel (no table was made
 * then either); failures are logged.
 */
void bal_nft_sweep(const struct mw_config *cfg)
{
	bool kernel = !strcmp(cfg->balancer.mode, "kernel");
	bool fence = !kernel && cfg->ins.proxy_protocol;
	char base[48], buf[256], err[256];
	struct nft_ctx *nft;
	size_t n = 0;

	if (geteuid() || bal_kf_table_name(cfg->balancer.tag, base, sizeof(base)) ||
	    !bal_nft_kernel())
		return;
	buf[0] = 0;
	if (!kernel) /* (one of the two at least: kernel mode has no fence) */
		n = (size_t)snprintf(buf, sizeof(buf), "add table ip %s\ndelete table ip %s\n",
				     base, base);
	if (!fence)
		snprintf(buf + n, sizeof(buf) - n,
			 "add table inet %s_fence\ndelete table inet %s_fence\n", base, base);
	nft = nft_ctx_new(NFT_CTX_DEFAULT);
	if (!nft)
		return;
	nft_ctx_buffer_output(nft);
	nft_ctx_buffer_error(nft);
	if (bal_nft_run(nft, buf, err, sizeof(err)))
		mw_warn("removing stale nftables tables of tag %s: %s", cfg->balancer.tag, err);
	nft_ctx_free(nft);
}
