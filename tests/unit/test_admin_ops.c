/* SPDX-License-Identifier: Apache-2.0 */
/*
 * test_admin_ops: keyauth-admin's op table and strict request decoder.
 *
 * Covered: path matching (405 Allow lists, 404, path parameters and their
 * character sets), the keyauthctl words built for each op (every value as
 * one "--opt=value" word, so a value that looks like an option stays a
 * value), the 4xx of every malformed request (invalid JSON, duplicate keys,
 * unknown fields and query parameters, wrong types, ranges, exclusive
 * fields, missing If-Match), scope parsing, identity header validation, the
 * IPC frame round trip, the executor (its own scope and parameter checks,
 * the command line and environment it runs, exit codes, the deadline and
 * the output bound, with a stand-in shell script for keyauthctl), and that
 * admin_routes[] and agent/admin/openapi.json describe the same operations
 * with the same scopes.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>

#include "admin.h"

#ifndef OPENAPI_JSON
#define OPENAPI_JSON "agent/admin/openapi.json"
#endif

static const struct admin_route *
route(const char *method, const char *path, struct admin_in *in)
{
	char allow[128];

	memset(in, 0, sizeof(*in));
	in->route = admin_route_match(method, path, in->param, allow, sizeof(allow));
	return in->route;
}

/* Builds <method> <path> with <body>; returns the status (200 when ok) and
 * the words joined by ' ' in <words>. */
static int
build(const char *method, const char *path, const char *body, char *words, size_t wlen)
{
	struct admin_in in;
	struct admin_argv a;
	struct admin_err e;
	size_t i, off = 0;

	if (route(method, path, &in) == NULL)
		return 404;
	in.body = body;
	in.body_len = body ? strlen(body) : 0;
	if (admin_build(&in, &a, &e) != 0) {
		snprintf(words, wlen, "%s", e.code);
		return e.status;
	}
	words[0] = '\0';
	for (i = 0; i < a.n; i++)
		off += (size_t)snprintf(words + off, wlen - off, "%s%s", i ? " " : "", a.v[i]);
	assert_null(a.v[a.n]);
	return 200;
}

static void
test_match(void **state)
{
	char allow[128], param[ADMIN_PARAM_MAX + 1];
	const struct admin_route *r;

	(void)state;
	r = admin_route_match("GET", "/v1/keys/abc123", param, allow, sizeof(allow));
	assert_non_null(r);
	assert_int_equal(r->op, ADMIN_OP_KEY_GET);
	assert_string_equal(param, "abc123");
	r = admin_route_match("HEAD", "/v1/keys/abc123/usage", param, allow, sizeof(allow));
	assert_non_null(r);
	assert_int_equal(r->op, ADMIN_OP_KEY_USAGE);
	r = admin_route_match("PATCH", "/v1/routes/my_route-1", param, allow, sizeof(allow));
	assert_non_null(r);
	assert_string_equal(param, "my_route-1");

	assert_null(admin_route_match("DELETE", "/v1/keys", param, allow, sizeof(allow)));
	assert_string_equal(allow, "GET, HEAD, POST");
	assert_null(admin_route_match("GET", "/v1/deploy", param, allow, sizeof(allow)));
	assert_string_equal(allow, "POST");
	assert_null(admin_route_match("PUT", "/v1/routes/x", param, allow, sizeof(allow)));
	assert_string_equal(allow, "GET, HEAD, PATCH");

	/* 404: unknown, trailing slash, bad parameter characters, option-like. */
	for (const char *p = NULL, *const *pp = (const char *const[]){ "/v1/keyz", "/v1/keys/",
	     "/v1/keys/a.b", "/v1/keys/a_b", "/v1/keys/-x", "/v1/routes/-x", "/v1/routes/a.b",
	     "/v1/keys/abc/usage/x", "//v1/keys", "/v1/keys/%41", "", "/v1/keys/" "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", NULL };
	     (p = *pp) != NULL; pp++) {
		assert_null(admin_route_match("GET", p, param, allow, sizeof(allow)));
		assert_string_equal(allow, "");
	}
}

static void
test_words(void **state)
{
	char w[2048];

	(void)state;
	assert_int_equal(build("POST", "/v1/keys", "{\"routes\":[\"openai\",\"other\"],\"owner\":\"--no-expiry\","
	                       "\"alias\":\"a1\",\"tags\":{\"team\":\"ml\"},\"expires_in_days\":30,\"rpm\":60,"
	                       "\"scopes\":[\"read\",\"write\"]}", w, sizeof(w)), 200);
	assert_string_equal(w, "key create --route=openai --route=other --owner=--no-expiry --alias=a1 "
	                    "--tag=team=ml --days=30 --rpm=60 --scope=read --scope=write --json");
	assert_int_equal(build("POST", "/v1/keys", "{\"routes\":[\"openai\"],\"never_expires\":true}", w, sizeof(w)), 200);
	assert_string_equal(w, "key create --route=openai --no-expiry --json");
	assert_int_equal(build("POST", "/v1/keys", "{\"routes\":[\"openai\"],\"expires_on\":\"2030-01-31\"}", w, sizeof(w)), 200);
	assert_string_equal(w, "key create --route=openai --expires=2030-01-31 --json");
	assert_int_equal(build("PATCH", "/v1/keys/abc", "{\"tags\":{\"a\":null,\"b\":\"c\"},\"alias\":null}", w, sizeof(w)), 200);
	assert_string_equal(w, "key set abc --alias= --untag=a --tag=b=c --json");
	assert_int_equal(build("POST", "/v1/keys/abc/rotate", NULL, w, sizeof(w)), 200);
	assert_string_equal(w, "key rotate abc --json");
	assert_int_equal(build("POST", "/v1/keys/abc/rotate", "{\"grace_seconds\":0,\"routes\":[\"x\"]}", w, sizeof(w)), 200);
	assert_string_equal(w, "key rotate abc --grace=0s --route=x --json");
	assert_int_equal(build("POST", "/v1/keys/abc/revoke", "{}", w, sizeof(w)), 200);
	assert_string_equal(w, "key revoke abc --json");
	assert_int_equal(build("GET", "/v1/keys/abc/usage", NULL, w, sizeof(w)), 200);
	assert_string_equal(w, "key show abc --json");
	assert_int_equal(build("GET", "/v1/routes", NULL, w, sizeof(w)), 200);
	assert_string_equal(w, "route list --json");
	assert_int_equal(build("GET", "/v1/deploy/preview", NULL, w, sizeof(w)), 200);
	assert_string_equal(w, "deploy --preview --json");
	assert_int_equal(build("POST", "/v1/deploy", "{\"preview_id\":\"00ff\"}", w, sizeof(w)), 200);
	assert_string_equal(w, "deploy --if-preview=00ff --json");
	assert_int_equal(build("GET", "/v1/whoami", NULL, w, sizeof(w)), 200);
	assert_string_equal(w, "");
}

static void
test_route_edit_and_if_match(void **state)
{
	struct admin_in in;
	struct admin_argv a;
	struct admin_err e;
	const char *body = "{\"security\":{\"key_name\":\"X-K\",\"key_location\":\"query\"},"
	                   "\"carriers\":[\"header:X-K\"],\"rate_limit_rpm\":5}";

	(void)state;
	assert_non_null(route("PATCH", "/v1/routes/openai", &in));
	in.body = body;
	in.body_len = strlen(body);
	assert_int_equal(admin_build(&in, &a, &e), -1);
	assert_int_equal(e.status, 428);
	in.if_match = "\"abc\"";
	assert_int_equal(admin_build(&in, &a, &e), 0);
	assert_int_equal(a.n, 9);
	assert_string_equal(a.v[3], "--key-name=X-K");
	assert_string_equal(a.v[4], "--key-location=query");
	assert_string_equal(a.v[5], "--carrier=header:X-K");
	assert_string_equal(a.v[6], "--rpm=5");
	assert_string_equal(a.v[7], "--if-match=abc");
	in.if_match = "\"a b\"";
	assert_int_equal(admin_build(&in, &a, &e), -1);
	assert_int_equal(e.status, 400);
	in.if_match = "*";
	assert_int_equal(admin_build(&in, &a, &e), -1);
	assert_int_equal(e.status, 400);
	in.if_match = "abc";
	in.body = "{\"reset\":true,\"rate_limit_rpm\":1}";
	in.body_len = strlen(in.body);
	assert_int_equal(admin_build(&in, &a, &e), -1);
	assert_string_equal(e.code, "invalid_field");
	in.body = "{\"reset\":true}";
	in.body_len = strlen(in.body);
	assert_int_equal(admin_build(&in, &a, &e), 0);
	assert_string_equal(a.v[3], "--reset");
}

static void
test_bad_bodies(void **state)
{
	static const struct { const char *method, *path, *body; int status; const char *code; } c[] = {
		{ "POST", "/v1/keys", "{", 400, "invalid_json" },
		{ "POST", "/v1/keys", "[]", 400, "invalid_json" },
		{ "POST", "/v1/keys", "\"x\"", 400, "invalid_json" },
		{ "POST", "/v1/keys", "{\"routes\":[\"a\"]} x", 400, "invalid_json" },
		{ "POST", "/v1/keys", "{\"owner\":\"a\",\"owner\":\"b\",\"routes\":[\"a\"]}", 400, "invalid_json" },
		{ "POST", "/v1/keys", "{\"routes\":[\"a\"],\"x\":1}", 400, "unknown_field" },
		{ "POST", "/v1/keys", "{\"owner\":\"a\"}", 400, "missing_field" },
		{ "POST", "/v1/keys", NULL, 400, "missing_body" },
		{ "POST", "/v1/keys", "{\"routes\":[]}", 400, "invalid_field" },
		{ "POST", "/v1/keys", "{\"routes\":[1]}", 400, "invalid_field" },
		{ "POST", "/v1/keys", "{\"routes\":[\"\"]}", 400, "invalid_field" },
		{ "POST", "/v1/keys", "{\"routes\":[\"a\\u0000b\"]}", 400, "invalid_json" },  /* jansson refuses NUL */
		{ "POST", "/v1/keys", "{\"routes\":[\"a\"],\"owner\":\"a\\nb\"}", 400, "invalid_field" },
		{ "POST", "/v1/keys", "{\"routes\":[\"a\"],\"rpm\":1000001}", 400, "invalid_field" },
		{ "POST", "/v1/keys", "{\"routes\":[\"a\"],\"rpm\":true}", 400, "invalid_field" },
		{ "POST", "/v1/keys", "{\"routes\":[\"a\"],\"rpm\":2.0}", 400, "invalid_field" },
		{ "POST", "/v1/keys", "{\"routes\":[\"a\"],\"expires_in_days\":0}", 400, "invalid_field" },
		{ "POST", "/v1/keys", "{\"routes\":[\"a\"],\"expires_on\":\"2030-1-1\"}", 400, "invalid_field" },
		{ "POST", "/v1/keys", "{\"routes\":[\"a\"],\"never_expires\":false}", 400, "invalid_field" },
		{ "POST", "/v1/keys", "{\"routes\":[\"a\"],\"expires_in_days\":1,\"expires_on\":\"2030-01-01\"}", 400, "invalid_field" },
		{ "POST", "/v1/keys", "{\"routes\":[\"a\"],\"scopes\":[\"read\",\"read\"]}", 400, "invalid_field" },
		{ "POST", "/v1/keys", "{\"routes\":[\"a\"],\"scopes\":[\"read,write\"]}", 400, "invalid_field" },
		{ "POST", "/v1/keys", "{\"routes\":[\"a\"],\"tags\":{\"a=b\":\"c\"}}", 400, "invalid_field" },
		{ "POST", "/v1/keys", "{\"routes\":[\"a\"],\"tags\":{\"a\":null}}", 400, "invalid_field" },
		{ "POST", "/v1/keys", "{\"routes\":[\"a\"],\"alias\":null}", 400, "invalid_field" },
		{ "PATCH", "/v1/keys/abc", "{}", 400, "missing_field" },
		{ "PATCH", "/v1/keys/abc", NULL, 400, "missing_body" },
		{ "POST", "/v1/keys/abc/revoke", "{\"a\":1}", 400, "unknown_field" },
		{ "POST", "/v1/keys/abc/rotate", "{\"grace_seconds\":-1}", 400, "invalid_field" },
		{ "POST", "/v1/keys/abc/rotate", "{\"owner\":\"x\"}", 400, "unknown_field" },
		{ "GET", "/v1/keys", "{}", 400, "unexpected_body" },
		{ "POST", "/v1/deploy", "{}", 400, "missing_field" },
		{ "POST", "/v1/deploy", "{\"preview_id\":\"xyz\"}", 400, "invalid_field" },
		{ "POST", "/v1/deploy", "{\"preview_id\":1}", 400, "invalid_field" },
		{ "PATCH", "/v1/routes/a", "{\"security\":{}}", 428, "precondition_required" },
	};
	char w[512];
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(c) / sizeof(c[0]); i++) {
		int st = build(c[i].method, c[i].path, c[i].body, w, sizeof(w));

		if (st != c[i].status || strcmp(w, c[i].code) != 0)
			fail_msg("%s %s %s: %d %s, want %d %s", c[i].method, c[i].path,
			         c[i].body ? c[i].body : "(none)", st, w, c[i].status, c[i].code);
	}
}

static void
test_too_large(void **state)
{
	struct admin_in in;
	struct admin_argv a;
	struct admin_err e;
	char *big = malloc(ADMIN_BODY_MAX + 2);

	(void)state;
	assert_non_null(big);
	memset(big, ' ', ADMIN_BODY_MAX + 1);
	big[ADMIN_BODY_MAX + 1] = '\0';
	route("POST", "/v1/keys", &in);
	in.body = big;
	in.body_len = ADMIN_BODY_MAX + 1;
	assert_int_equal(admin_build(&in, &a, &e), -1);
	assert_int_equal(e.status, 413);
	free(big);
}

static void
test_query(void **state)
{
	struct admin_in in;
	struct admin_argv a;
	struct admin_err e;

	(void)state;
	route("GET", "/v1/keys", &in);
	in.query[0] = (struct admin_kv){ "route", "openai" };
	in.query[1] = (struct admin_kv){ "tag", "a=b" };
	in.query[2] = (struct admin_kv){ "tag", "c=d" };
	in.query[3] = (struct admin_kv){ "all", "true" };
	in.query[4] = (struct admin_kv){ "unused_for", "86400" };
	in.nquery = 5;
	assert_int_equal(admin_build(&in, &a, &e), 0);
	assert_int_equal(a.n, 8);
	assert_string_equal(a.v[2], "--route=openai");
	assert_string_equal(a.v[5], "--all");
	assert_string_equal(a.v[6], "--unused-for=86400s");

	in.query[4] = (struct admin_kv){ "unused_for", "1d" };
	assert_int_equal(admin_build(&in, &a, &e), -1);
	assert_string_equal(e.code, "invalid_parameter");
	in.query[4] = (struct admin_kv){ "route", "x" };
	assert_int_equal(admin_build(&in, &a, &e), -1);
	assert_string_equal(e.code, "invalid_parameter");
	in.query[4] = (struct admin_kv){ "limit", "5" };
	assert_int_equal(admin_build(&in, &a, &e), -1);
	assert_string_equal(e.code, "unknown_parameter");
	in.query[4] = (struct admin_kv){ "tag", NULL };
	assert_int_equal(admin_build(&in, &a, &e), -1);

	route("GET", "/v1/audit", &in);
	in.query[0] = (struct admin_kv){ "since", "2026-01-02" };
	in.query[1] = (struct admin_kv){ "key", "abc" };
	in.query[2] = (struct admin_kv){ "limit", "7" };
	in.nquery = 3;
	assert_int_equal(admin_build(&in, &a, &e), 0);
	assert_string_equal(a.v[1], "--since=2026-01-02");
	assert_string_equal(a.v[2], "--key=abc");
	assert_int_equal(admin_query_limit(&in), 7);
	in.query[0] = (struct admin_kv){ "since", "3600" };
	assert_int_equal(admin_build(&in, &a, &e), 0);
	assert_string_equal(a.v[1], "--since=3600s");
	in.query[1] = (struct admin_kv){ "key", "a-b" };
	assert_int_equal(admin_build(&in, &a, &e), -1);

	route("GET", "/v1/routes", &in);
	in.query[0] = (struct admin_kv){ "x", "y" };
	in.nquery = 1;
	assert_int_equal(admin_build(&in, &a, &e), -1);
	assert_int_equal(e.status, 400);
}

static void
test_scopes_and_who(void **state)
{
	struct admin_who w;
	unsigned b;
	char s[32];

	(void)state;
	assert_int_equal(admin_scopes_parse("read,write,deploy", &b), 0);
	assert_int_equal(b, 7);
	assert_int_equal(admin_scopes_parse("", &b), 0);
	assert_int_equal(b, 0);
	assert_int_equal(admin_scopes_parse("read,admin", &b), -1);
	assert_string_equal(admin_scopes_str(5, s, sizeof(s)), "read,deploy");
	assert_string_equal(admin_scopes_str(6, s, sizeof(s)), "write,deploy");
	assert_string_equal(admin_scopes_str(7, s, sizeof(s)), "read,write,deploy");

	assert_int_equal(admin_who_set(&w, "abc123", "ops@example.com", "read,write"), 0);
	assert_int_equal(w.scopes, 3);
	assert_int_equal(admin_who_set(&w, "abc 123", "o", "read"), -1);
	assert_int_equal(admin_who_set(&w, "", "o", "read"), -1);
	assert_int_equal(admin_who_set(&w, "abc", "a\nb", "read"), -1);
	assert_int_equal(admin_who_set(&w, "abc", "o", "read,root"), -1);
}

static void
test_ipc_roundtrip(void **state)
{
	struct admin_in in, out;
	struct admin_who who, who2;
	struct admin_ipc_store *st;
	char *frame;
	size_t len;

	(void)state;
	route("PATCH", "/v1/routes/openai", &in);
	in.body = "{\"rate_limit_rpm\":5}";
	in.body_len = strlen(in.body);
	in.if_match = "\"abc\"";
	in.query[0] = (struct admin_kv){ "k", "v" };
	in.nquery = 1;
	assert_int_equal(admin_who_set(&who, "adm1", "ops \"x\"", "read,write"), 0);
	frame = admin_ipc_encode(&in, &who, &len);
	assert_non_null(frame);
	assert_int_equal(admin_ipc_decode(frame, len, &out, &who2, &st), 0);
	assert_ptr_equal(out.route, in.route);
	assert_string_equal(out.param, "openai");
	assert_int_equal(out.body_len, in.body_len);
	assert_memory_equal(out.body, in.body, in.body_len);
	assert_string_equal(out.if_match, "\"abc\"");
	assert_int_equal(out.nquery, 1);
	assert_string_equal(out.query[0].v, "v");
	assert_string_equal(who2.key_id, "adm1");
	assert_string_equal(who2.owner, "ops \"x\"");
	assert_int_equal(who2.scopes, 3);
	admin_ipc_store_free(st);
	free(frame);

	/* No If-Match stays absent. */
	in.if_match = NULL;
	frame = admin_ipc_encode(&in, &who, &len);
	assert_int_equal(admin_ipc_decode(frame, len, &out, &who2, &st), 0);
	assert_null(out.if_match);
	admin_ipc_store_free(st);
	free(frame);

	/* Bad frames: out of range op, extra field, bad scopes, not JSON. */
	for (const char *const *f = (const char *const[]){
	         "{\"op\":99,\"param\":\"\",\"body\":\"\",\"query\":[],\"key_id\":\"a\",\"owner\":\"\",\"scopes\":1}",
	         "{\"op\":0,\"param\":\"\",\"body\":\"\",\"query\":[],\"key_id\":\"a\",\"owner\":\"\",\"scopes\":1,\"x\":1}",
	         "{\"op\":0,\"param\":\"\",\"body\":\"\",\"query\":[],\"key_id\":\"a\",\"owner\":\"\",\"scopes\":8}",
	         "{\"op\":0,\"param\":\"\",\"body\":\"\",\"query\":[[\"a\"]],\"key_id\":\"a\",\"owner\":\"\",\"scopes\":1}",
	         "{\"op\":0,\"param\":\"\",\"body\":\"\",\"query\":[],\"key_id\":\"a b\",\"owner\":\"\",\"scopes\":1}",
	         "nope", NULL }; *f != NULL; f++) {
		assert_int_equal(admin_ipc_decode(*f, strlen(*f), &out, &who2, &st), -1);
		assert_null(st);
	}
}

/* A stand-in keyauthctl: <body> after "#!/bin/sh". */
static void
script(const char *path, const char *body)
{
	FILE *f = fopen(path, "w");

	assert_non_null(f);
	fprintf(f, "#!/bin/sh\n%s\n", body);
	fclose(f);
	assert_int_equal(chmod(path, 0755), 0);
}

/* The HTTP status admin_reply gives keyauthctl's exit <code> with stderr <err>
 * for <method> <path>. */
static int
reply_status(const char *method, const char *path, int code, const char *err)
{
	struct admin_result r = { .exit = code };
	struct admin_in in;
	char etag[64], loc[128], *body = NULL;
	size_t len = 0;
	int st;

	assert_non_null(route(method, path, &in));
	snprintf(r.err, sizeof(r.err), "%s", err);
	st = admin_reply(&in, &r, &body, &len, etag, sizeof(etag), loc, sizeof(loc));
	assert_non_null(body);
	free(body);
	return st;
}

/* A conflict is keyauthctl's exit 5, whatever its message says; exit 1 is a
 * failure even when its message has the words of a conflict. */
static void
test_reply_exit_codes(void **state)
{
	(void)state;
	assert_int_equal(reply_status("POST", "/v1/keys/abc/rotate", 5, "keyauthctl: no"), 409);
	assert_int_equal(reply_status("PATCH", "/v1/keys/abc", 5, ""), 409);
	assert_int_equal(reply_status("POST", "/v1/keys/abc/rotate", 1,
	                              "keyauthctl: key abc is revoked; already rotated"), 500);
	assert_int_equal(reply_status("POST", "/v1/keys/abc/revoke", 1,
	                              "keyauthctl: cannot lock the key store: already held"), 500);
	assert_int_equal(reply_status("POST", "/v1/keys/abc/rotate", 3, "keyauthctl: no key"), 404);
	assert_int_equal(reply_status("POST", "/v1/keys/abc/rotate", 2, "keyauthctl: bad"), 400);
	assert_int_equal(reply_status("POST", "/v1/deploy", 4, "keyauthctl: stale"), 409);
	assert_int_equal(reply_status("PATCH", "/v1/routes/r1", 4, "keyauthctl: stale"), 412);
}

static void
test_exec(void **state)
{
	char dir[] = "/tmp/test_admin_ops.XXXXXX", path[64];
	struct admin_exec_conf x = { path, "/etc/keyauth/test.conf", 5000 };
	struct admin_result r;
	struct admin_in in;
	struct admin_who who;
	struct admin_err e;

	(void)state;
	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/ctl", dir);
	script(path, "printf '%s|' \"$@\"; printf 'actor=%s' \"$KEYAUTH_ACTOR\"; "
	             "echo 'keyauthctl: no key abc' >&2; read x && echo stdin-had-data; exit 3");
	assert_int_equal(admin_who_set(&who, "adm1", "ops \"x\"", "read"), 0);
	route("GET", "/v1/keys/abc", &in);
	assert_int_equal(admin_exec_op(&x, &in, &who, &r, &e), 0);
	assert_int_equal(r.exit, 3);
	assert_string_equal(r.out, "-c|/etc/keyauth/test.conf|key|show|abc|--json|"
	                    "actor=keyauth-admin key_id=adm1 owner=\"ops \\\"x\\\"\"");
	assert_string_equal(r.err, "keyauthctl: no key abc");
	admin_result_free(&r);

	/* The executor's own checks, whatever the web process said. */
	route("POST", "/v1/keys/abc/revoke", &in);
	assert_int_equal(admin_exec_op(&x, &in, &who, &r, &e), -1);
	assert_int_equal(e.status, 403);
	route("GET", "/v1/keys/abc", &in);
	memcpy(in.param, "--help", 7);
	assert_int_equal(admin_exec_op(&x, &in, &who, &r, &e), -1);
	assert_int_equal(e.status, 404);
	route("GET", "/v1/whoami", &in);
	assert_int_equal(admin_exec_op(&x, &in, &who, &r, &e), -1);
	assert_int_equal(e.status, 500);

	/* Deadline: killed, 503. Output bound: killed, 500. Not runnable: 500. */
	script(path, "exec sleep 10");
	x.timeout_ms = 200;
	route("GET", "/v1/keys/abc", &in);
	assert_int_equal(admin_exec_op(&x, &in, &who, &r, &e), -1);
	assert_int_equal(e.status, 503);
	x.timeout_ms = 20000;
	script(path, "exec head -c 5000000 /dev/zero");
	assert_int_equal(admin_exec_op(&x, &in, &who, &r, &e), -1);
	assert_int_equal(e.status, 500);
	unlink(path);
	assert_int_equal(admin_exec_op(&x, &in, &who, &r, &e), -1);
	assert_int_equal(e.status, 500);
	rmdir(dir);
}

/* The op table and the OpenAPI document: the same paths, methods, scopes,
 * and operation ids, both ways. */
static void
test_table_matches_openapi(void **state)
{
	json_error_t je;
	json_t *doc = json_load_file(OPENAPI_JSON, JSON_REJECT_DUPLICATES, &je);
	json_t *paths, *item, *op;
	const char *p, *m;
	size_t i, nops = 0;

	(void)state;
	if (doc == NULL)
		fail_msg("%s: %s", OPENAPI_JSON, je.text);
	assert_string_equal(json_string_value(json_object_get(doc, "openapi")), "3.1.0");
	paths = json_object_get(doc, "paths");
	for (i = 0; i < admin_nroutes; i++) {
		const struct admin_route *r = &admin_routes[i];
		char low[8];
		size_t k;

		for (k = 0; r->method[k] != '\0' && k + 1 < sizeof(low); k++)
			low[k] = (char)(r->method[k] | 0x20);
		low[k] = '\0';
		op = json_object_get(json_object_get(paths, r->pattern), low);
		if (op == NULL)
			fail_msg("%s %s is not in openapi.json", r->method, r->pattern);
		assert_string_equal(json_string_value(json_object_get(op, "operationId")), r->name);
		{
			unsigned want;

			assert_int_equal(admin_scopes_parse(json_string_value(json_object_get(op, "x-keyauth-scope")), &want), 0);
			if (want != r->scope)
				fail_msg("%s: scope %u in openapi.json, %u in the table", r->name, want, r->scope);
		}
	}
	json_object_foreach(paths, p, item) {
		json_object_foreach(item, m, op) {
			char param[ADMIN_PARAM_MAX + 1], allow[128], up[8], path[128];
			const char *brace = strchr(p, '{');
			size_t k;

			if (strcmp(m, "parameters") == 0)
				continue;
			for (k = 0; m[k] != '\0' && k + 1 < sizeof(up); k++)
				up[k] = (char)(m[k] & ~0x20);
			up[k] = '\0';
			/* A concrete path for the template: "{id}" -> "abc". */
			if (brace != NULL)
				snprintf(path, sizeof(path), "%.*sabc%s", (int)(brace - p), p, strchr(brace, '}') + 1);
			else
				snprintf(path, sizeof(path), "%s", p);
			if (admin_route_match(up, path, param, allow, sizeof(allow)) == NULL)
				fail_msg("openapi.json's %s %s is not in the table", up, p);
			nops++;
		}
	}
	assert_int_equal(nops, admin_nroutes);
	json_decref(doc);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_match),
		cmocka_unit_test(test_words),
		cmocka_unit_test(test_route_edit_and_if_match),
		cmocka_unit_test(test_bad_bodies),
		cmocka_unit_test(test_too_large),
		cmocka_unit_test(test_query),
		cmocka_unit_test(test_scopes_and_who),
		cmocka_unit_test(test_ipc_roundtrip),
		cmocka_unit_test(test_exec),
		cmocka_unit_test(test_reply_exit_codes),
		cmocka_unit_test(test_table_matches_openapi),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
