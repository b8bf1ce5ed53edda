/* SPDX-License-Identifier: MIT */
/* cidr.c - "ip/prefix" networks: parse once, match addresses */
#include <arpa/inet.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "common/cidr.h"

int mw_cidr_parse(struct mw_cidr *c, const char *text)
{
	char ip[INET6_ADDRSTRLEN];
	const char *slash = strchr(text, '/');
	char *end;
	long prefix;
	int max;

	memset(c, 0, sizeof(*c));
	if (!slash || (size_t)(slash - text) >= sizeof(ip))
		return -EINVAL;
	memcpy(ip, text, (size_t)(slash - text));
	ip[slash - text] = '\0';
	if (inet_pton(AF_INET, ip, c->net) == 1) {
		c->family = 4;
		max = 32;
	} else if (inet_pton(AF_INET6, ip, c->net) == 1) {
		c->family = 6;
		max = 128;
	} else {
		return -EINVAL;
	}
	errno = 0;
	prefix = strtol(slash + 1, &end, 10);
	if (errno || end == slash + 1 || *end || slash[1] == '-' || slash[1] == '+' || prefix < 0 ||
	    prefix > max)
		return -EINVAL;
	c->prefix = (uint8_t)prefix;
	return 0;
}

static bool cidr_prefix_equal(const uint8_t *a, const uint8_t *b, unsigned bits)
{
	unsigned bytes = bits / 8, rest = bits % 8;
	uint8_t mask;

	if (memcmp(a, b, bytes))
		return false;
	if (!rest)
		return true;
	mask = (uint8_t)(0xff << (8 - rest));
	return (a[bytes] & mask) == (b[bytes] & mask);
}

bool mw_cidr_match(const struct mw_cidr *c, const struct mw_addr *a)
{
	static const uint8_t mapped[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff };

	if (a->family == 6 && c->family == 4 && !memcmp(a->addr, mapped, sizeof(mapped)))
		return cidr_prefix_equal(a->addr + 12, c->net, c->prefix);
	if (a->family != c->family)
		return false;
	return cidr_prefix_equal(a->addr, c->net, c->prefix);
}

void mw_cidr_mask(uint8_t addr[16], unsigned prefix)
{
	unsigned i;

	for (i = 0; i<16; i++, prefix = prefix> 8 ? prefix - 8 : 0)
		if (prefix < 8)
			addr[i] &= (uint8_t)(0xff00u >> prefix);
}

bool mw_cidr_overlap(const uint8_t a[16], unsigned alen, const uint8_t b[16], unsigned blen)
{
	return cidr_prefix_equal(a, b, alen < blen ? alen : blen);
}

bool mw_cidr_unmap(struct mw_addr *a, unsigned *len)
{
	static const uint8_t mapped[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff };

	if (a->family != 6 || (*len && *len <= 96) || memcmp(a->addr, mapped, sizeof(mapped)))
		return false;
	a->family = 4;
	memmove(a->addr, a->addr + 12, 4);
	memset(a->addr + 4, 0, 12);
	if (*len)
		*len -= 96;
	return true;
}

bool mw_cidr_v6_reaches_mapped(const uint8_t a[16], unsigned len)
{
	static const uint8_t mapped[16] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff };

	return len <= 96 && mw_cidr_overlap(a, len, mapped, 96);
}
