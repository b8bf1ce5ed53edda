/* SPDX-License-Identifier: MIT */
/* mapi-anomaly.c - minflow's fan-out and port-scan alarms through libmwmapi (FANOUT, PORTSCAN) */
#include <arpa/inet.h>
#include <errno.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "mwmapi.h"

/*
 * mapi-anomaly SCOPE THRESHOLD WINDOW_S: one flow with FANOUT and PORTSCAN at
 * THRESHOLD over windows of WINDOW_S seconds; prints "connected", then, once a
 * second and at SIGINT/SIGTERM, one line per source newly flagged in a window:
 *   fanout SRC distinct=N attempts=N rejected=0 window=START_US
 *   portscan SRC distinct=N attempts=N rejected=N window=START_US
 * (rejected: attempts answered by a RST from a closed port), and at the end
 * every flagged row of both windows as it is then, as "final fanout ..." and
 * "final portscan ...".
 */

static volatile sig_atomic_t stop;

static void on_signal(int sig)
{
	(void)sig;
	stop = 1;
}

/* One flagged row, printed once per (kind, source, window) for this process, or always if @final. */
static void show(const char *kind, const struct mapi_anomaly_row *r, uint64_t window, bool final)
{
	static char seen[64][96];
	static int nseen;
	char addr[INET6_ADDRSTRLEN], key[96];
	int i;

	if (!memcmp(r->addr, "\0\0\0\0\0\0\0\0\0\0\xff\xff", 12))
		inet_ntop(AF_INET, r->addr + 12, addr, sizeof(addr));
	else
		inet_ntop(AF_INET6, r->addr, addr, sizeof(addr));
	snprintf(key, sizeof(key), "%s %s %llu", kind, addr, (unsigned long long)window);
	for (i = 0; !final && i < nseen; i++)
		if (!strcmp(seen[i], key))
			return;
	if (!final && nseen < 64)
		snprintf(seen[nseen++], sizeof(seen[0]), "%s", key);
	printf("%s%s %s distinct=%llu attempts=%llu rejected=%llu window=%llu\n",
	       final ? "final " : "", kind, addr, (unsigned long long)r->distinct,
	       (unsigned long long)r->attempts, (unsigned long long)r->rejected,
	       (unsigned long long)window);
}

static int report(int fd, int fid, const char *kind, uint64_t window_us, bool final)
{
	const struct mapi_anomaly *a;
	struct mapi_result r;
	uint32_t i;

	if (mapi_read_results(fd, fid, &r))
		return -1;
	a = r.res;
	/* The last window's rows are final; the current one's as they are now. */
	for (i = 0; i < a->n_last && a->window_start_us >= window_us; i++)
		show(kind, &a->last[i], a->window_start_us - window_us, final);
	for (i = 0; i < a->n_cur; i++)
		show(kind, &a->cur[i], a->window_start_us, final);
	fflush(stdout);
	return 0;
}

int main(int argc, char **argv)
{
	struct sigaction sa = { .sa_handler = on_signal };
	struct timespec tick = { 1, 0 };
	int fd, fan, scan;
	long window;

	if (argc < 4) {
		fprintf(stderr, "usage: mapi-anomaly SCOPE THRESHOLD WINDOW_S\n");
		return 2;
	}
	window = strtol(argv[3], NULL, 10);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	fd = mapi_create_flow(argv[1]);
	if (fd < 0 ||
	    (fan = mapi_apply_function(fd, "FANOUT", (int)strtol(argv[2], NULL, 10), (int)window)) <
		    0 ||
	    (scan = mapi_apply_function(fd, "PORTSCAN", (int)strtol(argv[2], NULL, 10),
					(int)window)) < 0 ||
	    mapi_connect(fd)) {
		fprintf(stderr, "mapi-anomaly: %s (%s)\n", strerror(errno), mapi_last_error());
		return 1;
	}
	printf("connected\n");
	fflush(stdout);
	while (!stop) {
		nanosleep(&tick, NULL);
		if (report(fd, fan, "fanout", (uint64_t)window * 1000000, false) ||
		    report(fd, scan, "portscan", (uint64_t)window * 1000000, false)) {
			fprintf(stderr, "mapi_read_results: %s (%s)\n", strerror(errno),
				mapi_last_error());
			return 1;
		}
	}
	if (report(fd, fan, "fanout", (uint64_t)window * 1000000, true) ||
	    report(fd, scan, "portscan", (uint64_t)window * 1000000, true))
		return 1;
	mapi_close_flow(fd);
	return 0;
}
