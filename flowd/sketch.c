/* SPDX-License-Identifier: MIT */
/* sketch.c - Space-Saving (Metwally et al. 2005) and HyperLogLog (Flajolet et al. 2007) */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "flowd/fl_assert.h"
#include "flowd/ftab.h"
#include "flowd/sketch.h"

/*
 * Space-Saving keeps m counters.  A key already counted adds its weight; a new
 * key takes a free counter, or replaces the counter with the least count and
 * inherits it as its error.  With W the weight added so far, every count is
 * at least the key's true weight and at most W / m above it, and every key
 * whose true weight exceeds W / m holds a counter: the reported top N are
 * exact whenever fewer than m keys were seen.
 */

#define TOPN_NONE UINT32_MAX

/*
 * Each update is O(log m): the hash index finds a key's counter, the min-heap
 * on counts gives the counter to replace, and a counter that grows sinks in
 * the heap.  Nothing is allocated after init.
 */

/**
 * fl_topn_init() - allocate @m counters once
 * @t:        sketch
 * @m:        counters, 1..2^24
 * @key_size: bytes per key, at most FL_TOPN_KEY_MAX
 *
 * Return: 0, -EINVAL or -ENOMEM
 */
int fl_topn_init(struct fl_topn *t, uint32_t m, size_t key_size)
{
	uint32_t slots = 2;

	memset(t, 0, sizeof(*t));
	if (!m || m > (1u << 24) || !key_size || key_size > FL_TOPN_KEY_MAX)
		return -EINVAL;
	while (slots < 2 * m)
		slots <<= 1;
	t->items = calloc(m, sizeof(*t->items));
	t->sorted = calloc(m, sizeof(*t->sorted));
	t->heap = calloc(m, sizeof(*t->heap));
	t->pos = calloc(m, sizeof(*t->pos));
	t->index = malloc((size_t)slots * sizeof(*t->index));
	if (!t->items || !t->sorted || !t->heap || !t->pos || !t->index) {
		fl_topn_fini(t);
		return -ENOMEM;
	}
	t->m = m;
	t->mask = slots - 1;
	t->key_size = key_size;
	fl_topn_reset(t);
	return 0;
}

/**
 * fl_topn_fini() - free the counters
 * @t: sketch, initialised or zeroed
 */
void fl_topn_fini(struct fl_topn *t)
{
	free(t->items);
	free(t->sorted);
	free(t->heap);
	free(t->pos);
	free(t->index);
	memset(t, 0, sizeof(*t));
}

/**
 * fl_topn_reset() - forget every key (start of an interval)
 * @t: sketch
 */
void fl_topn_reset(struct fl_topn *t)
{
	t->used = 0;
	t->total = 0;
	memset(t->index, 0xff, ((size_t)t->mask + 1) * sizeof(*t->index));
}

/* The index slot of @key (hash @h), or the empty slot where it would go. */
static uint32_t topn_slot(const struct fl_topn *t, const void *key, uint64_t h)
{
	uint32_t s = (uint32_t)h & t->mask;

	while (t->index[s] != TOPN_NONE) {
		const struct fl_topn_item *it = &t->items[t->index[s]];

		if (it->hash == h && fl_key_eq(it->key, key, t->key_size))
			break;
		s = (s + 1) & t->mask;
	}
	return s;
}

/* Remove item @n's key from the index (backward shift, as fl_ftab_del). */
static void topn_unindex(struct fl_topn *t, uint32_t n)
{
	uint32_t s = topn_slot(t, t->items[n].key, t->items[n].hash), j = s;

	FL_ASSERT(t->index[s] == n);
	for (;;) {
		uint32_t home;

		j = (j + 1) & t->mask;
		if (t->index[j] == TOPN_NONE)
			break;
		home = (uint32_t)t->items[t->index[j]].hash & t->mask;
		if (s <= j ? (s < home && home <= j) : (s < home || home <= j))
			continue;
		t->index[s] = t->index[j];
		s = j;
	}
	t->index[s] = TOPN_NONE;
}

static void topn_swap(struct fl_topn *t, uint32_t a, uint32_t b)
{
	uint32_t x = t->heap[a];

	t->heap[a] = t->heap[b];
	t->heap[b] = x;
	t->pos[t->heap[a]] = a;
	t->pos[t->heap[b]] = b;
}

static uint64_t topn_count(const struct fl_topn *t, uint32_t h)
{
	return t->items[t->heap[h]].count;
}

static void topn_sift_up(struct fl_topn *t, uint32_t h)
{
	while (h && topn_count(t, (h - 1) / 2) > topn_count(t, h)) {
		topn_swap(t, h, (h - 1) / 2);
		h = (h - 1) / 2;
	}
}

static void topn_sift_down(struct fl_topn *t, uint32_t h)
{
	for (;;) {
		uint32_t l = 2 * h + 1, r = l + 1, min = h;

		if (l < t->used && topn_count(t, l) < topn_count(t, min))
			min = l;
		if (r < t->used && topn_count(t, r) < topn_count(t, min))
			min = r;
		if (min == h)
			return;
		topn_swap(t, h, min);
		h = min;
	}
}

/**
 * fl_topn_add() - count @weight for @key
 * @t:      sketch
 * @key:    @t->key_size bytes
 * @weight: bytes or packets
 */
void fl_topn_add(struct fl_topn *t, const void *key, uint64_t weight)
{
	uint64_t h = fl_hash(fl_salt(), key, t->key_size);
	uint32_t s = topn_slot(t, key, h), n;
	struct fl_topn_item *it;

	t->total += weight;
	if (t->index[s] != TOPN_NONE) {
		n = t->index[s];
		t->items[n].count += weight;
		topn_sift_down(t, t->pos[n]);
		return;
	}
	if (t->used < t->m) {
		n = t->used++;
		it = &t->items[n];
		it->count = 0;
		it->error = 0;
		t->heap[n] = n;
		t->pos[n] = n;
	} else {
		/* Replace the least count; the newcomer inherits it as its error. */
		n = t->heap[0];
		it = &t->items[n];
		topn_unindex(t, n);
		s = topn_slot(t, key, h);
		it->error = it->count;
	}
	memcpy(it->key, key, t->key_size);
	it->hash = h;
	it->count += weight;
	t->index[s] = n;
	topn_sift_up(t, t->pos[n]);
	topn_sift_down(t, t->pos[n]);
}

static int topn_cmp(const void *a, const void *b)
{
	const struct fl_topn_item *x = a, *y = b;

	if (x->count != y->count)
		return x->count < y->count ? 1 : -1;
	return memcmp(x->key, y->key, sizeof(x->key));
}

/**
 * fl_topn_top() - the counters, largest first, into @t->sorted
 * @t: sketch (its counters are left as they are)
 * @n: how many the caller wants
 *
 * Return: how many of @t->sorted are valid, at most @n
 */
uint32_t fl_topn_top(struct fl_topn *t, uint32_t n)
{
	memcpy(t->sorted, t->items, (size_t)t->used * sizeof(*t->items));
	qsort(t->sorted, t->used, sizeof(*t->sorted), topn_cmp);
	return t->used < n ? t->used : n;
}

/**
 * fl_hll_add() - count a hashed value
 * @h:    sketch
 * @hash: 64-bit hash of the value (fl_hash)
 */
void fl_hll_add(struct fl_hll *h, uint64_t hash)
{
	uint32_t idx = (uint32_t)(hash >> (64 - FL_HLL_BITS));
	uint64_t rest = hash << FL_HLL_BITS;
	uint8_t rank = rest ? (uint8_t)(__builtin_clzll(rest) + 1) : 64 - FL_HLL_BITS + 1;

	if (rank > h->reg[idx])
		h->reg[idx] = rank;
}

/**
 * fl_hll_estimate() - distinct values added (standard error 6.5 %)
 * @h: sketch
 *
 * Small counts use linear counting, which is close to exact below ~200.
 *
 * Return: the estimate
 */
uint64_t fl_hll_estimate(const struct fl_hll *h)
{
	const double m = FL_HLL_REGS;
	double sum = 0, e;
	uint32_t zeros = 0, i;

	for (i = 0; i < FL_HLL_REGS; i++) {
		sum += ldexp(1.0, -h->reg[i]);
		zeros += !h->reg[i];
	}
	e = 0.7213 / (1 + 1.079 / m) * m * m / sum;
	if (e <= 2.5 * m && zeros)
		e = m * log(m / zeros);
	return (uint64_t)(e + 0.5);
}
