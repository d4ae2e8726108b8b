/* SPDX-License-Identifier: Apache-2.0 */
/*
 * test_redis: the Redis store backend (issue 10) end to end.
 *
 * A real redis-server (Debian's; the tests skip when it is absent) on a free
 * loopback port with persistence off, two keyauthd agents on it, and
 * keyauthctl writing through the same backend. Checks that create, revoke and
 * rotate reach both agents within 1 s (the delays are printed), that a killed
 * Redis leaves the agents answering from their last set and that a restarted
 * one is picked up without an agent restart, that a change whose message was
 * lost is healed by the resync on resubscription, and that bad records are
 * skipped with a log line. Keys go to files only, never to the output.
 */
#include <errno.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <hiredis/hiredis.h>

#include "keyfmt.h"
#include "proc.h"
#include "spop_client.h"

#define PREFIX "ka_"
#define NS     "katest"

struct agent {
	char conf[TP_PATH_MAX + 32];
	char log[TP_PATH_MAX + 32];
	char addr[TP_PATH_MAX + 48];
	pid_t pid;
	struct spc_conn *c;
};

struct made_key {
	char id[KEY_ID_LEN + 1];
	char key[KEY_GEN_MAX + 1];
};

static char dir[TP_PATH_MAX];
static char redis_log[TP_PATH_MAX + 32];
static char ctl_conf[TP_PATH_MAX + 32];
static int redis_port;
static pid_t redis_pid;
/* 0 and 1: defaults (stale_action serve); 2: max_staleness 1 s, deny. */
static struct agent agents[3];

static const char *redis_server_path(void)
{
	const char *p = getenv("REDIS_SERVER");

	return p != NULL ? p : "/usr/bin/redis-server";
}

static const char *ctl_path(void)
{
	const char *p = getenv("KEYAUTHCTL");

	return p != NULL ? p : "build/keyauthctl";
}

static int io_ms(void)
{
	return tp_scaled_ms(3000);
}

static int redis_start(void)
{
	char port[16], addr[64];
	char *argv[] = { (char *)redis_server_path(), "--port", port, "--bind", "127.0.0.1",
	                 "--save", "", "--appendonly", "no", "--dir", dir,
	                 "--dbfilename", "dump.rdb", NULL };

	snprintf(port, sizeof(port), "%d", redis_port);
	snprintf(addr, sizeof(addr), "127.0.0.1:%d", redis_port);
	redis_pid = tp_spawn(argv, redis_log);
	if (redis_pid == -1 || tp_wait_connectable(redis_pid, addr, 5000) == -1)
		return -1;
	return 0;
}

static redisContext *rds(void)
{
	struct timeval tv = { 2, 0 };
	redisContext *c = redisConnectWithTimeout("127.0.0.1", redis_port, tv);

	assert_non_null(c);
	assert_int_equal(c->err, 0);
	return c;
}

static void rcmd(redisContext *c, const char *fmt, ...)
{
	va_list ap;
	redisReply *r;

	va_start(ap, fmt);
	r = redisvCommand(c, fmt, ap);
	va_end(ap);
	assert_non_null(r);
	if (r->type == REDIS_REPLY_ERROR)
		fail_msg("redis: %s", r->str);
	freeReplyObject(r);
}

static const char ROUTES[] =
	"routes = (\n"
	"  { name = \"openai\"; type = \"provider\"; context = \"/openai\"; }\n"
	");\n";

static int write_conf(const char *path, const char *listen, const char *extra)
{
	char buf[2048];
	int n = snprintf(buf, sizeof(buf),
		"listen = [ \"%s\" ];\n"
		"workers = 1;\n"
		"key_prefix = \"" PREFIX "\";\n"
		"store = { backend = \"redis\"; address = \"127.0.0.1:%d\"; namespace = \"" NS "\";"
		" resync_interval = 60; %s };\n"
		"log = { level = \"debug\"; target = \"stderr\"; };\n%s",
		listen, redis_port, extra, ROUTES);

	if (n < 0 || (size_t)n >= sizeof(buf))
		return -1;
	return tp_write_file(path, buf);
}

static int agent_start(struct agent *a, int i, const char *extra)
{
	snprintf(a->conf, sizeof(a->conf), "%s/agent%d.conf", dir, i);
	snprintf(a->log, sizeof(a->log), "%s/agent%d.log", dir, i);
	snprintf(a->addr, sizeof(a->addr), "unix:%s/agent%d.sock", dir, i);
	if (write_conf(a->conf, a->addr, extra) == -1)
		return -1;
	a->pid = tp_spawn_keyauthd(a->conf, a->log);
	if (a->pid == -1 || tp_wait_connectable(a->pid, a->addr, 5000) == -1)
		return -1;
	a->c = spc_open(a->addr, io_ms());
	if (a->c == NULL || !spc_handshake(a->c, io_ms()))
		return -1;
	return 0;
}

static void agent_stop(struct agent *a)
{
	if (a->c != NULL)
		spc_close(a->c);
	a->c = NULL;
	if (a->pid > 0) {
		int status = 0;

		tp_signal(a->pid, SIGTERM);
		assert_int_equal(tp_wait_exit(a->pid, 5000, &status), 0);
		assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	}
	a->pid = 0;
}

/* Runs keyauthctl -c ctl_conf <args...> (NULL-terminated); its output goes
 * to <out> (never printed: it holds keys). Returns the exit status. */
static int run_ctl(const char *out, ...)
{
	char *argv[16];
	int argc = 0, status = 0;
	va_list ap;
	pid_t pid;

	argv[argc++] = (char *)ctl_path();
	argv[argc++] = "-c";
	argv[argc++] = ctl_conf;
	va_start(ap, out);
	while (argc < 15 && (argv[argc] = va_arg(ap, char *)) != NULL)
		argc++;
	va_end(ap);
	argv[argc] = NULL;
	unlink(out);
	pid = tp_spawn(argv, out);
	if (pid == -1 || tp_wait_exit(pid, 10000, &status) == -1)
		return -1;
	return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

/* Pulls "id" and "key" out of the JSON line keyauthctl printed to <path>. */
static void parse_made(const char *path, struct made_key *m)
{
	char buf[8192];
	FILE *f = fopen(path, "r");
	size_t n;
	const char *p;

	assert_non_null(f);
	n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = '\0';
	p = strstr(buf, "{\"id\":\"");
	assert_non_null(p);
	memcpy(m->id, p + 7, KEY_ID_LEN);
	m->id[KEY_ID_LEN] = '\0';
	p = strstr(p, "\"key\":\"");
	assert_non_null(p);
	p += 7;
	n = strcspn(p, "\"");
	assert_true(n > 0 && n < sizeof(m->key));
	memcpy(m->key, p, n);
	m->key[n] = '\0';
	/* The file held the key: gone as soon as it is read. */
	unlink(path);
}

static void create_key(struct made_key *m)
{
	char out[TP_PATH_MAX + 16];

	snprintf(out, sizeof(out), "%s/ctl.out", dir);
	assert_int_equal(run_ctl(out, "key", "create", "--route", "openai", "--owner", "t",
	                         "--json", NULL), 0);
	parse_made(out, m);
}

/* Queries <a> until it answers <status> for <key>; returns the delay in ms,
 * -1 past <ms>. */
static long long wait_status(struct agent *a, const char *key, const char *status, int ms)
{
	long long t0 = tp_now_ms(), deadline = t0 + tp_scaled_ms(ms);
	struct spc_ack ack;

	for (;;) {
		if (spc_query(a->c, "openai", key, &ack, io_ms()) != 0)
			fail_msg("no ACK while waiting for status %s", status);
		if (strcmp(ack.status, status) == 0)
			return tp_now_ms() - t0;
		if (tp_now_ms() >= deadline)
			return -1;
		tp_nap_ms(5);
	}
}

/* Polls until a line logged by <a> after byte <from> contains <needle>. */
static int wait_log_since(const struct agent *a, size_t from, const char *needle, int ms)
{
	const char *const ln[] = { needle, NULL };
	long long deadline = tp_now_ms() + tp_scaled_ms(ms);

	while (!tp_log_line_since(a->log, from, ln)) {
		if (tp_now_ms() >= deadline)
			return -1;
		tp_nap_ms(10);
	}
	return 0;
}

static void expect_status(struct agent *a, const char *key, const char *status, const char *what)
{
	struct spc_ack ack;

	if (spc_query(a->c, "openai", key, &ack, io_ms()) != 0)
		fail_msg("%s: no ACK", what);
	if (strcmp(ack.status, status) != 0)
		fail_msg("%s: status %s, want %s", what, ack.status, status);
}

/* Both agents reach <status> for <key> within 1 s; prints the delays. */
static void both_within_1s(const char *key, const char *status, const char *what)
{
	for (int i = 0; i < 2; i++) {
		long long ms = wait_status(&agents[i], key, status, 1000);

		if (ms < 0)
			fail_msg("%s: agent %d not %s within 1 s", what, i, status);
		print_message("%s: agent %d sees %s after %lld ms\n", what, i, status, ms);
	}
}

static int setup(void **state)
{
	(void)state;
	if (access(redis_server_path(), X_OK) != 0)
		return 0;
	if (tp_mkdtemp("keyauth-redis", dir, sizeof(dir)) == -1)
		return -1;
	snprintf(redis_log, sizeof(redis_log), "%s/redis.log", dir);
	snprintf(ctl_conf, sizeof(ctl_conf), "%s/ctl.conf", dir);
	redis_port = tp_free_port();
	if (redis_port <= 0 || redis_start() == -1)
		return -1;
	if (write_conf(ctl_conf, "127.0.0.1:1", "") == -1)
		return -1;
	for (int i = 0; i < 2; i++)
		if (agent_start(&agents[i], i, "") == -1)
			return -1;
	if (agent_start(&agents[2], 2, "max_staleness = 1; stale_action = \"deny\";") == -1)
		return -1;
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	if (!dir[0])
		return 0;
	for (int i = 0; i < 3; i++)
		agent_stop(&agents[i]);
	if (redis_pid > 0) {
		tp_signal(redis_pid, SIGKILL);
		tp_wait_exit(redis_pid, 5000, NULL);
	}
	if (getenv("KEYAUTH_TEST_KEEP"))
		print_message("kept %s\n", dir);
	else
		tp_rmtree(dir);
	return 0;
}

#define NEED_REDIS() do { \
		if (!dir[0]) { \
			print_message("redis-server not installed: skipped\n"); \
			skip(); \
		} \
	} while (0)

static void test_create_revoke_rotate_reach_both_agents(void **state)
{
	struct made_key k, k2;
	char out[TP_PATH_MAX + 16];

	(void)state;
	NEED_REDIS();
	snprintf(out, sizeof(out), "%s/ctl.out", dir);
	create_key(&k);
	both_within_1s(k.key, "ok", "create");
	assert_int_equal(run_ctl(out, "key", "revoke", k.id, NULL), 0);
	both_within_1s(k.key, "revoked", "revoke");

	create_key(&k);
	both_within_1s(k.key, "ok", "create (2)");
	assert_int_equal(run_ctl(out, "key", "rotate", k.id, "--json", NULL), 0);
	parse_made(out, &k2);
	both_within_1s(k2.key, "ok", "rotate (new key)");
	/* keyauthctl reads back through redis too. */
	assert_int_equal(run_ctl(out, "key", "list", NULL), 0);
	assert_true(tp_log_contains(out, k2.id));
	unlink(out);
}

static void test_lost_message_healed_by_resync(void **state)
{
	redisContext *c;
	struct made_key k;
	size_t from[2];

	(void)state;
	NEED_REDIS();
	create_key(&k);
	both_within_1s(k.key, "ok", "create");
	/* A change with no PUBLISH: as if the message were lost. */
	c = rds();
	rcmd(c, "HSET " NS ":key:%s revoked %lld", k.id, (long long)time(NULL));
	tp_nap_ms(200);
	expect_status(&agents[0], k.key, "ok", "unpublished change not yet seen");
	for (int i = 0; i < 2; i++)
		from[i] = tp_file_size(agents[i].log);
	/* Drop the subscriptions: the agents resubscribe and resync. */
	rcmd(c, "CLIENT KILL TYPE pubsub");
	redisFree(c);
	for (int i = 0; i < 2; i++) {
		const char *const ln[] = { "event=store_reconnected", NULL };
		long long ms = wait_status(&agents[i], k.key, "revoked", 3000);

		if (ms < 0)
			fail_msg("agent %d: change not healed by the resync", i);
		print_message("resync after lost message: agent %d healed in %lld ms\n", i, ms);
		assert_true(tp_log_line_since(agents[i].log, from[i], ln));
	}
}

static void test_bad_records_skipped(void **state)
{
	redisContext *c;
	struct made_key k;
	char id[KEY_ID_LEN + 1];

	(void)state;
	NEED_REDIS();
	c = rds();
	assert_int_equal(keyfmt_new_id(id), 0);
	rcmd(c, "SADD " NS ":ids %s", id);
	rcmd(c, "SET " NS ":key:%s garbage", id);                 /* wrong type */
	assert_int_equal(keyfmt_new_id(id), 0);
	rcmd(c, "SADD " NS ":ids %s", id);
	rcmd(c, "HSET " NS ":key:%s digest zz route openai", id); /* bad digest */
	assert_int_equal(keyfmt_new_id(id), 0);
	rcmd(c, "SADD " NS ":ids %s", id);
	rcmd(c, "HSET " NS ":key:%s digest %s route %s", id,
	     "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff", "bad route!");
	rcmd(c, "SADD " NS ":ids not-an-id");
	assert_int_equal(keyfmt_new_id(id), 0);
	rcmd(c, "SADD " NS ":ids %s", id);                          /* record missing */
	/* "*": reload everything (what keyauthctl sends for big changes). */
	rcmd(c, "PUBLISH " NS ":events %s", "*");
	/* A message that is not a list of ids is a full reload too, not a crash. */
	rcmd(c, "PUBLISH " NS ":events %s", "garbage \x01\xff");
	redisFree(c);
	/* A good change after the bad data: still seen, bad records skipped. */
	create_key(&k);
	both_within_1s(k.key, "ok", "create after bad records");
	for (int i = 0; i < 2; i++) {
		assert_true(tp_alive(agents[i].pid));
		assert_true(tp_log_contains(agents[i].log, "event=store_record_skipped"));
		assert_true(tp_log_contains(agents[i].log, "reason=\"not a hash\""));
		assert_true(tp_log_contains(agents[i].log, "reason=\"bad digest\""));
		assert_true(tp_log_contains(agents[i].log, "reason=\"record missing\""));
	}
}

static void test_redis_killed_then_restarted(void **state)
{
	redisContext *c;
	struct made_key k, k2;
	size_t from[2];

	(void)state;
	NEED_REDIS();
	create_key(&k);
	both_within_1s(k.key, "ok", "create");
	/* Persistence is off; SAVE once by hand so the restart brings the data back. */
	c = rds();
	rcmd(c, "SAVE");
	redisFree(c);
	for (int i = 0; i < 2; i++)
		from[i] = tp_file_size(agents[i].log);
	tp_signal(redis_pid, SIGKILL);
	assert_int_equal(tp_wait_exit(redis_pid, 5000, NULL), 0);
	redis_pid = 0;
	for (int i = 0; i < 2; i++)
		assert_int_equal(wait_log_since(&agents[i], from[i], "event=store_disconnected",
		                                3000), 0);
	/* Redis down: every verdict still comes from the last set, while the
	 * agent with stale_action deny turns to unknown_route past 1 s. */
	{
		long long t0 = tp_now_ms(), n = 0, denied_ms = -1;

		while (tp_now_ms() - t0 < tp_scaled_ms(4000) && denied_ms < 0) {
			struct spc_ack ack;

			for (int i = 0; i < 2; i++)
				expect_status(&agents[i], k.key, "ok", "while redis is down");
			n += 2;
			assert_int_equal(spc_query(agents[2].c, "openai", k.key, &ack, io_ms()), 0);
			if (strcmp(ack.status, "unknown_route") == 0)
				denied_ms = tp_now_ms() - t0;
			else if (strcmp(ack.status, "ok") != 0)
				fail_msg("stale agent: status %s", ack.status);
			tp_nap_ms(5);
		}
		if (denied_ms < 0)
			fail_msg("stale_action deny: no unknown_route within 4 s");
		print_message("redis down: %lld verdicts served from the last set; the deny agent "
		              "failed closed after %lld ms\n", n, denied_ms);
		assert_true(tp_log_contains(agents[2].log, "event=store_stale"));
	}
	assert_int_equal(redis_start(), 0);
	for (int i = 0; i < 2; i++)
		assert_int_equal(wait_log_since(&agents[i], from[i], "event=store_reconnected",
		                                5000), 0);
	create_key(&k2);
	both_within_1s(k2.key, "ok", "create after restart");
	for (int i = 0; i < 2; i++)
		expect_status(&agents[i], k.key, "ok", "old key after restart");
	if (wait_status(&agents[2], k.key, "ok", 3000) < 0)
		fail_msg("stale agent did not recover after the restart");
}

/* keyauthd -t on a config with <extra> store settings; its exit status. */
static int check_with(const char *extra, const char *log)
{
	char conf[TP_PATH_MAX + 32];

	snprintf(conf, sizeof(conf), "%s/check.conf", dir);
	if (write_conf(conf, "127.0.0.1:1", extra) == -1)
		return -1;
	unlink(log);
	return tp_run_keyauthd_check(conf, log);
}

static void test_password_file(void **state)
{
	char pass[TP_PATH_MAX + 32], extra[TP_PATH_MAX + 64], log[TP_PATH_MAX + 32];
	redisContext *c;

	(void)state;
	NEED_REDIS();
	snprintf(pass, sizeof(pass), "%s/redis.pass", dir);
	snprintf(log, sizeof(log), "%s/check.log", dir);
	snprintf(extra, sizeof(extra), "password_file = \"%s\";", pass);
	assert_int_equal(tp_write_file(pass, "s3cret-test\n"), 0);
	/* Group or other may read it: refused. */
	assert_int_equal(chmod(pass, 0640), 0);
	assert_int_equal(check_with(extra, log), 1);
	assert_true(tp_log_contains(log, "readable only by its owner"));
	assert_int_equal(chmod(pass, 0600), 0);
	c = rds();
	rcmd(c, "CONFIG SET requirepass s3cret-test");
	assert_int_equal(check_with(extra, log), 0);
	assert_int_equal(check_with("", log), 1);               /* no AUTH: NOAUTH */
	assert_false(tp_log_contains(log, "s3cret-test"));
	rcmd(c, "AUTH s3cret-test");
	rcmd(c, "CONFIG SET requirepass %s", "");
	redisFree(c);
}

static void test_log_has_no_key(void **state)
{
	(void)state;
	NEED_REDIS();
	/* Keys are only in test memory; the agent logs must hold none of the
	 * prefix-looking secrets: check the prefix appears only in config lines. */
	for (int i = 0; i < 2; i++)
		assert_false(tp_log_contains(agents[i].log, "Bearer"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_create_revoke_rotate_reach_both_agents),
		cmocka_unit_test(test_lost_message_healed_by_resync),
		cmocka_unit_test(test_bad_records_skipped),
		cmocka_unit_test(test_redis_killed_then_restarted),
		cmocka_unit_test(test_password_file),
		cmocka_unit_test(test_log_has_no_key),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
