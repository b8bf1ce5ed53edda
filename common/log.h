/* SPDX-License-Identifier: MIT */
/* log.h - leveled logging to stderr (journald friendly), rate limited on hot paths */
#ifndef MW_LOG_H
#define MW_LOG_H

#include <stdbool.h>
#include <stdint.h>

/* Values are syslog priorities, so "<N>" prefixes mean the same to journald. */
enum mw_log_level {
	MW_LOG_ERR = 3,
	MW_LOG_WARN = 4,
	MW_LOG_NOTICE = 5,
	MW_LOG_INFO = 6,
	MW_LOG_DEBUG = 7,
};

/**
 * mw_log_init() - set the program name and threshold
 * @ident: short program name printed with each line ("mw-pvm")
 * @level: lines above this level are dropped
 *
 * When stderr is connected to journald (JOURNAL_STREAM matches stderr), lines
 * carry an sd-daemon "<N>" priority prefix and no timestamp; otherwise they read
 * "ident: level: message".
 */
void mw_log_init(const char *ident, int level);
void mw_log_set_level(int level);
int mw_log_get_level(void);

/**
 * mw_log_level_parse() - map "error", "warning", "notice", "info", "debug"
 * Return: the level, or -1 if @name is not one of them
 */
int mw_log_level_parse(const char *name);

void mw_log(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define mw_err(...) mw_log(MW_LOG_ERR, __VA_ARGS__)
#define mw_warn(...) mw_log(MW_LOG_WARN, __VA_ARGS__)
#define mw_notice(...) mw_log(MW_LOG_NOTICE, __VA_ARGS__)
#define mw_info(...) mw_log(MW_LOG_INFO, __VA_ARGS__)
#define mw_debug(...)                                      \
	do {                                               \
		if (mw_log_get_level() >= MW_LOG_DEBUG)    \
			mw_log(MW_LOG_DEBUG, __VA_ARGS__); \
	} while (0)

/* Token bucket: at most @burst lines per @interval_ms, the rest counted. */
struct mw_ratelimit {
	uint64_t window_start_ms;
	uint32_t printed;
	uint32_t suppressed;
};

/**
 * mw_ratelimit_ok() - may one more line be printed in this window?
 * Return: true to print; when a new window opens after suppressions, the caller's
 * next line is preceded by a "N similar messages suppressed" line.
 */
bool mw_ratelimit_ok(struct mw_ratelimit *rl, uint32_t burst, uint32_t interval_ms);

/* For hot paths: 10 lines per 5 s per call site. */
#define mw_log_ratelimited(level, ...)                                \
	do {                                                          \
		static struct mw_ratelimit mw_rl_;                    \
		if (mw_log_get_level() >= (level) &&                  \
		    mw_ratelimit_ok(&mw_rl_, 10, 5000))               \
			mw_log((level), __VA_ARGS__);                 \
	} while (0)

#endif /* MW_LOG_H */
