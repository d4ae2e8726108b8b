/* SPDX-License-Identifier: Apache-2.0 */
/*
 * keystore-int: what the parts of the keystore share (keystore.c: the
 * in-memory set, its field rules and lookups; keystore_load.c: the msgpack
 * decoder and validator, ks_set_load and ks_set_parse; keystore_write.c: the
 * lock, the packer and the atomic file replacement). Not for use outside
 * keystore*.c: the rest of the program sees only keystore.h.
 */
#ifndef AGENT_KEYSTORE_INT_H
#define AGENT_KEYSTORE_INT_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "keystore.h"

#define KS_MAX_KEYS      (1UL << 28)               /* keeps 2n slots within uint32 */

/*
 * ---- the in-memory set -------------------------------------------------------
 *
 * <ents> holds the entries in file order; their strings live in one pool.
 * Two open-addressing tables (linear probing, capacity a power of two >= 2n,
 * so probes stay short and always end on an empty slot) map to entry index + 1,
 * 0 meaning empty: <slots> is probed from the digest's first 8 bytes (SHA-256
 * output is uniform, so no further hashing is needed; an attacker choosing
 * keys cannot choose digests), <id_slots> from a 64-bit FNV-1a of the id.
 * Each slot also keeps 32 other bits of the hash as a tag, so a probe reads
 * the entry (a cache miss in a large set) only when the tag matches: an
 * unknown key costs one table cache line, not one entry per probe.
 * 1,000,000 keys take 96 MB of entries, 2 x 16 MB of tables and the pool.
 */
struct ks_slot {
	uint32_t idx;                    /* entry index + 1, 0 = empty */
	uint32_t tag;                    /* digest bytes 8..11, or id hash >> 32 */
};

struct ks_set {
	_Atomic unsigned long refs;      /* last ks_set_unref frees */
	uint64_t generation;             /* from the file; 0 when built in memory */
	size_t n;                        /* entries in use */
	size_t cap;                      /* entries allocated */
	struct ks_entry *ents;
	char *pool;                      /* NUL-terminated strings of the entries */
	size_t pool_len, pool_used;
	struct ks_slot *slots;           /* digest table */
	struct ks_slot *id_slots;        /* id table */
	size_t mask;                     /* table capacity - 1 */
	bool deny_all;                   /* ks_set_deny_all's sentinel */
	/* An overlay (keystore_overlay.c): <base>, a plain set (one reference
	 * held), seen through this set's own entries <ents> (the records
	 * changed since <base> was built) and <masks> (the base entries those
	 * changes hide: changed or deleted ids). Both tables index the own
	 * entries (idx) and the masks (idx | KS_SLOT_MASK; a mask's digest or
	 * id is left out when an own entry has it): a lookup probes them
	 * first, then <base>. NULL <base>: a plain set, no masks. */
	struct ks_set *base;
	struct ks_mask *masks;
	size_t nmask;
};

#define KS_SLOT_MASK     0x80000000u               /* slot idx: a mask, not an entry */

/* A base entry hidden by an overlay: its digest and id. */
struct ks_mask {
	uint8_t digest[KEY_DIGEST_LEN];
	char id[KEY_ID_LEN + 1];
};

/* Entries copied into sets (ks_set_add) and masks laid out, since start:
 * ks_entries_copied(). */
extern _Atomic uint64_t ks_copied;

/* The fields of an entry in the file, in the order the writer packs them
 * (the loader tries that order first). The first KS_F_REQUIRED are in every
 * entry; the others only when the key has them (so a file using none of
 * them is read by an older agent as well). */
enum {
	KS_F_ID = 0, KS_F_DIGEST, KS_F_ROUTE, KS_F_OWNER,
	KS_F_CREATED, KS_F_EXPIRES, KS_F_REVOKED, KS_F_RPM,
	KS_F_REQUIRED,
	KS_F_ROUTES = KS_F_REQUIRED, KS_F_ALIAS, KS_F_TAGS, KS_F_ROTATED_FROM, KS_F_ROTATED_TO,
	KS_F_SCOPES,
	KS_F_ENTRIES
};

/* A string as (pointer, length): msgpack slices need no copy. */
struct ks_slice {
	const char *p;
	size_t len;
};

/* One entry's fields as the loader and builder hand them to ks_check_raw
 * and ks_set_add. <routes> and <tags> are ','-joined lists (keystore.h);
 * an empty <routes> means <route> alone. */
struct ks_raw_entry {
	const uint8_t *digest;
	struct ks_slice id, route, routes, owner, alias, tags, rotated_from, rotated_to;
	int64_t created, expires, revoked;
	uint32_t rpm;
	uint32_t scopes;                 /* KS_SCOPE_* bits, 0 = none */
};

/* ---- shared helpers (keystore.c) ---- */

/* The id table's hash: 64-bit FNV-1a. */
static inline uint64_t
ks_id_hash(const char *id, size_t len)
{
	uint64_t h = 14695981039346656037u;

	for (size_t i = 0; i < len; i++)
		h = (h ^ (unsigned char)id[i]) * 1099511628211u;
	return h;
}

/* Slot position and tag of a digest: independent bits of a uniform hash. */
static inline uint64_t
ks_digest_pos(const uint8_t *digest)
{
	uint64_t h;

	memcpy(&h, digest, sizeof(h));
	return h;
}

static inline uint32_t
ks_digest_tag(const uint8_t *digest)
{
	uint32_t t;

	memcpy(&t, digest + 8, sizeof(t));
	return t;
}

/* Formats into <err> (nothing when <err> is NULL or <errlen> is 0). */
void ks_err(char *err, size_t errlen, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* Copies at most 40 bytes of untrusted <p>/<len> into <buf> for an error
 * message, with non-printable bytes shown as '?'. */
const char *ks_printable(char buf[48], const char *p, size_t len);

/* The field rules shared by the loader, ks_entry_check and the writer.
 * Returns 0, or -1 with a message (no path) in <err>. */
int ks_check_raw(const struct ks_raw_entry *r, char *err, size_t errlen);

/* <e> as a raw entry (NULL strings as ""). */
void ks_raw_from_entry(struct ks_raw_entry *r, const struct ks_entry *e);

/* A set with room for <n> entries and an initial <pool_len> bytes of
 * strings (the pool grows when the loader needs more), one reference;
 * NULL when out of memory or <n> > KS_MAX_KEYS. */
struct ks_set *ks_set_alloc(size_t n, size_t pool_len);
void ks_set_free(struct ks_set *s);

/* Appends one entry (strings copied into the pool) and indexes it. Until
 * ks_set_finish, the entry's strings hold pool offsets. Returns 0, or -1 with
 * a message on a duplicate digest or id, or when out of memory. */
int ks_set_add(struct ks_set *s, const struct ks_raw_entry *r, char *err, size_t errlen);

/* Trims the pool to its use, then turns the entries' offsets into pointers. */
void ks_set_finish(struct ks_set *s);

#endif /* AGENT_KEYSTORE_INT_H */
