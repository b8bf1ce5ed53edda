/* SPDX-License-Identifier: MIT */
/* mapi_flow.h - MAPI flows inside mw-flowd: functions in order, results in a shared area */
#ifndef MW_FLOWD_MAPI_FLOW_H
#define MW_FLOWD_MAPI_FLOW_H

#include <ev.h>
#include <pcap/pcap.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "flowd/anon.h"
#include "flowd/decode.h"
#include "flowd/ftab.h"
#include "flowd/sketch.h"
#include "mapi/include/mwmapi.h"
#include "mapi/mapi_proto.h"

/**
 * struct fl_mapi_fn - one applied function
 * @id:      enum mw_mapi_func
 * @bpf:     BPF_FILTER's program
 * @count:   PKT_COUNTER packets, BYTE_COUNTER bytes, BPF_FILTER packets passed
 * @field:   TOP / DIST: enum mapi_field
 * @n:       TOP: rows
 * @top:     TOP's sketch
 * @hll:     DIST's sketch
 * @ref:     THRESHOLD: index of the counter it watches
 * @bound:   THRESHOLD: the bound
 * @fired, @fired_ts, @fired_value: THRESHOLD's event
 * @written_us: TOP: packet time its slot was last written
 * @needle, @needle_len, @offset, @depth: STR_SEARCH
 * @value, @mode, @seen, @rng: SAMPLE
 * @anon, @strip: ANONYMIZE
 * @sources, @anomaly, @window_us: FANOUT / PORTSCAN (@bound is the threshold)
 */
#define FL_MAPI_COPY_MAX 65536 /* ANONYMIZE sees at most this much of a frame */

struct fl_mapi_fn {
	enum mw_mapi_func id;
	struct bpf_program bpf;
	uint64_t count;
	int field;
	int n;
	struct fl_topn top;
	struct fl_hll hll;
	int ref;
	uint64_t bound;
	bool fired;
	uint64_t fired_ts, fired_value;
	uint64_t written_us;
	char needle[MW_MAPI_SARG_MAX];
	size_t needle_len;
	uint32_t offset, depth;
	int64_t value;
	int mode;
	uint64_t seen;
	uint32_t rng;
	struct fl_anon anon;
	int strip;
	struct fl_ftab sources;
	struct mapi_anomaly *anomaly;
	uint64_t window_us;
};

/**
 * struct fl_mapi_flow - one client connection = one flow
 * @fd:        the SOCK_SEQPACKET connection
 * @io:        its watcher
 * @uid:       SO_PEERCRED uid, for the log
 * @scope:     bit i: live sensor i is in the flow's scope
 * @created:   CREATE accepted
 * @area:      the result area (memfd mapping), NULL until CONNECT
 * @fns:       functions in the order applied
 * @copy:      ANONYMIZE's writable copy of the frame (FL_MAPI_COPY_MAX bytes), or NULL
 * @restricted: admitted by flowd.mapi_sensor_groups only: the scope must match @acl
 * @acl:       bit i: the client is in the group of the server's acl[i]
 */
struct fl_mapi_flow {
	int fd;
	ev_io io;
	uid_t uid;
	uint32_t scope;
	bool created;
	uint8_t *area;
	int nfns;
	struct fl_mapi_fn fns[MW_MAPI_FUNCS_MAX];
	uint8_t *copy;
	bool restricted;
	uint32_t acl;
	struct fl_mapi *srv;
};

#define FL_MAPI_ACL_MAX 16

/**
 * struct fl_mapi_acl - one flowd.mapi_sensor_groups entry
 * @gid:      the group
 * @patterns: fnmatch(3) patterns of sensor names, separated by ',' or ' '
 */
struct fl_mapi_acl {
	long gid;
	char patterns[256];
};

/**
 * struct fl_mapi - the control socket and its flows
 * @listen_fd:  AF_UNIX SOCK_SEQPACKET, mode 0666: SO_PEERCRED decides
 * @group_gid:  members of flowd.mapi_group may create flows; -1 = root only
 * @sensors:    names of the live sensors, index = scope bit
 * @flows:      at most flowd.mapi_max_flows
 * @refused:    connections refused (not allowed, too many)
 * @acl:        per-sensor permissions (flowd.mapi_sensor_groups)
 */
struct fl_mapi {
	int listen_fd;
	ev_io io;
	struct ev_loop *loop;
	long group_gid;
	const char (*sensors)[16];
	int nsensors;
	struct fl_mapi_flow **flows;
	int max_flows;
	int nflows;
	uint64_t refused;
	struct fl_mapi_acl acl[FL_MAPI_ACL_MAX];
	int nacl;
};

/* mapi_flow.c */
int fl_mapi_flow_apply(struct fl_mapi_flow *f, const struct mw_mapi_req *req, char *err,
		       size_t errlen);
int fl_mapi_flow_connect(struct fl_mapi_flow *f, int *memfd, char *err, size_t errlen);
void fl_mapi_flow_packet(struct fl_mapi_flow *f, uint64_t ts_us, const uint8_t *frame,
			 size_t caplen, uint32_t wirelen, const struct fl_pkt *p, bool decoded);
void fl_mapi_flow_sync(struct fl_mapi_flow *f);
void fl_mapi_flow_free(struct fl_mapi_flow *f);

/* mapi_server.c */
int fl_mapi_open(struct fl_mapi *m, struct ev_loop *loop, const char *path, const char *group,
		 int max_flows, const char (*sensors)[16], int nsensors, char *err, size_t errlen);
int fl_mapi_handle(struct fl_mapi *m, struct fl_mapi_flow *f, const struct mw_mapi_req *req,
		   struct mw_mapi_reply *rep, int *memfd);
void fl_mapi_packet(struct fl_mapi *m, int sensor, uint64_t ts_us, const uint8_t *frame,
		    size_t caplen, uint32_t wirelen);
void fl_mapi_sync(struct fl_mapi *m);
void fl_mapi_close(struct fl_mapi *m);
int fl_mapi_set_acl(struct fl_mapi *m, const char (*entries)[256], int n, char *err, size_t errlen);

#endif /* MW_FLOWD_MAPI_FLOW_H */
