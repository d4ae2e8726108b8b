/* SPDX-License-Identifier: Apache-2.0 */
/*
 * test_churn: key churn on a large Redis store costs what changed, not the
 * whole set (issue 19).
 *
 * keyauthd's Redis backend (store_role_agent) runs in this process on a
 * libev loop, against a real redis-server (Debian's; skipped when absent) on
 * a free loopback port, persistence off. Writes go through the project's
 * own write path (store_redis_commit: MULTI, HSET, SADD, INCR, PUBLISH of
 * the ids, EXEC), one change at a time, each followed by a bounded wait for
 * the agent's incremental load. Checks:
 *  - 100 changes on a store of CHURN_N (100,000) keys copy fewer entries in
 *    all than one rebuild of the set (ks_entries_copied; rebuilding the set
 *    per change copied 100 x 100,000), and every load is incremental;
 *  - verdicts (verdict_eval on the loaded set) follow every kind of change:
 *    a created key is accepted, a revoked one refused, a deleted one
 *    unknown, a route change and an expiry take effect, a key changed twice
 *    ends in its last state, keys left alone keep theirs;
 *  - many changes cross the overlay's merge limit (the merge runs on a
 *    thread; its result arrives as a load) with every verdict right, and
 *    the overlay is back within its limit afterwards;
 *  - a full read of the store afterwards gives the same set;
 *  - usage counts stay exact across incremental loads and a merge
 *    (usage_agent, one worker, flushed to Redis), and an incremental load
 *    lays out counters for the changed keys only (the base's are shared).
 * Keys are generated in memory and never printed.
 */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <ev.h>
#include <hiredis/hiredis.h>

#include "conf.h"
#include "keyfmt.h"
#include "keystore.h"
#include "proc.h"
#include "snap.h"
#include "store.h"
#include "store_redis.h"
#include "usage.h"
#include "usage_agent.h"
#include "verdict.h"

#define NS       "kachurn"
#define CHURN_N  100000
#define NOW      1760000000

static char dir[TP_PATH_MAX];
static char redis_addr[64];
static pid_t redis_pid;
static struct store_redis_conf rconf;
static struct route routes[] = {
	{ .name = "openai", .name_len = 6, .context = "/openai", .context_len = 7 },
	{ .name = "mistral", .name_len = 7, .context = "/mistral", .context_len = 8 },
};
static struct conf conf = { .path = "test.conf", .key_prefix = "ka_", .routes = routes,
                            .nroutes = 2, .store_redis = &rconf };

/* The agent's side: its store, loop and last set. */
static struct ev_loop *loop;
static struct store *st;
static struct ks_set *cur;
static unsigned loads, load_failures;
static redisContext *wc;          /* the writer's connection */

static int setup(void **state)
{
	(void)state;
	if (access(tp_redis_server_path(), X_OK) != 0)
		return 0;
	if (tp_mkdtemp("keyauth-churn", dir, sizeof(dir)) == -1)
		return -1;
	redis_pid = tp_redis_start(dir, "redis", 0, NULL, redis_addr, sizeof(redis_addr));
	if (redis_pid <= 0)
		return -1;
	rconf = (struct store_redis_conf){ .address = redis_addr, .namespace = NS,
	                                   .resync_interval = 3600, .max_staleness = 300,
	                                   .write_timeout_ms = 1000 };
	loop = ev_loop_new(EVFLAG_AUTO);
	return loop != NULL ? 0 : -1;
}

static int teardown(void **state)
{
	(void)state;
	if (redis_pid > 0) {
		tp_signal(redis_pid, SIGKILL);
		tp_wait_exit(redis_pid, 5000, NULL);
	}
	if (loop != NULL)
		ev_loop_destroy(loop);
	if (dir[0])
		tp_rmtree(dir);
	return 0;
}

#define NEED_REDIS() do { \
		if (redis_pid <= 0) { \
			print_message("redis-server not installed: skipped\n"); \
			skip(); \
		} \
	} while (0)

/* ---- keys ------------------------------------------------------------------------- */

/* A key kept for verdicts: the key itself (memory only) and its record. */
struct tkey {
	char key[KEY_GEN_MAX + 1];
	struct ks_entry e;
};

static void fill_id(unsigned i, char id[KEY_ID_LEN + 1])
{
	snprintf(id, KEY_ID_LEN + 1, "f%011u", i);
}

/* Record <i> of the filler: no key known, a digest of its own. */
static void fill_entry(unsigned i, struct ks_entry *e)
{
	char s[32];

	memset(e, 0, sizeof(*e));
	fill_id(i, e->id);
	snprintf(s, sizeof(s), "filler-%u", i);
	keyfmt_digest(s, strlen(s), e->digest);
	e->route = "openai";
	e->owner = "fill";
	e->created = NOW - 100;
}

static void tkey_new(struct tkey *k, const char *route)
{
	int len = keyfmt_generate(conf.key_prefix, k->key, sizeof(k->key));

	assert_true(len > 0);
	memset(&k->e, 0, sizeof(k->e));
	assert_int_equal(keyfmt_new_id(k->e.id), 0);
	keyfmt_digest(k->key, (size_t)len, k->e.digest);
	k->e.route = route;
	k->e.owner = "churn";
	k->e.created = NOW - 50;
}

/* One transaction: <v>[0..n) written over <old>[0..nold) (keyauthctl's
 * commit; an entry of <old> absent from <v> is deleted). */
static void commit(const struct ks_entry *old, size_t nold, const struct ks_entry *v, size_t n)
{
	struct ks_set *o = NULL;
	char err[512];

	if (nold > 0 && (o = ks_set_build(old, nold, err, sizeof(err))) == NULL)
		fail_msg("build: %s", err);
	if (store_redis_commit(wc, NS, o, v, n, err, sizeof(err)) != 0)
		fail_msg("commit: %s", err);
	ks_set_unref(o);
}

/* Fills the (empty) namespace with filler records 0..<n>-1 and <extra>. */
static void fill(unsigned n, const struct tkey *extra, size_t nextra)
{
	enum { BATCH = 5000 };
	struct ks_entry *v = malloc(BATCH * sizeof(*v));
	char err[512];
	redisReply *r;

	assert_non_null(v);
	wc = store_redis_connect(&rconf, NULL, err, sizeof(err));
	if (wc == NULL)
		fail_msg("connect: %s", err);
	r = redisCommand(wc, "FLUSHALL");
	assert_non_null(r);
	freeReplyObject(r);
	for (unsigned i = 0; i < n; i += BATCH) {
		size_t m = 0;

		for (unsigned j = i; j < n && j < i + BATCH; j++)
			fill_entry(j, &v[m++]);
		commit(NULL, 0, v, m);
	}
	for (size_t i = 0; i < nextra; i++)
		commit(NULL, 0, &extra[i].e, 1);
	free(v);
}

/* ---- the agent's side --------------------------------------------------------------- */

static void on_changed(struct store *s, void *arg)
{
	char err[512];
	struct ks_set *set = s->ops->load(s, err, sizeof(err));

	(void)arg;
	if (set == NULL) {
		print_message("load failed: %s\n", err);
		load_failures++;
		return;
	}
	ks_set_unref(cur);
	cur = set;
	loads++;
}

static void on_deadline(struct ev_loop *l, ev_timer *w, int revents)
{
	(void)l;
	(void)revents;
	*(bool *)w->data = true;
}

static bool connected(void)
{
	struct store_status ss;

	store_get_status(st, ev_now(loop), &ss);
	return ss.connected;
}

static unsigned want_loads;

static bool loaded(void)
{
	return loads >= want_loads || load_failures > 0;
}

/* Runs the loop until <pred>() or <ms> (scaled) passed; <pred>(). */
static bool run_until(bool (*pred)(void), int ms)
{
	bool late = false;
	ev_timer t;

	ev_now_update(loop);            /* the loop slept through the fill */
	ev_timer_init(&t, on_deadline, tp_scaled_ms(ms) / 1000.0, 0.);
	t.data = &late;
	ev_timer_start(loop, &t);
	while (!pred() && !late)
		ev_run(loop, EVRUN_ONCE);
	ev_timer_stop(loop, &t);
	return pred();
}

/* Opens the agent's store, loads it in full and subscribes. */
static void agent_open(void)
{
	char err[512];

	st = store_open(&conf, &store_role_agent, err, sizeof(err));
	if (st == NULL)
		fail_msg("store_open: %s", err);
	cur = st->ops->load(st, err, sizeof(err));
	if (cur == NULL)
		fail_msg("load: %s", err);
	loads = load_failures = 0;
	assert_int_equal(st->ops->watch(st, loop, on_changed, NULL), 0);
	if (!run_until(connected, 5000))
		fail_msg("no subscription within 5 s");
}

static void agent_close(void)
{
	if (st == NULL)
		return;
	store_free(st);
	st = NULL;
	ks_set_unref(cur);
	cur = NULL;
	store_redis_disconnect(wc);
	wc = NULL;
}

/* Waits for the load that follows a commit. */
static void next_load(void)
{
	want_loads = loads + 1;
	if (!run_until(loaded, 5000))
		fail_msg("no load within 5 s of a change");
	assert_int_equal(load_failures, 0);
}

static bool same_entry(const struct ks_entry *a, const struct ks_entry *b)
{
	return memcmp(a->digest, b->digest, KEY_DIGEST_LEN) == 0 && strcmp(a->id, b->id) == 0 &&
	    strcmp(ks_entry_routes(a), ks_entry_routes(b)) == 0 && strcmp(a->owner, b->owner) == 0 &&
	    a->created == b->created && a->expires == b->expires && a->revoked == b->revoked &&
	    a->rpm == b->rpm;
}

/* Waits until the loaded set has <v>[0..n) exactly: what a change made,
 * whichever loads (a change's, a merge's hand-over) brought it. */
static const struct ks_entry *wanted;
static size_t nwanted;

static bool has_wanted(void)
{
	for (size_t i = 0; i < nwanted; i++) {
		const struct ks_entry *e = ks_find_id(cur, wanted[i].id);

		if (e == NULL || !same_entry(e, &wanted[i]))
			return false;
	}
	return load_failures == 0;
}

static void wait_entries(const struct ks_entry *v, size_t n)
{
	wanted = v;
	nwanted = n;
	if (!run_until(has_wanted, 5000))
		fail_msg("change not loaded within 5 s");
	assert_int_equal(load_failures, 0);
}

/* The base the loaded set stands on (itself when plain); a reference kept
 * in <*seen> so that a new base cannot reuse its address: a new one is a
 * merge. True when it changed. */
static bool base_changed(struct ks_set **seen)
{
	struct ks_set *b = (struct ks_set *)(ks_set_base(cur) != NULL ? ks_set_base(cur) : cur);

	if (b == *seen)
		return false;
	ks_set_unref(*seen);
	*seen = ks_set_ref(b);
	return true;
}

static size_t overlay_now;

static bool overlay_within(void)
{
	return ks_overlay_size(cur) <= overlay_now;
}

static uint64_t full_loads(void)
{
	struct store_status ss;

	store_get_status(st, ev_now(loop), &ss);
	return ss.resyncs;
}

static enum verdict_status verdict_of(const struct tkey *k, const char *route)
{
	struct verdict v;

	verdict_eval(&conf, cur, route, strlen(route), k->key, strlen(k->key), NOW, &v);
	return v.status;
}

#define EXPECT(k, route, want) do { \
		enum verdict_status got_ = verdict_of((k), (route)); \
		if (got_ != (want)) \
			fail_msg("%s:%d: key %s on %s: verdict %d, want %d", __FILE__, __LINE__, \
			         (k)->e.id, (route), (int)got_, (int)(want)); \
	} while (0)

/* ---- tests -------------------------------------------------------------------------- */

/* The defect: every incremental load copied every entry (and laid out
 * usage counters for every key). */
static void test_cost_follows_the_changes(void **state)
{
	struct tkey stay;
	struct ks_entry e;
	uint64_t before, full;
	unsigned n0;

	(void)state;
	NEED_REDIS();
	tkey_new(&stay, "openai");
	fill(CHURN_N, &stay, 1);
	agent_open();
	assert_int_equal(ks_count(cur), CHURN_N + 1);
	before = ks_entries_copied();
	full = full_loads();
	n0 = loads;
	for (unsigned k = 0; k < 100; k++) {
		if (k % 2 == 0) {           /* create */
			fill_entry(CHURN_N + 1 + k, &e);
			commit(NULL, 0, &e, 1);
		} else {                    /* revoke a filler key */
			struct ks_entry o;

			fill_entry(k * 997 % CHURN_N, &o);
			e = o;
			e.revoked = NOW - 1;
			commit(&o, 1, &e, 1);
		}
		next_load();
	}
	print_message("100 changes on %d keys: %u loads, %llu entries copied\n", CHURN_N,
	              loads - n0, (unsigned long long)(ks_entries_copied() - before));
	assert_int_equal(loads - n0, 100);
	assert_int_equal(full_loads(), full);            /* every load incremental */
	assert_int_equal(ks_count(cur), CHURN_N + 1 + 50);
	/* Rebuilding copied 100 x 100,000; the changes are worth ~100 x 100. */
	assert_true(ks_entries_copied() - before < CHURN_N);
	EXPECT(&stay, "openai", VERDICT_OK);
	fill_entry(997, &e);
	assert_true(ks_find_id(cur, e.id)->revoked != 0);
	agent_close();
}

/* Every kind of change, each verdict after each load. */
static void test_verdicts_follow_every_change(void **state)
{
	struct tkey k[6], made;
	struct ks_entry was;

	(void)state;
	NEED_REDIS();
	for (int i = 0; i < 6; i++)
		tkey_new(&k[i], "openai");
	fill(5000, k, 6);
	agent_open();
	for (int i = 0; i < 6; i++)
		EXPECT(&k[i], "openai", VERDICT_OK);
	/* created */
	tkey_new(&made, "openai");
	EXPECT(&made, "openai", VERDICT_INVALID);
	commit(NULL, 0, &made.e, 1);
	next_load();
	EXPECT(&made, "openai", VERDICT_OK);
	/* revoked */
	was = k[0].e;
	k[0].e.revoked = NOW - 1;
	commit(&was, 1, &k[0].e, 1);
	next_load();
	EXPECT(&k[0], "openai", VERDICT_REVOKED);
	/* deleted (a key of the base) */
	commit(&k[1].e, 1, NULL, 0);
	next_load();
	EXPECT(&k[1], "openai", VERDICT_INVALID);
	/* routes changed */
	was = k[2].e;
	k[2].e.route = "mistral";
	commit(&was, 1, &k[2].e, 1);
	next_load();
	EXPECT(&k[2], "openai", VERDICT_FORBIDDEN);
	EXPECT(&k[2], "mistral", VERDICT_OK);
	/* expired */
	was = k[3].e;
	k[3].e.expires = NOW - 10;
	commit(&was, 1, &k[3].e, 1);
	next_load();
	EXPECT(&k[3], "openai", VERDICT_EXPIRED);
	/* changed twice within the overlay: revoked, then restored */
	was = k[4].e;
	k[4].e.revoked = NOW - 1;
	commit(&was, 1, &k[4].e, 1);
	next_load();
	EXPECT(&k[4], "openai", VERDICT_REVOKED);
	was = k[4].e;
	k[4].e.revoked = 0;
	k[4].e.routes = "openai,mistral";
	commit(&was, 1, &k[4].e, 1);
	next_load();
	EXPECT(&k[4], "openai", VERDICT_OK);
	EXPECT(&k[4], "mistral", VERDICT_OK);
	/* the key created above, deleted (a key of the overlay) */
	commit(&made.e, 1, NULL, 0);
	next_load();
	EXPECT(&made, "openai", VERDICT_INVALID);
	assert_non_null(ks_set_base(cur));   /* all of it on one base */
	EXPECT(&k[5], "openai", VERDICT_OK);
	assert_int_equal(ks_count(cur), 5000 + 6 - 1);
	agent_close();
}

/* Past the merge limit (with 2000 keys, 256 overlay records) with every
 * verdict right; then a full read gives the same set. */
static void test_merge_then_full_read_agree(void **state)
{
	enum { N = 2000, BATCH = 60, ROUNDS = 12 };
	struct tkey k[4];
	struct ks_entry o[BATCH], v[BATCH];
	struct ks_set *full, *seen = NULL;
	uint64_t gen;
	unsigned merges = 0;
	char err[512];

	(void)state;
	NEED_REDIS();
	for (int i = 0; i < 4; i++)
		tkey_new(&k[i], "openai");
	fill(N, k, 4);
	agent_open();
	base_changed(&seen);
	for (unsigned r = 0; r < ROUNDS; r++) {
		/* BATCH filler keys revoked (one event names them all) */
		for (unsigned j = 0; j < BATCH; j++) {
			fill_entry((r * BATCH + j) % N, &o[j]);
			v[j] = o[j];
			v[j].revoked = NOW - 1 - r;
			v[j].rpm = r;
		}
		commit(o, BATCH, v, BATCH);
		wait_entries(v, BATCH);
		merges += base_changed(&seen);
		for (int i = 0; i < 4; i++)
			EXPECT(&k[i], "openai", VERDICT_OK);
		for (unsigned j = 0; j < BATCH; j++) {
			const struct ks_entry *e = ks_find_id(cur, v[j].id);

			assert_non_null(e);
			assert_true(same_entry(e, &v[j]));
			assert_ptr_equal(ks_lookup(cur, v[j].digest), e);
		}
		/* a key of ours changed now and then, across the merges */
		if (r % 3 == 0) {
			struct ks_entry was = k[r % 4].e;

			k[r % 4].e.rpm = 10 + r;
			commit(&was, 1, &k[r % 4].e, 1);
			wait_entries(&k[r % 4].e, 1);
			assert_int_equal(ks_find_id(cur, k[r % 4].e.id)->rpm, 10 + r);
			merges += base_changed(&seen);
		}
	}
	/* the last merge, if one runs, brings the overlay back within its
	 * limit (merges run on a thread: its result arrives as a load) */
	overlay_now = ks_overlay_limit(N + 4);
	if (!run_until(overlay_within, 5000))
		fail_msg("overlay of %zu records past the limit 5 s after the changes",
		         ks_overlay_size(cur));
	merges += base_changed(&seen);
	ks_set_unref(seen);
	print_message("%u merges over %d changed records\n", merges, ROUNDS * BATCH);
	assert_true(merges >= 2);
	full = store_redis_read(wc, NS, &gen, err, sizeof(err));
	if (full == NULL)
		fail_msg("read: %s", err);
	assert_int_equal(ks_count(full), ks_count(cur));
	for (size_t i = 0; i < ks_span(full); i++) {
		const struct ks_entry *f = ks_entry_at(full, i), *e = ks_find_id(cur, f->id);

		assert_non_null(e);
		assert_true(same_entry(e, f));
		assert_ptr_equal(ks_lookup(cur, f->digest), e);
	}
	ks_set_unref(full);
	agent_close();
}

/* ---- usage ----------------------------------------------------------------------- */

static struct conf_ref *cref;
static struct snap *held;          /* the one worker's snapshot */
static uint64_t sgen;

/* keyauthd's publish(): a snapshot of <cur>, tracked, handed to the worker. */
static void publish(struct usage_agent *ua)
{
	struct snap *s = snap_new(cref, cur, ++sgen);

	assert_non_null(s);
	usage_agent_track(ua, s);
	snap_put(held);
	held = s;
}

static void count(const struct tkey *k, const char *route, int n)
{
	for (int i = 0; i < n; i++) {
		struct verdict v;

		verdict_eval(&conf, held->ks, route, strlen(route), k->key, strlen(k->key), NOW, &v);
		usage_count_verdict(held->usage, 0, &conf, &v, NOW);
	}
}

static long long usage_of(const struct tkey *k, const char *route)
{
	redisReply *r = redisCommand(wc, "HGET " NS USAGE_REDIS_REQUESTS " %s:%s", k->e.id, route);
	long long n;

	assert_non_null(r);
	n = r->type == REDIS_REPLY_STRING ? atoll(r->str) : 0;
	freeReplyObject(r);
	return n;
}

static void test_usage_exact_across_a_merge(void **state)
{
	enum { N = 2000, BATCH = 60 };
	struct tkey k[3];
	struct ks_entry o[BATCH], v[BATCH], was;
	struct usage_agent *ua;
	struct ks_set *seen = NULL;
	bool merged = false;

	(void)state;
	NEED_REDIS();
	for (int i = 0; i < 3; i++)
		tkey_new(&k[i], "openai");
	fill(N, k, 2);                      /* k[2] is created later */
	agent_open();
	/* Never freed by a put: the test's conf is static. */
	cref = conf_ref_get(conf_ref_new(&conf));
	assert_non_null(cref);
	ua = usage_agent_new(&conf, st, 1);
	assert_non_null(ua);
	base_changed(&seen);
	publish(ua);
	count(&k[0], "openai", 3);
	count(&k[0], "mistral", 1);        /* forbidden: counted, on mistral */
	/* an incremental load: k[1] revoked */
	was = k[1].e;
	k[1].e.revoked = NOW - 1;
	commit(&was, 1, &k[1].e, 1);
	wait_entries(&k[1].e, 1);
	assert_non_null(ks_set_base(cur));
	{
		/* the base's counters are shared, not laid out again: only
		 * the overlay's (one key) are new */
		const struct usage_part *p0 = held->usage->part[0];

		publish(ua);
		assert_ptr_equal(held->usage->part[0], p0);
		assert_int_equal(held->usage->part[1]->nkeys, 1);
	}
	count(&k[0], "openai", 2);
	count(&k[1], "openai", 4);         /* revoked: counted */
	usage_agent_collect(ua);
	/* another: k[2] created */
	commit(NULL, 0, &k[2].e, 1);
	wait_entries(&k[2].e, 1);
	publish(ua);
	count(&k[2], "openai", 5);
	/* filler revokes until a merge */
	for (unsigned r = 0; !merged; r++) {
		assert_true(r < 20);
		for (unsigned j = 0; j < BATCH; j++) {
			fill_entry((r * BATCH + j) % N, &o[j]);
			v[j] = o[j];
			v[j].revoked = NOW - 1;
		}
		commit(o, BATCH, v, BATCH);
		wait_entries(v, BATCH);
		merged = base_changed(&seen);
		publish(ua);
		count(&k[0], "openai", 1);
	}
	count(&k[2], "openai", 1);
	count(&k[1], "openai", 1);
	ks_set_unref(seen);
	assert_int_equal(usage_agent_flush(ua, NOW), 0);
	assert_int_equal(usage_of(&k[0], "openai"), 3 + 2 + (long long)(sgen - 3));
	assert_int_equal(usage_of(&k[0], "mistral"), 1);
	assert_int_equal(usage_of(&k[1], "openai"), 4 + 1);
	assert_int_equal(usage_of(&k[2], "openai"), 5 + 1);
	snap_put(held);
	held = NULL;
	usage_agent_free(ua);
	conf_ref_put(cref);
	agent_close();
}

/* After each test, passed or not: the agent's store closed, so that no
 * subscription of one test feeds the next. */
static int test_teardown(void **state)
{
	(void)state;
	agent_close();
	return 0;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_teardown(test_cost_follows_the_changes, test_teardown),
		cmocka_unit_test_teardown(test_verdicts_follow_every_change, test_teardown),
		cmocka_unit_test_teardown(test_merge_then_full_read_agree, test_teardown),
		cmocka_unit_test_teardown(test_usage_exact_across_a_merge, test_teardown),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
