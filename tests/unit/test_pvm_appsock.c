/* SPDX-License-Identifier: MIT */
/* test_pvm_appsock.c - kicks (a control connection closed) cost mw-pvm a bounded amount of work;
 * nonces */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/log.h"
#include "pvm/pvm.h"

/*
 * The real pvm_appsock.c on a struct pvm of its own: app sockets made by
 * pvm_appsock_create() as at SOCKET, their app ends held here (the "app"),
 * with no INS (a released socket is freed at once).  p.lv_checks counts the
 * name checks (socket + bind + close) mw-pvm made.
 *
 * The bounds are docs/pvm.md's ("Liveness"): one kick checks at most 64
 * sockets at once, all kicks until the recheck 50 ms later at most 256, and
 * the recheck at most 256.
 */

#define KICK_CHECKS   64
#define WINDOW_CHECKS 256
#define PORT_CHECKS   64
#define NSOCKS	      1000
#define ATTACKER      4242
#define VICTIM	      4343

static struct mw_config cfg;
static struct pvm p;
static int app[NSOCKS];
static unsigned napp;

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

/* Turn the loop for @secs (timers fire as in mw-pvm). */
static void run_for(double secs)
{
	double end = now_s() + secs;

	while (now_s() < end) {
		ev_now_update(p.loop);
		ev_run(p.loop, EVRUN_ONCE | EVRUN_NOWAIT);
		usleep(1000);
	}
}

/* Turn the loop until @n sockets were released in all, 2 s at most (a loaded machine). */
static void run_until_released(uint64_t n)
{
	for (int i = 0; i < 2000 && p.released_total < n; i++)
		run_for(0.001);
}

/* @n sockets made by @pid, as SOCKET makes them; their app ends stay in app[]. */
static void make_socks(pid_t pid, unsigned n)
{
	static uint64_t id;
	struct pvm_sock *s;

	for (unsigned i = 0; i < n; i++) {
		s = calloc(1, sizeof(*s));
		assert_non_null(s);
		s->id = ++id;
		s->pvm = &p;
		s->kind = PVM_SOCK_APP;
		s->state = PVM_ST_NEW;
		s->fd = s->app_fd = s->connect_fd = -1;
		s->owner_pid = pid;
		assert_int_equal(pvm_appsock_create(s), 0);
		assert_true(napp < NSOCKS);
		app[napp++] = s->app_fd; /* passed to the app */
		s->app_fd = -1;
		assert_int_equal(pvm_table_put(&p.socks, s->id, s), 0);
		pvm_appsock_watch(s);
	}
}

static void close_app(void)
{
	while (napp)
		close(app[--napp]);
}

static int setup(void **state)
{
	struct rlimit rl;

	(void)state;
	/* One fd per socket held by the "app", and the probes. */
	assert_int_equal(getrlimit(RLIMIT_NOFILE, &rl), 0);
	if (rl.rlim_cur < 2 * NSOCKS + 64 && rl.rlim_max >= 2 * NSOCKS + 64)
		rl.rlim_cur = 2 * NSOCKS + 64;
	setrlimit(RLIMIT_NOFILE, &rl);
	mw_config_defaults(&cfg);
	memset(&p, 0, sizeof(p));
	p.loop = ev_loop_new(EVFLAG_AUTO);
	p.cfg = &cfg.pvm;
	p.tag = 0x6d7774657374ULL ^ (uint64_t)getpid();
	assert_int_equal(pvm_table_init(&p.socks, 64), 0);
	pvm_appsock_open(&p);
	return 0;
}

static int teardown(void **state)
{
	struct pvm_sock *s;

	(void)state;
	close_app();
	while ((s = p.lv_head))
		pvm_sock_free(s);
	pvm_appsock_close(&p);
	pvm_table_fini(&p.socks);
	ev_loop_destroy(p.loop);
	return 0;
}

/*
 * A local user keeps NSOCKS sockets and closes control connections in a
 * loop, from one process and from many: mw-pvm's name checks stay within
 * the bounds, whatever the number of kicks.
 */
static void test_kick_flood_is_bounded(void **state)
{
	uint64_t before;

	(void)state;
	make_socks(ATTACKER, NSOCKS);
	for (int k = 0; k < 100; k++)
		pvm_appsock_kick(&p, ATTACKER);
	assert_true(p.lv_checks <= KICK_CHECKS);
	assert_true(p.lv_checks > 0); /* the first kick did check at once */
	for (int k = 0; k < 1000; k++)
		pvm_appsock_kick(&p, 10000 + k); /* other processes of that user */
	assert_true(p.lv_checks <= WINDOW_CHECKS);
	/* The recheck, then a new window: each again within its bound. */
	before = p.lv_checks;
	run_for(0.08);
	assert_true(p.lv_checks - before <= WINDOW_CHECKS);
	before = p.lv_checks;
	for (int k = 0; k < 100; k++)
		pvm_appsock_kick(&p, ATTACKER);
	assert_true(p.lv_checks - before <= KICK_CHECKS);
	assert_int_equal(p.released_total, 0); /* all alive: nothing released */
}

/*
 * The kick's purpose: a process that ended has its sockets freed promptly,
 * also while another process floods kicks.
 */
static void test_ended_process_freed(void **state)
{
	unsigned n = 200;

	(void)state;
	make_socks(VICTIM, n);
	close_app(); /* the app exits */
	pvm_appsock_kick(&p, VICTIM);
	assert_true(p.released_total > 0 && p.released_total <= KICK_CHECKS); /* at once */
	run_until_released(n); /* the recheck takes the rest */
	assert_int_equal(p.released_total, n);
	assert_null(p.lv_head);
}

static void test_ended_process_freed_under_flood(void **state)
{
	unsigned n = 40;

	(void)state;
	make_socks(ATTACKER, NSOCKS - n);
	make_socks(VICTIM, n);
	for (int k = 0; k < 100; k++)
		pvm_appsock_kick(&p, ATTACKER);
	/* The victim's app exits: its (newest) sockets are freed within the recheck. */
	for (unsigned i = NSOCKS - n; i < NSOCKS; i++)
		close(app[i]);
	napp = NSOCKS - n;
	pvm_appsock_kick(&p, VICTIM);
	run_until_released(n);
	assert_int_equal(p.released_total, n);
}

/* Bind the sockets from @first on to 0.0.0.0:@port, in @state. */
static void bind_socks(uint64_t first, uint16_t port, enum pvm_sock_state state)
{
	struct pvm_sock *s;

	for (s = p.lv_head; s; s = s->lv_next) {
		if (s->id < first)
			continue;
		s->bound.family = 4;
		s->bound.port = port;
		s->state = state;
	}
}

/*
 * A local user holds NSOCKS sockets bound to one port (SO_REUSEADDR) and binds
 * again and again: each BIND costs mw-pvm at most PORT_CHECKS name checks.  A
 * victim's dead listener on that port, older than all of them, is still released
 * by the first bind (listeners are checked first).
 */
static void test_bind_checks_bounded(void **state)
{
	uint64_t before;

	(void)state;
	make_socks(VICTIM, 1);
	bind_socks(0, 8080, PVM_ST_LISTENING);
	close(app[0]); /* the victim's app died */
	app[0] = -1;
	make_socks(ATTACKER, NSOCKS - 1);
	bind_socks(p.lv_head->id - (NSOCKS - 2), 8080, PVM_ST_BOUND);
	pvm_appsock_check_port(&p, NULL, 8080);
	assert_true(p.lv_checks <= PORT_CHECKS);
	assert_int_equal(p.released_total, 1);
	for (int k = 0; k < 100; k++) {
		before = p.lv_checks;
		pvm_appsock_check_port(&p, NULL, 8080);
		assert_true(p.lv_checks - before <= PORT_CHECKS);
		assert_true(p.lv_checks - before > 0);
	}
	assert_int_equal(p.released_total, 1); /* the attacker's are alive */
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

/*
 * Nonces come from a pool that one getrandom() fills: across many refills
 * every value is new (a pool reused, or its wiped slots handed out, repeats).
 */
static void test_nonces_distinct(void **state)
{
	static uint64_t v[1000];
	const int N = 1000;
	int i, ones = 0;

	(void)state;
	for (i = 0; i < N; i++)
		assert_int_equal(pvm_nonce(&v[i]), 0);
	for (i = 0; i < N; i++)
		ones += __builtin_popcountll(v[i]);
	/* 64,000 random bits: about half set (a zeroed or stuck pool is far off) */
	assert_in_range(ones, 30000, 34000);
	qsort(v, N, sizeof(v[0]), cmp_u64);
	for (i = 1; i < N; i++)
		assert_true(v[i] != v[i - 1]);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_nonces_distinct),
		cmocka_unit_test_setup_teardown(test_kick_flood_is_bounded, setup, teardown),
		cmocka_unit_test_setup_teardown(test_ended_process_freed, setup, teardown),
		cmocka_unit_test_setup_teardown(test_ended_process_freed_under_flood, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_bind_checks_bounded, setup, teardown),
	};

	mw_log_init("test_pvm_appsock", MW_LOG_ERR);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
