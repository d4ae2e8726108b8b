/* SPDX-License-Identifier: Apache-2.0 */
/*
 * test_store_iface: the one store interface (store.h). The factory picks the
 * backend from the configuration alone, the flags say what it is (no name
 * checks), and the msgpack file and Redis (a real redis-server on a free
 * loopback port; those tests skip when it is absent), opened through the
 * same vtable, give the same answers to the same reads and transactions:
 * keyauthctl's role (read, begin/commit/end) and the agent's (load).
 */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "conf.h"
#include "keyfmt.h"
#include "keystore.h"
#include "proc.h"
#include "store.h"

static char dir[TP_PATH_MAX];
static char store_path[TP_PATH_MAX + 32];
static char redis_addr[64];
static pid_t redis_pid;
static struct store_redis_conf rconf;

static int setup(void **state)
{
	(void)state;
	if (tp_mkdtemp("keyauth-store-iface", dir, sizeof(dir)) == -1)
		return -1;
	snprintf(store_path, sizeof(store_path), "%s/keys.msgpack", dir);
	redis_pid = tp_redis_start(dir, "redis", 0, NULL, redis_addr, sizeof(redis_addr));
	if (redis_pid == 0)
		return 0;
	if (redis_pid == -1)
		return -1;
	rconf = (struct store_redis_conf){ .address = redis_addr, .namespace = "kaiface",
	                                   .resync_interval = 60, .max_staleness = 300,
	                                   .write_timeout_ms = 1000 };
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	if (redis_pid > 0) {
		tp_signal(redis_pid, SIGKILL);
		tp_wait_exit(redis_pid, 5000, NULL);
	}
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

static struct conf file_conf(void)
{
	return (struct conf){ .path = "test.conf", .store_path = store_path };
}

static struct conf redis_conf(void)
{
	return (struct conf){ .path = "test.conf", .store_path = store_path,
	                      .store_redis = &rconf };
}

static struct store *open_ok(const struct conf *c, const struct store_role *role)
{
	char err[512] = "";
	struct store *st = store_open(c, role, err, sizeof(err));

	if (st == NULL)
		fail_msg("store_open: %s", err);
	return st;
}

/* ---- the factory and the flags ------------------------------------------------ */

static void test_file_flags(void **state)
{
	struct conf c = file_conf(), other = file_conf();
	const struct store_role *roles[] = { &store_role_agent, &store_role_ctl };

	(void)state;
	other.store_path = "/nonexistent/elsewhere.msgpack";
	for (size_t i = 0; i < 2; i++) {
		struct store *st = open_ok(&c, roles[i]);

		assert_true(store_has(st, STORE_F_WATCH_FILE));
		assert_false(store_has(st, STORE_F_SHARED));
		assert_string_equal(st->ops->name, "file");
		assert_string_equal(st->ops->where(st), store_path);
		assert_true(store_same(st, &c));
		assert_false(store_same(st, &other));
		store_free(st);
	}
}

static void test_redis_flags(void **state)
{
	struct conf c = redis_conf();
	struct store *agent, *ctl;
	char where[128];

	(void)state;
	NEED_REDIS();
	agent = open_ok(&c, &store_role_agent);
	ctl = open_ok(&c, &store_role_ctl);
	snprintf(where, sizeof(where), "redis:%s/0/kaiface", redis_addr);
	for (int i = 0; i < 2; i++) {
		struct store *st = i == 0 ? agent : ctl;

		assert_true(store_has(st, STORE_F_SHARED));
		assert_false(store_has(st, STORE_F_WATCH_FILE));
		assert_string_equal(st->ops->name, "redis");
		assert_string_equal(st->ops->where(st), where);
		assert_false(store_same(st, &c));   /* a reload always builds a new one */
	}
	/* Only the agent's half has the change feed. */
	assert_non_null(agent->ops->watch);
	assert_non_null(agent->ops->status);
	assert_null(ctl->ops->watch);
	store_free(agent);
	store_free(ctl);
}

static void test_bad_password_file_refused_by_both_roles(void **state)
{
	struct store_redis_conf bad = rconf;
	struct conf c = redis_conf();
	char err[512], pw[TP_PATH_MAX + 32];

	(void)state;
	NEED_REDIS();
	snprintf(pw, sizeof(pw), "%s/pw", dir);
	assert_int_equal(tp_write_file(pw, "secret\n"), 0);
	assert_int_equal(chmod(pw, 0644), 0);
	bad.password_file = pw;
	c.store_redis = &bad;
	assert_null(store_open(&c, &store_role_agent, err, sizeof(err)));
	assert_non_null(strstr(err, "chmod 600"));
	assert_null(store_open(&c, &store_role_ctl, err, sizeof(err)));
	assert_non_null(strstr(err, "chmod 600"));
}

/* Issue #17, finding 3: whoever can write the password file picks the Redis
 * user the store is read as. One owned by another user (nobody), or in a
 * directory another user owns, is refused by both roles (filetrust.h);
 * the file is read before any connection, so no Redis is needed. */
static void test_password_file_of_another_user_refused_by_both_roles(void **state)
{
	struct store_redis_conf bad = { .address = "127.0.0.1:1", .namespace = "t" };
	struct conf c = { 0 };
	char err[1024], pw[TP_PATH_MAX + 32], sub[TP_PATH_MAX + 16];
	const struct store_role *roles[] = { &store_role_agent, &store_role_ctl };

	(void)state;
	if (geteuid() != 0)
		skip();
	snprintf(pw, sizeof(pw), "%s/pw-theirs", dir);
	assert_int_equal(tp_write_file(pw, "secret\n"), 0);     /* 0600 */
	assert_int_equal(chown(pw, 65534, 65534), 0);
	bad.password_file = pw;
	c.store_redis = &bad;
	for (size_t i = 0; i < 2; i++) {
		assert_null(store_open(&c, roles[i], err, sizeof(err)));
		assert_non_null(strstr(err, "owned by uid 65534"));
		assert_non_null(strstr(err, "fix: chown root"));
	}
	snprintf(sub, sizeof(sub), "%s/theirs", dir);
	assert_int_equal(mkdir(sub, 0755), 0);
	assert_int_equal(chown(sub, 65534, 65534), 0);
	snprintf(pw, sizeof(pw), "%s/pw", sub);
	assert_int_equal(tp_write_file(pw, "secret\n"), 0);     /* root's, 0600 */
	for (size_t i = 0; i < 2; i++) {
		assert_null(store_open(&c, roles[i], err, sizeof(err)));
		assert_non_null(strstr(err, "directory owned by uid 65534"));
	}
}

/* ---- the same operations, the same answers ------------------------------------- */

struct made {
	struct ks_entry e[3];
};

static void make_entries(struct made *m)
{
	static const char *const routes[] = { "api", "admin", "api" };
	static const char *const owners[] = { "alice", "", "bob" };

	memset(m, 0, sizeof(*m));
	for (int i = 0; i < 3; i++) {
		char key[KEY_GEN_MAX + 1];
		int len = keyfmt_generate("ka_", key, sizeof(key));

		assert_true(len > 0);
		keyfmt_digest(key, (size_t)len, m->e[i].digest);
		assert_int_equal(keyfmt_new_id(m->e[i].id), 0);
		m->e[i].route = routes[i];
		m->e[i].owner = owners[i];
		m->e[i].created = 1700000000 + i;
		m->e[i].expires = i == 1 ? 1900000000 : 0;
		m->e[i].rpm = (uint32_t)(i * 60);
	}
}

/* One locked read-modify-write: begin, check it sees <want> entries, write
 * <v>, end. */
static void transact(struct store *st, size_t want, const struct ks_entry *v, size_t n)
{
	char err[512] = "";
	int locked = 0;
	struct ks_set *set = st->ops->begin(st, &locked, err, sizeof(err));

	assert_true(locked);
	if (set == NULL)
		fail_msg("begin: %s", err);
	assert_int_equal(ks_count(set), want);
	if (st->ops->commit(st, set, v, n, err, sizeof(err)) != 0)
		fail_msg("commit: %s", err);
	ks_set_unref(set);
	st->ops->end(st);
}

static void assert_sets_equal(const struct ks_set *a, const struct ks_set *b)
{
	assert_int_equal(ks_count(a), ks_count(b));
	for (size_t i = 0; i < ks_count(a); i++) {
		const struct ks_entry *x = ks_entry_at(a, i), *y = ks_find_id(b, x->id);

		assert_non_null(y);
		assert_memory_equal(x->digest, y->digest, KEY_DIGEST_LEN);
		assert_string_equal(x->route, y->route);
		assert_string_equal(x->owner, y->owner);
		assert_true(x->created == y->created && x->expires == y->expires);
		assert_true(x->revoked == y->revoked && x->rpm == y->rpm);
	}
}

static struct ks_set *read_ok(struct store *st, bool agent_load)
{
	char err[512] = "";
	struct ks_set *set = agent_load ? st->ops->load(st, err, sizeof(err))
	                                : st->ops->read(st, err, sizeof(err));

	if (set == NULL)
		fail_msg("read: %s", err);
	return set;
}

static void test_file_and_redis_give_the_same_answers(void **state)
{
	struct conf fc = file_conf(), rc = redis_conf();
	struct store *fs, *rs, *fa, *ra;
	struct ks_set *fset, *rset, *faset, *raset;
	struct made m;

	(void)state;
	NEED_REDIS();
	unlink(store_path);
	make_entries(&m);
	fs = open_ok(&fc, &store_role_ctl);
	rs = open_ok(&rc, &store_role_ctl);
	fa = open_ok(&fc, &store_role_agent);
	ra = open_ok(&rc, &store_role_agent);
	for (int i = 0; i < 2; i++) {
		struct store *st = i == 0 ? fs : rs;

		/* Create three, then revoke one, change another, delete the third. */
		transact(st, 0, m.e, 3);
		m.e[0].revoked = 1700000100;
		m.e[1].rpm = 600;
		transact(st, 3, m.e, 2);
		m.e[0].revoked = 0;
		m.e[1].rpm = 60;
	}
	fset = read_ok(fs, false);
	rset = read_ok(rs, false);
	faset = read_ok(fa, true);
	raset = read_ok(ra, true);
	assert_int_equal(ks_count(fset), 2);
	assert_int_equal(ks_entry_at(fset, 0)->revoked != 0 || ks_entry_at(fset, 1)->revoked != 0, 1);
	assert_null(ks_find_id(fset, m.e[2].id));
	assert_sets_equal(fset, rset);
	assert_sets_equal(fset, faset);
	assert_sets_equal(rset, raset);
	ks_set_unref(fset);
	ks_set_unref(rset);
	ks_set_unref(faset);
	ks_set_unref(raset);
	store_free(fs);
	store_free(rs);
	store_free(fa);
	store_free(ra);
}

/* A concurrent writer between begin and commit: Redis refuses the second
 * commit (WATCH) and writes nothing; the file cannot get there (the lock). */
static void test_redis_concurrent_writer_refused(void **state)
{
	struct conf c = redis_conf();
	struct store *a, *b;
	struct ks_set *sa, *sb, *now;
	struct made m;
	char err[512];
	int locked;

	(void)state;
	NEED_REDIS();
	make_entries(&m);
	a = open_ok(&c, &store_role_ctl);
	b = open_ok(&c, &store_role_ctl);
	sa = a->ops->begin(a, &locked, err, sizeof(err));
	assert_non_null(sa);
	sb = b->ops->begin(b, &locked, err, sizeof(err));
	assert_non_null(sb);
	assert_int_equal(a->ops->commit(a, sa, m.e, 1, err, sizeof(err)), 0);
	assert_int_equal(b->ops->commit(b, sb, m.e + 1, 1, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "another writer"));
	a->ops->end(a);
	b->ops->end(b);
	now = read_ok(a, false);
	assert_int_equal(ks_count(now), 1);
	assert_non_null(ks_find_id(now, m.e[0].id));
	ks_set_unref(sa);
	ks_set_unref(sb);
	ks_set_unref(now);
	store_free(a);
	store_free(b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_file_flags),
		cmocka_unit_test(test_redis_flags),
		cmocka_unit_test(test_bad_password_file_refused_by_both_roles),
		cmocka_unit_test(test_password_file_of_another_user_refused_by_both_roles),
		cmocka_unit_test(test_file_and_redis_give_the_same_answers),
		cmocka_unit_test(test_redis_concurrent_writer_refused),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
