/* SPDX-License-Identifier: MIT */
/* xl_libxl.c - the xl worker's driver: libxenlight (create, shutdown, destroy, state, children) */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "balancer/xl_worker.h"
#include "common/keystore.h"
#include "common/log.h"

/*
 * Runs on the xl worker thread (xl_worker.c), except child_reaped.  libev
 * owns SIGCHLD and reaps every child, so libxl is told with
 * libxl_childproc_setmode(libxl_sigchld_owner_mainloop) never to touch the
 * signal and learns of its children (the vif hotplug scripts) through
 * libxl_childproc_reaped(), which it requires and without which it waits
 * for them forever (or asserts when it meets the signal itself).
 *
 * A new domain is created paused; before it runs, /mw/ins/<domid> is created
 * in XenStore owned by it (mw_keystore_give()), the only place it may write
 * its half of the channel handshake (docs/xen.md); then it is unpaused.
 * destroy removes that directory again, also for a domain already gone; at
 * open, the directories of domains that no longer exist (a balancer that
 * died, or a domain destroyed while none ran) are removed.
 */

#ifdef MW_HAVE_XENLIGHT
#include <libxl.h>
#include <libxl_utils.h>
#include <xentoollog.h>

struct xl_libxl {
	libxl_ctx *ctx;
	xentoollog_logger_stdiostream *lg;
	struct mw_keystore *xs;
};

struct xl_sweep {
	struct xl_libxl *x;
	unsigned removed;
};

/* One /mw/ins/<name> at open: removed when no domain <name> exists. */
static void xl_sweep_one(void *arg, const char *name)
{
	struct xl_sweep *s = arg;
	libxl_dominfo info;
	char key[64], *end;
	unsigned long domid = strtoul(name, &end, 10);
	int ret;

	if (*end || end == name || domid == 0 || domid >= 0x7ff0)
		return; /* not a domid: nobody's leftover that we know of */
	libxl_dominfo_init(&info);
	ret = libxl_domain_info(s->x->ctx, &info, (uint32_t)domid);
	libxl_dominfo_dispose(&info);
	if (ret != ERROR_DOMAIN_NOTFOUND)
		return;
	snprintf(key, sizeof(key), "/mw/ins/%lu", domid);
	if (!mw_keystore_remove(s->x->xs, key))
		s->removed++;
}

static void xl_sweep(struct xl_libxl *x)
{
	struct xl_sweep s = { .x = x };

	mw_keystore_list(x->xs, "/mw/ins", xl_sweep_one, &s);
	if (s.removed)
		mw_notice("XenStore: removed /mw/ins of %u domain(s) that no longer exist",
			  s.removed);
}

static const libxl_childproc_hooks xl_hooks = {
	.chldowner = libxl_sigchld_owner_mainloop,
};

static int xl_open(void **out, char *err, size_t errlen)
{
	struct xl_libxl *x = calloc(1, sizeof(*x));
	int ret;

	if (!x)
		return -ENOMEM;
	ret = mw_keystore_open(&x->xs, "xenstore", NULL, err, errlen);
	if (ret) {
		free(x);
		return ret;
	}
	x->lg = xtl_createlogger_stdiostream(stderr, XTL_ERROR, 0);
	if (!x->lg || libxl_ctx_alloc(&x->ctx, LIBXL_VERSION, 0, (xentoollog_logger *)x->lg)) {
		snprintf(err, errlen, "libxl_ctx_alloc failed");
		if (x->lg)
			xtl_logger_destroy((xentoollog_logger *)x->lg);
		mw_keystore_close(x->xs);
		free(x);
		return -EIO;
	}
	libxl_childproc_setmode(x->ctx, &xl_hooks, NULL);
	xl_sweep(x);
	*out = x;
	return 0;
}

static void xl_close(void *ctx)
{
	struct xl_libxl *x = ctx;

	libxl_ctx_free(x->ctx);
	xtl_logger_destroy((xentoollog_logger *)x->lg);
	mw_keystore_close(x->xs);
	free(x);
}

static void xl_config(struct xl_libxl *x, const struct bal_xl_domcfg *c, libxl_domain_config *dc)
{
	unsigned m[6];
	int i;

	libxl_domain_config_init(dc);
	dc->c_info.type = LIBXL_DOMAIN_TYPE_PV;
	dc->c_info.name = strdup(c->name);
	libxl_domain_build_info_init_type(&dc->b_info, LIBXL_DOMAIN_TYPE_PV);
	dc->b_info.max_memkb = dc->b_info.target_memkb = (uint64_t)c->memory_kb;
	dc->b_info.max_vcpus = c->vcpus;
	if (libxl_cpu_bitmap_alloc(x->ctx, &dc->b_info.avail_vcpus, c->vcpus) == 0)
		for (i = 0; i < c->vcpus; i++)
			libxl_bitmap_set(&dc->b_info.avail_vcpus, i);
	dc->b_info.kernel = strdup(c->kernel);
	dc->b_info.ramdisk = c->ramdisk[0] ? strdup(c->ramdisk) : NULL;
	dc->b_info.cmdline = strdup(c->cmdline);
	dc->nics = calloc(1, sizeof(*dc->nics));
	if (dc->nics) {
		dc->num_nics = 1;
		libxl_device_nic_init(&dc->nics[0]);
		dc->nics[0].bridge = strdup(c->bridge);
		/* c->mac is "xx:xx:xx:xx:xx:xx", written by bal_xl_domcfg_build() */
		for (i = 0; i < 6; i++)
			m[i] = (unsigned)strtoul(c->mac + 3 * i, NULL, 16);
		for (i = 0; i < 6; i++)
			dc->nics[0].mac[i] = (uint8_t)m[i];
	}
}

static int xl_create(void *ctx, const struct bal_xl_domcfg *c, uint32_t *domid, char *err,
		     size_t errlen)
{
	struct xl_libxl *x = ctx;
	libxl_domain_config dc;
	char key[64];
	int ret;

	*domid = 0;
	xl_config(x, c, &dc);
	ret = libxl_domain_create_new(x->ctx, &dc, domid, NULL, NULL);
	libxl_domain_config_dispose(&dc);
	if (ret) {
		snprintf(err, errlen, "libxl could not create domain %s (error %d)", c->name, ret);
		goto fail;
	}
	snprintf(key, sizeof(key), "/mw/ins/%u", *domid);
	ret = mw_keystore_give(x->xs, key, *domid);
	if (ret) {
		snprintf(err, errlen, "XenStore %s for domain %u: %s", key, *domid, strerror(-ret));
		goto fail;
	}
	ret = libxl_domain_unpause(x->ctx, *domid, NULL);
	if (ret) {
		snprintf(err, errlen, "libxl could not unpause domain %u (error %d)", *domid, ret);
		goto fail;
	}
	return 0;
fail:
	if (*domid)
		libxl_domain_destroy(x->ctx, *domid, NULL);
	return -EIO;
}

static int xl_shutdown(void *ctx, uint32_t domid)
{
	struct xl_libxl *x = ctx;

	return libxl_domain_shutdown(x->ctx, domid, NULL) ? -EIO : 0;
}

/* Its XenStore directory goes with it: a later domain with the same id starts clean. */
static int xl_destroy(void *ctx, uint32_t domid)
{
	struct xl_libxl *x = ctx;
	char key[64];
	int ret = libxl_domain_destroy(x->ctx, domid, NULL);

	snprintf(key, sizeof(key), "/mw/ins/%u", domid);
	mw_keystore_remove(x->xs, key);
	return ret && ret != ERROR_DOMAIN_NOTFOUND ? -EIO : 0;
}

static int xl_state(void *ctx, uint32_t domid)
{
	struct xl_libxl *x = ctx;
	libxl_dominfo info;
	int ret;

	libxl_dominfo_init(&info);
	ret = libxl_domain_info(x->ctx, &info, domid);
	if (ret == ERROR_DOMAIN_NOTFOUND)
		ret = BAL_XL_D_GONE;
	else if (ret)
		ret = -EIO;
	else
		ret = info.shutdown || info.dying ? BAL_XL_D_SHUTDOWN : BAL_XL_D_RUNNING;
	libxl_dominfo_dispose(&info);
	return ret;
}

static void xl_child_reaped(void *ctx, pid_t pid, int status)
{
	struct xl_libxl *x = ctx;

	libxl_childproc_reaped(x->ctx, pid, status); /* ERROR_UNKNOWN_CHILD: not libxl's */
}

static const struct bal_xl_driver xl_libxl_driver = {
	.name = "libxl",
	.open = xl_open,
	.close = xl_close,
	.create = xl_create,
	.shutdown = xl_shutdown,
	.destroy = xl_destroy,
	.state = xl_state,
	.child_reaped = xl_child_reaped,
};

const struct bal_xl_driver *const bal_xl_libxl = &xl_libxl_driver;
#else
const struct bal_xl_driver *const bal_xl_libxl = NULL;
#endif
