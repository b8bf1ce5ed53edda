/* SPDX-License-Identifier: MIT */
/* proto.c - checks every PVM<->INS frame before either side acts on it */
#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "common/proto.h"
#include "common/ring.h"
#include "common/sockid.h"

/* Which socket a frame may name. */
enum sock_rule {
	SOCK_NONE,      /* channel-wide: 0 */
	SOCK_ANY,       /* a valid id */
	SOCK_OPTIONAL,  /* 0 or a valid id (RESULT answers both kinds of op) */
};

enum dir_rule { TO_INS = 1, TO_PVM = 2, BOTH = 3 };

struct frame_rule {
	const char *name;
	enum dir_rule dir;
	enum sock_rule sock;
	uint32_t min, max;  /* payload bytes */
};

static const struct frame_rule *rule_of(uint16_t type)
{
	/* Indexed by type; gaps have name NULL. */
	static const struct frame_rule ops[] = {
		[MW_OP_SOCKET] = {"OP_SOCKET", TO_INS, SOCK_ANY, 8, 8},
		[MW_OP_BIND] = {"OP_BIND", TO_INS, SOCK_ANY, 32, 32},
		[MW_OP_LISTEN] = {"OP_LISTEN", TO_INS, SOCK_ANY, 8, 8},
		[MW_OP_CONNECT] = {"OP_CONNECT", TO_INS, SOCK_ANY, 32, 32},
		[MW_OP_SETOPT] = {"OP_SETOPT", TO_INS, SOCK_ANY, 80, 80},
		[MW_OP_GETOPT] = {"OP_GETOPT", TO_INS, SOCK_ANY, 80, 80},
		[MW_OP_SHUTDOWN] = {"OP_SHUTDOWN", TO_INS, SOCK_ANY, 8, 8},
		[MW_OP_CLOSE] = {"OP_CLOSE", TO_INS, SOCK_ANY, 4, 4},
		[MW_OP_ABORT] = {"OP_ABORT", TO_INS, SOCK_ANY, 4, 4},
		[MW_OP_ADDR_BLOCK] = {"OP_ADDR_BLOCK", TO_INS, SOCK_NONE, 32, 32},
		[MW_OP_INS_SET] = {"OP_INS_SET", TO_INS, SOCK_NONE, 48, 48},
		[MW_OP_STATS] = {"OP_STATS", TO_INS, SOCK_NONE, 4, 4},
		[MW_OP_GETNAME] = {"OP_GETNAME", TO_INS, SOCK_ANY, 8, 8},
	};
	static const struct frame_rule evs[] = {
		[MW_RESULT - 0x40] = {"RESULT", TO_PVM, SOCK_OPTIONAL, 16, 16 + MW_SOCKOPT_MAX},
		[MW_EV_ACCEPTED - 0x40] = {"EV_ACCEPTED", TO_PVM, SOCK_ANY, 56, 56},
		[MW_EV_CONNECTED - 0x40] = {"EV_CONNECTED", TO_PVM, SOCK_ANY, 48, 48},
		[MW_EV_EOF - 0x40] = {"EV_EOF", TO_PVM, SOCK_ANY, 0, 0},
		[MW_EV_RESET - 0x40] = {"EV_RESET", TO_PVM, SOCK_ANY, 8, 8},
		[MW_EV_ERROR - 0x40] = {"EV_ERROR", TO_PVM, SOCK_ANY, 8, 8},
		[MW_EV_CLOSED - 0x40] = {"EV_CLOSED", TO_PVM, SOCK_ANY, 0, 0},
		[MW_EV_HEARTBEAT - 0x40] = {"EV_HEARTBEAT", TO_PVM, SOCK_NONE, 40, 40},
	};
	static const struct frame_rule data[] = {
		[MW_DATA - 0x80] = {"DATA", BOTH, SOCK_ANY, 1, MW_FRAME_MAX_PAYLOAD},
		[MW_CREDIT - 0x80] = {"CREDIT", BOTH, SOCK_ANY, 8, 8},
		[MW_DATA_PIPE - 0x80] = {"DATA_PIPE", TO_INS, SOCK_ANY, 8, 8},
	};
	const struct frame_rule *r = NULL;

	if (type < sizeof(ops) / sizeof(ops[0]))
		r = &ops[type];
	else if (type >= 0x40 && type - 0x40 < (int)(sizeof(evs) / sizeof(evs[0])))
		r = &evs[type - 0x40];
	else if (type >= 0x80 && type - 0x80 < (int)(sizeof(data) / sizeof(data[0])))
		r = &data[type - 0x80];
	return r && r->name ? r : NULL;
}

/**
 * mw_proto_type_name() - name of a frame type for log lines
 * @type: enum mw_frame_type value (or anything a peer sent)
 * Return: "OP_CONNECT" etc., "?" for an unknown type
 */
const char *mw_proto_type_name(uint16_t type)
{
	const struct frame_rule *r = rule_of(type);

	return r ? r->name : "?";
}

static int fail(char *why, size_t whylen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int fail(char *why, size_t whylen, const char *fmt, ...)
{
	va_list ap;

	if (why && whylen) {
		va_start(ap, fmt);
		vsnprintf(why, whylen, fmt, ap);
		va_end(ap);
	}
	return -EBADMSG;
}

/* An endpoint is IPv4 or IPv6; "unset" (0) only where the INS may not know it. */
static bool addr_ok(const struct mw_addr *a, bool unset_ok)
{
	return a->family == 4 || a->family == 6 || (unset_ok && a->family == 0);
}

static int check_payload(const struct frame_rule *r, const struct mw_frame *f, const void *p,
			 char *why, size_t wl)
{
	switch (f->type) {
	case MW_OP_SOCKET: {
		const struct mw_op_socket *o = p;

		if (o->family != 4 && o->family != 6)
			return fail(why, wl, "%s: family %u not 4 or 6", r->name, o->family);
		/* The PVM names new sockets; INS-assigned ids only come from EV_ACCEPTED. */
		if (!mw_sockid_local(f->sock) ||
		    mw_sockid_local(f->sock) & MW_SOCKID_INS_ASSIGNED)
			return fail(why, wl, "%s: %#llx is not a PVM-assigned id (local 1..0x7fffffff)",
				    r->name, (unsigned long long)f->sock);
		break;
	}
	case MW_OP_BIND:
	case MW_OP_CONNECT: {
		const struct mw_op_addr *o = p;

		if (!addr_ok(&o->addr, false))
			return fail(why, wl, "%s: address family %u not 4 or 6", r->name,
				    o->addr.family);
		break;
	}
	case MW_OP_SETOPT:
	case MW_OP_GETOPT: {
		const struct mw_op_sockopt *o = p;

		if (o->len > MW_SOCKOPT_MAX)
			return fail(why, wl, "%s: option length %u > %u", r->name, o->len,
				    MW_SOCKOPT_MAX);
		break;
	}
	case MW_OP_SHUTDOWN: {
		const struct mw_op_int *o = p;

		if (o->value < 0 || o->value > 2)
			return fail(why, wl, "%s: how %d not 0..2", r->name, o->value);
		break;
	}
	case MW_OP_GETNAME: {
		const struct mw_op_int *o = p;

		if (o->value != 0 && o->value != 1)
			return fail(why, wl, "%s: which %d not 0 (local) or 1 (peer)", r->name,
				    o->value);
		break;
	}
	case MW_OP_ADDR_BLOCK: {
		const struct mw_op_addr_block *o = p;

		if (o->block > 1)
			return fail(why, wl, "%s: block %u not 0 or 1", r->name, o->block);
		if (!addr_ok(&o->addr, false))
			return fail(why, wl, "%s: address family %u not 4 or 6", r->name,
				    o->addr.family);
		if (o->prefix_len > (o->addr.family == 4 ? 32 : 128) || o->reserved)
			return fail(why, wl, "%s: prefix length %u for IPv%u", r->name,
				    o->prefix_len, o->addr.family);
		break;
	}
	case MW_OP_INS_SET: {
		const struct mw_op_ins_set *o = p;

		if (o->name < MW_INS_CONGESTION || o->name > MW_INS_RCVBUF)
			return fail(why, wl, "%s: unknown setting %u", r->name, o->name);
		if (!memchr(o->text, '\0', sizeof(o->text)))
			return fail(why, wl, "%s: text not NUL-terminated", r->name);
		break;
	}
	case MW_RESULT: {
		const struct mw_result *o = p;

		if (o->len > MW_SOCKOPT_MAX || f->len != sizeof(*o) + o->len)
			return fail(why, wl, "%s: value length %u does not match payload %u",
				    r->name, o->len, f->len);
		if (o->status > 0 || o->status < -4095)
			return fail(why, wl, "%s: status %d not 0 or -errno", r->name, o->status);
		break;
	}
	case MW_EV_ACCEPTED: {
		const struct mw_ev_accepted *o = p;

		if (!mw_sockid_valid(o->new_sock) ||
		    !(mw_sockid_local(o->new_sock) & MW_SOCKID_INS_ASSIGNED))
			return fail(why, wl, "%s: new id %#llx is not an INS-assigned id", r->name,
				    (unsigned long long)o->new_sock);
		if (!addr_ok(&o->peer, false) || !addr_ok(&o->local, false))
			return fail(why, wl, "%s: endpoint family not 4 or 6", r->name);
		break;
	}
	case MW_EV_CONNECTED: {
		const struct mw_ev_connected *o = p;

		if (!addr_ok(&o->peer, true) || !addr_ok(&o->local, true))
			return fail(why, wl, "%s: endpoint family not 0, 4 or 6", r->name);
		break;
	}
	case MW_EV_RESET:
	case MW_EV_ERROR: {
		const struct mw_ev_errno *o = p;

		if (o->err < 1 || o->err > 4095)
			return fail(why, wl, "%s: errno %d not 1..4095", r->name, o->err);
		break;
	}
	case MW_CREDIT: {
		const struct mw_credit *o = p;

		if (o->bytes == 0 || o->bytes > (1u << 30))
			return fail(why, wl, "%s: %u bytes not 1..1 GiB", r->name, o->bytes);
		break;
	}
	case MW_DATA_PIPE: {
		const struct mw_data_pipe *o = p;

		if (o->len == 0 || o->len > MW_PIPE_FRAME_MAX || o->pad)
			return fail(why, wl, "%s: %u bytes not 1..%u (pad %u)", r->name, o->len,
				    MW_PIPE_FRAME_MAX, o->pad);
		break;
	}
	default:
		break;
	}
	return 0;
}

/**
 * mw_proto_check() - validate a received frame before it is used
 * @f:       header (a private copy)
 * @payload: private copy of the payload (DATA: may point into the ring, unread)
 * @dir:     which way the frame travelled
 * @why:     reason on failure, "TYPE: problem"
 * @whylen:  size of @why
 *
 * Order: type known, direction, flags, payload size, socket id, then fields.
 * Return: 0 or -EBADMSG
 */
int mw_proto_check(const struct mw_frame *f, const void *payload, enum mw_proto_dir dir,
		   char *why, size_t whylen)
{
	const struct frame_rule *r = rule_of(f->type);

	if (!r)
		return fail(why, whylen, "unknown frame type 0x%04x", f->type);
	if (!(r->dir & (dir == MW_DIR_TO_INS ? TO_INS : TO_PVM)))
		return fail(why, whylen, "%s may not travel to the %s", r->name,
			    dir == MW_DIR_TO_INS ? "INS" : "PVM");
	if (f->flags)
		return fail(why, whylen, "%s: flags %#x not 0", r->name, f->flags);
	if (f->len < r->min || f->len > r->max)
		return fail(why, whylen, "%s: payload %u bytes, want %u..%u", r->name, f->len,
			    r->min, r->max);
	if (r->sock == SOCK_NONE && f->sock)
		return fail(why, whylen, "%s: channel-wide frame names socket %#llx", r->name,
			    (unsigned long long)f->sock);
	if (r->sock == SOCK_ANY && !mw_sockid_valid(f->sock))
		return fail(why, whylen, "%s: %#llx is not a socket id", r->name,
			    (unsigned long long)f->sock);
	if (r->sock == SOCK_OPTIONAL && f->sock && !mw_sockid_valid(f->sock))
		return fail(why, whylen, "%s: %#llx is not a socket id", r->name,
			    (unsigned long long)f->sock);
	if (f->type == MW_DATA)
		return 0; /* opaque bytes */
	if (f->len && !payload)
		return fail(why, whylen, "%s: no payload", r->name);
	return check_payload(r, f, payload, why, whylen);
}

/**
 * mw_proto_check_hello() - sanity of a hello received on the handshake socket
 * @h:      the hello (a private copy)
 * @why:    reason on failure
 * @whylen: size of @why
 *
 * Version overlap is not checked here (mw_channel_negotiate does that against
 * our own range); ring_size 0 is accepted because only the PVM chooses it.
 * Return: 0 or -EPROTO
 */
int mw_proto_check_hello(const struct mw_hello *h, char *why, size_t whylen)
{
	if (h->magic != MW_PROTO_MAGIC)
		return fail(why, whylen, "bad magic %#x", h->magic), -EPROTO;
	/* 0..0 is the PVM's "no common version" answer just before it hangs up. */
	if (h->version_min == 0 && h->version_max == 0)
		return fail(why, whylen, "peer has no protocol version in common with us (hello 0..0)"),
		       -EPROTO;
	if (h->version_min == 0)
		return fail(why, whylen, "version range starts at 0 (versions start at 1)"),
		       -EPROTO;
	if (h->version_min > h->version_max)
		return fail(why, whylen, "version range %u..%u is empty", h->version_min,
			    h->version_max), -EPROTO;
	if (h->ring_size && (h->ring_size & (h->ring_size - 1) || h->ring_size < MW_RING_MIN_SIZE ||
			     h->ring_size > MW_RING_MAX_SIZE))
		return fail(why, whylen, "ring size %u not a power of two in %u..%u", h->ring_size,
			    MW_RING_MIN_SIZE, MW_RING_MAX_SIZE), -EPROTO;
	if (h->window == 0 || h->window > (1u << 30))
		return fail(why, whylen, "window %u not 1..1 GiB", h->window), -EPROTO;
	return 0;
}
