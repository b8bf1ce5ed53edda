/* SPDX-License-Identifier: MIT */
/* fuzz_xenstore.c - what an INS domU writes in XenStore, through mw-pvm's and mw-ins's parsers */
#include <ftw.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/channel.h"
#include "common/channel_xen.h"
#include "common/keystore.h"

/*
 * A domU may write anything below /mw/ins/<its domid>/ (docs/xen.md), and
 * mw-pvm sees every change as a watch event naming the key.  The input is
 * lines: line 1 is a changed key (mw_xen_parse_ins_key), line 2 a hello
 * (mw_xen_hello_decode), line 3 the vm_evt_chn_is_bound value
 * (mw_channel_xen_confirm), line 4 gnt_ref_chunks, the rest gnt_ref_1..n
 * (mw_xen_read_refs, through a local keystore standing in for XenStore:
 * the same keys and values, read by the same code).
 *
 * Invariants: an accepted key prints back to itself; an accepted hello
 * re-encodes to a text that decodes to the same hello; confirm says 1 only
 * for "1"; read_refs succeeds only with exactly the refs the chunks decode
 * to, in order.
 */

#define LINES 10

static char fz_root[64];
static struct mw_keystore *fz_ks;

static int fz_rm(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
	(void)st, (void)type, (void)ftw;
	remove(path);
	return 0;
}

static void fz_cleanup(void)
{
	mw_keystore_close(fz_ks);
	if (fz_root[0])
		nftw(fz_root, fz_rm, 16, FTW_DEPTH | FTW_PHYS);
}

static void fz_init(void)
{
	char err[256], root[96];

	snprintf(fz_root, sizeof(fz_root), "/tmp/mw-fuzz-xs-XXXXXX");
	if (!mkdtemp(fz_root))
		abort();
	snprintf(root, sizeof(root), "%s/store", fz_root);
	if (mw_keystore_open(&fz_ks, "local", root, err, sizeof(err)))
		abort();
	atexit(fz_cleanup);
}

static void check_key(const char *key)
{
	char name[MW_XEN_NAME_MAX], back[MW_KEY_MAX + 64];
	uint16_t dom = 0;

	if (mw_xen_parse_ins_key(key, &dom, name, sizeof(name)))
		return;
	if (!dom || dom > MW_XEN_DOMID_MAX)
		abort();
	snprintf(back, sizeof(back), name[0] ? "/mw/ins/%u/%s" : "/mw/ins/%u", dom, name);
	if (strcmp(back, key) || mw_key_check(key))
		abort();
}

static void check_hello(const char *text)
{
	struct mw_hello a, b;
	char again[MW_XEN_HELLO_MAX];

	if (mw_xen_hello_decode(text, &a))
		return;
	if (mw_xen_hello_encode(&a, again, sizeof(again)) <= 0 || mw_xen_hello_decode(again, &b) ||
	    memcmp(&a, &b, sizeof(a)))
		abort();
}

static void check_confirm(const char *val)
{
	struct mw_channel ch;
	char err[128];
	int ret;

	memset(&ch, 0, sizeof(ch));
	if (mw_keystore_write(fz_ks, "/mw/ins/7/vm_evt_chn_is_bound", val, strlen(val)))
		return;
	ret = mw_channel_xen_confirm(&ch, fz_ks, 7, err, sizeof(err));
	if ((ret == 1) != !strcmp(val, "1") || ret == 0)
		abort();
}

static void check_refs(char **line, int n)
{
	static uint32_t refs[MW_XEN_MAX_PAGES], want[MW_XEN_MAX_PAGES];
	char key[MW_KEY_MAX], err[160];
	uint32_t got = 0, nrefs;
	unsigned long chunks;

	mw_keystore_remove(fz_ks, "/mw/ins/7");
	if (n < 1 || mw_keystore_write(fz_ks, "/mw/ins/7/gnt_ref_chunks", line[0], strlen(line[0])))
		return;
	for (int i = 1; i < n; i++) {
		int k;

		snprintf(key, sizeof(key), "/mw/ins/7/gnt_ref_%d", i);
		mw_keystore_write(fz_ks, key, line[i], strlen(line[i]));
		k = mw_xen_refs_decode(line[i], want + got, MW_XEN_MAX_PAGES - got);
		if (k > 0)
			got += (uint32_t)k;
	}
	/* Ask for as many refs as the lines hold (a ring's page count needs not match). */
	nrefs = got ? got : 1;
	if (mw_xen_read_refs(fz_ks, 7, refs, nrefs, err, sizeof(err)))
		return;
	/* Accepted: the count is strict decimal, and exactly its chunks, all well-formed, hold them. */
	chunks = strtoul(line[0], NULL, 10);
	if (chunks != mw_xen_chunk_count(nrefs) || chunks > (unsigned long)(n - 1))
		abort();
	got = 0;
	for (unsigned long i = 1; i <= chunks; i++) {
		int k = mw_xen_refs_decode(line[i], want + got, MW_XEN_MAX_PAGES - got);

		if (k <= 0)
			abort();
		got += (uint32_t)k;
	}
	if (got != nrefs || memcmp(refs, want, got * sizeof(*refs)))
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char buf[4096], *line[LINES];
	int n = 0;

	if (!fz_ks)
		fz_init();
	if (size >= sizeof(buf))
		size = sizeof(buf) - 1;
	memcpy(buf, data, size);
	buf[size] = 0;
	for (char *p = buf; n < LINES && p;) {
		char *nl = strchr(p, '\n');

		line[n++] = p;
		if (nl)
			*nl = 0;
		p = nl ? nl + 1 : NULL;
	}
	check_key(line[0]);
	if (n > 1)
		check_hello(line[1]);
	if (n > 2)
		check_confirm(line[2]);
	if (n > 3)
		check_refs(line + 3, n - 3);
	return 0;
}
