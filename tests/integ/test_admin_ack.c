/* SPDX-License-Identifier: Apache-2.0 */
/*
 * test_admin_ack: txn.keyauth.scopes in keyauthd's ACK (issue #22). An agent
 * with an admin group answers an ok verdict on the admin route with the
 * key's scopes ("read,write", canonical order), and no scopes variable on
 * any other verdict or route: each ACK variable costs HAProxy a variable
 * per request. Keys are never printed.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "fixture.h"
#include "spop_client.h"
#include "testutil.h"

static struct tf_agent ag;
static struct tf_key k_admin, k_all, k_app;
static struct spc_conn *conn;

static int io_ms(void)
{
	return tp_scaled_ms(5000);
}

static int setup(void **state)
{
	struct tf_key *keys[] = { &k_admin, &k_all, &k_app };
	struct tf_opts o = {
		.routes = "{ name = \"openai\"; context = \"/openai\"; }",
		.settings = "admin = { socket = \"/run/keyauth-admin/admin.sock\"; user = \"\"; };",
		.keys = keys, .nkeys = 3,
	};

	*state = &ag;
	if (tf_key_make(&k_admin, "admin", "ops@example.com", "admin key") == -1 ||
	    tf_key_make(&k_all, "admin", "root@example.com", "admin key, every scope") == -1 ||
	    tf_key_make(&k_app, "openai", "app", "openai key") == -1)
		return -1;
	k_admin.e.scopes = KS_SCOPE_WRITE | KS_SCOPE_READ;
	k_all.e.scopes = KS_SCOPES_ALL;
	if (tf_agent_up(&ag, "kad-admin", &o) == -1)
		return -1;
	conn = spc_open(ag.uaddr, io_ms());
	if (conn == NULL || !spc_handshake(conn, io_ms()))
		return -1;
	return 0;
}

static int teardown(void **state)
{
	spc_close(conn);
	return tf_agent_teardown(state);
}

static struct spc_ack query(const char *route, const char *key, bool bearer)
{
	char v[KEY_GEN_MAX + 16];
	struct spc_ack a;

	snprintf(v, sizeof(v), "%s%s", bearer ? "Bearer " : "", key);
	assert_int_equal(spc_query(conn, route, v, &a, io_ms()), 0);
	assert_false(a.wrong_type);
	return a;
}

static void test_admin_ok_carries_scopes(void **state)
{
	struct spc_ack a;

	(void)state;
	a = query("admin", k_admin.key, true);
	assert_true(a.ok);
	assert_string_equal(a.status, "ok");
	assert_true(a.has_scopes);
	assert_string_equal(a.scopes, "read,write");
	assert_string_equal(a.key_id, k_admin.e.id);
	assert_string_equal(a.owner, "ops@example.com");
	a = query("admin", k_all.key, true);
	assert_true(a.ok);
	assert_string_equal(a.scopes, "read,write,deploy");
}

static void test_no_scopes_elsewhere(void **state)
{
	struct spc_ack a;

	(void)state;
	/* a provider route's ok verdict */
	a = query("openai", k_app.key, false);
	assert_true(a.ok);
	assert_false(a.has_scopes);
	/* the admin key on a provider route: forbidden, no scopes */
	a = query("openai", k_admin.key, false);
	assert_false(a.ok);
	assert_string_equal(a.status, "forbidden");
	assert_false(a.has_scopes);
	/* another route's key on the admin route: forbidden, no scopes */
	a = query("admin", k_app.key, true);
	assert_string_equal(a.status, "forbidden");
	assert_false(a.has_scopes);
	/* no key */
	a = query("admin", "", true);
	assert_string_equal(a.status, "missing");
	assert_false(a.has_scopes);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_admin_ok_carries_scopes),
		cmocka_unit_test(test_no_scopes_elsewhere),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
