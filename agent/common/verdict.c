/* SPDX-License-Identifier: Apache-2.0 */
/*
 * verdict: (route, presented credential, time) -> verdict.
 *
 * Shared by keyauthd's workers and `keyauthctl key verify`. Reads only its
 * immutable inputs (conf, key set) and writes only the caller's struct
 * verdict, so any thread may call it. The presented key is hashed on the
 * stack and the copy wiped; it never reaches a message.
 */
#include <string.h>
#include <strings.h>

#include <openssl/crypto.h>

#include "conf.h"
#include "keyfmt.h"
#include "keystore.h"
#include "verdict.h"

/* Static, JSON-safe (no quote, backslash or control character), and
 * generic: the header or parameter name varies per route. */
static const char *const verdict_messages[VERDICT_ENTRIES] = {
	[VERDICT_OK]            = "OK",
	[VERDICT_MISSING]       = "Missing API key.",
	[VERDICT_MALFORMED]     = "Malformed API key.",
	[VERDICT_INVALID]       = "Incorrect API key provided.",
	[VERDICT_EXPIRED]       = "API key has expired.",
	[VERDICT_REVOKED]       = "API key has been revoked.",
	[VERDICT_FORBIDDEN]     = "API key is not allowed on this route.",
	[VERDICT_UNKNOWN_ROUTE] = "Unknown route: the gateway and the agent configurations are out of step.",
};

/* The values of txn.keyauth.status (README, "How it fits together"). */
static const char *const verdict_names[VERDICT_ENTRIES] = {
	[VERDICT_OK]            = "ok",
	[VERDICT_MISSING]       = "missing",
	[VERDICT_MALFORMED]     = "malformed",
	[VERDICT_INVALID]       = "invalid",
	[VERDICT_EXPIRED]       = "expired",
	[VERDICT_REVOKED]       = "revoked",
	[VERDICT_FORBIDDEN]     = "forbidden",
	[VERDICT_UNKNOWN_ROUTE] = "unknown_route",
};

const char *
verdict_status_str(enum verdict_status s)
{
	return ((unsigned)s < VERDICT_ENTRIES) ? verdict_names[s] : "unknown";
}

static bool
verdict_is_blank(char c)
{
	return c == ' ' || c == '\t';
}

/*
 * "Bearer" must be followed by a blank to be a scheme ("Bearerabc" is kept
 * whole and judged as a key); "Bearer" alone (after trimming) is a scheme
 * with no credential and yields an empty slice.
 */
void
verdict_strip_bearer(const char *in, size_t len, const char **out, size_t *outlen)
{
	if (in == NULL)
		len = 0;
	while (len > 0 && verdict_is_blank(*in))
		in++, len--;
	while (len > 0 && verdict_is_blank(in[len - 1]))
		len--;
	if (len >= 6 && strncasecmp(in, "bearer", 6) == 0) {
		if (len == 6) {
			in += 6;
			len = 0;
		} else if (verdict_is_blank(in[6])) {
			in += 6, len -= 6;
			while (len > 0 && verdict_is_blank(*in))
				in++, len--;
		}
	}
	*out = in;
	*outlen = len;
}

uint32_t
verdict_rpm(const struct ks_entry *e, const struct route *r)
{
	if (e != NULL && e->rpm != 0)
		return e->rpm;
	return r != NULL ? r->rate_limit_rpm : 0;
}

const char *
verdict_scopes(const struct verdict *v)
{
	if (v->status != VERDICT_OK || v->route == NULL || !v->route->admin ||
	    v->entry == NULL || v->entry->scopes == 0)
		return NULL;
	return ks_scopes_str(v->entry->scopes);
}

static void
verdict_set(struct verdict *v, enum verdict_status s)
{
	v->status = s;
	v->message = verdict_messages[s];
}

void
verdict_eval(const struct conf *c, const struct ks_set *ks,
             const char *route, size_t route_len,
             const char *key, size_t key_len,
             int64_t now, struct verdict *v)
{
	const struct route *r;
	const struct ks_entry *e;
	uint8_t digest[KEY_DIGEST_LEN];
	const char *k;
	size_t klen;

	v->entry = NULL;
	v->route = NULL;
	v->rpm = 0;
	/* A deny-all set (stale shared store, stale_action "deny") fails closed
	 * the way a configuration mismatch does: the rendered rules answer 503. */
	if (route == NULL || ks_set_denies_all(ks) ||
	    (r = conf_route_find(c, route, route_len)) == NULL) {
		verdict_set(v, VERDICT_UNKNOWN_ROUTE);
		return;
	}
	v->route = r;
	if (key == NULL) {
		verdict_set(v, VERDICT_MISSING);
		return;
	}
	verdict_strip_bearer(key, key_len, &k, &klen);
	if (klen == 0) {
		verdict_set(v, VERDICT_MISSING);
		return;
	}
	/* The length cap comes first so nothing unbounded is scanned or hashed. */
	if (klen > KEY_MAX_LEN || !keyfmt_charset_ok(k, klen, false) ||
	    keyfmt_check(c->key_prefix, k, klen) == KEYFMT_BAD) {
		verdict_set(v, VERDICT_MALFORMED);
		return;
	}
	keyfmt_digest(k, klen, digest);
	e = ks_lookup(ks, digest);
	OPENSSL_cleanse(digest, sizeof(digest));
	if (e == NULL) {
		verdict_set(v, VERDICT_INVALID);
		return;
	}
	v->entry = e;
	if (e->revoked != 0 && e->revoked <= now)
		verdict_set(v, VERDICT_REVOKED);
	else if (e->expires != 0 && now >= e->expires)
		verdict_set(v, VERDICT_EXPIRED);
	else if (!ks_entry_has_route(e, r->name, r->name_len))
		verdict_set(v, VERDICT_FORBIDDEN);
	else {
		verdict_set(v, VERDICT_OK);
		v->rpm = verdict_rpm(e, r);
	}
}
