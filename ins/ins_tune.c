/* SPDX-License-Identifier: MIT */
/* ins_tune.c - INS-wide socket settings, the option whitelist, blocked addresses, fd limit */
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/cidr.h"

#include "ins/ins.h"

#define CC_AVAILABLE "/proc/sys/net/ipv4/tcp_available_congestion_control"

/*
 * Options the PVM may set or read on an INS socket.  Anything that could reach
 * outside the socket (SO_BINDTODEVICE, SO_MARK, IP_TRANSPARENT, filters) is left
 * out: the app must not steer the INS's network stack beyond its own sockets.
 */
static const struct {
	int level, name;
	bool get_only;
} opt_whitelist[] = {
	{ SOL_SOCKET, SO_REUSEADDR, false },  { SOL_SOCKET, SO_REUSEPORT, false },
	{ SOL_SOCKET, SO_KEEPALIVE, false },  { SOL_SOCKET, SO_LINGER, false },
	{ SOL_SOCKET, SO_SNDBUF, false },     { SOL_SOCKET, SO_RCVBUF, false },
	{ SOL_SOCKET, SO_SNDLOWAT, false },   { SOL_SOCKET, SO_RCVLOWAT, false },
	{ SOL_SOCKET, SO_ERROR, true },	      { SOL_SOCKET, SO_PRIORITY, false },
	{ SOL_SOCKET, SO_SNDTIMEO, false },   { SOL_SOCKET, SO_RCVTIMEO, false },
	{ IPPROTO_TCP, TCP_NODELAY, false },  { IPPROTO_TCP, TCP_CORK, false },
	{ IPPROTO_TCP, TCP_KEEPIDLE, false }, { IPPROTO_TCP, TCP_KEEPINTVL, false },
	{ IPPROTO_TCP, TCP_KEEPCNT, false },  { IPPROTO_TCP, TCP_DEFER_ACCEPT, false },
	{ IPPROTO_TCP, TCP_QUICKACK, false }, { IPPROTO_TCP, TCP_CONGESTION, false },
	{ IPPROTO_TCP, TCP_MAXSEG, false },   { IPPROTO_TCP, TCP_USER_TIMEOUT, false },
	{ IPPROTO_TCP, TCP_FASTOPEN, false }, { IPPROTO_TCP, TCP_NOTSENT_LOWAT, false },
	{ IPPROTO_IPV6, IPV6_V6ONLY, false }, { IPPROTO_IP, IP_TOS, false },
	{ IPPROTO_IP, IP_TTL, false },	      { IPPROTO_IP, IP_FREEBIND, false },
};

/**
 * ins_opt_allowed() - may the PVM touch this option?
 * @level: SOL_SOCKET, IPPROTO_TCP, IPPROTO_IP, IPPROTO_IPV6, MW_SOL_SHIELD
 * @name:  option name
 * @set:   true for setsockopt, false for getsockopt
 * Return: 0, or -ENOPROTOOPT if the option is not on the whitelist (or read-only)
 */
int ins_opt_allowed(int level, int name, bool set)
{
	size_t i;

	if (level == MW_SOL_SHIELD)
		return name >= MW_SHIELD_FILTER && name <= MW_SHIELD_OPT_MAX ? 0 : -ENOPROTOOPT;
	for (i = 0; i < sizeof(opt_whitelist) / sizeof(opt_whitelist[0]); i++)
		if (opt_whitelist[i].level == level && opt_whitelist[i].name == name)
			return set && opt_whitelist[i].get_only ? -ENOPROTOOPT : 0;
	return -ENOPROTOOPT;
}

/**
 * ins_congestion_check() - is @name a congestion control algorithm we can use?
 * @name: algorithm ("cubic"); "" means the kernel default and is always fine
 *
 * It must be listed as available and a TCP socket must accept it (in a network
 * namespace without CAP_NET_ADMIN only the "allowed" ones are).
 * Return: 0, -ENOENT if not available, or the setsockopt error
 */
int ins_congestion_check(const char *name)
{
	char list[512], *tok, *save = NULL;
	bool found = false;
	FILE *f;
	int fd, ret = 0;

	if (!name[0])
		return 0;
	f = fopen(CC_AVAILABLE, "re");
	if (f) {
		if (fgets(list, sizeof(list), f)) {
			for (tok = strtok_r(list, " \t\n", &save); tok;
			     tok = strtok_r(NULL, " \t\n", &save))
				if (!strcmp(tok, name))
					found = true;
		}
		fclose(f);
		if (!found)
			return -ENOENT;
	}
	fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	if (setsockopt(fd, IPPROTO_TCP, TCP_CONGESTION, name, (socklen_t)strlen(name)) < 0)
		ret = -errno;
	close(fd);
	return ret;
}

/**
 * ins_tune_init() - defaults from the config, checked
 * @t:      filled
 * @cfg:    the ins section
 * @err:    one line on failure
 * @errlen: its size
 * Return: 0 or -errno (unusable congestion control)
 */
int ins_tune_init(struct ins_tune *t, const struct mw_ins_config *cfg, char *err, size_t errlen)
{
	int ret;

	memset(t, 0, sizeof(*t));
	snprintf(t->congestion, sizeof(t->congestion), "%s", cfg->congestion_control);
	t->quickack = cfg->quickack;
	t->sndbuf = cfg->sndbuf;
	t->rcvbuf = cfg->rcvbuf;
	ret = ins_congestion_check(t->congestion);
	if (ret)
		snprintf(err, errlen, "ins.congestion_control \"%s\" cannot be used: %s",
			 t->congestion, strerror(-ret));
	return ret;
}

/**
 * ins_tune_apply() - put the INS-wide settings on a new socket
 * @t:  the settings
 * @fd: a TCP socket
 * Return: 0 or the first -errno (the socket stays usable)
 */
int ins_tune_apply(const struct ins_tune *t, int fd)
{
	int one = 1, ret = 0;

	if (t->congestion[0] && setsockopt(fd, IPPROTO_TCP, TCP_CONGESTION, t->congestion,
					   (socklen_t)strlen(t->congestion)) < 0)
		ret = -errno;
	if (t->sndbuf && setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &t->sndbuf, sizeof(int)) < 0 && !ret)
		ret = -errno;
	if (t->rcvbuf && setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &t->rcvbuf, sizeof(int)) < 0 && !ret)
		ret = -errno;
	if (t->quickack && setsockopt(fd, IPPROTO_TCP, TCP_QUICKACK, &one, sizeof(one)) < 0 && !ret)
		ret = -errno;
	return ret;
}

/**
 * ins_tune_set() - apply OP_INS_SET to the defaults for new sockets
 * @t: the settings
 * @o: the checked op
 * Return: 0, -ENOENT (unknown algorithm), -EINVAL (value out of range)
 */
int ins_tune_set(struct ins_tune *t, const struct mw_op_ins_set *o)
{
	int ret;

	switch (o->name) {
	case MW_INS_CONGESTION:
		if (strlen(o->text) >= sizeof(t->congestion))
			return -EINVAL;
		ret = ins_congestion_check(o->text);
		if (ret)
			return ret;
		snprintf(t->congestion, sizeof(t->congestion), "%s", o->text);
		return 0;
	case MW_INS_DELACK:
		if (o->value > 1)
			return -EINVAL;
		t->quickack = o->value == 0;
		return 0;
	case MW_INS_SNDBUF:
	case MW_INS_RCVBUF:
		if (o->value > (1u << 30))
			return -EINVAL;
		if (o->name == MW_INS_SNDBUF)
			t->sndbuf = (int)o->value;
		else
			t->rcvbuf = (int)o->value;
		return 0;
	default:
		return -EINVAL;
	}
}

/**
 * ins_addr_normalize() - the form addresses are compared in
 * @a: zeroed port, scope and pad; ::ffff:a.b.c.d becomes a.b.c.d
 */
void ins_addr_normalize(struct mw_addr *a)
{
	unsigned whole = 0;

	a->port = 0;
	a->pad = 0;
	a->scope_id = 0;
	mw_cidr_unmap(a, &whole);
	if (a->family == 4)
		memset(a->addr + 4, 0, 12);
}

/* Sorted by family, then prefix length (pad: 0 = a whole address), then bytes. */
static int addr_cmp(const struct mw_addr *x, const struct mw_addr *y)
{
	if (x->family != y->family)
		return x->family < y->family ? -1 : 1;
	if (x->pad != y->pad)
		return x->pad < y->pad ? -1 : 1;
	return memcmp(x->addr, y->addr, sizeof(x->addr));
}

/* Index of @a in the sorted set, or where it would go (*@found false). */
static size_t blockset_pos(const struct ins_blockset *b, const struct mw_addr *a, bool *found)
{
	size_t lo = 0, hi = b->n, mid;
	int c;

	*found = false;
	while (lo < hi) {
		mid = lo + (hi - lo) / 2;
		c = addr_cmp(&b->a[mid], a);
		if (!c) {
			*found = true;
			return mid;
		}
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

/*
 * The set's key for @a's first @prefix bits (0 or all of them: the address alone):
 * normalized, the rest zero, the length in pad.  A prefix inside ::ffff:0:0/96 is
 * the IPv4 one it covers.  Return: 0, or -EINVAL (longer than the address, or an
 * IPv6 prefix holding all or part of ::ffff:0:0/96: its IPv4 peers are looked up as
 * IPv4 and would never match it)
 */
static int blockset_key(struct mw_addr *key, const struct mw_addr *a, unsigned prefix)
{
	unsigned full;

	*key = *a;
	if (key->family == 6 && prefix && prefix < 128 &&
	    mw_cidr_v6_reaches_mapped(key->addr, prefix))
		return -EINVAL;
	mw_cidr_unmap(key, &prefix);
	ins_addr_normalize(key);
	full = key->family == 4 ? 32 : 128;
	if (prefix > full)
		return -EINVAL;
	if (prefix == full)
		prefix = 0;
	if (prefix)
		mw_cidr_mask(key->addr, prefix);
	key->pad = (uint8_t)prefix;
	return 0;
}

static uint32_t *blockset_count(struct ins_blockset *b, const struct mw_addr *key)
{
	return &b->prefixes[key->family == 4 ? 0 : 1][key->pad];
}

/**
 * ins_blockset_add() - block an address, or every address of a prefix (idempotent)
 * @b:      the set
 * @a:      address, port ignored
 * @prefix: 0 (or 32 / 128): @a alone; else the addresses sharing its first @prefix bits
 * Return: 0, -EINVAL or -ENOMEM
 */
int ins_blockset_add(struct ins_blockset *b, const struct mw_addr *a, unsigned prefix)
{
	struct mw_addr key, *na;
	size_t pos, ncap;
	bool found;

	if (blockset_key(&key, a, prefix))
		return -EINVAL;
	pos = blockset_pos(b, &key, &found);
	if (found)
		return 0;
	if (b->n == b->cap) {
		ncap = b->cap ? b->cap * 2 : 16;
		na = realloc(b->a, ncap * sizeof(*na));
		if (!na)
			return -ENOMEM;
		b->a = na;
		b->cap = ncap;
	}
	memmove(&b->a[pos + 1], &b->a[pos], (b->n - pos) * sizeof(*b->a));
	b->a[pos] = key;
	b->n++;
	(*blockset_count(b, &key))++;
	return 0;
}

/**
 * ins_blockset_del() - unblock an address or a prefix, as it was blocked
 * @b:      the set
 * @a:      address, port ignored
 * @prefix: as given to ins_blockset_add()
 * Return: 0, -EINVAL, or -ENOENT if it was not blocked
 */
int ins_blockset_del(struct ins_blockset *b, const struct mw_addr *a, unsigned prefix)
{
	struct mw_addr key;
	size_t pos;
	bool found;

	if (blockset_key(&key, a, prefix))
		return -EINVAL;
	pos = blockset_pos(b, &key, &found);
	if (!found)
		return -ENOENT;
	memmove(&b->a[pos], &b->a[pos + 1], (b->n - pos - 1) * sizeof(*b->a));
	b->n--;
	(*blockset_count(b, &key))--;
	return 0;
}

/**
 * ins_blockset_has() - is @a blocked, alone or by a prefix?
 * @b: the set
 * @a: address (any port; v4-mapped v6 matches its v4 form)
 * Return: true if blocked
 */
bool ins_blockset_has(const struct ins_blockset *b, const struct mw_addr *a)
{
	struct mw_addr key, net;
	unsigned fam, p;
	bool found;

	if (!b->n)
		return false;
	key = *a;
	ins_addr_normalize(&key);
	blockset_pos(b, &key, &found);
	fam = key.family == 4 ? 0 : 1;
	for (p = 1; !found && p < (fam ? 128u : 32u); p++) {
		if (!b->prefixes[fam][p])
			continue;
		net = key;
		mw_cidr_mask(net.addr, p);
		net.pad = (uint8_t)p;
		blockset_pos(b, &net, &found);
	}
	return found;
}

/**
 * ins_blockset_fini() - free the set
 * @b: the set
 */
void ins_blockset_fini(struct ins_blockset *b)
{
	free(b->a);
	memset(b, 0, sizeof(*b));
}

/**
 * ins_nofile_raise() - RLIMIT_NOFILE to min(@want, hard limit)
 * @want: ins.nofile
 * @got:  the soft limit in force afterwards
 * Return: 0 or -errno (the limit is unchanged then)
 */
int ins_nofile_raise(int want, long *got)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
		return -errno;
	*got = (long)rl.rlim_cur;
	if (rl.rlim_max != RLIM_INFINITY && (rlim_t)want > rl.rlim_max)
		want = (int)rl.rlim_max;
	if ((rlim_t)want <= rl.rlim_cur)
		return 0;
	rl.rlim_cur = (rlim_t)want;
	if (setrlimit(RLIMIT_NOFILE, &rl) < 0)
		return -errno;
	*got = want;
	return 0;
}
