/* SPDX-License-Identifier: Apache-2.0 */
/*
 * provider: the vendor profiles and the carrier syntax (see provider.h).
 *
 * The profiles follow what each vendor's API and official SDKs do:
 *   openai        clients: Authorization: Bearer; upstream the same
 *   azure-openai  clients: api-key (AzureOpenAI SDK), or Bearer; upstream api-key
 *   anthropic     clients: x-api-key, or Bearer (SDKs given an auth token);
 *                 upstream x-api-key; Anthropic's error shape
 *   gemini        clients: x-goog-api-key (@google/genai), or ?key= (REST);
 *                 upstream x-goog-api-key; Google's error shape
 *   mistral       clients: Bearer; upstream the same
 *   generic       the behaviour before profiles existed: X-API-Key in,
 *                 Bearer upstream, OpenAI's error shape
 */
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "provider.h"

#define HDR(n)   { KEYLOC_HEADER, n }
#define QRY(n)   { KEYLOC_QUERY, n }
#define BEARER   { UPAUTH_HEADER, "Authorization", "Bearer " }

static const struct provider_profile profiles[PROVIDER_ENTRIES] = {
	[PROVIDER_GENERIC] = {
		"generic", { HDR("X-API-Key") }, 1, BEARER, ERRFMT_OPENAI },
	[PROVIDER_OPENAI] = {
		"openai", { HDR("Authorization") }, 1, BEARER, ERRFMT_OPENAI },
	[PROVIDER_AZURE_OPENAI] = {
		"azure-openai", { HDR("api-key"), HDR("Authorization") }, 2,
		{ UPAUTH_HEADER, "api-key", "" }, ERRFMT_OPENAI },
	[PROVIDER_ANTHROPIC] = {
		"anthropic", { HDR("x-api-key"), HDR("Authorization") }, 2,
		{ UPAUTH_HEADER, "x-api-key", "" }, ERRFMT_ANTHROPIC },
	[PROVIDER_GEMINI] = {
		"gemini", { HDR("x-goog-api-key"), QRY("key") }, 2,
		{ UPAUTH_HEADER, "x-goog-api-key", "" }, ERRFMT_GOOGLE },
	[PROVIDER_MISTRAL] = {
		"mistral", { HDR("Authorization") }, 1, BEARER, ERRFMT_OPENAI },
};

const char *const provider_strip_headers[] = {
	"Authorization", "Proxy-Authorization", "X-API-Key", "api-key", "x-goog-api-key",
};
const size_t provider_nstrip_headers = sizeof(provider_strip_headers) / sizeof(provider_strip_headers[0]);
const char *const provider_strip_query[] = { "key", "api_key", "api-key", "apikey" };
const size_t provider_nstrip_query = sizeof(provider_strip_query) / sizeof(provider_strip_query[0]);

const struct provider_profile *
provider_find(const char *name)
{
	for (size_t i = 0; i < PROVIDER_ENTRIES; i++) {
		if (strcmp(profiles[i].name, name) == 0)
			return &profiles[i];
	}
	return NULL;
}

const struct provider_profile *
provider_get(enum provider_kind k)
{
	return (size_t)k < PROVIDER_ENTRIES ? &profiles[k] : &profiles[PROVIDER_GENERIC];
}

enum provider_kind
provider_kind_of(const struct provider_profile *p)
{
	return (enum provider_kind)(p - profiles);
}

const char *
provider_names(void)
{
	return "\"openai\", \"azure-openai\", \"anthropic\", \"gemini\", \"mistral\", \"generic\"";
}

static bool
name_ok(const char *s, size_t n, const char *extra)
{
	if (n == 0 || n > CARRIER_NAME_MAX)
		return false;
	for (size_t i = 0; i < n; i++) {
		char ch = s[i];

		if ((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9'))
			continue;
		if (ch == '\0' || strchr(extra, ch) == NULL)
			return false;
	}
	return true;
}

/* "header:NAME" / "query:NAME" into <loc>/<name>; <what> names the setting. */
static int
parse_place(const char *s, enum key_location *loc, char *name, const char *what,
            const char *bearer_hint, char *err, size_t errlen)
{
	const char *n;
	const char *extra;

	if (strncmp(s, "header:", 7) == 0) {
		*loc = KEYLOC_HEADER;
		n = s + 7;
		extra = "_-";
	} else if (strncmp(s, "query:", 6) == 0) {
		*loc = KEYLOC_QUERY;
		n = s + 6;
		extra = "_.~-";
	} else {
		snprintf(err, errlen, "bad %s \"%.64s\" (use %s\"header:NAME\" or \"query:NAME\", "
		         "e.g. \"header:x-api-key\")", what, s, bearer_hint);
		return -1;
	}
	if (!name_ok(n, strlen(n), extra)) {
		snprintf(err, errlen, "bad %s \"%.64s\": HAProxy matches names literally, so use 1 to "
		         "%d characters of A-Z a-z 0-9 %s", what, s, CARRIER_NAME_MAX,
		         *loc == KEYLOC_HEADER ? "_ - for a header" : "_ . ~ - for a query parameter");
		return -1;
	}
	memcpy(name, n, strlen(n) + 1);
	return 0;
}

int
carrier_parse(const char *s, struct carrier *out, char *err, size_t errlen)
{
	memset(out, 0, sizeof(*out));
	if (strcasecmp(s, "bearer") == 0) {
		out->loc = KEYLOC_HEADER;
		memcpy(out->name, "Authorization", sizeof("Authorization"));
		return 0;
	}
	return parse_place(s, &out->loc, out->name, "carrier", "\"bearer\", ", err, errlen);
}

bool
carrier_same(const struct carrier *a, const struct carrier *b)
{
	if (a->loc != b->loc)
		return false;
	return a->loc == KEYLOC_HEADER ? strcasecmp(a->name, b->name) == 0 :
	                                 strcmp(a->name, b->name) == 0;
}

bool
carrier_is_bearer(const struct carrier *c)
{
	return c->loc == KEYLOC_HEADER && strcasecmp(c->name, "Authorization") == 0;
}

const char *
carrier_str(const struct carrier *c, char *buf, size_t size)
{
	if (carrier_is_bearer(c))
		snprintf(buf, size, "bearer");
	else
		snprintf(buf, size, "%s:%s", c->loc == KEYLOC_HEADER ? "header" : "query", c->name);
	return buf;
}

int
upstream_auth_parse(const char *s, struct upstream_auth *out, char *err, size_t errlen)
{
	enum key_location loc;

	memset(out, 0, sizeof(*out));
	if (strcasecmp(s, "bearer") == 0) {
		*out = (struct upstream_auth)BEARER;
		return 0;
	}
	if (strcmp(s, "none") == 0) {
		out->kind = UPAUTH_NONE;
		return 0;
	}
	if (parse_place(s, &loc, out->name, "upstream_auth", "\"bearer\", \"none\", ",
	                err, errlen) == -1)
		return -1;
	out->kind = loc == KEYLOC_HEADER ? UPAUTH_HEADER : UPAUTH_QUERY;
	return 0;
}

const char *
upstream_auth_str(const struct upstream_auth *u, char *buf, size_t size)
{
	switch (u->kind) {
	case UPAUTH_NONE:
		snprintf(buf, size, "none");
		break;
	case UPAUTH_QUERY:
		snprintf(buf, size, "query:%s", u->name);
		break;
	case UPAUTH_HEADER:
		if (u->prefix[0] != '\0')
			snprintf(buf, size, "bearer");
		else
			snprintf(buf, size, "header:%s", u->name);
		break;
	}
	return buf;
}

static const char *const errfmt_names[ERRFMT_ENTRIES] = {
	[ERRFMT_OPENAI] = "openai",
	[ERRFMT_ANTHROPIC] = "anthropic",
	[ERRFMT_GOOGLE] = "google",
};

int
error_format_parse(const char *s, enum error_format *out)
{
	for (size_t i = 0; i < ERRFMT_ENTRIES; i++) {
		if (strcmp(errfmt_names[i], s) == 0) {
			*out = (enum error_format)i;
			return 0;
		}
	}
	return -1;
}

const char *
error_format_str(enum error_format f)
{
	return (size_t)f < ERRFMT_ENTRIES ? errfmt_names[f] : "openai";
}
