/* SPDX-License-Identifier: MIT */
/* anon.c - prefix-preserving anonymisation of a frame's addresses, payload strip (ANONYMIZE) */
#include <stdbool.h>
#include <string.h>

#include "common/siphash.h"
#include "flowd/anon.h"

/*
 * Theory of operation (Xu, Fan, Ammar, Moon, "Prefix-preserving IP address
 * anonymization", 2002 - Crypto-PAn): bit i of the anonymised address is bit
 * i of the address XOR f(the first i bits), where f is a keyed pseudo-random
 * function with one output bit.  Two addresses that share their first k bits
 * get anonymised addresses that share exactly their first k bits: the prefix
 * structure (subnets) survives, the addresses do not.  The mapping is a
 * bijection for a given key.  Crypto-PAn uses AES as f; here f is SipHash-2-4
 * (Aumasson and Bernstein, a keyed PRF with a 128-bit key, self-contained
 * below) over the prefix length and the prefix masked to it.  The key is
 * derived from the user's key text with SipHash under two fixed keys, so the
 * same text gives the same mapping across flows and runs (anonymised captures
 * can be joined); its secrecy is the text's.  Cost: one SipHash of 17 bytes
 * per address bit (32 per IPv4 address, 128 per IPv6).
 *
 * Frames: Ethernet with up to FL_ANON_TAGS VLAN tags, IPv4 or IPv6 (extension
 * headers skipped).  Both addresses are replaced; the IPv4 header checksum and
 * the TCP, UDP, UDP-Lite, DCCP and ICMPv6 checksums are adjusted (RFC 1624, a
 * UDP checksum of 0 stays 0), so a capture still reads as valid and no checksum
 * over the pseudo-header is left to test guesses of the original addresses
 * against.  The Ethernet addresses of hosts (not group addresses) are replaced
 * by keyed pseudonyms, locally administered: an IPv6 address derived from a MAC
 * (EUI-64) cannot be found again through the frame's own MAC.  Other places a header names an
 * address are blanked: IPv4 options become NOPs, the bodies of IPv6 hop-by-hop,
 * routing and destination options headers padding.  A frame that is not IP
 * (ARP, MPLS, PPPoE, more tags) is cut to its Ethernet header.  Strip keeps the
 * frame up to the end of the transport header (TCP with its options, UDP; the
 * IP headers for anything else, so an ICMP error's quoted packet and a tunnel's
 * inner one go): what the application said is gone, the headers remain.
 * Without strip the payload stays whole, addresses in it included.
 */
#define FL_ANON_TAGS 8

/**
 * fl_anon_init() - derive the mapping's key from @len bytes of key text
 * @a:   out
 * @key: any bytes (the MAPI argument: a passphrase, or hex)
 * @len: their number
 */
void fl_anon_init(struct fl_anon *a, const char *key, size_t len)
{
	a->k0 = mw_siphash24(0x6d77636f6d6d7331ULL, 0x616e6f6e796d697aULL, key, len);
	a->k1 = mw_siphash24(0x6d77636f6d6d7332ULL, 0x616e6f6e796d697aULL, key, len);
}

/**
 * fl_anon_addr() - anonymise an address in place, preserving prefixes
 * @a:    key
 * @addr: network byte order, @bits / 8 bytes
 * @bits: 32 or 128
 */
void fl_anon_addr(const struct fl_anon *a, uint8_t *addr, unsigned bits)
{
	uint8_t orig[16], in[17];
	unsigned i;

	memcpy(orig, addr, bits / 8);
	for (i = 0; i < bits; i++) {
		unsigned byte = i / 8, bit = 7 - i % 8;

		/* the first i bits of the original address, the rest zero, and i */
		memset(in, 0, sizeof(in));
		memcpy(in, orig, byte);
		if (i % 8)
			in[byte] = orig[byte] & (uint8_t)(0xff << (8 - i % 8));
		in[16] = (uint8_t)i;
		if (mw_siphash24(a->k0, a->k1, in, sizeof(in)) & 1)
			addr[byte] ^= (uint8_t)(1u << bit);
	}
}

/* RFC 1624: checksum @ck (network order at p) after 16-bit words changed from @old to @new. */
static void csum_adjust(uint8_t *ck, const uint8_t *old, const uint8_t *new, size_t len)
{
	uint32_t sum = (uint32_t)(~(ck[0] << 8 | ck[1]) & 0xffff);
	size_t i;

	for (i = 0; i + 1 < len; i += 2) {
		sum += (uint32_t)(~(old[i] << 8 | old[i + 1]) & 0xffff);
		sum += (uint32_t)(new[i] << 8 | new[i + 1]);
	}
	while (sum >> 16)
		sum = (sum & 0xffff) + (sum >> 16);
	sum = ~sum & 0xffff;
	ck[0] = (uint8_t)(sum >> 8);
	ck[1] = (uint8_t)sum;
}

/* The transport header at @l4 (@left bytes): fix its checksum; Return: its length, 0 if none. */
static size_t l4_fix(uint8_t *l4, size_t left, int proto, const uint8_t *old, const uint8_t *new,
		     size_t alen)
{
	if (proto == 6 && left >= 20) {
		size_t doff = (size_t)(l4[12] >> 4) * 4;

		csum_adjust(l4 + 16, old, new, alen);
		/* A bogus offset: the fixed header, never the payload after it. */
		return doff < 20 ? 20 : doff <= left ? doff : left;
	}
	if (proto == 17 && left >= 8) {
		if (l4[6] || l4[7]) {
			csum_adjust(l4 + 6, old, new, alen);
			if (!l4[6] && !l4[7]) /* 0 means "no checksum": RFC 768 sends 0xffff */
				l4[6] = l4[7] = 0xff;
		}
		return 8;
	}
	/* ICMPv6, DCCP and UDP-Lite sum the pseudo-header too: left as it was, it would
	 * let a reader test guesses of the original addresses.  Their headers and bodies
	 * (an error's quoted packet) are cut by strip. */
	if (proto == 58 && left >= 4)
		csum_adjust(l4 + 2, old, new, alen);
	if ((proto == 33 || proto == 136) && left >= 8)
		csum_adjust(l4 + 6, old, new, alen);
	return 0;
}

static size_t anon_v4(const struct fl_anon *a, uint8_t *ip, size_t left)
{
	size_t ihl = (size_t)(ip[0] & 0x0f) * 4, l4len = 0;
	uint8_t old[8];
	int later_fragment;

	if (left < 20)
		return 0;
	memcpy(old, ip + 12, 8);
	fl_anon_addr(a, ip + 12, 32);
	fl_anon_addr(a, ip + 16, 32);
	csum_adjust(ip + 10, old, ip + 12, 8);
	if (ihl > left && left > 20) { /* options cut by the capture: blank what is there */
		uint8_t opts[40];
		size_t n = left - 20 < sizeof(opts) ? left - 20 : sizeof(opts);

		memcpy(opts, ip + 20, n);
		memset(ip + 20, 1, n);
		csum_adjust(ip + 10, opts, ip + 20, n & ~(size_t)1);
	}
	if (ihl < 20 || ihl > left)
		return 20;
	if (ihl > 20) { /* options (record route, source route, timestamps) name addresses */
		uint8_t opts[40];

		memcpy(opts, ip + 20, ihl - 20);
		memset(ip + 20, 1, ihl - 20); /* NOP */
		csum_adjust(ip + 10, opts, ip + 20, ihl - 20);
	}
	later_fragment = ((ip[6] & 0x1f) << 8 | ip[7]) != 0;
	if (!later_fragment)
		l4len = l4_fix(ip + ihl, left - ihl, ip[9], old, ip + 12, 8);
	return ihl + l4len;
}

static size_t anon_v6(const struct fl_anon *a, uint8_t *ip, size_t left)
{
	size_t off = 40, l4len = 0;
	uint8_t old[32];
	int nh;

	if (left < 40)
		return 0;
	memcpy(old, ip + 8, 32);
	fl_anon_addr(a, ip + 8, 128);
	fl_anon_addr(a, ip + 24, 128);
	nh = ip[6];
	for (;;) {
		if (nh == 0 || nh == 43 || nh == 60 || nh == 51) {
			size_t len;

			if (off + 8 > left)
				return off;
			len = nh == 51 ? ((size_t)ip[off + 1] + 2) * 4
				       : ((size_t)ip[off + 1] + 1) * 8;
			/* Hop-by-hop, routing and destination options may name addresses (a
			 * segment list, a home address): their bodies become padding (Pad1). */
			if (nh != 51)
				memset(ip + off + 2, 0, (off + len <= left ? len : left - off) - 2);
			nh = ip[off];
			off += len;
		} else if (nh == 44) {
			if (off + 8 > left)
				return off;
			if ((ip[off + 2] << 8 | (ip[off + 3] & 0xf8)) != 0)
				return off + 8; /* a later fragment: no transport header */
			nh = ip[off];
			off += 8;
		} else {
			break;
		}
		if (off > left)
			return left;
	}
	l4len = l4_fix(ip + off, left - off, nh, old, ip + 8, 32);
	return off + l4len;
}

/**
 * fl_anon_frame() - anonymise an Ethernet frame's IP addresses in place, strip its payload
 * @a:      key
 * @frame:  the frame (writable copy)
 * @caplen: its captured bytes
 * @strip:  non-zero: cut the frame after the transport header
 *
 * An IP frame captured too short to hold both addresses is cut to its
 * Ethernet header (a part of an address is a prefix), and so is a frame that
 * is not IP, strip or not (ARP names addresses, MPLS and PPPoE carry IP).
 *
 * Return: the frame's new captured length
 */
/* A host's Ethernet address (not a group's) becomes a keyed, locally administered pseudonym. */
static void anon_mac(const struct fl_anon *a, uint8_t *mac)
{
	uint64_t h;

	if (mac[0] & 1)
		return; /* broadcast, multicast: names no host */
	h = mw_siphash24(a->k1, a->k0, mac, 6);
	for (int i = 0; i < 6; i++)
		mac[i] = (uint8_t)(h >> (8 * i));
	mac[0] = (uint8_t)((mac[0] & 0xfc) | 0x02);
}

size_t fl_anon_frame(const struct fl_anon *a, uint8_t *frame, size_t caplen, int strip)
{
	size_t off = 14, hdrs = 0;
	unsigned type, tags = 0;

	if (caplen < 14)
		return 0; /* a part of a MAC address is as telling as the rest */
	anon_mac(a, frame);
	anon_mac(a, frame + 6);
	type = (unsigned)(frame[12] << 8 | frame[13]);
	while ((type == 0x8100 || type == 0x88a8 || type == 0x9100) && tags < FL_ANON_TAGS &&
	       off + 4 <= caplen) {
		type = (unsigned)(frame[off + 2] << 8 | frame[off + 3]);
		off += 4;
		tags++;
	}
	if (type == 0x0800 && off < caplen && (frame[off] >> 4) == 4)
		hdrs = anon_v4(a, frame + off, caplen - off);
	else if (type == 0x86dd && off < caplen && (frame[off] >> 4) == 6)
		hdrs = anon_v6(a, frame + off, caplen - off);
	if (!hdrs)
		return off; /* not IP (ARP, MPLS, PPPoE... name addresses too), or not all there */
	if (!strip)
		return caplen;
	return off + hdrs;
}
