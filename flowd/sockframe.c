/* SPDX-License-Identifier: MIT */
/* sockframe.c - a socket record as a header-only frame, so MAPI functions run over it */
#include <string.h>

#include "flowd/sockframe.h"

/*
 * Theory of operation: a flow over a Netflow sensor sees the app's sockets,
 * not packets.  Each record (a connection opened, the app's bytes moving one
 * way, a close) becomes one Ethernet + IPv4/IPv6 + TCP header with the
 * connection's addresses and ports and the flags of what happened (SYN, ACK
 * with PSH, FIN), no payload; the caller passes the record's app bytes as the
 * frame's wire length.  The same function library then runs unchanged:
 * BPF_FILTER on addresses, ports and flags, counters, TOP, DIST, FANOUT.
 * Checksums are left zero: nothing downstream checks them.
 */

static void put16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
}

static const uint8_t v4_mapped[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff };

/**
 * fl_sockframe() - build the header-only frame of one socket record
 * @buf:       at least FL_SOCKFRAME_MAX bytes
 * @src:       sender's address, 16 bytes (IPv4 mapped: an IPv4 frame)
 * @sport:     its port, host order
 * @dst:       receiver's address
 * @dport:     its port
 * @tcp_flags: FL_TCP_* of the record
 *
 * Return: the frame's length
 */
size_t fl_sockframe(uint8_t *buf, const uint8_t src[16], uint16_t sport, const uint8_t dst[16],
		    uint16_t dport, uint8_t tcp_flags)
{
	int v4 = !memcmp(src, v4_mapped, 12) && !memcmp(dst, v4_mapped, 12);
	uint8_t *ip = buf + 14, *tcp;

	memset(buf, 0, FL_SOCKFRAME_MAX);
	buf[0] = 0x02; /* locally administered, unicast: no real station */
	buf[6] = 0x02;
	if (v4) {
		put16(buf + 12, 0x0800);
		ip[0] = 0x45;
		put16(ip + 2, 20 + 20);
		ip[8] = 64;
		ip[9] = 6;
		memcpy(ip + 12, src + 12, 4);
		memcpy(ip + 16, dst + 12, 4);
		tcp = ip + 20;
	} else {
		put16(buf + 12, 0x86dd);
		ip[0] = 0x60;
		put16(ip + 4, 20);
		ip[6] = 6;
		ip[7] = 64;
		memcpy(ip + 8, src, 16);
		memcpy(ip + 24, dst, 16);
		tcp = ip + 40;
	}
	put16(tcp, sport);
	put16(tcp + 2, dport);
	tcp[12] = 5 << 4;
	tcp[13] = tcp_flags;
	return (size_t)(tcp + 20 - buf);
}
