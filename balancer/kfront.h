/* SPDX-License-Identifier: MIT */
/* kfront.h - the kernel front end: nftables DNAT steers clients to INS (balancer.mode = kernel) */
#ifndef BAL_KFRONT_H
#define BAL_KFRONT_H

#include <netinet/in.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "balancer/policy.h"

#define BAL_KF_TABLE_MAX  32 /* "mwbal_" + tag */
#define BAL_KF_WEIGHT_MAX 16 /* weights are 1..16 (least-connections, least-busy) */

/* One front-end address: @addr INADDR_ANY means every local non-loopback address. */
struct bal_kf_listen {
	struct in_addr addr;
	uint16_t port;
};

/* One INS in new-connection steering. */
struct bal_kf_ins {
	int id;
	unsigned weight; /* 1..BAL_KF_WEIGHT_MAX: its share of new connections */
};

/**
 * bal_kf_table_name() - the nftables table a balancer with @tag owns: "mwbal_<tag>"
 * Return: 0, or -EINVAL when @tag holds a byte other than [A-Za-z0-9_-] (it
 * goes into nft commands: nothing else may reach them)
 */
int bal_kf_table_name(const char *tag, char *buf, size_t len);

struct nft_ctx;
int bal_nft_run(struct nft_ctx *nft, const char *cmds, char *err, size_t errlen);
bool bal_nft_kernel(void);

/**
 * bal_kf_render_table() - the commands that create the table, replacing an old one
 * @buf, @len: the text (nft syntax, one command a line)
 * @table:     bal_kf_table_name()
 * @l, @nl:    the front-end addresses
 * @bridge:    balancer.bridge (an interface name, checked): connections that come
 *             from it (an INS) never enter the front end
 *
 * "add table; delete table; add table ...": one transaction, so a table a
 * crashed balancer left behind is replaced atomically, and a missing one is
 * not an error.  Hooks nat prerouting (clients from outside) and output
 * (clients on this host) jump to the chain "steer" for the front-end
 * addresses to the chain "front" (bal_kf_render_front()), which jumps to
 * "steer"; "steer" starts empty (no INS: the client meets no listener, RST).
 *
 * Return: length, or -ENOSPC
 */
int bal_kf_render_table(char *buf, size_t len, const char *table, const struct bal_kf_listen *l,
			size_t nl, const char *bridge, int max_conns);

/**
 * bal_kf_render_front() - the commands that (re)build "front": balancer.max_conns
 *
 * "ct count over @max_conns" (connlimit: connections conntrack still holds)
 * counts the client in counter over_limit and accepts it un-NATed: it meets no
 * listener and gets a RST at once, as the splice front end closes it.  The
 * count starts again from 0 when "front" is rebuilt (a reload of max_conns).
 *
 * Return: length, or -ENOSPC
 */
int bal_kf_render_front(char *buf, size_t len, const char *table, int max_conns);

/**
 * bal_kf_render_steer() - the commands that rebuild "steer" for @n INS (atomic)
 * @p:       round-robin: numgen inc over the INS; hash: jhash of the client's
 *           address; least-connections and least-busy: numgen random over the
 *           weights (an INS of weight w gets w slots)
 * @ins:     in id order; every one has its chain ins_<id> already
 * @n:       0 leaves "steer" with only the no-INS counter
 *
 * Return: length, or -ENOSPC
 */
int bal_kf_render_steer(char *buf, size_t len, const char *table, enum bal_policy p,
			const struct bal_kf_ins *ins, size_t n);

/**
 * bal_kf_weights() - least-connections / least-busy weights from connection counts
 * @conns: connections each of @n INS carries now
 * @cap:   per_ins_max_conns (0 = none)
 * @threshold: overload_threshold (least-busy)
 * @w:     out, 1..BAL_KF_WEIGHT_MAX, or 0 = none this round (least-busy: only
 *         the INS the splice policy would pick gets new connections while one is
 *         under the threshold)
 *
 * least-connections: an INS with fewer connections than the busiest gets
 * proportionally more slots (weight 1 for the busiest, up to
 * BAL_KF_WEIGHT_MAX for one with none when others have many): new
 * connections lean to the emptier INS between two updates without all
 * landing on one of them; and none has more than twice the others' average
 * weight (the share bound of balancer/policy.h: at most 2 / (n + 1) of new
 * connections, even for an INS whose connections end at once).
 */
void bal_kf_weights(enum bal_policy p, const unsigned *conns, size_t n, unsigned cap, int threshold,
		    unsigned *w);

/* kfront_nl.c */

/**
 * bal_kf_count_conns() - TCP connections on one of @ports, over a sock_diag socket
 * @fd:     NETLINK_SOCK_DIAG socket in the INS's network namespace
 * @ports:  the front-end ports (host order)
 * @nports: how many
 * @skip:   a peer not counted (the bridge address: the balancer's health probes)
 * @half_open: out: those still in their handshake (SYN_RECV), not in the count
 *
 * One dump of the IPv4 TCP sockets not done yet (open, or closed by the
 * INS's side with data perhaps unacknowledged: not FIN_WAIT2, TIME_WAIT or
 * CLOSE), counted when the local port is a front-end port: with the
 * half-open ones, the connections a drain waits for.
 * Return: the count (half-open ones aside), or -errno (-ETIMEDOUT when the
 * kernel stalls over 50 ms)
 */
int bal_kf_count_conns(int fd, const uint16_t *ports, int nports, struct in_addr skip,
		       unsigned *half_open);

/**
 * bal_kf_ct_forget() - delete every IPv4 conntrack entry whose mark is @mark
 *
 * An INS's entries after its death: a client whose SYN went to it just
 * before is steered again on its retransmission instead of following the old
 * NAT to an address that is gone; a packet of a connection it held meets no
 * NAT and gets a RST.
 * Return: 0, -ENOENT when there was none, or -errno
 */
int bal_kf_ct_forget(uint32_t mark);

#endif /* BAL_KFRONT_H */
