/* SPDX-License-Identifier: MIT */
/* main.c - mw-balancer entry point: start-up, readiness, clean shutdown */
#include <stdlib.h>

#include "balancer/nf_aggregate.h"
#include "common/daemon.h"
#include "common/log.h"

int main(int argc, char **argv)
{
	static struct mw_daemon d = {
		.name = "mw-balancer",
		.summary =
			"Spawn and retire INS instances and balance client connections over them.",
	};
	const struct mw_balancer_config *bc;
	struct bal_nf *nf = NULL;
	char err[256];
	int ret;

	ret = mw_daemon_init(&d, argc, argv);
	if (ret >= 0)
		return ret;
	bc = &d.cfg.balancer;

	ret = bal_nf_open(&nf, d.loop, &d.cfg, err, sizeof(err));
	if (ret) {
		mw_err("%s", err);
		mw_daemon_fini(&d);
		return EXIT_FAILURE;
	}

	/* The backends, front end and Netflow aggregation are not wired in yet. */
	mw_notice("ready: backend %s, policy %s, %d..%d INS, %d listener(s)", bc->backend,
		  bc->policy, bc->min_ins, bc->max_ins, bc->listen_count);
	mw_daemon_ready(&d, "backend %s, policy %s, %d listener(s)", bc->backend, bc->policy,
			bc->listen_count);

	ev_run(d.loop, 0);

	mw_daemon_stopping(&d);
	bal_nf_close(nf);
	mw_notice("stopped");
	mw_daemon_fini(&d);
	return EXIT_SUCCESS;
}
