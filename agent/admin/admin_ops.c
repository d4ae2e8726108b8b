/* SPDX-License-Identifier: Apache-2.0 */
/*
 * admin_ops: the op table and the strict request decoder.
 *
 * A request becomes a keyauthctl command line here and nowhere else. The
 * words are fixed literals or "--option=value" (getopt_long reads the value
 * after '=' whole, so a value starting with '-' stays a value); the one
 * positional word, a key id or route name, is checked against a character
 * set that cannot start an option. keyauthctl then validates the values
 * exactly as it does for an operator (same functions); this file checks the
 * shape: JSON types, unknown fields, duplicate keys, ranges, and which
 * fields may be combined. Both the web process and the executor run it.
 */
#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include <jansson.h>

#include "admin.h"

const struct admin_route admin_routes[] = {
	{ "GET",   "/v1/whoami",           ADMIN_OP_WHOAMI,         "whoami",         ADMIN_SCOPE_READ,   false, false },
	{ "GET",   "/openapi.json",        ADMIN_OP_OPENAPI,        "openapi",        ADMIN_SCOPE_READ,   false, false },
	{ "GET",   "/v1/routes",           ADMIN_OP_ROUTE_LIST,     "route.list",     ADMIN_SCOPE_READ,   false, true },
	{ "GET",   "/v1/routes/{name}",    ADMIN_OP_ROUTE_GET,      "route.get",      ADMIN_SCOPE_READ,   false, true },
	{ "PATCH", "/v1/routes/{name}",    ADMIN_OP_ROUTE_EDIT,     "route.edit",     ADMIN_SCOPE_WRITE,  true,  true },
	{ "GET",   "/v1/keys",             ADMIN_OP_KEY_LIST,       "key.list",       ADMIN_SCOPE_READ,   false, true },
	{ "POST",  "/v1/keys",             ADMIN_OP_KEY_CREATE,     "key.create",     ADMIN_SCOPE_WRITE,  true,  true },
	{ "GET",   "/v1/keys/{id}",        ADMIN_OP_KEY_GET,        "key.get",        ADMIN_SCOPE_READ,   false, true },
	{ "PATCH", "/v1/keys/{id}",        ADMIN_OP_KEY_SET,        "key.set",        ADMIN_SCOPE_WRITE,  true,  true },
	{ "POST",  "/v1/keys/{id}/revoke", ADMIN_OP_KEY_REVOKE,     "key.revoke",     ADMIN_SCOPE_WRITE,  true,  true },
	{ "POST",  "/v1/keys/{id}/rotate", ADMIN_OP_KEY_ROTATE,     "key.rotate",     ADMIN_SCOPE_WRITE,  true,  true },
	{ "GET",   "/v1/keys/{id}/usage",  ADMIN_OP_KEY_USAGE,      "key.usage",      ADMIN_SCOPE_READ,   false, true },
	{ "GET",   "/v1/audit",            ADMIN_OP_AUDIT,          "audit.read",     ADMIN_SCOPE_READ,   false, true },
	{ "GET",   "/v1/deploy/preview",   ADMIN_OP_DEPLOY_PREVIEW, "deploy.preview", ADMIN_SCOPE_READ,   false, true },
	{ "POST",  "/v1/deploy",           ADMIN_OP_DEPLOY,         "deploy",         ADMIN_SCOPE_DEPLOY, true,  true },
};
const size_t admin_nroutes = sizeof(admin_routes) / sizeof(admin_routes[0]);

int
admin_err_set(struct admin_err *e, int status, const char *code, const char *fmt, ...)
{
	va_list ap;

	e->status = status;
	snprintf(e->code, sizeof(e->code), "%s", code);
	va_start(ap, fmt);
	vsnprintf(e->msg, sizeof(e->msg), fmt, ap);
	va_end(ap);
	return -1;
}

/* ---- path matching ------------------------------------------------------------ */

/* A key id: [A-Za-z0-9]; a route name: [A-Za-z0-9_-] not starting with '-'. */
static bool
param_ok(const char *s, size_t len, bool name)
{
	size_t i;

	if (len == 0 || len > ADMIN_PARAM_MAX || s[0] == '-')
		return false;
	for (i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];

		if (!isalnum(c) && !(name && (c == '_' || c == '-')))
			return false;
	}
	return true;
}

/* Does <path> match <pattern>? The variable segment goes to <param>. */
static bool
pattern_match(const char *pattern, const char *path, char param[ADMIN_PARAM_MAX + 1])
{
	const char *p = pattern, *s = path;

	param[0] = '\0';
	while (*p != '\0') {
		if (*p == '{') {
			const char *pe = strchr(p, '}');
			size_t n = strcspn(s, "/");
			bool name = strncmp(p, "{name}", 6) == 0;

			if (pe == NULL || !param_ok(s, n, name))
				return false;
			memcpy(param, s, n);
			param[n] = '\0';
			p = pe + 1;
			s += n;
			continue;
		}
		if (*p != *s)
			return false;
		p++;
		s++;
	}
	return *s == '\0';
}

const struct admin_route *
admin_route_match(const char *method, const char *path, char param[ADMIN_PARAM_MAX + 1],
                  char *allow, size_t allowlen)
{
	char tmp[ADMIN_PARAM_MAX + 1];
	size_t i, off = 0;

	if (allowlen > 0)
		allow[0] = '\0';
	for (i = 0; i < admin_nroutes; i++) {
		const struct admin_route *r = &admin_routes[i];

		if (!pattern_match(r->pattern, path, tmp))
			continue;
		if (strcmp(r->method, method) == 0 ||
		    (strcmp(method, "HEAD") == 0 && strcmp(r->method, "GET") == 0)) {
			memcpy(param, tmp, sizeof(tmp));
			return r;
		}
		if (off < allowlen) {
			int n = snprintf(allow + off, allowlen - off, "%s%s%s", off ? ", " : "",
			                 r->method, strcmp(r->method, "GET") == 0 ? ", HEAD" : "");

			off += n > 0 ? (size_t)n : 0;
		}
	}
	param[0] = '\0';
	return NULL;
}

/* ---- argv building ---------------------------------------------------------- */

static int
argv_word(struct admin_argv *a, const char *w, struct admin_err *e)
{
	if (a->n >= ADMIN_ARGV_MAX)
		return admin_err_set(e, 400, "invalid_field", "too many values");
	a->v[a->n++] = w;
	a->v[a->n] = NULL;
	return 0;
}

/* "--opt=value" (value: <len> bytes) copied into the argv's buffer. */
static int
argv_opt(struct admin_argv *a, const char *opt, const char *val, size_t len, struct admin_err *e)
{
	size_t need = strlen(opt) + 1 + len + 1;
	char *w;

	if (a->used + need > sizeof(a->buf))
		return admin_err_set(e, 400, "invalid_field", "request too large");
	w = a->buf + a->used;
	memcpy(w, opt, strlen(opt));
	w[strlen(opt)] = '=';
	memcpy(w + strlen(opt) + 1, val, len);
	w[need - 1] = '\0';
	a->used += need;
	return argv_word(a, w, e);
}

static int
argv_optf(struct admin_argv *a, const char *opt, struct admin_err *e, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
static int
argv_optf(struct admin_argv *a, const char *opt, struct admin_err *e, const char *fmt, ...)
{
	char v[64];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(v, sizeof(v), fmt, ap);
	va_end(ap);
	return argv_opt(a, opt, v, strlen(v), e);
}

/* ---- field checks -------------------------------------------------------------- */

/* A string value: no NUL, no control byte, 0..max bytes (min 1 unless
 * <empty_ok>). */
static int
text_ok(const char *field, json_t *v, size_t max, bool empty_ok, struct admin_err *e)
{
	const char *s;
	size_t len, i;

	if (!json_is_string(v))
		return admin_err_set(e, 400, "invalid_field", "%s: must be a string", field);
	s = json_string_value(v);
	len = json_string_length(v);
	if (strlen(s) != len)
		return admin_err_set(e, 400, "invalid_field", "%s: must not contain NUL", field);
	if ((len == 0 && !empty_ok) || len > max)
		return admin_err_set(e, 400, "invalid_field", "%s: must be %s1..%zu bytes", field,
		                     empty_ok ? "0 or " : "", max);
	for (i = 0; i < len; i++)
		if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
			return admin_err_set(e, 400, "invalid_field", "%s: control characters are not allowed", field);
	return 0;
}

static int
int_ok(const char *field, json_t *v, json_int_t lo, json_int_t hi, struct admin_err *e)
{
	if (!json_is_integer(v) || json_integer_value(v) < lo || json_integer_value(v) > hi)
		return admin_err_set(e, 400, "invalid_field", "%s: must be an integer in %lld..%lld",
		                     field, (long long)lo, (long long)hi);
	return 0;
}

/* Only the fields in <allowed> (NULL-terminated) may be in <o>. */
static int
fields_only(json_t *o, const char *const *allowed, struct admin_err *e)
{
	const char *k;
	json_t *v;

	json_object_foreach(o, k, v) {
		const char *const *a;

		(void)v;
		for (a = allowed; *a != NULL; a++)
			if (strcmp(*a, k) == 0)
				break;
		if (*a == NULL) {
			char q[80];

			return admin_err_set(e, 400, "unknown_field", "unknown field \"%s\"",
			                     admin_safe(q, sizeof(q), k));
		}
	}
	return 0;
}

const char *
admin_safe(char *out, size_t outlen, const char *s)
{
	size_t i, n = 0;

	for (i = 0; s[i] != '\0' && n + 1 < outlen; i++) {
		unsigned char c = (unsigned char)s[i];

		out[n++] = (isalnum(c) || c == '_' || c == '-' || c == '.') ? (char)c : '?';
	}
	out[n] = '\0';
	return out;
}

static int
routes_opt(struct admin_argv *a, json_t *v, struct admin_err *e)
{
	size_t i;
	json_t *r;

	if (!json_is_array(v) || json_array_size(v) == 0 || json_array_size(v) > 16)
		return admin_err_set(e, 400, "invalid_field", "routes: must be an array of 1..16 route names");
	json_array_foreach(v, i, r) {
		if (text_ok("routes[]", r, 64, false, e) != 0)
			return -1;
		if (argv_opt(a, "--route", json_string_value(r), json_string_length(r), e) != 0)
			return -1;
	}
	return 0;
}

static int
scopes_opt(struct admin_argv *a, json_t *v, struct admin_err *e)
{
	unsigned seen = 0, bit;
	size_t i;
	json_t *s;

	if (!json_is_array(v) || json_array_size(v) > 3)
		return admin_err_set(e, 400, "invalid_field", "scopes: must be an array of \"read\", \"write\", \"deploy\"");
	json_array_foreach(v, i, s) {
		if (!json_is_string(s) || admin_scopes_parse(json_string_value(s), &bit) != 0 ||
		    __builtin_popcount(bit) != 1 || (seen & bit))
			return admin_err_set(e, 400, "invalid_field", "scopes: each of \"read\", \"write\", \"deploy\" at most once");
		seen |= bit;
		if (argv_opt(a, "--scope", json_string_value(s), json_string_length(s), e) != 0)
			return -1;
	}
	return 0;
}

/* tags: {"k": "v"}; with <unset>, a null value removes the tag. */
static int
tags_opt(struct admin_argv *a, json_t *v, bool unset, struct admin_err *e)
{
	const char *k;
	json_t *t;
	char kv[160];

	if (!json_is_object(v) || json_object_size(v) > 16)
		return admin_err_set(e, 400, "invalid_field", "tags: must be an object of at most 16 tags");
	json_object_foreach(v, k, t) {
		if (strlen(k) == 0 || strlen(k) > 32 || strpbrk(k, "=,") != NULL)
			return admin_err_set(e, 400, "invalid_field", "tags: a name must be 1..32 bytes without '=' or ','");
		if (json_is_null(t) && unset) {
			if (argv_opt(a, "--untag", k, strlen(k), e) != 0)
				return -1;
			continue;
		}
		if (text_ok("tags value", t, 64, true, e) != 0)
			return -1;
		snprintf(kv, sizeof(kv), "%s=%s", k, json_string_value(t));
		if (argv_opt(a, "--tag", kv, strlen(kv), e) != 0)
			return -1;
	}
	return 0;
}

/* expires_in_days | expires_on | never_expires: at most one. */
static int
expiry_opt(struct admin_argv *a, json_t *o, struct admin_err *e)
{
	json_t *d = json_object_get(o, "expires_in_days"), *on = json_object_get(o, "expires_on"),
	       *nv = json_object_get(o, "never_expires");

	if ((d != NULL) + (on != NULL) + (nv != NULL) > 1)
		return admin_err_set(e, 400, "invalid_field",
		                     "expires_in_days, expires_on and never_expires exclude each other");
	if (d != NULL)
		return int_ok("expires_in_days", d, 1, 3650, e) != 0 ? -1 :
		       argv_optf(a, "--days", e, "%lld", (long long)json_integer_value(d));
	if (on != NULL) {
		if (!json_is_string(on) || !admin_date_ok(json_string_value(on)))
			return admin_err_set(e, 400, "invalid_field", "expires_on: must be a date YYYY-MM-DD");
		return argv_opt(a, "--expires", json_string_value(on), 10, e);
	}
	if (nv != NULL) {
		if (!json_is_true(nv))
			return admin_err_set(e, 400, "invalid_field", "never_expires: only true is allowed");
		return argv_word(a, "--no-expiry", e);
	}
	return 0;
}

/* The fields key create and key set share. */
static int
key_fields(struct admin_argv *a, json_t *o, bool set, struct admin_err *e)
{
	json_t *v;

	if ((v = json_object_get(o, "routes")) != NULL && routes_opt(a, v, e) != 0)
		return -1;
	if ((v = json_object_get(o, "owner")) != NULL &&
	    (text_ok("owner", v, 128, false, e) != 0 ||
	     argv_opt(a, "--owner", json_string_value(v), json_string_length(v), e) != 0))
		return -1;
	if ((v = json_object_get(o, "alias")) != NULL) {
		if (set && json_is_null(v)) {
			if (argv_opt(a, "--alias", "", 0, e) != 0)
				return -1;
		} else if (text_ok("alias", v, 64, set, e) != 0 ||
		           argv_opt(a, "--alias", json_string_value(v), json_string_length(v), e) != 0) {
			return -1;
		}
	}
	if ((v = json_object_get(o, "tags")) != NULL && tags_opt(a, v, set, e) != 0)
		return -1;
	if (expiry_opt(a, o, e) != 0)
		return -1;
	if ((v = json_object_get(o, "rpm")) != NULL &&
	    (int_ok("rpm", v, 0, 1000000, e) != 0 ||
	     argv_optf(a, "--rpm", e, "%lld", (long long)json_integer_value(v)) != 0))
		return -1;
	if ((v = json_object_get(o, "scopes")) != NULL && scopes_opt(a, v, e) != 0)
		return -1;
	return 0;
}

static const char *const key_create_fields[] = {
	"routes", "owner", "alias", "tags", "expires_in_days", "expires_on", "never_expires",
	"rpm", "scopes", NULL
};
static const char *const rotate_fields[] = { "grace_seconds", "expires_in_days", "rpm", "routes", NULL };
static const char *const route_edit_fields[] = { "security", "carriers", "rate_limit_rpm", "reset", NULL };
static const char *const security_fields[] = { "key_name", "key_location", NULL };
static const char *const deploy_fields[] = { "preview_id", NULL };
static const char *const no_fields[] = { NULL };

static int
route_edit(struct admin_argv *a, json_t *o, struct admin_err *e)
{
	json_t *v, *s;
	size_t i;

	if ((v = json_object_get(o, "security")) != NULL) {
		if (!json_is_object(v) || json_object_size(v) == 0)
			return admin_err_set(e, 400, "invalid_field", "security: must be an object with key_name and/or key_location");
		if (fields_only(v, security_fields, e) != 0)
			return -1;
		if ((s = json_object_get(v, "key_name")) != NULL &&
		    (text_ok("security.key_name", s, 64, false, e) != 0 ||
		     argv_opt(a, "--key-name", json_string_value(s), json_string_length(s), e) != 0))
			return -1;
		if ((s = json_object_get(v, "key_location")) != NULL) {
			if (!json_is_string(s) || (strcmp(json_string_value(s), "header") != 0 &&
			                           strcmp(json_string_value(s), "query") != 0))
				return admin_err_set(e, 400, "invalid_field", "security.key_location: must be \"header\" or \"query\"");
			if (argv_opt(a, "--key-location", json_string_value(s), json_string_length(s), e) != 0)
				return -1;
		}
	}
	if ((v = json_object_get(o, "carriers")) != NULL) {
		if (!json_is_array(v) || json_array_size(v) == 0 || json_array_size(v) > 8)
			return admin_err_set(e, 400, "invalid_field", "carriers: must be an array of 1..8 carriers");
		json_array_foreach(v, i, s)
			if (text_ok("carriers[]", s, 128, false, e) != 0 ||
			    argv_opt(a, "--carrier", json_string_value(s), json_string_length(s), e) != 0)
				return -1;
	}
	if ((v = json_object_get(o, "rate_limit_rpm")) != NULL &&
	    (int_ok("rate_limit_rpm", v, 0, 1000000, e) != 0 ||
	     argv_optf(a, "--rpm", e, "%lld", (long long)json_integer_value(v)) != 0))
		return -1;
	if ((v = json_object_get(o, "reset")) != NULL) {
		if (!json_is_true(v))
			return admin_err_set(e, 400, "invalid_field", "reset: only true is allowed");
		if (json_object_size(o) != 1)
			return admin_err_set(e, 400, "invalid_field", "reset: excludes every other field");
		if (argv_word(a, "--reset", e) != 0)
			return -1;
	}
	return 0;
}

/* An entity tag as sent: "..." (or bare), [A-Za-z0-9_.:-]{1,128}. */
static int
etag_opt(struct admin_argv *a, const char *im, struct admin_err *e)
{
	size_t len = strlen(im), i;

	if (len >= 2 && im[0] == '"' && im[len - 1] == '"') {
		im++;
		len -= 2;
	}
	if (len == 0 || len > ADMIN_ETAG_MAX)
		return admin_err_set(e, 400, "invalid_header", "If-Match: not an entity tag");
	for (i = 0; i < len; i++) {
		unsigned char c = (unsigned char)im[i];

		if (!isalnum(c) && c != '_' && c != '.' && c != ':' && c != '-')
			return admin_err_set(e, 400, "invalid_header", "If-Match: not an entity tag");
	}
	return argv_opt(a, "--if-match", im, len, e);
}

int
admin_build(const struct admin_in *in, struct admin_argv *a, struct admin_err *e)
{
	const struct admin_route *r = in->route;
	json_t *o = NULL, *v;
	json_error_t je;
	int rc = -1;

	memset(a, 0, sizeof(*a));
	if (r == NULL)
		return admin_err_set(e, 404, "not_found", "no such resource");
	/* The path parameter becomes a positional word: the executor gets it
	 * from a frame, so its shape is checked here again, not only by
	 * admin_route_match. */
	if (strchr(r->pattern, '{') != NULL ?
	    !param_ok(in->param, strlen(in->param), strstr(r->pattern, "{name}") != NULL) :
	    in->param[0] != '\0')
		return admin_err_set(e, 404, "not_found", "no such resource");
	if (in->body_len > ADMIN_BODY_MAX)
		return admin_err_set(e, 413, "too_large", "the body exceeds %d bytes", ADMIN_BODY_MAX);
	if (in->body_len > 0) {
		if (!r->body)
			return admin_err_set(e, 400, "unexpected_body", "this request takes no body");
		o = json_loadb(in->body, in->body_len, JSON_REJECT_DUPLICATES, &je);
		if (o == NULL)
			return admin_err_set(e, 400, "invalid_json", "malformed JSON at byte %d", je.position);
		if (!json_is_object(o)) {
			json_decref(o);
			return admin_err_set(e, 400, "invalid_json", "the body must be a JSON object");
		}
	} else if (r->op == ADMIN_OP_KEY_CREATE || r->op == ADMIN_OP_KEY_SET ||
	           r->op == ADMIN_OP_ROUTE_EDIT || r->op == ADMIN_OP_DEPLOY) {
		return admin_err_set(e, 400, "missing_body", "this request needs a JSON object body");
	}
	if (o == NULL)
		o = json_object();
	if (o == NULL)
		return admin_err_set(e, 500, "internal", "out of memory");
	if (admin_query_check(in, e) != 0)
		goto out;

	switch (r->op) {
	case ADMIN_OP_WHOAMI:
	case ADMIN_OP_OPENAPI:
		rc = 0;
		goto out;
	case ADMIN_OP_ROUTE_LIST:
		rc = (argv_word(a, "route", e) || argv_word(a, "list", e)) ? -1 : 0;
		break;
	case ADMIN_OP_ROUTE_GET:
		rc = (argv_word(a, "route", e) || argv_word(a, "show", e) ||
		      argv_word(a, in->param, e)) ? -1 : 0;
		break;
	case ADMIN_OP_ROUTE_EDIT:
		if (fields_only(o, route_edit_fields, e) != 0)
			goto out;
		if (json_object_size(o) == 0) {
			admin_err_set(e, 400, "missing_field", "nothing to change");
			goto out;
		}
		if (in->if_match == NULL) {
			admin_err_set(e, 428, "precondition_required",
			              "send If-Match with the ETag of GET /v1/routes/%s", in->param);
			goto out;
		}
		rc = (argv_word(a, "route", e) || argv_word(a, "set", e) || argv_word(a, in->param, e) ||
		      route_edit(a, o, e) || etag_opt(a, in->if_match, e)) ? -1 : 0;
		break;
	case ADMIN_OP_KEY_LIST:
		rc = (argv_word(a, "key", e) || argv_word(a, "list", e) ||
		      admin_query_args(in, a, e)) ? -1 : 0;
		break;
	case ADMIN_OP_KEY_CREATE:
		if (fields_only(o, key_create_fields, e) != 0)
			goto out;
		if (json_object_get(o, "routes") == NULL) {
			admin_err_set(e, 400, "missing_field", "routes: required");
			goto out;
		}
		rc = (argv_word(a, "key", e) || argv_word(a, "create", e) || key_fields(a, o, false, e)) ? -1 : 0;
		break;
	case ADMIN_OP_KEY_GET:
	case ADMIN_OP_KEY_USAGE:
		rc = (argv_word(a, "key", e) || argv_word(a, "show", e) || argv_word(a, in->param, e)) ? -1 : 0;
		break;
	case ADMIN_OP_KEY_SET:
		if (fields_only(o, key_create_fields, e) != 0)
			goto out;
		if (json_object_size(o) == 0) {
			admin_err_set(e, 400, "missing_field", "nothing to change");
			goto out;
		}
		rc = (argv_word(a, "key", e) || argv_word(a, "set", e) || argv_word(a, in->param, e) ||
		      key_fields(a, o, true, e)) ? -1 : 0;
		break;
	case ADMIN_OP_KEY_REVOKE:
		if (fields_only(o, no_fields, e) != 0)
			goto out;
		rc = (argv_word(a, "key", e) || argv_word(a, "revoke", e) || argv_word(a, in->param, e)) ? -1 : 0;
		break;
	case ADMIN_OP_KEY_ROTATE:
		if (fields_only(o, rotate_fields, e) != 0)
			goto out;
		if (argv_word(a, "key", e) || argv_word(a, "rotate", e) || argv_word(a, in->param, e))
			goto out;
		if ((v = json_object_get(o, "grace_seconds")) != NULL &&
		    (int_ok("grace_seconds", v, 0, 31536000, e) != 0 ||
		     argv_optf(a, "--grace", e, "%llds", (long long)json_integer_value(v)) != 0))
			goto out;
		if ((v = json_object_get(o, "expires_in_days")) != NULL &&
		    (int_ok("expires_in_days", v, 1, 3650, e) != 0 ||
		     argv_optf(a, "--days", e, "%lld", (long long)json_integer_value(v)) != 0))
			goto out;
		if ((v = json_object_get(o, "rpm")) != NULL &&
		    (int_ok("rpm", v, 0, 1000000, e) != 0 ||
		     argv_optf(a, "--rpm", e, "%lld", (long long)json_integer_value(v)) != 0))
			goto out;
		if ((v = json_object_get(o, "routes")) != NULL && routes_opt(a, v, e) != 0)
			goto out;
		rc = 0;
		break;
	case ADMIN_OP_AUDIT:
		rc = (argv_word(a, "audit", e) || admin_query_args(in, a, e)) ? -1 : 0;
		break;
	case ADMIN_OP_DEPLOY_PREVIEW:
		rc = (argv_word(a, "deploy", e) || argv_word(a, "--preview", e)) ? -1 : 0;
		break;
	case ADMIN_OP_DEPLOY:
		if (fields_only(o, deploy_fields, e) != 0)
			goto out;
		v = json_object_get(o, "preview_id");
		if (v == NULL) {
			admin_err_set(e, 400, "missing_field", "preview_id: required");
			goto out;
		}
		if (!json_is_string(v) || json_string_length(v) == 0 || json_string_length(v) > 128 ||
		    strspn(json_string_value(v), "0123456789abcdefABCDEF") != json_string_length(v)) {
			admin_err_set(e, 400, "invalid_field", "preview_id: must be the hex id of GET /v1/deploy/preview");
			goto out;
		}
		rc = (argv_word(a, "deploy", e) ||
		      argv_opt(a, "--if-preview", json_string_value(v), json_string_length(v), e)) ? -1 : 0;
		break;
	case ADMIN_OP_ENTRIES:
	default:
		admin_err_set(e, 500, "internal", "unknown op");
		goto out;
	}
	if (rc == 0)
		rc = argv_word(a, "--json", e);
out:
	json_decref(o);
	return rc;
}

int
admin_scopes_parse(const char *s, unsigned *bits)
{
	*bits = 0;
	while (*s != '\0') {
		size_t n = strcspn(s, ",");

		if (n == 4 && strncmp(s, "read", 4) == 0)
			*bits |= ADMIN_SCOPE_READ;
		else if (n == 5 && strncmp(s, "write", 5) == 0)
			*bits |= ADMIN_SCOPE_WRITE;
		else if (n == 6 && strncmp(s, "deploy", 6) == 0)
			*bits |= ADMIN_SCOPE_DEPLOY;
		else if (n != 0)
			return -1;
		s += n;
		if (*s == ',')
			s++;
	}
	return 0;
}

const char *
admin_scopes_str(unsigned bits, char *out, size_t outlen)
{
	snprintf(out, outlen, "%s%s%s%s%s", bits & ADMIN_SCOPE_READ ? "read" : "",
	         (bits & ADMIN_SCOPE_READ) && (bits & 6) ? "," : "",
	         bits & ADMIN_SCOPE_WRITE ? "write" : "",
	         (bits & ADMIN_SCOPE_WRITE) && (bits & ADMIN_SCOPE_DEPLOY) ? "," : "",
	         bits & ADMIN_SCOPE_DEPLOY ? "deploy" : "");
	return out;
}

int
admin_who_set(struct admin_who *w, const char *key_id, const char *owner, const char *scopes)
{
	size_t i;

	memset(w, 0, sizeof(*w));
	if (key_id == NULL || !param_ok(key_id, strlen(key_id), true))
		return -1;
	memcpy(w->key_id, key_id, strlen(key_id) + 1);
	if (owner != NULL) {
		if (strlen(owner) >= sizeof(w->owner))
			return -1;
		for (i = 0; owner[i] != '\0'; i++)
			if ((unsigned char)owner[i] < 0x20 || owner[i] == 0x7f)
				return -1;
		memcpy(w->owner, owner, strlen(owner) + 1);
	}
	if (scopes != NULL && admin_scopes_parse(scopes, &w->scopes) != 0)
		return -1;
	return 0;
}

int
admin_argv_opt(struct admin_argv *a, const char *opt, const char *val, size_t len, struct admin_err *e)
{
	return argv_opt(a, opt, val, len, e);
}

int
admin_argv_word(struct admin_argv *a, const char *w, struct admin_err *e)
{
	return argv_word(a, w, e);
}
