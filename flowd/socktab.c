/* SPDX-License-Identifier: MIT */
/* socktab.c - Netflow observations into the socket table; talkers and the "sockets" report line */
#include <errno.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <string.h>

#include "flowd/engine.h"
#include "flowd/sockframe.h"
#include "flowd/socktab.h"

/*
 * Theory of operation: mw-pvm (or a balancer's merged stream) observes the
 * app's own sockets: accept and connect open a connection, recv and send
 * carry the app's cumulative byte counters, close ends it.  Each connection
 * is one entry of a fixed table keyed by its 64-bit socket id (full: the new
 * socket is not tracked, the drop is counted).  Counters are cumulative on
 * the wire, so an observation lost or reordered costs nothing: a counter only
 * moves up.  At the end of each report interval the sockets observed in it
 * (and those closed) are listed with the app's bytes in and out, the bytes of
 * the interval (cumulative minus what was reported before) feed a Space-Saving
 * sketch keyed by the peer address (the socket talkers), and closed sockets
 * leave the table.  An open socket not observed for stream_idle_s is
 * collected (its bytes of the interval still count).
 *
 * Every observation that moves a counter adds the increase to the current
 * second's class (minflow's in/out/inweb/outweb/internal, the app's side being
 * the server of an accepted socket), and a line per second is written.  A
 * connection leaving the table (closed, collected, lost with the stream) is
 * exported as IPFIX, one record per direction that moved bytes.  MAPI flows
 * over the sensor get each record as a header-only frame (sockframe.c).
 */

static const char *const kind_names[] = {
	[FL_SOCK_ACCEPTED] = "accepted",
	[FL_SOCK_CONNECTED] = "connected",
	[FL_SOCK_SEEN] = "seen",
};

/**
 * fl_socks_init() - allocate the table (flowd.max_sockets) and the talkers' sketch
 * @s:      socket table
 * @cfg:    flowd section; must outlive @s
 * @out:    where the report lines go
 * @sensor: its name in the report; must outlive @s
 * @err:    one line on failure
 * @errlen: its size
 *
 * Return: 0 or -ENOMEM
 */
int fl_socks_init(struct fl_socks *s, const struct mw_flowd_config *cfg, FILE *out,
		  const char *sensor, char *err, size_t errlen)
{
	int ret;

	int i;

	memset(s, 0, sizeof(*s));
	s->cfg = cfg;
	s->out = out;
	s->sensor = sensor;
	for (i = 0; i < cfg->inside_count; i++) {
		if (mw_cidr_parse(&s->inside[i], cfg->inside[i])) {
			snprintf(err, errlen, "flowd.inside: \"%s\" is not a CIDR", cfg->inside[i]);
			return -EINVAL;
		}
	}
	s->ninside = cfg->inside_count;
	ret = fl_ftab_init(&s->tab, (uint32_t)cfg->max_sockets, sizeof(struct fl_sock),
			   sizeof(uint64_t));
	if (!ret)
		ret = fl_topn_init(&s->talkers, (uint32_t)cfg->sketch_counters, 16);
	if (ret) {
		snprintf(err, errlen, "socket table: %s", strerror(-ret));
		fl_socks_fini(s);
	}
	return ret;
}

void fl_socks_fini(struct fl_socks *s)
{
	fl_ftab_fini(&s->tab);
	fl_topn_fini(&s->talkers);
}

/* An endpoint as 16 bytes (IPv4 mapped) and a port; af 0 leaves them alone.  Return: changed */
static bool sock_endpoint(const struct mw_nf_endpoint *e, uint8_t addr[16], uint16_t *port,
			  uint8_t *af)
{
	uint8_t a[16] = { [10] = 0xff, [11] = 0xff };
	bool changed;

	if (e->af == 4)
		memcpy(a + 12, e->addr, 4);
	else if (e->af == 6)
		memcpy(a, e->addr, 16);
	else
		return false;
	changed = *af != e->af || *port != e->port || memcmp(addr, a, 16);
	*af = (uint8_t)e->af;
	memcpy(addr, a, 16);
	*port = e->port;
	return changed;
}

/* The interval's bytes of @k into the talkers, and remember what was counted. */
static void sock_account(struct fl_socks *s, struct fl_sock *k)
{
	uint64_t delta = (k->bytes_in - k->rep_in) + (k->bytes_out - k->rep_out);

	if (delta)
		fl_topn_add(&s->talkers, k->remote, delta);
	k->rep_in = k->bytes_in;
	k->rep_out = k->bytes_out;
}

/* The connection leaves the table: its interval bytes to the talkers, its records to IPFIX. */
static void sock_leave(struct fl_socks *s, struct fl_sock *k, uint64_t now_s)
{
	struct fl_ipfix_rec r = {
		.src = k->local, .dst = k->remote, .sport = k->lport, .dport = k->rport,
		.proto = 6, .bytes = k->bytes_out, .start_ms = k->first_s * 1000,
		.end_ms = k->last_s * 1000,
	};

	sock_account(s, k);
	if (s->ipfix && s->ipfix->fd >= 0 && k->af) {
		if (k->bytes_out || !k->bytes_in)
			fl_ipfix_record(s->ipfix, &r, now_s);
		if (k->bytes_in) {
			r.src = k->remote;
			r.dst = k->local;
			r.sport = k->rport;
			r.dport = k->lport;
			r.bytes = k->bytes_in;
			fl_ipfix_record(s->ipfix, &r, now_s);
		}
	}
	fl_ftab_del(&s->tab, k);
}

/* One record to the MAPI flows: from the app's side (@out) or to it, @bytes of the app's. */
static void sock_tap(struct fl_socks *s, const struct fl_sock *k, bool out, uint8_t flags,
		     uint64_t bytes, uint64_t ts_us)
{
	uint8_t frame[FL_SOCKFRAME_MAX];
	size_t len;

	if (!s->tap || !k->af || (s->tap_mask && !(*s->tap_mask & 1u << s->tap_index)))
		return;
	len = out ? fl_sockframe(frame, k->local, k->lport, k->remote, k->rport, flags)
		  : fl_sockframe(frame, k->remote, k->rport, k->local, k->lport, flags);
	s->tap(s->tap_ctx, s->tap_index, ts_us, frame, len,
	       bytes > UINT32_MAX ? UINT32_MAX : (uint32_t)bytes);
}

/* The class of @k: the app's side is the server when it accepted (else the lower port). */
static uint8_t sock_class(const struct fl_socks *s, const struct fl_sock *k)
{
	bool local_server = k->kind == FL_SOCK_ACCEPTED ||
			    (k->kind == FL_SOCK_SEEN && k->lport < k->rport);

	return (uint8_t)(local_server ? fl_class(s->inside, s->ninside, k->remote, k->local,
						 k->lport)
				      : fl_class(s->inside, s->ninside, k->local, k->remote,
						 k->rport));
}

/* @bytes of @k's app moved: into the current second's class. */
static void sock_second(struct fl_socks *s, const struct fl_sock *k, uint64_t bytes)
{
	s->second[k->cls].pkts++;
	s->second[k->cls].bytes += bytes;
}

/**
 * fl_socks_second() - the "second" line of the counted second, when the clock has left it
 * @s:     socket table
 * @now_s: wall-clock seconds
 *
 * Its pkts are observations that moved the app's bytes, its bytes those bytes.
 */
void fl_socks_second(struct fl_socks *s, uint64_t now_s)
{
	if (s->sec && now_s > s->sec) {
		fputs("{\"type\":\"second\",\"sensor\":", s->out);
		fl_json_string(s->out, s->sensor);
		fprintf(s->out, ",\"ts\":%" PRIu64, s->sec);
		fl_report_classes(s->out, s->second);
		fflush(s->out);
		memset(s->second, 0, sizeof(s->second));
	}
	if (now_s > s->sec)
		s->sec = now_s;
}

/**
 * fl_socks_observe() - one decoded observation into the table
 * @s:     socket table
 * @info:  the observation (mw_nf_decode_info() checked it)
 * @now_s: the local clock (collection)
 */
void fl_socks_observe(struct fl_socks *s, const struct mw_nf_info *info, uint64_t now_s)
{
	uint64_t key = info->obs == MW_NF_OBS_ACCEPT ? info->extra : info->sockfd;
	struct fl_sock *k;
	bool created = false, changed;
	uint64_t ts_us;

	s->obs++;
	if (info->obs < MW_NF_OBS_ACCEPT || info->obs > MW_NF_OBS_CLOSE) {
		s->ignored++; /* create, bind: a listener is not a flow */
		return;
	}
	k = info->obs == MW_NF_OBS_CLOSE ? fl_ftab_find(&s->tab, &key)
					 : fl_ftab_get(&s->tab, &key, &created);
	if (!k) {
		if (info->obs == MW_NF_OBS_CLOSE)
			s->ignored++; /* a socket never seen open: nothing to report */
		return;		      /* the table is full: fl_ftab_get counted the drop */
	}
	if (created) {
		k->id = ++s->next_id;
		k->kind = info->obs == MW_NF_OBS_ACCEPT	   ? FL_SOCK_ACCEPTED
			  : info->obs == MW_NF_OBS_CONNECT ? FL_SOCK_CONNECTED
							   : FL_SOCK_SEEN;
		k->first_s = info->ts_curr.sec;
		s->opened++;
	}
	/* The class is the endpoints': taken again only when they change (once per socket). */
	changed = sock_endpoint(&info->pvm, k->local, &k->lport, &k->af);
	changed |= sock_endpoint(&info->remote, k->remote, &k->rport, &k->af);
	if (changed || created)
		k->cls = sock_class(s, k);
	ts_us = info->ts_curr.sec * 1000000 + info->ts_curr.ns / 1000;
	if (created && k->kind != FL_SOCK_SEEN)
		sock_tap(s, k, k->kind == FL_SOCK_CONNECTED, FL_TCP_SYN, 0, ts_us);
	/* Cumulative counters only move up: an older observation arriving late changes nothing. */
	if (info->bytes_in > k->bytes_in) {
		sock_second(s, k, info->bytes_in - k->bytes_in);
		sock_tap(s, k, false, FL_TCP_ACK | FL_TCP_PSH, info->bytes_in - k->bytes_in,
			 ts_us);
		k->bytes_in = info->bytes_in;
	}
	if (info->bytes_out > k->bytes_out) {
		sock_second(s, k, info->bytes_out - k->bytes_out);
		sock_tap(s, k, true, FL_TCP_ACK | FL_TCP_PSH, info->bytes_out - k->bytes_out,
			 ts_us);
		k->bytes_out = info->bytes_out;
	}
	if (info->ts_curr.sec > k->last_s)
		k->last_s = info->ts_curr.sec;
	k->seen_s = now_s;
	if (info->obs == MW_NF_OBS_CLOSE && !k->closed) {
		k->closed = true;
		s->closed++;
		sock_tap(s, k, true, FL_TCP_FIN | FL_TCP_ACK, 0, ts_us);
	}
}

static void sock_json(struct fl_socks *s, const struct fl_sock *k, bool comma)
{
	char l[INET6_ADDRSTRLEN], r[INET6_ADDRSTRLEN];

	fl_report_addr_text(k->local, l, sizeof(l));
	fl_report_addr_text(k->remote, r, sizeof(r));
	fprintf(s->out,
		"%s{\"id\":%" PRIu64 ",\"sock\":\"%" PRIu64 "\",\"kind\":\"%s\",\"local\":\"%s\","
		"\"local_port\":%u,\"remote\":\"%s\",\"remote_port\":%u,\"bytes_in\":%" PRIu64
		",\"bytes_out\":%" PRIu64 ",\"first\":%" PRIu64 ",\"last\":%" PRIu64
		",\"state\":\"%s\"}",
		comma ? "," : "", k->id, k->sockid, kind_names[k->kind], l, k->lport, r, k->rport,
		k->bytes_in, k->bytes_out, k->first_s, k->last_s, k->closed ? "closed" : "open");
}

/**
 * fl_socks_report() - the "sockets" line of the interval ending at @end_s, then reset it
 * @s:       socket table
 * @end_s:   end of the interval
 * @partial: the interval did not run to its end (shutdown, stream lost)
 *
 * Lists every socket observed since the interval started and every closed one;
 * closed sockets leave the table after.
 */
void fl_socks_report(struct fl_socks *s, uint64_t end_s, bool partial)
{
	uint32_t i, n, rows = 0;
	char text[INET6_ADDRSTRLEN];

	fputs("{\"type\":\"sockets\",\"sensor\":", s->out);
	fl_json_string(s->out, s->sensor);
	fprintf(s->out,
		",\"start\":%" PRIu64 ",\"end\":%" PRIu64
		",\"partial\":%s,\"observations\":%" PRIu64 ",\"opened\":%" PRIu64
		",\"closed\":%" PRIu64 ",\"table\":{\"used\":%u,\"max\":%u,\"drops\":%" PRIu64
		"},\"sockets\":[",
		s->interval_start, end_s, partial ? "true" : "false", s->obs, s->opened, s->closed,
		s->tab.count, s->tab.cap, s->tab.drops);
	for (i = 0; i < s->tab.cap; i++) {
		struct fl_sock *k = fl_ftab_at(&s->tab, i);

		if (!k || (!k->closed && k->seen_s < s->interval_start))
			continue;
		sock_json(s, k, rows++ > 0);
		if (k->closed)
			sock_leave(s, k, end_s);
		else
			sock_account(s, k);
	}
	n = fl_topn_top(&s->talkers, (uint32_t)s->cfg->top_n);
	fprintf(s->out, "],\"topn_error_bound\":%" PRIu64 ",\"talkers\":[",
		s->talkers.m ? s->talkers.total / s->talkers.m : 0);
	for (i = 0; i < n; i++) {
		const struct fl_topn_item *it = &s->talkers.sorted[i];

		fl_report_addr_text(it->key, text, sizeof(text));
		fprintf(s->out, "%s{\"addr\":\"%s\",\"bytes\":%" PRIu64 ",\"error\":%" PRIu64 "}",
			i ? "," : "", text, it->count, it->error);
	}
	fprintf(s->out, "]}\n");
	fflush(s->out);
	fl_topn_reset(&s->talkers);
}

/**
 * fl_socks_tick() - the clock: report at interval ends, collect idle open sockets
 * @s:     socket table
 * @now_s: wall-clock seconds
 */
void fl_socks_tick(struct fl_socks *s, uint64_t now_s)
{
	uint64_t ri = (uint64_t)s->cfg->report_interval_s, idle = (uint64_t)s->cfg->stream_idle_s;
	uint32_t i;

	fl_socks_second(s, now_s);
	if (!s->interval_start)
		s->interval_start = now_s - now_s % ri;
	if (now_s >= s->interval_start + ri) {
		fl_socks_report(s, s->interval_start + ri, false);
		s->interval_start = now_s - now_s % ri;
	}
	for (i = 0; i < s->tab.cap; i++) {
		struct fl_sock *k = fl_ftab_at(&s->tab, i);

		if (k && !k->closed && now_s - k->seen_s >= idle)
			sock_leave(s, k, now_s);
	}
	if (s->ipfix)
		fl_ipfix_flush(s->ipfix);
}

/**
 * fl_socks_reset() - the stream was lost or ends: every socket leaves (seen again as "seen")
 * @s:     socket table
 * @now_s: wall-clock seconds (IPFIX export time)
 */
void fl_socks_reset(struct fl_socks *s, uint64_t now_s)
{
	uint32_t i;

	for (i = 0; i < s->tab.cap; i++) {
		struct fl_sock *k = fl_ftab_at(&s->tab, i);

		if (k)
			sock_leave(s, k, now_s);
	}
	if (s->ipfix)
		fl_ipfix_flush(s->ipfix);
}
