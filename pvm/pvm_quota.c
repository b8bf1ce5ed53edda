/* SPDX-License-Identifier: MIT */
/* pvm_quota.c - per-uid count of app sockets against pvm.max_sockets_per_user */
#include <errno.h>
#include <stdlib.h>

#include "common/log.h"
#include "pvm/pvm.h"

/*
 * Every APP socket (the shim's SOCKET) counts against its creator's uid until
 * it is freed; accepted connections do not (their number is the listener's
 * backlog and the INS's business).  A uid at its quota gets EMFILE from
 * socket(), and nobody else is affected.  Few uids use the shim on one host,
 * so the counts are a short list.
 */

struct pvm_uidq {
	struct pvm_uidq *next;
	uid_t uid;
	unsigned count;
};

static struct pvm_uidq **quota_find(struct pvm *p, uid_t uid)
{
	struct pvm_uidq **pp;

	for (pp = &p->quota; *pp; pp = &(*pp)->next)
		if ((*pp)->uid == uid)
			break;
	return pp;
}

/**
 * pvm_quota_take() - count one more socket for @s's owner uid
 * @s: a new APP socket (owner_uid set)
 * Return: 0, -EMFILE (the uid is at its quota) or -ENOMEM
 */
int pvm_quota_take(struct pvm_sock *s)
{
	struct pvm *p = s->pvm;
	unsigned max = (unsigned)p->cfg->max_sockets_per_user;
	struct pvm_uidq **pp = quota_find(p, s->owner_uid), *q = *pp;

	if (!q) {
		q = calloc(1, sizeof(*q));
		if (!q)
			return -ENOMEM;
		q->uid = s->owner_uid;
		*pp = q;
	}
	if (max && q->count >= max) {
		p->quota_refused++;
		mw_log_ratelimited(MW_LOG_WARN,
				   "uid %u (pid %d): %u sockets, pvm.max_sockets_per_user reached",
				   (unsigned)s->owner_uid, (int)s->owner_pid, q->count);
		return -EMFILE;
	}
	q->count++;
	s->quota_held = true;
	return 0;
}

/**
 * pvm_quota_put() - @s is freed: uncount it
 * @s: the socket
 */
void pvm_quota_put(struct pvm_sock *s)
{
	struct pvm_uidq **pp, *q;

	if (!s->quota_held)
		return;
	s->quota_held = false;
	pp = quota_find(s->pvm, s->owner_uid);
	q = *pp;
	if (!q)
		return;
	if (--q->count == 0) {
		*pp = q->next;
		free(q);
	}
}
