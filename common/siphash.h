/* SPDX-License-Identifier: MIT */
/* siphash.h - SipHash-2-4: a keyed PRF for hash tables with hostile keys, and flowd's anonymiser */
#ifndef MW_COMMON_SIPHASH_H
#define MW_COMMON_SIPHASH_H

#include <stddef.h>
#include <stdint.h>

uint64_t mw_siphash24(uint64_t k0, uint64_t k1, const void *data, size_t len);

#endif /* MW_COMMON_SIPHASH_H */
