/* SPDX-License-Identifier: Apache-2.0 */
/*
 * stats: sums the per-worker counters and renders them as JSON (control
 * socket) and Prometheus text (metrics endpoint). Main thread in keyauthd;
 * the functions keep no state and may run on any thread.
 */
#include <stdatomic.h>
#include <string.h>

#include "stats.h"

void
stats_sum_workers(const struct worker *ws, unsigned n, const void *routes_of,
                  unsigned nroutes, struct stats_sum *out)
{
	unsigned i, r;
	int s;

	memset(out, 0, sizeof(*out));
	if (nroutes > CONF_MAX_ROUTES)
		nroutes = CONF_MAX_ROUTES;
	for (i = 0; i < n; i++) {
		const struct worker *w = &ws[i];
		bool same = atomic_load_explicit(&w->st.routes_of, memory_order_acquire) == routes_of;

		out->conn_total += STAT_GET(w, conn_total);
		out->conn_refused += STAT_GET(w, conn_refused);
		out->conn_refused_peer += STAT_GET(w, conn_refused_peer);
		out->hello_timeouts += STAT_GET(w, hello_timeouts);
		out->accept_errors += STAT_GET(w, accept_errors);
		out->frames_in += STAT_GET(w, frames_in);
		out->frames_out += STAT_GET(w, frames_out);
		out->handshakes += STAT_GET(w, handshakes);
		out->healthchecks += STAT_GET(w, healthchecks);
		out->tls_handshakes += STAT_GET(w, tls_handshakes);
		out->tls_handshake_failures += STAT_GET(w, tls_handshake_failures);
		for (s = 0; s < STATS_PROTO_ERRORS; s++)
			out->proto_errors[s] += STAT_GET(w, proto_errors[s]);
		for (s = 0; s < VERDICT_ENTRIES; s++)
			out->verdicts[s] += STAT_GET(w, verdicts[s]);
		for (s = 0; s <= WORKER_LAT_BUCKETS; s++)
			out->lat_bucket[s] += STAT_GET(w, lat_bucket[s]);
		out->lat_sum_ns += STAT_GET(w, lat_sum_ns);
		if (!same)
			continue;
		for (r = 0; r < nroutes; r++)
			for (s = 0; s < VERDICT_ENTRIES; s++)
				out->route_verdicts[r][s] += STAT_GET(w, route_verdicts[r][s]);
		for (s = 0; s < VERDICT_ENTRIES; s++)
			out->route_verdicts[CONF_MAX_ROUTES][s] +=
			    STAT_GET(w, route_verdicts[CONF_MAX_ROUTES][s]);
	}
}

static unsigned long long
ull(uint64_t v)
{
	return (unsigned long long)v;
}

static uint64_t
lat_count(const struct stats_sum *s)
{
	uint64_t n = 0;
	int b;

	for (b = 0; b <= WORKER_LAT_BUCKETS; b++)
		n += s->lat_bucket[b];
	return n;
}

/* ---- JSON ---------------------------------------------------------------------- */

static void
json_str(FILE *f, const char *s)
{
	fputc('"', f);
	for (; *s != '\0'; s++) {
		unsigned char ch = (unsigned char)*s;

		if (ch == '"' || ch == '\\')
			fprintf(f, "\\%c", ch);
		else if (ch < 0x20 || ch >= 0x7f)
			fprintf(f, "\\u%04x", ch);
		else
			fputc(ch, f);
	}
	fputc('"', f);
}

static void
json_verdicts(FILE *f, const uint64_t *v)
{
	int s;

	fputc('{', f);
	for (s = 0; s < VERDICT_ENTRIES; s++)
		fprintf(f, "%s\"%s\":%llu", s ? "," : "", verdict_status_str((enum verdict_status)s),
		    ull(v[s]));
	fputc('}', f);
}

void
stats_render_json(const struct stats_view *v, FILE *f)
{
	const struct stats_sum *sm = v->sum;
	const struct conf *c = v->conf;
	uint64_t cum = 0, n = lat_count(sm);
	unsigned i, r;
	int s;

	fprintf(f, "{\"version\":\"%s\",\"pid\":%ld,\"uptime_s\":%.0f,\"workers\":%u,",
	    v->version, v->pid, v->now - v->started, v->workers);
	/* "refused" counts both reasons, as it did before per-peer limits. */
	fprintf(f, "\"connections\":{\"current\":%u,\"total\":%llu,\"refused\":%llu,"
	    "\"refused_max_connections\":%llu,\"refused_per_peer\":%llu,"
	    "\"hello_timeouts\":%llu,\"accept_errors\":%llu},", v->conn_current,
	    ull(sm->conn_total), ull(sm->conn_refused + sm->conn_refused_peer),
	    ull(sm->conn_refused), ull(sm->conn_refused_peer), ull(sm->hello_timeouts),
	    ull(sm->accept_errors));
	fprintf(f, "\"frames\":{\"in\":%llu,\"out\":%llu},\"handshakes\":%llu,"
	    "\"healthchecks\":%llu,\"tls\":{\"handshakes\":%llu,\"handshake_failures\":%llu},"
	    "\"protocol_errors\":{", ull(sm->frames_in),
	    ull(sm->frames_out), ull(sm->handshakes), ull(sm->healthchecks),
	    ull(sm->tls_handshakes), ull(sm->tls_handshake_failures));
	for (s = 1, i = 0; s < STATS_PROTO_ERRORS; s++)
		if (sm->proto_errors[s] != 0)
			fprintf(f, "%s\"%d\":%llu", i++ ? "," : "", s, ull(sm->proto_errors[s]));
	if (sm->proto_errors[0] != 0)
		fprintf(f, "%s\"other\":%llu", i ? "," : "", ull(sm->proto_errors[0]));
	fprintf(f, "},\"verdicts\":");
	json_verdicts(f, sm->verdicts);
	fprintf(f, ",\"routes\":{");
	for (r = 0; r < c->nroutes; r++) {
		fprintf(f, "%s\"%s\":", r ? "," : "", c->routes[r].name);
		json_verdicts(f, sm->route_verdicts[r]);
	}
	fprintf(f, "%s\"(unknown)\":", c->nroutes ? "," : "");
	json_verdicts(f, sm->route_verdicts[CONF_MAX_ROUTES]);
	/* Cumulative, like the Prometheus buckets: "le_us":{"5":n} counts the
	 * verdicts answered within 5 us. */
	fprintf(f, "},\"verdict_latency\":{\"count\":%llu,\"avg_us\":%.1f,\"le_us\":{",
	    ull(n), n ? (double)sm->lat_sum_ns / (double)n / 1000.0 : 0.0);
	for (s = 0; s < WORKER_LAT_BUCKETS; s++) {
		cum += sm->lat_bucket[s];
		fprintf(f, "%s\"%g\":%llu", s ? "," : "", (double)worker_lat_bounds_ns[s] / 1000.0,
		    ull(cum));
	}
	fprintf(f, ",\"+Inf\":%llu}}", ull(n));
	fprintf(f, ",\"store\":{\"backend\":\"%s\",\"where\":", v->store_backend);
	json_str(f, v->store_where);
	fprintf(f, ",\"generation\":%llu,\"file_generation\":%llu,\"keys\":%zu,"
	    "\"loads_ok\":%llu,\"loads_rejected\":%llu,\"last_load_age_s\":%.0f,"
	    "\"last_load\":\"%s\"", ull(v->generation), ull(v->file_generation), v->keys,
	    ull(v->store_loads_ok), ull(v->store_loads_rejected), v->now - v->store_last_time,
	    v->store_last_ok ? "ok" : "rejected");
	/* The change feed's counters mean something only for a shared store
	 * (Redis); for the file they would be constants (connected, nothing
	 * lost, nothing skipped) or loads_ok again. "outages" is the older name
	 * of "disconnects", kept for scripts. */
	if (v->store_shared)
		fprintf(f, ",\"age_s\":%.0f,\"connected\":%s,\"disconnects\":%llu,"
		    "\"resyncs\":%llu,\"resyncs_skipped\":%llu,\"records_skipped\":%llu,"
		    "\"stale\":%s,\"outages\":%llu", v->store_status.age,
		    v->store_status.connected ? "true" : "false", ull(v->store_status.disconnects),
		    ull(v->store_status.resyncs), ull(v->store_status.resyncs_skipped),
		    ull(v->store_status.records_skipped), v->store_stale ? "true" : "false",
		    ull(v->store_status.disconnects));
	fputs("},", f);
	fprintf(f, "\"usage\":{\"flushes\":%llu,\"flush_failures\":%llu,"
	    "\"keys_expiring_7d\":%llu,\"keys_unused_30d\":%llu},", ull(v->usage_flushes),
	    ull(v->usage_flush_failures), ull(v->keys_expiring_7d), ull(v->keys_unused_30d));
	fprintf(f, "\"config\":{\"path\":");
	json_str(f, c->path);
	fprintf(f, ",\"routes\":%u,\"reloads_ok\":%llu,\"reloads_rejected\":%llu,"
	    "\"last_reload\":\"%s\"}}", c->nroutes, ull(v->reloads_ok),
	    ull(v->reloads_rejected),
	    v->config_last_time == 0 ? "none" : v->config_last_ok ? "ok" : "rejected");
}

/* ---- Prometheus text format 0.0.4 ------------------------------------------------ */

static void
prom_head(FILE *f, const char *name, const char *type, const char *help)
{
	fprintf(f, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void
prom_one(FILE *f, const char *name, const char *type, const char *help, uint64_t val)
{
	prom_head(f, name, type, help);
	fprintf(f, "%s %llu\n", name, ull(val));
}

/* Label values: route names are [A-Za-z0-9_-] (conf.c) and the rest are
 * ours, so none needs the \\ \" \n escapes of the format. */
static void
prom_route_verdicts(FILE *f, const char *route, const uint64_t *v)
{
	int s;

	for (s = 0; s < VERDICT_ENTRIES; s++)
		fprintf(f, "keyauth_verdicts_total{route=\"%s\",status=\"%s\"} %llu\n", route,
		    verdict_status_str((enum verdict_status)s), ull(v[s]));
}

static void prom_store_and_config(const struct stats_view *v, FILE *f);

void
stats_render_prom(const struct stats_view *v, FILE *f)
{
	const struct stats_sum *sm = v->sum;
	const struct conf *c = v->conf;
	uint64_t cum = 0;
	unsigned r;
	int s;

	prom_head(f, "keyauth_build_info", "gauge", "Version of the running keyauthd.");
	fprintf(f, "keyauth_build_info{version=\"%s\"} 1\n", v->version);
	prom_head(f, "keyauth_start_time_seconds", "gauge", "Start time, Unix seconds.");
	fprintf(f, "keyauth_start_time_seconds %.3f\n", v->started);
	prom_one(f, "keyauth_workers", "gauge", "Worker threads.", v->workers);

	prom_head(f, "keyauth_verdicts_total", "counter",
	    "Verdicts by route and status, since the configuration last changed.");
	for (r = 0; r < c->nroutes; r++)
		prom_route_verdicts(f, c->routes[r].name, sm->route_verdicts[r]);
	prom_route_verdicts(f, "(unknown)", sm->route_verdicts[CONF_MAX_ROUTES]);
	prom_head(f, "keyauth_verdicts_by_status_total", "counter",
	    "Verdicts by status, all routes, since start.");
	for (s = 0; s < VERDICT_ENTRIES; s++)
		fprintf(f, "keyauth_verdicts_by_status_total{status=\"%s\"} %llu\n",
		    verdict_status_str((enum verdict_status)s), ull(sm->verdicts[s]));

	prom_head(f, "keyauth_verdict_latency_seconds", "histogram",
	    "Time from reading a NOTIFY to queueing its ACK.");
	for (s = 0; s < WORKER_LAT_BUCKETS; s++) {
		cum += sm->lat_bucket[s];
		fprintf(f, "keyauth_verdict_latency_seconds_bucket{le=\"%g\"} %llu\n",
		    (double)worker_lat_bounds_ns[s] / 1e9, ull(cum));
	}
	cum += sm->lat_bucket[WORKER_LAT_BUCKETS];
	fprintf(f, "keyauth_verdict_latency_seconds_bucket{le=\"+Inf\"} %llu\n", ull(cum));
	fprintf(f, "keyauth_verdict_latency_seconds_sum %.9f\n", (double)sm->lat_sum_ns / 1e9);
	fprintf(f, "keyauth_verdict_latency_seconds_count %llu\n", ull(cum));

	prom_one(f, "keyauth_frames_received_total", "counter", "SPOP frames received.",
	    sm->frames_in);
	prom_one(f, "keyauth_frames_sent_total", "counter", "SPOP ACK frames sent.",
	    sm->frames_out);
	prom_one(f, "keyauth_connections", "gauge", "HAProxy connections open now.",
	    v->conn_current);
	prom_one(f, "keyauth_connections_total", "counter", "HAProxy connections accepted.",
	    sm->conn_total);
	prom_head(f, "keyauth_connections_refused_total", "counter",
	    "Connections closed at once, by reason: max_connections reached, or the "
	    "peer (a uid on unix sockets, an address on TCP) holding max_connections_per_peer.");
	fprintf(f, "keyauth_connections_refused_total{reason=\"max_connections\"} %llu\n",
	    ull(sm->conn_refused));
	fprintf(f, "keyauth_connections_refused_total{reason=\"per_peer\"} %llu\n",
	    ull(sm->conn_refused_peer));
	prom_one(f, "keyauth_hello_timeouts_total", "counter",
	    "Connections closed for not completing HELLO (or a TLS handshake) within hello_timeout.",
	    sm->hello_timeouts);
	prom_one(f, "keyauth_accept_errors_total", "counter",
	    "accept() failures (EMFILE and the like) that paused accepting.", sm->accept_errors);
	prom_head(f, "keyauth_protocol_errors_total", "counter",
	    "Connections closed for a protocol error, by SPOP status code.");
	for (s = 1; s < STATS_PROTO_ERRORS; s++)
		fprintf(f, "keyauth_protocol_errors_total{status=\"%d\"} %llu\n", s,
		    ull(sm->proto_errors[s]));
	fprintf(f, "keyauth_protocol_errors_total{status=\"other\"} %llu\n",
	    ull(sm->proto_errors[0]));
	prom_one(f, "keyauth_handshakes_total", "counter", "HELLO handshakes answered.",
	    sm->handshakes);
	prom_one(f, "keyauth_healthchecks_total", "counter",
	    "Health-check HELLOs answered (HAProxy option spop-check).", sm->healthchecks);
	prom_one(f, "keyauth_tls_handshakes_total", "counter",
	    "TLS handshakes completed on TLS listeners.", sm->tls_handshakes);
	prom_one(f, "keyauth_tls_handshake_failures_total", "counter",
	    "TLS handshakes refused or broken off (bad client certificate, garbage, "
	    "peer gone) before any SPOP byte.", sm->tls_handshake_failures);

	prom_store_and_config(v, f);
}

/* The key store and configuration part of stats_render_prom. */
static void
prom_store_and_config(const struct stats_view *v, FILE *f)
{
	prom_one(f, "keyauth_store_generation", "gauge",
	    "Key sets published to the workers since start.", v->generation);
	prom_one(f, "keyauth_store_file_generation", "gauge",
	    "Generation recorded in the key file by keyauthctl.", v->file_generation);
	prom_one(f, "keyauth_keys", "gauge", "Keys in the serving key set.", v->keys);
	prom_head(f, "keyauth_store_loads_total", "counter", "Key store loads by result.");
	fprintf(f, "keyauth_store_loads_total{result=\"ok\"} %llu\n", ull(v->store_loads_ok));
	fprintf(f, "keyauth_store_loads_total{result=\"rejected\"} %llu\n",
	    ull(v->store_loads_rejected));
	prom_head(f, "keyauth_store_last_load_timestamp_seconds", "gauge",
	    "Time of the last key store load attempt, Unix seconds.");
	fprintf(f, "keyauth_store_last_load_timestamp_seconds %.3f\n", v->store_last_time);
	prom_one(f, "keyauth_store_last_load_success", "gauge",
	    "1 if the last key store load succeeded, 0 if the previous set is still serving.",
	    v->store_last_ok);
	prom_head(f, "keyauth_store_age_seconds", "gauge",
	    "Seconds since the key set was last known current; 0 while it is (file: always; "
	    "redis: subscribed and the last load good).");
	fprintf(f, "keyauth_store_age_seconds %.3f\n", v->store_status.age);
	prom_one(f, "keyauth_store_connected", "gauge",
	    "1 while the store's change feed is up (redis subscription; file: always 1).",
	    v->store_status.connected);
	prom_one(f, "keyauth_store_disconnects_total", "counter",
	    "Times the store's change feed was lost (redis outages).",
	    v->store_status.disconnects);
	prom_one(f, "keyauth_store_resyncs_total", "counter",
	    "Full loads of the key set that succeeded.", v->store_status.resyncs);
	prom_one(f, "keyauth_store_resyncs_skipped_total", "counter",
	    "Periodic or start-up full loads skipped: the store generation had not moved.",
	    v->store_status.resyncs_skipped);
	prom_one(f, "keyauth_store_records_skipped_total", "counter",
	    "Bad records left out of loads (counted again at every load that meets them).",
	    v->store_status.records_skipped);
	prom_head(f, "keyauth_config_reloads_total", "counter", "Configuration reloads by result.");
	fprintf(f, "keyauth_config_reloads_total{result=\"ok\"} %llu\n", ull(v->reloads_ok));
	fprintf(f, "keyauth_config_reloads_total{result=\"rejected\"} %llu\n",
	    ull(v->reloads_rejected));
	prom_head(f, "keyauth_config_last_reload_timestamp_seconds", "gauge",
	    "Time of the last configuration reload, Unix seconds; 0: none since start.");
	fprintf(f, "keyauth_config_last_reload_timestamp_seconds %.3f\n", v->config_last_time);
	prom_one(f, "keyauth_config_last_reload_success", "gauge",
	    "1 if the last reload was applied (or none happened), 0 if it was rejected.",
	    v->config_last_time == 0 || v->config_last_ok);
	prom_one(f, "keyauth_routes", "gauge", "Routes in the running configuration.",
	    v->conf->nroutes);
	prom_one(f, "keyauth_keys_expiring_7d", "gauge",
	    "Keys neither revoked nor expired that expire within 7 days.", v->keys_expiring_7d);
	prom_one(f, "keyauth_keys_unused_30d", "gauge",
	    "Keys neither revoked nor expired, created over 30 days ago, with no use "
	    "recorded in the last 30 days.", v->keys_unused_30d);
	prom_head(f, "keyauth_usage_writes_total", "counter",
	    "Writes of the per-key usage (state file or Redis) by result.");
	fprintf(f, "keyauth_usage_writes_total{result=\"ok\"} %llu\n", ull(v->usage_flushes));
	fprintf(f, "keyauth_usage_writes_total{result=\"failed\"} %llu\n",
	    ull(v->usage_flush_failures));
	if (v->tls_not_after != 0) {
		prom_head(f, "keyauth_tls_cert_expiry_timestamp_seconds", "gauge",
		    "notAfter of the certificate the TLS listeners serve, Unix seconds "
		    "(alert on it minus time() < 14 days).");
		fprintf(f, "keyauth_tls_cert_expiry_timestamp_seconds %.0f\n", v->tls_not_after);
	}
}
