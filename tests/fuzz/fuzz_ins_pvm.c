/* SPDX-License-Identifier: MIT */
/* fuzz_ins_pvm.c - sequences of PVM frames and TCP peers against the real mw-ins state */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "common/channel_backend.h"
#include "common/log.h"
#include "common/sockid.h"
#include "ins/ins.h"
#include "tests/fuzz/fz_input.h"

/*
 * The real mw-ins (ins_channel.c, ins_sock.c, ins_io.c, ins_proxy.c on a loop
 * of its own) joins a fake mw-pvm through the real local handshake (the fake
 * PVM's blocking half runs in a short-lived thread).  Input: a program of
 * steps, PVM frames named by indexes into the ids used so far, and TCP
 * clients of the INS's own listeners that send input bytes (PROXY v2 headers
 * when the first byte asks for ins.proxy_protocol).  Addresses in BIND and
 * CONNECT are forced to loopback: port 0, or a port this process listens on;
 * nothing leaves the machine and no fixed port is ever taken.
 */

#define FZ_WINDOW    4096u
#define FZ_MAX_STEPS 64
#define FZ_MAX_IDS   32
#define FZ_MAX_PEERS 8
#define FZ_PUMP	     4

enum fz_step {
	FZ_SOCKET, /* OP_SOCKET with a fresh id */
	FZ_OP,	   /* an op on a known id, structured */
	FZ_DATA,   /* DATA, DATA_PIPE or CREDIT on a known id */
	FZ_RAW,	   /* any frame */
	FZ_PEER,   /* a TCP client of a listener, sending input bytes */
	FZ_STEPS
};

struct fz {
	struct mw_daemon d;
	struct ins ins;
	struct mw_channel pvm; /* the fake PVM's end */
	bool pvm_up;
	uint64_t ids[FZ_MAX_IDS];
	unsigned nids;
	uint16_t ports[FZ_MAX_IDS]; /* listening ports learnt from GETNAME answers */
	unsigned nports;
	int peers[FZ_MAX_PEERS];
	unsigned npeers;
	uint32_t next_local, next_req;
};

static struct mw_config fz_cfg;
static char fz_dir[64];
static int fz_lsn = -1; /* where the fake PVM accepts mw-ins */
static int fz_tcp = -1; /* a loopback TCP listener CONNECTs may target */
static uint16_t fz_tcp_port;

static void fz_cleanup(void)
{
	unlink(fz_cfg.ins.pvm_socket);
	rmdir(fz_dir);
}

static void fz_global(void)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	struct sockaddr_in sin = { .sin_family = AF_INET,
				   .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t len = sizeof(sin);

	if (fz_lsn >= 0)
		return;
	mw_log_init("mw-ins", getenv("MW_FUZZ_LOG") ? MW_LOG_DEBUG : MW_LOG_ERR);
	signal(SIGPIPE, SIG_IGN);
	snprintf(fz_dir, sizeof(fz_dir), "/tmp/mw-fuzz-ins-XXXXXX");
	if (!mkdtemp(fz_dir))
		abort();
	mw_config_defaults(&fz_cfg);
	fz_cfg.ins.id = 1;
	snprintf(fz_cfg.ins.pvm_socket, sizeof(fz_cfg.ins.pvm_socket), "%s/pvm-ins.sock", fz_dir);
	fz_cfg.ins.socket_window = (int)FZ_WINDOW;
	fz_cfg.ins.heartbeat_ms = 600000;
	fz_cfg.ins.max_sockets = FZ_MAX_IDS;
	snprintf(sun.sun_path, sizeof(sun.sun_path), "%s", fz_cfg.ins.pvm_socket);
	fz_lsn = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	fz_tcp = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fz_lsn < 0 || bind(fz_lsn, (struct sockaddr *)&sun, sizeof(sun)) || listen(fz_lsn, 8) ||
	    fz_tcp < 0 || bind(fz_tcp, (struct sockaddr *)&sin, sizeof(sin)) ||
	    listen(fz_tcp, 64) || getsockname(fz_tcp, (struct sockaddr *)&sin, &len))
		abort();
	fz_tcp_port = ntohs(sin.sin_port);
	atexit(fz_cleanup);
}

struct fz_offer {
	struct mw_channel *ch;
	int ret;
	atomic_int done;
};

static void *fz_offer_thread(void *arg)
{
	struct fz_offer *o = arg;
	struct mw_hello mine = {
		.magic = MW_PROTO_MAGIC,
		.version_min = MW_PROTO_VERSION_MIN,
		.version_max = MW_PROTO_VERSION_MAX,
		.ring_size = MW_CHANNEL_MIN_RING,
		.window = FZ_WINDOW,
		.pid = getpid(),
	};
	char err[160];
	int fd = accept4(fz_lsn, NULL, NULL, SOCK_CLOEXEC);

	o->ret = fd < 0 ? -errno : mw_channel_local_offer(o->ch, fd, &mine, err, sizeof(err));
	if (o->ret && fd >= 0)
		close(fd);
	atomic_store(&o->done, 1);
	return NULL;
}

static void fz_add_id(struct fz *z, uint64_t id)
{
	for (unsigned i = 0; i < z->nids; i++)
		if (z->ids[i] == id)
			return;
	if (z->nids < FZ_MAX_IDS)
		z->ids[z->nids++] = id;
}

/* What mw-ins sent: ids of accepted connections, ports of its listeners. */
static void fz_collect(struct fz *z)
{
	struct mw_ev_accepted ev;
	struct mw_result r;
	struct mw_addr a;
	const void *pl;
	struct mw_frame f;
	int fd;

	while (fz_tcp >= 0 && (fd = accept4(fz_tcp, NULL, NULL, SOCK_CLOEXEC)) >= 0)
		close(fd); /* CONNECT targets: accepted and dropped */
	for (int i = 0; z->pvm_up && i < 4096 && mw_channel_recv(&z->pvm, &f, &pl) > 0; i++) {
		if (f.type == MW_EV_ACCEPTED && f.len >= sizeof(ev)) {
			memcpy(&ev, pl, sizeof(ev));
			fz_add_id(z, ev.new_sock);
		} else if (f.type == MW_RESULT && f.len >= sizeof(r) + sizeof(a)) {
			memcpy(&r, pl, sizeof(r));
			memcpy(&a, (const uint8_t *)pl + sizeof(r), sizeof(a));
			if (r.len == sizeof(a) && a.port && z->nports < FZ_MAX_IDS)
				z->ports[z->nports++] = a.port;
		}
		mw_channel_done(&z->pvm);
	}
}

static void fz_pump(struct fz *z)
{
	for (int i = 0; i < FZ_PUMP; i++) {
		ev_run(z->ins.loop, EVRUN_NOWAIT);
		fz_collect(z);
	}
}

static void fz_send(struct fz *z, uint16_t type, uint64_t sock, const void *pl, uint32_t len)
{
	if (!z->pvm_up || z->ins.dead)
		return;
	mw_channel_send(&z->pvm, type, sock, pl, len);
	mw_channel_flush(&z->pvm);
}

static int fz_open(struct fz *z, bool proxy)
{
	struct fz_offer o = { .ch = &z->pvm };
	struct ins *ins = &z->ins;
	char err[160];
	pthread_t t;

	fz_global();
	memset(z, 0, sizeof(*z));
	z->d.name = "mw-ins";
	z->d.cfg = fz_cfg;
	z->d.cfg.ins.proxy_protocol = proxy;
	z->d.cfg.ins.shield_sources = 64; /* small tables: one allocation per run */
	z->d.cfg.ins.shield_prefixes = 64;
	z->d.loop = ev_loop_new(EVFLAG_AUTO);
	if (!z->d.loop)
		abort();
	ins->d = &z->d;
	ins->loop = z->d.loop;
	ins->cfg = &z->d.cfg.ins;
	ins->exit_status = EXIT_FAILURE;
	ins->stats.max_sockets = (uint64_t)ins->cfg->max_sockets;
	if (ins_tune_init(&ins->tune, ins->cfg, err, sizeof(err)) || ins_proxy_init(ins) ||
	    ins_shield_rates_init(ins) ||
	    ins_table_init(&ins->socks, 64))
		abort();
	mw_channel_reset(&z->pvm);
	if (pthread_create(&t, NULL, fz_offer_thread, &o))
		abort();
	ins_channel_start(ins);
	for (int i = 0; i < 100000 && !(atomic_load(&o.done) && (ins->up || ins->dead)); i++) {
		ev_run(ins->loop, EVRUN_NOWAIT);
		sched_yield();
	}
	pthread_join(t, NULL);
	if (o.ret || !ins->up)
		abort(); /* the harness itself is broken: no input can be judged */
	z->pvm_up = true;
	z->next_local = 1;
	z->next_req = 1;
	fz_pump(z);
	return 0;
}

static void fz_close(struct fz *z)
{
	for (unsigned i = 0; i < z->npeers; i++)
		close(z->peers[i]);
	ins_channel_stop(&z->ins);
	ins_table_fini(&z->ins.socks);
	ins_shield_rates_fini(&z->ins);
	ins_blockset_fini(&z->ins.blocked);
	if (z->pvm_up)
		mw_channel_close(&z->pvm);
	ev_loop_destroy(z->ins.loop);
}

static uint64_t fz_id(struct fz_in *in, const struct fz *z)
{
	uint8_t k = fz_u8(in);

	if (k == 0xff)
		return fz_u64(in);
	return z->nids ? z->ids[k % z->nids] : 0;
}

/* Loopback only: port 0 or a port of this process (our listener, the INS's). */
static void fz_addr(struct fz_in *in, const struct fz *z, struct mw_addr *a)
{
	uint8_t v = fz_u8(in);

	memset(a, 0, sizeof(*a));
	a->family = v & 1 ? 6 : 4;
	if (a->family == 4)
		a->addr[0] = 127, a->addr[3] = 1;
	else if (v & 2)
		a->addr[10] = a->addr[11] = 0xff, a->addr[12] = 127, a->addr[15] = 1;
	else
		a->addr[15] = 1;
	if (v & 4)
		a->port = fz_tcp_port;
	else if ((v & 8) && z->nports)
		a->port = z->ports[fz_u8(in) % z->nports];
	if (v & 0x10)
		a->family = fz_u8(in); /* a bad family: rejected before any syscall */
}

static void fz_socket(struct fz_in *in, struct fz *z)
{
	uint8_t v = fz_u8(in);
	struct mw_op_socket op = { .req = z->next_req++, .family = v & 1 ? 6 : 4 };
	uint64_t id = mw_sockid_make(1, 0, z->next_local++);

	if (v & 2)
		op.family = fz_u8(in);
	fz_add_id(z, id);
	fz_send(z, MW_OP_SOCKET, v & 4 ? fz_id(in, z) : id, &op, sizeof(op));
}

static const uint16_t fz_ops[] = { MW_OP_BIND,	  MW_OP_LISTEN,	    MW_OP_CONNECT, MW_OP_SETOPT,
				   MW_OP_GETOPT,  MW_OP_SHUTDOWN,   MW_OP_CLOSE,   MW_OP_ABORT,
				   MW_OP_GETNAME, MW_OP_ADDR_BLOCK, MW_OP_INS_SET, MW_OP_STATS };

/* An accept filter (and a deadline of 0..255 ms) on a listener, so peers get held. */
static void fz_shield_listener(struct fz_in *in, struct fz *z, uint64_t sock)
{
	struct mw_op_sockopt o = { .level = MW_SOL_SHIELD, .len = 8 };
	uint64_t v = fz_u8(in) % (MW_ACCF_MAX + 1u);

	o.req = z->next_req++;
	o.name = MW_SHIELD_FILTER;
	memcpy(o.val, &v, sizeof(v));
	fz_send(z, MW_OP_SETOPT, sock, &o, sizeof(o));
	v = fz_u8(in);
	o.req = z->next_req++;
	o.name = MW_SHIELD_DEADLINE_MS;
	memcpy(o.val, &v, sizeof(v));
	fz_send(z, MW_OP_SETOPT, sock, &o, sizeof(o));
}

static void fz_op(struct fz_in *in, struct fz *z)
{
	union {
		struct mw_op_req req;
		struct mw_op_int i;
		struct mw_op_addr a;
		struct mw_op_sockopt o;
		struct mw_op_addr_block b;
		struct mw_op_ins_set s;
	} u;
	uint16_t type = fz_ops[fz_u8(in) % (sizeof(fz_ops) / sizeof(fz_ops[0]))];
	uint64_t sock = fz_id(in, z);
	uint32_t len = 0;

	memset(&u, 0, sizeof(u));
	switch (type) {
	case MW_OP_BIND:
	case MW_OP_CONNECT:
		fz_addr(in, z, &u.a.addr);
		len = sizeof(u.a);
		break;
	case MW_OP_LISTEN:
	case MW_OP_SHUTDOWN:
	case MW_OP_GETNAME:
		u.i.value = fz_s8(in);
		len = sizeof(u.i);
		break;
	case MW_OP_SETOPT:
	case MW_OP_GETOPT:
		u.o.level = fz_u8(in) & 1 ? IPPROTO_TCP : fz_u8(in) & 1 ? SOL_SOCKET : fz_s8(in);
		u.o.name = fz_u8(in);
		u.o.len = fz_u8(in) % (MW_SOCKOPT_MAX + 4u);
		fz_bytes(in, u.o.val, sizeof(u.o.val));
		len = sizeof(u.o);
		if (u.o.level != IPPROTO_TCP && u.o.level != SOL_SOCKET && (u.o.level & 7) == 7) {
			/* The shield (accept filters on the listeners the peers connect to):
			 * small values, so filters, short deadlines and hold_max 1..5 occur. */
			uint64_t v = u.o.val[0] & 1 ? u.o.val[1] % 6u : fz_u64(in);

			u.o.level = MW_SOL_SHIELD;
			u.o.name = u.o.val[2] & 1 ? MW_SHIELD_FILTER
						  : u.o.name % (MW_SHIELD_OPT_MAX + 2);
			u.o.len = 8;
			memcpy(u.o.val, &v, sizeof(v));
		}
		break;
	case MW_OP_ADDR_BLOCK:
		sock = 0;
		u.b.block = fz_u8(in) & 1;
		fz_addr(in, z, &u.b.addr);
		len = sizeof(u.b);
		break;
	case MW_OP_INS_SET:
		sock = 0;
		u.s.name = fz_u8(in) % 6u;
		u.s.value = fz_u32(in);
		fz_bytes(in, u.s.text, sizeof(u.s.text));
		len = sizeof(u.s);
		break;
	case MW_OP_STATS:
		sock = 0;
		len = sizeof(u.req);
		break;
	default:
		len = sizeof(u.req);
		break;
	}
	u.req.req = z->next_req++;
	fz_send(z, type, sock, &u, len);
	if (type == MW_OP_LISTEN && (fz_u8(in) & 1))
		fz_shield_listener(in, z, sock);
}

static void fz_data(struct fz_in *in, struct fz *z)
{
	uint8_t buf[1024];
	uint8_t v = fz_u8(in);
	uint64_t sock = fz_id(in, z);
	uint32_t len;

	if (v & 1) {
		struct mw_credit cr = { .bytes = fz_u16(in) };

		fz_send(z, MW_CREDIT, sock, &cr, sizeof(cr));
		return;
	}
	len = 1 + fz_u16(in) % sizeof(buf);
	fz_bytes(in, buf, len);
	if ((v & 2) && z->pvm.pipe_fd >= 0) {
		/* DATA_PIPE: the bytes go into the data pipe, the ring says how many */
		struct mw_data_pipe dp = { 0 };
		ssize_t n = write(z->pvm.pipe_fd, buf, len);

		dp.len = n > 0 ? (uint32_t)n : 1;
		if (v & 4)
			dp.len += fz_u8(in); /* a PVM announcing more than it put there */
		fz_send(z, MW_DATA_PIPE, sock, &dp, sizeof(dp));
		return;
	}
	fz_send(z, MW_DATA, sock, buf, len);
}

/* Any frame; a BIND or CONNECT still gets a loopback address. */
static void fz_raw(struct fz_in *in, struct fz *z)
{
	uint8_t pl[320];
	uint16_t type = fz_u8(in);
	uint64_t sock = fz_id(in, z);
	uint32_t len = fz_u16(in) % sizeof(pl);

	fz_bytes(in, pl, len);
	if ((type == MW_OP_BIND || type == MW_OP_CONNECT) && len >= sizeof(struct mw_op_addr)) {
		struct mw_addr a;

		fz_addr(in, z, &a);
		memcpy(pl + offsetof(struct mw_op_addr, addr), &a, sizeof(a));
	}
	if (type == MW_OP_ADDR_BLOCK && len >= sizeof(struct mw_op_addr_block)) {
		struct mw_addr a;

		fz_addr(in, z, &a);
		memcpy(pl + offsetof(struct mw_op_addr_block, addr), &a, sizeof(a));
	}
	fz_send(z, type, sock, pl, len);
}

/* A TCP client of one of the INS's listeners: connect, send input bytes, maybe close. */
static void fz_peer(struct fz_in *in, struct fz *z)
{
	struct sockaddr_in sin = { .sin_family = AF_INET,
				   .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	uint8_t buf[256];
	uint8_t v = fz_u8(in);
	size_t len = fz_u8(in);
	int fd;

	if (!z->nports)
		return;
	if ((v & 1) && z->npeers) {
		fd = z->peers[fz_u8(in) % z->npeers];
	} else {
		if (z->npeers == FZ_MAX_PEERS)
			return;
		fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
		if (fd < 0)
			return;
		sin.sin_port = htons(z->ports[fz_u8(in) % z->nports]);
		if (connect(fd, (struct sockaddr *)&sin, sizeof(sin)) && errno != EINPROGRESS) {
			close(fd);
			return;
		}
		z->peers[z->npeers++] = fd;
	}
	fz_bytes(in, buf, len);
	if (len && send(fd, buf, len, MSG_DONTWAIT | MSG_NOSIGNAL) < 0 && errno != EAGAIN)
		v |= 2;
	if (v & 2)
		shutdown(fd, v & 4 ? SHUT_RDWR : SHUT_WR);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct fz z;
	struct fz_in in = { data, size };

	fz_open(&z, fz_u8(&in) == 'P');
	for (int step = 0; step < FZ_MAX_STEPS && in.left && !z.ins.dead; step++) {
		switch (fz_u8(&in) % FZ_STEPS) {
		case FZ_SOCKET:
			fz_socket(&in, &z);
			break;
		case FZ_OP:
			fz_op(&in, &z);
			break;
		case FZ_DATA:
			fz_data(&in, &z);
			break;
		case FZ_RAW:
			fz_raw(&in, &z);
			break;
		default:
			fz_peer(&in, &z);
			break;
		}
		fz_pump(&z);
	}
	fz_close(&z);
	return 0;
}
