/* SPDX-License-Identifier: Apache-2.0 */
/*
 * conf_store: the "store" and "log" groups of keyauth.conf (conf-int.h).
 */
#include <ctype.h>
#include <syslog.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conf-int.h"

/* ---- store and log groups --------------------------------------------- */

static void conf_kw_store_backend(struct conf_ctx *x, const config_setting_t *s, void *obj)
{
	const char *v = config_setting_get_string(s);
	char q[CONF_QUOTE_MAX];

	(void)obj;
	if (strcmp(v, "file") != 0 && strcmp(v, "redis") != 0)
		conf_err(x, s, "unsupported store backend \"%s\" (set backend = \"file\"; or backend = \"redis\";)",
			 conf_quote(q, sizeof(q), v));
}

/* The redis settings: only meaningful with backend = "redis" (conf_kw_store
 * allocates c->store_redis before the walk when it sees that backend). */
static struct store_redis_conf *conf_redis(struct conf_ctx *x, const config_setting_t *s, void *obj)
{
	struct conf *c = obj;

	if (c->store_redis == NULL)
		conf_err(x, s, "%s in store needs backend = \"redis\"; (set it or remove %s)",
			 config_setting_name(s), config_setting_name(s));
	return c->store_redis;
}

static void conf_kw_redis_address(struct conf_ctx *x, const config_setting_t *s, void *obj)
{
	struct store_redis_conf *r = conf_redis(x, s, obj);
	const char *v = config_setting_get_string(s);

	if (r == NULL)
		return;
	if (!v[0] || (strncmp(v, "unix:", 5) != 0 && strrchr(v, ':') == NULL)) {
		conf_err(x, s, "bad redis address (use \"127.0.0.1:6379\" or \"unix:/run/redis/redis.sock\")");
		return;
	}
	conf_set_str(x, s, &r->address, v);
}

static void conf_kw_redis_password_file(struct conf_ctx *x, const config_setting_t *s, void *obj)
{
	struct store_redis_conf *r = conf_redis(x, s, obj);
	const char *v = config_setting_get_string(s);

	if (r == NULL)
		return;
	if (v[0] != '/') {
		conf_err(x, s, "password_file must be an absolute path (e.g. password_file = \"/etc/keyauth/redis.pass\";)");
		return;
	}
	conf_set_str(x, s, &r->password_file, v);
}

/* Redis ACL user names may hold almost anything; ours go on a command line
 * built with %s and in log lines, so printable ASCII without blanks. */
static void conf_kw_redis_username(struct conf_ctx *x, const config_setting_t *s, void *obj)
{
	struct store_redis_conf *r = conf_redis(x, s, obj);
	const char *v = config_setting_get_string(s);

	if (r == NULL)
		return;
	for (const char *p = v; *p; p++)
		if (*p <= ' ' || *p >= 0x7f || *p == '"' || *p == '\\') {
			conf_err(x, s, "bad redis username (printable characters, no blanks or quotes, e.g. username = \"keyauth\";)");
			return;
		}
	if (!v[0] || strlen(v) > 128) {
		conf_err(x, s, "redis username must be 1..128 characters (e.g. username = \"keyauth\";)");
		return;
	}
	conf_set_str(x, s, &r->username, v);
}

static void conf_kw_redis_namespace(struct conf_ctx *x, const config_setting_t *s, void *obj)
{
	struct store_redis_conf *r = conf_redis(x, s, obj);
	const char *v = config_setting_get_string(s);

	if (r == NULL)
		return;
	for (const char *p = v; *p; p++)
		if (!isalnum((unsigned char)*p) && *p != '_' && *p != '-' && *p != ':' && *p != '.') {
			conf_err(x, s, "bad namespace (use [A-Za-z0-9_.:-], e.g. namespace = \"keyauth\";)");
			return;
		}
	if (!v[0] || strlen(v) > 64) {
		conf_err(x, s, "namespace must be 1..64 characters (e.g. namespace = \"keyauth\";)");
		return;
	}
	conf_set_str(x, s, &r->namespace, v);
}

static void conf_kw_redis_stale_action(struct conf_ctx *x, const config_setting_t *s, void *obj)
{
	struct store_redis_conf *r = conf_redis(x, s, obj);
	const char *v = config_setting_get_string(s);

	if (r == NULL)
		return;
	if (strcmp(v, "serve") == 0)
		r->stale_deny = false;
	else if (strcmp(v, "deny") == 0)
		r->stale_deny = true;
	else
		conf_err(x, s, "stale_action must be \"serve\" or \"deny\"");
}

/* Integer settings: the walk checks the range; a file-backend config has no
 * place for them, so they are checked again in conf_kw_store. */
static void conf_set_redis_db(void *obj, long long v)
{
	struct conf *c = obj;

	if (c->store_redis != NULL)
		c->store_redis->database = (int)v;
}

static void conf_set_redis_resync(void *obj, long long v)
{
	struct conf *c = obj;

	if (c->store_redis != NULL)
		c->store_redis->resync_interval = (unsigned)v;
}

static void conf_set_redis_staleness(void *obj, long long v)
{
	struct conf *c = obj;

	if (c->store_redis != NULL)
		c->store_redis->max_staleness = (unsigned)v;
}

static void conf_set_redis_write_replicas(void *obj, long long v)
{
	struct conf *c = obj;

	if (c->store_redis != NULL)
		c->store_redis->write_replicas = (unsigned)v;
}

static void conf_set_redis_write_timeout(void *obj, long long v)
{
	struct conf *c = obj;

	if (c->store_redis != NULL)
		c->store_redis->write_timeout_ms = (unsigned)v;
}

static void conf_kw_store_path(struct conf_ctx *x, const config_setting_t *s, void *obj)
{
	struct conf *c = obj;
	const char *v = config_setting_get_string(s);

	if (!v[0]) {
		conf_err(x, s, "store path is empty (e.g. path = \"/var/lib/keyauth/keys.db\";)");
		return;
	}
	conf_set_str(x, s, &c->store_path, v);
}

static const struct conf_kw conf_store_kws[] = {
	{ "backend", CONF_T_STRING, conf_kw_store_backend, NULL, 0, 0, "backend = \"file\";" },
	{ "path", CONF_T_STRING, conf_kw_store_path, NULL, 0, 0, "path = \"/var/lib/keyauth/keys.db\";" },
	{ "address", CONF_T_STRING, conf_kw_redis_address, NULL, 0, 0, "address = \"127.0.0.1:6379\";" },
	{ "database", CONF_T_INT, NULL, conf_set_redis_db, 0, 15, "database = 0;" },
	{ "username", CONF_T_STRING, conf_kw_redis_username, NULL, 0, 0, "username = \"keyauth\";" },
	{ "password_file", CONF_T_STRING, conf_kw_redis_password_file, NULL, 0, 0, "password_file = \"/etc/keyauth/redis.pass\";" },
	{ "namespace", CONF_T_STRING, conf_kw_redis_namespace, NULL, 0, 0, "namespace = \"keyauth\";" },
	{ "resync_interval", CONF_T_INT, NULL, conf_set_redis_resync, 1, 86400, "resync_interval = 60;" },
	{ "max_staleness", CONF_T_INT, NULL, conf_set_redis_staleness, 1, 604800, "max_staleness = 300;" },
	{ "stale_action", CONF_T_STRING, conf_kw_redis_stale_action, NULL, 0, 0, "stale_action = \"deny\";" },
	{ "write_replicas", CONF_T_INT, NULL, conf_set_redis_write_replicas, 0, 64, "write_replicas = 1;" },
	{ "write_timeout_ms", CONF_T_INT, NULL, conf_set_redis_write_timeout, 1, 60000, "write_timeout_ms = 1000;" },
};

void conf_kw_store(struct conf_ctx *x, const config_setting_t *s, void *obj)
{
	struct conf *c = obj;
	const char *backend = NULL;
	static const char *const redis_only[] = { "database", "resync_interval", "max_staleness",
						  "write_replicas", "write_timeout_ms" };

	if (config_setting_lookup_string(s, "backend", &backend) == CONFIG_TRUE &&
	    strcmp(backend, "redis") == 0 && c->store_redis == NULL) {
		c->store_redis = calloc(1, sizeof(*c->store_redis));
		if (c->store_redis == NULL ||
		    conf_set_str(x, s, &c->store_redis->address, "127.0.0.1:6379") == -1 ||
		    conf_set_str(x, s, &c->store_redis->namespace, "keyauth") == -1)
			return;
		c->store_redis->resync_interval = 60;
		c->store_redis->max_staleness = 300;
		/* Fail open for max_staleness, then closed. */
		c->store_redis->stale_deny = true;
		c->store_redis->write_timeout_ms = 1000;
	}
	if (c->store_redis == NULL)
		for (size_t i = 0; i < COUNTOF(redis_only); i++) {
			const config_setting_t *m = config_setting_get_member(s, redis_only[i]);

			if (m != NULL)
				conf_err(x, m, "%s in store needs backend = \"redis\"; (set it or remove %s)",
					 redis_only[i], redis_only[i]);
		}
	conf_walk(x, s, " in store", conf_store_kws, COUNTOF(conf_store_kws), obj);
	/* AUTH <username> <password>: an ACL user always comes with a password
	 * (a nopass user takes any, but then the setting protects nothing). */
	if (c->store_redis != NULL && c->store_redis->username != NULL &&
	    c->store_redis->password_file == NULL)
		conf_err(x, config_setting_get_member(s, "username"),
			 "username in store needs password_file (the ACL user's password, e.g. password_file = \"/etc/keyauth/redis.pass\";)");
}

static const struct {
	const char *name;
	int level;
} conf_log_levels[] = {
	{ "error", LOG_ERR },
	{ "warning", LOG_WARNING },
	{ "notice", LOG_NOTICE },
	{ "info", LOG_INFO },
	{ "debug", LOG_DEBUG },
};

static void conf_kw_log_level(struct conf_ctx *x, const config_setting_t *s, void *obj)
{
	struct conf *c = obj;
	const char *v = config_setting_get_string(s);
	char q[CONF_QUOTE_MAX];

	for (size_t i = 0; i < COUNTOF(conf_log_levels); i++) {
		if (strcmp(v, conf_log_levels[i].name) == 0) {
			c->log_level = conf_log_levels[i].level;
			return;
		}
	}
	conf_err(x, s, "bad log level \"%s\" (use \"error\", \"warning\", \"notice\", \"info\" or \"debug\")",
		 conf_quote(q, sizeof(q), v));
}

static void conf_kw_log_target(struct conf_ctx *x, const config_setting_t *s, void *obj)
{
	struct conf *c = obj;
	const char *v = config_setting_get_string(s);
	char q[CONF_QUOTE_MAX];

	if (strcmp(v, "stderr") == 0)
		c->log_target = LOG_TARGET_STDERR;
	else if (strcmp(v, "syslog") == 0)
		c->log_target = LOG_TARGET_SYSLOG;
	else
		conf_err(x, s, "bad log target \"%s\" (use \"stderr\" or \"syslog\")",
			 conf_quote(q, sizeof(q), v));
}

static const struct conf_kw conf_log_kws[] = {
	{ "level", CONF_T_STRING, conf_kw_log_level, NULL, 0, 0, "level = \"info\";" },
	{ "target", CONF_T_STRING, conf_kw_log_target, NULL, 0, 0, "target = \"stderr\";" },
};

void conf_kw_log(struct conf_ctx *x, const config_setting_t *s, void *obj)
{
	conf_walk(x, s, " in log", conf_log_kws, COUNTOF(conf_log_kws), obj);
}
