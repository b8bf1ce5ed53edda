/* SPDX-License-Identifier: MIT */
/* addr.h - one fixed-size TCP endpoint (IPv4 or IPv6) used on every internal wire */
#ifndef MW_ADDR_H
#define MW_ADDR_H

#include <assert.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

/* family 0 = unset, 4 = IPv4 (addr[0..3]), 6 = IPv6; port in host order. */
struct mw_addr {
	uint8_t family;
	uint8_t pad;
	uint16_t port;
	uint32_t scope_id;
	uint8_t addr[16];
};
static_assert(sizeof(struct mw_addr) == 24, "mw_addr is a wire type");

#define MW_ADDR_STRLEN 64 /* "[ipv6%scope]:port" fits */

/**
 * mw_addr_from_sockaddr() - convert a sockaddr_in/sockaddr_in6
 * Return: 0, -EAFNOSUPPORT for another family, -EINVAL if @len is too short
 */
int mw_addr_from_sockaddr(struct mw_addr *a, const struct sockaddr *sa, socklen_t len);

/**
 * mw_addr_to_sockaddr() - fill @ss, set *@len
 * Return: 0, or -EAFNOSUPPORT if @a has no family
 */
int mw_addr_to_sockaddr(const struct mw_addr *a, struct sockaddr_storage *ss, socklen_t *len);

/* "1.2.3.4:80" or "[::1]:80"; always NUL-terminates; returns @buf. */
char *mw_addr_format(const struct mw_addr *a, char *buf, size_t len);

/**
 * mw_addr_parse() - parse "ip:port", "[ip6]:port", or a bare ip (port 0)
 * Return: 0 or -EINVAL
 */
int mw_addr_parse(struct mw_addr *a, const char *text);

#endif /* MW_ADDR_H */
