/* SPDX-License-Identifier: MIT */
/* reload.c - mw-guard's reload (SIGHUP, mwctl guard reload): policy at once, tables at restart */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "guard/guardd.h"

/* Keys whose change needs a restart: the link and the tables sized at start. */
static int restart_keys(struct mw_guard_config *n, const struct mw_guard_config *o, char *keys,
			size_t len)
{
	int changed = 0;

	keys[0] = 0;
#define KEEP_STR(k)                                                                              \
	if (strcmp(n->k, o->k)) {                                                                \
		snprintf(keys + strlen(keys), len - strlen(keys), "%s" #k, changed ? ", " : ""); \
		memcpy(n->k, o->k, sizeof(n->k));                                                \
		changed++;                                                                       \
	}
#define KEEP_INT(k)                                                                              \
	if (n->k != o->k) {                                                                      \
		snprintf(keys + strlen(keys), len - strlen(keys), "%s" #k, changed ? ", " : ""); \
		n->k = o->k;                                                                     \
		changed++;                                                                       \
	}
	KEEP_STR(netflow)
	KEEP_STR(netflow_token_file)
	KEEP_STR(control_socket)
	KEEP_INT(max_conns)
	KEEP_INT(max_sources)
	KEEP_INT(max_blocks)
	KEEP_INT(max_actions)
#undef KEEP_STR
#undef KEEP_INT
	return changed;
}

/**
 * gd_reload() - re-read the configuration file; apply the guard section's policy
 * Return: 0, or -EINVAL with @err (the configuration in force is kept)
 */
int gd_reload(struct guardd *g, char *err, size_t errlen)
{
	struct mw_config *n = calloc(1, sizeof(*n)), *old = g->cfg;
	struct mw_config_errors *errs = calloc(1, sizeof(*errs));
	char keys[256];
	int ret = -ENOMEM;

	snprintf(err, errlen, "out of memory");
	if (!n || !errs)
		goto out;
	ret = mw_config_load(n, old->path[0] ? old->path : NULL, errs);
	if (ret) {
		snprintf(err, errlen, "%s%s", errs->msg[0],
			 errs->count > 1 ? " (and more; see --check-config)" : "");
		goto out;
	}
	if (restart_keys(&n->guard, &old->guard, keys, sizeof(keys)))
		mw_warn("reload: guard %s changed: applied at the next restart", keys);
	ret = gd_engine_configure(&g->eng, &n->guard, err, errlen);
	if (ret)
		goto out;
	ret = gd_engine_set_ins_net(&g->eng, n->balancer.subnet);
	if (ret) { /* validated by the loader: never here */
		snprintf(err, errlen, "balancer.subnet: \"%s\" is not ip/prefix",
			 n->balancer.subnet);
		goto out;
	}
	g->act.report = !strcmp(n->guard.mode, "report");
	g->cfg = n;
	g->tick.repeat = n->guard.tick_ms / 1000.0;
	ev_timer_again(g->d->loop, &g->tick);
	mw_notice("reloaded %s: mode %s, %d listener(s), baseline %s",
		  n->path[0] ? n->path : "(defaults)", n->guard.mode, n->guard.listeners_count,
		  n->guard.baseline ? "on" : "off");
	g->reloads++;
	if (old != &g->d->cfg)
		free(old);
	n = NULL;
out:
	if (ret)
		g->reload_errors++;
	free(n);
	free(errs);
	return ret;
}
