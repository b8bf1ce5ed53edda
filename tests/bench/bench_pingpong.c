/* SPDX-License-Identifier: MIT */
/* bench_pingpong.c - 1-byte TCP ping-pong round trips (B7): echo server and timing client */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "common/addr.h"

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

/* Echo every byte back, one connection at a time, until the client closes. */
static int serve(const char *listen_text)
{
	struct mw_addr a;
	struct sockaddr_storage ss;
	socklen_t len;
	int one = 1, lfd;

	if (mw_addr_parse(&a, listen_text) || mw_addr_to_sockaddr(&a, &ss, &len)) {
		fprintf(stderr, "bench_pingpong: bad address '%s'\n", listen_text);
		return 1;
	}
	lfd = socket(ss.ss_family, SOCK_STREAM, 0);
	setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (lfd < 0 || bind(lfd, (struct sockaddr *)&ss, len) || listen(lfd, 16)) {
		perror("bench_pingpong: listen");
		return 1;
	}
	printf("listening\n");
	fflush(stdout);
	for (;;) {
		char buf[64];
		ssize_t n;
		int fd = accept(lfd, NULL, NULL);

		if (fd < 0)
			continue;
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		while ((n = read(fd, buf, sizeof(buf))) > 0)
			if (write(fd, buf, (size_t)n) != n)
				break;
		close(fd);
	}
}

/* @rounds 1-byte round trips; prints p50/p99 in microseconds. */
static int ping(const char *target, long rounds)
{
	struct mw_addr a;
	struct sockaddr_storage ss;
	socklen_t len;
	uint64_t *lat = NULL;
	size_t p50, p99;
	int one = 1, fd, ret = 1;

	if (mw_addr_parse(&a, target) || mw_addr_to_sockaddr(&a, &ss, &len) || rounds < 10) {
		fprintf(stderr, "bench_pingpong: bad address '%s' or rounds < 10\n", target);
		return 1;
	}
	fd = socket(ss.ss_family, SOCK_STREAM, 0);
	if (fd < 0 || connect(fd, (struct sockaddr *)&ss, len)) {
		perror("bench_pingpong: connect");
		return 1;
	}
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	lat = calloc((size_t)rounds, sizeof(*lat));
	if (!lat) {
		fprintf(stderr, "bench_pingpong: no memory for %ld rounds\n", rounds);
		goto out;
	}
	for (long i = 0; i < rounds; i++) {
		char c = (char)i, r;
		uint64_t t0 = now_ns();

		if (write(fd, &c, 1) != 1 || read(fd, &r, 1) != 1 || r != c) {
			fprintf(stderr, "bench_pingpong: round %ld failed\n", i);
			goto out;
		}
		lat[i] = now_ns() - t0;
	}
	qsort(lat, (size_t)rounds, sizeof(*lat), cmp_u64);
	/* Nearest-rank percentiles: the index truncates on purpose. */
	p50 = (size_t)rounds / 2;
	p99 = (size_t)rounds * 99 / 100;
	printf("p50_us: %.1f\np99_us: %.1f\n", (double)lat[p50] / 1e3, (double)lat[p99] / 1e3);
	ret = 0;
out:
	free(lat);
	close(fd);
	return ret;
}

int main(int argc, char **argv)
{
	if (argc == 3 && !strcmp(argv[1], "server"))
		return serve(argv[2]);
	if (argc == 4 && !strcmp(argv[1], "client")) {
		char *end;
		long rounds;

		errno = 0;
		rounds = strtol(argv[3], &end, 10);
		if (errno || end == argv[3] || *end)
			rounds = 0; /* "10x" is not 10: ping() rejects it with its usage error */
		return ping(argv[2], rounds);
	}
	fprintf(stderr, "usage: bench_pingpong server IP:PORT | client IP:PORT ROUNDS\n");
	return 1;
}
