/* SPDX-License-Identifier: MIT */
/* sensor_nf.h - the Netflow observation stream as a sensor: connect, MonitorOn, feed the socket
 * table */
#ifndef MW_FLOWD_SENSOR_NF_H
#define MW_FLOWD_SENSOR_NF_H

#include <ev.h>

#include "common/config.h"
#include "flowd/socktab.h"
#include "netflow/client.h"

/**
 * struct fl_nf - one Netflow consumer link
 * @addr:     flowd.netflow or an entry of flowd.netflow_streams
 * @name:     "netflow:<addr>", the sensor name in the report
 * @socks:    the socket table it feeds
 * @nf:       the connection, NULL while disconnected
 * @io:       watches the socket while the stream is idle
 * @batch:    polls it while the stream flows (sensor_nf.c: the period follows the rate)
 * @state, @hs_io, @hs_timer, @req_id: the handshake, step by step
 * @drained_at: the loop time of the last drain, @rate: bytes a second it found
 * @connects, @disconnects: since start
 * @wakeups, @reads: drains of the socket and the recv they took, since start
 */
/* Where a link is: its handshake's steps never wait in the loop (sensor_nf.c). */
enum fl_nf_state {
	FL_NF_DOWN,	  /* no connection: the retry timer tries every second */
	FL_NF_CONNECTING, /* hs_io waits for writability */
	FL_NF_AUTH,	  /* Auth sent (TCP), hs_io waits for its answer */
	FL_NF_MONITOR,	  /* MonitorOn sent */
	FL_NF_UP,	  /* observations come: io or batch reads them */
};

struct fl_nf {
	struct ev_loop *loop;
	const struct mw_flowd_config *cfg;
	const char *addr;
	char name[MW_PATH_MAX + 16];
	struct fl_socks socks;
	struct mw_nf_client *nf;
	ev_io io;
	ev_timer retry;
	ev_timer batch;
	enum fl_nf_state state;
	ev_io hs_io;	   /* the handshake's step */
	ev_timer hs_timer; /* its deadline */
	uint32_t req_id;   /* the request whose answer it waits for */
	ev_tstamp drained_at;
	double rate;
	char last_error[256];
	uint64_t connects, disconnects;
	uint64_t wakeups, reads;
};

int fl_nf_open(struct fl_nf *n, struct ev_loop *loop, const struct mw_flowd_config *cfg,
	       const char *addr, FILE *out, char *err, size_t errlen);
void fl_nf_tick(struct fl_nf *n, uint64_t now_s);
void fl_nf_close(struct fl_nf *n, uint64_t now_s);

#endif /* MW_FLOWD_SENSOR_NF_H */
