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
#include "keyfmt.h"
#include "keystore.h"
#include "proc.h"
#include "spop_client.h"

static char dir[TP_PATH_MAX], conf[TP_PATH_MAX + 32], store[TP_PATH_MAX + 32], logpath[TP_PATH_MAX + 32];
static char ctlsock[TP_PATH_MAX + 32], addr[TP_PATH_MAX + 32];
static char key[KEY_GEN_MAX + 1];
static pid_t agent;

static void
write_conf_at(const char *path, const char *listen, const char *ctl, const char *extra_route)
{
	char text[4096];

	snprintf(text, sizeof(text),
	    "listen = [ \"%s\" ];\nworkers = 2;\ncontrol_socket = \"%s\";\n"
	    "store = { path = \"%s\"; };\n"
	    "routes = ( { name = \"openai\"; context = \"/openai\"; },\n"
	    "           { name = \"mistral\"; context = \"/mistral\"; }%s );\n",
	    listen, ctl, store, extra_route);
	assert_int_equal(tp_write_file(path, text), 0);
}

static void
write_conf(const char *extra_route)
{
	write_conf_at(conf, addr, ctlsock, extra_route);
}

static int
setup(void **state)
{
	struct ks_entry e;
	char err[256];

	(void)state;
	if (tp_mkdtemp("control", dir, sizeof(dir)) != 0)
		return -1;
	snprintf(conf, sizeof(conf), "%s/keyauth.conf", dir);
	snprintf(store, sizeof(store), "%s/keys.db", dir);
	snprintf(logpath, sizeof(logpath), "%s/agent.log", dir);
	snprintf(ctlsock, sizeof(ctlsock), "%s/control.sock", dir);
	snprintf(addr, sizeof(addr), "unix:%s/agent.sock", dir);
	memset(&e, 0, sizeof(e));
	if (keyfmt_generate("ka_", key, sizeof(key)) < 0 || keyfmt_new_id(e.id) != 0)
		return -1;
	keyfmt_digest(key, strlen(key), e.digest);
	e.route = "openai";
	e.owner = "";
	e.created = 1;
	if (ks_file_write_gen(store, &e, 1, 41, err, sizeof(err)) != 0)
		return -1;
	write_conf("");
	agent = tp_spawn_keyauthd(conf, logpath);
	if (agent <= 0 || tp_wait_connectable(agent, addr, tp_scaled_ms(5000)) != 0)
		return -1;
	return 0;
}

static int
teardown(void **state)
{
	int st;

	(void)state;
	if (agent > 0) {
		tp_signal(agent, SIGTERM);
		tp_wait_exit(agent, tp_scaled_ms(5000), &st);
	}
	if (getenv("KEYAUTH_TEST_KEEP") == NULL)
		tp_rmtree(dir);
	return 0;
}

static char *
stats(void)
{
	char *s = ctl_control_call(ctlsock, "stats");

	assert_non_null(s);
	return s;
}

static void
test_stats_count_verdicts_by_status_and_route(void **state)
{
	struct spc_conn *c = spc_open(addr, tp_scaled_ms(2000));
	struct spc_ack a;
	char *s;

	(void)state;
	assert_non_null(c);
	assert_true(spc_handshake(c, tp_scaled_ms(2000)));
	assert_int_equal(spc_query(c, "openai", key, &a, tp_scaled_ms(2000)), 0);
	assert_int_equal(spc_query(c, "openai", key, &a, tp_scaled_ms(2000)), 0);
	assert_int_equal(spc_query(c, "mistral", key, &a, tp_scaled_ms(2000)), 0);
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
	assert_null(strstr(s, key));
	free(s);
	spc_close(c);
}

static void
test_stats_count_protocol_errors(void **state)
{
	static const uint8_t zero_len[] = { 0, 0, 0, 0 };
	struct spc_conn *c = spc_open(addr, tp_scaled_ms(2000));
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
	write_conf(", { name = \"azure\"; context = \"/azure\"; }");
	r = ctl_control_call(ctlsock, "reload");
	assert_non_null(r);
	assert_non_null(strstr(r, "\"reload\":\"ok\""));
	free(r);
	c = spc_open(addr, tp_scaled_ms(2000));
	assert_non_null(c);
	assert_true(spc_handshake(c, tp_scaled_ms(2000)));
	assert_int_equal(spc_query(c, "azure", NULL, &a, tp_scaled_ms(2000)), 0);
	assert_string_equal(a.status, "missing");   /* known now: not unknown_route */
	spc_close(c);

	assert_int_equal(tp_write_file(conf, "routes = ( { name = \"x\"; } );\n"), 0);
	r = ctl_control_call(ctlsock, "reload");
	assert_non_null(r);
	assert_non_null(strstr(r, "\"reload\":\"rejected\""));
	free(r);
	r = stats();
	assert_non_null(strstr(r, "\"reloads_ok\":1,\"reloads_rejected\":1,\"last_reload\":\"rejected\""));
	assert_non_null(strstr(r, "\"routes\":3,"));   /* the good configuration still runs */
	free(r);

	r = ctl_control_call(ctlsock, "make-coffee");
	assert_non_null(r);
	assert_non_null(strstr(r, "\"error\""));
	free(r);
}

/* ---- the socket file ------------------------------------------------------------- */

/* Starts a second agent (its own SPOP socket, control socket <ctl>), named
 * <tag> in its files; fills <log> with its log's path. */
static pid_t
second_agent(const char *tag, const char *ctl, char *log, size_t loglen)
{
	char conf2[TP_PATH_MAX + 32], listen2[TP_PATH_MAX + 32];

	snprintf(conf2, sizeof(conf2), "%s/%s.conf", dir, tag);
	snprintf(listen2, sizeof(listen2), "unix:%s/%s-spop.sock", dir, tag);
	snprintf(log, loglen, "%s/%s.log", dir, tag);
	write_conf_at(conf2, listen2, ctl, "");
	return tp_spawn_keyauthd(conf2, log);
}

/* Waits for <pid> to exit on its own and returns its exit code (-1: killed
 * at the deadline, or by a signal). */
static int
exit_code(pid_t pid)
{
	int st;

	if (tp_wait_exit(pid, tp_scaled_ms(5000), &st) != 0 || !WIFEXITED(st))
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
	char log2[TP_PATH_MAX + 32], *s;
	pid_t pid;

	(void)state;
	pid = second_agent("second", ctlsock, log2, sizeof(log2));
	assert_true(pid > 0);
	assert_int_equal(exit_code(pid), 1);
	assert_true(tp_log_contains(log2, "event=start_failed"));
	assert_true(tp_log_contains(log2, "another process is listening there"));
	assert_true(tp_log_contains(log2, ctlsock));
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
	char path[TP_PATH_MAX + 32], uaddr[TP_PATH_MAX + 40], log2[TP_PATH_MAX + 32], *s;
	struct sockaddr_un sun;
	pid_t pid;
	int fd;

	(void)state;
	snprintf(path, sizeof(path), "%s/leftover.sock", dir);
	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	assert_true(strlen(path) < sizeof(sun.sun_path));
	strcpy(sun.sun_path, path);
	fd = socket(AF_UNIX, SOCK_STREAM, 0);
	assert_true(fd >= 0);
	assert_int_equal(bind(fd, (struct sockaddr *)&sun, sizeof(sun)), 0);
	close(fd);                      /* the file stays, with nobody behind it */
	pid = second_agent("leftover", path, log2, sizeof(log2));
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

	snprintf(path, sizeof(path), "%s/not-a-socket", dir);
	assert_int_equal(tp_write_file(path, "precious\n"), 0);
	pid = second_agent("notsock", path, log2, sizeof(log2));
	assert_true(pid > 0);
	assert_int_equal(exit_code(pid), 1);
	assert_true(tp_log_contains(log2, "exists and is not a socket"));
	assert_true(tp_log_contains(log2, path));
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

	return cmocka_run_group_tests(tests, setup, teardown);
}
