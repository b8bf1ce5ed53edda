/* SPDX-License-Identifier: MIT */
/* server.h - Netflow server: consumers, bounded per-consumer queues, request dispatch */
#ifndef MW_NF_SERVER_H
#define MW_NF_SERVER_H

#include <ev.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "netflow/auth.h"
#include "netflow/codec.h"

struct mw_nf_server;

/*
 * Where a response goes: the consumer (by serial number, so a consumer that
 * left in the meantime is simply not found) and the request id to echo.
 */
struct mw_nf_reply {
	uint64_t consumer;
	uint32_t id;
};

struct mw_nf_server_ops {
	/*
	 * A request that passed mw_nf_request_check() and is not MonitorOn/Off
	 * (the server answers those itself).  Answer exactly once, now or later,
	 * with mw_nf_server_respond().
	 */
	void (*request)(void *ctx, struct mw_nf_reply to, const struct mw_nf_request *req);
	/* Some consumer wants observations (true) or none does any more (false). */
	void (*watching)(void *ctx, bool on);
	void *ctx;
};

struct mw_nf_server_config {
	const char *listen;    /* TCP "ip:port", "[ip6]:port"; port 0 = any; "" = no TCP */
	const char *allow;     /* "ip/prefix" a TCP consumer must connect from */
	const char *unix_path; /* AF_UNIX socket for local consumers; "" = none */
	long observe_gid;      /* AF_UNIX peers in this group observe; -1 = none */
	long control_gid;      /* ... in this group control; -1 = none (root always controls) */
	const struct mw_nf_tokens *tokens; /* TCP consumers' tokens; required with listen */
	int queue;			   /* observations held per consumer before dropping */
	int stall_ms;			   /* the window over which min_rate is measured */
	int min_rate;	  /* bytes/s a consumer with a backlog must read, or be cut */
	size_t mem_total; /* observation bytes queued across all consumers */
	int max_per_user; /* consumers per uid (AF_UNIX), per token or address (TCP) */
};

struct mw_nf_server_stats {
	uint64_t consumers;    /* connected now */
	uint64_t accepted;     /* consumers ever accepted */
	uint64_t refused;      /* connections refused: allow list, full table, per-user limit */
	uint64_t unauthorised; /* connections closed unanswered: no credential, bad token */
	uint64_t published;    /* observations offered */
	uint64_t drops;	       /* observations dropped on full queues (all consumers) */
	uint64_t requests;     /* requests received */
	uint64_t bad;	       /* malformed requests answered -EINVAL, or streams cut */
	uint64_t stalled;      /* consumers disconnected for reading slower than min_rate */
	uint64_t mem_drops;    /* observations dropped because mem_total was reached */
	uint64_t share_drops;  /* ... because their source held its share of a half-full queue */
	uint64_t denied;       /* requests refused -EPERM to observe consumers */
	size_t queued;	       /* observation and response bytes queued now, all consumers */
};

/* One consumer, as mw_nf_server_foreach() shows it. */
struct mw_nf_consumer_info {
	const char *peer; /* "uid 1000 pid 42" or "127.0.0.1:5000" */
	enum mw_nf_role role;
	bool monitor;
	size_t queued;	/* bytes waiting */
	uint64_t drops; /* observations dropped for it */
};

/* Call @fn for every connected consumer (authorised or waiting for its token). */
void mw_nf_server_foreach(const struct mw_nf_server *srv,
			  void (*fn)(void *ctx, const struct mw_nf_consumer_info *ci), void *ctx);

/* Consumers a server holds at once: more are refused (and counted). */
#define MW_NF_SERVER_MAX_CONSUMERS 256
/* Requests one consumer may have in flight; its socket is not read beyond. */
#define MW_NF_SERVER_MAX_INFLIGHT 256

/**
 * mw_nf_server_open() - listen and serve consumers on @loop
 * @cfg: copied; strings need not outlive the call
 * @ops: kept by reference
 * @err: one line on failure
 * Return: 0 or -errno (-EINVAL: bad listen or allow text)
 */
int mw_nf_server_open(struct mw_nf_server **srv, struct ev_loop *loop,
		      const struct mw_nf_server_config *cfg, const struct mw_nf_server_ops *ops,
		      char *err, size_t errlen);

/* Disconnect every consumer and stop listening; NULL is fine. */
void mw_nf_server_close(struct mw_nf_server *srv);

/* A TCP consumer that has not sent its Auth request by then is closed. */
#define MW_NF_SERVER_AUTH_MS 5000

/**
 * mw_nf_server_address() - the address consumers connect to
 * The TCP "ip:port" if the server listens on TCP (a wildcard address is given
 * as the loopback address of its family), else the AF_UNIX socket's path.
 * Return: @buf
 */
char *mw_nf_server_address(const struct mw_nf_server *srv, char *buf, size_t len);

/* The AF_UNIX socket's path, "" if none. */
const char *mw_nf_server_unix_path(const struct mw_nf_server *srv);

/* True while at least one consumer has monitoring on. */
bool mw_nf_server_watching(const struct mw_nf_server *srv);

/**
 * mw_nf_server_has_room() - would an observation published now reach anybody?
 * If every watching consumer's queue is full, the observation is counted as
 * offered and dropped for each of them, and false tells the caller it need not
 * build it (a stalled consumer then costs the app almost nothing).
 */
bool mw_nf_server_has_room(struct mw_nf_server *srv);

/**
 * mw_nf_server_publish() - queue an observation for every watching consumer
 * A consumer whose queue is full loses it (counted); the caller never waits.
 */
void mw_nf_server_publish(struct mw_nf_server *srv, const struct mw_nf_info *info);

/* No source: an observation that no share bounds (mw_nf_server_publish()). */
#define MW_NF_SRC_NONE UINT32_MAX

/**
 * mw_nf_server_publish_src() - mw_nf_server_publish() of an observation of source @src
 * @src: who caused it (mw-pvm: the socket owner's account), or MW_NF_SRC_NONE
 *
 * A source with fewer than 8 observations queued for a consumer may fill the
 * queue; beyond, it stays out of a reserve at the top of the queue and, past
 * half of it, holds at most an equal share of the rest among the sources
 * queued there; else its observation is dropped for that consumer (counted in
 * drops and share_drops).  64 sources are counted apart per consumer, the rest
 * together as one.
 */
void mw_nf_server_publish_src(struct mw_nf_server *srv, const struct mw_nf_info *info,
			      uint32_t src);

/**
 * mw_nf_server_respond() - answer a request (never dropped while the consumer is connected)
 * @status: 0 or a negative errno
 */
void mw_nf_server_respond(struct mw_nf_server *srv, struct mw_nf_reply to, int status,
			  uint64_t val0, uint64_t val1);

void mw_nf_server_get_stats(const struct mw_nf_server *srv, struct mw_nf_server_stats *st);

#endif /* MW_NF_SERVER_H */
