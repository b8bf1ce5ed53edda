/* SPDX-License-Identifier: MIT */
/* channel.h - the PVM<->INS link: two rings in one shared region plus wake-ups */
#ifndef MW_CHANNEL_H
#define MW_CHANNEL_H

#include <stddef.h>
#include <stdint.h>

#include "common/proto.h"
#include "common/ring.h"

/*
 * Theory of operation
 *
 * mw-pvm creates the region (two mw_ring_shared headers, then the PVM->INS data
 * area, then the INS->PVM data area) and one wake-up object per direction, and
 * hands them to the INS at handshake:
 *   local backend (channel_local.c): a memfd and two eventfds passed with
 *     SCM_RIGHTS over a UNIX stream socket; works across network namespaces;
 *   xen backend (channel_xen.c): granted pages (gntalloc/gnttab) and event
 *     channels (evtchn), grant refs and ports published in the keystore.
 * The handshake socket (local) stays open: EOF or HUP on it means the peer died.
 *
 * A channel moves frames (struct mw_frame + payload, see proto.h).  Senders
 * reserve, fill and commit frames, then flush once per batch: flush kicks the
 * peer only if it sleeps.  Receivers take frames one by one; each header is
 * copied out of shared memory and checked structurally (size, type known) before
 * the caller sees it; the caller checks the payload with mw_proto_check().
 */

struct mw_channel;

struct mw_channel_ops {
	const char *name;
	int (*kick)(struct mw_channel *ch);      /* wake the peer */
	int (*ack)(struct mw_channel *ch);       /* drain our wake-up object */
	void (*release)(struct mw_channel *ch);  /* unmap and close */
};

enum mw_channel_role { MW_CHANNEL_PVM, MW_CHANNEL_INS };

struct mw_channel {
	enum mw_channel_role role;
	struct mw_ring tx, rx;
	const struct mw_channel_ops *ops;
	void *region;
	size_t region_len;
	int wait_fd;          /* readable when the peer kicked us (for ev_io) */
	int kick_fd;          /* local backend: the peer's eventfd */
	int sock_fd;          /* local backend: handshake socket, watched for peer death */
	int pipe_fd;          /* local backend, version >= 2: PVM the data pipe's write end,
				 INS its read end (DATA_PIPE); -1 otherwise */
	void *backend;        /* backend-private state (xen handles) */
	struct mw_hello peer; /* what the peer announced */
	uint16_t version;     /* negotiated */
	/* counters */
	uint64_t frames_tx, frames_rx, bytes_tx, bytes_rx, kicks_tx, full_events;
	uint64_t frames_flushed; /* frames_tx at the last flush: no new frame, no kick */
	char dead_reason[128]; /* set once the channel is ended; "" while alive */
};

/* Region size for two rings of @ring_size bytes each (headers included). */
size_t mw_channel_region_size(uint32_t ring_size);

/**
 * mw_channel_local_offer() - PVM side of the local handshake
 * @sock_fd: connected UNIX stream socket from the INS (kept by the channel)
 * @mine:    our hello (ring_size, window, version range ...)
 *
 * Reads the INS hello (blocking, at most 5 s), negotiates the version, creates
 * the memfd region and two eventfds, sends our hello with the fds (SCM_RIGHTS).
 * Return: 0 or -errno, with one line in @err (e.g. "version 3..3 not supported")
 */
int mw_channel_local_offer(struct mw_channel *ch, int sock_fd, const struct mw_hello *mine,
			   char *err, size_t errlen);

/**
 * mw_channel_local_answer() - the second half of mw_channel_local_offer()
 * @peer_hello: the INS hello, already read by the caller
 *
 * For an event loop that reads the hello without blocking (mw-pvm): negotiates,
 * creates the region and eventfds and sends our hello; never waits for the peer.
 * Return: 0 or -errno with one line in @err
 */
int mw_channel_local_answer(struct mw_channel *ch, int sock_fd, const struct mw_hello *mine,
			    const struct mw_hello *peer_hello, char *err, size_t errlen);

/**
 * mw_channel_local_join() - INS side: send our hello, receive the region and fds
 * Return: 0 or -errno with one line in @err
 */
int mw_channel_local_join(struct mw_channel *ch, int sock_fd, const struct mw_hello *mine,
			  char *err, size_t errlen);

void mw_channel_close(struct mw_channel *ch);

/**
 * mw_channel_reserve() - room for one frame with @len payload bytes
 * Return: pointer to the payload, NULL if the ring is full (retry after
 * mw_channel_want_space() and a wake-up) or @len is over MW_FRAME_MAX_PAYLOAD
 */
void *mw_channel_reserve(struct mw_channel *ch, uint16_t type, uint64_t sock, uint32_t len);
/* Publish the reserved frame, its payload trimmed to @len (<= reserved). */
void mw_channel_commit(struct mw_channel *ch, uint32_t len);
/* reserve + copy + commit. Return: 0 or -EAGAIN (full) or -EMSGSIZE. */
int mw_channel_send(struct mw_channel *ch, uint16_t type, uint64_t sock, const void *payload,
		    uint32_t len);
/* Kick the peer if it sleeps; call once after a batch of commits. */
void mw_channel_flush(struct mw_channel *ch);
/* A hint: has the peer announced sleep on our frames (would a flush kick it)? */
bool mw_channel_peer_asleep(struct mw_channel *ch);

/**
 * mw_channel_recv() - the next frame
 * @hdr:     copied out of shared memory and checked (len fits the record, type known)
 * @payload: points into shared memory, valid until mw_channel_done(); the peer can
 *           still write there, so copy control payloads before checking them
 * Return: 1 frame, 0 none, -EBADMSG (channel is dead: see dead_reason)
 */
int mw_channel_recv(struct mw_channel *ch, struct mw_frame *hdr, const void **payload);
void mw_channel_done(struct mw_channel *ch);

/**
 * mw_channel_sleep() - prepare to block on wait_fd
 * Return: true if it is safe to sleep; false if frames (or room we wait for)
 * arrived meanwhile: process them first
 */
bool mw_channel_sleep(struct mw_channel *ch);
/* After wait_fd became readable: drain it and clear the sleeping flag. */
void mw_channel_woken(struct mw_channel *ch);
/* Ask to be kicked when the tx ring has room for @len payload bytes. */
bool mw_channel_want_space(struct mw_channel *ch, uint32_t len);

/* End the channel: record @reason (first one wins); later sends fail with -EPIPE. */
void mw_channel_kill(struct mw_channel *ch, const char *reason);

struct mw_keystore;

/**
 * mw_channel_xen_offer() - PVM side of the Xen handshake (channel_xen.c)
 * @ks:        keystore (xenstore) carrying the keys under /mw/ins/<ins_domid>/
 * @ins_domid: the INS domain; its hello must carry the same ins_id
 * @mine:      our hello (ring_size, window, version range ...)
 *
 * Shares the region's pages and binds an unbound event channel for the INS,
 * publishes grant refs, port and our hello, and waits for the INS to bind.
 * Return: 0 or -errno, with one line in @err
 */
int mw_channel_xen_offer(struct mw_channel *ch, struct mw_keystore *ks, uint16_t ins_domid,
			 const struct mw_hello *mine, char *err, size_t errlen);

/**
 * mw_channel_xen_answer() - PVM side for an event loop: answer an INS hello already read
 * @hello_text: the value of /mw/ins/<ins_domid>/ins_hello (untrusted, parsed strictly)
 *
 * Does what mw_channel_xen_offer() does between the two waits and never
 * blocks; poll mw_channel_xen_confirm() (on keystore events) for the end.
 * Return: 0 or -errno with one line in @err
 */
int mw_channel_xen_answer(struct mw_channel *ch, struct mw_keystore *ks, uint16_t ins_domid,
			  const struct mw_hello *mine, const char *hello_text, char *err,
			  size_t errlen);

/* Return: 1 once the INS wrote vm_evt_chn_is_bound = 1, 0 not yet, -errno (-EPROTO) if bad. */
int mw_channel_xen_confirm(struct mw_channel *ch, struct mw_keystore *ks, uint16_t ins_domid,
			   char *err, size_t errlen);

/**
 * mw_channel_xen_join() - INS side: publish our hello, map the PVM's pages, bind its port
 * @pvm_domid: the PVM's domain; @mine->ins_id is our domid
 * Return: 0 or -errno with one line in @err
 */
int mw_channel_xen_join(struct mw_channel *ch, struct mw_keystore *ks, uint16_t pvm_domid,
			const struct mw_hello *mine, char *err, size_t errlen);

#endif /* MW_CHANNEL_H */
