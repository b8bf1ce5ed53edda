/* SPDX-License-Identifier: MIT */
/* decide.c - mw-guard's decisions: baseline shields, pressure, closes, blocks, expiry */
#include <arpa/inet.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "common/sockid.h"
#include "guard/guard.h"

/*
 * Theory of operation (docs/guard.md, "Model")
 *
 * A connection held by the app is slow once it is guard.slow_after_ms old and
 * either moved no byte for idle_ms or moved fewer than min_rate bytes a second
 * over its life; it progresses when it is that old and not slow.  A configured
 * listener is under pressure when the app holds pressure_conns of its
 * connections or pressure_slow of them are slow.  Under pressure:
 *   - the pressure levers go on once (shield_set reason=pressure), and off again
 *     after calm_ms without pressure (shield_clear reason=calm); the baseline stays;
 *     the per-source ones stay off (or go off: shield_set reason=nat) while the
 *     address holding the most of the listener's connections ended an exchange
 *     well within good_memory_ms (a NAT: they would refuse its benign clients
 *     with the attackers), and come back (reason=nat_over) once it has not for
 *     good_memory_ms;
 *   - slow connections are closed (abortive), at most close_max per listener and
 *     evaluation, never from an allowed address;
 *   - a source with block_slow slow connections on one INS, or on the INS it
 *     offends on but the one reporting the most, is blocked for block_expiry_s,
 *     unless it is allowed or one of its connections progressed or ended well
 *     within good_memory_ms on the INS the block would go to (several clients
 *     behind one NAT address: closing the slow connections spares the good ones,
 *     a block would not; source_place() says where a liar's word does not count);
 *   - a /24 (/64) with block_prefix_sources such sources (one slow connection
 *     each is enough) has each of them blocked (AddrBlock names one address) on
 *     each INS it offends on;
 *   - a block rests on the INS that reported the slow connections: it applies to
 *     each INS that did, and to every INS when the INS but the one reporting the
 *     most saw enough of them and no INS saw the address good (a compromised INS
 *     reports whatever peer it likes: on its own it can refuse a client only where
 *     it could anyway, and its count never adds to another's; one process is one
 *     INS at a time); prefixes are counted per INS, and across INS without what one
 *     INS alone says (block_prefixes());
 *   - with mw-balancer (balancer_socket), a listener under pressure for
 *     rotate_after_ms gets a fresh INS and the INS holding most of its slow
 *     connections drained (rotate), at most once per rotate_interval_ms.
 * Without pressure nothing beyond the baseline is ever decided.
 */

#define CLOSE_RETRY_MS	5000  /* a close not followed by a close observation is sent again */
#define BLOCK_RESEND_MS 10000 /* a block the address still offends through is sent again */

static const char *const opt_names[MW_SHIELD_OPT_MAX + 1] = {
	[MW_SHIELD_FILTER] = "filter",
	[MW_SHIELD_DEADLINE_MS] = "deadline_ms",
	[MW_SHIELD_HOLD_MAX] = "hold_max",
	[MW_SHIELD_MIN_IN_RATE] = "min_in_rate",
	[MW_SHIELD_MIN_OUT_RATE] = "min_out_rate",
	[MW_SHIELD_OUT_BUFFER] = "out_buffer",
	[MW_SHIELD_SRC_MAX_CONNS] = "src_max_conns",
	[MW_SHIELD_SRC_RATE] = "src_rate",
	[MW_SHIELD_PFX_MAX_CONNS] = "pfx_max_conns",
	[MW_SHIELD_PFX_RATE] = "pfx_rate",
	[MW_SHIELD_DELIM] = "delim",
	[MW_SHIELD_STALL_MAX] = "stall_max",
};

static const char *const filter_names[] = { "none", "data", "http", "line", "delim" };

/* gd_shield_opt_name() - "filter", "deadline_ms", ... for enum mw_shield_opt */
const char *gd_shield_opt_name(unsigned opt)
{
	return opt <= MW_SHIELD_OPT_MAX && opt_names[opt] ? opt_names[opt] : "?";
}

/* Append ",k=v" (or "k=v" first) to @a's evidence. */
static void evidence(struct gd_action *a, const char *key, uint64_t v)
{
	size_t n = strlen(a->evidence);

	snprintf(a->evidence + n, sizeof(a->evidence) - n, "%s%s=%" PRIu64, n ? "," : "", key, v);
}

static void evidence_text(struct gd_action *a, const char *key, const char *v)
{
	size_t n = strlen(a->evidence);

	snprintf(a->evidence + n, sizeof(a->evidence) - n, "%s%s=%s", n ? "," : "", key, v);
}

/* The INS (and its PVM) socket id @sock lives on: "ins=3,pvm=0". */
static void evidence_ins(struct gd_action *a, uint64_t sock)
{
	evidence(a, "ins", mw_sockid_ins(sock));
	evidence(a, "pvm", mw_sockid_pvm(sock));
}

static void shield_opt(struct gd_action *a, enum mw_shield_opt opt, uint64_t v, bool always)
{
	if (!v && !always)
		return;
	a->opts |= 1u << opt;
	a->val[opt] = v;
	if (opt == MW_SHIELD_FILTER && v < sizeof(filter_names) / sizeof(filter_names[0]))
		evidence_text(a, "filter", filter_names[v]);
	else
		evidence(a, gd_shield_opt_name(opt), v);
}

static void emit(struct gd_engine *e, const struct gd_action *a)
{
	e->st.actions[a->kind]++;
	e->emit(e->emit_ctx, a);
}

/* Below min_rate: @bytes over @ms. */
static bool rate_low(const struct gd_engine *e, uint64_t bytes, int64_t ms)
{
	return bytes * 1000 < (uint64_t)e->cfg->min_rate * (uint64_t)ms;
}

/* The rate's window: twice idle_ms. */
static int64_t rate_window(const struct gd_engine *e)
{
	return 2 * (int64_t)e->cfg->idle_ms;
}

/**
 * gd_conn_roll() - at an evaluation: judge @c's rate over a window that has ended
 * @now: monotonic milliseconds
 *
 * A rate over a connection's whole life would let one that moved a megabyte
 * early trickle a byte every idle_ms - 1 for hours, holding the app's worker:
 * once a window (twice idle_ms) has passed, the last whole window's rate is
 * what counts.
 */
void gd_conn_roll(const struct gd_engine *e, struct gd_conn *c, int64_t now)
{
	uint64_t bytes = c->bytes_in + c->bytes_out;

	if (now - c->t_win < rate_window(e))
		return;
	c->win_slow = rate_low(e, bytes - c->bytes_win, now - c->t_win);
	c->win_judged = true;
	c->t_win = now;
	c->bytes_win = bytes;
}

/**
 * gd_conn_is_slow() - is @c holding an app slot without progress?
 * @now: monotonic milliseconds
 */
bool gd_conn_is_slow(const struct gd_engine *e, const struct gd_conn *c, int64_t now)
{
	int64_t age = now - c->t_open;

	if (age < e->cfg->slow_after_ms)
		return false;
	if (now - c->t_last >= e->cfg->idle_ms)
		return true;
	if (c->win_judged)
		return c->win_slow;
	return rate_low(e, c->bytes_in + c->bytes_out, age);
}

/* gd_decide_baseline() - the protective shield of a configured listener, once */
void gd_decide_baseline(struct gd_engine *e, struct gd_listener *l)
{
	struct gd_action a = { .kind = GD_SHIELD_SET, .reason = "baseline", .sock = l->id };

	if (l->baseline || l->proto < 0 || !e->cfg->baseline)
		return;
	l->baseline = true;
	shield_opt(&a, MW_SHIELD_FILTER, (uint64_t)l->proto, false);
	shield_opt(&a, MW_SHIELD_DEADLINE_MS, (uint64_t)e->cfg->shield_deadline_ms, false);
	shield_opt(&a, MW_SHIELD_OUT_BUFFER, (uint64_t)e->cfg->shield_out_buffer, false);
	shield_opt(&a, MW_SHIELD_STALL_MAX, (uint64_t)e->cfg->shield_stall_max, false);
	if (!a.opts)
		return;
	evidence(&a, "sock", l->id);
	mw_addr_format(&l->local, a.target, sizeof(a.target));
	emit(e, &a);
}

static bool source_good(const struct gd_engine *e, const struct gd_source *s, int64_t now)
{
	return s->last_good && now - s->last_good < e->cfg->good_memory_ms;
}

/**
 * gd_source_good() - a connection of @s progressed or ended well on the INS of @sock
 * @s:    the source
 * @sock: the connection (its INS: gd_ins_key())
 * @now:  ms
 *
 * Kept per INS, GD_GOOD_INS of them: a compromised INS reports any peer address, so
 * its word spares an address a block on no INS but its own.  A new INS takes an
 * empty slot, else that of an INS holding no connection (gone: a liar that rejoins
 * under fresh ids takes the slots of its old ones, not an honest INS's), else the
 * oldest.
 */
void gd_source_good(const struct gd_engine *e, struct gd_source *s, uint64_t sock, int64_t now)
{
	uint32_t ins = gd_ins_key(sock);
	size_t i, slot = 0;

	s->last_good = now;
	for (i = 0; i < GD_GOOD_INS && !(s->good[i].at && s->good[i].ins == ins); i++)
		;
	if (i == GD_GOOD_INS) {
		for (i = 0; i < GD_GOOD_INS; i++) {
			if (!s->good[i].at || !gd_ins_count_get(&e->ins_conns, s->good[i].ins)) {
				slot = i; /* empty, or its INS gone */
				break;
			}
			if (s->good[i].at < s->good[slot].at)
				slot = i;
		}
		i = slot;
	}
	s->good[i].ins = ins;
	s->good[i].at = now;
}

/*
 * How many INS saw @s good within good_memory_ms and hold connections now (a liar
 * that rejoins under fresh ids, its old ones reaped, counts once); *@there: whether
 * INS @ins is one.
 */
static unsigned good_ins(const struct gd_engine *e, const struct gd_source *s, int64_t now,
			 uint32_t ins, bool *there)
{
	unsigned j, n = 0;

	*there = false;
	for (j = 0; j < GD_GOOD_INS; j++) {
		if (!s->good[j].at || now - s->good[j].at >= e->cfg->good_memory_ms ||
		    !gd_ins_count_get(&e->ins_conns, s->good[j].ins))
			continue;
		n++;
		*there |= s->good[j].ins == ins;
	}
	return n;
}

/* Where the block_slow block of a source goes (gd_source.place). */
enum place {
	PLACE_NONE, /* not blocked */
	PLACE_ALL,  /* on every INS (one block) */
	PLACE_EACH, /* on each INS it offends on that did not see it good */
	PLACE_OWN,  /* on each INS that saw @need itself and did not see it good */
};

/*
 * Where a block of @s, with @need slow connections, goes (a compromised INS reports
 * any peer address: its word must neither spare an address on an INS that saw it
 * only offend, nor add to another INS's count):
 *   - seen good within good_memory_ms on GD_GOOD_INS INS (a NAT spread over many INS
 *     by round robin; a liar is one of them at most): nowhere;
 *   - @need slow connections but those of the INS with the most (honest INS saw them,
 *     whoever lies): on every INS if seen good nowhere, else on each INS it offends
 *     on that did not itself see it good;
 *   - else on each INS that saw @need itself and did not see it good.
 */
static enum place source_place(const struct gd_engine *e, const struct gd_source *s, int64_t now,
			       uint32_t need)
{
	bool there;
	unsigned n = good_ins(e, s, now, GD_INS_ALL, &there);

	if (n >= GD_GOOD_INS)
		return PLACE_NONE;
	if (s->slow - s->ins_slow >= need)
		return n ? PLACE_EACH : PLACE_ALL;
	return PLACE_OWN;
}

/*
 * Would the per-source levers of @l refuse benign clients?  True when the address
 * holding the most of @l's connections ended an exchange well (closed by itself,
 * bytes both ways, not slow) within good_memory_ms: clients behind one NAT address
 * with the attackers, the address the levers would limit first (at 64 held, or 50
 * new a second, whatever the clients).  A held connection that merely moves does
 * not count (an attacker's own connections, each just above min_rate, would), nor
 * do connections to other ports.  One walk of the sources and the connections.
 */
static bool top_source_is_nat(struct gd_engine *e, const struct gd_listener *l, int64_t now)
{
	struct gd_source *s, *top = NULL;
	struct gd_addrkey key;
	struct gd_conn *c;
	size_t i;

	for (i = 0; i < e->sources.cap; i++) {
		s = gd_tab_slot(&e->sources, i);
		if (s)
			s->scan = 0;
	}
	for (i = 0; i < e->conns.cap; i++) {
		c = gd_tab_slot(&e->conns, i);
		if (!c || c->listener != l->id)
			continue;
		gd_addrkey_from(&key, &c->peer);
		s = gd_tab_find(&e->sources, &key);
		if (s && ++s->scan > (top ? top->scan : 0))
			top = s;
	}
	if (top) {
		struct mw_addr a;

		gd_addrkey_to(&a, &top->key);
		if (gd_engine_ins_net(e, &a))
			return true; /* the balancer's address: every client's */
	}
	return top && top->last_done && now - top->last_done < e->cfg->good_memory_ms;
}

static bool is_src_lever(enum mw_shield_opt opt)
{
	return opt == MW_SHIELD_SRC_MAX_CONNS || opt == MW_SHIELD_SRC_RATE;
}

/*
 * The pressure levers, on (@on) or off (all zero).  Going on: the per-source ones
 * only if @src.  Already on: only the per-source ones change, to 0 when @src is
 * false (shield_set reason=nat) or back to their values when it is true
 * (reason=nat_over).
 */
static void levers(struct gd_engine *e, struct gd_listener *l, bool on, bool src, int64_t now)
{
	const struct mw_guard_config *g = e->cfg;
	struct gd_action a = { .kind = on ? GD_SHIELD_SET : GD_SHIELD_CLEAR,
			       .reason = !on		 ? "calm"
					 : !l->levers ? "pressure"
					 : src	      ? "nat_over"
						      : "nat",
			       .sock = l->id };
	const struct {
		enum mw_shield_opt opt;
		int v;
	} set[] = {
		{ MW_SHIELD_MIN_IN_RATE, g->shield_min_in_rate },
		{ MW_SHIELD_MIN_OUT_RATE, g->shield_min_out_rate },
		{ MW_SHIELD_SRC_MAX_CONNS, g->shield_src_max_conns },
		{ MW_SHIELD_SRC_RATE, g->shield_src_rate },
		{ MW_SHIELD_PFX_MAX_CONNS, g->shield_pfx_max_conns },
		{ MW_SHIELD_PFX_RATE, g->shield_pfx_rate },
		{ MW_SHIELD_HOLD_MAX, g->shield_hold_max },
	};
	bool resend = on && l->levers; /* only the per-source ones change */
	size_t i;

	evidence(&a, "held", l->held);
	evidence(&a, "slow", l->slow);
	evidence(&a, "accept_ms", l->accept_ms);
	for (i = 0; i < sizeof(set) / sizeof(set[0]); i++) {
		if (!set[i].v)
			continue;
		if (on && !src && is_src_lever(set[i].opt)) {
			if (l->src_levers)
				shield_opt(&a, set[i].opt, 0, true);
			continue;
		}
		if (!resend || is_src_lever(set[i].opt))
			shield_opt(&a, set[i].opt, on ? (uint64_t)set[i].v : 0, true);
	}
	if (on && (g->shield_src_max_conns || g->shield_src_rate))
		evidence_text(&a, "src_levers", src ? "on" : "off_nat");
	if (on && !src)
		l->src_off_at = now;
	l->levers = on;
	l->src_levers = on && src;
	if (!a.opts)
		return;
	evidence(&a, "sock", l->id);
	mw_addr_format(&l->local, a.target, sizeof(a.target));
	emit(e, &a);
}

/* Connection @c counts in its source @s, as good evidence if it progresses. */
static void source_conn(struct gd_engine *e, struct gd_source *s, const struct gd_conn *c,
			int64_t now)
{
	s->conns++;
	if (!c->slow && now - c->t_open >= e->cfg->slow_after_ms)
		gd_source_good(e, s, c->id, now);
}

/*
 * gd_decide_classify() - mark each connection slow or not; count per listener; count
 * the sources' connections anew, then make again the sources of connections that
 * have none (no room when they came, or evicted without connections counted: the
 * sources made take the room of sources without connections only, never of one
 * counted here)
 */
void gd_decide_classify(struct gd_engine *e, int64_t now)
{
	struct gd_listener *l;
	struct gd_addrkey key;
	struct gd_source *s;
	struct gd_conn *c;
	uint32_t ins0 = GD_INS_ALL; /* the first connection's INS (no INS key is GD_INS_ALL) */
	size_t i, missing = 0;

	for (i = 0; i < e->sources.cap; i++) {
		s = gd_tab_slot(&e->sources, i);
		if (s)
			s->slow = s->ins_slow = s->nins = s->conns = 0;
	}
	for (i = 0; i < e->conns.cap; i++) {
		c = gd_tab_slot(&e->conns, i);
		if (!c)
			continue;
		if (ins0 == GD_INS_ALL)
			ins0 = gd_ins_key(c->id);
		else if (gd_ins_key(c->id) != ins0)
			e->multi_ins = true; /* for good: a liar may go first, later */
		gd_conn_roll(e, c, now);
		c->slow = gd_conn_is_slow(e, c, now);
		l = gd_engine_listener(e, c->listener);
		if (l) {
			l->held++;
			l->slow += c->slow;
		}
		gd_addrkey_from(&key, &c->peer);
		s = gd_tab_find(&e->sources, &key);
		c->sourceless = !s;
		if (s)
			source_conn(e, s, c, now);
		else
			missing++;
	}
	for (i = 0; missing && i < e->conns.cap; i++) {
		c = gd_tab_slot(&e->conns, i);
		if (!c || !c->sourceless)
			continue;
		missing--;
		gd_addrkey_from(&key, &c->peer);
		s = gd_engine_source(e, &key, now, false);
		c->sourceless = !s;
		if (s)
			source_conn(e, s, c, now);
	}
}

/* gd_decide_listener() - pressure on @l: levers on, or off after a calm period */
void gd_decide_listener(struct gd_engine *e, struct gd_listener *l, int64_t now)
{
	if (l->proto < 0) {
		l->pressure = false;
		l->episode = false;
		return;
	}
	l->pressure = l->held >= (uint32_t)e->cfg->pressure_conns ||
		      l->slow >= (uint32_t)e->cfg->pressure_slow ||
		      (e->cfg->pressure_accept_ms &&
		       l->accept_ms >= (uint32_t)e->cfg->pressure_accept_ms);
	if (l->pressure && !l->episode) {
		l->episode = true;
		l->pressure_since = now;
	} else if (!l->pressure && l->episode && now - l->last_pressure >= e->cfg->calm_ms) {
		l->episode = false;
	}
	if (l->pressure) {
		bool nat = (e->cfg->shield_src_max_conns || e->cfg->shield_src_rate) &&
			   top_source_is_nat(e, l, now);

		l->last_pressure = now;
		if (!l->levers)
			levers(e, l, true, !nat, now);
		else if (l->src_levers && nat)
			levers(e, l, true, false, now);
		else if (!l->src_levers && !nat && now - l->src_off_at >= e->cfg->good_memory_ms)
			levers(e, l, true, true, now); /* the NAT's good exchanges are over */
	} else if (l->levers && now - l->last_pressure >= e->cfg->calm_ms) {
		levers(e, l, false, false, now);
	}
}

/* A slow connection on a listener under pressure, from an address that may be acted on. */
static bool conn_offends(struct gd_engine *e, const struct gd_conn *c)
{
	const struct gd_listener *l;

	if (!c->slow)
		return false;
	l = gd_engine_listener(e, c->listener);
	return l && l->pressure && !gd_engine_allowed(e, &c->peer);
}

static void ip_text(const struct mw_addr *a, char *buf, size_t len)
{
	if (!inet_ntop(a->family == 4 ? AF_INET : AF_INET6, a->addr, buf, (socklen_t)len))
		snprintf(buf, len, "?");
}

/* The key of @addr (its prefix if @prefix) on INS @ins (a gd_ins_key(), or GD_INS_ALL). */
static void scope(struct gd_scope *k, const struct gd_addrkey *addr, bool prefix, uint32_t ins)
{
	memset(k, 0, sizeof(*k));
	if (prefix)
		gd_addrkey_prefix(&k->addr, addr);
	else
		k->addr = *addr;
	k->ins = ins;
}

/* Does a network of guard.allow overlap @net/@len (IPv6)? */
static bool prefix_holds_allowed(const struct gd_engine *e, const uint8_t net[16], unsigned len)
{
	int i;

	for (i = 0; i < e->pol.nallow; i++) {
		const struct mw_cidr *c = &e->pol.allow[i];

		if (c->family == 6 && mw_cidr_overlap(c->net, c->prefix, net, len))
			return true;
	}
	return false;
}

/*
 * The prefix length @s is blocked as: guard.block_ipv6_prefix for IPv6, else 0 (the
 * address alone), and 0 for an IPv4 client of a dual-stack listener (::ffff:a.b.c.d:
 * IPv4 rules) or a prefix holding an address of guard.allow.
 */
static unsigned block_prefix_len(const struct gd_engine *e, const struct gd_source *s)
{
	unsigned len = (unsigned)e->cfg->block_ipv6_prefix;
	uint8_t net[16];

	if (s->key.family != 6 || len >= 128)
		return 0;
	memcpy(net, s->key.addr, 16);
	mw_cidr_mask(net, len);
	if (mw_cidr_v6_reaches_mapped(net, 96) || mw_cidr_v6_reaches_mapped(net, len))
		return 0;
	return prefix_holds_allowed(e, net, len) ? 0 : len; /* never block an allowed one */
}

/*
 * May another block go on INS @ins?  Once connections came from more than one INS,
 * the blocks of one INS take at most half of max_blocks: a compromised INS reporting
 * made-up offenders fills its half, and the other INS keep theirs for real ones.
 */
static bool block_share_left(struct gd_engine *e, uint32_t ins)
{
	size_t share = e->blocks.max / 2;

	if (ins == GD_INS_ALL || !e->multi_ins ||
	    gd_ins_count_get(&e->ins_blocks, ins) < (share ? share : 1))
		return true;
	e->blocks.drops++;
	return false;
}

/* A block on INS @ins was placed (@add) or lifted: count it (not those of every INS). */
static void block_count(struct gd_engine *e, uint32_t ins, bool add)
{
	if (ins != GD_INS_ALL)
		gd_ins_count_add(&e->ins_blocks, ins, add);
}

static void block_target(struct gd_action *a)
{
	size_t n;

	ip_text(&a->addr, a->target, sizeof(a->target));
	n = strlen(a->target);
	if (a->prefix_len)
		snprintf(a->target + n, sizeof(a->target) - n, "/%u", a->prefix_len);
}

/*
 * Block @s on the INS of offence @o, or on every INS (@o NULL), for itself or as one
 * of prefix @p (see the theory above): a block of every INS covers the INS too, and
 * is sent again (renewed) only while @s offends enough on several INS
 * (source_place()); one INS's reports let it expire, then block @s on that INS
 * alone.  A block it still offends through after BLOCK_RESEND_MS is sent again: its
 * INS may have restarted under the same id (mw-pvm forgets a scoped block with its
 * INS), or mw-pvm refused it.
 */
static void block(struct gd_engine *e, const struct gd_source *s, const struct gd_offence *o,
		  const struct gd_prefix *p, int64_t now)
{
	uint32_t ins = o ? o->key.ins : GD_INS_ALL;
	struct gd_action a = { .kind = GD_BLOCK, .reason = p ? "slow_prefix" : "slow_source" };
	bool report = !strcmp(e->cfg->mode, "report");
	char net[INET6_ADDRSTRLEN];
	struct mw_addr pa = { 0 };
	unsigned plen = block_prefix_len(e, s);
	struct gd_scope k, all;
	struct gd_block *b, *ab;

	scope(&k, &s->key, false, ins);
	if (plen)
		mw_cidr_mask(k.addr.addr, plen); /* one block for the prefix */
	k.pad[0] = (uint8_t)plen;		 /* a block of the address alone is another */
	all = k;
	all.ins = GD_INS_ALL;
	b = gd_tab_find(&e->blocks, &k);
	ab = k.ins != GD_INS_ALL ? gd_tab_find(&e->blocks, &all) : NULL;
	if (!b && ab && now - ab->sent < BLOCK_RESEND_MS)
		return; /* covered, and one INS's reports do not renew a block of every INS
			   (nor trust it longer than one sent lately: mw-pvm may refuse it) */
	if (b && (report || now - b->sent < BLOCK_RESEND_MS))
		return;
	gd_addrkey_to(&a.addr, &s->key);
	if (gd_engine_ins_net(e, &a.addr))
		return; /* the balancer's address: every client's (gd_engine_set_ins_net) */
	if (!b) {
		if (!block_share_left(e, k.ins))
			return; /* counted in blocks.drops */
		b = gd_tab_insert(&e->blocks, &k);
		if (!b)
			return; /* counted in blocks.drops */
		block_count(e, k.ins, true);
		b->sock = o ? o->sock : 0;
		b->prefix_len = (uint8_t)plen;
	} else {
		evidence(&a, "resent", 1);
	}
	b->sent = now;
	b->until = now + (int64_t)e->cfg->block_expiry_s * 1000;
	a.sock = b->sock;
	gd_addrkey_to(&a.addr, &b->key.addr);
	a.prefix_len = b->prefix_len;
	block_target(&a);
	if (p) {
		gd_addrkey_to(&pa, &p->key.addr);
		ip_text(&pa, net, sizeof(net));
		if (p->key.ins == GD_INS_ALL) {
			evidence_text(&a, "prefix_ins", "any");
		} else {
			evidence(&a, "prefix_ins", p->key.ins >> 8); /* gd_ins_key() */
			evidence(&a, "prefix_pvm", p->key.ins & 0xff);
		}
		evidence_text(&a, "prefix", net);
		evidence(&a, "prefix_len", p->key.addr.family == 4 ? 24 : 64);
		evidence(&a, "prefix_sources", p->sources);
		if (p->key.ins == GD_INS_ALL)
			evidence(&a, "prefix_beyond", p->sources - p->only_max);
		evidence(&a, "prefix_slow", p->slow);
	}
	evidence(&a, "slow", s->slow);
	evidence(&a, "conns", s->conns);
	if (o)
		evidence(&a, "ins_slow", o->slow);
	if (!p && (!o || o->slow < (uint32_t)e->cfg->block_slow))
		evidence(&a, "slow_beyond", s->slow - s->ins_slow); /* what it rests on */
	if (b->sock)
		evidence_ins(&a, b->sock);
	else
		evidence_text(&a, "ins", "all");
	evidence(&a, "expiry_s", (uint64_t)e->cfg->block_expiry_s);
	emit(e, &a);
}

/*
 * Prefixes: AddrBlock names one address, so a /24 (/64) whose offending sources
 * number block_prefix_sources is blocked as its offending addresses, each at once
 * (one slow connection is enough there), not only those reaching block_slow.  What a
 * liar reports must neither make up a prefix nor hide one, so each source counts:
 *   - in the prefix of each INS it offends on (an offence): one reaching the
 *     threshold blocks its sources on that INS (its own word);
 *   - in the prefix of any INS, which counts without the sources offending on one
 *     INS alone for the INS with the most of them: one reaching the threshold there
 *     blocks its sources on each INS they offend on (honest INS saw the threshold
 *     together, whoever lies: an attack spread over INS is counted whole).
 * A liar naming a source too only adds to counts; its made-up sources offend on it
 * alone.  Blocks go to each INS a source offends on that did not see it good (never
 * every INS at once: one slow connection is not enough for that), and nowhere if 8
 * INS saw it good.  Every offending source counts, seen good or not (good evidence,
 * perhaps a liar's, must not split the count): it says only where a block goes.
 * The table holds an entry per offence and per offending source (engine.c,
 * prefixes_max()), so no count is ever left out.
 */
static struct gd_prefix *prefix_count(struct gd_engine *e, const struct gd_addrkey *addr,
				      uint32_t ins, uint32_t slow)
{
	struct gd_scope key;
	struct gd_prefix *p;

	scope(&key, addr, true, ins);
	p = gd_tab_find(&e->prefixes, &key);
	if (!p && (p = gd_tab_insert(&e->prefixes, &key)))
		p->sources = p->slow = p->only = p->only_max = 0;
	if (p) {
		p->sources++;
		p->slow += slow;
	}
	return p;
}

static struct gd_prefix *prefix_find(struct gd_engine *e, const struct gd_addrkey *addr,
				     uint32_t ins)
{
	struct gd_scope key;

	scope(&key, addr, true, ins);
	return gd_tab_find(&e->prefixes, &key);
}

static void prefix_counts(struct gd_engine *e)
{
	struct gd_prefix *p, *one;
	struct gd_offence *o;
	struct gd_source *s;
	size_t i;

	gd_tab_clear(&e->prefixes);
	for (i = 0; i < e->offences.cap; i++) {
		o = gd_tab_slot(&e->offences, i);
		if (o)
			prefix_count(e, &o->key.addr, o->key.ins, o->slow);
	}
	for (i = 0; i < e->sources.cap; i++) {
		s = gd_tab_slot(&e->sources, i);
		if (!s || !s->nins)
			continue;
		p = prefix_count(e, &s->key, GD_INS_ALL, s->slow);
		one = s->nins == 1 ? prefix_find(e, &s->key, s->ins0) : NULL;
		if (p && one && ++one->only > p->only_max)
			p->only_max = one->only;
	}
}

static void block_prefixes(struct gd_engine *e, int64_t now)
{
	uint32_t need = (uint32_t)e->cfg->block_prefix_sources;
	const struct gd_prefix *p, *all;
	struct gd_offence *o;
	struct gd_source *s;
	bool there;
	size_t i;

	prefix_counts(e);
	for (i = 0; i < e->offences.cap; i++) {
		o = gd_tab_slot(&e->offences, i);
		if (!o || !(s = gd_tab_find(&e->sources, &o->key.addr)))
			continue;
		p = prefix_find(e, &o->key.addr, o->key.ins);
		all = prefix_find(e, &o->key.addr, GD_INS_ALL);
		if (!p || p->sources < need)
			p = all && all->sources - all->only_max >= need ? all : NULL;
		if (p && good_ins(e, s, now, o->key.ins, &there) < GD_GOOD_INS && !there)
			block(e, s, o, p, now);
	}
}

/* Slow connection @c of @s, on a listener under pressure: counted on its INS. */
static void note_offence(struct gd_engine *e, struct gd_source *s, const struct gd_conn *c)
{
	struct gd_offence *o;
	struct gd_scope key;

	scope(&key, &s->key, false, gd_ins_key(c->id));
	o = gd_tab_insert(&e->offences, &key);
	if (!o)
		return; /* never: one entry per slow connection at most, max_conns of them */
	if (!o->slow++) {
		o->sock = c->id;
		if (!s->nins++)
			s->ins0 = key.ins;
	}
	if (o->slow > s->ins_slow)
		s->ins_slow = o->slow;
	s->slow++;
}

/*
 * gd_decide_sources() - block sources whose connections all crawl; forget idle sources
 *
 * A source's slow connections are counted per INS (struct gd_offence); its block
 * goes where source_place() says, scoped blocks to each INS in turn.
 */
void gd_decide_sources(struct gd_engine *e, int64_t now)
{
	uint32_t need = (uint32_t)e->cfg->block_slow, offending = 0;
	struct gd_addrkey key;
	struct gd_offence *o;
	struct gd_source *s;
	struct gd_conn *c;
	bool there;
	size_t i;

	gd_tab_clear(&e->offences);
	for (i = 0; i < e->conns.cap; i++) {
		c = gd_tab_slot(&e->conns, i);
		if (!c || !conn_offends(e, c))
			continue;
		gd_addrkey_from(&key, &c->peer);
		s = gd_tab_find(&e->sources, &key);
		if (!s)
			continue;
		note_offence(e, s, c);
		offending++;
	}
	for (i = 0; offending && i < e->sources.cap; i++) {
		s = gd_tab_slot(&e->sources, i);
		if (!s)
			continue;
		s->place = s->slow >= need ? source_place(e, s, now, need) : PLACE_NONE;
		if (s->place == PLACE_ALL)
			block(e, s, NULL, NULL, now); /* first: the scoped ones are then covered */
	}
	if (offending && e->cfg->block_prefix_sources)
		block_prefixes(e, now);
	for (i = 0; offending && i < e->offences.cap; i++) {
		o = gd_tab_slot(&e->offences, i);
		if (!o || !(s = gd_tab_find(&e->sources, &o->key.addr)))
			continue;
		if (s->place != PLACE_EACH && (s->place != PLACE_OWN || o->slow < need))
			continue;
		good_ins(e, s, now, o->key.ins, &there);
		if (!there) /* seen good there: its clients would be cut */
			block(e, s, o, NULL, now);
	}
	for (i = 0; i < e->sources.cap; i++) {
		s = gd_tab_slot(&e->sources, i);
		if (s && !s->conns && !source_good(e, s, now)) {
			gd_tab_remove(&e->sources, s);
			i--; /* the slot may hold a moved entry now */
		}
	}
}

/* gd_decide_closes() - close the slow connections of listeners under pressure */
void gd_decide_closes(struct gd_engine *e, int64_t now)
{
	bool report = !strcmp(e->cfg->mode, "report");
	uint32_t budget[GD_LISTENERS_MAX] = { 0 };
	struct gd_listener *l;
	struct gd_conn *c;
	size_t i;

	for (i = 0; i < e->conns.cap; i++) {
		struct gd_action a = { .kind = GD_CLOSE, .reason = "slow" };

		c = gd_tab_slot(&e->conns, i);
		if (!c || !conn_offends(e, c))
			continue;
		/* Report mode: each connection is reported once, not every CLOSE_RETRY_MS. */
		if (c->t_close_sent && (now - c->t_close_sent < CLOSE_RETRY_MS || report))
			continue;
		l = gd_engine_listener(e, c->listener);
		if (budget[l - e->listeners] >= (uint32_t)e->cfg->close_max)
			continue;
		budget[l - e->listeners]++;
		l->closes++;
		c->t_close_sent = now;
		a.sock = c->id;
		a.addr = c->peer;
		mw_addr_format(&c->peer, a.target, sizeof(a.target));
		evidence(&a, "sock", c->id);
		evidence(&a, "age_ms", (uint64_t)(now - c->t_open));
		evidence(&a, "idle_ms", (uint64_t)(now - c->t_last));
		evidence(&a, "bytes_in", c->bytes_in);
		evidence(&a, "bytes_out", c->bytes_out);
		evidence(&a, "listener_port", l->local.port);
		emit(e, &a);
	}
}

/* gd_decide_expiry() - lift the blocks whose time is up */
void gd_decide_expiry(struct gd_engine *e, int64_t now)
{
	struct gd_block *b;
	size_t i;

	for (i = 0; i < e->blocks.cap; i++) {
		struct gd_action a = { .kind = GD_UNBLOCK, .reason = "expiry" };

		b = gd_tab_slot(&e->blocks, i);
		if (!b || b->until > now)
			continue;
		gd_addrkey_to(&a.addr, &b->key.addr);
		a.prefix_len = b->prefix_len;
		block_target(&a);
		a.sock = b->sock; /* lifted where it was placed */
		if (b->sock)
			evidence_ins(&a, b->sock);
		else
			evidence_text(&a, "ins", "all");
		evidence(&a, "expiry_s", (uint64_t)e->cfg->block_expiry_s);
		block_count(e, b->key.ins, false);
		gd_tab_remove(&e->blocks, b);
		i--;
		emit(e, &a);
	}
}

#define GD_INS_SHARES 64 /* INS told apart per listener (rotate); more are not candidates */

/* One INS's share of a listener's connections (rotate). */
struct ins_share {
	uint16_t ins;
	uint32_t held, slow;
};

static bool rotated_lately(const struct gd_engine *e, uint16_t ins)
{
	unsigned i, n = e->nrotated < GD_ROTATED_MAX ? e->nrotated : GD_ROTATED_MAX;

	for (i = 0; i < n; i++)
		if (e->rotated[i] == ins)
			return true;
	return false;
}

/* The INS holding most of @l's slow connections (then most held), not rotated lately. */
static bool attacked_ins(const struct gd_engine *e, const struct gd_listener *l,
			 struct ins_share *best)
{
	struct ins_share sh[GD_INS_SHARES] = { 0 };
	const struct gd_conn *c;
	size_t i, n = 0, k;
	uint64_t slow;

	*best = (struct ins_share){ 0 };
	for (i = 0; i < e->conns.cap; i++) {
		c = gd_tab_slot(&e->conns, i);
		if (!c || c->listener != l->id || !mw_sockid_valid(c->id) ||
		    rotated_lately(e, mw_sockid_ins(c->id)))
			continue;
		for (k = 0; k < n && sh[k].ins != mw_sockid_ins(c->id); k++)
			;
		if (k == n) {
			if (n == GD_INS_SHARES)
				continue;
			sh[n++] = (struct ins_share){ .ins = mw_sockid_ins(c->id) };
		}
		sh[k].held++;
		sh[k].slow += c->slow;
	}
	for (k = 0, slow = 0; k < n; k++) {
		slow += sh[k].slow;
		if (sh[k].slow > best->slow ||
		    (sh[k].slow && sh[k].slow == best->slow && sh[k].held > best->held))
			*best = sh[k];
	}
	/*
	 * Slow connections on the INS not rotated lately must make the pressure,
	 * and the one drained must hold a quarter of pressure_slow itself: a
	 * compromised INS can bring the listener under pressure with made-up
	 * connections (that progress, or a few slow ones), and the honest INS's
	 * few idle keep-alives would then have them drained, one after another.
	 */
	return slow >= (uint64_t)e->cfg->pressure_slow &&
	       (uint64_t)best->slow * 4 >= (uint64_t)e->cfg->pressure_slow;
}

/*
 * gd_decide_rotate() - with mw-balancer: a fresh INS, and the attacked one drained
 *
 * A listener under pressure since rotate_after_ms (an episode: pressure with no
 * calm_ms without it) makes the INS holding most of its slow connections drain
 * (if slow connections make the pressure, and that INS holds a quarter of
 * pressure_slow: attacked_ins())
 * while a fresh INS takes the new ones: at most once per rotate_interval_ms, never
 * twice the same INS (the last GD_ROTATED_MAX), never without balancer_socket.
 */
void gd_decide_rotate(struct gd_engine *e, int64_t now)
{
	const struct mw_guard_config *g = e->cfg;
	struct ins_share best;
	struct gd_listener *l;
	int i;

	if (!g->balancer_socket[0] ||
	    (e->nrotated && now - e->last_rotate < g->rotate_interval_ms))
		return;
	for (i = 0; i < e->nlisteners; i++) {
		struct gd_action a = { .kind = GD_ROTATE, .reason = "pressure" };

		l = &e->listeners[i];
		if (l->proto < 0 || !l->pressure || !l->episode ||
		    now - l->pressure_since < g->rotate_after_ms || !attacked_ins(e, l, &best))
			continue;
		e->rotated[e->nrotated++ % GD_ROTATED_MAX] = best.ins;
		e->last_rotate = now;
		a.ins = best.ins;
		a.sock = l->id;
		snprintf(a.target, sizeof(a.target), "ins:%u", best.ins);
		evidence(&a, "ins", best.ins);
		evidence(&a, "ins_held", best.held);
		evidence(&a, "ins_slow", best.slow);
		evidence(&a, "held", l->held);
		evidence(&a, "slow", l->slow);
		evidence(&a, "pressure_ms", (uint64_t)(now - l->pressure_since));
		evidence(&a, "listener_port", l->local.port);
		emit(e, &a);
		return;
	}
}

/**
 * gd_engine_unrotate() - the rotation of @ins did not happen (the spawn failed):
 * it may be chosen again once rotate_interval_ms has passed
 */
void gd_engine_unrotate(struct gd_engine *e, uint16_t ins)
{
	unsigned i, n = e->nrotated < GD_ROTATED_MAX ? e->nrotated : GD_ROTATED_MAX;

	for (i = 0; i < n; i++)
		if (e->rotated[i] == ins)
			e->rotated[i] = 0; /* no INS has id 0 */
}
