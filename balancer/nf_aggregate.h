/* SPDX-License-Identifier: MIT */
/* nf_aggregate.h - mw-balancer's merged Netflow stream of every PVM */
#ifndef MW_BAL_NF_AGGREGATE_H
#define MW_BAL_NF_AGGREGATE_H

#include <ev.h>
#include <stddef.h>

#include "common/config.h"

struct bal_nf;

/**
 * bal_nf_open() - serve the merged stream and follow the PVMs that publish theirs
 * @loop: the balancer's loop
 * @cfg:  balancer.netflow_listen/allow; pvm.netflow_queue/stall_ms for the
 *        consumer queues; the common keystore settings
 * @err:  one line on failure
 *
 * PVMs are found at keystore keys /mw/pvms/<index>/netflow (watched, so PVMs may
 * come and go in any order); the merged stream's address is published at
 * /mw/balancer/netflow.
 * Return: 0 or -errno
 */
int bal_nf_open(struct bal_nf **out, struct ev_loop *loop, const struct mw_config *cfg, char *err,
		size_t errlen);

/**
 * bal_nf_tag_check() - refuse a balancer.tag another live mw-balancer holds
 * @cfg: balancer.tag and the common keystore settings
 * @err: one line when refused
 *
 * Call before anything is swept or spawned: the netns backend removes what
 * "an earlier balancer with the same tag" left, which would be the live one's INS.
 * Return: 0, or -EADDRINUSE when the stream published at
 * /mw/balancers/<tag>/netflow still answers
 */
int bal_nf_tag_check(const struct mw_config *cfg, char *err, size_t errlen);

/* Apply what a reload may change: balancer.netflow_request_timeout_ms (new requests). */
void bal_nf_reload(struct bal_nf *a, const struct mw_config *cfg);

/* Disconnect everything and withdraw the published address; NULL is fine. */
void bal_nf_close(struct bal_nf *a);

/**
 * bal_nf_list() - one line per consumer of the merged stream, for mwctl
 * "netflow_consumer peer=uid_0_pid_42 role=control monitor=1 queued=0 drops=0"
 * @a: the aggregate (NULL: nothing)
 * @fn: called with each line (no newline)
 */
void bal_nf_list(const struct bal_nf *a, void (*fn)(void *ctx, const char *line), void *ctx);

/* "N PVM stream(s), N consumer(s)" for the STATUS line. */
void bal_nf_status(const struct bal_nf *a, char *buf, size_t len);

#endif /* MW_BAL_NF_AGGREGATE_H */
