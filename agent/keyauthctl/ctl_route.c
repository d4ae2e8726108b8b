/* SPDX-License-Identifier: Apache-2.0 */
/*
 * ctl_route: `keyauthctl route list|show|set`, the route security edits kept
 * in route_overrides (conf.h, conf_overrides.c), never in keyauth.conf.
 *
 * An edit is pending until `keyauthctl deploy` renders HAProxy's files with
 * it and promotes <path>.pending to <path> (ctl_ovr_promote), so that
 * HAProxy and keyauthd switch together. Every edit runs under flock(2) on
 * <path>.lock, which deploy holds too: two edits never lose one another, and
 * a deploy promotes exactly what it rendered. An edit is validated by loading
 * the configuration with the candidate file (the config file's own parsers,
 * so the same messages) before it replaces <path>.pending.
 *
 * ETag: the first 32 hex digits of SHA-256 over the route's effective
 * settings (pending edits included) as canonical JSON: it changes with any
 * edit, through keyauthctl or a hand edit of keyauth.conf, with no counter
 * to keep.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

#include <libconfig.h>
#include <openssl/evp.h>

#include "conf.h"
#include "ctl.h"
#include "ctl_audit.h"

#define OVR_HEADER "# Written by keyauthctl: change it with \"keyauthctl route set\", not by hand.\n"
#define OVR_CANDIDATE ".candidate"
#define OVR_LOCK ".lock"

/* ---- loading with the overrides -------------------------------------------- */

/* conf_load_opts, printing every error as ctl_conf_load does. */
static struct conf *
ovr_conf_load(const struct ctl_ctx *ctx, const struct conf_load_opts *o, char *err, size_t len)
{
	struct conf *c;

	err[0] = '\0';
	c = conf_load_opts(ctx->conf_path, o, err, len);
	if (c == NULL)
		fprintf(stderr, "%s: configuration %s is not valid:\n%s\n", ctx->prog,
		        ctx->conf_path, err[0] != '\0' ? err : "(no details)");
	return c;
}

static int
ovr_lock(const struct ctl_ctx *ctx, const char *path)
{
	char lp[PATH_MAX];
	int fd;

	snprintf(lp, sizeof(lp), "%s" OVR_LOCK, path);
	fd = open(lp, O_RDONLY | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0644);
	if (fd == -1 || flock(fd, LOCK_EX) == -1) {
		ctl_err(ctx, "cannot lock %s: %s", lp, strerror(errno));
		if (fd != -1)
			close(fd);
		return -1;
	}
	return fd;
}

int
ctl_ovr_open(const struct ctl_ctx *ctx, struct ctl_ovr_state *s, bool lock)
{
	struct conf_load_opts po = { .pending = true };
	char *err = malloc(8192);

	memset(s, 0, sizeof(*s));
	s->lockfd = -1;
	if (err == NULL) {
		ctl_err(ctx, "out of memory");
		return -1;
	}
	s->applied = ovr_conf_load(ctx, NULL, err, 8192);
	if (s->applied != NULL && s->applied->overrides != NULL && lock) {
		s->lockfd = ovr_lock(ctx, s->applied->overrides->path);
		/* again, under the lock: what deploy renders is what it promotes */
		conf_free(s->applied);
		s->applied = s->lockfd == -1 ? NULL : ovr_conf_load(ctx, NULL, err, 8192);
	}
	if (s->applied != NULL)
		s->pending = s->applied->overrides == NULL ? s->applied : ovr_conf_load(ctx, &po, err, 8192);
	free(err);
	if (s->pending == NULL) {
		ctl_ovr_close(s);
		return -1;
	}
	return 0;
}

void
ctl_ovr_close(struct ctl_ovr_state *s)
{
	if (s->pending != s->applied)
		conf_free(s->pending);
	conf_free(s->applied);
	s->pending = s->applied = NULL;
	if (s->lockfd != -1)
		close(s->lockfd);
	s->lockfd = -1;
}

/* ---- a route as JSON, its ETag -------------------------------------------------- */

static json_t *
route_carriers(const struct route *r)
{
	json_t *a = json_array();
	char buf[96];

	for (unsigned i = 0; a != NULL && i < r->ncarriers; i++)
		json_array_append_new(a, json_string(carrier_str(&r->carriers[i], buf, sizeof(buf))));
	return a;
}

void
ctl_route_etag(const struct route *r, char out[CTL_ETAG_LEN + 1])
{
	json_t *v = json_pack("{s:s,s:o,s:s,s:s,s:I}", "name", r->name, "carriers", route_carriers(r),
	                      "key_name", r->key_name ? r->key_name : "", "key_location",
	                      key_location_str(r->key_location), "rate_limit_rpm",
	                      (json_int_t)r->rate_limit_rpm);
	char *text = v != NULL ? json_dumps(v, JSON_SORT_KEYS | JSON_COMPACT) : NULL;
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned mdlen = 0;

	out[0] = '\0';
	if (text != NULL && EVP_Digest(text, strlen(text), md, &mdlen, EVP_sha256(), NULL) == 1)
		for (unsigned i = 0; i < CTL_ETAG_LEN / 2 && i < mdlen; i++)
			snprintf(out + 2 * i, 3, "%02x", md[i]);
	free(text);
	json_decref(v);
}

/* True when the route named like <r> differs between applied and pending. */
static bool
route_pending(const struct ctl_ovr_state *s, const struct route *r)
{
	const struct route *a = conf_route_find(s->applied, r->name, r->name_len);
	char e1[CTL_ETAG_LEN + 1], e2[CTL_ETAG_LEN + 1];

	if (a == NULL || s->applied == s->pending)
		return false;
	ctl_route_etag(a, e1);
	ctl_route_etag(r, e2);
	return strcmp(e1, e2) != 0;
}

static json_t *
route_json(const struct ctl_ovr_state *s, const struct route *r)
{
	char etag[CTL_ETAG_LEN + 1];
	json_t *m = json_array();

	for (unsigned i = 0; m != NULL && i < ROUTE_M_ENTRIES; i++)
		if (r->methods & (1u << i))
			json_array_append_new(m, json_string(route_method_str((enum route_method)i)));
	ctl_route_etag(r, etag);
	return json_pack("{s:o,s:o,s:s,s:{s:o,s:s},s:o,s:I,s:o,s:s,s:b}",
	                 "name", ctl_json_text(r->name), "context", ctl_json_text(r->context),
	                 "provider", r->provider->name,
	                 "security", "key_name", ctl_json_text(r->key_name),
	                 "key_location", key_location_str(r->key_location),
	                 "carriers", route_carriers(r), "rate_limit_rpm", (json_int_t)r->rate_limit_rpm,
	                 "methods", m, "etag", etag, "pending", route_pending(s, r));
}

json_t *
ctl_ovr_pending_routes(const struct ctl_ovr_state *s)
{
	json_t *a = json_array();

	for (unsigned i = 0; a != NULL && i < s->pending->nroutes; i++)
		if (route_pending(s, &s->pending->routes[i]))
			json_array_append_new(a, ctl_json_text(s->pending->routes[i].name));
	return a;
}

/* Warns about overrides of routes keyauth.conf no longer has. */
static void
ovr_orphans_warn(const struct ctl_ctx *ctx, const struct conf *c)
{
	const struct conf_overrides *ov = c->overrides;

	for (unsigned i = 0; ov != NULL && i < ov->norphans; i++)
		fprintf(stderr, "%s: warning: %s overrides route \"%s\", which %s no longer has: "
		        "ignored (drop it with keyauthctl route set %s --reset)\n", ctx->prog,
		        ov->read, ov->orphans[i], c->path, ov->orphans[i]);
}

/* ---- route list / route show ----------------------------------------------------- */

static void
route_print(const struct ctl_ovr_state *s, const struct route *r, bool full)
{
	char etag[CTL_ETAG_LEN + 1], buf[96];

	ctl_route_etag(r, etag);
	if (!full) {
		printf("%-16s %-20s %-10s ", r->name, r->context, r->provider->name);
		for (unsigned i = 0; i < r->ncarriers; i++)
			printf("%s%s", i ? "," : "", carrier_str(&r->carriers[i], buf, sizeof(buf)));
		printf(" %u %s%s\n", r->rate_limit_rpm, etag, route_pending(s, r) ? " pending" : "");
		return;
	}
	printf("name: %s\ncontext: %s\nprovider: %s\nkey_name: %s\nkey_location: %s\ncarriers:",
	       r->name, r->context, r->provider->name, r->key_name,
	       key_location_str(r->key_location));
	for (unsigned i = 0; i < r->ncarriers; i++)
		printf(" %s", carrier_str(&r->carriers[i], buf, sizeof(buf)));
	printf("\nrate_limit_rpm: %u%s\nmethods:", r->rate_limit_rpm,
	       r->rate_limit_rpm ? "" : " (none)");
	for (unsigned i = 0; i < ROUTE_M_ENTRIES; i++)
		if (r->methods & (1u << i))
			printf(" %s", route_method_str((enum route_method)i));
	printf("\netag: %s\npending: %s\n", etag, route_pending(s, r) ? "yes (keyauthctl deploy "
	       "applies it)" : "no");
}

static int
route_read(struct ctl_ctx *ctx, const struct ctl_args *a, bool one)
{
	const char *name = a->id;
	struct ctl_ovr_state s;
	json_t *out = NULL;
	int rc = CTL_EXIT_OK;

	if (ctl_ovr_open(ctx, &s, false) == -1)
		return CTL_EXIT_FAIL;
	ovr_orphans_warn(ctx, s.pending);
	if (one) {
		const struct route *r = conf_route_find(s.pending, name, strlen(name));

		if (r == NULL) {
			ctl_err(ctx, "no route \"%s\" in %s (keyauthctl route list shows them)", name,
			        s.pending->path);
			rc = CTL_EXIT_NOTFOUND;
		} else if (a->json) {
			rc = ctl_json_print(ctx, route_json(&s, r));
		} else {
			route_print(&s, r, true);
		}
	} else if (a->json) {
		out = json_array();
		for (unsigned i = 0; out != NULL && i < s.pending->nroutes; i++)
			json_array_append_new(out, route_json(&s, &s.pending->routes[i]));
		rc = ctl_json_print(ctx, json_pack("{s:o}", "routes", out));
	} else {
		printf("%-16s %-20s %-10s CARRIERS RPM ETAG [PENDING]\n", "NAME", "CONTEXT", "PROVIDER");
		for (unsigned i = 0; i < s.pending->nroutes; i++)
			route_print(&s, &s.pending->routes[i], false);
	}
	ctl_ovr_close(&s);
	return rc;
}

static int route_list_run(struct ctl_ctx *ctx, const struct ctl_args *a) { return route_read(ctx, a, false); }
static int route_show_run(struct ctl_ctx *ctx, const struct ctl_args *a) { return route_read(ctx, a, true); }

/* ---- route set ---------------------------------------------------------------------- */

struct route_opts {
	const char *key_name, *key_location, *rpm, *if_match;
	const char *carriers[ROUTE_MAX_CARRIERS];
	unsigned ncarriers;
	bool too_many, reset;
};

static int
route_opt(struct ctl_ctx *ctx, void *opts, int opt, const char *arg)
{
	struct route_opts *o = opts;

	switch (opt) {
	case 'n': o->key_name = arg; break;
	case 'l': o->key_location = arg; break;
	case 'r': o->rpm = arg; break;
	case 'm': o->if_match = arg; break;
	case 'R': o->reset = true; break;
	case 'C':
		if (o->ncarriers == ROUTE_MAX_CARRIERS)
			return ctl_usage_err(ctx, "too many --carrier (at most %d)", ROUTE_MAX_CARRIERS);
		o->carriers[o->ncarriers++] = arg;
		break;
	default:
		return ctl_usage_err(ctx, "unexpected option");
	}
	return 0;
}

/* The entry of <name> in <routes>, or NULL. */
static config_setting_t *
ovr_entry(config_setting_t *routes, const char *name, unsigned *idx)
{
	for (unsigned i = 0; i < (unsigned)config_setting_length(routes); i++) {
		config_setting_t *e = config_setting_get_elem(routes, i);
		const char *nm = NULL;

		if (config_setting_lookup_string(e, "name", &nm) == CONFIG_TRUE && strcmp(nm, name) == 0) {
			*idx = i;
			return e;
		}
	}
	return NULL;
}

static int
ovr_set_str(config_setting_t *g, const char *name, const char *v)
{
	config_setting_t *s = config_setting_add(g, name, CONFIG_TYPE_STRING);

	return s != NULL && config_setting_set_string(s, v) == CONFIG_TRUE ? 0 : -1;
}

/* Applies <o> to <r>'s entry in <cfg>. 0 or -1 (out of memory). */
static int
ovr_edit(config_t *cfg, const struct route *r, const struct route_opts *o, long long rpm)
{
	config_setting_t *root = config_root_setting(cfg), *routes, *e, *sec, *s;
	unsigned idx = 0;

	if (config_setting_get_member(root, "version") == NULL &&
	    config_setting_set_int(config_setting_add(root, "version", CONFIG_TYPE_INT), 1) != CONFIG_TRUE)
		return -1;
	routes = config_setting_get_member(root, "routes");
	if (routes == NULL && (routes = config_setting_add(root, "routes", CONFIG_TYPE_LIST)) == NULL)
		return -1;
	e = ovr_entry(routes, r->name, &idx);
	if (e != NULL && o->reset) {
		config_setting_remove_elem(routes, idx);
		e = NULL;
	}
	if (e == NULL && (o->ncarriers || o->key_name || o->key_location || o->rpm)) {
		e = config_setting_add(routes, NULL, CONFIG_TYPE_GROUP);
		if (e == NULL || ovr_set_str(e, "name", r->name) == -1)
			return -1;
	}
	if (o->ncarriers || o->key_name || o->key_location) {
		config_setting_remove(e, "security");
		sec = config_setting_add(e, "security", CONFIG_TYPE_GROUP);
		if (sec == NULL)
			return -1;
		if (o->ncarriers) {
			s = config_setting_add(sec, "carriers", CONFIG_TYPE_ARRAY);
			for (unsigned i = 0; s != NULL && i < o->ncarriers; i++)
				if (config_setting_set_string_elem(s, -1, o->carriers[i]) == NULL)
					return -1;
			if (s == NULL)
				return -1;
		} else if (ovr_set_str(sec, "key_name", o->key_name ? o->key_name : r->key_name) == -1 ||
		           ovr_set_str(sec, "key_location", o->key_location ? o->key_location :
		                       key_location_str(r->key_location)) == -1) {
			return -1;
		}
	}
	if (o->rpm) {
		config_setting_remove(e, "rate_limit_rpm");
		s = config_setting_add(e, "rate_limit_rpm", rpm == (int)rpm ? CONFIG_TYPE_INT :
		                       CONFIG_TYPE_INT64);
		if (s == NULL || config_setting_set_int64(s, rpm) != CONFIG_TRUE)
			return -1;
	}
	return 0;
}

/* <cfg> as the file's text, header first (a new buffer). */
static char *
ovr_text(config_t *cfg, size_t *len)
{
	char *buf = NULL;
	size_t n = 0;
	FILE *f = open_memstream(&buf, &n);

	if (f == NULL)
		return NULL;
	fputs(OVR_HEADER, f);
	config_write(cfg, f);
	if (fclose(f) != 0) {
		free(buf);
		return NULL;
	}
	*len = n;
	return buf;
}

/* Every occurrence of <from> in <s> printed as <to>, on stderr. */
static void
print_replaced(const char *s, const char *from, const char *to)
{
	size_t fl = strlen(from);
	const char *p;

	while ((p = strstr(s, from)) != NULL) {
		fprintf(stderr, "%.*s%s", (int)(p - s), s, to);
		s = p + fl;
	}
	fprintf(stderr, "%s\n", s);
}

/* Audit fields old -> new of what an edit changed. */
static json_t *
route_diff(const struct route *o, const struct route *n)
{
	json_t *f = json_object(), *oc = route_carriers(o), *nc = route_carriers(n);

	if (strcmp(o->key_name, n->key_name) != 0)
		json_object_set_new(f, "key_name", json_pack("{s:s,s:s}", "old", o->key_name,
		                                             "new", n->key_name));
	if (o->key_location != n->key_location)
		json_object_set_new(f, "key_location", json_pack("{s:s,s:s}", "old",
		                    key_location_str(o->key_location), "new",
		                    key_location_str(n->key_location)));
	if (!json_equal(oc, nc))
		json_object_set_new(f, "carriers", json_pack("{s:O,s:O}", "old", oc, "new", nc));
	if (o->rate_limit_rpm != n->rate_limit_rpm)
		json_object_set_new(f, "rate_limit_rpm", json_pack("{s:I,s:I}",
		                    "old", (json_int_t)o->rate_limit_rpm,
		                    "new", (json_int_t)n->rate_limit_rpm));
	json_decref(oc);
	json_decref(nc);
	return f;
}

/* Writes <text> as the candidate beside <path>, validates the configuration
 * with it, and makes it <path>.pending. Returns 0, CTL_EXIT_USAGE (invalid:
 * said why, nothing changed) or CTL_EXIT_FAIL. <after> gets the conf loaded
 * with it. */
static int
ovr_commit(const struct ctl_ctx *ctx, const char *path, const char *text, size_t len,
           struct conf **after)
{
	char dir[PATH_MAX], base[NAME_MAX + 1], cand[PATH_MAX + 32], pend[PATH_MAX + 32];
	char *err = malloc(8192), *slash;
	struct conf_load_opts o = { .overrides = cand };
	int dfd;

	if (err == NULL)
		return CTL_EXIT_FAIL;
	snprintf(dir, sizeof(dir), "%s", path);
	slash = strrchr(dir, '/');
	snprintf(base, sizeof(base), "%s" OVR_CANDIDATE, slash + 1);
	*(slash == dir ? slash + 1 : slash) = '\0';
	snprintf(cand, sizeof(cand), "%s" OVR_CANDIDATE, path);
	snprintf(pend, sizeof(pend), "%s" CONF_OVR_PENDING, path);
	if (ctl_write_atomic(dir, base, text, len, 0644, err, 8192) == -1) {
		ctl_err(ctx, "%s; nothing was changed", err);
		free(err);
		return CTL_EXIT_FAIL;
	}
	err[0] = '\0';
	*after = conf_load_opts(ctx->conf_path, &o, err, 8192);
	if (*after == NULL) {
		unlink(cand);
		ctl_err(ctx, "invalid route settings; nothing was changed:");
		print_replaced(err, cand, pend);
		free(err);
		return CTL_EXIT_USAGE;
	}
	free(err);
	if (rename(cand, pend) == -1) {
		ctl_err(ctx, "cannot replace %s: %s; nothing was changed", pend, strerror(errno));
		unlink(cand);
		return CTL_EXIT_FAIL;
	}
	dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd != -1) {
		(void)fsync(dfd);
		close(dfd);
	}
	return 0;
}

/* Checks the command line of route set: 0, or CTL_EXIT_USAGE (said why). */
static int
route_set_check(const struct ctl_ctx *ctx, const struct route_opts *o, long long *rpm)
{
	char *end;

	if (!o->reset && !o->ncarriers && !o->key_name && !o->key_location && !o->rpm)
		return ctl_usage_err(ctx, "nothing to set (give --key-name, --key-location, "
		                     "--carrier, --rpm or --reset)");
	if (o->ncarriers && (o->key_name || o->key_location))
		return ctl_usage_err(ctx, "--carrier and --key-name/--key-location both say where "
		                     "the key is (keep one, as in keyauth.conf)");
	if (o->rpm) {
		errno = 0;
		*rpm = strtoll(o->rpm, &end, 10);
		if (*o->rpm < '0' || *o->rpm > '9' || *end != '\0' || errno != 0)
			return ctl_usage_err(ctx, "--rpm: '%s' is not a number of requests per "
			                     "minute (0: no limit)", o->rpm);
	}
	return 0;
}

static bool
ovr_orphan(const struct conf *c, const char *name)
{
	for (unsigned i = 0; c->overrides != NULL && i < c->overrides->norphans; i++)
		if (strcmp(c->overrides->orphans[i], name) == 0)
			return true;
	return false;
}

/* The route <name> of <s>, or an exit code (said why); -1: <name> is only
 * an orphan override (conf_overrides.c). */
static int
route_set_find(const struct ctl_ctx *ctx, const struct ctl_ovr_state *s, const char *name,
               const struct route **r)
{
	if (s->applied->overrides == NULL) {
		ctl_err(ctx, "%s has no route_overrides: route edits are kept in that file, not in "
		        "keyauth.conf; add route_overrides = \"/var/lib/keyauth/routes.override\"; "
		        "to it (see keyauth.conf(5)); nothing was changed", s->applied->path);
		return CTL_EXIT_FAIL;
	}
	*r = conf_route_find(s->pending, name, strlen(name));
	if (*r == NULL && ovr_orphan(s->pending, name))
		return -1;      /* only --reset may drop it */
	if (*r == NULL) {
		ctl_err(ctx, "no route \"%s\" in %s (keyauthctl route list shows them)", name,
		        s->pending->path);
		return CTL_EXIT_NOTFOUND;
	}
	if ((*r)->admin)
		return ctl_usage_err(ctx, "route \"%s\" is the admin route: its settings come from "
		                     "the admin group of keyauth.conf", name);
	return 0;
}

/* route set NAME --reset of a route keyauth.conf no longer has: drops its
 * override (nothing else can be set on it). */
static int
route_set_orphan(const struct ctl_ctx *ctx, const struct ctl_ovr_state *s, const char *name,
                 const struct route_opts *o)
{
	struct route fake = { .name = (char *)name, .name_len = strlen(name) };
	struct ctl_audit *au = NULL;
	struct conf *after = NULL;
	char err[1024], *text = NULL;
	size_t len = 0;
	config_t cfg;
	int rc = CTL_EXIT_FAIL;

	if (!o->reset || o->ncarriers || o->key_name || o->key_location || o->rpm)
		return ctl_usage_err(ctx, "route \"%s\" is not in %s any more: only --reset (which "
		                     "drops its override) applies", name, s->pending->path);
	config_init(&cfg);
	if (config_read_file(&cfg, s->pending->overrides->read) != CONFIG_TRUE) {
		ctl_err(ctx, "%s: %s", s->pending->overrides->read, config_error_text(&cfg));
		goto out;
	}
	au = ctl_audit_open(ctx, s->pending, err, sizeof(err));
	if (au == NULL) {
		ctl_err(ctx, "%s; nothing was changed", err);
		goto out;
	}
	if (ovr_edit(&cfg, &fake, o, 0) == -1 || (text = ovr_text(&cfg, &len)) == NULL) {
		ctl_err(ctx, "out of memory");
		goto out;
	}
	rc = ovr_commit(ctx, s->applied->overrides->path, text, len, &after);
	if (rc != 0)
		goto out;
	if (ctl_audit_event(au, "route_changed", name, json_pack("{s:{s:s,s:n}}", "override",
	                    "old", "orphan", "new"), err, sizeof(err)) == -1)
		ctl_err(ctx, "warning: the edit was saved, but not recorded: %s", err);
	printf("route %s: its override was dropped (pending; keyauthctl deploy applies it)\n",
	       name);
out:
	ctl_audit_close(au);
	free(text);
	config_destroy(&cfg);
	conf_free(after);
	return rc;
}

static int
route_set_run(struct ctl_ctx *ctx, const struct ctl_args *a)
{
	const struct route_opts *o = a->opts;
	const struct route *r = NULL, *nr;
	struct ctl_ovr_state s;
	struct conf *after = NULL;
	struct ctl_audit *au = NULL;
	char etag[CTL_ETAG_LEN + 1], src[PATH_MAX + 32], err[1024], *text = NULL;
	long long rpm = 0;
	size_t len = 0;
	config_t cfg;
	int rc;

	rc = route_set_check(ctx, o, &rpm);
	if (rc != 0)
		return rc;
	if (ctl_ovr_open(ctx, &s, true) == -1)
		return CTL_EXIT_FAIL;
	config_init(&cfg);
	rc = route_set_find(ctx, &s, a->id, &r);
	if (rc == -1) {
		rc = route_set_orphan(ctx, &s, a->id, o);
		goto out;
	}
	if (rc != 0)
		goto out;
	ctl_route_etag(r, etag);
	rc = CTL_EXIT_PRECOND;
	if (o->if_match != NULL && strcmp(o->if_match, etag) != 0) {
		ctl_err(ctx, "route \"%s\" changed since etag %s (now %s); nothing was changed: "
		        "read it again (keyauthctl route show %s)", r->name, o->if_match, etag, r->name);
		goto out;
	}
	rc = CTL_EXIT_FAIL;
	/* the edit starts from the pending file, else the applied one */
	snprintf(src, sizeof(src), "%s", s.pending->overrides->read ? s.pending->overrides->read :
	         s.pending->overrides->path);
	if (access(src, F_OK) == 0 && config_read_file(&cfg, src) != CONFIG_TRUE) {
		ctl_err(ctx, "%s: %s", src, config_error_text(&cfg));
		goto out;
	}
	au = ctl_audit_open(ctx, s.pending, err, sizeof(err));
	if (au == NULL) {
		ctl_err(ctx, "%s; nothing was changed", err);
		goto out;
	}
	if (ovr_edit(&cfg, r, o, rpm) == -1 || (text = ovr_text(&cfg, &len)) == NULL) {
		ctl_err(ctx, "out of memory");
		goto out;
	}
	rc = ovr_commit(ctx, s.applied->overrides->path, text, len, &after);
	if (rc != 0)
		goto out;
	nr = conf_route_find(after, r->name, r->name_len);
	if (ctl_audit_event(au, "route_changed", r->name, route_diff(r, nr), err, sizeof(err)) == -1)
		ctl_err(ctx, "warning: the edit was saved, but not recorded: %s", err);
	/* the answer: the route as it is now, pending against applied */
	conf_free(s.pending);
	s.pending = after;
	after = NULL;
	if (a->json) {
		rc = ctl_json_print(ctx, route_json(&s, nr));
	} else {
		ctl_route_etag(nr, etag);
		printf("route %s: saved as a pending edit (etag %s)%s\n", nr->name, etag,
		       route_pending(&s, nr) ? "; keyauthctl deploy applies it" :
		       ": same as deployed");
		rc = CTL_EXIT_OK;
	}
out:
	ctl_audit_close(au);
	free(text);
	config_destroy(&cfg);
	conf_free(after);
	ctl_ovr_close(&s);
	return rc;
}

/* Promotes <path>.pending to <path>: 0 (also when there was none), -1. */
int
ctl_ovr_promote(const struct ctl_ctx *ctx, const struct ctl_ovr_state *s)
{
	const struct conf_overrides *ov = s->pending->overrides;
	char pend[PATH_MAX + 32], dir[PATH_MAX], *slash;
	int dfd;

	if (ov == NULL)
		return 0;
	snprintf(pend, sizeof(pend), "%s" CONF_OVR_PENDING, ov->path);
	if (rename(pend, ov->path) == -1) {
		if (errno == ENOENT)
			return 0;
		ctl_err(ctx, "cannot apply the pending route edits (rename %s): %s", pend,
		        strerror(errno));
		return -1;
	}
	snprintf(dir, sizeof(dir), "%s", ov->path);
	slash = strrchr(dir, '/');
	*(slash == dir ? slash + 1 : slash) = '\0';
	dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd != -1) {
		(void)fsync(dfd);
		close(dfd);
	}
	return 0;
}

/* ---- the commands --------------------------------------------------------------------- */

static const char route_list_help[] =
	"usage: keyauthctl route list [-c FILE] [--json]\n"
	"\n"
	"Lists the routes with their effective security settings (pending edits\n"
	"included): name, context, provider, where keys are read (carriers), the\n"
	"rate limit, the ETag and whether an edit waits for a deploy.\n"
	"\n"
	"  --json   {\"routes\": [{name, context, provider, security: {key_name,\n"
	"           key_location}, carriers, rate_limit_rpm, methods, etag, pending}]}\n"
	"\n"
	"example:\n"
	"  keyauthctl route list\n";

static const char route_show_help[] =
	"usage: keyauthctl route show [-c FILE] NAME [--json]\n"
	"\n"
	"Shows one route as route list does. Exit status: 0 ok, 3 no such route.\n"
	"\n"
	"example:\n"
	"  keyauthctl route show openai --json\n";

static const char route_set_help[] =
	"usage: keyauthctl route set [-c FILE] NAME [--key-name N] [--key-location header|query]\n"
	"                            [--carrier C ...] [--rpm N] [--reset] [--if-match ETAG]\n"
	"                            [--json]\n"
	"\n"
	"Changes a route's security settings as a pending edit, kept in\n"
	"route_overrides' file <path>.pending (keyauth.conf is never rewritten);\n"
	"keyauthctl deploy applies it (keyauthctl deploy --preview shows it first).\n"
	"Validated as keyauth.conf's routes are, with the same messages.\n"
	"\n"
	"  --key-name N          the header or query parameter holding the key\n"
	"  --key-location L      header or query\n"
	"  --carrier C           bearer, header:NAME or query:NAME; repeat for several\n"
	"                        (the first one present is the key); not with\n"
	"                        --key-name/--key-location\n"
	"  --rpm N               the route's rate limit per key (0: none)\n"
	"  --reset               drop the route's edits first (back to keyauth.conf)\n"
	"  --if-match ETAG       only if the route's etag is still ETAG (exit 4 if not)\n"
	"  --json                the route afterwards, as route show --json\n"
	"\n"
	"Exit status: 0 saved, 1 failed, 2 usage or invalid value, 3 no such route,\n"
	"4 the etag differs (nothing was changed).\n"
	"\n"
	"example:\n"
	"  keyauthctl route set openai --key-name X-Custom-Key --if-match 3f2a...\n";

static const struct option route_read_opts[] = { CTL_JSON_LONGOPT, { NULL, 0, NULL, 0 } };

static const struct option route_set_opts[] = {
	{ "key-name",     required_argument, NULL, 'n' },
	{ "key-location", required_argument, NULL, 'l' },
	{ "carrier",      required_argument, NULL, 'C' },
	{ "rpm",          required_argument, NULL, 'r' },
	{ "reset",        no_argument,       NULL, 'R' },
	{ "if-match",     required_argument, NULL, 'm' },
	CTL_JSON_LONGOPT,
	{ NULL, 0, NULL, 0 }
};

const struct ctl_cmd ctl_cmd_route_list = {
	.name = "route list", .summary = "list the routes, their security settings and etags",
	.help = route_list_help, .longopts = route_read_opts, .run = route_list_run,
};

const struct ctl_cmd ctl_cmd_route_show = {
	.name = "route show", .summary = "show one route (exit 3 if unknown)",
	.help = route_show_help, .longopts = route_read_opts, .operand = CTL_OPERAND_NAME,
	.run = route_show_run,
};

const struct ctl_cmd ctl_cmd_route_set = {
	.name = "route set", .summary = "edit a route's key name, carriers, rate limit (pending)",
	.help = route_set_help, .longopts = route_set_opts, .operand = CTL_OPERAND_NAME,
	.opts_size = sizeof(struct route_opts), .opt = route_opt, .run = route_set_run,
};
