/* SPDX-License-Identifier: MIT */
/* subuid.h - whose account a uid is charged to: a subordinate uid range counts as one */
#ifndef MW_SUBUID_H
#define MW_SUBUID_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>
#include <time.h>

#define MW_SUBUID_MAX 4096 /* ranges read at most */

/* One line of a subuid file (/etc/subuid). */
struct mw_subuid {
	uid_t start;
	uint32_t count; /* start + count <= UINT32_MAX */
	uid_t acct;	/* the first uid of the same owner's first range */
	char owner[32]; /* its owner's name or uid, as read */
};

struct mw_subuids {
	struct mw_subuid *r; /* NULL: none */
	unsigned n;
	/* the file as last read, for mw_subuids_refresh() */
	char path[128];
	uid_t self;
	bool present; /* it was there (and readable) */
	dev_t dev;
	ino_t ino;
	off_t size;
	struct timespec mtime, ctime;
	double checked; /* when it was last looked at (the caller's clock, s) */
};

void mw_subuids_load(struct mw_subuids *t, const char *path, uid_t self);
void mw_subuids_refresh(struct mw_subuids *t, double now);
uid_t mw_subuid_account(const struct mw_subuids *t, uid_t uid);
void mw_subuids_free(struct mw_subuids *t);

#endif /* MW_SUBUID_H */
