/* SPDX-License-Identifier: MIT */
/* ins.h - mw-ins internal types: the daemon, its sockets, the table, settings */
#ifndef MW_INS_H
#define MW_INS_H

#include <ev.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/addr.h"
#include "common/channel.h"
#include "common/cidr.h"
#include "common/config.h"
#include "common/daemon.h"
#include "common/proto.h"

struct mw_keystore;
#include "common/proxy2.h"
#include "common/shield.h"
#include "common/spin.h"
#include "ins/ins_accf.h"
#include "ins/ins_rates.h"

struct ins;

enum ins_sock_state {
	INS_ST_NEW,        /* socket() done */
	INS_ST_BOUND,      /* bind() done */
	INS_ST_LISTENING,  /* listen() done: rio accepts */
	INS_ST_CONNECTING, /* connect() in progress: wio waits for the outcome */
	INS_ST_CONNECTED,  /* data flows (connected or accepted) */
	INS_ST_FAILED,     /* connect failed: waits for OP_CLOSE */
	INS_ST_CLOSING,    /* OP_CLOSE seen: draining pending bytes, then EV_CLOSED */
};

/* One TCP socket of this INS, known to the PVM by @id until EV_CLOSED. */
struct ins_sock {
	uint64_t id;
	struct ins_sock *hnext;       /* hash chain */
	struct ins_sock *pprev, *pnext; /* parked list (reading stopped for a global reason) */
	struct ins *ins;
	int fd;                       /* -1 once aborted (by an address block) */
	uint8_t family;               /* 4 or 6 */
	uint8_t state;                /* enum ins_sock_state */
	bool parked;
	bool rd_done;                 /* EV_EOF or EV_RESET sent: never read again */
	bool wr_dead;                 /* send failed: DATA from the PVM is dropped */
	bool close_pending;           /* OP_CLOSE waits for the pending bytes */
	bool lingering;               /* on ins->lingering (ins_linger.c) */
	bool fin_sent;                /* lingering: shutdown(SHUT_WR) done */
	bool app_nodelay;             /* TCP_NODELAY as the app set it (the kernel's is always on) */
	bool proxied;                 /* peer/local came from a PROXY v2 header: getname answers them */
	int8_t shut_pending;          /* -1, or SHUT_* to apply when pending drains */
	uint32_t credit;              /* DATA bytes we may still send to the PVM */
	uint32_t rx_outstanding;      /* DATA bytes from the PVM not yet credited back */
	uint32_t rx_unacked;          /* of those, bytes already in the kernel */
	uint8_t *pend;                /* bytes from the PVM the kernel did not take yet */
	uint32_t pend_off, pend_len, pend_cap;
	struct mw_addr peer;          /* for address blocks on live connections */
	struct mw_addr local;         /* only kept when proxied */
	ev_io rio, wio;
	struct ins_sock *lprev, *lnext; /* lingering list */
	double linger_until;          /* reset if the client has not acknowledged by then */
	struct mw_shield shield;      /* listener: its settings; accepted: its listener's at accept */
	struct ins_held *held_head, *held_tail; /* listener: held by its accept filter, oldest first */
	uint32_t held_count;
	ev_timer held_tick;           /* listener: MIN_IN_RATE of its held ones, every second */
	struct ins_rates_conn rates;  /* shield rates and limits (ins_shield_rates.c) */
};

/* id -> socket, chained, grows by doubling; no fixed cap. */
struct ins_table {
	struct ins_sock **b;
	size_t nbuckets;              /* power of two */
	size_t count;
};

/*
 * Sorted set of blocked addresses and prefixes (port ignored, v4-mapped v6 folded to
 * v4; a prefix's length in its pad), with how many prefixes of each length it holds.
 */
struct ins_blockset {
	struct mw_addr *a;
	size_t n, cap;
	uint32_t prefixes[2][129]; /* [IPv4, IPv6][length]: the lengths a lookup tries */
};

/* INS-wide defaults applied to every new socket (OP_INS_SET, config). */
struct ins_tune {
	char congestion[32];          /* "" = kernel default */
	bool quickack;
	int sndbuf, rcvbuf;           /* 0 = kernel default */
};

/* An accepted connection still reading its PROXY v2 header (ins_proxy.c); not in the table. */
struct ins_pp {
	struct ins_pp *prev, *next;
	struct ins *ins;
	uint64_t listener;            /* looked up again when the header is complete */
	int fd;
	uint16_t have;                /* header bytes read so far */
	struct mw_addr peer, local;   /* the TCP connection's own endpoints */
	ev_io io;
	ev_timer deadline;
	uint8_t buf[MW_PROXY2_MAX];
};

/* ins.proxy_protocol state and what it refused, for the log lines. */
struct ins_proxy {
	bool any;                     /* ins.proxy_from "" */
	struct mw_cidr from;
	struct ins_pp *head;
	uint32_t count;
	uint64_t ok, bad, untrusted, timeout, overflow;
};

/* A control frame (RESULT / EV_*) that found the ring full: sent first when room appears. */
struct ins_ctlq {
	struct ins_ctlq *next;
	uint16_t type;
	uint64_t sock;
	uint32_t len;
	uint8_t payload[];
};

struct ins {
	struct mw_daemon *d;
	struct ev_loop *loop;
	const struct mw_ins_config *cfg;
	struct mw_channel ch;
	bool up;                      /* handshake done */
	bool dead;                    /* fatal: exit non-zero */
	bool more_rx;                 /* rx budget ran out: poll again before sleeping */
	struct mw_spin spin;          /* ins.spin_us: poll before sleeping */
	bool ring_full;               /* a DATA reserve failed: waiting for room */
	uint8_t pvm_index;
	uint32_t window;              /* credit we grant the PVM per socket */
	uint32_t peer_window;         /* credit the PVM grants us per socket */
	int conn_fd;                  /* handshake socket while connecting */
	double connect_start, connect_delay, status_at;
	bool connect_logged;
	ev_timer connect_timer, hb_timer, retry_timer;
	ev_io wait_io, sock_io;
	ev_prepare prepare;
	ev_idle idle;
	struct ins_table socks;
	struct ins_sock *parked;      /* sockets waiting for ring room / retry */
	struct ins_sock *lingering;   /* closed by the PVM, waiting for the client's ACK */
	ev_timer linger_timer;
	struct ins_ctlq *q, *q_tail;
	uint32_t qlen;
	uint32_t next_accept;         /* next accepted id's local part w/o bit 31 (0: pick) */
	struct ins_blockset blocked;
	struct ins_tune tune;
	struct mw_stats stats;        /* seq, max/used sockets, rx/tx bytes */
	uint64_t accepted, refused_blocked;
	struct ins_proxy pp;          /* used only with ins.proxy_protocol */
	struct ins_accf_stats accf;   /* accept filters (ins_accf.c) */
	struct ins_shield_rates rates; /* shield rates and limits (ins_shield_rates.c) */
	uint64_t pend_total;          /* pend_len of every socket: at most ins.pending_total */
	uint64_t pend_resets;         /* connections reset because it was reached */
	uint64_t pipe_spliced;        /* DATA_PIPE bytes spliced into TCP */
	uint64_t pipe_copied;         /* DATA_PIPE bytes read into pending buffers */
	struct mw_keystore *xen_ks;   /* ins.channel "xen": XenStore until joined, else NULL */
	bool xen_joined;              /* the channel is Xen's: released by the exit alone */
	bool app_linger;	      /* an app set SO_LINGER with a time: closes unset it first */
	int exit_status;
};

/* ins_sock.c: the table */
int ins_table_init(struct ins_table *t, size_t nbuckets);
void ins_table_fini(struct ins_table *t);
struct ins_sock *ins_table_find(const struct ins_table *t, uint64_t id);
int ins_table_insert(struct ins_table *t, struct ins_sock *s);
struct ins_sock *ins_table_remove(struct ins_table *t, uint64_t id);

/* ins_sock.c: socket ops */
void ins_sock_op(struct ins *ins, const struct mw_frame *f, const void *payload);
void ins_sock_accept(struct ins_sock *ls);
void ins_sock_free(struct ins_sock *s);
void ins_sock_close_all(struct ins *ins);
void ins_sock_block_live(struct ins *ins);
void ins_sock_admit(struct ins *ins, uint64_t listener, int fd, const struct mw_addr *peer,
		    const struct mw_addr *local, bool proxied);
void ins_sock_announce(struct ins *ins, uint64_t listener, int fd, const struct mw_addr *peer,
		       const struct mw_addr *local, bool proxied, const struct mw_shield *shield,
		       struct ins_rates_ref *ref);
void ins_sock_rst_close(int fd);
void ins_sock_reset(struct ins_sock *s);

/* ins_proxy.c: PROXY v2 header before the accept event */
int ins_proxy_init(struct ins *ins);
void ins_proxy_start(struct ins *ins, uint64_t listener, int fd, const struct mw_addr *peer,
		     const struct mw_addr *local);
void ins_proxy_close_all(struct ins *ins);

/* ins_linger.c: graceful close */
int ins_linger_bound(const struct ins *ins, int fd);
void ins_linger_start(struct ins_sock *s);
void ins_linger_check(struct ins_sock *s);
void ins_linger_abort(struct ins_sock *s);
void ins_linger_forget(struct ins_sock *s);

/* ins_io.c: data relay */
void ins_io_read_cb(struct ev_loop *loop, ev_io *w, int revents);
void ins_io_write_cb(struct ev_loop *loop, ev_io *w, int revents);
int ins_io_data(struct ins_sock *s, const void *data, uint32_t len, char *why, size_t wl);
int ins_io_data_pipe(struct ins_sock *s, uint32_t len, char *why, size_t wl);
int ins_io_credit(struct ins_sock *s, uint32_t bytes, char *why, size_t wl);
void ins_io_update_read(struct ins_sock *s);
void ins_io_park(struct ins_sock *s);
void ins_io_unpark(struct ins_sock *s);
void ins_io_resume_parked(struct ins *ins);
void ins_io_finish_close(struct ins_sock *s);
void ins_io_lost(struct ins_sock *s, int err);

/* ins_shield.c: a listener's shield options */
int ins_shield_set(struct mw_shield *sh, int name, uint64_t v);
int ins_shield_get(const struct mw_shield *sh, int name, uint64_t *v);
int ins_shield_opt(struct ins_sock *s, int name, bool set, const uint8_t *val, uint32_t len,
		   uint8_t *out, uint32_t *outlen);

/* ins_accf.c: accept filters */
void ins_accf_hold(struct ins_sock *ls, int fd, const struct mw_addr *peer,
		   const struct mw_addr *local, bool proxied);
void ins_accf_drop(struct ins_sock *ls);
void ins_accf_block_live(struct ins_sock *ls);
/* ins_shield_rates.c: a shield's rates and limits on live connections */
int ins_shield_rates_init(struct ins *ins);
void ins_shield_rates_fini(struct ins *ins);
bool ins_shield_admit(struct ins *ins, uint64_t listener, const struct mw_addr *peer,
		      struct ins_rates_ref *ref);
void ins_shield_release(struct ins_rates_ref *ref);
uint32_t ins_shield_out_more(struct ins_sock *s);
uint32_t ins_shield_out_sent(struct ins_sock *s, uint32_t n);
uint32_t ins_shield_out_drop(struct ins_sock *s);
void ins_shield_sock_free(struct ins_sock *s);
bool ins_shield_in_slow(struct ins *ins, int fd, const struct mw_shield *sh,
			struct ins_rates_in *st);
void ins_shield_rates_status(const struct ins *ins, char *buf, size_t len);

/* ins_channel.c */
int ins_channel_start(struct ins *ins);
void ins_channel_stop(struct ins *ins);
void ins_channel_hello(const struct ins *ins, struct mw_hello *mine);
int ins_channel_up(struct ins *ins, const char *where, char *err, size_t errlen);

/* ins_xen.c */
int ins_xen_prepare(struct ins *ins, struct mw_ins_config *cfg, char *err, size_t errlen);
int ins_xen_join(struct ins *ins);
int ins_ctl(struct ins *ins, uint16_t type, uint64_t sock, const void *payload, uint32_t len);
void ins_result(struct ins *ins, uint64_t sock, uint32_t req, int status, const void *val,
		uint32_t len);
void ins_fatal(struct ins *ins, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
bool ins_can_produce(const struct ins *ins);

/* ins_tune.c: settings, option whitelist, address blocks */
int ins_tune_init(struct ins_tune *t, const struct mw_ins_config *cfg, char *err, size_t errlen);
int ins_tune_apply(const struct ins_tune *t, int fd);
int ins_tune_set(struct ins_tune *t, const struct mw_op_ins_set *o);
int ins_congestion_check(const char *name);
int ins_opt_allowed(int level, int name, bool set);
void ins_addr_normalize(struct mw_addr *a);
int ins_blockset_add(struct ins_blockset *b, const struct mw_addr *a, unsigned prefix);
int ins_blockset_del(struct ins_blockset *b, const struct mw_addr *a, unsigned prefix);
bool ins_blockset_has(const struct ins_blockset *b, const struct mw_addr *a);
void ins_blockset_fini(struct ins_blockset *b);
int ins_nofile_raise(int want, long *got);

#endif /* MW_INS_H */
