/* SPDX-License-Identifier: Apache-2.0 */
/*
 * bench_usage: what per-key usage counting adds to a verdict, in process.
 *
 * A set of BENCH_USAGE_KEYS keys (default 100,000) on route openai; the
 * same pseudo-random sequence of valid keys is evaluated twice per round:
 * verdict_eval alone, then verdict_eval + usage_count_verdict on one
 * worker's counters; rounds alternate, best of 5 each. Output: "name ns/op"
 * lines and the overhead in percent. Keys are never printed.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "conf.h"
#include "fixture.h"
#include "keystore.h"
#include "proc.h"
#include "snap.h"
#include "usage_agent.h"
#include "verdict.h"

static double now_s(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

int main(void)
{
	size_t n = getenv("BENCH_USAGE_KEYS") ? strtoul(getenv("BENCH_USAGE_KEYS"), NULL, 10) : 100000;
	size_t iters = 4000000;
	struct tf_key *k = calloc(n, sizeof(*k));
	struct ks_entry *e = calloc(n, sizeof(*e));
	uint32_t *seq = malloc(iters * sizeof(*seq));
	char dir[TP_PATH_MAX], path[TP_PATH_MAX + 32], err[1024];
	struct conf *c;
	struct ks_set *ks;
	struct snap *s;
	struct usage_agent *ua;
	double best[2] = { 1e9, 1e9 };
	volatile unsigned sink = 0;
	FILE *f;

	if (k == NULL || e == NULL || seq == NULL || tp_mkdtemp("kabench-usage", dir, sizeof(dir)) == -1)
		return 1;
	snprintf(path, sizeof(path), "%s/keyauth.conf", dir);
	f = fopen(path, "w");
	fprintf(f, "key_prefix = \"ka_\";\nstore = { path = \"%s/keys.db\"; };\n"
	        "routes = ( { name = \"openai\"; type = \"provider\"; context = \"/openai\"; } );\n", dir);
	fclose(f);
	if ((c = conf_load(path, err, sizeof(err))) == NULL) {
		fprintf(stderr, "%s\n", err);
		return 1;
	}
	for (size_t i = 0; i < n; i++) {
		if (tf_key_make(&k[i], "openai", "", NULL) == -1)
			return 1;
		e[i] = k[i].e;
	}
	if ((ks = ks_set_build(e, n, err, sizeof(err))) == NULL) {
		fprintf(stderr, "%s\n", err);
		return 1;
	}
	s = snap_new(conf_ref_new(c), ks, 1);
	ua = usage_agent_new(c, NULL, 1);
	usage_agent_track(ua, s);
	srand(1);
	for (size_t i = 0; i < iters; i++)
		seq[i] = (uint32_t)((unsigned)rand() % n);
	for (int round = 0; round < 10; round++) {
		int with = round & 1;
		double t0 = now_s(), dt;

		for (size_t i = 0; i < iters; i++) {
			struct verdict v;
			const struct tf_key *kk = &k[seq[i]];

			verdict_eval(c, ks, "openai", 6, kk->key, strlen(kk->key), 1700000000, &v);
			if (with)
				usage_count_verdict(s->usage, 0, c, &v, 1700000000);
			sink += v.status;
		}
		dt = (now_s() - t0) / (double)iters * 1e9;
		if (dt < best[with])
			best[with] = dt;
	}
	printf("verdict keys=%zu %.1f ns/op\n", n, best[0]);
	printf("verdict+usage keys=%zu %.1f ns/op\n", n, best[1]);
	printf("usage overhead %.1f %%\n", (best[1] - best[0]) / best[0] * 100.0);
	(void)sink;
	snap_put(s);
	tp_rmtree(dir);
	return 0;
}
