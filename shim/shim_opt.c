/* SPDX-License-Identifier: MIT */
/* shim_opt.c - interposed getsockopt/setsockopt/getsockname/getpeername */
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <string.h>

#include "common/addr.h"
#include "shim/shim.h"

/*
 * Options split three ways.  Answered by the shim: what the app must see of a
 * TCP socket (SO_TYPE, SO_PROTOCOL, SO_DOMAIN).  Native on the AF_UNIX fd:
 * what governs the app's own blocking calls (SO_RCVTIMEO, SO_SNDTIMEO) and
 * SO_ACCEPTCONN.  Everything else belongs to the TCP socket on the INS and goes
 * to mw-pvm (SETOPT/GETOPT), which validates, records and replays it.
 */

static int opt_fail(int err)
{
	errno = err;
	return -1;
}

static int opt_native(int level, int name)
{
	return level == SOL_SOCKET &&
	       (name == SO_RCVTIMEO || name == SO_SNDTIMEO || name == SO_ACCEPTCONN);
}

static int opt_put_int(void *val, socklen_t *len, int v)
{
	if (!val || !len)
		return opt_fail(EFAULT);
	if (*len < sizeof(int))
		return opt_fail(EINVAL);
	memcpy(val, &v, sizeof(v));
	*len = sizeof(int);
	return 0;
}

/* GETNAME for a created (not accepted) socket.  Return: 0 or -errno. */
static int opt_getname(int fd, uint64_t sock, int peer, struct mw_addr *a)
{
	struct mw_shimctl_req req;
	struct mw_shimctl_resp resp;
	int ret;

	memset(&req, 0, sizeof(req));
	req.op = MW_SHIMCTL_GETNAME;
	req.sock = sock;
	req.arg = peer;
	ret = shim_ctl_call(&req, fd, &resp);
	if (!ret)
		*a = resp.addr;
	return ret;
}

static int opt_family(int fd, const struct shim_ident *id, int *family)
{
	struct mw_addr a;
	int ret = 0;

	if (id->kind == SHIM_ACCEPTED) {
		a = id->local;
	} else {
		ret = opt_getname(fd, id->id, 0, &a);
		if (ret)
			return ret;
	}
	*family = a.family == 6 ? AF_INET6 : AF_INET;
	return 0;
}

/*
 * TCP_CORK is kept here (see shim.c) and nginx toggles it twice per response:
 * it needs only "is the fd ours".  A connection this process accepted is known
 * with no system call (shim_conn_known()); any other fd costs one getsockname()
 * (shim_ident_own()) instead of shim_ident()'s two.
 */
static int opt_is_cork(int level, int name)
{
	return level == IPPROTO_TCP && name == TCP_CORK;
}

/* 1 if @fd is ours, 0 if not, -errno if it cannot be checked */
static int opt_cork_own(int fd)
{
	struct mw_sockname n;

	return shim_conn_known(fd) ? 1 : shim_ident_own(fd, &n);
}

SHIM_EXPORT int getsockopt(int fd, int level, int name, void *__restrict val,
			   socklen_t *__restrict len)
{
	struct mw_shimctl_req req;
	struct mw_shimctl_resp resp;
	struct shim_ident id;
	int ret, family;

	shim_init();
	if (opt_is_cork(level, name)) {
		ret = opt_cork_own(fd);
		if (ret < 0)
			return opt_fail(-ret);
		if (!ret)
			return shim_real.getsockopt(fd, level, name, val, len);
		return opt_put_int(val, len, shim_cork_get(fd)); /* kept here: see shim.c */
	}
	ret = shim_ident(fd, &id);
	if (ret)
		return opt_fail(-ret);
	if (id.kind == SHIM_NOT_OURS || opt_native(level, name))
		return shim_real.getsockopt(fd, level, name, val, len);
	if (level == SOL_SOCKET) {
		switch (name) {
		case SO_TYPE:
			return opt_put_int(val, len, SOCK_STREAM);
		case SO_PROTOCOL:
			return opt_put_int(val, len, IPPROTO_TCP);
		case SO_DOMAIN:
			ret = opt_family(fd, &id, &family);
			return ret ? opt_fail(-ret) : opt_put_int(val, len, family);
		case SO_PEERCRED:
			return opt_fail(ENOPROTOOPT); /* a TCP socket has none */
		default:
			break;
		}
	}
	if (!val || !len)
		return opt_fail(EFAULT);
	memset(&req, 0, sizeof(req));
	req.op = MW_SHIMCTL_GETOPT;
	req.sock = id.id;
	req.arg = level;
	req.arg2 = name;
	req.len = *len < MW_SOCKOPT_MAX ? *len : MW_SOCKOPT_MAX;
	ret = shim_ctl_call(&req, fd, &resp);
	/*
	 * mw-pvm forgets a socket once its failed connect's error has been
	 * read (CONNECT_WAIT or SO_ERROR).  The kernel then answers SO_ERROR 0:
	 * the error was reported and none is pending.
	 */
	if (ret == -ENOENT && level == SOL_SOCKET && name == SO_ERROR && id.kind == SHIM_SOCKET)
		return opt_put_int(val, len, 0);
	if (ret)
		return opt_fail(-ret);
	if (resp.len > MW_SOCKOPT_MAX)
		return opt_fail(EIO);
	/* As the kernel: never more than the caller's room, whatever length came back. */
	if (resp.len < *len)
		*len = resp.len;
	memcpy(val, resp.val, *len);
	return 0;
}

/* On/off options that need no answer on an established connection (MW_SHIMCTL_F_NOREPLY). */
static int opt_noreply(int level, int name)
{
	if (level == IPPROTO_TCP)
		return name == TCP_NODELAY || name == TCP_QUICKACK;
	return level == SOL_SOCKET && name == SO_KEEPALIVE;
}

SHIM_EXPORT int setsockopt(int fd, int level, int name, const void *val, socklen_t len)
{
	struct mw_shimctl_req req;
	struct mw_shimctl_resp resp;
	struct shim_ident id;
	int ret;

	shim_init();
	if (opt_is_cork(level, name)) {
		int on;

		ret = opt_cork_own(fd);
		if (ret < 0)
			return opt_fail(-ret);
		if (!ret)
			return shim_real.setsockopt(fd, level, name, val, len);
		if (len && !val)
			return opt_fail(EFAULT);
		if (len < sizeof(int))
			return opt_fail(EINVAL); /* as the kernel checks it */
		memcpy(&on, val, sizeof(on));
		shim_cork_set(fd, on != 0); /* kept here, not sent: see shim.c */
		return 0;
	}
	ret = shim_ident(fd, &id);
	if (ret)
		return opt_fail(-ret);
	if (id.kind == SHIM_NOT_OURS || opt_native(level, name))
		return shim_real.setsockopt(fd, level, name, val, len);
	if (len > MW_SOCKOPT_MAX)
		return opt_fail(EINVAL);
	if (len && !val)
		return opt_fail(EFAULT);
	memset(&req, 0, sizeof(req));
	req.op = MW_SHIMCTL_SETOPT;
	req.sock = id.id;
	req.arg = level;
	req.arg2 = name;
	req.len = len;
	if (len)
		memcpy(req.val, val, len);
	if (id.kind == SHIM_ACCEPTED && opt_noreply(level, name)) {
		if (len < sizeof(int))
			return opt_fail(EINVAL); /* as the kernel checks it */
		req.flags = MW_SHIMCTL_F_NOREPLY;
		ret = shim_ctl_send(&req, fd);
		return ret ? opt_fail(-ret) : 0;
	}
	ret = shim_ctl_call(&req, fd, &resp);
	return ret ? opt_fail(-ret) : 0;
}

static int opt_name(int fd, struct sockaddr *addr, socklen_t *len, int peer)
{
	struct shim_ident id;
	struct mw_addr a;
	int ret;

	shim_init();
	ret = shim_ident(fd, &id);
	if (ret)
		return opt_fail(-ret);
	if (id.kind == SHIM_NOT_OURS)
		return peer ? shim_real.getpeername(fd, addr, len)
			    : shim_real.getsockname(fd, addr, len);
	if (!addr || !len)
		return opt_fail(EFAULT);
	if (id.kind == SHIM_ACCEPTED) {
		a = peer ? id.peer : id.local;
	} else {
		ret = opt_getname(fd, id.id, peer, &a);
		if (ret)
			return opt_fail(-ret);
	}
	shim_fill_addr(&a, addr, len);
	return 0;
}

SHIM_EXPORT int getsockname(int fd, __SOCKADDR_ARG addr, socklen_t *__restrict len)
{
	return opt_name(fd, SHIM_SA(addr), len, 0);
}

SHIM_EXPORT int getpeername(int fd, __SOCKADDR_ARG addr, socklen_t *__restrict len)
{
	return opt_name(fd, SHIM_SA(addr), len, 1);
}
