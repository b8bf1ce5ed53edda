/* SPDX-License-Identifier: MIT */
/* keystore_xen.c - keystore backend: XenStore through libxenstore */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <xenstore.h>

#include "common/keystore.h"
#include "common/keystore_backend.h"

/*
 * Same keys as the local backend; XenStore paths are absolute already.  The
 * watch token is the watched prefix itself, so an event needs no table lookup
 * and each (path, token) pair is unique, as XS_UNWATCH_FILTER requires.  A
 * watch on a path that does not exist yet fires when xenstored creates it.
 * XenStore fires every watch once when it is registered: callers treat events
 * as "look again", never as "it changed for sure", which is what the local
 * backend promises too.
 */

static struct xs_handle *H(struct mw_keystore *ks) { return ks->priv; }

/**
 * mw_keystore_xen_open_error() - the one-line error for an unreachable xenstored
 * @err:    errno from xs_open() (0 is taken as ENOENT)
 * @buf:    where the line goes
 * @buflen: its size
 * Return: the negative errno mw_keystore_open() returns
 */
int mw_keystore_xen_open_error(int err, char *buf, size_t buflen)
{
	if (err <= 0)
		err = ENOENT;
	snprintf(buf, buflen,
		 "xenstore: cannot reach xenstored (%s); use keystore = \"local\" on hosts without "
		 "Xen",
		 strerror(err));
	return -err;
}

static int xen_open(struct mw_keystore *ks, const char *root, char *err, size_t errlen)
{
	struct xs_handle *h;

	(void)root;
	errno = 0;
	/* The filter makes unwatch() final: no stale events for a removed token. */
	h = xs_open(XS_UNWATCH_FILTER);
	if (!h)
		return mw_keystore_xen_open_error(errno, err, errlen);
	ks->priv = h;
	return 0;
}

static void xen_close(struct mw_keystore *ks)
{
	xs_close(H(ks));
}

static int xen_write(struct mw_keystore *ks, const char *key, const void *val, size_t len)
{
	return xs_write(H(ks), XBT_NULL, key, val, (unsigned int)len) ? 0 : -errno;
}

static int xen_read(struct mw_keystore *ks, const char *key, char *buf, size_t buflen)
{
	unsigned int len;
	char *v = xs_read(H(ks), XBT_NULL, key, &len);

	if (!v)
		return -errno;
	if (len >= buflen) {
		free(v);
		return -ENOSPC;
	}
	memcpy(buf, v, len);
	buf[len] = '\0';
	free(v);
	return (int)len;
}

static int xen_remove(struct mw_keystore *ks, const char *key)
{
	return xs_rm(H(ks), XBT_NULL, key) || errno == ENOENT ? 0 : -errno;
}

static int xen_list(struct mw_keystore *ks, const char *dir, char ***names, int *count)
{
	unsigned int n;
	char **v = xs_directory(H(ks), XBT_NULL, dir, &n);
	char **out;

	*names = NULL;
	*count = 0;
	if (!v)
		return errno == ENOENT ? 0 : -errno;
	/* xs_directory returns one allocation; the front end frees each name. */
	out = calloc(n ? n : 1, sizeof(*out));
	if (!out) {
		free(v);
		return -ENOMEM;
	}
	for (unsigned int i = 0; i < n; i++) {
		out[i] = strdup(v[i]);
		if (!out[i]) {
			while (i--)
				free(out[i]);
			free(out);
			free(v);
			return -ENOMEM;
		}
	}
	free(v);
	*names = out;
	*count = (int)n;
	return 0;
}

static int xen_watch(struct mw_keystore *ks, const char *key)
{
	return xs_watch(H(ks), key, key) ? 0 : -errno;
}

static int xen_unwatch(struct mw_keystore *ks, const char *key)
{
	return xs_unwatch(H(ks), key, key) ? 0 : -errno;
}

static int xen_fd(struct mw_keystore *ks)
{
	return xs_fileno(H(ks));
}

/**
 * mw_keystore_xen_event() - turn one xs_check_watch() vector into (key, watch)
 * Return: 1, or -EBADMSG if the vector is not a well-formed event for a valid key
 */
int mw_keystore_xen_event(char **vec, char *key, size_t keylen, char *watch, size_t watchlen)
{
	if (!vec || !vec[XS_WATCH_PATH] || !vec[XS_WATCH_TOKEN] ||
	    mw_key_check(vec[XS_WATCH_PATH]) || mw_key_check(vec[XS_WATCH_TOKEN]) ||
	    !mw_key_is_under(vec[XS_WATCH_PATH], vec[XS_WATCH_TOKEN]))
		return -EBADMSG;
	snprintf(key, keylen, "%s", vec[XS_WATCH_PATH]);
	snprintf(watch, watchlen, "%s", vec[XS_WATCH_TOKEN]);
	return 1;
}

static int xen_next_event(struct mw_keystore *ks, char *key, size_t keylen, char *watch,
			  size_t watchlen)
{
	for (;;) {
		char **vec = xs_check_watch(H(ks));
		int ret;

		if (!vec)
			return errno == EAGAIN ? 0 : -errno;
		ret = mw_keystore_xen_event(vec, key, keylen, watch, watchlen);
		free(vec);
		if (ret == 1)
			return 1;
		/* A malformed event (not ours): skip it. */
	}
}

/* Create @key owned by @domid: it reads and writes there, other guests see nothing. */
static int xen_give(struct mw_keystore *ks, const char *key, unsigned domid)
{
	struct xs_permissions perm = { .id = domid, .perms = XS_PERM_NONE };

	if (!xs_write(H(ks), XBT_NULL, key, "", 0))
		return -errno;
	return xs_set_permissions(H(ks), XBT_NULL, key, &perm, 1) ? 0 : -errno;
}

/* "domid" relative to our home /local/domain/<domid>: written by the toolstack, trusted. */
static int xen_domid(struct mw_keystore *ks)
{
	char buf[16], *end;
	int ret = xen_read(ks, "domid", buf, sizeof(buf));
	long v;

	if (ret < 0)
		return ret;
	errno = 0;
	v = strtol(buf, &end, 10);
	return errno || end == buf || *end || v < 0 || v > 0x7fef ? -EINVAL : (int)v;
}

const struct mw_keystore_ops mw_keystore_xen_ops = {
	.name = "xenstore",
	.open = xen_open,
	.close = xen_close,
	.write = xen_write,
	.read = xen_read,
	.remove = xen_remove,
	.list = xen_list,
	.watch = xen_watch,
	.unwatch = xen_unwatch,
	.fd = xen_fd,
	.next_event = xen_next_event,
	.give = xen_give,
	.domid = xen_domid,
};
