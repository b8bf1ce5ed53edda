/* SPDX-License-Identifier: MIT */
/* test_console_table.c - mw-console's socket table, its rendering and the JSON line of an observation */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "tools/console/console.h"

#define LISTENER 0x10000000001ull
#define CONN 0x10000000002ull

static struct mw_nf_endpoint ep4(uint8_t a, uint8_t b, uint8_t c, uint8_t d, uint16_t port)
{
	struct mw_nf_endpoint e = { .af = 4, .port = port };

	e.addr[0] = a;
	e.addr[1] = b;
	e.addr[2] = c;
	e.addr[3] = d;
	return e;
}

static struct mw_nf_info obs(uint16_t kind, uint64_t sock, uint64_t extra, uint64_t in,
			     uint64_t out)
{
	struct mw_nf_info i = {
		.obs = kind,
		.ts_session_start = { 1000, 0 },
		.ts_curr = { 1002, 500000000 },
		.sockfd = sock,
		.pvm = ep4(10, 231, 0, 2, 8080),
		.remote = ep4(10, 231, 0, 1, 45678),
		.bytes_in = in,
		.bytes_out = out,
		.extra = extra,
	};

	return i;
}

static void test_json(void **state)
{
	struct mw_nf_info i = obs(MW_NF_OBS_RECV, CONN, CONN, 78, 0);
	char buf[512];
	int n;

	i.ts_curr.ns = 5;
	n = mwcon_json_info(&i, buf, sizeof(buf));
	assert_string_equal(buf, "{\"obs\":\"recv\",\"sock\":\"1099511627778\","
				 "\"extra\":\"1099511627778\",\"local\":\"10.231.0.2:8080\","
				 "\"peer\":\"10.231.0.1:45678\",\"bytes_in\":78,\"bytes_out\":0,"
				 "\"ts\":1002.000000005,\"start\":1000.000000000}");
	assert_int_equal(n, (int)strlen(buf));

	/* An unset endpoint (a socket before bind) is null; IPv6 is bracketed. */
	i = obs(MW_NF_OBS_CREATE, 3, 3, 0, 0);
	memset(&i.remote, 0, sizeof(i.remote));
	memset(&i.pvm, 0, sizeof(i.pvm));
	i.pvm.af = 6;
	i.pvm.addr[15] = 1;
	i.pvm.port = 80;
	assert_true(mwcon_json_info(&i, buf, sizeof(buf)) > 0);
	assert_non_null(strstr(buf, "\"obs\":\"create\""));
	assert_non_null(strstr(buf, "\"local\":\"[::1]:80\",\"peer\":null,"));

	/* Too small a buffer is an error, not a cut line. */
	assert_int_equal(mwcon_json_info(&i, buf, 40), -ENOSPC);
}

static void test_table_lifecycle(void **state)
{
	struct mwcon_table *t = calloc(1, sizeof(*t));
	struct mw_nf_info i;
	const struct mwcon_sock *s;

	assert_non_null(t);
	i = obs(MW_NF_OBS_CREATE, LISTENER, LISTENER, 0, 0);
	memset(&i.pvm, 0, sizeof(i.pvm));
	memset(&i.remote, 0, sizeof(i.remote));
	assert_int_equal(mwcon_table_apply(t, &i, 50.0), 1);
	s = mwcon_table_find(t, LISTENER);
	assert_non_null(s);
	assert_string_equal(s->local, "-");
	assert_string_equal(s->peer, "-");
	assert_string_equal(mwcon_state_name(s->state), "new");

	i = obs(MW_NF_OBS_BIND, LISTENER, LISTENER, 0, 0);
	memset(&i.remote, 0, sizeof(i.remote));
	mwcon_table_apply(t, &i, 50.0);
	assert_string_equal(mwcon_table_find(t, LISTENER)->local, "10.231.0.2:8080");
	assert_string_equal(mwcon_table_find(t, LISTENER)->peer, "-");
	assert_int_equal(mwcon_table_find(t, LISTENER)->state, MWCON_ST_BOUND);

	/* accept: the new connection gets a row with the endpoints; the listener keeps its own. */
	i = obs(MW_NF_OBS_ACCEPT, LISTENER, CONN, 0, 0);
	assert_int_equal(mwcon_table_apply(t, &i, 51.0), 1);
	assert_int_equal(t->n, 2);
	s = mwcon_table_find(t, CONN);
	assert_non_null(s);
	assert_string_equal(s->peer, "10.231.0.1:45678");
	assert_int_equal(s->state, MWCON_ST_ESTAB);
	assert_string_equal(mwcon_table_find(t, LISTENER)->peer, "-");
	assert_int_equal(mwcon_table_find(t, LISTENER)->last_obs, MW_NF_OBS_ACCEPT);
	assert_int_equal(mwcon_table_find(t, LISTENER)->state, MWCON_ST_LISTEN);
	/* A listener's later bind-like refresh does not demote it. */
	i = obs(MW_NF_OBS_BIND, LISTENER, LISTENER, 0, 0);
	memset(&i.remote, 0, sizeof(i.remote));
	mwcon_table_apply(t, &i, 51.0);
	assert_int_equal(mwcon_table_find(t, LISTENER)->state, MWCON_ST_LISTEN);
	t->observed--; /* not one of the observations counted below */

	/* A listener the console first sees by an accept shows where it accepted, not "-". */
	{
		struct mwcon_table *t2 = calloc(1, sizeof(*t2));

		assert_non_null(t2);
		i = obs(MW_NF_OBS_ACCEPT, LISTENER, CONN, 0, 0);
		mwcon_table_apply(t2, &i, 51.0);
		assert_string_equal(mwcon_table_find(t2, LISTENER)->local, "10.231.0.2:8080");
		assert_string_equal(mwcon_table_find(t2, LISTENER)->peer, "-");
		free(t2);
	}

	mwcon_table_apply(t, &(struct mw_nf_info){ 0 }, 51.0); /* obs none: ignored */
	assert_int_equal(t->n, 2);

	i = obs(MW_NF_OBS_RECV, CONN, CONN, 78, 0);
	mwcon_table_apply(t, &i, 52.0);
	i = obs(MW_NF_OBS_SEND, CONN, CONN, 78, 1234);
	mwcon_table_apply(t, &i, 52.0);
	s = mwcon_table_find(t, CONN);
	assert_int_equal(s->bytes_in, 78);
	assert_int_equal(s->bytes_out, 1234);
	assert_int_equal(s->last_obs, MW_NF_OBS_SEND);

	i = obs(MW_NF_OBS_CLOSE, CONN, CONN, 78, 1234);
	assert_int_equal(mwcon_table_apply(t, &i, 53.0), 1);
	assert_null(mwcon_table_find(t, CONN));
	assert_int_equal(t->n, 1);
	assert_int_equal(t->closed, 1);
	/* A close of a socket never seen changes nothing. */
	i = obs(MW_NF_OBS_CLOSE, 99, 99, 0, 0);
	assert_int_equal(mwcon_table_apply(t, &i, 53.0), 0);
	assert_int_equal(t->n, 1);
	assert_int_equal(t->observed, 8);

	mwcon_table_clear(t);
	assert_int_equal(t->n, 0);
	free(t);
}

/* Ids arrive in any order; the table stays sorted and bounded. */
static void test_table_order_and_bound(void **state)
{
	struct mwcon_table *t = calloc(1, sizeof(*t));
	struct mw_nf_info i;
	uint64_t id;
	size_t k;

	assert_non_null(t);
	for (id = MWCON_TABLE_MAX + 10; id > 0; id--) {
		i = obs(MW_NF_OBS_RECV, id * 7919 % 100003, 0, 1, 1);
		mwcon_table_apply(t, &i, 1.0);
	}
	assert_int_equal(t->n, MWCON_TABLE_MAX);
	assert_int_equal(t->overflow, 10);
	for (k = 1; k < t->n; k++)
		assert_true(t->socks[k - 1].id < t->socks[k].id);
	free(t);
}

static void test_render(void **state)
{
	struct mwcon_table *t = calloc(1, sizeof(*t));
	struct mw_nf_info i;
	char buf[4096], *line2;
	size_t n;

	assert_non_null(t);
	i = obs(MW_NF_OBS_SEND, CONN, CONN, 78, 1234);
	mwcon_table_apply(t, &i, 100.0);
	i = obs(MW_NF_OBS_BIND, LISTENER, LISTENER, 0, 0);
	memset(&i.remote, 0, sizeof(i.remote));
	i.ts_curr = i.ts_session_start;
	mwcon_table_apply(t, &i, 100.0);

	/* Age = the server's span (2.5 s) + local time since (3 s, then 100 s). */
	n = mwcon_table_render(t, 103.0, 10, 0, buf, sizeof(buf));
	assert_int_equal(n, strlen(buf));
	assert_string_equal(
		buf,
		"SOCKET               LOCAL                 PEER                  STATE      BYTES_IN    BYTES_OUT  RATE/s     AGE LAST\n"
		"0x10000000001        10.231.0.2:8080       -                     bound             0            0       0    3.0s bind\n"
		"0x10000000002        10.231.0.2:8080       10.231.0.1:45678      estab            78         1234       0    5.5s send\n");
	mwcon_table_render(t, 200.0, 10, 0, buf, sizeof(buf));
	line2 = strchr(buf, '\n') + 1;
	assert_non_null(strstr(line2, " 1m40s bind\n"));
	assert_non_null(strstr(line2, " 1m42s send\n"));

	/* The rate: bytes in + out over at least a second between observations. */
	i = obs(MW_NF_OBS_RECV, CONN, CONN, 78 + 2000, 1234 + 1000);
	mwcon_table_apply(t, &i, 100.5); /* 0.5 s: too short a window, no rate yet */
	assert_true(mwcon_table_find(t, CONN)->rate == 0);
	mwcon_table_apply(t, &i, 101.5); /* 3000 bytes in 1.5 s */
	assert_true(mwcon_table_find(t, CONN)->rate == 2000);
	mwcon_table_render(t, 103.0, 10, 0, buf, sizeof(buf));
	assert_non_null(strstr(buf, " 2.0K "));

	/* --sort rate: the fastest first; --filter: only matching rows, and a line says so. */
	t->sort = MWCON_SORT_RATE;
	mwcon_table_render(t, 103.0, 10, 0, buf, sizeof(buf));
	line2 = strchr(buf, '\n') + 1;
	assert_memory_equal(line2, "0x10000000002 ", 14);
	t->sort = MWCON_SORT_ID;
	t->filter = ":45678";
	mwcon_table_render(t, 103.0, 10, 0, buf, sizeof(buf));
	assert_null(strstr(buf, "0x10000000001"));
	assert_non_null(strstr(buf, "0x10000000002"));
	assert_non_null(strstr(buf, "(1 of 2 sockets match --filter :45678)\n"));
	/* A state name filters by state; --sort state puts connections before bound sockets. */
	t->filter = "bound";
	mwcon_table_render(t, 103.0, 10, 0, buf, sizeof(buf));
	assert_non_null(strstr(buf, "0x10000000001"));
	assert_null(strstr(buf, "0x10000000002"));
	t->filter = NULL;
	t->sort = MWCON_SORT_STATE;
	mwcon_table_render(t, 103.0, 10, 0, buf, sizeof(buf));
	line2 = strchr(buf, '\n') + 1;
	assert_memory_equal(line2, "0x10000000002 ", 14);
	t->sort = MWCON_SORT_ID;
	assert_string_equal(mwcon_sort_name(MWCON_SORT_STATE), "state");

	/* Row limit: the rest is counted. Width: lines are cut. */
	mwcon_table_render(t, 103.0, 1, 0, buf, sizeof(buf));
	assert_non_null(strstr(buf, "0x10000000001"));
	assert_null(strstr(buf, "0x10000000002"));
	assert_non_null(strstr(buf, "\n... 1 more\n"));
	mwcon_table_render(t, 103.0, 10, 26, buf, sizeof(buf));
	assert_string_equal(buf, "SOCKET               LOCAL\n0x10000000001        10.23\n"
				 "0x10000000002        10.23\n");

	/* A small buffer is cut, still terminated. */
	n = mwcon_table_render(t, 103.0, 10, 0, buf, 50);
	assert_true(n < 50);
	assert_int_equal(strlen(buf), n);
	free(t);
}

static void test_info_line(void **state)
{
	struct mw_nf_info i = obs(MW_NF_OBS_ACCEPT, LISTENER, CONN, 0, 0);
	char buf[256];

	mwcon_info_line(&i, buf, sizeof(buf));
	assert_string_equal(buf, "accept  sock 1099511627777 new 1099511627778 "
				 "10.231.0.2:8080 <- 10.231.0.1:45678");
	i = obs(MW_NF_OBS_RECV, CONN, CONN, 10, 20);
	mwcon_info_line(&i, buf, sizeof(buf));
	assert_string_equal(buf, "recv    sock 1099511627778 10.231.0.2:8080 <-> "
				 "10.231.0.1:45678 in 10 out 20");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_json),
		cmocka_unit_test(test_table_lifecycle),
		cmocka_unit_test(test_table_order_and_bound),
		cmocka_unit_test(test_render),
		cmocka_unit_test(test_info_line),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
