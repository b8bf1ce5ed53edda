/* SPDX-License-Identifier: MIT */
/* main.c - mw-guard entry point: start-up, ready once subscribed, reload, clean shutdown */
#include <stdlib.h>
#include <string.h>

#include "common/daemon.h"
#include "common/log.h"
#include "guard/guardd.h"

static void on_gone(void *ctx, uint64_t sock)
{
	gd_engine_forget(ctx, sock);
}

static void on_reload(struct mw_daemon *d)
{
	char err[512];

	if (gd_reload(d->ctx, err, sizeof(err)))
		mw_warn("SIGHUP: reload rejected, old configuration kept: %s", err);
}

int main(int argc, char **argv)
{
	static struct mw_daemon d = {
		.name = "mw-guard",
		.summary = "Measure pressure on the protected app from a Netflow stream and "
			   "defend it: shields, closes, blocks.",
	};
	static struct guardd g;
	char err[512];
	int ret, status = EXIT_FAILURE;

	ret = mw_daemon_init(&d, argc, argv);
	if (ret >= 0)
		return ret;
	g.d = &d;
	g.cfg = &d.cfg;
	d.ctx = &g;
	d.on_reload = on_reload;
	if (gd_act_init(&g.act, (size_t)d.cfg.guard.max_actions) ||
	    gd_engine_init(&g.eng, &d.cfg.guard, gd_act_emit, &g.act, err, sizeof(err))) {
		mw_err("%s", g.act.ring ? err : "out of memory");
		goto out;
	}
	if (d.cfg.guard.max_sources < d.cfg.guard.max_conns)
		mw_warn("guard.max_sources %d < guard.max_conns %d: one INS's connections from as "
			"many addresses can take every source (docs/guard.md)",
			d.cfg.guard.max_sources, d.cfg.guard.max_conns);
	if (gd_engine_set_ins_net(&g.eng, d.cfg.balancer.subnet)) {
		mw_err("balancer.subnet: \"%s\" is not ip/prefix", d.cfg.balancer.subnet);
		goto out;
	}
	g.act.report = !strcmp(d.cfg.guard.mode, "report");
	g.act.on_gone = on_gone;
	g.act.gone_ctx = &g.eng;
	if (gd_balctl_open(&g)) {
		mw_err("out of memory");
		goto out;
	}
	if (gd_ctl_open(&g, err, sizeof(err))) {
		mw_err("%s", err);
		goto out;
	}
	gd_nf_start(&g);
	ev_run(d.loop, 0);
	mw_daemon_stopping(&d);
	status = EXIT_SUCCESS;
out:
	gd_nf_stop(&g);
	gd_ctl_close(&g);
	gd_balctl_close(&g);
	gd_engine_fini(&g.eng);
	gd_act_fini(&g.act);
	if (g.cfg != &d.cfg)
		free(g.cfg);
	mw_notice("stopped");
	mw_daemon_fini(&d);
	return status;
}
