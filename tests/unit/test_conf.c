/* SPDX-License-Identifier: Apache-2.0 */
/*
 * test_conf: conf_load on files written to a private mkdtemp directory.
 *
 * Covers the defaults, every setting, the shipped agent/keyauth.conf (loaded
 * relative to the repo root, where tests run), each error class with its
 * exact "file:line:" prefix (syntax, unknown setting at every level, wrong
 * type, range bounds on both sides, duplicate names and contexts,
 * authentication type, key location, listen addresses), error collection
 * and truncation, @include, 1,000 routes, and the route lookups.
 * Not covered: running out of memory.
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
#include <syslog.h>
#include <unistd.h>

#include <cmocka.h>

#include "conf.h"

#define MIN_ROUTES "routes = ( { name = \"a\"; context = \"/a\"; } );\n"
/* Plain TCP listeners are refused without it (after the listen line, so
 * that the line numbers of the listen errors stay as written). */
#define PLAIN "allow_plain_tcp = true;\n"

static char tmpdir[64];
static char conf_path[PATH_MAX];
static char err[8192];

/* ---- fixture ------------------------------------------------------------- */

static int setup_dir(void **state)
{
	(void)state;
	snprintf(tmpdir, sizeof(tmpdir), "/tmp/test_conf.XXXXXX");
	if (!mkdtemp(tmpdir))
		return -1;
	snprintf(conf_path, sizeof(conf_path), "%s/t.conf", tmpdir);
	return 0;
}

static int teardown_dir(void **state)
{
	DIR *d = opendir(tmpdir);
	struct dirent *e;
	char p[PATH_MAX];

	(void)state;
	if (!d)
		return -1;
	while ((e = readdir(d))) {
		if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
			continue;
		snprintf(p, sizeof(p), "%s/%s", tmpdir, e->d_name);
		unlink(p);
	}
	closedir(d);
	return rmdir(tmpdir);
}

static void write_file(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");

	assert_non_null(f);
	assert_int_equal(fputs(text, f) >= 0, 1);
	assert_int_equal(fclose(f), 0);
}

/* Writes <text> to t.conf and loads it. */
static struct conf *load_text(const char *text)
{
	write_file(conf_path, text);
	memset(err, 0, sizeof(err));
	return conf_load(conf_path, err, sizeof(err));
}

/* ---- error assertions ------------------------------------------------------ */

static unsigned err_lines(const char *e)
{
	unsigned n = *e ? 1 : 0;

	for (; *e; e++)
		n += *e == '\n';
	return n;
}

/* Asserts that one line of err starts with "<file>:<line>: " and contains
 * <frag>. */
static void assert_err_at(const char *file, unsigned line, const char *frag)
{
	char prefix[PATH_MAX + 32];
	const char *p = err;

	snprintf(prefix, sizeof(prefix), "%s:%u: ", file, line);
	while (*p) {
		const char *eol = strchr(p, '\n');
		size_t len = eol ? (size_t)(eol - p) : strlen(p);
		char one[2048];

		snprintf(one, sizeof(one), "%.*s", (int)len, p);
		if (strncmp(one, prefix, strlen(prefix)) == 0 && strstr(one, frag))
			return;
		p += len + (eol ? 1 : 0);
	}
	print_error("no error line \"%s...%s\" in:\n%s\n", prefix, frag, err);
	fail();
}

/* Loads <text>, expects failure with exactly one error, at <line>. */
static void assert_one_error(const char *text, unsigned line, const char *frag)
{
	struct conf *c = load_text(text);

	if (c) {
		conf_free(c);
		print_error("loaded, expected an error at line %u: %s\n%s\n", line, frag, text);
		fail();
	}
	assert_err_at(conf_path, line, frag);
	if (err_lines(err) != 1) {
		print_error("expected one error, got:\n%s\n", err);
		fail();
	}
}

static void assert_loads(const char *text)
{
	struct conf *c = load_text(text);

	if (!c) {
		print_error("did not load:\n%s\nerrors:\n%s\n", text, err);
		fail();
	}
	conf_free(c);
}

/* ---- loading ---------------------------------------------------------------- */

static void test_defaults_apply_when_only_routes_are_given(void **state)
{
	long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
	unsigned want_workers = ncpu < 1 ? 1 : ncpu > 64 ? 64 : (unsigned)ncpu;
	struct conf *c;

	(void)state;
	c = load_text(MIN_ROUTES);
	assert_non_null(c);
	assert_string_equal(c->path, conf_path);
	/* the same host by default: a unix socket in the directory the
	 * tmpfiles entry makes (dist/keyauth.tmpfiles) */
	assert_int_equal(c->nlisten, 1);
	assert_int_equal(c->listen[0].family, LISTEN_UNIX);
	assert_string_equal(c->listen[0].addr, "unix:/run/keyauth/keyauthd.sock");
	assert_string_equal(c->listen[0].path, "/run/keyauth/keyauthd.sock");
	assert_null(c->listen[0].host);
	assert_int_equal(c->listen[0].mode, 0660);
	assert_false(c->listen[0].tls);
	assert_false(c->allow_plain_tcp);
	assert_int_equal(c->workers, want_workers);
	assert_int_equal(c->max_connections, 10000);
	assert_int_equal(c->max_conn_per_peer, 1000);
	assert_int_equal(c->hello_timeout_ms, 5000);
	assert_int_equal(c->max_frame_size, 16380);
	assert_int_equal(c->idle_timeout_ms, 60000);
	assert_string_equal(c->store_path, "/var/lib/keyauth/keys.db");
	assert_string_equal(c->key_prefix, "ka_");
	assert_int_equal(c->log_level, LOG_INFO);
	assert_int_equal(c->log_target, LOG_TARGET_STDERR);
	assert_null(c->user);
	assert_null(c->pid_file);
	assert_null(c->metrics.addr);
	assert_int_equal(c->nroutes, 1);
	assert_string_equal(c->routes[0].name, "a");
	assert_int_equal(c->routes[0].name_len, 1);
	assert_int_equal(c->routes[0].type, ROUTE_PROVIDER);
	assert_string_equal(c->routes[0].context, "/a");
	assert_int_equal(c->routes[0].context_len, 2);
	assert_string_equal(c->routes[0].key_name, "X-API-Key");
	assert_int_equal(c->routes[0].key_location, KEYLOC_HEADER);
	assert_null(c->routes[0].upstream);
	assert_int_equal(c->routes[0].rate_limit_rpm, 0);
	assert_int_equal(c->npeers, 0);
	assert_null(c->peers);
	assert_null(c->local_peer);
	assert_string_equal(err, "");
	conf_free(c);
}

static void test_every_setting_is_read(void **state)
{
	struct conf *c;

	(void)state;
	c = load_text(
		"listen = [ \"0.0.0.0:1\", \"[::1]:65535\", \"unix:/run/keyauth/agent.sock\",\n"
		"           \"[2001:db8::7]:8080\" ];\n"
		"socket_mode = \"0600\";\n"
		"allow_plain_tcp = true;\n"
		"workers = 3;\n"
		"max_connections = 1000000L;\n"
		"max_connections_per_peer = 2000;\n"
		"hello_timeout = 300;\n"
		"max_frame_size = 16777216;\n"
		"idle_timeout = 0;\n"
		"key_prefix = \"Ab9Zxxxxxxxxxx_\";\n"
		"user = \"nobody\";\n"
		"pid_file = \"/run/k.pid\";\n"
		"metrics_listen = \"[::1]:9412\";\n"
		"store = { backend = \"file\"; path = \"/tmp/keys.db\"; };\n"
		"log = { level = \"debug\"; target = \"syslog\"; };\n"
		"routes = (\n"
		"  { name = \"openai\"; type = \"provider\"; context = \"/openai\";\n"
		"    upstream = \"api.openai.com:443\";\n"
		"    security = { authentication = \"apiKey\"; key_name = \"Authorization\"; key_location = \"header\"; }; },\n"
		"  { name = \"app_1-x\"; type = \"proxy\"; context = \"/apps/chat.v1\"; upstream = \"[::1]:8443\";\n"
		"    security = { key_name = \"api_key\"; key_location = \"query\"; }; },\n"
		"  { name = \"root\"; context = \"/\"; security = { }; }\n"
		");\n");
	if (!c)
		print_error("%s\n", err);
	assert_non_null(c);
	assert_int_equal(c->nlisten, 4);
	assert_int_equal(c->listen[0].family, LISTEN_TCP);
	assert_string_equal(c->listen[0].host, "0.0.0.0");
	assert_int_equal(c->listen[0].port, 1);
	assert_int_equal(c->listen[1].family, LISTEN_TCP);
	assert_string_equal(c->listen[1].addr, "[::1]:65535");
	assert_string_equal(c->listen[1].host, "::1");
	assert_int_equal(c->listen[1].port, 65535);
	assert_int_equal(c->listen[2].family, LISTEN_UNIX);
	assert_string_equal(c->listen[2].addr, "unix:/run/keyauth/agent.sock");
	assert_string_equal(c->listen[2].path, "/run/keyauth/agent.sock");
	assert_int_equal(c->listen[2].mode, 0600);
	assert_string_equal(c->listen[3].host, "2001:db8::7");
	assert_int_equal(c->listen[3].port, 8080);
	assert_int_equal(c->workers, 3);
	assert_int_equal(c->max_connections, 1000000);
	assert_true(c->allow_plain_tcp);
	assert_int_equal(c->max_conn_per_peer, 2000);
	assert_int_equal(c->hello_timeout_ms, 300000);
	assert_int_equal(c->max_frame_size, 16777216);
	assert_int_equal(c->idle_timeout_ms, 0);
	assert_string_equal(c->key_prefix, "Ab9Zxxxxxxxxxx_");
	assert_string_equal(c->user, "nobody");
	assert_string_equal(c->pid_file, "/run/k.pid");
	assert_int_equal(c->metrics.family, LISTEN_TCP);
	assert_string_equal(c->metrics.addr, "[::1]:9412");
	assert_string_equal(c->metrics.host, "::1");
	assert_int_equal(c->metrics.port, 9412);
	assert_string_equal(c->store_path, "/tmp/keys.db");
	assert_int_equal(c->log_level, LOG_DEBUG);
	assert_int_equal(c->log_target, LOG_TARGET_SYSLOG);
	assert_int_equal(c->nroutes, 3);
	assert_string_equal(c->routes[0].key_name, "Authorization");
	assert_string_equal(c->routes[0].upstream, "api.openai.com:443");
	assert_int_equal(c->routes[1].type, ROUTE_PROXY);
	assert_string_equal(c->routes[1].name, "app_1-x");
	assert_string_equal(c->routes[1].context, "/apps/chat.v1");
	assert_string_equal(c->routes[1].key_name, "api_key");
	assert_int_equal(c->routes[1].key_location, KEYLOC_QUERY);
	assert_string_equal(c->routes[1].upstream, "[::1]:8443");
	assert_string_equal(c->routes[2].context, "/");
	assert_string_equal(c->routes[2].key_name, "X-API-Key");
	conf_free(c);
}

static void test_log_levels_map_to_syslog(void **state)
{
	static const struct {
		const char *name;
		int level;
	} t[] = {
		{ "error", LOG_ERR }, { "warning", LOG_WARNING }, { "notice", LOG_NOTICE },
		{ "info", LOG_INFO }, { "debug", LOG_DEBUG },
	};
	char text[256];

	(void)state;
	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		struct conf *c;

		snprintf(text, sizeof(text), "log = { level = \"%s\"; };\n" MIN_ROUTES, t[i].name);
		c = load_text(text);
		assert_non_null(c);
		assert_int_equal(c->log_level, t[i].level);
		conf_free(c);
	}
}

static void test_shipped_config_loads(void **state)
{
	struct conf *c;
	const struct route *r;

	(void)state;
	c = conf_load("agent/keyauth.conf", err, sizeof(err));
	if (!c)
		print_error("%s\n", err);
	assert_non_null(c);
	assert_int_equal(c->nroutes, 3);
	r = conf_route_find(c, "anthropic", 9);
	assert_non_null(r);
	assert_string_equal(r->provider->name, "anthropic");
	assert_int_equal(r->ncarriers, 2);
	r = conf_route_find(c, "openai", 6);
	assert_non_null(r);
	assert_int_equal(r->type, ROUTE_PROVIDER);
	assert_string_equal(r->context, "/openai");
	assert_string_equal(r->key_name, "Authorization");
	assert_int_equal(r->key_location, KEYLOC_HEADER);
	assert_string_equal(r->upstream, "api.openai.com:443");
	r = &c->routes[2];
	assert_int_equal(r->type, ROUTE_PROXY);
	assert_string_equal(r->key_name, "api_key");
	assert_int_equal(r->key_location, KEYLOC_QUERY);
	/* the same host only, on a socket no other local user can take */
	assert_int_equal(c->nlisten, 1);
	assert_int_equal(c->listen[0].family, LISTEN_UNIX);
	assert_string_equal(c->listen[0].path, "/run/keyauth/keyauthd.sock");
	assert_false(c->allow_plain_tcp);
	conf_free(c);
}

static void test_include_is_relative_to_the_config_dir(void **state)
{
	char inc[PATH_MAX];
	struct conf *c;

	(void)state;
	snprintf(inc, sizeof(inc), "%s/routes.inc", tmpdir);
	write_file(inc, "routes = (\n  { name = \"inc\"; context = \"/inc\"; bogus = 1; }\n);\n");
	c = load_text("workers = 1;\n@include \"routes.inc\"\n");
	assert_null(c);
	/* the error names the included file and its line */
	assert_err_at(inc, 2, "unknown setting \"bogus\" in route \"inc\"");
	/* so does a syntax error inside it */
	write_file(inc, "\nroutes = ( { name = ; } );\n");
	c = load_text("workers = 1;\n@include \"routes.inc\"\n");
	assert_null(c);
	assert_err_at(inc, 2, "syntax error");
	write_file(inc, "routes = ( { name = \"inc\"; context = \"/inc\"; } );\n");
	c = load_text("workers = 1;\n@include \"routes.inc\"\n");
	assert_non_null(c);
	assert_string_equal(c->routes[0].name, "inc");
	conf_free(c);
}

static void test_thousand_routes_load_and_are_found(void **state)
{
	size_t cap = 1000 * 96 + 64, off = 0;
	char *text = malloc(cap);
	const struct route *r;
	struct conf *c;

	(void)state;
	assert_non_null(text);
	off += (size_t)snprintf(text + off, cap - off, "routes = (\n");
	for (int i = 0; i < 1000; i++)
		off += (size_t)snprintf(text + off, cap - off,
					"  { name = \"r%d\"; context = \"/p/%d\"; }%s\n", i, i, i < 999 ? "," : "");
	snprintf(text + off, cap - off, ");\n");
	c = load_text(text);
	free(text);
	if (!c)
		print_error("%s\n", err);
	assert_non_null(c);
	assert_int_equal(c->nroutes, 1000);
	r = conf_route_find(c, "r999", 4);
	assert_non_null(r);
	assert_string_equal(r->context, "/p/999");
	assert_ptr_equal(conf_route_find(c, "r0", 2), &c->routes[0]);
	/* exact length: a prefix or an extension of a name is not that name */
	assert_ptr_equal(conf_route_find(c, "r99", 3), &c->routes[99]);
	assert_ptr_equal(conf_route_find(c, "r9999", 4), &c->routes[999]);
	assert_null(conf_route_find(c, "r1000", 5));
	assert_null(conf_route_find(c, "r", 1));
	assert_ptr_equal(conf_route_by_context(c, "/p/10/v1/chat"), &c->routes[10]);
	assert_ptr_equal(conf_route_by_context(c, "/p/100"), &c->routes[100]);
	assert_null(conf_route_by_context(c, "/p/1000"));
	conf_free(c);
}

/* ---- errors --------------------------------------------------------------- */

static void test_syntax_error_names_file_and_line(void **state)
{
	(void)state;
	assert_one_error("workers = 1;\n\nmax_connections = ;\n" MIN_ROUTES, 3, "syntax error");
	/* libconfig itself refuses a setting given twice */
	assert_one_error("workers = 1;\nworkers = 2;\n" MIN_ROUTES, 2, "duplicate setting name");
}

static void test_missing_file_is_reported(void **state)
{
	char path[PATH_MAX + 16], cwd[PATH_MAX];
	struct conf *c;

	(void)state;
	assert_non_null(getcwd(cwd, sizeof(cwd)));
	snprintf(path, sizeof(path), "%s/absent.conf", tmpdir);
	c = conf_load(path, err, sizeof(err));
	assert_null(c);
	assert_non_null(strstr(err, path));
	assert_non_null(strstr(err, "No such file or directory"));
	/* a relative main path is shown as given */
	write_file(conf_path, "bogus = 1;\n" MIN_ROUTES);
	assert_int_equal(chdir(tmpdir), 0);
	c = conf_load("./t.conf", err, sizeof(err));
	assert_int_equal(chdir(cwd), 0);
	assert_null(c);
	assert_true(strncmp(err, "./t.conf:1: unknown setting", 27) == 0);
	c = conf_load(tmpdir, err, sizeof(err));
	assert_null(c);
	assert_non_null(strstr(err, "cannot read"));
}

static void test_unknown_settings_are_errors_at_every_level(void **state)
{
	struct conf *c;

	(void)state;
	c = load_text(
		"workerz = 2;\n"                                        /* 1 */
		"store = { backend = \"file\"; size = 1; };\n"          /* 2 */
		"log = {\n"                                             /* 3 */
		"  colour = true;\n"                                    /* 4 */
		"};\n"                                                  /* 5 */
		"routes = (\n"                                          /* 6 */
		"  { name = \"x\"; context = \"/x\";\n"                 /* 7 */
		"    timeout = 5;\n"                                    /* 8 */
		"    security = {\n"                                    /* 9 */
		"      key_nmae = \"X\"; }; }\n"                        /* 10 */
		");\n");
	assert_null(c);
	assert_err_at(conf_path, 1, "unknown setting \"workerz\" (remove it or use one of: listen,");
	assert_err_at(conf_path, 2, "unknown setting \"size\" in store (remove it or use one of: backend, path, "
		      "address, database, username, password_file, namespace, resync_interval, max_staleness, "
		      "stale_action, write_replicas, write_timeout_ms)");
	assert_err_at(conf_path, 4, "unknown setting \"colour\" in log");
	assert_err_at(conf_path, 8, "unknown setting \"timeout\" in route \"x\"");
	assert_err_at(conf_path, 10, "unknown setting \"key_nmae\" in security");
	assert_int_equal(err_lines(err), 5);
}

static void test_wrong_types_are_errors(void **state)
{
	(void)state;
	assert_one_error("\nworkers = \"two\";\n" MIN_ROUTES, 2,
			 "workers must be an integer, not a string (e.g. workers = 4;)");
	assert_one_error("idle_timeout = 1.5;\n" MIN_ROUTES, 1, "must be an integer, not a float");
	assert_one_error("listen = \"127.0.0.1:1\";\n" MIN_ROUTES, 1, "listen must be an array");
	assert_one_error("listen = [ 1 ];\n" MIN_ROUTES, 1, "listen entries must be strings");
	assert_one_error("socket_mode = 0660;\n" MIN_ROUTES, 1, "socket_mode must be a string");
	assert_one_error("store = \"file\";\n" MIN_ROUTES, 1, "store must be a group");
	assert_one_error("log = { level = 3; };\n" MIN_ROUTES, 1, "level in log must be a string");
	assert_one_error("routes = { name = \"a\"; context = \"/a\"; };\n", 1, "routes must be a list");
	assert_one_error("routes = ( \"a\" );\n", 1, "route #1 must be a group");
	assert_one_error("routes = (\n { name = \"a\"; context = \"/a\";\n   security = { key_name = 5; }; }\n);\n",
			 3, "key_name in security must be a string");
	assert_one_error("routes = ( { name = \"a\"; context = \"/a\"; security = \"apiKey\"; } );\n",
			 1, "security in route \"a\" must be a group");
}

static void test_integers_out_of_range_are_errors_and_bounds_load(void **state)
{
	static const struct {
		const char *name;
		long long lo, hi;
	} t[] = {
		{ "workers", 0, 64 },
		{ "max_connections", 1, 1000000 },
		{ "max_frame_size", 256, 16777216 },
		{ "idle_timeout", 0, 86400 },
		{ "hello_timeout", 1, 300 },
	};
	char text[256];

	(void)state;
	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		snprintf(text, sizeof(text), "# c\n%s = %lld;\n" MIN_ROUTES, t[i].name, t[i].lo);
		assert_loads(text);
		snprintf(text, sizeof(text), "# c\n%s = %lld;\n" MIN_ROUTES, t[i].name, t[i].hi);
		assert_loads(text);
		snprintf(text, sizeof(text), "# c\n%s = %lld;\n" MIN_ROUTES, t[i].name, t[i].lo - 1);
		assert_one_error(text, 2, "is out of range (use");
		snprintf(text, sizeof(text), "# c\n%s = %lld;\n" MIN_ROUTES, t[i].name, t[i].hi + 1);
		assert_one_error(text, 2, "is out of range (use");
		snprintf(text, sizeof(text), "# c\n%s = 9000000000L;\n" MIN_ROUTES, t[i].name);
		assert_one_error(text, 2, "is out of range (use");
	}
}

/* rate_limit_rpm: per route, 0..1000000, default 0 (none). */
static void test_route_rate_limit_rpm(void **state)
{
	struct conf *c;

	(void)state;
	c = load_text("routes = (\n"
		      "  { name = \"a\"; context = \"/a\"; rate_limit_rpm = 600; },\n"
		      "  { name = \"b\"; context = \"/b\"; },\n"
		      "  { name = \"c\"; context = \"/c\"; rate_limit_rpm = 1000000; }\n"
		      ");\n");
	if (!c) {
		print_error("did not load:\n%s\n", err);
		fail();
	}
	assert_int_equal(c->routes[0].rate_limit_rpm, 600);
	assert_int_equal(c->routes[1].rate_limit_rpm, 0);
	assert_int_equal(c->routes[2].rate_limit_rpm, 1000000);
	conf_free(c);
	assert_loads("routes = ( { name = \"a\"; context = \"/a\"; rate_limit_rpm = 0; } );\n");
	assert_one_error("# c\nroutes = ( { name = \"a\"; context = \"/a\";\n rate_limit_rpm = 1000001; } );\n",
			 3, "rate_limit_rpm = 1000001 in route \"a\" is out of range (use 0..1000000)");
	assert_one_error("routes = ( { name = \"a\"; context = \"/a\"; rate_limit_rpm = -1; } );\n",
			 1, "is out of range (use 0..1000000)");
	assert_one_error("routes = ( { name = \"a\"; context = \"/a\"; rate_limit_rpm = \"60\"; } );\n",
			 1, "rate_limit_rpm in route \"a\" must be");
}

/* haproxy_peers / haproxy_local_peer: read for rendering, checked. */
static void test_haproxy_peers(void **state)
{
	struct conf *c;

	(void)state;
	c = load_text("haproxy_peers = ( { name = \"lb1\"; address = \"10.0.0.1:10000\"; },\n"
		      "  { name = \"lb-2.dc\"; address = \"[::1]:10001\"; } );\n"
		      "haproxy_local_peer = \"lb1\";\n" MIN_ROUTES);
	if (!c) {
		print_error("did not load:\n%s\n", err);
		fail();
	}
	assert_int_equal(c->npeers, 2);
	assert_string_equal(c->peers[0].name, "lb1");
	assert_string_equal(c->peers[0].address, "10.0.0.1:10000");
	assert_string_equal(c->peers[1].name, "lb-2.dc");
	assert_string_equal(c->peers[1].address, "[::1]:10001");
	assert_string_equal(c->local_peer, "lb1");
	conf_free(c);
	/* without a local peer: HAProxy takes it from -L or the host name */
	assert_loads("haproxy_peers = ( { name = \"a\"; address = \"h.example:1\"; } );\n" MIN_ROUTES);
	assert_loads("haproxy_peers = ( );\n" MIN_ROUTES);
	assert_one_error("haproxy_peers = ( { name = \"a b\"; address = \"10.0.0.1:1\"; } );\n" MIN_ROUTES,
			 1, "bad peer name");
	assert_one_error("haproxy_peers = ( { name = \"a\"; address = \"10.0.0.1\"; } );\n" MIN_ROUTES,
			 1, "bad peer address");
	assert_one_error("haproxy_peers = ( { name = \"a\"; address = \"x:1\"; },\n"
			 " { name = \"a\"; address = \"y:1\"; } );\n" MIN_ROUTES,
			 2, "duplicate haproxy peer name");
	assert_one_error("haproxy_peers = ( { name = \"a\"; } );\n" MIN_ROUTES,
			 1, "needs both name and address");
	assert_one_error("haproxy_peers = ( { name = \"a\"; address = \"x:1\"; port = 3; } );\n" MIN_ROUTES,
			 1, "unknown setting \"port\" in haproxy peer #1");
	assert_one_error("haproxy_peers = ( \"a\" );\n" MIN_ROUTES, 1, "must be a group");
	c = load_text("haproxy_peers = ( { name = \"a\"; address = \"x:1\"; } );\n"
		      "haproxy_local_peer = \"b\";\n" MIN_ROUTES);
	assert_null(c);
	assert_non_null(strstr(err, "haproxy_local_peer \"b\" is not the name of one of haproxy_peers"));
	c = load_text("haproxy_local_peer = \"b\";\n" MIN_ROUTES);
	assert_null(c);
	assert_non_null(strstr(err, "haproxy_local_peer"));
}

/* libconfig 1.5 keeps the low 32 bits of a plain integer literal: these
 * would load as 256, 60 and 4 without the extra scan */
static void test_integers_libconfig_would_wrap_are_errors(void **state)
{
	static const char *const wrapping[] = {
		"max_frame_size = 4294967552;", "idle_timeout = 4294967356;",
		"workers = -4294967292;", "workers = 0x100000004;", "workers = 99999999999999999999999999;",
	};
	char text[256];

	(void)state;
	for (size_t i = 0; i < sizeof(wrapping) / sizeof(wrapping[0]); i++) {
		snprintf(text, sizeof(text), "\n%s\n" MIN_ROUTES, wrapping[i]);
		assert_one_error(text, 2, "libconfig would silently wrap it around");
	}
	/* within int32 the range check speaks */
	assert_one_error("workers = 2147483647;\n" MIN_ROUTES, 1, "is out of range (use 0..64)");
	assert_one_error("workers = -2147483648;\n" MIN_ROUTES, 1, "is out of range (use 0..64)");
	/* digits in comments, strings, names and floats are not integers */
	assert_loads("# 99999999999\n/* 99999999999\n 99999999999 */ // 99999999999\n"
		     "key_prefix = \"k99999999999_\";\n"
		     "store = { path = \"/tmp/99999999999\\\"99999999999\"; };\n"
		     "routes = ( { name = \"r99999999999\"; context = \"/99999999999\"; } );\n");
	assert_one_error("\n\nidle_timeout = 99999999999.0;\n" MIN_ROUTES, 3, "must be an integer, not a float");
	/* and lines after a block comment are still counted right */
	assert_one_error("/*\n\n*/ workers = 1;\nmax_connections = 99999999999;\n" MIN_ROUTES, 4,
			 "libconfig would silently wrap it around");
}

/* The scan's edges: an "L" suffix leaves the value to the range check (libconfig
 * reads 64 bits), a negative literal is judged against INT32_MIN, hex digits
 * count after "0x" only, and a slash right after the opening slash-star does
 * not close a block comment. */
static void test_wrapped_integer_scan_edges(void **state)
{
	static const struct {
		const char *text;
		unsigned line;
		const char *frag;
	} cases[] = {
		{ "\nworkers = 99999999999L;\n", 2, "is out of range (use 0..64)" },
		{ "workers = -2147483649;\n", 1, "integer -2147483649 is out of range for every setting" },
		{ "workers = 0x80000000;\n", 1, "integer 0x80000000 is out of range for every setting" },
		{ "workers = 0x7fffffff;\n", 1, "is out of range (use 0..64)" },
		/* a literal longer than 31 characters is quoted cut short */
		{ "workers = 123456789012345678901234567890123456789;\n", 1,
		  "integer 1234567890123456789012345678901 is out of range" },
	};
	char text[256];

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		snprintf(text, sizeof(text), "%s" MIN_ROUTES, cases[i].text);
		assert_one_error(text, cases[i].line, cases[i].frag);
	}
	assert_loads("/*/ 99999999999 */ workers = 0x10;\n" MIN_ROUTES);
}

static void test_duplicate_route_name_is_an_error(void **state)
{
	(void)state;
	assert_one_error(
		"routes = (\n"
		"  { name = \"a\"; context = \"/a\"; },\n"
		"  { name = \"b\"; context = \"/b\"; },\n"
		"  { name = \"a\"; context = \"/c\"; }\n"
		");\n", 4, "duplicate route name \"a\" (first used at line 2;");
}

static void test_duplicate_context_is_an_error(void **state)
{
	(void)state;
	assert_one_error(
		"routes = (\n"
		"  { name = \"a\"; context = \"/a\"; },\n"
		"  { name = \"b\";\n"
		"    context = \"/a\"; }\n"
		");\n", 4, "duplicate context \"/a\" (first used by route \"a\" at line 2;");
}

static void test_unsupported_authentication_type_is_an_error(void **state)
{
	(void)state;
	assert_one_error(
		"routes = (\n"
		"  { name = \"a\"; context = \"/a\";\n"
		"    security = { authentication = \"oauth2\"; }; }\n"
		");\n", 3, "unsupported authentication type \"oauth2\": only \"apiKey\" is supported");
	assert_loads("routes = ( { name = \"a\"; context = \"/a\"; security = { authentication = \"apiKey\"; }; } );\n");
}

static void test_bad_key_location_is_an_error(void **state)
{
	(void)state;
	assert_one_error(
		"routes = (\n"
		"  { name = \"a\"; context = \"/a\";\n"
		"    security = {\n"
		"      key_location = \"cookie\"; }; }\n"
		");\n", 4, "bad key_location \"cookie\" (use \"header\" or \"query\")");
}

static void test_bad_listen_addresses_are_errors(void **state)
{
	static const char *const bad[] = {
		"localhost:12345", "127.0.0.1", "127.0.0.1:", "127.0.0.1:0", "127.0.0.1:65536",
		"127.0.0.1:123456", "127.0.0.1:12a", "127.0.0.1:+1", "1.2.3:1", " 127.0.0.1:1",
		"::1:12345", "[::1]12345", "[::1]:", "[zz::1]:1", "[127.0.0.1]:1", "[]:1", ":1",
		"", "unix:", "unix:relative/path", "tcp:127.0.0.1:1",
	};
	char text[512];

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		snprintf(text, sizeof(text), "listen = [\n  \"127.0.0.1:1\",\n  \"%s\" ];\n" PLAIN MIN_ROUTES,
			 bad[i]);
		assert_one_error(text, 3, "bad listen address");
	}
	/* 107 bytes of path is the longest that fits sun_path with its NUL */
	snprintf(text, sizeof(text), "listen = [ \"unix:/%0106d\" ];\n" MIN_ROUTES, 0);
	assert_loads(text);
	snprintf(text, sizeof(text), "listen = [ \"unix:/%0107d\" ];\n" MIN_ROUTES, 0);
	assert_one_error(text, 1, "shorter than 108 bytes");
	assert_one_error("listen = [ ];\n" MIN_ROUTES, 1, "listen is empty");
	assert_one_error("listen = [ \"127.0.0.1:1\",\n \"127.0.0.1:1\" ];\n" PLAIN MIN_ROUTES, 2,
			 "duplicate listen address");
	assert_one_error("listen = [ \"[::1]:1\",\n \"[0:0::1]:1\" ];\n" PLAIN MIN_ROUTES, 2,
			 "duplicate listen address");
	assert_loads("listen = [ \"127.0.0.1:1\", \"127.0.0.1:2\", \"[::1]:1\", \"unix:/tmp/a\" ];\n"
		     PLAIN MIN_ROUTES);
	assert_one_error("listen = [ \"127.0.0.1:1\", \"127.0.0.1:2\", \"127.0.0.1:3\", \"127.0.0.1:4\",\n"
			 "  \"127.0.0.1:5\", \"127.0.0.1:6\", \"127.0.0.1:7\", \"127.0.0.1:8\",\n"
			 "  \"127.0.0.1:9\", \"127.0.0.1:10\", \"127.0.0.1:11\", \"127.0.0.1:12\",\n"
			 "  \"127.0.0.1:13\", \"127.0.0.1:14\", \"127.0.0.1:15\", \"127.0.0.1:16\", \"127.0.0.1:17\" ];\n"
			 MIN_ROUTES, 1, "too many listen addresses");
}

/* Issue #17, finding 1: SPOP does not authenticate the agent, so a plain
 * TCP listener (which any local user may take while keyauthd is away) needs
 * allow_plain_tcp; unix sockets and "tls:" listeners do not. */
static void test_plain_tcp_needs_allow_plain_tcp(void **state)
{
	static const char *const tcp[] = { "127.0.0.1:12345", "[::1]:12345", "0.0.0.0:1" };
	char text[512];
	struct conf *c;

	(void)state;
	for (size_t i = 0; i < sizeof(tcp) / sizeof(tcp[0]); i++) {
		snprintf(text, sizeof(text), "listen = [\n  \"unix:/tmp/a\",\n  \"%s\" ];\n" MIN_ROUTES,
			 tcp[i]);
		assert_one_error(text, 3, "is plain TCP");
		/* the error says why and what to do instead */
		assert_non_null(strstr(err, "any local user who binds it while keyauthd is away"));
		assert_non_null(strstr(err, "receives every client key"));
		assert_non_null(strstr(err, "use a unix socket"));
		assert_non_null(strstr(err, "\"tls:ADDRESS\" with HAProxy verifying the agent's certificate"));
		assert_non_null(strstr(err, "allow_plain_tcp = true;"));
		/* one error for the file, at the first plain TCP entry */
		snprintf(text, sizeof(text), "listen = [ \"unix:/tmp/a\",\n \"%s\",\n \"127.0.0.2:1\" ];\n"
			 MIN_ROUTES, tcp[i]);
		assert_one_error(text, 2, "is plain TCP");
		snprintf(text, sizeof(text), "listen = [ \"%s\" ];\n" PLAIN MIN_ROUTES, tcp[i]);
		assert_loads(text);
		/* allow_plain_tcp may come first too */
		snprintf(text, sizeof(text), PLAIN "listen = [ \"%s\" ];\n" MIN_ROUTES, tcp[i]);
		assert_loads(text);
	}
	assert_one_error("listen = [ \"127.0.0.1:1\" ];\nallow_plain_tcp = false;\n" MIN_ROUTES, 1,
			 "is plain TCP");
	assert_one_error("allow_plain_tcp = \"yes\";\n" MIN_ROUTES, 1,
			 "allow_plain_tcp must be a boolean (true or false), not a string");
	assert_one_error("allow_plain_tcp = 1;\n" MIN_ROUTES, 1, "allow_plain_tcp must be a boolean");
	/* TLS needs nothing more than its group; unix sockets nothing at all */
	c = load_text("listen = [ \"tls:127.0.0.1:1\", \"tls:[::1]:1\", \"unix:/tmp/a\" ];\n"
		      "tls = { cert = \"/x.pem\"; key = \"/x.key\"; };\n" MIN_ROUTES);
	if (!c)
		print_error("%s\n", err);
	assert_non_null(c);
	assert_false(c->allow_plain_tcp);
	assert_true(c->listen[0].tls && c->listen[1].tls && !c->listen[2].tls);
	conf_free(c);
	/* the metrics endpoint is HTTP, not the agent: not concerned */
	assert_loads("metrics_listen = \"127.0.0.1:9412\";\n" MIN_ROUTES);
}

/* Issue #17, finding 2: max_connections_per_peer (1..max_connections,
 * default min(1000, max_connections)) and hello_timeout (1..300 s). */
static void test_per_peer_limit_and_hello_timeout(void **state)
{
	struct conf *c;

	(void)state;
	c = load_text("max_connections = 64;\n" MIN_ROUTES);
	assert_non_null(c);
	assert_int_equal(c->max_conn_per_peer, 64);
	conf_free(c);
	c = load_text("max_connections = 5000;\nmax_connections_per_peer = 5000;\nhello_timeout = 1;\n"
		      MIN_ROUTES);
	assert_non_null(c);
	assert_int_equal(c->max_conn_per_peer, 5000);
	assert_int_equal(c->hello_timeout_ms, 1000);
	conf_free(c);
	c = load_text("max_connections_per_peer = 1;\n" MIN_ROUTES);
	assert_non_null(c);
	assert_int_equal(c->max_conn_per_peer, 1);
	assert_int_equal(c->max_connections, 10000);
	conf_free(c);
	assert_one_error("max_connections_per_peer = 10001;\n" MIN_ROUTES, 1,
			 "max_connections_per_peer = 10001 is above max_connections = 10000 (use at most 10000");
	assert_one_error("max_connections = 10;\n\nmax_connections_per_peer = 11;\n" MIN_ROUTES, 3,
			 "is above max_connections = 10");
	assert_one_error("max_connections_per_peer = 0;\n" MIN_ROUTES, 1, "is out of range (use 1..1000000)");
	assert_one_error("max_connections_per_peer = \"10\";\n" MIN_ROUTES, 1, "must be an integer");
	assert_one_error("hello_timeout = 0;\n" MIN_ROUTES, 1, "hello_timeout = 0 is out of range (use 1..300)");
	assert_one_error("hello_timeout = 301;\n" MIN_ROUTES, 1, "is out of range (use 1..300)");
}

static void test_routes_are_required(void **state)
{
	struct conf *c;

	(void)state;
	c = load_text("workers = 1;\n");
	assert_null(c);
	assert_non_null(strstr(err, conf_path));
	assert_non_null(strstr(err, "no routes defined"));
	assert_int_equal(err_lines(err), 1);
	assert_one_error("\nroutes = ( );\n", 2, "routes is empty");
	assert_one_error("routes = (\n  { context = \"/a\"; }\n);\n", 2, "route #1 has no name");
	assert_one_error("routes = (\n  { name = \"a\"; }\n);\n", 2, "route \"a\" has no context");
}

static void test_bad_route_fields_are_errors(void **state)
{
	static const char *const bad_ctx[] = {
		"openai", "/openai/", "/a/../b", "/..", "/a b", "/a//b", "/a?x", "", "/%41",
	};
	static const char *const good_ctx[] = { "/", "/a", "/a.b/c-d/e_f", "/v1.2" };
	char text[256];

	(void)state;
	for (size_t i = 0; i < sizeof(bad_ctx) / sizeof(bad_ctx[0]); i++) {
		snprintf(text, sizeof(text), "routes = (\n { name = \"a\";\n   context = \"%s\"; }\n);\n", bad_ctx[i]);
		assert_one_error(text, 3, "bad context");
	}
	for (size_t i = 0; i < sizeof(good_ctx) / sizeof(good_ctx[0]); i++) {
		snprintf(text, sizeof(text), "routes = ( { name = \"a\"; context = \"%s\"; } );\n", good_ctx[i]);
		assert_loads(text);
	}
	assert_one_error("routes = ( { name = \"a b\"; context = \"/a\"; } );\n", 1, "bad route name \"a b\"");
	assert_one_error("routes = ( { name = \"\"; context = \"/a\"; } );\n", 1, "bad route name");
	/* 64 characters is the longest name */
	snprintf(text, sizeof(text), "routes = ( { name = \"%064d\"; context = \"/a\"; } );\n", 0);
	assert_loads(text);
	snprintf(text, sizeof(text), "routes = ( { name = \"%065d\"; context = \"/a\"; } );\n", 0);
	assert_one_error(text, 1, "bad route name");
	assert_one_error("routes = ( { name = \"a\"; type = \"vendor\"; context = \"/a\"; } );\n", 1,
			 "bad route type \"vendor\" (use \"provider\" or \"proxy\")");
	assert_one_error("routes = ( { name = \"a\"; context = \"/a\"; security = { key_name = \"X API\"; }; } );\n",
			 1, "bad key_name");
	assert_one_error("routes = ( { name = \"a\"; context = \"/a\"; upstream = \"api.openai.com\"; } );\n",
			 1, "bad upstream");
	assert_one_error("routes = ( { name = \"a\"; context = \"/a\"; upstream = \"a b:443\"; } );\n",
			 1, "bad upstream");
	/* a control character in a value does not split the error line */
	assert_one_error("routes = ( { name = \"a\\nb\"; context = \"/a\"; } );\n", 1, "bad route name \"a?b\"");
}

static void test_redis_store_settings_and_defaults(void **state)
{
	struct conf *c;

	(void)state;
	c = load_text(MIN_ROUTES);
	assert_non_null(c);
	assert_null(c->store_redis);
	conf_free(c);
	c = load_text("store = { backend = \"redis\"; };\n" MIN_ROUTES);
	assert_non_null(c);
	assert_non_null(c->store_redis);
	assert_string_equal(c->store_redis->address, "127.0.0.1:6379");
	assert_string_equal(c->store_redis->namespace, "keyauth");
	assert_int_equal(c->store_redis->database, 0);
	assert_null(c->store_redis->password_file);
	assert_null(c->store_redis->username);
	assert_int_equal(c->store_redis->resync_interval, 60);
	assert_int_equal(c->store_redis->max_staleness, 300);
	assert_true(c->store_redis->stale_deny);            /* fail closed past 300 s */
	assert_int_equal(c->store_redis->write_replicas, 0);
	assert_int_equal(c->store_redis->write_timeout_ms, 1000);
	conf_free(c);
	/* Settings before the backend line count too. */
	c = load_text("store = { address = \"unix:/run/redis.sock\"; database = 3; "
		      "password_file = \"/etc/keyauth/redis.pass\"; namespace = \"ka:prod\"; "
		      "username = \"keyauth-agent\"; resync_interval = 5; max_staleness = 30; stale_action = \"serve\"; "
		      "write_replicas = 2; write_timeout_ms = 500; backend = \"redis\"; };\n" MIN_ROUTES);
	assert_non_null(c);
	assert_string_equal(c->store_redis->address, "unix:/run/redis.sock");
	assert_int_equal(c->store_redis->database, 3);
	assert_string_equal(c->store_redis->password_file, "/etc/keyauth/redis.pass");
	assert_string_equal(c->store_redis->username, "keyauth-agent");
	assert_string_equal(c->store_redis->namespace, "ka:prod");
	assert_int_equal(c->store_redis->resync_interval, 5);
	assert_int_equal(c->store_redis->max_staleness, 30);
	assert_false(c->store_redis->stale_deny);
	assert_int_equal(c->store_redis->write_replicas, 2);
	assert_int_equal(c->store_redis->write_timeout_ms, 500);
	conf_free(c);
}

static void test_other_bad_values_are_errors(void **state)
{
	(void)state;
	assert_one_error("socket_mode = \"0860\";\n" MIN_ROUTES, 1, "bad socket_mode");
	assert_one_error("socket_mode = \"17777\";\n" MIN_ROUTES, 1, "bad socket_mode");
	assert_one_error("socket_mode = \"\";\n" MIN_ROUTES, 1, "bad socket_mode");
	assert_one_error("key_prefix = \"ka\";\n" MIN_ROUTES, 1, "bad key_prefix");
	assert_one_error("key_prefix = \"_\";\n" MIN_ROUTES, 1, "bad key_prefix");
	assert_one_error("key_prefix = \"k-a_\";\n" MIN_ROUTES, 1, "bad key_prefix");
	assert_one_error("key_prefix = \"abcdefghijklmno_\";\n" MIN_ROUTES, 1, "bad key_prefix");
	assert_one_error("store = { backend = \"etcd\"; };\n" MIN_ROUTES, 1,
			 "unsupported store backend \"etcd\"");
	assert_one_error("store = { address = \"127.0.0.1:6379\"; };\n" MIN_ROUTES, 1,
			 "address in store needs backend = \"redis\"");
	assert_one_error("store = { max_staleness = 10; };\n" MIN_ROUTES, 1,
			 "max_staleness in store needs backend = \"redis\"");
	assert_one_error("store = { backend = \"redis\"; stale_action = \"maybe\"; };\n" MIN_ROUTES,
			 1, "stale_action must be");
	assert_one_error("store = { backend = \"redis\"; namespace = \"a b\"; };\n" MIN_ROUTES,
			 1, "bad namespace");
	assert_one_error("store = { backend = \"redis\"; password_file = \"rel\"; };\n" MIN_ROUTES,
			 1, "password_file must be an absolute path");
	assert_one_error("store = { backend = \"redis\"; address = \"nocolon\"; };\n" MIN_ROUTES,
			 1, "bad redis address");
	assert_one_error("store = { write_replicas = 1; };\n" MIN_ROUTES, 1,
			 "write_replicas in store needs backend = \"redis\"");
	assert_one_error("store = { backend = \"redis\"; write_timeout_ms = 0; };\n" MIN_ROUTES, 1,
			 "write_timeout_ms");
	assert_one_error("store = { username = \"keyauth\"; };\n" MIN_ROUTES, 1,
			 "username in store needs backend = \"redis\"");
	assert_one_error("store = { backend = \"redis\"; username = \"keyauth\"; };\n" MIN_ROUTES,
			 1, "username in store needs password_file");
	assert_one_error("store = { backend = \"redis\"; password_file = \"/p\"; "
			 "username = \"a b\"; };\n" MIN_ROUTES, 1, "bad redis username");
	assert_one_error("store = { backend = \"redis\"; password_file = \"/p\"; "
			 "username = \"\"; };\n" MIN_ROUTES, 1, "redis username must be 1..128");
	assert_one_error("store = { path = \"\"; };\n" MIN_ROUTES, 1, "store path is empty");
	assert_one_error("log = { level = \"verbose\"; };\n" MIN_ROUTES, 1, "bad log level");
	assert_one_error("log = { target = \"file\"; };\n" MIN_ROUTES, 1, "bad log target");
	assert_one_error("user = \"\";\n" MIN_ROUTES, 1, "bad user");
	assert_one_error("pid_file = \"\";\n" MIN_ROUTES, 1, "pid_file is empty");
	assert_one_error("metrics_listen = \"unix:/run/m.sock\";\n" MIN_ROUTES, 1,
			 "bad metrics_listen \"unix:/run/m.sock\": the metrics endpoint is TCP only");
	assert_one_error("metrics_listen = \"localhost:9412\";\n" MIN_ROUTES, 1,
			 "bad metrics_listen \"localhost:9412\": the host must be a numeric");
	assert_one_error("metrics_listen = \"127.0.0.1:0\";\n" MIN_ROUTES, 1, "bad metrics_listen");
	assert_one_error("metrics_listen = \"65536\";\n" MIN_ROUTES, 1, "bad metrics_listen \"65536\"");
	assert_one_error("metrics_listen = \"\";\n" MIN_ROUTES, 1, "bad metrics_listen");
	assert_one_error("metrics_listen = 9412;\n" MIN_ROUTES, 1, "metrics_listen");
}

/* A port alone means loopback: the endpoint is not published by accident. */
static void test_metrics_listen_port_alone_is_loopback(void **state)
{
	struct conf *c;

	(void)state;
	c = load_text("metrics_listen = \"9412\";\n" MIN_ROUTES);
	assert_non_null(c);
	assert_string_equal(c->metrics.addr, "127.0.0.1:9412");
	assert_string_equal(c->metrics.host, "127.0.0.1");
	assert_int_equal(c->metrics.port, 9412);
	conf_free(c);
	c = load_text("metrics_listen = \"0.0.0.0:9412\";\n" MIN_ROUTES);
	assert_non_null(c);
	assert_string_equal(c->metrics.host, "0.0.0.0");
	conf_free(c);
}

static void test_every_error_is_collected(void **state)
{
	struct conf *c;

	(void)state;
	c = load_text(
		"workers = \"two\";\n"                                  /* 1 */
		"listen = [ \"localhost:1\" ];\n"                       /* 2 */
		"max_frame_size = 100;\n"                               /* 3 */
		"routes = (\n"                                          /* 4 */
		"  { name = \"a\"; context = \"/a\"; },\n"              /* 5 */
		"  { name = \"a\"; context = \"/b\";\n"                 /* 6 */
		"    security = { authentication = \"basic\";\n"        /* 7 */
		"                 key_location = \"body\"; }; }\n"      /* 8 */
		");\n");
	assert_null(c);
	assert_err_at(conf_path, 1, "workers must be an integer");
	assert_err_at(conf_path, 2, "bad listen address \"localhost:1\"");
	assert_err_at(conf_path, 3, "max_frame_size = 100 is out of range (use 256..16777216)");
	assert_err_at(conf_path, 6, "duplicate route name \"a\"");
	assert_err_at(conf_path, 7, "unsupported authentication type \"basic\"");
	assert_err_at(conf_path, 8, "bad key_location \"body\"");
	assert_int_equal(err_lines(err), 6);
	assert_int_not_equal(err[strlen(err) - 1], '\n');
}

static void test_errors_are_truncated_within_the_buffer(void **state)
{
	char buf[64];
	struct conf *c;

	(void)state;
	write_file(conf_path, "a = 1;\nb = 2;\nc = 3;\n" MIN_ROUTES);
	memset(buf, 'Z', sizeof(buf));
	c = conf_load(conf_path, buf, 40);
	assert_null(c);
	assert_int_equal(strlen(buf), 39);
	assert_memory_equal(buf + 36, "...", 3);
	for (size_t i = 40; i < sizeof(buf); i++)
		assert_int_equal(buf[i], 'Z');
	/* no buffer at all: still fails cleanly */
	c = conf_load(conf_path, NULL, 0);
	assert_null(c);
	c = conf_load(conf_path, buf, 1);
	assert_null(c);
	assert_int_equal(buf[0], '\0');
}

/* ---- lookups ---------------------------------------------------------------- */

static void test_route_by_context_takes_longest_segment_prefix(void **state)
{
	struct conf *c;

	(void)state;
	c = load_text(
		"routes = (\n"
		"  { name = \"root\"; context = \"/\"; },\n"
		"  { name = \"openai\"; context = \"/openai\"; },\n"
		"  { name = \"openai-v2\"; context = \"/openai/v2\"; },\n"
		"  { name = \"other\"; context = \"/other\"; }\n"
		");\n");
	assert_non_null(c);
	assert_string_equal(conf_route_by_context(c, "/openai")->name, "openai");
	assert_string_equal(conf_route_by_context(c, "/openai/v1/chat")->name, "openai");
	assert_string_equal(conf_route_by_context(c, "/openai/v2")->name, "openai-v2");
	assert_string_equal(conf_route_by_context(c, "/openai/v2/x")->name, "openai-v2");
	assert_string_equal(conf_route_by_context(c, "/openai/v20")->name, "openai");
	assert_string_equal(conf_route_by_context(c, "/openai?x=1")->name, "openai");
	assert_string_equal(conf_route_by_context(c, "/openaix")->name, "root");
	assert_string_equal(conf_route_by_context(c, "/")->name, "root");
	assert_null(conf_route_by_context(c, "openai"));
	assert_null(conf_route_by_context(c, ""));
	conf_free(c);

	c = load_text(MIN_ROUTES);
	assert_non_null(c);
	assert_non_null(conf_route_by_context(c, "/a/b"));
	assert_null(conf_route_by_context(c, "/ab"));
	assert_null(conf_route_by_context(c, "/"));
	conf_free(c);
}

static void test_enum_names(void **state)
{
	(void)state;
	assert_string_equal(route_type_str(ROUTE_PROVIDER), "provider");
	assert_string_equal(route_type_str(ROUTE_PROXY), "proxy");
	assert_string_equal(key_location_str(KEYLOC_HEADER), "header");
	assert_string_equal(key_location_str(KEYLOC_QUERY), "query");
}

static void test_conf_free_null_is_a_noop(void **state)
{
	(void)state;
	conf_free(NULL);
}

/* ---- provider profiles and carriers ---------------------------------------- */

static void test_provider_profiles_set_carriers_upstream_and_errors(void **state)
{
	struct conf *c;
	const struct route *r;
	char b[96];

	(void)state;
	c = load_text("routes = (\n"
	              " { name = \"oa\"; context = \"/oa\"; provider = \"openai\"; },\n"
	              " { name = \"az\"; context = \"/az\"; provider = \"azure-openai\"; },\n"
	              " { name = \"an\"; context = \"/an\"; provider = \"anthropic\"; },\n"
	              " { name = \"ge\"; context = \"/ge\"; provider = \"gemini\"; },\n"
	              " { name = \"mi\"; context = \"/mi\"; provider = \"mistral\"; },\n"
	              " { name = \"plain\"; context = \"/plain\"; }\n"
	              ");\n");
	if (!c) {
		print_error("%s\n", err);
		fail();
	}
	r = conf_route_find(c, "oa", 2);
	assert_int_equal(r->ncarriers, 1);
	assert_true(carrier_is_bearer(&r->carriers[0]));
	assert_string_equal(upstream_auth_str(&r->upstream_auth, b, sizeof(b)), "bearer");
	assert_int_equal(r->errors, ERRFMT_OPENAI);
	r = conf_route_find(c, "az", 2);
	assert_int_equal(r->ncarriers, 2);
	assert_string_equal(carrier_str(&r->carriers[0], b, sizeof(b)), "header:api-key");
	assert_string_equal(carrier_str(&r->carriers[1], b, sizeof(b)), "bearer");
	assert_string_equal(upstream_auth_str(&r->upstream_auth, b, sizeof(b)), "header:api-key");
	r = conf_route_find(c, "an", 2);
	assert_string_equal(carrier_str(&r->carriers[0], b, sizeof(b)), "header:x-api-key");
	assert_string_equal(upstream_auth_str(&r->upstream_auth, b, sizeof(b)), "header:x-api-key");
	assert_int_equal(r->errors, ERRFMT_ANTHROPIC);
	r = conf_route_find(c, "ge", 2);
	assert_string_equal(carrier_str(&r->carriers[0], b, sizeof(b)), "header:x-goog-api-key");
	assert_string_equal(carrier_str(&r->carriers[1], b, sizeof(b)), "query:key");
	assert_string_equal(upstream_auth_str(&r->upstream_auth, b, sizeof(b)), "header:x-goog-api-key");
	assert_int_equal(r->errors, ERRFMT_GOOGLE);
	/* Without a provider: the seed's behaviour, unchanged. */
	r = conf_route_find(c, "plain", 5);
	assert_string_equal(r->provider->name, "generic");
	assert_int_equal(r->ncarriers, 1);
	assert_string_equal(r->key_name, "X-API-Key");
	assert_int_equal(r->key_location, KEYLOC_HEADER);
	assert_string_equal(upstream_auth_str(&r->upstream_auth, b, sizeof(b)), "bearer");
	assert_int_equal(r->tunnel_timeout_s, 3600);
	assert_int_equal(c->rate_window_s, 60);
	conf_free(c);
}

static void test_route_overrides_win_over_the_profile(void **state)
{
	struct conf *c;
	const struct route *r;
	char b[96];

	(void)state;
	c = load_text("rate_limit_window = 5;\n"
	              "routes = (\n"
	              " { name = \"ge\"; context = \"/ge\"; provider = \"gemini\"; upstream_auth = \"query:key\";\n"
	              "   error_format = \"openai\";\n"
	              "   security = { carriers = [ \"query:key\", \"bearer\", \"header:X-Goog-Api-Key\" ]; }; },\n"
	              " { name = \"an\"; context = \"/an\"; provider = \"anthropic\";\n"
	              "   security = { key_name = \"x-api-key\"; key_location = \"header\"; }; },\n"
	              " { name = \"self\"; context = \"/self\"; upstream_auth = \"none\"; tunnel_timeout = 30; }\n"
	              ");\n");
	if (!c) {
		print_error("%s\n", err);
		fail();
	}
	assert_int_equal(c->rate_window_s, 5);
	r = conf_route_find(c, "ge", 2);
	assert_int_equal(r->ncarriers, 3);
	assert_string_equal(carrier_str(&r->carriers[0], b, sizeof(b)), "query:key");
	assert_string_equal(r->key_name, "key");
	assert_int_equal(r->key_location, KEYLOC_QUERY);
	assert_true(carrier_is_bearer(&r->carriers[1]));
	assert_string_equal(upstream_auth_str(&r->upstream_auth, b, sizeof(b)), "query:key");
	assert_int_equal(r->errors, ERRFMT_OPENAI);
	/* key_name/key_location on a provider route: exactly that one carrier. */
	r = conf_route_find(c, "an", 2);
	assert_int_equal(r->ncarriers, 1);
	assert_string_equal(carrier_str(&r->carriers[0], b, sizeof(b)), "header:x-api-key");
	assert_int_equal(r->errors, ERRFMT_ANTHROPIC);
	r = conf_route_find(c, "self", 4);
	assert_int_equal(r->upstream_auth.kind, UPAUTH_NONE);
	assert_int_equal(r->tunnel_timeout_s, 30);
	conf_free(c);
}

static void test_bad_providers_and_carriers_are_errors(void **state)
{
	(void)state;
	assert_one_error("routes = (\n { name = \"a\"; context = \"/a\";\n   provider = \"openia\"; }\n);\n",
	                 3, "unknown provider \"openia\" (use one of \"openai\", \"azure-openai\"");
	assert_one_error("routes = (\n { name = \"a\"; context = \"/a\";\n   security = { carriers = [ ]; }; }\n);\n",
	                 3, "carriers is empty");
	assert_one_error("routes = (\n { name = \"a\"; context = \"/a\";\n   security = { carriers = [ \"\" ]; }; }\n);\n",
	                 3, "empty carrier in carriers");
	assert_one_error("routes = (\n { name = \"a\"; context = \"/a\";\n"
	                 "   security = { carriers = [ \"header:X-API-Key\", \"header:x-api-key\" ]; }; }\n);\n",
	                 3, "duplicate carrier \"header:x-api-key\" (same place as \"header:X-API-Key\"");
	assert_one_error("routes = (\n { name = \"a\"; context = \"/a\";\n"
	                 "   security = { carriers = [ \"bearer\", \"header:Authorization\" ]; }; }\n);\n",
	                 3, "duplicate carrier");
	assert_one_error("routes = (\n { name = \"a\"; context = \"/a\";\n"
	                 "   security = { carriers = [ \"header:X API\" ]; }; }\n);\n",
	                 3, "HAProxy matches names literally");
	assert_one_error("routes = (\n { name = \"a\"; context = \"/a\";\n"
	                 "   security = { carriers = [ \"cookie:k\" ]; }; }\n);\n",
	                 3, "bad carrier \"cookie:k\" (use \"bearer\", \"header:NAME\" or \"query:NAME\"");
	assert_one_error("routes = (\n { name = \"a\"; context = \"/a\";\n"
	                 "   security = { carriers = [ \"query:a(b)\" ]; }; }\n);\n",
	                 3, "HAProxy matches names literally");
	assert_one_error("routes = (\n { name = \"a\"; context = \"/a\";\n"
	                 "   security = { carriers = [ 5 ]; }; }\n);\n",
	                 3, "carriers must hold strings");
	assert_one_error("routes = (\n { name = \"a\"; context = \"/a\";\n"
	                 "   upstream_auth = \"basic\"; }\n);\n",
	                 3, "bad upstream_auth \"basic\" (use \"bearer\", \"none\", \"header:NAME\" or \"query:NAME\"");
	assert_one_error("routes = (\n { name = \"a\"; context = \"/a\";\n"
	                 "   error_format = \"aws\"; }\n);\n",
	                 3, "bad error_format \"aws\"");
	assert_one_error("routes = (\n { name = \"a\"; context = \"/a\";\n"
	                 "   security = { key_name = \"k\"; carriers = [ \"bearer\" ]; }; }\n);\n",
	                 2, "sets both carriers and key_name/key_location");
	assert_one_error("rate_limit_window = 0;\n" MIN_ROUTES, 1, "rate_limit_window = 0 is out of range (use 1..60)");
	assert_one_error("routes = (\n { name = \"a\"; context = \"/a\";\n   tunnel_timeout = 0; }\n);\n",
	                 3, "tunnel_timeout = 0 in route \"a\" is out of range (use 1..86400)");
}

/* methods: the default, a route's own list, and every kind of bad entry
 * (TRACE and CONNECT never, unknown names, case, duplicates, empty). */
static void test_route_methods(void **state)
{
	struct conf *c;

	(void)state;
	c = load_text("routes = (\n { name = \"a\"; context = \"/a\"; },\n"
	              " { name = \"b\"; context = \"/b\"; methods = [ \"PUT\", \"GET\", \"PATCH\" ]; },\n"
	              " { name = \"c\"; context = \"/c\"; methods = ( \"OPTIONS\" ); }\n);\n");
	assert_non_null(c);
	assert_int_equal(c->routes[0].methods, ROUTE_METHODS_DEFAULT);
	assert_int_equal(ROUTE_METHODS_DEFAULT, (1u << ROUTE_M_GET) | (1u << ROUTE_M_HEAD) |
	                 (1u << ROUTE_M_POST) | (1u << ROUTE_M_DELETE) | (1u << ROUTE_M_OPTIONS));
	assert_int_equal(c->routes[1].methods, (1u << ROUTE_M_GET) | (1u << ROUTE_M_PUT) | (1u << ROUTE_M_PATCH));
	assert_int_equal(c->routes[2].methods, 1u << ROUTE_M_OPTIONS);
	conf_free(c);
	assert_string_equal(route_method_str(ROUTE_M_GET), "GET");
	assert_string_equal(route_method_str(ROUTE_M_OPTIONS), "OPTIONS");
	assert_null(route_method_str(ROUTE_M_ENTRIES));

	assert_one_error("routes = (\n { name = \"a\"; context = \"/a\";\n   methods = [ \"GET\", \"TRACE\" ]; }\n);\n",
	                 3, "method \"TRACE\" is never allowed (TRACE echoes the request back");
	assert_one_error("routes = (\n { name = \"a\"; context = \"/a\";\n   methods = [ \"connect\" ]; }\n);\n",
	                 3, "method \"connect\" is never allowed (CONNECT would open a tunnel");
	assert_one_error("routes = (\n { name = \"a\"; context = \"/a\";\n   methods = [ \"FETCH\" ]; }\n);\n",
	                 3, "unknown method \"FETCH\" (use GET, HEAD, POST, PUT, PATCH, DELETE or OPTIONS)");
	assert_one_error("routes = (\n { name = \"a\"; context = \"/a\";\n   methods = [ \"Post\" ]; }\n);\n",
	                 3, "method \"Post\" must be written \"POST\" (HTTP methods are case-sensitive)");
	assert_one_error("routes = (\n { name = \"a\"; context = \"/a\";\n   methods = [ \"GET\", \"POST\", \"GET\" ]; }\n);\n",
	                 3, "duplicate method \"GET\"");
	assert_one_error("routes = (\n { name = \"a\"; context = \"/a\";\n   methods = [ ]; }\n);\n",
	                 3, "methods is empty");
	assert_one_error("routes = (\n { name = \"a\"; context = \"/a\";\n   methods = [ 1 ]; }\n);\n",
	                 3, "methods must hold strings");
	assert_one_error("routes = (\n { name = \"a\"; context = \"/a\";\n   methods = \"GET\"; }\n);\n",
	                 3, "methods");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_defaults_apply_when_only_routes_are_given),
		cmocka_unit_test(test_every_setting_is_read),
		cmocka_unit_test(test_log_levels_map_to_syslog),
		cmocka_unit_test(test_shipped_config_loads),
		cmocka_unit_test(test_include_is_relative_to_the_config_dir),
		cmocka_unit_test(test_thousand_routes_load_and_are_found),
		cmocka_unit_test(test_syntax_error_names_file_and_line),
		cmocka_unit_test(test_missing_file_is_reported),
		cmocka_unit_test(test_unknown_settings_are_errors_at_every_level),
		cmocka_unit_test(test_wrong_types_are_errors),
		cmocka_unit_test(test_integers_out_of_range_are_errors_and_bounds_load),
		cmocka_unit_test(test_integers_libconfig_would_wrap_are_errors),
		cmocka_unit_test(test_wrapped_integer_scan_edges),
		cmocka_unit_test(test_route_rate_limit_rpm),
		cmocka_unit_test(test_haproxy_peers),
		cmocka_unit_test(test_duplicate_route_name_is_an_error),
		cmocka_unit_test(test_duplicate_context_is_an_error),
		cmocka_unit_test(test_unsupported_authentication_type_is_an_error),
		cmocka_unit_test(test_bad_key_location_is_an_error),
		cmocka_unit_test(test_bad_listen_addresses_are_errors),
		cmocka_unit_test(test_plain_tcp_needs_allow_plain_tcp),
		cmocka_unit_test(test_per_peer_limit_and_hello_timeout),
		cmocka_unit_test(test_routes_are_required),
		cmocka_unit_test(test_bad_route_fields_are_errors),
		cmocka_unit_test(test_redis_store_settings_and_defaults),
		cmocka_unit_test(test_other_bad_values_are_errors),
		cmocka_unit_test(test_metrics_listen_port_alone_is_loopback),
		cmocka_unit_test(test_every_error_is_collected),
		cmocka_unit_test(test_errors_are_truncated_within_the_buffer),
		cmocka_unit_test(test_route_by_context_takes_longest_segment_prefix),
		cmocka_unit_test(test_enum_names),
		cmocka_unit_test(test_conf_free_null_is_a_noop),
		cmocka_unit_test(test_provider_profiles_set_carriers_upstream_and_errors),
		cmocka_unit_test(test_route_overrides_win_over_the_profile),
		cmocka_unit_test(test_bad_providers_and_carriers_are_errors),
		cmocka_unit_test(test_route_methods),
	};

	return cmocka_run_group_tests(tests, setup_dir, teardown_dir);
}
