/* SPDX-License-Identifier: MIT */
/* main.c - mw-flowd entry point: pcap files first, then live sensors on a 1 s report clock */
#include <errno.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common/daemon.h"
#include "common/log.h"
#include "flowd/mapi_flow.h"
#include "flowd/sensor.h"
#include "flowd/sensor_nf.h"
#include "flowd/sensor_set.h"

/*
 * Theory of operation: every configured pcap file is an offline sensor with
 * its own engine and packet clock, read to its end at start (minflow's
 * rminflow).  The live interfaces share one engine (one scope): each ring's
 * fd wakes the loop when the kernel retires a block, and a 1 s timer drains
 * the rings, reads the kernel's drop counters and moves the report clock to
 * wall-clock time minus CLOCK_LAG_US, so frames of a second still sitting in
 * a not-yet-retired block are counted in it.  Without interfaces mw-flowd
 * exits once the files are read.
 */

#define CLOCK_LAG_US 300000
#define FL_NF_MAX    (1 + MW_FLOWD_NETFLOW_MAX) /* flowd.netflow and flowd.netflow_streams */

struct flowd {
	struct mw_daemon *d;
	FILE *out;
	struct fl_engine live;
	struct fl_sensor_set sensors;
	bool live_open;
	ev_timer clock;
	struct fl_mapi mapi;
	bool mapi_open;
	uint64_t mapi_reported; /* report interval of the last "mapi" line */
	struct fl_ipfix ipfix;
	struct fl_nf nf[FL_NF_MAX];
	int n_nf; /* open Netflow sensors */
};

static int flowd_opt_read(struct mw_config *cfg, const char *arg)
{
	struct mw_flowd_config *f = &cfg->flowd;

	if (strlen(arg) >= sizeof(f->pcap_files[0]))
		return -EINVAL;
	snprintf(f->pcap_files[0], sizeof(f->pcap_files[0]), "%s", arg);
	f->pcap_files_count = 1;
	f->interfaces_count = 0;
	return 0;
}

static const struct mw_daemon_opt flowd_opts[] = {
	{ "read", true, "read this pcap file only (no live sensors), report, exit",
	  flowd_opt_read },
	{ NULL, false, NULL, NULL },
};

/*
 * flowd.sched_policy: mw-flowd is a bulk reader (a ring block, a Netflow drain at
 * a time) that nobody waits on, so it runs SCHED_BATCH by default: its wake-ups
 * never preempt the relay's processes, whose ping-pong of wake-ups carries every
 * request, yet it keeps its fair share of the CPU (SCHED_IDLE would starve it,
 * and its ring would drop, on a busy machine).  Unprivileged: no capability.
 */
static void flowd_sched(const char *policy)
{
	struct sched_param sp = { .sched_priority = 0 };
	int pol = SCHED_OTHER;

	if (!strcmp(policy, "batch"))
		pol = SCHED_BATCH;
	else if (!strcmp(policy, "idle"))
		pol = SCHED_IDLE;
	if (sched_getscheduler(0) == pol)
		return;
	if (sched_setscheduler(0, pol, &sp))
		mw_warn("flowd.sched_policy \"%s\": %s; scheduling left as it was", policy,
			strerror(errno));
	else
		mw_info("scheduling policy: %s", policy);
}

static int flowd_open_report(struct flowd *f)
{
	const char *path = f->d->cfg.flowd.report_file;
	FILE *out;
	int i;

	if (!path[0]) {
		f->out = stdout;
		return 0;
	}
	out = fopen(path, "ae");
	if (!out)
		return -errno;
	if (f->out && f->out != stdout)
		fclose(f->out);
	f->out = out;
	f->live.out = out;
	for (i = 0; i < FL_NF_MAX; i++)
		f->nf[i].socks.out = out;
	return 0;
}

static int flowd_read_files(struct flowd *f, const struct mw_flowd_config *cfg)
{
	int i, failed = 0;

	for (i = 0; i < cfg->pcap_files_count; i++) {
		struct fl_engine e;
		char err[256] = "";
		int ret;

		ret = fl_engine_init(&e, cfg, f->out, cfg->pcap_files[i], err, sizeof(err));
		if (!ret) {
			e.ipfix = f->ipfix.fd >= 0 ? &f->ipfix : NULL;
			ret = fl_pcap_read(&e, cfg->pcap_files[i], cfg->filter, err, sizeof(err));
		}
		if (ret < 0) {
			mw_err("%s", err);
			failed++;
		} else {
			mw_info("%s: %d frames", cfg->pcap_files[i], ret);
		}
		fl_engine_fini(&e);
	}
	return failed;
}

static void flowd_clock_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct flowd *f = w->data;
	struct timespec now;
	uint64_t us;
	int i;

	(void)loop;
	(void)revents;
	clock_gettime(CLOCK_REALTIME, &now);
	for (i = 0; i < f->n_nf; i++)
		fl_nf_tick(&f->nf[i], (uint64_t)now.tv_sec);
	if (f->live_open) {
		fl_sensors_drain(&f->sensors);
		f->live.sensor_drops = fl_sensors_drops(&f->sensors);
	}
	if (f->mapi_open) {
		uint64_t interval = (uint64_t)f->d->cfg.flowd.report_interval_s;

		fl_mapi_sync(&f->mapi);
		if ((uint64_t)now.tv_sec / interval != f->mapi_reported) {
			f->mapi_reported = (uint64_t)now.tv_sec / interval;
			fl_mapi_report(&f->mapi, f->out, (uint64_t)now.tv_sec);
		}
	}
	if (!f->live_open)
		return;
	us = (uint64_t)now.tv_sec * 1000000 + (uint64_t)now.tv_nsec / 1000 - CLOCK_LAG_US;
	fl_engine_tick(&f->live, us / 1000000);
}

static void flowd_start_clock(struct flowd *f)
{
	ev_timer_init(&f->clock, flowd_clock_cb, 1.0, 1.0);
	f->clock.data = f;
	ev_timer_start(f->d->loop, &f->clock);
}

static void flowd_reload(struct mw_daemon *d)
{
	struct flowd *f = d->ctx;
	int ret = flowd_open_report(f);

	if (ret)
		mw_err("reopen %s: %s", d->cfg.flowd.report_file, strerror(-ret));
	else
		mw_notice("report file reopened");
}

static void flowd_tap(void *ctx, int sensor, uint64_t ts_us, const uint8_t *frame, size_t caplen,
		      uint32_t wirelen)
{
	struct flowd *f = ctx;

	fl_mapi_packet(&f->mapi, sensor, ts_us, frame, caplen, wirelen);
}

static void flowd_sensor_gone(void *ctx, int slot)
{
	struct flowd *f = ctx;

	fl_mapi_sensor_gone(&f->mapi, slot);
}

static int flowd_open_mapi(struct flowd *f)
{
	const struct mw_flowd_config *cfg = &f->d->cfg.flowd;
	struct fl_mapi_limits lim;
	char err[256] = "";
	int i, ret;

	if (!cfg->mapi_socket[0])
		return 0;
	lim.flows = cfg->mapi_max_flows;
	lim.clients = cfg->mapi_max_clients;
	lim.client_flows = cfg->mapi_client_flows;
	ret = fl_mapi_open(&f->mapi, f->d->loop, cfg->mapi_socket, cfg->mapi_group, &lim,
			   (const char(*)[16])f->sensors.names,
			   FL_SENSOR_SLOTS, err, sizeof(err));
	if (!ret)
		ret = fl_mapi_set_acl(&f->mapi, (const char(*)[256])cfg->mapi_sensor_groups,
				      cfg->mapi_sensor_groups_count, err, sizeof(err));
	if (!ret)
		mw_subuids_load(&f->mapi.subuids, cfg->subuid_file, geteuid());
	if (ret) {
		mw_err("%s", err);
		fl_mapi_close(&f->mapi);
		return ret;
	}
	f->mapi_open = true;
	if (f->live_open) {
		f->live.tap = flowd_tap;
		f->live.tap_ctx = f;
		f->sensors.gone = flowd_sensor_gone;
		f->sensors.gone_ctx = f;
	}
	for (i = 0; i < f->n_nf; i++) {
		f->mapi.nf_names[i] = f->nf[i].name;
		f->nf[i].socks.tap = fl_mapi_record;
		f->nf[i].socks.tap_ctx = &f->mapi;
		f->nf[i].socks.tap_index = i;
		f->nf[i].socks.tap_mask = &f->mapi.nf_scope_any;
	}
	f->mapi.n_nf = f->n_nf;
	return 0;
}

static int flowd_open_live(struct flowd *f)
{
	const struct mw_flowd_config *cfg = &f->d->cfg.flowd;
	char err[256] = "";
	int ret;

	ret = fl_engine_init(&f->live, cfg, f->out, "live", err, sizeof(err));
	if (ret) {
		mw_err("%s", err);
		return ret;
	}
	f->live.ipfix = f->ipfix.fd >= 0 ? &f->ipfix : NULL;
	ret = fl_sensors_open(&f->sensors, f->d->loop, &f->live, cfg, err, sizeof(err));
	f->live_open = true;
	if (ret) {
		mw_err("%s", err);
		return ret;
	}
	return 0;
}

/* The Netflow streams to consume: flowd.netflow, then flowd.netflow_streams. */
static int flowd_nf_addrs(const struct mw_flowd_config *cfg, const char *addrs[FL_NF_MAX])
{
	int i, j, n = 0;

	if (cfg->netflow[0])
		addrs[n++] = cfg->netflow;
	for (i = 0; i < cfg->netflow_streams_count; i++) {
		if (!cfg->netflow_streams[i][0])
			continue;
		for (j = 0; j < n && strcmp(addrs[j], cfg->netflow_streams[i]); j++)
			;
		if (j < n) {
			mw_err("flowd.netflow_streams: \"%s\" is named twice",
			       cfg->netflow_streams[i]);
			return -EINVAL;
		}
		addrs[n++] = cfg->netflow_streams[i];
	}
	return n;
}

static int flowd_open_nf(struct flowd *f)
{
	const struct mw_flowd_config *cfg = &f->d->cfg.flowd;
	const char *addrs[FL_NF_MAX];
	char err[256] = "";
	int i, n, ret;

	n = flowd_nf_addrs(cfg, addrs);
	if (n < 0)
		return n;
	for (i = 0; i < n; i++) {
		ret = fl_nf_open(&f->nf[i], f->d->loop, cfg, addrs[i], f->out, err, sizeof(err));
		if (ret) {
			mw_err("%s", err);
			return ret;
		}
		f->nf[i].socks.ipfix = f->ipfix.fd >= 0 ? &f->ipfix : NULL;
		f->n_nf++;
	}
	return 0;
}

int main(int argc, char **argv)
{
	static struct mw_daemon d = {
		.name = "mw-flowd",
		.summary = "Flow analytics: per-second classes, top-N and anomalies from "
			   "pcap files and live interfaces.",
		.opts = flowd_opts,
	};
	static struct flowd f = { .d = &d, .ipfix = { .fd = -1 } };
	char err[256] = "";
	int i, ret, status = EXIT_FAILURE;
	bool live, streams;

	ret = mw_daemon_init(&d, argc, argv);
	if (ret >= 0)
		return ret;
	d.ctx = &f;
	d.on_reload = flowd_reload;
	flowd_sched(d.cfg.flowd.sched_policy);
	ret = flowd_open_report(&f);
	if (ret) {
		mw_err("report file %s: %s", d.cfg.flowd.report_file, strerror(-ret));
		goto out;
	}
	ret = fl_ipfix_open(&f.ipfix, d.cfg.flowd.ipfix_collector,
			    (uint32_t)d.cfg.flowd.ipfix_domain,
			    (uint32_t)d.cfg.flowd.ipfix_template_interval_s, err, sizeof(err));
	if (ret) {
		mw_err("%s", err);
		goto out;
	}
	live = d.cfg.flowd.interfaces_count > 0;
	streams = d.cfg.flowd.netflow[0] || d.cfg.flowd.netflow_streams_count > 0;
	if (flowd_read_files(&f, &d.cfg.flowd) && !live && !streams)
		goto out;
	if (!live && !streams) {
		if (!d.cfg.flowd.pcap_files_count)
			mw_notice("nothing to watch: set flowd.interfaces, flowd.pcap_files or "
				  "flowd.netflow (docs/flowd.md)");
		mw_daemon_ready(&d, "read %d pcap file(s)", d.cfg.flowd.pcap_files_count);
		status = EXIT_SUCCESS;
		goto out;
	}
	if ((live && flowd_open_live(&f)) || flowd_open_nf(&f) || flowd_open_mapi(&f))
		goto out;
	flowd_start_clock(&f);
	mw_notice("watching %d interface(s), filter \"%s\"; MAPI on %s; netflow %s%s",
		  f.sensors.nactive, d.cfg.flowd.filter,
		  f.mapi_open ? d.cfg.flowd.mapi_socket : "(none)",
		  f.n_nf ? f.nf[0].addr : "(none)", f.n_nf > 1 ? " and more" : "");
	mw_daemon_ready(&d, "watching %d interface(s) and %d netflow stream(s)",
			f.sensors.nactive, f.n_nf);
	ev_run(d.loop, 0);
	mw_daemon_stopping(&d);
	if (live) {
		fl_sensors_drain(&f.sensors);
		fl_engine_flush(&f.live);
	}
	status = EXIT_SUCCESS;
out:
	for (i = 0; i < f.n_nf; i++)
		fl_nf_close(&f.nf[i], (uint64_t)time(NULL));
	if (f.live_open)
		fl_sensors_close(&f.sensors);
	ev_timer_stop(d.loop, &f.clock); /* a watcher never started is left alone */
	if (f.mapi_open) {
		if (status == EXIT_SUCCESS)
			fl_mapi_report(&f.mapi, f.out, (uint64_t)time(NULL));
		fl_mapi_close(&f.mapi);
	}
	fl_engine_fini(&f.live);
	fl_ipfix_close(&f.ipfix);
	if (f.out && f.out != stdout)
		fclose(f.out);
	mw_daemon_fini(&d);
	return status;
}
