/* SPDX-License-Identifier: Apache-2.0 */
/*
 * ctl_render_rules: the gateway frontend's decisions, rendered per route
 * group — refusals in the route's provider error shape (OpenAI, Anthropic,
 * Google), methods a route does not allow, the rate limit with an honest
 * Retry-After, and what an allowed request loses (an absolute-form authority,
 * every key carrier) and gains (the provider's credential); and where the
 * frontend takes clients (bind, client TLS, HTTP/2).
 */
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include <openssl/tls1.h>

#include "conf.h"
#include "ctl.h"
#include "ctl_render-int.h"

#define AGENT_MSG    "%[var(txn.keyauth.message),json(utf8s)]"

/* What the gateway itself answers, and how each vendor spells it. */
enum gwe { GWE_NOT_FOUND, GWE_METHOD, GWE_UNAVAILABLE, GWE_FORBIDDEN, GWE_AUTH, GWE_RATE };

static const struct {
	int status;
	const char *oa_type, *oa_code;   /* OpenAI: error.type, error.code */
	const char *an_type;             /* Anthropic: error.type */
	const char *g_status;            /* Google: error.status */
} gwe_tab[] = {
	[GWE_NOT_FOUND]   = { 404, "invalid_request_error", "not_found", "not_found_error", "NOT_FOUND" },
	/* Google has no status for 405; UNIMPLEMENTED is "not supported". */
	[GWE_METHOD]      = { 405, "invalid_request_error", "method_not_allowed",
	                      "invalid_request_error", "UNIMPLEMENTED" },
	[GWE_UNAVAILABLE] = { 503, "server_error", "service_unavailable", "api_error", "UNAVAILABLE" },
	[GWE_FORBIDDEN]   = { 403, "invalid_request_error", "invalid_api_key", "permission_error",
	                      "PERMISSION_DENIED" },
	[GWE_AUTH]        = { 401, "invalid_request_error", "invalid_api_key", "authentication_error",
	                      "UNAUTHENTICATED" },
	[GWE_RATE]        = { 429, "rate_limit_error", "rate_limit_exceeded", "rate_limit_error",
	                      "RESOURCE_EXHAUSTED" },
};

/* The JSON body, single-quoted, in <fmt>'s shape; <msg> is JSON-safe text or
 * a log-format expression that yields JSON-safe text. */
static void
put_body(FILE *f, enum error_format fmt, enum gwe e, const char *msg)
{
	switch (fmt) {
	case ERRFMT_ANTHROPIC:
		fprintf(f, "'{\"type\":\"error\",\"error\":{\"type\":\"%s\",\"message\":\"%s\"}}'",
		        gwe_tab[e].an_type, msg);
		break;
	case ERRFMT_GOOGLE:
		fprintf(f, "'{\"error\":{\"code\":%d,\"message\":\"%s\",\"status\":\"%s\"}}'",
		        gwe_tab[e].status, msg, gwe_tab[e].g_status);
		break;
	default:
		fprintf(f, "'{\"error\":{\"message\":\"%s\",\"type\":\"%s\",\"param\":null,"
		        "\"code\":\"%s\"}}'", msg, gwe_tab[e].oa_type, gwe_tab[e].oa_code);
		break;
	}
}

/* One "return" rule in <fmt>'s shape: <cond> then, when not NULL, the ACL
 * <acl> naming the routes it is for (the cheap test first: on the allowed
 * path it is false and the rest is not evaluated). */
static void
put_return_acl(FILE *f, enum error_format fmt, const char *acl, enum gwe e, const char *msg,
               bool lf, const char *hdr, const char *cond)
{
	fprintf(f, "    http-request return status %d content-type application/json %s ",
	        gwe_tab[e].status, lf ? "lf-string" : "string");
	put_body(f, fmt, e, msg);
	if (hdr != NULL)
		fprintf(f, " %s", hdr);
	fprintf(f, " if %s", cond);
	if (acl != NULL)
		fprintf(f, " %s", acl);
	fputc('\n', f);
}

/* The same for the routes of refusal group <g>; its ACL only when the routes
 * have several groups. */
static void
put_return(FILE *f, const struct rgroup *g, bool grouped, enum gwe e, const char *msg, bool lf,
           const char *hdr, const char *cond)
{
	char acl[32];

	snprintf(acl, sizeof(acl), "keyauth_eg%u", g->id);
	put_return_acl(f, g->fmt, grouped ? acl : NULL, e, msg, lf, hdr, cond);
}

const char *
ctl_methods_str(char *buf, size_t size, unsigned methods, const char *sep)
{
	size_t used = 0;

	if (size > 0)
		buf[0] = '\0';
	for (unsigned m = 0; m < ROUTE_M_ENTRIES && used < size; m++) {
		if (!(methods & (1u << m)))
			continue;
		used += (size_t)snprintf(buf + used, size - used, "%s%s", used > 0 ? sep : "",
		                         route_method_str((enum route_method)m));
	}
	return buf;
}

/* Routes that share an error shape and whether a Bearer carrier is accepted
 * (WWW-Authenticate is sent only then) get the same deny rules. */
unsigned
ctl_group_routes(struct rroute *rr, unsigned n, struct rgroup *g)
{
	unsigned ng = 0;

	for (unsigned i = 0; i < n; i++) {
		bool bearer = false;
		unsigned j;

		for (unsigned k = 0; k < rr[i].r->ncarriers; k++)
			bearer = bearer || carrier_is_bearer(&rr[i].r->carriers[k]);
		for (j = 0; j < ng; j++) {
			if (g[j].fmt == rr[i].r->errors && g[j].bearer == bearer)
				break;
		}
		if (j == ng) {
			g[ng].id = ng + 1;
			g[ng].fmt = rr[i].r->errors;
			g[ng].bearer = bearer;
			ng++;
		}
		rr[i].group = j;
	}
	return ng;
}

/* "acl NAME var(txn.keyauth_route) -m str r1 r2 ...": a set of routes as
 * one ACL, 32 names a line at most (HAProxy takes 64 words a line; lines
 * of the same name are OR'ed). route_acl_add each name, then route_acl_end. */
struct route_acl {
	FILE *f;
	char name[32];
	unsigned on_line;
};

static void
route_acl_add(struct route_acl *a, const char *route)
{
	if (a->on_line == 0)
		fprintf(a->f, "    acl %s var(txn.keyauth_route) -m str", a->name);
	fprintf(a->f, " %s", route);
	if (++a->on_line == 32) {
		fputc('\n', a->f);
		a->on_line = 0;
	}
}

static void
route_acl_end(struct route_acl *a)
{
	if (a->on_line > 0)
		fputc('\n', a->f);
	a->on_line = 0;
}

/* ACL lines "keyauth_eg<id>" naming the routes of each group; HAProxy
 * takes at most 64 words on a line, so long lists are split (same-named
 * ACLs are OR'ed). */
static void
render_group_acls(FILE *f, const struct rroute *rr, unsigned n, const struct rgroup *g, unsigned ng)
{
	for (unsigned j = 0; j < ng; j++) {
		struct route_acl a = { .f = f };

		snprintf(a.name, sizeof(a.name), "keyauth_eg%u", g[j].id);
		for (unsigned i = 0; i < n; i++)
			if (rr[i].group == j)
				route_acl_add(&a, rr[i].r->name);
		route_acl_end(&a);
	}
}

/* Routes that allow the same methods and share an error shape get the same
 * 405 rule. */
struct mgroup {
	unsigned methods;
	enum error_format fmt;
};
#define MAX_MGROUPS ((1u << ROUTE_M_ENTRIES) * ERRFMT_ENTRIES)

static bool
in_mgroup(const struct rroute *r, const struct mgroup *m)
{
	return r->r->methods == m->methods && r->r->errors == m->fmt;
}

/* 405 for a method the route does not allow, TRACE, CONNECT and any unknown
 * one included, with Allow and the error in the route's shape. The SPOE
 * message of a route tests the same list (render_spoe), so the agent is not
 * asked either: nothing but this answer happens. */
static void
render_methods(FILE *f, const struct rroute *rr, unsigned n)
{
	struct mgroup mg[MAX_MGROUPS];
	unsigned nm = 0;

	for (unsigned i = 0; i < n; i++) {
		unsigned j;

		for (j = 0; j < nm && !in_mgroup(&rr[i], &mg[j]); j++)
			;
		if (j == nm && nm < MAX_MGROUPS) {
			mg[nm].methods = rr[i].r->methods;
			mg[nm].fmt = rr[i].r->errors;
			nm++;
		}
	}
	fputs("\n    # A method the route does not allow (TRACE, CONNECT and unknown ones\n"
	      "    # always): 405 with Allow. Its SPOE message tests the same methods: the\n"
	      "    # agent is not asked, nothing is forwarded.\n", f);
	for (unsigned j = 0; j < nm; j++) {
		char list[64], msg[160], hdr[96], cond[96];
		struct route_acl a = { .f = f };

		snprintf(a.name, sizeof(a.name), "keyauth_mg%u", j + 1);
		for (unsigned i = 0; i < n && nm > 1; i++)
			if (in_mgroup(&rr[i], &mg[j]))
				route_acl_add(&a, rr[i].r->name);
		route_acl_end(&a);
		ctl_methods_str(list, sizeof(list), mg[j].methods, ", ");
		snprintf(msg, sizeof(msg), "This method is not allowed on this route; it allows %s.", list);
		snprintf(hdr, sizeof(hdr), "hdr Allow '%s'", list);
		snprintf(cond, sizeof(cond), "!{ method %s }",
		         ctl_methods_str(list, sizeof(list), mg[j].methods, " "));
		put_return_acl(f, mg[j].fmt, nm > 1 ? a.name : NULL, GWE_METHOD, msg, false, hdr, cond);
	}
}

/* 404 under no route; 405 for a method the route does not allow; 503 on
 * agent trouble; 403 and 401 from the verdict; a backstop. Each in the
 * route's vendor shape. */
void
ctl_render_denials(FILE *f, const struct rroute *rr, unsigned n, const struct rgroup *g, unsigned ng)
{
	const struct rgroup generic = { 0, ERRFMT_OPENAI, false };
	bool grouped = ng > 1;

	fputs("\n    # Under no route: 404; no SPOE message matched, the agent was not asked.\n", f);
	put_return(f, &generic, false, GWE_NOT_FOUND, "No route matches this path.", false, NULL,
	           "!{ var(txn.keyauth_route) -m found }");
	render_methods(f, rr, n);
	if (grouped) {
		fputs("\n    # Routes whose refusals share a shape (error_format, and whether\n"
		      "    # Bearer is accepted: only then a 401 carries WWW-Authenticate).\n", f);
		render_group_acls(f, rr, n, g, ng);
	}
	for (unsigned j = 0; j < ng; j++) {
		const struct rgroup *gr = &g[j];

		fprintf(f, "\n    # Refusals in %s's shape%s.\n", error_format_str(gr->fmt),
		        grouped ? " for the routes of this group" : "");
		fputs("    # Fail closed. Agent error, timeout or down; agent and HAProxy configs out\n"
		      "    # of step (unknown_route); or no verdict at all: 503, never forwarded.\n", f);
		put_return(f, gr, grouped, GWE_UNAVAILABLE,
		           "The API key service is unavailable; try again later.", false, NULL,
		           "{ var(txn.keyauth.err) -m found }");
		put_return(f, gr, grouped, GWE_UNAVAILABLE,
		           "This route is not configured on the API key service.", false, NULL,
		           "{ var(txn.keyauth.status) -m str unknown_route }");
		put_return(f, gr, grouped, GWE_UNAVAILABLE,
		           "The API key service gave no answer; try again later.", false, NULL,
		           "!{ var(txn.keyauth.status) -m found }");
		fputs("    # A valid key for another route (SDKs: their permission error).\n", f);
		put_return(f, gr, grouped, GWE_FORBIDDEN, AGENT_MSG, true, NULL,
		           "{ var(txn.keyauth.status) -m str forbidden }");
		fputs("    # Missing, malformed, unknown, expired or revoked key (authentication error).\n", f);
		put_return(f, gr, grouped, GWE_AUTH, AGENT_MSG, true,
		           gr->bearer ? "hdr WWW-Authenticate 'Bearer realm=\"keyauth\"'" : NULL,
		           "{ var(txn.keyauth.status) -m str missing malformed invalid expired revoked }");
	}
	fputs("    # Backstop: whatever the rules above missed is not forwarded.\n"
	      "    http-request deny deny_status 503 unless { var(txn.keyauth.ok) -m bool }\n", f);
}

/* Rate limits. Only admitted requests count (gpc0, incremented after the
 * check), so a refused client's count decays by itself; the check is
 * "the window's count already reached the limit". gpc0_rate is a sliding
 * estimate: the current period's count plus the previous one's weighted by
 * what is left of the period. A client refused at time t has at most <rpm>
 * admitted requests in its period; after waiting one whole period none of
 * them is in the current period and the previous one weighs less than 1,
 * so the estimate is below the limit: Retry-After = the period is honest. */
void
ctl_render_rate_rules(FILE *f, const struct conf *c, const struct rgroup *g, unsigned ng)
{
	char msg[256], hdr[64];

	if (c->rate_window_s == 60)
		snprintf(msg, sizeof(msg), "Rate limit reached for this API key: "
		         "%%[var(txn.keyauth.rpm)] requests per minute.");
	else
		snprintf(msg, sizeof(msg), "Rate limit reached for this API key: "
		         "%%[var(txn.keyauth.rpm)] requests per %u seconds.", c->rate_window_s);
	snprintf(hdr, sizeof(hdr), "hdr Retry-After %u", c->rate_window_s);
	fprintf(f, "\n    # Rate limit: only allowed requests whose key (or route) has a limit are\n"
	        "    # tracked, per key id, in " RATE_TABLE "; a request is refused with 429 when\n"
	        "    # the admitted requests of the last %us already reached txn.keyauth.rpm.\n"
	        "    # Refused requests are not counted: waiting Retry-After (%us) is enough.\n"
	        "    http-request track-sc0 var(txn.keyauth.key_id) table " RATE_TABLE
	        " if { var(txn.keyauth.ok) -m bool } { var(txn.keyauth.rpm) -m found }\n"
	        "    http-request set-var(txn.keyauth_rate) sc_gpc0_rate(0)"
	        " if { var(txn.keyauth.rpm) -m found }\n", c->rate_window_s, c->rate_window_s);
	for (unsigned j = 0; j < ng; j++)
		put_return(f, &g[j], ng > 1, GWE_RATE, msg, true, hdr,
		           "{ var(txn.keyauth.rpm) -m found } "
		           "{ var(txn.keyauth_rate),sub(txn.keyauth.rpm) -m int ge 0 }");
	fputs("    http-request sc-inc-gpc0(0) if { var(txn.keyauth.rpm) -m found }\n", f);
}

/* True when <cr>, carrier <k> of route <i>, names a place not yet removed:
 * not in the fixed list of its kind nor an earlier carrier (names compare
 * without case, as the removal does). */
static bool
first_of_its_name(const struct rroute *rr, unsigned i, unsigned k, const struct carrier *cr)
{
	bool hdr = cr->loc == KEYLOC_HEADER;
	const char *const *fixed = hdr ? provider_strip_headers : provider_strip_query;
	size_t nfixed = hdr ? provider_nstrip_headers : provider_nstrip_query;

	for (size_t j = 0; j < nfixed; j++) {
		if (strcasecmp(fixed[j], cr->name) == 0)
			return false;
	}
	for (unsigned a = 0; a <= i; a++) {
		for (unsigned b = 0; b < (a == i ? k : rr[a].r->ncarriers); b++) {
			const struct carrier *o = &rr[a].r->carriers[b];

			if (o->loc == cr->loc && strcasecmp(o->name, cr->name) == 0)
				return false;
		}
	}
	return true;
}

/* Every name of kind <loc> to remove, once: the fixed list, then each
 * route's carriers. <put> writes one. */
static void
for_each_strip_name(FILE *f, const struct rroute *rr, unsigned n, enum key_location loc,
                    void (*put)(FILE *, const char *))
{
	bool hdr = loc == KEYLOC_HEADER;
	const char *const *fixed = hdr ? provider_strip_headers : provider_strip_query;
	size_t nfixed = hdr ? provider_nstrip_headers : provider_nstrip_query;

	for (size_t j = 0; j < nfixed; j++)
		put(f, fixed[j]);
	for (unsigned i = 0; i < n; i++) {
		for (unsigned k = 0; k < rr[i].r->ncarriers; k++) {
			const struct carrier *cr = &rr[i].r->carriers[k];

			if (cr->loc == loc && first_of_its_name(rr, i, k, cr))
				put(f, cr->name);
		}
	}
}

static void
put_del_header(FILE *f, const char *name)
{
	fprintf(f, "    http-request del-header %s\n", name);
}

static void
put_query_strip(FILE *f, const char *name)
{
	fputs(",regsub([&;?]", f);
	ctl_put_regex(f, name);
	fputs("=[^&;?]*,,gi)", f);
}

/* The caller's identity for the upstream (routes with identity_headers):
 * the key's id, owner, alias and tags from the agent's ACK, never the key.
 * Only keyauth may set these names: whatever a client sent under
 * X-Keyauth-* (or x_keyauth_*, which some servers read as the same name)
 * is removed on every route, whether the route sets them or not. A header
 * is set only when its variable is found. keyauthctl and the store refuse
 * control characters in owner, alias and tags; should one reach a variable
 * anyway, HAProxy's log-format writes it %-encoded (checked with 2.6 and
 * 3.2: "a\r\nB" goes out as "a%0D%0AB"), never as a line break. */
static void
render_identity(FILE *f, const struct rroute *rr, unsigned n)
{
	static const struct { const char *hdr, *var; } id[] = {
		{ "X-Keyauth-Key-Id", "key_id" }, { "X-Keyauth-Owner", "owner" },
		{ "X-Keyauth-Alias", "alias" }, { "X-Keyauth-Tags", "tags" },
	};
	bool any = false;

	/* By prefix, not regex (HTX keeps header names lower-cased): -m reg
	 * cost 1.2 µs of HAProxy CPU per request, 3% of 2.6's throughput. */
	fputs("\n    # Identity headers are keyauth's: a client's own never go upstream.\n"
	      "    http-request del-header x-keyauth- -m beg\n"
	      "    http-request del-header x_keyauth_ -m beg\n", f);
	for (unsigned i = 0; i < n; i++) {
		if (!rr[i].r->identity_headers)
			continue;
		if (!any)
			fputs("    # Routes with identity_headers: who is calling, never the key.\n"
			      "    acl keyauth_identity var(txn.keyauth_route) -m str", f);
		fprintf(f, " %s", rr[i].r->name);
		any = true;
	}
	if (!any)
		return;
	fputc('\n', f);
	for (size_t j = 0; j < sizeof(id) / sizeof(id[0]); j++)
		fprintf(f, "    http-request set-header %s \"%%[var(txn.keyauth.%s)]\" "
		        "if keyauth_identity { var(txn.keyauth.%s) -m found }\n", id[j].hdr,
		        id[j].var, id[j].var);
}

/* Allowed: no copy of a client key goes upstream, the provider's own
 * credential does. Every carrier of every route, the usual key headers and
 * query parameters, Authorization and Proxy-Authorization are removed from
 * every allowed request (a client may send its key twice); then each route
 * adds its provider's credential as that provider expects it. */
void
ctl_render_credentials(FILE *f, const struct rroute *rr, unsigned n)
{
	/* An absolute-form request line (GET http://host/path) keeps its
	 * authority through HAProxy 2.6 and 3.2, which forward it as it is (a
	 * Host set later rewrites it to that value, but the line stays
	 * absolute): make it origin-form, whatever the client sent. pathq may
	 * be empty ("http://host" or "http://host?q": 3.2 routes them to a "/"
	 * route), hence one leading '/' put back. */
	fputs("\n    # Origin-form whatever the client sent: an absolute-form authority\n"
	      "    # (GET http://host/...) never reaches a provider; the backend sets Host.\n"
	      "    http-request set-uri \"/%[pathq,regsub(^/,)]\" unless { url_beg / }\n", f);
	fputs("\n    # Allowed: no copy of the client's key goes upstream, on any route: every\n"
	      "    # route's carriers, the usual key headers and query parameters.\n", f);
	for_each_strip_name(f, rr, n, KEYLOC_HEADER, put_del_header);
	/* Remove every "<name>=..." pair that url_param could have read a key
	 * from, in any case; keep the other parameters and drop a query left
	 * empty. url_param (HAProxy's http_is_param_delimiter) starts a
	 * parameter after '&', ';' or a further '?', and ends its value at any
	 * of the three: the regex uses the same set, or "?a=1;api_key=K" and
	 * "?a=1?api_key=K" would forward the key. "&" + query makes the first
	 * pair start with a delimiter too. */
	fputs("    http-request set-var-fmt(txn.keyauth_q) \"&%[query]\" if { query -m found }\n"
	      "    http-request set-var(txn.keyauth_q) var(txn.keyauth_q)", f);
	for_each_strip_name(f, rr, n, KEYLOC_QUERY, put_query_strip);
	fputs(",regsub(^[&;?]+,) if { query -m found }\n"
	      "    http-request set-query \"%[var(txn.keyauth_q)]\" if { var(txn.keyauth_q) -m len gt 0 }\n"
	      "    http-request set-uri \"%[path]\" if { query -m found } !{ var(txn.keyauth_q) -m len gt 0 }\n",
	      f);

	render_identity(f, rr, n);

	fputs("\n    # The provider's own credential, from HAProxy's environment.\n", f);
	for (unsigned i = 0; i < n; i++) {
		const struct rroute *r = &rr[i];
		const struct upstream_auth *u = &r->r->upstream_auth;
		const char *nm = r->r->name;

		switch (u->kind) {
		case UPAUTH_NONE:
			fprintf(f, "    # route %s: upstream_auth none, no credential added\n", nm);
			break;
		case UPAUTH_HEADER:
			fprintf(f, "    http-request set-header %s \"%s%%[env(%s)]\" "
			        "if keyauth_is_%s { env(%s) -m found }\n", u->name, u->prefix, r->env,
			        nm, r->env);
			break;
		case UPAUTH_QUERY:
			fprintf(f, "    http-request set-query \"%%[query]&%s=%%[env(%s)]\" "
			        "if keyauth_is_%s { env(%s) -m found } { query -m found }\n",
			        u->name, r->env, nm, r->env);
			fprintf(f, "    http-request set-query \"%s=%%[env(%s)]\" "
			        "if keyauth_is_%s { env(%s) -m found } !{ query -m found }\n",
			        u->name, r->env, nm, r->env);
			break;
		}
	}
}

/*
 * The bind lines. With frontend.tls every address is TLS: HAProxy holds the
 * certificate (or the crt-list, for several names chosen by SNI), refuses
 * protocols below min_version and offers HTTP/2 by ALPN when http2 is on.
 * Nothing else of the frontend depends on TLS: an HTTP/2 request reaches
 * the rules in absolute form (scheme and authority from :scheme and
 * :authority), which the origin-form rewrite below already turns into the
 * path a provider expects, and each backend sets the provider's own Host.
 * No X-Forwarded-Proto is added (no X-Forwarded-* goes to a provider at
 * all), and no Strict-Transport-Security: API clients ignore it and it is
 * a policy for the whole domain, the operator's to add.
 */
void
ctl_render_binds(FILE *f, const struct conf *c, const struct ctl_render_opts *o)
{
	const struct frontend_conf *fe = c->frontend;
	const char *dflt = CTL_DEFAULT_BIND;
	const char *const *addr = &dflt;
	unsigned n = 1;

	if (o->bind != NULL) {
		addr = &o->bind;
		fputs("    # --bind given: it replaces the config's frontend.bind.\n", f);
	} else if (fe != NULL && fe->nbind > 0) {
		addr = (const char *const *)fe->bind;
		n = fe->nbind;
	} else {
		fputs("    # No frontend.bind in the config: a preview on " CTL_DEFAULT_BIND
		      " ('keyauthctl deploy' refuses it).\n", f);
	}
	if (fe != NULL && fe->tls)
		fprintf(f, "    # Client TLS %s+, ALPN %s.\n",
		        fe->min_version == TLS1_3_VERSION ? "1.3" : "1.2",
		        fe->http2 ? "h2 then http/1.1" : "http/1.1 only (http2 = false)");
	for (unsigned i = 0; i < n; i++) {
		fprintf(f, "    bind %s", addr[i]);
		if (fe != NULL && fe->tls)
			fprintf(f, " ssl %s %s ssl-min-ver %s alpn %s",
			        fe->crt_list != NULL ? "crt-list" : "crt",
			        fe->crt_list != NULL ? fe->crt_list : fe->certificate,
			        fe->min_version == TLS1_3_VERSION ? "TLSv1.3" : "TLSv1.2",
			        fe->http2 ? "h2,http/1.1" : "http/1.1");
		fputc('\n', f);
	}
}
