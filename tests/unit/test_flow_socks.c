/* SPDX-License-Identifier: MIT */
/* test_flow_socks.c - socktab.c: Netflow observations into socket flows, talkers, full table,
 * collection */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <cmocka.h>

#include "flowd/decode.h"
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

/* A sensor name is a configured path: quotes and control characters are escaped. */
static void test_sensor_name_escaped(void **state)
{
	struct fx *f = *state;
	char err[128];
	const char *t;

	fl_socks_fini(&f->s);
	assert_int_equal(fl_socks_init(&f->s, &f->cfg.flowd, f->out,
				       "netflow:/run/x\",\"type\":\"fake\n\\", err, sizeof(err)),
			 0);
	fl_socks_tick(&f->s, T0);
	obs(f, MW_NF_OBS_ACCEPT, 100, 5, 40000, 0, 0, T0 + 1);
	obs(f, MW_NF_OBS_RECV, 100, 5, 40000, 78, 0, T0 + 1);
	fl_socks_tick(&f->s, T0 + 10);
	t = text(f);
	assert_non_null(strstr(t, "{\"type\":\"second\",\"sensor\":"
				  "\"netflow:/run/x\\\",\\\"type\\\":\\\"fake\\u000a\\\\\","));
	assert_non_null(strstr(t, "{\"type\":\"sockets\",\"sensor\":"
				  "\"netflow:/run/x\\\",\\\"type\\\":\\\"fake\\u000a\\\\\","));
	assert_null(strstr(t, "fake\n"));
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
	fl_socks_reset(&f->s, 0);
	assert_int_equal(f->s.tab.count, 0);
}

/* The records a MAPI flow over the sensor sees, decoded back. */
struct taps {
	int n;
	struct fl_pkt p[8];
	uint32_t wirelen[8];
};

static void tap(void *ctx, int index, uint64_t ts_us, const uint8_t *frame, size_t caplen,
		uint32_t wirelen)
{
	struct taps *t = ctx;

	assert_int_equal(index, 3);
	assert_true(ts_us >= T0 * 1000000);
	assert_true(t->n < 8);
	assert_int_equal(fl_decode_ether(&t->p[t->n], frame, caplen), FL_DECODE_OK);
	t->wirelen[t->n++] = wirelen;
}

static void tap_is(const struct taps *t, int i, const char *src, uint16_t sport, uint16_t dport,
		   uint8_t flags, uint32_t bytes)
{
	char text[INET6_ADDRSTRLEN];

	assert_true(i < t->n);
	assert_non_null(inet_ntop(AF_INET, t->p[i].src + 12, text, sizeof(text)));
	assert_string_equal(text, src);
	assert_int_equal(t->p[i].proto, 6);
	assert_int_equal(t->p[i].sport, sport);
	assert_int_equal(t->p[i].dport, dport);
	assert_int_equal(t->p[i].tcp_flags, flags);
	assert_int_equal(t->wirelen[i], bytes);
}

static uint64_t rd64(const uint8_t *p)
{
	uint64_t v = 0;
	int i;

	for (i = 0; i < 8; i++)
		v = v << 8 | p[i];
	return v;
}

/* Classes per second from the app's bytes, MAPI records, IPFIX records of a closed socket. */
static void test_classes_records_ipfix(void **state)
{
	struct fx *f = *state;
	struct sockaddr_in sin = { .sin_family = AF_INET };
	struct timeval tv = { 2, 0 };
	socklen_t sl = sizeof(sin);
	struct fl_ipfix x;
	struct taps t = { 0 };
	uint32_t wanted = 1u << 3 | 1u; /* MAPI flows over Netflow sensors 0 and 3 */
	char err[128], addr[64];
	uint8_t m[1500];
	const uint8_t *set;
	ssize_t n;
	int c = socket(AF_INET, SOCK_DGRAM, 0);

	fl_socks_fini(&f->s);
	strcpy(f->cfg.flowd.inside[0], "10.0.0.0/8");
	f->cfg.flowd.inside_count = 1;
	assert_int_equal(
		fl_socks_init(&f->s, &f->cfg.flowd, f->out, "netflow:/x", err, sizeof(err)), 0);
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(bind(c, (struct sockaddr *)&sin, sizeof(sin)), 0);
	assert_int_equal(getsockname(c, (struct sockaddr *)&sin, &sl), 0);
	setsockopt(c, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	snprintf(addr, sizeof(addr), "127.0.0.1:%u", ntohs(sin.sin_port));
	assert_int_equal(fl_ipfix_open(&x, addr, 1, 60, err, sizeof(err)), 0);
	f->s.ipfix = &x;
	f->s.tap = tap;
	f->s.tap_ctx = &t;
	f->s.tap_index = 3;
	f->s.tap_mask = &wanted;

	fl_socks_tick(&f->s, T0);
	/* Accepted on port 80 from outside: inweb.  Connected from the app to port 25: out. */
	obs(f, MW_NF_OBS_ACCEPT, 100, 5, 40000, 0, 0, T0);
	obs(f, MW_NF_OBS_RECV, 100, 5, 40000, 78, 0, T0);
	obs(f, MW_NF_OBS_SEND, 100, 5, 40000, 78, 5000, T0);
	obs(f, MW_NF_OBS_CONNECT, 200, 6, 25, 0, 0, T0);
	obs(f, MW_NF_OBS_SEND, 200, 6, 25, 0, 300, T0);
	fl_socks_tick(&f->s, T0 + 1);
	assert_non_null(strstr(
		text(f), "{\"type\":\"second\",\"sensor\":\"netflow:/x\",\"ts\":1700000040,"
			 "\"in\":{\"pkts\":0,\"bytes\":0},\"out\":{\"pkts\":1,\"bytes\":300},"
			 "\"inweb\":{\"pkts\":2,\"bytes\":5078},\"outweb\":{\"pkts\":0,\"bytes\":0},"
			 "\"internal\":{\"pkts\":0,\"bytes\":0},\"other\":{\"pkts\":0,\"bytes\":0},"
			 "\"total\":{\"pkts\":3,\"bytes\":5378}}\n"));
	assert_int_equal(t.n, 5);
	tap_is(&t, 0, "192.0.2.5", 40000, 80, FL_TCP_SYN, 0);
	tap_is(&t, 1, "192.0.2.5", 40000, 80, FL_TCP_ACK | FL_TCP_PSH, 78);
	tap_is(&t, 2, "10.0.0.1", 80, 40000, FL_TCP_ACK | FL_TCP_PSH, 5000);
	tap_is(&t, 3, "10.0.0.1", 80, 25, FL_TCP_SYN, 0);
	tap_is(&t, 4, "10.0.0.1", 80, 25, FL_TCP_ACK | FL_TCP_PSH, 300);

	/* Closed: reported at the interval's end, then exported, one record per direction. */
	obs(f, MW_NF_OBS_CLOSE, 100, 5, 40000, 78, 5000, T0 + 2);
	tap_is(&t, 5, "10.0.0.1", 80, 40000, FL_TCP_FIN | FL_TCP_ACK, 0);
	/* No MAPI flow over this sensor any more: no record is made. */
	wanted = 1u;
	obs(f, MW_NF_OBS_SEND, 200, 6, 25, 0, 400, T0 + 2);
	assert_int_equal(t.n, 6);
	fl_socks_tick(&f->s, T0 + 10);
	assert_int_equal(x.records, 2);
	n = recv(c, m, sizeof(m), 0);
	assert_true(n > 16);
	set = (m[16] << 8 | m[17]) == 2 ? m + 16 + (m[18] << 8 | m[19]) : m + 16;
	assert_int_equal(set[0] << 8 | set[1], 256);
	assert_int_equal(set[2] << 8 | set[3], 4 + 2 * 46);
	/* out: the app to the peer, its bytes_out; in: the peer to the app, its bytes_in */
	assert_memory_equal(set + 4, ((uint8_t[]){ 10, 0, 0, 1, 192, 0, 2, 5, 0, 80, 0x9c, 0x40, 6 }),
			    13);
	assert_int_equal(rd64(set + 4 + 14), 5000);
	assert_int_equal(rd64(set + 4 + 30), (T0 + 0) * 1000);
	assert_int_equal(rd64(set + 4 + 38), (T0 + 2) * 1000);
	assert_memory_equal(set + 50, ((uint8_t[]){ 192, 0, 2, 5, 10, 0, 0, 1, 0x9c, 0x40, 0, 80, 6 }),
			    13);
	assert_int_equal(rd64(set + 50 + 14), 78);
	/* The still-open socket is exported when the stream goes. */
	fl_socks_reset(&f->s, T0 + 11);
	assert_int_equal(x.records, 3);
	fl_ipfix_close(&x);
	close(c);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_connection_lifecycle, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_sensor_name_escaped, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_talkers_per_interval, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_full_and_idle, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_classes_records_ipfix, fx_setup, fx_teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
