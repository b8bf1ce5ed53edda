/* SPDX-License-Identifier: MIT */
/* noresolve.c - no name lookup while a BPF filter compiles: addresses only */
#include <dlfcn.h>
#include <errno.h>
#include <netdb.h>
#include <stdbool.h>
#include <stddef.h>

#include "flowd/sensor.h"

/*
 * libpcap resolves a filter's names ("host NAME", "gateway NAME", "net NAME") as it
 * compiles, synchronously, through getaddrinfo(), gethostbyname() and
 * getnetbyname_r().  A MAPI client's filter naming hosts whose lookups hang would
 * stop mw-flowd's loop for the resolver's timeouts, name after name, until the
 * watchdog killed it.  mw-flowd defines the three itself (the executable's symbols
 * come first, for libpcap too): while fl_noresolve() is on they fail at once, as
 * for an unknown name; otherwise they are the C library's.  Port and protocol
 * names stay (/etc/services, /etc/protocols: files, no network).
 */
static _Thread_local bool noresolve;

/* fl_noresolve() - name lookups fail at once (@on) or work again */
void fl_noresolve(bool on)
{
	noresolve = on;
}

/* The next definition of @name after ours (the C library's, or a sanitizer's). */
static void *next_sym(const char *name)
{
	return dlsym(RTLD_NEXT, name);
}

int getaddrinfo(const char *node, const char *service, const struct addrinfo *hints,
		struct addrinfo **res)
{
	static int (*real)(const char *, const char *, const struct addrinfo *,
			   struct addrinfo **);
	struct addrinfo h = { 0 };

	if (noresolve) {
		if (hints)
			h = *hints;
		h.ai_flags |= AI_NUMERICHOST; /* an address still converts */
		hints = &h;
	}
	if (!real)
		*(void **)&real = next_sym("getaddrinfo");
	return real ? real(node, service, hints, res) : EAI_SYSTEM;
}

struct hostent *gethostbyname(const char *name)
{
	static struct hostent *(*real)(const char *);

	if (noresolve) {
		h_errno = HOST_NOT_FOUND;
		return NULL;
	}
	if (!real)
		*(void **)&real = next_sym("gethostbyname");
	if (!real) {
		h_errno = NO_RECOVERY;
		return NULL;
	}
	return real(name);
}

int getnetbyname_r(const char *name, struct netent *ret, char *buf, size_t buflen,
		   struct netent **result, int *h_errnop)
{
	static int (*real)(const char *, struct netent *, char *, size_t, struct netent **,
			   int *);

	if (noresolve) {
		*result = NULL;
		*h_errnop = HOST_NOT_FOUND;
		return ENOENT;
	}
	if (!real)
		*(void **)&real = next_sym("getnetbyname_r");
	if (!real) {
		*result = NULL;
		*h_errnop = NO_RECOVERY;
		return ENOSYS;
	}
	return real(name, ret, buf, buflen, result, h_errnop);
}
