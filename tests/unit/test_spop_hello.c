/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The handshake and the disconnect frames.
 *
 * Covered: the HAProxy 2.6 HELLO (36-char engine-id) and the 82-byte
 * health-check HELLO parsed from §1.10's bytes; AGENT-HELLO and
 * AGENT-DISCONNECT built byte for byte and parsed back; version lists
 * (spaces, several entries, garbage); max-frame-size types, bounds and
 * clamping; capabilities tokens; each status: 4, 5, 6, 8, 9; truncated and
 * mistyped entries; every payload prefix against a guard page; the reason
 * strings of §2.5. Left out: what the agent does with the result.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
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

/* Splits a whole-frame spec and parses its payload against the guard. */
static int parse_frame(const char *hex, struct spop_hello *h)
{
	uint8_t raw[512], *p;
	struct spop_frame f;
	size_t n = tu_hex(raw, sizeof(raw), hex);
	int r;

	r = spop_frame_next(raw, n, SPOP_DEFAULT_FRAME_SIZE, &f);
	assert_int_equal(r, (int)n);
	assert_int_equal(f.type, SPOP_FRM_HAPROXY_HELLO);
	p = tu_guard_place(&guard, f.payload, f.payload_len);
	return spop_hello_parse(p, f.payload_len, h);
}

/* Parses a payload spec (KV list only). */
static int parse_payload(const char *hex, struct spop_hello *h)
{
	uint8_t raw[512], *p;
	size_t n = tu_hex(raw, sizeof(raw), hex);

	p = tu_guard_place(&guard, raw, n);
	memset(h, 0x5a, sizeof(*h));
	return spop_hello_parse(p, n, h);
}

#define KV_VSN(s)  " 12'supported-versions' 08 " s
#define KV_MFS     " 0e'max-frame-size' 03 fcf006"

static void test_hello_haproxy_26(void **state)
{
	struct spop_hello h;

	(void)state;
	assert_int_equal(parse_frame(VEC_HELLO_26, &h), 0);
	assert_int_equal(h.max_frame_size, 16380);
	assert_int_equal(h.caps, SPOP_CAP_PIPELINING | SPOP_CAP_ASYNC);
	assert_false(h.healthcheck);
	assert_int_equal(h.engine_id.len, 36);
	assert_memory_equal(h.engine_id.ptr, VEC_ENGINE_ID, 36);
}

static void test_hello_healthcheck(void **state)
{
	uint8_t raw[128];

	(void)state;
	struct spop_hello h;

	assert_int_equal(tu_hex(raw, sizeof(raw), VEC_HELLO_HC), 82);
	assert_int_equal(parse_frame(VEC_HELLO_HC, &h), 0);
	assert_int_equal(h.max_frame_size, 16380);
	assert_int_equal(h.caps, 0);
	assert_true(h.healthcheck);
	assert_int_equal(h.engine_id.len, 0);
}

/* Any cut of the 2.6 HELLO payload is a truncated entry (INVALID) or, at
 * an entry boundary, a shorter list missing something. Never a crash. */
static void test_hello_every_prefix(void **state)
{
	uint8_t raw[256], *p;
	struct spop_frame f;
	struct spop_hello h;
	size_t n, k;
	int r;

	(void)state;
	n = tu_hex(raw, sizeof(raw), VEC_HELLO_26);
	assert_int_equal(spop_frame_next(raw, n, SPOP_DEFAULT_FRAME_SIZE, &f), (int)n);
	for (k = 0; k < f.payload_len; k++) {
		p = tu_guard_place(&guard, f.payload, k);
		r = spop_hello_parse(p, k, &h);
		if (k == 0 || k == 24)
			assert_int_equal(r, k ? -SPOP_ERR_NO_FRAME_SIZE : -SPOP_ERR_NO_VSN);
		else if (k == 43 || k == 74)
			assert_int_equal(r, 0);
		else
			assert_int_equal(r, -SPOP_ERR_INVALID);
	}
}

static void test_hello_version_lists(void **state)
{
	static const char *const good[] = {
		"2.0", " 2.0 ", "2 . 0  ", "1.0, 2.0", "2.1", "3.0,2.5", "02.00",
		"2.0,\t1.999", "99999999999.0, 2.0",
	};
	static const char *const bad[] = {
		"", "1.0", "2", "2.", ".0", "2.0,", "abc", "2.0,x", "2.0 1", ",2.0",
		"2,0", "2.0a", "2.0,,", "-2.0", "3.0.1", " ", "2.0;1.0",
	};
	char spec[256];
	struct spop_hello h;
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		snprintf(spec, sizeof(spec), KV_VSN("%02zx'%s'") KV_MFS, strlen(good[i]), good[i]);
		assert_int_equal(parse_payload(spec, &h), 0);
		assert_int_equal(h.max_frame_size, 16380);
	}
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		snprintf(spec, sizeof(spec), KV_VSN("%02zx'%s'") KV_MFS, strlen(bad[i]), bad[i]);
		assert_int_equal(parse_payload(spec, &h), -SPOP_ERR_BAD_VSN);
	}
}

static void test_hello_missing_keys(void **state)
{
	struct spop_hello h;

	(void)state;
	assert_int_equal(parse_payload("", &h), -SPOP_ERR_NO_VSN);
	assert_int_equal(parse_payload(KV_MFS, &h), -SPOP_ERR_NO_VSN);
	assert_int_equal(parse_payload(KV_VSN("03'2.0'"), &h), -SPOP_ERR_NO_FRAME_SIZE);
	/* Names match by exact length, not as prefixes. */
	assert_int_equal(parse_payload(KV_VSN("03'2.0'") " 0f'max-frame-size2' 03 fcf006", &h),
	                 -SPOP_ERR_NO_FRAME_SIZE);
	assert_int_equal(parse_payload(KV_VSN("03'2.0'") " 0d'max-frame-siz' 03 fcf006", &h),
	                 -SPOP_ERR_NO_FRAME_SIZE);
	assert_int_equal(parse_payload(" 11'supported-version' 08 03'2.0'" KV_MFS, &h),
	                 -SPOP_ERR_NO_VSN);
	/* The version is judged before the frame size. */
	assert_int_equal(parse_payload(KV_VSN("03'1.0'"), &h), -SPOP_ERR_BAD_VSN);
}

static void test_hello_max_frame_size(void **state)
{
	struct spop_hello h;

	(void)state;
	assert_int_equal(parse_payload(KV_VSN("03'2.0'") " 0e'max-frame-size' 03 ff 00", &h),
	                 -SPOP_ERR_BAD_FRAME_SIZE);
	assert_int_equal(parse_payload(KV_VSN("03'2.0'") " 0e'max-frame-size' 03 00", &h),
	                 -SPOP_ERR_BAD_FRAME_SIZE);
	assert_int_equal(parse_payload(KV_VSN("03'2.0'") " 0e'max-frame-size' 03 f0 01", &h), 0);
	assert_int_equal(h.max_frame_size, 256);
	/* Any integer type. */
	assert_int_equal(parse_payload(KV_VSN("03'2.0'") " 0e'max-frame-size' 02 fcf006", &h), 0);
	assert_int_equal(h.max_frame_size, 16380);
	assert_int_equal(parse_payload(KV_VSN("03'2.0'") " 0e'max-frame-size' 05 fcf006", &h), 0);
	assert_int_equal(h.max_frame_size, 16380);
	/* Above UINT32_MAX clamps; negative is too small. */
	assert_int_equal(parse_payload(KV_VSN("03'2.0'")
	                 " 0e'max-frame-size' 05 ff f0 fe fe fe fe fe fe fe 0e", &h), 0);
	assert_int_equal(h.max_frame_size, UINT32_MAX);
	assert_int_equal(parse_payload(KV_VSN("03'2.0'")
	                 " 0e'max-frame-size' 04 ff f0 fe fe fe fe fe fe fe 0e", &h),
	                 -SPOP_ERR_BAD_FRAME_SIZE);
	/* Not an integer. */
	assert_int_equal(parse_payload(KV_VSN("03'2.0'") " 0e'max-frame-size' 08 03'999'", &h),
	                 -SPOP_ERR_INVALID);
	assert_int_equal(parse_payload(KV_VSN("03'2.0'") " 0e'max-frame-size' 11", &h),
	                 -SPOP_ERR_INVALID);
}

static void test_hello_capabilities(void **state)
{
	static const struct { const char *hex; unsigned caps; } cases[] = {
		{ "", 0 },
		{ " 0c'capabilities' 08 00", 0 },
		{ " 0c'capabilities' 08 0a'pipelining'", SPOP_CAP_PIPELINING },
		{ " 0c'capabilities' 08 14' pipelining , async '", SPOP_CAP_PIPELINING | SPOP_CAP_ASYNC },
		{ " 0c'capabilities' 08 0d'fragmentation'", SPOP_CAP_FRAGMENTATION },
		{ " 0c'capabilities' 08 0b'pipeliningx'", 0 },
		{ " 0c'capabilities' 08 09'pipelinin'", 0 },
		{ " 0c'capabilities' 08 0b'foo,,async,'", SPOP_CAP_ASYNC },
		{ " 0c'capabilities' 08 0f'pipe lining,bar'", 0 },
	};
	char spec[256];
	struct spop_hello h;
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		snprintf(spec, sizeof(spec), KV_VSN("03'2.0'") KV_MFS "%s", cases[i].hex);
		assert_int_equal(parse_payload(spec, &h), 0);
		assert_int_equal(h.caps, cases[i].caps);
	}
	assert_int_equal(parse_payload(KV_VSN("03'2.0'") KV_MFS " 0c'capabilities' 03 00", &h),
	                 -SPOP_ERR_INVALID);
}

static void test_hello_malformed(void **state)
{
	struct spop_hello h;

	(void)state;
	/* Wrong types for known keys. */
	assert_int_equal(parse_payload(" 12'supported-versions' 03 02" KV_MFS, &h),
	                 -SPOP_ERR_INVALID);
	assert_int_equal(parse_payload(" 12'supported-versions' 18 03'2.0'" KV_MFS, &h),
	                 -SPOP_ERR_INVALID);
	assert_int_equal(parse_payload(KV_VSN("03'2.0'") KV_MFS " 0b'healthcheck' 08 00", &h),
	                 -SPOP_ERR_INVALID);
	assert_int_equal(parse_payload(KV_VSN("03'2.0'") KV_MFS " 09'engine-id' 00", &h),
	                 -SPOP_ERR_INVALID);
	/* Empty key, unknown type nibble, string past the end. */
	assert_int_equal(parse_payload(KV_VSN("03'2.0'") KV_MFS " 00 00", &h), -SPOP_ERR_INVALID);
	assert_int_equal(parse_payload(KV_VSN("03'2.0'") KV_MFS " 01'x' 0a", &h), -SPOP_ERR_INVALID);
	assert_int_equal(parse_payload(KV_VSN("04'2.0'") KV_MFS, &h) , -SPOP_ERR_INVALID);
	assert_int_equal(parse_payload(KV_VSN("03'2.0'") KV_MFS " 05'x'", &h), -SPOP_ERR_INVALID);
	assert_int_equal(parse_payload(KV_VSN("03'2.0'") KV_MFS " 01'x'", &h), -SPOP_ERR_INVALID);
	/* Unknown keys of any valid type are skipped. */
	assert_int_equal(parse_payload(" 03'foo' 07 00000000000000000000000000000000"
	                 KV_VSN("03'2.0'") " 03'bar' 00" KV_MFS " 03'baz' 09 01 ff", &h), 0);
	/* healthcheck false, engine-id present. */
	assert_int_equal(parse_payload(KV_VSN("03'2.0'") KV_MFS " 0b'healthcheck' 01"
	                 " 09'engine-id' 08 02'ab'", &h), 0);
	assert_false(h.healthcheck);
	assert_int_equal(h.engine_id.len, 2);
}

static void test_negotiate_frame_size(void **state)
{
	(void)state;
	assert_int_equal(spop_negotiate_frame_size(16380, 16380), 16380);
	assert_int_equal(spop_negotiate_frame_size(65532, 16380), 16380);
	assert_int_equal(spop_negotiate_frame_size(16380, 65532), 16380);
	assert_int_equal(spop_negotiate_frame_size(UINT32_MAX, UINT32_MAX), SPOP_MAX_FRAME_SIZE);
}

static void test_agent_hello_build(void **state)
{
	uint8_t want[128], *p;
	struct spop_frame f;
	struct spop_kv_iter it;
	struct spop_kv kv;
	size_t n, cap;

	(void)state;
	n = tu_hex(want, sizeof(want), VEC_AGENT_HELLO);
	assert_int_equal(n, 68);
	p = tu_guard_room(&guard, n);
	assert_int_equal(spop_agent_hello_build(p, n, 16380), 68);
	assert_memory_equal(p, want, n);
	for (cap = 0; cap < n; cap++) {
		p = tu_guard_room(&guard, cap);
		assert_int_equal(spop_agent_hello_build(p, cap, 16380), -SPOP_ERR_TOO_BIG);
	}
	/* Parses back: three keys in order, max-frame-size as UINT32. */
	p = tu_guard_room(&guard, 128);
	assert_int_equal(spop_agent_hello_build(p, 128, 256), 67);
	assert_int_equal(spop_frame_next(p, 67, 256, &f), 67);
	assert_int_equal(f.type, SPOP_FRM_AGENT_HELLO);
	assert_true(f.sid == 0 && f.fid == 0);
	spop_kv_iter_init(&it, f.payload, f.payload_len);
	assert_int_equal(spop_kv_next(&it, &kv), 1);
	assert_int_equal(kv.name.len, 7);
	assert_int_equal(spop_kv_next(&it, &kv), 1);
	assert_int_equal(kv.value.type, SPOP_DATA_UINT32);
	assert_true(kv.value.u.u == 256);
	assert_int_equal(spop_kv_next(&it, &kv), 1);
	assert_int_equal(kv.value.type, SPOP_DATA_STR);
	assert_int_equal(kv.value.u.s.len, 10);
	assert_int_equal(spop_kv_next(&it, &kv), 0);
}

/* ---- DISCONNECT ------------------------------------------------------------ */

static void test_disconnect_build(void **state)
{
	uint8_t want[512], buf[512];
	char longmsg[400];
	struct spop_frame f;
	struct spop_disconnect d;
	size_t n;
	int r;

	(void)state;
	n = tu_hex(want, sizeof(want), VEC_DISCON);
	assert_int_equal(spop_agent_disconnect_build(buf, sizeof(buf), 0, NULL), (int)n);
	assert_memory_equal(buf, want, n);
	assert_int_equal(spop_agent_disconnect_build(buf, sizeof(buf), 0, "normal"), (int)n);
	assert_memory_equal(buf, want, n);
	assert_int_equal(spop_agent_disconnect_build(buf, n - 1, 0, NULL), -SPOP_ERR_TOO_BIG);

	/* Reason string by default; parses back. */
	r = spop_agent_disconnect_build(buf, sizeof(buf), SPOP_ERR_FRAG_NOT_SUP, NULL);
	assert_true(r > 0);
	assert_int_equal(spop_frame_next(buf, (size_t)r, SPOP_DEFAULT_FRAME_SIZE, &f), r);
	assert_int_equal(f.type, SPOP_FRM_AGENT_DISCON);
	assert_int_equal(spop_disconnect_parse(f.payload, f.payload_len, &d), 0);
	assert_int_equal(d.status, 10);
	assert_int_equal(d.message.len, strlen("fragmentation not supported"));
	assert_memory_equal(d.message.ptr, "fragmentation not supported", d.message.len);

	/* Messages are cut at 255 bytes. */
	memset(longmsg, 'm', sizeof(longmsg) - 1);
	longmsg[sizeof(longmsg) - 1] = '\0';
	r = spop_agent_disconnect_build(buf, sizeof(buf), 99, longmsg);
	assert_true(r > 0);
	assert_int_equal(spop_frame_next(buf, (size_t)r, SPOP_DEFAULT_FRAME_SIZE, &f), r);
	assert_int_equal(spop_disconnect_parse(f.payload, f.payload_len, &d), 0);
	assert_int_equal(d.status, 99);
	assert_int_equal(d.message.len, SPOP_DISCONNECT_MSG_MAX);
}

static void test_disconnect_parse(void **state)
{
	uint8_t raw[128], *p;
	struct spop_disconnect d;
	size_t n;

	(void)state;
	n = tu_hex(raw, sizeof(raw), " 0b'status-code' 03 02 07'message' 08 03'bye'");
	p = tu_guard_place(&guard, raw, n);
	assert_int_equal(spop_disconnect_parse(p, n, &d), 0);
	assert_int_equal(d.status, 2);
	assert_int_equal(d.message.len, 3);
	/* Absent keys. */
	p = tu_guard_place(&guard, raw, 0);
	assert_int_equal(spop_disconnect_parse(p, 0, &d), 0);
	assert_int_equal(d.status, SPOP_ERR_UNKNOWN);
	assert_int_equal(d.message.len, 0);
	/* Any int type; a value no status has becomes "unknown". */
	n = tu_hex(raw, sizeof(raw), " 0b'status-code' 04 05");
	p = tu_guard_place(&guard, raw, n);
	assert_int_equal(spop_disconnect_parse(p, n, &d), 0);
	assert_int_equal(d.status, 5);
	n = tu_hex(raw, sizeof(raw), " 0b'status-code' 02 ff f0 fe fe fe fe fe fe fe 0e");
	p = tu_guard_place(&guard, raw, n);
	assert_int_equal(spop_disconnect_parse(p, n, &d), 0);
	assert_int_equal(d.status, SPOP_ERR_UNKNOWN);
	/* Wrong types, truncation. */
	n = tu_hex(raw, sizeof(raw), " 0b'status-code' 08 01'3'");
	p = tu_guard_place(&guard, raw, n);
	assert_int_equal(spop_disconnect_parse(p, n, &d), -SPOP_ERR_INVALID);
	n = tu_hex(raw, sizeof(raw), " 07'message' 03 00");
	p = tu_guard_place(&guard, raw, n);
	assert_int_equal(spop_disconnect_parse(p, n, &d), -SPOP_ERR_INVALID);
	n = tu_hex(raw, sizeof(raw), " 07'message' 08 09'bye'");
	p = tu_guard_place(&guard, raw, n);
	assert_int_equal(spop_disconnect_parse(p, n, &d), -SPOP_ERR_INVALID);
}

static void test_err_str_table(void **state)
{
	(void)state;
	assert_string_equal(spop_err_str(0), "normal");
	assert_string_equal(spop_err_str(1), "I/O error");
	assert_string_equal(spop_err_str(2), "a timeout occurred");
	assert_string_equal(spop_err_str(3), "frame is too big");
	assert_string_equal(spop_err_str(4), "invalid frame received");
	assert_string_equal(spop_err_str(5), "version value not found");
	assert_string_equal(spop_err_str(6), "max-frame-size value not found");
	assert_string_equal(spop_err_str(7), "capabilities value not found");
	assert_string_equal(spop_err_str(8), "unsupported version");
	assert_string_equal(spop_err_str(9), "max-frame-size too big or too small");
	assert_string_equal(spop_err_str(10), "fragmentation not supported");
	assert_string_equal(spop_err_str(11), "invalid interlaced frames");
	assert_string_equal(spop_err_str(12), "frame-id not found");
	assert_string_equal(spop_err_str(13), "resource allocation error");
	assert_string_equal(spop_err_str(99), "an unknown error occurred");
	assert_string_equal(spop_err_str(14), "an unknown error occurred");
	assert_string_equal(spop_err_str(-SPOP_ERR_TOO_BIG), "frame is too big");
	assert_string_equal(spop_err_str(-1000), "an unknown error occurred");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_hello_haproxy_26),
		cmocka_unit_test(test_hello_healthcheck),
		cmocka_unit_test(test_hello_every_prefix),
		cmocka_unit_test(test_hello_version_lists),
		cmocka_unit_test(test_hello_missing_keys),
		cmocka_unit_test(test_hello_max_frame_size),
		cmocka_unit_test(test_hello_capabilities),
		cmocka_unit_test(test_hello_malformed),
		cmocka_unit_test(test_negotiate_frame_size),
		cmocka_unit_test(test_agent_hello_build),
		cmocka_unit_test(test_disconnect_build),
		cmocka_unit_test(test_disconnect_parse),
		cmocka_unit_test(test_err_str_table),
	};

	return cmocka_run_group_tests_name("spop_hello", tests, setup, teardown);
}
