/* SPDX-License-Identifier: MIT */
/* xl_worker.h - the xl backend's domains, driven by a worker thread off the proxy's loop */
#ifndef BAL_XL_WORKER_H
#define BAL_XL_WORKER_H

#include <ev.h>
#include <stdint.h>
#include <sys/types.h>

#include "balancer/xlcfg.h"

/* What the hypervisor says about a domain (struct bal_xl_driver.state). */
enum bal_xl_dstate {
	BAL_XL_D_RUNNING,  /* exists and runs (or is paused) */
	BAL_XL_D_SHUTDOWN, /* shut down or dying: to be destroyed */
	BAL_XL_D_GONE,	   /* no such domain */
};

/*
 * The seam to the hypervisor: every call may block (libxl waits for hotplug
 * scripts, xenstored, the hypervisor) and runs on the worker thread only,
 * except child_reaped, which the loop's thread calls.  xl_libxl.c is the
 * real one (libxenlight); tests/unit/test_balancer_xl.c has a stand-in.
 */
struct bal_xl_driver {
	const char *name;
	int (*open)(void **ctx, char *err, size_t errlen);
	void (*close)(void *ctx);
	/* Create the domain paused, admit it to /mw/ins/<domid>, unpause.  Return: 0 or -errno. */
	int (*create)(void *ctx, const struct bal_xl_domcfg *c, uint32_t *domid, char *err,
		      size_t errlen);
	int (*shutdown)(void *ctx, uint32_t domid);
	/* Destroy the domain if it exists, and remove its /mw/ins/<domid> in any case. */
	int (*destroy)(void *ctx, uint32_t domid);
	/* Return: enum bal_xl_dstate, or -errno if it cannot be told now. */
	int (*state)(void *ctx, uint32_t domid);
	/* The loop reaped @pid (ev_child): if it was the driver's child, it is told. NULL: none. */
	void (*child_reaped)(void *ctx, pid_t pid, int status);
};

/* The real driver (xl_libxl.c); NULL when built without libxenlight. */
extern const struct bal_xl_driver *const bal_xl_libxl;

struct bal_xlw;

/* Timing of the worker (the backend uses the defaults; tests shorten them). */
struct bal_xlw_timing {
	double poll_s;	   /* each domain's state is asked this often */
	double stop_s;	   /* a domain still there this long after its shutdown is destroyed */
};
#define BAL_XLW_POLL_S 0.5
#define BAL_XLW_STOP_S 10.0

/**
 * bal_xlw_start() - open the driver, start the worker thread and the loop's watchers
 * @out:    the worker
 * @drv:    the driver
 * @loop:   the balancer's loop: an ev_async brings results back to it, and with
 *          @drv->child_reaped an ev_child (any pid) hands reaped children to it
 * @t:      timing
 * @err:    one line on failure
 * @errlen: its size
 * Return: 0 or -errno
 */
int bal_xlw_start(struct bal_xlw **out, const struct bal_xl_driver *drv, struct ev_loop *loop,
		  const struct bal_xlw_timing *t, char *err, size_t errlen);

/* Destroy every domain still known, stop the thread, close the driver. */
void bal_xlw_stop(struct bal_xlw *w);

/**
 * bal_xlw_create() - queue the creation of INS @id's domain; returns at once
 * Return: 0, -EEXIST (id known), -ENOMEM
 */
int bal_xlw_create(struct bal_xlw *w, int id, const struct bal_xl_domcfg *c);

/* Ask INS @id's domain to shut down; destroyed if still there after stop_s. */
void bal_xlw_shutdown(struct bal_xlw *w, int id);

/* Destroy INS @id's domain now (a health check took it down, or it ignored shutdown). */
void bal_xlw_destroy(struct bal_xlw *w, int id);

/**
 * bal_xlw_alive() - is INS @id's domain being created or running?
 * @domid: set once the domain exists (0 before)
 * Return: 1 creating, running or stopping; 0 gone (failed to start, died, destroyed)
 */
int bal_xlw_alive(struct bal_xlw *w, int id, uint32_t *domid);

/* Forget INS @id: its domain is destroyed if it still exists, then the record goes. */
void bal_xlw_forget(struct bal_xlw *w, int id);

/* Records the worker still holds (forgotten ones until destroyed). */
int bal_xlw_count(struct bal_xlw *w);

/* Run pending results on the loop's side now (what the ev_async does): for tests. */
void bal_xlw_drain(struct bal_xlw *w);

#endif /* BAL_XL_WORKER_H */
