/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The frame splitter and the frame builder.
 *
 * Covered: every §1.10 frame split whole, after every prefix ("need more",
 * input ending at a guard page), back to back and byte by byte; each length
 * rule decided from the 4 prefix bytes alone (zero, < 7, max, max+1, 2^32-1);
 * missing FIN, type 0, ids that do not fit the frame, unknown types passed
 * through; the builder's cap, sticky errors and no write past the cap.
 * Left out: payload contents (test_spop_hello/notify/ack.c).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "spop.h"
#include "spop-vectors.h"
#include "testutil.h"

struct frame_vec {
	const char *name;
	const char *hex;
	uint8_t type;
	uint64_t sid, fid;
	size_t payload_len;
};

static const struct frame_vec frame_vecs[] = {
	{ "hello-2.6", VEC_HELLO_26, SPOP_FRM_HAPROXY_HELLO, 0, 0, 133 - 11 },
	{ "hello-check", VEC_HELLO_HC, SPOP_FRM_HAPROXY_HELLO, 0, 0, 82 - 11 },
	{ "agent-hello", VEC_AGENT_HELLO, SPOP_FRM_AGENT_HELLO, 0, 0, 68 - 11 },
	{ "notify", VEC_NOTIFY, SPOP_FRM_NOTIFY, 5, 1, 56 - 11 },
	{ "ack-ok", VEC_ACK_OK, SPOP_FRM_ACK, 5, 1, 18 - 11 },
	{ "ack-empty", VEC_ACK_EMPTY, SPOP_FRM_ACK, 5, 1, 0 },
	{ "ack-2490", VEC_ACK_2490, SPOP_FRM_ACK, 249011, 1, 25 - 13 },
	{ "disconnect", VEC_DISCON, SPOP_FRM_AGENT_DISCON, 0, 0, 41 - 11 },
};

#define NVEC (sizeof(frame_vecs) / sizeof(frame_vecs[0]))

static struct tu_guard guard;

static int setup(void **state)
{
	(void)state;
	tu_guard_init(&guard, 1 << 16);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	tu_guard_free(&guard);
	return 0;
}

static void test_frame_vectors_whole(void **state)
{
	uint8_t raw[256], *p;
	struct spop_frame f;
	size_t i, n;

	(void)state;
	for (i = 0; i < NVEC; i++) {
		const struct frame_vec *v = &frame_vecs[i];

		n = tu_hex(raw, sizeof(raw), v->hex);
		p = tu_guard_place(&guard, raw, n);
		memset(&f, 0, sizeof(f));
		assert_int_equal(spop_frame_next(p, n, SPOP_DEFAULT_FRAME_SIZE, &f), (int)n);
		assert_int_equal(f.type, v->type);
		assert_int_equal(f.flags, SPOP_FL_FIN);
		assert_true(f.sid == v->sid);
		assert_true(f.fid == v->fid);
		assert_int_equal(f.payload_len, v->payload_len);
		assert_ptr_equal(f.payload + f.payload_len, p + n);
	}
}

static void test_frame_every_prefix_needs_more(void **state)
{
	uint8_t raw[256], *p;
	struct spop_frame f;
	size_t i, n, k;

	(void)state;
	for (i = 0; i < NVEC; i++) {
		n = tu_hex(raw, sizeof(raw), frame_vecs[i].hex);
		for (k = 0; k < n; k++) {
			p = tu_guard_place(&guard, raw, k);
			assert_int_equal(spop_frame_next(p, k, SPOP_DEFAULT_FRAME_SIZE, &f), 0);
		}
	}
}

/* All vectors in one stream: consumed one by one, whatever the read size. */
static void test_frame_stream_split_anywhere(void **state)
{
	uint8_t stream[1024], *p;
	size_t total = 0, i, chunk;

	(void)state;
	for (i = 0; i < NVEC; i++)
		total += tu_hex(stream + total, sizeof(stream) - total, frame_vecs[i].hex);
	for (chunk = 1; chunk <= total; chunk++) {
		size_t have = 0, off = 0, seen = 0;

		while (off < total) {
			struct spop_frame f;
			int r;

			p = tu_guard_place(&guard, stream + off, have - off);
			r = spop_frame_next(p, have - off, SPOP_DEFAULT_FRAME_SIZE, &f);
			assert_true(r >= 0);
			if (r == 0) {
				assert_true(have < total);
				have = have + chunk > total ? total : have + chunk;
				continue;
			}
			assert_int_equal(f.type, frame_vecs[seen].type);
			seen++;
			off += (size_t)r;
		}
		assert_int_equal(seen, NVEC);
	}
}

/* Status from the 4 length bytes alone, then again with a whole frame. */
static void check_len_status(uint32_t len, uint32_t max, int want)
{
	uint8_t raw[4], *p;
	struct spop_frame f;

	raw[0] = (uint8_t)(len >> 24);
	raw[1] = (uint8_t)(len >> 16);
	raw[2] = (uint8_t)(len >> 8);
	raw[3] = (uint8_t)len;
	p = tu_guard_place(&guard, raw, 4);
	assert_int_equal(spop_frame_next(p, 4, max, &f), want);
}

static void test_frame_length_rules(void **state)
{
	uint8_t *p;
	struct spop_frame f;
	uint32_t len;

	(void)state;
	for (len = 0; len < SPOP_FRAME_MIN_LEN; len++)
		check_len_status(len, SPOP_DEFAULT_FRAME_SIZE, -SPOP_ERR_INVALID);
	check_len_status(7, SPOP_DEFAULT_FRAME_SIZE, 0);
	check_len_status(SPOP_DEFAULT_FRAME_SIZE, SPOP_DEFAULT_FRAME_SIZE, 0);
	check_len_status(SPOP_DEFAULT_FRAME_SIZE + 1, SPOP_DEFAULT_FRAME_SIZE, -SPOP_ERR_TOO_BIG);
	check_len_status(257, 256, -SPOP_ERR_TOO_BIG);
	check_len_status(UINT32_MAX, UINT32_MAX, -SPOP_ERR_TOO_BIG);
	check_len_status(SPOP_MAX_FRAME_SIZE + 1, UINT32_MAX, -SPOP_ERR_TOO_BIG);
	check_len_status(0x80000000u, SPOP_DEFAULT_FRAME_SIZE, -SPOP_ERR_TOO_BIG);

	/* A frame of exactly max bytes is accepted, a max+1 one is not. */
	for (len = 255; len <= 257; len++) {
		uint8_t frame[4 + 257];

		memset(frame, 0, sizeof(frame));
		frame[2] = (uint8_t)(len >> 8);
		frame[3] = (uint8_t)len;
		frame[4] = SPOP_FRM_NOTIFY;
		frame[8] = 1;
		p = tu_guard_place(&guard, frame, 4 + len);
		assert_int_equal(spop_frame_next(p, 4 + len, 256, &f),
		                 len <= 256 ? (int)(4 + len) : -SPOP_ERR_TOO_BIG);
		if (len <= 256)
			assert_int_equal(f.payload_len, len - 7);
	}
}

static void check_frame(const char *hex, int want)
{
	uint8_t raw[64], *p;
	struct spop_frame f;
	size_t n = tu_hex(raw, sizeof(raw), hex);

	p = tu_guard_place(&guard, raw, n);
	assert_int_equal(spop_frame_next(p, n, SPOP_DEFAULT_FRAME_SIZE, &f), want);
}

static void test_frame_header_errors(void **state)
{
	(void)state;
	/* FIN clear: a first fragment. */
	check_frame("00000007 03 00000000 05 01", -SPOP_ERR_FRAG_NOT_SUP);
	check_frame("00000007 03 00000002 05 01", -SPOP_ERR_FRAG_NOT_SUP);
	check_frame("00000007 03 fffffffe 05 01", -SPOP_ERR_FRAG_NOT_SUP);
	/* Type 0: a continuation, with or without FIN, or an abort. */
	check_frame("00000007 00 00000001 05 01", -SPOP_ERR_FRAG_NOT_SUP);
	check_frame("00000007 00 00000003 05 01", -SPOP_ERR_FRAG_NOT_SUP);
	check_frame("00000007 00 00000000 05 01", -SPOP_ERR_FRAG_NOT_SUP);
	/* Ids that do not fit in the frame. */
	check_frame("00000007 03 00000001 f0 80", -SPOP_ERR_INVALID);
	check_frame("00000007 03 00000001 05 f0", -SPOP_ERR_INVALID);
	check_frame("00000008 03 00000001 05 f0 80", -SPOP_ERR_INVALID);
	/* An 11-byte stream-id. */
	check_frame("00000011 03 00000001 f0 80 80 80 80 80 80 80 80 80 00 01",
	            -SPOP_ERR_INVALID);
	/* Ids that do fit, multi-byte ones included. */
	check_frame("00000008 03 00000001 f0 00 01", 12);
	check_frame("00000010 03 00000001 ff f0 fe fe fe fe fe fe fe 0e 00", 20);
}

static void test_frame_unknown_type_and_flags_passed_through(void **state)
{
	uint8_t raw[64], *p;
	struct spop_frame f;
	size_t n;

	(void)state;
	n = tu_hex(raw, sizeof(raw), "0000000a 2a 00000003 00 00 'abc'");
	p = tu_guard_place(&guard, raw, n);
	assert_int_equal(spop_frame_next(p, n, SPOP_DEFAULT_FRAME_SIZE, &f), 14);
	assert_int_equal(f.type, 0x2a);
	assert_int_equal(f.flags, SPOP_FL_FIN | SPOP_FL_ABORT);
	assert_int_equal(f.payload_len, 3);
	assert_memory_equal(f.payload, "abc", 3);
}

/* ---- builder -------------------------------------------------------------- */

static int build_ack_ok(uint8_t *buf, size_t cap)
{
	struct spop_fb b;
	struct spop_data v = { .type = SPOP_DATA_BOOL, .u.b = true };

	spop_fb_begin(&b, buf, cap, SPOP_FRM_ACK, 5, 1);
	spop_fb_set_var(&b, SPOP_SCOPE_TXN, "ok", 2, &v);
	return spop_fb_end(&b);
}

static void test_fb_respects_cap(void **state)
{
	uint8_t want[64], *p;
	size_t n, cap;

	(void)state;
	n = tu_hex(want, sizeof(want), VEC_ACK_OK);
	for (cap = 0; cap < n; cap++) {
		p = tu_guard_room(&guard, cap);
		assert_int_equal(build_ack_ok(p, cap), -SPOP_ERR_TOO_BIG);
	}
	p = tu_guard_room(&guard, n);
	assert_int_equal(build_ack_ok(p, n), (int)n);
	assert_memory_equal(p, want, n);
}

static void test_fb_errors_are_sticky(void **state)
{
	uint8_t buf[64], want[64];
	struct spop_fb b;
	struct spop_data v = { .type = SPOP_DATA_BOOL, .u.b = true };
	size_t n;

	(void)state;
	spop_fb_begin(&b, buf, sizeof(buf), SPOP_FRM_ACK, 5, 1);
	spop_fb_set_var(&b, SPOP_SCOPE_TXN, "bad-name", 8, &v);
	spop_fb_set_var(&b, SPOP_SCOPE_TXN, "ok", 2, &v);
	assert_int_equal(spop_fb_end(&b), -SPOP_ERR_INVALID);

	/* Too big first, then a fitting action: still too big. */
	spop_fb_begin(&b, buf, 14, SPOP_FRM_ACK, 5, 1);
	spop_fb_set_var(&b, SPOP_SCOPE_TXN, "ok", 2, &v);
	spop_fb_unset_var(&b, SPOP_SCOPE_TXN, "o", 1);
	assert_int_equal(spop_fb_end(&b), -SPOP_ERR_TOO_BIG);

	/* A failed action leaves nothing behind: the frame up to it is
	 * intact (checked through the cursor). */
	spop_fb_begin(&b, buf, sizeof(buf), SPOP_FRM_ACK, 5, 1);
	spop_fb_set_var(&b, SPOP_SCOPE_TXN, "ok", 2, &v);
	assert_ptr_equal(b.p, buf + 18);
	spop_fb_set_var(&b, (enum spop_scope)5, "ok", 2, &v);
	assert_ptr_equal(b.p, buf + 18);
	n = tu_hex(want, sizeof(want), VEC_ACK_OK);
	assert_memory_equal(buf + 4, want + 4, n - 4);
}

static void test_fb_kv_rules(void **state)
{
	uint8_t buf[64];
	struct spop_fb b;
	struct spop_data v = { .type = SPOP_DATA_NULL };

	(void)state;
	spop_fb_begin(&b, buf, sizeof(buf), SPOP_FRM_AGENT_HELLO, 0, 0);
	spop_fb_kv(&b, "", 0, &v);
	assert_int_equal(spop_fb_end(&b), -SPOP_ERR_INVALID);
	spop_fb_begin(&b, buf, sizeof(buf), SPOP_FRM_AGENT_HELLO, 0, 0);
	v.type = (enum spop_data_type)12;
	spop_fb_kv(&b, "x", 1, &v);
	assert_int_equal(spop_fb_end(&b), -SPOP_ERR_INVALID);
	/* An empty frame is still a valid 7-byte frame. */
	spop_fb_begin(&b, buf, sizeof(buf), SPOP_FRM_AGENT_HELLO, 0, 0);
	assert_int_equal(spop_fb_end(&b), 11);
	assert_int_equal(buf[3], 7);
}

static void test_fb_large_ids(void **state)
{
	uint8_t buf[64];
	struct spop_fb b;
	struct spop_frame f;
	int n;

	(void)state;
	spop_fb_begin(&b, buf, sizeof(buf), SPOP_FRM_ACK, UINT64_MAX, 264432);
	n = spop_fb_end(&b);
	assert_int_equal(n, 4 + 5 + 10 + 4);
	assert_int_equal(spop_frame_next(buf, (size_t)n, SPOP_DEFAULT_FRAME_SIZE, &f), n);
	assert_true(f.sid == UINT64_MAX);
	assert_true(f.fid == 264432);
	assert_int_equal(f.payload_len, 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_frame_vectors_whole),
		cmocka_unit_test(test_frame_every_prefix_needs_more),
		cmocka_unit_test(test_frame_stream_split_anywhere),
		cmocka_unit_test(test_frame_length_rules),
		cmocka_unit_test(test_frame_header_errors),
		cmocka_unit_test(test_frame_unknown_type_and_flags_passed_through),
		cmocka_unit_test(test_fb_respects_cap),
		cmocka_unit_test(test_fb_errors_are_sticky),
		cmocka_unit_test(test_fb_kv_rules),
		cmocka_unit_test(test_fb_large_ids),
	};

	return cmocka_run_group_tests_name("spop_frame", tests, setup, teardown);
}
