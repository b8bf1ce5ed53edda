/* SPDX-License-Identifier: MIT */
/* test_backpressure.c - credit windows: one stalled socket never blocks the other 63 */
#include <errno.h>
#include <poll.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/channel.h"
#include "common/proto.h"
#include "common/sockid.h"

/*
 * Theory of operation
 *
 * Two processes joined by a real local channel (socketpair + offer/join).
 * The child plays the INS: NSOCK sockets, each with TOTAL bytes to send to the
 * PVM, each allowed at most WINDOW unacknowledged bytes (the window the PVM
 * granted in its hello).  It sends DATA only within credit and adds the bytes
 * of every CREDIT frame back.
 *
 * The parent plays the PVM, as pvm_relay.c does: it always consumes frames from
 * the ring.  For 63 sockets it "writes to the app" at once (verifies the bytes)
 * and returns CREDIT in batches.  Socket STALLED has an app that reads nothing:
 * its bytes go to a pending buffer of WINDOW bytes and no credit goes back.
 * Every DATA frame is checked against the window: an INS that exceeds its credit
 * fails the test (in mw-pvm it kills the channel).
 *
 * Expected: the 63 complete while STALLED sits at exactly WINDOW bytes; at that
 * point the INS->PVM ring is empty and stays empty (the stalled socket holds
 * none of it: its bytes are bounded by WINDOW <= ring/4 and left the ring at
 * once).  Then the app "wakes up", the PVM credits the window back and the
 * stalled socket completes too.  Both sides checksum each socket's stream.
 */

#define NSOCK 64
#define STALLED 7
#define WINDOW (64u * 1024u)
#define RING (256u * 1024u)
#define TOTAL (4ull * 1024 * 1024)
#define POLL_MS 5000
#define DEADLINE_MS 15000 /* the whole run takes < 1 s, also with sanitizers */
#define PAT_LEN 65521u /* prime: the pattern does not line up with frame sizes */

static uint8_t pat[2 * PAT_LEN];

static void pattern_init(void)
{
	for (uint32_t i = 0; i < PAT_LEN; i++)
		pat[i] = pat[i + PAT_LEN] = (uint8_t)((i * 2654435761u) >> 24);
}

/* Where byte @off of socket @s's stream starts in pat[]; up to PAT_LEN follow. */
static const uint8_t *pattern_at(int s, uint64_t off)
{
	return pat + (off + (uint64_t)s * 7919u) % PAT_LEN;
}

static void pattern_fill(int s, uint64_t off, uint8_t *dst, uint32_t n)
{
	while (n) {
		uint32_t k = n < PAT_LEN ? n : PAT_LEN;

		memcpy(dst, pattern_at(s, off), k);
		dst += k;
		off += k;
		n -= k;
	}
}

static bool pattern_eq(int s, uint64_t off, const uint8_t *src, uint32_t n)
{
	while (n) {
		uint32_t k = n < PAT_LEN ? n : PAT_LEN;

		if (memcmp(src, pattern_at(s, off), k))
			return false;
		src += k;
		off += k;
		n -= k;
	}
	return true;
}

static uint64_t fnv(uint64_t h, const uint8_t *p, uint32_t n)
{
	for (uint32_t i = 0; i < n; i++)
		h = (h ^ p[i]) * 0x100000001b3ULL;
	return h;
}

#define FNV_INIT 0xcbf29ce484222325ULL

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static uint64_t sock_id(int i)
{
	return mw_sockid_make(1, 0, (uint32_t)i + 1);
}

static int sock_index(uint64_t id)
{
	uint32_t local = mw_sockid_local(id);

	if (id != mw_sockid_make(1, 0, local) || local < 1 || local > NSOCK)
		return -1;
	return (int)local - 1;
}

static struct mw_hello hello(uint16_t ins_id)
{
	struct mw_hello h = {
		.magic = MW_PROTO_MAGIC, .version_min = MW_PROTO_VERSION_MIN,
		.version_max = MW_PROTO_VERSION_MAX, .ins_id = ins_id, .ring_size = RING,
		.window = WINDOW, .heartbeat_ms = 1000, .pid = getpid(),
	};
	return h;
}

/*
 * Take the next frame and check it like mw-pvm/mw-ins do: control payloads
 * are copied out of shared memory first.  Return: 1, 0 (none) or -1 with *@fail.
 */
static int next_frame(struct mw_channel *ch, enum mw_proto_dir dir, struct mw_frame *f,
		      const void **pl, uint8_t *priv, size_t privlen, const char **fail,
		      char *why, size_t wl)
{
	int ret = mw_channel_recv(ch, f, pl);

	if (ret < 0) {
		*fail = ch->dead_reason;
		return -1;
	}
	if (!ret)
		return 0;
	if (f->type != MW_DATA) {
		if (f->len > privlen) {
			*fail = "control payload too long";
			return -1;
		}
		memcpy(priv, *pl, f->len);
		*pl = priv;
	}
	if (mw_proto_check(f, *pl, dir, why, wl)) {
		*fail = why;
		return -1;
	}
	return 1;
}

/* Sleep until kicked (or the peer died), bounded. Return: NULL or a reason. */
static const char *wait_kick(struct mw_channel *ch, uint64_t deadline)
{
	struct pollfd p[2] = { { .fd = ch->wait_fd, .events = POLLIN },
			       { .fd = ch->sock_fd, .events = POLLIN } };
	int r = poll(p, 2, POLL_MS);

	if (r <= 0 || now_ms() > deadline)
		return "no progress within the poll timeout";
	if (p[1].revents && !p[0].revents)
		return "peer hung up";
	mw_channel_woken(ch);
	return NULL;
}

/* ---- the INS (child) ---- */

struct ins_result {
	uint64_t sum[NSOCK];
	uint64_t full_events, frames_tx;
	char fail[160];
};

static uint32_t chunk_len(int s, uint64_t off)
{
	/* Varied sizes, 1 .. 40000 bytes, so credit comes back in odd amounts. */
	return (uint32_t)(((off / 997u) * 2654435761u + (uint64_t)s * 40503u) % 40000u) + 1u;
}

static void ins_run(struct mw_channel *ch, struct ins_result *res)
{
	uint64_t sent[NSOCK] = { 0 }, deadline = now_ms() + DEADLINE_MS;
	uint32_t credit[NSOCK];
	uint8_t priv[128];
	char why[128];
	int rr = 0;

	for (int i = 0; i < NSOCK; i++) {
		credit[i] = ch->peer.window; /* what the PVM granted per socket */
		res->sum[i] = FNV_INIT;
	}
	for (;;) {
		bool progress = false, blocked = false, finished = true;
		uint32_t want = 0;
		const char *fail = NULL;
		struct mw_frame f;
		const void *pl;
		int ret;

		for (int b = 0; b < 256; b++) {
			struct mw_credit cr;
			int s;

			ret = next_frame(ch, MW_DIR_TO_INS, &f, &pl, priv, sizeof(priv), &fail, why,
					 sizeof(why));
			if (ret < 0)
				goto out;
			if (!ret)
				break;
			s = sock_index(f.sock);
			if (f.type != MW_CREDIT || s < 0) {
				fail = "PVM sent something other than CREDIT for our sockets";
				goto out;
			}
			memcpy(&cr, pl, sizeof(cr));
			mw_channel_done(ch);
			if (cr.bytes > ch->peer.window - credit[s]) {
				fail = "PVM credited more than was outstanding";
				goto out;
			}
			credit[s] += cr.bytes;
			progress = true;
		}
		for (int k = 0; k < NSOCK && !blocked; k++) {
			int s = (rr + k) % NSOCK;
			uint32_t n = chunk_len(s, sent[s]);
			uint8_t *p;

			if (sent[s] < TOTAL || credit[s] < ch->peer.window)
				finished = false;
			if (sent[s] == TOTAL || credit[s] == 0)
				continue;
			if (n > credit[s])
				n = credit[s];
			if (n > TOTAL - sent[s])
				n = (uint32_t)(TOTAL - sent[s]);
			p = mw_channel_reserve(ch, MW_DATA, sock_id(s), n);
			if (!p) {
				blocked = true;
				want = n;
				rr = s; /* resume here: every socket gets its turn */
				break;
			}
			pattern_fill(s, sent[s], p, n);
			res->sum[s] = fnv(res->sum[s], p, n);
			mw_channel_commit(ch, n);
			sent[s] += n;
			credit[s] -= n;
			progress = true;
		}
		mw_channel_flush(ch);
		if (finished && !blocked)
			break;
		if (progress)
			continue;
		if (blocked && !mw_channel_want_space(ch, want))
			continue;
		if (!mw_channel_sleep(ch))
			continue;
		fail = wait_kick(ch, deadline);
out:
		if (fail) {
			snprintf(res->fail, sizeof(res->fail), "INS: %.150s", fail);
			return;
		}
	}
	res->full_events = ch->full_events;
	res->frames_tx = ch->frames_tx;
}

static pid_t fork_ins(int sock, int result_fd)
{
	pid_t pid = fork();

	assert_true(pid >= 0);
	if (pid == 0) {
		struct mw_hello h = hello(1);
		struct ins_result res;
		struct mw_channel ch;
		char err[160];

		memset(&res, 0, sizeof(res));
		if (mw_channel_local_join(&ch, sock, &h, err, sizeof(err)))
			snprintf(res.fail, sizeof(res.fail), "INS join: %.140s", err);
		else
			ins_run(&ch, &res);
		if (write(result_fd, &res, sizeof(res)) != (ssize_t)sizeof(res))
			_exit(4);
		_exit(res.fail[0] ? 3 : 0);
	}
	return pid;
}

/* ---- the PVM (parent) ---- */

struct pvm_sock {
	uint64_t rcvd;        /* bytes received from the INS */
	uint64_t sum;
	uint32_t outstanding; /* received, credit not yet sent back */
	uint32_t owed;        /* drained to the "app", to be credited */
};

struct pvm {
	struct mw_channel ch;
	struct pvm_sock s[NSOCK];
	uint8_t pend[WINDOW]; /* the stalled socket's pending buffer */
	uint32_t pend_len;
	bool stalled;
	uint64_t deadline;
	char why[160];
};

static bool pvm_others_done(const struct pvm *p)
{
	for (int i = 0; i < NSOCK; i++)
		if (i != STALLED && p->s[i].rcvd < TOTAL)
			return false;
	return true;
}

static bool pvm_all_settled(const struct pvm *p)
{
	for (int i = 0; i < NSOCK; i++)
		if (p->s[i].rcvd < TOTAL || p->s[i].outstanding)
			return false;
	return true;
}

/* One DATA frame: enforce the window, then drain or park it. */
static const char *pvm_data(struct pvm *p, const struct mw_frame *f, const uint8_t *data)
{
	int i = sock_index(f->sock);
	struct pvm_sock *s;

	if (i < 0)
		return "DATA for a socket we never opened";
	s = &p->s[i];
	if (f->len > WINDOW - s->outstanding) {
		snprintf(p->why, sizeof(p->why), "INS exceeded its credit on socket %d (%u + %u > %u)",
			 i, s->outstanding, f->len, WINDOW);
		return p->why;
	}
	if (f->len > TOTAL - s->rcvd)
		return "INS sent more than the stream length";
	if (i == STALLED && p->stalled) {
		/* outstanding <= WINDOW bounds the pending buffer, as in pvm_relay.c */
		memcpy(p->pend + p->pend_len, data, f->len);
		p->pend_len += f->len;
	} else {
		if (!pattern_eq(i, s->rcvd, data, f->len)) {
			snprintf(p->why, sizeof(p->why), "socket %d: wrong bytes at offset %llu", i,
				 (unsigned long long)s->rcvd);
			return p->why;
		}
		s->owed += f->len;
	}
	s->sum = fnv(s->sum, data, f->len);
	s->rcvd += f->len;
	s->outstanding += f->len;
	return NULL;
}

/* Send owed credit in batches (>= window/4, or the rest at the end). Return: false if full. */
static bool pvm_credit(struct pvm *p)
{
	for (int i = 0; i < NSOCK; i++) {
		struct pvm_sock *s = &p->s[i];
		struct mw_credit cr = { 0 };

		if (!s->owed || (s->owed < WINDOW / 4 && s->rcvd < TOTAL))
			continue;
		cr.bytes = s->owed;
		if (mw_channel_send(&p->ch, MW_CREDIT, sock_id(i), &cr, sizeof(cr)))
			return false;
		s->outstanding -= s->owed;
		s->owed = 0;
	}
	return true;
}

/* Run until @until says stop. Return: NULL or the reason it failed. */
static const char *pvm_run(struct pvm *p, bool (*until)(const struct pvm *))
{
	/* Static: the failure text may point into it and is returned to the caller. */
	static char why[128];
	uint8_t priv[128];

	while (!until(p)) {
		bool progress = false, full;
		const char *fail = NULL;
		struct mw_frame f;
		const void *pl;
		int ret;

		for (int b = 0; b < 256; b++) {
			ret = next_frame(&p->ch, MW_DIR_TO_PVM, &f, &pl, priv, sizeof(priv), &fail,
					 why, sizeof(why));
			if (ret < 0)
				return fail;
			if (!ret)
				break;
			if (f.type != MW_DATA)
				return "INS sent something other than DATA";
			fail = pvm_data(p, &f, pl);
			mw_channel_done(&p->ch);
			if (fail)
				return fail;
			progress = true;
		}
		full = !pvm_credit(p);
		mw_channel_flush(&p->ch);
		if (progress)
			continue;
		if (full && !mw_channel_want_space(&p->ch, sizeof(struct mw_credit)))
			continue;
		if (!mw_channel_sleep(&p->ch))
			continue;
		fail = wait_kick(&p->ch, p->deadline);
		if (fail)
			return fail;
	}
	return NULL;
}

static bool pvm_stall_reached(const struct pvm *p)
{
	return pvm_others_done(p) && p->s[STALLED].rcvd == WINDOW;
}

/* Nothing may arrive for @ms: the stalled socket has no credit left. */
static const char *pvm_expect_quiet(struct pvm *p, int ms)
{
	uint64_t end = now_ms() + (uint64_t)ms;
	struct mw_frame f;
	const void *pl;

	while (now_ms() < end) {
		struct pollfd pfd = { .fd = p->ch.wait_fd, .events = POLLIN };
		int ret = mw_channel_recv(&p->ch, &f, &pl);

		if (ret != 0)
			return ret < 0 ? p->ch.dead_reason : "a frame arrived while the INS had no credit";
		if (!mw_channel_sleep(&p->ch))
			continue;
		if (poll(&pfd, 1, (int)(end - now_ms() + 1)) > 0)
			mw_channel_woken(&p->ch); /* a "room" kick; the loop re-checks the ring */
	}
	return NULL;
}

static void test_no_head_of_line_blocking(void **state)
{
	static struct pvm p; /* 64 KiB pending buffer: not on the stack */
	struct mw_hello mine = hello(0);
	struct ins_result res;
	const char *fail;
	uint64_t t0 = now_ms(), others;
	char err[160];
	int sv[2], rp[2], status;
	struct pollfd pfd;
	pid_t pid;

	(void)state;
	pattern_init();
	memset(&p, 0, sizeof(p));
	for (int i = 0; i < NSOCK; i++)
		p.s[i].sum = FNV_INIT;
	p.stalled = true;
	p.deadline = now_ms() + DEADLINE_MS;
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	assert_int_equal(pipe(rp), 0);
	pid = fork_ins(sv[1], rp[1]);
	close(sv[1]);
	close(rp[1]);
	if (mw_channel_local_offer(&p.ch, sv[0], &mine, err, sizeof(err))) {
		kill(pid, SIGKILL);
		fail_msg("offer: %s", err);
	}
	assert_int_equal(p.ch.peer.window, WINDOW);
	assert_true(WINDOW <= RING / 4);

	/* Phase 1: socket 7's app reads nothing. */
	fail = pvm_run(&p, pvm_stall_reached);
	if (fail)
		kill(pid, SIGKILL);
	if (fail)
		fail_msg("phase 1: %s", fail);
	others = 0;
	for (int i = 0; i < NSOCK; i++)
		others += i == STALLED ? 0 : p.s[i].rcvd;
	print_message("stalled socket %d at %llu bytes while 63 others moved %llu MiB (%llu ms)\n",
		      STALLED, (unsigned long long)p.s[STALLED].rcvd,
		      (unsigned long long)(others >> 20), (unsigned long long)(now_ms() - t0));
	assert_int_equal(others, 63 * TOTAL);
	assert_int_equal(p.s[STALLED].rcvd, WINDOW);
	assert_int_equal(p.pend_len, WINDOW);
	assert_int_equal(p.s[STALLED].outstanding, WINDOW);
	/* The ring is not holding the stalled socket's data: it is empty and stays so. */
	fail = pvm_expect_quiet(&p, 300);
	if (fail)
		kill(pid, SIGKILL);
	if (fail)
		fail_msg("while stalled: %s", fail);
	assert_int_equal(p.s[STALLED].rcvd, WINDOW);

	/* Phase 2: the app reads: deliver the pending bytes, credit the window back. */
	assert_true(pattern_eq(STALLED, 0, p.pend, p.pend_len));
	p.s[STALLED].owed = p.pend_len;
	p.pend_len = 0;
	p.stalled = false;
	fail = pvm_run(&p, pvm_all_settled);
	if (fail)
		kill(pid, SIGKILL);
	if (fail)
		fail_msg("phase 2: %s", fail);

	/* The INS finishes once all its credit is back; compare checksums. */
	pfd.fd = rp[0];
	pfd.events = POLLIN;
	if (poll(&pfd, 1, 10000) != 1)
		kill(pid, SIGKILL);
	assert_int_equal(read(rp[0], &res, sizeof(res)), (ssize_t)sizeof(res));
	assert_int_equal(waitpid(pid, &status, 0), pid);
	if (res.fail[0])
		fail_msg("%s", res.fail);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
	for (int i = 0; i < NSOCK; i++) {
		assert_int_equal(p.s[i].rcvd, TOTAL);
		assert_int_equal(p.s[i].sum, res.sum[i]);
		assert_int_not_equal(p.s[i].sum, FNV_INIT);
	}
	print_message("done in %llu ms: %llu frames, INS found the ring full %llu times\n",
		      (unsigned long long)(now_ms() - t0), (unsigned long long)res.frames_tx,
		      (unsigned long long)res.full_events);
	close(rp[0]);
	mw_channel_close(&p.ch);
}

/* A sender that ignores its window is caught on the first excess byte. */
static void test_credit_overrun_detected(void **state)
{
	static struct pvm p;
	struct mw_frame f = { .type = MW_DATA, .sock = sock_id(3) };
	static uint8_t buf[WINDOW];

	(void)state;
	pattern_init();
	memset(&p, 0, sizeof(p));
	for (uint32_t off = 0; off < WINDOW; off += 16384) {
		f.len = 16384;
		pattern_fill(3, off, buf, f.len);
		assert_null(pvm_data(&p, &f, buf));
	}
	assert_int_equal(p.s[3].outstanding, WINDOW);
	f.len = 1;
	assert_string_equal(pvm_data(&p, &f, buf),
			    "INS exceeded its credit on socket 3 (65536 + 1 > 65536)");
	/* After a CREDIT the same byte is fine. */
	p.s[3].outstanding -= p.s[3].owed;
	p.s[3].owed = 0;
	pattern_fill(3, WINDOW, buf, 1);
	assert_null(pvm_data(&p, &f, buf));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_credit_overrun_detected),
		cmocka_unit_test(test_no_head_of_line_blocking),
	};

	signal(SIGPIPE, SIG_IGN);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
