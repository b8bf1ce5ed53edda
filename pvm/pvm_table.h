/* SPDX-License-Identifier: MIT */
/* pvm_table.h - mw-pvm's pure bookkeeping: id -> socket hash, id allocation, credit windows */
#ifndef MW_PVM_TABLE_H
#define MW_PVM_TABLE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/*
 * Kept free of I/O so tests/unit/test_pvm_table.c can drive every edge.
 *
 * The table is open addressing with linear probing on 64-bit socket ids (id 0
 * is never valid, so 0 marks an empty slot), keyed-hashed (an INS picks the ids
 * of its connections); it grows at 1/2 load, so a probe
 * sequence stays short, and deletes shift later entries back instead of leaving
 * tombstones.  No fixed cap: it is bounded by memory only.
 */
struct pvm_table {
	uint64_t *keys;
	void **vals;
	uint32_t cap; /* power of two */
	uint32_t count;
	uint64_t k0, k1; /* the hash's key (SipHash), random per table */
};

int pvm_table_init(struct pvm_table *t, uint32_t cap_hint);
void pvm_table_fini(struct pvm_table *t);
void *pvm_table_get(const struct pvm_table *t, uint64_t key);
int pvm_table_put(struct pvm_table *t, uint64_t key, void *val);
void *pvm_table_del(struct pvm_table *t, uint64_t key);
size_t pvm_table_snapshot(const struct pvm_table *t, void **out, size_t max);

/*
 * PVM-assigned local ids (bit 31 clear).  One counter for the whole daemon,
 * so an INS restarted with the same id continues where its predecessor
 * stopped instead of starting at 1 again.  It runs 1..space, wraps around and
 * skips ids still in the table: an id is reused only after a whole turn of
 * the counter (the turn is the id's generation) and only once it was freed.
 */
struct pvm_idalloc {
	uint32_t next;	/* next candidate, 1..space */
	uint32_t space; /* highest local id, < 0x80000000 */
	uint64_t turns; /* completed turns (wrap-arounds), for status */
};

void pvm_idalloc_init(struct pvm_idalloc *a, uint32_t space);
uint32_t pvm_idalloc(struct pvm_idalloc *a, const struct pvm_table *t, uint64_t base);

/*
 * Credit windows, both directions of one socket.
 * tx: bytes we may still send to the INS; the INS gives them back (MW_CREDIT)
 *     as they reach its kernel, never more than it was sent.
 * rx: bytes the INS may still send us = rx_window - rx_outstanding; bytes we
 *     wrote to the app are acked in batches (>= window/4, or when forced).
 */
struct pvm_credit {
	uint32_t tx_window;
	uint32_t tx_credit;
	uint32_t rx_window;
	uint32_t rx_outstanding; /* received, not yet credited back */
	uint32_t rx_unacked;	 /* written to the app, not yet credited back */
};

void pvm_credit_init(struct pvm_credit *c, uint32_t tx_window, uint32_t rx_window);
int pvm_credit_rx_take(struct pvm_credit *c, uint32_t len);
uint32_t pvm_credit_rx_drained(struct pvm_credit *c, uint32_t n, bool force);
int pvm_credit_tx_grant(struct pvm_credit *c, uint32_t n);
void pvm_credit_tx_use(struct pvm_credit *c, uint32_t n);

#endif /* MW_PVM_TABLE_H */
