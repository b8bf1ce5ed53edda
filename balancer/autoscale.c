/* SPDX-License-Identifier: MIT */
/* autoscale.c - mw-balancer's autoscale decision (pure: no clock, no I/O) */
#include <stdint.h>

#include "balancer/autoscale.h"

/*
 * Theory of operation
 *
 * The load is the average number of front-end connections per live INS.
 * Two marks with a gap between them (hysteresis) and a cool-down:
 *
 *   above up_conns            -> UP at once (after the cool-down): a slow
 *                                step up costs clients, a late step down
 *                                costs only an idle INS;
 *   below down_conns for a    -> DOWN, the newest INS drained (ins.c);
 *   whole cool-down
 *   otherwise                 -> HOLD.
 *
 * A step down is refused when the same connections over one INS fewer
 * would be above up_conns: that step would be undone at the next check
 * (flapping), whatever the marks are.  Read backwards, the same rule means
 * a step up from L INS (conns > up_conns * L) cannot be followed by a step
 * down from L + 1 while the load is unchanged (it needs conns <= up_conns * L).
 * While an INS is starting its effect is unknown: hold.  Any change of the
 * target, an operator's included, restarts the cool-down, so autoscale does
 * not at once undo a `mwctl scale`.
 *
 * Comparisons are on integers (conns vs mark * live) so there is no
 * rounding at the marks.
 */

const char *bal_autoscale_reason_name(enum bal_as_reason r)
{
	static const char *const n[] = { "steady",   "high",   "low",	    "starting",	 "cooldown",
					 "at-max",   "at-min", "low-wait", "would-flap", "no-ins" };

	return (unsigned)r < sizeof(n) / sizeof(n[0]) ? n[r] : "?";
}

enum bal_as_action bal_autoscale_decide(const struct bal_as_params *p, struct bal_as_state *st,
					const struct bal_as_input *in, enum bal_as_reason *reason)
{
	enum bal_as_action act = BAL_AS_HOLD;
	enum bal_as_reason why = BAL_AS_STEADY;
	uint64_t conns = in->conns, live = in->live > 0 ? (uint64_t)in->live : 0;
	bool cooling;

	if (!st->seen || st->target_seen != in->target) {
		/* first call, or an operator changed the target: start the cool-down */
		st->seen = true;
		st->target_seen = in->target;
		st->last_change = in->now;
		st->low = false;
	}
	cooling = in->now - st->last_change < p->cooldown_s;
	if (!live) {
		why = BAL_AS_NONE;
		st->low = false;
		goto out;
	}
	if (conns > (uint64_t)p->up_conns * live) {
		st->low = false;
		if (in->live >= p->max_ins)
			why = BAL_AS_AT_MAX;
		else if (in->starting)
			why = BAL_AS_STARTING;
		else if (cooling)
			why = BAL_AS_COOLDOWN;
		else {
			act = BAL_AS_UP;
			why = BAL_AS_HIGH;
		}
		goto out;
	}
	if (conns >= (uint64_t)p->down_conns * live) {
		st->low = false;
		goto out; /* steady */
	}
	/* below the low mark */
	if (in->live <= p->min_ins) {
		st->low = false;
		why = BAL_AS_AT_MIN;
		goto out;
	}
	if (conns > (uint64_t)p->up_conns * (live - 1)) {
		st->low = false;
		why = BAL_AS_NO_FLAP;
		goto out;
	}
	if (!st->low) {
		st->low = true;
		st->low_since = in->now;
	}
	if (in->starting)
		why = BAL_AS_STARTING;
	else if (cooling)
		why = BAL_AS_COOLDOWN;
	else if (in->now - st->low_since < p->cooldown_s)
		why = BAL_AS_LOW_WAIT;
	else {
		act = BAL_AS_DOWN;
		why = BAL_AS_LOW;
	}
out:
	if (act != BAL_AS_HOLD) {
		st->target_seen = in->live + (act == BAL_AS_UP ? 1 : -1);
		st->last_change = in->now;
		st->low = false;
	}
	if (reason)
		*reason = why;
	return act;
}
