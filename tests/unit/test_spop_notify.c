/* SPDX-License-Identifier: Apache-2.0 */
/*
 * NOTIFY iteration: messages and their arguments as slices of the frame.
 *
 * Covered: the §1.10 NOTIFY; an empty NOTIFY; several messages; unnamed
 * arguments and every value type; every truncation of a payload, with the
 * payload ending at a guard page; NB-ARGS beyond the payload; a string
 * longer than the frame; an unknown type nibble; a missing NB-ARGS byte;
 * errors that repeat instead of advancing.
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

static struct tu_guard guard;

static int setup(void **state)
{
	(void)state;
	tu_guard_init(&guard, 4096);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	tu_guard_free(&guard);
	return 0;
}

static bool str_is(const struct spop_str *s, const char *lit)
{
	return s->len == strlen(lit) && memcmp(s->ptr, lit, s->len) == 0;
}

static void test_notify_vector(void **state)
{
	static const char *const names[] = { "api_key", "key", "path" };
	static const char *const vals[] = { "abc", "xyz", "/foo" };
	uint8_t raw[128], *p;
	struct spop_frame f;
	struct spop_msg_iter mi;
	struct spop_arg_iter ai;
	struct spop_msg m;
	struct spop_kv a;
	size_t n;
	int i;

	(void)state;
	n = tu_hex(raw, sizeof(raw), VEC_NOTIFY);
	p = tu_guard_place(&guard, raw, n);
	assert_int_equal(spop_frame_next(p, n, SPOP_DEFAULT_FRAME_SIZE, &f), (int)n);
	assert_int_equal(f.type, SPOP_FRM_NOTIFY);
	assert_true(f.sid == 5 && f.fid == 1);
	spop_msg_iter_init(&mi, f.payload, f.payload_len);
	assert_int_equal(spop_msg_next(&mi, &m), 1);
	assert_true(str_is(&m.name, "check-auth"));
	assert_int_equal(m.nb_args, 3);
	assert_ptr_equal(m.args_end, p + n);
	spop_arg_iter_init(&ai, &m);
	for (i = 0; i < 3; i++) {
		assert_int_equal(spop_arg_next(&ai, &a), 1);
		assert_true(str_is(&a.name, names[i]));
		assert_int_equal(a.value.type, SPOP_DATA_STR);
		assert_true(str_is(&a.value.u.s, vals[i]));
	}
	assert_int_equal(spop_arg_next(&ai, &a), 0);
	assert_int_equal(spop_arg_next(&ai, &a), 0);
	assert_int_equal(spop_msg_next(&mi, &m), 0);
	assert_int_equal(spop_msg_next(&mi, &m), 0);
}

static void test_notify_empty(void **state)
{
	uint8_t raw[16], *p;
	struct spop_frame f;
	struct spop_msg_iter mi;
	struct spop_msg m;
	size_t n;

	(void)state;
	n = tu_hex(raw, sizeof(raw), "00000007 03 00000001 05 01");
	p = tu_guard_place(&guard, raw, n);
	assert_int_equal(spop_frame_next(p, n, SPOP_DEFAULT_FRAME_SIZE, &f), (int)n);
	assert_int_equal(f.payload_len, 0);
	spop_msg_iter_init(&mi, f.payload, f.payload_len);
	assert_int_equal(spop_msg_next(&mi, &m), 0);
}

#define NOTIFY_MULTI \
	"0a'check-auth' 02" \
	" 00 06 7f000001" \
	" 03'len' 04 f0 01" \
	"07'keyauth' 00" \
	"02'm3' 09" \
	" 00 00" \
	" 01'b' 11" \
	" 01'c' 01" \
	" 01'd' 02 ff f0 fe fe fe fe fe fe fe 0e" \
	" 01'e' 03 ff f0 fe fe 7e" \
	" 01'f' 05 ff f0 fe fe fe fe fe fe fe 0e" \
	" 01'g' 07 20010db8000000000000000000000001" \
	" 01'h' 09 02 00ff" \
	" 01'i' 18 00"

static void test_notify_several_messages_every_type(void **state)
{
	uint8_t raw[256], *p;
	struct spop_msg_iter mi;
	struct spop_arg_iter ai;
	struct spop_msg m;
	struct spop_kv a;
	size_t n;

	(void)state;
	n = tu_hex(raw, sizeof(raw), NOTIFY_MULTI);
	p = tu_guard_place(&guard, raw, n);
	spop_msg_iter_init(&mi, p, n);

	assert_int_equal(spop_msg_next(&mi, &m), 1);
	assert_true(str_is(&m.name, "check-auth"));
	spop_arg_iter_init(&ai, &m);
	assert_int_equal(spop_arg_next(&ai, &a), 1);
	assert_int_equal(a.name.len, 0);
	assert_int_equal(a.value.type, SPOP_DATA_IPV4);
	assert_memory_equal(a.value.u.ipv4, "\x7f\0\0\x01", 4);
	assert_int_equal(spop_arg_next(&ai, &a), 1);
	assert_int_equal(a.value.type, SPOP_DATA_INT64);
	assert_true(a.value.u.i == 256);
	assert_int_equal(spop_arg_next(&ai, &a), 0);

	assert_int_equal(spop_msg_next(&mi, &m), 1);
	assert_true(str_is(&m.name, "keyauth"));
	assert_int_equal(m.nb_args, 0);
	spop_arg_iter_init(&ai, &m);
	assert_int_equal(spop_arg_next(&ai, &a), 0);

	assert_int_equal(spop_msg_next(&mi, &m), 1);
	assert_int_equal(m.nb_args, 9);
	spop_arg_iter_init(&ai, &m);
	assert_int_equal(spop_arg_next(&ai, &a), 1);
	assert_int_equal(a.value.type, SPOP_DATA_NULL);
	assert_int_equal(spop_arg_next(&ai, &a), 1);
	assert_true(a.value.type == SPOP_DATA_BOOL && a.value.u.b);
	assert_int_equal(spop_arg_next(&ai, &a), 1);
	assert_true(a.value.type == SPOP_DATA_BOOL && !a.value.u.b);
	assert_int_equal(spop_arg_next(&ai, &a), 1);
	assert_true(a.value.type == SPOP_DATA_INT32 && a.value.u.i == -1);
	assert_int_equal(spop_arg_next(&ai, &a), 1);
	assert_true(a.value.type == SPOP_DATA_UINT32 && a.value.u.u == UINT32_MAX);
	assert_int_equal(spop_arg_next(&ai, &a), 1);
	assert_true(a.value.type == SPOP_DATA_UINT64 && a.value.u.u == UINT64_MAX);
	assert_int_equal(spop_arg_next(&ai, &a), 1);
	assert_int_equal(a.value.type, SPOP_DATA_IPV6);
	assert_int_equal(a.value.u.ipv6[15], 1);
	assert_int_equal(spop_arg_next(&ai, &a), 1);
	assert_true(a.value.type == SPOP_DATA_BIN && a.value.u.s.len == 2);
	assert_int_equal(spop_arg_next(&ai, &a), 1);
	assert_true(a.value.type == SPOP_DATA_BIN && a.value.u.s.len == 0);
	assert_int_equal(spop_arg_next(&ai, &a), 0);
	assert_int_equal(spop_msg_next(&mi, &m), 0);
}

/* Cutting the payload anywhere but at a message boundary is INVALID; at a
 * boundary the earlier messages come out and the list ends. */
static void test_notify_every_truncation(void **state)
{
	uint8_t raw[256], *p;
	struct spop_msg_iter mi;
	struct spop_msg m;
	size_t n, k, bounds[4], nb = 0;
	int r, msgs;

	(void)state;
	n = tu_hex(raw, sizeof(raw), NOTIFY_MULTI);
	/* Message boundaries, from the whole payload. */
	bounds[nb++] = 0;
	spop_msg_iter_init(&mi, raw, n);
	while ((r = spop_msg_next(&mi, &m)) == 1)
		bounds[nb++] = (size_t)(m.args_end - raw);
	assert_int_equal(r, 0);
	assert_int_equal(nb, 4);
	assert_int_equal(bounds[3], n);

	for (k = 0; k <= n; k++) {
		size_t b;

		p = tu_guard_place(&guard, raw, k);
		spop_msg_iter_init(&mi, p, k);
		msgs = 0;
		while ((r = spop_msg_next(&mi, &m)) == 1)
			msgs++;
		for (b = 0; b < nb && bounds[b] != k; b++)
			;
		if (b < nb)
			assert_true(r == 0 && (size_t)msgs == b);
		else
			assert_int_equal(r, -SPOP_ERR_INVALID);
	}
}

static int first_msg(const char *hex)
{
	uint8_t raw[128], *p;
	struct spop_msg_iter mi;
	struct spop_msg m;
	size_t n = tu_hex(raw, sizeof(raw), hex);
	int r;

	p = tu_guard_place(&guard, raw, n);
	spop_msg_iter_init(&mi, p, n);
	r = spop_msg_next(&mi, &m);
	/* An error is repeated, never skipped over. */
	if (r < 0)
		assert_int_equal(spop_msg_next(&mi, &m), r);
	return r;
}

static void test_notify_malformed(void **state)
{
	(void)state;
	/* NB-ARGS beyond the payload. */
	assert_int_equal(first_msg("01'm' 02 01'a' 00"), -SPOP_ERR_INVALID);
	assert_int_equal(first_msg("01'm' ff 01'a' 00"), -SPOP_ERR_INVALID);
	/* Missing NB-ARGS. */
	assert_int_equal(first_msg("01'm'"), -SPOP_ERR_INVALID);
	/* Names and strings longer than the frame. */
	assert_int_equal(first_msg("05'm'"), -SPOP_ERR_INVALID);
	assert_int_equal(first_msg("01'm' 01 01'a' 08 05'abc'"), -SPOP_ERR_INVALID);
	assert_int_equal(first_msg("01'm' 01 01'a' 08 ff f0 fe fe fe fe fe fe fe 0e 'abc'"),
	                 -SPOP_ERR_INVALID);
	assert_int_equal(first_msg("01'm' 01 09'a' 00"), -SPOP_ERR_INVALID);
	/* Bad type nibble. */
	assert_int_equal(first_msg("01'm' 01 01'a' 0b"), -SPOP_ERR_INVALID);
	assert_int_equal(first_msg("01'm' 01 01'a' 1f 00"), -SPOP_ERR_INVALID);
	/* Overlong varint in a name length. */
	assert_int_equal(first_msg("f0 80 80 80 80 80 80 80 80 80 00"), -SPOP_ERR_INVALID);
	/* A truncated int and ip. */
	assert_int_equal(first_msg("01'm' 01 01'a' 04 f0"), -SPOP_ERR_INVALID);
	assert_int_equal(first_msg("01'm' 01 01'a' 06 7f00"), -SPOP_ERR_INVALID);
	/* The same message, well formed. */
	assert_int_equal(first_msg("01'm' 01 01'a' 06 7f000001"), 1);
}

/* A frame whose NOTIFY payload ends early: NB-ARGS says 3, the frame
 * length cuts the third argument, bytes after the frame must not count. */
static void test_notify_bounded_by_frame(void **state)
{
	uint8_t raw[128], *p;
	struct spop_frame f;
	struct spop_msg_iter mi;
	struct spop_msg m;
	size_t n;

	(void)state;
	n = tu_hex(raw, sizeof(raw),
	           "0000002c 03 00000001 05 01 0a'check-auth' 03"
	           " 07'api_key' 08 03'abc' 03'key' 08 03'xyz' 04'path'"
	           " 08 04'/foo'");
	p = tu_guard_place(&guard, raw, n);
	assert_int_equal(spop_frame_next(p, n, SPOP_DEFAULT_FRAME_SIZE, &f), 48);
	spop_msg_iter_init(&mi, f.payload, f.payload_len);
	assert_int_equal(spop_msg_next(&mi, &m), -SPOP_ERR_INVALID);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_notify_vector),
		cmocka_unit_test(test_notify_empty),
		cmocka_unit_test(test_notify_several_messages_every_type),
		cmocka_unit_test(test_notify_every_truncation),
		cmocka_unit_test(test_notify_malformed),
		cmocka_unit_test(test_notify_bounded_by_frame),
	};

	return cmocka_run_group_tests_name("spop_notify", tests, setup, teardown);
}
