/* SPDX-License-Identifier: MIT */
/* test_ins_accf.c - the accept filters' completeness parser, one behaviour per case */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "ins/ins_accf.h"

/* The verdict over @s seen whole at once. */
static int once(uint8_t filter, const char *s, size_t len)
{
	struct mw_shield sh = { .filter = filter };
	struct ins_accf_parser p;

	ins_accf_parse_init(&p, &sh);
	return ins_accf_parse(&p, (const uint8_t *)s, len);
}

#define ONCE(f, lit) once(f, lit, sizeof(lit) - 1)

/*
 * @s arriving one byte at a time: Return: the number of bytes after which the
 * parser first said PASS, or 0 if it never did.
 */
static size_t pass_at(const struct mw_shield *sh, const char *s, size_t len)
{
	struct ins_accf_parser p;
	size_t n;

	ins_accf_parse_init(&p, sh);
	for (n = 1; n <= len; n++)
		if (ins_accf_parse(&p, (const uint8_t *)s, n) == INS_ACCF_PASS)
			return n;
	return 0;
}

static size_t pass_at_f(uint8_t filter, const char *s, size_t len)
{
	struct mw_shield sh = { .filter = filter };

	return pass_at(&sh, s, len);
}

#define PASS_AT(f, lit) pass_at_f(f, lit, sizeof(lit) - 1)

static void test_data(void **state)
{
	(void)state;
	assert_int_equal(once(MW_ACCF_DATA, "", 0), INS_ACCF_MORE);
	assert_int_equal(ONCE(MW_ACCF_DATA, "x"), INS_ACCF_PASS);
}

static void test_http_get_needs_empty_line(void **state)
{
	static const char get[] = "GET / HTTP/1.1\r\nHost: a\r\n\r\n";

	(void)state;
	assert_int_equal(ONCE(MW_ACCF_HTTP, "GET / HTTP/1.1\r\nHost: a\r\n"), INS_ACCF_MORE);
	assert_int_equal(ONCE(MW_ACCF_HTTP, "GET / HTTP/1.1\r\nHost: a\r\n\r"), INS_ACCF_MORE);
	assert_int_equal(PASS_AT(MW_ACCF_HTTP, get), sizeof(get) - 1);
}

static void test_http_bare_lf(void **state)
{
	static const char get[] = "GET / HTTP/1.0\nHost: a\n\n";

	(void)state;
	assert_int_equal(PASS_AT(MW_ACCF_HTTP, get), sizeof(get) - 1);
	assert_int_equal(PASS_AT(MW_ACCF_HTTP, "GET / HTTP/1.0\r\nA: b\n\r\n"), 23);
}

static void test_http_body_by_content_length(void **state)
{
	static const char post[] = "POST /f HTTP/1.1\r\ncOnTeNt-LeNgTh:  11 \r\nHost: a\r\n\r\n"
				   "hello world";

	(void)state;
	assert_int_equal(PASS_AT(MW_ACCF_HTTP, post), sizeof(post) - 1);
	assert_int_equal(once(MW_ACCF_HTTP, post, sizeof(post) - 2), INS_ACCF_MORE);
	/* Content-Length 0: the head is all. */
	assert_int_equal(ONCE(MW_ACCF_HTTP, "POST / HTTP/1.1\r\nContent-Length: 0\r\n\r\n"),
			 INS_ACCF_PASS);
}

static void test_http_pipelined(void **state)
{
	/* Two requests in one segment: the first one's completion is all that counts. */
	static const char two[] = "GET /a HTTP/1.1\r\nHost: a\r\n\r\nGET /b HTTP/1.1\r\nHo";

	(void)state;
	assert_int_equal(PASS_AT(MW_ACCF_HTTP, two), 28);
	assert_int_equal(ONCE(MW_ACCF_HTTP, two), INS_ACCF_PASS);
}

static void test_http_chunked_and_bad_length_pass_at_head(void **state)
{
	static const char chunked[] = "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n"
				      "Content-Length: 100\r\n\r\n5\r\n";
	static const char bad[] = "POST / HTTP/1.1\r\nContent-Length: 1x0\r\n\r\n";
	static const char two[] =
		"POST / HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n";
	static const char huge[] =
		"POST / HTTP/1.1\r\nContent-Length: 99999999999999999999999\r\n\r\n";

	(void)state;
	assert_int_equal(ONCE(MW_ACCF_HTTP, chunked), INS_ACCF_PASS);
	assert_int_equal(ONCE(MW_ACCF_HTTP, bad), INS_ACCF_PASS);
	assert_int_equal(ONCE(MW_ACCF_HTTP, two), INS_ACCF_PASS);
	/* A huge length saturates: held until the peek bound passes it. */
	assert_int_equal(ONCE(MW_ACCF_HTTP, huge), INS_ACCF_MORE);
	/* Names that only start like the two that matter are nothing. */
	assert_int_equal(ONCE(MW_ACCF_HTTP, "GET / HTTP/1.1\r\nContent-Lengthy: 9\r\n\r\n"),
			 INS_ACCF_PASS);
	assert_int_equal(ONCE(MW_ACCF_HTTP, "GET / HTTP/1.1\r\nContent-Len: 9\r\n\r\n"),
			 INS_ACCF_PASS);
	/* The request line is no header, even with a colon. */
	assert_int_equal(ONCE(MW_ACCF_HTTP, "content-length: 9 x\r\n\r\n"), INS_ACCF_PASS);
}

static void test_http_huge_head_held_to_bound(void **state)
{
	static const char line[] = "GET / HTTP/1.1\r\n";
	size_t len = INS_ACCF_PEEK_MAX + 100, i;
	char *s = malloc(len);

	(void)state;
	assert_non_null(s);
	for (i = 0; i < len; i++)
		s[i] = i < sizeof(line) - 1 ? line[i] : (i % 64) == 63 ? '\n' : 'a';
	/* Never complete, and the parser looks at no more than the bound. */
	assert_int_equal(pass_at_f(MW_ACCF_HTTP, s, len), 0);
	free(s);
}

static void test_line(void **state)
{
	(void)state;
	assert_int_equal(ONCE(MW_ACCF_LINE, "get key"), INS_ACCF_MORE);
	assert_int_equal(PASS_AT(MW_ACCF_LINE, "get key\r\nget other\r\n"), 9);
	assert_int_equal(PASS_AT(MW_ACCF_LINE, "PING\n"), 5);
}

static void test_resp_array(void **state)
{
	static const char set[] = "*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$5\r\nvalue\r\n";

	(void)state;
	/* Its first line ends in LF, but the array is not complete until its last element. */
	assert_int_equal(PASS_AT(MW_ACCF_LINE, set), sizeof(set) - 1);
	assert_int_equal(ONCE(MW_ACCF_LINE, "*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$5\r\nval"),
			 INS_ACCF_MORE);
	/* Bulk bytes are not parsed: a CRLF inside one does not end it. */
	assert_int_equal(PASS_AT(MW_ACCF_LINE, "*1\r\n$4\r\n\r\n\r\n\r\n"), 14);
	/* Null and empty arrays, a null bulk string. */
	assert_int_equal(ONCE(MW_ACCF_LINE, "*0\r\n"), INS_ACCF_PASS);
	assert_int_equal(ONCE(MW_ACCF_LINE, "*-1\r\n"), INS_ACCF_PASS);
	assert_int_equal(PASS_AT(MW_ACCF_LINE, "*2\r\n$-1\r\n$1\r\nx\r\n"), 16);
	/* Not RESP bulk strings: passed for the app to answer. */
	assert_int_equal(ONCE(MW_ACCF_LINE, "*2\r\n:1\r\n"), INS_ACCF_PASS);
	assert_int_equal(ONCE(MW_ACCF_LINE, "*x"), INS_ACCF_PASS);
	assert_int_equal(ONCE(MW_ACCF_LINE, "*2\r\n$z"), INS_ACCF_PASS);
}

static void test_delim_split_across_reads(void **state)
{
	struct mw_shield sh = { .filter = MW_ACCF_DELIM, .delim_len = 3 };
	static const char msg[] = "aaaa:xyz:aab";

	(void)state;
	memcpy(sh.delim, "aab", 3);
	/* "aab" after "aa" arrived a byte at a time: found across the reads. */
	assert_int_equal(pass_at(&sh, msg, sizeof(msg) - 1), sizeof(msg) - 1);
	assert_int_equal(pass_at(&sh, "aaaab", 5), 5);
	assert_int_equal(pass_at(&sh, "aa:b", 4), 0);
	/* No delimiter configured: any byte. */
	sh.delim_len = 0;
	assert_int_equal(pass_at(&sh, "z", 1), 1);
}

static void test_stays_passed(void **state)
{
	struct mw_shield sh = { .filter = MW_ACCF_LINE };
	struct ins_accf_parser p;

	(void)state;
	ins_accf_parse_init(&p, &sh);
	assert_int_equal(ins_accf_parse(&p, (const uint8_t *)"x\n", 2), INS_ACCF_PASS);
	assert_int_equal(ins_accf_parse(&p, (const uint8_t *)"x\nyy", 4), INS_ACCF_PASS);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_data),
		cmocka_unit_test(test_http_get_needs_empty_line),
		cmocka_unit_test(test_http_bare_lf),
		cmocka_unit_test(test_http_body_by_content_length),
		cmocka_unit_test(test_http_pipelined),
		cmocka_unit_test(test_http_chunked_and_bad_length_pass_at_head),
		cmocka_unit_test(test_http_huge_head_held_to_bound),
		cmocka_unit_test(test_line),
		cmocka_unit_test(test_resp_array),
		cmocka_unit_test(test_delim_split_across_reads),
		cmocka_unit_test(test_stays_passed),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
