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

#define TOPN_SEED 0x70b5eedULL

/**
 * fl_topn_init() - allocate @m counters once
 * @t:        sketch
 * @m:        counters, at least 1
 * @key_size: bytes per key, at most FL_TOPN_KEY_MAX
 *
 * Return: 0, -EINVAL or -ENOMEM
 */
int fl_topn_init(struct fl_topn *t, uint32_t m, size_t key_size)
{
	memset(t, 0, sizeof(*t));
	if (!m || !key_size || key_size > FL_TOPN_KEY_MAX)
		return -EINVAL;
	t->items = calloc(m, sizeof(*t->items));
	if (!t->items)
		return -ENOMEM;
	t->m = m;
	t->key_size = key_size;
	return 0;
}

/**
 * fl_topn_fini() - free the counters
 * @t: sketch
 */
void fl_topn_fini(struct fl_topn *t)
{
	free(t->items);
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
}

/**
 * fl_topn_add() - count @weight for @key
 * @t:      sketch
 * @key:    @t->key_size bytes
 * @weight: bytes or packets
 */
void fl_topn_add(struct fl_topn *t, const void *key, uint64_t weight)
{
	uint64_t h = fl_hash(TOPN_SEED, key, t->key_size);
	struct fl_topn_item *min = NULL;
	uint32_t i;

	t->total += weight;
	for (i = 0; i < t->used; i++) {
		struct fl_topn_item *it = &t->items[i];

		if (it->hash == h && !memcmp(it->key, key, t->key_size)) {
			it->count += weight;
			return;
		}
		if (!min || it->count < min->count)
			min = it;
	}
	if (t->used < t->m) {
		min = &t->items[t->used++];
		min->count = 0;
		min->error = 0;
	} else {
		FL_ASSERT(min);
		min->error = min->count;
	}
	memcpy(min->key, key, t->key_size);
	min->hash = h;
	min->count += weight;
}

static int topn_cmp(const void *a, const void *b)
{
	const struct fl_topn_item *x = a, *y = b;

	if (x->count != y->count)
		return x->count < y->count ? 1 : -1;
	return memcmp(x->key, y->key, sizeof(x->key));
}

/**
 * fl_topn_top() - sort the counters, largest first
 * @t: sketch (its counters are reordered)
 * @n: how many the caller wants
 *
 * Return: how many of @t->items are valid, at most @n
 */
uint32_t fl_topn_top(struct fl_topn *t, uint32_t n)
{
	qsort(t->items, t->used, sizeof(*t->items), topn_cmp);
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
