/* SPDX-License-Identifier: MIT */
/* report.c - the engine's state as JSON lines: per second, per report interval */
#include <arpa/inet.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "flowd/engine.h"

static const char *const class_names[FL_CLS_N] = {
	[FL_CLS_IN] = "in",	    [FL_CLS_OUT] = "out",	    [FL_CLS_INWEB] = "inweb",
	[FL_CLS_OUTWEB] = "outweb", [FL_CLS_INTERNAL] = "internal", [FL_CLS_OTHER] = "other",
};

/**
 * fl_report_addr_text() - an address as text, IPv4-mapped ones as dotted quads
 * @addr: 16 bytes
 * @buf:  out
 * @len:  at least INET6_ADDRSTRLEN
 */
void fl_report_addr_text(const uint8_t addr[16], char *buf, size_t len)
{
	static const uint8_t mapped[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff };

	if (!memcmp(addr, mapped, sizeof(mapped)))
		inet_ntop(AF_INET, addr + 12, buf, (socklen_t)len);
	else
		inet_ntop(AF_INET6, addr, buf, (socklen_t)len);
}

/* fl_json_string() - a sensor name (a configured path, "live"...) as a JSON string */
void fl_json_string(FILE *f, const char *s)
{
	fputc('"', f);
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;

		if (c == '"' || c == '\\')
			fprintf(f, "\\%c", c);
		else if (c < 0x20)
			fprintf(f, "\\u%04x", c);
		else
			fputc(c, f);
	}
	fputc('"', f);
}

static void report_head(struct fl_engine *e, const char *type)
{
	fprintf(e->out, "{\"type\":\"%s\",\"sensor\":", type);
	fl_json_string(e->out, e->sensor);
}

/**
 * fl_report_second() - one line with the current second's class counters, then reset them
 * @e: engine
 */
void fl_report_second(struct fl_engine *e)
{
	report_head(e, "second");
	fprintf(e->out, ",\"ts\":%" PRIu64, e->sec);
	fl_report_classes(e->out, e->second);
	fflush(e->out);
	memset(e->second, 0, sizeof(e->second));
}

/**
 * fl_report_classes() - the class objects and the total of a "second" line, and its end
 * @out:    the report stream
 * @second: per class
 */
void fl_report_classes(FILE *out, const struct fl_counter second[FL_CLS_N])
{
	struct fl_counter total = { 0, 0 };
	int c;

	for (c = 0; c < FL_CLS_N; c++) {
		fprintf(out, ",\"%s\":{\"pkts\":%" PRIu64 ",\"bytes\":%" PRIu64 "}", class_names[c],
			second[c].pkts, second[c].bytes);
		total.pkts += second[c].pkts;
		total.bytes += second[c].bytes;
	}
	fprintf(out, ",\"total\":{\"pkts\":%" PRIu64 ",\"bytes\":%" PRIu64 "}}\n", total.pkts,
		total.bytes);
}

static void report_table(FILE *f, const char *name, const struct fl_ftab *t, bool comma)
{
	fprintf(f, "%s\"%s\":{\"used\":%u,\"max\":%u,\"drops\":%" PRIu64 "}", comma ? "," : "",
		name, t->count, t->cap, t->drops);
}

static void report_talkers(struct fl_engine *e)
{
	uint32_t n = fl_topn_top(&e->talkers, (uint32_t)e->cfg->top_n), i;

	fprintf(e->out, ",\"talkers\":[");
	for (i = 0; i < n; i++) {
		const struct fl_topn_item *it = &e->talkers.sorted[i];
		const struct fl_addr *a = fl_ftab_find(&e->addrs, it->key);
		char text[INET6_ADDRSTRLEN];

		fl_report_addr_text(it->key, text, sizeof(text));
		fprintf(e->out,
			"%s{\"addr\":\"%s\",\"id\":%" PRIu64 ",\"inside\":%s,\"bytes\":%" PRIu64
			",\"error\":%" PRIu64 "}",
			i ? "," : "", text, a ? a->id : 0, a && a->inside ? "true" : "false",
			it->count, it->error);
	}
	fprintf(e->out, "]");
}

static void report_convs(struct fl_engine *e)
{
	uint32_t n = fl_topn_top(&e->convs, (uint32_t)e->cfg->top_n), i;

	fprintf(e->out, ",\"conversations\":[");
	for (i = 0; i < n; i++) {
		const struct fl_topn_item *it = &e->convs.sorted[i];
		struct fl_conv_key ck;
		char ct[INET6_ADDRSTRLEN], st[INET6_ADDRSTRLEN];
		bool b_client;

		memcpy(&ck, it->key, sizeof(ck));
		b_client = ck.k.pad[0];
		fl_report_addr_text(b_client ? ck.k.b : ck.k.a, ct, sizeof(ct));
		fl_report_addr_text(b_client ? ck.k.a : ck.k.b, st, sizeof(st));
		fprintf(e->out,
			"%s{\"id\":%" PRIu64 ",\"proto\":%u,\"client\":\"%s\",\"client_port\":%u,"
			"\"server\":\"%s\",\"server_port\":%u,\"bytes\":%" PRIu64
			",\"error\":%" PRIu64 "}",
			i ? "," : "", ck.id, ck.k.proto, ct, b_client ? ck.k.pb : ck.k.pa, st,
			b_client ? ck.k.pa : ck.k.pb, it->count, it->error);
	}
	fprintf(e->out, "]");
}

static void report_apps(struct fl_engine *e)
{
	uint32_t n = fl_topn_top(&e->apps, (uint32_t)e->cfg->top_n), i;

	fprintf(e->out, ",\"applications\":[");
	for (i = 0; i < n; i++) {
		const struct fl_topn_item *it = &e->apps.sorted[i];
		struct fl_port_key k;

		memcpy(&k, it->key, sizeof(k));
		fprintf(e->out,
			"%s{\"proto\":%u,\"port\":%u,\"bytes\":%" PRIu64 ",\"error\":%" PRIu64 "}",
			i ? "," : "", k.proto, k.port, it->count, it->error);
	}
	fprintf(e->out, "]");
}

/* Fan-out and port scans of the interval; resets every address's interval state. */
static void report_anomalies(struct fl_engine *e)
{
	uint32_t fan = (uint32_t)e->cfg->fanout_threshold, scan = (uint32_t)e->cfg->scan_threshold;
	bool first = true;
	uint32_t n;

	fprintf(e->out, ",\"anomalies\":[");
	for (n = 0; n < e->addrs.cap; n++) {
		struct fl_addr *a = fl_ftab_at(&e->addrs, n);
		char text[INET6_ADDRSTRLEN];
		uint64_t peers, ports;

		if (!a || !a->attempts)
			continue;
		/* Distinct counts cannot exceed the attempts: skip the estimate below both. */
		if (a->attempts >= fan || a->attempts >= scan) {
			/* An estimate above the attempts is the sketch's error. */
			peers = fl_hll_estimate(&a->peers);
			ports = fl_hll_estimate(&a->ports);
			peers = peers < a->attempts ? peers : a->attempts;
			ports = ports < a->attempts ? ports : a->attempts;
			fl_report_addr_text(a->addr, text, sizeof(text));
			if (peers >= fan) {
				fprintf(e->out,
					"%s{\"kind\":\"fanout\",\"addr\":\"%s\",\"id\":%" PRIu64
					",\"distinct_peers\":%" PRIu64 ",\"attempts\":%u}",
					first ? "" : ",", text, a->id, peers, a->attempts);
				first = false;
			}
			if (ports >= scan) {
				fprintf(e->out,
					"%s{\"kind\":\"portscan\",\"addr\":\"%s\",\"id\":%" PRIu64
					",\"distinct_ports\":%" PRIu64
					",\"attempts\":%u,\"rejected\":%u}",
					first ? "" : ",", text, a->id, ports, a->attempts,
					a->rejected);
				first = false;
			}
		}
		a->attempts = 0;
		a->rejected = 0;
		memset(&a->peers, 0, sizeof(a->peers));
		memset(&a->ports, 0, sizeof(a->ports));
	}
	fprintf(e->out, "]");
}

/**
 * fl_report_interval() - one line with the interval's totals, top N and anomalies
 * @e:       engine; the interval's sketches and address state are reset
 * @end_s:   first second after the interval
 * @partial: the input ended before the interval did
 */
void fl_report_interval(struct fl_engine *e, uint64_t end_s, bool partial)
{
	report_head(e, "interval");
	fprintf(e->out,
		",\"start\":%" PRIu64 ",\"end\":%" PRIu64 ",\"partial\":%s,\"pkts\":%" PRIu64
		",\"bytes\":%" PRIu64 ",\"frames\":%" PRIu64 ",\"not_ip\":%" PRIu64
		",\"malformed\":%" PRIu64 ",\"sensor_drops\":%" PRIu64
		",\"topn_error_bound\":%" PRIu64,
		e->interval_start, end_s, partial ? "true" : "false", e->interval.pkts,
		e->interval.bytes, e->frames, e->not_ip, e->malformed, e->sensor_drops,
		e->talkers.total / e->talkers.m);
	fprintf(e->out, ",\"tables\":{");
	report_table(e->out, "addresses", &e->addrs, false);
	report_table(e->out, "streams", &e->streams, true);
	report_table(e->out, "ports", &e->ports, true);
	fprintf(e->out, "}");
	if (e->ipfix)
		fprintf(e->out,
			",\"ipfix\":{\"records\":%" PRIu64 ",\"messages\":%" PRIu64
			",\"send_errors\":%" PRIu64 "}",
			e->ipfix->records, e->ipfix->messages, e->ipfix->send_errors);
	report_talkers(e);
	report_convs(e);
	report_apps(e);
	report_anomalies(e);
	fprintf(e->out, "}\n");
	fflush(e->out);
	fl_topn_reset(&e->talkers);
	fl_topn_reset(&e->convs);
	fl_topn_reset(&e->apps);
	e->interval.pkts = 0;
	e->interval.bytes = 0;
}
