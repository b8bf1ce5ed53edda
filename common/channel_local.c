/* SPDX-License-Identifier: MIT */
/* channel_local.c - local channel backend: memfd region and eventfds passed with SCM_RIGHTS */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "common/channel.h"
#include "common/channel_backend.h"

/*
 * Theory of operation (handshake, over a connected UNIX stream socket)
 *
 *   INS (join)                          PVM (offer)
 *   hello {versions, ins_id, window} -> read (<= 5 s), check magic, versions
 *                                       memfd (sealed size) + 2 eventfds
 *                                       (+ a pipe from version 2)
 *                                    <- hello {chosen version} + [memfd, efd_ins, efd_pvm
 *                                                                 (, pipe read end)]
 *   check fds (size, seals, types),
 *   map, attach
 * No common version: the PVM answers with a hello of version 0..0 and no
 * fds; both sides report the ranges.  The socket stays open afterwards: it
 * carries nothing, and EOF/HUP on it means the peer is gone.
 * The memfd is sealed against shrinking so that the INS cannot make the
 * PVM's accesses fault (SIGBUS); the INS checks the seals before mapping.
 *
 * The pipe (version 2) carries bulk stream bytes PVM -> INS by page reference:
 * mw-pvm splice()s an app's socket into it and announces the bytes with a
 * DATA_PIPE frame, mw-ins splice()s them on into the TCP socket (docs/ins-protocol.md).
 * The INS gets only the read end.  It shares the pipe's lock with the
 * writer, and can hold it: mw-pvm writes from a thread of its own, never its
 * loop (pvm/pvm_splice.c).  The write end stays in ch->pipe_fd for the PVM.
 */

#define LOCAL_NFDS 3
#define LOCAL_NFDS_PIPE 4 /* version >= 2 */
/* Room in the pipe; a larger F_SETPIPE_SZ is refused without CAP_SYS_RESOURCE. */
#define LOCAL_PIPE_SIZE (1024 * 1024)
#define LOCAL_MAX_FDS 8 /* room to receive (and close) a few surplus fds */

static int local_kick(struct mw_channel *ch)
{
	uint64_t one = 1;

	if (write(ch->kick_fd, &one, sizeof(one)) == (ssize_t)sizeof(one))
		return 0;
	/* EAGAIN: the counter is saturated, the peer is kicked already. */
	return errno == EAGAIN ? 0 : -errno;
}

static int local_ack(struct mw_channel *ch)
{
	uint64_t v;

	if (read(ch->wait_fd, &v, sizeof(v)) == (ssize_t)sizeof(v))
		return 0;
	return errno == EAGAIN ? 0 : -errno;
}

static void local_release(struct mw_channel *ch)
{
	if (ch->region)
		munmap(ch->region, ch->region_len);
	if (ch->wait_fd >= 0)
		close(ch->wait_fd);
	if (ch->kick_fd >= 0)
		close(ch->kick_fd);
	if (ch->pipe_fd >= 0)
		close(ch->pipe_fd);
	ch->region = NULL;
	ch->wait_fd = ch->kick_fd = ch->pipe_fd = -1;
}

static const struct mw_channel_ops local_ops = {
	.name = "local",
	.kick = local_kick,
	.ack = local_ack,
	.release = local_release,
};

static int64_t local_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void local_close_fds(int *fds, int n)
{
	for (int i = 0; i < n; i++)
		if (fds[i] >= 0)
			close(fds[i]);
}

/*
 * Read exactly @len bytes within the handshake timeout, collecting passed fds
 * into @fds (up to @maxfds; surplus ones are closed).  *@nfds counts them.
 * Return: 0, -ETIMEDOUT, -ECONNRESET (EOF) or -errno
 */
static int local_recv_exact(int fd, void *buf, size_t len, int *fds, int maxfds, int *nfds)
{
	int64_t deadline = local_now_ms() + MW_CHANNEL_HANDSHAKE_MS;
	union {
		char buf[CMSG_SPACE(LOCAL_MAX_FDS * sizeof(int))];
		struct cmsghdr align;
	} ctl;
	size_t got = 0;

	*nfds = 0;
	while (got < len) {
		struct pollfd pfd = { .fd = fd, .events = POLLIN };
		struct iovec iov = { .iov_base = (char *)buf + got, .iov_len = len - got };
		struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1,
				      .msg_control = ctl.buf, .msg_controllen = sizeof(ctl.buf) };
		int64_t left = deadline - local_now_ms();
		struct cmsghdr *c;
		ssize_t n;
		int pr;

		if (left <= 0)
			return -ETIMEDOUT;
		pr = poll(&pfd, 1, (int)left);
		if (pr < 0 && errno == EINTR)
			continue;
		if (pr < 0)
			return -errno;
		if (pr == 0)
			return -ETIMEDOUT;
		n = recvmsg(fd, &msg, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
		if (n < 0 && (errno == EAGAIN || errno == EINTR))
			continue;
		if (n < 0)
			return -errno;
		for (c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c)) {
			int *in = (int *)CMSG_DATA(c);
			int k = (int)((c->cmsg_len - CMSG_LEN(0)) / sizeof(int));

			if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
				continue;
			for (int i = 0; i < k; i++) {
				int v;

				memcpy(&v, in + i, sizeof(v));
				if (*nfds < maxfds)
					fds[*nfds] = v;
				else
					close(v);
				(*nfds)++;
			}
		}
		if (msg.msg_flags & MSG_CTRUNC)
			*nfds = maxfds + 1; /* lost some: report "too many" */
		if (n == 0)
			return -ECONNRESET;
		got += (size_t)n;
	}
	return 0;
}

static int local_send(int fd, const struct mw_hello *h, const int *fds, int nfds)
{
	union {
		char buf[CMSG_SPACE(LOCAL_NFDS_PIPE * sizeof(int))];
		struct cmsghdr align;
	} ctl;
	struct iovec iov = { .iov_base = (void *)h, .iov_len = sizeof(*h) };
	struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1 };
	ssize_t n;

	if (nfds) {
		struct cmsghdr *c;

		memset(&ctl, 0, sizeof(ctl));
		msg.msg_control = ctl.buf;
		msg.msg_controllen = CMSG_SPACE((size_t)nfds * sizeof(int));
		c = CMSG_FIRSTHDR(&msg);
		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_RIGHTS;
		c->cmsg_len = CMSG_LEN((size_t)nfds * sizeof(int));
		memcpy(CMSG_DATA(c), fds, (size_t)nfds * sizeof(int));
	}
	do {
		n = sendmsg(fd, &msg, MSG_NOSIGNAL);
	} while (n < 0 && errno == EINTR);
	if (n < 0)
		return -errno;
	return n == (ssize_t)sizeof(*h) ? 0 : -EIO;
}

static const char *local_recv_what(int ret)
{
	switch (ret) {
	case -ETIMEDOUT:
		return "no complete hello within 5 s";
	case -ECONNRESET:
		return "peer closed the socket during the handshake";
	default:
		return strerror(-ret);
	}
}

/*
 * The rest of a hello (window, ring size form) through the protocol's own
 * check, as the Xen backend does; after negotiate(), whose lines about
 * versions are the clearer ones.
 */
static int local_check_hello(const struct mw_hello *h, const char *who, char *err, size_t errlen)
{
	char why[96];

	if (!mw_proto_check_hello(h, why, sizeof(why)))
		return 0;
	snprintf(err, errlen, "%s hello: %s", who, why);
	return -EPROTO;
}

/**
 * mw_channel_local_offer() - PVM side of the local handshake
 * @ch:      the channel (reset here; owns @sock_fd only on success)
 * @sock_fd: connected UNIX stream socket from the INS
 * @mine:    our hello (ring_size, window, version range ...)
 * @err:     one line on failure
 * @errlen:  size of @err
 * Return: 0 or -errno (-EPROTO bad hello or no common version, -ETIMEDOUT,
 * -ECONNRESET, -EINVAL bad ring size, or a system error)
 */
int mw_channel_local_offer(struct mw_channel *ch, int sock_fd, const struct mw_hello *mine,
			   char *err, size_t errlen)
{
	struct mw_hello peer;
	int nfds, ret;

	mw_channel_reset(ch);
	ret = mw_channel_check_ring_size(mine->ring_size, err, errlen);
	if (ret)
		goto out;
	ret = local_recv_exact(sock_fd, &peer, sizeof(peer), NULL, 0, &nfds);
	if (ret)
		snprintf(err, errlen, "INS hello: %s", local_recv_what(ret));
	else
		ret = mw_channel_local_answer(ch, sock_fd, mine, &peer, err, errlen);
out:
	return ret;
}

/**
 * mw_channel_local_answer() - PVM side, second half: answer a hello already read
 * @ch:      the channel (reset here; owns @sock_fd only on success)
 * @sock_fd: connected UNIX stream socket from the INS (may be non-blocking: the
 *           reply is one small message on an empty socket, it never waits)
 * @mine:    our hello
 * @peer_hello: the INS's hello, read by the caller (an event loop reads it without blocking)
 * @err:     one line on failure
 * @errlen:  size of @err
 * Return: 0 or -errno, as mw_channel_local_offer()
 */
int mw_channel_local_answer(struct mw_channel *ch, int sock_fd, const struct mw_hello *mine,
			    const struct mw_hello *peer_hello, char *err, size_t errlen)
{
	int memfd = -1, efd_ins = -1, efd_pvm = -1, pipefd[2] = { -1, -1 }, nfds, ver, ret;
	struct mw_hello peer = *peer_hello, reply;
	void *region = MAP_FAILED;
	size_t len = 0;

	mw_channel_reset(ch);
	ret = mw_channel_check_ring_size(mine->ring_size, err, errlen);
	if (ret)
		goto fail;
	ver = mw_channel_negotiate(mine, &peer, "INS", err, errlen);
	if (ver < 0) {
		reply = *mine;
		reply.version_min = reply.version_max = 0;
		local_send(sock_fd, &reply, NULL, 0); /* best effort: tell it why we hang up */
		ret = ver;
		goto fail;
	}
	ret = local_check_hello(&peer, "INS", err, errlen);
	if (ret)
		goto fail;
	len = mw_channel_region_size(mine->ring_size);
	memfd = memfd_create("mw-channel", MFD_CLOEXEC | MFD_ALLOW_SEALING);
	if (memfd < 0 || ftruncate(memfd, (off_t)len) < 0 ||
	    fcntl(memfd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL) < 0) {
		ret = -errno;
		snprintf(err, errlen, "shared region of %zu bytes: %s", len, strerror(errno));
		goto fail;
	}
	region = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, memfd, 0);
	efd_ins = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	efd_pvm = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (region == MAP_FAILED || efd_ins < 0 || efd_pvm < 0) {
		ret = -errno;
		snprintf(err, errlen, "map region / eventfds: %s", strerror(errno));
		goto fail;
	}
	nfds = ver >= 2 ? LOCAL_NFDS_PIPE : LOCAL_NFDS;
	if (nfds == LOCAL_NFDS_PIPE) {
		if (pipe2(pipefd, O_NONBLOCK | O_CLOEXEC) < 0) {
			ret = -errno;
			snprintf(err, errlen, "data pipe: %s", strerror(errno));
			goto fail;
		}
		(void)fcntl(pipefd[1], F_SETPIPE_SZ, LOCAL_PIPE_SIZE); /* else the default */
	}
	ret = mw_channel_attach(ch, region, mine->ring_size, MW_CHANNEL_PVM, true);
	if (ret) {
		snprintf(err, errlen, "attach rings: %s", strerror(-ret));
		goto fail;
	}
	reply = *mine;
	reply.version_min = reply.version_max = (uint16_t)ver;
	reply.ins_id = peer.ins_id;
	ret = local_send(sock_fd, &reply, (int[]){ memfd, efd_ins, efd_pvm, pipefd[0] }, nfds);
	if (ret) {
		snprintf(err, errlen, "sending our hello and fds: %s", strerror(-ret));
		goto fail;
	}
	close(memfd); /* the mapping keeps the region alive */
	if (pipefd[0] >= 0)
		close(pipefd[0]); /* the INS's end */
	ch->ops = &local_ops;
	ch->sock_fd = sock_fd;
	ch->wait_fd = efd_pvm;
	ch->kick_fd = efd_ins;
	ch->pipe_fd = pipefd[1];
	ch->peer = peer;
	ch->version = (uint16_t)ver;
	return 0;
fail:
	if (region != MAP_FAILED)
		munmap(region, len);
	local_close_fds((int[]){ memfd, efd_ins, efd_pvm, pipefd[0], pipefd[1] }, 5);
	mw_channel_reset(ch);
	return ret;
}

/* Is @fd an eventfd?  Its /proc link names the anon inode type. */
static bool local_is_eventfd(int fd)
{
	char path[64], target[64];
	ssize_t n;

	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	n = readlink(path, target, sizeof(target) - 1);
	if (n < 0)
		return false;
	target[n] = 0;
	return strcmp(target, "anon_inode:[eventfd]") == 0;
}

/* The data pipe must be the read end of a pipe; it is used without blocking. */
static bool local_is_pipe_reader(int fd)
{
	struct stat st;
	int fl = fcntl(fd, F_GETFL);

	if (fstat(fd, &st) < 0 || !S_ISFIFO(st.st_mode) || fl < 0 || (fl & O_ACCMODE) != O_RDONLY)
		return false;
	return fcntl(fd, F_SETFL, fl | O_NONBLOCK) == 0;
}

/* The region fd must be a sealed memfd of exactly the size the hello announced. */
static int local_check_memfd(int fd, size_t len, char *err, size_t errlen)
{
	const int need = F_SEAL_SHRINK | F_SEAL_GROW;
	struct stat st;
	int seals;

	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		snprintf(err, errlen, "region fd is not a regular file");
		return -EPROTO;
	}
	if ((size_t)st.st_size != len) {
		snprintf(err, errlen, "region is %lld bytes, the hello implies %zu",
			 (long long)st.st_size, len);
		return -EPROTO;
	}
	seals = fcntl(fd, F_GET_SEALS);
	if (seals < 0 || (seals & need) != need) {
		snprintf(err, errlen, "region memfd is not sealed against resizing");
		return -EPROTO;
	}
	return 0;
}

/**
 * mw_channel_local_join() - INS side: send our hello, receive the region and fds
 * @ch:      the channel (reset here; owns @sock_fd only on success)
 * @sock_fd: UNIX stream socket connected to the PVM
 * @mine:    our hello
 * @err:     one line on failure
 * @errlen:  size of @err
 * Return: 0 or -errno (-EPROTO for a bad reply or fds, -ETIMEDOUT, -ECONNRESET)
 */
int mw_channel_local_join(struct mw_channel *ch, int sock_fd, const struct mw_hello *mine,
			  char *err, size_t errlen)
{
	int fds[LOCAL_MAX_FDS], nfds = 0, want_fds, ver, ret;
	void *region = MAP_FAILED;
	struct mw_hello reply = { 0 }; /* an analyzer cannot tell -errno from 0 */
	size_t len = 0;

	mw_channel_reset(ch);
	ret = local_send(sock_fd, mine, NULL, 0);
	if (ret) {
		snprintf(err, errlen, "sending our hello: %s", strerror(-ret));
		goto fail;
	}
	ret = local_recv_exact(sock_fd, &reply, sizeof(reply), fds, LOCAL_MAX_FDS, &nfds);
	if (ret) {
		snprintf(err, errlen, "PVM hello: %s", local_recv_what(ret));
		goto fail;
	}
	ver = mw_channel_negotiate(mine, &reply, "PVM", err, errlen);
	if (ver < 0) {
		ret = ver;
		goto fail;
	}
	ret = -EPROTO;
	if (reply.version_min != reply.version_max) {
		snprintf(err, errlen, "PVM did not choose one version (%u..%u)", reply.version_min,
			 reply.version_max);
		goto fail;
	}
	if (local_check_hello(&reply, "PVM", err, errlen) ||
	    mw_channel_check_ring_size(reply.ring_size, err, errlen))
		goto fail;
	want_fds = ver >= 2 ? LOCAL_NFDS_PIPE : LOCAL_NFDS;
	if (nfds != want_fds) {
		snprintf(err, errlen, "PVM passed %d fds, expected %d", nfds, want_fds);
		goto fail;
	}
	len = mw_channel_region_size(reply.ring_size);
	if (local_check_memfd(fds[0], len, err, errlen))
		goto fail;
	if (!local_is_eventfd(fds[1]) || !local_is_eventfd(fds[2])) {
		snprintf(err, errlen, "PVM passed wake-up fds that are not eventfds");
		goto fail;
	}
	if (want_fds == LOCAL_NFDS_PIPE && !local_is_pipe_reader(fds[3])) {
		snprintf(err, errlen, "PVM passed a data fd that is not a pipe's read end");
		goto fail;
	}
	region = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, fds[0], 0);
	if (region == MAP_FAILED) {
		ret = -errno;
		snprintf(err, errlen, "mapping the region: %s", strerror(errno));
		goto fail;
	}
	ret = mw_channel_attach(ch, region, reply.ring_size, MW_CHANNEL_INS, false);
	if (ret) {
		snprintf(err, errlen, "ring headers in the region are inconsistent");
		ret = -EPROTO;
		goto fail;
	}
	close(fds[0]);
	ch->ops = &local_ops;
	ch->sock_fd = sock_fd;
	ch->wait_fd = fds[1];
	ch->kick_fd = fds[2];
	ch->pipe_fd = want_fds == LOCAL_NFDS_PIPE ? fds[3] : -1;
	ch->peer = reply;
	ch->version = (uint16_t)ver;
	return 0;
fail:
	if (region != MAP_FAILED)
		munmap(region, len);
	local_close_fds(fds, nfds < LOCAL_MAX_FDS ? nfds : LOCAL_MAX_FDS);
	mw_channel_reset(ch);
	return ret;
}
