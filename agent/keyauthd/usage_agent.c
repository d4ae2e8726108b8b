/* SPDX-License-Identifier: Apache-2.0 */
/* usage_agent: per-key usage, counted by the workers, merged and persisted
 * by the main thread (see usage_agent.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <hiredis/hiredis.h>

#include "conf.h"
#include "keystore.h"
#include "log.h"
#include "snap.h"
#include "store.h"
#include "usage.h"
#include "usage_agent.h"

#define UA_BATCH     1000        /* records per Redis EVAL */
#define UA_TRACK_MAX 64          /* snapshots awaiting their last read */

/* One (key id, route) of the table. */
struct ua_rec {
	char id[KEY_ID_LEN + 1];         /* "" = empty slot */
	const char *route;               /* interned in ua->routes */
	uint64_t total;                  /* requests known: loaded + counted here */
	int64_t last;
	uint64_t pend;                   /* Redis: not written yet */
	int64_t pend_last;
};

struct usage_agent {
	bool shared;                     /* Redis */
	struct store *store;
	char *ns;                        /* Redis namespace */
	char *path;                      /* file backend */
	unsigned nworkers;
	struct snap *track[UA_TRACK_MAX];
	size_t ntrack;
	struct ua_rec *tab;
	size_t cap, n;                   /* power of two; used slots */
	char **routes;
	size_t nroutes;
	bool dirty;                      /* the file is behind the table */
	bool oom_logged;
	uint64_t flushes, failures;
	bool fail_logged;
	uint64_t epoch;                  /* collections so far (usage_part.epoch) */
};

static const char ua_script[] =
    "for i = 1, #ARGV, 3 do\n"
    "  local f = ARGV[i]\n"
    "  local id = string.match(f, '^([^:]+):')\n"
    "  if id and redis.call('SISMEMBER', KEYS[3], id) == 1 then\n"
    "    local d = tonumber(ARGV[i + 1])\n"
    "    if d > 0 then redis.call('HINCRBY', KEYS[1], f, d) end\n"
    "    local t = tonumber(ARGV[i + 2])\n"
    "    if t > 0 and t > tonumber(redis.call('HGET', KEYS[2], f) or '0') then\n"
    "      redis.call('HSET', KEYS[2], f, ARGV[i + 2])\n"
    "    end\n"
    "  else\n"
    "    redis.call('HDEL', KEYS[1], f)\n"
    "    redis.call('HDEL', KEYS[2], f)\n"
    "  end\n"
    "end\n"
    "return 1\n";

/* ---- layouts ------------------------------------------------------------------ */

static void
ua_part_put(struct usage_part *pt)
{
	if (pt == NULL || atomic_fetch_sub_explicit(&pt->refs, 1, memory_order_acq_rel) != 1)
		return;
	free(pt->off);
	free(pt->route);
	free(pt->cells);
	free((void *)pt->other);
	free(pt->seen);
	free(pt->seen_t);
	free(pt);
}

void
usage_layout_free(struct usage_layout *ul)
{
	if (ul == NULL)
		return;
	ua_part_put(ul->part[0]);
	ua_part_put(ul->part[1]);
	free(ul);
}

/* The conf index of the route <name>/<len>, USAGE_OTHER_NONE when absent. */
static uint16_t
ua_route_index(const struct conf *c, const char *name, size_t len)
{
	const struct route *r = conf_route_find(c, name, len);

	return r != NULL ? (uint16_t)(r - c->routes) : USAGE_OTHER_NONE;
}

/* The key's route list: "a,b,c" (ks_entry_routes). */
static const char *
ua_routes_of(const struct ks_entry *e)
{
	return e->routes != NULL && e->routes[0] != '\0' ? e->routes : e->route;
}

static size_t
ua_nroutes(const char *list)
{
	size_t n = 1;

	for (; *list; list++)
		n += *list == ',';
	return n;
}

/* The counters of the <nkeys> entries from <base> (an array of <ks>) under
 * configuration <c>, one reference. */
static struct usage_part *
ua_part_new(const struct conf *c, const struct ks_set *ks, const struct ks_entry *base,
            size_t nkeys, unsigned nworkers)
{
	struct usage_part *ul = calloc(1, sizeof(*ul));
	size_t ncells = 0, i, j;

	if (ul == NULL)
		return NULL;
	atomic_init(&ul->refs, 1);
	ul->nkeys = nkeys;
	ul->nworkers = nworkers;
	ul->base = base;
	ul->ks = ks;
	ul->conf = c;
	if ((ul->off = malloc((nkeys + 1) * sizeof(*ul->off))) == NULL)
		goto fail;
	for (i = 0; i < nkeys; i++) {
		ul->off[i] = (uint32_t)ncells;
		ncells += ua_nroutes(ua_routes_of(&base[i])) + 1;
		if (ncells > UINT32_MAX / 2)
			goto fail;
	}
	ul->off[nkeys] = (uint32_t)ncells;
	ul->per = nkeys > 0 ? ul->off[1] : 0;
	for (i = 1; i < nkeys && ul->per != 0; i++)
		if (ul->off[i + 1] - ul->off[i] != ul->per)
			ul->per = 0;
	ul->ncells = ncells;
	ul->stride = (ncells + 7) & ~(size_t)7;
	ul->route = malloc((ncells ? ncells : 1) * sizeof(*ul->route));
	ul->seen = calloc(ncells ? ncells : 1, sizeof(*ul->seen));
	ul->seen_t = calloc(ncells ? ncells : 1, sizeof(*ul->seen_t));
	ul->other = calloc(nkeys * nworkers + 1, sizeof(*ul->other));
	if (ul->route == NULL || ul->seen == NULL || ul->seen_t == NULL || ul->other == NULL)
		goto fail;
	if (ul->stride > 0) {
		ul->cells = aligned_alloc(64, ul->stride * nworkers * sizeof(*ul->cells));
		if (ul->cells == NULL)
			goto fail;
		memset(ul->cells, 0, ul->stride * nworkers * sizeof(*ul->cells));
	}
	for (i = 0; i < nkeys * nworkers; i++)
		atomic_init(&ul->other[i], USAGE_OTHER_NONE);
	for (i = 0; i < nkeys; i++) {
		const char *p = ua_routes_of(&base[i]);

		for (j = ul->off[i]; j < ul->off[i + 1] - 1; j++) {
			size_t len = strcspn(p, ",");

			ul->route[j] = ua_route_index(c, p, len);
			p += len + (p[len] == ',');
		}
		ul->route[j] = USAGE_OTHER_NONE;
	}
	return ul;
fail:
	ua_part_put(ul);
	return NULL;
}

/* The part for the entries of plain set <ks> under <c>: <prev>'s part [0]
 * (the last layout built) when it is the same, else a new one. */
static struct usage_part *
ua_part_of(const struct conf *c, const struct ks_set *ks, const struct usage_layout *prev,
           unsigned nworkers)
{
	struct usage_part *pt = prev != NULL ? prev->part[0] : NULL;

	if (pt != NULL && pt->ks == ks && pt->conf == c && pt->nkeys == ks_count(ks)) {
		atomic_fetch_add_explicit(&pt->refs, 1, memory_order_relaxed);
		return pt;
	}
	return ua_part_new(c, ks, ks_entry_at(ks, 0), ks_count(ks), nworkers);
}

/* <ks>'s layout under <c>: its plain set's part (shared with <prev> when it
 * is the same), and an overlay's own part. */
static struct usage_layout *
ua_layout_new(const struct conf *c, const struct ks_set *ks, const struct usage_layout *prev,
              unsigned nworkers)
{
	struct usage_layout *ul = calloc(1, sizeof(*ul));
	const struct ks_set *base = ks_set_base(ks);

	if (ul == NULL)
		return NULL;
	ul->part[0] = ua_part_of(c, base != NULL ? base : ks, prev, nworkers);
	if (ul->part[0] == NULL)
		goto fail;
	if (base != NULL) {
		size_t nb = ks_count(base), own = ks_span(ks) - nb;

		ul->part[1] = ua_part_new(c, ks, own > 0 ? ks_entry_at(ks, nb) : NULL, own, nworkers);
		if (ul->part[1] == NULL)
			goto fail;
	}
	return ul;
fail:
	usage_layout_free(ul);
	return NULL;
}

/* ---- the table ------------------------------------------------------------------ */

static const char *
ua_intern(struct usage_agent *ua, const char *route)
{
	char **nr, *s;

	for (size_t i = 0; i < ua->nroutes; i++)
		if (strcmp(ua->routes[i], route) == 0)
			return ua->routes[i];
	if ((nr = realloc(ua->routes, (ua->nroutes + 1) * sizeof(*nr))) == NULL)
		return NULL;
	ua->routes = nr;
	if ((s = strdup(route)) == NULL)
		return NULL;
	return ua->routes[ua->nroutes++] = s;
}

static uint64_t
ua_hash(const char *id, const char *route)
{
	uint64_t h = 1469598103934665603ULL;

	for (; *id; id++)
		h = (h ^ (unsigned char)*id) * 1099511628211ULL;
	return (h ^ (uint64_t)(uintptr_t)route) * 1099511628211ULL;
}

static int
ua_grow(struct usage_agent *ua)
{
	size_t cap = ua->cap ? ua->cap * 2 : 1024;
	struct ua_rec *t = calloc(cap, sizeof(*t)), *old = ua->tab;

	if (t == NULL)
		return -1;
	for (size_t i = 0; i < ua->cap; i++) {
		size_t j;

		if (old[i].id[0] == '\0')
			continue;
		for (j = ua_hash(old[i].id, old[i].route) & (cap - 1); t[j].id[0] != '\0';
		     j = (j + 1) & (cap - 1))
			;
		t[j] = old[i];
	}
	free(old);
	ua->tab = t;
	ua->cap = cap;
	return 0;
}

/* The record of (<id>, <route>), created when missing; NULL when out of memory. */
static struct ua_rec *
ua_get(struct usage_agent *ua, const char *id, const char *route)
{
	const char *r;
	size_t j;

	if (strlen(id) > KEY_ID_LEN || (r = ua_intern(ua, route)) == NULL)
		return NULL;
	if ((ua->n + 1) * 2 > ua->cap && ua_grow(ua) == -1)
		return NULL;
	for (j = ua_hash(id, r) & (ua->cap - 1); ua->tab[j].id[0] != '\0'; j = (j + 1) & (ua->cap - 1))
		if (ua->tab[j].route == r && strcmp(ua->tab[j].id, id) == 0)
			return &ua->tab[j];
	strcpy(ua->tab[j].id, id);
	ua->tab[j].route = r;
	ua->n++;
	return &ua->tab[j];
}

static void
ua_add(struct usage_agent *ua, const char *id, const char *route, uint64_t n, int64_t last)
{
	struct ua_rec *r = ua_get(ua, id, route);

	if (r == NULL) {
		if (!ua->oom_logged)
			log_err("event=usage_lost error=\"out of memory\"");
		ua->oom_logged = true;
		return;
	}
	r->total += n;
	r->pend += n;
	if (last > r->last)
		r->last = last;
	if (last > r->pend_last)
		r->pend_last = last;
	ua->dirty = true;
}

/* ---- merging ---------------------------------------------------------------------- */

/* Adds what part <ul>'s cells counted since the last read to the table. */
static void
ua_read_part(struct usage_agent *ua, struct usage_part *ul)
{
	const struct conf *c = ul->conf;

	ul->epoch = ua->epoch;
	for (size_t k = 0; k < ul->nkeys; k++) {
		for (uint32_t i = ul->off[k]; i < ul->off[k + 1]; i++) {
			uint32_t sum = 0, t = 0, d;
			uint16_t r = ul->route[i];

			for (unsigned w = 0; w < ul->nworkers; w++) {
				const struct usage_cell *cell = &ul->cells[(size_t)w * ul->stride + i];
				uint32_t ct = atomic_load_explicit(&cell->t, memory_order_relaxed);

				sum += atomic_load_explicit(&cell->n, memory_order_relaxed);
				if (ct > t) {
					t = ct;
					if (i == ul->off[k + 1] - 1)   /* "other": the latest route */
						r = atomic_load_explicit(&ul->other[(size_t)w * ul->nkeys + k],
						                         memory_order_relaxed);
				}
			}
			d = sum - ul->seen[i];
			if (d == 0 && t <= ul->seen_t[i])
				continue;
			ul->seen[i] = sum;
			ul->seen_t[i] = t;
			if (r == USAGE_OTHER_NONE || r >= c->nroutes)
				continue;
			ua_add(ua, ul->base[k].id, c->routes[r].name, d, (int64_t)t);
		}
	}
}

/* Reads <s>'s parts, each once per collection unless <again> (a part
 * shared by several snapshots is read with the first). */
static void
ua_read_layout(struct usage_agent *ua, const struct snap *s, bool again)
{
	for (int p = 0; s->usage != NULL && p < 2; p++)
		if (s->usage->part[p] != NULL && (again || s->usage->part[p]->epoch != ua->epoch))
			ua_read_part(ua, s->usage->part[p]);
}

void
usage_agent_collect(struct usage_agent *ua)
{
	bool retired[UA_TRACK_MAX];
	size_t o = 0, i;

	if (ua == NULL)
		return;
	/* Ours is the last reference: no worker writes there any more, and
	 * the acquire makes their last writes visible. Every snapshot is
	 * judged before any part is read, as a part shared by several is read
	 * once, and must be read after the last of them was let go. */
	for (i = 0; i < ua->ntrack; i++)
		retired[i] = i + 1 < ua->ntrack &&
		    atomic_load_explicit(&ua->track[i]->refs, memory_order_acquire) == 1;
	ua->epoch++;
	for (i = 0; i < ua->ntrack; i++)
		ua_read_layout(ua, ua->track[i], false);
	for (i = 0; i < ua->ntrack; i++) {
		if (retired[i])
			snap_put(ua->track[i]);
		else
			ua->track[o++] = ua->track[i];
	}
	ua->ntrack = o;
}

void
usage_agent_track(struct usage_agent *ua, struct snap *s)
{
	if (ua == NULL)
		return;
	s->usage = ua_layout_new(snap_conf(s), s->ks,
	                         ua->ntrack > 0 ? ua->track[ua->ntrack - 1]->usage : NULL,
	                         ua->nworkers);
	if (s->usage == NULL)
		log_err("event=usage_not_counted keys=%zu error=\"out of memory\"", ks_count(s->ks));
	if (ua->ntrack == UA_TRACK_MAX) {
		/* Many swaps within one period: read the old ones now (a worker
		 * still on one of them counts on; it is read until released). */
		usage_agent_collect(ua);
	}
	if (ua->ntrack == UA_TRACK_MAX) {
		/* Still full: workers hold old snapshots. Drop the oldest's
		 * tracking (its last counts are lost, and logged). */
		log_err("event=usage_tracking_full action=drop_oldest");
		ua_read_layout(ua, ua->track[0], true);
		snap_put(ua->track[0]);
		memmove(ua->track, ua->track + 1, (UA_TRACK_MAX - 1) * sizeof(*ua->track));
		ua->ntrack--;
	}
	ua->track[ua->ntrack++] = snap_get(s);
}

/* ---- persisting ---------------------------------------------------------------------- */

static const struct ks_set *
ua_current_set(const struct usage_agent *ua)
{
	return ua->ntrack > 0 ? ua->track[ua->ntrack - 1]->ks : NULL;
}

/* Drops the records of keys the current set does not hold (never while the
 * set denies all: it says nothing about which keys exist). */
static void
ua_drop_removed(struct usage_agent *ua)
{
	const struct ks_set *ks = ua_current_set(ua);
	struct ua_rec *old = ua->tab;
	size_t cap = ua->cap;

	if (ks == NULL || ks_set_denies_all(ks) || ua->n == 0)
		return;
	for (size_t i = 0; i < cap; i++)
		if (old[i].id[0] != '\0' && ks_find_id(ks, old[i].id) == NULL)
			break;
		else if (i + 1 == cap)
			return;                  /* nothing to drop */
	ua->tab = NULL;
	ua->cap = 0;
	ua->n = 0;
	if (ua_grow(ua) == -1) {
		ua->tab = old;
		ua->cap = cap;
		return;
	}
	for (size_t i = 0; i < cap; i++) {
		struct ua_rec *r;

		if (old[i].id[0] == '\0' || ks_find_id(ks, old[i].id) == NULL)
			continue;
		if ((r = ua_get(ua, old[i].id, old[i].route)) != NULL)
			*r = old[i];
	}
	free(old);
	ua->dirty = true;
}

static int
ua_write_file(struct usage_agent *ua, char *err, size_t errlen)
{
	struct usage_rec *v = malloc((ua->n ? ua->n : 1) * sizeof(*v));
	size_t n = 0;
	int rc;

	if (v == NULL) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	for (size_t i = 0; i < ua->cap; i++)
		if (ua->tab[i].id[0] != '\0')
			v[n++] = (struct usage_rec){ ua->tab[i].id, ua->tab[i].route,
			                             ua->tab[i].total, ua->tab[i].last };
	rc = usage_file_write(ua->path, v, n, err, errlen);
	free(v);
	return rc;
}

/* Sends the pending deltas of the <n> records <recs> in one EVAL and clears
 * them once Redis accepted it. */
static int
ua_eval(struct usage_agent *ua, struct redisContext *rc, struct ua_rec **recs, size_t n,
        char *err, size_t errlen)
{
	size_t argc = 6 + 3 * n;
	const char **argv = malloc(argc * sizeof(*argv));
	size_t *lens = malloc(argc * sizeof(*lens));
	char *buf = malloc(n * (KEY_ID_LEN + KS_ROUTE_MAX + 2 + 2 * 24) + 3 * 300);
	char *p = buf;
	redisReply *r;
	int rc_ = -1;

	if (argv == NULL || lens == NULL || buf == NULL) {
		snprintf(err, errlen, "out of memory");
		goto out;
	}
#define UA_ARG(i, fmt, ...) do { int l_ = sprintf(p, fmt, __VA_ARGS__); \
	argv[i] = p; lens[i] = (size_t)l_; p += l_ + 1; } while (0)
	argv[0] = "EVAL";
	lens[0] = 4;
	argv[1] = ua_script;
	lens[1] = sizeof(ua_script) - 1;
	argv[2] = "3";
	lens[2] = 1;
	UA_ARG(3, "%.200s%s", ua->ns, USAGE_REDIS_REQUESTS);
	UA_ARG(4, "%.200s%s", ua->ns, USAGE_REDIS_LAST);
	UA_ARG(5, "%.200s:ids", ua->ns);
	for (size_t i = 0; i < n; i++) {
		UA_ARG(6 + 3 * i, "%s:%.128s", recs[i]->id, recs[i]->route);
		UA_ARG(7 + 3 * i, "%llu", (unsigned long long)recs[i]->pend);
		UA_ARG(8 + 3 * i, "%lld", (long long)recs[i]->pend_last);
	}
#undef UA_ARG
	r = redisCommandArgv(rc, (int)argc, argv, lens);
	if (r == NULL || r->type == REDIS_REPLY_ERROR) {
		snprintf(err, errlen, "redis EVAL: %s", r == NULL ? rc->errstr : r->str);
	} else {
		for (size_t i = 0; i < n; i++) {
			recs[i]->pend = 0;
			recs[i]->pend_last = 0;
		}
		rc_ = 0;
	}
	if (r != NULL)
		freeReplyObject(r);
out:
	free(argv);
	free(lens);
	free(buf);
	return rc_;
}

static int
ua_write_redis(struct usage_agent *ua, char *err, size_t errlen)
{
	struct ua_rec *batch[UA_BATCH];
	struct redisContext *rc = NULL;
	size_t nb = 0;

	for (size_t i = 0; i <= ua->cap; i++) {
		if (i < ua->cap && (ua->tab[i].pend == 0 && ua->tab[i].pend_last == 0))
			continue;
		if (i < ua->cap)
			batch[nb++] = &ua->tab[i];
		if (nb == 0 || (nb < UA_BATCH && i < ua->cap))
			continue;
		if (rc == NULL && (rc = store_redis_agent_conn(ua->store, err, errlen)) == NULL)
			return -1;
		if (ua_eval(ua, rc, batch, nb, err, errlen) == -1)
			return -1;
		nb = 0;
	}
	return 0;
}

int
usage_agent_flush(struct usage_agent *ua, int64_t now)
{
	char err[512];
	int rc;

	(void)now;
	if (ua == NULL)
		return 0;
	usage_agent_collect(ua);
	if (!ua->shared)
		ua_drop_removed(ua);
	if (!ua->dirty)
		return 0;
	rc = ua->shared ? ua_write_redis(ua, err, sizeof(err)) : ua_write_file(ua, err, sizeof(err));
	if (rc == -1) {
		ua->failures++;
		if (!ua->fail_logged)
			log_err("event=usage_write_failed error=%s action=retry", LOG_Q(err));
		ua->fail_logged = true;
		return -1;
	}
	if (ua->fail_logged)
		log_info("event=usage_write_ok");
	ua->fail_logged = false;
	ua->dirty = false;
	ua->flushes++;
	return 0;
}

/* ---- life cycle, statistics ---------------------------------------------------------- */

struct usage_agent *
usage_agent_new(const struct conf *c, struct store *store, unsigned nworkers)
{
	struct usage_agent *ua = calloc(1, sizeof(*ua));
	struct usage_set *u;
	char err[512];

	if (ua == NULL)
		return NULL;
	ua->store = store;
	ua->nworkers = nworkers;
	ua->shared = c->store_redis != NULL;
	if (ua->shared)
		ua->ns = strdup(c->store_redis->namespace);
	else
		ua->path = usage_path(c);
	if ((ua->shared ? ua->ns : ua->path) == NULL) {
		free(ua);
		return NULL;
	}
	u = usage_read(c, err, sizeof(err));
	if (u == NULL) {
		log_err("event=usage_load_failed error=%s action=count_from_zero", LOG_Q(err));
	} else {
		for (size_t i = 0; i < usage_count(u); i++) {
			const struct usage_rec *r = usage_at(u, i);
			struct ua_rec *e = ua_get(ua, r->id, r->route);

			if (e != NULL) {
				e->total = r->requests;
				e->last = r->last_used;
			}
		}
		log_info("event=usage_loaded records=%zu", usage_count(u));
		usage_free(u);
	}
	return ua;
}

void
usage_agent_free(struct usage_agent *ua)
{
	if (ua == NULL)
		return;
	ua->epoch++;
	for (size_t i = 0; i < ua->ntrack; i++)
		ua_read_layout(ua, ua->track[i], false);
	if (ua->dirty)
		usage_agent_flush(ua, 0);
	for (size_t i = 0; i < ua->ntrack; i++)
		snap_put(ua->track[i]);
	for (size_t i = 0; i < ua->nroutes; i++)
		free(ua->routes[i]);
	free(ua->routes);
	free(ua->tab);
	free(ua->ns);
	free(ua->path);
	free(ua);
}

void
usage_agent_stats(struct usage_agent *ua, int64_t now, struct usage_stats *out)
{
	const struct ks_set *ks;
	uint8_t *recent;
	size_t n;

	memset(out, 0, sizeof(*out));
	if (ua == NULL)
		return;
	out->flushes = ua->flushes;
	out->flush_failures = ua->failures;
	ks = ua_current_set(ua);
	n = ks_span(ks);
	if (n == 0 || (recent = calloc(n, 1)) == NULL)
		return;
	for (size_t i = 0; i < ua->cap; i++) {
		const struct ks_entry *e;

		if (ua->tab[i].id[0] == '\0' || ua->tab[i].last <= now - 30 * 86400)
			continue;
		if ((e = ks_find_id(ks, ua->tab[i].id)) != NULL && ks_entry_pos(ks, e) < n)
			recent[ks_entry_pos(ks, e)] = 1;
	}
	for (size_t i = 0; i < n; i++) {
		const struct ks_entry *e = ks_entry_at(ks, i);
		bool live;

		if (e == NULL)               /* hidden by its overlay */
			continue;
		live = e->revoked == 0 && (e->expires == 0 || e->expires > now);

		if (live && e->expires != 0 && e->expires <= now + 7 * 86400)
			out->keys_expiring_7d++;
		if (live && e->created < now - 30 * 86400 && !recent[i])
			out->keys_unused_30d++;
	}
	free(recent);
}
