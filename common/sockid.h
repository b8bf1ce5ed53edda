/* SPDX-License-Identifier: MIT */
/* sockid.h - the 64-bit mwsocket id, laid out as in the original */
#ifndef MW_SOCKID_H
#define MW_SOCKID_H

#include <stdbool.h>
#include <stdint.h>

/*
 * 0x53 ('S') in bits 56-63 | INS id in bits 40-55 | PVM index in bits 32-39 |
 * per-INS local id in bits 0-31.  Local ids chosen by mw-pvm have bit 31 clear;
 * ids the INS assigns itself (accepted connections) have bit 31 set, so both
 * sides allocate without a round trip and never collide.  Each side's counter
 * wraps around at the end of its space and skips ids in use (mw-pvm's is one
 * counter that outlives INS restarts): an id is reused only after a whole turn
 * and once freed (docs/ins-protocol.md section 5).
 */
#define MW_SOCKID_TAG 0x53ULL
#define MW_SOCKID_INS_ASSIGNED 0x80000000U

static inline uint64_t mw_sockid_make(uint16_t ins, uint8_t pvm, uint32_t local)
{
	return MW_SOCKID_TAG << 56 | (uint64_t)ins << 40 | (uint64_t)pvm << 32 | local;
}
static inline bool mw_sockid_valid(uint64_t id) { return id >> 56 == MW_SOCKID_TAG; }
static inline uint16_t mw_sockid_ins(uint64_t id) { return (uint16_t)(id >> 40); }
static inline uint8_t mw_sockid_pvm(uint64_t id) { return (uint8_t)(id >> 32); }
static inline uint32_t mw_sockid_local(uint64_t id) { return (uint32_t)id; }
static inline uint64_t mw_sockid_with_pvm(uint64_t id, uint8_t pvm)
{
	return (id & ~(0xffULL << 32)) | (uint64_t)pvm << 32;
}

#endif /* MW_SOCKID_H */
