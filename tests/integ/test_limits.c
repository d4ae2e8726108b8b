/* SPDX-License-Identifier: Apache-2.0 */
/*
 * test_limits: keyauthd's bounds — the idle timeout (AGENT-DISCONNECT
 * status 2, then close) and max_connections (connections over the bound are
 * accepted and closed at once, counted, while existing ones keep being
 * served and the agent stays responsive).
 */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "ctl.h"
#include "fixture.h"
#include "proc.h"
#include "spop.h"
#include "spop_client.h"

#define MAXCONN 4

static struct tf_agent A;

static int
setup(void **state)
{
	struct tf_opts o = { .max_connections = MAXCONN, .idle_timeout = 1, .control = true };

	*state = &A;
	return tf_agent_up(&A, "limits", &o);
}

static void
test_idle_connection_gets_disconnect_2_then_close(void **state)
{
	struct spc_conn *c = spc_open(A.uaddr, tp_scaled_ms(2000));
	struct spc_frame f;
	long long t0;

	(void)state;
	assert_non_null(c);
	assert_true(spc_handshake(c, tp_scaled_ms(2000)));
	t0 = tp_now_ms();
	assert_int_equal(spc_read_frame(c, &f, tp_scaled_ms(4000)), SPC_FRAME);
	assert_true(tp_now_ms() - t0 >= 900);     /* not before the 1 s idle timeout */
	assert_int_equal(f.type, SPOP_FRM_AGENT_DISCON);
	assert_int_equal(spc_disconnect_status(f.payload, f.payload_len, NULL, 0), SPOP_ERR_TOUT);
	spc_frame_free(&f);
	assert_int_equal(spc_wait_eof(c, tp_scaled_ms(3000)), SPC_EOF);
	spc_close(c);
}

static void
test_active_connection_is_not_idle(void **state)
{
	struct spc_conn *c = spc_open(A.uaddr, tp_scaled_ms(2000));
	struct spc_ack a;
	long long t0;

	(void)state;
	assert_non_null(c);
	assert_true(spc_handshake(c, tp_scaled_ms(2000)));
	/* A request every 300 ms for 2 s: never 1 s of silence. */
	t0 = tp_now_ms();
	while (tp_now_ms() - t0 < 2000) {
		assert_int_equal(spc_query(c, "openai", NULL, &a, tp_scaled_ms(2000)), 0);
		assert_string_equal(a.status, "missing");
		tp_nap_ms(300);
	}
	spc_close(c);
}

static void
test_connections_over_the_bound_are_closed_and_counted(void **state)
{
	struct spc_conn *keep[MAXCONN], *extra;
	struct spc_ack a;
	char *s;
	int i;

	(void)state;
	for (i = 0; i < MAXCONN; i++) {
		keep[i] = spc_open(A.uaddr, tp_scaled_ms(2000));
		assert_non_null(keep[i]);
		assert_true(spc_handshake(keep[i], tp_scaled_ms(2000)));
	}
	for (i = 0; i < 3; i++) {
		extra = spc_open(A.uaddr, tp_scaled_ms(2000));
		assert_non_null(extra);   /* accepted by the kernel ... */
		/* ... and closed by the agent without a word. */
		assert_int_equal(spc_wait_eof(extra, tp_scaled_ms(3000)), SPC_EOF);
		spc_close(extra);
	}
	for (i = 0; i < MAXCONN; i++) {
		assert_int_equal(spc_query(keep[i], "openai", NULL, &a, tp_scaled_ms(2000)), 0);
		assert_string_equal(a.status, "missing");
	}
	s = ctl_control_call(A.ctl, "stats");
	assert_non_null(s);
	assert_non_null(strstr(s, "\"refused\":3,"));
	free(s);
	for (i = 0; i < MAXCONN; i++)
		spc_close(keep[i]);
}

/* Started as root with no `user`, keyauthd refuses unless told; with a
 * `user`, it binds as root and then runs as that user. */
static void
test_root_without_user_is_refused_and_user_drops_privileges(void **state)
{
	char store[TF_PATH + 32], line[256];
	struct tf_opts o = { .store = store };
	struct tf_agent r;
	struct spc_conn *c;
	struct spc_ack a;
	unsigned uid = 0;
	pid_t pid;
	FILE *f;
	int st = 0;

	(void)state;
	if (geteuid() != 0)
		skip();
	snprintf(store, sizeof(store), "path = \"%s/nostore/keys.db\";", A.dir);
	assert_int_equal(tf_agent_named(&r, A.dir, "root"), 0);
	assert_int_equal(tf_agent_conf(&r, &o), 0);
	assert_int_equal(unsetenv("KEYAUTH_ALLOW_ROOT"), 0);
	pid = tp_spawn_keyauthd(r.conf, r.log);
	setenv("KEYAUTH_ALLOW_ROOT", "1", 1);
	assert_true(pid > 0);
	assert_int_equal(tp_wait_exit(pid, 5000, &st), 0);
	assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 1);
	assert_true(tp_log_contains(r.log, "running as root without a user setting"));

	/* The same with user = "nobody": it starts, serves, and is not root. */
	o.settings = "user = \"nobody\";";
	assert_int_equal(tf_agent_conf(&r, &o), 0);
	assert_int_equal(unsetenv("KEYAUTH_ALLOW_ROOT"), 0);
	pid = tp_spawn_keyauthd(r.conf, r.log);
	setenv("KEYAUTH_ALLOW_ROOT", "1", 1);
	assert_true(pid > 0);
	assert_int_equal(tp_wait_connectable(pid, r.uaddr, 5000), 0);
	c = spc_open(r.uaddr, tp_scaled_ms(2000));
	assert_non_null(c);
	assert_true(spc_handshake(c, tp_scaled_ms(2000)));
	assert_int_equal(spc_query(c, "openai", NULL, &a, tp_scaled_ms(2000)), 0);
	assert_string_equal(a.status, "missing");
	spc_close(c);
	snprintf(line, sizeof(line), "/proc/%d/status", (int)pid);
	f = fopen(line, "r");
	assert_non_null(f);
	while (fgets(line, sizeof(line), f) != NULL)
		if (sscanf(line, "Uid: %u", &uid) == 1)
			break;
	fclose(f);
	assert_true(uid != 0);
	assert_true(tp_log_contains(r.log, "event=privileges_dropped user=nobody"));
	tp_signal(pid, SIGTERM);
	assert_int_equal(tp_wait_exit(pid, 5000, &st), 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_idle_connection_gets_disconnect_2_then_close),
		cmocka_unit_test(test_active_connection_is_not_idle),
		cmocka_unit_test(test_connections_over_the_bound_are_closed_and_counted),
		cmocka_unit_test(test_root_without_user_is_refused_and_user_drops_privileges),
	};

	return cmocka_run_group_tests(tests, setup, tf_agent_teardown);
}
