/* SPDX-License-Identifier: MIT */
/* fuzz_subuid.c - any text as pvm.subuid_file: ranges read or skipped, never a crash */
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/config.h"
#include "common/log.h"
#include "pvm/pvm.h"

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
	static struct mw_config cfg;
	struct pvm p;
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
	mw_config_defaults(&cfg);
	snprintf(cfg.pvm.subuid_file, sizeof(cfg.pvm.subuid_file), "%s", fz_path);
	memset(&p, 0, sizeof(p));
	p.cfg = &cfg.pvm;
	pvm_subuid_load(&p);
	if (p.nsubuid > 4096 || pvm_uid_account(&p, 0) != 0)
		abort();
	for (unsigned i = 0; i < p.nsubuid; i++) {
		const struct pvm_subuid *r = &p.subuid[i];
		uid_t a = pvm_uid_account(&p, r->start + r->count - 1);
		bool first = false;

		if (!r->count || (uint64_t)r->start + r->count > UINT32_MAX ||
		    r->start == 0 || (r->start <= geteuid() && geteuid() - r->start < r->count))
			abort();
		for (unsigned j = 0; j < p.nsubuid; j++)
			first |= p.subuid[j].start == a;
		if (!first)
			abort();
	}
	free(p.subuid);
	return 0;
}
