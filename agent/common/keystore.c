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

static bool
ks_is_b62(unsigned char c)
{
	return (c >= '0' && c <= '9') || (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z');
}

static bool
ks_route_char(unsigned char c)
{
	return ks_is_b62(c) || c == '_' || c == '-';
}

/* One route name. */
static int
ks_check_route(const char *route, size_t rlen, char *err, size_t errlen)
{
	char pb[48];

	if (rlen == 0 || rlen > KS_ROUTE_MAX) {
		ks_err(err, errlen, "route is %zu characters, expected 1..%d", rlen, KS_ROUTE_MAX);
		return -1;
	}
	for (size_t i = 0; i < rlen; i++)
		if (!ks_route_char((unsigned char)route[i])) {
			ks_err(err, errlen, "route \"%s\" has a character outside [A-Za-z0-9_-]",
			       ks_printable(pb, route, rlen));
			return -1;
		}
	return 0;
}

/* The next ','-separated item of <p>/<len> from <*at>: its slice; false at
 * the end. */
static bool
ks_list_next(const char *p, size_t len, size_t *at, const char **item, size_t *ilen)
{
	const char *c;

	if (*at > len || len == 0)
		return false;
	*item = p + *at;
	c = memchr(*item, ',', len - *at);
	*ilen = c != NULL ? (size_t)(c - *item) : len - *at;
	*at += *ilen + 1;
	return true;
}

/* The route list: 1..KS_ROUTES_MAX distinct valid names, the first <route>. */
static int
ks_check_routes(const struct ks_slice *route, const struct ks_slice *routes, char *err,
                size_t errlen)
{
	const char *names[KS_ROUTES_MAX], *it;
	size_t lens[KS_ROUTES_MAX], il, at = 0, n = 0;
	char pb[48];

	if (ks_check_route(route->p, route->len, err, errlen) == -1)
		return -1;
	if (routes->len == 0)
		return 0;
	while (ks_list_next(routes->p, routes->len, &at, &it, &il)) {
		if (ks_check_route(it, il, err, errlen) == -1)
			return -1;
		if (n == KS_ROUTES_MAX) {
			ks_err(err, errlen, "more than %d routes", KS_ROUTES_MAX);
			return -1;
		}
		for (size_t j = 0; j < n; j++)
			if (lens[j] == il && memcmp(names[j], it, il) == 0) {
				ks_err(err, errlen, "route \"%s\" listed twice", ks_printable(pb, it, il));
				return -1;
			}
		names[n] = it;
		lens[n++] = il;
	}
	if (lens[0] != route->len || memcmp(names[0], route->p, route->len) != 0) {
		ks_err(err, errlen, "route \"%s\" is not the first of the key's routes",
		       ks_printable(pb, route->p, route->len));
		return -1;
	}
	return 0;
}

int
ks_alias_check(const char *p, size_t len, char *err, size_t errlen)
{
	char pb[48];

	if (len == 0 || len > KS_ALIAS_MAX) {
		ks_err(err, errlen, "alias is %zu characters, expected 1..%d", len, KS_ALIAS_MAX);
		return -1;
	}
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)p[i];

		if (!ks_is_b62(c) && c != '_' && c != '.' && c != '@' && c != '-') {
			ks_err(err, errlen, "alias \"%s\" has a character outside [A-Za-z0-9_.@-]",
			       ks_printable(pb, p, len));
			return -1;
		}
	}
	return 0;
}

int
ks_tag_check(const char *k, size_t klen, const char *v, size_t vlen, char *err, size_t errlen)
{
	char pb[48];

	if (klen == 0 || klen > KS_TAG_KEY_MAX) {
		ks_err(err, errlen, "tag name \"%s\" is %zu characters, expected 1..%d",
		       ks_printable(pb, k, klen), klen, KS_TAG_KEY_MAX);
		return -1;
	}
	for (size_t i = 0; i < klen; i++) {
		unsigned char c = (unsigned char)k[i];

		if (!(c >= 'a' && c <= 'z') && !(c >= '0' && c <= '9') && c != '_' && c != '.' &&
		    c != '-') {
			ks_err(err, errlen, "tag name \"%s\" has a character outside [a-z0-9_.-]",
			       ks_printable(pb, k, klen));
			return -1;
		}
	}
	if (vlen > KS_TAG_VAL_MAX) {
		ks_err(err, errlen, "tag \"%s\": value is %zu characters, at most %d allowed",
		       ks_printable(pb, k, klen), vlen, KS_TAG_VAL_MAX);
		return -1;
	}
	for (size_t i = 0; i < vlen; i++) {
		unsigned char c = (unsigned char)v[i];

		if (c < 0x20 || c > 0x7e || c == ',' || c == '=') {
			ks_err(err, errlen, "tag \"%s\": the value has a character that is not "
			       "printable, or ',' or '='", ks_printable(pb, k, klen));
			return -1;
		}
	}
	return 0;
}

/* The tag list: "k=v" items with valid, distinct names, at most KS_TAGS_MAX. */
static int
ks_check_tags(const struct ks_slice *tags, char *err, size_t errlen)
{
	const char *names[KS_TAGS_MAX], *it;
	size_t lens[KS_TAGS_MAX], il, at = 0, n = 0;
	char pb[48];

	while (ks_list_next(tags->p, tags->len, &at, &it, &il)) {
		const char *eq = memchr(it, '=', il);
		size_t kl;

		if (eq == NULL) {
			ks_err(err, errlen, "tag \"%s\" has no '='", ks_printable(pb, it, il));
			return -1;
		}
		kl = (size_t)(eq - it);
		if (ks_tag_check(it, kl, eq + 1, il - kl - 1, err, errlen) == -1)
			return -1;
		if (n == KS_TAGS_MAX) {
			ks_err(err, errlen, "more than %d tags", KS_TAGS_MAX);
			return -1;
		}
		for (size_t j = 0; j < n; j++)
			if (lens[j] == kl && memcmp(names[j], it, kl) == 0) {
				ks_err(err, errlen, "tag \"%s\" appears twice", ks_printable(pb, it, kl));
				return -1;
			}
		names[n] = it;
		lens[n++] = kl;
	}
	return 0;
}

static int
ks_check_id(const char *what, const char *id, size_t idlen, char *err, size_t errlen)
{
	char pb[48];

	if (idlen != KEY_ID_LEN) {
		ks_err(err, errlen, "%s \"%s\" is %zu characters, expected %d", what,
		       ks_printable(pb, id, idlen), idlen, KEY_ID_LEN);
		return -1;
	}
	for (size_t i = 0; i < idlen; i++)
		if (!ks_is_b62((unsigned char)id[i])) {
			ks_err(err, errlen, "%s \"%s\" has a character outside [0-9A-Za-z]", what,
			       ks_printable(pb, id, idlen));
			return -1;
		}
	return 0;
}

/*
 * The field rules shared by the loader, ks_entry_check and the writer.
 * Returns 0, or -1 with a message (no path) in <err>.
 */
int
ks_check_raw(const struct ks_raw_entry *r, char *err, size_t errlen)
{
	char pb[48];

	if (ks_check_id("id", r->id.p, r->id.len, err, errlen) == -1 ||
	    ks_check_routes(&r->route, &r->routes, err, errlen) == -1)
		return -1;
	if (r->owner.len > KS_OWNER_MAX) {
		ks_err(err, errlen, "owner is %zu characters, at most %d allowed", r->owner.len,
		       KS_OWNER_MAX);
		return -1;
	}
	for (size_t i = 0; i < r->owner.len; i++) {
		unsigned char c = (unsigned char)r->owner.p[i];
		if (c < 0x20 || c > 0x7e) {
			ks_err(err, errlen, "owner \"%s\" has a non-printable character",
			       ks_printable(pb, r->owner.p, r->owner.len));
			return -1;
		}
	}
	if ((r->alias.len > 0 && ks_alias_check(r->alias.p, r->alias.len, err, errlen) == -1) ||
	    ks_check_tags(&r->tags, err, errlen) == -1 ||
	    (r->rotated_from.len > 0 &&
	     ks_check_id("rotated_from", r->rotated_from.p, r->rotated_from.len, err, errlen) == -1) ||
	    (r->rotated_to.len > 0 &&
	     ks_check_id("rotated_to", r->rotated_to.p, r->rotated_to.len, err, errlen) == -1))
		return -1;
	if (r->scopes & ~KS_SCOPES_ALL) {
		ks_err(err, errlen, "unknown scope bits 0x%x (known: read=1, write=2, deploy=4)",
		       (unsigned)(r->scopes & ~KS_SCOPES_ALL));
		return -1;
	}
	if (r->created < 0 || r->expires < 0 || r->revoked < 0) {
		ks_err(err, errlen, "negative time (created, expires and revoked are Unix seconds >= 0)");
		return -1;
	}
	return 0;
}

static struct ks_slice
ks_slice_of(const char *s)
{
	return (struct ks_slice){ .p = s != NULL ? s : "", .len = s != NULL ? strlen(s) : 0 };
}

void
ks_raw_from_entry(struct ks_raw_entry *r, const struct ks_entry *e)
{
	r->digest = e->digest;
	r->id = (struct ks_slice){ e->id, strnlen(e->id, sizeof(e->id)) };
	r->route = ks_slice_of(e->route);
	r->routes = ks_slice_of(e->routes);
	r->owner = ks_slice_of(e->owner);
	r->alias = ks_slice_of(e->alias);
	r->tags = ks_slice_of(e->tags);
	r->rotated_from = (struct ks_slice){ e->rotated_from,
	                                     strnlen(e->rotated_from, sizeof(e->rotated_from)) };
	r->rotated_to = (struct ks_slice){ e->rotated_to,
	                                   strnlen(e->rotated_to, sizeof(e->rotated_to)) };
	r->created = e->created;
	r->expires = e->expires;
	r->revoked = e->revoked;
	r->rpm = e->rpm;
	r->scopes = e->scopes;
}

int
ks_entry_check(const struct ks_entry *e, char *err, size_t errlen)
{
	struct ks_raw_entry r;

	if (e->route == NULL) {
		ks_err(err, errlen, "no route");
		return -1;
	}
	ks_raw_from_entry(&r, e);
	return ks_check_raw(&r, err, errlen);
}

const char *
ks_entry_routes(const struct ks_entry *e)
{
	return e->routes != NULL && e->routes[0] != '\0' ? e->routes : e->route;
}

bool
ks_entry_has_route(const struct ks_entry *e, const char *name, size_t len)
{
	const char *p = ks_entry_routes(e), *it;
	size_t at = 0, il;

	if (p == NULL)
		return false;
	while (ks_list_next(p, strlen(p), &at, &it, &il))
		if (il == len && memcmp(it, name, len) == 0)
			return true;
	return false;
}

bool
ks_entry_tag(const struct ks_entry *e, const char *name, const char **val, size_t *vlen)
{
	size_t nl = strlen(name), at = 0, il;
	const char *it;

	if (e->tags == NULL)
		return false;
	while (ks_list_next(e->tags, strlen(e->tags), &at, &it, &il))
		if (il > nl && it[nl] == '=' && memcmp(it, name, nl) == 0) {
			*val = it + nl + 1;
			*vlen = il - nl - 1;
			return true;
		}
	return false;
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
	free(s->masks);
	ks_set_unref(s->base);
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
	s->pool[0] = '\0';          /* offset 0: the "" every empty string shares */
	s->pool_used = 1;
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

	if (len == 0)
		return 0;
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
 * ks_set_finish, the entry's strings hold pool offsets. A route list of the
 * one route <route> is kept as "" (the entry's routes are then <route>).
 * Returns 0, or -1 with a message on a duplicate digest or id, or when out
 * of memory.
 */
int
ks_set_add(struct ks_set *s, const struct ks_raw_entry *r, char *err, size_t errlen)
{
	struct ks_entry *e = &s->ents[s->n];
	const uint8_t *digest = r->digest;
	const char *id = r->id.p;
	size_t idlen = r->id.len;
	uint32_t dtag = ks_digest_tag(digest);
	uint64_t ih = ks_id_hash(id, idlen);
	size_t i, j, off[5];
	struct ks_slice routes = r->routes;

	if (s->n == s->cap || idlen > KEY_ID_LEN || r->rotated_from.len > KEY_ID_LEN ||
	    r->rotated_to.len > KEY_ID_LEN) {
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
	if (routes.len == r->route.len && memcmp(routes.p, r->route.p, routes.len) == 0)
		routes.len = 0;
	if ((off[0] = ks_pool_add(s, r->route.p, r->route.len)) == SIZE_MAX ||
	    (off[1] = ks_pool_add(s, routes.p, routes.len)) == SIZE_MAX ||
	    (off[2] = ks_pool_add(s, r->owner.p, r->owner.len)) == SIZE_MAX ||
	    (off[3] = ks_pool_add(s, r->alias.p, r->alias.len)) == SIZE_MAX ||
	    (off[4] = ks_pool_add(s, r->tags.p, r->tags.len)) == SIZE_MAX) {
		ks_err(err, errlen, "out of memory");
		return -1;
	}
	memset(e, 0, sizeof(*e));
	memcpy(e->digest, digest, KEY_DIGEST_LEN);
	memcpy(e->id, id, idlen);
	memcpy(e->rotated_from, r->rotated_from.p, r->rotated_from.len);
	memcpy(e->rotated_to, r->rotated_to.p, r->rotated_to.len);
	e->route = (const char *)(uintptr_t)off[0];
	e->routes = (const char *)(uintptr_t)off[1];
	e->owner = (const char *)(uintptr_t)off[2];
	e->alias = (const char *)(uintptr_t)off[3];
	e->tags = (const char *)(uintptr_t)off[4];
	e->created = r->created;
	e->expires = r->expires;
	e->revoked = r->revoked;
	e->rpm = r->rpm;
	e->scopes = r->scopes;
	s->n++;
	atomic_fetch_add_explicit(&ks_copied, 1, memory_order_relaxed);
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
		struct ks_entry *e = &s->ents[i];

		e->route = s->pool + (uintptr_t)e->route;
		e->routes = s->pool + (uintptr_t)e->routes;
		e->owner = s->pool + (uintptr_t)e->owner;
		e->alias = s->pool + (uintptr_t)e->alias;
		e->tags = s->pool + (uintptr_t)e->tags;
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
	size_t pool = 1;

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
		struct ks_raw_entry r;
		char msg[160];

		ks_raw_from_entry(&r, &v[i]);
		if (ks_set_add(s, &r, msg, sizeof(msg)) == -1) {
			ks_err(err, errlen, "entry %zu: %s", i, msg);
			ks_set_free(s);
			return NULL;
		}
	}
	ks_set_finish(s);
	return s;
}

/* ---- queries (any thread, no locks) ----------------------------------------- */

/* An overlay's own table first (its entries, and the masks hiding base
 * entries: a hit on a mask means "not there"), then its base: one more probe
 * into a small table that stays in cache. */
const struct ks_entry *
ks_lookup(const struct ks_set *s, const uint8_t digest[KEY_DIGEST_LEN])
{
	uint32_t tag;

	if (s == NULL)
		return NULL;
	tag = ks_digest_tag(digest);
	for (size_t i = ks_digest_pos(digest) & s->mask; s->slots[i].idx != 0; i = (i + 1) & s->mask) {
		uint32_t x = s->slots[i].idx;
		const uint8_t *d;

		if (s->slots[i].tag != tag)
			continue;
		d = (x & KS_SLOT_MASK) ? s->masks[(x & ~KS_SLOT_MASK) - 1].digest : s->ents[x - 1].digest;
		if (CRYPTO_memcmp(d, digest, KEY_DIGEST_LEN) == 0)
			return (x & KS_SLOT_MASK) ? NULL : &s->ents[x - 1];
	}
	return s->base != NULL ? ks_lookup(s->base, digest) : NULL;
}

const struct ks_entry *
ks_find_id(const struct ks_set *s, const char *id)
{
	uint64_t h;
	size_t len;

	if (s == NULL || id == NULL || (len = strlen(id)) > KEY_ID_LEN)
		return NULL;
	h = ks_id_hash(id, len);
	for (size_t i = h & s->mask; s->id_slots[i].idx != 0; i = (i + 1) & s->mask) {
		uint32_t x = s->id_slots[i].idx;
		const char *eid;

		if (s->id_slots[i].tag != (uint32_t)(h >> 32))
			continue;
		eid = (x & KS_SLOT_MASK) ? s->masks[(x & ~KS_SLOT_MASK) - 1].id : s->ents[x - 1].id;
		if (strcmp(eid, id) == 0)
			return (x & KS_SLOT_MASK) ? NULL : &s->ents[x - 1];
	}
	return s->base != NULL ? ks_find_id(s->base, id) : NULL;
}

size_t
ks_count(const struct ks_set *s)
{
	return s == NULL ? 0 : s->base != NULL ? s->base->n - s->nmask + s->n : s->n;
}

size_t
ks_span(const struct ks_set *s)
{
	return s == NULL ? 0 : s->base != NULL ? s->base->n + s->n : s->n;
}

/* Positions of an overlay: its base's entries, then its own. */
const struct ks_entry *
ks_entry_at(const struct ks_set *s, size_t i)
{
	const struct ks_entry *e;

	if (s == NULL)
		return NULL;
	if (s->base == NULL)
		return i < s->n ? &s->ents[i] : NULL;
	if (i >= s->base->n)
		return i - s->base->n < s->n ? &s->ents[i - s->base->n] : NULL;
	e = &s->base->ents[i];
	return s->nmask > 0 && ks_find_id(s, e->id) != e ? NULL : e;
}

uint64_t
ks_generation(const struct ks_set *s)
{
	return s == NULL ? 0 : s->base != NULL ? s->base->generation : s->generation;
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

static int
ks_cmp_id_ptr(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

const char **
ks_ids_sorted(const struct ks_entry *v, size_t n)
{
	const char **ids = malloc((n > 0 ? n : 1) * sizeof(*ids));

	if (ids == NULL)
		return NULL;
	for (size_t i = 0; i < n; i++)
		ids[i] = v[i].id;
	qsort(ids, n, sizeof(*ids), ks_cmp_id_ptr);
	return ids;
}

bool
ks_ids_has(const char *const *ids, size_t n, const char *id)
{
	return bsearch(&id, ids, n, sizeof(*ids), ks_cmp_id_ptr) != NULL;
}
