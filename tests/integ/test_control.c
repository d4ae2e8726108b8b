/* SPDX-License-Identifier: Apache-2.0 */
/*
 * test_control: keyauthd's control socket, as `keyauthctl stats` and
 * `reload` use it — counters that follow the verdicts actually given (by
 * status and by route), the store's key count and generation, protocol
 * errors, and reloads accepted or rejected through the socket; and the
 * socket file itself: a second agent given the same path refuses to start
 * instead of taking the socket from the running one, a dead agent's leftover
 * socket is replaced, and a file that is not a socket is left alone.
 */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "ctl.h"
#include "fixture.h"
#include "proc.h"
#include "spop_client.h"

static struct tf_agent A;
static struct tf_key K;     /* the one key, route openai, generation 41 */

#define ROUTES "  { name = \"openai\"; context = \"/openai\"; },\n" \
               "  { name = \"mistral\"; context = \"/mistral\"; }"

/* The agents' config: two workers, routes openai, mistral and <extra_route>;
 * the control socket at <ctl> (NULL: A's). */
static struct tf_opts
opts(const char *extra_route, const char *ctl)
{
	static char routes[512];
	struct tf_opts o = { .workers = 2, .control = true, .control_path = ctl, .routes = routes };

	snprintf(routes, sizeof(routes), "%s%s", ROUTES, extra_route);
	return o;
}

static int
setup(void **state)
{
	struct tf_opts o = opts("", NULL);

	*state = &A;
	return tf_agent_up_key(&A, "control", &o, &K, 41);
}

static char *
stats(void)
{
	char *s = ctl_control_call(A.ctl, "stats");

	assert_non_null(s);
	return s;
}

static void
test_stats_count_verdicts_by_status_and_route(void **state)
{
	struct spc_conn *c = spc_open(A.uaddr, tp_scaled_ms(2000));
	struct spc_ack a;
	char *s;

	(void)state;
	assert_non_null(c);
	assert_true(spc_handshake(c, tp_scaled_ms(2000)));
	assert_int_equal(spc_query(c, "openai", K.key, &a, tp_scaled_ms(2000)), 0);
	assert_int_equal(spc_query(c, "openai", K.key, &a, tp_scaled_ms(2000)), 0);
	assert_int_equal(spc_query(c, "mistral", K.key, &a, tp_scaled_ms(2000)), 0);
	assert_int_equal(spc_query(c, "mistral", NULL, &a, tp_scaled_ms(2000)), 0);
	assert_int_equal(spc_query(c, "nowhere", NULL, &a, tp_scaled_ms(2000)), 0);
	s = stats();
	assert_non_null(strstr(s, "\"verdicts\":{\"ok\":2,\"missing\":1,\"malformed\":0,"
	    "\"invalid\":0,\"expired\":0,\"revoked\":0,\"forbidden\":1,\"unknown_route\":1}"));
	assert_non_null(strstr(s, "\"openai\":{\"ok\":2,\"missing\":0,"));
	assert_non_null(strstr(s, "\"mistral\":{\"ok\":0,\"missing\":1,"));
	assert_non_null(strstr(s, "\"forbidden\":1,\"unknown_route\":0},\"(unknown)\""));
	assert_non_null(strstr(s, "\"keys\":1,"));
	assert_non_null(strstr(s, "\"file_generation\":41,"));
	assert_non_null(strstr(s, "\"handshakes\":1,"));
	assert_null(strstr(s, K.key));
	free(s);
	spc_close(c);
}

static void
test_stats_count_protocol_errors(void **state)
{
	static const uint8_t zero_len[] = { 0, 0, 0, 0 };
	struct spc_conn *c = spc_open(A.uaddr, tp_scaled_ms(2000));
	struct spc_frame f;
	char *s;

	(void)state;
	assert_non_null(c);
	assert_true(spc_handshake(c, tp_scaled_ms(2000)));
	assert_int_equal(spc_send_raw(c, zero_len, sizeof(zero_len), tp_scaled_ms(2000)), 0);
	assert_int_equal(spc_read_frame(c, &f, tp_scaled_ms(3000)), SPC_FRAME);
	assert_int_equal(f.type, SPOP_FRM_AGENT_DISCON);
	spc_frame_free(&f);
	assert_int_equal(spc_wait_eof(c, tp_scaled_ms(3000)), SPC_EOF);
	spc_close(c);
	s = stats();
	assert_non_null(strstr(s, "\"protocol_errors\":{\"4\":1}"));
	free(s);
}

static void
test_reload_through_control_socket(void **state)
{
	struct spc_conn *c;
	struct spc_ack a;
	char *r;

	(void)state;
	struct tf_opts o = opts(",\n  { name = \"azure\"; context = \"/azure\"; }", NULL);

	assert_int_equal(tf_agent_conf(&A, &o), 0);
	r = ctl_control_call(A.ctl, "reload");
	assert_non_null(r);
	assert_non_null(strstr(r, "\"reload\":\"ok\""));
	free(r);
	c = spc_open(A.uaddr, tp_scaled_ms(2000));
	assert_non_null(c);
	assert_true(spc_handshake(c, tp_scaled_ms(2000)));
	assert_int_equal(spc_query(c, "azure", NULL, &a, tp_scaled_ms(2000)), 0);
	assert_string_equal(a.status, "missing");   /* known now: not unknown_route */
	spc_close(c);

	assert_int_equal(tp_write_file(A.conf, "routes = ( { name = \"x\"; } );\n"), 0);
	r = ctl_control_call(A.ctl, "reload");
	assert_non_null(r);
	assert_non_null(strstr(r, "\"reload\":\"rejected\""));
	free(r);
	r = stats();
	assert_non_null(strstr(r, "\"reloads_ok\":1,\"reloads_rejected\":1,\"last_reload\":\"rejected\""));
	assert_non_null(strstr(r, "\"routes\":3,"));   /* the good configuration still runs */
	free(r);

	r = ctl_control_call(A.ctl, "make-coffee");
	assert_non_null(r);
	assert_non_null(strstr(r, "\"error\""));
	free(r);
}

/* ---- the socket file ------------------------------------------------------------- */

/* Starts a second agent (its own SPOP socket, control socket <ctl>, the same
 * store), named <tag> in its files, described in <second>. */
static pid_t
second_agent(const char *tag, const char *ctl, struct tf_agent *second)
{
	struct tf_opts o = opts("", ctl);

	assert_int_equal(tf_agent_named(second, A.dir, tag), 0);
	assert_int_equal(tf_agent_conf(second, &o), 0);
	return tp_spawn_keyauthd(second->conf, second->log);
}

/* Waits for <pid> to exit on its own and returns its exit code (-1: killed
 * at the deadline, or by a signal). */
static int
exit_code(pid_t pid)
{
	int st;

	if (tp_wait_exit(pid, 5000, &st) != 0 || !WIFEXITED(st))
		return -1;
	return WEXITSTATUS(st);
}

/*
 * The running agent's control socket is live: a second agent configured with
 * the same path must refuse to start, saying why and where, and the first
 * one keeps answering there. (Unlinking blindly, the second one took the
 * path; the first one's socket became unreachable, even after the second
 * one exited, since that one removed the file on its way out.)
 */
static void
test_second_agent_does_not_take_a_live_control_socket(void **state)
{
	struct tf_agent second;
	char *s;
	pid_t pid;

	(void)state;
	pid = second_agent("second", A.ctl, &second);
	assert_true(pid > 0);
	assert_int_equal(exit_code(pid), 1);
	assert_true(tp_log_contains(second.log, "event=start_failed"));
	assert_true(tp_log_contains(second.log, "another process is listening there"));
	assert_true(tp_log_contains(second.log, A.ctl));
	s = stats();
	assert_non_null(strstr(s, "\"file_generation\":41,"));
	free(s);
}

/*
 * A socket file nobody listens on (a dead agent's) is replaced; a file that
 * is not a socket is refused and left as it was.
 */
static void
test_leftover_control_socket_is_replaced_other_files_are_not(void **state)
{
	char path[TF_PATH], uaddr[TF_PATH + 8], *s;
	struct tf_agent second;
	struct sockaddr_un sun;
	pid_t pid;
	int fd;

	(void)state;
	snprintf(path, sizeof(path), "%s/leftover.sock", A.dir);
	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	assert_true(strlen(path) < sizeof(sun.sun_path));
	strcpy(sun.sun_path, path);
	fd = socket(AF_UNIX, SOCK_STREAM, 0);
	assert_true(fd >= 0);
	assert_int_equal(bind(fd, (struct sockaddr *)&sun, sizeof(sun)), 0);
	close(fd);                      /* the file stays, with nobody behind it */
	pid = second_agent("leftover", path, &second);
	assert_true(pid > 0);
	snprintf(uaddr, sizeof(uaddr), "unix:%s", path);
	assert_int_equal(tp_wait_connectable(pid, uaddr, 5000), 0);
	s = ctl_control_call(path, "stats");
	assert_non_null(s);
	assert_non_null(strstr(s, "\"file_generation\":41,"));
	free(s);
	assert_int_equal(tp_signal(pid, SIGTERM), 0);
	assert_int_equal(exit_code(pid), 0);
	assert_int_equal(access(path, F_OK), -1);   /* removed at exit */

	snprintf(path, sizeof(path), "%s/not-a-socket", A.dir);
	assert_int_equal(tp_write_file(path, "precious\n"), 0);
	pid = second_agent("notsock", path, &second);
	assert_true(pid > 0);
	assert_int_equal(exit_code(pid), 1);
	assert_true(tp_log_contains(second.log, "exists and is not a socket"));
	assert_true(tp_log_contains(second.log, path));
	assert_true(tp_file_contains(path, "precious\n", 9));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_stats_count_verdicts_by_status_and_route),
		cmocka_unit_test(test_stats_count_protocol_errors),
		cmocka_unit_test(test_reload_through_control_socket),
		cmocka_unit_test(test_second_agent_does_not_take_a_live_control_socket),
		cmocka_unit_test(test_leftover_control_socket_is_replaced_other_files_are_not),
	};

	return cmocka_run_group_tests(tests, setup, tf_agent_teardown);
}
