/* SPDX-License-Identifier: Apache-2.0 */
/*
 * store: the one boundary between the programs and where keys live.
 *
 * One vtable serves both programs. keyauthd loads a whole key set and is told
 * when it may have changed (load, watch, status); keyauthctl reads the set
 * unlocked (read) or changes it in one locked read-modify-write transaction
 * (begin, commit, end). Workers never see a backend: they only read ks_set
 * snapshots. store_open is the only place that picks a backend (the msgpack
 * file, store_file.c, or Redis, store_redis*.c); callers ask the flags, never
 * the name. Main thread / single-threaded only.
 */
#ifndef AGENT_STORE_H
#define AGENT_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct conf;
struct ev_loop;
struct ks_entry;
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

/* Capability flags (store_ops.flags). */
#define STORE_F_SHARED     0x1u  /* many hosts share it: a change feed that can be lost,
                                  * the staleness rule, never "the same" across reloads */
#define STORE_F_WATCH_FILE 0x2u  /* one local file: change seen by its identity, the same
                                  * store as long as the path is */

struct store_ops {
	const char *name;                /* for stats and logs only, never compared */
	unsigned flags;                  /* STORE_F_* */
	/* keyauthd. A new set with one reference, or NULL with <err>. */
	struct ks_set *(*load)(struct store *st, char *err, size_t errlen);
	/* Calls <cb> (from <loop>) whenever the data may have changed. NULL:
	 * the role opened has no change feed (keyauthctl). */
	int (*watch)(struct store *st, struct ev_loop *loop, store_changed_cb *cb, void *arg);
	void (*unwatch)(struct store *st);
	/* Optional (NULL: always current and connected, counters 0). */
	void (*status)(const struct store *st, double now, struct store_status *out);
	/* keyauthctl. The whole set, unlocked (a reader sees the old store or
	 * the new one), or NULL with <err>. */
	struct ks_set *(*read)(struct store *st, char *err, size_t errlen);
	/* Locks and reads: the set, or NULL with <err> (*locked = 0 when the
	 * failure is the lock/connection itself). end() always follows. */
	struct ks_set *(*begin)(struct store *st, int *locked, char *err, size_t errlen);
	/* Writes <v> (<n> entries) over <old>, begin's set: 0, -1 with <err>
	 * (nothing written), or 1 with <err>: written, but fewer replicas than
	 * write_replicas confirmed it. */
	int (*commit)(struct store *st, const struct ks_set *old, const struct ks_entry *v,
	              size_t n, char *err, size_t errlen);
	void (*end)(struct store *st);
	/* Both. */
	void (*free)(struct store *st);
	const char *(*where)(const struct store *st);   /* where the data lives, for logs */
};

struct store {
	const struct store_ops *ops;
};

/* Who opens the store: the agent (load, watch, status; links the libev
 * change feed) or keyauthctl (read and transactions, synchronous only).
 * Each role's table lives with its backends' code, so a program that names
 * only store_role_ctl links none of the agent's change feed. */
struct ft_trust;
struct store_redis_conf;
struct store_role {
	const char *name;
	/* <trust>: who may own the files read (the password file). */
	struct store *(*redis)(const struct store_redis_conf *rc, const struct ft_trust *trust,
	                       char *err, size_t errlen);
	/* Trusted owner of the store's files (filetrust.h) when the
	 * configuration names no `user`; NULL: only root and the running user. */
	const char *default_user;
};
extern const struct store_role store_role_agent;   /* store_redis_agent.c */
extern const struct store_role store_role_ctl;     /* store_redis.c */

/* The backend <c> configures, for <role>. NULL with <err>. The files it
 * reads (store file, password file) are trusted when owned by root, the
 * running user, or the configuration's `user` (<role>'s default_user when
 * there is none) and writable by nobody else, directories above included
 * (filetrust.h). */
struct store *store_open(const struct conf *c, const struct store_role *role, char *err,
                         size_t errlen);
/* True if <c> and the config <st> was made from name the same store. */
int store_same(const struct store *st, const struct conf *c);

/* <trust> is copied; NULL: root and the running user. */
struct store *store_file_new(const char *path, const struct ft_trust *trust);

/* Fills <out> for <st> at time <now> (ev_now). */
static inline void
store_get_status(const struct store *st, double now, struct store_status *out)
{
	*out = (struct store_status){ .connected = true };
	if (st->ops->status != NULL)
		st->ops->status(st, now, out);
}

static inline bool
store_has(const struct store *st, unsigned flag)
{
	return (st->ops->flags & flag) != 0;
}

static inline void
store_free(struct store *st)
{
	if (st != NULL)
		st->ops->free(st);
}

#endif /* AGENT_STORE_H */
