/* SPDX-License-Identifier: MIT */
/* xlcfg.c - build the xl backend's domU configuration (pure: no Xen calls) */
#include <arpa/inet.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "balancer/xlcfg.h"
#include "common/cidr.h"

int bal_xl_domcfg_build(struct bal_xl_domcfg *out, const struct mw_balancer_config *bc, int id,
			int slot, char *err, size_t errlen)
{
	struct mw_cidr c;
	uint32_t net, hosts;
	struct in_addr a;
	char ip[INET_ADDRSTRLEN], gw[INET_ADDRSTRLEN];

	memset(out, 0, sizeof(*out));
	if (!bc->xl_kernel[0]) {
		snprintf(err, errlen,
			 "balancer.xl_kernel is not set: the xl backend needs a kernel");
		return -EINVAL;
	}
	if (id < 1 || id > 65535) {
		snprintf(err, errlen, "INS id %d is outside 1..65535", id);
		return -EINVAL;
	}
	if (mw_cidr_parse(&c, bc->subnet) || c.family != 4 || c.prefix > 30) {
		snprintf(err, errlen, "balancer.subnet %s: need an IPv4 subnet of /30 or larger",
			 bc->subnet);
		return -EINVAL;
	}
	memcpy(&net, c.net, 4);
	net = ntohl(net);
	hosts = c.prefix == 0 ? UINT32_MAX - 1 : (1u << (32 - c.prefix)) - 2;
	if (slot < 1 || (uint32_t)slot + 1 > hosts) {
		snprintf(err, errlen, "address slot %d is outside subnet %s", slot, bc->subnet);
		return -EINVAL;
	}
	a.s_addr = htonl(net + 1 + (uint32_t)slot);
	inet_ntop(AF_INET, &a, ip, sizeof(ip));
	a.s_addr = htonl(net + 1);
	inet_ntop(AF_INET, &a, gw, sizeof(gw));

	snprintf(out->ip, sizeof(out->ip), "%s", ip);
	snprintf(out->name, sizeof(out->name), "mw-%s-ins%d", bc->tag, id);
	snprintf(out->kernel, sizeof(out->kernel), "%s", bc->xl_kernel);
	snprintf(out->ramdisk, sizeof(out->ramdisk), "%s", bc->xl_ramdisk);
	out->memory_kb = (long)bc->xl_memory_mb * 1024;
	out->vcpus = bc->xl_vcpus;
	snprintf(out->bridge, sizeof(out->bridge), "%s", bc->bridge);
	/* Xen's OUI; the id in the low 16 bits keeps MACs unique per balancer. */
	snprintf(out->mac, sizeof(out->mac), "00:16:3e:%02x:%02x:%02x", (unsigned)slot & 0xff,
		 (unsigned)(id >> 8) & 0xff, (unsigned)id & 0xff);
	snprintf(out->cmdline, sizeof(out->cmdline), "mw.id=%d mw.ip=%s/%d mw.gw=%s", id, ip,
		 c.prefix, gw);
	return 0;
}

int bal_xl_domcfg_format(const struct bal_xl_domcfg *c, char *buf, size_t len)
{
	int n;

	n = snprintf(buf, len,
		     "name = \"%s\"\n"
		     "type = \"pv\"\n"
		     "kernel = \"%s\"\n"
		     "%s%s%s"
		     "memory = %ld\n"
		     "vcpus = %d\n"
		     "vif = [ \"bridge=%s,mac=%s\" ]\n"
		     "extra = \"%s\"\n"
		     "on_poweroff = \"destroy\"\n"
		     "on_crash = \"destroy\"\n",
		     c->name, c->kernel, c->ramdisk[0] ? "ramdisk = \"" : "", c->ramdisk,
		     c->ramdisk[0] ? "\"\n" : "", c->memory_kb / 1024, c->vcpus, c->bridge, c->mac,
		     c->cmdline);
	if (n < 0 || (size_t)n >= len)
		return -ENOSPC;
	return n;
}
