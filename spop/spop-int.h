/* SPDX-License-Identifier: Apache-2.0 */
/*
 * spop-int.h: helpers shared by the files of spop/ and nothing else.
 *
 * Byte-order accessors and the bounded writers the encoders are built from.
 * Every writer takes the end of its buffer and never writes past it. On
 * failure it may have scribbled inside the room it was given, but callers
 * only move their cursor on success, so a failed item is never part of a
 * frame.
 */
#ifndef SPOP_SPOP_INT_H
#define SPOP_SPOP_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "spop.h"

static inline uint32_t spop__get_u32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 |
	       (uint32_t)p[2] << 8 | (uint32_t)p[3];
}

static inline void spop__put_u32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
}

/* Writes <len> raw bytes at <p> if they fit before <end>. Returns the bytes
 * written or -SPOP_ERR_TOO_BIG. */
static inline int spop__put_raw(uint8_t *p, uint8_t *end, const void *src, size_t len)
{
	if ((size_t)(end - p) < len || len > (size_t)INT32_MAX)
		return -SPOP_ERR_TOO_BIG;
	if (len)
		memcpy(p, src, len);
	return (int)len;
}

/* Writes a length-prefixed untyped buffer (names). Same returns. */
int spop__buf_encode(uint8_t *p, uint8_t *end, const void *src, size_t len);

/*
 * Inline fast paths for the builder (ACKs are built once per request): a
 * one-byte varint, a short buffer, a bool or a short string are written
 * here; anything else goes to the out-of-line encoder. Same contracts and
 * returns as spop_varint_encode(), spop__buf_encode(), spop_data_encode().
 */
static inline int spop__varint_put(uint8_t *p, uint8_t *end, uint64_t v)
{
	if (v < 240 && p < end) {
		*p = (uint8_t)v;
		return 1;
	}
	return spop_varint_encode(p, end, v);
}

static inline int spop__buf_put(uint8_t *p, uint8_t *end, const void *src, size_t len)
{
	if (len < 240 && p < end && (size_t)(end - p) > len) {
		*p = (uint8_t)len;
		if (len)
			memcpy(p + 1, src, len);
		return (int)len + 1;
	}
	return spop__buf_encode(p, end, src, len);
}

static inline int spop__data_put(uint8_t *p, uint8_t *end, const struct spop_data *d)
{
	if (p < end) {
		if (d->type == SPOP_DATA_BOOL) {
			*p = (uint8_t)(SPOP_DATA_BOOL | (d->u.b ? SPOP_DATA_FLAG_TRUE : 0));
			return 1;
		}
		if (d->type == SPOP_DATA_STR || d->type == SPOP_DATA_BIN) {
			int n = spop__buf_put(p + 1, end, d->u.s.ptr, d->u.s.len);

			if (n < 0)
				return n;
			*p = (uint8_t)d->type;
			return n + 1;
		}
	}
	return spop_data_encode(p, end, d);
}

/* True if the slice <s> holds exactly the <lit_len> bytes at <lit>: names
 * are compared by exact length, never as prefixes. */
static inline bool spop__name_is(const struct spop_str *s, const char *lit, size_t lit_len)
{
	return s->len == lit_len && memcmp(s->ptr, lit, lit_len) == 0;
}

#define SPOP__NAME_IS(s, lit) spop__name_is((s), (lit), sizeof(lit) - 1)

#endif /* SPOP_SPOP_INT_H */
