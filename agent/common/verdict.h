/* SPDX-License-Identifier: Apache-2.0 */
/*
 * verdict: (route, presented credential, time) -> verdict.
 *
 * Plain C with no SPOP and no libev, so that keyauthd and `keyauthctl key
 * verify` give the same answer through the same code. Thread-safe: reads only
 * its immutable inputs.
 */
#ifndef AGENT_VERDICT_H
#define AGENT_VERDICT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct conf;
struct ks_set;
struct ks_entry;
struct route;

enum verdict_status {
	VERDICT_OK = 0,          /* valid, unexpired, unrevoked, this route among its routes */
	VERDICT_MISSING,         /* no credential, or nothing left after "Bearer" */
	VERDICT_MALFORMED,       /* too long, bad characters, or our prefix with a bad checksum */
	VERDICT_INVALID,         /* well formed, not in the store */
	VERDICT_EXPIRED,
	VERDICT_REVOKED,
	VERDICT_FORBIDDEN,       /* valid key, this route not among its routes */
	VERDICT_UNKNOWN_ROUTE,   /* the route is not in the agent's configuration */
	VERDICT_ENTRIES
};

struct verdict {
	enum verdict_status status;
	const struct ks_entry *entry;  /* the stored key that matched, or NULL */
	const struct route *route;     /* the configured route, NULL for unknown_route */
	const char *message;           /* static, JSON-safe, never the key */
	uint32_t rpm;                  /* ok only: the effective requests-per-minute
	                                * limit, the key's own rpm, else the route's
	                                * rate_limit_rpm; 0 = none (and always 0
	                                * when the verdict is not ok) */
};

/* Strips surrounding whitespace and a leading "Bearer" scheme (any case,
 * followed by at least one space or tab). Returns the remaining slice in
 * <*out>/<*outlen> (possibly empty). */
void verdict_strip_bearer(const char *in, size_t len, const char **out, size_t *outlen);

/*
 * Evaluates one request. <key> NULL means the request carried no credential.
 * <now> is Unix time in seconds. <prefix> is the configured key prefix.
 * Order: unknown route, missing, malformed (length > KEY_MAX_LEN, bytes
 * outside 0x21..0x7e, our prefix with a bad checksum: no lookup), digest
 * lookup: invalid, revoked, expired, forbidden, ok.
 */
void verdict_eval(const struct conf *c, const struct ks_set *ks,
                  const char *route, size_t route_len,
                  const char *key, size_t key_len,
                  int64_t now, struct verdict *v);

const char *verdict_status_str(enum verdict_status s);

/* The limit a request with key <e> on route <r> is held to: <e>'s rpm when
 * set, else <r>'s rate_limit_rpm; 0 = none. Either may be NULL (no limit from
 * that side). verdict_eval stores it in v->rpm for ok verdicts. */
uint32_t verdict_rpm(const struct ks_entry *e, const struct route *r);

/* What txn.keyauth.scopes carries: the key's scopes ("read,write", canonical
 * order read, write, deploy) for an ok verdict on the admin route (conf.h,
 * route.admin) by a key that has some; NULL otherwise, and then the ACK
 * has no such variable (each one costs HAProxy a variable per request). */
const char *verdict_scopes(const struct verdict *v);

#endif /* AGENT_VERDICT_H */
