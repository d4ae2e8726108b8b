/* SPDX-License-Identifier: Apache-2.0 */
/*
 * conf_deploy: the "deploy" group of keyauth.conf (conf-int.h): how
 * `keyauthctl deploy` finds, checks and reloads HAProxy on this host, so
 * that a plain `keyauthctl deploy` (and keyauth-admin, which runs it with a
 * fixed command line) deploys the way the operator set up. Each setting is
 * the default of the command-line flag of the same name (haproxy_dir is
 * --haproxy-dir, ...); a flag given overrides it. keyauthd ignores the group.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conf-int.h"

#define DEPLOY_PATH_MAX       4095
#define DEPLOY_RELOAD_MAX     1024
/* sun_path holds 108 bytes, the NUL included */
#define DEPLOY_SOCKET_MAX     107

static struct deploy_conf *conf_deploy_of(void *obj)
{
	return obj;
}

/* An absolute path of the characters that are safe unquoted in the rendered
 * files (the SPOE file's path is written into haproxy.cfg) and in argv,
 * without "//" or "..". */
static bool conf_deploy_path_ok(const char *v, size_t max)
{
	return v[0] == '/' && strstr(v, "//") == NULL && strstr(v, "/..") == NULL &&
	       conf_token_ok(v, max, "._~/+-");
}

static void conf_deploy_store(struct conf_ctx *x, const config_setting_t *s, char **dst,
                              const char *v)
{
	free(*dst);
	*dst = NULL;
	conf_set_str(x, s, dst, v);
}

/* haproxy_dir, haproxy_defaults and haproxy: absolute paths. */
static void conf_kw_deploy_path(struct conf_ctx *x, const config_setting_t *s, void *obj)
{
	struct deploy_conf *d = conf_deploy_of(obj);
	const char *name = config_setting_name(s), *v = config_setting_get_string(s);
	const char *eg = "/usr/sbin/haproxy";
	char **dst = &d->haproxy;
	char q[CONF_QUOTE_MAX];

	if (strcmp(name, "haproxy_dir") == 0) {
		dst = &d->haproxy_dir;
		eg = "/etc/haproxy";
	} else if (strcmp(name, "haproxy_defaults") == 0) {
		dst = &d->haproxy_defaults;
		eg = "/etc/default/haproxy";
	}
	if (!conf_deploy_path_ok(v, DEPLOY_PATH_MAX)) {
		conf_err(x, s, "bad %s \"%s\" in deploy: use an absolute path of A-Z a-z 0-9 . _ ~ + / - (e.g. %s = \"%s\";)",
			 name, conf_quote(q, sizeof(q), v), name, eg);
		return;
	}
	conf_deploy_store(x, s, dst, v);
}

static void conf_kw_deploy_service(struct conf_ctx *x, const config_setting_t *s, void *obj)
{
	struct deploy_conf *d = conf_deploy_of(obj);
	const char *v = config_setting_get_string(s);
	char q[CONF_QUOTE_MAX];

	if (strcmp(v, "debian") != 0 && strcmp(v, "none") != 0) {
		conf_err(x, s, "bad haproxy_service \"%s\" in deploy: use \"debian\" (HAProxy runs as Debian's haproxy.service) or \"none\" (e.g. haproxy_service = \"none\";)",
			 conf_quote(q, sizeof(q), v));
		return;
	}
	conf_deploy_store(x, s, &d->haproxy_service, v);
}

/* reload_haproxy: "none", "master:/path/of/the/master.sock", or a shell
 * command run with /bin/sh -c (the file is the operator's, like the
 * command line). One printable line: a newline would hide a second
 * command from whoever reads the setting. */
static void conf_kw_deploy_reload(struct conf_ctx *x, const config_setting_t *s, void *obj)
{
	struct deploy_conf *d = conf_deploy_of(obj);
	const char *v = config_setting_get_string(s);
	char q[CONF_QUOTE_MAX];
	size_t i, n = strlen(v);

	if (strncmp(v, "master:", 7) == 0) {
		if (n - 7 > DEPLOY_SOCKET_MAX || !conf_deploy_path_ok(v + 7, DEPLOY_SOCKET_MAX)) {
			conf_err(x, s, "bad reload_haproxy \"%s\" in deploy: master: takes the absolute path of HAProxy's master socket (-S), at most %d bytes of A-Z a-z 0-9 . _ ~ + / - (e.g. reload_haproxy = \"master:/run/haproxy-master.sock\";)",
				 conf_quote(q, sizeof(q), v), DEPLOY_SOCKET_MAX);
			return;
		}
		conf_deploy_store(x, s, &d->reload_haproxy, v);
		return;
	}
	for (i = 0; i < n; i++)
		if ((unsigned char)v[i] < 0x20 || (unsigned char)v[i] > 0x7e)
			break;
	if (n == 0 || i < n || n > DEPLOY_RELOAD_MAX || strspn(v, " ") == n) {
		conf_err(x, s, "bad reload_haproxy \"%s\" in deploy: use \"none\", \"master:/path/of/master.sock\" or a one-line shell command of at most %d printable characters (e.g. reload_haproxy = \"systemctl reload haproxy\";)",
			 conf_quote(q, sizeof(q), v), DEPLOY_RELOAD_MAX);
		return;
	}
	conf_deploy_store(x, s, &d->reload_haproxy, v);
}

static const struct conf_kw conf_deploy_kws[] = {
	{ "haproxy_dir", CONF_T_STRING, conf_kw_deploy_path, NULL, 0, 0,
	  "haproxy_dir = \"/etc/haproxy\";" },
	{ "reload_haproxy", CONF_T_STRING, conf_kw_deploy_reload, NULL, 0, 0,
	  "reload_haproxy = \"systemctl reload haproxy\";" },
	{ "haproxy_service", CONF_T_STRING, conf_kw_deploy_service, NULL, 0, 0,
	  "haproxy_service = \"debian\";" },
	{ "haproxy_defaults", CONF_T_STRING, conf_kw_deploy_path, NULL, 0, 0,
	  "haproxy_defaults = \"/etc/default/haproxy\";" },
	{ "haproxy", CONF_T_STRING, conf_kw_deploy_path, NULL, 0, 0,
	  "haproxy = \"/usr/sbin/haproxy\";" },
};

void conf_deploy_free(struct deploy_conf *d)
{
	if (d == NULL)
		return;
	free(d->haproxy_dir);
	free(d->reload_haproxy);
	free(d->haproxy_service);
	free(d->haproxy_defaults);
	free(d->haproxy);
	free(d);
}

void conf_kw_deploy(struct conf_ctx *x, const config_setting_t *s, void *obj)
{
	struct conf *c = obj;
	struct deploy_conf *d;
	const config_setting_t *def;

	if (c->deploy != NULL) {
		conf_err(x, s, "deploy is set twice (keep one deploy group)");
		return;
	}
	d = calloc(1, sizeof(*d));
	if (d == NULL) {
		conf_err(x, s, "out of memory");
		return;
	}
	c->deploy = d;
	conf_walk(x, s, " in deploy", conf_deploy_kws, COUNTOF(conf_deploy_kws), d);
	/* as the command line refuses --haproxy-defaults with --haproxy-service none */
	def = config_setting_get_member(s, "haproxy_defaults");
	if (def != NULL && d->haproxy_service != NULL && strcmp(d->haproxy_service, "none") == 0)
		conf_err(x, def, "haproxy_defaults in deploy is the defaults file of Debian's haproxy.service: it does not go with haproxy_service = \"none\" (remove one of them)");
}
