/* SPDX-License-Identifier: MIT */
/* spin.h - poll for a while before an event loop sleeps (latency for CPU, opt-in) */
#ifndef MW_SPIN_H
#define MW_SPIN_H

#include <ev.h>

/*
 * Waking a thread that sleeps in epoll_wait() costs one scheduler wake-up; on
 * a VM with idle vCPUs that is 40-80 us (docs/benchmarks.md, B5 and B7), and a
 * round trip through mwcomms wakes four threads.  With a spin window, after
 * every wake-up the loop keeps polling its epoll fd (poll() with timeout 0) for
 * up to that long before it really sleeps, so a reply that comes back within
 * the window costs no wake-up.  It burns a CPU while it polls: worth it only
 * with cores to spare, hence off (0) by default.
 *
 * How: an ev_check (first in the iteration) sees whether the wait returned
 * any work; if so it starts an ev_idle at EV_MINPRI, and while an idle watcher
 * is active libev polls with a zero timeout instead of blocking.  The idle
 * watcher stops itself once the window has passed with no work.  The
 * channel's prepare still announces sleep every iteration, so a peer's ring
 * frame arrives as an eventfd kick that the next zero-timeout poll sees.
 */
struct mw_spin {
	ev_check check;
	ev_idle idle;
	ev_tstamp window;      /* seconds */
	ev_tstamp woke;	       /* last iteration that found work */
	unsigned long windows; /* spin windows opened (for tests and status) */
};

/**
 * mw_spin_start() - spin up to @spin_us before each sleep of @loop
 * @s:       state, lives as long as the watchers
 * @spin_us: window in microseconds; 0 does nothing
 */
void mw_spin_start(struct ev_loop *loop, struct mw_spin *s, int spin_us);
void mw_spin_stop(struct ev_loop *loop, struct mw_spin *s);

#endif /* MW_SPIN_H */
