/* SPDX-License-Identifier: MIT */
/* fuzz_flow_socks.c - a hostile Netflow stream into mw-flowd's socket table (16 entries) */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "flowd/decode.h"
#include "flowd/socktab.h"
#include "tests/fuzz/fz_input.h"

/*
 * Each input is a sequence of records: one byte of clock step (seconds), then
 * an observation's 116 bytes as mw-flowd's link reads them (framed and decoded
 * by the Netflow codec; what does not decode is skipped, as the link would drop
 * the stream).  The table of 16 entries fills at once, so the full, report,
 * collection and reset paths run as often as observe does.  Every record a MAPI
 * flow would get (a header-only frame, sockframe.c) must decode, with its
 * endpoints' ports; the classes use an inside network.
 */

static void tap(void *ctx, int index, uint64_t ts_us, const uint8_t *frame, size_t caplen,
		uint32_t wirelen)
{
	struct fl_pkt p;

	(void)ctx;
	(void)index;
	(void)ts_us;
	(void)wirelen;
	if (fl_decode_ether(&p, frame, caplen) != FL_DECODE_OK || !p.has_ports || p.proto != 6)
		__builtin_trap();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct mw_config cfg;
	static FILE *devnull;
	struct fl_socks s;
	struct fz_in in = { data, size };
	uint64_t now = 1700000000ULL;
	char err[128];

	if (!devnull) {
		mw_config_defaults(&cfg);
		cfg.flowd.max_sockets = 16;
		cfg.flowd.sketch_counters = 4;
		cfg.flowd.report_interval_s = 2;
		cfg.flowd.stream_idle_s = 3;
		snprintf(cfg.flowd.inside[0], sizeof(cfg.flowd.inside[0]), "10.0.0.0/8");
		cfg.flowd.inside_count = 1;
		devnull = fopen("/dev/null", "w");
	}
	if (fl_socks_init(&s, &cfg.flowd, devnull, "fuzz", err, sizeof(err)))
		return 0;
	s.tap = tap;
	while (in.left) {
		uint8_t step = fz_u8(&in);
		uint8_t buf[MW_NF_INFO_SIZE] = { 0 };
		size_t len = in.left < sizeof(buf) ? in.left : sizeof(buf);
		struct mw_nf_info info;

		memcpy(buf, in.p, len);
		in.p += len;
		in.left -= len;
		mw_nf_put16(buf, MW_NF_SIG_INFO); /* the framer already chose this size */
		if (mw_nf_frame_next(buf, sizeof(buf)) == MW_NF_INFO_SIZE &&
		    !mw_nf_decode_info(&info, buf, sizeof(buf), NULL))
			fl_socks_observe(&s, &info, now);
		now += step % 8;
		if (step & 0x80)
			fl_socks_tick(&s, now);
		if (step == 0xff)
			fl_socks_reset(&s, now);
	}
	fl_socks_report(&s, now, true);
	fl_socks_fini(&s);
	return 0;
}
