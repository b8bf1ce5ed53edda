/* SPDX-License-Identifier: MIT */
/* kfront.c - the kernel front end: an nftables table of the balancer's own steers clients to INS */
#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <nftables/libnftables.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "balancer/bal.h"
#include "balancer/kfront.h"
#include "common/addr.h"
#include "common/cidr.h"
#include "common/log.h"

/*
 * Theory of operation
 *
 * balancer.mode = "kernel": the balancer opens no listener.  It owns the
 * table "ip mwbal_<tag>" (kfront_rules.c renders it): nat hooks prerouting
 * and output send a client's first packet to the front-end addresses to the
 * chain "front" (balancer.max_conns: ct count), then "steer", which jumps to
 * "ins_<id>" of one INS ("counter ct mark set <INS_addr> dnat to INS_addr":
 * the port stays).  conntrack then carries the rest of the
 * connection both ways without any rule: the TCP connection ends in the INS,
 * whose mw-ins sees the client's own address (no PROXY v2), and
 * the balancer sees none of its bytes.
 *
 * bal_kf_sync() (each tick, and at once when an INS leaves the rotation:
 * health verdict, drain, death) rebuilds "steer" from the INS in rotation
 * (READY, its last health check passed, under per_ins_max_conns) in one nft
 * transaction, only when its text changed.  A draining INS is just not in
 * "steer": its connections live on in conntrack.  Once it is dead its chain
 * goes and its conntrack entries (by mark) too, so retransmitted SYNs are
 * steered again.  libnftables' nft_run_cmd_from_buffer() is synchronous netlink;
 * each run's time is measured (kf_update_us_max in status).
 *
 * bal_kf_poll() (each tick) reads back what the balancer no longer sees:
 * connections steered per INS (the packet counter of its chain: a nat
 * chain sees only a connection's first packet), clients met with no INS
 * (counter no_ins), and each INS's connections now, counted in its own
 * namespace over NETLINK_SOCK_DIAG (TCP sockets on a front-end port not
 * done yet, health probes aside), which drain, autoscale and
 * least-connections use.  A dump walks every socket of the namespace,
 * TIME_WAIT ones too (tens of thousands per INS under a stream of short
 * connections: each connection's walked 600 times in its minute), so the
 * count is taken each tick only while something acts on it (a least-*
 * policy, per_ins_max_conns, autoscale, a draining INS); otherwise once a
 * second, and afresh for `status` and `ins list` (bal_kf_count()).
 *
 * At start the table is created by "add; delete; add" in one transaction,
 * so a table left by a balancer that was killed -9 is replaced; on exit it
 * is deleted.  kfront_nl.c has the two netlink requests (sock_diag count,
 * conntrack delete by mark).
 */

#define KF_BUF	       262144 /* steer: 256 INS, weights up to 16, one element a slot */
#define KF_IDS_MAX     1024
#define SLOW_UPDATE_US 20000 /* an update this slow is logged */
#define COUNT_IDLE_S   1.0   /* connections counted this often when nothing acts on them */

struct bal_kf {
	struct bal *b;
	struct nft_ctx *nft;
	char table[BAL_KF_TABLE_MAX];
	uint16_t ports[MW_LISTEN_MAX];
	int nports;
	int chains[KF_IDS_MAX];	    /* INS ids that have a chain ins_<id> */
	uint32_t marks[KF_IDS_MAX]; /* the conntrack mark each sets: kf_mark() */
	int nchains;
	/* What chains and marks become once bal_kf_sync()'s transaction commits. */
	int next_chains[KF_IDS_MAX];
	uint32_t next_marks[KF_IDS_MAX];
	int next_n;
	char *last; /* the steer text applied last */
	char *buf;
	uint64_t updates, update_us_max, update_us_last;
	int max_conns;	   /* in "front" now */
	struct in_addr gw; /* the bridge's address: health probes come from it */
	double counted_at; /* ev_now() of the last count (kf_count()) */
};

static uint64_t now_us(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (uint64_t)t.tv_sec * 1000000u + (uint64_t)t.tv_nsec / 1000u;
}

/*
 * Run @cmds in one transaction; an @update (not a read) is timed into the
 * stats.  Return: 0, or -EIO with nft's first error line in @err.
 */
/**
 * bal_nft_run() - run nftables commands; on failure the first line of nft's error
 * @nft: a context with nft_ctx_buffer_error() set
 * Return: 0, or -EIO with @err set
 */
int bal_nft_run(struct nft_ctx *nft, const char *cmds, char *err, size_t errlen)
{
	const char *e;

	if (!nft_run_cmd_from_buffer(nft, cmds))
		return 0;
	e = nft_ctx_get_error_buffer(nft);
	snprintf(err, errlen, "nftables: %.*s", (int)strcspn(e ? e : "", "\n"),
		 e && *e ? e : "failed");
	return -EIO;
}

static int kf_run(struct bal_kf *kf, const char *cmds, bool update, char *err, size_t errlen)
{
	uint64_t t0 = now_us(), dt;
	int ret = bal_nft_run(kf->nft, cmds, err, errlen);

	dt = now_us() - t0;
	if (update) {
		kf->updates++;
		kf->update_us_last = dt;
		if (dt > kf->update_us_max)
			kf->update_us_max = dt;
	}
	return ret;
}

int bal_kf_check(const struct mw_config *cfg, char *err, size_t errlen)
{
	const struct mw_balancer_config *bc = &cfg->balancer;
	char table[BAL_KF_TABLE_MAX];
	struct mw_addr a;
	int k;

	if (strcmp(bc->mode, "kernel"))
		return 0;
	if (strcmp(bc->backend, "netns")) {
		snprintf(err, errlen,
			 "balancer.mode kernel needs backend netns (the INS must be routed "
			 "hosts behind balancer.bridge), not %s",
			 bc->backend);
		return -EINVAL;
	}
	if (cfg->ins.proxy_protocol) {
		snprintf(err, errlen,
			 "balancer.mode kernel: ins.proxy_protocol must be false (no PROXY v2 "
			 "header is sent; the INS sees the client's own address)");
		return -EINVAL;
	}
	if (bal_kf_table_name(bc->tag, table, sizeof(table))) {
		snprintf(err, errlen,
			 "balancer.mode kernel: balancer.tag '%s' may hold only letters, digits, "
			 "'_' and '-' (it names the nftables table)",
			 bc->tag);
		return -EINVAL;
	}
	if (!bc->listen_count) {
		snprintf(err, errlen, "balancer.mode kernel: balancer.listen is empty");
		return -EINVAL;
	}
	for (k = 0; k < bc->listen_count; k++) {
		if (mw_addr_parse(&a, bc->listen[k]) || a.family != 4) {
			snprintf(err, errlen, "balancer.mode kernel: listen %s: IPv4 only",
				 bc->listen[k]);
			return -EINVAL;
		}
		if (a.addr[0] == 127) {
			snprintf(
				err, errlen,
				"balancer.mode kernel: listen %s is a loopback address: the kernel "
				"cannot route a 127/8 source to an INS; use an address of this "
				"host (or 0.0.0.0)",
				bc->listen[k]);
			return -EINVAL;
		}
	}
	return 0;
}

int bal_kf_open(struct bal *b, struct bal_kf **out, char *err, size_t errlen)
{
	const struct mw_balancer_config *bc = &b->cfg->balancer;
	struct bal_kf_listen l[MW_LISTEN_MAX];
	struct bal_kf *kf;
	struct mw_addr a;
	struct mw_cidr c;
	int k, ret;

	*out = NULL;
	ret = bal_kf_check(b->cfg, err, errlen);
	if (ret)
		return ret;
	if (!bal_nft_kernel()) { /* else libnftables exits the process */
		snprintf(err, errlen, "kernel front end: this kernel has no nf_tables (nfnetlink)");
		return -EPROTONOSUPPORT;
	}
	kf = calloc(1, sizeof(*kf));
	if (kf) {
		kf->buf = malloc(KF_BUF);
		kf->last = calloc(1, KF_BUF);
		kf->nft = nft_ctx_new(NFT_CTX_DEFAULT);
	}
	if (!kf || !kf->buf || !kf->last || !kf->nft) {
		snprintf(err, errlen, "kernel front end: out of memory");
		bal_kf_close(kf);
		return -ENOMEM;
	}
	kf->b = b;
	if (!mw_cidr_parse(&c, bc->subnet) && c.family == 4) {
		memcpy(&kf->gw, c.net, 4);
		kf->gw.s_addr = htonl(ntohl(kf->gw.s_addr) + 1);
	}
	nft_ctx_buffer_output(kf->nft);
	nft_ctx_buffer_error(kf->nft);
	bal_kf_table_name(bc->tag, kf->table, sizeof(kf->table));
	for (k = 0; k < bc->listen_count; k++) {
		mw_addr_parse(&a, bc->listen[k]);
		memcpy(&l[k].addr, a.addr, 4);
		l[k].port = a.port;
		kf->ports[kf->nports++] = l[k].port;
	}
	ret = bal_kf_render_table(kf->buf, KF_BUF, kf->table, l, (size_t)bc->listen_count,
				  bc->bridge, bc->max_conns);
	kf->max_conns = bc->max_conns;
	if (ret >= 0)
		ret = kf_run(kf, kf->buf, true, err, errlen);
	if (ret < 0) {
		bal_kf_close(kf);
		return ret < -1 ? ret : -EIO;
	}
	mw_notice("kernel front end: nftables table ip %s (%d address(es)) in %" PRIu64 " us",
		  kf->table, bc->listen_count, kf->update_us_last);
	*out = kf;
	return 0;
}

void bal_kf_close(struct bal_kf *kf)
{
	char err[256];

	if (!kf)
		return;
	if (kf->nft && kf->b) {
		snprintf(kf->buf, KF_BUF, "delete table ip %s\n", kf->table);
		if (kf_run(kf, kf->buf, true, err, sizeof(err)))
			mw_warn("kernel front end: removing table %s: %s", kf->table, err);
	}
	if (kf->nft)
		nft_ctx_free(kf->nft);
	free(kf->buf);
	free(kf->last);
	free(kf);
}

/*
 * The conntrack mark of a connection steered to @i: its IPv4 address (host
 * order).  Not its id: every balancer on the host numbers its INS from 1, and
 * bal_kf_ct_forget() of one's dead INS 1 deleted another's established
 * connections (their next packet then met no NAT: a reset, or an answer the
 * client never saw).  Two balancers' INS never share an address (the DNAT
 * route to it needs it unique), so the mark is the host's one name for the INS.
 */
static uint32_t kf_mark(const struct bal_ins *i)
{
	return ntohl(i->h.addr.s_addr);
}

static bool in_steering(const struct bal *b, const struct bal_ins *i)
{
	unsigned cap = (unsigned)b->cfg->balancer.per_ins_max_conns;

	/*
	 * A passed health check, not just "not failing": the kernel cannot try
	 * another INS when a connect fails, as the splice front end does, so a
	 * new INS joins once the host has reached it (its first check).
	 */
	return i->state == BAL_INS_READY && i->hc.state == BAL_HEALTH_OK &&
	       !(cap && i->conns >= cap);
}

/* The index of INS @id's chain among those staged, or -1. */
static int chain_of(const struct bal_kf *kf, int id)
{
	for (int k = 0; k < kf->next_n; k++)
		if (kf->next_chains[k] == id)
			return k;
	return -1;
}

/*
 * Delete the chain of INS @id (steer no longer jumps there) and its conntrack
 * entries, each in a run of its own: a chain that is not there (deleted from
 * outside, or a run reported failed that had committed) is forgotten, not
 * retried for ever in every steering update; one that could not be deleted
 * stays recorded and is tried again at the next update.
 */
static void kf_chain_delete(struct bal_kf *kf, int id, uint32_t mark)
{
	char cmd[BAL_KF_TABLE_MAX + 64], err[256];
	int k, r;

	snprintf(cmd, sizeof(cmd), "delete chain ip %s ins_%d\n", kf->table, id);
	/* A listing that fails for another reason (ENOMEM) forgets a chain that exists:
	 * steer no longer jumps there, and a later INS of this id has it rewritten. */
	if (kf_run(kf, cmd, false, err, sizeof(err))) {
		snprintf(cmd, sizeof(cmd), "list chain ip %s ins_%d\n", kf->table, id);
		if (!kf_run(kf, cmd, false, err, sizeof(err))) {
			mw_log_ratelimited(MW_LOG_WARN,
					   "kernel front end: INS %d: its chain not deleted yet",
					   id);
			return;
		}
	}
	for (k = 0; k < kf->nchains; k++)
		if (kf->chains[k] == id) {
			kf->chains[k] = kf->chains[--kf->nchains];
			kf->marks[k] = kf->marks[kf->nchains];
			break;
		}
	r = bal_kf_ct_forget(mark);
	if (r && r != -ENOENT)
		mw_log_ratelimited(MW_LOG_WARN,
				   "kernel front end: INS %d: conntrack entries not removed: %s",
				   id, strerror(-r));
}

void bal_kf_sync(struct bal *b)
{
	struct bal_kf *kf = b->kf;
	struct bal_kf_ins set[256];
	unsigned conns[256], w[256];
	struct bal_ins *i;
	char *p, *steer, addr[INET_ADDRSTRLEN], err[512];
	size_t n = 0, used = 0;
	int k, best, ret, gone[KF_IDS_MAX], ngone = 0;
	uint32_t gone_mark[KF_IDS_MAX];
	bool chains_changed = false;

	if (!kf)
		return;
	/* In id order (the list is newest first). */
	for (best = 0;;) {
		struct bal_ins *next = NULL;

		for (i = b->ins; i; i = i->next)
			if (i->h.id > best && (!next || i->h.id < next->h.id))
				next = i;
		if (!next || n == sizeof(set) / sizeof(set[0]))
			break;
		best = next->h.id;
		if (!in_steering(b, next))
			continue;
		set[n].id = next->h.id;
		conns[n++] = next->conns;
	}
	bal_kf_weights(b->policy, conns, n, (unsigned)b->cfg->balancer.per_ins_max_conns,
		       b->cfg->balancer.overload_threshold, w);
	for (size_t j = 0; j < n; j++)
		set[j].weight = w[j];

	/*
	 * The chains added are staged and become kf->chains only once the
	 * transaction commits: a failed run (the next tick retries it) must not
	 * leave a chain recorded that was never made.  Those of INS gone are
	 * deleted after it (kf_chain_delete()).
	 */
	memcpy(kf->next_chains, kf->chains, sizeof(kf->chains[0]) * (size_t)kf->nchains);
	memcpy(kf->next_marks, kf->marks, sizeof(kf->marks[0]) * (size_t)kf->nchains);
	kf->next_n = kf->nchains;
	p = kf->buf;
	for (size_t j = 0; j < n; j++) {
		int c = chain_of(kf, set[j].id);

		i = bal_ins_find(b, set[j].id);
		if ((c >= 0 && kf->next_marks[c] == kf_mark(i)) ||
		    (c < 0 && kf->next_n == KF_IDS_MAX))
			continue;
		inet_ntop(AF_INET, &i->h.addr, addr, sizeof(addr));
		/* An earlier INS's chain of this id (ids wrap, its delete failed): redone. */
		used += (size_t)snprintf(
			p + used, KF_BUF - used,
			"add chain ip %s ins_%d\n"
			"flush chain ip %s ins_%d\n"
			"add rule ip %s ins_%d counter ct mark set 0x%08x dnat to %s\n",
			kf->table, set[j].id, kf->table, set[j].id, kf->table, set[j].id,
			kf_mark(i), addr);
		if (c < 0)
			c = kf->next_n++;
		kf->next_marks[c] = kf_mark(i);
		kf->next_chains[c] = set[j].id;
		chains_changed = true;
	}
	steer = p + used;
	ret = bal_kf_render_steer(steer, KF_BUF - used, kf->table, b->policy, set, n);
	if (ret < 0) {
		mw_log_ratelimited(MW_LOG_ERR, "kernel front end: steering for %zu INS is too long",
				   n);
		return;
	}
	used += (size_t)ret;
	/* Chains of INS that are gone or dead: deleted once steer no longer jumps there. */
	for (k = 0; k < kf->next_n; k++) {
		i = bal_ins_find(b, kf->next_chains[k]);
		if (i && i->state != BAL_INS_DEAD)
			continue;
		gone_mark[ngone] = kf->next_marks[k];
		gone[ngone++] = kf->next_chains[k];
		chains_changed = true;
	}
	if (used >= KF_BUF - 1)
		return;
	if (!chains_changed && !strncmp(steer, kf->last, KF_BUF))
		return;
	if (kf_run(kf, p, true, err, sizeof(err))) {
		mw_log_ratelimited(MW_LOG_ERR, "kernel front end: steering update failed: %s", err);
		kf->last[0] = 0; /* try again next time */
		return;
	}
	snprintf(kf->last, KF_BUF, "%.*s", ret, steer);
	memcpy(kf->chains, kf->next_chains, sizeof(kf->chains[0]) * (size_t)kf->next_n);
	memcpy(kf->marks, kf->next_marks, sizeof(kf->marks[0]) * (size_t)kf->next_n);
	kf->nchains = kf->next_n;
	for (k = 0; k < ngone; k++)
		kf_chain_delete(kf, gone[k], gone_mark[k]);
	if (kf->update_us_last >= SLOW_UPDATE_US)
		mw_info("kernel front end: steering %zu INS took %" PRIu64
			" us (synchronous netlink)",
			n, kf->update_us_last);
	else
		mw_debug("kernel front end: steering %zu INS (%" PRIu64 " us)", n,
			 kf->update_us_last);
}

void bal_kf_set_limit(struct bal *b)
{
	struct bal_kf *kf = b->kf;
	char err[512];

	if (!kf || kf->max_conns == b->cfg->balancer.max_conns)
		return;
	if (bal_kf_render_front(kf->buf, KF_BUF, kf->table, b->cfg->balancer.max_conns) < 0 ||
	    kf_run(kf, kf->buf, true, err, sizeof(err))) {
		mw_err("kernel front end: max_conns %d not applied", b->cfg->balancer.max_conns);
		return;
	}
	kf->max_conns = b->cfg->balancer.max_conns;
}

/* @c starts with @prefix and a decimal number: *@v set.  Return: true then. */
static bool number_after(const char *c, const char *prefix, uint64_t *v)
{
	size_t n = strlen(prefix);
	char *end;

	if (strncmp(c, prefix, n) || c[n] < '0' || c[n] > '9')
		return false;
	errno = 0;
	*v = strtoull(c + n, &end, 10);
	return !errno && (*end == ' ' || *end == '\n' || *end == '\0');
}

/*
 * Counters from "list table": packets of each ins_<id> chain (its
 * "counter packets N ..." rule), of the named counters no_ins and over_limit
 * (a "packets N bytes M" line in their block).
 */
static void kf_read_counters(struct bal_kf *kf)
{
	struct bal *b = kf->b;
	char err[256], line[512];
	const char *out;
	FILE *f;
	uint64_t *named = NULL; /* inside a named counter's block: where it goes */
	int chain = -1;

	snprintf(kf->buf, KF_BUF, "list table ip %s\n", kf->table);
	if (kf_run(kf, kf->buf, false, err, sizeof(err))) {
		mw_log_ratelimited(MW_LOG_WARN, "kernel front end: %s", err);
		return;
	}
	out = nft_ctx_get_output_buffer(kf->nft);
	f = out ? fmemopen((void *)out, strlen(out), "r") : NULL;
	if (!f)
		return;
	while (fgets(line, sizeof(line), f)) {
		const char *c = line + strspn(line, " \t");
		uint64_t v;
		struct bal_ins *i;

		if (number_after(c, "chain ins_", &v) && v <= 65535) {
			chain = (int)v;
			named = NULL;
		} else if (chain > 0 && number_after(c, "counter packets ", &v)) {
			i = bal_ins_find(b, chain);
			if (i)
				i->total = v;
		} else if (named && number_after(c, "packets ", &v)) {
			*named = v;
			named = NULL;
		} else if (!strncmp(c, "chain ", 6)) {
			chain = -1;
			named = NULL;
		} else if (!strncmp(c, "counter no_ins ", 15)) {
			chain = -1;
			named = &b->reasons[BAL_R_NO_INS];
		} else if (!strncmp(c, "counter over_limit ", 19)) {
			chain = -1;
			named = &b->reasons[BAL_R_LIMIT];
		}
	}
	fclose(f);
}

/* Does anything act on each INS's connections at this tick? */
static bool counts_acted_on(const struct bal *b)
{
	const struct mw_balancer_config *bc = &b->cfg->balancer;

	if (b->policy == BAL_POLICY_LEASTCONN || b->policy == BAL_POLICY_LEASTBUSY ||
	    bc->per_ins_max_conns || bc->autoscale)
		return true;
	for (const struct bal_ins *i = b->ins; i; i = i->next)
		if (i->state == BAL_INS_DRAINING)
			return true;
	return false;
}

/* Each INS's connections, counted in its namespace now. */
static void kf_count(struct bal *b)
{
	struct bal_kf *kf = b->kf;
	struct bal_ins *i;
	int n, ids[KF_IDS_MAX], nids = 0;
	unsigned half_open;

	kf->counted_at = ev_now(b->loop);
	for (i = b->ins; i && nids < KF_IDS_MAX; i = i->next)
		ids[nids++] = i->h.id;
	for (int k = 0; k < nids; k++) {
		/*
		 * A dump walks the namespace's TCP hash (tens of ms with many
		 * sockets): an INS that exited meanwhile leaves steering first.
		 */
		while (bal_ins_reap(b))
			;
		i = bal_ins_find(b, ids[k]);
		if (!i || i->state == BAL_INS_DEAD || i->state == BAL_INS_STARTING)
			continue;
		if (i->kf_diag < 0 && i->h.pid > 0)
			i->kf_diag = bal_diag_open(i->h.pid);
		n = i->kf_diag < 0 ? i->kf_diag
				   : bal_kf_count_conns(i->kf_diag, kf->ports, kf->nports, kf->gw,
							&half_open);
		if (n >= 0) {
			i->conns = (unsigned)n;
			i->half_open = half_open;
		} else {
			mw_log_ratelimited(MW_LOG_WARN, "kernel front end: INS %d: sock_diag: %s",
					   i->h.id, strerror(-n));
			if (i->kf_diag >= 0)
				close(i->kf_diag);
			i->kf_diag = -1;
		}
	}
}

void bal_kf_count(struct bal *b)
{
	if (!b->kf)
		return;
	kf_read_counters(b->kf); /* the totals as of now, not as of the last tick */
	if (b->kf->counted_at != ev_now(b->loop))
		kf_count(b);
}

void bal_kf_poll(struct bal *b)
{
	struct bal_kf *kf = b->kf;

	if (!kf)
		return;
	kf_read_counters(kf);
	if (counts_acted_on(b) || ev_now(b->loop) - kf->counted_at >= COUNT_IDLE_S)
		kf_count(b);
	bal_kf_sync(b);
}

void bal_kf_stats(const struct bal_kf *kf, uint64_t *updates, uint64_t *us_max, uint64_t *us_last)
{
	*updates = kf ? kf->updates : 0;
	*us_max = kf ? kf->update_us_max : 0;
	*us_last = kf ? kf->update_us_last : 0;
}
