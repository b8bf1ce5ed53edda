/* SPDX-License-Identifier: MIT */
/* ins_shield.c - a listener's shield options (MW_SOL_SHIELD): checked, stored, read back */
#include <errno.h>
#include <string.h>

#include "ins/ins.h"

/*
 * Theory of operation
 *
 * mw-pvm sets a listener's shield with MW_OP_SETOPT / MW_OP_GETOPT at level
 * MW_SOL_SHIELD (common/shield.h); every value is a u64, len 8.  The shield is
 * kept in the listener's struct ins_sock and copied into each connection the
 * listener accepts (ins_sock_admit()), so a later change acts on new
 * connections only.  A socket that is not (yet) a listener takes it too: a
 * listener's replica gets its recorded options right after OP_SOCKET, before
 * bind and listen.  A connected socket refuses it (-EOPNOTSUPP).
 *
 * The accept filter (FILTER, DEADLINE_MS, HOLD_MAX, DELIM) is enforced by
 * ins_accf.c; the other options are stored for their enforcement elsewhere.
 */

#define SHIELD_VAL_LEN	  8
#define DEADLINE_MAX_MS	  (3600u * 1000u) /* one hour: longer is not a defence */
#define HOLD_MAX_MAX	  (1u << 20)
#define RATE_MAX	  (1u << 30)  /* B/s */
#define OUT_BUFFER_MAX	  (64u << 20) /* bytes per connection */
#define CONNS_MAX	  (1u << 24)
#define DELIM_COUNT_SHIFT 56
#define DELIM_BYTES	  7 /* the count takes the top byte of the u64 */

/* Upper bound of each option's value, by enum mw_shield_opt. */
static const uint64_t shield_max[MW_SHIELD_OPT_MAX + 1] = {
	[MW_SHIELD_FILTER] = MW_ACCF_MAX,      [MW_SHIELD_DEADLINE_MS] = DEADLINE_MAX_MS,
	[MW_SHIELD_HOLD_MAX] = HOLD_MAX_MAX,   [MW_SHIELD_MIN_IN_RATE] = RATE_MAX,
	[MW_SHIELD_MIN_OUT_RATE] = RATE_MAX,   [MW_SHIELD_OUT_BUFFER] = OUT_BUFFER_MAX,
	[MW_SHIELD_SRC_MAX_CONNS] = CONNS_MAX, [MW_SHIELD_SRC_RATE] = CONNS_MAX,
	[MW_SHIELD_PFX_MAX_CONNS] = CONNS_MAX, [MW_SHIELD_PFX_RATE] = CONNS_MAX,
	[MW_SHIELD_DELIM] = UINT64_MAX, /* checked by shield_delim_set() */
	[MW_SHIELD_STALL_MAX] = CONNS_MAX,
};

/* The u32 field of @sh that option @name is stored in (NULL: FILTER, DELIM). */
static uint32_t *shield_field(struct mw_shield *sh, int name)
{
	switch (name) {
	case MW_SHIELD_DEADLINE_MS:
		return &sh->deadline_ms;
	case MW_SHIELD_HOLD_MAX:
		return &sh->hold_max;
	case MW_SHIELD_MIN_IN_RATE:
		return &sh->min_in_rate;
	case MW_SHIELD_MIN_OUT_RATE:
		return &sh->min_out_rate;
	case MW_SHIELD_OUT_BUFFER:
		return &sh->out_buffer;
	case MW_SHIELD_SRC_MAX_CONNS:
		return &sh->src_max_conns;
	case MW_SHIELD_SRC_RATE:
		return &sh->src_rate;
	case MW_SHIELD_PFX_MAX_CONNS:
		return &sh->pfx_max_conns;
	case MW_SHIELD_PFX_RATE:
		return &sh->pfx_rate;
	case MW_SHIELD_STALL_MAX:
		return &sh->stall_max;
	default:
		return NULL;
	}
}

/*
 * DELIM: bytes low byte first, their count in bits 56-63; 0 clears it.  Bytes
 * past the count must be zero, so a value built for another count is refused
 * rather than cut.
 */
static int shield_delim_set(struct mw_shield *sh, uint64_t v)
{
	unsigned count = (unsigned)(v >> DELIM_COUNT_SHIFT), i;

	if (count > DELIM_BYTES || (count == 0 && v != 0))
		return -EINVAL;
	if (count < DELIM_BYTES && (v & ((1ull << DELIM_COUNT_SHIFT) - 1)) >> (8 * count))
		return -EINVAL;
	memset(sh->delim, 0, sizeof(sh->delim));
	for (i = 0; i < count; i++)
		sh->delim[i] = (uint8_t)(v >> (8 * i));
	sh->delim_len = (uint8_t)count;
	return 0;
}

static uint64_t shield_delim_get(const struct mw_shield *sh)
{
	uint64_t v = (uint64_t)sh->delim_len << DELIM_COUNT_SHIFT;
	unsigned i;

	for (i = 0; i < sh->delim_len && i < DELIM_BYTES; i++)
		v |= (uint64_t)sh->delim[i] << (8 * i);
	return v;
}

/**
 * ins_shield_set() - check and store one shield option
 * @sh:   the shield
 * @name: enum mw_shield_opt
 * @v:    its value
 * Return: 0, -ENOPROTOOPT (no such option) or -EINVAL (out of range)
 */
int ins_shield_set(struct mw_shield *sh, int name, uint64_t v)
{
	uint32_t *field;

	if (name < MW_SHIELD_FILTER || name > MW_SHIELD_OPT_MAX)
		return -ENOPROTOOPT;
	if (name == MW_SHIELD_DELIM)
		return shield_delim_set(sh, v);
	if (v > shield_max[name])
		return -EINVAL;
	if (name == MW_SHIELD_FILTER) {
		sh->filter = (uint8_t)v;
		return 0;
	}
	field = shield_field(sh, name);
	*field = (uint32_t)v;
	return 0;
}

/**
 * ins_shield_get() - one shield option's value
 * @sh:   the shield
 * @name: enum mw_shield_opt
 * @v:    the value
 * Return: 0 or -ENOPROTOOPT
 */
int ins_shield_get(const struct mw_shield *sh, int name, uint64_t *v)
{
	uint32_t *field;

	if (name < MW_SHIELD_FILTER || name > MW_SHIELD_OPT_MAX)
		return -ENOPROTOOPT;
	if (name == MW_SHIELD_FILTER) {
		*v = sh->filter;
		return 0;
	}
	if (name == MW_SHIELD_DELIM) {
		*v = shield_delim_get(sh);
		return 0;
	}
	field = shield_field((struct mw_shield *)sh, name);
	*v = *field;
	return 0;
}

/**
 * ins_shield_opt() - MW_OP_SETOPT / MW_OP_GETOPT at level MW_SOL_SHIELD
 * @s:      the socket: a listener, or one that is not connected yet
 * @name:   enum mw_shield_opt
 * @set:    true for SETOPT
 * @val:    SETOPT: the u64 value
 * @len:    SETOPT: its length (8); GETOPT: the room the PVM asked for (>= 8)
 * @out:    GETOPT: the value (8 bytes)
 * @outlen: GETOPT: set to 8
 * Return: 0, -EOPNOTSUPP (a connection), -ENOPROTOOPT or -EINVAL
 */
int ins_shield_opt(struct ins_sock *s, int name, bool set, const uint8_t *val, uint32_t len,
		   uint8_t *out, uint32_t *outlen)
{
	uint64_t v;
	int ret;

	if (s->state != INS_ST_NEW && s->state != INS_ST_BOUND && s->state != INS_ST_LISTENING)
		return -EOPNOTSUPP;
	if (len < SHIELD_VAL_LEN || (set && len != SHIELD_VAL_LEN))
		return -EINVAL;
	if (set) {
		memcpy(&v, val, sizeof(v));
		return ins_shield_set(&s->shield, name, v);
	}
	ret = ins_shield_get(&s->shield, name, &v);
	if (ret)
		return ret;
	memcpy(out, &v, sizeof(v));
	*outlen = sizeof(v);
	return 0;
}
