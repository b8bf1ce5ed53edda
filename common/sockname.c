/* SPDX-License-Identifier: MIT */
/* sockname.c - encode/decode the abstract AF_UNIX names that carry a socket's identity */
#include <errno.h>
#include <stddef.h>
#include <string.h>

#include "common/sockname.h"

/*
 * Layout of sun_path (native byte order: both ends run on one host):
 *   [0] '\0' (abstract)  [1..2] "mw"  [3] kind  [4..11] tag  [12..19] id
 *   [20..27] nonce
 *   'A' only: [28..51] peer (struct mw_addr)  [52..75] local (struct mw_addr)
 * The exact length is part of the format: a name of another length is not ours.
 */
#define SN_HEAD	 28
#define SN_S_LEN SN_HEAD
#define SN_A_LEN (SN_HEAD + 2 * sizeof(struct mw_addr))

_Static_assert(SN_A_LEN <= sizeof(((struct sockaddr_un *)0)->sun_path), "name fits");

socklen_t mw_sockname_encode(const struct mw_sockname *n, struct sockaddr_un *sun)
{
	size_t plen = n->kind == MW_SOCKNAME_ACCEPTED ? SN_A_LEN : SN_S_LEN;
	char *p = sun->sun_path;

	memset(sun, 0, sizeof(*sun));
	sun->sun_family = AF_UNIX;
	p[0] = '\0';
	p[1] = 'm';
	p[2] = 'w';
	p[3] = n->kind == MW_SOCKNAME_ACCEPTED ? MW_SOCKNAME_ACCEPTED : MW_SOCKNAME_SOCKET;
	memcpy(p + 4, &n->tag, 8);
	memcpy(p + 12, &n->id, 8);
	memcpy(p + 20, &n->nonce, 8);
	if (n->kind == MW_SOCKNAME_ACCEPTED) {
		memcpy(p + SN_HEAD, &n->peer, sizeof(n->peer));
		memcpy(p + SN_HEAD + sizeof(n->peer), &n->local, sizeof(n->local));
	}
	return (socklen_t)(offsetof(struct sockaddr_un, sun_path) + plen);
}

static int sockname_addr_ok(const struct mw_addr *a)
{
	return a->family == 0 || a->family == 4 || a->family == 6;
}

int mw_sockname_decode(struct mw_sockname *n, const struct sockaddr_un *sun, socklen_t len)
{
	const size_t off = offsetof(struct sockaddr_un, sun_path);
	const char *p;
	size_t plen;

	memset(n, 0, sizeof(*n));
	if (!sun || len <= (socklen_t)off || len > (socklen_t)sizeof(*sun) ||
	    sun->sun_family != AF_UNIX)
		return -EINVAL;
	p = sun->sun_path;
	plen = (size_t)len - off;
	if (plen < SN_HEAD || p[0] != '\0' || p[1] != 'm' || p[2] != 'w')
		return -EINVAL;
	if (p[3] == MW_SOCKNAME_SOCKET) {
		if (plen != SN_S_LEN)
			return -EINVAL;
	} else if (p[3] == MW_SOCKNAME_ACCEPTED) {
		if (plen != SN_A_LEN)
			return -EINVAL;
		memcpy(&n->peer, p + SN_HEAD, sizeof(n->peer));
		memcpy(&n->local, p + SN_HEAD + sizeof(n->peer), sizeof(n->local));
		if (!sockname_addr_ok(&n->peer) || !sockname_addr_ok(&n->local)) {
			memset(n, 0, sizeof(*n));
			return -EINVAL;
		}
	} else {
		return -EINVAL;
	}
	n->kind = p[3];
	memcpy(&n->tag, p + 4, 8);
	memcpy(&n->id, p + 12, 8);
	memcpy(&n->nonce, p + 20, 8);
	return 0;
}
