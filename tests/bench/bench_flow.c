/* SPDX-License-Identifier: MIT */
/* bench_flow.c - mw-flowd's per-packet cost: engine, a MAPI flow, and libpcap's filter alone */
#include <arpa/inet.h>
#include <pcap/pcap.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "flowd/engine.h"
#include "flowd/mapi_flow.h"
#include "flowd/sensor.h"
#include "flowd/socktab.h"
#include "mapi/include/mwmapi.h"
#include "tests/unit/flow_frames.h"

/*
 * bench_flow [FILE.pcap] [PASSES]: frames from the file (or a synthetic mix:
 * 4096 clients, 64 servers, ports 80/443/22/53, 100-1400 byte payloads, one
 * SYN in 16) are held in memory and replayed PASSES times (default 20) through
 *   engine  the report engine (decode, address/stream/port tables, classes,
 *           three Space-Saving sketches, HyperLogLogs, collection),
 *   mapi    one MAPI flow: BPF_FILTER "tcp port 80", PKT_COUNTER, BYTE_COUNTER,
 *           TOP(SRC_IP, 10),
 *   pcap    libpcap's pcap_offline_filter with the same expression alone
 *           (what tcpdump pays per frame before printing),
 *   socks   Netflow observations (not frames): 64 keep-alive sockets, each
 *           request a recv and a send observation, framed, decoded and taken
 *           into the socket table as mw-flowd's stream sensor does, no MAPI
 *           flow over it,
 * on one core, with packet time advancing so per-second work happens too.
 * Prints frames (observations) per second for each.  SKETCH=N sets flowd.sketch_counters.
 */

#define SYNTH_FRAMES 200000

struct frame {
	uint64_t ts_us;
	uint32_t len;
	uint8_t *data;
};

static struct frame *frames;
static size_t nframes;

static double now_s(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static void load_pcap(const char *path)
{
	char err[PCAP_ERRBUF_SIZE];
	struct pcap_pkthdr *h;
	const u_char *d;
	pcap_t *p = pcap_open_offline(path, err);
	size_t cap = 1024;

	if (!p) {
		fprintf(stderr, "%s: %s\n", path, err);
		exit(1);
	}
	frames = malloc(cap * sizeof(*frames));
	while (pcap_next_ex(p, &h, &d) == 1) {
		if (nframes == cap) {
			struct frame *more = realloc(frames, (cap *= 2) * sizeof(*frames));

			if (!more) {
				fprintf(stderr, "out of memory\n");
				exit(1);
			}
			frames = more;
		}
		frames[nframes].ts_us = (uint64_t)h->ts.tv_sec * 1000000 + (uint64_t)h->ts.tv_usec;
		frames[nframes].len = h->caplen;
		frames[nframes].data = malloc(h->caplen);
		memcpy(frames[nframes].data, d, h->caplen);
		nframes++;
	}
	pcap_close(p);
}

static void synth(void)
{
	static const uint16_t ports[] = { 80, 443, 22, 53 };
	uint32_t rng = 2463534242u;
	size_t i;

	frames = calloc(SYNTH_FRAMES, sizeof(*frames));
	for (i = 0; i < SYNTH_FRAMES; i++) {
		char cli[32], srv[32];
		uint8_t buf[1600];
		uint16_t dport;
		size_t n;

		rng ^= rng << 13;
		rng ^= rng >> 17;
		rng ^= rng << 5;
		snprintf(cli, sizeof(cli), "10.0.%u.%u", (rng >> 8) & 15, 1 + ((rng >> 16) & 255));
		snprintf(srv, sizeof(srv), "192.0.2.%u", 1 + ((rng >> 20) & 63));
		dport = ports[(rng >> 26) & 3];
		n = ff_v4(buf, cli, srv, dport == 53 ? 17 : 6, (uint16_t)(30000 + (rng & 4095)),
			  dport, (rng >> 28) == 0 ? FL_TCP_SYN : FL_TCP_ACK, 100 + (rng % 1300));
		frames[i].ts_us = 1700000000ULL * 1000000 + i * 10; /* 100 kpps of packet time */
		frames[i].len = (uint32_t)n;
		frames[i].data = malloc(n);
		memcpy(frames[i].data, buf, n);
	}
	nframes = SYNTH_FRAMES;
}

static uint64_t span_us(void)
{
	return frames[nframes - 1].ts_us - frames[0].ts_us + 1000000;
}

static double run_engine(int passes)
{
	static struct mw_config cfg;
	struct fl_engine e;
	FILE *null = fopen("/dev/null", "w");
	const char *sketch;
	char err[128];
	double t0;
	int p;
	size_t i;

	mw_config_defaults(&cfg);
	snprintf(cfg.flowd.inside[0], MW_ADDR_TEXT_MAX, "10.0.0.0/8");
	cfg.flowd.inside_count = 1;
	sketch = getenv("SKETCH");
	if (sketch)
		cfg.flowd.sketch_counters = (int)strtol(sketch, NULL, 10);
	if (fl_engine_init(&e, &cfg.flowd, null, "bench", err, sizeof(err))) {
		fprintf(stderr, "%s\n", err);
		exit(1);
	}
	t0 = now_s();
	for (p = 0; p < passes; p++)
		for (i = 0; i < nframes; i++)
			fl_engine_packet(&e, frames[i].ts_us + (uint64_t)p * span_us(),
					 frames[i].data, frames[i].len, frames[i].len);
	fl_engine_flush(&e);
	t0 = now_s() - t0;
	printf("engine: addresses %u (drops %llu), streams %u (drops %llu)\n", e.addrs.count,
	       (unsigned long long)e.addrs.drops, e.streams.count,
	       (unsigned long long)e.streams.drops);
	fl_engine_fini(&e);
	fclose(null);
	return (double)nframes * passes / t0;
}

static double run_mapi(int passes, const char *filter)
{
	static const char sensors[1][16] = { "eth0" };
	struct fl_mapi_flow *flows[1], *f = calloc(1, sizeof(*f));
	struct mw_mapi_req req = { .version = MW_MAPI_VERSION, .op = MW_MAPI_CREATE };
	struct mw_mapi_reply rep;
	struct fl_mapi m;
	int memfd = -1, p;
	double t0;
	size_t i;

	memset(&m, 0, sizeof(m));
	m.sensors = sensors;
	m.nsensors = 1;
	m.flows = flows;
	m.max_flows = 1;
	m.group_gid = -1;
	flows[0] = f;
	f->srv = &m;
	f->fd = -1;
	snprintf(req.sarg, sizeof(req.sarg), "eth0");
	fl_mapi_handle(&m, f, &req, &rep, &memfd);
	req.op = MW_MAPI_APPLY;
	req.func = MW_MAPI_BPF_FILTER;
	snprintf(req.sarg, sizeof(req.sarg), "%s", filter);
	fl_mapi_handle(&m, f, &req, &rep, &memfd);
	req.func = MW_MAPI_PKT_COUNTER;
	fl_mapi_handle(&m, f, &req, &rep, &memfd);
	req.func = MW_MAPI_BYTE_COUNTER;
	fl_mapi_handle(&m, f, &req, &rep, &memfd);
	req.func = MW_MAPI_TOP;
	req.iarg[0] = MAPI_SRC_IP;
	req.iarg[1] = 10;
	fl_mapi_handle(&m, f, &req, &rep, &memfd);
	req.op = MW_MAPI_CONNECT;
	if (fl_mapi_handle(&m, f, &req, &rep, &memfd)) {
		fprintf(stderr, "mapi: %s\n", rep.msg);
		exit(1);
	}
	t0 = now_s();
	for (p = 0; p < passes; p++)
		for (i = 0; i < nframes; i++)
			fl_mapi_packet(&m, 0, frames[i].ts_us + (uint64_t)p * span_us(),
				       frames[i].data, frames[i].len, frames[i].len);
	t0 = now_s() - t0;
	printf("mapi: %llu frames passed the filter\n", (unsigned long long)f->fns[1].count);
	fl_mapi_flow_free(f);
	return (double)nframes * passes / t0;
}

static double run_pcap(int passes, const char *filter)
{
	pcap_t *p = pcap_open_dead(DLT_EN10MB, 262144);
	struct bpf_program bp;
	struct pcap_pkthdr h;
	uint64_t pass = 0;
	double t0;
	int r;
	size_t i;

	if (pcap_compile(p, &bp, filter, 1, PCAP_NETMASK_UNKNOWN))
		exit(1);
	memset(&h, 0, sizeof(h));
	t0 = now_s();
	for (r = 0; r < passes; r++) {
		for (i = 0; i < nframes; i++) {
			h.caplen = h.len = frames[i].len;
			pass += pcap_offline_filter(&bp, &h, frames[i].data) != 0;
		}
	}
	t0 = now_s() - t0;
	printf("pcap: %llu frames passed the filter\n", (unsigned long long)pass);
	pcap_freecode(&bp);
	pcap_close(p);
	return (double)nframes * passes / t0;
}

#define OBS_N	  200000
#define OBS_SOCKS 64

/* OBS_N observations of OBS_SOCKS sockets, encoded, back to back as on the wire. */
static uint8_t *obs_stream(void)
{
	uint8_t *buf = malloc((size_t)OBS_N * MW_NF_INFO_SIZE);
	struct mw_nf_info in = { .ts_curr.sec = 1700000000 };
	size_t i;

	if (!buf)
		exit(1);
	in.pvm.af = 4;
	in.remote.af = 4;
	memcpy(in.pvm.addr, (uint8_t[]){ 10, 0, 0, 2 }, 4);
	in.pvm.port = 80;
	for (i = 0; i < OBS_N; i++) {
		uint64_t sock = i / 2 % OBS_SOCKS, req = i / 2 / OBS_SOCKS + 1;

		in.obs = i % 2 ? MW_NF_OBS_SEND : MW_NF_OBS_RECV;
		in.sockfd = 1000 + sock;
		memcpy(in.remote.addr, (uint8_t[]){ 192, 168, 0, (uint8_t)sock }, 4);
		in.remote.port = (uint16_t)(40000 + sock);
		in.bytes_in = req * 80;
		in.bytes_out = (req - !(i % 2)) * 250;
		in.ts_curr.ns = i % 1000000000;
		mw_nf_encode_info(buf + i * MW_NF_INFO_SIZE, &in);
	}
	return buf;
}

static double run_socks(int passes)
{
	static struct mw_config cfg;
	struct fl_socks s;
	struct mw_nf_info info;
	FILE *null = fopen("/dev/null", "w");
	uint8_t *buf = obs_stream();
	char err[128];
	double t0;
	int p, n;
	size_t off;

	mw_config_defaults(&cfg);
	snprintf(cfg.flowd.inside[0], MW_ADDR_TEXT_MAX, "10.0.0.0/8");
	cfg.flowd.inside_count = 1;
	if (fl_socks_init(&s, &cfg.flowd, null, "bench", err, sizeof(err))) {
		fprintf(stderr, "%s\n", err);
		exit(1);
	}
	t0 = now_s();
	for (p = 0; p < passes; p++) {
		for (off = 0; off < (size_t)OBS_N * MW_NF_INFO_SIZE; off += (size_t)n) {
			n = mw_nf_frame_next(buf + off, (size_t)OBS_N * MW_NF_INFO_SIZE - off);
			if (n <= 0 || mw_nf_decode_info(&info, buf + off, (size_t)n, NULL))
				exit(1);
			fl_socks_observe(&s, &info, 1700000000);
		}
		fl_socks_report(&s, 1700000000, false);
	}
	t0 = now_s() - t0;
	printf("socks: %u sockets, %llu observations\n", s.tab.count, (unsigned long long)s.obs);
	fl_socks_fini(&s);
	fclose(null);
	free(buf);
	return (double)OBS_N * passes / t0;
}

int main(int argc, char **argv)
{
	int passes = argc > 2 ? (int)strtol(argv[2], NULL, 10) : 20;
	double eng, mapi, pcap, socks;

	if (argc > 1 && strcmp(argv[1], "-"))
		load_pcap(argv[1]);
	else
		synth();
	if (!nframes || passes < 1) {
		fprintf(stderr, "no frames\n");
		return 1;
	}
	printf("%zu frames x %d passes\n", nframes, passes);
	eng = run_engine(passes);
	mapi = run_mapi(passes, "tcp port 80");
	pcap = run_pcap(passes, "tcp port 80");
	socks = run_socks(passes);
	printf("frames/s on one core: engine %.2f M, mapi flow %.2f M, libpcap filter alone %.2f "
	       "M\n",
	       eng / 1e6, mapi / 1e6, pcap / 1e6);
	printf("Netflow observations/s on one core (socket table): %.2f M (%.0f ns each)\n",
	       socks / 1e6, 1e9 / socks);
	return 0;
}
