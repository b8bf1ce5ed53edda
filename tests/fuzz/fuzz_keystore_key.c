/* SPDX-License-Identifier: MIT */
/* fuzz_keystore_key.c - arbitrary keys through mw_key_check and the local backend's path mapping */
#include <errno.h>
#include <ftw.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/keystore.h"
#include "common/keystore_backend.h"

/*
 * Invariants: an accepted key is absolute, short, without "."/".."/empty or
 * dot-leading components, and maps to a path strictly inside the root; a
 * rejected key is rejected by every call.  Accepted keys are also written,
 * read back and removed in a private temp root, which is removed at exit.
 */

static char fuzz_root[64];
static struct mw_keystore *fuzz_ks;

static int fuzz_rm_one(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
	(void)st;
	(void)type;
	(void)ftw;
	/* Keep going past a failure: leaving a temp file behind is not worth failing the run. */
	remove(path);
	return 0;
}

/* Remove the temp root depth-first without a shell (no command string built from a path). */
static void fuzz_cleanup(void)
{
	mw_keystore_close(fuzz_ks);
	if (fuzz_root[0])
		nftw(fuzz_root, fuzz_rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

static void fuzz_init(void)
{
	char err[256], root[96];

	snprintf(fuzz_root, sizeof(fuzz_root), "/tmp/mw-fuzz-ks-XXXXXX");
	if (!mkdtemp(fuzz_root))
		abort();
	snprintf(root, sizeof(root), "%s/store", fuzz_root);
	if (mw_keystore_open(&fuzz_ks, "local", root, err, sizeof(err)))
		abort();
	atexit(fuzz_cleanup);
}

static void check_accepted(const char *key)
{
	char path[PATH_MAX], buf[64];
	size_t len = strlen(key), rlen = strlen(fuzz_root);

	if (key[0] != '/' || len >= MW_KEY_MAX || strstr(key, "//") || strstr(key, "/.") ||
	    key[len - 1] == '/')
		abort();
	for (const char *p = key; *p; p++)
		if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
		      (*p >= '0' && *p <= '9') || *p == '_' || *p == '-' || *p == '.' || *p == '/'))
			abort();
	/* The file is the root followed by the key: inside the root, never the root itself. */
	if (mw_keystore_local_path(fuzz_root, key, path, sizeof(path)) ||
	    strncmp(path, fuzz_root, rlen) || path[rlen] != '/' || strcmp(path + rlen, key))
		abort();
	if (mw_keystore_local_path(fuzz_root, key, path, 4) != -ENAMETOOLONG)
		abort();
	/* Round trip in the temp root; the first component goes away again. */
	if (mw_keystore_write(fuzz_ks, key, key, len) == 0) {
		int n = mw_keystore_read(fuzz_ks, key, buf, sizeof(buf));

		if (n != (len < sizeof(buf) ? (int)len : -ENOSPC) ||
		    (n > 0 && memcmp(buf, key, len)))
			abort();
	}
	{
		char top[MW_KEY_MAX];
		const char *slash = strchr(key + 1, '/');

		snprintf(top, sizeof(top), "%.*s", slash ? (int)(slash - key) : (int)len, key);
		if (mw_keystore_remove(fuzz_ks, top) || mw_keystore_list(fuzz_ks, top, NULL, NULL))
			abort();
	}
}

static void check_rejected(const char *key)
{
	char path[64], buf[8];

	if (mw_keystore_local_path("/r", key, path, sizeof(path)) != -EINVAL ||
	    mw_keystore_write(fuzz_ks, key, "x", 1) != -EINVAL ||
	    mw_keystore_read(fuzz_ks, key, buf, sizeof(buf)) != -EINVAL ||
	    mw_keystore_remove(fuzz_ks, key) != -EINVAL || mw_keystore_watch(fuzz_ks, key) != -EINVAL)
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char key[MW_KEY_MAX + 16];

	if (!fuzz_ks)
		fuzz_init();
	if (size >= sizeof(key))
		size = sizeof(key) - 1;
	memcpy(key, data, size);
	key[size] = '\0';
	if (mw_key_check(key) == 0)
		check_accepted(key);
	else
		check_rejected(key);
	return 0;
}
