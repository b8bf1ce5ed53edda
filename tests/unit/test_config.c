/* SPDX-License-Identifier: MIT */
/* test_config.c - the config loader: defaults, the shipped file, and every kind of bad input */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/config.h"

static char tmp_path[64];

/* Write @text to a fresh temp file; its path is in tmp_path. */
static const char *write_conf(const char *text)
{
	FILE *fp;
	int fd;

	snprintf(tmp_path, sizeof(tmp_path), "/tmp/mw-test-config-XXXXXX");
	fd = mkstemp(tmp_path);
	assert_true(fd >= 0);
	fp = fdopen(fd, "w");
	assert_non_null(fp);
	assert_true(fputs(text, fp) >= 0);
	assert_int_equal(fclose(fp), 0);
	return tmp_path;
}

static int remove_conf(void **state)
{
	if (tmp_path[0])
		unlink(tmp_path);
	tmp_path[0] = '\0';
	return 0;
}

/* Load @text; return the error count (errors in *errs). */
static int load_text(const char *text, struct mw_config *cfg, struct mw_config_errors *errs)
{
	int ret = mw_config_load(cfg, write_conf(text), errs);

	assert_int_equal(ret, errs->count ? -EINVAL : 0);
	return errs->count;
}

/* The one error must mention all of @parts, in that order. */
static void assert_error(const struct mw_config_errors *errs, int i, const char *file, int line,
			 const char *rest)
{
	char want[512];

	assert_true(i < errs->count);
	snprintf(want, sizeof(want), "%s:%d: %s", file, line, rest);
	if (strcmp(errs->msg[i], want))
		fail_msg("error %d is\n  \"%s\"\nexpected\n  \"%s\"", i, errs->msg[i], want);
}

static void test_defaults(void **state)
{
	struct mw_config cfg;

	mw_config_defaults(&cfg);
	assert_string_equal(cfg.path, "");
	assert_string_equal(cfg.common.runtime_dir, "/run/mwcomms");
	assert_string_equal(cfg.common.log_level, "info");
	assert_string_equal(cfg.common.keystore, "local");
	assert_string_equal(cfg.common.keystore_root, "/run/mwcomms/store");
	assert_string_equal(cfg.pvm.control_socket, "/run/mwcomms/pvm.sock");
	assert_string_equal(cfg.pvm.ins_socket, "/run/mwcomms/pvm-ins.sock");
	assert_int_equal(cfg.pvm.index, 0);
	assert_int_equal(cfg.pvm.ring_size, 4 << 20);
	assert_int_equal(cfg.pvm.socket_window, 256 << 10);
	assert_int_equal(cfg.pvm.heartbeat_timeout_ms, 3000);
	assert_string_equal(cfg.pvm.netflow_listen, "");
	assert_string_equal(cfg.pvm.netflow_unix, "");
	assert_int_equal(cfg.pvm.netflow_max_per_user, 4);
	assert_int_equal(cfg.pvm.netflow_min_rate, 16384);
	assert_int_equal(cfg.pvm.netflow_block_ttl_s, 3600);
	assert_int_equal(cfg.pvm.netflow_signals_count, 0);
	assert_string_equal(cfg.pvm.netflow_allow, "127.0.0.0/8");
	assert_int_equal(cfg.pvm.netflow_queue, 65536);
	assert_int_equal(cfg.pvm.netflow_stall_ms, 10000);
	assert_false(cfg.pvm.fail_open);
	assert_int_equal(cfg.ins.id, 1);
	assert_string_equal(cfg.ins.pvm_socket, "/run/mwcomms/pvm-ins.sock");
	assert_int_equal(cfg.ins.max_sockets, 0);
	assert_int_equal(cfg.ins.nofile, 1048576);
	assert_int_equal(cfg.ins.heartbeat_ms, 1000);
	assert_int_equal(cfg.ins.socket_window, 1 << 20);
	assert_int_equal(cfg.ins.pending_total, 256 << 20);
	assert_string_equal(cfg.ins.congestion_control, "");
	assert_int_equal(cfg.ins.sndbuf, 0);
	assert_int_equal(cfg.ins.rcvbuf, 0);
	assert_false(cfg.ins.quickack);
	assert_string_equal(cfg.balancer.control_socket, "/run/mwcomms/balancer.sock");
	assert_string_equal(cfg.balancer.backend, "netns");
	assert_int_equal(cfg.balancer.min_ins, 1);
	assert_int_equal(cfg.balancer.max_ins, 4);
	assert_string_equal(cfg.balancer.policy, "round-robin");
	assert_int_equal(cfg.balancer.overload_threshold, 50);
	assert_int_equal(cfg.balancer.listen_count, 0);
	assert_string_equal(cfg.balancer.subnet, "10.77.0.0/24");
	assert_string_equal(cfg.balancer.bridge, "mwbr0");
	assert_string_equal(cfg.balancer.ins_binary, "");
	assert_int_equal(cfg.balancer.per_ins_max_conns, 0);
	assert_int_equal(cfg.balancer.connect_timeout_ms, 3000);
	assert_int_equal(cfg.balancer.idle_timeout_ms, 300000);
	assert_int_equal(cfg.balancer.drain_timeout_ms, 60000);
	assert_int_equal(cfg.balancer.start_timeout_ms, 120000);
	assert_int_equal(cfg.balancer.max_conns, 50000);
	assert_int_equal(cfg.balancer.health_failures, 2);
}

static void test_null_path_is_defaults(void **state)
{
	struct mw_config cfg, def;
	struct mw_config_errors errs;

	assert_int_equal(mw_config_load(&cfg, NULL, &errs), 0);
	assert_int_equal(errs.count, 0);
	mw_config_defaults(&def);
	assert_memory_equal(&cfg, &def, sizeof(cfg));
}

/* conf/mwcomms.conf must load cleanly and say exactly what the built-in defaults say. */
static void test_shipped_conf_equals_defaults(void **state)
{
	const char *src = getenv("MW_SOURCE_DIR");
	struct mw_config cfg, def;
	struct mw_config_errors errs;
	char path[4096];
	int i;

	if (!src)
		fail_msg("MW_SOURCE_DIR is not set (run through ctest)");
	snprintf(path, sizeof(path), "%s/conf/mwcomms.conf", src);
	if (mw_config_load(&cfg, path, &errs) < 0) {
		for (i = 0; i < errs.count && i < MW_CONFIG_MAX_ERRORS; i++)
			print_error("%s\n", errs.msg[i]);
		fail_msg("the shipped configuration has %d problem(s)", errs.count);
	}
	assert_string_equal(cfg.path, path);
	mw_config_defaults(&def);
	assert_memory_equal(&cfg.common, &def.common, sizeof(cfg.common));
	assert_memory_equal(&cfg.pvm, &def.pvm, sizeof(cfg.pvm));
	assert_memory_equal(&cfg.ins, &def.ins, sizeof(cfg.ins));
	assert_memory_equal(&cfg.balancer, &def.balancer, sizeof(cfg.balancer));
	assert_memory_equal(&cfg.guard, &def.guard, sizeof(cfg.guard));
}

static void test_missing_file(void **state)
{
	struct mw_config cfg;
	struct mw_config_errors errs;

	assert_int_equal(mw_config_load(&cfg, "/nonexistent-mw/dir/mwcomms.conf", &errs), -EINVAL);
	assert_int_equal(errs.count, 1);
	assert_string_equal(
		errs.msg[0],
		"/nonexistent-mw/dir/mwcomms.conf: cannot read: No such file or directory");
	/* Still usable: the defaults. */
	assert_string_equal(cfg.common.runtime_dir, "/run/mwcomms");
}

/* Root reads any file, so unreadable is shown with a directory. */
static void test_unreadable_file(void **state)
{
	struct mw_config cfg;
	struct mw_config_errors errs;

	assert_int_equal(mw_config_load(&cfg, "/tmp", &errs), -EINVAL);
	assert_int_equal(errs.count, 1);
	assert_string_equal(errs.msg[0], "/tmp: cannot read: Is a directory");
}

static void test_syntax_error_has_line(void **state)
{
	struct mw_config cfg;
	struct mw_config_errors errs;

	assert_int_equal(
		load_text("pvm:\n{\n\tindex = 1;\n\tring_size = = 65536;\n};\n", &cfg, &errs), 1);
	assert_non_null(strstr(errs.msg[0], ":4: syntax error"));
	assert_int_equal(strncmp(errs.msg[0], tmp_path, strlen(tmp_path)), 0);
}

static void test_duplicate_key(void **state)
{
	struct mw_config cfg;
	struct mw_config_errors errs;

	assert_int_equal(load_text("pvm:\n{\n\tindex = 1;\n\tindex = 2;\n};\n", &cfg, &errs), 1);
	assert_error(&errs, 0, tmp_path, 4, "syntax error: duplicate setting name");
}

static void test_empty_file_is_defaults(void **state)
{
	struct mw_config cfg, def;
	struct mw_config_errors errs;

	assert_int_equal(load_text("# nothing\n", &cfg, &errs), 0);
	mw_config_defaults(&def);
	assert_memory_equal(&cfg.balancer, &def.balancer, sizeof(cfg.balancer));
}

/* guard: listeners "PORT:PROTO", allow CIDRs, netflow a path or ip:port, mode. */
static void test_guard_section(void **state)
{
	struct mw_config cfg;
	struct mw_config_errors errs;
	int port, proto;

	assert_int_equal(load_text("guard: { listeners = [ \"80:http\", \"6379:line\" ];\n"
				   "allow = [ \"10.0.0.0/8\" ]; mode = \"report\";\n"
				   "netflow = \"127.0.0.1:9000\"; };\n",
				   &cfg, &errs),
			 0);
	assert_int_equal(cfg.guard.listeners_count, 2);
	assert_string_equal(cfg.guard.listeners[1], "6379:line");
	assert_int_equal(mw_guard_listener_parse(cfg.guard.listeners[0], &port, &proto), 0);
	assert_int_equal(port, 80);
	assert_int_equal(proto, 2); /* MW_ACCF_HTTP */
	assert_string_equal(cfg.guard.mode, "report");
	assert_true(cfg.guard.baseline);
	assert_int_equal(cfg.guard.shield_deadline_ms, 10000);
	assert_int_equal(cfg.guard.shield_out_buffer, 256 * 1024);
	assert_int_equal(cfg.guard.shield_stall_max, 16);

	assert_int_equal(load_text("guard: {\n listeners = [ \"80:ftp\" ];\n"
				   " netflow = \"relative/path\";\n mode = \"loud\";\n};\n",
				   &cfg, &errs),
			 3);
	assert_error(&errs, 0, tmp_path, 2,
		     "guard.listeners: entry 1: \"80:ftp\" is not \"PORT:PROTO\" (PORT 1..65535, "
		     "PROTO http, line, data or none)");
	assert_error(&errs, 1, tmp_path, 3,
		     "guard.netflow: \"relative/path\" is neither an absolute path nor \"ip:port\"");
	assert_error(&errs, 2, tmp_path, 4,
		     "guard.mode: \"loud\" is not one of: enforce, report");
	assert_int_equal(cfg.guard.listeners_count, 0);
	assert_int_equal(mw_guard_listener_parse("0:http", NULL, NULL), -EINVAL);
	assert_int_equal(mw_guard_listener_parse("80", NULL, NULL), -EINVAL);
	assert_int_equal(mw_guard_listener_parse("x80:data", NULL, NULL), -EINVAL);
}

static void test_unknown_section(void **state)
{
	struct mw_config cfg;
	struct mw_config_errors errs;

	assert_int_equal(load_text("common: {};\n\nbalancr: { min_ins = 1; };\n", &cfg, &errs), 1);
	assert_error(&errs, 0, tmp_path, 3,
		     "balancr: unknown section (expected common, pvm, ins, balancer, guard or flowd)");
}

static void test_section_not_a_group(void **state)
{
	struct mw_config cfg;
	struct mw_config_errors errs;

	assert_int_equal(load_text("pvm = 3;\n", &cfg, &errs), 1);
	assert_error(&errs, 0, tmp_path, 1, "pvm: expected a section { ... }, got an integer");
}

static void test_unknown_key(void **state)
{
	struct mw_config cfg;
	struct mw_config_errors errs;

	assert_int_equal(load_text("ins:\n{\n\tid = 7;\n\tidd = 7;\n};\n", &cfg, &errs), 1);
	assert_error(&errs, 0, tmp_path, 4, "ins.idd: unknown key");
	assert_int_equal(cfg.ins.id, 7); /* the valid key next to it was taken */
}

static void test_wrong_types(void **state)
{
	struct mw_config cfg;
	struct mw_config_errors errs;

	assert_int_equal(
		load_text("pvm: {\n index = \"3\";\n fail_open = 1;\n ring_size = 65536.0;\n"
			  " control_socket = 5;\n};\nbalancer: { listen = \"1.2.3.4:80\"; };\n",
			  &cfg, &errs),
		5);
	assert_error(&errs, 0, tmp_path, 2, "pvm.index: expected an integer, got a string");
	assert_error(&errs, 1, tmp_path, 3,
		     "pvm.fail_open: expected true or false, got an integer");
	assert_error(&errs, 2, tmp_path, 4, "pvm.ring_size: expected an integer, got a float");
	assert_error(&errs, 3, tmp_path, 5,
		     "pvm.control_socket: expected a string, got an integer");
	assert_error(&errs, 4, tmp_path, 7,
		     "balancer.listen: expected a list of strings [ ... ], got a string");
	assert_int_equal(cfg.pvm.index, 0);
}

static void test_out_of_range(void **state)
{
	struct mw_config cfg;
	struct mw_config_errors errs;

	assert_int_equal(
		load_text("pvm: { index = 256; };\n"
			  "ins: { id = 0; nofile = 2000000000000L; pending_total = 1048575; };\n"
			  "balancer: { overload_threshold = -1; };\n",
			  &cfg, &errs),
		5);
	assert_error(&errs, 0, tmp_path, 1, "pvm.index: 256 is out of range 0..255");
	assert_error(&errs, 1, tmp_path, 2, "ins.id: 0 is out of range 1..65535");
	assert_error(&errs, 2, tmp_path, 2,
		     "ins.nofile: 2000000000000 is out of range 1024..1073741816");
	assert_error(&errs, 3, tmp_path, 2,
		     "ins.pending_total: 1048575 is out of range 1048576..1073741824");
	assert_error(&errs, 4, tmp_path, 3,
		     "balancer.overload_threshold: -1 is out of range 1..100");
	assert_int_equal(cfg.pvm.index, 0);
	assert_int_equal(cfg.ins.id, 1);
}

/* libconfig 1.5 alone reads 4294971392 as 4096 and 0x80000000 as negative, silently. */
static void test_big_integers_not_truncated(void **state)
{
	struct mw_config cfg;
	struct mw_config_errors errs;

	assert_int_equal(load_text("pvm: {\n"
				   "\tsocket_window = 4294971392;\n"
				   "\tindex = 0x100000000;\n"
				   "\tid_space = 0xFFFFFFFF;\n"
				   "\tspin_us = -4294967296;\n"
				   "\tring_size = -9223372036854775808;\n"
				   "\thandshake_max = 9223372036854775807L;\n"
				   "\tnetflow_memory = 4294971392.0;\n"
				   "\theartbeat_timeout_ms = 4294971392e0;\n"
				   "\tx-4294971392 = 1;\n"
				   "};\n",
				   &cfg, &errs),
			 9);
	assert_error(&errs, 0, tmp_path, 2,
		     "pvm.socket_window: 4294971392 is out of range 4096..1073741824");
	assert_error(&errs, 1, tmp_path, 3, "pvm.index: 4294967296 is out of range 0..255");
	assert_error(&errs, 2, tmp_path, 4,
		     "pvm.id_space: 4294967295 is out of range 16..2147483647");
	assert_error(&errs, 3, tmp_path, 5, "pvm.spin_us: -4294967296 is out of range 0..1000000");
	assert_error(&errs, 4, tmp_path, 6,
		     "pvm.ring_size: -9223372036854775808 is out of range 131072..1073741824");
	assert_error(&errs, 5, tmp_path, 7,
		     "pvm.handshake_max: 9223372036854775807 is out of range 1..1024");
	assert_error(&errs, 6, tmp_path, 8, "pvm.netflow_memory: expected an integer, got a float");
	assert_error(&errs, 7, tmp_path, 9,
		     "pvm.heartbeat_timeout_ms: expected an integer, got a float");
	assert_error(&errs, 8, tmp_path, 10, "pvm.x-4294971392: unknown key");
	assert_int_equal(cfg.pvm.socket_window, 256 << 10);
	assert_int_equal(cfg.pvm.index, 0);
}

/* Big numbers in comments and strings are text; in-range literals of every form still load. */
static void test_big_integers_only_where_values_are(void **state)
{
	struct mw_config cfg;
	struct mw_config_errors errs;

	assert_int_equal(load_text("# index = 99999999999999999999999;\n"
				   "// index = 4294971392;\n"
				   "/* index = 4294971392;\n 99999999999999999999999 */\n"
				   "common: { runtime_dir = "
				   "\"/run/x4294971392\\\"9999999999999999999999\"; };\n"
				   "pvm: {\n"
				   "\tsocket_window = 1073741824;\n"
				   "\tpending_total = 1073741824;\n"
				   "\tid_space = 0x7FFFFFFF;\n"
				   "\tindex = -0;\n"
				   "\tspin_us = +999999;\n"
				   "\tring_size = 0x40000000L;\n"
				   "\thandshake_max = 16LL;\n"
				   "};\n",
				   &cfg, &errs),
			 0);
	assert_string_equal(cfg.common.runtime_dir, "/run/x4294971392\"9999999999999999999999");
	assert_int_equal(cfg.pvm.socket_window, 1 << 30);
	assert_int_equal(cfg.pvm.id_space, 2147483647);
	assert_int_equal(cfg.pvm.index, 0);
	assert_int_equal(cfg.pvm.spin_us, 999999);
	assert_int_equal(cfg.pvm.ring_size, 1 << 30);
	assert_int_equal(cfg.pvm.handshake_max, 16);
}

/* libconfig saturates or wraps these even with L: refused by name, the file not applied. */
static void test_integers_beyond_64_bits(void **state)
{
	struct mw_config cfg;
	struct mw_config_errors errs;

	assert_int_equal(
		load_text("pvm: {\n"
			  "\tindex = 9223372036854775808;\n"
			  "\tspin_us = -9223372036854775809L;\n"
			  "\tid_space = 0x10000000000000000;\n"
			  "\tring_size = 0x8000000000000000L;\n"
			  "\tsocket_window = 123456789012345678901234567890123456789012345;\n"
			  "\thandshake_max = 2;\n"
			  "};\n",
			  &cfg, &errs),
		5);
	assert_error(&errs, 0, tmp_path, 2,
		     "integer 9223372036854775808 does not fit in a signed 64-bit integer");
	assert_error(&errs, 1, tmp_path, 3,
		     "integer -9223372036854775809L does not fit in a signed 64-bit integer");
	assert_error(&errs, 2, tmp_path, 4,
		     "integer 0x10000000000000000 does not fit in a signed 64-bit integer");
	assert_error(&errs, 3, tmp_path, 5,
		     "integer 0x8000000000000000L does not fit in a signed 64-bit integer");
	assert_error(&errs, 4, tmp_path, 6,
		     "integer 1234567890123456789012345678901234567890... does not fit in a signed "
		     "64-bit integer");
	assert_int_equal(cfg.pvm.handshake_max, 8);
}

/* libconfig takes \" inside an @include name as an escape: the scan must too. */
static void test_include_name_with_quote(void **state)
{
	char inc[] = "/tmp/mw-test-config-inc\"q-XXXXXX", text[256];
	struct mw_config cfg;
	struct mw_config_errors errs;
	int fd = mkstemp(inc);
	FILE *fp;

	/* Unique per run: two suites at once must not share (or unlink) one file. */
	assert_true(fd >= 0);
	fp = fdopen(fd, "w");
	assert_non_null(fp);
	assert_true(fputs("ins: { id = 3; };\n", fp) >= 0);
	assert_int_equal(fclose(fp), 0);
	/* The same name with its quote escaped: "/tmp/mw-test-config-inc\"q-XXXXXX" */
	snprintf(text, sizeof(text),
		 "@include \"/tmp/mw-test-config-inc\\\"%s\"\n"
		 "common: { runtime_dir = \"/run/4294971392\"; };\n"
		 "pvm: { socket_window = 4294971392; };\n",
		 strchr(inc, '"') + 1);
	assert_int_equal(load_text(text, &cfg, &errs), 1);
	unlink(inc);
	assert_error(&errs, 0, tmp_path, 3,
		     "pvm.socket_window: 4294971392 is out of range 4096..1073741824");
	assert_string_equal(cfg.common.runtime_dir, "/run/4294971392");
	assert_int_equal(cfg.ins.id, 3);
}

/* Write @text to a fresh file named after @pattern (mkstemp); the name in @path. */
static void write_file(char *path, const char *text)
{
	int fd = mkstemp(path);
	FILE *fp;

	assert_true(fd >= 0);
	fp = fdopen(fd, "w");
	assert_non_null(fp);
	assert_true(fputs(text, fp) >= 0);
	assert_int_equal(fclose(fp), 0);
}

/*
 * libconfig opens @include'd files itself with a blocking fopen(): a FIFO
 * named there, directly or from an included file, is refused by name before
 * libconfig sees it (alarm: the test fails rather than hangs).
 */
static void test_include_not_regular(void **state)
{
	char dir[] = "/tmp/mw-config-incfifo.XXXXXX", fifo[64], mid[] = "/tmp/mw-config-mid.XXXXXX";
	char text[256], want[256];
	struct mw_config cfg;
	struct mw_config_errors errs;

	assert_non_null(mkdtemp(dir));
	snprintf(fifo, sizeof(fifo), "%s/fifo", dir);
	assert_int_equal(mkfifo(fifo, 0600), 0);
	snprintf(text, sizeof(text), "ins: { id = 3; };\n@include \"%s\"\n", fifo);
	write_file(mid, text);

	alarm(10);
	snprintf(text, sizeof(text), "# top\n@include \"%s\"\n", fifo);
	assert_int_equal(load_text(text, &cfg, &errs), 1);
	snprintf(want, sizeof(want),
		 "@include \"%s\": not a regular file (a device, FIFO or socket)", fifo);
	assert_error(&errs, 0, tmp_path, 2, want);
	remove_conf(state);

	snprintf(text, sizeof(text), "@include \"%s\"\npvm: { socket_window = 8192; };\n", mid);
	assert_int_equal(load_text(text, &cfg, &errs), 1);
	assert_error(&errs, 0, mid, 2, want);
	alarm(0);
	unlink(mid);
	unlink(fifo);
	rmdir(dir);
}

/* A file that includes itself many times costs a bounded number of reads. */
static void test_include_self_bounded(void **state)
{
	char self[] = "/tmp/mw-config-self.XXXXXX";
	char *text = calloc(64, 64);
	size_t n;
	struct mw_config cfg;
	struct mw_config_errors errs;
	int fd = mkstemp(self), i;

	assert_true(fd >= 0);
	close(fd);
	assert_non_null(text);
	for (i = 0, n = 0; i < 40; i++)
		n += (size_t)snprintf(text + n, 64 * 64 - n, "@include \"%s\"\n", self);
	fd = open(self, O_WRONLY | O_TRUNC);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	close(fd);
	alarm(20);
	/* libconfig refuses the depth; what matters is that the load ends. */
	assert_true(load_text(text, &cfg, &errs) >= 1);
	alarm(0);
	unlink(self);
	free(text);
}

/* A file past 1 MiB (a log given by mistake) is refused, not read whole. */
static void test_file_too_large(void **state)
{
	struct mw_config cfg;
	struct mw_config_errors errs;
	char path[] = "/tmp/mw-config-big.XXXXXX", want[128];
	int fd = mkstemp(path);

	assert_true(fd >= 0);
	assert_int_equal(ftruncate(fd, (1 << 20) + 1), 0); /* sparse: NULs past the bound */
	close(fd);
	assert_int_equal(mw_config_load(&cfg, path, &errs), -EINVAL);
	unlink(path);
	assert_int_equal(errs.count, 1);
	snprintf(want, sizeof(want), "%s: larger than 1048576 bytes; not a config file?", path);
	assert_string_equal(errs.msg[0], want);
}

/*
 * Only a regular file is read: /dev/zero would be read without end, and a
 * FIFO with no writer held the daemon in open() for ever (alarm: the test
 * fails rather than hangs).
 */
static void test_not_regular_file(void **state)
{
	struct mw_config cfg;
	struct mw_config_errors errs;
	char dir[] = "/tmp/mw-config-fifo.XXXXXX", path[64], want[128];

	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/fifo", dir);
	assert_int_equal(mkfifo(path, 0600), 0);
	alarm(10);
	assert_int_equal(mw_config_load(&cfg, path, &errs), -EINVAL);
	alarm(0);
	unlink(path);
	rmdir(dir);
	assert_int_equal(errs.count, 1);
	snprintf(want, sizeof(want), "%s: not a regular file (a device, FIFO or socket)", path);
	assert_string_equal(errs.msg[0], want);

	assert_int_equal(mw_config_load(&cfg, "/dev/zero", &errs), -EINVAL);
	assert_int_equal(errs.count, 1);
	assert_string_equal(errs.msg[0],
			    "/dev/zero: not a regular file (a device, FIFO or socket)");
}

static void test_edges_in_range(void **state)
{
	struct mw_config cfg;
	struct mw_config_errors errs;

	assert_int_equal(
		load_text("pvm: { index = 255; ring_size = 131072; socket_window = 65536; };\n"
			  "ins: { id = 65535; pending_total = 1073741824; };\n",
			  &cfg, &errs),
		0);
	assert_int_equal(cfg.ins.pending_total, 1 << 30);
	assert_int_equal(cfg.pvm.index, 255);
	assert_int_equal(cfg.pvm.ring_size, 131072);
	assert_int_equal(cfg.ins.id, 65535);
}

static void test_ring_size_power_of_two(void **state)
{
	struct mw_config cfg;
	struct mw_config_errors errs;

	assert_int_equal(load_text("pvm: { ring_size = 3000000; };\n", &cfg, &errs), 1);
	assert_error(&errs, 0, tmp_path, 1, "pvm.ring_size: 3000000 is not a power of two");
	assert_int_equal(cfg.pvm.ring_size, 4 << 20);
}

static void test_bad_enums(void **state)
{
	struct mw_config cfg;
	struct mw_config_errors errs;

	assert_int_equal(load_text("common: { log_level = \"verbose\"; keystore = \"etcd\"; };\n"
				   "balancer: { policy = \"random\"; backend = \"docker\"; };\n",
				   &cfg, &errs),
			 4);
	assert_error(
		&errs, 0, tmp_path, 1,
		"common.log_level: \"verbose\" is not one of: error, warning, notice, info, debug");
	assert_error(&errs, 1, tmp_path, 1,
		     "common.keystore: \"etcd\" is not one of: local, xenstore");
	assert_error(&errs, 2, tmp_path, 2,
		     "balancer.policy: \"random\" is not one of: round-robin, least-connections, "
		     "least-busy, hash");
	assert_error(&errs, 3, tmp_path, 2,
		     "balancer.backend: \"docker\" is not one of: netns, process, xl");
	assert_string_equal(cfg.balancer.policy, "round-robin");

	assert_int_equal(load_text("flowd: { sched_policy = \"fifo\"; };\n", &cfg, &errs), 1);
	assert_error(&errs, 0, tmp_path, 1,
		     "flowd.sched_policy: \"fifo\" is not one of: other, batch, idle");
	assert_string_equal(cfg.flowd.sched_policy, "batch");
	assert_int_equal(load_text("flowd: { sched_policy = \"idle\"; };\n", &cfg, &errs), 0);
	assert_string_equal(cfg.flowd.sched_policy, "idle");
}

static void test_good_enums_and_values(void **state)
{
	struct mw_config cfg;
	struct mw_config_errors errs;

	assert_int_equal(load_text("common: { log_level = \"debug\"; keystore = \"xenstore\"; };\n"
				   "pvm: { fail_open = true; netflow_listen = \"[::1]:2055\"; };\n"
				   "balancer: { policy = \"hash\"; listen = ( \"0.0.0.0:80\", "
				   "\"[::]:443\" ); min_ins = 4; max_ins = 4; };\n",
				   &cfg, &errs),
			 0);
	assert_string_equal(cfg.common.log_level, "debug");
	assert_true(cfg.pvm.fail_open);
	assert_string_equal(cfg.pvm.netflow_listen, "[::1]:2055");
	assert_string_equal(cfg.balancer.policy, "hash");
	assert_int_equal(cfg.balancer.listen_count, 2);
	assert_string_equal(cfg.balancer.listen[0], "0.0.0.0:80");
	assert_string_equal(cfg.balancer.listen[1], "[::]:443");
}

static void test_paths_and_lengths(void **state)
{
	char text[512], longpath[120];
	struct mw_config cfg;
	struct mw_config_errors errs;

	memset(longpath, 'a', sizeof(longpath) - 1);
	longpath[0] = '/';
	longpath[sizeof(longpath) - 1] = '\0';
	snprintf(text, sizeof(text),
		 "common: { runtime_dir = \"run/mw\"; keystore_root = \"%s\"; };\n"
		 "ins: { congestion_control = \"%s\"; };\nbalancer: { bridge = \"br 0\"; };\n",
		 longpath, longpath + 80);
	assert_int_equal(load_text(text, &cfg, &errs), 4);
	assert_error(&errs, 0, tmp_path, 1,
		     "common.runtime_dir: \"run/mw\" is not an absolute path");
	assert_error(&errs, 1, tmp_path, 1,
		     "common.keystore_root: too long (119 bytes, at most 107)");
	assert_error(&errs, 2, tmp_path, 2,
		     "ins.congestion_control: too long (39 bytes, at most 31)");
	assert_error(&errs, 3, tmp_path, 3, "balancer.bridge: \"br 0\" is not an interface name");
	assert_string_equal(cfg.common.runtime_dir, "/run/mwcomms");
}

static void test_addresses(void **state)
{
	struct mw_config cfg;
	struct mw_config_errors errs;

	assert_int_equal(load_text("pvm: { netflow_listen = \"localhost:99\"; netflow_allow = "
				   "\"10.0.0.0/33\"; };\nbalancer: { subnet = \"10.77.0.0\"; "
				   "listen = [ \"1.2.3.4:80\", \"nope\" ]; };\n",
				   &cfg, &errs),
			 4);
	assert_error(&errs, 0, tmp_path, 1,
		     "pvm.netflow_listen: \"localhost:99\" is not an \"ip:port\" address");
	assert_error(&errs, 1, tmp_path, 1,
		     "pvm.netflow_allow: \"10.0.0.0/33\" is not an \"ip/prefix\" network");
	assert_error(&errs, 2, tmp_path, 2,
		     "balancer.subnet: \"10.77.0.0\" is not an \"ip/prefix\" network");
	assert_error(&errs, 3, tmp_path, 2,
		     "balancer.listen: entry 2: \"nope\" is not an \"ip:port\" address");
	/* A list is all or nothing. */
	assert_int_equal(cfg.balancer.listen_count, 0);
}

static void test_too_many_listeners(void **state)
{
	char text[2048] = "balancer: { listen = [";
	struct mw_config cfg;
	struct mw_config_errors errs;
	int i;

	for (i = 0; i < MW_LISTEN_MAX + 1; i++)
		snprintf(text + strlen(text), sizeof(text) - strlen(text), "%s\"127.0.0.1:%d\"",
			 i ? ", " : "", 1000 + i);
	snprintf(text + strlen(text), sizeof(text) - strlen(text), "]; };\n");
	assert_int_equal(load_text(text, &cfg, &errs), 1);
	assert_error(&errs, 0, tmp_path, 1, "balancer.listen: too many entries (17, at most 16)");
}

/* Entries longer than 64 bytes (the longest fields: 255 and 107) stay whole, all of them. */
static void test_long_list_entries(void **state)
{
	static char text[16384], want[MW_FLOWD_SENSORS_MAX][256];
	struct mw_config cfg;
	struct mw_config_errors errs;
	int i;

	snprintf(text, sizeof(text), "flowd: { mapi_sensor_groups = [");
	for (i = 0; i < MW_FLOWD_SENSORS_MAX; i++) {
		snprintf(want[i], sizeof(want[i]), "g%02d:", i);
		memset(want[i] + 4, 'a' + i, sizeof(want[i]) - 5);
		want[i][sizeof(want[i]) - 1] = '\0';
		snprintf(text + strlen(text), sizeof(text) - strlen(text), "%s\"%s\"",
			 i ? ", " : "", want[i]);
	}
	snprintf(text + strlen(text), sizeof(text) - strlen(text), "];\n pcap_files = [");
	for (i = 0; i < MW_FLOWD_SENSORS_MAX; i++)
		snprintf(text + strlen(text), sizeof(text) - strlen(text),
			 "%s\"/var/lib/mwcomms/captures/%070d.pcap\"", i ? ", " : "", i);
	snprintf(text + strlen(text), sizeof(text) - strlen(text), "]; };\n");
	assert_int_equal(load_text(text, &cfg, &errs), 0);
	assert_int_equal(cfg.flowd.mapi_sensor_groups_count, MW_FLOWD_SENSORS_MAX);
	assert_int_equal(cfg.flowd.pcap_files_count, MW_FLOWD_SENSORS_MAX);
	for (i = 0; i < MW_FLOWD_SENSORS_MAX; i++) {
		char path[128];

		assert_string_equal(cfg.flowd.mapi_sensor_groups[i], want[i]);
		snprintf(path, sizeof(path), "/var/lib/mwcomms/captures/%070d.pcap", i);
		assert_string_equal(cfg.flowd.pcap_files[i], path);
	}
}

static void test_cross_field(void **state)
{
	struct mw_config cfg;
	struct mw_config_errors errs;

	assert_int_equal(load_text("balancer:\n{\n\tmin_ins = 5;\n};\n"
				   "pvm: { ring_size = 131072; socket_window = 262144; };\n",
				   &cfg, &errs),
			 2);
	assert_error(&errs, 0, tmp_path, 3,
		     "balancer.min_ins: 5 is greater than balancer.max_ins (4)");
	assert_error(&errs, 1, tmp_path, 5,
		     "pvm.socket_window: 262144 is larger than pvm.ring_size (131072)");
	assert_int_equal(load_text("pvm: { socket_window = 2097152; pending_total = 1048576; };\n",
				   &cfg, &errs),
			 1);
	assert_error(&errs, 0, tmp_path, 1,
		     "pvm.socket_window: 2097152 is larger than pvm.pending_total (1048576): one "
		     "connection's bytes for its app could never be held");
}

/* --check-config promises every problem in one run, in file order. */
static void test_all_errors_reported(void **state)
{
	struct mw_config cfg;
	struct mw_config_errors errs;

	assert_int_equal(
		load_text("common: { bogus = 1; log_level = 3; };\n"
			  "pvm: { index = -1; };\n"
			  "extra: { };\n"
			  "ins: { id = 70000; quickack = \"yes\"; heartbeat_ms = 500; };\n",
			  &cfg, &errs),
		6);
	assert_error(&errs, 0, tmp_path, 1, "common.bogus: unknown key");
	assert_error(&errs, 1, tmp_path, 1, "common.log_level: expected a string, got an integer");
	assert_error(&errs, 2, tmp_path, 2, "pvm.index: -1 is out of range 0..255");
	assert_error(&errs, 3, tmp_path, 3,
		     "extra: unknown section (expected common, pvm, ins, balancer, guard or flowd)");
	assert_error(&errs, 4, tmp_path, 4, "ins.id: 70000 is out of range 1..65535");
	assert_error(&errs, 5, tmp_path, 4, "ins.quickack: expected true or false, got a string");
	/* The good value on the same line still counts. */
	assert_int_equal(cfg.ins.heartbeat_ms, 500);
}

static void test_error_overflow(void **state)
{
	char text[4096] = "ins: {";
	struct mw_config cfg;
	struct mw_config_errors errs;
	int i;

	for (i = 0; i < MW_CONFIG_MAX_ERRORS + 8; i++)
		snprintf(text + strlen(text), sizeof(text) - strlen(text), " k%d = 1;", i);
	snprintf(text + strlen(text), sizeof(text) - strlen(text), " };\n");
	assert_int_equal(load_text(text, &cfg, &errs), MW_CONFIG_MAX_ERRORS + 8);
	assert_error(&errs, 0, tmp_path, 1, "ins.k0: unknown key");
	assert_string_equal(errs.msg[MW_CONFIG_MAX_ERRORS - 1],
			    "too many errors; only the first 31 are shown");
}

static void test_null_errs_still_fails(void **state)
{
	struct mw_config cfg;

	assert_int_equal(mw_config_load(&cfg, write_conf("pvm: { index = 999; };\n"), NULL),
			 -EINVAL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_defaults),
		cmocka_unit_test(test_null_path_is_defaults),
		cmocka_unit_test(test_shipped_conf_equals_defaults),
		cmocka_unit_test(test_missing_file),
		cmocka_unit_test(test_unreadable_file),
		cmocka_unit_test_teardown(test_syntax_error_has_line, remove_conf),
		cmocka_unit_test_teardown(test_duplicate_key, remove_conf),
		cmocka_unit_test_teardown(test_empty_file_is_defaults, remove_conf),
		cmocka_unit_test_teardown(test_guard_section, remove_conf),
		cmocka_unit_test_teardown(test_unknown_section, remove_conf),
		cmocka_unit_test_teardown(test_section_not_a_group, remove_conf),
		cmocka_unit_test_teardown(test_unknown_key, remove_conf),
		cmocka_unit_test_teardown(test_wrong_types, remove_conf),
		cmocka_unit_test_teardown(test_out_of_range, remove_conf),
		cmocka_unit_test_teardown(test_big_integers_not_truncated, remove_conf),
		cmocka_unit_test_teardown(test_big_integers_only_where_values_are, remove_conf),
		cmocka_unit_test_teardown(test_integers_beyond_64_bits, remove_conf),
		cmocka_unit_test_teardown(test_include_name_with_quote, remove_conf),
		cmocka_unit_test_teardown(test_include_not_regular, remove_conf),
		cmocka_unit_test_teardown(test_include_self_bounded, remove_conf),
		cmocka_unit_test_teardown(test_file_too_large, remove_conf),
		cmocka_unit_test_teardown(test_not_regular_file, remove_conf),
		cmocka_unit_test_teardown(test_edges_in_range, remove_conf),
		cmocka_unit_test_teardown(test_ring_size_power_of_two, remove_conf),
		cmocka_unit_test_teardown(test_bad_enums, remove_conf),
		cmocka_unit_test_teardown(test_good_enums_and_values, remove_conf),
		cmocka_unit_test_teardown(test_paths_and_lengths, remove_conf),
		cmocka_unit_test_teardown(test_addresses, remove_conf),
		cmocka_unit_test_teardown(test_too_many_listeners, remove_conf),
		cmocka_unit_test_teardown(test_long_list_entries, remove_conf),
		cmocka_unit_test_teardown(test_cross_field, remove_conf),
		cmocka_unit_test_teardown(test_all_errors_reported, remove_conf),
		cmocka_unit_test_teardown(test_error_overflow, remove_conf),
		cmocka_unit_test_teardown(test_null_errs_still_fails, remove_conf),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
