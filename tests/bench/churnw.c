/* SPDX-License-Identifier: Apache-2.0 */
/*
 * churnw: key churn writer for tests/bench/churn.sh (issue 19). Creates and
 * revokes keys in a Redis store at a steady RATE of writes per second in
 * total, through the project's own store code, for SECONDS or until SIGTERM.
 *
 * Two modes:
 *
 *   default   one change per transaction, through the same calls
 *             store_redis.c makes for `keyauthctl key create|revoke`:
 *             store_redis_watch_gen (WATCH <ns>:generation) then
 *             store_redis_commit (MULTI, HSET of the record, SADD of the id,
 *             INCR <ns>:generation, PUBLISH <ns>:events <id>, EXEC) with
 *             <old> holding only the entry changed. What the agent receives
 *             (the records, the generation, the event naming the id) is what
 *             keyauthctl writes; what is left out is keyauthctl's full read
 *             of the set inside the transaction (store_redis_read: SSCAN +
 *             HGETALL of every record) and its audit entry (XADD).
 *   -x        the whole keyauthctl transaction: store_open(conf,
 *             &store_role_ctl), begin (connect, WATCH, read the whole set),
 *             a working copy of every entry with the change, commit, end, as
 *             ctl_keys_store.c does (minus the audit entry). Its cost grows
 *             with the store: usable at small key counts only (see the
 *             notes in tests/bench/notes.md).
 *
 * Writes alternate: an even write creates a key (route -r, owner "churn"),
 * an odd one revokes the oldest key this writer created that is still
 * live, once more than KEEP (10) are (else it creates). Keys of the filled
 * store are never touched, so verdicts for them must not change.
 *
 * On exit, one key=value line on stdout: writes, creates, revokes, retries
 * (the WATCHed generation moved), errors, the achieved rate, how far behind
 * the schedule it fell (behind_ms, the largest lag), commit latency
 * percentiles, and <ns>:generation. With -P FILE, the newest live key it
 * created goes to FILE (mode 0600), for a probe NOTIFY; keys are never
 * printed. Exit 0, 1 when any write failed, 2 on a usage error.
 *
 *   churnw -c CONF -w RATE [-t SECONDS] [-r ROUTE] [-P FILE] [-x]
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <hiredis/hiredis.h>

#include "conf.h"
#include "keyfmt.h"
#include "keystore.h"
#include "store.h"
#include "store_redis.h"

#define CW_KEEP 10

struct cw_key {
	struct ks_entry e;
	char key[KEY_GEN_MAX + 1];
	bool revoked;
};

static volatile sig_atomic_t stop;
static struct cw_key *made;
static size_t nmade, capmade, oldest_live;
static double *lat;
static size_t nlat, caplat;

static void on_signal(int sig)
{
	(void)sig;
	stop = 1;
}

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void sleep_until(uint64_t t)
{
	struct timespec ts = { (time_t)(t / 1000000000ull), (long)(t % 1000000000ull) };

	while (!stop && clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR)
		;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

static double pct(double p)
{
	size_t i;

	if (nlat == 0)
		return 0;
	i = (size_t)(p / 100.0 * (double)nlat + 0.999999);
	if (i > 0)
		i--;
	return lat[i < nlat ? i : nlat - 1];
}

static void lat_add(double us)
{
	if (nlat == caplat) {
		size_t n = caplat ? caplat * 2 : 4096;
		double *v = realloc(lat, n * sizeof(*v));

		if (v == NULL)
			return;
		lat = v;
		caplat = n;
	}
	lat[nlat++] = us;
}

/* A new key in made[] (not yet written). NULL on failure. */
static struct cw_key *key_new(const struct conf *c, const char *route)
{
	struct cw_key *k;
	int len;

	if (nmade == capmade) {
		size_t n = capmade ? capmade * 2 : 1024;
		struct cw_key *v = realloc(made, n * sizeof(*v));

		if (v == NULL)
			return NULL;
		made = v;
		capmade = n;
	}
	k = &made[nmade];
	memset(k, 0, sizeof(*k));
	len = keyfmt_generate(c->key_prefix, k->key, sizeof(k->key));
	if (len < 0 || keyfmt_new_id(k->e.id) == -1)
		return NULL;
	keyfmt_digest(k->key, (size_t)len, k->e.digest);
	k->e.route = route;
	k->e.owner = "churn";
	k->e.alias = "";
	k->e.tags = "";
	k->e.created = (int64_t)time(NULL);
	return k;
}

/* Default mode: one change (<next>, over <prev> or nothing) in one WATCH +
 * MULTI/EXEC on <rc>. 0, 1 (generation moved: retry), -1. */
static int write_direct(redisContext *rc, const char *ns, const struct ks_entry *prev,
                        const struct ks_entry *next, char *err, size_t errlen)
{
	struct ks_set *old = NULL;
	int r;

	if (store_redis_watch_gen(rc, ns, err, errlen) == -1)
		return -1;
	if (prev != NULL && (old = ks_set_build(prev, 1, err, errlen)) == NULL)
		return -1;
	r = store_redis_commit(rc, ns, old, next, 1, err, errlen);
	ks_set_unref(old);
	return r;
}

/* -x: keyauthctl's transaction. 0, 1 (retry), -1. */
static int write_tx(const struct conf *c, const struct ks_entry *next, char *err, size_t errlen)
{
	struct store *st = store_open(c, &store_role_ctl, err, errlen);
	struct ks_set *set = NULL;
	struct ks_entry *v = NULL;
	size_t n = 0;
	int locked = 0, r = -1;
	bool found = false;

	if (st == NULL)
		return -1;
	set = st->ops->begin(st, &locked, err, errlen);
	if (set == NULL)
		goto out;
	v = malloc((ks_count(set) + 1) * sizeof(*v));
	if (v == NULL)
		goto out;
	for (size_t i = 0; i < ks_count(set); i++) {
		v[n] = *ks_entry_at(set, i);
		if (strcmp(v[n].id, next->id) == 0) {
			v[n] = *next;
			found = true;
		}
		n++;
	}
	if (!found)
		v[n++] = *next;
	r = st->ops->commit(st, set, v, n, err, errlen);
	if (r == -1 && strstr(err, "another writer") != NULL)
		r = 1;
out:
	free(v);
	ks_set_unref(set);
	st->ops->end(st);
	store_free(st);
	return r;
}

static int write_probe(const char *path)
{
	int fd;
	FILE *f;

	for (size_t i = nmade; i > 0; i--) {
		if (made[i - 1].revoked)
			continue;
		fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
		if (fd == -1 || fchmod(fd, 0600) == -1 || (f = fdopen(fd, "w")) == NULL) {
			fprintf(stderr, "churnw: %s: %s\n", path, strerror(errno));
			return -1;
		}
		fprintf(f, "%s\n", made[i - 1].key);
		return fclose(f) == 0 ? 0 : -1;
	}
	return 0;
}

static uint64_t generation(redisContext *rc, const char *ns)
{
	redisReply *r = redisCommand(rc, "GET %s:generation", ns);
	uint64_t g = 0;

	if (r != NULL && r->type == REDIS_REPLY_STRING)
		g = strtoull(r->str, NULL, 10);
	if (r != NULL)
		freeReplyObject(r);
	return g;
}

int main(int argc, char **argv)
{
	const char *conf_path = NULL, *route = "openai", *probe = NULL;
	double rate = 0, seconds = 0;
	bool tx = false;
	char err[4096];
	struct conf *c;
	redisContext *rc;
	uint64_t t0, t_end, writes = 0, creates = 0, revokes = 0, retries = 0, errors = 0;
	uint64_t lag_max = 0, t_last;
	int ch;

	while ((ch = getopt(argc, argv, "c:w:t:r:P:x")) != -1) {
		char *end = NULL;

		switch (ch) {
		case 'c': conf_path = optarg; break;
		case 'w': rate = strtod(optarg, &end); break;
		case 't': seconds = strtod(optarg, &end); break;
		case 'r': route = optarg; break;
		case 'P': probe = optarg; break;
		case 'x': tx = true; break;
		default: goto usage;
		}
		if (end != NULL && *end != '\0')
			goto usage;
	}
	if (conf_path == NULL || !(rate > 0 && rate <= 100000) || seconds < 0 || optind != argc)
		goto usage;
	c = conf_load(conf_path, err, sizeof(err));
	if (c == NULL) {
		fprintf(stderr, "churnw: %s", err);
		return 2;
	}
	if (c->store_redis == NULL) {
		fprintf(stderr, "churnw: %s: not a redis store\n", conf_path);
		return 2;
	}
	rc = store_redis_connect(c->store_redis, NULL, err, sizeof(err));
	if (rc == NULL) {
		fprintf(stderr, "churnw: %s\n", err);
		return 1;
	}
	signal(SIGTERM, on_signal);
	signal(SIGINT, on_signal);

	t0 = now_ns();
	t_end = seconds > 0 ? t0 + (uint64_t)(seconds * 1e9) : UINT64_MAX;
	while (!stop) {
		uint64_t due = t0 + (uint64_t)((double)writes * 1e9 / rate), t;
		struct ks_entry next, *prev = NULL;
		struct cw_key *k;
		size_t live = nmade - oldest_live;
		bool revoke = (writes % 2) == 1 && live > CW_KEEP;
		int r;

		if (due >= t_end)
			break;
		sleep_until(due);
		if (stop)
			break;
		t = now_ns();
		if (t - due > lag_max)
			lag_max = t - due;
		if (revoke) {
			k = &made[oldest_live];
			prev = &k->e;
			next = k->e;
			next.revoked = (int64_t)time(NULL);
		} else {
			k = key_new(c, route);
			if (k == NULL) {
				fprintf(stderr, "churnw: cannot generate a key\n");
				errors++;
				break;
			}
			next = k->e;
		}
		for (int tries = 0;; tries++) {
			r = tx ? write_tx(c, &next, err, sizeof(err))
			       : write_direct(rc, c->store_redis->namespace, prev, &next, err,
			                      sizeof(err));
			if (r != 1 || tries == 8)
				break;
			retries++;
		}
		if (r != 0) {
			fprintf(stderr, "churnw: write failed: %s\n", r == 1 ? "retries exhausted" : err);
			errors++;
			if (!tx && rc->err) {
				store_redis_disconnect(rc);
				rc = store_redis_connect(c->store_redis, NULL, err, sizeof(err));
				if (rc == NULL) {
					fprintf(stderr, "churnw: %s\n", err);
					return 1;
				}
			}
		} else if (revoke) {
			k->revoked = true;
			k->e.revoked = next.revoked;
			explicit_bzero(k->key, sizeof(k->key));
			oldest_live++;
			revokes++;
		} else {
			nmade++;
			creates++;
		}
		writes++;
		lat_add((double)(now_ns() - t) / 1e3);
	}
	t_last = now_ns();
	qsort(lat, nlat, sizeof(*lat), cmp_double);
	{
		double secs = (double)(t_last - t0) / 1e9;

		printf("churnw mode=%s writes=%llu creates=%llu revokes=%llu retries=%llu errors=%llu "
		       "seconds=%.3f rate=%.1f target_rate=%.0f behind_ms=%.1f commit_p50_us=%.0f "
		       "commit_p99_us=%.0f commit_max_us=%.0f generation=%llu\n",
		       tx ? "tx" : "direct", (unsigned long long)writes, (unsigned long long)creates,
		       (unsigned long long)revokes, (unsigned long long)retries,
		       (unsigned long long)errors, secs, secs > 0 ? (double)writes / secs : 0.0,
		       rate, (double)lag_max / 1e6, pct(50), pct(99), nlat ? lat[nlat - 1] : 0.0,
		       (unsigned long long)generation(rc, c->store_redis->namespace));
	}
	if (probe != NULL && write_probe(probe) == -1)
		errors++;
	for (size_t i = 0; i < nmade; i++)
		explicit_bzero(made[i].key, sizeof(made[i].key));
	free(made);
	free(lat);
	store_redis_disconnect(rc);
	conf_free(c);
	return errors ? 1 : 0;
usage:
	fprintf(stderr, "usage: churnw -c CONF -w RATE [-t SECONDS] [-r ROUTE] [-P FILE] [-x]\n");
	return 2;
}
