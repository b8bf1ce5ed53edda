/* SPDX-License-Identifier: MIT */
/* linger.h - end a TCP connection with a reset instead of a FIN */
#ifndef MW_COMMON_LINGER_H
#define MW_COMMON_LINGER_H

#include <sys/socket.h>

/**
 * mw_linger_reset() - make the next close() of @fd a reset
 * @fd: a TCP socket
 *
 * SO_LINGER {1, 0}: close() sends RST and frees at once whatever is queued,
 * instead of a FIN behind bytes a peer that does not read would never take.
 * Best effort (a failure leaves the plain close).
 */
static inline void mw_linger_reset(int fd)
{
	struct linger lg = { .l_onoff = 1, .l_linger = 0 };

	(void)setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
}

#endif
