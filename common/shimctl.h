/* SPDX-License-Identifier: MIT */
/* shimctl.h - the control protocol between libmwshim.so and mw-pvm */
#ifndef MW_SHIMCTL_H
#define MW_SHIMCTL_H

#include <assert.h>
#include <stdint.h>

#include "common/addr.h"
#include "common/proto.h"

/*
 * Theory of operation (docs/shim.md has the whole story)
 *
 * Control: each thread of the app opens its own SOCK_SEQPACKET connection to
 * mw-pvm's control socket (pvm.control_socket, or MW_PVM_SOCKET), registers,
 * and then sends one fixed-size request and waits for one fixed-size response.
 * Any local user may register.  Every request that names a socket carries the
 * app's fd of it (SCM_RIGHTS): holding the fd is the authority to act on the
 * socket, as in the kernel (docs/pvm.md, "Who may do what").  A child after
 * fork() opens its own connection.
 *
 * Data: every intercepted TCP socket is a real AF_UNIX SOCK_STREAM socket of the
 * app, created by mw-pvm at SOCKET and bound there to an abstract name
 * (common/sockname.h) carrying the PVM's tag, the socket id and a random nonce;
 * the SOCKET response passes it to the app (SCM_RIGHTS), so no other process
 * can ever hold a socket's name first.  connect() connects it to mw-pvm's data socket (path
 * from REGISTER); mw-pvm learns the id from the peer name.  For a listener, mw-pvm
 * connects to the app's listening AF_UNIX socket once per accepted TCP
 * connection, from a socket whose name carries the new id and the TCP peer and
 * local addresses; the shim accepts only connections whose SO_PEERCRED pid is
 * mw-pvm's.
 */

/* 2: SOCKET answers with the app's socket (SCM_RIGHTS); names carry a nonce. */
#define MW_SHIMCTL_VERSION 2

enum mw_shimctl_op {
	MW_SHIMCTL_REGISTER = 1, /* arg = version; resp: sock = tag, text = data socket path, arg = pvm pid */
	MW_SHIMCTL_SOCKET = 2,   /* arg = 4|6; resp: sock = new id, + the named AF_UNIX fd */
	MW_SHIMCTL_BIND = 3,     /* sock, addr; resp: addr = bound address */
	MW_SHIMCTL_LISTEN = 4,   /* sock, arg = backlog (the app's AF_UNIX socket listens first) */
	MW_SHIMCTL_CONNECT = 5,  /* sock, addr: start; status 0 = started or -errno */
	MW_SHIMCTL_CONNECT_WAIT = 6, /* sock: block until the connect outcome; status 0 or -errno */
	MW_SHIMCTL_SETOPT = 7,   /* sock, level = arg, name = arg2, val/len */
	MW_SHIMCTL_GETOPT = 8,   /* sock, level, name, len = room; resp val/len */
	MW_SHIMCTL_GETNAME = 9,  /* sock, arg = 0 local / 1 peer; resp addr */
	MW_SHIMCTL_CLOSE_HINT = 10, /* sock: the app closed an fd of it; no response; mw-pvm
				     * believes only its own check of the name */
};

enum mw_shimctl_flags {
	/*
	 * SETOPT of an on/off option (TCP_NODELAY, TCP_CORK, TCP_QUICKACK,
	 * SO_KEEPALIVE) on an accepted connection: no response.  The kernel never
	 * fails these on a TCP socket, and nginx sets TCP_CORK twice per response:
	 * a round trip through the INS each time would cap a worker at a few
	 * thousand requests/s.  mw-pvm still applies it in order, after the bytes
	 * the app wrote before it.
	 */
	MW_SHIMCTL_F_NOREPLY = 1,
};

struct mw_shimctl_req {
	uint32_t op;
	uint32_t flags;
	uint64_t sock;
	int32_t arg;
	int32_t arg2;
	uint32_t len;
	uint32_t pad;
	struct mw_addr addr;
	uint8_t val[MW_SOCKOPT_MAX];
	uint8_t pad2[8];         /* the fields above are 120 bytes: keep the agreed 128 */
};
static_assert(sizeof(struct mw_shimctl_req) == 128, "wire type");

struct mw_shimctl_resp {
	int32_t status;          /* 0 or -errno */
	int32_t arg;
	uint64_t sock;
	uint32_t len;
	uint32_t pad;
	struct mw_addr addr;
	uint8_t val[MW_SOCKOPT_MAX];
	char text[108];          /* NUL-terminated */
	uint8_t pad2[4];
};
static_assert(sizeof(struct mw_shimctl_resp) == 224, "wire type");

#endif /* MW_SHIMCTL_H */
