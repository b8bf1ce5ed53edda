/* SPDX-License-Identifier: MIT */
/* keystore.c - keystore front end: key rules and dispatch to a backend */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/keystore.h"
#include "common/keystore_backend.h"

/**
 * mw_key_check() - validate a key (rules in keystore.h)
 * @key: the key
 *
 * A component may not start with '.': that rejects "." and "..", and keeps
 * the local backend's temp files (".tmp.*") out of the key space.
 * Return: 0 or -EINVAL
 */
int mw_key_check(const char *key)
{
	size_t len, comp = 0;

	if (!key || key[0] != '/')
		return -EINVAL;
	len = strlen(key);
	if (len < 2 || len >= MW_KEY_MAX || key[len - 1] == '/')
		return -EINVAL;
	for (const char *p = key + 1;; p++) {
		if (*p == '/' || *p == '\0') {
			if (comp == 0)
				return -EINVAL;
			if (*p == '\0')
				return 0;
			comp = 0;
			continue;
		}
		if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
		      (*p >= '0' && *p <= '9') || *p == '_' || *p == '-' || *p == '.'))
			return -EINVAL;
		if (comp == 0 && *p == '.')
			return -EINVAL;
		comp++;
	}
}

/**
 * mw_key_is_under() - is @key @prefix itself or below it?
 * @key:    a key
 * @prefix: a key, or "" for the root (everything is below it)
 * Return: 1 or 0; "/mw/a" is below "/mw", "/mwx" is not
 */
int mw_key_is_under(const char *key, const char *prefix)
{
	size_t n = strlen(prefix);

	return !strncmp(key, prefix, n) && (key[n] == '\0' || key[n] == '/');
}

int mw_keystore_open(struct mw_keystore **out, const char *backend, const char *root, char *err,
		     size_t errlen)
{
	struct mw_keystore *ks;
	int ret;

	*out = NULL;
	ks = calloc(1, sizeof(*ks));
	if (!ks) {
		snprintf(err, errlen, "keystore: out of memory");
		return -ENOMEM;
	}
	if (backend && !strcmp(backend, "local")) {
		ks->ops = &mw_keystore_local_ops;
	} else if (backend && !strcmp(backend, "xenstore")) {
		ks->ops = &mw_keystore_xen_ops;
	} else {
		snprintf(err, errlen, "keystore: unknown backend '%s' (local or xenstore)",
			 backend ? backend : "(null)");
		free(ks);
		return -EINVAL;
	}
	ret = ks->ops->open(ks, root, err, errlen);
	if (ret) {
		free(ks);
		return ret;
	}
	*out = ks;
	return 0;
}

void mw_keystore_close(struct mw_keystore *ks)
{
	if (!ks)
		return;
	ks->ops->close(ks);
	free(ks);
}

int mw_keystore_write(struct mw_keystore *ks, const char *key, const void *val, size_t len)
{
	if (mw_key_check(key))
		return -EINVAL;
	if (len > MW_KEYSTORE_VALUE_MAX || (len && !val))
		return -EINVAL;
	return ks->ops->write(ks, key, val, len);
}

int mw_keystore_read(struct mw_keystore *ks, const char *key, char *buf, size_t buflen)
{
	if (mw_key_check(key) || !buf || !buflen)
		return -EINVAL;
	return ks->ops->read(ks, key, buf, buflen);
}

int mw_keystore_remove(struct mw_keystore *ks, const char *key)
{
	if (mw_key_check(key))
		return -EINVAL;
	return ks->ops->remove(ks, key);
}

int mw_keystore_give(struct mw_keystore *ks, const char *key, unsigned domid)
{
	if (mw_key_check(key))
		return -EINVAL;
	return ks->ops->give ? ks->ops->give(ks, key, domid) : -EOPNOTSUPP;
}

int mw_keystore_domid(struct mw_keystore *ks)
{
	return ks->ops->domid ? ks->ops->domid(ks) : -EOPNOTSUPP;
}

static int cmp_names(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

int mw_keystore_list(struct mw_keystore *ks, const char *dir,
		     void (*fn)(void *arg, const char *name), void *arg)
{
	char **names = NULL;
	int count = 0, ret;

	if (mw_key_check(dir))
		return -EINVAL;
	ret = ks->ops->list(ks, dir, &names, &count);
	if (ret)
		return ret;
	if (count > 1)
		qsort(names, (size_t)count, sizeof(*names), cmp_names);
	for (int i = 0; i < count; i++) {
		if (fn)
			fn(arg, names[i]);
		free(names[i]);
	}
	free(names);
	return count;
}

int mw_keystore_watch(struct mw_keystore *ks, const char *key)
{
	return mw_key_check(key) ? -EINVAL : ks->ops->watch(ks, key);
}

int mw_keystore_unwatch(struct mw_keystore *ks, const char *key)
{
	return mw_key_check(key) ? -EINVAL : ks->ops->unwatch(ks, key);
}

int mw_keystore_fd(struct mw_keystore *ks)
{
	return ks->ops->fd(ks);
}

int mw_keystore_next_event(struct mw_keystore *ks, char *key, size_t keylen, char *watch,
			   size_t watchlen)
{
	return ks->ops->next_event(ks, key, keylen, watch, watchlen);
}
