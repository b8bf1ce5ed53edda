/* SPDX-License-Identifier: MIT */
/* mapi-webcount.c - the MAPI tutorial's "count web packets", against libmwmapi and mw-flowd */
#include <arpa/inet.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "mwmapi.h"

/*
 * mapi-webcount SCOPE [BOUND]: one flow over SCOPE (mw-flowd's live sensors)
 * with BPF_FILTER "tcp port 80", PKT_COUNTER, BYTE_COUNTER, TOP by source
 * address, THRESHOLD on the packet counter at BOUND (default 100) and DIST of
 * destination ports.  Prints one line a second, and the final line on
 * SIGINT/SIGTERM:  web_pkts=N web_bytes=N top_src=ADDR top_bytes=N
 * threshold_fired=0|1 threshold_value=N dist_dports=N
 */

static volatile sig_atomic_t stop;

static void on_signal(int sig)
{
	(void)sig;
	stop = 1;
}

static void addr_text(const uint8_t key[16], char *buf, size_t len)
{
	static const uint8_t mapped[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff };

	if (!memcmp(key, mapped, sizeof(mapped)))
		inet_ntop(AF_INET, key + 12, buf, (socklen_t)len);
	else
		inet_ntop(AF_INET6, key, buf, (socklen_t)len);
}

static int report(int fd, const int fid[6])
{
	struct mapi_result r;
	struct mapi_top top;
	struct mapi_threshold th;
	uint64_t pkts, bytes, dist;
	char src[64] = "-";

	if (mapi_read_results(fd, fid[1], &r))
		return -1;
	memcpy(&pkts, r.res, sizeof(pkts));
	if (mapi_read_results(fd, fid[2], &r))
		return -1;
	memcpy(&bytes, r.res, sizeof(bytes));
	if (mapi_read_results(fd, fid[3], &r))
		return -1;
	memcpy(&top, r.res, sizeof(top));
	if (mapi_read_results(fd, fid[4], &r))
		return -1;
	memcpy(&th, r.res, sizeof(th));
	if (mapi_read_results(fd, fid[5], &r))
		return -1;
	memcpy(&dist, r.res, sizeof(dist));
	if (top.n)
		addr_text(top.rows[0].key, src, sizeof(src));
	printf("web_pkts=%llu web_bytes=%llu top_src=%s top_bytes=%llu threshold_fired=%llu "
	       "threshold_value=%llu dist_dports=%llu\n",
	       (unsigned long long)pkts, (unsigned long long)bytes, src,
	       (unsigned long long)(top.n ? top.rows[0].bytes : 0), (unsigned long long)th.fired,
	       (unsigned long long)th.value, (unsigned long long)dist);
	fflush(stdout);
	return 0;
}

int main(int argc, char **argv)
{
	struct sigaction sa = { .sa_handler = on_signal };
	struct timespec tick = { 0, 100000000 };
	long bound = argc > 2 ? strtol(argv[2], NULL, 10) : 100;
	int fd, fid[6], n = 0;

	if (argc < 2) {
		fprintf(stderr, "usage: mapi-webcount SCOPE [BOUND]\n");
		return 2;
	}
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	fd = mapi_create_flow(argv[1]);
	if (fd < 0) {
		fprintf(stderr, "mapi_create_flow: %s (%s)\n", strerror(errno), mapi_last_error());
		return 1;
	}
	fid[0] = mapi_apply_function(fd, "BPF_FILTER", "tcp port 80");
	fid[1] = mapi_apply_function(fd, "PKT_COUNTER");
	fid[2] = mapi_apply_function(fd, "BYTE_COUNTER");
	fid[3] = mapi_apply_function(fd, "TOP", MAPI_SRC_IP, 3);
	fid[4] = mapi_apply_function(fd, "THRESHOLD", fid[1], bound);
	fid[5] = mapi_apply_function(fd, "DIST", MAPI_DST_PORT);
	for (n = 0; n < 6; n++) {
		if (fid[n] < 0) {
			fprintf(stderr, "mapi_apply_function #%d: %s (%s)\n", n, strerror(errno),
				mapi_last_error());
			return 1;
		}
	}
	if (mapi_connect(fd)) {
		fprintf(stderr, "mapi_connect: %s (%s)\n", strerror(errno), mapi_last_error());
		return 1;
	}
	printf("connected\n");
	fflush(stdout);
	for (n = 0; !stop; n++) {
		nanosleep(&tick, NULL);
		if (n % 10 == 9 && report(fd, fid))
			break;
	}
	if (report(fd, fid)) {
		fprintf(stderr, "mapi_read_results: %s (%s)\n", strerror(errno), mapi_last_error());
		return 1;
	}
	mapi_close_flow(fd);
	return 0;
}
