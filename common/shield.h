/* SPDX-License-Identifier: MIT */
/* shield.h - per-listener defences the INS enforces before and around the app (mw-guard's levers) */
#ifndef MW_SHIELD_H
#define MW_SHIELD_H

#include <stdint.h>

/*
 * A listener's shield: what its INS requires of a client connection before the app's
 * accept() returns it, and the limits it keeps afterwards. Every accepted connection
 * copies its listener's shield at accept time. All zero = off (the INS behaves as a
 * plain TCP stack). docs/guard.md explains the model, docs/ins.md the enforcement.
 *
 * Set over the INS channel as MW_OP_SETOPT / MW_OP_GETOPT with level MW_SOL_SHIELD and
 * name enum mw_shield_opt, value a u64 (len 8, host order like every channel value).
 * mw-pvm records a set on a listener and copies it to the listener's replicas and to
 * INS that join later, like any listener option. The app (through the shim) can never
 * use MW_SOL_SHIELD: mw-pvm refuses it with -ENOPROTOOPT.
 *
 * On Netflow, each option is the attribute MW_NF_ATTR_SHIELD_BASE + the option
 * (BY_SOCK on a listener, WRITE needs the control role; val0 = the value).
 */
#define MW_SOL_SHIELD 0x4d57 /* 'MW': not a Linux level */

enum mw_shield_opt {
	MW_SHIELD_FILTER = 1,        /* enum mw_accept_filter */
	MW_SHIELD_DEADLINE_MS = 2,   /* held at most this long waiting for the filter, then reset */
	MW_SHIELD_HOLD_MAX = 3,      /* connections held in the filter per listener; the oldest is
				      * reset to make room (0 = the INS default, ins.shield_hold_max) */
	MW_SHIELD_MIN_IN_RATE = 4,   /* B/s while a request is incomplete (filter held, or a later
				      * request on the connection for filters that know requests) */
	MW_SHIELD_MIN_OUT_RATE = 5,  /* B/s while the INS holds bytes the client has not taken */
	MW_SHIELD_OUT_BUFFER = 6,    /* bytes per connection the INS takes from the app ahead of
				      * the client (the app's write completes; slow readers do not
				      * hold its writer) */
	MW_SHIELD_SRC_MAX_CONNS = 7, /* concurrent connections per source address */
	MW_SHIELD_SRC_RATE = 8,      /* new connections per second per source address */
	MW_SHIELD_PFX_MAX_CONNS = 9, /* concurrent connections per /24 (IPv4) or /64 (IPv6) */
	MW_SHIELD_PFX_RATE = 10,     /* new connections per second per prefix */
	MW_SHIELD_DELIM = 11,        /* MW_ACCF_DELIM: the delimiter, 1..7 bytes, low byte first;
				      * the byte count in bits 56-63 (so 7 bytes at most) */
	MW_SHIELD_STALL_MAX = 12,    /* connections of the listener whose app writer may wait at
				      * once on a client that took nothing for a while (the out
				      * buffer is full); beyond that the longest stalled are reset */
	MW_SHIELD_OPT_MAX = 12,
};

enum mw_accept_filter {
	MW_ACCF_NONE = 0,  /* accept() returns at once (the kernel's behaviour) */
	MW_ACCF_DATA = 1,  /* once the client sent a byte (FreeBSD accf_data) */
	MW_ACCF_HTTP = 2,  /* once a complete HTTP request head and its Content-Length body
			    * arrived (accf_http, plus the body); chunked bodies: the head */
	MW_ACCF_LINE = 3,  /* once a complete command: a line ending in \n (memcached text, RESP
			    * inline), or a complete RESP array of bulk strings (Redis) */
	MW_ACCF_DELIM = 4, /* once the configured delimiter (MW_SHIELD_DELIM) arrived */
	MW_ACCF_MAX = 4,
};

/* Netflow attribute names (docs/netflow.md): 0x2010 + enum mw_shield_opt. */
#define MW_NF_ATTR_SHIELD_BASE 0x2010
#define MW_NF_ATTR_SHIELD_FIRST (MW_NF_ATTR_SHIELD_BASE + MW_SHIELD_FILTER)
#define MW_NF_ATTR_SHIELD_LAST (MW_NF_ATTR_SHIELD_BASE + MW_SHIELD_OPT_MAX)

/* One listener's shield, host order. Zero = off everywhere. */
struct mw_shield {
	uint8_t filter;          /* enum mw_accept_filter */
	uint8_t delim_len;       /* 1..7 with MW_ACCF_DELIM */
	uint8_t delim[8];
	uint32_t deadline_ms;
	uint32_t hold_max;
	uint32_t min_in_rate;    /* B/s */
	uint32_t min_out_rate;   /* B/s */
	uint32_t out_buffer;     /* bytes */
	uint32_t src_max_conns;
	uint32_t src_rate;       /* connections/s */
	uint32_t pfx_max_conns;
	uint32_t pfx_rate;       /* connections/s */
	uint32_t stall_max;      /* connections */
};

#endif /* MW_SHIELD_H */
