/* SPDX-License-Identifier: Apache-2.0 */
/*
 * usage_agent: keyauthd's half of per-key usage (usage.h): counting in the
 * workers, merging and persisting on the main thread.
 *
 * HOW IT WORKS
 * Every published snapshot gets a usage layout (struct usage_layout), built
 * by the main thread before the workers see the snapshot, in one or two
 * parts (struct usage_part): one per array of entries of the snapshot's set
 * (a plain set has one; an overlay, its base's and its own, keystore.h). A
 * part is shared by the snapshots whose sets share the array, under one
 * configuration: after a change to a few keys only the overlay's small part
 * is new. In a part, for each key, one cell per route the key is bound to (that route's
 * index in the snapshot's configuration) plus one "other" cell (verdicts on
 * a route the key is not bound to: forbidden, or revoked/expired there), and
 * one array of those cells per worker. A worker counts a verdict that named
 * a key (ok, forbidden, expired, revoked) in its own array: a relaxed load
 * and store of a 32-bit count and of the last-used second, single writer,
 * no lock, no allocation, no shared cache line (arrays are 64-byte aligned).
 * The main thread keeps a reference to every snapshot it published; every
 * USAGE_PERIOD seconds (and at shutdown) it sums each cell over the workers,
 * takes the difference with the sum it read last time (modulo 2^32: a cell
 * cannot take 4 billion verdicts in one period) and the latest second, and
 * accumulates them per (key id, route name) in its table (a part shared by
 * several snapshots is read once per merge). A snapshot no
 * worker holds any more (its reference count fell to ours) is read one
 * last time and released: no count is lost across a swap.
 * Persistence: file backend, the whole table in usage_path() (atomic
 * replace, only when something changed); Redis, the deltas since the last
 * successful write, one EVAL per 1000 records (HINCRBY of the count, the
 * last use raised only), on the store's synchronous connection; a failed
 * write keeps the deltas for the next period.
 * LIMITS
 * The "other" cell keeps one route per key and worker: verdicts for one key
 * on two routes it is not bound to within one period are all credited to
 * the last of them (the key's total stays exact).
 */
#ifndef AGENT_USAGE_AGENT_H
#define AGENT_USAGE_AGENT_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "conf.h"
#include "keystore.h"
#include "verdict.h"

#define USAGE_PERIOD      2.0          /* seconds between merges and writes */
#define USAGE_OTHER_NONE  UINT16_MAX

struct snap;
struct store;
struct usage_agent;
struct redisContext;

struct usage_cell {
	_Atomic uint32_t n;              /* verdicts, wraps (readers take differences) */
	_Atomic uint32_t t;              /* Unix seconds of the last one; 0: none */
};

/* The counters of one array of entries: a plain set's, or one of an
 * overlay's two (its base's, its own; keystore.h). A part is shared by every
 * snapshot with the same entries and configuration (successive overlays on
 * one base share the base's part: a change lays out only the overlay's).
 * Immutable but for the cells, <other> and the main thread's fields. */
struct usage_part {
	_Atomic unsigned refs;           /* layouts holding it */
	const struct ks_entry *base;     /* the first entry */
	size_t nkeys;
	const struct ks_set *ks;         /* whose entries (identity only) */
	const struct conf *conf;         /* route indexes are this conf's */
	uint32_t *off;                   /* [nkeys + 1]: key k's cells; the last is "other" */
	/* Cells per key when every key has the same number of routes (then key
	 * k's cells start at k * per: no <off> read on the request path); 0
	 * when they differ. */
	uint32_t per;
	uint16_t *route;                 /* [ncells]: conf route index; USAGE_OTHER_NONE */
	size_t ncells;
	size_t stride;                   /* cells per worker array (multiple of 8) */
	unsigned nworkers;
	struct usage_cell *cells;        /* [nworkers * stride] */
	_Atomic uint16_t *other;         /* [nworkers * nkeys]: route of the last "other" */
	/* main thread only */
	uint32_t *seen;                  /* [ncells]: the sum read last time */
	uint32_t *seen_t;                /* [ncells]: the latest second read last time */
	uint64_t epoch;                  /* the collection that read it last */
};

/* One snapshot's counters: [0] its plain set's, or its overlay's base's;
 * [1] its overlay's own entries' (NULL for a plain set). */
struct usage_layout {
	struct usage_part *part[2];
};

/*
 * Counts verdict <v> given at <now> by worker <wid> against snapshot layout
 * <ul> (NULL: not counted). The request path: no lock, no allocation.
 */
static inline void
usage_count_verdict(struct usage_layout *ul, unsigned wid, const struct conf *c,
                    const struct verdict *v, int64_t now)
{
	struct usage_part *pt;
	struct usage_cell *cell;
	size_t k = 0;
	uint32_t i, end;
	uint16_t r;
	int p;

	if (ul == NULL || v->entry == NULL || v->route == NULL)
		return;
	/* The entry's array: unsigned differences, so an entry of the other
	 * array (below or above) is out of range. */
	for (p = 0; p < 2; p++) {
		pt = ul->part[p];
		if (pt != NULL && (k = (size_t)((uintptr_t)v->entry - (uintptr_t)pt->base) /
		                   sizeof(*v->entry)) < pt->nkeys && v->entry == pt->base + k)
			break;
	}
	if (p == 2 || wid >= pt->nworkers)
		return;
	r = (uint16_t)(v->route - c->routes);
	if (pt->per != 0) {
		i = (uint32_t)k * pt->per;
		end = i + pt->per - 1;
	} else {
		i = pt->off[k];
		end = pt->off[k + 1] - 1;
	}
	/* ok with a one-route key: that route (verdict_eval checked it). */
	if (!(pt->per == 2 && v->status == VERDICT_OK))
		for (; i < end && pt->route[i] != r; i++)
			;
	if (i == end)
		atomic_store_explicit(&pt->other[(size_t)wid * pt->nkeys + k], r,
		                      memory_order_relaxed);
	cell = &pt->cells[(size_t)wid * pt->stride + i];
	atomic_store_explicit(&cell->n, atomic_load_explicit(&cell->n, memory_order_relaxed) + 1,
	                      memory_order_relaxed);
	atomic_store_explicit(&cell->t, (uint32_t)now, memory_order_relaxed);
}

void usage_layout_free(struct usage_layout *ul);

/* Main thread. <store>: the agent's store (for Redis writes); <c>: the
 * first configuration (where the usage lives). Loads what was recorded
 * before (a read error is logged and usage starts from zero). */
struct usage_agent *usage_agent_new(const struct conf *c, struct store *store,
                                    unsigned nworkers);
/* Builds <s>'s layout (s->usage) and keeps a reference to <s> until its
 * counters have been read for the last time. On allocation failure <s>
 * counts nothing (logged). */
void usage_agent_track(struct usage_agent *ua, struct snap *s);
/* Reads every tracked snapshot's counters into the table and releases the
 * snapshots no worker holds. */
void usage_agent_collect(struct usage_agent *ua);
/* collect, then writes what changed (file or Redis). 0, or -1 (logged). */
int usage_agent_flush(struct usage_agent *ua, int64_t now);
/* The final collect and flush (workers joined), then frees everything. */
void usage_agent_free(struct usage_agent *ua);

struct usage_stats {
	uint64_t flushes;                /* writes that succeeded */
	uint64_t flush_failures;
	uint64_t keys_expiring_7d;       /* not revoked, expires within 7 days */
	uint64_t keys_unused_30d;        /* created > 30 days ago, not revoked nor
	                                  * expired, no use recorded in 30 days */
};
void usage_agent_stats(struct usage_agent *ua, int64_t now, struct usage_stats *out);

/* store_redis_agent.c: the store's synchronous connection, (re)opened if
 * needed; NULL with <err>. Main thread. */
struct redisContext *store_redis_agent_conn(struct store *st, char *err, size_t errlen);

#endif /* AGENT_USAGE_AGENT_H */
