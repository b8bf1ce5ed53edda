/* SPDX-License-Identifier: MIT */
/* decode.c - Ethernet (up to two VLAN tags), IPv4, IPv6, TCP, UDP; every length checked */
#include <string.h>

#include "flowd/decode.h"

#define ETH_HLEN_      14
#define ETHERTYPE_IPV4 0x0800
#define ETHERTYPE_IPV6 0x86dd
#define ETHERTYPE_VLAN 0x8100
#define ETHERTYPE_QINQ 0x88a8
#define VLAN_TAG_LEN   4
#define IPV4_MIN_HLEN  20
#define IPV6_HLEN      40
#define IPV6_EXT_MAX   8 /* extension headers followed before giving up */
#define TCP_MIN_HLEN   20
#define UDP_HLEN       8
#define PROTO_TCP      6
#define PROTO_UDP      17
#define PROTO_HOPOPTS  0
#define PROTO_ROUTING  43
#define PROTO_FRAGMENT 44
#define PROTO_DSTOPTS  60

static uint16_t be16(const uint8_t *b)
{
	return (uint16_t)(b[0] << 8 | b[1]);
}

static void map_v4(uint8_t out[16], const uint8_t *v4)
{
	memset(out, 0, 10);
	out[10] = 0xff;
	out[11] = 0xff;
	memcpy(out + 12, v4, 4);
}

/* The transport header at @l4 (@len bytes captured); a short one leaves has_ports false. */
static void decode_l4(struct fl_pkt *p, const uint8_t *l4, size_t len)
{
	if (p->proto == PROTO_TCP && len >= TCP_MIN_HLEN) {
		p->tcp_flags = l4[13];
		p->tcp_seq = (uint32_t)be16(l4 + 4) << 16 | be16(l4 + 6);
	} else if (!(p->proto == PROTO_UDP && len >= UDP_HLEN)) {
		return;
	}
	p->sport = be16(l4);
	p->dport = be16(l4 + 2);
	p->has_ports = true;
}

static enum fl_decode_result decode_ipv4(struct fl_pkt *p, const uint8_t *ip, size_t len)
{
	size_t hlen;
	uint16_t frag;

	if (len < IPV4_MIN_HLEN || ip[0] >> 4 != 4)
		return FL_DECODE_MALFORMED;
	hlen = (size_t)(ip[0] & 0x0f) * 4;
	p->ip_len = be16(ip + 2);
	if (hlen < IPV4_MIN_HLEN || hlen > len || p->ip_len < hlen)
		return FL_DECODE_MALFORMED;
	p->family = 4;
	p->proto = ip[9];
	map_v4(p->src, ip + 12);
	map_v4(p->dst, ip + 16);
	frag = be16(ip + 6) & 0x1fff;
	if (frag == 0) {
		/* What was captured, and no more than the header says is there. */
		size_t avail = len < p->ip_len ? len : p->ip_len;

		decode_l4(p, ip + hlen, avail - hlen);
	}
	return FL_DECODE_OK;
}

static enum fl_decode_result decode_ipv6(struct fl_pkt *p, const uint8_t *ip, size_t len)
{
	size_t off = IPV6_HLEN;
	uint8_t next;
	int n;

	if (len < IPV6_HLEN || ip[0] >> 4 != 6)
		return FL_DECODE_MALFORMED;
	p->family = 6;
	p->ip_len = (uint32_t)be16(ip + 4) + IPV6_HLEN;
	memcpy(p->src, ip + 8, 16);
	memcpy(p->dst, ip + 24, 16);
	next = ip[6];
	if (len > p->ip_len)
		len = p->ip_len;
	for (n = 0; n < IPV6_EXT_MAX; n++) {
		if (next != PROTO_HOPOPTS && next != PROTO_ROUTING && next != PROTO_DSTOPTS &&
		    next != PROTO_FRAGMENT)
			break;
		if (off + 8 > len) {
			p->proto = next;
			return FL_DECODE_OK; /* addresses known, transport not captured */
		}
		if (next == PROTO_FRAGMENT) {
			/* A later fragment carries no transport header. */
			bool later = (be16(ip + off + 2) & 0xfff8) != 0;

			next = ip[off];
			off += 8;
			if (later) {
				p->proto = next;
				return FL_DECODE_OK;
			}
			continue;
		}
		{
			size_t ext = ((size_t)ip[off + 1] + 1) * 8;

			next = ip[off];
			off += ext;
		}
	}
	p->proto = next;
	if (off <= len)
		decode_l4(p, ip + off, len - off);
	return FL_DECODE_OK;
}

/**
 * fl_decode_ether() - decode an Ethernet frame as captured
 * @p:      filled; zeroed first, so unused fields are 0
 * @frame:  the frame, starting at the destination MAC
 * @caplen: bytes captured (may be less than on the wire)
 *
 * Up to two 802.1Q/802.1ad tags are skipped.  IPv4 later fragments and IPv6
 * packets whose transport header was not captured decode with has_ports false.
 *
 * Return: FL_DECODE_OK, FL_DECODE_NOT_IP or FL_DECODE_MALFORMED
 */
enum fl_decode_result fl_decode_ether(struct fl_pkt *p, const uint8_t *frame, size_t caplen)
{
	size_t off = ETH_HLEN_;
	uint16_t type;
	int tags;

	memset(p, 0, sizeof(*p));
	if (caplen < ETH_HLEN_)
		return FL_DECODE_MALFORMED;
	type = be16(frame + 12);
	for (tags = 0; tags < 2 && (type == ETHERTYPE_VLAN || type == ETHERTYPE_QINQ); tags++) {
		if (off + VLAN_TAG_LEN > caplen)
			return FL_DECODE_MALFORMED;
		type = be16(frame + off + 2);
		off += VLAN_TAG_LEN;
	}
	if (type == ETHERTYPE_IPV4)
		return decode_ipv4(p, frame + off, caplen - off);
	if (type == ETHERTYPE_IPV6)
		return decode_ipv6(p, frame + off, caplen - off);
	return FL_DECODE_NOT_IP;
}
