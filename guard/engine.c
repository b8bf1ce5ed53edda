/* SPDX-License-Identifier: MIT */
/* engine.c - mw-guard's model of the app: listeners, connections and sources from the stream */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "guard/guard.h"

/*
 * Theory of operation
 *
 * The engine sees the Netflow observations of one mw-pvm (or a balancer's merged
 * stream) and keeps, in tables fixed at start:
 *   - listeners: a bind on a configured port, or the listener of an accept;
 *   - connections: from the accept (its id is the accept's extra) to the close,
 *     with cumulative bytes in and out and the time of the last byte either way;
 *   - sources: per peer address, its open connections and when, and on which
 *     INS, one of them last made progress or ended well (the NAT rule: such an
 *     address is not blocked on that INS, decide.c).
 * Each INS's connections are counted, and a full table makes room for an INS under
 * half of it; a full source table, for a new source (conn_victim(), source_victim()).
 * Observations only update this state (O(1), no allocation). Every tick the
 * engine classifies each connection (decide.c) and takes its decisions; each is
 * handed to the emit callback (action.c logs, counts and sends it). Time is the
 * caller's monotonic milliseconds, so the unit tests drive it.
 */

/* The protocol guard.listeners gives @port, or -1 (not protected). */
static int port_proto(const struct gd_engine *e, uint16_t port)
{
	int j;

	for (j = 0; j < e->pol.nports; j++)
		if (e->pol.ports[j] == port)
			return e->pol.protos[j];
	return -1;
}

/**
 * gd_engine_configure() - (re)read the policy: listeners and allow-list
 * @e:   the engine
 * @cfg: the guard section (kept by pointer: it must outlive the engine or the next call)
 * Return: 0, or -EINVAL with @err set (the old policy is kept)
 */
int gd_engine_configure(struct gd_engine *e, const struct mw_guard_config *cfg, char *err,
			size_t errlen)
{
	struct gd_policy pol = { 0 };
	int i;

	for (i = 0; i < cfg->listeners_count; i++) {
		if (mw_guard_listener_parse(cfg->listeners[i], &pol.ports[i], &pol.protos[i])) {
			snprintf(err, errlen, "guard.listeners: \"%s\" is not PORT:PROTO",
				 cfg->listeners[i]);
			return -EINVAL;
		}
	}
	pol.nports = cfg->listeners_count;
	for (i = 0; i < cfg->allow_count; i++) {
		if (mw_cidr_parse(&pol.allow[i], cfg->allow[i])) {
			snprintf(err, errlen, "guard.allow: \"%s\" is not ip/prefix",
				 cfg->allow[i]);
			return -EINVAL;
		}
	}
	pol.nallow = cfg->allow_count;
	e->pol = pol;
	e->cfg = cfg;
	/* A port added or removed takes effect on the listeners already known. */
	for (i = 0; i < e->nlisteners; i++)
		e->listeners[i].proto = port_proto(e, e->listeners[i].local.port);
	return 0;
}

/*
 * Prefixes counted at one evaluation (decide.c): one of an INS per offence (an
 * address on an INS with a slow connection: max_conns at most), one of any INS per
 * offending source (no more sources than connections), so no count is left out.
 */
static size_t prefixes_max(const struct mw_guard_config *cfg)
{
	size_t conns = (size_t)cfg->max_conns, sources = (size_t)cfg->max_sources;

	return conns + (sources < conns ? sources : conns);
}

/**
 * gd_engine_init() - allocate the tables from the configured maxima
 * @emit: called with every decision, @ctx its first argument
 * Return: 0, -ENOMEM or -EINVAL, with @err set
 */
int gd_engine_init(struct gd_engine *e, const struct mw_guard_config *cfg, gd_emit_fn *emit,
		   void *ctx, char *err, size_t errlen)
{
	int ret;

	memset(e, 0, sizeof(*e));
	e->emit = emit;
	e->emit_ctx = ctx;
	ret = gd_engine_configure(e, cfg, err, errlen);
	if (ret)
		return ret;
	if (gd_tab_init(&e->conns, (size_t)cfg->max_conns, sizeof(struct gd_conn),
			sizeof(uint64_t)) ||
	    gd_tab_init(&e->sources, (size_t)cfg->max_sources, sizeof(struct gd_source),
			sizeof(struct gd_addrkey)) ||
	    gd_tab_init(&e->blocks, (size_t)cfg->max_blocks, sizeof(struct gd_block),
			sizeof(struct gd_scope)) ||
	    gd_tab_init(&e->prefixes, prefixes_max(cfg), sizeof(struct gd_prefix),
			sizeof(struct gd_scope)) ||
	    gd_tab_init(&e->offences, (size_t)cfg->max_conns, sizeof(struct gd_offence),
			sizeof(struct gd_scope)) ||
	    gd_tab_init(&e->ins_blocks, (size_t)cfg->max_blocks, sizeof(struct gd_ins_count),
			sizeof(uint32_t)) ||
	    gd_tab_init(&e->ins_conns, (size_t)cfg->max_conns, sizeof(struct gd_ins_count),
			sizeof(uint32_t))) {
		gd_engine_fini(e);
		snprintf(err, errlen, "out of memory for guard.max_conns %d / max_sources %d",
			 cfg->max_conns, cfg->max_sources);
		return -ENOMEM;
	}
	return 0;
}

void gd_engine_fini(struct gd_engine *e)
{
	gd_tab_free(&e->conns);
	gd_tab_free(&e->sources);
	gd_tab_free(&e->blocks);
	gd_tab_free(&e->prefixes);
	gd_tab_free(&e->offences);
	gd_tab_free(&e->ins_blocks);
	gd_tab_free(&e->ins_conns);
}

/* gd_engine_reset() - the stream was lost: forget listeners, connections, sources (not blocks) */
void gd_engine_reset(struct gd_engine *e)
{
	gd_tab_clear(&e->conns);
	gd_tab_clear(&e->sources);
	gd_tab_clear(&e->ins_conns);
	e->nidle = 0;
	e->nlisteners = 0;
}

/* gd_engine_allowed() - is @a in guard.allow (never closed nor blocked)? */
bool gd_engine_allowed(const struct gd_engine *e, const struct mw_addr *a)
{
	int i;

	for (i = 0; i < e->pol.nallow; i++)
		if (mw_cidr_match(&e->pol.allow[i], a))
			return true;
	return false;
}

/**
 * gd_engine_set_ins_net() - the balancer's subnet (balancer.subnet), or "" for none
 *
 * Its addresses are the balancer's bridge and its INS.  Through the splice front end
 * without PROXY v2 every client arrives from the bridge address: blocking it would
 * refuse every client and the balancer's health checks, and the per-source levers would
 * count every client as one.  Such an address is treated as a NAT that never ends.
 * Return: 0, or -EINVAL (the old subnet is kept)
 */
int gd_engine_set_ins_net(struct gd_engine *e, const char *subnet)
{
	struct mw_cidr net;

	if (!subnet || !subnet[0]) {
		e->has_ins_net = false;
		return 0;
	}
	if (mw_cidr_parse(&net, subnet))
		return -EINVAL;
	e->ins_net = net;
	e->has_ins_net = true;
	return 0;
}

/* gd_engine_ins_net() - is @a one of the balancer's own addresses? */
bool gd_engine_ins_net(const struct gd_engine *e, const struct mw_addr *a)
{
	return e->has_ins_net && mw_cidr_match(&e->ins_net, a);
}

static struct gd_listener *listener_find(struct gd_engine *e, uint64_t id)
{
	int i;

	for (i = 0; i < e->nlisteners; i++)
		if (e->listeners[i].id == id)
			return &e->listeners[i];
	return NULL;
}

static void listener_forget(struct gd_engine *e, struct gd_listener *l)
{
	*l = e->listeners[--e->nlisteners];
}

/* Is @a a better listener to give up than @b (NULL: none yet)? */
static bool victim_better(const struct gd_listener *a, const struct gd_listener *b)
{
	if (!b)
		return true;
	if (a->accepted != b->accepted)
		return !a->accepted;
	return a->t_active < b->t_active;
}

/*
 * The listener to give up for a protected one when the table is full: one
 * that is not protected (shown only, no connection of it is kept), else a
 * protected one with no connection in the table and no pressure episode
 * (its levers would stay on at the INS): one only bound first, then the one
 * idle longest (first seen, or its last accept, longest ago).  Anyone may
 * bind a protected port on another address (IP_FREEBIND) and connect to it.
 * None if every one is busy.
 */
static struct gd_listener *listener_victim(struct gd_engine *e)
{
	struct gd_listener *l, *best = NULL;
	int i;

	for (i = 0; i < e->nlisteners; i++) {
		l = &e->listeners[i];
		if (l->proto < 0)
			return l;
		if (!l->nconns && !l->levers && !l->episode && victim_better(l, best))
			best = l;
	}
	return best;
}

/*
 * The listener @id, added (and given its baseline) on first sight.  When the
 * table is full, a protected listener takes the place of listener_victim():
 * any local user may open listeners through mw-pvm, and theirs must not keep
 * the app's out.
 */
static struct gd_listener *listener_see(struct gd_engine *e, uint64_t id,
					const struct mw_addr *local, int64_t now)
{
	struct gd_listener *l = listener_find(e, id);
	int proto = port_proto(e, local->port);

	if (l)
		return l;
	if (e->nlisteners == GD_LISTENERS_MAX) {
		l = proto >= 0 ? listener_victim(e) : NULL;
		e->st.listener_drops++;
		if (!l)
			return NULL;
		listener_forget(e, l);
	}
	l = &e->listeners[e->nlisteners++];
	memset(l, 0, sizeof(*l));
	l->id = id;
	l->local = *local;
	l->proto = proto;
	l->t_active = now;
	gd_decide_baseline(e, l);
	return l;
}

/* A moving mean over about 8 samples (the first sample taken as is). */
static void mean_add(uint32_t *mean, uint32_t v)
{
	*mean = *mean ? (uint32_t)(((uint64_t)*mean * 7 + v) / 8) : (v ? v : 1);
}

/* An accept's wait: from the connection's creation (ts_session_start) to the accept. */
static uint32_t accept_latency_ms(const struct mw_nf_info *in)
{
	int64_t ms = ((int64_t)in->ts_curr.sec - (int64_t)in->ts_session_start.sec) * 1000 +
		     ((int64_t)in->ts_curr.ns - (int64_t)in->ts_session_start.ns) / 1000000;

	if (!in->ts_session_start.sec || ms < 0)
		return 0;
	return ms > 3600000 ? 3600000 : (uint32_t)ms;
}

/*
 * Shares of the tables.  A compromised INS reports as many made-up connections from
 * as many addresses as mw-pvm lets it hold (ins_max_conns, as many as max_conns by
 * default): filling the tables, it would leave the attackers on the other INS
 * untracked, never closed nor blocked.  So:
 *   - connections: when the table is full, an INS takes the room of a connection of
 *     the INS holding the most of those looked at, if that one holds at least two
 *     more than it (evicted: counted in @evictions): the INS that need room end with
 *     equal shares, whatever a liar holds under how many ids; an INS alone may fill
 *     the table.  The INS holding the most holds at least its share of the slots (a
 *     table has two to four times its maximum), so GD_EVICT_PROBES slots from a
 *     moving cursor meet it but for a small chance (then the new entry is dropped
 *     and counted, as before);
 *   - sources: one with connections is never evicted, and there are no more of them
 *     than connections (max_sources >= max_conns, the default, leaves an INS its
 *     share of the sources with its share of the connections); when the table is
 *     full, a new source takes the room of one without connections, kept only for
 *     its good evidence: one whose evidence is stale first, else the least recently
 *     good of those looked at, the last ones left without connections (@idle)
 *     first.
 */
#define GD_EVICT_PROBES 64

/* A connection of the INS holding the most of those probed, if 2 more than @mine. */
static struct gd_conn *conn_victim(struct gd_engine *e, uint32_t mine)
{
	struct gd_conn *c, *best = NULL;
	uint32_t ins, last = GD_INS_ALL, n = 0, most = mine + 1;
	int i;

	for (i = 0; i < GD_EVICT_PROBES; i++) {
		e->conns.cursor = (e->conns.cursor + 1) & (e->conns.cap - 1);
		c = gd_tab_slot(&e->conns, e->conns.cursor);
		if (!c)
			continue;
		ins = gd_ins_key(c->id);
		if (ins != last) {
			last = ins;
			n = gd_ins_count_get(&e->ins_conns, ins);
		}
		if (n > most) {
			most = n;
			best = c;
		}
	}
	return best;
}

/* Is the good evidence of @s older than good_memory_ms (or none)? */
static bool stale(const struct gd_engine *e, const struct gd_source *s, int64_t now)
{
	return !s->last_good || now - s->last_good >= e->cfg->good_memory_ms;
}

/* Is @s without connections, and a better one to evict than @best? */
static bool idle_better(const struct gd_source *s, const struct gd_source *best)
{
	return s && !s->conns && (!best || s->last_good < best->last_good);
}

/*
 * A source without connections: one whose good evidence is stale, else the least
 * recently good of the last left without connections and of those probed.
 */
static struct gd_source *source_victim(struct gd_engine *e, int64_t now)
{
	struct gd_source *s, *best = NULL;
	int i;

	while (e->nidle && !best) {
		e->nidle--;
		s = gd_tab_find(&e->sources, &e->idle[--e->idle_top % GD_IDLE_KEEP]);
		if (idle_better(s, best))
			best = s;
	}
	if (best && stale(e, best, now))
		return best;
	for (i = 0; i < GD_EVICT_PROBES; i++) {
		e->sources.cursor = (e->sources.cursor + 1) & (e->sources.cap - 1);
		s = gd_tab_slot(&e->sources, e->sources.cursor);
		if (!idle_better(s, best))
			continue;
		if (stale(e, s, now))
			return s;
		best = s;
	}
	return best;
}

/*
 * Forget connection @c: its INS's share, and its source's count (@s, or found) if it
 * counts there (not @c->sourceless).
 */
static void conn_remove(struct gd_engine *e, struct gd_conn *c, struct gd_source *s)
{
	struct gd_listener *l;
	struct gd_addrkey key;

	gd_addrkey_from(&key, &c->peer);
	if (!s && !c->sourceless)
		s = gd_tab_find(&e->sources, &key);
	if (!c->sourceless && s && s->conns && !--s->conns) {
		e->idle[e->idle_top++ % GD_IDLE_KEEP] = key; /* over the oldest when full */
		if (e->nidle < GD_IDLE_KEEP)
			e->nidle++;
	}
	l = listener_find(e, c->listener);
	if (l && l->nconns)
		l->nconns--;
	gd_ins_count_add(&e->ins_conns, gd_ins_key(c->id), false);
	gd_tab_remove(&e->conns, c);
}

/* A new entry for connection @id, in the share of its INS; NULL: no room. */
static struct gd_conn *conn_insert(struct gd_engine *e, uint64_t id)
{
	uint32_t ins = gd_ins_key(id);
	struct gd_conn *c;

	if (e->conns.n >= e->conns.max &&
	    (c = conn_victim(e, gd_ins_count_get(&e->ins_conns, ins)))) {
		conn_remove(e, c, NULL);
		e->conns.evictions++;
	}
	c = gd_tab_insert(&e->conns, &id);
	if (c)
		gd_ins_count_add(&e->ins_conns, ins, true);
	return c;
}

/**
 * gd_engine_source() - the source @key, made if new (the caller adds its connection)
 * @count_drop: count a source there is no room for in sources.drops
 * Return: the source, or NULL: no room
 */
struct gd_source *gd_engine_source(struct gd_engine *e, const struct gd_addrkey *key, int64_t now,
				   bool count_drop)
{
	struct gd_source *s = gd_tab_find(&e->sources, key);

	if (s)
		return s;
	if (e->sources.n >= e->sources.max) {
		s = source_victim(e, now);
		if (!s) {
			e->sources.drops += count_drop;
			return NULL;
		}
		gd_tab_remove(&e->sources, s);
		e->sources.evictions++;
	}
	return gd_tab_insert(&e->sources, key);
}

static void conn_accept(struct gd_engine *e, const struct mw_nf_info *in, int64_t now)
{
	struct gd_listener *l;
	struct gd_addrkey key;
	struct gd_source *s;
	struct mw_addr local, peer;
	struct gd_conn *c;

	e->st.accepts++;
	if (mw_nf_endpoint_to_addr(&in->pvm, &local) || mw_nf_endpoint_to_addr(&in->remote, &peer))
		return;
	l = listener_see(e, in->sockfd, &local, now);
	/*
	 * Only a protected listener's connections are kept: the others are never
	 * acted on, and in the shared table they would take the room of the
	 * protected ones (an attacker's idle connections on any other port).
	 */
	if (!l || l->proto < 0)
		return;
	c = gd_tab_find(&e->conns, &in->extra);
	if (c)
		return; /* seen twice (a merged stream): keep the first */
	l->t_active = now;
	l->accepted = true;
	mean_add(&l->accept_ms, accept_latency_ms(in));
	c = conn_insert(e, in->extra);
	if (!c)
		return; /* counted in conns.drops */
	l->nconns++;
	c->listener = in->sockfd;
	c->peer = peer;
	c->t_open = c->t_last = c->t_win = now;
	gd_addrkey_from(&key, &peer);
	s = gd_engine_source(e, &key, now, true);
	c->sourceless = !s; /* counted at a later evaluation */
	if (s)
		s->conns++;
}

static void conn_bytes(struct gd_engine *e, const struct mw_nf_info *in, int64_t now)
{
	struct gd_conn *c = gd_tab_find(&e->conns, &in->sockfd);

	if (!c)
		return;
	if (in->bytes_in > c->bytes_in || in->bytes_out > c->bytes_out)
		c->t_last = now;
	if (in->bytes_in > c->bytes_in)
		c->bytes_in = in->bytes_in;
	if (in->bytes_out > c->bytes_out)
		c->bytes_out = in->bytes_out;
	if (c->bytes_out && !c->answered) {
		struct gd_listener *l = listener_find(e, c->listener);

		c->answered = true;
		if (l)
			mean_add(&l->response_ms, (uint32_t)(now - c->t_open));
	}
}

static void conn_close(struct gd_engine *e, const struct mw_nf_info *in, int64_t now)
{
	struct gd_conn *c = gd_tab_find(&e->conns, &in->sockfd);
	struct gd_listener *l;
	struct gd_addrkey key;
	struct gd_source *s;

	if (!c) {
		l = listener_find(e, in->sockfd);
		if (l)
			listener_forget(e, l);
		return;
	}
	conn_bytes(e, in, now);
	gd_addrkey_from(&key, &c->peer);
	s = gd_tab_find(&e->sources, &key);
	/* An exchange that ended by itself, not slowly: this address has good clients. */
	if (s && !c->t_close_sent && c->bytes_in && c->bytes_out && !gd_conn_is_slow(e, c, now)) {
		s->last_done = now;
		gd_source_good(e, s, c->id, now);
	}
	conn_remove(e, c, s);
}

/**
 * gd_engine_forget() - @id is no longer open (the server says so): drop it
 * Heals the model when the close observation was dropped (a consumer queue
 * overflow in the server): the connection would otherwise count as held forever.
 */
void gd_engine_forget(struct gd_engine *e, uint64_t id)
{
	struct gd_conn *c = gd_tab_find(&e->conns, &id);

	if (c)
		conn_remove(e, c, NULL);
}

/**
 * gd_engine_observe() - account one observation
 * @now: monotonic milliseconds
 */
void gd_engine_observe(struct gd_engine *e, const struct mw_nf_info *in, int64_t now)
{
	struct mw_addr local;

	e->st.observations++;
	switch (in->obs) {
	case MW_NF_OBS_BIND:
		if (!mw_nf_endpoint_to_addr(&in->pvm, &local) && local.port &&
		    port_proto(e, local.port) >= 0)
			listener_see(e, in->sockfd, &local, now);
		break;
	case MW_NF_OBS_ACCEPT:
		conn_accept(e, in, now);
		break;
	case MW_NF_OBS_RECV:
	case MW_NF_OBS_SEND:
		conn_bytes(e, in, now);
		break;
	case MW_NF_OBS_CLOSE:
		conn_close(e, in, now);
		break;
	default:
		break;
	}
}

/**
 * gd_engine_tick() - evaluate: classify connections, measure pressure, decide
 * @now: monotonic milliseconds
 */
void gd_engine_tick(struct gd_engine *e, int64_t now)
{
	int i;

	gd_decide_expiry(e, now);
	for (i = 0; i < e->nlisteners; i++) {
		if (!e->listeners[i].baseline)
			gd_decide_baseline(e, &e->listeners[i]); /* a port added by a reload */
		e->listeners[i].held = e->listeners[i].slow = 0;
	}
	gd_decide_classify(e, now);
	for (i = 0; i < e->nlisteners; i++)
		gd_decide_listener(e, &e->listeners[i], now);
	gd_decide_rotate(e, now);
	gd_decide_closes(e, now);
	gd_decide_sources(e, now);
}

/* The listener @id, or NULL (for decide.c). */
struct gd_listener *gd_engine_listener(struct gd_engine *e, uint64_t id)
{
	return listener_find(e, id);
}
