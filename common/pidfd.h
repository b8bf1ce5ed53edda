/* SPDX-License-Identifier: MIT */
/* pidfd.h - a pidfd for the process at the other end of an AF_UNIX connection */
#ifndef MW_PIDFD_H
#define MW_PIDFD_H

#include <sys/types.h>

/**
 * mw_peer_pidfd() - a pidfd for the peer process of connection @fd
 * @fd:  an AF_UNIX connection
 * @pid: its SO_PEERCRED pid, used only where SO_PEERPIDFD is missing (before Linux 6.5)
 *
 * SO_PEERPIDFD names the very process that connected, and fails once it has
 * exited (its pid may be another process's by then): no pidfd.  Only a kernel
 * without the option falls back to pidfd_open() of @pid, which cannot tell.
 * Quiet: the caller says what it cannot do without one.
 * Return: the pidfd (close-on-exec), or -1 with errno set
 */
int mw_peer_pidfd(int fd, pid_t pid);

#endif /* MW_PIDFD_H */
