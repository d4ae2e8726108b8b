/* SPDX-License-Identifier: Apache-2.0 */
/*
 * typed: untyped length-prefixed buffers (names) and typed data (values),
 * doc/PROTOCOL.md §1.4 and §1.5.
 *
 * Decoders return slices into the caller's buffer. "Incomplete" means the
 * item runs past <end>; callers that hold a whole frame turn it into
 * -SPOP_ERR_INVALID, since nothing more will arrive for that frame.
 */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "spop.h"
#include "spop-int.h"

/* Largest item we report as a byte count; frames are far smaller anyway
 * (SPOP_MAX_FRAME_SIZE), so this only guards the int return. */
#define SPOP_ITEM_MAX ((size_t)INT32_MAX - SPOP_VARINT_MAX_LEN - 1)

int spop_buf_decode(const uint8_t *p, const uint8_t *end, struct spop_str *s)
{
	uint64_t len;
	int n = spop_varint_decode(p, end, &len);

	if (n <= 0)
		return n;
	if (len > (uint64_t)(end - p - n))
		return 0;
	if (len > SPOP_ITEM_MAX)
		return -SPOP_ERR_INVALID;
	s->ptr = p + n;
	s->len = (size_t)len;
	return n + (int)len;
}

int spop__buf_encode(uint8_t *p, uint8_t *end, const void *src, size_t len)
{
	int n, m;

	if (len > SPOP_ITEM_MAX)
		return -SPOP_ERR_TOO_BIG;
	n = spop_varint_encode(p, end, len);
	if (n < 0)
		return n;
	m = spop__put_raw(p + n, end, src, len);
	if (m < 0)
		return m;
	return n + m;
}

int spop_data_decode(const uint8_t *p, const uint8_t *end, struct spop_data *d)
{
	uint8_t tb;
	uint64_t v;
	int n;

	if (p >= end)
		return 0;
	tb = p[0];
	switch (tb & SPOP_DATA_TYPE_MASK) {
	case SPOP_DATA_NULL:
		d->type = SPOP_DATA_NULL;
		return 1;
	case SPOP_DATA_BOOL:
		/* HAProxy: true only when the flag nibble is exactly 0x1. */
		d->type = SPOP_DATA_BOOL;
		d->u.b = (tb & 0xF0) == SPOP_DATA_FLAG_TRUE;
		return 1;
	case SPOP_DATA_INT32:
	case SPOP_DATA_INT64:
		/* Sent sign-extended to 64 bits; an INT32 -1 sent as
		 * 0xFFFFFFFF stays +4294967295, as in HAProxy. */
		n = spop_varint_decode(p + 1, end, &v);
		if (n <= 0)
			return n;
		d->type = (enum spop_data_type)(tb & SPOP_DATA_TYPE_MASK);
		d->u.i = (int64_t)v;
		return n + 1;
	case SPOP_DATA_UINT32:
	case SPOP_DATA_UINT64:
		n = spop_varint_decode(p + 1, end, &v);
		if (n <= 0)
			return n;
		d->type = (enum spop_data_type)(tb & SPOP_DATA_TYPE_MASK);
		d->u.u = v;
		return n + 1;
	case SPOP_DATA_IPV4:
		if (end - p < 5)
			return 0;
		d->type = SPOP_DATA_IPV4;
		memcpy(d->u.ipv4, p + 1, 4);
		return 5;
	case SPOP_DATA_IPV6:
		if (end - p < 17)
			return 0;
		d->type = SPOP_DATA_IPV6;
		memcpy(d->u.ipv6, p + 1, 16);
		return 17;
	case SPOP_DATA_STR:
	case SPOP_DATA_BIN:
		n = spop_buf_decode(p + 1, end, &d->u.s);
		if (n <= 0)
			return n;
		/* HAProxy compares the whole byte with 0x08: a string with
		 * any flag bit set is stored as binary. */
		d->type = tb == SPOP_DATA_STR ? SPOP_DATA_STR : SPOP_DATA_BIN;
		return n + 1;
	default:
		/* 10-15: HAProxy would skip only this byte and misparse the
		 * rest; refusing is the only safe answer. */
		return -SPOP_ERR_INVALID;
	}
}

int spop_data_encode(uint8_t *p, uint8_t *end, const struct spop_data *d)
{
	uint8_t tb;
	uint64_t v;
	int n;

	if ((unsigned)d->type > SPOP_DATA_BIN)
		return -SPOP_ERR_INVALID;
	if (p >= end)
		return -SPOP_ERR_TOO_BIG;
	switch (d->type) {
	case SPOP_DATA_NULL:
		*p = SPOP_DATA_NULL;
		return 1;
	case SPOP_DATA_BOOL:
		*p = (uint8_t)(SPOP_DATA_BOOL | (d->u.b ? SPOP_DATA_FLAG_TRUE : 0));
		return 1;
	case SPOP_DATA_INT32:
	case SPOP_DATA_INT64:
		v = (uint64_t)d->u.i;
		goto put_int;
	case SPOP_DATA_UINT32:
	case SPOP_DATA_UINT64:
		v = d->u.u;
	put_int:
		n = spop_varint_encode(p + 1, end, v);
		if (n < 0)
			return n;
		*p = (uint8_t)d->type;
		return n + 1;
	case SPOP_DATA_IPV4:
		if (end - p < 5)
			return -SPOP_ERR_TOO_BIG;
		*p = SPOP_DATA_IPV4;
		memcpy(p + 1, d->u.ipv4, 4);
		return 5;
	case SPOP_DATA_IPV6:
		if (end - p < 17)
			return -SPOP_ERR_TOO_BIG;
		*p = SPOP_DATA_IPV6;
		memcpy(p + 1, d->u.ipv6, 16);
		return 17;
	case SPOP_DATA_STR:
	case SPOP_DATA_BIN:
		tb = (uint8_t)d->type;
		n = spop__buf_encode(p + 1, end, d->u.s.ptr, d->u.s.len);
		if (n < 0)
			return n;
		*p = tb;
		return n + 1;
	default:
		return -SPOP_ERR_INVALID;
	}
}
