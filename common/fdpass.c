/* SPDX-License-Identifier: MIT */
/* fdpass.c - one message with at most one fd passed along (SCM_RIGHTS) */
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include "common/fdpass.h"

/**
 * mw_fdpass_send() - send @len bytes of @buf on @sock, with @fd unless it is -1
 * @sock:  a connected AF_UNIX socket
 * @buf:   the message
 * @len:   its length
 * @fd:    passed with SCM_RIGHTS (the sender keeps its copy), or -1
 * @flags: sendmsg() flags (MSG_NOSIGNAL, MSG_DONTWAIT...)
 *
 * The shim compiles this file in (shim/CMakeLists.txt): it calls nothing the
 * shim interposes.
 * Return: what sendmsg() returns
 */
ssize_t mw_fdpass_send(int sock, const void *buf, size_t len, int fd, int flags)
{
	union {
		struct cmsghdr h;
		char buf[CMSG_SPACE(sizeof(int))];
	} ctl;
	struct iovec iov = { .iov_base = (void *)buf, .iov_len = len };
	struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1 };
	struct cmsghdr *cm;

	if (fd >= 0) {
		memset(&ctl, 0, sizeof(ctl));
		msg.msg_control = ctl.buf;
		msg.msg_controllen = sizeof(ctl.buf);
		cm = CMSG_FIRSTHDR(&msg);
		cm->cmsg_level = SOL_SOCKET;
		cm->cmsg_type = SCM_RIGHTS;
		cm->cmsg_len = CMSG_LEN(sizeof(int));
		memcpy(CMSG_DATA(cm), &fd, sizeof(int));
	}
	return sendmsg(sock, &msg, flags);
}
