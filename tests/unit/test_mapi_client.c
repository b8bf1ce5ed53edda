/* SPDX-License-Identifier: MIT */
/* test_mapi_client.c - libmwmapi against a scripted mw-flowd: replies, refusals, the packet ring */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include "common/fdpass.h"
#include "mapi/include/mwmapi.h"
#include "mapi/mapi_proto.h"

/*
 * The fake server answers one connection: CREATE and APPLY succeed (ids 1, 2,
 * ...), CONNECT passes a memfd the test also maps read-write, playing the
 * writer of the result area and the packet ring exactly as mapi_proto.h says.
 * With @refuse it sends mw-flowd's refusal and closes at once.
 */
struct fake {
	char path[108];
	int listen_fd;
	int memfd;
	uint8_t *area;
	int refuse;
	pthread_t thread;
};

static void *fake_serve(void *arg)
{
	struct fake *fk = arg;
	int fd = accept(fk->listen_fd, NULL, NULL), nf = 0;
	struct mw_mapi_req req;

	if (fk->refuse) {
		struct mw_mapi_reply rep = { .version = MW_MAPI_VERSION, .status = -EACCES };

		snprintf(rep.msg, sizeof(rep.msg), "mw-flowd: not root nor in flowd.mapi_group");
		send(fd, &rep, sizeof(rep), MSG_NOSIGNAL);
		close(fd);
		return NULL;
	}
	while (recv(fd, &req, sizeof(req), 0) == (ssize_t)sizeof(req)) {
		struct mw_mapi_reply rep = { .version = MW_MAPI_VERSION };
		int pass = -1;

		if (req.op == MW_MAPI_APPLY)
			rep.id = ++nf;
		if (req.op == MW_MAPI_CONNECT) {
			((struct mw_mapi_area *)fk->area)->nfuncs = (uint32_t)nf;
			rep.size = MW_MAPI_AREA_SIZE;
			pass = fk->memfd;
		}
		mw_fdpass_send(fd, &rep, sizeof(rep), pass, MSG_NOSIGNAL);
	}
	close(fd);
	return NULL;
}

static int fake_setup(void **state)
{
	struct fake *fk = calloc(1, sizeof(*fk));
	struct sockaddr_un sun = { .sun_family = AF_UNIX };

	snprintf(fk->path, sizeof(fk->path), "/tmp/mw-mapi-test-%d.sock", (int)getpid());
	unlink(fk->path);
	memcpy(sun.sun_path, fk->path, strlen(fk->path) + 1);
	fk->listen_fd = socket(AF_UNIX, SOCK_SEQPACKET, 0);
	assert_int_equal(bind(fk->listen_fd, (struct sockaddr *)&sun, sizeof(sun)), 0);
	assert_int_equal(listen(fk->listen_fd, 1), 0);
	fk->memfd = memfd_create("test-area", 0);
	assert_int_equal(ftruncate(fk->memfd, MW_MAPI_AREA_SIZE), 0);
	fk->area = mmap(NULL, MW_MAPI_AREA_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, fk->memfd, 0);
	assert_true(fk->area != MAP_FAILED);
	setenv("MW_MAPI_SOCKET", fk->path, 1);
	*state = fk;
	return 0;
}

static int fake_teardown(void **state)
{
	struct fake *fk = *state;

	pthread_join(fk->thread, NULL);
	munmap(fk->area, MW_MAPI_AREA_SIZE);
	close(fk->memfd);
	close(fk->listen_fd);
	unlink(fk->path);
	free(fk);
	return 0;
}

/* The writer's side of TO_BUFFER (mapi_proto.h): packet @s carries byte @s in data[0]. */
static void ring_write(struct fake *fk, uint64_t s)
{
	struct mw_mapi_ring *ring = (struct mw_mapi_ring *)(fk->area + MW_MAPI_RING_OFFSET);
	struct mw_mapi_pkt *p = (struct mw_mapi_pkt *)(ring + 1) + (s % MW_MAPI_RING_SLOTS);

	__atomic_store_n(&p->seq, 0, __ATOMIC_RELEASE);
	p->ts_us = 1000 + s;
	p->caplen = 60;
	p->wirelen = 1500;
	memset(p->data, 0, 60);
	p->data[0] = (uint8_t)s;
	__atomic_store_n(&p->seq, s, __ATOMIC_RELEASE);
	__atomic_store_n(&ring->head, s, __ATOMIC_RELEASE);
}

static int fake_flow(struct fake *fk, int *buf)
{
	int fd;

	pthread_create(&fk->thread, NULL, fake_serve, fk);
	fd = mapi_create_flow("eth0");
	assert_true(fd >= 0);
	assert_int_equal(mapi_apply_function(fd, "PKT_COUNTER"), 1);
	*buf = mapi_apply_function(fd, "TO_BUFFER");
	assert_int_equal(*buf, 2);
	assert_int_equal(mapi_connect(fd), 0);
	return fd;
}

static void test_packets_in_order(void **state)
{
	struct fake *fk = *state;
	struct mapi_pkthdr h;
	const unsigned char *p;
	int buf, fd = fake_flow(fk, &buf);
	uint64_t s;

	for (s = 1; s <= 3; s++)
		ring_write(fk, s);
	for (s = 1; s <= 3; s++) {
		p = mapi_get_next_pkt(fd, buf, &h);
		assert_non_null(p);
		assert_int_equal(p[0], s);
		assert_int_equal(h.ts_us, 1000 + s);
		assert_int_equal(h.caplen, 60);
		assert_int_equal(h.wirelen, 1500);
		assert_int_equal(h.lost, 0);
	}
	assert_int_equal(mapi_close_flow(fd), 0);
}

static void test_overrun_counts_lost(void **state)
{
	struct fake *fk = *state;
	struct mapi_pkthdr h;
	const unsigned char *p;
	int buf, fd = fake_flow(fk, &buf);
	uint64_t s, head = MW_MAPI_RING_SLOTS + 100;

	ring_write(fk, 1);
	p = mapi_get_next_pkt(fd, buf, &h);
	assert_non_null(p);
	for (s = 2; s <= head; s++)
		ring_write(fk, s);
	/* The reader wanted 2; the oldest safe frame is head - N + 2. */
	p = mapi_get_next_pkt(fd, buf, &h);
	assert_non_null(p);
	assert_int_equal(p[0], (uint8_t)(head - MW_MAPI_RING_SLOTS + 2));
	assert_int_equal(h.lost, head - MW_MAPI_RING_SLOTS + 2 - 2);
	p = mapi_get_next_pkt(fd, buf, &h);
	assert_int_equal(p[0], (uint8_t)(head - MW_MAPI_RING_SLOTS + 3));
	assert_int_equal(h.lost, 0);
	assert_int_equal(mapi_close_flow(fd), 0);
}

static void *late_writer(void *arg)
{
	struct timespec t = { 0, 50000000 };

	nanosleep(&t, NULL);
	ring_write(arg, 1);
	return NULL;
}

static void test_waits_for_a_packet(void **state)
{
	struct fake *fk = *state;
	struct mapi_pkthdr h;
	pthread_t w;
	int buf, fd = fake_flow(fk, &buf);
	const unsigned char *p;

	pthread_create(&w, NULL, late_writer, fk);
	p = mapi_get_next_pkt(fd, buf, &h);
	pthread_join(w, NULL);
	assert_non_null(p);
	assert_int_equal(p[0], 1);
	/* A fid the flow does not have is refused, not read out of bounds. */
	{
		struct mapi_result r;

		assert_int_equal(mapi_read_results(fd, 3, &r), -1);
		assert_int_equal(errno, EINVAL);
	}
	assert_int_equal(mapi_close_flow(fd), 0);
	assert_int_equal(mapi_close_flow(fd), -1);
	assert_int_equal(errno, EBADF);
}

static void test_refusal_has_its_reason(void **state)
{
	struct fake *fk = *state;

	fk->refuse = 1;
	pthread_create(&fk->thread, NULL, fake_serve, fk);
	assert_int_equal(mapi_create_flow("eth0"), -1);
	assert_int_equal(errno, EACCES);
	assert_string_equal(mapi_last_error(), "mw-flowd: not root nor in flowd.mapi_group");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_packets_in_order, fake_setup, fake_teardown),
		cmocka_unit_test_setup_teardown(test_overrun_counts_lost, fake_setup,
						fake_teardown),
		cmocka_unit_test_setup_teardown(test_waits_for_a_packet, fake_setup, fake_teardown),
		cmocka_unit_test_setup_teardown(test_refusal_has_its_reason, fake_setup,
						fake_teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
