/* SPDX-License-Identifier: MIT */
/* console.h - mw-console internals: command line, attribute names, socket table, output formats */
#ifndef MWCON_CONSOLE_H
#define MWCON_CONSOLE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/addr.h"
#include "netflow/codec.h"

/*
 * mw-console is split so that everything a test can check without a server
 * or a terminal is pure: con_args.c (command line, names, values), con_table.c
 * (the open-socket table, its rendering, the JSON line of an observation).
 * con_cmd.c runs the one-shot commands and --json, con_tty.c the interactive
 * console; mw-console.c ties them together.
 */

#define MWCON_NAME "mw-console"
#define MWCON_DEFAULT_ROOT "/run/mwcomms/store"
#define MWCON_TIMEOUT_MS 5000 /* connect and each request */

enum mwcon_cmd {
	MWCON_CMD_INTERACTIVE = 0,
	MWCON_CMD_JSON,
	MWCON_CMD_CLOSE,
	MWCON_CMD_BLOCK,
	MWCON_CMD_UNBLOCK,
	MWCON_CMD_GET,
	MWCON_CMD_SET,
	MWCON_CMD_CONGCTL,
	MWCON_CMD_GUARD, /* mw-guard's actions: no Netflow server needed */
};

/* What the command line asked for, fully validated. */
struct mwcon_opts {
	enum mwcon_cmd cmd;
	bool help, version;
	bool interactive_forced; /* -i: interactive even if stdout is not a tty */
	const char *server;      /* --server ip:port, or NULL: keystore */
	const char *ks_root;     /* -k/--keystore-root, or NULL: config / default */
	const char *config;      /* -c/--config, or NULL: $MW_CONFIG / built-in path */
	const char *key;         /* --key, or NULL: MW_NF_KEY_PVM */
	const char *token_file;  /* --token-file: for a TCP server, or NULL */
	int sort;                /* --sort: enum mwcon_sort */
	const char *filter;      /* --filter TEXT: rows whose local or peer contains it, or state */
	const char *guard;       /* --guard SOCKET: mw-guard's control socket, or NULL: config */
	uint64_t count;          /* --json --count N; 0 = unlimited */
	int timeout_ms;          /* --timeout-ms */
	uint64_t sock;           /* close/get/set ID */
	uint16_t attr;           /* get/set NAME */
	uint64_t val[2];         /* set VALUE, congctl code */
	bool val_text;           /* congctl: val holds a NUL-padded algorithm name */
	char text[16];           /* that name */
	const char *addr;        /* block/unblock ADDR (dotted quad) */
	const char *cmd_word;    /* "close", "get"... for error lines */
	const char *cmd_arg;     /* first argument of the command, for error lines */
};

/**
 * mwcon_parse_args() - parse the command line
 * @err: one line ("unknown option '--x' (try --help)") on failure
 * Return: 0, or -EINVAL with @err filled
 */
int mwcon_parse_args(struct mwcon_opts *o, int argc, char **argv, char *err, size_t errlen);

/* Print --help to stdout. */
void mwcon_usage(void);

/**
 * mwcon_parse_u64() - a decimal or 0x-hex unsigned 64-bit number, nothing else
 * Return: 0 or -EINVAL (empty, sign, junk, overflow)
 */
int mwcon_parse_u64(const char *s, uint64_t *out);

/**
 * mwcon_attr_parse() - an attribute name for get/set
 * Accepts the wire names of docs/netflow.md in any case, with or without '_'
 * or '-' ("SndBuf", "sndbuf", "snd_buf"), short aliases ("congctl", "delack",
 * "owner", "open") and a number ("0x0109").
 * Return: the attribute (never MonitorOn/Off or AddrBlock: they have their own
 * commands), or -EINVAL
 */
int mwcon_attr_parse(const char *name);

/* True for attributes whose val is {sec, usec} (SndTimeo, RcvTimeo). */
bool mwcon_attr_is_timeval(uint16_t attr);

/**
 * mwcon_value_parse() - a value for "set": a number, on/off/true/false/yes/no,
 * or for a timeval attribute seconds with up to 6 decimals ("1.5")
 * Return: 0 or -EINVAL
 */
int mwcon_value_parse(uint16_t attr, const char *s, uint64_t val[2]);

/**
 * mwcon_congctl_parse() - "reno", "newreno", "cubic" (the original's codes
 * 0x90..0x92) or any other Linux algorithm name (sent as NUL-padded text in
 * val), or a number
 * Return: 0 or -EINVAL (empty, longer than 15 bytes, not [a-z0-9_-])
 */
int mwcon_congctl_parse(struct mwcon_opts *o, const char *s);

/* Format a response value for "get": "1", or "1.500000" for a timeval. */
void mwcon_value_format(uint16_t attr, uint64_t v0, uint64_t v1, char *buf, size_t len);

/* ---- con_table.c ---------------------------------------------------------------------- */

#define MWCON_TABLE_MAX 4096 /* open sockets tracked; more are counted, not shown */
#define MWCON_RATE_WINDOW 1.0 /* seconds a socket's rate is measured over, at least */

/* A socket's state as its observations show it (the STATE column). */
enum mwcon_state {
	MWCON_ST_NEW = 0, /* created, nothing else seen */
	MWCON_ST_BOUND,	  /* bound (a listener shows as one until its first accept) */
	MWCON_ST_LISTEN,  /* it accepted a connection */
	MWCON_ST_ESTAB,	  /* accepted or connected, or moving bytes */
};

/* "new", "bound", "listen", "estab"; "?" out of range. */
const char *mwcon_state_name(enum mwcon_state s);

struct mwcon_sock {
	uint64_t id;
	enum mwcon_state state;
	char local[MW_ADDR_STRLEN];
	char peer[MW_ADDR_STRLEN];
	uint64_t bytes_in, bytes_out;
	double span;    /* server clock: ts_curr - ts_session_start of the last observation */
	double seen;    /* local clock: when that observation arrived */
	uint16_t last_obs;
	double rate;       /* bytes/s (in + out), measured over at least MWCON_RATE_WINDOW */
	uint64_t win_bytes; /* in + out at the start of the current window */
	double win_start;   /* local clock; 0: no window yet */
};

/* How mwcon_table_render() orders the rows (--sort). */
enum mwcon_sort {
	MWCON_SORT_ID = 0,
	MWCON_SORT_RATE, /* fastest first */
	MWCON_SORT_AGE,	 /* oldest first */
	MWCON_SORT_PORT, /* local port, then id */
	MWCON_SORT_PEER, /* peer text, then id */
	MWCON_SORT_STATE, /* listeners, connections, bound, new; then id */
	MWCON_SORT_COUNT
};

/* "id", "rate", "age", "port", "peer", "state": --sort's keys, by enum mwcon_sort. */
const char *mwcon_sort_name(enum mwcon_sort s);

struct mwcon_table {
	struct mwcon_sock socks[MWCON_TABLE_MAX];
	size_t n;
	enum mwcon_sort sort;	/* render order (kept by mwcon_table_clear) */
	const char *filter;	/* render only rows whose local or peer contains it, or whose
				 * state it names; NULL: all */
	uint32_t order[MWCON_TABLE_MAX]; /* render's scratch */
	uint64_t overflow;  /* observations of sockets that did not fit */
	uint64_t observed;  /* observations applied */
	uint64_t closed;    /* sockets removed on close */
};

/* Empty the table. */
void mwcon_table_clear(struct mwcon_table *t);

/**
 * mwcon_table_apply() - update the table with one observation
 * Every observation refreshes (or adds) its socket's row; close removes it;
 * accept also adds the new connection (id in extra).
 * @seen: local time the observation arrived, seconds (any clock; the same as
 * mwcon_table_render()'s @now): ages do not depend on the server's clock
 * Return: 1 if the table changed, 0 if not
 */
int mwcon_table_apply(struct mwcon_table *t, const struct mw_nf_info *in, double seen);

/* The row of @id, or NULL. */
const struct mwcon_sock *mwcon_table_find(const struct mwcon_table *t, uint64_t id);

/**
 * mwcon_table_render() - the table as text lines: t->filter applied, ordered by
 * t->sort (socket id by default)
 * @now: local time, seconds, the clock of mwcon_table_apply()'s @seen
 * @rows: at most this many sockets (then "... N more")
 * @width: lines are cut to this many columns (0: no limit)
 * Return: bytes written (always NUL-terminated; cut if @len is too small)
 */
size_t mwcon_table_render(struct mwcon_table *t, double now, size_t rows, size_t width,
			  char *buf, size_t len);

/**
 * mwcon_json_info() - one observation as a JSON object on one line, no newline
 * Fields: obs, sock (decimal string: ids use 56 bits, more than a double holds),
 * extra (string), local, peer ("ip:port"), bytes_in, bytes_out, ts, start
 * (seconds with 9 decimals).
 * Return: length written, or -ENOSPC if @len is too small
 */
int mwcon_json_info(const struct mw_nf_info *in, char *buf, size_t len);

/* "ip:port" of an endpoint ("-" when unset). */
void mwcon_endpoint_format(const struct mw_nf_endpoint *e, char *buf, size_t len);

/* One observation as a human-readable line (the m/unmute output). */
void mwcon_info_line(const struct mw_nf_info *in, char *buf, size_t len);

/* ---- con_guard.c ---------------------------------------------------------------------- */

#define MWCON_GUARD_SHOWN 10 /* actions the g key shows, the most recent */

/**
 * mwcon_guard_line() - one "action n=N time=T kind=K target=X reason=R result=S
 * evidence=E" record of mw-guard's control socket as "#N K X reason=R result=S evidence=E"
 * Return: 0, or -EINVAL if @rec is not an action record
 */
int mwcon_guard_line(const char *rec, char *out, size_t len);

/**
 * mwcon_guard_actions() - ask mw-guard's control socket @path for its kept actions
 * @buf: the records, one a line, NUL-terminated (cut at @len)
 * Return: 0, or -errno with @err filled
 */
int mwcon_guard_actions(const char *path, int timeout_ms, char *buf, size_t len, char *err,
			size_t errlen);

/* "mw-console guard": print mw-guard's kept actions. Return: the exit status */
int mwcon_run_guard(const struct mwcon_opts *o);

/* --guard, else guard.control_socket of the configuration, else its default. */
void mwcon_guard_socket(const struct mwcon_opts *o, char *out, size_t len);

/* The configuration file the daemons would read: -c, $MW_CONFIG, the built-in path, or NULL. */
const char *mwcon_config_path(const struct mwcon_opts *o);

/* ---- con_cmd.c / con_tty.c ------------------------------------------------------------ */

struct mw_nf_client;

/**
 * mwcon_connect() - connect to --server, or to the address at the keystore key
 * Return: 0 or -errno with @err filled
 */
int mwcon_connect(const struct mwcon_opts *o, struct mw_nf_client **c, char *err,
		  size_t errlen);

/* Run a one-shot command or --json. Return: the exit status. */
int mwcon_run_command(const struct mwcon_opts *o, struct mw_nf_client *c);

/* Run the interactive console. Return: the exit status. */
int mwcon_run_tty(const struct mwcon_opts *o, struct mw_nf_client *c);

#endif /* MWCON_CONSOLE_H */
