/* SPDX-License-Identifier: MIT */
/* daemon.c - the start-up every mw-* daemon shares: options, config, runtime dir, signals,
 * sd_notify */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <systemd/sd-daemon.h>
#include <unistd.h>

#include "common/daemon.h"
#include "common/log.h"

enum {
	OPT_CHECK_CONFIG = 256,
	OPT_LOG_LEVEL,
	OPT_EXTRA, /* d->opts[i] is OPT_EXTRA + i */
};

/* One daemon-specific option as it appeared on the command line. */
struct daemon_extra_arg {
	int index;
	const char *arg;
};

static void daemon_usage(const struct mw_daemon *d)
{
	const struct mw_daemon_opt *o;
	char left[64];

	printf("Usage: %s [OPTION]...\n", d->name);
	if (d->summary)
		printf("%s\n", d->summary);
	printf("\nOptions:\n"
	       "  -c, --config FILE        configuration file; default: $MW_CONFIG, else\n"
	       "                           %s\n"
	       "                           if it exists, else the built-in defaults\n"
	       "      --check-config       validate the configuration, print every problem,\n"
	       "                           exit 0 if valid, 1 if not\n"
	       "      --log-level LEVEL    error, warning, notice, info or debug\n"
	       "                           (overrides common.log_level)\n",
	       MW_DEFAULT_CONFIG);
	for (o = d->opts; o && o->name; o++) {
		snprintf(left, sizeof(left), "--%s%s", o->name, o->has_arg ? " ARG" : "");
		printf("      %-20s %s\n", left, o->help ? o->help : "");
	}
	printf("  -h, --help               show this help and exit\n"
	       "  -V, --version            show the version and exit\n");
}

static void daemon_signal_cb(struct ev_loop *loop, ev_signal *w, int revents)
{
	struct mw_daemon *d = w->data;

	if (w->signum == SIGHUP) {
		if (d->on_reload) {
			mw_notice("SIGHUP: reloading");
			d->on_reload(d);
		} else {
			mw_notice("SIGHUP ignored: %s does not support reloading", d->name);
		}
		return;
	}
	mw_notice("%s: stopping", strsignal(w->signum));
	if (d->on_stop)
		d->on_stop(d);
	else
		ev_break(loop, EVBREAK_ALL);
}

static void daemon_watchdog_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	sd_notify(0, "WATCHDOG=1");
}

/**
 * mw_runtime_dir_prepare() - mkdir -p @dir (0755) and check it is writable
 * @dir:    absolute directory path
 * @err:    receives one line naming the directory and the problem
 * @errlen: size of @err
 *
 * Writability is proven by creating and removing a probe file, because
 * access(2) says nothing useful for root or for read-only mounts.
 *
 * Return: 0 or -errno
 */
int mw_runtime_dir_prepare(const char *dir, char *err, size_t errlen)
{
	char path[4096], probe[4200];
	size_t len;
	char *p;
	int fd, ret = 0;

	len = strlen(dir);
	if (!len || len >= sizeof(path)) {
		ret = -ENAMETOOLONG;
		goto fail;
	}
	memcpy(path, dir, len + 1);
	/* mkdir -p: each prefix in turn; EEXIST is fine, the final check catches files. */
	for (p = path + 1;; p++) {
		if (*p == '/' || *p == '\0') {
			char saved = *p;

			*p = '\0';
			if (mkdir(path, 0755) < 0 && errno != EEXIST) {
				ret = -errno;
				goto fail;
			}
			*p = saved;
			if (!saved)
				break;
		}
	}
	snprintf(probe, sizeof(probe), "%s/.mw-probe-%d", dir, (int)getpid());
	fd = open(probe, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0) {
		ret = -errno;
		goto fail;
	}
	close(fd);
	unlink(probe);
	return 0;

fail:
	if (err && errlen)
		snprintf(err, errlen, "runtime directory %s: %s", dir, strerror(-ret));
	return ret;
}

/* Which file: -c, else $MW_CONFIG, else the installed one if present, else none. */
static const char *daemon_config_path(const char *opt_path)
{
	const char *env = getenv("MW_CONFIG");

	if (opt_path)
		return opt_path;
	if (env && *env)
		return env;
	if (access(MW_DEFAULT_CONFIG, F_OK) == 0)
		return MW_DEFAULT_CONFIG;
	return NULL;
}

static int daemon_start_watchers(struct mw_daemon *d)
{
	uint64_t usec = 0;

	signal(SIGPIPE, SIG_IGN);
	if (!d->loop)
		d->loop = ev_default_loop(EVFLAG_AUTO);
	if (!d->loop)
		return -ENOMEM;

	ev_signal_init(&d->sig_term, daemon_signal_cb, SIGTERM);
	ev_signal_init(&d->sig_int, daemon_signal_cb, SIGINT);
	ev_signal_init(&d->sig_hup, daemon_signal_cb, SIGHUP);
	d->sig_term.data = d->sig_int.data = d->sig_hup.data = d;
	ev_signal_start(d->loop, &d->sig_term);
	ev_signal_start(d->loop, &d->sig_int);
	ev_signal_start(d->loop, &d->sig_hup);

	/* Ping at half the interval so one late loop iteration does not kill us. */
	ev_timer_init(&d->watchdog, daemon_watchdog_cb, 0., 0.);
	d->watchdog.data = d;
	if (sd_watchdog_enabled(0, &usec) > 0 && usec) {
		ev_timer_set(&d->watchdog, usec / 2e6, usec / 2e6);
		ev_timer_start(d->loop, &d->watchdog);
		mw_debug("systemd watchdog: pinging every %.3f s", usec / 2e6);
	}
	return 0;
}

/**
 * mw_daemon_init() - parse the command line, load the config, prepare the loop
 * @d:    name, summary, opts, on_stop, on_reload, ctx set by the caller
 * @argc: from main()
 * @argv: from main()
 *
 * Return: -1 to continue into the daemon's work; otherwise the exit status the
 * caller must return at once.
 */
int mw_daemon_init(struct mw_daemon *d, int argc, char **argv)
{
	static const struct option fixed[] = {
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ "config", required_argument, NULL, 'c' },
		{ "check-config", no_argument, NULL, OPT_CHECK_CONFIG },
		{ "log-level", required_argument, NULL, OPT_LOG_LEVEL },
	};
	const size_t nfixed = sizeof(fixed) / sizeof(fixed[0]);
	struct daemon_extra_arg *extra = NULL;
	struct mw_config_errors *errs = NULL;
	const char *config_opt = NULL, *level_opt = NULL, *path;
	struct option *longopts = NULL;
	bool check_only = false;
	int i, c, nopts = 0, nextra = 0, level, ret = 1;
	char err[512];

	mw_log_init(d->name, MW_LOG_INFO);
	while (d->opts && d->opts[nopts].name)
		nopts++;

	longopts = calloc(nfixed + (size_t)nopts + 1, sizeof(*longopts));
	extra = calloc((size_t)argc + 1, sizeof(*extra));
	errs = calloc(1, sizeof(*errs));
	if (!longopts || !extra || !errs) {
		mw_err("out of memory");
		goto out;
	}
	memcpy(longopts, fixed, sizeof(fixed));
	for (i = 0; i < nopts; i++) {
		longopts[nfixed + (size_t)i] = (struct option){
			.name = d->opts[i].name,
			.has_arg = d->opts[i].has_arg ? required_argument : no_argument,
			.val = OPT_EXTRA + i,
		};
	}

	opterr = 0; /* our own one-line messages instead of getopt's */
	optind = 1;
	while ((c = getopt_long(argc, argv, ":hVc:", longopts, NULL)) != -1) {
		switch (c) {
		case 'h':
			daemon_usage(d);
			ret = 0;
			goto out;
		case 'V':
			printf("%s mwcomms %s\n", d->name, MW_VERSION);
			ret = 0;
			goto out;
		case 'c':
			config_opt = optarg;
			break;
		case OPT_CHECK_CONFIG:
			check_only = true;
			break;
		case OPT_LOG_LEVEL:
			level_opt = optarg;
			break;
		case ':':
			mw_err("option '%s' needs an argument (try --help)", argv[optind - 1]);
			goto out;
		case '?':
			mw_err("unknown option '%s' (try --help)", argv[optind - 1]);
			goto out;
		default:
			extra[nextra].index = c - OPT_EXTRA;
			extra[nextra].arg = optarg;
			nextra++;
			break;
		}
	}
	if (optind < argc) {
		mw_err("unexpected argument '%s' (try --help)", argv[optind]);
		goto out;
	}
	if (level_opt && mw_log_level_parse(level_opt) < 0) {
		mw_err("invalid --log-level '%s' (error, warning, notice, info or debug)",
		       level_opt);
		goto out;
	}

	path = daemon_config_path(config_opt);
	if (mw_config_load(&d->cfg, path, errs) < 0) {
		for (i = 0; i < errs->count && i < MW_CONFIG_MAX_ERRORS; i++)
			mw_err("%s", errs->msg[i]);
		goto out;
	}
	for (i = 0; i < nextra; i++) {
		const struct mw_daemon_opt *o = &d->opts[extra[i].index];

		if (o->apply && o->apply(&d->cfg, extra[i].arg) < 0) {
			mw_err("invalid value '%s' for --%s (try --help)",
			       extra[i].arg ? extra[i].arg : "", o->name);
			goto out;
		}
	}
	level = mw_log_level_parse(level_opt ? level_opt : d->cfg.common.log_level);
	mw_log_set_level(level < 0 ? MW_LOG_INFO : level);

	if (check_only) {
		printf("%s: configuration %s is valid\n", d->name,
		       path ? path : "(built-in defaults)");
		ret = 0;
		goto out;
	}

	if (mw_runtime_dir_prepare(d->cfg.common.runtime_dir, err, sizeof(err)) < 0) {
		mw_err("%s", err);
		goto out;
	}
	if (daemon_start_watchers(d) < 0) {
		mw_err("cannot create the event loop");
		goto out;
	}
	mw_info("configuration: %s", path ? path : "(built-in defaults)");
	ret = -1;
out:
	fflush(stdout);
	free(errs);
	free(extra);
	free(longopts);
	return ret;
}

static void __attribute__((format(printf, 2, 0)))
daemon_vnotify(const char *prefix, const char *fmt, va_list ap)
{
	char status[512]; /* mw-ins's counters alone take about 300 */

	if (!fmt) {
		sd_notify(0, prefix);
		return;
	}
	vsnprintf(status, sizeof(status), fmt, ap);
	sd_notifyf(0, "%sSTATUS=%s", prefix, status);
}

/**
 * mw_daemon_ready() - tell systemd start-up is complete
 * @d:          the daemon
 * @status_fmt: printf format for the STATUS= line, or NULL
 */
void mw_daemon_ready(struct mw_daemon *d, const char *status_fmt, ...)
{
	va_list ap;

	va_start(ap, status_fmt);
	daemon_vnotify("READY=1\n", status_fmt, ap);
	va_end(ap);
}

/**
 * mw_daemon_status() - update the STATUS= line systemctl shows
 * @d:          the daemon
 * @status_fmt: printf format
 */
void mw_daemon_status(struct mw_daemon *d, const char *status_fmt, ...)
{
	va_list ap;

	va_start(ap, status_fmt);
	daemon_vnotify("", status_fmt, ap);
	va_end(ap);
}

/**
 * mw_daemon_stopping() - tell systemd shutdown has begun
 * @d: the daemon
 */
void mw_daemon_stopping(struct mw_daemon *d)
{
	sd_notify(0, "STOPPING=1");
}

/**
 * mw_daemon_fini() - stop the watchers mw_daemon_init() started
 * @d: the daemon
 *
 * The default loop itself is left alone: it is process-wide and the daemon's
 * own watchers may still be registered on it while it tears itself down.
 */
void mw_daemon_fini(struct mw_daemon *d)
{
	if (!d->loop)
		return;
	ev_signal_stop(d->loop, &d->sig_term);
	ev_signal_stop(d->loop, &d->sig_int);
	ev_signal_stop(d->loop, &d->sig_hup);
	ev_timer_stop(d->loop, &d->watchdog);
}
