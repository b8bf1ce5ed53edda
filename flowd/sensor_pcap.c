/* SPDX-License-Identifier: MIT */
/* sensor_pcap.c - a pcap/pcapng file through the engine at its own packet times; BPF compiler */
#include <errno.h>
#include <pcap/pcap.h>
#include <stdio.h>
#include <string.h>

#include "flowd/sensor.h"

#define BPF_SNAPLEN 262144

/**
 * fl_bpf_compile() - compile a pcap-filter(7) expression for Ethernet frames
 * @filter: the expression; "" compiles to nothing (*@prog zeroed)
 * @prog:   a struct bpf_program, filled; free with fl_bpf_free()
 * @err:    libpcap's message on failure
 * @errlen: its size
 *
 * The program is classic BPF as the kernel's SO_ATTACH_FILTER takes it.  No name
 * is looked up (noresolve.c): a lookup would stop the loop for as long as the
 * resolver takes, and a MAPI client chooses the filter.  Addresses only.
 *
 * Return: 0 or -EINVAL
 */
int fl_bpf_compile(const char *filter, void *prog, char *err, size_t errlen)
{
	struct bpf_program *bp = prog;
	pcap_t *p;
	int ret = 0;

	memset(bp, 0, sizeof(*bp));
	if (!filter[0])
		return 0;
	p = pcap_open_dead(DLT_EN10MB, BPF_SNAPLEN);
	if (!p) {
		snprintf(err, errlen, "pcap_open_dead failed");
		return -ENOMEM;
	}
	fl_noresolve(true);
	if (pcap_compile(p, bp, filter, 1, PCAP_NETMASK_UNKNOWN)) {
		const char *why = pcap_geterr(p);

		snprintf(err, errlen, "filter \"%s\": %s%s", filter, why,
			 strstr(why, "unknown host") || strstr(why, "unknown network")
				 ? " (mw-flowd looks up no names in filters: give an address)"
				 : "");
		ret = -EINVAL;
	}
	fl_noresolve(false);
	pcap_close(p);
	return ret;
}

/**
 * fl_bpf_free() - free what fl_bpf_compile() allocated
 * @prog: a struct bpf_program
 */
void fl_bpf_free(void *prog)
{
	pcap_freecode(prog);
}

/**
 * fl_pcap_read() - feed every frame of a capture file to @e, then flush its report
 * @e:      engine
 * @path:   pcap or pcapng file with Ethernet link type
 * @filter: BPF expression applied first, "" = none
 * @err:    one line on failure
 * @errlen: its size
 *
 * Return: frames read (>= 0), or -errno
 */
int fl_pcap_read(struct fl_engine *e, const char *path, const char *filter, char *err,
		 size_t errlen)
{
	char perr[PCAP_ERRBUF_SIZE];
	struct pcap_pkthdr *h;
	struct bpf_program bp;
	const u_char *data;
	int n = 0, rc, ret;
	pcap_t *p;

	p = pcap_open_offline(path, perr);
	if (!p) {
		snprintf(err, errlen, "%s: %s", path, perr);
		return -ENOENT;
	}
	if (pcap_datalink(p) != DLT_EN10MB) {
		snprintf(err, errlen, "%s: link type %s, only Ethernet is read", path,
			 pcap_datalink_val_to_name(pcap_datalink(p)));
		ret = -EPROTONOSUPPORT;
		goto out;
	}
	ret = fl_bpf_compile(filter, &bp, err, errlen);
	if (ret)
		goto out;
	if (bp.bf_len && pcap_setfilter(p, &bp)) {
		snprintf(err, errlen, "%s: %s", path, pcap_geterr(p));
		fl_bpf_free(&bp);
		ret = -EINVAL;
		goto out;
	}
	fl_bpf_free(&bp);
	while ((rc = pcap_next_ex(p, &h, &data)) == 1) {
		uint64_t ts = (uint64_t)h->ts.tv_sec * 1000000 + (uint64_t)h->ts.tv_usec;

		fl_engine_packet(e, ts, data, h->caplen, h->len);
		n++;
	}
	if (rc == PCAP_ERROR) {
		/* A truncated file: what was read is reported, and the error named. */
		snprintf(err, errlen, "%s: %s", path, pcap_geterr(p));
		ret = -EIO;
	} else {
		ret = n;
	}
	fl_engine_flush(e);
out:
	pcap_close(p);
	return ret;
}
