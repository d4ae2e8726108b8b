/* SPDX-License-Identifier: Apache-2.0 */
/*
 * keystore_load: the store file's decoder and validator (ks_set_load,
 * ks_set_parse). The loader never prints: every problem becomes
 * "path: message" in the caller's buffer.
 */
#include <sys/stat.h>

#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <msgpack.h>

#include "filetrust.h"
#include "keystore-int.h"

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
 *         "rpm":     uint,              <= UINT32_MAX; 0 = no limit
 *         -- optional, written only when the key has them: --
 *         "routes":  [str, ...],        1..KS_ROUTES_MAX distinct routes, the
 *                                       first equal to "route" (a key on one
 *                                       route has only "route")
 *         "alias":   str,               1..KS_ALIAS_MAX of [A-Za-z0-9_.@-]
 *         "tags":    {str: str, ...},   <= KS_TAGS_MAX; names 1..KS_TAG_KEY_MAX
 *                                       of [a-z0-9_.-], values 0..KS_TAG_VAL_MAX
 *                                       printable, without ',' and '='
 *         "rotated_from": str,          the key id this key replaced
 *         "rotated_to":   str,          the key id that replaced this key
 *         "scopes":  uint },            admin-route keys: 1..7, bits read=1,
 *                                       write=2, deploy=4
 *       ...
 *     ]
 *   }
 *
 * Validation is strict, for the file is written only by keyauthctl: every
 * required field must be present exactly once with its type (an optional
 * one at most once), and an unknown field in
 * the top-level map or in an entry is an error rather than ignored (a newer
 * format bumps "version", so an old agent refuses it loudly instead of
 * silently serving a subset of its meaning). Digests and ids must be unique.
 * Map key order is free. Files larger than KS_FILE_MAX are refused before
 * being read.
 *
 * The optional fields came without a version bump: a file whose keys use
 * none of them is byte for byte what older keyauthctl wrote, and an older
 * agent refuses (loudly, keeping its previous set) a file that uses them,
 * rather than serving a key on a subset of its meaning. "route" stays in
 * every entry, the first of the key's routes.
 */
#define KS_FILE_MAX      (1024UL * 1024 * 1024)   /* 1 GiB, ~7M keys */

/* ---- loading ------------------------------------------------------------------ */

static const char *const ks_field_names[KS_F_ENTRIES] = {
	"id", "digest", "route", "owner", "created", "expires", "revoked", "rpm",
	"routes", "alias", "tags", "rotated_from", "rotated_to", "scopes",
};

/* Room for the joined "routes" and "tags" of one entry. */
struct ks_lists {
	char routes[KS_ROUTES_STR_MAX + 1];
	char tags[KS_TAGS_STR_MAX + 1];
};

/* Appends <p>/<len> to the list <buf> (<*used> bytes, capacity <cap>). */
static void
ks_list_put(char *buf, size_t *used, size_t cap, const char *p, size_t len)
{
	if (*used + len < cap) {
		memcpy(buf + *used, p, len);
		*used += len;
	}
}

/* "routes": an array of 1..KS_ROUTES_MAX strings (names checked by
 * ks_check_raw), joined into <l>. Returns 0, or -1 with a message. */
static int
ks_get_routes(const msgpack_object *v, struct ks_lists *l, struct ks_slice *out, char *err,
              size_t errlen)
{
	size_t used = 0;

	if (v->type != MSGPACK_OBJECT_ARRAY || v->via.array.size == 0 ||
	    v->via.array.size > KS_ROUTES_MAX) {
		ks_err(err, errlen, "field \"routes\" must be an array of 1..%d strings", KS_ROUTES_MAX);
		return -1;
	}
	for (uint32_t i = 0; i < v->via.array.size; i++) {
		const msgpack_object *o = &v->via.array.ptr[i];

		if (o->type != MSGPACK_OBJECT_STR || o->via.str.size == 0 ||
		    o->via.str.size > KS_ROUTE_MAX || memchr(o->via.str.ptr, ',', o->via.str.size)) {
			ks_err(err, errlen, "routes[%u] is not a route name", i);
			return -1;
		}
		if (i > 0)
			ks_list_put(l->routes, &used, sizeof(l->routes), ",", 1);
		ks_list_put(l->routes, &used, sizeof(l->routes), o->via.str.ptr, o->via.str.size);
	}
	*out = (struct ks_slice){ l->routes, used };
	return 0;
}

/* "tags": a map of at most KS_TAGS_MAX string names to string values
 * (checked by ks_check_raw), joined into <l>. Returns 0, or -1. */
static int
ks_get_tags(const msgpack_object *v, struct ks_lists *l, struct ks_slice *out, char *err,
            size_t errlen)
{
	size_t used = 0;

	if (v->type != MSGPACK_OBJECT_MAP || v->via.map.size > KS_TAGS_MAX) {
		ks_err(err, errlen, "field \"tags\" must be a map of at most %d tags", KS_TAGS_MAX);
		return -1;
	}
	for (uint32_t i = 0; i < v->via.map.size; i++) {
		const msgpack_object *k = &v->via.map.ptr[i].key, *x = &v->via.map.ptr[i].val;

		if (k->type != MSGPACK_OBJECT_STR || x->type != MSGPACK_OBJECT_STR ||
		    k->via.str.size == 0 || k->via.str.size > KS_TAG_KEY_MAX ||
		    x->via.str.size > KS_TAG_VAL_MAX ||
		    memchr(k->via.str.ptr, ',', k->via.str.size) ||
		    memchr(k->via.str.ptr, '=', k->via.str.size) ||
		    memchr(x->via.str.ptr, ',', x->via.str.size) ||
		    memchr(x->via.str.ptr, '=', x->via.str.size)) {
			ks_err(err, errlen, "tags[%u] is not a tag (name 1..%d, value 0..%d characters, "
			       "neither with ',' or '=')", i, KS_TAG_KEY_MAX, KS_TAG_VAL_MAX);
			return -1;
		}
		if (i > 0)
			ks_list_put(l->tags, &used, sizeof(l->tags), ",", 1);
		ks_list_put(l->tags, &used, sizeof(l->tags), k->via.str.ptr, k->via.str.size);
		ks_list_put(l->tags, &used, sizeof(l->tags), "=", 1);
		ks_list_put(l->tags, &used, sizeof(l->tags), x->via.str.ptr, x->via.str.size);
	}
	*out = (struct ks_slice){ l->tags, used };
	return 0;
}

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
 * Parses and validates entry <o> into <r> (the joined lists in <l>).
 * Returns 0, or -1 with a message (without path or index) in <err>.
 */
static int
ks_parse_entry(const msgpack_object *o, struct ks_raw_entry *r, struct ks_lists *l, char *err,
               size_t errlen)
{
	unsigned seen = 0;
	char pb[48];

	memset(r, 0, sizeof(*r));
	r->routes = r->alias = r->tags = r->rotated_from = r->rotated_to =
		(struct ks_slice){ "", 0 };
	if (o->type != MSGPACK_OBJECT_MAP) {
		ks_err(err, errlen, "not a map");
		return -1;
	}
	for (uint32_t i = 0; i < o->via.map.size; i++) {
		const msgpack_object *k = &o->via.map.ptr[i].key;
		const msgpack_object *v = &o->via.map.ptr[i].val;
		struct ks_slice *str = NULL;
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
		case KS_F_ID:           str = &r->id; break;
		case KS_F_ROUTE:        str = &r->route; break;
		case KS_F_OWNER:        str = &r->owner; break;
		case KS_F_ALIAS:        str = &r->alias; break;
		case KS_F_ROTATED_FROM: str = &r->rotated_from; break;
		case KS_F_ROTATED_TO:   str = &r->rotated_to; break;
		case KS_F_ROUTES:
			if (ks_get_routes(v, l, &r->routes, err, errlen) == -1)
				return -1;
			break;
		case KS_F_TAGS:
			if (ks_get_tags(v, l, &r->tags, err, errlen) == -1)
				return -1;
			break;
		case KS_F_DIGEST:
			if (v->type != MSGPACK_OBJECT_BIN)
				goto type;
			if (v->via.bin.size != KEY_DIGEST_LEN) {
				ks_err(err, errlen, "digest is %u bytes, expected %d",
				       v->via.bin.size, KEY_DIGEST_LEN);
				return -1;
			}
			r->digest = (const uint8_t *)v->via.bin.ptr;
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
		case KS_F_SCOPES:
			if (v->type != MSGPACK_OBJECT_POSITIVE_INTEGER || v->via.u64 == 0 ||
			    v->via.u64 > UINT32_MAX)
				goto type;
			r->scopes = (uint32_t)v->via.u64;
			break;
		default: /* KS_F_RPM */
			if (v->type != MSGPACK_OBJECT_POSITIVE_INTEGER || v->via.u64 > UINT32_MAX)
				goto type;
			r->rpm = (uint32_t)v->via.u64;
			break;
		}
		if (str != NULL) {
			if (v->type != MSGPACK_OBJECT_STR)
				goto type;
			*str = (struct ks_slice){ v->via.str.ptr, v->via.str.size };
		}
		continue;
type:
		ks_err(err, errlen, "field \"%s\" must be %s", ks_field_names[f],
		       f == KS_F_DIGEST ? "binary" :
		       f == KS_F_RPM ? "an unsigned 32-bit integer" :
		       f == KS_F_SCOPES ? "a positive integer (scope bits; absent when none)" :
		       (f >= KS_F_CREATED && f < KS_F_REQUIRED) ? "a non-negative integer" :
		       "a string");
		return -1;
	}
	for (int f = 0; f < KS_F_REQUIRED; f++)
		if (!(seen & (1u << f))) {
			ks_err(err, errlen, "missing field \"%s\"", ks_field_names[f]);
			return -1;
		}
	if ((seen & (1u << KS_F_ALIAS)) && r->alias.len == 0) {
		ks_err(err, errlen, "field \"alias\" is empty (a key without an alias has none)");
		return -1;
	}
	return ks_check_raw(r, err, errlen);
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
	struct ks_raw_entry r;
	struct ks_lists *l;
	char msg[200];

	if ((s = ks_set_alloc(skip ? 0 : n, skip ? 0 : (size_t)n * 32)) == NULL) {
		ks_err(ld->err, ld->errlen, "%u keys: %s", n, n > KS_MAX_KEYS ? "too many keys" : "out of memory");
		return NULL;
	}
	if ((l = malloc(sizeof(*l))) == NULL) {
		ks_err(ld->err, ld->errlen, "out of memory");
		ks_set_free(s);
		return NULL;
	}
	for (uint32_t i = 0; i < n; i++) {
		if (ks_next(ld) == -1)
			goto fail;
		if (skip)
			continue;
		if (ks_parse_entry(&ld->up.data, &r, l, msg, sizeof(msg)) == -1 ||
		    ks_set_add(s, &r, msg, sizeof(msg)) == -1) {
			ks_err(ld->err, ld->errlen, "keys[%u]: %s", i, msg);
			goto fail;
		}
	}
	free(l);
	ks_set_finish(s);
	return s;
fail:
	free(l);
	ks_set_free(s);
	return NULL;
}

/* What the walk of the top-level map has found so far. */
enum { KS_TOP_VERSION = 1, KS_TOP_GENERATION = 2, KS_TOP_KEYS = 4 };

struct ks_top {
	struct ks_set *s;                /* the entries; a placeholder while deferred */
	uint64_t generation;
	uint32_t nkeys;
	size_t keys_off;                 /* offset of the first entry */
	unsigned seen;                   /* KS_TOP_* bits */
	bool deferred;                   /* "keys" came before "version": skipped */
};

/* Decodes the next top-level field name. Returns its KS_TOP_* bit (now
 * marked seen) with its name in *name, or 0 with a message. */
static unsigned
ks_top_name(struct ks_loader *ld, struct ks_top *t, const char **name)
{
	static const char *const names[] = { "version", "generation", "keys" };
	const msgpack_object *o;
	char pb[48];

	if (ks_next(ld) == -1)
		return 0;
	o = &ld->up.data;
	for (unsigned i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		unsigned bit = 1u << i;

		if (!ks_key_is(o, names[i]))
			continue;
		if (t->seen & bit) {
			ks_err(ld->err, ld->errlen, "top-level field \"%s\" appears twice", names[i]);
			return 0;
		}
		t->seen |= bit;
		*name = names[i];
		return bit;
	}
	if (o->type == MSGPACK_OBJECT_STR)
		ks_err(ld->err, ld->errlen, "unknown top-level field \"%s\"",
		       ks_printable(pb, o->via.str.ptr, o->via.str.size));
	else
		ks_err(ld->err, ld->errlen, "a top-level field name is not a string");
	return 0;
}

/* The "keys" array: its header, then its entries, only skipped while the
 * version is not known yet. Returns 0, or -1 with a message. */
static int
ks_top_keys(struct ks_loader *ld, struct ks_top *t)
{
	int rc;

	if ((rc = ks_read_header(ld, false, &t->nkeys)) == KS_HDR_OTHER) {
		ks_err(ld->err, ld->errlen, "\"keys\" is not an array");
		return -1;
	}
	if (rc == KS_HDR_SHORT || t->nkeys > (ld->len - ld->off) / KS_ENTRY_MIN_BYTES) {
		ks_err(ld->err, ld->errlen, "truncated or corrupt: \"keys\" announces %u entries "
		       "in the %zu bytes left", t->nkeys, ld->len - ld->off);
		return -1;
	}
	t->keys_off = ld->off;
	t->deferred = !(t->seen & KS_TOP_VERSION);
	t->s = ks_load_entries(ld, t->nkeys, t->deferred);
	return t->s == NULL ? -1 : 0;
}

/* The value of "version" or "generation" (<bit>, <name>): an unsigned
 * integer. Returns 0, or -1 with a message. */
static int
ks_top_uint(struct ks_loader *ld, struct ks_top *t, unsigned bit, const char *name)
{
	const msgpack_object *o;

	if (ks_next(ld) == -1)
		return -1;
	o = &ld->up.data;
	if (o->type != MSGPACK_OBJECT_POSITIVE_INTEGER) {
		ks_err(ld->err, ld->errlen, "\"%s\" is not an unsigned integer", name);
		return -1;
	}
	if (bit == KS_TOP_GENERATION) {
		t->generation = o->via.u64;
	} else if (o->via.u64 != KS_FILE_VERSION) {
		ks_err(ld->err, ld->errlen, "unsupported store version %llu (this keyauth reads version %d)",
		       (unsigned long long)o->via.u64, KS_FILE_VERSION);
		return -1;
	}
	return 0;
}

/* After the map: every field was there, and nothing follows it. Returns 0,
 * or -1 with a message. */
static int
ks_top_check(const struct ks_loader *ld, const struct ks_top *t)
{
	if (!(t->seen & KS_TOP_VERSION)) {
		ks_err(ld->err, ld->errlen, "no \"version\" field (not a key store?)");
		return -1;
	}
	if ((t->seen & (KS_TOP_GENERATION | KS_TOP_KEYS)) != (KS_TOP_GENERATION | KS_TOP_KEYS)) {
		ks_err(ld->err, ld->errlen, "missing top-level field \"%s\"",
		       (t->seen & KS_TOP_GENERATION) ? "keys" : "generation");
		return -1;
	}
	if (ld->off != ld->len) {
		ks_err(ld->err, ld->errlen, "%zu unexpected bytes after the key store map at offset %zu",
		       ld->len - ld->off, ld->off);
		return -1;
	}
	return 0;
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
	struct ks_top t = { .s = NULL };
	uint32_t npairs;
	int rc;

	if ((rc = ks_read_header(ld, true, &npairs)) != KS_HDR_OK) {
		if (rc == KS_HDR_OTHER && ks_next(ld) == 0)
			ks_err(ld->err, ld->errlen, "not a key store (top level is not a msgpack map)");
		else if (rc == KS_HDR_SHORT)
			ks_next(ld);            /* words "truncated" */
		return NULL;
	}
	for (uint32_t i = 0; i < npairs; i++) {
		const char *name = NULL;
		unsigned bit = ks_top_name(ld, &t, &name);

		if (bit == 0)
			goto fail;
		if ((bit == KS_TOP_KEYS ? ks_top_keys(ld, &t) : ks_top_uint(ld, &t, bit, name)) == -1)
			goto fail;
	}
	if (ks_top_check(ld, &t) == -1)
		goto fail;
	if (t.deferred) {
		ks_set_free(t.s);
		ld->off = t.keys_off;
		if ((t.s = ks_load_entries(ld, t.nkeys, false)) == NULL)
			return NULL;
	}
	t.s->generation = t.generation;
	return t.s;
fail:
	ks_set_free(t.s);
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
	return ks_set_load_stat(path, missing, NULL, NULL, err, errlen);
}

struct ks_set *
ks_set_load_stat(const char *path, bool *missing, struct stat *read_st,
                 const struct ft_trust *trust, char *err, size_t errlen)
{
	struct ft_trust self;
	struct ks_set *s;
	size_t len = 0;
	char *buf = NULL;
	char msg[256], why[1024];
	int fd;

	if (missing)
		*missing = false;
	if (read_st)
		memset(read_st, 0, sizeof(*read_st));
	if (trust == NULL) {
		ft_trust_for(&self, NULL);
		trust = &self;
	}
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
	if (fd == -1) {
		if (errno == ENOENT) {
			/* No keys, unless another user could create the file. */
			if (ft_check_path(trust, path, NULL, why, sizeof(why)) == -1) {
				ks_err(err, errlen, "%s", why);
				return NULL;
			}
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

		/* Whoever can write the store can add keys: the file read and the
		 * directories above it must be trusted (filetrust.h). */
		if (fstat(fd, &st) == -1) {
			ks_err(err, errlen, "%s: fstat: %s", path, strerror(errno));
			close(fd);
			return NULL;
		}
		if (read_st != NULL)
			*read_st = st;
		if (ft_check_path(trust, path, &st, why, sizeof(why)) == -1) {
			close(fd);
			ks_err(err, errlen, "%s", why);
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

/* ---- scopes ------------------------------------------------------------------- */

/* Indexed by the scope bits: the canonical "read,write,deploy" order. */
static const char *const ks_scope_lists[KS_SCOPES_ALL + 1] = {
	"", "read", "write", "read,write", "deploy", "read,deploy", "write,deploy",
	"read,write,deploy",
};

const char *
ks_scopes_str(uint32_t scopes)
{
	return ks_scope_lists[scopes & KS_SCOPES_ALL];
}

uint32_t
ks_scope_bit(const char *name, size_t len)
{
	static const char *const names[] = { "read", "write", "deploy" };

	for (unsigned i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (strlen(names[i]) == len && memcmp(names[i], name, len) == 0)
			return 1u << i;
	return 0;
}
