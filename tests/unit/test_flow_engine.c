/* SPDX-License-Identifier: MIT */
/* test_flow_engine.c - engine.c + report.c: classes, top talker, tables full, GC, anomalies */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "flowd/engine.h"
#include "tests/unit/flow_frames.h"

#define T0 1700000000ULL /* a multiple of 60 plus 20 s */
#define US 1000000ULL

struct fx {
	struct mw_config cfg;
	struct fl_engine e;
	char *buf;
	size_t len;
	FILE *out;
};

static int fx_setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));
	char err[128];

	mw_config_defaults(&f->cfg);
	snprintf(f->cfg.flowd.inside[0], MW_ADDR_TEXT_MAX, "10.0.0.0/8");
	f->cfg.flowd.inside_count = 1;
	f->cfg.flowd.max_streams = 64;
	f->cfg.flowd.max_addresses = 256;
	f->cfg.flowd.scan_threshold = 40;
	f->cfg.flowd.fanout_threshold = 40;
	f->out = open_memstream(&f->buf, &f->len);
	assert_int_equal(fl_engine_init(&f->e, &f->cfg.flowd, f->out, "test", err, sizeof(err)), 0);
	*state = f;
	return 0;
}

static int fx_teardown(void **state)
{
	struct fx *f = *state;

	fl_engine_fini(&f->e);
	fclose(f->out);
	free(f->buf);
	free(f);
	return 0;
}

static void fx_v4(struct fx *f, uint64_t ts_us, const char *src, const char *dst, uint8_t proto,
		  uint16_t sp, uint16_t dp, uint8_t flags, size_t payload)
{
	uint8_t frame[1600];
	size_t n = ff_v4(frame, src, dst, proto, sp, dp, flags, payload);

	fl_engine_packet(&f->e, ts_us, frame, n, (uint32_t)n);
}

/* The interval line of the report (the last line starting with it). */
static const char *fx_interval(struct fx *f)
{
	const char *p, *last = NULL;

	fflush(f->out);
	for (p = f->buf; (p = strstr(p, "{\"type\":\"interval\"")); p++)
		last = p;
	assert_non_null(last);
	return last;
}

static void test_classes_per_second(void **state)
{
	struct fx *f = *state;

	fx_v4(f, T0 * US, "10.0.0.5", "192.0.2.1", 6, 40000, 443, FL_TCP_SYN, 0);
	fx_v4(f, T0 * US + 10, "192.0.2.1", "10.0.0.5", 6, 443, 40000, FL_TCP_SYN | FL_TCP_ACK, 0);
	fx_v4(f, T0 * US + 20, "192.0.2.9", "10.0.0.6", 17, 5000, 53, 0, 10);
	fx_v4(f, T0 * US + 30, "10.0.0.6", "10.0.0.7", 6, 50000, 22, FL_TCP_SYN, 0);
	fx_v4(f, (T0 + 1) * US, "10.0.0.5", "192.0.2.1", 6, 40000, 443, FL_TCP_ACK, 0);
	fflush(f->out);
	assert_non_null(strstr(f->buf, "\"ts\":1700000000,\"in\":{\"pkts\":1,\"bytes\":52},"
				       "\"out\":{\"pkts\":0,\"bytes\":0},"
				       "\"inweb\":{\"pkts\":0,\"bytes\":0},"
				       "\"outweb\":{\"pkts\":2,\"bytes\":108},"
				       "\"internal\":{\"pkts\":1,\"bytes\":54},"
				       "\"other\":{\"pkts\":0,\"bytes\":0},"
				       "\"total\":{\"pkts\":4,\"bytes\":214}}"));
}

static void test_top_talker_and_conversation(void **state)
{
	struct fx *f = *state;
	int i;

	for (i = 0; i < 50; i++)
		fx_v4(f, T0 * US + (uint64_t)i, "192.0.2.80", "10.0.0.5", 6, 80, 41000, FL_TCP_ACK,
		      1000);
	fx_v4(f, T0 * US + 100, "10.0.0.5", "192.0.2.80", 6, 41000, 80, FL_TCP_ACK, 0);
	fl_engine_flush(&f->e);
	assert_non_null(strstr(fx_interval(f),
			       "\"talkers\":[{\"addr\":\"192.0.2.80\",\"id\":1,\"inside\":false,"
			       "\"bytes\":52700,\"error\":0}"));
	assert_non_null(strstr(fx_interval(f),
			       "\"conversations\":[{\"id\":1,\"proto\":6,\"client\":\"10.0.0.5\","
			       "\"client_port\":41000,\"server\":\"192.0.2.80\",\"server_port\":80,"
			       "\"bytes\":52754,\"error\":0}]"));
	assert_non_null(strstr(fx_interval(f), "\"applications\":[{\"proto\":6,\"port\":80,"));
}

static void test_stream_table_full_is_counted(void **state)
{
	struct fx *f = *state;
	uint16_t p;

	for (p = 0; p < 70; p++)
		fx_v4(f, T0 * US, "10.0.0.5", "10.0.0.6", 17, (uint16_t)(30000 + p), 53, 0, 0);
	assert_int_equal(f->e.streams.count, 64);
	assert_int_equal(f->e.streams.drops, 6);
	fl_engine_flush(&f->e);
	assert_non_null(strstr(fx_interval(f), "\"streams\":{\"used\":64,\"max\":64,\"drops\":6}"));
	/* Untracked packets still count in the totals. */
	assert_non_null(strstr(fx_interval(f), "\"pkts\":70,"));
}

/* A header claiming 65535 bytes in a 60-byte frame adds 60, not 65535. */
static void test_ip_length_capped_at_wire(void **state)
{
	struct fx *f = *state;
	struct fl_stream *st = NULL;
	uint8_t frame[1600];
	size_t n = ff_v4(frame, "10.0.0.5", "192.0.2.9", 17, 40000, 53, 0, 0);

	frame[16] = frame[17] = 0xff;
	fl_engine_packet(&f->e, T0 * US, frame, n, (uint32_t)n);
	for (uint32_t i = 0; i < f->e.streams.cap && !st; i++)
		st = fl_ftab_at(&f->e.streams, i);
	assert_non_null(st);
	if (st) /* for the analyzer: assert_non_null() does not return when it fails */
		assert_int_equal(st->ip_bytes[0] + st->ip_bytes[1], n);
}

static void test_idle_entries_collected(void **state)
{
	struct fx *f = *state;

	fx_v4(f, T0 * US, "10.0.0.5", "192.0.2.1", 17, 5000, 53, 0, 0);
	fx_v4(f, T0 * US, "10.0.0.5", "192.0.2.2", 6, 5000, 80, FL_TCP_RST, 0);
	assert_int_equal(f->e.streams.count, 2);
	assert_int_equal(f->e.addrs.count, 3);
	/* The reset stream goes after the linger, the UDP one after stream_idle_s (30). */
	fl_engine_gc(&f->e, T0 + 6);
	assert_int_equal(f->e.streams.count, 1);
	fl_engine_gc(&f->e, T0 + 30);
	assert_int_equal(f->e.streams.count, 0);
	assert_int_equal(f->e.addrs.count, 3);
	/* Addresses go address_idle_s (60) after their last packet, once no stream holds them. */
	fl_engine_gc(&f->e, T0 + 60);
	assert_int_equal(f->e.addrs.count, 0);
}

static void test_portscan_and_fanout(void **state)
{
	struct fx *f = *state;
	char dst[32];
	uint16_t p;
	int h;

	/* 10.0.0.66 probes 60 ports of one host; each is refused by a RST */
	for (p = 1; p <= 60; p++) {
		fx_v4(f, T0 * US + p, "10.0.0.66", "10.0.0.9", 6, 45000, p, FL_TCP_SYN, 0);
		fx_v4(f, T0 * US + p, "10.0.0.9", "10.0.0.66", 6, p, 45000, FL_TCP_RST | FL_TCP_ACK,
		      0);
	}
	/* 10.0.0.77 reaches 80 hosts on port 443 */
	for (h = 1; h <= 80; h++) {
		snprintf(dst, sizeof(dst), "198.51.100.%d", h);
		fx_v4(f, T0 * US + 200, "10.0.0.77", dst, 6, 50000, 443, FL_TCP_SYN, 0);
	}
	/* a normal client: 3 connections */
	for (p = 0; p < 3; p++)
		fx_v4(f, T0 * US + 300, "10.0.0.88", "192.0.2.1", 6, (uint16_t)(40000 + p), 80,
		      FL_TCP_SYN, 0);
	fl_engine_tick(&f->e, T0 + 60);
	assert_non_null(strstr(fx_interval(f), "{\"kind\":\"portscan\",\"addr\":\"10.0.0.66\""));
	assert_non_null(strstr(fx_interval(f), "\"attempts\":60,\"rejected\":60}"));
	assert_non_null(strstr(fx_interval(f), "{\"kind\":\"fanout\",\"addr\":\"10.0.0.77\""));
	assert_null(strstr(fx_interval(f), "{\"kind\":\"fanout\",\"addr\":\"10.0.0.66\""));
	assert_null(strstr(fx_interval(f), "{\"kind\":\"portscan\",\"addr\":\"10.0.0.77\""));
	assert_null(strstr(strstr(fx_interval(f), "\"anomalies\""), "10.0.0.88"));
	/* The next interval starts clean. */
	fx_v4(f, (T0 + 61) * US, "10.0.0.66", "10.0.0.9", 6, 45000, 1, FL_TCP_SYN, 0);
	fl_engine_flush(&f->e);
	assert_non_null(strstr(fx_interval(f), "\"anomalies\":[]"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_classes_per_second, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_top_talker_and_conversation, fx_setup,
						fx_teardown),
		cmocka_unit_test_setup_teardown(test_stream_table_full_is_counted, fx_setup,
						fx_teardown),
		cmocka_unit_test_setup_teardown(test_ip_length_capped_at_wire, fx_setup,
						fx_teardown),
		cmocka_unit_test_setup_teardown(test_idle_entries_collected, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_portscan_and_fanout, fx_setup, fx_teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
