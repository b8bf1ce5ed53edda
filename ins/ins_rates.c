/* SPDX-License-Identifier: MIT */
/* ins_rates.c - shield rates and limits, the pure part: buckets, tables, rate windows */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "ins/ins_rates.h"

/*
 * Theory of operation
 *
 * Token bucket: @rate tokens a second, at most @rate (one second's burst),
 * counted in thousandths so a rate of 1/s refills smoothly by the
 * millisecond.  A new connection needs one whole token.
 *
 * Source and prefix tables: fixed arrays, open addressing, linear probing
 * over at most INS_RTAB_PROBE slots.  A lookup takes the key's entry if it is
 * in those slots, else the first unused or stale one (no connection, bucket
 * full: forgetting it changes nothing), else fails: the caller counts that
 * and lets the connection in (fail open, docs/ins.md).  Entries are reused,
 * never deleted, so chains are never cut.
 *
 * Rate windows: a window opens when measuring starts; once it has lasted
 * INS_RATES_WINDOW_MS, the bytes that moved in it are compared with the
 * minimum rate times its length; enough: a new window opens.
 */

#define MILLI 1000u
#define MS_PER_S 1000u
#define V4_PREFIX_BYTES 3 /* /24 */
#define V6_PREFIX_BYTES 8 /* /64 */

/**
 * ins_bucket_fill() - add the tokens earned since the last refill
 * @b:      the bucket
 * @rate:   tokens a second (its capacity too)
 * @now_ms: monotonic time
 */
void ins_bucket_fill(struct ins_bucket *b, uint32_t rate, uint64_t now_ms)
{
	uint64_t cap = (uint64_t)rate * MILLI, dt;

	if (now_ms > b->at_ms) {
		dt = now_ms - b->at_ms;
		/* rate tokens/s = rate milli-tokens/ms; cap the product before it overflows */
		b->milli = dt >= MS_PER_S ? cap : b->milli + dt * rate;
	}
	b->at_ms = now_ms;
	if (b->milli > cap)
		b->milli = cap;
}

/**
 * ins_bucket_ok() - refill, then whether a whole token is there
 * @b:      the bucket
 * @rate:   tokens a second (0: no limit)
 * @now_ms: monotonic time
 * Return: true if one more may pass
 */
bool ins_bucket_ok(struct ins_bucket *b, uint32_t rate, uint64_t now_ms)
{
	if (!rate)
		return true;
	ins_bucket_fill(b, rate, now_ms);
	return b->milli >= MILLI;
}

/**
 * ins_bucket_take() - spend one token (after ins_bucket_ok() said yes)
 * @b: the bucket
 */
void ins_bucket_take(struct ins_bucket *b)
{
	b->milli = b->milli >= MILLI ? b->milli - MILLI : 0;
}

/**
 * ins_rkey_make() - the key of a source or of its prefix on a listener
 * @k:        the key (zeroed first)
 * @listener: the listener's id
 * @a:        the client's address; ::ffff:a.b.c.d counts as a.b.c.d
 * @prefix:   keep only the /24 (IPv4) or /64 (IPv6)
 */
void ins_rkey_make(struct ins_rkey *k, uint64_t listener, const struct mw_addr *a, bool prefix)
{
	static const uint8_t mapped[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff };

	memset(k, 0, sizeof(*k));
	k->listener = listener;
	if (a->family == 6 && !memcmp(a->addr, mapped, sizeof(mapped))) {
		k->family = 4;
		memcpy(k->addr, a->addr + 12, 4);
	} else if (a->family == 4) {
		k->family = 4;
		memcpy(k->addr, a->addr, 4);
	} else {
		k->family = 6;
		memcpy(k->addr, a->addr, 16);
	}
	if (prefix)
		memset(k->addr + (k->family == 4 ? V4_PREFIX_BYTES : V6_PREFIX_BYTES), 0,
		       k->family == 4 ? 4 - V4_PREFIX_BYTES : 16 - V6_PREFIX_BYTES);
}

/**
 * ins_rtab_init() - a table of @entries slots, all unused
 * @t:       the table
 * @entries: rounded up to a power of two, at least INS_RTAB_PROBE
 * @seed:    the hash's seed (random at start)
 * Return: 0 or -ENOMEM
 */
int ins_rtab_init(struct ins_rtab *t, uint32_t entries, uint64_t seed)
{
	uint32_t n = INS_RTAB_PROBE;

	while (n < entries && n < (1u << 31))
		n <<= 1;
	t->e = calloc(n, sizeof(*t->e));
	if (!t->e)
		return -ENOMEM;
	t->mask = n - 1;
	t->seed = seed;
	return 0;
}

/**
 * ins_rtab_fini() - free the slots
 * @t: the table
 */
void ins_rtab_fini(struct ins_rtab *t)
{
	free(t->e);
	t->e = NULL;
	t->mask = 0;
}

static uint64_t mix(uint64_t h)
{
	h ^= h >> 33;
	h *= 0xff51afd7ed558ccdULL;
	h ^= h >> 33;
	h *= 0xc4ceb9fe1a85ec53ULL;
	h ^= h >> 33;
	return h;
}

static uint64_t rkey_hash(const struct ins_rkey *k, uint64_t seed)
{
	uint64_t w0, w1;

	memcpy(&w0, k->addr, sizeof(w0));
	memcpy(&w1, k->addr + 8, sizeof(w1));
	return mix(mix(mix(seed ^ k->listener) ^ w0 ^ k->family) ^ w1);
}

static bool rkey_eq(const struct ins_rkey *x, const struct ins_rkey *y)
{
	return x->listener == y->listener && x->family == y->family &&
	       !memcmp(x->addr, y->addr, sizeof(x->addr));
}

/* No connection and a full bucket: the entry holds nothing worth keeping. */
static bool rent_stale(struct ins_rent *e, uint64_t now_ms)
{
	if (!e->used)
		return true;
	if (e->conns)
		return false;
	if (!e->rate)
		return true;
	ins_bucket_fill(&e->b, e->rate, now_ms);
	return e->b.milli >= (uint64_t)e->rate * MILLI;
}

/**
 * ins_rtab_get() - the entry of @k, made if needed
 * @t:      the table
 * @k:      the key
 * @now_ms: monotonic time (decides staleness)
 * Return: the entry (a new one: no connection, bucket empty with rate 0 = full
 *         on first use), or NULL when every slot within reach is in use
 */
struct ins_rent *ins_rtab_get(struct ins_rtab *t, const struct ins_rkey *k, uint64_t now_ms)
{
	uint64_t h = rkey_hash(k, t->seed);
	struct ins_rent *e, *free_slot = NULL;
	uint32_t i;

	if (!t->e)
		return NULL;
	for (i = 0; i < INS_RTAB_PROBE; i++) {
		e = &t->e[(h + i) & t->mask];
		if (e->used && rkey_eq(&e->key, k))
			return e;
		if (!e->used) {
			if (!free_slot)
				free_slot = e;
			break; /* never used: the key is not further on */
		}
		if (!free_slot && rent_stale(e, now_ms))
			free_slot = e;
	}
	if (!free_slot)
		return NULL;
	memset(free_slot, 0, sizeof(*free_slot));
	free_slot->key = *k;
	free_slot->used = true;
	free_slot->b.at_ms = now_ms;
	return free_slot;
}

/**
 * ins_rates_out_start() - start measuring (the INS began holding bytes)
 * @o:      the connection's measure
 * @now_ms: monotonic time, > 0
 * @acked:  bytes the client acknowledged so far
 */
void ins_rates_out_start(struct ins_rates_out *o, uint64_t now_ms, uint64_t acked)
{
	o->win_start_ms = now_ms;
	o->win_base = acked;
	o->rate = INS_RATE_UNKNOWN;
	o->last_acked = acked;
	o->still_ms = now_ms;
}

/**
 * ins_rates_out_progress() - a sample: did the client acknowledge anything since the last?
 * @o:      the connection's measure (started)
 * @now_ms: monotonic time
 * @acked:  bytes the client acknowledged so far
 */
void ins_rates_out_progress(struct ins_rates_out *o, uint64_t now_ms, uint64_t acked)
{
	if (acked == o->last_acked)
		return;
	o->last_acked = acked;
	o->still_ms = now_ms;
}

/**
 * ins_rates_out_stalled() - has the client acknowledged nothing for INS_RATES_STALL_MS?
 * @o:      the connection's measure
 * @now_ms: monotonic time
 * Return: true if its last progress (or the start) is that old
 */
bool ins_rates_out_stalled(const struct ins_rates_out *o, uint64_t now_ms)
{
	return o->win_start_ms && now_ms >= o->still_ms + INS_RATES_STALL_MS;
}

/**
 * ins_rates_stalled_longer() - has @a's client been still for longer than @b's?
 * @a: a measure
 * @b: another
 * Return: true if @a's last progress is older (the one to cut first)
 */
bool ins_rates_stalled_longer(const struct ins_rates_out *a, const struct ins_rates_out *b)
{
	return a->still_ms < b->still_ms;
}

/**
 * ins_rates_out_too_slow() - update the measure; is a whole window under @min_rate?
 * @o:        the connection's measure (started)
 * @min_rate: B/s (0: never too slow; the rate is still measured)
 * @now_ms:   monotonic time
 * @acked:    bytes the client acknowledged so far
 * Return: true if the client took less than @min_rate over the last window
 */
bool ins_rates_out_too_slow(struct ins_rates_out *o, uint32_t min_rate, uint64_t now_ms,
			    uint64_t acked)
{
	uint64_t dt, taken;

	if (!o->win_start_ms || now_ms <= o->win_start_ms)
		return false;
	dt = now_ms - o->win_start_ms;
	taken = acked > o->win_base ? acked - o->win_base : 0;
	if (dt >= MS_PER_S)
		o->rate = taken * MS_PER_S / dt;
	if (dt < INS_RATES_WINDOW_MS)
		return false;
	if (min_rate && taken * MS_PER_S < (uint64_t)min_rate * dt)
		return true;
	o->win_start_ms = now_ms;
	o->win_base = acked;
	return false;
}

/**
 * ins_rates_slower() - is @a's reader slower than @b's (the one to cut first)?
 * @a: a measure
 * @b: another
 * Return: true if @a was measured slower; an unmeasured one is never slower
 */
bool ins_rates_slower(const struct ins_rates_out *a, const struct ins_rates_out *b)
{
	return a->rate < b->rate;
}

/**
 * ins_rates_in_too_slow() - a held connection: did it send under @min_rate over a window?
 * @st:       its measure; the first call starts it
 * @min_rate: B/s (0: never)
 * @now_ms:   monotonic time, > 0
 * @received: bytes it sent so far (peeked, not read)
 * Return: true if it sent less than @min_rate * the window's length in a whole window
 */
bool ins_rates_in_too_slow(struct ins_rates_in *st, uint32_t min_rate, uint64_t now_ms,
			   uint64_t received)
{
	uint64_t dt, got;

	if (!st->win_start_ms) {
		st->win_start_ms = now_ms;
		st->win_base = received;
		return false;
	}
	if (!min_rate || now_ms <= st->win_start_ms)
		return false;
	dt = now_ms - st->win_start_ms;
	if (dt < INS_RATES_WINDOW_MS)
		return false;
	got = received > st->win_base ? received - st->win_base : 0;
	if (got * MS_PER_S < (uint64_t)min_rate * dt)
		return true;
	st->win_start_ms = now_ms;
	st->win_base = received;
	return false;
}
