/* SPDX-License-Identifier: Apache-2.0 */
/*
 * ctl_keys_show: `keyauthctl key show ID`, one key with its usage per route,
 * and the rules of admin-route keys and their scopes (issue #22), shared by
 * create, import, set and rotate.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctl_keys-int.h"
#include "usage.h"

/* ---- scopes ------------------------------------------------------------------ */

json_t *
key_json_scopes(uint32_t scopes)
{
	static const char *const names[] = { "read", "write", "deploy" };
	json_t *a = json_array();

	for (unsigned i = 0; a != NULL && i < sizeof(names) / sizeof(names[0]); i++)
		if (scopes & (1u << i))
			json_array_append_new(a, json_string(names[i]));
	return a;
}

/* Is the admin route among the ','-joined <routes>? */
static bool
key_routes_has_admin(const char *routes)
{
	size_t n = strlen(CONF_ADMIN_ROUTE);

	for (const char *p = routes; p != NULL && *p != '\0'; ) {
		const char *c = strchr(p, ',');
		size_t len = c != NULL ? (size_t)(c - p) : strlen(p);

		if (len == n && memcmp(p, CONF_ADMIN_ROUTE, n) == 0)
			return true;
		p = c != NULL ? c + 1 : NULL;
	}
	return false;
}

/* An admin key opens the control plane, not a model: it must say what it may
 * do there (a key without scope would be a key that looks harmless in a list
 * while HAProxy lets its reads through), and it must not open anything else,
 * nor another key the admin API. */
int
key_scopes_check(const struct ctl_ctx *ctx, const struct conf *c, const char *routes,
                 uint32_t scopes)
{
	bool admin = conf_admin_route(c) != NULL && key_routes_has_admin(routes);

	if (!admin && scopes != 0)
		return ctl_usage_err(ctx, "scopes (--scope) are only for keys of the admin route "
		                     "(the admin group of %s: --route %s)%s", c->path, CONF_ADMIN_ROUTE,
		                     conf_admin_route(c) == NULL ? "; this configuration has no "
		                     "admin group" : "");
	if (!admin)
		return 0;
	if (strcmp(routes, CONF_ADMIN_ROUTE) != 0)
		return ctl_usage_err(ctx, "a key of the admin route is bound to it alone (routes "
		                     "'%s'): make one key for the admin API and others for the "
		                     "other routes", routes);
	if (scopes == 0)
		return ctl_usage_err(ctx, "a key of the admin route needs at least one --scope "
		                     "(read, write, deploy)");
	return 0;
}

/* ---- key show ---------------------------------------------------------------- */

static const char show_help[] =
	"usage: keyauthctl key show ID [--json]\n"
	"\n"
	"Shows one key (never the key itself): id, alias, routes, owner, times,\n"
	"status, rpm, tags, scopes, rotation links, and its use on each route\n"
	"(requests and last use, counted by keyauthd). With --json, the object of\n"
	"'key list --json' plus \"routes_usage\": [{route, requests, last_used}].\n"
	"Exit status 3 when no key has this id.\n"
	"\n"
	"example:\n"
	"  keyauthctl key show 3xK9pQ2mZ7aB --json\n";

static void
show_text(const struct ks_entry *e, int64_t now, const struct usage_set *u, uint64_t req,
          int64_t last)
{
	char t[32], rpm[16];

#define SHOW_ROW(label, val) printf("%-13s %s\n", label, val)
	SHOW_ROW("id:", e->id);
	SHOW_ROW("alias:", e->alias != NULL && e->alias[0] ? e->alias : "-");
	SHOW_ROW("routes:", ks_entry_routes(e));
	SHOW_ROW("owner:", e->owner[0] ? e->owner : "-");
	ctl_fmt_time(e->created, t, sizeof(t));
	SHOW_ROW("created:", t);
	if (e->expires != 0)
		ctl_fmt_time(e->expires, t, sizeof(t));
	SHOW_ROW("expires:", e->expires != 0 ? t : "never");
	if (e->revoked != 0)
		ctl_fmt_time(e->revoked, t, sizeof(t));
	SHOW_ROW("revoked:", e->revoked != 0 ? t : "-");
	SHOW_ROW("status:", key_entry_status(e, now));
	SHOW_ROW("rpm:", key_rpm_str(e->rpm, rpm, sizeof(rpm)));
	SHOW_ROW("tags:", e->tags != NULL && e->tags[0] ? e->tags : "-");
	SHOW_ROW("scopes:", e->scopes ? ks_scopes_str(e->scopes) : "-");
	SHOW_ROW("rotated_from:", e->rotated_from[0] ? e->rotated_from : "-");
	SHOW_ROW("rotated_to:", e->rotated_to[0] ? e->rotated_to : "-");
	if (last != 0)
		ctl_fmt_time(last, t, sizeof(t));
	printf("%-13s %llu (last %s)\n", "requests:", (unsigned long long)req,
	       last != 0 ? t : "never");
#undef SHOW_ROW
	for (size_t i = 0; i < usage_count(u); i++) {
		const struct usage_rec *r = usage_at(u, i);

		if (strcmp(r->id, e->id) != 0)
			continue;
		if (r->last_used != 0)
			ctl_fmt_time(r->last_used, t, sizeof(t));
		printf("  route %-20s %llu requests, last %s\n", r->route,
		       (unsigned long long)r->requests, r->last_used != 0 ? t : "never");
	}
}

static json_t *
show_json(const struct ks_entry *e, int64_t now, const struct usage_set *u, uint64_t req,
          int64_t last)
{
	json_t *o = key_json_entry_usage(e, now, req, last), *ru = json_array();

	for (size_t i = 0; o != NULL && ru != NULL && i < usage_count(u); i++) {
		const struct usage_rec *r = usage_at(u, i);

		if (strcmp(r->id, e->id) == 0)
			json_array_append_new(ru, json_pack("{s:o,s:I,s:o}",
			    "route", ctl_json_text(r->route), "requests", (json_int_t)r->requests,
			    "last_used", ctl_json_time(r->last_used, true)));
	}
	if (o == NULL || ru == NULL || json_object_set_new(o, "routes_usage", ru) == -1) {
		json_decref(o);
		return NULL;
	}
	return o;
}

static int
key_show(struct ctl_ctx *ctx, const struct ctl_args *args)
{
	const struct ks_entry *e;
	struct usage_set *u = NULL;
	struct ks_set *set;
	struct conf *c = NULL;
	uint64_t req = 0;
	int64_t last = 0;
	char err[512];
	int rc = CTL_EXIT_FAIL;

	set = key_store_read(ctx, &c);
	if (set == NULL)
		goto out;
	e = ks_find_id(set, args->id);
	if (e == NULL) {
		ctl_err(ctx, "no key with id '%s' in %s (see 'keyauthctl key list --all')", args->id,
		        c->store_redis != NULL ? c->store_redis->address : c->store_path);
		rc = CTL_EXIT_NOTFOUND;
		goto out;
	}
	if ((u = usage_read(c, err, sizeof(err))) == NULL) {
		ctl_err(ctx, "cannot read key usage: %s", err);
		goto out;
	}
	usage_key(u, e->id, &req, &last);
	if (args->json) {
		rc = ctl_json_print(ctx, show_json(e, ctl_now(ctx), u, req, last));
	} else {
		show_text(e, ctl_now(ctx), u, req, last);
		rc = fflush(stdout) == EOF ? CTL_EXIT_FAIL : CTL_EXIT_OK;
	}
out:
	usage_free(u);
	ks_set_unref(set);
	conf_free(c);
	return rc;
}

static const struct option show_opts[] = { KEY_OPT_END };
KEY_CMD(show, CTL_OPERAND_ID, "show one key, its scopes and its use per route");
