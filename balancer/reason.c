/* SPDX-License-Identifier: MIT */
/* reason.c - mw-balancer's failures as named reasons: a status token and a text each */
#include "balancer/bal.h"

struct reason_name {
	const char *token; /* status key suffix: fail_<token>=N */
	const char *text;  /* for log lines */
};

static const struct reason_name reasons[BAL_R_COUNT] = {
	[BAL_R_NO_INS] = { "no_ins", "no ready INS could take the connection" },
	[BAL_R_CONNECT_TIMEOUT] = { "connect_timeout",
				    "connect to the INS timed out (balancer.connect_timeout_ms)" },
	[BAL_R_CONNECT_REFUSED] = { "connect_refused", "the INS refused the connection" },
	[BAL_R_CONNECT_ERROR] = { "connect_error", "connect to the INS failed" },
	[BAL_R_LIMIT] = { "limit", "balancer.max_conns connections already: client closed" },
	[BAL_R_ACCEPT_PAUSED] = { "accept_paused",
				  "accept out of file descriptors or memory: listeners paused" },
	[BAL_R_RESOURCE] = { "resource", "no socket, pipe or memory for a connection" },
	[BAL_R_IDLE_TIMEOUT] = { "idle_timeout",
				 "no byte either way for balancer.idle_timeout_ms" },
	[BAL_R_IO_ERROR] = { "io_error", "a leg failed while moving bytes" },
	[BAL_R_DRAIN_TIMEOUT] = { "drain_timeout", "draining INS still had connections after "
						   "balancer.drain_timeout_ms: stopped" },
	[BAL_R_HEALTH_REFUSED] = { "health_refused", "health probe refused" },
	[BAL_R_HEALTH_TIMEOUT] = { "health_timeout", "health probe not connected within "
						     "balancer.health_timeout_ms" },
	[BAL_R_HEALTH_NOT_ACCEPTED] = { "health_not_accepted",
					"health probe connected but mw-ins did not accept it "
					"within balancer.health_timeout_ms (wedged)" },
	[BAL_R_HEALTH_STOPPED] = { "health_stopped", "the INS process is stopped" },
	[BAL_R_HEALTH_PVM_LOST] = { "health_pvm_lost",
				    "mw-pvm no longer has a channel to the INS" },
	[BAL_R_HEALTH_ERROR] = { "health_error", "health probe could not run" },
	[BAL_R_HEALTH_DOWN] = { "health_down",
				"INS stopped after balancer.health_failures failed checks" },
	[BAL_R_START_TIMEOUT] = { "start_timeout", "INS not joined mw-pvm within "
						   "balancer.start_timeout_ms: replaced" },
	[BAL_R_LIMIT_SOURCE] = { "limit_source", "balancer.max_conns_per_source connections "
						 "from this address already: client closed" },
};

/**
 * bal_reason_token() - the status token of @r ("no_ins", ...)
 * @r: reason
 *
 * Return: a static string without spaces; "unknown" out of range
 */
const char *bal_reason_token(enum bal_reason r)
{
	return (unsigned)r < BAL_R_COUNT ? reasons[r].token : "unknown";
}

/**
 * bal_reason_text() - what @r means, in words, for log lines
 * @r: reason
 *
 * Return: a static string; "unknown reason" out of range
 */
const char *bal_reason_text(enum bal_reason r)
{
	return (unsigned)r < BAL_R_COUNT ? reasons[r].text : "unknown reason";
}

/**
 * bal_count() - count one failure of reason @r
 * @b: the balancer
 * @r: reason
 */
void bal_count(struct bal *b, enum bal_reason r)
{
	if ((unsigned)r < BAL_R_COUNT)
		b->reasons[r]++;
}
