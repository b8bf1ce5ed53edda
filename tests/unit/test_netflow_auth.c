/* SPDX-License-Identifier: MIT */
/* test_netflow_auth.c - netflow/auth.c: the token file's rules, token matching, the Auth request */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>

#include "netflow/auth.h"
#include "netflow/codec.h"

static char path[64];

static void write_file(const char *text, mode_t mode)
{
	FILE *f;

	snprintf(path, sizeof(path), "/tmp/mw-test-tokens-%d", (int)getpid());
	unlink(path);
	f = fopen(path, "w");
	assert_non_null(f);
	fputs(text, f);
	fclose(f);
	assert_int_equal(chmod(path, mode), 0);
}

static void test_load_ok(void **state)
{
	struct mw_nf_tokens tk;
	char err[256] = "";

	(void)state;
	write_file("# comment\n\ncontrol aaaaaaaaaaaaaaaaaaaa\nobserve bbbbbbbbbbbbbbbb # x\n", 0600);
	assert_int_equal(mw_nf_tokens_load(&tk, path, err, sizeof(err)), 0);
	assert_int_equal(tk.count, 2);
	assert_int_equal(tk.t[0].role, MW_NF_ROLE_CONTROL);
	assert_int_equal(tk.t[1].role, MW_NF_ROLE_OBSERVE);
	assert_int_equal(mw_nf_tokens_match(&tk, "bbbbbbbbbbbbbbbb"), 1);
	assert_int_equal(mw_nf_tokens_match(&tk, "aaaaaaaaaaaaaaaaaaaa"), 0);
	assert_int_equal(mw_nf_tokens_match(&tk, "aaaaaaaaaaaaaaaaaaa"), -ENOENT); /* a prefix */
	assert_int_equal(mw_nf_tokens_match(&tk, "aaaaaaaaaaaaaaaaaaaaa"), -ENOENT);
	unlink(path);
}

static void test_load_refuses_readable_file(void **state)
{
	struct mw_nf_tokens tk;
	char err[256] = "";

	(void)state;
	write_file("control aaaaaaaaaaaaaaaaaaaa\n", 0640);
	assert_int_equal(mw_nf_tokens_load(&tk, path, err, sizeof(err)), -EPERM);
	assert_non_null(strstr(err, "mode 0600"));
	write_file("control aaaaaaaaaaaaaaaaaaaa\n", 0604);
	assert_int_equal(mw_nf_tokens_load(&tk, path, err, sizeof(err)), -EPERM);
	assert_int_equal(mw_nf_token_read((char[MW_NF_TOKEN_MAX + 1]){ 0 }, path, err, sizeof(err)),
			 -EPERM);
	unlink(path);
}

static void test_load_refuses_bad_lines(void **state)
{
	static const char *const bad[] = { "control short\n", "admin aaaaaaaaaaaaaaaaaaaa\n",
					   "aaaaaaaaaaaaaaaaaaaa\n", "# only a comment\n",
					   "control aaaaaaaaaaaaaaaaaaaa extra\n",
					   "control aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\n" /* 33 */ };
	struct mw_nf_tokens tk;
	char err[256];
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		write_file(bad[i], 0600);
		err[0] = '\0';
		assert_int_equal(mw_nf_tokens_load(&tk, path, err, sizeof(err)), -EINVAL);
		assert_true(err[0] != '\0');
	}
	unlink(path);
}

static void test_client_token_file(void **state)
{
	char tok[MW_NF_TOKEN_MAX + 1], err[256];

	(void)state;
	write_file("cccccccccccccccccccccccccccccccc\n", 0400);
	assert_int_equal(mw_nf_token_read(tok, path, err, sizeof(err)), 0);
	assert_string_equal(tok, "cccccccccccccccccccccccccccccccc");
	write_file("observe dddddddddddddddd\n", 0600);
	assert_int_equal(mw_nf_token_read(tok, path, err, sizeof(err)), 0);
	assert_string_equal(tok, "dddddddddddddddd");
	unlink(path);
}

/* The Auth request survives the wire, byte for byte where the token goes. */
static void test_auth_request_wire(void **state)
{
	const char *token = "0123456789abcdefGHIJKLMNOPQRSTUV"; /* 32 */
	struct mw_nf_request req = { .id = 77 }, back;
	uint8_t msg[MW_NF_REQUEST_SIZE];
	char got[MW_NF_TOKEN_MAX + 1];
	const char *why;

	(void)state;
	mw_nf_request_set_auth(&req, token);
	assert_int_equal(req.id, 77);
	assert_int_equal(mw_nf_encode_request(msg, &req), MW_NF_REQUEST_SIZE);
	assert_int_equal(mw_nf_get16(msg + 6), MW_NF_FLAG_WRITE);
	assert_int_equal(mw_nf_get16(msg + 8), MW_NF_ATTR_AUTH);
	assert_memory_equal(msg + 10, token, 16);
	assert_int_equal(mw_nf_get32(msg + 26), 0);
	assert_memory_equal(msg + 30, token + 16, 16);
	assert_int_equal(mw_nf_decode_request(&back, msg, sizeof(msg), &why), 0);
	assert_int_equal(mw_nf_request_get_auth(&back, got), 0);
	assert_string_equal(got, token);
	back.flags |= MW_NF_FLAG_BY_SOCK; /* anything else is not an Auth request */
	assert_int_equal(mw_nf_request_get_auth(&back, got), -EINVAL);
	mw_nf_request_set_auth(&req, "tooshort");
	assert_int_equal(mw_nf_request_get_auth(&req, got), -EINVAL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_load_ok),
		cmocka_unit_test(test_load_refuses_readable_file),
		cmocka_unit_test(test_load_refuses_bad_lines),
		cmocka_unit_test(test_client_token_file),
		cmocka_unit_test(test_auth_request_wire),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
