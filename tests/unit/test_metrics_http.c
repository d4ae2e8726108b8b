/* SPDX-License-Identifier: Apache-2.0 */
/*
 * test_metrics_http: metrics_http_parse, the request-head check of the
 * metrics endpoint. A table of golden requests (served, 404, 400, 431) is run
 * whole against a guard page (any read past the input faults), then cut at
 * every offset: a prefix must be INCOMPLETE or already the final verdict.
 * The server around the parser is tested in tests/integ/test_metrics.c.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "metrics.h"
#include "testutil.h"

struct http_case {
	const char *name;
	const char *req;
	enum metrics_req want;
	bool head_only;
};

static const struct http_case cases[] = {
	{ "prometheus scrape", "GET /metrics HTTP/1.1\r\nHost: h:9412\r\nAccept: text/plain;version=0.0.4;q=0.5,*/*;q=0.1\r\nX-Prometheus-Scrape-Timeout-Seconds: 10\r\n\r\n", METRICS_REQ_METRICS, false },
	{ "http/1.0, bare LF", "GET /metrics HTTP/1.0\n\n", METRICS_REQ_METRICS, false },
	{ "query string", "GET /metrics?x=1 HTTP/1.1\r\n\r\n", METRICS_REQ_METRICS, false },
	{ "head", "HEAD /metrics HTTP/1.1\r\n\r\n", METRICS_REQ_METRICS, true },
	{ "tab and obs-text in a value", "GET /metrics HTTP/1.1\r\nX: a\tb\xc3\xa9\r\n\r\n", METRICS_REQ_METRICS, false },
	{ "bytes after the head are ignored", "GET /metrics HTTP/1.1\r\n\r\n\x01\x02garbage", METRICS_REQ_METRICS, false },
	{ "root", "GET / HTTP/1.1\r\n\r\n", METRICS_REQ_NOT_FOUND, false },
	{ "longer path", "GET /metricsx HTTP/1.1\r\n\r\n", METRICS_REQ_NOT_FOUND, false },
	{ "sub path", "GET /metrics/x HTTP/1.1\r\n\r\n", METRICS_REQ_NOT_FOUND, false },
	{ "shorter path", "GET /metric HTTP/1.1\r\n\r\n", METRICS_REQ_NOT_FOUND, false },
	{ "absolute form", "GET http://h/metrics HTTP/1.1\r\n\r\n", METRICS_REQ_NOT_FOUND, false },
	{ "post", "POST /metrics HTTP/1.1\r\nContent-Length: 0\r\n\r\n", METRICS_REQ_NOT_FOUND, false },
	{ "lower-case get", "get /metrics HTTP/1.1\r\n\r\n", METRICS_REQ_NOT_FOUND, false },
	{ "head elsewhere", "HEAD / HTTP/1.1\r\n\r\n", METRICS_REQ_NOT_FOUND, true },
	{ "empty line first", "\r\nGET /metrics HTTP/1.1\r\n\r\n", METRICS_REQ_BAD, false },
	{ "no target", "GET HTTP/1.1\r\n\r\n", METRICS_REQ_BAD, false },
	{ "two spaces", "GET  /metrics HTTP/1.1\r\n\r\n", METRICS_REQ_BAD, false },
	{ "http/2.0", "GET /metrics HTTP/2.0\r\n\r\n", METRICS_REQ_BAD, false },
	{ "http/1.10", "GET /metrics HTTP/1.10\r\n\r\n", METRICS_REQ_BAD, false },
	{ "no version", "GET /metrics\r\n\r\n", METRICS_REQ_BAD, false },
	{ "control byte in target", "GET /met\x01rics HTTP/1.1\r\n\r\n", METRICS_REQ_BAD, false },
	{ "NUL in method", "G\0T /metrics HTTP/1.1\r\n\r\n", METRICS_REQ_BAD, false },
	{ "header without colon", "GET /metrics HTTP/1.1\r\nHost\r\n\r\n", METRICS_REQ_BAD, false },
	{ "empty header name", "GET /metrics HTTP/1.1\r\n: x\r\n\r\n", METRICS_REQ_BAD, false },
	{ "space before colon", "GET /metrics HTTP/1.1\r\nHost : x\r\n\r\n", METRICS_REQ_BAD, false },
	{ "obs-fold", "GET /metrics HTTP/1.1\r\nA: b\r\n c\r\n\r\n", METRICS_REQ_BAD, false },
	{ "control byte in value", "GET /metrics HTTP/1.1\r\nA: b\x7f\r\n\r\n", METRICS_REQ_BAD, false },
	{ "lone CR inside a line", "GET /metrics HTTP/1.1\r\nA: b\rc\r\n\r\n", METRICS_REQ_BAD, false },
	{ "tls client hello", "\x16\x03\x01\x02\x05\x01\x02\x01\xfc\x03\x03\n", METRICS_REQ_BAD, false },
};

/* The "NUL in method" case holds a NUL: lengths come from here. */
static size_t
case_len(const struct http_case *c)
{
	static const char nul_case[] = "G\0T /metrics HTTP/1.1\r\n\r\n";

	return strcmp(c->name, "NUL in method") == 0 ? sizeof(nul_case) - 1 : strlen(c->req);
}

static void
test_golden_requests_whole_and_cut_everywhere(void **state)
{
	struct tu_guard g;
	size_t i, n;

	(void)state;
	tu_guard_init(&g, METRICS_REQ_MAX + 64);
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const struct http_case *c = &cases[i];
		size_t len = case_len(c);
		const char *p = (const char *)tu_guard_place(&g, c->req, len);
		bool head = !c->head_only;

		if (metrics_http_parse(p, len, &head) != c->want || head != c->head_only)
			fail_msg("%s: whole request misjudged", c->name);
		for (n = 0; n < len; n++) {
			enum metrics_req r;

			p = (const char *)tu_guard_place(&g, c->req, n);
			r = metrics_http_parse(p, n, &head);
			if (r != METRICS_REQ_INCOMPLETE && r != c->want)
				fail_msg("%s: prefix of %zu bytes judged %d", c->name, n, (int)r);
		}
	}
	tu_guard_free(&g);
}

static void
test_head_limit_is_enforced(void **state)
{
	static const char start[] = "GET /metrics HTTP/1.1\r\nX-Big: ";
	char *buf = malloc(METRICS_REQ_MAX + 16);
	bool head;

	(void)state;
	assert_non_null(buf);
	memset(buf, 'a', METRICS_REQ_MAX + 16);
	memcpy(buf, start, sizeof(start) - 1);
	assert_int_equal(metrics_http_parse(buf, METRICS_REQ_MAX - 1, &head), METRICS_REQ_INCOMPLETE);
	assert_int_equal(metrics_http_parse(buf, METRICS_REQ_MAX, &head), METRICS_REQ_TOO_BIG);
	/* A head that ends exactly at the limit is still served. */
	memcpy(buf + METRICS_REQ_MAX - 4, "\r\n\r\n", 4);
	assert_int_equal(metrics_http_parse(buf, METRICS_REQ_MAX, &head), METRICS_REQ_METRICS);
	/* One byte later it is not: the end lies beyond what is read. */
	memset(buf + METRICS_REQ_MAX - 4, 'a', 4);
	memcpy(buf + METRICS_REQ_MAX - 3, "\r\n\r\n", 4);
	assert_int_equal(metrics_http_parse(buf, METRICS_REQ_MAX + 1, &head), METRICS_REQ_TOO_BIG);
	free(buf);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_golden_requests_whole_and_cut_everywhere),
		cmocka_unit_test(test_head_limit_is_enforced),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
