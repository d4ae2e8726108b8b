/* SPDX-License-Identifier: Apache-2.0 */
/*
 * conf_route: the routes of keyauth.conf, their security group, their
 * provider settings (provider.h; conf-int.h) and the HTTP methods they allow.
 */
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "conf-int.h"

/* ---- routes ------------------------------------------------------------ */

/* Route parsers get the route being filled; the route's index in the
 * conf is recovered from the ctx when a setting's line must be kept. */
static unsigned conf_route_index(struct conf_ctx *x, const struct route *r)
{
	return (unsigned)(r - x->c->routes);
}

static void conf_kw_route_name(struct conf_ctx *x, const config_setting_t *s, void *obj)
{
	struct route *r = obj;
	const char *v = config_setting_get_string(s);
	char q[CONF_QUOTE_MAX];

	if (!conf_token_ok(v, CONF_NAME_MAX, "_-")) {
		conf_err(x, s, "bad route name \"%s\" (use 1 to %d characters of A-Z a-z 0-9 _ -)",
			 conf_quote(q, sizeof(q), v), CONF_NAME_MAX);
		return;
	}
	if (conf_set_str(x, s, &r->name, v) == -1)
		return;
	r->name_len = strlen(v);
	x->route_name_s[conf_route_index(x, r)] = s;
}

static void conf_kw_route_type(struct conf_ctx *x, const config_setting_t *s, void *obj)
{
	struct route *r = obj;
	const char *v = config_setting_get_string(s);
	char q[CONF_QUOTE_MAX];

	if (strcmp(v, "provider") == 0)
		r->type = ROUTE_PROVIDER;
	else if (strcmp(v, "proxy") == 0)
		r->type = ROUTE_PROXY;
	else
		conf_err(x, s, "bad route type \"%s\" (use \"provider\" or \"proxy\")",
			 conf_quote(q, sizeof(q), v));
}

/* A context is "/" or "/seg(/seg)*" over [A-Za-z0-9_.-], without "..".
 * Also judges the admin group's context (conf_admin.c). */
const char *conf_context_problem(const char *v)
{
	size_t len = strlen(v);

	if (v[0] != '/')
		return "it must start with \"/\"";
	if (len > CONF_CONTEXT_MAX)
		return "it is longer than 255 characters";
	if (len > 1 && v[len - 1] == '/')
		return "it must not end with \"/\"";
	if (strstr(v, ".."))
		return "it must not contain \"..\"";
	if (strstr(v, "//"))
		return "it must not contain an empty segment \"//\"";
	if (!conf_token_ok(v, CONF_CONTEXT_MAX, "_./-"))
		return "only A-Z a-z 0-9 _ . / - are allowed";
	return NULL;
}

static void conf_kw_route_context(struct conf_ctx *x, const config_setting_t *s, void *obj)
{
	struct route *r = obj;
	const char *v = config_setting_get_string(s), *why;
	char q[CONF_QUOTE_MAX];

	why = conf_context_problem(v);
	if (why) {
		conf_err(x, s, "bad context \"%s\": %s (e.g. context = \"/openai\";)",
			 conf_quote(q, sizeof(q), v), why);
		return;
	}
	if (conf_set_str(x, s, &r->context, v) == -1)
		return;
	r->context_len = strlen(v);
	x->route_ctx_s[conf_route_index(x, r)] = s;
}

/* "host:port" with a DNS name or IPv4 host, or "[IPv6]:port". Only checked
 * enough to be safe to render into an HAProxy server or peer line. */
bool conf_hostport_ok(const char *v)
{
	const char *colon = strrchr(v, ':');
	char host[256];
	uint16_t port;
	size_t hlen;
	unsigned char bin[sizeof(struct in6_addr)];

	if (!colon || colon == v || (size_t)(colon - v) >= sizeof(host) ||
	    conf_parse_port(colon + 1, &port) == -1)
		return false;
	hlen = (size_t)(colon - v);
	memcpy(host, v, hlen);
	host[hlen] = '\0';
	if (host[0] == '[' && hlen > 2 && host[hlen - 1] == ']') {
		host[hlen - 1] = '\0';
		return inet_pton(AF_INET6, host + 1, bin) == 1;
	}
	return conf_token_ok(host, sizeof(host) - 1, ".-");
}

static void conf_kw_route_upstream(struct conf_ctx *x, const config_setting_t *s, void *obj)
{
	struct route *r = obj;
	const char *v = config_setting_get_string(s);
	char q[CONF_QUOTE_MAX];

	if (!conf_hostport_ok(v)) {
		conf_err(x, s, "bad upstream \"%s\" (use \"host:port\" or \"[IPv6]:port\", e.g. upstream = \"api.openai.com:443\";)",
			 conf_quote(q, sizeof(q), v));
		return;
	}
	conf_set_str(x, s, &r->upstream, v);
}

static void conf_set_route_tunnel(void *obj, long long v)
{
	((struct route *)obj)->tunnel_timeout_s = (unsigned)v;
}

void conf_set_route_rpm(void *obj, long long v)
{
	((struct route *)obj)->rate_limit_rpm = (uint32_t)v;
}

static void conf_kw_route_identity(struct conf_ctx *x, const config_setting_t *s, void *obj)
{
	struct route *r = obj;

	(void)x;
	r->identity_headers = config_setting_get_bool(s) != 0;
	r->set_identity = true;
}

static void conf_kw_sec_auth(struct conf_ctx *x, const config_setting_t *s, void *obj)
{
	const char *v = config_setting_get_string(s);
	char q[CONF_QUOTE_MAX];

	(void)obj;
	if (strcmp(v, "apiKey") != 0)
		conf_err(x, s, "unsupported authentication type \"%s\": only \"apiKey\" is supported",
			 conf_quote(q, sizeof(q), v));
}

static void conf_kw_sec_key_name(struct conf_ctx *x, const config_setting_t *s, void *obj)
{
	struct route *r = obj;
	const char *v = config_setting_get_string(s);
	char q[CONF_QUOTE_MAX];

	if (!conf_token_ok(v, CONF_NAME_MAX, "_-")) {
		conf_err(x, s, "bad key_name \"%s\" (use 1 to %d characters of A-Z a-z 0-9 _ -, e.g. key_name = \"X-API-Key\";)",
			 conf_quote(q, sizeof(q), v), CONF_NAME_MAX);
		return;
	}
	conf_set_str(x, s, &r->key_name, v);
	r->set_key = true;
}

static void conf_kw_sec_key_location(struct conf_ctx *x, const config_setting_t *s, void *obj)
{
	struct route *r = obj;
	const char *v = config_setting_get_string(s);
	char q[CONF_QUOTE_MAX];

	r->set_key = true;
	if (strcmp(v, "header") == 0)
		r->key_location = KEYLOC_HEADER;
	else if (strcmp(v, "query") == 0)
		r->key_location = KEYLOC_QUERY;
	else
		conf_err(x, s, "bad key_location \"%s\" (use \"header\" or \"query\")",
			 conf_quote(q, sizeof(q), v));
}

/* carriers = [ "header:x-api-key", "bearer", "query:key" ]: ordered, the
 * first one present in a request is the key. */
static void conf_kw_sec_carriers(struct conf_ctx *x, const config_setting_t *s, void *obj)
{
	struct route *r = obj;
	int n = config_setting_length(s);
	char msg[256], q[CONF_QUOTE_MAX], a[96];

	r->set_carriers = true;
	if (n == 0) {
		conf_err(x, s, "carriers is empty (list where clients send the key, e.g. carriers = [ \"bearer\", \"header:x-api-key\" ];)");
		return;
	}
	if (n > ROUTE_MAX_CARRIERS) {
		conf_err(x, s, "too many carriers: %d (at most %d)", n, ROUTE_MAX_CARRIERS);
		return;
	}
	r->ncarriers = 0;
	for (int i = 0; i < n; i++) {
		const config_setting_t *e = config_setting_get_elem(s, (unsigned)i);
		const char *v = config_setting_get_string(e);
		struct carrier *cr = &r->carriers[r->ncarriers];

		if (v == NULL) {
			conf_err(x, e, "carriers must hold strings (e.g. carriers = [ \"bearer\", \"header:x-api-key\" ];)");
			continue;
		}
		if (*v == '\0') {
			conf_err(x, e, "empty carrier in carriers (use \"bearer\", \"header:NAME\" or \"query:NAME\")");
			continue;
		}
		if (carrier_parse(v, cr, msg, sizeof(msg)) == -1) {
			conf_err(x, e, "%s", msg);
			continue;
		}
		for (unsigned j = 0; j < r->ncarriers && cr != NULL; j++) {
			if (carrier_same(&r->carriers[j], cr)) {
				conf_err(x, e, "duplicate carrier \"%s\" (same place as \"%s\"; list each place once)",
					 conf_quote(q, sizeof(q), v), carrier_str(&r->carriers[j], a, sizeof(a)));
				cr = NULL;
			}
		}
		if (cr != NULL)
			r->ncarriers++;
	}
}

/* ---- methods ----------------------------------------------------------- */

static const char *const route_method_names[ROUTE_M_ENTRIES] = {
	[ROUTE_M_GET] = "GET", [ROUTE_M_HEAD] = "HEAD", [ROUTE_M_POST] = "POST",
	[ROUTE_M_PUT] = "PUT", [ROUTE_M_PATCH] = "PATCH", [ROUTE_M_DELETE] = "DELETE",
	[ROUTE_M_OPTIONS] = "OPTIONS",
};

const char *route_method_str(enum route_method m)
{
	return (unsigned)m < ROUTE_M_ENTRIES ? route_method_names[m] : NULL;
}

/* methods = [ "GET", "POST" ]: the HTTP methods HAProxy lets through on the
 * route; any other is answered 405 before the agent is asked. Names are
 * HTTP's, upper case (methods are case-sensitive). TRACE echoes the request,
 * headers and key included, and CONNECT opens a tunnel to wherever the client
 * names: neither is ever allowed. */
static void conf_kw_route_methods(struct conf_ctx *x, const config_setting_t *s, void *obj)
{
	struct route *r = obj;
	int n = config_setting_length(s);
	char q[CONF_QUOTE_MAX];

	r->methods = 0;
	if (n == 0) {
		conf_err(x, s, "methods is empty (list the HTTP methods the route allows, e.g. methods = [ \"GET\", \"POST\" ];)");
		return;
	}
	for (int i = 0; i < n; i++) {
		const config_setting_t *e = config_setting_get_elem(s, (unsigned)i);
		const char *v = config_setting_get_string(e);
		unsigned m;

		if (v == NULL) {
			conf_err(x, e, "methods must hold strings (e.g. methods = [ \"GET\", \"POST\" ];)");
			continue;
		}
		if (strcasecmp(v, "TRACE") == 0 || strcasecmp(v, "CONNECT") == 0) {
			conf_err(x, e, "method \"%s\" is never allowed (%s; remove it)",
				 conf_quote(q, sizeof(q), v), strcasecmp(v, "TRACE") == 0
				 ? "TRACE echoes the request back, key headers included"
				 : "CONNECT would open a tunnel to any host the client names");
			continue;
		}
		for (m = 0; m < ROUTE_M_ENTRIES; m++) {
			if (strcasecmp(v, route_method_names[m]) == 0)
				break;
		}
		if (m == ROUTE_M_ENTRIES) {
			conf_err(x, e, "unknown method \"%s\" (use GET, HEAD, POST, PUT, PATCH, DELETE or OPTIONS)",
				 conf_quote(q, sizeof(q), v));
			continue;
		}
		if (strcmp(v, route_method_names[m]) != 0) {
			conf_err(x, e, "method \"%s\" must be written \"%s\" (HTTP methods are case-sensitive)",
				 conf_quote(q, sizeof(q), v), route_method_names[m]);
			continue;
		}
		if (r->methods & (1u << m)) {
			conf_err(x, e, "duplicate method \"%s\" (list each method once)", v);
			continue;
		}
		r->methods |= 1u << m;
	}
	/* Not left empty after an error: the error is reported, and the
	 * route's later checks must not see a route that allows nothing. */
	if (r->methods == 0)
		r->methods = ROUTE_METHODS_DEFAULT;
}

static const struct conf_kw conf_security_kws[] = {
	{ "authentication", CONF_T_STRING, conf_kw_sec_auth, NULL, 0, 0, "authentication = \"apiKey\";" },
	{ "key_name", CONF_T_STRING, conf_kw_sec_key_name, NULL, 0, 0, "key_name = \"X-API-Key\";" },
	{ "key_location", CONF_T_STRING, conf_kw_sec_key_location, NULL, 0, 0, "key_location = \"header\";" },
	{ "carriers", CONF_T_SEQ, conf_kw_sec_carriers, NULL, 0, 0,
	  "carriers = [ \"bearer\", \"header:x-api-key\" ];" },
};

void conf_kw_route_security(struct conf_ctx *x, const config_setting_t *s, void *obj)
{
	conf_walk(x, s, " in security", conf_security_kws, COUNTOF(conf_security_kws), obj);
}

static void conf_kw_route_provider(struct conf_ctx *x, const config_setting_t *s, void *obj)
{
	struct route *r = obj;
	const char *v = config_setting_get_string(s);
	const struct provider_profile *p = provider_find(v);
	char q[CONF_QUOTE_MAX];

	if (p == NULL) {
		conf_err(x, s, "unknown provider \"%s\" (use one of %s)", conf_quote(q, sizeof(q), v),
			 provider_names());
		return;
	}
	r->provider = p;
}

static void conf_kw_route_upstream_auth(struct conf_ctx *x, const config_setting_t *s, void *obj)
{
	struct route *r = obj;
	char msg[256];

	if (upstream_auth_parse(config_setting_get_string(s), &r->upstream_auth, msg, sizeof(msg)) == -1) {
		conf_err(x, s, "%s", msg);
		return;
	}
	r->set_upauth = true;
}

static void conf_kw_route_error_format(struct conf_ctx *x, const config_setting_t *s, void *obj)
{
	struct route *r = obj;
	const char *v = config_setting_get_string(s);
	char q[CONF_QUOTE_MAX];

	if (error_format_parse(v, &r->errors) == -1) {
		conf_err(x, s, "bad error_format \"%s\" (use \"openai\", \"anthropic\" or \"google\")",
			 conf_quote(q, sizeof(q), v));
		return;
	}
	r->set_errors = true;
}

/* After a route's walk: what the file did not set comes from the provider
 * profile; the seed's key_name/key_location stand for one carrier. */
static void conf_route_settle(struct conf_ctx *x, const config_setting_t *e, struct route *r)
{
	const struct provider_profile *p = r->provider != NULL ? r->provider : provider_get(PROVIDER_GENERIC);

	r->provider = p;
	if (!r->set_identity)
		r->identity_headers = r->type == ROUTE_PROXY;
	if (r->set_carriers && r->set_key) {
		conf_err(x, e, "route \"%s\" sets both carriers and key_name/key_location (keep one: carriers = [ \"header:%s\" ];)",
			 r->name ? r->name : "?", r->key_name ? r->key_name : "X-API-Key");
		return;
	}
	if (!r->set_carriers && (r->set_key || p == provider_get(PROVIDER_GENERIC))) {
		memset(&r->carriers[0], 0, sizeof(r->carriers[0]));
		r->carriers[0].loc = r->key_location;
		snprintf(r->carriers[0].name, sizeof(r->carriers[0].name), "%s", r->key_name);
		r->ncarriers = 1;
	} else if (!r->set_carriers) {
		memcpy(r->carriers, p->carriers, sizeof(r->carriers));
		r->ncarriers = p->ncarriers;
	}
	if (r->ncarriers == 0)
		return;         /* reported by the carriers walk */
	if (!r->set_key || r->set_carriers) {
		free(r->key_name);
		r->key_name = NULL;
		if (conf_set_str(x, e, &r->key_name, r->carriers[0].name) == -1)
			return;
		r->key_location = r->carriers[0].loc;
	}
	if (!r->set_upauth)
		r->upstream_auth = p->upstream;
	if (!r->set_errors)
		r->errors = p->errors;
}

static const struct conf_kw conf_route_kws[] = {
	{ "name", CONF_T_STRING, conf_kw_route_name, NULL, 0, 0, "name = \"openai\";" },
	{ "type", CONF_T_STRING, conf_kw_route_type, NULL, 0, 0, "type = \"provider\";" },
	{ "context", CONF_T_STRING, conf_kw_route_context, NULL, 0, 0, "context = \"/openai\";" },
	{ "upstream", CONF_T_STRING, conf_kw_route_upstream, NULL, 0, 0, "upstream = \"api.openai.com:443\";" },
	{ "rate_limit_rpm", CONF_T_INT, NULL, conf_set_route_rpm, 0, CONF_MAX_RPM, "rate_limit_rpm = 600;" },
	{ "provider", CONF_T_STRING, conf_kw_route_provider, NULL, 0, 0, "provider = \"anthropic\";" },
	{ "tunnel_timeout", CONF_T_INT, NULL, conf_set_route_tunnel, 1, 86400, "tunnel_timeout = 3600;" },
	{ "upstream_auth", CONF_T_STRING, conf_kw_route_upstream_auth, NULL, 0, 0,
	  "upstream_auth = \"header:api-key\";" },
	{ "error_format", CONF_T_STRING, conf_kw_route_error_format, NULL, 0, 0,
	  "error_format = \"anthropic\";" },
	{ "methods", CONF_T_SEQ, conf_kw_route_methods, NULL, 0, 0, "methods = [ \"GET\", \"POST\" ];" },
	{ "identity_headers", CONF_T_BOOL, conf_kw_route_identity, NULL, 0, 0,
	  "identity_headers = true;" },
	{ "security", CONF_T_GROUP, conf_kw_route_security, NULL, 0, 0,
	  "security = { authentication = \"apiKey\"; key_name = \"X-API-Key\"; key_location = \"header\"; };" },
};

/* Reports routes sharing a name or a context, at the second one's line. */
static void conf_routes_check_unique(struct conf_ctx *x)
{
	const struct conf *c = x->c;
	char q[CONF_QUOTE_MAX];

	for (unsigned i = 1; i < c->nroutes; i++) {
		const struct route *r = &c->routes[i];

		for (unsigned j = 0; j < i; j++) {
			const struct route *o = &c->routes[j];

			if (r->name && o->name && strcmp(r->name, o->name) == 0) {
				conf_err(x, x->route_name_s[i],
					 "duplicate route name \"%s\" (first used at line %u; give each route its own name)",
					 conf_quote(q, sizeof(q), r->name),
					 config_setting_source_line(x->route_name_s[j]));
				break;
			}
		}
		for (unsigned j = 0; j < i; j++) {
			const struct route *o = &c->routes[j];

			if (r->context && o->context && strcmp(r->context, o->context) == 0) {
				conf_err(x, x->route_ctx_s[i],
					 "duplicate context \"%s\" (first used by route \"%s\" at line %u; give each route its own context)",
					 conf_quote(q, sizeof(q), r->context), o->name ? o->name : "?",
					 config_setting_source_line(x->route_ctx_s[j]));
				break;
			}
		}
	}
}

void conf_kw_routes(struct conf_ctx *x, const config_setting_t *s, void *obj)
{
	struct conf *c = obj;
	int n = config_setting_length(s);

	if (n == 0) {
		conf_err(x, s, "routes is empty (define at least one route, e.g. routes = ( { name = \"openai\"; context = \"/openai\"; } );)");
		return;
	}
	if (n > CONF_MAX_ROUTES) {
		conf_err(x, s, "too many routes: %d (at most %d)", n, CONF_MAX_ROUTES);
		return;
	}
	c->routes = calloc((size_t)n, sizeof(*c->routes));
	x->route_name_s = calloc((size_t)n, sizeof(*x->route_name_s));
	x->route_ctx_s = calloc((size_t)n, sizeof(*x->route_ctx_s));
	if (!c->routes || !x->route_name_s || !x->route_ctx_s) {
		conf_err(x, s, "out of memory");
		return;
	}
	for (int i = 0; i < n; i++) {
		const config_setting_t *e = config_setting_get_elem(s, (unsigned)i);
		struct route *r = &c->routes[c->nroutes++];
		char label[CONF_QUOTE_MAX + 16], where[CONF_QUOTE_MAX + 32];
		const char *nm = NULL;

		if (config_setting_type(e) != CONFIG_TYPE_GROUP) {
			conf_err(x, e, "route #%d must be a group { ... }, not %s (e.g. { name = \"openai\"; context = \"/openai\"; })",
				 i + 1, conf_type_name(config_setting_type(e)));
			continue;
		}
		r->type = ROUTE_PROVIDER;
		r->tunnel_timeout_s = 3600;
		r->methods = ROUTE_METHODS_DEFAULT;
		r->key_location = KEYLOC_HEADER;
		if (conf_set_str(x, e, &r->key_name, "X-API-Key") == -1)
			continue;
		/* errors inside a route name it, so that they can be told apart
		 * among hundreds of routes */
		if (config_setting_lookup_string(e, "name", &nm) == CONFIG_TRUE) {
			char q[CONF_QUOTE_MAX];

			snprintf(label, sizeof(label), "\"%s\"", conf_quote(q, sizeof(q), nm));
		} else {
			snprintf(label, sizeof(label), "#%d", i + 1);
		}
		snprintf(where, sizeof(where), " in route %s", label);
		conf_walk(x, e, where, conf_route_kws, COUNTOF(conf_route_kws), r);
		conf_overrides_apply(x, e, r, where);
		conf_route_settle(x, e, r);
		/* a name or context of the wrong type was reported by the walk */
		if (!config_setting_get_member(e, "name"))
			conf_err(x, e, "route %s has no name (add name = \"...\";)", label);
		if (!config_setting_get_member(e, "context"))
			conf_err(x, e, "route %s has no context (add context = \"/...\";)", label);
	}
	conf_routes_check_unique(x);
}
