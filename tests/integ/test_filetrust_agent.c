/* SPDX-License-Identifier: Apache-2.0 */
/*
 * test_filetrust_agent: keyauthd (KEYAUTHD, default build/keyauthd) does not
 * serve keys from files another user could have written (security issue #17,
 * finding 3; the rule is filetrust.h's, tested alone in test_filetrust).
 *
 * At start: a store owned by uid 65534 (nobody), or missing from a directory
 * nobody owns, is refused by `keyauthd -t` and by a start (exit 1, nothing
 * listening, the reason in the log); the same store owned by root starts and
 * serves. While running, on one connection kept open: a store replaced by
 * nobody's file, or rewritten while its directory is writable by others, is
 * rejected (store_rejected) and the previous key set keeps serving until the
 * store is trusted again; a configuration chown'ed to nobody is refused on
 * SIGHUP. Ends by checking that the log holds none of the keys used.
 *
 * Needs root (chown); skipped otherwise. Keys are never printed: assertions
 * compare statuses, ids and owners only. KEYAUTH_TEST_KEEP=1 keeps the
 * temporary directories (they hold keys).
 */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "fixture.h"
#include "spop_expect.h"

#define NOBODY 65534

static struct tf_agent d;
static struct tf_key k_old, k_theirs, k_later;
static struct spc_conn *conn;     /* one connection kept for the whole group */

static int g_setup(void **state)
{
	struct tf_key *keys[] = { &k_old };
	struct tf_opts o = { .log_level = "debug" };

	(void)state;
	if (geteuid() != 0)
		return 0;
	signal(SIGPIPE, SIG_IGN);
	if (tf_key_make(&k_old, "openai", "olivia", "trusted key") == -1 ||
	    tf_key_make(&k_theirs, "openai", "mallory", "key minted by another user") == -1 ||
	    tf_key_make(&k_later, "openai", "trent", "key added later") == -1)
		return -1;
	o.keys = keys;
	o.nkeys = 1;
	if (tf_agent_up(&d, "kad-filetrust", &o) == -1)
		return -1;
	conn = spc_open(d.uaddr, io_ms());
	if (!conn || !spc_handshake(conn, io_ms()))
		return -1;
	return 0;
}

static int g_teardown(void **state)
{
	(void)state;
	if (geteuid() != 0)
		return 0;
	spc_close(conn);
	conn = NULL;
	return tf_agent_down(&d);
}

static void need_root(void)
{
	if (geteuid() != 0)
		skip();
}

/* A line logged after <from> holds every one of <a>, <b> (b may be NULL). */
static bool logged_since(const char *log, size_t from, const char *a, const char *b)
{
	const char *const needles[] = { a, b, NULL };

	return tp_log_line_since(log, from, needles);
}

/* Waits up to 3 s (scaled) for an error line holding "store_rejected",
 * while the previous set keeps answering: <ok> "ok", <absent> "invalid". */
static void rejected_while_previous_set_serves(size_t from, const struct tf_key *ok,
                                               const struct tf_key *absent, const char *what)
{
	long long deadline = tp_now_ms() + tp_scaled_ms(3000);
	bool logged = false;

	while (!logged && tp_now_ms() < deadline) {
		expect_verdict(conn, "openai", ok->key, "ok", ok, what);
		expect_verdict(conn, "openai", absent->key, "invalid", NULL, what);
		logged = new_error_line(d.log, from, "store_rejected");
		if (!logged)
			tp_nap_ms(20);
	}
	if (!logged)
		fail_msg("%s: no store_rejected line within 3 s", what);
	/* A little longer: a late reload must not bring the file in either. */
	tp_nap_ms(tp_scaled_ms(300));
	expect_verdict(conn, "openai", ok->key, "ok", ok, what);
	expect_verdict(conn, "openai", absent->key, "invalid", NULL, what);
}

/* ---- at start -------------------------------------------------------------------- */

/* Starts keyauthd on <a>'s config and expects it to exit 1 without ever
 * listening, its log saying <why>. */
static void start_refused(struct tf_agent *a, const char *why)
{
	char check[TF_PATH + 16];
	pid_t pid;
	int status = 0;

	snprintf(check, sizeof(check), "%s.check", a->log);
	assert_int_equal(tp_run_keyauthd_check(a->conf, check), 1);
	assert_false(tp_log_contains(check, "configuration OK"));
	if (!tp_log_contains(check, why))
		fail_msg("keyauthd -t does not say \"%s\"", why);
	pid = tp_spawn_keyauthd(a->conf, a->log);
	assert_true(pid > 0);
	assert_int_equal(tp_wait_exit(pid, 5000, &status), 0);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 1);
	assert_true(tp_log_contains(a->log, "start_failed"));
	if (!tp_log_contains(a->log, why))
		fail_msg("the failed start's log does not say \"%s\"", why);
	assert_int_equal(access(a->sock, F_OK), -1);    /* never listened */
	assert_int_equal(tf_log_has_no_key(a->log), 0);
}

static void test_start_refuses_a_store_owned_by_another_user(void **state)
{
	struct tf_key *keys[] = { &k_theirs };
	struct tf_opts o = { .log_level = "debug" };
	struct tf_agent a;
	struct spc_conn *c;

	(void)state;
	need_root();
	assert_int_equal(tf_agent_init(&a, "kad-filetrust-start"), 0);
	assert_int_equal(tf_store_write(a.store, keys, 1, 0), 0);
	assert_int_equal(chown(a.store, NOBODY, NOBODY), 0);
	assert_int_equal(tf_agent_conf(&a, &o), 0);
	start_refused(&a, "owned by uid 65534");

	/* The same file, owned by root: it starts and serves the key. */
	assert_int_equal(chown(a.store, 0, 0), 0);
	assert_int_equal(tf_agent_start(&a), 0);
	c = open_ready(a.uaddr);
	expect_verdict(c, "openai", k_theirs.key, "ok", &k_theirs, "store owned by root");
	spc_close(c);
	assert_int_equal(tf_agent_down(&a), 0);
}

/* A missing store is an empty one, unless another user could create it. */
static void test_start_refuses_a_missing_store_in_another_users_directory(void **state)
{
	char sub[TF_PATH + 16], body[2 * TF_PATH];
	struct tf_opts o = { .log_level = "debug" };
	struct tf_agent a;

	(void)state;
	need_root();
	assert_int_equal(tf_agent_init(&a, "kad-filetrust-dir"), 0);
	snprintf(sub, sizeof(sub), "%s/theirs", a.dir);
	assert_int_equal(mkdir(sub, 0755), 0);
	assert_int_equal(chown(sub, NOBODY, NOBODY), 0);
	snprintf(body, sizeof(body), "path = \"%s/keys.db\";", sub);
	o.store = body;
	assert_int_equal(tf_agent_conf(&a, &o), 0);
	start_refused(&a, "directory owned by uid 65534");
	/* Owned by root, the missing store is an empty one again. */
	assert_int_equal(chown(sub, 0, 0), 0);
	assert_int_equal(tf_agent_start(&a), 0);
	assert_int_equal(tf_agent_down(&a), 0);
}

/* ---- while running ----------------------------------------------------------------- */

static void test_store_replaced_by_another_users_file_keeps_previous_set(void **state)
{
	struct tf_key *keys[] = { &k_old, &k_theirs };
	char next[TF_PATH + 16];
	size_t from;

	(void)state;
	need_root();
	expect_verdict(conn, "openai", k_old.key, "ok", &k_old, "before");
	expect_verdict(conn, "openai", k_theirs.key, "invalid", NULL, "before");
	snprintf(next, sizeof(next), "%s/next.db", d.dir);
	assert_int_equal(tf_store_write(next, keys, 2, 1), 0);
	assert_int_equal(chown(next, NOBODY, NOBODY), 0);
	from = tp_file_size(d.log);
	assert_int_equal(rename(next, d.store), 0);
	rejected_while_previous_set_serves(from, &k_old, &k_theirs, "store owned by nobody");
	if (!logged_since(d.log, from, "store_rejected", "owned by uid 65534"))
		fail_msg("the store_rejected lines do not name the owner");
	assert_true(logged_since(d.log, from, "action=keep_previous", NULL));

	/* Owned by root (the operator vouches for it): picked up. */
	assert_int_equal(chown(d.store, 0, 0), 0);
	if (wait_status(conn, "openai", k_theirs.key, "ok", 3000) < 0)
		fail_msg("the store owned by root again was not loaded within 3 s");
	expect_verdict(conn, "openai", k_old.key, "ok", &k_old, "after chown root");
}

static void test_store_in_a_directory_others_may_write_is_refused(void **state)
{
	struct tf_key *keys[] = { &k_old, &k_theirs, &k_later };
	size_t from;

	(void)state;
	need_root();
	assert_int_equal(chmod(d.dir, 0777), 0);
	from = tp_file_size(d.log);
	assert_int_equal(tf_store_write(d.store, keys, 3, 2), 0);
	rejected_while_previous_set_serves(from, &k_old, &k_later, "directory 0777");
	if (!logged_since(d.log, from, "store_rejected", "writable by others (mode 0777)"))
		fail_msg("the store_rejected lines do not name the directory's mode");

	/* Sticky, like /tmp: crossing it is fine again. */
	assert_int_equal(chmod(d.dir, 01777), 0);
	assert_int_equal(tf_store_write(d.store, keys, 3, 3), 0);
	if (wait_status(conn, "openai", k_later.key, "ok", 3000) < 0)
		fail_msg("the store under a sticky directory was not loaded within 3 s");
	assert_int_equal(chmod(d.dir, 0700), 0);
}

static void test_sighup_refuses_a_config_owned_by_another_user(void **state)
{
	size_t from;

	(void)state;
	need_root();
	assert_int_equal(chown(d.conf, NOBODY, NOBODY), 0);
	from = tp_file_size(d.log);
	assert_int_equal(tp_signal(d.pid, SIGHUP), 0);
	if (tp_wait_log(d.log, "action=keep_running_config", 3000) == -1)
		fail_msg("no reload rejection within 3 s");
	if (!logged_since(d.log, from, "reload_rejected", "owned by uid 65534"))
		fail_msg("the reload_rejected lines do not name the owner");
	expect_verdict(conn, "openai", k_old.key, "ok", &k_old, "after the refused reload");
	assert_int_equal(chown(d.conf, 0, 0), 0);
}

static void test_log_never_contains_a_key(void **state)
{
	(void)state;
	need_root();
	check_log_has_no_key(&d);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_start_refuses_a_store_owned_by_another_user),
		cmocka_unit_test(test_start_refuses_a_missing_store_in_another_users_directory),
		cmocka_unit_test(test_store_replaced_by_another_users_file_keeps_previous_set),
		cmocka_unit_test(test_store_in_a_directory_others_may_write_is_refused),
		cmocka_unit_test(test_sighup_refuses_a_config_owned_by_another_user),
		cmocka_unit_test(test_log_never_contains_a_key),
	};

	return cmocka_run_group_tests(tests, g_setup, g_teardown);
}
