/* SPDX-License-Identifier: MIT */
/* sockframe.h - a socket record as a header-only frame, so MAPI functions run over it */
#ifndef MW_FLOWD_SOCKFRAME_H
#define MW_FLOWD_SOCKFRAME_H

#include <stddef.h>
#include <stdint.h>

#define FL_SOCKFRAME_MAX (14 + 40 + 20) /* Ethernet, IPv6, TCP */

size_t fl_sockframe(uint8_t *buf, const uint8_t src[16], uint16_t sport, const uint8_t dst[16],
		    uint16_t dport, uint8_t tcp_flags);

#endif /* MW_FLOWD_SOCKFRAME_H */
