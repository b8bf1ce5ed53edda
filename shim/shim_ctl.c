/* SPDX-License-Identifier: MIT */
/* shim_ctl.c - the per-thread control connection to mw-pvm: register, request/response, fork */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/fdpass.h"
#include "shim/shim.h"

/*
 * Theory of operation
 *
 * Each thread owns one SOCK_SEQPACKET connection (ctl_fd), opened on its first
 * intercepted call that needs mw-pvm, and registered with REGISTER.  One request
 * is in flight per connection, so threads never wait for each other and no
 * request ids are needed.  A failed or short exchange drops the connection; the
 * next call reconnects.  Connections are CLOEXEC (exec starts afresh), closed
 * by a thread-specific destructor when their thread ends, and all closed in a
 * fork() child (the child's pid differs: it registers on its own).  The fds of
 * all threads are kept in a small list only for that child clean-up.
 */

static __thread int ctl_fd = -1;
static __thread volatile sig_atomic_t ctl_broken; /* a hint's send failed: drop before use */
static pthread_key_t ctl_key;
static int *ctl_fds; /* every open control fd, under shim_state.lock */
static size_t ctl_nfds, ctl_cap;

static void ctl_list_add(int fd)
{
	int *n;

	pthread_mutex_lock(&shim_state.lock);
	if (ctl_nfds == ctl_cap) {
		n = realloc(ctl_fds, (ctl_cap ? ctl_cap * 2 : 16) * sizeof(*n));
		if (n) {
			ctl_fds = n;
			ctl_cap = ctl_cap ? ctl_cap * 2 : 16;
		}
	}
	if (ctl_nfds < ctl_cap)
		ctl_fds[ctl_nfds++] = fd; /* else: only a fork child would keep it open */
	pthread_mutex_unlock(&shim_state.lock);
}

static void ctl_list_del(int fd)
{
	size_t i;

	pthread_mutex_lock(&shim_state.lock);
	for (i = 0; i < ctl_nfds; i++) {
		if (ctl_fds[i] == fd) {
			ctl_fds[i] = ctl_fds[--ctl_nfds];
			break;
		}
	}
	pthread_mutex_unlock(&shim_state.lock);
}

static void ctl_drop(void)
{
	int fd = ctl_fd;

	if (fd < 0)
		return;
	ctl_fd = -1; /* first: a signal handler's hint must not reach a reused number */
	ctl_list_del(fd);
	shim_real.close(fd);
	pthread_setspecific(ctl_key, NULL);
}

static void ctl_thread_exit(void *v)
{
	int fd = (int)(intptr_t)v - 1;

	ctl_fd = -1; /* first, as ctl_drop() */
	if (fd >= 0) {
		ctl_list_del(fd);
		shim_real.close(fd);
	}
}

static void ctl_prepare(void)
{
	pthread_mutex_lock(&shim_state.lock);
}

static void ctl_parent(void)
{
	pthread_mutex_unlock(&shim_state.lock);
}

static void ctl_child(void)
{
	size_t i;

	/* Only the forking thread exists here; the lock was held across fork(). */
	for (i = 0; i < ctl_nfds; i++)
		shim_real.close(ctl_fds[i]);
	ctl_nfds = 0;
	ctl_fd = -1;
	pthread_setspecific(ctl_key, NULL);
	shim_state.registered = false;
	pthread_mutex_unlock(&shim_state.lock);
}

/**
 * shim_ctl_atfork_init() - set up the thread destructor and fork handlers (once)
 */
void shim_ctl_atfork_init(void)
{
	pthread_key_create(&ctl_key, ctl_thread_exit);
	pthread_atfork(ctl_prepare, ctl_parent, ctl_child);
}

/* Receive one response; an fd passed with it goes to *@rx_fd (if wanted), else is closed. */
static int ctl_recv(int fd, struct mw_shimctl_resp *resp, int *rx_fd, int rflags)
{
	union {
		struct cmsghdr h;
		char buf[CMSG_SPACE(sizeof(int))];
	} ctl;
	struct iovec iov = { .iov_base = resp, .iov_len = sizeof(*resp) };
	struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1 };
	struct cmsghdr *cm;
	ssize_t n;
	int got = -1;

	msg.msg_control = ctl.buf;
	msg.msg_controllen = sizeof(ctl.buf);
	do
		n = recvmsg(fd, &msg, (MSG_CMSG_CLOEXEC | MSG_DONTWAIT) & rflags);
	while (n < 0 && errno == EINTR);
	for (cm = n > 0 ? CMSG_FIRSTHDR(&msg) : NULL; cm; cm = CMSG_NXTHDR(&msg, cm)) {
		if (cm->cmsg_level == SOL_SOCKET && cm->cmsg_type == SCM_RIGHTS &&
		    cm->cmsg_len == CMSG_LEN(sizeof(int)) && got < 0)
			memcpy(&got, CMSG_DATA(cm), sizeof(int));
	}
	if (n != (ssize_t)sizeof(*resp) || !rx_fd) {
		if (got >= 0)
			shim_real.close(got);
		got = -1;
	}
	if (rx_fd)
		*rx_fd = got;
	if (n != (ssize_t)sizeof(*resp))
		return -EIO;
	resp->text[sizeof(resp->text) - 1] = '\0';
	return 0;
}

/*
 * One exchange on @fd; @resp NULL: no response due.  @app_fd (-1: none) goes
 * along (SCM_RIGHTS): holding a socket's fd is what entitles a process to act
 * on it, so mw-pvm checks it.  @rx_fd (NULL: none wanted) receives an fd that
 * comes with the response (SOCKET), close-on-exec if @rflags has
 * MSG_CMSG_CLOEXEC.  Return: 0 or -EIO.
 */
static int ctl_xfer(int fd, const struct mw_shimctl_req *req, int app_fd,
		    struct mw_shimctl_resp *resp, int *rx_fd, int rflags)
{
	ssize_t n;

	if (rx_fd)
		*rx_fd = -1;
	do
		n = mw_fdpass_send(fd, req, sizeof(*req), app_fd, MSG_NOSIGNAL);
	while (n < 0 && errno == EINTR);
	if (n != (ssize_t)sizeof(*req))
		return -EIO;
	if (!resp)
		return 0;
	return ctl_recv(fd, resp, rx_fd, rflags);
}

static int ctl_open(void)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	struct mw_shimctl_req req;
	struct mw_shimctl_resp resp;
	int fd, ret, tries;

	memcpy(sun.sun_path, shim_state.ctl_path, strlen(shim_state.ctl_path));
	fd = shim_real.socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	for (tries = 0; tries < 100; tries++) {
		ret = shim_real.connect(fd, (struct sockaddr *)&sun, sizeof(sun));
		if (!ret || errno != EINTR)
			break;
	}
	if (ret) {
		ret = errno == EISCONN ? 0 : -errno;
		if (ret)
			goto fail;
	}
	memset(&req, 0, sizeof(req));
	req.op = MW_SHIMCTL_REGISTER;
	req.arg = MW_SHIMCTL_VERSION;
	ret = ctl_xfer(fd, &req, -1, &resp, NULL, 0);
	/* A refusal (EMFILE: this uid's connections) is queued before mw-pvm closes. */
	if (ret && ctl_recv(fd, &resp, NULL, MSG_DONTWAIT) == 0 && resp.status < 0)
		ret = 0;
	if (ret)
		goto fail;
	if (resp.status) {
		ret = resp.status < 0 ? resp.status : -EPROTO;
		goto fail;
	}
	if (resp.arg <= 0) {
		ret = -EPROTO;
		goto fail;
	}
	pthread_mutex_lock(&shim_state.lock);
	shim_state.tag = resp.sock;
	shim_state.pvm_pid = resp.arg;
	shim_state.registered = true;
	pthread_mutex_unlock(&shim_state.lock);
	ctl_fd = fd;
	ctl_list_add(fd);
	pthread_setspecific(ctl_key, (void *)(intptr_t)(fd + 1));
	return 0;
fail:
	shim_real.close(fd);
	return ret;
}

/*
 * What a call whose thread has no connection returns: EMFILE when mw-pvm
 * refused it for this uid's pvm.max_connections_per_user (the app sees a
 * resource limit, as from accept() or socket()), else ECONNREFUSED.
 */
static int ctl_unready(int ret)
{
	return ret == -EMFILE ? ret : -ECONNREFUSED;
}

/**
 * shim_ctl_ready() - make sure this thread has a registered control connection
 *
 * Afterwards shim_state.tag and .pvm_pid are valid.
 * Return: 0, or -errno of the connect/registration (e.g. -ENOENT, -ECONNREFUSED)
 */
int shim_ctl_ready(void)
{
	if (ctl_broken) {
		ctl_drop(); /* then clear: a hint meanwhile fails on fd -1, marking nothing */
		ctl_broken = 0;
	}
	if (ctl_fd >= 0)
		return 0;
	return ctl_open();
}

/**
 * shim_ctl_call() - one request, one response on this thread's connection
 * @req:    the request (op, sock, ...); padding need not be zero
 * @app_fd: the app's fd of the socket the request names (-1 for SOCKET)
 * @resp:   the response
 * Return: resp->status (0 or -errno from mw-pvm), -ECONNREFUSED if mw-pvm
 *         cannot be reached (-EMFILE if it refused this uid one more
 *         connection), or -EIO if the exchange failed (connection dropped)
 */
int shim_ctl_call(struct mw_shimctl_req *req, int app_fd, struct mw_shimctl_resp *resp)
{
	int ret = shim_ctl_ready();

	if (ret)
		return ctl_unready(ret);
	ret = ctl_xfer(ctl_fd, req, app_fd, resp, NULL, 0);
	if (ret) {
		ctl_drop();
		return ret;
	}
	if (resp->status > 0)
		return -EIO;
	return resp->status;
}

/**
 * shim_ctl_socket() - SOCKET: mw-pvm answers with the app's named AF_UNIX socket
 * @req:     the SOCKET request
 * @resp:    the response (sock = the new id)
 * @cloexec: receive the fd close-on-exec (SOCK_CLOEXEC)
 * Return: the fd, or -errno from mw-pvm, -ECONNREFUSED, or -EIO (exchange
 *         failed, or a success came without an fd)
 */
int shim_ctl_socket(struct mw_shimctl_req *req, struct mw_shimctl_resp *resp, bool cloexec)
{
	int ret = shim_ctl_ready(), fd = -1;

	if (ret)
		return ctl_unready(ret);
	ret = ctl_xfer(ctl_fd, req, -1, resp, &fd, cloexec ? MSG_CMSG_CLOEXEC : 0);
	if (ret) {
		ctl_drop();
		return ret;
	}
	if (resp->status || fd < 0) {
		if (fd >= 0)
			shim_real.close(fd);
		return resp->status < 0 ? resp->status : -EIO;
	}
	return fd;
}

/**
 * shim_ctl_send() - one request that has no response (MW_SHIMCTL_F_NOREPLY)
 * @req:    the request
 * @app_fd: the app's fd of the socket it names
 * Return: 0, -ECONNREFUSED if mw-pvm cannot be reached, or -EIO
 */
int shim_ctl_send(const struct mw_shimctl_req *req, int app_fd)
{
	int ret = shim_ctl_ready();

	if (ret)
		return ctl_unready(ret);
	ret = ctl_xfer(ctl_fd, req, app_fd, NULL, NULL, 0);
	if (ret)
		ctl_drop();
	return ret;
}

/**
 * shim_ctl_hint() - tell mw-pvm that the app closed socket @sock (no response)
 * @sock: socket id
 *
 * Only over this thread's connection if it has one: close() is
 * async-signal-safe, and opening a connection takes the shim's lock and
 * allocates (a signal handler's close() on a thread without one would
 * deadlock if it interrupted either).  Without a hint, mw-pvm's sweep finds
 * the closed socket (docs/shim.md).
 * Return: 0 or -errno
 */
int shim_ctl_hint(uint64_t sock)
{
	struct mw_shimctl_req req;

	if (ctl_fd < 0 || ctl_broken)
		return 0;
	memset(&req, 0, sizeof(req));
	req.op = MW_SHIMCTL_CLOSE_HINT;
	req.sock = sock;
	/* No wait, no lock: a failed send only marks the connection for the next call. */
	if (send(ctl_fd, &req, sizeof(req), MSG_NOSIGNAL | MSG_DONTWAIT) == (ssize_t)sizeof(req))
		return 0;
	if (errno != EAGAIN && errno != EWOULDBLOCK)
		ctl_broken = 1; /* a full buffer only loses this hint */
	return -EIO;
}

/**
 * shim_ctl_wait() - a request whose response may take long, interruptible as the kernel's waits
 * @req:    the request (CONNECT_WAIT)
 * @app_fd: the app's fd of the socket it names
 * @resp:   the response
 * @ms:     give up after this long (the app's SO_SNDTIMEO); -1: no limit
 *
 * Without a limit the wait is a plain blocking recv(): a signal whose handler
 * has SA_RESTART restarts it inside the kernel, any other one interrupts it,
 * exactly as for the kernel's own connect().  With a limit a signal always
 * interrupts (as the kernel does when SO_SNDTIMEO is set).  A wait given up
 * leaves its response owed: the connection is dropped (mw-pvm forgets the
 * waiter) and the next call opens a new one.
 * Return: as shim_ctl_call(), or -EINTR, or -EINPROGRESS when @ms ran out
 */
int shim_ctl_wait(struct mw_shimctl_req *req, int app_fd, struct mw_shimctl_resp *resp, int ms)
{
	struct pollfd pfd;
	ssize_t n;
	int ret = shim_ctl_ready();

	if (ret)
		return ctl_unready(ret);
	ret = ctl_xfer(ctl_fd, req, app_fd, NULL, NULL, 0);
	if (ret)
		goto drop;
	if (ms >= 0) {
		pfd.fd = ctl_fd;
		pfd.events = POLLIN;
		n = poll(&pfd, 1, ms);
		if (n <= 0) {
			ret = n == 0 ? -EINPROGRESS : -errno;
			goto drop;
		}
	}
	n = recv(ctl_fd, resp, sizeof(*resp), 0);
	if (n != (ssize_t)sizeof(*resp)) {
		ret = n < 0 && errno == EINTR ? -EINTR : -EIO;
		goto drop;
	}
	resp->text[sizeof(resp->text) - 1] = '\0';
	return resp->status > 0 ? -EIO : resp->status;
drop:
	ctl_drop();
	return ret;
}
