/* SPDX-License-Identifier: MIT */
/* fdpass.h - one message with at most one fd passed along (SCM_RIGHTS) */
#ifndef MW_FDPASS_H
#define MW_FDPASS_H

#include <stddef.h>
#include <sys/types.h>

ssize_t mw_fdpass_send(int sock, const void *buf, size_t len, int fd, int flags);

#endif /* MW_FDPASS_H */
