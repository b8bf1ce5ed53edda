/* SPDX-License-Identifier: MIT */
/* test_balancer_kfront.c - balancer/kfront_rules.c: table name, nft commands, weights */
#include <arpa/inet.h>
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "balancer/bal.h"
#include "balancer/kfront.h"

static void test_table_name(void **state)
{
	char buf[BAL_KF_TABLE_MAX];

	(void)state;
	assert_int_equal(bal_kf_table_name("mw", buf, sizeof(buf)), 0);
	assert_string_equal(buf, "mwbal_mw");
	assert_int_equal(bal_kf_table_name("t-1_A", buf, sizeof(buf)), 0);
	assert_string_equal(buf, "mwbal_t-1_A");
	/* Anything that could end or extend an nft command is refused. */
	assert_int_equal(bal_kf_table_name("", buf, sizeof(buf)), -EINVAL);
	assert_int_equal(bal_kf_table_name("a.b", buf, sizeof(buf)), -EINVAL);
	assert_int_equal(bal_kf_table_name("a;b", buf, sizeof(buf)), -EINVAL);
	assert_int_equal(bal_kf_table_name("a b", buf, sizeof(buf)), -EINVAL);
	assert_int_equal(bal_kf_table_name("a\"b", buf, sizeof(buf)), -EINVAL);
	assert_int_equal(bal_kf_table_name("a\nb", buf, sizeof(buf)), -EINVAL);
}

static void test_table(void **state)
{
	struct bal_kf_listen l[2] = { { .port = 80 }, { .port = 8443 } };
	char buf[4096];
	int n;

	(void)state;
	inet_pton(AF_INET, "192.0.2.7", &l[1].addr);
	n = bal_kf_render_table(buf, sizeof(buf), "mwbal_x", l, 2, "mwbr0", 500);
	assert_true(n > 0 && (size_t)n == strlen(buf));
	/* Replaces a stale table in the same transaction. */
	assert_non_null(strstr(buf, "add table ip mwbal_x\ndelete table ip mwbal_x\nadd table ip "
				    "mwbal_x\n"));
	/* An INS (behind the bridge) never enters the front end. */
	assert_non_null(strstr(buf, "add rule ip mwbal_x pre iifname != \"mwbr0\" fib daddr type "
				    "local tcp dport 80 jump front\n"));
	assert_non_null(strstr(buf, "add rule ip mwbal_x pre iifname != \"mwbr0\" ip daddr "
				    "192.0.2.7 tcp dport 8443 jump front\n"));
	assert_non_null(strstr(buf, "add rule ip mwbal_x out fib daddr type local ip daddr != "
				    "127.0.0.0/8 tcp dport 80 jump front\n"));
	assert_non_null(strstr(buf, "add rule ip mwbal_x out ip daddr 192.0.2.7 tcp dport 8443 "
				    "jump front\n"));
	assert_non_null(strstr(buf, "ct count over 500 counter name \"over_limit\" accept\n"));
	/* Forged SYNs hold a place in ct count 5 s, not the kernel's 60 s of SYN_RECV. */
	assert_non_null(strstr(buf, "add ct timeout ip mwbal_x syn_short { protocol tcp; l3proto "
				    "ip; policy = { syn_sent: 5, syn_recv: 5 }; }\n"));
	assert_non_null(strstr(buf, "add rule ip mwbal_x syn_pre iifname != \"mwbr0\" fib daddr "
				    "type local tcp dport 80 ct timeout set \"syn_short\"\n"));
	assert_non_null(strstr(buf, "add rule ip mwbal_x syn_out ip daddr 192.0.2.7 tcp dport 8443 "
				    "ct timeout set \"syn_short\"\n"));
	assert_int_equal(bal_kf_render_table(buf, 64, "mwbal_x", l, 2, "mwbr0", 500), -ENOSPC);
}

static void test_steer(void **state)
{
	struct bal_kf_ins ins[3] = { { 2, 1 }, { 5, 3 }, { 9, 1 } };
	char buf[1024];

	(void)state;
	assert_true(bal_kf_render_steer(buf, sizeof(buf), "t", BAL_POLICY_RR, ins, 3) > 0);
	assert_string_equal(buf, "flush chain ip t steer\n"
				 "add rule ip t steer numgen inc mod 3 vmap { 0 : jump ins_2, 1 : "
				 "jump ins_5, 2 : jump ins_9 }\n"
				 "add rule ip t steer counter name \"steer_miss\" jump ins_2\n"
				 "add rule ip t steer counter name \"no_ins\"\n");
	assert_true(bal_kf_render_steer(buf, sizeof(buf), "t", BAL_POLICY_HASH, ins, 3) > 0);
	assert_non_null(strstr(buf, "jhash ip saddr mod 3 vmap { 0 : jump ins_2, 1 : jump ins_5, "
				    "2 : jump ins_9 }"));
	assert_true(bal_kf_render_steer(buf, sizeof(buf), "t", BAL_POLICY_LEASTCONN, ins, 3) > 0);
	/* A weight is that many single elements: no range (kfront_rules.c says why). */
	assert_non_null(strstr(buf, "numgen random mod 5 vmap { 0 : jump ins_2, 1 : jump ins_5, "
				    "2 : jump ins_5, 3 : jump ins_5, 4 : jump ins_9 }"));
	/* One INS: a plain jump; none: only the no-INS counter. */
	assert_true(bal_kf_render_steer(buf, sizeof(buf), "t", BAL_POLICY_RR, ins, 1) > 0);
	assert_string_equal(buf, "flush chain ip t steer\nadd rule ip t steer jump ins_2\n"
				 "add rule ip t steer counter name \"no_ins\"\n");
	assert_true(bal_kf_render_steer(buf, sizeof(buf), "t", BAL_POLICY_RR, ins, 0) > 0);
	assert_string_equal(buf, "flush chain ip t steer\n"
				 "add rule ip t steer counter name \"no_ins\"\n");
	/* least-busy's single pick (weights 0 but one): that INS alone. */
	ins[0].weight = 0;
	ins[1].weight = 1;
	ins[2].weight = 0;
	assert_true(bal_kf_render_steer(buf, sizeof(buf), "t", BAL_POLICY_LEASTBUSY, ins, 3) > 0);
	assert_non_null(strstr(buf, "numgen random mod 1 vmap { 0 : jump ins_5 }"));
	/* A miss of the map goes to an INS the map holds (weight > 0), counted. */
	assert_non_null(strstr(buf, "counter name \"steer_miss\" jump ins_5\n"));
	assert_int_equal(bal_kf_render_steer(buf, 40, "t", BAL_POLICY_RR, ins, 3), -ENOSPC);
}

/* No weight above twice the others' average: at most 2 / (n + 1) of new connections. */
static void assert_share_bound(const unsigned *w, size_t n)
{
	unsigned long sum = 0;
	size_t k;

	for (k = 0; k < n; k++)
		sum += w[k];
	for (k = 0; k < n; k++)
		assert_true(w[k] * (n - 1) <= 2 * (sum - w[k]) || w[k] == 1);
}

static void test_weights(void **state)
{
	unsigned conns[3] = { 10, 0, 5 }, w[3], c4[4] = { 30, 30, 30, 0 }, w4[4];
	unsigned c2[2] = { 9, 0 }, w2[2];

	(void)state;
	/* least-connections: the emptiest the most, the busiest 1, within the share bound. */
	bal_kf_weights(BAL_POLICY_LEASTCONN, conns, 3, 0, 50, w);
	assert_int_equal(w[0], 1);
	assert_true(w[1] > w[2] && w[2] > 1);
	assert_true(w[1] < BAL_KF_WEIGHT_MAX);
	assert_share_bound(w, 3);
	/* An INS whose connections end at once: 16 of 19 unbounded, 2 of 5 bounded. */
	bal_kf_weights(BAL_POLICY_LEASTCONN, c4, 4, 0, 50, w4);
	assert_true(w4[0] == 1 && w4[1] == 1 && w4[2] == 1 && w4[3] == 2);
	assert_share_bound(w4, 4);
	/* Two INS: two thirds at most. */
	bal_kf_weights(BAL_POLICY_LEASTCONN, c2, 2, 0, 50, w2);
	assert_true(w2[0] == 1 && w2[1] == 2);
	/* Two emptier ones bound each other down too. */
	c4[2] = 0;
	bal_kf_weights(BAL_POLICY_LEASTCONN, c4, 4, 0, 50, w4);
	assert_true(w4[0] == 1 && w4[1] == 1 && w4[2] == w4[3] && w4[3] > 1);
	assert_share_bound(w4, 4);
	/* Equal counts: equal shares. */
	conns[0] = conns[1] = conns[2] = 4;
	bal_kf_weights(BAL_POLICY_LEASTCONN, conns, 3, 0, 50, w);
	assert_true(w[0] == 1 && w[1] == 1 && w[2] == 1);
	/* round-robin and hash do not weigh. */
	conns[1] = 0;
	bal_kf_weights(BAL_POLICY_RR, conns, 3, 0, 50, w);
	assert_true(w[0] == 1 && w[1] == 1 && w[2] == 1);
	/* least-busy under the threshold: the lowest id under it alone. */
	conns[0] = 6;
	conns[1] = 2;
	conns[2] = 0;
	bal_kf_weights(BAL_POLICY_LEASTBUSY, conns, 3, 10, 50, w);
	assert_true(w[0] == 0 && w[1] == 1 && w[2] == 0);
	/* All at or over it: weighted by load, as least-connections. */
	conns[0] = 9;
	conns[1] = 5;
	conns[2] = 7;
	bal_kf_weights(BAL_POLICY_LEASTBUSY, conns, 3, 10, 50, w);
	assert_true(w[0] == 1 && w[1] > w[2] && w[2] > 1);
	assert_share_bound(w, 3);
}

/* The PROXY v2 fence: replaced whole (a crashed run's table goes), by family, one uid. */
static void test_fence(void **state)
{
	char buf[1024];

	(void)state;
	assert_int_equal(
		bal_fence_render(buf, sizeof(buf), "mwbal_t_fence", "10.77.0.0/24", "mwbr0", 0), 0);
	assert_string_equal(
		buf, "add table inet mwbal_t_fence\n"
		     "delete table inet mwbal_t_fence\n"
		     "table inet mwbal_t_fence {\n"
		     "\tchain out {\n"
		     "\t\ttype filter hook output priority 0; policy accept;\n"
		     "\t\tip daddr 10.77.0.0/24 tcp flags & (syn | ack) == syn meta skuid "
		     "!= 0 counter reject with tcp reset\n"
		     "\t}\n"
		     "\tchain routed {\n"
		     "\t\ttype filter hook forward priority 0; policy accept;\n"
		     "\t\tiifname != \"mwbr0\" ip daddr 10.77.0.0/24 tcp flags & (syn | ack) "
		     "== syn counter reject with tcp reset\n"
		     "\t}\n"
		     "}\n");
	assert_int_equal(bal_fence_render(buf, sizeof(buf), "f", "fd00::/64", "br1", 998), 0);
	assert_non_null(strstr(buf, "\t\tip6 daddr fd00::/64 tcp flags"));
	assert_non_null(strstr(buf, "meta skuid != 998 "));
	assert_non_null(strstr(buf, "iifname != \"br1\" ip6 daddr fd00::/64 tcp flags"));
	assert_int_equal(bal_fence_render(buf, sizeof(buf), "f", "10.77.0.0/33", "mwbr0", 0),
			 -EINVAL);
	assert_int_equal(bal_fence_render(buf, 64, "f", "10.77.0.0/24", "mwbr0", 0), -EINVAL);
}

/*
 * "ins retire pvm:N": the INS mw-pvm knows as N.  netns: the balancer's id.  xl: the
 * domid only; a domU not created yet (domid 0) and a dead INS never match, so the INS
 * mw-guard just spawned is not drained in place of the attacked one.
 */
static void test_find_pvm(void **state)
{
	struct bal_ins ins[3] = { { .h = { .id = 4 }, .state = BAL_INS_STARTING },
				  { .h = { .id = 2, .domid = 4 }, .state = BAL_INS_READY },
				  { .h = { .id = 1, .domid = 3 }, .state = BAL_INS_DEAD } };
	static struct mw_config cfg;
	struct bal b = { .cfg = &cfg, .ins = &ins[0] };

	(void)state;
	ins[0].next = &ins[1];
	ins[1].next = &ins[2];
	snprintf(cfg.balancer.backend, sizeof(cfg.balancer.backend), "xl");
	assert_ptr_equal(bal_ins_find_pvm(&b, 4), &ins[1]); /* not the new INS 4 */
	assert_null(bal_ins_find_pvm(&b, 3));		    /* dead */
	assert_null(bal_ins_find_pvm(&b, 2));		    /* a balancer id, not a domid */
	ins[0].h.domid = 7;
	assert_ptr_equal(bal_ins_find_pvm(&b, 7), &ins[0]);
	snprintf(cfg.balancer.backend, sizeof(cfg.balancer.backend), "netns");
	assert_ptr_equal(bal_ins_find_pvm(&b, 2), &ins[1]);
	assert_null(bal_ins_find_pvm(&b, 1)); /* dead */
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_table_name), cmocka_unit_test(test_table),
		cmocka_unit_test(test_steer),	   cmocka_unit_test(test_weights),
		cmocka_unit_test(test_fence),	   cmocka_unit_test(test_find_pvm),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
