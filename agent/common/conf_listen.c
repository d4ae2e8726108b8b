/* SPDX-License-Identifier: Apache-2.0 */
/*
 * conf_listen: the listeners (and who may use them: allow_plain_tcp,
 * max_connections_per_peer, hello_timeout), the control socket,
 * metrics_listen, TLS, the HAProxy peers and the small top-level settings of
 * keyauth.conf (conf-int.h).
 */
#include <arpa/inet.h>
#include <sys/un.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/tls1.h>

#include "conf-int.h"

/* ---- listen ---------------------------------------------------------- */

/* Fills <l> from "host:port", "[v6]:port" or "unix:/path". Returns 0, or -1
 * with <why> saying what is wrong. Does not own <l>'s strings on failure. */
static int conf_parse_addr(const char *a, struct listen_conf *l, const char **why)
{
	char host[INET6_ADDRSTRLEN + 1];
	unsigned char bin[sizeof(struct in6_addr)];
	const char *colon, *hs;
	size_t hlen;
	int af;

	if (strncmp(a, "unix:", 5) == 0) {
		const char *p = a + 5;

		if (p[0] != '/') {
			*why = "a unix socket path must be absolute";
			return -1;
		}
		if (strlen(p) >= sizeof(((struct sockaddr_un *)0)->sun_path)) {
			*why = "a unix socket path must be shorter than 108 bytes";
			return -1;
		}
		l->family = LISTEN_UNIX;
		l->path = strdup(p);
		return l->path ? 0 : (*why = "out of memory", -1);
	}
	if (a[0] == '[') {
		const char *end = strstr(a, "]:");

		if (!end) {
			*why = "an IPv6 address needs the form [addr]:port";
			return -1;
		}
		hs = a + 1;
		hlen = (size_t)(end - hs);
		colon = end + 1;
		af = AF_INET6;
	} else {
		colon = strrchr(a, ':');
		if (!colon) {
			*why = "the port is missing";
			return -1;
		}
		hs = a;
		hlen = (size_t)(colon - a);
		if (memchr(hs, ':', hlen)) {
			*why = "an IPv6 address must be in brackets, as [::1]:12345";
			return -1;
		}
		af = AF_INET;
	}
	if (hlen == 0 || hlen >= sizeof(host)) {
		*why = "the host must be a numeric IPv4 or IPv6 address";
		return -1;
	}
	memcpy(host, hs, hlen);
	host[hlen] = '\0';
	if (inet_pton(af, host, bin) != 1) {
		*why = af == AF_INET6 ? "not a numeric IPv6 address"
			: "the host must be a numeric IPv4 address (no host names)";
		return -1;
	}
	if (conf_parse_port(colon + 1, &l->port) == -1) {
		*why = "the port must be a number from 1 to 65535";
		return -1;
	}
	l->family = LISTEN_TCP;
	l->host = strdup(host);
	return l->host ? 0 : (*why = "out of memory", -1);
}

void conf_listen_clear(struct listen_conf *l)
{
	free(l->addr);
	free(l->host);
	free(l->path);
	memset(l, 0, sizeof(*l));
}

/* Two listeners that would bind the same socket. */
static bool conf_listen_same(const struct listen_conf *a, const struct listen_conf *b)
{
	unsigned char ba[sizeof(struct in6_addr)], bb[sizeof(struct in6_addr)];
	int af;

	if (a->family != b->family)
		return false;
	if (a->family == LISTEN_UNIX)
		return strcmp(a->path, b->path) == 0;
	if (a->port != b->port)
		return false;
	af = strchr(a->host, ':') ? AF_INET6 : AF_INET;
	if ((strchr(b->host, ':') ? AF_INET6 : AF_INET) != af)
		return false;
	if (inet_pton(af, a->host, ba) != 1 || inet_pton(af, b->host, bb) != 1)
		return false;
	return memcmp(ba, bb, af == AF_INET6 ? 16 : 4) == 0;
}

void conf_kw_listen(struct conf_ctx *x, const config_setting_t *s, void *obj)
{
	struct conf *c = obj;
	int n = config_setting_length(s);
	char q[CONF_QUOTE_MAX];

	for (unsigned i = 0; i < c->nlisten; i++)
		conf_listen_clear(&c->listen[i]);
	c->nlisten = 0;
	x->plain_tcp_s = NULL;
	if (n == 0) {
		conf_err(x, s, "listen is empty (give at least one address, e.g. listen = [ \"unix:" CONF_DEFAULT_LISTEN "\" ];)");
		return;
	}
	if (n > CONF_MAX_LISTENERS) {
		conf_err(x, s, "too many listen addresses: %d (at most %d)", n, CONF_MAX_LISTENERS);
		return;
	}
	for (int i = 0; i < n; i++) {
		const config_setting_t *e = config_setting_get_elem(s, (unsigned)i);
		struct listen_conf *l = &c->listen[c->nlisten];
		const char *a, *why = NULL;
		bool dup = false;

		if (config_setting_type(e) != CONFIG_TYPE_STRING) {
			conf_err(x, e, "listen entries must be strings, not %s (e.g. \"unix:" CONF_DEFAULT_LISTEN "\")",
				 conf_type_name(config_setting_type(e)));
			continue;
		}
		a = config_setting_get_string(e);
		if (conf_parse_addr(strncmp(a, "tls:", 4) == 0 ? a + 4 : a, l, &why) == -1) {
			conf_err(x, e, "bad listen address \"%s\": %s (use \"IPv4:port\", \"[IPv6]:port\" or \"unix:/absolute/path\")",
				 conf_quote(q, sizeof(q), a), why);
			conf_listen_clear(l);
			continue;
		}
		for (unsigned j = 0; j < c->nlisten && !dup; j++)
			dup = conf_listen_same(&c->listen[j], l);
		if (dup) {
			conf_err(x, e, "duplicate listen address \"%s\" (list each address once)",
				 conf_quote(q, sizeof(q), a));
			conf_listen_clear(l);
			continue;
		}
		if (conf_set_str(x, e, &l->addr, a) == -1) {
			conf_listen_clear(l);
			continue;
		}
		l->tls = strncmp(a, "tls:", 4) == 0;
		if (l->family == LISTEN_TCP && !l->tls && x->plain_tcp_s == NULL)
			x->plain_tcp_s = e;
		c->nlisten++;
	}
}

void conf_kw_allow_plain_tcp(struct conf_ctx *x, const config_setting_t *s, void *obj)
{
	(void)x;
	((struct conf *)obj)->allow_plain_tcp = config_setting_get_bool(s) != 0;
}

/*
 * What depends on several listening settings, once the walk is done: the
 * default listener, the unix sockets' mode, TLS listeners without a tls
 * group, plain TCP without allow_plain_tcp, max_connections_per_peer.
 *
 * WHY plain TCP needs consent: SPOP has no peer authentication and HAProxy's
 * check accepts any HELLO, so whoever listens on the agent's port is the
 * agent. While keyauthd is down (a restart, a crash, before boot finishes)
 * any local user may bind that port: every NOTIFY then goes to them, with
 * every client key, and their ACK opens every route. A unix socket in a
 * directory only keyauthd's user may write cannot be taken that way, and
 * "tls:" lets HAProxy verify the agent's certificate.
 */
void conf_listen_finish(struct conf_ctx *x, struct conf *c, const config_setting_t *root)
{
	const config_setting_t *pp = config_setting_get_member(root, "max_connections_per_peer");

	if (config_setting_get_member(root, "listen") == NULL) {
		struct listen_conf *l = &c->listen[0];

		l->family = LISTEN_UNIX;
		if (conf_set_str(x, NULL, &l->addr, "unix:" CONF_DEFAULT_LISTEN) == 0 &&
		    conf_set_str(x, NULL, &l->path, CONF_DEFAULT_LISTEN) == 0)
			c->nlisten = 1;
	}
	for (unsigned i = 0; i < c->nlisten; i++) {
		if (c->listen[i].family == LISTEN_UNIX)
			c->listen[i].mode = x->socket_mode;
	}
	for (unsigned i = 0; i < c->nlisten; i++)
		if (c->listen[i].tls && c->tls == NULL)
			conf_err(x, NULL, "listen \"%s\" uses TLS but there is no tls group (add tls = { cert = \"...\"; key = \"...\"; };)",
				 c->listen[i].addr);
	if (x->plain_tcp_s != NULL && !c->allow_plain_tcp) {
		char q[CONF_QUOTE_MAX];

		conf_err(x, x->plain_tcp_s, "listen \"%s\" is plain TCP, and HAProxy cannot tell keyauthd from any other process on that port: any local user who binds it while keyauthd is away (restarting, stopped, not started yet) receives every client key and can let every request in (on the same host use a unix socket, e.g. listen = [ \"unix:" CONF_DEFAULT_LISTEN "\" ];; across hosts use \"tls:ADDRESS\" with HAProxy verifying the agent's certificate; or accept the risk with allow_plain_tcp = true;)",
			 conf_quote(q, sizeof(q), config_setting_get_string(x->plain_tcp_s)));
	}
	if (c->max_conn_per_peer == 0) {
		c->max_conn_per_peer = c->max_connections < CONF_DEFAULT_PER_PEER ?
			c->max_connections : CONF_DEFAULT_PER_PEER;
	} else if (c->max_conn_per_peer > c->max_connections) {
		conf_err(x, pp, "max_connections_per_peer = %u is above max_connections = %u (use at most %u, or raise max_connections)",
			 c->max_conn_per_peer, c->max_connections, c->max_connections);
	}
}

void conf_kw_socket_mode(struct conf_ctx *x, const config_setting_t *s, void *obj)
{
	const char *v = config_setting_get_string(s);
	unsigned long mode = 0;
	char q[CONF_QUOTE_MAX];
	size_t i;

	(void)obj;
	for (i = 0; v[i] >= '0' && v[i] <= '7' && i < 5; i++)
		mode = mode * 8 + (unsigned long)(v[i] - '0');
	if (i == 0 || v[i] || mode > 07777) {
		conf_err(x, s, "bad socket_mode \"%s\" (use an octal mode as a string, e.g. socket_mode = \"0660\";)",
			 conf_quote(q, sizeof(q), v));
		return;
	}
	x->socket_mode = (mode_t)mode;
}

/* ---- simple top-level settings --------------------------------------- */

void conf_set_rate_window(void *obj, long long v)
{
	((struct conf *)obj)->rate_window_s = (unsigned)v;
}

void conf_set_workers(void *obj, long long v)
{
	((struct conf *)obj)->workers = (unsigned)v;
}

void conf_set_max_connections(void *obj, long long v)
{
	((struct conf *)obj)->max_connections = (unsigned)v;
}

void conf_set_max_frame_size(void *obj, long long v)
{
	((struct conf *)obj)->max_frame_size = (uint32_t)v;
}

void conf_set_idle_timeout(void *obj, long long v)
{
	((struct conf *)obj)->idle_timeout_ms = (unsigned)v * 1000u;
}

void conf_set_max_conn_per_peer(void *obj, long long v)
{
	((struct conf *)obj)->max_conn_per_peer = (unsigned)v;
}

void conf_set_hello_timeout(void *obj, long long v)
{
	((struct conf *)obj)->hello_timeout_ms = (unsigned)v * 1000u;
}

void conf_kw_key_prefix(struct conf_ctx *x, const config_setting_t *s, void *obj)
{
	struct conf *c = obj;
	const char *v = config_setting_get_string(s);
	size_t len = strlen(v);
	char body[CONF_PREFIX_BODY_MAX + 1], q[CONF_QUOTE_MAX];

	if (len < 2 || len > CONF_PREFIX_BODY_MAX + 1 || v[len - 1] != '_')
		goto bad;
	memcpy(body, v, len - 1);
	body[len - 1] = '\0';
	if (!conf_token_ok(body, CONF_PREFIX_BODY_MAX, ""))
		goto bad;
	conf_set_str(x, s, &c->key_prefix, v);
	return;
bad:
	conf_err(x, s, "bad key_prefix \"%s\" (use 1 to %d letters or digits followed by \"_\", e.g. key_prefix = \"ka_\";)",
		 conf_quote(q, sizeof(q), v), CONF_PREFIX_BODY_MAX);
}

void conf_kw_user(struct conf_ctx *x, const config_setting_t *s, void *obj)
{
	struct conf *c = obj;
	const char *v = config_setting_get_string(s);
	char q[CONF_QUOTE_MAX];

	if (v[0] == '-' || !conf_token_ok(v, 32, "._-")) {
		conf_err(x, s, "bad user \"%s\" (use an existing user name, e.g. user = \"keyauth\";, or remove the setting)",
			 conf_quote(q, sizeof(q), v));
		return;
	}
	conf_set_str(x, s, &c->user, v);
}

void conf_kw_pid_file(struct conf_ctx *x, const config_setting_t *s, void *obj)
{
	struct conf *c = obj;
	const char *v = config_setting_get_string(s);

	if (!v[0]) {
		conf_err(x, s, "pid_file is empty (give a path, e.g. pid_file = \"/run/keyauth/keyauthd.pid\";, or remove the setting)");
		return;
	}
	conf_set_str(x, s, &c->pid_file, v);
}

void conf_kw_control_socket(struct conf_ctx *x, const config_setting_t *s, void *obj)
{
	struct conf *c = obj;
	const char *v = config_setting_get_string(s);

	if (v[0] != '/' || strlen(v) >= 108) {
		conf_err(x, s, "control_socket must be an absolute path shorter than 108 bytes (e.g. control_socket = \"/run/keyauth/control.sock\";, or remove the setting)");
		return;
	}
	conf_set_str(x, s, &c->control_path, v);
}

/* "host:port" or a bare port, which means loopback: the metrics tell how
 * busy the gate is and which routes exist, nothing to publish by default. */
void conf_kw_metrics_listen(struct conf_ctx *x, const config_setting_t *s, void *obj)
{
	struct conf *c = obj;
	const char *v = config_setting_get_string(s);
	char a[sizeof("127.0.0.1:65535")], q[CONF_QUOTE_MAX];
	const char *why = NULL;

	if (v[0] != '\0' && strspn(v, "0123456789") == strlen(v) && strlen(v) <= 5) {
		snprintf(a, sizeof(a), "127.0.0.1:%s", v);
		v = a;
	}
	conf_listen_clear(&c->metrics);
	if (strncmp(v, "unix:", 5) == 0)
		why = "the metrics endpoint is TCP only";
	else if (conf_parse_addr(v, &c->metrics, &why) == 0 &&
		 conf_set_str(x, s, &c->metrics.addr, v) == 0)
		return;
	if (why != NULL)
		conf_err(x, s, "bad metrics_listen \"%s\": %s (use \"127.0.0.1:9412\", \"[::1]:9412\" or a port alone for loopback, or remove the setting)",
			 conf_quote(q, sizeof(q), config_setting_get_string(s)), why);
	conf_listen_clear(&c->metrics);
}

/* ---- HAProxy peers (rendering only) ------------------------------------ */

static void conf_kw_peer_name(struct conf_ctx *x, const config_setting_t *s, void *obj)
{
	struct haproxy_peer *p = obj;
	const char *v = config_setting_get_string(s);
	char q[CONF_QUOTE_MAX];

	if (!conf_token_ok(v, CONF_NAME_MAX, "_.-")) {
		conf_err(x, s, "bad peer name \"%s\" (use 1 to %d characters of A-Z a-z 0-9 _ . -, e.g. the node's host name)",
			 conf_quote(q, sizeof(q), v), CONF_NAME_MAX);
		return;
	}
	conf_set_str(x, s, &p->name, v);
}

static void conf_kw_peer_address(struct conf_ctx *x, const config_setting_t *s, void *obj)
{
	struct haproxy_peer *p = obj;
	const char *v = config_setting_get_string(s);
	char q[CONF_QUOTE_MAX];

	if (!conf_hostport_ok(v)) {
		conf_err(x, s, "bad peer address \"%s\" (use \"host:port\" or \"[IPv6]:port\", e.g. address = \"10.0.0.1:10000\";)",
			 conf_quote(q, sizeof(q), v));
		return;
	}
	conf_set_str(x, s, &p->address, v);
}

static const struct conf_kw conf_peer_kws[] = {
	{ "name", CONF_T_STRING, conf_kw_peer_name, NULL, 0, 0, "name = \"lb1\";" },
	{ "address", CONF_T_STRING, conf_kw_peer_address, NULL, 0, 0, "address = \"10.0.0.1:10000\";" },
};

void conf_kw_haproxy_peers(struct conf_ctx *x, const config_setting_t *s, void *obj)
{
	struct conf *c = obj;
	int n = config_setting_length(s);
	char q[CONF_QUOTE_MAX];

	if (n > CONF_MAX_PEERS) {
		conf_err(x, s, "too many haproxy_peers: %d (at most %d)", n, CONF_MAX_PEERS);
		return;
	}
	if (n == 0)
		return;
	c->peers = calloc((size_t)n, sizeof(*c->peers));
	if (!c->peers) {
		conf_err(x, s, "out of memory");
		return;
	}
	for (int i = 0; i < n; i++) {
		const config_setting_t *e = config_setting_get_elem(s, (unsigned)i);
		struct haproxy_peer *p = &c->peers[c->npeers++];
		char where[48];

		if (config_setting_type(e) != CONFIG_TYPE_GROUP) {
			conf_err(x, e, "haproxy peer #%d must be a group, not %s (e.g. { name = \"lb1\"; address = \"10.0.0.1:10000\"; })",
				 i + 1, conf_type_name(config_setting_type(e)));
			continue;
		}
		snprintf(where, sizeof(where), " in haproxy peer #%d", i + 1);
		conf_walk(x, e, where, conf_peer_kws, COUNTOF(conf_peer_kws), p);
		if (!config_setting_get_member(e, "name") || !config_setting_get_member(e, "address")) {
			conf_err(x, e, "haproxy peer #%d needs both name and address (e.g. { name = \"lb1\"; address = \"10.0.0.1:10000\"; })",
				 i + 1);
			continue;
		}
		for (unsigned j = 0; p->name && j + 1 < c->npeers; j++) {
			if (c->peers[j].name && strcmp(c->peers[j].name, p->name) == 0) {
				conf_err(x, e, "duplicate haproxy peer name \"%s\" (give each node its own name)",
					 conf_quote(q, sizeof(q), p->name));
				break;
			}
		}
	}
}

void conf_kw_haproxy_local_peer(struct conf_ctx *x, const config_setting_t *s, void *obj)
{
	struct conf *c = obj;
	const char *v = config_setting_get_string(s);
	char q[CONF_QUOTE_MAX];

	if (!conf_token_ok(v, CONF_NAME_MAX, "_.-")) {
		conf_err(x, s, "bad haproxy_local_peer \"%s\" (use the name of one of haproxy_peers)",
			 conf_quote(q, sizeof(q), v));
		return;
	}
	conf_set_str(x, s, &c->local_peer, v);
}

/* ---- tls ----------------------------------------------------------------- */

/* Every string member of the tls group: a non-empty path or list. */
int conf_tls_version(const char *s)
{
	if (s == NULL)
		return 0;
	if (strcmp(s, "1.2") == 0)
		return TLS1_2_VERSION;
	if (strcmp(s, "1.3") == 0)
		return TLS1_3_VERSION;
	return 0;
}

static void conf_kw_tls_str(struct conf_ctx *x, const config_setting_t *s, void *obj)
{
	struct tls_listen_conf *t = ((struct conf *)obj)->tls;
	const char *name = config_setting_name(s), *v = config_setting_get_string(s);
	char **dst = strcmp(name, "cert") == 0 ? &t->cert : strcmp(name, "key") == 0 ? &t->key :
		     strcmp(name, "ca") == 0 ? &t->ca : strcmp(name, "ciphers") == 0 ? &t->ciphers :
		     strcmp(name, "haproxy_ca") == 0 ? &t->haproxy_ca : &t->haproxy_client_cert;

	if (!v[0]) {
		conf_err(x, s, "%s in tls is empty (give a file path, or remove the setting)", name);
		return;
	}
	conf_set_str(x, s, dst, v);
}

static void conf_kw_tls_min_version(struct conf_ctx *x, const config_setting_t *s, void *obj)
{
	struct tls_listen_conf *t = ((struct conf *)obj)->tls;
	const char *v = config_setting_get_string(s);
	char q[CONF_QUOTE_MAX];

	t->min_version = conf_tls_version(v);
	if (t->min_version == 0)
		conf_err(x, s, "bad min_version \"%s\" in tls (use \"1.2\" or \"1.3\")",
			 conf_quote(q, sizeof(q), v));
}

static const struct conf_kw conf_tls_kws[] = {
	{ "cert", CONF_T_STRING, conf_kw_tls_str, NULL, 0, 0, "cert = \"/etc/keyauth/tls/agent.pem\";" },
	{ "key", CONF_T_STRING, conf_kw_tls_str, NULL, 0, 0, "key = \"/etc/keyauth/tls/agent.key\";" },
	{ "ca", CONF_T_STRING, conf_kw_tls_str, NULL, 0, 0, "ca = \"/etc/keyauth/tls/haproxy-ca.pem\";" },
	{ "ciphers", CONF_T_STRING, conf_kw_tls_str, NULL, 0, 0, "ciphers = \"ECDHE+AESGCM:ECDHE+CHACHA20\";" },
	{ "min_version", CONF_T_STRING, conf_kw_tls_min_version, NULL, 0, 0, "min_version = \"1.2\";" },
	{ "haproxy_ca", CONF_T_STRING, conf_kw_tls_str, NULL, 0, 0, "haproxy_ca = \"/etc/haproxy/keyauth-ca.pem\";" },
	{ "haproxy_client_cert", CONF_T_STRING, conf_kw_tls_str, NULL, 0, 0,
	  "haproxy_client_cert = \"/etc/haproxy/keyauth-client.pem\";" },
};

void conf_kw_tls(struct conf_ctx *x, const config_setting_t *s, void *obj)
{
	struct conf *c = obj;

	if (c->tls == NULL) {
		c->tls = calloc(1, sizeof(*c->tls));
		if (c->tls == NULL) {
			conf_err(x, s, "out of memory");
			return;
		}
		c->tls->min_version = TLS1_2_VERSION;
	}
	conf_walk(x, s, " in tls", conf_tls_kws, COUNTOF(conf_tls_kws), obj);
}
