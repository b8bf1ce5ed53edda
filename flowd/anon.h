/* SPDX-License-Identifier: MIT */
/* anon.h - prefix-preserving address anonymisation (Crypto-PAn's construction, SipHash as the PRF)
 */
#ifndef MW_FLOWD_ANON_H
#define MW_FLOWD_ANON_H

#include <stddef.h>
#include <stdint.h>

/* struct fl_anon - the 128-bit SipHash key derived from the user's key text */
struct fl_anon {
	uint64_t k0, k1;
};

void fl_anon_init(struct fl_anon *a, const char *key, size_t len);
void fl_anon_addr(const struct fl_anon *a, uint8_t *addr, unsigned bits);
size_t fl_anon_frame(const struct fl_anon *a, uint8_t *frame, size_t caplen, int strip);

#endif /* MW_FLOWD_ANON_H */
