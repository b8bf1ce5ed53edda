/* SPDX-License-Identifier: MIT */
/* fuzz_config.c - any text as mwcomms.conf: mw_config_load() validates it or says why, never
 * crashes */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/config.h"
#include "common/config_ints.h"

/*
 * Input: the file's bytes.  Checked: a load that fails names its problems
 * (each stored message NUL-terminated and non-empty; past MW_CONFIG_MAX_ERRORS
 * problems are still counted and the last stored line says so); a load that
 * succeeds leaves no error behind.  The integer widening before libconfig
 * never needs more than MW_CONFIG_WIDEN_SIZE and only ever inserts 'L's.
 */

static char fz_path[64];

/*
 * libconfig's scanner leaks its string buffer when a syntax error ends a file
 * inside a string (strbuf_append, entirely inside libconfig.so; 64 bytes per
 * failed load, once per start or reload for mwcommon).  Not ours to fix:
 * suppressed so the target judges mwcomms' code.
 */
const char *__lsan_default_suppressions(void);
const char *__lsan_default_suppressions(void)
{
	return "leak:libconfig.so\n";
}

/* Widen @data; the result must be @data with only Ls inserted. */
static void fz_check_widen(const uint8_t *data, size_t size)
{
	static char out[MW_CONFIG_WIDEN_SIZE(1 << 16)];
	size_t i = 0, o = 0;
	ssize_t n;

	if (MW_CONFIG_WIDEN_SIZE(size) > sizeof(out))
		return;
	n = mw_config_widen_ints((const char *)data, size, out, MW_CONFIG_WIDEN_SIZE(size), NULL,
				 NULL, NULL);
	if (n == -ERANGE)
		return;
	if (n < 0 || (size_t)n > MW_CONFIG_WIDEN_SIZE(size))
		abort();
	for (; o < (size_t)n; o++) {
		if (i < size && out[o] == (char)data[i])
			i++;
		else if (out[o] != 'L')
			abort();
	}
	if (i != size)
		abort();
}

static void fz_cleanup(void)
{
	unlink(fz_path);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct mw_config cfg;
	static struct mw_config_errors errs;
	int fd, ret;

	if (!fz_path[0]) {
		snprintf(fz_path, sizeof(fz_path), "/tmp/mw-fuzz-config-XXXXXX");
		fd = mkstemp(fz_path);
		if (fd < 0)
			abort();
		close(fd);
		atexit(fz_cleanup);
	}
	fd = open(fz_path, O_WRONLY | O_TRUNC | O_CLOEXEC);
	if (fd < 0 || write(fd, data, size) != (ssize_t)size)
		abort();
	close(fd);
	fz_check_widen(data, size);
	memset(&errs, 0, sizeof(errs));
	ret = mw_config_load(&cfg, fz_path, &errs);
	if (ret == 0 && errs.count != 0)
		abort();
	if (ret != 0 && errs.count < 1)
		abort();
	for (int i = 0; i < errs.count && i < MW_CONFIG_MAX_ERRORS; i++)
		if (!errs.msg[i][0] || !memchr(errs.msg[i], 0, sizeof(errs.msg[i])))
			abort();
	/* Past the cap every problem is still counted, and the last line says so. */
	if (errs.count > MW_CONFIG_MAX_ERRORS &&
	    !strstr(errs.msg[MW_CONFIG_MAX_ERRORS - 1], "too many errors"))
		abort();
	return 0;
}
