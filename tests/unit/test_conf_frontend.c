/* SPDX-License-Identifier: Apache-2.0 */
/*
 * test_conf_frontend: the "frontend" group of keyauth.conf (conf_frontend.c):
 * bind addresses (numeric IPv4 and [IPv6] with a port, canonical form,
 * duplicates in any spelling), client TLS (certificate XOR crt_list, absolute
 * renderable paths, min_version), http2 (default on with tls, refused
 * without), every error with its line, and the shipped agent/keyauth.conf's
 * frontend. Files are written to a private mkdtemp directory.
 */
#include <dirent.h>
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <openssl/tls1.h>

#include "conf.h"

#define ROUTES "routes = ( { name = \"a\"; context = \"/a\"; } );\n"

static char tmpdir[64];
static char conf_path[PATH_MAX];
static char err[8192];

static int setup_dir(void **state)
{
	(void)state;
	snprintf(tmpdir, sizeof(tmpdir), "/tmp/test_conf_frontend.XXXXXX");
	if (!mkdtemp(tmpdir))
		return -1;
	snprintf(conf_path, sizeof(conf_path), "%s/t.conf", tmpdir);
	return 0;
}

static int teardown_dir(void **state)
{
	(void)state;
	unlink(conf_path);
	return rmdir(tmpdir);
}

static struct conf *load_text(const char *text)
{
	FILE *f = fopen(conf_path, "w");

	assert_non_null(f);
	assert_int_equal(fputs(text, f) >= 0, 1);
	assert_int_equal(fclose(f), 0);
	memset(err, 0, sizeof(err));
	return conf_load(conf_path, err, sizeof(err));
}

static struct conf *must_load(const char *text)
{
	struct conf *c = load_text(text);

	if (c == NULL) {
		print_error("did not load:\n%s\n---\n%s\n", text, err);
		fail();
	}
	return c;
}

/* Loading <text> fails with exactly one error, at <line>, holding <frag>. */
static void one_error(const char *text, unsigned line, const char *frag)
{
	struct conf *c = load_text(text);
	char prefix[PATH_MAX + 32];

	if (c != NULL) {
		conf_free(c);
		print_error("loaded, expected \"%s\" at line %u:\n%s\n", frag, line, text);
		fail();
	}
	snprintf(prefix, sizeof(prefix), "%s:%u: ", conf_path, line);
	if (strchr(err, '\n') != NULL || strncmp(err, prefix, strlen(prefix)) != 0 ||
	    strstr(err, frag) == NULL) {
		print_error("expected one error \"%s...%s\", got:\n%s\n", prefix, frag, err);
		fail();
	}
}

static void test_no_frontend_is_null(void **state)
{
	struct conf *c;

	(void)state;
	c = must_load(ROUTES);
	assert_null(c->frontend);
	conf_free(c);
}

static void test_plain_binds_in_canonical_form(void **state)
{
	struct conf *c;

	(void)state;
	c = must_load("frontend = { bind = [ \"127.0.0.1:8080\", \"[0:0::1]:8080\", \"0.0.0.0:80\" ]; };\n" ROUTES);
	assert_non_null(c->frontend);
	assert_int_equal(c->frontend->nbind, 3);
	assert_string_equal(c->frontend->bind[0], "127.0.0.1:8080");
	assert_string_equal(c->frontend->bind[1], "[::1]:8080");
	assert_string_equal(c->frontend->bind[2], "0.0.0.0:80");
	assert_false(c->frontend->tls);
	assert_false(c->frontend->http2);
	assert_null(c->frontend->certificate);
	assert_null(c->frontend->crt_list);
	conf_free(c);
	/* a list works as well as an array */
	c = must_load("frontend = { bind = ( \"[::]:443\" ); };\n" ROUTES);
	assert_string_equal(c->frontend->bind[0], "[::]:443");
	conf_free(c);
}

static void test_tls_defaults_and_settings(void **state)
{
	struct conf *c;

	(void)state;
	c = must_load("frontend = { bind = [ \"0.0.0.0:443\" ];\n"
		      "  tls = { certificate = \"/etc/haproxy/certs/gw.pem\"; }; };\n" ROUTES);
	assert_true(c->frontend->tls);
	assert_true(c->frontend->http2);           /* the default with tls */
	assert_int_equal(c->frontend->min_version, TLS1_2_VERSION);
	assert_string_equal(c->frontend->certificate, "/etc/haproxy/certs/gw.pem");
	assert_null(c->frontend->crt_list);
	conf_free(c);
	c = must_load("frontend = { bind = [ \"0.0.0.0:443\" ]; http2 = false;\n"
		      "  tls = { crt_list = \"/etc/haproxy/crt-list.txt\"; min_version = \"1.3\"; }; };\n" ROUTES);
	assert_false(c->frontend->http2);
	assert_int_equal(c->frontend->min_version, TLS1_3_VERSION);
	assert_string_equal(c->frontend->crt_list, "/etc/haproxy/crt-list.txt");
	assert_null(c->frontend->certificate);
	conf_free(c);
	/* HAProxy's spelling of the version is read too */
	c = must_load("frontend = { bind = [ \"0.0.0.0:443\" ];\n"
		      "  tls = { certificate = \"/x.pem\"; min_version = \"TLSv1.3\"; }; };\n" ROUTES);
	assert_int_equal(c->frontend->min_version, TLS1_3_VERSION);
	conf_free(c);
}

static void test_bad_binds_are_errors(void **state)
{
	static const struct {
		const char *addr, *frag;
	} bad[] = {
		{ "localhost:443", "numeric IPv4 address (no host names)" },
		{ "gw.example.com:443", "no host names" },
		{ "1.2.3.4", "the port is missing" },
		{ ":443", "the address is missing" },
		{ "*:443", "numeric IPv4" },
		{ "1.2.3.4:0", "port must be a number from 1 to 65535" },
		{ "1.2.3.4:65536", "port must be" },
		{ "1.2.3.4:44x", "port must be" },
		{ "::1:443", "must be in brackets" },
		{ "[::1]443", "[addr]:port" },
		{ "[zz::1]:443", "not a numeric IPv6 address" },
		{ "unix:/run/haproxy.sock", "unix sockets are not supported" },
		{ "1.2.3.4:443 ssl crt /x", "port must be" },
		{ "", "the port is missing" },
	};
	char text[512];

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		snprintf(text, sizeof(text), ROUTES "frontend = {\n bind = [ \"%s\" ]; };\n", bad[i].addr);
		one_error(text, 3, bad[i].frag);
	}
	one_error(ROUTES "frontend = { bind = [\n \"1.2.3.4:443\",\n \"1.2.3.4:443\" ]; };\n", 4,
		  "duplicate bind address \"1.2.3.4:443\" in frontend");
	/* one socket, two spellings */
	one_error(ROUTES "frontend = { bind = [\n \"[::1]:443\",\n \"[0::0:1]:443\" ]; };\n", 4,
		  "duplicate bind address");
	one_error(ROUTES "frontend = {\n bind = [ ]; };\n", 3, "bind in frontend is empty");
	one_error(ROUTES "frontend = {\n bind = \"1.2.3.4:443\"; };\n", 3, "bind in frontend must be an array");
	one_error(ROUTES "frontend = {\n bind = ( 443 ); };\n", 3, "bind entries in frontend must be strings");
	one_error(ROUTES "frontend = {\n bind = [ \"a:1\", \"a:2\", \"a:3\", \"a:4\", \"a:5\", \"a:6\", \"a:7\", "
		  "\"a:8\", \"a:9\", \"a:10\", \"a:11\", \"a:12\", \"a:13\", \"a:14\", \"a:15\", \"a:16\", \"a:17\" ]; };\n",
		  3, "too many bind addresses");
}

static void test_bad_frontend_groups_are_errors(void **state)
{
	(void)state;
	one_error(ROUTES "frontend = {\n tls = { certificate = \"/x.pem\"; }; };\n", 2,
		  "frontend needs bind");
	one_error(ROUTES "frontend = { bind = [ \"1.2.3.4:443\" ];\n port = 443; };\n", 3,
		  "unknown setting \"port\" in frontend");
	one_error(ROUTES "frontend = \"1.2.3.4:443\";\n", 2, "frontend must be a group");
	one_error(ROUTES "frontend = { bind = [ \"1.2.3.4:443\" ];\n http2 = true; };\n", 3,
		  "http2 = true in frontend needs tls");
	one_error(ROUTES "frontend = { bind = [ \"1.2.3.4:443\" ];\n http2 = \"yes\"; };\n", 3,
		  "http2 in frontend must be a boolean");
	/* http2 = false without tls is merely redundant */
	conf_free(must_load(ROUTES "frontend = { bind = [ \"1.2.3.4:443\" ]; http2 = false; };\n"));
}

static void test_bad_tls_is_an_error(void **state)
{
	(void)state;
	one_error(ROUTES "frontend = { bind = [ \"1.2.3.4:443\" ];\n tls = { }; };\n", 3,
		  "frontend.tls needs certificate or crt_list");
	one_error(ROUTES "frontend = { bind = [ \"1.2.3.4:443\" ];\n"
		  " tls = { certificate = \"/a.pem\"; crt_list = \"/b.txt\"; }; };\n", 3,
		  "has both certificate and crt_list");
	one_error(ROUTES "frontend = { bind = [ \"1.2.3.4:443\" ];\n"
		  " tls = { certificate = \"certs/a.pem\"; }; };\n", 3, "bad certificate \"certs/a.pem\" in frontend.tls");
	one_error(ROUTES "frontend = { bind = [ \"1.2.3.4:443\" ];\n"
		  " tls = { certificate = \"/a b.pem\"; }; };\n", 3, "use an absolute path");
	one_error(ROUTES "frontend = { bind = [ \"1.2.3.4:443\" ];\n"
		  " tls = { crt_list = \"/a;b\"; }; };\n", 3, "bad crt_list");
	one_error(ROUTES "frontend = { bind = [ \"1.2.3.4:443\" ];\n"
		  " tls = { certificate = \"\"; }; };\n", 3, "bad certificate");
	one_error(ROUTES "frontend = { bind = [ \"1.2.3.4:443\" ];\n"
		  " tls = { certificate = \"/a/../b.pem\"; }; };\n", 3, "bad certificate");
	one_error(ROUTES "frontend = { bind = [ \"1.2.3.4:443\" ];\n"
		  " tls = { certificate = \"/a.pem\"; min_version = \"1.1\"; }; };\n", 3,
		  "bad min_version \"1.1\" in frontend.tls");
	one_error(ROUTES "frontend = { bind = [ \"1.2.3.4:443\" ];\n"
		  " tls = { certificate = \"/a.pem\"; min_version = \"TLSv1.0\"; }; };\n", 3, "bad min_version");
	one_error(ROUTES "frontend = { bind = [ \"1.2.3.4:443\" ];\n"
		  " tls = { certificate = \"/a.pem\"; key = \"/a.key\"; }; };\n", 3,
		  "unknown setting \"key\" in frontend.tls");
}

/* Every error of the group is reported, not just the first. */
static void test_every_frontend_error_is_collected(void **state)
{
	struct conf *c;
	unsigned n = 1;

	(void)state;
	c = load_text(ROUTES "frontend = {\n bind = [ \"x:1\", \"1.2.3.4\" ];\n"
		      " tls = { certificate = \"rel.pem\"; min_version = \"9\"; };\n http2 = 1; };\n");
	assert_null(c);
	for (const char *p = err; *p; p++)
		n += *p == '\n';
	assert_int_equal(n, 5);
}

/* The shipped config names its frontend explicitly. */
static void test_shipped_config_has_a_frontend(void **state)
{
	struct conf *c;

	(void)state;
	c = conf_load("agent/keyauth.conf", err, sizeof(err));
	if (c == NULL) {
		print_error("agent/keyauth.conf did not load:\n%s\n", err);
		fail();
	}
	assert_non_null(c->frontend);
	assert_true(c->frontend->nbind >= 1);
	conf_free(c);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_no_frontend_is_null),
		cmocka_unit_test(test_plain_binds_in_canonical_form),
		cmocka_unit_test(test_tls_defaults_and_settings),
		cmocka_unit_test(test_bad_binds_are_errors),
		cmocka_unit_test(test_bad_frontend_groups_are_errors),
		cmocka_unit_test(test_bad_tls_is_an_error),
		cmocka_unit_test(test_every_frontend_error_is_collected),
		cmocka_unit_test(test_shipped_config_has_a_frontend),
	};

	return cmocka_run_group_tests(tests, setup_dir, teardown_dir);
}
