/* SPDX-License-Identifier: MIT */
/* guardd.h - the mw-guard daemon: its loop, Netflow link, control socket, reload */
#ifndef MW_GUARDD_H
#define MW_GUARDD_H

#include <ev.h>

#include "common/daemon.h"
#include "guard/action.h"
#include "guard/guard.h"

struct mw_ctl_server;
struct gd_balctl;

struct guardd {
	struct mw_daemon *d;
	struct mw_config *cfg; /* the configuration in force (replaced by a reload) */
	struct gd_engine eng;
	struct gd_act act;
	struct mw_ctl_server *ctl;
	struct gd_balctl *balctl;
	char nf_addr[MW_PATH_MAX];
	struct mw_nf_client *nf; /* NULL while not connected */
	ev_io nf_io;
	ev_timer tick, retry;
	bool ready_sent; /* sd_notify READY=1 */
	uint64_t connects, disconnects, reloads, reload_errors;
	uint64_t rotations_ok, rotations_failed;
	char last_error[160];
};

/* nf.c */
void gd_nf_address(const struct mw_config *cfg, char *out, size_t len);
void gd_nf_start(struct guardd *g);
void gd_nf_stop(struct guardd *g);

/* ctl.c */
int gd_ctl_open(struct guardd *g, char *err, size_t errlen);
void gd_ctl_close(struct guardd *g);

/* balctl.c */
int gd_balctl_open(struct guardd *g);
void gd_balctl_close(struct guardd *g);

/* reload.c */
int gd_reload(struct guardd *g, char *err, size_t errlen);

#endif /* MW_GUARDD_H */
