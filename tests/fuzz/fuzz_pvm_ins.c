/* SPDX-License-Identifier: MIT */
/* fuzz_pvm_ins.c - sequences of INS frames and shim requests against the real mw-pvm state */
#include <errno.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>

#include "common/sockid.h"
#include "tests/fuzz/fz_input.h"
#include "tests/fuzz/pvm_harness.h"

/*
 * Input: a program.  Each step is one opcode byte and its arguments; names
 * of sockets and requests are indexes into what mw-pvm has sent so far, so
 * that short inputs reach sockets that exist on this INS and requests that
 * wait.  The INS side plays whatever the input says (an INS is hostile);
 * the shim side plays a registered app.  mw-pvm must never crash, leak or
 * read out of bounds, whatever order things come in.
 */

enum fz_step {
	FZ_SHIM,   /* a shim request on a known socket */
	FZ_RESULT, /* RESULT for a waiting op */
	FZ_EVENT,  /* an EV_* / DATA / CREDIT frame on a known socket */
	FZ_RAW,	   /* any frame: type, sock, payload from the input */
	FZ_REJOIN, /* the INS goes away (or comes back, with another id) */
	FZ_STEPS
};

#define FZ_MAX_STEPS 64

static const uint16_t fz_events[] = { MW_EV_ACCEPTED, MW_EV_CONNECTED, MW_EV_EOF,
				      MW_EV_RESET,    MW_EV_ERROR,     MW_EV_CLOSED,
				      MW_DATA,	      MW_CREDIT,       MW_EV_HEARTBEAT };

static uint64_t fz_sock(struct fz_in *in, const struct ph *h)
{
	uint8_t k = fz_u8(in);

	if (k == 0xff)
		return fz_u64(in);
	return h->nsocks ? h->socks[k % h->nsocks] : 0;
}

static void fz_addr(struct fz_in *in, struct mw_addr *a)
{
	uint8_t v = fz_u8(in);

	memset(a, 0, sizeof(*a));
	a->family = v & 1 ? 6 : 4;
	a->port = fz_u16(in);
	if (v & 2)
		fz_bytes(in, a->addr, sizeof(a->addr));
	else if (a->family == 4)
		a->addr[0] = 127, a->addr[3] = 1;
	else
		a->addr[15] = 1;
	if (v & 4)
		a->family = fz_u8(in);
}

static void fz_shim(struct fz_in *in, struct ph *h)
{
	struct mw_shimctl_req req;
	int fd;

	memset(&req, 0, sizeof(req));
	req.op = 1 + fz_u8(in) % 11u;
	req.sock = fz_sock(in, h);
	req.arg = fz_s8(in);
	if (req.op == MW_SHIMCTL_SOCKET)
		req.arg = req.arg & 1 ? 6 : 4;
	if (req.op == MW_SHIMCTL_REGISTER)
		req.arg = MW_SHIMCTL_VERSION;
	req.arg2 = fz_s8(in);
	req.flags = fz_u8(in) & 3u;
	fz_addr(in, &req.addr);
	req.len = fz_u8(in) % (MW_SOCKOPT_MAX + 8u);
	fz_bytes(in, req.val, req.len < MW_SOCKOPT_MAX ? req.len : MW_SOCKOPT_MAX);
	fd = fz_u8(in) & 0x80 ? -1 : ph_app_fd(h, req.sock);
	if (fd >= 0 && req.op == MW_SHIMCTL_LISTEN)
		listen(fd, 16);
	ph_shim_send(h, &req, sizeof(req), fd);
}

static void fz_result(struct fz_in *in, struct ph *h)
{
	uint8_t buf[sizeof(struct mw_result) + MW_SOCKOPT_MAX + 8];
	struct mw_result r = { 0 };
	struct ph_req q = { 0 };
	uint8_t k = fz_u8(in), st = fz_u8(in);
	uint32_t vlen = fz_u8(in) % (MW_SOCKOPT_MAX + 8u);

	if (h->nreqs) {
		unsigned i = k % h->nreqs;

		q = h->reqs[i];
		h->nreqs--;
		h->reqs[i] = h->reqs[h->nreqs];
	}
	r.req = st & 0x80 ? fz_u32(in) : q.req;
	r.status = st & 0x40 ? -(int32_t)(st & 0x3f) : 0;
	if (st == 0xff)
		r.status = (int32_t)fz_u32(in);
	r.len = vlen;
	memcpy(buf, &r, sizeof(r));
	fz_bytes(in, buf + sizeof(r), vlen);
	if (q.type == MW_OP_GETNAME && vlen >= sizeof(struct mw_addr)) {
		struct mw_addr a;

		fz_addr(in, &a);
		memcpy(buf + sizeof(r), &a, sizeof(a));
	}
	ph_ins_send(h, MW_RESULT, q.sock, buf, (uint32_t)sizeof(r) + vlen);
}

static void fz_event(struct fz_in *in, struct ph *h)
{
	uint8_t pl[512];
	uint16_t type = fz_events[fz_u8(in) % (sizeof(fz_events) / sizeof(fz_events[0]))];
	uint64_t sock = fz_sock(in, h);
	uint32_t len = 0;

	memset(pl, 0, sizeof(pl));
	switch (type) {
	case MW_EV_ACCEPTED: {
		struct mw_ev_accepted ev = { 0 };
		uint8_t v = fz_u8(in);

		ev.new_sock = v & 0x80 ? fz_u64(in)
				       : mw_sockid_make(h->ins_id, 0,
							MW_SOCKID_INS_ASSIGNED | h->next_accept++);
		fz_addr(in, &ev.peer);
		fz_addr(in, &ev.local);
		memcpy(pl, &ev, sizeof(ev));
		len = sizeof(ev);
		break;
	}
	case MW_EV_CONNECTED: {
		struct mw_ev_connected ev;

		fz_addr(in, &ev.local);
		fz_addr(in, &ev.peer);
		memcpy(pl, &ev, sizeof(ev));
		len = sizeof(ev);
		break;
	}
	case MW_EV_RESET:
	case MW_EV_ERROR: {
		struct mw_ev_errno ev = { .err = fz_u8(in) };

		memcpy(pl, &ev, sizeof(ev));
		len = sizeof(ev);
		break;
	}
	case MW_CREDIT: {
		struct mw_credit cr = { .bytes = fz_u16(in) };

		memcpy(pl, &cr, sizeof(cr));
		len = sizeof(cr);
		break;
	}
	case MW_DATA:
		len = 1 + fz_u16(in) % sizeof(pl);
		fz_bytes(in, pl, len);
		break;
	case MW_EV_HEARTBEAT:
		sock = 0;
		len = sizeof(struct mw_stats);
		fz_bytes(in, pl, len);
		break;
	default:
		break;
	}
	ph_ins_send(h, type, sock, pl, len);
}

static void fz_raw(struct fz_in *in, struct ph *h)
{
	uint8_t pl[320];
	uint16_t type = fz_u8(in);
	uint64_t sock = fz_sock(in, h);
	uint32_t len = fz_u16(in) % sizeof(pl);

	fz_bytes(in, pl, len);
	ph_ins_send(h, type, sock, pl, len);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct ph h;
	struct fz_in in = { data, size };

	ph_open(&h);
	for (int step = 0; step < FZ_MAX_STEPS && in.left; step++) {
		switch (fz_u8(&in) % FZ_STEPS) {
		case FZ_SHIM:
			fz_shim(&in, &h);
			break;
		case FZ_RESULT:
			fz_result(&in, &h);
			break;
		case FZ_EVENT:
			fz_event(&in, &h);
			break;
		case FZ_RAW:
			fz_raw(&in, &h);
			break;
		default:
			if (h.ins_up)
				ph_ins_leave(&h);
			else
				ph_ins_join(&h, 1 + fz_u8(&in) % 3u);
			break;
		}
		ph_pump(&h);
	}
	ph_close(&h);
	return 0;
}
