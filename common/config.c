/* SPDX-License-Identifier: MIT */
/* config.c - table-driven libconfig loader: defaults, types, ranges, file:line errors */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <libconfig.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/addr.h"
#include "common/config.h"
#include "common/config_ints.h"

/*
 * Theory of operation: every key lives in cfg_keys[] below, with its section,
 * type, place in struct mw_config, default and allowed values.  Defaults are
 * written from the table; loading walks the file (not the table) so that
 * unknown sections and keys are found, checks each setting against its table
 * row, and stores only values that pass.  Every problem is recorded and the
 * walk goes on, so one run reports the whole file.  Cross-field rules that no
 * single row can express run last, on the merged result.
 */

enum cfg_type {
	CFG_STR,
	CFG_INT,
	CFG_BOOL,
	CFG_STRLIST
};

/* Checks on a value beyond its type and size. */
enum cfg_check {
	CHK_NONE,
	CHK_PATH,	   /* absolute, shorter than MW_PATH_MAX */
	CHK_PATH_OR_EMPTY, /* as CHK_PATH, or "" */
	CHK_ADDR,	   /* "ip:port" as mw_addr_parse() reads it */
	CHK_ADDR_OR_EMPTY, /* as CHK_ADDR, or "" */
	CHK_CIDR,	   /* "ip/prefix" */
	CHK_CIDR_OR_EMPTY, /* as CHK_CIDR, or "" */
	CHK_IFNAME,	   /* a network interface name */
	CHK_POW2,	   /* integer power of two */
	CHK_NETFLOW,	   /* "" , "/path" or "ip:port" */
	CHK_LISTENER,	   /* "PORT:PROTO", PROTO http|line|data|none */
};

struct cfg_key {
	const char *section;
	const char *key;
	enum cfg_type type;
	size_t off;		    /* in struct mw_config */
	size_t size;		    /* string field size; per entry for lists */
	const char *def_str;	    /* CFG_STR */
	long long def_int;	    /* CFG_INT, CFG_BOOL */
	long long min, max;	    /* CFG_INT range; CFG_STRLIST max entries */
	const char *const *allowed; /* enumerations, NULL-terminated */
	enum cfg_check check;
	size_t count_off; /* CFG_STRLIST: int entry count */
};

/* Member designators (sec.k) cannot be parenthesised. */
/* NOLINTBEGIN(bugprone-macro-parentheses) */
#define FIELD_SIZE(f) sizeof(((struct mw_config *)0)->f)
#define KEY_STR(sec, k, def, chk, allow)                                             \
	{                                                                            \
		.section = #sec, .key = #k, .type = CFG_STR,                         \
		.off = offsetof(struct mw_config, sec.k), .size = FIELD_SIZE(sec.k), \
		.def_str = (def), .check = (chk), .allowed = (allow)                 \
	}
#define KEY_INT(sec, k, def, lo, hi, chk)                                            \
	{                                                                            \
		.section = #sec, .key = #k, .type = CFG_INT,                         \
		.off = offsetof(struct mw_config, sec.k), .size = FIELD_SIZE(sec.k), \
		.def_int = (def), .min = (lo), .max = (hi), .check = (chk)           \
	}
#define KEY_BOOL(sec, k, def)                                                        \
	{                                                                            \
		.section = #sec, .key = #k, .type = CFG_BOOL,                        \
		.off = offsetof(struct mw_config, sec.k), .size = FIELD_SIZE(sec.k), \
		.def_int = (def)                                                     \
	}
#define KEY_STRLIST(sec, k, chk)                                                                  \
	{                                                                                         \
		.section = #sec, .key = #k, .type = CFG_STRLIST,                                  \
		.off = offsetof(struct mw_config, sec.k), .size = FIELD_SIZE(sec.k[0]), .min = 0, \
		.max = FIELD_SIZE(sec.k) / FIELD_SIZE(sec.k[0]), .check = (chk),                  \
		.count_off = offsetof(struct mw_config, sec.k##_count)                            \
	}
/* NOLINTEND(bugprone-macro-parentheses) */

#define KIB (1024LL)
#define MIB (1024LL * 1024)
#define GIB (1024LL * 1024 * 1024)

static const char *const log_levels[] = { "error", "warning", "notice", "info", "debug", NULL };
static const char *const keystores[] = { "local", "xenstore", NULL };
static const char *const backends[] = { "netns", "process", "xl", NULL };
static const char *const channels[] = { "local", "xen", NULL };
static const char *const sched_policies[] = { "other", "batch", "idle", NULL };
static const char *const guard_modes[] = { "enforce", "report", NULL };
static const char *const bal_modes[] = { "splice", "kernel", NULL };
static const char *const policies[] = { "round-robin", "least-connections", "least-busy", "hash",
					NULL };

/* The one list of keys; conf/mwcomms.conf documents the same, in the same order. */
static const struct cfg_key cfg_keys[] = {
	KEY_STR(common, runtime_dir, "/run/mwcomms", CHK_PATH, NULL),
	KEY_STR(common, log_level, "info", CHK_NONE, log_levels),
	KEY_STR(common, keystore, "local", CHK_NONE, keystores),
	KEY_STR(common, keystore_root, "/run/mwcomms/store", CHK_PATH, NULL),

	KEY_STR(pvm, control_socket, "/run/mwcomms/pvm.sock", CHK_PATH, NULL),
	KEY_STR(pvm, ins_socket, "/run/mwcomms/pvm-ins.sock", CHK_PATH, NULL),
	KEY_INT(pvm, index, 0, 0, 255, CHK_NONE),
	KEY_INT(pvm, ring_size, 4 * MIB, 128 * KIB, 1 * GIB, CHK_POW2),
	KEY_INT(pvm, socket_window, 256 * KIB, 4 * KIB, 1 * GIB, CHK_NONE),
	KEY_INT(pvm, pending_total, 256 * MIB, 1 * MIB, 1 * GIB, CHK_NONE),
	KEY_INT(pvm, heartbeat_timeout_ms, 3000, 100, 600000, CHK_NONE),
	KEY_INT(pvm, handshake_max, 8, 1, 1024, CHK_NONE),
	KEY_BOOL(pvm, xen_channel, false),
	KEY_INT(pvm, ins_max_conns, 65536, 1, 16 * MIB, CHK_NONE),
	KEY_INT(pvm, ins_max_queued, 65536, 64, 16 * MIB, CHK_NONE),
	KEY_INT(pvm, op_timeout_ms, 5000, 100, 600000, CHK_NONE),
	KEY_INT(pvm, close_confirm_ms, 3660000, 1000, 86400000, CHK_NONE),
	KEY_INT(pvm, id_space, 2147483647, 16, 2147483647, CHK_NONE),
	KEY_INT(pvm, spin_us, 0, 0, 1000000, CHK_NONE),
	KEY_BOOL(pvm, data_pipe, true),
	KEY_INT(pvm, splice_timeout_ms, 1000, 10, 10000, CHK_NONE),
	KEY_STR(pvm, netflow_unix, "", CHK_PATH_OR_EMPTY, NULL),
	KEY_STR(pvm, netflow_group, "", CHK_NONE, NULL),
	KEY_STR(pvm, netflow_control_group, "", CHK_NONE, NULL),
	KEY_STR(pvm, netflow_listen, "", CHK_ADDR_OR_EMPTY, NULL),
	KEY_STR(pvm, netflow_allow, "127.0.0.0/8", CHK_CIDR, NULL),
	KEY_STR(pvm, netflow_token_file, "", CHK_PATH_OR_EMPTY, NULL),
	KEY_INT(pvm, netflow_max_per_user, 4, 1, 256, CHK_NONE),
	KEY_INT(pvm, netflow_queue, 65536, 16, 16 * MIB, CHK_NONE),
	KEY_INT(pvm, netflow_memory, 64 * MIB, 64 * KIB, 1 * GIB, CHK_NONE),
	KEY_INT(pvm, netflow_stall_ms, 10000, 100, 3600000, CHK_NONE),
	KEY_INT(pvm, netflow_min_rate, 16 * KIB, 0, 1 * GIB, CHK_NONE),
	KEY_INT(pvm, netflow_block_max, 4096, 1, 1 * MIB, CHK_NONE),
	KEY_INT(pvm, netflow_block_ttl_s, 3600, 0, 31536000, CHK_NONE),
	KEY_STRLIST(pvm, netflow_signals, CHK_NONE),
	KEY_BOOL(pvm, fail_open, false),
	KEY_INT(pvm, max_sockets_per_user, 16384, 0, 16 * MIB, CHK_NONE),
	KEY_INT(pvm, max_connections_per_user, 4096, 0, 16 * MIB, CHK_NONE),
	KEY_STR(pvm, subuid_file, "/etc/subuid", CHK_PATH_OR_EMPTY, NULL),
	KEY_INT(pvm, liveness_interval_ms, 200, 10, 60000, CHK_NONE),

	KEY_INT(ins, id, 1, 1, 65535, CHK_NONE),
	KEY_STR(ins, pvm_socket, "/run/mwcomms/pvm-ins.sock", CHK_PATH, NULL),
	KEY_STR(ins, channel, "local", CHK_NONE, channels),
	KEY_INT(ins, pvm_domid, 0, 0, 32751, CHK_NONE),
	KEY_INT(ins, max_sockets, 0, 0, 16 * MIB, CHK_NONE),
	KEY_INT(ins, nofile, 1048576, 1024, 1073741816, CHK_NONE),
	KEY_INT(ins, heartbeat_ms, 1000, 10, 60000, CHK_NONE),
	KEY_INT(ins, id_space, 2147483647, 16, 2147483647, CHK_NONE),
	KEY_INT(ins, fin_timeout_ms, 60000, 100, 3600000, CHK_NONE),
	KEY_INT(ins, shield_hold_max, 4096, 1, 1048576, CHK_NONE),
	KEY_INT(ins, shield_out_total, 64 * MIB, 0, 1 * GIB, CHK_NONE),
	KEY_INT(ins, shield_sources, 65536, 32, 16 * MIB, CHK_NONE),
	KEY_INT(ins, shield_prefixes, 16384, 32, 16 * MIB, CHK_NONE),
	KEY_INT(ins, socket_window, 1 * MIB, 4 * KIB, 1 * GIB, CHK_NONE),
	KEY_INT(ins, pending_total, 256 * MIB, 1 * MIB, 1 * GIB, CHK_NONE),
	KEY_STR(ins, congestion_control, "", CHK_NONE, NULL),
	KEY_INT(ins, sndbuf, 0, 0, 1 * GIB, CHK_NONE),
	KEY_INT(ins, rcvbuf, 0, 0, 1 * GIB, CHK_NONE),
	KEY_BOOL(ins, quickack, false),
	KEY_INT(ins, spin_us, 0, 0, 1000000, CHK_NONE),
	KEY_BOOL(ins, proxy_protocol, false),
	KEY_STR(ins, proxy_from, "", CHK_CIDR_OR_EMPTY, NULL),
	KEY_STR(ins, user, "mwcomms-ins", CHK_NONE, NULL),
	KEY_BOOL(ins, seccomp, true),

	KEY_STR(balancer, control_socket, "/run/mwcomms/balancer.sock", CHK_PATH, NULL),
	KEY_STR(balancer, backend, "netns", CHK_NONE, backends),
	KEY_STR(balancer, mode, "splice", CHK_NONE, bal_modes),
	KEY_INT(balancer, min_ins, 1, 1, 1024, CHK_NONE),
	KEY_INT(balancer, max_ins, 4, 1, 1024, CHK_NONE),
	KEY_STR(balancer, policy, "round-robin", CHK_NONE, policies),
	KEY_INT(balancer, overload_threshold, 50, 1, 100, CHK_NONE),
	KEY_STRLIST(balancer, listen, CHK_ADDR),
	KEY_STR(balancer, subnet, "10.77.0.0/24", CHK_CIDR, NULL),
	KEY_STR(balancer, bridge, "mwbr0", CHK_IFNAME, NULL),
	KEY_INT(balancer, netns_tcp_ehash, 65536, 0, 16 * MIB, CHK_NONE),
	KEY_STR(balancer, ins_binary, "", CHK_PATH_OR_EMPTY, NULL),
	KEY_INT(balancer, per_ins_max_conns, 0, 0, 16 * MIB, CHK_NONE),
	KEY_INT(balancer, connect_timeout_ms, 3000, 1, 600000, CHK_NONE),
	KEY_INT(balancer, idle_timeout_ms, 300000, 0, 86400000, CHK_NONE),
	KEY_INT(balancer, drain_timeout_ms, 60000, 0, 86400000, CHK_NONE),
	KEY_INT(balancer, start_timeout_ms, 120000, 0, 86400000, CHK_NONE),
	KEY_INT(balancer, keepalive_ms, 60000, 0, 32767000, CHK_NONE),
	KEY_INT(balancer, max_conns, 50000, 1, 16 * MIB, CHK_NONE),
	KEY_INT(balancer, max_conns_per_source, 2048, 0, 16 * MIB, CHK_NONE),
	KEY_INT(balancer, health_interval_ms, 500, 50, 60000, CHK_NONE),
	KEY_INT(balancer, health_timeout_ms, 1000, 50, 60000, CHK_NONE),
	KEY_INT(balancer, health_failures, 2, 1, 100, CHK_NONE),
	KEY_STR(balancer, netflow_unix, "", CHK_PATH_OR_EMPTY, NULL),
	KEY_STR(balancer, netflow_listen, "", CHK_ADDR_OR_EMPTY, NULL),
	KEY_STR(balancer, netflow_allow, "127.0.0.0/8", CHK_CIDR, NULL),
	KEY_STR(balancer, netflow_upstream_token_file, "", CHK_PATH_OR_EMPTY, NULL),
	KEY_INT(balancer, netflow_request_timeout_ms, 5000, 100, 600000, CHK_NONE),
	KEY_STR(balancer, tag, "mw", CHK_IFNAME, NULL),
	KEY_STR(balancer, xl_kernel, "", CHK_PATH_OR_EMPTY, NULL),
	KEY_STR(balancer, xl_ramdisk, "", CHK_PATH_OR_EMPTY, NULL),
	KEY_INT(balancer, xl_memory_mb, 512, 32, 1048576, CHK_NONE),
	KEY_INT(balancer, xl_vcpus, 1, 1, 128, CHK_NONE),
	KEY_BOOL(balancer, autoscale, false),
	KEY_INT(balancer, autoscale_up_conns, 100, 1, 16 * MIB, CHK_NONE),
	KEY_INT(balancer, autoscale_down_conns, 10, 0, 16 * MIB, CHK_NONE),
	KEY_INT(balancer, autoscale_cooldown_ms, 10000, 100, 3600000, CHK_NONE),

	KEY_STR(guard, netflow, "", CHK_NETFLOW, NULL),
	KEY_STR(guard, netflow_token_file, "", CHK_PATH_OR_EMPTY, NULL),
	KEY_STR(guard, control_socket, "/run/mwcomms/guard.sock", CHK_PATH, NULL),
	KEY_STR(guard, mode, "enforce", CHK_NONE, guard_modes),
	KEY_STRLIST(guard, listeners, CHK_LISTENER),
	KEY_STRLIST(guard, allow, CHK_CIDR),
	KEY_BOOL(guard, baseline, true),
	KEY_INT(guard, shield_deadline_ms, 10000, 0, 3600000, CHK_NONE),
	KEY_INT(guard, shield_out_buffer, 256 * KIB, 0, 1 * GIB, CHK_NONE),
	KEY_INT(guard, shield_stall_max, 16, 0, 16 * MIB, CHK_NONE),
	KEY_INT(guard, shield_min_in_rate, 50, 0, 1 * GIB, CHK_NONE),
	KEY_INT(guard, shield_min_out_rate, 256, 0, 1 * GIB, CHK_NONE),
	KEY_INT(guard, shield_src_max_conns, 64, 0, 16 * MIB, CHK_NONE),
	KEY_INT(guard, shield_pfx_max_conns, 512, 0, 16 * MIB, CHK_NONE),
	KEY_INT(guard, shield_src_rate, 50, 0, 16 * MIB, CHK_NONE),
	KEY_INT(guard, shield_pfx_rate, 500, 0, 16 * MIB, CHK_NONE),
	KEY_INT(guard, shield_hold_max, 0, 0, 1048576, CHK_NONE),
	KEY_INT(guard, tick_ms, 500, 50, 60000, CHK_NONE),
	KEY_INT(guard, slow_after_ms, 3000, 100, 3600000, CHK_NONE),
	KEY_INT(guard, idle_ms, 5000, 100, 3600000, CHK_NONE),
	KEY_INT(guard, min_rate, 20, 0, 1 * GIB, CHK_NONE),
	KEY_INT(guard, pressure_conns, 256, 1, 16 * MIB, CHK_NONE),
	KEY_INT(guard, pressure_slow, 32, 1, 16 * MIB, CHK_NONE),
	KEY_INT(guard, pressure_accept_ms, 0, 0, 3600000, CHK_NONE),
	KEY_INT(guard, calm_ms, 30000, 0, 86400000, CHK_NONE),
	KEY_INT(guard, close_max, 256, 0, 16 * MIB, CHK_NONE),
	KEY_INT(guard, block_slow, 8, 1, 16 * MIB, CHK_NONE),
	KEY_INT(guard, block_expiry_s, 300, 1, 31536000, CHK_NONE),
	KEY_INT(guard, good_memory_ms, 10000, 0, 3600000, CHK_NONE),
	KEY_INT(guard, block_prefix_sources, 16, 0, 16 * MIB, CHK_NONE),
	KEY_INT(guard, block_ipv6_prefix, 64, 32, 128, CHK_NONE),
	KEY_STR(guard, balancer_socket, "", CHK_PATH_OR_EMPTY, NULL),
	KEY_INT(guard, rotate_after_ms, 10000, 0, 3600000, CHK_NONE),
	KEY_INT(guard, rotate_interval_ms, 60000, 1000, 86400000, CHK_NONE),
	KEY_INT(guard, max_conns, 65536, 16, 16 * MIB, CHK_NONE),
	KEY_INT(guard, max_sources, 65536, 16, 16 * MIB, CHK_NONE),
	KEY_INT(guard, max_blocks, 1024, 1, 1 * MIB, CHK_NONE),
	KEY_INT(guard, max_actions, 256, 1, 65536, CHK_NONE),
	KEY_STRLIST(flowd, interfaces, CHK_IFNAME),
	KEY_STRLIST(flowd, pcap_files, CHK_PATH),
	KEY_STR(flowd, filter, "", CHK_NONE, NULL),
	KEY_STRLIST(flowd, inside, CHK_CIDR),
	KEY_INT(flowd, max_addresses, 16384, 16, 16 * MIB, CHK_NONE),
	KEY_INT(flowd, max_streams, 32768, 16, 16 * MIB, CHK_NONE),
	KEY_INT(flowd, max_ports, 4096, 16, 131072, CHK_NONE),
	KEY_INT(flowd, stream_idle_s, 30, 1, 86400, CHK_NONE),
	KEY_INT(flowd, address_idle_s, 60, 1, 86400, CHK_NONE),
	KEY_INT(flowd, report_interval_s, 60, 1, 86400, CHK_NONE),
	KEY_INT(flowd, top_n, 20, 1, 1000, CHK_NONE),
	KEY_INT(flowd, sketch_counters, 256, 1, 65536, CHK_NONE),
	KEY_INT(flowd, fanout_threshold, 64, 1, 16 * MIB, CHK_NONE),
	KEY_INT(flowd, scan_threshold, 64, 1, 16 * MIB, CHK_NONE),
	KEY_STR(flowd, report_file, "", CHK_PATH_OR_EMPTY, NULL),
	KEY_INT(flowd, ring_block_size, 1 * MIB, 64 * KIB, 64 * MIB, CHK_POW2),
	KEY_INT(flowd, ring_blocks, 16, 2, 1024, CHK_NONE),
	KEY_STR(flowd, sched_policy, "batch", CHK_NONE, sched_policies),
	KEY_STR(flowd, mapi_socket, "/run/mwcomms/flowd.sock", CHK_PATH_OR_EMPTY, NULL),
	KEY_STR(flowd, mapi_group, "", CHK_NONE, NULL),
	KEY_INT(flowd, mapi_max_flows, 64, 1, 1024, CHK_NONE),
	KEY_INT(flowd, mapi_max_clients, 16, 1, 1024, CHK_NONE),
	KEY_INT(flowd, mapi_client_flows, 16, 1, 1024, CHK_NONE),
	KEY_STR(flowd, subuid_file, "/etc/subuid", CHK_PATH_OR_EMPTY, NULL),
	KEY_STRLIST(flowd, mapi_sensor_groups, CHK_NONE),
	KEY_STR(flowd, ipfix_collector, "", CHK_ADDR_OR_EMPTY, NULL),
	KEY_INT(flowd, ipfix_domain, 1, 0, 2147483647, CHK_NONE),
	KEY_INT(flowd, ipfix_template_interval_s, 60, 1, 3600, CHK_NONE),
	KEY_STR(flowd, netflow, "", CHK_NETFLOW, NULL),
	KEY_STRLIST(flowd, netflow_streams, CHK_NETFLOW),
	KEY_STR(flowd, netflow_token_file, "", CHK_PATH_OR_EMPTY, NULL),
	KEY_INT(flowd, max_sockets, 16384, 16, 16 * MIB, CHK_NONE),
};

#define CFG_NKEYS (sizeof(cfg_keys) / sizeof(cfg_keys[0]))

static const char *const cfg_sections[] = { "common", "pvm", "ins", "balancer", "guard",
					     "flowd", NULL };

/* Everything one load needs to report a problem. */
struct cfg_ctx {
	struct mw_config *cfg;
	struct mw_config_errors *errs;
	const char *file;
	int includes_read; /* files read for their @includes (cfg_include()) */
};

static void __attribute__((format(printf, 2, 3)))
cfg_error(struct mw_config_errors *errs, const char *fmt, ...)
{
	va_list ap;

	if (errs->count >= MW_CONFIG_MAX_ERRORS) {
		/* Keep the count honest; the last slot says the list was cut. */
		snprintf(errs->msg[MW_CONFIG_MAX_ERRORS - 1], sizeof(errs->msg[0]),
			 "too many errors; only the first %d are shown", MW_CONFIG_MAX_ERRORS - 1);
		errs->count++;
		return;
	}
	va_start(ap, fmt);
	vsnprintf(errs->msg[errs->count], sizeof(errs->msg[0]), fmt, ap);
	va_end(ap);
	errs->count++;
}

/* "FILE:LINE: section.key: problem" */
static void __attribute__((format(printf, 5, 6)))
cfg_error_at(struct cfg_ctx *c, const config_setting_t *s, const char *section, const char *key,
	     const char *fmt, ...)
{
	char problem[192];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(problem, sizeof(problem), fmt, ap);
	va_end(ap);
	cfg_error(c->errs, "%s:%u: %s%s%s: %s", c->file, s ? config_setting_source_line(s) : 0,
		  section, key ? "." : "", key ? key : "", problem);
}

static const char *cfg_type_name(int type)
{
	switch (type) {
	case CONFIG_TYPE_GROUP:
		return "a group";
	case CONFIG_TYPE_INT:
	case CONFIG_TYPE_INT64:
		return "an integer";
	case CONFIG_TYPE_FLOAT:
		return "a float";
	case CONFIG_TYPE_STRING:
		return "a string";
	case CONFIG_TYPE_BOOL:
		return "a boolean";
	case CONFIG_TYPE_ARRAY:
		return "an array";
	case CONFIG_TYPE_LIST:
		return "a list";
	default:
		return "nothing";
	}
}

static void *cfg_field(struct mw_config *cfg, size_t off)
{
	return (char *)cfg + off;
}

static int cfg_parse_cidr(const char *text)
{
	char ip[MW_ADDR_TEXT_MAX];
	unsigned char buf[16];
	const char *slash = strchr(text, '/');
	char *end;
	long prefix;
	int max;

	if (!slash || (size_t)(slash - text) >= sizeof(ip))
		return -EINVAL;
	memcpy(ip, text, (size_t)(slash - text));
	ip[slash - text] = '\0';
	if (inet_pton(AF_INET, ip, buf) == 1)
		max = 32;
	else if (inet_pton(AF_INET6, ip, buf) == 1)
		max = 128;
	else
		return -EINVAL;
	errno = 0;
	prefix = strtol(slash + 1, &end, 10);
	if (errno || end == slash + 1 || *end || prefix < 0 || prefix > max)
		return -EINVAL;
	return 0;
}

/**
 * mw_guard_listener_parse() - read a guard.listeners entry "PORT:PROTO"
 * @text:  "80:http"
 * @port:  the port, if not NULL
 * @proto: the protocol's index in "none", "data", "http", "line" (enum mw_accept_filter
 *         order, common/shield.h), if not NULL
 * Return: 0 or -EINVAL
 */
int mw_guard_listener_parse(const char *text, int *port, int *proto)
{
	static const char *const protos[] = { "none", "data", "http", "line" };
	const char *colon = strchr(text, ':');
	char *end;
	long p;
	size_t i;

	if (!colon)
		return -EINVAL;
	errno = 0;
	p = strtol(text, &end, 10);
	if (errno || end != colon || end == text || p < 1 || p > 65535)
		return -EINVAL;
	for (i = 0; i < sizeof(protos) / sizeof(protos[0]); i++)
		if (!strcmp(colon + 1, protos[i]))
			break;
	if (i == sizeof(protos) / sizeof(protos[0]))
		return -EINVAL;
	if (port)
		*port = (int)p;
	if (proto)
		*proto = (int)i;
	return 0;
}

/* Return: NULL if @text passes @check, else what is wrong with it. */
static const char *cfg_check_string(enum cfg_check check, const char *text)
{
	struct mw_addr addr;
	size_t i;

	switch (check) {
	case CHK_PATH_OR_EMPTY:
		if (!*text)
			return NULL;
		/* fall through */
	case CHK_PATH:
		if (text[0] != '/')
			return "is not an absolute path";
		if (strlen(text) >= MW_PATH_MAX)
			return "is too long for a socket path (107 bytes at most)";
		return NULL;
	case CHK_ADDR_OR_EMPTY:
		if (!*text)
			return NULL;
		/* fall through */
	case CHK_ADDR:
		return mw_addr_parse(&addr, text) ? "is not an \"ip:port\" address" : NULL;
	case CHK_CIDR_OR_EMPTY:
		if (!*text)
			return NULL;
		/* fall through */
	case CHK_CIDR:
		return cfg_parse_cidr(text) ? "is not an \"ip/prefix\" network" : NULL;
	case CHK_NETFLOW:
		if (!*text || text[0] == '/')
			return cfg_check_string(CHK_PATH_OR_EMPTY, text);
		return mw_addr_parse(&addr, text) ? "is neither an absolute path nor \"ip:port\""
						  : NULL;
	case CHK_LISTENER:
		return mw_guard_listener_parse(text, NULL, NULL) ? "is not \"PORT:PROTO\" (PORT "
								   "1..65535, PROTO http, line, "
								   "data or none)"
								 : NULL;
	case CHK_IFNAME:
		if (!*text)
			return "is not an interface name (empty)";
		for (i = 0; text[i]; i++)
			if (text[i] == '/' || text[i] == ':' || text[i] <= ' ')
				return "is not an interface name";
		return NULL;
	default:
		return NULL;
	}
}

static void cfg_join_allowed(const char *const *allowed, char *buf, size_t len)
{
	size_t used = 0;
	int n;

	buf[0] = '\0';
	for (; *allowed && used < len; allowed++) {
		n = snprintf(buf + used, len - used, "%s%s", used ? ", " : "", *allowed);
		if (n < 0)
			break;
		used += (size_t)n;
	}
}

/* One string setting against its row; on success copies it into @dst. */
static void cfg_apply_string(struct cfg_ctx *c, const struct cfg_key *k, const config_setting_t *s,
			     char *dst, const char *what)
{
	const char *text = config_setting_get_string(s);
	const char *problem;
	char allowed[128];
	size_t len;

	if (config_setting_type(s) != CONFIG_TYPE_STRING || !text) {
		cfg_error_at(c, s, k->section, k->key, "%sexpected a string, got %s", what,
			     cfg_type_name(config_setting_type(s)));
		return;
	}
	len = strlen(text);
	if (len >= k->size) {
		cfg_error_at(c, s, k->section, k->key, "%stoo long (%zu bytes, at most %zu)", what,
			     len, k->size - 1);
		return;
	}
	if (k->allowed) {
		const char *const *a;

		for (a = k->allowed; *a; a++)
			if (!strcmp(*a, text))
				break;
		if (!*a) {
			cfg_join_allowed(k->allowed, allowed, sizeof(allowed));
			cfg_error_at(c, s, k->section, k->key, "%s\"%.40s\" is not one of: %s",
				     what, text, allowed);
			return;
		}
	}
	problem = cfg_check_string(k->check, text);
	if (problem) {
		cfg_error_at(c, s, k->section, k->key, "%s\"%.60s\" %s", what, text, problem);
		return;
	}
	memset(dst, 0, k->size);
	memcpy(dst, text, len);
}

static void cfg_apply_int(struct cfg_ctx *c, const struct cfg_key *k, const config_setting_t *s)
{
	int type = config_setting_type(s);
	long long v;

	if (type != CONFIG_TYPE_INT && type != CONFIG_TYPE_INT64) {
		cfg_error_at(c, s, k->section, k->key, "expected an integer, got %s",
			     cfg_type_name(type));
		return;
	}
	v = config_setting_get_int64(s);
	if (v < k->min || v > k->max) {
		cfg_error_at(c, s, k->section, k->key, "%lld is out of range %lld..%lld", v, k->min,
			     k->max);
		return;
	}
	if (k->check == CHK_POW2 && (v & (v - 1))) {
		cfg_error_at(c, s, k->section, k->key, "%lld is not a power of two", v);
		return;
	}
	*(int *)cfg_field(c->cfg, k->off) = (int)v;
}

static void cfg_apply_bool(struct cfg_ctx *c, const struct cfg_key *k, const config_setting_t *s)
{
	if (config_setting_type(s) != CONFIG_TYPE_BOOL) {
		cfg_error_at(c, s, k->section, k->key, "expected true or false, got %s",
			     cfg_type_name(config_setting_type(s)));
		return;
	}
	*(bool *)cfg_field(c->cfg, k->off) = config_setting_get_bool(s);
}

/* A list is taken whole or not at all, so a bad entry never leaves half a list. */
static void cfg_apply_strlist(struct cfg_ctx *c, const struct cfg_key *k, const config_setting_t *s)
{
	int type = config_setting_type(s);
	int i, n, errors_before = c->errs->count;
	char *tmp; /* staged entries, k->size bytes each: a list's fields differ in size */
	char what[32];

	if (type != CONFIG_TYPE_ARRAY && type != CONFIG_TYPE_LIST) {
		cfg_error_at(c, s, k->section, k->key, "expected a list of strings [ ... ], got %s",
			     cfg_type_name(type));
		return;
	}
	n = config_setting_length(s);
	if (n > k->max) {
		cfg_error_at(c, s, k->section, k->key, "too many entries (%d, at most %lld)", n,
			     k->max);
		return;
	}
	tmp = calloc(n ? (size_t)n : 1, k->size);
	if (!tmp) {
		cfg_error_at(c, s, k->section, k->key, "out of memory");
		return;
	}
	for (i = 0; i < n; i++) {
		snprintf(what, sizeof(what), "entry %d: ", i + 1);
		cfg_apply_string(c, k, config_setting_get_elem(s, (unsigned int)i),
				 tmp + (size_t)i * k->size, what);
	}
	if (c->errs->count == errors_before) {
		memcpy(cfg_field(c->cfg, k->off), tmp, (size_t)n * k->size);
		*(int *)cfg_field(c->cfg, k->count_off) = n;
	}
	free(tmp);
}

static const struct cfg_key *cfg_find(const char *section, const char *key)
{
	size_t i;

	for (i = 0; i < CFG_NKEYS; i++)
		if (!strcmp(cfg_keys[i].section, section) && !strcmp(cfg_keys[i].key, key))
			return &cfg_keys[i];
	return NULL;
}

static void cfg_apply_section(struct cfg_ctx *c, const config_setting_t *sec)
{
	const char *section = config_setting_name(sec);
	const struct cfg_key *k;
	config_setting_t *s;
	int i, n = config_setting_length(sec);

	for (i = 0; i < n; i++) {
		s = config_setting_get_elem(sec, (unsigned int)i);
		k = cfg_find(section, config_setting_name(s));
		if (!k) {
			cfg_error_at(c, s, section, config_setting_name(s), "unknown key");
			continue;
		}
		switch (k->type) {
		case CFG_STR:
			cfg_apply_string(c, k, s, cfg_field(c->cfg, k->off), "");
			break;
		case CFG_INT:
			cfg_apply_int(c, k, s);
			break;
		case CFG_BOOL:
			cfg_apply_bool(c, k, s);
			break;
		case CFG_STRLIST:
			cfg_apply_strlist(c, k, s);
			break;
		}
	}
}

/* Rules that span keys; checked on the merged values, reported at the file's line. */
static void cfg_cross_check(struct cfg_ctx *c, const config_t *lc)
{
	const struct mw_config *cfg = c->cfg;
	const config_setting_t *s;

	if (cfg->balancer.min_ins > cfg->balancer.max_ins) {
		s = config_lookup(lc, "balancer.min_ins");
		if (!s)
			s = config_lookup(lc, "balancer.max_ins");
		cfg_error_at(c, s, "balancer", "min_ins",
			     "%d is greater than balancer.max_ins (%d)", cfg->balancer.min_ins,
			     cfg->balancer.max_ins);
	}
	if (cfg->balancer.autoscale_down_conns >= cfg->balancer.autoscale_up_conns) {
		s = config_lookup(lc, "balancer.autoscale_down_conns");
		if (!s)
			s = config_lookup(lc, "balancer.autoscale_up_conns");
		cfg_error_at(c, s, "balancer", "autoscale_down_conns",
			     "%d is not below balancer.autoscale_up_conns (%d)",
			     cfg->balancer.autoscale_down_conns, cfg->balancer.autoscale_up_conns);
	}
	if (cfg->pvm.socket_window > cfg->pvm.ring_size) {
		s = config_lookup(lc, "pvm.socket_window");
		if (!s)
			s = config_lookup(lc, "pvm.ring_size");
		cfg_error_at(c, s, "pvm", "socket_window", "%d is larger than pvm.ring_size (%d)",
			     cfg->pvm.socket_window, cfg->pvm.ring_size);
	}
	if (cfg->pvm.socket_window > cfg->pvm.pending_total) {
		s = config_lookup(lc, "pvm.socket_window");
		if (!s)
			s = config_lookup(lc, "pvm.pending_total");
		cfg_error_at(c, s, "pvm", "socket_window",
			     "%d is larger than pvm.pending_total (%d): one connection's bytes "
			     "for its app could never be held",
			     cfg->pvm.socket_window, cfg->pvm.pending_total);
	}
}

/**
 * mw_config_defaults() - fill @cfg with the documented defaults
 * @cfg: zeroed and filled from the key table
 */
void mw_config_defaults(struct mw_config *cfg)
{
	size_t i;

	/* Zero everything, padding included, so two configs compare with memcmp. */
	memset(cfg, 0, sizeof(*cfg));
	for (i = 0; i < CFG_NKEYS; i++) {
		const struct cfg_key *k = &cfg_keys[i];

		switch (k->type) {
		case CFG_STR:
			snprintf(cfg_field(cfg, k->off), k->size, "%s", k->def_str);
			break;
		case CFG_INT:
			*(int *)cfg_field(cfg, k->off) = (int)k->def_int;
			break;
		case CFG_BOOL:
			*(bool *)cfg_field(cfg, k->off) = k->def_int != 0;
			break;
		case CFG_STRLIST:
			*(int *)cfg_field(cfg, k->count_off) = 0;
			break;
		}
	}
}

/* A config file is a few KiB; anything past this is a mistake (a log grown past it). */
#define CFG_MAX_BYTES (1 << 20)
#define CFG_ERR_NOTREG 4096 /* cfg_read(): not an errno; the file is not a regular file */

/*
 * Read all of @path (at most CFG_MAX_BYTES) ourselves, so that a missing or
 * unreadable file reports errno rather than libconfig's "file I/O error", and
 * only a regular file is read: a device or a FIFO could be read without end
 * or hold the daemon in open() or read().  Its type is looked at before it is
 * opened (opening some devices does something) and again after.
 * Return: the bytes (free()), or NULL with *err set (EFBIG: too large,
 * CFG_ERR_NOTREG: not a regular file)
 */
static char *cfg_read(const char *path, size_t *len, int *err)
{
	struct stat st;
	char *buf = NULL;
	size_t n = 0;
	ssize_t r;
	int fd;

	if (!stat(path, &st) && !S_ISREG(st.st_mode) && !S_ISDIR(st.st_mode)) {
		*err = CFG_ERR_NOTREG;
		return NULL;
	}
	/* O_NONBLOCK: a FIFO put there since would hold open() for ever; refused below. */
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
	if (fd < 0) {
		*err = errno;
		return NULL;
	}
	if (fstat(fd, &st) < 0) {
		*err = errno;
		goto fail;
	}
	if (S_ISDIR(st.st_mode)) {
		*err = EISDIR;
		goto fail;
	}
	if (!S_ISREG(st.st_mode)) {
		*err = CFG_ERR_NOTREG;
		goto fail;
	}
	buf = malloc(CFG_MAX_BYTES + 1);
	if (!buf) {
		*err = ENOMEM;
		goto fail;
	}
	while (n <= CFG_MAX_BYTES) {
		r = read(fd, buf + n, CFG_MAX_BYTES + 1 - n);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			*err = errno;
			goto fail;
		}
		if (r == 0)
			break;
		n += (size_t)r;
	}
	if (n > CFG_MAX_BYTES) {
		*err = EFBIG;
		goto fail;
	}
	close(fd);
	*len = n;
	return buf;
fail:
	free(buf);
	close(fd);
	return NULL;
}

static void cfg_bad_int(void *arg, unsigned int line, const char *lit, size_t len)
{
	struct cfg_ctx *c = arg;

	cfg_error(c->errs, "%s:%u: integer %.*s%s does not fit in a signed 64-bit integer", c->file,
		  line, (int)(len > 40 ? 40 : len), lit, len > 40 ? "..." : "");
}

/*
 * libconfig 1.5 opens the files named by @include itself, with a blocking
 * fopen() and no bound: a FIFO there would hold the daemon (at start or at a
 * reload) in open() for ever.  So every file @include names, to libconfig's
 * own depth limit, is checked first as the top file is: a regular file of at
 * most CFG_MAX_BYTES.  A missing one is left to libconfig to report.  (The
 * files are the administrator's; one swapped for a FIFO between this check
 * and libconfig's open is not a case this defends.)
 */
#define CFG_INCLUDE_DEPTH 10 /* libconfig 1.5's MAX_INCLUDE_DEPTH */
/* At most this many included files are read per load for their own
 * @includes: a file that includes itself a thousand times must not cost
 * 1000^10 reads (libconfig stops at its depth limit).  Past it, the names in
 * files not read go unchecked. */
#define CFG_INCLUDE_READS 256

struct cfg_inc {
	struct cfg_ctx *c;
	const char *file; /* the file being scanned */
	int depth;	  /* its depth: the top file is 0 */
};

static void cfg_scan_includes(struct cfg_ctx *c, const char *file, const char *text, size_t len,
			      int depth);

static void cfg_include(void *arg, unsigned int line, const char *name, size_t len)
{
	struct cfg_inc *inc = arg;
	char path[PATH_MAX], *raw;
	struct stat st;
	size_t i, n = 0, got = 0;
	int err = 0;

	/* libconfig's escapes in an @include name: \\ and \" */
	for (i = 0; i < len && n + 1 < sizeof(path); i++) {
		if (name[i] == '\\' && i + 1 < len && (name[i + 1] == '\\' || name[i + 1] == '"'))
			i++;
		path[n++] = name[i];
	}
	path[n] = '\0';
	if (i < len || memchr(path, '\0', n))
		return; /* too long or with a NUL: libconfig cannot open it either */
	if (stat(path, &st) < 0)
		return; /* libconfig says so */
	if (!S_ISREG(st.st_mode)) {
		cfg_error(inc->c->errs,
			  "%s:%u: @include \"%s\": not a regular file (a device, FIFO or socket)",
			  inc->file, line, path);
		return;
	}
	if (st.st_size > CFG_MAX_BYTES) {
		cfg_error(inc->c->errs,
			  "%s:%u: @include \"%s\": larger than %d bytes; not a config file?",
			  inc->file, line, path, CFG_MAX_BYTES);
		return;
	}
	if (inc->depth + 1 >= CFG_INCLUDE_DEPTH || inc->c->includes_read >= CFG_INCLUDE_READS)
		return; /* libconfig refuses to go deeper; or enough was read */
	inc->c->includes_read++;
	raw = cfg_read(path, &got, &err);
	if (!raw)
		return; /* it changed under us: libconfig will find what it finds */
	cfg_scan_includes(inc->c, path, raw, got, inc->depth + 1);
	free(raw);
}

static void cfg_scan_includes(struct cfg_ctx *c, const char *file, const char *text, size_t len,
			      int depth)
{
	struct cfg_inc inc = { .c = c, .file = file, .depth = depth };

	(void)mw_config_widen_ints(text, len, NULL, 0, NULL, cfg_include, &inc);
}

/*
 * The file's text as libconfig should see it: integer literals outside int32
 * marked L (config_ints.h), so none is silently truncated.
 * Return: a stream over the text (its buffer in *text, free() after fclose),
 * or NULL with the problem in c->errs
 */
static FILE *cfg_open(struct cfg_ctx *c, char **text)
{
	char *raw, *wide = NULL;
	size_t len = 0;
	ssize_t n;
	FILE *fp = NULL;
	int err = 0, errs_before;

	raw = cfg_read(c->file, &len, &err);
	if (!raw) {
		if (err == EFBIG)
			cfg_error(c->errs, "%s: larger than %d bytes; not a config file?", c->file,
				  CFG_MAX_BYTES);
		else if (err == CFG_ERR_NOTREG)
			cfg_error(c->errs, "%s: not a regular file (a device, FIFO or socket)",
				  c->file);
		else
			cfg_error(c->errs, "%s: cannot read: %s", c->file, strerror(err));
		return NULL;
	}
	wide = malloc(MW_CONFIG_WIDEN_SIZE(len));
	if (!wide) {
		cfg_error(c->errs, "%s: cannot read: %s", c->file, strerror(ENOMEM));
		goto out;
	}
	n = mw_config_widen_ints(raw, len, wide, MW_CONFIG_WIDEN_SIZE(len), cfg_bad_int, NULL, c);
	if (n < 0) {
		if (n != -ERANGE)
			cfg_error(c->errs, "%s: cannot read: %s", c->file, strerror((int)-n));
		goto out;
	}
	errs_before = c->errs->count;
	cfg_scan_includes(c, c->file, raw, len, 0);
	if (c->errs->count != errs_before)
		goto out;
	fp = fmemopen(wide, (size_t)n, "r");
	if (!fp)
		cfg_error(c->errs, "%s: cannot read: %s", c->file, strerror(errno));
out:
	free(raw);
	if (fp)
		*text = wide;
	else
		free(wide);
	return fp;
}

/**
 * mw_config_load() - defaults, then the file at @path, validated as a whole
 * @cfg:  filled; on error holds defaults plus whatever was valid
 * @path: config file; NULL means defaults only
 * @errs: every problem found, "FILE:LINE: section.key: problem"
 *
 * Return: 0, or -EINVAL when @errs->count > 0
 */
int mw_config_load(struct mw_config *cfg, const char *path, struct mw_config_errors *errs)
{
	struct mw_config_errors scratch;
	struct cfg_ctx c;
	config_setting_t *root, *sec;
	const char *name;
	config_t lc;
	char *buf = NULL;
	FILE *fp;
	int i, n;

	if (!errs)
		errs = &scratch; /* the caller only wants the verdict */
	c = (struct cfg_ctx){ .cfg = cfg, .errs = errs, .file = path };
	mw_config_defaults(cfg);
	errs->count = 0;
	if (!path)
		return 0;
	snprintf(cfg->path, sizeof(cfg->path), "%s", path);

	fp = cfg_open(&c, &buf);
	if (!fp)
		return -EINVAL;

	config_init(&lc);
	if (config_read(&lc, fp) != CONFIG_TRUE) {
		const char *text = config_error_text(&lc) ? config_error_text(&lc) : "?";

		/* libconfig's text is often just "syntax error"; do not say it twice. */
		cfg_error(errs, "%s:%d: %s%s",
			  config_error_file(&lc) ? config_error_file(&lc) : path,
			  config_error_line(&lc),
			  strstr(text, "syntax error") ? "" : "syntax error: ", text);
		goto out;
	}

	root = config_root_setting(&lc);
	n = config_setting_length(root);
	for (i = 0; i < n; i++) {
		const char *const *known;

		sec = config_setting_get_elem(root, (unsigned int)i);
		name = config_setting_name(sec);
		for (known = cfg_sections; *known; known++)
			if (!strcmp(*known, name))
				break;
		if (!*known) {
			cfg_error_at(&c, sec, name, NULL,
				     "unknown section (expected common, pvm, ins, balancer, guard or flowd)");
			continue;
		}
		if (config_setting_type(sec) != CONFIG_TYPE_GROUP) {
			cfg_error_at(&c, sec, name, NULL, "expected a section { ... }, got %s",
				     cfg_type_name(config_setting_type(sec)));
			continue;
		}
		cfg_apply_section(&c, sec);
	}
	cfg_cross_check(&c, &lc);

out:
	config_destroy(&lc);
	fclose(fp);
	free(buf);
	return errs->count ? -EINVAL : 0;
}
