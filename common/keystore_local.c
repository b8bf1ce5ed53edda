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
 * reads as "".  A write goes to ROOT/a/b/.tmp.PID.N (O_EXCL, N unique in the
 * process) and is renamed over the target, so a reader sees the old or the new
 * value, never a part.  Names starting with '.' are not valid key components,
 * so temp files never show up in list() or in events.
 *
 * inotify is neither recursive nor able to watch what does not exist yet.  For
 * every watched key W we therefore watch each existing ancestor directory of W
 * (the root always) and, if W is a directory, its whole subtree.  A watch is
 * added before the directory is looked into, so nothing created in between is
 * missed.  Per inotify event:
 *   - a name in a watched directory becomes the key DIR/NAME and is reported
 *     to every W it lies under (temp files and invalid names are dropped);
 *   - a new directory K under some W: watch and scan K's subtree, reporting
 *     what is already in it (written between mkdir and our add_watch);
 *   - a new directory K above some W: arm W again (walk down, report W if it
 *     exists now);
 *   - a directory K above some W removed or moved away: report W (it is gone);
 *     watches of a moved subtree are dropped, since their paths are stale;
 *   - IN_IGNORED: the kernel dropped a watch, so drop our table entry;
 *   - IN_Q_OVERFLOW (or our queue full): every W reports itself once and is
 *     armed again.
 * Events are queued as (key, W) pairs, deduplicated while pending, and handed
 * out by next_event().  unwatch() removes the inotify watches no remaining W
 * needs.
 */

#define LOCAL_MAX_WATCHES 64
#define LOCAL_QUEUE 256
#define LOCAL_TMP_TRIES 16

struct local_event {
	char key[MW_KEY_MAX];
	char watch[MW_KEY_MAX];
};

struct local_dir {
	int wd;
	char key[MW_KEY_MAX]; /* "" for the root itself */
};

struct local {
	char root[PATH_MAX - MW_KEY_MAX - 64];
	size_t rootlen;
	int ifd;
	char watches[LOCAL_MAX_WATCHES][MW_KEY_MAX];
	int nwatches;
	struct local_dir *dirs;
	int ndirs, capdirs;
	struct local_event queue[LOCAL_QUEUE];
	int qhead, qlen;
	bool overflow; /* events were lost: report every prefix once */
};

/* Temp names must differ between handles of one process (threads), not only per handle. */
static unsigned long local_tmp_seq;

static struct local *L(struct mw_keystore *ks) { return ks->priv; }

/**
 * mw_keystore_local_path() - the file that holds @key under @root
 * @root: the store's root directory, without a trailing slash
 * @key:  a key; checked with mw_key_check(), so the result never leaves @root
 * @out:  the path, "@root@key"
 * Return: 0, -EINVAL for a bad key, -ENAMETOOLONG if @outlen is too small
 */
int mw_keystore_local_path(const char *root, const char *key, char *out, size_t outlen)
{
	int n;

	if (mw_key_check(key))
		return -EINVAL;
	n = snprintf(out, outlen, "%s%s", root, key);
	return n < 0 || (size_t)n >= outlen ? -ENAMETOOLONG : 0;
}

/* Like mw_keystore_local_path() but also for "" (the root) and internal keys. */
static int path_of(struct local *l, const char *key, char *out, size_t len)
{
	int n = snprintf(out, len, "%s%s", l->root, key);

	return n < 0 || (size_t)n >= len ? -ENAMETOOLONG : 0;
}

/* mkdir -p for the parents of @path below its first @root_len bytes (0700). */
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
	char tmp[PATH_MAX];
	struct local *l;
	struct stat st;
	int ret;

	if (!root || root[0] != '/' || strlen(root) >= sizeof(l->root) - 1) {
		snprintf(err, errlen, "keystore: root '%s' must be an absolute path shorter than %zu",
			 root ? root : "", sizeof(l->root) - 1);
		return -EINVAL;
	}
	l = calloc(1, sizeof(*l));
	if (!l) {
		snprintf(err, errlen, "keystore: out of memory");
		return -ENOMEM;
	}
	l->ifd = -1;
	snprintf(l->root, sizeof(l->root), "%s", root);
	l->rootlen = strlen(l->root);
	while (l->rootlen > 1 && l->root[l->rootlen - 1] == '/')
		l->root[--l->rootlen] = '\0';
	snprintf(tmp, sizeof(tmp), "%s/", l->root);
	ret = make_parents(tmp, 0);
	if (ret)
		goto fail;
	if (stat(l->root, &st)) {
		ret = -errno;
		goto fail;
	}
	if (!S_ISDIR(st.st_mode)) {
		ret = -ENOTDIR;
		goto fail;
	}
	if (access(l->root, W_OK | X_OK)) {
		ret = -errno;
		goto fail;
	}
	l->ifd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
	if (l->ifd < 0) {
		ret = -errno;
		snprintf(err, errlen, "keystore: inotify: %s", strerror(-ret));
		free(l);
		return ret;
	}
	ks->priv = l;
	return 0;
fail:
	snprintf(err, errlen, "keystore: cannot use %s: %s", l->root, strerror(-ret));
	free(l);
	return ret;
}

static void local_close(struct mw_keystore *ks)
{
	struct local *l = L(ks);

	close(l->ifd);
	free(l->dirs);
	free(l);
}

/* Create a temp file next to @path; its name is in @tmp. Return: fd or -errno. */
static int open_tmp(const char *path, char *tmp, size_t tmplen)
{
	const char *slash = strrchr(path, '/');

	for (int i = 0; i < LOCAL_TMP_TRIES; i++) {
		unsigned long seq = __atomic_fetch_add(&local_tmp_seq, 1, __ATOMIC_RELAXED);
		int fd, n;

		n = snprintf(tmp, tmplen, "%.*s/.tmp.%d.%lu", (int)(slash - path), path,
			     (int)getpid(), seq);
		if (n < 0 || (size_t)n >= tmplen)
			return -ENAMETOOLONG;
		fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
		if (fd >= 0 || errno != EEXIST)
			return fd >= 0 ? fd : -errno;
		/* A crashed writer with our recycled pid left one behind: next number. */
	}
	return -EEXIST;
}

static int local_write(struct mw_keystore *ks, const char *key, const void *val, size_t len)
{
	struct local *l = L(ks);
	char path[PATH_MAX], tmp[PATH_MAX + 64];
	size_t off = 0;
	int fd, ret;

	ret = path_of(l, key, path, sizeof(path));
	if (ret)
		return ret;
	ret = make_parents(path, l->rootlen);
	if (ret)
		return ret;
	fd = open_tmp(path, tmp, sizeof(tmp));
	if (fd < 0)
		return fd;
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
	ret = close(fd) ? -errno : 0;
	fd = -1;
	if (ret)
		goto fail;
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
	int fd, ret;

	ret = path_of(L(ks), key, path, sizeof(path));
	if (ret)
		return ret;
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return errno == ENOTDIR ? -ENOENT : -errno; /* a parent is a value */
	for (;;) {
		ssize_t n = read(fd, buf + off, buflen - off);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			ret = errno == EISDIR ? 0 : -errno; /* a directory reads as "" */
			off = 0;
			break;
		}
		if (n == 0) {
			ret = (int)off;
			break;
		}
		off += (size_t)n;
		if (off == buflen) {
			ret = -ENOSPC; /* no room left for the NUL */
			off = 0;
			break;
		}
	}
	close(fd);
	buf[off] = '\0';
	return ret;
}

static int remove_tree(const char *path)
{
	struct dirent *de;
	struct stat st;
	int ret = 0;
	DIR *d;

	if (lstat(path, &st))
		return errno == ENOENT || errno == ENOTDIR ? 0 : -errno;
	if (!S_ISDIR(st.st_mode))
		return unlink(path) && errno != ENOENT ? -errno : 0;
	d = opendir(path);
	if (!d)
		return errno == ENOENT ? 0 : -errno;
	while (!ret && (de = readdir(d))) {
		char child[PATH_MAX];

		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		if (snprintf(child, sizeof(child), "%s/%s", path, de->d_name) >= (int)sizeof(child))
			ret = -ENAMETOOLONG;
		else
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
	int ret = path_of(L(ks), key, path, sizeof(path));

	return ret ? ret : remove_tree(path);
}

static int local_list(struct mw_keystore *ks, const char *dir, char ***names, int *count)
{
	char path[PATH_MAX];
	struct dirent *de;
	char **v = NULL;
	int n = 0, cap = 0, ret;
	DIR *d;

	ret = path_of(L(ks), dir, path, sizeof(path));
	if (ret)
		return ret;
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

/* Does watch @w need an inotify watch on directory @dir ("" = root)? */
static bool dir_needed_by(const char *dir, const char *w)
{
	/* Its own subtree, or an ancestor (the root is everyone's ancestor). */
	return mw_key_is_under(dir, w) || (strcmp(dir, w) && mw_key_is_under(w, dir));
}

static void drop_dir(struct local *l, int i, bool rm_watch)
{
	if (rm_watch)
		inotify_rm_watch(l->ifd, l->dirs[i].wd);
	l->dirs[i] = l->dirs[--l->ndirs];
}

static int add_dir_watch(struct local *l, const char *key)
{
	char path[PATH_MAX];
	int wd, ret;

	ret = path_of(l, key, path, sizeof(path));
	if (ret)
		return ret;
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
	if (l->ndirs == l->capdirs) {
		int cap = l->capdirs ? l->capdirs * 2 : 16;
		struct local_dir *nd = realloc(l->dirs, (size_t)cap * sizeof(*nd));

		if (!nd) {
			inotify_rm_watch(l->ifd, wd);
			return -ENOMEM;
		}
		l->dirs = nd;
		l->capdirs = cap;
	}
	l->dirs[l->ndirs].wd = wd;
	snprintf(l->dirs[l->ndirs].key, sizeof(l->dirs[0].key), "%s", key);
	l->ndirs++;
	return 0;
}

/*
 * Watch the subtree at directory @key; with @announce, report what is found
 * (it was created before our watch could see it).  Return: 0 or the first error.
 */
static int watch_tree(struct local *l, const char *key, bool announce, int depth)
{
	char path[PATH_MAX];
	struct dirent *de;
	int ret;
	DIR *d;

	if (depth > MW_KEY_MAX / 2)
		return -ELOOP; /* deeper than any valid key */
	ret = add_dir_watch(l, key);
	if (ret)
		return ret == -ENOENT || ret == -ENOTDIR ? 0 : ret; /* gone again: parent reports */
	if (path_of(l, key, path, sizeof(path)) || !(d = opendir(path)))
		return 0;
	while ((de = readdir(d))) {
		char child[MW_KEY_MAX];

		if (de->d_name[0] == '.' ||
		    snprintf(child, sizeof(child), "%s/%s", key, de->d_name) >= (int)sizeof(child) ||
		    mw_key_check(child))
			continue;
		if (announce)
			report(l, child);
		if (de->d_type == DT_DIR) {
			int r = watch_tree(l, child, announce, depth + 1);

			if (r && !ret)
				ret = r;
		}
	}
	closedir(d);
	return ret;
}

/*
 * Watch what @w needs now: every existing ancestor (root first, each watched
 * before we look inside it) and, if @w exists and is a directory, its subtree.
 * With @announce, report @w and its contents if they exist.
 * Return: 0 or -errno from inotify (e.g. -ENOSPC: fs.inotify.max_user_watches).
 */
static int arm_prefix(struct local *l, const char *w, bool announce)
{
	char key[MW_KEY_MAX], path[PATH_MAX];
	struct stat st;
	int ret;

	ret = add_dir_watch(l, "");
	if (ret)
		return ret;
	snprintf(key, sizeof(key), "%s", w);
	for (char *p = key + 1;; p++) {
		bool last = *p == '\0';

		if (*p != '/' && !last)
			continue;
		*p = '\0';
		if (path_of(l, key, path, sizeof(path)) || stat(path, &st))
			return 0; /* not there yet: its parent's watch will tell us */
		if (last) {
			if (announce)
				report(l, key);
			return S_ISDIR(st.st_mode) ? watch_tree(l, key, announce, 0) : 0;
		}
		if (!S_ISDIR(st.st_mode))
			return 0;
		ret = add_dir_watch(l, key);
		if (ret)
			return ret == -ENOENT || ret == -ENOTDIR ? 0 : ret;
		*p = '/';
	}
}

static int local_watch(struct mw_keystore *ks, const char *key)
{
	struct local *l = L(ks);
	int ret;

	for (int i = 0; i < l->nwatches; i++)
		if (!strcmp(l->watches[i], key))
			return 0;
	if (l->nwatches == LOCAL_MAX_WATCHES)
		return -ENOSPC;
	snprintf(l->watches[l->nwatches++], MW_KEY_MAX, "%s", key);
	ret = arm_prefix(l, key, false);
	if (ret)
		l->nwatches--; /* cannot promise events for it */
	return ret;
}

static int local_unwatch(struct mw_keystore *ks, const char *key)
{
	struct local *l = L(ks);
	int i;

	for (i = 0; i < l->nwatches; i++)
		if (!strcmp(l->watches[i], key))
			break;
	if (i == l->nwatches)
		return -ENOENT;
	memmove(l->watches[i], l->watches[i + 1], (size_t)(l->nwatches - i - 1) * MW_KEY_MAX);
	l->nwatches--;
	/* Pending events of that watch are void. */
	for (int j = 0; j < l->qlen; j++) {
		struct local_event *e = &l->queue[(l->qhead + j) % LOCAL_QUEUE];

		if (!strcmp(e->watch, key))
			e->key[0] = '\0';
	}
	/* Directories no remaining watch needs stop costing events. */
	for (int d = l->ndirs - 1; d >= 0; d--) {
		bool needed = false;

		for (int w = 0; w < l->nwatches && !needed; w++)
			needed = dir_needed_by(l->dirs[d].key, l->watches[w]);
		if (!needed)
			drop_dir(l, d, true);
	}
	return 0;
}

static int local_fd(struct mw_keystore *ks)
{
	return L(ks)->ifd;
}

/* A directory appeared at @key (created or moved in). */
static void dir_appeared(struct local *l, const char *key)
{
	bool scanned = false;

	for (int i = 0; i < l->nwatches; i++) {
		if (mw_key_is_under(key, l->watches[i])) {
			if (!scanned && watch_tree(l, key, true, 0))
				l->overflow = true; /* cannot watch it: say "look again" */
			scanned = true;
		} else if (mw_key_is_under(l->watches[i], key)) {
			if (arm_prefix(l, l->watches[i], true))
				l->overflow = true;
		}
	}
}

/* A directory at @key was removed or moved away. */
static void dir_vanished(struct local *l, const char *key, bool moved)
{
	/* Watched keys below it are gone too; report them by name. */
	for (int i = 0; i < l->nwatches; i++)
		if (strcmp(l->watches[i], key) && mw_key_is_under(l->watches[i], key))
			queue_event(l, l->watches[i], l->watches[i]);
	/* A moved subtree keeps its inotify watches under a path we no longer know. */
	if (moved)
		for (int d = l->ndirs - 1; d >= 0; d--)
			if (mw_key_is_under(l->dirs[d].key, key))
				drop_dir(l, d, true);
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
		if (l->dirs[i].wd == ev->wd) {
			if (ev->mask & IN_IGNORED) {
				drop_dir(l, i, false); /* the kernel dropped it (directory gone) */
				return;
			}
			dir = l->dirs[i].key;
			break;
		}
	if (!dir || !ev->len || ev->name[0] == '.')
		return; /* temp files and self events; the parent reports removals */
	if (snprintf(key, sizeof(key), "%s/%s", dir, ev->name) >= (int)sizeof(key) ||
	    mw_key_check(key))
		return; /* not a key: someone else's file */
	report(l, key);
	if (!(ev->mask & IN_ISDIR))
		return;
	if (ev->mask & (IN_CREATE | IN_MOVED_TO))
		dir_appeared(l, key);
	else if (ev->mask & (IN_DELETE | IN_MOVED_FROM))
		dir_vanished(l, key, ev->mask & IN_MOVED_FROM);
}

static int local_next_event(struct mw_keystore *ks, char *key, size_t keylen, char *watch,
			    size_t watchlen)
{
	struct local *l = L(ks);
	char buf[16384] __attribute__((aligned(__alignof__(struct inotify_event))));

	/* Bounded: a non-blocking fd runs dry, and each read consumes events. */
	for (;;) {
		ssize_t n = read(l->ifd, buf, sizeof(buf));

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			if (n < 0 && errno != EAGAIN)
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
