// SPDX-License-Identifier: MIT
/*
 * srclimit.c - the splice front end's connections per client address
 *
 * balancer.max_conns bounds the front end's connections, but one source could
 * hold them all (slow readers pin 6 fds and two pipes each): every other client
 * then meets "limit".  So each client address counts its connections, and one
 * more than balancer.max_conns_per_source is closed at once.
 *
 * A table of address -> count: open addressing, linear probing over a power of
 * two at least twice the entries, removal by shifting the cluster back (no
 * tombstones).  The keys are the clients' own, so the hash is SipHash under a
 * key drawn at start: an attacker who picks its addresses (a /64 is many) cannot
 * make them collide.  It grows with the sources that hold connections (at most
 * balancer.max_conns of them), never allocated per connection otherwise.  An
 * IPv6 client counts by its /64: a host gets that much, and can use any address
 * in it.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "balancer/srclimit.h"
#include "common/siphash.h"

#define SRC_CAP_MIN 64

static size_t src_slot(const struct bal_srclimit *t, const uint8_t *key)
{
	return (size_t)mw_siphash24(t->k0, t->k1, key, BAL_SRC_KEY) & (t->cap - 1);
}

/* Find @key: its slot, or the empty slot where it would go (*@found false). */
static size_t src_find(const struct bal_srclimit *t, const uint8_t *key, bool *found)
{
	size_t i = src_slot(t, key);

	while (t->e[i].n) {
		if (!memcmp(t->e[i].key, key, BAL_SRC_KEY)) {
			*found = true;
			return i;
		}
		i = (i + 1) & (t->cap - 1);
	}
	*found = false;
	return i;
}

/* Twice the room, every entry placed again.  Return: 0 or -ENOMEM (the table stays). */
static int src_grow(struct bal_srclimit *t)
{
	struct bal_src *old = t->e;
	size_t oldcap = t->cap, i, j;
	bool found;

	t->e = calloc(oldcap * 2, sizeof(*t->e));
	if (!t->e) {
		t->e = old;
		return -ENOMEM;
	}
	t->cap = oldcap * 2;
	for (i = 0; i < oldcap; i++)
		if (old[i].n) {
			j = src_find(t, old[i].key, &found);
			t->e[j] = old[i];
		}
	free(old);
	return 0;
}

/**
 * bal_srclimit_init() - an empty table, its hash key drawn now
 * @t: the table
 * Return: 0 or -errno
 */
int bal_srclimit_init(struct bal_srclimit *t)
{
	uint64_t k[2];

	memset(t, 0, sizeof(*t));
	/* Never waiting at boot for the pool: then the clock and the table's address. */
	if (getrandom(k, sizeof(k), GRND_NONBLOCK) != (ssize_t)sizeof(k)) {
		struct timespec ts;

		clock_gettime(CLOCK_MONOTONIC, &ts);
		k[0] = (uint64_t)ts.tv_nsec ^ (uint64_t)(uintptr_t)t;
		k[1] = (uint64_t)ts.tv_sec ^ ((uint64_t)getpid() << 32);
	}
	t->k0 = k[0];
	t->k1 = k[1];
	t->e = calloc(SRC_CAP_MIN, sizeof(*t->e));
	if (!t->e)
		return -ENOMEM;
	t->cap = SRC_CAP_MIN;
	return 0;
}

void bal_srclimit_free(struct bal_srclimit *t)
{
	free(t->e);
	t->e = NULL;
	t->cap = t->n = 0;
}

/**
 * bal_srclimit_key() - the table's key of a client address
 * @ss:  the address accept() gave
 * @key: filled, BAL_SRC_KEY bytes
 *
 * IPv4 as ::ffff:a.b.c.d (a v4-mapped address is the same); an IPv6 address by its
 * /64, the least a host gets, from which it can take as many addresses as it likes.
 */
void bal_srclimit_key(const struct sockaddr_storage *ss, uint8_t *key)
{
	static const uint8_t mapped[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff };

	memset(key, 0, BAL_SRC_KEY);
	if (ss->ss_family == AF_INET) {
		memcpy(key, mapped, sizeof(mapped));
		memcpy(key + 12, &((const struct sockaddr_in *)ss)->sin_addr, 4);
	} else if (ss->ss_family == AF_INET6) {
		memcpy(key, &((const struct sockaddr_in6 *)ss)->sin6_addr, 16);
		if (memcmp(key, mapped, sizeof(mapped)))
			memset(key + 8, 0, 8);
	}
}

/**
 * bal_srclimit_take() - one more connection from @key, unless it has @limit already
 * @t:     the table
 * @key:   from bal_srclimit_key()
 * @limit: connections a source may hold; 0: no limit (still counted)
 * Return: 0 (counted), -EUSERS (it holds @limit), -ENOMEM
 */
int bal_srclimit_take(struct bal_srclimit *t, const uint8_t *key, unsigned limit)
{
	bool found;
	size_t i = src_find(t, key, &found);

	if (found) {
		if (limit && t->e[i].n >= limit)
			return -EUSERS;
		t->e[i].n++;
		return 0;
	}
	if (2 * (t->n + 1) > t->cap) {
		if (src_grow(t))
			return -ENOMEM;
		i = src_find(t, key, &found);
	}
	memcpy(t->e[i].key, key, BAL_SRC_KEY);
	t->e[i].n = 1;
	t->n++;
	return 0;
}

/**
 * bal_srclimit_put() - a connection from @key ended
 * @t:   the table
 * @key: as it was taken
 */
void bal_srclimit_put(struct bal_srclimit *t, const uint8_t *key)
{
	size_t i, j, k;
	bool found;

	if (!t->cap)
		return;
	i = src_find(t, key, &found);
	if (!found || --t->e[i].n)
		return;
	t->n--;
	/* Shift the rest of the cluster back over the hole (Knuth 6.4, algorithm R). */
	for (j = i;;) {
		j = (j + 1) & (t->cap - 1);
		if (!t->e[j].n)
			break;
		k = src_slot(t, t->e[j].key);
		/* Move j to i unless its home k lies cyclically in (i, j]. */
		if ((i <= j) ? (i < k && k <= j) : (i < k || k <= j))
			continue;
		t->e[i] = t->e[j];
		i = j;
	}
	t->e[i].n = 0;
}

/**
 * bal_srclimit_count() - the connections @key holds now
 * Return: the count (0 if none)
 */
unsigned bal_srclimit_count(const struct bal_srclimit *t, const uint8_t *key)
{
	bool found;
	size_t i;

	if (!t->cap)
		return 0;
	i = src_find(t, key, &found);
	return found ? t->e[i].n : 0;
}
