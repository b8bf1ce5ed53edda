/* SPDX-License-Identifier: MIT */
/* test_channel.c - local channel: handshake, frames, kicks, two-process stream, peer death, hostile
 * input */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sched.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/channel.h"

#define RING (128u * 1024u)

static struct mw_hello hello(uint16_t vmin, uint16_t vmax)
{
	struct mw_hello h = {
		.magic = MW_PROTO_MAGIC,
		.version_min = vmin,
		.version_max = vmax,
		.ins_id = 7,
		.ring_size = RING,
		.window = 65536,
		.heartbeat_ms = 100,
		.pid = getpid(),
	};
	return h;
}

struct joiner {
	int sock;
	struct mw_hello h;
	struct mw_channel ch;
	int ret;
	char err[160];
};

static void *join_thread(void *arg)
{
	struct joiner *j = arg;

	j->ret = mw_channel_local_join(&j->ch, j->sock, &j->h, j->err, sizeof(j->err));
	return NULL;
}

/* Both ends in this process: the join runs in a thread during the offer. */
static int pair_open(struct mw_channel *pvm, struct joiner *j, struct mw_hello ins_h, char *err,
		     size_t errlen)
{
	struct mw_hello mine = hello(MW_PROTO_VERSION_MIN, MW_PROTO_VERSION_MAX);
	pthread_t t;
	int sv[2], ret;

	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	memset(j, 0, sizeof(*j));
	j->sock = sv[1];
	j->h = ins_h;
	assert_int_equal(pthread_create(&t, NULL, join_thread, j), 0);
	ret = mw_channel_local_offer(pvm, sv[0], &mine, err, errlen);
	pthread_join(t, NULL);
	if (ret)
		close(sv[0]);
	if (j->ret)
		close(sv[1]);
	return ret;
}

static bool fd_readable(int fd, int ms)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };

	return poll(&p, 1, ms) == 1;
}

static void test_handshake_and_frames(void **state)
{
	struct mw_channel pvm;
	struct joiner j;
	struct mw_frame f;
	const void *pl;
	char err[160] = "";
	char buf[300];

	assert_int_equal(pair_open(&pvm, &j, hello(1, 1), err, sizeof(err)), 0);
	assert_int_equal(j.ret, 0);
	assert_int_equal(pvm.version, 1);
	assert_int_equal(j.ch.version, 1);
	assert_int_equal(pvm.peer.ins_id, 7);
	assert_int_equal(j.ch.peer.ring_size, RING);
	assert_int_equal(pvm.role, MW_CHANNEL_PVM);
	assert_int_equal(j.ch.role, MW_CHANNEL_INS);
	assert_int_equal(mw_channel_region_size(RING), pvm.region_len);

	/* 1000 frames each way, variable sizes, in order */
	for (int i = 0; i < 1000; i++) {
		memset(buf, i & 0xff, sizeof(buf));
		assert_int_equal(
			mw_channel_send(&pvm, MW_DATA, (uint64_t)i, buf, (uint32_t)(i % 300)), 0);
		assert_int_equal(
			mw_channel_send(&j.ch, MW_CREDIT, (uint64_t)i, buf, (uint32_t)(i % 17)), 0);
		if (i % 50 == 49) {
			for (int k = i - 49; k <= i; k++) {
				assert_int_equal(mw_channel_recv(&j.ch, &f, &pl), 1);
				assert_int_equal(f.type, MW_DATA);
				assert_int_equal(f.sock, (uint64_t)k);
				assert_int_equal(f.len, (uint32_t)(k % 300));
				if (f.len)
					assert_int_equal(((const uint8_t *)pl)[f.len - 1],
							 k & 0xff);
				mw_channel_done(&j.ch);
				assert_int_equal(mw_channel_recv(&pvm, &f, &pl), 1);
				assert_int_equal(f.type, MW_CREDIT);
				assert_int_equal(f.sock, (uint64_t)k);
				assert_int_equal(f.len, (uint32_t)(k % 17));
				mw_channel_done(&pvm);
			}
		}
	}
	assert_int_equal(mw_channel_recv(&j.ch, &f, &pl), 0);
	assert_int_equal(pvm.frames_tx, 1000);
	assert_int_equal(j.ch.frames_rx, 1000);
	/* oversize */
	assert_int_equal(mw_channel_send(&pvm, MW_DATA, 1, buf, MW_FRAME_MAX_PAYLOAD + 1),
			 -EMSGSIZE);
	assert_null(mw_channel_reserve(&pvm, MW_DATA, 1, MW_FRAME_MAX_PAYLOAD + 1));
	/* reserve + trimmed commit */
	char *p = mw_channel_reserve(&pvm, MW_DATA, 9, 1000);
	assert_non_null(p);
	/* NOLINTNEXTLINE(bugprone-not-null-terminated-result): bytes, not a string */
	memcpy(p, "hello", 5);
	mw_channel_commit(&pvm, 5);
	assert_int_equal(mw_channel_recv(&j.ch, &f, &pl), 1);
	assert_int_equal(f.len, 5);
	assert_memory_equal(pl, "hello", 5);
	mw_channel_done(&j.ch);
	mw_channel_close(&pvm);
	mw_channel_close(&j.ch);
	assert_int_equal(pvm.sock_fd, -1);
	mw_channel_close(&pvm); /* twice is harmless */
}

static void test_kick_only_when_sleeping(void **state)
{
	struct mw_channel pvm;
	struct joiner j;
	struct mw_frame f;
	const void *pl;
	char err[160];

	assert_int_equal(pair_open(&pvm, &j, hello(1, 1), err, sizeof(err)), 0);
	/* INS awake: sends and flushes cost no kick */
	for (int i = 0; i < 10; i++) {
		assert_int_equal(mw_channel_send(&pvm, MW_DATA, 1, "x", 1), 0);
		mw_channel_flush(&pvm);
	}
	assert_int_equal(pvm.kicks_tx, 0);
	assert_false(mw_channel_sleep(&j.ch)); /* frames pending: must not sleep */
	for (int i = 0; i < 10; i++) {
		assert_int_equal(mw_channel_recv(&j.ch, &f, &pl), 1);
		mw_channel_done(&j.ch);
	}
	assert_true(mw_channel_sleep(&j.ch));
	assert_false(fd_readable(j.ch.wait_fd, 0));
	assert_int_equal(mw_channel_send(&pvm, MW_DATA, 1, "y", 1), 0);
	mw_channel_flush(&pvm);
	assert_int_equal(mw_channel_send(&pvm, MW_DATA, 1, "z", 1), 0);
	mw_channel_flush(&pvm);
	assert_int_equal(pvm.kicks_tx, 1); /* one kick for the sleeping consumer */
	assert_true(fd_readable(j.ch.wait_fd, 1000));
	mw_channel_woken(&j.ch);
	assert_false(fd_readable(j.ch.wait_fd, 0)); /* drained */
	assert_int_equal(mw_channel_recv(&j.ch, &f, &pl), 1);
	assert_memory_equal(pl, "y", 1);
	mw_channel_done(&j.ch);
	mw_channel_close(&pvm);
	mw_channel_close(&j.ch);
}

static void test_full_and_want_space(void **state)
{
	static char big[MW_FRAME_MAX_PAYLOAD];
	struct mw_channel pvm;
	struct joiner j;
	struct mw_frame f;
	const void *pl;
	char err[160];
	int n = 0;

	assert_int_equal(pair_open(&pvm, &j, hello(1, 1), err, sizeof(err)), 0);
	while (mw_channel_send(&pvm, MW_DATA, 1, big, sizeof(big)) == 0)
		n++;
	assert_int_equal(n, 1); /* 128 KiB ring: one 64 KiB frame, then the PAD/room runs out */
	assert_int_equal(mw_channel_send(&pvm, MW_DATA, 1, big, sizeof(big)), -EAGAIN);
	assert_true(pvm.full_events > 0);
	assert_true(mw_channel_want_space(&pvm, sizeof(big)));
	assert_false(fd_readable(pvm.wait_fd, 0));
	assert_int_equal(mw_channel_recv(&j.ch, &f, &pl), 1);
	mw_channel_done(&j.ch); /* sees the waiting producer: kicks at once */
	assert_true(fd_readable(pvm.wait_fd, 1000));
	mw_channel_woken(&pvm);
	assert_false(mw_channel_want_space(&pvm, sizeof(big)));
	assert_int_equal(mw_channel_send(&pvm, MW_DATA, 2, big, sizeof(big)), 0);
	mw_channel_close(&pvm);
	mw_channel_close(&j.ch);
}

/* Write a raw record into the PVM's tx ring, bypassing the channel's framing. */
static void raw_record(struct mw_channel *ch, const void *rec, uint32_t len)
{
	void *p = mw_ring_reserve(&ch->tx, len);

	assert_non_null(p);
	memcpy(p, rec, len);
	mw_ring_commit(&ch->tx, len);
}

static void expect_dead(struct joiner *j, const char *why)
{
	struct mw_frame f;
	const void *pl;

	assert_int_equal(mw_channel_recv(&j->ch, &f, &pl), -EBADMSG);
	assert_non_null(strstr(j->ch.dead_reason, why));
	assert_int_equal(mw_channel_send(&j->ch, MW_DATA, 1, "x", 1), -EPIPE);
	assert_int_equal(mw_channel_recv(&j->ch, &f, &pl), -EBADMSG); /* stays dead */
}

static void test_malformed_frames(void **state)
{
	struct {
		struct mw_frame f;
		uint8_t pl[16];
	} r;
	struct mw_channel pvm;
	struct joiner j;
	char err[160];

	for (int variant = 0; variant < 4; variant++) {
		assert_int_equal(pair_open(&pvm, &j, hello(1, 1), err, sizeof(err)), 0);
		memset(&r, 0, sizeof(r));
		r.f.type = MW_DATA;
		r.f.len = 16;
		switch (variant) {
		case 0:
			r.f.len = 17; /* claims more than the record holds */
			raw_record(&pvm, &r, sizeof(r));
			expect_dead(&j, "does not match");
			break;
		case 1:
			r.f.type = 0x1234;
			raw_record(&pvm, &r, sizeof(r));
			expect_dead(&j, "unknown frame type 0x1234");
			break;
		case 2:
			raw_record(&pvm, &r, 8); /* shorter than a frame header */
			expect_dead(&j, "shorter than a frame header");
			break;
		case 3:
			pvm.tx.sh->head = (uint64_t)RING * 5; /* hostile index */
			expect_dead(&j, "corrupted the rx ring");
			break;
		}
		mw_channel_kill(&j.ch, "second reason loses");
		assert_null(strstr(j.ch.dead_reason, "second"));
		mw_channel_close(&pvm);
		mw_channel_close(&j.ch);
	}
}

/*
 * The channel's inline known-type check (hot path) must agree with proto.c's
 * table for every u16: a type added there and not here would kill channels.
 */
static void test_known_types_match_proto(void **state)
{
	struct mw_channel pvm;
	struct joiner j;
	struct mw_frame f;
	const void *pl;
	char err[160];
	unsigned int known = 0;

	assert_int_equal(pair_open(&pvm, &j, hello(1, 1), err, sizeof(err)), 0);
	for (uint32_t t = 0; t <= 0xffff; t++) {
		bool in_proto = strcmp(mw_proto_type_name((uint16_t)t), "?") != 0;
		int ret;

		assert_int_equal(mw_channel_send(&pvm, (uint16_t)t, 0, NULL, 0), 0);
		ret = mw_channel_recv(&j.ch, &f, &pl);
		if (in_proto) {
			if (ret != 1)
				print_error("type 0x%04x (%s) refused\n", t,
					    mw_proto_type_name((uint16_t)t));
			assert_int_equal(ret, 1);
			assert_int_equal(f.type, t);
			known++;
		} else {
			if (ret != -EBADMSG)
				print_error("unknown type 0x%04x accepted\n", t);
			assert_int_equal(ret, -EBADMSG);
			assert_non_null(strstr(j.ch.dead_reason, "unknown frame type"));
			j.ch.dead_reason[0] = 0; /* test only: revive to look at the next type */
		}
		mw_channel_done(&j.ch);
	}
	assert_int_equal(known, 24);
	mw_channel_close(&pvm);
	mw_channel_close(&j.ch);
}

static void test_corrupt_tail_kills_sender(void **state)
{
	struct mw_channel pvm;
	struct joiner j;
	char err[160];

	assert_int_equal(pair_open(&pvm, &j, hello(1, 1), err, sizeof(err)), 0);
	while (mw_channel_send(&pvm, MW_DATA, 1, err, 100) == 0)
		;
	j.ch.rx.sh->tail = pvm.tx.prod_head + 4096; /* consumer "ahead" of the producer */
	assert_int_equal(mw_channel_send(&pvm, MW_DATA, 1, err, 100), -EPIPE);
	assert_non_null(strstr(pvm.dead_reason, "corrupted the tx ring"));
	mw_channel_close(&pvm);
	mw_channel_close(&j.ch);
}

static void test_version_mismatch(void **state)
{
	struct mw_channel pvm;
	struct joiner j;
	char err[160] = "";

	assert_int_equal(pair_open(&pvm, &j, hello(5, 6), err, sizeof(err)), -EPROTO);
	assert_non_null(strstr(err, "INS speaks protocol versions 5..6"));
	assert_int_equal(j.ret, -EPROTO);
	assert_non_null(strstr(j.err, "PVM rejected our protocol versions 5..6"));
	assert_int_equal(pvm.sock_fd, -1);
	assert_int_equal(j.ch.sock_fd, -1);
}

static void test_bad_magic_and_garbage(void **state)
{
	struct mw_hello mine = hello(1, 1), bad = hello(1, 1), back;
	struct mw_channel pvm;
	char err[160];
	int sv[2];

	/* bad magic: clear error, and the joiner is told (version 0) */
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	bad.magic = 0xdeadbeef;
	assert_int_equal(write(sv[1], &bad, sizeof(bad)), (ssize_t)sizeof(bad));
	assert_int_equal(mw_channel_local_offer(&pvm, sv[0], &mine, err, sizeof(err)), -EPROTO);
	assert_non_null(strstr(err, "bad magic 0xdeadbeef"));
	assert_int_equal(read(sv[1], &back, sizeof(back)), (ssize_t)sizeof(back));
	assert_int_equal(back.version_max, 0);
	close(sv[0]);
	close(sv[1]);

	/* a few garbage bytes and a hang-up: an error, not a crash or a hang */
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	assert_int_equal(write(sv[1], "garbage", 7), 7);
	close(sv[1]);
	assert_int_equal(mw_channel_local_offer(&pvm, sv[0], &mine, err, sizeof(err)), -ECONNRESET);
	assert_non_null(strstr(err, "closed"));
	close(sv[0]);

	/* a joiner that passes fds of its own: they are closed, not kept */
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	{
		int efd = eventfd(0, 0), before, after;
		union {
			char buf[CMSG_SPACE(sizeof(int))];
			struct cmsghdr a;
		} ctl;
		struct iovec iov = { .iov_base = &bad, .iov_len = sizeof(bad) };
		struct msghdr msg = { .msg_iov = &iov,
				      .msg_iovlen = 1,
				      .msg_control = ctl.buf,
				      .msg_controllen = sizeof(ctl.buf) };
		struct cmsghdr *c = CMSG_FIRSTHDR(&msg);

		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_RIGHTS;
		c->cmsg_len = CMSG_LEN(sizeof(int));
		memcpy(CMSG_DATA(c), &efd, sizeof(int));
		bad = hello(1, 1);
		assert_int_equal(sendmsg(sv[1], &msg, 0), (ssize_t)sizeof(bad));
		close(efd);
		before = dup(0);
		close(before);
		assert_int_equal(mw_channel_local_offer(&pvm, sv[0], &mine, err, sizeof(err)), 0);
		mw_channel_close(&pvm); /* closes sv[0] too */
		after = dup(0);
		close(after);
		/* lowest free fd is sv[0] again: nothing received or created leaked above it */
		assert_int_equal(after, sv[0] < before ? sv[0] : before);
		after = dup(0);
		assert_int_equal(dup(0), before);
		close(after);
		close(before);
	}
	close(sv[1]);

	/* bad ring size in our own hello */
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	mine.ring_size = 1000;
	assert_int_equal(mw_channel_local_offer(&pvm, sv[0], &mine, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "ring_size 1000"));
	close(sv[0]);
	close(sv[1]);
}

/* Hello fields beyond magic and versions go through mw_proto_check_hello() on both sides. */
static void test_hello_fields_checked(void **state)
{
	struct mw_hello mine = hello(1, 1), bad = hello(1, 1);
	struct mw_channel pvm, ins;
	struct joiner j;
	char err[160] = "";
	pthread_t t;
	int sv[2];

	/* an INS granting window 0: the offer fails with the field, the joiner sees the hang-up */
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	memset(&j, 0, sizeof(j));
	j.sock = sv[1];
	j.h = bad;
	j.h.window = 0;
	assert_int_equal(pthread_create(&t, NULL, join_thread, &j), 0);
	assert_int_equal(mw_channel_local_offer(&pvm, sv[0], &mine, err, sizeof(err)), -EPROTO);
	assert_non_null(strstr(err, "INS hello: window 0"));
	assert_int_equal(pvm.sock_fd, -1);
	close(sv[0]); /* what mw-pvm does with a refused INS */
	pthread_join(t, NULL);
	assert_int_equal(j.ret, -ECONNRESET);
	assert_non_null(strstr(j.err, "closed the socket"));
	close(sv[1]);

	/* a PVM reply with a window over 1 GiB: the joiner refuses before looking at fds */
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	bad = hello(1, 1);
	bad.window = (1u << 30) + 1;
	assert_int_equal(write(sv[1], &bad, sizeof(bad)), (ssize_t)sizeof(bad));
	assert_int_equal(mw_channel_local_join(&ins, sv[0], &mine, err, sizeof(err)), -EPROTO);
	assert_non_null(strstr(err, "PVM hello: window 1073741825"));
	assert_int_equal(ins.sock_fd, -1);
	close(sv[0]);
	close(sv[1]);
}

/* A fake PVM whose reply carries the wrong kind of fds: the joiner refuses. */
static void test_join_rejects_bad_fds(void **state)
{
	/* 0-2 version 1; 3, 4 version 2 (a data pipe's read end is the 4th fd) */
	for (int variant = 0; variant < 5; variant++) {
		uint16_t v = variant >= 3 ? 2 : 1;
		struct mw_hello mine = hello(1, v), reply = hello(v, v);
		int nfds = variant == 3 ? 4 : 3;
		union {
			char buf[CMSG_SPACE(4 * sizeof(int))];
			struct cmsghdr a;
		} ctl;
		struct iovec iov = { .iov_base = &reply, .iov_len = sizeof(reply) };
		struct msghdr msg = { .msg_iov = &iov,
				      .msg_iovlen = 1,
				      .msg_control = ctl.buf,
				      .msg_controllen = sizeof(ctl.buf) };
		struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
		struct mw_channel ch;
		int sv[2], fds[4], pp[2];
		char err[160] = "";

		assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
		fds[0] = memfd_create("t", MFD_ALLOW_SEALING);
		assert_int_equal(ftruncate(fds[0], (off_t)mw_channel_region_size(RING)), 0);
		fds[1] = eventfd(0, 0);
		fds[2] = eventfd(0, 0);
		assert_int_equal(pipe(pp), 0);
		fds[3] = pp[1]; /* variant 3: the write end, not the read end */
		if (variant == 0) {
			/* unsealed memfd */
		} else {
			assert_int_equal(fcntl(fds[0], F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW),
					 0);
			if (variant == 1)
				reply.ring_size = RING * 2; /* region smaller than announced */
			else if (variant == 2)
				fds[2] = pp[0]; /* a pipe is not an eventfd */
		}
		msg.msg_controllen = CMSG_SPACE((size_t)nfds * sizeof(int));
		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_RIGHTS;
		c->cmsg_len = CMSG_LEN((size_t)nfds * sizeof(int));
		memcpy(CMSG_DATA(c), fds, (size_t)nfds * sizeof(int));
		assert_int_equal(sendmsg(sv[1], &msg, 0), (ssize_t)sizeof(reply));
		assert_int_equal(mw_channel_local_join(&ch, sv[0], &mine, err, sizeof(err)),
				 -EPROTO);
		assert_non_null(strstr(err, variant == 0   ? "not sealed"
					    : variant == 1 ? "the hello implies"
					    : variant == 2 ? "not eventfds"
					    : variant == 3 ? "not a pipe's read end"
							   : "passed 3 fds, expected 4"));
		close(fds[0]);
		close(fds[1]);
		close(fds[2]);
		close(pp[0] == fds[2] ? -1 : pp[0]);
		close(pp[1]);
		close(sv[0]);
		close(sv[1]);
	}
}

/*
 * Version 2 passes the data pipe: the PVM keeps the write end, the INS gets
 * the read end (non-blocking, never writable); version 1 has none.
 */
static void test_data_pipe(void **state)
{
	struct mw_channel pvm;
	struct joiner j;
	char err[160] = "", buf[8];
	int fl;

	assert_int_equal(pair_open(&pvm, &j, hello(1, 2), err, sizeof(err)), 0);
	assert_int_equal(j.ret, 0);
	assert_int_equal(pvm.version, 2);
	assert_true(pvm.pipe_fd >= 0);
	assert_true(j.ch.pipe_fd >= 0);
	fl = fcntl(j.ch.pipe_fd, F_GETFL);
	assert_int_equal(fl & O_ACCMODE, O_RDONLY);
	assert_true(fl & O_NONBLOCK);
	assert_int_equal(read(j.ch.pipe_fd, buf, sizeof(buf)), -1); /* empty: never blocks */
	assert_int_equal(errno, EAGAIN);
	assert_int_equal(write(pvm.pipe_fd, "bytes", 5), 5);
	assert_int_equal(read(j.ch.pipe_fd, buf, sizeof(buf)), 5);
	assert_memory_equal(buf, "bytes", 5);
	assert_int_equal(write(j.ch.pipe_fd, "x", 1), -1); /* the INS cannot write it */
	mw_channel_close(&pvm);
	mw_channel_close(&j.ch);
	assert_int_equal(j.ch.pipe_fd, -1);

	assert_int_equal(pair_open(&pvm, &j, hello(1, 1), err, sizeof(err)), 0);
	assert_int_equal(pvm.version, 1);
	assert_int_equal(pvm.pipe_fd, -1);
	assert_int_equal(j.ch.pipe_fd, -1);
	mw_channel_close(&pvm);
	mw_channel_close(&j.ch);
}

/* ---- two processes ---- */

#define STREAM_MSGS 2000000ull

static uint32_t msg_len(uint64_t seq)
{
	return (uint32_t)((seq * 2654435761u) >> 13) % 251u + 1u;
}

static uint8_t msg_byte(uint64_t seq, uint32_t i)
{
	return (uint8_t)(seq * 7u + i);
}

struct stream {
	uint64_t sent, rcvd, sum, sleeps;
	const char *fail;
};

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/*
 * Each side sends STREAM_MSGS checksummed frames and receives as many,
 * sleeping on its eventfd whenever it can neither send nor receive.
 * No asserts here: it runs in the child too.
 */
static void stream_run(struct mw_channel *ch, struct stream *s)
{
	uint64_t deadline = now_ms() + 60000;

	memset(s, 0, sizeof(*s));
	while (s->sent < STREAM_MSGS || s->rcvd < STREAM_MSGS) {
		bool progress = false, blocked = false;
		struct mw_frame f;
		const void *pl;
		int ret;

		for (int b = 0; b < 64 && s->sent < STREAM_MSGS; b++) {
			uint32_t len = msg_len(s->sent);
			uint8_t *p = mw_channel_reserve(ch, MW_DATA, s->sent, len);

			if (!p) {
				blocked = true;
				break;
			}
			for (uint32_t i = 0; i < len; i++)
				p[i] = msg_byte(s->sent, i);
			mw_channel_commit(ch, len);
			s->sent++;
			progress = true;
		}
		mw_channel_flush(ch);
		for (int b = 0; b < 64; b++) {
			const uint8_t *q;

			ret = mw_channel_recv(ch, &f, &pl);
			if (ret < 0) {
				s->fail = ch->dead_reason;
				return;
			}
			if (!ret)
				break;
			q = pl;
			if (f.sock != s->rcvd || f.len != msg_len(s->rcvd)) {
				s->fail = "out of order or wrong length";
				return;
			}
			for (uint32_t i = 0; i < f.len; i++) {
				if (q[i] != msg_byte(s->rcvd, i)) {
					s->fail = "payload mismatch";
					return;
				}
				s->sum = s->sum * 31u + q[i];
			}
			mw_channel_done(ch);
			s->rcvd++;
			progress = true;
		}
		if (progress)
			continue;
		if (blocked && !mw_channel_want_space(ch, msg_len(s->sent)))
			continue;
		if (!mw_channel_sleep(ch))
			continue;
		{
			struct pollfd p[2] = { { .fd = ch->wait_fd, .events = POLLIN },
					       { .fd = ch->sock_fd, .events = POLLIN } };
			int r = poll(p, 2, 5000);

			s->sleeps++;
			if (r <= 0 || now_ms() > deadline) {
				s->fail = "stalled: lost wake-up?";
				return;
			}
			if (p[1].revents && !p[0].revents) {
				/* A peer that kicked and then exited sets both: its frames come
				 * first. */
				if (s->rcvd < STREAM_MSGS) {
					s->fail = "peer hung up early";
					return;
				}
				p[1].fd = -1;
			}
			mw_channel_woken(ch);
		}
	}
}

/*
 * Ping-pong: one frame in flight, so each side finds its ring empty and goes
 * through the sleep/re-check/kick handshake for nearly every frame.  A lost
 * wake-up shows as a stall (5 s poll bound).  Return: NULL or why it failed.
 */
#define PP_ROUNDS 20000u

static const char *pp_recv(struct mw_channel *ch, struct mw_frame *f, const void **pl,
			   uint64_t *sleeps)
{
	for (int spins = 0; spins < 1000000; spins++) {
		int ret = mw_channel_recv(ch, f, pl);

		if (ret == 1)
			return NULL;
		if (ret < 0)
			return ch->dead_reason;
		if (!mw_channel_sleep(ch))
			continue;
		struct pollfd p[2] = { { .fd = ch->wait_fd, .events = POLLIN },
				       { .fd = ch->sock_fd, .events = POLLIN } };

		if (poll(p, 2, 5000) <= 0)
			return "stalled: lost wake-up?";
		if (p[1].revents && !p[0].revents)
			return "peer hung up";
		(*sleeps)++;
		mw_channel_woken(ch);
	}
	return "no frame after a million empty looks";
}

/* The joiner's side: echo each frame with every byte incremented. */
static const char *pp_echo(struct mw_channel *ch)
{
	uint8_t buf[64];
	uint64_t sleeps = 0;

	for (uint32_t i = 0; i < PP_ROUNDS; i++) {
		struct mw_frame f;
		const void *pl;
		const char *why = pp_recv(ch, &f, &pl, &sleeps);

		if (why)
			return why;
		if (f.len > sizeof(buf))
			return "ping too long";
		memcpy(buf, pl, f.len);
		mw_channel_done(ch);
		for (uint32_t k = 0; k < f.len; k++)
			buf[k]++;
		if (mw_channel_send(ch, MW_DATA, f.sock, buf, f.len))
			return "echo did not fit";
		mw_channel_flush(ch);
	}
	return NULL;
}

static uint64_t expected_sum(void)
{
	uint64_t sum = 0;

	for (uint64_t seq = 0; seq < STREAM_MSGS; seq++)
		for (uint32_t i = 0; i < msg_len(seq); i++)
			sum = sum * 31u + msg_byte(seq, i);
	return sum;
}

static pid_t fork_joiner(int sock, int mode, int result_fd)
{
	pid_t pid = fork();

	assert_true(pid >= 0);
	if (pid == 0) {
		struct mw_hello h = hello(1, 1);
		struct mw_channel ch;
		struct stream s;
		char err[160];

		if (mode == 3) {
			/* The INS's own network namespace; report its inode to the parent. */
			struct stat st;

			if (unshare(CLONE_NEWNET) || stat("/proc/self/ns/net", &st))
				_exit(5);
			if (write(result_fd, &st.st_ino, sizeof(st.st_ino)) != sizeof(st.st_ino))
				_exit(4);
			mode = 2;
		}
		if (mw_channel_local_join(&ch, sock, &h, err, sizeof(err)))
			_exit(2);
		if (mode == 1) {
			for (;;)
				pause();
		}
		if (mode == 2) {
			const char *why = pp_echo(&ch);

			mw_channel_close(&ch);
			_exit(why ? 3 : 0);
		}
		stream_run(&ch, &s);
		if (write(result_fd, &s.sum, sizeof(s.sum)) != sizeof(s.sum))
			_exit(4);
		mw_channel_close(&ch);
		_exit(s.fail ? 3 : 0);
	}
	return pid;
}

static void test_two_process_stream(void **state)
{
	struct mw_hello mine = hello(1, 1);
	struct mw_channel pvm;
	struct stream s;
	uint64_t child_sum = 0, want = expected_sum();
	char err[160];
	int sv[2], res[2], status;
	pid_t pid;

	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	assert_int_equal(pipe(res), 0);
	pid = fork_joiner(sv[1], 0, res[1]);
	close(sv[1]);
	close(res[1]);
	assert_int_equal(mw_channel_local_offer(&pvm, sv[0], &mine, err, sizeof(err)), 0);
	stream_run(&pvm, &s);
	if (s.fail)
		print_error("parent: %s\n", s.fail);
	assert_null(s.fail);
	assert_int_equal(read(res[0], &child_sum, sizeof(child_sum)), (ssize_t)sizeof(child_sum));
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
	assert_int_equal(s.rcvd, STREAM_MSGS);
	assert_int_equal(s.sum, want);
	assert_int_equal(child_sum, want);
	print_message("stream: %llu msgs each way, %llu kicks sent, %llu sleeps, %llu full\n",
		      (unsigned long long)STREAM_MSGS, (unsigned long long)pvm.kicks_tx,
		      (unsigned long long)s.sleeps, (unsigned long long)pvm.full_events);
	assert_true(pvm.kicks_tx < STREAM_MSGS / 10); /* batching: kicks << messages */
	close(res[0]);
	mw_channel_close(&pvm);
}

/* The PVM's side of the ping-pong against a joiner in mode 2.  Return: sleeps. */
static uint64_t pp_drive(struct mw_channel *pvm)
{
	uint64_t sleeps = 0;
	uint8_t ping[64];

	for (uint32_t i = 0; i < PP_ROUNDS; i++) {
		uint32_t len = i % sizeof(ping) + 1;
		struct mw_frame f;
		const void *pl;
		const char *why;

		for (uint32_t k = 0; k < len; k++)
			ping[k] = (uint8_t)(i + k);
		assert_int_equal(mw_channel_send(pvm, MW_DATA, i, ping, len), 0);
		mw_channel_flush(pvm);
		why = pp_recv(pvm, &f, &pl, &sleeps);
		if (why)
			print_error("round %u: %s\n", i, why);
		assert_null(why);
		assert_int_equal(f.sock, i);
		assert_int_equal(f.len, len);
		for (uint32_t k = 0; k < len; k++)
			assert_int_equal(((const uint8_t *)pl)[k], (uint8_t)(i + k + 1));
		mw_channel_done(pvm);
	}
	return sleeps;
}

static void test_two_process_pingpong_sleeps(void **state)
{
	struct mw_hello mine = hello(1, 1);
	struct mw_channel pvm;
	uint64_t sleeps;
	char err[160];
	int sv[2], status;
	pid_t pid;

	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	pid = fork_joiner(sv[1], 2, -1);
	close(sv[1]);
	assert_int_equal(mw_channel_local_offer(&pvm, sv[0], &mine, err, sizeof(err)), 0);
	sleeps = pp_drive(&pvm);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
	print_message("ping-pong: %u rounds, %llu sleeps here, %llu kicks sent\n", PP_ROUNDS,
		      (unsigned long long)sleeps, (unsigned long long)pvm.kicks_tx);
	/*
	 * The handshake really ran, thousands of times (about 2/3 of the rounds
	 * here; a round where the peer had not yet gone to sleep needs no kick),
	 * and never more than one kick per frame.
	 */
	assert_true(sleeps > PP_ROUNDS / 4);
	assert_true(pvm.kicks_tx > PP_ROUNDS / 4 && pvm.kicks_tx <= PP_ROUNDS);
	mw_channel_close(&pvm);
}

/* The INS in a network namespace of its own: the handshake and the rings do not care. */
static void test_joiner_in_other_netns(void **state)
{
	struct mw_hello mine = hello(1, 1);
	struct mw_channel pvm;
	struct stat here;
	ino_t there = 0;
	char err[160];
	int sv[2], res[2], status;
	pid_t pid;

	if (geteuid() != 0) {
		skip(); /* unshare(CLONE_NEWNET) needs CAP_SYS_ADMIN */
		return;
	}
	assert_int_equal(stat("/proc/self/ns/net", &here), 0);
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	assert_int_equal(pipe(res), 0);
	pid = fork_joiner(sv[1], 3, res[1]);
	close(sv[1]);
	close(res[1]);
	if (read(res[0], &there, sizeof(there)) != (ssize_t)sizeof(there)) {
		/* root without CAP_SYS_ADMIN (some containers): unshare failed, exit 5 */
		assert_int_equal(waitpid(pid, &status, 0), pid);
		assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 5);
		close(sv[0]);
		close(res[0]);
		skip();
		return;
	}
	assert_true(there != 0 && there != here.st_ino); /* really another namespace */
	assert_int_equal(mw_channel_local_offer(&pvm, sv[0], &mine, err, sizeof(err)), 0);
	pp_drive(&pvm);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
	close(res[0]);
	mw_channel_close(&pvm);
}

static void test_peer_death(void **state)
{
	struct mw_hello mine = hello(1, 1);
	struct pollfd p;
	struct mw_channel pvm;
	uint64_t t0;
	char err[160], c;
	int sv[2], status;
	ssize_t n;
	pid_t pid;

	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	pid = fork_joiner(sv[1], 1, -1);
	close(sv[1]);
	assert_int_equal(mw_channel_local_offer(&pvm, sv[0], &mine, err, sizeof(err)), 0);
	p.fd = pvm.sock_fd;
	p.events = POLLIN | POLLRDHUP;
	assert_int_equal(poll(&p, 1, 0), 0); /* alive: quiet */
	t0 = now_ms();
	assert_int_equal(kill(pid, SIGKILL), 0);
	assert_int_equal(poll(&p, 1, 10000), 1); /* generous: a loaded machine reaps slowly */
	assert_true(p.revents & (POLLHUP | POLLRDHUP | POLLIN));
	errno = 0;
	/* EOF, or ECONNRESET when the kernel still had bytes queued for the dead peer */
	n = recv(pvm.sock_fd, &c, 1, MSG_DONTWAIT);
	assert_true(n == 0 || (n < 0 && errno == ECONNRESET));
	/* Seen through the socket, well before any handshake or heartbeat timeout. */
	assert_true(now_ms() - t0 < 5000);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFSIGNALED(status));
	/* The region stays mapped and usable on our side until we close it. */
	assert_int_equal(mw_channel_send(&pvm, MW_DATA, 1, "x", 1), 0);
	mw_channel_close(&pvm);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_handshake_and_frames),
		cmocka_unit_test(test_kick_only_when_sleeping),
		cmocka_unit_test(test_full_and_want_space),
		cmocka_unit_test(test_malformed_frames),
		cmocka_unit_test(test_known_types_match_proto),
		cmocka_unit_test(test_corrupt_tail_kills_sender),
		cmocka_unit_test(test_version_mismatch),
		cmocka_unit_test(test_bad_magic_and_garbage),
		cmocka_unit_test(test_hello_fields_checked),
		cmocka_unit_test(test_join_rejects_bad_fds),
		cmocka_unit_test(test_data_pipe),
		cmocka_unit_test(test_two_process_stream),
		cmocka_unit_test(test_two_process_pingpong_sleeps),
		cmocka_unit_test(test_joiner_in_other_netns),
		cmocka_unit_test(test_peer_death),
	};

	signal(SIGPIPE, SIG_IGN);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
