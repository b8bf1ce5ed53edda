/* SPDX-License-Identifier: MIT */
/* backend.h - how mw-balancer runs an INS: one interface, one file per backend */
#ifndef BAL_BACKEND_H
#define BAL_BACKEND_H

#include <netinet/in.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

struct ev_loop;

#include "common/config.h"

/* One running INS as its backend sees it. */
struct bal_ins_handle {
	int id;		     /* mw-ins --id */
	pid_t pid;	     /* child to watch (ev_child); 0 when there is none (xl) */
	struct in_addr addr; /* where the front end connects to reach its listeners */
	char name[64];	     /* netns / domain name, for logs and mwctl */
	int slot;	     /* address slot the backend chose (netns, xl), else 0 */
	unsigned domid;	     /* xl: the domain, 0 until created; mw-pvm knows the INS by it */
};

struct bal_backend;

struct bal_backend_ops {
	const char *name;
	/* Prepare shared resources (bridge) and remove leftovers of an earlier crash. */
	int (*init)(struct bal_backend *b, char *err, size_t errlen);
	/* Start INS @h->id; fill the rest of @h.  On error nothing is left behind. */
	int (*spawn)(struct bal_backend *b, struct bal_ins_handle *h, char *err, size_t errlen);
	/* Ask it to stop (SIGTERM / domain shutdown); returns at once. */
	void (*stop)(struct bal_backend *b, struct bal_ins_handle *h);
	/* It did not stop in time, or checks took it down: force it (domain destroy). NULL: SIGKILL. */
	void (*kill)(struct bal_backend *b, struct bal_ins_handle *h);
	/* For a backend without a pid: 1 alive, 0 gone. NULL: the pid tells. */
	int (*alive)(struct bal_backend *b, struct bal_ins_handle *h);
	/* After it exited: remove what spawn created (namespace, veth, domain). */
	void (*cleanup)(struct bal_backend *b, struct bal_ins_handle *h);
	/* Remove the shared resources (bridge). */
	void (*fini)(struct bal_backend *b);
};

struct bal_backend {
	const struct bal_backend_ops *ops;
	const struct mw_config *cfg; /* the live config (pointer stays valid) */
	struct ev_loop *loop;	     /* the balancer's loop (xl: results come back to it) */
	char ins_binary[MW_PATH_MAX];
	void *priv;
	bool confine;  /* run mw-ins confined (confine.c): ins.user set, we are root */
	uid_t ins_uid; /* ins.user's uid and gid, when confine */
	gid_t ins_gid;
	int host_netns; /* netns backend: fd of our own network namespace, else -1 */
};

extern const struct bal_backend_ops bal_backend_netns;
extern const struct bal_backend_ops bal_backend_process;
extern const struct bal_backend_ops bal_backend_xl;

/**
 * bal_backend_find() - the backend called @name
 * Return: its ops, or NULL for an unknown name
 */
const struct bal_backend_ops *bal_backend_find(const char *name);

/**
 * bal_backend_exec_ins() - in a forked child: confine, then exec mw-ins --id @id [-c CONFIG]
 * @b:  the backend (binary and config path)
 * @id: INS id
 *
 * Asks for SIGTERM when the balancer dies (PR_SET_PDEATHSIG), so a crashed
 * balancer leaves no INS behind.  With @b->confine, bal_confine_child() runs
 * first (own mount namespace, ins.user, no capabilities, no_new_privs).
 * Never returns (_exit(127) if confinement or exec fails, with a line on stderr).
 */
void bal_backend_exec_ins(const struct bal_backend *b, int id) __attribute__((noreturn));

/**
 * bal_run() - run a command (argv[0] searched in PATH), wait for it
 * @argv:  NULL-terminated
 * @quiet: its stderr goes to /dev/null
 *
 * Return: 0 if it exited 0, -EIO if it failed, -errno if it could not start
 */
int bal_run(char *const argv[], bool quiet);

/**
 * bal_confine_prepare() - at init: resolve ins.user, decide whether INS are confined
 * @b:      the backend (cfg set)
 * @err:    one line on failure
 * @errlen: its size
 *
 * Return: 0 (b->confine says the outcome) or -errno if ins.user does not exist
 */
int bal_confine_prepare(struct bal_backend *b, char *err, size_t errlen);

/**
 * bal_confine_child() - in the forked child, before exec: confine the future mw-ins
 * @b:      the backend (ins_uid, ins_gid, cfg)
 * @err:    one line on failure
 * @errlen: its size
 *
 * Return: 0, or -errno with @err set (the child then exits without exec)
 */
int bal_confine_child(const struct bal_backend *b, char *err, size_t errlen);

/**
 * bal_child_reset() - first thing in a forked child: the balancer's signal state goes
 *
 * Default dispositions for the signals libev handles and an empty mask, so
 * the child's own waits (ip(8)) and mw-ins start clean.
 */
void bal_child_reset(void);

#endif /* BAL_BACKEND_H */
