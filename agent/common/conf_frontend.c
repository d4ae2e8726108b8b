/* SPDX-License-Identifier: Apache-2.0 */
/*
 * conf_frontend: the "frontend" group of keyauth.conf (conf-int.h): where
 * HAProxy takes client connections, its client TLS and HTTP/2.
 *
 * keyauthd does not serve clients: it only checks the group (so that
 * "keyauthd -t" and every keyauthctl command judge the same file), and
 * keyauthctl renders it as the gateway frontend's bind lines. The checks
 * are strict because a deployed gateway must bind exactly what the file
 * says: numeric addresses only (a host name would be resolved by HAProxy
 * at start-up, to whatever it resolves to then), each address once, absolute
 * paths of the characters keyauthctl can render, and one certificate source.
 * The files themselves are HAProxy's and often readable only by it: they
 * are checked by "haproxy -c" when keyauthctl deploys, not here.
 */
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/tls1.h>

#include "conf-int.h"

#define FE_PATH_MAX 4095

/* Checks "IPv4:port" or "[IPv6]:port" (numeric, port 1..65535) and writes
 * the address in a canonical form (inet_ntop) with its port into <canon>,
 * so that two spellings of one socket compare equal. Returns NULL when
 * valid, else what is wrong. */
static const char *conf_fe_addr(const char *a, char *canon, size_t size)
{
	char host[INET6_ADDRSTRLEN + 1], out[INET6_ADDRSTRLEN + 1];
	unsigned char bin[sizeof(struct in6_addr)];
	const char *colon, *hs;
	uint16_t port;
	size_t hlen;
	int af;

	if (strncmp(a, "unix", 4) == 0 || a[0] == '/')
		return "unix sockets are not supported here, only TCP addresses";
	if (a[0] == '[') {
		const char *end = strstr(a, "]:");

		if (end == NULL)
			return "an IPv6 address needs the form [addr]:port";
		hs = a + 1;
		hlen = (size_t)(end - hs);
		colon = end + 1;
		af = AF_INET6;
	} else {
		colon = strrchr(a, ':');
		if (colon == NULL)
			return "the port is missing";
		hs = a;
		hlen = (size_t)(colon - a);
		if (memchr(hs, ':', hlen) != NULL)
			return "an IPv6 address must be in brackets, as [::]:443";
		af = AF_INET;
	}
	if (hlen == 0)
		return "the address is missing (all IPv4 addresses: 0.0.0.0:443, all IPv6: [::]:443)";
	if (hlen >= sizeof(host))
		return "not a numeric IP address";
	memcpy(host, hs, hlen);
	host[hlen] = '\0';
	if (inet_pton(af, host, bin) != 1)
		return af == AF_INET6 ? "not a numeric IPv6 address"
			: "the host must be a numeric IPv4 address (no host names)";
	if (conf_parse_port(colon + 1, &port) == -1)
		return "the port must be a number from 1 to 65535";
	if (inet_ntop(af, bin, out, sizeof(out)) == NULL)
		return "not a numeric IP address";
	snprintf(canon, size, af == AF_INET6 ? "[%s]:%u" : "%s:%u", out, (unsigned)port);
	return NULL;
}

static void conf_kw_fe_bind(struct conf_ctx *x, const config_setting_t *s, void *obj)
{
	struct frontend_conf *fe = obj;
	char canon[CONF_MAX_BINDS][INET6_ADDRSTRLEN + 16];
	int n = config_setting_length(s);
	char q[CONF_QUOTE_MAX];

	if (n == 0) {
		conf_err(x, s, "bind in frontend is empty (give the addresses HAProxy takes clients on, e.g. bind = [ \"0.0.0.0:443\" ];)");
		return;
	}
	if (n > CONF_MAX_BINDS) {
		conf_err(x, s, "too many bind addresses in frontend: %d (at most %d)", n, CONF_MAX_BINDS);
		return;
	}
	for (int i = 0; i < n; i++) {
		const config_setting_t *e = config_setting_get_elem(s, (unsigned)i);
		const char *a, *why;
		bool dup = false;

		if (config_setting_type(e) != CONFIG_TYPE_STRING) {
			conf_err(x, e, "bind entries in frontend must be strings, not %s (e.g. \"0.0.0.0:443\")",
				 conf_type_name(config_setting_type(e)));
			continue;
		}
		a = config_setting_get_string(e);
		why = conf_fe_addr(a, canon[fe->nbind], sizeof(canon[0]));
		if (why != NULL) {
			conf_err(x, e, "bad bind address \"%s\" in frontend: %s (use \"IPv4:port\" or \"[IPv6]:port\", e.g. \"0.0.0.0:443\" or \"[::]:443\")",
				 conf_quote(q, sizeof(q), a), why);
			continue;
		}
		for (unsigned j = 0; j < fe->nbind && !dup; j++)
			dup = strcmp(canon[j], canon[fe->nbind]) == 0;
		if (dup) {
			conf_err(x, e, "duplicate bind address \"%s\" in frontend (list each address once)",
				 conf_quote(q, sizeof(q), a));
			continue;
		}
		if (conf_set_str(x, e, &fe->bind[fe->nbind], canon[fe->nbind]) == 0)
			fe->nbind++;
	}
}

/* certificate and crt_list: absolute paths of the characters keyauthctl
 * writes into haproxy.cfg unquoted. */
static void conf_kw_fe_tls_path(struct conf_ctx *x, const config_setting_t *s, void *obj)
{
	struct frontend_conf *fe = obj;
	const char *name = config_setting_name(s), *v = config_setting_get_string(s);
	char q[CONF_QUOTE_MAX];

	if (v[0] != '/' || strstr(v, "//") != NULL || strstr(v, "/../") != NULL ||
	    !conf_token_ok(v, FE_PATH_MAX, "._~/-")) {
		conf_err(x, s, "bad %s \"%s\" in frontend.tls: use an absolute path of A-Z a-z 0-9 . _ ~ / - (e.g. %s = \"%s\";)",
			 name, conf_quote(q, sizeof(q), v), name,
			 strcmp(name, "certificate") == 0 ? "/etc/haproxy/certs/gateway.pem"
							  : "/etc/haproxy/certs/crt-list.txt");
		return;
	}
	conf_set_str(x, s, strcmp(name, "certificate") == 0 ? &fe->certificate : &fe->crt_list, v);
}

static void conf_kw_fe_tls_min_version(struct conf_ctx *x, const config_setting_t *s, void *obj)
{
	struct frontend_conf *fe = obj;
	const char *v = config_setting_get_string(s);
	char q[CONF_QUOTE_MAX];

	/* "1.2" as in the agent's tls group, or HAProxy's own "TLSv1.2" */
	fe->min_version = conf_tls_version(strncmp(v, "TLSv", 4) == 0 ? v + 4 : v);
	if (fe->min_version == 0) {
		conf_err(x, s, "bad min_version \"%s\" in frontend.tls (use \"1.2\" or \"1.3\"; \"TLSv1.2\" and \"TLSv1.3\" are read too)",
			 conf_quote(q, sizeof(q), v));
		fe->min_version = TLS1_2_VERSION;
	}
}

static const struct conf_kw conf_fe_tls_kws[] = {
	{ "certificate", CONF_T_STRING, conf_kw_fe_tls_path, NULL, 0, 0,
	  "certificate = \"/etc/haproxy/certs/gateway.pem\";" },
	{ "crt_list", CONF_T_STRING, conf_kw_fe_tls_path, NULL, 0, 0,
	  "crt_list = \"/etc/haproxy/certs/crt-list.txt\";" },
	{ "min_version", CONF_T_STRING, conf_kw_fe_tls_min_version, NULL, 0, 0,
	  "min_version = \"1.2\";" },
};

static void conf_kw_fe_tls(struct conf_ctx *x, const config_setting_t *s, void *obj)
{
	struct frontend_conf *fe = obj;
	bool cert = config_setting_get_member(s, "certificate") != NULL;
	bool list = config_setting_get_member(s, "crt_list") != NULL;

	fe->tls = true;
	fe->min_version = TLS1_2_VERSION;
	conf_walk(x, s, " in frontend.tls", conf_fe_tls_kws, COUNTOF(conf_fe_tls_kws), fe);
	if (cert && list)
		conf_err(x, s, "frontend.tls has both certificate and crt_list (keep one: certificate for one PEM file, crt_list for several certificates chosen by SNI)");
	else if (!cert && !list)
		conf_err(x, s, "frontend.tls needs certificate or crt_list (e.g. certificate = \"/etc/haproxy/certs/gateway.pem\";, the chain and its key in one PEM file)");
}

static void conf_kw_fe_http2(struct conf_ctx *x, const config_setting_t *s, void *obj)
{
	(void)x;
	((struct frontend_conf *)obj)->http2 = config_setting_get_bool(s) != 0;
}

static const struct conf_kw conf_fe_kws[] = {
	{ "bind", CONF_T_SEQ, conf_kw_fe_bind, NULL, 0, 0, "bind = [ \"0.0.0.0:443\" ];" },
	{ "tls", CONF_T_GROUP, conf_kw_fe_tls, NULL, 0, 0,
	  "tls = { certificate = \"/etc/haproxy/certs/gateway.pem\"; min_version = \"1.2\"; };" },
	{ "http2", CONF_T_BOOL, conf_kw_fe_http2, NULL, 0, 0, "http2 = true;" },
};

void conf_frontend_free(struct frontend_conf *fe)
{
	if (fe == NULL)
		return;
	for (unsigned i = 0; i < fe->nbind; i++)
		free(fe->bind[i]);
	free(fe->certificate);
	free(fe->crt_list);
	free(fe);
}

/*
 * The group as a whole: bind is required (a frontend group that names no
 * address would leave the choice to keyauthctl, which deploy refuses), and
 * http2 needs tls: HAProxy offers HTTP/2 to clients through ALPN in the TLS
 * handshake; on a plain bind it would only take clients that start in
 * HTTP/2 unasked (prior knowledge), which no SDK does.
 */
void conf_kw_frontend(struct conf_ctx *x, const config_setting_t *s, void *obj)
{
	struct conf *c = obj;
	const config_setting_t *h2 = config_setting_get_member(s, "http2");

	if (c->frontend == NULL) {
		c->frontend = calloc(1, sizeof(*c->frontend));
		if (c->frontend == NULL) {
			conf_err(x, s, "out of memory");
			return;
		}
	}
	c->frontend->http2 = true;
	conf_walk(x, s, " in frontend", conf_fe_kws, COUNTOF(conf_fe_kws), c->frontend);
	if (config_setting_get_member(s, "bind") == NULL)
		conf_err(x, s, "frontend needs bind, the addresses HAProxy takes clients on (e.g. bind = [ \"0.0.0.0:443\" ];)");
	if (!c->frontend->tls) {
		if (h2 != NULL && config_setting_type(h2) == CONFIG_TYPE_BOOL && config_setting_get_bool(h2))
			conf_err(x, h2, "http2 = true in frontend needs tls (clients ask for HTTP/2 in the TLS handshake; add tls = { certificate = \"...\"; }; or remove http2)");
		c->frontend->http2 = false;
	}
}
