/* SPDX-License-Identifier: MIT */
/* ctl.c - mw-balancer's control socket: one text command per connection, for mwctl */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>

#include "balancer/bal.h"
#include "balancer/nf_aggregate.h"
#include "common/ctl_server.h"
#include "common/log.h"

/*
 * Protocol: common/ctl_server.h (docs/balancer.md, "Control socket"): one
 * line, the answer "ok" or "error MESSAGE", then records "KIND key=value
 * ...", values without spaces.  The socket is 0600: only root (or the
 * balancer's user) can drive the balancer.  At most BAL_CTL_CLIENTS clients
 * at once.
 */

#define BAL_CTL_CLIENTS 16

static void rec_ins(struct mw_ctl_out *o, const struct bal *b, const struct bal_ins *i)
{
	char addr[INET_ADDRSTRLEN];

	inet_ntop(AF_INET, &i->h.addr, addr, sizeof(addr));
	mw_ctl_outf(o,
		    "ins id=%d state=%s address=%s pid=%d name=%s conns=%u total=%" PRIu64
		    " failed=%" PRIu64 " rx=%" PRIu64 " tx=%" PRIu64 " uptime=%.1f health=%s"
		    " health_fails=%u health_checks=%" PRIu64 " health_failed=%" PRIu64
		    " health_last=%s health_pvm=%s proxy_protocol=%s\n",
		    i->h.id, bal_ins_state_name(i->state), addr, (int)i->h.pid,
		    i->h.name[0] ? i->h.name : "-", i->conns, i->total, i->failed, i->rx, i->tx,
		    ev_now(b->loop) - i->spawned_at, bal_health_state_name(i->hc.state),
		    i->hc.fails, i->hc.checks, i->hc.failed,
		    i->hc.failed ? bal_reason_token(i->hc.last) : "-", bal_health_pvm_view_name(i),
		    i->proxy_protocol ? "on" : "off");
}

/* Parse a decimal int, whole string.  Return: 0 or -EINVAL */
static int parse_int(const char *s, int *v)
{
	char *end;
	long n;

	errno = 0;
	n = strtol(s, &end, 10);
	if (errno || end == s || *end || n < -1000000 || n > 1000000)
		return -EINVAL;
	*v = (int)n;
	return 0;
}

/* One consumer of the merged Netflow stream, with its role. */
static void ctl_nf_line(void *ctx, const char *line)
{
	mw_ctl_outf(ctx, "%s\n", line);
}

static void run(void *ctx, char *line, struct mw_ctl_out *o)
{
	struct bal *b = ctx;
	const struct mw_balancer_config *bc = &b->cfg->balancer;
	char *argv[8], *save = NULL, *t, err[1024] = "";
	const struct bal_ins *i;
	enum bal_policy p;
	unsigned conns = 0;
	uint64_t total = 0, kf_updates, kf_us_max, kf_us_last;
	int argc = 0, n, ret = 0;

	for (t = strtok_r(line, " \t\r", &save); t && argc < 8; t = strtok_r(NULL, " \t\r", &save))
		argv[argc++] = t;
	if (t) {
		mw_ctl_outf(o, "error too many words\n");
		return;
	}
	if (argc == 1 && !strcmp(argv[0], "netflow")) {
		mw_ctl_outf(o, "ok\n");
		bal_nf_list(b->nf, ctl_nf_line, o);
		return;
	}
	if ((argc == 1 && !strcmp(argv[0], "status")) ||
	    (argc == 2 && !strcmp(argv[0], "ins") && !strcmp(argv[1], "list")))
		bal_kf_count(b); /* kernel mode: not every tick counts them */
	if (argc == 1 && !strcmp(argv[0], "status")) {
		for (i = b->ins; i; i = i->next) {
			conns += i->conns;
			total += i->total;
		}
		mw_ctl_outf(o, "ok\n");
		mw_ctl_outf(o,
			    "status backend=%s policy=%s live=%d target=%d min=%d max=%d conns=%u "
			    "total=%" PRIu64 " spawned=%" PRIu64 " replaced=%" PRIu64
			    " listeners=%d proxy_protocol=%s autoscale=%s autoscale_up_conns=%d"
			    " autoscale_down_conns=%d autoscale_cooldown_ms=%d autoscale_state=%s"
			    " autoscale_ups=%" PRIu64 " autoscale_downs=%" PRIu64 "\n",
			    b->be.ops->name, bal_policy_name(b->policy), bal_ins_live(b), b->target,
			    bc->min_ins, bc->max_ins, conns, total, b->spawned, b->replaced,
			    bc->listen_count, b->cfg->ins.proxy_protocol ? "on" : "off",
			    bc->autoscale ? "on" : "off", bc->autoscale_up_conns,
			    bc->autoscale_down_conns, bc->autoscale_cooldown_ms,
			    bc->autoscale ? bal_autoscale_reason_name(b->as_reason) : "off",
			    b->as_ups, b->as_downs);
		if (o->len)
			o->len--; /* the record goes on: front-end and health counters */
		mw_ctl_outf(o,
			    " fe_conns=%u max_conns=%d draining=%d in_rotation=%d accept_paused=%s",
			    b->kf ? conns : bal_fe_conns(b->fe), bc->max_conns,
			    bal_ins_running(b) - bal_ins_live(b), bal_ins_in_rotation(b),
			    bal_fe_accept_paused(b->fe) ? "yes" : "no");
		bal_kf_stats(b->kf, &kf_updates, &kf_us_max, &kf_us_last);
		mw_ctl_outf(o,
			    " mode=%s kf_updates=%" PRIu64 " kf_update_us_max=%" PRIu64
			    " kf_update_us_last=%" PRIu64,
			    b->kf ? "kernel" : "splice", kf_updates, kf_us_max, kf_us_last);
		for (n = 0; n < BAL_R_COUNT; n++)
			mw_ctl_outf(o, " fail_%s=%" PRIu64, bal_reason_token((enum bal_reason)n),
				    b->reasons[n]);
		mw_ctl_outf(o, "\n");
		return;
	}
	if (argc == 2 && !strcmp(argv[0], "ins") && !strcmp(argv[1], "list")) {
		mw_ctl_outf(o, "ok\n");
		/* in id order */
		for (n = 0;;) {
			const struct bal_ins *next = NULL;

			for (i = b->ins; i; i = i->next)
				if (i->h.id > n && (!next || i->h.id < next->h.id))
					next = i;
			if (!next)
				break;
			rec_ins(o, b, next);
			n = next->h.id;
		}
		return;
	}
	if (argc == 2 && !strcmp(argv[0], "ins") && !strcmp(argv[1], "spawn")) {
		ret = bal_ins_spawn(b, err, sizeof(err));
		if (ret > 0) {
			mw_ctl_outf(o, "ok\n");
			rec_ins(o, b, bal_ins_find(b, ret));
			return;
		}
	} else if ((argc == 3 || argc == 4) && !strcmp(argv[0], "ins") &&
		   !strcmp(argv[1], "retire")) {
		/* "pvm:N": the INS mw-pvm knows as N (mw-guard reads it off socket ids). */
		bool by_pvm = !strncmp(argv[2], "pvm:", 4);

		if (parse_int(argv[2] + (by_pvm ? 4 : 0), &n) || n < 1) {
			mw_ctl_outf(o, "error ins retire: '%s' is not an INS id\n", argv[2]);
			return;
		}
		if (by_pvm) {
			struct bal_ins *bi = bal_ins_find_pvm(b, n);

			if (!bi) {
				mw_ctl_outf(o, "error ins retire: no INS known to mw-pvm as %d\n",
					    n);
				return;
			}
			n = bi->h.id;
		}
		if (argc == 4 && strcmp(argv[3], "drain")) {
			mw_ctl_outf(o, "error ins retire: unknown option '%s' (drain)\n", argv[3]);
			return;
		}
		ret = bal_ins_retire(b, n, argc == 4, err, sizeof(err));
	} else if (argc == 2 && !strcmp(argv[0], "scale")) {
		if (parse_int(argv[1], &n)) {
			mw_ctl_outf(o, "error scale: '%s' is not a number\n", argv[1]);
			return;
		}
		ret = bal_scale(b, n, err, sizeof(err));
	} else if (argc == 2 && !strcmp(argv[0], "policy")) {
		if (bal_policy_parse(argv[1], &p)) {
			mw_ctl_outf(o,
				    "error unknown policy '%s' (round-robin, least-connections, "
				    "least-busy, hash)\n",
				    argv[1]);
			return;
		}
		b->policy = p;
		bal_kf_sync(b); /* kernel mode: the new policy steers from now on */
		snprintf(b->cfg->balancer.policy, sizeof(b->cfg->balancer.policy), "%s", argv[1]);
		mw_notice("policy %s", argv[1]);
	} else if (argc == 1 && !strcmp(argv[0], "reload")) {
		ret = bal_reload(b, err, sizeof(err));
		if (ret == -EAGAIN)
			mw_warn("%s", err);
		else if (ret)
			mw_warn("reload rejected, old configuration kept: %s", err);
	} else {
		mw_ctl_outf(o, "error unknown command '%s'\n", argc ? argv[0] : "");
		return;
	}
	if (ret < 0)
		mw_ctl_outf(o, "error %s\n", err);
	else
		mw_ctl_outf(o, "ok\n");
}

int bal_ctl_open(struct bal *b, struct mw_ctl_server **out, char *err, size_t errlen)
{
	return mw_ctl_server_open(out, b->loop, b->cfg->balancer.control_socket, BAL_CTL_CLIENTS,
				  run, b, err, errlen);
}

void bal_ctl_close(struct mw_ctl_server *ctl)
{
	mw_ctl_server_close(ctl);
}
