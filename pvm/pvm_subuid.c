/* SPDX-License-Identifier: MIT */
/* pvm_subuid.c - whose account a uid is charged to: a subordinate uid range counts as one */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "pvm/pvm.h"

/*
 * The bounds per uid (control connections, the closer's share and backlog)
 * would be per user only if a user had one uid.  A user with a subordinate
 * uid range (/etc/subuid, used through newuidmap for rootless containers)
 * has up to 65536, and SO_PEERCRED shows each as itself.  So every uid in a
 * range is charged to one account: the range's first uid (not its owner's
 * uid: a container's processes must not spend their owner's share, root's
 * least of all).  Ranges are read once, when mw-pvm starts.
 */

#define SUBUID_MAX 4096 /* ranges read at most */

struct pvm_subuid {
	uid_t start;
	uint32_t count;
};

/* One "owner:start:count" line; false if it is not one. */
static bool subuid_parse(const char *line, struct pvm_subuid *r)
{
	const char *colon = strchr(line, ':');
	unsigned long long start, count;
	char *end;

	if (!colon || colon == line)
		return false;
	errno = 0;
	start = strtoull(colon + 1, &end, 10);
	if (errno || end == colon + 1 || *end != ':')
		return false;
	count = strtoull(end + 1, &end, 10);
	if (errno || (*end && *end != '\n') || !count || start > UINT32_MAX ||
	    count > (unsigned long long)UINT32_MAX + 1 - start)
		return false;
	r->start = (uid_t)start;
	r->count = (uint32_t)(count > UINT32_MAX ? UINT32_MAX : count);
	return true;
}

/**
 * pvm_subuid_load() - read the subordinate uid ranges of pvm.subuid_file
 * @p: the daemon (p->cfg->subuid_file; "" reads none)
 *
 * A missing file is no range; a line that is not "owner:start:count" is
 * skipped, with a warning.
 */
void pvm_subuid_load(struct pvm *p)
{
	const char *path = p->cfg->subuid_file;
	struct pvm_subuid *r;
	char line[256];
	unsigned bad = 0;
	FILE *f;

	free(p->subuid);
	p->subuid = NULL;
	p->nsubuid = 0;
	if (!path[0])
		return;
	f = fopen(path, "re");
	if (!f) {
		if (errno != ENOENT)
			mw_warn("%s: %s: subordinate uids are counted one by one", path,
				strerror(errno));
		return;
	}
	r = calloc(SUBUID_MAX, sizeof(*r));
	while (r && p->nsubuid < SUBUID_MAX && fgets(line, sizeof(line), f)) {
		if (line[0] == '#' || line[0] == '\n')
			continue;
		if (subuid_parse(line, &r[p->nsubuid]))
			p->nsubuid++;
		else
			bad++;
	}
	fclose(f);
	if (bad)
		mw_warn("%s: %u line(s) not owner:start:count, skipped", path, bad);
	p->subuid = r;
}

/**
 * pvm_uid_account() - the account @uid is charged to
 * @p:   the daemon
 * @uid: a peer's uid
 * Return: the first uid of the subordinate range holding @uid, else @uid
 */
uid_t pvm_uid_account(const struct pvm *p, uid_t uid)
{
	for (unsigned i = 0; i < p->nsubuid; i++)
		if (uid >= p->subuid[i].start && uid - p->subuid[i].start < p->subuid[i].count)
			return p->subuid[i].start;
	return uid;
}
