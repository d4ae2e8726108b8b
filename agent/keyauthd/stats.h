/* SPDX-License-Identifier: Apache-2.0 */
/*
 * stats: the agent's counters, summed over the workers and rendered for
 * people and machines.
 *
 * Workers count on their own (worker.h, struct worker_stats); nothing is
 * shared on the request path. At read time the main thread sums them into a
 * plain struct stats_sum, adds what only it knows (store, reloads) in a
 * struct stats_view, and renders that one view twice: as the JSON of the
 * control socket's `stats` (keyauthctl stats) and as the Prometheus text of
 * GET /metrics. Both therefore always show the same numbers.
 */
#ifndef AGENT_STATS_H
#define AGENT_STATS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "conf.h"
#include "store.h"
#include "verdict.h"
#include "worker.h"

#define STATS_PROTO_ERRORS 14    /* [1..13]: SPOP status; [0]: any other */

struct stats_sum {
	uint64_t conn_total;
	uint64_t conn_refused;           /* max_connections reached */
	uint64_t conn_refused_peer;      /* max_connections_per_peer reached */
	uint64_t hello_timeouts;
	uint64_t accept_errors;
	uint64_t frames_in;
	uint64_t frames_out;
	uint64_t handshakes;
	uint64_t healthchecks;
	uint64_t tls_handshakes;
	uint64_t tls_handshake_failures;
	uint64_t proto_errors[STATS_PROTO_ERRORS];
	uint64_t verdicts[VERDICT_ENTRIES];
	/* Per route of the current configuration, [CONF_MAX_ROUTES]: route
	 * unknown; only workers already on that configuration count. */
	uint64_t route_verdicts[CONF_MAX_ROUTES + 1][VERDICT_ENTRIES];
	uint64_t lat_bucket[WORKER_LAT_BUCKETS + 1];   /* not cumulative */
	uint64_t lat_sum_ns;
};

/*
 * Sums the counters of <n> workers into <out> (overwritten). Route counts
 * come only from workers whose counters are for <routes_of> (the current
 * configuration's conf_ref) and only for its first <nroutes> routes. Any
 * thread; values written meanwhile may or may not be included.
 */
void stats_sum_workers(const struct worker *ws, unsigned n, const void *routes_of,
                       unsigned nroutes, struct stats_sum *out);

/* Everything the renderers show. Times are Unix times in seconds; a time of 0
 * means "never". Nothing here is owned: the caller keeps it alive while
 * rendering. */
struct stats_view {
	const char *version;
	long pid;
	double now;
	double started;
	unsigned workers;
	unsigned conn_current;
	const struct conf *conf;         /* routes, path */
	const struct stats_sum *sum;
	const char *store_backend;
	const char *store_where;
	uint64_t generation;             /* snapshots published (store or config change) */
	uint64_t file_generation;        /* generation written in the key file */
	size_t keys;
	uint64_t store_loads_ok;
	uint64_t store_loads_rejected;
	double store_last_time;
	bool store_last_ok;
	/* Every backend (the file: age 0, connected, resyncs = loads_ok). */
	struct store_status store_status;
	/* Shared (redis) store only: printed when store_shared. */
	bool store_shared;
	bool store_stale;                /* past max_staleness */
	uint64_t reloads_ok;
	uint64_t reloads_rejected;
	double config_last_time;
	bool config_last_ok;
	double tls_not_after;            /* agent certificate's notAfter; 0: no TLS listener */
	/* Per-key usage (usage_agent.h): its writes, and the key gauges
	 * computed from the serving set and the usage known to this agent. */
	uint64_t usage_flushes, usage_flush_failures;
	uint64_t keys_expiring_7d, keys_unused_30d;
};

/* One JSON object, no newline (the control socket's `stats` answer). */
void stats_render_json(const struct stats_view *v, FILE *f);

/* Prometheus text exposition format 0.0.4, every family with HELP and TYPE. */
void stats_render_prom(const struct stats_view *v, FILE *f);

#endif /* AGENT_STATS_H */
