/* SPDX-License-Identifier: MIT */
/* shim_socket.c - interposed socket/bind/listen/connect/accept/accept4/close */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common/addr.h"
#include "shim/shim.h"

/*
 * Theory of operation (docs/shim.md)
 *
 * socket(): a TCP socket becomes an AF_UNIX stream socket bound to an 'S' name
 * {tag, id, nonce}, created and named by mw-pvm and passed in the SOCKET
 * response; mw-pvm holds the real TCP socket on an INS.
 * connect(): CONNECT (with the fd) starts the TCP connect on the INS; mw-pvm
 * connects the fd to itself and keeps it unwritable until the outcome.
 * Blocking sockets then wait (CONNECT_WAIT, within SO_SNDTIMEO); non-blocking
 * ones return EINPROGRESS, poll writable with the outcome and read it from
 * SO_ERROR.
 * listen()/accept(): the fd listens natively; mw-pvm connects to it once per
 * TCP connection from an 'A'-named socket.  accept() keeps only connections
 * whose peer is mw-pvm (SO_PEERCRED pid) with an 'A' name of our tag: anything
 * else in the backlog is an injection attempt and is closed.
 */

static int shim_fail(int err)
{
	errno = err;
	return -1;
}

static int shim_is_tcp(int domain, int type, int protocol)
{
	if (domain != AF_INET && domain != AF_INET6)
		return 0;
	if ((type & ~(SOCK_NONBLOCK | SOCK_CLOEXEC)) != SOCK_STREAM)
		return 0;
	return protocol == 0 || protocol == IPPROTO_TCP;
}

SHIM_EXPORT int socket(int domain, int type, int protocol)
{
	struct mw_shimctl_req req;
	struct mw_shimctl_resp resp;
	int fd, ret, fl;

	shim_init();
	if (!shim_is_tcp(domain, type, protocol) || shim_state.failopen)
		return shim_real.socket(domain, type, protocol);
	ret = shim_ctl_ready();
	if (ret == -EMFILE) /* this uid holds pvm.max_connections_per_user */
		return shim_fail(EMFILE);
	if (ret) {
		shim_warn_once("cannot reach mw-pvm", -ret);
		return shim_fail(EACCES);
	}
	memset(&req, 0, sizeof(req));
	req.op = MW_SHIMCTL_SOCKET;
	req.arg = domain == AF_INET ? 4 : 6;
	/* mw-pvm creates and names the socket: nobody can hold its name first. */
	fd = shim_ctl_socket(&req, &resp, (type & SOCK_CLOEXEC) != 0);
	if (fd < 0)
		return shim_fail(-fd);
	if (type & SOCK_NONBLOCK) {
		fl = fcntl(fd, F_GETFL);
		if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK)) {
			ret = errno;
			shim_real.close(fd); /* mw-pvm sees the name free and forgets it */
			return shim_fail(ret);
		}
	}
	shim_bit_set(fd);
	return fd;
}

SHIM_EXPORT int bind(int fd, __CONST_SOCKADDR_ARG uaddr, socklen_t alen)
{
	const struct sockaddr *addr = SHIM_SA(uaddr);
	struct mw_shimctl_req req;
	struct mw_shimctl_resp resp;
	struct shim_ident id;
	int ret;

	shim_init();
	ret = shim_ident(fd, &id);
	if (ret)
		return shim_fail(-ret);
	if (id.kind == SHIM_NOT_OURS)
		return shim_real.bind(fd, addr, alen);
	if (id.kind == SHIM_ACCEPTED)
		return shim_fail(EINVAL);
	memset(&req, 0, sizeof(req));
	ret = mw_addr_from_sockaddr(&req.addr, addr, alen);
	if (ret)
		return shim_fail(-ret);
	req.op = MW_SHIMCTL_BIND;
	req.sock = id.id;
	ret = shim_ctl_call(&req, fd, &resp);
	return ret ? shim_fail(-ret) : 0;
}

SHIM_EXPORT int listen(int fd, int backlog)
{
	struct mw_shimctl_req req;
	struct mw_shimctl_resp resp;
	struct shim_ident id;
	int ret;

	shim_init();
	ret = shim_ident(fd, &id);
	if (ret)
		return shim_fail(-ret);
	if (id.kind == SHIM_NOT_OURS)
		return shim_real.listen(fd, backlog);
	if (id.kind == SHIM_ACCEPTED)
		return shim_fail(EINVAL);
	/* Our end first: mw-pvm may hand over a connection as soon as the INS listens. */
	if (shim_real.listen(fd, backlog))
		return -1;
	memset(&req, 0, sizeof(req));
	req.op = MW_SHIMCTL_LISTEN;
	req.sock = id.id;
	req.arg = backlog;
	ret = shim_ctl_call(&req, fd, &resp);
	if (ret)
		return shim_fail(-ret);
	shim_bit_set(fd);
	return 0;
}

/*
 * A blocking connect(): wait for the outcome within the app's SO_SNDTIMEO
 * (kept natively on the fd), as the kernel does: EINPROGRESS when it runs
 * out, EINTR for a signal (restarted with SA_RESTART when there is no timeout).
 */
static int shim_connect_wait(int fd, uint64_t id)
{
	struct mw_shimctl_req req;
	struct mw_shimctl_resp resp;
	struct timeval tv = { 0, 0 };
	socklen_t len = sizeof(tv);
	long long ms = -1;

	if (!shim_real.getsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, &len) &&
	    (tv.tv_sec || tv.tv_usec)) {
		ms = (long long)tv.tv_sec * 1000 + (tv.tv_usec + 999) / 1000;
		if (ms > INT_MAX)
			ms = INT_MAX;
	}
	memset(&req, 0, sizeof(req));
	req.op = MW_SHIMCTL_CONNECT_WAIT;
	req.sock = id;
	return shim_ctl_wait(&req, fd, &resp, (int)ms);
}

SHIM_EXPORT int connect(int fd, __CONST_SOCKADDR_ARG uaddr, socklen_t alen)
{
	const struct sockaddr *addr = SHIM_SA(uaddr);
	struct mw_shimctl_req req;
	struct mw_shimctl_resp resp;
	struct shim_ident id;
	int ret, fl;

	shim_init();
	ret = shim_ident(fd, &id);
	if (ret)
		return shim_fail(-ret);
	if (id.kind == SHIM_NOT_OURS)
		return shim_real.connect(fd, addr, alen);
	if (id.kind == SHIM_ACCEPTED)
		return shim_fail(EISCONN);
	memset(&req, 0, sizeof(req));
	ret = mw_addr_from_sockaddr(&req.addr, addr, alen);
	if (ret)
		return shim_fail(-ret);
	req.op = MW_SHIMCTL_CONNECT;
	req.sock = id.id;
	ret = shim_ctl_call(&req, fd, &resp);
	fl = fcntl(fd, F_GETFL);
	if (ret == -EALREADY && fl >= 0 && !(fl & O_NONBLOCK)) {
		/* As the kernel: a blocking connect() during one (after EINTR) waits on. */
		ret = shim_connect_wait(fd, id.id);
		return ret ? shim_fail(ret == -EINPROGRESS ? EALREADY : -ret) : 0;
	}
	if (ret)
		return shim_fail(-ret);
	/* mw-pvm connected the fd to itself; it polls writable with the outcome. */
	shim_bit_clear(fd);
	if (fl >= 0 && (fl & O_NONBLOCK))
		return shim_fail(EINPROGRESS);
	ret = shim_connect_wait(fd, id.id);
	return ret ? shim_fail(-ret) : 0;
}

/* Is @nfd a connection that mw-pvm handed over?  Fills @a from its 'A' name. */
static int shim_accept_ok(int nfd, const struct sockaddr_un *sun, socklen_t len,
			  struct mw_sockname *a)
{
	if (len > sizeof(*sun) || mw_sockname_decode(a, sun, len) ||
	    a->kind != MW_SOCKNAME_ACCEPTED || a->tag != shim_state.tag)
		return 0;
	return shim_peer_is_pvm(nfd);
}

#define SHIM_ACCEPT_REJECTS_MAX 1024
/* The app's end of an accepted connection (docs/shim.md, "Bulk data"). */
#define SHIM_APP_SNDBUF (1 << 20)

/* Hand a foreign connection out as the kernel would have: the address copied up to *@alen. */
static int shim_accept_foreign(int nfd, const void *from, socklen_t len, struct sockaddr *addr,
			       socklen_t *alen)
{
	if (addr && alen) {
		memcpy(addr, from, *alen < len ? *alen : len);
		*alen = len;
	}
	return nfd;
}

/*
 * accept() on a listener.  An fd whose bit says it is a shim socket not yet
 * connected (socket(), listen(), or an earlier accept() here) is not looked
 * up: the accepted connection's own name proves it ('A', our tag, mw-pvm's
 * pid), which saves nginx a getsockname() and a getpeername() per
 * connection.  Only a connection that proves nothing costs the look-up: on our
 * listener it is an injection and is dropped; behind a stale bit (the fd was
 * closed past close() and the number reused) it is someone else's and is
 * returned untouched.
 */
static int shim_accept(int fd, struct sockaddr *addr, socklen_t *alen, int flags)
{
	union {
		struct sockaddr_un un;
		struct sockaddr_storage ss;
	} from;
	struct mw_sockname a;
	struct shim_ident id;
	socklen_t len;
	int ret, nfd, fl, i;
	bool known = false; /* @fd looked up: ours */

	shim_init();
	if (!shim_bit_get(fd)) {
		ret = shim_ident(fd, &id);
		if (ret)
			return shim_fail(-ret);
		if (id.kind == SHIM_NOT_OURS)
			return shim_real.accept4(fd, addr, alen, flags);
		if (id.kind == SHIM_ACCEPTED)
			return shim_fail(EINVAL);
		known = true;
	}
	for (i = 0; i < SHIM_ACCEPT_REJECTS_MAX; i++) {
		len = sizeof(from);
		nfd = shim_real.accept4(fd, (struct sockaddr *)&from, &len, flags);
		if (nfd < 0)
			return -1; /* EAGAIN, EINVAL (not listening), EINTR... as the kernel says */
		if (shim_accept_ok(nfd, &from.un, len, &a)) {
			int sndbuf = SHIM_APP_SNDBUF;

			/* Best effort: the default only makes bulk writes smaller. */
			(void)shim_real.setsockopt(nfd, SOL_SOCKET, SO_SNDBUF, &sndbuf,
						   sizeof(sndbuf));
			if (known)
				shim_bit_set(fd); /* the next accept() needs no look-up */
			shim_bit_clear(nfd);
			shim_cork_set(nfd, false);
			shim_conn_set(nfd, true);
			shim_fill_addr(&a.peer, addr, alen);
			return nfd;
		}
		if (!known) {
			ret = shim_ident(fd, &id);
			if (!ret && id.kind == SHIM_NOT_OURS) {
				shim_bit_clear(fd); /* stale: the number is someone else's now */
				return shim_accept_foreign(nfd, &from, len, addr, alen);
			}
			if (ret) {
				shim_real.close(nfd);
				return shim_fail(-ret);
			}
			known = true;
		}
		/* Not from mw-pvm: someone tried to inject a connection.  Drop it. */
		shim_real.close(nfd);
		fl = fcntl(fd, F_GETFL);
		if (fl >= 0 && (fl & O_NONBLOCK))
			return shim_fail(ECONNABORTED);
	}
	return shim_fail(ECONNABORTED);
}

SHIM_EXPORT int accept(int fd, __SOCKADDR_ARG addr, socklen_t *__restrict alen)
{
	return shim_accept(fd, SHIM_SA(addr), alen, 0);
}

SHIM_EXPORT int accept4(int fd, __SOCKADDR_ARG addr, socklen_t *__restrict alen, int flags)
{
	return shim_accept(fd, SHIM_SA(addr), alen, flags);
}

SHIM_EXPORT int close(int fd)
{
	struct sockaddr_un sun;
	struct mw_sockname n;
	socklen_t len;
	int ret, err, probe, named, gone;

	shim_init();
	shim_cork_set(fd, false); /* one load unless it was corked */
	shim_conn_set(fd, false); /* one load unless accepted here */
	if (!shim_bit_test_clear(fd))
		return shim_real.close(fd);
	named = !shim_name_of(fd, &n) && n.kind == MW_SOCKNAME_SOCKET && shim_state.registered &&
		n.tag == shim_state.tag;
	ret = shim_real.close(fd);
	err = errno;
	if (!named)
		goto out;
	/*
	 * The hint is worth sending only if the socket is really gone, not merely
	 * this fd (dup, fork): then its abstract name is free again.
	 */
	probe = shim_real.socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (probe >= 0) {
		len = mw_sockname_encode(&n, &sun);
		gone = !shim_real.bind(probe, (struct sockaddr *)&sun, len);
		/*
		 * Release the name before hinting: mw-pvm believes a hint only if it
		 * can bind the name itself, and a probe still holding it made it
		 * ignore the hint now and then (the listener lived on: EADDRINUSE).
		 */
		shim_real.close(probe);
		if (gone)
			shim_ctl_hint(n.id);
	}
out:
	errno = err;
	return ret;
}
