/* SPDX-License-Identifier: MIT */
/* test_proto.c - every frame type passes when valid and fails, with a reason, when not */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
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
		cmocka_unit_test(test_hello),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
