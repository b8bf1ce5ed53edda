/* SPDX-License-Identifier: MIT */
/* channel_backend.h - what channel.c offers its backends (channel_local.c, channel_xen.c); not an API */
#ifndef MW_CHANNEL_BACKEND_H
#define MW_CHANNEL_BACKEND_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/channel.h"

/* The two ring headers share the first page; the data areas start page-aligned. */
#define MW_CHANNEL_HDR_AREA 4096u
/* Smallest ring that carries a maximal frame (header + 64 KiB payload + record header). */
#define MW_CHANNEL_MIN_RING (128u * 1024u)
/* A handshake step that takes longer than this fails (hostile or stuck peer). */
#define MW_CHANNEL_HANDSHAKE_MS 5000

/* Zero the channel with every fd at -1, so close() is safe whatever happens next. */
void mw_channel_reset(struct mw_channel *ch);

/* Return: 0 if @ring_size is usable for a channel, -EINVAL with @err otherwise. */
int mw_channel_check_ring_size(uint32_t ring_size, char *err, size_t errlen);

/**
 * mw_channel_attach() - set up both rings over a mapped region
 * @reset: the creating side (PVM) zeroes the headers; the joiner checks them
 * Return: 0 or -EINVAL / -EBADMSG
 */
int mw_channel_attach(struct mw_channel *ch, void *region, uint32_t ring_size,
		      enum mw_channel_role role, bool reset);

/**
 * mw_channel_negotiate() - check the peer's hello and pick the highest common version
 * Return: the version (>= 1), or -EPROTO with one line in @err
 */
int mw_channel_negotiate(const struct mw_hello *mine, const struct mw_hello *peer,
			 const char *peer_name, char *err, size_t errlen);

#endif /* MW_CHANNEL_BACKEND_H */
