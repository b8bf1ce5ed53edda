/* SPDX-License-Identifier: MIT */
/* pvm_connect.c - an app socket's connect: its data connection, held unwritable until the TCP
 * outcome */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "common/log.h"
#include "common/norights.h"
#include "pvm/pvm.h"

/*
 * Theory of operation (docs/shim.md, "connect semantics")
 *
 * CONNECT carries the app's fd.  When the INS has started the TCP connect,
 * mw-pvm connects the app's AF_UNIX socket itself (through that fd) to a
 * private listener of its own and keeps the accepted end: the app's socket
 * is connected before connect() returns EINPROGRESS, to mw-pvm and nobody else.
 * The listener is bound in <runtime_dir>/pvm<index>-connect, a directory of
 * mw-pvm's alone (0700, opened once at start and used through its fd), for the
 * microseconds until accept: no one else can reach it or fill its backlog, so
 * that connect() never waits.
 *
 * Until the TCP outcome is known the app's socket must not poll writable.  An
 * AF_UNIX stream socket is writable while the bytes it has sent and that its
 * peer has not read (sk_wmem_alloc) stay within a quarter of its SO_SNDBUF.
 * So mw-pvm sends, from the app's socket, a filler of SO_SNDBUF/4 + 1 bytes to
 * its own end and leaves it unread: the app's socket polls neither readable
 * nor writable, as a TCP socket in SYN_SENT.  On EV_CONNECTED mw-pvm reads the
 * filler away (the app's socket turns writable, the kernel wakes the app) and
 * relays.  On EV_ERROR it closes its end over the unread filler: the kernel
 * sets ECONNRESET on the app's socket, which polls POLLERR|POLLHUP|POLLOUT as
 * a failed TCP connect does; getsockopt(SO_ERROR) then answers the TCP errno
 * from a small table of failed outcomes, once.  Everything else (mw-pvm's
 * end, the INS socket) is freed at the outcome, whatever the app does next.
 *
 * While held, mw-pvm's end sits in an epoll set of its own watched for
 * EPOLLHUP only (its filler keeps it readable): an app that closes its socket
 * before the outcome aborts the connect at once.  The same set watches a
 * connection whose app shut its write side (the relay reads no more, EOF
 * would keep a read watcher firing): when the app then closes or exits the
 * INS closes the connection, and a silent peer cannot keep it for ever.
 */

#define FILLER_MAX   (1u << 20)
#define FAILED_SLOTS 1024

static const uint8_t filler_bytes[64 * 1024];

/**
 * pvm_connect_app() - connect the app's socket to a fresh listener of ours
 * @p:   the daemon (pvm_connect_open() made its private directory)
 * @app: the app's socket (the fd it passed: its open file, its flags)
 * @end: our end, accepted, or -1
 *
 * The listener is bound in mw-pvm's private directory (0700) for the
 * microseconds until accept: nobody else can reach it, so its backlog has room
 * and the app's connect() completes at once, blocking file or not.  (An
 * abstract name, which any local user may connect to, let one who learned it
 * fill the backlog: a blocking app socket's connect() then slept with mw-pvm's
 * whole loop.  Turning O_NONBLOCK on for the call instead changes a file the app
 * shares, and F_SETFL can sleep on the socket's lock when the app races it.)
 * Return: 0 or -errno
 */
int pvm_connect_app(struct pvm *p, int app, int *end)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	struct ucred cred;
	char name[24];
	socklen_t clen;
	int lfd, fd = -1, ret = 0, i;

	*end = -1;
	if (p->connect_dirfd < 0)
		return -ENOTDIR;
	/* The pid too: another mw-pvm with this index (a misconfiguration) never takes it. */
	snprintf(name, sizeof(name), "%x-%x", (unsigned)getpid(), p->connect_seq++);
	/* Through the directory we opened at start, whatever its path names now. */
	snprintf(sun.sun_path, sizeof(sun.sun_path), "/proc/self/fd/%d/%s", p->connect_dirfd, name);
	lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (lfd < 0)
		return -errno;
	/* Our end (accepted from lfd, inheriting it) takes no fd from the app. */
	mw_refuse_rights_or_warn(lfd, "app connection");
	(void)unlinkat(p->connect_dirfd, name, 0); /* a name a killed run left */
	if (bind(lfd, (struct sockaddr *)&sun, sizeof(sun))) {
		ret = -errno;
		goto out;
	}
	if (listen(lfd, 1) || connect(app, (struct sockaddr *)&sun, sizeof(sun)))
		ret = -errno;
	(void)unlinkat(p->connect_dirfd, name, 0);
	if (ret)
		goto out;
	/* Ours is the connection whose peer is this process (only root could race in). */
	for (i = 0; i < 2; i++) {
		fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd < 0) {
			ret = -errno;
			goto out;
		}
		clen = sizeof(cred);
		if (!getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &clen) && cred.pid == getpid())
			break;
		close(fd);
		fd = -1;
	}
	if (fd < 0)
		ret = -EAGAIN;
out:
	close(lfd);
	*end = fd;
	return ret;
}

/* Make the app's socket unwritable: a filler from it, left unread at our end. */
static uint32_t hold_filler(int app)
{
	int sndbuf = 0;
	socklen_t len = sizeof(sndbuf);
	uint32_t want, done = 0;
	ssize_t n;

	if (getsockopt(app, SOL_SOCKET, SO_SNDBUF, &sndbuf, &len) || sndbuf <= 0)
		return 0;
	want = (uint32_t)sndbuf / 4 + 1;
	if (want > FILLER_MAX)
		return 0;
	while (done < want) {
		n = send(app, filler_bytes,
			 want - done < sizeof(filler_bytes) ? want - done : sizeof(filler_bytes),
			 MSG_DONTWAIT | MSG_NOSIGNAL);
		if (n <= 0)
			break;
		done += (uint32_t)n;
	}
	return done;
}

/**
 * pvm_connect_attach() - the INS started the connect: connect the app's socket to us
 * @s: the socket (CONNECTING, connect_fd the app's fd)
 *
 * Called with the CONNECT's successful RESULT, before the app hears it.
 * Return: 0 or -errno (then the app's connect() fails with it)
 */
int pvm_connect_attach(struct pvm_sock *s)
{
	struct pvm *p = s->pvm;
	struct epoll_event ev = { .events = 0, .data.u64 = s->id };
	int fd = -1, ret;

	ret = pvm_connect_app(p, s->connect_fd, &fd);
	if (ret)
		goto out;
	s->fd = fd;
	pvm_appsock_unwatch(s); /* from now on its end is watched through this connection */
	s->filler = hold_filler(s->connect_fd);
	if (!s->filler)
		mw_log_ratelimited(MW_LOG_WARN,
				   "socket %#llx: cannot hold the app's socket until the connect "
				   "outcome: it polls writable early",
				   (unsigned long long)s->id);
	if (epoll_ctl(p->hold_fd, EPOLL_CTL_ADD, fd, &ev))
		mw_log_ratelimited(MW_LOG_WARN, "socket %#llx: hold watch: %s",
				   (unsigned long long)s->id, strerror(errno));
	else
		s->held = true;
out:
	pvm_closer_put(p, s->connect_fd, s->connect_acct); /* a copy of a passed fd: its close may wait */
	s->connect_fd = -1;
	return ret;
}

/**
 * pvm_connect_release() - the outcome is known: stop holding the app's socket
 * @s:  the socket
 * @ok: connected (read the filler away) or failed (leave it: the app sees the error)
 */
void pvm_connect_release(struct pvm_sock *s, bool ok)
{
	static uint8_t sink[64 * 1024];
	ssize_t n;

	if (s->held) {
		epoll_ctl(s->pvm->hold_fd, EPOLL_CTL_DEL, s->fd, NULL);
		s->held = false;
	}
	while (ok && s->filler && s->fd >= 0) {
		n = recv(s->fd, sink, s->filler < sizeof(sink) ? s->filler : sizeof(sink),
			 MSG_DONTWAIT);
		if (n <= 0) {
			mw_log_ratelimited(MW_LOG_WARN, "socket %#llx: filler not read back: %s",
					   (unsigned long long)s->id,
					   n ? strerror(errno) : "end of file");
			break;
		}
		s->filler -= (uint32_t)n;
	}
	s->filler = 0;
}

/**
 * pvm_connect_watch_hup() - the app shut its write side: learn when it closes
 * @s: the connection (fd valid, its read watcher stopped for good)
 */
void pvm_connect_watch_hup(struct pvm_sock *s)
{
	struct epoll_event ev = { .events = 0, .data.u64 = s->id };

	if (s->hup_watch || s->fd < 0)
		return;
	if (epoll_ctl(s->pvm->hold_fd, EPOLL_CTL_ADD, s->fd, &ev))
		mw_log_ratelimited(MW_LOG_WARN, "socket %#llx: hang-up watch: %s",
				   (unsigned long long)s->id, strerror(errno));
	else
		s->hup_watch = true;
}

/**
 * pvm_connect_forget() - the socket is being freed: drop what the connect holds
 * @s: the socket
 */
void pvm_connect_forget(struct pvm_sock *s)
{
	if (s->connect_fd >= 0) {
		pvm_closer_put(s->pvm, s->connect_fd, s->connect_acct);
		s->connect_fd = -1;
	}
	if ((s->held || s->hup_watch) && s->fd >= 0)
		epoll_ctl(s->pvm->hold_fd, EPOLL_CTL_DEL, s->fd, NULL);
	s->held = s->hup_watch = false;
}

/**
 * pvm_connect_failed_put() - remember a failed outcome for the app's SO_ERROR
 * @s: the failed socket (about to be closed)
 *
 * A fixed ring: the oldest entry goes when it is full (its SO_ERROR reads 0).
 */
void pvm_connect_failed_put(struct pvm_sock *s)
{
	struct pvm *p = s->pvm;
	struct pvm_failed *f;

	if (!p->failed) {
		p->failed = calloc(FAILED_SLOTS, sizeof(*p->failed));
		if (!p->failed) {
			mw_log_ratelimited(MW_LOG_WARN, "socket %#llx: no memory for its SO_ERROR",
					   (unsigned long long)s->id);
			return;
		}
	}
	f = &p->failed[p->failed_next++ % FAILED_SLOTS];
	f->id = s->id;
	f->err = s->connect_err;
	f->dev = s->app_dev;
	f->ino = s->app_ino;
}

/**
 * pvm_connect_failed_take() - the failed outcome of socket @id, once
 * @p:   the daemon
 * @id:  the socket id
 * @dev: device of the fd the app passed
 * @ino: its inode (it must be the socket that failed)
 * Return: the positive errno, or 0 if none is remembered
 */
int pvm_connect_failed_take(struct pvm *p, uint64_t id, dev_t dev, ino_t ino)
{
	unsigned i;
	int err;

	for (i = 0; p->failed && i < FAILED_SLOTS; i++) {
		if (p->failed[i].id != id || !p->failed[i].err)
			continue;
		if (p->failed[i].dev != dev || p->failed[i].ino != ino)
			return 0;
		err = p->failed[i].err;
		memset(&p->failed[i], 0, sizeof(p->failed[i]));
		return err;
	}
	return 0;
}

/* A held app socket hung up before the outcome: the app closed it. */
static void hold_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	struct pvm *p = w->data;
	struct epoll_event evs[64];
	struct pvm_sock *s;
	int i, n;

	(void)loop;
	(void)revents;
	n = epoll_wait(p->hold_fd, evs, 64, 0);
	for (i = 0; i < n; i++) {
		s = pvm_sock_find(p, evs[i].data.u64);
		if (s && s->hup_watch) {
			/* Unread data for the app: it closed over it, the kernel would reset. */
			epoll_ctl(p->hold_fd, EPOLL_CTL_DEL, s->fd, NULL);
			s->hup_watch = false;
			pvm_sock_close(s, s->pend_len != 0); /* before the relay drops them */
			continue;
		}
		if (!s || !s->held)
			continue;
		pvm_connect_release(s, false);
		if (s->waiter)
			pvm_shim_answer(s->waiter, -ECONNABORTED, s->id, NULL, NULL, 0);
		s->waiter = NULL;
		pvm_sock_close(s, true);
	}
}

/**
 * pvm_connect_open() - the private directory of the connect listeners; the epoll set
 *                      of held sockets, watched by the loop
 * @p:           the daemon
 * @runtime_dir: common.runtime_dir, where <runtime_dir>/pvm<index>-connect is made
 * Return: 0, -EPERM (that directory is not mw-pvm's alone: a symlink, another
 *         owner's, not exactly 0700, or another file system) or -errno
 */
int pvm_connect_open(struct pvm *p, const char *runtime_dir)
{
	struct stat st, parent;
	int fd;

	p->connect_dirfd = -1;
	snprintf(p->connect_dir, sizeof(p->connect_dir), "%s/pvm%d-connect", runtime_dir,
		 p->cfg->index);
	if (mkdir(p->connect_dir, 0700) && errno != EEXIST)
		return -errno;
	/*
	 * Ours alone (owner, 0700), not a symlink, checked on the open directory: the
	 * listeners are bound through this fd (/proc/self/fd/N/...), so a path renamed
	 * or replaced later by whoever can write runtime_dir leads nowhere else.  The
	 * directory stays after exit (empty): another mw-pvm of this index may use it.
	 */
	fd = open(p->connect_dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return errno == ELOOP || errno == ENOTDIR ? -EPERM : -errno;
	/* ...and on runtime_dir's file system: nothing mounted over it (a FUSE file
	 * system answers any owner and mode, and can make a bind() sleep). */
	if (fstat(fd, &st) || st.st_uid != geteuid() || (st.st_mode & 07777) != 0700 ||
	    stat(runtime_dir, &parent) || parent.st_dev != st.st_dev) {
		close(fd);
		return -EPERM;
	}
	p->connect_dirfd = fd;
	p->hold_fd = epoll_create1(EPOLL_CLOEXEC);
	if (p->hold_fd < 0)
		return -errno;
	ev_io_init(&p->hold_io, hold_cb, p->hold_fd, EV_READ);
	p->hold_io.data = p;
	ev_io_start(p->loop, &p->hold_io);
	return 0;
}

/**
 * pvm_connect_close() - at exit
 * @p: the daemon
 */
void pvm_connect_close(struct pvm *p)
{
	if (p->connect_dirfd >= 0) {
		close(p->connect_dirfd);
		p->connect_dirfd = -1;
	}
	if (p->hold_fd >= 0) {
		ev_io_stop(p->loop, &p->hold_io);
		close(p->hold_fd);
		p->hold_fd = -1;
	}
	free(p->failed);
	p->failed = NULL;
}
