/* SPDX-License-Identifier: MIT */
/* test_balancer_xlcfg.c - balancer/xlcfg.c: the xl backend's domU configuration */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "balancer/xlcfg.h"

static void base(struct mw_config *cfg)
{
	mw_config_defaults(cfg);
	strcpy(cfg->balancer.xl_kernel, "/boot/mw-ins.kernel");
	strcpy(cfg->balancer.xl_ramdisk, "/boot/mw-ins.initrd");
	strcpy(cfg->balancer.subnet, "10.77.0.0/24");
	strcpy(cfg->balancer.bridge, "xenbr7");
	strcpy(cfg->balancer.tag, "prod");
	cfg->balancer.xl_memory_mb = 256;
	cfg->balancer.xl_vcpus = 2;
}

static void test_build(void **state)
{
	static struct mw_config cfg;
	struct bal_xl_domcfg c;
	char err[256] = "", text[2048];
	int n;

	(void)state;
	base(&cfg);
	assert_int_equal(bal_xl_domcfg_build(&c, &cfg.balancer, 300, 3, err, sizeof(err)), 0);
	assert_string_equal(c.name, "mw-prod-ins300");
	assert_string_equal(c.kernel, "/boot/mw-ins.kernel");
	assert_string_equal(c.ramdisk, "/boot/mw-ins.initrd");
	assert_int_equal(c.memory_kb, 256 * 1024);
	assert_int_equal(c.vcpus, 2);
	assert_string_equal(c.bridge, "xenbr7");
	assert_string_equal(c.mac, "00:16:3e:03:01:2c"); /* slot 3, id 0x012c */
	assert_string_equal(c.ip, "10.77.0.4");		 /* bridge .1, slot k -> .k+1 */
	assert_string_equal(c.cmdline, "mw.id=300 mw.ip=10.77.0.4/24 mw.gw=10.77.0.1");

	n = bal_xl_domcfg_format(&c, text, sizeof(text));
	assert_true(n > 0);
	assert_int_equal((size_t)n, strlen(text));
	assert_non_null(strstr(text, "name = \"mw-prod-ins300\"\n"));
	assert_non_null(strstr(text, "type = \"pv\"\n"));
	assert_non_null(strstr(text, "kernel = \"/boot/mw-ins.kernel\"\n"));
	assert_non_null(strstr(text, "ramdisk = \"/boot/mw-ins.initrd\"\n"));
	assert_non_null(strstr(text, "memory = 256\n"));
	assert_non_null(strstr(text, "vcpus = 2\n"));
	assert_non_null(strstr(text, "vif = [ \"bridge=xenbr7,mac=00:16:3e:03:01:2c\" ]\n"));
	assert_non_null(strstr(text, "extra = \"mw.id=300 mw.ip=10.77.0.4/24 mw.gw=10.77.0.1\"\n"));
	/* too small a buffer: refused, not truncated silently */
	assert_int_equal(bal_xl_domcfg_format(&c, text, 40), -ENOSPC);
}

static void test_no_ramdisk(void **state)
{
	static struct mw_config cfg;
	struct bal_xl_domcfg c;
	char err[256], text[2048];

	(void)state;
	base(&cfg);
	cfg.balancer.xl_ramdisk[0] = 0;
	assert_int_equal(bal_xl_domcfg_build(&c, &cfg.balancer, 1, 1, err, sizeof(err)), 0);
	assert_true(bal_xl_domcfg_format(&c, text, sizeof(text)) > 0);
	assert_null(strstr(text, "ramdisk"));
}

static void test_rejects(void **state)
{
	static struct mw_config cfg;
	struct bal_xl_domcfg c;
	char err[256];

	(void)state;
	base(&cfg);
	cfg.balancer.xl_kernel[0] = 0;
	assert_int_equal(bal_xl_domcfg_build(&c, &cfg.balancer, 1, 1, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "xl_kernel"));

	base(&cfg);
	assert_int_equal(bal_xl_domcfg_build(&c, &cfg.balancer, 0, 1, err, sizeof(err)), -EINVAL);
	assert_int_equal(bal_xl_domcfg_build(&c, &cfg.balancer, 65536, 1, err, sizeof(err)),
			 -EINVAL);
	/* /24: hosts .1 (bridge) .. .254: slots 1..253 */
	assert_int_equal(bal_xl_domcfg_build(&c, &cfg.balancer, 1, 253, err, sizeof(err)), 0);
	assert_string_equal(c.ip, "10.77.0.254");
	assert_int_equal(bal_xl_domcfg_build(&c, &cfg.balancer, 1, 254, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "slot 254"));
	assert_int_equal(bal_xl_domcfg_build(&c, &cfg.balancer, 1, 0, err, sizeof(err)), -EINVAL);

	strcpy(cfg.balancer.subnet, "fd00::/64");
	assert_int_equal(bal_xl_domcfg_build(&c, &cfg.balancer, 1, 1, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "IPv4"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_build),
		cmocka_unit_test(test_no_ramdisk),
		cmocka_unit_test(test_rejects),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
