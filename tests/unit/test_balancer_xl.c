/* SPDX-License-Identifier: MIT */
/* test_balancer_xl.c - the xl backend's worker: creation, death, stop timeout, off the loop's thread */
#include <errno.h>
#include <ev.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "balancer/xl_worker.h"

/*
 * stand_in: a stand-in for libxl (no hypervisor here), with domains as a
 * table: create gives the next domid (and can be slow, or fail), shutdown is
 * obeyed unless the domain ignores it, destroy removes it, state reads it.
 * It records which thread called it: never the test's (the loop's) thread.
 */
#define DOMS 16

static struct {
	pthread_mutex_t mu;
	pthread_t loop_thread;
	bool called_on_loop;
	int next_domid;
	int create_ms; /* each create takes this long */
	bool fail_create;
	struct {
		bool exists, shut, ignores_shutdown;
	} d[DOMS];
	int creates, shutdowns, destroys, states;
} fk;

static void fk_enter(void)
{
	pthread_mutex_lock(&fk.mu);
	if (pthread_equal(pthread_self(), fk.loop_thread))
		fk.called_on_loop = true;
}

static int fk_open(void **ctx, char *err, size_t errlen)
{
	(void)err, (void)errlen;
	*ctx = &fk;
	return 0;
}

static void fk_close(void *ctx)
{
	(void)ctx;
}

static int fk_create(void *ctx, const struct bal_xl_domcfg *c, uint32_t *domid, char *err,
		     size_t errlen)
{
	int ms, ret = 0;

	(void)ctx;
	fk_enter();
	fk.creates++;
	ms = fk.create_ms;
	pthread_mutex_unlock(&fk.mu);
	usleep((useconds_t)ms * 1000);
	fk_enter();
	if (fk.fail_create || fk.next_domid >= DOMS) {
		snprintf(err, errlen, "stand-in refuses %s", c->name);
		ret = -EIO;
	} else {
		*domid = (uint32_t)fk.next_domid++;
		fk.d[*domid].exists = true;
	}
	pthread_mutex_unlock(&fk.mu);
	return ret;
}

static int fk_shutdown(void *ctx, uint32_t domid)
{
	(void)ctx;
	fk_enter();
	fk.shutdowns++;
	if (!fk.d[domid].ignores_shutdown)
		fk.d[domid].shut = true;
	pthread_mutex_unlock(&fk.mu);
	return 0;
}

static int fk_destroy(void *ctx, uint32_t domid)
{
	(void)ctx;
	fk_enter();
	fk.destroys++;
	fk.d[domid].exists = false;
	pthread_mutex_unlock(&fk.mu);
	return 0;
}

static int fk_destroys(void)
{
	int n;

	pthread_mutex_lock(&fk.mu);
	n = fk.destroys;
	pthread_mutex_unlock(&fk.mu);
	return n;
}

static int fk_state(void *ctx, uint32_t domid)
{
	int st;

	(void)ctx;
	fk_enter();
	fk.states++;
	st = !fk.d[domid].exists ? BAL_XL_D_GONE
	     : fk.d[domid].shut  ? BAL_XL_D_SHUTDOWN
				 : BAL_XL_D_RUNNING;
	pthread_mutex_unlock(&fk.mu);
	return st;
}

static const struct bal_xl_driver stand_in = {
	.name = "stand-in",
	.open = fk_open,
	.close = fk_close,
	.create = fk_create,
	.shutdown = fk_shutdown,
	.destroy = fk_destroy,
	.state = fk_state,
};

static const struct bal_xlw_timing fast = { .poll_s = 0.02, .stop_s = 0.3 };

static struct bal_xl_domcfg cfg(int id)
{
	struct bal_xl_domcfg c;

	memset(&c, 0, sizeof(c));
	snprintf(c.name, sizeof(c.name), "mw-t-ins%d", id);
	return c;
}

/* Run the loop (the async brings results) until alive() of @id is @want, at most @ms. */
static int wait_alive(struct ev_loop *loop, struct bal_xlw *w, int id, int want, int ms)
{
	uint32_t domid = 0;

	for (int t = 0; t < ms; t += 5) {
		ev_run(loop, EVRUN_NOWAIT);
		if (bal_xlw_alive(w, id, &domid) == want)
			return t;
		usleep(5000);
	}
	return -1;
}

/* Wait (bounded) until domain @domid exists in the stand-in. */
static void wait_dom(int domid)
{
	bool there = false;

	for (int t = 0; t < 3000 && !there; t += 5) {
		pthread_mutex_lock(&fk.mu);
		there = fk.d[domid].exists;
		pthread_mutex_unlock(&fk.mu);
		if (!there)
			usleep(5000);
	}
	assert_true(there);
}

static int setup(void **state)
{
	memset(&fk, 0, sizeof(fk));
	pthread_mutex_init(&fk.mu, NULL);
	fk.loop_thread = pthread_self();
	fk.next_domid = 1;
	*state = ev_loop_new(EVFLAG_AUTO);
	return *state ? 0 : -1;
}

static int teardown(void **state)
{
	ev_loop_destroy(*state);
	pthread_mutex_destroy(&fk.mu);
	return 0;
}

/* Creation runs on the worker: the loop's calls return at once even when it is slow. */
static void test_create_off_the_loop(void **state)
{
	struct ev_loop *loop = *state;
	struct bal_xl_domcfg c = cfg(3);
	struct bal_xlw *w;
	struct timespec a, b;
	uint32_t domid = 99;
	char err[128];

	fk.create_ms = 300;
	assert_int_equal(bal_xlw_start(&w, &stand_in, loop, &fast, err, sizeof(err)), 0);
	clock_gettime(CLOCK_MONOTONIC, &a);
	assert_int_equal(bal_xlw_create(w, 3, &c), 0);
	assert_int_equal(bal_xlw_create(w, 3, &c), -EEXIST);
	assert_int_equal(bal_xlw_alive(w, 3, &domid), 1); /* being created */
	assert_int_equal(domid, 0);
	clock_gettime(CLOCK_MONOTONIC, &b);
	assert_true((b.tv_sec - a.tv_sec) * 1000 + (b.tv_nsec - a.tv_nsec) / 1000000 < 100);
	/* Created: the domid shows up; the domain keeps being polled. */
	for (int t = 0; t < 3000 && !domid; t += 5) {
		ev_run(loop, EVRUN_NOWAIT);
		bal_xlw_alive(w, 3, &domid);
		usleep(5000);
	}
	assert_int_equal(domid, 1);
	usleep(100000);
	assert_true(fk.states > 0);
	assert_int_equal(bal_xlw_alive(w, 3, NULL), 1);
	bal_xlw_forget(w, 3);
	for (int t = 0; t < 2000 && bal_xlw_count(w); t += 5)
		usleep(5000);
	assert_int_equal(bal_xlw_count(w), 0);
	assert_false(fk.d[1].exists); /* forgotten: destroyed */
	bal_xlw_stop(w);
	assert_false(fk.called_on_loop);
}

/* A domain that dies by itself (xl destroy, a crash) is seen gone within the poll. */
static void test_death_detected(void **state)
{
	struct ev_loop *loop = *state;
	struct bal_xl_domcfg c = cfg(4);
	struct bal_xlw *w;
	char err[128];
	int t;

	assert_int_equal(bal_xlw_start(&w, &stand_in, loop, &fast, err, sizeof(err)), 0);
	assert_int_equal(bal_xlw_create(w, 4, &c), 0);
	assert_true(wait_alive(loop, w, 4, 1, 2000) >= 0);
	wait_dom(1);
	pthread_mutex_lock(&fk.mu);
	fk.d[1].exists = false; /* "xl destroy" behind our back */
	pthread_mutex_unlock(&fk.mu);
	t = wait_alive(loop, w, 4, 0, 2000);
	assert_true(t >= 0 && t < 1000);
	/* ...and destroyed all the same (after it was seen dead): its XenStore leftovers go. */
	for (t = 0; t < 200 && !fk_destroys(); t++)
		usleep(5000);
	assert_int_equal(fk_destroys(), 1);
	/* A domain that shut down by itself is destroyed (libxl keeps it otherwise). */
	c = cfg(5);
	assert_int_equal(bal_xlw_create(w, 5, &c), 0);
	wait_dom(2);
	pthread_mutex_lock(&fk.mu);
	fk.d[2].shut = true;
	pthread_mutex_unlock(&fk.mu);
	assert_true(wait_alive(loop, w, 5, 0, 2000) >= 0);
	for (t = 0; t < 200 && fk_destroys() < 2; t++)
		usleep(5000);
	assert_int_equal(fk_destroys(), 2);
	assert_false(fk.d[2].exists);
	bal_xlw_stop(w);
	assert_false(fk.called_on_loop);
}

/* Shutdown obeyed: gone without a destroy of a live domain; ignored: destroyed after stop_s. */
static void test_stop_timeout(void **state)
{
	struct ev_loop *loop = *state;
	struct bal_xl_domcfg c6 = cfg(6), c7 = cfg(7);
	struct bal_xlw *w;
	char err[128];
	int t;

	assert_int_equal(bal_xlw_start(&w, &stand_in, loop, &fast, err, sizeof(err)), 0);
	assert_int_equal(bal_xlw_create(w, 6, &c6), 0);
	assert_int_equal(bal_xlw_create(w, 7, &c7), 0);
	wait_dom(1);
	wait_dom(2);
	/* Whichever domid INS 7 got ignores its shutdown. */
	{
		uint32_t d6 = 0, d7 = 0;

		bal_xlw_alive(w, 6, &d6);
		bal_xlw_alive(w, 7, &d7);
		assert_true(d6 && d7 && d6 != d7);
		pthread_mutex_lock(&fk.mu);
		fk.d[d7].ignores_shutdown = true;
		pthread_mutex_unlock(&fk.mu);
	}
	bal_xlw_shutdown(w, 6);
	bal_xlw_shutdown(w, 7);
	t = wait_alive(loop, w, 6, 0, 2000);
	assert_true(t >= 0 && t < 250); /* well before stop_s */
	assert_int_equal(bal_xlw_alive(w, 7, NULL), 1);
	t = wait_alive(loop, w, 7, 0, 3000);
	assert_true(t >= 150); /* only after the stop timeout */
	assert_int_equal(fk.shutdowns, 2);
	bal_xlw_stop(w);
}

/* A failed create is a dead INS (replaced by the balancer); a destroy wish ends one at once. */
static void test_create_fails_and_destroy(void **state)
{
	struct ev_loop *loop = *state;
	struct bal_xl_domcfg c = cfg(8);
	struct bal_xlw *w;
	char err[128];

	fk.fail_create = true;
	assert_int_equal(bal_xlw_start(&w, &stand_in, loop, &fast, err, sizeof(err)), 0);
	assert_int_equal(bal_xlw_create(w, 8, &c), 0);
	assert_true(wait_alive(loop, w, 8, 0, 2000) >= 0);
	bal_xlw_forget(w, 8);
	fk.fail_create = false;
	c = cfg(9);
	assert_int_equal(bal_xlw_create(w, 9, &c), 0);
	wait_dom(1);
	bal_xlw_destroy(w, 9);
	assert_true(wait_alive(loop, w, 9, 0, 1000) >= 0);
	assert_false(fk.d[1].exists);
	/* At stop, every domain still running is destroyed. */
	c = cfg(10);
	assert_int_equal(bal_xlw_create(w, 10, &c), 0);
	wait_dom(2);
	bal_xlw_stop(w);
	assert_false(fk.d[2].exists);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_create_off_the_loop, setup, teardown),
		cmocka_unit_test_setup_teardown(test_death_detected, setup, teardown),
		cmocka_unit_test_setup_teardown(test_stop_timeout, setup, teardown),
		cmocka_unit_test_setup_teardown(test_create_fails_and_destroy, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
