/* SPDX-License-Identifier: Apache-2.0 */
/*
 * ctl_keys_bulk: the `keyauthctl key` commands that change many keys in one
 * store transaction: revoke --owner/--tag (the selection shared with key
 * list, key_labels_match) and purge of long-ended records.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctl_keys-int.h"

/* ---- key revoke --owner / --tag ------------------------------------------------------ */

struct bulk_arg {
	const struct key_opts *o;
	bool yes;
	size_t n;                    /* matched (and, with yes, revoked) */
};

static int
bulk_revoke_edit(struct ctl_edit *ed, void *arg)
{
	struct bulk_arg *a = arg;

	a->n = 0;
	for (size_t i = 0; i < ed->n; i++) {
		struct ks_entry *e = &ed->v[i];

		if (!key_entry_usable(e, ed->now) || !key_labels_match(a->o, e))
			continue;
		a->n++;
		if (a->yes)
			e->revoked = ed->now;
	}
	return a->yes && a->n > 0 ? EDIT_WRITE : EDIT_NOCHANGE;
}

int
key_revoke_bulk(struct ctl_ctx *ctx, const struct ctl_args *args)
{
	const struct key_opts *o = args->opts;
	struct bulk_arg a = { .o = o, .yes = o->yes };
	struct conf *c;
	int rc;

	if (o->owner_set && o->owner[0] == '\0')
		return ctl_usage_err(ctx, "--owner: give the owner label");
	c = ctl_conf_load(ctx);
	if (c == NULL)
		return CTL_EXIT_FAIL;
	rc = key_store_edit(ctx, c, bulk_revoke_edit, &a);
	conf_free(c);
	if (rc != CTL_EXIT_OK)
		return rc;
	if (args->json)
		return ctl_json_print(ctx, json_pack("{s:I,s:b}", a.yes ? "revoked" : "matched",
		                                     (json_int_t)a.n, "done", a.yes)) == CTL_EXIT_OK &&
		       (a.yes || a.n == 0) ? CTL_EXIT_OK : CTL_EXIT_FAIL;
	if (a.yes) {
		printf("revoked %zu key%s\n", a.n, a.n == 1 ? "" : "s");
		return CTL_EXIT_OK;
	}
	if (a.n == 0) {
		printf("no active key matches; nothing to revoke\n");
		return CTL_EXIT_OK;
	}
	printf("%zu active key%s match%s\n", a.n, a.n == 1 ? "" : "s", a.n == 1 ? "es" : "");
	ctl_err(ctx, "nothing revoked: re-run with --yes to revoke %zu key%s", a.n,
	        a.n == 1 ? "" : "s");
	return CTL_EXIT_FAIL;
}

/* ---- key purge ----------------------------------------------------------------- */

static const char purge_help[] =
	"usage: keyauthctl key purge --older-than DURATION [--dry-run] [--json]\n"
	"\n"
	"Removes the records of keys revoked, or expired, more than DURATION ago\n"
	"(N followed by s, m, h, d or w: 90d, 12w). Active keys are never removed.\n"
	"One store transaction; prints how many records were removed.\n"
	"\n"
	"  --older-than D   how long ago the key must have been revoked or expired\n"
	"  --dry-run        list the records it would remove, change nothing\n"
	"  --json           a JSON object {\"purged\": N, \"ids\": [...]}\n"
	"\n"
	"example:\n"
	"  keyauthctl key purge --older-than 90d\n";

struct purge_arg {
	int64_t older_than;
	bool dry_run;
	json_t *ids;                 /* the ids removed (or that would be) */
	size_t n;
};

/* When <e> stopped working, or 0 when it still works. */
static int64_t
purge_ended(const struct ks_entry *e, int64_t now)
{
	if (e->revoked != 0)
		return e->revoked;
	if (e->expires != 0 && e->expires <= now)
		return e->expires;
	return 0;
}

static int
purge_edit(struct ctl_edit *ed, void *arg)
{
	struct purge_arg *a = arg;
	size_t w = 0;

	a->n = 0;
	json_array_clear(a->ids);
	for (size_t i = 0; i < ed->n; i++) {
		int64_t end = purge_ended(&ed->v[i], ed->now);

		if (end != 0 && ed->now - end > a->older_than) {
			a->n++;
			json_array_append_new(a->ids, ctl_json_text(ed->v[i].id));
			continue;
		}
		ed->v[w++] = ed->v[i];
	}
	if (a->dry_run || a->n == 0)
		return EDIT_NOCHANGE;
	ed->n = w;
	return EDIT_WRITE;
}

static int
key_purge(struct ctl_ctx *ctx, const struct ctl_args *args)
{
	const struct key_opts *o = args->opts;
	struct purge_arg a = { .older_than = o->older_than, .dry_run = o->dry_run };
	struct conf *c;
	int rc;

	if (!o->older_set)
		return ctl_usage_err(ctx, "--older-than DURATION is required (e.g. 90d)");
	if ((a.ids = json_array()) == NULL)
		return CTL_EXIT_FAIL;
	c = ctl_conf_load(ctx);
	if (c == NULL) {
		json_decref(a.ids);
		return CTL_EXIT_FAIL;
	}
	rc = key_store_edit(ctx, c, purge_edit, &a);
	conf_free(c);
	if (rc != CTL_EXIT_OK) {
		json_decref(a.ids);
		return rc;
	}
	if (args->json)
		return ctl_json_print(ctx, json_pack("{s:I,s:b,s:o}", "purged", (json_int_t)a.n,
		                                     "dry_run", a.dry_run, "ids", a.ids));
	if (a.dry_run) {
		for (size_t i = 0; i < a.n; i++)
			printf("would remove %s\n", json_string_value(json_array_get(a.ids, i)));
		printf("would purge %zu key record%s\n", a.n, a.n == 1 ? "" : "s");
	} else {
		printf("purged %zu key record%s\n", a.n, a.n == 1 ? "" : "s");
	}
	json_decref(a.ids);
	return CTL_EXIT_OK;
}

static const struct option purge_opts[] = {
	{ "older-than", required_argument, NULL, 'O' }, { "dry-run", no_argument, NULL, 'n' },
	KEY_OPT_END
};
KEY_CMD(purge, CTL_OPERAND_NONE, "remove records of keys revoked or expired long ago");
