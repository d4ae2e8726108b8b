/* SPDX-License-Identifier: Apache-2.0 */
/*
 * provider: what a route's LLM vendor expects, as data.
 *
 * A provider profile names, for one vendor, where clients put their key (an
 * ordered list of carriers, the first present wins), how the gateway hands
 * the provider its own credential, and the shape of the JSON error bodies
 * the vendor's SDKs parse. Each part can be overridden per route. No I/O, no
 * libconfig: conf.c parses the strings with these functions, ctl_render.c
 * renders the result. doc/PROVIDERS.md is the reference.
 */
#ifndef AGENT_PROVIDER_H
#define AGENT_PROVIDER_H

#include <stdbool.h>
#include <stddef.h>

#define CARRIER_NAME_MAX      64
#define ROUTE_MAX_CARRIERS    8

enum key_location {
	KEYLOC_HEADER = 0,
	KEYLOC_QUERY  = 1,
};

/* One place a client key may arrive: a header (req.fhdr, a leading "Bearer"
 * is stripped by the agent) or a query parameter (url_param). */
struct carrier {
	enum key_location loc;
	char name[CARRIER_NAME_MAX + 1];
};

enum provider_kind {
	PROVIDER_GENERIC = 0,        /* the seed's behaviour: X-API-Key, Bearer upstream, OpenAI errors */
	PROVIDER_OPENAI,
	PROVIDER_AZURE_OPENAI,
	PROVIDER_ANTHROPIC,
	PROVIDER_GEMINI,
	PROVIDER_MISTRAL,
	PROVIDER_ENTRIES
};

enum error_format {
	ERRFMT_OPENAI = 0,           /* {"error":{"message","type","param","code"}} */
	ERRFMT_ANTHROPIC,            /* {"type":"error","error":{"type","message"}} */
	ERRFMT_GOOGLE,               /* {"error":{"code","message","status"}} */
	ERRFMT_ENTRIES
};

enum upauth_kind {
	UPAUTH_HEADER = 0,           /* <name>: <prefix><credential> */
	UPAUTH_QUERY,                /* ?<name>=<credential> appended */
	UPAUTH_NONE,                 /* the gateway adds nothing */
};

/* How the provider's own credential (from HAProxy's environment) travels. */
struct upstream_auth {
	enum upauth_kind kind;
	char name[CARRIER_NAME_MAX + 1];
	char prefix[16];             /* "Bearer " or "" */
};

struct provider_profile {
	const char *name;            /* as written in keyauth.conf */
	struct carrier carriers[ROUTE_MAX_CARRIERS];
	unsigned ncarriers;
	struct upstream_auth upstream;
	enum error_format errors;
};

/* The profile named <name>, or NULL. */
const struct provider_profile *provider_find(const char *name);
const struct provider_profile *provider_get(enum provider_kind k);
enum provider_kind provider_kind_of(const struct provider_profile *p);

/* "openai, azure-openai, ..." for error messages. */
const char *provider_names(void);

/* Parses a carrier: "bearer" (the Authorization header), "header:NAME" or
 * "query:NAME". Returns 0, or -1 with a message (and the fix) in <err>. The
 * name must be one HAProxy matches literally: a header name of
 * [A-Za-z0-9_-], a query parameter of [A-Za-z0-9_.~-], 1..64 bytes. */
int carrier_parse(const char *s, struct carrier *out, char *err, size_t errlen);

/* True when two carriers name the same place (header names compare without
 * case, query parameters with it, as HAProxy matches them). */
bool carrier_same(const struct carrier *a, const struct carrier *b);

/* True when <c> is the Authorization header (the agent strips "Bearer"). */
bool carrier_is_bearer(const struct carrier *c);

/* "bearer", "header:X-API-Key", "query:key" into <buf>. */
const char *carrier_str(const struct carrier *c, char *buf, size_t size);

/* Parses an upstream credential carrier: "bearer" (Authorization: Bearer),
 * "header:NAME" (raw value), "query:NAME" or "none". Same rules as
 * carrier_parse. */
int upstream_auth_parse(const char *s, struct upstream_auth *out, char *err, size_t errlen);
const char *upstream_auth_str(const struct upstream_auth *u, char *buf, size_t size);

/* "openai", "anthropic", "google": the error body shapes. */
int error_format_parse(const char *s, enum error_format *out);
const char *error_format_str(enum error_format f);

/* Header and query names a client key is commonly sent in, removed from
 * every allowed request on every route (besides the route's own carriers),
 * so that a copy of the key in a second place never reaches a provider. */
extern const char *const provider_strip_headers[];
extern const size_t provider_nstrip_headers;
extern const char *const provider_strip_query[];
extern const size_t provider_nstrip_query;

#endif /* AGENT_PROVIDER_H */
