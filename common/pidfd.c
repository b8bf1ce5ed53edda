/* SPDX-License-Identifier: MIT */
/* pidfd.c - a pidfd for the process at the other end of an AF_UNIX connection */
#include <errno.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "common/pidfd.h"

#ifndef SO_PEERPIDFD
#define SO_PEERPIDFD 77 /* Linux 6.5 */
#endif
#ifndef SYS_pidfd_open
#define SYS_pidfd_open 434 /* the same number on every architecture */
#endif

int mw_peer_pidfd(int fd, pid_t pid)
{
	socklen_t len = sizeof(int);
	int pidfd = -1;

	if (!getsockopt(fd, SOL_SOCKET, SO_PEERPIDFD, &pidfd, &len) && pidfd >= 0)
		return pidfd;
	/*
	 * Only a kernel without the option falls back to the pid number: one that
	 * has it fails (EINVAL) for a peer that exited, whose pid may be another
	 * process's by now.
	 */
	if (errno != ENOPROTOOPT)
		return -1;
	if (pid <= 0) {
		errno = ESRCH;
		return -1;
	}
	return (int)syscall(SYS_pidfd_open, pid, 0);
}
