/* SPDX-License-Identifier: MIT */
/* log.c - leveled logging to stderr, journald priority prefixes, per-site rate limiting */
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "common/log.h"

#define MW_LOG_LINE_MAX 1024

/*
 * Process-wide state.  The level is read on every hot-path call, so it is an
 * atomic int rather than something behind a lock; ident and the journald flag
 * are written once by mw_log_init() before threads exist.
 */
static char log_ident[32] = "mwcomms";
static int log_level = MW_LOG_INFO;
static bool log_journald;
static pthread_mutex_t log_rl_lock = PTHREAD_MUTEX_INITIALIZER;

static const char *const log_level_names[] = {
	[MW_LOG_ERR] = "error", [MW_LOG_WARN] = "warning", [MW_LOG_NOTICE] = "notice",
	[MW_LOG_INFO] = "info", [MW_LOG_DEBUG] = "debug",
};

/*
 * systemd sets JOURNAL_STREAM="dev:ino" of the stream it connected to stderr.
 * Checking that it still names our stderr avoids "<N>" prefixes when a child
 * inherited the variable but has stderr redirected to a file or a pipe.
 */
static bool log_stderr_is_journal(void)
{
	const char *env = getenv("JOURNAL_STREAM");
	unsigned long long dev, ino;
	struct stat st;
	char *end;

	if (!env)
		return false;
	errno = 0;
	dev = strtoull(env, &end, 10);
	if (errno || end == env || *end != ':')
		return false;
	env = end + 1;
	ino = strtoull(env, &end, 10);
	if (errno || end == env || *end)
		return false;
	if (fstat(STDERR_FILENO, &st) < 0)
		return false;
	return (unsigned long long)st.st_dev == dev && (unsigned long long)st.st_ino == ino;
}

/**
 * mw_log_init() - set the program name and threshold, detect journald
 * @ident: program name printed on each line
 * @level: lines above this level are dropped
 */
void mw_log_init(const char *ident, int level)
{
	snprintf(log_ident, sizeof(log_ident), "%s", ident ? ident : "mwcomms");
	log_journald = log_stderr_is_journal();
	mw_log_set_level(level);
}

/**
 * mw_log_set_level() - change the threshold (clamped to error..debug)
 * @level: new threshold
 */
void mw_log_set_level(int level)
{
	if (level < MW_LOG_ERR)
		level = MW_LOG_ERR;
	if (level > MW_LOG_DEBUG)
		level = MW_LOG_DEBUG;
	__atomic_store_n(&log_level, level, __ATOMIC_RELAXED);
}

/**
 * mw_log_get_level() - current threshold
 * Return: the level
 */
int mw_log_get_level(void)
{
	return __atomic_load_n(&log_level, __ATOMIC_RELAXED);
}

/**
 * mw_log_level_parse() - map a level name to its value
 * @name: "error", "warning", "notice", "info" or "debug"
 * Return: the level, or -1
 */
int mw_log_level_parse(const char *name)
{
	int i;

	if (!name)
		return -1;
	for (i = MW_LOG_ERR; i <= MW_LOG_DEBUG; i++)
		if (!strcmp(name, log_level_names[i]))
			return i;
	return -1;
}

/**
 * mw_log() - format and write one line to stderr
 * @level: MW_LOG_*
 * @fmt:   printf format; a trailing newline is optional
 *
 * The whole line goes out in one write(2) so lines from several threads or
 * processes sharing stderr never interleave.  Over-long lines are cut.
 */
void mw_log(int level, const char *fmt, ...)
{
	char line[MW_LOG_LINE_MAX];
	size_t len, room;
	va_list ap;
	int n, saved_errno = errno;

	if (level > mw_log_get_level())
		return;
	if (level < MW_LOG_ERR)
		level = MW_LOG_ERR;
	if (level > MW_LOG_DEBUG)
		level = MW_LOG_DEBUG;

	if (log_journald)
		n = snprintf(line, sizeof(line), "<%d>", level);
	else
		n = snprintf(line, sizeof(line), "%s: %s: ", log_ident, log_level_names[level]);
	len = n > 0 ? (size_t)n : 0;
	if (len >= sizeof(line) - 1)
		len = sizeof(line) - 2;

	room = sizeof(line) - len - 1; /* keep one byte for the newline */
	va_start(ap, fmt);
	n = vsnprintf(line + len, room, fmt, ap);
	va_end(ap);
	if (n > 0)
		len += (size_t)n < room ? (size_t)n : room - 1;
	while (len > 0 && line[len - 1] == '\n')
		len--;
	line[len++] = '\n';

	/* Logging must not fail the caller; a short write to a full pipe is lost. */
	if (write(STDERR_FILENO, line, len) < 0)
		errno = saved_errno;
	errno = saved_errno;
}

static uint64_t log_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	/* +1 so that a window start of 0 always means "never used". */
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u + 1;
}

/**
 * mw_ratelimit_ok() - may one more line be printed in this window?
 * @rl:          per call site state, zero-initialised
 * @burst:       lines allowed per window
 * @interval_ms: window length
 *
 * Return: true to print.  When a window opens after suppressions, a
 * "N similar messages suppressed" line is logged first.
 */
bool mw_ratelimit_ok(struct mw_ratelimit *rl, uint32_t burst, uint32_t interval_ms)
{
	uint64_t now = log_now_ms();
	uint32_t suppressed = 0;
	bool ok;

	pthread_mutex_lock(&log_rl_lock);
	if (!rl->window_start_ms || now - rl->window_start_ms >= interval_ms) {
		suppressed = rl->suppressed;
		rl->window_start_ms = now;
		rl->printed = 0;
		rl->suppressed = 0;
	}
	ok = rl->printed < burst;
	if (ok)
		rl->printed++;
	else
		rl->suppressed++;
	pthread_mutex_unlock(&log_rl_lock);

	if (suppressed)
		mw_log(MW_LOG_NOTICE, "%u similar messages suppressed", suppressed);
	return ok;
}
