/* SPDX-License-Identifier: MIT */
/* kfront_rules.c - the kernel front end's nftables commands and weights (pure) */
#include <arpa/inet.h>
#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "balancer/kfront.h"

#define KF_SYN_TIMEOUT_S 5 /* conntrack of a front-end connection in SYN_SENT / SYN_RECV */

struct out {
	char *buf;
	size_t len, used;
	bool full;
};

__attribute__((format(printf, 2, 3))) static void put(struct out *o, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (o->full)
		return;
	va_start(ap, fmt);
	n = vsnprintf(o->buf + o->used, o->len - o->used, fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= o->len - o->used) {
		o->full = true;
		return;
	}
	o->used += (size_t)n;
}

static int done(const struct out *o)
{
	return o->full ? -ENOSPC : (int)o->used;
}

int bal_kf_table_name(const char *tag, char *buf, size_t len)
{
	size_t k;
	int n;

	if (!*tag)
		return -EINVAL;
	for (k = 0; tag[k]; k++)
		if (!((tag[k] >= 'a' && tag[k] <= 'z') || (tag[k] >= 'A' && tag[k] <= 'Z') ||
		      (tag[k] >= '0' && tag[k] <= '9') || tag[k] == '_' || tag[k] == '-'))
			return -EINVAL;
	n = snprintf(buf, len, "mwbal_%s", tag);
	return n < 0 || (size_t)n >= len ? -EINVAL : 0;
}

int bal_kf_render_front(char *buf, size_t len, const char *table, int max_conns)
{
	struct out o = { .buf = buf, .len = len };

	put(&o, "flush chain ip %s front\n", table);
	put(&o, "add rule ip %s front ct count over %d counter name \"over_limit\" accept\n", table,
	    max_conns);
	put(&o, "add rule ip %s front jump steer\n", table);
	return done(&o);
}

int bal_kf_render_table(char *buf, size_t len, const char *table, const struct bal_kf_listen *l,
			size_t nl, const char *bridge, int max_conns)
{
	int n;

	struct out o = { .buf = buf, .len = len };
	char a[INET_ADDRSTRLEN];
	size_t k;

	put(&o, "add table ip %s\ndelete table ip %s\nadd table ip %s\n", table, table, table);
	put(&o, "add counter ip %s no_ins\nadd counter ip %s steer_miss\n", table, table);
	put(&o, "add chain ip %s steer\n", table);
	put(&o, "add rule ip %s steer counter name \"no_ins\"\n", table);
	put(&o, "add counter ip %s over_limit\nadd chain ip %s front\n", table, table);
	put(&o,
	    "add chain ip %s pre { type nat hook prerouting priority dstnat; policy accept; }\n",
	    table);
	put(&o, "add chain ip %s out { type nat hook output priority -100; policy accept; }\n",
	    table);
	/*
	 * "ct count" in front counts a connection from its first packet: a SYN from a
	 * forged source, which the INS answers and nobody completes, would hold its
	 * place for the kernel's SYN_RECV timeout (60 s, renewed by each SYN-ACK sent
	 * again: some 90 s), so a few hundred forged SYNs a second would hold max_conns
	 * and shut every client out.  The front-end's connections get 5 s in the
	 * handshake's states instead (a ct timeout policy, set on the new, unconfirmed
	 * entry: after conntrack, -200, before the DNAT, -100): a forged one ends at the first gap
	 * over 5 s between the INS's SYN-ACKs, some 12 s on; a client's own retransmitted SYN
	 * renews it.
	 */
	put(&o,
	    "add ct timeout ip %s syn_short { protocol tcp; l3proto ip; "
	    "policy = { syn_sent: %d, syn_recv: %d }; }\n",
	    table, KF_SYN_TIMEOUT_S, KF_SYN_TIMEOUT_S);
	put(&o,
	    "add chain ip %s syn_pre { type filter hook prerouting priority -150; policy accept; "
	    "}\n"
	    "add chain ip %s syn_out { type filter hook output priority -150; policy accept; }\n",
	    table, table);
	/*
	 * Not from the bridge: an INS connecting to a front-end address would be
	 * steered to another INS, whose answer the isolated bridge ports drop, and
	 * so hold a half-open connection there and a place in "ct count" per SYN.
	 */
	for (k = 0; k < nl; k++) {
		if (l[k].addr.s_addr == htonl(INADDR_ANY)) {
			put(&o,
			    "add rule ip %s pre iifname != \"%s\" fib daddr type local tcp dport "
			    "%u "
			    "jump front\n"
			    "add rule ip %s out fib daddr type local ip daddr != 127.0.0.0/8 "
			    "tcp dport %u jump front\n",
			    table, bridge, l[k].port, table, l[k].port);
			put(&o,
			    "add rule ip %s syn_pre iifname != \"%s\" fib daddr type local tcp "
			    "dport "
			    "%u ct timeout set \"syn_short\"\n"
			    "add rule ip %s syn_out fib daddr type local ip daddr != 127.0.0.0/8 "
			    "tcp dport %u ct timeout set \"syn_short\"\n",
			    table, bridge, l[k].port, table, l[k].port);
			continue;
		}
		inet_ntop(AF_INET, &l[k].addr, a, sizeof(a));
		put(&o,
		    "add rule ip %s pre iifname != \"%s\" ip daddr %s tcp dport %u jump front\n"
		    "add rule ip %s out ip daddr %s tcp dport %u jump front\n",
		    table, bridge, a, l[k].port, table, a, l[k].port);
		put(&o,
		    "add rule ip %s syn_pre iifname != \"%s\" ip daddr %s tcp dport %u ct timeout "
		    "set \"syn_short\"\n"
		    "add rule ip %s syn_out ip daddr %s tcp dport %u ct timeout set "
		    "\"syn_short\"\n",
		    table, bridge, a, l[k].port, table, a, l[k].port);
	}
	if (o.full)
		return -ENOSPC;
	n = bal_kf_render_front(buf + o.used, len - o.used, table, max_conns);
	return n < 0 ? n : (int)o.used + n;
}

int bal_kf_render_steer(char *buf, size_t len, const char *table, enum bal_policy p,
			const struct bal_kf_ins *ins, size_t n)
{
	struct out o = { .buf = buf, .len = len };
	unsigned total = 0, at = 0;
	size_t k;

	put(&o, "flush chain ip %s steer\n", table);
	for (k = 0; k < n; k++)
		total += p == BAL_POLICY_RR || p == BAL_POLICY_HASH ? 1 : ins[k].weight;
	if (n == 1 || (n && total == 0)) {
		put(&o, "add rule ip %s steer jump ins_%d\n", table, ins[0].id);
	} else if (n) {
		if (p == BAL_POLICY_HASH)
			put(&o, "add rule ip %s steer jhash ip saddr mod %u vmap { ", table, total);
		else if (p == BAL_POLICY_RR)
			put(&o, "add rule ip %s steer numgen inc mod %u vmap { ", table, total);
		else
			put(&o, "add rule ip %s steer numgen random mod %u vmap { ", table, total);
		for (k = 0; k < n; k++) {
			unsigned w = p == BAL_POLICY_RR || p == BAL_POLICY_HASH ? 1 : ins[k].weight;

			/*
			 * One element per slot, never a range "a-b": an interval map
			 * let a new connection match none of its slots now and then
			 * while "steer" was rebuilt (1-3 misses in each of 4 runs of
			 * some 28,000 new flows over 15-30 s of rebuilds; single
			 * elements: none in 3 runs; kernel 6.18): that client met
			 * no_ins, no NAT, a RST.
			 */
			for (unsigned s = 0; s < w; s++, at++)
				put(&o, "%s%u : jump ins_%d", at ? ", " : "", at, ins[k].id);
		}
		put(&o, " }\n");
		/*
		 * Every value of the modulus has its element, yet the map was
		 * measured to miss now and then while "steer" is rebuilt (above):
		 * a miss goes to an INS of the map, counted, rather than on to
		 * no_ins, where the client meets no NAT and a RST.
		 */
		for (k = 0; k < n; k++)
			if (p == BAL_POLICY_RR || p == BAL_POLICY_HASH || ins[k].weight)
				break;
		put(&o, "add rule ip %s steer counter name \"steer_miss\" jump ins_%d\n", table,
		    ins[k < n ? k : 0].id);
	}
	put(&o, "add rule ip %s steer counter name \"no_ins\"\n", table);
	return done(&o);
}

/*
 * Least-connections' share bound (balancer/policy.h), on weights: none above
 * twice the others' average, i.e. no INS gets more than 2 / (n + 1) of new
 * connections, even one whose own connections end at once.  Lowering one
 * weight lowers the others' bounds: repeat until nothing changes (each pass
 * lowers a weight or ends; weights are at most BAL_KF_WEIGHT_MAX).
 */
static void share_bound(unsigned *w, size_t n)
{
	unsigned long sum = 0, lim;
	bool changed = true;
	size_t k;

	if (n < 2)
		return;
	for (k = 0; k < n; k++)
		sum += w[k];
	while (changed) {
		changed = false;
		for (k = 0; k < n; k++) {
			lim = 2 * (sum - w[k]) / (n - 1);
			if (lim < 1)
				lim = 1;
			if (w[k] > lim) {
				sum -= w[k] - lim;
				w[k] = (unsigned)lim;
				changed = true;
			}
		}
	}
}

void bal_kf_weights(enum bal_policy p, const unsigned *conns, size_t n, unsigned cap, int threshold,
		    unsigned *w)
{
	struct bal_cand c[256];
	unsigned hi = 0, lo = ~0U;
	size_t k;
	int rr = 0, idx;

	for (k = 0; k < n; k++) {
		hi = conns[k] > hi ? conns[k] : hi;
		lo = conns[k] < lo ? conns[k] : lo;
		w[k] = 1;
	}
	if (p == BAL_POLICY_LEASTBUSY && n <= sizeof(c) / sizeof(c[0])) {
		for (k = 0; k < n; k++)
			c[k] = (struct bal_cand){ .id = (int)k + 1, .conns = conns[k], .cap = cap };
		idx = bal_policy_pick(p, c, n, &rr, 0, threshold);
		/* Under the threshold: that INS alone, as the splice front end does. */
		if (idx >= 0 && cap &&
		    (unsigned long)conns[idx] * 100 < (unsigned long)cap * threshold) {
			for (k = 0; k < n; k++)
				w[k] = (int)k == idx;
			return;
		}
	} else if (p != BAL_POLICY_LEASTCONN && p != BAL_POLICY_LEASTBUSY) {
		return;
	}
	if (hi == lo)
		return;
	for (k = 0; k < n; k++)
		w[k] = 1 + (unsigned)((unsigned long)(hi - conns[k]) * (BAL_KF_WEIGHT_MAX - 1) /
				      (hi - lo));
	share_bound(w, n);
}
