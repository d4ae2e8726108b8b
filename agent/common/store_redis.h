/* SPDX-License-Identifier: Apache-2.0 */
/*
 * store_redis: the key set in Redis, shared by many agents.
 *
 * Data model under namespace <ns> (digests only, never keys):
 *   <ns>:key:<id>    hash: digest (64 hex chars), route, owner, created,
 *                    expires, revoked, rpm (decimal)
 *   <ns>:ids         set of every id
 *   <ns>:generation  counter, INCR'd by every write
 *   <ns>:events      pub/sub channel: per write, the changed ids separated by
 *                    blanks (at most 64), or "*" for "reload everything"
 * Writers (keyauthctl) WATCH the generation, read, then change the records,
 * the id set and the generation and PUBLISH in one MULTI/EXEC: the change,
 * its index and its notification are one atomic unit, and a concurrent
 * writer makes EXEC fail instead of losing an update.
 *
 * The store itself (both programs) comes from store_open (store.h); these are
 * the synchronous primitives under it (store_redis.c, no libev), also used by
 * tools and tests.
 */
#ifndef AGENT_STORE_REDIS_H
#define AGENT_STORE_REDIS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct ft_trust;
struct ks_entry;
struct ks_set;
struct redisContext;
struct store_redis_conf;

/* A synchronous connection (address, AUTH [username] from the password file, SELECT),
 * with a 2 s connect and 10 s command timeout. <trust>: who may own the
 * password file (filetrust.h; NULL: root and the running user). NULL with <err>. */
struct redisContext *store_redis_connect(const struct store_redis_conf *rc,
                                         const struct ft_trust *trust, char *err,
                                         size_t errlen);

/* store_redis_disconnect(NULL) is a no-op. */
void store_redis_disconnect(struct redisContext *c);

/* Reads the whole set (SSCAN of <ns>:ids in batches, pipelined HGETALL).
 * Bad records are skipped with one log line each. <generation> (may be NULL)
 * gets <ns>:generation read before the scan. NULL with <err> on I/O errors. */
struct ks_set *store_redis_read(struct redisContext *c, const char *ns, uint64_t *generation,
                                char *err, size_t errlen);

/* WATCH <ns>:generation; call before store_redis_read in a read-modify-write. */
int store_redis_watch_gen(struct redisContext *c, const char *ns, char *err, size_t errlen);

/* Writes the entries of <v> that differ from <old> (or are new), removes ids
 * of <old> absent from <v>, INCRs the generation and PUBLISHes, in one
 * MULTI/EXEC. Returns 0, 1 if the WATCHed generation moved (nothing written;
 * retry), or -1 with <err>. Entries are checked with ks_entry_check first. */
int store_redis_commit(struct redisContext *c, const char *ns, const struct ks_set *old,
                       const struct ks_entry *v, size_t n, char *err, size_t errlen);

/* WAIT <replicas> <timeout_ms> on <c>, right after a store_redis_commit that
 * returned 0: how many replicas acknowledged every write made so far on <c>
 * (may be fewer than asked when the timeout ran out), or -1 with <err>. */
int store_redis_wait(struct redisContext *c, unsigned replicas, unsigned timeout_ms, char *err,
                     size_t errlen);

#endif /* AGENT_STORE_REDIS_H */
