/* SPDX-License-Identifier: MIT */
/* shim_probe.c - runs under LD_PRELOAD=libmwshim.so for test_shim_fake_pvm; prints key=value lines */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

/* Results go one per line so the test can match "\nkey=value\n". */
static void out_ret(const char *key, int ret)
{
	if (ret < 0)
		printf("%s=%s\n", key, strerrorname_np(errno));
	else
		printf("%s=%d\n", key, ret);
}

static void out_addr(const char *key, const struct sockaddr_storage *ss)
{
	char ip[INET6_ADDRSTRLEN] = "?";
	unsigned port = 0;

	if (ss->ss_family == AF_INET) {
		const struct sockaddr_in *s = (const struct sockaddr_in *)ss;

		inet_ntop(AF_INET, &s->sin_addr, ip, sizeof(ip));
		port = ntohs(s->sin_port);
	} else if (ss->ss_family == AF_INET6) {
		const struct sockaddr_in6 *s = (const struct sockaddr_in6 *)ss;

		inet_ntop(AF_INET6, &s->sin6_addr, ip, sizeof(ip));
		port = ntohs(s->sin6_port);
	}
	printf("%s=%s:%u/%d\n", key, ip, port, ss->ss_family);
}

static void out_name(const char *key, int fd, int peer)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);
	int ret;

	memset(&ss, 0, sizeof(ss));
	ret = peer ? getpeername(fd, (struct sockaddr *)&ss, &len)
		   : getsockname(fd, (struct sockaddr *)&ss, &len);
	if (ret)
		out_ret(key, ret);
	else
		out_addr(key, &ss);
}

/* The kernel's view, bypassing the shim. */
static int real_int_opt(int fd, int level, int name)
{
	int v = -1;
	socklen_t len = sizeof(v);

	if (syscall(SYS_getsockopt, fd, level, name, &v, &len))
		return -errno;
	return v;
}

static void out_real_name(int fd)
{
	struct sockaddr_un sun;
	socklen_t len = sizeof(sun);
	unsigned long long tag, id;

	memset(&sun, 0, sizeof(sun));
	if (syscall(SYS_getsockname, fd, &sun, &len)) {
		printf("real_name=%s\n", strerrorname_np(errno));
		return;
	}
	printf("real_family=%d\n", sun.sun_family);
	if (sun.sun_family != AF_UNIX || len < 22)
		return;
	memcpy(&tag, sun.sun_path + 4, 8);
	memcpy(&id, sun.sun_path + 12, 8);
	printf("real_kind=%c%c%c\nreal_tag=%llx\nreal_id=%llx\n", sun.sun_path[1],
	       sun.sun_path[2], sun.sun_path[3], tag, id);
}

static int get_int(int fd, int level, int name)
{
	int v = -1;
	socklen_t len = sizeof(v);

	if (getsockopt(fd, level, name, &v, &len))
		return -errno;
	return v;
}

static int make_addr(struct sockaddr_storage *ss, const char *ip, int port)
{
	struct sockaddr_in *s4 = (struct sockaddr_in *)ss;
	struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)ss;

	memset(ss, 0, sizeof(*ss));
	if (inet_pton(AF_INET, ip, &s4->sin_addr) == 1) {
		s4->sin_family = AF_INET;
		s4->sin_port = htons((uint16_t)port);
		return sizeof(*s4);
	}
	if (inet_pton(AF_INET6, ip, &s6->sin6_addr) == 1) {
		s6->sin6_family = AF_INET6;
		s6->sin6_port = htons((uint16_t)port);
		return sizeof(*s6);
	}
	return -1;
}

static int cmd_socket(int family)
{
	int fd = socket(family, SOCK_STREAM, 0);

	out_ret("socket", fd);
	if (fd < 0)
		return 0;
	out_real_name(fd);
	printf("so_type=%d\nso_domain=%d\nso_protocol=%d\n", get_int(fd, SOL_SOCKET, SO_TYPE),
	       get_int(fd, SOL_SOCKET, SO_DOMAIN), get_int(fd, SOL_SOCKET, SO_PROTOCOL));
	printf("real_domain=%d\n", real_int_opt(fd, SOL_SOCKET, SO_DOMAIN));
	return 0;
}

static int cmd_untouched(void)
{
	int u = socket(AF_INET, SOCK_DGRAM, 0);
	int x = socket(AF_UNIX, SOCK_STREAM, 0);

	printf("udp_domain=%d\nudp_type=%d\n", real_int_opt(u, SOL_SOCKET, SO_DOMAIN),
	       real_int_opt(u, SOL_SOCKET, SO_TYPE));
	printf("unix_domain=%d\n", real_int_opt(x, SOL_SOCKET, SO_DOMAIN));
	printf("udp_so_domain=%d\n", get_int(u, SOL_SOCKET, SO_DOMAIN));
	out_name("udp_sockname", u, 0);
	out_ret("udp_close", close(u));
	out_ret("unix_close", close(x));
	return 0;
}

static int cmd_connect(const char *ip, int port, int nonblock)
{
	struct sockaddr_storage ss;
	int len = make_addr(&ss, ip, port);
	int fd = socket(ss.ss_family, SOCK_STREAM | (nonblock ? SOCK_NONBLOCK : 0), 0);
	int ret;

	out_ret("socket", fd);
	if (fd < 0 || len < 0)
		return 1;
	ret = connect(fd, (struct sockaddr *)&ss, (socklen_t)len);
	out_ret("connect", ret);
	if (nonblock) {
		printf("so_error=%d\n", get_int(fd, SOL_SOCKET, SO_ERROR));
		out_ret("connect2", connect(fd, (struct sockaddr *)&ss, (socklen_t)len));
	} else if (ret) {
		return 0;
	}
	out_ret("write", (int)write(fd, "ping", 4));
	out_name("peername", fd, 1);
	out_ret("close", close(fd));
	return 0;
}

/*
 * TCP_CORK on an accepted connection @c is kept in the shim (known without a
 * system call), so is a dup's (known by name); once @c is closed, a foreign
 * TCP socket that gets its number is the kernel's to cork.
 */
static void cork_checks(int c)
{
	int one = 1, d, t;

	out_ret("acc_cork_set", setsockopt(c, IPPROTO_TCP, TCP_CORK, &one, sizeof(one)));
	printf("acc_cork=%d\n", get_int(c, IPPROTO_TCP, TCP_CORK));
	d = dup(c);
	printf("dup_cork_before=%d\n", get_int(d, IPPROTO_TCP, TCP_CORK));
	out_ret("dup_cork_set", setsockopt(d, IPPROTO_TCP, TCP_CORK, &one, sizeof(one)));
	printf("dup_cork=%d\n", get_int(d, IPPROTO_TCP, TCP_CORK));
	printf("dup_cork_real=%d\n", real_int_opt(d, IPPROTO_TCP, TCP_CORK));
	close(d);
	close(c);
	t = (int)syscall(SYS_socket, AF_INET, SOCK_STREAM, 0);
	printf("reuse_same_fd=%d\n", t == c);
	out_ret("reuse_cork_set", setsockopt(t, IPPROTO_TCP, TCP_CORK, &one, sizeof(one)));
	printf("reuse_cork_real=%d\n", real_int_opt(t, IPPROTO_TCP, TCP_CORK));
	close(t);
}

static int cmd_accept(int port, int nonblock)
{
	struct sockaddr_storage ss;
	int len = make_addr(&ss, "0.0.0.0", port);
	int fd = socket(AF_INET, SOCK_STREAM | (nonblock ? SOCK_NONBLOCK : 0), 0);
	struct sockaddr_in peer;
	socklen_t plen = sizeof(peer);
	char buf[64];
	ssize_t n;
	int c, i;

	out_ret("socket", fd);
	out_ret("bind", bind(fd, (struct sockaddr *)&ss, (socklen_t)len));
	out_ret("listen", listen(fd, 16));
	if (nonblock) {
		for (i = 1; i <= 3; i++) {
			char key[16];

			snprintf(key, sizeof(key), "accept%d", i);
			out_ret(key, accept4(fd, NULL, NULL, SOCK_CLOEXEC));
		}
		return 0;
	}
	memset(&peer, 0, sizeof(peer));
	c = accept(fd, (struct sockaddr *)&peer, &plen);
	out_ret("accept", c < 0 ? c : 0);
	if (c < 0)
		return 0;
	memset(&ss, 0, sizeof(ss));
	memcpy(&ss, &peer, sizeof(peer));
	out_addr("accept_peer", &ss);
	printf("accept_len=%u\n", (unsigned)plen);
	out_name("acc_peername", c, 1);
	out_name("acc_sockname", c, 0);
	printf("acc_so_domain=%d\n", get_int(c, SOL_SOCKET, SO_DOMAIN));
	n = read(c, buf, sizeof(buf) - 1);
	buf[n > 0 ? n : 0] = '\0';
	printf("data=%s\n", buf);
	cork_checks(c);
	return 0;
}

/*
 * A stale bit: a shim listener closed past close() (a raw system call), its
 * number reused by a listener the shim never saw, TCP then AF_UNIX.  accept()
 * must hand out their connections as the kernel would, not drop them as
 * injections.  Prints the results under the prefix tcp_ and unix_.
 */
static void stale_one(const char *pfx, int family)
{
	struct sockaddr_storage ss, peer;
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	socklen_t len, plen;
	char key[32];
	int fd, l, c, a;

	fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
	len = (socklen_t)make_addr(&ss, "127.0.0.1", 0);
	if (fd < 0 || bind(fd, (struct sockaddr *)&ss, len) || listen(fd, 4)) {
		printf("%sshim_listen=%s\n", pfx, strerrorname_np(errno));
		return;
	}
	syscall(SYS_close, fd);
	l = (int)syscall(SYS_socket, family, SOCK_STREAM | SOCK_NONBLOCK, 0);
	c = (int)syscall(SYS_socket, family, SOCK_STREAM, 0);
	snprintf(key, sizeof(key), "%ssame_fd", pfx);
	printf("%s=%d\n", key, l == fd);
	if (family == AF_UNIX) {
		snprintf(sun.sun_path + 1, sizeof(sun.sun_path) - 1, "mw-probe-%d", (int)getpid());
		len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 +
				  strlen(sun.sun_path + 1));
		memcpy(&ss, &sun, sizeof(sun));
	} else {
		len = (socklen_t)make_addr(&ss, "127.0.0.1", 0);
	}
	if (syscall(SYS_bind, l, &ss, len) || syscall(SYS_listen, l, 4) ||
	    (family == AF_INET && syscall(SYS_getsockname, l, &ss, &len)) ||
	    syscall(SYS_connect, c, &ss, len)) {
		printf("%sforeign=%s\n", pfx, strerrorname_np(errno));
		return;
	}
	memset(&peer, 0, sizeof(peer));
	plen = sizeof(peer);
	a = accept(l, (struct sockaddr *)&peer, &plen);
	snprintf(key, sizeof(key), "%saccept", pfx);
	out_ret(key, a < 0 ? a : 0);
	printf("%saccept_len=%u\n%saccept_family=%d\n", pfx, (unsigned)plen, pfx, peer.ss_family);
	if (family == AF_INET) {
		struct sockaddr_in me, *p = (struct sockaddr_in *)&peer;

		len = sizeof(me);
		syscall(SYS_getsockname, c, &me, &len);
		printf("%saccept_peer_is_client=%d\n", pfx,
		       p->sin_port == me.sin_port && p->sin_addr.s_addr == me.sin_addr.s_addr);
	}
	snprintf(key, sizeof(key), "%saccept2", pfx);
	out_ret(key, accept(l, NULL, NULL));
	if (a >= 0)
		close(a);
	close(c);
	close(l);
}

/*
 * A local user's forgery: an AF_UNIX socket bound to an 'A' name with mw-pvm's
 * tag (read off the listener's own 'S' name, common/sockname.c) and a made-up
 * peer, connected to the app's listener and accepted by a raw accept4 (as
 * io_uring would, past the shim): getpeername() must not report the made-up peer.
 */
static int cmd_forged_peer(void)
{
	struct {
		uint8_t family, pad;
		uint16_t port;
		uint32_t scope;
		uint8_t addr[16];
	} peer = { .family = 4, .port = 4242, .addr = { 203, 0, 113, 9 } };
	struct sockaddr_storage ss;
	struct sockaddr_un me, forged;
	socklen_t len = sizeof(me), head = offsetof(struct sockaddr_un, sun_path);
	int l = socket(AF_INET, SOCK_STREAM, 0), c, a;

	if (l < 0 || bind(l, (struct sockaddr *)&ss, (socklen_t)make_addr(&ss, "127.0.0.1", 0)) ||
	    listen(l, 4) || syscall(SYS_getsockname, l, &me, &len) || len != head + 28) {
		printf("forged_setup=%s\n", strerrorname_np(errno));
		return 0;
	}
	forged = me;
	forged.sun_path[3] = 'A';
	memcpy(forged.sun_path + 28, &peer, sizeof(peer));
	memcpy(forged.sun_path + 52, &peer, sizeof(peer));
	c = (int)syscall(SYS_socket, AF_UNIX, SOCK_STREAM, 0);
	if (c < 0 || syscall(SYS_bind, c, &forged, head + 76) ||
	    syscall(SYS_connect, c, &me, len)) {
		printf("forged_connect=%s\n", strerrorname_np(errno));
		return 0;
	}
	a = (int)syscall(SYS_accept4, l, NULL, NULL, 0);
	out_ret("forged_accept", a < 0 ? a : 0);
	out_name("forged_peername", a, 1);
	return 0;
}

static int cmd_accept_stale(void)
{
	stale_one("tcp_", AF_INET);
	stale_one("unix_", AF_UNIX);
	return 0;
}

static int cmd_opts(void)
{
	struct timeval tv = { 2, 0 };
	struct sockaddr_storage ss;
	int one = 1, fd = socket(AF_INET, SOCK_STREAM, 0);
	int len = make_addr(&ss, "127.0.0.1", 0);

	out_ret("socket", fd);
	out_ret("setopt_nodelay", setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)));
	out_ret("setopt_rcvtimeo", setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)));
	memset(&tv, 0, sizeof(tv));
	{
		socklen_t tl = sizeof(tv);

		syscall(SYS_getsockopt, fd, SOL_SOCKET, SO_RCVTIMEO, &tv, &tl);
	}
	printf("rcvtimeo_native=%ld\n", (long)tv.tv_sec);
	printf("nodelay=%d\n", get_int(fd, IPPROTO_TCP, TCP_NODELAY));
	{
		/* The fake answers TCP_CONGESTION with 64 bytes: 16 asked, 16 said. */
		char cong[24];
		socklen_t cl = 16;

		memset(cong, 'z', sizeof(cong));
		out_ret("congestion", getsockopt(fd, IPPROTO_TCP, TCP_CONGESTION, cong, &cl));
		printf("congestion_len=%u canary=%d\n", (unsigned)cl,
		       cong[16] == 'z' && cong[23] == 'z');
	}
	out_name("sockname", fd, 0);
	out_name("peername", fd, 1);
	out_ret("bind", bind(fd, (struct sockaddr *)&ss, (socklen_t)len));
	out_name("bound", fd, 0);
	out_ret("close", close(fd));
	/* A dup'd socket: closing one fd must not hint (the socket lives on). */
	fd = socket(AF_INET, SOCK_STREAM, 0);
	one = dup(fd);
	out_ret("close_dup_first", close(fd));
	out_ret("close_dup_second", close(one));
	return 0;
}

/* A port argument 0..65535; anything else ends the probe with a usage error. */
static int arg_port(const char *s)
{
	char *end;
	long v = strtol(s, &end, 10);

	if (end == s || *end || v < 0 || v > 65535) {
		fprintf(stderr, "shim_probe: bad port '%s'\n", s);
		exit(2);
	}
	return (int)v;
}

int main(int argc, char **argv)
{
	int ret = 2;

	setvbuf(stdout, NULL, _IONBF, 0);
	if (argc >= 2 && !strcmp(argv[1], "socket4"))
		ret = cmd_socket(AF_INET);
	else if (argc >= 2 && !strcmp(argv[1], "socket6"))
		ret = cmd_socket(AF_INET6);
	else if (argc >= 2 && !strcmp(argv[1], "untouched"))
		ret = cmd_untouched();
	else if (argc >= 4 && !strcmp(argv[1], "connect"))
		ret = cmd_connect(argv[2], arg_port(argv[3]), 0);
	else if (argc >= 4 && !strcmp(argv[1], "connect_nb"))
		ret = cmd_connect(argv[2], arg_port(argv[3]), 1);
	else if (argc >= 3 && !strcmp(argv[1], "accept"))
		ret = cmd_accept(arg_port(argv[2]), 0);
	else if (argc >= 3 && !strcmp(argv[1], "accept_nb"))
		ret = cmd_accept(arg_port(argv[2]), 1);
	else if (argc >= 2 && !strcmp(argv[1], "forged_peer"))
		return cmd_forged_peer();
	else if (argc >= 2 && !strcmp(argv[1], "accept_stale"))
		ret = cmd_accept_stale();
	else if (argc >= 2 && !strcmp(argv[1], "opts"))
		ret = cmd_opts();
	else
		fprintf(stderr,
			"usage: shim_probe socket4|socket6|untouched|connect IP PORT|"
			"connect_nb IP PORT|accept PORT|accept_nb PORT|accept_stale|opts\n");
	printf("done=1\n");
	return ret;
}
