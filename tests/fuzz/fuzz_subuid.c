/* SPDX-License-Identifier: MIT */
/* fuzz_subuid.c - any text as a subuid file (pvm.subuid_file, flowd.subuid_file): never a crash */
#include <fcntl.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/log.h"
#include "common/subuid.h"

/*
 * Input: the file's bytes.  Checked: at most 4096 ranges; none empty, none
 * past the last uid, none holding uid 0 or ours; every uid of a range is
 * charged to the first uid of a range, and uid 0 to itself.
 */

static char fz_path[64];

static void fz_cleanup(void)
{
	unlink(fz_path);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct mw_subuids t = { 0 };
	int fd;

	if (!fz_path[0]) {
		snprintf(fz_path, sizeof(fz_path), "/tmp/mw-fuzz-subuid-XXXXXX");
		fd = mkstemp(fz_path);
		if (fd < 0)
			abort();
		close(fd);
		atexit(fz_cleanup);
		mw_log_init("fuzz_subuid", MW_LOG_ERR);
	}
	fd = open(fz_path, O_WRONLY | O_TRUNC | O_CLOEXEC);
	if (fd < 0 || write(fd, data, size) != (ssize_t)size)
		abort();
	close(fd);
	mw_subuids_load(&t, fz_path, geteuid());
	if (t.n > MW_SUBUID_MAX || mw_subuid_account(&t, 0) != 0)
		abort();
	for (unsigned i = 0; i < t.n; i++) {
		const struct mw_subuid *r = &t.r[i];
		uid_t a = mw_subuid_account(&t, r->start + r->count - 1);
		bool first = false;

		if (!r->count || (uint64_t)r->start + r->count > UINT32_MAX ||
		    r->start == 0 || (r->start <= geteuid() && geteuid() - r->start < r->count))
			abort();
		for (unsigned j = 0; j < t.n; j++)
			first |= t.r[j].start == a;
		if (!first)
			abort();
	}
	mw_subuids_free(&t);
	return 0;
}
