/* SPDX-License-Identifier: MIT */
/* xen_client.c - the request loop of test_xen_bench: sequential requests to xen_app */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

/*
 * xen_client ADDR PORT N TAG SECONDS: N requests, one after the other, each on
 * its own connection: sends "TAG<i>\n" and counts it answered only if the line
 * that comes back is xen_app's answer to it ("mwcomms-xen-app K: TAG<i>").  Stops
 * early after SECONDS.  Prints one line:
 *   ok=A fail=F secs=S rps=R
 * (R = A / S, S the wall time of the loop).  Exit 0 when all N were answered.
 * A lean client, so that under emulation the requests/s measure the path, not
 * the fork and exec of a shell tool per request.
 */
/* now_s() - Return: the monotonic clock in seconds */
static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/**
 * ask() - one request on a connection of its own
 * @to:		the front end
 * @req:	the request line, newline included
 *
 * Return: 1 if the app's own answer to @req came back (within 10 s), else 0
 */
static int ask(const struct sockaddr_in *to, const char *req)
{
	struct timeval tv = { .tv_sec = 10 };
	char want[128], got[256];
	size_t len = 0;
	ssize_t r;
	int ok = 0, fd = socket(AF_INET, SOCK_STREAM, 0);

	if (fd < 0)
		return 0;
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	if (connect(fd, (const struct sockaddr *)to, sizeof(*to)) == 0 &&
	    write(fd, req, strlen(req)) == (ssize_t)strlen(req)) {
		while (len < sizeof(got) - 1 && (r = read(fd, got + len, sizeof(got) - 1 - len)) > 0)
			len += (size_t)r;
		got[len] = 0;
		snprintf(want, sizeof(want), ": %.*s", (int)strcspn(req, "\n"), req);
		ok = strncmp(got, "mwcomms-xen-app ", 16) == 0 && strstr(got, want) != NULL &&
		     strchr(got, '\n') != NULL;
	}
	close(fd);
	return ok;
}

int main(int argc, char **argv)
{
	struct sockaddr_in to = { .sin_family = AF_INET };
	long port, n, i, good = 0, bad = 0;
	double t0, secs, limit;
	char req[96];

	if (argc != 6 || inet_pton(AF_INET, argv[1], &to.sin_addr) != 1 ||
	    (port = strtol(argv[2], NULL, 10)) <= 0 || port > 65535 ||
	    (n = strtol(argv[3], NULL, 10)) <= 0 || strlen(argv[4]) > 64 ||
	    (limit = strtod(argv[5], NULL)) <= 0) {
		fprintf(stderr, "usage: xen_client ADDR PORT N TAG SECONDS\n");
		return 2;
	}
	to.sin_port = htons((uint16_t)port);
	t0 = now_s();
	for (i = 1; i <= n && now_s() - t0 < limit; i++) {
		snprintf(req, sizeof(req), "%s%ld\n", argv[4], i);
		if (ask(&to, req))
			good++;
		else
			bad++;
	}
	secs = now_s() - t0;
	printf("ok=%ld fail=%ld secs=%.3f rps=%.2f\n", good, bad, secs, secs > 0 ? good / secs : 0.0);
	return good == n ? 0 : 1;
}
