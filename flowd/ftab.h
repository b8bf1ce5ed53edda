/* SPDX-License-Identifier: MIT */
/* ftab.h - fixed-capacity hash table of fixed-size entries, allocated once */
#ifndef MW_FLOWD_FTAB_H
#define MW_FLOWD_FTAB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#define FTAB_NONE UINT64_MAX

/**
 * struct fl_ftab - entries whose first @key_size bytes are their key
 * @entries:    @cap entries of @entry_size bytes
 * @used:       one byte per entry: 1 when it holds a key
 * @index:      open-addressing index, @mask + 1 slots: entry number in the low 32
 *              bits, the key hash's high 32 bits above (compared before the key)
 * @free_list:  entry numbers not in use, @nfree of them
 * @seed:       random per table: hash flooding needs the seed
 * @count:      entries in use
 * @drops:      inserts refused because the table was full
 */
struct fl_ftab {
	uint8_t *entries;
	uint8_t *used;
	uint64_t *index;
	uint32_t *free_list;
	size_t entry_size;
	size_t key_size;
	uint32_t cap;
	uint32_t mask;
	uint32_t nfree;
	uint64_t seed;
	uint32_t count;
	uint64_t drops;
};

int fl_ftab_init(struct fl_ftab *t, uint32_t cap, size_t entry_size, size_t key_size);
void fl_ftab_fini(struct fl_ftab *t);
void *fl_ftab_find(const struct fl_ftab *t, const void *key);
void *fl_ftab_get(struct fl_ftab *t, const void *key, bool *created);
void fl_ftab_del(struct fl_ftab *t, void *entry);
void *fl_ftab_at(const struct fl_ftab *t, uint32_t n);
uint64_t fl_hash(uint64_t seed, const void *key, size_t len);
uint64_t fl_salt(void);
void fl_salt_set(uint64_t seed);

/* Keys of @n bytes equal?  Whole words inline (the sizes in use: 4, 8, 16, 40, 48), else memcmp. */
static inline bool fl_key_eq(const void *a, const void *b, size_t n)
{
	const uint8_t *x = a, *y = b;
	uint64_t u, v;
	uint32_t s, t;

	if (n == 4) {
		memcpy(&s, x, 4);
		memcpy(&t, y, 4);
		return s == t;
	}
	if (n % 8 || n > 64)
		return !memcmp(a, b, n);
	for (; n; n -= 8, x += 8, y += 8) {
		memcpy(&u, x, 8);
		memcpy(&v, y, 8);
		if (u != v)
			return false;
	}
	return true;
}

#endif /* MW_FLOWD_FTAB_H */
