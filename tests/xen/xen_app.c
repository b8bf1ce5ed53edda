/* SPDX-License-Identifier: MIT */
/* xen_app.c - the protected app of the Xen tests: answers each connection with one line */
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

/*
 * xen_app PORT: listens on 0.0.0.0:PORT (under the shim: on every INS, through
 * mw-pvm), and for each connection reads one request line and answers
 * "mwcomms-xen-app N: LINE" (N counts requests), then closes.  Dynamically
 * linked on purpose: the shim is an LD_PRELOAD library (dom0's busybox is static).
 */
int main(int argc, char **argv)
{
	struct sockaddr_in sin = { .sin_family = AF_INET };
	unsigned long n = 0;
	int one = 1, fd;

	long port = argc == 2 ? strtol(argv[1], NULL, 10) : 0;

	if (port <= 0 || port > 65535) {
		fprintf(stderr, "usage: xen_app PORT\n");
		return 2;
	}
	signal(SIGPIPE, SIG_IGN); /* a client (or the INS it came through) gone mid-answer */
	sin.sin_port = htons((uint16_t)port);
	fd = socket(AF_INET, SOCK_STREAM, 0);
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (fd < 0 || bind(fd, (struct sockaddr *)&sin, sizeof(sin)) || listen(fd, 64)) {
		perror("xen_app: listen");
		return 1;
	}
	printf("xen_app: listening on %s\n", argv[1]);
	fflush(stdout);
	for (;;) {
		char line[256], out[320];
		size_t got = 0;
		ssize_t r;
		int c = accept(fd, NULL, NULL);

		if (c < 0)
			continue;
		while (got < sizeof(line) - 1 && (r = read(c, line + got, sizeof(line) - 1 - got)) > 0) {
			got += (size_t)r;
			if (memchr(line, '\n', got))
				break;
		}
		line[got] = 0;
		line[strcspn(line, "\r\n")] = 0;
		r = snprintf(out, sizeof(out), "mwcomms-xen-app %lu: %s\n", ++n, line);
		if (write(c, out, (size_t)r) != r)
			perror("xen_app: write");
		close(c);
	}
}
