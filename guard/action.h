/* SPDX-License-Identifier: MIT */
/* action.h - mw-guard's action sink: numbering, log line, history, Netflow requests */
#ifndef MW_GUARD_ACTION_H
#define MW_GUARD_ACTION_H

#include "guard/guard.h"
#include "netflow/client.h"

#define GD_PENDING 1024 /* requests whose response is still matched to their action */

/* One action as mwctl guard actions shows it. */
struct gd_record {
	uint64_t n;
	double when; /* realtime seconds */
	enum gd_kind kind;
	char reason[16];
	char target[64];
	char evidence[256];
	char result[48]; /* "report", "sent", "ok", "gone", "rejected:NAME:ERRNO", "not_sent:WHY" */
};

struct gd_pending {
	uint32_t req;
	uint64_t n;
	uint16_t name;
	uint64_t sock; /* BY_SOCK requests: the socket */
};

struct gd_act {
	bool report;
	struct mw_nf_client *nf; /* NULL while not connected */
	struct gd_record *ring;
	size_t cap, len;
	uint64_t seq; /* the last action's number */
	struct gd_pending pending[GD_PENDING];
	size_t pend_next;
	uint64_t requests, responses_ok, rejected, send_failed, gone;
	/*
	 * rotate: handed to mw-balancer (guard/balctl.c), which sets the result of
	 * action @n later with gd_act_result(); NULL (no balancer) = not sent.
	 * Return: 0 or -errno (not sent; the record already says why)
	 */
	int (*rotate)(void *ctx, uint64_t n, uint16_t ins);
	void *rotate_ctx;
	/* A close answered -EBADF: the socket is gone (its close observation was lost). */
	void (*on_gone)(void *ctx, uint64_t sock);
	void *gone_ctx;
};

int gd_act_init(struct gd_act *a, size_t cap);
void gd_act_fini(struct gd_act *a);
void gd_act_emit(void *ctx, const struct gd_action *act);
void gd_act_response(struct gd_act *a, const struct mw_nf_response *rsp);
const struct gd_record *gd_act_record(const struct gd_act *a, size_t i);
void gd_act_result(struct gd_act *a, uint64_t n, const char *result);

#endif /* MW_GUARD_ACTION_H */
