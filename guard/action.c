/* SPDX-License-Identifier: MIT */
/* action.c - mw-guard's actions: numbered, logged with evidence, kept, sent over Netflow */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/log.h"
#include "guard/action.h"

/*
 * Theory of operation
 *
 * The engine decides; this file makes a decision visible and real.  Every
 * action gets the next number (from 1), one log line
 *   "action N: KIND TARGET reason=REASON evidence=K=V,..."
 * ("would_KIND" in report mode), and a record in a ring of guard.max_actions
 * for mwctl.  In enforce mode its Netflow requests are written at once (never
 * waiting for the answers); each answer is matched back to its action through
 * a ring of GD_PENDING request ids, and a refusal is logged and shown in the
 * record (a close of a connection that ended meanwhile, -EBADF, is "gone").  A
 * rotation goes to mw-balancer's control socket instead (balctl.c), which sets
 * its result when the balancer has answered.  In report mode nothing is written.
 */

static const char *const kind_names[GD_KIND_COUNT] = {
	[GD_SHIELD_SET] = "shield_set", [GD_SHIELD_CLEAR] = "shield_clear", [GD_CLOSE] = "close",
	[GD_BLOCK] = "block",		[GD_UNBLOCK] = "unblock",	  [GD_ROTATE] = "rotate",
};

/* gd_kind_name() - "shield_set", "close", ... */
const char *gd_kind_name(enum gd_kind k)
{
	return (unsigned)k < GD_KIND_COUNT ? kind_names[k] : "?";
}

/**
 * gd_act_init() - an action sink keeping the last @cap actions
 * Return: 0 or -ENOMEM
 */
int gd_act_init(struct gd_act *a, size_t cap)
{
	memset(a, 0, sizeof(*a));
	a->ring = calloc(cap, sizeof(*a->ring));
	if (!a->ring)
		return -ENOMEM;
	a->cap = cap;
	return 0;
}

void gd_act_fini(struct gd_act *a)
{
	free(a->ring);
	a->ring = NULL;
}

/* gd_act_record() - the @i-th kept action, oldest first, or NULL */
const struct gd_record *gd_act_record(const struct gd_act *a, size_t i)
{
	if (i >= a->len)
		return NULL;
	return &a->ring[(a->seq - a->len + i) % a->cap];
}

static struct gd_record *record_of(struct gd_act *a, uint64_t n)
{
	if (!n || n > a->seq || a->seq - n >= a->len)
		return NULL;
	return &a->ring[(n - 1) % a->cap];
}

/* gd_act_result() - action @n's result, when it is known later ("ok", "rejected:...") */
void gd_act_result(struct gd_act *a, uint64_t n, const char *result)
{
	struct gd_record *r = record_of(a, n);

	if (r)
		snprintf(r->result, sizeof(r->result), "%s", result);
}

static const char *attr_text(uint16_t name, char *buf, size_t len)
{
	const char *s = mw_nf_attr_name(name);

	if (s)
		return s;
	if (name >= MW_NF_ATTR_SHIELD_FIRST && name <= MW_NF_ATTR_SHIELD_LAST)
		snprintf(buf, len, "shield_%s", gd_shield_opt_name(name - MW_NF_ATTR_SHIELD_BASE));
	else
		snprintf(buf, len, "0x%04x", name);
	return buf;
}

/* Write one request; Return: 0 or -errno (the record says why). */
static int send_one(struct gd_act *a, struct gd_record *r, struct mw_nf_request *req)
{
	struct gd_pending *p;
	int ret;

	if (!a->nf) {
		snprintf(r->result, sizeof(r->result), "not_sent:no_netflow");
		a->send_failed++;
		return -ENOTCONN;
	}
	ret = mw_nf_client_send(a->nf, req, 1000);
	if (ret) {
		snprintf(r->result, sizeof(r->result), "not_sent:%s", strerror(-ret));
		a->send_failed++;
		return ret;
	}
	a->requests++;
	p = &a->pending[a->pend_next++ % GD_PENDING];
	p->req = req->id;
	p->n = r->n;
	p->name = req->name;
	p->sock = req->flags & MW_NF_FLAG_BY_SOCK ? req->sockfd : 0;
	return 0;
}

static void send_action(struct gd_act *a, struct gd_record *r, const struct gd_action *act)
{
	struct mw_nf_request req;
	unsigned opt;

	memset(&req, 0, sizeof(req));
	switch (act->kind) {
	case GD_SHIELD_SET:
	case GD_SHIELD_CLEAR:
		for (opt = 1; opt <= MW_SHIELD_OPT_MAX; opt++) {
			if (!(act->opts & (1u << opt)))
				continue;
			memset(&req, 0, sizeof(req));
			req.flags = MW_NF_FLAG_WRITE | MW_NF_FLAG_BY_SOCK;
			req.name = (uint16_t)(MW_NF_ATTR_SHIELD_BASE + opt);
			req.sockfd = act->sock;
			mw_nf_val_set(&req, 0, act->val[opt]);
			if (send_one(a, r, &req))
				return;
		}
		break;
	case GD_CLOSE:
		req.flags = MW_NF_FLAG_WRITE | MW_NF_FLAG_BY_SOCK;
		req.name = MW_NF_ATTR_IS_OPEN;
		req.sockfd = act->sock;
		send_one(a, r, &req);
		break;
	case GD_BLOCK:
	case GD_UNBLOCK:
		req.flags = MW_NF_FLAG_WRITE;
		req.name = MW_NF_ATTR_ADDR_BLOCK;
		req.addr.af = act->addr.family;
		memcpy(req.addr.addr, act->addr.addr, act->addr.family == 4 ? 4 : 16);
		/* bits 32-39: the prefix length (docs/netflow.md, AddrBlock) */
		mw_nf_val_set(&req, 0, (uint64_t)act->prefix_len << 32 | (act->kind == GD_BLOCK));
		mw_nf_val_set(&req, 1, act->sock); /* a socket id naming its INS, or 0: all */
		send_one(a, r, &req);
		break;
	case GD_ROTATE:
		if (!a->rotate) {
			snprintf(r->result, sizeof(r->result), "not_sent:no_balancer");
			a->send_failed++;
		} else {
			a->rotate(a->rotate_ctx, r->n, act->ins);
		}
		break;
	default:
		break;
	}
}

/**
 * gd_act_emit() - number, log, keep and (enforce mode) send one action
 * @ctx: the struct gd_act (the engine's emit callback)
 * @act: the decision
 */
void gd_act_emit(void *ctx, const struct gd_action *act)
{
	struct gd_act *a = ctx;
	struct gd_record *r = &a->ring[a->seq % a->cap];
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	memset(r, 0, sizeof(*r));
	r->n = ++a->seq;
	if (a->len < a->cap)
		a->len++;
	r->when = (double)ts.tv_sec + ts.tv_nsec / 1e9;
	r->kind = act->kind;
	snprintf(r->reason, sizeof(r->reason), "%s", act->reason);
	snprintf(r->target, sizeof(r->target), "%s", act->target);
	snprintf(r->evidence, sizeof(r->evidence), "%s", act->evidence[0] ? act->evidence : "-");
	mw_notice("action %" PRIu64 ": %s%s %s reason=%s evidence=%s", r->n,
		  a->report ? "would_" : "", gd_kind_name(act->kind), r->target, r->reason,
		  r->evidence);
	if (a->report) {
		snprintf(r->result, sizeof(r->result), "report");
		return;
	}
	snprintf(r->result, sizeof(r->result), "sent");
	send_action(a, r, act);
}

/**
 * gd_act_response() - the server's answer to one of our requests
 * A refusal is logged and kept in its action's record.
 */
void gd_act_response(struct gd_act *a, const struct mw_nf_response *rsp)
{
	struct gd_record *r;
	const char *name;
	char buf[32];
	size_t i;

	for (i = 0; i < GD_PENDING; i++)
		if (a->pending[i].req == rsp->id && a->pending[i].n)
			break;
	if (i == GD_PENDING)
		return; /* ours long ago, or MonitorOn's */
	r = record_of(a, a->pending[i].n);
	name = attr_text(a->pending[i].name, buf, sizeof(buf));
	if (!rsp->status) {
		a->responses_ok++;
		mw_info("action %" PRIu64 ": %s accepted", a->pending[i].n, name);
		if (r && !strcmp(r->result, "sent"))
			snprintf(r->result, sizeof(r->result), "ok");
	} else if (a->pending[i].name == MW_NF_ATTR_IS_OPEN && rsp->status == -EBADF) {
		/* Closed meanwhile (by its peer, the app, or a block of its address). */
		a->gone++;
		mw_info("action %" PRIu64 ": IsOpen: the connection was already gone",
			a->pending[i].n);
		if (r)
			snprintf(r->result, sizeof(r->result), "gone");
		if (a->on_gone)
			a->on_gone(a->gone_ctx, a->pending[i].sock);
	} else {
		a->rejected++;
		mw_warn("action %" PRIu64 ": %s refused by the Netflow server: %s (%d)",
			a->pending[i].n, name, strerror(-rsp->status), rsp->status);
		if (r)
			snprintf(r->result, sizeof(r->result), "rejected:%s:%d", name, rsp->status);
	}
	a->pending[i].n = 0;
}
