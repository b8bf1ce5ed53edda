/* SPDX-License-Identifier: MIT */
/* con_table.c - mw-console's open-socket table, its text rendering, and observations as JSON */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/addr.h"
#include "tools/console/console.h"

/*
 * The table is an array kept sorted by socket id (ids mostly grow, so an
 * insertion is usually an append), searched by bisection: a console under a
 * busy app sees hundreds of thousands of observations a second.
 *
 * Ages must not depend on which clock the server stamps with: a row keeps the
 * server's own span (ts_curr - ts_session_start) of its last observation and
 * the local time that observation arrived; its age is that span plus the local
 * time elapsed since.
 */

/**
 * mwcon_state_name() - a socket state's name, as the STATE column shows it
 * @s: the state
 *
 * Return: "new", "bound", "listen", "estab", or "?" out of range
 */
const char *mwcon_state_name(enum mwcon_state s)
{
	static const char *const n[] = { "new", "bound", "listen", "estab" };

	return (unsigned)s < sizeof(n) / sizeof(n[0]) ? n[s] : "?";
}

/**
 * mwcon_sort_name() - the --sort key of an order
 * @s: the order
 *
 * Return: "id", "rate", "age", "port", "peer", "state", or "?" out of range
 */
const char *mwcon_sort_name(enum mwcon_sort s)
{
	static const char *const n[MWCON_SORT_COUNT] = { "id",	 "rate", "age",
							 "port", "peer", "state" };

	return (unsigned)s < MWCON_SORT_COUNT ? n[s] : "?";
}

/* The state an observation shows a socket in, from the state it was in. */
static enum mwcon_state state_after(enum mwcon_state was, uint16_t obs)
{
	switch (obs) {
	case MW_NF_OBS_BIND:
		return was == MWCON_ST_NEW ? MWCON_ST_BOUND : was;
	case MW_NF_OBS_CONNECT:
	case MW_NF_OBS_RECV:
	case MW_NF_OBS_SEND:
		return was == MWCON_ST_LISTEN ? was : MWCON_ST_ESTAB;
	default:
		return was;
	}
}

/**
 * mwcon_table_clear() - empty the table
 * @t: the table
 */
void mwcon_table_clear(struct mwcon_table *t)
{
	t->n = 0;
	t->overflow = 0;
	t->observed = 0;
	t->closed = 0;
}

/* Index of @id, or of where it would go (with *found false). */
static size_t table_search(const struct mwcon_table *t, uint64_t id, bool *found)
{
	size_t lo = 0, hi = t->n;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (t->socks[mid].id < id)
			lo = mid + 1;
		else
			hi = mid;
	}
	*found = lo < t->n && t->socks[lo].id == id;
	return lo;
}

/* The row of @id, added (zeroed) if absent; NULL when the table is full. */
static struct mwcon_sock *table_upsert(struct mwcon_table *t, uint64_t id)
{
	bool found;
	size_t at = table_search(t, id, &found);

	if (found)
		return &t->socks[at];
	if (t->n == MWCON_TABLE_MAX)
		return NULL;
	memmove(&t->socks[at + 1], &t->socks[at], (t->n - at) * sizeof(t->socks[0]));
	t->n++;
	memset(&t->socks[at], 0, sizeof(t->socks[at]));
	t->socks[at].id = id;
	snprintf(t->socks[at].local, sizeof(t->socks[at].local), "-");
	snprintf(t->socks[at].peer, sizeof(t->socks[at].peer), "-");
	return &t->socks[at];
}

static void table_remove(struct mwcon_table *t, uint64_t id)
{
	bool found;
	size_t at = table_search(t, id, &found);

	if (!found)
		return;
	memmove(&t->socks[at], &t->socks[at + 1], (t->n - at - 1) * sizeof(t->socks[0]));
	t->n--;
	t->closed++;
}

/**
 * mwcon_table_find() - the row of a socket
 * @t: the table
 * @id: socket id
 * Return: the row or NULL
 */
const struct mwcon_sock *mwcon_table_find(const struct mwcon_table *t, uint64_t id)
{
	bool found;
	size_t at = table_search(t, id, &found);

	return found ? &t->socks[at] : NULL;
}

static double ts_seconds(const struct mw_nf_timestamp *ts)
{
	return (double)ts->sec + (double)ts->ns / 1e9;
}

/**
 * mwcon_endpoint_format() - "ip:port" of an endpoint
 * @e: the endpoint
 * @buf: output ("-" when the endpoint is unset or invalid)
 * @len: its size
 */
void mwcon_endpoint_format(const struct mw_nf_endpoint *e, char *buf, size_t len)
{
	struct mw_addr a;

	if (!e->af || mw_nf_endpoint_to_addr(e, &a)) {
		snprintf(buf, len, "-");
		return;
	}
	mw_addr_format(&a, buf, len);
}

static void row_refresh(struct mwcon_sock *s, const struct mw_nf_info *in, double seen,
			bool endpoints)
{
	if (endpoints && in->pvm.af)
		mwcon_endpoint_format(&in->pvm, s->local, sizeof(s->local));
	if (endpoints && in->remote.af)
		mwcon_endpoint_format(&in->remote, s->peer, sizeof(s->peer));
	s->span = ts_seconds(&in->ts_curr) - ts_seconds(&in->ts_session_start);
	if (s->span < 0)
		s->span = 0;
	s->seen = seen;
	s->last_obs = in->obs;
}

/* Bytes/s of the socket, over windows of at least MWCON_RATE_WINDOW seconds. */
static void rate_update(struct mwcon_sock *s, double seen)
{
	uint64_t total = s->bytes_in + s->bytes_out;

	if (!s->win_start || total < s->win_bytes) {
		s->win_start = seen;
		s->win_bytes = total;
		return;
	}
	if (seen - s->win_start < MWCON_RATE_WINDOW)
		return;
	s->rate = (double)(total - s->win_bytes) / (seen - s->win_start);
	s->win_start = seen;
	s->win_bytes = total;
}

/* "0", "950", "12.3K", "4.1M", "1.2G" (bytes/s) */
static void rate_format(double r, char *buf, size_t len)
{
	if (r < 1000)
		snprintf(buf, len, "%.0f", r);
	else if (r < 1e6)
		snprintf(buf, len, "%.1fK", r / 1e3);
	else if (r < 1e9)
		snprintf(buf, len, "%.1fM", r / 1e6);
	else
		snprintf(buf, len, "%.1fG", r / 1e9);
}

/**
 * mwcon_table_apply() - update the table with one observation
 * @t: the table
 * @in: the observation
 * @seen: local time it arrived (seconds; the clock mwcon_table_render() gets)
 * Return: 1 if the table changed, 0 if not
 */
int mwcon_table_apply(struct mwcon_table *t, const struct mw_nf_info *in, double seen)
{
	struct mwcon_sock *s;

	t->observed++;
	if (in->obs == MW_NF_OBS_NONE)
		return 0;
	if (in->obs == MW_NF_OBS_CLOSE) {
		size_t before = t->n;

		table_remove(t, in->sockfd);
		return t->n != before;
	}
	if (in->obs == MW_NF_OBS_ACCEPT && in->extra != in->sockfd) {
		/*
		 * The endpoints are the new connection's: they go on its row, the
		 * listener only gets its last-event column refreshed.
		 */
		s = table_upsert(t, in->extra);
		if (!s) {
			t->overflow++;
			return 0;
		}
		row_refresh(s, in, seen, true);
		s->span = 0;
		s->state = MWCON_ST_ESTAB;
		s = table_upsert(t, in->sockfd);
		if (s) {
			row_refresh(s, in, seen, false);
			s->state = MWCON_ST_LISTEN;
			/*
			 * A listener first seen by its accept (the console connected
			 * after its bind): its own address is where it accepted.
			 */
			if (!strcmp(s->local, "-") && in->pvm.af)
				mwcon_endpoint_format(&in->pvm, s->local, sizeof(s->local));
		}
		return 1;
	}
	s = table_upsert(t, in->sockfd);
	if (!s) {
		t->overflow++;
		return 0;
	}
	row_refresh(s, in, seen, true);
	s->state = state_after(s->state, in->obs);
	s->bytes_in = in->bytes_in;
	s->bytes_out = in->bytes_out;
	rate_update(s, seen);
	return 1;
}

/* "0.4s", "12s", "5m03s", "2h05m", "3d04h" */
static void age_format(double age, char *buf, size_t len)
{
	uint64_t s = age < 0 ? 0 : (uint64_t)age;

	if (age < 10)
		snprintf(buf, len, "%.1fs", age < 0 ? 0.0 : age);
	else if (s < 60)
		snprintf(buf, len, "%" PRIu64 "s", s);
	else if (s < 3600)
		snprintf(buf, len, "%" PRIu64 "m%02" PRIu64 "s", s / 60, s % 60);
	else if (s < 86400)
		snprintf(buf, len, "%" PRIu64 "h%02" PRIu64 "m", s / 3600, s % 3600 / 60);
	else
		snprintf(buf, len, "%" PRIu64 "d%02" PRIu64 "h", s / 86400, s % 86400 / 3600);
}

/* Append one line (cut to @width columns) to buf; keeps *used <= len - 1. */
static void __attribute__((format(printf, 5, 6)))
put_line(char *buf, size_t len, size_t *used, size_t width, const char *fmt, ...)
{
	char line[512];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	if (width && strlen(line) > width)
		line[width] = '\0';
	n = snprintf(buf + *used, len - *used, "%s\n", line);
	if (n < 0)
		return;
	*used += (size_t)n < len - *used ? (size_t)n : len - *used - 1;
}

/* The local port of "ip:port" / "[ip6]:port", 0 for "-". */
static unsigned row_port(const struct mwcon_sock *s)
{
	const char *c = strrchr(s->local, ':');

	return c ? (unsigned)strtoul(c + 1, NULL, 10) : 0;
}

static int cmp_u64(uint64_t a, uint64_t b)
{
	return a < b ? -1 : a > b;
}

/* --sort state: listeners first, then connections, bound, new sockets. */
static unsigned state_rank(enum mwcon_state s)
{
	switch (s) {
	case MWCON_ST_LISTEN: return 0;
	case MWCON_ST_ESTAB: return 1;
	case MWCON_ST_BOUND: return 2;
	default: return 3;
	}
}

/* qsort has no context argument: the table being sorted. */
static const struct mwcon_table *sort_table;

static int row_cmp(const void *pa, const void *pb)
{
	const struct mwcon_sock *a = &sort_table->socks[*(const uint32_t *)pa];
	const struct mwcon_sock *b = &sort_table->socks[*(const uint32_t *)pb];
	int c = 0;

	switch (sort_table->sort) {
	case MWCON_SORT_RATE:
		c = a->rate > b->rate ? -1 : a->rate < b->rate;
		break;
	case MWCON_SORT_AGE: /* the oldest: the earliest start, local clock */
		c = a->seen - a->span < b->seen - b->span ? -1 : a->seen - a->span > b->seen - b->span;
		break;
	case MWCON_SORT_PORT:
		c = cmp_u64(row_port(a), row_port(b));
		break;
	case MWCON_SORT_PEER:
		c = strcmp(a->peer, b->peer);
		break;
	case MWCON_SORT_STATE:
		c = cmp_u64(state_rank(a->state), state_rank(b->state));
		break;
	default:
		break;
	}
	return c ? c : cmp_u64(a->id, b->id);
}

/* The rows to render, filtered and ordered, in t->order; Return: how many. */
static size_t table_view(struct mwcon_table *t)
{
	size_t i, n = 0;

	for (i = 0; i < t->n; i++)
		if (!t->filter || strstr(t->socks[i].local, t->filter) ||
		    strstr(t->socks[i].peer, t->filter) ||
		    !strcmp(mwcon_state_name(t->socks[i].state), t->filter))
			t->order[n++] = (uint32_t)i;
	if (t->sort != MWCON_SORT_ID) {
		sort_table = t;
		qsort(t->order, n, sizeof(t->order[0]), row_cmp);
	}
	return n;
}

/**
 * mwcon_table_render() - the table as text lines, filtered and sorted (by socket id unless t->sort)
 * @t: the table
 * @now: local time, the clock of mwcon_table_apply()'s @seen
 * @rows: at most this many sockets
 * @width: cut lines to this many columns (0: no limit)
 * @buf: output, always NUL-terminated
 * @len: its size (> 0)
 * Return: bytes written
 */
size_t mwcon_table_render(struct mwcon_table *t, double now, size_t rows, size_t width,
			  char *buf, size_t len)
{
	size_t used = 0, i, n = table_view(t);
	char age[32], rate[32];

	buf[0] = '\0';
	put_line(buf, len, &used, width, "%-20s %-21s %-21s %-6s %12s %12s %7s %7s %s", "SOCKET",
		 "LOCAL", "PEER", "STATE", "BYTES_IN", "BYTES_OUT", "RATE/s", "AGE", "LAST");
	for (i = 0; i < n && i < rows; i++) {
		const struct mwcon_sock *s = &t->socks[t->order[i]];

		age_format(s->span + (now - s->seen), age, sizeof(age));
		rate_format(s->rate, rate, sizeof(rate));
		/* Socket ids in hex, the original console's form (its "p" list too). */
		put_line(buf, len, &used, width, "0x%-18" PRIx64 " %-21s %-21s %-6s %12" PRIu64
			 " %12" PRIu64 " %7s %7s %s", s->id, s->local, s->peer,
			 mwcon_state_name(s->state), s->bytes_in, s->bytes_out, rate, age,
			 mw_nf_obs_name(s->last_obs));
	}
	if (n > rows)
		put_line(buf, len, &used, width, "... %zu more", n - rows);
	if (n < t->n)
		put_line(buf, len, &used, width, "(%zu of %zu sockets match --filter %s)", n, t->n,
			 t->filter);
	if (t->overflow)
		put_line(buf, len, &used, width, "(%" PRIu64 " observations of sockets beyond %d not tracked)",
			 t->overflow, MWCON_TABLE_MAX);
	return used;
}

/* An endpoint as a JSON value: "ip:port", or null when unset. */
static void json_endpoint(const struct mw_nf_endpoint *e, char *buf, size_t len)
{
	char text[MW_ADDR_STRLEN];

	if (!e->af) {
		snprintf(buf, len, "null");
		return;
	}
	mwcon_endpoint_format(e, text, sizeof(text));
	snprintf(buf, len, "\"%s\"", text);
}

/**
 * mwcon_json_info() - one observation as one JSON object, no newline
 * @in: the observation
 * @buf: output
 * @len: its size
 * Return: length, or -ENOSPC
 */
int mwcon_json_info(const struct mw_nf_info *in, char *buf, size_t len)
{
	char local[MW_ADDR_STRLEN + 2], peer[MW_ADDR_STRLEN + 2];
	int n;

	/* Endpoint text has no characters JSON must escape ("1.2.3.4:5", "[::1]:5"). */
	json_endpoint(&in->pvm, local, sizeof(local));
	json_endpoint(&in->remote, peer, sizeof(peer));
	n = snprintf(buf, len,
		     "{\"obs\":\"%s\",\"sock\":\"%" PRIu64 "\",\"extra\":\"%" PRIu64 "\","
		     "\"local\":%s,\"peer\":%s,\"bytes_in\":%" PRIu64 ",\"bytes_out\":%" PRIu64 ","
		     "\"ts\":%" PRIu64 ".%09" PRIu64 ",\"start\":%" PRIu64 ".%09" PRIu64 "}",
		     mw_nf_obs_name(in->obs), in->sockfd, in->extra, local, peer, in->bytes_in,
		     in->bytes_out, in->ts_curr.sec, in->ts_curr.ns % 1000000000u,
		     in->ts_session_start.sec, in->ts_session_start.ns % 1000000000u);
	if (n < 0 || (size_t)n >= len)
		return -ENOSPC;
	return n;
}

/**
 * mwcon_info_line() - one observation as a human-readable line
 * @in: the observation
 * @buf: output
 * @len: its size
 */
void mwcon_info_line(const struct mw_nf_info *in, char *buf, size_t len)
{
	char local[MW_ADDR_STRLEN], peer[MW_ADDR_STRLEN];

	mwcon_endpoint_format(&in->pvm, local, sizeof(local));
	mwcon_endpoint_format(&in->remote, peer, sizeof(peer));
	if (in->obs == MW_NF_OBS_ACCEPT)
		snprintf(buf, len, "%-7s sock %" PRIu64 " new %" PRIu64 " %s <- %s",
			 mw_nf_obs_name(in->obs), in->sockfd, in->extra, local, peer);
	else
		snprintf(buf, len, "%-7s sock %" PRIu64 " %s <-> %s in %" PRIu64 " out %" PRIu64,
			 mw_nf_obs_name(in->obs), in->sockfd, local, peer, in->bytes_in,
			 in->bytes_out);
}
