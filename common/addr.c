/* SPDX-License-Identifier: MIT */
/* addr.c - conversions between struct mw_addr, sockaddr and text */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/addr.h"

int mw_addr_from_sockaddr(struct mw_addr *a, const struct sockaddr *sa, socklen_t len)
{
	memset(a, 0, sizeof(*a));
	if (!sa || len < (socklen_t)sizeof(sa_family_t))
		return -EINVAL;
	if (sa->sa_family == AF_INET) {
		const struct sockaddr_in *sin = (const struct sockaddr_in *)sa;

		if (len < (socklen_t)sizeof(*sin))
			return -EINVAL;
		a->family = 4;
		a->port = ntohs(sin->sin_port);
		memcpy(a->addr, &sin->sin_addr, 4);
		return 0;
	}
	if (sa->sa_family == AF_INET6) {
		const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)sa;

		if (len < (socklen_t)sizeof(*sin6))
			return -EINVAL;
		a->family = 6;
		a->port = ntohs(sin6->sin6_port);
		a->scope_id = sin6->sin6_scope_id;
		memcpy(a->addr, &sin6->sin6_addr, 16);
		return 0;
	}
	return -EAFNOSUPPORT;
}

int mw_addr_to_sockaddr(const struct mw_addr *a, struct sockaddr_storage *ss, socklen_t *len)
{
	memset(ss, 0, sizeof(*ss));
	if (a->family == 4) {
		struct sockaddr_in *sin = (struct sockaddr_in *)ss;

		sin->sin_family = AF_INET;
		sin->sin_port = htons(a->port);
		memcpy(&sin->sin_addr, a->addr, 4);
		*len = sizeof(*sin);
		return 0;
	}
	if (a->family == 6) {
		struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)ss;

		sin6->sin6_family = AF_INET6;
		sin6->sin6_port = htons(a->port);
		sin6->sin6_scope_id = a->scope_id;
		memcpy(&sin6->sin6_addr, a->addr, 16);
		*len = sizeof(*sin6);
		return 0;
	}
	return -EAFNOSUPPORT;
}

char *mw_addr_format(const struct mw_addr *a, char *buf, size_t len)
{
	char ip[INET6_ADDRSTRLEN];

	if (!len)
		return buf;
	if (a->family == 4 && inet_ntop(AF_INET, a->addr, ip, sizeof(ip)))
		snprintf(buf, len, "%s:%u", ip, a->port);
	else if (a->family == 6 && inet_ntop(AF_INET6, a->addr, ip, sizeof(ip)))
		snprintf(buf, len, "[%s]:%u", ip, a->port);
	else
		snprintf(buf, len, "-");
	return buf;
}

static int parse_port(const char *s, uint16_t *port)
{
	char *end;
	unsigned long v;

	if (!*s)
		return -EINVAL;
	errno = 0;
	v = strtoul(s, &end, 10);
	if (errno || *end || v > 65535 || s[0] == '-' || s[0] == '+')
		return -EINVAL;
	*port = (uint16_t)v;
	return 0;
}

int mw_addr_parse(struct mw_addr *a, const char *text)
{
	char host[INET6_ADDRSTRLEN + 2];
	const char *port = NULL;
	size_t hlen;

	memset(a, 0, sizeof(*a));
	if (!text)
		return -EINVAL;
	if (text[0] == '[') {
		const char *close = strchr(text, ']');

		if (!close || (close[1] && close[1] != ':'))
			return -EINVAL;
		hlen = (size_t)(close - text - 1);
		if (hlen >= sizeof(host))
			return -EINVAL;
		memcpy(host, text + 1, hlen);
		host[hlen] = '\0';
		if (close[1] == ':')
			port = close + 2;
	} else {
		const char *colon = strchr(text, ':');

		if (colon && strchr(colon + 1, ':'))
			colon = NULL; /* bare IPv6 address */
		hlen = colon ? (size_t)(colon - text) : strlen(text);
		if (hlen >= sizeof(host))
			return -EINVAL;
		memcpy(host, text, hlen);
		host[hlen] = '\0';
		if (colon)
			port = colon + 1;
	}
	if (port && parse_port(port, &a->port))
		return -EINVAL;
	if (inet_pton(AF_INET, host, a->addr) == 1) {
		a->family = 4;
		return 0;
	}
	if (inet_pton(AF_INET6, host, a->addr) == 1) {
		a->family = 6;
		return 0;
	}
	memset(a, 0, sizeof(*a));
	return -EINVAL;
}
