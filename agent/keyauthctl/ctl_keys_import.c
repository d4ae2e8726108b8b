/* SPDX-License-Identifier: Apache-2.0 */
/*
 * ctl_keys_import: `keyauthctl key import`, a key generated elsewhere stored
 * by its digest (the key itself read from stdin, never argv).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctl_keys-int.h"
#include "keyfmt.h"

/* ---- key import ----------------------------------------------------------------- */

static const char import_help[] =
	"usage: keyauthctl key import --route ROUTE [--route ROUTE ...] [--owner LABEL]\n"
	"                             [--alias NAME] [--tag K=V ...]\n"
	"                             [--days N | --no-expiry] [--rpm N] [--scope SCOPE ...]\n"
	"                             [--json] < KEYFILE\n"
	"\n"
	"Stores a key generated elsewhere. The key is read from stdin (never from the\n"
	"command line, so it stays out of shell history and ps); one trailing newline\n"
	"is ignored. It must be 20..256 printable ASCII characters without spaces; a\n"
	"key with this deployment's prefix must also have a valid checksum. Prints the\n"
	"new key id. --rpm N sets a requests-per-minute limit (0..1000000, 0 = none).\n"
	"--route, --alias, --tag, --days, --no-expiry and --scope are as for 'key create'.\n"
	"Exit status 5 when the store already holds this key (nothing is changed).\n"
	"\n"
	"example:\n"
	"  keyauthctl key import --route openai --owner batch-job < key.txt\n";

struct import_arg {
	const char *route;
	const char *owner;
	const char *alias;
	const char *tags;
	char routes[KS_ROUTES_STR_MAX + 1];
	int64_t expires;
	uint32_t rpm;
	uint32_t scopes;
	uint8_t digest[KEY_DIGEST_LEN];
	struct ks_entry made;
};

static int
import_edit(struct ctl_edit *ed, void *arg)
{
	struct import_arg *a = arg;
	const struct ks_entry *dup = ks_lookup(ed->set, a->digest);
	struct ks_entry *e;
	char id[KEY_ID_LEN + 1];

	if (dup != NULL) {
		ctl_err(ed->ctx, "this key is already in the store (id %s, route %s)",
		        dup->id, dup->route);
		return EDIT_CONFLICT;
	}
	do {
		if (keyfmt_new_id(id) == -1) {
			ctl_err(ed->ctx, "cannot generate a key id (CSPRNG failure)");
			return EDIT_FAIL;
		}
	} while (key_edit_find(ed, id) != NULL);
	e = key_edit_append(ed);
	if (e == NULL)
		return EDIT_FAIL;
	memcpy(e->digest, a->digest, sizeof(a->digest));
	memcpy(e->id, id, sizeof(id));
	e->route = a->route;
	e->routes = a->routes;
	e->owner = a->owner;
	e->alias = a->alias;
	e->tags = a->tags;
	e->scopes = a->scopes;
	e->created = ed->now;
	e->expires = a->expires;
	e->rpm = a->rpm;
	a->made = *e;
	return EDIT_WRITE;
}

static int
key_import(struct ctl_ctx *ctx, const struct ctl_args *args)
{
	const struct key_opts *o = args->opts;
	struct import_arg a;
	struct conf *c = NULL;
	char key[KEY_MAX_LEN + 2], t[32];
	size_t len = 0;
	int rc, r;

	memset(&a, 0, sizeof(a));
	a.route = o->route;
	a.owner = o->owner;
	a.alias = o->alias != NULL ? o->alias : "";
	a.tags = o->tags;
	a.rpm = o->rpm;
	a.scopes = o->scopes;
	key_routes_join(o, a.routes, sizeof(a.routes));
	if (a.route == NULL)
		return ctl_usage_err(ctx, "--route is required");
	if (!key_owner_ok(a.owner))
		return ctl_usage_err(ctx, "--owner: at most %d printable characters", KS_OWNER_MAX - 1);
	rc = expiry_from_opts(ctx, o->days, NULL, o->no_expiry, ctl_now(ctx), &a.expires);
	if (rc != 0)
		return rc;
	rc = CTL_EXIT_FAIL;
	c = ctl_conf_load(ctx);
	if (c == NULL)
		goto out;
	if ((rc = key_routes_check(ctx, c, o)) != 0 ||
	    (rc = key_scopes_check(ctx, c, a.routes, a.scopes)) != 0)
		goto out;
	rc = CTL_EXIT_FAIL;
	r = key_read_stdin(ctx, key, sizeof(key), &len);
	if (r == -1)
		goto out;
	if (r == 1 || len > KEY_MAX_LEN) {
		ctl_err(ctx, "the key is longer than %d characters", KEY_MAX_LEN);
		goto out;
	}
	if (len == 0) {
		ctl_err(ctx, "no key on stdin (e.g. keyauthctl key import --route %s < key.txt)",
		        a.route);
		goto out;
	}
	if (!keyfmt_charset_ok(key, len, true)) {
		ctl_err(ctx, "the key must be %d..%d printable ASCII characters without spaces "
		        "(got %zu characters%s)", KEY_MIN_LEN, KEY_MAX_LEN, len,
		        len >= KEY_MIN_LEN ? ", some not allowed" : "");
		goto out;
	}
	if (keyfmt_check(c->key_prefix, key, len) == KEYFMT_BAD) {
		ctl_err(ctx, "the key starts with this deployment's prefix '%s' but is not a valid "
		        "key of that format (length or checksum); check for a copy error",
		        c->key_prefix);
		goto out;
	}
	keyfmt_digest(key, len, a.digest);
	explicit_bzero(key, sizeof(key));
	rc = key_store_edit(ctx, c, import_edit, &a);
	if (rc == CTL_EXIT_OK) {
		if (args->json) {
			rc = ctl_json_print(ctx, json_pack("{s:o,s:o,s:o,s:o,s:o,s:I}",
			    "id", ctl_json_text(a.made.id), "route", ctl_json_text(a.made.route),
			    "routes", ctl_json_text(a.routes),
			    "owner", ctl_json_text(a.made.owner),
			    "expires", ctl_json_time(a.made.expires, true),
			    "rpm", (json_int_t)a.made.rpm));
		} else {
			ctl_fmt_time(a.made.expires, t, sizeof(t));
			printf("%s\n", a.made.id);
			fprintf(stderr, "Imported key %s for route%s %s, expires %s.\n",
			        a.made.id, strchr(a.routes, ',') ? "s" : "", a.routes,
			        a.made.expires != 0 ? t : "never");
		}
	}
out:
	explicit_bzero(key, sizeof(key));
	conf_free(c);
	return rc;
}

static const struct option import_opts[] = {
	KEY_OPT_ROUTE, KEY_OPT_OWNER, KEY_OPT_DAYS, KEY_OPT_NOEXP, KEY_OPT_ALIAS, KEY_OPT_TAG,
	KEY_OPT_RPM, KEY_OPT_SCOPE, KEY_OPT_END
};
KEY_CMD(import, CTL_OPERAND_STDIN, "store a key generated elsewhere (read from stdin)");
