/* SPDX-License-Identifier: MIT */
/* mwctl.c - commands to mw-balancer and mw-guard over their control sockets: tables or JSON */
#include <errno.h>
#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

#include "common/config.h"

#define REPLY_MAX (1 << 20)

static void usage(FILE *f)
{
	fprintf(f,
		"usage: mwctl [-c CONFIG | -s SOCKET] [--json] COMMAND\n"
		"commands:\n"
		"  status                    the balancer's state\n"
		"  netflow                   the merged Netflow stream's consumers and roles\n"
		"  ins list                  every INS: id, state, address, pid, load, health, "
		"rx/tx\n"
		"  ins spawn                 start one more INS (up to balancer.max_ins)\n"
		"  ins retire ID [--drain]   stop INS ID (--drain: after its connections end);\n"
		"                            ID pvm:N: the INS mw-pvm knows as N (Xen: domid)\n"
		"  scale N                   keep N INS (balancer.min_ins..max_ins)\n"
		"  policy NAME               round-robin | least-connections | least-busy | hash\n"
		"  reload                    re-read the configuration (as SIGHUP)\n"
		"  guard status              mw-guard: mode, Netflow link, pressure per listener, "
		"counters\n"
		"  guard actions             mw-guard: its recent actions with their evidence\n"
		"  guard reload              mw-guard: re-read the configuration (as SIGHUP)\n"
		"options:\n"
		"  -c, --config FILE         find the control socket in FILE (default $MW_CONFIG)\n"
		"  -s, --socket PATH         the control socket (default balancer.control_socket,\n"
		"                            guard.control_socket for guard commands)\n"
		"  -j, --json                JSON instead of tables\n"
		"  -h, --help, -V, --version\n");
}

static int fail(const char *fmt, const char *arg) __attribute__((format(printf, 1, 0)));
static int fail(const char *fmt, const char *arg)
{
	fprintf(stderr, "mwctl: ");
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wformat-nonliteral"
	fprintf(stderr, fmt, arg);
#pragma GCC diagnostic pop
	fputc('\n', stderr);
	return 1;
}

static bool is_number(const char *s)
{
	if (*s == '-')
		s++;
	return *s && strspn(s, "0123456789") == strlen(s);
}

/* Build the request line from argv.  Return: 0, or 1 with an error printed. */
static int build(int argc, char **argv, char *line, size_t len)
{
	const char *c = argc ? argv[0] : "";

	if (!argc)
		return fail("no command (try --help)%s", "");
	if (!strcmp(c, "status") || !strcmp(c, "reload") || !strcmp(c, "netflow")) {
		if (argc != 1)
			return fail("%s takes no arguments", c);
		snprintf(line, len, "%s\n", c);
	} else if (!strcmp(c, "ins")) {
		if (argc >= 2 && (!strcmp(argv[1], "list") || !strcmp(argv[1], "spawn"))) {
			if (argc != 2)
				return fail("ins %s takes no arguments", argv[1]);
			snprintf(line, len, "ins %s\n", argv[1]);
		} else if (argc >= 2 && !strcmp(argv[1], "retire")) {
			if (argc < 3 || argc > 4)
				return fail("usage: ins retire ID [--drain]%s", "");
			if (!is_number(argv[2]) &&
			    (strncmp(argv[2], "pvm:", 4) || !is_number(argv[2] + 4)))
				return fail("ins retire: '%s' is not an INS id (N or pvm:N)",
					    argv[2]);
			if (argc == 4 && strcmp(argv[3], "--drain"))
				return fail("ins retire: unknown option '%s' (--drain)", argv[3]);
			snprintf(line, len, "ins retire %s%s\n", argv[2],
				 argc == 4 ? " drain" : "");
		} else {
			return fail("ins: expected list, spawn or retire, not '%s'",
				    argc >= 2 ? argv[1] : "");
		}
	} else if (!strcmp(c, "guard")) {
		if (argc != 2 || (strcmp(argv[1], "status") && strcmp(argv[1], "actions") &&
				  strcmp(argv[1], "reload")))
			return fail("usage: guard status|actions|reload%s", "");
		snprintf(line, len, "%s\n", argv[1]);
	} else if (!strcmp(c, "scale")) {
		if (argc != 2 || !is_number(argv[1]))
			return fail("usage: scale N (a number, not '%s')",
				    argc >= 2 ? argv[1] : "");
		snprintf(line, len, "scale %s\n", argv[1]);
	} else if (!strcmp(c, "policy")) {
		if (argc != 2 || strlen(argv[1]) > 64 || strchr(argv[1], ' '))
			return fail("usage: policy NAME%s", "");
		snprintf(line, len, "policy %s\n", argv[1]);
	} else {
		return fail("unknown command '%s' (try --help)", c);
	}
	return 0;
}

/* One record line "KIND k=v k=v" as a JSON object. */
static void json_record(char *rec)
{
	char *save = NULL, *t, *eq;
	bool first = true;

	strtok_r(rec, " ", &save); /* kind */
	putchar('{');
	while ((t = strtok_r(NULL, " ", &save))) {
		eq = strchr(t, '=');
		if (!eq)
			continue;
		*eq = 0;
		printf("%s\"%s\":", first ? "" : ",", t);
		if (is_number(eq + 1))
			printf("%s", eq + 1);
		else {
			putchar('"');
			for (t = eq + 1; *t; t++)
				printf(*t == '"' || *t == '\\' ? "\\%c" : "%c", *t);
			putchar('"');
		}
		first = false;
	}
	putchar('}');
}

static const char *field(const char *rec, const char *key, char *buf, size_t len)
{
	char pat[32];
	const char *p;
	size_t n;

	snprintf(pat, sizeof(pat), " %s=", key);
	p = strstr(rec, pat);
	if (!p)
		return "-";
	p += strlen(pat);
	n = strcspn(p, " ");
	if (n >= len)
		n = len - 1;
	memcpy(buf, p, n);
	buf[n] = 0;
	return buf;
}

static void human(const char *v, char *buf, size_t len)
{
	double d = strtod(v, NULL);
	const char *u[] = { "B", "KiB", "MiB", "GiB", "TiB" };
	int k = 0;

	while (d >= 1024 && k < 4) {
		d /= 1024;
		k++;
	}
	snprintf(buf, len, k ? "%.1f %s" : "%.0f %s", d, u[k]);
}

static void print_table(char **recs, int n)
{
	char a[10][64], rx[32], tx[32];
	int k;
	bool hdr = false;

	for (k = 0; k < n; k++) {
		if (!strncmp(recs[k], "status ", 7)) {
			char *save = NULL, *t, *copy = strdup(recs[k]);

			strtok_r(copy, " ", &save);
			while ((t = strtok_r(NULL, " ", &save))) {
				char *eq = strchr(t, '=');

				if (eq) {
					*eq = 0;
					printf("%-16s %s\n", t, eq + 1);
				}
			}
			free(copy);
		} else if (!strncmp(recs[k], "listener ", 9)) {
			char lat[2][32];

			printf("listener %-22s sock=%-12s protected=%-3s baseline=%-3s held=%-6s "
			       "slow=%-6s accept_ms=%-6s response_ms=%-6s pressure=%-3s "
			       "levers=%-3s closes=%s\n",
			       field(recs[k], "local", a[0], 64), field(recs[k], "sock", a[1], 64),
			       field(recs[k], "protected", a[2], 64),
			       field(recs[k], "baseline", a[3], 64),
			       field(recs[k], "held", a[4], 64), field(recs[k], "slow", a[5], 64),
			       field(recs[k], "accept_ms", lat[0], sizeof(lat[0])),
			       field(recs[k], "response_ms", lat[1], sizeof(lat[1])),
			       field(recs[k], "pressure", a[6], 64),
			       field(recs[k], "levers", a[7], 64),
			       field(recs[k], "closes", a[8], 64));
		} else if (!strncmp(recs[k], "action ", 7)) {
			char ev[512];

			printf("%6s %s %-18s %-24s reason=%-12s result=%-10s evidence=%s\n",
			       field(recs[k], "n", a[0], 64), field(recs[k], "time", a[1], 64),
			       field(recs[k], "kind", a[2], 64), field(recs[k], "target", a[3], 64),
			       field(recs[k], "reason", a[4], 64),
			       field(recs[k], "result", a[5], 64),
			       field(recs[k], "evidence", ev, sizeof(ev)));
		} else if (!strncmp(recs[k], "ins ", 4)) {
			if (!hdr) {
				printf("%-6s %-9s %-15s %-8s %7s %9s %7s %-8s %-7s %10s %10s  %s\n",
				       "ID", "STATE", "ADDRESS", "PID", "CONNS", "TOTAL", "FAILED",
				       "HEALTH", "PVM", "RX", "TX", "NAME");
				hdr = true;
			}
			human(field(recs[k], "rx", a[6], sizeof(a[6])), rx, sizeof(rx));
			human(field(recs[k], "tx", a[7], sizeof(a[7])), tx, sizeof(tx));
			printf("%-6s %-9s %-15s %-8s %7s %9s %7s %-8s %-7s %10s %10s  %s\n",
			       field(recs[k], "id", a[0], 64), field(recs[k], "state", a[1], 64),
			       field(recs[k], "address", a[2], 64), field(recs[k], "pid", a[3], 64),
			       field(recs[k], "conns", a[4], 64), field(recs[k], "total", a[5], 64),
			       field(recs[k], "failed", a[6], 64),
			       field(recs[k], "health", a[8], 64),
			       field(recs[k], "health_pvm", a[9], 64), rx, tx,
			       field(recs[k], "name", a[7], 64));
		}
	}
}

int main(int argc, char **argv)
{
	static const struct option lo[] = { { "json", no_argument, NULL, 'j' },
					    { "config", required_argument, NULL, 'c' },
					    { "socket", required_argument, NULL, 's' },
					    { "help", no_argument, NULL, 'h' },
					    { "version", no_argument, NULL, 'V' },
					    { NULL, 0, NULL, 0 } };
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	struct timeval tv = { .tv_sec = 10 };
	const char *sock = NULL, *conf = getenv("MW_CONFIG");
	char line[256], *reply = NULL, *recs[4096], *save = NULL, *t;
	bool json = false, list, guard;
	size_t len = 0;
	ssize_t n;
	int opt, fd = -1, nrec = 0, k, rc = 1;

	while ((opt = getopt_long(argc, argv, "+c:s:jhV", lo, NULL)) != -1) {
		switch (opt) {
		case 'j':
			json = true;
			break;
		case 'c':
			conf = optarg;
			break;
		case 's':
			sock = optarg;
			break;
		case 'h':
			usage(stdout);
			return 0;
		case 'V':
			printf("mwctl mwcomms %s\n", MW_VERSION);
			return 0;
		default:
			usage(stderr);
			return 1;
		}
	}
	/* "--drain" after the command is an argument of it, not an option of mwctl. */
	if (build(argc - optind, argv + optind, line, sizeof(line)))
		return 1;
	guard = optind < argc && !strcmp(argv[optind], "guard");
	list = !strcmp(line, "ins list\n") || !strcmp(line, "netflow\n") ||
	       (guard && strcmp(line, "reload\n"));
	if (!sock) {
		static struct mw_config cfg;
		struct mw_config_errors errs;

		if (conf && mw_config_load(&cfg, conf, &errs)) {
			fprintf(stderr, "mwctl: %s\n", errs.msg[0]);
			return 1;
		}
		if (!conf)
			mw_config_defaults(&cfg);
		sock = guard ? cfg.guard.control_socket : cfg.balancer.control_socket;
		snprintf(sun.sun_path, sizeof(sun.sun_path), "%s", sock);
	} else {
		if (strlen(sock) >= sizeof(sun.sun_path))
			return fail("socket path too long: %s", sock);
		snprintf(sun.sun_path, sizeof(sun.sun_path), "%s", sock);
	}
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || connect(fd, (struct sockaddr *)&sun, sizeof(sun))) {
		fprintf(stderr, "mwctl: cannot reach %s at %s: %s\n",
			guard ? "mw-guard" : "mw-balancer", sun.sun_path, strerror(errno));
		goto out;
	}
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	if (send(fd, line, strlen(line), MSG_NOSIGNAL) != (ssize_t)strlen(line)) {
		fprintf(stderr, "mwctl: send: %s\n", strerror(errno));
		goto out;
	}
	reply = malloc(REPLY_MAX + 1);
	if (!reply)
		goto out;
	while (len < REPLY_MAX && (n = recv(fd, reply + len, REPLY_MAX - len, 0)) > 0)
		len += (size_t)n;
	reply[len] = 0;
	if (!len) {
		fprintf(stderr, "mwctl: no answer from %s\n", guard ? "mw-guard" : "mw-balancer");
		goto out;
	}
	t = strtok_r(reply, "\n", &save);
	if (!t || strcmp(t, "ok")) {
		fprintf(stderr, "mwctl: %s\n",
			t && !strncmp(t, "error ", 6) ? t + 6 : "bad answer");
		goto out;
	}
	while ((t = strtok_r(NULL, "\n", &save)) && nrec < 4096)
		recs[nrec++] = t;
	if (json) {
		if (list)
			putchar('[');
		for (k = 0; k < nrec; k++) {
			if (k)
				putchar(',');
			json_record(recs[k]);
		}
		if (list)
			putchar(']');
		else if (!nrec)
			printf("{\"ok\":true}");
		putchar('\n');
	} else if (nrec) {
		print_table(recs, nrec);
	} else {
		printf("ok\n");
	}
	rc = 0;
out:
	if (fd >= 0)
		close(fd);
	free(reply);
	return rc;
}
