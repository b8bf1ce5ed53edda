/* SPDX-License-Identifier: MIT */
/* socktab.h - socket-level flows from the Netflow observation stream: table, talkers, report */
#ifndef MW_FLOWD_SOCKTAB_H
#define MW_FLOWD_SOCKTAB_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "common/config.h"
#include "flowd/engine.h"
#include "flowd/ftab.h"
#include "flowd/sketch.h"
#include "netflow/codec.h"

/* How the table learnt of a socket. */
enum fl_sock_kind {
	FL_SOCK_ACCEPTED,  /* an accept observation: the app is the server */
	FL_SOCK_CONNECTED, /* a connect observation: the app is the client */
	FL_SOCK_SEEN,	   /* first seen in a recv/send/close (mw-flowd started later) */
};

/**
 * struct fl_sock - one app socket (key: its 64-bit Netflow socket id)
 * @sockid:    key
 * @id:        per-run id, never reused
 * @kind:      enum fl_sock_kind
 * @closed:    a close observation arrived (reported once more, then collected)
 * @local, @remote: 16-byte addresses (IPv4 mapped), ports in host order
 * @bytes_in, @bytes_out: the app's own cumulative counters (received, sent)
 * @rep_in, @rep_out: their values at the last report (the interval's delta feeds the talkers)
 * @first_s, @last_s: observation times (CLOCK_REALTIME seconds of mw-pvm)
 * @seen_s:    the local clock when it was last observed (collection)
 * @af:        4 or 6 once an observation gave the endpoints, else 0
 * @cls:       enum fl_class (the app's side is the server when it accepted)
 */
struct fl_sock {
	uint64_t sockid;
	uint64_t id;
	uint8_t kind;
	bool closed;
	uint16_t lport, rport;
	uint8_t local[16], remote[16];
	uint64_t bytes_in, bytes_out;
	uint64_t rep_in, rep_out;
	uint64_t first_s, last_s;
	uint64_t seen_s;
	uint8_t af;
	uint8_t cls;
};

/* A socket record handed to the MAPI flows: a header-only frame, @wirelen the app's bytes. */
typedef void (*fl_socks_tap)(void *ctx, int index, uint64_t ts_us, const uint8_t *frame,
			     size_t caplen, uint32_t wirelen);

/**
 * struct fl_socks - the socket table of one Netflow sensor
 * @sensor:  its name in the report ("netflow:<address>")
 * @obs:     observations taken, @ignored: of them not about a connection (create, bind)
 * @lost:    connections lost with the stream (the table is emptied on a reconnect)
 * @opened, @closed: connections seen to open and to close since start
 * @inside:  flowd.inside, parsed (the classes)
 * @sec:     the second being counted (local clock), 0 before the first tick
 * @second:  per class: observations that moved the app's bytes, and those bytes
 * @ipfix:   connections leaving the table are exported here, or NULL
 * @tap:     called with every record (MAPI flows over this sensor), or NULL
 * @tap_ctx, @tap_index: its first two arguments
 * @tap_mask: bit @tap_index set while some MAPI flow wants the records (NULL: always)
 */
struct fl_socks {
	const struct mw_flowd_config *cfg;
	FILE *out;
	const char *sensor;
	struct fl_ftab tab;
	struct fl_topn talkers;
	uint64_t next_id;
	uint64_t interval_start;
	uint64_t obs, ignored, opened, closed;
	struct mw_cidr inside[MW_FLOWD_INSIDE_MAX];
	int ninside;
	uint64_t sec;
	struct fl_counter second[FL_CLS_N];
	struct fl_ipfix *ipfix;
	fl_socks_tap tap;
	void *tap_ctx;
	int tap_index;
	const uint32_t *tap_mask;
};

int fl_socks_init(struct fl_socks *s, const struct mw_flowd_config *cfg, FILE *out,
		  const char *sensor, char *err, size_t errlen);
void fl_socks_fini(struct fl_socks *s);
void fl_socks_observe(struct fl_socks *s, const struct mw_nf_info *info, uint64_t now_s);
void fl_socks_tick(struct fl_socks *s, uint64_t now_s);
void fl_socks_report(struct fl_socks *s, uint64_t end_s, bool partial);
void fl_socks_reset(struct fl_socks *s, uint64_t now_s);
void fl_socks_second(struct fl_socks *s, uint64_t now_s);

#endif /* MW_FLOWD_SOCKTAB_H */
