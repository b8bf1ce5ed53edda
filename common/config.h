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
	int pending_total;		    /* client bytes held for apps, all sockets: 256 MiB */
	int heartbeat_timeout_ms;           /* INS declared dead after: 3000 */
	int handshake_max;                  /* INS handshakes in progress at once: 8 */
	bool xen_channel;                   /* also accept INS domUs through XenStore /mw/ins: false */
	int ins_max_conns;                  /* connections one INS may have open: 65536 */
	int ins_max_queued;                 /* requests / queued control frames per INS: 65536 */
	int op_timeout_ms;                  /* a shim request unanswered by its INS fails: 5000 */
	int close_confirm_ms; /* a close unconfirmed by its INS longer: INS cut: 3660000 */
	int id_space;                       /* local socket ids 1..id_space per INS: 2^31-1 */
	int spin_us;                        /* poll this long before sleeping (common/spin.h): 0 */
	bool data_pipe;                     /* bulk to local INS by splice (DATA_PIPE): true */
	int splice_timeout_ms;              /* a splice into an INS's data pipe longer: INS cut: 1000 */
	char netflow_unix[MW_PATH_MAX];     /* local consumers: "" = <runtime_dir>/netflow-<index>.sock */
	char netflow_group[MW_NAME_MAX];    /* AF_UNIX peers in it observe: "" = none */
	char netflow_control_group[MW_NAME_MAX]; /* ... in it also control: "" = root only */
	char netflow_listen[MW_ADDR_TEXT_MAX]; /* TCP consumers (token required): "" = none */
	char netflow_allow[MW_ADDR_TEXT_MAX];  /* CIDR allowed to connect over TCP: "127.0.0.0/8" */
	char netflow_token_file[MW_PATH_MAX];  /* "observe|control TOKEN" lines, root-only: "" */
	int netflow_max_per_user;           /* consumers per uid / token / address: 4 */
	int netflow_queue;                  /* observations queued per consumer: 65536 */
	int netflow_memory;                 /* observation bytes queued, all consumers: 64 MiB */
	int netflow_stall_ms;               /* the window a consumer's read rate is measured over: 10000 */
	int netflow_min_rate;               /* bytes/s a consumer with a backlog must read: 16384 */
	int netflow_block_max;              /* AddrBlock entries held: 4096 */
	int netflow_block_ttl_s;            /* an AddrBlock expires after; 0 = never: 3600 */
	char netflow_signals[8][16];        /* OwnerRunning WRITE may send these besides SIGINT: [] */
	int netflow_signals_count;
	bool fail_open;                     /* shim passes through if mw-pvm is down: false */
	int max_sockets_per_user;           /* app sockets per uid, 0 = unlimited: 16384 */
	int max_connections_per_user;       /* shim control connections per uid, 0 = unlimited: 4096 */
	char subuid_file[MW_PATH_MAX];      /* subordinate uid ranges, each one account: "/etc/subuid" */
	int liveness_interval_ms;           /* sweep for app sockets whose app is gone: 200 */
};

struct mw_ins_config {
	int id;                             /* INS id, id bits 40-55: 1..65535, default 1 */
	char pvm_socket[MW_PATH_MAX];       /* where mw-pvm accepts INS: "/run/mwcomms/pvm-ins.sock" */
	char channel[8];                    /* "local" (pvm_socket) | "xen" (XenStore, grants): "local" */
	int pvm_domid;                      /* xen: mw-pvm's domain: 0 */
	int max_sockets;                    /* 0 = limited only by nofile */
	int nofile;                         /* RLIMIT_NOFILE to raise to: 1048576 */
	int heartbeat_ms;                   /* 1000 */
	int id_space;                       /* accepted ids: local part 1..id_space: 2^31-1 */
	int fin_timeout_ms;                 /* a closed connection's FIN handshake at most: 60000 */
	int shield_hold_max;                /* held by an accept filter per listener when its
					     * shield's hold_max is 0: 4096 */
	int shield_out_total;               /* bytes all out buffers hold at most: 64 MiB */
	int shield_sources;                 /* source-limit table entries: 65536 */
	int shield_prefixes;                /* prefix-limit table entries: 16384 */
	int socket_window;                  /* per-socket credit window bytes: 1 MiB */
	int pending_total;                  /* bytes all pending buffers hold at most: 256 MiB */
	char congestion_control[32];        /* "" = kernel default, else e.g. "cubic" */
	int sndbuf;                         /* 0 = kernel default */
	int rcvbuf;                         /* 0 = kernel default */
	bool quickack;                      /* TCP_QUICKACK on every socket: false */
	int spin_us;                        /* poll this long before sleeping (common/spin.h): 0 */
	bool proxy_protocol;                /* accepted connections start with a PROXY v2 header: false */
	char proxy_from[MW_ADDR_TEXT_MAX];  /* CIDR allowed to send it; "" = any: "" */
	char user[64];                      /* spawned INS run as: "mwcomms-ins"; "" = stay root */
	bool seccomp;                       /* load the system-call allow-list: true */
};

struct mw_balancer_config {
	char control_socket[MW_PATH_MAX];   /* mwctl: "/run/mwcomms/balancer.sock" */
	char backend[16];                   /* "netns" | "process" | "xl" */
	char mode[16];                      /* front end: "splice" (proxy) | "kernel" (nftables DNAT) */
	int min_ins;                        /* 1 */
	int max_ins;                        /* 4 */
	char policy[32];                    /* "round-robin" | "least-connections" | "least-busy" | "hash" */
	int overload_threshold;             /* percent, least-busy: 50 */
	char listen[MW_LISTEN_MAX][MW_ADDR_TEXT_MAX]; /* front-end "ip:port" list: [] */
	int listen_count;
	char subnet[MW_ADDR_TEXT_MAX];      /* INS addresses (netns backend): "10.77.0.0/24" */
	char bridge[16];                    /* "mwbr0" */
	int netns_tcp_ehash;                /* TCP hash buckets of each INS namespace: 65536; 0 = the host's */
	char ins_binary[MW_PATH_MAX];       /* "" = mw-ins next to mw-balancer */
	int per_ins_max_conns;              /* 0 = unlimited */
	int connect_timeout_ms;             /* 3000 */
	int idle_timeout_ms;                /* no byte either way on either leg: 300000; 0 = none */
	int drain_timeout_ms;               /* a draining INS is stopped after: 60000; 0 = none */
	int start_timeout_ms;               /* an INS not joined mw-pvm by then is replaced: 120000; 0 = none */
	int keepalive_ms;                   /* TCP keepalive idle, both legs: 60000; 0 = off */
	int max_conns;                      /* front-end connections at once: 50000 */
	int max_conns_per_source; /* ... from one client address (splice): 2048; 0 = no limit */
	int health_interval_ms;             /* between two health checks of an INS: 500 */
	int health_timeout_ms;              /* one check fails after: 1000 */
	int health_failures;                /* failed checks in a row before down: 2 */
	char netflow_unix[MW_PATH_MAX];     /* merged stream, local: "" = <runtime_dir>/balancer-<tag>-netflow.sock */
	char netflow_listen[MW_ADDR_TEXT_MAX]; /* merged Netflow stream over TCP: "" = none */
	char netflow_allow[MW_ADDR_TEXT_MAX];  /* CIDR allowed to connect: "127.0.0.0/8" */
	char netflow_upstream_token_file[MW_PATH_MAX]; /* token for PVMs reached over TCP: "" */
	int netflow_request_timeout_ms;     /* a request forwarded to a PVM fails after: 5000 */
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

#define MW_GUARD_LIST_MAX 16

/* mw-guard, the policy engine (docs/guard.md). */
struct mw_guard_config {
	char netflow[MW_PATH_MAX];
					    /* "/path" or "ip:port": "" = mw-pvm's AF_UNIX socket */
	char netflow_token_file[MW_PATH_MAX]; /* token for a TCP server: "" */
	char control_socket[MW_PATH_MAX];   /* mwctl guard: "/run/mwcomms/guard.sock" */
	char mode[16];                      /* "enforce" | "report" */
	char listeners[MW_GUARD_LIST_MAX][MW_ADDR_TEXT_MAX]; /* "PORT:PROTO": [] */
	int listeners_count;
	char allow[MW_GUARD_LIST_MAX][MW_ADDR_TEXT_MAX]; /* CIDRs never closed nor blocked: [] */
	int allow_count;
	bool baseline;                      /* protective shield on sight: true */
	int shield_deadline_ms;             /* baseline DEADLINE_MS: 10000 */
	int shield_out_buffer;              /* baseline OUT_BUFFER bytes: 256 KiB */
	int shield_stall_max;               /* baseline STALL_MAX: 16 */
	int shield_min_in_rate;             /* pressure lever, B/s: 50 */
	int shield_min_out_rate;            /* pressure lever, B/s: 256 */
	int shield_src_max_conns;           /* pressure lever: 64 */
	int shield_pfx_max_conns;           /* pressure lever: 512 */
	int shield_src_rate;                /* pressure lever, conns/s: 50 */
	int shield_pfx_rate;                /* pressure lever, conns/s: 500 */
	int shield_hold_max;                /* pressure lever, INS retune: held per listener: 0 */
	int tick_ms;                        /* between two evaluations: 500 */
	int slow_after_ms;                  /* a connection is judged once this old: 3000 */
	int idle_ms;                        /* no byte either way this long = no progress: 5000 */
	int min_rate;                       /* B/s over its life below which it is slow: 20 */
	int pressure_conns;                 /* app slots held per listener = pressure: 256 */
	int pressure_slow;                  /* slow connections per listener = pressure: 32 */
	int pressure_accept_ms;             /* mean accept latency = pressure; 0 = not used: 0 */
	int calm_ms;                        /* no pressure this long clears the levers: 30000 */
	int close_max;                      /* closes per listener per evaluation: 256 */
	int block_slow;                     /* slow connections of one source to block it: 8 */
	int block_expiry_s;                 /* a guard block is lifted after: 300 */
	int good_memory_ms;                 /* a source that progressed this recently is not blocked: 10000 */
	int block_prefix_sources;           /* offending sources of one /24 (/64) blocking them all; 0 = off: 16 */
	int block_ipv6_prefix; /* an IPv6 source is blocked as this prefix (128: alone): 64 */
	char balancer_socket[MW_PATH_MAX];  /* mw-balancer's control socket, rotate INS: "" = off */
	int rotate_after_ms;                /* pressure this long before a rotation: 10000 */
	int rotate_interval_ms;             /* at most one rotation this often: 60000 */
	int max_conns;                      /* connections tracked: 65536 */
	int max_sources;		    /* source addresses tracked: 65536 */
	int max_blocks;                     /* blocks held at once: 1024 */
	int max_actions;                    /* actions kept for mwctl guard actions: 256 */
};

#define MW_FLOWD_SENSORS_MAX 16
#define MW_FLOWD_INSIDE_MAX 16
#define MW_FLOWD_NETFLOW_MAX 8 /* flowd.netflow_streams entries */

struct mw_flowd_config {
	char interfaces[MW_FLOWD_SENSORS_MAX][16]; /* live sensors (AF_PACKET): [] */
	int interfaces_count;
	char pcap_files[MW_FLOWD_SENSORS_MAX][MW_PATH_MAX]; /* offline sensors, read at start: [] */
	int pcap_files_count;
	char filter[256];                   /* BPF expression (pcap-filter(7)), "" = all: "" */
	char inside[MW_FLOWD_INSIDE_MAX][MW_ADDR_TEXT_MAX]; /* CIDRs of "our" addresses: [] */
	int inside_count;
	int max_addresses;                  /* address table entries: 16384 */
	int max_streams;                    /* stream (5-tuple) table entries: 32768 */
	int max_ports;                      /* (protocol, server port) table entries: 4096 */
	int stream_idle_s;                  /* a stream quiet this long is collected: 30 */
	int address_idle_s;                 /* an address with no stream, quiet this long: 60 */
	int report_interval_s;              /* top-N and anomaly report period: 60 */
	int top_n;                          /* rows per top-N list: 20 */
	int sketch_counters;                /* Space-Saving counters per list: 256 */
	int fanout_threshold;               /* distinct peers per interval for a fan-out: 64 */
	int scan_threshold;                 /* distinct destination ports per interval for a scan: 64 */
	char report_file[MW_PATH_MAX];      /* JSON lines appended here, "" = stdout: "" */
	int ring_block_size;                /* TPACKET_V3 block bytes, power of two: 1 MiB */
	int ring_blocks;                    /* blocks per live sensor: 16 */
	char sched_policy[8];               /* "other" | "batch" | "idle": "batch" */
	char mapi_socket[MW_PATH_MAX];      /* libmwmapi clients: "/run/mwcomms/flowd.sock"; "" = none */
	char mapi_group[MW_NAME_MAX];       /* its members may create flows: "" = root only */
	int mapi_max_flows;                 /* flows at once: 64 */
	int mapi_max_clients;               /* client processes at once: 16 */
	int mapi_client_flows;              /* flows one client process may hold: 16 */
	char subuid_file[MW_PATH_MAX];	    /* one owner's ranges, one MAPI user: "/etc/subuid" */
	char mapi_sensor_groups[MW_FLOWD_SENSORS_MAX][256]; /* "group:pattern[,pattern...]": its members may
	                                       create flows over the matching sensors only: [] */
	int mapi_sensor_groups_count;
	char ipfix_collector[MW_ADDR_TEXT_MAX]; /* finished streams as IPFIX over UDP: "" = none */
	int ipfix_domain;                   /* observation domain id: 1 */
	int ipfix_template_interval_s;      /* templates re-sent at least this often: 60 */
	char netflow[MW_PATH_MAX];          /* Netflow server (AF_UNIX path or ip:port) to observe: "" = none */
	char netflow_streams[MW_FLOWD_NETFLOW_MAX][MW_PATH_MAX]; /* more Netflow servers, each a sensor: [] */
	int netflow_streams_count;
	char netflow_token_file[MW_PATH_MAX]; /* a TCP server's token: "" */
	int max_sockets;                    /* socket table entries (Netflow sensor): 16384 */
};

struct mw_config {
	char path[4096];                    /* file it came from ("" = defaults only) */
	struct mw_common_config common;
	struct mw_pvm_config pvm;
	struct mw_ins_config ins;
	struct mw_balancer_config balancer;
	struct mw_guard_config guard;
	struct mw_flowd_config flowd;
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

int mw_guard_listener_parse(const char *text, int *port, int *proto);

#endif /* MW_CONFIG_H */
