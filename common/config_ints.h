/* SPDX-License-Identifier: MIT */
/* config_ints.h - give libconfig 1.5 every integer literal at its full width */
#ifndef MW_CONFIG_INTS_H
#define MW_CONFIG_INTS_H

#include <stddef.h>
#include <sys/types.h>

/* Room mw_config_widen_ints() may need for @len bytes of input. */
#define MW_CONFIG_WIDEN_SIZE(len) ((len) + (len) / 8 + 1)

/* Called once per integer literal that no signed 64-bit integer holds. */
typedef void (*mw_config_bad_int_fn)(void *arg, unsigned int line, const char *lit, size_t len);
/* Called once per complete @include directive: its file name as written (escapes kept). */
typedef void (*mw_config_include_fn)(void *arg, unsigned int line, const char *name, size_t len);

/**
 * mw_config_widen_ints() - append an L to every integer literal outside int32
 * @in:       the config text as read (need not be NUL-terminated; may hold NULs)
 * @len:      its length
 * @out:      the same text, each such literal followed by L; lines are unchanged
 *            (NULL: scan only, for @include)
 * @out_size: at least MW_CONFIG_WIDEN_SIZE(@len)
 * @bad:      told of each literal beyond int64 (libconfig would saturate or wrap it)
 * @include:  told of each @include (NULL: not needed)
 * @arg:      passed to @bad and @include
 *
 * libconfig 1.5 reads "4294971392" as the int 4096 and "0x80000000" as
 * -2147483648 without a word; with the L suffix it reads them as 64-bit
 * integers, which the range checks can then refuse.  The text is scanned
 * as libconfig's own scanner does: comments, strings, names and floats are
 * copied untouched.
 *
 * Return: the length written to @out, or -ERANGE after @bad was called at least
 * once, or -ENOBUFS if @out_size is too small
 */
ssize_t mw_config_widen_ints(const char *in, size_t len, char *out, size_t out_size,
			     mw_config_bad_int_fn bad, mw_config_include_fn include, void *arg);

#endif /* MW_CONFIG_INTS_H */
