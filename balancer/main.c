/* SPDX-License-Identifier: MIT */
/* main.c - mw-balancer entry point: start-up, readiness, reload, clean shutdown */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "balancer/bal.h"
#include "balancer/nf_aggregate.h"
#include "common/daemon.h"
#include "common/log.h"

static void on_reload(struct mw_daemon *d)
{
	char err[1024];

	int ret = bal_reload(d->ctx, err, sizeof(err));

	if (ret == -EAGAIN)
		mw_warn("SIGHUP: %s", err);
	else if (ret)
		mw_warn("SIGHUP: reload rejected, old configuration kept: %s", err);
}

int main(int argc, char **argv)
{
	static struct mw_daemon d = {
		.name = "mw-balancer",
		.summary =
			"Spawn and retire INS instances and balance client connections over them.",
	};
	static struct bal b;
	const struct mw_balancer_config *bc;
	char err[1024];
	int ret, status = EXIT_FAILURE;
	bool inited = false;

	ret = mw_daemon_init(&d, argc, argv);
	if (ret >= 0)
		return ret;
	bc = &d.cfg.balancer;
	d.ctx = &b;
	d.on_reload = on_reload;

	ret = bal_kf_check(&d.cfg, err, sizeof(err));
	if (!ret)
		ret = bal_nf_tag_check(&d.cfg, err, sizeof(err));
	if (ret) {
		mw_err("%s", err);
		goto out;
	}
	ret = bal_init(&b, &d, err, sizeof(err));
	if (ret) {
		mw_err("backend %s: %s", bc->backend, err);
		goto out;
	}
	inited = true;
	ret = bal_ctl_open(&b, &b.ctl, err, sizeof(err));
	if (!ret)
		bal_nft_sweep(&d.cfg);
	if (!ret && !strcmp(bc->mode, "kernel"))
		ret = bal_kf_open(&b, &b.kf, err, sizeof(err));
	else if (!ret)
		ret = bal_fence_open(&b, &b.fence, err, sizeof(err));
	if (!ret && !b.kf)
		ret = bal_fe_open(&b, &b.fe, err, sizeof(err));
	if (!ret)
		ret = bal_nf_open(&b.nf, d.loop, &d.cfg, err, sizeof(err));
	if (ret) {
		mw_err("%s", err);
		goto out;
	}
	bal_start(&b);
	mw_notice("ready: backend %s, mode %s, policy %s, %d..%d INS, %d listener(s)", bc->backend,
		  bc->mode, bc->policy, bc->min_ins, bc->max_ins, bc->listen_count);
	mw_daemon_ready(&d, "backend %s, policy %s, %d listener(s)", bc->backend, bc->policy,
			bc->listen_count);

	ev_run(d.loop, 0);

	mw_daemon_stopping(&d);
	status = EXIT_SUCCESS;
out:
	bal_nf_close(b.nf);
	b.nf = NULL;
	bal_fe_close(b.fe);
	bal_fence_close(b.fence);
	b.fence = NULL;
	bal_kf_close(b.kf);
	b.kf = NULL;
	bal_ctl_close(b.ctl);
	if (inited)
		bal_shutdown(&b);
	mw_notice("stopped");
	mw_daemon_fini(&d);
	return status;
}
