/* SPDX-License-Identifier: MIT */
/* keystore_backend.h - the operations each keystore backend provides (one file each) */
#ifndef MW_KEYSTORE_BACKEND_H
#define MW_KEYSTORE_BACKEND_H

#include <stddef.h>

struct mw_keystore;

/* Each call gets a key already checked with mw_key_check(). */
struct mw_keystore_ops {
	const char *name;
	int (*open)(struct mw_keystore *ks, const char *root, char *err, size_t errlen);
	void (*close)(struct mw_keystore *ks);
	int (*write)(struct mw_keystore *ks, const char *key, const void *val, size_t len);
	int (*read)(struct mw_keystore *ks, const char *key, char *buf, size_t buflen);
	int (*remove)(struct mw_keystore *ks, const char *key);
	int (*list)(struct mw_keystore *ks, const char *dir, char ***names, int *count);
	int (*watch)(struct mw_keystore *ks, const char *key);
	int (*unwatch)(struct mw_keystore *ks, const char *key);
	int (*fd)(struct mw_keystore *ks);
	int (*next_event)(struct mw_keystore *ks, char *key, size_t keylen, char *watch,
			  size_t watchlen);
	/* Optional (NULL: -EOPNOTSUPP): create @key, owned by domain @domid. */
	int (*give)(struct mw_keystore *ks, const char *key, unsigned domid);
	/* Optional (NULL: -EOPNOTSUPP): our own domain id. */
	int (*domid)(struct mw_keystore *ks);
};

struct mw_keystore {
	const struct mw_keystore_ops *ops;
	void *priv;
};

extern const struct mw_keystore_ops mw_keystore_local_ops;
extern const struct mw_keystore_ops mw_keystore_xen_ops;

/* True if @key equals @prefix or lies below it ("/mw/a" is below "/mw", not "/mwx"). */
int mw_key_is_under(const char *key, const char *prefix);

/* Pure helpers of the backends, exported for their tests and fuzz targets. */
int mw_keystore_local_path(const char *root, const char *key, char *out, size_t outlen);
int mw_keystore_xen_event(char **vec, char *key, size_t keylen, char *watch, size_t watchlen);
int mw_keystore_xen_open_error(int err, char *buf, size_t buflen);

#endif /* MW_KEYSTORE_BACKEND_H */
