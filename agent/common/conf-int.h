/* SPDX-License-Identifier: Apache-2.0 */
/*
 * conf-int: what the parts of the configuration reader share (conf.c: errors,
 * the keyword walk, loading; conf_listen.c: listeners, TLS, metrics, peers
 * and the small top-level settings; conf_store.c: the store and log groups;
 * conf_route.c: routes and their provider settings; conf_frontend.c: the
 * frontend group, HAProxy's side towards clients; conf_deploy.c: the deploy
 * group, keyauthctl deploy's defaults). Not for use outside
 * conf*.c: the rest of the program sees only conf.h.
 */
#ifndef AGENT_CONF_INT_H
#define AGENT_CONF_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <libconfig.h>

#include "conf.h"

#define CONF_MAX_WORKERS      64
#define CONF_NAME_MAX         64     /* route names and key names */
#define CONF_CONTEXT_MAX      255    /* keeps rendered HAProxy ACL lines sane */
#define CONF_PREFIX_BODY_MAX  14     /* + '_' keeps the prefix within KEYFMT_PREFIX_MAX */
#define CONF_QUOTE_MAX        64     /* bytes of a bad value echoed in an error */
/* max_connections_per_peer's default (when max_connections is not lower):
 * one HAProxy process opens a few connections per thread and per server line
 * (tens; hundreds with a large nbthread and many agent servers), so 1000
 * never limits it, while one local user, or one address, can no longer hold
 * all of the default max_connections (10000) alone. */
#define CONF_DEFAULT_PER_PEER 1000
#define CONF_HELLO_TIMEOUT_S  5      /* hello_timeout's default: HAProxy sends HELLO at once */

#define COUNTOF(a) (sizeof(a) / sizeof((a)[0]))

/* Load state: the conf being built and the error sink. */
struct conf_ctx {
	const char *path;              /* as given to conf_load */
	char *dir;                     /* directory of <path>, NULL for "." */
	struct conf *c;
	char *err;                     /* caller's buffer, may be NULL */
	size_t errlen;
	size_t used;                   /* bytes in err, without the NUL */
	bool full;                     /* err truncated: later errors dropped */
	unsigned nerr;
	mode_t socket_mode;
	/* the first plain TCP entry of listen (judged once allow_plain_tcp
	 * is known), NULL when there is none */
	const config_setting_t *plain_tcp_s;
	/* lines of the main file holding an integer libconfig wrapped around
	 * (already reported; the wrapped value must not be judged again) */
	unsigned wrapped_lines[32];
	unsigned nwrapped;
	/* per route: the settings that carried name and context, for the
	 * lines of duplicate errors */
	const config_setting_t **route_name_s;
	const config_setting_t **route_ctx_s;
	const struct conf_load_opts *opts;  /* how to read route_overrides, NULL: default */
	struct conf_ovr *ovr;          /* the overrides file being applied (conf_overrides.c) */
};

/* Expected types in keyword tables. CONF_T_INT accepts both libconfig
 * integer types; CONF_T_SEQ accepts an array or a list. */
enum conf_type {
	CONF_T_INT = 0,
	CONF_T_STRING,
	CONF_T_GROUP,
	CONF_T_SEQ,
	CONF_T_LIST,
	CONF_T_BOOL,
};

struct conf_kw {
	const char *name;
	enum conf_type type;
	/* called once the type (and for integers, the range) is checked;
	 * <obj> is the object the table fills (struct conf or struct route) */
	void (*parse)(struct conf_ctx *x, const config_setting_t *s, void *obj);
	void (*set_int)(void *obj, long long v); /* CONF_T_INT only */
	long long min, max;            /* CONF_T_INT only */
	const char *example;           /* a correct line, shown on type errors */
};


/* ---- shared helpers (conf.c) and group parsers (the other parts) ---- */

void conf_err(struct conf_ctx *x, const config_setting_t *s, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
const char *conf_quote(char *buf, size_t size, const char *s);
const char *conf_type_name(int type);
int conf_set_str(struct conf_ctx *x, const config_setting_t *s, char **dst, const char *src);
bool conf_token_ok(const char *s, size_t max, const char *extra);
int conf_parse_port(const char *s, uint16_t *port);
void conf_walk(struct conf_ctx *x, const config_setting_t *grp, const char *where,
		      const struct conf_kw *kws, size_t nkws, void *obj);
void conf_listen_clear(struct listen_conf *l);
void conf_kw_listen(struct conf_ctx *x, const config_setting_t *s, void *obj);
void conf_kw_socket_mode(struct conf_ctx *x, const config_setting_t *s, void *obj);
void conf_set_rate_window(void *obj, long long v);
void conf_set_workers(void *obj, long long v);
void conf_set_max_connections(void *obj, long long v);
void conf_set_max_frame_size(void *obj, long long v);
void conf_set_idle_timeout(void *obj, long long v);
void conf_set_max_conn_per_peer(void *obj, long long v);
void conf_set_hello_timeout(void *obj, long long v);
void conf_kw_allow_plain_tcp(struct conf_ctx *x, const config_setting_t *s, void *obj);
void conf_listen_finish(struct conf_ctx *x, struct conf *c, const config_setting_t *root);
void conf_kw_key_prefix(struct conf_ctx *x, const config_setting_t *s, void *obj);
void conf_kw_user(struct conf_ctx *x, const config_setting_t *s, void *obj);
void conf_kw_pid_file(struct conf_ctx *x, const config_setting_t *s, void *obj);
void conf_kw_control_socket(struct conf_ctx *x, const config_setting_t *s, void *obj);
void conf_kw_metrics_listen(struct conf_ctx *x, const config_setting_t *s, void *obj);
void conf_kw_haproxy_peers(struct conf_ctx *x, const config_setting_t *s, void *obj);
void conf_kw_haproxy_local_peer(struct conf_ctx *x, const config_setting_t *s, void *obj);
void conf_kw_tls(struct conf_ctx *x, const config_setting_t *s, void *obj);
void conf_kw_store(struct conf_ctx *x, const config_setting_t *s, void *obj);
void conf_kw_log(struct conf_ctx *x, const config_setting_t *s, void *obj);
bool conf_hostport_ok(const char *v);
void conf_kw_routes(struct conf_ctx *x, const config_setting_t *s, void *obj);
void conf_kw_frontend(struct conf_ctx *x, const config_setting_t *s, void *obj);
void conf_frontend_free(struct frontend_conf *fe);
const char *conf_context_problem(const char *v);
void conf_kw_admin(struct conf_ctx *x, const config_setting_t *s, void *obj);
void conf_admin_finish(struct conf_ctx *x, struct conf *c);
void conf_admin_free(struct admin_conf *a);
void conf_kw_deploy(struct conf_ctx *x, const config_setting_t *s, void *obj);
void conf_deploy_free(struct deploy_conf *d);
void conf_err_line(struct conf_ctx *x, const char *file, unsigned lineno, const char *msg);
void conf_kw_route_security(struct conf_ctx *x, const config_setting_t *s, void *obj);
void conf_set_route_rpm(void *obj, long long v);
#define CONF_OVR_EXAMPLE "route_overrides = \"/var/lib/keyauth/routes.override\";"
/* conf_overrides.c: read before the walk, applied to each route after its
 * own settings (before the profile settles the rest), closed after. */
void conf_kw_route_overrides(struct conf_ctx *x, const config_setting_t *s, void *obj);
void conf_overrides_open(struct conf_ctx *x, const config_setting_t *root);
void conf_overrides_apply(struct conf_ctx *x, const config_setting_t *e, struct route *r,
                          const char *where);
void conf_overrides_close(struct conf_ctx *x);
void conf_overrides_free(struct conf_overrides *o);
/* conf_scan.c: integer literals libconfig wrapped around, in the main file. */
void conf_scan_wrapped_ints(struct conf_ctx *x);
bool conf_int_wrapped(const struct conf_ctx *x, const config_setting_t *s);

#endif /* AGENT_CONF_INT_H */
