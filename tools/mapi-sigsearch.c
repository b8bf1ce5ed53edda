/* SPDX-License-Identifier: MIT */
/* mapi-sigsearch.c - the MAPI tutorial's signature search, against libmwmapi and mw-flowd */
#include <arpa/inet.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "mwmapi.h"

/*
 * mapi-sigsearch SCOPE FILTER PATTERN OFFSET DEPTH [FIRST]: one flow over SCOPE
 * with BPF_FILTER FILTER, STR_SEARCH(PATTERN, OFFSET, DEPTH) (bytes of the
 * frame; DEPTH 0 = to its end) and PKT_COUNTER.  With FIRST > 0 a TO_BUFFER
 * after the search, and the first FIRST matching frames are printed as
 *   match SRC:PORT > DST:PORT proto=N len=N
 * Then one line a second, and the last on SIGINT/SIGTERM:  matches=N
 */

static volatile sig_atomic_t stop;

static void on_signal(int sig)
{
	(void)sig; /* also interrupts mapi_loop's wait (EINTR) */
	stop = 1;
}

static void print_match(const struct mapi_pkthdr *h, const unsigned char *d, void *user)
{
	char src[INET_ADDRSTRLEN], dst[INET_ADDRSTRLEN];
	size_t ihl;

	(void)user;
	if (h->caplen < 34 || d[12] != 0x08 || d[13] != 0x00) {
		printf("match other len=%u\n", h->wirelen);
		fflush(stdout);
		return;
	}
	ihl = (size_t)(d[14] & 0x0f) * 4;
	inet_ntop(AF_INET, d + 26, src, sizeof(src));
	inet_ntop(AF_INET, d + 30, dst, sizeof(dst));
	if ((d[23] == 6 || d[23] == 17) && h->caplen >= 14 + ihl + 4)
		printf("match %s:%u > %s:%u proto=%u len=%u\n", src,
		       (unsigned)(d[14 + ihl] << 8 | d[15 + ihl]), dst,
		       (unsigned)(d[16 + ihl] << 8 | d[17 + ihl]), d[23], h->wirelen);
	else
		printf("match %s > %s proto=%u len=%u\n", src, dst, d[23], h->wirelen);
	fflush(stdout);
}

static int report(int fd, int fid)
{
	struct mapi_result r;
	uint64_t n;

	if (mapi_read_results(fd, fid, &r))
		return -1;
	memcpy(&n, r.res, sizeof(n));
	printf("matches=%llu\n", (unsigned long long)n);
	fflush(stdout);
	return 0;
}

int main(int argc, char **argv)
{
	struct sigaction sa = { .sa_handler = on_signal };
	struct timespec tick = { 0, 100000000 };
	long first = argc > 6 ? strtol(argv[6], NULL, 10) : 0;
	int fd, cnt = -1, buf = -1, n;

	if (argc < 6 || first < 0) {
		fprintf(stderr,
			"usage: mapi-sigsearch SCOPE FILTER PATTERN OFFSET DEPTH [FIRST]\n");
		return 2;
	}
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	fd = mapi_create_flow(argv[1]);
	if (fd < 0 || mapi_apply_function(fd, "BPF_FILTER", argv[2]) < 0 ||
	    mapi_apply_function(fd, "STR_SEARCH", argv[3], (int)strtol(argv[4], NULL, 10),
				(int)strtol(argv[5], NULL, 10)) < 0 ||
	    (cnt = mapi_apply_function(fd, "PKT_COUNTER")) < 0 ||
	    (first && (buf = mapi_apply_function(fd, "TO_BUFFER")) < 0) || mapi_connect(fd)) {
		fprintf(stderr, "mapi-sigsearch: %s (%s)\n", strerror(errno), mapi_last_error());
		return 1;
	}
	printf("connected\n");
	fflush(stdout);
	if (first && mapi_loop(fd, buf, (int)first, print_match, NULL) && errno != EINTR) {
		fprintf(stderr, "mapi_loop: %s (%s)\n", strerror(errno), mapi_last_error());
		return 1;
	}
	for (n = 0; !stop; n++) {
		nanosleep(&tick, NULL);
		if (n % 10 == 9 && report(fd, cnt))
			break;
	}
	if (report(fd, cnt)) {
		fprintf(stderr, "mapi_read_results: %s (%s)\n", strerror(errno), mapi_last_error());
		return 1;
	}
	mapi_close_flow(fd);
	return 0;
}
