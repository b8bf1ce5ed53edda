/* SPDX-License-Identifier: MIT */
/* mwmapi.h - MAPI-style flows over mw-flowd's live sensors (libmwmapi.so, docs/flowd.md) */
#ifndef MWMAPI_H
#define MWMAPI_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* clang-format off */
/*
 * A flow is every packet mw-flowd's sensors in its scope see; functions are
 * applied in order (a filter stops a packet for the functions after it) and
 * run inside mw-flowd; their results are read from shared memory.
 *
 *   int fd = mapi_create_flow("eth0");
 *   mapi_apply_function(fd, "BPF_FILTER", "tcp port 80");
 *   int c = mapi_apply_function(fd, "PKT_COUNTER");
 *   mapi_connect(fd);
 *   struct mapi_result r;
 *   mapi_read_results(fd, c, &r);     // *(uint64_t *)r.res
 *   mapi_close_flow(fd);
 *
 * Functions and their arguments (results are little-endian host values):
 *   "BPF_FILTER", const char *expr      result uint64_t: packets passed
 *   "PKT_COUNTER"                       result uint64_t
 *   "BYTE_COUNTER"                      result uint64_t: frame bytes on the wire
 *   "TOP", int field, int n (1..32)     result struct mapi_top (bytes-weighted, Space-Saving)
 *   "THRESHOLD", int fid, long bound    result struct mapi_threshold: when counter fid
 *                                       reached bound
 *   "DIST", int field                   result uint64_t: distinct values (HyperLogLog, 6.5 %)
 *   "STR_SEARCH", const char *s, int offset, int depth
 *                                       filter: frames with s in bytes [offset, offset + depth)
 *                                       of the frame (depth 0: to its end); result uint64_t: passed
 *   "SAMPLE", int value, int mode       filter: mode MAPI_SAMPLE_PERIODIC passes every value-th
 *                                       frame, MAPI_SAMPLE_PROBABILISTIC value % of them;
 *                                       result uint64_t: passed
 *   "TO_BUFFER"                         frames (first 2048 bytes) into the flow's packet ring
 *                                       for mapi_get_next_pkt() / mapi_loop(); one per flow;
 *                                       result uint64_t: frames written
 *   "ANONYMIZE", const char *key, int strip
 *                                       the functions after it see the frame with both IP
 *                                       addresses anonymised, prefix-preserving (Crypto-PAn's
 *                                       construction, SipHash-2-4 keyed by key: the same key
 *                                       gives the same mapping), checksums adjusted, IP
 *                                       options blanked, non-IP frames cut to Ethernet;
 *                                       strip 1 also cuts it after the transport header
 *                                       (strip 0 keeps the payload and any address in it);
 *                                       result uint64_t: frames anonymised
 *   "FANOUT", int threshold, int window_s
 *   "PORTSCAN", int threshold, int window_s
 *                                       anomalies, as minflow's: per source, its connection
 *                                       attempts (TCP SYN without ACK, UDP datagrams) to
 *                                       distinct destination addresses (FANOUT) or ports
 *                                       (PORTSCAN), HyperLogLog (6.5 %), per window of
 *                                       window_s seconds of packet time; result struct
 *                                       mapi_anomaly: sources at or above threshold
 *
 * Errors: -1 with errno set (EACCES: the user may not use mw-flowd's sensors;
 * ENODEV: a sensor not in the scope of mw-flowd; EINVAL: bad function or
 * argument; EALREADY: apply after connect; ECONNREFUSED: mw-flowd not running;
 * ENOSPC: mw-flowd's flow table is full, or this process holds
 * flowd.mapi_client_flows flows; EUSERS: its client table is full).
 * mapi_last_error() is the daemon's message for the calling thread.
 * The socket is $MW_MAPI_SOCKET, or /run/mwcomms/flowd.sock.
 */
/* clang-format on */

enum mapi_field {
	MAPI_SRC_IP = 1,
	MAPI_DST_IP,
	MAPI_SRC_PORT,
	MAPI_DST_PORT,
};

enum mapi_sample_mode {
	MAPI_SAMPLE_PERIODIC = 0,
	MAPI_SAMPLE_PROBABILISTIC = 1,
};

struct mapi_result {
	uint64_t ts_us;	 /* packet time of the last update */
	const void *res; /* the function's result, valid until the next read on this flow */
	uint32_t size;	 /* bytes at res */
};

struct mapi_top_row {
	uint8_t key[16]; /* address (IPv4 as ::ffff:a.b.c.d) or port in key[0..1], host order */
	uint64_t bytes;	 /* at most error above the truth */
	uint64_t error;
};

struct mapi_top {
	uint32_t n;
	uint32_t pad;
	struct mapi_top_row rows[32];
};

struct mapi_threshold {
	uint64_t fired; /* 1 once the counter reached the bound */
	uint64_t ts_us; /* packet time it did */
	uint64_t value; /* the counter's value then */
};

struct mapi_anomaly_row {
	uint8_t addr[16];  /* the source (IPv4 as ::ffff:a.b.c.d) */
	uint64_t distinct; /* distinct destinations or ports, estimated, at most attempts */
	uint64_t attempts; /* its connection attempts in the window */
	uint64_t rejected; /* PORTSCAN: of them answered from a closed port (RST+ACK, seq 0) */
};

#define MAPI_ANOMALY_ROWS 16

/*
 * FANOUT / PORTSCAN: the sources flagged in the current window so far (cur)
 * and in the last completed one (last); at most MAPI_ANOMALY_ROWS each, in
 * the order they crossed the threshold.  dropped: sources not tracked since
 * connect (the per-function table of 1024 sources per window was full).
 */
struct mapi_anomaly {
	uint64_t window_start_us; /* packet time the current window started */
	uint64_t flagged;	  /* (source, window) pairs flagged since connect */
	uint64_t dropped;
	uint32_t n_cur, n_last;
	struct mapi_anomaly_row cur[MAPI_ANOMALY_ROWS];
	struct mapi_anomaly_row last[MAPI_ANOMALY_ROWS];
};

/**
 * struct mapi_pkthdr - one frame from TO_BUFFER
 * @ts_us:   capture time
 * @caplen:  bytes at the data pointer (at most 2048)
 * @wirelen: bytes on the wire
 * @lost:    frames the ring overwrote before this reader got to them, since its last read
 */
struct mapi_pkthdr {
	uint64_t ts_us;
	uint32_t caplen;
	uint32_t wirelen;
	uint64_t lost;
};

typedef void (*mapi_handler)(const struct mapi_pkthdr *hdr, const unsigned char *data, void *user);

int mapi_create_flow(const char *scope);
int mapi_apply_function(int fd, const char *funct, ...);
int mapi_connect(int fd);
int mapi_read_results(int fd, int fid, struct mapi_result *result);
const unsigned char *mapi_get_next_pkt(int fd, int fid, struct mapi_pkthdr *hdr);
int mapi_loop(int fd, int fid, int cnt, mapi_handler callback, void *user);
int mapi_close_flow(int fd);
const char *mapi_last_error(void);

#ifdef __cplusplus
}
#endif

#endif /* MWMAPI_H */
