/* SPDX-License-Identifier: MIT */
/* mapi_server.c - mw-flowd's MAPI socket: admission by SO_PEERCRED, one flow per connection */
#include <errno.h>
#include <fnmatch.h>
#include <grp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "common/fdpass.h"
#include "common/log.h"
#include "common/norights.h"
#include "flowd/mapi_flow.h"

/*
 * Theory of operation: the socket is mode 0666 so that SO_PEERCRED, not the
 * file mode, decides: root, or a member of flowd.mapi_group (primary or
 * supplementary group, SO_PEERGROUPS), may create flows over any live sensor;
 * a member of a group of flowd.mapi_sensor_groups only over the sensors whose
 * names match that group's patterns (checked at CREATE, -EACCES naming the
 * sensor); everyone else is refused at accept with a reason, and counted.  Each
 * connection is one flow: CREATE (scope), APPLY*, CONNECT (the result memfd
 * comes back), then only the result area; closing the connection frees it.
 * Requests are fixed-size and version-checked; anything else closes the flow.
 */

#define ACCEPT_BACKLOG 16

/**
 * fl_mapi_take() - a free flow slot and the client entry of process @pid
 * @m:    server
 * @pid:  the peer process (SO_PEERCRED)
 * @uid:  its user
 * @flow: the slot, zeroed, its client set
 * @why:  the reason when refused
 *
 * Nothing is allocated: both tables were at open.  A refusal is counted.  Beyond
 * the process's flowd.mapi_client_flows, a user other than root may hold as many
 * flows over all its processes (forking buys nothing; all the uids of one
 * owner's subordinate ranges, flowd.subuid_file, are one user), may not take the last
 * entry of either table (when it has more than one): root's mw-top always gets in,
 * and may hold a quarter of the client table (2 entries at least): processes with
 * a flow each cannot fill it for the other users.
 * Return: 0, -ENOSPC (flow table full, or the process or user holds
 * flowd.mapi_client_flows) or -EUSERS (client table full)
 */
int fl_mapi_take(struct fl_mapi *m, pid_t pid, uid_t uid, struct fl_mapi_flow **flow,
		 const char **why)
{
	int i, c = -1, slot = -1, user_flows = 0, user_clients = 0;
	uid_t acct = mw_subuid_account(&m->subuids, uid);
	bool user = uid != 0;
	int flows_max = m->max_flows - (user && m->max_flows > 1);
	int clients_max = m->max_clients - (user && m->max_clients > 1);
	int user_clients_max = m->max_clients / 4 > 2 ? m->max_clients / 4 : 2;

	for (i = 0; i < m->max_clients; i++) {
		if (m->clients[i].pid && m->clients[i].acct == acct) {
			user_flows += m->clients[i].flows;
			user_clients++;
		}
		/* Not an entry of another user's under a pid reused since: a process that
		 * passed its flow socket on and exited leaves its entry to those flows. */
		if (m->clients[i].pid == pid && m->clients[i].acct == acct)
			c = i;
		else if (c == -1 && !m->clients[i].pid)
			c = -2 - i; /* first free entry, if @pid has none */
	}
	if (c >= 0 && m->clients[c].flows >= m->client_flows) {
		m->client_flow_drops++;
		*why = "too many flows for this process (flowd.mapi_client_flows)";
		return -ENOSPC;
	}
	if (user && user_flows >= m->client_flows) {
		m->client_flow_drops++;
		*why = "too many flows for this user (flowd.mapi_client_flows)";
		return -ENOSPC;
	}
	if (m->nflows < flows_max)
		for (slot = 0; m->flows[slot]; slot++)
			;
	if (slot < 0) {
		m->flow_drops++;
		*why = m->nflows < m->max_flows ? "flow table full: its last entry is root's "
						  "(flowd.mapi_max_flows)"
						: "flow table full (flowd.mapi_max_flows)";
		return -ENOSPC;
	}
	if (c == -1 || (c < -1 && m->nclients >= clients_max)) {
		m->client_drops++;
		*why = c < -1 ? "client table full: its last entry is root's (flowd.mapi_max_clients)"
			      : "client table full (flowd.mapi_max_clients)";
		return -EUSERS;
	}
	if (c < -1 && user && user_clients >= user_clients_max) {
		m->client_drops++;
		*why = "too many processes of this user (a quarter of flowd.mapi_max_clients)";
		return -EUSERS;
	}
	if (c < 0) {
		c = -2 - c;
		m->clients[c].pid = pid;
		m->clients[c].acct = acct;
		m->clients[c].flows = 0;
		m->nclients++;
	}
	m->clients[c].flows++;
	*flow = &m->pool[slot];
	memset(*flow, 0, sizeof(**flow));
	(*flow)->client = c;
	(*flow)->srv = m;
	m->flows[slot] = *flow;
	m->nflows++;
	return 0;
}

/* The connected flows changed: what mapi_dispatch() scans, and for which sensors. */
static void mapi_rescope(struct fl_mapi *m)
{
	int i;

	m->nscan = 0;
	m->scope_any = m->nf_scope_any = 0;
	for (i = 0; i < m->max_flows; i++) {
		const struct fl_mapi_flow *f = m->flows[i];

		if (!f || !f->area)
			continue;
		m->nscan = i + 1;
		m->scope_any |= f->scope;
		m->nf_scope_any |= f->nf_scope;
	}
}

/**
 * fl_mapi_sensor_gone() - live sensor @sensor was closed: no flow sees its slot again
 * @m:      server
 * @sensor: its index (scope bit)
 *
 * The slot goes to the next interface that appears, which is another interface
 * (and may be one a restricted flow's user was refused): the flows over it lose
 * the bit, so they see nothing more of the closed one and nothing of the next.
 */
void fl_mapi_sensor_gone(struct fl_mapi *m, int sensor)
{
	uint32_t bit;
	int i, n = 0;

	if (sensor < 0 || sensor >= m->nsensors)
		return;
	bit = 1u << sensor;
	for (i = 0; i < m->max_flows; i++) {
		struct fl_mapi_flow *f = m->flows[i];

		if (f && (f->scope & bit)) {
			f->scope &= ~bit;
			n++;
		}
	}
	if (n)
		mw_notice("mapi: sensor %d closed: %d flow(s) no longer see it", sensor, n);
	mapi_rescope(m);
}

/**
 * fl_mapi_put() - give @f's slot back, and its client entry when it was the last flow
 * @m: server
 * @f: a flow from fl_mapi_take(), its resources released
 */
void fl_mapi_put(struct fl_mapi *m, struct fl_mapi_flow *f)
{
	int i, c = f->client;

	for (i = 0; i < m->max_flows; i++) {
		if (m->flows[i] == f) {
			m->flows[i] = NULL;
			m->nflows--;
			break;
		}
	}
	if (c >= 0 && c < m->max_clients && m->clients[c].pid && !--m->clients[c].flows) {
		m->clients[c].pid = 0;
		m->nclients--;
	}
	fl_mapi_flow_release(f);
	mapi_rescope(m);
}

static void mapi_drop(struct fl_mapi *m, struct fl_mapi_flow *f)
{
	ev_io_stop(m->loop, &f->io);
	close(f->fd);
	fl_mapi_put(m, f);
}

/* May @f's client use the sensor @name?  (flowd.mapi_sensor_groups) */
static bool mapi_allowed(const struct fl_mapi *m, const struct fl_mapi_flow *f, const char *name)
{
	int i;

	if (!f->restricted)
		return true;
	for (i = 0; i < m->nacl; i++) {
		char copy[sizeof(m->acl[i].patterns)], *save = NULL, *pat;

		if (!(f->acl & (1u << i)))
			continue;
		snprintf(copy, sizeof(copy), "%s", m->acl[i].patterns);
		for (pat = strtok_r(copy, ", ", &save); pat; pat = strtok_r(NULL, ", ", &save))
			if (!fnmatch(pat, name, 0))
				return true;
	}
	return false;
}

/*
 * The sensors of a "a,b" scope as bits: @bits the live ones, @nf_bits the Netflow ones;
 * Return: 0, -ENODEV or -EACCES (err names it).
 */
static int mapi_scope(const struct fl_mapi *m, const struct fl_mapi_flow *f, const char *scope,
		      uint32_t *bits, uint32_t *nf_bits, char *err, size_t errlen)
{
	char copy[MW_MAPI_SARG_MAX], *save = NULL, *name;

	snprintf(copy, sizeof(copy), "%s", scope);
	*bits = 0;
	*nf_bits = 0;
	for (name = strtok_r(copy, ", ", &save); name; name = strtok_r(NULL, ", ", &save)) {
		int i, j;

		for (i = 0; i < m->nsensors && strcmp(m->sensors[i], name); i++)
			;
		for (j = 0; i == m->nsensors && j < m->n_nf && strcmp(m->nf_names[j], name); j++)
			;
		if (i == m->nsensors && j == m->n_nf) {
			snprintf(err, errlen, "no live sensor \"%.64s\"", name);
			return -ENODEV;
		}
		if (!mapi_allowed(m, f, name)) {
			snprintf(err, errlen,
				 "sensor \"%.64s\" is not allowed to uid %u "
				 "(flowd.mapi_sensor_groups)",
				 name, (unsigned)f->uid);
			return -EACCES;
		}
		if (i < m->nsensors)
			*bits |= 1u << i;
		else
			*nf_bits |= 1u << j;
	}
	if (!*bits && !*nf_bits) {
		snprintf(err, errlen, "empty scope");
		return -ENODEV;
	}
	return 0;
}

/**
 * fl_mapi_handle() - one request of @f's client
 * @m:     server
 * @f:     the flow of the connection it came on
 * @req:   the request, size and version checked, sarg NUL-terminated
 * @rep:   the reply: id, size and msg filled here
 * @memfd: CONNECT: the result area's memfd to pass (the caller closes it)
 *
 * Return: 0 or -errno (the reply's status)
 */
int fl_mapi_handle(struct fl_mapi *m, struct fl_mapi_flow *f, const struct mw_mapi_req *req,
		   struct mw_mapi_reply *rep, int *memfd)
{
	int ret;

	if (req->op != MW_MAPI_CREATE && !f->created) {
		snprintf(rep->msg, sizeof(rep->msg), "create the flow first");
		return -ENOTCONN;
	}
	switch (req->op) {
	case MW_MAPI_CREATE:
		if (f->created) {
			snprintf(rep->msg, sizeof(rep->msg), "one flow per connection");
			return -EALREADY;
		}
		ret = mapi_scope(m, f, req->sarg, &f->scope, &f->nf_scope, rep->msg,
				 sizeof(rep->msg));
		if (ret) {
			if (ret == -EACCES)
				mw_log_ratelimited(MW_LOG_NOTICE, "mapi: %s", rep->msg);
			return ret;
		}
		f->created = true;
		return 0;
	case MW_MAPI_APPLY:
		rep->id = fl_mapi_flow_apply(f, req, rep->msg, sizeof(rep->msg));
		return rep->id < 0 ? rep->id : 0;
	case MW_MAPI_CONNECT:
		rep->size = MW_MAPI_AREA_SIZE;
		ret = fl_mapi_flow_connect(f, memfd, rep->msg, sizeof(rep->msg));
		mapi_rescope(m);
		return ret;
	default:
		snprintf(rep->msg, sizeof(rep->msg), "unknown operation %u", req->op);
		return -EINVAL;
	}
}

static void mapi_client_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	struct fl_mapi_flow *f = w->data;
	struct fl_mapi *m = f->srv;
	struct mw_mapi_req req;
	struct mw_mapi_reply rep;
	int memfd = -1;
	ssize_t n;

	(void)loop;
	(void)revents;
	n = recv(f->fd, &req, sizeof(req), MSG_DONTWAIT | MSG_TRUNC);
	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	if (n != (ssize_t)sizeof(req) || req.version != MW_MAPI_VERSION) {
		if (n > 0)
			mw_log_ratelimited(MW_LOG_INFO,
					   "mapi: uid %u sent a bad request (%zd bytes), flow closed",
					   (unsigned)f->uid, n);
		mapi_drop(m, f);
		return;
	}
	req.sarg[sizeof(req.sarg) - 1] = '\0';
	memset(&rep, 0, sizeof(rep));
	rep.version = MW_MAPI_VERSION;
	rep.status = fl_mapi_handle(m, f, &req, &rep, &memfd);
	if (mw_fdpass_send(f->fd, &rep, sizeof(rep), memfd, MSG_NOSIGNAL | MSG_DONTWAIT) !=
	    (ssize_t)sizeof(rep)) {
		if (memfd >= 0)
			close(memfd);
		mapi_drop(m, f);
		return;
	}
	if (memfd >= 0)
		close(memfd);
}

/*
 * Return: NULL when @fd's peer may create flows, else the reason; *@acl: the
 * mapi_sensor_groups entries it is in, *@restricted: only those admit it.
 */
static const char *mapi_admit(const struct fl_mapi *m, int fd, struct ucred *cred, uint32_t *acl,
			      bool *restricted)
{
	gid_t groups[256];
	socklen_t len = sizeof(*cred);
	size_t i, n = 1;
	int j;

	*acl = 0;
	*restricted = false;
	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, cred, &len))
		return "no peer credentials";
	if (cred->uid == 0)
		return NULL;
	if (m->group_gid < 0 && !m->nacl)
		return "not root, and flowd.mapi_group is not set";
	groups[0] = cred->gid;
	len = sizeof(groups) - sizeof(groups[0]);
	if (!getsockopt(fd, SOL_SOCKET, SO_PEERGROUPS, groups + 1, &len))
		n += len / sizeof(groups[0]);
	for (i = 0; i < n; i++) {
		if (m->group_gid >= 0 && groups[i] == (gid_t)m->group_gid)
			return NULL;
		for (j = 0; j < m->nacl; j++)
			if (groups[i] == (gid_t)m->acl[j].gid)
				*acl |= 1u << j;
	}
	if (*acl) {
		*restricted = true;
		return NULL;
	}
	return "not root nor in flowd.mapi_group";
}

/**
 * fl_mapi_set_acl() - per-sensor permissions from flowd.mapi_sensor_groups
 * @m:       server
 * @entries: "group:pattern[,pattern...]" each
 * @n:       their number (at most FL_MAPI_ACL_MAX)
 * @err:     names the bad entry
 * @errlen:  its size
 *
 * Return: 0, -EINVAL (no ':' or no pattern) or -ENOENT (no such group)
 */
int fl_mapi_set_acl(struct fl_mapi *m, const char (*entries)[256], int n, char *err, size_t errlen)
{
	int i;

	m->nacl = 0;
	for (i = 0; i < n && i < FL_MAPI_ACL_MAX; i++) {
		const char *colon = strchr(entries[i], ':');
		char name[256];
		struct group *g;

		if (!colon || colon == entries[i] || !colon[1] ||
		    strspn(colon + 1, ", ") == strlen(colon + 1)) {
			snprintf(err, errlen,
				 "flowd.mapi_sensor_groups: \"%s\" is not "
				 "\"group:pattern[,pattern...]\"",
				 entries[i]);
			return -EINVAL;
		}
		snprintf(name, sizeof(name), "%.*s", (int)(colon - entries[i]), entries[i]);
		g = getgrnam(name);
		if (!g) {
			snprintf(err, errlen, "flowd.mapi_sensor_groups: no group \"%s\"", name);
			return -ENOENT;
		}
		m->acl[i].gid = (long)g->gr_gid;
		snprintf(m->acl[i].patterns, sizeof(m->acl[i].patterns), "%s", colon + 1);
		m->nacl++;
	}
	return 0;
}

static void mapi_accept_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	struct fl_mapi *m = w->data;
	struct ucred cred = { 0 };
	struct fl_mapi_flow *f = NULL;
	const char *why;
	bool restricted;
	uint32_t acl;
	int fd, status = -EACCES;

	(void)revents;
	fd = accept4(m->listen_fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
	if (fd < 0)
		return;
	why = mapi_admit(m, fd, &cred, &acl, &restricted);
	if (why) {
		m->refused++;
	} else {
		mw_subuids_refresh(&m->subuids, ev_now(loop)); /* a range added since */
		status = fl_mapi_take(m, cred.pid, cred.uid, &f, &why);
	}
	if (why) {
		struct mw_mapi_reply rep = { .version = MW_MAPI_VERSION, .status = status };

		/* The client reads why as the answer to its first request. */
		snprintf(rep.msg, sizeof(rep.msg), "mw-flowd: %s", why);
		if (send(fd, &rep, sizeof(rep), MSG_NOSIGNAL | MSG_DONTWAIT) < 0)
			mw_debug("mapi: refusal not sent: %s", strerror(errno));
		mw_log_ratelimited(MW_LOG_NOTICE, "mapi: uid %u pid %d refused: %s",
				   (unsigned)cred.uid, (int)cred.pid, why);
		close(fd);
		return;
	}
	f->fd = fd;
	f->uid = cred.uid;
	f->acl = acl;
	f->restricted = restricted;
	ev_io_init(&f->io, mapi_client_cb, fd, EV_READ);
	f->io.data = f;
	ev_io_start(loop, &f->io);
}

/**
 * fl_mapi_open() - listen on the MAPI control socket
 * @m:         filled
 * @loop:      event loop
 * @path:      socket path (replaced if it exists)
 * @group:     group whose members may create flows, "" = root only
 * @lim:       the flow and client tables' capacities, allocated here
 * @sensors:   live sensor names, index = scope bit (at most 32)
 * @nsensors:  their number
 * @err:       one line on failure
 * @errlen:    its size
 *
 * Return: 0 or -errno
 */
int fl_mapi_open(struct fl_mapi *m, struct ev_loop *loop, const char *path, const char *group,
		 const struct fl_mapi_limits *lim, const char (*sensors)[16], int nsensors,
		 char *err, size_t errlen)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	int ret;

	memset(m, 0, sizeof(*m));
	m->listen_fd = -1;
	m->loop = loop;
	m->sensors = sensors;
	m->nsensors = nsensors;
	m->max_flows = lim->flows;
	m->max_clients = lim->clients;
	m->client_flows = lim->client_flows;
	m->group_gid = -1;
	if (group[0]) {
		struct group *g = getgrnam(group);

		if (!g) {
			snprintf(err, errlen, "flowd.mapi_group: no group \"%s\"", group);
			return -ENOENT;
		}
		m->group_gid = (long)g->gr_gid;
	}
	m->flows = calloc((size_t)lim->flows, sizeof(struct fl_mapi_flow *));
	m->pool = calloc((size_t)lim->flows, sizeof(struct fl_mapi_flow));
	m->clients = calloc((size_t)lim->clients, sizeof(struct fl_mapi_client));
	if (!m->flows || !m->pool || !m->clients) {
		snprintf(err, errlen, "mapi: out of memory for %d flows", lim->flows);
		fl_mapi_close(m);
		return -ENOMEM;
	}
	snprintf(sun.sun_path, sizeof(sun.sun_path), "%s", path);
	m->listen_fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (m->listen_fd < 0)
		goto fail;
	unlink(path);
	mw_refuse_rights_or_warn(m->listen_fd, "mapi socket"); /* clients pass none */
	if (bind(m->listen_fd, (struct sockaddr *)&sun, sizeof(sun)) || chmod(path, 0666) ||
	    listen(m->listen_fd, ACCEPT_BACKLOG))
		goto fail;
	ev_io_init(&m->io, mapi_accept_cb, m->listen_fd, EV_READ);
	m->io.data = m;
	ev_io_start(loop, &m->io);
	return 0;
fail:
	ret = -errno;
	snprintf(err, errlen, "mapi socket %s: %s", path, strerror(errno));
	fl_mapi_close(m);
	return ret;
}

static void mapi_dispatch(struct fl_mapi *m, bool nf, uint32_t bit, uint64_t ts_us,
			  const uint8_t *frame, size_t caplen, uint32_t wirelen)
{
	struct fl_pkt p;
	bool decoded = false, tried = false;
	int i;

	if (!((nf ? m->nf_scope_any : m->scope_any) & bit))
		return;
	for (i = 0; i < m->nscan; i++) {
		struct fl_mapi_flow *f = m->flows[i];

		if (!f || !f->area || !((nf ? f->nf_scope : f->scope) & bit))
			continue;
		if (!tried) {
			decoded = fl_decode_ether(&p, frame, caplen) == FL_DECODE_OK;
			tried = true;
		}
		fl_mapi_flow_packet(f, ts_us, frame, caplen, wirelen, &p, decoded);
	}
}

/**
 * fl_mapi_packet() - run every connected flow whose scope has @sensor
 * @m:       server
 * @sensor:  live sensor index
 * @ts_us:   capture time
 * @frame:   the frame
 * @caplen:  bytes captured
 * @wirelen: bytes on the wire
 */
void fl_mapi_packet(struct fl_mapi *m, int sensor, uint64_t ts_us, const uint8_t *frame,
		    size_t caplen, uint32_t wirelen)
{
	mapi_dispatch(m, false, 1u << sensor, ts_us, frame, caplen, wirelen);
}

/**
 * fl_mapi_record() - run every connected flow whose scope has Netflow sensor @index
 * @ctx:     the server (struct fl_mapi), as fl_socks_tap
 * @index:   Netflow sensor index
 * @ts_us:   observation time
 * @frame:   the record as a header-only frame (sockframe.c)
 * @caplen:  its length
 * @wirelen: the app's bytes of the record
 */
void fl_mapi_record(void *ctx, int index, uint64_t ts_us, const uint8_t *frame, size_t caplen,
		    uint32_t wirelen)
{
	mapi_dispatch(ctx, true, 1u << index, ts_us, frame, caplen, wirelen);
}

/**
 * fl_mapi_sync() - publish every connected flow's results (once a second)
 * @m: server
 */
void fl_mapi_sync(struct fl_mapi *m)
{
	int i;

	for (i = 0; i < m->max_flows; i++)
		if (m->flows[i] && m->flows[i]->area)
			fl_mapi_flow_sync(m->flows[i]);
}

/**
 * fl_mapi_close() - close every flow and the socket
 * @m: server, opened or failed
 */
void fl_mapi_close(struct fl_mapi *m)
{
	int i;

	for (i = 0; m->flows && i < m->max_flows; i++)
		if (m->flows[i])
			mapi_drop(m, m->flows[i]);
	/* The areas' pages go before we do, whatever clients keep (mapi_flow.c). */
	if (!fl_mapi_punch_wait(2000))
		mw_warn("mapi: area punches still under way at exit");
	if (m->listen_fd >= 0) {
		ev_io_stop(m->loop, &m->io);
		close(m->listen_fd);
	}
	free(m->flows);
	free(m->pool);
	free(m->clients);
	mw_subuids_free(&m->subuids);
	m->flows = NULL;
	m->pool = NULL;
	m->clients = NULL;
	m->listen_fd = -1;
}

/**
 * fl_mapi_report() - the "mapi" JSON line: the tables' use and refusals since start
 * @m:   server
 * @out: the report stream
 * @ts:  wall-clock second
 */
void fl_mapi_report(const struct fl_mapi *m, FILE *out, uint64_t ts)
{
	fprintf(out,
		"{\"type\":\"mapi\",\"ts\":%llu,\"flows\":{\"used\":%d,\"max\":%d,\"drops\":%llu},"
		"\"clients\":{\"used\":%d,\"max\":%d,\"drops\":%llu},"
		"\"client_flows\":{\"max\":%d,\"drops\":%llu},\"refused\":%llu}\n",
		(unsigned long long)ts, m->nflows, m->max_flows,
		(unsigned long long)m->flow_drops, m->nclients, m->max_clients,
		(unsigned long long)m->client_drops, m->client_flows,
		(unsigned long long)m->client_flow_drops, (unsigned long long)m->refused);
	fflush(out);
}
