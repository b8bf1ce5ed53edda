/* SPDX-License-Identifier: MIT */
/* sensor_live.c - AF_PACKET TPACKET_V3 ring on one interface, BPF filter run in the kernel */
#include <arpa/inet.h>
#include <errno.h>
#include <linux/filter.h>
#include <linux/if_ether.h>
#include <linux/if_packet.h>
#include <net/if.h>
#include <pcap/pcap.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include "flowd/sensor.h"

/*
 * Theory of operation: the socket is created with protocol 0 so it receives
 * nothing until the filter is attached, then bound to the interface with
 * ETH_P_ALL: no unfiltered frame is ever queued.  The kernel fills blocks of
 * the mapped ring and hands a block to user space when it is full or
 * RETIRE_TOV_MS has passed (TP_STATUS_USER); fl_live_poll() walks the ready
 * blocks in order, feeds their frames to the engine and gives each block back
 * (TP_STATUS_KERNEL).  When user space falls behind, the kernel drops and
 * counts (PACKET_STATISTICS), and the engine reports the count.
 */

#define FRAME_SIZE    2048
#define RETIRE_TOV_MS 100

static int live_attach_filter(int fd, const char *filter, char *err, size_t errlen)
{
	struct bpf_program bp;
	struct sock_fprog fprog;
	int ret = fl_bpf_compile(filter, &bp, err, errlen);

	if (ret || !bp.bf_len)
		return ret;
	/* libpcap's struct bpf_insn is the kernel's struct sock_filter. */
	_Static_assert(sizeof(struct bpf_insn) == sizeof(struct sock_filter), "same insn");
	fprog.len = (unsigned short)bp.bf_len;
	fprog.filter = (struct sock_filter *)bp.bf_insns;
	if (setsockopt(fd, SOL_SOCKET, SO_ATTACH_FILTER, &fprog, sizeof(fprog))) {
		ret = -errno;
		snprintf(err, errlen, "SO_ATTACH_FILTER: %s", strerror(errno));
	}
	fl_bpf_free(&bp);
	return ret;
}

static int live_ring(struct fl_live *l, char *err, size_t errlen)
{
	struct tpacket_req3 req;
	int v = TPACKET_V3;

	if (setsockopt(l->fd, SOL_PACKET, PACKET_VERSION, &v, sizeof(v))) {
		snprintf(err, errlen, "PACKET_VERSION: %s", strerror(errno));
		return -errno;
	}
	memset(&req, 0, sizeof(req));
	req.tp_block_size = (unsigned int)l->block_size;
	req.tp_block_nr = l->blocks;
	req.tp_frame_size = FRAME_SIZE;
	req.tp_frame_nr = (unsigned int)(l->block_size / FRAME_SIZE) * l->blocks;
	req.tp_retire_blk_tov = RETIRE_TOV_MS;
	if (setsockopt(l->fd, SOL_PACKET, PACKET_RX_RING, &req, sizeof(req))) {
		snprintf(err, errlen, "PACKET_RX_RING: %s", strerror(errno));
		return -errno;
	}
	l->ring =
		mmap(NULL, l->block_size * l->blocks, PROT_READ | PROT_WRITE, MAP_SHARED, l->fd, 0);
	if (l->ring == MAP_FAILED) {
		l->ring = NULL;
		snprintf(err, errlen, "mmap ring: %s", strerror(errno));
		return -errno;
	}
	return 0;
}

/**
 * fl_live_open() - a filtered TPACKET_V3 ring on @ifname
 * @l:          filled
 * @ifname:     interface
 * @filter:     pcap-filter(7) expression, "" = every frame
 * @block_size: ring block bytes, a power of two multiple of the page size
 * @blocks:     ring blocks
 * @err:        one line on failure
 * @errlen:     its size
 *
 * Return: 0 or -errno (needs CAP_NET_RAW)
 */
int fl_live_open(struct fl_live *l, const char *ifname, const char *filter, size_t block_size,
		 unsigned int blocks, char *err, size_t errlen)
{
	struct sockaddr_ll sll;
	unsigned int ifindex;
	int ret;

	memset(l, 0, sizeof(*l));
	l->fd = -1;
	l->block_size = block_size;
	l->blocks = blocks;
	snprintf(l->ifname, sizeof(l->ifname), "%s", ifname);
	ifindex = if_nametoindex(ifname);
	l->ifindex = ifindex;
	if (!ifindex) {
		snprintf(err, errlen, "interface %s: %s", ifname, strerror(errno));
		return -ENODEV;
	}
	l->fd = socket(AF_PACKET, SOCK_RAW | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (l->fd < 0) {
		snprintf(err, errlen, "AF_PACKET socket: %s", strerror(errno));
		return -errno;
	}
	ret = live_attach_filter(l->fd, filter, err, errlen);
	if (!ret)
		ret = live_ring(l, err, errlen);
	if (ret)
		goto fail;
	memset(&sll, 0, sizeof(sll));
	sll.sll_family = AF_PACKET;
	sll.sll_protocol = htons(ETH_P_ALL);
	sll.sll_ifindex = (int)ifindex;
	if (bind(l->fd, (struct sockaddr *)&sll, sizeof(sll))) {
		ret = -errno;
		snprintf(err, errlen, "bind %s: %s", ifname, strerror(errno));
		goto fail;
	}
	return 0;
fail:
	fl_live_close(l);
	return ret;
}

static void live_block(const struct fl_live *l, struct tpacket_block_desc *bd, struct fl_engine *e)
{
	struct tpacket3_hdr *h =
		(struct tpacket3_hdr *)((uint8_t *)bd + bd->hdr.bh1.offset_to_first_pkt);
	uint32_t i;

	for (i = 0; i < bd->hdr.bh1.num_pkts; i++) {
		uint64_t ts = (uint64_t)h->tp_sec * 1000000 + h->tp_nsec / 1000;
		const uint8_t *frame = (uint8_t *)h + h->tp_mac;

		if (e->tap)
			e->tap(e->tap_ctx, l->index, ts, frame, h->tp_snaplen, h->tp_len);
		fl_engine_packet(e, ts, frame, h->tp_snaplen, h->tp_len);
		h = (struct tpacket3_hdr *)((uint8_t *)h + h->tp_next_offset);
	}
}

/**
 * fl_live_poll() - feed every block the kernel has handed over, give them back
 * @l: sensor
 * @e: engine
 *
 * Return: blocks consumed
 */
unsigned int fl_live_poll(struct fl_live *l, struct fl_engine *e)
{
	unsigned int n;

	for (n = 0; n < l->blocks; n++) {
		struct tpacket_block_desc *bd =
			(struct tpacket_block_desc *)(l->ring + (size_t)l->cur * l->block_size);

		if (!(__atomic_load_n(&bd->hdr.bh1.block_status, __ATOMIC_ACQUIRE) &
		      TP_STATUS_USER))
			break;
		live_block(l, bd, e);
		__atomic_store_n(&bd->hdr.bh1.block_status, TP_STATUS_KERNEL, __ATOMIC_RELEASE);
		l->cur = (l->cur + 1) % l->blocks;
	}
	return n;
}

/**
 * fl_live_error() - the socket's pending error, cleared by reading it
 * @l: sensor
 *
 * Return: 0, or the errno the kernel set (ENETDOWN once the interface is gone)
 */
int fl_live_error(struct fl_live *l)
{
	socklen_t len = sizeof(int);
	int err = 0;

	if (getsockopt(l->fd, SOL_SOCKET, SO_ERROR, &err, &len))
		return errno;
	return err;
}

/**
 * fl_live_stats() - add the kernel's counters (reset by each read) to @l
 * @l: sensor
 */
void fl_live_stats(struct fl_live *l)
{
	struct tpacket_stats_v3 st;
	socklen_t len = sizeof(st);

	if (getsockopt(l->fd, SOL_PACKET, PACKET_STATISTICS, &st, &len))
		return;
	l->drops += st.tp_drops;
	l->packets += st.tp_packets;
}

/**
 * fl_live_close() - unmap the ring, close the socket
 * @l: sensor, after fl_live_open() (successful or not)
 */
void fl_live_close(struct fl_live *l)
{
	if (l->ring)
		munmap(l->ring, l->block_size * l->blocks);
	if (l->fd >= 0)
		close(l->fd);
	l->ring = NULL;
	l->fd = -1;
}
