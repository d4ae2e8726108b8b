/* SPDX-License-Identifier: Apache-2.0 */
/*
 * test_bigstore: keyauthctl's writes stay linear in the size of the store.
 *
 * A write compares the set before and after (which records changed, which
 * are gone: for the Redis commit and for the audit log). Done pair by pair,
 * one `key create` on a 200,000-key store made 2e10 comparisons (about a
 * minute; hours at 1M keys). Here a 200,000-key file store is written
 * directly, then `key create` and `key revoke` must each finish within 30 s
 * (scaled; about 1 s here, 4 s under ASan), with an audit entry each and the
 * store grown by exactly one record.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <openssl/rand.h>

#include "fixture.h"
#include "keystore.h"
#include "proc.h"

#define BIG_N 200000

static size_t
count_lines(const char *path)
{
	FILE *f = fopen(path, "r");
	size_t n = 0;
	int ch;

	if (f == NULL)
		return 0;
	while ((ch = fgetc(f)) != EOF)
		n += ch == '\n';
	fclose(f);
	return n;
}

/* keyauthctl -c <conf> key <args...> with its output in <out>: the exit
 * status, or -1 when it did not finish within 30 s (scaled; then killed). */
static int
ctl(const char *conf, const char *out, const char *a1, const char *a2, const char *a3,
    const char *a4, const char *a5, const char *a6, const char *a7)
{
	char *argv[] = { (char *)tf_keyauthctl_path(), "-c", (char *)conf, "key", (char *)a1,
		(char *)a2, (char *)a3, (char *)a4, (char *)a5, (char *)a6, (char *)a7, NULL };
	pid_t pid = tp_spawn(argv, out);
	int status = 0;

	if (pid == -1)
		return -1;
	if (tp_wait_exit(pid, 30000, &status) == -1) {
		fprintf(stderr, "keyauthctl key %s did not finish within 30 s\n", a1);
		tp_kill_all();
		return -1;
	}
	return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

static void
test_writes_to_a_big_store_are_linear(void **state)
{
	struct tf_opts o = { 0 };
	struct tf_agent a;
	struct ks_entry *v;
	struct ks_set *s;
	struct tf_key made;
	char out[TF_PATH + 8], audit[TF_PATH + 8], err[512];
	int64_t now = (int64_t)time(NULL);

	(void)state;
	assert_int_equal(tf_agent_init(&a, "bigstore"), 0);
	assert_int_equal(tf_agent_conf(&a, &o), 0);
	v = calloc(BIG_N, sizeof(*v));
	assert_non_null(v);
	for (size_t i = 0; i < BIG_N; i++) {
		assert_int_equal(keyfmt_new_id(v[i].id), 0);
		assert_int_equal(RAND_bytes(v[i].digest, KEY_DIGEST_LEN), 1);
		v[i].route = "openai";
		v[i].owner = "big";
		v[i].created = now - 100;
		v[i].expires = now + 86400;
	}
	assert_int_equal(ks_file_write(a.store, v, BIG_N, err, sizeof(err)), 0);
	free(v);

	snprintf(out, sizeof(out), "%s/ctl.out", a.dir);
	snprintf(audit, sizeof(audit), "%s.audit", a.store);
	assert_int_equal(ctl(a.conf, out, "create", "--route", "openai", "--owner", "big-new",
	    "--json", NULL), 0);
	assert_int_equal(tf_ctl_made(out, &made), 0);
	assert_int_equal(ctl(a.conf, out, "revoke", made.e.id, NULL, NULL, NULL, NULL, NULL), 0);
	unlink(out);

	s = ks_set_load(a.store, NULL, err, sizeof(err));
	assert_non_null(s);
	assert_int_equal(ks_count(s), BIG_N + 1);
	assert_non_null(ks_find_id(s, made.e.id));
	assert_true(ks_find_id(s, made.e.id)->revoked != 0);
	ks_set_unref(s);
	assert_int_equal(count_lines(audit), 2);      /* one entry per command */
	tf_agent_remove(&a);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_writes_to_a_big_store_are_linear),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
