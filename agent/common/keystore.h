/* SPDX-License-Identifier: Apache-2.0 */
/*
 * keystore: the key set and its msgpack file.
 *
 * A struct ks_set is an immutable snapshot of every stored key, indexed by
 * SHA-256 digest in an open-addressing table (lookup cost independent of the
 * number of keys). Sets are reference counted; the daemon hands a new set to
 * each worker and the last worker to let go of the old one frees it, so the
 * request path never takes a lock. A set changed in a few keys
 * (ks_set_apply) is an overlay on a shared base: the changed records, looked
 * up first, over the large set they change (keystore_overlay.c).
 *
 * The file (msgpack, written only by keyauthctl through ks_file_write) is
 * validated whole before use: a bad file yields an error and no set.
 */
#ifndef AGENT_KEYSTORE_H
#define AGENT_KEYSTORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "keyfmt.h"

#define KS_FILE_VERSION 1
#define KS_ROUTE_MAX    128
#define KS_OWNER_MAX    256
#define KS_ROUTES_MAX   16       /* routes of one key */
#define KS_ALIAS_MAX    64       /* alias: 1..64 of [A-Za-z0-9_.@-] */
#define KS_TAGS_MAX     16       /* tags of one key */
#define KS_TAG_KEY_MAX  32       /* tag name: 1..32 of [a-z0-9_.-] */
#define KS_TAG_VAL_MAX  64       /* tag value: 0..64 printable, no ',' '=' */
/* The longest "a,b,..." route list and "k=v,..." tag list, without the NUL. */
#define KS_ROUTES_STR_MAX (KS_ROUTES_MAX * (KS_ROUTE_MAX + 1))
#define KS_TAGS_STR_MAX   (KS_TAGS_MAX * (KS_TAG_KEY_MAX + KS_TAG_VAL_MAX + 2))

/* One stored key. Strings are NUL-terminated and owned by the set or record
 * list that holds the entry. Times are Unix seconds.
 *
 * Routes: <routes> is the key's route list joined with ',' ("openai,azure";
 * route names have no ','), at most KS_ROUTES_MAX distinct names, and
 * <route> is its first name. <routes> NULL or "" means the one route
 * <route> (entries built before keys had several routes). Tags are
 * "name=value" pairs joined with ',' (values have no ',' nor '='), names
 * unique. A lookup on the request path (ks_entry_has_route) scans the list
 * in place: no allocation. */
struct ks_entry {
	uint8_t digest[KEY_DIGEST_LEN];
	char id[KEY_ID_LEN + 1];
	char rotated_from[KEY_ID_LEN + 1];  /* "" when none: the key this one replaced */
	char rotated_to[KEY_ID_LEN + 1];    /* "" when none: the key that replaced this one */
	const char *route;       /* the first route */
	const char *routes;      /* every route, ','-joined; NULL/"" = <route> only */
	const char *owner;       /* "" when none */
	const char *alias;       /* "" (or NULL) when none */
	const char *tags;        /* "k=v,k2=v2"; "" (or NULL) when none */
	int64_t created;
	int64_t expires;         /* 0 = never */
	int64_t revoked;         /* 0 = not revoked, else revocation time */
	uint32_t rpm;            /* requests per minute limit, 0 = none (rate-limit issue) */
	uint32_t scopes;         /* admin-route keys: KS_SCOPE_* bits; 0 = none (other keys) */
};

/* What an admin-route key may do (keyauth-admin, issue #22): bits of
 * ks_entry.scopes, in the canonical order read, write, deploy. */
#define KS_SCOPE_READ   1u
#define KS_SCOPE_WRITE  2u
#define KS_SCOPE_DEPLOY 4u
#define KS_SCOPES_ALL   7u
/* "read", "read,write", ... for <scopes> (bits outside KS_SCOPES_ALL
 * ignored); "" for 0. A static string: no allocation. */
const char *ks_scopes_str(uint32_t scopes);
/* The bit of scope <name> ("read", "write", "deploy"), or 0 when unknown. */
uint32_t ks_scope_bit(const char *name, size_t len);

/* The route list of <e>: <routes>, or <route> when it has no list. */
const char *ks_entry_routes(const struct ks_entry *e);

/* True if <e> is bound to the route <name>/<len>. No allocation. */
bool ks_entry_has_route(const struct ks_entry *e, const char *name, size_t len);

/* The value of tag <name> of <e> in <*val>/<*vlen> (not NUL-terminated);
 * false when <e> has no such tag. */
bool ks_entry_tag(const struct ks_entry *e, const char *name, const char **val, size_t *vlen);

/* Field rules, for keyauthctl's messages as well as the store: 0 or -1 with
 * a message (no field name prefix) in <err>. */
int ks_alias_check(const char *p, size_t len, char *err, size_t errlen);
int ks_tag_check(const char *k, size_t klen, const char *v, size_t vlen, char *err,
                 size_t errlen);

struct ks_set;

/* Loads and validates the store file at <path>. A missing file gives an empty
 * set (and *missing = true when <missing> is not NULL). Any other problem
 * returns NULL with "path: message" in <err>. The new set has one reference.
 * Whoever can write the store can add keys: the file read (its descriptor's
 * fstat) and every directory above it must pass ft_check_path for root and
 * the running user (filetrust.h), and a missing file counts as empty only
 * when no untrusted user could have created it. */
struct ks_set *ks_set_load(const char *path, bool *missing, char *err, size_t errlen);

/* ks_set_load, and the fstat() of the descriptor it read in <*read_st> (all
 * zero when the file could not be opened): the identity of exactly the bytes
 * judged, for a watcher that must not judge the same bytes twice nor miss a
 * change made after its last look. <trust>: the owners trusted (the
 * store's, from the configuration's `user`); NULL: root and the running
 * user, as ks_set_load. */
struct stat;
struct ft_trust;
struct ks_set *ks_set_load_stat(const char *path, bool *missing, struct stat *read_st,
                                const struct ft_trust *trust, char *err, size_t errlen);

/* Validates and builds a set from the bytes of a store file (what
 * ks_set_load does after reading; for other backends and fuzzing). Returns
 * the set with one reference, or NULL with a message (no path) in <err>.
 * An empty buffer is an error ("truncated"), not an empty set. */
struct ks_set *ks_set_parse(const void *buf, size_t len, char *err, size_t errlen);

/* An empty set with one reference. */
struct ks_set *ks_set_empty(void);

/* An empty set marked "deny all" (one reference): published instead of the
 * real set when a shared store is too stale to trust (stale_action "deny");
 * verdict_eval answers unknown_route for every request while it is in place. */
struct ks_set *ks_set_deny_all(void);
bool ks_set_denies_all(const struct ks_set *s);

/* Builds a set from <n> entries (copied). Returns NULL with <err> on duplicate
 * digests or ids, or allocation failure. */
struct ks_set *ks_set_build(const struct ks_entry *v, size_t n, char *err, size_t errlen);

const struct ks_entry *ks_lookup(const struct ks_set *s, const uint8_t digest[KEY_DIGEST_LEN]);
const struct ks_entry *ks_find_id(const struct ks_set *s, const char *id);
/* The number of keys. */
size_t ks_count(const struct ks_set *s);

/*
 * Positions. A plain set (built, loaded, parsed) has ks_count positions,
 * every one an entry. An overlay (ks_set_apply) has its base's positions,
 * then its own entries': ks_span of them, and ks_entry_at returns NULL for a
 * base position the overlay hides (the key changed or was deleted since
 * the base was built). So a walk over any set is
 *     for (i = 0; i < ks_span(s); i++) if ((e = ks_entry_at(s, i)) != NULL) ...
 * and the entries of one set are one array (plain) or two (overlay: its
 * base's, then its own; see ks_set_base).
 */
size_t ks_span(const struct ks_set *s);
const struct ks_entry *ks_entry_at(const struct ks_set *s, size_t i);
/* The position of <e>, an entry of <s> (ks_entry_at(s, pos) == e), or
 * SIZE_MAX when <e> is not one of its entries. */
size_t ks_entry_pos(const struct ks_set *s, const struct ks_entry *e);
/* The base of overlay <s>; NULL when <s> is a plain set. */
const struct ks_set *ks_set_base(const struct ks_set *s);

/*
 * The set <prev> with the keys whose ids are <ids>[0..<nids>) replaced by
 * <v>[0..<n>) (their records now; an id of <ids> with no entry in <v> was
 * deleted; every entry of <v> has an id of <ids>). The cost is the size of
 * the changes since <prev>'s base was built, not the number of keys: the
 * result is an overlay on <prev>'s base (or on <prev> when it is plain),
 * sharing it, with a new small table of the changed records. When the
 * changes since the base outgrow ks_overlay_limit(base keys), the result is
 * a new plain set instead (a merge: every key copied once). Returns the set
 * with one reference, or NULL with <err> on a duplicate digest (two live
 * keys would have one) or allocation failure; <prev> is unchanged.
 */
struct ks_set *ks_set_apply(struct ks_set *prev, const char *const *ids, size_t nids,
                            const struct ks_entry *v, size_t n, char *err, size_t errlen);
/* ks_set_apply without the merge: always an overlay, however large (for a
 * caller that merges elsewhere, e.g. on another thread). */
struct ks_set *ks_set_overlay(struct ks_set *prev, const char *const *ids, size_t nids,
                              const struct ks_entry *v, size_t n, char *err, size_t errlen);
/* Every key of <s> in a new plain set (one reference; <s> unchanged): the
 * merge. Reads only <s>, which is immutable: any thread. NULL with <err>. */
struct ks_set *ks_set_flatten(const struct ks_set *s, char *err, size_t errlen);
/* After a merge done aside (ks_set_flatten of an older set <old>, while
 * <cur> moved on from <old> by changes to the ids <ids>, repeats allowed):
 * <flat> with those ids' records as <cur> has them (absent there: deleted),
 * an overlay on <flat> with exactly <cur>'s keys. NULL with <err>. */
struct ks_set *ks_set_rebase(struct ks_set *flat, const struct ks_set *cur,
                             const char *const *ids, size_t nids, char *err, size_t errlen);
/* Overlay records (changed entries plus hidden base entries) past which
 * ks_set_apply merges into a new base: <nbase>/64, at least 256, at most
 * 8192 (with 1M keys: a merge every ~8000 changed records). */
size_t ks_overlay_limit(size_t nbase);
/* The records of <s>'s overlay (0 for a plain set). */
size_t ks_overlay_size(const struct ks_set *s);

/* Entries copied into sets (built, loaded, overlays, merges) by this
 * process since it started: what a change costs, for tests and stats. */
uint64_t ks_entries_copied(void);

/* The file's "generation" counter (bumped by each keyauthctl write); 0 for
 * sets not loaded from a file. */
uint64_t ks_generation(const struct ks_set *s);

/* The ids of v[0..n), sorted, for ks_ids_has: which records of an old set
 * are gone from a new list, in n log n (comparing every pair made one write
 * to a 1M-key store run for hours). NULL when out of memory; with n == 0 a
 * valid empty list. The caller frees it; it points into <v>. */
const char **ks_ids_sorted(const struct ks_entry *v, size_t n);
bool ks_ids_has(const char *const *ids, size_t n, const char *id);

/* Checks one entry against the file's field rules (id of KEY_ID_LEN base62
 * chars, route 1..KS_ROUTE_MAX of [A-Za-z0-9_-], 1..KS_ROUTES_MAX distinct
 * routes beginning with <route>, owner <= KS_OWNER_MAX printable chars,
 * alias and tags as ks_alias_check and ks_tag_check say, at most
 * KS_TAGS_MAX tags with distinct names, rotated_from/rotated_to empty or a
 * key id, times >= 0). Returns 0, or -1 with a message in <err>. */
int ks_entry_check(const struct ks_entry *e, char *err, size_t errlen);

/* Reference counting (atomic; any thread). ks_set_unref(NULL) is a no-op. */
struct ks_set *ks_set_ref(struct ks_set *s);
void ks_set_unref(struct ks_set *s);

/* ---- the file, for keyauthctl ----------------------------------------------
 * ks_file_lock takes an exclusive flock on "<path>.lock" (created 0600) and
 * returns its fd, or -1 with <err>; holding the lock, it removes temporary
 * files left by writers that died before their rename. ks_file_write writes <n> entries to a
 * temporary file in the same directory, fsyncs it, renames it over <path>,
 * fsyncs the directory; mode 0600. Returns 0 or -1 with <err>; on failure
 * the old file is untouched. */
int ks_file_lock(const char *path, char *err, size_t errlen);
void ks_file_unlock(int fd);
int ks_file_write(const char *path, const struct ks_entry *v, size_t n, char *err, size_t errlen);

/* ks_file_write with the file's generation counter set to <generation>
 * (ks_file_write writes 0). Entries that would not load back (field rules,
 * duplicate digests or ids) are refused before anything is written. */
int ks_file_write_gen(const char *path, const struct ks_entry *v, size_t n,
                      uint64_t generation, char *err, size_t errlen);

#endif /* AGENT_KEYSTORE_H */
