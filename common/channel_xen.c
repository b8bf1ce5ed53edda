/* SPDX-License-Identifier: MIT */
/* channel_xen.c - Xen channel backend: granted pages, an event channel, handshake through the keystore */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <xenevtchn.h>
#include <xengnttab.h>
#include <xentoollog.h>

#include "common/channel.h"
#include "common/channel_backend.h"
#include "common/channel_xen.h"
#include "common/keystore.h"

/*
 * Theory of operation (handshake through the keystore, keys in channel_xen.h)
 *
 *   INS (join)                              PVM (offer)
 *   open gnttab + evtchn                    open gntshr + evtchn
 *   remove stale handshake keys
 *   write ins_hello                  ->     wait for ins_hello (<= 5 s), check it,
 *                                           negotiate (none: pvm_hello 0..0, fail)
 *                                           share the region's pages with the INS,
 *                                           bind an unbound port for the INS,
 *                                           write gnt_ref_<n>, gnt_ref_chunks,
 *   wait for pvm_hello (<= 5 s)      <-     vm_evt_chn_prt, then pvm_hello
 *   check it, read and strictly parse
 *   the refs, map them, check the ring
 *   headers, bind the port
 *   write vm_evt_chn_is_bound = 1    ->     wait for it (<= 5 s): the channel is up
 *
 * The devices are opened before any key is touched, so a host without Xen
 * fails at once with one line instead of waiting for a peer.  Waiting for a
 * key re-reads it with a short growing pause rather than using a keystore
 * watch: the caller's keystore handle carries the daemon's own watches, whose
 * events a handshake must not consume.  There is no handshake socket here, so
 * sock_fd stays -1 and peer death is noticed by the heartbeat timeout.
 * The event channel fd is made non-blocking so that ack() never blocks.
 */

struct xen_state {
	xengntshr_handle *gs;   /* PVM: the pages are ours */
	xengnttab_handle *gt;   /* INS: the pages are mapped from the PVM */
	xenevtchn_handle *xce;
	evtchn_port_t port;     /* our end of the event channel */
	bool bound;
	uint32_t npages;
};

/* ------------------------------------------------------------------ pure helpers */

/**
 * mw_xen_page_count() - pages granted for rings of @ring_size bytes
 * @ring_size: bytes per direction
 * Return: page count, or 0 if @ring_size is unusable or too big for a grant table
 */
uint32_t mw_xen_page_count(uint32_t ring_size)
{
	char err[8];

	if (mw_channel_check_ring_size(ring_size, err, sizeof(err)) || ring_size > MW_XEN_MAX_RING)
		return 0;
	return (uint32_t)(mw_channel_region_size(ring_size) / MW_XEN_PAGE_SIZE);
}

/**
 * mw_xen_chunk_count() - number of gnt_ref_<n> keys for @nrefs refs
 * @nrefs: grant refs
 * Return: ceil(@nrefs / MW_XEN_REFS_PER_KEY)
 */
uint32_t mw_xen_chunk_count(uint32_t nrefs)
{
	return (nrefs + MW_XEN_REFS_PER_KEY - 1) / MW_XEN_REFS_PER_KEY;
}

/**
 * mw_xen_key() - "/mw/ins/<domid>/<name>"
 * @buf:    where the key goes
 * @buflen: its size
 * @domid:  the INS domain
 * @name:   the key's last component
 * Return: 0 or -ENAMETOOLONG
 */
int mw_xen_key(char *buf, size_t buflen, uint16_t domid, const char *name)
{
	int n = snprintf(buf, buflen, "/mw/ins/%u/%s", domid, name);

	return n < 0 || (size_t)n >= buflen || n >= MW_KEY_MAX ? -ENAMETOOLONG : 0;
}

/**
 * mw_xen_chunk_key() - "/mw/ins/<domid>/gnt_ref_<n>"
 * @buf:    where the key goes
 * @buflen: its size
 * @domid:  the INS domain
 * @n:      chunk number, from 1
 * Return: 0 or -ENAMETOOLONG
 */
int mw_xen_chunk_key(char *buf, size_t buflen, uint16_t domid, uint32_t n)
{
	char name[32];

	snprintf(name, sizeof(name), "gnt_ref_%u", n);
	return mw_xen_key(buf, buflen, domid, name);
}

/**
 * mw_xen_refs_encode() - one gnt_ref_<n> value
 * @refs:   grant refs
 * @n:      how many, 1..MW_XEN_REFS_PER_KEY
 * @buf:    where the text goes
 * @buflen: its size
 * Return: length, -EINVAL or -ENOSPC
 */
int mw_xen_refs_encode(const uint32_t *refs, uint32_t n, char *buf, size_t buflen)
{
	size_t off = 0;

	if (n == 0 || n > MW_XEN_REFS_PER_KEY)
		return -EINVAL;
	for (uint32_t i = 0; i < n; i++) {
		int k = snprintf(buf + off, buflen - off, "%x%c", refs[i], i + 1 == n ? ':' : ' ');

		if (k < 0 || (size_t)k >= buflen - off)
			return -ENOSPC;
		off += (size_t)k;
	}
	return (int)off;
}

static int xen_hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

/**
 * mw_xen_refs_decode() - parse one gnt_ref_<n> value strictly
 * @s:    the text
 * @refs: where the refs go
 * @max:  room in @refs
 * Return: number of refs, -EINVAL or -E2BIG
 */
int mw_xen_refs_decode(const char *s, uint32_t *refs, uint32_t max)
{
	uint32_t n = 0;

	for (;;) {
		uint32_t v = 0;
		int digits = 0, d;

		while ((d = xen_hexval(*s)) >= 0) {
			if (++digits > 8)
				return -EINVAL;
			v = v << 4 | (uint32_t)d;
			s++;
		}
		if (!digits)
			return -EINVAL; /* empty value, double space, leading space, "0x"... */
		if (n >= max || n >= MW_XEN_REFS_PER_KEY)
			return -E2BIG;
		refs[n++] = v;
		if (*s == ':')
			return s[1] ? -EINVAL : (int)n;
		if (*s != ' ')
			return -EINVAL; /* other character, or the ':' terminator missing */
		s++;
	}
}

/**
 * mw_xen_hello_encode() - text form of a hello
 * @h:      the hello
 * @buf:    where the text goes
 * @buflen: its size
 * Return: length or -ENOSPC
 */
int mw_xen_hello_encode(const struct mw_hello *h, char *buf, size_t buflen)
{
	int n = snprintf(buf, buflen, "%08x %u %u %u %u %u %u %u %d", h->magic, h->version_min,
			 h->version_max, h->ins_id, h->pvm_index, h->ring_size, h->window,
			 h->heartbeat_ms, h->pid);

	return n < 0 || (size_t)n >= buflen ? -ENOSPC : n;
}

/* One decimal field up to @max (or a signed one), followed by ' ' or, if @last, the end. */
static int xen_field(const char **sp, bool hex, bool sign, uint64_t max, bool last, int64_t *out)
{
	const char *s = *sp;
	bool neg = false;
	uint64_t v = 0;
	int digits = 0;

	if (sign && *s == '-') {
		neg = true;
		s++;
	}
	for (;; s++, digits++) {
		int d = hex ? xen_hexval(*s) : (*s >= '0' && *s <= '9' ? *s - '0' : -1);

		if (d < 0)
			break;
		if (digits >= 10)
			return -EINVAL;
		v = v * (hex ? 16u : 10u) + (uint64_t)d;
	}
	if (!digits || v > max + (neg ? 1u : 0u) || (last ? *s != 0 : *s != ' '))
		return -EINVAL;
	*out = neg ? -(int64_t)v : (int64_t)v;
	*sp = last ? s : s + 1;
	return 0;
}

/**
 * mw_xen_hello_decode() - parse a hello from the keystore
 * @s: the text
 * @h: the hello
 * Return: 0 or -EINVAL
 */
int mw_xen_hello_decode(const char *s, struct mw_hello *h)
{
	int64_t v[9];
	static const struct {
		bool hex, sign;
		uint64_t max;
	} f[9] = {
		{ true, false, UINT32_MAX }, { false, false, UINT16_MAX },
		{ false, false, UINT16_MAX }, { false, false, UINT16_MAX },
		{ false, false, UINT8_MAX }, { false, false, UINT32_MAX },
		{ false, false, UINT32_MAX }, { false, false, UINT32_MAX },
		{ false, true, INT32_MAX },
	};

	for (int i = 0; i < 9; i++)
		if (xen_field(&s, f[i].hex, f[i].sign, f[i].max, i == 8, &v[i]))
			return -EINVAL;
	memset(h, 0, sizeof(*h));
	h->magic = (uint32_t)v[0];
	h->version_min = (uint16_t)v[1];
	h->version_max = (uint16_t)v[2];
	h->ins_id = (uint16_t)v[3];
	h->pvm_index = (uint8_t)v[4];
	h->ring_size = (uint32_t)v[5];
	h->window = (uint32_t)v[6];
	h->heartbeat_ms = (uint32_t)v[7];
	h->pid = (int32_t)v[8];
	return 0;
}

/**
 * mw_xen_parse_ins_key() - "/mw/ins/<domid>[/<name>]" from a watch event, strictly
 * @key:     the changed key
 * @domid:   the domain
 * @name:    its last component, "" for the directory
 * @namelen: room in @name
 * Return: 0 or -EINVAL
 */
int mw_xen_parse_ins_key(const char *key, uint16_t *domid, char *name, size_t namelen)
{
	static const char prefix[] = "/mw/ins/";
	const char *s = key;
	uint32_t v = 0;
	size_t n = 0;
	int digits = 0;

	if (strncmp(s, prefix, sizeof(prefix) - 1) || namelen < MW_XEN_NAME_MAX)
		return -EINVAL;
	for (s += sizeof(prefix) - 1; *s >= '0' && *s <= '9'; s++) {
		if (++digits > 5 || (digits == 2 && v == 0))
			return -EINVAL; /* too long, or a leading zero */
		v = v * 10 + (uint32_t)(*s - '0');
	}
	if (!digits || v == 0 || v > MW_XEN_DOMID_MAX || (*s && *s != '/'))
		return -EINVAL;
	if (*s == '/') {
		for (s++; *s; s++) {
			if (!((*s >= 'a' && *s <= 'z') || (*s >= '0' && *s <= '9') || *s == '_') ||
			    n + 1 >= MW_XEN_NAME_MAX)
				return -EINVAL;
			name[n++] = *s;
		}
		if (!n)
			return -EINVAL; /* "/mw/ins/5/" */
	}
	name[n] = 0;
	*domid = (uint16_t)v;
	return 0;
}

/**
 * mw_xen_open_error() - one line for a Xen device that cannot be opened
 * @dev:    the device
 * @err:    errno (0 is taken as ENOENT)
 * @buf:    where the line goes
 * @buflen: its size
 * Return: -@err
 */
int mw_xen_open_error(const char *dev, int err, char *buf, size_t buflen)
{
	if (err <= 0)
		err = ENOENT;
	snprintf(buf, buflen,
		 "xen channel: cannot open %s (%s); use the local channel on hosts without Xen",
		 dev, strerror(err));
	return -err;
}

/* ------------------------------------------------------------------ backend ops */

/* The libraries would print their own multi-line complaints; we report one line. */
static void xen_log_silent(struct xentoollog_logger *l, xentoollog_level level, int errnoval,
			   const char *context, const char *format, va_list al)
{
	(void)l, (void)level, (void)errnoval, (void)context, (void)format, (void)al;
}

static void xen_log_destroy(struct xentoollog_logger *l)
{
	(void)l;
}

static struct xentoollog_logger xen_silent = {
	.vmessage = xen_log_silent,
	.destroy = xen_log_destroy,
};

static struct xen_state *X(struct mw_channel *ch) { return ch->backend; }

static int xen_kick(struct mw_channel *ch)
{
	return xenevtchn_notify(X(ch)->xce, X(ch)->port) < 0 ? -errno : 0;
}

static int xen_ack(struct mw_channel *ch)
{
	xenevtchn_port_or_error_t p = xenevtchn_pending(X(ch)->xce);

	if (p < 0)
		return errno == EAGAIN ? 0 : -errno;
	return xenevtchn_unmask(X(ch)->xce, (evtchn_port_t)p) < 0 ? -errno : 0;
}

static void xen_state_free(struct xen_state *xs, void *region)
{
	if (!xs)
		return;
	if (region && xs->gs)
		xengntshr_unshare(xs->gs, region, xs->npages);
	if (region && xs->gt)
		xengnttab_unmap(xs->gt, region, xs->npages);
	if (xs->xce && xs->bound)
		xenevtchn_unbind(xs->xce, xs->port);
	if (xs->xce)
		xenevtchn_close(xs->xce);
	if (xs->gs)
		xengntshr_close(xs->gs);
	if (xs->gt)
		xengnttab_close(xs->gt);
	free(xs);
}

static void xen_release(struct mw_channel *ch)
{
	xen_state_free(ch->backend, ch->region);
	ch->backend = NULL;
	ch->region = NULL;
	ch->wait_fd = -1;
}

static const struct mw_channel_ops xen_ops = {
	.name = "xen",
	.kick = xen_kick,
	.ack = xen_ack,
	.release = xen_release,
};

static int64_t xen_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/*
 * Read @key, waiting until @deadline for it to appear (see the theory for why
 * this re-reads instead of watching).  Return: length, -ETIMEDOUT or -errno.
 */
static int xen_wait_key(struct mw_keystore *ks, const char *key, char *buf, size_t buflen,
			int64_t deadline)
{
	int pause = 1;

	for (;;) {
		int ret = mw_keystore_read(ks, key, buf, buflen);
		int64_t left;

		if (ret != -ENOENT)
			return ret;
		left = deadline - xen_now_ms();
		if (left <= 0)
			return -ETIMEDOUT;
		poll(NULL, 0, (int)(left < pause ? left : pause));
		pause = pause < 50 ? pause * 2 : 50;
	}
}

static int xen_write_str(struct mw_keystore *ks, uint16_t dom, const char *name, const char *val)
{
	char key[MW_KEY_MAX];
	int ret = mw_xen_key(key, sizeof(key), dom, name);

	return ret ? ret : mw_keystore_write(ks, key, val, strlen(val));
}

static int xen_write_hello(struct mw_keystore *ks, uint16_t dom, const char *name,
			   const struct mw_hello *h)
{
	char text[MW_XEN_HELLO_MAX];
	int ret = mw_xen_hello_encode(h, text, sizeof(text));

	return ret < 0 ? ret : xen_write_str(ks, dom, name, text);
}

static const char *xen_wait_what(int ret)
{
	return ret == -ETIMEDOUT ? "not written within 5 s" : strerror(-ret);
}

/* Open the event channel device; the fd becomes non-blocking (ack must not block). */
static int xen_open_evtchn(struct xen_state *xs, char *err, size_t errlen)
{
	int fd, fl;

	errno = 0;
	xs->xce = xenevtchn_open(&xen_silent, 0);
	if (!xs->xce)
		return mw_xen_open_error("/dev/xen/evtchn", errno, err, errlen);
	fd = xenevtchn_fd(xs->xce);
	fl = fcntl(fd, F_GETFL);
	if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0) {
		snprintf(err, errlen, "xen channel: event channel fd: %s", strerror(errno));
		return -errno;
	}
	return 0;
}

/**
 * mw_xen_publish_refs() - write gnt_ref_1..n, then gnt_ref_chunks (as the original)
 * @ks:    keystore
 * @dom:   INS domid
 * @refs:  grant refs
 * @nrefs: how many (1..MW_XEN_MAX_PAGES)
 * Return: 0 or -errno
 */
int mw_xen_publish_refs(struct mw_keystore *ks, uint16_t dom, const uint32_t *refs,
			uint32_t nrefs)
{
	uint32_t chunks = mw_xen_chunk_count(nrefs);
	char key[MW_KEY_MAX], val[MW_XEN_CHUNK_MAX];
	int ret = 0;

	if (nrefs == 0 || nrefs > MW_XEN_MAX_PAGES)
		return -EINVAL;
	for (uint32_t c = 0; c < chunks && !ret; c++) {
		uint32_t n = nrefs - c * MW_XEN_REFS_PER_KEY;

		if (n > MW_XEN_REFS_PER_KEY)
			n = MW_XEN_REFS_PER_KEY;
		ret = mw_xen_chunk_key(key, sizeof(key), dom, c + 1);
		if (!ret) {
			ret = mw_xen_refs_encode(refs + c * MW_XEN_REFS_PER_KEY, n, val, sizeof(val));
			ret = ret < 0 ? ret : mw_keystore_write(ks, key, val, (size_t)ret);
		}
	}
	if (!ret) {
		snprintf(val, sizeof(val), "%u", chunks);
		ret = xen_write_str(ks, dom, "gnt_ref_chunks", val);
	}
	return ret;
}

/* Strict unsigned decimal key value up to @max. */
static int xen_read_uint(struct mw_keystore *ks, uint16_t dom, const char *name, uint32_t max,
			 uint32_t *out)
{
	char key[MW_KEY_MAX], val[32];
	int64_t v;
	const char *s = val;
	int ret = mw_xen_key(key, sizeof(key), dom, name);

	if (!ret)
		ret = mw_keystore_read(ks, key, val, sizeof(val));
	if (ret < 0)
		return ret;
	if (xen_field(&s, false, false, max, true, &v))
		return -EINVAL;
	*out = (uint32_t)v;
	return 0;
}

/**
 * mw_xen_read_refs() - read gnt_ref_chunks and every gnt_ref_<n>, strictly
 * @ks:     keystore
 * @dom:    INS domid
 * @refs:   room for @nrefs refs
 * @nrefs:  exactly this many must be published
 * @err:    one line on failure
 * @errlen: its size
 * Return: 0 or -EPROTO
 */
int mw_xen_read_refs(struct mw_keystore *ks, uint16_t dom, uint32_t *refs, uint32_t nrefs,
		     char *err, size_t errlen)
{
	char key[MW_KEY_MAX], val[MW_XEN_CHUNK_MAX + 1];
	uint32_t chunks, got = 0;
	int ret;

	ret = xen_read_uint(ks, dom, "gnt_ref_chunks", MW_XEN_MAX_PAGES, &chunks);
	if (ret || chunks != mw_xen_chunk_count(nrefs)) {
		snprintf(err, errlen, "gnt_ref_chunks is %s, expected %u for %u pages",
			 ret ? "missing or not a number" : "wrong", mw_xen_chunk_count(nrefs), nrefs);
		return -EPROTO;
	}
	for (uint32_t c = 1; c <= chunks; c++) {
		ret = mw_xen_chunk_key(key, sizeof(key), dom, c);
		if (!ret)
			ret = mw_keystore_read(ks, key, val, sizeof(val));
		if (ret >= 0)
			ret = mw_xen_refs_decode(val, refs + got, nrefs - got);
		if (ret <= 0) {
			snprintf(err, errlen, "gnt_ref_%u is missing or malformed (%s)", c,
				 strerror(ret ? -ret : EINVAL));
			return -EPROTO;
		}
		got += (uint32_t)ret;
	}
	if (got != nrefs) {
		snprintf(err, errlen, "%u grant refs published, the ring needs %u", got, nrefs);
		return -EPROTO;
	}
	return 0;
}

/* Open the PVM's devices (gntalloc, evtchn); the one-line error names the missing one. */
static int xen_offer_devices(struct xen_state *xs, char *err, size_t errlen)
{
	errno = 0;
	xs->gs = xengntshr_open(&xen_silent, 0);
	if (!xs->gs)
		return mw_xen_open_error("/dev/xen/gntalloc", errno, err, errlen);
	return xen_open_evtchn(xs, err, errlen);
}

/*
 * The PVM's answer to a hello already read: check it, share the pages, bind a
 * port, publish refs, port and pvm_hello.  Never waits.  On success the
 * channel holds @xs (its release undoes everything); on failure the caller
 * frees @xs.
 */
static int xen_answer(struct mw_channel *ch, struct xen_state *xs, struct mw_keystore *ks,
		      uint16_t ins_domid, const struct mw_hello *mine, const char *hello_text,
		      char *err, size_t errlen)
{
	char key[MW_KEY_MAX], text[MW_XEN_HELLO_MAX];
	struct mw_hello peer, reply;
	uint32_t *refs;
	void *region;
	xenevtchn_port_or_error_t port;
	int ver, ret;

	if (mw_xen_hello_decode(hello_text, &peer)) {
		snprintf(err, errlen, "INS %u hello is malformed", ins_domid);
		return -EPROTO;
	}
	if (peer.ins_id != ins_domid) {
		snprintf(err, errlen, "INS hello names id %u under domain %u", peer.ins_id, ins_domid);
		return -EPROTO;
	}
	ver = mw_channel_negotiate(mine, &peer, "INS", err, errlen);
	if (ver < 0) {
		reply = *mine;
		reply.version_min = reply.version_max = 0;
		xen_write_hello(ks, ins_domid, "pvm_hello", &reply); /* best effort: say why */
		return ver;
	}
	if (mw_proto_check_hello(&peer, err, errlen))
		return -EPROTO;
	refs = calloc(MW_XEN_MAX_PAGES, sizeof(*refs));
	if (!refs) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	region = xengntshr_share_pages(xs->gs, ins_domid, (int)xs->npages, refs, 1);
	if (!region) {
		ret = errno ? -errno : -ENOMEM;
		snprintf(err, errlen, "sharing %u pages with domain %u: %s", xs->npages, ins_domid,
			 strerror(-ret));
		free(refs);
		return ret;
	}
	ch->region = region;
	ch->backend = xs;
	ch->ops = &xen_ops;
	ret = mw_channel_attach(ch, region, mine->ring_size, MW_CHANNEL_PVM, true);
	if (ret) {
		snprintf(err, errlen, "attach rings: %s", strerror(-ret));
		goto fail;
	}
	port = xenevtchn_bind_unbound_port(xs->xce, ins_domid);
	if (port < 0) {
		ret = errno ? -errno : -EIO;
		snprintf(err, errlen, "event channel for domain %u: %s", ins_domid, strerror(-ret));
		goto fail;
	}
	xs->port = (evtchn_port_t)port;
	xs->bound = true;

	ret = mw_xen_key(key, sizeof(key), ins_domid, "vm_evt_chn_is_bound");
	if (!ret)
		ret = mw_keystore_remove(ks, key);
	if (!ret)
		ret = mw_xen_publish_refs(ks, ins_domid, refs, xs->npages);
	if (!ret) {
		snprintf(text, sizeof(text), "%d", port);
		ret = xen_write_str(ks, ins_domid, "vm_evt_chn_prt", text);
	}
	reply = *mine;
	reply.version_min = reply.version_max = (uint16_t)ver;
	reply.ins_id = peer.ins_id;
	if (!ret)
		ret = xen_write_hello(ks, ins_domid, "pvm_hello", &reply);
	if (ret) {
		snprintf(err, errlen, "publishing the channel keys: %s", strerror(-ret));
		goto fail;
	}
	free(refs);
	ch->wait_fd = xenevtchn_fd(xs->xce);
	ch->peer = peer;
	ch->version = (uint16_t)ver;
	return 0;
fail:
	/* The caller frees @xs: take it back from the channel, unshare here. */
	xengntshr_unshare(xs->gs, region, xs->npages);
	if (xs->bound)
		xenevtchn_unbind(xs->xce, xs->port);
	xs->bound = false;
	free(refs);
	mw_channel_reset(ch);
	return ret;
}

/* A fresh PVM state for rings of @ring_size, devices open.  Return: 0 or -errno with @err. */
static int xen_offer_state(struct xen_state **out, uint32_t ring_size, char *err, size_t errlen)
{
	struct xen_state *xs;
	int ret = mw_channel_check_ring_size(ring_size, err, errlen);

	*out = NULL;
	if (ret)
		return ret;
	if (!mw_xen_page_count(ring_size)) {
		snprintf(err, errlen, "ring_size %u is over the Xen limit of %u", ring_size,
			 MW_XEN_MAX_RING);
		return -EINVAL;
	}
	xs = calloc(1, sizeof(*xs));
	if (!xs) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	xs->npages = mw_xen_page_count(ring_size);
	ret = xen_offer_devices(xs, err, errlen);
	if (ret) {
		xen_state_free(xs, NULL);
		return ret;
	}
	*out = xs;
	return 0;
}

/**
 * mw_channel_xen_answer() - PVM side, for an event loop: answer a hello already read
 * @ch:         the channel (reset here)
 * @ks:         keystore (xenstore)
 * @ins_domid:  the domain whose /mw/ins/<domid>/ins_hello was read
 * @mine:       our hello
 * @hello_text: the value of that key (untrusted: parsed strictly)
 * @err:        one line on failure
 * @errlen:     its size
 *
 * Opens the devices, checks the hello, shares the pages, binds a port for the
 * INS and publishes refs, port and pvm_hello; never waits.  The channel is
 * usable once mw_channel_xen_confirm() returns 1; until then (or on giving
 * up) mw_channel_close() undoes everything.
 * Return: 0 or -errno with one line in @err
 */
int mw_channel_xen_answer(struct mw_channel *ch, struct mw_keystore *ks, uint16_t ins_domid,
			  const struct mw_hello *mine, const char *hello_text, char *err,
			  size_t errlen)
{
	struct xen_state *xs;
	int ret;

	mw_channel_reset(ch);
	ret = xen_offer_state(&xs, mine->ring_size, err, errlen);
	if (ret)
		return ret;
	ret = xen_answer(ch, xs, ks, ins_domid, mine, hello_text, err, errlen);
	if (ret)
		xen_state_free(xs, NULL);
	else
		ch->backend = xs; /* as xen_answer() left it: the channel owns it */
	return ret;
}

/**
 * mw_channel_xen_confirm() - has the INS bound the event channel?
 * @ch:        a channel answered by mw_channel_xen_answer()
 * @ks:        keystore
 * @ins_domid: its domain
 * @err:       one line on failure
 * @errlen:    its size
 * Return: 1 bound (the channel is up), 0 not yet, -EPROTO (a value other
 * than "1") or -errno
 */
int mw_channel_xen_confirm(struct mw_channel *ch, struct mw_keystore *ks, uint16_t ins_domid,
			   char *err, size_t errlen)
{
	char key[MW_KEY_MAX], text[8];
	int ret = mw_xen_key(key, sizeof(key), ins_domid, "vm_evt_chn_is_bound");

	(void)ch;
	if (!ret)
		ret = mw_keystore_read(ks, key, text, sizeof(text));
	if (ret == -ENOENT)
		return 0;
	if (ret < 0 && ret != -ENOSPC) {
		snprintf(err, errlen, "reading vm_evt_chn_is_bound: %s", strerror(-ret));
		return ret;
	}
	if (ret < 0 || strcmp(text, "1")) {
		snprintf(err, errlen, "INS %u: vm_evt_chn_is_bound is not 1", ins_domid);
		return -EPROTO;
	}
	return 1;
}

/**
 * mw_channel_xen_offer() - PVM side of the Xen handshake, blocking (callers without a loop)
 * @ch:       the channel (reset here)
 * @ks:       keystore (xenstore) the handshake keys go through
 * @ins_domid: the INS domain (its hello must carry the same ins_id)
 * @mine:     our hello (ring_size, window, version range ...)
 * @err:      one line on failure
 * @errlen:   size of @err
 * Return: 0 or -errno (-ENOENT etc. no Xen devices, -ETIMEDOUT, -EPROTO bad or
 * refused hello, -EINVAL bad ring size, or a system error)
 */
int mw_channel_xen_offer(struct mw_channel *ch, struct mw_keystore *ks, uint16_t ins_domid,
			 const struct mw_hello *mine, char *err, size_t errlen)
{
	int64_t deadline = xen_now_ms() + MW_CHANNEL_HANDSHAKE_MS;
	char key[MW_KEY_MAX], text[MW_XEN_HELLO_MAX];
	struct xen_state *xs = NULL;
	int ret;

	mw_channel_reset(ch);
	ret = xen_offer_state(&xs, mine->ring_size, err, errlen);
	if (ret)
		return ret;
	ret = mw_xen_key(key, sizeof(key), ins_domid, "ins_hello");
	if (!ret)
		ret = xen_wait_key(ks, key, text, sizeof(text), deadline);
	if (ret < 0) {
		snprintf(err, errlen, "INS %u hello: %s", ins_domid, xen_wait_what(ret));
		xen_state_free(xs, NULL);
		return ret;
	}
	ret = xen_answer(ch, xs, ks, ins_domid, mine, text, err, errlen);
	if (ret) {
		xen_state_free(xs, NULL);
		return ret;
	}
	ch->backend = xs; /* as xen_answer() left it: the channel owns it */
	ret = mw_xen_key(key, sizeof(key), ins_domid, "vm_evt_chn_is_bound");
	if (!ret)
		ret = xen_wait_key(ks, key, text, sizeof(text), deadline);
	if (ret < 0 || strcmp(text, "1")) {
		snprintf(err, errlen, "INS %u did not bind the event channel: %s", ins_domid,
			 ret < 0 ? xen_wait_what(ret) : "vm_evt_chn_is_bound is not 1");
		mw_channel_close(ch);
		return ret < 0 ? ret : -EPROTO;
	}
	return 0;
}

/**
 * mw_channel_xen_join() - INS side of the Xen handshake
 * @ch:        the channel (reset here)
 * @ks:        keystore (xenstore)
 * @pvm_domid: the PVM's domain (grants and the event channel come from it)
 * @mine:      our hello; its ins_id is our domid and names the key directory
 * @err:       one line on failure
 * @errlen:    size of @err
 * Return: 0 or -errno (-ENOENT etc. no Xen devices, -ETIMEDOUT, -EPROTO bad
 * reply or keys, or a system error)
 */
int mw_channel_xen_join(struct mw_channel *ch, struct mw_keystore *ks, uint16_t pvm_domid,
			const struct mw_hello *mine, char *err, size_t errlen)
{
	static const char *const stale[] = { "pvm_hello", "gnt_ref_chunks", "vm_evt_chn_prt",
					     "vm_evt_chn_is_bound", "ins_hello" };
	int64_t deadline = xen_now_ms() + MW_CHANNEL_HANDSHAKE_MS;
	char key[MW_KEY_MAX], text[MW_XEN_HELLO_MAX];
	uint16_t dom = mine->ins_id;
	struct xen_state *xs = NULL;
	xenevtchn_port_or_error_t port;
	uint32_t *refs = NULL, rport;
	struct mw_hello reply;
	void *region = NULL;
	int ver, ret;

	mw_channel_reset(ch);
	xs = calloc(1, sizeof(*xs));
	refs = calloc(MW_XEN_MAX_PAGES, sizeof(*refs));
	ret = -ENOMEM;
	if (!xs || !refs) {
		snprintf(err, errlen, "out of memory");
		goto fail;
	}
	errno = 0;
	xs->gt = xengnttab_open(&xen_silent, 0);
	if (!xs->gt) {
		ret = mw_xen_open_error("/dev/xen/gntdev", errno, err, errlen);
		goto fail;
	}
	ret = xen_open_evtchn(xs, err, errlen);
	if (ret)
		goto fail;

	for (size_t i = 0; i < sizeof(stale) / sizeof(stale[0]) && !ret; i++) {
		ret = mw_xen_key(key, sizeof(key), dom, stale[i]);
		if (!ret)
			ret = mw_keystore_remove(ks, key);
	}
	if (!ret)
		ret = xen_write_hello(ks, dom, "ins_hello", mine);
	if (ret) {
		snprintf(err, errlen, "writing our hello: %s", strerror(-ret));
		goto fail;
	}
	ret = mw_xen_key(key, sizeof(key), dom, "pvm_hello");
	if (!ret)
		ret = xen_wait_key(ks, key, text, sizeof(text), deadline);
	if (ret < 0) {
		snprintf(err, errlen, "PVM hello: %s", xen_wait_what(ret));
		goto fail;
	}
	ret = -EPROTO;
	if (mw_xen_hello_decode(text, &reply)) {
		snprintf(err, errlen, "PVM hello is malformed");
		goto fail;
	}
	ver = mw_channel_negotiate(mine, &reply, "PVM", err, errlen);
	if (ver < 0) {
		ret = ver;
		goto fail;
	}
	if (reply.version_min != reply.version_max) {
		snprintf(err, errlen, "PVM did not choose one version (%u..%u)", reply.version_min,
			 reply.version_max);
		goto fail;
	}
	if (mw_proto_check_hello(&reply, err, errlen) ||
	    mw_channel_check_ring_size(reply.ring_size, err, errlen))
		goto fail;
	xs->npages = mw_xen_page_count(reply.ring_size);
	if (!xs->npages) {
		snprintf(err, errlen, "PVM ring_size %u is over the Xen limit of %u",
			 reply.ring_size, MW_XEN_MAX_RING);
		goto fail;
	}
	ret = mw_xen_read_refs(ks, dom, refs, xs->npages, err, errlen);
	if (ret)
		goto fail;
	ret = xen_read_uint(ks, dom, "vm_evt_chn_prt", INT32_MAX, &rport);
	if (ret) {
		snprintf(err, errlen, "vm_evt_chn_prt is missing or not a number");
		ret = -EPROTO;
		goto fail;
	}
	region = xengnttab_map_domain_grant_refs(xs->gt, xs->npages, pvm_domid, refs,
						 PROT_READ | PROT_WRITE);
	if (!region) {
		ret = errno ? -errno : -ENOMEM;
		snprintf(err, errlen, "mapping %u grant refs of domain %u: %s", xs->npages,
			 pvm_domid, strerror(-ret));
		goto fail;
	}
	ret = mw_channel_attach(ch, region, reply.ring_size, MW_CHANNEL_INS, false);
	if (ret) {
		snprintf(err, errlen, "ring headers in the region are inconsistent");
		ret = -EPROTO;
		goto fail;
	}
	port = xenevtchn_bind_interdomain(xs->xce, pvm_domid, rport);
	if (port < 0) {
		ret = -errno;
		snprintf(err, errlen, "binding port %u of domain %u: %s", rport, pvm_domid,
			 strerror(errno));
		goto fail;
	}
	xs->port = (evtchn_port_t)port;
	xs->bound = true;
	ret = xen_write_str(ks, dom, "vm_evt_chn_is_bound", "1");
	if (ret) {
		snprintf(err, errlen, "writing vm_evt_chn_is_bound: %s", strerror(-ret));
		goto fail;
	}
	free(refs);
	ch->ops = &xen_ops;
	ch->backend = xs;
	ch->wait_fd = xenevtchn_fd(xs->xce);
	ch->peer = reply;
	ch->version = (uint16_t)ver;
	return 0;
fail:
	xen_state_free(xs, region);
	free(refs);
	mw_channel_reset(ch);
	return ret;
}
