/* SPDX-License-Identifier: MIT */
/* xl_domcfg.c - print the xl.cfg(5) text mw-balancer's xl backend builds for one INS */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

#include "balancer/xlcfg.h"
#include "common/config.h"

/*
 * Usage: xl_domcfg CONFIG ID SLOT
 * Loads the mwcomms configuration CONFIG (balancer.xl_*, subnet, bridge, tag) and prints
 * what bal_xl_domcfg_build() + bal_xl_domcfg_format() make of INS ID at address SLOT, so
 * tests/xen boots the guest with exactly the domain the balancer would create.
 */
/* A whole decimal number in 0..65535, or -1. */
static int number(const char *s)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(s, &end, 10);
	return errno || end == s || *end || v < 0 || v > 65535 ? -1 : (int)v;
}

int main(int argc, char **argv)
{
	static struct mw_config cfg;
	static struct mw_config_errors errs;
	struct bal_xl_domcfg dc;
	char err[256] = "", text[2048];
	int i;

	if (argc != 4) {
		fprintf(stderr, "usage: xl_domcfg CONFIG ID SLOT\n");
		return 2;
	}
	if (mw_config_load(&cfg, argv[1], &errs)) {
		for (i = 0; i < errs.count && i < MW_CONFIG_MAX_ERRORS; i++)
			fprintf(stderr, "xl_domcfg: %s\n", errs.msg[i]);
		return 1;
	}
	if (bal_xl_domcfg_build(&dc, &cfg.balancer, number(argv[2]), number(argv[3]), err,
				sizeof(err))) {
		fprintf(stderr, "xl_domcfg: %s\n", err);
		return 1;
	}
	if (bal_xl_domcfg_format(&dc, text, sizeof(text)) < 0) {
		fprintf(stderr, "xl_domcfg: the configuration does not fit %zu bytes\n",
			sizeof(text));
		return 1;
	}
	fputs(text, stdout);
	return 0;
}
