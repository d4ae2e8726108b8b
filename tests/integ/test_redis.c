/* SPDX-License-Identifier: Apache-2.0 */
/*
 * test_redis: the Redis store backend end to end.
 *
 * A real redis-server (Debian's; the tests skip when it is absent) on a free
 * loopback port with persistence off, two keyauthd agents on it, and
 * keyauthctl writing through the same backend. Checks that create, revoke and
 * rotate reach both agents within 1 s (the delays are printed), that a killed
 * Redis leaves the agents answering from their last set and that a restarted
 * one is picked up without an agent restart, that a change whose message was
 * lost is healed by the resync on resubscription, and that bad records are
 * skipped with a log line. Also: start-up loads the set once; a periodic
 * resync with an unchanged generation loads nothing, a moved one (a write
 * whose message was lost) loads in full; the store gauges follow an outage;
 * an ACL user (AUTH username password); keyauthctl's WAIT for replicas
 * (write_replicas) with a real replica and without one. Keys go to files
 * only, never to the output.
 */
#include <errno.h>
#include <poll.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <hiredis/hiredis.h>

#include "ctl.h"
#include "fixture.h"
#include "keyfmt.h"
#include "proc.h"
#include "spop_client.h"
#include "spop_expect.h"

#define PREFIX "ka_"
#define NS     "katest"

/* An agent: its files "<dir>/agent<i>.*" and a connection kept open. */
struct agent {
	struct tf_agent t;
	struct spc_conn *c;
};

static char dir[TP_PATH_MAX];
static struct tf_agent ctl;                   /* its conf: what keyauthctl reads */
static int redis_port;
static pid_t redis_pid;
/* 0 and 1: defaults; 2: max_staleness 1 s, deny; 3: resync_interval 1 s and
 * a metrics endpoint (started by test_startup_loads_the_set_once); 4: an ACL
 * user (test_acl_username). */
#define NAGENTS 5
static struct agent agents[NAGENTS];
static pid_t replica_pid;
static const char *cur_ctl_conf = ctl.conf;   /* the config keyauthctl is given */

static int redis_start(void)
{
	char *extra[] = { "--dbfilename", "dump.rdb", NULL };
	char addr[64];

	redis_pid = tp_redis_start(dir, "redis", redis_port, extra, addr, sizeof(addr));
	return redis_pid > 0 ? 0 : -1;
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

/* A config on the Redis store with more store settings <extra>. */
static struct tf_opts redis_opts(const char *extra)
{
	static char store[1024];
	struct tf_opts o = { .key_prefix = PREFIX, .log_level = "debug", .store = store,
	                     .routes = "  { name = \"openai\"; type = \"provider\"; context = \"/openai\"; }" };

	snprintf(store, sizeof(store), "backend = \"redis\"; address = \"127.0.0.1:%d\"; namespace = \"" NS "\"; %s %s",
	         redis_port, strstr(extra, "resync_interval") ? "" : "resync_interval = 60;", extra);
	return o;
}

/* "<dir>/<name>.conf" for keyauthctl or keyauthd -t (into <paper>): the
 * Redis store with <extra>, a listener that is never opened. */
static int write_conf(struct tf_agent *paper, const char *name, const char *extra)
{
	struct tf_opts o = redis_opts(extra);

	o.listen_addr = "127.0.0.1:1";
	return tf_agent_named(paper, dir, name) == -1 ? -1 : tf_agent_conf(paper, &o);
}

/* Starts agent <i> with store settings <extra>, and a metrics endpoint when
 * <metrics>; opens its connection. */
static int agent_start_metrics(struct agent *a, int i, const char *extra, bool metrics)
{
	struct tf_opts o = redis_opts(extra);
	char name[16];

	o.metrics = metrics;
	o.control = metrics;    /* and a control socket, for keyauthctl stats */
	snprintf(name, sizeof(name), "agent%d", i);
	if (tf_agent_named(&a->t, dir, name) == -1 || tf_agent_conf(&a->t, &o) == -1 ||
	    tf_agent_start(&a->t) == -1)
		return -1;
	a->c = spc_open(a->t.uaddr, io_ms());
	if (a->c == NULL || !spc_handshake(a->c, io_ms()))
		return -1;
	return 0;
}

static int agent_start(struct agent *a, int i, const char *extra)
{
	return agent_start_metrics(a, i, extra, false);
}

static void agent_stop(struct agent *a)
{
	if (a->c != NULL)
		spc_close(a->c);
	a->c = NULL;
	assert_int_equal(tf_agent_stop(&a->t), 0);
}

static void create_key(struct tf_key *m)
{
	char out[TP_PATH_MAX + 16];

	snprintf(out, sizeof(out), "%s/ctl.out", dir);
	assert_int_equal(tf_ctl_run(cur_ctl_conf, out, "key", "create", "--route", "openai",
	                            "--owner", "t", "--json", NULL), 0);
	assert_int_equal(tf_ctl_made(out, m), 0);
}

/* Polls until a line logged by <a> after byte <from> contains <needle>. */
static int wait_log_since(const struct agent *a, size_t from, const char *needle, int ms)
{
	const char *const ln[] = { needle, NULL };
	long long deadline = tp_now_ms() + tp_scaled_ms(ms);

	while (!tp_log_line_since(a->t.log, from, ln)) {
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
		long long ms = wait_status(agents[i].c, "openai", key, status, 1000);

		if (ms < 0)
			fail_msg("%s: agent %d not %s within 1 s", what, i, status);
		print_message("%s: agent %d sees %s after %lld ms\n", what, i, status, ms);
	}
}

/* ---- helpers for the store's numbers ---------------------------------------- */

/* The value of the unlabelled metric <name> scraped from agent 3's
 * endpoint now. */
static double metric(const char *name)
{
	static const char req[] = "GET /metrics HTTP/1.0\r\n\r\n";
	char *buf, *p;
	size_t len = 0, cap = 1 << 17, nl = strlen(name);
	long long deadline = tp_now_ms() + io_ms();
	int fd;
	double v = -1;

	fd = spc_connect_fd(agents[3].t.maddr, io_ms());
	assert_true(fd >= 0);
	assert_int_equal(send(fd, req, sizeof(req) - 1, MSG_NOSIGNAL), (ssize_t)sizeof(req) - 1);
	buf = malloc(cap);
	assert_non_null(buf);
	while (len < cap - 1 && tp_now_ms() < deadline) {
		struct pollfd pf = { .fd = fd, .events = POLLIN };
		ssize_t n;

		if (poll(&pf, 1, 50) != 1)
			continue;
		n = recv(fd, buf + len, cap - 1 - len, 0);
		if (n <= 0)
			break;
		len += (size_t)n;
	}
	close(fd);
	buf[len] = '\0';
	for (p = buf; (p = strstr(p, name)) != NULL; p += nl)
		if (p > buf && p[-1] == '\n' && p[nl] == ' ') {
			v = strtod(p + nl + 1, NULL);
			break;
		}
	free(buf);
	if (v < 0)
		fail_msg("metric %s not found", name);
	return v;
}

/* Polls agent 3's metric <name> until <pred>(value, <ref>); the value, or
 * fails past <ms>. */
static double wait_metric(const char *name, bool (*pred)(double, double), double ref, int ms)
{
	long long deadline = tp_now_ms() + tp_scaled_ms(ms);

	for (;;) {
		double v = metric(name);

		if (pred(v, ref))
			return v;
		if (tp_now_ms() >= deadline)
			fail_msg("%s = %g: condition not met within %d ms", name, v, ms);
		tp_nap_ms(50);
	}
}

static bool eq(double v, double ref)
{
	return v == ref;
}

static bool gt(double v, double ref)
{
	return v > ref;
}

static bool ge(double v, double ref)
{
	return v >= ref;
}

static int setup(void **state)
{
	(void)state;
	if (access(tp_redis_server_path(), X_OK) != 0)
		return 0;
	if (tp_mkdtemp("keyauth-redis", dir, sizeof(dir)) == -1)
		return -1;
	redis_port = tp_free_port();
	if (redis_port <= 0 || redis_start() == -1)
		return -1;
	if (write_conf(&ctl, "ctl", "") == -1)
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
	for (int i = 0; i < NAGENTS; i++)
		agent_stop(&agents[i]);
	if (redis_pid > 0) {
		tp_signal(redis_pid, SIGKILL);
		tp_wait_exit(redis_pid, 5000, NULL);
	}
	if (replica_pid > 0) {
		tp_signal(replica_pid, SIGKILL);
		tp_wait_exit(replica_pid, 5000, NULL);
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
	struct tf_key k, k2;
	char out[TP_PATH_MAX + 16];

	(void)state;
	NEED_REDIS();
	snprintf(out, sizeof(out), "%s/ctl.out", dir);
	create_key(&k);
	both_within_1s(k.key, "ok", "create");
	assert_int_equal(tf_ctl_run(cur_ctl_conf, out, "key", "revoke", k.e.id, NULL), 0);
	both_within_1s(k.key, "revoked", "revoke");

	create_key(&k);
	both_within_1s(k.key, "ok", "create (2)");
	assert_int_equal(tf_ctl_run(cur_ctl_conf, out, "key", "rotate", k.e.id, "--json", NULL), 0);
	assert_int_equal(tf_ctl_made(out, &k2), 0);
	both_within_1s(k2.key, "ok", "rotate (new key)");
	/* keyauthctl reads back through redis too. */
	assert_int_equal(tf_ctl_run(cur_ctl_conf, out, "key", "list", NULL), 0);
	assert_true(tp_log_contains(out, k2.e.id));
	unlink(out);
}

static void test_lost_message_healed_by_resync(void **state)
{
	redisContext *c;
	struct tf_key k;
	size_t from[2];

	(void)state;
	NEED_REDIS();
	create_key(&k);
	both_within_1s(k.key, "ok", "create");
	/* A change with no PUBLISH: as if the message were lost. */
	c = rds();
	rcmd(c, "HSET " NS ":key:%s revoked %lld", k.e.id, (long long)time(NULL));
	tp_nap_ms(200);
	expect_status(&agents[0], k.key, "ok", "unpublished change not yet seen");
	for (int i = 0; i < 2; i++)
		from[i] = tp_file_size(agents[i].t.log);
	/* Drop the subscriptions: the agents resubscribe and resync. */
	rcmd(c, "CLIENT KILL TYPE pubsub");
	redisFree(c);
	for (int i = 0; i < 2; i++) {
		const char *const ln[] = { "event=store_reconnected", NULL };
		long long ms = wait_status(agents[i].c, "openai", k.key, "revoked", 3000);

		if (ms < 0)
			fail_msg("agent %d: change not healed by the resync", i);
		print_message("resync after lost message: agent %d healed in %lld ms\n", i, ms);
		assert_true(tp_log_line_since(agents[i].t.log, from[i], ln));
	}
}

static void test_bad_records_skipped(void **state)
{
	redisContext *c;
	struct tf_key k;
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
		assert_true(tp_alive(agents[i].t.pid));
		assert_true(tp_log_contains(agents[i].t.log, "event=store_record_skipped"));
		assert_true(tp_log_contains(agents[i].t.log, "reason=\"not a hash\""));
		assert_true(tp_log_contains(agents[i].t.log, "reason=\"bad digest\""));
		assert_true(tp_log_contains(agents[i].t.log, "reason=\"record missing\""));
	}
}

static void test_redis_killed_then_restarted(void **state)
{
	redisContext *c;
	struct tf_key k, k2;
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
		from[i] = tp_file_size(agents[i].t.log);
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
		assert_true(tp_log_contains(agents[2].t.log, "event=store_stale"));
	}
	/* The gauges of agent 3: disconnected, and the set's age grows. */
	if (agents[3].t.pid > 0) {
		double age;

		wait_metric("keyauth_store_connected", eq, 0, 3000);
		assert_true(metric("keyauth_store_disconnects_total") >= 1);
		age = wait_metric("keyauth_store_age_seconds", gt, 0, 3000);
		age = wait_metric("keyauth_store_age_seconds", ge, age + 0.5, 3000);
		print_message("redis down: keyauth_store_connected 0, age %.1f s and growing\n", age);
	}
	assert_int_equal(redis_start(), 0);
	for (int i = 0; i < 2; i++)
		assert_int_equal(wait_log_since(&agents[i], from[i], "event=store_reconnected",
		                                5000), 0);
	create_key(&k2);
	both_within_1s(k2.key, "ok", "create after restart");
	for (int i = 0; i < 2; i++)
		expect_status(&agents[i], k.key, "ok", "old key after restart");
	if (wait_status(agents[2].c, "openai", k.key, "ok", 3000) < 0)
		fail_msg("stale agent did not recover after the restart");
	if (agents[3].t.pid > 0) {
		wait_metric("keyauth_store_connected", eq, 1, 5000);
		wait_metric("keyauth_store_age_seconds", eq, 0, 3000);
		print_message("redis back: keyauth_store_connected 1, age 0\n");
	}
}

/* keyauthd -t on a config with <extra> store settings; its exit status. */
static int check_with(const char *extra, const char *log)
{
	struct tf_agent check;

	if (write_conf(&check, "check", extra) == -1)
		return -1;
	unlink(log);
	return tp_run_keyauthd_check(check.conf, log);
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

/* Runs first: agent 3's log holds only its start. */
static void test_startup_loads_the_set_once(void **state)
{
	struct agent *a = &agents[3];

	(void)state;
	NEED_REDIS();
	assert_int_equal(agent_start_metrics(a, 3, "resync_interval = 1;", true), 0);
	/* The subscription is confirmed and the generation has not moved
	 * since the start-up load: no second load. */
	assert_int_equal(wait_log_since(a, 0, "trigger=subscribe", 3000), 0);
	assert_true(tp_log_contains(a->t.log, "event=store_in_sync"));
	assert_int_equal(tp_count_lines(a->t.log, "event=store_loaded"), 1);
	assert_int_equal(tp_count_lines(a->t.log, "event=store_loaded where=redis"), 1);
	print_message("start-up: 1 load, subscription confirmed without a second\n");
	assert_true(metric("keyauth_store_resyncs_total") == 1);
	assert_true(metric("keyauth_store_connected") == 1);
	assert_true(metric("keyauth_store_age_seconds") == 0);
	/* keyauthctl stats: the change feed's counters, under their names
	 * (the file backend leaves them out, tests/cli/options.sh). */
	{
		char *js = ctl_control_call(a->t.ctl, "stats");
		const char *const want[] = { "\"backend\":\"redis\"", "\"age_s\":0",
			"\"connected\":true", "\"disconnects\":0", "\"resyncs\":1",
			"\"resyncs_skipped\":", "\"records_skipped\":0", "\"stale\":false",
			"\"outages\":0" };

		assert_non_null(js);
		for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++)
			if (strstr(js, want[i]) == NULL)
				fail_msg("redis stats lack %s: %s", want[i], js);
		free(js);
	}
}

static void test_periodic_resync_loads_only_when_the_generation_moved(void **state)
{
	struct agent *a = &agents[3];
	struct tf_key k;
	redisContext *c;
	double resyncs, skipped;
	size_t from;

	(void)state;
	NEED_REDIS();
	if (a->t.pid <= 0)
		fail_msg("agent 3 not started");
	create_key(&k);
	if (wait_status(a->c, "openai", k.key, "ok", 1000) < 0)
		fail_msg("agent 3 did not see the new key");
	/* The event made an incremental load: the next resync cannot trust
	 * the generation and loads in full, later ones are skipped. */
	resyncs = wait_metric("keyauth_store_resyncs_total", ge, 2, 3000);
	skipped = metric("keyauth_store_resyncs_skipped_total");
	from = tp_file_size(a->t.log);
	wait_metric("keyauth_store_resyncs_skipped_total", ge, skipped + 2, 4000);
	assert_true(metric("keyauth_store_resyncs_total") == resyncs);
	{
		const char *const ln[] = { "event=store_in_sync", "trigger=resync", NULL };
		const char *const ld[] = { "event=store_loaded", NULL };

		assert_true(tp_log_line_since(a->t.log, from, ln));
		assert_false(tp_log_line_since(a->t.log, from, ld));
	}
	print_message("unchanged generation: %g resyncs skipped, no load\n",
	              metric("keyauth_store_resyncs_skipped_total"));
	/* A write whose message is lost, but which moved the generation: the
	 * next periodic resync heals it. */
	c = rds();
	rcmd(c, "MULTI");
	rcmd(c, "HSET " NS ":key:%s revoked %lld", k.e.id, (long long)time(NULL));
	rcmd(c, "INCR " NS ":generation");
	rcmd(c, "EXEC");
	redisFree(c);
	{
		long long ms = wait_status(a->c, "openai", k.key, "revoked", 3000);

		if (ms < 0)
			fail_msg("generation moved without an event: not healed by the resync");
		print_message("lost message with a generation bump healed in %lld ms\n", ms);
	}
	assert_true(metric("keyauth_store_resyncs_total") > resyncs);
}

static void test_acl_username(void **state)
{
	char pass[TP_PATH_MAX + 32], extra[TP_PATH_MAX + 96], log[TP_PATH_MAX + 32];
	struct tf_key k;
	redisContext *c;

	(void)state;
	NEED_REDIS();
	snprintf(pass, sizeof(pass), "%s/acl.pass", dir);
	snprintf(log, sizeof(log), "%s/check.log", dir);
	snprintf(extra, sizeof(extra), "username = \"kaagent\"; password_file = \"%s\";", pass);
	assert_int_equal(tp_write_file(pass, "acl-pw-test\n"), 0);
	assert_int_equal(chmod(pass, 0600), 0);
	c = rds();
	rcmd(c, "ACL SETUSER kaagent reset on >acl-pw-test ~" NS ":* &" NS ":* +@all");
	assert_int_equal(check_with(extra, log), 0);
	assert_int_equal(agent_start(&agents[4], 4, extra), 0);
	/* A change made after the start arrives through the agent's own
	 * (authenticated) subscription. */
	create_key(&k);
	if (wait_status(agents[4].c, "openai", k.key, "ok", 1000) < 0)
		fail_msg("agent with an ACL user did not see the new key");
	agent_stop(&agents[4]);
	/* A wrong password: refused like the password-only case. */
	assert_int_equal(tp_write_file(pass, "wrong-pw\n"), 0);
	assert_int_equal(check_with(extra, log), 1);
	assert_true(tp_log_contains(log, "AUTH failed"));
	assert_false(tp_log_contains(log, "wrong-pw"));
	assert_false(tp_log_contains(log, "acl-pw-test"));
	rcmd(c, "ACL DELUSER kaagent");
	redisFree(c);
}

/* The primary's INFO lists one replica, online (its initial sync done). */
static bool replica_linked(int port)
{
	struct timeval tv = { 2, 0 };
	redisContext *c = redisConnectWithTimeout("127.0.0.1", port, tv);
	redisReply *r;
	bool up = false;

	if (c == NULL || c->err) {
		redisFree(c);
		return false;
	}
	r = redisCommand(c, "INFO replication");
	up = r != NULL && r->type == REDIS_REPLY_STRING &&
	    strstr(r->str, "connected_slaves:1") != NULL && strstr(r->str, "state=online") != NULL;
	if (r != NULL)
		freeReplyObject(r);
	redisFree(c);
	return up;
}

static void test_write_replicas(void **state)
{
	char out[TP_PATH_MAX + 16], master[16], raddr[64];
	struct tf_agent w;
	char *extra[] = { "--dbfilename", "replica.rdb", "--replicaof", "127.0.0.1", master, NULL };
	struct tf_key k;
	long long t0, ms;

	(void)state;
	NEED_REDIS();
	snprintf(out, sizeof(out), "%s/ctlw.out", dir);
	assert_int_equal(write_conf(&w, "ctlw", "write_replicas = 1; write_timeout_ms = 300;"), 0);
	cur_ctl_conf = w.conf;
	/* No replica: written, the key still printed, then the error, exit 1
	 * after the timeout. */
	t0 = tp_now_ms();
	assert_int_equal(tf_ctl_run(cur_ctl_conf, out, "key", "create", "--route", "openai", "--json", NULL), 1);
	ms = tp_now_ms() - t0;
	assert_true(ms >= 300);
	assert_true(tp_log_contains(out, "only 0 of 1 replicas confirmed it within 300 ms"));
	assert_true(tp_log_contains(out, "a failover now could undo it"));
	{
		char line[4096];
		FILE *f = fopen(out, "r");

		assert_non_null(f);
		while (fgets(line, sizeof(line), f) != NULL)
			if (strstr(line, "replicas confirmed") != NULL)
				assert_null(strstr(line, PREFIX));   /* never the key */
		fclose(f);
	}
	assert_int_equal(tf_ctl_made(out, &k), 0);
	if (wait_status(agents[0].c, "openai", k.key, "ok", 1000) < 0)
		fail_msg("unconfirmed key not in the store");
	print_message("write_replicas = 1 without a replica: exit 1 after %lld ms\n", ms);
	/* A real replica: WAIT is satisfied. */
	snprintf(master, sizeof(master), "%d", redis_port);
	replica_pid = tp_redis_start(dir, "replica", 0, extra, raddr, sizeof(raddr));
	assert_true(replica_pid > 0);
	{
		long long deadline = tp_now_ms() + tp_scaled_ms(10000);

		while (!replica_linked(redis_port)) {
			if (tp_now_ms() >= deadline)
				fail_msg("replica did not link to the primary");
			tp_nap_ms(50);
		}
	}
	/* A generous timeout: WAIT returns as soon as the replica acks. */
	assert_int_equal(write_conf(&w, "ctlw", "write_replicas = 1; write_timeout_ms = 5000;"), 0);
	t0 = tp_now_ms();
	assert_int_equal(tf_ctl_run(cur_ctl_conf, out, "key", "create", "--route", "openai", "--json", NULL), 0);
	print_message("write_replicas = 1 with a replica: exit 0 after %lld ms\n", tp_now_ms() - t0);
	assert_false(tp_log_contains(out, "replicas confirmed"));
	assert_int_equal(tf_ctl_made(out, &k), 0);
	if (wait_status(agents[0].c, "openai", k.key, "ok", 1000) < 0)
		fail_msg("confirmed key not seen");
	cur_ctl_conf = ctl.conf;
	tp_signal(replica_pid, SIGKILL);
	assert_int_equal(tp_wait_exit(replica_pid, 5000, NULL), 0);
	replica_pid = 0;
}

static void test_log_has_no_key(void **state)
{
	(void)state;
	NEED_REDIS();
	/* Keys are only in test memory; the agent logs must hold none of the
	 * prefix-looking secrets: check the prefix appears only in config lines. */
	for (int i = 0; i < 2; i++)
		assert_false(tp_log_contains(agents[i].t.log, "Bearer"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_startup_loads_the_set_once),
		cmocka_unit_test(test_periodic_resync_loads_only_when_the_generation_moved),
		cmocka_unit_test(test_create_revoke_rotate_reach_both_agents),
		cmocka_unit_test(test_lost_message_healed_by_resync),
		cmocka_unit_test(test_bad_records_skipped),
		cmocka_unit_test(test_redis_killed_then_restarted),
		cmocka_unit_test(test_password_file),
		cmocka_unit_test(test_acl_username),
		cmocka_unit_test(test_write_replicas),
		cmocka_unit_test(test_log_has_no_key),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
