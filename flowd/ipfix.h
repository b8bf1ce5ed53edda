/* SPDX-License-Identifier: MIT */
/* ipfix.h - finished streams as IPFIX (RFC 7011) data records over UDP */
#ifndef MW_FLOWD_IPFIX_H
#define MW_FLOWD_IPFIX_H

#include <stddef.h>
#include <stdint.h>

struct fl_stream;

#define FL_IPFIX_MSG_MAX 1400 /* fits an Ethernet MTU with IP and UDP headers */

/**
 * struct fl_ipfix - one exporter
 * @fd:           connected UDP socket, -1 when export is off
 * @domain:       observation domain id
 * @interval_s:   templates are re-sent at least this often (RFC 7011 8.4, UDP)
 * @template_s:   export time the templates were last sent, 0 = never
 * @seq:          data records sent so far (the header's sequence number)
 * @msg, @len:    the message being built
 * @set_off:      offset of the open data set's header, 0 = none open
 * @set_id:       its template id
 * @records, @messages, @send_errors: counters for the report
 */
struct fl_ipfix {
	int fd;
	uint32_t domain;
	uint32_t interval_s;
	uint64_t template_s;	   /* export time of the last message that carried the templates */
	uint64_t template_pending; /* this message carries them, for that time (0: not) */
	uint32_t seq;
	uint8_t msg[FL_IPFIX_MSG_MAX];
	size_t len;
	size_t set_off;
	uint16_t set_id;
	uint64_t records, messages, send_errors;
};

/**
 * struct fl_ipfix_rec - one data record
 * @src, @dst:  16-byte addresses (IPv4 mapped: template 256, else 257)
 * @sport, @dport, @proto, @flags: ports (host order), protocol, TCP flags seen
 * @bytes, @pkts: octetDeltaCount, packetDeltaCount
 * @start_ms, @end_ms: flowStart/EndMilliseconds
 */
struct fl_ipfix_rec {
	const uint8_t *src, *dst;
	uint16_t sport, dport;
	uint8_t proto, flags;
	uint64_t bytes, pkts;
	uint64_t start_ms, end_ms;
};

int fl_ipfix_open(struct fl_ipfix *x, const char *collector, uint32_t domain, uint32_t interval_s,
		  char *err, size_t errlen);
void fl_ipfix_stream(struct fl_ipfix *x, const struct fl_stream *s, uint64_t now_s);
void fl_ipfix_record(struct fl_ipfix *x, const struct fl_ipfix_rec *r, uint64_t now_s);
void fl_ipfix_flush(struct fl_ipfix *x);
void fl_ipfix_close(struct fl_ipfix *x);
size_t fl_ipfix_begin(struct fl_ipfix *x, uint64_t now_s);

#endif /* MW_FLOWD_IPFIX_H */
