/* SPDX-License-Identifier: MIT */
/* observe.c - observer hook dispatch; no observer attached by default */
#include <string.h>

#include "pvm/observe.h"
#include "pvm/pvm.h"

const struct pvm_observer *pvm_observer_current;

void pvm_observe_set(const struct pvm_observer *o)
{
	pvm_observer_current = o;
}

void pvm_observe_sock(enum pvm_obs_type type, const struct pvm_sock *s, int status)
{
	const struct pvm_observer *o = pvm_observer_current;
	struct pvm_obs_event ev;

	if (!o || !o->event || (o->wants && !o->wants(o->ctx)))
		return;
	memset(&ev, 0, sizeof(ev));
	ev.type = type;
	ev.status = status;
	ev.id = type == PVM_OBS_ACCEPT && s->listener ? s->listener : s->id;
	ev.extra = s->id;
	ev.local =
		s->kind == PVM_SOCK_ACCEPTED || s->state == PVM_ST_CONNECTED ? s->local : s->bound;
	if (type == PVM_OBS_ACCEPT && s->listener) {
		/*
		 * At its listener's port, as mw-pvm bound it, not as the INS says
		 * (PROXY v2 can name another, a compromised INS any): consumers
		 * (mw-guard) learn a listener's port from its accepts.
		 */
		const struct pvm_sock *l = pvm_sock_find(s->pvm, s->listener);

		if (l && l->bound.family)
			ev.local.port = l->bound.port;
	}
	ev.peer = s->peer;
	ev.bytes_in = s->bytes_in;
	ev.bytes_out = s->bytes_out;
	ev.owner_pid = s->owner_pid;
	ev.owner_acct = s->owner_acct;
	ev.start = s->created;
	o->event(o->ctx, &ev);
}
