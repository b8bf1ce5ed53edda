/* SPDX-License-Identifier: MIT */
/* decode.h - one captured frame into the fields flow accounting needs */
#ifndef MW_FLOWD_DECODE_H
#define MW_FLOWD_DECODE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define FL_TCP_FIN 0x01
#define FL_TCP_SYN 0x02
#define FL_TCP_RST 0x04
#define FL_TCP_PSH 0x08
#define FL_TCP_ACK 0x10

/**
 * struct fl_pkt - what the decoder found in one frame
 * @family:    4 or 6
 * @proto:     IP protocol of the transport header (after IPv6 extension headers)
 * @has_ports: TCP or UDP header present (not a later fragment, not truncated)
 * @tcp_flags: TCP flags byte, 0 otherwise
 * @tcp_seq:   TCP sequence number, 0 otherwise
 * @src, @dst: addresses, IPv4 as IPv4-mapped IPv6 (::ffff:a.b.c.d)
 * @sport, @dport: host order, 0 without @has_ports
 * @ip_len:    bytes of the IP packet as its header says
 */
struct fl_pkt {
	uint8_t family;
	uint8_t proto;
	bool has_ports;
	uint8_t tcp_flags;
	uint32_t tcp_seq;
	uint8_t src[16];
	uint8_t dst[16];
	uint16_t sport;
	uint16_t dport;
	uint32_t ip_len;
};

/* Why a frame was not decoded. */
enum fl_decode_result {
	FL_DECODE_OK = 0,
	FL_DECODE_NOT_IP,    /* ARP, LLDP, ...: counted, not an error */
	FL_DECODE_MALFORMED, /* truncated or inconsistent headers */
};

enum fl_decode_result fl_decode_ether(struct fl_pkt *p, const uint8_t *frame, size_t caplen);

#endif /* MW_FLOWD_DECODE_H */
