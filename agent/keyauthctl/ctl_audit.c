/* SPDX-License-Identifier: Apache-2.0 */
/*
 * ctl_audit: who changed which key, when, with which command (ctl_audit.h).
 *
 * The transaction layer (ctl_keys_store.c) opens the log before it commits,
 * so that a change that could not be recorded is refused, and writes one
 * entry per changed key after a commit that went through. An entry is one
 * JSON object (see doc/keyauthctl.8, AUDIT LOG):
 *   ts, time          Unix seconds and the same in RFC 3339 UTC
 *   user, uid         getpwuid(getuid()), and the uid itself
 *   sudo_user         $SUDO_USER, or null
 *   actor             $KEYAUTH_ACTOR (who asked keyauth-admin, e.g.
 *                     "keyauth-admin key_id=... owner=..."), or null
 *   host              gethostname()
 *   command, argv     "key create", and the command line (a value that
 *                     looks like a key is replaced by "<redacted>")
 *   key_id, route     the key changed (route: its ','-joined route list)
 *   change            "added", "changed" or "removed"
 *   fields            { name: { "old": x, "new": y } } for what differs:
 *                     routes, owner, alias, tags, rotated_from, rotated_to,
 *                     expires, revoked (RFC 3339 or null), rpm (null: none),
 *                     scopes ("read,write"; null: none)
 *   outcome           "committed", or "unconfirmed" with "note": why
 * Digests are never written: they identify keys as well as keys do for
 * anyone holding a candidate list.
 */
#include <errno.h>
#include <fcntl.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <hiredis/hiredis.h>
#include <jansson.h>

#include "conf.h"
#include "ctl.h"
#include "ctl_audit.h"
#include "filetrust.h"
#include "keyfmt.h"
#include "keystore.h"
#include "store.h"
#include "store_redis.h"

#define AUDIT_REDACTED "<redacted>"
/* A token this long of key characters, letters and digits mixed, is taken
 * for a key (256 bits in base62 take 43 characters; a name rarely mixes
 * digits into 32 characters without a '.', '@' or ' '). */
#define AUDIT_KEYLIKE_MIN 32

struct ctl_audit {
	const struct ctl_ctx *ctx;
	const struct conf *c;
	int fd;                      /* the file store's log, else -1 */
	redisContext *rc;            /* the Redis store's connection, else NULL */
	json_t *who;                 /* user, uid, sudo_user, host, command, argv */
	char path[4096];
};

/* ---- who and what -------------------------------------------------------------- */

/* True when <s> could be a key: our prefix, or a long token of the
 * characters keys are made of (base62, '_' and '-') with letters and
 * digits. */
static bool
audit_keylike(const char *prefix, const char *s)
{
	size_t n = strlen(s), pl = prefix != NULL ? strlen(prefix) : 0;
	bool digit = false, alpha = false;

	if (pl > 0 && strncmp(s, prefix, pl) == 0)
		return true;
	if (n < AUDIT_KEYLIKE_MIN)
		return false;
	for (size_t i = 0; i < n; i++) {
		char ch = s[i];

		if (ch >= '0' && ch <= '9')
			digit = true;
		else if ((ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z'))
			alpha = true;
		else if (ch != '_' && ch != '-')
			return false;
	}
	return digit && alpha;
}

/* One argument, redacted when it or its "--opt=" value looks like a key. */
static json_t *
audit_arg(const char *prefix, const char *arg)
{
	const char *eq = strchr(arg, '=');
	char *s;
	json_t *v;

	if (audit_keylike(prefix, arg))
		return json_string(AUDIT_REDACTED);
	if (strncmp(arg, "--", 2) != 0 || eq == NULL || !audit_keylike(prefix, eq + 1))
		return ctl_json_text(arg);
	if (asprintf(&s, "%.*s=" AUDIT_REDACTED, (int)(eq - arg), arg) == -1)
		return NULL;
	v = json_string(s);
	free(s);
	return v;
}

static json_t *
audit_who(const struct ctl_ctx *ctx, const struct conf *c)
{
	const struct passwd *pw = getpwuid(getuid());
	const char *sudo = getenv("SUDO_USER"), *cmd = ctx->prog, *actor = getenv("KEYAUTH_ACTOR");
	char host[256] = "", uid[32], act[257];
	json_t *who = json_object(), *argv = json_array();

	if (gethostname(host, sizeof(host) - 1) == -1)
		snprintf(host, sizeof(host), "?");
	snprintf(uid, sizeof(uid), "%u", (unsigned)getuid());
	if (strncmp(cmd, "keyauthctl ", 11) == 0)
		cmd += 11;
	/* Free text from the environment: bounded, printable, and redacted
	 * when it looks like a key, like argv. */
	snprintf(act, sizeof(act), "%s", actor != NULL ? actor : "");
	for (char *p = act; *p != '\0'; p++)
		if ((unsigned char)*p < 0x20 || (unsigned char)*p > 0x7e)
			*p = '?';
	if (who == NULL || argv == NULL)
		goto fail;
	for (int i = 0; i < ctx->argc; i++)
		if (json_array_append_new(argv, audit_arg(c->key_prefix, ctx->argv[i])) == -1)
			goto fail;
	if (json_object_set_new(who, "user", ctl_json_text(pw != NULL ? pw->pw_name : uid)) ||
	    json_object_set_new(who, "uid", json_integer(getuid())) ||
	    json_object_set_new(who, "sudo_user",
	                        ctl_json_text(sudo != NULL && *sudo != '\0' ? sudo : NULL)) ||
	    json_object_set_new(who, "actor", act[0] == '\0' ? json_null() :
	                        audit_keylike(c->key_prefix, act) ? json_string(AUDIT_REDACTED) :
	                        ctl_json_text(act)) ||
	    json_object_set_new(who, "host", ctl_json_text(host)) ||
	    json_object_set_new(who, "command", ctl_json_text(cmd)) ||
	    json_object_set_new(who, "argv", argv))
		goto fail_who;
	return who;
fail:
	json_decref(argv);
fail_who:
	json_decref(who);
	return NULL;
}

/* ---- opening --------------------------------------------------------------------- */

static void
audit_trust(const struct conf *c, struct ft_trust *t)
{
	ft_trust_for(t, c->user != NULL ? c->user : store_role_ctl.default_user);
}

/* "<store path>.audit" into <buf>: 0, or -1 when too long. */
static int
audit_path(const struct conf *c, char *buf, size_t len)
{
	int n = snprintf(buf, len, "%s" CTL_AUDIT_SUFFIX, c->store_path);

	return n < 0 || (size_t)n >= len ? -1 : 0;
}

static int
audit_open_file(struct ctl_audit *a, char *err, size_t errlen)
{
	struct ft_trust t;
	struct stat st;
	char why[2048];

	if (audit_path(a->c, a->path, sizeof(a->path)) == -1) {
		snprintf(err, errlen, "the store path is too long for its audit log");
		return -1;
	}
	audit_trust(a->c, &t);
	if (ft_check_path(&t, a->path, NULL, why, sizeof(why)) == -1) {
		snprintf(err, errlen, "refusing the audit log %s: %s", a->path, why);
		return -1;
	}
	a->fd = open(a->path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (a->fd == -1) {
		snprintf(err, errlen, "cannot open the audit log %s: %s", a->path, strerror(errno));
		return -1;
	}
	if (fstat(a->fd, &st) == -1 || !S_ISREG(st.st_mode)) {
		snprintf(err, errlen, "the audit log %s is not a regular file", a->path);
		return -1;
	}
	/* New: the agent's user must append to it too. */
	if (st.st_size == 0 && ctl_file_give_dir_owner(a->fd, a->path) == -1) {
		snprintf(err, errlen, "cannot give the audit log %s its directory's owner: %s",
		         a->path, strerror(errno));
		return -1;
	}
	/* The descriptor's own file: no window between the check and the use. */
	if (ft_check_path(&t, a->path, &st, why, sizeof(why)) == -1) {
		snprintf(err, errlen, "refusing the audit log %s: %s", a->path, why);
		return -1;
	}
	return 0;
}

struct ctl_audit *
ctl_audit_open(const struct ctl_ctx *ctx, const struct conf *c, char *err, size_t errlen)
{
	struct ctl_audit *a = calloc(1, sizeof(*a));
	struct ft_trust t;

	if (a == NULL) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	a->ctx = ctx;
	a->c = c;
	a->fd = -1;
	a->who = audit_who(ctx, c);
	if (a->who == NULL) {
		snprintf(err, errlen, "out of memory");
		goto fail;
	}
	if (c->store_redis == NULL) {
		if (audit_open_file(a, err, errlen) == -1)
			goto fail;
		return a;
	}
	audit_trust(c, &t);
	a->rc = store_redis_connect(c->store_redis, &t, err, errlen);
	if (a->rc == NULL)
		goto fail;
	snprintf(a->path, sizeof(a->path), "%s:audit", c->store_redis->namespace);
	return a;
fail:
	ctl_audit_close(a);
	return NULL;
}

void
ctl_audit_close(struct ctl_audit *a)
{
	if (a == NULL)
		return;
	if (a->fd != -1)
		close(a->fd);
	store_redis_disconnect(a->rc);
	json_decref(a->who);
	free(a);
}

/* ---- the difference ---------------------------------------------------------------- */

/* Adds fields.<name> = {old, new}; <o> and <n> are consumed. Nothing when
 * both are equal. 0 or -1. */
static int
audit_field(json_t *fields, const char *name, json_t *o, json_t *n)
{
	json_t *f;

	if (o == NULL || n == NULL) {
		json_decref(o);
		json_decref(n);
		return -1;
	}
	if (json_equal(o, n)) {
		json_decref(o);
		json_decref(n);
		return 0;
	}
	f = json_pack("{s:o,s:o}", "old", o, "new", n);
	return f == NULL ? -1 : json_object_set_new(fields, name, f);
}

/* A string field; with <prefix> (free text: owner, alias, tags), one that
 * looks like a key (a key pasted as an owner, say) is written as
 * AUDIT_REDACTED. Routes and key ids come from the configuration and
 * keyauthctl: <prefix> NULL. */
static json_t *
audit_str(const char *prefix, const struct ks_entry *e, const char *s)
{
	if (e == NULL || s == NULL || *s == '\0')
		return json_null();
	return prefix != NULL && audit_keylike(prefix, s) ? json_string(AUDIT_REDACTED) :
	                                                    ctl_json_text(s);
}

static json_t *
audit_time(const struct ks_entry *e, int64_t t)
{
	return e == NULL ? json_null() : ctl_json_time(t, true);
}

static json_t *
audit_rpm(const struct ks_entry *e)
{
	return e == NULL || e->rpm == 0 ? json_null() : json_integer(e->rpm);
}

/* The fields that differ between <o> and <n> (either may be NULL: added or
 * removed). Digests are compared, never written. */
static json_t *
audit_fields(const char *px, const struct ks_entry *o, const struct ks_entry *n)
{
	json_t *f = json_object();

	if (f == NULL ||
	    audit_field(f, "routes", audit_str(NULL, o, o != NULL ? ks_entry_routes(o) : NULL),
	                audit_str(NULL, n, n != NULL ? ks_entry_routes(n) : NULL)) == -1 ||
	    audit_field(f, "owner", audit_str(px, o, o != NULL ? o->owner : NULL),
	                audit_str(px, n, n != NULL ? n->owner : NULL)) == -1 ||
	    audit_field(f, "alias", audit_str(px, o, o != NULL ? o->alias : NULL),
	                audit_str(px, n, n != NULL ? n->alias : NULL)) == -1 ||
	    audit_field(f, "tags", audit_str(px, o, o != NULL ? o->tags : NULL),
	                audit_str(px, n, n != NULL ? n->tags : NULL)) == -1 ||
	    audit_field(f, "rotated_from", audit_str(NULL, o, o != NULL ? o->rotated_from : NULL),
	                audit_str(NULL, n, n != NULL ? n->rotated_from : NULL)) == -1 ||
	    audit_field(f, "rotated_to", audit_str(NULL, o, o != NULL ? o->rotated_to : NULL),
	                audit_str(NULL, n, n != NULL ? n->rotated_to : NULL)) == -1 ||
	    audit_field(f, "expires", audit_time(o, o != NULL ? o->expires : 0),
	                audit_time(n, n != NULL ? n->expires : 0)) == -1 ||
	    audit_field(f, "revoked", audit_time(o, o != NULL ? o->revoked : 0),
	                audit_time(n, n != NULL ? n->revoked : 0)) == -1 ||
	    audit_field(f, "rpm", audit_rpm(o), audit_rpm(n)) == -1 ||
	    audit_field(f, "scopes", audit_str(NULL, o, o != NULL ? ks_scopes_str(o->scopes) : NULL),
	                audit_str(NULL, n, n != NULL ? ks_scopes_str(n->scopes) : NULL)) == -1) {
		json_decref(f);
		return NULL;
	}
	if (o != NULL && n != NULL && memcmp(o->digest, n->digest, sizeof(o->digest)) != 0 &&
	    json_object_set_new(f, "key", json_pack("{s:s,s:s}", "old", "(digest)",
	                                            "new", "(another digest)")) == -1) {
		json_decref(f);
		return NULL;
	}
	return f;
}

/* ---- writing ------------------------------------------------------------------------ */

static int
audit_append(struct ctl_audit *a, const char *line, size_t len, char *err, size_t errlen)
{
	redisReply *r;
	ssize_t w;

	if (a->rc == NULL) {
		/* One write() per entry: O_APPEND makes it land whole, after
		 * every other writer's. */
		w = write(a->fd, line, len);
		if (w == -1 || (size_t)w != len || fsync(a->fd) == -1) {
			snprintf(err, errlen, "cannot append to the audit log %s: %s", a->path,
			         w == -1 || (size_t)w == len ? strerror(errno) : "short write");
			return -1;
		}
		return 0;
	}
	r = redisCommand(a->rc, "XADD %s MAXLEN ~ %d * entry %b", a->path, CTL_AUDIT_STREAM_MAX,
	                 line, len - 1);
	if (r == NULL || r->type == REDIS_REPLY_ERROR) {
		snprintf(err, errlen, "cannot append to the audit stream %s: %s", a->path,
		         r != NULL ? r->str : a->rc->errstr);
		freeReplyObject(r);
		return -1;
	}
	freeReplyObject(r);
	return 0;
}

static int
audit_entry(struct ctl_audit *a, const struct ks_entry *o, const struct ks_entry *n,
            const char *note, int64_t now, char *err, size_t errlen)
{
	const struct ks_entry *e = n != NULL ? n : o;
	json_t *ent = json_deep_copy(a->who), *fields = audit_fields(a->c->key_prefix, o, n);
	char *line = NULL;
	int rc = -1;

	if (ent == NULL || fields == NULL)
		goto out;
	if (json_object_size(fields) == 0) {
		rc = 0;
		goto out;
	}
	if (json_object_set_new(ent, "ts", json_integer(now)) ||
	    json_object_set_new(ent, "time", ctl_json_time(now, false)) ||
	    json_object_set_new(ent, "key_id", ctl_json_text(e->id)) ||
	    json_object_set_new(ent, "route", ctl_json_text(e->route)) ||
	    json_object_set_new(ent, "change", json_string(o == NULL ? "added" :
	                                                   n == NULL ? "removed" : "changed")) ||
	    json_object_set(ent, "fields", fields) ||
	    json_object_set_new(ent, "outcome", json_string(note == NULL ? "committed" :
	                                                    "unconfirmed")) ||
	    (note != NULL && json_object_set_new(ent, "note", ctl_json_text(note))))
		goto out;
	line = json_dumps(ent, JSON_COMPACT | JSON_PRESERVE_ORDER);
	if (line == NULL)
		goto out;
	rc = 1;
	{
		size_t len = strlen(line);
		char *nl = realloc(line, len + 2);

		if (nl == NULL) {
			rc = -1;
			goto out;
		}
		line = nl;
		line[len] = '\n';
		line[len + 1] = '\0';
		if (audit_append(a, line, len + 1, err, errlen) == -1)
			rc = -2;
	}
out:
	if (rc == -1)
		snprintf(err, errlen, "out of memory building an audit entry");
	free(line);
	json_decref(fields);
	json_decref(ent);
	return rc < 0 ? -1 : rc;
}

int
ctl_audit_write(struct ctl_audit *a, const struct ks_set *before, const struct ks_entry *after,
                size_t n, const char *note, char *err, size_t errlen)
{
	int64_t now = ctl_now(a->ctx);
	const char **ids = NULL;
	int written = 0, r = 0;

	if (ks_count(before) > 0 && (ids = ks_ids_sorted(after, n)) == NULL) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	for (size_t i = 0; i < n; i++) {
		r = audit_entry(a, ks_find_id(before, after[i].id), &after[i], note, now, err,
		                errlen);
		if (r == -1)
			goto out;
		written += r;
	}
	for (size_t i = 0; i < ks_count(before); i++) {
		const struct ks_entry *o = ks_entry_at(before, i);

		if (ks_ids_has(ids, n, o->id))
			continue;
		r = audit_entry(a, o, NULL, note, now, err, errlen);
		if (r == -1)
			goto out;
		written += r;
	}
out:
	free(ids);
	return r == -1 ? -1 : written;
}

/* One entry about no key (ctl_audit.h): the writer's who, then the change. */
int
ctl_audit_event(struct ctl_audit *a, const char *change, const char *route, json_t *fields,
                char *err, size_t errlen)
{
	int64_t now = ctl_now(a->ctx);
	json_t *ent = json_deep_copy(a->who);
	char *text = NULL, *line = NULL;
	int rc = -1;

	if (ent == NULL || fields == NULL ||
	    json_object_set_new(ent, "ts", json_integer(now)) ||
	    json_object_set_new(ent, "time", ctl_json_time(now, false)) ||
	    json_object_set_new(ent, "key_id", json_null()) ||
	    json_object_set_new(ent, "route", ctl_json_text(route)) ||
	    json_object_set_new(ent, "change", json_string(change)) ||
	    json_object_set(ent, "fields", fields) ||
	    json_object_set_new(ent, "outcome", json_string("committed")) ||
	    (text = json_dumps(ent, JSON_COMPACT | JSON_PRESERVE_ORDER)) == NULL ||
	    asprintf(&line, "%s\n", text) == -1) {
		line = NULL;
		snprintf(err, errlen, "out of memory building an audit entry");
	} else {
		rc = audit_append(a, line, strlen(line), err, errlen);
	}
	free(text);
	free(line);
	json_decref(fields);
	json_decref(ent);
	return rc;
}

/* ---- keyauthctl audit ------------------------------------------------------------- */

struct audit_opts {
	int64_t since;               /* Unix time; entries before it are left out */
	bool since_set;
	const char *key;             /* --key ID, or NULL */
};

static const char audit_help[] =
	"usage: keyauthctl audit [-c FILE] [--since DURATION|DATE] [--key ID] [--json]\n"
	"\n"
	"Shows the audit log of the key store: every change keyauthctl made to it,\n"
	"one entry per changed key (when, who, on which host, the command, the\n"
	"fields changed with their old and new values). Never a key nor a digest.\n"
	"The file store's log is <store path>.audit; Redis' the stream <namespace>:audit.\n"
	"\n"
	"  --since D   only entries of the last D (30m, 24h, 7d) or since the date\n"
	"              D (YYYY-MM-DD, 00:00 UTC)\n"
	"  --key ID    only entries about the key ID\n"
	"  --json      a JSON array of the entries, oldest first\n"
	"\n"
	"example:\n"
	"  keyauthctl audit --since 7d --key 3kTQ9wLm2xYp\n";

static const struct option audit_opts_long[] = {
	{ "since", required_argument, NULL, 's' },
	{ "key",   required_argument, NULL, 'k' },
	CTL_JSON_LONGOPT,
	{ NULL, 0, NULL, 0 }
};

static int
audit_opt(struct ctl_ctx *ctx, void *opts, int opt, const char *arg)
{
	struct audit_opts *o = opts;
	int64_t d;

	switch (opt) {
	case 's':
		if (ctl_parse_duration(arg, &d) == 0) {
			o->since = ctl_now(ctx) - d;
		} else if (ctl_parse_date(arg, &d) == 0) {
			o->since = d;
		} else {
			return ctl_usage_err(ctx, "--since: '%s' is neither a duration (30m, 24h, 7d) "
			                     "nor a date (YYYY-MM-DD)", arg);
		}
		o->since_set = true;
		return 0;
	case 'k':
		if (strlen(arg) != KEY_ID_LEN)
			return ctl_usage_err(ctx, "--key: '%s' is not a key id (%d characters, as "
			                     "shown by 'keyauthctl key list')", arg, KEY_ID_LEN);
		o->key = arg;
		return 0;
	default:
		return ctl_usage_err(ctx, "bad option");
	}
}

/* Appends the entry <text>/<len> to <out> when it passes <o>'s filters.
 * 0, or -1 when it is not a JSON object. */
static int
audit_keep(json_t *out, const struct audit_opts *o, const char *text, size_t len)
{
	json_t *e = json_loadb(text, len, 0, NULL);
	const char *id;

	if (!json_is_object(e)) {
		json_decref(e);
		return -1;
	}
	id = json_string_value(json_object_get(e, "key_id"));
	if ((o->since_set && json_integer_value(json_object_get(e, "ts")) < o->since) ||
	    (o->key != NULL && (id == NULL || strcmp(id, o->key) != 0))) {
		json_decref(e);
		return 0;
	}
	return json_array_append_new(out, e) == -1 ? -1 : 0;
}

/* The file store's log into <out>. 0, or -1 (printed). */
static int
audit_read_file(const struct ctl_ctx *ctx, const struct conf *c, const struct audit_opts *o,
                json_t *out)
{
	struct ft_trust t;
	struct stat st;
	char path[4096], why[2048], *buf = NULL;
	size_t len = 0, cap = 0;
	unsigned bad = 0;
	int fd, rc = -1;

	if (audit_path(c, path, sizeof(path)) == -1) {
		ctl_err(ctx, "the store path is too long for its audit log");
		return -1;
	}
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd == -1 && errno == ENOENT)
		return 0;               /* nothing changed yet */
	audit_trust(c, &t);
	if (fd == -1 || fstat(fd, &st) == -1) {
		ctl_err(ctx, "cannot read the audit log %s: %s", path, strerror(errno));
		goto out;
	}
	if (!S_ISREG(st.st_mode) || ft_check_path(&t, path, &st, why, sizeof(why)) == -1) {
		ctl_err(ctx, "refusing the audit log %s: %s", path,
		        S_ISREG(st.st_mode) ? why : "not a regular file");
		goto out;
	}
	for (;;) {
		ssize_t r;

		if (cap - len < 4096) {
			char *nb = realloc(buf, cap + 65536);

			if (nb == NULL) {
				ctl_err(ctx, "out of memory");
				goto out;
			}
			buf = nb;
			cap += 65536;
		}
		r = read(fd, buf + len, cap - len);
		if (r == -1 && errno == EINTR)
			continue;
		if (r == -1) {
			ctl_err(ctx, "cannot read the audit log %s: %s", path, strerror(errno));
			goto out;
		}
		if (r == 0)
			break;
		len += (size_t)r;
	}
	for (size_t i = 0; i < len; ) {
		const char *nl = memchr(buf + i, '\n', len - i);
		size_t end = nl != NULL ? (size_t)(nl - buf) : len;

		if (end > i && audit_keep(out, o, buf + i, end - i) == -1)
			bad++;
		i = end + 1;
	}
	if (bad > 0)
		fprintf(stderr, "%s: warning: %u line(s) of %s are not audit entries (skipped)\n",
		        ctx->prog, bad, path);
	rc = 0;
out:
	if (fd != -1)
		close(fd);
	free(buf);
	return rc;
}

/* The Redis store's stream into <out>, 1000 entries a round trip. 0, or -1
 * (printed). */
static int
audit_read_redis(const struct ctl_ctx *ctx, const struct conf *c, const struct audit_opts *o,
                 json_t *out)
{
	struct ft_trust t;
	redisContext *rc;
	char err[1024], key[512], start[64];
	unsigned bad = 0;
	int ret = -1;

	audit_trust(c, &t);
	rc = store_redis_connect(c->store_redis, &t, err, sizeof(err));
	if (rc == NULL) {
		ctl_err(ctx, "cannot read the audit stream: %s", err);
		return -1;
	}
	snprintf(key, sizeof(key), "%s:audit", c->store_redis->namespace);
	/* Stream ids are milliseconds: --since skips the older ones server-side. */
	snprintf(start, sizeof(start), "%lld", o->since_set && o->since > 0 ?
	         (long long)o->since * 1000 : 0LL);
	for (;;) {
		redisReply *r = redisCommand(rc, "XRANGE %s %s + COUNT 1000", key, start);
		size_t n;

		if (r == NULL || r->type != REDIS_REPLY_ARRAY) {
			ctl_err(ctx, "cannot read the audit stream %s: %s", key,
			        r == NULL ? rc->errstr : r->type == REDIS_REPLY_ERROR ? r->str :
			        "unexpected reply");
			freeReplyObject(r);
			goto out;
		}
		n = r->elements;
		for (size_t i = 0; i < n; i++) {
			const redisReply *ent = r->element[i], *kv;

			if (ent->type != REDIS_REPLY_ARRAY || ent->elements != 2 ||
			    ent->element[0]->type != REDIS_REPLY_STRING) {
				bad++;
				continue;
			}
			snprintf(start, sizeof(start), "(%s", ent->element[0]->str);
			kv = ent->element[1];
			if (kv->type != REDIS_REPLY_ARRAY || kv->elements != 2 ||
			    kv->element[1]->type != REDIS_REPLY_STRING ||
			    audit_keep(out, o, kv->element[1]->str, kv->element[1]->len) == -1)
				bad++;
		}
		freeReplyObject(r);
		if (n < 1000)
			break;
	}
	if (bad > 0)
		fprintf(stderr, "%s: warning: %u entr%s of %s are not audit entries (skipped)\n",
		        ctx->prog, bad, bad == 1 ? "y" : "ies", key);
	ret = 0;
out:
	store_redis_disconnect(rc);
	return ret;
}

/* A field value for the plain listing, as JSON: null, "text", 60. */
static void
audit_val(const json_t *v)
{
	char *s = v != NULL ? json_dumps(v, JSON_ENCODE_ANY) : NULL;

	fputs(s != NULL ? s : "null", stdout);
	free(s);
}

static void
audit_print_line(const json_t *e)
{
	const char *sudo = json_string_value(json_object_get(e, "sudo_user"));
	const char *name;
	json_t *f;
	bool first = true;

	printf("%s %s%s%s%s@%s %s %s",
	       json_string_value(json_object_get(e, "time")) ?: "-",
	       json_string_value(json_object_get(e, "user")) ?: "-",
	       sudo != NULL ? "(sudo:" : "", sudo != NULL ? sudo : "", sudo != NULL ? ")" : "",
	       json_string_value(json_object_get(e, "host")) ?: "-",
	       json_string_value(json_object_get(e, "command")) ?: "-",
	       json_string_value(json_object_get(e, "key_id")) ?: "-");
	if (json_string_value(json_object_get(e, "actor")) != NULL)
		printf(" (actor: %s)", json_string_value(json_object_get(e, "actor")));
	printf(" %s", json_string_value(json_object_get(e, "change")) ?: "-");
	json_object_foreach(json_object_get(e, "fields"), name, f) {
		printf("%s %s: ", first ? "" : ";", name);
		audit_val(json_object_get(f, "old"));
		fputs(" -> ", stdout);
		audit_val(json_object_get(f, "new"));
		first = false;
	}
	if (strcmp(json_string_value(json_object_get(e, "outcome")) ?: "", "committed") != 0)
		printf(" UNCONFIRMED(%s)", json_string_value(json_object_get(e, "note")) ?: "");
	putchar('\n');
}

static int
audit_run(struct ctl_ctx *ctx, const struct ctl_args *args)
{
	const struct audit_opts *o = args->opts;
	struct conf *c = ctl_conf_load(ctx);
	json_t *out = json_array();
	size_t i;
	json_t *e;
	int r;

	if (c == NULL || out == NULL) {
		if (out == NULL)
			ctl_err(ctx, "out of memory");
		json_decref(out);
		conf_free(c);
		return CTL_EXIT_FAIL;
	}
	r = c->store_redis == NULL ? audit_read_file(ctx, c, o, out) :
	                             audit_read_redis(ctx, c, o, out);
	conf_free(c);
	if (r == -1) {
		json_decref(out);
		return CTL_EXIT_FAIL;
	}
	if (args->json)
		return ctl_json_print(ctx, out);
	json_array_foreach(out, i, e)
		audit_print_line(e);
	json_decref(out);
	return CTL_EXIT_OK;
}

const struct ctl_cmd ctl_cmd_audit = {
	.name = "audit", .summary = "show who changed which key, when (the store's audit log)",
	.help = audit_help, .longopts = audit_opts_long, .operand = CTL_OPERAND_NONE,
	.opts_size = sizeof(struct audit_opts), .opt = audit_opt, .run = audit_run,
};
