/* SPDX-License-Identifier: Apache-2.0 */
/*
 * worker: one thread, one libev loop, the connections it accepted.
 *
 * Connections never move between workers. The main thread talks to a worker
 * only through its mailbox (a new snapshot, or stop) and ev_async.
 * Counters are per worker and plain integers: only the owning thread writes
 * them; readers summing them tolerate a stale value.
 */
#ifndef AGENT_WORKER_H
#define AGENT_WORKER_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#include <ev.h>

#include "conf.h"
#include "listener.h"
#include "verdict.h"

#define WORKER_MAX       64
#define WORKER_MAX_LST   32
#define WORKER_LAT_BUCKETS 12     /* bounds in worker_lat_bounds_ns */

struct conn;
struct snap;

/* Written only by the owning worker, read by the main thread for `stats`:
 * relaxed atomics, so an increment is a plain load and store (no lock
 * prefix, no shared cache line) and a reader never sees a torn value. */
typedef _Atomic uint64_t stat_t;

#define STAT_ADD(w, field, n) \
	atomic_store_explicit(&(w)->st.field, \
	    atomic_load_explicit(&(w)->st.field, memory_order_relaxed) + (n), memory_order_relaxed)
#define STAT_INC(w, field) STAT_ADD(w, field, 1)
#define STAT_GET(w, field) atomic_load_explicit(&(w)->st.field, memory_order_relaxed)

struct worker_stats {
	stat_t conn_total;           /* accepted and kept */
	stat_t conn_refused;         /* over max_connections: accepted and closed */
	stat_t conn_refused_peer;    /* over max_connections_per_peer: accepted and closed */
	stat_t hello_timeouts;       /* closed: no HELLO within hello_timeout of the accept */
	stat_t accept_errors;
	stat_t frames_in;
	stat_t frames_out;
	stat_t handshakes;
	stat_t healthchecks;
	stat_t tls_handshakes;       /* TLS handshakes completed */
	stat_t tls_handshake_failures; /* refused or broken before completion */
	stat_t proto_errors[14];     /* by SPOP status 1..13; [0]: any other status */
	stat_t verdicts[VERDICT_ENTRIES];
	/* Verdicts per route, indexed like the routes of <routes_of>;
	 * [CONF_MAX_ROUTES]: route unknown. Reset when the configuration
	 * (not only the key set) changes. */
	stat_t route_verdicts[CONF_MAX_ROUTES + 1][VERDICT_ENTRIES];
	_Atomic(const void *) routes_of;
	/* Verdict latency: from the read() that brought a NOTIFY to its ACK
	 * being queued, one observation per verdict, counted in the first
	 * bucket whose bound (worker_lat_bounds_ns) it does not exceed;
	 * [WORKER_LAT_BUCKETS]: above the last bound. Not cumulative: the
	 * reader accumulates them into Prometheus "le" buckets. */
	stat_t lat_bucket[WORKER_LAT_BUCKETS + 1];
	stat_t lat_sum_ns;
};

struct worker_lst {
	struct listener lsn;         /* in the worker's listener set */
	bool shared;                 /* fd shared by all workers (unix sockets) */
	bool tls;                    /* TLS listener: context from the snapshot's conf_ref */
	struct worker *w;
};

struct worker {
	int id;
	pthread_t thread;
	struct ev_loop *loop;
	ev_async wake;               /* mailbox has something */
	ev_timer drain;              /* shutdown deadline */
	ev_prepare idle_check;        /* ends the loop once stopped and empty */
	_Atomic(struct snap *) mailbox;  /* next snapshot, owned reference */
	atomic_bool stop;
	bool stopping;
	struct snap *snap;           /* current snapshot, owned reference */
	struct listener_set lset;    /* the listeners below, paused and resumed together */
	struct worker_lst lst[WORKER_MAX_LST];
	unsigned nlst;
	unsigned nconns_at_pause;    /* nconns when accepting paused: a close resumes it */
	struct conn *conns;          /* doubly linked list of live connections */
	unsigned nconns;
	/* log rate limit for deny lines */
	double deny_log_window;
	unsigned deny_logged;
	uint64_t deny_suppressed;
	unsigned lat_batch;          /* verdicts given since the current read (owner only) */
	struct worker_stats st;
};

/* Upper bounds of the latency buckets, in nanoseconds, ascending. */
extern const uint64_t worker_lat_bounds_ns[WORKER_LAT_BUCKETS];

/*
 * Counts the <lat_batch> verdicts given since a read at <t0> (CLOCK_MONOTONIC)
 * as answered now, and resets <lat_batch>. Owner thread only. One clock read
 * per read batch, and none when the batch held no NOTIFY: pipelined frames
 * share the cost, and frames answered together share the latency.
 */
static inline void
worker_lat_observe(struct worker *w, const struct timespec *t0)
{
	struct timespec t1;
	int64_t d;
	uint64_t ns;
	unsigned b;

	if (w->lat_batch == 0)
		return;
	clock_gettime(CLOCK_MONOTONIC, &t1);
	d = (int64_t)(t1.tv_sec - t0->tv_sec) * 1000000000 + (t1.tv_nsec - t0->tv_nsec);
	ns = d > 0 ? (uint64_t)d : 0;
	for (b = 0; b < WORKER_LAT_BUCKETS && ns > worker_lat_bounds_ns[b]; b++)
		;
	STAT_ADD(w, lat_bucket[b], w->lat_batch);
	STAT_ADD(w, lat_sum_ns, ns * w->lat_batch);
	w->lat_batch = 0;
}

/* Global connection count across workers (touched on accept and close only). */
extern atomic_uint worker_conn_count;

struct conn_peer;

/* Gives back the place <p> holds in the per-peer counts shared by every
 * worker (max_connections_per_peer), when its connection closes; a no-op
 * for CONN_PEER_NONE. Any worker thread: takes the table's mutex. */
void worker_peer_release(const struct conn_peer *p);

int worker_init(struct worker *w, int id, struct snap *s);
int worker_add_listener(struct worker *w, int fd, bool shared, bool tls);
int worker_start(struct worker *w);
/* Hands <s> (a new reference, consumed) to <w>; any thread. */
void worker_publish(struct worker *w, struct snap *s);
/* Asks <w> to stop: stop accepting, answer what is in flight, close. */
void worker_stop(struct worker *w);
void worker_join(struct worker *w);
void worker_destroy(struct worker *w);

#endif /* AGENT_WORKER_H */
