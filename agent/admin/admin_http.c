/* SPDX-License-Identifier: Apache-2.0 */
/*
 * admin_http: the HTTP side of keyauth-admin, on libmicrohttpd.
 *
 * libmicrohttpd takes the listening unix socket main() made
 * (MHD_OPTION_LISTEN_SOCKET) and runs one thread per connection, at most
 * ADMIN_CONN_MAX of them; each request is checked in this order:
 *   peer      SO_PEERCRED: root, the uid that started us, HAProxy's user
 *             or group (not the web process's own user: nothing else should
 *             run as it);
 *             anyone else's connection is closed without an answer
 *   static    GET|HEAD / and /console/<fixed name>: no identity needed
 *   route     the op table: 404, or 405 with Allow
 *   identity  X-Keyauth-Key-Id (set by HAProxy from keyauthd's verdict) or
 *             401; the scope the op needs or 403
 *   body      > ADMIN_BODY_MAX: 413; not application/json: 415
 *   decode    admin_build (400, 428)
 *   execute   through the executor (one op at a time) or in process
 * The log line of each request names the op, the status, the admin key's
 * id and the time taken: never a header value, a body, or a key.
 */
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>
#include <microhttpd.h>

#include "admin.h"
#include "log.h"

#define ADMIN_CONN_MAX 64

struct admin_http {
	struct MHD_Daemon *mhd;
	struct admin_http_conf c;
	pthread_mutex_t exec_lock;   /* one op at a time on the executor's socket */
};

struct req {
	char *body;
	size_t len, cap;
	bool too_large;
	bool started;
	struct timespec t0;
};

static const char CSP[] = "default-src 'none'; script-src 'self'; style-src 'self'; "
	"connect-src 'self'; img-src 'self'; form-action 'none'; frame-ancestors 'none'; "
	"base-uri 'none'";

static void
mhd_log(void *cls, const char *fmt, va_list ap)
{
	char msg[512];
	size_t n;

	(void)cls;
	vsnprintf(msg, sizeof(msg), fmt, ap);
	n = strlen(msg);
	while (n > 0 && msg[n - 1] == '\n')
		msg[--n] = '\0';
	log_warning("event=http_error error=%s", LOG_Q(msg));
}

static long
ms_since(const struct timespec *t0)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (t.tv_sec - t0->tv_sec) * 1000 + (t.tv_nsec - t0->tv_nsec) / 1000000;
}

/* A body this file made (NUL-terminated JSON): it may hold a new key, so
 * it is wiped before it is freed. */
static void
wipe_free(void *p)
{
	explicit_bzero(p, strlen(p));
	free(p);
}

static enum MHD_Result
send_body(struct MHD_Connection *conn, int status, const char *type, char *body, size_t len,
          bool owned, const char *allow, const char *etag, const char *location)
{
	struct MHD_Response *r;
	enum MHD_Result ret;

	if (owned)
		r = MHD_create_response_from_buffer_with_free_callback(len, body, wipe_free);
	else
		r = MHD_create_response_from_buffer(len, body, MHD_RESPMEM_PERSISTENT);
	if (r == NULL) {
		if (owned)
			wipe_free(body);
		return MHD_NO;
	}
	MHD_add_response_header(r, "Content-Type", type);
	MHD_add_response_header(r, "Content-Security-Policy", CSP);
	MHD_add_response_header(r, "X-Content-Type-Options", "nosniff");
	MHD_add_response_header(r, "Referrer-Policy", "no-referrer");
	MHD_add_response_header(r, "X-Frame-Options", "DENY");
	MHD_add_response_header(r, "Cache-Control", "no-store");
	if (allow != NULL && allow[0] != '\0')
		MHD_add_response_header(r, "Allow", allow);
	if (etag != NULL && etag[0] != '\0')
		MHD_add_response_header(r, "ETag", etag);
	if (location != NULL && location[0] != '\0')
		MHD_add_response_header(r, "Location", location);
	ret = MHD_queue_response(conn, (unsigned)status, r);
	MHD_destroy_response(r);
	return ret;
}

static enum MHD_Result
send_err(struct MHD_Connection *conn, struct req *q, const char *method, const char *opname,
         const struct admin_err *e, const char *allow, const char *key_id)
{
	size_t len = 0;
	char *b = admin_error_body(e, &len);

	log_info("event=request method=%s op=%s status=%d error=%s admin_key_id=%s ms=%ld",
	         LOG_V(method), opname, e->status, e->code, key_id ? key_id : "-", ms_since(&q->t0));
	if (b == NULL)
		return MHD_NO;
	return send_body(conn, e->status, "application/json", b, len, true, allow, NULL, NULL);
}

/* Root, the users of peer_uids (HAProxy's, whoever started us), or a
 * process whose group is HAProxy's. */
static bool
peer_allowed(const struct admin_http *h, struct MHD_Connection *conn, struct ucred *cr)
{
	const union MHD_ConnectionInfo *ci = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
	socklen_t len = sizeof(*cr);
	size_t i;

	if (ci == NULL || getsockopt(ci->connect_fd, SOL_SOCKET, SO_PEERCRED, cr, &len) != 0)
		return false;
	if (cr->uid == 0)
		return true;
	for (i = 0; i < h->c.npeer_uids; i++)
		if (cr->uid == h->c.peer_uids[i])
			return true;
	return h->c.peer_gid != (gid_t)-1 && cr->gid == h->c.peer_gid;
}

static const struct admin_file *
file_find(const struct admin_http *h, const char *name)
{
	size_t i;

	for (i = 0; i < h->c.nfiles; i++)
		if (strcmp(h->c.files[i].name, name) == 0)
			return h->c.files[i].data != NULL ? &h->c.files[i] : NULL;
	return NULL;
}

struct qctx {
	struct admin_in *in;
	bool overflow;
};

static enum MHD_Result
query_it(void *cls, enum MHD_ValueKind kind, const char *k, const char *v)
{
	struct qctx *qc = cls;

	(void)kind;
	if (qc->in->nquery >= ADMIN_QUERY_MAX) {
		qc->overflow = true;
		return MHD_NO;
	}
	qc->in->query[qc->in->nquery].k = k;
	qc->in->query[qc->in->nquery].v = v;
	qc->in->nquery++;
	return MHD_YES;
}

static bool
is_json_type(const char *ct)
{
	size_t n = strlen("application/json");

	if (ct == NULL || strncasecmp(ct, "application/json", n) != 0)
		return false;
	ct += n;
	while (*ct == ' ')
		ct++;
	return *ct == '\0' || *ct == ';';
}

/* Runs the op: through the executor, or here when there is none. */
static int
execute(struct admin_http *h, const struct admin_in *in, const struct admin_who *who,
        struct admin_result *r, struct admin_err *e)
{
	size_t len;
	char *frame;
	int rc;

	if (h->c.exec_fd < 0) {
		/* One op at a time here too, as the executor does. */
		pthread_mutex_lock(&h->exec_lock);
		rc = admin_exec_op(h->c.exec, in, who, r, e);
		pthread_mutex_unlock(&h->exec_lock);
		return rc;
	}
	frame = admin_ipc_encode(in, who, &len);
	if (frame == NULL)
		return admin_err_set(e, 500, "internal", "out of memory");
	pthread_mutex_lock(&h->exec_lock);
	rc = admin_ipc_send(h->c.exec_fd, frame, len) == 0 ? admin_ipc_recv_result(h->c.exec_fd, r) : -1;
	pthread_mutex_unlock(&h->exec_lock);
	explicit_bzero(frame, len);
	free(frame);
	if (rc != 0)
		return admin_err_set(e, 503, "unavailable", "the executor is not answering");
	if (r->exit < 0) {
		char *tab = strchr(r->err, '\t');
		int st = -r->exit;

		admin_err_set(e, st >= 400 && st < 600 ? st : 500, "internal", "%s", tab ? tab + 1 : r->err);
		if (tab != NULL) {
			*tab = '\0';
			snprintf(e->code, sizeof(e->code), "%.31s", r->err);
		}
		admin_result_free(r);
		return -1;
	}
	return 0;
}

static enum MHD_Result
whoami(struct MHD_Connection *conn, const struct admin_who *who)
{
	char sc[32];
	json_t *s = json_array();
	json_t *o;
	char *b;
	unsigned bit;

	for (bit = 1; s != NULL && bit <= ADMIN_SCOPE_DEPLOY; bit <<= 1)
		if (who->scopes & bit)
			json_array_append_new(s, json_string(admin_scopes_str(bit, sc, sizeof(sc))));
	o = json_pack("{s:s,s:s,s:o}", "key_id", who->key_id, "owner", who->owner, "scopes", s);
	b = o != NULL ? json_dumps(o, JSON_COMPACT) : NULL;
	json_decref(o);
	if (b == NULL)
		return MHD_NO;
	return send_body(conn, 200, "application/json", b, strlen(b), true, NULL, NULL, NULL);
}

static enum MHD_Result
serve_api(struct admin_http *h, struct MHD_Connection *conn, struct req *q, const char *method,
          const char *url)
{
	const char *hid = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "X-Keyauth-Key-Id");
	struct admin_in in;
	struct admin_who who;
	struct admin_result r;
	struct admin_argv argv;
	struct admin_err e;
	struct qctx qc = { &in, false };
	char allow[128], etag[ADMIN_ETAG_MAX + 4], loc[ADMIN_PARAM_MAX + 16];
	const char *opname;
	enum MHD_Result ret;
	char *body;
	size_t len;
	int st;

	memset(&in, 0, sizeof(in));
	in.route = admin_route_match(method, url, in.param, allow, sizeof(allow));
	if (in.route == NULL) {
		if (allow[0] != '\0') {
			admin_err_set(&e, 405, "method_not_allowed", "%s is not allowed here", method);
			return send_err(conn, q, method, "-", &e, allow, NULL);
		}
		admin_err_set(&e, 404, "not_found", "no such resource");
		return send_err(conn, q, method, "-", &e, NULL, NULL);
	}
	opname = in.route->name;
	if (hid == NULL || admin_who_set(&who, hid,
	        MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "X-Keyauth-Owner"),
	        MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "X-Keyauth-Scopes")) != 0) {
		admin_err_set(&e, 401, "unauthorized", "an admin key is required");
		return send_err(conn, q, method, opname, &e, NULL, NULL);
	}
	if ((who.scopes & in.route->scope) != in.route->scope) {
		admin_err_set(&e, 403, "forbidden", "this admin key lacks the scope this request needs");
		return send_err(conn, q, method, opname, &e, NULL, who.key_id);
	}
	if (q->too_large) {
		admin_err_set(&e, 413, "too_large", "the body exceeds %d bytes", ADMIN_BODY_MAX);
		return send_err(conn, q, method, opname, &e, NULL, who.key_id);
	}
	if (q->len > 0 && !is_json_type(MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Content-Type"))) {
		admin_err_set(&e, 415, "unsupported_media_type", "the body must be application/json");
		return send_err(conn, q, method, opname, &e, NULL, who.key_id);
	}
	in.body = q->body;
	in.body_len = q->len;
	in.if_match = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "If-Match");
	MHD_get_connection_values(conn, MHD_GET_ARGUMENT_KIND, query_it, &qc);
	if (qc.overflow) {
		admin_err_set(&e, 400, "invalid_parameter", "too many query parameters");
		return send_err(conn, q, method, opname, &e, NULL, who.key_id);
	}
	if (admin_build(&in, &argv, &e) != 0)
		return send_err(conn, q, method, opname, &e, NULL, who.key_id);
	if (in.route->op == ADMIN_OP_WHOAMI) {
		log_info("event=request method=%s op=%s status=200 admin_key_id=%s ms=%ld",
		         method, opname, who.key_id, ms_since(&q->t0));
		return whoami(conn, &who);
	}
	if (in.route->op == ADMIN_OP_OPENAPI) {
		const struct admin_file *f = file_find(h, "openapi.json");

		if (f == NULL) {
			admin_err_set(&e, 404, "not_found", "the OpenAPI document is not installed");
			return send_err(conn, q, method, opname, &e, NULL, who.key_id);
		}
		log_info("event=request method=%s op=%s status=200 admin_key_id=%s ms=%ld",
		         method, opname, who.key_id, ms_since(&q->t0));
		return send_body(conn, 200, f->type, f->data, f->len, false, NULL, NULL, NULL);
	}
	if (execute(h, &in, &who, &r, &e) != 0)
		return send_err(conn, q, method, opname, &e, NULL, who.key_id);
	st = admin_reply(&in, &r, &body, &len, etag, sizeof(etag), loc, sizeof(loc));
	admin_result_free(&r);
	if (body == NULL)
		return MHD_NO;
	log_info("event=request method=%s op=%s status=%d admin_key_id=%s ms=%ld",
	         method, opname, st, who.key_id, ms_since(&q->t0));
	ret = send_body(conn, st, "application/json", body, len, true, NULL, etag, loc);
	return ret;
}

static enum MHD_Result
serve_static(struct admin_http *h, struct MHD_Connection *conn, struct req *q, const char *method,
             const char *url)
{
	const struct admin_file *f;
	char name[64];
	struct admin_err e;

	if (strcmp(url, "/") == 0)
		snprintf(name, sizeof(name), "console/index.html");
	else if (strlen(url) < sizeof(name))
		snprintf(name, sizeof(name), "%s", url + 1);
	else
		name[0] = '\0';
	/* Only names of the fixed table are ever looked up: no file system path
	 * is built from the URL, so "..", encoded or not, finds nothing. */
	f = strncmp(name, "console/", 8) == 0 ? file_find(h, name) : NULL;
	if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0) {
		admin_err_set(&e, 405, "method_not_allowed", "%s is not allowed here", method);
		return send_err(conn, q, method, "static", &e, "GET, HEAD", NULL);
	}
	if (f == NULL) {
		admin_err_set(&e, 404, "not_found", "no such file");
		return send_err(conn, q, method, "static", &e, NULL, NULL);
	}
	log_info("event=request method=%s op=static status=200 ms=%ld", method, ms_since(&q->t0));
	return send_body(conn, 200, f->type, f->data, f->len, false, NULL, NULL, NULL);
}

static enum MHD_Result
on_request(void *cls, struct MHD_Connection *conn, const char *url, const char *method,
           const char *version, const char *upload, size_t *upload_size, void **con_cls)
{
	struct admin_http *h = cls;
	struct req *q = *con_cls;
	struct ucred cr = { 0, (uid_t)-1, (gid_t)-1 };

	(void)version;
	if (q == NULL) {
		const char *cl;

		if (!peer_allowed(h, conn, &cr)) {
			log_warning("event=peer_refused uid=%ld gid=%ld", (long)cr.uid, (long)cr.gid);
			return MHD_NO;
		}
		q = calloc(1, sizeof(*q));
		if (q == NULL)
			return MHD_NO;
		clock_gettime(CLOCK_MONOTONIC, &q->t0);
		*con_cls = q;
		cl = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Content-Length");
		if (cl == NULL || strtoull(cl, NULL, 10) <= ADMIN_BODY_MAX)
			return MHD_YES;
		/* Announced too large: answered now, the body is never read
		 * (libmicrohttpd closes the connection after the answer). */
		q->too_large = true;
	} else if (*upload_size > 0) {
		if (!q->too_large && q->len + *upload_size > ADMIN_BODY_MAX)
			q->too_large = true;
		if (!q->too_large) {
			if (q->len + *upload_size + 1 > q->cap) {
				size_t cap = q->len + *upload_size + 1 + 1024;
				char *nb = realloc(q->body, cap);

				if (nb == NULL)
					return MHD_NO;
				q->body = nb;
				q->cap = cap;
			}
			memcpy(q->body + q->len, upload, *upload_size);
			q->len += *upload_size;
			q->body[q->len] = '\0';
		}
		*upload_size = 0;
		return MHD_YES;
	}
	if (strcmp(url, "/") == 0 || strncmp(url, "/console/", 9) == 0)
		return serve_static(h, conn, q, method, url);
	return serve_api(h, conn, q, method, url);
}

static void
on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
             enum MHD_RequestTerminationCode toe)
{
	struct req *q = *con_cls;

	(void)cls;
	(void)conn;
	(void)toe;
	if (q == NULL)
		return;
	if (q->body != NULL) {
		explicit_bzero(q->body, q->cap);
		free(q->body);
	}
	free(q);
	*con_cls = NULL;
}

struct admin_http *
admin_http_start(const struct admin_http_conf *c, char *err, size_t errlen)
{
	struct admin_http *h = calloc(1, sizeof(*h));

	if (h == NULL) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	h->c = *c;
	pthread_mutex_init(&h->exec_lock, NULL);
	h->mhd = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_THREAD_PER_CONNECTION |
	                          MHD_USE_ERROR_LOG | MHD_USE_POLL,
	                          0, NULL, NULL, on_request, h,
	                          MHD_OPTION_EXTERNAL_LOGGER, mhd_log, NULL,
	                          MHD_OPTION_LISTEN_SOCKET, (MHD_socket)c->listen_fd,
	                          MHD_OPTION_CONNECTION_LIMIT, (unsigned)ADMIN_CONN_MAX,
	                          MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)30,
	                          MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)(64 * 1024),
	                          MHD_OPTION_STRICT_FOR_CLIENT, (int)1,
	                          MHD_OPTION_NOTIFY_COMPLETED, on_completed, NULL,
	                          MHD_OPTION_END);
	if (h->mhd == NULL) {
		snprintf(err, errlen, "libmicrohttpd did not start on the socket");
		pthread_mutex_destroy(&h->exec_lock);
		free(h);
		return NULL;
	}
	return h;
}

void
admin_http_stop(struct admin_http *h)
{
	if (h == NULL)
		return;
	MHD_stop_daemon(h->mhd);
	pthread_mutex_destroy(&h->exec_lock);
	free(h);
}
