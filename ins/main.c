/* SPDX-License-Identifier: MIT */
/* main.c - mw-ins entry point: options, fd limit, settings, channel, loop, exit status */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/daemon.h"
#include "common/log.h"
#include "ins/ins.h"
#include "ins/ins_sandbox.h"

static int opt_id(struct mw_config *cfg, const char *arg)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(arg, &end, 10);
	if (errno || end == arg || *end || v < 1 || v > 65535)
		return -EINVAL;
	cfg->ins.id = (int)v;
	return 0;
}

static int opt_pvm_socket(struct mw_config *cfg, const char *arg)
{
	if (!arg[0] || strlen(arg) >= sizeof(cfg->ins.pvm_socket))
		return -EINVAL;
	snprintf(cfg->ins.pvm_socket, sizeof(cfg->ins.pvm_socket), "%s", arg);
	return 0;
}

static const struct mw_daemon_opt ins_opts[] = {
	{ "id", true, "INS id N (1..65535), overrides ins.id", opt_id },
	{ "pvm-socket", true, "PATH where mw-pvm accepts INS, overrides ins.pvm_socket",
	  opt_pvm_socket },
	{ NULL, false, NULL, NULL },
};

int main(int argc, char **argv)
{
	static struct mw_daemon d = {
		.name = "mw-ins",
		.summary = "Run the protected app's TCP sockets on this network stack.",
		.opts = ins_opts,
	};
	static struct ins ins;
	char err[256] = "";
	long nofile = 0;
	int ret;

	ret = mw_daemon_init(&d, argc, argv);
	if (ret >= 0)
		return ret;
	ins.d = &d;
	ins.loop = d.loop;
	ins.cfg = &d.cfg.ins;
	ins.exit_status = EXIT_FAILURE;
	d.ctx = &ins;
	ins.stats.max_sockets = (uint64_t)ins.cfg->max_sockets;

	ret = ins_nofile_raise(ins.cfg->nofile, &nofile);
	if (ret)
		mw_warn("cannot raise RLIMIT_NOFILE to %d: %s; staying at %ld", ins.cfg->nofile,
			strerror(-ret), nofile);
	else
		mw_info("RLIMIT_NOFILE %ld", nofile);
	ret = ins_tune_init(&ins.tune, ins.cfg, err, sizeof(err));
	if (ret) {
		mw_err("%s", err);
		goto out;
	}
	ret = ins_proxy_init(&ins);
	if (ret) {
		mw_err("ins.proxy_from \"%s\" is not an \"ip/prefix\" network",
		       ins.cfg->proxy_from);
		goto out;
	}
	ret = ins_table_init(&ins.socks, 1024);
	if (ret) {
		mw_err("socket table: %s", strerror(-ret));
		goto out;
	}
	ret = ins_shield_rates_init(&ins);
	if (ret) {
		mw_err("shield source/prefix tables (ins.shield_sources, ins.shield_prefixes): %s",
		       strerror(-ret));
		goto out;
	}
	if (!strcmp(ins.cfg->channel, "xen")) {
		ret = ins_xen_prepare(&ins, &d.cfg.ins, err, sizeof(err));
		if (ret) {
			mw_err("%s", err);
			goto out;
		}
	}
	if (ins_channel_start(&ins))
		goto out_stop;
	mw_spin_start(ins.loop, &ins.spin, ins.cfg->spin_us);
	ret = ins_sandbox_enter(ins.cfg->seccomp, ins.xen_joined, err, sizeof(err));
	if (ret < 0) {
		mw_err("sandbox: %s", err);
		goto out;
	}
	mw_info("sandbox: no_new_privs, not dumpable, seccomp %s (%d system calls allowed)",
		ins.cfg->seccomp ? "on" : "off (ins.seccomp)", ret);
	mw_info("INS %d starting: mw-pvm %s, window %d, heartbeat %d ms%s%s", ins.cfg->id,
		ins.xen_joined ? "over the Xen channel" : ins.cfg->pvm_socket,
		ins.cfg->socket_window, ins.cfg->heartbeat_ms,
		ins.cfg->proxy_protocol ? ", PROXY v2 header required from " : "",
		!ins.cfg->proxy_protocol ? ""
		: ins.pp.any		 ? "any sender"
					 : ins.cfg->proxy_from);

	ev_run(ins.loop, 0);

	/* Leaving the loop without a fatal error means SIGTERM/SIGINT. */
	if (!ins.dead)
		ins.exit_status = EXIT_SUCCESS;
	mw_daemon_stopping(&d);
	mw_spin_stop(ins.loop, &ins.spin);
out_stop:
	ins_channel_stop(&ins);
	ins_table_fini(&ins.socks);
	ins_shield_rates_fini(&ins);
	ins_blockset_fini(&ins.blocked);
	if (ins.exit_status == EXIT_SUCCESS)
		mw_notice("stopped");
out:
	mw_daemon_fini(&d);
	return ins.exit_status;
}
