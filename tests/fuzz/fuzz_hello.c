/* SPDX-License-Identifier: Apache-2.0 */
/*
 * fuzz_hello: the input is a HAPROXY-HELLO payload (a KV list).
 *
 * Checks that a parse either fails with one of its documented statuses or
 * yields a usable result (max-frame-size >= 256, known capability bits
 * only), reads every returned byte, then builds the AGENT-HELLO answer and
 * splits it back. The same bytes also go through the KV iterator and the
 * DISCONNECT parser, which share the list format.
 */
#include <assert.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "spop.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static volatile uint8_t sink;

static void touch(const uint8_t *p, size_t len)
{
	uint8_t acc = 0;
	size_t i;

	for (i = 0; i < len; i++)
		acc ^= p[i];
	sink ^= acc;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint8_t *copy = malloc(size ? size : 1);
	uint8_t out[128];
	struct spop_hello h;
	struct spop_disconnect d;
	struct spop_kv_iter it;
	struct spop_frame f;
	struct spop_kv kv;
	uint32_t mfs;
	int r, n;

	assert(copy);
	if (size)
		memcpy(copy, data, size);

	r = spop_hello_parse(copy, size, &h);
	assert(r == 0 || r == -SPOP_ERR_INVALID || r == -SPOP_ERR_NO_VSN ||
	       r == -SPOP_ERR_BAD_VSN || r == -SPOP_ERR_NO_FRAME_SIZE ||
	       r == -SPOP_ERR_BAD_FRAME_SIZE);
	if (r == 0) {
		assert(h.max_frame_size >= SPOP_MIN_FRAME_SIZE);
		assert((h.caps & ~(SPOP_CAP_PIPELINING | SPOP_CAP_ASYNC |
		                   SPOP_CAP_FRAGMENTATION)) == 0);
		touch(h.engine_id.ptr, h.engine_id.len);
		mfs = spop_negotiate_frame_size(SPOP_DEFAULT_FRAME_SIZE, h.max_frame_size);
		assert(mfs >= SPOP_MIN_FRAME_SIZE && mfs <= SPOP_DEFAULT_FRAME_SIZE);
		n = spop_agent_hello_build(out, sizeof(out), mfs);
		assert(n > 0);
		assert(spop_frame_next(out, (size_t)n, mfs, &f) == n);
		assert(f.type == SPOP_FRM_AGENT_HELLO && f.sid == 0 && f.fid == 0);
	}

	spop_kv_iter_init(&it, copy, size);
	while ((r = spop_kv_next(&it, &kv)) == 1) {
		assert(kv.name.len > 0);
		touch(kv.name.ptr, kv.name.len);
		if (kv.value.type == SPOP_DATA_STR || kv.value.type == SPOP_DATA_BIN)
			touch(kv.value.u.s.ptr, kv.value.u.s.len);
	}
	assert(r == 0 || r == -SPOP_ERR_INVALID);

	if (spop_disconnect_parse(copy, size, &d) == 0) {
		touch(d.message.ptr, d.message.len);
		n = spop_agent_disconnect_build(out, sizeof(out), d.status, NULL);
		assert(n > 0);
	}
	free(copy);
	return 0;
}
