/* SPDX-License-Identifier: MIT */
/* proxy2.c - PROXY protocol v2 header codec (common/proxy2.h) */
#include <assert.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <string.h>

#include "common/proxy2.h"

#define VER_CMD_LOCAL 0x20
#define VER_CMD_PROXY 0x21
#define FAM_UNSPEC    0x00
#define FAM_TCP4      0x11
#define FAM_TCP6      0x21
#define ADDR4_LEN     (MW_PROXY2_V4_LEN - MW_PROXY2_FIXED) /* 4 + 4 + 2 + 2 */
#define ADDR6_LEN     (MW_PROXY2_V6_LEN - MW_PROXY2_FIXED) /* 16 + 16 + 2 + 2 */

static_assert(ADDR4_LEN == 12 && ADDR6_LEN == 36, "address block sizes of the spec");
static_assert(sizeof(MW_PROXY2_SIG) - 1 == MW_PROXY2_SIG_LEN, "signature length");

static void put_be16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
}

static uint16_t get_be16(const uint8_t *p)
{
	return (uint16_t)(p[0] << 8 | p[1]);
}

static const uint8_t v4mapped_prefix[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff };

/* The IPv4 address of @ss if it is AF_INET or an IPv4-mapped AF_INET6, else NULL. */
static const uint8_t *as_v4(const struct sockaddr_storage *ss)
{
	const struct sockaddr_in *s4 = (const struct sockaddr_in *)ss;
	const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)ss;

	if (ss->ss_family == AF_INET)
		return (const uint8_t *)&s4->sin_addr;
	if (memcmp(s6->sin6_addr.s6_addr, v4mapped_prefix, sizeof(v4mapped_prefix)))
		return NULL;
	return s6->sin6_addr.s6_addr + 12;
}

/* Port in network order, as it is on the wire too. */
static const uint8_t *port_of(const struct sockaddr_storage *ss)
{
	if (ss->ss_family == AF_INET)
		return (const uint8_t *)&((const struct sockaddr_in *)ss)->sin_port;
	return (const uint8_t *)&((const struct sockaddr_in6 *)ss)->sin6_port;
}

static void put_v6(uint8_t *p, const struct sockaddr_storage *ss)
{
	if (ss->ss_family == AF_INET6) {
		memcpy(p, ((const struct sockaddr_in6 *)ss)->sin6_addr.s6_addr, 16);
		return;
	}
	memcpy(p, v4mapped_prefix, sizeof(v4mapped_prefix));
	memcpy(p + 12, &((const struct sockaddr_in *)ss)->sin_addr, 4);
}

/**
 * mw_proxy2_encode() - write a PROXY v2 header for a relayed TCP connection
 * @buf: output
 * @len: its size
 * @src: the client, or NULL with @dst for LOCAL
 * @dst: the address the client connected to
 *
 * Return: bytes written or -errno (see common/proxy2.h)
 */
int mw_proxy2_encode(uint8_t *buf, size_t len, const struct sockaddr_storage *src,
		     const struct sockaddr_storage *dst)
{
	const uint8_t *s4, *d4;
	size_t need;

	if (!src != !dst)
		return -EINVAL;
	if (!src) {
		if (len < MW_PROXY2_FIXED)
			return -ENOSPC;
		memcpy(buf, MW_PROXY2_SIG, MW_PROXY2_SIG_LEN);
		buf[12] = VER_CMD_LOCAL;
		buf[13] = FAM_UNSPEC;
		put_be16(buf + 14, 0);
		return MW_PROXY2_FIXED;
	}
	if ((src->ss_family != AF_INET && src->ss_family != AF_INET6) ||
	    (dst->ss_family != AF_INET && dst->ss_family != AF_INET6))
		return -EAFNOSUPPORT;
	s4 = as_v4(src);
	d4 = as_v4(dst);
	need = s4 && d4 ? MW_PROXY2_V4_LEN : MW_PROXY2_V6_LEN;
	if (len < need)
		return -ENOSPC;
	memcpy(buf, MW_PROXY2_SIG, MW_PROXY2_SIG_LEN);
	buf[12] = VER_CMD_PROXY;
	if (s4 && d4) {
		buf[13] = FAM_TCP4;
		put_be16(buf + 14, ADDR4_LEN);
		memcpy(buf + 16, s4, 4);
		memcpy(buf + 20, d4, 4);
		memcpy(buf + 24, port_of(src), 2);
		memcpy(buf + 26, port_of(dst), 2);
	} else {
		buf[13] = FAM_TCP6;
		put_be16(buf + 14, ADDR6_LEN);
		put_v6(buf + 16, src);
		put_v6(buf + 32, dst);
		memcpy(buf + 48, port_of(src), 2);
		memcpy(buf + 50, port_of(dst), 2);
	}
	return (int)need;
}

/**
 * mw_proxy2_need() - how many bytes the header starting at @buf will take
 * @buf: the first bytes received
 * @len: how many
 *
 * Return: the whole header's length, or -EINVAL (see common/proxy2.h)
 */
int mw_proxy2_need(const uint8_t *buf, size_t len)
{
	size_t sig = len < MW_PROXY2_SIG_LEN ? len : MW_PROXY2_SIG_LEN;
	size_t total;

	if (sig && memcmp(buf, MW_PROXY2_SIG, sig))
		return -EINVAL;
	if (len > 12 && buf[12] != VER_CMD_LOCAL && buf[12] != VER_CMD_PROXY)
		return -EINVAL;
	if (len < MW_PROXY2_FIXED)
		return MW_PROXY2_FIXED;
	total = MW_PROXY2_FIXED + (size_t)get_be16(buf + 14);
	if (total > MW_PROXY2_MAX)
		return -EINVAL;
	return (int)total;
}

static void get_addrs(struct mw_proxy2_hdr *out, const uint8_t *p, bool v6)
{
	struct sockaddr_in *s4 = (struct sockaddr_in *)&out->src;
	struct sockaddr_in *d4 = (struct sockaddr_in *)&out->dst;
	struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&out->src;
	struct sockaddr_in6 *d6 = (struct sockaddr_in6 *)&out->dst;

	if (!v6) {
		s4->sin_family = AF_INET;
		d4->sin_family = AF_INET;
		memcpy(&s4->sin_addr, p, 4);
		memcpy(&d4->sin_addr, p + 4, 4);
		memcpy(&s4->sin_port, p + 8, 2);
		memcpy(&d4->sin_port, p + 10, 2);
		return;
	}
	s6->sin6_family = AF_INET6;
	d6->sin6_family = AF_INET6;
	memcpy(s6->sin6_addr.s6_addr, p, 16);
	memcpy(d6->sin6_addr.s6_addr, p + 16, 16);
	memcpy(&s6->sin6_port, p + 32, 2);
	memcpy(&d6->sin6_port, p + 34, 2);
}

/**
 * mw_proxy2_decode() - parse a PROXY v2 header at the start of @buf
 * @buf: received bytes
 * @len: how many
 * @out: filled on success
 *
 * Return: bytes consumed, 0 for more, or -errno (see common/proxy2.h)
 */
int mw_proxy2_decode(const uint8_t *buf, size_t len, struct mw_proxy2_hdr *out)
{
	int total = mw_proxy2_need(buf, len);
	size_t alen;
	uint8_t fam;

	if (total < 0)
		return total;
	/* Reject as soon as the bytes that decide have arrived. */
	fam = len > 13 ? buf[13] : FAM_UNSPEC;
	if (len > 13 && buf[12] == VER_CMD_PROXY && fam != FAM_TCP4 && fam != FAM_TCP6 &&
	    fam != FAM_UNSPEC)
		return (fam >> 4) > 3 || (fam & 0xf) > 2 ? -EINVAL : -EPROTONOSUPPORT;
	if (len < MW_PROXY2_FIXED)
		return 0;
	alen = (size_t)total - MW_PROXY2_FIXED;
	if (buf[12] == VER_CMD_PROXY &&
	    ((fam == FAM_TCP4 && alen < ADDR4_LEN) || (fam == FAM_TCP6 && alen < ADDR6_LEN)))
		return -EINVAL;
	if (len < (size_t)total)
		return 0;
	memset(out, 0, sizeof(*out));
	out->cmd = buf[12] == VER_CMD_PROXY ? MW_PROXY2_PROXY : MW_PROXY2_LOCAL;
	out->fam = fam;
	out->len = (uint16_t)total;
	out->src.ss_family = AF_UNSPEC;
	out->dst.ss_family = AF_UNSPEC;
	if (out->cmd == MW_PROXY2_PROXY && fam != FAM_UNSPEC)
		get_addrs(out, buf + MW_PROXY2_FIXED, fam == FAM_TCP6);
	return total;
}
