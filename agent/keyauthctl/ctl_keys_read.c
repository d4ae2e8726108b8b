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
#include "verdict.h"

/* ---- key list ------------------------------------------------------------------- */

static const char list_help[] =
	"usage: keyauthctl key list [--route ROUTE] [--all] [--json]\n"
	"\n"
	"Lists keys: id, route, owner, created, expires, status (active, expired,\n"
	"revoked) and rpm (the key's own requests-per-minute limit, '-' or 0 when it\n"
	"has none). Keys and digests are never shown. Without --all only active keys.\n"
	"\n"
	"  --route ROUTE   only keys bound to ROUTE\n"
	"  --all           include expired and revoked keys\n"
	"  --json          a JSON array of objects\n"
	"\n"
	"example:\n"
	"  keyauthctl key list --route openai --all\n";

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
	struct ks_set *set = NULL;
	struct conf *c = NULL;
	size_t nrows = 0, wroute = 5, wowner = 5;
	int64_t now;
	int rc;

	now = ctl_now(ctx);
	rc = CTL_EXIT_FAIL;
	set = key_store_read(ctx, &c);
	if (set == NULL)
		goto out;
	rows = calloc(ks_count(set) + 1, sizeof(*rows));
	if (rows == NULL)
		goto out;
	for (size_t i = 0; i < ks_count(set); i++) {
		const struct ks_entry *e = ks_entry_at(set, i);

		if (route != NULL && strcmp(e->route, route) != 0)
			continue;
		if (!o->all && strcmp(key_entry_status(e, now), "active") != 0)
			continue;
		rows[nrows++] = e;
		if (strlen(e->route) > wroute)
			wroute = strlen(e->route);
		if (strlen(e->owner) > wowner)
			wowner = strlen(e->owner);
	}
	qsort(rows, nrows, sizeof(*rows), cmp_entry);
	if (args->json) {
		json_t *list = json_array();

		for (size_t i = 0; i < nrows && list != NULL; i++) {
			if (json_array_append_new(list, key_json_entry(rows[i], now)) == -1) {
				json_decref(list);
				list = NULL;
			}
		}
		if (ctl_json_print(ctx, list) != CTL_EXIT_OK)
			goto out;
	} else {
		printf("%-*s  %-*s  %-*s  %-20s  %-20s  %-7s  %s\n", KEY_ID_LEN, "ID", (int)wroute,
		       "ROUTE", (int)wowner, "OWNER", "CREATED", "EXPIRES", "STATUS", "RPM");
		for (size_t i = 0; i < nrows; i++) {
			const struct ks_entry *e = rows[i];
			char cr[32], ex[32], rpm[16];

			ctl_fmt_time(e->created, cr, sizeof(cr));
			if (e->expires != 0)
				ctl_fmt_time(e->expires, ex, sizeof(ex));
			else
				snprintf(ex, sizeof(ex), "never");
			printf("%-*s  %-*s  %-*s  %-20s  %-20s  %-7s  %s\n", KEY_ID_LEN, e->id,
			       (int)wroute, e->route, (int)wowner, e->owner[0] != '\0' ? e->owner : "-",
			       cr, ex, key_entry_status(e, now), key_rpm_str(e->rpm, rpm, sizeof(rpm)));
		}
	}
	rc = fflush(stdout) == EOF ? CTL_EXIT_FAIL : CTL_EXIT_OK;
out:
	free(rows);
	ks_set_unref(set);
	conf_free(c);
	return rc;
}

static const struct option list_opts[] = {
	KEY_OPT_ROUTE, { "all", no_argument, NULL, 'a' }, KEY_OPT_END
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
