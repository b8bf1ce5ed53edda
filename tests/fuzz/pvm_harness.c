/* SPDX-License-Identifier: MIT */
/* pvm_harness.c - the real mw-pvm in process, with a fake INS on its channel and a fake shim */
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "common/channel_backend.h"
#include "common/fdpass.h"
#include "common/log.h"
#include "common/sockid.h"
#include "common/sockname.h"
#include "tests/fuzz/pvm_harness.h"

/*
 * Everything runs in this thread except the fake INS's half of the handshake
 * (mw_channel_local_join() blocks until mw-pvm answers), which runs in a
 * short-lived thread while this one turns mw-pvm's loop.  The loop is turned
 * with EVRUN_NOWAIT only: an input never waits for time to pass.
 */

#define PH_WINDOW     4096u /* small credit windows: overruns are reachable */
#define PH_TAG	      0x6d77667a7a746167ULL
#define PH_PUMP	      4 /* loop iterations per pump */
#define PH_JOIN_SPINS 100000
#define PH_RX_MAX     4096 /* frames collected per pump, at most */

static struct mw_config ph_cfg;
static char ph_dir[64];

static void ph_cleanup(void)
{
	char path[128];

	snprintf(path, sizeof(path), "%s/pvm.sock", ph_dir);
	unlink(path);
	snprintf(path, sizeof(path), "%s/pvm.sock.data", ph_dir);
	unlink(path);
	snprintf(path, sizeof(path), "%s/pvm-ins.sock", ph_dir);
	unlink(path);
	snprintf(path, sizeof(path), "%s/pvm0-connect", ph_dir);
	rmdir(path);
	rmdir(ph_dir);
}

/* Once per process: a private directory for the sockets, the configuration. */
static int ph_global(void)
{
	static int done;

	if (done)
		return 0;
	mw_log_init("mw-pvm", getenv("MW_FUZZ_LOG") ? MW_LOG_DEBUG : MW_LOG_ERR);
	signal(SIGPIPE, SIG_IGN);
	snprintf(ph_dir, sizeof(ph_dir), "/tmp/mw-fuzz-pvm-XXXXXX");
	if (!mkdtemp(ph_dir))
		return -errno;
	atexit(ph_cleanup);
	mw_config_defaults(&ph_cfg);
	snprintf(ph_cfg.pvm.control_socket, sizeof(ph_cfg.pvm.control_socket), "%s/pvm.sock",
		 ph_dir);
	snprintf(ph_cfg.pvm.ins_socket, sizeof(ph_cfg.pvm.ins_socket), "%s/pvm-ins.sock", ph_dir);
	ph_cfg.pvm.ring_size = (int)MW_CHANNEL_MIN_RING;
	ph_cfg.pvm.socket_window = (int)PH_WINDOW;
	ph_cfg.pvm.heartbeat_timeout_ms = 600000; /* inputs take no time: never judged silent */
	done = 1;
	return 0;
}

static int ph_find(const struct ph *h, uint64_t sock)
{
	for (unsigned i = 0; i < h->nsocks; i++)
		if (h->socks[i] == sock)
			return (int)i;
	return -1;
}

static void ph_add_sock(struct ph *h, uint64_t sock)
{
	if (!mw_sockid_valid(sock) || ph_find(h, sock) >= 0 || h->nsocks >= PH_MAX_SOCKS)
		return;
	h->app_fd[h->nsocks] = -1;
	h->socks[h->nsocks++] = sock;
}

/* What mw-pvm sent the fake INS: ops to answer, ids to name.  A dead channel ends it. */
static void ph_collect_ins(struct ph *h)
{
	const void *pl;
	struct mw_frame f;
	char c;
	int i, ret;

	if (!h->ins_up)
		return;
	if (recv(h->ins.sock_fd, &c, 1, MSG_PEEK | MSG_DONTWAIT) == 0) {
		ph_ins_leave(h); /* mw-pvm cut the channel */
		return;
	}
	for (i = 0; i < PH_RX_MAX; i++) {
		ret = mw_channel_recv(&h->ins, &f, &pl);
		if (ret <= 0)
			break;
		if (f.type < MW_RESULT && f.len >= sizeof(uint32_t)) {
			if (h->nreqs == PH_MAX_REQS) {
				memmove(h->reqs, h->reqs + 1,
					sizeof(h->reqs[0]) * (PH_MAX_REQS - 1));
				h->nreqs--;
			}
			memcpy(&h->reqs[h->nreqs].req, pl, sizeof(uint32_t));
			h->reqs[h->nreqs].type = f.type;
			h->reqs[h->nreqs].sock = f.sock;
			h->nreqs++;
			ph_add_sock(h, f.sock);
		}
		mw_channel_done(&h->ins);
	}
}

/* A SOCKET answer's fd is the app's end, as the shim keeps it; anything else is closed. */
static void ph_keep_app_fd(struct ph *h, uint64_t sock, int fd)
{
	int i;

	ph_add_sock(h, sock);
	i = ph_find(h, sock);
	if (i >= 0 && h->app_fd[i] < 0)
		h->app_fd[i] = fd;
	else
		close(fd);
}

/* The shim's answers: the tag from REGISTER, new ids (and their app ends) from SOCKET. */
static void ph_collect_shim(struct ph *h)
{
	struct mw_shimctl_resp resp;
	union {
		struct cmsghdr h;
		char buf[CMSG_SPACE(sizeof(int))];
	} ctl;
	struct iovec iov = { .iov_base = &resp, .iov_len = sizeof(resp) };
	struct msghdr msg;
	struct cmsghdr *cm;
	ssize_t n;
	int fd;

	for (int i = 0; i < 64 && h->shim >= 0; i++) {
		memset(&msg, 0, sizeof(msg));
		msg.msg_iov = &iov;
		msg.msg_iovlen = 1;
		msg.msg_control = ctl.buf;
		msg.msg_controllen = sizeof(ctl.buf);
		n = recvmsg(h->shim, &msg, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
		if (n < 0)
			break;
		if (n == 0) {
			close(h->shim);
			h->shim = -1;
			break;
		}
		fd = -1;
		cm = CMSG_FIRSTHDR(&msg);
		if (cm && cm->cmsg_level == SOL_SOCKET && cm->cmsg_type == SCM_RIGHTS &&
		    cm->cmsg_len == CMSG_LEN(sizeof(int)))
			memcpy(&fd, CMSG_DATA(cm), sizeof(int));
		if (n != sizeof(resp)) {
			if (fd >= 0)
				close(fd);
			continue;
		}
		if (!h->answers++ && !resp.status)
			h->tag = resp.sock;
		else if (!resp.status && fd >= 0)
			ph_keep_app_fd(h, resp.sock, fd);
		else if (!resp.status)
			ph_add_sock(h, resp.sock);
		else if (fd >= 0)
			close(fd);
	}
}

/**
 * ph_pump() - run mw-pvm's loop a few times and collect what it sent
 * @h: the harness
 */
void ph_pump(struct ph *h)
{
	for (int i = 0; i < PH_PUMP; i++) {
		ev_run(h->p.loop, EVRUN_NOWAIT);
		ph_collect_ins(h);
		ph_collect_shim(h);
	}
}

struct ph_join {
	struct mw_channel *ch;
	struct mw_hello hello;
	int fd, ret;
	atomic_int done;
	char err[160];
};

static void *ph_join_thread(void *arg)
{
	struct ph_join *j = arg;

	j->ret = mw_channel_local_join(j->ch, j->fd, &j->hello, j->err, sizeof(j->err));
	atomic_store(&j->done, 1);
	return NULL;
}

/**
 * ph_ins_join() - a fake INS joins mw-pvm through the real local handshake
 * @h:  the harness (no INS joined)
 * @id: its INS id
 * Return: 0 or -errno (mw-pvm refused it)
 */
int ph_ins_join(struct ph *h, uint16_t id)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	struct timeval tv = { .tv_sec = 5 };
	struct ph_join j = {
		.ch = &h->ins,
		.hello = { .magic = MW_PROTO_MAGIC,
			   .version_min = MW_PROTO_VERSION_MIN,
			   .version_max = MW_PROTO_VERSION_MAX,
			   .ins_id = id,
			   .window = PH_WINDOW,
			   .heartbeat_ms = 1000,
			   .pid = getpid() },
	};
	pthread_t t;
	int i;

	if (h->ins_up)
		return -EISCONN;
	mw_channel_reset(&h->ins);
	j.fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (j.fd < 0)
		return -errno;
	setsockopt(j.fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(j.fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	snprintf(sun.sun_path, sizeof(sun.sun_path), "%s", h->p.ins_path);
	if (connect(j.fd, (struct sockaddr *)&sun, sizeof(sun)) ||
	    pthread_create(&t, NULL, ph_join_thread, &j)) {
		close(j.fd);
		return -EIO;
	}
	for (i = 0; i < PH_JOIN_SPINS && !atomic_load(&j.done); i++) {
		ev_run(h->p.loop, EVRUN_NOWAIT);
		sched_yield(); /* let the joining thread run on a busy machine */
	}
	pthread_join(t, NULL);
	if (j.ret) {
		close(j.fd);
		return j.ret;
	}
	h->ins_up = true;
	h->ins_id = id;
	h->next_accept = 1;
	ph_pump(h);
	return 0;
}

/**
 * ph_ins_leave() - the fake INS goes away (its channel closes); its ops are forgotten
 * @h: the harness
 */
void ph_ins_leave(struct ph *h)
{
	if (!h->ins_up)
		return;
	mw_channel_close(&h->ins);
	h->ins_up = false;
	h->nreqs = 0;
}

/**
 * ph_ins_send() - the fake INS puts one frame in the ring and kicks mw-pvm
 * @h:    the harness
 * @type: any frame type, valid or not
 * @sock: socket id
 * @pl:   payload
 * @len:  its length
 * Return: 0 or -errno (no INS, ring full)
 */
int ph_ins_send(struct ph *h, uint16_t type, uint64_t sock, const void *pl, uint32_t len)
{
	int ret;

	if (!h->ins_up)
		return -EPIPE;
	ret = mw_channel_send(&h->ins, type, sock, pl, len);
	mw_channel_flush(&h->ins);
	return ret;
}

/**
 * ph_shim_send() - send one control request, with @fd attached if >= 0
 * @h:   the harness
 * @req: request bytes (normally a struct mw_shimctl_req)
 * @len: their length
 * @fd:  passed with SCM_RIGHTS, or -1
 * Return: 0 or -errno
 */
int ph_shim_send(struct ph *h, const void *req, size_t len, int fd)
{
	if (h->shim < 0)
		return -ENOTCONN;
	return mw_fdpass_send(h->shim, req, len, fd, MSG_DONTWAIT | MSG_NOSIGNAL) < 0 ? -errno : 0;
}

/**
 * ph_app_fd() - the app's AF_UNIX end of @sock: the one mw-pvm passed, else a forgery
 *
 * mw-pvm makes and names the app's socket (with a nonce) and passes it in the
 * SOCKET answer; for any other id the harness binds the name without the nonce,
 * which mw-pvm must refuse.
 * @h:    the harness
 * @sock: a socket id the harness has seen
 * Return: the fd (owned by the harness), or -1
 */
int ph_app_fd(struct ph *h, uint64_t sock)
{
	struct mw_sockname n = { .kind = MW_SOCKNAME_SOCKET, .tag = h->tag, .id = sock };
	struct sockaddr_un sun;
	socklen_t len;
	int i = ph_find(h, sock), fd;

	if (i < 0)
		return -1;
	if (h->app_fd[i] >= 0)
		return h->app_fd[i];
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -1;
	len = mw_sockname_encode(&n, &sun);
	if (bind(fd, (struct sockaddr *)&sun, len)) {
		close(fd);
		return -1;
	}
	h->app_fd[i] = fd;
	return fd;
}

/**
 * ph_open() - a fresh mw-pvm with INS 1 joined and a registered shim connection
 * @h: the harness, overwritten
 * Return: 0 or -errno
 */
int ph_open(struct ph *h)
{
	struct mw_shimctl_req reg = { .op = MW_SHIMCTL_REGISTER, .arg = MW_SHIMCTL_VERSION };
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	struct pvm *p = &h->p;
	char err[256];
	int ret;

	ret = ph_global();
	if (ret)
		return ret;
	memset(h, 0, sizeof(*h));
	h->shim = -1;
	h->d.name = "mw-pvm";
	h->d.cfg = ph_cfg;
	h->d.loop = ev_loop_new(EVFLAG_AUTO);
	if (!h->d.loop)
		return -ENOMEM;
	p->d = &h->d;
	p->loop = h->d.loop;
	p->cfg = &h->d.cfg.pvm;
	p->ctl_fd = p->ins_fd = p->hold_fd = p->connect_dirfd = -1;
	p->tag = PH_TAG;
	ret = pvm_table_init(&p->socks, 64);
	if (!ret)
		ret = pvm_ins_open(p, err, sizeof(err));
	if (!ret)
		ret = pvm_shim_open(p, err, sizeof(err));
	if (!ret)
		ret = pvm_connect_open(p, ph_dir);
	if (!ret)
		ret = ph_ins_join(h, 1);
	if (ret) {
		fprintf(stderr, "pvm harness: %s\n", strerror(-ret));
		abort(); /* the harness itself is broken: no input can be judged */
	}
	h->shim = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	snprintf(sun.sun_path, sizeof(sun.sun_path), "%s", p->ctl_path);
	if (h->shim < 0 || connect(h->shim, (struct sockaddr *)&sun, sizeof(sun)))
		abort();
	ph_pump(h);
	if (ph_shim_send(h, &reg, sizeof(reg), -1))
		abort();
	ph_pump(h);
	return 0;
}

/**
 * ph_close() - shut mw-pvm down as its main() does and free everything
 * @h: the harness
 */
void ph_close(struct ph *h)
{
	struct pvm *p = &h->p;

	if (h->shim >= 0)
		close(h->shim);
	for (unsigned i = 0; i < h->nsocks; i++)
		if (h->app_fd[i] >= 0)
			close(h->app_fd[i]);
	ph_ins_leave(h);
	pvm_shim_close(p);
	pvm_ins_close_all(p);
	pvm_sock_free_all(p);
	pvm_table_fini(&p->socks);
	pvm_connect_close(p);
	ev_loop_destroy(p->loop);
}
