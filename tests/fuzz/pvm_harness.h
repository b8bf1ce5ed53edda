/* SPDX-License-Identifier: MIT */
/* pvm_harness.h - the real mw-pvm in process, with a fake INS on its channel and a fake shim */
#ifndef MW_PVM_HARNESS_H
#define MW_PVM_HARNESS_H

#include <stdbool.h>
#include <stdint.h>

#include "common/channel.h"
#include "common/shimctl.h"
#include "pvm/pvm.h"

#define PH_MAX_SOCKS 32
#define PH_MAX_REQS  64

/* An op mw-pvm sent to the fake INS and that is not answered yet. */
struct ph_req {
	uint32_t req;
	uint16_t type;
	uint64_t sock;
};

/*
 * One mw-pvm (pvm_ins.c, pvm_shim.c, pvm_sock.c, pvm_relay.c as mw-pvm runs
 * them, on a loop of its own), one fake INS joined through the real local
 * handshake, and one registered shim control connection.  What mw-pvm sends
 * is collected: socket ids (from the shim's answers and from its ops), and
 * the ops still waiting for a RESULT, so that inputs can name them by index.
 */
struct ph {
	struct mw_daemon d;
	struct pvm p;
	struct mw_channel ins; /* the fake INS's end */
	bool ins_up;
	uint16_t ins_id;
	uint32_t next_accept;
	int shim; /* registered SOCK_SEQPACKET control connection, -1 if gone */
	uint64_t tag;
	uint64_t socks[PH_MAX_SOCKS];
	int app_fd[PH_MAX_SOCKS]; /* the app's AF_UNIX end named for the id, -1 none */
	unsigned nsocks;
	struct ph_req reqs[PH_MAX_REQS];
	unsigned nreqs;
	unsigned answers; /* shim responses read */
};

int ph_open(struct ph *h);
void ph_close(struct ph *h);
void ph_pump(struct ph *h);
int ph_ins_join(struct ph *h, uint16_t id);
void ph_ins_leave(struct ph *h);
int ph_ins_send(struct ph *h, uint16_t type, uint64_t sock, const void *pl, uint32_t len);
int ph_shim_send(struct ph *h, const void *req, size_t len, int fd);
int ph_app_fd(struct ph *h, uint64_t sock);

#endif /* MW_PVM_HARNESS_H */
