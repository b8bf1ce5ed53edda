/* SPDX-License-Identifier: MIT */
/* policy.c - front-end balancing policies (pure functions, unit-tested) */
#include <errno.h>
#include <stdbool.h>
#include <string.h>

#include "balancer/policy.h"

static const char *const names[] = {
	[BAL_POLICY_RR] = "round-robin",
	[BAL_POLICY_LEASTCONN] = "least-connections",
	[BAL_POLICY_LEASTBUSY] = "least-busy",
	[BAL_POLICY_HASH] = "hash",
};

int bal_policy_parse(const char *name, enum bal_policy *p)
{
	size_t i;

	for (i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (!strcmp(name, names[i])) {
			*p = (enum bal_policy)i;
			return 0;
		}
	return -EINVAL;
}

const char *bal_policy_name(enum bal_policy p)
{
	return (unsigned)p < sizeof(names) / sizeof(names[0]) ? names[p] : "?";
}

/* 64-bit mix (splitmix64's finaliser): a good spread from close inputs. */
static uint64_t mix64(uint64_t x)
{
	x ^= x >> 30;
	x *= 0xbf58476d1ce4e5b9ULL;
	x ^= x >> 27;
	x *= 0x94d049bb133111ebULL;
	x ^= x >> 31;
	return x;
}

uint32_t bal_hash_addr(const void *addr, size_t len)
{
	const unsigned char *b = addr;
	uint32_t h = 2166136261u; /* FNV-1a */
	size_t i;

	for (i = 0; i < len; i++) {
		h ^= b[i];
		h *= 16777619u;
	}
	return h;
}

/* Load in parts per million of the cap, so no float and no rounding to 0. */
static uint64_t load_ppm(const struct bal_cand *c)
{
	return c->cap ? (uint64_t)c->conns * 1000000 / c->cap : c->conns;
}

/* Within least-connections' share bound: at most twice the others' average lately. */
static bool within_share(const struct bal_cand *c, size_t n, uint64_t total)
{
	return (uint64_t)c->recent * (n + 1) <= 2 * total;
}

int bal_policy_pick(enum bal_policy p, const struct bal_cand *c, size_t n, int *rr, uint32_t key,
		    int threshold)
{
	size_t i, best = n;
	uint64_t w, bw = 0, total = 0;

	if (!n)
		return -1;
	switch (p) {
	case BAL_POLICY_RR:
		for (i = 0; i < n; i++)
			if (c[i].id > *rr)
				break;
		if (i == n)
			i = 0;
		*rr = c[i].id;
		return (int)i;
	case BAL_POLICY_LEASTBUSY:
		for (i = 0; i < n; i++)
			if (c[i].cap && load_ppm(&c[i]) < (uint64_t)threshold * 10000)
				return (int)i;
		/* all overloaded (or no caps): the least loaded */
		__attribute__((fallthrough));
	case BAL_POLICY_LEASTCONN:
		for (i = 0; i < n; i++)
			total += c[i].recent;
		/* The fewest recent is always within the bound; best stays < n. */
		for (i = 0; i < n; i++) {
			if (n > 1 && !within_share(&c[i], n, total))
				continue;
			if (best == n ||
			    (p == BAL_POLICY_LEASTCONN ? c[i].conns < c[best].conns
						       : load_ppm(&c[i]) < load_ppm(&c[best])))
				best = i;
		}
		return (int)best;
	case BAL_POLICY_HASH:
		for (i = 0; i < n; i++) {
			w = mix64(((uint64_t)key << 32) ^ (uint64_t)(uint32_t)c[i].id);
			if (i == 0 || w > bw) {
				bw = w;
				best = i;
			}
		}
		return (int)best;
	}
	return 0;
}
