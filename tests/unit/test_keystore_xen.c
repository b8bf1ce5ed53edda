/* SPDX-License-Identifier: MIT */
/* test_keystore_xen.c - the XenStore backend's logic that needs no xenstored */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <xenstore.h>

#include <cmocka.h>

#include "common/keystore.h"
#include "common/keystore_backend.h"

/* No hypervisor here: opening must fail with one clear line, not crash or hang. */
static void test_open_without_xenstored(void **state)
{
	struct mw_keystore *ks = (struct mw_keystore *)1;
	char err[256] = "", want[256];
	int ret;

	(void)state;
	ret = mw_keystore_open(&ks, "xenstore", NULL, err, sizeof(err));
	assert_true(ret < 0);
	assert_null(ks);
	snprintf(want, sizeof(want),
		 "xenstore: cannot reach xenstored (%s); use keystore = \"local\" on hosts without Xen",
		 strerror(-ret));
	assert_string_equal(err, want);
}

static void test_open_error_line(void **state)
{
	char err[256];

	(void)state;
	assert_int_equal(mw_keystore_xen_open_error(EACCES, err, sizeof(err)), -EACCES);
	assert_string_equal(err, "xenstore: cannot reach xenstored (Permission denied); use "
				 "keystore = \"local\" on hosts without Xen");
	/* xs_open() failing without errno still gives an errno and a reason. */
	assert_int_equal(mw_keystore_xen_open_error(0, err, sizeof(err)), -ENOENT);
	assert_non_null(strstr(err, "(No such file or directory)"));
	/* A short buffer truncates, never overflows. */
	assert_int_equal(mw_keystore_xen_open_error(EIO, err, 10), -EIO);
	assert_string_equal(err, "xenstore:");
}

/* Key rules are the front end's: a bad key never reaches libxenstore. */
static void test_keys_checked_before_open_handle(void **state)
{
	(void)state;
	assert_int_equal(mw_key_check("/local/domain/0/../1"), -EINVAL);
	assert_int_equal(mw_key_check("@introduceDomain"), -EINVAL);
	assert_int_equal(mw_key_check("/mw/ins/3/heartbeat"), 0);
	assert_true(mw_key_is_under("/mw/ins/3", "/mw/ins"));
	assert_true(mw_key_is_under("/mw/ins", "/mw/ins"));
	assert_false(mw_key_is_under("/mw/insx", "/mw/ins"));
	assert_false(mw_key_is_under("/mw", "/mw/ins"));
}

static void test_event_decoding(void **state)
{
	char key[MW_KEY_MAX], watch[MW_KEY_MAX];
	char *good[2], *foreign[2], *outside[2];

	(void)state;
	good[XS_WATCH_PATH] = "/mw/ins/3/heartbeat";
	good[XS_WATCH_TOKEN] = "/mw/ins";
	assert_int_equal(mw_keystore_xen_event(good, key, sizeof(key), watch, sizeof(watch)), 1);
	assert_string_equal(key, "/mw/ins/3/heartbeat");
	assert_string_equal(watch, "/mw/ins");
	/* Special paths ("@introduceDomain") and tokens that are not keys are ignored. */
	foreign[XS_WATCH_PATH] = "@introduceDomain";
	foreign[XS_WATCH_TOKEN] = "/mw";
	assert_int_equal(mw_keystore_xen_event(foreign, key, sizeof(key), watch, sizeof(watch)),
			 -EBADMSG);
	outside[XS_WATCH_PATH] = "/mwx/1";
	outside[XS_WATCH_TOKEN] = "/mw";
	assert_int_equal(mw_keystore_xen_event(outside, key, sizeof(key), watch, sizeof(watch)),
			 -EBADMSG);
	assert_int_equal(mw_keystore_xen_event(NULL, key, sizeof(key), watch, sizeof(watch)),
			 -EBADMSG);
	/* The initial event xenstored sends on xs_watch(): path == token. */
	good[XS_WATCH_PATH] = "/mw/ins";
	assert_int_equal(mw_keystore_xen_event(good, key, sizeof(key), watch, sizeof(watch)), 1);
	assert_string_equal(key, "/mw/ins");
	/* A token that is not a key (not ours) is dropped. */
	foreign[XS_WATCH_PATH] = "/mw/ins/1";
	foreign[XS_WATCH_TOKEN] = "tok123";
	assert_int_equal(mw_keystore_xen_event(foreign, key, sizeof(key), watch, sizeof(watch)),
			 -EBADMSG);
	foreign[XS_WATCH_TOKEN] = NULL;
	assert_int_equal(mw_keystore_xen_event(foreign, key, sizeof(key), watch, sizeof(watch)),
			 -EBADMSG);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_open_without_xenstored),
		cmocka_unit_test(test_open_error_line),
		cmocka_unit_test(test_keys_checked_before_open_handle),
		cmocka_unit_test(test_event_decoding),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
