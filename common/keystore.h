/* SPDX-License-Identifier: MIT */
/* keystore.h - discovery keys under /mw: local directory tree or XenStore */
#ifndef MW_KEYSTORE_H
#define MW_KEYSTORE_H

#include <stddef.h>

/*
 * Keys are absolute slash-separated paths ("/mw/pvm/netflow") of [A-Za-z0-9_.-]
 * components; "." and ".." components, empty components and keys longer than
 * MW_KEY_MAX are rejected with -EINVAL.  Values are byte strings up to
 * MW_KEYSTORE_VALUE_MAX.
 *
 * Backends (one file each): keystore_local.c maps a key to a file under a root
 * directory (writes are atomic: temp file + rename; directories 0700; watches
 * via inotify), keystore_xen.c talks to xenstored through libxenstore.
 */
#define MW_KEY_MAX 256
#define MW_KEYSTORE_VALUE_MAX 4096

struct mw_keystore;

/**
 * mw_keystore_open() - open a backend
 * @backend: "local" or "xenstore"
 * @root:    local: directory the tree lives in (created 0700); ignored by xenstore
 * @err:     one line on failure, e.g. "xenstore: no xenstored reachable (...)"
 * Return: 0 or -errno
 */
int mw_keystore_open(struct mw_keystore **ks, const char *backend, const char *root,
		     char *err, size_t errlen);
void mw_keystore_close(struct mw_keystore *ks);

/* Return: 0 or -errno. */
int mw_keystore_write(struct mw_keystore *ks, const char *key, const void *val, size_t len);

/**
 * mw_keystore_read() - read a value, NUL-terminated in @buf
 * Return: value length, -ENOENT if absent, -ENOSPC if @buflen is too small
 */
int mw_keystore_read(struct mw_keystore *ks, const char *key, char *buf, size_t buflen);

/* Remove a key and everything below it. Return: 0 (also if absent) or -errno. */
int mw_keystore_remove(struct mw_keystore *ks, const char *key);

/**
 * mw_keystore_list() - the direct children of @dir, names only, sorted
 * Return: number of children (0 if @dir is absent) or -errno; calls @fn for each
 */
int mw_keystore_list(struct mw_keystore *ks, const char *dir,
		     void (*fn)(void *arg, const char *name), void *arg);

/**
 * mw_keystore_watch() - be told when @key or anything below it changes
 * A watch on a key that does not exist yet fires when it is created (parents
 * included), so processes may start in any order.
 * Return: 0 or -errno
 */
int mw_keystore_watch(struct mw_keystore *ks, const char *key);
int mw_keystore_unwatch(struct mw_keystore *ks, const char *key);

/* A file descriptor that becomes readable when watch events are pending (for ev_io). */
int mw_keystore_fd(struct mw_keystore *ks);

/**
 * mw_keystore_next_event() - the next changed key, without blocking
 * @key: the key that changed (written, created or removed)
 * @watch: the watched prefix it matched
 * Return: 1 if an event was returned, 0 if none is pending, -errno on error
 */
int mw_keystore_next_event(struct mw_keystore *ks, char *key, size_t keylen,
			   char *watch, size_t watchlen);

/**
 * mw_keystore_give() - create @key (empty) owned by Xen domain @domid
 * The owner may read, write and create below it; other guests may not even
 * read it; dom0 may do anything (XenStore permissions).  How mw-balancer
 * admits an INS domU to /mw/ins/<domid>/ (docs/xen.md).
 * Return: 0, -EOPNOTSUPP (local backend) or -errno
 */
int mw_keystore_give(struct mw_keystore *ks, const char *key, unsigned domid);

/* Our own Xen domain id (XenStore's relative key "domid").  Return: it, -EOPNOTSUPP or -errno. */
int mw_keystore_domid(struct mw_keystore *ks);

/* Shared by the backends: validate a key.  Return: 0 or -EINVAL. */
int mw_key_check(const char *key);

#endif /* MW_KEYSTORE_H */
