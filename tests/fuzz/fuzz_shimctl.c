/* SPDX-License-Identifier: MIT */
/* fuzz_shimctl.c - shim control requests (any bytes, any fd) against the real mw-pvm */
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "tests/fuzz/fz_input.h"
#include "tests/fuzz/pvm_harness.h"

/*
 * Input: a sequence of requests from a registered app.  Each is a control
 * byte (which fd comes with it, whether its sock field names a socket mw-pvm
 * gave out, whether the app's AF_UNIX end listens, whether it is 128 bytes)
 * and the request bytes.  An honest INS answers every op mw-pvm sends with
 * success, so requests reach the states behind them (bound, listening,
 * connecting).  Any local user can send these: mw-pvm must stay sound.
 */

#define FZ_MAX_STEPS 48

/* The honest INS: RESULT 0 for every op waiting, a loopback name for GETNAME. */
static void fz_answer_all(struct ph *h)
{
	uint8_t buf[sizeof(struct mw_result) + sizeof(struct mw_addr)];
	struct mw_addr a = { .family = 4, .port = 8080, .addr = { 127, 0, 0, 1 } };

	while (h->nreqs) {
		struct ph_req q = h->reqs[--h->nreqs];
		struct mw_result r = { .req = q.req };

		if (q.type == MW_OP_GETNAME)
			r.len = sizeof(a);
		memcpy(buf, &r, sizeof(r));
		memcpy(buf + sizeof(r), &a, sizeof(a));
		ph_ins_send(h, MW_RESULT, q.sock, buf, (uint32_t)sizeof(r) + r.len);
	}
}

static void fz_step(struct fz_in *in, struct ph *h)
{
	uint8_t raw[sizeof(struct mw_shimctl_req) + 16];
	struct mw_shimctl_req req;
	uint8_t ctl = fz_u8(in), k = fz_u8(in);
	uint64_t sock = h->nsocks ? h->socks[k % h->nsocks] : 0;
	size_t len = sizeof(req);
	int fd = -1, pipefd[2] = { -1, -1 };

	fz_bytes(in, raw, sizeof(raw));
	memcpy(&req, raw, sizeof(req));
	req.op %= 16u;
	if (ctl & 1)
		req.sock = sock;
	if (ctl & 2)
		len = fz_u8(in) % sizeof(raw);
	switch (ctl >> 2 & 3) {
	case 1:
		fd = ph_app_fd(h, req.sock);
		if (fd >= 0 && (ctl & 0x10))
			listen(fd, 16);
		break;
	case 2:
		if (pipe(pipefd) == 0)
			fd = pipefd[0];
		break;
	default:
		break;
	}
	if (len == sizeof(req))
		memcpy(raw, &req, sizeof(req));
	ph_shim_send(h, raw, len, fd);
	if (pipefd[0] >= 0) {
		close(pipefd[0]);
		close(pipefd[1]);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct ph h;
	struct fz_in in = { data, size };

	ph_open(&h);
	for (int step = 0; step < FZ_MAX_STEPS && in.left && h.shim >= 0; step++) {
		fz_step(&in, &h);
		ph_pump(&h);
		fz_answer_all(&h);
		ph_pump(&h);
	}
	ph_close(&h);
	return 0;
}
