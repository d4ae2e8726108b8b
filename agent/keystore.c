/* SPDX-License-Identifier: Apache-2.0 */
/*
 * keystore: the immutable key set, its msgpack file loader and writer.
 *
 * A set is built once (by the loader, off the request path) and never
 * changed; workers read it without locks and drop their reference when a
 * newer set is published. The loader never prints: every problem becomes
 * "path: message" in the caller's buffer. The writer is used by keyauthctl
 * only, under ks_file_lock.
 */
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <msgpack.h>
#include <openssl/crypto.h>

#include "keystore.h"

/*
 * ---- the file format ---------------------------------------------------------
 *
 * One msgpack map, nothing before or after it:
 *
 *   {
 *     "version":    1,                  uint; anything else is refused by name
 *     "generation": uint,               bumped by each keyauthctl write
 *     "keys": [                         array, file order = ks_entry_at order
 *       { "id":      str,               KEY_ID_LEN chars of [0-9A-Za-z]
 *         "digest":  bin(32),           SHA-256 of the key; never the key
 *         "route":   str,               1..KS_ROUTE_MAX chars of [A-Za-z0-9_-]
 *         "owner":   str,               0..KS_OWNER_MAX printable ASCII (0x20..0x7e)
 *         "created": int,               Unix seconds, >= 0
 *         "expires": int,               Unix seconds, >= 0; 0 = never
 *         "revoked": int,               Unix seconds, >= 0; 0 = not revoked
 *         "rpm":     uint },            <= UINT32_MAX; 0 = no limit
 *       ...
 *     ]
 *   }
 *
 * Validation is strict, for the file is written only by keyauthctl: every
 * field must be present exactly once with its type, and an unknown field in
 * the top-level map or in an entry is an error rather than ignored (a newer
 * format bumps "version", so an old agent refuses it loudly instead of
 * silently serving a subset of its meaning). Digests and ids must be unique.
 * Map key order is free. Files larger than KS_FILE_MAX are refused before
 * being read.
 */
#define KS_FILE_MAX      (1024UL * 1024 * 1024)   /* 1 GiB, ~7M keys */
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
	char *pool;                      /* NUL-terminated routes and owners */
	size_t pool_len, pool_used;
	struct ks_slot *slots;           /* digest table */
	struct ks_slot *id_slots;        /* id table */
	size_t mask;                     /* table capacity - 1 */
	bool deny_all;                   /* ks_set_deny_all's sentinel */
};

static void ks_err(char *err, size_t errlen, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void
ks_err(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (err == NULL || errlen == 0)
		return;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

/* Copies at most 40 bytes of untrusted <p>/<len> into <buf> for an error
 * message, with non-printable bytes shown as '?'. */
static const char *
ks_printable(char buf[48], const char *p, size_t len)
{
	size_t i, m = len > 40 ? 40 : len;

	for (i = 0; i < m; i++) {
		unsigned char c = (unsigned char)p[i];
		buf[i] = (c >= 0x20 && c < 0x7f && c != '"') ? (char)c : '?';
	}
	if (m < len) {
		memcpy(buf + m, "...", 3);
		m += 3;
	}
	buf[m] = '\0';
	return buf;
}

static uint64_t
ks_id_hash(const char *id, size_t len)
{
	uint64_t h = 14695981039346656037u;

	for (size_t i = 0; i < len; i++)
		h = (h ^ (unsigned char)id[i]) * 1099511628211u;
	return h;
}

/* Slot position and tag of a digest: independent bits of a uniform hash. */
static uint64_t
ks_digest_pos(const uint8_t *digest)
{
	uint64_t h;

	memcpy(&h, digest, sizeof(h));
	return h;
}

static uint32_t
ks_digest_tag(const uint8_t *digest)
{
	uint32_t t;

	memcpy(&t, digest + 8, sizeof(t));
	return t;
}

static bool
ks_is_b62(unsigned char c)
{
	return (c >= '0' && c <= '9') || (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z');
}

/*
 * The field rules shared by the loader, ks_entry_check and the writer.
 * Strings as (pointer, length) so that msgpack slices need no copy.
 * Returns 0, or -1 with a message (no path) in <err>.
 */
static int
ks_check_fields(const char *id, size_t idlen, const char *route, size_t rlen,
                const char *owner, size_t olen, int64_t created, int64_t expires,
                int64_t revoked, char *err, size_t errlen)
{
	char pb[48];

	if (idlen != KEY_ID_LEN) {
		ks_err(err, errlen, "id \"%s\" is %zu characters, expected %d",
		       ks_printable(pb, id, idlen), idlen, KEY_ID_LEN);
		return -1;
	}
	for (size_t i = 0; i < idlen; i++)
		if (!ks_is_b62((unsigned char)id[i])) {
			ks_err(err, errlen, "id \"%s\" has a character outside [0-9A-Za-z]",
			       ks_printable(pb, id, idlen));
			return -1;
		}
	if (rlen == 0 || rlen > KS_ROUTE_MAX) {
		ks_err(err, errlen, "route is %zu characters, expected 1..%d", rlen, KS_ROUTE_MAX);
		return -1;
	}
	for (size_t i = 0; i < rlen; i++) {
		unsigned char c = (unsigned char)route[i];
		if (!ks_is_b62(c) && c != '_' && c != '-') {
			ks_err(err, errlen, "route \"%s\" has a character outside [A-Za-z0-9_-]",
			       ks_printable(pb, route, rlen));
			return -1;
		}
	}
	if (olen > KS_OWNER_MAX) {
		ks_err(err, errlen, "owner is %zu characters, at most %d allowed", olen, KS_OWNER_MAX);
		return -1;
	}
	for (size_t i = 0; i < olen; i++) {
		unsigned char c = (unsigned char)owner[i];
		if (c < 0x20 || c > 0x7e) {
			ks_err(err, errlen, "owner \"%s\" has a non-printable character",
			       ks_printable(pb, owner, olen));
			return -1;
		}
	}
	if (created < 0 || expires < 0 || revoked < 0) {
		ks_err(err, errlen, "negative time (created, expires and revoked are Unix seconds >= 0)");
		return -1;
	}
	return 0;
}

int
ks_entry_check(const struct ks_entry *e, char *err, size_t errlen)
{
	if (e->route == NULL) {
		ks_err(err, errlen, "no route");
		return -1;
	}
	return ks_check_fields(e->id, strnlen(e->id, sizeof(e->id)), e->route, strlen(e->route),
	                       e->owner ? e->owner : "", e->owner ? strlen(e->owner) : 0,
	                       e->created, e->expires, e->revoked, err, errlen);
}

/* ---- building a set ---------------------------------------------------------- */

static void
ks_set_free(struct ks_set *s)
{
	if (s == NULL)
		return;
	free(s->ents);
	free(s->pool);
	free(s->slots);
	free(s->id_slots);
	free(s);
}

/*
 * Asks for transparent huge pages on a large table. A lookup touches one
 * random slot and one random entry; with a million keys those are spread
 * over ~100 MB, and with 4 KiB pages nearly every lookup also misses the
 * TLB. 2 MiB pages cut that page-walk cost (measured: BENCHMARKS.md).
 * Advice only: without THP nothing changes.
 */
static void
ks_hint_huge(void *p, size_t len)
{
	uintptr_t a = ((uintptr_t)p + 4095) & ~(uintptr_t)4095;
	uintptr_t e = ((uintptr_t)p + len) & ~(uintptr_t)4095;

	if (p != NULL && len >= (4u << 20) && e > a)
		madvise((void *)a, e - a, MADV_HUGEPAGE);
}

/* A set with room for <n> entries and an initial <pool_len> bytes of
 * strings (the pool grows when the loader needs more), one reference. */
static struct ks_set *
ks_set_alloc(size_t n, size_t pool_len)
{
	struct ks_set *s = calloc(1, sizeof(*s));
	size_t cap = 8;

	if (s == NULL || n > KS_MAX_KEYS)
		goto fail;
	atomic_init(&s->refs, 1);
	while (cap < 2 * n)
		cap *= 2;
	s->mask = cap - 1;
	s->cap = n;
	s->pool_len = pool_len ? pool_len : 1;
	s->ents = malloc((n ? n : 1) * sizeof(*s->ents));
	s->pool = malloc(s->pool_len);
	s->slots = calloc(cap, sizeof(*s->slots));
	s->id_slots = calloc(cap, sizeof(*s->id_slots));
	if (s->ents == NULL || s->pool == NULL || s->slots == NULL || s->id_slots == NULL)
		goto fail;
	ks_hint_huge(s->ents, (n ? n : 1) * sizeof(*s->ents));
	ks_hint_huge(s->slots, cap * sizeof(*s->slots));
	ks_hint_huge(s->id_slots, cap * sizeof(*s->id_slots));
	return s;
fail:
	ks_set_free(s);
	return NULL;
}

/*
 * Copies a string into the pool and returns its offset, or SIZE_MAX when
 * out of memory. Offsets, not pointers, because the pool may move while it
 * grows; ks_set_finish turns them into pointers once it is final.
 */
static size_t
ks_pool_add(struct ks_set *s, const char *p, size_t len)
{
	size_t off = s->pool_used;

	if (s->pool_len - s->pool_used < len + 1) {
		size_t nl = s->pool_len;
		char *np;
		while (nl - s->pool_used < len + 1)
			nl *= 2;
		if ((np = realloc(s->pool, nl)) == NULL)
			return SIZE_MAX;
		s->pool = np;
		s->pool_len = nl;
	}
	memcpy(s->pool + off, p, len);
	s->pool[off + len] = '\0';
	s->pool_used += len + 1;
	return off;
}

/*
 * Appends one entry (strings copied into the pool) and indexes it. Until
 * ks_set_finish, the entry's route and owner hold pool offsets. Returns 0, or
 * -1 with a message on a duplicate digest or id, or when out of memory.
 */
static int
ks_set_add(struct ks_set *s, const uint8_t *digest, const char *id, size_t idlen,
           const char *route, size_t rlen, const char *owner, size_t olen,
           int64_t created, int64_t expires, int64_t revoked, uint32_t rpm,
           char *err, size_t errlen)
{
	struct ks_entry *e = &s->ents[s->n];
	uint32_t dtag = ks_digest_tag(digest);
	uint64_t ih = ks_id_hash(id, idlen);
	size_t i, j, roff, ooff;

	if (s->n == s->cap || idlen > KEY_ID_LEN) {
		ks_err(err, errlen, s->n == s->cap ? "more entries than announced" :
		       "id longer than %d characters", KEY_ID_LEN);
		return -1;
	}
	for (i = ks_digest_pos(digest) & s->mask; s->slots[i].idx != 0; i = (i + 1) & s->mask) {
		const struct ks_entry *o = &s->ents[s->slots[i].idx - 1];
		if (s->slots[i].tag == dtag && CRYPTO_memcmp(o->digest, digest, KEY_DIGEST_LEN) == 0) {
			ks_err(err, errlen, "keys %s and %.*s have the same digest",
			       o->id, (int)idlen, id);
			return -1;
		}
	}
	for (j = ih & s->mask; s->id_slots[j].idx != 0; j = (j + 1) & s->mask) {
		const struct ks_entry *o = &s->ents[s->id_slots[j].idx - 1];
		if (s->id_slots[j].tag == (uint32_t)(ih >> 32) &&
		    memcmp(o->id, id, idlen) == 0 && o->id[idlen] == '\0') {
			ks_err(err, errlen, "duplicate key id %s", o->id);
			return -1;
		}
	}
	if ((roff = ks_pool_add(s, route, rlen)) == SIZE_MAX ||
	    (ooff = ks_pool_add(s, owner, olen)) == SIZE_MAX) {
		ks_err(err, errlen, "out of memory");
		return -1;
	}
	memcpy(e->digest, digest, KEY_DIGEST_LEN);
	memset(e->id, 0, sizeof(e->id));
	memcpy(e->id, id, idlen);
	e->route = (const char *)(uintptr_t)roff;
	e->owner = (const char *)(uintptr_t)ooff;
	e->created = created;
	e->expires = expires;
	e->revoked = revoked;
	e->rpm = rpm;
	s->n++;
	s->slots[i].idx = (uint32_t)s->n;
	s->slots[i].tag = dtag;
	s->id_slots[j].idx = (uint32_t)s->n;
	s->id_slots[j].tag = (uint32_t)(ih >> 32);
	return 0;
}

/* Trims the pool to its use, then turns the entries' offsets into pointers. */
static void
ks_set_finish(struct ks_set *s)
{
	char *np;

	if (s->pool_used > 0 && s->pool_used < s->pool_len &&
	    (np = realloc(s->pool, s->pool_used)) != NULL) {
		s->pool = np;
		s->pool_len = s->pool_used;
	}
	for (size_t i = 0; i < s->n; i++) {
		s->ents[i].route = s->pool + (uintptr_t)s->ents[i].route;
		s->ents[i].owner = s->pool + (uintptr_t)s->ents[i].owner;
	}
}

struct ks_set *
ks_set_empty(void)
{
	return ks_set_alloc(0, 0);
}

struct ks_set *
ks_set_deny_all(void)
{
	struct ks_set *s = ks_set_alloc(0, 0);

	if (s != NULL)
		s->deny_all = true;
	return s;
}

bool
ks_set_denies_all(const struct ks_set *s)
{
	return s != NULL && s->deny_all;
}

/*
 * Only uniqueness is enforced here (and a route is required); the field
 * rules of the file are ks_entry_check's, applied by the loader and writer.
 */
struct ks_set *
ks_set_build(const struct ks_entry *v, size_t n, char *err, size_t errlen)
{
	struct ks_set *s;
	size_t pool = 0;

	for (size_t i = 0; i < n; i++) {
		if (v[i].route == NULL) {
			ks_err(err, errlen, "entry %zu: no route", i);
			return NULL;
		}
		pool += strlen(v[i].route) + 1 + (v[i].owner ? strlen(v[i].owner) : 0) + 1;
	}
	if ((s = ks_set_alloc(n, pool)) == NULL) {
		ks_err(err, errlen, n > KS_MAX_KEYS ? "too many keys" : "out of memory");
		return NULL;
	}
	for (size_t i = 0; i < n; i++) {
		const char *owner = v[i].owner ? v[i].owner : "";
		char msg[160];
		if (ks_set_add(s, v[i].digest, v[i].id, strnlen(v[i].id, sizeof(v[i].id)),
		               v[i].route, strlen(v[i].route), owner, strlen(owner),
		               v[i].created, v[i].expires, v[i].revoked, v[i].rpm,
		               msg, sizeof(msg)) == -1) {
			ks_err(err, errlen, "entry %zu: %s", i, msg);
			ks_set_free(s);
			return NULL;
		}
	}
	ks_set_finish(s);
	return s;
}

/* ---- queries (any thread, no locks) ----------------------------------------- */

const struct ks_entry *
ks_lookup(const struct ks_set *s, const uint8_t digest[KEY_DIGEST_LEN])
{
	uint32_t tag;

	if (s == NULL || s->n == 0)
		return NULL;
	tag = ks_digest_tag(digest);
	for (size_t i = ks_digest_pos(digest) & s->mask; s->slots[i].idx != 0; i = (i + 1) & s->mask) {
		const struct ks_entry *e = &s->ents[s->slots[i].idx - 1];
		if (s->slots[i].tag == tag && CRYPTO_memcmp(e->digest, digest, KEY_DIGEST_LEN) == 0)
			return e;
	}
	return NULL;
}

const struct ks_entry *
ks_find_id(const struct ks_set *s, const char *id)
{
	uint64_t h;
	size_t len;

	if (s == NULL || s->n == 0 || id == NULL || (len = strlen(id)) > KEY_ID_LEN)
		return NULL;
	h = ks_id_hash(id, len);
	for (size_t i = h & s->mask; s->id_slots[i].idx != 0; i = (i + 1) & s->mask) {
		const struct ks_entry *e = &s->ents[s->id_slots[i].idx - 1];
		if (s->id_slots[i].tag == (uint32_t)(h >> 32) && strcmp(e->id, id) == 0)
			return e;
	}
	return NULL;
}

size_t
ks_count(const struct ks_set *s)
{
	return s ? s->n : 0;
}

const struct ks_entry *
ks_entry_at(const struct ks_set *s, size_t i)
{
	return (s && i < s->n) ? &s->ents[i] : NULL;
}

uint64_t
ks_generation(const struct ks_set *s)
{
	return s ? s->generation : 0;
}

struct ks_set *
ks_set_ref(struct ks_set *s)
{
	if (s)
		atomic_fetch_add_explicit(&s->refs, 1, memory_order_relaxed);
	return s;
}

/* Release on the decrement and acquire before the free, so that every
 * reader's accesses happen before the memory is released. */
void
ks_set_unref(struct ks_set *s)
{
	if (s == NULL)
		return;
	if (atomic_fetch_sub_explicit(&s->refs, 1, memory_order_release) == 1) {
		atomic_thread_fence(memory_order_acquire);
		ks_set_free(s);
	}
}

/* ---- loading ------------------------------------------------------------------ */

enum {
	KS_F_ID = 0, KS_F_DIGEST, KS_F_ROUTE, KS_F_OWNER,
	KS_F_CREATED, KS_F_EXPIRES, KS_F_REVOKED, KS_F_RPM, KS_F_ENTRIES
};

static const char *const ks_field_names[KS_F_ENTRIES] = {
	"id", "digest", "route", "owner", "created", "expires", "revoked", "rpm",
};

/* One entry as found in the file: slices into the unpacked buffer. */
struct ks_raw {
	const msgpack_object_str *id, *route, *owner;
	const msgpack_object_bin *digest;
	int64_t created, expires, revoked;
	uint32_t rpm;
};

static bool
ks_key_is(const msgpack_object *k, const char *name)
{
	size_t len = strlen(name);

	return k->type == MSGPACK_OBJECT_STR && k->via.str.size == len &&
	       memcmp(k->via.str.ptr, name, len) == 0;
}

/* Field index of entry key <k>, or KS_F_ENTRIES if unknown. The writer's
 * order is tried first (<hint>), which makes the usual case one compare. */
static int
ks_field_find(const msgpack_object *k, uint32_t hint)
{
	if (k->type != MSGPACK_OBJECT_STR)
		return KS_F_ENTRIES;
	if (hint < KS_F_ENTRIES && ks_key_is(k, ks_field_names[hint]))
		return (int)hint;
	for (int f = 0; f < KS_F_ENTRIES; f++)
		if (ks_key_is(k, ks_field_names[f]))
			return f;
	return KS_F_ENTRIES;
}

/* Time fields: a non-negative integer that fits int64. */
static int
ks_get_time(const msgpack_object *o, int64_t *out)
{
	if (o->type != MSGPACK_OBJECT_POSITIVE_INTEGER || o->via.u64 > (uint64_t)INT64_MAX)
		return -1;
	*out = (int64_t)o->via.u64;
	return 0;
}

/*
 * Parses and validates entry <o> into <r>. Returns 0, or -1 with a message
 * (without path or index) in <err>.
 */
static int
ks_parse_entry(const msgpack_object *o, struct ks_raw *r, char *err, size_t errlen)
{
	unsigned seen = 0;
	char pb[48];

	memset(r, 0, sizeof(*r));
	if (o->type != MSGPACK_OBJECT_MAP) {
		ks_err(err, errlen, "not a map");
		return -1;
	}
	for (uint32_t i = 0; i < o->via.map.size; i++) {
		const msgpack_object *k = &o->via.map.ptr[i].key;
		const msgpack_object *v = &o->via.map.ptr[i].val;
		int f;

		if ((f = ks_field_find(k, i)) == KS_F_ENTRIES) {
			if (k->type == MSGPACK_OBJECT_STR)
				ks_err(err, errlen, "unknown field \"%s\"",
				       ks_printable(pb, k->via.str.ptr, k->via.str.size));
			else
				ks_err(err, errlen, "a field name is not a string");
			return -1;
		}
		if (seen & (1u << f)) {
			ks_err(err, errlen, "field \"%s\" appears twice", ks_field_names[f]);
			return -1;
		}
		seen |= 1u << f;
		switch (f) {
		case KS_F_ID:
		case KS_F_ROUTE:
		case KS_F_OWNER:
			if (v->type != MSGPACK_OBJECT_STR)
				goto type;
			if (f == KS_F_ID)
				r->id = &v->via.str;
			else if (f == KS_F_ROUTE)
				r->route = &v->via.str;
			else
				r->owner = &v->via.str;
			break;
		case KS_F_DIGEST:
			if (v->type != MSGPACK_OBJECT_BIN)
				goto type;
			if (v->via.bin.size != KEY_DIGEST_LEN) {
				ks_err(err, errlen, "digest is %u bytes, expected %d",
				       v->via.bin.size, KEY_DIGEST_LEN);
				return -1;
			}
			r->digest = &v->via.bin;
			break;
		case KS_F_CREATED:
			if (ks_get_time(v, &r->created) == -1)
				goto type;
			break;
		case KS_F_EXPIRES:
			if (ks_get_time(v, &r->expires) == -1)
				goto type;
			break;
		case KS_F_REVOKED:
			if (ks_get_time(v, &r->revoked) == -1)
				goto type;
			break;
		default: /* KS_F_RPM */
			if (v->type != MSGPACK_OBJECT_POSITIVE_INTEGER || v->via.u64 > UINT32_MAX)
				goto type;
			r->rpm = (uint32_t)v->via.u64;
			break;
		}
		continue;
type:
		ks_err(err, errlen, "field \"%s\" must be %s", ks_field_names[f],
		       f == KS_F_DIGEST ? "binary" :
		       f == KS_F_RPM ? "an unsigned 32-bit integer" :
		       f >= KS_F_CREATED ? "a non-negative integer" : "a string");
		return -1;
	}
	for (int f = 0; f < KS_F_ENTRIES; f++)
		if (!(seen & (1u << f))) {
			ks_err(err, errlen, "missing field \"%s\"", ks_field_names[f]);
			return -1;
		}
	return ks_check_fields(r->id->ptr, r->id->size, r->route->ptr, r->route->size,
	                       r->owner->ptr, r->owner->size, r->created, r->expires,
	                       r->revoked, err, errlen);
}

/* Reads the whole regular file <fd> into a new buffer. Returns 0, or -1 with a
 * message. A file that shrinks while read is returned short (and then fails
 * as truncated); growth past the size seen by fstat is ignored. */
static int
ks_read_all(int fd, char **out, size_t *outlen, char *err, size_t errlen)
{
	struct stat st;
	size_t size, got = 0;
	char *buf;

	if (fstat(fd, &st) == -1) {
		ks_err(err, errlen, "fstat: %s", strerror(errno));
		return -1;
	}
	if (S_ISDIR(st.st_mode)) {
		ks_err(err, errlen, "is a directory, not a key store file");
		return -1;
	}
	if (!S_ISREG(st.st_mode)) {
		ks_err(err, errlen, "not a regular file");
		return -1;
	}
	if ((uint64_t)st.st_size > KS_FILE_MAX) {
		ks_err(err, errlen, "file is %lld bytes, more than the %lu byte limit",
		       (long long)st.st_size, KS_FILE_MAX);
		return -1;
	}
	size = (size_t)st.st_size;
	if (size == 0) {
		ks_err(err, errlen, "empty file (a key store holds at least its version)");
		return -1;
	}
	if ((buf = malloc(size)) == NULL) {
		ks_err(err, errlen, "out of memory reading %zu bytes", size);
		return -1;
	}
	while (got < size) {
		ssize_t r = read(fd, buf + got, size - got);
		if (r == -1 && errno == EINTR)
			continue;
		if (r == -1) {
			ks_err(err, errlen, "read: %s", strerror(errno));
			free(buf);
			return -1;
		}
		if (r == 0)
			break;
		got += (size_t)r;
	}
	*out = buf;
	*outlen = got;
	return 0;
}

/*
 * ---- walking the file ---------------------------------------------------------
 *
 * WHY NOT ONE msgpack_unpack_next OVER THE WHOLE FILE: msgpack-c's C API
 * decodes whole objects into a tree of 24-byte msgpack_objects, about 400
 * bytes per key: 400 MB of short-lived memory, and most of the load time,
 * for 1,000,000 keys. So the two containers of the format (the top-level map
 * and the "keys" array) are stepped through by reading only their headers
 * here (ks_read_header), and every element inside them -- each top-level key
 * and value, each entry map -- is decoded on its own by msgpack_unpack_next,
 * which frees the previous element's small zone first. Decoding stays the
 * library's; the loader just never holds more than one entry's tree.
 * LIMIT: msgpack-c allocates count x 24 bytes when it meets a container
 * header, before reading the elements, so a corrupt count nested inside an
 * entry can ask for a large allocation (failing as "out of memory"); the
 * "keys" count itself is checked against the bytes left (KS_ENTRY_MIN_BYTES).
 */

/* A valid entry takes over 100 bytes (its eight field names alone take 50);
 * a "keys" header announcing more entries than the rest of the file could
 * hold at this size is refused before anything is allocated for them. */
#define KS_ENTRY_MIN_BYTES 64

struct ks_loader {
	const char *buf;                 /* the whole file */
	size_t len;
	size_t off;                      /* next byte to decode */
	msgpack_unpacked up;             /* the element decoded last */
	char *err;                       /* message without the path */
	size_t errlen;
};

enum { KS_HDR_OK = 0, KS_HDR_SHORT = -1, KS_HDR_OTHER = -2 };

/*
 * Reads a map (<map>) or array header at ld->off: fix (1 byte), 16-bit
 * (0xde/0xdc + 2 bytes) or 32-bit (0xdf/0xdd + 4 bytes) count, big-endian.
 * Returns KS_HDR_OK and advances past it, KS_HDR_SHORT if the bytes end
 * first, or KS_HDR_OTHER if another type starts there (nothing consumed).
 */
static int
ks_read_header(struct ks_loader *ld, bool map, uint32_t *count)
{
	const uint8_t *p = (const uint8_t *)ld->buf + ld->off;
	size_t avail = ld->len - ld->off, hl;

	if (avail < 1)
		return KS_HDR_SHORT;
	if ((p[0] & 0xf0) == (map ? 0x80 : 0x90)) {
		*count = p[0] & 0x0f;
		ld->off += 1;
		return KS_HDR_OK;
	}
	if (p[0] == (map ? 0xde : 0xdc))
		hl = 3;
	else if (p[0] == (map ? 0xdf : 0xdd))
		hl = 5;
	else
		return KS_HDR_OTHER;
	if (avail < hl)
		return KS_HDR_SHORT;
	*count = 0;
	for (size_t i = 1; i < hl; i++)
		*count = (*count << 8) | p[i];
	ld->off += hl;
	return KS_HDR_OK;
}

/* Decodes the next element into ld->up.data. Returns 0, or -1 with a message. */
static int
ks_next(struct ks_loader *ld)
{
	size_t at = ld->off;

	switch (msgpack_unpack_next(&ld->up, ld->buf, ld->len, &ld->off)) {
	case MSGPACK_UNPACK_SUCCESS:
	case MSGPACK_UNPACK_EXTRA_BYTES:
		return 0;
	case MSGPACK_UNPACK_CONTINUE:
		ks_err(ld->err, ld->errlen, "truncated (%zu bytes; the msgpack object at offset %zu is incomplete)",
		       ld->len, at);
		return -1;
	case MSGPACK_UNPACK_NOMEM_ERROR:
		ks_err(ld->err, ld->errlen, "out of memory decoding offset %zu (or a corrupt length)", at);
		return -1;
	default:
		ks_err(ld->err, ld->errlen, "corrupt: not valid msgpack at offset %zu", at);
		return -1;
	}
}

/* Decodes and validates <n> entries from ld->off into a new set, or skips
 * them when <skip>. Returns the set (or a placeholder empty set when
 * skipping), or NULL with a message. */
static struct ks_set *
ks_load_entries(struct ks_loader *ld, uint32_t n, bool skip)
{
	struct ks_set *s;
	struct ks_raw r;
	char msg[200];

	if ((s = ks_set_alloc(skip ? 0 : n, skip ? 0 : (size_t)n * 32)) == NULL) {
		ks_err(ld->err, ld->errlen, "%u keys: %s", n, n > KS_MAX_KEYS ? "too many keys" : "out of memory");
		return NULL;
	}
	for (uint32_t i = 0; i < n; i++) {
		if (ks_next(ld) == -1)
			goto fail;
		if (skip)
			continue;
		if (ks_parse_entry(&ld->up.data, &r, msg, sizeof(msg)) == -1 ||
		    ks_set_add(s, (const uint8_t *)r.digest->ptr, r.id->ptr, r.id->size,
		               r.route->ptr, r.route->size, r.owner->ptr, r.owner->size,
		               r.created, r.expires, r.revoked, r.rpm, msg, sizeof(msg)) == -1) {
			ks_err(ld->err, ld->errlen, "keys[%u]: %s", i, msg);
			goto fail;
		}
	}
	ks_set_finish(s);
	return s;
fail:
	ks_set_free(s);
	return NULL;
}

/*
 * Walks the top-level map, validates every field and entry, and returns the
 * new set, or NULL with a message. "version" is judged before any entry: if
 * "keys" comes first, its entries are only skipped until the version is
 * known good, so that a file from a newer keyauthctl is reported as such
 * rather than as a field error.
 */
static struct ks_set *
ks_parse(struct ks_loader *ld)
{
	struct ks_set *s = NULL;
	uint64_t generation = 0;
	uint32_t npairs, nkeys = 0;
	size_t keys_off = 0;
	unsigned seen = 0;              /* 1 version, 2 generation, 4 keys */
	bool deferred = false;
	char pb[48];
	int rc;

	if ((rc = ks_read_header(ld, true, &npairs)) != KS_HDR_OK) {
		if (rc == KS_HDR_OTHER && ks_next(ld) == 0)
			ks_err(ld->err, ld->errlen, "not a key store (top level is not a msgpack map)");
		else if (rc == KS_HDR_SHORT)
			ks_next(ld);            /* words "truncated" */
		return NULL;
	}
	for (uint32_t i = 0; i < npairs; i++) {
		const msgpack_object *o;
		const char *name;
		unsigned bit;

		if (ks_next(ld) == -1)
			goto fail;
		o = &ld->up.data;
		if (ks_key_is(o, "version"))
			bit = 1, name = "version";
		else if (ks_key_is(o, "generation"))
			bit = 2, name = "generation";
		else if (ks_key_is(o, "keys"))
			bit = 4, name = "keys";
		else {
			if (o->type == MSGPACK_OBJECT_STR)
				ks_err(ld->err, ld->errlen, "unknown top-level field \"%s\"",
				       ks_printable(pb, o->via.str.ptr, o->via.str.size));
			else
				ks_err(ld->err, ld->errlen, "a top-level field name is not a string");
			goto fail;
		}
		if (seen & bit) {
			ks_err(ld->err, ld->errlen, "top-level field \"%s\" appears twice", name);
			goto fail;
		}
		seen |= bit;
		if (bit == 4) {
			if ((rc = ks_read_header(ld, false, &nkeys)) == KS_HDR_OTHER) {
				ks_err(ld->err, ld->errlen, "\"keys\" is not an array");
				goto fail;
			}
			if (rc == KS_HDR_SHORT || nkeys > (ld->len - ld->off) / KS_ENTRY_MIN_BYTES) {
				ks_err(ld->err, ld->errlen, "truncated or corrupt: \"keys\" announces %u entries "
				       "in the %zu bytes left", nkeys, ld->len - ld->off);
				goto fail;
			}
			keys_off = ld->off;
			deferred = !(seen & 1);
			if ((s = ks_load_entries(ld, nkeys, deferred)) == NULL)
				goto fail;
			continue;
		}
		if (ks_next(ld) == -1)
			goto fail;
		o = &ld->up.data;
		if (o->type != MSGPACK_OBJECT_POSITIVE_INTEGER) {
			ks_err(ld->err, ld->errlen, "\"%s\" is not an unsigned integer", name);
			goto fail;
		}
		if (bit == 2)
			generation = o->via.u64;
		else if (o->via.u64 != KS_FILE_VERSION) {
			ks_err(ld->err, ld->errlen, "unsupported store version %llu (this keyauth reads version %d)",
			       (unsigned long long)o->via.u64, KS_FILE_VERSION);
			goto fail;
		}
	}
	if (!(seen & 1)) {
		ks_err(ld->err, ld->errlen, "no \"version\" field (not a key store?)");
		goto fail;
	}
	if ((seen & 6) != 6) {
		ks_err(ld->err, ld->errlen, "missing top-level field \"%s\"", (seen & 2) ? "keys" : "generation");
		goto fail;
	}
	if (ld->off != ld->len) {
		ks_err(ld->err, ld->errlen, "%zu unexpected bytes after the key store map at offset %zu",
		       ld->len - ld->off, ld->off);
		goto fail;
	}
	if (deferred) {
		ks_set_free(s);
		ld->off = keys_off;
		if ((s = ks_load_entries(ld, nkeys, false)) == NULL)
			return NULL;
	}
	s->generation = generation;
	return s;
fail:
	ks_set_free(s);
	return NULL;
}

/*
 * The file buffer is freed before returning, and malloc_trim hands freed
 * pages back, so that a daemon's resident size reflects the set, not the
 * load (glibc keeps small freed blocks otherwise).
 */
struct ks_set *
ks_set_load(const char *path, bool *missing, char *err, size_t errlen)
{
	struct ks_set *s;
	size_t len = 0;
	char *buf = NULL;
	char msg[256];
	int fd;

	if (missing)
		*missing = false;
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
	if (fd == -1) {
		if (errno == ENOENT) {
			if (missing)
				*missing = true;
			if ((s = ks_set_empty()) == NULL)
				ks_err(err, errlen, "%s: out of memory", path);
			return s;
		}
		ks_err(err, errlen, "%s: %s", path, strerror(errno));
		return NULL;
	}
	{
		struct stat st;

		/* Whoever can write the store can add keys: refuse a store that
		 * users other than its owner may write. */
		if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode) &&
		    (st.st_mode & (S_IWGRP | S_IWOTH)) != 0) {
			close(fd);
			ks_err(err, errlen, "%s: writable by group or others (mode %04o), so anyone "
			    "who can write it could add keys; fix: chmod 600 %s", path,
			    (unsigned)(st.st_mode & 07777), path);
			return NULL;
		}
	}
	if (ks_read_all(fd, &buf, &len, msg, sizeof(msg)) == -1) {
		close(fd);
		ks_err(err, errlen, "%s: %s", path, msg);
		return NULL;
	}
	close(fd);

	if ((s = ks_set_parse(buf, len, msg, sizeof(msg))) == NULL)
		ks_err(err, errlen, "%s: %s", path, msg);
	free(buf);
	malloc_trim(0);
	return s;
}

struct ks_set *
ks_set_parse(const void *buf, size_t len, char *err, size_t errlen)
{
	struct ks_loader ld = { .buf = buf, .len = len, .err = err, .errlen = errlen };
	struct ks_set *s;

	msgpack_unpacked_init(&ld.up);
	s = ks_parse(&ld);
	msgpack_unpacked_destroy(&ld.up);
	return s;
}

/* ---- writing (keyauthctl) ---------------------------------------------------- */

/*
 * Removes "<dir>/.<name>.XXXXXX" files left by writers that died between
 * mkstemp and rename (kill -9, power loss). Called with the lock held, so no
 * live writer can own one. Best effort: a failure here changes nothing else.
 */
static void
ks_file_remove_stale_temps(const char *path)
{
	const char *slash = strrchr(path, '/');
	const char *base = slash != NULL ? slash + 1 : path;
	size_t blen = strlen(base);
	char dir[4096];
	struct dirent *de;
	DIR *d;
	int dfd;

	if (slash == NULL) {
		strcpy(dir, ".");
	} else if (slash == path) {
		strcpy(dir, "/");
	} else {
		if ((size_t)(slash - path) >= sizeof(dir))
			return;
		memcpy(dir, path, (size_t)(slash - path));
		dir[slash - path] = '\0';
	}
	d = opendir(dir);
	if (d == NULL)
		return;
	dfd = dirfd(d);
	while ((de = readdir(d)) != NULL) {
		const char *n = de->d_name;

		if (n[0] == '.' && strlen(n) == 1 + blen + 1 + 6 &&
		    memcmp(n + 1, base, blen) == 0 && n[1 + blen] == '.')
			unlinkat(dfd, n, 0);
	}
	closedir(d);
}

int
ks_file_lock(const char *path, char *err, size_t errlen)
{
	size_t plen = strlen(path);
	char *lp = malloc(plen + sizeof(".lock"));
	int fd;

	if (lp == NULL) {
		ks_err(err, errlen, "%s: out of memory", path);
		return -1;
	}
	memcpy(lp, path, plen);
	memcpy(lp + plen, ".lock", sizeof(".lock"));
	fd = open(lp, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY, 0600);
	if (fd == -1) {
		ks_err(err, errlen, "%s: %s", lp, strerror(errno));
		free(lp);
		return -1;
	}
	while (flock(fd, LOCK_EX) == -1) {
		if (errno == EINTR)
			continue;
		ks_err(err, errlen, "%s: flock: %s", lp, strerror(errno));
		close(fd);
		free(lp);
		return -1;
	}
	free(lp);
	ks_file_remove_stale_temps(path);
	return fd;
}

void
ks_file_unlock(int fd)
{
	if (fd >= 0)
		close(fd);       /* drops the flock */
}

static int
ks_pack_str(msgpack_packer *pk, const char *s)
{
	size_t len = strlen(s);

	return msgpack_pack_str(pk, len) | msgpack_pack_str_body(pk, s, len);
}

/* Packs the whole file into <sb>. Returns 0, or -1 on allocation failure. */
static int
ks_pack(msgpack_sbuffer *sb, const struct ks_entry *v, size_t n, uint64_t generation)
{
	msgpack_packer pk;
	int rc = 0;

	msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
	rc |= msgpack_pack_map(&pk, 3);
	rc |= ks_pack_str(&pk, "version");
	rc |= msgpack_pack_uint32(&pk, KS_FILE_VERSION);
	rc |= ks_pack_str(&pk, "generation");
	rc |= msgpack_pack_uint64(&pk, generation);
	rc |= ks_pack_str(&pk, "keys");
	rc |= msgpack_pack_array(&pk, n);
	for (size_t i = 0; i < n && rc == 0; i++) {
		const struct ks_entry *e = &v[i];
		rc |= msgpack_pack_map(&pk, KS_F_ENTRIES);
		rc |= ks_pack_str(&pk, "id");
		rc |= ks_pack_str(&pk, e->id);
		rc |= ks_pack_str(&pk, "digest");
		rc |= msgpack_pack_bin(&pk, KEY_DIGEST_LEN);
		rc |= msgpack_pack_bin_body(&pk, e->digest, KEY_DIGEST_LEN);
		rc |= ks_pack_str(&pk, "route");
		rc |= ks_pack_str(&pk, e->route);
		rc |= ks_pack_str(&pk, "owner");
		rc |= ks_pack_str(&pk, e->owner ? e->owner : "");
		rc |= ks_pack_str(&pk, "created");
		rc |= msgpack_pack_int64(&pk, e->created);
		rc |= ks_pack_str(&pk, "expires");
		rc |= msgpack_pack_int64(&pk, e->expires);
		rc |= ks_pack_str(&pk, "revoked");
		rc |= msgpack_pack_int64(&pk, e->revoked);
		rc |= ks_pack_str(&pk, "rpm");
		rc |= msgpack_pack_uint32(&pk, e->rpm);
	}
	return rc == 0 ? 0 : -1;
}

static int
ks_write_all(int fd, const char *p, size_t len)
{
	while (len > 0) {
		ssize_t w = write(fd, p, len);
		if (w == -1 && errno == EINTR)
			continue;
		if (w == -1)
			return -1;
		p += w;
		len -= (size_t)w;
	}
	return 0;
}

int
ks_file_write(const char *path, const struct ks_entry *v, size_t n, char *err, size_t errlen)
{
	return ks_file_write_gen(path, v, n, 0, err, errlen);
}

/*
 * Refuses anything the loader would refuse (field rules, duplicates), so a
 * written file always loads. The temporary file is "<dir>/.<name>.XXXXXX",
 * created 0600 by mkostemp and fchmod'ed to be sure. If the final directory
 * fsync fails, the rename has already happened: the new file is in place but
 * may not survive a crash, and -1 is returned so the caller says so.
 */
/*
 * Run as root, keyauthctl must not leave a store the agent (running as its
 * own user) cannot read: the new file gets the owner of the store it
 * replaces or, for a first store, the owner of its directory (the service's
 * state directory). Not root: nothing to do, the file is ours.
 */
static int
ks_file_give_owner(int fd, const char *path, const char *dir)
{
	struct stat st;

	if (geteuid() != 0)
		return 0;
	if (stat(path, &st) == -1 && stat(dir, &st) == -1)
		return 0;
	if (st.st_uid == 0 && st.st_gid == 0)
		return 0;
	return fchown(fd, st.st_uid, st.st_gid);
}

int
ks_file_write_gen(const char *path, const struct ks_entry *v, size_t n,
                  uint64_t generation, char *err, size_t errlen)
{
	msgpack_sbuffer sb;
	struct ks_set *chk;
	const char *slash, *base;
	char *tmp = NULL, *dir = NULL;
	char msg[200];
	size_t dlen, tmplen;
	int fd = -1, dfd, rc = -1;

	for (size_t i = 0; i < n; i++)
		if (ks_entry_check(&v[i], msg, sizeof(msg)) == -1) {
			ks_err(err, errlen, "%s: entry %zu: %s", path, i, msg);
			return -1;
		}
	if ((chk = ks_set_build(v, n, msg, sizeof(msg))) == NULL) {
		ks_err(err, errlen, "%s: %s", path, msg);
		return -1;
	}
	ks_set_unref(chk);

	slash = strrchr(path, '/');
	base = slash ? slash + 1 : path;
	dlen = slash == NULL || slash == path ? 1 : (size_t)(slash - path);
	if (*base == '\0') {
		ks_err(err, errlen, "%s: not a file name", path);
		return -1;
	}
	dir = malloc(dlen + 1);
	tmplen = dlen + strlen(base) + sizeof("/..XXXXXX");
	tmp = malloc(tmplen);
	msgpack_sbuffer_init(&sb);
	if (dir == NULL || tmp == NULL || ks_pack(&sb, v, n, generation) == -1) {
		ks_err(err, errlen, "%s: out of memory", path);
		goto out;
	}
	memcpy(dir, slash ? path : ".", dlen);    /* "/name": dir is "/" */
	dir[dlen] = '\0';
	snprintf(tmp, tmplen, "%s/.%s.XXXXXX", dir, base);

	if ((fd = mkostemp(tmp, O_CLOEXEC)) == -1) {
		ks_err(err, errlen, "%s: create temporary file in %s: %s", path, dir, strerror(errno));
		goto out;
	}
	if (fchmod(fd, 0600) == -1 || ks_file_give_owner(fd, path, dir) == -1 ||
	    ks_write_all(fd, sb.data, sb.size) == -1 || fsync(fd) == -1) {
		ks_err(err, errlen, "%s: write %s: %s", path, tmp, strerror(errno));
		goto unlink;
	}
	if (close(fd) == -1) {
		fd = -1;
		ks_err(err, errlen, "%s: close %s: %s", path, tmp, strerror(errno));
		goto unlink;
	}
	fd = -1;
	if (rename(tmp, path) == -1) {
		ks_err(err, errlen, "%s: rename from %s: %s", path, tmp, strerror(errno));
		goto unlink;
	}
	if ((dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) == -1) {
		ks_err(err, errlen, "%s: written, but open %s to fsync it: %s", path, dir, strerror(errno));
		goto out;
	}
	if (fsync(dfd) == -1) {
		ks_err(err, errlen, "%s: written, but fsync %s: %s", path, dir, strerror(errno));
		close(dfd);
		goto out;
	}
	close(dfd);
	rc = 0;
	goto out;
unlink:
	if (fd != -1)
		close(fd);
	fd = -1;
	unlink(tmp);
out:
	msgpack_sbuffer_destroy(&sb);
	free(dir);
	free(tmp);
	return rc;
}
