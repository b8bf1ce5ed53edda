// SPDX-License-Identifier: MIT
/*
 * pvm_insproc.c - one local INS process, one INS id, for as long as it lives
 *
 * An INS names its id in its hello.  A process holds one channel at a time
 * (pvm_ins_join() refuses a second by SO_PEERCRED), but a compromised INS could
 * end its channel and join again under another id, as often as it likes: every
 * state kept per INS id (mw-guard's share of blocks per INS, an AddrBlock scoped
 * to one INS, the id of an INS that is restarting, whose listeners and steering
 * it would take over) would then be its for the asking.  It cannot fork (its
 * seccomp filter), so binding the id to the process closes that: each local join
 * is recorded as (pidfd, pid, id), and a process still alive that joined as INS M
 * may join again only as M.
 *
 * A record holds a pidfd, so a pid number reused after the process exited is
 * never taken for it: a record whose pidfd is readable (the process exited) is
 * dropped before any comparison, and a live process's pid is its own.  At most
 * PVM_INS_PROCS records; a join beyond drops the oldest (only honest INS add
 * records: a confined one cannot make processes).  Xen INS have no local process
 * and are not recorded (their id is the domain's, set by the toolstack).
 */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "common/log.h"
#include "pvm/pvm.h"

/* Drop the records of processes that exited. */
static void insproc_prune(struct pvm *p)
{
	struct pollfd pfd = { .events = POLLIN };
	unsigned i = 0;

	while (i < p->ninsprocs) {
		pfd.fd = p->insprocs[i].pidfd;
		if (poll(&pfd, 1, 0) <= 0 || !(pfd.revents & (POLLIN | POLLHUP))) {
			i++; /* alive (or poll failed: kept, failing closed) */
			continue;
		}
		close(p->insprocs[i].pidfd);
		p->ninsprocs--; /* oldest first, for eviction */
		memmove(&p->insprocs[i], &p->insprocs[i + 1],
			(p->ninsprocs - i) * sizeof(p->insprocs[0]));
	}
}

/**
 * pvm_insproc_refusal() - may process @pid join as INS @id?
 * @p:   the daemon
 * @pid: the connecting process (the kernel's credentials of its connection)
 * @id:  the id its hello names
 * @buf: the reason, if refused
 * @bl:  its size
 * Return: NULL if it may, else @buf
 */
const char *pvm_insproc_refusal(struct pvm *p, pid_t pid, uint16_t id, char *buf, size_t bl)
{
	unsigned i;

	insproc_prune(p);
	for (i = 0; i < p->ninsprocs; i++)
		if (p->insprocs[i].pid == pid && p->insprocs[i].id != id) {
			snprintf(buf, bl, "pid %d joined as INS %u before: one process, one id",
				 (int)pid, p->insprocs[i].id);
			return buf;
		}
	return NULL;
}

/**
 * pvm_insproc_joined() - process @pid joined as INS @id: record it
 * @p:     the daemon
 * @pidfd: from mw_peer_pidfd(), owned from here on; -1: none could be had
 * @pid:   the process
 * @id:    its INS id
 */
void pvm_insproc_joined(struct pvm *p, int pidfd, pid_t pid, uint16_t id)
{
	struct pvm_insproc *r;
	unsigned i;

	for (i = 0; i < p->ninsprocs; i++)
		if (p->insprocs[i].pid == pid) {
			if (pidfd >= 0)
				close(pidfd);
			return; /* joined again as the same id (checked by the refusal above) */
		}
	if (pidfd < 0) {
		mw_log_ratelimited(
			MW_LOG_WARN,
			"INS %u: no pidfd for pid %d: its id is not bound to its process", id,
			(int)pid);
		return;
	}
	if (p->ninsprocs == PVM_INS_PROCS) {
		close(p->insprocs[0].pidfd);
		memmove(&p->insprocs[0], &p->insprocs[1],
			(PVM_INS_PROCS - 1) * sizeof(p->insprocs[0]));
		p->ninsprocs--;
	}
	r = &p->insprocs[p->ninsprocs++];
	r->pidfd = pidfd;
	r->pid = pid;
	r->id = id;
}

/* pvm_insproc_close_all() - at exit */
void pvm_insproc_close_all(struct pvm *p)
{
	while (p->ninsprocs)
		close(p->insprocs[--p->ninsprocs].pidfd);
}
