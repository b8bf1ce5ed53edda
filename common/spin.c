/* SPDX-License-Identifier: MIT */
/* spin.c - poll for a while before an event loop sleeps (see spin.h) */
#include <sched.h>

#include "common/spin.h"

/**
 * mw_spin_adapt() - the next window after a gap between two pieces of work
 * @s:   state (window, max, longs are read and updated)
 * @gap: seconds from the end of one piece of work to the arrival of the next
 */
void mw_spin_adapt(struct mw_spin *s, ev_tstamp gap)
{
	if (gap > s->max) {
		/* Spinning could not have caught it. */
		if (++s->longs < MW_SPIN_SHRINK_AFTER)
			return;
		s->longs = 0;
		s->window /= 2;
		if (s->window < MW_SPIN_MIN_S)
			s->window = 0;
		return;
	}
	s->longs = 0;
	if (gap <= s->window)
		return; /* caught (or would have been): keep the window */
	s->window = s->window < MW_SPIN_GROW_START_S ? MW_SPIN_GROW_START_S : s->window * 2;
	if (s->window > s->max)
		s->window = s->max;
}

static void spin_check_cb(struct ev_loop *loop, ev_check *w, int revents)
{
	struct mw_spin *s = w->data;
	/* Watchers still pending in this iteration = work the wait returned
	 * (our own check is already off the list; our idle is not work). */
	int work = (int)ev_pending_count(loop) - (ev_is_pending(&s->idle) ? 1 : 0);

	if (work <= 0)
		return;
	s->woke = ev_time();
	if (s->wait_from > 0)
		mw_spin_adapt(s, s->woke - s->wait_from);
	s->wait_from = 0;
	if (s->window > 0 && !ev_is_active(&s->idle)) {
		s->windows++;
		ev_idle_start(loop, &s->idle);
	}
}

/* The first prepare after work: the gap to the next work starts here. */
static void spin_prepare_cb(struct ev_loop *loop, ev_prepare *w, int revents)
{
	struct mw_spin *s = w->data;

	if (s->wait_from == 0)
		s->wait_from = ev_time();
}

static void spin_idle_cb(struct ev_loop *loop, ev_idle *w, int revents)
{
	struct mw_spin *s = w->data;

	if (ev_time() - s->woke >= s->window)
		ev_idle_stop(loop, w); /* nothing came: sleep from now on */
	else
		sched_yield(); /* spin, but let a runnable app or peer have the CPU first */
}

/**
 * mw_spin_start() - spin up to @spin_us before each sleep of @loop
 * @loop:    the loop
 * @s:       state, lives as long as the watchers
 * @spin_us: the largest window in microseconds; 0 does nothing
 */
void mw_spin_start(struct ev_loop *loop, struct mw_spin *s, int spin_us)
{
	s->max = spin_us / 1e6;
	s->window = 0;
	s->woke = 0;
	s->wait_from = 0;
	s->windows = 0;
	s->longs = 0;
	ev_check_init(&s->check, spin_check_cb);
	ev_set_priority(&s->check, EV_MAXPRI);
	s->check.data = s;
	ev_prepare_init(&s->prepare, spin_prepare_cb);
	ev_set_priority(&s->prepare, EV_MINPRI);
	s->prepare.data = s;
	ev_idle_init(&s->idle, spin_idle_cb);
	ev_set_priority(&s->idle, EV_MINPRI);
	s->idle.data = s;
	if (spin_us <= 0)
		return;
	ev_check_start(loop, &s->check);
	ev_unref(loop); /* the check alone must not keep the loop running */
	ev_prepare_start(loop, &s->prepare);
	ev_unref(loop);
}

/**
 * mw_spin_stop() - stop spinning (safe if never started)
 * @loop: the loop
 * @s:    state
 */
void mw_spin_stop(struct ev_loop *loop, struct mw_spin *s)
{
	if (!ev_is_active(&s->check))
		return;
	ev_ref(loop);
	ev_check_stop(loop, &s->check);
	ev_ref(loop);
	ev_prepare_stop(loop, &s->prepare);
	ev_idle_stop(loop, &s->idle);
}
