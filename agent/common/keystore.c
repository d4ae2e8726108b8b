/* SPDX-License-Identifier: Apache-2.0 */
/*
 * keystore: the immutable key set, its field rules and its lookups.
 *
 * A set is built once (by the loader, keystore_load.c, off the request path)
 * and never changed; workers read it without locks and drop their reference
 * when a newer set is published. The layout of the set is described in
 * keystore-int.h; the file's format in keystore_load.c; the writer, used by
 * keyauthctl only, is keystore_write.c.
 */
#include <sys/mman.h>

#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "keystore-int.h"

void
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
const char *
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
int
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

void
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
struct ks_set *
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
int
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
void
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
