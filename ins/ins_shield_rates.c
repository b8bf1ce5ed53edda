/* SPDX-License-Identifier: MIT */
/* ins_shield_rates.c - a shield's rates and limits on live connections (hooks of ins_sock/ins_io) */
#include <errno.h>
#include <linux/sockios.h>
#include <linux/tcp.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "common/log.h"
#include "ins/ins.h"

/*
 * Theory of operation (docs/ins.md, "Shield: rates and limits")
 *
 * Admission (ins_shield_admit(), from ins_sock_admit()): on a listener whose
 * shield sets SRC_MAX_CONNS, SRC_RATE, PFX_MAX_CONNS or PFX_RATE, the
 * connection's source and its /24 or /64 are looked up in two fixed tables
 * (ins_rates.c); over a limit: reset at once, counted.  Admitted: counted in
 * its entries until ins_sock_free().  No entry within reach (table full):
 * admitted, counted as untracked (fail open: a full table is an attack on the
 * table, and refusing everyone would finish the attacker's job).
 *
 * OUT_BUFFER: ins_io.c credits DATA back to mw-pvm only when the kernel took
 * it, so the app's writer follows the client's pace.  With out_buffer set,
 * bytes waiting in the pending buffer are credited at once ("early"), up to
 * out_buffer per connection and ins.shield_out_total in all; what is sent
 * later from the front of the buffer uses those up before crediting.  At the
 * total bound, connections measured slower than the one asking are cut
 * (reset), slowest first; if none is slower it just gets no more early credit.
 *
 * MIN_OUT_RATE: a connection with pending bytes is put on a list; every
 * TICK_MS its acknowledged bytes (tcpi_bytes_acked) are sampled while the INS
 * still holds bytes for it (pending, or unacknowledged in the kernel:
 * SIOCOUTQ); under min_out_rate over a whole INS_RATES_WINDOW_MS: reset the
 * way an address block resets a live connection (RST, EV_RESET ECONNRESET,
 * the app sees ECONNRESET/EPIPE).  The same samples rank readers for the cuts.
 *
 * STALL_MAX: the same tick marks a connection stalled when the INS holds bytes
 * for it that it has not credited back (the out buffer is full: the app's
 * writer waits on this client) and its client acknowledged nothing for
 * INS_RATES_STALL_MS.  Stalled connections are counted per listener (the
 * listener's stall_n, valid for tick gen); while a listener has more than its
 * stall_max, the one stalled longest is reset, as MIN_OUT_RATE resets.  A
 * thread-per-connection server thus has at most stall_max threads (plus one
 * tick's arrivals) held by readers that do not read, whatever their number,
 * and a client that reads, however slowly, is never stalled for long.
 */

#define TICK_S 0.25
#define MS_PER_S 1000.0

static uint64_t now_ms(const struct ins *ins)
{
	return (uint64_t)(ev_now(ins->loop) * MS_PER_S);
}

static void list_del(struct ins_sock *s)
{
	struct ins_rates_conn *r = &s->rates;
	struct ins_shield_rates *sr = &s->ins->rates;

	if (!r->on_list)
		return;
	if (r->oprev)
		r->oprev->rates.onext = r->onext;
	else
		sr->out_head = r->onext;
	if (r->onext)
		r->onext->rates.oprev = r->oprev;
	r->oprev = r->onext = NULL;
	r->on_list = false;
}

/* Bytes the client acknowledged so far and bytes still unacknowledged; false on error. */
static bool sock_progress(int fd, uint64_t *acked, int *outq)
{
	struct tcp_info ti;
	socklen_t len = sizeof(ti);

	memset(&ti, 0, sizeof(ti));
	if (getsockopt(fd, IPPROTO_TCP, TCP_INFO, &ti, &len) < 0 ||
	    len < offsetof(struct tcp_info, tcpi_bytes_acked) + sizeof(ti.tcpi_bytes_acked))
		return false;
	*acked = ti.tcpi_bytes_acked;
	if (ioctl(fd, SIOCOUTQ, outq) < 0)
		*outq = 0;
	return true;
}

/* Reset a live connection, as an address block does; @s may be freed. */
static void shield_cut(struct ins_sock *s, const char *why, uint64_t *counter)
{
	char text[MW_ADDR_STRLEN];

	(*counter)++;
	mw_log_ratelimited(MW_LOG_INFO, "connection %#llx from %s reset: %s (%llu so far)",
			   (unsigned long long)s->id, mw_addr_format(&s->peer, text, sizeof(text)),
			   why, (unsigned long long)*counter);
	ins_sock_reset(s);
}

/* The listener @s came from, if it is still there. */
static struct ins_sock *listener_of(struct ins_sock *s)
{
	return s->rates.listener ? ins_table_find(&s->ins->socks, s->rates.listener) : NULL;
}

/* The tick's STALL_MAX count: is @s stalled, and is its listener now over its bound? */
static bool stall_count(struct ins_sock *s, uint64_t now)
{
	struct ins_sock *ls;
	uint32_t gen = s->ins->rates.gen;

	s->rates.stalled = s->shield.stall_max && s->pend_len > s->rates.early &&
			   ins_rates_out_stalled(&s->rates.out, now);
	if (!s->rates.stalled || !(ls = listener_of(s)))
		return false;
	if (ls->rates.stall_gen != gen) {
		ls->rates.stall_gen = gen;
		ls->rates.stall_n = 0;
	}
	return ++ls->rates.stall_n > s->shield.stall_max;
}

/* Reset the longest stalled connection of a listener over its STALL_MAX; false if none. */
static bool stall_cut_one(struct ins *ins)
{
	struct ins_sock *c, *ls, *pick = NULL, *pick_ls = NULL;

	for (c = ins->rates.out_head; c; c = c->rates.onext) {
		if (!c->rates.stalled || (pick && !ins_rates_stalled_longer(&c->rates.out,
									     &pick->rates.out)))
			continue;
		ls = listener_of(c);
		if (ls && ls->rates.stall_gen == ins->rates.gen &&
		    ls->rates.stall_n > c->shield.stall_max) {
			pick = c;
			pick_ls = ls;
		}
	}
	if (!pick)
		return false;
	pick_ls->rates.stall_n--;
	shield_cut(pick, "stalled the app's writer beyond the listener's bound",
		   &ins->rates.n.out_stall);
	return true;
}

static void tick_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct ins *ins = w->data;
	struct ins_sock *s, *next;
	uint64_t now = now_ms(ins), acked;
	bool over = false;
	int outq;

	ins->rates.gen++;
	for (s = ins->rates.out_head; s; s = next) {
		next = s->rates.onext;
		if (s->fd < 0 || !sock_progress(s->fd, &acked, &outq)) {
			list_del(s);
			continue;
		}
		if (!s->pend_len && !outq) {
			list_del(s); /* the client has everything */
			continue;
		}
		ins_rates_out_progress(&s->rates.out, now, acked);
		if (ins_rates_out_too_slow(&s->rates.out, s->shield.min_out_rate, now, acked)) {
			shield_cut(s, "reader under the shield's minimum outbound rate",
				   &ins->rates.n.out_slow);
			continue;
		}
		over |= stall_count(s, now);
	}
	while (over && stall_cut_one(ins))
		;
	if (!ins->rates.out_head)
		ev_timer_stop(loop, w);
}

/* @s holds bytes for its client: measure it. */
static void list_add(struct ins_sock *s)
{
	struct ins_rates_conn *r = &s->rates;
	struct ins_shield_rates *sr = &s->ins->rates;
	uint64_t acked = 0;
	int outq;

	if (r->on_list || s->fd < 0 ||
	    (!s->shield.min_out_rate && !s->shield.out_buffer && !s->shield.stall_max))
		return;
	if (!sock_progress(s->fd, &acked, &outq))
		return;
	ins_rates_out_start(&r->out, now_ms(s->ins), acked);
	r->stalled = false;
	r->oprev = NULL;
	r->onext = sr->out_head;
	if (sr->out_head)
		sr->out_head->rates.oprev = s;
	sr->out_head = s;
	r->on_list = true;
	if (!ev_is_active(&sr->tick))
		ev_timer_again(s->ins->loop, &sr->tick);
}

/**
 * ins_shield_rates_init() - tables and timer, sized from ins.shield_*
 * @ins: the daemon
 * Return: 0 or -ENOMEM
 */
int ins_shield_rates_init(struct ins *ins)
{
	struct ins_shield_rates *sr = &ins->rates;
	uint64_t seed;
	int ret;

	if (getrandom(&seed, sizeof(seed), GRND_NONBLOCK) != (ssize_t)sizeof(seed))
		seed = (uint64_t)time(NULL) ^ (uint64_t)getpid() << 20;
	ret = ins_rtab_init(&sr->src, (uint32_t)ins->cfg->shield_sources, seed);
	if (!ret)
		ret = ins_rtab_init(&sr->pfx, (uint32_t)ins->cfg->shield_prefixes, seed ^ 0x9e3779b97f4a7c15ULL);
	if (ret) {
		ins_shield_rates_fini(ins);
		return ret;
	}
	sr->out_max = (uint64_t)ins->cfg->shield_out_total;
	ev_init(&sr->tick, tick_cb);
	sr->tick.repeat = TICK_S;
	sr->tick.data = ins;
	return 0;
}

/**
 * ins_shield_rates_fini() - free the tables, stop the timer
 * @ins: the daemon
 */
void ins_shield_rates_fini(struct ins *ins)
{
	if (ins->loop)
		ev_timer_stop(ins->loop, &ins->rates.tick);
	ins_rtab_fini(&ins->rates.src);
	ins_rtab_fini(&ins->rates.pfx);
}

/* One table's verdict; *@e is the entry to count in (NULL: untracked or no limit). */
static int limit_check(struct ins_shield_rates *sr, struct ins_rtab *t, uint64_t listener,
		       const struct mw_addr *peer, bool prefix, uint32_t max_conns, uint32_t rate,
		       uint64_t now, struct ins_rent **e)
{
	struct ins_rkey k;

	*e = NULL;
	if (!max_conns && !rate)
		return 0;
	ins_rkey_make(&k, listener, peer, prefix);
	*e = ins_rtab_get(t, &k, now);
	if (!*e) {
		sr->n.untracked++;
		return 0;
	}
	if (rate != (*e)->rate) {
		if (!(*e)->rate) /* first use: a full second's burst */
			(*e)->b.milli = (uint64_t)rate * 1000u;
		(*e)->rate = rate;
	}
	if (max_conns && (*e)->conns >= max_conns)
		return 1;
	if (!ins_bucket_ok(&(*e)->b, rate, now))
		return 2;
	return 0;
}

/**
 * ins_shield_admit() - per-source and per-prefix limits of a new connection's listener
 * @ins:      the daemon
 * @listener: the listener's id
 * @peer:     the client
 * @ref:      set to the entries the connection is counted in (release with
 *            ins_shield_release())
 * Return: true to admit, false to reset (counted and logged)
 */
bool ins_shield_admit(struct ins *ins, uint64_t listener, const struct mw_addr *peer,
		      struct ins_rates_ref *ref)
{
	struct ins_shield_rates *sr = &ins->rates;
	const struct ins_sock *ls = ins_table_find(&ins->socks, listener);
	const struct mw_shield *sh;
	uint64_t now = now_ms(ins), *counter;
	struct ins_rent *se = NULL, *pe = NULL;
	char text[MW_ADDR_STRLEN];
	int sv, pv;

	memset(ref, 0, sizeof(*ref));
	if (!ls)
		return true;
	sh = &ls->shield;
	if (!sh->src_max_conns && !sh->src_rate && !sh->pfx_max_conns && !sh->pfx_rate)
		return true;
	sv = limit_check(sr, &sr->src, listener, peer, false, sh->src_max_conns, sh->src_rate,
			 now, &se);
	pv = sv ? 0
		: limit_check(sr, &sr->pfx, listener, peer, true, sh->pfx_max_conns, sh->pfx_rate,
			      now, &pe);
	if (sv || pv) {
		counter = sv == 1 ? &sr->n.src_conns
			: sv == 2 ? &sr->n.src_rate
			: pv == 1 ? &sr->n.pfx_conns
				  : &sr->n.pfx_rate;
		(*counter)++;
		mw_log_ratelimited(MW_LOG_INFO, "connection from %s reset: %s over its %s (%llu so far)",
				   mw_addr_format(peer, text, sizeof(text)),
				   sv ? "source" : "prefix",
				   (sv ? sv : pv) == 1 ? "concurrent limit" : "connection rate",
				   (unsigned long long)*counter);
		return false;
	}
	if (se) {
		if (sh->src_rate)
			ins_bucket_take(&se->b);
		if (sh->src_max_conns) {
			se->conns++;
			ref->src = se;
		}
	}
	if (pe) {
		if (sh->pfx_rate)
			ins_bucket_take(&pe->b);
		if (sh->pfx_max_conns) {
			pe->conns++;
			ref->pfx = pe;
		}
	}
	return true;
}

/**
 * ins_shield_release() - the connection counted in @ref ended (or was not admitted)
 * @ref: its entries; cleared
 */
void ins_shield_release(struct ins_rates_ref *ref)
{
	if (ref->src && ref->src->conns)
		ref->src->conns--;
	if (ref->pfx && ref->pfx->conns)
		ref->pfx->conns--;
	ref->src = ref->pfx = NULL;
}

/* Cut the slowest reader measured slower than @s; false if there is none. */
static bool cut_slower(struct ins_sock *s)
{
	struct ins_sock *c, *slowest = NULL;

	for (c = s->ins->rates.out_head; c; c = c->rates.onext)
		if (c != s && c->rates.early && ins_rates_slower(&c->rates.out, &s->rates.out) &&
		    (!slowest || ins_rates_slower(&c->rates.out, &slowest->rates.out)))
			slowest = c;
	if (!slowest)
		return false;
	shield_cut(slowest, "slowest reader while the INS's out buffers are full",
		   &s->ins->rates.n.out_cut);
	return true;
}

/**
 * ins_shield_out_more() - @s holds pending bytes: credit what its out buffer may take
 * @s: the socket (after bytes were added to, or sent from, its pending buffer)
 * Return: bytes to credit back to mw-pvm now
 */
uint32_t ins_shield_out_more(struct ins_sock *s)
{
	struct ins_shield_rates *sr = &s->ins->rates;
	struct ins_rates_conn *r = &s->rates;
	uint64_t want;

	if (!s->pend_len)
		return 0;
	list_add(s);
	if (r->early >= s->shield.out_buffer || r->early >= s->pend_len || s->fd < 0)
		return 0;
	want = s->pend_len - r->early;
	if (want > s->shield.out_buffer - r->early)
		want = s->shield.out_buffer - r->early;
	while (sr->out_total + want > sr->out_max && cut_slower(s))
		;
	if (sr->out_total + want > sr->out_max)
		want = sr->out_max > sr->out_total ? sr->out_max - sr->out_total : 0;
	r->early += (uint32_t)want;
	sr->out_total += want;
	return (uint32_t)want;
}

/**
 * ins_shield_out_sent() - @n pending bytes reached the kernel
 * @s: the socket
 * @n: bytes sent from the front of its pending buffer
 * Return: of those, the bytes to credit back now (the others were credited early)
 */
uint32_t ins_shield_out_sent(struct ins_sock *s, uint32_t n)
{
	uint32_t used = n < s->rates.early ? n : s->rates.early;

	s->rates.early -= used;
	s->ins->rates.out_total -= used;
	return n - used;
}

/**
 * ins_shield_out_drop() - @s's pending bytes are dropped (connection lost)
 * @s: the socket
 * Return: how many of them were credited already
 */
uint32_t ins_shield_out_drop(struct ins_sock *s)
{
	uint32_t early = s->rates.early;

	s->ins->rates.out_total -= early;
	s->rates.early = 0;
	list_del(s);
	return early;
}

/**
 * ins_shield_sock_free() - @s is freed: its counts and early bytes go
 * @s: the socket
 */
void ins_shield_sock_free(struct ins_sock *s)
{
	ins_shield_out_drop(s);
	ins_shield_release(&s->rates.ref);
}

/**
 * ins_shield_in_slow() - MIN_IN_RATE for a connection an accept filter holds
 * @ins: the daemon
 * @fd:  the held connection
 * @sh:  its shield
 * @st:  its measure (zeroed when it was first held; the first call starts it)
 *
 * The bytes it sent so far are the kernel's tcpi_bytes_received (nothing is read,
 * and a peek limited to a buffer cannot undercount).  Call on every wake of the
 * held connection and from a timer (a silent client never wakes it), at least
 * once a second.
 * Return: true if it sent less than the shield's min_in_rate over a whole window
 *         (logged): the caller resets it and counts it in ins->rates.n.in_slow
 */
bool ins_shield_in_slow(struct ins *ins, int fd, const struct mw_shield *sh,
			struct ins_rates_in *st)
{
	struct tcp_info ti;
	socklen_t len = sizeof(ti);

	if (!sh->min_in_rate)
		return false;
	memset(&ti, 0, sizeof(ti));
	if (getsockopt(fd, IPPROTO_TCP, TCP_INFO, &ti, &len) < 0 ||
	    len < offsetof(struct tcp_info, tcpi_bytes_received) + sizeof(ti.tcpi_bytes_received))
		return false;
	if (!ins_rates_in_too_slow(st, sh->min_in_rate, now_ms(ins), ti.tcpi_bytes_received))
		return false;
	mw_log_ratelimited(MW_LOG_INFO,
			   "held connection reset: under the shield's minimum inbound rate "
			   "(%llu before)", (unsigned long long)ins->rates.n.in_slow);
	return true;
}

/**
 * ins_shield_rates_status() - the counters, for the STATUS line
 * @ins: the daemon
 * @buf: where
 * @len: its size
 */
void ins_shield_rates_status(const struct ins *ins, char *buf, size_t len)
{
	const struct ins_rates_stats *n = &ins->rates.n;

	snprintf(buf, len,
		 "limits: %llu src conns, %llu src rate, %llu pfx conns, %llu pfx rate, "
		 "%llu untracked; %llu slow readers, %llu cut for buffer, %llu slow senders, "
		 "%llu stalled writers; %llu bytes buffered",
		 (unsigned long long)n->src_conns, (unsigned long long)n->src_rate,
		 (unsigned long long)n->pfx_conns, (unsigned long long)n->pfx_rate,
		 (unsigned long long)n->untracked, (unsigned long long)n->out_slow,
		 (unsigned long long)n->out_cut, (unsigned long long)n->in_slow,
		 (unsigned long long)n->out_stall,
		 (unsigned long long)ins->rates.out_total);
}
