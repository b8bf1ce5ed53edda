/* SPDX-License-Identifier: MIT */
/* policy.h - front-end balancing policies: which INS gets the next connection (pure) */
#ifndef BAL_POLICY_H
#define BAL_POLICY_H

#include <stddef.h>
#include <stdint.h>

enum bal_policy {
	BAL_POLICY_RR,
	BAL_POLICY_LEASTCONN,
	BAL_POLICY_LEASTBUSY,
	BAL_POLICY_HASH,
};

/* One INS that may take the connection (the caller filtered out the others). */
struct bal_cand {
	int id;		/* INS id, the hash's key */
	unsigned conns; /* connections it carries now */
	unsigned cap;	/* per_ins_max_conns, 0 = unlimited */
	unsigned recent; /* new connections given it lately (bal_ins.recent): the share bound */
};

/**
 * bal_policy_parse() - "round-robin", "least-connections", "least-busy", "hash"
 * Return: 0 and *@p set, or -EINVAL
 */
int bal_policy_parse(const char *name, enum bal_policy *p);

/** bal_policy_name() - the config name of @p */
const char *bal_policy_name(enum bal_policy p);

/**
 * bal_policy_pick() - choose among @n candidates
 * @p:         policy
 * @c:         candidates, in INS id order
 * @n:         how many (0: none can be chosen)
 * @rr:        round-robin cursor, advanced (round-robin only)
 * @key:       hash of the client address (hash only)
 * @threshold: overload threshold in percent (least-busy only)
 *
 * round-robin: the first candidate whose id follows the last one chosen.
 * least-connections: fewest connections, lowest id on a tie, among the
 * candidates within the share bound: one whose @recent times (n + 1) exceeds
 * twice the candidates' total is passed over, so that no INS takes more than
 * twice what each of the others takes on average (2 / (n + 1) of new
 * connections).  An INS that ends its connections at once (compromised, or
 * refusing) would otherwise draw every new one; an emptier INS still takes
 * the most.  With one candidate, or none within the bound, nothing is bounded.
 * least-busy: the original's "overload" rule: the lowest id whose load
 * (conns / cap) is under @threshold keeps taking connections; once every
 * candidate is at or over it, the least loaded.  Without a cap, the load is
 * the connection count, so it behaves as least-connections.  Once every
 * candidate is over it, the share bound of least-connections applies; the
 * packing under it is the policy's purpose and is not bounded (a compromised
 * INS that ends its connections at once stays under it and, once the INS
 * before it are full, takes every new connection: docs/balancer.md).
 * @recent weighs the candidates' recent picks (bal_ins.recent); the bound is
 * among the @n given, whatever else was excluded.
 * hash: rendezvous (highest random weight) hashing of @key with each id, a
 * consistent hash: an INS joining or leaving moves only its own share.
 *
 * Return: index into @c, or -1 when @n is 0
 */
int bal_policy_pick(enum bal_policy p, const struct bal_cand *c, size_t n, int *rr, uint32_t key,
		    int threshold);

/**
 * bal_hash_addr() - the hash key of a client address (port ignored)
 * @addr: address bytes (4 or 16)
 * @len:  their length
 */
uint32_t bal_hash_addr(const void *addr, size_t len);

#endif /* BAL_POLICY_H */
