/* SPDX-License-Identifier: MIT */
/* engine.c - one decoded packet into the address, stream and port tables and the sketches */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "flowd/engine.h"
#include "flowd/fl_assert.h"

/*
 * Theory of operation: time is packet time (a pcap replays at its own pace,
 * as minflow's rminflow did).  Each packet updates the two addresses, its
 * stream and its server port in fixed tables (fl_ftab: full means the entry is
 * not tracked and the drop is counted), the per-second class counters, and
 * three Space-Saving sketches keyed by address, stream and port.  When the
 * packet clock enters a new second, the finished second is reported and idle
 * entries are collected; when it leaves a report interval, the interval's top
 * N and anomalies are reported and the per-interval state is reset.
 *
 * Who is the client: the sender of a SYN without ACK (or the receiver of a
 * SYN+ACK) when the stream starts with one, otherwise the side with the higher
 * port (the ephemeral one).  Connection attempts (a SYN without ACK, or a new
 * UDP stream) feed the initiator's distinct-peer and distinct-port
 * HyperLogLogs (destination addresses; destination ports), which the
 * anomaly report reads: many peers is a fan-out, many ports a port scan.
 */

#define CLOSED_LINGER_S 5 /* a closed stream stays for late ACKs before collection */
#define US_PER_S	1000000ULL
#define PROTO_TCP	6
#define PROTO_UDP	17

_Static_assert(sizeof(struct fl_conv_key) <= FL_TOPN_KEY_MAX, "conversation key fits the sketch");
_Static_assert(sizeof(struct fl_stream_key) == 40, "stream key has no hidden padding");

/**
 * fl_engine_init() - allocate every table and sketch from @cfg's maxima
 * @e:      engine
 * @cfg:    flowd section; must outlive @e
 * @out:    where JSON lines go
 * @sensor: its name in the reports; must outlive @e
 * @err:    one line on failure
 * @errlen: its size
 *
 * Return: 0, -EINVAL (bad inside CIDR) or -ENOMEM
 */
int fl_engine_init(struct fl_engine *e, const struct mw_flowd_config *cfg, FILE *out,
		   const char *sensor, char *err, size_t errlen)
{
	uint32_t m = (uint32_t)cfg->sketch_counters;
	int i, ret;

	memset(e, 0, sizeof(*e));
	e->cfg = cfg;
	e->out = out;
	e->sensor = sensor;
	for (i = 0; i < cfg->inside_count; i++) {
		if (mw_cidr_parse(&e->inside[i], cfg->inside[i])) {
			snprintf(err, errlen, "flowd.inside: \"%s\" is not a CIDR", cfg->inside[i]);
			return -EINVAL;
		}
	}
	e->ninside = cfg->inside_count;
	ret = fl_ftab_init(&e->addrs, (uint32_t)cfg->max_addresses, sizeof(struct fl_addr), 16);
	if (!ret)
		ret = fl_ftab_init(&e->streams, (uint32_t)cfg->max_streams,
				   sizeof(struct fl_stream), sizeof(struct fl_stream_key));
	if (!ret)
		ret = fl_ftab_init(&e->ports, (uint32_t)cfg->max_ports, sizeof(struct fl_port),
				   sizeof(struct fl_port_key));
	if (!ret)
		ret = fl_topn_init(&e->talkers, m, 16);
	if (!ret)
		ret = fl_topn_init(&e->convs, m, sizeof(struct fl_conv_key));
	if (!ret)
		ret = fl_topn_init(&e->apps, m, sizeof(struct fl_port_key));
	if (ret) {
		snprintf(err, errlen, "flow tables: %s", strerror(-ret));
		fl_engine_fini(e);
	}
	return ret;
}

/**
 * fl_engine_fini() - free the tables and sketches
 * @e: engine, initialised or zeroed
 */
void fl_engine_fini(struct fl_engine *e)
{
	fl_ftab_fini(&e->addrs);
	fl_ftab_fini(&e->streams);
	fl_ftab_fini(&e->ports);
	fl_topn_fini(&e->talkers);
	fl_topn_fini(&e->convs);
	fl_topn_fini(&e->apps);
}

/**
 * fl_inside() - is @addr in one of the inside networks?
 * @inside:  flowd.inside, parsed
 * @ninside: their number
 * @addr:    16 bytes, IPv4 mapped
 *
 * Return: true when it is
 */
bool fl_inside(const struct mw_cidr *inside, int ninside, const uint8_t addr[16])
{
	struct mw_addr a;
	int i;

	memset(&a, 0, sizeof(a));
	a.family = 6;
	memcpy(a.addr, addr, 16);
	for (i = 0; i < ninside; i++)
		if (mw_cidr_match(&inside[i], &a))
			return true;
	return false;
}

static bool engine_inside(const struct fl_engine *e, const uint8_t addr[16])
{
	return fl_inside(e->inside, e->ninside, addr);
}

static bool port_is_web(uint16_t port)
{
	return port == 80 || port == 443 || port == 8080;
}

/**
 * fl_class() - minflow's traffic class of a connection
 * @inside:      flowd.inside, parsed
 * @ninside:     their number
 * @client:      the client's address
 * @server:      the server's
 * @server_port: the server's port (web: 80, 443, 8080)
 *
 * Return: enum fl_class
 */
enum fl_class fl_class(const struct mw_cidr *inside, int ninside, const uint8_t *client,
		       const uint8_t *server, uint16_t server_port)
{
	bool ci = fl_inside(inside, ninside, client), si = fl_inside(inside, ninside, server);
	bool web = port_is_web(server_port);

	if (ci && si)
		return FL_CLS_INTERNAL;
	if (si)
		return web ? FL_CLS_INWEB : FL_CLS_IN;
	if (ci)
		return web ? FL_CLS_OUTWEB : FL_CLS_OUT;
	return FL_CLS_OTHER;
}

static enum fl_class engine_class(const struct fl_engine *e, const uint8_t *client,
				  const uint8_t *server, uint16_t server_port)
{
	return fl_class(e->inside, e->ninside, client, server, server_port);
}

static struct fl_addr *engine_addr(struct fl_engine *e, const uint8_t addr[16], uint64_t ts_us)
{
	bool created;
	struct fl_addr *a = fl_ftab_get(&e->addrs, addr, &created);

	if (a && created) {
		a->id = ++e->next_addr_id;
		a->first_us = ts_us;
		a->inside = engine_inside(e, addr);
	}
	if (a)
		a->last_us = ts_us;
	return a;
}

/* Canonical key; *@flipped is true when the packet's source is side b. */
static void stream_key(struct fl_stream_key *k, const struct fl_pkt *p, bool *flipped)
{
	int c = memcmp(p->src, p->dst, 16);

	memset(k, 0, sizeof(*k));
	*flipped = c > 0 || (c == 0 && p->sport > p->dport);
	memcpy(k->a, *flipped ? p->dst : p->src, 16);
	memcpy(k->b, *flipped ? p->src : p->dst, 16);
	k->pa = *flipped ? p->dport : p->sport;
	k->pb = *flipped ? p->sport : p->dport;
	k->proto = p->proto;
}

/* Is the packet's sender the client of a stream it starts? */
static bool sender_starts(const struct fl_pkt *p)
{
	uint8_t syn_ack = p->tcp_flags & (FL_TCP_SYN | FL_TCP_ACK);

	if (p->proto == PROTO_TCP && syn_ack == FL_TCP_SYN)
		return true;
	if (p->proto == PROTO_TCP && syn_ack == (FL_TCP_SYN | FL_TCP_ACK))
		return false;
	return p->sport >= p->dport;
}

static void stream_count_addr(struct fl_engine *e, struct fl_stream *s, int side)
{
	struct fl_addr *a = fl_ftab_find(&e->addrs, side ? s->key.b : s->key.a);

	if (a) {
		a->streams++;
		s->counted |= (uint8_t)(1u << side);
	}
}

static void engine_attempt(struct fl_engine *e, struct fl_addr *client, const struct fl_pkt *p)
{
	if (!client)
		return;
	client->attempts++;
	fl_hll_add(&client->peers, fl_hash(fl_salt(), p->dst, 16));
	fl_hll_add(&client->ports, fl_hash(fl_salt(), &p->dport, sizeof(p->dport)));
}

static struct fl_stream *engine_stream(struct fl_engine *e, const struct fl_pkt *p, uint64_t ts_us,
				       bool *from_client, struct fl_addr *src)
{
	struct fl_stream_key k;
	struct fl_stream *s;
	bool flipped, created;

	stream_key(&k, p, &flipped);
	s = fl_ftab_get(&e->streams, &k, &created);
	if (!s)
		return NULL;
	if (created) {
		bool starts = sender_starts(p);

		s->id = ++e->next_stream_id;
		s->first_us = ts_us;
		/* The client is the sender (side a unless flipped) when it starts. */
		s->client = (uint8_t)(starts ? flipped : !flipped);
		s->cls = (uint8_t)(starts ? engine_class(e, p->src, p->dst, p->dport)
					  : engine_class(e, p->dst, p->src, p->sport));
		stream_count_addr(e, s, 0);
		stream_count_addr(e, s, 1);
		if (p->proto == PROTO_UDP && starts)
			engine_attempt(e, src, p);
	}
	s->last_us = ts_us;
	*from_client = (uint8_t)flipped == s->client;
	return s;
}

/* A RST from the server before it sent any SYN: the port was closed. */
static void stream_flags(struct fl_engine *e, struct fl_stream *s, bool from_client,
			 uint8_t tcp_flags)
{
	int dir = from_client ? 0 : 1;

	s->flags[dir] |= tcp_flags;
	if (tcp_flags & FL_TCP_RST) {
		s->closed = true;
		if (!from_client && !(s->flags[1] & FL_TCP_SYN) && (s->flags[0] & FL_TCP_SYN) &&
		    !s->rejected) {
			struct fl_addr *c =
				fl_ftab_find(&e->addrs, s->client ? s->key.b : s->key.a);

			s->rejected = true;
			if (c)
				c->rejected++;
		}
	}
	if ((s->flags[0] & FL_TCP_FIN) && (s->flags[1] & FL_TCP_FIN))
		s->closed = true;
}

static void engine_port(struct fl_engine *e, uint8_t proto, uint16_t port, uint32_t bytes,
			bool new_stream)
{
	struct fl_port_key k = { .port = port, .proto = proto };
	bool created;
	struct fl_port *pt = fl_ftab_get(&e->ports, &k, &created);

	fl_topn_add(&e->apps, &k, bytes);
	if (!pt)
		return;
	pt->pkts++;
	pt->bytes += bytes;
	pt->streams += new_stream;
}

static void engine_account(struct fl_engine *e, const struct fl_pkt *p, uint64_t ts_us,
			   uint32_t bytes)
{
	struct fl_addr *src = engine_addr(e, p->src, ts_us);
	struct fl_addr *dst = engine_addr(e, p->dst, ts_us);
	uint64_t before = e->next_stream_id;
	struct fl_conv_key ck;
	struct fl_stream *s;
	bool from_client;
	enum fl_class cls;
	uint16_t server_port;

	if (src) {
		src->tx_pkts++;
		src->tx_bytes += bytes;
	}
	if (dst) {
		dst->rx_pkts++;
		dst->rx_bytes += bytes;
	}
	if (p->proto == PROTO_TCP && (p->tcp_flags & (FL_TCP_SYN | FL_TCP_ACK)) == FL_TCP_SYN)
		engine_attempt(e, src, p);
	s = engine_stream(e, p, ts_us, &from_client, src);
	memset(&ck, 0, sizeof(ck));
	if (s) {
		int dir = from_client ? 0 : 1;

		s->pkts[dir]++;
		s->bytes[dir] += bytes;
		/* What the header claims, never more than the wire carried (IPFIX's octets) */
		s->ip_bytes[dir] += p->ip_len < bytes ? p->ip_len : bytes;
		if (p->proto == PROTO_TCP)
			stream_flags(e, s, from_client, p->tcp_flags);
		cls = (enum fl_class)s->cls;
		server_port = s->client ? s->key.pa : s->key.pb;
		ck.k = s->key;
		ck.k.pad[0] = s->client;
		ck.id = s->id;
	} else {
		bool flipped, starts = sender_starts(p);

		cls = starts ? engine_class(e, p->src, p->dst, p->dport)
			     : engine_class(e, p->dst, p->src, p->sport);
		server_port = starts ? p->dport : p->sport;
		stream_key(&ck.k, p, &flipped);
		ck.k.pad[0] = (uint8_t)(starts ? flipped : !flipped);
	}
	e->second[cls].pkts++;
	e->second[cls].bytes += bytes;
	e->interval.pkts++;
	e->interval.bytes += bytes;
	fl_topn_add(&e->talkers, p->src, bytes);
	fl_topn_add(&e->convs, &ck, bytes);
	engine_port(e, p->proto, p->has_ports ? server_port : 0, bytes,
		    e->next_stream_id != before);
}

/**
 * fl_engine_packet() - account one captured frame
 * @e:       engine
 * @ts_us:   capture time, microseconds since the epoch
 * @frame:   the frame from its Ethernet header
 * @caplen:  bytes captured
 * @wirelen: bytes on the wire (what the byte counters add)
 */
void fl_engine_packet(struct fl_engine *e, uint64_t ts_us, const uint8_t *frame, size_t caplen,
		      uint32_t wirelen)
{
	struct fl_pkt p;
	enum fl_decode_result r;

	fl_engine_tick(e, ts_us / US_PER_S);
	e->frames++;
	r = fl_decode_ether(&p, frame, caplen);
	if (r == FL_DECODE_NOT_IP) {
		e->not_ip++;
		return;
	}
	if (r != FL_DECODE_OK) {
		e->malformed++;
		return;
	}
	engine_account(e, &p, ts_us, wirelen);
}

static void engine_gc_streams(struct fl_engine *e, uint64_t now_us)
{
	uint64_t idle = (uint64_t)e->cfg->stream_idle_s * US_PER_S;
	uint64_t linger = CLOSED_LINGER_S * US_PER_S;
	uint32_t n;

	for (n = 0; n < e->streams.cap; n++) {
		struct fl_stream *s = fl_ftab_at(&e->streams, n);
		int side;

		if (!s || s->last_us + (s->closed && linger < idle ? linger : idle) > now_us)
			continue;
		for (side = 0; side < 2; side++) {
			struct fl_addr *a;

			if (!(s->counted & (1u << side)))
				continue;
			a = fl_ftab_find(&e->addrs, side ? s->key.b : s->key.a);
			FL_ASSERT(a && a->streams > 0);
			a->streams--;
		}
		if (e->ipfix)
			fl_ipfix_stream(e->ipfix, s, now_us / US_PER_S);
		fl_ftab_del(&e->streams, s);
	}
}

/**
 * fl_engine_gc() - collect idle streams, then addresses left with none
 * @e:     engine
 * @now_s: packet-time second
 */
void fl_engine_gc(struct fl_engine *e, uint64_t now_s)
{
	uint64_t now_us = now_s * US_PER_S;
	uint64_t idle = (uint64_t)e->cfg->address_idle_s * US_PER_S;
	uint32_t n;

	engine_gc_streams(e, now_us);
	for (n = 0; n < e->addrs.cap; n++) {
		struct fl_addr *a = fl_ftab_at(&e->addrs, n);

		if (a && !a->streams && a->last_us + idle <= now_us)
			fl_ftab_del(&e->addrs, a);
	}
}

/**
 * fl_engine_tick() - move the report clock to @now_s
 * @e:     engine
 * @now_s: packet time (offline) or wall-clock time (live, once a second)
 *
 * A finished second is reported and followed by collection; a finished
 * interval is reported.  Time that goes backwards counts in the current second.
 */
void fl_engine_tick(struct fl_engine *e, uint64_t now_s)
{
	uint64_t len = (uint64_t)e->cfg->report_interval_s;

	if (!e->sec) {
		e->sec = now_s;
		e->interval_start = now_s - now_s % len;
		return;
	}
	if (now_s <= e->sec)
		return;
	fl_report_second(e);
	fl_engine_gc(e, now_s);
	if (e->ipfix)
		fl_ipfix_flush(e->ipfix);
	if (now_s >= e->interval_start + len) {
		fl_report_interval(e, e->interval_start + len, false);
		e->interval_start = now_s - now_s % len;
	}
	e->sec = now_s;
}

/**
 * fl_engine_flush() - end of input: report the last second and the partial interval,
 * and export every stream still in the table
 * @e: engine
 */
void fl_engine_flush(struct fl_engine *e)
{
	uint32_t n;

	if (!e->sec)
		return;
	/* Streams still open at the end of the input are exported as they are. */
	for (n = 0; e->ipfix && n < e->streams.cap; n++) {
		const struct fl_stream *s = fl_ftab_at(&e->streams, n);

		if (s)
			fl_ipfix_stream(e->ipfix, s, e->sec);
	}
	if (e->ipfix)
		fl_ipfix_flush(e->ipfix);
	fl_report_second(e);
	fl_report_interval(e, e->sec + 1, true);
}
