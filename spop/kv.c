/* SPDX-License-Identifier: Apache-2.0 */
/*
 * kv: iterating the KV-LIST payloads of HELLO and DISCONNECT frames
 * (doc/PROTOCOL.md §1.5). Building them is spop_fb_kv() in frame.c.
 *
 * The iterator only ever looks inside [p, end), which the caller sets to one
 * frame's payload: an entry that runs past it is malformed, not incomplete.
 */
#include <stddef.h>
#include <stdint.h>

#include "spop.h"
#include "spop-int.h"

void spop_kv_iter_init(struct spop_kv_iter *it, const uint8_t *p, size_t len)
{
	it->p = p;
	/* (NULL, 0) is an empty list: no arithmetic on a null pointer. */
	it->end = len ? p + len : p;
}

/* On an error the cursor stays put, so every later call repeats it. */
int spop_kv_next(struct spop_kv_iter *it, struct spop_kv *kv)
{
	const uint8_t *q = it->p;
	int n;

	if (q >= it->end)
		return 0;
	n = spop_buf_decode(q, it->end, &kv->name);
	if (n <= 0 || kv->name.len == 0)
		return -SPOP_ERR_INVALID;
	q += n;
	n = spop_data_decode(q, it->end, &kv->value);
	if (n <= 0)
		return -SPOP_ERR_INVALID;
	it->p = q + n;
	return 1;
}
