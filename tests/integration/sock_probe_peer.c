/* SPDX-License-Identifier: MIT */
/* sock_probe_peer.c - sock_probe's helpers: addresses, I/O, and the peers in the client namespace
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/sockios.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "sock_probe.h"

const char *g_case = "?";
int g_bad;
char g_self[PATH_MAX];
int g_shimmed;

const char *env(const char *name, const char *def)
{
	const char *v = getenv(name);

	return v && *v ? v : def;
}

/**
 * parse_int() - a decimal int at the start of @text
 * @text: the text
 * @end: NULL when the number must be all of @text; else where the number ends
 * @v: the value
 *
 * Unlike atoi()/sscanf(), an overflow, a missing number or (without @end)
 * anything after it is an error, not a silent 0 or a truncated value.
 *
 * Return: 0, or -EINVAL.
 */
int parse_int(const char *text, const char **end, int *v)
{
	char *stop;
	long l;

	errno = 0;
	l = strtol(text, &stop, 10);
	if (errno || stop == text || l < INT_MIN || l > INT_MAX || (!end && *stop))
		return -EINVAL;
	if (end)
		*end = stop;
	*v = (int)l;
	return 0;
}

int port_base(int off)
{
	const char *text = env("PROBE_PORT", "20000");
	int base;

	if (parse_int(text, NULL, &base) || base < 1 || base > 65535 - 100) {
		printf("FAIL %s: PROBE_PORT '%s' is not a base port\n", g_case, text);
		exit(2);
	}
	return base + off;
}

/* ---- addresses ---------------------------------------------------------------- */

socklen_t mkaddr(struct sockaddr_storage *ss, const char *ip, int port)
{
	struct sockaddr_in *s4 = (struct sockaddr_in *)ss;
	struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)ss;

	memset(ss, 0, sizeof(*ss));
	if (inet_pton(AF_INET, ip, &s4->sin_addr) == 1) {
		s4->sin_family = AF_INET;
		s4->sin_port = htons(port);
		return sizeof(*s4);
	}
	if (inet_pton(AF_INET6, ip, &s6->sin6_addr) != 1) {
		fprintf(stderr, "sock_probe: bad address '%s'\n", ip);
		exit(2);
	}
	s6->sin6_family = AF_INET6;
	s6->sin6_port = htons(port);
	return sizeof(*s6);
}

/* "ip port family" of @sa, for comparing with what a case expects. */
const char *addrstr(const struct sockaddr_storage *ss, char *buf, size_t n)
{
	char ip[INET6_ADDRSTRLEN] = "?";
	int port = -1;

	if (ss->ss_family == AF_INET) {
		inet_ntop(AF_INET, &((const struct sockaddr_in *)ss)->sin_addr, ip, sizeof(ip));
		port = ntohs(((const struct sockaddr_in *)ss)->sin_port);
	} else if (ss->ss_family == AF_INET6) {
		inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)ss)->sin6_addr, ip, sizeof(ip));
		port = ntohs(((const struct sockaddr_in6 *)ss)->sin6_port);
	}
	snprintf(buf, n, "%s %d %s", ip, port,
		 ss->ss_family == AF_INET    ? "inet"
		 : ss->ss_family == AF_INET6 ? "inet6"
					     : "other");
	return buf;
}

/* @fd's own (@peer 0) or peer's name as addrstr(); "error <errno>" on failure. */
const char *name_of(int fd, int peer, char *buf, size_t n)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);
	int ret;

	memset(&ss, 0, sizeof(ss));
	ret = peer ? getpeername(fd, (struct sockaddr *)&ss, &len)
		   : getsockname(fd, (struct sockaddr *)&ss, &len);
	if (ret) {
		snprintf(buf, n, "error %s", strerrorname_np(errno));
		return buf;
	}
	return addrstr(&ss, buf, n);
}

int name_port(int fd, int peer)
{
	char b[128];
	const char *sp, *end;
	int port;

	/* "IP PORT FAMILY" (addrstr()); "error E..." has no port. */
	sp = strchr(name_of(fd, peer, b, sizeof(b)), ' ');
	if (!sp || sp == b || parse_int(sp + 1, &end, &port) || end[0] != ' ' || !end[1])
		return -1;
	return port;
}

int getint(int fd, int level, int name)
{
	int v = -12345;
	socklen_t len = sizeof(v);

	if (getsockopt(fd, level, name, &v, &len))
		return -errno - 100000;
	return v;
}

int setint(int fd, int level, int name, int v)
{
	return setsockopt(fd, level, name, &v, sizeof(v)) ? -errno : 0;
}

/* A listening socket on [addr]:port with options; -errno from the first failing call. */
int listener(int family, const char *ip, int port, int type_flags, int reuseport, int v6only)
{
	struct sockaddr_storage ss;
	socklen_t len = mkaddr(&ss, ip, port);
	int fd = socket(family, SOCK_STREAM | type_flags, 0);
	int ret;

	if (fd < 0)
		return -errno;
	if (reuseport && setint(fd, SOL_SOCKET, SO_REUSEPORT, 1))
		goto fail;
	if (v6only >= 0 && setint(fd, IPPROTO_IPV6, IPV6_V6ONLY, v6only))
		goto fail;
	if (bind(fd, (struct sockaddr *)&ss, len) || listen(fd, 64))
		goto fail;
	return fd;
fail:
	ret = -errno;
	close(fd);
	return ret;
}

int connect_to(int family, const char *ip, int port, int type_flags)
{
	struct sockaddr_storage ss;
	socklen_t len = mkaddr(&ss, ip, port);
	int fd = socket(family, SOCK_STREAM | type_flags, 0);

	if (fd < 0)
		return -errno;
	if (connect(fd, (struct sockaddr *)&ss, len)) {
		int err = errno;

		close(fd);
		return -err;
	}
	return fd;
}

int write_all(int fd, const void *buf, size_t n)
{
	const char *p = buf;

	while (n) {
		ssize_t w = send(fd, p, n, MSG_NOSIGNAL);

		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return -errno;
		p += w;
		n -= w;
	}
	return 0;
}

/* Read until EOF, error or @n bytes; bounded by @ms per read.  Return: bytes, or -errno. */
ssize_t read_some(int fd, char *buf, size_t n, int ms, int *eof)
{
	size_t got = 0;
	struct pollfd p = { .fd = fd, .events = POLLIN };

	*eof = 0;
	while (got < n) {
		ssize_t r;

		if (poll(&p, 1, ms) <= 0)
			break;
		r = read(fd, buf + got, n - got);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return got ? (ssize_t)got : -errno;
		if (!r) {
			*eof = 1;
			break;
		}
		got += r;
	}
	return got;
}

/* Read one "\n"-terminated line (without it) within @ms.  Return: length or -1. */
int read_line(int fd, char *buf, size_t n, int ms)
{
	size_t got = 0;
	struct pollfd p = { .fd = fd, .events = POLLIN };

	while (got + 1 < n) {
		char c;
		ssize_t r;

		if (poll(&p, 1, ms) <= 0)
			return -1;
		r = read(fd, &c, 1);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return -1;
		if (c == '\n')
			break;
		buf[got++] = c;
	}
	buf[got] = '\0';
	return got;
}

/* ---- peers in the client namespace --------------------------------------------- */

/* Start `sock_probe ARGS...` in PROBE_PEER_NS without the shim. */
struct peer peer_start(const char *a1, const char *a2, const char *a3, const char *a4)
{
	struct peer p = { -1, -1 };
	int pfd[2];

	if (pipe2(pfd, O_CLOEXEC)) {
		perror("pipe2");
		exit(2);
	}
	fflush(stdout);
	p.pid = fork();
	if (p.pid == 0) {
		unsetenv("LD_PRELOAD");
		dup2(pfd[1], 1);
		execlp("ip", "ip", "netns", "exec", env("PROBE_PEER_NS", "?"), g_self, a1, a2, a3,
		       a4, (char *)NULL);
		_exit(127);
	}
	close(pfd[1]);
	p.out = pfd[0];
	return p;
}

/* The peer's next line that starts with @prefix (others are skipped); -1 after @ms. */
int peer_expect(struct peer *p, const char *prefix, char *buf, size_t n, int ms)
{
	int i;

	for (i = 0; i < 1000; i++) {
		if (read_line(p->out, buf, n, ms) < 0)
			return -1;
		if (!strncmp(buf, prefix, strlen(prefix)))
			return 0;
	}
	return -1;
}

void peer_stop(struct peer *p)
{
	if (p->pid > 0) {
		kill(p->pid, SIGTERM);
		waitpid(p->pid, NULL, 0);
	}
	if (p->out >= 0)
		close(p->out);
	p->pid = -1;
	p->out = -1;
}

/* A peer-serve on @port (dual stack) that has said "ready". */
struct peer serve_peer(int port)
{
	char ps[16], line[LINE_MAX_];
	struct peer p;

	snprintf(ps, sizeof(ps), "%d", port);
	p = peer_start("peer-serve", ps, NULL, NULL);
	if (peer_expect(&p, "ready", line, sizeof(line), 10000)) {
		printf("FAIL %s: peer-serve on port %d did not start\n", g_case, port);
		exit(1);
	}
	return p;
}

/* Run peer-client against the app: @n connections to @ip:@port.  Output on p.out. */
struct peer client_peer(const char *ip, int port, int n)
{
	char ps[16], ns[16];

	snprintf(ps, sizeof(ps), "%d", port);
	snprintf(ns, sizeof(ns), "%d", n);
	return peer_start("peer-client", ip, ps, ns);
}

/* Peer side, each connection: the first line chooses what it does. */
static void peer_conn(int c)
{
	char mode[64], buf[65536];
	ssize_t r;
	long n = 0;
	int outq, i, eof;

	if (read_line(c, mode, sizeof(mode), 10000) < 0)
		_exit(0);
	if (!strcmp(mode, "echo")) {
		while ((r = read(c, buf, sizeof(buf))) > 0)
			if (write_all(c, buf, r))
				break;
	} else if (!strcmp(mode, "drain") || !strcmp(mode, "quiet")) {
		while ((r = read(c, buf, sizeof(buf))) > 0)
			n += r;
		printf("drain eof %ld\n", n);
		fflush(stdout);
		snprintf(buf, sizeof(buf), "eof %ld\n", n);
		if (!strcmp(mode, "drain")) /* quiet: data after a SHUT_RDWR would be reset */
			write_all(c, buf, strlen(buf));
	} else if (!strcmp(mode, "rst")) {
		/* Send a line, wait for the app's "go", then reset the connection. */
		struct linger lg = { .l_onoff = 1, .l_linger = 0 };

		write_all(c, "hello\n", 6);
		read_line(c, buf, sizeof(buf), 10000);
		setsockopt(c, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
		printf("rst sent\n");
		fflush(stdout);
	} else if (!strcmp(mode, "silent")) {
		/* Never read, never close: the app's FIN is all that happens. */
		sleep(30);
	} else if (!strcmp(mode, "shutrd")) {
		if (read_line(c, buf, sizeof(buf), 10000) < 0 || strcmp(buf, "after"))
			printf("shutrd no after\n");
		else
			printf("shutrd got after\n");
		fflush(stdout);
		write_all(c, "fromPeer\n", 9);
		/* Awaited, not slept: the app's stack has acknowledged our data. */
		for (i = 0; i < 300; i++) {
			if (ioctl(c, SIOCOUTQ, &outq) || !outq)
				break;
			usleep(10000);
		}
		printf("shutrd acked %d\n", outq);
		fflush(stdout);
		/* The app's next line shows the connection went on past our data. */
		printf("shutrd last %s\n",
		       read_line(c, buf, sizeof(buf), 10000) < 0 ? "missing" : buf);
		fflush(stdout);
		r = read_some(c, buf, sizeof(buf) - 1, 10000, &eof);
		buf[r > 0 ? r : 0] = '\0';
		for (i = 0; buf[i]; i++)
			if (buf[i] == '\n')
				buf[i] = '|';
		printf("shutrd rest '%s' %s\n", buf,
		       r < 0 ? strerrorname_np(-r)
		       : eof ? "eof"
			     : "open");
		fflush(stdout);
	}
	_exit(0);
}

int peer_serve(int port)
{
	int fd = listener(AF_INET6, "::", port, 0, 0, 0), c;

	if (fd < 0) {
		printf("peer-serve: listen %d: %s\n", port, strerror(-fd));
		return 1;
	}
	signal(SIGCHLD, SIG_IGN);
	printf("ready\n");
	fflush(stdout);
	for (;;) {
		c = accept(fd, NULL, NULL);
		if (c < 0)
			continue;
		if (fork() == 0) {
			close(fd);
			peer_conn(c);
		}
		close(c);
	}
}

/* @n connections, each says "c<i>\n", then everything each one reads until EOF. */
int peer_client(const char *ip, int port, int n)
{
	int fds[256], i, eof;
	char buf[4096];
	ssize_t r;

	alarm(25);
	for (i = 0; i < n && i < 256; i++) {
		fds[i] = connect_to(strchr(ip, ':') ? AF_INET6 : AF_INET, ip, port, 0);
		if (fds[i] < 0) {
			printf("conn %d err %s\n", i, strerrorname_np(-fds[i]));
			continue;
		}
		snprintf(buf, sizeof(buf), "c%d\n", i);
		write_all(fds[i], buf, strlen(buf));
	}
	for (i = 0; i < n && i < 256; i++) {
		if (fds[i] < 0)
			continue;
		r = read_some(fds[i], buf, sizeof(buf) - 1, 10000, &eof);
		buf[r > 0 ? r : 0] = '\0';
		if (r > 0 && buf[r - 1] == '\n')
			buf[r - 1] = '\0';
		printf("got %d %s%s\n", i, buf, eof ? "" : " (no eof)");
		close(fds[i]);
	}
	printf("done\n");
	return 0;
}

/* Serve one accepted connection the way peer_client expects: reply "<tag><line>". */
void serve_one(int c, const char *tag)
{
	char line[64], out[128];

	if (read_line(c, line, sizeof(line), 10000) < 0)
		snprintf(line, sizeof(line), "?");
	snprintf(out, sizeof(out), "%s%s\n", tag, line);
	write_all(c, out, strlen(out));
	close(c);
}

/* Collect peer_client's "got" lines into @got (index -> text) until "done". */
int collect(struct peer *p, char got[][64], int n)
{
	char line[LINE_MAX_];
	int i, count = 0;

	for (i = 0; i < 1000; i++) {
		if (read_line(p->out, line, sizeof(line), 20000) < 0)
			break;
		if (!strcmp(line, "done"))
			break;
		const char *rest;
		int idx;

		/* "got IDX TEXT" or "conn IDX err TEXT" */
		if (!strncmp(line, "got ", 4) && !parse_int(line + 4, &rest, &idx) && idx >= 0 &&
		    idx < n) {
			snprintf(got[idx], 64, "%s", rest + strspn(rest, " "));
			count++;
		} else if (!strncmp(line, "conn ", 5) && !parse_int(line + 5, &rest, &idx) &&
			   !strncmp(rest, " err", 4) && idx >= 0 && idx < n) {
			rest += 4;
			snprintf(got[idx], 64, "err %s", rest + strspn(rest, " "));
			count++;
		}
	}
	peer_stop(p);
	return count;
}
