/* SPDX-License-Identifier: Apache-2.0 */
/*
 * ctl_keys: `keyauthctl key ...`, the key lifecycle.
 *
 * Every change to the store is one transaction (store_edit): exclusive lock,
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
#include <termios.h>
#include <unistd.h>

#include "conf.h"
#include "ctl.h"
#include "keyfmt.h"
#include "keystore.h"
#include "store_redis.h"
#include "verdict.h"

#define STDIN_MAX 8192           /* verify: more than any header HAProxy would pass */

/* ---- helpers ---------------------------------------------------------------- */

static const char *
entry_status(const struct ks_entry *e, int64_t now)
{
	if (e->revoked != 0)
		return "revoked";
	if (e->expires != 0 && now >= e->expires)
		return "expired";
	return "active";
}

/* Owner labels end up in logs, JSON and HAProxy variables: printable text
 * only, bounded. */
static bool
owner_ok(const char *s)
{
	size_t n = strlen(s);

	if (n >= KS_OWNER_MAX)
		return false;
	for (const unsigned char *p = (const unsigned char *)s; *p != '\0'; p++)
		if (*p < 0x20 || *p == 0x7f)
			return false;
	return true;
}

static const struct route *
route_lookup(const struct ctl_ctx *ctx, const struct conf *c, const char *name)
{
	const struct route *r = conf_route_find(c, name, strlen(name));

	if (r == NULL) {
		fprintf(stderr, "%s: unknown route '%s'; routes in %s:", ctx->prog, name, c->path);
		for (unsigned i = 0; i < c->nroutes && i < 20; i++)
			fprintf(stderr, " %s", c->routes[i].name);
		if (c->nroutes > 20)
			fprintf(stderr, " ...");
		if (c->nroutes == 0)
			fprintf(stderr, " (none)");
		fprintf(stderr, "\n");
	}
	return r;
}

static void
store_load_failed(const struct ctl_ctx *ctx, const struct conf *c, const char *err)
{
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

/* Reads one key from stdin into <buf> (capacity <cap>, NUL-terminated).
 * One trailing "\n" (or "\r\n") is removed. On a terminal, echo is off and
 * one line is read. Returns 0, 1 when the input exceeds <cap> - 1 bytes, -1
 * on a read error. */
static int
read_stdin_key(const struct ctl_ctx *ctx, char *buf, size_t cap, size_t *len)
{
	struct termios old, quiet;
	bool tty = isatty(STDIN_FILENO) == 1;
	bool restore = false, over = false;
	size_t n = 0;
	int rc = 0;

	if (tty) {
		fprintf(stderr, "Key (input hidden, then Enter): ");
		fflush(stderr);
		if (tcgetattr(STDIN_FILENO, &old) == 0) {
			quiet = old;
			quiet.c_lflag &= ~(tcflag_t)ECHO;
			restore = tcsetattr(STDIN_FILENO, TCSAFLUSH, &quiet) == 0;
		}
	}
	for (;;) {
		char chunk[512];
		ssize_t r = read(STDIN_FILENO, chunk, sizeof(chunk));

		if (r == -1) {
			if (errno == EINTR)
				continue;
			ctl_err(ctx, "reading the key from stdin: %s", strerror(errno));
			rc = -1;
			break;
		}
		if (r == 0)
			break;
		if (!over && n + (size_t)r <= cap - 1) {
			memcpy(buf + n, chunk, (size_t)r);
			n += (size_t)r;
		} else {
			over = true;
		}
		explicit_bzero(chunk, sizeof(chunk));
		if (tty && n > 0 && buf[n - 1] == '\n')
			break;
	}
	if (restore) {
		tcsetattr(STDIN_FILENO, TCSAFLUSH, &old);
		fputc('\n', stderr);
	}
	if (n > 0 && buf[n - 1] == '\n') {
		n--;
		if (n > 0 && buf[n - 1] == '\r')
			n--;
	}
	buf[n] = '\0';
	*len = n;
	if (rc == 0 && over)
		rc = 1;
	return rc;
}

/* An entry copied out of a transaction: its strings are borrowed from the
 * loaded set, which is gone once store_edit returns. */
struct kept_entry {
	struct ks_entry e;
	char route[KS_ROUTE_MAX + 1];
	char owner[KS_OWNER_MAX + 1];
};

static void
keep_entry(struct kept_entry *k, const struct ks_entry *e)
{
	k->e = *e;
	snprintf(k->route, sizeof(k->route), "%s", e->route);
	snprintf(k->owner, sizeof(k->owner), "%s", e->owner);
	k->e.route = k->route;
	k->e.owner = k->owner;
}

/* --rpm N: 0..CONF_MAX_RPM requests per minute, 0 = no limit of the key's own
 * (the route's rate_limit_rpm, if any, then applies). */
static int
parse_rpm(const struct ctl_ctx *ctx, const char *s, uint32_t *out)
{
	unsigned long v;

	if (ctl_parse_uint(s, 0, CONF_MAX_RPM, &v) == -1)
		return ctl_usage_err(ctx, "--rpm: '%s' is not a number of requests per minute "
		                     "between 0 (no limit) and %d", s, CONF_MAX_RPM);
	*out = (uint32_t)v;
	return 0;
}

/* "60" or "-" for tables and messages. */
static const char *
rpm_str(uint32_t rpm, char *buf, size_t len)
{
	if (rpm == 0)
		return "-";
	snprintf(buf, len, "%u", (unsigned)rpm);
	return buf;
}

/* ---- options ------------------------------------------------------------------- */

/* The options of every key command; each takes those it lists. */
struct key_opts {
	const char *route;
	const char *owner;           /* "" when not given */
	const char *days;            /* checked by expiry_from_opts */
	const char *date;            /* --expires */
	int64_t grace;               /* rotate: CTL_DEFAULT_GRACE when not given */
	uint32_t rpm;
	bool rpm_set;
	bool all;
};

static void
key_opts_init(void *opts)
{
	struct key_opts *o = opts;

	o->owner = "";
	o->grace = CTL_DEFAULT_GRACE;
}

static int
key_opt(struct ctl_ctx *ctx, void *opts, int opt, const char *arg)
{
	struct key_opts *o = opts;

	switch (opt) {
	case 'r': o->route = arg; break;
	case 'o': o->owner = arg; break;
	case 'd': o->days = arg; break;
	case 'e': o->date = arg; break;
	case 'a': o->all = true; break;
	case 'p':
		o->rpm_set = true;
		return parse_rpm(ctx, arg, &o->rpm);
	case 'g':
		if (ctl_parse_duration(arg, &o->grace) == -1)
			return ctl_usage_err(ctx, "--grace: '%s' is not a duration (e.g. 30s, 15m, "
			                     "24h, 7d; at most %d days)", arg, CTL_MAX_DAYS);
		break;
	default:
		return ctl_usage_err(ctx, "unexpected option");
	}
	return 0;
}

#define KEY_OPT_ROUTE   { "route",   required_argument, NULL, 'r' }
#define KEY_OPT_OWNER   { "owner",   required_argument, NULL, 'o' }
#define KEY_OPT_DAYS    { "days",    required_argument, NULL, 'd' }
#define KEY_OPT_RPM     { "rpm",     required_argument, NULL, 'p' }
#define KEY_OPT_END     CTL_JSON_LONGOPT, { NULL, 0, NULL, 0 }

/* The descriptor of "key WORD": WORD_help, WORD_opts and key_WORD(). */
#define KEY_CMD(word, operand_, summary_) \
	const struct ctl_cmd ctl_cmd_key_##word = { \
		.name = "key " #word, .summary = summary_, .help = word##_help, \
		.longopts = word##_opts, .operand = operand_, .opts_size = sizeof(struct key_opts), \
		.init = key_opts_init, .opt = key_opt, .run = key_##word }

/* ---- store transactions ------------------------------------------------------ */

/* The working copy of the entries during a transaction. Strings are borrowed
 * from the loaded set, the conf or argv, all of which outlive the edit. */
struct ctl_edit {
	const struct ctl_ctx *ctx;
	const struct conf *conf;
	const struct ks_set *set;    /* the store as loaded under the lock */
	struct ks_entry *v;
	size_t n;
	size_t cap;
	int64_t now;
};

#define EDIT_WRITE    0          /* write the working copy */
#define EDIT_NOCHANGE 1          /* nothing to write; success */
#define EDIT_FAIL     (-1)       /* the callback printed why */

typedef int ctl_edit_fn(struct ctl_edit *ed, void *arg);

static struct ks_entry *
edit_find(struct ctl_edit *ed, const char *id)
{
	for (size_t i = 0; i < ed->n; i++)
		if (strcmp(ed->v[i].id, id) == 0)
			return &ed->v[i];
	return NULL;
}

static struct ks_entry *
edit_append(struct ctl_edit *ed)
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

/* ---- the store behind keyauthctl: file or redis ---------------------------
 * A transaction reads the whole set, lets the command edit a copy, then
 * writes it: the file backend under an exclusive flock, rewritten whole with
 * generation + 1; the redis backend under WATCH of the generation, written as
 * one MULTI/EXEC of the changed records (see store_redis.h), so a concurrent
 * writer makes this one fail instead of being overwritten. */
struct ctl_tx {
	const struct conf *c;
	int lock;                        /* file */
	struct redisContext *rds;        /* redis */
};

struct ctl_store_ops {
	/* Locks and reads: the set, or NULL with <err> (*locked = 0 when the
	 * failure is the lock/connection itself). */
	struct ks_set *(*begin)(struct ctl_tx *tx, int *locked, char *err, size_t errlen);
	/* 0, -1 with <err> (nothing written), or 1 with <err>: written, but
	 * fewer replicas than write_replicas confirmed it. */
	int (*commit)(struct ctl_tx *tx, const struct ks_set *old, const struct ks_entry *v,
	              size_t n, char *err, size_t errlen);
	void (*end)(struct ctl_tx *tx);
};

static struct ks_set *
file_tx_begin(struct ctl_tx *tx, int *locked, char *err, size_t errlen)
{
	tx->lock = ks_file_lock(tx->c->store_path, err, errlen);
	*locked = tx->lock != -1;
	if (tx->lock == -1)
		return NULL;
	return ks_set_load(tx->c->store_path, NULL, err, errlen);
}

static int
file_tx_commit(struct ctl_tx *tx, const struct ks_set *old, const struct ks_entry *v, size_t n,
               char *err, size_t errlen)
{
	return ks_file_write_gen(tx->c->store_path, v, n, ks_generation(old) + 1, err, errlen);
}

static void
file_tx_end(struct ctl_tx *tx)
{
	if (tx->lock != -1)
		ks_file_unlock(tx->lock);
}

static struct ks_set *
redis_tx_begin(struct ctl_tx *tx, int *locked, char *err, size_t errlen)
{
	tx->rds = store_redis_connect(tx->c->store_redis, err, errlen);
	*locked = tx->rds != NULL;
	if (tx->rds == NULL)
		return NULL;
	if (store_redis_watch_gen(tx->rds, tx->c->store_redis->namespace, err, errlen) == -1)
		return NULL;
	return store_redis_read(tx->rds, tx->c->store_redis->namespace, NULL, err, errlen);
}

static int
redis_tx_commit(struct ctl_tx *tx, const struct ks_set *old, const struct ks_entry *v, size_t n,
                char *err, size_t errlen)
{
	const struct store_redis_conf *rc = tx->c->store_redis;
	int r = store_redis_commit(tx->rds, rc->namespace, old, v, n, err, errlen), acked;

	if (r == 1)
		snprintf(err, errlen, "another writer changed the store meanwhile; run the command again");
	if (r != 0)
		return -1;
	if (rc->write_replicas == 0)
		return 0;
	/* Redis replicates asynchronously: without WAIT a failover right
	 * after this write could promote a replica that never saw it (a
	 * revoked key would work again). */
	acked = store_redis_wait(tx->rds, rc->write_replicas, rc->write_timeout_ms, err, errlen);
	if (acked >= 0 && (unsigned)acked >= rc->write_replicas)
		return 0;
	if (acked >= 0)
		snprintf(err, errlen, "the change is on the Redis primary at %s, but only %d of %u "
		         "replicas confirmed it within %u ms (write_replicas); a failover now could "
		         "undo it: check the replicas (INFO replication), then that the change "
		         "holds (keyauthctl key list)", rc->address, acked, rc->write_replicas,
		         rc->write_timeout_ms);
	else {
		char why[256];

		snprintf(why, sizeof(why), "%s", err);
		snprintf(err, errlen, "the change is on the Redis primary at %s, but its "
		         "replication could not be checked (%s); a failover now could undo it",
		         rc->address, why);
	}
	return 1;
}

static void
redis_tx_end(struct ctl_tx *tx)
{
	store_redis_disconnect(tx->rds);
}

static const struct ctl_store_ops ctl_file_ops = { file_tx_begin, file_tx_commit, file_tx_end };
static const struct ctl_store_ops ctl_redis_ops = { redis_tx_begin, redis_tx_commit, redis_tx_end };

static const struct ctl_store_ops *
ctl_store(const struct conf *c)
{
	return c->store_redis != NULL ? &ctl_redis_ops : &ctl_file_ops;
}

/* The whole set, unlocked (the file is replaced by rename and redis writes
 * are atomic, so a reader sees the old store or the new one). */
static struct ks_set *
store_read(const struct conf *c, char *err, size_t errlen)
{
	struct redisContext *rds;
	struct ks_set *set;

	if (c->store_redis == NULL)
		return ks_set_load(c->store_path, NULL, err, errlen);
	rds = store_redis_connect(c->store_redis, err, errlen);
	if (rds == NULL)
		return NULL;
	set = store_redis_read(rds, c->store_redis->namespace, NULL, err, errlen);
	store_redis_disconnect(rds);
	return set;
}

/* store_edit_note's "written, but not confirmed by enough replicas". */
#define STORE_UNCONFIRMED 100

/* Runs <fn> as one locked read-modify-write of the store. Returns
 * CTL_EXIT_OK, CTL_EXIT_FAIL (messages printed), or STORE_UNCONFIRMED: the
 * change is written but fewer replicas than write_replicas confirmed it,
 * with the message for unconfirmed_print in <note> (<notelen> bytes), not
 * printed yet so that a command can first print the key it made. */
static int
store_edit_note(const struct ctl_ctx *ctx, const struct conf *c, ctl_edit_fn *fn, void *arg,
                char *note, size_t notelen)
{
	struct ctl_edit ed = { .ctx = ctx, .conf = c, .now = ctl_now(ctx) };
	const struct ctl_store_ops *ops = ctl_store(c);
	struct ctl_tx tx = { .c = c, .lock = -1 };
	struct ks_set *set;
	char err[1024];
	int locked, rc = CTL_EXIT_FAIL, r;

	err[0] = '\0';
	set = ops->begin(&tx, &locked, err, sizeof(err));
	if (!locked) {
		ctl_err(ctx, "cannot lock the key store: %s", err);
		if (c->store_redis == NULL)
			fprintf(stderr, "%s: check that the directory of %s exists and that this user "
			        "may write to it.\n", ctx->prog, c->store_path);
		else
			fprintf(stderr, "%s: check that Redis at %s is up and the store settings of "
			        "%s.\n", ctx->prog, c->store_redis->address, c->path);
		ops->end(&tx);
		return CTL_EXIT_FAIL;
	}
	if (set == NULL) {
		store_load_failed(ctx, c, err);
		goto out;
	}
	ed.set = set;
	for (size_t i = 0; i < ks_count(set); i++) {
		struct ks_entry *e = edit_append(&ed);

		if (e == NULL)
			goto out;
		*e = *ks_entry_at(set, i);
	}
	r = fn(&ed, arg);
	if (r == EDIT_FAIL)
		goto out;
	if (r == EDIT_NOCHANGE) {
		rc = CTL_EXIT_OK;
		goto out;
	}
	r = ops->commit(&tx, set, ed.v, ed.n, err, sizeof(err));
	if (r == -1) {
		ctl_err(ctx, "cannot write the key store: %s", err);
		fprintf(stderr, "%s: the store was not modified.\n", ctx->prog);
		goto out;
	}
	if (r == 1) {
		snprintf(note, notelen, "%s", err);
		rc = STORE_UNCONFIRMED;
		goto out;
	}
	rc = CTL_EXIT_OK;
out:
	free(ed.v);
	ks_set_unref(set);
	ops->end(&tx);
	return rc;
}

/* Prints store_edit_note's <note>; the exit code of an unconfirmed change. */
static int
unconfirmed_print(const struct ctl_ctx *ctx, const char *note)
{
	ctl_err(ctx, "%s", note);
	return CTL_EXIT_FAIL;
}

/* store_edit_note for commands that print nothing of their own first. */
static int
store_edit(const struct ctl_ctx *ctx, const struct conf *c, ctl_edit_fn *fn, void *arg)
{
	char note[1024];
	int rc = store_edit_note(ctx, c, fn, arg, note, sizeof(note));

	return rc == STORE_UNCONFIRMED ? unconfirmed_print(ctx, note) : rc;
}

/* A new key and entry for <route>/<owner>, appended to the working copy. The
 * key goes to <key> (KEY_GEN_MAX + 1 bytes). */
static struct ks_entry *
edit_new_key(struct ctl_edit *ed, const char *route, const char *owner, int64_t expires,
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
		if (ks_lookup(ed->set, digest) == NULL && edit_find(ed, id) == NULL)
			break;
		len = -1;
	}
	if (len < 0) {
		ctl_err(ed->ctx, "cannot generate a unique key");
		return NULL;
	}
	e = edit_append(ed);
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

/* ---- output ------------------------------------------------------------------ */

/* Prints a just-stored key: the key alone on stdout (or a JSON object that
 * includes it), the details on stderr. Returns CTL_EXIT_OK, or CTL_EXIT_FAIL
 * when stdout could not take it (the key is stored but lost). */
static int
print_new_key(const struct ctl_ctx *ctx, const char *key, const struct ks_entry *e,
              bool json, const char *note)
{
	char expires[32], rpm[16];
	int bad = 0;

	ctl_fmt_time(e->expires, expires, sizeof(expires));
	if (json) {
		bad = ctl_json_print(ctx, json_pack("{s:o,s:o,s:o,s:o,s:o,s:I,s:o}",
		    "id", ctl_json_text(e->id), "route", ctl_json_text(e->route),
		    "owner", ctl_json_text(e->owner), "created", ctl_json_time(e->created, false),
		    "expires", ctl_json_time(e->expires, true), "rpm", (json_int_t)e->rpm,
		    "key", ctl_json_text(key))) != CTL_EXIT_OK;
	} else {
		fputs(key, stdout);
		fputc('\n', stdout);
	}
	bad |= fflush(stdout) == EOF || ferror(stdout);
	fprintf(stderr, "Key id:  %s\nRoute:   %s\nOwner:   %s\nExpires: %s\nRPM:     %s\n",
	        e->id, e->route, e->owner[0] != '\0' ? e->owner : "-",
	        e->expires != 0 ? expires : "never", rpm_str(e->rpm, rpm, sizeof(rpm)));
	if (note != NULL)
		fprintf(stderr, "%s\n", note);
	if (bad) {
		ctl_err(ctx, "could not write the key to stdout; it is stored but lost: revoke it "
		        "with 'keyauthctl key revoke %s'", e->id);
		return CTL_EXIT_FAIL;
	}
	fprintf(stderr, "This key will not be shown again.\n");
	return CTL_EXIT_OK;
}

static json_t *
json_entry(const struct ks_entry *e, int64_t now)
{
	return json_pack("{s:o,s:o,s:o,s:o,s:o,s:o,s:I,s:s}", "id", ctl_json_text(e->id),
	                 "route", ctl_json_text(e->route), "owner", ctl_json_text(e->owner),
	                 "created", ctl_json_time(e->created, false),
	                 "expires", ctl_json_time(e->expires, true),
	                 "revoked", ctl_json_time(e->revoked, true),
	                 "rpm", (json_int_t)e->rpm, "status", entry_status(e, now));
}

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
	struct ks_entry *e = edit_new_key(ed, a->route, a->owner, a->expires, a->rpm,
	                                  a->key, sizeof(a->key));

	if (e == NULL)
		return EDIT_FAIL;
	keep_entry(&a->made, e);
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
	if (!owner_ok(a->owner)) {
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
	if (route_lookup(ctx, c, a->route) == NULL)
		goto out;
	/* Written but not confirmed by the replicas: the key is printed all
	 * the same (it is in the store), then the error, exit 1. */
	rc = store_edit_note(ctx, c, create_edit, a, note, sizeof(note));
	if (rc == CTL_EXIT_OK || rc == STORE_UNCONFIRMED) {
		int prc = print_new_key(ctx, a->key, &a->made.e, args->json, NULL);

		rc = rc == STORE_UNCONFIRMED ? unconfirmed_print(ctx, note) : prc;
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
	char err[1024];
	int rc;

	now = ctl_now(ctx);
	rc = CTL_EXIT_FAIL;
	c = ctl_conf_load(ctx);
	if (c == NULL)
		goto out;
	/* No lock: the file is replaced by rename, so a reader sees the old
	 * store or the new one. */
	err[0] = '\0';
	set = store_read(c, err, sizeof(err));
	if (set == NULL) {
		store_load_failed(ctx, c, err);
		goto out;
	}
	rows = calloc(ks_count(set) + 1, sizeof(*rows));
	if (rows == NULL)
		goto out;
	for (size_t i = 0; i < ks_count(set); i++) {
		const struct ks_entry *e = ks_entry_at(set, i);

		if (route != NULL && strcmp(e->route, route) != 0)
			continue;
		if (!o->all && strcmp(entry_status(e, now), "active") != 0)
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
			if (json_array_append_new(list, json_entry(rows[i], now)) == -1) {
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
			       cr, ex, entry_status(e, now), rpm_str(e->rpm, rpm, sizeof(rpm)));
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
	struct ks_entry *e = edit_find(ed, id);

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
		keep_entry(&a->old, e);
		return EDIT_NOCHANGE;
	}
	e->revoked = ed->now;
	keep_entry(&a->old, e);
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
	rc = store_edit(ctx, c, revoke_edit, &a);
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
	/* edit_new_key may move the array: keep an index, not the pointer. */
	oldi = (size_t)(old - ed->v);
	e = edit_new_key(ed, old->route, old->owner, a->new_expires,
	                 a->rpm_set ? a->rpm : old->rpm, a->key, sizeof(a->key));
	if (e == NULL)
		return EDIT_FAIL;
	keep_entry(&a->made, e);
	keep_entry(&a->old, &ed->v[oldi]);
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
	rc = store_edit_note(ctx, c, rotate_edit, a, unconfirmed, sizeof(unconfirmed));
	if (rc == CTL_EXIT_OK || rc == STORE_UNCONFIRMED) {
		int prc;

		ctl_fmt_time(a->old.e.expires, t, sizeof(t));
		snprintf(note, sizeof(note), "Old key %s stays valid until %s.", a->old.e.id, t);
		prc = print_new_key(ctx, a->key, &a->made.e, args->json, note);
		rc = rc == STORE_UNCONFIRMED ? unconfirmed_print(ctx, unconfirmed) : prc;
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
	} while (edit_find(ed, id) != NULL);
	e = edit_append(ed);
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
	if (!owner_ok(a.owner))
		return ctl_usage_err(ctx, "--owner: at most %d printable characters", KS_OWNER_MAX - 1);
	rc = expiry_from_opts(ctx, o->days, NULL, ctl_now(ctx), &a.expires);
	if (rc != 0)
		return rc;
	rc = CTL_EXIT_FAIL;
	c = ctl_conf_load(ctx);
	if (c == NULL)
		goto out;
	if (route_lookup(ctx, c, a.route) == NULL)
		goto out;
	r = read_stdin_key(ctx, key, sizeof(key), &len);
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
	rc = store_edit(ctx, c, import_edit, &a);
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
	char *key = NULL, err[1024], rpmbuf[16];
	size_t len = 0;
	int rc, r;

	if (route == NULL)
		return ctl_usage_err(ctx, "--route is required");
	rc = CTL_EXIT_FAIL;
	c = ctl_conf_load(ctx);
	if (c == NULL)
		goto out;
	err[0] = '\0';
	set = store_read(c, err, sizeof(err));
	if (set == NULL) {
		store_load_failed(ctx, c, err);
		goto out;
	}
	key = malloc(STDIN_MAX + 1);
	if (key == NULL)
		goto out;
	r = read_stdin_key(ctx, key, STDIN_MAX + 1, &len);
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
		       v.message != NULL ? v.message : "", rpm_str(v.rpm, rpmbuf, sizeof(rpmbuf)));
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
	keep_entry(&a->old, e);
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
	rc = store_edit(ctx, c, set_edit, &a);
	if (rc == CTL_EXIT_OK) {
		if (args->json) {
			rc = ctl_json_print(ctx, json_pack("{s:o,s:o,s:I,s:b}",
			    "id", ctl_json_text(a.old.e.id), "route", ctl_json_text(a.old.e.route),
			    "rpm", (json_int_t)a.old.e.rpm, "changed", !a.already));
		} else {
			printf("key %s (route %s): rpm %s%s\n", a.old.e.id, a.old.e.route,
			       rpm_str(a.old.e.rpm, rpm, sizeof(rpm)), a.already ? " (unchanged)" : "");
		}
	}
	conf_free(c);
	return rc;
}

static const struct option set_opts[] = { KEY_OPT_RPM, KEY_OPT_END };
KEY_CMD(set, CTL_OPERAND_ID, "change a key's settings (--rpm) live, by id");
