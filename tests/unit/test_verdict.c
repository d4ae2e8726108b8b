/* SPDX-License-Identifier: Apache-2.0 */
/*
 * test_verdict: (route, credential, time) -> verdict.
 *
 * Covered: every status of the table with the entry pointer it must (or must
 * not) carry, the precedence between them, "Bearer" stripping (case, blanks,
 * alone, glued to the key), length and charset limits at their edges, our
 * prefix with a bad checksum judged without a lookup, imported keys of
 * another format, and the expiry and revocation boundaries to the second.
 * The conf is built by hand (routes, key_prefix); conf_route_find is conf.c's.
 * Keys are never printed: they are compared with assert_true, never with
 * assert_string_equal.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "conf.h"
#include "keyfmt.h"
#include "keystore.h"
#include "verdict.h"

#define T_EXP   1800000000            /* expiry of K_EXP */
#define T_REV   1750000000            /* revocation of K_REV */
#define NOW     1740000000            /* before both */

static struct route routes[] = {
	{ .name = "openai", .name_len = 6, .context = "/openai", .context_len = 7,
	  .key_name = "Authorization" },
	{ .name = "mistral", .name_len = 7, .context = "/mistral", .context_len = 8,
	  .key_name = "X-API-Key", .rate_limit_rpm = 300 },
};

static struct conf conf = {
	.key_prefix = "ka_",
	.routes = routes,
	.nroutes = 2,
};

enum {
	K_OK = 0,          /* openai, valid */
	K_EXP,             /* openai, expires at T_EXP */
	K_REV,             /* openai, revoked at T_REV */
	K_BOTH,            /* openai, expired and revoked: revoked wins */
	K_OTHER,           /* mistral */
	K_FOREIGN,         /* imported, another format, openai */
	K_LONG,            /* imported, exactly KEY_MAX_LEN chars, openai */
	K_BADSUM,          /* our prefix, bad checksum, yet stored: must not be found */
	K_COUNT
};

struct fx {
	char keys[K_COUNT][KEY_MAX_LEN + 1];
	char fresh[KEY_GEN_MAX + 1];      /* well formed, not stored */
	struct ks_set *ks;
};

static int
fx_setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));
	struct ks_entry v[K_COUNT];
	char err[256];

	if (f == NULL)
		return -1;
	for (int i = 0; i < K_COUNT; i++) {
		if (i == K_FOREIGN)
			strcpy(f->keys[i], "sk-imported-0123456789abcdefXYZ");
		else if (i == K_LONG) {
			memset(f->keys[i], 'L', KEY_MAX_LEN);
			f->keys[i][KEY_MAX_LEN] = '\0';
		} else if (keyfmt_generate("ka_", f->keys[i], sizeof(f->keys[i])) < 0)
			return -1;
		if (i == K_BADSUM) {
			size_t n = strlen(f->keys[i]);
			f->keys[i][n - 1] = f->keys[i][n - 1] == 'A' ? 'B' : 'A';
		}
		memset(&v[i], 0, sizeof(v[i]));
		keyfmt_digest(f->keys[i], strlen(f->keys[i]), v[i].digest);
		snprintf(v[i].id, sizeof(v[i].id), "id%010u", (unsigned)i & 0xffffu);
		v[i].route = i == K_OTHER ? "mistral" : "openai";
		v[i].owner = "tests";
		v[i].created = NOW - 1000;
		v[i].expires = (i == K_EXP || i == K_BOTH) ? T_EXP : 0;
		v[i].revoked = (i == K_REV || i == K_BOTH) ? T_REV : 0;
		if (i == K_BOTH)
			v[i].revoked = T_EXP - 10;
		/* rate limits: K_OK 60 on a route without a default; K_OTHER
		 * none of its own on mistral (default 300); K_EXP 7 */
		v[i].rpm = i == K_OK ? 60 : i == K_EXP ? 7 : 0;
	}
	if (keyfmt_generate("ka_", f->fresh, sizeof(f->fresh)) < 0)
		return -1;
	if ((f->ks = ks_set_build(v, K_COUNT, err, sizeof(err))) == NULL)
		return -1;
	*state = f;
	return 0;
}

static int
fx_teardown(void **state)
{
	struct fx *f = *state;

	ks_set_unref(f->ks);
	free(f);
	return 0;
}

/* Evaluates <key> (a C string, or NULL) on <route> at <now>. */
static struct verdict
eval(const struct fx *f, const char *route, const char *key, int64_t now)
{
	struct verdict v;

	memset(&v, 0xa5, sizeof(v));          /* every field must be written */
	verdict_eval(&conf, f->ks, route, route ? strlen(route) : 0,
	             key, key ? strlen(key) : 0, now, &v);
	return v;
}

static void
expect(const struct fx *f, const char *route, const char *key, int64_t now,
       enum verdict_status want, int want_entry)
{
	struct verdict v = eval(f, route, key, now);

	if (v.status != want)
		fail_msg("route %s: got %s, want %s", route ? route : "(null)",
		         verdict_status_str(v.status), verdict_status_str(want));
	assert_non_null(v.message);
	if (want_entry < 0)
		assert_null(v.entry);
	else
		assert_ptr_equal(v.entry, ks_entry_at(f->ks, (size_t)want_entry));
}

static void
test_every_status_of_the_table(void **state)
{
	struct fx *f = *state;

	expect(f, "openai", f->keys[K_OK], NOW, VERDICT_OK, K_OK);
	expect(f, "nope", f->keys[K_OK], NOW, VERDICT_UNKNOWN_ROUTE, -1);
	expect(f, NULL, f->keys[K_OK], NOW, VERDICT_UNKNOWN_ROUTE, -1);
	expect(f, "openai", NULL, NOW, VERDICT_MISSING, -1);
	expect(f, "openai", "ka_", NOW, VERDICT_MALFORMED, -1);
	expect(f, "openai", f->fresh, NOW, VERDICT_INVALID, -1);
	expect(f, "openai", f->keys[K_EXP], T_EXP, VERDICT_EXPIRED, K_EXP);
	expect(f, "openai", f->keys[K_REV], T_REV, VERDICT_REVOKED, K_REV);
	expect(f, "openai", f->keys[K_OTHER], NOW, VERDICT_FORBIDDEN, K_OTHER);
	expect(f, "mistral", f->keys[K_OTHER], NOW, VERDICT_OK, K_OTHER);
	expect(f, "mistral", f->keys[K_OK], NOW, VERDICT_FORBIDDEN, K_OK);
}

/* The limit a request is held to: the key's rpm, else the route's
 * rate_limit_rpm, else none; only ok verdicts carry one. */
static void
test_effective_rpm(void **state)
{
	struct fx *f = *state;
	struct ks_entry e = { .rpm = 0 };
	struct route r = { .rate_limit_rpm = 0 };

	assert_int_equal(verdict_rpm(NULL, NULL), 0);
	assert_int_equal(verdict_rpm(&e, NULL), 0);
	assert_int_equal(verdict_rpm(&e, &r), 0);
	r.rate_limit_rpm = 300;
	assert_int_equal(verdict_rpm(&e, &r), 300);
	assert_int_equal(verdict_rpm(NULL, &r), 300);
	e.rpm = 1000;                 /* the key's own wins, higher or lower */
	assert_int_equal(verdict_rpm(&e, &r), 1000);
	e.rpm = 5;
	assert_int_equal(verdict_rpm(&e, &r), 5);
	assert_int_equal(verdict_rpm(&e, NULL), 5);

	assert_int_equal(eval(f, "openai", f->keys[K_OK], NOW).rpm, 60);
	assert_int_equal(eval(f, "openai", f->keys[K_EXP], NOW).rpm, 7);
	assert_int_equal(eval(f, "openai", f->keys[K_FOREIGN], NOW).rpm, 0);
	assert_int_equal(eval(f, "mistral", f->keys[K_OTHER], NOW).rpm, 300);
	/* not ok: no limit, whatever the key or route carries */
	assert_int_equal(eval(f, "openai", f->keys[K_EXP], T_EXP).rpm, 0);
	assert_int_equal(eval(f, "mistral", f->keys[K_OK], NOW).rpm, 0);
	assert_int_equal(eval(f, "openai", f->keys[K_OTHER], NOW).rpm, 0);
	assert_int_equal(eval(f, "mistral", NULL, NOW).rpm, 0);
	assert_int_equal(eval(f, "nope", f->keys[K_OK], NOW).rpm, 0);
	assert_int_equal(eval(f, "mistral", f->fresh, NOW).rpm, 0);
}

/* unknown route > missing > malformed > invalid; revoked > expired > forbidden */
static void
test_precedence(void **state)
{
	struct fx *f = *state;
	struct verdict v;

	expect(f, "nope", NULL, NOW, VERDICT_UNKNOWN_ROUTE, -1);
	expect(f, "nope", "bad key", NOW, VERDICT_UNKNOWN_ROUTE, -1);
	expect(f, "openai", f->keys[K_BOTH], T_EXP, VERDICT_REVOKED, K_BOTH);
	expect(f, "openai", f->keys[K_BOTH], T_EXP - 10, VERDICT_REVOKED, K_BOTH);
	expect(f, "openai", f->keys[K_BOTH], T_EXP - 11, VERDICT_OK, K_BOTH);
	expect(f, "mistral", f->keys[K_REV], T_REV, VERDICT_REVOKED, K_REV);
	expect(f, "mistral", f->keys[K_EXP], T_EXP, VERDICT_EXPIRED, K_EXP);
	/* route names match by exact length, never as prefixes */
	v = eval(f, "openai", f->keys[K_OK], NOW);
	assert_int_equal(v.status, VERDICT_OK);
	verdict_eval(&conf, f->ks, "openai-x", 6, f->keys[K_OK], strlen(f->keys[K_OK]), NOW, &v);
	assert_int_equal(v.status, VERDICT_OK);
	verdict_eval(&conf, f->ks, "openai", 5, f->keys[K_OK], strlen(f->keys[K_OK]), NOW, &v);
	assert_int_equal(v.status, VERDICT_UNKNOWN_ROUTE);
}

static void
test_bearer_variants(void **state)
{
	static const char *const good[] = {
		"Bearer ", "bearer ", "BEARER ", "bEaReR ", "Bearer     ", "Bearer\t",
		"Bearer \t ", "  Bearer ", "\tBearer\t\t",
	};
	struct fx *f = *state;
	char buf[KEY_MAX_LEN + 64];

	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		snprintf(buf, sizeof(buf), "%s%s  \t", good[i], f->keys[K_OK]);
		expect(f, "openai", buf, NOW, VERDICT_OK, K_OK);
	}
	expect(f, "openai", "Bearer", NOW, VERDICT_MISSING, -1);
	expect(f, "openai", "bearer", NOW, VERDICT_MISSING, -1);
	expect(f, "openai", "Bearer   ", NOW, VERDICT_MISSING, -1);
	expect(f, "openai", "  BEARER\t ", NOW, VERDICT_MISSING, -1);
	/* "Bearerabc" is not a scheme: judged whole, as a (short, foreign) key */
	expect(f, "openai", "Bearerabc", NOW, VERDICT_INVALID, -1);
	snprintf(buf, sizeof(buf), "Bearer%s", f->keys[K_OK]);
	expect(f, "openai", buf, NOW, VERDICT_INVALID, -1);
	/* only one scheme is stripped; the second leaves a blank inside */
	snprintf(buf, sizeof(buf), "Bearer Bearer %s", f->keys[K_OK]);
	expect(f, "openai", buf, NOW, VERDICT_MALFORMED, -1);
	/* other schemes are not stripped */
	snprintf(buf, sizeof(buf), "Basic %s", f->keys[K_OK]);
	expect(f, "openai", buf, NOW, VERDICT_MALFORMED, -1);
	/* whatever the route's key name: stripping is unconditional */
	snprintf(buf, sizeof(buf), "Bearer %s", f->keys[K_OTHER]);
	expect(f, "mistral", buf, NOW, VERDICT_OK, K_OTHER);
}

static void
test_strip_bearer_slices(void **state)
{
	const char *out;
	size_t len;

	(void)state;
	verdict_strip_bearer(" \tBearer  abc \t", 15, &out, &len);
	assert_int_equal(len, 3);
	assert_memory_equal(out, "abc", 3);
	verdict_strip_bearer("Bearerabc", 9, &out, &len);
	assert_int_equal(len, 9);
	verdict_strip_bearer("  x  ", 5, &out, &len);
	assert_int_equal(len, 1);
	assert_memory_equal(out, "x", 1);
	verdict_strip_bearer("BEARER", 6, &out, &len);
	assert_int_equal(len, 0);
	verdict_strip_bearer("Beare", 5, &out, &len);
	assert_int_equal(len, 5);
	verdict_strip_bearer("", 0, &out, &len);
	assert_int_equal(len, 0);
	verdict_strip_bearer(NULL, 4, &out, &len);
	assert_int_equal(len, 0);
	/* the length bounds the input, not a NUL */
	verdict_strip_bearer("Bearer abcdef", 9, &out, &len);
	assert_int_equal(len, 2);
	assert_memory_equal(out, "ab", 2);
	/* only spaces and tabs are blanks */
	verdict_strip_bearer("Bearer\nabc", 10, &out, &len);
	assert_int_equal(len, 10);
}

static void
test_missing_when_nothing_is_left(void **state)
{
	struct fx *f = *state;
	struct verdict v;

	expect(f, "openai", NULL, NOW, VERDICT_MISSING, -1);
	expect(f, "openai", "", NOW, VERDICT_MISSING, -1);
	expect(f, "openai", "   ", NOW, VERDICT_MISSING, -1);
	expect(f, "openai", "\t \t", NOW, VERDICT_MISSING, -1);
	/* a NULL key with a length is still no key */
	verdict_eval(&conf, f->ks, "openai", 6, NULL, 5, NOW, &v);
	assert_int_equal(v.status, VERDICT_MISSING);
}

static void
test_length_and_charset_limits(void **state)
{
	struct fx *f = *state;
	char buf[KEY_MAX_LEN + 16];
	struct verdict v;

	/* exactly KEY_MAX_LEN: accepted and found; one more: malformed */
	expect(f, "openai", f->keys[K_LONG], NOW, VERDICT_OK, K_LONG);
	memset(buf, 'L', KEY_MAX_LEN + 1);
	buf[KEY_MAX_LEN + 1] = '\0';
	expect(f, "openai", buf, NOW, VERDICT_MALFORMED, -1);
	buf[KEY_MAX_LEN] = '\0';
	buf[0] = 'M';                             /* 256 chars, not stored */
	expect(f, "openai", buf, NOW, VERDICT_INVALID, -1);
	/* blanks around a 256-char key do not count towards the limit */
	snprintf(buf, sizeof(buf), "  %s  ", f->keys[K_LONG]);
	expect(f, "openai", buf, NOW, VERDICT_OK, K_LONG);

	/* a blank or any byte outside 0x21..0x7e inside the key */
	snprintf(buf, sizeof(buf), "%s", f->keys[K_FOREIGN]);
	buf[5] = ' ';
	expect(f, "openai", buf, NOW, VERDICT_MALFORMED, -1);
	for (int c = 0; c < 256; c++) {
		if (c >= 0x21 && c <= 0x7e)
			continue;
		snprintf(buf, sizeof(buf), "%s", f->keys[K_FOREIGN]);
		buf[5] = (char)c;
		verdict_eval(&conf, f->ks, "openai", 6, buf, strlen(f->keys[K_FOREIGN]), NOW, &v);
		if (v.status != VERDICT_MALFORMED)
			fail_msg("byte 0x%02x inside a key: %s", c, verdict_status_str(v.status));
		assert_null(v.entry);
	}
	/* a short foreign key is not malformed: it is simply not in the store */
	expect(f, "openai", "x", NOW, VERDICT_INVALID, -1);
}

static void
test_our_prefix_with_bad_checksum_is_malformed_without_lookup(void **state)
{
	struct fx *f = *state;
	char buf[KEY_MAX_LEN + 8];
	size_t n;

	/* K_BADSUM's digest is in the store: a lookup would find it */
	expect(f, "openai", f->keys[K_BADSUM], NOW, VERDICT_MALFORMED, -1);
	/* a substitution in the random part */
	snprintf(buf, sizeof(buf), "%s", f->keys[K_OK]);
	buf[10] = buf[10] == 'q' ? 'r' : 'q';
	expect(f, "openai", buf, NOW, VERDICT_MALFORMED, -1);
	/* our prefix, wrong length */
	n = strlen(f->keys[K_OK]);
	snprintf(buf, sizeof(buf), "%s", f->keys[K_OK]);
	buf[n - 1] = '\0';
	expect(f, "openai", buf, NOW, VERDICT_MALFORMED, -1);
	snprintf(buf, sizeof(buf), "%sA", f->keys[K_OK]);
	expect(f, "openai", buf, NOW, VERDICT_MALFORMED, -1);
}

static void
test_foreign_imported_key_works(void **state)
{
	struct fx *f = *state;

	expect(f, "openai", f->keys[K_FOREIGN], NOW, VERDICT_OK, K_FOREIGN);
	expect(f, "mistral", f->keys[K_FOREIGN], NOW, VERDICT_FORBIDDEN, K_FOREIGN);
}

static void
test_expiry_and_revocation_boundaries(void **state)
{
	struct fx *f = *state;

	expect(f, "openai", f->keys[K_EXP], T_EXP - 1, VERDICT_OK, K_EXP);
	expect(f, "openai", f->keys[K_EXP], T_EXP, VERDICT_EXPIRED, K_EXP);
	expect(f, "openai", f->keys[K_EXP], T_EXP + 1, VERDICT_EXPIRED, K_EXP);
	/* a revocation time in the future (rotation grace) still serves */
	expect(f, "openai", f->keys[K_REV], T_REV - 1, VERDICT_OK, K_REV);
	expect(f, "openai", f->keys[K_REV], T_REV, VERDICT_REVOKED, K_REV);
	expect(f, "openai", f->keys[K_REV], T_REV + 1, VERDICT_REVOKED, K_REV);
	/* 0 means never, whatever the time */
	expect(f, "openai", f->keys[K_OK], INT64_MAX, VERDICT_OK, K_OK);
	expect(f, "openai", f->keys[K_OK], 0, VERDICT_OK, K_OK);
}

static void
test_empty_or_null_store_denies(void **state)
{
	struct fx *f = *state;
	struct ks_set *empty = ks_set_empty();
	struct verdict v;

	assert_non_null(empty);
	verdict_eval(&conf, empty, "openai", 6, f->keys[K_OK], strlen(f->keys[K_OK]), NOW, &v);
	assert_int_equal(v.status, VERDICT_INVALID);
	assert_null(v.entry);
	verdict_eval(&conf, NULL, "openai", 6, f->keys[K_OK], strlen(f->keys[K_OK]), NOW, &v);
	assert_int_equal(v.status, VERDICT_INVALID);
	ks_set_unref(empty);
}

/* The deny-all set of a stale shared store (stale_action "deny"): every
 * request, even with a valid key on a known route, reads unknown_route. */
static void
test_deny_all_set_is_unknown_route(void **state)
{
	struct fx *f = *state;
	struct ks_set *deny = ks_set_deny_all();
	struct verdict v;

	assert_non_null(deny);
	assert_true(ks_set_denies_all(deny));
	assert_false(ks_set_denies_all(f->ks));
	assert_false(ks_set_denies_all(NULL));
	verdict_eval(&conf, deny, "openai", 6, f->keys[K_OK], strlen(f->keys[K_OK]), NOW, &v);
	assert_int_equal(v.status, VERDICT_UNKNOWN_ROUTE);
	assert_null(v.entry);
	assert_null(v.route);
	verdict_eval(&conf, f->ks, "openai", 6, f->keys[K_OK], strlen(f->keys[K_OK]), NOW, &v);
	assert_int_equal(v.status, VERDICT_OK);
	ks_set_unref(deny);
}

static void
test_messages_and_names_are_static_and_json_safe(void **state)
{
	static const char *const names[VERDICT_ENTRIES] = {
		"ok", "missing", "malformed", "invalid", "expired", "revoked", "forbidden",
		"unknown_route",
	};
	struct fx *f = *state;
	const char *seen[VERDICT_ENTRIES] = { 0 };
	struct verdict v;

	for (int s = 0; s < VERDICT_ENTRIES; s++)
		assert_string_equal(verdict_status_str((enum verdict_status)s), names[s]);
	assert_string_equal(verdict_status_str(VERDICT_ENTRIES), "unknown");

	v = eval(f, "openai", f->keys[K_OK], NOW);
	seen[v.status] = v.message;
	assert_string_equal(v.message, "OK");
	v = eval(f, "openai", NULL, NOW);
	assert_string_equal(v.message, "Missing API key.");
	seen[v.status] = v.message;
	v = eval(f, "openai", "a b", NOW);
	assert_string_equal(v.message, "Malformed API key.");
	seen[v.status] = v.message;
	v = eval(f, "openai", f->fresh, NOW);
	assert_string_equal(v.message, "Incorrect API key provided.");
	seen[v.status] = v.message;
	v = eval(f, "openai", f->keys[K_EXP], T_EXP);
	assert_string_equal(v.message, "API key has expired.");
	seen[v.status] = v.message;
	v = eval(f, "openai", f->keys[K_REV], T_REV);
	assert_string_equal(v.message, "API key has been revoked.");
	seen[v.status] = v.message;
	v = eval(f, "mistral", f->keys[K_OK], NOW);
	assert_string_equal(v.message, "API key is not allowed on this route.");
	seen[v.status] = v.message;
	v = eval(f, "nope", f->keys[K_OK], NOW);
	assert_non_null(strstr(v.message, "Unknown route"));
	seen[v.status] = v.message;
	for (int s = 0; s < VERDICT_ENTRIES; s++) {
		assert_non_null(seen[s]);
		for (const char *p = seen[s]; *p; p++)
			assert_true(*p >= 0x20 && *p < 0x7f && *p != '"' && *p != '\\');
	}
}

/* A key on two routes passes both and is forbidden on a third, also on a
 * route whose name is a prefix or an extension of one of its routes. */
static void
test_key_on_several_routes(void **state)
{
	static struct route r3[] = {
		{ .name = "openai", .name_len = 6, .context = "/openai", .context_len = 7 },
		{ .name = "mistral", .name_len = 7, .context = "/mistral", .context_len = 8 },
		{ .name = "azure", .name_len = 5, .context = "/azure", .context_len = 6 },
		{ .name = "open", .name_len = 4, .context = "/open", .context_len = 5 },
		{ .name = "mistral2", .name_len = 8, .context = "/mistral2", .context_len = 9 },
	};
	struct conf c3 = { .key_prefix = "ka_", .routes = r3, .nroutes = 5 };
	struct ks_entry e;
	struct ks_set *ks;
	struct verdict v;
	char key[KEY_GEN_MAX + 1], err[256];
	static const struct { const char *route; enum verdict_status want; } cases[] = {
		{ "openai", VERDICT_OK }, { "mistral", VERDICT_OK }, { "azure", VERDICT_FORBIDDEN },
		{ "open", VERDICT_FORBIDDEN }, { "mistral2", VERDICT_FORBIDDEN },
	};

	(void)state;
	assert_true(keyfmt_generate("ka_", key, sizeof(key)) > 0);
	memset(&e, 0, sizeof(e));
	keyfmt_digest(key, strlen(key), e.digest);
	strcpy(e.id, "multi0000001");
	e.route = "openai";
	e.routes = "openai,mistral";
	e.owner = "";
	e.created = NOW - 10;
	assert_int_equal(ks_entry_check(&e, err, sizeof(err)), 0);
	ks = ks_set_build(&e, 1, err, sizeof(err));
	assert_non_null(ks);
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		verdict_eval(&c3, ks, cases[i].route, strlen(cases[i].route), key, strlen(key), NOW, &v);
		assert_int_equal(v.status, cases[i].want);
	}
	ks_set_unref(ks);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_every_status_of_the_table),
		cmocka_unit_test(test_effective_rpm),
		cmocka_unit_test(test_precedence),
		cmocka_unit_test(test_bearer_variants),
		cmocka_unit_test(test_strip_bearer_slices),
		cmocka_unit_test(test_missing_when_nothing_is_left),
		cmocka_unit_test(test_length_and_charset_limits),
		cmocka_unit_test(test_our_prefix_with_bad_checksum_is_malformed_without_lookup),
		cmocka_unit_test(test_foreign_imported_key_works),
		cmocka_unit_test(test_expiry_and_revocation_boundaries),
		cmocka_unit_test(test_empty_or_null_store_denies),
		cmocka_unit_test(test_deny_all_set_is_unknown_route),
		cmocka_unit_test(test_messages_and_names_are_static_and_json_safe),
		cmocka_unit_test(test_key_on_several_routes),
	};

	return cmocka_run_group_tests(tests, fx_setup, fx_teardown);
}
