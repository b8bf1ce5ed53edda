/* SPDX-License-Identifier: MIT */
/* fuzz_flow_mapi.c - a hostile libmwmapi client: any requests, then frames through its flow */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "flowd/mapi_flow.h"
#include "tests/fuzz/fz_input.h"

/*
 * The input is a sequence of steps.  A step's first byte picks it: even, a
 * request (the next sizeof(struct mw_mapi_req) bytes, short ones padded with
 * 0, version forced right half of the time, as the server's size and version
 * check would otherwise stop most of them); odd, a frame (a length byte, a
 * sensor byte, then the bytes) run through every connected flow.  The
 * server's handler and the function library must never crash, and the
 * results they publish must stay inside the area.
 */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char sensors[2][16] = { "eth0", "eth1" };
	struct fz_in in = { data, size };
	struct fl_mapi_flow *flows[1];
	struct fl_mapi m;
	struct fl_mapi_flow *f = calloc(1, sizeof(*f));
	uint64_t ts = 1700000000ULL * 1000000;

	if (!f)
		return 0;
	memset(&m, 0, sizeof(m));
	m.listen_fd = -1;
	m.sensors = sensors;
	m.nsensors = 2;
	m.flows = flows;
	m.max_flows = 1;
	m.nflows = 1;
	m.group_gid = -1;
	flows[0] = f;
	f->fd = -1;
	f->srv = &m;
	while (in.left) {
		uint8_t step = fz_u8(&in);

		if (!(step & 1)) {
			struct mw_mapi_req req;
			struct mw_mapi_reply rep;
			size_t n = in.left < sizeof(req) ? in.left : sizeof(req);
			int memfd = -1;

			memset(&req, 0, sizeof(req));
			memcpy(&req, in.p, n);
			in.p += n;
			in.left -= n;
			if (step & 2)
				req.version = MW_MAPI_VERSION;
			if (req.version != MW_MAPI_VERSION)
				continue;
			req.sarg[sizeof(req.sarg) - 1] = '\0';
			memset(&rep, 0, sizeof(rep));
			fl_mapi_handle(&m, f, &req, &rep, &memfd);
			if (memfd >= 0)
				close(memfd);
		} else {
			size_t len = fz_u8(&in);
			int sensor = fz_u8(&in) % 2;

			if (len > in.left)
				len = in.left;
			ts += 50000;
			fl_mapi_packet(&m, sensor, ts, in.p, len, (uint32_t)len);
			in.p += len;
			in.left -= len;
		}
	}
	if (f->area)
		fl_mapi_sync(&m);
	fl_mapi_flow_free(f);
	return 0;
}
