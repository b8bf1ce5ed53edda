/* SPDX-License-Identifier: MIT */
/* bench_splice.c - B3's relay hop alone: AF_UNIX -> TCP by copying or by splice() */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/*
 * What one copy less would buy B3 (docs/benchmarks.md), without the appliance:
 * a child sendfile()s FILE into an AF_UNIX stream socket as nginx does under
 * the shim; the parent moves the bytes to a loopback TCP connection; another
 * child reads and discards them, as curl does.  Modes:
 *   copy    read() 64 KiB into a buffer, send() it: mw-pvm's read into the
 *           ring and mw-ins's send from it, the ring left out (two copies);
 *   splice  splice() the AF_UNIX socket into a pipe and the pipe into the TCP
 *           socket: page references only (no copy in the relay).
 * Prints MiB/s and the relay's CPU seconds per GiB (getrusage, user + system).
 * Usage: bench_splice copy|splice FILE
 */

#define CHUNK (64 * 1024)

static void die(const char *what)
{
	perror(what);
	exit(1);
}

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static double cpu_s(void)
{
	struct rusage ru;

	getrusage(RUSAGE_SELF, &ru);
	return (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
	       (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

/* A connected loopback TCP pair: *out the sender's end, *in the receiver's. */
static void tcp_pair(int *out, int *in)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t len = sizeof(a);
	int l = socket(AF_INET, SOCK_STREAM, 0), one = 1;

	if (l < 0 || bind(l, (struct sockaddr *)&a, len) || listen(l, 1) ||
	    getsockname(l, (struct sockaddr *)&a, &len))
		die("listen");
	*out = socket(AF_INET, SOCK_STREAM, 0);
	if (*out < 0 || connect(*out, (struct sockaddr *)&a, len))
		die("connect");
	*in = accept(l, NULL, NULL);
	if (*in < 0)
		die("accept");
	setsockopt(*out, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	close(l);
}

static void writer(int us, const char *file, off_t size)
{
	int fd = open(file, O_RDONLY);
	off_t off = 0;
	ssize_t n;

	if (fd < 0)
		die(file);
	while (off < size) {
		n = sendfile(us, fd, &off, (size_t)(size - off));
		if (n <= 0)
			die("sendfile");
	}
	_exit(0);
}

static void reader(int in, off_t size)
{
	static char buf[256 * 1024];
	off_t got = 0;
	ssize_t n;

	while (got < size) {
		n = recv(in, buf, sizeof(buf), 0);
		if (n <= 0)
			die("recv");
		got += n;
	}
	_exit(0);
}

static void relay_copy(int us, int out, off_t size)
{
	static char buf[CHUNK];
	off_t done = 0;
	ssize_t n, w, k;

	while (done < size) {
		n = read(us, buf, sizeof(buf));
		if (n <= 0)
			die("read");
		for (w = 0; w < n; w += k) {
			k = send(out, buf + w, (size_t)(n - w), 0);
			if (k <= 0)
				die("send");
		}
		done += n;
	}
}

static void relay_splice(int us, int out, off_t size)
{
	int p[2];
	off_t done = 0;
	ssize_t n, w, k;

	if (pipe(p))
		die("pipe");
	fcntl(p[1], F_SETPIPE_SZ, 1 << 20);
	while (done < size) {
		n = splice(us, NULL, p[1], NULL, 1 << 20, SPLICE_F_MOVE);
		if (n <= 0)
			die("splice in");
		for (w = 0; w < n; w += k) {
			k = splice(p[0], NULL, out, NULL, (size_t)(n - w), SPLICE_F_MOVE);
			if (k <= 0)
				die("splice out");
		}
		done += n;
	}
}

int main(int argc, char **argv)
{
	int sv[2], out, in, sndbuf = 1 << 20, st;
	pid_t w, r;
	off_t size;
	double t0, c0, t, c;

	if (argc != 3 || (strcmp(argv[1], "copy") && strcmp(argv[1], "splice"))) {
		fprintf(stderr, "usage: bench_splice copy|splice FILE\n");
		return 2;
	}
	in = open(argv[2], O_RDONLY);
	if (in < 0)
		die(argv[2]);
	size = lseek(in, 0, SEEK_END);
	close(in);
	if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv))
		die("socketpair");
	setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof(sndbuf));
	tcp_pair(&out, &in);
	t0 = now();
	c0 = cpu_s();
	w = fork();
	if (w == 0)
		writer(sv[0], argv[2], size);
	r = fork();
	if (r == 0)
		reader(in, size);
	if (w < 0 || r < 0)
		die("fork");
	if (!strcmp(argv[1], "copy"))
		relay_copy(sv[1], out, size);
	else
		relay_splice(sv[1], out, size);
	if (waitpid(r, &st, 0) != r || !WIFEXITED(st) || WEXITSTATUS(st))
		return 1;
	t = now() - t0;
	c = cpu_s() - c0;
	waitpid(w, &st, 0);
	printf("bench_splice_%s_mib_s: %.0f\n", argv[1], (double)size / 1048576.0 / t);
	printf("bench_splice_%s_relay_cpu_s_per_gib: %.3f\n", argv[1],
	       c / ((double)size / 1073741824.0));
	return 0;
}
