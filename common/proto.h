/* SPDX-License-Identifier: MIT */
/* proto.h - the PVM<->INS stream protocol: frames, payloads, checks */
#ifndef MW_PROTO_H
#define MW_PROTO_H

#include <assert.h>
#include <stddef.h>
#include <stdint.h>

#include "common/addr.h"

/*
 * Full description: docs/ins-protocol.md.  Native byte order (both ends run on
 * the same host or on Xen domains of one machine), fixed-size payload structs,
 * every struct static_asserted.  Each frame names one socket by its 64-bit id
 * (common/sockid.h); 0 for channel-wide frames.
 */

#define MW_PROTO_MAGIC 0x4843574dU /* "MWCH" */
#define MW_PROTO_VERSION_MIN 1
#define MW_PROTO_VERSION_MAX 2 /* 2: DATA_PIPE on the local channel */
#define MW_FRAME_MAX_PAYLOAD (64u * 1024u)

/* Sent on the handshake socket (not the ring), each way, before anything else. */
struct mw_hello {
	uint32_t magic;
	uint16_t version_min;
	uint16_t version_max;   /* PVM's reply: min == max == the chosen version */
	uint16_t ins_id;        /* INS: its id; PVM: echo */
	uint8_t pvm_index;      /* PVM: its index; INS: 0 */
	uint8_t pad;
	uint32_t ring_size;     /* PVM: bytes per direction */
	uint32_t window;        /* per-socket credit the sender grants the peer initially */
	uint32_t heartbeat_ms;  /* INS: its heartbeat period */
	int32_t pid;            /* sender's pid (diagnostics) */
};
static_assert(sizeof(struct mw_hello) == 28, "wire type");

struct mw_frame {
	uint16_t type;   /* enum mw_frame_type */
	uint16_t flags;  /* 0 */
	uint32_t len;    /* payload bytes following the header */
	uint64_t sock;   /* socket id, 0 for channel-wide frames */
};
static_assert(sizeof(struct mw_frame) == 16, "wire type");

enum mw_frame_type {
	/* PVM -> INS control: payload starts with the u32 request id; one MW_RESULT each. */
	MW_OP_SOCKET = 0x01,     /* mw_op_socket: sock = new id chosen by the PVM */
	MW_OP_BIND = 0x02,       /* mw_op_addr */
	MW_OP_LISTEN = 0x03,     /* mw_op_int: backlog */
	MW_OP_CONNECT = 0x04,    /* mw_op_addr: RESULT says started; then EV_CONNECTED or EV_ERROR */
	MW_OP_SETOPT = 0x05,     /* mw_op_sockopt */
	MW_OP_GETOPT = 0x06,     /* mw_op_sockopt (len = room); RESULT val = value */
	MW_OP_SHUTDOWN = 0x07,   /* mw_op_int: SHUT_RD/WR/RDWR, after queued data */
	MW_OP_CLOSE = 0x08,      /* mw_op_req: graceful, after queued data; then EV_CLOSED */
	MW_OP_ABORT = 0x09,      /* mw_op_req: RST now, queued data dropped; then EV_CLOSED */
	MW_OP_ADDR_BLOCK = 0x0a, /* mw_op_addr_block (sock 0) */
	MW_OP_INS_SET = 0x0b,    /* mw_op_ins_set (sock 0) */
	MW_OP_STATS = 0x0c,      /* mw_op_req (sock 0): RESULT val = mw_stats */
	MW_OP_GETNAME = 0x0d,    /* mw_op_int: 0 local, 1 peer; RESULT val = mw_addr */

	/* INS -> PVM */
	MW_RESULT = 0x40,        /* mw_result (+ val bytes) */
	MW_EV_ACCEPTED = 0x41,   /* mw_ev_accepted: sock = the listener */
	MW_EV_CONNECTED = 0x42,  /* mw_ev_connected */
	MW_EV_EOF = 0x43,        /* no payload: peer sent FIN */
	MW_EV_RESET = 0x44,      /* mw_ev_errno: connection lost (RST, timeout ...) */
	MW_EV_ERROR = 0x45,      /* mw_ev_errno: connect failed */
	MW_EV_CLOSED = 0x46,     /* no payload: INS forgot the socket; its id is dead */
	MW_EV_HEARTBEAT = 0x47,  /* mw_stats (sock 0) */

	/* Both directions */
	MW_DATA = 0x80,          /* stream bytes, 1..MW_FRAME_MAX_PAYLOAD, within credit */
	MW_CREDIT = 0x81,        /* mw_credit: receiver drained this many bytes */
	MW_DATA_PIPE = 0x82,     /* mw_data_pipe: stream bytes waiting in the channel's pipe */
};

struct mw_op_req {
	uint32_t req;
};
struct mw_op_socket {
	uint32_t req;
	uint32_t family;         /* 4 or 6 */
};
struct mw_op_int {
	uint32_t req;
	int32_t value;
};
struct mw_op_addr {
	uint32_t req;
	uint32_t pad;
	struct mw_addr addr;
};
#define MW_SOCKOPT_MAX 64
struct mw_op_sockopt {
	uint32_t req;
	int32_t level;           /* Linux SOL_SOCKET, IPPROTO_TCP, IPPROTO_IP, IPPROTO_IPV6 */
	int32_t name;
	uint32_t len;            /* <= MW_SOCKOPT_MAX */
	uint8_t val[MW_SOCKOPT_MAX];
};
struct mw_op_addr_block {
	uint32_t req;
	uint8_t block;	     /* 1 block, 0 unblock */
	uint8_t prefix_len;  /* 0: the address alone; else its first N bits (<= 32 / 128) */
	uint16_t reserved;   /* 0 */
	struct mw_addr addr; /* port ignored; bits after prefix_len zero */
};
enum mw_ins_setting {
	MW_INS_CONGESTION = 1,   /* text: algorithm name */
	MW_INS_DELACK = 2,       /* value: 1 = delayed ACKs (default), 0 = quick ACK */
	MW_INS_SNDBUF = 3,       /* value: bytes, 0 = kernel default */
	MW_INS_RCVBUF = 4,
};
struct mw_op_ins_set {
	uint32_t req;
	uint32_t name;           /* enum mw_ins_setting */
	uint64_t value;
	char text[32];           /* NUL-terminated */
};

struct mw_result {
	uint32_t req;
	int32_t status;          /* 0 or -errno */
	uint32_t len;            /* value bytes that follow */
	uint32_t pad;
	/* uint8_t val[len] (<= 64) */
};
struct mw_ev_accepted {
	uint64_t new_sock;       /* INS-assigned id (MW_SOCKID_INS_ASSIGNED set) */
	struct mw_addr peer;
	struct mw_addr local;
};
struct mw_ev_connected {
	struct mw_addr local;
	struct mw_addr peer;
};
struct mw_ev_errno {
	int32_t err;             /* positive errno */
	uint32_t pad;
};
struct mw_stats {
	uint64_t seq;
	uint64_t max_sockets;    /* 0 = unlimited */
	uint64_t used_sockets;
	uint64_t rx_bytes;       /* from the network, cumulative */
	uint64_t tx_bytes;
};
struct mw_credit {
	uint32_t bytes;
	uint32_t pad;
};
/*
 * DATA_PIPE (PVM -> INS, version >= 2, local channel only): the next @len
 * bytes of the channel's pipe belong to this socket, in ring order; they
 * count against credit exactly like DATA.  At most MW_PIPE_FRAME_MAX.
 */
#define MW_PIPE_FRAME_MAX (1024u * 1024u)
struct mw_data_pipe {
	uint32_t len;
	uint32_t pad;
};

static_assert(sizeof(struct mw_op_addr) == 32, "wire type");
static_assert(sizeof(struct mw_op_sockopt) == 80, "wire type");
static_assert(sizeof(struct mw_op_addr_block) == 32, "wire type");
static_assert(sizeof(struct mw_op_ins_set) == 48, "wire type");
static_assert(sizeof(struct mw_result) == 16, "wire type");
static_assert(sizeof(struct mw_ev_accepted) == 56, "wire type");
static_assert(sizeof(struct mw_stats) == 40, "wire type");
static_assert(sizeof(struct mw_data_pipe) == 8, "wire type");

enum mw_proto_dir { MW_DIR_TO_INS, MW_DIR_TO_PVM };

/**
 * mw_proto_check() - validate a received frame before it is used
 * @f:       header (already copied out of shared memory)
 * @payload: a private copy of the payload for control frames (DATA may point
 *           into the ring: its content is opaque)
 * @dir:     which way it travelled; a frame type that may not travel that way fails
 * @why:     on failure, a short reason ("RESULT len 3 < 16")
 *
 * Checks the type, the payload size for that type, socket id rules (channel-wide
 * frames carry 0, per-socket ones a valid id), enum and length fields inside
 * payloads, NUL termination of text and address families.
 * Return: 0 or -EBADMSG
 */
int mw_proto_check(const struct mw_frame *f, const void *payload, enum mw_proto_dir dir,
		   char *why, size_t whylen);

/* Name of a frame type for logs ("OP_CONNECT"), "?" if unknown. */
const char *mw_proto_type_name(uint16_t type);

/* Check a hello received on the handshake socket. Return: 0 or -EPROTO with @why. */
int mw_proto_check_hello(const struct mw_hello *h, char *why, size_t whylen);

#endif /* MW_PROTO_H */
