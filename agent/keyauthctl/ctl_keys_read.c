/* SPDX-License-Identifier: Apache-2.0 */
/*
 * ctl_keys_read: the `keyauthctl key` commands that only read the store:
 * list (never the keys themselves) and verify (the verdict keyauthd would
 * give, from the same code).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctl_keys-int.h"
#include "keyfmt.h"
#include "usage.h"
#include "verdict.h"

/* ---- key list ------------------------------------------------------------------- */

static const char list_help[] =
	"usage: keyauthctl key list [--route ROUTE] [--owner LABEL] [--tag K=V ...]\n"
	"                           [--expiring-within DURATION] [--unused-for DURATION]\n"
	"                           [--all] [--json]\n"
	"\n"
	"Lists keys: id, alias, routes, owner, created, expires, status (active, grace:\n"
	"rotated away but still valid, expired, revoked), rpm (the key's own\n"
	"requests-per-minute limit, '-' when it has none), last use and requests\n"
	"(counted by keyauthd; '-' and 0 for a key never used), and SCOPES when an\n"
	"admin-route key is listed. Keys and digests are\n"
	"never shown. Without --all only keys that still work (active, grace).\n"
	"Warns, on stderr, about keys that never expire.\n"
	"\n"
	"  --route ROUTE        only keys valid on ROUTE\n"
	"  --owner LABEL        only keys of this owner\n"
	"  --tag K=V            only keys with this tag (repeatable: all of them)\n"
	"  --expiring-within D  only keys expiring within D (N followed by s, m, h, d, w)\n"
	"  --unused-for D       only keys not used for D (never used: created more than\n"
	"                       D ago)\n"
	"  --all                include expired and revoked keys\n"
	"  --json               a JSON array of objects (tags as an object)\n"
	"\n"
	"example:\n"
	"  keyauthctl key list --route openai --unused-for 30d\n";

static int
cmp_entry(const void *pa, const void *pb)
{
	const struct ks_entry *a = *(const struct ks_entry *const *)pa;
	const struct ks_entry *b = *(const struct ks_entry *const *)pb;

	if (a->created != b->created)
		return a->created < b->created ? -1 : 1;
	return strcmp(a->id, b->id);
}

static int
key_list(struct ctl_ctx *ctx, const struct ctl_args *args)
{
	const struct key_opts *o = args->opts;
	const char *route = o->route;
	const struct ks_entry **rows = NULL;
	struct usage_set *u = NULL;
	struct ks_set *set = NULL;
	struct conf *c = NULL;
	size_t nrows = 0, wroute = 6, wowner = 5, walias = 5, forever = 0;
	bool scopes = false;         /* a SCOPES column, only when a listed key has some */
	char err[512];
	int64_t now;
	int rc;

	if (o->nroutes > 1)
		return ctl_usage_err(ctx, "--route: give one route");
	now = ctl_now(ctx);
	rc = CTL_EXIT_FAIL;
	set = key_store_read(ctx, &c);
	if (set == NULL)
		goto out;
	if ((u = usage_read(c, err, sizeof(err))) == NULL) {
		ctl_err(ctx, "cannot read key usage: %s", err);
		goto out;
	}
	rows = calloc(ks_count(set) + 1, sizeof(*rows));
	if (rows == NULL)
		goto out;
	for (size_t i = 0; i < ks_count(set); i++) {
		const struct ks_entry *e = ks_entry_at(set, i);
		uint64_t req = 0;
		int64_t last = 0;

		if (key_entry_usable(e, now) && e->expires == 0)
			forever++;
		if (route != NULL && !ks_entry_has_route(e, route, strlen(route)))
			continue;
		if (!o->all && !key_entry_usable(e, now))
			continue;
		if (!key_labels_match(o, e))
			continue;
		if (o->expiring_set && (e->expires == 0 || e->expires - now > o->expiring_within))
			continue;
		if (o->unused_set) {
			usage_key(u, e->id, &req, &last);
			if (now - (last != 0 ? last : e->created) <= o->unused_for)
				continue;
		}
		rows[nrows++] = e;
		scopes |= e->scopes != 0;
		if (strlen(ks_entry_routes(e)) > wroute)
			wroute = strlen(ks_entry_routes(e));
		if (strlen(e->owner) > wowner)
			wowner = strlen(e->owner);
		if (strlen(e->alias) > walias)
			walias = strlen(e->alias);
	}
	qsort(rows, nrows, sizeof(*rows), cmp_entry);
	if (args->json) {
		json_t *list = json_array();

		for (size_t i = 0; i < nrows && list != NULL; i++) {
			uint64_t req = 0;
			int64_t last = 0;

			usage_key(u, rows[i]->id, &req, &last);
			if (json_array_append_new(list, key_json_entry_usage(rows[i], now, req,
			                                                     last)) == -1) {
				json_decref(list);
				list = NULL;
			}
		}
		if (ctl_json_print(ctx, list) != CTL_EXIT_OK)
			goto out;
	} else {
		printf("%-*s  %-*s  %-*s  %-*s  %-20s  %-20s  %-7s  %-5s  %-20s  %s%s\n", KEY_ID_LEN,
		       "ID", (int)walias, "ALIAS", (int)wroute, "ROUTES", (int)wowner, "OWNER",
		       "CREATED", "EXPIRES", "STATUS", "RPM", "LAST_USED", scopes ? "REQUESTS  " : "REQUESTS",
		       scopes ? "SCOPES" : "");
		for (size_t i = 0; i < nrows; i++) {
			const struct ks_entry *e = rows[i];
			char cr[32], ex[32], rpm[16], lu[32];
			uint64_t req = 0;
			int64_t last = 0;

			usage_key(u, e->id, &req, &last);
			ctl_fmt_time(e->created, cr, sizeof(cr));
			if (e->expires != 0)
				ctl_fmt_time(e->expires, ex, sizeof(ex));
			else
				snprintf(ex, sizeof(ex), "never");
			if (last != 0)
				ctl_fmt_time(last, lu, sizeof(lu));
			else
				snprintf(lu, sizeof(lu), "-");
			printf("%-*s  %-*s  %-*s  %-*s  %-20s  %-20s  %-7s  %-5s  %-20s  %-*llu%s\n",
			       KEY_ID_LEN, e->id, (int)walias, e->alias[0] != '\0' ? e->alias : "-",
			       (int)wroute, ks_entry_routes(e), (int)wowner,
			       e->owner[0] != '\0' ? e->owner : "-", cr, ex, key_entry_status(e, now),
			       key_rpm_str(e->rpm, rpm, sizeof(rpm)), lu, scopes ? 10 : 0,
			       (unsigned long long)req, !scopes ? "" : e->scopes ? ks_scopes_str(e->scopes) : "-");
		}
	}
	if (forever > 0)
		fprintf(stderr, "%s: warning: %zu active key%s never expire%s (created with "
		        "--no-expiry)\n", ctx->prog, forever, forever == 1 ? "" : "s",
		        forever == 1 ? "s" : "");
	rc = fflush(stdout) == EOF ? CTL_EXIT_FAIL : CTL_EXIT_OK;
out:
	free(rows);
	usage_free(u);
	ks_set_unref(set);
	conf_free(c);
	return rc;
}

static const struct option list_opts[] = {
	KEY_OPT_ROUTE, { "all", no_argument, NULL, 'a' }, KEY_OPT_OWNER, KEY_OPT_TAG,
	{ "expiring-within", required_argument, NULL, 'W' },
	{ "unused-for", required_argument, NULL, 'U' }, KEY_OPT_END
};
KEY_CMD(list, CTL_OPERAND_NONE, "list keys (never the keys themselves)");

/* ---- key verify ----------------------------------------------------------------- */

static const char verify_help[] =
	"usage: keyauthctl key verify --route ROUTE [--json] < KEYFILE\n"
	"\n"
	"Reads a key (or an Authorization value such as \"Bearer <key>\") from stdin\n"
	"and prints what keyauthd would answer for ROUTE: status, key id, message.\n"
	"Exit status 0 when the verdict is ok, 1 otherwise.\n"
	"\n"
	"example:\n"
	"  printf '%%s' \"$KEY\" | keyauthctl key verify --route openai\n";

static int
key_verify(struct ctl_ctx *ctx, const struct ctl_args *args)
{
	const struct key_opts *o = args->opts;
	const char *route = o->route;
	struct ks_set *set = NULL;
	struct conf *c = NULL;
	struct verdict v;
	char *key = NULL, rpmbuf[16];
	size_t len = 0;
	int rc, r;

	if (route == NULL)
		return ctl_usage_err(ctx, "--route is required");
	rc = CTL_EXIT_FAIL;
	set = key_store_read(ctx, &c);
	if (set == NULL)
		goto out;
	key = malloc(STDIN_MAX + 1);
	if (key == NULL)
		goto out;
	r = key_read_stdin(ctx, key, STDIN_MAX + 1, &len);
	if (r == -1)
		goto out;
	if (r == 1) {
		ctl_err(ctx, "input longer than %d bytes", STDIN_MAX);
		goto out;
	}
	/* Empty input stands for a request without the header or parameter. */
	verdict_eval(c, set, route, strlen(route), len > 0 ? key : NULL, len, ctl_now(ctx), &v);
	if (args->json) {
		if (ctl_json_print(ctx, json_pack("{s:b,s:s,s:o,s:o,s:o,s:I}",
		    "ok", v.status == VERDICT_OK, "status", verdict_status_str(v.status),
		    "key_id", ctl_json_text(v.entry != NULL ? v.entry->id : NULL),
		    "owner", ctl_json_text(v.entry != NULL ? v.entry->owner : NULL),
		    "message", ctl_json_text(v.message), "rpm", (json_int_t)v.rpm)) != CTL_EXIT_OK)
			goto out;
	} else {
		printf("status:  %s\nkey_id:  %s\nowner:   %s\nmessage: %s\nrpm:     %s\n",
		       verdict_status_str(v.status), v.entry != NULL ? v.entry->id : "-",
		       v.entry != NULL && v.entry->owner[0] != '\0' ? v.entry->owner : "-",
		       v.message != NULL ? v.message : "", key_rpm_str(v.rpm, rpmbuf, sizeof(rpmbuf)));
	}
	rc = v.status == VERDICT_OK ? CTL_EXIT_OK : CTL_EXIT_FAIL;
out:
	if (key != NULL) {
		explicit_bzero(key, STDIN_MAX + 1);
		free(key);
	}
	ks_set_unref(set);
	conf_free(c);
	return rc;
}

static const struct option verify_opts[] = { KEY_OPT_ROUTE, KEY_OPT_END };
KEY_CMD(verify, CTL_OPERAND_STDIN,
        "print the verdict keyauthd would give a key (read from stdin)");
