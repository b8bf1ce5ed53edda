/* SPDX-License-Identifier: MIT */
/* pvm_quota.c - per account: app sockets (pvm.max_sockets_per_user), shim connections */
#include <errno.h>
#include <stdlib.h>

#include "common/log.h"
#include "pvm/pvm.h"

/*
 * Counts are per account (common/subuid.c: a uid, or all the subordinate uids of
 * one owner).  Every APP socket (the shim's SOCKET) counts against its
 * creator's account until it is freed; accepted connections do not (their
 * number is the listener's backlog and the INS's business).  An account at
 * its quota gets EMFILE from socket(), and nobody else is affected.  Each
 * control connection counts against its peer's account (SO_PEERCRED) from
 * accept until it is closed, and so does every fd of the account that the
 * closer threads hold (a connection, once dropped, is theirs): together at
 * most pvm.max_connections_per_user.  One is held per app thread, and without
 * a bound one local user (whose closes may hang) could spend all of mw-pvm's
 * fds.  Few accounts use the shim on one host, so the counts are a short list.
 */

struct pvm_uidq {
	struct pvm_uidq *next;
	uid_t uid;
	unsigned count;	  /* app sockets */
	unsigned clients; /* control connections */
};

static struct pvm_uidq **quota_find(struct pvm *p, uid_t uid)
{
	struct pvm_uidq **pp;

	for (pp = &p->quota; *pp; pp = &(*pp)->next)
		if ((*pp)->uid == uid)
			break;
	return pp;
}

/* The entry of @uid, made if need be; NULL: out of memory. */
static struct pvm_uidq *quota_get(struct pvm *p, uid_t uid)
{
	struct pvm_uidq **pp = quota_find(p, uid), *q = *pp;

	if (!q) {
		q = calloc(1, sizeof(*q));
		if (!q)
			return NULL;
		q->uid = uid;
		*pp = q;
	}
	return q;
}

/* @uid's entry lost a count: freed once it counts nothing. */
static void quota_drop(struct pvm *p, uid_t uid, bool client)
{
	struct pvm_uidq **pp = quota_find(p, uid), *q = *pp;

	if (!q)
		return;
	if (client)
		q->clients--;
	else
		q->count--;
	if (!q->count && !q->clients) {
		*pp = q->next;
		free(q);
	}
}

/**
 * pvm_quota_take() - count one more socket for @s's owner's account
 * @s: a new APP socket (owner_uid, owner_acct set)
 * Return: 0, -EMFILE (the uid is at its quota) or -ENOMEM
 */
int pvm_quota_take(struct pvm_sock *s)
{
	struct pvm *p = s->pvm;
	unsigned max = (unsigned)p->cfg->max_sockets_per_user;
	struct pvm_uidq *q = quota_get(p, s->owner_acct);

	if (!q)
		return -ENOMEM;
	if (max && q->count >= max) {
		p->quota_refused++;
		mw_log_ratelimited(MW_LOG_WARN,
				   "uid %u (pid %d, account %u): %u sockets, "
				   "pvm.max_sockets_per_user reached",
				   (unsigned)s->owner_uid, (int)s->owner_pid, (unsigned)s->owner_acct,
				   q->count);
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
	if (!s->quota_held)
		return;
	s->quota_held = false;
	quota_drop(s->pvm, s->owner_acct, false);
}

/**
 * pvm_quota_client_take() - count one more control connection for @uid
 * @p:   the daemon
 * @uid: its peer's uid
 * @pid: its peer's pid (for the log)
 * Return: 0, -EMFILE (the uid is at pvm.max_connections_per_user) or -ENOMEM
 */
int pvm_quota_client_take(struct pvm *p, uid_t uid, pid_t pid)
{
	unsigned max = (unsigned)p->cfg->max_connections_per_user;
	struct pvm_uidq *q = quota_get(p, uid);

	if (!q)
		return -ENOMEM;
	if (max && q->clients + pvm_closer_backlog(p, uid) >= max) {
		p->clients_refused++;
		mw_log_ratelimited(MW_LOG_WARN,
				   "account %u (pid %d): %u shim connections, %u fds being closed: "
				   "pvm.max_connections_per_user reached",
				   (unsigned)uid, (int)pid, q->clients, pvm_closer_backlog(p, uid));
		return -EMFILE;
	}
	q->clients++;
	return 0;
}

/**
 * pvm_quota_client_put() - a control connection counted by pvm_quota_client_take() closed
 * @p:   the daemon
 * @uid: its peer's uid
 */
void pvm_quota_client_put(struct pvm *p, uid_t uid)
{
	quota_drop(p, uid, true);
}
