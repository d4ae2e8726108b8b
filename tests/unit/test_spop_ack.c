/* SPDX-License-Identifier: Apache-2.0 */
/*
 * ACK building with the frame builder (SET-VAR / UNSET-VAR actions).
 *
 * Covered: §1.10's ACK and empty ACK and the ACK captured in
 * haproxy/haproxy#2490, byte for byte, both directions; all five scopes and
 * a bad one; variable-name rules; every value type round-tripped through a
 * small action reader written here the way HAProxy reads actions (§1.9);
 * the cap (no frame beyond it, no byte written past it); nothing appended
 * by a refused action. Left out: the agent's choice of variables.
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

static const struct spop_data v_true = { .type = SPOP_DATA_BOOL, .u.b = true };

static void test_ack_vectors_build(void **state)
{
	uint8_t want[64], buf[64];
	struct spop_fb b;
	size_t n;

	(void)state;
	n = tu_hex(want, sizeof(want), VEC_ACK_OK);
	spop_fb_begin(&b, buf, sizeof(buf), SPOP_FRM_ACK, 5, 1);
	spop_fb_set_var(&b, SPOP_SCOPE_TXN, "ok", 2, &v_true);
	assert_int_equal(spop_fb_end(&b), (int)n);
	assert_memory_equal(buf, want, n);

	n = tu_hex(want, sizeof(want), VEC_ACK_EMPTY);
	spop_fb_begin(&b, buf, sizeof(buf), SPOP_FRM_ACK, 5, 1);
	assert_int_equal(spop_fb_end(&b), (int)n);
	assert_memory_equal(buf, want, n);

	n = tu_hex(want, sizeof(want), VEC_ACK_2490);
	spop_fb_begin(&b, buf, sizeof(buf), SPOP_FRM_ACK, 249011, 1);
	spop_fb_set_var(&b, SPOP_SCOPE_TXN, "allowed", 7, &v_true);
	assert_int_equal(spop_fb_end(&b), (int)n);
	assert_memory_equal(buf, want, n);
}

/* One action read the way HAProxy reads them (§1.9). */
struct action {
	uint8_t type, scope;
	struct spop_str name;
	struct spop_data value;
};

static int action_read(const uint8_t *p, const uint8_t *end, struct action *a)
{
	const uint8_t *q = p;
	int n;

	if (end - q < 3)
		return -1;
	a->type = q[0];
	if (!((q[0] == SPOP_ACT_SET_VAR && q[1] == 3) || (q[0] == SPOP_ACT_UNSET_VAR && q[1] == 2)))
		return -1;
	a->scope = q[2];
	if (a->scope > SPOP_SCOPE_RES)
		return -1;
	q += 3;
	n = spop_buf_decode(q, end, &a->name);
	if (n <= 0)
		return -1;
	q += n;
	if (a->type == SPOP_ACT_SET_VAR) {
		n = spop_data_decode(q, end, &a->value);
		if (n <= 0)
			return -1;
		q += n;
	}
	return (int)(q - p);
}

static void test_ack_vector_2490_decodes(void **state)
{
	uint8_t raw[64], *p;
	struct spop_frame f;
	struct action a;
	size_t n;

	(void)state;
	n = tu_hex(raw, sizeof(raw), VEC_ACK_2490);
	p = tu_guard_place(&guard, raw, n);
	assert_int_equal(spop_frame_next(p, n, SPOP_DEFAULT_FRAME_SIZE, &f), 25);
	assert_int_equal(f.type, SPOP_FRM_ACK);
	assert_true(f.sid == 249011 && f.fid == 1);
	assert_int_equal(action_read(f.payload, f.payload + f.payload_len, &a), 12);
	assert_int_equal(a.type, SPOP_ACT_SET_VAR);
	assert_int_equal(a.scope, SPOP_SCOPE_TXN);
	assert_true(a.name.len == 7 && memcmp(a.name.ptr, "allowed", 7) == 0);
	assert_true(a.value.type == SPOP_DATA_BOOL && a.value.u.b);
}

static void test_ack_scopes_and_unset(void **state)
{
	uint8_t buf[128], want[128];
	struct spop_fb b;
	struct spop_data f = { .type = SPOP_DATA_BOOL, .u.b = false };
	unsigned s;
	size_t n;

	(void)state;
	spop_fb_begin(&b, buf, sizeof(buf), SPOP_FRM_ACK, 0, 0);
	for (s = SPOP_SCOPE_PROC; s <= SPOP_SCOPE_RES; s++)
		spop_fb_set_var(&b, (enum spop_scope)s, "v", 1, &f);
	spop_fb_unset_var(&b, SPOP_SCOPE_REQ, "a.b_C9", 6);
	n = tu_hex(want, sizeof(want),
	           "0000002f 67 00000001 00 00"
	           " 01 03 00 01'v' 01"
	           " 01 03 01 01'v' 01"
	           " 01 03 02 01'v' 01"
	           " 01 03 03 01'v' 01"
	           " 01 03 04 01'v' 01"
	           " 02 02 03 06'a.b_C9'");
	assert_int_equal(spop_fb_end(&b), (int)n);
	assert_memory_equal(buf, want, n);
}

static void test_ack_rejects_bad_scope_and_names(void **state)
{
	static const char *const bad[] = {
		"", "a-b", "a b", "é", "ok\n", "a/b", "a:b",
		"0123456789012345678901234567890123456789012345678901234567890123",
	};
	uint8_t buf[128];
	struct spop_fb b;
	size_t i;

	(void)state;
	spop_fb_begin(&b, buf, sizeof(buf), SPOP_FRM_ACK, 5, 1);
	spop_fb_set_var(&b, (enum spop_scope)5, "ok", 2, &v_true);
	assert_int_equal(spop_fb_end(&b), -SPOP_ERR_INVALID);
	spop_fb_begin(&b, buf, sizeof(buf), SPOP_FRM_ACK, 5, 1);
	spop_fb_unset_var(&b, (enum spop_scope)255, "ok", 2);
	assert_int_equal(spop_fb_end(&b), -SPOP_ERR_INVALID);
	spop_fb_begin(&b, buf, sizeof(buf), SPOP_FRM_ACK, 5, 1);
	spop_fb_set_var(&b, SPOP_SCOPE_TXN, "ok", 2, NULL);
	assert_int_equal(spop_fb_end(&b), -SPOP_ERR_INVALID);
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		assert_false(spop_var_name_ok(bad[i], strlen(bad[i])));
		spop_fb_begin(&b, buf, sizeof(buf), SPOP_FRM_ACK, 5, 1);
		spop_fb_set_var(&b, SPOP_SCOPE_TXN, bad[i], strlen(bad[i]), &v_true);
		assert_ptr_equal(b.p, buf + 11);
		assert_int_equal(spop_fb_end(&b), -SPOP_ERR_INVALID);
		spop_fb_begin(&b, buf, sizeof(buf), SPOP_FRM_ACK, 5, 1);
		spop_fb_unset_var(&b, SPOP_SCOPE_TXN, bad[i], strlen(bad[i]));
		assert_int_equal(spop_fb_end(&b), -SPOP_ERR_INVALID);
	}
	assert_true(spop_var_name_ok("ok", 2));
	assert_true(spop_var_name_ok("A.z_09", 6));
	assert_true(spop_var_name_ok(bad[7], 63));
	/* Length counts, not a NUL. */
	assert_false(spop_var_name_ok("ok\0x", 4));
}

static void test_ack_roundtrip_every_type(void **state)
{
	static const uint64_t uvals[] = {
		0, 239, 240, 2287, 2288, 264431, 264432, UINT32_MAX, INT64_MAX, UINT64_MAX,
	};
	static const int64_t ivals[] = { 0, 239, 2288, -1, -240, INT32_MIN, INT64_MIN, INT64_MAX };
	struct spop_data vals[64];
	uint8_t buf[2048];
	struct spop_fb b;
	struct spop_frame f;
	struct action a;
	const uint8_t *p, *end;
	size_t nv = 0, i;
	int n;

	(void)state;
	vals[nv++] = (struct spop_data){ .type = SPOP_DATA_NULL };
	vals[nv++] = (struct spop_data){ .type = SPOP_DATA_BOOL, .u.b = true };
	vals[nv++] = (struct spop_data){ .type = SPOP_DATA_BOOL, .u.b = false };
	for (i = 0; i < sizeof(uvals) / sizeof(uvals[0]); i++) {
		vals[nv++] = (struct spop_data){ .type = SPOP_DATA_UINT32, .u.u = uvals[i] };
		vals[nv++] = (struct spop_data){ .type = SPOP_DATA_UINT64, .u.u = uvals[i] };
	}
	for (i = 0; i < sizeof(ivals) / sizeof(ivals[0]); i++) {
		vals[nv++] = (struct spop_data){ .type = SPOP_DATA_INT32, .u.i = ivals[i] };
		vals[nv++] = (struct spop_data){ .type = SPOP_DATA_INT64, .u.i = ivals[i] };
	}
	vals[nv] = (struct spop_data){ .type = SPOP_DATA_IPV4 };
	memcpy(vals[nv++].u.ipv4, "\xc0\xa8\x00\x01", 4);
	vals[nv] = (struct spop_data){ .type = SPOP_DATA_IPV6 };
	memset(vals[nv++].u.ipv6, 0xfe, 16);
	vals[nv++] = (struct spop_data){ .type = SPOP_DATA_STR,
	                                 .u.s = { (const uint8_t *)"key-id-1", 8 } };
	vals[nv++] = (struct spop_data){ .type = SPOP_DATA_STR, .u.s = { NULL, 0 } };
	vals[nv++] = (struct spop_data){ .type = SPOP_DATA_BIN,
	                                 .u.s = { (const uint8_t *)"\0\xff", 2 } };
	assert_true(nv <= sizeof(vals) / sizeof(vals[0]));

	spop_fb_begin(&b, buf, sizeof(buf), SPOP_FRM_ACK, 7, 3);
	for (i = 0; i < nv; i++)
		spop_fb_set_var(&b, (enum spop_scope)(i % 5), "var_x", 5, &vals[i]);
	n = spop_fb_end(&b);
	assert_true(n > 0);

	assert_int_equal(spop_frame_next(buf, (size_t)n, SPOP_DEFAULT_FRAME_SIZE, &f), n);
	assert_true(f.sid == 7 && f.fid == 3);
	p = f.payload;
	end = f.payload + f.payload_len;
	for (i = 0; i < nv; i++) {
		int m = action_read(p, end, &a);

		assert_true(m > 0);
		p += m;
		assert_int_equal(a.scope, i % 5);
		assert_int_equal(a.value.type, vals[i].type);
		switch (vals[i].type) {
		case SPOP_DATA_BOOL:
			assert_int_equal(a.value.u.b, vals[i].u.b);
			break;
		case SPOP_DATA_INT32:
		case SPOP_DATA_INT64:
			assert_true(a.value.u.i == vals[i].u.i);
			break;
		case SPOP_DATA_UINT32:
		case SPOP_DATA_UINT64:
			assert_true(a.value.u.u == vals[i].u.u);
			break;
		case SPOP_DATA_IPV4:
			assert_memory_equal(a.value.u.ipv4, vals[i].u.ipv4, 4);
			break;
		case SPOP_DATA_IPV6:
			assert_memory_equal(a.value.u.ipv6, vals[i].u.ipv6, 16);
			break;
		case SPOP_DATA_STR:
		case SPOP_DATA_BIN:
			assert_int_equal(a.value.u.s.len, vals[i].u.s.len);
			if (a.value.u.s.len)
				assert_memory_equal(a.value.u.s.ptr, vals[i].u.s.ptr, a.value.u.s.len);
			break;
		case SPOP_DATA_NULL:
			break;
		}
	}
	assert_ptr_equal(p, end);
}

/* The five-variable verdict ACK at every cap: refused below its size,
 * never a byte past the cap (the area ends at the guard page). */
static int build_verdict(uint8_t *buf, size_t cap)
{
	struct spop_fb b;
	struct spop_data v;

	spop_fb_begin(&b, buf, cap, SPOP_FRM_ACK, 249011, 1);
	spop_fb_set_var(&b, SPOP_SCOPE_TXN, "ok", 2, &v_true);
	v.type = SPOP_DATA_STR;
	v.u.s.ptr = (const uint8_t *)"valid";
	v.u.s.len = 5;
	spop_fb_set_var(&b, SPOP_SCOPE_TXN, "status", 6, &v);
	v.u.s.ptr = (const uint8_t *)"k_0001";
	v.u.s.len = 6;
	spop_fb_set_var(&b, SPOP_SCOPE_TXN, "key_id", 6, &v);
	v.u.s.ptr = (const uint8_t *)"team-a";
	v.u.s.len = 6;
	spop_fb_set_var(&b, SPOP_SCOPE_TXN, "owner", 5, &v);
	v.u.s.ptr = (const uint8_t *)"";
	v.u.s.len = 0;
	spop_fb_set_var(&b, SPOP_SCOPE_TXN, "message", 7, &v);
	return spop_fb_end(&b);
}

static void test_ack_never_exceeds_cap(void **state)
{
	uint8_t full[256], *p;
	size_t cap;
	int n;

	(void)state;
	n = build_verdict(full, sizeof(full));
	assert_true(n > 0);
	for (cap = 0; cap < (size_t)n; cap++) {
		p = tu_guard_room(&guard, cap);
		assert_int_equal(build_verdict(p, cap), -SPOP_ERR_TOO_BIG);
	}
	p = tu_guard_room(&guard, (size_t)n);
	assert_int_equal(build_verdict(p, (size_t)n), n);
	assert_memory_equal(p, full, (size_t)n);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_ack_vectors_build),
		cmocka_unit_test(test_ack_vector_2490_decodes),
		cmocka_unit_test(test_ack_scopes_and_unset),
		cmocka_unit_test(test_ack_rejects_bad_scope_and_names),
		cmocka_unit_test(test_ack_roundtrip_every_type),
		cmocka_unit_test(test_ack_never_exceeds_cap),
	};

	return cmocka_run_group_tests_name("spop_ack", tests, setup, teardown);
}
