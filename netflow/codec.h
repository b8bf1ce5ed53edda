/* SPDX-License-Identifier: MIT */
/* codec.h - Netflow wire codec: the original's three packed big-endian messages, byte for byte */
#ifndef MW_NF_CODEC_H
#define MW_NF_CODEC_H

#include <stddef.h>
#include <stdint.h>

#include "common/addr.h"

/*
 * The wire (docs/netflow.md, /work/shared/spec/netflow.md): every integer is
 * big-endian, every struct packed, and there is no length field: the 16-bit
 * signature at offset 0 alone tells the size of a message.  An unknown
 * signature therefore cannot be skipped; the receiver must disconnect.
 *
 * The structs below are host representations only.  They are never laid over
 * wire bytes: codec.c reads and writes every field with explicit BE helpers.
 */

#define MW_NF_SIG_INFO 0xD310     /* server -> consumer, unsolicited observation */
#define MW_NF_SIG_REQUEST 0xD320  /* consumer -> server */
#define MW_NF_SIG_RESPONSE 0xD32F /* server -> the requesting consumer */
#define MW_NF_SIG_PREFIX 0xD3     /* high byte of every signature */

#define MW_NF_BASE_SIZE 6 /* sig u16 + id u32 */
#define MW_NF_INFO_SIZE 116
#define MW_NF_REQUEST_SIZE 46
#define MW_NF_RESPONSE_SIZE 26
#define MW_NF_MAX_SIZE MW_NF_INFO_SIZE

/* Observation kinds (INFO.obs). */
enum mw_nf_obs {
	MW_NF_OBS_NONE = 0,
	MW_NF_OBS_CREATE = 1,
	MW_NF_OBS_BIND = 2,
	MW_NF_OBS_ACCEPT = 3,
	MW_NF_OBS_CONNECT = 4,
	MW_NF_OBS_RECV = 5,
	MW_NF_OBS_SEND = 6,
	MW_NF_OBS_CLOSE = 7,
	MW_NF_OBS_MAX = MW_NF_OBS_CLOSE,
};

/* Request flags. */
#define MW_NF_FLAG_READ 0x0
#define MW_NF_FLAG_WRITE 0x1
#define MW_NF_FLAG_BY_SOCK 0x2 /* ident is a 64-bit socket id */
#define MW_NF_FLAG_BY_PEER 0x4 /* ident is a peer address (declared, unsupported in the original) */
#define MW_NF_FLAG_ALL 0x7

/* Feature / attribute names (request.name). */
enum mw_nf_attr {
	MW_NF_ATTR_NONE = 0x0000,
	MW_NF_ATTR_MONITOR_ON = 0x0001,
	MW_NF_ATTR_MONITOR_OFF = 0x0002,
	MW_NF_ATTR_NONBLOCK = 0x0003,
	MW_NF_ATTR_REUSEADDR = 0x0004,
	MW_NF_ATTR_REUSEPORT = 0x0005,
	MW_NF_ATTR_KEEPALIVE = 0x0006,
	MW_NF_ATTR_DEFER_ACCEPT = 0x0007,
	MW_NF_ATTR_NODELAY = 0x0008,
	MW_NF_ATTR_IS_OPEN = 0x0101,       /* WRITE|BY_SOCK = mitigation close */
	MW_NF_ATTR_OWNER_RUNNING = 0x0102, /* WRITE = signal the owning process */
	MW_NF_ATTR_SNDBUF = 0x0109,
	MW_NF_ATTR_RCVBUF = 0x010a,
	MW_NF_ATTR_SNDTIMEO = 0x010b, /* val = {sec u64, usec u64} */
	MW_NF_ATTR_RCVTIMEO = 0x010c,
	MW_NF_ATTR_SNDLOWAT = 0x010d,
	MW_NF_ATTR_RCVLOWAT = 0x010e,
	MW_NF_ATTR_ERROR = 0x010f,
	MW_NF_ATTR_GLOBAL_CONGCTL = 0x1101,
	MW_NF_ATTR_GLOBAL_DELACK_TICKS = 0x1102,
	MW_NF_ATTR_ADDR_BLOCK = 0x1103, /* val u64 1 = block, 0 = unblock */
	MW_NF_ATTR_AUTH = 0x2001,       /* mwcomms extension: a TCP consumer's token (netflow/auth.h) */
};

#define MW_NF_ATTR_MITIGATES 0x0100 /* name bit: mitigation allowed */
#define MW_NF_ATTR_PER_INS 0x1000   /* name bit: INS-wide setting */
#define MW_NF_ATTR_EXTENSION 0x2000 /* name bit: an mwcomms extension, unknown to the original */

/* MW_NF_ATTR_GLOBAL_CONGCTL values. */
#define MW_NF_CONGCTL_RENO 0x90
#define MW_NF_CONGCTL_NEWRENO 0x91
#define MW_NF_CONGCTL_CUBIC 0x92

/* The af the original console writes next to an AddrBlock text address (Linux AF_INET). */
#define MW_NF_AF_TEXT_LEGACY 2

struct mw_nf_timestamp {
	uint64_t sec;
	uint64_t ns;
};

/* af is 4, 6 or 0 (unset), not AF_*; IPv4 uses addr[0..3]; port in host order. */
struct mw_nf_endpoint {
	uint32_t af;
	uint8_t addr[16];
	uint16_t port;
};

/* A request's ident when it is an address (af + 16 raw bytes, no port). */
struct mw_nf_ident_addr {
	uint32_t af;
	uint8_t addr[16];
};

struct mw_nf_info {
	uint32_t id; /* 0 on the wire; kept so decoding loses nothing */
	uint16_t obs;
	struct mw_nf_timestamp ts_session_start;
	struct mw_nf_timestamp ts_curr;
	uint64_t sockfd;
	struct mw_nf_endpoint pvm;
	struct mw_nf_endpoint remote;
	uint64_t bytes_in;
	uint64_t bytes_out;
	uint64_t extra;
};

/*
 * ident is a union on the wire: with MW_NF_FLAG_BY_SOCK the socket id is in its
 * first 8 bytes (the other 12 are sent as zero and ignored on receipt),
 * otherwise it is an address.  Only the member selected by flags is encoded;
 * decoding zeroes the other one.
 */
struct mw_nf_request {
	uint32_t id;
	uint16_t flags;
	uint16_t name;
	uint8_t val[16]; /* raw wire bytes: use mw_nf_val_get/set */
	uint64_t sockfd;
	struct mw_nf_ident_addr addr;
};

struct mw_nf_response {
	uint32_t id;
	int32_t status; /* 0 or a negative errno */
	uint64_t val0;
	uint64_t val1;
};

/* Explicit big-endian accessors; @p need not be aligned. */
static inline uint16_t mw_nf_get16(const uint8_t *p)
{
	return (uint16_t)((unsigned)p[0] << 8 | p[1]);
}

static inline uint32_t mw_nf_get32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static inline uint64_t mw_nf_get64(const uint8_t *p)
{
	return (uint64_t)mw_nf_get32(p) << 32 | mw_nf_get32(p + 4);
}

static inline void mw_nf_put16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
}

static inline void mw_nf_put32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
}

static inline void mw_nf_put64(uint8_t *p, uint64_t v)
{
	mw_nf_put32(p, (uint32_t)(v >> 32));
	mw_nf_put32(p + 4, (uint32_t)v);
}

/* Request val: word @i (0 or 1) as a big-endian u64. */
static inline uint64_t mw_nf_val_get(const struct mw_nf_request *r, unsigned i)
{
	return mw_nf_get64(r->val + 8 * (i & 1));
}

static inline void mw_nf_val_set(struct mw_nf_request *r, unsigned i, uint64_t v)
{
	mw_nf_put64(r->val + 8 * (i & 1), v);
}

/**
 * mw_nf_encode_info() - write an observation
 * @out: exactly MW_NF_INFO_SIZE bytes
 * Return: MW_NF_INFO_SIZE, or -EINVAL if an endpoint af is not 0, 4 or 6
 */
int mw_nf_encode_info(uint8_t out[MW_NF_INFO_SIZE], const struct mw_nf_info *in);

/**
 * mw_nf_encode_request() - write a feature request
 * @out: exactly MW_NF_REQUEST_SIZE bytes
 * Return: MW_NF_REQUEST_SIZE
 */
int mw_nf_encode_request(uint8_t out[MW_NF_REQUEST_SIZE], const struct mw_nf_request *in);

/**
 * mw_nf_encode_response() - write a feature response
 * @out: exactly MW_NF_RESPONSE_SIZE bytes
 * Return: MW_NF_RESPONSE_SIZE
 */
int mw_nf_encode_response(uint8_t out[MW_NF_RESPONSE_SIZE], const struct mw_nf_response *in);

/**
 * mw_nf_decode_info() - read an observation
 * @buf, @len: the message (@len at least MW_NF_INFO_SIZE; extra bytes are not read)
 * @why: if not NULL, a static reason on failure
 * Return: 0, or -EBADMSG (short buffer, wrong signature, observation > 7,
 * endpoint af not 0/4/6)
 */
int mw_nf_decode_info(struct mw_nf_info *out, const uint8_t *buf, size_t len, const char **why);

/**
 * mw_nf_decode_request() - read a feature request
 * Only the framing is checked here (size, signature), so that a server can
 * still answer a malformed request by its id; see mw_nf_request_check().
 * Return: 0 or -EBADMSG
 */
int mw_nf_decode_request(struct mw_nf_request *out, const uint8_t *buf, size_t len,
			 const char **why);

/**
 * mw_nf_decode_response() - read a feature response
 * Return: 0 or -EBADMSG (short buffer, wrong signature)
 */
int mw_nf_decode_response(struct mw_nf_response *out, const uint8_t *buf, size_t len,
			  const char **why);

/**
 * mw_nf_request_check() - semantic checks a server applies to a decoded request
 * Return: 0, or -EINVAL (unknown flag bits, BY_SOCK together with BY_PEER)
 */
int mw_nf_request_check(const struct mw_nf_request *r, const char **why);

/**
 * mw_nf_peek_sig() - the signature at the start of @buf
 * Return: the signature (0..0xffff), or -EAGAIN if fewer than 2 bytes
 */
int mw_nf_peek_sig(const uint8_t *buf, size_t len);

/**
 * mw_nf_sig_size() - the size of the message a signature announces
 * Return: 116, 46 or 26, or -EBADMSG for any other signature
 */
int mw_nf_sig_size(uint16_t sig);

/**
 * mw_nf_frame_next() - stream framer: is a whole message at the start of @buf?
 * @buf, @len: received bytes not yet consumed (possibly a partial message)
 * Return: the size of the complete next message; 0 if more bytes are needed;
 * -EBADMSG if the signature is unknown (the stream cannot be resynchronised:
 * disconnect)
 */
int mw_nf_frame_next(const uint8_t *buf, size_t len);

/**
 * mw_nf_request_block_addr() - the address an AddrBlock request names
 * Accepted forms: ASCII IPv4 dotted quad NUL-padded in the 16 address bytes
 * (any af: the original console writes 2), binary IPv4 with af 4 (bytes 4..15
 * zero) or binary IPv6 with af 6.  The text form is recognised first; a
 * binary IPv4 cannot look like text (a dotted quad is at least 7 characters).
 * @out: family 4 or 6, port 0
 * Return: 0 or -EINVAL
 */
int mw_nf_request_block_addr(const struct mw_nf_request *r, struct mw_addr *out);

/**
 * mw_nf_request_set_block_text() - put @ip (dotted quad) in ident the way the original console does
 * Sets addr.af to MW_NF_AF_TEXT_LEGACY and the NUL-padded text; clears sockfd.
 * Return: 0, or -EINVAL if @ip is not an IPv4 dotted quad
 */
int mw_nf_request_set_block_text(struct mw_nf_request *r, const char *ip);

/**
 * mw_nf_endpoint_to_addr() - convert an INFO endpoint to a struct mw_addr
 * Return: 0, or -EINVAL if af is not 0, 4 or 6
 */
int mw_nf_endpoint_to_addr(const struct mw_nf_endpoint *e, struct mw_addr *out);

/* Fill an endpoint from @a (family 0 gives af 0, all zero). */
void mw_nf_endpoint_from_addr(struct mw_nf_endpoint *e, const struct mw_addr *a);

/* "create", "close", ...; "unknown" outside 0..7. */
const char *mw_nf_obs_name(unsigned obs);

/* "MonitorOn", "IsOpen", "AddrBlock", ...; NULL for an unknown name. */
const char *mw_nf_attr_name(unsigned name);

#endif /* MW_NF_CODEC_H */
