/* SPDX-License-Identifier: MIT */
/* guard.h - mw-guard's types: fixed tables, the engine's state, actions, the daemon */
#ifndef MW_GUARD_H
#define MW_GUARD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/addr.h"
#include "common/cidr.h"
#include "common/config.h"
#include "common/shield.h"
#include "netflow/codec.h"

#define GD_LISTENERS_MAX 64 /* listeners tracked; more are dropped and counted */
#define GD_ROTATED_MAX	 16 /* INS ids rotated lately: not rotated again */
#define GD_IDLE_KEEP	 64 /* sources left without connections, kept to evict first (2^n) */

/*
 * struct gd_tab - an open-addressing hash table of fixed-size entries, allocated once
 * @slots:  cap entries of @esize bytes; an entry's key is its first @klen bytes
 * @used:   one byte per slot
 * @cap:    a power of two, at least twice @max
 * @n:      entries held
 * @max:    entries allowed (the configured maximum)
 * @drops:  inserts refused because @n reached @max
 * @cursor: where the next search for an entry to evict starts (engine.c)
 * @evictions: entries evicted to make room for another (engine.c)
 * @k0, @k1: the key of the hash
 */
struct gd_tab {
	uint8_t *slots;
	uint8_t *used;
	size_t esize, klen, cap, n, max, cursor;
	uint64_t drops, evictions;
	uint64_t k0, k1; /* the hash's key (random) */
};

/* A source or prefix address as a table key (no port). */
struct gd_addrkey {
	uint8_t family; /* 4 or 6 */
	uint8_t addr[16];
};

/* One connection accepted by the app, from its accept to its close. */
struct gd_conn {
	uint64_t id; /* key */
	uint64_t listener;
	struct mw_addr peer;
	uint64_t bytes_in, bytes_out;
	int64_t t_open, t_last, t_close_sent; /* ms; t_last: last byte either way */
	int64_t t_win;			      /* ms: the rate's window began (gd_conn_roll()) */
	uint64_t bytes_win;		      /* bytes either way when it began */
	bool win_slow;			      /* the last whole window's rate was below min_rate */
	bool win_judged;		      /* a whole window has passed: win_slow holds */
	bool slow;			      /* at the last evaluation */
	bool sourceless;		      /* not counted in a source (none had room) */
	bool answered;			      /* its first byte out was seen */
};

/* The INS whose good evidence of one address is kept (the most recent ones). */
#define GD_GOOD_INS 8

/* Good evidence of an address seen on one INS. */
struct gd_good {
	uint32_t ins; /* gd_ins_key() */
	int64_t at;   /* ms; 0 = empty */
};

/* One source address with connections open (or blocked, or recently good). */
struct gd_source {
	struct gd_addrkey key;
	uint32_t conns;	   /* open now */
	uint32_t slow;	   /* slow ones on listeners under pressure, this evaluation */
	int64_t last_good; /* ms: a connection progressed or ended well; 0 = never */
	struct gd_good good[GD_GOOD_INS]; /* where: what spares it a block (decide.c) */
	int64_t last_done; /* ms: an exchange ended well (closed by itself); 0 = never */
	uint32_t scan;	   /* scratch: connections on the listener being judged (decide.c) */
	uint32_t ins_slow; /* this evaluation: the most of @slow on one INS */
	uint32_t nins;	   /* this evaluation: the INS it offends on (struct gd_offence) */
	uint32_t ins0;	   /* this evaluation: the first of them met (the only one if @nins 1) */
	uint8_t place;	   /* scratch: where its block goes (decide.c, enum place) */
};

#define GD_INS_ALL 0xffffffffu /* a gd_scope on every INS (gd_ins_key() has 24 bits) */

/* An address (or prefix) on one INS, or on every INS: the key of blocks and prefixes. */
struct gd_scope {
	struct gd_addrkey addr;
	uint8_t pad[3]; /* part of the key: [0] a block's prefix length, the rest zero */
	uint32_t ins;	/* gd_ins_key(), or GD_INS_ALL */
};

/* An address offending on one INS, counted anew at each evaluation (decide.c). */
struct gd_offence {
	struct gd_scope key; /* the address (pad zero) and the INS */
	uint32_t slow;	     /* its slow connections on listeners under pressure there */
	uint64_t sock;	     /* one of them: names the INS to a block scoped to it */
};

/*
 * A /24 (/64) with offending sources on one INS, or on any INS (GD_INS_ALL), counted
 * anew at each evaluation (decide.c, block_prefixes()).
 */
struct gd_prefix {
	struct gd_scope key; /* the address with its host bits zero; the INS */
	uint32_t sources;    /* sources with slow connections there */
	uint32_t slow;	     /* their slow connections there */
	uint32_t only;	     /* one INS: those of @sources offending on no other INS */
	uint32_t only_max;   /* any INS: the most @only of one INS */
};

/*
 * A block mw-guard placed, lifted after guard.block_expiry_s: on the one INS whose
 * evidence it rests on, or on every INS when INS beyond the one reporting the most saw
 * the address offend enough at once (decide.c, source_place()).
 */
struct gd_block {
	struct gd_scope key; /* an IPv6 address's prefix, with its length in @prefix_len */
	uint8_t prefix_len;  /* 0: the address alone */
	int64_t until; /* ms */
	int64_t sent;  /* ms: sent last (again if the address still offends) */
	uint64_t sock; /* a socket id naming the INS (0: every INS) */
};

/* How many entries of a table (blocks, connections, sources) one INS holds. */
struct gd_ins_count {
	uint32_t ins; /* key: gd_ins_key() */
	uint32_t n;
};

/* An INS told apart across PVMs: a socket id's PVM index and INS id (bits 32-55). */
static inline uint32_t gd_ins_key(uint64_t sock)
{
	return (uint32_t)(sock >> 32) & 0xffffff;
}

/* A listener seen in the stream. */
struct gd_listener {
	uint64_t id;
	struct mw_addr local;
	int proto;     /* enum mw_accept_filter, or -1: not in guard.listeners */
	bool baseline; /* the baseline shield was sent */
	bool levers;   /* the pressure levers are on */
	bool src_levers; /* with the per-source ones (no NAT at their limit) */
	int64_t src_off_at; /* ms: the per-source ones last went off for a NAT */
	bool pressure; /* at the last evaluation */
	bool episode;  /* under pressure, with no calm_ms without it since @pressure_since */
	int64_t last_pressure, pressure_since;
	uint32_t held, slow; /* at the last evaluation */
	uint32_t accept_ms,
		response_ms; /* moving means: arrival to accept, accept to first byte out */
	uint64_t closes;
	int64_t t_active; /* ms: first seen (a bind or an accept), then its last accept */
	uint32_t nconns;  /* its connections in the table now (held: at the last evaluation) */
	bool accepted;	  /* an accept was seen on it */
};

enum gd_kind {
	GD_SHIELD_SET,
	GD_SHIELD_CLEAR,
	GD_CLOSE,
	GD_BLOCK,
	GD_UNBLOCK,
	GD_ROTATE,
	GD_KIND_COUNT,
};

/* One decision of the engine, with what it is based on. */
struct gd_action {
	enum gd_kind kind;
	const char *reason;  /* "baseline", "pressure", "calm", "slow", "slow_source", "expiry" */
	char target[64];     /* listener "ip:port", connection peer "ip:port", address "ip",
				INS "ins:ID" */
	char evidence[256];  /* "k=v,k=v": no spaces */
	uint64_t sock;	     /* the listener (shields), the connection (close), or one
				naming the INS a block is scoped to (0: every INS) */
	struct mw_addr addr; /* block, unblock */
	uint8_t prefix_len;  /* block, unblock: 0 = @addr alone, else its first bits */
	uint16_t ins;	     /* rotate: the INS to drain */
	uint32_t opts;	     /* shields: bit (1 << enum mw_shield_opt) for each option sent */
	uint64_t val[MW_SHIELD_OPT_MAX + 1]; /* shields: each option's value */
};

typedef void gd_emit_fn(void *ctx, const struct gd_action *a);

struct gd_counters {
	uint64_t observations;
	uint64_t accepts;
	uint64_t listener_drops;
	uint64_t actions[GD_KIND_COUNT];
};

/* Policy read from the configuration (reloadable). */
struct gd_policy {
	int ports[MW_GUARD_LIST_MAX], protos[MW_GUARD_LIST_MAX], nports;
	struct mw_cidr allow[MW_GUARD_LIST_MAX];
	int nallow;
};

struct gd_engine {
	const struct mw_guard_config *cfg;
	struct gd_policy pol;
	struct mw_cidr ins_net; /* balancer.subnet: the balancer's own addresses (never blocked) */
	bool has_ins_net;
	bool multi_ins; /* connections came from more than one INS at once (kept) */
	struct gd_tab conns, sources, blocks, prefixes;
	struct gd_tab offences;	  /* struct gd_offence: this evaluation's, per address and INS */
	struct gd_tab ins_blocks; /* struct gd_ins_count: the blocks placed on each INS */
	struct gd_tab ins_conns;  /* struct gd_ins_count: connections per INS (their shares) */
	struct gd_addrkey idle[GD_IDLE_KEEP]; /* the last sources left without connections: */
	unsigned nidle, idle_top; /* a stack of @nidle, the last at @idle_top - 1 (modulo) */
	struct gd_listener listeners[GD_LISTENERS_MAX];
	int nlisteners;
	struct gd_counters st;
	int64_t last_rotate; /* ms; valid once nrotated */
	uint16_t rotated[GD_ROTATED_MAX];
	unsigned nrotated; /* rotations so far; the last GD_ROTATED_MAX ids are in @rotated */
	gd_emit_fn *emit;
	void *emit_ctx;
};

/* table.c */
int gd_tab_init(struct gd_tab *t, size_t max, size_t esize, size_t klen);
void gd_tab_free(struct gd_tab *t);
void gd_tab_clear(struct gd_tab *t);
void *gd_tab_find(const struct gd_tab *t, const void *key);
void *gd_tab_insert(struct gd_tab *t, const void *key);
void gd_tab_remove(struct gd_tab *t, void *entry);
void *gd_tab_slot(const struct gd_tab *t, size_t i);
void gd_addrkey_from(struct gd_addrkey *k, const struct mw_addr *a);
void gd_addrkey_to(struct mw_addr *a, const struct gd_addrkey *k);
void gd_addrkey_prefix(struct gd_addrkey *p, const struct gd_addrkey *k);
void gd_tab_seed(uint64_t seed);
uint32_t gd_ins_count_get(const struct gd_tab *t, uint32_t ins);
void gd_ins_count_add(struct gd_tab *t, uint32_t ins, bool add);

/* engine.c */
int gd_engine_init(struct gd_engine *e, const struct mw_guard_config *cfg, gd_emit_fn *emit,
		   void *ctx, char *err, size_t errlen);
int gd_engine_configure(struct gd_engine *e, const struct mw_guard_config *cfg, char *err,
			size_t errlen);
void gd_engine_fini(struct gd_engine *e);
void gd_engine_reset(struct gd_engine *e);
void gd_engine_observe(struct gd_engine *e, const struct mw_nf_info *in, int64_t now);
void gd_engine_tick(struct gd_engine *e, int64_t now);
void gd_engine_forget(struct gd_engine *e, uint64_t id);
bool gd_engine_allowed(const struct gd_engine *e, const struct mw_addr *a);
int gd_engine_set_ins_net(struct gd_engine *e, const char *subnet);
bool gd_engine_ins_net(const struct gd_engine *e, const struct mw_addr *a);
struct gd_listener *gd_engine_listener(struct gd_engine *e, uint64_t id);
void gd_engine_unrotate(struct gd_engine *e, uint16_t ins);
struct gd_source *gd_engine_source(struct gd_engine *e, const struct gd_addrkey *key, int64_t now,
				   bool count_drop);

/* decide.c */
void gd_source_good(const struct gd_engine *e, struct gd_source *s, uint64_t sock, int64_t now);
void gd_conn_roll(const struct gd_engine *e, struct gd_conn *c, int64_t now);
bool gd_conn_is_slow(const struct gd_engine *e, const struct gd_conn *c, int64_t now);
void gd_decide_classify(struct gd_engine *e, int64_t now);
void gd_decide_baseline(struct gd_engine *e, struct gd_listener *l);
void gd_decide_listener(struct gd_engine *e, struct gd_listener *l, int64_t now);
void gd_decide_sources(struct gd_engine *e, int64_t now);
void gd_decide_closes(struct gd_engine *e, int64_t now);
void gd_decide_expiry(struct gd_engine *e, int64_t now);
void gd_decide_rotate(struct gd_engine *e, int64_t now);

const char *gd_shield_opt_name(unsigned opt);

/* action.c */
const char *gd_kind_name(enum gd_kind k);

#endif /* MW_GUARD_H */
