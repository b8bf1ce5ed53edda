/* SPDX-License-Identifier: MIT */
/* ftab.c - fixed-capacity hash table: preallocated, full means drop and count */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "flowd/fl_assert.h"
#include "flowd/ftab.h"

/*
 * Theory of operation: entries live in one array allocated at start; the
 * index is an open-addressing array (linear probing, at most half full) of
 * entry numbers.  Deleting shifts the following run back (no tombstones), so
 * lookups never degrade with churn.  Nothing is allocated after init: when
 * every entry is in use an insert is refused and counted in @drops.
 */

/* splitmix64's finaliser: every input bit reaches every output bit. */
static uint64_t ftab_mix(uint64_t x)
{
	x ^= x >> 30;
	x *= 0xbf58476d1ce4e5b9ULL;
	x ^= x >> 27;
	x *= 0x94d049bb133111ebULL;
	x ^= x >> 31;
	return x;
}

/**
 * fl_salt() - this process's random hash seed
 *
 * For the hashes that must agree across sketches (the top-N indexes, the
 * HyperLogLogs): with a seed an attacker cannot know, keys cannot be chosen to
 * collide in an index nor values to land in chosen registers.  flowd's loop is
 * single-threaded; the first call draws it.
 *
 * Return: the seed
 */
static uint64_t salt;
static bool drawn;

uint64_t fl_salt(void)
{
	if (!drawn) {
		if (getrandom(&salt, sizeof(salt), GRND_NONBLOCK) != sizeof(salt)) {
			struct timespec ts;

			clock_gettime(CLOCK_MONOTONIC, &ts);
			salt = ftab_mix((uint64_t)ts.tv_nsec ^ (uint64_t)ts.tv_sec << 32 ^
					(uint64_t)getpid());
		}
		drawn = true;
	}
	return salt;
}

/**
 * fl_salt_set() - tests only: a fixed seed, so that an estimate (a HyperLogLog of
 * 7 values in 256 registers: 8 % of random seeds collide two of them) is the same
 * in every run
 * @seed: the seed fl_salt() returns from now on
 */
void fl_salt_set(uint64_t seed)
{
	salt = seed;
	drawn = true;
}

/**
 * fl_hash() - seeded hash of @len bytes
 * @seed: per table, random
 * @key:  bytes to hash
 * @len:  their number
 *
 * Return: 64-bit hash
 */
uint64_t fl_hash(uint64_t seed, const void *key, size_t len)
{
	const uint8_t *b = key;
	uint64_t h = seed ^ (len * 0x9e3779b97f4a7c15ULL);
	uint64_t w;

	/* Whole words by a fixed-size copy (one load); the tail zero-padded, as one word. */
	for (; len >= 8; b += 8, len -= 8) {
		memcpy(&w, b, 8);
		h = (h ^ ftab_mix(w + 0x9e3779b97f4a7c15ULL)) * 0xbf58476d1ce4e5b9ULL;
	}
	if (len) {
		w = 0;
		memcpy(&w, b, len);
		h = (h ^ ftab_mix(w + 0x9e3779b97f4a7c15ULL)) * 0xbf58476d1ce4e5b9ULL;
	}
	return ftab_mix(h);
}

/**
 * fl_ftab_init() - allocate every entry and the index, once
 * @t:          table
 * @cap:        entries, 1..2^30
 * @entry_size: bytes per entry, at least @key_size
 * @key_size:   bytes of key at the start of each entry
 *
 * Return: 0, -EINVAL or -ENOMEM
 */
int fl_ftab_init(struct fl_ftab *t, uint32_t cap, size_t entry_size, size_t key_size)
{
	uint32_t slots = 2;
	uint32_t i;

	memset(t, 0, sizeof(*t));
	if (!cap || cap > (1u << 30) || entry_size < key_size || !key_size)
		return -EINVAL;
	while (slots < 2 * (uint64_t)cap)
		slots <<= 1;
	t->entries = calloc(cap, entry_size);
	t->used = calloc(cap, 1);
	t->index = malloc((size_t)slots * sizeof(*t->index));
	t->free_list = malloc((size_t)cap * sizeof(*t->free_list));
	if (!t->entries || !t->used || !t->index || !t->free_list) {
		fl_ftab_fini(t);
		return -ENOMEM;
	}
	memset(t->index, 0xff, (size_t)slots * sizeof(*t->index));
	for (i = 0; i < cap; i++)
		t->free_list[i] = cap - 1 - i; /* entry 0 is handed out first */
	t->nfree = cap;
	t->cap = cap;
	t->mask = slots - 1;
	t->entry_size = entry_size;
	t->key_size = key_size;
	if (getrandom(&t->seed, sizeof(t->seed), GRND_NONBLOCK) != sizeof(t->seed))
		t->seed = (uint64_t)(uintptr_t)t ^ 0x5eed;
	return 0;
}

/**
 * fl_ftab_fini() - free what init allocated
 * @t: table, initialised or zeroed
 */
void fl_ftab_fini(struct fl_ftab *t)
{
	free(t->entries);
	free(t->used);
	free(t->index);
	free(t->free_list);
	memset(t, 0, sizeof(*t));
}

static uint8_t *ftab_entry(const struct fl_ftab *t, uint32_t n)
{
	return t->entries + (size_t)n * t->entry_size;
}

/* Index slot parts: the entry number, and the hash tag that must match first. */
static uint32_t slot_entry(uint64_t v)
{
	return (uint32_t)v;
}

static uint64_t slot_make(uint32_t n, uint64_t h)
{
	return (h & 0xffffffff00000000ULL) | n;
}

/* The index slot holding @key (hash @h), or the empty slot where it would go. */
static uint32_t ftab_slot(const struct fl_ftab *t, const void *key, uint64_t h)
{
	uint32_t s = (uint32_t)h & t->mask;

	while (t->index[s] != FTAB_NONE &&
	       ((t->index[s] ^ h) >> 32 ||
		!fl_key_eq(ftab_entry(t, slot_entry(t->index[s])), key, t->key_size)))
		s = (s + 1) & t->mask;
	return s;
}

/**
 * fl_ftab_find() - the entry with @key
 * @t:   table
 * @key: @t->key_size bytes
 *
 * Return: the entry, or NULL
 */
void *fl_ftab_find(const struct fl_ftab *t, const void *key)
{
	uint32_t s = ftab_slot(t, key, fl_hash(t->seed, key, t->key_size));

	return t->index[s] == FTAB_NONE ? NULL : ftab_entry(t, slot_entry(t->index[s]));
}

/**
 * fl_ftab_get() - the entry with @key, created (zeroed, key copied) if absent
 * @t:       table
 * @key:     @t->key_size bytes
 * @created: set true when the entry is new
 *
 * Return: the entry, or NULL when it is absent and the table is full (counted)
 */
void *fl_ftab_get(struct fl_ftab *t, const void *key, bool *created)
{
	uint64_t h = fl_hash(t->seed, key, t->key_size);
	uint32_t s = ftab_slot(t, key, h);
	uint32_t n;
	uint8_t *e;

	*created = false;
	if (t->index[s] != FTAB_NONE)
		return ftab_entry(t, slot_entry(t->index[s]));
	if (!t->nfree) {
		t->drops++;
		return NULL;
	}
	n = t->free_list[--t->nfree];
	FL_ASSERT(!t->used[n]);
	e = ftab_entry(t, n);
	memset(e, 0, t->entry_size);
	memcpy(e, key, t->key_size);
	t->used[n] = 1;
	t->index[s] = slot_make(n, h);
	t->count++;
	*created = true;
	return e;
}

/**
 * fl_ftab_del() - remove @entry; its memory goes back to the free list
 * @t:     table
 * @entry: an entry of @t in use
 */
void fl_ftab_del(struct fl_ftab *t, void *entry)
{
	uint32_t n = (uint32_t)(((uint8_t *)entry - t->entries) / t->entry_size);
	uint32_t s = ftab_slot(t, entry, fl_hash(t->seed, entry, t->key_size));
	uint32_t j = s;

	FL_ASSERT(n < t->cap && t->used[n] && slot_entry(t->index[s]) == n);
	/* Backward shift: move later members of the run into the hole. */
	for (;;) {
		uint32_t home;

		j = (j + 1) & t->mask;
		if (t->index[j] == FTAB_NONE)
			break;
		home = (uint32_t)fl_hash(t->seed, ftab_entry(t, slot_entry(t->index[j])),
					 t->key_size) &
		       t->mask;
		/* Leave it if its home lies cyclically in (s, j]. */
		if (s <= j ? (s < home && home <= j) : (s < home || home <= j))
			continue;
		t->index[s] = t->index[j];
		s = j;
	}
	t->index[s] = FTAB_NONE;
	t->used[n] = 0;
	t->free_list[t->nfree++] = n;
	t->count--;
}

/**
 * fl_ftab_at() - entry number @n, for walks over the whole table
 * @t: table
 * @n: 0..cap-1
 *
 * Return: the entry, or NULL when it is free
 */
void *fl_ftab_at(const struct fl_ftab *t, uint32_t n)
{
	return n < t->cap && t->used[n] ? ftab_entry(t, n) : NULL;
}
