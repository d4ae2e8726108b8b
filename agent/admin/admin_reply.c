/* SPDX-License-Identifier: Apache-2.0 */
/*
 * admin_reply: keyauthctl's outcome -> HTTP status and JSON body.
 *
 * Exit codes (keyauthctl(8)): 0 ok, 1 failure, 2 usage / invalid input,
 * 3 not found, 4 precondition failed. keyauthctl's first stderr line is
 * relayed as the error's message, cleaned to printable ASCII, because it
 * says which field is wrong; except when the op creates a key (create,
 * rotate) and failed for a reason other than input: then a fixed text, so
 * nothing printed around a key can ever reach a client.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "admin.h"

char *
admin_error_body(const struct admin_err *e, size_t *len)
{
	json_t *o = json_pack("{s:{s:s,s:s}}", "error", "code", e->code, "message", e->msg);
	char *s = o != NULL ? json_dumps(o, JSON_COMPACT) : NULL;

	json_decref(o);
	if (s == NULL) {
		s = strdup("{\"error\":{\"code\":\"internal\",\"message\":\"out of memory\"}}");
		if (s == NULL)
			return NULL;
	}
	*len = strlen(s);
	return s;
}

/* keyauthctl's message without "keyauthctl: ", printable ASCII, <= 300 bytes. */
static void
relay(char *out, size_t outlen, const char *err)
{
	size_t i, n = 0;

	if (strncmp(err, "keyauthctl: ", 12) == 0)
		err += 12;
	for (i = 0; err[i] != '\0' && n + 1 < outlen && n < 300; i++)
		out[n++] = (err[i] >= 0x20 && err[i] < 0x7f) ? err[i] : '?';
	out[n] = '\0';
	if (n == 0)
		snprintf(out, outlen, "the operation failed");
}

static char *
dump(json_t *o, size_t *len)
{
	char *s = o != NULL ? json_dumps(o, JSON_COMPACT) : NULL;

	if (s != NULL)
		*len = strlen(s);
	return s;
}

/* Wipes jansson's copy of a key before it is freed. */
static void
wipe_string(json_t *s)
{
	if (json_is_string(s))
		explicit_bzero((char *)json_string_value(s), json_string_length(s));
}

static int
fail(const struct admin_err *e, char **body, size_t *len)
{
	*body = admin_error_body(e, len);
	return e->status;
}

static int
from_exit(const struct admin_in *in, const struct admin_result *r, char **body, size_t *len)
{
	enum admin_op op = in->route->op;
	bool makes_key = op == ADMIN_OP_KEY_CREATE || op == ADMIN_OP_KEY_ROTATE;
	struct admin_err e;
	char msg[320];

	relay(msg, sizeof(msg), r->err);
	switch (r->exit) {
	case 2:
		admin_err_set(&e, 400, "invalid_field", "%s", msg);
		break;
	case 3:
		admin_err_set(&e, 404, "not_found", "%s", msg);
		break;
	case 4:
		if (op == ADMIN_OP_DEPLOY)
			admin_err_set(&e, 409, "conflict", "the configuration changed since the preview: %s", msg);
		else
			admin_err_set(&e, 412, "precondition_failed", "%s", msg);
		break;
	case 5:
		/* keyauthctl's own verdict that the operation contradicts the
		 * key's state (rotating a revoked or already rotated key):
		 * its exit code, never the words of its message. */
		admin_err_set(&e, 409, "conflict", "%s", msg);
		break;
	default:
		admin_err_set(&e, 500, "failed", "%s", makes_key ? "the operation failed; see keyauth-admin's log" : msg);
		break;
	}
	return fail(&e, body, len);
}

/* The newest <limit> entries of keyauthctl's oldest-first array. */
static json_t *
audit_tail(json_t *a, unsigned limit)
{
	size_t n = json_array_size(a), i;
	json_t *out = json_array();

	for (i = n > limit ? n - limit : 0; out != NULL && i < n; i++)
		json_array_append(out, json_array_get(a, i));
	return out;
}

int
admin_reply(const struct admin_in *in, const struct admin_result *r, char **body, size_t *len,
            char *etag, size_t etaglen, char *location, size_t loclen)
{
	enum admin_op op = in->route->op;
	struct admin_err e;
	json_t *o, *w = NULL, *k, *t;
	int status = 200;

	etag[0] = '\0';
	location[0] = '\0';
	*body = NULL;
	if (r->exit != 0)
		return from_exit(in, r, body, len);
	o = json_loadb(r->out, r->out_len, JSON_REJECT_DUPLICATES, NULL);
	if (o == NULL) {
		admin_err_set(&e, 500, "failed", "keyauthctl's output was not JSON");
		return fail(&e, body, len);
	}
	switch (op) {
	case ADMIN_OP_KEY_LIST:
		w = json_is_array(o) ? json_pack("{s:O}", "keys", o) : NULL;
		break;
	case ADMIN_OP_AUDIT:
		w = json_is_array(o) ? json_pack("{s:o}", "entries", audit_tail(o, admin_query_limit(in))) : NULL;
		break;
	case ADMIN_OP_KEY_CREATE:
		if (json_is_object(o) && json_is_string(json_object_get(o, "key"))) {
			w = json_incref(o);
			json_object_set_new(w, "shown_once", json_true());
			json_object_del(w, "key_file");
			if ((t = json_object_get(w, "id")) != NULL && json_is_string(t))
				snprintf(location, loclen, "keys/%s", json_string_value(t));
			status = 201;
		}
		break;
	case ADMIN_OP_KEY_ROTATE:
		k = json_is_object(o) ? json_object_get(o, "key") : NULL;
		if (json_is_string(k)) {
			json_t *nw = json_deep_copy(o);

			if (nw != NULL) {
				wipe_string(json_object_get(nw, "key"));
				json_object_del(nw, "key");
				json_object_del(nw, "key_file");
			}
			w = json_pack("{s:O,s:o,s:{s:s}}", "key", k, "new", nw, "old", "id", in->param);
			if ((t = json_object_get(o, "id")) != NULL && json_is_string(t))
				snprintf(location, loclen, "../%s", json_string_value(t));
			status = 201;
		}
		break;
	case ADMIN_OP_KEY_USAGE:
		if (json_is_object(o))
			w = json_pack("{s:O*,s:O*,s:O*,s:O*}", "id", json_object_get(o, "id"),
			              "requests", json_object_get(o, "requests"),
			              "last_used", json_object_get(o, "last_used"),
			              "routes", json_object_get(o, "routes_usage"));
		break;
	default:
		w = json_is_object(o) ? json_incref(o) : NULL;
		break;
	}
	if (w != NULL && (op == ADMIN_OP_ROUTE_GET || op == ADMIN_OP_ROUTE_EDIT) &&
	    json_is_string(json_object_get(w, "etag")))
		snprintf(etag, etaglen, "\"%s\"", json_string_value(json_object_get(w, "etag")));
	if (w == NULL) {
		admin_err_set(&e, 500, "failed", "keyauthctl's output had an unexpected shape");
		status = fail(&e, body, len);
	} else {
		*body = dump(w, len);
		if (*body == NULL) {
			admin_err_set(&e, 500, "internal", "out of memory");
			status = fail(&e, body, len);
		}
	}
	if (op == ADMIN_OP_KEY_CREATE || op == ADMIN_OP_KEY_ROTATE)
		wipe_string(json_object_get(o, "key"));
	json_decref(w);
	json_decref(o);
	return status;
}
