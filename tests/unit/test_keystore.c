/* SPDX-License-Identifier: MIT */
/* test_keystore.c - the local keystore backend: values, key rules, listing, watches, writers */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/stat.h>
#include <time.h>
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
	strncat(f->root, "/store", sizeof(f->root) - strlen(f->root) - 1); /* created by open */
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
	assert_int_equal(system(cmd), 0); /* NOLINT(cert-env33-c): fixed command, mkdtemp path */
	free(f);
	return 0;
}

static void test_values(void **state)
{
	struct fixture *f = *state;
	const char bin[] = {'a', 0, 'b', '\n', (char)0xff};
	char buf[MW_KEYSTORE_VALUE_MAX + 1], big[MW_KEYSTORE_VALUE_MAX], path[256];
	struct stat st;

	assert_int_equal(mw_keystore_write(f->ks, "/mw/pvm/netflow", "127.0.0.1:4000", 14), 0);
	assert_int_equal(mw_keystore_read(f->ks, "/mw/pvm/netflow", buf, sizeof(buf)), 14);
	assert_string_equal(buf, "127.0.0.1:4000");
	/* The key is the file under the root; directories 0700, the value 0600. */
	snprintf(path, sizeof(path), "%s/mw/pvm/netflow", f->root);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	assert_int_equal(st.st_size, 14);
	for (const char *d = "/mw/pvm"; d; d = strcmp(d, "/mw/pvm") ? (strcmp(d, "/mw") ? NULL : "") : "/mw") {
		snprintf(path, sizeof(path), "%s%s", f->root, d);
		assert_int_equal(stat(path, &st), 0);
		assert_true(S_ISDIR(st.st_mode));
		assert_int_equal(st.st_mode & 0777, 0700);
	}
	/* Overwrite. */
	assert_int_equal(mw_keystore_write(f->ks, "/mw/pvm/netflow", "[::1]:5", 7), 0);
	assert_int_equal(mw_keystore_read(f->ks, "/mw/pvm/netflow", buf, sizeof(buf)), 7);
	assert_string_equal(buf, "[::1]:5");
	/* Any bytes, NUL included; empty values. */
	assert_int_equal(mw_keystore_write(f->ks, "/mw/bin", bin, sizeof(bin)), 0);
	assert_int_equal(mw_keystore_read(f->ks, "/mw/bin", buf, sizeof(buf)), (int)sizeof(bin));
	assert_memory_equal(buf, bin, sizeof(bin));
	assert_int_equal(buf[sizeof(bin)], '\0');
	assert_int_equal(mw_keystore_write(f->ks, "/mw/empty", NULL, 0), 0);
	buf[0] = 'x';
	assert_int_equal(mw_keystore_read(f->ks, "/mw/empty", buf, sizeof(buf)), 0);
	assert_int_equal(buf[0], '\0');
	/* The largest value fits a buffer of VALUE_MAX + 1 and not one byte less. */
	for (size_t i = 0; i < sizeof(big); i++)
		big[i] = (char)(i * 7 + 1);
	assert_int_equal(mw_keystore_write(f->ks, "/mw/big", big, sizeof(big)), 0);
	assert_int_equal(mw_keystore_read(f->ks, "/mw/big", buf, sizeof(buf)), (int)sizeof(big));
	assert_memory_equal(buf, big, sizeof(big));
	assert_int_equal(mw_keystore_read(f->ks, "/mw/big", buf, sizeof(big)), -ENOSPC);
	assert_int_equal(mw_keystore_write(f->ks, "/mw/big", big, sizeof(big) + 1), -EINVAL);
	/* Absent keys, also below a value; a buffer exactly the value's length. */
	assert_int_equal(mw_keystore_read(f->ks, "/mw/none", buf, sizeof(buf)), -ENOENT);
	assert_int_equal(mw_keystore_read(f->ks, "/mw/bin/child", buf, sizeof(buf)), -ENOENT);
	assert_int_equal(mw_keystore_read(f->ks, "/mw/pvm/netflow", buf, 7), -ENOSPC);
	assert_int_equal(mw_keystore_read(f->ks, "/mw/pvm/netflow", buf, 8), 7);
	/* A key with children reads as "" (a XenStore directory node). */
	assert_int_equal(mw_keystore_read(f->ks, "/mw/pvm", buf, sizeof(buf)), 0);
	assert_string_equal(buf, "");
	/* Locally a directory holds no value, and a value has no children. */
	assert_int_equal(mw_keystore_write(f->ks, "/mw/pvm", "x", 1), -EISDIR);
	assert_int_equal(mw_keystore_write(f->ks, "/mw/bin/child", "x", 1), -ENOTDIR);
	assert_int_equal(mw_keystore_read(f->ks, "/mw/bin", buf, sizeof(buf)), (int)sizeof(bin));
}

static void test_bad_keys(void **state)
{
	struct fixture *f = *state;
	const char *bad[] = {"", "mw/x", "/", "/mw/", "/mw/x/", "//mw", "/mw//x", "/mw/../etc",
			     "/..", "/.", "/mw/..", "/mw/./x", "/mw/.tmp", "/mw/.tmp.1.1", "/mw/a b",
			     "/mw/a\n", "/mw/\xc3\xa4", "/mw/a:b", "/mw/a\\b", "/mw/*", NULL};
	char longkey[MW_KEY_MAX + 8], buf[8];

	for (int i = 0; bad[i]; i++) {
		assert_int_equal(mw_key_check(bad[i]), -EINVAL);
		assert_int_equal(mw_keystore_write(f->ks, bad[i], "x", 1), -EINVAL);
		assert_int_equal(mw_keystore_read(f->ks, bad[i], buf, sizeof(buf)), -EINVAL);
		assert_int_equal(mw_keystore_remove(f->ks, bad[i]), -EINVAL);
		assert_int_equal(mw_keystore_list(f->ks, bad[i], NULL, NULL), -EINVAL);
		assert_int_equal(mw_keystore_watch(f->ks, bad[i]), -EINVAL);
	}
	assert_int_equal(mw_key_check(NULL), -EINVAL);
	/* MW_KEY_MAX - 1 characters is the longest key. */
	memset(longkey, 'a', sizeof(longkey));
	longkey[0] = '/';
	longkey[MW_KEY_MAX - 1] = '\0';
	assert_int_equal(mw_key_check(longkey), 0);
	assert_int_equal(mw_keystore_write(f->ks, longkey, "v", 1), 0);
	assert_int_equal(mw_keystore_read(f->ks, longkey, buf, sizeof(buf)), 1);
	longkey[MW_KEY_MAX - 1] = 'a';
	longkey[MW_KEY_MAX] = '\0';
	assert_int_equal(mw_key_check(longkey), -EINVAL);
	assert_int_equal(mw_key_check("/mw/ins/1/heart_beat-2.x"), 0);
	assert_int_equal(mw_key_check("/a"), 0);
	assert_int_equal(mw_key_check("/mw/a..b"), 0); /* dots inside a name are fine */
	assert_int_equal(mw_keystore_write(f->ks, "/mw/x", NULL, 1), -EINVAL);
}

static void collect(void *arg, const char *name)
{
	char *out = arg; /* names[256] in test_list */
	size_t used = strlen(out);

	snprintf(out + used, 256 - used, "%s,", name);
}

static void test_list_remove(void **state)
{
	struct fixture *f = *state;
	char names[256] = "", tmp[256], buf[8];

	assert_int_equal(mw_keystore_write(f->ks, "/mw/ins/2/heartbeat", "1", 1), 0);
	assert_int_equal(mw_keystore_write(f->ks, "/mw/ins/10/heartbeat", "1", 1), 0);
	assert_int_equal(mw_keystore_write(f->ks, "/mw/ins/1/heartbeat", "1", 1), 0);
	assert_int_equal(mw_keystore_write(f->ks, "/mw/ins/1/stats", "1", 1), 0);
	assert_int_equal(mw_keystore_write(f->ks, "/mw/pvm/netflow", "1", 1), 0);
	/* A stray temp file (a writer that crashed) is not a key. */
	snprintf(tmp, sizeof(tmp), "%s/mw/ins/.tmp.1.1", f->root);
	fclose(fopen(tmp, "w"));
	assert_int_equal(mw_keystore_list(f->ks, "/mw/ins", collect, names), 3);
	assert_string_equal(names, "1,10,2,");
	names[0] = '\0';
	assert_int_equal(mw_keystore_list(f->ks, "/mw/ins/1", collect, names), 2);
	assert_string_equal(names, "heartbeat,stats,");
	assert_int_equal(mw_keystore_list(f->ks, "/mw/none", collect, names), 0);
	assert_int_equal(mw_keystore_list(f->ks, "/mw/pvm/netflow", collect, names), 0);
	/* Remove is recursive and touches nothing beside the key. */
	assert_int_equal(mw_keystore_remove(f->ks, "/mw/ins"), 0);
	assert_int_equal(mw_keystore_read(f->ks, "/mw/ins/1/heartbeat", buf, sizeof(buf)), -ENOENT);
	assert_int_equal(mw_keystore_read(f->ks, "/mw/ins", buf, sizeof(buf)), -ENOENT);
	names[0] = '\0';
	assert_int_equal(mw_keystore_list(f->ks, "/mw", collect, names), 1);
	assert_string_equal(names, "pvm,");
	assert_int_equal(mw_keystore_remove(f->ks, "/mw/ins"), 0); /* absent is fine */
	assert_int_equal(mw_keystore_remove(f->ks, "/mw/pvm/netflow/x"), 0); /* below a value */
	assert_int_equal(mw_keystore_remove(f->ks, "/mw/pvm/netflow"), 0);
	assert_int_equal(mw_keystore_read(f->ks, "/mw/pvm/netflow", buf, sizeof(buf)), -ENOENT);
}

/*
 * Drain events (bounded, poll with a timeout) until (@want, @watch) arrives.
 * Every event seen must be a valid key under its watch: no temp names.  With
 * @forbid, seeing that key first is an error (-EEXIST).
 */
static int wait_event_not(struct mw_keystore *ks, const char *want, const char *watch,
			  const char *forbid)
{
	char key[MW_KEY_MAX], w[MW_KEY_MAX];

	for (int i = 0; i < 100; i++) {
		struct pollfd p = {.fd = mw_keystore_fd(ks), .events = POLLIN};
		int ret;

		while ((ret = mw_keystore_next_event(ks, key, sizeof(key), w, sizeof(w))) == 1) {
			if (mw_key_check(key) || strstr(key, ".tmp") || strncmp(key, w, strlen(w)))
				fail_msg("bad event key '%s' for watch '%s'", key, w);
			if (forbid && !strcmp(key, forbid))
				return -EEXIST;
			if (!strcmp(key, want) && !strcmp(w, watch))
				return 0;
		}
		if (ret < 0)
			return ret;
		poll(&p, 1, 50);
	}
	return -ETIMEDOUT;
}

static int wait_event(struct mw_keystore *ks, const char *want, const char *watch)
{
	return wait_event_not(ks, want, watch, NULL);
}

static void test_watch_fd(void **state)
{
	struct fixture *f = *state;
	int fd = mw_keystore_fd(f->ks);
	char key[MW_KEY_MAX], w[MW_KEY_MAX];

	assert_true(fd >= 0);
	assert_true(fcntl(fd, F_GETFL) & O_NONBLOCK);
	assert_true(fcntl(fd, F_GETFD) & FD_CLOEXEC);
	/* Nothing watched, nothing pending: returns at once. */
	assert_int_equal(mw_keystore_next_event(f->ks, key, sizeof(key), w, sizeof(w)), 0);
	assert_int_equal(mw_keystore_unwatch(f->ks, "/mw/never"), -ENOENT);
}

static void test_watch_existing_key(void **state)
{
	struct fixture *f = *state;

	assert_int_equal(mw_keystore_write(f->ks, "/mw/pvm/netflow", "1.2.3.4:5", 9), 0);
	assert_int_equal(mw_keystore_watch(f->ks, "/mw/pvm/netflow"), 0);
	assert_int_equal(mw_keystore_watch(f->ks, "/mw/pvm/netflow"), 0); /* twice is once */
	assert_int_equal(mw_keystore_write(f->ks, "/mw/pvm/netflow", "1.2.3.4:6", 9), 0);
	assert_int_equal(wait_event(f->ks, "/mw/pvm/netflow", "/mw/pvm/netflow"), 0);
	/* A sibling is not reported to it; removal is. */
	assert_int_equal(mw_keystore_write(f->ks, "/mw/pvm/other", "x", 1), 0);
	assert_int_equal(mw_keystore_remove(f->ks, "/mw/pvm/netflow"), 0);
	assert_int_equal(wait_event_not(f->ks, "/mw/pvm/netflow", "/mw/pvm/netflow", "/mw/pvm/other"),
			 0);
	/*
	 * Regression: only the key's own directory was watched, so after /mw was
	 * removed and created again (mw-pvm restarted) the watch never fired.
	 */
	assert_int_equal(mw_keystore_remove(f->ks, "/mw"), 0);
	assert_int_equal(mw_keystore_write(f->ks, "/mw/pvm/netflow", "1.2.3.4:7", 9), 0);
	assert_int_equal(wait_event(f->ks, "/mw/pvm/netflow", "/mw/pvm/netflow"), 0);
}

/* Processes start in any order: the watcher may come before the writer and its parents. */
static void test_watch_before_parents_exist(void **state)
{
	struct fixture *f = *state;
	struct mw_keystore *writer;
	char err[256];

	assert_int_equal(mw_keystore_watch(f->ks, "/mw/ins/3/channel/ring"), 0);
	assert_int_equal(mw_keystore_open(&writer, "local", f->root, err, sizeof(err)), 0);
	assert_int_equal(mw_keystore_write(writer, "/mw/ins/3/channel/ring", "1", 1), 0);
	assert_int_equal(wait_event(f->ks, "/mw/ins/3/channel/ring", "/mw/ins/3/channel/ring"), 0);
	/* Rewritten, then the whole tree removed and created again: both still fire. */
	assert_int_equal(mw_keystore_write(writer, "/mw/ins/3/channel/ring", "2", 1), 0);
	assert_int_equal(wait_event(f->ks, "/mw/ins/3/channel/ring", "/mw/ins/3/channel/ring"), 0);
	assert_int_equal(mw_keystore_remove(writer, "/mw"), 0);
	assert_int_equal(wait_event(f->ks, "/mw/ins/3/channel/ring", "/mw/ins/3/channel/ring"), 0);
	assert_int_equal(mw_keystore_write(writer, "/mw/ins/3/channel/ring", "3", 1), 0);
	assert_int_equal(wait_event(f->ks, "/mw/ins/3/channel/ring", "/mw/ins/3/channel/ring"), 0);
	mw_keystore_close(writer);
}

static void test_watch_prefix(void **state)
{
	struct fixture *f = *state;

	assert_int_equal(mw_keystore_watch(f->ks, "/mw/ins"), 0);
	/* Children in directories that do not exist yet. */
	assert_int_equal(mw_keystore_write(f->ks, "/mw/ins/7/a/b/stats", "x", 1), 0);
	assert_int_equal(wait_event(f->ks, "/mw/ins/7/a/b/stats", "/mw/ins"), 0);
	assert_int_equal(mw_keystore_write(f->ks, "/mw/ins/7/a/b/stats", "y", 1), 0);
	assert_int_equal(wait_event(f->ks, "/mw/ins/7/a/b/stats", "/mw/ins"), 0);
	assert_int_equal(mw_keystore_remove(f->ks, "/mw/ins/7/a/b/stats"), 0);
	assert_int_equal(wait_event(f->ks, "/mw/ins/7/a/b/stats", "/mw/ins"), 0);
	/* Keys beside the prefix ("/mw/insx") are not under it. */
	assert_int_equal(mw_keystore_write(f->ks, "/mw/insx", "x", 1), 0);
	assert_int_equal(mw_keystore_write(f->ks, "/mw/ins/8", "x", 1), 0);
	assert_int_equal(wait_event_not(f->ks, "/mw/ins/8", "/mw/ins", "/mw/insx"), 0);
	/* Two watches, one nested in the other: an event for each. */
	assert_int_equal(mw_keystore_watch(f->ks, "/mw/ins/9"), 0);
	assert_int_equal(mw_keystore_write(f->ks, "/mw/ins/9/heartbeat", "1", 1), 0);
	assert_int_equal(wait_event(f->ks, "/mw/ins/9/heartbeat", "/mw/ins"), 0);
	assert_int_equal(mw_keystore_write(f->ks, "/mw/ins/9/heartbeat", "2", 1), 0);
	assert_int_equal(wait_event(f->ks, "/mw/ins/9/heartbeat", "/mw/ins/9"), 0);
}

static void test_unwatch(void **state)
{
	struct fixture *f = *state;

	assert_int_equal(mw_keystore_watch(f->ks, "/mw/ins"), 0);
	assert_int_equal(mw_keystore_watch(f->ks, "/mw/marker"), 0);
	assert_int_equal(mw_keystore_write(f->ks, "/mw/ins/1", "x", 1), 0);
	/* Pending events of a removed watch are dropped too. */
	assert_int_equal(mw_keystore_unwatch(f->ks, "/mw/ins"), 0);
	assert_int_equal(mw_keystore_write(f->ks, "/mw/ins/2", "x", 1), 0);
	assert_int_equal(mw_keystore_write(f->ks, "/mw/ins/3/deep", "x", 1), 0);
	/* Events arrive in order, so the marker proves nothing of /mw/ins came before it. */
	assert_int_equal(mw_keystore_write(f->ks, "/mw/marker", "x", 1), 0);
	assert_int_equal(wait_event_not(f->ks, "/mw/marker", "/mw/marker", "/mw/ins/2"), 0);
	assert_int_equal(mw_keystore_unwatch(f->ks, "/mw/ins"), -ENOENT);
	/* Watched again, it fires again. */
	assert_int_equal(mw_keystore_watch(f->ks, "/mw/ins"), 0);
	assert_int_equal(mw_keystore_write(f->ks, "/mw/ins/3/deep", "y", 1), 0);
	assert_int_equal(wait_event(f->ks, "/mw/ins/3/deep", "/mw/ins"), 0);
}

/*
 * Regression: the directory table had 1024 fixed slots and never freed one, so
 * after 1024 INS directories came and went, new ones were no longer watched.
 */
static void test_watch_directory_churn(void **state)
{
	struct fixture *f = *state;

	assert_int_equal(mw_keystore_watch(f->ks, "/mw/ins"), 0);
	for (int i = 0; i < 1100; i++) {
		char key[96], dir[64];

		snprintf(dir, sizeof(dir), "/mw/ins/%d", i);
		snprintf(key, sizeof(key), "%s/heartbeat", dir);
		assert_int_equal(mw_keystore_write(f->ks, key, "1", 1), 0);
		assert_int_equal(wait_event(f->ks, key, "/mw/ins"), 0);
		assert_int_equal(mw_keystore_remove(f->ks, dir), 0);
		assert_int_equal(wait_event(f->ks, dir, "/mw/ins"), 0);
	}
	assert_int_equal(mw_keystore_write(f->ks, "/mw/ins/last/heartbeat", "1", 1), 0);
	assert_int_equal(wait_event(f->ks, "/mw/ins/last/heartbeat", "/mw/ins"), 0);
}

/* A directory moved in from elsewhere is watched under its new name. */
static void test_watch_moved_directory(void **state)
{
	struct fixture *f = *state;
	char from[256], to[256];

	assert_int_equal(mw_keystore_watch(f->ks, "/mw/ins"), 0);
	assert_int_equal(mw_keystore_write(f->ks, "/mw/ins/a/heartbeat", "1", 1), 0);
	assert_int_equal(wait_event(f->ks, "/mw/ins/a/heartbeat", "/mw/ins"), 0);
	snprintf(from, sizeof(from), "%s/mw/ins/a", f->root);
	snprintf(to, sizeof(to), "%s/mw/ins/b", f->root);
	assert_int_equal(rename(from, to), 0);
	assert_int_equal(wait_event(f->ks, "/mw/ins/b", "/mw/ins"), 0);
	assert_int_equal(mw_keystore_write(f->ks, "/mw/ins/b/heartbeat", "2", 1), 0);
	assert_int_equal(wait_event_not(f->ks, "/mw/ins/b/heartbeat", "/mw/ins", "/mw/ins/a/heartbeat"),
			 0);
}

/* Regression: two handles in one process used the same temp names (.tmp.PID.0, ...). */
struct thread_arg {
	const char *root;
	int id, ret;
};

static void *thread_writer(void *p)
{
	struct thread_arg *a = p;
	struct mw_keystore *ks = NULL;
	char err[128], v[32];

	a->ret = mw_keystore_open(&ks, "local", a->root, err, sizeof(err));
	for (int i = 0; i < 2000 && !a->ret; i++) {
		int n = snprintf(v, sizeof(v), "%d:%d", a->id, i);

		a->ret = mw_keystore_write(ks, "/mw/threads", v, (size_t)n);
	}
	if (ks)
		mw_keystore_close(ks);
	return NULL;
}

static void test_threads_share_no_temp_names(void **state)
{
	struct fixture *f = *state;
	struct thread_arg args[2] = {{f->root, 1, 0}, {f->root, 2, 0}};
	pthread_t t[2];
	char buf[32];

	for (int i = 0; i < 2; i++)
		assert_int_equal(pthread_create(&t[i], NULL, thread_writer, &args[i]), 0);
	for (int i = 0; i < 2; i++) {
		assert_int_equal(pthread_join(t[i], NULL), 0);
		assert_int_equal(args[i].ret, 0);
	}
	assert_true(mw_keystore_read(f->ks, "/mw/threads", buf, sizeof(buf)) > 0);
	assert_true(!strcmp(buf, "1:1999") || !strcmp(buf, "2:1999"));
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
	char want[2048], *end;
	long writer, seq;

	/* "writer:seq:padding": both numbers, each ended by ':' */
	writer = strtol(v, &end, 10);
	if (end == v || *end != ':')
		return 0;
	seq = strtol(end + 1, &end, 10);
	if (*end != ':')
		return 0;
	return make_value(want, sizeof(want), (int)writer, (int)seq) == len &&
	       !memcmp(want, v, (size_t)len);
}

static void test_concurrent_writers(void **state)
{
	struct fixture *f = *state;
	char buf[2048], cmd[512], key[MW_KEY_MAX], w[MW_KEY_MAX];
	int reads = 0, running = WRITERS, events = 0;
	time_t deadline = time(NULL) + 120;
	pid_t pids[WRITERS];

	make_value(buf, sizeof(buf), 0, 0);
	assert_int_equal(mw_keystore_write(f->ks, "/mw/race", buf, strlen(buf)), 0);
	/* Watching the key as well: temp files in its directory must not show. */
	assert_int_equal(mw_keystore_watch(f->ks, "/mw/race"), 0);
	for (int i = 0; i < WRITERS; i++) {
		pids[i] = fork();
		assert_true(pids[i] >= 0);
		if (pids[i] == 0) {
			struct mw_keystore *ks;
			char err[128], v[2048];

			if (mw_keystore_open(&ks, "local", f->root, err, sizeof(err)))
				_exit(2);
			for (int j = 0; j < WRITES; j++) {
				int n = make_value(v, sizeof(v), i + 1, j);

				if (mw_keystore_write(ks, "/mw/race", v, (size_t)n))
					_exit(3);
			}
			mw_keystore_close(ks);
			_exit(0);
		}
	}
	while (running) {
		int n = mw_keystore_read(f->ks, "/mw/race", buf, sizeof(buf));

		if (n <= 0 || !value_ok(buf, n))
			fail_msg("torn or corrupt value: %d bytes '%.60s'", n, n > 0 ? buf : "");
		reads++;
		while (mw_keystore_next_event(f->ks, key, sizeof(key), w, sizeof(w)) == 1) {
			assert_string_equal(key, "/mw/race");
			events++;
		}
		for (int i = 0; i < WRITERS; i++) {
			int status;

			if (pids[i] > 0 && waitpid(pids[i], &status, WNOHANG) == pids[i]) {
				assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
				pids[i] = 0;
				running--;
			}
		}
		if (time(NULL) > deadline) {
			for (int i = 0; i < WRITERS; i++)
				if (pids[i] > 0)
					kill(pids[i], SIGKILL);
			fail_msg("writers did not finish in time");
		}
	}
	assert_true(reads > 10);
	assert_true(events > 0);
	/* The last value is one writer's final write; no temp file is left behind. */
	assert_true(value_ok(buf, mw_keystore_read(f->ks, "/mw/race", buf, sizeof(buf))));
	assert_int_equal(strtol(strchr(buf, ':') + 1, NULL, 10), WRITES - 1);
	snprintf(cmd, sizeof(cmd), "test -z \"$(find '%s' -name '.tmp*')\"", f->root);
	assert_int_equal(system(cmd), 0); /* NOLINT(cert-env33-c): fixed command, mkdtemp path */
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
	/* The root exists but is a file. */
	assert_int_equal(mw_keystore_open(&ks, "local", "/proc/version", err, sizeof(err)), -ENOTDIR);
	assert_non_null(strstr(err, "cannot use /proc/version: Not a directory"));
	assert_int_equal(mw_keystore_open(&ks, "etcd", "/tmp", err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "unknown backend 'etcd'"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_values, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bad_keys, setup, teardown),
		cmocka_unit_test_setup_teardown(test_list_remove, setup, teardown),
		cmocka_unit_test_setup_teardown(test_watch_fd, setup, teardown),
		cmocka_unit_test_setup_teardown(test_watch_existing_key, setup, teardown),
		cmocka_unit_test_setup_teardown(test_watch_before_parents_exist, setup, teardown),
		cmocka_unit_test_setup_teardown(test_watch_prefix, setup, teardown),
		cmocka_unit_test_setup_teardown(test_unwatch, setup, teardown),
		cmocka_unit_test_setup_teardown(test_watch_directory_churn, setup, teardown),
		cmocka_unit_test_setup_teardown(test_watch_moved_directory, setup, teardown),
		cmocka_unit_test_setup_teardown(test_threads_share_no_temp_names, setup, teardown),
		cmocka_unit_test_setup_teardown(test_concurrent_writers, setup, teardown),
		cmocka_unit_test(test_open_errors),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
