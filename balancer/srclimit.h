/* SPDX-License-Identifier: MIT */
/* srclimit.h - the splice front end's connections per client address (srclimit.c) */
#ifndef MW_BALANCER_SRCLIMIT_H
#define MW_BALANCER_SRCLIMIT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <netinet/in.h>
#include <sys/socket.h>

#define BAL_SRC_KEY 16 /* an IPv6 address; IPv4 as ::ffff:a.b.c.d */

struct bal_src {
	uint8_t key[BAL_SRC_KEY];
	uint32_t n; /* connections it holds; 0: the slot is empty */
};

/* struct bal_srclimit - address -> connections, open addressing under a SipHash key */
struct bal_srclimit {
	struct bal_src *e;
	size_t cap; /* a power of two, at least twice @n */
	size_t n;   /* sources holding connections */
	uint64_t k0, k1;
};

int bal_srclimit_init(struct bal_srclimit *t);
void bal_srclimit_free(struct bal_srclimit *t);
void bal_srclimit_key(const struct sockaddr_storage *ss, uint8_t *key);
int bal_srclimit_take(struct bal_srclimit *t, const uint8_t *key, unsigned limit);
void bal_srclimit_put(struct bal_srclimit *t, const uint8_t *key);
unsigned bal_srclimit_count(const struct bal_srclimit *t, const uint8_t *key);

#endif /* MW_BALANCER_SRCLIMIT_H */
