/* SPDX-License-Identifier: MIT */
/* fake_pvm.h - test harness: the real mw-ins driven over a local channel by a fake PVM */
#ifndef MW_TEST_FAKE_PVM_H
#define MW_TEST_FAKE_PVM_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "common/addr.h"
#include "common/channel.h"
#include "common/proto.h"

/*
 * The test plays mw-pvm: it listens where ins.pvm_socket points, starts the
 * built mw-ins with a temp config, offers the channel and drives ops.  Frames
 * from the INS are sorted as they arrive: DATA into per-socket buffers, CREDIT
 * into per-socket counters, heartbeats into the last stats, everything else
 * into a FIFO the tests take matching frames from.  Every wait has a deadline.
 */

#define INS_ID	    3
#define PVM_INDEX   2
#define RING	    (256u * 1024u)
#define PVM_WINDOW  65536u /* credit we grant the INS per socket */
#define INS_WINDOW  65536  /* ins.socket_window: credit the INS grants us */
#define WAIT_MS	    10000
#define MAX_EVENTS  8192
#define MAX_STREAMS 16

struct ev {
	struct mw_frame f;
	uint8_t p[128];
};

struct stream {
	uint64_t id;
	uint8_t *buf;
	size_t len, cap;
	uint64_t credit_back; /* CREDIT the INS returned for our DATA */
};

struct harness {
	char dir[40], conf[96], sock[96], log[96];
	int lfd;
	pid_t pid;
	struct mw_channel ch;
	bool up;
	struct ev *evs;
	size_t nevs;
	struct stream st[MAX_STREAMS];
	struct mw_stats hb;
	unsigned hb_count;
	uint32_t next_req, next_local;
};

extern struct harness H;

/* ins keys written into the config by the next ins_start() ("" or NULL: none). */
extern const char *fake_pvm_ins_extra;

int64_t now_ms(void);
struct stream *stream_of(uint64_t id);
bool pump(void);
void pump_wait(int ms);
struct ev take(uint16_t type, uint64_t sock);
void send_frame(uint16_t type, uint64_t sock, const void *p, uint32_t len);
int op(uint16_t type, uint64_t sock, void *payload, uint32_t len, void *val, uint32_t *vlen);
uint64_t new_id(void);
uint64_t op_socket(void);
struct mw_addr loopback(uint16_t port);
int op_addr(uint16_t type, uint64_t id, struct mw_addr a);
struct mw_addr op_getname(uint64_t id, int which);
void op_close(uint64_t id, bool abort);
void credit(uint64_t id, uint32_t bytes);
uint64_t ins_listener(uint16_t *port);
int tcp_connect(uint16_t port);
int tcp_listener(uint16_t *port);
uint16_t local_port(int fd);
bool readable(int fd, int ms);
int ins_start(void **state);
int ins_wait_exit(int ms);
bool log_has(const char *needle);
int ins_stop(void **state);

#endif /* MW_TEST_FAKE_PVM_H */
