/* SPDX-License-Identifier: MIT */
/* test_flow_mapi.c - mw-flowd's MAPI handler and function library, read back from the area */
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cmocka.h>

#include "flowd/ftab.h"
#include "flowd/mapi_flow.h"
#include "mapi/include/mwmapi.h"
#include "tests/unit/flow_frames.h"

#define TS0 (1700000000ULL * 1000000)

struct fx {
	struct fl_mapi m;
	struct fl_mapi_flow *flows[1];
	struct fl_mapi_flow *f;
	char sensors[2][16];
	int memfd;
	const uint8_t *area; /* the client's read-only mapping */
};

static int fx_setup(void **state)
{
	struct fx *x = calloc(1, sizeof(*x));

	/* A fixed hash seed: DIST's exact answers below hold for every run (fl_salt_set) */
	fl_salt_set(0x5eed);
	strcpy(x->sensors[0], "eth0");
	strcpy(x->sensors[1], "eth1");
	x->m.listen_fd = -1;
	x->m.sensors = (const char(*)[16])x->sensors;
	x->m.nsensors = 2;
	x->m.flows = x->flows;
	x->m.max_flows = 1;
	x->m.nflows = 1;
	x->m.group_gid = -1;
	x->f = calloc(1, sizeof(*x->f));
	x->f->fd = -1;
	x->f->srv = &x->m;
	x->flows[0] = x->f;
	x->memfd = -1;
	*state = x;
	return 0;
}

static int fx_teardown(void **state)
{
	struct fx *x = *state;

	if (x->area)
		munmap((void *)x->area, MW_MAPI_AREA_SIZE);
	if (x->memfd >= 0)
		close(x->memfd);
	fl_mapi_flow_free(x->f);
	free(x);
	return 0;
}

/* One request; Return: the handler's status (the reply's id is in *@id when not NULL). */
static int fx_req(struct fx *x, uint32_t op, uint32_t func, const char *s, int64_t a, int64_t b,
		  int *id)
{
	struct mw_mapi_req req = { .version = MW_MAPI_VERSION, .op = op, .func = func };
	struct mw_mapi_reply rep = { 0 };
	int memfd = -1, ret;

	req.iarg[0] = a;
	req.iarg[1] = b;
	if (s)
		snprintf(req.sarg, sizeof(req.sarg), "%s", s);
	ret = fl_mapi_handle(&x->m, x->f, &req, &rep, &memfd);
	if (id)
		*id = rep.id;
	if (memfd >= 0) {
		x->memfd = memfd;
		x->area = mmap(NULL, MW_MAPI_AREA_SIZE, PROT_READ, MAP_SHARED, memfd, 0);
		assert_true(x->area != MAP_FAILED);
	}
	return ret;
}

static int fx_apply(struct fx *x, uint32_t func, const char *s, int64_t a, int64_t b)
{
	int id = 0;

	assert_int_equal(fx_req(x, MW_MAPI_APPLY, func, s, a, b, &id), 0);
	return id;
}

static const void *fx_slot(struct fx *x, int fid)
{
	return x->area + sizeof(struct mw_mapi_area) + (size_t)(fid - 1) * MW_MAPI_SLOT;
}

static uint64_t fx_u64(struct fx *x, int fid)
{
	uint64_t v;

	memcpy(&v, fx_slot(x, fid), sizeof(v));
	return v;
}

static void fx_pkt(struct fx *x, int sensor, uint64_t ts, const char *src, const char *dst,
		   uint16_t sp, uint16_t dp, const char *payload)
{
	uint8_t f[512];
	size_t plen = payload ? strlen(payload) : 0;
	size_t n = ff_v4(f, src, dst, 6, sp, dp, FL_TCP_ACK, plen);

	/* The payload is bytes on the wire, not a C string: no NUL goes with it. */
	if (plen)
		memcpy(f + 54, payload, plen); /* NOLINT(bugprone-not-null-terminated-result) */
	fl_mapi_packet(&x->m, sensor, ts, f, n, (uint32_t)n);
}

static void test_filter_then_counters_in_scope(void **state)
{
	struct fx *x = *state;
	int bpf, pkts, bytes;

	assert_int_equal(fx_req(x, MW_MAPI_CREATE, 0, "eth0", 0, 0, NULL), 0);
	bpf = fx_apply(x, MW_MAPI_BPF_FILTER, "tcp port 80", 0, 0);
	pkts = fx_apply(x, MW_MAPI_PKT_COUNTER, NULL, 0, 0);
	bytes = fx_apply(x, MW_MAPI_BYTE_COUNTER, NULL, 0, 0);
	assert_int_equal(bpf, 1);
	assert_int_equal(bytes, 3);
	assert_int_equal(fx_req(x, MW_MAPI_CONNECT, 0, NULL, 0, 0, NULL), 0);
	fx_pkt(x, 0, TS0, "10.0.0.1", "10.0.0.2", 40000, 80, NULL);
	fx_pkt(x, 0, TS0 + 1, "10.0.0.2", "10.0.0.1", 80, 40000, "hello");
	fx_pkt(x, 0, TS0 + 2, "10.0.0.1", "10.0.0.2", 40000, 22, NULL);
	fx_pkt(x, 1, TS0 + 3, "10.0.0.1", "10.0.0.2", 40000, 80, NULL); /* not in scope */
	assert_int_equal(fx_u64(x, bpf), 2);
	assert_int_equal(fx_u64(x, pkts), 2);
	assert_int_equal(fx_u64(x, bytes), 54 + 59);
	assert_int_equal(((const struct mw_mapi_area *)x->area)->ts_us, TS0 + 2);
	/* The client cannot resize the area under mw-flowd: its descriptor is read-only. */
	assert_int_equal(ftruncate(x->memfd, 4096), -1);
	assert_int_equal(errno, EINVAL);
}

static void test_str_search_and_sample(void **state)
{
	struct fx *x = *state;
	int search, after, periodic, prob;
	int i;

	assert_int_equal(fx_req(x, MW_MAPI_CREATE, 0, "eth1, eth0", 0, 0, NULL), 0);
	search = fx_apply(x, MW_MAPI_STR_SEARCH, "GET /", 54, 5);
	after = fx_apply(x, MW_MAPI_PKT_COUNTER, NULL, 0, 0);
	periodic = fx_apply(x, MW_MAPI_SAMPLE, NULL, 3, MAPI_SAMPLE_PERIODIC);
	prob = fx_apply(x, MW_MAPI_SAMPLE, NULL, 50, MAPI_SAMPLE_PROBABILISTIC);
	assert_int_equal(fx_req(x, MW_MAPI_CONNECT, 0, NULL, 0, 0, NULL), 0);
	fx_pkt(x, 1, TS0, "10.0.0.1", "10.0.0.2", 40000, 80, "xGET /index"); /* not at 54 */
	fx_pkt(x, 1, TS0, "10.0.0.1", "10.0.0.2", 40000, 80, "GET");	     /* too short */
	for (i = 0; i < 3000; i++)
		fx_pkt(x, i % 2, TS0 + (uint64_t)i, "10.0.0.1", "10.0.0.2", 40000, 80,
		       "GET /index.html");
	assert_int_equal(fx_u64(x, search), 3000);
	assert_int_equal(fx_u64(x, after), 3000);
	assert_int_equal(fx_u64(x, periodic), 1000);
	assert_in_range(fx_u64(x, prob), 400, 600);
}

static void test_top_threshold_dist(void **state)
{
	struct fx *x = *state;
	const struct mapi_top *top;
	const struct mapi_threshold *th;
	int pkts, t, thr, dist, i;

	assert_int_equal(fx_req(x, MW_MAPI_CREATE, 0, "eth0", 0, 0, NULL), 0);
	pkts = fx_apply(x, MW_MAPI_PKT_COUNTER, NULL, 0, 0);
	t = fx_apply(x, MW_MAPI_TOP, NULL, MAPI_SRC_IP, 2);
	thr = fx_apply(x, MW_MAPI_THRESHOLD, NULL, pkts, 10);
	dist = fx_apply(x, MW_MAPI_DIST, NULL, MAPI_DST_PORT, 0);
	assert_int_equal(fx_req(x, MW_MAPI_CONNECT, 0, NULL, 0, 0, NULL), 0);
	for (i = 0; i < 20; i++)
		fx_pkt(x, 0, TS0 + (uint64_t)i * 1000, i % 4 ? "192.0.2.9" : "10.0.0.1", "10.0.0.2",
		       40000, (uint16_t)(1000 + i % 7), "payload");
	fl_mapi_sync(&x->m); /* TOP is published by the clock */
	top = fx_slot(x, t);
	assert_int_equal(top->n, 2);
	assert_int_equal(top->rows[0].key[12], 192);
	assert_int_equal(top->rows[0].bytes, 15 * 61);
	assert_int_equal(top->rows[0].error, 0);
	assert_int_equal(top->rows[1].bytes, 5 * 61);
	th = fx_slot(x, thr);
	assert_int_equal(th->fired, 1);
	assert_int_equal(th->value, 10);
	assert_int_equal(th->ts_us, TS0 + 9000);
	assert_int_equal(fx_u64(x, dist), 7);
}

/* ANONYMIZE rewrites the frame for the functions after it, never for those before. */
static void test_anonymize(void **state)
{
	struct fx *x = *state;
	const struct mw_mapi_ring *ring;
	const struct mw_mapi_pkt *pkt;
	const struct mapi_top *top;
	struct fl_anon a;
	uint8_t src[4] = { 10, 0, 0, 1 }, dst[4] = { 10, 0, 0, 2 };
	int before, anon, search, bytes, t, buf;
	uint8_t *area;

	assert_int_equal(fx_req(x, MW_MAPI_CREATE, 0, "eth0", 0, 0, NULL), 0);
	before = fx_apply(x, MW_MAPI_STR_SEARCH, "secret", 0, 0);
	anon = fx_apply(x, MW_MAPI_ANONYMIZE, "the key", 1, 0);
	t = fx_apply(x, MW_MAPI_TOP, NULL, MAPI_SRC_IP, 2);
	bytes = fx_apply(x, MW_MAPI_BYTE_COUNTER, NULL, 0, 0);
	buf = fx_apply(x, MW_MAPI_TO_BUFFER, NULL, 0, 0);
	search = fx_apply(x, MW_MAPI_STR_SEARCH, "secret", 0, 0);
	assert_int_equal(fx_req(x, MW_MAPI_CONNECT, 0, NULL, 0, 0, NULL), 0);
	fx_pkt(x, 0, TS0, "10.0.0.1", "10.0.0.2", 40000, 80, "the secret payload");
	fl_mapi_sync(&x->m);
	fl_anon_init(&a, "the key", 7);
	fl_anon_addr(&a, src, 32);
	fl_anon_addr(&a, dst, 32);
	assert_int_equal(fx_u64(x, before), 1);
	assert_int_equal(fx_u64(x, anon), 1);
	assert_int_equal(fx_u64(x, bytes), 54 + 18); /* the wire length stays */
	assert_int_equal(fx_u64(x, buf), 1);
	assert_int_equal(fx_u64(x, search), 0); /* the payload is gone */
	top = fx_slot(x, t);
	assert_int_equal(top->n, 1);
	assert_memory_equal(top->rows[0].key + 12, src, 4); /* TOP keys on the new address */
	ring = (const struct mw_mapi_ring *)(x->area + MW_MAPI_RING_OFFSET);
	pkt = (const struct mw_mapi_pkt *)(ring + 1) + ring->head % MW_MAPI_RING_SLOTS;
	assert_int_equal(ring->head, 1);
	assert_int_equal(pkt->caplen, 54);
	assert_int_equal(pkt->wirelen, 54 + 18);
	assert_memory_equal(pkt->data + 26, src, 4);
	assert_memory_equal(pkt->data + 30, dst, 4);
	assert_int_equal(pkt->data[36] << 8 | pkt->data[37], 80);
	/* Bad arguments: no key, strip not 0/1 (checked as if before connect). */
	area = x->f->area;
	x->f->area = NULL;
	assert_int_equal(fx_req(x, MW_MAPI_APPLY, MW_MAPI_ANONYMIZE, "", 1, 0, NULL), -EINVAL);
	assert_int_equal(fx_req(x, MW_MAPI_APPLY, MW_MAPI_ANONYMIZE, "k", 2, 0, NULL), -EINVAL);
	x->f->area = area;
}

static void fx_syn(struct fx *x, uint64_t ts, const char *src, const char *dst, uint16_t dp,
		   uint8_t flags)
{
	uint8_t f[128];
	size_t n = ff_v4(f, src, dst, 6, 40000, dp, flags, 0);

	fl_mapi_packet(&x->m, 0, ts, f, n, (uint32_t)n);
}

/* FANOUT and PORTSCAN: the scanner and the spreader flagged, a busy normal client not. */
static void test_anomalies(void **state)
{
	struct fx *x = *state;
	const struct mapi_anomaly *fo, *ps;
	char dst[32];
	int fan, scan, i;
	uint64_t t = TS0 + 3 * 1000000; /* inside the window [TS0, TS0 + 10 s) */

	assert_int_equal(fx_req(x, MW_MAPI_CREATE, 0, "eth0", 0, 0, NULL), 0);
	fan = fx_apply(x, MW_MAPI_FANOUT, NULL, 40, 10);
	scan = fx_apply(x, MW_MAPI_PORTSCAN, NULL, 40, 10);
	assert_int_equal(fx_req(x, MW_MAPI_CONNECT, 0, NULL, 0, 0, NULL), 0);
	for (i = 0; i < 60; i++) {
		snprintf(dst, sizeof(dst), "192.0.2.%d", i + 1);
		fx_syn(x, t, "10.0.0.9", dst, 445, FL_TCP_SYN);			     /* fan-out */
		fx_syn(x, t, "10.0.0.8", "10.0.0.2", (uint16_t)(1 + i), FL_TCP_SYN); /* scan */
		fx_syn(x, t, "10.0.0.2", "10.0.0.8", (uint16_t)(1 + i),
		       FL_TCP_SYN | FL_TCP_ACK); /* answers are not attempts */
		if (i < 30)
			fx_syn(x, t, "10.0.0.7", "10.0.0.2", 80, FL_TCP_SYN); /* normal client */
		fx_syn(x, t, "10.0.0.7", "10.0.0.2", 80, FL_TCP_ACK);
	}
	fo = fx_slot(x, fan);
	ps = fx_slot(x, scan);
	assert_int_equal(fo->window_start_us, TS0);
	assert_int_equal(fo->n_cur, 1);
	assert_int_equal(fo->cur[0].addr[15], 9);
	assert_int_equal(fo->cur[0].attempts, 60);
	assert_in_range(fo->cur[0].distinct, 52, 60);
	assert_int_equal(ps->n_cur, 1);
	assert_int_equal(ps->cur[0].addr[15], 8);
	assert_in_range(ps->cur[0].distinct, 52, 60);
	assert_int_equal(ps->flagged, 1);
	assert_int_equal(ps->n_last, 0);
	/* Closed ports: RST+ACK with sequence 0 to the scanner counts; a RST with another
	 * sequence number (an abort), without ACK, or to a source with no attempts does not. */
	for (i = 0; i < 20; i++)
		fx_syn(x, t, "10.0.0.2", "10.0.0.8", 1, FL_TCP_RST | FL_TCP_ACK);
	{
		uint8_t f[128];
		size_t n = ff_v4(f, "10.0.0.2", "10.0.0.8", 6, 1, 40000, FL_TCP_RST | FL_TCP_ACK, 0);

		f[41] = 7; /* sequence number 7 */
		fl_mapi_packet(&x->m, 0, t, f, n, (uint32_t)n);
	}
	fx_syn(x, t, "10.0.0.2", "10.0.0.8", 1, FL_TCP_RST);
	fx_syn(x, t, "10.0.0.2", "10.0.0.99", 1, FL_TCP_RST | FL_TCP_ACK);
	assert_int_equal(ps->cur[0].rejected, 20);
	assert_int_equal(ps->cur[0].attempts, 60);
	assert_int_equal(fo->cur[0].rejected, 0);
	assert_int_equal(ps->n_cur, 1);
	/* The next window: the flags move to last, the new window starts clean. */
	fx_syn(x, TS0 + 12 * 1000000, "10.0.0.7", "10.0.0.2", 80, FL_TCP_SYN);
	assert_int_equal(fo->window_start_us, TS0 + 10 * 1000000);
	assert_int_equal(fo->n_cur, 0);
	assert_int_equal(fo->n_last, 1);
	assert_int_equal(fo->last[0].addr[15], 9);
	assert_int_equal(ps->last[0].addr[15], 8);
	assert_int_equal(fo->dropped, 0);
	/* bad arguments (checked as before connect) */
	{
		uint8_t *area = x->f->area;

		x->f->area = NULL;
		assert_int_equal(fx_req(x, MW_MAPI_APPLY, MW_MAPI_FANOUT, NULL, 0, 10, NULL),
				 -EINVAL);
		assert_int_equal(fx_req(x, MW_MAPI_APPLY, MW_MAPI_PORTSCAN, NULL, 5, 0, NULL),
				 -EINVAL);
		x->f->area = area;
	}
}

/* flowd.mapi_sensor_groups: a restricted client's scope must match its groups' patterns. */
static void test_sensor_acl(void **state)
{
	static const char entries[3][256] = { "root:eth1", "root:eth0 , wlan*",
					      "nosuchgroup:eth0" };
	static const char bad[2][256] = { "root", "root: ," };
	struct fx *x = *state;
	struct mw_mapi_reply rep = { 0 };
	struct mw_mapi_req req = { .version = MW_MAPI_VERSION, .op = MW_MAPI_CREATE };
	int memfd = -1;
	char err[256];

	assert_int_equal(fl_mapi_set_acl(&x->m, entries, 2, err, sizeof(err)), 0);
	assert_int_equal(x->m.nacl, 2);
	assert_int_equal(x->m.acl[0].gid, 0);
	assert_string_equal(x->m.acl[1].patterns, "eth0 , wlan*");
	assert_int_equal(fl_mapi_set_acl(&x->m, entries, 3, err, sizeof(err)), -ENOENT);
	assert_string_equal(err, "flowd.mapi_sensor_groups: no group \"nosuchgroup\"");
	assert_int_equal(fl_mapi_set_acl(&x->m, bad, 1, err, sizeof(err)), -EINVAL);
	assert_int_equal(fl_mapi_set_acl(&x->m, bad + 1, 1, err, sizeof(err)), -EINVAL);
	assert_int_equal(fl_mapi_set_acl(&x->m, entries, 2, err, sizeof(err)), 0);
	/* A client in the group of entry 0 only: eth1 yes, eth0 (entry 1's) no. */
	x->f->restricted = true;
	x->f->acl = 1;
	x->f->uid = 4242;
	snprintf(req.sarg, sizeof(req.sarg), "eth1,eth0");
	assert_int_equal(fl_mapi_handle(&x->m, x->f, &req, &rep, &memfd), -EACCES);
	assert_string_equal(
		rep.msg, "sensor \"eth0\" is not allowed to uid 4242 (flowd.mapi_sensor_groups)");
	assert_false(x->f->created);
	/* An unknown sensor is still ENODEV, whatever the permissions. */
	snprintf(req.sarg, sizeof(req.sarg), "eth7");
	assert_int_equal(fl_mapi_handle(&x->m, x->f, &req, &rep, &memfd), -ENODEV);
	/* In both groups: the patterns of both apply. */
	x->f->acl = 3;
	snprintf(req.sarg, sizeof(req.sarg), "eth1,eth0");
	assert_int_equal(fl_mapi_handle(&x->m, x->f, &req, &rep, &memfd), 0);
	assert_int_equal(x->f->scope, 3);
}

static void test_refusals(void **state)
{
	struct fx *x = *state;
	int pkts;

	assert_int_equal(fx_req(x, MW_MAPI_APPLY, MW_MAPI_PKT_COUNTER, NULL, 0, 0, NULL),
			 -ENOTCONN);
	assert_int_equal(fx_req(x, MW_MAPI_CREATE, 0, "eth0,wlan9", 0, 0, NULL), -ENODEV);
	assert_int_equal(fx_req(x, MW_MAPI_CREATE, 0, " , ", 0, 0, NULL), -ENODEV);
	assert_int_equal(fx_req(x, MW_MAPI_CREATE, 0, "eth0", 0, 0, NULL), 0);
	assert_int_equal(fx_req(x, MW_MAPI_CREATE, 0, "eth0", 0, 0, NULL), -EALREADY);
	assert_int_equal(fx_req(x, MW_MAPI_APPLY, 99, NULL, 0, 0, NULL), -EINVAL);
	assert_int_equal(fx_req(x, MW_MAPI_APPLY, MW_MAPI_BPF_FILTER, "tcp port", 0, 0, NULL),
			 -EINVAL);
	assert_int_equal(fx_req(x, MW_MAPI_APPLY, MW_MAPI_TOP, NULL, 9, 3, NULL), -EINVAL);
	assert_int_equal(fx_req(x, MW_MAPI_APPLY, MW_MAPI_TOP, NULL, 1, 33, NULL), -EINVAL);
	/* THRESHOLD needs a counter applied before it */
	assert_int_equal(fx_req(x, MW_MAPI_APPLY, MW_MAPI_THRESHOLD, NULL, 1, 5, NULL), -EINVAL);
	assert_int_equal(fx_req(x, MW_MAPI_APPLY, MW_MAPI_SAMPLE, NULL, 101, 1, NULL), -EINVAL);
	assert_int_equal(fx_req(x, MW_MAPI_APPLY, MW_MAPI_STR_SEARCH, "", 0, 0, NULL), -EINVAL);
	pkts = fx_apply(x, MW_MAPI_PKT_COUNTER, NULL, 0, 0);
	assert_int_equal(pkts, 1);
	/* The costly functions are bounded per flow: the loop is every sensor's. */
	assert_int_equal(fx_apply(x, MW_MAPI_ANONYMIZE, "k", 0, 0), 2);
	assert_int_equal(fx_req(x, MW_MAPI_APPLY, MW_MAPI_ANONYMIZE, "k", 0, 0, NULL), -EINVAL);
	for (int i = 0; i < 4; i++)
		assert_int_equal(fx_apply(x, MW_MAPI_BPF_FILTER, "tcp", 0, 0), 3 + i);
	assert_int_equal(fx_req(x, MW_MAPI_APPLY, MW_MAPI_BPF_FILTER, "tcp", 0, 0, NULL), -EINVAL);
	assert_int_equal(fx_apply(x, MW_MAPI_PORTSCAN, NULL, 10, 60), 7);
	assert_int_equal(fx_req(x, MW_MAPI_APPLY, MW_MAPI_PORTSCAN, NULL, 10, 60, NULL), -EINVAL);
	assert_int_equal(fx_req(x, MW_MAPI_CONNECT, 0, NULL, 0, 0, NULL), 0);
	assert_int_equal(fx_req(x, MW_MAPI_APPLY, MW_MAPI_PKT_COUNTER, NULL, 0, 0, NULL),
			 -EALREADY);
	assert_int_equal(fx_req(x, MW_MAPI_CONNECT, 0, NULL, 0, 0, NULL), -EALREADY);
	assert_int_equal(fx_req(x, 77, 0, NULL, 0, 0, NULL), -EINVAL);
}

/* The flow and client tables: fixed at open, refusals counted, slots and entries reused. */
/* One request to flow @f of @m; Return: the handler's status, the memfd of CONNECT in *@memfd. */
static int mreq(struct fl_mapi *m, struct fl_mapi_flow *f, uint32_t op, uint32_t func,
		const char *sarg, int *memfd)
{
	struct mw_mapi_req req = { .version = MW_MAPI_VERSION, .op = op, .func = func };
	struct mw_mapi_reply rep = { 0 };

	if (sarg)
		snprintf(req.sarg, sizeof(req.sarg), "%s", sarg);
	return fl_mapi_handle(m, f, &req, &rep, memfd);
}

/* In a child of another user (nobody): reopen @fd for writing; 0 or the errno. */
static int reopen_rw_as_nobody(int fd)
{
	char path[64];
	int status, rw;
	pid_t pid = fork();

	assert_true(pid >= 0);
	if (pid == 0) {
		snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
		if (setgid(65534) || setuid(65534))
			_exit(100);
		rw = open(path, O_RDWR);
		_exit(rw >= 0 ? 0 : errno & 0x7f);
	}
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	return WEXITSTATUS(status);
}

/* Frames go to the connected flows whose scope has their sensor: none left, none run. */
static void test_dispatch_connected_only(void **state)
{
	char sensors[2][16] = { "eth0", "eth1" };
	struct fl_mapi_flow *flows[3] = { NULL }, pool[3], *f[3];
	struct fl_mapi_client clients[1];
	struct fl_mapi m = { .flows = flows, .pool = pool, .clients = clients, .max_flows = 3,
			     .max_clients = 1, .client_flows = 3, .group_gid = -1,
			     .listen_fd = -1, .sensors = (const char(*)[16])sensors,
			     .nsensors = 2 };
	const char *why = NULL;
	const uint8_t *area;
	uint8_t frame[128];
	size_t n = ff_v4(frame, "10.0.0.1", "10.0.0.2", 6, 40000, 80, FL_TCP_ACK, 0);
	uint64_t pkts;
	struct stat st;
	int i, memfd = -1, unused = -1;

	(void)state;
	memset(clients, 0, sizeof(clients));
	for (i = 0; i < 3; i++) {
		assert_int_equal(fl_mapi_take(&m, 100, 0, &f[i], &why), 0);
		f[i]->fd = -1;
	}
	assert_int_equal(mreq(&m, f[0], MW_MAPI_CREATE, 0, "eth0", &unused), 0); /* never connected */
	assert_int_equal(mreq(&m, f[2], MW_MAPI_CREATE, 0, "eth1", &unused), 0);
	assert_int_equal(mreq(&m, f[2], MW_MAPI_APPLY, MW_MAPI_PKT_COUNTER, NULL, &unused), 0);
	assert_int_equal(m.nscan, 0);
	assert_int_equal(mreq(&m, f[2], MW_MAPI_CONNECT, 0, NULL, &memfd), 0);
	assert_true(memfd >= 0);
	area = mmap(NULL, MW_MAPI_AREA_SIZE, PROT_READ, MAP_SHARED, memfd, 0);
	assert_true(area != MAP_FAILED);
	/* The client reads its area and nothing more: no shared writable mapping, no
	 * write, no hole punched under mw-flowd's mapping, no reopening it for writing. */
	assert_true(mmap(NULL, MW_MAPI_AREA_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, memfd, 0) ==
		    MAP_FAILED);
	assert_int_equal(errno, EACCES);
	assert_int_equal(pwrite(memfd, "x", 1, 0), -1);
	assert_int_equal(fallocate(memfd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 0, 4096), -1);
	assert_int_equal(ftruncate(memfd, 0), -1);
	if (geteuid() == 0)
		assert_int_equal(reopen_rw_as_nobody(memfd), EACCES);
	assert_int_equal(m.nscan, 3);
	assert_int_equal(m.scope_any, 2);
	assert_int_equal(m.nf_scope_any, 0);
	fl_mapi_packet(&m, 0, TS0, frame, n, (uint32_t)n);
	fl_mapi_packet(&m, 1, TS0, frame, n, (uint32_t)n);
	fl_mapi_packet(&m, 1, TS0 + 1, frame, n, (uint32_t)n);
	memcpy(&pkts, area + sizeof(struct mw_mapi_area), sizeof(pkts));
	assert_int_equal(pkts, 2);
	assert_int_equal(fstat(memfd, &st), 0);
	assert_true(st.st_blocks > 0);
	fl_mapi_put(&m, f[2]);
	assert_int_equal(m.nscan, 0);
	assert_int_equal(m.scope_any, 0);
	/* Its pages are freed although the client still holds the area (it reads zeros),
	 * by a thread of mw-flowd's: within 10 s. */
	for (i = 0; i < 1000 && !fstat(memfd, &st) && st.st_blocks; i++)
		usleep(10 * 1000);
	assert_int_equal(st.st_blocks, 0);
	assert_true(fl_mapi_punch_wait(10000));
	fl_mapi_packet(&m, 1, TS0 + 2, frame, n, (uint32_t)n); /* nobody: a test, no scan */
	munmap((void *)area, MW_MAPI_AREA_SIZE);
	close(memfd);
	fl_mapi_put(&m, f[0]);
	fl_mapi_put(&m, f[1]);
	assert_int_equal(m.nflows, 0);
}

/*
 * A sensor closes and its slot goes to the next interface: a flow over the closed
 * one (a restricted user's, allowed eth0 only) sees nothing of the new one.
 */
static void test_sensor_gone(void **state)
{
	static const char entries[1][256] = { "root:eth0" };
	char sensors[2][16] = { "eth0", "eth1" };
	struct fl_mapi_flow *flows[1] = { NULL }, pool[1], *f;
	struct fl_mapi_client clients[1];
	struct fl_mapi m = { .flows = flows, .pool = pool, .clients = clients, .max_flows = 1,
			     .max_clients = 1, .client_flows = 1, .group_gid = -1,
			     .listen_fd = -1, .sensors = (const char(*)[16])sensors,
			     .nsensors = 2 };
	const char *why = NULL;
	const uint8_t *area;
	uint8_t frame[128];
	size_t n = ff_v4(frame, "10.0.0.1", "10.0.0.2", 6, 40000, 80, FL_TCP_ACK, 0);
	uint64_t pkts;
	int memfd = -1, unused = -1;
	char err[256];

	(void)state;
	memset(clients, 0, sizeof(clients));
	assert_int_equal(fl_mapi_set_acl(&m, entries, 1, err, sizeof(err)), 0);
	assert_int_equal(fl_mapi_take(&m, 100, 4242, &f, &why), 0);
	f->fd = -1;
	f->restricted = true;
	f->acl = 1;
	f->uid = 4242;
	assert_int_equal(mreq(&m, f, MW_MAPI_CREATE, 0, "eth1", &unused), -EACCES);
	assert_int_equal(mreq(&m, f, MW_MAPI_CREATE, 0, "eth0", &unused), 0);
	assert_int_equal(mreq(&m, f, MW_MAPI_APPLY, MW_MAPI_PKT_COUNTER, NULL, &unused), 0);
	assert_int_equal(mreq(&m, f, MW_MAPI_CONNECT, 0, NULL, &memfd), 0);
	area = mmap(NULL, MW_MAPI_AREA_SIZE, PROT_READ, MAP_SHARED, memfd, 0);
	assert_true(area != MAP_FAILED);
	fl_mapi_packet(&m, 0, TS0, frame, n, (uint32_t)n);
	/* eth0 goes; the next interface, one the user may not watch, gets its slot. */
	fl_mapi_sensor_gone(&m, 0);
	snprintf(sensors[0], sizeof(sensors[0]), "secret0");
	fl_mapi_packet(&m, 0, TS0 + 1, frame, n, (uint32_t)n);
	fl_mapi_packet(&m, 0, TS0 + 2, frame, n, (uint32_t)n);
	memcpy(&pkts, area + sizeof(struct mw_mapi_area), sizeof(pkts));
	assert_int_equal(pkts, 1);
	assert_int_equal(f->scope, 0);
	assert_int_equal(m.scope_any, 0);
	fl_mapi_sensor_gone(&m, 7); /* no such slot: nothing */
	fl_mapi_sensor_gone(&m, -1);
	munmap((void *)area, MW_MAPI_AREA_SIZE);
	close(memfd);
	fl_mapi_put(&m, f);
}

/*
 * A filter's host and network names are not looked up (a lookup that hangs would
 * stop mw-flowd's loop): "host localhost" (/etc/hosts) is refused with the reason,
 * an address is compiled, and names work again for the rest of the process.
 */
static void test_filter_names_not_resolved(void **state)
{
	struct fx *x = *state;
	struct mw_mapi_req req = { .version = MW_MAPI_VERSION, .op = MW_MAPI_CREATE };
	struct mw_mapi_reply rep = { 0 };
	struct addrinfo *ai = NULL;
	int memfd = -1;

	snprintf(req.sarg, sizeof(req.sarg), "eth0");
	assert_int_equal(fl_mapi_handle(&x->m, x->f, &req, &rep, &memfd), 0);
	req.op = MW_MAPI_APPLY;
	req.func = MW_MAPI_BPF_FILTER;
	snprintf(req.sarg, sizeof(req.sarg), "tcp and host localhost");
	assert_int_equal(fl_mapi_handle(&x->m, x->f, &req, &rep, &memfd), -EINVAL);
	assert_non_null(strstr(rep.msg, "give an address"));
	snprintf(req.sarg, sizeof(req.sarg), "gateway localhost");
	assert_int_equal(fl_mapi_handle(&x->m, x->f, &req, &rep, &memfd), -EINVAL);
	snprintf(req.sarg, sizeof(req.sarg), "tcp and host 127.0.0.1 or host ::1");
	assert_int_equal(fl_mapi_handle(&x->m, x->f, &req, &rep, &memfd), 0);
	/* Outside a compile the process resolves as before. */
	assert_int_equal(getaddrinfo("localhost", NULL, NULL, &ai), 0);
	freeaddrinfo(ai);
}

/* The tables' capacities, for root's processes (no reserve, no per-user bound). */
static void test_tables(void **state)
{
	struct fl_mapi_flow *flows[3] = { NULL }, pool[3], *f[4];
	struct fl_mapi_client clients[2];
	struct fl_mapi m = { .flows = flows, .pool = pool, .clients = clients, .max_flows = 3,
			     .max_clients = 2, .client_flows = 2 };
	const char *why = NULL;

	(void)state;
	memset(clients, 0, sizeof(clients));
	assert_int_equal(fl_mapi_take(&m, 100, 0, &f[0], &why), 0);
	assert_int_equal(fl_mapi_take(&m, 100, 0, &f[1], &why), 0);
	assert_ptr_not_equal(f[0], f[1]);
	assert_int_equal(m.nclients, 1);
	assert_int_equal(fl_mapi_take(&m, 100, 0, &f[2], &why), -ENOSPC);
	assert_string_equal(why, "too many flows for this process (flowd.mapi_client_flows)");
	assert_int_equal(m.client_flow_drops, 1);
	assert_int_equal(fl_mapi_take(&m, 200, 0, &f[2], &why), 0);
	assert_int_equal(fl_mapi_take(&m, 300, 0, &f[3], &why), -ENOSPC);
	assert_string_equal(why, "flow table full (flowd.mapi_max_flows)");
	assert_int_equal(m.flow_drops, 1);
	fl_mapi_put(&m, f[0]);
	assert_int_equal(fl_mapi_take(&m, 300, 0, &f[3], &why), -EUSERS);
	assert_string_equal(why, "client table full (flowd.mapi_max_clients)");
	assert_int_equal(m.client_drops, 1);
	fl_mapi_put(&m, f[2]); /* pid 200's last flow: its entry is free */
	assert_int_equal(m.nclients, 1);
	assert_int_equal(fl_mapi_take(&m, 300, 0, &f[3], &why), 0);
	assert_true(f[3] >= pool && f[3] < pool + 3);
	assert_ptr_equal(f[3]->srv, &m);
	assert_int_equal(m.nflows, 2);
	assert_int_equal(m.nclients, 2);
	fl_mapi_put(&m, f[1]);
	fl_mapi_put(&m, f[3]);
	assert_int_equal(m.nflows, 0);
	assert_int_equal(m.nclients, 0);
}

/*
 * Users other than root: the per-process bound holds over all of a user's processes
 * (forking buys nothing), and the last entry of each table is root's.
 */
static void test_user_limits(void **state)
{
	struct fl_mapi_flow *flows[6] = { NULL }, pool[6], *a1, *a2, *b, *c1, *c2, *r1, *r2, *x;
	struct fl_mapi_client clients[4];
	struct fl_mapi m = { .flows = flows, .pool = pool, .clients = clients, .max_flows = 6,
			     .max_clients = 4, .client_flows = 2 };
	const char *why = NULL;

	(void)state;
	memset(clients, 0, sizeof(clients));
	/* User 1000: two processes, one flow each; a third process is refused. */
	assert_int_equal(fl_mapi_take(&m, 100, 1000, &a1, &why), 0);
	assert_int_equal(fl_mapi_take(&m, 101, 1000, &b, &why), 0);
	assert_int_equal(fl_mapi_take(&m, 102, 1000, &x, &why), -ENOSPC);
	assert_string_equal(why, "too many flows for this user (flowd.mapi_client_flows)");
	assert_int_equal(m.client_flow_drops, 1);
	/* User 2000 gets the third client entry; the fourth is root's. */
	assert_int_equal(fl_mapi_take(&m, 200, 2000, &c1, &why), 0);
	assert_int_equal(fl_mapi_take(&m, 201, 2000, &x, &why), -EUSERS);
	assert_string_equal(why, "client table full: its last entry is root's (flowd.mapi_max_clients)");
	assert_int_equal(fl_mapi_take(&m, 1, 0, &r1, &why), 0);
	assert_int_equal(m.nclients, 4);
	/* Flows: 5 of 6 go to users, the last to root. */
	fl_mapi_put(&m, b);
	assert_int_equal(fl_mapi_take(&m, 100, 1000, &a2, &why), 0);
	assert_int_equal(m.nflows, 4);
	assert_int_equal(fl_mapi_take(&m, 200, 2000, &c2, &why), 0);
	assert_int_equal(m.nflows, 5);
	assert_int_equal(fl_mapi_take(&m, 200, 2000, &x, &why), -ENOSPC); /* its process bound */
	fl_mapi_put(&m, c2);
	assert_int_equal(fl_mapi_take(&m, 1, 0, &r2, &why), 0);
	assert_int_equal(fl_mapi_take(&m, 200, 2000, &x, &why), -ENOSPC);
	assert_string_equal(why, "flow table full: its last entry is root's (flowd.mapi_max_flows)");
	assert_int_equal(m.flow_drops, 1);
	assert_int_equal(m.nflows, 5);
	fl_mapi_put(&m, a1);
	fl_mapi_put(&m, a2);
	fl_mapi_put(&m, c1);
	fl_mapi_put(&m, r1);
	fl_mapi_put(&m, r2);
	assert_int_equal(m.nflows, 0);
	assert_int_equal(m.nclients, 0);
}

/*
 * A process passed its flow socket on and exited, and its pid came back as another
 * user's (root's mw-top): that one gets an entry of its own, neither refused by the
 * old process's bound nor charged to its user.
 */
static void test_pid_reused_by_another_user(void **state)
{
	struct fl_mapi_flow *flows[4] = { NULL }, pool[4], *a, *b, *r;
	struct fl_mapi_client clients[4];
	struct fl_mapi m = { .flows = flows,
			     .pool = pool,
			     .clients = clients,
			     .max_flows = 4,
			     .max_clients = 4,
			     .client_flows = 2 };
	const char *why = NULL;

	(void)state;
	memset(clients, 0, sizeof(clients));
	assert_int_equal(fl_mapi_take(&m, 300, 1000, &a, &why), 0);
	assert_int_equal(fl_mapi_take(&m, 300, 1000, &b, &why), 0);
	assert_int_equal(fl_mapi_take(&m, 300, 0, &r, &why), 0);
	assert_int_not_equal(r->client, a->client);
	assert_int_equal(clients[r->client].acct, 0);
	assert_int_equal(clients[a->client].flows, 2);
	assert_int_equal(clients[r->client].flows, 1);
	fl_mapi_put(&m, a);
	fl_mapi_put(&m, b);
	fl_mapi_put(&m, r);
	assert_int_equal(m.nclients, 0);
}

/* A user's flows together hold the costly functions of two flows; root's are not counted. */
static void test_costly_per_user(void **state)
{
	static const char sensors[2][16] = { "eth0", "eth1" };
	struct fl_mapi_flow *flows[8] = { NULL }, pool[8], *f[4], *r;
	struct fl_mapi_client clients[4];
	struct fl_mapi m = { .flows = flows,
			     .pool = pool,
			     .clients = clients,
			     .max_flows = 8,
			     .max_clients = 4,
			     .client_flows = 4,
			     .group_gid = -1,
			     .listen_fd = -1,
			     .sensors = (const char(*)[16])sensors,
			     .nsensors = 2 };
	const char *why = NULL;
	int i, unused = -1;

	(void)state;
	memset(clients, 0, sizeof(clients));
	for (i = 0; i < 3; i++) {
		assert_int_equal(fl_mapi_take(&m, 100, 1000, &f[i], &why), 0);
		f[i]->fd = -1;
		f[i]->uid = 1000;
		assert_int_equal(mreq(&m, f[i], MW_MAPI_CREATE, 0, "eth0", &unused), 0);
	}
	assert_int_equal(mreq(&m, f[0], MW_MAPI_APPLY, MW_MAPI_ANONYMIZE, "key", &unused), 0);
	assert_int_equal(mreq(&m, f[1], MW_MAPI_APPLY, MW_MAPI_ANONYMIZE, "key", &unused), 0);
	assert_int_equal(mreq(&m, f[2], MW_MAPI_APPLY, MW_MAPI_ANONYMIZE, "key", &unused), -EUSERS);
	for (i = 0; i < 8; i++)
		assert_int_equal(
			mreq(&m, f[i % 2], MW_MAPI_APPLY, MW_MAPI_STR_SEARCH, "x", &unused), 0);
	assert_int_equal(mreq(&m, f[2], MW_MAPI_APPLY, MW_MAPI_STR_SEARCH, "x", &unused), -EUSERS);
	/* Root's flow is not bound by the user's, nor counted in it. */
	assert_int_equal(fl_mapi_take(&m, 1, 0, &r, &why), 0);
	r->fd = -1;
	assert_int_equal(mreq(&m, r, MW_MAPI_CREATE, 0, "eth0", &unused), 0);
	assert_int_equal(mreq(&m, r, MW_MAPI_APPLY, MW_MAPI_ANONYMIZE, "key", &unused), 0);
	/* A flow of the user's that ends gives its share back. */
	fl_mapi_put(&m, f[0]);
	assert_int_equal(mreq(&m, f[2], MW_MAPI_APPLY, MW_MAPI_ANONYMIZE, "key", &unused), 0);
	fl_mapi_put(&m, f[1]);
	fl_mapi_put(&m, f[2]);
	fl_mapi_put(&m, r);
	assert_int_equal(m.nflows, 0);
}

/* A user's processes take a quarter of the client table: one flow each cannot fill it. */
static void test_user_processes(void **state)
{
	struct fl_mapi_flow *flows[8] = { NULL }, pool[8], *f[8];
	struct fl_mapi_client clients[8];
	struct fl_mapi m = { .flows = flows,
			     .pool = pool,
			     .clients = clients,
			     .max_flows = 8,
			     .max_clients = 8,
			     .client_flows = 8 };
	const char *why = NULL;
	int i;

	(void)state;
	memset(clients, 0, sizeof(clients));
	assert_int_equal(fl_mapi_take(&m, 100, 1000, &f[0], &why), 0);
	assert_int_equal(fl_mapi_take(&m, 101, 1000, &f[1], &why), 0);
	assert_int_equal(fl_mapi_take(&m, 102, 1000, &f[2], &why), -EUSERS);
	assert_string_equal(
		why, "too many processes of this user (a quarter of flowd.mapi_max_clients)");
	assert_int_equal(fl_mapi_take(&m, 101, 1000, &f[2], &why), 0); /* its processes: more */
	assert_int_equal(fl_mapi_take(&m, 200, 2000, &f[3], &why), 0); /* another user: in */
	assert_int_equal(fl_mapi_take(&m, 1, 0, &f[4], &why), 0);
	assert_int_equal(fl_mapi_take(&m, 2, 0, &f[5], &why), 0);
	assert_int_equal(fl_mapi_take(&m, 3, 0, &f[6], &why), 0); /* root: no such bound */
	assert_int_equal(m.client_drops, 1);
	for (i = 0; i < 7; i++)
		fl_mapi_put(&m, f[i]);
	assert_int_equal(m.nclients, 0);
}

/*
 * A user's subordinate uids (a rootless container's processes) are that user:
 * they share its quarter of the client table and its flows, not one share each.
 */
static void test_subuid_one_user(void **state)
{
	struct fl_mapi_flow *flows[8] = { NULL }, pool[8], *f[8];
	struct fl_mapi_client clients[8];
	struct mw_subuid ranges[2] = {
		{ .start = 100000, .count = 65536, .acct = 100000, .owner = "alice" },
		{ .start = 300000, .count = 10, .acct = 100000, .owner = "alice" },
	};
	struct fl_mapi m = { .flows = flows,
			     .pool = pool,
			     .clients = clients,
			     .max_flows = 8,
			     .max_clients = 8,
			     .client_flows = 3,
			     .subuids = { .r = ranges, .n = 2 } };
	const char *why = NULL;
	int i;

	(void)state;
	memset(clients, 0, sizeof(clients));
	assert_int_equal(fl_mapi_take(&m, 100, 100000, &f[0], &why), 0);
	assert_int_equal(fl_mapi_take(&m, 101, 165535, &f[1], &why), 0);
	/* A third process under another of alice's uids, in her second range: hers too. */
	assert_int_equal(fl_mapi_take(&m, 102, 300005, &f[2], &why), -EUSERS);
	assert_string_equal(
		why, "too many processes of this user (a quarter of flowd.mapi_max_clients)");
	/* Flows: her bound is over all her uids' processes. */
	assert_int_equal(fl_mapi_take(&m, 101, 165535, &f[2], &why), 0);
	assert_int_equal(fl_mapi_take(&m, 100, 100000, &f[3], &why), -ENOSPC);
	assert_string_equal(why, "too many flows for this user (flowd.mapi_client_flows)");
	/* A uid outside her ranges is another user. */
	assert_int_equal(fl_mapi_take(&m, 200, 166000, &f[3], &why), 0);
	assert_int_equal(m.clients[2].acct, 166000); /* the refused process took no entry */
	assert_int_equal(m.clients[1].acct, 100000);
	for (i = 0; i < 4; i++)
		fl_mapi_put(&m, f[i]);
	assert_int_equal(m.nclients, 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_filter_then_counters_in_scope, fx_setup,
						fx_teardown),
		cmocka_unit_test_setup_teardown(test_str_search_and_sample, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_top_threshold_dist, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_refusals, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_anonymize, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_sensor_acl, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_anomalies, fx_setup, fx_teardown),
		cmocka_unit_test(test_tables),
		cmocka_unit_test(test_user_limits),
		cmocka_unit_test(test_costly_per_user),
		cmocka_unit_test(test_pid_reused_by_another_user),
		cmocka_unit_test(test_user_processes),
		cmocka_unit_test(test_subuid_one_user),
		cmocka_unit_test(test_dispatch_connected_only),
		cmocka_unit_test(test_sensor_gone),
		cmocka_unit_test_setup_teardown(test_filter_names_not_resolved, fx_setup,
						fx_teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
