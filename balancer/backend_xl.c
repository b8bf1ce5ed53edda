/* SPDX-License-Identifier: MIT */
/* backend_xl.c - INS backend: a Xen domU per INS through libxenlight */
#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "balancer/backend.h"
#include "balancer/xlcfg.h"

/*
 * The domU is described by bal_xl_domcfg_build() (xlcfg.c, unit-tested):
 * kernel, ramdisk, memory, vcpus, one vif into cfg.bridge with a MAC derived
 * from the INS id, and a kernel command line telling the INS its id and
 * address (slot k of the subnet, as the netns backend).  The bridge must
 * exist in Dom0 (the vif hotplug script attaches to it).  Without a
 * hypervisor (/dev/xen/privcmd) init fails with a clear error; without
 * libxenlight at build time, too.  A domU has no pid: liveness is polled
 * through alive().
 */

#define PRIVCMD	  "/dev/xen/privcmd"
#define SLOTS_MAX 1024

#ifdef MW_HAVE_XENLIGHT
#include <libxl.h>
#include <libxl_utils.h>
#include <xentoollog.h>

struct xl_priv {
	libxl_ctx *ctx;
	xentoollog_logger_stdiostream *lg;
	unsigned char used[SLOTS_MAX + 1];
};

static int xl_init(struct bal_backend *b, char *err, size_t errlen)
{
	struct xl_priv *p;

	if (access(PRIVCMD, R_OK | W_OK)) {
		snprintf(err, errlen, "no Xen hypervisor (" PRIVCMD ": %s)", strerror(errno));
		return -ENODEV;
	}
	p = calloc(1, sizeof(*p));
	if (!p)
		return -ENOMEM;
	p->lg = xtl_createlogger_stdiostream(stderr, XTL_ERROR, 0);
	if (!p->lg || libxl_ctx_alloc(&p->ctx, LIBXL_VERSION, 0, (xentoollog_logger *)p->lg)) {
		snprintf(err, errlen, "libxl_ctx_alloc failed");
		if (p->lg)
			xtl_logger_destroy((xentoollog_logger *)p->lg);
		free(p);
		return -EIO;
	}
	b->priv = p;
	return 0;
}

static int xl_spawn(struct bal_backend *b, struct bal_ins_handle *h, char *err, size_t errlen)
{
	struct xl_priv *p = b->priv;
	struct bal_xl_domcfg c;
	libxl_domain_config dc;
	uint32_t domid = 0;
	unsigned m[6];
	int slot, ret, i;

	for (slot = 1; slot <= SLOTS_MAX && p->used[slot]; slot++)
		;
	ret = bal_xl_domcfg_build(&c, &b->cfg->balancer, h->id, slot, err, errlen);
	if (ret)
		return ret;
	libxl_domain_config_init(&dc);
	dc.c_info.type = LIBXL_DOMAIN_TYPE_PV;
	dc.c_info.name = strdup(c.name);
	libxl_domain_build_info_init_type(&dc.b_info, LIBXL_DOMAIN_TYPE_PV);
	dc.b_info.max_memkb = dc.b_info.target_memkb = (uint64_t)c.memory_kb;
	dc.b_info.max_vcpus = c.vcpus;
	if (libxl_cpu_bitmap_alloc(p->ctx, &dc.b_info.avail_vcpus, c.vcpus) == 0)
		for (i = 0; i < c.vcpus; i++)
			libxl_bitmap_set(&dc.b_info.avail_vcpus, i);
	dc.b_info.kernel = strdup(c.kernel);
	dc.b_info.ramdisk = c.ramdisk[0] ? strdup(c.ramdisk) : NULL;
	dc.b_info.cmdline = strdup(c.cmdline);
	dc.nics = calloc(1, sizeof(*dc.nics));
	if (dc.nics) {
		dc.num_nics = 1;
		libxl_device_nic_init(&dc.nics[0]);
		dc.nics[0].bridge = strdup(c.bridge);
		/* c.mac is "xx:xx:xx:xx:xx:xx", written by bal_xlcfg_build() */
		for (i = 0; i < 6; i++)
			m[i] = (unsigned)strtoul(c.mac + 3 * i, NULL, 16);
		for (i = 0; i < 6; i++)
			dc.nics[0].mac[i] = (uint8_t)m[i];
	}
	ret = libxl_domain_create_new(p->ctx, &dc, &domid, NULL, NULL);
	if (!ret)
		ret = libxl_domain_unpause(p->ctx, domid, NULL);
	libxl_domain_config_dispose(&dc);
	if (ret) {
		snprintf(err, errlen, "libxl could not create domain %s (error %d)", c.name, ret);
		if (domid)
			libxl_domain_destroy(p->ctx, domid, NULL);
		return -EIO;
	}
	h->pid = 0;
	h->domid = domid;
	h->slot = slot;
	p->used[slot] = 1;
	inet_pton(AF_INET, c.ip, &h->addr);
	snprintf(h->name, sizeof(h->name), "%s", c.name);
	return 0;
}

static void xl_stop(struct bal_backend *b, struct bal_ins_handle *h)
{
	struct xl_priv *p = b->priv;

	libxl_domain_shutdown(p->ctx, h->domid, NULL);
}

static int xl_alive(struct bal_backend *b, struct bal_ins_handle *h)
{
	struct xl_priv *p = b->priv;
	libxl_dominfo info;
	int alive;

	libxl_dominfo_init(&info);
	alive = libxl_domain_info(p->ctx, &info, h->domid) == 0 && !info.shutdown && !info.dying;
	libxl_dominfo_dispose(&info);
	return alive;
}

static void xl_cleanup(struct bal_backend *b, struct bal_ins_handle *h)
{
	struct xl_priv *p = b->priv;

	libxl_domain_destroy(p->ctx, h->domid, NULL);
	if (h->slot > 0 && h->slot <= SLOTS_MAX)
		p->used[h->slot] = 0;
}

static void xl_fini(struct bal_backend *b)
{
	struct xl_priv *p = b->priv;

	if (!p)
		return;
	libxl_ctx_free(p->ctx);
	xtl_logger_destroy((xentoollog_logger *)p->lg);
	free(p);
	b->priv = NULL;
}

#else /* !MW_HAVE_XENLIGHT */

static int xl_init(struct bal_backend *b, char *err, size_t errlen)
{
	if (access(PRIVCMD, R_OK | W_OK))
		snprintf(err, errlen, "no Xen hypervisor (" PRIVCMD ": %s)", strerror(errno));
	else
		snprintf(err, errlen, "mw-balancer was built without libxenlight");
	return -ENODEV;
}

static int xl_spawn(struct bal_backend *b, struct bal_ins_handle *h, char *err, size_t errlen)
{
	return -ENODEV;
}

static void xl_stop(struct bal_backend *b, struct bal_ins_handle *h)
{
}

static int xl_alive(struct bal_backend *b, struct bal_ins_handle *h)
{
	return 0;
}

static void xl_cleanup(struct bal_backend *b, struct bal_ins_handle *h)
{
}

static void xl_fini(struct bal_backend *b)
{
}
#endif

const struct bal_backend_ops bal_backend_xl = {
	.name = "xl",
	.init = xl_init,
	.spawn = xl_spawn,
	.stop = xl_stop,
	.alive = xl_alive,
	.cleanup = xl_cleanup,
	.fini = xl_fini,
};
