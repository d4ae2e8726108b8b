/* SPDX-License-Identifier: Apache-2.0 */
/*
 * test_keystore_overlay: ks_set_apply, a change to a few keys at the cost of
 * the change (issue 19).
 *
 * Every case checks the set ks_set_apply returns against a reference (the
 * same keys built from scratch with ks_set_build): each id and each digest
 * ever used answers the same record or none, ks_count agrees, and a walk
 * over the positions (ks_span, ks_entry_at) finds every key once. Cases:
 * create, revoke (same digest), delete, a digest changed under the same id,
 * a key changed twice over successive overlays, deleted then re-created,
 * a digest of a deleted base key reused, an id named twice in one change;
 * a duplicate digest is refused
 * (prev unchanged); the entries copied per change are the overlay's, not
 * the set's; past ks_overlay_limit the result is a new plain set with the
 * same keys; a merge done aside then rebased (ks_set_flatten of an older
 * overlay, ks_set_rebase of the changes since) gives the current keys; and
 * a seeded random run of mixed changes over many merges.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "keyfmt.h"
#include "keystore.h"

#define NBASE 2000        /* base keys; ids 0..NBASE-1 */
#define NIDS  4000        /* ids the model knows */

/* The model: the current record of every id (live or not). */
static struct ks_entry model[NIDS];
static bool live[NIDS];
static unsigned ver[NIDS];           /* digest version of each id */
static uint64_t rng = 0x9e3779b97f4a7c15ull;

static uint64_t rnd(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return rng;
}

static void make_id(unsigned i, char out[KEY_ID_LEN + 1])
{
	static const char b62[] = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

	snprintf(out, KEY_ID_LEN + 1, "ov%010u", i);
	out[KEY_ID_LEN - 1] = b62[i % 62];
}

static void make_digest(unsigned i, unsigned v, uint8_t d[KEY_DIGEST_LEN])
{
	char s[64];

	snprintf(s, sizeof(s), "key-%u-version-%u", i, v);
	keyfmt_digest(s, strlen(s), d);
}

static void model_set(unsigned i, int64_t revoked, const char *route)
{
	struct ks_entry *e = &model[i];

	memset(e, 0, sizeof(*e));
	make_id(i, e->id);
	make_digest(i, ver[i], e->digest);
	e->route = route;
	e->routes = "";
	e->owner = i % 3 ? "owner" : "";
	e->alias = "";
	e->tags = i % 5 ? "" : "team=a";
	e->created = 1000 + i;
	e->revoked = revoked;
	live[i] = true;
}

static void model_reset(void)
{
	memset(model, 0, sizeof(model));
	memset(live, 0, sizeof(live));
	memset(ver, 0, sizeof(ver));
	for (unsigned i = 0; i < NBASE; i++)
		model_set(i, 0, "openai");
}

static struct ks_set *model_build(void)
{
	struct ks_entry *v = malloc(NIDS * sizeof(*v));
	size_t n = 0;
	char err[256];
	struct ks_set *s;

	assert_non_null(v);
	for (unsigned i = 0; i < NIDS; i++)
		if (live[i])
			v[n++] = model[i];
	s = ks_set_build(v, n, err, sizeof(err));
	if (s == NULL)
		fail_msg("build: %s", err);
	free(v);
	return s;
}

static bool entry_same(const struct ks_entry *a, const struct ks_entry *b)
{
	return memcmp(a->digest, b->digest, KEY_DIGEST_LEN) == 0 && strcmp(a->id, b->id) == 0 &&
	    strcmp(a->route, b->route) == 0 && strcmp(a->owner, b->owner) == 0 &&
	    strcmp(ks_entry_routes(a), ks_entry_routes(b)) == 0 &&
	    strcmp(a->tags ? a->tags : "", b->tags ? b->tags : "") == 0 &&
	    a->created == b->created && a->expires == b->expires && a->revoked == b->revoked;
}

/* <s> holds exactly the model's live keys. */
static void check_against_model(const struct ks_set *s)
{
	size_t want = 0, seen = 0;
	uint8_t d[KEY_DIGEST_LEN];

	for (unsigned i = 0; i < NIDS; i++) {
		const struct ks_entry *e = ks_find_id(s, model[i].id);

		if (model[i].id[0] == '\0')
			continue;
		if (!live[i]) {
			if (e != NULL || ks_lookup(s, model[i].digest) != NULL)
				fail_msg("id %u: deleted, still found", i);
		} else {
			want++;
			if (e == NULL || !entry_same(e, &model[i]))
				fail_msg("id %u: %s", i, e == NULL ? "not found" : "wrong record");
			if (ks_lookup(s, model[i].digest) != e)
				fail_msg("id %u: digest lookup differs from id lookup", i);
			assert_int_equal(ks_entry_pos(s, e) < ks_span(s), 1);
			assert_ptr_equal(ks_entry_at(s, ks_entry_pos(s, e)), e);
		}
		/* Every older digest of the id: gone (none is reused here). */
		for (unsigned v = 0; v < ver[i]; v++) {
			make_digest(i, v, d);
			if (ks_lookup(s, d) != NULL)
				fail_msg("id %u: old digest %u still found", i, v);
		}
	}
	assert_int_equal(ks_count(s), want);
	for (size_t p = 0; p < ks_span(s); p++) {
		const struct ks_entry *e = ks_entry_at(s, p);

		if (e == NULL)
			continue;
		seen++;
		assert_ptr_equal(ks_find_id(s, e->id), e);
	}
	assert_int_equal(seen, want);
}

/* Applies the model's records of ids <ch>[0..<n>) to <*s> (replaced). */
static void apply(struct ks_set **s, const unsigned *ch, size_t n)
{
	const char *ids[256];
	struct ks_entry v[256];
	size_t nv = 0;
	char err[256];
	struct ks_set *ns;

	assert_true(n <= 256);
	for (size_t i = 0; i < n; i++) {
		if (model[ch[i]].id[0] == '\0')
			make_id(ch[i], model[ch[i]].id);
		ids[i] = model[ch[i]].id;
		if (live[ch[i]])
			v[nv++] = model[ch[i]];
	}
	ns = ks_set_apply(*s, ids, n, v, nv, err, sizeof(err));
	if (ns == NULL)
		fail_msg("apply: %s", err);
	ks_set_unref(*s);
	*s = ns;
}

static void test_changes_of_every_kind(void **state)
{
	struct ks_set *s;
	unsigned ch[4];

	(void)state;
	model_reset();
	s = model_build();
	/* create */
	model_set(NBASE, 0, "openai");
	ch[0] = NBASE;
	apply(&s, ch, 1);
	assert_non_null(ks_set_base(s));
	check_against_model(s);
	/* revoke a base key (same digest), delete another, change a digest */
	model[1].revoked = 5000;
	live[2] = false;
	ver[3]++;
	model_set(3, 0, "mistral");
	ch[0] = 1, ch[1] = 2, ch[2] = 3;
	apply(&s, ch, 3);
	check_against_model(s);
	/* the same keys again: route changed, un-deleted, revoked */
	model_set(1, 0, "azure");
	model_set(2, 0, "openai");
	model[3].revoked = 6000;
	apply(&s, ch, 3);
	check_against_model(s);
	/* the overlay's own key deleted, then re-created with a new digest */
	live[NBASE] = false;
	ch[0] = NBASE;
	apply(&s, ch, 1);
	check_against_model(s);
	ver[NBASE]++;
	model_set(NBASE, 0, "openai");
	apply(&s, ch, 1);
	check_against_model(s);
	/* still one overlay on the first base */
	assert_non_null(ks_set_base(s));
	ks_set_unref(s);
}

static void test_digest_of_a_deleted_key_reused(void **state)
{
	struct ks_set *s;
	unsigned ch[2];

	(void)state;
	model_reset();
	s = model_build();
	/* id 10 deleted and its digest given to a new id in the same change */
	live[10] = false;
	model_set(NBASE + 1, 0, "openai");
	memcpy(model[NBASE + 1].digest, model[10].digest, KEY_DIGEST_LEN);
	ch[0] = 10, ch[1] = NBASE + 1;
	apply(&s, ch, 2);
	assert_ptr_equal(ks_lookup(s, model[10].digest), ks_find_id(s, model[NBASE + 1].id));
	assert_null(ks_find_id(s, model[10].id));
	assert_int_equal(ks_count(s), NBASE);
	ks_set_unref(s);
}

/* An id named twice in one change (a caller that does not deduplicate)
 * hides its base entry once: the count stays right. */
static void test_id_named_twice(void **state)
{
	struct ks_set *s;
	unsigned ch[3] = { 30, 30, 31 };

	(void)state;
	model_reset();
	s = model_build();
	live[30] = false;
	model[31].revoked = 4000;
	apply(&s, ch, 3);
	check_against_model(s);
	assert_int_equal(ks_count(s), NBASE - 1);
	ks_set_unref(s);
}

static void test_duplicate_digest_refused(void **state)
{
	struct ks_set *s, *bad;
	struct ks_entry e;
	const char *ids[1];
	char err[256];

	(void)state;
	model_reset();
	s = model_build();
	e = model[20];
	make_id(NBASE + 2, e.id);      /* a new id with the digest of live key 20 */
	ids[0] = e.id;
	bad = ks_set_apply(s, ids, 1, &e, 1, err, sizeof(err));
	assert_null(bad);
	assert_non_null(strstr(err, "same digest"));
	/* an entry whose id is not among the changed ones */
	ids[0] = model[21].id;
	assert_null(ks_set_apply(s, ids, 1, &e, 1, err, sizeof(err)));
	/* prev unchanged */
	check_against_model(s);
	ks_set_unref(s);
}

/* 100 changes of one key each on a set of NBASE keys copy O(changes), where
 * rebuilding the set each time copied 100 x NBASE entries. */
static void test_cost_follows_the_changes(void **state)
{
	struct ks_set *s;
	uint64_t before;

	(void)state;
	model_reset();
	s = model_build();
	before = ks_entries_copied();
	for (unsigned k = 0; k < 100; k++) {
		unsigned ch = k % 2 ? k : NBASE + k;

		if (k % 2)
			model[ch].revoked = 7000;
		else
			model_set(ch, 0, "openai");
		apply(&s, &ch, 1);
	}
	check_against_model(s);
	assert_non_null(ks_set_base(s));
	/* Each change copies the overlay so far: at most 1 + 2 per earlier
	 * change (a revoke is an entry plus a mask): about 100 x 100, never
	 * 100 x NBASE. */
	print_message("entries copied for 100 changes on %d keys: %llu\n", NBASE,
	              (unsigned long long)(ks_entries_copied() - before));
	assert_true(ks_entries_copied() - before <= 100 * 2 * 100);
	ks_set_unref(s);
}

static void test_merge_past_the_limit(void **state)
{
	struct ks_set *s;
	size_t lim = ks_overlay_limit(NBASE);
	unsigned ch[100], k = 0, merges = 0, overlays = 0;

	(void)state;
	model_reset();
	s = model_build();
	assert_int_equal(lim, 256);
	/* 100 revokes per change: 200 records (an entry and a mask each), an
	 * overlay; the next change passes the limit: a merge, and so on. */
	while (merges < 2) {
		for (unsigned j = 0; j < 100; j++, k++) {
			ch[j] = k % NBASE;
			model[ch[j]].revoked = 8000 + k;
		}
		apply(&s, ch, 100);
		if (ks_set_base(s) == NULL) {
			merges++;
		} else {
			overlays++;
			assert_true(ks_overlay_size(s) <= lim);
		}
		check_against_model(s);
	}
	assert_int_equal(overlays, 2);
	ks_set_unref(s);
}

/* A merge done aside: the overlay of the time flattened while changes went
 * on, then those changes applied to the flat set (ks_set_rebase) give the
 * current keys on the new base. */
static void test_flatten_then_rebase(void **state)
{
	struct ks_set *s, *src, *flat, *r;
	const char *since[8];
	unsigned ch[4];
	char err[256];

	(void)state;
	model_reset();
	s = model_build();
	model[40].revoked = 100;                      /* before the merge */
	live[41] = false;
	ch[0] = 40, ch[1] = 41;
	apply(&s, ch, 2);
	src = ks_set_ref(s);
	flat = ks_set_flatten(src, err, sizeof(err));
	assert_non_null(flat);
	assert_null(ks_set_base(flat));
	check_against_model(flat);
	/* meanwhile: 40 changed again, 42 deleted, a new key, 41 re-created */
	model[40].revoked = 0;
	model_set(40, 200, "mistral");
	live[42] = false;
	model_set(NBASE + 5, 0, "openai");
	ver[41]++;
	model_set(41, 0, "openai");
	ch[0] = 40, ch[1] = 42;
	apply(&s, ch, 2);
	ch[0] = NBASE + 5, ch[1] = 41, ch[2] = 40;
	apply(&s, ch, 3);
	since[0] = model[40].id, since[1] = model[42].id, since[2] = model[NBASE + 5].id;
	since[3] = model[41].id, since[4] = model[40].id;        /* 40 twice */
	r = ks_set_rebase(flat, s, since, 5, err, sizeof(err));
	if (r == NULL)
		fail_msg("rebase: %s", err);
	assert_ptr_equal(ks_set_base(r), flat);
	check_against_model(r);
	assert_int_equal(ks_overlay_size(r), 5);   /* 3 records; 40 and 42 masked */
	ks_set_unref(r);
	ks_set_unref(flat);
	ks_set_unref(src);
	ks_set_unref(s);
}

/* A seeded random mix over many merges, each result checked whole. */
static void test_random_changes_match_a_rebuild(void **state)
{
	struct ks_set *s, *ref;
	unsigned ch[40];

	(void)state;
	model_reset();
	s = model_build();
	for (int round = 0; round < 150; round++) {
		size_t n = 1 + rnd() % 40;

		for (size_t j = 0; j < n; j++) {
			unsigned i = (unsigned)(rnd() % NIDS), dup = 0;

			for (size_t q = 0; q < j; q++)
				dup |= ch[q] == i;
			if (dup) {
				n = j;
				break;
			}
			ch[j] = i;
			switch (rnd() % 4) {
			case 0: live[i] = false; break;
			case 1: ver[i]++; model_set(i, 0, "openai"); break;
			case 2: model_set(i, (int64_t)(rnd() % 9000), "mistral"); break;
			default: model_set(i, 0, "openai,azure"); break;
			}
			if (live[i] && strchr(model[i].route, ',') != NULL) {
				model[i].routes = model[i].route;
				model[i].route = "openai";
			}
		}
		apply(&s, ch, n);
		check_against_model(s);
	}
	ref = model_build();
	assert_int_equal(ks_count(ref), ks_count(s));
	ks_set_unref(ref);
	ks_set_unref(s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_changes_of_every_kind),
		cmocka_unit_test(test_digest_of_a_deleted_key_reused),
		cmocka_unit_test(test_id_named_twice),
		cmocka_unit_test(test_duplicate_digest_refused),
		cmocka_unit_test(test_cost_follows_the_changes),
		cmocka_unit_test(test_merge_past_the_limit),
		cmocka_unit_test(test_flatten_then_rebase),
		cmocka_unit_test(test_random_changes_match_a_rebuild),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
