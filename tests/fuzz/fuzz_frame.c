/* SPDX-License-Identifier: Apache-2.0 */
/*
 * fuzz_frame: the input is a byte stream as HAProxy would send it.
 *
 * It is split into frames twice: once with every byte available, once fed in
 * pseudo-random chunks (seeded from the input, so a crash replays) as reads
 * would deliver it. Both runs must see the same frames and the same final
 * status. Each call gets a copy that ends exactly at its allocation, so ASan
 * catches any read past the bytes given. Every frame's payload is then
 * decoded by type (HELLO, NOTIFY, DISCONNECT, KV) and every output byte read.
 */
#include <assert.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "spop.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAX_FRAMES 4096

static volatile uint8_t sink;

static void touch(const uint8_t *p, size_t len)
{
	uint8_t acc = 0;
	size_t i;

	for (i = 0; i < len; i++)
		acc ^= p[i];
	sink ^= acc;
}

static void touch_data(const struct spop_data *d)
{
	if (d->type == SPOP_DATA_STR || d->type == SPOP_DATA_BIN)
		touch(d->u.s.ptr, d->u.s.len);
}

static void decode_payload(const struct spop_frame *f)
{
	struct spop_hello h;
	struct spop_disconnect d;
	struct spop_msg_iter mi;
	struct spop_arg_iter ai;
	struct spop_kv_iter ki;
	struct spop_msg m;
	struct spop_kv kv;
	int r;

	switch (f->type) {
	case SPOP_FRM_HAPROXY_HELLO:
		if (spop_hello_parse(f->payload, f->payload_len, &h) == 0) {
			assert(h.max_frame_size >= SPOP_MIN_FRAME_SIZE);
			touch(h.engine_id.ptr, h.engine_id.len);
		}
		break;
	case SPOP_FRM_HAPROXY_DISCON:
		if (spop_disconnect_parse(f->payload, f->payload_len, &d) == 0)
			touch(d.message.ptr, d.message.len);
		break;
	case SPOP_FRM_NOTIFY:
		spop_msg_iter_init(&mi, f->payload, f->payload_len);
		while (spop_msg_next(&mi, &m) == 1) {
			touch(m.name.ptr, m.name.len);
			spop_arg_iter_init(&ai, &m);
			while ((r = spop_arg_next(&ai, &kv)) == 1) {
				touch(kv.name.ptr, kv.name.len);
				touch_data(&kv.value);
			}
			assert(r == 0);
		}
		break;
	default:
		spop_kv_iter_init(&ki, f->payload, f->payload_len);
		while (spop_kv_next(&ki, &kv) == 1) {
			touch(kv.name.ptr, kv.name.len);
			touch_data(&kv.value);
		}
		break;
	}
}

/* Splits the next frame off an exact-size copy of [p, p + len). */
static int next_frame(const uint8_t *p, size_t len, struct spop_frame *f, size_t *payload_off)
{
	uint8_t *copy = malloc(len ? len : 1);
	int r;

	assert(copy);
	if (len)
		memcpy(copy, p, len);
	r = spop_frame_next(copy, len, SPOP_DEFAULT_FRAME_SIZE, f);
	assert(r <= (int)len);
	if (r > 0) {
		assert(r >= SPOP_LEN_PREFIX + SPOP_FRAME_MIN_LEN);
		assert(f->payload >= copy + 11 && f->payload + f->payload_len == copy + r);
		assert(f->flags & SPOP_FL_FIN);
		assert(f->type != SPOP_FRM_UNSET);
		touch(f->payload, f->payload_len);
		decode_payload(f);
		*payload_off = (size_t)(f->payload - copy);
	}
	free(copy);
	return r;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static int whole[MAX_FRAMES + 1];
	size_t off = 0, have, nw = 0, ns = 0, poff;
	struct spop_frame f;
	uint32_t rng = 2166136261u;
	size_t i;
	int r;

	for (i = 0; i < size; i++)
		rng = (rng ^ data[i]) * 16777619u;

	/* Everything at once. */
	while (nw < MAX_FRAMES) {
		r = next_frame(data + off, size - off, &f, &poff);
		whole[nw++] = r;
		if (r <= 0)
			break;
		off += (size_t)r;
	}

	/* The same stream, a chunk at a time. */
	off = 0;
	have = 0;
	while (ns < nw) {
		r = next_frame(data + off, have - off, &f, &poff);
		if (r == 0 && have < size) {
			rng = rng * 1103515245u + 12345u;
			have += 1 + (rng >> 16) % 64;
			if (have > size)
				have = size;
			continue;
		}
		assert(r == whole[ns]);
		ns++;
		if (r <= 0)
			break;
		off += (size_t)r;
	}
	assert(ns == nw);
	return 0;
}
