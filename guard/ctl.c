/* SPDX-License-Identifier: MIT */
/* ctl.c - mw-guard's control socket: one text command per connection, for mwctl guard */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/ctl_server.h"
#include "common/log.h"
#include "guard/guardd.h"

/*
 * Protocol: common/ctl_server.h (the balancer's, docs/balancer.md "Control
 * socket"): one line, "status", "actions" or "reload"; the answer "ok" or
 * "error MESSAGE", then records "KIND key=value ...".  At most
 * GD_CTL_CLIENTS clients at once.
 */

#define GD_CTL_CLIENTS 8

static void cmd_status(struct guardd *g, struct mw_ctl_out *o)
{
	const struct gd_engine *e = &g->eng;
	const struct gd_counters *st = &e->st;
	char local[MW_ADDR_STRLEN];
	int i;

	mw_ctl_outf(o,
		    "status mode=%s netflow=%s netflow_addr=%s connects=%" PRIu64
		    " disconnects=%" PRIu64 " observations=%" PRIu64 " accepts=%" PRIu64
		    " conns=%zu sources=%zu blocks=%zu listeners=%d conn_drops=%" PRIu64
		    " source_drops=%" PRIu64 " conn_evictions=%" PRIu64 " source_evictions=%" PRIu64
		    " block_drops=%" PRIu64 " listener_drops=%" PRIu64 " actions=%" PRIu64
		    " shield_set=%" PRIu64 " shield_clear=%" PRIu64 " close=%" PRIu64
		    " block=%" PRIu64 " unblock=%" PRIu64 " rotate=%" PRIu64 " rotate_ok=%" PRIu64
		    " rotate_failed=%" PRIu64 " requests=%" PRIu64 " accepted=%" PRIu64
		    " gone=%" PRIu64 " refused=%" PRIu64 " not_sent=%" PRIu64 " reloads=%" PRIu64
		    " reload_errors=%" PRIu64 "\n",
		    g->cfg->guard.mode, g->nf ? "connected" : "disconnected", g->nf_addr,
		    g->connects, g->disconnects, st->observations, st->accepts, e->conns.n,
		    e->sources.n, e->blocks.n, e->nlisteners, e->conns.drops, e->sources.drops,
		    e->conns.evictions, e->sources.evictions, e->blocks.drops, st->listener_drops,
		    g->act.seq, st->actions[GD_SHIELD_SET], st->actions[GD_SHIELD_CLEAR],
		    st->actions[GD_CLOSE], st->actions[GD_BLOCK], st->actions[GD_UNBLOCK],
		    st->actions[GD_ROTATE], g->rotations_ok, g->rotations_failed, g->act.requests,
		    g->act.responses_ok, g->act.gone, g->act.rejected, g->act.send_failed,
		    g->reloads, g->reload_errors);
	for (i = 0; i < e->nlisteners; i++) {
		const struct gd_listener *l = &e->listeners[i];

		mw_ctl_outf(o,
			    "listener sock=%" PRIu64
			    " local=%s protected=%s baseline=%s held=%u slow=%u"
			    " accept_ms=%u response_ms=%u pressure=%s levers=%s closes=%" PRIu64
			    "\n",
			    l->id, mw_addr_format(&l->local, local, sizeof(local)),
			    l->proto >= 0 ? "yes" : "no", l->baseline ? "set" : "-", l->held,
			    l->slow, l->accept_ms, l->response_ms, l->pressure ? "yes" : "no",
			    l->levers ? "on" : "off", l->closes);
	}
}

static void cmd_actions(struct guardd *g, struct mw_ctl_out *o)
{
	const struct gd_record *r;
	size_t i;

	for (i = 0; (r = gd_act_record(&g->act, i)); i++)
		mw_ctl_outf(o,
			    "action n=%" PRIu64 " time=%.3f kind=%s%s target=%s reason=%s result=%s"
			    " evidence=%s\n",
			    r->n, r->when,
			    r->result[0] == 'r' && !strcmp(r->result, "report") ? "would_" : "",
			    gd_kind_name(r->kind), r->target, r->reason, r->result, r->evidence);
}

static void run(void *ctx, char *line, struct mw_ctl_out *o)
{
	struct guardd *g = ctx;
	char err[512];

	if (!strcmp(line, "status")) {
		mw_ctl_outf(o, "ok\n");
		cmd_status(g, o);
	} else if (!strcmp(line, "actions")) {
		mw_ctl_outf(o, "ok\n");
		cmd_actions(g, o);
	} else if (!strcmp(line, "reload")) {
		if (gd_reload(g, err, sizeof(err))) {
			mw_warn("reload rejected, old configuration kept: %s", err);
			mw_ctl_outf(o, "error %s\n", err);
		} else {
			mw_ctl_outf(o, "ok\n");
		}
	} else {
		mw_ctl_outf(o, "error unknown command '%.64s' (status, actions, reload)\n", line);
	}
}

/**
 * gd_ctl_open() - listen on guard.control_socket (0600)
 * Return: 0 or -errno with @err
 */
int gd_ctl_open(struct guardd *g, char *err, size_t errlen)
{
	return mw_ctl_server_open(&g->ctl, g->d->loop, g->cfg->guard.control_socket, GD_CTL_CLIENTS,
				  run, g, err, errlen);
}

void gd_ctl_close(struct guardd *g)
{
	mw_ctl_server_close(g->ctl);
	g->ctl = NULL;
}
