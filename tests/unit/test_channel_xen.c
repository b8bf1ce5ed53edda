/* SPDX-License-Identifier: MIT */
/* test_channel_xen.c - Xen channel backend: key names, grant ref lists, hellos, and a clean failure without Xen */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/channel.h"
#include "common/channel_xen.h"
#include "common/keystore.h"

static struct mw_hello hello(void)
{
	struct mw_hello h = {
		.magic = MW_PROTO_MAGIC, .version_min = 1, .version_max = 1, .ins_id = 7,
		.ring_size = 128u * 1024u, .window = 65536, .heartbeat_ms = 100, .pid = 4242,
	};
	return h;
}

static void test_page_count(void **state)
{
	(void)state;
	/* Header page + two rings: the original's 1 MiB block is 256 pages. */
	assert_int_equal(mw_xen_page_count(128u * 1024u), 1 + 2 * 32);
	assert_int_equal(mw_xen_page_count(1u << 20), 1 + 2 * 256);
	assert_int_equal(mw_xen_page_count(MW_XEN_MAX_RING), MW_XEN_MAX_PAGES);
	assert_int_equal((size_t)mw_xen_page_count(1u << 20) * MW_XEN_PAGE_SIZE,
			 mw_channel_region_size(1u << 20));
	/* Invalid channel rings and rings a grant table cannot hold give 0. */
	assert_int_equal(mw_xen_page_count(0), 0);
	assert_int_equal(mw_xen_page_count(64u * 1024u), 0);
	assert_int_equal(mw_xen_page_count(3u * 65536u), 0);
	assert_int_equal(mw_xen_page_count(2 * MW_XEN_MAX_RING), 0);
	assert_int_equal(mw_xen_chunk_count(1), 1);
	assert_int_equal(mw_xen_chunk_count(64), 1);
	assert_int_equal(mw_xen_chunk_count(65), 2);
	assert_int_equal(mw_xen_chunk_count(256), 4); /* the original's 4 keys */
	assert_int_equal(mw_xen_chunk_count(MW_XEN_MAX_PAGES), 65);
}

static void test_key_names(void **state)
{
	char key[MW_KEY_MAX], tiny[16];

	(void)state;
	assert_int_equal(mw_xen_key(key, sizeof(key), 12, "pvm_hello"), 0);
	assert_string_equal(key, "/mw/ins/12/pvm_hello");
	assert_int_equal(mw_key_check(key), 0);
	assert_int_equal(mw_xen_chunk_key(key, sizeof(key), 65535, 1), 0);
	assert_string_equal(key, "/mw/ins/65535/gnt_ref_1");
	assert_int_equal(mw_xen_chunk_key(key, sizeof(key), 3, 65), 0);
	assert_string_equal(key, "/mw/ins/3/gnt_ref_65");
	assert_int_equal(mw_xen_key(tiny, sizeof(tiny), 3, "vm_evt_chn_is_bound"), -ENAMETOOLONG);
}

static void test_refs_encode(void **state)
{
	uint32_t refs[MW_XEN_REFS_PER_KEY + 1];
	char buf[MW_XEN_CHUNK_MAX];

	(void)state;
	assert_int_equal(mw_xen_refs_encode((uint32_t[]){ 0x1a, 0xff00, 0 }, 3, buf, sizeof(buf)),
			 10);
	assert_string_equal(buf, "1a ff00 0:");
	assert_int_equal(mw_xen_refs_encode((uint32_t[]){ 0xffffffffu }, 1, buf, sizeof(buf)), 9);
	assert_string_equal(buf, "ffffffff:");
	for (uint32_t i = 0; i <= MW_XEN_REFS_PER_KEY; i++)
		refs[i] = 0xfffffff0u + (i & 15);
	/* A full chunk of 8-digit refs fits the documented maximum exactly. */
	assert_int_equal(mw_xen_refs_encode(refs, MW_XEN_REFS_PER_KEY, buf, sizeof(buf)),
			 MW_XEN_CHUNK_MAX - 1);
	assert_int_equal(buf[MW_XEN_CHUNK_MAX - 2], ':');
	assert_int_equal(mw_xen_refs_encode(refs, 0, buf, sizeof(buf)), -EINVAL);
	assert_int_equal(mw_xen_refs_encode(refs, MW_XEN_REFS_PER_KEY + 1, buf, sizeof(buf)),
			 -EINVAL);
	assert_int_equal(mw_xen_refs_encode(refs, 2, buf, 10), -ENOSPC);
}

static void test_refs_roundtrip(void **state)
{
	uint32_t in[MW_XEN_REFS_PER_KEY], out[MW_XEN_REFS_PER_KEY];
	char buf[MW_XEN_CHUNK_MAX];

	(void)state;
	for (uint32_t n = 1; n <= MW_XEN_REFS_PER_KEY; n++) {
		for (uint32_t i = 0; i < n; i++)
			in[i] = (i * 2654435761u) >> (i % 29);
		assert_true(mw_xen_refs_encode(in, n, buf, sizeof(buf)) > 0);
		memset(out, 0xa5, sizeof(out));
		assert_int_equal(mw_xen_refs_decode(buf, out, MW_XEN_REFS_PER_KEY), (int)n);
		assert_memory_equal(in, out, n * sizeof(in[0]));
	}
}

static void test_refs_decode_strict(void **state)
{
	static const char *const bad[] = {
		"",            /* empty */
		":",           /* no ref */
		"1a 1b",       /* no terminator */
		"1a 1b ",      /* trailing space, no terminator */
		"1a  1b:",     /* double space */
		" 1a:",        /* leading space */
		"1a :",        /* space before the terminator */
		"1A:",         /* uppercase */
		"0x1a:",       /* prefix */
		"1g:",         /* not hex */
		"-1:",         /* sign */
		"123456789:",  /* over 32 bits */
		"1a:1b",       /* data after the terminator */
		"1a::",        /* double terminator */
		"1a,1b:",      /* other separator */
		"1a\n",        /* newline instead of ':' */
		"1a 1b:\n",    /* trailing newline */
	};
	uint32_t refs[MW_XEN_REFS_PER_KEY + 2];
	char buf[2 * MW_XEN_CHUNK_MAX];
	size_t off = 0;

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		print_message("bad: \"%s\"\n", bad[i]);
		assert_int_equal(mw_xen_refs_decode(bad[i], refs, MW_XEN_REFS_PER_KEY), -EINVAL);
	}
	assert_int_equal(mw_xen_refs_decode("0:", refs, 1), 1);
	assert_int_equal(refs[0], 0);
	assert_int_equal(mw_xen_refs_decode("ffffffff 00000001:", refs, 2), 2);
	assert_int_equal(refs[0], 0xffffffffu);
	assert_int_equal(refs[1], 1);
	/* More refs than the caller has room for. */
	assert_int_equal(mw_xen_refs_decode("1 2 3:", refs, 2), -E2BIG);
	/* More than 64 in one key, even with room. */
	for (int i = 0; i < (int)MW_XEN_REFS_PER_KEY + 1; i++)
		off += (size_t)snprintf(buf + off, sizeof(buf) - off, "%x%c", i + 1,
					i == (int)MW_XEN_REFS_PER_KEY ? ':' : ' ');
	assert_int_equal(mw_xen_refs_decode(buf, refs, MW_XEN_REFS_PER_KEY + 2), -E2BIG);
}

static void test_hello_text(void **state)
{
	struct mw_hello h = hello(), out;
	char buf[MW_XEN_HELLO_MAX];

	(void)state;
	assert_true(mw_xen_hello_encode(&h, buf, sizeof(buf)) > 0);
	assert_string_equal(buf, "4843574d 1 1 7 0 131072 65536 100 4242");
	assert_int_equal(mw_xen_hello_decode(buf, &out), 0);
	assert_memory_equal(&h, &out, sizeof(h));

	/* Extremes survive. */
	h.magic = 0xffffffffu;
	h.version_min = h.version_max = h.ins_id = 65535;
	h.pvm_index = 255;
	h.ring_size = h.window = h.heartbeat_ms = UINT32_MAX;
	h.pid = INT32_MIN;
	assert_true(mw_xen_hello_encode(&h, buf, sizeof(buf)) > 0);
	assert_int_equal(mw_xen_hello_decode(buf, &out), 0);
	assert_memory_equal(&h, &out, sizeof(h));
	assert_int_equal(mw_xen_hello_encode(&h, buf, 8), -ENOSPC);

	/* Wrong field count, ranges, characters. */
	assert_int_equal(mw_xen_hello_decode("", &out), -EINVAL);
	assert_int_equal(mw_xen_hello_decode("4843574d 1 1 7 0 131072 65536 100", &out), -EINVAL);
	assert_int_equal(mw_xen_hello_decode("4843574d 1 1 7 0 131072 65536 100 1 2", &out),
			 -EINVAL);
	assert_int_equal(mw_xen_hello_decode("4843574d 65536 1 7 0 131072 65536 100 1", &out),
			 -EINVAL);
	assert_int_equal(mw_xen_hello_decode("4843574d 1 1 7 256 131072 65536 100 1", &out),
			 -EINVAL);
	assert_int_equal(mw_xen_hello_decode("4843574d 1 1 7 0 4294967296 65536 100 1", &out),
			 -EINVAL);
	assert_int_equal(mw_xen_hello_decode("4843574d 1 1 7 0 131072 65536 100 2147483648", &out),
			 -EINVAL);
	assert_int_equal(mw_xen_hello_decode("4843574D 1 1 7 0 131072 65536 100 1", &out), -EINVAL);
	assert_int_equal(mw_xen_hello_decode("4843574d 1 1 7 0 131072 65536 100 1 ", &out),
			 -EINVAL);
	assert_int_equal(mw_xen_hello_decode("4843574d  1 1 7 0 131072 65536 100 1", &out),
			 -EINVAL);
	assert_int_equal(mw_xen_hello_decode("4843574d 1 1 7 0 131072 65536 100 -", &out),
			 -EINVAL);
	assert_int_equal(mw_xen_hello_decode("4843574d 1 -1 7 0 131072 65536 100 1", &out),
			 -EINVAL);
}

static void test_open_error_line(void **state)
{
	char err[256];

	(void)state;
	assert_int_equal(mw_xen_open_error("/dev/xen/evtchn", EACCES, err, sizeof(err)), -EACCES);
	assert_string_equal(err, "xen channel: cannot open /dev/xen/evtchn (Permission denied); "
				 "use the local channel on hosts without Xen");
	assert_int_equal(mw_xen_open_error("/dev/xen/gntdev", 0, err, sizeof(err)), -ENOENT);
	assert_non_null(strstr(err, "(No such file or directory)"));
	assert_int_equal(mw_xen_open_error("/dev/xen/gntdev", EIO, err, 12), -EIO);
	assert_string_equal(err, "xen channel");
}

struct store {
	char dir[64];
	struct mw_keystore *ks;
};

static int store_setup(void **state)
{
	struct store *s = calloc(1, sizeof(*s));
	char err[256];

	assert_non_null(s);
	snprintf(s->dir, sizeof(s->dir), "/tmp/mw-chxen-XXXXXX");
	assert_non_null(mkdtemp(s->dir));
	assert_int_equal(mw_keystore_open(&s->ks, "local", s->dir, err, sizeof(err)), 0);
	*state = s;
	return 0;
}

static int store_teardown(void **state)
{
	struct store *s = *state;
	char cmd[128];

	mw_keystore_close(s->ks);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", s->dir);
	if (system(cmd) != 0) /* NOLINT(cert-env33-c): fixed command, mkdtemp path */
		return -1;
	free(s);
	return 0;
}

/*
 * No hypervisor here (the test is skipped where /dev/xen exists): both sides
 * fail at once with one line naming the device, leave the channel closed and
 * touch no key (so no peer is misled).
 */
static void test_no_xen_fails_cleanly(void **state)
{
	struct store *s = *state;
	struct mw_hello h = hello();
	struct mw_channel ch;
	char err[256] = "", buf[64];
	int ret;

	if (access("/dev/xen", F_OK) == 0)
		skip();
	memset(&ch, 0x5a, sizeof(ch));
	ret = mw_channel_xen_offer(&ch, s->ks, 7, &h, err, sizeof(err));
	assert_int_equal(ret, -ENOENT);
	assert_string_equal(err, "xen channel: cannot open /dev/xen/gntalloc (No such file or "
				 "directory); use the local channel on hosts without Xen");
	assert_null(ch.ops);
	assert_int_equal(ch.wait_fd, -1);
	mw_channel_close(&ch);

	err[0] = 0;
	ret = mw_channel_xen_join(&ch, s->ks, 0, &h, err, sizeof(err));
	assert_int_equal(ret, -ENOENT);
	assert_string_equal(err, "xen channel: cannot open /dev/xen/gntdev (No such file or "
				 "directory); use the local channel on hosts without Xen");
	assert_null(ch.ops);
	assert_int_equal(mw_keystore_read(s->ks, "/mw/ins/7/ins_hello", buf, sizeof(buf)),
			 -ENOENT);
	mw_channel_close(&ch);
	/* A closed channel refuses to send rather than crashing. */
	assert_int_equal(mw_channel_send(&ch, MW_CREDIT, 1, "", 0), -EPIPE);
}

/* The PVM's publication read back by the INS side, and every way it can be wrong. */
static void test_refs_through_keystore(void **state)
{
	struct store *s = *state;
	uint32_t n = mw_xen_page_count(1u << 20), in[MW_XEN_MAX_PAGES], out[MW_XEN_MAX_PAGES];
	char err[256] = "", val[MW_XEN_CHUNK_MAX + 1];

	assert_int_equal(n, 513);
	for (uint32_t i = 0; i < n; i++)
		in[i] = 0x100u + i * 3u;
	assert_int_equal(mw_xen_publish_refs(s->ks, 9, in, n), 0);
	assert_int_equal(mw_keystore_read(s->ks, "/mw/ins/9/gnt_ref_chunks", val, sizeof(val)), 1);
	assert_string_equal(val, "9");
	/* The last chunk holds the 513th ref alone: 0x100 + 512 * 3. */
	assert_true(mw_keystore_read(s->ks, "/mw/ins/9/gnt_ref_9", val, sizeof(val)) > 0);
	assert_string_equal(val, "700:");
	assert_int_equal(mw_xen_read_refs(s->ks, 9, out, n, err, sizeof(err)), 0);
	assert_memory_equal(in, out, n * sizeof(in[0]));

	/* A ring of another size needs another chunk count. */
	assert_int_equal(mw_xen_read_refs(s->ks, 9, out, 65, err, sizeof(err)), -EPROTO);
	assert_string_equal(err, "gnt_ref_chunks is wrong, expected 2 for 65 pages");
	/* Same chunk count, one ref short. */
	assert_int_equal(mw_xen_read_refs(s->ks, 9, out, n + 1, err, sizeof(err)), -EPROTO);
	assert_string_equal(err, "513 grant refs published, the ring needs 514");
	/* One ref too many for the ring. */
	assert_int_equal(mw_keystore_write(s->ks, "/mw/ins/9/gnt_ref_9", "700 701:", 8), 0);
	assert_int_equal(mw_xen_read_refs(s->ks, 9, out, n, err, sizeof(err)), -EPROTO);
	assert_string_equal(err, "gnt_ref_9 is missing or malformed (Argument list too long)");
	assert_int_equal(mw_keystore_write(s->ks, "/mw/ins/9/gnt_ref_9", "700:", 4), 0);
	assert_int_equal(mw_xen_read_refs(s->ks, 9, out, n, err, sizeof(err)), 0);
	/* A garbled chunk. */
	assert_int_equal(mw_keystore_write(s->ks, "/mw/ins/9/gnt_ref_4", "1 2 zz:", 7), 0);
	assert_int_equal(mw_xen_read_refs(s->ks, 9, out, n, err, sizeof(err)), -EPROTO);
	assert_string_equal(err, "gnt_ref_4 is missing or malformed (Invalid argument)");
	/* A missing chunk. */
	assert_int_equal(mw_keystore_remove(s->ks, "/mw/ins/9/gnt_ref_4"), 0);
	assert_int_equal(mw_xen_read_refs(s->ks, 9, out, n, err, sizeof(err)), -EPROTO);
	assert_string_equal(err, "gnt_ref_4 is missing or malformed (No such file or directory)");
	/* An oversized chunk value is refused, not truncated. */
	memset(val, '1', sizeof(val) - 1);
	val[sizeof(val) - 1] = 0;
	assert_int_equal(mw_keystore_write(s->ks, "/mw/ins/9/gnt_ref_4", val, sizeof(val) - 1), 0);
	assert_int_equal(mw_xen_read_refs(s->ks, 9, out, n, err, sizeof(err)), -EPROTO);
	assert_non_null(strstr(err, "gnt_ref_4 is missing or malformed"));
	/* The count key garbled or absent. */
	assert_int_equal(mw_keystore_write(s->ks, "/mw/ins/9/gnt_ref_chunks", "9x", 2), 0);
	assert_int_equal(mw_xen_read_refs(s->ks, 9, out, n, err, sizeof(err)), -EPROTO);
	assert_string_equal(err, "gnt_ref_chunks is missing or not a number, expected 9 for 513 "
				 "pages");
	assert_int_equal(mw_xen_read_refs(s->ks, 10, out, n, err, sizeof(err)), -EPROTO);
	assert_non_null(strstr(err, "gnt_ref_chunks is missing"));
	/* Nothing or too much to publish. */
	assert_int_equal(mw_xen_publish_refs(s->ks, 9, in, 0), -EINVAL);
	assert_int_equal(mw_xen_publish_refs(s->ks, 9, in, MW_XEN_MAX_PAGES + 1), -EINVAL);
}

/* Watch events name any key a guest made below its directory: only ours pass. */
static void test_parse_ins_key(void **state)
{
	static const char *const bad[] = {
		"/mw/ins", "/mw/ins/", "/mw/ins/0/ins_hello", "/mw/ins/05/ins_hello",
		"/mw/ins/32752/ins_hello", "/mw/ins/99999/x", "/mw/ins/123456/x",
		"/mw/ins/7/", "/mw/ins/7/a/b", "/mw/ins/7/Ins_hello", "/mw/ins/7/ins-hello",
		"/mw/ins/7x/ins_hello", "/mw/insx/7/ins_hello", "/mw/pvms/0/ins/7",
		"/mw/ins/-7/ins_hello", "/mw/ins/ 7/ins_hello",
		"/mw/ins/7/abcdefghijklmnopqrstuvwxyz012345", /* 32 bytes: one too many */
	};
	char name[MW_XEN_NAME_MAX], small[8];
	uint16_t dom = 0;

	(void)state;
	assert_int_equal(mw_xen_parse_ins_key("/mw/ins/7/ins_hello", &dom, name, sizeof(name)), 0);
	assert_int_equal(dom, 7);
	assert_string_equal(name, "ins_hello");
	assert_int_equal(mw_xen_parse_ins_key("/mw/ins/32751", &dom, name, sizeof(name)), 0);
	assert_int_equal(dom, 32751);
	assert_string_equal(name, "");
	assert_int_equal(mw_xen_parse_ins_key("/mw/ins/1/abcdefghijklmnopqrstuvwxyz01234", &dom,
					      name, sizeof(name)),
			 0);
	assert_int_equal(mw_xen_parse_ins_key("/mw/ins/7/ins_hello", &dom, small, sizeof(small)),
			 -EINVAL);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		dom = 9;
		assert_int_equal(mw_xen_parse_ins_key(bad[i], &dom, name, sizeof(name)), -EINVAL);
		assert_int_equal(dom, 9); /* untouched on failure */
	}
}

/* The event-loop half without a hypervisor: one line, nothing written. */
static void test_answer_without_xen(void **state)
{
	struct store *s = *state;
	struct mw_hello h = hello();
	struct mw_channel ch;
	char err[256] = "", text[MW_XEN_HELLO_MAX], buf[64];

	if (access("/dev/xen", F_OK) == 0)
		skip();
	assert_true(mw_xen_hello_encode(&h, text, sizeof(text)) > 0);
	memset(&ch, 0x5a, sizeof(ch));
	assert_int_equal(mw_channel_xen_answer(&ch, s->ks, 7, &h, text, err, sizeof(err)), -ENOENT);
	assert_non_null(strstr(err, "cannot open /dev/xen/gntalloc"));
	assert_null(ch.ops);
	assert_int_equal(mw_keystore_read(s->ks, "/mw/ins/7/pvm_hello", buf, sizeof(buf)),
			 -ENOENT);
	mw_channel_close(&ch);
}

/* vm_evt_chn_is_bound is written by the guest: only "1" confirms. */
static void test_confirm_values(void **state)
{
	struct store *s = *state;
	struct mw_channel ch;
	char err[128] = "";

	memset(&ch, 0, sizeof(ch));
	assert_int_equal(mw_channel_xen_confirm(&ch, s->ks, 7, err, sizeof(err)), 0);
	assert_int_equal(mw_keystore_write(s->ks, "/mw/ins/7/vm_evt_chn_is_bound", "1", 1), 0);
	assert_int_equal(mw_channel_xen_confirm(&ch, s->ks, 7, err, sizeof(err)), 1);
	assert_int_equal(mw_keystore_write(s->ks, "/mw/ins/7/vm_evt_chn_is_bound", "11", 2), 0);
	assert_int_equal(mw_channel_xen_confirm(&ch, s->ks, 7, err, sizeof(err)), -EPROTO);
	assert_string_equal(err, "INS 7: vm_evt_chn_is_bound is not 1");
	assert_int_equal(mw_keystore_write(s->ks, "/mw/ins/7/vm_evt_chn_is_bound",
					   "1111111111111111", 16),
			 0);
	assert_int_equal(mw_channel_xen_confirm(&ch, s->ks, 7, err, sizeof(err)), -EPROTO);
}

/* Bad ring sizes are refused before any device is opened. */
static void test_offer_checks_ring_size(void **state)
{
	struct store *s = *state;
	struct mw_hello h = hello();
	struct mw_channel ch;
	char err[256] = "";

	h.ring_size = 100000;
	assert_int_equal(mw_channel_xen_offer(&ch, s->ks, 7, &h, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "ring_size 100000 is not a power of two"));
	h.ring_size = 2 * MW_XEN_MAX_RING;
	assert_int_equal(mw_channel_xen_offer(&ch, s->ks, 7, &h, err, sizeof(err)), -EINVAL);
	assert_string_equal(err, "ring_size 16777216 is over the Xen limit of 8388608");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_page_count),
		cmocka_unit_test(test_key_names),
		cmocka_unit_test(test_refs_encode),
		cmocka_unit_test(test_refs_roundtrip),
		cmocka_unit_test(test_refs_decode_strict),
		cmocka_unit_test(test_hello_text),
		cmocka_unit_test(test_open_error_line),
		cmocka_unit_test(test_parse_ins_key),
		cmocka_unit_test_setup_teardown(test_answer_without_xen, store_setup, store_teardown),
		cmocka_unit_test_setup_teardown(test_confirm_values, store_setup, store_teardown),
		cmocka_unit_test_setup_teardown(test_no_xen_fails_cleanly, store_setup,
						store_teardown),
		cmocka_unit_test_setup_teardown(test_refs_through_keystore, store_setup,
						store_teardown),
		cmocka_unit_test_setup_teardown(test_offer_checks_ring_size, store_setup,
						store_teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
