/* SPDX-License-Identifier: Apache-2.0 */
/*
 * test_usage: per-key usage (usage.h) counted by keyauthd.
 *
 * File backend: parallel load over two workers gives counts equal to the
 * requests sent, per (key, route of the request), forbidden verdicts on a
 * route the key is not bound to included; the key store file is never
 * written by the agent (bytes and mtime unchanged); SIGTERM writes the last
 * counts and a restarted agent continues from them; the Prometheus gauges
 * keyauth_keys_expiring_7d and keyauth_keys_unused_30d.
 * Redis: two agents of two workers each under parallel load; the usage
 * hash holds the sum of both, and keeps it across agent restarts.
 * Every wait for a flush is a bounded poll on the condition. Keys never
 * reach the output.
 */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
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
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <hiredis/hiredis.h>

#include "conf.h"
#include "fixture.h"
#include "keyfmt.h"
#include "keystore.h"
#include "proc.h"
#include "spop_client.h"
#include "spop_expect.h"
#include "store_redis.h"
#include "usage.h"

#define ROUTES "  { name = \"openai\"; type = \"provider\"; context = \"/openai\"; },\n" \
               "  { name = \"mistral\"; type = \"provider\"; context = \"/mistral\"; }"
#define NTHREADS 4

/* ---- load -------------------------------------------------------------------------- */

struct load {
	const char *addr;
	const char *route;
	const char *key;
	int n;
	const char *want;           /* status expected of every answer */
	int failed;
};

static void *load_run(void *arg)
{
	struct load *l = arg;
	struct spc_conn *c = spc_open(l->addr, io_ms());
	struct spc_ack ack;

	if (c == NULL || !spc_handshake(c, io_ms())) {
		l->failed = l->n;
		if (c != NULL)
			spc_close(c);
		return NULL;
	}
	for (int i = 0; i < l->n; i++)
		if (spc_query(c, l->route, l->key, &ack, io_ms()) != 0 || strcmp(ack.status, l->want) != 0)
			l->failed++;
	spc_close(c);
	return NULL;
}

/* <nthreads> connections to <addr> at once, each sending <n> queries. */
static void parallel(const char *addr, const char *route, const char *key, int nthreads, int n,
                     const char *want)
{
	pthread_t t[NTHREADS];
	struct load l[NTHREADS];

	assert_true(nthreads <= NTHREADS);
	for (int i = 0; i < nthreads; i++) {
		l[i] = (struct load){ addr, route, key, n, want, 0 };
		assert_int_equal(pthread_create(&t[i], NULL, load_run, &l[i]), 0);
	}
	for (int i = 0; i < nthreads; i++) {
		pthread_join(t[i], NULL);
		if (l[i].failed)
			fail_msg("%d of %d queries on %s failed or were not %s", l[i].failed, n, route, want);
	}
}

/* ---- reading the usage --------------------------------------------------------------- */

/* The usage of (<id>, <route>) (route NULL: all routes) as keyauthctl reads it
 * for the config <conf>. */
static uint64_t usage_of(const char *conf, const char *id, const char *route, int64_t *last)
{
	char err[1024];
	struct conf *c = conf_load(conf, err, sizeof(err));
	struct usage_set *u;
	uint64_t n = 0;

	if (c == NULL)
		fail_msg("conf: %s", err);
	u = usage_read(c, err, sizeof(err));
	conf_free(c);
	if (u == NULL)
		fail_msg("usage_read: %s", err);
	*last = 0;
	if (route == NULL) {
		usage_key(u, id, &n, last);
	} else {
		for (size_t i = 0; i < usage_count(u); i++) {
			const struct usage_rec *r = usage_at(u, i);

			if (strcmp(r->id, id) == 0 && strcmp(r->route, route) == 0) {
				n = r->requests;
				*last = r->last_used;
			}
		}
	}
	usage_free(u);
	return n;
}

/* Polls until (<id>, <route>) has <want> requests; fails after <ms>. */
static void wait_usage(const char *conf, const char *id, const char *route, uint64_t want, int ms,
                       int64_t *last)
{
	long long t0 = tp_now_ms(), deadline = t0 + tp_scaled_ms(ms);
	uint64_t n;

	while ((n = usage_of(conf, id, route, last)) != want) {
		if (tp_now_ms() >= deadline)
			fail_msg("usage of %s on %s: %llu, want %llu (after %d ms)", id,
			         route ? route : "*", (unsigned long long)n, (unsigned long long)want, ms);
		tp_nap_ms(50);
	}
	print_message("usage of %s on %s reached %llu after %lld ms\n", id, route ? route : "*",
	              (unsigned long long)want, tp_now_ms() - t0);
}

static char *slurp(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	char *b;

	assert_non_null(f);
	b = malloc(1 << 20);
	assert_non_null(b);
	*len = fread(b, 1, 1 << 20, f);
	fclose(f);
	return b;
}

/* ---- file backend ---------------------------------------------------------------------- */

static struct tf_agent A;
static struct tf_key K;

static void test_file_parallel_exact_store_untouched_restart(void **state)
{
	struct tf_opts o = { .workers = 2, .key_prefix = "ka_", .routes = ROUTES };
	struct stat st0, st1;
	char *b0, *b1;
	size_t l0, l1;
	int64_t last, t0 = (int64_t)time(NULL);
	char upath[TF_PATH + 8];

	(void)state;
	assert_int_equal(tf_agent_up_key(&A, "usage", &o, &K, 1), 0);
	assert_int_equal(stat(A.store, &st0), 0);
	b0 = slurp(A.store, &l0);

	parallel(A.uaddr, "openai", K.key, NTHREADS, 250, "ok");
	parallel(A.uaddr, "mistral", K.key, 2, 10, "forbidden");
	wait_usage(A.conf, K.e.id, "openai", NTHREADS * 250, 10000, &last);
	assert_true(last >= t0 && last <= (int64_t)time(NULL));
	wait_usage(A.conf, K.e.id, "mistral", 20, 10000, &last);
	snprintf(upath, sizeof(upath), "%s.usage", A.store);
	{
		struct stat us;

		assert_int_equal(stat(upath, &us), 0);
		assert_int_equal(us.st_mode & 0777, 0600);
	}

	/* SIGTERM writes what the last period counted; a restart continues. */
	parallel(A.uaddr, "openai", K.key, 1, 7, "ok");
	assert_int_equal(tf_agent_stop(&A), 0);
	assert_int_equal(usage_of(A.conf, K.e.id, "openai", &last), NTHREADS * 250 + 7);
	assert_int_equal(tf_agent_start(&A), 0);
	parallel(A.uaddr, "openai", K.key, 2, 5, "ok");
	wait_usage(A.conf, K.e.id, "openai", NTHREADS * 250 + 7 + 10, 10000, &last);
	wait_usage(A.conf, K.e.id, NULL, NTHREADS * 250 + 7 + 10 + 20, 10000, &last);

	/* The key store: the same bytes, the same mtime. */
	assert_int_equal(stat(A.store, &st1), 0);
	b1 = slurp(A.store, &l1);
	assert_int_equal(l0, l1);
	assert_memory_equal(b0, b1, l0);
	assert_true(st0.st_mtim.tv_sec == st1.st_mtim.tv_sec &&
	            st0.st_mtim.tv_nsec == st1.st_mtim.tv_nsec);
	assert_true(st0.st_ino == st1.st_ino);
	free(b0);
	free(b1);
	assert_int_equal(tf_agent_down(&A), 0);
}

/* ---- Prometheus ------------------------------------------------------------------------- */

static double metric(const char *maddr, const char *name)
{
	static const char req[] = "GET /metrics HTTP/1.0\r\n\r\n";
	size_t len = 0, cap = 1 << 18, nl = strlen(name);
	char *buf = malloc(cap), *p;
	long long deadline = tp_now_ms() + io_ms();
	int fd = spc_connect_fd(maddr, io_ms());
	double v = -1;

	assert_true(fd >= 0);
	assert_non_null(buf);
	assert_int_equal(send(fd, req, sizeof(req) - 1, MSG_NOSIGNAL), (ssize_t)sizeof(req) - 1);
	while (len < cap - 1 && tp_now_ms() < deadline) {
		struct pollfd pf = { .fd = fd, .events = POLLIN };
		ssize_t n;

		if (poll(&pf, 1, 50) != 1)
			continue;
		if ((n = recv(fd, buf + len, cap - 1 - len, 0)) <= 0)
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

static void test_prometheus_gauges(void **state)
{
	static struct tf_key k[5];
	struct tf_key *const keys[] = { &k[0], &k[1], &k[2], &k[3], &k[4] };
	struct tf_opts o = { .workers = 2, .key_prefix = "ka_", .metrics = true, .routes = ROUTES,
	                     .keys = keys, .nkeys = 5, .generation = 1 };
	int64_t now = (int64_t)time(NULL), last;
	long long deadline;

	(void)state;
	for (int i = 0; i < 5; i++) {
		char label[24];

		snprintf(label, sizeof(label), "gauge%d", i);
		assert_int_equal(tf_key_make(&k[i], "openai", "", label), 0);
	}
	k[0].e.expires = now + 3 * 86400;            /* expiring within 7 days */
	k[1].e.expires = now + 30 * 86400;           /* not within 7 days */
	k[2].e.created = now - 40 * 86400;           /* old and unused */
	k[3].e.created = now - 40 * 86400;           /* old, used below */
	k[4].e.created = now - 40 * 86400;           /* old, revoked: not counted */
	k[4].e.revoked = now - 60;
	assert_int_equal(tf_agent_up(&A, "usage-prom", &o), 0);

	assert_int_equal(metric(A.maddr, "keyauth_keys_expiring_7d"), 1);
	assert_int_equal(metric(A.maddr, "keyauth_keys_unused_30d"), 2);
	parallel(A.uaddr, "openai", k[3].key, 1, 3, "ok");
	parallel(A.uaddr, "openai", k[4].key, 1, 2, "revoked");
	wait_usage(A.conf, k[3].e.id, "openai", 3, 10000, &last);
	wait_usage(A.conf, k[4].e.id, "openai", 2, 10000, &last);
	deadline = tp_now_ms() + tp_scaled_ms(10000);
	while (metric(A.maddr, "keyauth_keys_unused_30d") != 1 && tp_now_ms() < deadline)
		tp_nap_ms(50);
	assert_int_equal(metric(A.maddr, "keyauth_keys_unused_30d"), 1);
	assert_true(metric(A.maddr, "keyauth_usage_writes_total{result=\"ok\"}") >= 1);
	assert_int_equal(metric(A.maddr, "keyauth_usage_writes_total{result=\"failed\"}"), 0);
	assert_int_equal(tf_agent_down(&A), 0);
}

/* ---- Redis ----------------------------------------------------------------------------- */

static void test_redis_two_agents_sum_and_restart(void **state)
{
	char dir[TP_PATH_MAX], addr[64], store[512], err[512];
	struct tf_agent ag[2], paper;
	struct tf_key k;
	struct conf *c;
	redisContext *rc;
	pid_t rpid;
	int64_t last, t0 = (int64_t)time(NULL);

	(void)state;
	if (access(tp_redis_server_path(), X_OK) != 0) {
		print_message("redis-server not installed: skipped\n");
		skip();
	}
	assert_int_equal(tp_mkdtemp("keyauth-usage-redis", dir, sizeof(dir)), 0);
	rpid = tp_redis_start(dir, "redis", 0, NULL, addr, sizeof(addr));
	assert_true(rpid > 0);
	snprintf(store, sizeof(store), "backend = \"redis\"; address = \"%s\"; namespace = \"kausage\";",
	         addr);

	/* The key, written through the store's own primitive. */
	{
		struct tf_opts po = { .key_prefix = "ka_", .store = store, .routes = ROUTES,
		                      .listen_addr = "127.0.0.1:1" };

		assert_int_equal(tf_agent_named(&paper, dir, "paper"), 0);
		assert_int_equal(tf_agent_conf(&paper, &po), 0);
	}
	assert_int_equal(tf_key_make(&k, "openai", "", "redis-key"), 0);
	c = conf_load(paper.conf, err, sizeof(err));
	assert_non_null(c);
	rc = store_redis_connect(c->store_redis, NULL, err, sizeof(err));
	assert_non_null(rc);
	assert_int_equal(store_redis_commit(rc, "kausage", NULL, &k.e, 1, err, sizeof(err)), 0);
	store_redis_disconnect(rc);
	conf_free(c);

	for (int i = 0; i < 2; i++) {
		struct tf_opts o = { .workers = 2, .key_prefix = "ka_", .store = store, .routes = ROUTES };
		char name[24];

		snprintf(name, sizeof(name), "agent%d", i);
		assert_int_equal(tf_agent_named(&ag[i], dir, name), 0);
		assert_int_equal(tf_agent_conf(&ag[i], &o), 0);
		assert_int_equal(tf_agent_start(&ag[i]), 0);
	}
	/* Both agents at once, two connections each. */
	{
		pthread_t t[2];
		struct load l[2] = { { ag[0].uaddr, "openai", k.key, 300, "ok", 0 },
		                     { ag[1].uaddr, "openai", k.key, 200, "ok", 0 } };
		struct load l2[2] = { { ag[0].uaddr, "openai", k.key, 300, "ok", 0 },
		                      { ag[1].uaddr, "openai", k.key, 200, "ok", 0 } };
		pthread_t t2[2];

		for (int i = 0; i < 2; i++) {
			assert_int_equal(pthread_create(&t[i], NULL, load_run, &l[i]), 0);
			assert_int_equal(pthread_create(&t2[i], NULL, load_run, &l2[i]), 0);
		}
		for (int i = 0; i < 2; i++) {
			pthread_join(t[i], NULL);
			pthread_join(t2[i], NULL);
			assert_int_equal(l[i].failed + l2[i].failed, 0);
		}
	}
	wait_usage(paper.conf, k.e.id, "openai", 1000, 10000, &last);
	assert_true(last >= t0 && last <= (int64_t)time(NULL));

	/* Agents stopped and started again: the hash keeps the counts. */
	for (int i = 0; i < 2; i++)
		assert_int_equal(tf_agent_stop(&ag[i]), 0);
	assert_int_equal(usage_of(paper.conf, k.e.id, "openai", &last), 1000);
	assert_int_equal(tf_agent_start(&ag[0]), 0);
	parallel(ag[0].uaddr, "openai", k.key, 2, 5, "ok");
	wait_usage(paper.conf, k.e.id, "openai", 1010, 10000, &last);
	assert_int_equal(tf_agent_stop(&ag[0]), 0);
	for (int i = 0; i < 2; i++)
		assert_int_equal(tf_log_has_no_key(ag[i].log), 0);

	tp_signal(rpid, SIGKILL);
	tp_wait_exit(rpid, 5000, NULL);
	if (getenv("KEYAUTH_TEST_KEEP"))
		print_message("kept %s\n", dir);
	else
		tp_rmtree(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_file_parallel_exact_store_untouched_restart),
		cmocka_unit_test(test_prometheus_gauges),
		cmocka_unit_test(test_redis_two_agents_sum_and_restart),
	};

	signal(SIGPIPE, SIG_IGN);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
