/* SPDX-License-Identifier: MIT */
/* con_guard.c - mw-console's view of mw-guard: its recent actions, from its control socket */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "common/config.h"
#include "tools/console/console.h"

/*
 * mw-guard's control socket (docs/guard.md, "Running it") answers one line,
 * "actions", with "ok" and one record per kept action, oldest first:
 *   action n=N time=T kind=K target=X reason=R result=S evidence=E
 * (values without spaces).  The console asks when the user presses g (or runs
 * "mw-console guard") and shows each record as one line.  The exchange is
 * short and bounded by the timeout: the interactive loop waits for it.
 */

/* The value of " key=" in @rec, copied into @buf ("-" when absent). */
static const char *field(const char *rec, const char *key, char *buf, size_t len)
{
	char pat[32];
	const char *p;
	size_t n;

	snprintf(pat, sizeof(pat), " %s=", key);
	p = strstr(rec, pat);
	if (!p) {
		snprintf(buf, len, "-");
		return buf;
	}
	p += strlen(pat);
	n = strcspn(p, " \n");
	if (n >= len)
		n = len - 1;
	memcpy(buf, p, n);
	buf[n] = 0;
	return buf;
}

/**
 * mwcon_guard_line() - one "action ..." record of mw-guard as a console line
 * "#N KIND TARGET reason=R result=S evidence=E"; report mode's kinds keep their
 * "would_" prefix.
 * Return: 0, or -EINVAL if @rec is not an action record
 */
int mwcon_guard_line(const char *rec, char *out, size_t len)
{
	char n[24], kind[32], target[64], reason[32], result[48], ev[256];

	if (strncmp(rec, "action ", 7) || !strstr(rec, " n=") || !strstr(rec, " kind="))
		return -EINVAL;
	snprintf(out, len, "#%s %s %s reason=%s result=%s evidence=%s",
		 field(rec, "n", n, sizeof(n)), field(rec, "kind", kind, sizeof(kind)),
		 field(rec, "target", target, sizeof(target)),
		 field(rec, "reason", reason, sizeof(reason)),
		 field(rec, "result", result, sizeof(result)),
		 field(rec, "evidence", ev, sizeof(ev)));
	return 0;
}

/* The rest of the timeout, in ms, from @start (CLOCK_MONOTONIC ms). */
static int left_ms(int64_t start, int timeout_ms)
{
	struct timespec ts;
	int64_t now;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	now = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
	return now - start >= timeout_ms ? 0 : (int)(timeout_ms - (now - start));
}

/**
 * mwcon_guard_actions() - ask mw-guard at @path for its kept actions
 * @buf: the answer's records ("action ..." lines), NUL-terminated, cut at @len
 * Return: 0, or -errno with @err set (no such socket, refused, "error ..." answer)
 */
int mwcon_guard_actions(const char *path, int timeout_ms, char *buf, size_t len, char *err,
			size_t errlen)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	struct pollfd p;
	struct timespec ts;
	int64_t start;
	size_t got = 0;
	ssize_t n;
	int fd, ret = 0;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	start = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
	buf[0] = 0;
	if (strlen(path) >= sizeof(sun.sun_path)) {
		snprintf(err, errlen, "mw-guard socket %s: path too long", path);
		return -ENAMETOOLONG;
	}
	memcpy(sun.sun_path, path, strlen(path) + 1);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || connect(fd, (struct sockaddr *)&sun, sizeof(sun)) ||
	    send(fd, "actions\n", 8, MSG_NOSIGNAL) != 8) {
		ret = -errno;
		snprintf(err, errlen, "mw-guard socket %s: %s", path, strerror(errno));
		goto out;
	}
	while (got + 1 < len) {
		p = (struct pollfd){ .fd = fd, .events = POLLIN };
		if (poll(&p, 1, left_ms(start, timeout_ms)) <= 0) {
			ret = -ETIMEDOUT;
			snprintf(err, errlen, "mw-guard at %s did not answer within %d ms", path,
				 timeout_ms);
			goto out;
		}
		n = recv(fd, buf + got, len - 1 - got, 0);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		got += (size_t)n;
	}
	buf[got] = 0;
	if (strncmp(buf, "ok\n", 3)) {
		buf[strcspn(buf, "\n")] = 0;
		snprintf(err, errlen, "mw-guard at %s: %s", path, buf[0] ? buf : "no answer");
		buf[0] = 0;
		ret = -EPROTO;
		goto out;
	}
	memmove(buf, buf + 3, got - 2); /* the records only, with their NUL */
out:
	if (fd >= 0)
		close(fd);
	return ret;
}

/**
 * mwcon_guard_socket() - --guard, else guard.control_socket of the configuration
 * (-c, $MW_CONFIG, the built-in path if present), else its default
 */
void mwcon_guard_socket(const struct mwcon_opts *o, char *out, size_t len)
{
	struct mw_config_errors *errs = calloc(1, sizeof(*errs));
	struct mw_config *cfg = calloc(1, sizeof(*cfg));
	const char *path = mwcon_config_path(o);

	if (o->guard) {
		snprintf(out, len, "%s", o->guard);
	} else if (cfg && errs) {
		mw_config_defaults(cfg);
		if (path && mw_config_load(cfg, path, errs))
			mw_config_defaults(cfg); /* an invalid file: the default socket */
		snprintf(out, len, "%s", cfg->guard.control_socket);
	} else {
		snprintf(out, len, "/run/mwcomms/guard.sock");
	}
	free(cfg);
	free(errs);
}

#define GUARD_ANSWER_MAX (256 * 1024) /* mw-guard keeps at most guard.max_actions */

/**
 * mwcon_run_guard() - "mw-console guard": print mw-guard's kept actions, oldest first
 * Return: the exit status
 */
int mwcon_run_guard(const struct mwcon_opts *o)
{
	char path[MW_PATH_MAX], err[MW_PATH_MAX + 128], line[512], *buf, *rec, *save = NULL;
	int n = 0;

	buf = malloc(GUARD_ANSWER_MAX);
	if (!buf) {
		fprintf(stderr, "%s: out of memory\n", MWCON_NAME);
		return 1;
	}
	mwcon_guard_socket(o, path, sizeof(path));
	if (mwcon_guard_actions(path, o->timeout_ms, buf, GUARD_ANSWER_MAX, err, sizeof(err))) {
		fprintf(stderr, "%s: %s\n", MWCON_NAME, err);
		free(buf);
		return 1;
	}
	for (rec = strtok_r(buf, "\n", &save); rec; rec = strtok_r(NULL, "\n", &save))
		if (!mwcon_guard_line(rec, line, sizeof(line))) {
			printf("%s\n", line);
			n++;
		}
	if (!n)
		printf("no action yet\n");
	free(buf);
	return 0;
}
