/* SPDX-License-Identifier: MIT */
/* ins_rates.h - shield rates and limits: token buckets, source/prefix tables, rate windows */
#ifndef MW_INS_RATES_H
#define MW_INS_RATES_H

#include <ev.h>
#include <stdbool.h>
#include <stdint.h>

#include "common/addr.h"

/*
 * The pure part of the shield's rates and limits (ins_rates.c): no sockets, no
 * loop, time passed in as milliseconds, so the unit tests drive it directly.
 * ins_shield_rates.c wires it to connections (docs/ins.md, "Shield: rates and
 * limits").
 */

/* Rates are measured over windows of this length (MIN_OUT_RATE, MIN_IN_RATE). */
#define INS_RATES_WINDOW_MS 5000u
/* A source/prefix lookup looks at most at this many slots from the key's hash. */
#define INS_RTAB_PROBE 32u
/* A client that acknowledged nothing for this long while the app's writer waits on it
 * is stalled (STALL_MAX). */
#define INS_RATES_STALL_MS 200u
/* Rate of a connection not measured over a whole second yet: never the slowest. */
#define INS_RATE_UNKNOWN UINT64_MAX

/* A token bucket of @rate tokens a second, at most @rate tokens (one second's burst). */
struct ins_bucket {
	uint64_t milli;   /* tokens * 1000 */
	uint64_t at_ms;   /* last refill */
};

void ins_bucket_fill(struct ins_bucket *b, uint32_t rate, uint64_t now_ms);
bool ins_bucket_ok(struct ins_bucket *b, uint32_t rate, uint64_t now_ms);
void ins_bucket_take(struct ins_bucket *b);

/* What a source or prefix entry is keyed on: the listener and the (masked) address. */
struct ins_rkey {
	uint64_t listener;
	uint8_t family;   /* 4 or 6 (v4-mapped v6 folded to 4) */
	uint8_t addr[16]; /* the address, or its /24 (v4) or /64 (v6) */
};

void ins_rkey_make(struct ins_rkey *k, uint64_t listener, const struct mw_addr *a, bool prefix);

/* One entry: concurrent connections and a bucket for new ones. */
struct ins_rent {
	struct ins_rkey key;
	bool used;
	uint32_t conns;
	uint32_t rate;    /* the rate the bucket was last used with (for staleness) */
	struct ins_bucket b;
};

/*
 * Open addressing with linear probing over a fixed array allocated at start.
 * Entries are never deleted, only reused when stale (no connection and a full
 * bucket: they hold no state), so probe chains stay intact and nothing is
 * allocated per connection.  The hash is seeded at start (an attacker choosing
 * IPv6 addresses cannot aim at one chain of every INS).
 */
struct ins_rtab {
	struct ins_rent *e;
	uint32_t mask;    /* entries - 1 (a power of two) */
	uint64_t seed;
};

int ins_rtab_init(struct ins_rtab *t, uint32_t entries, uint64_t seed);
void ins_rtab_fini(struct ins_rtab *t);
struct ins_rent *ins_rtab_get(struct ins_rtab *t, const struct ins_rkey *k, uint64_t now_ms);

/*
 * A connection's outbound progress while the INS holds bytes for it (pending in
 * user space or unacknowledged in the kernel): bytes the client acknowledged
 * (tcpi_bytes_acked) over windows of INS_RATES_WINDOW_MS.
 */
struct ins_rates_out {
	uint64_t win_start_ms;   /* 0: not measuring */
	uint64_t win_base;       /* acknowledged bytes at the window's start */
	uint64_t rate;           /* B/s over the last measure, or INS_RATE_UNKNOWN */
	uint64_t last_acked;     /* acknowledged bytes at the last sample */
	uint64_t still_ms;       /* since when last_acked has not moved */
};

void ins_rates_out_start(struct ins_rates_out *o, uint64_t now_ms, uint64_t acked);
bool ins_rates_out_too_slow(struct ins_rates_out *o, uint32_t min_rate, uint64_t now_ms,
			    uint64_t acked);
bool ins_rates_slower(const struct ins_rates_out *a, const struct ins_rates_out *b);
void ins_rates_out_progress(struct ins_rates_out *o, uint64_t now_ms, uint64_t acked);
bool ins_rates_out_stalled(const struct ins_rates_out *o, uint64_t now_ms);
bool ins_rates_stalled_longer(const struct ins_rates_out *a, const struct ins_rates_out *b);

/* A held (not yet accepted) connection's inbound progress: bytes it sent so far. */
struct ins_rates_in {
	uint64_t win_start_ms;   /* 0: not started */
	uint64_t win_base;       /* bytes received at the window's start */
};

bool ins_rates_in_too_slow(struct ins_rates_in *st, uint32_t min_rate, uint64_t now_ms,
			   uint64_t received);

/* --- the hooks' state (ins_shield_rates.c) --- */

struct ins_sock;

/* The source and prefix entries a connection is counted in (NULL: not counted). */
struct ins_rates_ref {
	struct ins_rent *src, *pfx;
};

/* A connection's part: struct ins_sock.rates. */
struct ins_rates_conn {
	struct ins_sock *oprev, *onext; /* on the INS's list of connections holding bytes */
	bool on_list;
	uint32_t early;                 /* pending bytes credited to mw-pvm ahead of the
					 * client (OUT_BUFFER) */
	struct ins_rates_ref ref;
	struct ins_rates_out out;
	uint64_t listener;              /* accepted: the listener it came from (STALL_MAX) */
	bool stalled;                   /* at the last tick: its client stalls the app's writer */
	uint32_t stall_n, stall_gen;    /* listener: its stalled connections at tick stall_gen */
};

/* Per INS: why connections were refused or cut (the STATUS line, docs/ins.md). */
struct ins_rates_stats {
	uint64_t src_conns, src_rate;   /* refused at admission: per-source limits */
	uint64_t pfx_conns, pfx_rate;   /* refused at admission: per-prefix limits */
	uint64_t untracked;             /* admitted without a table entry (table full) */
	uint64_t out_slow;              /* reset: took less than MIN_OUT_RATE over a window */
	uint64_t out_cut;               /* reset: slowest reader when ins.shield_out_total was
					 * reached */
	uint64_t in_slow;               /* reset: held, sent less than MIN_IN_RATE */
	uint64_t out_stall;             /* reset: longest stalled beyond the listener's
					 * STALL_MAX */
};

/* Per INS: struct ins.rates. */
struct ins_shield_rates {
	struct ins_rtab src, pfx;
	struct ins_sock *out_head;      /* connections the INS holds bytes for */
	uint64_t out_total;             /* sum of their early bytes */
	uint64_t out_max;               /* ins.shield_out_total */
	uint32_t gen;                   /* tick count (the listeners' stall_gen) */
	ev_timer tick;
	struct ins_rates_stats n;
};

#endif /* MW_INS_RATES_H */
