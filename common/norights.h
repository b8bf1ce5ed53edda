/* SPDX-License-Identifier: MIT */
/* norights.h - an AF_UNIX socket whose peers may not pass it descriptors */
#ifndef MW_COMMON_NORIGHTS_H
#define MW_COMMON_NORIGHTS_H

#include <errno.h>
#include <string.h>
#include <sys/socket.h>

#include "common/log.h"

#ifndef SO_PASSRIGHTS
#define SO_PASSRIGHTS 83 /* Linux 6.16; the C library does not name it yet */
#endif

/**
 * mw_refuse_rights() - peers may not pass descriptors to @sock (SO_PASSRIGHTS 0)
 * @sock: an AF_UNIX socket we receive on; a listener's accepted sockets inherit
 *        it, so set it on the listener, or on a socket before it connects
 *
 * A descriptor passed to us and not taken (a read without a control buffer, a
 * truncated one) is closed in our process by the kernel, and that close may
 * wait: for a TCP socket's SO_LINGER peer, a FUSE file's server.  A peer that
 * never needs to pass one (an app's data connection, a Netflow or MAPI client,
 * an INS) gets EPERM from sendmsg() instead.  Kernels before 6.16 do not know
 * the option (ENOPROTOOPT): callers log it and go on.
 * Return: 0 or -errno
 */
static inline int mw_refuse_rights(int sock)
{
	int off = 0;

	return setsockopt(sock, SOL_SOCKET, SO_PASSRIGHTS, &off, sizeof(off)) ? -errno : 0;
}

/* mw_refuse_rights_or_warn() - mw_refuse_rights(), a failure logged (at a bounded rate) */
static inline void mw_refuse_rights_or_warn(int sock, const char *what)
{
	int ret = mw_refuse_rights(sock);

	if (ret)
		mw_log_ratelimited(MW_LOG_WARN,
				   "%s: peers can pass descriptors (SO_PASSRIGHTS: %s; Linux 6.16 "
				   "refuses them)",
				   what, strerror(-ret));
}

#endif /* MW_COMMON_NORIGHTS_H */
