/* SPDX-License-Identifier: MIT */
/* backend_xl.c - INS backend: a Xen domU per INS, through libxenlight on a worker thread */
#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "balancer/backend.h"
#include "balancer/xl_worker.h"
#include "balancer/xlcfg.h"

/*
 * The domU is described by bal_xl_domcfg_build() (xlcfg.c, unit-tested):
 * kernel, ramdisk, memory, vcpus, one vif into cfg.bridge with a MAC derived
 * from the address slot, and a kernel command line telling the guest its
 * address (slot k of the subnet, as the netns backend).  The bridge must
 * exist in dom0 (the vif hotplug script attaches to it).
 *
 * Every hypervisor call runs on the worker thread (xl_worker.c): spawn only
 * queues the creation and returns, so the proxy's loop never waits for
 * libxl.  A domain has no pid: alive() reads the worker's record (created,
 * running, or gone: failed, died, destroyed) and fills in the domid, which
 * is also the INS id mw-pvm knows it by (docs/xen.md).  stop() asks for a
 * shutdown; kill() (the balancer's stop timeout, a health check taking it
 * down) destroys; the worker destroys by itself a domain that shut down or
 * outlived a shutdown by BAL_XLW_STOP_S.  Without a hypervisor
 * (/dev/xen/privcmd) init fails with a clear error; without libxenlight at
 * build time, too.
 */

#define PRIVCMD	  "/dev/xen/privcmd"
#define SLOTS_MAX 1024

struct xl_priv {
	struct bal_xlw *w;
	unsigned char used[SLOTS_MAX + 1];
};

static int xl_init(struct bal_backend *b, char *err, size_t errlen)
{
	static const struct bal_xlw_timing t = { .poll_s = BAL_XLW_POLL_S,
						 .stop_s = BAL_XLW_STOP_S };
	struct xl_priv *p;
	int ret;

	if (access(PRIVCMD, R_OK | W_OK)) {
		snprintf(err, errlen, "no Xen hypervisor (" PRIVCMD ": %s)", strerror(errno));
		return -ENODEV;
	}
	if (!bal_xl_libxl) {
		snprintf(err, errlen, "mw-balancer was built without libxenlight");
		return -ENODEV;
	}
	p = calloc(1, sizeof(*p));
	if (!p)
		return -ENOMEM;
	ret = bal_xlw_start(&p->w, bal_xl_libxl, b->loop, &t, err, errlen);
	if (ret) {
		free(p);
		return ret;
	}
	b->priv = p;
	return 0;
}

static int xl_spawn(struct bal_backend *b, struct bal_ins_handle *h, char *err, size_t errlen)
{
	struct xl_priv *p = b->priv;
	struct bal_xl_domcfg c;
	int slot, ret;

	for (slot = 1; slot <= SLOTS_MAX && p->used[slot]; slot++)
		;
	ret = bal_xl_domcfg_build(&c, &b->cfg->balancer, h->id, slot, err, errlen);
	if (ret)
		return ret;
	ret = bal_xlw_create(p->w, h->id, &c);
	if (ret) {
		snprintf(err, errlen, "cannot queue domain %s: %s", c.name, strerror(-ret));
		return ret;
	}
	h->pid = 0;
	h->domid = 0;
	h->slot = slot;
	p->used[slot] = 1;
	inet_pton(AF_INET, c.ip, &h->addr);
	snprintf(h->name, sizeof(h->name), "%s", c.name);
	return 0;
}

static void xl_stop(struct bal_backend *b, struct bal_ins_handle *h)
{
	struct xl_priv *p = b->priv;

	bal_xlw_shutdown(p->w, h->id);
}

static void xl_kill(struct bal_backend *b, struct bal_ins_handle *h)
{
	struct xl_priv *p = b->priv;

	bal_xlw_destroy(p->w, h->id);
}

static int xl_alive(struct bal_backend *b, struct bal_ins_handle *h)
{
	struct xl_priv *p = b->priv;
	uint32_t domid = 0;
	int alive = bal_xlw_alive(p->w, h->id, &domid);

	if (domid)
		h->domid = domid;
	return alive;
}

static void xl_cleanup(struct bal_backend *b, struct bal_ins_handle *h)
{
	struct xl_priv *p = b->priv;

	bal_xlw_forget(p->w, h->id);
	if (h->slot > 0 && h->slot <= SLOTS_MAX)
		p->used[h->slot] = 0;
}

static void xl_fini(struct bal_backend *b)
{
	struct xl_priv *p = b->priv;

	if (!p)
		return;
	bal_xlw_stop(p->w);
	free(p);
	b->priv = NULL;
}

const struct bal_backend_ops bal_backend_xl = {
	.name = "xl",
	.init = xl_init,
	.spawn = xl_spawn,
	.stop = xl_stop,
	.kill = xl_kill,
	.alive = xl_alive,
	.cleanup = xl_cleanup,
	.fini = xl_fini,
};
