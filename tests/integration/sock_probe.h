/* SPDX-License-Identifier: MIT */
/* sock_probe.h - shared helpers of sock_probe (cases in sock_probe.c, peers in sock_probe_peer.c) */
#ifndef MW_SOCK_PROBE_H
#define MW_SOCK_PROBE_H

#include <limits.h>
#include <stddef.h>
#include <sys/socket.h>
#include <sys/types.h>

/*
 * Theory of operation (tests/integration/test_e2e_sockets.sh)
 *
 * `sock_probe CASE` runs one case and prints "PASS CASE" or one "FAIL CASE:
 * why (line N)" per broken expectation; the exit status is 1 on any failure.
 * The same cases run under the shim (the app's TCP stack is the INS's) and,
 * as the reference, without it inside the INS's namespace: both must pass.
 * The few places where the shim's behaviour is documented to differ
 * (docs/shim.md, "Differences from the kernel") check the documented
 * behaviour when LD_PRELOAD names the shim.
 *
 * Peers run in the client namespace (PROBE_PEER_NS) without the shim, started
 * by the probe itself through `ip netns exec` (peer-serve, peer-client); their
 * stdout comes back on a pipe, which is also how the probe awaits their events.
 *
 * Environment: PROBE_PEER_NS, PROBE_SELF4/6 (the app's addresses as peers see
 * them), PROBE_PEER4/6, PROBE_DROP4 (an address whose packets are dropped),
 * PROBE_PORT (base port; each case uses a block of ten).
 */

#define LINE_MAX_ 512

extern const char *g_case; /* the case running, for FAIL lines */
extern int g_bad;          /* its failed expectations */
extern char g_self[PATH_MAX];
extern int g_shimmed;      /* LD_PRELOAD names the shim */

/* One broken expectation: a FAIL line with the reason and the source line. */
#define EXPECT(cond, ...)                                                                 \
	do {                                                                              \
		if (!(cond)) {                                                            \
			printf("FAIL %s: ", g_case);                                      \
			printf(__VA_ARGS__);                                              \
			printf(" (line %d)\n", __LINE__);                                 \
			fflush(stdout);                                                   \
			g_bad++;                                                          \
		}                                                                         \
	} while (0)

/* A peer process in PROBE_PEER_NS (no shim); its stdout is @out. */
struct peer {
	pid_t pid;
	int out;
};

const char *env(const char *name, const char *def);
int parse_int(const char *text, const char **end, int *v);
int port_base(int off);
socklen_t mkaddr(struct sockaddr_storage *ss, const char *ip, int port);
const char *addrstr(const struct sockaddr_storage *ss, char *buf, size_t n);
const char *name_of(int fd, int peer, char *buf, size_t n);
int name_port(int fd, int peer);
int getint(int fd, int level, int name);
int setint(int fd, int level, int name, int v);
int listener(int family, const char *ip, int port, int type_flags, int reuseport, int v6only);
int connect_to(int family, const char *ip, int port, int type_flags);
int write_all(int fd, const void *buf, size_t n);
ssize_t read_some(int fd, char *buf, size_t n, int ms, int *eof);
int read_line(int fd, char *buf, size_t n, int ms);
struct peer peer_start(const char *a1, const char *a2, const char *a3, const char *a4);
int peer_expect(struct peer *p, const char *prefix, char *buf, size_t n, int ms);
void peer_stop(struct peer *p);
struct peer serve_peer(int port);
struct peer client_peer(const char *ip, int port, int n);
int peer_serve(int port);
int peer_client(const char *ip, int port, int n);
void serve_one(int c, const char *tag);
int collect(struct peer *p, char got[][64], int n);

#endif /* MW_SOCK_PROBE_H */
