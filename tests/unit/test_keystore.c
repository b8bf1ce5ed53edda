/* SPDX-License-Identifier: MIT */
/* test_keystore.c - the local keystore backend: values, key rules, listing, watches, writers */
#include <errno.h>
#include <poll.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/keystore.h"

struct fixture {
	char root[64];
	struct mw_keystore *ks;
};

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	char err[256];

	strcpy(f->root, "/tmp/mw-ks-XXXXXX");
	assert_non_null(mkdtemp(f->root));
	strcat(f->root, "/store"); /* created by open */
	assert_int_equal(mw_keystore_open(&f->ks, "local", f->root, err, sizeof(err)), 0);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	char cmd[128];

	mw_keystore_close(f->ks);
	f->root[strlen(f->root) - strlen("/store")] = '\0';
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", f->root);
	assert_int_equal(system(cmd), 0);
	free(f);
	return 0;
}

static void test_values(void **state)
{
	struct fixture *f = *state;
	const char bin[] = {'a', 0, 'b', '\n', (char)0xff};
	char buf[64], path[256];
	struct stat st;

	assert_int_equal(mw_keystore_write(f->ks, "/mw/pvm/netflow", "127.0.0.1:4000", 14), 0);
	assert_int_equal(mw_keystore_read(f->ks, "/mw/pvm/netflow", buf, sizeof(buf)), 14);
	assert_string_equal(buf, "127.0.0.1:4000");
	/* The key is the file under the root. */
	snprintf(path, sizeof(path), "%s/mw/pvm/netflow", f->root);
	assert_int_equal(stat(path, &st), 0);
	snprintf(path, sizeof(path), "%s/mw/pvm", f->root);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0700);
	assert_int_equal(mw_keystore_write(f->ks, "/mw/pvm/netflow", "[::1]:5", 7), 0);
	assert_int_equal(mw_keystore_read(f->ks, "/mw/pvm/netflow", buf, sizeof(buf)), 7);
	assert_string_equal(buf, "[::1]:5");
	assert_int_equal(mw_keystore_write(f->ks, "/mw/bin", bin, sizeof(bin)), 0);
	assert_int_equal(mw_keystore_read(f->ks, "/mw/bin", buf, sizeof(buf)), (int)sizeof(bin));
	assert_memory_equal(buf, bin, sizeof(bin));
	assert_int_equal(mw_keystore_write(f->ks, "/mw/empty", NULL, 0), 0);
	assert_int_equal(mw_keystore_read(f->ks, "/mw/empty", buf, sizeof(buf)), 0);
	assert_int_equal(mw_keystore_read(f->ks, "/mw/none", buf, sizeof(buf)), -ENOENT);
	assert_int_equal(mw_keystore_read(f->ks, "/mw/pvm/netflow", buf, 7), -ENOSPC);
	/* A key with children reads as "" (a XenStore directory node). */
	assert_int_equal(mw_keystore_read(f->ks, "/mw/pvm", buf, sizeof(buf)), 0);
}

static void test_bad_keys(void **state)
{
	struct fixture *f = *state;
	const char *bad[] = {"", "mw/x", "/", "/mw/", "/mw//x", "/mw/../etc", "/mw/./x",
			     "/mw/.tmp", "/mw/a b", "/mw/a\n", "/mw/ä", NULL};
	char longkey[MW_KEY_MAX + 8], buf[8];

	for (int i = 0; bad[i]; i++) {
		assert_int_equal(mw_key_check(bad[i]), -EINVAL);
		assert_int_equal(mw_keystore_write(f->ks, bad[i], "x", 1), -EINVAL);
		assert_int_equal(mw_keystore_read(f->ks, bad[i], buf, sizeof(buf)), -EINVAL);
	}
	memset(longkey, 'a', sizeof(longkey));
	longkey[0] = '/';
	longkey[MW_KEY_MAX] = '\0';
	assert_int_equal(mw_key_check(longkey), -EINVAL);
	assert_int_equal(mw_key_check("/mw/ins/1/heart_beat-2.x"), 0);
	assert_int_equal(mw_keystore_write(f->ks, "/mw/x", "x", MW_KEYSTORE_VALUE_MAX + 1), -EINVAL);
}

static void collect(void *arg, const char *name)
{
	char *out = arg;

	strcat(out, name);
	strcat(out, ",");
}

static void test_list_remove(void **state)
{
	struct fixture *f = *state;
	char names[256] = "", tmp[256], buf[8];

	assert_int_equal(mw_keystore_write(f->ks, "/mw/ins/2/heartbeat", "1", 1), 0);
	assert_int_equal(mw_keystore_write(f->ks, "/mw/ins/10/heartbeat", "1", 1), 0);
	assert_int_equal(mw_keystore_write(f->ks, "/mw/ins/1/heartbeat", "1", 1), 0);
	/* A stray temp file (a writer that crashed) is not a key. */
	snprintf(tmp, sizeof(tmp), "%s/mw/ins/.tmp.1.1", f->root);
	fclose(fopen(tmp, "w"));
	assert_int_equal(mw_keystore_list(f->ks, "/mw/ins", collect, names), 3);
	assert_string_equal(names, "1,10,2,");
	assert_int_equal(mw_keystore_list(f->ks, "/mw/none", collect, names), 0);
	assert_int_equal(mw_keystore_remove(f->ks, "/mw/ins"), 0);
	assert_int_equal(mw_keystore_read(f->ks, "/mw/ins/1/heartbeat", buf, sizeof(buf)), -ENOENT);
	assert_int_equal(mw_keystore_remove(f->ks, "/mw/ins"), 0); /* absent is fine */
}

/* Wait (bounded) for an event for @want under @watch. */
static int wait_event(struct mw_keystore *ks, const char *want, const char *watch)
{
	char key[MW_KEY_MAX], w[MW_KEY_MAX];

	for (int i = 0; i < 40; i++) {
		struct pollfd p = {.fd = mw_keystore_fd(ks), .events = POLLIN};
		int ret;

		while ((ret = mw_keystore_next_event(ks, key, sizeof(key), w, sizeof(w))) == 1)
			if (!strcmp(key, want) && !strcmp(w, watch))
				return 0;
		if (ret < 0)
			return ret;
		poll(&p, 1, 50);
	}
	return -ETIMEDOUT;
}

static void test_watches(void **state)
{
	struct fixture *f = *state;
	char key[MW_KEY_MAX], w[MW_KEY_MAX];

	/* A key that does not exist yet, three directories deep. */
	assert_int_equal(mw_keystore_watch(f->ks, "/mw/pvm/netflow"), 0);
	assert_int_equal(mw_keystore_write(f->ks, "/mw/pvm/netflow", "1.2.3.4:5", 9), 0);
	assert_int_equal(wait_event(f->ks, "/mw/pvm/netflow", "/mw/pvm/netflow"), 0);
	/* The same key, rewritten. */
	assert_int_equal(mw_keystore_write(f->ks, "/mw/pvm/netflow", "1.2.3.4:6", 9), 0);
	assert_int_equal(wait_event(f->ks, "/mw/pvm/netflow", "/mw/pvm/netflow"), 0);
	/* A prefix fires for children, including ones in new directories. */
	assert_int_equal(mw_keystore_watch(f->ks, "/mw/ins"), 0);
	assert_int_equal(mw_keystore_write(f->ks, "/mw/ins/7/a/b/stats", "x", 1), 0);
	assert_int_equal(wait_event(f->ks, "/mw/ins/7/a/b/stats", "/mw/ins"), 0);
	assert_int_equal(mw_keystore_remove(f->ks, "/mw/ins/7/a/b/stats"), 0);
	assert_int_equal(wait_event(f->ks, "/mw/ins/7/a/b/stats", "/mw/ins"), 0);
	/* Other keys are not reported to a watch they are not under. */
	assert_int_equal(mw_keystore_write(f->ks, "/mw/insx", "x", 1), 0);
	assert_int_equal(wait_event(f->ks, "/mw/insx", "/mw/ins"), -ETIMEDOUT);
	/* Unwatch stops events. */
	assert_int_equal(mw_keystore_unwatch(f->ks, "/mw/ins"), 0);
	assert_int_equal(mw_keystore_write(f->ks, "/mw/ins/8", "x", 1), 0);
	assert_int_equal(wait_event(f->ks, "/mw/ins/8", "/mw/ins"), -ETIMEDOUT);
	assert_int_equal(mw_keystore_unwatch(f->ks, "/mw/ins"), -ENOENT);
	/* Temp files never appear in events. */
	assert_int_equal(mw_keystore_write(f->ks, "/mw/pvm/netflow", "z", 1), 0);
	for (int i = 0; i < 10; i++) {
		int ret = mw_keystore_next_event(f->ks, key, sizeof(key), w, sizeof(w));

		if (ret == 1)
			assert_null(strstr(key, ".tmp"));
		usleep(10000);
	}
}

#define WRITERS 4
#define WRITES 2000

/* Values are "writer:seq:checksum" padded to a length that varies with seq. */
static int make_value(char *buf, size_t len, int writer, int seq)
{
	int n = snprintf(buf, len, "%d:%d:", writer, seq), pad = 1 + (seq * 37) % 900;
	unsigned sum = 0;

	for (int i = 0; i < pad; i++)
		buf[n + i] = (char)('a' + (writer + seq + i) % 26);
	n += pad;
	for (int i = 0; i < n; i++)
		sum = sum * 31 + (unsigned char)buf[i];
	return n + snprintf(buf + n, len - (size_t)n, "#%08x", sum);
}

static int value_ok(const char *v, int len)
{
	int writer, seq;
	char want[2048];

	if (sscanf(v, "%d:%d:", &writer, &seq) != 2)
		return 0;
	return make_value(want, sizeof(want), writer, seq) == len && !memcmp(want, v, (size_t)len);
}

static void test_concurrent_writers(void **state)
{
	struct fixture *f = *state;
	pid_t pids[WRITERS];
	char buf[2048], cmd[512];
	int reads = 0, running = WRITERS;

	assert_int_equal(mw_keystore_write(f->ks, "/mw/race", "0:0:", 4), 0);
	make_value(buf, sizeof(buf), 0, 0);
	assert_int_equal(mw_keystore_write(f->ks, "/mw/race", buf, strlen(buf)), 0);
	for (int w = 0; w < WRITERS; w++) {
		pids[w] = fork();
		assert_true(pids[w] >= 0);
		if (pids[w] == 0) {
			struct mw_keystore *ks;
			char err[128], v[2048];

			if (mw_keystore_open(&ks, "local", f->root, err, sizeof(err)))
				_exit(2);
			for (int i = 0; i < WRITES; i++) {
				int n = make_value(v, sizeof(v), w + 1, i);

				if (mw_keystore_write(ks, "/mw/race", v, (size_t)n))
					_exit(3);
			}
			mw_keystore_close(ks);
			_exit(0);
		}
	}
	while (running) {
		int n = mw_keystore_read(f->ks, "/mw/race", buf, sizeof(buf));

		assert_true(n > 0);
		if (!value_ok(buf, n))
			fail_msg("torn or corrupt value: '%.60s' (%d bytes)", buf, n);
		reads++;
		for (int w = 0; w < WRITERS; w++) {
			int status;

			if (pids[w] > 0 && waitpid(pids[w], &status, WNOHANG) == pids[w]) {
				assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
				pids[w] = 0;
				running--;
			}
		}
	}
	assert_true(reads > 10);
	/* The last value is one writer's final write; no temp file is left behind. */
	assert_true(value_ok(buf, mw_keystore_read(f->ks, "/mw/race", buf, sizeof(buf))));
	snprintf(cmd, sizeof(cmd), "test -z \"$(find '%s' -name '.tmp*')\"", f->root);
	assert_int_equal(system(cmd), 0);
}

static void test_open_errors(void **state)
{
	struct mw_keystore *ks;
	char err[256];

	(void)state;
	assert_int_equal(mw_keystore_open(&ks, "local", "relative/path", err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "absolute"));
	assert_true(mw_keystore_open(&ks, "local", "/proc/version/store", err, sizeof(err)) < 0);
	assert_non_null(strstr(err, "/proc/version/store"));
	assert_int_equal(mw_keystore_open(&ks, "etcd", "/tmp", err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "unknown backend 'etcd'"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_values, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bad_keys, setup, teardown),
		cmocka_unit_test_setup_teardown(test_list_remove, setup, teardown),
		cmocka_unit_test_setup_teardown(test_watches, setup, teardown),
		cmocka_unit_test_setup_teardown(test_concurrent_writers, setup, teardown),
		cmocka_unit_test(test_open_errors),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
