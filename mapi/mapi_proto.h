/* SPDX-License-Identifier: MIT */
/* mapi_proto.h - the MAPI control messages between libmwmapi and mw-flowd, and the result area */
#ifndef MW_MAPI_PROTO_H
#define MW_MAPI_PROTO_H

#include <stdint.h>

/*
 * One SOCK_SEQPACKET connection per flow: the client sends fixed-size
 * requests, mw-flowd answers each with one reply (the CONNECT reply carries
 * the flow's result memfd, SCM_RIGHTS).  Closing the connection closes the
 * flow.  Both sides check the size and version of every message.
 *
 *   CREATE  sarg = scope ("eth0,eth1")          -> status
 *   APPLY   func, sarg, iarg[]                  -> status, id = fid (1..)
 *   CONNECT                                     -> status, size + memfd
 *
 * The result area (memfd, read-only for the client):
 *   struct mw_mapi_area, then MW_MAPI_FUNCS_MAX slots of MW_MAPI_SLOT bytes;
 *   slot fid-1 holds function fid's result.  The writer bumps @seq to odd,
 *   writes, bumps it to even: a reader copies and retries while @seq is odd
 *   or changed.
 */

#define MW_MAPI_VERSION	       2
#define MW_MAPI_SARG_MAX       256
#define MW_MAPI_FUNCS_MAX      16
#define MW_MAPI_SLOT	       2048
#define MW_MAPI_DEFAULT_SOCKET "/run/mwcomms/flowd.sock"

enum mw_mapi_op {
	MW_MAPI_CREATE = 1,
	MW_MAPI_APPLY,
	MW_MAPI_CONNECT,
};

/* Function ids on the wire; names in mapi_funcs.c. */
enum mw_mapi_func {
	MW_MAPI_BPF_FILTER = 1, /* sarg: pcap-filter(7) expression */
	MW_MAPI_PKT_COUNTER,	/* no argument */
	MW_MAPI_BYTE_COUNTER,	/* no argument */
	MW_MAPI_TOP,		/* iarg[0]: field (enum mw_mapi_field), iarg[1]: n (1..32) */
	MW_MAPI_THRESHOLD,	/* iarg[0]: fid of a counter applied before, iarg[1]: bound */
	MW_MAPI_DIST,		/* iarg[0]: field: distinct count (HyperLogLog) */
	MW_MAPI_STR_SEARCH,	/* sarg: bytes, iarg[0]: offset, iarg[1]: depth (0 = to the end) */
	MW_MAPI_SAMPLE,		/* iarg[0]: value, iarg[1]: mode (0 every value-th, 1 value %) */
	MW_MAPI_TO_BUFFER,	/* frames into the area's packet ring; at most one per flow */
	MW_MAPI_ANONYMIZE,	/* sarg: key text, iarg[0]: strip payload (0/1); rewrites the frame */
	MW_MAPI_FANOUT,		/* iarg[0]: distinct destinations, iarg[1]: window seconds */
	MW_MAPI_PORTSCAN,	/* iarg[0]: distinct destination ports, iarg[1]: window seconds */
	MW_MAPI_FUNC_END
};

struct mw_mapi_req {
	uint32_t version;
	uint32_t op;
	uint32_t func;
	uint32_t pad;
	int64_t iarg[2];
	char sarg[MW_MAPI_SARG_MAX];
};

struct mw_mapi_reply {
	uint32_t version;
	int32_t status; /* 0 or -errno */
	int32_t id;
	uint32_t size; /* CONNECT: bytes of the result area */
	char msg[128]; /* why, when status < 0 */
};

struct mw_mapi_area {
	uint32_t seq;
	uint32_t nfuncs;
	uint64_t ts_us; /* packet time of the last update */
	uint64_t pad[6];
};

/*
 * The packet ring (TO_BUFFER) follows the slots: a header, then
 * MW_MAPI_RING_SLOTS packets of at most MW_MAPI_SNAP bytes.  Packet number s
 * (1, 2, ...) goes to slot s % MW_MAPI_RING_SLOTS, overwriting the oldest: the
 * writer never waits for readers.  It zeroes the slot's @seq, writes, then
 * stores @seq = s and @head = s (release).  A reader wanting packet r copies
 * slot r % N and keeps the copy only if @seq was r before and after; a larger
 * @seq means it was overrun and the packets up to @head - N are lost to it.
 */
#define MW_MAPI_RING_SLOTS 512
#define MW_MAPI_SNAP 2048

struct mw_mapi_ring {
	uint64_t head; /* number of the last packet written, 0 = none yet */
	uint64_t pad[7];
};

struct mw_mapi_pkt {
	uint64_t seq;
	uint64_t ts_us;
	uint32_t caplen; /* bytes in data, at most MW_MAPI_SNAP */
	uint32_t wirelen;
	uint64_t pad;
	uint8_t data[MW_MAPI_SNAP];
};

#define MW_MAPI_RING_OFFSET (sizeof(struct mw_mapi_area) + MW_MAPI_FUNCS_MAX * MW_MAPI_SLOT)
#define MW_MAPI_AREA_SIZE                                                                      \
	(MW_MAPI_RING_OFFSET + sizeof(struct mw_mapi_ring) +                                   \
	 MW_MAPI_RING_SLOTS * sizeof(struct mw_mapi_pkt))

#endif /* MW_MAPI_PROTO_H */
