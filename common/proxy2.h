/* SPDX-License-Identifier: MIT */
/* proxy2.h - PROXY protocol v2 header codec: the balancer writes it, mw-ins reads it */
#ifndef MW_PROXY2_H
#define MW_PROXY2_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

/*
 * Wire format (haproxy proxy-protocol.txt, section 2.2), all integers big endian:
 *
 *   0..11  signature  \r\n\r\n\0\r\nQUIT\n
 *   12     ver_cmd    0x2_ (version 2) | 0x_0 LOCAL, 0x_1 PROXY
 *   13     fam        0x11 TCP over IPv4, 0x21 TCP over IPv6, 0x00 UNSPEC
 *   14..15 len        bytes that follow (addresses, then TLVs)
 *   16..   TCP4: src 4, dst 4, sport 2, dport 2 (12 bytes)
 *          TCP6: src 16, dst 16, sport 2, dport 2 (36 bytes)
 *          then TLVs, which this codec skips.
 *
 * mwcomms bounds a whole header to MW_PROXY2_MAX bytes (the v1 limit plus
 * room for a few TLVs), so a reader never buffers more than that.
 */

#define MW_PROXY2_SIG	  "\r\n\r\n\0\r\nQUIT\n"
#define MW_PROXY2_SIG_LEN 12
#define MW_PROXY2_FIXED	  16	    /* signature, ver_cmd, fam, len */
#define MW_PROXY2_MAX	  536	    /* largest header accepted, TLVs included */
#define MW_PROXY2_V4_LEN  (16 + 12) /* what mw_proxy2_encode() writes for TCP4 */
#define MW_PROXY2_V6_LEN  (16 + 36) /* ... for TCP6 */

enum mw_proxy2_cmd {
	MW_PROXY2_LOCAL = 0, /* health check etc.: use the connection's real addresses */
	MW_PROXY2_PROXY = 1, /* relayed: src/dst are the original client and server */
};

/* A decoded header.  src/dst: the client and the address it reached (PROXY with
 * TCP4/TCP6); ss_family AF_UNSPEC for LOCAL and UNSPEC. */
struct mw_proxy2_hdr {
	uint8_t cmd;  /* enum mw_proxy2_cmd */
	uint8_t fam;  /* the fam byte as sent (0x11, 0x21, or 0x00) */
	uint16_t len; /* whole header length in bytes, TLVs included */
	struct sockaddr_storage src;
	struct sockaddr_storage dst;
};

/**
 * mw_proxy2_encode() - write a PROXY v2 header for a relayed TCP connection
 * @buf: output, at least MW_PROXY2_V6_LEN bytes is always enough
 * @len: its size
 * @src: the client (AF_INET or AF_INET6); NULL together with @dst: a LOCAL header
 * @dst: the address the client connected to (AF_INET or AF_INET6)
 *
 * Both IPv4 (or both IPv4-mapped IPv6): TCP4, 28 bytes.  Otherwise TCP6,
 * 52 bytes, with an IPv4 address written as ::ffff:a.b.c.d.  No TLVs.
 *
 * Return: bytes written, -ENOSPC if @len is too small, -EAFNOSUPPORT for
 * another address family, -EINVAL if only one of @src/@dst is NULL
 */
int mw_proxy2_encode(uint8_t *buf, size_t len, const struct sockaddr_storage *src,
		     const struct sockaddr_storage *dst);

/**
 * mw_proxy2_need() - how many bytes the header starting at @buf will take
 * @buf: the first bytes received
 * @len: how many
 *
 * Lets a reader recv() exactly the header and leave what follows in the
 * socket: fewer than MW_PROXY2_FIXED bytes need MW_PROXY2_FIXED, after that
 * the header's own length.
 *
 * Return: the whole header's length in bytes (MW_PROXY2_FIXED until its
 * length field has arrived), or -EINVAL if the bytes so far cannot start a
 * valid header (wrong signature, version, command, or over MW_PROXY2_MAX)
 */
int mw_proxy2_need(const uint8_t *buf, size_t len);

/**
 * mw_proxy2_decode() - parse a PROXY v2 header at the start of @buf
 * @buf: received bytes
 * @len: how many
 * @out: filled on success
 *
 * Rejects as early as the bytes allow: a wrong first byte fails at once, so a
 * client that speaks anything else is refused without waiting.  LOCAL
 * ignores the address block (as the spec says); PROXY with fam UNSPEC also
 * means "use the real addresses" (src/dst AF_UNSPEC).  TLVs are skipped.
 *
 * Return: bytes consumed (the whole header), 0 if more bytes are needed,
 * -EINVAL if it is not a valid v2 header (signature, version, command,
 * length too short for the family or over MW_PROXY2_MAX), -EPROTONOSUPPORT
 * for a PROXY header of another transport (UDP, AF_UNIX)
 */
int mw_proxy2_decode(const uint8_t *buf, size_t len, struct mw_proxy2_hdr *out);

#endif /* MW_PROXY2_H */
