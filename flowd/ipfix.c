/* SPDX-License-Identifier: MIT */
/* ipfix.c - IPFIX (RFC 7011) export of finished streams: templates, data sets, UDP */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/addr.h"
#include "flowd/engine.h"
#include "flowd/fl_assert.h"
#include "flowd/ipfix.h"

/*
 * Theory of operation: a stream leaving the table (collected, or still there
 * at the end of the input) becomes one data record per direction that carried
 * packets.  Records go into the message being built, in a data set of their
 * template (IPv4 or IPv6 addresses); a record that does not fit sends the
 * message first.  A message starts with the template set when the templates
 * were never sent or are older than @interval_s (over UDP the collector may
 * have restarted, RFC 7011 section 8.4).  The engine flushes once per report
 * second, so a record waits at most a second.  Octets are IP-layer bytes, as
 * octetDeltaCount defines them.
 *
 *   message: version 10 | length | export time | sequence | domain
 *   set:     set id (2 = template, >= 256 = data of that template) | length
 */

#define IPFIX_VERSION 10
#define IPFIX_HDR     16
#define SET_HDR	      4
#define SET_TEMPLATE  2
#define TPL_V4	      256
#define TPL_V6	      257

/* Information elements (IANA IPFIX registry): id, length. */
#define IE_OCTETS    1
#define IE_PACKETS   2
#define IE_PROTO     4
#define IE_TCP_FLAGS 6
#define IE_SRC_PORT  7
#define IE_SRC_V4    8
#define IE_DST_PORT  11
#define IE_DST_V4    12
#define IE_SRC_V6    27
#define IE_DST_V6    28
#define IE_START_MS  152
#define IE_END_MS    153

struct ie {
	uint16_t id, len;
};

static const struct ie tpl_v4[] = {
	{ IE_SRC_V4, 4 },   { IE_DST_V4, 4 },	 { IE_SRC_PORT, 2 }, { IE_DST_PORT, 2 },
	{ IE_PROTO, 1 },    { IE_TCP_FLAGS, 1 }, { IE_OCTETS, 8 },   { IE_PACKETS, 8 },
	{ IE_START_MS, 8 }, { IE_END_MS, 8 },
};
static const struct ie tpl_v6[] = {
	{ IE_SRC_V6, 16 },  { IE_DST_V6, 16 },	 { IE_SRC_PORT, 2 }, { IE_DST_PORT, 2 },
	{ IE_PROTO, 1 },    { IE_TCP_FLAGS, 1 }, { IE_OCTETS, 8 },   { IE_PACKETS, 8 },
	{ IE_START_MS, 8 }, { IE_END_MS, 8 },
};

#define NIE    (sizeof(tpl_v4) / sizeof(tpl_v4[0]))
#define REC_V4 46
#define REC_V6 70

static void put16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
}

static void put32(uint8_t *p, uint32_t v)
{
	put16(p, (uint16_t)(v >> 16));
	put16(p + 2, (uint16_t)v);
}

static void put64(uint8_t *p, uint64_t v)
{
	put32(p, (uint32_t)(v >> 32));
	put32(p + 4, (uint32_t)v);
}

/**
 * fl_ipfix_open() - a UDP exporter to @collector
 * @x:          filled; with @collector "" export is off (@x->fd = -1)
 * @collector:  "ip:port"
 * @domain:     observation domain id
 * @interval_s: template re-send interval
 * @err:        one line on failure
 * @errlen:     its size
 *
 * Return: 0 or -errno
 */
int fl_ipfix_open(struct fl_ipfix *x, const char *collector, uint32_t domain, uint32_t interval_s,
		  char *err, size_t errlen)
{
	struct sockaddr_storage ss;
	struct mw_addr a;
	socklen_t sl;
	int ret;

	memset(x, 0, sizeof(*x));
	x->fd = -1;
	x->domain = domain;
	x->interval_s = interval_s;
	if (!collector[0])
		return 0;
	if (mw_addr_parse(&a, collector) || mw_addr_to_sockaddr(&a, &ss, &sl)) {
		snprintf(err, errlen, "flowd.ipfix_collector: \"%s\" is not ip:port", collector);
		return -EINVAL;
	}
	x->fd = socket(ss.ss_family, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (x->fd < 0 || connect(x->fd, (struct sockaddr *)&ss, sl)) {
		ret = -errno;
		snprintf(err, errlen, "ipfix collector %s: %s", collector, strerror(errno));
		fl_ipfix_close(x);
		return ret;
	}
	return 0;
}

static size_t put_template(uint8_t *p, uint16_t id, const struct ie *ies)
{
	size_t i;

	put16(p, id);
	put16(p + 2, (uint16_t)NIE);
	for (i = 0; i < NIE; i++) {
		put16(p + 4 + 4 * i, ies[i].id);
		put16(p + 6 + 4 * i, ies[i].len);
	}
	return 4 + 4 * NIE;
}

/**
 * fl_ipfix_begin() - start a message (header, and the templates when due)
 * @x:     exporter
 * @now_s: export time
 *
 * Return: the message's length so far
 */
size_t fl_ipfix_begin(struct fl_ipfix *x, uint64_t now_s)
{
	x->len = IPFIX_HDR;
	put32(x->msg + 4, (uint32_t)now_s);
	put32(x->msg + 8, x->seq); /* data records sent before this message (RFC 7011 3.1) */
	put32(x->msg + 12, x->domain);
	/*
	 * Also when time went back (a frame of a capture file stamped in the future
	 * must not stop them for good); counted as sent once a message took them.
	 */
	if (!x->template_s || now_s < x->template_s || now_s >= x->template_s + x->interval_s) {
		size_t start = x->len;

		x->len += SET_HDR;
		x->len += put_template(x->msg + x->len, TPL_V4, tpl_v4);
		x->len += put_template(x->msg + x->len, TPL_V6, tpl_v6);
		put16(x->msg + start, SET_TEMPLATE);
		put16(x->msg + start + 2, (uint16_t)(x->len - start));
		x->template_pending = now_s ? now_s : 1;
	}
	x->set_off = 0;
	return x->len;
}

static void ipfix_close_set(struct fl_ipfix *x)
{
	if (x->set_off)
		put16(x->msg + x->set_off + 2, (uint16_t)(x->len - x->set_off));
	x->set_off = 0;
}

/**
 * fl_ipfix_flush() - send the message being built, if it holds anything
 * @x: exporter
 */
void fl_ipfix_flush(struct fl_ipfix *x)
{
	if (x->fd < 0 || x->len <= IPFIX_HDR)
		return;
	ipfix_close_set(x);
	put16(x->msg, IPFIX_VERSION);
	put16(x->msg + 2, (uint16_t)x->len);
	if (send(x->fd, x->msg, x->len, MSG_NOSIGNAL) != (ssize_t)x->len) {
		x->send_errors++;
	} else {
		x->messages++;
		if (x->template_pending)
			x->template_s = x->template_pending;
	}
	x->template_pending = 0;
	x->len = 0;
}

/**
 * fl_ipfix_record() - one data record (one direction of a stream or a connection)
 * @x:     exporter, open
 * @r:     the record
 * @now_s: export time
 */
void fl_ipfix_record(struct fl_ipfix *x, const struct fl_ipfix_rec *r, uint64_t now_s)
{
	static const uint8_t mapped[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff };
	bool v4 = !memcmp(r->src, mapped, 12) && !memcmp(r->dst, mapped, 12);
	uint16_t tpl = v4 ? TPL_V4 : TPL_V6;
	size_t rec = v4 ? REC_V4 : REC_V6, alen = v4 ? 4 : 16;
	uint8_t *p;

	if (x->len &&
	    x->len + (x->set_id == tpl && x->set_off ? 0 : SET_HDR) + rec > FL_IPFIX_MSG_MAX)
		fl_ipfix_flush(x);
	if (!x->len)
		fl_ipfix_begin(x, now_s);
	if (!x->set_off || x->set_id != tpl) {
		ipfix_close_set(x);
		x->set_off = x->len;
		x->set_id = tpl;
		put16(x->msg + x->len, tpl);
		x->len += SET_HDR;
	}
	FL_ASSERT(x->len + rec <= FL_IPFIX_MSG_MAX);
	p = x->msg + x->len;
	memcpy(p, r->src + 16 - alen, alen);
	memcpy(p + alen, r->dst + 16 - alen, alen);
	p += 2 * alen;
	put16(p, r->sport);
	put16(p + 2, r->dport);
	p[4] = r->proto;
	p[5] = r->flags;
	put64(p + 6, r->bytes);
	put64(p + 14, r->pkts);
	put64(p + 22, r->start_ms);
	put64(p + 30, r->end_ms);
	x->len += rec;
	x->seq++;
	x->records++;
}

/* One direction of @s as a data record of its template. */
static void ipfix_record(struct fl_ipfix *x, const struct fl_stream *s, int dir, uint64_t now_s)
{
	struct fl_ipfix_rec r = {
		.src = dir ^ s->client ? s->key.b : s->key.a,
		.dst = dir ^ s->client ? s->key.a : s->key.b,
		.sport = dir ^ s->client ? s->key.pb : s->key.pa,
		.dport = dir ^ s->client ? s->key.pa : s->key.pb,
		.proto = s->key.proto,
		.flags = s->flags[dir],
		.bytes = s->ip_bytes[dir],
		.pkts = s->pkts[dir],
		.start_ms = s->first_us / 1000,
		.end_ms = s->last_us / 1000,
	};

	fl_ipfix_record(x, &r, now_s);
}

/**
 * fl_ipfix_stream() - export a finished stream: one record per direction with packets
 * @x:     exporter (nothing happens when export is off)
 * @s:     the stream
 * @now_s: export time
 */
void fl_ipfix_stream(struct fl_ipfix *x, const struct fl_stream *s, uint64_t now_s)
{
	int dir;

	if (x->fd < 0)
		return;
	for (dir = 0; dir < 2; dir++)
		if (s->pkts[dir])
			ipfix_record(x, s, dir, now_s);
}

/**
 * fl_ipfix_close() - send what is pending, close the socket
 * @x: exporter
 */
void fl_ipfix_close(struct fl_ipfix *x)
{
	fl_ipfix_flush(x);
	if (x->fd >= 0)
		close(x->fd);
	x->fd = -1;
}
