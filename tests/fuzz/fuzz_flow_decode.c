/* SPDX-License-Identifier: MIT */
/* fuzz_flow_decode.c - arbitrary frames into mw-flowd's decoder and engine (tiny tables) */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "flowd/engine.h"
#include "tests/fuzz/fz_input.h"

/*
 * Each input is a sequence of frames: one length byte, one byte of clock step
 * (seconds), then that many bytes.  Tables of 16 entries fill at once, so the
 * full, drop and collection paths run as often as the decoder does.
 */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct mw_config cfg;
	static FILE *devnull;
	struct fl_engine e;
	struct fz_in in = { data, size };
	uint64_t ts = 1700000000ULL * 1000000;
	char err[128];

	if (!devnull) {
		mw_config_defaults(&cfg);
		cfg.flowd.max_addresses = 16;
		cfg.flowd.max_streams = 16;
		cfg.flowd.max_ports = 16;
		cfg.flowd.sketch_counters = 4;
		cfg.flowd.fanout_threshold = 2;
		cfg.flowd.scan_threshold = 2;
		cfg.flowd.report_interval_s = 2;
		snprintf(cfg.flowd.inside[0], MW_ADDR_TEXT_MAX, "10.0.0.0/8");
		cfg.flowd.inside_count = 1;
		devnull = fopen("/dev/null", "w");
	}
	if (fl_engine_init(&e, &cfg.flowd, devnull, "fuzz", err, sizeof(err)))
		return 0;
	while (in.left) {
		size_t len = fz_u8(&in);
		struct fl_pkt p;

		ts += (uint64_t)fz_u8(&in) * 1000000 / 16;
		if (len > in.left)
			len = in.left;
		fl_decode_ether(&p, in.p, len);
		fl_engine_packet(&e, ts, in.p, len, (uint32_t)len);
		in.p += len;
		in.left -= len;
	}
	fl_engine_flush(&e);
	fl_engine_fini(&e);
	return 0;
}
