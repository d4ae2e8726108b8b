/* SPDX-License-Identifier: Apache-2.0 */
/*
 * test_conf_admin: the admin group and admin-key scopes (issue #22): the
 * group's defaults and errors (conf_admin.c), the reserved route it
 * appends, the key store's "scopes" field through the file (written only
 * when non-zero, refused with unknown bits) and the verdict's scopes for
 * txn.keyauth.scopes (admin route, ok verdicts only). Files go to a private
 * mkdtemp directory.
 */
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

#include "conf.h"
#include "keyfmt.h"
#include "keystore.h"
#include "verdict.h"

#define ROUTES "routes = ( { name = \"a\"; context = \"/a\"; } );\n"

static char tmpdir[64];
static char conf_path[PATH_MAX], store_path[PATH_MAX];
static char err[8192];

static int setup_dir(void **state)
{
	(void)state;
	snprintf(tmpdir, sizeof(tmpdir), "/tmp/test_conf_admin.XXXXXX");
	if (!mkdtemp(tmpdir))
		return -1;
	snprintf(conf_path, sizeof(conf_path), "%s/t.conf", tmpdir);
	snprintf(store_path, sizeof(store_path), "%s/keys.db", tmpdir);
	return 0;
}

static int teardown_dir(void **state)
{
	char lock[PATH_MAX + 8];

	(void)state;
	snprintf(lock, sizeof(lock), "%s.lock", store_path);
	unlink(conf_path);
	unlink(store_path);
	unlink(lock);
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

static void fails_with(const char *text, const char *frag)
{
	struct conf *c = load_text(text);

	if (c != NULL) {
		conf_free(c);
		print_error("loaded, expected \"%s\":\n%s\n", frag, text);
		fail();
	}
	if (strstr(err, frag) == NULL) {
		print_error("expected \"%s\" in:\n%s\n", frag, err);
		fail();
	}
}

static void test_no_admin_group(void **state)
{
	struct conf *c = load_text(ROUTES);

	(void)state;
	assert_non_null(c);
	assert_null(c->admin);
	assert_null(conf_admin_route(c));
	assert_int_equal(c->nroutes, 1);
	conf_free(c);
}

static void test_defaults_and_route(void **state)
{
	struct conf *c = load_text("admin = { };\n" ROUTES);
	const struct route *r;

	(void)state;
	if (c == NULL)
		print_error("%s\n", err);
	assert_non_null(c);
	assert_string_equal(c->admin->context, "/admin");
	assert_string_equal(c->admin->socket, "/run/keyauth-admin/admin.sock");
	assert_string_equal(c->admin->user, "keyauth-admin");
	assert_string_equal(c->admin->keyauthctl, "/usr/bin/keyauthctl");
	assert_string_equal(c->admin->console_dir, "/usr/share/keyauth/console");
	assert_int_equal(c->admin->rate_limit_rpm, 120);
	/* the admin group came first in the file: its route is still the last */
	assert_int_equal(c->nroutes, 2);
	r = conf_admin_route(c);
	assert_ptr_equal(r, &c->routes[1]);
	assert_true(r->admin);
	assert_false(c->routes[0].admin);
	assert_string_equal(r->name, "admin");
	assert_string_equal(r->context, "/admin");
	assert_int_equal(r->ncarriers, 1);
	assert_true(carrier_is_bearer(&r->carriers[0]));
	assert_int_equal(r->rate_limit_rpm, 120);
	assert_int_equal(r->methods, (1u << ROUTE_M_GET) | (1u << ROUTE_M_HEAD) |
	                 (1u << ROUTE_M_POST) | (1u << ROUTE_M_PATCH) | (1u << ROUTE_M_DELETE));
	assert_ptr_equal(conf_route_find(c, "admin", 5), r);
	assert_ptr_equal(conf_route_by_context(c, "/admin/v1/keys"), r);
	conf_free(c);
}

static void test_settings(void **state)
{
	struct conf *c = load_text(ROUTES "admin = { context = \"/ops/admin\"; socket = \"/tmp/a.sock\";\n"
	                           "  user = \"\"; keyauthctl = \"/opt/k/keyauthctl\";\n"
	                           "  console_dir = \"/opt/k/console\"; rate_limit_rpm = 30; };\n");

	(void)state;
	if (c == NULL)
		print_error("%s\n", err);
	assert_non_null(c);
	assert_string_equal(c->admin->context, "/ops/admin");
	assert_string_equal(c->admin->socket, "/tmp/a.sock");
	assert_null(c->admin->user);
	assert_true(c->admin->user_set);
	assert_string_equal(c->admin->keyauthctl, "/opt/k/keyauthctl");
	assert_string_equal(c->admin->console_dir, "/opt/k/console");
	assert_int_equal(conf_admin_route(c)->rate_limit_rpm, 30);
	assert_string_equal(conf_admin_route(c)->context, "/ops/admin");
	conf_free(c);
}

static void test_errors(void **state)
{
	char long_sock[200];

	(void)state;
	fails_with("admin = { };\nroutes = ( { name = \"admin\"; context = \"/x\"; } );\n",
	           "route name \"admin\" is reserved");
	fails_with("admin = { };\nroutes = ( { name = \"b\"; context = \"/admin\"; } );\n",
	           "overlaps the admin context \"/admin\"");
	fails_with("admin = { };\nroutes = ( { name = \"b\"; context = \"/admin/v2\"; } );\n",
	           "overlaps the admin context");
	fails_with("admin = { context = \"/a/b\"; };\n" ROUTES, "overlaps the admin context \"/a/b\"");
	fails_with("admin = { };\nroutes = ( { name = \"b\"; context = \"/\"; } );\n",
	           "overlaps the admin context");
	fails_with("admin = { context = \"/\"; };\n" ROUTES, "bad context \"/\" in admin");
	fails_with("admin = { context = \"admin\"; };\n" ROUTES, "bad context \"admin\" in admin");
	fails_with("admin = { socket = \"admin.sock\"; };\n" ROUTES, "bad socket \"admin.sock\" in admin");
	fails_with("admin = { socket = \"/run/a b.sock\"; };\n" ROUTES, "bad socket");
	snprintf(long_sock, sizeof(long_sock), "admin = { socket = \"/%0107d\"; };\n" ROUTES, 0);
	fails_with(long_sock, "is 108 bytes long, at most 107");
	fails_with("admin = { user = \"root\"; };\n" ROUTES, "must not run as root");
	fails_with("admin = { user = \"-x\"; };\n" ROUTES, "bad user \"-x\" in admin");
	fails_with("admin = { keyauthctl = \"keyauthctl\"; };\n" ROUTES, "bad keyauthctl \"keyauthctl\" in admin");
	fails_with("admin = { rate_limit_rpm = 0; };\n" ROUTES, "rate_limit_rpm = 0 in admin is out of range");
	fails_with("admin = { colour = \"red\"; };\n" ROUTES, "unknown setting \"colour\" in admin");
	fails_with("admin = \"/admin\";\n" ROUTES, "admin must be");
}

/* The socket length limit is sun_path's: 107 bytes pass. */
static void test_socket_107(void **state)
{
	char text[300];
	struct conf *c;

	(void)state;
	snprintf(text, sizeof(text), "admin = { socket = \"/%0106d\"; };\n" ROUTES, 0);
	c = load_text(text);
	assert_non_null(c);
	assert_int_equal(strlen(c->admin->socket), 107);
	conf_free(c);
}

static struct ks_entry make_entry(const char *key, const char *route, uint32_t scopes)
{
	struct ks_entry e;

	memset(&e, 0, sizeof(e));
	keyfmt_digest(key, strlen(key), e.digest);
	assert_int_equal(keyfmt_new_id(e.id), 0);
	e.route = route;
	e.owner = "ops";
	e.created = 1700000000;
	e.scopes = scopes;
	return e;
}

static bool file_has(const char *path, const char *needle)
{
	char buf[65536];
	FILE *f = fopen(path, "rb");
	size_t n;

	assert_non_null(f);
	n = fread(buf, 1, sizeof(buf), f);
	fclose(f);
	return memmem(buf, n, needle, strlen(needle)) != NULL;
}

static void test_store_scopes_round_trip(void **state)
{
	struct ks_entry v[2];
	struct ks_set *s;
	const struct ks_entry *e;

	(void)state;
	v[0] = make_entry("ka_one_aaaaaaaaaaaaaaaaaaaaaaaaaa", "a", 0);
	v[1] = make_entry("ka_two_bbbbbbbbbbbbbbbbbbbbbbbbbb", "admin", KS_SCOPE_READ | KS_SCOPE_DEPLOY);
	/* without scopes the file has no such field: older agents read it */
	assert_int_equal(ks_file_write(store_path, v, 1, err, sizeof(err)), 0);
	assert_false(file_has(store_path, "scopes"));
	assert_int_equal(ks_file_write(store_path, v, 2, err, sizeof(err)), 0);
	assert_true(file_has(store_path, "scopes"));
	s = ks_set_load(store_path, NULL, err, sizeof(err));
	if (s == NULL)
		print_error("%s\n", err);
	assert_non_null(s);
	e = ks_find_id(s, v[1].id);
	assert_non_null(e);
	assert_int_equal(e->scopes, KS_SCOPE_READ | KS_SCOPE_DEPLOY);
	assert_int_equal(ks_find_id(s, v[0].id)->scopes, 0);
	ks_set_unref(s);
	/* unknown bits are refused before anything is written */
	v[1].scopes = 8;
	assert_int_equal(ks_entry_check(&v[1], err, sizeof(err)), -1);
	assert_non_null(strstr(err, "unknown scope bits"));
	assert_int_equal(ks_file_write(store_path, v, 2, err, sizeof(err)), -1);
}

static void test_scope_names(void **state)
{
	(void)state;
	assert_string_equal(ks_scopes_str(0), "");
	assert_string_equal(ks_scopes_str(KS_SCOPE_READ), "read");
	assert_string_equal(ks_scopes_str(KS_SCOPE_DEPLOY | KS_SCOPE_READ), "read,deploy");
	assert_string_equal(ks_scopes_str(KS_SCOPES_ALL), "read,write,deploy");
	assert_int_equal(ks_scope_bit("write", 5), KS_SCOPE_WRITE);
	assert_int_equal(ks_scope_bit("deploy", 6), KS_SCOPE_DEPLOY);
	assert_int_equal(ks_scope_bit("admin", 5), 0);
	assert_int_equal(ks_scope_bit("rea", 3), 0);
}

/* txn.keyauth.scopes: the admin route's ok verdicts only. */
static void test_verdict_scopes(void **state)
{
	const char *adm = "zz_adm_cccccccccccccccccccccccccc", *usr = "zz_usr_dddddddddddddddddddddddddd";
	char bearer[64];
	struct ks_entry v[2];
	struct verdict vd;
	struct ks_set *ks;
	struct conf *c = load_text("admin = { };\n" ROUTES);

	(void)state;
	assert_non_null(c);
	v[0] = make_entry(adm, "admin", KS_SCOPE_READ | KS_SCOPE_WRITE);
	v[1] = make_entry(usr, "a", 0);
	ks = ks_set_build(v, 2, err, sizeof(err));
	assert_non_null(ks);
	snprintf(bearer, sizeof(bearer), "Bearer %s", adm);
	verdict_eval(c, ks, "admin", 5, bearer, strlen(bearer), 1700000100, &vd);
	assert_int_equal(vd.status, VERDICT_OK);
	assert_string_equal(verdict_scopes(&vd), "read,write");
	assert_int_equal(vd.rpm, 120);
	/* the admin key elsewhere: forbidden, no scopes */
	verdict_eval(c, ks, "a", 1, adm, strlen(adm), 1700000100, &vd);
	assert_int_equal(vd.status, VERDICT_FORBIDDEN);
	assert_null(verdict_scopes(&vd));
	/* another route's key on the admin route: forbidden, no scopes */
	verdict_eval(c, ks, "admin", 5, usr, strlen(usr), 1700000100, &vd);
	assert_int_equal(vd.status, VERDICT_FORBIDDEN);
	assert_null(verdict_scopes(&vd));
	/* ok on a provider route: no scopes variable */
	verdict_eval(c, ks, "a", 1, usr, strlen(usr), 1700000100, &vd);
	assert_int_equal(vd.status, VERDICT_OK);
	assert_null(verdict_scopes(&vd));
	ks_set_unref(ks);
	conf_free(c);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_no_admin_group),
		cmocka_unit_test(test_defaults_and_route),
		cmocka_unit_test(test_settings),
		cmocka_unit_test(test_errors),
		cmocka_unit_test(test_socket_107),
		cmocka_unit_test(test_store_scopes_round_trip),
		cmocka_unit_test(test_scope_names),
		cmocka_unit_test(test_verdict_scopes),
	};

	return cmocka_run_group_tests(tests, setup_dir, teardown_dir);
}
