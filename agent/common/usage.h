/* SPDX-License-Identifier: Apache-2.0 */
/*
 * usage: how much each key is used, per key and route: requests counted and
 * the last time it was used (Unix seconds).
 *
 * keyauthd counts in its workers (no lock, no allocation, no I/O on the
 * request path), merges off it, and persists: with the file backend in its
 * own usage state file (usage_path(): "<store path>.usage" unless
 * store.usage_path says otherwise; never the key store itself), with Redis
 * in the store's namespace, at most every few seconds (counts summed over
 * all agents, last use the maximum). keyauthctl only reads (usage_read).
 * Usage of a key removed from the store is dropped at the next write.
 */
#ifndef AGENT_USAGE_H
#define AGENT_USAGE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct conf;
struct usage_set;

/* One key on one route. */
struct usage_rec {
	const char *id;          /* key id */
	const char *route;
	uint64_t requests;       /* verdicts given for it, every status */
	int64_t last_used;       /* Unix seconds of the last one; 0: never */
};

/* keyauthctl: the usage recorded for the store <c> names (file: the usage
 * state file, missing = no usage yet; redis: the usage hash). NULL with a
 * message in <err> on a read or format error. */
struct usage_set *usage_read(const struct conf *c, char *err, size_t errlen);
void usage_free(struct usage_set *u);

size_t usage_count(const struct usage_set *u);
const struct usage_rec *usage_at(const struct usage_set *u, size_t i);

/* A key's totals over all its routes: requests summed, last use the latest.
 * false (and zeros) when the key was never seen. */
bool usage_key(const struct usage_set *u, const char *id, uint64_t *requests,
               int64_t *last_used);

/* ---- for keyauthd (the writer) -------------------------------------------
 * The file: msgpack, a map {"version": 1, "usage": [[id, route, requests,
 * last_used], ...]}. Redis: two hashes under the namespace, field
 * "<id>:<route>" (neither may hold ':'): USAGE_REDIS_REQUESTS (HINCRBY'd by
 * each agent's deltas) and USAGE_REDIS_LAST (raised, never lowered). */
#define USAGE_FILE_VERSION   1
#define USAGE_REDIS_REQUESTS ":usage:requests"
#define USAGE_REDIS_LAST     ":usage:last_used"

/* The usage state file for <c>'s file store (malloc'd), NULL for a shared
 * store or when out of memory. */
char *usage_path(const struct conf *c);

/* Writes <n> records to <path> atomically (temporary file in the same
 * directory, fsync, rename, fsync of the directory; mode 0600). 0, or -1
 * with <err>; on failure the old file is untouched. */
int usage_file_write(const char *path, const struct usage_rec *v, size_t n,
                     char *err, size_t errlen);

#endif
