/* SPDX-License-Identifier: MIT */
/* cidr.h - "ip/prefix" networks: parse once, match addresses (IPv4-mapped IPv6 included) */
#ifndef MW_CIDR_H
#define MW_CIDR_H

#include <stdbool.h>

#include "common/addr.h"

struct mw_cidr {
	uint8_t family; /* 4 or 6 */
	uint8_t prefix; /* 0..32 or 0..128 */
	uint8_t net[16];
};

/**
 * mw_cidr_parse() - parse "ip/prefix" ("10.0.0.0/8", "fd00::/64")
 * Host bits set in the address are ignored ("10.1.2.3/8" is 10.0.0.0/8).
 * Return: 0 or -EINVAL
 */
int mw_cidr_parse(struct mw_cidr *c, const char *text);

/**
 * mw_cidr_match() - is @a inside @c?
 * An IPv4-mapped IPv6 address (::ffff:a.b.c.d) matches as the IPv4 address,
 * as a dual-stack listener sees IPv4 clients.
 */
bool mw_cidr_match(const struct mw_cidr *c, const struct mw_addr *a);

/**
 * mw_cidr_overlap() - do @a/@alen and @b/@blen (16-byte addresses of one family)
 * share an address?  (Their first min(@alen, @blen) bits are equal.)
 */
bool mw_cidr_overlap(const uint8_t a[16], unsigned alen, const uint8_t b[16], unsigned blen);

/**
 * mw_cidr_v6_reaches_mapped() - does the IPv6 prefix @a/@len hold all or part of
 * ::ffff:0:0/96 (where IPv4 peers of a dual-stack socket are) without lying inside
 * it?  Such a prefix cannot be told as an IPv4 one.
 */
bool mw_cidr_v6_reaches_mapped(const uint8_t a[16], unsigned len);

/**
 * mw_cidr_unmap() - an IPv4-mapped IPv6 address or prefix as the IPv4 one
 * @a:   ::ffff:a.b.c.d becomes a.b.c.d (family 4, the other 12 bytes zero)
 * @len: its prefix length: 0 (the address alone) stays 0, 97..128 become 1..32
 * Anything else is left as it is (a shorter IPv6 prefix is not inside ::ffff:0:0/96).
 * Return: true if @a is now the IPv4 form
 */
bool mw_cidr_unmap(struct mw_addr *a, unsigned *len);

/**
 * mw_cidr_mask() - zero the bits of @addr (16 bytes, an IPv4 address in the first 4)
 * after its first @prefix
 */
void mw_cidr_mask(uint8_t addr[16], unsigned prefix);

#endif /* MW_CIDR_H */
