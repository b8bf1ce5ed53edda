/* SPDX-License-Identifier: MIT */
/* test_proto.c - every frame type passes when valid and fails, with a reason, when not */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "common/proto.h"
#include "common/sockid.h"

static const uint64_t SOCK = 0x5300010000000001ULL;
static char why[128];

static int check(uint16_t type, uint64_t sock, const void *p, uint32_t len, enum mw_proto_dir dir)
{
	struct mw_frame f = {.type = type, .len = len, .sock = sock};

	why[0] = '\0';
	return mw_proto_check(&f, p, dir, why, sizeof(why));
}

#define assert_rejected(expr, text)                          \
	do {                                                 \
		assert_int_equal((expr), -EBADMSG);          \
		assert_non_null(strstr(why, (text)));        \
	} while (0)

static struct mw_addr v4(uint16_t port)
{
	struct mw_addr a = {.family = 4, .port = port, .addr = {127, 0, 0, 1}};

	return a;
}

static void test_ops(void **state)
{
	struct mw_op_socket so = {.req = 1, .family = 4};
	struct mw_op_addr ad = {.req = 2, .addr = v4(80)};
	struct mw_op_int li = {.req = 3, .value = 128};
	struct mw_op_sockopt opt = {.req = 4, .level = 6, .name = 1, .len = 4};
	struct mw_op_req rq = {.req = 5};
	struct mw_op_addr_block ab = {.req = 6, .block = 1, .addr = v4(0)};
	struct mw_op_ins_set is = {.req = 7, .name = MW_INS_CONGESTION};

	(void)state;
	strcpy(is.text, "cubic");
	assert_int_equal(check(MW_OP_SOCKET, SOCK, &so, sizeof(so), MW_DIR_TO_INS), 0);
	so.family = 5;
	assert_rejected(check(MW_OP_SOCKET, SOCK, &so, sizeof(so), MW_DIR_TO_INS), "family 5");
	assert_int_equal(check(MW_OP_BIND, SOCK, &ad, sizeof(ad), MW_DIR_TO_INS), 0);
	assert_int_equal(check(MW_OP_CONNECT, SOCK, &ad, sizeof(ad), MW_DIR_TO_INS), 0);
	ad.addr.family = 0;
	assert_rejected(check(MW_OP_CONNECT, SOCK, &ad, sizeof(ad), MW_DIR_TO_INS), "family 0");
	assert_int_equal(check(MW_OP_LISTEN, SOCK, &li, sizeof(li), MW_DIR_TO_INS), 0);
	li.value = 3;
	assert_rejected(check(MW_OP_SHUTDOWN, SOCK, &li, sizeof(li), MW_DIR_TO_INS), "how 3");
	li.value = 2;
	assert_int_equal(check(MW_OP_SHUTDOWN, SOCK, &li, sizeof(li), MW_DIR_TO_INS), 0);
	assert_rejected(check(MW_OP_GETNAME, SOCK, &li, sizeof(li), MW_DIR_TO_INS), "which 2");
	assert_int_equal(check(MW_OP_SETOPT, SOCK, &opt, sizeof(opt), MW_DIR_TO_INS), 0);
	opt.len = 65;
	assert_rejected(check(MW_OP_GETOPT, SOCK, &opt, sizeof(opt), MW_DIR_TO_INS), "length 65");
	assert_int_equal(check(MW_OP_CLOSE, SOCK, &rq, sizeof(rq), MW_DIR_TO_INS), 0);
	assert_int_equal(check(MW_OP_ABORT, SOCK, &rq, sizeof(rq), MW_DIR_TO_INS), 0);
	assert_int_equal(check(MW_OP_STATS, 0, &rq, sizeof(rq), MW_DIR_TO_INS), 0);
	assert_rejected(check(MW_OP_STATS, SOCK, &rq, sizeof(rq), MW_DIR_TO_INS), "channel-wide");
	assert_int_equal(check(MW_OP_ADDR_BLOCK, 0, &ab, sizeof(ab), MW_DIR_TO_INS), 0);
	ab.block = 2;
	assert_rejected(check(MW_OP_ADDR_BLOCK, 0, &ab, sizeof(ab), MW_DIR_TO_INS), "block 2");
	assert_int_equal(check(MW_OP_INS_SET, 0, &is, sizeof(is), MW_DIR_TO_INS), 0);
	memset(is.text, 'x', sizeof(is.text));
	assert_rejected(check(MW_OP_INS_SET, 0, &is, sizeof(is), MW_DIR_TO_INS), "NUL");
	is.name = 99;
	assert_rejected(check(MW_OP_INS_SET, 0, &is, sizeof(is), MW_DIR_TO_INS), "unknown setting");
}

static void test_events(void **state)
{
	struct {
		struct mw_result r;
		uint8_t val[8];
	} res = {.r = {.req = 1, .status = -ECONNREFUSED, .len = 8}};
	struct mw_ev_accepted acc = {.new_sock = mw_sockid_make(1, 0, MW_SOCKID_INS_ASSIGNED | 7),
				     .peer = v4(4000),
				     .local = v4(80)};
	struct mw_ev_connected con = {.local = v4(5000), .peer = v4(80)};
	struct mw_ev_errno en = {.err = ECONNRESET};
	struct mw_stats st = {.seq = 1};

	(void)state;
	assert_int_equal(check(MW_RESULT, SOCK, &res, sizeof(res), MW_DIR_TO_PVM), 0);
	assert_int_equal(check(MW_RESULT, 0, &res, sizeof(res), MW_DIR_TO_PVM), 0);
	assert_rejected(check(MW_RESULT, SOCK, &res, 20, MW_DIR_TO_PVM), "value length 8");
	res.r.status = 3;
	assert_rejected(check(MW_RESULT, SOCK, &res, sizeof(res), MW_DIR_TO_PVM), "status 3");
	assert_int_equal(check(MW_EV_ACCEPTED, SOCK, &acc, sizeof(acc), MW_DIR_TO_PVM), 0);
	acc.new_sock = mw_sockid_make(1, 0, 7);
	assert_rejected(check(MW_EV_ACCEPTED, SOCK, &acc, sizeof(acc), MW_DIR_TO_PVM), "INS-assigned");
	assert_int_equal(check(MW_EV_CONNECTED, SOCK, &con, sizeof(con), MW_DIR_TO_PVM), 0);
	con.peer.family = 9;
	assert_rejected(check(MW_EV_CONNECTED, SOCK, &con, sizeof(con), MW_DIR_TO_PVM), "family");
	assert_int_equal(check(MW_EV_EOF, SOCK, NULL, 0, MW_DIR_TO_PVM), 0);
	assert_rejected(check(MW_EV_EOF, SOCK, &en, 8, MW_DIR_TO_PVM), "payload 8 bytes");
	assert_int_equal(check(MW_EV_CLOSED, SOCK, NULL, 0, MW_DIR_TO_PVM), 0);
	assert_int_equal(check(MW_EV_RESET, SOCK, &en, sizeof(en), MW_DIR_TO_PVM), 0);
	en.err = 0;
	assert_rejected(check(MW_EV_ERROR, SOCK, &en, sizeof(en), MW_DIR_TO_PVM), "errno 0");
	assert_int_equal(check(MW_EV_HEARTBEAT, 0, &st, sizeof(st), MW_DIR_TO_PVM), 0);
	assert_rejected(check(MW_EV_HEARTBEAT, SOCK, &st, sizeof(st), MW_DIR_TO_PVM), "channel-wide");
}

static void test_data_credit_and_rules(void **state)
{
	static uint8_t big[MW_FRAME_MAX_PAYLOAD + 1];
	struct mw_credit cr = {.bytes = 4096};
	struct mw_frame f = {.type = MW_DATA, .flags = 1, .len = 1, .sock = SOCK};

	(void)state;
	assert_int_equal(check(MW_DATA, SOCK, big, MW_FRAME_MAX_PAYLOAD, MW_DIR_TO_INS), 0);
	assert_int_equal(check(MW_DATA, SOCK, big, 1, MW_DIR_TO_PVM), 0);
	assert_rejected(check(MW_DATA, SOCK, big, MW_FRAME_MAX_PAYLOAD + 1, MW_DIR_TO_INS), "payload");
	assert_rejected(check(MW_DATA, SOCK, big, 0, MW_DIR_TO_INS), "payload 0 bytes");
	assert_rejected(check(MW_DATA, 0x1234, big, 1, MW_DIR_TO_INS), "not a socket id");
	assert_int_equal(check(MW_CREDIT, SOCK, &cr, sizeof(cr), MW_DIR_TO_PVM), 0);
	cr.bytes = 0;
	assert_rejected(check(MW_CREDIT, SOCK, &cr, sizeof(cr), MW_DIR_TO_INS), "0 bytes");
	/* Direction: ops never come from an INS, events never go to one. */
	assert_rejected(check(MW_OP_STATS, 0, &cr, 4, MW_DIR_TO_PVM), "may not travel to the PVM");
	assert_rejected(check(MW_EV_EOF, SOCK, NULL, 0, MW_DIR_TO_INS), "may not travel to the INS");
	assert_rejected(check(0x7f, SOCK, NULL, 0, MW_DIR_TO_INS), "unknown frame type 0x007f");
	assert_rejected(check(0, SOCK, NULL, 0, MW_DIR_TO_INS), "unknown frame type");
	assert_int_equal(mw_proto_check(&f, big, MW_DIR_TO_INS, why, sizeof(why)), -EBADMSG);
	assert_non_null(strstr(why, "flags"));
	assert_string_equal(mw_proto_type_name(MW_OP_CONNECT), "OP_CONNECT");
	assert_string_equal(mw_proto_type_name(0x99), "?");
}

/* ---- every type: one valid frame, then each generic rule broken once ---- */

enum { TO_INS = 1, TO_PVM = 2 };

struct sample {
	uint16_t type;
	unsigned dirs;      /* TO_INS | TO_PVM */
	bool channel_wide;  /* sock must be 0 */
	bool sock_optional; /* RESULT: 0 or a valid id */
	bool fixed;         /* payload size exact */
	uint32_t len;
	union {
		uint8_t raw[96];
		struct mw_op_socket so;
		struct mw_op_addr ad;
		struct mw_op_int in;
		struct mw_op_sockopt opt;
		struct mw_op_req rq;
		struct mw_op_addr_block ab;
		struct mw_op_ins_set is;
		struct mw_result res;
		struct mw_ev_accepted acc;
		struct mw_ev_connected con;
		struct mw_ev_errno en;
		struct mw_stats st;
		struct mw_credit cr;
		struct mw_data_pipe dp;
	} p;
};

static struct sample sample_of(uint16_t type)
{
	struct sample s = {.type = type, .dirs = TO_INS, .fixed = true};

	switch (type) {
	case MW_OP_SOCKET:
		s.p.so = (struct mw_op_socket){.req = 1, .family = 6};
		s.len = sizeof(s.p.so);
		break;
	case MW_OP_BIND:
	case MW_OP_CONNECT:
		s.p.ad = (struct mw_op_addr){.req = 2, .addr = v4(80)};
		s.len = sizeof(s.p.ad);
		break;
	case MW_OP_LISTEN:
	case MW_OP_SHUTDOWN:
	case MW_OP_GETNAME:
		s.p.in = (struct mw_op_int){.req = 3, .value = 1};
		s.len = sizeof(s.p.in);
		break;
	case MW_OP_SETOPT:
	case MW_OP_GETOPT:
		s.p.opt = (struct mw_op_sockopt){.req = 4, .level = 6, .name = 1, .len = 4};
		s.len = sizeof(s.p.opt);
		break;
	case MW_OP_CLOSE:
	case MW_OP_ABORT:
		s.p.rq.req = 5;
		s.len = sizeof(s.p.rq);
		break;
	case MW_OP_STATS:
		s.p.rq.req = 6;
		s.len = sizeof(s.p.rq);
		s.channel_wide = true;
		break;
	case MW_OP_ADDR_BLOCK:
		s.p.ab = (struct mw_op_addr_block){.req = 7, .block = 0, .addr = v4(0)};
		s.len = sizeof(s.p.ab);
		s.channel_wide = true;
		break;
	case MW_OP_INS_SET:
		s.p.is = (struct mw_op_ins_set){.req = 8, .name = MW_INS_SNDBUF, .value = 1 << 20};
		s.len = sizeof(s.p.is);
		s.channel_wide = true;
		break;
	case MW_RESULT:
		s.p.res = (struct mw_result){.req = 9, .status = 0, .len = 4};
		s.len = sizeof(s.p.res) + 4;
		s.dirs = TO_PVM;
		s.sock_optional = true;
		s.fixed = false;
		break;
	case MW_EV_ACCEPTED:
		s.p.acc = (struct mw_ev_accepted){
			.new_sock = mw_sockid_make(1, 0, MW_SOCKID_INS_ASSIGNED | 1),
			.peer = v4(4000), .local = v4(80)};
		s.len = sizeof(s.p.acc);
		s.dirs = TO_PVM;
		break;
	case MW_EV_CONNECTED:
		s.p.con = (struct mw_ev_connected){.local = v4(5000), .peer = v4(80)};
		s.len = sizeof(s.p.con);
		s.dirs = TO_PVM;
		break;
	case MW_EV_EOF:
	case MW_EV_CLOSED:
		s.len = 0;
		s.dirs = TO_PVM;
		break;
	case MW_EV_RESET:
	case MW_EV_ERROR:
		s.p.en.err = ETIMEDOUT;
		s.len = sizeof(s.p.en);
		s.dirs = TO_PVM;
		break;
	case MW_EV_HEARTBEAT:
		s.p.st = (struct mw_stats){.seq = 3, .used_sockets = 2};
		s.len = sizeof(s.p.st);
		s.dirs = TO_PVM;
		s.channel_wide = true;
		break;
	case MW_DATA:
		memset(s.p.raw, 'd', sizeof(s.p.raw));
		s.len = sizeof(s.p.raw);
		s.dirs = TO_INS | TO_PVM;
		s.fixed = false;
		break;
	case MW_CREDIT:
		s.p.cr.bytes = 65536;
		s.len = sizeof(s.p.cr);
		s.dirs = TO_INS | TO_PVM;
		break;
	case MW_DATA_PIPE:
		s.p.dp.len = MW_PIPE_FRAME_MAX;
		s.len = sizeof(s.p.dp);
		s.dirs = TO_INS;
		break;
	default:
		fail_msg("no sample for type 0x%x", type);
	}
	return s;
}

static const uint16_t all_types[] = {
	MW_OP_SOCKET, MW_OP_BIND, MW_OP_LISTEN, MW_OP_CONNECT, MW_OP_SETOPT, MW_OP_GETOPT,
	MW_OP_SHUTDOWN, MW_OP_CLOSE, MW_OP_ABORT, MW_OP_ADDR_BLOCK, MW_OP_INS_SET, MW_OP_STATS,
	MW_OP_GETNAME, MW_RESULT, MW_EV_ACCEPTED, MW_EV_CONNECTED, MW_EV_EOF, MW_EV_RESET,
	MW_EV_ERROR, MW_EV_CLOSED, MW_EV_HEARTBEAT, MW_DATA, MW_CREDIT, MW_DATA_PIPE,
};

static int check_s(const struct sample *s, uint64_t sock, uint32_t len, uint16_t flags,
		   enum mw_proto_dir dir)
{
	struct mw_frame f = {.type = s->type, .flags = flags, .len = len, .sock = sock};
	uint8_t *copy = malloc(len ? len : 1); /* exactly sized: ASan sees over-reads */
	int ret;

	assert_non_null(copy);
	memcpy(copy, s->p.raw, len < sizeof(s->p.raw) ? len : sizeof(s->p.raw));
	if (len > sizeof(s->p.raw))
		memset(copy + sizeof(s->p.raw), 0, len - sizeof(s->p.raw));
	why[0] = '\0';
	ret = mw_proto_check(&f, copy, dir, why, sizeof(why));
	free(copy);
	return ret;
}

static void test_every_type(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(all_types) / sizeof(all_types[0]); i++) {
		struct sample s = sample_of(all_types[i]);
		const char *name = mw_proto_type_name(s.type);
		uint64_t sock = s.channel_wide ? 0 : SOCK;

		print_message("%s\n", name);
		assert_string_not_equal(name, "?");
		for (int d = 0; d < 2; d++) {
			enum mw_proto_dir dir = d ? MW_DIR_TO_PVM : MW_DIR_TO_INS;
			bool allowed = s.dirs & (d ? TO_PVM : TO_INS);

			if (allowed) {
				assert_int_equal(check_s(&s, sock, s.len, 0, dir), 0);
			} else {
				assert_rejected(check_s(&s, sock, s.len, 0, dir),
						d ? "may not travel to the PVM" : "may not travel to the INS");
				assert_non_null(strstr(why, name));
			}
		}
		enum mw_proto_dir dir = (s.dirs & TO_INS) ? MW_DIR_TO_INS : MW_DIR_TO_PVM;

		/* flags must be 0 */
		assert_rejected(check_s(&s, sock, s.len, 0x8000, dir), "flags");
		assert_non_null(strstr(why, name));
		/* size: one byte short, one byte over (fixed structs and the maxima) */
		if (s.len) {
			/* DATA: any 1..64 KiB is fine, so "short" means empty */
			uint32_t short_len = s.type == MW_DATA ? 0 : s.len - 1;

			assert_rejected(check_s(&s, sock, short_len, 0, dir), "");
			assert_non_null(strstr(why, name));
		}
		if (s.type == MW_DATA) {
			assert_rejected(check_s(&s, sock, MW_FRAME_MAX_PAYLOAD + 1, 0, dir), "payload");
			assert_non_null(strstr(why, name));
		}
		if (s.fixed) {
			assert_rejected(check_s(&s, sock, s.len + 1, 0, dir), "payload");
			assert_non_null(strstr(why, name));
		}
		/* socket id rules */
		if (s.channel_wide) {
			assert_rejected(check_s(&s, SOCK, s.len, 0, dir), "channel-wide");
			assert_non_null(strstr(why, name));
			continue;
		}
		assert_rejected(check_s(&s, 0x1234, s.len, 0, dir), "not a socket id");
		assert_non_null(strstr(why, name));
		if (s.sock_optional) {
			assert_int_equal(check_s(&s, 0, s.len, 0, dir), 0);
		} else {
			assert_rejected(check_s(&s, 0, s.len, 0, dir), "not a socket id");
			assert_non_null(strstr(why, name));
		}
	}
}

static void test_size_limits(void **state)
{
	struct sample s = sample_of(MW_RESULT);

	(void)state;
	/* RESULT: 16 + len, len <= 64 */
	s.p.res.len = 0;
	assert_int_equal(check_s(&s, SOCK, 16, 0, MW_DIR_TO_PVM), 0);
	assert_rejected(check_s(&s, SOCK, 15, 0, MW_DIR_TO_PVM), "payload 15 bytes");
	s.p.res.len = 64;
	assert_int_equal(check_s(&s, SOCK, 80, 0, MW_DIR_TO_PVM), 0);
	s.p.res.len = 65;
	assert_rejected(check_s(&s, SOCK, 80, 0, MW_DIR_TO_PVM), "value length 65");
	assert_rejected(check_s(&s, SOCK, 81, 0, MW_DIR_TO_PVM), "payload 81 bytes");
	s.p.res.len = 0xffffffffu; /* 16 + len must not wrap */
	assert_rejected(check_s(&s, SOCK, 16, 0, MW_DIR_TO_PVM), "value length");
	/* OP_SOCKET names a PVM-assigned id */
	s = sample_of(MW_OP_SOCKET);
	assert_rejected(check_s(&s, mw_sockid_make(1, 0, MW_SOCKID_INS_ASSIGNED | 5), s.len, 0,
				MW_DIR_TO_INS), "not a PVM-assigned id");
	assert_rejected(check_s(&s, mw_sockid_make(1, 0, 0), s.len, 0, MW_DIR_TO_INS),
			"not a PVM-assigned id");
	/* EV_ACCEPTED's new id must be a valid id too, not just have bit 31 */
	s = sample_of(MW_EV_ACCEPTED);
	s.p.acc.new_sock = MW_SOCKID_INS_ASSIGNED;
	assert_rejected(check_s(&s, SOCK, s.len, 0, MW_DIR_TO_PVM), "INS-assigned");
	s = sample_of(MW_EV_ACCEPTED);
	s.p.acc.local.family = 0;
	assert_rejected(check_s(&s, SOCK, s.len, 0, MW_DIR_TO_PVM), "family");
	/* EV_CONNECTED may leave an endpoint unset (0) but not invent a family */
	s = sample_of(MW_EV_CONNECTED);
	s.p.con.local.family = 0;
	assert_int_equal(check_s(&s, SOCK, s.len, 0, MW_DIR_TO_PVM), 0);
	/* errno upper bound, credit upper bound, setting names */
	s = sample_of(MW_EV_RESET);
	s.p.en.err = 4096;
	assert_rejected(check_s(&s, SOCK, s.len, 0, MW_DIR_TO_PVM), "errno 4096");
	s.p.en.err = -1;
	assert_rejected(check_s(&s, SOCK, s.len, 0, MW_DIR_TO_PVM), "errno -1");
	s = sample_of(MW_CREDIT);
	s.p.cr.bytes = (1u << 30) + 1;
	assert_rejected(check_s(&s, SOCK, s.len, 0, MW_DIR_TO_INS), "bytes");
	/* DATA_PIPE: 1..1 MiB, pad 0, never from an INS */
	s = sample_of(MW_DATA_PIPE);
	assert_int_equal(check_s(&s, SOCK, s.len, 0, MW_DIR_TO_INS), 0);
	assert_rejected(check_s(&s, SOCK, s.len, 0, MW_DIR_TO_PVM), "may not travel to the PVM");
	s.p.dp.len = 0;
	assert_rejected(check_s(&s, SOCK, s.len, 0, MW_DIR_TO_INS), "0 bytes");
	s.p.dp.len = MW_PIPE_FRAME_MAX + 1;
	assert_rejected(check_s(&s, SOCK, s.len, 0, MW_DIR_TO_INS), "bytes not 1..");
	s.p.dp.len = 1;
	s.p.dp.pad = 1;
	assert_rejected(check_s(&s, SOCK, s.len, 0, MW_DIR_TO_INS), "pad 1");
	s = sample_of(MW_OP_INS_SET);
	s.p.is.name = 0;
	assert_rejected(check_s(&s, 0, s.len, 0, MW_DIR_TO_INS), "unknown setting 0");
	s.p.is.name = MW_INS_RCVBUF;
	memset(s.p.is.text, 'a', 31); /* 31 chars + NUL at [31]: still terminated */
	assert_int_equal(check_s(&s, 0, s.len, 0, MW_DIR_TO_INS), 0);
	s = sample_of(MW_OP_SHUTDOWN);
	s.p.in.value = -1;
	assert_rejected(check_s(&s, SOCK, s.len, 0, MW_DIR_TO_INS), "how -1");
	s = sample_of(MW_OP_ADDR_BLOCK);
	s.p.ab.addr.family = 5;
	assert_rejected(check_s(&s, 0, s.len, 0, MW_DIR_TO_INS), "family 5");
	s = sample_of(MW_OP_BIND);
	s.p.ad.addr.family = 6;
	s.p.ad.addr.pad = 0xee; /* pad is not checked: harmless */
	assert_int_equal(check_s(&s, SOCK, s.len, 0, MW_DIR_TO_INS), 0);
}

static void test_hello(void **state)
{
	struct mw_hello h = {.magic = MW_PROTO_MAGIC, .version_min = 1, .version_max = 1,
			     .ring_size = 1 << 22, .window = 1 << 18};

	(void)state;
	assert_int_equal(mw_proto_check_hello(&h, why, sizeof(why)), 0);
	h.ring_size = 0; /* the INS does not choose a ring size */
	assert_int_equal(mw_proto_check_hello(&h, why, sizeof(why)), 0);
	h.ring_size = 12345;
	assert_int_equal(mw_proto_check_hello(&h, why, sizeof(why)), -EPROTO);
	assert_non_null(strstr(why, "ring size"));
	h.ring_size = 0;
	h.version_min = 2;
	assert_int_equal(mw_proto_check_hello(&h, why, sizeof(why)), -EPROTO);
	h.version_min = 1;
	h.window = 0;
	assert_int_equal(mw_proto_check_hello(&h, why, sizeof(why)), -EPROTO);
	h.window = 1;
	h.version_min = h.version_max = 0; /* the PVM's "no common version" reply */
	assert_int_equal(mw_proto_check_hello(&h, why, sizeof(why)), -EPROTO);
	assert_non_null(strstr(why, "no protocol version in common"));
	h.version_max = 3;
	assert_int_equal(mw_proto_check_hello(&h, why, sizeof(why)), -EPROTO);
	assert_non_null(strstr(why, "starts at 0"));
	h.version_min = 1;
	h.window = (1u << 30) + 1;
	assert_int_equal(mw_proto_check_hello(&h, why, sizeof(why)), -EPROTO);
	assert_non_null(strstr(why, "window"));
	h.window = 1;
	h.magic = 0;
	assert_int_equal(mw_proto_check_hello(&h, why, sizeof(why)), -EPROTO);
	assert_non_null(strstr(why, "magic"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_ops),
		cmocka_unit_test(test_events),
		cmocka_unit_test(test_data_credit_and_rules),
		cmocka_unit_test(test_every_type),
		cmocka_unit_test(test_size_limits),
		cmocka_unit_test(test_hello),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
