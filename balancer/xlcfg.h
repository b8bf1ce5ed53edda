/* SPDX-License-Identifier: MIT */
/* xlcfg.h - the xl backend's domU configuration, built by a pure function */
#ifndef BAL_XLCFG_H
#define BAL_XLCFG_H

#include <stddef.h>

#include "common/config.h"

struct bal_xl_domcfg {
	char name[64]; /* "mw-<tag>-ins<N>" */
	char kernel[MW_PATH_MAX];
	char ramdisk[MW_PATH_MAX]; /* "" = none */
	long memory_kb;
	int vcpus;
	char bridge[16];
	char mac[18];	   /* "00:16:3e:xx:xx:xx", derived from the INS id */
	char ip[16];	   /* the domU's address, dotted quad */
	char cmdline[256]; /* what mw-ins in the domU reads: id, address, gateway */
};

/**
 * bal_xl_domcfg_build() - the domU for INS @id at address slot @slot
 * @out:    filled
 * @bc:     xl_kernel, xl_ramdisk, xl_memory_mb, xl_vcpus, bridge, subnet, tag
 * @id:     INS id, 1..65535
 * @slot:   1.. : the domU gets host slot+1 of the subnet, the bridge host 1
 * @err:    one line on error
 *
 * Return: 0; -EINVAL (no kernel configured, bad id, subnet not IPv4 or the
 * slot outside it), with @err saying which
 */
int bal_xl_domcfg_build(struct bal_xl_domcfg *out, const struct mw_balancer_config *bc, int id,
			int slot, char *err, size_t errlen);

/**
 * bal_xl_domcfg_format() - the same domU as an xl.cfg(5) text, for logs and `xl create`
 * Return: bytes written (excluding NUL), or -ENOSPC if @len is too small
 */
int bal_xl_domcfg_format(const struct bal_xl_domcfg *c, char *buf, size_t len);

#endif /* BAL_XLCFG_H */
