/* SPDX-License-Identifier: MIT */
/* shim.h - internal interfaces of libmwshim.so (never installed) */
#ifndef MW_SHIM_H
#define MW_SHIM_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/un.h>

#include "common/shimctl.h"
#include "common/sockname.h"

/* Only the interposed libc entry points leave the library. */
#define SHIM_EXPORT __attribute__((visibility("default")))

/* glibc declares the sockaddr arguments as transparent unions under _GNU_SOURCE. */
#define SHIM_SA(u) ((u).__sockaddr__)

#define SHIM_DEFAULT_SOCKET "/run/mwcomms/pvm.sock"

/* The next definitions (normally libc's), resolved once with dlsym(RTLD_NEXT). */
struct shim_real {
	int (*socket)(int, int, int);
	int (*bind)(int, const struct sockaddr *, socklen_t);
	int (*listen)(int, int);
	int (*accept)(int, struct sockaddr *, socklen_t *);
	int (*accept4)(int, struct sockaddr *, socklen_t *, int);
	int (*connect)(int, const struct sockaddr *, socklen_t);
	int (*getsockname)(int, struct sockaddr *, socklen_t *);
	int (*getpeername)(int, struct sockaddr *, socklen_t *);
	int (*getsockopt)(int, int, int, void *, socklen_t *);
	int (*setsockopt)(int, int, int, const void *, socklen_t);
	int (*close)(int);
};
extern struct shim_real shim_real;

/* Process-wide state learnt at REGISTER; written under lock, read after shim_ctl_ready(). */
struct shim_state {
	pthread_mutex_t lock;
	bool failopen;           /* MW_SHIM_FAILOPEN=1 */
	bool registered;         /* tag/pvm_pid valid */
	uint64_t tag;
	pid_t pvm_pid;
	char ctl_path[108];
};
extern struct shim_state shim_state;

/* What an fd is, as far as the shim is concerned (shim_ident.c). */
enum shim_kind { SHIM_NOT_OURS = 0, SHIM_SOCKET = 'S', SHIM_ACCEPTED = 'A' };
struct shim_ident {
	enum shim_kind kind;
	uint64_t id;             /* the 'S' id, or the accepted connection's id */
	struct mw_addr peer;     /* SHIM_ACCEPTED only */
	struct mw_addr local;    /* SHIM_ACCEPTED only */
};

/* shim.c */
void shim_init(void);
void shim_warn_once(const char *msg, int err);
void shim_bit_set(int fd);
void shim_bit_clear(int fd);
bool shim_bit_get(int fd);
bool shim_bit_test_clear(int fd);
void shim_cork_set(int fd, bool on);
bool shim_cork_get(int fd);
void shim_conn_set(int fd, bool on);
bool shim_conn_known(int fd);

/* shim_ctl.c */
int shim_ctl_ready(void);
int shim_ctl_call(struct mw_shimctl_req *req, int fd, struct mw_shimctl_resp *resp);
int shim_ctl_hint(uint64_t sock);
int shim_ctl_socket(struct mw_shimctl_req *req, struct mw_shimctl_resp *resp, bool cloexec);
int shim_ctl_send(const struct mw_shimctl_req *req, int app_fd);
int shim_ctl_wait(struct mw_shimctl_req *req, int app_fd, struct mw_shimctl_resp *resp, int ms);
void shim_ctl_atfork_init(void);

/* shim_ident.c */
int shim_ident(int fd, struct shim_ident *out);
bool shim_peer_is_pvm(int fd);
int shim_ident_own(int fd, struct mw_sockname *n);
int shim_name_of(int fd, struct mw_sockname *n);
void shim_fill_addr(const struct mw_addr *a, struct sockaddr *addr, socklen_t *len);

#endif /* MW_SHIM_H */
