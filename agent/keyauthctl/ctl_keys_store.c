/* SPDX-License-Identifier: Apache-2.0 */
/*
 * ctl_keys_store: the store under `keyauthctl key ...`. Every change is one
 * transaction through store_open's vtable (store.h): lock and read the whole
 * store, let the command edit a copy, write it (the file: under an exclusive
 * flock, rewritten whole with generation + 1; Redis: under WATCH of the
 * generation, one MULTI/EXEC of the changed records). A store that does not
 * load is never written. Each commit that went through leaves one audit entry
 * per changed key (ctl_audit.h); a change whose audit log cannot be opened
 * is not made.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ctl_audit.h"
#include "ctl_keys-int.h"
#include "filetrust.h"
#include "keyfmt.h"
#include "store.h"

/* The file store is there but this user may not read it (the file, or a
 * directory above it): says who may, instead of the advice for a broken
 * store, which would have an operator recreate keys that are fine. Returns
 * true when that was the failure (printed). */
static bool
key_store_denied(const struct ctl_ctx *ctx, const struct conf *c)
{
	char at[PATH_MAX], user[64];
	const struct passwd *pw;
	struct stat st;
	char *slash;

	if (faccessat(AT_FDCWD, c->store_path, R_OK, AT_EACCESS) == 0 || errno != EACCES)
		return false;
	snprintf(at, sizeof(at), "%s", c->store_path);
	/* A closed directory above hides the file: name the nearest one seen. */
	while (stat(at, &st) == -1) {
		slash = strrchr(at, '/');
		if (slash == NULL || slash == at)
			return false;
		*slash = '\0';
	}
	pw = getpwuid(st.st_uid);
	if (pw != NULL)
		snprintf(user, sizeof(user), "%s", pw->pw_name);
	else
		snprintf(user, sizeof(user), "%u", (unsigned)st.st_uid);
	if (strcmp(at, c->store_path) == 0)
		ctl_err(ctx, "cannot read the key store %s (owned by %s, mode %04o): run as %s, "
		        "e.g. runuser -u %s -- %s%s%s", c->store_path, user,
		        (unsigned)(st.st_mode & 07777), user, user, ctx->prog,
		        strcmp(ctx->conf_path, CONF_DEFAULT_PATH) != 0 ? " -c " : "",
		        strcmp(ctx->conf_path, CONF_DEFAULT_PATH) != 0 ? ctx->conf_path : "");
	else
		ctl_err(ctx, "cannot read the key store %s: its directory %s (owned by %s, mode "
		        "%04o) is closed to this user: run as %s, e.g. runuser -u %s -- %s%s%s",
		        c->store_path, at, user, (unsigned)(st.st_mode & 07777), user, user,
		        ctx->prog, strcmp(ctx->conf_path, CONF_DEFAULT_PATH) != 0 ? " -c " : "",
		        strcmp(ctx->conf_path, CONF_DEFAULT_PATH) != 0 ? ctx->conf_path : "");
	return true;
}

static void
key_store_load_failed(const struct ctl_ctx *ctx, const struct conf *c, const char *err)
{
	if (c->store_redis == NULL && key_store_denied(ctx, c))
		return;
	ctl_err(ctx, "cannot read the key store: %s", err);
	if (c->store_redis != NULL) {
		fprintf(stderr, "%s: the store was not modified; check that Redis at %s is up "
		        "and the store settings of %s.\n", ctx->prog, c->store_redis->address,
		        c->path);
		return;
	}
	fprintf(stderr,
	        "%s: the store was not modified. To recover, restore %s from a backup,\n"
	        "  or move it aside (mv %s %s.broken) to start an empty store; keys held only\n"
	        "  in the broken file then stop working and must be created again.\n",
	        ctx->prog, c->store_path, c->store_path, c->store_path);
}

/* A file store that another user could have written is neither read (a
 * listing would vouch for keys that user minted) nor written. Checked before
 * the store is opened, for a message of its own; the store's own check
 * (store_file.c) still judges the descriptor read. 0, or -1 (printed). */
static int
key_store_trusted(const struct ctl_ctx *ctx, const struct conf *c)
{
	struct ft_trust t;
	char why[2048];

	if (c->store_redis != NULL)
		return 0;       /* its password file is checked by store_open */
	ft_trust_for(&t, c->user != NULL ? c->user : store_role_ctl.default_user);
	if (ft_check_path(&t, c->store_path, NULL, why, sizeof(why)) == 0)
		return 0;
	if (key_store_denied(ctx, c))   /* not judged: closed to this user */
		return -1;
	ctl_err(ctx, "refusing the key store %s: %s", c->store_path, why);
	fprintf(stderr, "%s: the store was neither read nor modified: a user other than root or "
	        "the agent's could have put keys in it. Check its contents before fixing the "
	        "owner or mode.\n", ctx->prog);
	return -1;
}

/* ---- store transactions ------------------------------------------------------ */

struct ks_entry *
key_edit_find(struct ctl_edit *ed, const char *id)
{
	for (size_t i = 0; i < ed->n; i++)
		if (strcmp(ed->v[i].id, id) == 0)
			return &ed->v[i];
	return NULL;
}

struct ks_entry *
key_edit_append(struct ctl_edit *ed)
{
	if (ed->n == ed->cap) {
		size_t ncap = ed->cap == 0 ? 16 : ed->cap * 2;
		struct ks_entry *nv = realloc(ed->v, ncap * sizeof(*nv));

		if (nv == NULL) {
			ctl_err(ed->ctx, "out of memory");
			return NULL;
		}
		ed->v = nv;
		ed->cap = ncap;
	}
	memset(&ed->v[ed->n], 0, sizeof(ed->v[0]));
	return &ed->v[ed->n++];
}

/* The whole set, unlocked (the file is replaced by rename and redis writes
 * are atomic, so a reader sees the old store or the new one). */
struct ks_set *
key_store_read(const struct ctl_ctx *ctx, struct conf **c)
{
	char err[1024] = "";
	struct store *st;
	struct ks_set *set;

	*c = ctl_conf_load(ctx);
	if (*c == NULL || key_store_trusted(ctx, *c) == -1)
		return NULL;
	st = store_open(*c, &store_role_ctl, err, sizeof(err));
	set = st != NULL ? st->ops->read(st, err, sizeof(err)) : NULL;
	store_free(st);
	if (set == NULL)
		key_store_load_failed(ctx, *c, err);
	return set;
}

/* Runs <fn> as one locked read-modify-write of the store. Returns
 * CTL_EXIT_OK, CTL_EXIT_FAIL (messages printed), or STORE_UNCONFIRMED: the
 * change is written but fewer replicas than write_replicas confirmed it,
 * with the message for key_unconfirmed_print in <note> (<notelen> bytes), not
 * printed yet so that a command can first print the key it made. */
int
key_store_edit_note(const struct ctl_ctx *ctx, const struct conf *c, ctl_edit_fn *fn, void *arg,
                char *note, size_t notelen)
{
	struct ctl_edit ed = { .ctx = ctx, .conf = c, .now = ctl_now(ctx) };
	struct ctl_audit *audit = NULL;
	struct store *st;
	struct ks_set *set = NULL;
	char err[1024];
	int locked = 0, rc = CTL_EXIT_FAIL, r;

	err[0] = '\0';
	if (key_store_trusted(ctx, c) == -1)
		return CTL_EXIT_FAIL;
	st = store_open(c, &store_role_ctl, err, sizeof(err));
	if (st != NULL)
		set = st->ops->begin(st, &locked, err, sizeof(err));
	if (!locked) {
		ctl_err(ctx, "cannot lock the key store: %s", err);
		if (c->store_redis == NULL)
			fprintf(stderr, "%s: check that the directory of %s exists and that this user "
			        "may write to it.\n", ctx->prog, c->store_path);
		else
			fprintf(stderr, "%s: check that Redis at %s is up and the store settings of "
			        "%s.\n", ctx->prog, c->store_redis->address, c->path);
		if (st != NULL)
			st->ops->end(st);
		store_free(st);
		return CTL_EXIT_FAIL;
	}
	if (set == NULL) {
		key_store_load_failed(ctx, c, err);
		goto out;
	}
	ed.set = set;
	for (size_t i = 0; i < ks_count(set); i++) {
		struct ks_entry *e = key_edit_append(&ed);

		if (e == NULL)
			goto out;
		*e = *ks_entry_at(set, i);
	}
	r = fn(&ed, arg);
	if (r == EDIT_FAIL || r == EDIT_NOTFOUND || r == EDIT_USAGE || r == EDIT_CONFLICT) {
		rc = r == EDIT_NOTFOUND ? CTL_EXIT_NOTFOUND : r == EDIT_USAGE ? CTL_EXIT_USAGE
		   : r == EDIT_CONFLICT ? CTL_EXIT_CONFLICT : CTL_EXIT_FAIL;
		goto out;
	}
	if (r == EDIT_NOCHANGE) {
		rc = CTL_EXIT_OK;
		goto out;
	}
	/* Opened under the store's lock, before the commit: a change that
	 * could not be recorded is not made, and the entries of concurrent
	 * writers follow the order of their commits. */
	audit = ctl_audit_open(ctx, c, err, sizeof(err));
	if (audit == NULL) {
		ctl_err(ctx, "%s", err);
		fprintf(stderr, "%s: the store was not modified: every change is recorded in the "
		        "audit log first.\n", ctx->prog);
		goto out;
	}
	r = st->ops->commit(st, set, ed.v, ed.n, err, sizeof(err));
	if (r == -1) {
		ctl_err(ctx, "cannot write the key store: %s", err);
		fprintf(stderr, "%s: the store was not modified.\n", ctx->prog);
		goto out;
	}
	if (r == 1) {
		snprintf(note, notelen, "%s", err);
		rc = STORE_UNCONFIRMED;
	} else {
		rc = CTL_EXIT_OK;
	}
	/* The change is made: a failure here is reported, not undone. */
	if (ctl_audit_write(audit, set, ed.v, ed.n, rc == STORE_UNCONFIRMED ? note : NULL, err,
	                    sizeof(err)) == -1)
		fprintf(stderr, "%s: warning: the store was modified, but its audit entry was not "
		        "written: %s\n", ctx->prog, err);
out:
	ctl_audit_close(audit);
	free(ed.v);
	ks_set_unref(set);
	st->ops->end(st);
	store_free(st);
	return rc;
}

/* Prints key_store_edit_note's <note>; the exit code of an unconfirmed change. */
int
key_unconfirmed_print(const struct ctl_ctx *ctx, const char *note)
{
	ctl_err(ctx, "%s", note);
	return CTL_EXIT_FAIL;
}

/* key_store_edit_note for commands that print nothing of their own first. */
int
key_store_edit(const struct ctl_ctx *ctx, const struct conf *c, ctl_edit_fn *fn, void *arg)
{
	char note[1024];
	int rc = key_store_edit_note(ctx, c, fn, arg, note, sizeof(note));

	return rc == STORE_UNCONFIRMED ? key_unconfirmed_print(ctx, note) : rc;
}

/* A new key and entry for <route>/<owner>, appended to the working copy. The
 * key goes to <key> (KEY_GEN_MAX + 1 bytes). */
struct ks_entry *
key_edit_new(struct ctl_edit *ed, const char *route, const char *owner, int64_t expires,
             uint32_t rpm, char *key, size_t keycap)
{
	struct ks_entry *e;
	uint8_t digest[KEY_DIGEST_LEN];
	char id[KEY_ID_LEN + 1];
	int len = -1;

	/* Collisions of 256-bit keys or 71-bit ids do not happen, but checking
	 * costs nothing and keeps the store's uniqueness invariant local. */
	for (int tries = 0; tries < 8; tries++) {
		len = keyfmt_generate(ed->conf->key_prefix, key, keycap);
		if (len < 0 || keyfmt_new_id(id) == -1) {
			ctl_err(ed->ctx, "cannot generate a key (CSPRNG failure)");
			return NULL;
		}
		keyfmt_digest(key, (size_t)len, digest);
		if (ks_lookup(ed->set, digest) == NULL && key_edit_find(ed, id) == NULL)
			break;
		len = -1;
	}
	if (len < 0) {
		ctl_err(ed->ctx, "cannot generate a unique key");
		return NULL;
	}
	e = key_edit_append(ed);
	if (e == NULL)
		return NULL;
	memcpy(e->digest, digest, sizeof(digest));
	memcpy(e->id, id, sizeof(id));
	e->route = route;
	e->owner = owner;
	e->created = ed->now;
	e->expires = expires;
	e->rpm = rpm;
	return e;
}
