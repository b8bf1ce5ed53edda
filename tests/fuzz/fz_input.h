/* SPDX-License-Identifier: MIT */
/* fz_input.h - read a fuzz input as a stream of small values; past its end everything is 0 */
#ifndef MW_FZ_INPUT_H
#define MW_FZ_INPUT_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

struct fz_in {
	const uint8_t *p;
	size_t left;
};

static inline uint8_t fz_u8(struct fz_in *in)
{
	uint8_t v = 0;

	if (in->left) {
		v = *in->p++;
		in->left--;
	}
	return v;
}

/* One byte as two's complement -128..127 (0..127 stay themselves, 255 is -1). */
static inline int32_t fz_s8(struct fz_in *in)
{
	return (int32_t)(fz_u8(in) ^ 0x80u) - 128;
}

static inline uint16_t fz_u16(struct fz_in *in)
{
	uint16_t lo = fz_u8(in);

	return (uint16_t)(lo | fz_u8(in) << 8);
}

static inline uint32_t fz_u32(struct fz_in *in)
{
	uint32_t lo = fz_u16(in);

	return lo | (uint32_t)fz_u16(in) << 16;
}

static inline uint64_t fz_u64(struct fz_in *in)
{
	uint64_t lo = fz_u32(in);

	return lo | (uint64_t)fz_u32(in) << 32;
}

/* Copy up to @len bytes into @buf (zero-filled beyond the input); Return: bytes taken. */
static inline size_t fz_bytes(struct fz_in *in, void *buf, size_t len)
{
	size_t n = len < in->left ? len : in->left;

	memset(buf, 0, len);
	memcpy(buf, in->p, n);
	in->p += n;
	in->left -= n;
	return n;
}

#endif /* MW_FZ_INPUT_H */
