/* SPDX-License-Identifier: MIT */
/* subuid.c - whose account a uid is charged to: a subordinate uid range counts as one */
#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/log.h"
#include "common/subuid.h"

/*
 * Bounds per uid (mw-pvm's control connections, sockets, the closer's share;
 * mw-flowd's MAPI clients) would be per user only if a user had one uid.  A user with a subordinate
 * uid range (/etc/subuid, used through newuidmap for rootless containers)
 * has up to 65536, and SO_PEERCRED shows each as itself.  So every uid of an
 * owner's ranges is charged to one account: the first uid of the owner's
 * first range (not the owner's own uid: a container's processes must not
 * spend their owner's share, root's least of all).  A range holding uid 0 or
 * the daemon's own is skipped.  Ranges are read when the daemon starts, and
 * again when the file changed (mw_subuids_refresh(), called where a new peer
 * is charged, looks at most once a second): Debian's useradd gives every new
 * user a range, and a user whose range came after the start would otherwise
 * have 65536 accounts' bounds.  What is charged already stays where it was.
 */

/* A decimal number of at most @max at @s, digits only; *@end after it. */
static bool subuid_number(const char *s, unsigned long long max, unsigned long long *v,
			  const char **end)
{
	char *e;

	if (*s < '0' || *s > '9')
		return false;
	errno = 0;
	*v = strtoull(s, &e, 10);
	*end = e;
	return !errno && *v <= max;
}

/* One "owner:start:count" line (no newline); false if it is not one. */
static bool subuid_parse(const char *line, struct mw_subuid *r)
{
	const char *colon = strchr(line, ':'), *end;
	unsigned long long start, count;

	if (!colon || colon == line || (size_t)(colon - line) >= sizeof(r->owner))
		return false;
	if (!subuid_number(colon + 1, UINT32_MAX - 1, &start, &end) || *end != ':' ||
	    !subuid_number(end + 1, UINT32_MAX, &count, &end) || *end || !count ||
	    count > (unsigned long long)UINT32_MAX - start)
		return false;
	memset(r->owner, 0, sizeof(r->owner));
	memcpy(r->owner, line, (size_t)(colon - line));
	r->start = (uid_t)start;
	r->count = (uint32_t)count;
	return true;
}

/* Whether @r holds @uid. */
static bool subuid_holds(const struct mw_subuid *r, uid_t uid)
{
	return uid >= r->start && uid - r->start < r->count;
}

/* The account of a new range of @r's owner: that owner's first range's start. */
static uid_t subuid_acct(const struct mw_subuid *r, unsigned n, const struct mw_subuid *nr)
{
	for (unsigned i = 0; i < n; i++)
		if (!strcmp(r[i].owner, nr->owner))
			return r[i].acct;
	return nr->start;
}

/**
 * mw_subuids_load() - read the subordinate uid ranges of @path
 * @t:    the table, replaced
 * @path: "owner:start:count" lines ("" reads none)
 * @self: the daemon's euid: a range holding it (or uid 0) is skipped
 *
 * A missing file is no range; a line that is not "owner:start:count" is
 * skipped, with a warning.
 */
void mw_subuids_load(struct mw_subuids *t, const char *path, uid_t self)
{
	struct mw_subuid *r;
	unsigned bad = 0, skipped = 0, over = 0;
	char line[256];
	size_t len;
	struct stat st;
	FILE *f;

	mw_subuids_free(t);
	if (path != t->path)
		snprintf(t->path, sizeof(t->path), "%s", path);
	t->self = self;
	t->present = false;
	if (!path[0])
		return;
	/* What mw_subuids_refresh() compares with (replaced meanwhile: read again then). */
	if (!stat(path, &st)) {
		t->present = true;
		t->dev = st.st_dev;
		t->ino = st.st_ino;
		t->size = st.st_size;
		t->mtime = st.st_mtim;
		t->ctime = st.st_ctim;
	}
	f = fopen(path, "re");
	if (!f) {
		if (errno != ENOENT)
			mw_warn("%s: %s: subordinate uids are counted one by one", path,
				strerror(errno));
		return;
	}
	r = calloc(MW_SUBUID_MAX, sizeof(*r));
	while (r && fgets(line, sizeof(line), f)) {
		struct mw_subuid *nr = &r[t->n];

		len = strlen(line);
		if (len && line[len - 1] == '\n') {
			line[--len] = '\0';
		} else if (!feof(f)) { /* too long: the line is skipped, not split */
			int c;

			while ((c = fgetc(f)) != EOF && c != '\n')
				;
			if (line[0] != '#')
				bad++;
			continue;
		}
		if (!len || line[0] == '#')
			continue;
		if (t->n == MW_SUBUID_MAX) {
			over++;
			continue;
		}
		if (!subuid_parse(line, nr)) {
			bad++;
			continue;
		}
		if (subuid_holds(nr, 0) || subuid_holds(nr, self)) {
			skipped++; /* its processes would share root's (or the daemon's) account */
			continue;
		}
		nr->acct = subuid_acct(r, t->n, nr);
		t->n++;
	}
	fclose(f);
	if (bad)
		mw_warn("%s: %u line(s) not owner:start:count, skipped", path, bad);
	if (skipped)
		mw_warn("%s: %u range(s) holding uid 0 or this daemon's, skipped", path, skipped);
	if (over)
		mw_warn("%s: over %u ranges: %u not read (their uids count one by one)", path,
			MW_SUBUID_MAX, over);
	t->r = r;
}

static bool same_time(const struct timespec *a, const struct timespec *b)
{
	return a->tv_sec == b->tv_sec && a->tv_nsec == b->tv_nsec;
}

/**
 * mw_subuids_refresh() - read the ranges again if their file changed
 * @t:   the table, loaded by mw_subuids_load()
 * @now: the caller's clock (s); the file is looked at once a second at most
 *
 * Changed: another file (replaced: device, inode), another size, times, or it
 * appeared or went.
 */
void mw_subuids_refresh(struct mw_subuids *t, double now)
{
	char path[sizeof(t->path)];
	struct stat st;
	unsigned before = t->n;

	if (!t->path[0] || (t->checked && now >= t->checked && now - t->checked < 1.0))
		return;
	t->checked = now;
	if (stat(t->path, &st)) {
		if (!t->present)
			return;
	} else if (t->present && st.st_dev == t->dev && st.st_ino == t->ino &&
		   st.st_size == t->size && same_time(&st.st_mtim, &t->mtime) &&
		   same_time(&st.st_ctim, &t->ctime)) {
		return;
	}
	memcpy(path, t->path, sizeof(path));
	mw_subuids_load(t, path, t->self);
	mw_notice("%s changed: %u subordinate uid range(s), were %u", path, t->n, before);
}

/**
 * mw_subuid_account() - the account @uid is charged to
 * @t:   the ranges
 * @uid: a peer's uid
 * Return: for a uid of a subordinate range, its owner's account (the first
 *         uid of the owner's first range); else @uid
 */
uid_t mw_subuid_account(const struct mw_subuids *t, uid_t uid)
{
	for (unsigned i = 0; i < t->n; i++)
		if (subuid_holds(&t->r[i], uid))
			return t->r[i].acct;
	return uid;
}

void mw_subuids_free(struct mw_subuids *t)
{
	free(t->r);
	t->r = NULL;
	t->n = 0;
}
