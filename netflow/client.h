/* SPDX-License-Identifier: MIT */
/* client.h - Netflow consumer client: connect, send requests, frame the stream, await responses */
#ifndef MW_NF_CLIENT_H
#define MW_NF_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "netflow/auth.h"
#include "netflow/codec.h"

struct mw_keystore;
struct mw_nf_client;

#define MW_NF_KEY_PVM  "/mw/pvm/netflow" /* the key a PVM's server publishes "ip:port" at */
#define MW_NF_KEY_PVMS "/mw/pvms" /* ... and at MW_NF_KEY_PVMS/<index>/netflow, for aggregation */
#define MW_NF_KEY_BALANCER \
	"/mw/balancer/netflow" /* the balancer's merged stream (the last one started) */
#define MW_NF_KEY_BALANCERS "/mw/balancers" /* ... and at MW_NF_KEY_BALANCERS/<tag>/netflow */
#define MW_NF_CLIENT_QUEUE  1024	    /* messages held while waiting for a response */

/* One message from the server: sig is MW_NF_SIG_INFO or MW_NF_SIG_RESPONSE. */
struct mw_nf_msg {
	uint16_t sig;
	union {
		struct mw_nf_info info;
		struct mw_nf_response response;
	} u;
};

struct mw_nf_client_stats {
	uint64_t msgs_in;      /* messages framed from the stream */
	uint64_t bad_msgs;     /* well-framed messages that failed to decode (skipped) */
	uint64_t queue_drops;  /* observations dropped because the wait queue was full */
	uint64_t requests_out; /* requests written */
};

/*
 * mw_nf_client_connect_start() - begin connecting without waiting: 0 (connected),
 * -EINPROGRESS (poll the fd for POLLOUT, then mw_nf_client_connect_finish()), -errno.
 */
int mw_nf_client_connect_start(struct mw_nf_client **c, const char *text, char *err, size_t errlen);
int mw_nf_client_connect_finish(struct mw_nf_client *c);

/*
 * mw_nf_client_auth() - send the Auth request with @token and wait for the role
 * Return: 0, -EACCES if refused (the server closes without an answer), -errno
 */
int mw_nf_client_auth(struct mw_nf_client *c, const char *token, int timeout_ms,
		      enum mw_nf_role *role);

/**
 * mw_nf_client_connect() - connect to a Netflow server
 * @text: "/path" (AF_UNIX), "ip:port", "[ip6]:port", or the original's unbracketed "ip6:port"
 * @timeout_ms: connect timeout (< 0: 5000)
 * @err: one line on failure
 * Return: 0 or -errno (-EINVAL for unparsable text, -ETIMEDOUT, -ECONNREFUSED...)
 */
int mw_nf_client_connect(struct mw_nf_client **c, const char *text, int timeout_ms, char *err,
			 size_t errlen);

/**
 * mw_nf_client_connect_keystore() - connect to the server published at @key
 * @key: NULL for MW_NF_KEY_PVM
 * Return: as mw_nf_client_connect(); -ENOENT if the key is absent
 */
int mw_nf_client_connect_keystore(struct mw_nf_client **c, struct mw_keystore *ks, const char *key,
				  int timeout_ms, char *err, size_t errlen);

/* Close the connection and free everything; NULL is fine. */
void mw_nf_client_close(struct mw_nf_client *c);

/* The (non-blocking) socket, for poll/ev_io: readable => call mw_nf_client_read(). */
int mw_nf_client_fd(const struct mw_nf_client *c);

/* Request ids start at @id and increase by one, skipping 0. */
void mw_nf_client_set_next_id(struct mw_nf_client *c, uint32_t id);

/* Allocate a request id (never 0). */
uint32_t mw_nf_client_alloc_id(struct mw_nf_client *c);

/**
 * mw_nf_client_send() - send @req in one write of 46 bytes
 * If req->id is 0 an id is allocated and stored in req->id.
 * @timeout_ms: how long to wait for socket space (< 0: 5000)
 * Return: 0 or -errno (-ETIMEDOUT, -EPIPE...)
 */
int mw_nf_client_send(struct mw_nf_client *c, struct mw_nf_request *req, int timeout_ms);

/**
 * mw_nf_client_read() - read what the socket has, without blocking
 * Return: bytes read (0 if none were pending), -ECONNRESET when the server
 * closed the connection, -ENOBUFS if the read buffer is full (call
 * mw_nf_client_next() first), other -errno
 */
int mw_nf_client_read(struct mw_nf_client *c);

/**
 * mw_nf_client_drained() - whether the last mw_nf_client_read() emptied the socket
 * (it read nothing, or less than the room it had): another read now would find nothing
 */
bool mw_nf_client_drained(const struct mw_nf_client *c);

/**
 * mw_nf_client_next() - the next buffered message, without reading the socket
 * Messages held back by mw_nf_client_wait_response() come first, in arrival order.
 * Return: 1 and @msg filled; 0 if no complete message is buffered; -EBADMSG
 * if the stream carries an unknown or wrong-direction signature (the stream
 * is lost: disconnect)
 */
int mw_nf_client_next(struct mw_nf_client *c, struct mw_nf_msg *msg);

/**
 * mw_nf_client_recv() - the next message, waiting up to @timeout_ms for it
 * Return: 1, -ETIMEDOUT, or an error of mw_nf_client_read()/next()
 */
int mw_nf_client_recv(struct mw_nf_client *c, struct mw_nf_msg *msg, int timeout_ms);

/**
 * mw_nf_client_wait_response() - wait for the response to request @id
 * Everything else that arrives meanwhile (observations, other responses) is
 * queued for mw_nf_client_next(); when the queue is full further observations
 * are dropped and counted, responses are never dropped (the oldest
 * observation makes room).
 * Return: 0 and @out filled, -ETIMEDOUT, or a stream error
 */
int mw_nf_client_wait_response(struct mw_nf_client *c, uint32_t id, int timeout_ms,
			       struct mw_nf_response *out);

/**
 * mw_nf_client_request() - send a request and wait for its response
 * Return: 0 (the request's own status is in out->status) or -errno
 */
int mw_nf_client_request(struct mw_nf_client *c, struct mw_nf_request *req, int timeout_ms,
			 struct mw_nf_response *out);

void mw_nf_client_get_stats(const struct mw_nf_client *c, struct mw_nf_client_stats *st);

#endif /* MW_NF_CLIENT_H */
