/* SPDX-License-Identifier: MIT */
/* mw-top.c - a live top-N of mw-flowd's traffic for operators, through libmwmapi */
#include <arpa/inet.h>
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>

#include "mwmapi.h"

/*
 * mw-top [--batch N] [--key src|dst|port] [--filter EXPR] SCOPE
 *
 * One flow over SCOPE (BPF_FILTER EXPR, PKT_COUNTER, BYTE_COUNTER, and TOP 10
 * by source address, destination address and destination port).  Every second
 * the screen shows the packet and byte rates and the selected top list, either
 * since start or as rates over the last second (a row's bytes minus its bytes
 * one refresh ago).  Keys: s, d, p choose the list; w switches the window; q
 * quits.  With --batch N (or when stdout is not a terminal) it prints
 * "connected" once the flow is connected, then N plain snapshots (one a second,
 * the last on SIGINT/SIGTERM), and exits, for scripts and tests.
 */

#define ROWS 10

enum top_key {
	KEY_SRC,
	KEY_DST,
	KEY_PORT,
	KEY_N
};

static const char *const key_names[KEY_N] = { "src", "dst", "port" };

struct top_state {
	int fd;
	int fid_pkts, fid_bytes, fid_top[KEY_N];
	enum top_key key;
	int window_rate; /* 0: since start, 1: bytes/s over the last refresh */
	struct mapi_top prev[KEY_N];
	uint64_t prev_pkts, prev_bytes;
};

static volatile sig_atomic_t stop;

static void on_signal(int sig)
{
	(void)sig;
	stop = 1;
}

static void key_text(enum top_key k, const uint8_t key[16], char *buf, size_t len)
{
	static const uint8_t mapped[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff };
	uint16_t port;

	if (k == KEY_PORT) {
		memcpy(&port, key, sizeof(port));
		snprintf(buf, len, "%u", port);
	} else if (!memcmp(key, mapped, sizeof(mapped))) {
		inet_ntop(AF_INET, key + 12, buf, (socklen_t)len);
	} else {
		inet_ntop(AF_INET6, key, buf, (socklen_t)len);
	}
}

/* A row's bytes one refresh ago (0 if it was not listed). */
static uint64_t prev_bytes(const struct mapi_top *prev, const uint8_t key[16])
{
	uint32_t i;

	for (i = 0; i < prev->n; i++)
		if (!memcmp(prev->rows[i].key, key, 16))
			return prev->rows[i].bytes;
	return 0;
}

static int read_u64(int fd, int fid, uint64_t *v)
{
	struct mapi_result r;

	if (mapi_read_results(fd, fid, &r))
		return -1;
	memcpy(v, r.res, sizeof(*v));
	return 0;
}

static int show(struct top_state *s, int tty)
{
	struct mapi_top cur[KEY_N];
	struct mapi_result r;
	uint64_t pkts, bytes;
	uint32_t i;
	int k;

	if (read_u64(s->fd, s->fid_pkts, &pkts) || read_u64(s->fd, s->fid_bytes, &bytes))
		return -1;
	for (k = 0; k < KEY_N; k++) {
		if (mapi_read_results(s->fd, s->fid_top[k], &r))
			return -1;
		memcpy(&cur[k], r.res, sizeof(cur[k]));
	}
	if (tty)
		printf("\033[H\033[2J");
	printf("mw-top  %llu pkts/s  %llu bytes/s  (total %llu pkts, %llu bytes)\n",
	       (unsigned long long)(pkts - s->prev_pkts),
	       (unsigned long long)(bytes - s->prev_bytes), (unsigned long long)pkts,
	       (unsigned long long)bytes);
	printf("top %s by %s%s\n", key_names[s->key], s->window_rate ? "bytes/s" : "bytes",
	       tty ? "   [s]rc [d]st [p]ort [w]indow [q]uit" : "");
	for (i = 0; i < cur[s->key].n && i < ROWS; i++) {
		const struct mapi_top_row *row = &cur[s->key].rows[i];
		uint64_t v = row->bytes;
		char text[64];

		if (s->window_rate)
			v -= prev_bytes(&s->prev[s->key], row->key);
		key_text(s->key, row->key, text, sizeof(text));
		printf("%2u %-40s %14llu  (error <= %llu)\n", i + 1, text, (unsigned long long)v,
		       (unsigned long long)row->error);
	}
	printf("--\n");
	fflush(stdout);
	memcpy(s->prev, cur, sizeof(cur));
	s->prev_pkts = pkts;
	s->prev_bytes = bytes;
	return 0;
}

/* Wait up to a second for a key; Return: the key, 0 on timeout. */
static int wait_key(int tty)
{
	struct pollfd p = { .fd = STDIN_FILENO, .events = POLLIN };
	char c;

	if (!tty) {
		sleep(1);
		return 0;
	}
	if (poll(&p, 1, 1000) == 1 && read(STDIN_FILENO, &c, 1) == 1)
		return c;
	return 0;
}

static int open_flow(struct top_state *s, const char *scope, const char *filter)
{
	static const int fields[KEY_N] = { MAPI_SRC_IP, MAPI_DST_IP, MAPI_DST_PORT };
	int k;

	s->fd = mapi_create_flow(scope);
	if (s->fd < 0)
		return -1;
	if (filter && mapi_apply_function(s->fd, "BPF_FILTER", filter) < 0)
		return -1;
	s->fid_pkts = mapi_apply_function(s->fd, "PKT_COUNTER");
	s->fid_bytes = mapi_apply_function(s->fd, "BYTE_COUNTER");
	for (k = 0; k < KEY_N; k++)
		s->fid_top[k] = mapi_apply_function(s->fd, "TOP", fields[k], ROWS);
	if (s->fid_pkts < 0 || s->fid_bytes < 0 || s->fid_top[KEY_N - 1] < 0)
		return -1;
	return mapi_connect(s->fd);
}

int main(int argc, char **argv)
{
	struct sigaction sa = { .sa_handler = on_signal };
	struct top_state s = { .fd = -1 };
	struct termios saved, raw;
	const char *filter = NULL;
	int batch = -1, tty, raw_set = 0, i, n, k;

	for (i = 1; i + 1 < argc && !strncmp(argv[i], "--", 2); i += 2) {
		if (!strcmp(argv[i], "--batch")) {
			batch = (int)strtol(argv[i + 1], NULL, 10);
		} else if (!strcmp(argv[i], "--filter")) {
			filter = argv[i + 1];
		} else if (!strcmp(argv[i], "--key")) {
			for (k = 0; k < KEY_N && strcmp(key_names[k], argv[i + 1]); k++)
				;
			if (k == KEY_N)
				break;
			s.key = (enum top_key)k;
		} else {
			break;
		}
	}
	if (i != argc - 1) {
		fprintf(stderr, "usage: mw-top [--batch N] [--key src|dst|port] [--filter EXPR] "
				"SCOPE\n");
		return 2;
	}
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	if (open_flow(&s, argv[i], filter)) {
		fprintf(stderr, "mw-top: %s (%s)\n", strerror(errno), mapi_last_error());
		return 1;
	}
	tty = batch < 0 && isatty(STDIN_FILENO) && isatty(STDOUT_FILENO);
	if (batch < 0 && !tty)
		batch = 1;
	if (!tty) {
		printf("connected\n");
		fflush(stdout);
	}
	if (tty && !tcgetattr(STDIN_FILENO, &saved)) {
		raw = saved;
		raw.c_lflag &= ~(tcflag_t)(ICANON | ECHO);
		raw_set = !tcsetattr(STDIN_FILENO, TCSANOW, &raw);
	}
	for (n = 0; !stop && (batch < 0 || n < batch); n++) {
		int c = wait_key(tty);

		if (c == 'q')
			break;
		if (c == 's' || c == 'd' || c == 'p')
			s.key = c == 's' ? KEY_SRC : c == 'd' ? KEY_DST : KEY_PORT;
		if (c == 'w')
			s.window_rate = !s.window_rate;
		if (show(&s, tty)) {
			fprintf(stderr, "mw-top: %s (%s)\n", strerror(errno), mapi_last_error());
			break;
		}
	}
	if (raw_set)
		tcsetattr(STDIN_FILENO, TCSANOW, &saved);
	mapi_close_flow(s.fd);
	return 0;
}
