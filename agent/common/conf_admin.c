/* SPDX-License-Identifier: Apache-2.0 */
/*
 * conf_admin: the "admin" group of keyauth.conf (conf-int.h): the admin API
 * and console that keyauth-admin serves on a unix socket, reached through
 * HAProxy under the group's context.
 *
 * The group defines one reserved route, named "admin", appended after the
 * file's routes: its keys are checked by keyauthd like any other (same store,
 * same revocation path), they travel in the Authorization header only
 * ("Bearer <key>": no query string, which ends up in access logs, and no
 * cookie, which a browser would send unasked), and keyauthctl renders the
 * route apart (ctl_render_admin.c). A user route may not take its name or
 * its context, nor a context inside it or above it: a request under the
 * admin context must reach the admin route and nothing else.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conf-int.h"

#define ADMIN_PATH_MAX        4095
/* sun_path holds 108 bytes, the NUL included */
#define ADMIN_SOCKET_MAX      107

static struct admin_conf *conf_admin_of(void *obj)
{
	return obj;
}

static void conf_kw_admin_context(struct conf_ctx *x, const config_setting_t *s, void *obj)
{
	struct admin_conf *a = conf_admin_of(obj);
	const char *v = config_setting_get_string(s), *why;
	char q[CONF_QUOTE_MAX];

	why = conf_context_problem(v);
	if (why == NULL && strcmp(v, "/") == 0)
		why = "the admin API needs a prefix of its own, not the whole site";
	if (why != NULL) {
		conf_err(x, s, "bad context \"%s\" in admin: %s (e.g. context = \"/admin\";)",
			 conf_quote(q, sizeof(q), v), why);
		return;
	}
	free(a->context);
	a->context = NULL;
	conf_set_str(x, s, &a->context, v);
}

/* An absolute path of the characters that are safe unquoted in rendered
 * files and in a process's argv, without "//" or "..". */
static bool conf_admin_path_ok(const char *v, size_t max)
{
	return v[0] == '/' && strstr(v, "//") == NULL && strstr(v, "/..") == NULL &&
	       conf_token_ok(v, max, "._~/-");
}

static void conf_kw_admin_socket(struct conf_ctx *x, const config_setting_t *s, void *obj)
{
	struct admin_conf *a = conf_admin_of(obj);
	const char *v = config_setting_get_string(s);
	char q[CONF_QUOTE_MAX];

	if (strlen(v) > ADMIN_SOCKET_MAX) {
		conf_err(x, s, "socket in admin is %zu bytes long, at most %d fit a unix socket address (use a shorter path, e.g. socket = \"/run/keyauth-admin/admin.sock\";)",
			 strlen(v), ADMIN_SOCKET_MAX);
		return;
	}
	if (!conf_admin_path_ok(v, ADMIN_SOCKET_MAX) || v[strlen(v) - 1] == '/') {
		conf_err(x, s, "bad socket \"%s\" in admin: use an absolute path of A-Z a-z 0-9 . _ ~ / - (e.g. socket = \"/run/keyauth-admin/admin.sock\";)",
			 conf_quote(q, sizeof(q), v));
		return;
	}
	free(a->socket);
	a->socket = NULL;
	conf_set_str(x, s, &a->socket, v);
}

/* keyauthctl and console_dir: absolute paths, kept as written. */
static void conf_kw_admin_path(struct conf_ctx *x, const config_setting_t *s, void *obj)
{
	struct admin_conf *a = conf_admin_of(obj);
	const char *name = config_setting_name(s), *v = config_setting_get_string(s);
	bool ctl = strcmp(name, "keyauthctl") == 0;
	char **dst = ctl ? &a->keyauthctl : &a->console_dir;
	char q[CONF_QUOTE_MAX];

	if (!conf_admin_path_ok(v, ADMIN_PATH_MAX)) {
		conf_err(x, s, "bad %s \"%s\" in admin: use an absolute path of A-Z a-z 0-9 . _ ~ / - (e.g. %s = \"%s\";)",
			 name, conf_quote(q, sizeof(q), v), name,
			 ctl ? "/usr/bin/keyauthctl" : "/usr/share/keyauth/console");
		return;
	}
	free(*dst);
	*dst = NULL;
	conf_set_str(x, s, dst, v);
}

/* user = "": run the web process as the user that starts keyauth-admin
 * (tests, and hosts where it is not started as root). */
static void conf_kw_admin_user(struct conf_ctx *x, const config_setting_t *s, void *obj)
{
	struct admin_conf *a = conf_admin_of(obj);
	const char *v = config_setting_get_string(s);
	char q[CONF_QUOTE_MAX];

	a->user_set = true;
	free(a->user);
	a->user = NULL;
	if (v[0] == '\0')
		return;
	if (v[0] == '-' || !conf_token_ok(v, 32, "._-")) {
		conf_err(x, s, "bad user \"%s\" in admin (use an existing user name, e.g. user = \"keyauth-admin\";, or \"\" to keep the user that starts keyauth-admin)",
			 conf_quote(q, sizeof(q), v));
		return;
	}
	if (strcmp(v, "root") == 0) {
		conf_err(x, s, "user \"root\" in admin: the web process must not run as root (use an unprivileged user, e.g. user = \"keyauth-admin\";)");
		return;
	}
	conf_set_str(x, s, &a->user, v);
}

static void conf_set_admin_rpm(void *obj, long long v)
{
	conf_admin_of(obj)->rate_limit_rpm = (uint32_t)v;
}

static const struct conf_kw conf_admin_kws[] = {
	{ "context", CONF_T_STRING, conf_kw_admin_context, NULL, 0, 0, "context = \"/admin\";" },
	{ "socket", CONF_T_STRING, conf_kw_admin_socket, NULL, 0, 0,
	  "socket = \"/run/keyauth-admin/admin.sock\";" },
	{ "user", CONF_T_STRING, conf_kw_admin_user, NULL, 0, 0, "user = \"keyauth-admin\";" },
	{ "keyauthctl", CONF_T_STRING, conf_kw_admin_path, NULL, 0, 0,
	  "keyauthctl = \"/usr/bin/keyauthctl\";" },
	{ "console_dir", CONF_T_STRING, conf_kw_admin_path, NULL, 0, 0,
	  "console_dir = \"/usr/share/keyauth/console\";" },
	{ "rate_limit_rpm", CONF_T_INT, NULL, conf_set_admin_rpm, 1, CONF_MAX_RPM,
	  "rate_limit_rpm = 120;" },
};

void conf_admin_free(struct admin_conf *a)
{
	if (a == NULL)
		return;
	free(a->context);
	free(a->socket);
	free(a->user);
	free(a->keyauthctl);
	free(a->console_dir);
	free(a);
}

void conf_kw_admin(struct conf_ctx *x, const config_setting_t *s, void *obj)
{
	struct conf *c = obj;
	struct admin_conf *a;

	if (c->admin != NULL) {
		conf_err(x, s, "admin is set twice (keep one admin group)");
		return;
	}
	a = calloc(1, sizeof(*a));
	if (a == NULL) {
		conf_err(x, s, "out of memory");
		return;
	}
	c->admin = a;
	a->rate_limit_rpm = CONF_ADMIN_RPM;
	if (conf_set_str(x, s, &a->context, "/admin") == -1 ||
	    conf_set_str(x, s, &a->socket, "/run/keyauth-admin/admin.sock") == -1 ||
	    conf_set_str(x, s, &a->user, "keyauth-admin") == -1 ||
	    conf_set_str(x, s, &a->keyauthctl, "/usr/bin/keyauthctl") == -1 ||
	    conf_set_str(x, s, &a->console_dir, "/usr/share/keyauth/console") == -1)
		return;
	conf_walk(x, s, " in admin", conf_admin_kws, COUNTOF(conf_admin_kws), a);
}

/* Does one of the contexts <a> and <b> hold the other (equal, or a prefix
 * ending at a segment boundary)? "/" holds everything: a catch-all route
 * would also take the admin paths (its SPOE message, its rules). */
static bool conf_admin_nested(const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b);
	const char *s = la <= lb ? a : b, *l = la <= lb ? b : a;
	size_t ls = la <= lb ? la : lb;

	if (strcmp(s, "/") == 0)
		return true;
	return strncmp(s, l, ls) == 0 && (l[ls] == '\0' || l[ls] == '/');
}

/* After the walk (the admin group may come before or after routes): checks
 * the user routes against the reserved name and context, then appends the
 * admin route. */
void conf_admin_finish(struct conf_ctx *x, struct conf *c)
{
	struct admin_conf *a = c->admin;
	struct route *routes, *r;
	char q[CONF_QUOTE_MAX];
	bool bad = false;

	if (a == NULL || a->context == NULL)
		return;
	for (unsigned i = 0; i < c->nroutes; i++) {
		const struct route *u = &c->routes[i];

		if (u->name != NULL && strcmp(u->name, CONF_ADMIN_ROUTE) == 0) {
			conf_err(x, x->route_name_s ? x->route_name_s[i] : NULL,
				 "route name \"" CONF_ADMIN_ROUTE "\" is reserved for the admin group's route (rename the route)");
			bad = true;
		}
		if (u->context != NULL && conf_admin_nested(u->context, a->context)) {
			conf_err(x, x->route_ctx_s ? x->route_ctx_s[i] : NULL,
				 "context \"%s\" of route \"%s\" overlaps the admin context \"%s\" (give the route a context outside it, or change admin.context)",
				 conf_quote(q, sizeof(q), u->context), u->name ? u->name : "?", a->context);
			bad = true;
		}
	}
	if (c->nroutes >= CONF_MAX_ROUTES) {
		conf_err(x, NULL, "too many routes for an admin group: %u (at most %d besides the admin route)",
			 c->nroutes, CONF_MAX_ROUTES - 1);
		return;
	}
	if (bad)
		return;
	routes = realloc(c->routes, (c->nroutes + 1) * sizeof(*routes));
	if (routes == NULL) {
		conf_err(x, NULL, "out of memory");
		return;
	}
	c->routes = routes;
	r = &routes[c->nroutes++];
	memset(r, 0, sizeof(*r));
	r->admin = true;
	r->type = ROUTE_PROXY;
	r->provider = provider_get(PROVIDER_GENERIC);
	r->upstream_auth.kind = UPAUTH_NONE;   /* keyauth-admin takes no credential */
	r->errors = r->provider->errors;
	r->tunnel_timeout_s = 3600;
	r->rate_limit_rpm = a->rate_limit_rpm;
	r->identity_headers = false;   /* rendered apart: id, owner and scopes only */
	r->methods = (1u << ROUTE_M_GET) | (1u << ROUTE_M_HEAD) | (1u << ROUTE_M_POST) |
	             (1u << ROUTE_M_PATCH) | (1u << ROUTE_M_DELETE);
	/* the Authorization header only, "Bearer <key>" */
	if (carrier_parse("bearer", &r->carriers[0], NULL, 0) == -1) {
		conf_err(x, NULL, "internal error: no bearer carrier");
		return;
	}
	r->ncarriers = 1;
	r->key_location = r->carriers[0].loc;
	if (conf_set_str(x, NULL, &r->name, CONF_ADMIN_ROUTE) == -1 ||
	    conf_set_str(x, NULL, &r->context, a->context) == -1 ||
	    conf_set_str(x, NULL, &r->key_name, r->carriers[0].name) == -1)
		return;
	r->name_len = strlen(r->name);
	r->context_len = strlen(r->context);
}

const struct route *conf_admin_route(const struct conf *c)
{
	if (c->admin == NULL || c->nroutes == 0 || !c->routes[c->nroutes - 1].admin)
		return NULL;
	return &c->routes[c->nroutes - 1];
}
