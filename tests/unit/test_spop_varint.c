/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Varints, untyped buffers and typed data (doc/PROTOCOL.md §1.3-§1.5).
 *
 * Covered: every §1.4 vector both ways; round trips at each length-class
 * boundary and around every power of two; every prefix answers "incomplete"
 * with the input ending at a guard page; the 10-byte cap and 64-bit
 * overflow; encoders never writing past their end; every data type round
 * trip, BOOL and STR flag rules, INT32/INT64 sign extension, unknown type
 * nibbles. Left out: frames and lists (test_spop_frame.c and friends).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "spop.h"
#include "testutil.h"

struct varint_vec {
	uint64_t v;
	const char *hex;
};

static const struct varint_vec varint_vecs[] = {
	{ 0, "00" },
	{ 127, "7f" },
	{ 128, "80" },
	{ 239, "ef" },
	{ 240, "f0 00" },
	{ 241, "f1 00" },
	{ 255, "ff 00" },
	{ 256, "f0 01" },
	{ 1000, "f8 2f" },
	{ 2287, "ff 7f" },
	{ 2288, "f0 80 00" },
	{ 2289, "f1 80 00" },
	{ 16380, "fc f0 06" },
	{ 65532, "fc f0 1e" },
	{ 264431, "ff ff 7f" },
	{ 264432, "f0 80 80 00" },
	{ 33818864, "f0 80 80 80 00" },
	{ 4294967295u, "ff f0 fe fe 7e" },
	{ INT64_MAX, "ff f0 fe fe fe fe fe fe fe 06" },
	{ UINT64_MAX, "ff f0 fe fe fe fe fe fe fe 0e" },
};

#define NVEC (sizeof(varint_vecs) / sizeof(varint_vecs[0]))

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

static void test_varint_vectors_encode(void **state)
{
	uint8_t want[16], got[16];
	size_t i, n;

	(void)state;
	for (i = 0; i < NVEC; i++) {
		n = tu_hex(want, sizeof(want), varint_vecs[i].hex);
		memset(got, 0, sizeof(got));
		assert_int_equal(spop_varint_encode(got, got + sizeof(got), varint_vecs[i].v), (int)n);
		assert_memory_equal(got, want, n);
		assert_int_equal(spop_varint_len(varint_vecs[i].v), n);
	}
}

static void test_varint_vectors_decode(void **state)
{
	uint8_t raw[16], *p;
	uint64_t v;
	size_t i, n;

	(void)state;
	for (i = 0; i < NVEC; i++) {
		n = tu_hex(raw, sizeof(raw), varint_vecs[i].hex);
		p = tu_guard_place(&guard, raw, n);
		v = 0xdeadbeef;
		assert_int_equal(spop_varint_decode(p, p + n, &v), (int)n);
		assert_true(v == varint_vecs[i].v);
	}
}

/* The length classes of §1.4, checked by encoded size. */
static void test_varint_length_classes(void **state)
{
	static const struct { uint64_t v; size_t len; } cls[] = {
		{ 0, 1 }, { 239, 1 }, { 240, 2 }, { 2287, 2 }, { 2288, 3 },
		{ 264431, 3 }, { 264432, 4 }, { 33818863, 4 }, { 33818864, 5 },
		{ 4328786159u, 5 }, { 4328786160u, 6 }, { UINT64_MAX, 10 },
	};
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(cls) / sizeof(cls[0]); i++)
		assert_int_equal(spop_varint_len(cls[i].v), cls[i].len);
}

static void roundtrip(uint64_t v)
{
	uint8_t buf[SPOP_VARINT_MAX_LEN], *p;
	uint64_t got = ~v;
	int n;

	n = spop_varint_encode(buf, buf + sizeof(buf), v);
	assert_true(n >= 1 && n <= SPOP_VARINT_MAX_LEN);
	assert_int_equal((size_t)n, spop_varint_len(v));
	p = tu_guard_place(&guard, buf, (size_t)n);
	assert_int_equal(spop_varint_decode(p, p + n, &got), n);
	assert_true(got == v);
}

static void test_varint_roundtrip_boundaries(void **state)
{
	static const uint64_t vals[] = {
		0, 1, 127, 128, 239, 240, 241, 2287, 2288, 264431, 264432,
		33818863, 33818864, 4328786159u, 4328786160u, UINT32_MAX,
		(uint64_t)UINT32_MAX + 1, INT64_MAX, (uint64_t)INT64_MAX + 1,
		UINT64_MAX - 1, UINT64_MAX,
	};
	unsigned i;

	(void)state;
	for (i = 0; i < sizeof(vals) / sizeof(vals[0]); i++)
		roundtrip(vals[i]);
	for (i = 0; i < 64; i++) {
		uint64_t b = (uint64_t)1 << i;

		roundtrip(b - 1);
		roundtrip(b);
		roundtrip(b + 1);
	}
	for (i = 0; i < 300000; i++)
		roundtrip(i);
}

static void test_varint_every_prefix_is_incomplete(void **state)
{
	uint8_t raw[16], *p;
	uint64_t v;
	size_t i, n, k;

	(void)state;
	for (i = 0; i < NVEC; i++) {
		n = tu_hex(raw, sizeof(raw), varint_vecs[i].hex);
		for (k = 0; k < n; k++) {
			p = tu_guard_place(&guard, raw, k);
			assert_int_equal(spop_varint_decode(p, p + k, &v), 0);
		}
	}
}

static void test_varint_rejects_eleven_bytes(void **state)
{
	uint8_t raw[16], *p;
	uint64_t v;
	size_t n;

	(void)state;
	/* Ten bytes none of which terminates: no uint64 is that long. */
	n = tu_hex(raw, sizeof(raw), "f0 80 80 80 80 80 80 80 80 80 00");
	p = tu_guard_place(&guard, raw, n);
	assert_int_equal(spop_varint_decode(p, p + n, &v), -SPOP_ERR_INVALID);
	/* Decided at the tenth byte, without waiting for the eleventh. */
	p = tu_guard_place(&guard, raw, 10);
	assert_int_equal(spop_varint_decode(p, p + 10, &v), -SPOP_ERR_INVALID);
	/* Nine continuation bytes are still only incomplete. */
	p = tu_guard_place(&guard, raw, 9);
	assert_int_equal(spop_varint_decode(p, p + 9, &v), 0);
}

static void test_varint_rejects_overflow(void **state)
{
	uint8_t raw[16], *p;
	uint64_t v;
	size_t n;

	(void)state;
	/* 2^64-1 plus one more 2^60 in the last byte. */
	n = tu_hex(raw, sizeof(raw), "ff f0 fe fe fe fe fe fe fe 0f");
	p = tu_guard_place(&guard, raw, n);
	assert_int_equal(spop_varint_decode(p, p + n, &v), -SPOP_ERR_INVALID);
	/* Bits that would fall off the top at shift 60. */
	n = tu_hex(raw, sizeof(raw), "f0 80 80 80 80 80 80 80 80 7f");
	p = tu_guard_place(&guard, raw, n);
	assert_int_equal(spop_varint_decode(p, p + n, &v), -SPOP_ERR_INVALID);
}

static void test_varint_encode_never_overruns(void **state)
{
	uint8_t *p;
	size_t i, n, room;

	(void)state;
	for (i = 0; i < NVEC; i++) {
		n = spop_varint_len(varint_vecs[i].v);
		for (room = 0; room < n; room++) {
			p = tu_guard_room(&guard, room);
			assert_int_equal(spop_varint_encode(p, p + room, varint_vecs[i].v),
			                 -SPOP_ERR_TOO_BIG);
		}
		p = tu_guard_room(&guard, n);
		assert_int_equal(spop_varint_encode(p, p + n, varint_vecs[i].v), (int)n);
	}
}

/* ---- untyped buffers ------------------------------------------------------ */

static void test_buf_decode(void **state)
{
	uint8_t raw[32], *p;
	struct spop_str s;
	size_t n, k;

	(void)state;
	n = tu_hex(raw, sizeof(raw), "07'version'");
	p = tu_guard_place(&guard, raw, n);
	assert_int_equal(spop_buf_decode(p, p + n, &s), 8);
	assert_int_equal(s.len, 7);
	assert_memory_equal(s.ptr, "version", 7);
	for (k = 0; k < n; k++) {
		p = tu_guard_place(&guard, raw, k);
		assert_int_equal(spop_buf_decode(p, p + k, &s), 0);
	}
	n = tu_hex(raw, sizeof(raw), "00");
	p = tu_guard_place(&guard, raw, n);
	assert_int_equal(spop_buf_decode(p, p + n, &s), 1);
	assert_int_equal(s.len, 0);
	/* A length no buffer can hold is "incomplete" here; frame-level
	 * callers turn that into INVALID. */
	n = tu_hex(raw, sizeof(raw), "ff f0 fe fe fe fe fe fe fe 0e 'abc'");
	p = tu_guard_place(&guard, raw, n);
	assert_int_equal(spop_buf_decode(p, p + n, &s), 0);
	n = tu_hex(raw, sizeof(raw), "f0 80 80 80 80 80 80 80 80 80 00");
	p = tu_guard_place(&guard, raw, n);
	assert_int_equal(spop_buf_decode(p, p + n, &s), -SPOP_ERR_INVALID);
}

/* ---- typed data ------------------------------------------------------------ */

static void data_roundtrip(const struct spop_data *d, const char *want_hex)
{
	uint8_t want[64], buf[64], *p;
	struct spop_data got;
	size_t k, wn;
	int n;

	n = spop_data_encode(buf, buf + sizeof(buf), d);
	assert_true(n > 0);
	if (want_hex) {
		wn = tu_hex(want, sizeof(want), want_hex);
		assert_int_equal((size_t)n, wn);
		assert_memory_equal(buf, want, wn);
	}
	/* Too little room: refused, nothing written past the end. */
	for (k = 0; k < (size_t)n; k++) {
		p = tu_guard_room(&guard, k);
		assert_int_equal(spop_data_encode(p, p + k, d), -SPOP_ERR_TOO_BIG);
	}
	for (k = 0; k < (size_t)n; k++) {
		p = tu_guard_place(&guard, buf, k);
		assert_int_equal(spop_data_decode(p, p + k, &got), 0);
	}
	p = tu_guard_place(&guard, buf, (size_t)n);
	memset(&got, 0x5a, sizeof(got));
	assert_int_equal(spop_data_decode(p, p + n, &got), n);
	assert_int_equal(got.type, d->type);
	switch (d->type) {
	case SPOP_DATA_NULL:
		break;
	case SPOP_DATA_BOOL:
		assert_int_equal(got.u.b, d->u.b);
		break;
	case SPOP_DATA_INT32:
	case SPOP_DATA_INT64:
		assert_true(got.u.i == d->u.i);
		break;
	case SPOP_DATA_UINT32:
	case SPOP_DATA_UINT64:
		assert_true(got.u.u == d->u.u);
		break;
	case SPOP_DATA_IPV4:
		assert_memory_equal(got.u.ipv4, d->u.ipv4, 4);
		break;
	case SPOP_DATA_IPV6:
		assert_memory_equal(got.u.ipv6, d->u.ipv6, 16);
		break;
	case SPOP_DATA_STR:
	case SPOP_DATA_BIN:
		assert_int_equal(got.u.s.len, d->u.s.len);
		if (d->u.s.len)
			assert_memory_equal(got.u.s.ptr, d->u.s.ptr, d->u.s.len);
		/* A slice into the input, not a copy. */
		assert_ptr_equal(got.u.s.ptr, p + n - d->u.s.len);
		break;
	}
}

static void test_data_roundtrip_every_type(void **state)
{
	static const uint64_t uvals[] = {
		0, 239, 240, 2287, 2288, 264431, 264432, UINT32_MAX, INT64_MAX, UINT64_MAX,
	};
	static const int64_t ivals[] = {
		0, 1, -1, 239, 240, 2287, 2288, 264431, 264432, INT32_MAX, INT32_MIN,
		(int64_t)UINT32_MAX, INT64_MAX, INT64_MIN, -240, -2288,
	};
	struct spop_data d;
	size_t i;

	(void)state;
	d.type = SPOP_DATA_NULL;
	data_roundtrip(&d, "00");
	d.type = SPOP_DATA_BOOL;
	d.u.b = true;
	data_roundtrip(&d, "11");
	d.u.b = false;
	data_roundtrip(&d, "01");
	for (i = 0; i < sizeof(uvals) / sizeof(uvals[0]); i++) {
		d.type = SPOP_DATA_UINT32;
		d.u.u = uvals[i];
		data_roundtrip(&d, NULL);
		d.type = SPOP_DATA_UINT64;
		data_roundtrip(&d, NULL);
	}
	for (i = 0; i < sizeof(ivals) / sizeof(ivals[0]); i++) {
		d.type = SPOP_DATA_INT32;
		d.u.i = ivals[i];
		data_roundtrip(&d, NULL);
		d.type = SPOP_DATA_INT64;
		data_roundtrip(&d, NULL);
	}
	/* Negative numbers are sent sign-extended to 64 bits. */
	d.type = SPOP_DATA_INT32;
	d.u.i = -1;
	data_roundtrip(&d, "02 ff f0 fe fe fe fe fe fe fe 0e");
	d.type = SPOP_DATA_INT64;
	data_roundtrip(&d, "04 ff f0 fe fe fe fe fe fe fe 0e");
	d.type = SPOP_DATA_UINT32;
	d.u.u = 16380;
	data_roundtrip(&d, "03 fc f0 06");
	d.type = SPOP_DATA_IPV4;
	memcpy(d.u.ipv4, "\x7f\x00\x00\x01", 4);
	data_roundtrip(&d, "06 7f000001");
	d.type = SPOP_DATA_IPV6;
	memcpy(d.u.ipv6, "\x20\x01\x0d\xb8\0\0\0\0\0\0\0\0\0\0\0\x01", 16);
	data_roundtrip(&d, "07 20010db8000000000000000000000001");
	d.type = SPOP_DATA_STR;
	d.u.s.ptr = (const uint8_t *)"";
	d.u.s.len = 0;
	data_roundtrip(&d, "08 00");
	d.u.s.ptr = (const uint8_t *)"pipelining";
	d.u.s.len = 10;
	data_roundtrip(&d, "08 0a'pipelining'");
	d.type = SPOP_DATA_BIN;
	d.u.s.ptr = (const uint8_t *)"\0\1\2";
	d.u.s.len = 3;
	data_roundtrip(&d, "09 03 000102");
}

static void test_data_long_strings(void **state)
{
	static uint8_t big[300000];
	static const size_t lens[] = { 239, 240, 2287, 2288, 264431, 264432 };
	static uint8_t out[300000 + 16];
	struct spop_data d, got;
	size_t i;
	int n;

	(void)state;
	for (i = 0; i < sizeof(big); i++)
		big[i] = (uint8_t)(i * 7);
	for (i = 0; i < sizeof(lens) / sizeof(lens[0]); i++) {
		d.type = SPOP_DATA_STR;
		d.u.s.ptr = big;
		d.u.s.len = lens[i];
		n = spop_data_encode(out, out + sizeof(out), &d);
		assert_int_equal((size_t)n, 1 + spop_varint_len(lens[i]) + lens[i]);
		assert_int_equal(spop_data_decode(out, out + n, &got), n);
		assert_int_equal(got.type, SPOP_DATA_STR);
		assert_int_equal(got.u.s.len, lens[i]);
		assert_memory_equal(got.u.s.ptr, big, lens[i]);
		/* One byte short: incomplete. */
		assert_int_equal(spop_data_decode(out, out + n - 1, &got), 0);
	}
}

static void test_data_flag_rules(void **state)
{
	uint8_t raw[16], *p;
	struct spop_data d;
	size_t n;

	(void)state;
	/* BOOL is true only when the flag nibble is exactly 1. */
	n = tu_hex(raw, sizeof(raw), "31");
	p = tu_guard_place(&guard, raw, n);
	assert_int_equal(spop_data_decode(p, p + n, &d), 1);
	assert_int_equal(d.type, SPOP_DATA_BOOL);
	assert_false(d.u.b);
	/* A STR byte with flags set is BIN, as HAProxy stores it. */
	n = tu_hex(raw, sizeof(raw), "18 02'hi'");
	p = tu_guard_place(&guard, raw, n);
	assert_int_equal(spop_data_decode(p, p + n, &d), 4);
	assert_int_equal(d.type, SPOP_DATA_BIN);
	assert_int_equal(d.u.s.len, 2);
	n = tu_hex(raw, sizeof(raw), "08 02'hi'");
	p = tu_guard_place(&guard, raw, n);
	assert_int_equal(spop_data_decode(p, p + n, &d), 4);
	assert_int_equal(d.type, SPOP_DATA_STR);
	/* INT32 -1 sent unextended arrives as +4294967295 (HAProxy does it). */
	n = tu_hex(raw, sizeof(raw), "02 ff f0 fe fe 7e");
	p = tu_guard_place(&guard, raw, n);
	assert_int_equal(spop_data_decode(p, p + n, &d), 6);
	assert_int_equal(d.type, SPOP_DATA_INT32);
	assert_true(d.u.i == 4294967295);
}

static void test_data_rejects_unknown_types(void **state)
{
	uint8_t raw[4] = { 0, 0, 0, 0 }, *p, t;
	struct spop_data d;
	uint8_t buf[8];

	(void)state;
	for (t = 10; t < 16; t++) {
		raw[0] = t;
		p = tu_guard_place(&guard, raw, 3);
		assert_int_equal(spop_data_decode(p, p + 3, &d), -SPOP_ERR_INVALID);
		raw[0] = (uint8_t)(t | 0x10);
		p = tu_guard_place(&guard, raw, 1);
		assert_int_equal(spop_data_decode(p, p + 1, &d), -SPOP_ERR_INVALID);
		d.type = (enum spop_data_type)t;
		assert_int_equal(spop_data_encode(buf, buf + sizeof(buf), &d), -SPOP_ERR_INVALID);
	}
	/* Empty input: incomplete, not an error. */
	p = tu_guard_place(&guard, raw, 0);
	assert_int_equal(spop_data_decode(p, p, &d), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_varint_vectors_encode),
		cmocka_unit_test(test_varint_vectors_decode),
		cmocka_unit_test(test_varint_length_classes),
		cmocka_unit_test(test_varint_roundtrip_boundaries),
		cmocka_unit_test(test_varint_every_prefix_is_incomplete),
		cmocka_unit_test(test_varint_rejects_eleven_bytes),
		cmocka_unit_test(test_varint_rejects_overflow),
		cmocka_unit_test(test_varint_encode_never_overruns),
		cmocka_unit_test(test_buf_decode),
		cmocka_unit_test(test_data_roundtrip_every_type),
		cmocka_unit_test(test_data_long_strings),
		cmocka_unit_test(test_data_flag_rules),
		cmocka_unit_test(test_data_rejects_unknown_types),
	};

	return cmocka_run_group_tests_name("spop_varint", tests, setup, teardown);
}
