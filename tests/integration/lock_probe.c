/* SPDX-License-Identifier: MIT */
/* lock_probe.c - test harness: pass mw-pvm a TCP socket whose lock another thread holds */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/userfaultfd.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <unistd.h>

#include "common/fdpass.h"
#include "common/shimctl.h"

/*
 * Usage: lock_probe CTL_SOCKET SECS
 *
 * A local user can make one of its threads sleep inside send() on a TCP socket while
 * the kernel holds that socket's lock: the bytes to send come from memory whose page
 * fault nobody answers (a file on the user's own FUSE mount; here, as the stand-in
 * that needs no FUSE server, an anonymous page registered with userfaultfd, which
 * this harness, run as root, may handle in the kernel's copy).  Whoever then calls a
 * locking setsockopt() on that socket sleeps until the fault is answered.  This
 * connects a TCP socket to a listener of its own on loopback, starts the send,
 * waits for its fault ("holding"), registers with mw-pvm's control socket
 * CTL_SOCKET and passes it the socket with the next request ("passed"), holds the fault SECS
 * seconds, answers it and exits ("released").  Exit 1 on a setup failure.
 */

static int sock_fd;
static void *page;

static void *sender(void *arg)
{
	(void)arg;
	(void)!send(sock_fd, page, 4096, 0); /* faults on the page: sleeps holding the lock */
	return NULL;
}

static int fail(const char *what)
{
	printf("lock_probe: %s: %s\n", what, strerror(errno));
	return 1;
}

/* Register with mw-pvm's control socket @path (as the shim does), then send it @fd. */
static int pass_fd(const char *path, int fd)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	struct mw_shimctl_req req = { .op = MW_SHIMCTL_REGISTER, .arg = MW_SHIMCTL_VERSION };
	struct mw_shimctl_resp resp;
	int c = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);

	if (c < 0 || strlen(path) >= sizeof(sun.sun_path))
		return -1;
	memcpy(sun.sun_path, path, strlen(path));
	if (connect(c, (struct sockaddr *)&sun, sizeof(sun)) ||
	    send(c, &req, sizeof(req), 0) != (ssize_t)sizeof(req) ||
	    recv(c, &resp, sizeof(resp), 0) != (ssize_t)sizeof(resp) || resp.status)
		return -1;
	req = (struct mw_shimctl_req){ .op = MW_SHIMCTL_GETNAME, .sock = resp.sock };
	return mw_fdpass_send(c, &req, sizeof(req), fd, 0) == (ssize_t)sizeof(req) ? c : -1;
}

int main(int argc, char **argv)
{
	struct sockaddr_in sin = { .sin_family = AF_INET,
				   .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	struct uffdio_api api = { .api = UFFD_API };
	struct uffdio_register reg = { 0 };
	struct uffdio_zeropage zp = { 0 };
	struct uffd_msg m;
	socklen_t sl = sizeof(sin);
	struct pollfd pfd;
	pthread_t th;
	int uffd, lfd, ctl;

	if (argc != 3) {
		fprintf(stderr, "usage: lock_probe CTL_SOCKET SECS\n");
		return 1;
	}
	lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	sock_fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (lfd < 0 || sock_fd < 0 || bind(lfd, (struct sockaddr *)&sin, sizeof(sin)) ||
	    listen(lfd, 4) || getsockname(lfd, (struct sockaddr *)&sin, &sl) ||
	    connect(sock_fd, (struct sockaddr *)&sin, sizeof(sin)))
		return fail("loopback TCP connection");
	uffd = (int)syscall(SYS_userfaultfd, O_CLOEXEC);
	if (uffd < 0 || ioctl(uffd, UFFDIO_API, &api))
		return fail("userfaultfd");
	page = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (page == MAP_FAILED)
		return fail("mmap");
	reg.range.start = (uintptr_t)page;
	reg.range.len = 4096;
	reg.mode = UFFDIO_REGISTER_MODE_MISSING;
	if (ioctl(uffd, UFFDIO_REGISTER, &reg))
		return fail("UFFDIO_REGISTER");
	if (pthread_create(&th, NULL, sender, NULL))
		return fail("pthread_create");
	pfd = (struct pollfd){ .fd = uffd, .events = POLLIN };
	if (poll(&pfd, 1, 5000) != 1 || read(uffd, &m, sizeof(m)) != (ssize_t)sizeof(m) ||
	    m.event != UFFD_EVENT_PAGEFAULT)
		return fail("the send's page fault");
	printf("holding\n");
	fflush(stdout);
	ctl = pass_fd(argv[1], sock_fd);
	if (ctl < 0)
		return fail("passing the socket to mw-pvm");
	printf("passed\n");
	fflush(stdout);
	sleep((unsigned)strtoul(argv[2], NULL, 10));
	zp.range.start = m.arg.pagefault.address & ~(uint64_t)4095;
	zp.range.len = 4096;
	if (ioctl(uffd, UFFDIO_ZEROPAGE, &zp))
		return fail("UFFDIO_ZEROPAGE");
	pthread_join(th, NULL);
	printf("released\n");
	fflush(stdout);
	close(ctl);
	return 0;
}
