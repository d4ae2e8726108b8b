/* SPDX-License-Identifier: Apache-2.0 */
/*
 * test_log: log lines on stderr (redirected to a private temp file) — the
 * key=value prefix, and the repetition limit: identical warnings and errors
 * pass LOG_REPEAT_MAX (5) times per second, the rest collapse into one
 * "event=log_suppressed count=N" line at the same level once the second is
 * over; other texts and info lines are not held back. The limit's clock is
 * replaced by a fake one, so nothing here waits. Not covered: syslog.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "log.h"

static char path[64];
static int saved_stderr = -1;
static uint64_t fake_ms;
static long read_from;

static uint64_t
fake_clock(void)
{
	return fake_ms;
}

static int
setup(void **state)
{
	int fd;

	(void)state;
	snprintf(path, sizeof(path), "/tmp/test_log.XXXXXX");
	fd = mkstemp(path);
	if (fd == -1)
		return -1;
	saved_stderr = dup(STDERR_FILENO);
	if (saved_stderr == -1 || dup2(fd, STDERR_FILENO) == -1)
		return -1;
	close(fd);
	log_init("test_log", LOG_INFO, LOG_TARGET_STDERR);
	log_set_clock(fake_clock);
	fake_ms = 1000000;
	return 0;
}

static int
teardown(void **state)
{
	(void)state;
	log_set_clock(NULL);
	dup2(saved_stderr, STDERR_FILENO);
	close(saved_stderr);
	unlink(path);
	return 0;
}

/* The lines written since the last call, NUL-terminated (caller frees). */
static char *
new_output(void)
{
	FILE *f = fopen(path, "r");
	char *buf;
	long end;

	assert_non_null(f);
	assert_int_equal(fseek(f, 0, SEEK_END), 0);
	end = ftell(f);
	buf = calloc(1, (size_t)(end - read_from) + 1);
	assert_non_null(buf);
	assert_int_equal(fseek(f, read_from, SEEK_SET), 0);
	assert_int_equal(fread(buf, 1, (size_t)(end - read_from), f), (size_t)(end - read_from));
	fclose(f);
	read_from = end;
	return buf;
}

static int
count(const char *hay, const char *needle)
{
	int n = 0;

	while ((hay = strstr(hay, needle)) != NULL) {
		n++;
		hay += strlen(needle);
	}
	return n;
}

static void
test_lines_carry_ts_level_and_event(void **state)
{
	char *out;

	(void)state;
	free(new_output());
	log_info("event=started version=%s", "1.2.3");
	out = new_output();
	assert_true(strncmp(out, "ts=", 3) == 0);
	assert_non_null(strstr(out, "Z level=info event=started version=1.2.3\n"));
	assert_int_equal(count(out, "\n"), 1);
	free(out);
}

static void
test_identical_errors_collapse_into_one_count(void **state)
{
	char *out;
	int i;

	(void)state;
	free(new_output());
	for (i = 0; i < 100; i++)
		log_err("event=accept_error errno=%d error=\"%s\"", 24, "Too many open files");
	out = new_output();
	assert_int_equal(count(out, "event=accept_error errno=24"), 5);
	assert_int_equal(count(out, "log_suppressed"), 0);   /* not before the second is over */
	free(out);

	fake_ms += 999;
	log_err("event=accept_error errno=%d error=\"%s\"", 24, "Too many open files");
	out = new_output();
	assert_string_equal(out, "");   /* still the same second */
	free(out);

	fake_ms += 1;
	log_info("event=reload result=ok");
	out = new_output();
	assert_int_equal(count(out, "\n"), 2);
	assert_non_null(strstr(out, "level=error event=log_suppressed count=96 of_event=accept_error window_ms=1000\n"));
	assert_non_null(strstr(out, "level=info event=reload result=ok\n"));
	assert_true(strstr(out, "log_suppressed") < strstr(out, "event=reload"));
	free(out);

	/* A new second: the text passes again, and nothing more is owed. */
	log_err("event=accept_error errno=%d error=\"%s\"", 24, "Too many open files");
	fake_ms += 5000;
	log_info("event=tick");
	out = new_output();
	assert_int_equal(count(out, "event=accept_error"), 1);
	assert_int_equal(count(out, "log_suppressed"), 0);
	free(out);
}

static void
test_different_texts_and_info_lines_are_not_limited(void **state)
{
	char *out;
	int i;

	(void)state;
	fake_ms += 10000;
	free(new_output());
	for (i = 0; i < 20; i++) {
		log_warning("event=store_rejected where=/k%d", i);   /* 20 texts */
		log_info("event=verdict status=ok");                 /* info: never limited */
	}
	out = new_output();
	assert_int_equal(count(out, "event=store_rejected"), 20);
	assert_int_equal(count(out, "event=verdict"), 20);
	free(out);

	/* Two repeating texts are counted apart, each at its own level. */
	for (i = 0; i < 8; i++) {
		log_warning("event=slow_peer conn=1");
		log_err("event=store_rejected where=/same");
	}
	fake_ms += 1000;
	log_notice("event=tick");
	out = new_output();
	assert_int_equal(count(out, "event=slow_peer conn=1\n"), 5);
	assert_int_equal(count(out, "event=store_rejected where=/same\n"), 5);
	assert_non_null(strstr(out, "level=warning event=log_suppressed count=3 of_event=slow_peer "));
	assert_non_null(strstr(out, "level=error event=log_suppressed count=3 of_event=store_rejected "));
	free(out);
}

static void
test_lines_below_the_level_are_not_counted(void **state)
{
	char *out;
	int i;

	(void)state;
	fake_ms += 10000;
	free(new_output());
	log_set(LOG_ERR, LOG_TARGET_STDERR);
	for (i = 0; i < 10; i++)
		log_warning("event=hidden");
	log_set(LOG_INFO, LOG_TARGET_STDERR);
	log_warning("event=hidden");
	out = new_output();
	assert_int_equal(count(out, "event=hidden\n"), 1);
	free(out);
}

/* Quoted values are logfmt (a JSON string): quotes, backslashes and control
 * bytes escaped; bare only when nothing needs quoting; a cut never splits an
 * escape or loses the closing quote, nor does a line cut at 1023 bytes. */
static void
test_values_are_escaped(void **state)
{
	char b[16], *out, big[1500];

	(void)state;
	assert_string_equal(LOG_Q("unknown setting \"up\\x\""),
	    "\"unknown setting \\\"up\\\\x\\\"\"");
	assert_string_equal(LOG_Q("a\nb\tc\x01"), "\"a\\nb\\tc\\u0001\"");
	assert_string_equal(LOG_V("/var/lib/keyauth/keys.db"), "/var/lib/keyauth/keys.db");
	assert_string_equal(LOG_V("a b"), "\"a b\"");
	assert_string_equal(LOG_V("a=b"), "\"a=b\"");
	assert_string_equal(LOG_V(""), "\"\"");
	assert_string_equal(LOG_QN("abcdef", 3), "\"abc\"");
	assert_string_equal(log_quote(b, sizeof(b), "abcdefghijkl\"mn", (size_t)-1, 1),
	    "\"abcdefghijkl\"");
	assert_string_equal(log_quote(b, 8, "ab\x02", (size_t)-1, 1), "\"ab\"");
	memset(big, 'x', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	big[1010] = '\\';
	free(new_output());
	log_err("event=long error=\"%s\"", big);
	out = new_output();
	assert_non_null(strstr(out, "\"\n"));
	free(out);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_lines_carry_ts_level_and_event),
		cmocka_unit_test(test_identical_errors_collapse_into_one_count),
		cmocka_unit_test(test_different_texts_and_info_lines_are_not_limited),
		cmocka_unit_test(test_lines_below_the_level_are_not_counted),
		cmocka_unit_test(test_values_are_escaped),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
