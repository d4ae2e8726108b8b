/* SPDX-License-Identifier: Apache-2.0 */
/*
 * ctl_keys: `keyauthctl key ...`, the key lifecycle.
 *
 * Every change to the store is one transaction (key_store_edit, ctl_keys_store.c): exclusive lock,
 * load and validate the whole store through keystore, change a copy of the
 * entries, write a new file (temp, fsync, rename, fsync dir, 0600) with the
 * next generation number, unlock. A store that does not load is never
 * written. Key material comes from keyfmt and verdicts from verdict, the
 * same code keyauthd runs. A new key is printed once, on stdout, only after
 * the store holding its digest is on disk; buffers that held a key are wiped.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctl_keys-int.h"
#include "keyfmt.h"
#include "verdict.h"

/* ---- key create ---------------------------------------------------------------- */

static const char create_help[] =
	"usage: keyauthctl key create --route ROUTE [--owner LABEL]\n"
	"                             [--days N | --expires YYYY-MM-DD] [--rpm N] [--json]\n"
	"\n"
	"Creates an API key bound to ROUTE and prints it once, alone on stdout.\n"
	"The key id, route, owner and expiry go to stderr. Only the key's SHA-256\n"
	"digest is stored.\n"
	"\n"
	"  --route ROUTE       a route of the configuration (required)\n"
	"  --owner LABEL       who the key is issued to (shown in lists and logs)\n"
	"  --days N            valid for N days (1..3650, default 90)\n"
	"  --expires DATE      valid until the end of DATE (UTC)\n"
	"  --rpm N             at most N requests per minute, counted by HAProxy\n"
	"                      (0..1000000; default 0: the route's rate_limit_rpm, if any)\n"
	"  --json              print a JSON object (which includes the key) instead\n"
	"  -c FILE             configuration file (default $KEYAUTH_CONF or " CONF_DEFAULT_PATH ")\n"
	"\n"
	"example:\n"
	"  KEY=$(keyauthctl key create --route openai --owner alice@example.com)\n";

struct create_arg {
	const char *route;
	const char *owner;
	int64_t expires;
	uint32_t rpm;
	char key[KEY_GEN_MAX + 1];
	struct kept_entry made;      /* the new entry, for printing */
};

static int
create_edit(struct ctl_edit *ed, void *arg)
{
	struct create_arg *a = arg;
	struct ks_entry *e = key_edit_new(ed, a->route, a->owner, a->expires, a->rpm,
	                                  a->key, sizeof(a->key));

	if (e == NULL)
		return EDIT_FAIL;
	key_keep_entry(&a->made, e);
	return EDIT_WRITE;
}

/* Resolves --days / --expires into an expiry time. Returns 0 or an exit code. */
static int
expiry_from_opts(const struct ctl_ctx *ctx, const char *days, const char *date, int64_t now,
                 int64_t *expires)
{
	unsigned long n = CTL_DEFAULT_DAYS;
	int64_t t;

	if (days != NULL && date != NULL)
		return ctl_usage_err(ctx, "--days and --expires cannot be used together");
	if (date != NULL) {
		if (ctl_parse_date(date, &t) == -1)
			return ctl_usage_err(ctx, "--expires: '%s' is not a date (YYYY-MM-DD, e.g. "
			                     "2030-01-31)", date);
		t += 86400;      /* valid through the whole day, UTC */
		if (t <= now) {
			ctl_err(ctx, "--expires %s is in the past; give a future date", date);
			return CTL_EXIT_FAIL;
		}
		if (t - now > (int64_t)CTL_MAX_DAYS * 86400) {
			ctl_err(ctx, "--expires %s is more than %d days away", date, CTL_MAX_DAYS);
			return CTL_EXIT_FAIL;
		}
		*expires = t;
		return 0;
	}
	if (days != NULL && ctl_parse_uint(days, 1, CTL_MAX_DAYS, &n) == -1)
		return ctl_usage_err(ctx, "--days: '%s' is not a number of days between 1 and %d",
		                     days, CTL_MAX_DAYS);
	*expires = now + (int64_t)n * 86400;
	return 0;
}

static int
key_create(struct ctl_ctx *ctx, const struct ctl_args *args)
{
	const struct key_opts *o = args->opts;
	struct create_arg *a;
	struct conf *c = NULL;
	char note[1024];
	int rc;

	a = calloc(1, sizeof(*a));
	if (a == NULL)
		return CTL_EXIT_FAIL;
	a->route = o->route;
	a->owner = o->owner;
	a->rpm = o->rpm;
	if (a->route == NULL) {
		rc = ctl_usage_err(ctx, "--route is required");
		goto out;
	}
	if (!key_owner_ok(a->owner)) {
		rc = ctl_usage_err(ctx, "--owner: at most %d printable characters", KS_OWNER_MAX - 1);
		goto out;
	}
	rc = expiry_from_opts(ctx, o->days, o->date, ctl_now(ctx), &a->expires);
	if (rc != 0)
		goto out;
	rc = CTL_EXIT_FAIL;
	c = ctl_conf_load(ctx);
	if (c == NULL)
		goto out;
	if (key_route_lookup(ctx, c, a->route) == NULL)
		goto out;
	/* Written but not confirmed by the replicas: the key is printed all
	 * the same (it is in the store), then the error, exit 1. */
	rc = key_store_edit_note(ctx, c, create_edit, a, note, sizeof(note));
	if (rc == CTL_EXIT_OK || rc == STORE_UNCONFIRMED) {
		int prc = key_print_new(ctx, a->key, &a->made.e, args->json, NULL);

		rc = rc == STORE_UNCONFIRMED ? key_unconfirmed_print(ctx, note) : prc;
	}
out:
	explicit_bzero(a->key, sizeof(a->key));
	free(a);
	conf_free(c);
	return rc;
}

static const struct option create_opts[] = {
	KEY_OPT_ROUTE, KEY_OPT_OWNER, KEY_OPT_DAYS, { "expires", required_argument, NULL, 'e' },
	KEY_OPT_RPM, KEY_OPT_END
};
KEY_CMD(create, CTL_OPERAND_NONE, "create a key for a route and print it once");

/* ---- key revoke ----------------------------------------------------------------- */

static const char revoke_help[] =
	"usage: keyauthctl key revoke ID [--json]\n"
	"\n"
	"Revokes the key with this id. Running agents stop accepting it within a\n"
	"second; no deploy is needed. Revoking a revoked key changes nothing.\n"
	"\n"
	"example:\n"
	"  keyauthctl key revoke 3xK9pQ2mZ7aB\n";

struct id_arg {
	const char *id;
	int64_t grace;               /* rotate */
	int64_t new_expires;         /* rotate */
	uint32_t rpm;                /* rotate, set: the new limit */
	bool rpm_set;                /* rotate: --rpm given (else the old key's) */
	bool already;                /* revoke: it was revoked before */
	struct kept_entry old;       /* the entry as it is after the edit */
	struct kept_entry made;      /* rotate: the new entry */
	char key[KEY_GEN_MAX + 1];   /* rotate: the new key */
};

static struct ks_entry *
find_or_complain(struct ctl_edit *ed, const char *id)
{
	struct ks_entry *e = key_edit_find(ed, id);

	if (e == NULL)
		ctl_err(ed->ctx, "no key with id '%s' in %s (see 'keyauthctl key list --all')",
		        id, ed->conf->store_redis != NULL ? ed->conf->store_redis->address
		                                           : ed->conf->store_path);
	return e;
}

static int
revoke_edit(struct ctl_edit *ed, void *arg)
{
	struct id_arg *a = arg;
	struct ks_entry *e = find_or_complain(ed, a->id);

	if (e == NULL)
		return EDIT_FAIL;
	if (e->revoked != 0) {
		a->already = true;
		key_keep_entry(&a->old, e);
		return EDIT_NOCHANGE;
	}
	e->revoked = ed->now;
	key_keep_entry(&a->old, e);
	return EDIT_WRITE;
}

static int
key_revoke(struct ctl_ctx *ctx, const struct ctl_args *args)
{
	struct id_arg a;
	struct conf *c;
	char t[32];
	int rc;

	memset(&a, 0, sizeof(a));
	a.id = args->id;
	c = ctl_conf_load(ctx);
	if (c == NULL)
		return CTL_EXIT_FAIL;
	rc = key_store_edit(ctx, c, revoke_edit, &a);
	if (rc == CTL_EXIT_OK) {
		ctl_fmt_time(a.old.e.revoked, t, sizeof(t));
		if (args->json) {
			rc = ctl_json_print(ctx, json_pack("{s:o,s:o,s:o,s:b}",
			    "id", ctl_json_text(a.old.e.id), "route", ctl_json_text(a.old.e.route),
			    "revoked", ctl_json_time(a.old.e.revoked, false),
			    "already_revoked", a.already));
		} else if (a.already) {
			printf("key %s (route %s) was already revoked at %s\n", a.old.e.id, a.old.e.route, t);
		} else {
			printf("revoked key %s (route %s, owner %s) at %s\n", a.old.e.id, a.old.e.route,
			       a.old.e.owner[0] != '\0' ? a.old.e.owner : "-", t);
		}
	}
	conf_free(c);
	return rc;
}

static const struct option revoke_opts[] = { KEY_OPT_END };
KEY_CMD(revoke, CTL_OPERAND_ID, "revoke a key by id");

/* ---- key rotate ----------------------------------------------------------------- */

static const char rotate_help[] =
	"usage: keyauthctl key rotate ID [--grace DURATION] [--days N] [--rpm N] [--json]\n"
	"\n"
	"Creates a new key for the same route and owner and prints it once on stdout.\n"
	"The old key stays valid for the grace period, then reads as expired (its\n"
	"expiry only ever moves earlier).\n"
	"\n"
	"  --grace DURATION   how long the old key keeps working: 30s, 15m, 24h, 7d\n"
	"                     (default 24h; 0s ends it now)\n"
	"  --days N           validity of the new key (default 90)\n"
	"  --rpm N            requests-per-minute limit of the new key (default: the\n"
	"                     old key's; 0 = none of its own)\n"
	"  --json             a JSON object (which includes the new key)\n"
	"\n"
	"example:\n"
	"  NEW=$(keyauthctl key rotate 3xK9pQ2mZ7aB --grace 1h)\n";

static int
rotate_edit(struct ctl_edit *ed, void *arg)
{
	struct id_arg *a = arg;
	struct ks_entry *old = find_or_complain(ed, a->id), *e;
	int64_t until;
	size_t oldi;

	if (old == NULL)
		return EDIT_FAIL;
	if (old->revoked != 0) {
		ctl_err(ed->ctx, "key %s is revoked; create a new key instead "
		        "('keyauthctl key create --route %s')", old->id, old->route);
		return EDIT_FAIL;
	}
	if (conf_route_find(ed->conf, old->route, strlen(old->route)) == NULL) {
		ctl_err(ed->ctx, "key %s is bound to route '%s', which is no longer in %s",
		        old->id, old->route, ed->conf->path);
		return EDIT_FAIL;
	}
	until = ed->now + a->grace;
	if (old->expires == 0 || old->expires > until)
		old->expires = until;
	/* key_edit_new may move the array: keep an index, not the pointer. */
	oldi = (size_t)(old - ed->v);
	e = key_edit_new(ed, old->route, old->owner, a->new_expires,
	                 a->rpm_set ? a->rpm : old->rpm, a->key, sizeof(a->key));
	if (e == NULL)
		return EDIT_FAIL;
	key_keep_entry(&a->made, e);
	key_keep_entry(&a->old, &ed->v[oldi]);
	return EDIT_WRITE;
}

static int
key_rotate(struct ctl_ctx *ctx, const struct ctl_args *args)
{
	const struct key_opts *o = args->opts;
	struct id_arg *a;
	struct conf *c = NULL;
	char note[128], t[32], unconfirmed[1024];
	int rc;

	a = calloc(1, sizeof(*a));
	if (a == NULL)
		return CTL_EXIT_FAIL;
	a->id = args->id;
	a->grace = o->grace;
	a->rpm = o->rpm;
	a->rpm_set = o->rpm_set;
	rc = expiry_from_opts(ctx, o->days, NULL, ctl_now(ctx), &a->new_expires);
	if (rc != 0)
		goto out;
	rc = CTL_EXIT_FAIL;
	c = ctl_conf_load(ctx);
	if (c == NULL)
		goto out;
	rc = key_store_edit_note(ctx, c, rotate_edit, a, unconfirmed, sizeof(unconfirmed));
	if (rc == CTL_EXIT_OK || rc == STORE_UNCONFIRMED) {
		int prc;

		ctl_fmt_time(a->old.e.expires, t, sizeof(t));
		snprintf(note, sizeof(note), "Old key %s stays valid until %s.", a->old.e.id, t);
		prc = key_print_new(ctx, a->key, &a->made.e, args->json, note);
		rc = rc == STORE_UNCONFIRMED ? key_unconfirmed_print(ctx, unconfirmed) : prc;
	}
out:
	explicit_bzero(a->key, sizeof(a->key));
	free(a);
	conf_free(c);
	return rc;
}

static const struct option rotate_opts[] = {
	{ "grace", required_argument, NULL, 'g' }, KEY_OPT_DAYS, KEY_OPT_RPM, KEY_OPT_END
};
KEY_CMD(rotate, CTL_OPERAND_ID, "replace a key, keeping the old one valid for a grace period");

/* ---- key import ----------------------------------------------------------------- */

static const char import_help[] =
	"usage: keyauthctl key import --route ROUTE [--owner LABEL] [--days N] [--rpm N] [--json]\n"
	"                             < KEYFILE\n"
	"\n"
	"Stores a key generated elsewhere. The key is read from stdin (never from the\n"
	"command line, so it stays out of shell history and ps); one trailing newline\n"
	"is ignored. It must be 20..256 printable ASCII characters without spaces; a\n"
	"key with this deployment's prefix must also have a valid checksum. Prints the\n"
	"new key id. --rpm N sets a requests-per-minute limit (0..1000000, 0 = none).\n"
	"\n"
	"example:\n"
	"  keyauthctl key import --route openai --owner batch-job < key.txt\n";

struct import_arg {
	const char *route;
	const char *owner;
	int64_t expires;
	uint32_t rpm;
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
		return EDIT_FAIL;
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
	e->owner = a->owner;
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
	a.rpm = o->rpm;
	if (a.route == NULL)
		return ctl_usage_err(ctx, "--route is required");
	if (!key_owner_ok(a.owner))
		return ctl_usage_err(ctx, "--owner: at most %d printable characters", KS_OWNER_MAX - 1);
	rc = expiry_from_opts(ctx, o->days, NULL, ctl_now(ctx), &a.expires);
	if (rc != 0)
		return rc;
	rc = CTL_EXIT_FAIL;
	c = ctl_conf_load(ctx);
	if (c == NULL)
		goto out;
	if (key_route_lookup(ctx, c, a.route) == NULL)
		goto out;
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
			rc = ctl_json_print(ctx, json_pack("{s:o,s:o,s:o,s:o,s:I}",
			    "id", ctl_json_text(a.made.id), "route", ctl_json_text(a.made.route),
			    "owner", ctl_json_text(a.made.owner),
			    "expires", ctl_json_time(a.made.expires, false),
			    "rpm", (json_int_t)a.made.rpm));
		} else {
			ctl_fmt_time(a.made.expires, t, sizeof(t));
			printf("%s\n", a.made.id);
			fprintf(stderr, "Imported key %s for route %s, expires %s.\n",
			        a.made.id, a.made.route, t);
		}
	}
out:
	explicit_bzero(key, sizeof(key));
	conf_free(c);
	return rc;
}

static const struct option import_opts[] = {
	KEY_OPT_ROUTE, KEY_OPT_OWNER, KEY_OPT_DAYS, KEY_OPT_RPM, KEY_OPT_END
};
KEY_CMD(import, CTL_OPERAND_STDIN, "store a key generated elsewhere (read from stdin)");

/* ---- key set ------------------------------------------------------------------- */

static const char set_help[] =
	"usage: keyauthctl key set ID --rpm N [--json]\n"
	"\n"
	"Changes a stored key's settings. Running agents apply the change within a\n"
	"second; no deploy is needed.\n"
	"\n"
	"  --rpm N    at most N requests per minute (1..1000000), counted by HAProxy;\n"
	"             0 removes the key's own limit (the route's rate_limit_rpm, if any,\n"
	"             then applies)\n"
	"  --json     print the key's new state as a JSON object\n"
	"\n"
	"example:\n"
	"  keyauthctl key set 3xK9pQ2mZ7aB --rpm 600\n";

static int
set_edit(struct ctl_edit *ed, void *arg)
{
	struct id_arg *a = arg;
	struct ks_entry *e = find_or_complain(ed, a->id);

	if (e == NULL)
		return EDIT_FAIL;
	a->already = e->rpm == a->rpm;
	e->rpm = a->rpm;
	key_keep_entry(&a->old, e);
	return a->already ? EDIT_NOCHANGE : EDIT_WRITE;
}

static int
key_set(struct ctl_ctx *ctx, const struct ctl_args *args)
{
	const struct key_opts *o = args->opts;
	struct id_arg a;
	struct conf *c;
	char rpm[16];
	int rc;

	memset(&a, 0, sizeof(a));
	a.id = args->id;
	a.rpm = o->rpm;
	a.rpm_set = o->rpm_set;
	if (!a.rpm_set)
		return ctl_usage_err(ctx, "nothing to set: give --rpm N");
	c = ctl_conf_load(ctx);
	if (c == NULL)
		return CTL_EXIT_FAIL;
	rc = key_store_edit(ctx, c, set_edit, &a);
	if (rc == CTL_EXIT_OK) {
		if (args->json) {
			rc = ctl_json_print(ctx, json_pack("{s:o,s:o,s:I,s:b}",
			    "id", ctl_json_text(a.old.e.id), "route", ctl_json_text(a.old.e.route),
			    "rpm", (json_int_t)a.old.e.rpm, "changed", !a.already));
		} else {
			printf("key %s (route %s): rpm %s%s\n", a.old.e.id, a.old.e.route,
			       key_rpm_str(a.old.e.rpm, rpm, sizeof(rpm)), a.already ? " (unchanged)" : "");
		}
	}
	conf_free(c);
	return rc;
}

static const struct option set_opts[] = { KEY_OPT_RPM, KEY_OPT_END };
KEY_CMD(set, CTL_OPERAND_ID, "change a key's settings (--rpm) live, by id");
