/* SPDX-License-Identifier: Apache-2.0 */
/*
 * keystore_overlay: a change to a few keys of a large set, at the cost of
 * the change (issue 19).
 *
 * HOW IT WORKS
 * An incremental load (the Redis backend names the ids that changed) used to
 * copy every entry of the last set into a new one: 1M entries for one
 * revoked key. ks_set_apply instead returns an overlay: a new small set
 * holding the changed records, and "masks" for the base entries they hide
 * (the old record of a changed id, a deleted id), over a reference to the
 * large immutable base. ks_lookup and ks_find_id probe the overlay's own
 * table first (an entry: found; a mask: absent), then the base. The next
 * change builds the next overlay from this one (its own records plus the
 * new changes, on the same base): its cost grows with the changes since
 * the base was built, so once they pass ks_overlay_limit the result is
 * flattened into a new plain set (a merge; every key copied once).
 * WHY
 * Workers keep reading immutable sets without locks; the main thread's work
 * per change goes from O(keys) to O(overlay), and the merge's O(keys) is
 * spread over thousands of changes.
 * LIMITS
 * Overlays do not stack: an overlay's base is always a plain set.
 * ks_set_apply merges on the calling thread; keyauthd's Redis backend uses
 * ks_set_overlay, and ks_set_flatten + ks_set_rebase on a thread of its own
 * (store_redis_agent.c).
 */
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "keystore-int.h"

_Atomic uint64_t ks_copied;

uint64_t
ks_entries_copied(void)
{
	return atomic_load_explicit(&ks_copied, memory_order_relaxed);
}

const struct ks_set *
ks_set_base(const struct ks_set *s)
{
	return s != NULL ? s->base : NULL;
}

size_t
ks_entry_pos(const struct ks_set *s, const struct ks_entry *e)
{
	uintptr_t p = (uintptr_t)e;
	size_t nb = 0;

	if (s == NULL || e == NULL)
		return SIZE_MAX;
	if (s->base != NULL) {
		uintptr_t b = (uintptr_t)s->base->ents;

		nb = s->base->n;
		if (p >= b && p < b + nb * sizeof(*e))
			return (size_t)(p - b) / sizeof(*e);
	}
	if (p >= (uintptr_t)s->ents && p < (uintptr_t)s->ents + s->n * sizeof(*e))
		return nb + (size_t)(p - (uintptr_t)s->ents) / sizeof(*e);
	return SIZE_MAX;
}

size_t
ks_overlay_limit(size_t nbase)
{
	size_t l = nbase / 64;

	return l < 256 ? 256 : l > 8192 ? 8192 : l;
}

size_t
ks_overlay_size(const struct ks_set *s)
{
	return s != NULL && s->base != NULL ? s->n + s->nmask : 0;
}

/* The slot value of <id> in <s>'s own id table (entry index + 1, or
 * KS_SLOT_MASK | mask index + 1), 0 when it has none. */
static uint32_t
ks_own_id(const struct ks_set *s, const char *id)
{
	uint64_t h = ks_id_hash(id, strlen(id));

	for (size_t i = h & s->mask; s->id_slots[i].idx != 0; i = (i + 1) & s->mask) {
		uint32_t x = s->id_slots[i].idx;
		const char *eid = (x & KS_SLOT_MASK) ? s->masks[(x & ~KS_SLOT_MASK) - 1].id
		                                     : s->ents[x - 1].id;

		if (s->id_slots[i].tag == (uint32_t)(h >> 32) && strcmp(eid, id) == 0)
			return x;
	}
	return 0;
}

/* True if an own entry of <s> has <digest>. */
static bool
ks_own_digest(const struct ks_set *s, const uint8_t *digest)
{
	uint32_t tag = ks_digest_tag(digest);

	for (size_t i = ks_digest_pos(digest) & s->mask; s->slots[i].idx != 0; i = (i + 1) & s->mask) {
		uint32_t x = s->slots[i].idx;

		if (!(x & KS_SLOT_MASK) && s->slots[i].tag == tag &&
		    CRYPTO_memcmp(s->ents[x - 1].digest, digest, KEY_DIGEST_LEN) == 0)
			return true;
	}
	return false;
}

/* Appends the mask of base entry <b> to <s> and indexes it where no own
 * entry has its digest or id (an own entry answers for those already). */
static void
ks_mask_add(struct ks_set *s, const uint8_t *digest, const char *id)
{
	struct ks_mask *m = &s->masks[s->nmask++];
	uint32_t x = (uint32_t)s->nmask | KS_SLOT_MASK;
	uint64_t h;
	size_t i;

	memcpy(m->digest, digest, KEY_DIGEST_LEN);
	memcpy(m->id, id, KEY_ID_LEN + 1);
	atomic_fetch_add_explicit(&ks_copied, 1, memory_order_relaxed);
	if (!ks_own_digest(s, digest)) {
		for (i = ks_digest_pos(digest) & s->mask; s->slots[i].idx != 0; i = (i + 1) & s->mask)
			;
		s->slots[i].idx = x;
		s->slots[i].tag = ks_digest_tag(digest);
	}
	if (ks_own_id(s, id) == 0) {
		h = ks_id_hash(id, strlen(id));
		for (i = h & s->mask; s->id_slots[i].idx != 0; i = (i + 1) & s->mask)
			;
		s->id_slots[i].idx = x;
		s->id_slots[i].tag = (uint32_t)(h >> 32);
	}
}

static int
ks_cmp_str_ptr(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

struct ks_set *
ks_set_flatten(const struct ks_set *o, char *err, size_t errlen)
{
	struct ks_set *s;
	size_t span = ks_span(o);

	if ((s = ks_set_alloc(ks_count(o), (o->base != NULL ? o->base->pool_used : 0) +
	                      o->pool_used)) == NULL) {
		ks_err(err, errlen, "out of memory");
		return NULL;
	}
	for (size_t i = 0; i < span; i++) {
		const struct ks_entry *e = ks_entry_at(o, i);
		struct ks_raw_entry r;

		if (e == NULL)
			continue;
		ks_raw_from_entry(&r, e);
		if (ks_set_add(s, &r, err, errlen) == -1) {
			ks_set_free(s);
			return NULL;
		}
	}
	ks_set_finish(s);
	return s;
}

struct ks_set *
ks_set_overlay(struct ks_set *prev, const char *const *ids, size_t nids,
               const struct ks_entry *v, size_t n, char *err, size_t errlen)
{
	struct ks_set *base = prev->base != NULL ? prev->base : prev, *o = NULL;
	const char **sorted = malloc((nids ? nids : 1) * sizeof(*sorted));
	size_t nlive = n, pool = 1, i;
	char pb[48];

	if (sorted == NULL)
		goto oom;
	memcpy(sorted, ids, nids * sizeof(*sorted));
	qsort(sorted, nids, sizeof(*sorted), ks_cmp_str_ptr);
	for (i = 0; i < n; i++) {
		if (v[i].route == NULL ||
		    !bsearch(&(const char *){ v[i].id }, sorted, nids, sizeof(*sorted), ks_cmp_str_ptr)) {
			ks_err(err, errlen, "entry %zu: no route, or an id that did not change", i);
			goto fail;
		}
	}
	/* Own records of <prev> whose ids did not change this time stay. */
	for (i = 0; prev->base != NULL && i < prev->n; i++)
		if (!bsearch(&(const char *){ prev->ents[i].id }, sorted, nids, sizeof(*sorted),
		             ks_cmp_str_ptr))
			nlive++;
	if (prev->base != NULL)
		pool += prev->pool_used;
	for (i = 0; i < n; i++)
		pool += strlen(v[i].route) + 1 + (v[i].owner ? strlen(v[i].owner) + 1 : 0);
	if ((o = ks_set_alloc(nlive + prev->nmask + nids, pool)) == NULL ||
	    (o->masks = malloc((prev->nmask + nids + 1) * sizeof(*o->masks))) == NULL)
		goto oom;
	for (i = 0; prev->base != NULL && i < prev->n; i++) {
		struct ks_raw_entry r;

		if (bsearch(&(const char *){ prev->ents[i].id }, sorted, nids, sizeof(*sorted),
		            ks_cmp_str_ptr))
			continue;
		ks_raw_from_entry(&r, &prev->ents[i]);
		if (ks_set_add(o, &r, err, errlen) == -1)
			goto fail;
	}
	for (i = 0; i < n; i++) {
		struct ks_raw_entry r;

		ks_raw_from_entry(&r, &v[i]);
		if (ks_set_add(o, &r, err, errlen) == -1)
			goto fail;
	}
	ks_set_finish(o);
	/* A base entry once hidden stays hidden (the current record of its
	 * id, if any, is an own entry); a changed id hides its base entry.
	 * So a base entry is hidden exactly when its id is in the overlay's
	 * own id table, as an entry or as a mask: ks_own_id != 0. */
	for (i = 0; i < prev->nmask; i++)
		ks_mask_add(o, prev->masks[i].digest, prev->masks[i].id);
	for (i = 0; i < nids; i++) {
		const struct ks_entry *b;

		if (i > 0 && strcmp(sorted[i - 1], sorted[i]) == 0)
			continue;            /* an id named twice hides its entry once */
		b = ks_find_id(base, sorted[i]);
		if (b != NULL && (prev->base == NULL || ks_own_id(prev, sorted[i]) == 0))
			ks_mask_add(o, b->digest, b->id);
	}
	/* A changed record must not take the digest of a key still visible in
	 * the base (only a hand-made record can): the caller loads in full. */
	for (i = 0; i < n; i++) {
		const struct ks_entry *b = ks_lookup(base, v[i].digest);

		if (b != NULL && strcmp(b->id, v[i].id) != 0 && ks_own_id(o, b->id) == 0) {
			ks_err(err, errlen, "keys %s and %s have the same digest", b->id,
			       ks_printable(pb, v[i].id, strlen(v[i].id)));
			goto fail;
		}
	}
	o->base = ks_set_ref(base);
	free(sorted);
	return o;
oom:
	ks_err(err, errlen, "out of memory");
fail:
	free(sorted);
	ks_set_free(o);
	return NULL;
}

struct ks_set *
ks_set_apply(struct ks_set *prev, const char *const *ids, size_t nids,
             const struct ks_entry *v, size_t n, char *err, size_t errlen)
{
	struct ks_set *o = ks_set_overlay(prev, ids, nids, v, n, err, errlen), *flat;

	if (o == NULL || o->base == NULL || ks_overlay_size(o) <= ks_overlay_limit(o->base->n))
		return o;
	flat = ks_set_flatten(o, err, errlen);
	ks_set_unref(o);
	return flat;
}

struct ks_set *
ks_set_rebase(struct ks_set *flat, const struct ks_set *cur, const char *const *ids, size_t nids,
              char *err, size_t errlen)
{
	const char **u = malloc((nids + 1) * sizeof(*u));
	struct ks_entry *v = malloc((nids + 1) * sizeof(*v));
	struct ks_set *set = NULL;
	size_t n = 0, nv = 0;

	if (u == NULL || v == NULL) {
		ks_err(err, errlen, "out of memory");
		goto out;
	}
	memcpy(u, ids, nids * sizeof(*u));
	qsort(u, nids, sizeof(*u), ks_cmp_str_ptr);
	for (size_t i = 0; i < nids; i++) {
		const struct ks_entry *e;

		if (n > 0 && strcmp(u[n - 1], u[i]) == 0)
			continue;
		u[n++] = u[i];
		if ((e = ks_find_id(cur, u[i])) != NULL)
			v[nv++] = *e;
	}
	set = ks_set_overlay(flat, u, n, v, nv, err, errlen);
out:
	free(u);
	free(v);
	return set;
}
