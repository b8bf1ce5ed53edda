/* SPDX-License-Identifier: MIT */
/* mapi-rates.c - the MAPI tutorial's in/out byte rates, against libmwmapi and mw-flowd */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "mwmapi.h"

/*
 * mapi-rates SCOPE CIDR [INTERVAL_S [N]]: two flows over SCOPE, "dst net CIDR"
 * (in) and "src net CIDR" (out), each with BPF_FILTER, PKT_COUNTER and
 * BYTE_COUNTER.  Every INTERVAL_S seconds (default 1) prints the rates and the
 * byte totals so far (a caller can wait for a known total before stopping it)
 *   in_Bps=N out_Bps=N in_bytes=N out_bytes=N
 * for N intervals (default 0: until SIGINT/SIGTERM), then the totals:
 *   total in_pkts=N in_bytes=N out_pkts=N out_bytes=N
 */

static volatile sig_atomic_t stop;

static void on_signal(int sig)
{
	(void)sig;
	stop = 1;
}

struct dir {
	int fd, pkts, bytes;
	uint64_t last;
};

static int open_dir(struct dir *d, const char *scope, const char *prim, const char *cidr)
{
	char expr[160];

	snprintf(expr, sizeof(expr), "%s net %s", prim, cidr);
	d->last = 0;
	d->fd = mapi_create_flow(scope);
	if (d->fd < 0 || mapi_apply_function(d->fd, "BPF_FILTER", expr) < 0)
		return -1;
	d->pkts = mapi_apply_function(d->fd, "PKT_COUNTER");
	d->bytes = mapi_apply_function(d->fd, "BYTE_COUNTER");
	if (d->pkts < 0 || d->bytes < 0)
		return -1;
	return mapi_connect(d->fd);
}

static int counter(int fd, int fid, uint64_t *v)
{
	struct mapi_result r;

	if (mapi_read_results(fd, fid, &r))
		return -1;
	memcpy(v, r.res, sizeof(*v));
	return 0;
}

int main(int argc, char **argv)
{
	struct sigaction sa = { .sa_handler = on_signal };
	struct timespec tick = { 0, 100000000 };
	long interval = argc > 3 ? strtol(argv[3], NULL, 10) : 1;
	long count = argc > 4 ? strtol(argv[4], NULL, 10) : 0;
	struct dir in, out;
	uint64_t ip, ib, op, ob;
	long n, done = 0;

	if (argc < 3 || interval < 1 || count < 0) {
		fprintf(stderr, "usage: mapi-rates SCOPE CIDR [INTERVAL_S [N]]\n");
		return 2;
	}
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	if (open_dir(&in, argv[1], "dst", argv[2]) || open_dir(&out, argv[1], "src", argv[2])) {
		fprintf(stderr, "mapi-rates: %s (%s)\n", strerror(errno), mapi_last_error());
		return 1;
	}
	printf("connected\n");
	fflush(stdout);
	for (n = 1; !stop && (!count || done < count); n++) {
		nanosleep(&tick, NULL);
		if (n % (interval * 10))
			continue;
		if (counter(in.fd, in.bytes, &ib) || counter(out.fd, out.bytes, &ob))
			break;
		printf("in_Bps=%llu out_Bps=%llu in_bytes=%llu out_bytes=%llu\n",
		       (unsigned long long)((ib - in.last) / interval),
		       (unsigned long long)((ob - out.last) / interval), (unsigned long long)ib,
		       (unsigned long long)ob);
		fflush(stdout);
		in.last = ib;
		out.last = ob;
		done++;
	}
	if (counter(in.fd, in.pkts, &ip) || counter(in.fd, in.bytes, &ib) ||
	    counter(out.fd, out.pkts, &op) || counter(out.fd, out.bytes, &ob)) {
		fprintf(stderr, "mapi_read_results: %s (%s)\n", strerror(errno), mapi_last_error());
		return 1;
	}
	printf("total in_pkts=%llu in_bytes=%llu out_pkts=%llu out_bytes=%llu\n",
	       (unsigned long long)ip, (unsigned long long)ib, (unsigned long long)op,
	       (unsigned long long)ob);
	mapi_close_flow(in.fd);
	mapi_close_flow(out.fd);
	return 0;
}
