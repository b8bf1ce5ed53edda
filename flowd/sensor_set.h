/* SPDX-License-Identifier: MIT */
/* sensor_set.h - the live sensors: fixed names, and patterns picked up as interfaces come and go */
#ifndef MW_FLOWD_SENSOR_SET_H
#define MW_FLOWD_SENSOR_SET_H

#include <ev.h>
#include <stdbool.h>
#include <stdint.h>

#include "common/config.h"
#include "flowd/sensor.h"

#define FL_SENSOR_SLOTS 32 /* a MAPI scope is a 32-bit mask of slots */

/**
 * struct fl_sensor_set - live sensors sharing one engine
 * @live:          ring per slot
 * @io:            its watcher
 * @names:         slot -> interface name, "" when free (the MAPI scope names)
 * @nl_fd:         NETLINK_ROUTE socket (link events: removals, patterns), -1 if not open
 * @retired_drops: kernel drops of sensors already closed
 * @nactive:       open sensors
 * @gone:          called with @gone_ctx and the slot when a sensor closes (its slot
 *                 will name another interface), or NULL
 */
struct fl_sensor_set {
	struct ev_loop *loop;
	struct fl_engine *engine;
	const struct mw_flowd_config *cfg;
	struct fl_live live[FL_SENSOR_SLOTS];
	ev_io io[FL_SENSOR_SLOTS];
	char names[FL_SENSOR_SLOTS][16];
	int nl_fd;
	ev_io nl_io;
	uint64_t retired_drops;
	int nactive;
	void (*gone)(void *ctx, int slot);
	void *gone_ctx;
};

int fl_sensors_open(struct fl_sensor_set *s, struct ev_loop *loop, struct fl_engine *e,
		    const struct mw_flowd_config *cfg, char *err, size_t errlen);
void fl_sensors_drain(struct fl_sensor_set *s);
uint64_t fl_sensors_drops(struct fl_sensor_set *s);
void fl_sensors_close(struct fl_sensor_set *s);

#endif /* MW_FLOWD_SENSOR_SET_H */
