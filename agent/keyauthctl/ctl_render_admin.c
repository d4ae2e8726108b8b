/* SPDX-License-Identifier: Apache-2.0 */
/*
 * ctl_render_admin: the admin route in HAProxy's files (issue #22), present
 * only with the configuration's admin group (conf_admin.c).
 *
 * The route is rendered apart from the provider routes: its requests are
 * decided by a block of frontend rules placed before theirs, which ends each
 * one, by a return (refusals, in the admin API's own JSON error shape
 * {"error":{"code","message"}}) or by "http-request allow" (no provider
 * route's rule applies after it), and it goes to backend be_keyauth_admin,
 * keyauth-admin's unix socket, with the context stripped. The key is checked
 * by keyauthd like any other (the SPOE message keyauth-admin), in the
 * Authorization header only. What HAProxy decides from the verdict is
 * coarse (a method other than GET/HEAD needs the write scope, POST
 * <context>/v1/deploy the deploy scope): keyauth-admin checks the scopes of
 * each operation again.
 */
#include <stdio.h>
#include <string.h>

#include "conf.h"
#include "ctl.h"
#include "ctl_render-int.h"

#define ADMIN_AGENT_MSG "%[var(txn.keyauth.message),json(utf8s)]"
#define ADMIN_METHODS   "GET HEAD POST PATCH DELETE"

static bool
admin_path_ok(const char *s)
{
	if (s == NULL || s[0] != '/')
		return false;
	for (; *s != '\0'; s++)
		if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') ||
		      (*s >= '0' && *s <= '9') || strchr("._~/-", *s) != NULL))
			return false;
	return true;
}

unsigned
ctl_render_admin_split(const struct conf *c)
{
	return c->nroutes - (conf_admin_route(c) != NULL ? 1u : 0u);
}

int
ctl_render_admin_check(const struct conf *c, char *err, size_t errlen)
{
	const struct admin_conf *a = c->admin;

	if (conf_admin_route(c) == NULL)
		return 0;
	if (!admin_path_ok(a->context) || strcmp(a->context, "/") == 0 ||
	    !admin_path_ok(a->socket)) {
		snprintf(err, errlen, "admin context '%s' or socket '%s' cannot be rendered",
		         a->context, a->socket);
		return -1;
	}
	return 0;
}

void
ctl_render_admin_spoe_list(FILE *f, const struct conf *c)
{
	if (conf_admin_route(c) != NULL)
		fputs("    messages keyauth-" CONF_ADMIN_ROUTE "\n", f);
}

void
ctl_render_admin_spoe(FILE *f, const struct conf *c)
{
	const char *x;

	if (conf_admin_route(c) == NULL)
		return;
	x = c->admin->context;
	fprintf(f, "\n# the admin route (admin group), context %s, key from bearer only; the\n"
	        "# console's static files (GET/HEAD %s/ and %s/console/...) need no key\n"
	        "spoe-message keyauth-" CONF_ADMIN_ROUTE "\n"
	        "    acl keyauth_ctx path_beg %s/\n"
	        "    acl keyauth_pub path %s/\n"
	        "    acl keyauth_pub path_beg %s/console/\n"
	        "    args route=str(" CONF_ADMIN_ROUTE ") key=req.fhdr(Authorization)\n"
	        "    acl keyauth_meth method " ADMIN_METHODS "\n"
	        "    acl keyauth_read method GET HEAD\n"
	        "    event on-frontend-http-request if keyauth_ctx keyauth_meth !keyauth_pub or "
	        "keyauth_ctx keyauth_pub !keyauth_read\n", x, x, x, x, x, x);
}

/* One refusal in the admin API's shape, for admin requests only. */
static void
admin_return(FILE *f, int status, const char *code, const char *msg, bool lf, const char *hdr,
             const char *cond)
{
	fprintf(f, "    http-request return status %d content-type application/json %s "
	        "'{\"error\":{\"code\":\"%s\",\"message\":\"%s\"}}'%s%s if keyauth_admin %s\n",
	        status, lf ? "lf-string" : "string", code, msg, hdr != NULL ? " " : "",
	        hdr != NULL ? hdr : "", cond);
}

void
ctl_render_admin_rules(FILE *f, const struct conf *c)
{
	const char *x;
	char msg[256], hdr[64];

	if (conf_admin_route(c) == NULL)
		return;
	x = c->admin->context;
	fprintf(f, "\n    # The admin API and console (the admin group): keyauth-admin, under %s/.\n"
	        "    # Every request there ends in this block (a return, or 'allow': no route\n"
	        "    # rule below applies to it); refusals in the API's JSON error shape.\n"
	        "    acl keyauth_admin path_beg %s/\n"
	        "    acl keyauth_admin path %s\n"
	        "    acl keyauth_admin_pub path %s/\n"
	        "    acl keyauth_admin_pub path_beg %s/console/\n"
	        "    acl keyauth_admin_read method GET HEAD\n"
	        "    http-request redirect location %s/ code 301 if { path %s }\n",
	        x, x, x, x, x, x, x);
	fputs("    # Public, no key: the console's static files only (GET and HEAD).\n"
	      "    http-request del-header Authorization if keyauth_admin keyauth_admin_pub keyauth_admin_read\n"
	      "    http-request del-header x-keyauth- -m beg if keyauth_admin keyauth_admin_pub keyauth_admin_read\n"
	      "    http-request del-header x_keyauth_ -m beg if keyauth_admin keyauth_admin_pub keyauth_admin_read\n"
	      "    http-request allow if keyauth_admin keyauth_admin_pub keyauth_admin_read\n"
	      "    # No OPTIONS, so no CORS: the console is served from the same origin.\n", f);
	admin_return(f, 405, "method_not_allowed", "This method is not allowed on the admin API.",
	             false, "hdr Allow \"GET, HEAD, POST, PATCH, DELETE\"",
	             "!{ method " ADMIN_METHODS " }");
	fputs("    # Fail closed: agent trouble or no verdict is a 503, never forwarded.\n", f);
	admin_return(f, 503, "unavailable", "The API key service is unavailable; try again later.",
	             false, NULL, "{ var(txn.keyauth.err) -m found }");
	admin_return(f, 503, "unavailable", "This route is not configured on the API key service.",
	             false, NULL, "{ var(txn.keyauth.status) -m str unknown_route }");
	admin_return(f, 503, "unavailable", "The API key service gave no answer; try again later.",
	             false, NULL, "!{ var(txn.keyauth.status) -m found }");
	fputs("    # A valid key of another route: 403; no usable key: 401.\n", f);
	admin_return(f, 403, "forbidden", ADMIN_AGENT_MSG, true, NULL,
	             "{ var(txn.keyauth.status) -m str forbidden }");
	admin_return(f, 401, "unauthorized", ADMIN_AGENT_MSG, true,
	             "hdr WWW-Authenticate 'Bearer realm=\"keyauth\"'",
	             "{ var(txn.keyauth.status) -m str missing malformed invalid expired revoked }");
	fputs("    http-request deny deny_status 503 if keyauth_admin !{ var(txn.keyauth.ok) -m bool }\n", f);
	if (c->rate_window_s == 60)
		snprintf(msg, sizeof(msg), "Rate limit reached for this admin key: "
		         "%%[var(txn.keyauth.rpm)] requests per minute.");
	else
		snprintf(msg, sizeof(msg), "Rate limit reached for this admin key: "
		         "%%[var(txn.keyauth.rpm)] requests per %u seconds.", c->rate_window_s);
	snprintf(hdr, sizeof(hdr), "hdr Retry-After %u", c->rate_window_s);
	fputs("    # Rate limit per admin key (admin.rate_limit_rpm, or the key's own rpm),\n"
	      "    # counted like the routes' in " RATE_TABLE ".\n"
	      "    http-request track-sc0 var(txn.keyauth.key_id) table " RATE_TABLE
	      " if keyauth_admin { var(txn.keyauth.rpm) -m found }\n"
	      "    http-request set-var(txn.keyauth_rate) sc_gpc0_rate(0) if keyauth_admin"
	      " { var(txn.keyauth.rpm) -m found }\n", f);
	admin_return(f, 429, "rate_limited", msg, true, hdr, "{ var(txn.keyauth.rpm) -m found } "
	             "{ var(txn.keyauth_rate),sub(txn.keyauth.rpm) -m int ge 0 }");
	fputs("    http-request sc-inc-gpc0(0) if keyauth_admin { var(txn.keyauth.rpm) -m found }\n"
	      "    # Coarse scope rules from txn.keyauth.scopes (keyauth-admin checks each\n"
	      "    # operation again): changes need write, a deploy needs deploy.\n", f);
	admin_return(f, 403, "forbidden", "This admin key lacks the write scope.", false, NULL,
	             "!keyauth_admin_read !{ var(txn.keyauth.scopes) -m sub write }");
	fprintf(f, "    acl keyauth_admin_deploy path %s/v1/deploy\n"
	        "    acl keyauth_admin_deploy path_beg %s/v1/deploy/\n", x, x);
	admin_return(f, 403, "forbidden", "This admin key lacks the deploy scope.", false, NULL,
	             "{ method POST } keyauth_admin_deploy !{ var(txn.keyauth.scopes) -m sub deploy }");
	fputs("    # Allowed: the key goes no further; keyauth-admin learns who is calling\n"
	      "    # from keyauth's headers only (a client's own are removed).\n"
	      "    http-request set-uri \"/%[pathq,regsub(^/,)]\" if keyauth_admin !{ url_beg / }\n"
	      "    http-request del-header Authorization if keyauth_admin\n"
	      "    http-request del-header Proxy-Authorization if keyauth_admin\n"
	      "    http-request del-header x-keyauth- -m beg if keyauth_admin\n"
	      "    http-request del-header x_keyauth_ -m beg if keyauth_admin\n"
	      "    http-request set-header X-Keyauth-Key-Id \"%[var(txn.keyauth.key_id)]\" if keyauth_admin\n"
	      "    http-request set-header X-Keyauth-Owner \"%[var(txn.keyauth.owner)]\" if keyauth_admin"
	      " { var(txn.keyauth.owner) -m found }\n"
	      "    http-request set-header X-Keyauth-Scopes \"%[var(txn.keyauth.scopes)]\" if keyauth_admin"
	      " { var(txn.keyauth.scopes) -m found }\n"
	      "    http-request allow if keyauth_admin\n", f);
}

void
ctl_render_admin_use(FILE *f, const struct conf *c)
{
	if (conf_admin_route(c) != NULL)
		fputs("    use_backend be_keyauth_admin if keyauth_admin\n", f);
}

void
ctl_render_admin_backend(FILE *f, const struct conf *c)
{
	if (conf_admin_route(c) == NULL)
		return;
	fputs("\n# keyauth-admin: <context>/v1/keys reaches it as /v1/keys.\n"
	      "backend be_keyauth_admin\n"
	      "    http-request replace-path ^", f);
	ctl_put_regex(f, c->admin->context);
	fprintf(f, "(/.*)$ \\1\n"
	        "    server admin unix@%s\n", c->admin->socket);
}
