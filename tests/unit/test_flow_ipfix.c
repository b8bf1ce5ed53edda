/* SPDX-License-Identifier: MIT */
/* test_flow_ipfix.c - flowd/ipfix.c on the wire: header, templates, records, splitting, sequence */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <cmocka.h>

#include "flowd/engine.h"
#include "flowd/ipfix.h"

static uint16_t rd16(const uint8_t *p)
{
	return (uint16_t)(p[0] << 8 | p[1]);
}

static uint32_t rd32(const uint8_t *p)
{
	return (uint32_t)rd16(p) << 16 | rd16(p + 2);
}

static uint64_t rd64(const uint8_t *p)
{
	return (uint64_t)rd32(p) << 32 | rd32(p + 4);
}

/* A collector on a free loopback port; *@text gets "127.0.0.1:port". */
static int collector(char *text, size_t len)
{
	struct sockaddr_in sin = { .sin_family = AF_INET };
	socklen_t sl = sizeof(sin);
	int fd = socket(AF_INET, SOCK_DGRAM, 0);
	struct timeval tv = { 2, 0 };

	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(bind(fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&sin, &sl), 0);
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	snprintf(text, len, "127.0.0.1:%u", ntohs(sin.sin_port));
	return fd;
}

static void stream_v4(struct fl_stream *s, const char *a, const char *b, uint16_t pa, uint16_t pb,
		      uint8_t client)
{
	memset(s, 0, sizeof(*s));
	s->key.a[10] = s->key.a[11] = 0xff;
	s->key.b[10] = s->key.b[11] = 0xff;
	inet_pton(AF_INET, a, s->key.a + 12);
	inet_pton(AF_INET, b, s->key.b + 12);
	s->key.pa = pa;
	s->key.pb = pb;
	s->key.proto = 6;
	s->client = client;
	s->first_us = 1700000000123456ULL;
	s->last_us = 1700000005654321ULL;
	s->pkts[0] = 3;
	s->ip_bytes[0] = 180;
	s->flags[0] = FL_TCP_SYN | FL_TCP_ACK;
	s->pkts[1] = 2;
	s->ip_bytes[1] = 1500;
	s->flags[1] = FL_TCP_ACK;
}

static void test_one_stream_two_records(void **state)
{
	char text[64], want[4];
	int c = collector(text, sizeof(text));
	struct fl_ipfix x;
	struct fl_stream s;
	uint8_t m[2048];
	const uint8_t *rec;
	char err[128];
	ssize_t n;

	(void)state;
	assert_int_equal(fl_ipfix_open(&x, text, 7, 60, err, sizeof(err)), 0);
	/* side b (10.0.0.2:41000) is the client */
	stream_v4(&s, "10.0.0.1", "10.0.0.2", 80, 41000, 1);
	fl_ipfix_stream(&x, &s, 1700000010);
	fl_ipfix_flush(&x);
	n = recv(c, m, sizeof(m), 0);
	assert_true(n > 16);
	assert_int_equal(rd16(m), 10);
	assert_int_equal(rd16(m + 2), n);
	assert_int_equal(rd32(m + 4), 1700000010);
	assert_int_equal(rd32(m + 8), 0); /* no record before this message */
	assert_int_equal(rd32(m + 12), 7);
	/* template set: id 2, templates 256 and 257 of 10 fields each */
	assert_int_equal(rd16(m + 16), 2);
	assert_int_equal(rd16(m + 18), 4 + 2 * (4 + 40));
	assert_int_equal(rd16(m + 20), 256);
	assert_int_equal(rd16(m + 22), 10);
	/* data set of template 256, two records of 46 bytes */
	rec = m + 16 + 4 + 88;
	assert_int_equal(rd16(rec), 256);
	assert_int_equal(rd16(rec + 2), 4 + 2 * 46);
	rec += 4;
	inet_pton(AF_INET, "10.0.0.2", want);
	assert_memory_equal(rec, want, 4); /* client to server first */
	assert_int_equal(rd16(rec + 8), 41000);
	assert_int_equal(rd16(rec + 10), 80);
	assert_int_equal(rec[12], 6);
	assert_int_equal(rec[13], FL_TCP_SYN | FL_TCP_ACK);
	assert_int_equal(rd64(rec + 14), 180);
	assert_int_equal(rd64(rec + 22), 3);
	assert_int_equal(rd64(rec + 30), 1700000000123ULL);
	assert_int_equal(rd64(rec + 38), 1700000005654ULL);
	rec += 46;
	assert_memory_equal(rec + 4, want, 4); /* then server to client */
	assert_int_equal(rd16(rec + 8), 80);
	assert_int_equal(rd64(rec + 14), 1500);
	assert_int_equal(n, 16 + 92 + 4 + 92);
	assert_int_equal(x.records, 2);
	fl_ipfix_close(&x);
	close(c);
}

/* Many streams: messages stay under the MTU, sequence numbers add up, templates once. */
static void test_split_and_sequence(void **state)
{
	char text[64], err[128];
	int c = collector(text, sizeof(text)), i, msgs = 0, templates = 0;
	uint32_t expect_seq = 0;
	struct fl_ipfix x;
	struct fl_stream s;
	uint8_t m[2048];

	(void)state;
	assert_int_equal(fl_ipfix_open(&x, text, 1, 60, err, sizeof(err)), 0);
	for (i = 0; i < 100; i++) {
		stream_v4(&s, "10.0.0.1", "192.0.2.1", (uint16_t)(1000 + i), 443, 0);
		fl_ipfix_stream(&x, &s, 1700000010);
	}
	fl_ipfix_flush(&x);
	while (expect_seq < 200) {
		ssize_t n = recv(c, m, sizeof(m), 0);
		size_t off = 16;
		uint32_t recs = 0;

		assert_true(n > 0 && n <= FL_IPFIX_MSG_MAX);
		assert_int_equal(rd32(m + 8), expect_seq);
		while (off < (size_t)n) {
			uint16_t id = rd16(m + off), len = rd16(m + off + 2);

			assert_true(len >= 4 && off + len <= (size_t)n);
			if (id == 2)
				templates++;
			else
				recs += (len - 4) / 46;
			off += len;
		}
		expect_seq += recs;
		msgs++;
	}
	assert_true(msgs >= 7); /* 200 x 46 bytes do not fit fewer 1400-byte messages */
	assert_int_equal(templates, 1);
	assert_int_equal(x.records, 200);
	fl_ipfix_close(&x);
	close(c);
}

static void test_templates_resent_on_interval(void **state)
{
	char text[64], err[128];
	int c = collector(text, sizeof(text));
	struct fl_ipfix x;
	struct fl_stream s;
	uint8_t m[2048];

	(void)state;
	assert_int_equal(fl_ipfix_open(&x, text, 1, 10, err, sizeof(err)), 0);
	stream_v4(&s, "10.0.0.1", "192.0.2.1", 1000, 443, 0);
	fl_ipfix_stream(&x, &s, 1000);
	fl_ipfix_flush(&x);
	assert_true(recv(c, m, sizeof(m), 0) > 0);
	assert_int_equal(rd16(m + 16), 2);
	fl_ipfix_stream(&x, &s, 1005);
	fl_ipfix_flush(&x);
	assert_true(recv(c, m, sizeof(m), 0) > 0);
	assert_int_equal(rd16(m + 16), 256); /* 5 s later: no templates */
	fl_ipfix_stream(&x, &s, 1010);
	fl_ipfix_flush(&x);
	assert_true(recv(c, m, sizeof(m), 0) > 0);
	assert_int_equal(rd16(m + 16), 2); /* 10 s later: templates again */
	/* A frame stamped far ahead (a capture file), then time as it is: templates again */
	fl_ipfix_stream(&x, &s, 4102444800u);
	fl_ipfix_flush(&x);
	assert_true(recv(c, m, sizeof(m), 0) > 0);
	assert_int_equal(rd16(m + 16), 2);
	fl_ipfix_stream(&x, &s, 1012);
	fl_ipfix_flush(&x);
	assert_true(recv(c, m, sizeof(m), 0) > 0);
	assert_int_equal(rd16(m + 16), 2);
	fl_ipfix_stream(&x, &s, 1013);
	fl_ipfix_flush(&x);
	assert_true(recv(c, m, sizeof(m), 0) > 0);
	assert_int_equal(rd16(m + 16), 256);
	fl_ipfix_close(&x);
	close(c);
}

static void test_bad_collector(void **state)
{
	struct fl_ipfix x;
	char err[128];

	(void)state;
	assert_int_equal(fl_ipfix_open(&x, "not-an-address", 1, 60, err, sizeof(err)), -EINVAL);
	assert_int_equal(x.fd, -1);
	assert_int_equal(fl_ipfix_open(&x, "", 1, 60, err, sizeof(err)), 0);
	assert_int_equal(x.fd, -1); /* export off: streams are ignored */
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_one_stream_two_records),
		cmocka_unit_test(test_split_and_sequence),
		cmocka_unit_test(test_templates_resent_on_interval),
		cmocka_unit_test(test_bad_collector),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
