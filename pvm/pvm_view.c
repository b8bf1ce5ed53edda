/* SPDX-License-Identifier: MIT */
/* pvm_view.c - mw-pvm's view of each INS channel, published in the keystore for mw-balancer */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "common/keystore.h"
#include "common/log.h"
#include "pvm/pvm.h"

/*
 * Theory of operation
 *
 * mw-balancer checks each INS it runs from outside (process state, a TCP
 * probe, the accept); only mw-pvm knows whether the INS's channel is alive
 * (handshake done, heartbeats on time, frames valid).  While it is, key
 * /mw/pvms/<index>/ins/<id> holds "up <pid>" (the pid the INS announced);
 * when mw-pvm ends the channel (EOF, heartbeat timeout, a protocol error)
 * the key goes, so the balancer takes that INS out of its rotation
 * (balancer/health.c).  A key is removed only while it still holds this
 * INS's value: a new INS with the same id may have joined meanwhile.
 *
 * The INS cannot forge the key: the keystore is not in its view
 * (docs/balancer.md "Confinement").  Writes go to the local keystore's
 * tmpfs (or XenStore) once per join and leave, never per heartbeat.
 */

#define PVM_VIEW_KEY_FMT "/mw/pvms/%d/ins/%u"

static int view_key(const struct pvm_ins *ins, char *key, size_t len)
{
	int n = snprintf(key, len, PVM_VIEW_KEY_FMT, ins->pvm->cfg->index, ins->id);

	return n < 0 || (size_t)n >= len ? -ENAMETOOLONG : 0;
}

static void view_value(const struct pvm_ins *ins, char *val, size_t len)
{
	snprintf(val, len, "up %d", (int)ins->ch.peer.pid);
}

/**
 * pvm_view_open() - open the keystore the INS view is published in
 * @p: the daemon; p->view is left NULL (nothing published) when it cannot be opened
 *
 * Not fatal: mw-pvm serves its app without it; mw-balancer then judges its
 * INS by its own checks only.
 */
void pvm_view_open(struct pvm *p)
{
	const struct mw_config *cfg = &p->d->cfg;
	char err[256];

	if (mw_keystore_open(&p->view, cfg->common.keystore, cfg->common.keystore_root, err,
			     sizeof(err))) {
		mw_warn("INS view not published: %s", err);
		p->view = NULL;
	}
}

/**
 * pvm_view_close() - close the keystore; call after every INS channel ended
 * @p: the daemon
 */
void pvm_view_close(struct pvm *p)
{
	if (p->view)
		mw_keystore_close(p->view);
	p->view = NULL;
}

/**
 * pvm_view_ins_up() - publish that @ins's channel is up
 * @ins: an INS that just joined
 */
void pvm_view_ins_up(struct pvm_ins *ins)
{
	char key[MW_KEY_MAX], val[32];
	int ret;

	if (!ins->pvm->view || view_key(ins, key, sizeof(key)))
		return;
	view_value(ins, val, sizeof(val));
	ret = mw_keystore_write(ins->pvm->view, key, val, strlen(val));
	if (ret)
		mw_log_ratelimited(MW_LOG_WARN, "INS %u: cannot publish its channel at %s: %s",
				   ins->id, key, strerror(-ret));
}

/**
 * pvm_view_ins_down() - withdraw @ins's key, if it is still this INS's
 * @ins: an INS whose channel mw-pvm is ending
 */
void pvm_view_ins_down(struct pvm_ins *ins)
{
	char key[MW_KEY_MAX], val[32], cur[32];

	if (!ins->pvm->view || view_key(ins, key, sizeof(key)))
		return;
	view_value(ins, val, sizeof(val));
	if (mw_keystore_read(ins->pvm->view, key, cur, sizeof(cur)) >= 0 && !strcmp(cur, val))
		mw_keystore_remove(ins->pvm->view, key);
}
