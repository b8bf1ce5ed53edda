/* SPDX-License-Identifier: MIT */
/* codec.c - Netflow wire codec: offsets from the original headers, explicit big-endian fields */
#include <arpa/inet.h>
#include <assert.h>
#include <errno.h>
#include <string.h>

#include "common/shield.h"
#include "netflow/codec.h"

/* Offsets (reference/magicwand.md §1.4, §1.6, §1.7). */
enum {
	OFF_SIG = 0,
	OFF_ID = 2,

	INFO_OBS = 6,
	INFO_TS_START = 8,
	INFO_TS_CURR = 24,
	INFO_SOCKFD = 40,
	INFO_PVM = 48,
	INFO_REMOTE = 70,
	INFO_BYTES_IN = 92,
	INFO_BYTES_OUT = 100,
	INFO_EXTRA = 108,

	REQ_FLAGS = 6,
	REQ_NAME = 8,
	REQ_VAL = 10,
	REQ_IDENT = 26,

	RSP_STATUS = 6,
	RSP_VAL = 10,

	ENDPOINT_SIZE = 22, /* af u32 + 16 + port u16 */
	IDENT_SIZE = 20,
};

static_assert(INFO_EXTRA + 8 == MW_NF_INFO_SIZE, "INFO layout");
static_assert(REQ_IDENT + IDENT_SIZE == MW_NF_REQUEST_SIZE, "REQUEST layout");
static_assert(RSP_VAL + 16 == MW_NF_RESPONSE_SIZE, "RESPONSE layout");
static_assert(INFO_PVM + ENDPOINT_SIZE == INFO_REMOTE, "endpoint layout");

static int af_valid(uint32_t af)
{
	return af == 0 || af == 4 || af == 6;
}

static void put_endpoint(uint8_t *p, const struct mw_nf_endpoint *e)
{
	mw_nf_put32(p, e->af);
	memcpy(p + 4, e->addr, 16);
	mw_nf_put16(p + 20, e->port);
}

static void get_endpoint(struct mw_nf_endpoint *e, const uint8_t *p)
{
	e->af = mw_nf_get32(p);
	memcpy(e->addr, p + 4, 16);
	e->port = mw_nf_get16(p + 20);
}

static void put_ts(uint8_t *p, const struct mw_nf_timestamp *t)
{
	mw_nf_put64(p, t->sec);
	mw_nf_put64(p + 8, t->ns);
}

static void get_ts(struct mw_nf_timestamp *t, const uint8_t *p)
{
	t->sec = mw_nf_get64(p);
	t->ns = mw_nf_get64(p + 8);
}

/* Size and signature checks shared by the three decoders. */
static int check_frame(const uint8_t *buf, size_t len, uint16_t sig, size_t size,
		       const char **why)
{
	const char *reason = NULL;

	if (!buf || len < size)
		reason = "short buffer";
	else if (mw_nf_get16(buf + OFF_SIG) != sig)
		reason = "wrong signature";
	if (reason && why)
		*why = reason;
	return reason ? -EBADMSG : 0;
}

int mw_nf_encode_info(uint8_t out[MW_NF_INFO_SIZE], const struct mw_nf_info *in)
{
	if (!af_valid(in->pvm.af) || !af_valid(in->remote.af))
		return -EINVAL;
	mw_nf_put16(out + OFF_SIG, MW_NF_SIG_INFO);
	mw_nf_put32(out + OFF_ID, in->id);
	mw_nf_put16(out + INFO_OBS, in->obs);
	put_ts(out + INFO_TS_START, &in->ts_session_start);
	put_ts(out + INFO_TS_CURR, &in->ts_curr);
	mw_nf_put64(out + INFO_SOCKFD, in->sockfd);
	put_endpoint(out + INFO_PVM, &in->pvm);
	put_endpoint(out + INFO_REMOTE, &in->remote);
	mw_nf_put64(out + INFO_BYTES_IN, in->bytes_in);
	mw_nf_put64(out + INFO_BYTES_OUT, in->bytes_out);
	mw_nf_put64(out + INFO_EXTRA, in->extra);
	return MW_NF_INFO_SIZE;
}

int mw_nf_encode_request(uint8_t out[MW_NF_REQUEST_SIZE], const struct mw_nf_request *in)
{
	mw_nf_put16(out + OFF_SIG, MW_NF_SIG_REQUEST);
	mw_nf_put32(out + OFF_ID, in->id);
	mw_nf_put16(out + REQ_FLAGS, in->flags);
	mw_nf_put16(out + REQ_NAME, in->name);
	memcpy(out + REQ_VAL, in->val, 16);
	memset(out + REQ_IDENT, 0, IDENT_SIZE);
	if (in->flags & MW_NF_FLAG_BY_SOCK) {
		mw_nf_put64(out + REQ_IDENT, in->sockfd);
	} else {
		mw_nf_put32(out + REQ_IDENT, in->addr.af);
		memcpy(out + REQ_IDENT + 4, in->addr.addr, 16);
	}
	return MW_NF_REQUEST_SIZE;
}

int mw_nf_encode_response(uint8_t out[MW_NF_RESPONSE_SIZE], const struct mw_nf_response *in)
{
	mw_nf_put16(out + OFF_SIG, MW_NF_SIG_RESPONSE);
	mw_nf_put32(out + OFF_ID, in->id);
	mw_nf_put32(out + RSP_STATUS, (uint32_t)in->status);
	mw_nf_put64(out + RSP_VAL, in->val0);
	mw_nf_put64(out + RSP_VAL + 8, in->val1);
	return MW_NF_RESPONSE_SIZE;
}

int mw_nf_decode_info(struct mw_nf_info *out, const uint8_t *buf, size_t len, const char **why)
{
	struct mw_nf_info m;
	int ret = check_frame(buf, len, MW_NF_SIG_INFO, MW_NF_INFO_SIZE, why);

	if (ret)
		return ret;
	m.id = mw_nf_get32(buf + OFF_ID);
	m.obs = mw_nf_get16(buf + INFO_OBS);
	get_ts(&m.ts_session_start, buf + INFO_TS_START);
	get_ts(&m.ts_curr, buf + INFO_TS_CURR);
	m.sockfd = mw_nf_get64(buf + INFO_SOCKFD);
	get_endpoint(&m.pvm, buf + INFO_PVM);
	get_endpoint(&m.remote, buf + INFO_REMOTE);
	m.bytes_in = mw_nf_get64(buf + INFO_BYTES_IN);
	m.bytes_out = mw_nf_get64(buf + INFO_BYTES_OUT);
	m.extra = mw_nf_get64(buf + INFO_EXTRA);
	if (m.obs > MW_NF_OBS_MAX) {
		if (why)
			*why = "unknown observation";
		return -EBADMSG;
	}
	if (!af_valid(m.pvm.af) || !af_valid(m.remote.af)) {
		if (why)
			*why = "endpoint af is not 0, 4 or 6";
		return -EBADMSG;
	}
	*out = m;
	return 0;
}

int mw_nf_decode_request(struct mw_nf_request *out, const uint8_t *buf, size_t len,
			 const char **why)
{
	int ret = check_frame(buf, len, MW_NF_SIG_REQUEST, MW_NF_REQUEST_SIZE, why);

	if (ret)
		return ret;
	memset(out, 0, sizeof(*out));
	out->id = mw_nf_get32(buf + OFF_ID);
	out->flags = mw_nf_get16(buf + REQ_FLAGS);
	out->name = mw_nf_get16(buf + REQ_NAME);
	memcpy(out->val, buf + REQ_VAL, 16);
	if (out->flags & MW_NF_FLAG_BY_SOCK) {
		/* The trailing 12 bytes are padding: a legacy client may leave anything there. */
		out->sockfd = mw_nf_get64(buf + REQ_IDENT);
	} else {
		out->addr.af = mw_nf_get32(buf + REQ_IDENT);
		memcpy(out->addr.addr, buf + REQ_IDENT + 4, 16);
	}
	return 0;
}

int mw_nf_decode_response(struct mw_nf_response *out, const uint8_t *buf, size_t len,
			  const char **why)
{
	int ret = check_frame(buf, len, MW_NF_SIG_RESPONSE, MW_NF_RESPONSE_SIZE, why);

	if (ret)
		return ret;
	out->id = mw_nf_get32(buf + OFF_ID);
	out->status = (int32_t)mw_nf_get32(buf + RSP_STATUS);
	out->val0 = mw_nf_get64(buf + RSP_VAL);
	out->val1 = mw_nf_get64(buf + RSP_VAL + 8);
	return 0;
}

int mw_nf_request_check(const struct mw_nf_request *r, const char **why)
{
	const char *reason = NULL;

	if (r->flags & ~MW_NF_FLAG_ALL)
		reason = "unknown flag bits";
	else if ((r->flags & MW_NF_FLAG_BY_SOCK) && (r->flags & MW_NF_FLAG_BY_PEER))
		reason = "BY_SOCK and BY_PEER together";
	if (reason && why)
		*why = reason;
	return reason ? -EINVAL : 0;
}

int mw_nf_peek_sig(const uint8_t *buf, size_t len)
{
	if (!buf || len < 2)
		return -EAGAIN;
	return mw_nf_get16(buf);
}

int mw_nf_sig_size(uint16_t sig)
{
	switch (sig) {
	case MW_NF_SIG_INFO:
		return MW_NF_INFO_SIZE;
	case MW_NF_SIG_REQUEST:
		return MW_NF_REQUEST_SIZE;
	case MW_NF_SIG_RESPONSE:
		return MW_NF_RESPONSE_SIZE;
	default:
		return -EBADMSG;
	}
}

int mw_nf_frame_next(const uint8_t *buf, size_t len)
{
	int sig, size;

	/* One byte is enough to reject: every signature starts with 0xD3. */
	if (buf && len >= 1 && buf[0] != MW_NF_SIG_PREFIX)
		return -EBADMSG;
	sig = mw_nf_peek_sig(buf, len);
	if (sig < 0)
		return 0;
	size = mw_nf_sig_size((uint16_t)sig);
	if (size < 0)
		return size;
	return len >= (size_t)size ? size : 0;
}

/* The 16 bytes hold NUL-padded text that parses as an IPv4 dotted quad. */
static int block_text(const uint8_t a[16], uint8_t out[4])
{
	char text[17];
	size_t n = strnlen((const char *)a, 16);
	size_t i;

	if (n == 16)
		return -EINVAL; /* no NUL: not the original's NUL-padded text */
	for (i = n; i < 16; i++)
		if (a[i])
			return -EINVAL;
	memcpy(text, a, n);
	text[n] = '\0';
	return inet_pton(AF_INET, text, out) == 1 ? 0 : -EINVAL;
}

int mw_nf_request_block_addr(const struct mw_nf_request *r, struct mw_addr *out)
{
	static const uint8_t zero[12];
	const struct mw_nf_ident_addr *id = &r->addr;

	memset(out, 0, sizeof(*out));
	if (r->flags & MW_NF_FLAG_BY_SOCK)
		return -EINVAL;
	/* Text only where the family is not a binary one: the 16 bytes of an IPv6
	 * address may happen to read as NUL-padded dotted-quad text. */
	if (id->af != 4 && id->af != 6 && !block_text(id->addr, out->addr)) {
		out->family = 4;
		return 0;
	}
	if (id->af == 4 && !memcmp(id->addr + 4, zero, sizeof(zero))) {
		memcpy(out->addr, id->addr, 4);
		out->family = 4;
		return 0;
	}
	if (id->af == 6) {
		memcpy(out->addr, id->addr, 16);
		out->family = 6;
		return 0;
	}
	return -EINVAL;
}

int mw_nf_request_set_block_text(struct mw_nf_request *r, const char *ip)
{
	uint8_t bin[4];
	size_t n;

	if (!ip)
		return -EINVAL;
	n = strnlen(ip, 16);
	if (n >= 16 || inet_pton(AF_INET, ip, bin) != 1)
		return -EINVAL;
	r->sockfd = 0;
	memset(&r->addr, 0, sizeof(r->addr));
	r->addr.af = MW_NF_AF_TEXT_LEGACY;
	memcpy(r->addr.addr, ip, n);
	return 0;
}

int mw_nf_endpoint_to_addr(const struct mw_nf_endpoint *e, struct mw_addr *out)
{
	memset(out, 0, sizeof(*out));
	if (!af_valid(e->af))
		return -EINVAL;
	out->family = (uint8_t)e->af;
	out->port = e->port;
	memcpy(out->addr, e->addr, e->af == 4 ? 4 : e->af == 6 ? 16 : 0);
	return 0;
}

void mw_nf_endpoint_from_addr(struct mw_nf_endpoint *e, const struct mw_addr *a)
{
	memset(e, 0, sizeof(*e));
	if (a->family != 4 && a->family != 6)
		return;
	e->af = a->family;
	e->port = a->port;
	memcpy(e->addr, a->addr, a->family == 4 ? 4 : 16);
}

const char *mw_nf_obs_name(unsigned obs)
{
	/* The original python client's strings. */
	static const char *const names[] = { "none", "create", "bind", "accept",
					     "connect", "recv", "send", "close" };

	return obs < sizeof(names) / sizeof(names[0]) ? names[obs] : "unknown";
}

const char *mw_nf_attr_name(unsigned name)
{
	/* By enum mw_shield_opt (common/shield.h). */
	static const char *const shield[MW_SHIELD_OPT_MAX + 1] = {
		[MW_SHIELD_FILTER] = "ShieldFilter",
		[MW_SHIELD_DEADLINE_MS] = "ShieldDeadlineMs",
		[MW_SHIELD_HOLD_MAX] = "ShieldHoldMax",
		[MW_SHIELD_MIN_IN_RATE] = "ShieldMinInRate",
		[MW_SHIELD_MIN_OUT_RATE] = "ShieldMinOutRate",
		[MW_SHIELD_OUT_BUFFER] = "ShieldOutBuffer",
		[MW_SHIELD_SRC_MAX_CONNS] = "ShieldSrcMaxConns",
		[MW_SHIELD_SRC_RATE] = "ShieldSrcRate",
		[MW_SHIELD_PFX_MAX_CONNS] = "ShieldPfxMaxConns",
		[MW_SHIELD_PFX_RATE] = "ShieldPfxRate",
		[MW_SHIELD_DELIM] = "ShieldDelim",
		[MW_SHIELD_STALL_MAX] = "ShieldStallMax",
	};

	if (name >= MW_NF_ATTR_SHIELD_FIRST && name <= MW_NF_ATTR_SHIELD_LAST)
		return shield[name - MW_NF_ATTR_SHIELD_BASE];
	switch (name) {
	case MW_NF_ATTR_NONE: return "None";
	case MW_NF_ATTR_MONITOR_ON: return "MonitorOn";
	case MW_NF_ATTR_MONITOR_OFF: return "MonitorOff";
	case MW_NF_ATTR_NONBLOCK: return "Nonblock";
	case MW_NF_ATTR_REUSEADDR: return "Reuseaddr";
	case MW_NF_ATTR_REUSEPORT: return "Reuseport";
	case MW_NF_ATTR_KEEPALIVE: return "Keepalive";
	case MW_NF_ATTR_DEFER_ACCEPT: return "DeferAccept";
	case MW_NF_ATTR_NODELAY: return "Nodelay";
	case MW_NF_ATTR_IS_OPEN: return "IsOpen";
	case MW_NF_ATTR_OWNER_RUNNING: return "OwnerRunning";
	case MW_NF_ATTR_SNDBUF: return "SndBuf";
	case MW_NF_ATTR_RCVBUF: return "RcvBuf";
	case MW_NF_ATTR_SNDTIMEO: return "SndTimeo";
	case MW_NF_ATTR_RCVTIMEO: return "RcvTimeo";
	case MW_NF_ATTR_SNDLOWAT: return "SndLoWat";
	case MW_NF_ATTR_RCVLOWAT: return "RcvLoWat";
	case MW_NF_ATTR_ERROR: return "Error";
	case MW_NF_ATTR_GLOBAL_CONGCTL: return "GlobalCongctl";
	case MW_NF_ATTR_GLOBAL_DELACK_TICKS: return "GlobalDelackTicks";
	case MW_NF_ATTR_ADDR_BLOCK: return "AddrBlock";
	case MW_NF_ATTR_AUTH: return "Auth";
	default: return NULL;
	}
}
