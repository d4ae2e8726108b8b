/* SPDX-License-Identifier: Apache-2.0 */
/*
 * ctl_keys_util: what every `keyauthctl key` command uses: the common
 * options, the key read from stdin (echo off on a terminal; buffers wiped),
 * route and owner checks, and the output of a new key and of an entry.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <termios.h>
#include <unistd.h>

#include "ctl_keys-int.h"

/* ---- helpers ---------------------------------------------------------------- */

const char *
key_entry_status(const struct ks_entry *e, int64_t now)
{
	if (e->revoked != 0)
		return "revoked";
	if (e->expires != 0 && now >= e->expires)
		return "expired";
	if (e->rotated_to[0] != '\0')
		return "grace";
	return "active";
}

bool
key_entry_usable(const struct ks_entry *e, int64_t now)
{
	return e->revoked == 0 && (e->expires == 0 || now < e->expires);
}

int
key_parse_span(const struct ctl_ctx *ctx, const char *opt, const char *s, int64_t *out)
{
	static const struct { char unit; int64_t secs; } units[] = {
		{ 's', 1 }, { 'm', 60 }, { 'h', 3600 }, { 'd', 86400 }, { 'w', 7 * 86400 },
	};
	size_t len = strlen(s);
	unsigned long n;
	char num[16];

	if (len >= 2 && len - 1 < sizeof(num)) {
		memcpy(num, s, len - 1);
		num[len - 1] = '\0';
		for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++)
			if (s[len - 1] == units[i].unit && num[0] >= '0' && num[0] <= '9' &&
			    ctl_parse_uint(num, 0, (unsigned long)(100LL * 365 * 86400 / units[i].secs),
			                   &n) == 0) {
				*out = (int64_t)n * units[i].secs;
				return 0;
			}
	}
	return ctl_usage_err(ctx, "%s: '%s' is not a duration (N followed by s, m, h, d or w, "
	                     "e.g. 30d, 2w; at most 100 years)", opt, s);
}

int
key_routes_check(const struct ctl_ctx *ctx, const struct conf *c, const struct key_opts *o)
{
	for (size_t i = 0; i < o->nroutes; i++)
		if (key_route_lookup(ctx, c, o->routes[i]) == NULL)
			return CTL_EXIT_USAGE;
	return 0;
}

void
key_routes_join(const struct key_opts *o, char *buf, size_t len)
{
	size_t used = 0;

	buf[0] = '\0';
	for (size_t i = 0; i < o->nroutes && used < len; i++)
		used += (size_t)snprintf(buf + used, len - used, "%s%s", i ? "," : "", o->routes[i]);
}

bool
key_entry_has_tagkv(const struct ks_entry *e, const char *kv)
{
	const char *eq = strchr(kv, '='), *v;
	char name[KS_TAG_KEY_MAX + 1];
	size_t vl;

	if (eq == NULL || (size_t)(eq - kv) > KS_TAG_KEY_MAX)
		return false;
	memcpy(name, kv, (size_t)(eq - kv));
	name[eq - kv] = '\0';
	return ks_entry_tag(e, name, &v, &vl) && vl == strlen(eq + 1) &&
	       memcmp(v, eq + 1, vl) == 0;
}

/* Owner labels end up in logs, JSON and HAProxy variables: printable text
 * only, bounded. */
bool
key_owner_ok(const char *s)
{
	size_t n = strlen(s);

	if (n >= KS_OWNER_MAX)
		return false;
	for (const unsigned char *p = (const unsigned char *)s; *p != '\0'; p++)
		if (*p < 0x20 || *p == 0x7f)
			return false;
	return true;
}

const struct route *
key_route_lookup(const struct ctl_ctx *ctx, const struct conf *c, const char *name)
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

/* Reads one key from stdin into <buf> (capacity <cap>, NUL-terminated).
 * One trailing "\n" (or "\r\n") is removed. On a terminal, echo is off and
 * one line is read. Returns 0, 1 when the input exceeds <cap> - 1 bytes, -1
 * on a read error. */
int
key_read_stdin(const struct ctl_ctx *ctx, char *buf, size_t cap, size_t *len)
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

void
key_keep_entry(struct kept_entry *k, const struct ks_entry *e)
{
	k->e = *e;
	snprintf(k->route, sizeof(k->route), "%s", e->route);
	snprintf(k->routes, sizeof(k->routes), "%s", ks_entry_routes(e));
	snprintf(k->owner, sizeof(k->owner), "%s", e->owner);
	snprintf(k->alias, sizeof(k->alias), "%s", e->alias != NULL ? e->alias : "");
	snprintf(k->tags, sizeof(k->tags), "%s", e->tags != NULL ? e->tags : "");
	k->e.route = k->route;
	k->e.routes = k->routes;
	k->e.owner = k->owner;
	k->e.alias = k->alias;
	k->e.tags = k->tags;
}

/* --rpm N: 0..CONF_MAX_RPM requests per minute, 0 = no limit of the key's own
 * (the route's rate_limit_rpm, if any, then applies). */
int
key_parse_rpm(const struct ctl_ctx *ctx, const char *s, uint32_t *out)
{
	unsigned long v;

	if (ctl_parse_uint(s, 0, CONF_MAX_RPM, &v) == -1)
		return ctl_usage_err(ctx, "--rpm: '%s' is not a number of requests per minute "
		                     "between 0 (no limit) and %d", s, CONF_MAX_RPM);
	*out = (uint32_t)v;
	return 0;
}

/* "60" or "-" for tables and messages. */
const char *
key_rpm_str(uint32_t rpm, char *buf, size_t len)
{
	if (rpm == 0)
		return "-";
	snprintf(buf, len, "%u", (unsigned)rpm);
	return buf;
}

/* ---- options ------------------------------------------------------------------- */

void
key_opts_init(void *opts)
{
	struct key_opts *o = opts;

	o->owner = "";
	o->grace = CTL_DEFAULT_GRACE;
}

/* --tag K=V: a valid tag whose name was not given yet, added to o->tags. */
static int
key_opt_tag(const struct ctl_ctx *ctx, struct key_opts *o, const char *arg)
{
	const char *eq = strchr(arg, '=');
	size_t used = strlen(o->tags), kl;
	char why[160];

	if (eq == NULL)
		return ctl_usage_err(ctx, "--tag: '%s' is not NAME=VALUE", arg);
	kl = (size_t)(eq - arg);
	if (ks_tag_check(arg, kl, eq + 1, strlen(eq + 1), why, sizeof(why)) == -1)
		return ctl_usage_err(ctx, "--tag: %s", why);
	for (const char *p = o->tags; *p != '\0'; ) {
		const char *c = strchr(p, ',');

		if (strncmp(p, arg, kl + 1) == 0)
			return ctl_usage_err(ctx, "--tag: '%.*s' is given twice", (int)kl, arg);
		if (c == NULL)
			break;
		p = c + 1;
	}
	if (o->ntags == KS_TAGS_MAX)
		return ctl_usage_err(ctx, "at most %d tags per key", KS_TAGS_MAX);
	snprintf(o->tags + used, sizeof(o->tags) - used, "%s%s", used ? "," : "", arg);
	o->ntags++;
	return 0;
}

int
key_opt(struct ctl_ctx *ctx, void *opts, int opt, const char *arg)
{
	struct key_opts *o = opts;

	switch (opt) {
	case 'r':
		for (size_t i = 0; i < o->nroutes; i++)
			if (strcmp(o->routes[i], arg) == 0)
				return ctl_usage_err(ctx, "--route '%s' is given twice", arg);
		if (o->nroutes == KS_ROUTES_MAX)
			return ctl_usage_err(ctx, "at most %d routes per key", KS_ROUTES_MAX);
		o->routes[o->nroutes++] = arg;
		if (o->route == NULL)
			o->route = arg;
		break;
	case 'o': o->owner = arg; o->owner_set = true; break;
	case 'A': {
		char why[160];

		if (arg[0] != '\0' && ks_alias_check(arg, strlen(arg), why, sizeof(why)) == -1)
			return ctl_usage_err(ctx, "--alias: %s", why);
		o->alias = arg;
		break;
	}
	case 't': return key_opt_tag(ctx, o, arg);
	case 'u': {
		char why[160];

		if (ks_tag_check(arg, strlen(arg), "", 0, why, sizeof(why)) == -1)
			return ctl_usage_err(ctx, "--untag: %s", why);
		if (o->nuntags == KS_TAGS_MAX)
			return ctl_usage_err(ctx, "at most %d --untag", KS_TAGS_MAX);
		o->untags[o->nuntags++] = arg;
		break;
	}
	case 'S': {
		uint32_t bit = ks_scope_bit(arg, strlen(arg));

		if (bit == 0)
			return ctl_usage_err(ctx, "--scope: '%s' is not a scope (read, write or "
			                     "deploy)", arg);
		if (o->scopes & bit)
			return ctl_usage_err(ctx, "--scope '%s' is given twice", arg);
		o->scopes |= bit;
		o->scopes_set = true;
		break;
	}
	case 'N': o->no_expiry = true; break;
	case 'F': o->out = arg; break;
	case 'W':
		o->expiring_set = true;
		return key_parse_span(ctx, "--expiring-within", arg, &o->expiring_within);
	case 'U':
		o->unused_set = true;
		return key_parse_span(ctx, "--unused-for", arg, &o->unused_for);
	case 'O':
		o->older_set = true;
		return key_parse_span(ctx, "--older-than", arg, &o->older_than);
	case 'y': o->yes = true; break;
	case 'n': o->dry_run = true; break;
	case 'd': o->days = arg; break;
	case 'e': o->date = arg; break;
	case 'a': o->all = true; break;
	case 'p':
		o->rpm_set = true;
		return key_parse_rpm(ctx, arg, &o->rpm);
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

/* ---- output ------------------------------------------------------------------ */

/* Prints a just-stored key: the key alone on stdout (or a JSON object that
 * includes it), the details on stderr. Returns CTL_EXIT_OK, or CTL_EXIT_FAIL
 * when stdout could not take it (the key is stored but lost). */
int
key_out_open(const struct ctl_ctx *ctx, const char *path)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);

	if (fd == -1) {
		ctl_err(ctx, "--out %s: %s%s", path, strerror(errno),
		        errno == EEXIST ? " (the key goes only to a new file: remove it or "
		        "choose another name)" : "");
		return -1;
	}
	if (fchmod(fd, 0600) == -1) {   /* exactly 0600, whatever the umask */
		ctl_err(ctx, "--out %s: %s", path, strerror(errno));
		close(fd);
		unlink(path);
		return -1;
	}
	return fd;
}

/* The key and a newline to <fd>, synced, closed: 0 or -1. */
static int
key_write_fd(int fd, const char *key)
{
	size_t len = strlen(key), off = 0;
	int bad = 0;

	while (off < len + 1 && !bad) {
		ssize_t w = off < len ? write(fd, key + off, len - off) : write(fd, "\n", 1);

		if (w < 0 && errno == EINTR)
			continue;
		bad = w <= 0;
		off += w > 0 ? (size_t)w : 0;
	}
	bad |= fsync(fd) == -1;
	bad |= close(fd) == -1;
	return bad ? -1 : 0;
}

/* <j> with the rest of <e>'s list entry (routes, alias, tags, scopes, ...):
 * what keyauth-admin answers for a created key, from one place. */
static json_t *
key_json_with_entry(const struct ctl_ctx *ctx, json_t *j, const struct ks_entry *e)
{
	json_t *full = key_json_entry(e, ctl_now(ctx));

	if (j != NULL && full != NULL)
		json_object_update_missing(j, full);
	json_decref(full);
	return j;
}

int
key_print_new(const struct ctl_ctx *ctx, const char *key, const struct ks_entry *e,
              bool json, const char *note, int out_fd, const char *out_path)
{
	char expires[32], rpm[16];
	int bad = 0;

	ctl_fmt_time(e->expires, expires, sizeof(expires));
	if (out_fd >= 0) {
		if (key_write_fd(out_fd, key) == -1) {
			ctl_err(ctx, "could not write the key to %s: %s; it is stored but lost: "
			        "revoke it with 'keyauthctl key revoke %s'", out_path,
			        strerror(errno), e->id);
			return CTL_EXIT_FAIL;
		}
		if (json)
			bad = ctl_json_print(ctx, key_json_with_entry(ctx, json_pack("{s:o,s:o,s:o,s:o,s:o,s:I,s:o}",
			    "id", ctl_json_text(e->id), "route", ctl_json_text(e->route),
			    "owner", ctl_json_text(e->owner),
			    "created", ctl_json_time(e->created, false),
			    "expires", ctl_json_time(e->expires, true), "rpm", (json_int_t)e->rpm,
			    "key_file", ctl_json_text(out_path)), e)) != CTL_EXIT_OK;
	} else if (json) {
		bad = ctl_json_print(ctx, key_json_with_entry(ctx, json_pack("{s:o,s:o,s:o,s:o,s:o,s:I,s:o}",
		    "id", ctl_json_text(e->id), "route", ctl_json_text(e->route),
		    "owner", ctl_json_text(e->owner), "created", ctl_json_time(e->created, false),
		    "expires", ctl_json_time(e->expires, true), "rpm", (json_int_t)e->rpm,
		    "key", ctl_json_text(key)), e)) != CTL_EXIT_OK;
	} else {
		fputs(key, stdout);
		fputc('\n', stdout);
	}
	bad |= fflush(stdout) == EOF || ferror(stdout);
	fprintf(stderr, "Key id:  %s\nRoute:   %s\nOwner:   %s\nExpires: %s\nRPM:     %s\n",
	        e->id, e->route, e->owner[0] != '\0' ? e->owner : "-",
	        e->expires != 0 ? expires : "never", key_rpm_str(e->rpm, rpm, sizeof(rpm)));
	if (out_fd >= 0)
		fprintf(stderr, "Key file: %s (mode 0600)\n", out_path);
	if (note != NULL)
		fprintf(stderr, "%s\n", note);
	if (bad && out_fd >= 0)
		return CTL_EXIT_FAIL;
	if (bad) {
		ctl_err(ctx, "could not write the key to stdout; it is stored but lost: revoke it "
		        "with 'keyauthctl key revoke %s'", e->id);
		return CTL_EXIT_FAIL;
	}
	fprintf(stderr, "This key will not be shown again.\n");
	return CTL_EXIT_OK;
}

static json_t *
key_json_routes(const struct ks_entry *e)
{
	json_t *a = json_array();
	const char *p = ks_entry_routes(e), *c;

	for (; a != NULL; p = c + 1) {
		char name[KS_ROUTE_MAX + 1];
		size_t len;

		c = strchr(p, ',');
		len = c != NULL ? (size_t)(c - p) : strlen(p);
		snprintf(name, sizeof(name), "%.*s", (int)len, p);
		json_array_append_new(a, ctl_json_text(name));
		if (c == NULL)
			break;
	}
	return a;
}

static json_t *
key_json_tags(const struct ks_entry *e)
{
	json_t *o = json_object();
	const char *p = e->tags, *c;

	for (; o != NULL && p != NULL && *p != '\0'; p = c + 1) {
		char item[KS_TAG_KEY_MAX + KS_TAG_VAL_MAX + 2], *eq;

		c = strchr(p, ',');
		snprintf(item, sizeof(item), "%.*s", (int)(c != NULL ? (size_t)(c - p) : strlen(p)), p);
		if ((eq = strchr(item, '=')) != NULL) {
			*eq = '\0';
			json_object_set_new(o, item, ctl_json_text(eq + 1));
		}
		if (c == NULL)
			break;
	}
	return o;
}

json_t *
key_json_entry(const struct ks_entry *e, int64_t now)
{
	json_t *o = json_pack("{s:o,s:o,s:o,s:o,s:o,s:o,s:o,s:I,s:s,s:o,s:o,s:o,s:o}",
	                 "id", ctl_json_text(e->id), "route", ctl_json_text(e->route),
	                 "routes", key_json_routes(e), "owner", ctl_json_text(e->owner),
	                 "created", ctl_json_time(e->created, false),
	                 "expires", ctl_json_time(e->expires, true),
	                 "revoked", ctl_json_time(e->revoked, true),
	                 "rpm", (json_int_t)e->rpm, "status", key_entry_status(e, now),
	                 "alias", ctl_json_text(e->alias != NULL && e->alias[0] ? e->alias : NULL),
	                 "tags", key_json_tags(e),
	                 "rotated_from", ctl_json_text(e->rotated_from[0] ? e->rotated_from : NULL),
	                 "rotated_to", ctl_json_text(e->rotated_to[0] ? e->rotated_to : NULL));

	if (o != NULL)
		json_object_set_new(o, "scopes", key_json_scopes(e->scopes));
	return o;
}

json_t *
key_json_entry_usage(const struct ks_entry *e, int64_t now, uint64_t requests, int64_t last_used)
{
	json_t *o = key_json_entry(e, now);

	if (o != NULL) {
		json_object_set_new(o, "requests", json_integer((json_int_t)requests));
		json_object_set_new(o, "last_used", ctl_json_time(last_used, true));
	}
	return o;
}

int
key_make(const struct ctl_ctx *ctx, const struct conf *c, const struct key_opts *o, bool json,
         ctl_edit_fn *fn, void *arg, const char *key, const struct ks_entry *made,
         void (*note_fn)(const void *arg, char *buf, size_t len))
{
	char unconfirmed[1024], note[256] = "";
	int rc, prc, out_fd = -1;

	if (o->out != NULL && (out_fd = key_out_open(ctx, o->out)) == -1)
		return CTL_EXIT_FAIL;
	/* Written but not confirmed by the replicas: the key is printed all
	 * the same (it is in the store), then the error, exit 1. */
	rc = key_store_edit_note(ctx, c, fn, arg, unconfirmed, sizeof(unconfirmed));
	if (rc != CTL_EXIT_OK && rc != STORE_UNCONFIRMED) {
		if (out_fd >= 0) {       /* nothing was created: no empty key file left */
			close(out_fd);
			unlink(o->out);
		}
		return rc;
	}
	if (note_fn != NULL)
		note_fn(arg, note, sizeof(note));
	prc = key_print_new(ctx, key, made, json, note_fn != NULL ? note : NULL, out_fd, o->out);
	return rc == STORE_UNCONFIRMED ? key_unconfirmed_print(ctx, unconfirmed) : prc;
}

bool
key_labels_match(const struct key_opts *o, const struct ks_entry *e)
{
	if (o->owner_set && strcmp(e->owner, o->owner) != 0)
		return false;
	for (const char *p = o->tags; *p != '\0'; ) {
		char kv[KS_TAG_KEY_MAX + KS_TAG_VAL_MAX + 2];
		const char *c = strchr(p, ',');

		snprintf(kv, sizeof(kv), "%.*s", (int)(c != NULL ? (size_t)(c - p) : strlen(p)), p);
		if (!key_entry_has_tagkv(e, kv))
			return false;
		if (c == NULL)
			break;
		p = c + 1;
	}
	return true;
}
