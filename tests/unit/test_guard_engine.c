/* SPDX-License-Identifier: MIT */
/* test_guard_engine.c - mw-guard's engine fed with synthetic observations: what it decides */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "common/sockid.h"
#include "guard/action.h"
#include "guard/guard.h"

#define MAX_REC 4096

static struct gd_action rec[MAX_REC];
static int nrec;
static struct mw_config cfg;
static struct gd_engine eng;

static void record(void *ctx, const struct gd_action *a)
{
	assert_true(nrec < MAX_REC);
	rec[nrec++] = *a;
}

static int count(enum gd_kind k, const char *reason)
{
	int i, n = 0;

	for (i = 0; i < nrec; i++)
		if (rec[i].kind == k && (!reason || !strcmp(rec[i].reason, reason)))
			n++;
	return n;
}

static int count_target(enum gd_kind k, const char *target_prefix)
{
	int i, n = 0;

	for (i = 0; i < nrec; i++)
		if (rec[i].kind == k &&
		    !strncmp(rec[i].target, target_prefix, strlen(target_prefix)))
			n++;
	return n;
}

static void start(void)
{
	char err[256];

	assert_int_equal(gd_engine_init(&eng, &cfg.guard, record, NULL, err, sizeof(err)), 0);
	nrec = 0;
}

static int setup(void **state)
{
	mw_config_defaults(&cfg);
	snprintf(cfg.guard.listeners[0], sizeof(cfg.guard.listeners[0]), "80:http");
	snprintf(cfg.guard.listeners[1], sizeof(cfg.guard.listeners[1]), "6379:line");
	cfg.guard.listeners_count = 2;
	cfg.guard.max_conns = 4096; /* each tick walks the tables: keep the test quick */
	gd_tab_seed(0x5eed);	    /* the same tables every run (mw-guard: random keys) */
	cfg.guard.max_sources = 4096;
	return 0;
}

static int teardown(void **state)
{
	gd_engine_fini(&eng);
	return 0;
}

static void endpoint(struct mw_nf_endpoint *e, const char *text)
{
	struct mw_addr a;

	assert_int_equal(mw_addr_parse(&a, text), 0);
	mw_nf_endpoint_from_addr(e, &a);
}

static void obs(enum mw_nf_obs kind, uint64_t sock, uint64_t extra, const char *local,
		const char *peer, uint64_t in, uint64_t out, int64_t now)
{
	struct mw_nf_info i = { .obs = (uint16_t)kind,
				.sockfd = sock,
				.extra = extra,
				.bytes_in = in,
				.bytes_out = out };

	if (local)
		endpoint(&i.pvm, local);
	if (peer)
		endpoint(&i.remote, peer);
	gd_engine_observe(&eng, &i, now);
}

#define L80	 1000 /* the listener's socket id */
#define L80_ADDR "10.231.0.2:80"

static void accept_conn(uint64_t id, const char *peer, int64_t now)
{
	obs(MW_NF_OBS_ACCEPT, L80, id, L80_ADDR, peer, 0, 0, now);
}

static void tick_until(int64_t *now, int64_t until)
{
	for (; *now < until; *now += cfg.guard.tick_ms)
		gd_engine_tick(&eng, *now);
}

/* Baseline: set once for a configured port (bind or first accept), never for others. */
static void test_baseline_configured_only(void **state)
{
	int64_t now = 1000;

	start();
	obs(MW_NF_OBS_BIND, L80, L80, L80_ADDR, NULL, 0, 0, now);
	obs(MW_NF_OBS_BIND, 2000, 2000, "10.231.0.2:8080", NULL, 0, 0, now);
	obs(MW_NF_OBS_ACCEPT, 3000, 3001, "10.231.0.2:6379", "10.1.0.1:5000", 0, 0, now);
	obs(MW_NF_OBS_ACCEPT, 2000, 2001, "10.231.0.2:8080", "10.1.0.1:5001", 0, 0, now);
	tick_until(&now, 5000);
	assert_int_equal(nrec, 2);
	assert_int_equal(rec[0].kind, GD_SHIELD_SET);
	assert_string_equal(rec[0].reason, "baseline");
	assert_string_equal(rec[0].target, L80_ADDR);
	assert_int_equal(rec[0].sock, L80);
	assert_int_equal(rec[0].opts, 1u << MW_SHIELD_FILTER | 1u << MW_SHIELD_DEADLINE_MS |
					      1u << MW_SHIELD_OUT_BUFFER | 1u << MW_SHIELD_STALL_MAX);
	assert_int_equal(rec[0].val[MW_SHIELD_FILTER], MW_ACCF_HTTP);
	assert_int_equal(rec[0].val[MW_SHIELD_DEADLINE_MS], 10000);
	assert_int_equal(rec[0].val[MW_SHIELD_OUT_BUFFER], 256 * 1024);
	assert_int_equal(rec[0].val[MW_SHIELD_STALL_MAX], 16);
	assert_non_null(strstr(rec[0].evidence,
			       "filter=http,deadline_ms=10000,out_buffer=262144,stall_max=16"));
	assert_int_equal(rec[1].sock, 3000);
	assert_int_equal(rec[1].val[MW_SHIELD_FILTER], MW_ACCF_LINE);
	/* baseline = false: nothing at all. */
	gd_engine_fini(&eng);
	cfg.guard.baseline = false;
	start();
	obs(MW_NF_OBS_BIND, L80, L80, L80_ADDR, NULL, 0, 0, now);
	tick_until(&now, 8000);
	assert_int_equal(nrec, 0);
	cfg.guard.baseline = true;
}

/*
 * Benign traffic, slow but legitimate: 20 clients sending a 400-byte request over
 * 4 s, 10 downloads at 50 KiB/s, 10 idle keep-alive connections.  Baseline only.
 */
static void test_benign_slow_clients(void **state)
{
	int64_t now = 1000, t;
	uint64_t id;
	char peer[64];
	int c;

	start();
	obs(MW_NF_OBS_BIND, L80, L80, L80_ADDR, NULL, 0, 0, now);
	for (c = 0; c < 10; c++) { /* keep-alive: one exchange, then idle */
		snprintf(peer, sizeof(peer), "10.2.0.%d:4000", c + 1);
		accept_conn(500 + (uint64_t)c, peer, now);
		obs(MW_NF_OBS_RECV, 500 + (uint64_t)c, 0, L80_ADDR, peer, 300, 0, now + 10);
		obs(MW_NF_OBS_SEND, 500 + (uint64_t)c, 0, L80_ADDR, peer, 300, 2000, now + 20);
	}
	for (t = 0; t < 20000; t += 200) {
		for (c = 0; c < 20; c++) { /* 400 bytes over 4 s, then the answer, 5 rounds */
			id = 10000 + (uint64_t)(t / 4000) * 100 + (uint64_t)c;
			snprintf(peer, sizeof(peer), "10.3.0.%d:%d", c + 1, 5000 + (int)(t / 4000));
			if (t % 4000 == 0)
				accept_conn(id, peer, now);
			obs(MW_NF_OBS_RECV, id, 0, L80_ADDR, peer, (uint64_t)(t % 4000 + 200) / 10,
			    0, now);
			if (t % 4000 == 3800) {
				obs(MW_NF_OBS_SEND, id, 0, L80_ADDR, peer, 400, 1000, now);
				obs(MW_NF_OBS_CLOSE, id, 0, L80_ADDR, peer, 400, 1000, now);
			}
		}
		for (c = 0; c < 10; c++) { /* 50 KiB/s downloads */
			snprintf(peer, sizeof(peer), "10.4.0.%d:6000", c + 1);
			if (!t)
				accept_conn(700 + (uint64_t)c, peer, now);
			obs(MW_NF_OBS_SEND, 700 + (uint64_t)c, 0, L80_ADDR, peer, 100,
			    (uint64_t)(t + 200) * 50 * 1024 / 1000, now);
		}
		if (t % cfg.guard.tick_ms == 0)
			gd_engine_tick(&eng, now);
		now += 200;
	}
	assert_int_equal(count(GD_SHIELD_SET, "baseline"), 1);
	assert_int_equal(nrec, 1);
	assert_int_equal(eng.listeners[0].pressure, false);
}

/* @n connections from @nsrc addresses in 10.9.<net>.x, each trickling 5 bytes every 10 s. */
static void slow_headers(int net, int nsrc, int n, uint64_t base, int64_t *now, int64_t until)
{
	char peer[64];
	int c;
	int64_t t0 = *now;

	for (c = 0; c < n; c++) {
		snprintf(peer, sizeof(peer), "10.9.%d.%d:%d", net, c % nsrc + 1, 10000 + c);
		accept_conn(base + (uint64_t)c, peer, *now);
	}
	for (; *now < until; *now += cfg.guard.tick_ms) {
		if ((*now - t0) % 10000 == 0)
			for (c = 0; c < n; c++)
				obs(MW_NF_OBS_RECV, base + (uint64_t)c, 0, L80_ADDR, NULL,
				    5 * (uint64_t)((*now - t0) / 10000 + 1), 0, *now);
		gd_engine_tick(&eng, *now);
	}
}

/* Slow headers above the thresholds: pressure levers, closes, blocks of the sources. */
static void test_slow_headers_close_and_block(void **state)
{
	int64_t now = 1000;
	int i;

	cfg.guard.shield_hold_max = 512; /* the INS retune lever, off by default */
	start();
	obs(MW_NF_OBS_BIND, L80, L80, L80_ADDR, NULL, 0, 0, now);
	slow_headers(0, 10, 100, 100000, &now, now + 6000);
	assert_int_equal(count(GD_SHIELD_SET, "pressure"), 1);
	assert_int_equal(count(GD_CLOSE, "slow"), 100);
	assert_int_equal(count(GD_BLOCK, "slow_source"), 10);
	for (i = 0; i < nrec; i++) {
		if (rec[i].kind == GD_SHIELD_SET && !strcmp(rec[i].reason, "pressure")) {
			assert_int_equal(rec[i].val[MW_SHIELD_MIN_IN_RATE], 50);
			assert_int_equal(rec[i].val[MW_SHIELD_SRC_MAX_CONNS], 64);
			assert_int_equal(rec[i].val[MW_SHIELD_HOLD_MAX], 512);
			assert_true(rec[i].opts & (1u << MW_SHIELD_HOLD_MAX));
			assert_non_null(strstr(rec[i].evidence, "held=100,slow=100"));
		}
		if (rec[i].kind == GD_CLOSE)
			assert_non_null(strstr(rec[i].evidence, "bytes_in=5,bytes_out=0"));
	}
	/* A close not followed by the close observation is retried, not repeated each tick. */
	nrec = 0;
	tick_until(&now, now + 1000);
	assert_int_equal(count(GD_CLOSE, NULL), 0);
	/* The closes land: calm after calm_ms clears the levers, the baseline stays. */
	for (i = 0; i < 100; i++)
		obs(MW_NF_OBS_CLOSE, 100000 + (uint64_t)i, 0, L80_ADDR, NULL, 5, 0, now);
	tick_until(&now, now + cfg.guard.calm_ms + 1000);
	assert_int_equal(count(GD_SHIELD_CLEAR, "calm"), 1);
	assert_int_equal(count(GD_SHIELD_CLEAR, NULL), 1);
	for (i = 0; i < nrec; i++)
		if (rec[i].kind == GD_SHIELD_CLEAR) {
			assert_int_equal(rec[i].val[MW_SHIELD_MIN_IN_RATE], 0);
			assert_int_equal(rec[i].val[MW_SHIELD_HOLD_MAX], 0);
			assert_true(rec[i].opts & (1u << MW_SHIELD_HOLD_MAX));
			assert_false(rec[i].opts & (1u << MW_SHIELD_FILTER));
		}
	/* Blocks are lifted after block_expiry_s. */
	tick_until(&now, now + (int64_t)cfg.guard.block_expiry_s * 1000);
	assert_int_equal(count(GD_UNBLOCK, "expiry"), 10);
	assert_int_equal(eng.blocks.n, 0);
	cfg.guard.shield_hold_max = 0;
}

/* Slow read: the app wrote 64 KiB at once, the client takes nothing more. */
static void test_slow_read_closes(void **state)
{
	int64_t now = 1000;
	char peer[64];
	int c;

	start();
	obs(MW_NF_OBS_BIND, L80, L80, L80_ADDR, NULL, 0, 0, now);
	for (c = 0; c < 40; c++) {
		snprintf(peer, sizeof(peer), "10.8.%d.1:7000", c);
		accept_conn(200 + (uint64_t)c, peer, now);
		obs(MW_NF_OBS_RECV, 200 + (uint64_t)c, 0, L80_ADDR, peer, 120, 0, now);
		obs(MW_NF_OBS_SEND, 200 + (uint64_t)c, 0, L80_ADDR, peer, 120, 65536, now + 5);
	}
	tick_until(&now, now + cfg.guard.idle_ms - 500);
	assert_int_equal(count(GD_CLOSE, NULL), 0); /* still within idle_ms */
	tick_until(&now, now + 1500);
	assert_int_equal(count(GD_SHIELD_SET, "pressure"), 1);
	assert_int_equal(count(GD_CLOSE, "slow"), 40);
	assert_int_equal(count(GD_BLOCK, NULL), 0); /* one connection each: below block_slow */
}

/* Accept latency (ts_session_start to the accept) and response latency are measured;
 * with pressure_accept_ms set, a long wait for accept() is pressure by itself. */
static void test_accept_latency_pressure(void **state)
{
	struct mw_nf_info i = { .obs = MW_NF_OBS_ACCEPT, .sockfd = L80 };
	int64_t now = 1000;
	uint64_t c;

	cfg.guard.pressure_accept_ms = 1000;
	start();
	endpoint(&i.pvm, L80_ADDR);
	endpoint(&i.remote, "10.5.0.1:3000");
	for (c = 0; c < 3; c++) {
		i.extra = 800 + c;
		i.ts_session_start.sec = 100;
		i.ts_curr.sec = 103; /* waited 3 s in the accept queue */
		gd_engine_observe(&eng, &i, now);
		obs(MW_NF_OBS_SEND, 800 + c, 0, L80_ADDR, NULL, 50, 200, now + 40);
	}
	assert_int_equal(eng.listeners[0].accept_ms, 3000);
	assert_int_equal(eng.listeners[0].response_ms, 40);
	tick_until(&now, now + 1000);
	assert_int_equal(count(GD_SHIELD_SET, "pressure"), 1);
	assert_int_equal(count(GD_CLOSE, NULL), 0); /* nothing is slow */
	cfg.guard.pressure_accept_ms = 0;
}

/* Report mode: the same decisions, each connection's close reported once, not every 5 s. */
static void test_report_mode_once(void **state)
{
	int64_t now = 1000;

	snprintf(cfg.guard.mode, sizeof(cfg.guard.mode), "report");
	start();
	obs(MW_NF_OBS_BIND, L80, L80, L80_ADDR, NULL, 0, 0, now);
	slow_headers(0, 40, 40, 100000, &now, now + 20000);
	assert_int_equal(count(GD_CLOSE, "slow"), 40);
	assert_int_equal(count(GD_SHIELD_SET, "pressure"), 1);
	snprintf(cfg.guard.mode, sizeof(cfg.guard.mode), "enforce");
}

/* guard.allow: pressure levers yes, but no close nor block of an allowed address. */
static void test_allow_list(void **state)
{
	int64_t now = 1000;

	snprintf(cfg.guard.allow[0], sizeof(cfg.guard.allow[0]), "10.9.0.0/16");
	cfg.guard.allow_count = 1;
	start();
	obs(MW_NF_OBS_BIND, L80, L80, L80_ADDR, NULL, 0, 0, now);
	slow_headers(0, 10, 50, 100000, &now, now + 3000);
	slow_headers(1, 10, 0, 200000, &now, now + 1); /* nothing more */
	tick_until(&now, now + 4000);
	assert_int_equal(count(GD_SHIELD_SET, "pressure"), 1);
	assert_int_equal(count(GD_CLOSE, NULL), 0);
	assert_int_equal(count(GD_BLOCK, NULL), 0);
	cfg.guard.allow_count = 0;
}

/*
 * The balancer's subnet: through the splice front end without PROXY v2 every client
 * arrives from the bridge address.  Its slow connections are closed, but it is never
 * blocked and the per-source levers stay off; outside the subnet the same is blocked.
 */
static void test_balancer_address_never_blocked(void **state)
{
	int64_t now = 1000;
	int i, pressure = 0;

	for (i = 0; i < 2; i++) {
		start();
		assert_int_equal(gd_engine_set_ins_net(&eng, i ? "" : "10.9.0.0/24"), 0);
		obs(MW_NF_OBS_BIND, L80, L80, L80_ADDR, NULL, 0, 0, now);
		slow_headers(0, 1, 40, 100000, &now, now + 6000); /* all from 10.9.0.1 */
		assert_int_equal(count(GD_CLOSE, "slow"), 40);
		assert_int_equal(count(GD_BLOCK, NULL), i ? 1 : 0);
		for (pressure = 0; pressure < nrec; pressure++)
			if (rec[pressure].kind == GD_SHIELD_SET &&
			    !strcmp(rec[pressure].reason, "pressure"))
				break;
		assert_true(pressure < nrec);
		assert_int_equal(!!(rec[pressure].opts & (1u << MW_SHIELD_SRC_MAX_CONNS)), i);
		gd_engine_fini(&eng);
	}
	assert_int_equal(gd_engine_set_ins_net(&eng, "10.9.0.0/33"), -EINVAL);
	start();
}

/*
 * NAT: attackers and benign clients share 192.168.7.7.  Its slow connections are
 * closed, but the address is not blocked: its other connections end well.
 */
static void test_nat_not_blocked(void **state)
{
	int64_t now = 1000, t;
	uint64_t id = 90000;
	char peer[64];
	int c;

	start();
	obs(MW_NF_OBS_BIND, L80, L80, L80_ADDR, NULL, 0, 0, now);
	for (c = 0; c < 40; c++) {
		snprintf(peer, sizeof(peer), "192.168.7.7:%d", 20000 + c);
		accept_conn(300 + (uint64_t)c, peer, now);
		obs(MW_NF_OBS_RECV, 300 + (uint64_t)c, 0, L80_ADDR, peer, 3, 0, now);
	}
	for (t = 0; t < 8000; t += 100) {
		if (t % 200 == 0) { /* a benign fetch every 0.2 s, done in 100 ms */
			snprintf(peer, sizeof(peer), "192.168.7.7:%d", 30000 + (int)(t / 200));
			accept_conn(id, peer, now);
			obs(MW_NF_OBS_RECV, id, 0, L80_ADDR, peer, 80, 0, now);
		} else {
			obs(MW_NF_OBS_SEND, id, 0, L80_ADDR, peer, 80, 900, now);
			obs(MW_NF_OBS_CLOSE, id, 0, L80_ADDR, peer, 80, 900, now);
			id++;
		}
		if (t % cfg.guard.tick_ms == 0)
			gd_engine_tick(&eng, now);
		now += 100;
	}
	assert_int_equal(count(GD_CLOSE, "slow"), 40);
	assert_int_equal(count(GD_BLOCK, NULL), 0);
	/* The same attack from an address with no good connection is blocked. */
	for (c = 0; c < 40; c++) {
		snprintf(peer, sizeof(peer), "192.168.8.8:%d", 20000 + c);
		accept_conn(400 + (uint64_t)c, peer, now);
	}
	tick_until(&now, now + 4000);
	assert_int_equal(count_target(GD_BLOCK, "192.168.8.8"), 1);
}

/* The last pressure shield_set with @reason, or NULL. */
static const struct gd_action *last_set(const char *reason)
{
	int i;

	for (i = nrec - 1; i >= 0; i--)
		if (rec[i].kind == GD_SHIELD_SET && !strcmp(rec[i].reason, reason))
			return &rec[i];
	return NULL;
}

/*
 * A benign fetch from @peer_ip every 0.2 s (done in 100 ms) while @n connections
 * of the same address hold, for @ms.
 */
static void nat_traffic(const char *peer_ip, uint64_t *id, int64_t *now, int64_t ms)
{
	char peer[64];
	int64_t t;

	for (t = 0; t < ms; t += 100) {
		snprintf(peer, sizeof(peer), "%s:%d", peer_ip, 30000 + (int)((*id) % 30000));
		if (t % 200 == 0) {
			accept_conn(*id, peer, *now);
			obs(MW_NF_OBS_RECV, *id, 0, L80_ADDR, peer, 80, 0, *now);
		} else {
			obs(MW_NF_OBS_SEND, *id, 0, L80_ADDR, peer, 80, 900, *now);
			obs(MW_NF_OBS_CLOSE, *id, 0, L80_ADDR, peer, 80, 900, *now);
			(*id)++;
		}
		if (t % cfg.guard.tick_ms == 0)
			gd_engine_tick(&eng, *now);
		*now += 100;
	}
}

/*
 * Per-source levers behind a NAT: 300 attack connections from the address that
 * also has good exchanges put the listener under pressure, but the levers go on
 * without SRC_MAX_CONNS / SRC_RATE (they would refuse its benign clients).  From
 * an address with no good exchange they go on with them; when that address then
 * has one, they go off (shield_set reason=nat, both 0), the others stay.
 */
static void test_nat_keeps_src_levers_off(void **state)
{
	const struct gd_action *a;
	int64_t now = 1000;
	uint64_t id = 200000;
	char peer[64];
	int c;

	start();
	obs(MW_NF_OBS_BIND, L80, L80, L80_ADDR, NULL, 0, 0, now);
	nat_traffic("192.168.9.9", &id, &now, 1000); /* good exchanges first */
	for (c = 0; c < 300; c++) {
		snprintf(peer, sizeof(peer), "192.168.9.9:%d", 10000 + c);
		accept_conn(500 + (uint64_t)c, peer, now);
	}
	nat_traffic("192.168.9.9", &id, &now, 2000);
	a = last_set("pressure");
	assert_non_null(a);
	assert_false(a->opts & (1u << MW_SHIELD_SRC_MAX_CONNS));
	assert_false(a->opts & (1u << MW_SHIELD_SRC_RATE));
	assert_int_equal(a->val[MW_SHIELD_MIN_OUT_RATE], cfg.guard.shield_min_out_rate);
	assert_true(a->opts & (1u << MW_SHIELD_PFX_MAX_CONNS));
	assert_non_null(strstr(a->evidence, "src_levers=off_nat"));
	assert_null(last_set("nat"));
	gd_engine_fini(&eng);

	/* An address with no good exchange: with them; then a good one: off. */
	start();
	obs(MW_NF_OBS_BIND, L80, L80, L80_ADDR, NULL, 0, 0, now);
	for (c = 0; c < 300; c++) {
		snprintf(peer, sizeof(peer), "192.168.10.10:%d", 10000 + c);
		accept_conn(900 + (uint64_t)c, peer, now);
	}
	tick_until(&now, now + 1000);
	a = last_set("pressure");
	assert_non_null(a);
	assert_int_equal(a->val[MW_SHIELD_SRC_MAX_CONNS], cfg.guard.shield_src_max_conns);
	assert_int_equal(a->val[MW_SHIELD_SRC_RATE], cfg.guard.shield_src_rate);
	assert_null(last_set("nat"));
	nat_traffic("192.168.10.10", &id, &now, 1000);
	a = last_set("nat");
	assert_non_null(a);
	assert_true(a->opts & (1u << MW_SHIELD_SRC_MAX_CONNS));
	assert_true(a->opts & (1u << MW_SHIELD_SRC_RATE));
	assert_int_equal(a->val[MW_SHIELD_SRC_MAX_CONNS], 0);
	assert_int_equal(a->val[MW_SHIELD_SRC_RATE], 0);
	assert_false(a->opts & (1u << MW_SHIELD_MIN_OUT_RATE));
	assert_int_equal(count(GD_SHIELD_SET, "nat"), 1);
	assert_int_equal(count(GD_SHIELD_SET, "pressure"), 1);
}

/* @n connections from @ip (ports from 10000) on listener @lsock (@laddr), ids from @id0. */
static void hold(uint64_t lsock, const char *laddr, const char *ip, uint64_t id0, int n, int64_t now)
{
	char peer[64];
	int c;

	for (c = 0; c < n; c++) {
		snprintf(peer, sizeof(peer), "%s:%d", ip, 10000 + c);
		obs(MW_NF_OBS_ACCEPT, lsock, id0 + (uint64_t)c, laddr, peer, 0, 0, now);
	}
}

/* The per-source lever values of @a: SRC_MAX_CONNS and SRC_RATE both sent as @on or 0. */
static void assert_src_levers(const struct gd_action *a, bool on)
{
	assert_non_null(a);
	assert_true(a->opts & (1u << MW_SHIELD_SRC_MAX_CONNS));
	assert_true(a->opts & (1u << MW_SHIELD_SRC_RATE));
	assert_int_equal(a->val[MW_SHIELD_SRC_MAX_CONNS], on ? cfg.guard.shield_src_max_conns : 0);
	assert_int_equal(a->val[MW_SHIELD_SRC_RATE], on ? cfg.guard.shield_src_rate : 0);
}

/*
 * The NAT rule is no way out of the per-source levers for an attacker:
 * (a) one good exchange turns them off for good_memory_ms, not for the rest of the
 *     attack: they come back (reason=nat_over) once it is that old;
 * (b) its own held connections, each moving just above min_rate, are not good
 *     exchanges: the levers stay on;
 * (c) a benign address holding more connections on another port is not this
 *     listener's top address: the attacker's levers go on.
 */
static void test_nat_rule_not_an_escape(void **state)
{
	const struct gd_action *a;
	int64_t now = 1000, t0;
	uint64_t id = 300000;
	int c, i;

	/* (a) */
	start();
	obs(MW_NF_OBS_BIND, L80, L80, L80_ADDR, NULL, 0, 0, now);
	hold(L80, L80_ADDR, "192.168.10.10", 900, 300, now);
	tick_until(&now, now + 1000);
	assert_src_levers(last_set("pressure"), true);
	nat_traffic("192.168.10.10", &id, &now, 1000); /* five good exchanges in 1 s */
	assert_src_levers(last_set("nat"), false);
	tick_until(&now, now + cfg.guard.good_memory_ms - 2 * cfg.guard.tick_ms);
	assert_null(last_set("nat_over")); /* not before good_memory_ms... */
	tick_until(&now, now + 4 * cfg.guard.tick_ms);
	a = last_set("nat_over"); /* ...but then */
	assert_src_levers(a, true);
	assert_int_equal(a->opts, 1u << MW_SHIELD_SRC_MAX_CONNS | 1u << MW_SHIELD_SRC_RATE);
	assert_non_null(strstr(a->evidence, "src_levers=on"));
	tick_until(&now, now + 3 * cfg.guard.good_memory_ms);
	assert_int_equal(count(GD_SHIELD_SET, "nat_over"), 1);
	assert_int_equal(count(GD_SHIELD_SET, "nat"), 1);
	gd_engine_fini(&eng);

	/* (b) 300 connections, each 30 bytes a second, every half second, for 15 s. */
	now = 1000;
	start();
	obs(MW_NF_OBS_BIND, L80, L80, L80_ADDR, NULL, 0, 0, now);
	hold(L80, L80_ADDR, "192.168.11.11", 900, 300, now);
	for (t0 = now; now < t0 + 15000; now += cfg.guard.tick_ms) {
		if ((now - t0) % 500 == 0)
			for (c = 0; c < 300; c++)
				obs(MW_NF_OBS_RECV, 900 + (uint64_t)c, 0, L80_ADDR, NULL,
				    (uint64_t)(30 * (now - t0 + 500) / 1000), 0, now);
		gd_engine_tick(&eng, now);
	}
	assert_int_equal(count(GD_CLOSE, "slow"), 0); /* they are not slow... */
	assert_src_levers(last_set("pressure"), true);
	assert_null(last_set("nat")); /* ...nor good exchanges */
	gd_engine_fini(&eng);

	/* (c) the benign address on port 9999, not a protected listener */
	now = 1000;
	start();
	obs(MW_NF_OBS_BIND, L80, L80, L80_ADDR, NULL, 0, 0, now);
	hold(3000, "10.231.0.2:9999", "192.168.12.12", 5000, 400, now);
	for (i = 0; i < 3; i++) { /* its good exchanges */
		obs(MW_NF_OBS_ACCEPT, 3000, id, "10.231.0.2:9999", "192.168.12.12:30000", 0, 0, now);
		obs(MW_NF_OBS_SEND, id, 0, "10.231.0.2:9999", NULL, 20, 90, now);
		obs(MW_NF_OBS_CLOSE, id++, 0, "10.231.0.2:9999", NULL, 20, 90, now);
	}
	hold(L80, L80_ADDR, "192.168.13.13", 900, 300, now);
	tick_until(&now, now + 1000);
	a = last_set("pressure");
	assert_non_null(a);
	assert_string_equal(a->target, L80_ADDR);
	assert_src_levers(a, true);
	assert_null(last_set("nat"));
}

/*
 * Prefixes: 40 attackers of one /24 (one slow connection each, far below block_slow)
 * are each blocked (slow_prefix), but not the one of them with a good exchange (NAT:
 * it counts in the prefix, 40 sources, but is not blocked), nor 10 of another /24
 * (below block_prefix_sources); 16 of one /64 likewise.
 */
static void test_prefix_blocks(void **state)
{
	int64_t now = 1000;
	char peer[64];
	uint64_t id = 900000;
	int c, i;

	start();
	obs(MW_NF_OBS_BIND, L80, L80, L80_ADDR, NULL, 0, 0, now);
	for (c = 0; c < 10; c++) {
		snprintf(peer, sizeof(peer), "10.9.1.%d:7000", c + 1);
		accept_conn(800 + (uint64_t)c, peer, now);
	}
	for (c = 0; c < 16; c++) {
		snprintf(peer, sizeof(peer), "[2001:db8:0:7::%x]:7000", c + 1);
		accept_conn(850 + (uint64_t)c, peer, now);
	}
	/* 10.9.0.40 also fetched a page well: it is a NAT address with good clients. */
	for (i = 0; i < 3; i++) {
		accept_conn(id, "10.9.0.40:30000", now);
		obs(MW_NF_OBS_SEND, id, 0, L80_ADDR, NULL, 80, 900, now);
		obs(MW_NF_OBS_CLOSE, id++, 0, L80_ADDR, NULL, 80, 900, now);
	}
	slow_headers(0, 40, 40, 100000, &now, now + 8000);
	/* The /64: one block of the prefix (guard.block_ipv6_prefix), not 16 addresses. */
	assert_int_equal(count(GD_BLOCK, "slow_prefix"), 39 + 1);
	assert_int_equal(count_target(GD_BLOCK, "10.9.1."), 0);
	assert_int_equal(count_target(GD_BLOCK, "10.9.0.40"), 0);
	assert_int_equal(count_target(GD_BLOCK, "2001:db8:0:7::/64"), 1);
	for (i = 0; i < nrec; i++)
		if (rec[i].kind == GD_BLOCK)
			assert_int_equal(rec[i].prefix_len, rec[i].addr.family == 6 ? 64 : 0);
	for (i = 0; i < nrec; i++)
		if (rec[i].kind == GD_BLOCK && !strncmp(rec[i].target, "10.9.0.", 7))
			assert_non_null(strstr(rec[i].evidence, "prefix=10.9.0.0,prefix_len=24,"
								"prefix_sources=40,prefix_slow=40,"
								"slow=1,conns=1"));
	assert_int_equal(count(GD_BLOCK, "slow_source"), 0);
	gd_engine_fini(&eng);
	/* block_prefix_sources = 0: per address only (none reaches block_slow). */
	cfg.guard.block_prefix_sources = 0;
	now = 1000;
	start();
	obs(MW_NF_OBS_BIND, L80, L80, L80_ADDR, NULL, 0, 0, now);
	slow_headers(0, 40, 40, 100000, &now, now + 8000);
	assert_true(count(GD_CLOSE, "slow") > 0);
	assert_int_equal(count(GD_BLOCK, NULL), 0);
	cfg.guard.block_prefix_sources = 16;
}

/* A fresh engine; sources @net1..4 ("2001:db8::"), 10 slow connections each, 6 s on. */
static void slow_four(const char *net, int64_t *now)
{
	char peer[64];
	int c;

	start();
	obs(MW_NF_OBS_BIND, L80, L80, L80_ADDR, NULL, 0, 0, *now);
	for (c = 0; c < 40; c++) {
		snprintf(peer, sizeof(peer), "[%s%x]:%d", net, c % 4 + 1, 7000 + c);
		accept_conn(900 + (uint64_t)c, peer, *now);
	}
	tick_until(now, *now + 6000);
}

/*
 * IPv6 sources are blocked as their /64 (guard.block_ipv6_prefix): one block each,
 * lifted as it was placed; 128 blocks each address; a /64 holding an address of
 * guard.allow is blocked address by address.
 */
static void test_ipv6_prefix_block(void **state)
{
	int64_t now = 1000;
	int c, i;

	slow_four("2001:db8:5:6::", &now);
	assert_int_equal(count(GD_BLOCK, NULL), 1);
	assert_int_equal(count_target(GD_BLOCK, "2001:db8:5:6::/64"), 1);
	for (c = 0; c < 40; c++)
		obs(MW_NF_OBS_CLOSE, 900 + (uint64_t)c, 0, L80_ADDR, NULL, 0, 0, now);
	nrec = 0;
	tick_until(&now, now + (int64_t)cfg.guard.block_expiry_s * 1000);
	assert_int_equal(count_target(GD_UNBLOCK, "2001:db8:5:6::/64"), 1);
	for (i = 0; i < nrec; i++)
		if (rec[i].kind == GD_UNBLOCK)
			assert_int_equal(rec[i].prefix_len, 64);
	gd_engine_fini(&eng);
	/* 128: each address. */
	cfg.guard.block_ipv6_prefix = 128;
	slow_four("2001:db8:5:6::", &now);
	assert_int_equal(count_target(GD_BLOCK, "2001:db8:5:6::"), 4);
	assert_int_equal(count_target(GD_BLOCK, "2001:db8:5:6::/64"), 0);
	gd_engine_fini(&eng);
	cfg.guard.block_ipv6_prefix = 64;
	/* An allowed address in the /64: the others are blocked one by one. */
	snprintf(cfg.guard.allow[0], sizeof(cfg.guard.allow[0]), "2001:db8:5:6::99/128");
	cfg.guard.allow_count = 1;
	slow_four("2001:db8:5:6::", &now);
	assert_int_equal(count_target(GD_BLOCK, "2001:db8:5:6::"), 4);
	assert_int_equal(count_target(GD_BLOCK, "2001:db8:5:6::/64"), 0);
	cfg.guard.allow_count = 0;
	gd_engine_fini(&eng);
	/* An IPv4 client of a dual-stack listener (::ffff:a.b.c.d): the address alone. */
	slow_four("::ffff:10.5.0.", &now);
	assert_int_equal(count(GD_BLOCK, NULL), 4);
	assert_int_equal(count_target(GD_BLOCK, "10.5.0."), 4); /* as mw-ins looks it up */
	for (i = 0; i < nrec; i++)
		if (rec[i].kind == GD_BLOCK)
			assert_int_equal(rec[i].prefix_len, 0);
	gd_engine_fini(&eng);
	/*
	 * Such clients are counted in their /24, not together in ::/64: 16 of them, each
	 * from another /24 with one slow connection, make no prefix (every one of them
	 * was blocked on the old engine), while 10.5.0.1 with 40 is blocked.
	 */
	slow_four("::ffff:10.5.0.", &now);
	for (c = 0; c < 16; c++) {
		char peer[64];

		snprintf(peer, sizeof(peer), "[::ffff:10.%d.0.1]:7000", 20 + c);
		accept_conn(2000 + (uint64_t)c, peer, now);
	}
	nrec = 0;
	tick_until(&now, now + 6000);
	assert_int_equal(count(GD_BLOCK, "slow_prefix"), 0);
}

/* The last block of @target (NULL: of any). */
static const struct gd_action *last_block_of(const char *target)
{
	int i;

	for (i = nrec - 1; i >= 0; i--)
		if (rec[i].kind == GD_BLOCK && (!target || !strcmp(rec[i].target, target)))
			return &rec[i];
	return NULL;
}

static void close_all(uint64_t base, int n, int64_t now)
{
	int c;

	for (c = 0; c < n; c++)
		obs(MW_NF_OBS_CLOSE, base + (uint64_t)c, 0, L80_ADDR, NULL, 5, 0, now);
}

/* @n idle connections from @peer_ip, alternately by the INS of @a and @b; @ms on. */
static void idle_both(const char *peer_ip, int n, uint64_t a, uint64_t b, int64_t *now, int64_t ms)
{
	char peer[64];
	int c;

	for (c = 0; c < n; c++) {
		snprintf(peer, sizeof(peer), "%s:%d", peer_ip, 20000 + c);
		accept_conn((c % 2 ? b : a) + (uint64_t)c, peer, *now);
	}
	tick_until(now, *now + ms);
}

/*
 * A block rests on the INS that saw the offence: a compromised INS can report any
 * peer address.  Slow connections seen on INS 3 alone block the address on INS 3
 * (the action's socket names it); the same address offending later on INS 5 gets a
 * block on INS 5, not on every INS (a liar that rejoins under another id is still
 * one INS at a time); slow connections of one address on two INS at once block it on
 * every INS.  A block the address still offends through is sent again after 10 s
 * (its INS may have restarted under the same id).  Each is lifted where it was placed.
 */
static void test_block_scoped_to_ins(void **state)
{
	uint64_t on3 = mw_sockid_make(3, 2, MW_SOCKID_INS_ASSIGNED),
		 on5 = mw_sockid_make(5, 2, MW_SOCKID_INS_ASSIGNED);
	const struct gd_action *b;
	int64_t now = 1000;
	int c, scoped = 0, all = 0;

	start();
	obs(MW_NF_OBS_BIND, L80, L80, L80_ADDR, NULL, 0, 0, now);
	slow_headers(0, 1, 40, on3, &now, now + 6000);
	assert_int_equal(count(GD_BLOCK, "slow_source"), 1);
	b = last_block_of(NULL);
	assert_string_equal(b->target, "10.9.0.1");
	assert_int_equal(mw_sockid_ins(b->sock), 3);
	assert_int_equal(mw_sockid_pvm(b->sock), 2);
	assert_non_null(strstr(b->evidence, ",ins=3,pvm=2,"));
	/* Still offending on INS 3 ten seconds on: sent again, once. */
	tick_until(&now, now + 10000);
	assert_int_equal(count(GD_BLOCK, NULL), 2);
	b = last_block_of(NULL);
	assert_int_equal(mw_sockid_ins(b->sock), 3);
	assert_non_null(strstr(b->evidence, "resent=1,"));
	/* Later, on INS 5: blocked there too, not everywhere. */
	close_all(on3, 40, now);
	slow_headers(0, 1, 40, on5, &now, now + 6000);
	assert_int_equal(count(GD_BLOCK, "slow_source"), 3);
	b = last_block_of(NULL);
	assert_string_equal(b->target, "10.9.0.1");
	assert_int_equal(mw_sockid_ins(b->sock), 5);
	assert_null(strstr(b->evidence, "ins=all"));
	close_all(on5, 40, now);
	/* Another address, slow on two INS in one evaluation: every INS at once. */
	idle_both("10.8.0.1", 40, on5 + 100, on3 + 100, &now, 6000);
	b = last_block_of(NULL);
	assert_int_equal(count(GD_BLOCK, NULL), 4);
	assert_string_equal(b->target, "10.8.0.1");
	assert_int_equal(b->sock, 0);
	assert_non_null(strstr(b->evidence, ",ins=all,"));
	/* Each lifted where it was placed. */
	for (c = 0; c < 40; c++)
		obs(MW_NF_OBS_CLOSE, (c % 2 ? on3 : on5) + 100 + (uint64_t)c, 0, L80_ADDR, NULL, 0,
		    0, now);
	nrec = 0;
	tick_until(&now, now + (int64_t)cfg.guard.block_expiry_s * 1000);
	assert_int_equal(count(GD_UNBLOCK, "expiry"), 3);
	for (c = 0; c < nrec; c++) {
		if (rec[c].kind != GD_UNBLOCK)
			continue;
		if (rec[c].sock) {
			scoped++;
			assert_string_equal(rec[c].target, "10.9.0.1");
		} else {
			all++;
			assert_string_equal(rec[c].target, "10.8.0.1");
		}
	}
	assert_int_equal(scoped, 2);
	assert_int_equal(all, 1);
	assert_int_equal(eng.blocks.n, 0);
	assert_int_equal(eng.ins_blocks.n, 0); /* the per-INS counts went with them */
}

/*
 * Prefixes are counted per INS: 15 sources of a /24 slow on INS 3 and one on INS 5
 * make no prefix of 16 (block_prefix_sources); 16 on INS 3 do.
 */
static void test_prefix_per_ins(void **state)
{
	uint64_t on3 = mw_sockid_make(3, 0, MW_SOCKID_INS_ASSIGNED),
		 on5 = mw_sockid_make(5, 0, MW_SOCKID_INS_ASSIGNED);
	int64_t now = 1000;
	char peer[64];
	int c;

	start();
	obs(MW_NF_OBS_BIND, L80, L80, L80_ADDR, NULL, 0, 0, now);
	for (c = 0; c < 40; c++) { /* pressure: 40 slow connections */
		snprintf(peer, sizeof(peer), "10.6.%d.%d:7000", c / 200 + 1, c % 200 + 1);
		accept_conn(on3 + 1000 + (uint64_t)c, peer, now);
	}
	for (c = 0; c < 16; c++) {
		snprintf(peer, sizeof(peer), "10.9.0.%d:7000", c + 1);
		accept_conn((c < 15 ? on3 : on5) + (uint64_t)c, peer, now);
	}
	tick_until(&now, now + 8000);
	assert_int_equal(count_target(GD_BLOCK, "10.9.0."), 0);
	assert_int_equal(count(GD_BLOCK, "slow_prefix"), 40); /* 10.6.1.0/24 on INS 3 */
	obs(MW_NF_OBS_CLOSE, on5 + 15, 0, L80_ADDR, NULL, 0, 0, now);
	accept_conn(on3 + 15, "10.9.0.16:7001", now);
	tick_until(&now, now + 8000);
	assert_int_equal(count_target(GD_BLOCK, "10.9.0."), 16);
}

/*
 * Once clients came through INS 3 and 9, a compromised INS 9 reporting 40 made-up
 * slow sources gets at most half of max_blocks (16) on itself; an attacker seen on INS 3 is still
 * blocked there (on the old engine the liar's blocks filled the table and that block was dropped).
 */
static void test_block_share_per_ins(void **state)
{
	uint64_t on3 = mw_sockid_make(3, 0, MW_SOCKID_INS_ASSIGNED),
		 on9 = mw_sockid_make(9, 0, MW_SOCKID_INS_ASSIGNED);
	int64_t now = 1000;
	char peer[64];
	int c, liar = 0;

	cfg.guard.max_blocks = 16;
	cfg.guard.block_slow = 1;
	cfg.guard.block_prefix_sources = 0;
	start();
	obs(MW_NF_OBS_BIND, L80, L80, L80_ADDR, NULL, 0, 0, now);
	accept_conn(on3 + 100, "10.1.0.1:7000", now); /* clients on both INS before */
	accept_conn(on9 + 100, "10.1.0.2:7000", now);
	gd_engine_tick(&eng, now);
	obs(MW_NF_OBS_CLOSE, on3 + 100, 0, L80_ADDR, NULL, 0, 0, now);
	obs(MW_NF_OBS_CLOSE, on9 + 100, 0, L80_ADDR, NULL, 0, 0, now);
	for (c = 0; c < 40; c++) {
		snprintf(peer, sizeof(peer), "10.66.0.%d:7000", c + 1);
		accept_conn(on9 + (uint64_t)c, peer, now);
	}
	tick_until(&now, now + 5000);
	accept_conn(on3 + 1, "10.9.0.1:7000", now);
	tick_until(&now, now + 5000);
	for (c = 0; c < nrec; c++)
		liar += rec[c].kind == GD_BLOCK && mw_sockid_ins(rec[c].sock) == 9;
	assert_int_equal(liar, 8);
	assert_int_equal(count_target(GD_BLOCK, "10.9.0.1"), 1);
	assert_int_equal(mw_sockid_ins(last_block_of(NULL)->sock), 3);
	assert_true(eng.blocks.drops > 0);
}

/*
 * A block of every INS (slow on INS 3 and 5 at once) is not kept alive by one INS:
 * when only INS 9 goes on reporting the address slow, that block expires and the
 * address is blocked on INS 9 alone (on the old engine INS 9's reports renewed the
 * block of every INS every 10 s, for as long as it liked).
 */
static void test_block_all_not_renewed_by_one(void **state)
{
	uint64_t on3 = mw_sockid_make(3, 0, MW_SOCKID_INS_ASSIGNED),
		 on5 = mw_sockid_make(5, 0, MW_SOCKID_INS_ASSIGNED),
		 on9 = mw_sockid_make(9, 0, MW_SOCKID_INS_ASSIGNED);
	int64_t now = 1000;
	int i, all_unblocked = 0, renewed = 0;

	cfg.guard.block_expiry_s = 30;
	start();
	obs(MW_NF_OBS_BIND, L80, L80, L80_ADDR, NULL, 0, 0, now);
	idle_both("10.9.0.1", 40, on3, on5, &now, 6000);
	assert_int_equal(count(GD_BLOCK, NULL), 1);
	assert_int_equal(last_block_of(NULL)->sock, 0);
	close_all(on3, 40, now);
	close_all(on5, 40, now);
	idle_both("10.9.0.1", 40, on9 + 1000, on9 + 1000, &now, 60000);
	for (i = 0; i < nrec; i++) {
		all_unblocked += rec[i].kind == GD_UNBLOCK && !rec[i].sock;
		renewed += rec[i].kind == GD_BLOCK && !rec[i].sock;
	}
	assert_int_equal(renewed, 1); /* the first, never again */
	assert_int_equal(all_unblocked, 1);
	assert_int_equal(mw_sockid_ins(last_block_of(NULL)->sock), 9);
}

/* @n idle connections of @ip on the INS of @ins, ids from @ins + @first. */
static void conns_on(const char *ip, uint64_t ins, uint64_t first, int n, int64_t now)
{
	char peer[96];
	int c;

	for (c = 0; c < n; c++) {
		snprintf(peer, sizeof(peer), "%s:%d", ip, 20000 + (int)first + c);
		accept_conn(ins + first + (uint64_t)c, peer, now);
	}
}

/* How many blocks of @target were placed on every INS. */
static int blocks_all(const char *target)
{
	int i, n = 0;

	for (i = 0; i < nrec; i++)
		n += rec[i].kind == GD_BLOCK && !strcmp(rec[i].target, target) && !rec[i].sock;
	return n;
}

/* A good exchange of @peer on the INS of @sock: a request, its answer, closed by itself. */
static void good_exchange(uint64_t sock, const char *peer, int64_t now)
{
	accept_conn(sock, peer, now);
	obs(MW_NF_OBS_RECV, sock, 0, L80_ADDR, peer, 80, 0, now);
	obs(MW_NF_OBS_SEND, sock, 0, L80_ADDR, peer, 80, 900, now);
	obs(MW_NF_OBS_CLOSE, sock, 0, L80_ADDR, peer, 80, 900, now);
}

/*
 * 40 idle connections of @ip, alternately on the INS of @a and @b, for @ms, while
 * the INS of each of @good[0..@ngood) reports a good exchange of @ip every 0.5 s.
 */
static void offend_while_good(const char *ip, uint64_t a, uint64_t b, const uint64_t *good,
			      int ngood, int64_t *now, int64_t ms)
{
	int64_t end = *now + ms;
	char peer[64];
	uint64_t n = 0;
	int g;

	idle_both(ip, 40, a, b, now, 0);
	for (; *now < end; *now += cfg.guard.tick_ms) {
		if (*now % 500 == 0) {
			snprintf(peer, sizeof(peer), "%s:%d", ip, 40000 + (int)(n % 20000));
			for (g = 0; g < ngood; g++)
				good_exchange(good[g] + 5000 + n++, peer, *now);
		}
		gd_engine_tick(&eng, *now);
	}
}

/* How many blocks of @target were placed on the INS of @ins. */
static int blocks_on(const char *target, uint64_t ins)
{
	int i, n = 0;

	for (i = 0; i < nrec; i++)
		n += rec[i].kind == GD_BLOCK && !strcmp(rec[i].target, target) && rec[i].sock &&
		     mw_sockid_ins(rec[i].sock) == mw_sockid_ins(ins);
	return n;
}

/*
 * Good evidence spares an address a block only on the INS that saw it.  A
 * compromised INS 9 reporting good exchanges "from" an attacker does not spare it
 * on INS 3, where it offends (on the old engine one good exchange reported by any
 * INS spared it on every INS: the attacker was only ever closed connection by
 * connection).  Good exchanges on INS 3 itself do (a NAT's benign clients there).
 * Nor does the liar spare it by offending itself too, whatever the order the
 * connections are met in: with good evidence somewhere, an address offending on
 * several INS is blocked on each that did not see it good.  Seen good on every INS
 * it offends on, or on 8 INS holding connections: spared.
 */
static void test_good_evidence_per_ins(void **state)
{
	uint64_t on3 = mw_sockid_make(3, 0, MW_SOCKID_INS_ASSIGNED),
		 on5 = mw_sockid_make(5, 0, MW_SOCKID_INS_ASSIGNED),
		 on6 = mw_sockid_make(6, 0, MW_SOCKID_INS_ASSIGNED),
		 on7 = mw_sockid_make(7, 0, MW_SOCKID_INS_ASSIGNED),
		 on9 = mw_sockid_make(9, 0, MW_SOCKID_INS_ASSIGNED);
	const uint64_t liar[] = { on9 + 1000000 }, self3[] = { on3 + 1000000 },
		       liar5[] = { on9 + 2000000, on5 + 2000000 },
		       both[] = { on3 + 3000000, on5 + 3000000 },
		       eight[] = { on3 + 4000000,
				   on5 + 4000000,
				   on7 + 4000000,
				   on9 + 4000000,
				   mw_sockid_make(10, 0, MW_SOCKID_INS_ASSIGNED) + 4000000,
				   mw_sockid_make(11, 0, MW_SOCKID_INS_ASSIGNED) + 4000000,
				   mw_sockid_make(12, 0, MW_SOCKID_INS_ASSIGNED) + 4000000,
				   mw_sockid_make(13, 0, MW_SOCKID_INS_ASSIGNED) + 4000000 };
	uint64_t dead[8];
	int64_t now = 1000;
	int c;

	start();
	obs(MW_NF_OBS_BIND, L80, L80, L80_ADDR, NULL, 0, 0, now);
	offend_while_good("10.9.0.1", on3, on3, liar, 1, &now, 8000);
	assert_int_equal(count_target(GD_BLOCK, "10.9.0.1"), 1);
	assert_int_equal(blocks_on("10.9.0.1", on3), 1);
	/* Good where it offends: spared. */
	offend_while_good("10.9.0.2", on3 + 100, on3 + 100, self3, 1, &now, 8000);
	assert_int_equal(count_target(GD_BLOCK, "10.9.0.2"), 0);
	/* The liar offends too (its connections met first or second: both orders) and
	 * reports good: blocked on INS 3, not spared, not on the liar. */
	offend_while_good("10.9.0.3", on9 + 200, on3 + 200, liar, 1, &now, 8000);
	assert_int_equal(count_target(GD_BLOCK, "10.9.0.3"), 1);
	assert_int_equal(blocks_on("10.9.0.3", on3), 1);
	offend_while_good("10.9.0.4", on3 + 300, on9 + 300, liar, 1, &now, 8000);
	assert_int_equal(count_target(GD_BLOCK, "10.9.0.4"), 1);
	assert_int_equal(blocks_on("10.9.0.4", on3), 1);
	/* On INS 3 and 5, good on 5 (and on the liar): blocked on 3 alone. */
	offend_while_good("10.9.0.5", on3 + 400, on5 + 400, liar5, 2, &now, 8000);
	assert_int_equal(count_target(GD_BLOCK, "10.9.0.5"), 1);
	assert_int_equal(blocks_on("10.9.0.5", on3), 1);
	/* Good on both INS it offends on: spared everywhere. */
	offend_while_good("10.9.0.6", on3 + 500, on5 + 500, both, 2, &now, 8000);
	assert_int_equal(count_target(GD_BLOCK, "10.9.0.6"), 0);
	/* Seen good on 8 INS that hold connections (a NAT spread by round robin): spared,
	 * even on INS 6; on 7 of them (the liar among them), blocked on INS 6. */
	for (c = 0; c < 8; c++)
		conns_on("10.1.1.1", eight[c], 100, 1, now);
	offend_while_good("10.9.0.7", on6 + 600, on6 + 600, eight, 8, &now, 8000);
	assert_int_equal(count_target(GD_BLOCK, "10.9.0.7"), 0);
	offend_while_good("10.9.0.8", on6 + 700, on6 + 700, eight, 7, &now, 8000);
	assert_int_equal(count_target(GD_BLOCK, "10.9.0.8"), 1);
	assert_int_equal(blocks_on("10.9.0.8", on6), 1);
	/* Good on 8 INS that hold no connection: a liar rejoining under fresh ids (mw-pvm
	 * reaps the old ones' connections) is one INS of them, not 8: blocked on INS 6. */
	for (c = 0; c < 8; c++)
		dead[c] = mw_sockid_make((uint16_t)(40 + c), 0, MW_SOCKID_INS_ASSIGNED) + 6000000;
	offend_while_good("10.9.0.9", on6 + 800, on6 + 800, dead, 8, &now, 8000);
	assert_int_equal(count_target(GD_BLOCK, "10.9.0.9"), 1);
	assert_int_equal(blocks_on("10.9.0.9", on6), 1);
}

/*
 * A prefix counts every offending address, whatever good evidence there is: 16
 * addresses of 10.7.0.0/24, each with a slow connection on two of eight honest INS
 * (4 per INS), make a prefix of 16 across INS and each is blocked on its two INS.
 * A liar's good report of each must not split them into 4 per INS, below the
 * threshold (as it did on 21bc1b0, where prefixes followed the blocks' scopes).
 */
static void test_prefix_not_split_by_good(void **state)
{
	uint64_t on9 = mw_sockid_make(9, 0, MW_SOCKID_INS_ASSIGNED), n = 0;
	int64_t now = 1000, end;
	char peer[64];
	int c;

	start();
	obs(MW_NF_OBS_BIND, L80, L80, L80_ADDR, NULL, 0, 0, now);
	for (c = 0; c < 40; c++) { /* pressure: 40 slow connections of other addresses */
		snprintf(peer, sizeof(peer), "10.6.1.%d:7000", c + 1);
		accept_conn(mw_sockid_make(1, 0, MW_SOCKID_INS_ASSIGNED) + 1000 + (uint64_t)c, peer,
			    now);
	}
	for (c = 0; c < 16; c++) {
		snprintf(peer, sizeof(peer), "10.7.0.%d:7000", c + 1);
		accept_conn(mw_sockid_make((uint16_t)(1 + c % 8), 0, MW_SOCKID_INS_ASSIGNED) + 100 +
				    (uint64_t)c,
			    peer, now);
		accept_conn(mw_sockid_make((uint16_t)(1 + (c + 1) % 8), 0, MW_SOCKID_INS_ASSIGNED) +
				    200 + (uint64_t)c,
			    peer, now);
	}
	for (end = now + 8000; now < end; now += cfg.guard.tick_ms) {
		if (now % 500 == 0)
			for (c = 0; c < 16; c++) {
				snprintf(peer, sizeof(peer), "10.7.0.%d:40000", c + 1);
				good_exchange(on9 + 5000 + n++, peer, now);
			}
		gd_engine_tick(&eng, now);
	}
	assert_int_equal(count_target(GD_BLOCK, "10.7.0."), 32);
	assert_int_equal(count(GD_BLOCK, "slow_source"), 0); /* two slow each: under block_slow */
	for (c = 0; c < nrec; c++)
		if (rec[c].kind == GD_BLOCK && !strncmp(rec[c].target, "10.7.0.", 7))
			assert_non_null(strstr(rec[c].evidence,
					       "prefix_ins=any,prefix=10.7.0.0,prefix_len=24,"
					       "prefix_sources=16,prefix_beyond=16,prefix_slow=32,"
					       "slow=2,conns=2,ins_slow=1,ins="));
}

/*
 * Slow connections are counted per INS: a liar's count never adds to an honest INS's.
 * On the old engine (counts summed over every INS) a compromised INS 9 reporting 8
 * made-up slow connections of a client holding one real slow connection on INS 3
 * got that client blocked on every INS; now it is blocked on INS 9 alone.  An
 * attacker spread over INS 3, 5 and 6 (4 each) is still blocked everywhere: 8
 * (block_slow) but those of the INS with the most; 7 on each of two INS are not
 * (the bound an attacker spread by round robin stays under); one on each of 12 INS
 * (more than the 8 tracked one by one) is.  Prefixes likewise: 16 sources of
 * 10.5.0.0/24 slow on INS 3, 8 of them reported slow by the liar too, are all
 * blocked on INS 3 (the old engine moved those 8 to a count of every INS and left 8
 * on INS 3, both under block_prefix_sources: none was blocked); 16 of 10.3.0.0/24
 * that the liar all reports slow too are blocked on INS 3 and on the liar, not on
 * every INS (the old engine did: one slow connection on an honest INS is not enough
 * for that); a client with one slow connection on INS 3 that the liar reports slow
 * with 15 made-up neighbours of its /24 is blocked on the liar alone, as are they.
 */
static void test_slow_counted_per_ins(void **state)
{
	uint64_t on1 = mw_sockid_make(1, 0, MW_SOCKID_INS_ASSIGNED),
		 on3 = mw_sockid_make(3, 0, MW_SOCKID_INS_ASSIGNED),
		 on5 = mw_sockid_make(5, 0, MW_SOCKID_INS_ASSIGNED),
		 on6 = mw_sockid_make(6, 0, MW_SOCKID_INS_ASSIGNED),
		 on9 = mw_sockid_make(9, 0, MW_SOCKID_INS_ASSIGNED);
	int64_t now = 1000;
	char ip[64];
	int c;

	start();
	obs(MW_NF_OBS_BIND, L80, L80, L80_ADDR, NULL, 0, 0, now);
	for (c = 0; c < 40; c++) { /* pressure: 40 slow connections of other addresses */
		snprintf(ip, sizeof(ip), "10.6.1.%d", c + 1);
		conns_on(ip, on1, 1000 + (uint64_t)c, 1, now);
	}
	conns_on("10.9.0.1", on3, 100, 1, now);
	conns_on("10.9.0.1", on9, 100, 8, now);
	conns_on("10.9.0.2", on3, 200, 4, now);
	conns_on("10.9.0.2", on5, 200, 4, now);
	conns_on("10.9.0.2", on6, 200, 4, now);
	conns_on("10.9.0.3", on3, 300, 7, now);
	conns_on("10.9.0.3", on5, 300, 7, now);
	for (c = 0; c < 16; c++) {
		snprintf(ip, sizeof(ip), "10.5.0.%d", c + 1);
		conns_on(ip, on3, 400 + (uint64_t)c, 1, now);
		if (c < 8)
			conns_on(ip, on9, 400 + (uint64_t)c, 1, now);
		snprintf(ip, sizeof(ip), "10.4.0.%d", c + 1);
		if (!c)
			conns_on(ip, on3, 500, 1, now);
		conns_on(ip, on9, 500 + (uint64_t)c, 1, now);
		snprintf(ip, sizeof(ip), "10.3.0.%d", c + 1);
		conns_on(ip, on3, 700 + (uint64_t)c, 1, now);
		conns_on(ip, on9, 700 + (uint64_t)c, 1, now);
	}
	for (c = 0; c < 12; c++)
		conns_on("10.9.0.4", mw_sockid_make((uint16_t)(20 + c), 0, MW_SOCKID_INS_ASSIGNED),
			 600, 1, now);
	tick_until(&now, now + 8000);
	assert_int_equal(blocks_on("10.9.0.1", on9), 1);
	assert_int_equal(count_target(GD_BLOCK, "10.9.0.1"), 1);
	assert_int_equal(blocks_all("10.9.0.2"), 1);
	assert_int_equal(count_target(GD_BLOCK, "10.9.0.2"), 1);
	assert_int_equal(count_target(GD_BLOCK, "10.9.0.3"), 0);
	assert_int_equal(blocks_all("10.9.0.4"), 1);
	assert_int_equal(count_target(GD_BLOCK, "10.9.0.4"), 1);
	assert_int_equal(count_target(GD_BLOCK, "10.5.0."), 16);
	assert_int_equal(count_target(GD_BLOCK, "10.4.0."), 16);
	assert_int_equal(count_target(GD_BLOCK, "10.6.1."), 40);
	assert_int_equal(count_target(GD_BLOCK, "10.3.0."), 32);
	for (c = 0; c < 16; c++) {
		snprintf(ip, sizeof(ip), "10.5.0.%d", c + 1);
		assert_int_equal(blocks_on(ip, on3), 1);
		snprintf(ip, sizeof(ip), "10.4.0.%d", c + 1);
		assert_int_equal(blocks_on(ip, on9), 1);
		snprintf(ip, sizeof(ip), "10.3.0.%d", c + 1);
		assert_int_equal(blocks_on(ip, on3), 1);
		assert_int_equal(blocks_on(ip, on9), 1);
	}
	/* What each rests on: the INS's own count, or the count beyond the largest. */
	for (c = 0; c < nrec; c++) {
		if (rec[c].kind != GD_BLOCK)
			continue;
		if (!strcmp(rec[c].target, "10.9.0.1"))
			assert_non_null(
				strstr(rec[c].evidence, "slow=9,conns=9,ins_slow=8,ins=9,"));
		if (!strcmp(rec[c].target, "10.9.0.2"))
			assert_non_null(
				strstr(rec[c].evidence, "slow=12,conns=12,slow_beyond=8,ins=all,"));
		if (!strcmp(rec[c].target, "10.9.0.4"))
			assert_non_null(strstr(rec[c].evidence,
					       "slow=12,conns=12,slow_beyond=11,ins=all,"));
		if (!strcmp(rec[c].target, "10.3.0.1"))
			assert_non_null(strstr(rec[c].evidence, "prefix_sources=16,prefix_slow=16,"
								"slow=2,conns=2,ins_slow=1,"));
	}
	for (c = 0; c < nrec; c++)
		if (rec[c].kind == GD_BLOCK && !strncmp(rec[c].target, "10.6.1.", 7))
			assert_int_equal(mw_sockid_ins(rec[c].sock), 1);
}

/*
 * A liar cannot hide an offence by adding to it.  With block_slow 16, an address
 * slow on nine honest INS (1 on each of seven, 10 on two more) has 17 beyond the INS
 * with the most: blocked on every INS, the liar reporting one more or silent (counts
 * kept for only the first 8 INS met would let one report of the liar push an INS
 * out of the count, and the block with it).  Seen good on one honest INS, it is
 * blocked on each of the 8 others it offends on, and on the liar.
 * With small tables, prefixes spread over INS are all counted (the prefix table
 * holds an entry per offence and per source: none is dropped).
 */
static void test_liar_cannot_hide_offence(void **state)
{
	uint64_t on9 = mw_sockid_make(9, 0, MW_SOCKID_INS_ASSIGNED), ins[9];
	int64_t now = 1000;
	char ip[64];
	int c;

	cfg.guard.block_slow = 16;
	cfg.guard.block_prefix_sources = 0;
	start();
	obs(MW_NF_OBS_BIND, L80, L80, L80_ADDR, NULL, 0, 0, now);
	for (c = 0; c < 9; c++)
		ins[c] = mw_sockid_make((uint16_t)(11 + c), 0, MW_SOCKID_INS_ASSIGNED);
	for (c = 0; c < 9; c++) {
		conns_on("10.9.0.1", ins[c], 100 * (uint64_t)c, c < 7 ? 1 : 10, now);
		conns_on("10.9.0.2", ins[c], 2000 + 100 * (uint64_t)c, c < 7 ? 1 : 10, now);
		conns_on("10.9.0.3", ins[c], 4000 + 100 * (uint64_t)c, c < 7 ? 1 : 10, now);
	}
	conns_on("10.9.0.1", on9, 0, 1, now);
	conns_on("10.9.0.2", on9, 2000, 1, now);
	good_exchange(ins[0] + 5000, "10.9.0.2:40000", now);
	tick_until(&now, now + 8000);
	assert_int_equal(blocks_all("10.9.0.1"), 1);
	assert_int_equal(count_target(GD_BLOCK, "10.9.0.1"), 1);
	assert_int_equal(blocks_all("10.9.0.3"), 1); /* the liar silent: the same */
	assert_int_equal(count_target(GD_BLOCK, "10.9.0.3"), 1);
	assert_int_equal(blocks_all("10.9.0.2"), 0);
	assert_int_equal(blocks_on("10.9.0.2", ins[0]), 0);
	for (c = 1; c < 9; c++)
		assert_int_equal(blocks_on("10.9.0.2", ins[c]), 1);
	assert_int_equal(blocks_on("10.9.0.2", on9), 1);
	gd_engine_fini(&eng);

	cfg.guard.block_slow = 8;
	cfg.guard.block_prefix_sources = 16;
	cfg.guard.max_conns = 128;
	cfg.guard.max_sources = 32;
	now = 1000;
	start();
	obs(MW_NF_OBS_BIND, L80, L80, L80_ADDR, NULL, 0, 0, now);
	for (c = 0; c < 16; c++) { /* a prefix, each on two of eight INS */
		snprintf(ip, sizeof(ip), "10.7.0.%d", c + 1);
		conns_on(ip, mw_sockid_make((uint16_t)(1 + c % 8), 0, MW_SOCKID_INS_ASSIGNED),
			 100 + (uint64_t)c, 1, now);
		conns_on(ip, mw_sockid_make((uint16_t)(1 + (c + 1) % 8), 0, MW_SOCKID_INS_ASSIGNED),
			 200 + (uint64_t)c, 1, now);
		snprintf(ip, sizeof(ip), "10.%d.1.1", 20 + c); /* others, alone in theirs */
		conns_on(ip, mw_sockid_make((uint16_t)(1 + c % 8), 0, MW_SOCKID_INS_ASSIGNED),
			 300 + (uint64_t)c, 1, now);
		conns_on(ip, mw_sockid_make((uint16_t)(1 + (c + 3) % 8), 0, MW_SOCKID_INS_ASSIGNED),
			 400 + (uint64_t)c, 1, now);
	}
	tick_until(&now, now + 8000);
	assert_int_equal(eng.prefixes.drops, 0);
	assert_int_equal(count_target(GD_BLOCK, "10.7.0."), 32);
}

/*
 * Shares of the tables: a compromised INS 9 filling them with made-up connections
 * from as many addresses (mw-pvm lets one INS hold as many as max_conns) does not
 * leave an attacker on INS 3 untracked: INS 3, under half of the connections, takes
 * the room of the liar's, the source of a connection evicted so is left without
 * connections and gives its room to the attacker's, and the attacker is blocked
 * there (on the old engine its connections were dropped: never closed nor blocked).
 * The liar, over its half, takes nothing back; an INS alone may fill a table.  Nor
 * do made-up good exchanges from as many addresses as max_sources keep a new source
 * out (they are sources without connections: room for a new one).  The per-INS
 * counts always add up to the table's entries.
 */
static void check_counts(bool evaluated)
{
	const struct gd_ins_count *n;
	const struct gd_source *src;
	const struct gd_conn *c;
	struct gd_addrkey key;
	size_t i, j, total = 0, held = 0, mine;

	for (i = 0; i < eng.ins_conns.cap; i++) {
		if (!(n = gd_tab_slot(&eng.ins_conns, i)))
			continue;
		total += n->n;
		for (j = 0, mine = 0; j < eng.conns.cap; j++)
			if ((c = gd_tab_slot(&eng.conns, j)))
				mine += gd_ins_key(c->id) == n->ins;
		assert_int_equal(mine, n->n); /* each INS's count is its connections */
	}
	assert_int_equal(total, eng.conns.n);
	for (i = 0; i < eng.sources.cap; i++) {
		if (!(src = gd_tab_slot(&eng.sources, i)))
			continue;
		held += src->conns;
		for (j = 0, mine = 0; j < eng.conns.cap; j++) {
			if (!(c = gd_tab_slot(&eng.conns, j)))
				continue;
			gd_addrkey_from(&key, &c->peer);
			mine += !memcmp(&key, &src->key, sizeof(key)) &&
				(evaluated || !c->sourceless);
		}
		assert_int_equal(mine, src->conns); /* exact, and all of them once evaluated */
	}
	assert_true(held <= eng.conns.n);
}

static void test_tables_shared_per_ins(void **state)
{
	uint64_t on3 = mw_sockid_make(3, 0, MW_SOCKID_INS_ASSIGNED),
		 on9 = mw_sockid_make(9, 0, MW_SOCKID_INS_ASSIGNED),
		 on10 = mw_sockid_make(10, 0, MW_SOCKID_INS_ASSIGNED);
	struct gd_addrkey key;
	struct mw_addr a;
	int64_t now = 1000;
	char ip[64];
	int c;

	cfg.guard.max_conns = 64;
	cfg.guard.max_sources = 64;
	start();
	obs(MW_NF_OBS_BIND, L80, L80, L80_ADDR, NULL, 0, 0, now);
	for (c = 0; c < 64; c++) {
		snprintf(ip, sizeof(ip), "10.66.%d.1", c + 1);
		conns_on(ip, on9, (uint64_t)c, 1, now);
	}
	assert_int_equal(eng.conns.n, 64);
	assert_int_equal(eng.sources.n, 64);
	conns_on("10.9.0.1", on3, 1000, 20, now);
	assert_int_equal(gd_ins_count_get(&eng.ins_conns, gd_ins_key(on3)), 20);
	assert_int_equal(gd_ins_count_get(&eng.ins_conns, gd_ins_key(on9)), 44);
	assert_int_equal(eng.conns.evictions, 20);
	assert_int_equal(eng.sources.evictions, 1);
	assert_int_equal(mw_addr_parse(&a, "10.9.0.1:0"), 0);
	gd_addrkey_from(&key, &a);
	assert_non_null(gd_tab_find(&eng.sources, &key));
	check_counts(false);
	/* The liar over its half: its new ones are dropped. */
	conns_on("10.67.0.1", on9, 2000, 10, now);
	assert_int_equal(gd_ins_count_get(&eng.ins_conns, gd_ins_key(on9)), 44);
	assert_int_equal(eng.conns.evictions, 20);
	tick_until(&now, now + 8000);
	assert_int_equal(blocks_on("10.9.0.1", on3), 1);
	assert_non_null(strstr(last_block_of("10.9.0.1")->evidence, "slow=20,conns=20,"));
	check_counts(true);
	close_all(on3 + 1000, 20, now);
	gd_engine_forget(&eng, on9 + 63);
	check_counts(false);
	gd_engine_fini(&eng);

	start();
	conns_on("10.9.0.1", on3, 0, 70, now);
	assert_int_equal(eng.conns.n, 64);
	assert_int_equal(eng.conns.evictions, 0);
	assert_int_equal(eng.conns.drops, 6);
	gd_engine_fini(&eng);

	/* A liar holding half under each of two ids (the old one's closes lost): the
	 * INS that need room end with equal shares, not none. */
	start();
	for (c = 0; c < 64; c++) {
		snprintf(ip, sizeof(ip), "10.66.%d.1", c + 1);
		conns_on(ip, c < 32 ? on9 : on10, (uint64_t)c, 1, now);
	}
	conns_on("10.9.0.1", on3, 1000, 30, now);
	c = (int)gd_ins_count_get(&eng.ins_conns, gd_ins_key(on3)); /* 64 / 3, within one */
	assert_true(c >= 21 && c <= 22);
	assert_true(gd_ins_count_get(&eng.ins_conns, gd_ins_key(on9)) <= (uint32_t)c + 1);
	assert_true(gd_ins_count_get(&eng.ins_conns, gd_ins_key(on10)) <= (uint32_t)c + 1);
	check_counts(false);
	gd_engine_fini(&eng);

	/* Made-up good exchanges from 16 addresses fill 16 sources: room all the same. */
	cfg.guard.max_sources = 16;
	start();
	obs(MW_NF_OBS_BIND, L80, L80, L80_ADDR, NULL, 0, 0, now);
	for (c = 0; c < 16; c++) {
		snprintf(ip, sizeof(ip), "10.66.%d.1:4000", c + 1);
		good_exchange(on9 + (uint64_t)c, ip, now);
	}
	assert_int_equal(eng.sources.n, 16);
	conns_on("10.9.0.1", on3, 1000, 40, now); /* pressure_slow: 32 */
	assert_non_null(gd_tab_find(&eng.sources, &key));
	assert_int_equal(eng.sources.evictions, 1);
	assert_int_equal(eng.sources.drops, 0);
	tick_until(&now, now + 8000);
	assert_int_equal(blocks_on("10.9.0.1", on3), 1);
	check_counts(false);
}

/*
 * The shares under a random stream: accepts from four INS (one with 5 in 8 of them)
 * and 40 addresses, bytes,
 * closes, forgets and ticks, into tables of 64 connections and 16 sources: after
 * every step the per-INS counts add up to the tables' entries, and after a tick the
 * sources count no more connections than the table holds (a fixed seed: the same
 * stream every run).
 */
static void test_tables_random_stream(void **state)
{
	uint64_t open[256], id;
	int64_t now = 1000;
	uint32_t r = 12345, op;
	int nopen = 0, step, k;
	size_t i, held;
	char peer[64];

	cfg.guard.max_conns = 64;
	cfg.guard.max_sources = 16;
	start();
	obs(MW_NF_OBS_BIND, L80, L80, L80_ADDR, NULL, 0, 0, now);
	for (step = 0; step < 20000; step++) {
		r = r * 1103515245u + 12345u;
		op = (r >> 16) % 10;
		if (op < 5 && nopen < 256) {
			k = (int)((r >> 4) % 8); /* INS 1 takes 5 in 8: over its half */
			id = mw_sockid_make((uint16_t)(k < 5 ? 1 : k - 3), 0,
					    MW_SOCKID_INS_ASSIGNED) +
			     (uint64_t)step;
			snprintf(peer, sizeof(peer), "10.0.%u.%u:7000", (r >> 8) % 2,
				 (r >> 10) % 20 + 1);
			accept_conn(id, peer, now);
			open[nopen++] = id;
		} else if (op < 8 && nopen) {
			k = (int)((r >> 4) % (uint32_t)nopen);
			if (op == 7)
				gd_engine_forget(&eng, open[k]);
			else
				obs(MW_NF_OBS_CLOSE, open[k], 0, L80_ADDR, NULL, 80,
				    op == 6 ? 900 : 0, now);
			open[k] = open[--nopen];
		} else if (op == 8 && nopen) {
			obs(MW_NF_OBS_RECV, open[(r >> 4) % (uint32_t)nopen], 0, L80_ADDR, NULL,
			    (uint64_t)step, 0, now);
		} else {
			now += cfg.guard.tick_ms;
			nrec = 0;
			gd_engine_tick(&eng, now);
			for (i = 0, held = 0; i < eng.sources.cap; i++) {
				const struct gd_source *src = gd_tab_slot(&eng.sources, i);

				held += src ? src->conns : 0;
			}
			assert_true(held <= eng.conns.n);
		}
		check_counts(op == 9);
	}
	assert_true(eng.conns.evictions > 0);
	assert_true(eng.sources.evictions > 0);
}

/* Full tables: observations beyond them are dropped and counted, nothing breaks. */
static void test_tables_full(void **state)
{
	int64_t now = 1000;
	char peer[64];
	int c;

	cfg.guard.max_conns = 64;
	cfg.guard.max_sources = 16;
	start();
	for (c = 0; c < 100; c++) {
		snprintf(peer, sizeof(peer), "10.7.%d.%d:9000", c / 200, c % 200 + 1);
		accept_conn(5000 + (uint64_t)c, peer, now);
	}
	for (c = 0; c < 70; c++)
		obs(MW_NF_OBS_ACCEPT, 6000 + (uint64_t)c, 6001 + (uint64_t)c, "10.231.0.2:1000",
		    "10.6.0.1:1", 0, 0, now); /* 70 listeners */
	assert_int_equal(eng.conns.n, 64);
	assert_int_equal(eng.conns.drops, 36); /* unprotected listeners' connections: not kept */
	assert_int_equal(eng.sources.n, 16);
	assert_int_equal(eng.sources.drops, 64 - 16);
	assert_int_equal(eng.nlisteners, GD_LISTENERS_MAX);
	assert_int_equal(eng.st.listener_drops, 70 + 1 - GD_LISTENERS_MAX);
	tick_until(&now, now + 10000);
	for (c = 0; c < 100; c++)
		obs(MW_NF_OBS_CLOSE, 5000 + (uint64_t)c, 0, L80_ADDR, NULL, 0, 0, now);
	assert_int_equal(eng.conns.n, 0);
}

/*
 * Any local user may open listeners through mw-pvm and connect to them: 64 of
 * theirs (ports not in guard.listeners) must not keep the app's listener out of
 * the table, nor their idle connections take the room of its connections.
 */
static void test_unprotected_listeners_make_room(void **state)
{
	int64_t now = 1000;
	char local[64];
	bool found = false;
	int c, i;

	cfg.guard.max_conns = 64;
	start();
	for (c = 0; c < 3 * GD_LISTENERS_MAX; c++) {
		snprintf(local, sizeof(local), "10.231.0.2:%d", 20000 + c % GD_LISTENERS_MAX);
		obs(MW_NF_OBS_ACCEPT, 7000 + (uint64_t)(c % GD_LISTENERS_MAX), 9000 + (uint64_t)c,
		    local, "10.6.0.1:1", 0, 0, now);
	}
	assert_int_equal(eng.nlisteners, GD_LISTENERS_MAX);
	assert_int_equal(eng.conns.n, 0);
	for (c = 0; c < 60; c++)
		accept_conn(5000 + (uint64_t)c, "10.7.0.1:9000", now);
	assert_int_equal(eng.nlisteners, GD_LISTENERS_MAX);
	for (i = 0; i < eng.nlisteners; i++)
		if (eng.listeners[i].id == L80) {
			found = true;
			assert_int_equal(eng.listeners[i].proto, MW_ACCF_HTTP);
			assert_int_equal(eng.listeners[i].local.port, 80);
		}
	assert_true(found);
	assert_int_equal(eng.conns.n, 60);
	assert_int_equal(eng.conns.drops, 0);
	tick_until(&now, now + 1000);
	assert_int_equal(count(GD_SHIELD_SET, "baseline"), 1); /* the app's listener's */
	/*
	 * Then binds alone on the protected ports, on other addresses (IP_FREEBIND):
	 * they take each other's places, never that of the listener with accepts,
	 * and a new listener of the app's still finds one.
	 */
	for (c = 0; c < 3 * GD_LISTENERS_MAX; c++) {
		snprintf(local, sizeof(local), "10.232.%d.%d:%d", c / 200, c % 200 + 1,
			 c % 2 ? 80 : 6379);
		obs(MW_NF_OBS_BIND, 8000 + (uint64_t)c, 8000 + (uint64_t)c, local, NULL, 0, 0,
		    now++);
	}
	obs(MW_NF_OBS_BIND, 2000, 2000, "10.231.0.2:6379", NULL, 0, 0, now);
	for (i = 0, found = false; i < eng.nlisteners; i++)
		found |= eng.listeners[i].id == L80;
	assert_true(found);
	for (i = 0, found = false; i < eng.nlisteners; i++)
		found |= eng.listeners[i].id == 2000;
	assert_true(found);
	assert_int_equal(eng.conns.n, 60);
	/* Its first connection, and more binds before any evaluation: it stays. */
	obs(MW_NF_OBS_ACCEPT, 2000, 2001, "10.231.0.2:6379", "10.5.0.9:4000", 0, 0, now++);
	for (c = 0; c < 3 * GD_LISTENERS_MAX; c++) {
		snprintf(local, sizeof(local), "10.233.%d.%d:80", c / 200, c % 200 + 1);
		obs(MW_NF_OBS_BIND, 9000 + (uint64_t)c, 9000 + (uint64_t)c, local, NULL, 0, 0,
		    now++);
	}
	for (i = 0, found = false; i < eng.nlisteners; i++)
		found |= eng.listeners[i].id == 2000;
	assert_true(found);
}

/*
 * A keep-alive connection that fetched a megabyte fast, then sends its next
 * request a byte every 4.9 s (under idle_ms): its rate over its life stays far
 * above min_rate for hours, over the last window (2 x idle_ms) it is 0.2 B/s.
 * Slow within two windows; a steady 50 B/s client beside it never is.
 */
static void test_trickle_after_burst_is_slow(void **state)
{
	uint64_t burst = 7001, steady = 7002, in = 1 << 20, sin = 0;
	const struct gd_conn *c;
	int64_t now = 1000, next = 1000;

	start();
	obs(MW_NF_OBS_BIND, L80, L80, L80_ADDR, NULL, 0, 0, now);
	accept_conn(burst, "10.5.0.1:7000", now);
	accept_conn(steady, "10.5.0.2:7000", now);
	obs(MW_NF_OBS_RECV, burst, 0, L80_ADDR, NULL, in, 0, now + 200);
	while (now < 1000 + 60000) {
		if (now >= next) {
			obs(MW_NF_OBS_RECV, burst, 0, L80_ADDR, NULL, ++in, 0, now);
			next += 4900;
		}
		sin += 50 * (uint64_t)cfg.guard.tick_ms / 1000;
		obs(MW_NF_OBS_RECV, steady, 0, L80_ADDR, NULL, sin, 0, now);
		tick_until(&now, now + cfg.guard.tick_ms);
		c = gd_tab_find(&eng.conns, &steady);
		assert_non_null(c);
		assert_false(c->slow);
	}
	c = gd_tab_find(&eng.conns, &burst);
	assert_non_null(c);
	assert_true(c->slow); /* the old lifetime rate: 17 KiB/s, never slow */
}

/* The table: inserts, removals that shift clusters, lookups after them. */
static void test_table_remove_keeps_lookups(void **state)
{
	struct gd_tab t;
	uint64_t k;
	uint64_t *e;

	assert_int_equal(gd_tab_init(&t, 1000, sizeof(uint64_t) * 2, sizeof(uint64_t)), 0);
	for (k = 1; k <= 1000; k++)
		assert_non_null(gd_tab_insert(&t, &k));
	k = 1001;
	assert_null(gd_tab_insert(&t, &k));
	assert_int_equal(t.drops, 1);
	for (k = 1; k <= 1000; k += 2)
		gd_tab_remove(&t, gd_tab_find(&t, &k));
	for (k = 1; k <= 1000; k++) {
		e = gd_tab_find(&t, &k);
		if (k % 2)
			assert_null(e);
		else
			assert_true(e && *e == k);
	}
	assert_int_equal(t.n, 500);
	gd_tab_free(&t);
}

static uint64_t gone_sock;

static void note_gone(void *ctx, uint64_t sock)
{
	gone_sock = sock;
}

/* A close answered -EBADF: "gone", and the engine is told to forget the connection. */
static void test_close_gone_forgets(void **state)
{
	struct gd_action a = { .kind = GD_CLOSE, .reason = "slow", .sock = 77 };
	struct mw_nf_response rsp = { .status = -EBADF };
	struct gd_addrkey key;
	struct gd_source *src;
	struct mw_addr peer;
	struct gd_act act;
	int64_t now = 1000;

	assert_int_equal(gd_act_init(&act, 4), 0);
	act.on_gone = note_gone;
	act.pending[0] =
		(struct gd_pending){ .req = 9, .n = 1, .name = MW_NF_ATTR_IS_OPEN, .sock = 77 };
	act.report = true;
	gd_act_emit(&act, &a); /* the record of action 1 */
	rsp.id = 9;
	gd_act_response(&act, &rsp);
	assert_int_equal(gone_sock, 77);
	assert_int_equal(act.gone, 1);
	assert_string_equal(gd_act_record(&act, 0)->result, "gone");
	gd_act_fini(&act);
	start();
	accept_conn(77, "10.1.2.3:4", now);
	assert_int_equal(eng.conns.n, 1);
	gd_engine_forget(&eng, 77);
	assert_int_equal(eng.conns.n, 0);
	assert_int_equal(mw_addr_parse(&peer, "10.1.2.3:4"), 0);
	gd_addrkey_from(&key, &peer);
	src = gd_tab_find(&eng.sources, &key);
	assert_non_null(src);
	assert_int_equal(src->conns, 0);
}

/*
 * With mw-balancer: sustained pressure drains the INS holding most slow connections
 * (INS 3: 40, INS 4: 10) for a fresh one, once per rotate_interval_ms, never the same
 * INS twice, and never without guard.balancer_socket.
 */
static void test_rotate(void **state)
{
	uint64_t ins3 = mw_sockid_make(3, 0, MW_SOCKID_INS_ASSIGNED);
	uint64_t ins4 = mw_sockid_make(4, 0, MW_SOCKID_INS_ASSIGNED);
	int64_t now = 1000;
	char peer[64];
	int c, i;

	start(); /* no balancer_socket */
	obs(MW_NF_OBS_BIND, L80, L80, L80_ADDR, NULL, 0, 0, now);
	slow_headers(0, 40, 40, ins3, &now, now + 20000);
	assert_true(count(GD_CLOSE, "slow") > 0);
	assert_int_equal(count(GD_ROTATE, NULL), 0);
	gd_engine_fini(&eng);

	snprintf(cfg.guard.balancer_socket, sizeof(cfg.guard.balancer_socket), "/run/b.sock");
	cfg.guard.rotate_after_ms = 2000;
	cfg.guard.rotate_interval_ms = 10000;
	now = 1000;
	start();
	obs(MW_NF_OBS_BIND, L80, L80, L80_ADDR, NULL, 0, 0, now);
	for (c = 0; c < 32; c++) { /* idle: slow, as many as pressure_slow */
		snprintf(peer, sizeof(peer), "10.8.0.%d:7000", c + 1);
		accept_conn(ins4 + (uint64_t)c, peer, now);
	}
	/* Slow from 4000 (slow_after_ms), pressure from then on: not yet 2 s of it. */
	slow_headers(0, 40, 40, ins3, &now, 5500);
	assert_int_equal(count(GD_SHIELD_SET, "pressure"), 1);
	assert_int_equal(count(GD_ROTATE, NULL), 0);
	tick_until(&now, 7000);
	assert_int_equal(count(GD_ROTATE, "pressure"), 1);
	for (i = 0; i < nrec && rec[i].kind != GD_ROTATE; i++)
		;
	assert_string_equal(rec[i].target, "ins:3");
	assert_int_equal(rec[i].ins, 3);
	assert_non_null(strstr(rec[i].evidence, "ins=3,ins_held=40,ins_slow=40,held=72,slow="));
	assert_non_null(strstr(rec[i].evidence, ",listener_port=80"));
	/* At most one per rotate_interval_ms; then the other INS, never INS 3 again. */
	tick_until(&now, 6000 + 10000);
	assert_int_equal(count(GD_ROTATE, NULL), 1);
	tick_until(&now, 6000 + 10000 + 1000);
	assert_int_equal(count(GD_ROTATE, NULL), 2);
	assert_int_equal(count_target(GD_ROTATE, "ins:4"), 1);
	tick_until(&now, now + 30000);
	assert_int_equal(count(GD_ROTATE, NULL), 2);
	/* The balancer refused to spawn for INS 4: it is chosen again at the next interval. */
	gd_engine_unrotate(&eng, 4);
	tick_until(&now, now + 10000);
	assert_int_equal(count(GD_ROTATE, NULL), 3);
	assert_int_equal(count_target(GD_ROTATE, "ins:4"), 2);
	cfg.guard.balancer_socket[0] = 0;
}

/*
 * A compromised INS (5) brings the listener under pressure with 300 made-up
 * connections that keep moving bytes and 4 idle ones: the seven honest INS
 * (6-12), with 4 idle keep-alive connections each (32 slow in all, as many as
 * pressure_slow), are never drained, one after another.
 */
static void test_rotate_not_the_honest_ins(void **state)
{
	uint64_t ins5 = mw_sockid_make(5, 0, MW_SOCKID_INS_ASSIGNED);
	int64_t now = 1000, t;
	char peer[64];
	int c, i;

	snprintf(cfg.guard.balancer_socket, sizeof(cfg.guard.balancer_socket), "/run/b.sock");
	cfg.guard.rotate_after_ms = 2000;
	cfg.guard.rotate_interval_ms = 10000;
	start();
	obs(MW_NF_OBS_BIND, L80, L80, L80_ADDR, NULL, 0, 0, now);
	for (c = 0; c < 304; c++) {
		snprintf(peer, sizeof(peer), "10.9.%d.%d:7000", c / 200, c % 200 + 1);
		accept_conn(ins5 + (uint64_t)c, peer, now);
	}
	for (i = 6; i <= 12; i++)
		for (c = 0; c < 4; c++) {
			snprintf(peer, sizeof(peer), "10.8.%d.%d:7000", i, c + 1);
			accept_conn(mw_sockid_make((uint16_t)i, 0, MW_SOCKID_INS_ASSIGNED) +
					    (uint64_t)c,
				    peer, now);
		}
	for (t = 1; now < 60000; t++) {
		for (c = 0; c < 300; c++) /* the liar's connections progress */
			obs(MW_NF_OBS_RECV, ins5 + (uint64_t)c, 0, L80_ADDR, NULL,
			    (uint64_t)t * 100, (uint64_t)t * 100, now);
		tick_until(&now, now + 500);
	}
	assert_true(count(GD_SHIELD_SET, "pressure") >= 1); /* held: 332 */
	assert_int_equal(count(GD_ROTATE, NULL), 0);
	cfg.guard.balancer_socket[0] = 0;
}

/* The action sink: numbers from 1, report mode sends nothing, no link = not sent. */
static void test_action_sink(void **state)
{
	struct gd_action a = { .kind = GD_CLOSE, .reason = "slow", .sock = 7 };
	struct gd_act act;

	snprintf(a.target, sizeof(a.target), "10.1.1.1:5");
	assert_int_equal(gd_act_init(&act, 2), 0);
	act.report = true;
	gd_act_emit(&act, &a);
	assert_string_equal(gd_act_record(&act, 0)->result, "report");
	act.report = false;
	gd_act_emit(&act, &a);
	gd_act_emit(&act, &a);
	assert_int_equal(act.seq, 3);
	assert_int_equal(act.len, 2);
	assert_int_equal(gd_act_record(&act, 0)->n, 2);
	assert_string_equal(gd_act_record(&act, 1)->result, "not_sent:no_netflow");
	assert_null(gd_act_record(&act, 2));
	/* A rotation without a balancer hook is not sent. */
	a.kind = GD_ROTATE;
	a.ins = 3;
	gd_act_emit(&act, &a);
	assert_string_equal(gd_act_record(&act, 1)->result, "not_sent:no_balancer");
	gd_act_fini(&act);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_baseline_configured_only, setup, teardown),
		cmocka_unit_test_setup_teardown(test_benign_slow_clients, setup, teardown),
		cmocka_unit_test_setup_teardown(test_slow_headers_close_and_block, setup, teardown),
		cmocka_unit_test_setup_teardown(test_slow_read_closes, setup, teardown),
		cmocka_unit_test_setup_teardown(test_report_mode_once, setup, teardown),
		cmocka_unit_test_setup_teardown(test_accept_latency_pressure, setup, teardown),
		cmocka_unit_test_setup_teardown(test_allow_list, setup, teardown),
		cmocka_unit_test_setup_teardown(test_balancer_address_never_blocked, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_nat_not_blocked, setup, teardown),
		cmocka_unit_test_setup_teardown(test_nat_keeps_src_levers_off, setup, teardown),
		cmocka_unit_test_setup_teardown(test_nat_rule_not_an_escape, setup, teardown),
		cmocka_unit_test_setup_teardown(test_tables_full, setup, teardown),
		cmocka_unit_test_setup_teardown(test_unprotected_listeners_make_room, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_trickle_after_burst_is_slow, setup, teardown),
		cmocka_unit_test(test_table_remove_keeps_lookups),
		cmocka_unit_test(test_action_sink),
		cmocka_unit_test_setup_teardown(test_close_gone_forgets, setup, teardown),
		cmocka_unit_test_setup_teardown(test_rotate, setup, teardown),
		cmocka_unit_test_setup_teardown(test_rotate_not_the_honest_ins, setup, teardown),
		cmocka_unit_test_setup_teardown(test_prefix_blocks, setup, teardown),
		cmocka_unit_test_setup_teardown(test_block_scoped_to_ins, setup, teardown),
		cmocka_unit_test_setup_teardown(test_prefix_per_ins, setup, teardown),
		cmocka_unit_test_setup_teardown(test_block_share_per_ins, setup, teardown),
		cmocka_unit_test_setup_teardown(test_block_all_not_renewed_by_one, setup, teardown),
		cmocka_unit_test_setup_teardown(test_good_evidence_per_ins, setup, teardown),
		cmocka_unit_test_setup_teardown(test_prefix_not_split_by_good, setup, teardown),
		cmocka_unit_test_setup_teardown(test_slow_counted_per_ins, setup, teardown),
		cmocka_unit_test_setup_teardown(test_liar_cannot_hide_offence, setup, teardown),
		cmocka_unit_test_setup_teardown(test_tables_shared_per_ins, setup, teardown),
		cmocka_unit_test_setup_teardown(test_tables_random_stream, setup, teardown),
		cmocka_unit_test_setup_teardown(test_ipv6_prefix_block, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
