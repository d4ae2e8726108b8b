/* SPDX-License-Identifier: Apache-2.0 */
/*
 * test_reload: keyauthd's configuration and store over time, on one daemon
 * (KEYAUTHD, default build/keyauthd) with the protocol programs' config
 * (tests/lib/fixture.c) and its own keys: `keyauthd -t` on a good and a
 * broken config; on one connection kept open throughout, store changes (a
 * key created, then revoked) seen within 1 s, a corrupt store that keeps the
 * old keys, SIGHUP with a broken and with a good config (a new route), and
 * SIGTERM with frames in flight (last: it ends the daemon). Ends by checking
 * that the daemon's log holds none of the keys used.
 *
 * Keys are never printed: assertions compare statuses, ids and owners only.
 * Set KEYAUTH_TEST_KEEP=1 to keep the temporary directory (it holds keys).
 */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>

#include <cmocka.h>

#include "fixture.h"
#include "spop_expect.h"

static struct tf_agent d2;
static struct tf_key s_valid, s_new, s_anthropic;
static struct spc_conn *s_conn;     /* one connection kept for the whole group */

static int g2_setup(void **state)
{
	struct tf_key *keys[] = { &s_valid, &s_anthropic };
	struct tf_opts o = tf_opts_protocol(false);

	(void)state;
	signal(SIGPIPE, SIG_IGN);
	if (tf_key_make(&s_valid, "openai", "frank", "store: valid") == -1 ||
	    tf_key_make(&s_new, "openai", "grace", "store: added later") == -1 ||
	    tf_key_make(&s_anthropic, "anthropic", "heidi", "store: route added later") == -1)
		return -1;
	o.keys = keys;
	o.nkeys = 2;
	if (tf_agent_up(&d2, "kad-store", &o) == -1)
		return -1;
	s_conn = spc_open(d2.uaddr, io_ms());
	if (!s_conn || !spc_handshake(s_conn, io_ms()))
		return -1;
	return 0;
}

static int g2_teardown(void **state)
{
	(void)state;
	spc_close(s_conn);
	s_conn = NULL;
	return tf_agent_down(&d2);
}

static void test_config_check_flag(void **state)
{
	char bad[TF_PATH], out_ok[TF_PATH], out_bad[TF_PATH];

	(void)state;
	snprintf(bad, sizeof(bad), "%s/broken.conf", d2.dir);
	snprintf(out_ok, sizeof(out_ok), "%s/check-ok.out", d2.dir);
	snprintf(out_bad, sizeof(out_bad), "%s/check-bad.out", d2.dir);
	assert_int_equal(tp_write_file(bad, "listen = [ \"127.0.0.1:1\" ;\nworkers = \"many\";\n"), 0);
	assert_int_equal(tp_run_keyauthd_check(d2.conf, out_ok), 0);
	assert_true(tp_log_contains(out_ok, "configuration OK"));
	assert_int_equal(tp_run_keyauthd_check(bad, out_bad), 1);
	assert_false(tp_log_contains(out_bad, "configuration OK"));
	/* Errors name the file and the line. */
	assert_true(tp_log_contains(out_bad, "broken.conf:"));
}

/* Writes the store with all three keys, as they are now. */
static void write_store(void)
{
	struct tf_key *keys[] = { &s_valid, &s_anthropic, &s_new };

	assert_int_equal(tf_store_write(d2.store, keys, 3, 0), 0);
}

/* After a store change, the open connection sees s_new reach <status> within
 * 1 s (waiting up to 3 s; the delay is printed). */
static void store_change_seen(const char *status, const char *what)
{
	long long delay = wait_status(s_conn, "openai", s_new.key, status, 3000);

	if (delay < 0)
		fail_msg("%s not seen within 3 s", what);
	print_message("%s seen after %lld ms\n", what, delay);
	assert_true(delay <= tp_scaled_ms(1000));
}

static void test_store_key_created_while_connected(void **state)
{
	(void)state;
	expect_verdict(s_conn, "openai", s_new.key, "invalid", NULL, "before creation");
	write_store();
	store_change_seen("ok", "key creation");
	expect_verdict(s_conn, "openai", s_new.key, "ok", &s_new, "after creation");
	expect_verdict(s_conn, "openai", s_valid.key, "ok", &s_valid, "old key after creation");
}

static void test_store_key_revoked_while_connected(void **state)
{
	(void)state;
	s_new.e.revoked = (int64_t)time(NULL);
	write_store();
	store_change_seen("revoked", "revocation");
	expect_verdict(s_conn, "openai", s_new.key, "revoked", &s_new, "after revocation");
	expect_verdict(s_conn, "openai", s_valid.key, "ok", &s_valid, "old key after revocation");
}

static void test_store_corrupt_file_keeps_old_keys(void **state)
{
	static const char junk[] = "\xc1\xc1\xc1 this is not a msgpack key store \x00\xff";
	size_t from = tp_file_size(d2.log);
	long long deadline = tp_now_ms() + tp_scaled_ms(3000);
	bool logged = false;

	(void)state;
	assert_int_equal(tp_replace_file(d2.store, junk, sizeof(junk) - 1), 0);
	/* Keep asking while the agent notices and rejects the file. */
	while (!logged && tp_now_ms() < deadline) {
		expect_verdict(s_conn, "openai", s_valid.key, "ok", &s_valid, "during corruption");
		expect_verdict(s_conn, "openai", s_new.key, "revoked", &s_new, "during corruption");
		logged = new_error_line(d2.log, from, "reject");
		if (!logged)
			tp_nap_ms(20);
	}
	if (!logged)
		fail_msg("no error or warning saying the corrupt store was rejected within 3 s");
	expect_verdict(s_conn, "openai", s_valid.key, "ok", &s_valid, "after corruption");
	expect_verdict(s_conn, "openai", s_new.key, "revoked", &s_new, "after corruption");
	/* A good file afterwards is picked up again. */
	s_new.e.revoked = 0;
	write_store();
	if (wait_status(s_conn, "openai", s_new.key, "ok", 3000) < 0)
		fail_msg("good store after a corrupt one not picked up within 3 s");
}

static void test_sighup_broken_config_keeps_old(void **state)
{
	size_t from = tp_file_size(d2.log);
	long long deadline = tp_now_ms() + tp_scaled_ms(3000);
	struct spc_conn *c;

	(void)state;
	assert_int_equal(tp_write_file(d2.conf, "routes = ( { name = \"openai\"; \n"), 0);
	assert_int_equal(tp_signal(d2.pid, SIGHUP), 0);
	while (!new_error_line(d2.log, from, "reject")) {
		if (tp_now_ms() >= deadline)
			fail_msg("no error saying the broken config was rejected within 3 s");
		tp_nap_ms(10);
	}
	assert_true(tp_alive(d2.pid));
	expect_verdict(s_conn, "openai", s_valid.key, "ok", &s_valid, "after a broken reload");
	expect_verdict(s_conn, "mistral", s_valid.key, "forbidden", &s_valid,
	               "old routes after a broken reload");
	c = open_ready(d2.uaddr);
	expect_verdict(c, "openai", s_valid.key, "ok", &s_valid, "new connection, broken reload");
	spc_close(c);
	c = open_ready(d2.taddr);
	expect_verdict(c, "openai", s_valid.key, "ok", &s_valid, "TCP, broken reload");
	spc_close(c);
}

static void test_sighup_good_config_adds_route(void **state)
{
	struct tf_opts o = tf_opts_protocol(true);
	long long delay;

	(void)state;
	expect_verdict(s_conn, "anthropic", s_anthropic.key, "unknown_route", NULL,
	               "route not yet configured");
	assert_int_equal(tf_agent_conf(&d2, &o), 0);
	assert_int_equal(tp_signal(d2.pid, SIGHUP), 0);
	delay = wait_status(s_conn, "anthropic", s_anthropic.key, "ok", 3000);
	if (delay < 0)
		fail_msg("new route not served within 3 s of SIGHUP");
	print_message("new route served %lld ms after SIGHUP\n", delay);
	expect_verdict(s_conn, "anthropic", s_anthropic.key, "ok", &s_anthropic, "new route");
	expect_verdict(s_conn, "anthropic", s_valid.key, "forbidden", &s_valid,
	               "other key on the new route");
	expect_verdict(s_conn, "openai", s_valid.key, "ok", &s_valid, "old route after reload");
}

#define IN_FLIGHT 100

static void test_sigterm_answers_in_flight_frames_and_exits_0(void **state)
{
	static uint8_t out[IN_FLIGHT * 160];
	bool seen[IN_FLIGHT] = { false };
	size_t len = 0;
	unsigned answered = 0;
	int status, rc;
	long long t_term = 0;

	(void)state;
	for (unsigned i = 0; i < IN_FLIGHT; i++) {
		int n = spc_build_keyauth(out + len, sizeof(out) - len, 1000 + i, i, NULL, "openai",
		                          i % 2 ? s_valid.key : s_new.key, SPC_KEY_STRLEN);

		assert_true(n > 0);
		len += (size_t)n;
	}
	assert_int_equal(spc_send_raw(s_conn, out, len, io_ms()), 0);
	/* Once the first answer is back the agent has read the burst (it was one
	 * write): every other NOTIFY is in flight when SIGTERM lands. */
	while (answered < IN_FLIGHT) {
		struct spc_frame f;
		struct spc_ack a;

		rc = spc_read_frame(s_conn, &f, io_ms());
		if (rc != SPC_FRAME)
			fail_msg("only %u of %u in-flight NOTIFYs answered (rc=%d)", answered,
			         IN_FLIGHT, rc);
		if (f.type != SPOP_FRM_ACK)
			fail_msg("frame type %u after %u ACKs", f.type, answered);
		assert_true(f.fid < IN_FLIGHT && !seen[f.fid]);
		assert_int_equal(f.sid, 1000 + f.fid);
		seen[f.fid] = true;
		assert_int_equal(spc_ack_parse(f.payload, f.payload_len, &a), 0);
		spc_frame_free(&f);
		assert_string_equal(a.status, "ok");
		if (answered++ == 0) {
			assert_int_equal(tp_signal(d2.pid, SIGTERM), 0);
			t_term = tp_now_ms();
		}
	}
	/* Then an AGENT-DISCONNECT (optional) and the close. */
	for (;;) {
		struct spc_frame f;

		rc = spc_read_frame(s_conn, &f, tp_scaled_ms(5000));
		if (rc != SPC_FRAME)
			break;
		if (f.type != SPOP_FRM_AGENT_DISCON)
			fail_msg("frame type %u after SIGTERM", f.type);
		spc_frame_free(&f);
	}
	assert_int_equal(rc, SPC_EOF);
	/* HAProxy closes its side on EOF; the agent may wait for that. */
	spc_close(s_conn);
	s_conn = NULL;
	if (tp_wait_exit(d2.pid, 5000, &status) == -1)
		fail_msg("keyauthd still running 5 s after SIGTERM (killed)");
	d2.pid = 0;
	print_message("keyauthd exited %lld ms after SIGTERM\n", tp_now_ms() - t_term);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
	assert_int_equal(spc_connect_fd(d2.uaddr, 0), -1);
	assert_int_equal(spc_connect_fd(d2.taddr, 0), -1);
}

static void test_log_never_contains_a_key_2(void **state)
{
	(void)state;
	check_log_has_no_key(&d2);
}

int main(void)
{
	const struct CMUnitTest store[] = {
		cmocka_unit_test(test_config_check_flag),
		cmocka_unit_test(test_store_key_created_while_connected),
		cmocka_unit_test(test_store_key_revoked_while_connected),
		cmocka_unit_test(test_store_corrupt_file_keeps_old_keys),
		cmocka_unit_test(test_sighup_broken_config_keeps_old),
		cmocka_unit_test(test_sighup_good_config_adds_route),
		cmocka_unit_test(test_sigterm_answers_in_flight_frames_and_exits_0),
		cmocka_unit_test(test_log_never_contains_a_key_2),
	};

	return cmocka_run_group_tests_name("keyauthd store and signals", store, g2_setup,
	                                   g2_teardown);
}
