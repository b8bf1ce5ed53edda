/* SPDX-License-Identifier: MIT */
/* engine.h - flow accounting: address, stream and port tables, classes, top-N, anomalies */
#ifndef MW_FLOWD_ENGINE_H
#define MW_FLOWD_ENGINE_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "common/cidr.h"
#include "common/config.h"
#include "flowd/decode.h"
#include "flowd/ftab.h"
#include "flowd/ipfix.h"
#include "flowd/sketch.h"

/* Traffic classes of minflow's per-second report, plus "other" (neither end inside). */
enum fl_class {
	FL_CLS_IN,	 /* outside client, inside server, not web */
	FL_CLS_OUT,	 /* inside client, outside server, not web */
	FL_CLS_INWEB,	 /* as IN, server port 80, 443 or 8080 */
	FL_CLS_OUTWEB,	 /* as OUT, server port 80, 443 or 8080 */
	FL_CLS_INTERNAL, /* both ends inside */
	FL_CLS_OTHER,	 /* neither end inside */
	FL_CLS_N
};

/**
 * struct fl_addr - one address seen (key: the address, IPv4 mapped)
 * @addr:     key
 * @id:       per-run id, never reused (the slot is)
 * @first_us, @last_us: packet times
 * @tx_pkts, @tx_bytes, @rx_pkts, @rx_bytes: since it was created
 * @streams:  streams that counted it and are still in the table
 * @inside:   in one of flowd.inside
 * @attempts: interval: connections it initiated
 * @rejected: interval: of them, answered by a RST before any SYN
 * @peers:    interval: distinct addresses it initiated to
 * @ports:    interval: distinct destination ports it initiated to
 */
struct fl_addr {
	uint8_t addr[16];
	uint64_t id;
	uint64_t first_us, last_us;
	uint64_t tx_pkts, tx_bytes, rx_pkts, rx_bytes;
	uint32_t streams;
	bool inside;
	uint32_t attempts;
	uint32_t rejected;
	struct fl_hll peers;
	struct fl_hll ports;
};

/*
 * struct fl_stream_key - canonical 5-tuple: side a is the (address, port) that
 * sorts first, so both directions find the same entry.
 */
struct fl_stream_key {
	uint8_t a[16];
	uint8_t b[16];
	uint16_t pa, pb;
	uint8_t proto;
	uint8_t pad[3];
};

/**
 * struct fl_stream - one bidirectional 5-tuple (minflow's "stream")
 * @key:      canonical tuple
 * @id:       per-run id
 * @client:   0 when side a started it, 1 when side b did
 * @cls:      enum fl_class, decided on creation
 * @counted:  bit 0/1: address a/b counted this stream in its @streams
 * @closed:   RST seen, or FIN both ways
 * @rejected: its attempt was answered by a RST (counted once)
 * @pkts, @bytes, @flags: [0] client to server, [1] server to client
 * @ip_bytes: the same, IP-layer bytes (IPFIX octetDeltaCount)
 */
struct fl_stream {
	struct fl_stream_key key;
	uint64_t id;
	uint64_t first_us, last_us;
	uint8_t client;
	uint8_t cls;
	uint8_t counted;
	bool closed;
	bool rejected;
	uint8_t flags[2];
	uint64_t pkts[2], bytes[2];
	uint64_t ip_bytes[2];
};

/* A conversation in the top-N sketch: the stream key (pad[0]: side b is the client) and id. */
struct fl_conv_key {
	struct fl_stream_key k;
	uint64_t id;
};

struct fl_port_key {
	uint16_t port;
	uint8_t proto;
	uint8_t pad;
};

/* struct fl_port - traffic to one (protocol, server port), since start */
struct fl_port {
	struct fl_port_key key;
	uint64_t pkts, bytes, streams;
};

struct fl_counter {
	uint64_t pkts, bytes;
};

/**
 * struct fl_engine - the tables and the report state of one scope of sensors
 * @cfg:      flowd section (capacities, thresholds, inside networks)
 * @out:      JSON lines go here
 * @sensor:   name in every line ("live" or the pcap file)
 * @sec:      current second of packet time, 0 before the first packet
 * @interval_start: first second of the current report interval
 * @second:   per class, this second
 * @interval: all IP traffic this interval
 * @frames:   frames seen, since start
 * @not_ip, @malformed: frames not decoded, since start
 * @sensor_drops: frames the sensors lost (kernel ring full), set by the sensor
 * @tap:      called with every live frame before accounting (the MAPI flows), or NULL
 * @tap_ctx:  its first argument
 * @ipfix:    streams leaving the table are exported here, or NULL
 */
struct fl_engine {
	const struct mw_flowd_config *cfg;
	FILE *out;
	const char *sensor;
	struct mw_cidr inside[MW_FLOWD_INSIDE_MAX];
	int ninside;
	struct fl_ftab addrs, streams, ports;
	struct fl_topn talkers, convs, apps;
	uint64_t next_addr_id, next_stream_id;
	uint64_t sec;
	uint64_t interval_start;
	struct fl_counter second[FL_CLS_N];
	struct fl_counter interval;
	uint64_t frames, not_ip, malformed;
	uint64_t sensor_drops;
	void (*tap)(void *ctx, int sensor, uint64_t ts_us, const uint8_t *frame, size_t caplen,
		    uint32_t wirelen);
	void *tap_ctx;
	struct fl_ipfix *ipfix;
};

/* engine.c */
int fl_engine_init(struct fl_engine *e, const struct mw_flowd_config *cfg, FILE *out,
		   const char *sensor, char *err, size_t errlen);
void fl_engine_fini(struct fl_engine *e);
void fl_engine_packet(struct fl_engine *e, uint64_t ts_us, const uint8_t *frame, size_t caplen,
		      uint32_t wirelen);
void fl_engine_tick(struct fl_engine *e, uint64_t now_s);
void fl_engine_flush(struct fl_engine *e);
void fl_engine_gc(struct fl_engine *e, uint64_t now_s);
bool fl_inside(const struct mw_cidr *inside, int ninside, const uint8_t addr[16]);
enum fl_class fl_class(const struct mw_cidr *inside, int ninside, const uint8_t *client,
		       const uint8_t *server, uint16_t server_port);

/* report.c */
void fl_report_second(struct fl_engine *e);
void fl_report_interval(struct fl_engine *e, uint64_t end_s, bool partial);
void fl_report_addr_text(const uint8_t addr[16], char *buf, size_t len);
void fl_report_classes(FILE *out, const struct fl_counter second[FL_CLS_N]);
void fl_json_string(FILE *f, const char *s);

#endif /* MW_FLOWD_ENGINE_H */
