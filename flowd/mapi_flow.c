/* SPDX-License-Identifier: MIT */
/* mapi_flow.c - the MAPI functions run in mw-flowd (filters, counters, top, threshold, dist,
 * anonymize) */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "flowd/fl_assert.h"
#include "flowd/ftab.h"
#include "flowd/mapi_flow.h"
#include "flowd/sensor.h"
#include "mapi/include/mwmapi.h"

/*
 * Theory of operation: a packet of a sensor in the flow's scope runs the
 * functions in the order they were applied; BPF_FILTER stops it for the
 * functions after it when it does not match.  Each function then writes its
 * result into its slot of the shared area inside one sequence-counter
 * section (mapi_proto.h), so a reader never sees half a result.
 */

#define TOP_ROWS_MAX	32
#define TOP_COUNTERS	256
#define TOP_WRITE_US	100000
#define ANOMALY_SOURCES 1024 /* sources per FANOUT / PORTSCAN window */

/* FANOUT / PORTSCAN: one source of the window. */
struct anomaly_src {
	uint8_t addr[16];
	uint64_t attempts;
	uint64_t rejected;
	bool flagged;
	struct fl_hll hll;
};

_Static_assert(sizeof(struct mapi_top) <= MW_MAPI_SLOT, "TOP result fits a slot");
_Static_assert(sizeof(struct mapi_anomaly) <= MW_MAPI_SLOT, "anomaly result fits a slot");

static bool field_valid(int64_t field)
{
	return field >= MAPI_SRC_IP && field <= MAPI_DST_PORT;
}

/*
 * How many of function @id a flow may have: the costly ones are bounded, so that a
 * user watching one sensor cannot make every frame cost the loop, which all sensors
 * share, thousands of hashes (ANONYMIZE of an IPv6 frame is 256 SipHash; a second
 * one anonymizes nothing more) or filter runs.  0: as many as MW_MAPI_FUNCS_MAX.
 */
static int fn_max(enum mw_mapi_func id)
{
	switch (id) {
	case MW_MAPI_TO_BUFFER:
	case MW_MAPI_ANONYMIZE:
	case MW_MAPI_FANOUT:
	case MW_MAPI_PORTSCAN:
		return 1;
	case MW_MAPI_BPF_FILTER:
	case MW_MAPI_STR_SEARCH:
		return 4;
	default:
		return 0;
	}
}

/*
 * A user's flows together may have as many of a costly function as this many flows
 * (root's are not counted): the per-flow bound alone let one user open
 * mapi_client_flows flows over one busy sensor, each with its costly functions.
 */
#define FN_ACCOUNT_FLOWS 2

/* How many of function @id the other flows of @f's account (not root) have. */
static int fn_account_count(const struct fl_mapi_flow *f, enum mw_mapi_func id)
{
	const struct fl_mapi *m = f->srv;
	uid_t acct;
	int i, j, n = 0;

	if (!m || f->uid == 0)
		return 0;
	acct = m->clients[f->client].acct;
	for (i = 0; i < m->max_flows; i++) {
		const struct fl_mapi_flow *g = m->flows[i];

		if (!g || g == f || g->uid == 0 || m->clients[g->client].acct != acct)
			continue;
		for (j = 0; j < g->nfns; j++)
			n += g->fns[j].id == id;
	}
	return n;
}

static const char *fn_name(enum mw_mapi_func id)
{
	switch (id) {
	case MW_MAPI_TO_BUFFER:
		return "TO_BUFFER";
	case MW_MAPI_ANONYMIZE:
		return "ANONYMIZE";
	case MW_MAPI_FANOUT:
		return "FANOUT";
	case MW_MAPI_PORTSCAN:
		return "PORTSCAN";
	case MW_MAPI_STR_SEARCH:
		return "STR_SEARCH";
	default:
		return "BPF_FILTER";
	}
}

/**
 * fl_mapi_flow_apply() - check and append one function (before CONNECT)
 * @f:      flow
 * @req:    the APPLY request
 * @err:    why not
 * @errlen: its size
 *
 * Return: the function id (1..), or -errno
 */
int fl_mapi_flow_apply(struct fl_mapi_flow *f, const struct mw_mapi_req *req, char *err,
		       size_t errlen)
{
	struct fl_mapi_fn *fn;
	int ret = 0;

	if (f->area) {
		snprintf(err, errlen, "functions are applied before connect");
		return -EALREADY;
	}
	if (f->nfns == MW_MAPI_FUNCS_MAX) {
		snprintf(err, errlen, "at most %d functions per flow", MW_MAPI_FUNCS_MAX);
		return -ENOSPC;
	}
	fn = &f->fns[f->nfns];
	memset(fn, 0, sizeof(*fn));
	fn->id = (enum mw_mapi_func)req->func;
	if (fn_max(fn->id)) {
		int j, n = 0;

		for (j = 0; j < f->nfns; j++)
			n += f->fns[j].id == fn->id;
		if (n >= fn_max(fn->id)) {
			if (fn_max(fn->id) == 1)
				snprintf(err, errlen, "%s: one per flow", fn_name(fn->id));
			else
				snprintf(err, errlen, "%s: at most %d per flow", fn_name(fn->id),
					 fn_max(fn->id));
			return -EINVAL;
		}
		if (n + fn_account_count(f, fn->id) >= fn_max(fn->id) * FN_ACCOUNT_FLOWS) {
			snprintf(err, errlen, "%s: at most %d over all flows of a user",
				 fn_name(fn->id), fn_max(fn->id) * FN_ACCOUNT_FLOWS);
			return -EUSERS;
		}
	}
	switch (fn->id) {
	case MW_MAPI_BPF_FILTER:
		ret = fl_bpf_compile(req->sarg, &fn->bpf, err, errlen);
		break;
	case MW_MAPI_PKT_COUNTER:
	case MW_MAPI_BYTE_COUNTER:
		break;
	case MW_MAPI_TOP:
		fn->field = (int)req->iarg[0];
		fn->n = (int)req->iarg[1];
		if (!field_valid(req->iarg[0]) || req->iarg[1] < 1 || req->iarg[1] > TOP_ROWS_MAX) {
			snprintf(err, errlen, "TOP: field 1..4, n 1..%d", TOP_ROWS_MAX);
			return -EINVAL;
		}
		ret = fl_topn_init(&fn->top, TOP_COUNTERS, 16);
		break;
	case MW_MAPI_THRESHOLD: {
		int64_t ref = req->iarg[0] - 1;

		if (ref < 0 || ref >= f->nfns ||
		    (f->fns[ref].id != MW_MAPI_PKT_COUNTER &&
		     f->fns[ref].id != MW_MAPI_BYTE_COUNTER) ||
		    req->iarg[1] < 0) {
			snprintf(err, errlen,
				 "THRESHOLD: fid of a counter applied before, bound >= 0");
			return -EINVAL;
		}
		fn->ref = (int)ref;
		fn->bound = (uint64_t)req->iarg[1];
		break;
	}
	case MW_MAPI_DIST:
		fn->field = (int)req->iarg[0];
		if (!field_valid(req->iarg[0])) {
			snprintf(err, errlen, "DIST: field 1..4");
			return -EINVAL;
		}
		break;
	case MW_MAPI_STR_SEARCH:
		fn->needle_len = strlen(req->sarg);
		if (!fn->needle_len || req->iarg[0] < 0 || req->iarg[0] > UINT16_MAX ||
		    req->iarg[1] < 0 || req->iarg[1] > UINT16_MAX) {
			snprintf(err, errlen, "STR_SEARCH: a string, offset and depth 0..65535");
			return -EINVAL;
		}
		memcpy(fn->needle, req->sarg, fn->needle_len);
		fn->offset = (uint32_t)req->iarg[0];
		fn->depth = (uint32_t)req->iarg[1];
		break;
	case MW_MAPI_TO_BUFFER:
		break;
	case MW_MAPI_ANONYMIZE:
		if (!req->sarg[0] || req->iarg[0] < 0 || req->iarg[0] > 1) {
			snprintf(err, errlen, "ANONYMIZE: a key, strip 0 or 1");
			return -EINVAL;
		}
		if (!f->copy)
			f->copy = malloc(FL_MAPI_COPY_MAX);
		if (!f->copy) {
			snprintf(err, errlen, "ANONYMIZE: out of memory");
			return -ENOMEM;
		}
		fl_anon_init(&fn->anon, req->sarg, strnlen(req->sarg, MW_MAPI_SARG_MAX));
		fn->strip = (int)req->iarg[0];
		break;
	case MW_MAPI_FANOUT:
	case MW_MAPI_PORTSCAN:
		if (req->iarg[0] < 1 || req->iarg[0] > 1000000 || req->iarg[1] < 1 ||
		    req->iarg[1] > 86400) {
			snprintf(err, errlen, "%s: threshold 1..1000000, window 1..86400 s",
				 fn->id == MW_MAPI_FANOUT ? "FANOUT" : "PORTSCAN");
			return -EINVAL;
		}
		fn->bound = (uint64_t)req->iarg[0];
		fn->window_us = (uint64_t)req->iarg[1] * 1000000;
		fn->anomaly = calloc(1, sizeof(*fn->anomaly));
		ret = fn->anomaly ? fl_ftab_init(&fn->sources, ANOMALY_SOURCES,
						 sizeof(struct anomaly_src), 16)
				  : -ENOMEM;
		if (ret) {
			free(fn->anomaly);
			fn->anomaly = NULL;
			snprintf(err, errlen, "out of memory");
		}
		break;
	case MW_MAPI_SAMPLE:
		if ((req->iarg[1] != MAPI_SAMPLE_PERIODIC &&
		     req->iarg[1] != MAPI_SAMPLE_PROBABILISTIC) ||
		    req->iarg[0] < 1 ||
		    (req->iarg[1] == MAPI_SAMPLE_PROBABILISTIC && req->iarg[0] > 100)) {
			snprintf(err, errlen, "SAMPLE: value >= 1 (percent 1..100), mode 0 or 1");
			return -EINVAL;
		}
		fn->value = req->iarg[0];
		fn->mode = (int)req->iarg[1];
		fn->rng = 0x9e3779b9u;
		break;
	default:
		snprintf(err, errlen, "unknown function %u", req->func);
		return -EINVAL;
	}
	if (ret)
		return ret;
	return ++f->nfns;
}

/**
 * fl_mapi_flow_connect() - create the result area; the flow sees packets from now on
 * @f:      flow
 * @memfd:  a read-only descriptor of the area for the client (caller closes it after sending)
 * @err:    why not
 * @errlen: its size
 *
 * The memfd is sealed against resizing, so a client cannot make our mapping fault.
 * The client gets a read-only open file of it (a reopen through /proc/self/fd) and
 * the inode is 0600, so a client of another user cannot reopen it for writing: it
 * can map it only to read, and cannot write, punch holes, or allocate.  The
 * read-write memfd stays ours, so that fl_mapi_flow_release() can free the pages
 * even while a client keeps its descriptor or mapping (what it faults in after
 * that is charged to it, not to mw-flowd).
 *
 * Return: 0 or -errno
 */
int fl_mapi_flow_connect(struct fl_mapi_flow *f, int *memfd, char *err, size_t errlen)
{
	struct mw_mapi_area *hdr;
	char path[64];
	void *area;
	int fd, ro = -1, ret;

	if (f->area) {
		snprintf(err, errlen, "already connected");
		return -EALREADY;
	}
	fd = memfd_create("mw-mapi", MFD_CLOEXEC | MFD_ALLOW_SEALING);
	if (fd < 0)
		goto fail;
	if (fchmod(fd, 0600) || ftruncate(fd, MW_MAPI_AREA_SIZE) ||
	    fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL))
		goto fail;
	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	ro = open(path, O_RDONLY | O_CLOEXEC);
	if (ro < 0)
		goto fail;
	area = mmap(NULL, MW_MAPI_AREA_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (area == MAP_FAILED)
		goto fail;
	f->area = area;
	f->area_fd = fd;
	hdr = area;
	hdr->nfuncs = (uint32_t)f->nfns;
	*memfd = ro;
	return 0;
fail:
	ret = -errno;
	snprintf(err, errlen, "result area: %s", strerror(errno));
	if (ro >= 0)
		close(ro);
	if (fd >= 0)
		close(fd);
	return ret;
}

static void fn_key(const struct fl_mapi_fn *fn, const struct fl_pkt *p, uint8_t key[16])
{
	memset(key, 0, 16);
	switch (fn->field) {
	case MAPI_SRC_IP:
		memcpy(key, p->src, 16);
		break;
	case MAPI_DST_IP:
		memcpy(key, p->dst, 16);
		break;
	case MAPI_SRC_PORT:
		memcpy(key, &p->sport, 2);
		break;
	default:
		memcpy(key, &p->dport, 2);
		break;
	}
}

/* TOP sorts its counters to write: at most every TOP_WRITE_US, and on fl_mapi_flow_sync(). */
static void fn_write(struct fl_mapi_fn *fn, uint8_t *slot, uint64_t ts_us, bool force)
{
	switch (fn->id) {
	case MW_MAPI_TOP: {
		struct mapi_top t;
		uint32_t i, n;

		if (!force && ts_us < fn->written_us + TOP_WRITE_US)
			break;
		fn->written_us = ts_us;
		n = fl_topn_top(&fn->top, (uint32_t)fn->n);

		memset(&t, 0, sizeof(t));
		t.n = n;
		for (i = 0; i < n; i++) {
			memcpy(t.rows[i].key, fn->top.sorted[i].key, 16);
			t.rows[i].bytes = fn->top.sorted[i].count;
			t.rows[i].error = fn->top.sorted[i].error;
		}
		memcpy(slot, &t, sizeof(t));
		break;
	}
	case MW_MAPI_THRESHOLD: {
		struct mapi_threshold t = { fn->fired, fn->fired_ts, fn->fired_value };

		memcpy(slot, &t, sizeof(t));
		break;
	}
	case MW_MAPI_DIST: {
		uint64_t v = fl_hll_estimate(&fn->hll);

		memcpy(slot, &v, sizeof(v));
		break;
	}
	case MW_MAPI_FANOUT:
	case MW_MAPI_PORTSCAN:
		memcpy(slot, fn->anomaly, sizeof(*fn->anomaly));
		break;
	default:
		memcpy(slot, &fn->count, sizeof(fn->count));
		break;
	}
}

/* Write the slots of the first @n functions inside one sequence-counter section. */
static void flow_publish(struct fl_mapi_flow *f, int n, uint64_t ts_us, bool force)
{
	struct mw_mapi_area *hdr = (struct mw_mapi_area *)f->area;
	int i;

	__atomic_store_n(&hdr->seq, hdr->seq + 1, __ATOMIC_RELAXED);
	__atomic_thread_fence(__ATOMIC_RELEASE);
	for (i = 0; i < n; i++)
		fn_write(&f->fns[i], f->area + sizeof(*hdr) + (size_t)i * MW_MAPI_SLOT, ts_us,
			 force);
	if (ts_us)
		hdr->ts_us = ts_us;
	__atomic_store_n(&hdr->seq, hdr->seq + 1, __ATOMIC_RELEASE);
}

/* STR_SEARCH: is the needle in [offset, offset + depth) of the frame? */
static bool fn_search(const struct fl_mapi_fn *fn, const uint8_t *frame, size_t caplen)
{
	size_t end = fn->depth ? (size_t)fn->offset + fn->depth : caplen;

	if (end > caplen)
		end = caplen;
	if (fn->offset >= end || end - fn->offset < fn->needle_len)
		return false;
	return memmem(frame + fn->offset, end - fn->offset, fn->needle, fn->needle_len) != NULL;
}

/* SAMPLE: pass this frame? (xorshift32: cheap, no state shared with the C library) */
static bool fn_sample(struct fl_mapi_fn *fn)
{
	if (fn->mode == MAPI_SAMPLE_PERIODIC)
		return ++fn->seen % (uint64_t)fn->value == 0;
	fn->rng ^= fn->rng << 13;
	fn->rng ^= fn->rng >> 17;
	fn->rng ^= fn->rng << 5;
	return fn->rng % 100 < (uint32_t)fn->value;
}

/* FANOUT / PORTSCAN: a new window moves the flagged sources to last and forgets the rest. */
static void anomaly_window(struct fl_mapi_fn *fn, uint64_t ts_us)
{
	struct mapi_anomaly *r = fn->anomaly;
	uint32_t i;

	if (r->window_start_us && ts_us < r->window_start_us + fn->window_us)
		return;
	if (r->window_start_us) {
		memcpy(r->last, r->cur, sizeof(r->last));
		r->n_last = r->n_cur;
		memset(r->cur, 0, sizeof(r->cur));
		r->n_cur = 0;
		for (i = 0; i < fn->sources.cap; i++) {
			void *e = fl_ftab_at(&fn->sources, i);

			if (e)
				fl_ftab_del(&fn->sources, e);
		}
	}
	r->window_start_us = ts_us - ts_us % fn->window_us;
}

/* The flagged row of @src in the current window, or NULL. */
static struct mapi_anomaly_row *anomaly_row(struct mapi_anomaly *r, const uint8_t *src)
{
	uint32_t i;

	for (i = 0; i < r->n_cur; i++)
		if (!memcmp(r->cur[i].addr, src, 16))
			return &r->cur[i];
	return NULL;
}

/*
 * PORTSCAN: a RST answering a SYN to a closed port (RFC 793: RST+ACK with
 * sequence number 0, as Linux and BSD stacks send it) counts against the
 * source it goes to, if that source made attempts in this window.
 */
static void anomaly_rst(struct fl_mapi_fn *fn, const struct fl_pkt *p)
{
	struct anomaly_src *s;
	struct mapi_anomaly_row *row;

	if (fn->id != MW_MAPI_PORTSCAN || p->tcp_seq ||
	    (p->tcp_flags & (FL_TCP_RST | FL_TCP_ACK | FL_TCP_SYN)) != (FL_TCP_RST | FL_TCP_ACK))
		return;
	s = fl_ftab_find(&fn->sources, p->dst);
	if (!s)
		return;
	s->rejected++;
	row = anomaly_row(fn->anomaly, p->dst);
	if (row)
		row->rejected = s->rejected;
}

/* FANOUT / PORTSCAN: one frame; an attempt is a TCP SYN without ACK or a UDP datagram. */
static void anomaly_packet(struct fl_mapi_fn *fn, uint64_t ts_us, const struct fl_pkt *p)
{
	struct mapi_anomaly *r = fn->anomaly;
	struct mapi_anomaly_row *row;
	struct anomaly_src *s;
	uint64_t est;
	bool created;

	anomaly_window(fn, ts_us);
	if (p->proto == 6 && p->has_ports && (p->tcp_flags & FL_TCP_RST)) {
		anomaly_rst(fn, p);
		return;
	}
	if (!((p->proto == 6 && p->has_ports &&
	       (p->tcp_flags & (FL_TCP_SYN | FL_TCP_ACK)) == FL_TCP_SYN) ||
	      (p->proto == 17 && p->has_ports)))
		return;
	s = fl_ftab_get(&fn->sources, p->src, &created);
	if (!s) {
		r->dropped++;
		return;
	}
	s->attempts++;
	if (fn->id == MW_MAPI_FANOUT)
		fl_hll_add(&s->hll, fl_hash(fl_salt(), p->dst, sizeof(p->dst)));
	else
		fl_hll_add(&s->hll, fl_hash(fl_salt(), &p->dport, sizeof(p->dport)));
	est = fl_hll_estimate(&s->hll);
	if (est > s->attempts)
		est = s->attempts;
	if (est < fn->bound)
		return;
	if (!s->flagged) {
		s->flagged = true;
		r->flagged++;
		if (r->n_cur < MAPI_ANOMALY_ROWS)
			memcpy(r->cur[r->n_cur++].addr, p->src, 16);
	}
	row = anomaly_row(r, p->src);
	if (row) {
		row->distinct = est;
		row->attempts = s->attempts;
		row->rejected = s->rejected;
	}
}

/* TO_BUFFER: the frame into the packet ring, overwriting the oldest (mapi_proto.h). */
static void flow_buffer(struct fl_mapi_flow *f, uint64_t ts_us, const uint8_t *frame, size_t caplen,
			uint32_t wirelen)
{
	struct mw_mapi_ring *ring = (struct mw_mapi_ring *)(f->area + MW_MAPI_RING_OFFSET);
	uint64_t s = ring->head + 1;
	struct mw_mapi_pkt *pkt =
		(struct mw_mapi_pkt *)(ring + 1) + (size_t)(s % MW_MAPI_RING_SLOTS);
	size_t n = caplen < MW_MAPI_SNAP ? caplen : MW_MAPI_SNAP;

	__atomic_store_n(&pkt->seq, 0, __ATOMIC_RELAXED);
	__atomic_thread_fence(__ATOMIC_RELEASE);
	pkt->ts_us = ts_us;
	pkt->caplen = (uint32_t)n;
	pkt->wirelen = wirelen;
	memcpy(pkt->data, frame, n);
	__atomic_store_n(&pkt->seq, s, __ATOMIC_RELEASE);
	__atomic_store_n(&ring->head, s, __ATOMIC_RELEASE);
}

/* Run the functions; Return: how many ran (a filter that stops counts as run). */
static int flow_run(struct fl_mapi_flow *f, uint64_t ts_us, const uint8_t *frame, size_t caplen,
		    uint32_t wirelen, const struct fl_pkt *p, bool decoded)
{
	struct fl_pkt anon_pkt;
	int i;

	for (i = 0; i < f->nfns; i++) {
		struct fl_mapi_fn *fn = &f->fns[i];

		switch (fn->id) {
		case MW_MAPI_ANONYMIZE:
			/* The functions after it see the rewritten copy, decoded again. */
			if (frame != f->copy) {
				if (caplen > FL_MAPI_COPY_MAX)
					caplen = FL_MAPI_COPY_MAX;
				memcpy(f->copy, frame, caplen);
				frame = f->copy;
			}
			caplen = fl_anon_frame(&fn->anon, f->copy, caplen, fn->strip);
			decoded = fl_decode_ether(&anon_pkt, frame, caplen) == FL_DECODE_OK;
			p = &anon_pkt;
			fn->count++;
			break;
		case MW_MAPI_BPF_FILTER:
			if (fn->bpf.bf_len &&
			    !bpf_filter(fn->bpf.bf_insns, frame, wirelen, (u_int)caplen))
				return i + 1;
			fn->count++;
			break;
		case MW_MAPI_STR_SEARCH:
			if (!fn_search(fn, frame, caplen))
				return i + 1;
			fn->count++;
			break;
		case MW_MAPI_SAMPLE:
			if (!fn_sample(fn))
				return i + 1;
			fn->count++;
			break;
		case MW_MAPI_TO_BUFFER:
			flow_buffer(f, ts_us, frame, caplen, wirelen);
			fn->count++;
			break;
		case MW_MAPI_PKT_COUNTER:
			fn->count++;
			break;
		case MW_MAPI_BYTE_COUNTER:
			fn->count += wirelen;
			break;
		case MW_MAPI_TOP:
			if (decoded) {
				uint8_t key[16];

				fn_key(fn, p, key);
				fl_topn_add(&fn->top, key, wirelen);
			}
			break;
		case MW_MAPI_THRESHOLD:
			if (!fn->fired && f->fns[fn->ref].count >= fn->bound) {
				fn->fired = true;
				fn->fired_ts = ts_us;
				fn->fired_value = f->fns[fn->ref].count;
			}
			break;
		case MW_MAPI_FANOUT:
		case MW_MAPI_PORTSCAN:
			if (decoded)
				anomaly_packet(fn, ts_us, p);
			else
				anomaly_window(fn, ts_us);
			break;
		case MW_MAPI_DIST:
			if (decoded) {
				uint8_t key[16];

				fn_key(fn, p, key);
				fl_hll_add(&fn->hll, fl_hash(fl_salt(), key, sizeof(key)));
			}
			break;
		default:
			FL_ASSERT(0);
		}
	}
	return i;
}

/**
 * fl_mapi_flow_packet() - one frame of a sensor in @f's scope
 * @f:       connected flow
 * @ts_us:   capture time
 * @frame:   the frame
 * @caplen:  bytes captured
 * @wirelen: bytes on the wire
 * @p:       its decoded fields, valid when @decoded
 * @decoded: the frame is IP
 */
void fl_mapi_flow_packet(struct fl_mapi_flow *f, uint64_t ts_us, const uint8_t *frame,
			 size_t caplen, uint32_t wirelen, const struct fl_pkt *p, bool decoded)
{
	int ran = flow_run(f, ts_us, frame, caplen, wirelen, p, decoded);

	flow_publish(f, ran, ts_us, false);
}

/**
 * fl_mapi_flow_sync() - write every function's result now (the 1 s clock)
 * @f: connected flow
 */
void fl_mapi_flow_sync(struct fl_mapi_flow *f)
{
	flow_publish(f, f->nfns, 0, true);
}

/* Area punches under way off the loop; beyond this many at once (a client that
 * mapped areas without end, ending flows together), one more is done in place. */
#define PUNCHERS_MAX 64
static atomic_int punchers;

static void area_punch(int fd)
{
	(void)fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 0, MW_MAPI_AREA_SIZE);
	close(fd);
}

static void *punch_main(void *arg)
{
	area_punch((int)(intptr_t)arg);
	atomic_fetch_sub(&punchers, 1);
	return NULL;
}

/*
 * A flow's area is done with: a client may keep its descriptor or a mapping, so its
 * pages are punched out now, not left until its last close.  The punch unmaps them
 * from every mapping of the area, as many as the client made, so it runs on a thread
 * of its own (detached, signals blocked), not on the loop every sensor shares.
 */
static void area_retire(int fd)
{
	sigset_t all, old;
	pthread_attr_t ta;
	pthread_t t;
	int ret = -1;

	if (atomic_fetch_add(&punchers, 1) < PUNCHERS_MAX) {
		pthread_attr_init(&ta);
		pthread_attr_setdetachstate(&ta, PTHREAD_CREATE_DETACHED);
		pthread_attr_setstacksize(&ta, 64 * 1024);
		sigfillset(&all);
		pthread_sigmask(SIG_SETMASK, &all, &old);
		ret = pthread_create(&t, &ta, punch_main, (void *)(intptr_t)fd);
		pthread_sigmask(SIG_SETMASK, &old, NULL);
		pthread_attr_destroy(&ta);
	}
	if (ret) {
		atomic_fetch_sub(&punchers, 1);
		area_punch(fd);
	}
}

/**
 * fl_mapi_punch_wait() - wait (at most @ms) for the area punches under way to end
 * @ms: the bound
 * Return: true if none is left
 */
bool fl_mapi_punch_wait(int ms)
{
	for (long us = ms * 1000L; atomic_load(&punchers) && us > 0; us -= 200)
		usleep(200);
	return !atomic_load(&punchers);
}

/**
 * fl_mapi_flow_release() - free the functions and the area (the caller closes the fd)
 * @f: flow, left zeroed (a free slot of the flow table)
 */
void fl_mapi_flow_release(struct fl_mapi_flow *f)
{
	int i;

	for (i = 0; i < f->nfns; i++) {
		if (f->fns[i].id == MW_MAPI_BPF_FILTER)
			fl_bpf_free(&f->fns[i].bpf);
		if (f->fns[i].id == MW_MAPI_TOP)
			fl_topn_fini(&f->fns[i].top);
		if (f->fns[i].id == MW_MAPI_FANOUT || f->fns[i].id == MW_MAPI_PORTSCAN) {
			fl_ftab_fini(&f->fns[i].sources);
			free(f->fns[i].anomaly);
		}
	}
	if (f->area) {
		munmap(f->area, MW_MAPI_AREA_SIZE);
		area_retire(f->area_fd);
	}
	free(f->copy);
	memset(f, 0, sizeof(*f));
}

/**
 * fl_mapi_flow_free() - release a flow allocated on its own (tests, fuzzers) and free it
 * @f: flow
 */
void fl_mapi_flow_free(struct fl_mapi_flow *f)
{
	/* Tests and fuzzers: the area punched here and now, no thread to wait for. */
	if (f->area) {
		munmap(f->area, MW_MAPI_AREA_SIZE);
		area_punch(f->area_fd);
		f->area = NULL;
	}
	fl_mapi_flow_release(f);
	free(f);
}
