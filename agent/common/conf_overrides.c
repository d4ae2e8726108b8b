/* SPDX-License-Identifier: Apache-2.0 */
/*
 * conf_overrides: route_overrides, the route security edits `keyauthctl
 * route set` makes (conf.h), applied over keyauth.conf's routes.
 *
 * The file is machine-written libconfig:
 *   version = 1;
 *   routes = ( { name = "openai"; security = { key_name = "X-Custom-Key"; };
 *                rate_limit_rpm = 600; } );
 * An entry's security group replaces the route's whole security group; its
 * rate_limit_rpm replaces the route's. Both go through the very parsers the
 * config file's routes use (conf_route.c), so a bad value gets the same
 * message, at the override file's line. An entry naming a route the config
 * no longer has is ignored and listed (conf.overrides->orphans): removing a
 * route from keyauth.conf must never stop keyauthd from starting. The file
 * is trusted like the config (filetrust.h): it decides where keys are read.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "conf-int.h"
#include "filetrust.h"

struct conf_ovr {
	config_t cfg;
	const char *file;                   /* the file read (conf.overrides->read) */
	const config_setting_t *routes;     /* its routes list, or NULL */
	bool *used;                         /* per entry of routes: a route took it */
	unsigned n;
};

struct conf *conf_load(const char *path, char *err, size_t errlen)
{
	return conf_load_opts(path, NULL, err, errlen);
}

/* route_overrides = "/var/lib/keyauth/routes.override"; read before the walk
 * (conf_overrides_open): only its value is judged here. */
void conf_kw_route_overrides(struct conf_ctx *x, const config_setting_t *s, void *obj)
{
	const char *v = config_setting_get_string(s);
	char q[CONF_QUOTE_MAX];

	(void)obj;
	if (v[0] != '/' || strlen(v) + sizeof(CONF_OVR_PENDING) + 16 > 4096)
		conf_err(x, s, "bad route_overrides \"%s\": use an absolute path (e.g. route_overrides = \"/var/lib/keyauth/routes.override\";)",
			 conf_quote(q, sizeof(q), v));
}

static void ovr_set_version(void *obj, long long v)
{
	(void)obj;
	(void)v;
}

static void ovr_kw_routes(struct conf_ctx *x, const config_setting_t *s, void *obj)
{
	struct conf_ovr *o = obj;
	int n = config_setting_length(s);
	char q[CONF_QUOTE_MAX];

	o->used = calloc((size_t)n + 1, sizeof(*o->used));
	if (o->used == NULL) {
		conf_err(x, s, "out of memory");
		return;
	}
	for (int i = 0; i < n; i++) {
		const config_setting_t *e = config_setting_get_elem(s, (unsigned)i);
		const char *nm = NULL, *other = NULL;

		if (config_setting_type(e) != CONFIG_TYPE_GROUP ||
		    config_setting_lookup_string(e, "name", &nm) != CONFIG_TRUE ||
		    !conf_token_ok(nm, CONF_NAME_MAX, "_-")) {
			conf_err(x, e, "route override #%d needs a route name (name = \"openai\";); "
			         "reset it with keyauthctl route set NAME --reset", i + 1);
			return;
		}
		for (int j = 0; j < i; j++) {
			if (config_setting_lookup_string(config_setting_get_elem(s, (unsigned)j),
			                                 "name", &other) == CONFIG_TRUE &&
			    strcmp(other, nm) == 0) {
				conf_err(x, e, "duplicate route override \"%s\" (one entry per route)",
				         conf_quote(q, sizeof(q), nm));
				return;
			}
		}
	}
	o->routes = s;
	o->n = (unsigned)n;
}

static const struct conf_kw ovr_top_kws[] = {
	{ "version", CONF_T_INT, NULL, ovr_set_version, 1, 1, "version = 1;" },
	{ "routes", CONF_T_LIST, ovr_kw_routes, NULL, 0, 0,
	  "routes = ( { name = \"openai\"; rate_limit_rpm = 600; } );" },
};

static void ovr_kw_name(struct conf_ctx *x, const config_setting_t *s, void *obj)
{
	(void)x;
	(void)s;
	(void)obj;       /* matched by ovr_kw_routes and conf_overrides_apply */
}

/* What an entry may set: a route's security settings and its rate limit. */
static const struct conf_kw ovr_route_kws[] = {
	{ "name", CONF_T_STRING, ovr_kw_name, NULL, 0, 0, "name = \"openai\";" },
	{ "security", CONF_T_GROUP, conf_kw_route_security, NULL, 0, 0,
	  "security = { key_name = \"X-API-Key\"; key_location = \"header\"; };" },
	{ "rate_limit_rpm", CONF_T_INT, NULL, conf_set_route_rpm, 0, CONF_MAX_RPM,
	  "rate_limit_rpm = 600;" },
};

/* The file to read as <x>'s options say, into <buf>; NULL for none. */
static const char *ovr_pick(const struct conf_ctx *x, const char *path, char *buf, size_t len)
{
	const struct conf_load_opts *o = x->opts;
	struct stat st;

	if (o == NULL)
		return path;
	if (o->no_overrides)
		return NULL;
	if (o->overrides != NULL)
		return o->overrides;
	snprintf(buf, len, "%s" CONF_OVR_PENDING, path);
	return o->pending && lstat(buf, &st) == 0 ? buf : path;
}

/* Reports a file-level problem: "<file>: <msg>", <msg> without a leading
 * "<file>: " (filetrust names the path itself). */
static void ovr_err(struct conf_ctx *x, const char *file, const char *msg)
{
	size_t n = strlen(file);

	conf_err_line(x, file, 0, strncmp(msg, file, n) == 0 && msg[n] == ':' ? msg + n + 2 : msg);
}

void conf_overrides_open(struct conf_ctx *x, const config_setting_t *root)
{
	const char *v = NULL, *user = NULL, *file;
	struct conf_overrides *ov;
	struct ft_trust t;
	char buf[4200], msg[2048];
	struct conf_ovr *o;
	FILE *f;

	if (config_setting_lookup_string(root, "route_overrides", &v) != CONFIG_TRUE ||
	    v[0] != '/' || strlen(v) + 16 > sizeof(buf) - sizeof(CONF_OVR_PENDING))
		return;          /* absent (feature off), or reported by the walk */
	ov = calloc(1, sizeof(*ov));
	if (ov == NULL || (ov->path = strdup(v)) == NULL) {
		free(ov);
		conf_err(x, NULL, "out of memory");
		return;
	}
	x->c->overrides = ov;
	file = ovr_pick(x, v, buf, sizeof(buf));
	if (file == NULL)
		return;
	f = fopen(file, "r");
	if (f == NULL) {
		if (errno != ENOENT) {
			snprintf(msg, sizeof(msg), "cannot read the route overrides: %s", strerror(errno));
			ovr_err(x, file, msg);
		}
		return;  /* no edits yet */
	}
	fclose(f);
	config_setting_lookup_string(root, "user", &user);
	ft_trust_for(&t, user);
	if (ft_check_path(&t, file, NULL, msg, sizeof(msg)) == -1) {
		ovr_err(x, file, msg);
		return;
	}
	o = calloc(1, sizeof(*o));
	if (o == NULL || (ov->read = strdup(file)) == NULL) {
		free(o);
		conf_err(x, NULL, "out of memory");
		return;
	}
	config_init(&o->cfg);
	o->file = ov->read;
	x->ovr = o;
	if (config_read_file(&o->cfg, file) != CONFIG_TRUE) {
		int line = config_error_line(&o->cfg);

		snprintf(msg, sizeof(msg), "%s (the route overrides are written by keyauthctl route set; "
		         "remove the file to drop every edit)",
		         config_error_text(&o->cfg) ? config_error_text(&o->cfg) : "cannot read it");
		conf_err_line(x, file, line > 0 ? (unsigned)line : 0, msg);
		return;
	}
	conf_walk(x, config_root_setting(&o->cfg), " in the route overrides", ovr_top_kws,
	          COUNTOF(ovr_top_kws), o);
}

void conf_overrides_apply(struct conf_ctx *x, const config_setting_t *e, struct route *r,
                          const char *where)
{
	struct conf_ovr *o = x->ovr;

	if (o == NULL || o->routes == NULL || r->name == NULL)
		return;
	for (unsigned i = 0; i < o->n; i++) {
		const config_setting_t *ent = config_setting_get_elem(o->routes, i);
		const char *nm = NULL;

		if (config_setting_lookup_string(ent, "name", &nm) != CONFIG_TRUE ||
		    strcmp(nm, r->name) != 0)
			continue;
		o->used[i] = true;
		if (config_setting_get_member(ent, "security") != NULL) {
			/* the override's group replaces the file's whole group */
			r->ncarriers = 0;
			r->set_carriers = r->set_key = false;
			r->key_location = KEYLOC_HEADER;
			if (conf_set_str(x, e, &r->key_name, "X-API-Key") == -1)
				return;
		}
		conf_walk(x, ent, where, ovr_route_kws, COUNTOF(ovr_route_kws), r);
		return;
	}
}

void conf_overrides_close(struct conf_ctx *x)
{
	struct conf_ovr *o = x->ovr;
	struct conf_overrides *ov = x->c->overrides;

	if (o == NULL)
		return;
	for (unsigned i = 0; o->routes != NULL && i < o->n; i++) {
		const char *nm = NULL;
		char **grown;

		if (o->used[i])
			continue;
		config_setting_lookup_string(config_setting_get_elem(o->routes, i), "name", &nm);
		grown = realloc(ov->orphans, (ov->norphans + 1) * sizeof(*grown));
		if (grown == NULL || nm == NULL || (grown[ov->norphans] = strdup(nm)) == NULL) {
			if (grown != NULL)
				ov->orphans = grown;
			conf_err(x, NULL, "out of memory");
			break;
		}
		ov->orphans = grown;
		ov->norphans++;
	}
	config_destroy(&o->cfg);
	free(o->used);
	free(o);
	x->ovr = NULL;
}

void conf_overrides_free(struct conf_overrides *ov)
{
	if (ov == NULL)
		return;
	for (unsigned i = 0; i < ov->norphans; i++)
		free(ov->orphans[i]);
	free(ov->orphans);
	free(ov->read);
	free(ov->path);
	free(ov);
}
