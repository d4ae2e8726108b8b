/* SPDX-License-Identifier: Apache-2.0 */
/*
 * test_secrecy: files that decide who gets in are refused when users other
 * than root or the running user own them, or when group or others may write
 * them — the configuration (conf_load) and the key store (ks_set_load, used
 * by keyauthd, `keyauthd -t` and keyauthctl) — with a message that says why
 * and how to fix it. The rule itself, directories and symlinks included, is
 * test_filetrust's; these check that both loaders apply it.
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

#include "conf.h"
#include "keystore.h"

static char dir[64];

static int
setup(void **state)
{
	(void)state;
	strcpy(dir, "/tmp/test_secrecy_XXXXXX");
	return mkdtemp(dir) == NULL ? -1 : 0;
}

static int
teardown(void **state)
{
	char p[128];

	(void)state;
	snprintf(p, sizeof(p), "%s/keyauth.conf", dir);
	unlink(p);
	snprintf(p, sizeof(p), "%s/keys.db", dir);
	unlink(p);
	return rmdir(dir);
}

static void
test_config_writable_by_others_is_refused(void **state)
{
	char path[128], err[2048];
	struct conf *c;
	FILE *f;

	(void)state;
	snprintf(path, sizeof(path), "%s/keyauth.conf", dir);
	f = fopen(path, "w");
	assert_non_null(f);
	fputs("routes = ( { name = \"openai\"; context = \"/openai\"; } );\n", f);
	fclose(f);
	assert_int_equal(chmod(path, 0640), 0);
	c = conf_load(path, err, sizeof(err));
	assert_non_null(c);
	conf_free(c);
	assert_int_equal(chmod(path, 0666), 0);
	assert_null(conf_load(path, err, sizeof(err)));
	assert_non_null(strstr(err, "writable by others (mode 0666)"));
	assert_non_null(strstr(err, "chmod go-w"));
	assert_int_equal(chmod(path, 0660), 0);
	assert_null(conf_load(path, err, sizeof(err)));
	assert_non_null(strstr(err, "writable by its group (mode 0660)"));
}

/* Finding 3 of issue #17: only the mode was checked. Needs root (chown). */
static void
test_config_owned_by_another_user_is_refused(void **state)
{
	char path[128], err[2048];
	struct conf *c;
	FILE *f;

	(void)state;
	if (geteuid() != 0)
		skip();
	snprintf(path, sizeof(path), "%s/keyauth.conf", dir);
	f = fopen(path, "w");
	assert_non_null(f);
	fputs("routes = ( { name = \"openai\"; context = \"/openai\"; } );\n", f);
	fclose(f);
	assert_int_equal(chmod(path, 0640), 0);
	assert_int_equal(chown(path, 65534, 65534), 0);
	assert_null(conf_load(path, err, sizeof(err)));
	assert_non_null(strstr(err, "owned by uid 65534"));
	assert_non_null(strstr(err, "fix: chown root"));
	/* the directory above it, likewise */
	assert_int_equal(chown(path, 0, 0), 0);
	c = conf_load(path, err, sizeof(err));
	assert_non_null(c);
	conf_free(c);
	assert_int_equal(chown(dir, 65534, 65534), 0);
	assert_null(conf_load(path, err, sizeof(err)));
	assert_non_null(strstr(err, "directory owned by uid 65534"));
	assert_int_equal(chown(dir, 0, 0), 0);
}

static void
test_store_writable_by_others_is_refused(void **state)
{
	char path[128], err[512];
	struct ks_set *s;

	(void)state;
	snprintf(path, sizeof(path), "%s/keys.db", dir);
	assert_int_equal(ks_file_write(path, NULL, 0, err, sizeof(err)), 0);
	s = ks_set_load(path, NULL, err, sizeof(err));
	assert_non_null(s);          /* 0600, as keyauthctl writes it */
	ks_set_unref(s);
	assert_int_equal(chmod(path, 0644), 0);
	s = ks_set_load(path, NULL, err, sizeof(err));
	assert_non_null(s);          /* readable by others is the operator's choice */
	ks_set_unref(s);
	assert_int_equal(chmod(path, 0620), 0);
	assert_null(ks_set_load(path, NULL, err, sizeof(err)));
	assert_non_null(strstr(err, "writable by its group (mode 0620)"));
	assert_non_null(strstr(err, "chmod go-w"));
	assert_int_equal(chmod(path, 0602), 0);
	assert_null(ks_set_load(path, NULL, err, sizeof(err)));
	assert_non_null(strstr(err, "writable by others (mode 0602)"));
}

/* Finding 3 of issue #17: a store another user owns, or one missing from a
 * directory another user owns (they could create it), is refused; a store
 * missing from a trusted directory is still an empty one. */
static void
test_store_owned_by_another_user_is_refused(void **state)
{
	char path[128], err[2048];
	struct ks_set *s;
	bool missing = false;

	(void)state;
	if (geteuid() != 0)
		skip();
	snprintf(path, sizeof(path), "%s/keys.db", dir);
	assert_int_equal(ks_file_write(path, NULL, 0, err, sizeof(err)), 0);
	assert_int_equal(chown(path, 65534, 65534), 0);
	assert_null(ks_set_load(path, NULL, err, sizeof(err)));
	assert_non_null(strstr(err, "owned by uid 65534"));
	assert_non_null(strstr(err, "fix: chown root"));
	assert_int_equal(unlink(path), 0);
	s = ks_set_load(path, &missing, err, sizeof(err));
	assert_non_null(s);
	assert_true(missing);
	ks_set_unref(s);
	assert_int_equal(chown(dir, 65534, 65534), 0);
	assert_null(ks_set_load(path, &missing, err, sizeof(err)));
	assert_non_null(strstr(err, "directory owned by uid 65534"));
	assert_int_equal(chown(dir, 0, 0), 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_config_writable_by_others_is_refused),
		cmocka_unit_test(test_store_writable_by_others_is_refused),
		cmocka_unit_test(test_config_owned_by_another_user_is_refused),
		cmocka_unit_test(test_store_owned_by_another_user_is_refused),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
