/* SPDX-License-Identifier: MIT */
/* test_console_args.c - mw-console's command line, attribute names, values and congctl names */
#include <errno.h>
#include <string.h>

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "tools/console/console.h"

#define ARGV(...) ((char *[]){ "mw-console", __VA_ARGS__, NULL })
#define ARGC(...) ((int)(sizeof((char *[]){ "mw-console", __VA_ARGS__ }) / sizeof(char *)))
#define PARSE(o, err, ...) \
	mwcon_parse_args(o, ARGC(__VA_ARGS__), ARGV(__VA_ARGS__), err, sizeof(err))

static void test_u64(void **state)
{
	uint64_t v;

	assert_int_equal(mwcon_parse_u64("0", &v), 0);
	assert_int_equal(v, 0);
	assert_int_equal(mwcon_parse_u64("1099511627777", &v), 0);
	assert_int_equal(v, 1099511627777ull);
	assert_int_equal(mwcon_parse_u64("0x10000000001", &v), 0);
	assert_int_equal(v, 0x10000000001ull);
	assert_int_equal(mwcon_parse_u64("18446744073709551615", &v), 0);
	assert_int_equal(v, UINT64_MAX);
	assert_int_equal(mwcon_parse_u64("18446744073709551616", &v), -EINVAL);
	assert_int_equal(mwcon_parse_u64("", &v), -EINVAL);
	assert_int_equal(mwcon_parse_u64("-1", &v), -EINVAL);
	assert_int_equal(mwcon_parse_u64("+1", &v), -EINVAL);
	assert_int_equal(mwcon_parse_u64(" 1", &v), -EINVAL);
	assert_int_equal(mwcon_parse_u64("12x", &v), -EINVAL);
	assert_int_equal(mwcon_parse_u64("0x", &v), -EINVAL);
	assert_int_equal(mwcon_parse_u64(NULL, &v), -EINVAL);
}

static void test_attr_names(void **state)
{
	assert_int_equal(mwcon_attr_parse("sndbuf"), MW_NF_ATTR_SNDBUF);
	assert_int_equal(mwcon_attr_parse("SndBuf"), MW_NF_ATTR_SNDBUF);
	assert_int_equal(mwcon_attr_parse("SND_BUF"), MW_NF_ATTR_SNDBUF);
	assert_int_equal(mwcon_attr_parse("rcvbuf"), MW_NF_ATTR_RCVBUF);
	assert_int_equal(mwcon_attr_parse("nodelay"), MW_NF_ATTR_NODELAY);
	assert_int_equal(mwcon_attr_parse("keepalive"), MW_NF_ATTR_KEEPALIVE);
	assert_int_equal(mwcon_attr_parse("error"), MW_NF_ATTR_ERROR);
	assert_int_equal(mwcon_attr_parse("isopen"), MW_NF_ATTR_IS_OPEN);
	assert_int_equal(mwcon_attr_parse("open"), MW_NF_ATTR_IS_OPEN);
	assert_int_equal(mwcon_attr_parse("defer-accept"), MW_NF_ATTR_DEFER_ACCEPT);
	assert_int_equal(mwcon_attr_parse("rcvtimeo"), MW_NF_ATTR_RCVTIMEO);
	assert_int_equal(mwcon_attr_parse("congctl"), MW_NF_ATTR_GLOBAL_CONGCTL);
	assert_int_equal(mwcon_attr_parse("delack"), MW_NF_ATTR_GLOBAL_DELACK_TICKS);
	assert_int_equal(mwcon_attr_parse("0x0109"), MW_NF_ATTR_SNDBUF);
	assert_int_equal(mwcon_attr_parse("265"), MW_NF_ATTR_SNDBUF);
	/* The per-consumer and address requests have commands of their own. */
	assert_int_equal(mwcon_attr_parse("MonitorOn"), -EINVAL);
	assert_int_equal(mwcon_attr_parse("addrblock"), -EINVAL);
	assert_int_equal(mwcon_attr_parse("0x1103"), -EINVAL);
	assert_int_equal(mwcon_attr_parse("0x9999"), -EINVAL);
	assert_int_equal(mwcon_attr_parse("sndbufx"), -EINVAL);
	assert_int_equal(mwcon_attr_parse(""), -EINVAL);
	assert_int_equal(mwcon_attr_parse("a-name-far-too-long-to-be-an-attribute"), -EINVAL);
}

static void test_values(void **state)
{
	uint64_t v[2];
	char buf[32];

	assert_int_equal(mwcon_value_parse(MW_NF_ATTR_SNDBUF, "65536", v), 0);
	assert_int_equal(v[0], 65536);
	assert_int_equal(v[1], 0);
	assert_int_equal(mwcon_value_parse(MW_NF_ATTR_NODELAY, "on", v), 0);
	assert_int_equal(v[0], 1);
	assert_int_equal(mwcon_value_parse(MW_NF_ATTR_NODELAY, "OFF", v), 0);
	assert_int_equal(v[0], 0);
	assert_int_equal(mwcon_value_parse(MW_NF_ATTR_NODELAY, "true", v), 0);
	assert_int_equal(v[0], 1);
	assert_int_equal(mwcon_value_parse(MW_NF_ATTR_SNDTIMEO, "1.5", v), 0);
	assert_int_equal(v[0], 1);
	assert_int_equal(v[1], 500000);
	assert_int_equal(mwcon_value_parse(MW_NF_ATTR_RCVTIMEO, "0.000001", v), 0);
	assert_int_equal(v[0], 0);
	assert_int_equal(v[1], 1);
	assert_int_equal(mwcon_value_parse(MW_NF_ATTR_RCVTIMEO, "7", v), 0);
	assert_int_equal(v[0], 7);
	assert_int_equal(v[1], 0);
	assert_int_equal(mwcon_value_parse(MW_NF_ATTR_RCVTIMEO, "1.1234567", v), -EINVAL);
	assert_int_equal(mwcon_value_parse(MW_NF_ATTR_RCVTIMEO, ".5", v), -EINVAL);
	assert_int_equal(mwcon_value_parse(MW_NF_ATTR_RCVTIMEO, "1.", v), -EINVAL);
	assert_int_equal(mwcon_value_parse(MW_NF_ATTR_RCVTIMEO, "1.5x", v), -EINVAL);
	assert_int_equal(mwcon_value_parse(MW_NF_ATTR_SNDBUF, "1.5", v), -EINVAL);
	assert_int_equal(mwcon_value_parse(MW_NF_ATTR_SNDBUF, "maybe", v), -EINVAL);
	assert_int_equal(mwcon_value_parse(MW_NF_ATTR_SNDBUF, "", v), -EINVAL);

	mwcon_value_format(MW_NF_ATTR_SNDBUF, 212992, 0, buf, sizeof(buf));
	assert_string_equal(buf, "212992");
	mwcon_value_format(MW_NF_ATTR_SNDTIMEO, 2, 250000, buf, sizeof(buf));
	assert_string_equal(buf, "2.250000");
}

static void test_congctl(void **state)
{
	struct mwcon_opts o;

	assert_int_equal(mwcon_congctl_parse(&o, "cubic"), 0);
	assert_false(o.val_text);
	assert_int_equal(o.val[0], 0x92);
	assert_int_equal(mwcon_congctl_parse(&o, "Reno"), 0);
	assert_int_equal(o.val[0], 0x90);
	assert_int_equal(mwcon_congctl_parse(&o, "newreno"), 0);
	assert_int_equal(o.val[0], 0x91);
	assert_int_equal(mwcon_congctl_parse(&o, "0x92"), 0);
	assert_int_equal(o.val[0], 0x92);
	assert_int_equal(mwcon_congctl_parse(&o, "bbr"), 0);
	assert_true(o.val_text);
	assert_memory_equal(o.text, "bbr\0\0\0\0\0\0\0\0\0\0\0\0\0", 16);
	assert_int_equal(mwcon_congctl_parse(&o, "a23456789012345"), 0);
	assert_int_equal(mwcon_congctl_parse(&o, "a234567890123456"), -EINVAL);
	assert_int_equal(mwcon_congctl_parse(&o, "BBR!"), -EINVAL);
	assert_int_equal(mwcon_congctl_parse(&o, ""), -EINVAL);
}

/* mw-guard's action records as the console shows them (g, "mw-console guard"). */
static void test_guard_line(void **state)
{
	struct mwcon_opts o;
	char out[512], path[256], err[256];

	assert_int_equal(
		mwcon_guard_line("action n=7 time=1764748800.250 kind=rotate target=ins:3 "
				 "reason=pressure result=ok evidence=ins=3,ins_held=40,ins_slow=38",
				 out, sizeof(out)),
		0);
	assert_string_equal(out, "#7 rotate ins:3 reason=pressure result=ok "
				 "evidence=ins=3,ins_held=40,ins_slow=38");
	assert_int_equal(mwcon_guard_line("action n=2 time=1.000 kind=would_close "
					  "target=10.1.1.1:5 reason=slow result=report "
					  "evidence=sock=9",
					  out, sizeof(out)),
			 0);
	assert_string_equal(out, "#2 would_close 10.1.1.1:5 reason=slow result=report "
				 "evidence=sock=9");
	assert_int_equal(mwcon_guard_line("status mode=enforce", out, sizeof(out)), -EINVAL);
	assert_int_equal(mwcon_guard_line("action", out, sizeof(out)), -EINVAL);
	/* The socket: --guard, else the configuration's (here: none, the default). */
	assert_int_equal(PARSE(&o, err, "--guard", "/run/g.sock", "guard"), 0);
	mwcon_guard_socket(&o, path, sizeof(path));
	assert_string_equal(path, "/run/g.sock");
	/* Nothing listens there: one clear line. */
	assert_int_equal(mwcon_guard_actions("/nonexistent/guard.sock", 500, out, sizeof(out),
					     err, sizeof(err)),
			 -ENOENT);
	assert_string_equal(err, "mw-guard socket /nonexistent/guard.sock: No such file or "
				 "directory");
}

static void test_commands(void **state)
{
	struct mwcon_opts o;
	char err[256];

	assert_int_equal(PARSE(&o, err, "close", "0x10000000002"), 0);
	assert_int_equal(o.cmd, MWCON_CMD_CLOSE);
	assert_int_equal(o.sock, 0x10000000002ull);

	assert_int_equal(PARSE(&o, err, "--server", "127.0.0.1:4000", "get", "7", "SndBuf"), 0);
	assert_int_equal(o.cmd, MWCON_CMD_GET);
	assert_string_equal(o.server, "127.0.0.1:4000");
	assert_int_equal(o.sock, 7);
	assert_int_equal(o.attr, MW_NF_ATTR_SNDBUF);

	assert_int_equal(PARSE(&o, err, "-k", "/tmp/ks", "set", "7", "nodelay", "on"), 0);
	assert_int_equal(o.cmd, MWCON_CMD_SET);
	assert_string_equal(o.ks_root, "/tmp/ks");
	assert_int_equal(o.attr, MW_NF_ATTR_NODELAY);
	assert_int_equal(o.val[0], 1);

	assert_int_equal(PARSE(&o, err, "block", "10.231.0.1"), 0);
	assert_int_equal(o.cmd, MWCON_CMD_BLOCK);
	assert_string_equal(o.addr, "10.231.0.1");
	assert_int_equal(PARSE(&o, err, "unblock", "10.231.0.1"), 0);
	assert_int_equal(o.cmd, MWCON_CMD_UNBLOCK);

	assert_int_equal(PARSE(&o, err, "--json", "--count", "6", "-c", "/etc/x.conf"), 0);
	assert_int_equal(o.cmd, MWCON_CMD_JSON);
	assert_int_equal(o.count, 6);
	assert_string_equal(o.config, "/etc/x.conf");

	assert_int_equal(PARSE(&o, err, "congctl", "cubic"), 0);
	assert_int_equal(o.cmd, MWCON_CMD_CONGCTL);
	assert_int_equal(o.val[0], 0x92);

	assert_int_equal(PARSE(&o, err, "--timeout-ms", "250", "-i"), 0);
	assert_int_equal(o.cmd, MWCON_CMD_INTERACTIVE);
	assert_true(o.interactive_forced);
	assert_int_equal(o.timeout_ms, 250);
	assert_int_equal(PARSE(&o, err, "--sort", "rate", "--filter", ":8080", "-i"), 0);
	assert_int_equal(o.sort, MWCON_SORT_RATE);
	assert_string_equal(o.filter, ":8080");
	assert_int_equal(PARSE(&o, err, "--token-file", "/etc/t", "get", "1", "sndbuf"), 0);
	assert_string_equal(o.token_file, "/etc/t");

	assert_int_equal(PARSE(&o, err, "--guard", "/run/g.sock", "guard"), 0);
	assert_int_equal(o.cmd, MWCON_CMD_GUARD);
	assert_string_equal(o.guard, "/run/g.sock");
	assert_int_equal(PARSE(&o, err, "guard", "x"), -EINVAL);
	assert_string_equal(err, "guard: unexpected argument 'x' (try --help)");

	assert_int_equal(PARSE(&o, err, "--help"), 0);
	assert_true(o.help);
	assert_int_equal(PARSE(&o, err, "-V"), 0);
	assert_true(o.version);
}

/* Every bad command line is one clear line naming what is wrong. */
static void test_bad_arguments(void **state)
{
	struct mwcon_opts o;
	char err[256];

	assert_int_equal(PARSE(&o, err, "--bogus"), -EINVAL);
	assert_string_equal(err, "unknown option '--bogus' (try --help)");
	assert_int_equal(PARSE(&o, err, "-x"), -EINVAL);
	assert_string_equal(err, "unknown option '-x' (try --help)");
	assert_int_equal(PARSE(&o, err, "--server"), -EINVAL);
	assert_string_equal(err, "option '--server' needs an argument (try --help)");
	assert_int_equal(PARSE(&o, err, "frob"), -EINVAL);
	assert_string_equal(err, "unknown command 'frob' (try --help)");
	assert_int_equal(PARSE(&o, err, "close"), -EINVAL);
	assert_string_equal(err, "close: needs a socket ID (try --help)");
	assert_int_equal(PARSE(&o, err, "close", "1", "2"), -EINVAL);
	assert_string_equal(err, "close: unexpected argument '2' (try --help)");
	assert_int_equal(PARSE(&o, err, "close", "-5"), -EINVAL);
	assert_string_equal(err, "close: '-5' is not a socket id (decimal or 0x hex)");
	assert_int_equal(PARSE(&o, err, "get", "1"), -EINVAL);
	assert_string_equal(err, "get: needs ID NAME (try --help)");
	assert_int_equal(PARSE(&o, err, "get", "1", "frobs"), -EINVAL);
	assert_string_equal(err, "get: unknown attribute 'frobs' (try --help)");
	assert_int_equal(PARSE(&o, err, "set", "1", "sndbuf", "lots"), -EINVAL);
	assert_string_equal(err, "set: invalid value 'lots' for SndBuf");
	assert_int_equal(PARSE(&o, err, "block", "10.1.2"), -EINVAL);
	assert_string_equal(err, "block: '10.1.2' is not an IPv4 address (dotted quad)");
	assert_int_equal(PARSE(&o, err, "--count", "3"), -EINVAL);
	assert_string_equal(err, "--count is only for --json");
	assert_int_equal(PARSE(&o, err, "--json", "--count", "0"), -EINVAL);
	assert_string_equal(err, "invalid --count '0' (a number > 0)");
	assert_int_equal(PARSE(&o, err, "--json", "close", "1"), -EINVAL);
	assert_string_equal(err, "unexpected argument 'close' with --json (try --help)");
	assert_int_equal(PARSE(&o, err, "--timeout-ms", "0"), -EINVAL);
	assert_int_equal(PARSE(&o, err, "--sort", "size"), -EINVAL);
	assert_string_equal(err, "invalid --sort 'size' (id, rate, age, port, peer, state)");
	assert_int_equal(PARSE(&o, err, "--sort", "state", "-i"), 0);
	assert_int_equal(o.sort, MWCON_SORT_STATE);
	assert_int_equal(PARSE(&o, err, "-i", "close", "1"), -EINVAL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_u64),	    cmocka_unit_test(test_attr_names),
		cmocka_unit_test(test_values),	    cmocka_unit_test(test_congctl),
		cmocka_unit_test(test_commands),    cmocka_unit_test(test_bad_arguments),
		cmocka_unit_test(test_guard_line),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
