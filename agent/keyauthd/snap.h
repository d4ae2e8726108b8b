/* SPDX-License-Identifier: Apache-2.0 */
/*
 * snap: what a worker needs to answer a request — the configuration and the
 * key set — bundled in one immutable, reference-counted snapshot.
 *
 * HOW IT WORKS
 * The main thread builds a new snapshot (after SIGHUP or a store change) and
 * hands one reference to each worker through worker_publish(): an atomic
 * exchange into the worker's mailbox plus ev_async. The worker swaps its
 * private pointer at the start of its next loop iteration and drops its
 * reference to the old snapshot; whoever drops the last reference frees it.
 * WHY
 * The request path reads only the worker's private pointer: no lock, no
 * shared atomic, no cache line bouncing between workers. The only atomics
 * are touched once per swap per worker.
 * LIMITS
 * A worker busy in one long callback sees the new set one iteration later
 * (microseconds); a worker blocked in epoll wakes up on the ev_async.
 */
#ifndef AGENT_SNAP_H
#define AGENT_SNAP_H

#include <stdatomic.h>
#include <stdint.h>

struct conf;
struct ssl_ctx_st;
struct ks_set;
struct usage_layout;

/* The configuration, shared by successive snapshots until the next reload. */
struct conf_ref {
	atomic_uint refs;
	struct conf *conf;
	/* TLS listeners' server context built from conf->tls (NULL: none);
	 * freed with the last reference, while every SSL of a live connection
	 * holds its own OpenSSL reference: a reload never cuts a connection. */
	struct ssl_ctx_st *tls_ctx;
};

struct snap {
	atomic_uint refs;
	struct conf_ref *cref;
	struct ks_set *ks;
	uint64_t gen;            /* increases with every published snapshot */
	/* the workers' usage counters for this set (usage_agent.h); NULL:
	 * not counted. Set by the main thread before publication. */
	struct usage_layout *usage;
};

/* Takes ownership of <c>; one reference. */
struct conf_ref *conf_ref_new(struct conf *c);
struct conf_ref *conf_ref_get(struct conf_ref *r);
void conf_ref_put(struct conf_ref *r);

/* Takes a reference to <cref> and <ks>; the new snapshot has one reference. */
struct snap *snap_new(struct conf_ref *cref, struct ks_set *ks, uint64_t gen);
struct snap *snap_get(struct snap *s);
void snap_put(struct snap *s);

static inline const struct conf *
snap_conf(const struct snap *s)
{
	return s->cref->conf;
}

#endif /* AGENT_SNAP_H */
