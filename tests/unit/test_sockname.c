/* SPDX-License-Identifier: MIT */
/* test_sockname.c - abstract identity names: round trips, exact lengths, foreign names refused */
#include <errno.h>
#include <stddef.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <setjmp.h>
#include <stdarg.h>
#include <stdint.h>
#include <cmocka.h>

#include "common/sockname.h"

#define OFF offsetof(struct sockaddr_un, sun_path)

static void test_socket_name_roundtrip(void **state)
{
	struct mw_sockname n = { .kind = MW_SOCKNAME_SOCKET, .tag = 0xdeadbeefcafef00dULL,
				 .id = 0x5300010200000007ULL, .nonce = 0x0123456789abcdefULL };
	struct mw_sockname d;
	struct sockaddr_un sun;
	socklen_t len = mw_sockname_encode(&n, &sun);

	assert_int_equal(len, OFF + 28);
	assert_int_equal(sun.sun_family, AF_UNIX);
	assert_int_equal(sun.sun_path[0], '\0');
	assert_memory_equal(sun.sun_path + 1, "mwS", 3);
	assert_int_equal(mw_sockname_decode(&d, &sun, len), 0);
	assert_int_equal(d.kind, 'S');
	assert_int_equal(d.tag, n.tag);
	assert_int_equal(d.id, n.id);
	assert_true(d.nonce == n.nonce);
	assert_int_equal(d.peer.family, 0);
}

static void test_accepted_name_roundtrip(void **state)
{
	struct mw_sockname n = { .kind = MW_SOCKNAME_ACCEPTED, .tag = 1, .id = 0x53000102800000ffULL,
				 .nonce = 0xfedcba9876543210ULL,
				 .peer = { .family = 6, .port = 443, .scope_id = 3,
					   .addr = { 0xfe, 0x80, [15] = 1 } },
				 .local = { .family = 4, .port = 8080, .addr = { 10, 0, 0, 2 } } };
	struct mw_sockname d;
	struct sockaddr_un sun;
	socklen_t len = mw_sockname_encode(&n, &sun);

	assert_int_equal(len, OFF + 76);
	assert_int_equal(mw_sockname_decode(&d, &sun, len), 0);
	assert_int_equal(d.kind, 'A');
	assert_int_equal(d.id, n.id);
	assert_true(d.nonce == n.nonce);
	assert_memory_equal(&d.peer, &n.peer, sizeof(n.peer));
	assert_memory_equal(&d.local, &n.local, sizeof(n.local));
}

static void test_foreign_names_refused(void **state)
{
	struct mw_sockname n = { .kind = MW_SOCKNAME_SOCKET, .tag = 7, .id = 9 };
	struct mw_sockname d;
	struct sockaddr_un sun, bad;
	socklen_t len = mw_sockname_encode(&n, &sun);

	/* Wrong length either way, truncated, or over-long. */
	assert_int_equal(mw_sockname_decode(&d, &sun, len - 1), -EINVAL);
	assert_int_equal(mw_sockname_decode(&d, &sun, len + 1), -EINVAL);
	assert_int_equal(mw_sockname_decode(&d, &sun, (socklen_t)OFF), -EINVAL);
	assert_int_equal(mw_sockname_decode(&d, &sun, sizeof(sun) + 1), -EINVAL);
	assert_int_equal(mw_sockname_decode(&d, NULL, len), -EINVAL);
	/* A filesystem path, another abstract name, a bad kind, a bad family. */
	memset(&bad, 0, sizeof(bad));
	bad.sun_family = AF_UNIX;
	memcpy(bad.sun_path, "/run/mwcomms/pvm.sock", 21);
	assert_int_equal(mw_sockname_decode(&d, &bad, (socklen_t)(OFF + 21)), -EINVAL);
	bad = sun;
	bad.sun_path[1] = 'x';
	assert_int_equal(mw_sockname_decode(&d, &bad, len), -EINVAL);
	bad = sun;
	bad.sun_path[3] = 'Q';
	assert_int_equal(mw_sockname_decode(&d, &bad, len), -EINVAL);
	bad = sun;
	bad.sun_family = AF_INET;
	assert_int_equal(mw_sockname_decode(&d, &bad, len), -EINVAL);
	/* An 'S' name claiming to be 'A' has the wrong length. */
	bad = sun;
	bad.sun_path[3] = 'A';
	assert_int_equal(mw_sockname_decode(&d, &bad, len), -EINVAL);
	assert_int_equal(d.kind, 0);
}

static void test_accepted_bad_family_refused(void **state)
{
	struct mw_sockname n = { .kind = MW_SOCKNAME_ACCEPTED, .tag = 1, .id = 2,
				 .peer = { .family = 4 } };
	struct mw_sockname d;
	struct sockaddr_un sun;
	socklen_t len;

	n.peer.family = 5;
	len = mw_sockname_encode(&n, &sun);
	assert_int_equal(mw_sockname_decode(&d, &sun, len), -EINVAL);
}

/* The name works with the kernel: bind, then getsockname() decodes to the same. */
static void test_kernel_roundtrip(void **state)
{
	struct mw_sockname n = { .kind = MW_SOCKNAME_SOCKET, .tag = (uint64_t)getpid() << 20,
				 .id = 0x5300000000000042ULL, .nonce = 0x4200ff00ULL };
	struct mw_sockname d;
	struct sockaddr_un sun, got;
	socklen_t len = mw_sockname_encode(&n, &sun), glen = sizeof(got);
	int fd = socket(AF_UNIX, SOCK_STREAM, 0);

	assert_true(fd >= 0);
	assert_int_equal(bind(fd, (struct sockaddr *)&sun, len), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&got, &glen), 0);
	assert_int_equal(glen, len);
	assert_int_equal(mw_sockname_decode(&d, &got, glen), 0);
	assert_int_equal(d.id, n.id);
	assert_int_equal(d.tag, n.tag);
	assert_true(d.nonce == n.nonce);
	close(fd);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_socket_name_roundtrip),
		cmocka_unit_test(test_accepted_name_roundtrip),
		cmocka_unit_test(test_foreign_names_refused),
		cmocka_unit_test(test_accepted_bad_family_refused),
		cmocka_unit_test(test_kernel_roundtrip),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
