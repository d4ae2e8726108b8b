/* SPDX-License-Identifier: Apache-2.0 */
/*
 * test_notify: keyauthd's verdicts, on one daemon (KEYAUTHD, default
 * build/keyauthd) with the protocol programs' config and keys
 * (tests/lib/fixture.c): every verdict status, odd keys (bad checksum,
 * blanks, control characters, non-ASCII, too short or long), Bearer
 * variants, message names ("keyauth-<x>", foreign messages, empty NOTIFY, no
 * key argument) and routes with several key carriers. Ends by checking that
 * the daemon's log holds none of the keys used.
 *
 * Keys are never printed: assertions compare statuses, ids and owners only.
 * Set KEYAUTH_TEST_KEEP=1 to keep the temporary directory (it holds keys).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "fixture.h"
#include "spop_expect.h"

#define PREFIX "ka_"

static struct tf_agent *const d1 = &tf_protocol.d;
static struct tf_keyset *const K = &tf_protocol.k;

/* ---- verdicts --------------------------------------------------------------------- */

static char key_bad_crc[KEY_GEN_MAX + 1];
static char key_inner_space[KEY_GEN_MAX + 1];
static char key_ctrl[KEY_GEN_MAX + 1];
static char key_short_ours[] = PREFIX "tooShort123";
static char key_foreign[] = "sk-proj-0123456789abcdefghijABCDEFGHIJ0123456789";
static char key_256[KEY_MAX_LEN + 1];
static char key_257[KEY_MAX_LEN + 2];
static char key_utf8[] = "ka_\xc3\xa9t\xc3\xa9_caf\xc3\xa9_0123456789012345678901234567890";

static void make_odd_keys(void)
{
	size_t len = strlen(K->valid.key);

	strcpy(key_bad_crc, K->valid.key);
	key_bad_crc[len - 1] = key_bad_crc[len - 1] == 'A' ? 'B' : 'A';
	strcpy(key_inner_space, K->valid.key);
	key_inner_space[10] = ' ';
	strcpy(key_ctrl, K->valid.key);
	key_ctrl[10] = '\x01';
	memset(key_256, 'x', KEY_MAX_LEN);
	key_256[KEY_MAX_LEN] = '\0';
	memset(key_257, 'x', KEY_MAX_LEN + 1);
	key_257[KEY_MAX_LEN + 1] = '\0';
	tf_key_track(key_bad_crc, "bad checksum");
	tf_key_track(key_inner_space, "inner space");
	tf_key_track(key_ctrl, "control character");
	tf_key_track(key_short_ours, "our prefix, too short");
	tf_key_track(key_foreign, "foreign format");
	tf_key_track(key_256, "256 bytes");
	tf_key_track(key_257, "257 bytes");
	tf_key_track(key_utf8, "non-ASCII");
}

struct vcase {
	const char *what;
	const char *route;
	const char *key;
	const char *status;
	const struct tf_key *match;   /* key_id/owner expected, or NULL */
};

static void test_every_verdict_status(void **state)
{
	struct spc_conn *c = open_ready(d1->uaddr);

	(void)state;
	make_odd_keys();
	const struct vcase cases[] = {
		{ "valid key", "openai", K->valid.key, "ok", &K->valid },
		{ "key expiring tomorrow", "openai", K->future.key, "ok", &K->future },
		{ "valid key on its own route", "mistral", K->other.key, "ok", &K->other },
		{ "NULL key", "openai", NULL, "missing", NULL },
		{ "empty key", "openai", "", "missing", NULL },
		{ "blank key", "openai", " \t ", "missing", NULL },
		{ "bad checksum", "openai", key_bad_crc, "malformed", NULL },
		{ "inner space", "openai", key_inner_space, "malformed", NULL },
		{ "control character", "openai", key_ctrl, "malformed", NULL },
		{ "non-ASCII", "openai", key_utf8, "malformed", NULL },
		{ "our prefix, too short", "openai", key_short_ours, "malformed", NULL },
		{ "257 bytes", "openai", key_257, "malformed", NULL },
		{ "256 bytes, foreign", "openai", key_256, "invalid", NULL },
		{ "well formed, not stored", "openai", K->unstored.key, "invalid", NULL },
		{ "foreign format, not stored", "openai", key_foreign, "invalid", NULL },
		{ "expired", "openai", K->expired.key, "expired", &K->expired },
		{ "revoked", "openai", K->revoked.key, "revoked", &K->revoked },
		{ "other route", "openai", K->other.key, "forbidden", &K->other },
		{ "unknown route", "nope", K->valid.key, "unknown_route", NULL },
		{ "unknown route, no key", "nope", NULL, "unknown_route", NULL },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		expect_verdict(c, cases[i].route, cases[i].key, cases[i].status, cases[i].match,
		               cases[i].what);
	spc_close(c);
}

static void test_bearer_variants(void **state)
{
	struct spc_conn *c = open_ready(d1->uaddr);
	/* What goes before and after the key. */
	static const char *const ok_forms[][2] = {
		{ "Bearer ", "" }, { "bearer ", "" }, { "BEARER ", "" }, { "bEaReR ", "" },
		{ "Bearer    ", "" }, { "Bearer\t", "" }, { "Bearer \t ", "" }, { "  Bearer ", "  " },
		{ "\tBearer ", "\t" }, { " ", " " }, { "Bearer ", " \t" },
	};
	static const char *const missing_forms[] = { "Bearer", "bearer", "Bearer ", "  Bearer\t " };
	char buf[256];

	(void)state;
	for (size_t i = 0; i < sizeof(ok_forms) / sizeof(ok_forms[0]); i++) {
		snprintf(buf, sizeof(buf), "%s%s%s", ok_forms[i][0], K->valid.key, ok_forms[i][1]);
		expect_verdict(c, "openai", buf, "ok", &K->valid, ok_forms[i][0]);
	}
	for (size_t i = 0; i < sizeof(missing_forms) / sizeof(missing_forms[0]); i++)
		expect_verdict(c, "openai", missing_forms[i], "missing", NULL, missing_forms[i]);
	/* Not a scheme: judged whole as a (foreign, unknown) key. */
	expect_verdict(c, "openai", "Bearerabc", "invalid", NULL, "Bearerabc");
	snprintf(buf, sizeof(buf), "Bearer%s", K->valid.key);
	expect_verdict(c, "openai", buf, "invalid", NULL, "Bearer<key> without a blank");
	/* The scheme is stripped once only. */
	snprintf(buf, sizeof(buf), "Bearer Bearer %s", K->valid.key);
	expect_verdict(c, "openai", buf, "malformed", NULL, "Bearer Bearer <key>");
	spc_close(c);
}

/* An ACK as read back: the verdict and the ids it answers. */
struct acked {
	struct spc_ack a;
	uint64_t sid, fid;
};

/* Sends the <n> bytes (n > 0: built) of a NOTIFY in <buf> and reads the
 * answer, which must be an ACK that parses. */
static struct acked notify_ack(struct spc_conn *c, const uint8_t *buf, int n)
{
	struct spc_frame f;
	struct acked r;

	assert_true(n > 0);
	assert_int_equal(spc_send_raw(c, buf, (size_t)n, io_ms()), 0);
	assert_int_equal(spc_read_frame(c, &f, io_ms()), SPC_FRAME);
	assert_int_equal(f.type, SPOP_FRM_ACK);
	r.sid = f.sid;
	r.fid = f.fid;
	assert_int_equal(spc_ack_parse(f.payload, f.payload_len, &r.a), 0);
	spc_frame_free(&f);
	return r;
}

/* "keyauth-<x>" is a keyauth message; other messages are ignored; an empty
 * NOTIFY and a NOTIFY with only foreign messages still get an ACK with at least
 * one action; an absent key argument means "missing". */
static void test_message_names_and_empty_notify(void **state)
{
	struct spc_conn *c = open_ready(d1->uaddr);
	struct acked r;
	uint8_t buf[2048];
	int n;

	(void)state;
	/* keyauth-openai */
	n = spc_build_keyauth(buf, sizeof(buf), 7, 3, "keyauth-openai", "openai", K->valid.key,
	                      SPC_KEY_STRLEN);
	r = notify_ack(c, buf, n);
	assert_int_equal(r.sid, 7);
	assert_int_equal(r.fid, 3);
	check_ack_shape(&r.a);
	assert_string_equal(r.a.status, "ok");
	assert_true(r.a.ok);

	/* Empty NOTIFY. */
	n = spc_build_notify(buf, sizeof(buf), 8, 1, NULL, NULL, 0);
	assert_int_equal(n, 4 + 7);
	r = notify_ack(c, buf, n);
	assert_int_equal(r.sid, 8);
	assert_int_equal(r.fid, 1);
	assert_true(r.a.nactions >= 1);
	assert_true(r.a.has_ok);
	assert_false(r.a.ok);

	/* Only a foreign message. */
	struct spc_arg other[1] = { { .name = "x", .value = { .type = SPOP_DATA_BOOL } } };

	other[0].value.u.b = true;
	n = spc_build_notify(buf, sizeof(buf), 9, 1, "something-else", other, 1);
	r = notify_ack(c, buf, n);
	assert_int_equal(r.sid, 9);
	assert_true(r.a.nactions >= 1);
	assert_false(r.a.ok);

	/* "keyauthx" is not "keyauth-*": ignored, so not ok. */
	n = spc_build_keyauth(buf, sizeof(buf), 10, 1, "keyauthx", "openai", K->valid.key,
	                      SPC_KEY_STRLEN);
	r = notify_ack(c, buf, n);
	assert_true(r.a.nactions >= 1);
	assert_false(r.a.ok);

	/* A foreign message first, then keyauth in the same NOTIFY. */
	{
		struct spop_fb b;
		uint8_t tmp[1024];
		int m = spc_build_notify(tmp, sizeof(tmp), 0, 0, "something-else", other, 1);
		int k = spc_build_keyauth(buf, sizeof(buf), 11, 2, NULL, "openai", K->valid.key,
		                          SPC_KEY_STRLEN);
		uint8_t frame[2048];

		assert_true(m > 0 && k > 0);
		/* Payloads start after 4 + 1 + 4 + sid + fid bytes: 11 for both. */
		spop_fb_begin(&b, frame, sizeof(frame), SPOP_FRM_NOTIFY, 11, 2);
		memcpy(b.p, tmp + 11, (size_t)m - 11);
		b.p += m - 11;
		memcpy(b.p, buf + 11, (size_t)k - 11);
		b.p += k - 11;
		r = notify_ack(c, frame, spop_fb_end(&b));
		assert_int_equal(r.sid, 11);
		assert_int_equal(r.fid, 2);
		check_ack_shape(&r.a);
		assert_string_equal(r.a.status, "ok");
	}

	/* No "key" argument at all. */
	struct spc_arg route_only[1] = { { .name = "route", .value = { .type = SPOP_DATA_STR } } };

	route_only[0].value.u.s.ptr = (const uint8_t *)"openai";
	route_only[0].value.u.s.len = 6;
	n = spc_build_notify(buf, sizeof(buf), 12, 1, "keyauth", route_only, 1);
	r = notify_ack(c, buf, n);
	check_ack_shape(&r.a);
	assert_string_equal(r.a.status, "missing");
	spc_close(c);
}

/* A route with several carriers sends key, key2, key3 in its
 * order; absent ones arrive as NULL. The first present one is the key. */
static struct spc_ack
query_carriers(struct spc_conn *c, uint64_t sid, const struct spop_data *k1,
               const struct spop_data *k2, const struct spop_data *k3)
{
	struct spc_arg args[4] = {
		{ .name = "route", .value = { .type = SPOP_DATA_STR } },
		{ .name = "key", .value = *k1 },
		{ .name = "key2", .value = *k2 },
		{ .name = "key3", .value = *k3 },
	};
	struct acked r;
	uint8_t buf[2048];

	args[0].value.u.s.ptr = (const uint8_t *)"openai";
	args[0].value.u.s.len = 6;
	r = notify_ack(c, buf, spc_build_notify(buf, sizeof(buf), sid, 1, "keyauth-openai", args, 4));
	assert_int_equal(r.sid, sid);
	check_ack_shape(&r.a);
	return r.a;
}

static void test_several_carriers_first_present_wins(void **state)
{
	struct spc_conn *c = open_ready(d1->uaddr);
	struct spop_data none = { .type = SPOP_DATA_NULL };
	struct spop_data valid = { .type = SPOP_DATA_STR };
	struct spop_data bearer = { .type = SPOP_DATA_STR };
	struct spop_data bad = { .type = SPOP_DATA_STR };
	char bearer_buf[128];
	struct spc_ack a;

	(void)state;
	valid.u.s.ptr = (const uint8_t *)K->valid.key;
	valid.u.s.len = strlen(K->valid.key);
	snprintf(bearer_buf, sizeof(bearer_buf), "Bearer %s", K->valid.key);
	bearer.u.s.ptr = (const uint8_t *)bearer_buf;
	bearer.u.s.len = strlen(bearer_buf);
	bad.u.s.ptr = (const uint8_t *)"not-a-key";
	bad.u.s.len = 9;

	a = query_carriers(c, 21, &none, &valid, &none);
	assert_string_equal(a.status, "ok");          /* the second carrier */
	a = query_carriers(c, 22, &none, &none, &bearer);
	assert_string_equal(a.status, "ok");          /* the third, Bearer stripped */
	a = query_carriers(c, 23, &bad, &valid, &none);
	assert_string_equal(a.status, "invalid");     /* the first present wins */
	a = query_carriers(c, 24, &valid, &bad, &bad);
	assert_string_equal(a.status, "ok");
	a = query_carriers(c, 25, &none, &none, &none);
	assert_string_equal(a.status, "missing");
	spc_close(c);
}

static void test_log_never_contains_a_key_1(void **state)
{
	(void)state;
	check_log_has_no_key(d1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_every_verdict_status),
		cmocka_unit_test(test_bearer_variants),
		cmocka_unit_test(test_message_names_and_empty_notify),
		cmocka_unit_test(test_several_carriers_first_present_wins),
		cmocka_unit_test(test_log_never_contains_a_key_1),
	};

	return cmocka_run_group_tests_name("keyauthd verdicts", tests, tf_protocol_setup,
	                                   tf_agent_teardown);
}
