/* SPDX-License-Identifier: Apache-2.0 */
/*
 * conf: reads keyauthd's libconfig file into a plain struct conf.
 *
 * The only user of libconfig in the project. Every group of the file (top
 * level, store, log, each route and its security group) is walked with a
 * keyword table, so an unknown setting, a wrong type or an out-of-range
 * integer is reported the same way wherever it appears. Every error is
 * collected (the walk never stops at the first one) as "file:line: message
 * (fix)" into the caller's buffer. Runs on whatever thread calls conf_load;
 * keeps no global state.
 */
#include <errno.h>
#include <limits.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <syslog.h>
#include <unistd.h>


#include "spop.h"

#include "conf-int.h"
#include "filetrust.h"

/* ---- errors ---------------------------------------------------------- */

/* Appends one line to the caller's buffer. A line that does not fit is cut
 * and ends with "...", and every later line is dropped, so a reader can tell
 * the list is incomplete. */
static void conf_err_append(struct conf_ctx *x, const char *line)
{
	size_t len = strlen(line), sep = x->used ? 1 : 0, room;

	if (!x->err || !x->errlen || x->full)
		return;
	room = x->errlen - 1 - x->used;
	if (sep + len <= room) {
		if (sep)
			x->err[x->used++] = '\n';
		memcpy(x->err + x->used, line, len);
		x->used += len;
		x->err[x->used] = '\0';
		return;
	}
	x->full = true;
	if (room >= sep) {
		if (sep)
			x->err[x->used++] = '\n';
		room -= sep;
		memcpy(x->err + x->used, line, room);
		x->used += room;
	}
	x->err[x->used] = '\0';
	/* mark the cut; overwrite the tail when there is no room after it */
	for (size_t i = 0; i < 3 && i < x->used; i++)
		x->err[x->used - 1 - i] = '.';
}

void conf_err(struct conf_ctx *x, const config_setting_t *s, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* Records "<file>:<line>: <msg>" ("<file>: <msg>" when <line> is 0). <file>
 * is NULL for the main file. */
void conf_err_line(struct conf_ctx *x, const char *file, unsigned lineno, const char *msg)
{
	char line[PATH_MAX + 2048], name[PATH_MAX + 1];

	if (!file || strcmp(file, x->path) == 0) {
		file = x->path;
	} else if (file[0] != '/' && x->dir) {
		/* libconfig names an included file as written in "@include";
		 * it was opened relative to the main file's directory */
		snprintf(name, sizeof(name), "%s/%s", x->dir, file);
		file = name;
	}
	if (lineno)
		snprintf(line, sizeof(line), "%s:%u: %s", file, lineno, msg);
	else
		snprintf(line, sizeof(line), "%s: %s", file, msg);
	x->nerr++;
	conf_err_append(x, line);
}

/* Records one error at the line of <s> (no line when <s> is NULL or is the
 * root group). */
void conf_err(struct conf_ctx *x, const config_setting_t *s, const char *fmt, ...)
{
	char msg[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	conf_err_line(x, s ? config_setting_source_file(s) : NULL,
		      s ? config_setting_source_line(s) : 0, msg);
}

/* Copies <s> into <buf> for an error message: non-printable bytes become
 * '?' (so an error stays on one line) and long values are cut with "...". */
const char *conf_quote(char *buf, size_t size, const char *s)
{
	size_t i;

	for (i = 0; s[i] && i + 1 < size; i++)
		buf[i] = (s[i] >= 0x20 && s[i] < 0x7f) ? s[i] : '?';
	buf[i] = '\0';
	if (s[i] && size > 4)
		memcpy(buf + size - 4, "...", 4);
	return buf;
}

const char *conf_type_name(int type)
{
	switch (type) {
	case CONFIG_TYPE_INT:
	case CONFIG_TYPE_INT64:  return "an integer";
	case CONFIG_TYPE_FLOAT:  return "a float";
	case CONFIG_TYPE_STRING: return "a string";
	case CONFIG_TYPE_BOOL:   return "a boolean";
	case CONFIG_TYPE_GROUP:  return "a group";
	case CONFIG_TYPE_ARRAY:  return "an array";
	case CONFIG_TYPE_LIST:   return "a list";
	default:                 return "of an unknown type";
	}
}

static const char *conf_want_name(enum conf_type t)
{
	switch (t) {
	case CONF_T_INT:    return "an integer";
	case CONF_T_STRING: return "a string";
	case CONF_T_GROUP:  return "a group { ... }";
	case CONF_T_SEQ:    return "an array [ ... ]";
	case CONF_T_LIST:   return "a list ( ... )";
	case CONF_T_BOOL:   return "a boolean (true or false)";
	}
	return "?";
}

static bool conf_type_ok(enum conf_type want, int type)
{
	switch (want) {
	case CONF_T_INT:    return type == CONFIG_TYPE_INT || type == CONFIG_TYPE_INT64;
	case CONF_T_STRING: return type == CONFIG_TYPE_STRING;
	case CONF_T_GROUP:  return type == CONFIG_TYPE_GROUP;
	case CONF_T_SEQ:    return type == CONFIG_TYPE_ARRAY || type == CONFIG_TYPE_LIST;
	case CONF_T_LIST:   return type == CONFIG_TYPE_LIST;
	case CONF_T_BOOL:   return type == CONFIG_TYPE_BOOL;
	}
	return false;
}

/* ---- small helpers ---------------------------------------------------- */

/* Replaces *<dst> with a copy of <src>. Returns 0, or -1 (error recorded
 * at <s>) when out of memory. */
int conf_set_str(struct conf_ctx *x, const config_setting_t *s, char **dst, const char *src)
{
	char *p = strdup(src);

	if (!p) {
		conf_err(x, s, "out of memory");
		return -1;
	}
	free(*dst);
	*dst = p;
	return 0;
}

/* True when <s> is 1..<max> characters of [A-Za-z0-9] plus the bytes of
 * <extra>. */
bool conf_token_ok(const char *s, size_t max, const char *extra)
{
	size_t i;

	for (i = 0; s[i]; i++) {
		unsigned char ch = (unsigned char)s[i];

		if (i >= max)
			return false;
		if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
		      (ch >= '0' && ch <= '9') || strchr(extra, ch)))
			return false;
	}
	return i > 0;
}

/* Parses a decimal port 1..65535 made of digits only. */
int conf_parse_port(const char *s, uint16_t *port)
{
	unsigned long v = 0;
	size_t i;

	for (i = 0; s[i]; i++) {
		if (s[i] < '0' || s[i] > '9' || i >= 5)
			return -1;
		v = v * 10 + (unsigned long)(s[i] - '0');
	}
	if (i == 0 || v < 1 || v > 65535)
		return -1;
	*port = (uint16_t)v;
	return 0;
}

/* ---- the generic group walk ------------------------------------------ */

/* Checks every member of <grp> against <kws>: unknown names, wrong types and
 * out-of-range integers are errors; a valid member is handed to its parser.
 * <where> names the group in messages (" in store", ""). */
void conf_walk(struct conf_ctx *x, const config_setting_t *grp, const char *where,
		      const struct conf_kw *kws, size_t nkws, void *obj)
{
	int n = config_setting_length(grp);

	for (int i = 0; i < n; i++) {
		const config_setting_t *s = config_setting_get_elem(grp, (unsigned)i);
		const char *name = config_setting_name(s);
		const struct conf_kw *kw = NULL;
		char q[CONF_QUOTE_MAX];

		if (!s || !name)
			continue;
		for (size_t k = 0; k < nkws; k++) {
			if (strcmp(kws[k].name, name) == 0) {
				kw = &kws[k];
				break;
			}
		}
		if (!kw) {
			char valid[512];
			size_t off = 0;

			valid[0] = '\0';
			for (size_t k = 0; k < nkws && off < sizeof(valid); k++)
				off += (size_t)snprintf(valid + off, sizeof(valid) - off, "%s%s",
							k ? ", " : "", kws[k].name);
			conf_err(x, s, "unknown setting \"%s\"%s (remove it or use one of: %s)",
				 conf_quote(q, sizeof(q), name), where, valid);
			continue;
		}
		if (!conf_type_ok(kw->type, config_setting_type(s))) {
			conf_err(x, s, "%s%s must be %s, not %s (e.g. %s)", name, where,
				 conf_want_name(kw->type), conf_type_name(config_setting_type(s)),
				 kw->example);
			continue;
		}
		if (kw->type == CONF_T_INT) {
			long long v = config_setting_get_int64(s);

			if (conf_int_wrapped(x, s))
				continue;

			if (v < kw->min || v > kw->max) {
				conf_err(x, s, "%s = %lld%s is out of range (use %lld..%lld)",
					 name, v, where, kw->min, kw->max);
				continue;
			}
			kw->set_int(obj, v);
			continue;
		}
		kw->parse(x, s, obj);
	}
}


static const struct conf_kw conf_top_kws[] = {
	{ "listen", CONF_T_SEQ, conf_kw_listen, NULL, 0, 0,
	  "listen = [ \"unix:" CONF_DEFAULT_LISTEN "\" ];" },
	{ "socket_mode", CONF_T_STRING, conf_kw_socket_mode, NULL, 0, 0, "socket_mode = \"0660\";" },
	{ "allow_plain_tcp", CONF_T_BOOL, conf_kw_allow_plain_tcp, NULL, 0, 0,
	  "allow_plain_tcp = true;" },
	{ "workers", CONF_T_INT, NULL, conf_set_workers, 0, CONF_MAX_WORKERS, "workers = 4;" },
	{ "max_connections", CONF_T_INT, NULL, conf_set_max_connections, 1, 1000000,
	  "max_connections = 10000;" },
	{ "max_connections_per_peer", CONF_T_INT, NULL, conf_set_max_conn_per_peer, 1, 1000000,
	  "max_connections_per_peer = 1000;" },
	{ "hello_timeout", CONF_T_INT, NULL, conf_set_hello_timeout, 1, 300, "hello_timeout = 5;" },
	{ "max_frame_size", CONF_T_INT, NULL, conf_set_max_frame_size, SPOP_MIN_FRAME_SIZE,
	  SPOP_MAX_FRAME_SIZE, "max_frame_size = 16380;" },
	{ "idle_timeout", CONF_T_INT, NULL, conf_set_idle_timeout, 0, 86400, "idle_timeout = 60;" },
	{ "key_prefix", CONF_T_STRING, conf_kw_key_prefix, NULL, 0, 0, "key_prefix = \"ka_\";" },
	{ "user", CONF_T_STRING, conf_kw_user, NULL, 0, 0, "user = \"keyauth\";" },
	{ "pid_file", CONF_T_STRING, conf_kw_pid_file, NULL, 0, 0,
	  "pid_file = \"/run/keyauth/keyauthd.pid\";" },
	{ "control_socket", CONF_T_STRING, conf_kw_control_socket, NULL, 0, 0,
	  "control_socket = \"/run/keyauth/control.sock\";" },
	{ "metrics_listen", CONF_T_STRING, conf_kw_metrics_listen, NULL, 0, 0,
	  "metrics_listen = \"127.0.0.1:9412\";" },
	{ "store", CONF_T_GROUP, conf_kw_store, NULL, 0, 0,
	  "store = { backend = \"file\"; path = \"/var/lib/keyauth/keys.db\"; };" },
	{ "log", CONF_T_GROUP, conf_kw_log, NULL, 0, 0, "log = { level = \"info\"; target = \"stderr\"; };" },
	{ "routes", CONF_T_LIST, conf_kw_routes, NULL, 0, 0,
	  "routes = ( { name = \"openai\"; context = \"/openai\"; } );" },
	{ "haproxy_peers", CONF_T_LIST, conf_kw_haproxy_peers, NULL, 0, 0,
	  "haproxy_peers = ( { name = \"lb1\"; address = \"10.0.0.1:10000\"; } );" },
	{ "haproxy_local_peer", CONF_T_STRING, conf_kw_haproxy_local_peer, NULL, 0, 0,
	  "haproxy_local_peer = \"lb1\";" },
	{ "rate_limit_window", CONF_T_INT, NULL, conf_set_rate_window, 1, 60, "rate_limit_window = 60;" },
	{ "tls", CONF_T_GROUP, conf_kw_tls, NULL, 0, 0,
	  "tls = { cert = \"/etc/keyauth/tls/agent.pem\"; key = \"/etc/keyauth/tls/agent.key\"; };" },
	{ "frontend", CONF_T_GROUP, conf_kw_frontend, NULL, 0, 0, "frontend = { bind = [ \"0.0.0.0:443\" ]; };" },
	{ "admin", CONF_T_GROUP, conf_kw_admin, NULL, 0, 0, "admin = { context = \"/admin\"; };" },
	{ "deploy", CONF_T_GROUP, conf_kw_deploy, NULL, 0, 0,
	  "deploy = { haproxy_dir = \"/etc/haproxy\"; haproxy_service = \"debian\"; };" },
	{ "route_overrides", CONF_T_STRING, conf_kw_route_overrides, NULL, 0, 0, CONF_OVR_EXAMPLE },
};

/* ---- load and free ------------------------------------------------------ */

static int conf_defaults(struct conf_ctx *x, struct conf *c)
{
	c->max_connections = 10000;
	c->rate_window_s = 60;
	c->max_frame_size = SPOP_DEFAULT_FRAME_SIZE;
	c->idle_timeout_ms = 60000;
	c->hello_timeout_ms = CONF_HELLO_TIMEOUT_S * 1000u;
	c->log_level = LOG_INFO;
	c->log_target = LOG_TARGET_STDERR;
	x->socket_mode = 0660;
	if (conf_set_str(x, NULL, &c->path, x->path) == -1 ||
	    conf_set_str(x, NULL, &c->store_path, "/var/lib/keyauth/keys.db") == -1 ||
	    conf_set_str(x, NULL, &c->key_prefix, "ka_") == -1)
		return -1;
	return 0;
}

/* Settles what depends on several settings once the walk is done. */
static void conf_finish(struct conf_ctx *x, struct conf *c, const config_setting_t *root)
{
	conf_listen_finish(x, c, root);
	if (c->workers == 0) {
		long n = sysconf(_SC_NPROCESSORS_ONLN);

		c->workers = n < 1 ? 1 : n > CONF_MAX_WORKERS ? CONF_MAX_WORKERS : (unsigned)n;
	}
	if (c->local_peer) {
		bool found = false;

		for (unsigned i = 0; i < c->npeers; i++)
			found = found || (c->peers[i].name && strcmp(c->peers[i].name, c->local_peer) == 0);
		if (!found)
			conf_err(x, NULL, "haproxy_local_peer \"%s\" is not the name of one of haproxy_peers (add it there or remove the setting)",
				 c->local_peer);
	}
	if (c->tls != NULL && (c->tls->cert == NULL || c->tls->key == NULL))
		conf_err(x, NULL, "tls needs both cert and key (add cert = \"...\"; key = \"...\"; to tls)");
	conf_admin_finish(x, c);   /* after the routes: appends the admin route */
	if (config_setting_get_member(root, "routes") == NULL)
		conf_err(x, NULL, "no routes defined (add routes = ( { name = \"openai\"; context = \"/openai\"; } );)");
}

/* A user name for <uid> into <buf>, or the number (getpwuid_r: reload may
 * run beside other threads). */
static void conf_user_name(uid_t uid, char *buf, size_t len)
{
	struct passwd pw, *res = NULL;
	char pwbuf[2048];

	if (getpwuid_r(uid, &pw, pwbuf, sizeof(pwbuf), &res) == 0 && res != NULL)
		snprintf(buf, len, "%s", res->pw_name);
	else
		snprintf(buf, len, "uid %u", (unsigned)uid);
}

/* EACCES on <path>: appends to <msg> who owns it and which user needs read
 * access (the one running), so that the fix is not guessed. */
static void conf_denied_who(const char *path, char *msg, size_t len)
{
	char owner[64], me[64];
	size_t n = strlen(msg);
	struct stat st;
	uid_t uid = geteuid();

	conf_user_name(uid, me, sizeof(me));
	if (stat(path, &st) == 0) {
		conf_user_name(st.st_uid, owner, sizeof(owner));
		snprintf(msg + n, len - n, " (owned by %s, mode %04o): user %s (uid %u) needs read "
		         "access to it; run as %s, or let %s read it", owner,
		         (unsigned)(st.st_mode & 07777), me, (unsigned)uid, owner, me);
	} else {
		snprintf(msg + n, len - n, ": user %s (uid %u) needs read access to it and to "
		         "the directories above it", me, (unsigned)uid);
	}
}

/* Reports libconfig's own failure: unreadable file or syntax error. */
static void conf_err_libconfig(struct conf_ctx *x, const config_t *cfg, int saved_errno)
{
	char msg[512], ebuf[128];
	int line = config_error_line(cfg);

	if (config_error_type(cfg) == CONFIG_ERR_FILE_IO) {
		/* GNU strerror_r: reload may run beside other threads */
		snprintf(msg, sizeof(msg), "cannot read the file: %s",
			 saved_errno ? strerror_r(saved_errno, ebuf, sizeof(ebuf)) : "not a readable file");
		if (saved_errno == EACCES)
			conf_denied_who(config_error_file(cfg) ? config_error_file(cfg) : x->path,
			                msg, sizeof(msg));
		conf_err_line(x, NULL, 0, msg);
		return;
	}
	snprintf(msg, sizeof(msg), "%s (fix the syntax: settings are written name = value;)",
		 config_error_text(cfg) ? config_error_text(cfg) : "syntax error");
	conf_err_line(x, config_error_file(cfg), line > 0 ? (unsigned)line : 0, msg);
}

struct conf *conf_load_opts(const char *path, const struct conf_load_opts *o, char *err,
                            size_t errlen)
{
	struct conf_ctx x = { .path = path, .err = err, .errlen = errlen, .opts = o };
	const config_setting_t *root;
	struct conf *c;
	config_t cfg;
	char *slash;
	int saved_errno;

	if (err && errlen)
		err[0] = '\0';
	c = calloc(1, sizeof(*c));
	if (!c) {
		conf_err(&x, NULL, "out of memory");
		return NULL;
	}
	x.c = c;
	if (conf_defaults(&x, c) == -1) {
		conf_free(c);
		return NULL;
	}

	config_init(&cfg);
	/* "@include" names are relative to the main file's directory */
	x.dir = strdup(path);
	slash = x.dir ? strrchr(x.dir, '/') : NULL;
	if (slash) {
		if (slash == x.dir)
			slash++;       /* keep "/" for a file in the root */
		*slash = '\0';
		config_set_include_dir(&cfg, x.dir);  /* libconfig copies it */
	} else {
		free(x.dir);
		x.dir = NULL;
	}
	errno = 0;
	if (config_read_file(&cfg, path) != CONFIG_TRUE) {
		saved_errno = errno;
		conf_err_libconfig(&x, &cfg, saved_errno);
		free(x.dir);
		config_destroy(&cfg);
		conf_free(c);
		return NULL;
	}
	conf_scan_wrapped_ints(&x);
	root = config_root_setting(&cfg);
	conf_overrides_open(&x, root);
	conf_walk(&x, root, "", conf_top_kws, COUNTOF(conf_top_kws), c);
	conf_finish(&x, c, root);
	conf_overrides_close(&x);
	{
		/* The configuration decides who gets in (routes, store path): it
		 * and the directories above it must be owned by root, this user or
		 * the configured `user` (known only after the walk) and writable by
		 * nobody else (filetrust.h). */
		struct ft_trust t;
		char msg[2048];
		size_t plen = strlen(path);

		ft_trust_for(&t, c->user);
		if (ft_check_path(&t, path, NULL, msg, sizeof(msg)) == -1)
			conf_err_line(&x, path, 0, strncmp(msg, path, plen) == 0 &&
			              msg[plen] == ':' ? msg + plen + 2 : msg);
	}
	free(x.route_name_s);
	free(x.route_ctx_s);
	free(x.dir);
	config_destroy(&cfg);
	if (x.nerr) {
		conf_free(c);
		return NULL;
	}
	return c;
}

void conf_free(struct conf *c)
{
	if (!c)
		return;
	for (unsigned i = 0; i < c->nlisten; i++)
		conf_listen_clear(&c->listen[i]);
	for (unsigned i = 0; i < c->nroutes; i++) {
		free(c->routes[i].name);
		free(c->routes[i].context);
		free(c->routes[i].key_name);
		free(c->routes[i].upstream);
	}
	free(c->routes);
	for (unsigned i = 0; i < c->npeers; i++) {
		free(c->peers[i].name);
		free(c->peers[i].address);
	}
	free(c->peers);
	free(c->local_peer);
	free(c->path);
	free(c->store_path);
	if (c->store_redis != NULL) {
		free(c->store_redis->address);
		free(c->store_redis->username);
		free(c->store_redis->password_file);
		free(c->store_redis->namespace);
		free(c->store_redis);
	}
	if (c->tls != NULL) {
		free(c->tls->cert);
		free(c->tls->key);
		free(c->tls->ca);
		free(c->tls->ciphers);
		free(c->tls->haproxy_ca);
		free(c->tls->haproxy_client_cert);
		free(c->tls);
	}
	conf_frontend_free(c->frontend);
	conf_admin_free(c->admin);
	conf_deploy_free(c->deploy);
	conf_overrides_free(c->overrides);
	free(c->key_prefix);
	free(c->user);
	free(c->pid_file);
	free(c->control_path);
	conf_listen_clear(&c->metrics);
	free(c);
}

/* ---- lookups ------------------------------------------------------------ */

const struct route *conf_route_find(const struct conf *c, const char *name, size_t len)
{
	for (unsigned i = 0; i < c->nroutes; i++) {
		const struct route *r = &c->routes[i];

		if (r->name_len == len && memcmp(r->name, name, len) == 0)
			return r;
	}
	return NULL;
}

const struct route *conf_route_by_context(const struct conf *c, const char *path)
{
	const struct route *best = NULL;

	for (unsigned i = 0; i < c->nroutes; i++) {
		const struct route *r = &c->routes[i];
		size_t n = r->context_len;
		char next;

		if (strncmp(path, r->context, n) != 0)
			continue;
		next = path[n];
		/* "/" ends with the boundary itself */
		if (n > 1 && next != '\0' && next != '/' && next != '?')
			continue;
		if (!best || n > best->context_len)
			best = r;
	}
	return best;
}

const char *route_type_str(enum route_type t)
{
	switch (t) {
	case ROUTE_PROVIDER: return "provider";
	case ROUTE_PROXY:    return "proxy";
	}
	return "unknown";
}

const char *key_location_str(enum key_location l)
{
	switch (l) {
	case KEYLOC_HEADER: return "header";
	case KEYLOC_QUERY:  return "query";
	}
	return "unknown";
}
