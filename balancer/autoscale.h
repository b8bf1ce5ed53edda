/* SPDX-License-Identifier: MIT */
/* autoscale.h - mw-balancer's autoscale decision: pure, one call per tick, unit-tested */
#ifndef BAL_AUTOSCALE_H
#define BAL_AUTOSCALE_H

#include <stdbool.h>
#include <stddef.h>

/* What the configuration asks for (balancer.min_ins..max_ins, autoscale_*). */
struct bal_as_params {
	int min_ins, max_ins;
	unsigned up_conns;   /* add one when conns / live is above this */
	unsigned down_conns; /* drain one when it stays below this */
	double cooldown_s;   /* between two changes; also how long "low" must last */
};

/* What the balancer sees now. */
struct bal_as_input {
	double now;	/* seconds, monotonic */
	int live;	/* INS starting or ready */
	int starting;	/* of which starting */
	unsigned conns; /* front-end connections on every INS not dead (draining ones too) */
	int target;	/* INS wanted now (an operator's scale/spawn/retire changes it) */
};

/* Remembered between calls; zero-initialise. */
struct bal_as_state {
	bool seen;	    /* target_seen and last_change are set */
	int target_seen;    /* target after our last call: a change is an operator's */
	double last_change; /* when target last changed (by us or an operator) */
	bool low;	    /* the average has been below down_conns ... */
	double low_since;   /* ... since then */
};

enum bal_as_action { BAL_AS_HOLD, BAL_AS_UP, BAL_AS_DOWN };

/* Why: the token is a status value (no spaces); the log line gives the numbers. */
enum bal_as_reason {
	BAL_AS_STEADY,	 /* between the marks */
	BAL_AS_HIGH,	 /* UP: above up_conns */
	BAL_AS_LOW,	 /* DOWN: below down_conns for a cool-down */
	BAL_AS_STARTING, /* an INS is starting: its effect is not known yet */
	BAL_AS_COOLDOWN, /* a change was made less than a cool-down ago */
	BAL_AS_AT_MAX,	 /* above up_conns, already max_ins */
	BAL_AS_AT_MIN,	 /* below down_conns, already min_ins */
	BAL_AS_LOW_WAIT, /* below down_conns, not yet for a whole cool-down */
	BAL_AS_NO_FLAP,	 /* below down_conns, but one INS fewer would be above up_conns */
	BAL_AS_NONE,	 /* no live INS: the lifecycle brings them back, not autoscale */
};

/**
 * bal_autoscale_decide() - scale up, down or hold, by one INS at most
 * @p:      thresholds and bounds
 * @st:     state kept between calls (updated)
 * @in:     the current load
 * @reason: set to why (may be NULL)
 *
 * Up when conns / live > up_conns and live < max_ins; down when
 * conns / live < down_conns has held for cooldown_s, live > min_ins, and
 * conns / (live - 1) <= up_conns (so the step down cannot cause a step up:
 * no flapping); never while an INS is starting, never within cooldown_s of
 * the last change of the target, whoever made it.
 *
 * Return: the action; the caller sets the target to live + 1 or live - 1.
 */
enum bal_as_action bal_autoscale_decide(const struct bal_as_params *p, struct bal_as_state *st,
					const struct bal_as_input *in, enum bal_as_reason *reason);

/* The reason as a status token ("steady", "high", ...). */
const char *bal_autoscale_reason_name(enum bal_as_reason r);

#endif /* BAL_AUTOSCALE_H */
