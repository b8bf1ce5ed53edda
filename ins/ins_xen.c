/* SPDX-License-Identifier: MIT */
/* ins_xen.c - mw-ins in a domU: join mw-pvm through XenStore, granted pages and an event channel */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "common/keystore.h"
#include "common/log.h"
#include "ins/ins.h"

/*
 * Theory of operation (ins.channel = "xen"; the keys: common/channel_xen.h)
 *
 * On Xen the INS id is the domain id: mw-pvm checks that the hello under
 * /mw/ins/<domid>/ names it, and only that domain (and dom0) may write there
 * (mw-balancer creates the directory owned by it).  So ins_xen_prepare()
 * reads our domid from XenStore before anything uses ins.id.
 *
 * ins_xen_join() runs before the loop and before the sandbox (it opens
 * /dev/xen/{gntdev,evtchn} and maps pages, which the allow-list forbids
 * later): mw_channel_xen_join() writes our hello and waits at most 5 s for
 * mw-pvm's answer.  mw-pvm may not run yet (a domU boots in any order), or
 * may have given up on a slow handshake and revoked its grants: such
 * failures are retried with a growing pause for at most JOIN_LIMIT_S, as the
 * local backend retries its connect; no devices is fatal at once.  The
 * keystore is closed once joined: the channel needs it no more.
 */

#define JOIN_LIMIT_S 30
#define JOIN_PAUSE_MAX_MS 1000

/**
 * ins_xen_prepare() - ins.channel "xen": open XenStore, take our domid as the INS id
 * @ins:    the daemon (xen_ks set here)
 * @cfg:    the INS config (id overwritten by the domid)
 * @err:    one line on failure
 * @errlen: its size
 * Return: 0 or -errno (no xenstored, no domid)
 */
int ins_xen_prepare(struct ins *ins, struct mw_ins_config *cfg, char *err, size_t errlen)
{
	char why[224];
	int domid, ret;

	ret = mw_keystore_open(&ins->xen_ks, "xenstore", NULL, why, sizeof(why));
	if (ret) {
		snprintf(err, errlen, "ins.channel xen: %s", why);
		return ret;
	}
	domid = mw_keystore_domid(ins->xen_ks);
	if (domid <= 0) {
		snprintf(err, errlen, "ins.channel xen: %s",
			 domid == 0 ? "we are dom0, not an INS domU"
				    : "cannot read our domid from XenStore");
		mw_keystore_close(ins->xen_ks);
		ins->xen_ks = NULL;
		return domid == 0 ? -EINVAL : domid;
	}
	if (cfg->id != domid)
		mw_info("ins.channel xen: INS id %d is our domid (ins.id %d ignored)", domid,
			cfg->id);
	cfg->id = domid;
	return 0;
}

/*
 * Worth another handshake: mw-pvm is not up yet (timeout), or it gave up on us
 * and took its pages back while we mapped them (EINVAL), or its keys were
 * half-written (EPROTO).  Not: no devices, no memory for our side.
 */
static bool xen_join_retry(int ret)
{
	return ret == -ETIMEDOUT || ret == -EINVAL || ret == -EPROTO || ret == -EIO;
}

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

/**
 * ins_xen_join() - the Xen handshake, blocking and bounded; then the channel is up
 * @ins: the daemon (xen_ks open, id = domid); xen_ks is closed on return
 * Return: 0 or -errno (logged; mw-ins then exits non-zero)
 */
int ins_xen_join(struct ins *ins)
{
	uint16_t pvm = (uint16_t)ins->cfg->pvm_domid;
	double start = now_s();
	char err[192] = "", where[32];
	int pause = 50, ret;
	struct mw_hello mine;

	snprintf(where, sizeof(where), "in domain %u", pvm);
	ins_channel_hello(ins, &mine);
	for (;;) {
		err[0] = 0;
		ret = mw_channel_xen_join(&ins->ch, ins->xen_ks, pvm, &mine, err, sizeof(err));
		if (!xen_join_retry(ret) || now_s() - start > JOIN_LIMIT_S)
			break;
		if (!ins->connect_logged)
			mw_notice("waiting for mw-pvm %s (%s)", where, err);
		ins->connect_logged = true;
		poll(NULL, 0, pause);
		pause = pause * 2 > JOIN_PAUSE_MAX_MS ? JOIN_PAUSE_MAX_MS : pause * 2;
	}
	mw_keystore_close(ins->xen_ks);
	ins->xen_ks = NULL;
	if (!ret) {
		ins->xen_joined = true;
		ret = ins_channel_up(ins, where, err, sizeof(err));
	}
	if (ret)
		mw_err("handshake with mw-pvm %s failed: %s", where, err[0] ? err : strerror(-ret));
	return ret;
}
