/* SPDX-License-Identifier: Apache-2.0 */
/*
 * varint: HAProxy's "peers" variable-length integer (doc/PROTOCOL.md §1.3).
 *
 * HOW IT WORKS. This is not LEB128. Values below 240 are one byte. Larger
 * values start with 0xF0 | (v & 0x0F) and go on with 7-bit groups of
 * (v - 240) >> 4, each group but the last flagged with 0x80; every group is
 * taken net of the 128 the previous flag bit already stood for. The decoder
 * therefore adds each continuation byte *raw*, its 0x80 bit included, at
 * shifts 4, 11, 18, ... and stops after the first byte below 0x80.
 *
 * WHY THE CAP. HAProxy's decoder has no length limit. Ten bytes hold any
 * uint64 (2^64-1 is ff f0 fe fe fe fe fe fe fe 0e), so an eleventh byte, or a
 * tenth whose bits fall off the top, can only be garbage and is refused
 * instead of being shifted into undefined behaviour.
 */
#include <stddef.h>
#include <stdint.h>

#include "spop.h"
#include "spop-int.h"

int spop_varint_decode(const uint8_t *p, const uint8_t *end, uint64_t *v)
{
	uint64_t val, add;
	unsigned shift = 4;
	size_t avail, i;

	if (p >= end)
		return 0;
	val = p[0];
	if (val < 240) {
		*v = val;
		return 1;
	}
	avail = (size_t)(end - p);
	for (i = 1; i < SPOP_VARINT_MAX_LEN; i++) {
		uint8_t b;

		if (i >= avail)
			return 0;
		b = p[i];
		/* Shifts reach 60 at the tenth byte: refuse bits that would
		 * fall off the top, and any carry out of the sum. */
		if (shift > 56 && (b >> (64 - shift)) != 0)
			return -SPOP_ERR_INVALID;
		add = (uint64_t)b << shift;
		if (val + add < val)
			return -SPOP_ERR_INVALID;
		val += add;
		if (b < 0x80) {
			*v = val;
			return (int)(i + 1);
		}
		shift += 7;
	}
	return -SPOP_ERR_INVALID;
}

size_t spop_varint_len(uint64_t v)
{
	size_t n = 2;

	if (v < 240)
		return 1;
	v = (v - 240) >> 4;
	while (v >= 0x80) {
		n++;
		v = (v - 0x80) >> 7;
	}
	return n;
}

int spop_varint_encode(uint8_t *p, uint8_t *end, uint64_t v)
{
	size_t n = spop_varint_len(v);
	uint8_t *q = p;

	if (p > end || (size_t)(end - p) < n)
		return -SPOP_ERR_TOO_BIG;
	if (v < 240) {
		*q = (uint8_t)v;
		return 1;
	}
	*q++ = (uint8_t)(0xF0 | (v & 0x0F));
	v = (v - 240) >> 4;
	while (v >= 0x80) {
		*q++ = (uint8_t)((v & 0x7F) | 0x80);
		v = (v - 0x80) >> 7;
	}
	*q = (uint8_t)v;
	return (int)n;
}
