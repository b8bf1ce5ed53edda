/* SPDX-License-Identifier: MIT */
/* test_netflow_codec.c - Netflow messages against byte vectors written by hand from the spec tables */
#include <errno.h>
#include <string.h>

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "netflow/codec.h"

/* The expected bytes below were written from spec/netflow.md, not produced by the encoder. */

/* INFO, accept observation, IPv4 endpoints. */
static const uint8_t info_v4_bytes[MW_NF_INFO_SIZE] = {
	0xD3, 0x10,                                     /* sig INFO */
	0x00, 0x00, 0x00, 0x00,                         /* id 0 */
	0x00, 0x03,                                     /* obs 3 accept */
	0x00, 0x00, 0x00, 0x00, 0x5C, 0x9B, 0x0A, 0x00, /* ts_session_start.sec 1553664512 */
	0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0xE2, 0x40, /* ts_session_start.ns 123456 */
	0x00, 0x00, 0x00, 0x00, 0x5C, 0x9B, 0x0A, 0x05, /* ts_curr.sec 1553664517 */
	0x00, 0x00, 0x00, 0x00, 0x3B, 0x9A, 0xC9, 0xFF, /* ts_curr.ns 999999999 */
	0x53, 0x00, 0x01, 0x02, 0x00, 0x00, 0x00, 0x07, /* sockfd 0x5300010200000007 */
	0x00, 0x00, 0x00, 0x04,                         /* pvm.af 4 */
	0x0A, 0x00, 0x00, 0x02, 0, 0, 0, 0,             /* pvm.addr 10.0.0.2 */
	0, 0, 0, 0, 0, 0, 0, 0,                         /*   (rest of the 16 bytes zero) */
	0x1F, 0x90,                                     /* pvm.port 8080 */
	0x00, 0x00, 0x00, 0x04,                         /* remote.af 4 */
	0xC0, 0xA8, 0x01, 0x32, 0, 0, 0, 0,             /* remote.addr 192.168.1.50 */
	0, 0, 0, 0, 0, 0, 0, 0,                         /*   (rest zero) */
	0xC8, 0x22,                                     /* remote.port 51234 */
	0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x12, 0x34, /* bytes_in 0x1234 */
	0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, /* bytes_out 65536 */
	0x53, 0x00, 0x01, 0x02, 0x80, 0x00, 0x00, 0x01, /* extra: the new connection's id */
};

static const struct mw_nf_info info_v4 = {
	.obs = MW_NF_OBS_ACCEPT,
	.ts_session_start = { 1553664512, 123456 },
	.ts_curr = { 1553664517, 999999999 },
	.sockfd = 0x5300010200000007ULL,
	.pvm = { .af = 4, .addr = { 10, 0, 0, 2 }, .port = 8080 },
	.remote = { .af = 4, .addr = { 192, 168, 1, 50 }, .port = 51234 },
	.bytes_in = 0x1234,
	.bytes_out = 65536,
	.extra = 0x5300010280000001ULL,
};

/* INFO, send observation, IPv6 endpoints. */
static const uint8_t info_v6_bytes[MW_NF_INFO_SIZE] = {
	0xD3, 0x10,                                     /* sig INFO */
	0x00, 0x00, 0x00, 0x00,                         /* id 0 */
	0x00, 0x06,                                     /* obs 6 send */
	0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, /* ts_session_start.sec 1 */
	0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x02, /* ts_session_start.ns 2 */
	0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x03, /* ts_curr.sec 3 */
	0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x04, /* ts_curr.ns 4 */
	0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, /* sockfd all ones */
	0x00, 0x00, 0x00, 0x06,                         /* pvm.af 6 */
	0x20, 0x01, 0x0D, 0xB8, 0, 0, 0, 0,             /* pvm.addr 2001:db8:: */
	0, 0, 0, 0, 0, 0, 0, 0x01,                      /*   ...::1 */
	0x01, 0xBB,                                     /* pvm.port 443 */
	0x00, 0x00, 0x00, 0x06,                         /* remote.af 6 */
	0xFE, 0x80, 0, 0, 0, 0, 0, 0,                   /* remote.addr fe80:: */
	0, 0, 0, 0, 0, 0, 0xAB, 0xCD,                   /*   ...::abcd */
	0xFF, 0xFF,                                     /* remote.port 65535 */
	0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, /* bytes_in 0 */
	0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, /* bytes_out 0x0102030405060708 */
	0x53, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x02, /* extra */
};

static const struct mw_nf_info info_v6 = {
	.obs = MW_NF_OBS_SEND,
	.ts_session_start = { 1, 2 },
	.ts_curr = { 3, 4 },
	.sockfd = UINT64_MAX,
	.pvm = { .af = 6, .addr = { 0x20, 0x01, 0x0d, 0xb8, [15] = 1 }, .port = 443 },
	.remote = { .af = 6, .addr = { 0xfe, 0x80, [14] = 0xab, [15] = 0xcd }, .port = 65535 },
	.bytes_in = 0,
	.bytes_out = 0x0102030405060708ULL,
	.extra = 0x5300000100000002ULL,
};

/* REQUEST: mitigation close of a socket, as the original console sends it ('c'). */
static const uint8_t req_close_bytes[MW_NF_REQUEST_SIZE] = {
	0xD3, 0x20,                                     /* sig REQUEST */
	0x01, 0x02, 0x03, 0x04,                         /* id 0x01020304 */
	0x00, 0x03,                                     /* flags WRITE|BY_SOCK */
	0x01, 0x01,                                     /* name IsOpen */
	0, 0, 0, 0, 0, 0, 0, 0,                         /* val[0] 0 */
	0, 0, 0, 0, 0, 0, 0, 0,                         /* val[1] 0 */
	0x53, 0x00, 0x01, 0x02, 0x80, 0x00, 0x00, 0x01, /* ident.sockfd */
	0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,             /* ident: 12 bytes of padding */
};

/* REQUEST: AddrBlock of "10.1.2.3", as the original console sends it ('b'). */
static const uint8_t req_block_bytes[MW_NF_REQUEST_SIZE] = {
	0xD3, 0x20,                                     /* sig REQUEST */
	0xA0, 0xB0, 0xC0, 0xD0,                         /* id 0xA0B0C0D0 */
	0x00, 0x01,                                     /* flags WRITE */
	0x11, 0x03,                                     /* name AddrBlock */
	0, 0, 0, 0, 0, 0, 0, 0x01,                      /* val[0] 1 = block */
	0, 0, 0, 0, 0, 0, 0, 0,                         /* val[1] 0 */
	0x00, 0x00, 0x00, 0x02,                         /* ident.af 2 (python's AF_INET) */
	'1', '0', '.', '1', '.', '2', '.', '3',         /* ident.addr: text */
	0, 0, 0, 0, 0, 0, 0, 0,                         /*   NUL padding */
};

/* RESPONSE: unknown socket. */
static const uint8_t rsp_ebadf_bytes[MW_NF_RESPONSE_SIZE] = {
	0xD3, 0x2F,                                     /* sig RESPONSE */
	0x01, 0x02, 0x03, 0x04,                         /* id echoed */
	0xFF, 0xFF, 0xFF, 0xF7,                         /* status -9 (-EBADF) */
	0, 0, 0, 0, 0, 0, 0, 0x01,                      /* val0 1 */
	0, 0, 0, 0, 0, 0, 0, 0,                         /* val1 0 */
};

static void check_info(const struct mw_nf_info *want, const uint8_t *bytes)
{
	uint8_t out[MW_NF_INFO_SIZE];
	struct mw_nf_info got;
	const char *why = NULL;

	memset(out, 0xAA, sizeof(out));
	assert_int_equal(mw_nf_encode_info(out, want), MW_NF_INFO_SIZE);
	assert_memory_equal(out, bytes, MW_NF_INFO_SIZE);
	memset(&got, 0x55, sizeof(got));
	assert_int_equal(mw_nf_decode_info(&got, bytes, MW_NF_INFO_SIZE, &why), 0);
	assert_int_equal(got.id, 0);
	assert_int_equal(got.obs, want->obs);
	assert_true(got.ts_session_start.sec == want->ts_session_start.sec);
	assert_true(got.ts_session_start.ns == want->ts_session_start.ns);
	assert_true(got.ts_curr.sec == want->ts_curr.sec);
	assert_true(got.ts_curr.ns == want->ts_curr.ns);
	assert_true(got.sockfd == want->sockfd);
	assert_int_equal(got.pvm.af, want->pvm.af);
	assert_memory_equal(got.pvm.addr, want->pvm.addr, 16);
	assert_int_equal(got.pvm.port, want->pvm.port);
	assert_int_equal(got.remote.af, want->remote.af);
	assert_memory_equal(got.remote.addr, want->remote.addr, 16);
	assert_int_equal(got.remote.port, want->remote.port);
	assert_true(got.bytes_in == want->bytes_in);
	assert_true(got.bytes_out == want->bytes_out);
	assert_true(got.extra == want->extra);
}

static void check_request_equal(const struct mw_nf_request *got, const struct mw_nf_request *want)
{
	assert_int_equal(got->id, want->id);
	assert_int_equal(got->flags, want->flags);
	assert_int_equal(got->name, want->name);
	assert_memory_equal(got->val, want->val, 16);
	assert_true(got->sockfd == want->sockfd);
	assert_int_equal(got->addr.af, want->addr.af);
	assert_memory_equal(got->addr.addr, want->addr.addr, 16);
}

static void test_info_ipv4_bytes(void **state)
{
	check_info(&info_v4, info_v4_bytes);
}

static void test_info_ipv6_bytes(void **state)
{
	struct mw_addr a;

	check_info(&info_v6, info_v6_bytes);
	assert_int_equal(mw_nf_endpoint_to_addr(&info_v6.remote, &a), 0);
	assert_int_equal(a.family, 6);
	assert_int_equal(a.port, 65535);
	assert_int_equal(a.addr[15], 0xcd);
}

static void test_request_close_bytes(void **state)
{
	struct mw_nf_request r = { .id = 0x01020304,
				   .flags = MW_NF_FLAG_WRITE | MW_NF_FLAG_BY_SOCK,
				   .name = MW_NF_ATTR_IS_OPEN,
				   .sockfd = 0x5300010280000001ULL };
	struct mw_nf_request got;
	uint8_t out[MW_NF_REQUEST_SIZE];

	assert_int_equal(mw_nf_encode_request(out, &r), MW_NF_REQUEST_SIZE);
	assert_memory_equal(out, req_close_bytes, sizeof(out));
	assert_int_equal(mw_nf_decode_request(&got, req_close_bytes, sizeof(out), NULL), 0);
	check_request_equal(&got, &r);
	assert_int_equal(mw_nf_request_check(&got, NULL), 0);
}

static void test_request_close_ignores_padding(void **state)
{
	uint8_t in[MW_NF_REQUEST_SIZE];
	struct mw_nf_request got;

	/* A legacy client may leave anything in the 12 bytes after the socket id. */
	memcpy(in, req_close_bytes, sizeof(in));
	memset(in + 34, 0x5A, 12);
	assert_int_equal(mw_nf_decode_request(&got, in, sizeof(in), NULL), 0);
	assert_true(got.sockfd == 0x5300010280000001ULL);
	assert_int_equal(got.addr.af, 0);
}

static void test_request_addrblock_text_bytes(void **state)
{
	struct mw_nf_request r = { .id = 0xA0B0C0D0, .flags = MW_NF_FLAG_WRITE,
				   .name = MW_NF_ATTR_ADDR_BLOCK };
	struct mw_nf_request got;
	uint8_t out[MW_NF_REQUEST_SIZE];
	struct mw_addr a;

	mw_nf_val_set(&r, 0, 1);
	assert_int_equal(mw_nf_request_set_block_text(&r, "10.1.2.3"), 0);
	assert_int_equal(mw_nf_encode_request(out, &r), MW_NF_REQUEST_SIZE);
	assert_memory_equal(out, req_block_bytes, sizeof(out));
	assert_int_equal(mw_nf_decode_request(&got, req_block_bytes, sizeof(out), NULL), 0);
	check_request_equal(&got, &r);
	assert_true(mw_nf_val_get(&got, 0) == 1);
	assert_true(mw_nf_val_get(&got, 1) == 0);
	assert_int_equal(mw_nf_request_block_addr(&got, &a), 0);
	assert_int_equal(a.family, 4);
	assert_memory_equal(a.addr, ((uint8_t[]){ 10, 1, 2, 3 }), 4);
}

static void test_request_addrblock_binary_forms(void **state)
{
	struct mw_nf_request r = { .flags = MW_NF_FLAG_WRITE, .name = MW_NF_ATTR_ADDR_BLOCK };
	struct mw_addr a;

	r.addr.af = 4;
	memcpy(r.addr.addr, ((uint8_t[]){ 192, 0, 2, 7 }), 4);
	assert_int_equal(mw_nf_request_block_addr(&r, &a), 0);
	assert_int_equal(a.family, 4);
	assert_int_equal(a.addr[3], 7);

	memset(&r.addr, 0, sizeof(r.addr));
	r.addr.af = 6;
	r.addr.addr[0] = 0x20;
	r.addr.addr[15] = 9;
	assert_int_equal(mw_nf_request_block_addr(&r, &a), 0);
	assert_int_equal(a.family, 6);
	assert_int_equal(a.addr[15], 9);

	/* af 6 whose bytes read as text ("32.1.0.9"): the IPv6 address, not text. */
	memset(&r.addr, 0, sizeof(r.addr));
	r.addr.af = 6;
	memcpy(r.addr.addr, "32.1.0.9", 8);
	assert_int_equal(mw_nf_request_block_addr(&r, &a), 0);
	assert_int_equal(a.family, 6);
	assert_memory_equal(a.addr, "32.1.0.9\0\0\0\0\0\0\0\0", 16);

	/* af 4 with bytes beyond the first four that are not text: refused. */
	memset(&r.addr, 0, sizeof(r.addr));
	r.addr.af = 4;
	r.addr.addr[8] = 1;
	assert_int_equal(mw_nf_request_block_addr(&r, &a), -EINVAL);
	/* Text that is not a dotted quad, and text without a NUL. */
	memset(&r.addr, 0, sizeof(r.addr));
	memcpy(r.addr.addr, "10.1.2", 6);
	assert_int_equal(mw_nf_request_block_addr(&r, &a), -EINVAL);
	memset(r.addr.addr, '1', 16);
	assert_int_equal(mw_nf_request_block_addr(&r, &a), -EINVAL);
	/* Garbage after the NUL. */
	memset(&r.addr, 0, sizeof(r.addr));
	memcpy(r.addr.addr, "10.1.2.3", 8);
	r.addr.addr[12] = 'x';
	assert_int_equal(mw_nf_request_block_addr(&r, &a), -EINVAL);
	/* A socket id is not an address. */
	r.flags |= MW_NF_FLAG_BY_SOCK;
	assert_int_equal(mw_nf_request_block_addr(&r, &a), -EINVAL);

	assert_int_equal(mw_nf_request_set_block_text(&r, "10.1.2.300"), -EINVAL);
	assert_int_equal(mw_nf_request_set_block_text(&r, "255.255.255.255x"), -EINVAL);
	assert_int_equal(mw_nf_request_set_block_text(&r, NULL), -EINVAL);
}

static void test_response_status_negative(void **state)
{
	struct mw_nf_response r = { .id = 0x01020304, .status = -EBADF, .val0 = 1, .val1 = 0 };
	struct mw_nf_response got;
	uint8_t out[MW_NF_RESPONSE_SIZE];

	assert_int_equal(EBADF, 9);
	assert_int_equal(mw_nf_encode_response(out, &r), MW_NF_RESPONSE_SIZE);
	assert_memory_equal(out, rsp_ebadf_bytes, sizeof(out));
	assert_int_equal(mw_nf_decode_response(&got, rsp_ebadf_bytes, sizeof(out), NULL), 0);
	assert_int_equal(got.id, 0x01020304);
	assert_int_equal(got.status, -9);
	assert_true(got.val0 == 1 && got.val1 == 0);
}

static void test_decode_rejects_wrong_sig_and_short(void **state)
{
	struct mw_nf_info i;
	struct mw_nf_request q;
	struct mw_nf_response s;
	const char *why = NULL;

	assert_int_equal(mw_nf_decode_info(&i, req_close_bytes, MW_NF_INFO_SIZE, &why), -EBADMSG);
	assert_string_equal(why, "wrong signature");
	why = NULL;
	assert_int_equal(mw_nf_decode_info(&i, info_v4_bytes, MW_NF_INFO_SIZE - 1, &why),
			 -EBADMSG);
	assert_string_equal(why, "short buffer");
	assert_int_equal(mw_nf_decode_info(&i, NULL, 0, NULL), -EBADMSG);
	assert_int_equal(mw_nf_decode_request(&q, rsp_ebadf_bytes, sizeof(rsp_ebadf_bytes), NULL),
			 -EBADMSG);
	assert_int_equal(mw_nf_decode_request(&q, req_close_bytes, MW_NF_REQUEST_SIZE - 1, NULL),
			 -EBADMSG);
	assert_int_equal(mw_nf_decode_response(&s, req_close_bytes, MW_NF_RESPONSE_SIZE, NULL),
			 -EBADMSG);
	assert_int_equal(mw_nf_decode_response(&s, rsp_ebadf_bytes, MW_NF_RESPONSE_SIZE - 1, NULL),
			 -EBADMSG);
}

static void test_info_field_checks(void **state)
{
	uint8_t in[MW_NF_INFO_SIZE];
	struct mw_nf_info i, bad = info_v4;
	const char *why = NULL;

	memcpy(in, info_v4_bytes, sizeof(in));
	in[7] = 8; /* obs past close */
	assert_int_equal(mw_nf_decode_info(&i, in, sizeof(in), &why), -EBADMSG);
	assert_string_equal(why, "unknown observation");
	memcpy(in, info_v4_bytes, sizeof(in));
	in[73] = 2; /* remote.af = AF_INET, not the wire's 4 */
	assert_int_equal(mw_nf_decode_info(&i, in, sizeof(in), &why), -EBADMSG);
	bad.pvm.af = 2;
	assert_int_equal(mw_nf_encode_info(in, &bad), -EINVAL);
}

static void test_request_check(void **state)
{
	struct mw_nf_request r = { .flags = 0x8 };
	const char *why = NULL;

	assert_int_equal(mw_nf_request_check(&r, &why), -EINVAL);
	assert_string_equal(why, "unknown flag bits");
	r.flags = MW_NF_FLAG_BY_SOCK | MW_NF_FLAG_BY_PEER;
	assert_int_equal(mw_nf_request_check(&r, NULL), -EINVAL);
	r.flags = MW_NF_FLAG_READ; /* MonitorOn as the console sends it */
	assert_int_equal(mw_nf_request_check(&r, NULL), 0);
}

static void test_framer_partial_input(void **state)
{
	uint8_t stream[MW_NF_INFO_SIZE + MW_NF_RESPONSE_SIZE + MW_NF_REQUEST_SIZE];
	size_t n;

	memcpy(stream, info_v4_bytes, MW_NF_INFO_SIZE);
	memcpy(stream + MW_NF_INFO_SIZE, rsp_ebadf_bytes, MW_NF_RESPONSE_SIZE);
	memcpy(stream + MW_NF_INFO_SIZE + MW_NF_RESPONSE_SIZE, req_close_bytes,
	       MW_NF_REQUEST_SIZE);

	assert_int_equal(mw_nf_frame_next(stream, 0), 0);
	assert_int_equal(mw_nf_frame_next(NULL, 0), 0);
	for (n = 1; n < MW_NF_INFO_SIZE; n++)
		assert_int_equal(mw_nf_frame_next(stream, n), 0);
	assert_int_equal(mw_nf_frame_next(stream, MW_NF_INFO_SIZE), MW_NF_INFO_SIZE);
	assert_int_equal(mw_nf_frame_next(stream, sizeof(stream)), MW_NF_INFO_SIZE);
	for (n = 0; n < MW_NF_RESPONSE_SIZE; n++)
		assert_int_equal(mw_nf_frame_next(stream + MW_NF_INFO_SIZE, n), 0);
	assert_int_equal(mw_nf_frame_next(stream + MW_NF_INFO_SIZE, sizeof(stream) - 116),
			 MW_NF_RESPONSE_SIZE);
	assert_int_equal(mw_nf_frame_next(stream + 142, 45), 0);
	assert_int_equal(mw_nf_frame_next(stream + 142, 46), MW_NF_REQUEST_SIZE);

	assert_int_equal(mw_nf_peek_sig(stream, 1), -EAGAIN);
	assert_int_equal(mw_nf_peek_sig(stream, 2), MW_NF_SIG_INFO);
	assert_int_equal(mw_nf_sig_size(MW_NF_SIG_REQUEST), 46);
	assert_int_equal(mw_nf_sig_size(0xD311), -EBADMSG);
}

static void test_framer_unknown_sig(void **state)
{
	uint8_t b[MW_NF_INFO_SIZE];

	memcpy(b, info_v4_bytes, sizeof(b));
	b[1] = 0x11; /* 0xD311: right family, unknown kind */
	assert_int_equal(mw_nf_frame_next(b, 1), 0);
	assert_int_equal(mw_nf_frame_next(b, 2), -EBADMSG);
	b[0] = 0x00; /* not even 0xD3: known after one byte */
	assert_int_equal(mw_nf_frame_next(b, 1), -EBADMSG);
	assert_int_equal(mw_nf_frame_next(b, sizeof(b)), -EBADMSG);
}

static void test_names(void **state)
{
	assert_string_equal(mw_nf_obs_name(MW_NF_OBS_NONE), "none");
	assert_string_equal(mw_nf_obs_name(MW_NF_OBS_ACCEPT), "accept");
	assert_string_equal(mw_nf_obs_name(MW_NF_OBS_CLOSE), "close");
	assert_string_equal(mw_nf_obs_name(8), "unknown");
	assert_string_equal(mw_nf_attr_name(0x0101), "IsOpen");
	assert_string_equal(mw_nf_attr_name(0x1103), "AddrBlock");
	assert_string_equal(mw_nf_attr_name(0x010c), "RcvTimeo");
	assert_null(mw_nf_attr_name(0x0020)); /* python's mismatched GlobalCongctl value */
	/* The shield's attributes: 0x2010 + enum mw_shield_opt, nothing either side. */
	assert_string_equal(mw_nf_attr_name(0x2011), "ShieldFilter");
	assert_string_equal(mw_nf_attr_name(0x2012), "ShieldDeadlineMs");
	assert_string_equal(mw_nf_attr_name(0x201b), "ShieldDelim");
	assert_string_equal(mw_nf_attr_name(0x201c), "ShieldStallMax");
	assert_null(mw_nf_attr_name(0x2010));
	assert_null(mw_nf_attr_name(0x201d));
	assert_true(MW_NF_ATTR_IS_OPEN & MW_NF_ATTR_MITIGATES);
	assert_true(MW_NF_ATTR_ADDR_BLOCK & MW_NF_ATTR_PER_INS);
	assert_int_equal(MW_NF_CONGCTL_CUBIC, 0x92);
}

static void test_be_helpers(void **state)
{
	uint8_t b[8];

	mw_nf_put64(b, 0x0102030405060708ULL);
	assert_memory_equal(b, ((uint8_t[]){ 1, 2, 3, 4, 5, 6, 7, 8 }), 8);
	assert_true(mw_nf_get64(b) == 0x0102030405060708ULL);
	mw_nf_put16(b, 0xD32F);
	assert_int_equal(b[0], 0xD3);
	assert_int_equal(mw_nf_get16(b), 0xD32F);
	mw_nf_put32(b, 0xFFFFFFF7);
	assert_int_equal((int32_t)mw_nf_get32(b), -9);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_info_ipv4_bytes),
		cmocka_unit_test(test_info_ipv6_bytes),
		cmocka_unit_test(test_request_close_bytes),
		cmocka_unit_test(test_request_close_ignores_padding),
		cmocka_unit_test(test_request_addrblock_text_bytes),
		cmocka_unit_test(test_request_addrblock_binary_forms),
		cmocka_unit_test(test_response_status_negative),
		cmocka_unit_test(test_decode_rejects_wrong_sig_and_short),
		cmocka_unit_test(test_info_field_checks),
		cmocka_unit_test(test_request_check),
		cmocka_unit_test(test_framer_partial_input),
		cmocka_unit_test(test_framer_unknown_sig),
		cmocka_unit_test(test_names),
		cmocka_unit_test(test_be_helpers),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
