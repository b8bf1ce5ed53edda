/* SPDX-License-Identifier: MIT */
/* shim.c - libmwshim.so start-up: real libc symbols, fail-open/closed, per-fd hint bitmap */
#include <dlfcn.h>
#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "shim/shim.h"

struct shim_real shim_real;
struct shim_state shim_state = { .lock = PTHREAD_MUTEX_INITIALIZER };

static pthread_once_t shim_once = PTHREAD_ONCE_INIT;

/*
 * One bit per fd that the shim made and that has no data connection yet
 * (created, bound or listening).  close() of such an fd may tell mw-pvm that
 * the socket is gone (CLOSE_HINT).  The bit can be stale after dup()/fork()/
 * dup2(): close() re-checks the socket's name before hinting, so a stale bit
 * costs one getsockname(), never a wrong hint.  Fds beyond the map get no hint.
 */
#define SHIM_BITS (1u << 20)
static _Atomic unsigned long shim_bits[SHIM_BITS / (8 * sizeof(unsigned long))];
#define SHIM_BPW (8 * sizeof(unsigned long))

/*
 * TCP_CORK as the app set it, per fd, kept here and never sent to the INS.
 * mw-pvm already gathers the app's writes into frames of up to 64 KiB and the
 * INS sends with Nagle off, so cork changes little on the wire, while nginx
 * (tcp_nopush) toggles it twice per response: two control messages per
 * request cost a third of B1's throughput.  getsockopt() reads it back; a
 * dup() of the fd starts uncorked (the one visible difference).
 */
static _Atomic unsigned long shim_cork_bits[SHIM_BITS / (8 * sizeof(unsigned long))];

static void *shim_sym(const char *name)
{
	void *p = dlsym(RTLD_NEXT, name);

	if (!p) {
		/* Without libc's socket calls the process cannot work at all. */
		fprintf(stderr, "mwshim: cannot resolve %s: %s\n", name, dlerror());
		abort();
	}
	return p;
}

static void shim_do_init(void)
{
	const char *fo = getenv("MW_SHIM_FAILOPEN");
	const char *path = getenv("MW_PVM_SOCKET");

	shim_real.socket = (int (*)(int, int, int))shim_sym("socket");
	shim_real.bind = (int (*)(int, const struct sockaddr *, socklen_t))shim_sym("bind");
	shim_real.listen = (int (*)(int, int))shim_sym("listen");
	shim_real.accept = (int (*)(int, struct sockaddr *, socklen_t *))shim_sym("accept");
	shim_real.accept4 = (int (*)(int, struct sockaddr *, socklen_t *, int))shim_sym("accept4");
	shim_real.connect = (int (*)(int, const struct sockaddr *, socklen_t))shim_sym("connect");
	shim_real.getsockname =
		(int (*)(int, struct sockaddr *, socklen_t *))shim_sym("getsockname");
	shim_real.getpeername =
		(int (*)(int, struct sockaddr *, socklen_t *))shim_sym("getpeername");
	shim_real.getsockopt =
		(int (*)(int, int, int, void *, socklen_t *))shim_sym("getsockopt");
	shim_real.setsockopt =
		(int (*)(int, int, int, const void *, socklen_t))shim_sym("setsockopt");
	shim_real.close = (int (*)(int))shim_sym("close");

	shim_state.failopen = fo && !strcmp(fo, "1");
	if (!path || !*path)
		path = SHIM_DEFAULT_SOCKET;
	if (strlen(path) >= sizeof(shim_state.ctl_path)) {
		fprintf(stderr, "mwshim: MW_PVM_SOCKET is longer than %zu bytes: using %s\n",
			sizeof(shim_state.ctl_path) - 1, SHIM_DEFAULT_SOCKET);
		path = SHIM_DEFAULT_SOCKET;
	}
	snprintf(shim_state.ctl_path, sizeof(shim_state.ctl_path), "%s", path);
	shim_ctl_atfork_init();
}

/**
 * shim_init() - resolve the real functions and read the environment, once
 *
 * Called by the constructor and by every interposed function, because another
 * library's constructor may open a socket before ours has run.
 */
void shim_init(void)
{
	pthread_once(&shim_once, shim_do_init);
}

__attribute__((constructor)) static void shim_constructor(void)
{
	shim_init();
}

/**
 * shim_warn_once() - the one line on stderr about an unreachable mw-pvm
 * @msg: what failed
 * @err: positive errno
 */
void shim_warn_once(const char *msg, int err)
{
	static atomic_flag said = ATOMIC_FLAG_INIT;

	if (atomic_flag_test_and_set(&said))
		return;
	fprintf(stderr, "mwshim: %s at %s: %s (set MW_SHIM_FAILOPEN=1 to bypass protection)\n",
		msg, shim_state.ctl_path, strerror(err));
}

/*
 * One bit per connection this process accepted from mw-pvm (shim_accept()),
 * cleared by close().  TCP_CORK, kept here, is then answered with no system
 * call for the fds that use it most (nginx toggles it twice per response);
 * any other fd is identified by its name (shim_ident_own(), one getsockname()).
 * The bit does not follow dup() and does not survive exec: the copy is
 * identified by name.  It is stale only if the fd is closed past close()
 * (dup2/dup3 over it, close_range, closefrom, fclose of an fdopen()ed socket):
 * then TCP_CORK on that number is answered here and never reaches the kernel
 * (docs/shim.md says what that can cost: a cork timeout at worst, never data).
 */
static _Atomic unsigned long shim_conn_bits[SHIM_BITS / (8 * sizeof(unsigned long))];

/* Set or clear @fd's bit in @map; clearing a clear bit is one load, no write. */
static void bit_put(_Atomic unsigned long *map, int fd, bool on)
{
	unsigned long m;

	if (fd < 0 || (unsigned)fd >= SHIM_BITS)
		return;
	m = 1UL << (fd % SHIM_BPW);
	if (on)
		atomic_fetch_or(&map[fd / SHIM_BPW], m);
	else if (atomic_load_explicit(&map[fd / SHIM_BPW], memory_order_relaxed) & m)
		atomic_fetch_and(&map[fd / SHIM_BPW], ~m);
}

/* @fd's bit in @map (false for fds beyond the map). */
static bool bit_get(_Atomic unsigned long *map, int fd)
{
	if (fd < 0 || (unsigned)fd >= SHIM_BITS)
		return false;
	return atomic_load_explicit(&map[fd / SHIM_BPW], memory_order_relaxed) &
	       (1UL << (fd % SHIM_BPW));
}

/**
 * shim_bit_set() - remember that @fd is a shim socket without a data connection
 * @fd: the fd
 */
void shim_bit_set(int fd)
{
	bit_put(shim_bits, fd, true);
}

/**
 * shim_bit_get() - is @fd (as far as this process knows) a shim socket without a data connection?
 * @fd: the fd
 *
 * A hint: stale if the fd was closed past close() and the number reused.
 */
bool shim_bit_get(int fd)
{
	return bit_get(shim_bits, fd);
}

/**
 * shim_bit_clear() - forget @fd (connected, or a new fd of another kind)
 * @fd: the fd
 */
void shim_bit_clear(int fd)
{
	bit_put(shim_bits, fd, false);
}

/**
 * shim_cork_set() - record the app's TCP_CORK for @fd
 * @fd: the fd
 * @on: the value
 */
void shim_cork_set(int fd, bool on)
{
	bit_put(shim_cork_bits, fd, on);
}

/**
 * shim_cork_get() - the app's TCP_CORK for @fd (false for fds beyond the map)
 * @fd: the fd
 */
bool shim_cork_get(int fd)
{
	return bit_get(shim_cork_bits, fd);
}

/**
 * shim_conn_set() - record that @fd is (or no longer is) a connection this
 *                   process accepted from mw-pvm
 * @fd: the fd
 * @on: the value
 */
void shim_conn_set(int fd, bool on)
{
	bit_put(shim_conn_bits, fd, on);
}

/**
 * shim_conn_known() - did this process accept @fd from mw-pvm (and not close it)?
 * @fd: the fd
 *
 * False says nothing: the fd may still be ours (a dup, an inherited fd).
 */
bool shim_conn_known(int fd)
{
	return bit_get(shim_conn_bits, fd);
}

/**
 * shim_bit_test_clear() - clear @fd's bit
 * @fd: the fd
 * Return: whether it was set
 */
bool shim_bit_test_clear(int fd)
{
	unsigned long m;

	if (fd < 0 || (unsigned)fd >= SHIM_BITS)
		return false;
	m = 1UL << (fd % SHIM_BPW);
	if (!(atomic_load_explicit(&shim_bits[fd / SHIM_BPW], memory_order_relaxed) & m))
		return false; /* the common close(): one load, no write */
	return atomic_fetch_and(&shim_bits[fd / SHIM_BPW], ~m) & m;
}
