/* SPDX-License-Identifier: Apache-2.0 */
/*
 * test_conf_overrides: route_overrides (conf_overrides.c), on files written
 * to a private mkdtemp directory.
 *
 * Covers: absent setting and absent file (no change), an override of the
 * security group (replacing the file's whole group: key_name, carriers) and
 * of rate_limit_rpm, the pending file and a candidate file chosen by
 * conf_load_opts, the config file's own messages at the override file's
 * line (bad key_name, key_location, carrier, rpm range, unknown setting,
 * wrong type, carriers with key_name), a syntax error, a bad version, a
 * duplicate or nameless entry, a relative path, an untrusted (world-
 * writable) file, and an override of a route the config lacks (ignored,
 * listed, never an error).
 */
#include <limits.h>
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

#include "conf.h"

static char tmpdir[64];
static char conf_path[PATH_MAX], ovr_path[PATH_MAX], pend_path[PATH_MAX + 16];
static char err[8192];

static int setup(void **state)
{
	(void)state;
	snprintf(tmpdir, sizeof(tmpdir), "/tmp/test_conf_ovr.XXXXXX");
	if (!mkdtemp(tmpdir))
		return -1;
	snprintf(conf_path, sizeof(conf_path), "%s/k.conf", tmpdir);
	snprintf(ovr_path, sizeof(ovr_path), "%s/routes.override", tmpdir);
	snprintf(pend_path, sizeof(pend_path), "%s.pending", ovr_path);
	return 0;
}

static int teardown(void **state)
{
	char cmd[128];

	(void)state;
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
	return system(cmd) == 0 ? 0 : -1;
}

static void write_file(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");

	assert_non_null(f);
	assert_true(fputs(text, f) >= 0);
	assert_int_equal(fclose(f), 0);
	assert_int_equal(chmod(path, 0644), 0);
}

/* The config: three routes, route_overrides unless <off>. */
static void write_conf(bool off)
{
	char text[PATH_MAX + 1024];

	snprintf(text, sizeof(text),
	         "%s%s%s"
	         "routes = (\n"
	         "  { name = \"openai\"; context = \"/openai\";\n"
	         "    security = { key_name = \"X-API-Key\"; key_location = \"header\"; }; },\n"
	         "  { name = \"chat\"; context = \"/chat\"; rate_limit_rpm = 60; },\n"
	         "  { name = \"ant\"; context = \"/ant\"; provider = \"anthropic\"; }\n"
	         ");\n", off ? "" : "route_overrides = \"", off ? "" : ovr_path, off ? "" : "\";\n");
	write_file(conf_path, text);
}

static const struct route *route(const struct conf *c, const char *name)
{
	const struct route *r = conf_route_find(c, name, strlen(name));

	assert_non_null(r);
	return r;
}

static struct conf *load(const struct conf_load_opts *o)
{
	err[0] = '\0';
	return conf_load_opts(conf_path, o, err, sizeof(err));
}

/* Loads with <ovr> as the applied file and expects failure with <want>
 * (after "<override file>:<line>: ") in the errors. */
static void expect_err_at(const char *ovr, unsigned line, const char *want)
{
	char prefix[PATH_MAX + 32];
	struct conf *c;

	write_file(ovr_path, ovr);
	c = load(NULL);
	if (c != NULL || strstr(err, want) == NULL)
		fail_msg("want \"%s\", got: %s", want, err);
	snprintf(prefix, sizeof(prefix), "%s:%u: %s", ovr_path, line, want);
	if (strstr(err, prefix) == NULL)
		fail_msg("want \"%s\", got: %s", prefix, err);
}

static void test_off_and_absent(void **state)
{
	struct conf *c;

	(void)state;
	write_conf(true);
	write_file(ovr_path, "version = 1; routes = ( { name = \"openai\"; rate_limit_rpm = 5; } );\n");
	c = load(NULL);
	assert_non_null(c);
	assert_null(c->overrides);
	assert_int_equal(route(c, "openai")->rate_limit_rpm, 0);
	conf_free(c);
	unlink(ovr_path);
	write_conf(false);
	c = load(NULL);
	assert_non_null(c);
	assert_non_null(c->overrides);
	assert_string_equal(c->overrides->path, ovr_path);
	assert_null(c->overrides->read);
	assert_string_equal(route(c, "openai")->key_name, "X-API-Key");
	conf_free(c);
}

static void test_applied(void **state)
{
	const struct route *r;
	char buf[96];
	struct conf *c;

	(void)state;
	write_conf(false);
	write_file(ovr_path,
	           "version = 1;\n"
	           "routes = ( { name = \"openai\"; security = { key_name = \"X-Custom-Key\"; }; },\n"
	           "  { name = \"chat\"; rate_limit_rpm = 600; },\n"
	           "  { name = \"ant\"; security = { carriers = [ \"bearer\", \"query:k\" ]; }; } );\n");
	c = load(NULL);
	if (c == NULL)
		fail_msg("%s", err);
	assert_string_equal(c->overrides->read, ovr_path);
	r = route(c, "openai");
	assert_string_equal(r->key_name, "X-Custom-Key");
	/* the override's group replaces the file's whole group */
	assert_int_equal(r->key_location, KEYLOC_HEADER);
	assert_int_equal(r->ncarriers, 1);
	assert_string_equal(carrier_str(&r->carriers[0], buf, sizeof(buf)), "header:X-Custom-Key");
	r = route(c, "chat");
	assert_int_equal(r->rate_limit_rpm, 600);
	assert_string_equal(r->key_name, "X-API-Key");
	r = route(c, "ant");
	assert_int_equal(r->ncarriers, 2);
	assert_string_equal(carrier_str(&r->carriers[1], buf, sizeof(buf)), "query:k");
	assert_int_equal(c->overrides->norphans, 0);
	conf_free(c);
}

static void test_pending_and_candidate(void **state)
{
	struct conf_load_opts pend = { .pending = true }, none = { .no_overrides = true };
	struct conf_load_opts cand = { .overrides = pend_path };
	struct conf *c;

	(void)state;
	write_conf(false);
	write_file(ovr_path, "version = 1; routes = ( { name = \"chat\"; rate_limit_rpm = 1; } );\n");
	/* no pending file: pending reads the applied one */
	c = load(&pend);
	assert_non_null(c);
	assert_int_equal(route(c, "chat")->rate_limit_rpm, 1);
	conf_free(c);
	write_file(pend_path, "version = 1; routes = ( { name = \"chat\"; rate_limit_rpm = 2; } );\n");
	c = load(&pend);
	assert_non_null(c);
	assert_string_equal(c->overrides->read, pend_path);
	assert_int_equal(route(c, "chat")->rate_limit_rpm, 2);
	conf_free(c);
	c = load(NULL);          /* keyauthd: the applied file only */
	assert_non_null(c);
	assert_int_equal(route(c, "chat")->rate_limit_rpm, 1);
	conf_free(c);
	c = load(&none);
	assert_non_null(c);
	assert_int_equal(route(c, "chat")->rate_limit_rpm, 60);
	conf_free(c);
	c = load(&cand);
	assert_non_null(c);
	assert_int_equal(route(c, "chat")->rate_limit_rpm, 2);
	conf_free(c);
}

static void test_errors_at_override_line(void **state)
{
	(void)state;
	write_conf(false);
	expect_err_at("version = 1;\nroutes = ( { name = \"openai\";\n"
	              "  security = { key_name = \"bad name\"; }; } );\n", 3,
	              "bad key_name \"bad name\" (use 1 to 64 characters of A-Z a-z 0-9 _ -");
	expect_err_at("version = 1;\nroutes = ( { name = \"openai\";\n"
	              "  security = { key_location = \"cookie\"; }; } );\n", 3,
	              "bad key_location \"cookie\" (use \"header\" or \"query\")");
	expect_err_at("version = 1;\nroutes = ( { name = \"openai\";\n"
	              "  security = { carriers = [ \"cookie:x\" ]; }; } );\n", 3, "bad carrier \"cookie:x\"");
	expect_err_at("version = 1;\nroutes = ( { name = \"chat\";\n"
	              "  rate_limit_rpm = 1000001; } );\n", 3,
	              "rate_limit_rpm = 1000001 in route \"chat\" is out of range (use 0..1000000)");
	expect_err_at("version = 1;\nroutes = ( { name = \"chat\";\n"
	              "  context = \"/x\"; } );\n", 3,
	              "unknown setting \"context\" in route \"chat\" (remove it or use one of: name, security, rate_limit_rpm)");
	expect_err_at("version = 1;\nroutes = ( { name = \"chat\";\n"
	              "  rate_limit_rpm = \"5\"; } );\n", 3, "rate_limit_rpm in route \"chat\" must be an integer");
	expect_err_at("version = 2;\nroutes = ( );\n", 1, "version = 2 in the route overrides is out of range");
	expect_err_at("version = 1;\nroutes = ( { name = \"chat\"; },\n { name = \"chat\"; } );\n", 3,
	              "duplicate route override \"chat\"");
	expect_err_at("version = 1;\nroutes = ( { rate_limit_rpm = 5; } );\n", 2,
	              "route override #1 needs a route name");
	expect_err_at("version = 1;\nroutes = ( { name = \"chat\"; \n", 3, "syntax error");
}

static void test_relative_and_untrusted(void **state)
{
	struct conf *c;

	(void)state;
	write_file(conf_path, "route_overrides = \"routes.override\";\n"
	           "routes = ( { name = \"a\"; context = \"/a\"; } );\n");
	c = load(NULL);
	assert_null(c);
	assert_non_null(strstr(err, ":1: bad route_overrides \"routes.override\": use an absolute path"));
	write_conf(false);
	write_file(ovr_path, "version = 1; routes = ( );\n");
	assert_int_equal(chmod(ovr_path, 0666), 0);
	c = load(NULL);
	assert_null(c);
	assert_non_null(strstr(err, "writable by others"));
	assert_non_null(strstr(err, ovr_path));
}

static void test_orphan(void **state)
{
	struct conf *c;

	(void)state;
	write_conf(false);
	write_file(ovr_path, "version = 1; routes = ( { name = \"gone\"; rate_limit_rpm = 99999999; },\n"
	           "  { name = \"chat\"; rate_limit_rpm = 7; } );\n");
	c = load(NULL);
	if (c == NULL)
		fail_msg("an orphan override must not fail the load: %s", err);
	assert_int_equal(c->overrides->norphans, 1);
	assert_string_equal(c->overrides->orphans[0], "gone");
	assert_int_equal(route(c, "chat")->rate_limit_rpm, 7);
	conf_free(c);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_off_and_absent, setup, teardown),
		cmocka_unit_test_setup_teardown(test_applied, setup, teardown),
		cmocka_unit_test_setup_teardown(test_pending_and_candidate, setup, teardown),
		cmocka_unit_test_setup_teardown(test_errors_at_override_line, setup, teardown),
		cmocka_unit_test_setup_teardown(test_relative_and_untrusted, setup, teardown),
		cmocka_unit_test_setup_teardown(test_orphan, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
