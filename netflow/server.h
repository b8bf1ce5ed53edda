/* SPDX-License-Identifier: MIT */
/* server.h - Netflow server: consumers, bounded per-consumer queues, request dispatch */
#ifndef MW_NF_SERVER_H
#define MW_NF_SERVER_H

#include <ev.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

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
	const char *listen; /* "ip:port", "[ip6]:port"; port 0 = any */
	const char *allow;  /* "ip/prefix" a consumer must connect from */
	int queue;	    /* observations held per consumer before dropping */
	int stall_ms;	    /* a consumer whose queue does not move this long is dropped */
};

struct mw_nf_server_stats {
	uint64_t consumers; /* connected now */
	uint64_t accepted;  /* consumers ever accepted */
	uint64_t refused;   /* connections refused by the allow list or a full table */
	uint64_t published; /* observations offered */
	uint64_t drops;	    /* observations dropped on full queues (all consumers) */
	uint64_t requests;  /* requests received */
	uint64_t bad;	    /* malformed requests answered -EINVAL, or streams cut */
	uint64_t stalled;   /* consumers disconnected for not reading */
};

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

/**
 * mw_nf_server_address() - the address consumers connect to, "ip:port"
 * A wildcard listen address is given as the loopback address of its family.
 * Return: @buf
 */
char *mw_nf_server_address(const struct mw_nf_server *srv, char *buf, size_t len);

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

/**
 * mw_nf_server_respond() - answer a request (never dropped while the consumer is connected)
 * @status: 0 or a negative errno
 */
void mw_nf_server_respond(struct mw_nf_server *srv, struct mw_nf_reply to, int status,
			  uint64_t val0, uint64_t val1);

void mw_nf_server_get_stats(const struct mw_nf_server *srv, struct mw_nf_server_stats *st);

#endif /* MW_NF_SERVER_H */
