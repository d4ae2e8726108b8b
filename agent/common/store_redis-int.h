/* SPDX-License-Identifier: Apache-2.0 */
/*
 * store_redis-int.h: what the two halves of the Redis backend share
 * (store_redis.c, synchronous; store_redis_agent.c, keyauthd's change feed).
 * Private to those two files.
 */
#ifndef AGENT_STORE_REDIS_INT_H
#define AGENT_STORE_REDIS_INT_H

#include <stddef.h>
#include <stdint.h>

#include "conf.h"
#include "filetrust.h"
#include "store.h"

#define SR_PASS_MAX   512

struct redisReply;

/* The Redis store as keyauthctl opens it; the agent's store embeds it first.
 * Owns copies of the configuration's strings. */
struct store_redis_client {
	struct store base;
	struct store_redis_conf rc;      /* strings owned here */
	char where[320];
	struct redisContext *tx;         /* keyauthctl's transaction; NULL outside one */
	struct ft_trust trust;           /* who may own the password file (store_open's) */
};

/* Copies <rc> and <trust> into <cl> and reads the password file (refused
 * when group or other may read it, or when sr_read_password's owner rule
 * fails). 0, or -1 with <err> (then sr_client_fini). */
int sr_client_init(struct store_redis_client *cl, const struct store_ops *ops,
                   const struct store_redis_conf *rc, const struct ft_trust *trust,
                   char *err, size_t errlen);
void sr_client_fini(struct store_redis_client *cl);

/* keyauthctl's operations; the agent's vtable has them too. */
struct ks_set *sr_client_read(struct store *st, char *err, size_t errlen);
struct ks_set *sr_client_begin(struct store *st, int *locked, char *err, size_t errlen);
int sr_client_commit(struct store *st, const struct ks_set *old, const struct ks_entry *v,
                     size_t n, char *err, size_t errlen);
void sr_client_end(struct store *st);
const char *sr_client_where(const struct store *st);

/* Growing arrays for one read: the entries and the strings they point to
 * (ks_set_build copies both). */
struct sr_read {
	struct ks_entry *v;
	char **strs;
	size_t n, vcap, nstrs, scap;
	size_t skipped;
};

void sr_read_free(struct sr_read *rd);
/* Fills one entry from HGETALL's reply <h> (NULL: an error reply) for the id
 * <idr>. Returns 0, 1 (skipped, logged) or -1 (out of memory). */
int sr_record(struct sr_read *rd, const char *ns, const struct redisReply *idr,
              const struct redisReply *h);
/* store_redis_read, also adding the number of records skipped to <*skipped>
 * (may be NULL). */
struct ks_set *sr_read_all(struct redisContext *c, const char *ns, uint64_t *generation,
                           uint64_t *skipped, char *err, size_t errlen);
/* The password file's first line into <buf>. The file must be readable only
 * by its owner, and it and the directories above it must pass ft_check_path
 * for <trust> (NULL: root and the running user): whoever can write it picks
 * the Redis user the store is read as. 0, or -1 with <err>. */
int sr_read_password(const char *path, const struct ft_trust *trust, char *buf, size_t cap,
                     char *err, size_t errlen);

#endif /* AGENT_STORE_REDIS_INT_H */
