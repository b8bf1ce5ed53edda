/* SPDX-License-Identifier: MIT */
/* config.h - the one libconfig file shared by every daemon, one section each */
#ifndef MW_CONFIG_H
#define MW_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define MW_PATH_MAX 108 /* sun_path: every path here may become a socket address */
#define MW_NAME_MAX 64
#define MW_ADDR_TEXT_MAX 64
#define MW_LISTEN_MAX 16

/* Every key, its type, default and range is in conf/mwcomms.conf. */
struct mw_common_config {
	char runtime_dir[MW_PATH_MAX];      /* "/run/mwcomms" */
	char log_level[16];                 /* "info" */
	char keystore[16];                  /* "local" | "xenstore" */
	char keystore_root[MW_PATH_MAX];    /* "/run/mwcomms/store" */
};

struct mw_pvm_config {
	char control_socket[MW_PATH_MAX];   /* shim registrations: "/run/mwcomms/pvm.sock" */
	char ins_socket[MW_PATH_MAX];       /* INS handshakes: "/run/mwcomms/pvm-ins.sock" */
	int index;                          /* PVM index, id bits 32-39: 0..255, default 0 */
	int ring_size;                      /* bytes per direction, power of two: 4 MiB */
	int socket_window;                  /* per-socket credit window bytes: 256 KiB */
	int heartbeat_timeout_ms;           /* INS declared dead after: 3000 */
	int spin_us;                        /* poll this long before sleeping (common/spin.h): 0 */
	char netflow_listen[MW_ADDR_TEXT_MAX]; /* "127.0.0.1:0" */
	char netflow_allow[MW_ADDR_TEXT_MAX];  /* CIDR allowed to connect: "127.0.0.0/8" */
	int netflow_queue;                  /* observations queued per consumer: 65536 */
	int netflow_stall_ms;               /* stuck consumer disconnected after: 10000 */
	bool fail_open;                     /* shim passes through if mw-pvm is down: false */
};

struct mw_ins_config {
	int id;                             /* INS id, id bits 40-55: 1..65535, default 1 */
	char pvm_socket[MW_PATH_MAX];       /* where mw-pvm accepts INS: "/run/mwcomms/pvm-ins.sock" */
	int max_sockets;                    /* 0 = limited only by nofile */
	int nofile;                         /* RLIMIT_NOFILE to raise to: 1048576 */
	int heartbeat_ms;                   /* 1000 */
	int fin_timeout_ms;                 /* a closed connection's FIN handshake at most: 60000 */
	int socket_window;                  /* per-socket credit window bytes: 256 KiB */
	char congestion_control[32];        /* "" = kernel default, else e.g. "cubic" */
	int sndbuf;                         /* 0 = kernel default */
	int rcvbuf;                         /* 0 = kernel default */
	bool quickack;                      /* TCP_QUICKACK on every socket: false */
	int spin_us;                        /* poll this long before sleeping (common/spin.h): 0 */
	bool proxy_protocol;                /* accepted connections start with a PROXY v2 header: false */
	char proxy_from[MW_ADDR_TEXT_MAX];  /* CIDR allowed to send it; "" = any: "" */
};

struct mw_balancer_config {
	char control_socket[MW_PATH_MAX];   /* mwctl: "/run/mwcomms/balancer.sock" */
	char backend[16];                   /* "netns" | "process" | "xl" */
	int min_ins;                        /* 1 */
	int max_ins;                        /* 4 */
	char policy[32];                    /* "round-robin" | "least-connections" | "least-busy" | "hash" */
	int overload_threshold;             /* percent, least-busy: 50 */
	char listen[MW_LISTEN_MAX][MW_ADDR_TEXT_MAX]; /* front-end "ip:port" list: [] */
	int listen_count;
	char subnet[MW_ADDR_TEXT_MAX];      /* INS addresses (netns backend): "10.77.0.0/24" */
	char bridge[16];                    /* "mwbr0" */
	char ins_binary[MW_PATH_MAX];       /* "" = mw-ins next to mw-balancer */
	int per_ins_max_conns;              /* 0 = unlimited */
	int connect_timeout_ms;             /* 3000 */
	int idle_timeout_ms;                /* 0 = none */
	char netflow_listen[MW_ADDR_TEXT_MAX]; /* merged Netflow stream: "127.0.0.1:0" */
	char netflow_allow[MW_ADDR_TEXT_MAX];  /* CIDR allowed to connect: "127.0.0.0/8" */
	char tag[8];                        /* names of its netns/veths: mw-<tag>-ins<N>: "mw" */
	char xl_kernel[MW_PATH_MAX];        /* xl backend: INS domU kernel: "" */
	char xl_ramdisk[MW_PATH_MAX];       /* xl backend: its ramdisk; "" = none: "" */
	int xl_memory_mb;                   /* xl backend: 512 */
	int xl_vcpus;                       /* xl backend: 1 */
	bool autoscale;                     /* change the INS count on load: false */
	int autoscale_up_conns;             /* add one when avg conns per live INS is above: 100 */
	int autoscale_down_conns;           /* drain one when it is below: 10 */
	int autoscale_cooldown_ms;          /* between two decisions: 10000 */
};

struct mw_config {
	char path[4096];                    /* file it came from ("" = defaults only) */
	struct mw_common_config common;
	struct mw_pvm_config pvm;
	struct mw_ins_config ins;
	struct mw_balancer_config balancer;
};

/* Every problem found, so --check-config can print them all. */
#define MW_CONFIG_MAX_ERRORS 32
struct mw_config_errors {
	int count;
	char msg[MW_CONFIG_MAX_ERRORS][256]; /* "FILE:LINE: KEY: problem" */
};

/**
 * mw_config_defaults() - fill @cfg with the documented defaults
 */
void mw_config_defaults(struct mw_config *cfg);

/**
 * mw_config_load() - defaults, then the file at @path, validated as a whole
 * @cfg:  filled; on error holds defaults plus whatever was valid
 * @path: config file; NULL means defaults only
 * @errs: every problem: missing/unreadable file, syntax error, unknown section
 *        or key, wrong type, out-of-range value, each with file, line and key
 *
 * Return: 0, or -EINVAL when @errs->count > 0
 */
int mw_config_load(struct mw_config *cfg, const char *path, struct mw_config_errors *errs);

#endif /* MW_CONFIG_H */
