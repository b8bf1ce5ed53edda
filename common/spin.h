/* SPDX-License-Identifier: MIT */
/* spin.h - poll for a while before an event loop sleeps (latency for CPU, opt-in) */
#ifndef MW_SPIN_H
#define MW_SPIN_H

#include <stdbool.h>

#include <ev.h>

/*
 * Waking a thread that sleeps in epoll_wait() costs one scheduler wake-up; on
 * a VM with idle vCPUs that is 40-80 us (docs/benchmarks.md, B5 and B7), and a
 * round trip through mwcomms wakes four threads.  With a spin window, after
 * every wake-up the loop keeps polling its epoll fd (poll() with timeout 0,
 * then sched_yield()) for up to that long before it really sleeps, so a reply
 * that comes back within the window costs no wake-up.  It burns a CPU while it
 * polls: worth it only with cores to spare, hence off (0) by default.
 *
 * The window adapts, as the guest halt-poll governor does: it is the
 * configured maximum at most, grows (doubling, from MW_SPIN_GROW_START_S)
 * while the gaps between two pieces of work stay within the maximum but beyond
 * the window, and halves after MW_SPIN_SHRINK_AFTER gaps in a row longer than
 * the maximum, where spinning can never pay.  A request/response exchange
 * alternates a short gap (the reply) with a long one (the next request), so the
 * long gaps must come in a row before the window shrinks; traffic that only
 * trickles in closes the window after a few misses, and an idle loop never
 * opens it.
 *
 * How: an ev_check (first in the iteration) sees whether the wait returned
 * any work; if so it adapts the window to the gap since the previous work
 * (measured from the ev_prepare that followed it) and starts an ev_idle at
 * EV_MINPRI; while an idle watcher is active libev polls with a zero timeout
 * instead of blocking.  The idle watcher stops itself once the window has
 * passed with no work.  The channel's prepare still announces sleep every
 * iteration, so a peer's ring frame arrives as an eventfd kick that the next
 * zero-timeout poll sees.
 */
#define MW_SPIN_GROW_START_S 10e-6
#define MW_SPIN_SHRINK_AFTER 4
#define MW_SPIN_MIN_S 1e-6 /* a window below this closes */

struct mw_spin {
	ev_check check;
	ev_prepare prepare;
	ev_idle idle;
	ev_tstamp max;	       /* seconds: the configured window */
	ev_tstamp window;      /* seconds: the current window, 0..max */
	ev_tstamp woke;	       /* last iteration that found work */
	ev_tstamp wait_from;   /* first prepare after that work (0: not measured yet) */
	unsigned long windows; /* spin windows opened (for tests and status) */
	unsigned int longs;    /* gaps longer than max in a row */
};

void mw_spin_adapt(struct mw_spin *s, ev_tstamp gap);
void mw_spin_start(struct ev_loop *loop, struct mw_spin *s, int spin_us);
void mw_spin_stop(struct ev_loop *loop, struct mw_spin *s);

#endif /* MW_SPIN_H */
