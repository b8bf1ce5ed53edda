/* SPDX-License-Identifier: MIT */
/* test_flow_socks.c - socktab.c: Netflow observations into socket flows, talkers, full table,
 * collection */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "flowd/socktab.h"

#define T0 1700000040ULL /* a multiple of 60 */

struct fx {
	struct mw_config cfg;
	struct fl_socks s;
	char *buf;
	size_t len;
	FILE *out;
};

static int fx_setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));
	char err[128];

	mw_config_defaults(&f->cfg);
	f->cfg.flowd.max_sockets = 16;
	f->cfg.flowd.report_interval_s = 10;
	f->cfg.flowd.stream_idle_s = 30;
	f->out = open_memstream(&f->buf, &f->len);
	assert_int_equal(
		fl_socks_init(&f->s, &f->cfg.flowd, f->out, "netflow:/x", err, sizeof(err)), 0);
	*state = f;
	return 0;
}

static int fx_teardown(void **state)
{
	struct fx *f = *state;

	fl_socks_fini(&f->s);
	fclose(f->out);
	free(f->buf);
	free(f);
	return 0;
}

/* One observation: socket @id, peer 192.0.2.@peer:@rport, the app on 10.0.0.1:80. */
static void obs(struct fx *f, unsigned kind, uint64_t id, unsigned peer, uint16_t rport,
		uint64_t in, uint64_t out, uint64_t ts)
{
	struct mw_nf_info i = { .obs = (uint16_t)kind,
				.sockfd = kind == MW_NF_OBS_ACCEPT ? 7 : id,
				.extra = id,
				.bytes_in = in,
				.bytes_out = out };

	i.ts_curr.sec = ts;
	i.pvm.af = 4;
	memcpy(i.pvm.addr, (uint8_t[]){ 10, 0, 0, 1 }, 4);
	i.pvm.port = 80;
	i.remote.af = 4;
	memcpy(i.remote.addr, (uint8_t[]){ 192, 0, 2, (uint8_t)peer }, 4);
	i.remote.port = rport;
	fl_socks_observe(&f->s, &i, ts);
}

/* The report written so far, from @from; NUL-terminated by open_memstream. */
static const char *text(struct fx *f)
{
	fflush(f->out);
	return f->buf;
}

static void test_connection_lifecycle(void **state)
{
	struct fx *f = *state;
	const char *t;

	fl_socks_tick(&f->s, T0);
	obs(f, MW_NF_OBS_ACCEPT, 100, 5, 40000, 0, 0, T0 + 1);
	obs(f, MW_NF_OBS_RECV, 100, 5, 40000, 78, 0, T0 + 1);
	obs(f, MW_NF_OBS_SEND, 100, 5, 40000, 78, 1000, T0 + 2);
	obs(f, MW_NF_OBS_SEND, 100, 5, 40000, 78, 500, T0 + 2); /* late: counters never go down */
	obs(f, MW_NF_OBS_SEND, 100, 5, 40000, 78, 5000, T0 + 3);
	obs(f, MW_NF_OBS_CLOSE, 100, 5, 40000, 78, 5000, T0 + 3);
	obs(f, MW_NF_OBS_CREATE, 9, 0, 0, 0, 0, T0 + 3); /* a listener: not a flow */
	obs(f, MW_NF_OBS_CLOSE, 55, 6, 1, 0, 0, T0 + 3); /* never seen open: ignored */
	assert_int_equal(f->s.tab.count, 1);
	fl_socks_tick(&f->s, T0 + 10);
	t = text(f);
	assert_non_null(strstr(
		t, "{\"type\":\"sockets\",\"sensor\":\"netflow:/x\",\"start\":1700000040,"
		   "\"end\":1700000050,\"partial\":false,\"observations\":8,"
		   "\"opened\":1,\"closed\":1,\"table\":{\"used\":1,\"max\":16,\"drops\":0}"));
	assert_non_null(strstr(t,
			       "\"sockets\":[{\"id\":1,\"sock\":\"100\",\"kind\":\"accepted\","
			       "\"local\":\"10.0.0.1\",\"local_port\":80,\"remote\":\"192.0.2.5\","
			       "\"remote_port\":40000,\"bytes_in\":78,\"bytes_out\":5000,"
			       "\"first\":1700000041,\"last\":1700000043,\"state\":\"closed\"}]"));
	assert_non_null(
		strstr(t, "\"talkers\":[{\"addr\":\"192.0.2.5\",\"bytes\":5078,\"error\":0}]"));
	/* The closed socket left the table: the next interval lists nothing. */
	assert_int_equal(f->s.tab.count, 0);
	fl_socks_tick(&f->s, T0 + 20);
	assert_non_null(strstr(text(f), "\"start\":1700000050,\"end\":1700000060,"));
	assert_non_null(strstr(strstr(text(f), "\"start\":1700000050"), "\"sockets\":[],"));
}

static void test_talkers_per_interval(void **state)
{
	struct fx *f = *state;
	const char *t;

	fl_socks_tick(&f->s, T0);
	/* Two connections from .7, one from .8, with the app as client on a third. */
	obs(f, MW_NF_OBS_ACCEPT, 1, 7, 1001, 0, 0, T0);
	obs(f, MW_NF_OBS_ACCEPT, 2, 7, 1002, 0, 0, T0);
	obs(f, MW_NF_OBS_ACCEPT, 3, 8, 1003, 0, 0, T0);
	obs(f, MW_NF_OBS_CONNECT, 4, 9, 5432, 0, 0, T0);
	obs(f, MW_NF_OBS_SEND, 1, 7, 1001, 100, 3000, T0 + 1);
	obs(f, MW_NF_OBS_SEND, 2, 7, 1002, 100, 3000, T0 + 1);
	obs(f, MW_NF_OBS_SEND, 3, 8, 1003, 100, 5000, T0 + 1);
	obs(f, MW_NF_OBS_RECV, 4, 9, 5432, 10, 20, T0 + 1);
	fl_socks_tick(&f->s, T0 + 10);
	t = text(f);
	assert_non_null(strstr(t,
			       "\"talkers\":[{\"addr\":\"192.0.2.7\",\"bytes\":6200,\"error\":0},"
			       "{\"addr\":\"192.0.2.8\",\"bytes\":5100,\"error\":0},"
			       "{\"addr\":\"192.0.2.9\",\"bytes\":30,\"error\":0}]"));
	assert_non_null(strstr(t, "\"kind\":\"connected\",\"local\":\"10.0.0.1\",\"local_port\":80,"
				  "\"remote\":\"192.0.2.9\",\"remote_port\":5432"));
	/* Next interval: only what moved counts; a quiet open socket is not listed. */
	obs(f, MW_NF_OBS_SEND, 3, 8, 1003, 100, 5500, T0 + 11);
	fl_socks_tick(&f->s, T0 + 20);
	t = strstr(text(f), "\"start\":1700000050");
	assert_non_null(t);
	assert_non_null(
		strstr(t, "\"talkers\":[{\"addr\":\"192.0.2.8\",\"bytes\":500,\"error\":0}]"));
	assert_null(strstr(t, "\"sock\":\"1\""));
	assert_non_null(strstr(t, "\"sock\":\"3\""));
}

static void test_full_and_idle(void **state)
{
	struct fx *f = *state;
	uint64_t i;

	fl_socks_tick(&f->s, T0);
	for (i = 1; i <= 20; i++)
		obs(f, MW_NF_OBS_ACCEPT, i, 1, (uint16_t)(1000 + i), 0, 0, T0);
	assert_int_equal(f->s.tab.count, 16);
	assert_int_equal(f->s.tab.drops, 4);
	assert_int_equal(f->s.opened, 16);
	/* Socket 1 keeps talking; the others go quiet and are collected after stream_idle_s. */
	obs(f, MW_NF_OBS_SEND, 1, 1, 1001, 0, 10, T0 + 25);
	fl_socks_tick(&f->s, T0 + 31);
	assert_int_equal(f->s.tab.count, 1);
	assert_non_null(fl_ftab_find(&f->s.tab, &(uint64_t){ 1 }));
	/* A recv for a socket the table never saw opens it as "seen". */
	obs(f, MW_NF_OBS_RECV, 77, 2, 2000, 5, 0, T0 + 32);
	fl_socks_tick(&f->s, T0 + 40);
	assert_non_null(strstr(text(f), "\"sock\":\"77\",\"kind\":\"seen\""));
	assert_non_null(strstr(text(f), "\"drops\":4}"));
	/* A lost stream forgets every socket. */
	fl_socks_reset(&f->s);
	assert_int_equal(f->s.tab.count, 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_connection_lifecycle, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_talkers_per_interval, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_full_and_idle, fx_setup, fx_teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
