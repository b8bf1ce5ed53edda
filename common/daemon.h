/* SPDX-License-Identifier: MIT */
/* daemon.h - what every mw-* daemon shares: options, config, signals, sd_notify */
#ifndef MW_DAEMON_H
#define MW_DAEMON_H

#include <ev.h>
#include <stdbool.h>

#include "common/config.h"

/* A daemon-specific command-line option (long form only, e.g. --id 3). */
struct mw_daemon_opt {
	const char *name;     /* "id" */
	bool has_arg;
	const char *help;     /* one line for --help */
	/* Applied after the config file is loaded; return 0 or -EINVAL (bad value). */
	int (*apply)(struct mw_config *cfg, const char *arg);
};

struct mw_daemon {
	const char *name;              /* "mw-pvm" */
	const char *summary;           /* one line for --help */
	const struct mw_daemon_opt *opts; /* NULL-name terminated, may be NULL */
	struct mw_config cfg;
	struct ev_loop *loop;
	ev_signal sig_term, sig_int, sig_hup;
	ev_timer watchdog;
	void (*on_stop)(struct mw_daemon *d);    /* SIGTERM/SIGINT; default: ev_break */
	void (*on_reload)(struct mw_daemon *d);  /* SIGHUP; NULL: ignored with a log line */
	void *ctx;                                /* the daemon's own state */
};

/**
 * mw_daemon_init() - parse the command line, load the config, prepare the loop
 *
 * Handles --help, --version, -c/--config FILE, --check-config, --log-level LEVEL
 * and @d->opts.  Loads the config (MW_CONFIG env, then -c, then the built-in path
 * if it exists, else defaults), initialises logging, creates the runtime
 * directory (0755) and checks it is writable, ignores SIGPIPE, and installs the
 * SIGTERM/SIGINT/SIGHUP watchers and the systemd watchdog timer on @d->loop.
 *
 * Return: -1 to continue into the daemon's work; otherwise the exit status the
 * caller must return at once (0 after --help/--version/a clean --check-config,
 * 1 after any error, which has been printed as one line per problem).
 */
int mw_daemon_init(struct mw_daemon *d, int argc, char **argv);

/* sd_notify wrappers: silent unless NOTIFY_SOCKET is set. */
void mw_daemon_ready(struct mw_daemon *d, const char *status_fmt, ...)
	__attribute__((format(printf, 2, 3)));
void mw_daemon_status(struct mw_daemon *d, const char *status_fmt, ...)
	__attribute__((format(printf, 2, 3)));
void mw_daemon_stopping(struct mw_daemon *d);

/* Stop the watchers, free what init allocated. */
void mw_daemon_fini(struct mw_daemon *d);

/**
 * mw_runtime_dir_prepare() - mkdir -p @dir (0755) and check it is writable
 * Return: 0 or -errno; @err gets one line naming the directory and the problem
 */
int mw_runtime_dir_prepare(const char *dir, char *err, size_t errlen);

#endif /* MW_DAEMON_H */
