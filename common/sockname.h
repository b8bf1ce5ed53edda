/* SPDX-License-Identifier: MIT */
/* sockname.h - abstract AF_UNIX names that carry a socket's identity */
#ifndef MW_SOCKNAME_H
#define MW_SOCKNAME_H

#include <stdint.h>
#include <sys/socket.h>
#include <sys/un.h>

#include "common/addr.h"

/*
 * Binary abstract names: "\0" "mw" kind tag(8) id(8) nonce(8) [peer(24) local(24)].
 * kind 'S': an app socket (created and bound by mw-pvm at SOCKET, passed to the shim).
 * kind 'A': mw-pvm's end of an accepted connection, with the TCP endpoints.
 * tag: random per mw-pvm run, so two mw-pvm in one namespace, or a socket from
 * an earlier run, are told apart.
 * nonce: random per socket, so nobody can bind a socket's name before mw-pvm
 * does (the name is unknown until it is already taken).
 */
enum mw_sockname_kind { MW_SOCKNAME_SOCKET = 'S', MW_SOCKNAME_ACCEPTED = 'A' };

struct mw_sockname {
	char kind;
	uint64_t tag;
	uint64_t id;
	uint64_t nonce;
	struct mw_addr peer;  /* 'A' only */
	struct mw_addr local; /* 'A' only */
};

/* Return: the address length to pass to bind()/connect(). */
socklen_t mw_sockname_encode(const struct mw_sockname *n, struct sockaddr_un *sun);

/* Return: 0, or -EINVAL if @sun is not an mwcomms name (any other socket). */
int mw_sockname_decode(struct mw_sockname *n, const struct sockaddr_un *sun, socklen_t len);

#endif /* MW_SOCKNAME_H */
