/* SPDX-License-Identifier: Apache-2.0 */
/*
 * test_filetrust: who may have written a file that decides who gets in
 * (filetrust.h, security issue #17 finding 3). Owner and mode of the entry,
 * of every directory above it (the sticky exception for those only), missing
 * paths, symlinks on the way, relative paths and the trust set itself.
 *
 * Runs as root (the test suite does): "another user" is uid 65534 (nobody),
 * given files and directories with chown. Everything lives in one mkdtemp
 * directory under /tmp, removed afterwards. Skipped when not root.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <ftw.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "filetrust.h"

#define NOBODY 65534

static char dir[64];
static struct ft_trust root_only;

static int
rm_one(const char *p, const struct stat *st, int flag, struct FTW *f)
{
	(void)st;
	(void)flag;
	(void)f;
	return remove(p);
}

static int
setup(void **state)
{
	(void)state;
	if (geteuid() != 0)
		return 0;
	ft_trust_init(&root_only);
	strcpy(dir, "/tmp/test_filetrust_XXXXXX");
	return mkdtemp(dir) == NULL ? -1 : 0;
}

static int
teardown(void **state)
{
	(void)state;
	if (dir[0] == '\0')
		return 0;
	return nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

static void
need_root(void)
{
	if (geteuid() != 0)
		skip();
}

/* <dir>/<rel> as a file of <mode> owned by <uid>. */
static void
mkfile(char *out, size_t len, const char *rel, mode_t mode, uid_t uid)
{
	FILE *f;

	snprintf(out, len, "%s/%s", dir, rel);
	f = fopen(out, "w");
	assert_non_null(f);
	fputs("x\n", f);
	fclose(f);
	assert_int_equal(chmod(out, mode), 0);
	assert_int_equal(chown(out, uid, uid), 0);
}

static void
mkdir_as(char *out, size_t len, const char *rel, mode_t mode, uid_t uid)
{
	snprintf(out, len, "%s/%s", dir, rel);
	assert_int_equal(mkdir(out, 0700), 0);
	assert_int_equal(chmod(out, mode), 0);
	assert_int_equal(chown(out, uid, uid), 0);
}

static void
assert_has(const char *err, const char *want)
{
	if (strstr(err, want) == NULL)
		fail_msg("\"%s\" not in \"%s\"", want, err);
}

static void
test_trusted_file_is_accepted(void **state)
{
	char p[256], err[2048] = "";
	struct stat st;

	(void)state;
	need_root();
	mkfile(p, sizeof(p), "ok.conf", 0600, 0);
	assert_int_equal(ft_check_path(&root_only, p, NULL, err, sizeof(err)), 0);
	assert_int_equal(stat(p, &st), 0);
	assert_int_equal(ft_check_path(&root_only, p, &st, err, sizeof(err)), 0);
	/* readable by others is the operator's choice */
	assert_int_equal(chmod(p, 0644), 0);
	assert_int_equal(ft_check_path(&root_only, p, NULL, err, sizeof(err)), 0);
	assert_int_equal(ft_check_dir(&root_only, dir, err, sizeof(err)), 0);
}

static void
test_file_owned_by_another_user_is_refused(void **state)
{
	char p[256], want[300], err[2048] = "";

	(void)state;
	need_root();
	mkfile(p, sizeof(p), "nobody.conf", 0600, NOBODY);
	assert_int_equal(ft_check_path(&root_only, p, NULL, err, sizeof(err)), -1);
	assert_has(err, p);
	assert_has(err, "owned by uid 65534 (nobody), not root");
	assert_has(err, "decide who gets in");
	snprintf(want, sizeof(want), "fix: chown root %s", p);
	assert_has(err, want);
}

static void
test_file_writable_by_group_or_others_is_refused(void **state)
{
	char p[256], want[300], err[2048] = "";

	(void)state;
	need_root();
	mkfile(p, sizeof(p), "gw.conf", 0620, 0);
	assert_int_equal(ft_check_path(&root_only, p, NULL, err, sizeof(err)), -1);
	assert_has(err, "writable by its group (mode 0620)");
	snprintf(want, sizeof(want), "fix: chmod go-w %s", p);
	assert_has(err, want);
	assert_int_equal(chmod(p, 0602), 0);
	assert_int_equal(ft_check_path(&root_only, p, NULL, err, sizeof(err)), -1);
	assert_has(err, "writable by others (mode 0602)");
}

/* The descriptor's fstat is judged, not what the path shows now. */
static void
test_stat_given_is_judged_instead_of_the_path(void **state)
{
	char p[256], err[2048] = "";
	struct stat st;

	(void)state;
	need_root();
	mkfile(p, sizeof(p), "st.db", 0600, 0);
	assert_int_equal(stat(p, &st), 0);
	st.st_uid = NOBODY;
	assert_int_equal(ft_check_path(&root_only, p, &st, err, sizeof(err)), -1);
	assert_has(err, "uid 65534");
	assert_int_equal(stat(p, &st), 0);
	st.st_mode |= S_IWOTH;
	assert_int_equal(ft_check_path(&root_only, p, &st, err, sizeof(err)), -1);
	assert_has(err, "writable by others");
}

static void
test_parent_owned_by_another_user_is_refused(void **state)
{
	char d[128], p[256], want[300], err[2048] = "";

	(void)state;
	need_root();
	mkdir_as(d, sizeof(d), "nobodys", 0755, NOBODY);
	mkfile(p, sizeof(p), "nobodys/keys.db", 0600, 0);
	assert_int_equal(ft_check_path(&root_only, p, NULL, err, sizeof(err)), -1);
	assert_has(err, "directory owned by uid 65534 (nobody)");
	assert_has(err, p);            /* what could be swapped */
	snprintf(want, sizeof(want), "fix: chown root %s", d);
	assert_has(err, want);
	/* a missing file there: that user could create it */
	snprintf(p, sizeof(p), "%s/missing.db", d);
	assert_int_equal(ft_check_path(&root_only, p, NULL, err, sizeof(err)), -1);
	assert_has(err, "directory owned by uid 65534");
	/* and below it, however deep */
	snprintf(p, sizeof(p), "%s/a/b/missing.db", d);
	assert_int_equal(ft_check_path(&root_only, p, NULL, err, sizeof(err)), -1);
	assert_int_equal(ft_check_dir(&root_only, d, err, sizeof(err)), -1);
}

static void
test_parent_writable_by_others_without_sticky_is_refused(void **state)
{
	char d[128], p[256], want[300], err[2048] = "";

	(void)state;
	need_root();
	mkdir_as(d, sizeof(d), "open", 0777, 0);
	mkfile(p, sizeof(p), "open/keys.db", 0600, 0);
	assert_int_equal(ft_check_path(&root_only, p, NULL, err, sizeof(err)), -1);
	assert_has(err, "directory writable by others (mode 0777)");
	snprintf(want, sizeof(want), "fix: chmod go-w %s", d);
	assert_has(err, want);
	assert_int_equal(chmod(d, 0770), 0);
	assert_int_equal(ft_check_path(&root_only, p, NULL, err, sizeof(err)), -1);
	assert_has(err, "directory writable by its group (mode 0770)");
}

/* /tmp's shape (root, 1777) may be crossed, not be the entry checked. */
static void
test_sticky_directory_is_crossed_but_not_trusted_as_entry(void **state)
{
	char d[128], p[256], err[2048] = "";

	(void)state;
	need_root();
	mkdir_as(d, sizeof(d), "sticky", 01777, 0);
	mkfile(p, sizeof(p), "sticky/keys.db", 0600, 0);
	assert_int_equal(ft_check_path(&root_only, p, NULL, err, sizeof(err)), 0);
	snprintf(p, sizeof(p), "%s/missing.db", d);
	assert_int_equal(ft_check_path(&root_only, p, NULL, err, sizeof(err)), 0);
	assert_int_equal(ft_check_dir(&root_only, d, err, sizeof(err)), -1);
	assert_has(err, "writable by others (mode 1777)");
	assert_has(err, "chmod go-w");
	/* sticky but owned by another user: that user may rename anything in it */
	assert_int_equal(chown(d, NOBODY, NOBODY), 0);
	snprintf(p, sizeof(p), "%s/keys.db", d);
	assert_int_equal(ft_check_path(&root_only, p, NULL, err, sizeof(err)), -1);
	assert_has(err, "directory owned by uid 65534");
}

static void
test_missing_file_in_trusted_directory_is_accepted(void **state)
{
	char p[256], err[2048] = "";

	(void)state;
	need_root();
	snprintf(p, sizeof(p), "%s/missing.db", dir);
	assert_int_equal(ft_check_path(&root_only, p, NULL, err, sizeof(err)), 0);
	snprintf(p, sizeof(p), "%s/no/such/dir/missing.db", dir);
	assert_int_equal(ft_check_path(&root_only, p, NULL, err, sizeof(err)), 0);
	/* a directory must exist to be checked */
	assert_int_equal(ft_check_dir(&root_only, p, err, sizeof(err)), -1);
}

static void
test_relative_path_is_checked_from_the_working_directory(void **state)
{
	char cwd[512], p[256], d[256], err[2048] = "";

	(void)state;
	need_root();
	assert_non_null(getcwd(cwd, sizeof(cwd)));
	mkdir_as(d, sizeof(d), "rel", 0755, NOBODY);
	mkfile(p, sizeof(p), "rel/keys.db", 0600, 0);
	assert_int_equal(chdir(d), 0);
	assert_int_equal(ft_check_path(&root_only, "keys.db", NULL, err, sizeof(err)), -1);
	assert_has(err, "directory owned by uid 65534");
	assert_int_equal(ft_check_path(&root_only, "../rel/./keys.db", NULL, err, sizeof(err)), -1);
	assert_int_equal(chown(d, 0, 0), 0);
	assert_int_equal(ft_check_path(&root_only, "keys.db", NULL, err, sizeof(err)), 0);
	assert_int_equal(ft_check_path(&root_only, "../rel/./keys.db", NULL, err, sizeof(err)), 0);
	assert_int_equal(chdir(cwd), 0);
}

/*
 * Symlinks: followed, the link's owner checked, and every directory the
 * resolution crosses checked (the link's and the target's).
 */
static void
test_symlinks_are_resolved_and_every_directory_crossed_checked(void **state)
{
	char d[128], p[256], l[256], sd[128], err[2048] = "";

	(void)state;
	need_root();
	/* trusted link to a trusted file: fine, absolute or relative */
	mkfile(p, sizeof(p), "target.db", 0600, 0);
	snprintf(l, sizeof(l), "%s/abs-link.db", dir);
	assert_int_equal(symlink(p, l), 0);
	assert_int_equal(ft_check_path(&root_only, l, NULL, err, sizeof(err)), 0);
	snprintf(l, sizeof(l), "%s/rel-link.db", dir);
	assert_int_equal(symlink("./target.db", l), 0);
	assert_int_equal(ft_check_path(&root_only, l, NULL, err, sizeof(err)), 0);

	/* a trusted link into another user's directory: refused there */
	mkdir_as(d, sizeof(d), "theirs", 0755, NOBODY);
	mkfile(p, sizeof(p), "theirs/keys.db", 0600, 0);
	snprintf(l, sizeof(l), "%s/into-theirs.db", dir);
	assert_int_equal(symlink(p, l), 0);
	assert_int_equal(ft_check_path(&root_only, l, NULL, err, sizeof(err)), -1);
	assert_has(err, d);
	assert_has(err, "directory owned by uid 65534");
	/* the same through a symlinked directory in the middle */
	snprintf(l, sizeof(l), "%s/theirs-dir", dir);
	assert_int_equal(symlink("theirs", l), 0);
	snprintf(l, sizeof(l), "%s/theirs-dir/keys.db", dir);
	assert_int_equal(ft_check_path(&root_only, l, NULL, err, sizeof(err)), -1);
	assert_has(err, "directory owned by uid 65534");

	/* a link to a file owned by another user: the target is judged */
	mkfile(p, sizeof(p), "nobody-target.db", 0600, NOBODY);
	snprintf(l, sizeof(l), "%s/to-nobody.db", dir);
	assert_int_equal(symlink(p, l), 0);
	assert_int_equal(ft_check_path(&root_only, l, NULL, err, sizeof(err)), -1);
	assert_has(err, p);
	assert_has(err, "owned by uid 65534");

	/* another user's link in a sticky directory (they may replace it), to
	 * a trusted file: refused */
	mkdir_as(sd, sizeof(sd), "tmp", 01777, 0);
	snprintf(p, sizeof(p), "%s/target.db", dir);
	snprintf(l, sizeof(l), "%s/their-link.db", sd);
	assert_int_equal(symlink(p, l), 0);
	assert_int_equal(lchown(l, NOBODY, NOBODY), 0);
	assert_int_equal(ft_check_path(&root_only, l, NULL, err, sizeof(err)), -1);
	assert_has(err, "symlink owned by uid 65534");
	assert_int_equal(lchown(l, 0, 0), 0);
	assert_int_equal(ft_check_path(&root_only, l, NULL, err, sizeof(err)), 0);

	/* a dangling link in a trusted place: missing, nothing to swap */
	snprintf(l, sizeof(l), "%s/dangling.db", dir);
	assert_int_equal(symlink("no-such-file.db", l), 0);
	assert_int_equal(ft_check_path(&root_only, l, NULL, err, sizeof(err)), 0);
	/* a loop ends with an error, not a hang */
	snprintf(l, sizeof(l), "%s/loop", dir);
	assert_int_equal(symlink("loop", l), 0);
	assert_int_equal(ft_check_path(&root_only, l, NULL, err, sizeof(err)), -1);
	assert_has(err, "too many symlinks");
}

static void
test_trust_set_accepts_its_users_files(void **state)
{
	char d[128], p[256], err[2048] = "";
	struct ft_trust t;

	(void)state;
	need_root();
	mkdir_as(d, sizeof(d), "svc", 0750, NOBODY);
	mkfile(p, sizeof(p), "svc/keys.db", 0600, NOBODY);
	assert_int_equal(ft_check_path(&root_only, p, NULL, err, sizeof(err)), -1);

	ft_trust_init(&t);
	assert_true(ft_trusted_uid(&t, 0));
	assert_false(ft_trusted_uid(&t, NOBODY));
	ft_trust_add(&t, NOBODY);
	ft_trust_add(&t, NOBODY);
	assert_int_equal(t.n, 1);
	assert_true(ft_trusted_uid(&t, NOBODY));
	assert_int_equal(ft_check_path(&t, p, NULL, err, sizeof(err)), 0);
	assert_int_equal(ft_check_dir(&t, d, err, sizeof(err)), 0);

	/* by name, as the configuration's `user` */
	ft_trust_for(&t, "nobody");
	assert_string_equal(t.user, "nobody");
	assert_true(ft_trusted_uid(&t, NOBODY));
	assert_int_equal(ft_check_path(&t, p, NULL, err, sizeof(err)), 0);
	/* still not writable by others, even for that user */
	assert_int_equal(chmod(p, 0660), 0);
	assert_int_equal(ft_check_path(&t, p, NULL, err, sizeof(err)), -1);
	assert_has(err, "writable by its group");

	/* a user that does not exist adds nobody; the running user is there */
	ft_trust_for(&t, "no-such-user-keyauth-test");
	assert_false(ft_trusted_uid(&t, NOBODY));
	assert_true(ft_trusted_uid(&t, geteuid()));
	ft_trust_for(&t, NULL);
	assert_string_equal(t.user, "");

	/* the message names who is trusted */
	ft_trust_init(&t);
	ft_trust_add(&t, 1);
	mkfile(p, sizeof(p), "named.db", 0600, NOBODY);
	assert_int_equal(ft_check_path(&t, p, NULL, err, sizeof(err)), -1);
	assert_has(err, "not root or ");
}

static void
test_check_dir_wants_a_directory(void **state)
{
	char p[256], err[2048] = "";

	(void)state;
	need_root();
	mkfile(p, sizeof(p), "plain", 0600, 0);
	assert_int_equal(ft_check_dir(&root_only, p, err, sizeof(err)), -1);
	assert_has(err, "not a directory");
	/* below a file nothing exists, as below a missing directory */
	snprintf(p, sizeof(p), "%s/plain/keys.db", dir);
	assert_int_equal(ft_check_path(&root_only, p, NULL, err, sizeof(err)), 0);
	assert_int_equal(ft_check_dir(&root_only, p, err, sizeof(err)), -1);
	assert_int_equal(ft_check_dir(&root_only, "/", err, sizeof(err)), 0);
	assert_int_equal(ft_check_path(&root_only, "", NULL, err, sizeof(err)), -1);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_trusted_file_is_accepted),
		cmocka_unit_test(test_file_owned_by_another_user_is_refused),
		cmocka_unit_test(test_file_writable_by_group_or_others_is_refused),
		cmocka_unit_test(test_stat_given_is_judged_instead_of_the_path),
		cmocka_unit_test(test_parent_owned_by_another_user_is_refused),
		cmocka_unit_test(test_parent_writable_by_others_without_sticky_is_refused),
		cmocka_unit_test(test_sticky_directory_is_crossed_but_not_trusted_as_entry),
		cmocka_unit_test(test_missing_file_in_trusted_directory_is_accepted),
		cmocka_unit_test(test_relative_path_is_checked_from_the_working_directory),
		cmocka_unit_test(test_symlinks_are_resolved_and_every_directory_crossed_checked),
		cmocka_unit_test(test_trust_set_accepts_its_users_files),
		cmocka_unit_test(test_check_dir_wants_a_directory),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
