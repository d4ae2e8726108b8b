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

#include <stddef.h>

struct conf;
struct ev_loop;
struct ks_set;
struct store;

typedef void store_changed_cb(struct store *st, void *arg);

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
};

struct store {
	const struct store_ops *ops;
};

/* The backend named by <c>. NULL with <err> if it cannot be set up. */
struct store *store_new(const struct conf *c, char *err, size_t errlen);
/* True if <c> and the config <st> was made from name the same store. */
int store_same(const struct store *st, const struct conf *c);

struct store *store_file_new(const char *path);

static inline void
store_free(struct store *st)
{
	if (st != NULL)
		st->ops->free(st);
}

#endif /* AGENT_STORE_H */
