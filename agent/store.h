/* SPDX-License-Identifier: Apache-2.0 */
/*
 * store: the backend boundary between keyauthd and where keys live.
 *
 * A backend loads a whole key set and tells the main thread when it may have
 * changed. Workers never see a backend: they only read ks_set snapshots. The
 * embedded default is the msgpack file (store_file.c); a shared backend for
 * many hosts plugs in here without touching the request path.
 * Main thread only.
 */
#ifndef AGENT_STORE_H
#define AGENT_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct conf;
struct ev_loop;
struct ks_set;
struct store;

typedef void store_changed_cb(struct store *st, void *arg);

/* How current a backend's data is, for stats and the staleness rule. */
struct store_status {
	double age;                      /* seconds since the set was last known current; 0: now */
	bool connected;                  /* change feed up (the file: always) */
	uint64_t disconnects;            /* change feed lost */
	uint64_t resyncs;                /* full loads that succeeded */
	uint64_t resyncs_skipped;        /* full loads skipped: the data had not changed */
	uint64_t records_skipped;        /* bad records left out, summed over loads */
};

struct store_ops {
	const char *name;
	/* A new set with one reference, or NULL with <err>. */
	struct ks_set *(*load)(struct store *st, char *err, size_t errlen);
	/* Calls <cb> (from <loop>) whenever the data may have changed. */
	int (*watch)(struct store *st, struct ev_loop *loop, store_changed_cb *cb, void *arg);
	void (*unwatch)(struct store *st);
	void (*free)(struct store *st);
	/* Where the data lives, for logs. */
	const char *(*where)(const struct store *st);
	/* Optional (NULL: always current and connected, counters 0). */
	void (*status)(const struct store *st, double now, struct store_status *out);
};

struct store {
	const struct store_ops *ops;
};

/* The backend named by <c>. NULL with <err> if it cannot be set up. */
struct store *store_new(const struct conf *c, char *err, size_t errlen);
/* True if <c> and the config <st> was made from name the same store. */
int store_same(const struct store *st, const struct conf *c);

struct store *store_file_new(const char *path);

/* Fills <out> for <st> at time <now> (ev_now). */
static inline void
store_get_status(const struct store *st, double now, struct store_status *out)
{
	*out = (struct store_status){ .connected = true };
	if (st->ops->status != NULL)
		st->ops->status(st, now, out);
}

static inline void
store_free(struct store *st)
{
	if (st != NULL)
		st->ops->free(st);
}

#endif /* AGENT_STORE_H */
