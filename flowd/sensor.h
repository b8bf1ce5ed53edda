/* SPDX-License-Identifier: MIT */
/* sensor.h - where packets come from: pcap files (offline) and AF_PACKET rings (live) */
#ifndef MW_FLOWD_SENSOR_H
#define MW_FLOWD_SENSOR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "flowd/engine.h"

/* sensor_pcap.c */
int fl_pcap_read(struct fl_engine *e, const char *path, const char *filter, char *err,
		 size_t errlen);
int fl_bpf_compile(const char *filter, void *prog, char *err, size_t errlen);
void fl_bpf_free(void *prog);

/* noresolve.c */
void fl_noresolve(bool on);

/**
 * struct fl_live - one interface's TPACKET_V3 ring
 * @fd:         AF_PACKET socket, bound to the interface
 * @ring:       the mapped ring, @block_size * @blocks bytes
 * @cur:        next block to look at
 * @index:      its slot (the MAPI scope bit)
 * @ifindex:    the interface it is bound to
 * @ifname:     the interface
 * @drops:      frames the kernel dropped (ring full), since open
 * @packets:    frames the kernel delivered, since open
 */
struct fl_live {
	int fd;
	uint8_t *ring;
	size_t block_size;
	unsigned int blocks;
	unsigned int cur;
	int index;
	unsigned int ifindex;
	char ifname[16];
	uint64_t drops;
	uint64_t packets;
};

/* sensor_live.c */
int fl_live_open(struct fl_live *l, const char *ifname, const char *filter, size_t block_size,
		 unsigned int blocks, char *err, size_t errlen);
unsigned int fl_live_poll(struct fl_live *l, struct fl_engine *e);
void fl_live_stats(struct fl_live *l);
int fl_live_error(struct fl_live *l);
void fl_live_close(struct fl_live *l);

#endif /* MW_FLOWD_SENSOR_H */
