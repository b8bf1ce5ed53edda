/* SPDX-License-Identifier: MIT */
/* table.c - mw-guard's fixed-size hash tables: connections, sources, blocks */
#include <assert.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "common/siphash.h"
#include "guard/guard.h"

/*
 * Theory of operation
 *
 * Every table is allocated once, at start, from a configured maximum: linear
 * probing over a power-of-two array at least twice that size, so a probe
 * always ends at an empty slot.  An insert beyond the maximum is refused and
 * counted (@drops); nothing is allocated per observation.  Removal shifts the
 * following entries of the cluster back (no tombstones), so lookups stay short
 * however long the daemon runs.  Keys come from the stream (peer addresses, and
 * socket ids whose low half an INS picks), so the hash is keyed, a random key per
 * table: a compromised INS cannot pile its entries into one cluster and make every
 * probe walk it.
 */

static uint64_t tab_hash(const struct gd_tab *t, const void *key)
{
	return mw_siphash24(t->k0, t->k1, key, t->klen);
}

static uint64_t tab_seed; /* gd_tab_seed() */

/* gd_tab_seed() - tables made from now on hash with a key from @seed (0: random) */
void gd_tab_seed(uint64_t seed)
{
	tab_seed = seed;
}

static void tab_key(struct gd_tab *t)
{
	uint64_t k[2] = { tab_seed, tab_seed ^ 0x9e3779b97f4a7c15ULL };

	if (!tab_seed && getrandom(k, sizeof(k), GRND_NONBLOCK) != sizeof(k)) {
		struct timespec ts;

		clock_gettime(CLOCK_MONOTONIC, &ts);
		k[0] = (uint64_t)ts.tv_nsec ^ (uint64_t)(uintptr_t)t;
		k[1] = (uint64_t)ts.tv_sec ^ 0x9e3779b97f4a7c15ULL;
	}
	t->k0 = k[0];
	t->k1 = k[1];
}

/**
 * gd_tab_init() - allocate a table for at most @max entries
 * @t:     the table
 * @max:   entries allowed
 * @esize: size of an entry
 * @klen:  its key: the first @klen bytes
 * Return: 0 or -ENOMEM
 */
int gd_tab_init(struct gd_tab *t, size_t max, size_t esize, size_t klen)
{
	size_t cap = 16;

	memset(t, 0, sizeof(*t));
	while (cap < 2 * max)
		cap *= 2;
	t->slots = calloc(cap, esize);
	t->used = calloc(cap, 1);
	if (!t->slots || !t->used) {
		gd_tab_free(t);
		return -ENOMEM;
	}
	tab_key(t);
	t->esize = esize;
	t->klen = klen;
	t->cap = cap;
	t->max = max;
	return 0;
}

void gd_tab_free(struct gd_tab *t)
{
	free(t->slots);
	free(t->used);
	t->slots = NULL;
	t->used = NULL;
	t->n = 0;
}

/* gd_tab_clear() - forget every entry (the drop count stays) */
void gd_tab_clear(struct gd_tab *t)
{
	if (t->n)
		memset(t->used, 0, t->cap);
	t->n = 0;
}

/* gd_tab_slot() - the entry in slot @i (0..cap-1), or NULL if it is empty */
void *gd_tab_slot(const struct gd_tab *t, size_t i)
{
	return t->used[i] ? t->slots + i * t->esize : NULL;
}

static size_t tab_index(const struct gd_tab *t, const void *entry)
{
	size_t i = (size_t)((const uint8_t *)entry - t->slots) / t->esize;

	assert(i < t->cap && t->used[i]);
	return i;
}

/* gd_tab_find() - the entry whose key is @key, or NULL */
void *gd_tab_find(const struct gd_tab *t, const void *key)
{
	size_t i = (size_t)tab_hash(t, key) & (t->cap - 1);

	while (t->used[i]) {
		if (!memcmp(t->slots + i * t->esize, key, t->klen))
			return t->slots + i * t->esize;
		i = (i + 1) & (t->cap - 1);
	}
	return NULL;
}

/**
 * gd_tab_insert() - the entry for @key, added zeroed with its key if absent
 * Return: the entry, or NULL if the table holds its maximum (counted in @drops)
 */
void *gd_tab_insert(struct gd_tab *t, const void *key)
{
	size_t i = (size_t)tab_hash(t, key) & (t->cap - 1);
	uint8_t *e;

	while (t->used[i]) {
		e = t->slots + i * t->esize;
		if (!memcmp(e, key, t->klen))
			return e;
		i = (i + 1) & (t->cap - 1);
	}
	if (t->n >= t->max) {
		t->drops++;
		return NULL;
	}
	e = t->slots + i * t->esize;
	memset(e, 0, t->esize);
	memcpy(e, key, t->klen);
	t->used[i] = 1;
	t->n++;
	return e;
}

/* Does home slot @h lie cyclically in (@hole, @j]?  Then the entry at @j must stay. */
static bool tab_stays(size_t h, size_t hole, size_t j)
{
	return hole <= j ? (hole < h && h <= j) : (hole < h || h <= j);
}

/**
 * gd_tab_remove() - remove @entry (from gd_tab_find/insert/slot)
 * Entries after it in its cluster may move back into earlier slots.
 */
void gd_tab_remove(struct gd_tab *t, void *entry)
{
	size_t hole = tab_index(t, entry), j = hole, h;

	for (;;) {
		j = (j + 1) & (t->cap - 1);
		if (!t->used[j])
			break;
		h = (size_t)tab_hash(t, t->slots + j * t->esize) & (t->cap - 1);
		if (tab_stays(h, hole, j))
			continue;
		memcpy(t->slots + hole * t->esize, t->slots + j * t->esize, t->esize);
		hole = j;
	}
	t->used[hole] = 0;
	t->n--;
}

/*
 * gd_addrkey_from() - the key of @a's address (its port left out); an IPv4 client of
 * a dual-stack listener (::ffff:a.b.c.d) is the IPv4 address, in its /24, as mw-ins
 * and mw-pvm take it
 */
void gd_addrkey_from(struct gd_addrkey *k, const struct mw_addr *a)
{
	struct mw_addr v = *a;
	unsigned whole = 0;

	mw_cidr_unmap(&v, &whole);
	memset(k, 0, sizeof(*k));
	k->family = v.family;
	memcpy(k->addr, v.addr, v.family == 4 ? 4 : 16);
}

/* gd_addrkey_to() - the address a key names (port 0) */
void gd_addrkey_to(struct mw_addr *a, const struct gd_addrkey *k)
{
	memset(a, 0, sizeof(*a));
	a->family = k->family;
	memcpy(a->addr, k->addr, sizeof(a->addr));
}

/* gd_addrkey_prefix() - @k's /24 (IPv4) or /64 (IPv6): the host bits zero */
void gd_addrkey_prefix(struct gd_addrkey *p, const struct gd_addrkey *k)
{
	size_t keep = k->family == 4 ? 3 : 8;

	memset(p, 0, sizeof(*p));
	p->family = k->family;
	memcpy(p->addr, k->addr, keep);
}

/* gd_ins_count_get() - how many entries INS @ins holds, by table @t of gd_ins_count */
uint32_t gd_ins_count_get(const struct gd_tab *t, uint32_t ins)
{
	const struct gd_ins_count *c = gd_tab_find(t, &ins);

	return c ? c->n : 0;
}

/*
 * gd_ins_count_add() - INS @ins holds one entry more (@add) or fewer
 * @t: a table of gd_ins_count with room for one per entry counted: an insert never fails
 */
void gd_ins_count_add(struct gd_tab *t, uint32_t ins, bool add)
{
	struct gd_ins_count *c = add ? gd_tab_insert(t, &ins) : gd_tab_find(t, &ins);

	if (!c)
		return; /* never (see above); or nothing to take away */
	if (add)
		c->n++;
	else if (!--c->n)
		gd_tab_remove(t, c);
}
