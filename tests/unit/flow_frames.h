/* SPDX-License-Identifier: MIT */
/* flow_frames.h - build Ethernet/IPv4/IPv6/TCP/UDP frames for the flow tests */
#ifndef MW_FLOW_FRAMES_H
#define MW_FLOW_FRAMES_H

#include <arpa/inet.h>
#include <stdint.h>
#include <string.h>

/*
 * ff_v4() - an Ethernet + IPv4 + TCP (proto 6) or UDP (17) frame into @buf
 * (at least 64 + @payload bytes); returns its length.
 */
static inline size_t ff_v4(uint8_t *buf, const char *src, const char *dst, uint8_t proto,
			   uint16_t sport, uint16_t dport, uint8_t tcp_flags, size_t payload)
{
	size_t l4 = proto == 6 ? 20 : 8;
	uint16_t iplen = (uint16_t)(20 + l4 + payload);

	memset(buf, 0, 14 + iplen);
	buf[12] = 0x08;
	buf[14] = 0x45;
	buf[16] = (uint8_t)(iplen >> 8);
	buf[17] = (uint8_t)iplen;
	buf[22] = 64;
	buf[23] = proto;
	inet_pton(AF_INET, src, buf + 26);
	inet_pton(AF_INET, dst, buf + 30);
	buf[34] = (uint8_t)(sport >> 8);
	buf[35] = (uint8_t)sport;
	buf[36] = (uint8_t)(dport >> 8);
	buf[37] = (uint8_t)dport;
	if (proto == 6) {
		buf[46] = 0x50;
		buf[47] = tcp_flags;
	}
	return 14 + iplen;
}

/* ff_v6_udp() - Ethernet + IPv6 + one 8-byte destination-options header + UDP. */
static inline size_t ff_v6_udp(uint8_t *buf, const char *src, const char *dst, uint16_t sport,
			       uint16_t dport)
{
	memset(buf, 0, 14 + 40 + 8 + 8);
	buf[12] = 0x86;
	buf[13] = 0xdd;
	buf[14] = 0x60;
	buf[19] = 16; /* payload length: ext + udp */
	buf[20] = 60; /* next: destination options */
	buf[21] = 64;
	inet_pton(AF_INET6, src, buf + 22);
	inet_pton(AF_INET6, dst, buf + 38);
	buf[54] = 17; /* ext next: UDP, length 0 (8 bytes) */
	buf[62] = (uint8_t)(sport >> 8);
	buf[63] = (uint8_t)sport;
	buf[64] = (uint8_t)(dport >> 8);
	buf[65] = (uint8_t)dport;
	return 14 + 40 + 8 + 8;
}

#endif /* MW_FLOW_FRAMES_H */
