/* SPDX-License-Identifier: MIT */
/* sketch.h - Space-Saving top-N and HyperLogLog distinct counts, fixed memory */
#ifndef MW_FLOWD_SKETCH_H
#define MW_FLOWD_SKETCH_H

#include <stddef.h>
#include <stdint.h>

#define FL_TOPN_KEY_MAX 48

/**
 * struct fl_topn_item - one monitored key
 * @key:   the key, @fl_topn.key_size bytes used
 * @hash:  its hash, compared first
 * @count: weight counted for it, never below its true weight
 * @error: how much of @count may belong to keys it replaced (true >= count - error)
 */
struct fl_topn_item {
	uint8_t key[FL_TOPN_KEY_MAX];
	uint64_t hash;
	uint64_t count;
	uint64_t error;
};

/**
 * struct fl_topn - Space-Saving over @m counters
 * @items:    @m counters, @used of them in use
 * @heap:     item numbers, a min-heap on count (the counter to replace is at the root)
 * @pos:      item number -> its place in @heap
 * @index:    open addressing, key hash -> item number, @mask + 1 slots
 * @sorted:   fl_topn_top()'s output, largest first
 * @key_size: bytes of key
 * @total:    weight added since the last reset: every error is at most total / m
 */
struct fl_topn {
	struct fl_topn_item *items;
	uint32_t *heap;
	uint32_t *pos;
	uint32_t *index;
	struct fl_topn_item *sorted;
	uint32_t mask;
	uint32_t m;
	uint32_t used;
	size_t key_size;
	uint64_t total;
};

int fl_topn_init(struct fl_topn *t, uint32_t m, size_t key_size);
void fl_topn_fini(struct fl_topn *t);
void fl_topn_reset(struct fl_topn *t);
void fl_topn_add(struct fl_topn *t, const void *key, uint64_t weight);
uint32_t fl_topn_top(struct fl_topn *t, uint32_t n);

#define FL_HLL_BITS 8
#define FL_HLL_REGS (1u << FL_HLL_BITS)

/* HyperLogLog, 256 registers: relative standard error 1.04 / sqrt(256) = 6.5 %. */
struct fl_hll {
	uint8_t reg[FL_HLL_REGS];
};

void fl_hll_add(struct fl_hll *h, uint64_t hash);
uint64_t fl_hll_estimate(const struct fl_hll *h);

#endif /* MW_FLOWD_SKETCH_H */
