/* SPDX-License-Identifier: MIT */
/* mapi_flow.h - MAPI flows inside mw-flowd: functions in order, results in a shared area */
#ifndef MW_FLOWD_MAPI_FLOW_H
#define MW_FLOWD_MAPI_FLOW_H

#include <ev.h>
#include <pcap/pcap.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>

#include "common/subuid.h"
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
 * @nf_scope:  bit i: Netflow sensor i is
 * @created:   CREATE accepted
 * @area:      the result area (memfd mapping), NULL until CONNECT
 * @area_fd:   its memfd (read-write, ours; valid while @area is set)
 * @fns:       functions in the order applied
 * @copy:      ANONYMIZE's writable copy of the frame (FL_MAPI_COPY_MAX bytes), or NULL
 * @restricted: admitted by flowd.mapi_sensor_groups only: the scope must match @acl
 * @acl:       bit i: the client is in the group of the server's acl[i]
 * @client:    its entry in the server's client table
 */
struct fl_mapi_flow {
	int fd;
	ev_io io;
	uid_t uid;
	uint32_t scope;
	uint32_t nf_scope;
	bool created;
	uint8_t *area;
	int area_fd;
	int nfns;
	struct fl_mapi_fn fns[MW_MAPI_FUNCS_MAX];
	uint8_t *copy;
	bool restricted;
	uint32_t acl;
	int client;
	struct fl_mapi *srv;
};

/**
 * struct fl_mapi_client - one client process (SO_PEERCRED pid) holding flows
 * @pid:   the process, 0 = free entry
 * @acct:  the user it counts as: its uid, or the account of its subordinate
 *         range (flowd.subuid_file)
 * @flows: flows it holds (at most flowd.mapi_client_flows)
 */
struct fl_mapi_client {
	pid_t pid;
	uid_t acct;
	int flows;
};

/**
 * struct fl_mapi_limits - the MAPI tables' capacities (flowd.mapi_max_*)
 * @flows:        flows at once (the flow table)
 * @clients:      client processes at once (the client table)
 * @client_flows: flows one client may hold
 */
struct fl_mapi_limits {
	int flows;
	int clients;
	int client_flows;
};

#define FL_MAPI_ACL_MAX 16
#define FL_MAPI_NF_MAX	32 /* Netflow sensors a scope can name */

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
 * @nf_names:   names of the Netflow sensors ("netflow:<address>"), index = nf_scope bit
 * @flows:      at most flowd.mapi_max_flows, pointers into @pool
 * @pool:       the flow table, allocated at open (NULL: @flows were set by the caller)
 * @nscan:      1 + the highest slot of @flows holding a connected flow (0: none)
 * @scope_any, @nf_scope_any: the scopes of the connected flows, or'ed: a frame or record
 *              no flow wants costs one test
 * @clients:    the client table, allocated at open (flowd.mapi_max_clients)
 * @refused:    connections refused because the peer may not create flows
 * @flow_drops: refused because the flow table was full
 * @client_drops: refused because the client table was full (a new process)
 * @client_flow_drops: refused because the process held flowd.mapi_client_flows
 * @acl:        per-sensor permissions (flowd.mapi_sensor_groups)
 */
struct fl_mapi {
	int listen_fd;
	ev_io io;
	struct ev_loop *loop;
	long group_gid;
	const char (*sensors)[16];
	int nsensors;
	const char *nf_names[FL_MAPI_NF_MAX];
	int n_nf;
	struct fl_mapi_flow **flows;
	int max_flows;
	int nflows;
	int nscan;
	uint32_t scope_any, nf_scope_any;
	struct fl_mapi_flow *pool;
	struct fl_mapi_client *clients;
	int max_clients;
	int nclients;
	int client_flows;
	uint64_t refused;
	uint64_t flow_drops, client_drops, client_flow_drops;
	struct fl_mapi_acl acl[FL_MAPI_ACL_MAX];
	int nacl;
	struct mw_subuids subuids; /* flowd.subuid_file: each owner's uids one user */
};

/* mapi_flow.c */
int fl_mapi_flow_apply(struct fl_mapi_flow *f, const struct mw_mapi_req *req, char *err,
		       size_t errlen);
int fl_mapi_flow_connect(struct fl_mapi_flow *f, int *memfd, char *err, size_t errlen);
bool fl_mapi_punch_wait(int ms);
void fl_mapi_flow_packet(struct fl_mapi_flow *f, uint64_t ts_us, const uint8_t *frame,
			 size_t caplen, uint32_t wirelen, const struct fl_pkt *p, bool decoded);
void fl_mapi_flow_sync(struct fl_mapi_flow *f);
void fl_mapi_flow_release(struct fl_mapi_flow *f);
void fl_mapi_flow_free(struct fl_mapi_flow *f);

/* mapi_server.c */
int fl_mapi_open(struct fl_mapi *m, struct ev_loop *loop, const char *path, const char *group,
		 const struct fl_mapi_limits *lim, const char (*sensors)[16], int nsensors,
		 char *err, size_t errlen);
int fl_mapi_take(struct fl_mapi *m, pid_t pid, uid_t uid, struct fl_mapi_flow **flow,
		 const char **why);
void fl_mapi_put(struct fl_mapi *m, struct fl_mapi_flow *f);
void fl_mapi_sensor_gone(struct fl_mapi *m, int sensor);
void fl_mapi_report(const struct fl_mapi *m, FILE *out, uint64_t ts);
int fl_mapi_handle(struct fl_mapi *m, struct fl_mapi_flow *f, const struct mw_mapi_req *req,
		   struct mw_mapi_reply *rep, int *memfd);
void fl_mapi_packet(struct fl_mapi *m, int sensor, uint64_t ts_us, const uint8_t *frame,
		    size_t caplen, uint32_t wirelen);
void fl_mapi_record(void *ctx, int index, uint64_t ts_us, const uint8_t *frame, size_t caplen,
		    uint32_t wirelen);
void fl_mapi_sync(struct fl_mapi *m);
void fl_mapi_close(struct fl_mapi *m);
int fl_mapi_set_acl(struct fl_mapi *m, const char (*entries)[256], int n, char *err, size_t errlen);

#endif /* MW_FLOWD_MAPI_FLOW_H */
