/* SPDX-License-Identifier: MIT */
/* test_subuid.c - subordinate uid ranges read again when their file changes */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/subuid.h"

/*
 * A user created after the daemon started gets a range (Debian's useradd gives
 * every new user one): read only at start, its 65536 uids would each be an
 * account of their own, each with a whole user's bounds.  mw_subuids_refresh()
 * looks at the file at most once a second and reads it again when it changed:
 * rewritten in place, replaced (rename), removed, created.
 */

static char dir[64], path[96];

static void write_file(const char *text)
{
	char tmp[128];
	FILE *f;

	snprintf(tmp, sizeof(tmp), "%s.new", path);
	f = fopen(tmp, "w");
	assert_non_null(f);
	fputs(text, f);
	assert_int_equal(fclose(f), 0);
	assert_int_equal(rename(tmp, path), 0); /* as useradd and vipw do */
}

static void test_refresh(void **state)
{
	struct mw_subuids t = { 0 };
	FILE *f;

	(void)state;
	snprintf(dir, sizeof(dir), "/tmp/mw-subuid-XXXXXX");
	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/subuid", dir);
	write_file("alice:200000:65536\n");
	mw_subuids_load(&t, path, 0);
	assert_int_equal(t.n, 1);
	assert_int_equal(mw_subuid_account(&t, 200007), 200000);
	assert_int_equal(mw_subuid_account(&t, 300007), 300007);
	mw_subuids_refresh(&t, 100.0);
	assert_int_equal(t.n, 1); /* unchanged */

	/* bob is added: not looked at again within the second, then read. */
	write_file("alice:200000:65536\nbob:300000:65536\n");
	mw_subuids_refresh(&t, 100.5);
	assert_int_equal(mw_subuid_account(&t, 300007), 300007);
	mw_subuids_refresh(&t, 101.2);
	assert_int_equal(t.n, 2);
	assert_int_equal(mw_subuid_account(&t, 300007), 300000);
	assert_int_equal(mw_subuid_account(&t, 365535), 300000);

	/* Rewritten in place, same size (bob's range moved): read again too, by its times
	 * (the kernel's file clock ticks every few ms: let one tick pass). */
	usleep(20 * 1000);
	f = fopen(path, "r+");
	assert_non_null(f);
	assert_int_equal(fseek(f, (long)strlen("alice:200000:65536\nbob:"), SEEK_SET), 0);
	fputs("4", f);
	assert_int_equal(fclose(f), 0);
	mw_subuids_refresh(&t, 102.5);
	assert_int_equal(t.n, 2);
	assert_int_equal(mw_subuid_account(&t, 300007), 300007);
	assert_int_equal(mw_subuid_account(&t, 400007), 400000);

	/* Removed: no range; created again: read. */
	assert_int_equal(unlink(path), 0);
	mw_subuids_refresh(&t, 104.0);
	assert_int_equal(t.n, 0);
	assert_int_equal(mw_subuid_account(&t, 200007), 200007);
	mw_subuids_refresh(&t, 105.5);
	assert_int_equal(t.n, 0);
	write_file("carol:500000:10\n");
	mw_subuids_refresh(&t, 107.0);
	assert_int_equal(t.n, 1);
	assert_int_equal(mw_subuid_account(&t, 500003), 500000);

	/* A clock that went back does not stop the checks. */
	write_file("carol:500000:10\ndave:600000:10\n");
	mw_subuids_refresh(&t, 50.0);
	assert_int_equal(t.n, 2);

	/* No file configured: nothing to look at. */
	mw_subuids_load(&t, "", 0);
	mw_subuids_refresh(&t, 200.0);
	assert_int_equal(t.n, 0);
	mw_subuids_free(&t);
	unlink(path);
	rmdir(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_refresh),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
