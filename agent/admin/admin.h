/* SPDX-License-Identifier: Apache-2.0 */
/*
 * keyauth-admin: the admin API and console behind HAProxy's admin route.
 *
 * Every operation is performed by running the real keyauthctl with a fixed
 * argv built here from validated request fields (admin_build), so there is
 * one implementation of each operation: keyauthctl's. The pieces:
 *
 *   admin_ops.c     the op table (method + path pattern -> scope -> argv
 *                   template) and the strict request decoder (admin_build)
 *   admin_ipc.c     the frames between the web process and the executor
 *   admin_exec.c    the executor: runs keyauthctl (timeout, output bound)
 *   admin_http.c    libmicrohttpd: peer check, limits, headers, responses
 *   admin_reply.c   keyauthctl's outcome -> HTTP status and JSON body
 *   keyauth-admin.c main: configuration, socket, privilege separation
 *
 * Nothing here logs a key, a request body or a header value: log lines carry
 * the op, the status, the admin key's id and durations only.
 */
#ifndef AGENT_ADMIN_H
#define AGENT_ADMIN_H

#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define ADMIN_BODY_MAX     (64 * 1024)   /* larger bodies: 413 */
#define ADMIN_ARGV_MAX     96
#define ADMIN_ARGBUF_MAX   8192
#define ADMIN_QUERY_MAX    16
#define ADMIN_PARAM_MAX    64
#define ADMIN_ETAG_MAX     128
#define ADMIN_OUT_MAX      (4 * 1024 * 1024) /* keyauthctl's stdout, at most */
#define ADMIN_ERRTXT_MAX   1024              /* keyauthctl's stderr kept, at most */
#define ADMIN_EXEC_TIMEOUT_MS 60000

enum admin_scope {
	ADMIN_SCOPE_NONE   = 0,
	ADMIN_SCOPE_READ   = 1,
	ADMIN_SCOPE_WRITE  = 2,
	ADMIN_SCOPE_DEPLOY = 4,
};

enum admin_op {
	ADMIN_OP_WHOAMI = 0,
	ADMIN_OP_OPENAPI,
	ADMIN_OP_ROUTE_LIST,
	ADMIN_OP_ROUTE_GET,
	ADMIN_OP_ROUTE_EDIT,
	ADMIN_OP_KEY_LIST,
	ADMIN_OP_KEY_CREATE,
	ADMIN_OP_KEY_GET,
	ADMIN_OP_KEY_SET,
	ADMIN_OP_KEY_REVOKE,
	ADMIN_OP_KEY_ROTATE,
	ADMIN_OP_KEY_USAGE,
	ADMIN_OP_AUDIT,
	ADMIN_OP_DEPLOY_PREVIEW,
	ADMIN_OP_DEPLOY,
	ADMIN_OP_ENTRIES
};

/* One row of the op table. <pattern> is a path of fixed segments and at
 * most one "{id}" (a key id) or "{name}" (a route name) segment. */
struct admin_route {
	const char *method;      /* "GET", "POST", "PATCH" */
	const char *pattern;     /* "/v1/keys/{id}" */
	enum admin_op op;
	const char *name;        /* "key.get": for logs and the OpenAPI operationId */
	unsigned scope;          /* ADMIN_SCOPE_* the caller must hold */
	bool body;               /* takes a JSON body (else only an empty one) */
	bool exec;               /* runs keyauthctl (whoami and openapi do not) */
};

extern const struct admin_route admin_routes[];
extern const size_t admin_nroutes;

struct admin_kv {
	const char *k, *v;
};

/* A request as the op table sees it: everything comes from outside. */
struct admin_in {
	const struct admin_route *route;
	char param[ADMIN_PARAM_MAX + 1];     /* the {id} or {name} segment, "" when none */
	const char *body;                    /* may be NULL when body_len is 0 */
	size_t body_len;
	struct admin_kv query[ADMIN_QUERY_MAX];
	size_t nquery;
	const char *if_match;                /* NULL: absent */
};

/* A keyauthctl command line after "keyauthctl -c CONF": fixed words and
 * "--option=value" words only, so no value can ever be read as an option. */
struct admin_argv {
	const char *v[ADMIN_ARGV_MAX + 1];   /* NULL-terminated */
	size_t n;
	char buf[ADMIN_ARGBUF_MAX];
	size_t used;
};

/* An HTTP error: status, code ("invalid_json", "unknown_field", ...), message. */
struct admin_err {
	int status;
	char code[32];
	char msg[512];
};

int admin_err_set(struct admin_err *e, int status, const char *code, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

/* The table row for <method> and <path> (no query). NULL with *allow set to
 * the methods the path takes ("GET, HEAD, PATCH") when only the method is
 * wrong (405), or *allow "" when no pattern matches (404). <param> gets the
 * variable segment. */
const struct admin_route *admin_route_match(const char *method, const char *path,
                                            char param[ADMIN_PARAM_MAX + 1],
                                            char *allow, size_t allowlen);

/* Decodes and validates <in> (strictly: unknown fields, duplicate keys,
 * wrong types, out-of-range values, unknown query parameters are all 400)
 * and builds the keyauthctl words into <out>. Returns 0, or -1 with a 4xx
 * in <e>. Pure: no I/O, no logging. */
int admin_build(const struct admin_in *in, struct admin_argv *out, struct admin_err *e);

/* Query parameters (admin_query.c): admin_query_check refuses unknown
 * names and bad values for <in>'s op; admin_query_args appends the
 * keyauthctl options of key.list and audit.read. */
int admin_query_check(const struct admin_in *in, struct admin_err *e);
int admin_query_args(const struct admin_in *in, struct admin_argv *a, struct admin_err *e);
/* The audit entries to keep ("limit", default 500). */
unsigned admin_query_limit(const struct admin_in *in);
/* <s> for a message: [A-Za-z0-9_.-] pass, anything else becomes '?'. */
const char *admin_safe(char *out, size_t outlen, const char *s);
/* Shared by admin_query.c: "--opt=value" and a fixed word into <a>. */
int admin_argv_opt(struct admin_argv *a, const char *opt, const char *val, size_t len,
                   struct admin_err *e);
int admin_argv_word(struct admin_argv *a, const char *w, struct admin_err *e);

/* Scope names <-> bits: "read,write" -> 3; -1 on an unknown name. */
int admin_scopes_parse(const char *s, unsigned *bits);
const char *admin_scopes_str(unsigned bits, char *out, size_t outlen);

/* Identity headers HAProxy sets, as validated here (never logged whole). */
struct admin_who {
	char key_id[ADMIN_PARAM_MAX + 1];
	char owner[256];
	unsigned scopes;
};
/* Validates the header values; -1 when a value is malformed. */
int admin_who_set(struct admin_who *w, const char *key_id, const char *owner, const char *scopes);

/* ---- IPC (admin_ipc.c): web process <-> executor ------------------------- */

/* The executor's answer: keyauthctl's exit code (or -1: it could not run,
 * -2: timeout, -3: output too large) and what it printed. */
struct admin_result {
	int exit;
	char *out;               /* stdout, NUL-terminated; may hold a new key: wipe */
	size_t out_len;
	char err[ADMIN_ERRTXT_MAX]; /* stderr's first line, NUL-terminated */
};
void admin_result_free(struct admin_result *r);

/* Request frame: the op, the raw request parts and the caller. Returns a
 * malloc'ed frame or NULL. */
char *admin_ipc_encode(const struct admin_in *in, const struct admin_who *who, size_t *len);
/* Decodes a frame into <in> (pointers into <store>, which must outlive
 * <in>; free it with admin_ipc_store_free) and <who>. -1 on a bad frame. */
struct admin_ipc_store;
int admin_ipc_decode(const char *frame, size_t len, struct admin_in *in, struct admin_who *who,
                     struct admin_ipc_store **store);
void admin_ipc_store_free(struct admin_ipc_store *s);

/* Length-prefixed frames on a socketpair (blocking). */
int admin_ipc_send(int fd, const void *buf, size_t len);
int admin_ipc_recv(int fd, char **buf, size_t *len, size_t max);
int admin_ipc_send_result(int fd, const struct admin_result *r);
int admin_ipc_recv_result(int fd, struct admin_result *r);

/* ---- executor (admin_exec.c) ------------------------------------------------ */

struct admin_exec_conf {
	const char *keyauthctl;  /* absolute path */
	const char *conf_path;   /* passed as -c */
	unsigned timeout_ms;
};

/* Re-validates (scope, then admin_build) and runs one op; fills <r>.
 * Returns 0 when keyauthctl ran (whatever its exit), or -1 with <e> (a 4xx
 * from re-validation, or 500/503). */
int admin_exec_op(const struct admin_exec_conf *x, const struct admin_in *in,
                  const struct admin_who *who, struct admin_result *r, struct admin_err *e);
/* The executor's loop on <fd> until EOF (the web process went away) or
 * *stop. Returns 0 on EOF. */
int admin_exec_serve(const struct admin_exec_conf *x, int fd, volatile sig_atomic_t *stop);

/* ---- HTTP (admin_http.c) --------------------------------------------------- */

struct admin_file {
	const char *name;        /* "console/index.html", "openapi.json" */
	const char *type;        /* Content-Type */
	char *data;
	size_t len;
};

struct admin_http_conf {
	int listen_fd;
	int exec_fd;             /* socketpair to the executor; -1: run in process */
	const struct admin_exec_conf *exec;
	struct admin_file *files;
	size_t nfiles;
	uid_t peer_uids[4];      /* allowed peers besides root: HAProxy's user,
	                          * the user that started keyauth-admin */
	size_t npeer_uids;
	gid_t peer_gid;          /* allowed peer gid; (gid_t)-1: none */
};

struct admin_http;
struct admin_http *admin_http_start(const struct admin_http_conf *c, char *err, size_t errlen);
void admin_http_stop(struct admin_http *h);

/* ---- replies (admin_reply.c) ----------------------------------------------- */

/* Turns keyauthctl's outcome for <in> into a status and a JSON body
 * (malloc'ed, wiped by the caller after sending when it may hold a key).
 * <etag> gets an ETag to send ("" when none), <location> a Location. */
int admin_reply(const struct admin_in *in, const struct admin_result *r, char **body,
                size_t *len, char *etag, size_t etaglen, char *location, size_t loclen);
/* {"error":{"code":...,"message":...}} */
char *admin_error_body(const struct admin_err *e, size_t *len);

/* A date as YYYY-MM-DD (digits and dashes in place; the day itself is
 * keyauthctl's to judge). admin_query.c. */
bool admin_date_ok(const char *s);

#endif /* AGENT_ADMIN_H */
