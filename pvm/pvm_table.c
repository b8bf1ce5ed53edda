/* SPDX-License-Identifier: MIT */
/* pvm_table.c - id -> socket hash table, id allocation and credit arithmetic (no I/O) */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "common/siphash.h"
#include "pvm/pvm_table.h"

/*
 * An INS chooses the ids of the connections it accepts (bit 31 set): with a
 * hash it could compute, it would pick ids that share a probe run and make
 * every lookup of every socket walk it.  SipHash with a key of the table's
 * own, drawn at init, leaves it nothing to aim at.
 */
static uint32_t table_hash(const struct pvm_table *t, uint64_t key, uint32_t mask)
{
	return (uint32_t)mw_siphash24(t->k0, t->k1, &key, sizeof(key)) & mask;
}

static int table_alloc(struct pvm_table *t, uint32_t cap)
{
	t->keys = calloc(cap, sizeof(*t->keys));
	t->vals = calloc(cap, sizeof(*t->vals));
	if (!t->keys || !t->vals) {
		free(t->keys);
		free(t->vals);
		t->keys = NULL;
		t->vals = NULL;
		return -ENOMEM;
	}
	t->cap = cap;
	t->count = 0;
	return 0;
}

/**
 * pvm_table_init() - an empty table
 * @t:        the table
 * @cap_hint: expected entries (rounded up; 0 for a small default)
 * Return: 0, -ENOMEM, or -errno of getrandom() (the hash's key)
 */
int pvm_table_init(struct pvm_table *t, uint32_t cap_hint)
{
	uint64_t key[2];
	uint32_t cap = 64;

	if (getrandom(key, sizeof(key), GRND_NONBLOCK) != (ssize_t)sizeof(key))
		return errno ? -errno : -EIO;
	t->k0 = key[0];
	t->k1 = key[1];
	while (cap < cap_hint * 2 && cap < (1u << 30))
		cap <<= 1;
	return table_alloc(t, cap);
}

/**
 * pvm_table_fini() - free the table (not the values)
 * @t: the table
 */
void pvm_table_fini(struct pvm_table *t)
{
	free(t->keys);
	free(t->vals);
	memset(t, 0, sizeof(*t));
}

/**
 * pvm_table_get() - look up @key
 * @t:   the table
 * @key: socket id
 * Return: the value, or NULL
 */
void *pvm_table_get(const struct pvm_table *t, uint64_t key)
{
	uint32_t mask = t->cap - 1, i;

	if (!key || !t->cap)
		return NULL;
	for (i = table_hash(t, key, mask);; i = (i + 1) & mask) {
		if (t->keys[i] == key)
			return t->vals[i];
		if (!t->keys[i])
			return NULL;
	}
}

static void table_insert(struct pvm_table *t, uint64_t key, void *val)
{
	uint32_t mask = t->cap - 1, i;

	for (i = table_hash(t, key, mask); t->keys[i]; i = (i + 1) & mask)
		;
	t->keys[i] = key;
	t->vals[i] = val;
	t->count++;
}

static int table_grow(struct pvm_table *t)
{
	struct pvm_table old = *t;
	uint32_t i;
	int ret;

	if (old.cap >= (1u << 30))
		return -ENOMEM;
	ret = table_alloc(t, old.cap * 2);
	if (ret) {
		*t = old;
		return ret;
	}
	for (i = 0; i < old.cap; i++)
		if (old.keys[i])
			table_insert(t, old.keys[i], old.vals[i]);
	free(old.keys);
	free(old.vals);
	return 0;
}

/**
 * pvm_table_put() - insert a new key
 * @t:   the table
 * @key: socket id, not 0
 * @val: not NULL
 * Return: 0, -EINVAL (key 0 or val NULL), -EEXIST, or -ENOMEM
 */
int pvm_table_put(struct pvm_table *t, uint64_t key, void *val)
{
	int ret;

	if (!key || !val)
		return -EINVAL;
	if (pvm_table_get(t, key))
		return -EEXIST;
	if ((t->count + 1) * 2 > t->cap) {
		ret = table_grow(t);
		if (ret)
			return ret;
	}
	table_insert(t, key, val);
	return 0;
}

/**
 * pvm_table_del() - remove @key
 * @t:   the table
 * @key: socket id
 *
 * Later members of the probe run are shifted back so lookups never need
 * tombstones.
 * Return: the removed value, or NULL if it was absent
 */
void *pvm_table_del(struct pvm_table *t, uint64_t key)
{
	uint32_t mask = t->cap - 1, i, j, home;
	void *val;

	if (!key || !t->cap)
		return NULL;
	for (i = table_hash(t, key, mask); t->keys[i] != key; i = (i + 1) & mask)
		if (!t->keys[i])
			return NULL;
	val = t->vals[i];
	t->count--;
	for (j = (i + 1) & mask; t->keys[j]; j = (j + 1) & mask) {
		home = table_hash(t, t->keys[j], mask);
		/* Move j back into the hole at i unless its home lies in (i, j]. */
		if (((j - home) & mask) >= ((j - i) & mask)) {
			t->keys[i] = t->keys[j];
			t->vals[i] = t->vals[j];
			i = j;
		}
	}
	t->keys[i] = 0;
	t->vals[i] = NULL;
	return val;
}

/**
 * pvm_table_snapshot() - copy up to @max values, for walks that delete
 * @t:   the table
 * @out: array of @max pointers
 * @max: its size
 * Return: number of values copied
 */
size_t pvm_table_snapshot(const struct pvm_table *t, void **out, size_t max)
{
	size_t n = 0;
	uint32_t i;

	for (i = 0; i < t->cap && n < max; i++)
		if (t->keys[i])
			out[n++] = t->vals[i];
	return n;
}

/**
 * pvm_idalloc_init() - a fresh id counter
 * @a:     the counter
 * @space: highest local id (clamped to 1..0x7fffffff)
 */
void pvm_idalloc_init(struct pvm_idalloc *a, uint32_t space)
{
	if (space == 0 || space >= 0x80000000u)
		space = 0x7fffffffu;
	a->space = space;
	a->next = 1;
	a->turns = 0;
}

/**
 * pvm_idalloc() - next free PVM-assigned local id under @base
 * @a:    the counter
 * @t:    the socket table (ids in it are in use)
 * @base: the id with local part 0 (tag, INS id, PVM index)
 *
 * Each id skipped is in the table, so a call costs at most count + 1 probes.
 * Return: the local id (1..space), or 0 when every id of the space is in use
 */
uint32_t pvm_idalloc(struct pvm_idalloc *a, const struct pvm_table *t, uint64_t base)
{
	uint32_t tries, local;

	if (!a->space)
		pvm_idalloc_init(a, 0);
	for (tries = 0; tries < a->space; tries++) {
		local = a->next;
		if (local >= a->space) {
			a->next = 1;
			a->turns++;
		} else {
			a->next = local + 1;
		}
		if (local && !pvm_table_get(t, base | local))
			return local;
		if (tries > t->count)
			break; /* more probes than ids in use: impossible unless corrupt */
	}
	return 0;
}

/**
 * pvm_credit_init() - fresh windows for a new socket
 * @c:         the credit state
 * @tx_window: what the INS granted per socket in its hello
 * @rx_window: what we granted (pvm.socket_window)
 */
void pvm_credit_init(struct pvm_credit *c, uint32_t tx_window, uint32_t rx_window)
{
	memset(c, 0, sizeof(*c));
	c->tx_window = tx_window;
	c->tx_credit = tx_window;
	c->rx_window = rx_window;
}

/**
 * pvm_credit_rx_take() - account @len bytes of DATA from the INS
 * @c:   the credit state
 * @len: payload bytes
 * Return: 0, or -EPROTO if the INS exceeded the credit we granted
 */
int pvm_credit_rx_take(struct pvm_credit *c, uint32_t len)
{
	if (len > c->rx_window - c->rx_outstanding)
		return -EPROTO;
	c->rx_outstanding += len;
	return 0;
}

/**
 * pvm_credit_rx_drained() - @n bytes reached the app; is a MW_CREDIT due?
 * @c:     the credit state
 * @n:     bytes just written to the app
 * @force: ack whatever is unacked (the pending buffer drained)
 * Return: bytes to credit back now (0: not yet)
 */
uint32_t pvm_credit_rx_drained(struct pvm_credit *c, uint32_t n, bool force)
{
	uint32_t ack;

	c->rx_unacked += n;
	if (!c->rx_unacked || (!force && c->rx_unacked < c->rx_window / 4))
		return 0;
	ack = c->rx_unacked;
	c->rx_unacked = 0;
	c->rx_outstanding -= ack;
	return ack;
}

/**
 * pvm_credit_tx_grant() - the INS returned @n bytes of credit
 * @c: the credit state
 * @n: MW_CREDIT bytes
 * Return: 0, or -EPROTO if it returned more than was in flight (or 0)
 */
int pvm_credit_tx_grant(struct pvm_credit *c, uint32_t n)
{
	if (!n || n > c->tx_window - c->tx_credit)
		return -EPROTO;
	c->tx_credit += n;
	return 0;
}

/**
 * pvm_credit_tx_use() - @n bytes were committed as DATA (n <= tx_credit)
 * @c: the credit state
 * @n: bytes
 */
void pvm_credit_tx_use(struct pvm_credit *c, uint32_t n)
{
	c->tx_credit -= n < c->tx_credit ? n : c->tx_credit;
}
