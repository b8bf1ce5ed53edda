/* SPDX-License-Identifier: MIT */
/* mapi-capture.c - frames through libmwmapi's TO_BUFFER, one line each (the tutorial's dump) */
#include <arpa/inet.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mwmapi.h"

/*
 * mapi-capture [--anonymize KEY] SCOPE FILTER COUNT: a flow over SCOPE with
 * BPF_FILTER FILTER, with --anonymize ANONYMIZE(KEY, strip) (the tutorial's
 * anonymised capture: prefix-preserving addresses, payload cut after the
 * transport header), and TO_BUFFER; prints "connected", then one line per
 * frame read with mapi_loop() until COUNT frames (or SIGINT/SIGTERM):
 *   SRC:SPORT > DST:DPORT flags=0xNN len=WIRELEN cap=CAPLEN lost=N   (IPv4 TCP)
 *   other len=WIRELEN cap=CAPLEN lost=N                               (anything else)
 */

static void on_signal(int sig)
{
	(void)sig; /* only to interrupt the wait: mapi_loop returns EINTR */
}

static void print_frame(const struct mapi_pkthdr *h, const unsigned char *d, void *user)
{
	char src[INET_ADDRSTRLEN], dst[INET_ADDRSTRLEN];
	size_t ihl;

	(void)user;
	if (h->caplen < 34 || d[12] != 0x08 || d[13] != 0x00 || d[23] != 6) {
		printf("other len=%u cap=%u lost=%llu\n", h->wirelen, h->caplen,
		       (unsigned long long)h->lost);
		return;
	}
	ihl = (size_t)(d[14] & 0x0f) * 4;
	if (h->caplen < 14 + ihl + 14) {
		printf("other len=%u cap=%u lost=%llu\n", h->wirelen, h->caplen,
		       (unsigned long long)h->lost);
		return;
	}
	inet_ntop(AF_INET, d + 26, src, sizeof(src));
	inet_ntop(AF_INET, d + 30, dst, sizeof(dst));
	printf("%s:%u > %s:%u flags=0x%02x len=%u cap=%u lost=%llu\n", src,
	       (unsigned)(d[14 + ihl] << 8 | d[15 + ihl]), dst,
	       (unsigned)(d[16 + ihl] << 8 | d[17 + ihl]), d[14 + ihl + 13], h->wirelen, h->caplen,
	       (unsigned long long)h->lost);
	fflush(stdout);
}

int main(int argc, char **argv)
{
	struct sigaction sa = { .sa_handler = on_signal };
	const char *key = NULL;
	int fd, buf;

	if (argc >= 3 && !strcmp(argv[1], "--anonymize")) {
		key = argv[2];
		argv += 2;
		argc -= 2;
	}
	if (argc < 4) {
		fprintf(stderr, "usage: mapi-capture [--anonymize KEY] SCOPE FILTER COUNT\n");
		return 2;
	}
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	fd = mapi_create_flow(argv[1]);
	if (fd < 0 || mapi_apply_function(fd, "BPF_FILTER", argv[2]) < 0 ||
	    (key && mapi_apply_function(fd, "ANONYMIZE", key, 1) < 0) ||
	    (buf = mapi_apply_function(fd, "TO_BUFFER")) < 0 || mapi_connect(fd)) {
		fprintf(stderr, "mapi-capture: %s (%s)\n", strerror(errno), mapi_last_error());
		return 1;
	}
	printf("connected\n");
	fflush(stdout);
	if (mapi_loop(fd, buf, (int)strtol(argv[3], NULL, 10), print_frame, NULL) &&
	    errno != EINTR) {
		fprintf(stderr, "mapi_loop: %s (%s)\n", strerror(errno), mapi_last_error());
		return 1;
	}
	mapi_close_flow(fd);
	return 0;
}
