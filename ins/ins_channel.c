/* SPDX-License-Identifier: MIT */
/* ins_channel.c - mw-ins side of the PVM channel: connect, join, frame dispatch, heartbeat */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "common/log.h"
#include "ins/ins.h"

/*
 * Theory of operation
 *
 *   CONNECTING --socket exists, handshake ok--> UP --bad frame / PVM gone--> DEAD
 *
 * CONNECTING: a timer tries pvm_socket with backoff (50 ms doubling to 1 s)
 * for at most CONNECT_LIMIT_S, logging the wait once; the handshake itself is
 * blocking but bounded by socket timeouts.  UP: the channel's wait_fd (at
 * EV_MAXPRI, so control traffic beats bulk TCP work) says "frames or room",
 * its sock_fd says "mw-pvm is gone".  Frames are handled in batches of
 * RX_BUDGET; an ev_prepare flushes once per loop iteration (one kick per
 * batch) and announces sleep, and an ev_idle polls again if frames slipped in
 * or the budget ran out.  Control frames we send (RESULT, EV_*, CREDIT) never
 * block: when the ring is full they wait in order in an overflow queue that
 * is sent first when room appears, and reading TCP stops meanwhile.
 * DEAD: every violation is fatal for the disposable INS: log the reason, stop
 * the loop, exit non-zero.
 */

#define RX_BUDGET	  256
#define CONNECT_LIMIT_S	  30.0
#define HANDSHAKE_TIMEOUT 5
#define RETRY_S		  0.1

/**
 * ins_fatal() - end the INS: log why and leave the loop with exit status 1
 * @ins: the daemon
 * @fmt: reason
 */
void ins_fatal(struct ins *ins, const char *fmt, ...)
{
	char why[256];
	va_list ap;

	if (ins->dead)
		return;
	va_start(ap, fmt);
	vsnprintf(why, sizeof(why), fmt, ap);
	va_end(ap);
	mw_err("%s", why);
	ins->dead = true;
	ins->exit_status = 1;
	if (ins->up)
		mw_channel_kill(&ins->ch, why);
	ev_break(ins->loop, EVBREAK_ALL);
}

/**
 * ins_can_produce() - may sockets put DATA in the ring now?
 * @ins: the daemon
 * Return: false while the ring is full or control frames wait in the queue
 */
bool ins_can_produce(const struct ins *ins)
{
	return ins->up && !ins->dead && !ins->q && !ins->ring_full;
}

static int ctl_enqueue(struct ins *ins, uint16_t type, uint64_t sock, const void *payload,
		       uint32_t len)
{
	struct ins_ctlq *q = malloc(sizeof(*q) + len);

	if (!q)
		return -ENOMEM;
	q->next = NULL;
	q->type = type;
	q->sock = sock;
	q->len = len;
	if (len)
		memcpy(q->payload, payload, len);
	if (ins->q_tail)
		ins->q_tail->next = q;
	else
		ins->q = q;
	ins->q_tail = q;
	ins->qlen++;
	return 0;
}

/* Send what waited; true when the queue is empty. */
static bool ctl_flush_queue(struct ins *ins)
{
	struct ins_ctlq *q;
	int ret;

	while ((q = ins->q)) {
		ret = mw_channel_send(&ins->ch, q->type, q->sock, q->payload, q->len);
		if (ret == -EAGAIN) {
			if (mw_channel_want_space(&ins->ch, q->len))
				return false;
			continue;
		}
		ins->q = q->next;
		if (!ins->q)
			ins->q_tail = NULL;
		ins->qlen--;
		free(q);
	}
	return true;
}

static void ctl_queue_free(struct ins *ins)
{
	struct ins_ctlq *q;

	while ((q = ins->q)) {
		ins->q = q->next;
		free(q);
	}
	ins->q_tail = NULL;
	ins->qlen = 0;
}

/**
 * ins_ctl() - send a control frame to the PVM, in order, never blocking
 * @ins:     the daemon
 * @type:    MW_RESULT, MW_EV_*, MW_CREDIT
 * @sock:    socket id or 0
 * @payload: copied
 * @len:     its length
 * Return: 0; a dead channel or exhausted memory is fatal (the PVM would hang)
 */
int ins_ctl(struct ins *ins, uint16_t type, uint64_t sock, const void *payload, uint32_t len)
{
	int ret;

	if (ins->dead || !ins->up)
		return -EPIPE;
	if (!ins->q) {
		ret = mw_channel_send(&ins->ch, type, sock, payload, len);
		if (!ret)
			return 0;
		if (ret != -EAGAIN) {
			ins_fatal(ins, "cannot send %s: %s", mw_proto_type_name(type),
				  ins->ch.dead_reason[0] ? ins->ch.dead_reason : strerror(-ret));
			return ret;
		}
	}
	ret = ctl_enqueue(ins, type, sock, payload, len);
	if (ret) {
		ins_fatal(ins, "out of memory queueing %s", mw_proto_type_name(type));
		return ret;
	}
	mw_channel_want_space(&ins->ch, len);
	return 0;
}

/**
 * ins_result() - answer an op
 * @ins:    the daemon
 * @sock:   the op's socket id (0 for channel-wide ops)
 * @req:    the op's request id
 * @status: 0 or -errno
 * @val:    value bytes (GETOPT, GETNAME, STATS) or NULL
 * @len:    value length, <= MW_SOCKOPT_MAX
 */
void ins_result(struct ins *ins, uint64_t sock, uint32_t req, int status, const void *val,
		uint32_t len)
{
	uint8_t buf[sizeof(struct mw_result) + MW_SOCKOPT_MAX];
	struct mw_result r = { .req = req, .status = status, .len = len };

	if (len > MW_SOCKOPT_MAX)
		r.len = len = MW_SOCKOPT_MAX;
	if (status > 0 || status < -4095)
		r.status = -EIO;
	memcpy(buf, &r, sizeof(r));
	if (len)
		memcpy(buf + sizeof(r), val, len);
	ins_ctl(ins, MW_RESULT, sock, buf, (uint32_t)sizeof(r) + len);
}

static int rx_frame(struct ins *ins, const struct mw_frame *f, const void *payload, char *why,
		    size_t wl)
{
	uint8_t priv[256] __attribute__((aligned(8)));
	struct mw_data_pipe dp;
	struct mw_credit cr;
	struct ins_sock *s;

	if (f->type != MW_DATA) {
		if (f->len > sizeof(priv)) {
			snprintf(why, wl, "%s payload %u bytes is too long",
				 mw_proto_type_name(f->type), f->len);
			return -EBADMSG;
		}
		if (f->len)
			memcpy(priv, payload, f->len);
		payload = priv;
	}
	if (mw_proto_check(f, payload, MW_DIR_TO_INS, why, wl))
		return -EBADMSG;
	if (f->type == MW_DATA || f->type == MW_DATA_PIPE || f->type == MW_CREDIT) {
		s = ins_table_find(&ins->socks, f->sock);
		if (!s && f->type == MW_CREDIT)
			return 0; /* credit for a socket we already forgot is harmless */
		if (!s) {
			snprintf(why, wl, "%s for unknown socket %#llx",
				 mw_proto_type_name(f->type), (unsigned long long)f->sock);
			return -EBADMSG;
		}
		if (f->type == MW_DATA)
			return ins_io_data(s, payload, f->len, why, wl);
		if (f->type == MW_DATA_PIPE) {
			memcpy(&dp, payload, sizeof(dp));
			return ins_io_data_pipe(s, dp.len, why, wl);
		}
		memcpy(&cr, payload, sizeof(cr));
		return ins_io_credit(s, cr.bytes, why, wl);
	}
	ins_sock_op(ins, f, payload);
	return 0;
}

static void channel_poll(struct ins *ins)
{
	const void *payload;
	struct mw_frame f;
	char why[192];
	int budget, ret;

	for (budget = RX_BUDGET; budget > 0 && !ins->dead; budget--) {
		ret = mw_channel_recv(&ins->ch, &f, &payload);
		if (ret == 0)
			break;
		if (ret < 0) {
			ins_fatal(ins, "bad frame from mw-pvm: %s",
				  ins->ch.dead_reason[0] ? ins->ch.dead_reason : "corrupt ring");
			return;
		}
		why[0] = 0;
		ret = rx_frame(ins, &f, payload, why, sizeof(why));
		mw_channel_done(&ins->ch);
		if (ret) {
			ins_fatal(ins, "bad frame from mw-pvm: %s", why[0] ? why : "invalid");
			return;
		}
	}
	if (ins->dead)
		return;
	ins->more_rx = budget == 0;
	if (ctl_flush_queue(ins)) {
		ins->ring_full = false;
		ins_io_resume_parked(ins);
	}
}

static void wait_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	struct ins *ins = w->data;

	mw_channel_woken(&ins->ch);
	channel_poll(ins);
}

static void sock_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	struct ins *ins = w->data;
	ssize_t n;
	char c;

	n = recv(w->fd, &c, 1, MSG_PEEK | MSG_DONTWAIT);
	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	if (n > 0)
		ins_fatal(ins, "pvm channel lost: unexpected bytes on the handshake socket");
	else
		ins_fatal(ins, "pvm channel lost: %s",
			  n == 0 ? "mw-pvm closed the handshake socket" : strerror(errno));
}

static void prepare_cb(struct ev_loop *loop, ev_prepare *w, int revents)
{
	struct ins *ins = w->data;

	if (!ins->up || ins->dead)
		return;
	mw_channel_flush(&ins->ch);
	if (ins->more_rx || !mw_channel_sleep(&ins->ch))
		ev_idle_start(loop, &ins->idle);
}

static void idle_cb(struct ev_loop *loop, ev_idle *w, int revents)
{
	struct ins *ins = w->data;

	ev_idle_stop(loop, w);
	channel_poll(ins);
}

static void hb_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct ins *ins = w->data;
	char rates[256];

	ins->stats.seq++;
	ins->stats.used_sockets = ins->socks.count;
	ins_ctl(ins, MW_EV_HEARTBEAT, 0, &ins->stats, sizeof(ins->stats));
	/* systemd needs no more than one status line a second. */
	if (ev_now(loop) - ins->status_at >= 1.0) {
		ins->status_at = ev_now(loop);
		ins_shield_rates_status(ins, rates, sizeof(rates));
		mw_daemon_status(ins->d,
				 "ins %d: %zu sockets; shield: %llu held, %llu passed, "
				 "%llu deadline resets, %llu evicted, %llu gone; %s; "
				 "pending: %llu bytes, %llu resets at pending_total; "
				 "data pipe: %llu bytes spliced, %llu copied",
				 ins->cfg->id, ins->socks.count,
				 (unsigned long long)ins->accf.holding,
				 (unsigned long long)ins->accf.passed,
				 (unsigned long long)ins->accf.deadline,
				 (unsigned long long)ins->accf.evicted,
				 (unsigned long long)ins->accf.gone, rates,
				 (unsigned long long)ins->pend_total,
				 (unsigned long long)ins->pend_resets,
				 (unsigned long long)ins->pipe_spliced,
				 (unsigned long long)ins->pipe_copied);
	}
}

/* Parked sockets that no wake-up will resume (listeners out of fds, lost kicks). */
static void retry_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct ins *ins = w->data;

	if (!ins->up || ins->dead)
		return;
	if (ins->q && ctl_flush_queue(ins))
		ins->ring_full = false;
	if (ins->ring_full && !mw_channel_want_space(&ins->ch, 4096u))
		ins->ring_full = false;
	ins_io_resume_parked(ins);
	if (!ins->parked)
		ev_timer_stop(loop, w);
}

/**
 * ins_channel_hello() - the hello this INS sends mw-pvm
 * @ins:  the daemon
 * @mine: filled
 */
void ins_channel_hello(const struct ins *ins, struct mw_hello *mine)
{
	memset(mine, 0, sizeof(*mine));
	mine->magic = MW_PROTO_MAGIC;
	mine->version_min = MW_PROTO_VERSION_MIN;
	mine->version_max = MW_PROTO_VERSION_MAX;
	mine->ins_id = (uint16_t)ins->cfg->id;
	mine->window = (uint32_t)ins->cfg->socket_window;
	mine->heartbeat_ms = (uint32_t)ins->cfg->heartbeat_ms;
	mine->pid = getpid();
}

/**
 * ins_channel_up() - the handshake is done (local or Xen): check the answer, start the watchers
 * @ins:    the daemon; ins->ch is joined
 * @where:  mw-pvm's address, for the log
 * @err:    one line on failure (the channel is closed then)
 * @errlen: its size
 * Return: 0 or -EPROTO
 */
int ins_channel_up(struct ins *ins, const char *where, char *err, size_t errlen)
{
	if (ins->ch.peer.window < 1) {
		snprintf(err, errlen, "mw-pvm granted window 0");
		mw_channel_close(&ins->ch);
		return -EPROTO;
	}
	ins->pvm_index = ins->ch.peer.pvm_index;
	ins->window = (uint32_t)ins->cfg->socket_window;
	ins->peer_window = ins->ch.peer.window;
	ins->up = true;

	ev_io_init(&ins->wait_io, wait_cb, ins->ch.wait_fd, EV_READ);
	ins->wait_io.data = ins;
	ev_set_priority(&ins->wait_io, EV_MAXPRI);
	ev_io_start(ins->loop, &ins->wait_io);
	/* Xen has no handshake socket: mw-pvm's death is not seen from here (docs/xen.md). */
	ev_io_init(&ins->sock_io, sock_cb, ins->ch.sock_fd, EV_READ);
	ins->sock_io.data = ins;
	ev_set_priority(&ins->sock_io, EV_MAXPRI);
	if (ins->ch.sock_fd >= 0)
		ev_io_start(ins->loop, &ins->sock_io);
	ev_timer_init(&ins->hb_timer, hb_cb, 0., ins->cfg->heartbeat_ms / 1000.0);
	ins->hb_timer.data = ins;
	ev_timer_start(ins->loop, &ins->hb_timer);

	mw_notice("joined mw-pvm %s over the %s channel (pid %d, PVM index %u, ring %u, window "
		  "%u/%u, protocol v%u)",
		  where, ins->ch.ops->name, ins->ch.peer.pid, ins->pvm_index,
		  ins->ch.peer.ring_size, ins->window, ins->peer_window, ins->ch.version);
	mw_daemon_ready(ins->d, "ins %d: %zu sockets", ins->cfg->id, ins->socks.count);
	channel_poll(ins);
	return 0;
}

static int channel_join(struct ins *ins, int fd, char *err, size_t errlen)
{
	struct timeval tv = { .tv_sec = HANDSHAKE_TIMEOUT };
	struct mw_hello mine;
	int ret;

	ins_channel_hello(ins, &mine);
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	ret = mw_channel_local_join(&ins->ch, fd, &mine, err, errlen);
	if (ret)
		return ret;
	fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
	return ins_channel_up(ins, ins->cfg->pvm_socket, err, errlen);
}

static void connect_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct ins *ins = w->data;
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	char err[192] = "";
	int fd, ret;

	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		ins_fatal(ins, "socket: %s", strerror(errno));
		return;
	}
	snprintf(sun.sun_path, sizeof(sun.sun_path), "%s", ins->cfg->pvm_socket);
	if (connect(fd, (struct sockaddr *)&sun, sizeof(sun)) < 0) {
		ret = errno;
		close(fd);
		if ((ret != ENOENT && ret != ECONNREFUSED && ret != EAGAIN) ||
		    ev_now(loop) - ins->connect_start > CONNECT_LIMIT_S) {
			ins_fatal(ins, "cannot reach mw-pvm at %s: %s", ins->cfg->pvm_socket,
				  strerror(ret));
			return;
		}
		if (!ins->connect_logged)
			mw_notice("waiting for mw-pvm at %s (%s)", ins->cfg->pvm_socket,
				  strerror(ret));
		ins->connect_logged = true;
		ins->connect_delay = ins->connect_delay * 2 > 1.0 ? 1.0 : ins->connect_delay * 2;
		ev_timer_set(w, ins->connect_delay, 0.);
		ev_timer_start(loop, w);
		return;
	}
	ret = channel_join(ins, fd, err, sizeof(err));
	if (ret) {
		close(fd);
		ins_fatal(ins, "handshake with mw-pvm at %s failed: %s", ins->cfg->pvm_socket,
			  err[0] ? err : strerror(-ret));
	}
}

/**
 * ins_channel_start() - arm the connect timer and the loop watchers
 * @ins: the daemon (cfg, loop set; xen_ks open with ins.channel = "xen")
 *
 * On Xen the handshake runs here, blocking but bounded (ins_xen.c), because
 * it opens devices the sandbox later forbids.
 * Return: 0 or -errno (Xen handshake failed; logged)
 */
int ins_channel_start(struct ins *ins)
{
	ins->connect_start = ev_now(ins->loop);
	ins->connect_delay = 0.05;
	ev_timer_init(&ins->connect_timer, connect_cb, 0., 0.);
	ins->connect_timer.data = ins;
	ev_prepare_init(&ins->prepare, prepare_cb);
	ins->prepare.data = ins;
	ev_prepare_start(ins->loop, &ins->prepare);
	ev_idle_init(&ins->idle, idle_cb);
	ins->idle.data = ins;
	ev_init(&ins->retry_timer, retry_cb);
	ins->retry_timer.repeat = RETRY_S;
	ins->retry_timer.data = ins;
	if (ins->xen_ks)
		return ins_xen_join(ins); /* before the sandbox: it opens devices */
	ev_timer_start(ins->loop, &ins->connect_timer);
	return 0;
}

/**
 * ins_channel_stop() - stop the watchers, drop every socket, close the channel
 * @ins: the daemon
 */
void ins_channel_stop(struct ins *ins)
{
	ev_timer_stop(ins->loop, &ins->connect_timer);
	ev_timer_stop(ins->loop, &ins->retry_timer);
	ev_prepare_stop(ins->loop, &ins->prepare);
	ev_idle_stop(ins->loop, &ins->idle);
	ins_sock_close_all(ins);
	ctl_queue_free(ins);
	if (ins->up) {
		ev_io_stop(ins->loop, &ins->wait_io);
		ev_io_stop(ins->loop, &ins->sock_io);
		ev_timer_stop(ins->loop, &ins->hb_timer);
		/*
		 * Unmapping granted pages and unbinding the port are calls the
		 * sandbox does not allow: on Xen the exit releases them.
		 */
		if (ins->ch.sock_fd >= 0 || !ins->xen_joined)
			mw_channel_close(&ins->ch);
		ins->up = false;
	}
}
