/* SPDX-License-Identifier: MIT */
/* test_keystore_xen.c - the XenStore backend's logic that needs no xenstored */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <xenstore.h>

#include <cmocka.h>

#include "common/keystore.h"

int mw_keystore_xen_event(char **vec, char *key, size_t keylen, char *watch, size_t watchlen);

/* No hypervisor here: opening must fail with one clear line, not crash or hang. */
static void test_open_without_xenstored(void **state)
{
	struct mw_keystore *ks = (struct mw_keystore *)1;
	char err[256] = "";

	(void)state;
	assert_true(mw_keystore_open(&ks, "xenstore", NULL, err, sizeof(err)) < 0);
	assert_null(ks);
	assert_non_null(strstr(err, "xenstore: cannot reach xenstored"));
	assert_non_null(strstr(err, "keystore = \"local\""));
	assert_null(strchr(err, '\n'));
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
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_open_without_xenstored),
		cmocka_unit_test(test_event_decoding),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
