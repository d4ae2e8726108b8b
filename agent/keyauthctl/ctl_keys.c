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
#include <unistd.h>

#include "ctl_keys-int.h"
#include "keyfmt.h"
#include "verdict.h"

/* ---- key create ---------------------------------------------------------------- */

static const char create_help[] =
	"usage: keyauthctl key create --route ROUTE [--route ROUTE ...] [--owner LABEL]\n"
	"                             [--alias NAME] [--tag K=V ...]\n"
	"                             [--days N | --expires YYYY-MM-DD | --no-expiry]\n"
	"                             [--rpm N] [--scope SCOPE ...] [--out FILE] [--json]\n"
	"\n"
	"Creates an API key for one or more routes and prints it once, alone on stdout.\n"
	"The key id, route, owner and expiry go to stderr. Only the key's SHA-256\n"
	"digest is stored.\n"
	"\n"
	"  --route ROUTE       a route of the configuration (required; repeat it, up to\n"
	"                      16, for a key valid on several routes)\n"
	"  --owner LABEL       who the key is issued to (shown in lists and logs)\n"
	"  --alias NAME        a short name for the key (1..64 of A-Z a-z 0-9 _ . @ -)\n"
	"  --tag K=V           a label (repeatable, up to 16; K: 1..32 of a-z 0-9 _ . -;\n"
	"                      V: up to 64 printable characters without ',' or '=')\n"
	"  --days N            valid for N days (1..3650, default 90)\n"
	"  --expires DATE      valid until the end of DATE (UTC)\n"
	"  --no-expiry         a key that never expires (only when asked for explicitly)\n"
	"  --rpm N             at most N requests per minute, counted by HAProxy\n"
	"                      (0..1000000; default 0: the route's rate_limit_rpm, if any)\n"
	"  --scope SCOPE       read, write or deploy (repeatable): what a key of the\n"
	"                      admin route may do; required there (at least one), and\n"
	"                      such a key is bound to the admin route only\n"
	"  --out FILE          write the key to FILE instead, a new file of mode 0600\n"
	"                      (an existing FILE is refused, before any change)\n"
	"  --json              print a JSON object (which includes the key) instead\n"
	"  -c FILE             configuration file (default $KEYAUTH_CONF or " CONF_DEFAULT_PATH ")\n"
	"\n"
	"examples:\n"
	"  KEY=$(keyauthctl key create --route openai --owner alice@example.com)\n"
	"  keyauthctl key create --route openai --owner alice@example.com --out alice.key\n"
	"  keyauthctl key create --route admin --scope read --scope write --owner ops\n";

struct create_arg {
	const char *route;
	const char *owner;
	const char *alias;
	const char *tags;
	char routes[KS_ROUTES_STR_MAX + 1];
	int64_t expires;
	uint32_t rpm;
	uint32_t scopes;
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
	e->routes = a->routes;
	e->alias = a->alias;
	e->tags = a->tags;
	e->scopes = a->scopes;
	key_keep_entry(&a->made, e);
	return EDIT_WRITE;
}

/* Resolves --days / --expires / --no-expiry into an expiry time (0: never).
 * Returns 0 or an exit code. */
int
expiry_from_opts(const struct ctl_ctx *ctx, const char *days, const char *date, bool never,
                 int64_t now, int64_t *expires)
{
	unsigned long n = CTL_DEFAULT_DAYS;
	int64_t t;

	if (days != NULL && date != NULL)
		return ctl_usage_err(ctx, "--days and --expires cannot be used together");
	if (never && (days != NULL || date != NULL))
		return ctl_usage_err(ctx, "--no-expiry cannot be used with --days or --expires");
	if (never) {
		*expires = 0;
		return 0;
	}
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
		return ctl_usage_err(ctx, "--days: '%s' is not a number of days between 1 and %d "
		                     "(for a key that never expires, say --no-expiry)",
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
	int rc;

	a = calloc(1, sizeof(*a));
	if (a == NULL)
		return CTL_EXIT_FAIL;
	a->route = o->route;
	a->owner = o->owner;
	a->alias = o->alias != NULL ? o->alias : "";
	a->tags = o->tags;
	a->rpm = o->rpm;
	a->scopes = o->scopes;
	key_routes_join(o, a->routes, sizeof(a->routes));
	if (a->route == NULL) {
		rc = ctl_usage_err(ctx, "--route is required");
		goto out;
	}
	if (!key_owner_ok(a->owner)) {
		rc = ctl_usage_err(ctx, "--owner: at most %d printable characters", KS_OWNER_MAX - 1);
		goto out;
	}
	rc = expiry_from_opts(ctx, o->days, o->date, o->no_expiry, ctl_now(ctx), &a->expires);
	if (rc != 0)
		goto out;
	rc = CTL_EXIT_FAIL;
	c = ctl_conf_load(ctx);
	if (c == NULL)
		goto out;
	if ((rc = key_routes_check(ctx, c, o)) != 0 ||
	    (rc = key_scopes_check(ctx, c, a->routes, a->scopes)) != 0)
		goto out;
	rc = key_make(ctx, c, o, args->json, create_edit, a, a->key, &a->made.e, NULL);
out:
	explicit_bzero(a->key, sizeof(a->key));
	free(a);
	conf_free(c);
	return rc;
}

static const struct option create_opts[] = {
	KEY_OPT_ROUTE, KEY_OPT_OWNER, KEY_OPT_DAYS, KEY_OPT_EXPIRES, KEY_OPT_NOEXP,
	KEY_OPT_ALIAS, KEY_OPT_TAG, KEY_OPT_RPM, KEY_OPT_SCOPE, KEY_OPT_OUT, KEY_OPT_END
};
KEY_CMD(create, CTL_OPERAND_NONE, "create a key for a route and print it once");

/* ---- key revoke ----------------------------------------------------------------- */

static const char revoke_help[] =
	"usage: keyauthctl key revoke ID [--json]\n"
	"       keyauthctl key revoke --owner LABEL | --tag K=V ... [--yes] [--json]\n"
	"\n"
	"Revokes the key with this id. Running agents stop accepting it within a\n"
	"second; no deploy is needed. Revoking a revoked key changes nothing.\n"
	"\n"
	"With --owner or --tag instead of an id, revokes every active key (grace\n"
	"included) of that owner, or carrying every tag given, in one store\n"
	"transaction. Without --yes it only says how many keys match and exits 1.\n"
	"Exit status 3 when no key has this id.\n"
	"\n"
	"examples:\n"
	"  keyauthctl key revoke 3xK9pQ2mZ7aB\n"
	"  keyauthctl key revoke --owner alice@example.com --yes\n";

struct id_arg {
	const char *id;
	int64_t grace;               /* rotate */
	int64_t new_expires;         /* rotate */
	uint32_t rpm;                /* rotate, set: the new limit */
	bool rpm_set;                /* rotate: --rpm given (else the old key's) */
	bool already;                /* revoke: it was revoked before */
	bool expiry_set;             /* set: --days, --expires or --no-expiry */
	const struct key_opts *o;    /* rotate, set: the options */
	char routes[KS_ROUTES_STR_MAX + 1];  /* rotate, set: the new route list */
	char first[KS_ROUTE_MAX + 1];        /* rotate, set: its first route */
	char tags[KS_TAGS_STR_MAX + 1];      /* set: the new tags */
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
		return EDIT_NOTFOUND;
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

static int
key_revoke_cmd(struct ctl_ctx *ctx, const struct ctl_args *args)
{
	const struct key_opts *o = args->opts;
	bool bulk = o->owner_set || o->ntags > 0;

	if (bulk && args->id != NULL)
		return ctl_usage_err(ctx, "give a key id or --owner/--tag, not both");
	if (!bulk && args->id == NULL)
		return ctl_usage_err(ctx, "the key ID (or --owner LABEL / --tag K=V) is required");
	if (!bulk && o->yes)
		return ctl_usage_err(ctx, "--yes goes with --owner or --tag");
	return bulk ? key_revoke_bulk(ctx, args) : key_revoke(ctx, args);
}

static const struct option revoke_opts[] = {
	KEY_OPT_OWNER, KEY_OPT_TAG, { "yes", no_argument, NULL, 'y' }, KEY_OPT_END
};
const struct ctl_cmd ctl_cmd_key_revoke = {
	.name = "key revoke", .summary = "revoke a key by id, or every key of an owner or tag",
	.help = revoke_help, .longopts = revoke_opts, .operand = CTL_OPERAND_ID_OPT,
	.opts_size = sizeof(struct key_opts), .init = key_opts_init, .opt = key_opt,
	.run = key_revoke_cmd
};

/* ---- key rotate ----------------------------------------------------------------- */

static const char rotate_help[] =
	"usage: keyauthctl key rotate ID [--grace DURATION] [--days N] [--rpm N]\n"
	"                             [--route ROUTE ...] [--out FILE] [--json]\n"
	"\n"
	"Creates a new key for the same routes, owner, alias, tags and scopes and prints it\n"
	"once on stdout. The old key stays valid for the grace period (listed as\n"
	"'grace'), then reads as expired (its expiry only ever moves earlier). The\n"
	"records name each other (rotated_from, rotated_to).\n"
	"\n"
	"  --grace DURATION   how long the old key keeps working: 30s, 15m, 24h, 7d\n"
	"                     (default 24h; 0s ends it now)\n"
	"  --days N           validity of the new key (default 90)\n"
	"  --rpm N            requests-per-minute limit of the new key (default: the\n"
	"                     old key's; 0 = none of its own)\n"
	"  --route ROUTE      the new key's routes (repeatable; default: the old key's)\n"
	"  --out FILE         write the new key to FILE, a new file of mode 0600\n"
	"                     (an existing FILE is refused, before any change)\n"
	"  --json             a JSON object (which includes the new key)\n"
	"\n"
	"Exit status 3 when no key has this id, 5 when the key is revoked or was\n"
	"already rotated (nothing is changed).\n"
	"\n"
	"examples:\n"
	"  NEW=$(keyauthctl key rotate 3xK9pQ2mZ7aB --grace 1h)\n"
	"  keyauthctl key rotate 3xK9pQ2mZ7aB --grace 7d --out new.key\n";

static int
rotate_edit(struct ctl_edit *ed, void *arg)
{
	struct id_arg *a = arg;
	struct ks_entry *old = find_or_complain(ed, a->id), *e;
	int64_t until;
	size_t oldi;

	if (old == NULL)
		return EDIT_NOTFOUND;
	if (old->revoked != 0) {
		ctl_err(ed->ctx, "key %s is revoked; create a new key instead "
		        "('keyauthctl key create --route %s')", old->id, old->route);
		return EDIT_CONFLICT;
	}
	if (a->o->nroutes == 0) {
		const char *p = ks_entry_routes(old), *c;

		for (;; p = c + 1) {
			size_t len;

			c = strchr(p, ',');
			len = c != NULL ? (size_t)(c - p) : strlen(p);
			if (conf_route_find(ed->conf, p, len) == NULL) {
				ctl_err(ed->ctx, "key %s is bound to route '%.*s', which is no longer "
				        "in %s (give the new key's routes with --route)", old->id,
				        (int)len, p, ed->conf->path);
				return EDIT_FAIL;
			}
			if (c == NULL)
				break;
		}
		snprintf(a->routes, sizeof(a->routes), "%s", ks_entry_routes(old));
	}
	if (key_scopes_check(ed->ctx, ed->conf, a->routes, old->scopes) != 0)
		return EDIT_USAGE;
	if (old->rotated_to[0] != '\0') {
		ctl_err(ed->ctx, "key %s was already rotated (to %s); rotate that key instead",
		        old->id, old->rotated_to);
		return EDIT_CONFLICT;
	}
	until = ed->now + a->grace;
	if (old->expires == 0 || old->expires > until)
		old->expires = until;
	/* key_edit_new may move the array: keep an index, not the pointer. */
	oldi = (size_t)(old - ed->v);
	snprintf(a->first, sizeof(a->first), "%.*s", (int)strcspn(a->routes, ","), a->routes);
	e = key_edit_new(ed, a->first, old->owner, a->new_expires,
	                 a->rpm_set ? a->rpm : old->rpm, a->key, sizeof(a->key));
	if (e == NULL)
		return EDIT_FAIL;
	old = &ed->v[oldi];
	e->routes = a->routes;
	e->alias = old->alias;
	e->tags = old->tags;
	e->scopes = old->scopes;     /* an admin key's successor may do as much */
	memcpy(e->rotated_from, old->id, sizeof(old->id));
	memcpy(old->rotated_to, e->id, sizeof(e->id));
	key_keep_entry(&a->made, e);
	key_keep_entry(&a->old, &ed->v[oldi]);
	return EDIT_WRITE;
}

/* "Old key ID stays valid until ...", printed with the new key. */
static void
rotate_note(const void *arg, char *buf, size_t len)
{
	const struct id_arg *a = arg;
	char t[32];

	ctl_fmt_time(a->old.e.expires, t, sizeof(t));
	snprintf(buf, len, "Old key %s stays valid until %s.", a->old.e.id, t);
}

static int
key_rotate(struct ctl_ctx *ctx, const struct ctl_args *args)
{
	const struct key_opts *o = args->opts;
	struct id_arg *a;
	struct conf *c = NULL;
	int rc;

	a = calloc(1, sizeof(*a));
	if (a == NULL)
		return CTL_EXIT_FAIL;
	a->id = args->id;
	a->grace = o->grace;
	a->rpm = o->rpm;
	a->rpm_set = o->rpm_set;
	a->o = o;
	rc = expiry_from_opts(ctx, o->days, NULL, false, ctl_now(ctx), &a->new_expires);
	if (rc != 0)
		goto out;
	rc = CTL_EXIT_FAIL;
	c = ctl_conf_load(ctx);
	if (c == NULL)
		goto out;
	if ((rc = key_routes_check(ctx, c, o)) != 0)
		goto out;
	key_routes_join(o, a->routes, sizeof(a->routes));
	rc = key_make(ctx, c, o, args->json, rotate_edit, a, a->key, &a->made.e, rotate_note);
out:
	explicit_bzero(a->key, sizeof(a->key));
	free(a);
	conf_free(c);
	return rc;
}

static const struct option rotate_opts[] = {
	{ "grace", required_argument, NULL, 'g' }, KEY_OPT_DAYS, KEY_OPT_RPM, KEY_OPT_ROUTE,
	KEY_OPT_OUT, KEY_OPT_END
};
KEY_CMD(rotate, CTL_OPERAND_ID, "replace a key, keeping the old one valid for a grace period");

/* ---- key set ------------------------------------------------------------------- */

static const char set_help[] =
	"usage: keyauthctl key set ID [--rpm N] [--route ROUTE ...] [--owner LABEL]\n"
	"                          [--alias NAME] [--tag K=V ...] [--untag K ...]\n"
	"                          [--days N | --expires DATE | --no-expiry]\n"
	"                          [--scope SCOPE ...] [--json]\n"
	"\n"
	"Changes a stored key's settings. Running agents apply the change within a\n"
	"second; no deploy is needed.\n"
	"\n"
	"  --rpm N          at most N requests per minute (1..1000000), counted by HAProxy;\n"
	"                   0 removes the key's own limit (the route's rate_limit_rpm, if any,\n"
	"                   then applies)\n"
	"  --route ROUTE    replaces the key's routes (repeatable, up to 16)\n"
	"  --owner LABEL    replaces the owner\n"
	"  --alias NAME     sets the alias; --alias \"\" removes it\n"
	"  --tag K=V        adds or replaces tag K (repeatable)\n"
	"  --untag K        removes tag K (repeatable)\n"
	"  --days N, --expires DATE, --no-expiry\n"
	"                   a new expiry, counted from now (as for 'key create')\n"
	"  --scope SCOPE    replaces an admin-route key's scopes (repeatable: read,\n"
	"                   write, deploy)\n"
	"  --json           print the key's new state as a JSON object\n"
	"\n"
	"Exit status 3 when no key has this id.\n"
	"\n"
	"example:\n"
	"  keyauthctl key set 3xK9pQ2mZ7aB --rpm 600 --route openai --route azure\n";

/* The tags of <e> with <o>'s --untag and --tag applied, into <out>. */
static int
set_tags(const struct ctl_ctx *ctx, const struct ks_entry *e, const struct key_opts *o,
         char *out, size_t outlen)
{
	const char *lists[2] = { e->tags != NULL ? e->tags : "", o->tags };
	size_t used = 0, n = 0;

	out[0] = '\0';
	for (int l = 0; l < 2; l++) {
		for (const char *p = lists[l]; *p != '\0'; ) {
			const char *c = strchr(p, ','), *eq = strchr(p, '=');
			size_t len = c != NULL ? (size_t)(c - p) : strlen(p);
			size_t kl = eq != NULL && eq < p + len ? (size_t)(eq - p) : len;
			bool drop = false;

			if (l == 0) {
				for (size_t i = 0; i < o->nuntags && !drop; i++)
					drop = strlen(o->untags[i]) == kl && memcmp(o->untags[i], p, kl) == 0;
				for (const char *q = o->tags; *q != '\0' && !drop; ) {
					const char *qc = strchr(q, ',');

					drop = strncmp(q, p, kl + 1) == 0;
					if (qc == NULL)
						break;
					q = qc + 1;
				}
			}
			if (!drop) {
				if (++n > KS_TAGS_MAX) {
					ctl_err(ctx, "key %s would have more than %d tags", e->id, KS_TAGS_MAX);
					return -1;
				}
				used += (size_t)snprintf(out + used, outlen - used, "%s%.*s",
				                         used ? "," : "", (int)len, p);
			}
			if (c == NULL)
				break;
			p = c + 1;
		}
	}
	return 0;
}

static int
set_edit(struct ctl_edit *ed, void *arg)
{
	struct id_arg *a = arg;
	const struct key_opts *o = a->o;
	struct ks_entry *e = find_or_complain(ed, a->id), before;

	if (e == NULL)
		return EDIT_NOTFOUND;
	before = *e;
	if (a->rpm_set)
		e->rpm = a->rpm;
	if (o->nroutes > 0) {
		e->route = o->route;
		e->routes = a->routes;
	}
	if (o->owner_set)
		e->owner = o->owner;
	if (o->alias != NULL)
		e->alias = o->alias;
	if (o->ntags > 0 || o->nuntags > 0) {
		if (set_tags(ed->ctx, e, o, a->tags, sizeof(a->tags)) == -1)
			return EDIT_FAIL;
		e->tags = a->tags;
	}
	if (a->expiry_set)
		e->expires = a->new_expires;
	if (o->scopes_set)
		e->scopes = o->scopes;
	if (key_scopes_check(ed->ctx, ed->conf, ks_entry_routes(e), e->scopes) != 0)
		return EDIT_USAGE;
	a->already = strcmp(ks_entry_routes(&before), ks_entry_routes(e)) == 0 &&
	             before.rpm == e->rpm && strcmp(before.owner, e->owner) == 0 &&
	             strcmp(before.alias ? before.alias : "", e->alias ? e->alias : "") == 0 &&
	             strcmp(before.tags ? before.tags : "", e->tags ? e->tags : "") == 0 &&
	             before.expires == e->expires && before.scopes == e->scopes;
	key_keep_entry(&a->old, e);
	return a->already ? EDIT_NOCHANGE : EDIT_WRITE;
}

static int
key_set(struct ctl_ctx *ctx, const struct ctl_args *args)
{
	const struct key_opts *o = args->opts;
	struct id_arg *a;
	struct conf *c = NULL;
	char rpm[16], t[32];
	int rc;

	a = calloc(1, sizeof(*a));
	if (a == NULL)
		return CTL_EXIT_FAIL;
	a->id = args->id;
	a->rpm = o->rpm;
	a->rpm_set = o->rpm_set;
	a->o = o;
	a->expiry_set = o->days != NULL || o->date != NULL || o->no_expiry;
	if (!a->rpm_set && o->nroutes == 0 && !o->owner_set && o->alias == NULL && o->ntags == 0 &&
	    o->nuntags == 0 && !a->expiry_set && !o->scopes_set) {
		rc = ctl_usage_err(ctx, "nothing to set: give --rpm, --route, --owner, --alias, "
		                   "--tag, --untag, --days, --expires, --no-expiry or --scope");
		goto out;
	}
	if (o->owner_set && !key_owner_ok(o->owner)) {
		rc = ctl_usage_err(ctx, "--owner: at most %d printable characters", KS_OWNER_MAX - 1);
		goto out;
	}
	for (size_t i = 0; i < o->nuntags; i++)
		for (const char *p = o->tags; *p != '\0'; ) {
			const char *cm = strchr(p, ',');
			size_t kl = strlen(o->untags[i]);

			if (strncmp(p, o->untags[i], kl) == 0 && p[kl] == '=') {
				rc = ctl_usage_err(ctx, "--tag and --untag both name '%s'", o->untags[i]);
				goto out;
			}
			if (cm == NULL)
				break;
			p = cm + 1;
		}
	if (a->expiry_set &&
	    (rc = expiry_from_opts(ctx, o->days, o->date, o->no_expiry, ctl_now(ctx),
	                           &a->new_expires)) != 0)
		goto out;
	rc = CTL_EXIT_FAIL;
	c = ctl_conf_load(ctx);
	if (c == NULL)
		goto out;
	if ((rc = key_routes_check(ctx, c, o)) != 0)
		goto out;
	key_routes_join(o, a->routes, sizeof(a->routes));
	rc = key_store_edit(ctx, c, set_edit, a);
	if (rc == CTL_EXIT_OK) {
		const struct ks_entry *e = &a->old.e;

		if (args->json) {
			json_t *j = json_pack("{s:o,s:o,s:I,s:b}", "id", ctl_json_text(e->id),
			                      "route", ctl_json_text(e->route), "rpm", (json_int_t)e->rpm,
			                      "changed", !a->already);
			json_t *full = key_json_entry(e, ctl_now(ctx));

			if (j != NULL && full != NULL)
				json_object_update_missing(j, full);
			json_decref(full);
			rc = ctl_json_print(ctx, j);
		} else if (o->nroutes == 0 && !o->owner_set && o->alias == NULL && o->ntags == 0 &&
		           o->nuntags == 0 && !a->expiry_set && !o->scopes_set) {
			printf("key %s (route %s): rpm %s%s\n", e->id, ks_entry_routes(e),
			       key_rpm_str(e->rpm, rpm, sizeof(rpm)), a->already ? " (unchanged)" : "");
		} else {
			if (e->expires != 0)
				ctl_fmt_time(e->expires, t, sizeof(t));
			printf("key %s (route%s %s): rpm %s, owner %s, alias %s, tags %s, expires %s%s%s%s\n",
			       e->id, strchr(ks_entry_routes(e), ',') ? "s" : "", ks_entry_routes(e),
			       key_rpm_str(e->rpm, rpm, sizeof(rpm)), e->owner[0] ? e->owner : "-",
			       e->alias[0] ? e->alias : "-", e->tags[0] ? e->tags : "-",
			       e->expires != 0 ? t : "never", e->scopes ? ", scopes " : "",
			       ks_scopes_str(e->scopes), a->already ? " (unchanged)" : "");
		}
	}
out:
	free(a);
	conf_free(c);
	return rc;
}

static const struct option set_opts[] = {
	KEY_OPT_RPM, KEY_OPT_ROUTE, KEY_OPT_OWNER, KEY_OPT_ALIAS, KEY_OPT_TAG,
	{ "untag", required_argument, NULL, 'u' }, KEY_OPT_DAYS, KEY_OPT_EXPIRES, KEY_OPT_NOEXP,
	KEY_OPT_SCOPE, KEY_OPT_END
};
KEY_CMD(set, CTL_OPERAND_ID, "change a key's settings (rpm, routes, labels, expiry) live, by id");
