/* SPDX-License-Identifier: Apache-2.0 */
/*
 * fuzz_notify: the input is a NOTIFY payload (a list of messages).
 *
 * Iterates messages and arguments, reads every byte they point at, and
 * checks the iterator contracts: slices stay inside the input, an accepted
 * message hands out exactly NB-ARGS arguments without error, and an error
 * repeats instead of advancing. Each argument value is re-encoded and
 * decoded again and must come back equal, and is echoed into an ACK built
 * under a cap that must hold.
 */
#include <assert.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "spop.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define ACK_CAP 512

static volatile uint8_t sink;

static void touch(const uint8_t *p, size_t len)
{
	uint8_t acc = 0;
	size_t i;

	for (i = 0; i < len; i++)
		acc ^= p[i];
	sink ^= acc;
}

static void in_range(const uint8_t *lo, const uint8_t *hi, const struct spop_str *s)
{
	if (s->len)
		assert(s->ptr >= lo && s->ptr + s->len <= hi);
	touch(s->ptr, s->len);
}

static void value_roundtrip(const struct spop_data *v)
{
	uint8_t buf[64];
	uint8_t *big = NULL, *p = buf;
	size_t cap = sizeof(buf);
	struct spop_data w;
	int n;

	if ((v->type == SPOP_DATA_STR || v->type == SPOP_DATA_BIN) && v->u.s.len > 32) {
		cap = v->u.s.len + 16;
		big = malloc(cap);
		assert(big);
		p = big;
	}
	n = spop_data_encode(p, p + cap, v);
	assert(n > 0);
	assert(spop_data_decode(p, p + n, &w) == n);
	assert(w.type == v->type);
	switch (v->type) {
	case SPOP_DATA_BOOL:
		assert(w.u.b == v->u.b);
		break;
	case SPOP_DATA_INT32:
	case SPOP_DATA_INT64:
		assert(w.u.i == v->u.i);
		break;
	case SPOP_DATA_UINT32:
	case SPOP_DATA_UINT64:
		assert(w.u.u == v->u.u);
		break;
	case SPOP_DATA_IPV4:
		assert(memcmp(w.u.ipv4, v->u.ipv4, 4) == 0);
		break;
	case SPOP_DATA_IPV6:
		assert(memcmp(w.u.ipv6, v->u.ipv6, 16) == 0);
		break;
	case SPOP_DATA_STR:
	case SPOP_DATA_BIN:
		assert(w.u.s.len == v->u.s.len);
		assert(w.u.s.len == 0 || memcmp(w.u.s.ptr, v->u.s.ptr, w.u.s.len) == 0);
		break;
	case SPOP_DATA_NULL:
		break;
	}
	free(big);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint8_t *copy = malloc(size ? size : 1), *ack = malloc(ACK_CAP);
	const uint8_t *end;
	struct spop_msg_iter mi;
	struct spop_arg_iter ai;
	struct spop_fb b;
	struct spop_msg m, m2;
	struct spop_kv a;
	unsigned seen;
	int r, n;

	assert(copy && ack);
	if (size)
		memcpy(copy, data, size);
	end = copy + size;

	spop_fb_begin(&b, ack, ACK_CAP, SPOP_FRM_ACK, 1, 1);
	spop_msg_iter_init(&mi, copy, size);
	while ((r = spop_msg_next(&mi, &m)) == 1) {
		in_range(copy, end, &m.name);
		assert(m.nb_args <= 255);
		assert(m.args >= copy && m.args <= m.args_end && m.args_end <= end);
		spop_arg_iter_init(&ai, &m);
		seen = 0;
		while ((r = spop_arg_next(&ai, &a)) == 1) {
			seen++;
			in_range(m.args, m.args_end, &a.name);
			if (a.value.type == SPOP_DATA_STR || a.value.type == SPOP_DATA_BIN)
				in_range(m.args, m.args_end, &a.value.u.s);
			value_roundtrip(&a.value);
			spop_fb_set_var(&b, SPOP_SCOPE_TXN, "arg", 3, &a.value);
		}
		assert(r == 0);
		assert(seen == m.nb_args);
		assert(ai.p == m.args_end);
	}
	assert(r == 0 || r == -SPOP_ERR_INVALID);
	if (r < 0)
		assert(spop_msg_next(&mi, &m2) == r);

	n = spop_fb_end(&b);
	assert(n == -SPOP_ERR_TOO_BIG || (n >= 11 && n <= ACK_CAP));
	free(ack);
	free(copy);
	return 0;
}
