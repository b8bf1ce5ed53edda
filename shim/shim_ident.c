/* SPDX-License-Identifier: MIT */
/* shim_ident.c - tell the shim's sockets from all other fds by their abstract names */
#include <errno.h>
#include <string.h>

#include "common/addr.h"
#include "shim/shim.h"

/*
 * The kernel keeps the identity: a shim socket is bound to an 'S' name with
 * mw-pvm's tag, and an accepted connection's peer is bound to an 'A' name that
 * carries the connection's id and TCP endpoints.  So identification survives
 * fork, exec and dup with no table in the shim, and it costs one getsockname()
 * for foreign fds (two syscalls for ours).
 */

/**
 * shim_name_of() - decode @fd's own name
 * @fd: any fd
 * @n:  the decoded name
 * Return: 0, or -EINVAL if @fd has no mwcomms name (or is not a socket)
 */
int shim_name_of(int fd, struct mw_sockname *n)
{
	struct sockaddr_un sun;
	socklen_t len = sizeof(sun);

	if (shim_real.getsockname(fd, (struct sockaddr *)&sun, &len) || len > sizeof(sun))
		return -EINVAL;
	return mw_sockname_decode(n, &sun, len);
}

/**
 * shim_ident_own() - is @fd one of ours (made or accepted)?  One getsockname()
 * @fd: any fd
 * @n:  its decoded name (an accepted fd shares its listener's)
 *
 * For callers that need no more than that (TCP_CORK, kept in the shim): an
 * accepted fd is told apart from a made one by its peer, one more syscall.
 * Return: 1 if ours, 0 if not, -errno if an 'S'-named fd cannot be checked
 */
int shim_ident_own(int fd, struct mw_sockname *n)
{
	if (fd < 0 || shim_name_of(fd, n) || n->kind != MW_SOCKNAME_SOCKET)
		return 0;
	int ret = shim_ctl_ready();

	if (ret) /* EMFILE: mw-pvm refused this uid one more connection */
		return ret == -EMFILE ? ret : -ECONNREFUSED;
	/* from another (or an earlier) mw-pvm: not ours to handle */
	return n->tag == shim_state.tag;
}

/* shim_peer_is_pvm() - is @fd's peer mw-pvm's process (SO_PEERCRED)? */
bool shim_peer_is_pvm(int fd)
{
	struct ucred cred;
	socklen_t clen = sizeof(cred);

	return !shim_real.getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &clen) &&
	       cred.pid == shim_state.pvm_pid;
}

/**
 * shim_ident() - is @fd one of ours, and which socket is it?
 * @fd:  any fd
 * @out: kind (SHIM_NOT_OURS for everything else), id, endpoints of accepted fds
 *
 * An fd named like ours but before this process registered (after exec, say)
 * makes the shim register to learn the tag.
 * Return: 0, or -errno if an 'S'-named fd cannot be checked (mw-pvm unreachable)
 */
int shim_ident(int fd, struct shim_ident *out)
{
	struct sockaddr_un sun;
	socklen_t len = sizeof(sun);
	struct mw_sockname n, a;
	int ret;

	memset(out, 0, sizeof(*out));
	ret = shim_ident_own(fd, &n);
	if (ret <= 0)
		return ret;
	out->kind = SHIM_SOCKET;
	out->id = n.id;
	/*
	 * An accepted fd shares the listener's name; its peer tells it apart.
	 * The peer must be mw-pvm itself (as shim_accept_ok() checks): anyone may
	 * bind an 'A' name, and an fd the app accepted without the shim (io_uring,
	 * a raw accept4 system call) would otherwise report the endpoints a local
	 * user wrote into it.
	 */
	if (!shim_real.getpeername(fd, (struct sockaddr *)&sun, &len) && len <= sizeof(sun) &&
	    !mw_sockname_decode(&a, &sun, len) && a.kind == MW_SOCKNAME_ACCEPTED &&
	    a.tag == shim_state.tag && shim_peer_is_pvm(fd)) {
		out->kind = SHIM_ACCEPTED;
		out->id = a.id;
		out->peer = a.peer;
		out->local = a.local;
	}
	return 0;
}

/**
 * shim_fill_addr() - copy @a out as the kernel does for getsockname()/accept()
 * @a:    the endpoint (family 0: AF_INET 0.0.0.0:0)
 * @addr: caller's buffer, may be NULL
 * @len:  in: its size; out: the full size of the address
 */
void shim_fill_addr(const struct mw_addr *a, struct sockaddr *addr, socklen_t *len)
{
	struct sockaddr_storage ss;
	struct mw_addr any = { .family = 4 };
	socklen_t full;

	if (!addr || !len)
		return;
	if (mw_addr_to_sockaddr(a, &ss, &full))
		mw_addr_to_sockaddr(&any, &ss, &full);
	memcpy(addr, &ss, *len < full ? *len : full);
	*len = full;
}
