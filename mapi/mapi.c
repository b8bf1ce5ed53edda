/* SPDX-License-Identifier: MIT */
/* mapi.c - libmwmapi: one SOCK_SEQPACKET connection to mw-flowd per flow, results from its memfd */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "mapi/include/mwmapi.h"
#include "mapi/mapi_funcs.h"

/*
 * Theory of operation: the flow descriptor is the connection's socket fd, so
 * flows are per process, any number, and closing the fd (or exiting) closes
 * the flow in mw-flowd.  After CONNECT, the flow's result area is mapped
 * read-only; reads copy one function's slot under the area's sequence counter
 * into a per-flow buffer (so a result never changes while the caller reads it).
 */

#define FLOWS_MAX 1024
/*
 * A reader that finds the sequence counter odd (or moved) spins SEQ_SPINS
 * times, then sleeps SEQ_NAP_NS between tries: the writer may have been
 * preempted mid-slot (a loaded host), and only gives up after SEQ_WAIT_MS.
 */
#define SEQ_SPINS 1000
#define SEQ_NAP_NS 100000
#define SEQ_WAIT_MS 1000

struct mapi_flow {
	const uint8_t *area; /* NULL until connected */
	uint8_t copy[MW_MAPI_SLOT];
	uint64_t next_pkt; /* number of the next TO_BUFFER packet to read, 0 = from the newest */
	uint8_t pkt[MW_MAPI_SNAP];
};

static struct mapi_flow *flows[FLOWS_MAX];
static pthread_mutex_t flows_lock = PTHREAD_MUTEX_INITIALIZER;
static __thread char last_error[128];

/**
 * mapi_last_error() - mw-flowd's message for this thread's last failed call
 *
 * Return: a string, "" when there is none
 */
const char *mapi_last_error(void)
{
	return last_error;
}

static int mapi_fail(int err, const char *msg)
{
	snprintf(last_error, sizeof(last_error), "%s", msg);
	errno = err;
	return -1;
}

static struct mapi_flow *mapi_flow(int fd)
{
	struct mapi_flow *f = NULL;

	pthread_mutex_lock(&flows_lock);
	if (fd >= 0 && fd < FLOWS_MAX)
		f = flows[fd];
	pthread_mutex_unlock(&flows_lock);
	return f;
}

/* Send @req, receive one reply (and at most one fd, into *@fd when not NULL). */
static int mapi_call(int sock, struct mw_mapi_req *req, struct mw_mapi_reply *rep, int *fd)
{
	union {
		char buf[CMSG_SPACE(sizeof(int))];
		struct cmsghdr align;
	} cm;
	struct iovec iov = { rep, sizeof(*rep) };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };
	struct cmsghdr *c;
	bool reset_seen = false;
	ssize_t n;

	req->version = MW_MAPI_VERSION;
	/* A refused connection was closed after its answer: read it all the same. */
	if (send(sock, req, sizeof(*req), MSG_NOSIGNAL) != (ssize_t)sizeof(*req) &&
	    errno != EPIPE && errno != ECONNRESET)
		return mapi_fail(errno ? errno : EIO, "mw-flowd: send failed");
	mh.msg_control = cm.buf;
	mh.msg_controllen = sizeof(cm.buf);
	/*
	 * A refusal is sent and the connection closed at once; if our request was
	 * still unread then, the kernel reports ECONNRESET first, once: the
	 * refusal is still queued behind it.
	 */
	do {
		n = recvmsg(sock, &mh, MSG_CMSG_CLOEXEC);
		if (n < 0 && errno == ECONNRESET && !reset_seen) {
			reset_seen = true;
			errno = EINTR;
		}
	} while (n < 0 && errno == EINTR);
	if (n != (ssize_t)sizeof(*rep) || rep->version != MW_MAPI_VERSION)
		return mapi_fail(n < 0 ? errno : EPROTO, "mw-flowd: bad or no reply");
	for (c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c)) {
		if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS) {
			int got;

			memcpy(&got, CMSG_DATA(c), sizeof(got));
			if (fd && *fd < 0)
				*fd = got;
			else
				close(got);
		}
	}
	rep->msg[sizeof(rep->msg) - 1] = '\0';
	if (rep->status < 0)
		return mapi_fail(-rep->status, rep->msg);
	last_error[0] = '\0';
	return 0;
}

/**
 * mapi_create_flow() - a flow over the sensors named in @scope
 * @scope: interface names of mw-flowd's live sensors, separated by commas
 *
 * Return: the flow descriptor, or -1 with errno
 */
int mapi_create_flow(const char *scope)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	const char *path = getenv("MW_MAPI_SOCKET");
	struct mw_mapi_req req;
	struct mw_mapi_reply rep;
	struct mapi_flow *f;
	int sock;

	if (!path || !path[0])
		path = MW_MAPI_DEFAULT_SOCKET;
	if (!scope || strlen(scope) >= MW_MAPI_SARG_MAX || strlen(path) >= sizeof(sun.sun_path))
		return mapi_fail(EINVAL, "scope or socket path too long");
	memcpy(sun.sun_path, path, strlen(path) + 1);
	sock = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	if (sock < 0)
		return mapi_fail(errno, "socket");
	if (connect(sock, (struct sockaddr *)&sun, sizeof(sun))) {
		int err = errno;

		close(sock);
		return mapi_fail(err, "cannot reach mw-flowd");
	}
	if (sock >= FLOWS_MAX) {
		close(sock);
		return mapi_fail(EMFILE, "too many flows");
	}
	memset(&req, 0, sizeof(req));
	req.op = MW_MAPI_CREATE;
	memcpy(req.sarg, scope, strlen(scope) + 1);
	f = calloc(1, sizeof(*f));
	if (!f || mapi_call(sock, &req, &rep, NULL)) {
		int err = f ? errno : ENOMEM;

		free(f);
		close(sock);
		errno = err;
		return -1;
	}
	pthread_mutex_lock(&flows_lock);
	flows[sock] = f;
	pthread_mutex_unlock(&flows_lock);
	return sock;
}

/**
 * mapi_apply_function() - append a function to a flow not yet connected
 * @fd:    flow
 * @funct: its name ("PKT_COUNTER"), then its arguments (mwmapi.h)
 *
 * Return: the function id (fid, 1..16), or -1 with errno
 */
int mapi_apply_function(int fd, const char *funct, ...)
{
	const struct mw_mapi_func_desc *d = funct ? mw_mapi_func_by_name(funct) : NULL;
	struct mapi_flow *f = mapi_flow(fd);
	struct mw_mapi_req req;
	struct mw_mapi_reply rep;
	const char *a;
	int ni = 0;
	va_list ap;

	if (!f)
		return mapi_fail(EBADF, "no such flow");
	if (!d)
		return mapi_fail(EINVAL, "unknown function");
	memset(&req, 0, sizeof(req));
	req.op = MW_MAPI_APPLY;
	req.func = (uint32_t)d->id;
	va_start(ap, funct);
	for (a = d->args; *a; a++) {
		if (*a == 's') {
			const char *s = va_arg(ap, const char *);

			if (!s || strlen(s) >= sizeof(req.sarg)) {
				va_end(ap);
				return mapi_fail(EINVAL, "string argument missing or too long");
			}
			memcpy(req.sarg, s, strlen(s) + 1);
		} else {
			req.iarg[ni++] = *a == 'l' ? va_arg(ap, long) : va_arg(ap, int);
		}
	}
	va_end(ap);
	if (mapi_call(fd, &req, &rep, NULL))
		return -1;
	return rep.id;
}

/**
 * mapi_connect() - start the flow: its functions see packets from now on
 * @fd: flow
 *
 * Return: 0, or -1 with errno
 */
int mapi_connect(int fd)
{
	struct mapi_flow *f = mapi_flow(fd);
	struct mw_mapi_req req;
	struct mw_mapi_reply rep;
	int memfd = -1;
	void *area;

	if (!f)
		return mapi_fail(EBADF, "no such flow");
	if (f->area)
		return mapi_fail(EALREADY, "already connected");
	memset(&req, 0, sizeof(req));
	req.op = MW_MAPI_CONNECT;
	if (mapi_call(fd, &req, &rep, &memfd)) {
		if (memfd >= 0)
			close(memfd);
		return -1;
	}
	if (memfd < 0 || rep.size != MW_MAPI_AREA_SIZE) {
		if (memfd >= 0)
			close(memfd);
		return mapi_fail(EPROTO, "no result area");
	}
	area = mmap(NULL, rep.size, PROT_READ, MAP_SHARED, memfd, 0);
	close(memfd);
	if (area == MAP_FAILED)
		return mapi_fail(errno, "mmap result area");
	f->area = area;
	return 0;
}

static int64_t now_ms(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (int64_t)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

/* After the spins, sleep SEQ_NAP_NS; Return: 0 while SEQ_WAIT_MS have not passed. */
static int seq_nap(int tries, int64_t *deadline)
{
	struct timespec nap = { 0, SEQ_NAP_NS };

	if (tries < SEQ_SPINS)
		return 0;
	if (tries == SEQ_SPINS)
		*deadline = now_ms() + SEQ_WAIT_MS;
	else if (now_ms() > *deadline)
		return -1;
	nanosleep(&nap, NULL); /* a signal only shortens one nap */
	return 0;
}

/**
 * mapi_read_results() - a consistent copy of function @fid's latest result
 * @fd:     flow, connected
 * @fid:    from mapi_apply_function()
 * @result: filled; result->res stays valid until the next read on @fd
 *
 * A writer preempted mid-slot is waited for, at most about a second.
 *
 * Return: 0, or -1 with errno (EAGAIN: the writer kept the area busy that long)
 */
int mapi_read_results(int fd, int fid, struct mapi_result *result)
{
	struct mapi_flow *f = mapi_flow(fd);
	const struct mw_mapi_area *hdr;
	int64_t deadline = 0;
	int tries;

	if (!f || !f->area)
		return mapi_fail(f ? ENOTCONN : EBADF, "no such connected flow");
	hdr = (const struct mw_mapi_area *)f->area;
	if (fid < 1 || fid > MW_MAPI_FUNCS_MAX)
		return mapi_fail(EINVAL, "no such function");
	for (tries = 0; !seq_nap(tries, &deadline); tries++) {
		uint32_t s1, s2;

		s1 = __atomic_load_n(&hdr->seq, __ATOMIC_ACQUIRE);
		if (s1 & 1)
			continue;
		if ((uint32_t)fid > hdr->nfuncs)
			return mapi_fail(EINVAL, "no such function");
		memcpy(f->copy, f->area + sizeof(*hdr) + (size_t)(fid - 1) * MW_MAPI_SLOT,
		       MW_MAPI_SLOT);
		result->ts_us = hdr->ts_us;
		__atomic_thread_fence(__ATOMIC_ACQUIRE);
		s2 = __atomic_load_n(&hdr->seq, __ATOMIC_RELAXED);
		if (s1 == s2) {
			result->res = f->copy;
			result->size = MW_MAPI_SLOT;
			return 0;
		}
	}
	return mapi_fail(EAGAIN, "result area busy (the writer held it 1 s)");
}

/* Copy packet @r from the ring if it is still there; Return: 1 copied, 0 overrun. */
static int ring_copy(struct mapi_flow *f, const struct mw_mapi_pkt *p, uint64_t r,
		     struct mapi_pkthdr *hdr)
{
	uint64_t s1 = __atomic_load_n(&p->seq, __ATOMIC_ACQUIRE), s2;
	uint32_t n;

	if (s1 != r)
		return 0;
	n = p->caplen < MW_MAPI_SNAP ? p->caplen : MW_MAPI_SNAP;
	hdr->ts_us = p->ts_us;
	hdr->caplen = n;
	hdr->wirelen = p->wirelen;
	memcpy(f->pkt, p->data, n);
	__atomic_thread_fence(__ATOMIC_ACQUIRE);
	s2 = __atomic_load_n(&p->seq, __ATOMIC_RELAXED);
	return s2 == r;
}

/* Every signal but the synchronous ones (faults), which must never be blocked. */
static void async_signals(sigset_t *set)
{
	static const int sync[] = { SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGTRAP, SIGABRT, SIGSYS };
	size_t i;

	sigfillset(set);
	for (i = 0; i < sizeof(sync) / sizeof(sync[0]); i++)
		sigdelset(set, sync[i]);
}

/**
 * mapi_get_next_pkt() - the next frame TO_BUFFER wrote, waiting for one
 * @fd:  flow, connected, with TO_BUFFER applied
 * @fid: TO_BUFFER's function id
 * @hdr: filled: time, lengths, frames lost to this reader before it
 *
 * The first call starts at the first frame written since connect (or the
 * oldest still in the ring, the others counted as lost).  Waiting polls the ring every
 * millisecond; a signal (one with a handler) ends the wait: it is blocked while the
 * ring is checked and let in only by the sleep (ppoll's mask), so one that arrives
 * between the check and the sleep is not lost to a wait that would go on.
 *
 * Return: the frame (valid until the next call on @fd), or NULL with errno
 * (EINTR: a signal arrived)
 */
const unsigned char *mapi_get_next_pkt(int fd, int fid, struct mapi_pkthdr *hdr)
{
	struct mapi_flow *f = mapi_flow(fd);
	const struct mw_mapi_ring *ring;
	const struct mw_mapi_pkt *pkts;
	struct timespec ms = { 0, 1000000 };
	struct mapi_result r;
	sigset_t async, old;
	bool blocked = false;

	if (!f || !f->area) {
		mapi_fail(f ? ENOTCONN : EBADF, "no such connected flow");
		return NULL;
	}
	if (mapi_read_results(fd, fid, &r))
		return NULL;
	ring = (const struct mw_mapi_ring *)(f->area + MW_MAPI_RING_OFFSET);
	pkts = (const struct mw_mapi_pkt *)(ring + 1);
	hdr->lost = 0;
	for (;;) {
		uint64_t head = __atomic_load_n(&ring->head, __ATOMIC_ACQUIRE);

		if (!f->next_pkt)
			f->next_pkt = 1;
		if (f->next_pkt <= head) {
			if (head - f->next_pkt >= MW_MAPI_RING_SLOTS) {
				uint64_t oldest = head - MW_MAPI_RING_SLOTS + 2;

				hdr->lost += oldest - f->next_pkt;
				f->next_pkt = oldest;
			}
			if (ring_copy(f, &pkts[f->next_pkt % MW_MAPI_RING_SLOTS], f->next_pkt,
				      hdr)) {
				f->next_pkt++;
				if (blocked)
					pthread_sigmask(SIG_SETMASK, &old, NULL);
				return f->pkt;
			}
			continue; /* overrun while copying: catch up */
		}
		if (!blocked) { /* check the ring once more with signals held */
			async_signals(&async);
			pthread_sigmask(SIG_BLOCK, &async, &old);
			blocked = true;
			continue;
		}
		if (ppoll(NULL, 0, &ms, &old) < 0 && errno == EINTR) {
			pthread_sigmask(SIG_SETMASK, &old, NULL);
			mapi_fail(EINTR, "interrupted");
			return NULL;
		}
	}
}

/**
 * mapi_loop() - call @callback for the next @cnt frames (cnt <= 0: until an error)
 * @fd:       flow
 * @fid:      TO_BUFFER's function id
 * @cnt:      frames
 * @callback: called with each
 * @user:     its last argument
 *
 * Return: 0 after @cnt frames, or -1 with errno (EINTR: a signal arrived)
 */
int mapi_loop(int fd, int fid, int cnt, mapi_handler callback, void *user)
{
	int i;

	for (i = 0; cnt <= 0 || i < cnt; i++) {
		struct mapi_pkthdr hdr;
		const unsigned char *p = mapi_get_next_pkt(fd, fid, &hdr);

		if (!p)
			return -1;
		callback(&hdr, p, user);
	}
	return 0;
}

/*
 * Wait (at most CLOSE_WAIT_MS) until mw-flowd has seen the end of @fd's flow and
 * closed its side, so that the slot this flow held is free when
 * mapi_close_flow() returns: a flow created next is not refused for a slot
 * the daemon has not yet noticed is free.
 */
#define CLOSE_WAIT_MS 1000
static void mapi_await_release(int fd)
{
	struct pollfd pfd = { .fd = fd, .events = POLLIN };
	char drain[64];
	int spins = 0;

	if (shutdown(fd, SHUT_WR) < 0)
		return;
	while (poll(&pfd, 1, CLOSE_WAIT_MS) == 1 &&
	       recv(fd, drain, sizeof(drain), MSG_DONTWAIT) != 0)
		if (++spins > 64)
			return;
}

/**
 * mapi_close_flow() - end the flow, unmap its results
 * @fd: flow
 *
 * Return: 0, or -1 with errno
 */
int mapi_close_flow(int fd)
{
	struct mapi_flow *f;

	pthread_mutex_lock(&flows_lock);
	f = fd >= 0 && fd < FLOWS_MAX ? flows[fd] : NULL;
	if (f)
		flows[fd] = NULL;
	pthread_mutex_unlock(&flows_lock);
	if (!f)
		return mapi_fail(EBADF, "no such flow");
	if (f->area)
		munmap((void *)f->area, MW_MAPI_AREA_SIZE);
	free(f);
	mapi_await_release(fd);
	return close(fd);
}
