/* SPDX-License-Identifier: MIT */
/* keystore_local.c - keystore backend: a directory tree, atomic writes, inotify watches */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/keystore.h"
#include "common/keystore_backend.h"

/*
 * Theory of operation
 *
 * Key /a/b/c is the file ROOT/a/b/c; a key with children is a directory and
 * reads as "".  A write goes to ROOT/a/b/.tmp.PID.N (O_EXCL) and is renamed over
 * the target, so a reader sees the old or the new value, never a part.  Names
 * starting with '.' are not valid key components, so temp files never show up
 * in list() or in events.
 *
 * inotify is neither recursive nor able to watch what does not exist yet.  For
 * every watched prefix we therefore watch the deepest existing ancestor and,
 * if the prefix exists, its whole subtree.  When a directory appears we watch
 * it (again: everything for every prefix, which is idempotent) and scan it, so
 * a file created between mkdir and our inotify_add_watch is still reported.
 * Events are queued as (key, prefix) pairs and handed out by next_event().
 */

#define LOCAL_MAX_WATCHES 64
#define LOCAL_MAX_DIRS 1024
#define LOCAL_QUEUE 256

struct local_event {
	char key[MW_KEY_MAX];
	char watch[MW_KEY_MAX];
};

struct local {
	char root[PATH_MAX - MW_KEY_MAX - 64];
	int ifd;
	unsigned long tmp_seq;
	char watches[LOCAL_MAX_WATCHES][MW_KEY_MAX];
	int nwatches;
	struct {
		int wd;
		char key[MW_KEY_MAX]; /* "" for the root itself */
	} dirs[LOCAL_MAX_DIRS];
	int ndirs;
	struct local_event queue[LOCAL_QUEUE];
	int qhead, qlen;
	bool overflow; /* queue was full: report every prefix once */
};

static struct local *L(struct mw_keystore *ks) { return ks->priv; }

static int path_of(struct local *l, const char *key, char *out, size_t len)
{
	int n = snprintf(out, len, "%s%s", l->root, key);

	return n < 0 || (size_t)n >= len ? -ENAMETOOLONG : 0;
}

/* mkdir -p for the parents of @path (0700). */
static int make_parents(char *path, size_t root_len)
{
	for (char *p = path + root_len + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(path, 0700) && errno != EEXIST) {
			int err = -errno;

			*p = '/';
			return err;
		}
		*p = '/';
	}
	return 0;
}

static int local_open(struct mw_keystore *ks, const char *root, char *err, size_t errlen)
{
	struct local *l;
	char tmp[PATH_MAX];
	struct stat st;

	if (!root || root[0] != '/' || strlen(root) >= sizeof(l->root) - MW_KEY_MAX) {
		snprintf(err, errlen, "keystore: root '%s' must be an absolute path", root ? root : "");
		return -EINVAL;
	}
	l = calloc(1, sizeof(*l));
	if (!l) {
		snprintf(err, errlen, "keystore: out of memory");
		return -ENOMEM;
	}
	snprintf(l->root, sizeof(l->root), "%s", root);
	while (strlen(l->root) > 1 && l->root[strlen(l->root) - 1] == '/')
		l->root[strlen(l->root) - 1] = '\0';
	snprintf(tmp, sizeof(tmp), "%s/", l->root);
	if (make_parents(tmp, 0) || (mkdir(l->root, 0700) && errno != EEXIST) ||
	    stat(l->root, &st) || !S_ISDIR(st.st_mode) || access(l->root, W_OK)) {
		snprintf(err, errlen, "keystore: cannot use %s: %s", l->root,
			 errno ? strerror(errno) : "not a directory");
		free(l);
		return -errno ? -errno : -ENOTDIR;
	}
	l->ifd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
	if (l->ifd < 0) {
		snprintf(err, errlen, "keystore: inotify: %s", strerror(errno));
		free(l);
		return -errno;
	}
	ks->priv = l;
	return 0;
}

static void local_close(struct mw_keystore *ks)
{
	close(L(ks)->ifd);
	free(L(ks));
}

static int local_write(struct mw_keystore *ks, const char *key, const void *val, size_t len)
{
	struct local *l = L(ks);
	char path[PATH_MAX], tmp[PATH_MAX + 64];
	const char *slash;
	size_t off = 0;
	int fd, ret;

	if (path_of(l, key, path, sizeof(path)))
		return -ENAMETOOLONG;
	ret = make_parents(path, strlen(l->root));
	if (ret)
		return ret;
	slash = strrchr(path, '/');
	snprintf(tmp, sizeof(tmp), "%.*s/.tmp.%d.%lu", (int)(slash - path), path, (int)getpid(),
		 l->tmp_seq++);
	fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0)
		return -errno;
	while (off < len) {
		ssize_t n = write(fd, (const char *)val + off, len - off);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			ret = n < 0 ? -errno : -EIO;
			goto fail;
		}
		off += (size_t)n;
	}
	if (close(fd)) {
		fd = -1;
		ret = -errno;
		goto fail;
	}
	fd = -1;
	if (rename(tmp, path)) {
		ret = -errno;
		goto fail;
	}
	return 0;
fail:
	if (fd >= 0)
		close(fd);
	unlink(tmp);
	return ret;
}

static int local_read(struct mw_keystore *ks, const char *key, char *buf, size_t buflen)
{
	char path[PATH_MAX];
	size_t off = 0;
	int fd;

	if (path_of(L(ks), key, path, sizeof(path)))
		return -ENAMETOOLONG;
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	for (;;) {
		ssize_t n = read(fd, buf + off, buflen - off);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			int err = errno == EISDIR ? 0 : -errno;

			close(fd);
			buf[0] = '\0';
			return err; /* a directory reads as "" */
		}
		if (n == 0)
			break;
		off += (size_t)n;
		if (off == buflen) {
			close(fd);
			return -ENOSPC;
		}
	}
	close(fd);
	buf[off] = '\0';
	return (int)off;
}

static int remove_tree(const char *path)
{
	struct stat st;
	DIR *d;
	struct dirent *de;
	int ret = 0;

	if (lstat(path, &st))
		return errno == ENOENT ? 0 : -errno;
	if (!S_ISDIR(st.st_mode))
		return unlink(path) && errno != ENOENT ? -errno : 0;
	d = opendir(path);
	if (!d)
		return -errno;
	while ((de = readdir(d))) {
		char child[PATH_MAX];

		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		if (snprintf(child, sizeof(child), "%s/%s", path, de->d_name) >= (int)sizeof(child))
			continue;
		if (!ret)
			ret = remove_tree(child);
	}
	closedir(d);
	if (!ret && rmdir(path) && errno != ENOENT)
		ret = -errno;
	return ret;
}

static int local_remove(struct mw_keystore *ks, const char *key)
{
	char path[PATH_MAX];

	if (path_of(L(ks), key, path, sizeof(path)))
		return -ENAMETOOLONG;
	return remove_tree(path);
}

static int local_list(struct mw_keystore *ks, const char *dir, char ***names, int *count)
{
	char path[PATH_MAX];
	struct dirent *de;
	char **v = NULL;
	int n = 0, cap = 0;
	DIR *d;

	if (path_of(L(ks), dir, path, sizeof(path)))
		return -ENAMETOOLONG;
	d = opendir(path);
	if (!d)
		return errno == ENOENT || errno == ENOTDIR ? 0 : -errno;
	while ((de = readdir(d))) {
		if (de->d_name[0] == '.')
			continue; /* ".", "..", temp files */
		if (n == cap) {
			char **nv = realloc(v, (size_t)(cap = cap ? cap * 2 : 16) * sizeof(*v));

			if (!nv)
				goto nomem;
			v = nv;
		}
		v[n] = strdup(de->d_name);
		if (!v[n])
			goto nomem;
		n++;
	}
	closedir(d);
	*names = v;
	*count = n;
	return 0;
nomem:
	closedir(d);
	while (n--)
		free(v[n]);
	free(v);
	return -ENOMEM;
}

static void queue_event(struct local *l, const char *key, const char *watch)
{
	struct local_event *e;

	for (int i = 0; i < l->qlen; i++) {
		e = &l->queue[(l->qhead + i) % LOCAL_QUEUE];
		if (!strcmp(e->key, key) && !strcmp(e->watch, watch))
			return; /* already pending: one "it changed" is enough */
	}
	if (l->qlen == LOCAL_QUEUE) {
		l->overflow = true;
		return;
	}
	e = &l->queue[(l->qhead + l->qlen++) % LOCAL_QUEUE];
	snprintf(e->key, sizeof(e->key), "%s", key);
	snprintf(e->watch, sizeof(e->watch), "%s", watch);
}

/* Report @key to every watch it lies under. */
static void report(struct local *l, const char *key)
{
	for (int i = 0; i < l->nwatches; i++)
		if (mw_key_is_under(key, l->watches[i]))
			queue_event(l, key, l->watches[i]);
}

static int add_dir_watch(struct local *l, const char *key)
{
	char path[PATH_MAX];
	int wd;

	if (path_of(l, key, path, sizeof(path)))
		return -ENAMETOOLONG;
	wd = inotify_add_watch(l->ifd, path,
			       IN_CREATE | IN_MOVED_TO | IN_CLOSE_WRITE | IN_DELETE |
				       IN_MOVED_FROM | IN_DELETE_SELF | IN_ONLYDIR);
	if (wd < 0)
		return -errno;
	for (int i = 0; i < l->ndirs; i++)
		if (l->dirs[i].wd == wd) {
			snprintf(l->dirs[i].key, sizeof(l->dirs[i].key), "%s", key);
			return 0;
		}
	if (l->ndirs == LOCAL_MAX_DIRS)
		return -ENOSPC;
	l->dirs[l->ndirs].wd = wd;
	snprintf(l->dirs[l->ndirs].key, sizeof(l->dirs[0].key), "%s", key);
	l->ndirs++;
	return 0;
}

/* Watch the subtree at @key ("" = root); with @announce, report what is found. */
static void watch_tree(struct local *l, const char *key, bool announce)
{
	char path[PATH_MAX];
	struct dirent *de;
	DIR *d;

	if (add_dir_watch(l, key))
		return;
	if (path_of(l, key, path, sizeof(path)) || !(d = opendir(path)))
		return;
	while ((de = readdir(d))) {
		char child[MW_KEY_MAX];

		if (de->d_name[0] == '.' ||
		    snprintf(child, sizeof(child), "%s/%s", key, de->d_name) >= (int)sizeof(child))
			continue;
		if (announce)
			report(l, child);
		if (de->d_type == DT_DIR)
			watch_tree(l, child, announce);
	}
	closedir(d);
}

/* Watch what prefix @w needs now: its deepest existing ancestor and its subtree. */
static void arm_prefix(struct local *l, const char *w, bool announce)
{
	char key[MW_KEY_MAX], path[PATH_MAX];
	struct stat st;

	snprintf(key, sizeof(key), "%s", w);
	for (;;) {
		if (!path_of(l, key, path, sizeof(path)) && !stat(path, &st)) {
			if (announce)
				report(l, key); /* it appeared while we were not watching */
			if (S_ISDIR(st.st_mode))
				watch_tree(l, key, announce);
			else {
				char *slash = strrchr(key, '/');

				*slash = '\0';
				add_dir_watch(l, key); /* the file's directory */
			}
			return;
		}
		char *slash = strrchr(key, '/');

		if (!slash)
			return;
		*slash = '\0';
		if (!key[0]) {
			add_dir_watch(l, "");
			return;
		}
	}
}

static int local_watch(struct mw_keystore *ks, const char *key)
{
	struct local *l = L(ks);

	for (int i = 0; i < l->nwatches; i++)
		if (!strcmp(l->watches[i], key))
			return 0;
	if (l->nwatches == LOCAL_MAX_WATCHES)
		return -ENOSPC;
	snprintf(l->watches[l->nwatches++], MW_KEY_MAX, "%s", key);
	arm_prefix(l, key, false);
	return 0;
}

static int local_unwatch(struct mw_keystore *ks, const char *key)
{
	struct local *l = L(ks);

	for (int i = 0; i < l->nwatches; i++)
		if (!strcmp(l->watches[i], key)) {
			memmove(l->watches[i], l->watches[i + 1],
				(size_t)(l->nwatches - i - 1) * MW_KEY_MAX);
			l->nwatches--;
			/* Drop pending events of that watch; stale inotify watches only cost
			 * events that report() now ignores. */
			for (int j = 0; j < l->qlen; j++) {
				struct local_event *e = &l->queue[(l->qhead + j) % LOCAL_QUEUE];

				if (!strcmp(e->watch, key))
					e->key[0] = '\0';
			}
			return 0;
		}
	return -ENOENT;
}

static int local_fd(struct mw_keystore *ks)
{
	return L(ks)->ifd;
}

static void handle_inotify(struct local *l, const struct inotify_event *ev)
{
	char key[MW_KEY_MAX];
	const char *dir = NULL;

	if (ev->mask & IN_Q_OVERFLOW) {
		l->overflow = true;
		return;
	}
	for (int i = 0; i < l->ndirs; i++)
		if (l->dirs[i].wd == ev->wd)
			dir = l->dirs[i].key;
	if (!dir || !ev->len || ev->name[0] == '.')
		return; /* temp files and self events; the parent reports removals */
	if (snprintf(key, sizeof(key), "%s/%s", dir, ev->name) >= (int)sizeof(key))
		return;
	report(l, key);
	if ((ev->mask & (IN_CREATE | IN_MOVED_TO)) && (ev->mask & IN_ISDIR)) {
		/* A new directory: re-arm every prefix (idempotent) and scan it. */
		for (int i = 0; i < l->nwatches; i++)
			arm_prefix(l, l->watches[i], true);
	}
}

static int local_next_event(struct mw_keystore *ks, char *key, size_t keylen, char *watch,
			    size_t watchlen)
{
	struct local *l = L(ks);
	char buf[16384] __attribute__((aligned(__alignof__(struct inotify_event))));

	for (;;) {
		ssize_t n = read(l->ifd, buf, sizeof(buf));

		if (n <= 0) {
			if (n < 0 && errno != EAGAIN && errno != EINTR)
				return -errno;
			break;
		}
		for (char *p = buf; p < buf + n;) {
			const struct inotify_event *ev = (const struct inotify_event *)p;

			handle_inotify(l, ev);
			p += sizeof(*ev) + ev->len;
		}
	}
	if (l->overflow) {
		/* Events were lost: say "changed" for every prefix, then re-arm. */
		l->overflow = false;
		l->qlen = 0;
		for (int i = 0; i < l->nwatches; i++) {
			queue_event(l, l->watches[i], l->watches[i]);
			arm_prefix(l, l->watches[i], false);
		}
	}
	while (l->qlen) {
		struct local_event *e = &l->queue[l->qhead];

		l->qhead = (l->qhead + 1) % LOCAL_QUEUE;
		l->qlen--;
		if (!e->key[0])
			continue; /* its watch was removed */
		snprintf(key, keylen, "%s", e->key);
		snprintf(watch, watchlen, "%s", e->watch);
		return 1;
	}
	return 0;
}

const struct mw_keystore_ops mw_keystore_local_ops = {
	.name = "local",
	.open = local_open,
	.close = local_close,
	.write = local_write,
	.read = local_read,
	.remove = local_remove,
	.list = local_list,
	.watch = local_watch,
	.unwatch = local_unwatch,
	.fd = local_fd,
	.next_event = local_next_event,
};
