/* SPDX-License-Identifier: MIT */
/* con_tty.c - mw-console's interactive side: raw terminal, keys, live socket table */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include "common/config.h"
#include "netflow/client.h"
#include "tools/console/console.h"

/*
 * Theory of operation
 *
 * One thread, one poll() over the terminal, the Netflow socket and a
 * self-pipe that the signal handlers write to.  Nothing blocks on the
 * server: requests are written (a 46-byte write on an idle socket) and
 * their responses are matched later by id against a small in-flight list.
 *
 * Key handling is a two-state machine:
 *   KEYS    one key = one action (h p m M o O c b u s f g q);
 *   PROMPT  after c, b or u: characters edit a line; Enter submits it (an
 *           empty line cancels), Escape cancels; then back to KEYS.
 *
 * The screen is redrawn whole (status line, table, message log, prompt) into
 * one buffer written with a single write(), at most REDRAW_HZ times a second:
 * observations only mark it dirty, the poll timeout brings the next frame.
 *
 * The terminal: ICANON and ECHO off, ISIG kept (Ctrl-C is SIGINT, handled
 * like q), VSUSP disabled (a stopped console would leave a raw terminal),
 * alternate screen, hidden cursor.  Every exit path goes through
 * tty_restore(), which is also registered with atexit(); SIGINT, SIGTERM and
 * SIGHUP end the loop through the self-pipe and so take the same path.
 */

#define REDRAW_HZ 10
#define LOG_MAX 64
#define LOG_LINE 200
#define INFLIGHT_MAX 64
#define INPUT_MAX 64
#define GUARD_TTY_ANSWER (256 * 1024) /* mw-guard's actions answer, at most */

enum tty_mode { TTY_KEYS, TTY_PROMPT };
enum tty_prompt { PROMPT_CLOSE, PROMPT_BLOCK, PROMPT_UNBLOCK, PROMPT_FILTER };
enum tty_monitor { MON_UNKNOWN, MON_ON, MON_OFF };

struct tty_inflight {
	uint32_t id;
	uint16_t name;
	char what[96]; /* "close 123", "block 10.1.2.3" */
};

struct tty {
	const struct mwcon_opts *o;
	struct mw_nf_client *c;
	struct mwcon_table *table;
	char log[LOG_MAX][LOG_LINE];
	size_t log_head, log_len;
	enum tty_mode mode;
	enum tty_prompt prompt;
	char input[INPUT_MAX];
	size_t input_len;
	char filter[INPUT_MAX]; /* the table's filter set with f ("": none) */
	struct tty_inflight inflight[INFLIGHT_MAX];
	enum tty_monitor monitor;
	bool muted;
	bool dirty;
	bool quit;
	int status;
	double last_draw;
	unsigned rows, cols;
	char *frame;
	size_t frame_size;
};

static struct termios tty_saved;
static bool tty_raw;
static int tty_sigpipe[2] = { -1, -1 };
static volatile sig_atomic_t tty_signal;

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void write_all(int fd, const char *p, size_t n)
{
	while (n) {
		ssize_t w = write(fd, p, n);

		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return;
		p += w;
		n -= (size_t)w;
	}
}

/* Leave the alternate screen, show the cursor, put the saved termios back. */
static void tty_restore(void)
{
	static const char leave[] = "\x1b[?25h\x1b[?1049l";

	if (!tty_raw)
		return;
	write_all(STDOUT_FILENO, leave, sizeof(leave) - 1);
	tcsetattr(STDIN_FILENO, TCSAFLUSH, &tty_saved);
	tty_raw = false;
}

static void tty_on_signal(int sig)
{
	int saved = errno;
	char b = 1;

	tty_signal = sig;
	if (tty_sigpipe[1] >= 0 && write(tty_sigpipe[1], &b, 1) < 0) {
		/* the pipe is full: a wake-up is already pending */
	}
	errno = saved;
}

static int tty_enter(void)
{
	static const char enter[] = "\x1b[?1049h\x1b[?25l\x1b[H\x1b[2J";
	struct termios raw;

	if (tcgetattr(STDIN_FILENO, &tty_saved))
		return -errno; /* not a terminal (-i with a pipe): keys still work */
	raw = tty_saved;
	raw.c_lflag &= ~(tcflag_t)(ICANON | ECHO);
	raw.c_cc[VMIN] = 1;
	raw.c_cc[VTIME] = 0;
	raw.c_cc[VSUSP] = _POSIX_VDISABLE;
	if (tcsetattr(STDIN_FILENO, TCSAFLUSH, &raw))
		return -errno;
	tty_raw = true;
	atexit(tty_restore);
	write_all(STDOUT_FILENO, enter, sizeof(enter) - 1);
	return 0;
}

static int tty_signals(void)
{
	struct sigaction sa;
	int i;

	if (pipe2(tty_sigpipe, O_CLOEXEC | O_NONBLOCK))
		return -errno;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = tty_on_signal;
	sigemptyset(&sa.sa_mask);
	for (i = 0; i < 4; i++) {
		static const int sigs[] = { SIGINT, SIGTERM, SIGHUP, SIGWINCH };

		if (sigaction(sigs[i], &sa, NULL))
			return -errno;
	}
	signal(SIGPIPE, SIG_IGN);
	return 0;
}

/* Terminal size, and a frame buffer big enough for it. */
static void tty_size(struct tty *t)
{
	struct winsize ws;
	size_t need;
	char *frame;

	t->rows = 24;
	t->cols = 80;
	if (!ioctl(STDOUT_FILENO, TIOCGWINSZ, &ws) && ws.ws_row && ws.ws_col) {
		t->rows = ws.ws_row;
		t->cols = ws.ws_col;
	}
	if (t->rows < 8)
		t->rows = 8;
	if (t->cols < 20)
		t->cols = 20;
	need = (size_t)(t->rows + 2) * (t->cols + 16) + 4096;
	if (need > t->frame_size && (frame = realloc(t->frame, need))) {
		t->frame = frame;
		t->frame_size = need;
	}
	t->dirty = true;
}

static void __attribute__((format(printf, 2, 3))) tty_log(struct tty *t, const char *fmt, ...)
{
	char *line = t->log[(t->log_head + t->log_len) % LOG_MAX];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(line, LOG_LINE, fmt, ap);
	va_end(ap);
	if (t->log_len == LOG_MAX)
		t->log_head = (t->log_head + 1) % LOG_MAX;
	else
		t->log_len++;
	t->dirty = true;
}

static void tty_help(struct tty *t)
{
	tty_log(t, "keys: h help   p list open sockets   m/M unmute/mute observations");
	tty_log(t, "      o/O monitor on/off   c close a socket (asks its id)");
	tty_log(t, "      b/u block/unblock an address (asks it)   q quit (also Ctrl-C)");
	tty_log(t, "      s next table order (id, rate, age, port, peer, state)");
	tty_log(t, "      f filter the table: address text or a state (empty: all rows)");
	tty_log(t, "      g mw-guard's last %d actions (its control socket, --guard)",
		MWCON_GUARD_SHOWN);
}

static void tty_list(struct tty *t)
{
	size_t i;

	if (t->monitor == MON_OFF)
		tty_log(t, "monitoring is off: the table only knows sockets seen while on (o)");
	tty_log(t, "%zu open socket%s", t->table->n, t->table->n == 1 ? "" : "s");
	for (i = 0; i < t->table->n; i++) {
		const struct mwcon_sock *s = &t->table->socks[i];

		tty_log(t, "socket 0x%" PRIx64 "/%" PRIu64 " %s --> remote %s", s->id, s->id,
			s->local, s->peer);
	}
}

/* g: mw-guard's most recent actions, from its control socket (a short, bounded wait). */
static void tty_guard(struct tty *t)
{
	char path[MW_PATH_MAX], err[MW_PATH_MAX + 128], line[LOG_LINE], *buf, *rec, *save = NULL;
	char *recs[MWCON_GUARD_SHOWN];
	size_t n = 0, i;
	int total = 0;

	buf = malloc(GUARD_TTY_ANSWER);
	if (!buf) {
		tty_log(t, "guard: out of memory");
		return;
	}
	mwcon_guard_socket(t->o, path, sizeof(path));
	if (mwcon_guard_actions(path, t->o->timeout_ms < 2000 ? t->o->timeout_ms : 2000, buf,
				GUARD_TTY_ANSWER, err, sizeof(err))) {
		tty_log(t, "guard: %s", err);
		free(buf);
		return;
	}
	/* Keep the last MWCON_GUARD_SHOWN records, in order. */
	for (rec = strtok_r(buf, "\n", &save); rec; rec = strtok_r(NULL, "\n", &save)) {
		recs[n++ % MWCON_GUARD_SHOWN] = rec;
		total++;
	}
	tty_log(t, "guard: %d action%s kept%s", total, total == 1 ? "" : "s",
		total > MWCON_GUARD_SHOWN ? ", the most recent:" : "");
	for (i = n > MWCON_GUARD_SHOWN ? n - MWCON_GUARD_SHOWN : 0; i < n; i++)
		if (!mwcon_guard_line(recs[i % MWCON_GUARD_SHOWN], line, sizeof(line)))
			tty_log(t, "guard %s", line);
	free(buf);
}

/* Send a request without waiting; its response is reported when it arrives. */
static void tty_request(struct tty *t, struct mw_nf_request *req, const char *what)
{
	struct tty_inflight *slot = NULL;
	size_t i;
	int ret;

	for (i = 0; i < INFLIGHT_MAX && !slot; i++)
		if (!t->inflight[i].id)
			slot = &t->inflight[i];
	if (!slot) {
		tty_log(t, "%s: %d requests are still unanswered; try again", what, INFLIGHT_MAX);
		return;
	}
	req->id = 0;
	ret = mw_nf_client_send(t->c, req, 1000);
	if (ret < 0) {
		tty_log(t, "%s: cannot send: %s", what, strerror(-ret));
		return;
	}
	slot->id = req->id;
	slot->name = req->name;
	snprintf(slot->what, sizeof(slot->what), "%s", what);
}

static void tty_monitor_request(struct tty *t, bool on)
{
	struct mw_nf_request req = { .name = on ? MW_NF_ATTR_MONITOR_ON : MW_NF_ATTR_MONITOR_OFF };

	tty_request(t, &req, on ? "monitor on" : "monitor off");
}

/* s: the next table order. */
static void tty_next_sort(struct tty *t)
{
	t->table->sort = (enum mwcon_sort)((t->table->sort + 1) % MWCON_SORT_COUNT);
	tty_log(t, "table order: %s", mwcon_sort_name(t->table->sort));
	t->dirty = true;
}

/* Enter on the filter prompt: the rows to show (an empty line shows all). */
static void tty_set_filter(struct tty *t)
{
	snprintf(t->filter, sizeof(t->filter), "%s", t->input);
	t->table->filter = t->filter[0] ? t->filter : NULL;
	if (t->filter[0])
		tty_log(t, "filter: rows whose address contains '%s' or whose state is '%s'",
			t->filter, t->filter);
	else
		tty_log(t, "filter: off, every row");
}

/* Enter on a prompt line: the close, block, unblock or filter it asked for. */
static void tty_submit(struct tty *t)
{
	struct mw_nf_request req = { 0 };
	char what[96];
	uint64_t id;

	t->mode = TTY_KEYS;
	t->dirty = true;
	if (t->prompt == PROMPT_FILTER) {
		tty_set_filter(t);
		return;
	}
	if (!t->input_len) {
		tty_log(t, "cancelled");
		return;
	}
	if (t->prompt == PROMPT_CLOSE) {
		if (mwcon_parse_u64(t->input, &id)) {
			tty_log(t, "close: '%s' is not a socket id (decimal or 0x hex)", t->input);
			return;
		}
		req.flags = MW_NF_FLAG_WRITE | MW_NF_FLAG_BY_SOCK;
		req.name = MW_NF_ATTR_IS_OPEN;
		req.sockfd = id;
		snprintf(what, sizeof(what), "close %" PRIu64, id);
	} else {
		bool block = t->prompt == PROMPT_BLOCK;

		if (mw_nf_request_set_block_text(&req, t->input)) {
			tty_log(t, "%s: '%s' is not an IPv4 address (dotted quad)",
				block ? "block" : "unblock", t->input);
			return;
		}
		req.flags = MW_NF_FLAG_WRITE;
		req.name = MW_NF_ATTR_ADDR_BLOCK;
		mw_nf_val_set(&req, 0, block);
		snprintf(what, sizeof(what), "%s %s", block ? "block" : "unblock", t->input);
	}
	tty_request(t, &req, what);
}

static void tty_start_prompt(struct tty *t, enum tty_prompt p)
{
	t->mode = TTY_PROMPT;
	t->prompt = p;
	t->input_len = 0;
	t->input[0] = '\0';
	t->dirty = true;
}

static void tty_key(struct tty *t, unsigned char k)
{
	if (t->mode == TTY_PROMPT) {
		if (k == '\r' || k == '\n') {
			tty_submit(t);
		} else if (k == 0x1b) {
			t->mode = TTY_KEYS;
			tty_log(t, "cancelled");
		} else if (k == 0x7f || k == 0x08) {
			if (t->input_len)
				t->input[--t->input_len] = '\0';
		} else if (k >= 0x20 && k < 0x7f && t->input_len + 1 < INPUT_MAX) {
			t->input[t->input_len++] = (char)k;
			t->input[t->input_len] = '\0';
		}
		t->dirty = true;
		return;
	}
	switch (k) {
	case 'h':
	case '?':
		tty_help(t);
		break;
	case 'p':
		tty_list(t);
		break;
	case 'm':
		t->muted = false;
		tty_log(t, "unmuted: observations are printed here");
		break;
	case 'M':
		t->muted = true;
		tty_log(t, "muted: observations only update the table");
		break;
	case 'o':
		tty_monitor_request(t, true);
		break;
	case 'O':
		tty_monitor_request(t, false);
		break;
	case 'c':
		tty_start_prompt(t, PROMPT_CLOSE);
		break;
	case 'b':
		tty_start_prompt(t, PROMPT_BLOCK);
		break;
	case 'u':
		tty_start_prompt(t, PROMPT_UNBLOCK);
		break;
	case 's':
		tty_next_sort(t);
		break;
	case 'f':
		tty_start_prompt(t, PROMPT_FILTER);
		break;
	case 'g':
		tty_guard(t);
		break;
	case 'q':
		t->quit = true;
		break;
	case '\r':
	case '\n':
	case ' ':
		break;
	default:
		if (k >= 0x20 && k < 0x7f)
			tty_log(t, "unknown key '%c' (h for help)", k);
		break;
	}
}

static void tty_response(struct tty *t, const struct mw_nf_response *r)
{
	struct tty_inflight *f = NULL;
	size_t i;

	for (i = 0; i < INFLIGHT_MAX && !f; i++)
		if (t->inflight[i].id && t->inflight[i].id == r->id)
			f = &t->inflight[i];
	if (!f) {
		tty_log(t, "response to unknown request %" PRIu32 ": status %" PRId32, r->id,
			r->status);
		return;
	}
	if (r->status < 0) {
		tty_log(t, "%s: %s", f->what, strerror(-r->status));
	} else {
		tty_log(t, "%s: ok", f->what);
		if (f->name == MW_NF_ATTR_MONITOR_ON) {
			t->monitor = MON_ON;
		} else if (f->name == MW_NF_ATTR_MONITOR_OFF) {
			t->monitor = MON_OFF;
			mwcon_table_clear(t->table); /* as the original: stale rows would lie */
		}
	}
	f->id = 0;
}

/* Drain what the server sent. Return: 0, or -errno when the connection is gone. */
static int tty_netflow(struct tty *t)
{
	struct mw_nf_msg m;
	char line[LOG_LINE];
	double now = now_s();
	int ret, guard;

	/* Bounded per wake-up so keys stay responsive under a flood. */
	for (guard = 0; guard < 64; guard++) {
		int got = mw_nf_client_read(t->c);

		if (got < 0 && got != -ENOBUFS)
			return got;
		while ((ret = mw_nf_client_next(t->c, &m)) == 1) {
			if (m.sig == MW_NF_SIG_RESPONSE) {
				tty_response(t, &m.u.response);
				continue;
			}
			if (t->monitor == MON_OFF)
				continue; /* sent before the server saw our MonitorOff */
			if (t->monitor == MON_UNKNOWN)
				t->monitor = MON_ON; /* this server starts consumers monitored */
			if (mwcon_table_apply(t->table, &m.u.info, now))
				t->dirty = true;
			if (!t->muted) {
				mwcon_info_line(&m.u.info, line, sizeof(line));
				tty_log(t, "%s", line);
			}
		}
		if (ret < 0)
			return ret;
		if (got == 0)
			break;
	}
	return 0;
}

static void frame_put(struct tty *t, size_t *used, const char *s, size_t n)
{
	if (*used + n + 1 > t->frame_size)
		n = t->frame_size - *used - 1;
	memcpy(t->frame + *used, s, n);
	*used += n;
	t->frame[*used] = '\0';
}

/* One line of the frame: cut to the width, clear to end of line, newline. */
static void frame_line(struct tty *t, size_t *used, const char *s, size_t n)
{
	if (n > t->cols)
		n = t->cols;
	frame_put(t, used, s, n);
	frame_put(t, used, "\x1b[K\r\n", 5);
}

static void tty_draw(struct tty *t)
{
	static const char *const mon[] = { "on (server default)", "on", "off" };
	static const char *const prompts[] = { "Socket id to close: ", "Address to block: ",
					       "Address to unblock: ",
					       "Filter (address text or new/bound/listen/estab): " };
	size_t used = 0, avail, log_lines, table_lines, i, shown;
	char line[LOG_LINE + 64], *p, *nl;
	char *table = NULL;
	int n;

	frame_put(t, &used, "\x1b[H", 3);
	n = snprintf(line, sizeof(line),
		     "mw-console  monitor %s  %s  %zu open socket%s  (h: help, q: quit)",
		     mon[t->monitor], t->muted ? "muted" : "unmuted", t->table->n,
		     t->table->n == 1 ? "" : "s");
	frame_line(t, &used, line, (size_t)n < sizeof(line) ? (size_t)n : sizeof(line) - 1);

	avail = t->rows - 3; /* status, separator, prompt */
	log_lines = avail / 2 > 12 ? 12 : avail / 2;
	table_lines = avail - log_lines;
	table = malloc(table_lines * (t->cols + 2) + 256);
	shown = 0;
	if (table) {
		mwcon_table_render(t->table, now_s(), table_lines - 2, t->cols, table,
				   table_lines * (t->cols + 2) + 256);
		for (p = table; *p && shown < table_lines; p = nl + 1, shown++) {
			nl = strchr(p, '\n');
			if (!nl)
				break;
			frame_line(t, &used, p, (size_t)(nl - p));
		}
	}
	free(table);
	for (; shown < table_lines; shown++)
		frame_line(t, &used, "", 0);

	memset(line, '-', t->cols < sizeof(line) ? t->cols : sizeof(line) - 1);
	frame_line(t, &used, line, t->cols < sizeof(line) ? t->cols : sizeof(line) - 1);
	i = t->log_len > log_lines ? t->log_len - log_lines : 0;
	for (shown = 0; shown < log_lines; shown++, i++) {
		const char *l = i < t->log_len ? t->log[(t->log_head + i) % LOG_MAX] : "";

		frame_line(t, &used, l, strlen(l));
	}
	if (t->mode == TTY_PROMPT)
		n = snprintf(line, sizeof(line), "%s%s", prompts[t->prompt], t->input);
	else
		n = snprintf(line, sizeof(line), "> ");
	if (n > (int)t->cols)
		n = (int)t->cols;
	frame_put(t, &used, line, (size_t)n);
	frame_put(t, &used, "\x1b[K\x1b[J", 6);
	write_all(STDOUT_FILENO, t->frame, used);
	t->dirty = false;
	t->last_draw = now_s();
}

static int tty_loop(struct tty *t)
{
	struct pollfd p[3];
	unsigned char keys[64];
	double wait;
	ssize_t n;
	int ret, i, timeout;

	while (!t->quit) {
		if (t->dirty) {
			wait = t->last_draw + 1.0 / REDRAW_HZ - now_s();
			if (wait <= 0) {
				tty_draw(t);
				timeout = 1000; /* ages keep moving */
			} else {
				timeout = (int)(wait * 1000) + 1;
			}
		} else {
			timeout = 1000;
		}
		p[0] = (struct pollfd){ .fd = STDIN_FILENO, .events = POLLIN };
		p[1] = (struct pollfd){ .fd = mw_nf_client_fd(t->c), .events = POLLIN };
		p[2] = (struct pollfd){ .fd = tty_sigpipe[0], .events = POLLIN };
		ret = poll(p, 3, timeout);
		if (ret < 0 && errno != EINTR)
			return -errno;
		if (ret <= 0) {
			t->dirty = true; /* refresh the age column */
			continue;
		}
		if (p[2].revents) {
			while (read(tty_sigpipe[0], keys, sizeof(keys)) > 0)
				;
			if (tty_signal == SIGWINCH) {
				tty_signal = 0;
				tty_size(t);
			} else if (tty_signal) {
				t->quit = true;
				break;
			}
		}
		if (p[1].revents) {
			ret = tty_netflow(t);
			if (ret == -ECONNRESET) {
				t->status = 0;
				return -ECONNRESET;
			}
			if (ret < 0)
				return ret;
		}
		if (p[0].revents) {
			n = read(STDIN_FILENO, keys, sizeof(keys));
			if (n == 0) {
				t->quit = true; /* the keyboard went away */
				break;
			}
			for (i = 0; i < n && !t->quit; i++)
				tty_key(t, keys[i]);
		}
	}
	return 0;
}

/**
 * mwcon_run_tty() - run the interactive console until q, a signal or the server's end
 * @o: options
 * @c: connected client
 * Return: the exit status
 */
int mwcon_run_tty(const struct mwcon_opts *o, struct mw_nf_client *c)
{
	struct tty *t = calloc(1, sizeof(*t));
	int ret, status = 1;

	if (!t || !(t->table = calloc(1, sizeof(*t->table)))) {
		fprintf(stderr, "%s: out of memory\n", MWCON_NAME);
		goto out;
	}
	t->o = o;
	t->c = c;
	t->muted = true;
	t->table->sort = (enum mwcon_sort)o->sort;
	t->table->filter = o->filter;
	tty_size(t);
	if (!t->frame) {
		fprintf(stderr, "%s: out of memory\n", MWCON_NAME);
		goto out;
	}
	ret = tty_signals();
	if (ret < 0) {
		fprintf(stderr, "%s: signals: %s\n", MWCON_NAME, strerror(-ret));
		goto out;
	}
	tty_enter();
	tty_log(t, "connected: the server streams observations from the start (O stops them); h lists the keys");
	ret = tty_loop(t);
	tty_restore();
	if (ret == -ECONNRESET) {
		fprintf(stderr, "%s: the server closed the connection\n", MWCON_NAME);
		status = 0;
	} else if (ret < 0) {
		fprintf(stderr, "%s: %s\n", MWCON_NAME, strerror(-ret));
	} else {
		status = 0;
	}
out:
	tty_restore();
	if (t) {
		free(t->frame);
		free(t->table);
	}
	free(t);
	return status;
}
