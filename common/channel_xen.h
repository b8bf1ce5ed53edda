/* SPDX-License-Identifier: MIT */
/* channel_xen.h - pure helpers of the Xen channel backend (keys, grant ref lists, hellos), exported for tests */
#ifndef MW_CHANNEL_XEN_H
#define MW_CHANNEL_XEN_H

#include <stddef.h>
#include <stdint.h>

#include "common/proto.h"

/*
 * Keys under /mw/ins/<ins domid>/ (the INS id is its domid on Xen):
 *   ins_hello             INS  its hello (mw_xen_hello_encode)
 *   gnt_ref_<n>, n = 1..  PVM  up to 64 grant refs, lowercase hex, space-separated,
 *                              the last one followed by ':' (as in the original)
 *   gnt_ref_chunks        PVM  number of gnt_ref_<n> keys (decimal)
 *   vm_evt_chn_prt        PVM  its unbound event-channel port (decimal)
 *   pvm_hello             PVM  its reply; written last, so its presence means
 *                              everything above is there (version 0..0: refused)
 *   vm_evt_chn_is_bound   INS  "1" once it mapped the pages and bound the port
 */
#define MW_XEN_PAGE_SIZE 4096u
#define MW_XEN_REFS_PER_KEY 64u
/* Grant tables are small (Xen's default is a few thousand entries): rings up to 8 MiB. */
#define MW_XEN_MAX_RING (8u * 1024u * 1024u)
#define MW_XEN_MAX_PAGES (1u + 2u * (MW_XEN_MAX_RING / MW_XEN_PAGE_SIZE))
/* "ffffffff " per ref, ':' instead of the last space, NUL. */
#define MW_XEN_CHUNK_MAX (MW_XEN_REFS_PER_KEY * 9u + 1u)
/* Nine fields: "%08x %u %u %u %u %u %u %u %d". */
#define MW_XEN_HELLO_MAX 96u

/**
 * mw_xen_page_count() - pages granted for a channel with rings of @ring_size bytes
 * @ring_size: bytes per direction
 * Return: pages of mw_channel_region_size(@ring_size), or 0 if @ring_size is not
 * a valid channel ring size or needs more than MW_XEN_MAX_PAGES pages
 */
uint32_t mw_xen_page_count(uint32_t ring_size);

/* Number of gnt_ref_<n> keys for @nrefs refs. */
uint32_t mw_xen_chunk_count(uint32_t nrefs);

/**
 * mw_xen_key() - "/mw/ins/<domid>/<name>"
 * Return: 0, or -ENAMETOOLONG if it does not fit @buflen (or MW_KEY_MAX)
 */
int mw_xen_key(char *buf, size_t buflen, uint16_t domid, const char *name);

/* "/mw/ins/<domid>/gnt_ref_<n>" (n counts from 1).  Return: 0 or -ENAMETOOLONG. */
int mw_xen_chunk_key(char *buf, size_t buflen, uint16_t domid, uint32_t n);

/**
 * mw_xen_refs_encode() - one gnt_ref_<n> value: "1a 1b 1c:"
 * @refs:   @n grant refs
 * @n:      1..MW_XEN_REFS_PER_KEY
 * Return: length written (NUL-terminated), -EINVAL for a bad @n, -ENOSPC if
 * @buflen is too small
 */
int mw_xen_refs_encode(const uint32_t *refs, uint32_t n, char *buf, size_t buflen);

/**
 * mw_xen_refs_decode() - parse one gnt_ref_<n> value, strictly
 * @s:   the value: 1..64 lowercase hex refs (1..8 digits), single spaces between,
 *       ':' after the last and nothing after it
 * @refs: where the refs go
 * @max:  room in @refs
 * Return: number of refs, -EINVAL for anything malformed, -E2BIG if more than
 * @max or MW_XEN_REFS_PER_KEY refs
 */
int mw_xen_refs_decode(const char *s, uint32_t *refs, uint32_t max);

/* Text form of a hello for the keystore.  Return: length or -ENOSPC. */
int mw_xen_hello_encode(const struct mw_hello *h, char *buf, size_t buflen);

/**
 * mw_xen_hello_decode() - parse a hello written by mw_xen_hello_encode(), strictly
 * Return: 0 or -EINVAL (wrong field count, non-digits, out of range)
 */
int mw_xen_hello_decode(const char *s, struct mw_hello *h);

/**
 * mw_xen_open_error() - one line for a Xen device that cannot be opened
 * @dev:  "/dev/xen/gntalloc", "/dev/xen/gntdev" or "/dev/xen/evtchn"
 * @err:  errno from the open (0 is taken as ENOENT)
 * Return: -@err
 */
int mw_xen_open_error(const char *dev, int err, char *buf, size_t buflen);

/* Highest domid a guest can have (DOMID_FIRST_RESERVED - 1). */
#define MW_XEN_DOMID_MAX 0x7fefu
#define MW_XEN_NAME_MAX 32u

/**
 * mw_xen_parse_ins_key() - split a changed key under /mw/ins (a watch event), strictly
 * @key:     "/mw/ins/<domid>" or "/mw/ins/<domid>/<name>" (a guest may make anything
 *           below its own directory: nothing else is accepted)
 * @domid:   1..MW_XEN_DOMID_MAX, decimal without leading zeros
 * @name:    the last component ("" for the directory itself), at most
 *           MW_XEN_NAME_MAX - 1 bytes of [a-z0-9_]
 * @namelen: room in @name (at least MW_XEN_NAME_MAX)
 * Return: 0 or -EINVAL (another key, a deeper one, a bad domid or name)
 */
int mw_xen_parse_ins_key(const char *key, uint16_t *domid, char *name, size_t namelen);

struct mw_keystore;

/* Write gnt_ref_1..n then gnt_ref_chunks under /mw/ins/<dom>/.  Return: 0 or -errno. */
int mw_xen_publish_refs(struct mw_keystore *ks, uint16_t dom, const uint32_t *refs,
			uint32_t nrefs);

/**
 * mw_xen_read_refs() - read back exactly @nrefs refs published for @dom
 * Return: 0, or -EPROTO with one line in @err (chunk count wrong or missing,
 * a chunk missing or malformed, too few or too many refs)
 */
int mw_xen_read_refs(struct mw_keystore *ks, uint16_t dom, uint32_t *refs, uint32_t nrefs,
		     char *err, size_t errlen);

#endif /* MW_CHANNEL_XEN_H */
