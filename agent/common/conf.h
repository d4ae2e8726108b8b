/* SPDX-License-Identifier: Apache-2.0 */
/*
 * conf: keyauthd's configuration, read from one libconfig file.
 *
 * conf.c is the only reader of libconfig. It turns the file into a plain,
 * immutable struct conf that is shared read-only by every worker (and by
 * keyauthctl, which reads the same file). Loading never prints: every error
 * is written into a caller-owned buffer as "file:line: message (fix)".
 * conf_load keeps no global state and may run on any thread; a loaded conf
 * is read-only and may be shared between threads.
 */
#ifndef AGENT_CONF_H
#define AGENT_CONF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "log.h"
#include "provider.h"

#define CONF_DEFAULT_PATH     "/etc/keyauth/keyauth.conf"
#define CONF_DEFAULT_LISTEN   "/run/keyauth/keyauthd.sock"  /* unix socket path */
#define CONF_MAX_LISTENERS    16
#define CONF_MAX_ROUTES       1024
#define CONF_MAX_PEERS        64
#define CONF_MAX_RPM          1000000

enum route_type {
	ROUTE_PROVIDER = 0,      /* an LLM provider (wraps one vendor) */
	ROUTE_PROXY    = 1,      /* an app-facing proxy on top of a provider */
};

/* The HTTP methods a route may let through ("methods"), as bits of
 * route.methods, in the order the Allow header lists them. TRACE and CONNECT
 * are never allowed: no method outside this set reaches a provider. */
enum route_method {
	ROUTE_M_GET = 0,
	ROUTE_M_HEAD,
	ROUTE_M_POST,
	ROUTE_M_PUT,
	ROUTE_M_PATCH,
	ROUTE_M_DELETE,
	ROUTE_M_OPTIONS,
	ROUTE_M_ENTRIES
};
/* What LLM APIs use: GET, HEAD, POST, DELETE, OPTIONS. */
#define ROUTE_METHODS_DEFAULT ((1u << ROUTE_M_GET) | (1u << ROUTE_M_HEAD) | (1u << ROUTE_M_POST) | \
                               (1u << ROUTE_M_DELETE) | (1u << ROUTE_M_OPTIONS))

struct route {
	char *name;              /* [A-Za-z0-9_-]{1,64}, unique */
	size_t name_len;         /* strlen(name), for exact-length lookups */
	enum route_type type;
	char *context;           /* path prefix, starts with '/', unique */
	size_t context_len;      /* strlen(context) */
	char *key_name;          /* carriers[0]'s name (the seed's key_name) */
	enum key_location key_location; /* carriers[0]'s location */
	/* provider profile: never NULL after conf_load; "generic"
	 * when the route names none */
	const struct provider_profile *provider;
	/* where clients may put their key, first present wins: "carriers", else
	 * key_name/key_location, else the profile's */
	struct carrier carriers[ROUTE_MAX_CARRIERS];
	unsigned ncarriers;      /* >= 1 after conf_load */
	struct upstream_auth upstream_auth; /* "upstream_auth", else the profile's */
	enum error_format errors;           /* "error_format", else the profile's */
	/* which of the above the file set (conf_load's bookkeeping) */
	bool set_carriers, set_key, set_upauth, set_errors, set_identity;
	/* "identity_headers": HAProxy sends the key's id, owner, alias and tags
	 * upstream (X-Keyauth-*), and keyauthd puts alias and tags in the ACK;
	 * default on for proxy routes (an app wants to know its caller), off
	 * for provider routes (a vendor has no use for them) */
	bool identity_headers;
	char *upstream;          /* optional "host:port" for rendering; may be NULL */
	unsigned tunnel_timeout_s; /* WebSocket/upgraded tunnels: idle limit, rendered
	                          * as HAProxy's "timeout tunnel"; default 3600 */
	uint32_t rate_limit_rpm; /* requests per minute for keys without their own
	                          * limit, 0..CONF_MAX_RPM; 0 = none (default) */
	unsigned methods;        /* allowed HTTP methods, 1u << ROUTE_M_* bits, never 0
	                          * after conf_load; ROUTE_METHODS_DEFAULT unless set */
	bool admin;              /* the reserved route the "admin" group defines
	                          * (conf_admin.c): rendered apart, its keys carry scopes */
};

/* One HAProxy node of the "peers" section keyauthctl renders, so that several
 * HAProxy processes share the rate-limit stick table. keyauthd ignores it. */
struct haproxy_peer {
	char *name;              /* [A-Za-z0-9_.-]{1,64}, unique; HAProxy's peer name */
	char *address;           /* "host:port" or "[IPv6]:port" of its peers listener */
};

enum listen_family {
	LISTEN_TCP  = 0,         /* host:port, IPv4 or [IPv6] */
	LISTEN_UNIX = 1,         /* unix:/path */
};

struct listen_conf {
	enum listen_family family;
	char *addr;              /* as written, for logs and rendering */
	char *host;              /* TCP: numeric host without brackets */
	uint16_t port;           /* TCP */
	char *path;              /* UNIX */
	mode_t mode;             /* UNIX socket mode, default 0660 */
	bool tls;                /* written "tls:ADDRESS": TLS with the "tls" group */
};

/* The "tls" group: what TLS listeners serve, and what keyauthctl
 * tells HAProxy to verify and present. Paths as written. */
struct tls_listen_conf {
	char *cert;              /* PEM chain, leaf first (required) */
	char *key;               /* PEM private key (required) */
	char *ca;                /* client CA bundle: set = mutual TLS; may be NULL */
	char *ciphers;           /* TLS 1.2 cipher list; NULL = OpenSSL's default */
	int min_version;         /* TLS1_2_VERSION (default) or TLS1_3_VERSION */
	char *haproxy_ca;        /* rendered "ca-file": the CA HAProxy verifies us with; may be NULL */
	char *haproxy_client_cert; /* rendered "crt": HAProxy's client cert+key PEM; may be NULL */
};

/* The "frontend" group: where HAProxy takes clients, with what TLS and
 * HTTP/2. keyauthctl renders it; keyauthd checks it and ignores it. */
#define CONF_MAX_BINDS        16
struct frontend_conf {
	char *bind[CONF_MAX_BINDS];      /* "IPv4:port" or "[IPv6]:port", numeric, canonical */
	unsigned nbind;                  /* >= 1 after conf_load */
	bool tls;                        /* the tls group is there: every bind is TLS */
	char *certificate;               /* PEM (chain and key): HAProxy "crt"; or NULL */
	char *crt_list;                  /* HAProxy "crt-list" file; or NULL (one of the two) */
	int min_version;                 /* TLS1_2_VERSION (default) or TLS1_3_VERSION */
	bool http2;                      /* ALPN h2,http/1.1; default true with tls, else false */
};

/* The "admin" group (conf_admin.c): the admin API and console, served by
 * keyauth-admin on a unix socket behind HAProxy under <context>. Its
 * presence defines the reserved route "admin" (the last of conf.routes). */
#define CONF_ADMIN_ROUTE      "admin"
#define CONF_ADMIN_RPM        120
struct admin_conf {
	char *context;                   /* URL prefix, default "/admin" */
	char *socket;                    /* keyauth-admin's unix socket, absolute, < 108 bytes */
	char *user;                      /* the web process's user; NULL: do not change */
	char *keyauthctl;                /* the binary keyauth-admin executes */
	char *console_dir;               /* the console's static files */
	uint32_t rate_limit_rpm;         /* per admin key, default CONF_ADMIN_RPM */
	bool user_set;                   /* "user" was written in the file */
};

/* The "deploy" group (conf_deploy.c): keyauthctl deploy's defaults for how
 * HAProxy is found, checked and reloaded; each one is overridden by the flag
 * of the same name (--haproxy-dir, ...). NULL: not set (the flag's own
 * default or detection applies). */
struct deploy_conf {
	char *haproxy_dir;               /* where the rendered files go, absolute */
	char *reload_haproxy;            /* "none", "master:/abs.sock" or a shell command */
	char *haproxy_service;           /* "debian" or "none" */
	char *haproxy_defaults;          /* Debian service's defaults file, absolute */
	char *haproxy;                   /* the haproxy binary for -v and -c, absolute */
};

struct conf {
	char *path;                      /* file this was loaded from */
	struct listen_conf listen[CONF_MAX_LISTENERS];
	unsigned nlisten;                /* >= 1; default unix:CONF_DEFAULT_LISTEN */
	/* allow_plain_tcp: a listener that is neither unix nor "tls:" is
	 * refused without it (SPOP cannot authenticate the agent: see
	 * keyauth.conf(5)); default false */
	bool allow_plain_tcp;
	unsigned workers;                /* default: online CPU count */
	unsigned max_connections;        /* default 10000 */
	/* max_connections_per_peer: connections at once from one peer (a uid
	 * on unix listeners, a source address on TCP and TLS ones), at most
	 * max_connections; default min(1000, max_connections) */
	unsigned max_conn_per_peer;
	unsigned hello_timeout_ms;       /* hello_timeout: accept to HELLO, default 5000 */
	uint32_t max_frame_size;         /* default 16380, 256..SPOP_MAX_FRAME_SIZE */
	unsigned idle_timeout_ms;        /* default 60000; 0 = none */
	char *store_path;                /* default /var/lib/keyauth/keys.db */
	/* store backend "redis"; store_redis NULL for "file". */
	struct store_redis_conf {
		char *address;           /* "host:port" or "unix:/path"; default 127.0.0.1:6379 */
		int database;            /* SELECT, default 0 */
		char *username;          /* ACL user for AUTH; NULL: "default" (needs password_file) */
		char *password_file;     /* NULL: no AUTH; must not be group/other readable */
		char *namespace;         /* key prefix, default "keyauth" */
		unsigned resync_interval; /* seconds, default 60 */
		unsigned max_staleness;  /* seconds, default 300 */
		bool stale_deny;         /* stale_action "deny" (default) or "serve" */
		unsigned write_replicas; /* keyauthctl: WAIT for this many replicas, default 0 */
		unsigned write_timeout_ms; /* keyauthctl: WAIT timeout, default 1000 */
	} *store_redis;
	char *key_prefix;                /* default "ka_", [A-Za-z0-9]+_ */
	int log_level;                   /* LOG_ERR..LOG_DEBUG from <syslog.h>, default LOG_INFO */
	enum log_target log_target;
	char *user;                      /* NULL: do not change user */
	char *pid_file;                  /* NULL: none */
	char *control_path;              /* unix socket for keyauthctl stats/reload; NULL: none */
	struct listen_conf metrics;      /* metrics_listen, always TCP; addr NULL: no endpoint */
	struct route *routes;
	unsigned nroutes;
	struct haproxy_peer *peers;      /* haproxy_peers; NULL/0: no peers section */
	unsigned npeers;
	char *local_peer;                /* haproxy_local_peer: rendered as "localpeer"; may be NULL */
	unsigned rate_window_s;          /* rate_limit_window: the rate-limit period in
	                                  * seconds, default 60 (tests shorten it) */
	struct tls_listen_conf *tls;     /* the "tls" group; NULL when absent */
	struct frontend_conf *frontend;  /* the "frontend" group; NULL when absent */
	struct admin_conf *admin;        /* the "admin" group; NULL when absent */
	struct deploy_conf *deploy;      /* the "deploy" group; NULL when absent */
	struct conf_overrides *overrides; /* "route_overrides"; NULL when not set */
};

/* route_overrides (conf_overrides.c): route security edits made with
 * `keyauthctl route set`, kept out of keyauth.conf (which stays as its
 * author wrote it) in a machine-written libconfig file: <path> (applied,
 * what conf_load reads) and <path>.pending (edits not deployed yet). */
#define CONF_OVR_PENDING ".pending"
struct conf_overrides {
	char *path;              /* the applied file, as configured (absolute) */
	char *read;              /* the file read; NULL when it did not exist, or none was */
	char **orphans;          /* routes the file overrides that the config lacks */
	unsigned norphans;
};

/* How conf_load_opts reads route_overrides' files. */
struct conf_load_opts {
	const char *overrides;   /* not NULL: read this file instead (a candidate) */
	bool pending;            /* read <path>.pending when it exists, else <path> */
	bool no_overrides;       /* read none: the config file alone */
};

/* Loads and validates <path>. Returns a new conf owned by the caller (free it
 * with conf_free), or NULL with every error found written to <err>: one per
 * line, "file:line: message (fix)", lines separated by '\n' with no trailing
 * newline, truncated with "..." when <errlen> is too small. Errors that have
 * no line (file unreadable, routes missing) read "file: message". <err> may
 * be NULL when <errlen> is 0. Never prints. */
struct conf *conf_load(const char *path, char *err, size_t errlen);
/* conf_load, reading route_overrides' files as <o> says (NULL: as conf_load). */
struct conf *conf_load_opts(const char *path, const struct conf_load_opts *o, char *err,
                            size_t errlen);

/* Frees <c> and everything it owns. conf_free(NULL) is a no-op. */
void conf_free(struct conf *c);

/* Finds a route by exact name; NULL when absent. */
const struct route *conf_route_find(const struct conf *c, const char *name, size_t len);

/* The route whose context is the longest prefix of <path> ending at a
 * segment boundary (end of <path>, '/' or '?'): "/openai" matches "/openai"
 * and "/openai/v1/chat" but not "/openaix"; "/" matches every path starting
 * with '/'. NULL when no route matches. */
const struct route *conf_route_by_context(const struct conf *c, const char *path);

/* Parses tls.min_version, "1.2" or "1.3", into OpenSSL's version constant
 * (TLS1_2_VERSION, TLS1_3_VERSION); 0 when invalid or NULL. */
int conf_tls_version(const char *s);

/* The reserved admin route of <c> (route.admin), or NULL without an admin group. */
const struct route *conf_admin_route(const struct conf *c);

/* Short names as written in the config file ("provider", "header", ...). */
const char *route_type_str(enum route_type t);
const char *key_location_str(enum key_location l);
/* "GET", "HEAD", ...: the method's name as HTTP spells it; NULL when out of range. */
const char *route_method_str(enum route_method m);

#endif /* AGENT_CONF_H */
