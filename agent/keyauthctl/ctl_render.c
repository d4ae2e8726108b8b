/* SPDX-License-Identifier: Apache-2.0 */
/*
 * ctl_render: the HAProxy side of keyauth, rendered from keyauthd's config.
 *
 * Two files: the SPOE file (one agent, one message per route) and a complete
 * haproxy.cfg (global, defaults, the gateway frontend, one backend per route,
 * the agent backend). The frontend fails closed: a request is forwarded only
 * when the agent set txn.keyauth.ok to true; agent trouble is 503, bad keys
 * 401/403 with OpenAI-style JSON, paths under no route 404 and methods the
 * route does not allow 405, both without asking the agent. What goes upstream
 * is origin-form with the upstream's own Host; the log line has no query, no
 * path parameters and no key-like path segment. Every config string is
 * checked against a conservative character set before it is written, so no
 * value can inject HAProxy syntax.
 *
 * Rate limits: the agent supplies the limit (txn.keyauth.rpm, only for ok
 * verdicts that have one) and the identity (txn.keyauth.key_id); HAProxy
 * counts, in a stick table keyed by the key id (never the key), shared
 * between HAProxy nodes through a "peers" section when the config lists them.
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include "conf.h"
#include "ctl.h"
#include "ctl_render-int.h"

/* ---- checks on config values ---------------------------------------------- */

static bool
all_in(const char *s, const char *extra)
{
	if (s == NULL || *s == '\0')
		return false;
	for (const char *p = s; *p != '\0'; p++) {
		if ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9'))
			continue;
		if (strchr(extra, *p) == NULL)
			return false;
	}
	return true;
}

bool
ctl_bind_ok(const char *s)
{
	return all_in(s, ".:[]_-*/@,");
}

static bool
path_ok(const char *s)
{
	return s[0] == '/' && all_in(s, "._~/-");
}

int
ctl_parse_haproxy_version(const char *s, enum ctl_haproxy_version *out)
{
	static const char *const v26[] = { "2.6", "2.7", "2.8", "2.9", "3.0" };
	unsigned long minor;

	for (size_t i = 0; i < sizeof(v26) / sizeof(v26[0]); i++) {
		if (strcmp(s, v26[i]) == 0) {
			*out = CTL_HAPROXY_26;
			return 0;
		}
	}
	if (strncmp(s, "3.", 2) == 0 && ctl_parse_uint(s + 2, 1, 99, &minor) == 0) {
		*out = CTL_HAPROXY_32;
		return 0;
	}
	return -1;
}


static int
check_route(const struct route *r, struct rroute *rr, char *err, size_t errlen)
{
	size_t n;

	if (!all_in(r->name, "_-") || strlen(r->name) > 100) {
		snprintf(err, errlen, "route '%s': name must be [A-Za-z0-9_-], at most 100", r->name);
		return -1;
	}
	if (r->context == NULL || !path_ok(r->context) || strlen(r->context) >= sizeof(rr->ctx) ||
	    strstr(r->context, "//") != NULL) {
		snprintf(err, errlen, "route '%s': context '%s' cannot be rendered: use a path "
		         "of [A-Za-z0-9._~/-] starting with '/'", r->name,
		         r->context != NULL ? r->context : "");
		return -1;
	}
	for (unsigned i = 0; i < r->ncarriers; i++) {
		const struct carrier *k = &r->carriers[i];

		if (!all_in(k->name, k->loc == KEYLOC_HEADER ? "_-" : "_.~-")) {
			snprintf(err, errlen, "route '%s': key carrier '%s' cannot be rendered: use "
			         "[A-Za-z0-9_-]", r->name, k->name);
			return -1;
		}
	}
	if (r->ncarriers == 0) {
		snprintf(err, errlen, "route '%s' has no key carrier", r->name);
		return -1;
	}
	if (r->upstream_auth.kind != UPAUTH_NONE && !all_in(r->upstream_auth.name, "_.~-")) {
		snprintf(err, errlen, "route '%s': upstream_auth name '%s' cannot be rendered",
		         r->name, r->upstream_auth.name);
		return -1;
	}
	if (r->upstream != NULL && !all_in(r->upstream, ".:[]-_")) {
		snprintf(err, errlen, "route '%s': upstream '%s' is not host:port", r->name,
		         r->upstream);
		return -1;
	}
	rr->r = r;
	n = strlen(r->context);
	memcpy(rr->ctx, r->context, n + 1);
	while (n > 1 && rr->ctx[n - 1] == '/')
		rr->ctx[--n] = '\0';
	rr->ctxlen = n;
	n = (size_t)snprintf(rr->env, sizeof(rr->env), "KEYAUTH_%s_CREDENTIAL", r->name);
	for (size_t i = 0; i < n; i++) {
		if (rr->env[i] >= 'a' && rr->env[i] <= 'z')
			rr->env[i] = (char)(rr->env[i] - 'a' + 'A');
		else if (rr->env[i] == '-')
			rr->env[i] = '_';
	}
	return 0;
}

/* True if <sub>'s context lies strictly under <top>'s. */
static bool
ctx_under(const struct rroute *top, const struct rroute *sub)
{
	if (top == sub || sub->ctxlen <= top->ctxlen)
		return false;
	if (top->ctxlen == 1)
		return true;
	return strncmp(sub->ctx, top->ctx, top->ctxlen) == 0 && sub->ctx[top->ctxlen] == '/';
}

/* Writes <s> with regex metacharacters escaped (only '.' can occur). */
void
ctl_put_regex(FILE *f, const char *s)
{
	for (; *s != '\0'; s++) {
		if (*s == '.')
			fputc('\\', f);
		fputc(*s, f);
	}
}

/* The ACL lines that match a path under <rr>'s context. */
static void
put_ctx_acl(FILE *f, const char *indent, const char *name, const struct rroute *rr)
{
	if (rr->ctxlen == 1) {
		fprintf(f, "%sacl %s path_beg /\n", indent, name);
		return;
	}
	fprintf(f, "%sacl %s path_beg %s/\n", indent, name, rr->ctx);
	fprintf(f, "%sacl %s path %s\n", indent, name, rr->ctx);
}

/* Splits "host:port" / "[v6]:port". Returns 0 or -1. */
static int
split_hostport(const char *s, char *host, size_t hostlen, unsigned long *port)
{
	const char *colon;
	size_t n;

	if (s[0] == '[') {
		const char *close = strchr(s, ']');

		if (close == NULL || close[1] != ':')
			return -1;
		n = (size_t)(close - s - 1);
		colon = close + 1;
		s++;
	} else {
		colon = strrchr(s, ':');
		if (colon == NULL || memchr(s, ':', (size_t)(colon - s)) != NULL)
			return -1;
		n = (size_t)(colon - s);
	}
	if (n == 0 || n >= hostlen || ctl_parse_uint(colon + 1, 1, 65535, port) == -1)
		return -1;
	memcpy(host, s, n);
	host[n] = '\0';
	return 0;
}

static bool
is_numeric_host(const char *h)
{
	return strchr(h, ':') != NULL || strspn(h, "0123456789.") == strlen(h);
}

/* ---- the SPOE file ---------------------------------------------------------- */

static void
render_spoe(FILE *f, const struct conf *c, const struct rroute *rr, unsigned n,
            const struct ctl_render_opts *o)
{
	fprintf(f,
	        "# %s: keyauth's SPOE configuration, generated by keyauthctl from\n"
	        "# %s. Do not edit: change that file and run 'keyauthctl deploy'.\n"
	        "# Referenced by the 'filter spoe' line of %s.\n\n",
	        CTL_SPOE_FILE, c->path, CTL_HAPROXY_FILE);
	fputs("[keyauth]\n"
	      "spoe-agent keyauth-agent\n", f);
	for (unsigned i = 0; i < n; i++)
		fprintf(f, "    messages keyauth-%s\n", rr[i].r->name);
	ctl_render_admin_spoe_list(f, c);
	fputs("    # Verdicts arrive as txn.keyauth.{ok,status,key_id,rpm,owner,message}.\n"
	      "    option var-prefix keyauth\n"
	      "    # Any SPOE failure (timeout, agent down, I/O) sets txn.keyauth.err: 503.\n"
	      "    option set-on-error err\n", f);
	if (o->version == CTL_HAPROXY_26) {
		fputs("    # keyauthd never announces fragmentation; without this line 2.6 drops the\n"
		      "    # whole agent connection when one message is too big.\n"
		      "    no option send-frag-payload\n"
		      "    timeout hello      2s\n"
		      "    # Below the agent backend's 'timeout server'.\n"
		      "    timeout idle       30s\n", f);
	} else {
		fputs("    # 3.1+: hello/idle timeouts and send-frag-payload are gone; the agent\n"
		      "    # backend's 'timeout server' bounds idle connections.\n", f);
	}
	fputs("    # Short: a dead agent must cost a request 500ms and a 503, not a hang.\n"
	      "    timeout processing 500ms\n"
	      "    use-backend keyauth_agents\n"
	      "    log global\n", f);
	for (unsigned i = 0; i < n; i++) {
		const struct rroute *r = &rr[i];
		char ml[64];
		bool has_sub = false;

		fprintf(f, "\n# route %s (%s; profile %s), context %s, key from",
		        r->r->name, route_type_str(r->r->type), r->r->provider->name, r->ctx);
		for (unsigned k = 0; k < r->r->ncarriers; k++) {
			char cs[96];

			fprintf(f, "%s %s", k > 0 ? "," : "",
			        carrier_str(&r->r->carriers[k], cs, sizeof(cs)));
		}
		fputs(r->r->ncarriers > 1 ? " (the first present wins)\n" : "\n", f);
		fprintf(f, "spoe-message keyauth-%s\n", r->r->name);
		put_ctx_acl(f, "    ", "keyauth_ctx", r);
		/* A path under a more specific route's context belongs to that route. */
		for (unsigned j = 0; j < n; j++) {
			if (ctx_under(r, &rr[j])) {
				put_ctx_acl(f, "    ", "keyauth_sub", &rr[j]);
				has_sub = true;
			}
		}
		/* req.fhdr, not req.hdr: imported keys may contain commas, which
		 * req.hdr would split on. Absent values are sent as NULL (missing). */
		fprintf(f, "    args route=str(%s)", r->r->name);
		for (unsigned k = 0; k < r->r->ncarriers; k++) {
			const struct carrier *cr = &r->r->carriers[k];
			char an[16];

			if (k == 0)
				snprintf(an, sizeof(an), "key");
			else
				snprintf(an, sizeof(an), "key%u", k + 1);
			fprintf(f, " %s=%s(%s)", an, cr->loc == KEYLOC_HEADER ? "req.fhdr" : "url_param",
			        cr->name);
		}
		fputc('\n', f);
		/* The frontend answers any other method 405 without the agent. */
		fprintf(f, "    acl keyauth_meth method %s\n",
		        ctl_methods_str(ml, sizeof(ml), r->r->methods, " "));
		fprintf(f, "    event on-frontend-http-request if keyauth_ctx%s keyauth_meth\n",
		        has_sub ? " !keyauth_sub" : "");
	}
	ctl_render_admin_spoe(f, c);
}

/* ---- haproxy.cfg ---------------------------------------------------------- */

static void
render_agent_servers(FILE *f, const struct conf *c)
{
	for (unsigned i = 0; i < c->nlisten; i++) {
		const struct listen_conf *l = &c->listen[i];

		if (l->family == LISTEN_UNIX)
			fprintf(f, "    server agent%u unix@%s check inter 2s", i + 1, l->path);
		/* A wildcard listener is reached over loopback. */
		else if (strcmp(l->host, "0.0.0.0") == 0 || l->host[0] == '\0')
			fprintf(f, "    server agent%u 127.0.0.1:%u check inter 2s", i + 1, l->port);
		else if (strcmp(l->host, "::") == 0)
			fprintf(f, "    server agent%u [::1]:%u check inter 2s", i + 1, l->port);
		else if (strchr(l->host, ':') != NULL)
			fprintf(f, "    server agent%u [%s]:%u check inter 2s", i + 1, l->host, l->port);
		else
			fprintf(f, "    server agent%u %s:%u check inter 2s", i + 1, l->host, l->port);
		/* TLS listener: HAProxy verifies the agent, and presents
		 * its own certificate when one is configured (mutual TLS). */
		if (l->tls && c->tls != NULL) {
			fprintf(f, " ssl verify required ca-file %s",
			    c->tls->haproxy_ca != NULL ? c->tls->haproxy_ca : "@system-ca");
			if (c->tls->haproxy_client_cert != NULL)
				fprintf(f, " crt %s", c->tls->haproxy_client_cert);
		}
		fputc('\n', f);
	}
}

static void
render_backend(FILE *f, const struct rroute *r)
{
	char host[256];
	unsigned long port = 0;
	const char *up = r->r->upstream;

	fprintf(f, "\nbackend be_%s\n", r->r->name);
	if (up == NULL || split_hostport(up, host, sizeof(host), &port) == -1) {
		fprintf(f, "    # Placeholder: set 'upstream = \"host:port\"' on route %s in the\n"
		        "    # keyauth config and deploy again.\n", r->r->name);
		up = "127.0.0.1:9000";
		snprintf(host, sizeof(host), "127.0.0.1");
		port = 9000;
	}
	/* Upgraded connections (WebSocket: OpenAI's Realtime API) were checked
	 * once, on the upgrade request; this bounds how long one may sit idle.
	 * HAProxy has no limit on a tunnel's total lifetime. */
	fprintf(f, "    timeout tunnel %us\n", r->r->tunnel_timeout_s);
	/* Clients call <context>/v1/...; the provider expects /v1/... */
	if (r->ctxlen > 1) {
		fprintf(f, "    http-request set-path / if { path %s }\n", r->ctx);
		fputs("    http-request replace-path ^", f);
		ctl_put_regex(f, r->ctx);
		fputs("(/.*)$ \\1\n", f);
	}
	/* Every upstream gets its own authority as Host, the client's never
	 * goes (the frontend made the request line origin-form). The port is
	 * left out when it is the scheme's: 443 (TLS) or 80. */
	fprintf(f, "    http-request set-header Host %s%s%s", strchr(host, ':') != NULL ? "[" : "",
	        host, strchr(host, ':') != NULL ? "]" : "");
	if (port != 443 && port != 80)
		fprintf(f, ":%lu", port);
	fputc('\n', f);
	if (port == 443 && !is_numeric_host(host))
		fprintf(f, "    server %s %s ssl verify required ca-file @system-ca sni str(%s)\n",
		        r->r->name, up, host);
	else if (port == 443)
		fprintf(f, "    server %s %s ssl verify required ca-file @system-ca\n", r->r->name, up);
	else
		fprintf(f, "    server %s %s\n", r->r->name, up);
}

/* The per-key counters. Keyed by the key id (KEY_ID_LEN characters, never
 * the key); entries outlive the 1-minute rate period so the sliding count
 * stays exact, then expire. With haproxy_peers every node pushes its updates
 * to the others, so a client spreading requests over nodes is held to one
 * limit. */
static void
render_rate_table(FILE *f, const struct conf *c)
{
	if (c->npeers > 0) {
		fputs("\n# The HAProxy nodes that share the rate-limit counts (haproxy_peers). Each\n"
		      "# node must know its own name: localpeer, 'haproxy -L NAME' or its host name.\n"
		      "peers " RATE_PEERS "\n", f);
		for (unsigned i = 0; i < c->npeers; i++)
			fprintf(f, "    peer %s %s\n", c->peers[i].name, c->peers[i].address);
	}
	fprintf(f, "\n# Admitted requests per key id over the last %us (see the rate-limit rules\n"
	        "# above); an entry outlives two periods, so the sliding count stays exact.\n"
	        "backend " RATE_TABLE "\n"
	        "    stick-table type string len 16 size 1m expire %us store gpc0_rate(%us)",
	        c->rate_window_s, 2 * c->rate_window_s, c->rate_window_s);
	if (c->npeers > 0)
		fputs(" peers " RATE_PEERS, f);
	fputc('\n', f);
}

static int
cmp_ctxlen(const void *pa, const void *pb)
{
	const struct rroute *a = pa, *b = pb;

	if (a->ctxlen != b->ctxlen)
		return a->ctxlen < b->ctxlen ? -1 : 1;
	return strcmp(a->r->name, b->r->name);
}

/* <byctx> holds the same routes as <rr>, sorted by context length. */
static void
render_cfg(FILE *f, const struct conf *c, struct rroute *rr, const struct rroute *byctx,
           unsigned n, const struct ctl_render_opts *o)
{
	struct rgroup groups[MAX_GROUPS];
	unsigned ng;

	fprintf(f,
	        "# %s: the keyauth API-key gateway, generated by keyauthctl from\n"
	        "# %s. Do not edit: change that file and run 'keyauthctl deploy'.\n"
	        "#\n"
	        "# Each request under a route's context is checked by keyauthd (SPOE, %s)\n"
	        "# before it goes upstream. Only an explicit ok from the agent lets it through;\n"
	        "# agent trouble is a 503, a bad key a 401 or 403, a path under no route a 404.\n"
	        "# On success every place a client key can travel is emptied and, when\n"
	        "# HAProxy's environment has KEYAUTH_<ROUTE>_CREDENTIAL (route name upper-cased,\n"
	        "# '-' as '_'), that value goes to the provider the way the route's provider\n"
	        "# expects it (upstream_auth: Authorization: Bearer, api-key, x-api-key, ...).\n"
	        "# Set it in haproxy's service (systemd: EnvironmentFile=), never in this file.\n"
	        "#\n"
	        "# Tuning (BENCHMARKS.md): leave nbthread at its default (all CPUs) and SPOE\n"
	        "# pipelining on (the default: 10-20 NOTIFYs share an agent connection). Never\n"
	        "# put a maxconn on the agent servers: HAProxy then opens a connection for\n"
	        "# nearly every request ('maxconn 5' measured at 0.11x throughput). An agent\n"
	        "# on the same host is cheapest over a unix socket (0.91x vs 0.84x on TCP).\n\n",
	        CTL_HAPROXY_FILE, c->path, o->spoe_path);
	fputs("global\n"
	      "    log stdout format raw local0 info\n", f);
	if (c->npeers > 0 && c->local_peer != NULL)
		fprintf(f, "    # This node's name in the peers section ('haproxy -L NAME' overrides it).\n"
		        "    localpeer %s\n", c->local_peer);
	fputs("\n"
	      "defaults\n"
	      "    mode http\n"
	      "    log global\n"
	      "    option dontlognull\n"
	      "    timeout connect 5s\n"
	      "    timeout client 60s\n"
	      "    timeout http-request 10s\n"
	      "    timeout http-keep-alive 10s\n"
	      "    # LLM answers stream for minutes.\n"
	      "    timeout server 300s\n"

	      "    # Start even when a provider's name does not resolve yet.\n"
	      "    default-server init-addr last,libc,none\n\n", f);

	fputs("frontend fe_keyauth\n", f);
	ctl_render_binds(f, c, o);
	fprintf(f, "    # Of what the client wrote, only a standard method and the path as\n"
	        "    # txn.keyauth_lpath has it (below): no %%r, %%HU, %%HP, header or capture,\n"
	        "    # which would log a key put in the path, its parameters or the query.\n"
	        "    log-format \"%%ci:%%cp [%%tr] %%ft %%b/%%s %%TR/%%Tw/%%Tc/%%Tr/%%Ta %%ST %%B %%tsc "
	        "%%ac/%%fc/%%bc/%%sc/%%rc %%sq/%%bq %%[var(txn.keyauth_lmethod)] "
	        "%%[var(txn.keyauth_lpath)] %%HV route=%%[var(txn.keyauth_route)] "
	        "keyauth=%%[var(txn.keyauth.status)] key_id=%%[var(txn.keyauth.key_id)]\"\n"
	        "    filter spoe engine keyauth config %s\n"
	        "    # Streamed answers (SSE) leave at once: without this HAProxy may hold a\n"
	        "    # small chunk back for up to 200 ms waiting for more (measured: events\n"
	        "    # 100 ms apart arrived in bursts, the first 200 ms late).\n"
	        "    option http-no-delay\n",
	        o->spoe_path);

	/* First, before any rule can end the request: what the log line may
	 * show. The path loses everything from its first ';' (parameters, and
	 * the query, which the path fetch never has); then every stretch that
	 * starts with the key prefix, and every run of 20 or more token
	 * characters (a key without our prefix: imported keys are 20 or longer;
	 * any other secret; '%' makes a percent-encoded one a run too), is
	 * replaced. The regex is quoted for its comma; HAProxy 2.6 and 3.2 read
	 * the quotes. */
	fprintf(f, "\n    # What the log line shows of the request: the path without parameters or\n"
	        "    # query, key-like and long opaque runs replaced; the method if standard.\n"
	        "    http-request set-var(txn.keyauth_lpath) \"path,field(1,;),regsub(%s[A-Za-z0-9_]*,<key>,g),"
	        "regsub('[-A-Za-z0-9_~%%+=]{20,}',<token>,g)\"\n"
	        "    http-request set-var(txn.keyauth_lmethod) method if { method GET HEAD POST PUT PATCH "
	        "DELETE OPTIONS TRACE CONNECT }\n", c->key_prefix);

	ctl_render_admin_rules(f, c);
	/* Route selection: shortest context first, so the most specific one
	 * sets the variable last; the SPOE messages make the same choice. */
	fputs("\n    # Which route a path belongs to (the most specific context wins).\n", f);
	for (unsigned i = 0; i < n; i++) {
		char acl[128];

		snprintf(acl, sizeof(acl), "keyauth_in_%s", byctx[i].r->name);
		put_ctx_acl(f, "    ", acl, &byctx[i]);
		fprintf(f, "    http-request set-var(txn.keyauth_route) str(%s) if %s\n",
		        byctx[i].r->name, acl);
	}
	for (unsigned i = 0; i < n; i++)
		fprintf(f, "    acl keyauth_is_%s var(txn.keyauth_route) -m str %s\n",
		        rr[i].r->name, rr[i].r->name);

	ng = ctl_group_routes(rr, n, groups);
	ctl_render_denials(f, rr, n, groups, ng);
	ctl_render_rate_rules(f, c, groups, ng);
	ctl_render_credentials(f, rr, n);
	fputc('\n', f);
	ctl_render_admin_use(f, c);
	for (unsigned i = 0; i < n; i++)
		fprintf(f, "    use_backend be_%s if keyauth_is_%s\n", rr[i].r->name, rr[i].r->name);

	for (unsigned i = 0; i < n; i++)
		render_backend(f, &rr[i]);
	ctl_render_admin_backend(f, c);
	render_rate_table(f, c);

	fputs("\n# keyauthd. 'mode tcp': 2.6 does not know 'mode spop'; 3.1+ converts it.\n"
	      "backend keyauth_agents\n"
	      "    mode tcp\n"
	      "    balance roundrobin\n"
	      "    option spop-check\n"
	      "    timeout connect 2s\n"
	      "    # Above the SPOE 'timeout idle' (30s).\n"
	      "    timeout server 1m\n"
	      "    # No maxconn here (see the tuning note at the top).\n", f);
	render_agent_servers(f, c);
}

/* Every route renderable, and no two sharing a context or a credential
 * variable. Fills <rr>. */
static int
check_routes(const struct conf *c, struct rroute *rr, char *err, size_t errlen)
{
	for (unsigned i = 0; i < ctl_render_admin_split(c); i++) {
		if (check_route(&c->routes[i], &rr[i], err, errlen) == -1)
			return -1;
		for (unsigned j = 0; j < i; j++) {
			if (strcmp(rr[i].ctx, rr[j].ctx) == 0) {
				snprintf(err, errlen, "routes '%s' and '%s' have the same context %s",
				         rr[j].r->name, rr[i].r->name, rr[i].ctx);
				return -1;
			}
			if (strcmp(rr[i].env, rr[j].env) == 0) {
				snprintf(err, errlen, "routes '%s' and '%s' would share the credential "
				         "variable %s; rename one", rr[j].r->name, rr[i].r->name, rr[i].env);
				return -1;
			}
		}
	}
	return 0;
}

/* The agent addresses, TLS files and peers: what else goes into the files. */
static int
check_others(const struct conf *c, char *err, size_t errlen)
{
	for (unsigned i = 0; i < c->nlisten; i++) {
		const struct listen_conf *l = &c->listen[i];
		bool ok;

		if (l->family == LISTEN_UNIX)
			ok = l->path != NULL && path_ok(l->path);
		else
			ok = l->host != NULL && (l->host[0] == '\0' || all_in(l->host, ".:"));
		if (!ok) {
			snprintf(err, errlen, "listen address '%s' cannot be rendered", l->addr);
			return -1;
		}
	}
	/* conf_load checked the frontend already; this keeps the rendering
	 * safe on its own, as for every other value. */
	for (unsigned i = 0; c->frontend != NULL && i < c->frontend->nbind; i++) {
		const struct frontend_conf *fe = c->frontend;

		if (!ctl_bind_ok(fe->bind[i]) || (fe->certificate != NULL && !path_ok(fe->certificate)) ||
		    (fe->crt_list != NULL && !path_ok(fe->crt_list))) {
			snprintf(err, errlen, "frontend '%s' cannot be rendered", fe->bind[i]);
			return -1;
		}
	}
	if (c->tls != NULL && ((c->tls->haproxy_ca != NULL && !path_ok(c->tls->haproxy_ca)) ||
	    (c->tls->haproxy_client_cert != NULL && !path_ok(c->tls->haproxy_client_cert)))) {
		snprintf(err, errlen, "tls haproxy_ca or haproxy_client_cert cannot be rendered");
		return -1;
	}
	for (unsigned i = 0; i < c->npeers; i++) {
		const struct haproxy_peer *p = &c->peers[i];

		if (!all_in(p->name, "_.-") || !all_in(p->address, ".:[]-_")) {
			snprintf(err, errlen, "haproxy peer '%s' cannot be rendered", p->name);
			return -1;
		}
	}
	/* Rendered into a regex: letters, digits and '_' only. */
	if (c->key_prefix == NULL || !all_in(c->key_prefix, "_")) {
		snprintf(err, errlen, "key_prefix '%s' cannot be rendered",
		         c->key_prefix != NULL ? c->key_prefix : "");
		return -1;
	}
	if (c->local_peer != NULL && !all_in(c->local_peer, "_.-")) {
		snprintf(err, errlen, "haproxy_local_peer '%s' cannot be rendered", c->local_peer);
		return -1;
	}
	return 0;
}

int
ctl_render(const struct conf *c, const struct ctl_render_opts *o,
           char **spoe, size_t *spoe_len, char **cfg, size_t *cfg_len,
           char *err, size_t errlen)
{
	struct rroute *rr, *byctx;
	FILE *f1 = NULL, *f2 = NULL;
	unsigned n = ctl_render_admin_split(c);   /* the provider routes */
	int rc = -1;

	*spoe = NULL;
	*cfg = NULL;
	if (o->bind != NULL && !ctl_bind_ok(o->bind)) {
		snprintf(err, errlen, "bind address '%s' cannot be rendered", o->bind);
		return -1;
	}
	if (!path_ok(o->spoe_path)) {
		snprintf(err, errlen, "SPOE file path '%s' must be absolute, of [A-Za-z0-9._~/-]",
		         o->spoe_path);
		return -1;
	}
	if (n == 0) {
		snprintf(err, errlen, "%s has no routes: nothing to protect", c->path);
		return -1;
	}
	rr = calloc(c->nroutes, sizeof(*rr));
	byctx = calloc(c->nroutes, sizeof(*byctx));
	if (rr == NULL || byctx == NULL) {
		snprintf(err, errlen, "out of memory");
		goto out;
	}
	if (check_routes(c, rr, err, errlen) == -1 || check_others(c, err, errlen) == -1 ||
	    ctl_render_admin_check(c, err, errlen) == -1)
		goto out;
	memcpy(byctx, rr, n * sizeof(*byctx));
	qsort(byctx, n, sizeof(*byctx), cmp_ctxlen);
	f1 = open_memstream(spoe, spoe_len);
	f2 = open_memstream(cfg, cfg_len);
	if (f1 == NULL || f2 == NULL) {
		snprintf(err, errlen, "out of memory");
		goto out;
	}
	render_spoe(f1, c, rr, n, o);
	render_cfg(f2, c, rr, byctx, n, o);
	if (ferror(f1) || ferror(f2)) {
		snprintf(err, errlen, "out of memory");
		goto out;
	}
	rc = 0;
out:
	if (f1 != NULL)
		fclose(f1);
	if (f2 != NULL)
		fclose(f2);
	if (rc == -1) {
		free(*spoe);
		free(*cfg);
		*spoe = NULL;
		*cfg = NULL;
	}
	free(rr);
	free(byctx);
	return rc;
}

/* ---- keyauthctl haproxy -------------------------------------------------------- */

static const char haproxy_help[] =
	"usage: keyauthctl haproxy [--out DIR] [--bind ADDR] [--haproxy-version 2.6|3.2]\n"
	"                          [--spoe-path PATH]\n"
	"\n"
	"Renders, from the keyauth config, the HAProxy files for its routes:\n"
	"  " CTL_SPOE_FILE "    the SPOE agent and one message per route\n"
	"  " CTL_HAPROXY_FILE "  a complete haproxy.cfg: fail-closed frontend, one\n"
	"                       backend per route, the keyauthd backend\n"
	"Without --out both are printed to stdout. 'keyauthctl deploy' also checks them\n"
	"with 'haproxy -c' and installs them atomically.\n"
	"\n"
	"  --out DIR              write the two files into DIR (created, with its\n"
	"                         parents, mode 0755, when missing)\n"
	"  --bind ADDR            bind the frontend to ADDR instead of the config's\n"
	"                         frontend.bind (its tls and http2 still apply), for\n"
	"                         previews and tests; without either, " CTL_DEFAULT_BIND "\n"
	"                         ('keyauthctl deploy' takes no --bind: it needs\n"
	"                         frontend.bind in the config)\n"
	"  --haproxy-version V    2.6 (also 2.7..3.0, the default) or 3.1+ (e.g. 3.2)\n"
	"  --spoe-path PATH       where haproxy.cfg looks for the SPOE file (default:\n"
	"                         DIR/" CTL_SPOE_FILE ", or " CTL_DEFAULT_HAPROXY_DIR "/" CTL_SPOE_FILE ")\n"
	"\n"
	"example:\n"
	"  keyauthctl haproxy --out /tmp/gw && haproxy -c -f /tmp/gw/" CTL_HAPROXY_FILE "\n";

static int
haproxy_run(struct ctl_ctx *ctx, const struct ctl_args *a)
{
	const struct ctl_hap_opts *h = a->opts;
	struct ctl_render_opts o = h->render;
	const char *out = h->out;
	char dir[PATH_MAX], spoe_path[PATH_MAX + 64], err[1024];
	char *spoe = NULL, *cfg = NULL;
	size_t spoe_len = 0, cfg_len = 0;
	struct conf *c = NULL;
	int rc;

	if (o.bind != NULL && !ctl_bind_ok(o.bind))
		return ctl_usage_err(ctx, "--bind: '%s' is not an address like 127.0.0.1:8080", o.bind);
	c = ctl_conf_load(ctx);
	if (c == NULL)
		return CTL_EXIT_FAIL;
	rc = CTL_EXIT_FAIL;
	if (out != NULL) {
		/* Like mkdir -p, once the configuration is known to be good. */
		if (ctl_mkdir_p(out, 0755, err, sizeof(err)) == -1) {
			ctl_err(ctx, "--out %s: %s", out, err);
			goto out;
		}
		if (realpath(out, dir) == NULL) {
			ctl_err(ctx, "--out %s: %s", out, strerror(errno));
			goto out;
		}
	} else {
		snprintf(dir, sizeof(dir), "%s", CTL_DEFAULT_HAPROXY_DIR);
	}
	if (o.spoe_path == NULL) {
		snprintf(spoe_path, sizeof(spoe_path), "%s/%s", dir, CTL_SPOE_FILE);
		o.spoe_path = spoe_path;
	}
	err[0] = '\0';
	if (ctl_render(c, &o, &spoe, &spoe_len, &cfg, &cfg_len, err, sizeof(err)) == -1) {
		ctl_err(ctx, "%s", err);
		goto out;
	}
	if (out == NULL) {
		printf("# ---- %s ----\n%s\n# ---- %s ----\n%s", CTL_SPOE_FILE, spoe,
		       CTL_HAPROXY_FILE, cfg);
		rc = fflush(stdout) == EOF ? CTL_EXIT_FAIL : CTL_EXIT_OK;
		goto out;
	}
	if (ctl_write_atomic(dir, CTL_SPOE_FILE, spoe, spoe_len, 0644, err, sizeof(err)) == -1 ||
	    ctl_write_atomic(dir, CTL_HAPROXY_FILE, cfg, cfg_len, 0644, err, sizeof(err)) == -1) {
		ctl_err(ctx, "%s", err);
		goto out;
	}
	printf("wrote %s/%s\nwrote %s/%s\n", dir, CTL_SPOE_FILE, dir, CTL_HAPROXY_FILE);
	rc = CTL_EXIT_OK;
out:
	free(spoe);
	free(cfg);
	conf_free(c);
	return rc;
}

static const struct option haproxy_opts[] = {
	{ "out",             required_argument, NULL, 'o' },
	{ "bind",            required_argument, NULL, 'b' },
	{ "haproxy-version", required_argument, NULL, 'v' },
	{ "spoe-path",       required_argument, NULL, 's' },
	{ NULL, 0, NULL, 0 }
};

const struct ctl_cmd ctl_cmd_haproxy = {
	.name = "haproxy", .summary = "render the HAProxy SPOE file and haproxy.cfg",
	.help = haproxy_help, .longopts = haproxy_opts, .run = haproxy_run, CTL_HAP_OPTS
};
