/* SPDX-License-Identifier: Apache-2.0 */
/*
 * metrics: the Prometheus endpoint of keyauthd (main thread only).
 *
 * A deliberately tiny HTTP/1.x server on the main loop: one request per
 * connection, answered with "Connection: close". GET (or HEAD) /metrics gets
 * the text the daemon's callback writes; any other well-formed request gets
 * 404, a malformed one 400, a request head over METRICS_REQ_MAX bytes 431.
 * Each client has METRICS_TIMEOUT seconds in all; at most
 * METRICS_MAX_CLIENTS at once (more are closed at accept).
 *
 * Why no library: Debian's libmicrohttpd can be driven from an external
 * loop but brings its own threads or epoll set and GnuTLS; http-parser is
 * unmaintained upstream. One fixed endpoint needs a request-line check, which
 * is metrics_http_parse below, fuzzed (tests/fuzz/fuzz_metrics_http.c).
 */
#ifndef AGENT_METRICS_H
#define AGENT_METRICS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#define METRICS_REQ_MAX      4096   /* request head, request line and headers */
#define METRICS_MAX_CLIENTS  16
#define METRICS_TIMEOUT      5.0    /* seconds per client, reading and writing */

struct ev_loop;
struct metrics;

enum metrics_req {
	METRICS_REQ_INCOMPLETE = 0,  /* no end of head yet: read more */
	METRICS_REQ_METRICS,         /* GET /metrics (or with a query string) */
	METRICS_REQ_NOT_FOUND,       /* well formed, anything else */
	METRICS_REQ_BAD,             /* not HTTP/1.x as RFC 9112 writes it */
	METRICS_REQ_TOO_BIG,         /* no end of head within METRICS_REQ_MAX */
	METRICS_REQ_ENTRIES
};

/*
 * Parses the request head in <buf> (<len> bytes, not NUL-terminated, any
 * content). Reads nothing past <buf> + <len>, allocates nothing. Returns
 * METRICS_REQ_INCOMPLETE while the head has no end and <len> is below
 * METRICS_REQ_MAX; otherwise the verdict on the first request. <*head_only>
 * is set for HEAD (answer without a body). Bytes after the head are ignored.
 */
enum metrics_req metrics_http_parse(const char *buf, size_t len, bool *head_only);

/* Writes the body of GET /metrics into <out>; returns 0, or -1 to answer 500. */
typedef int metrics_render_cb(void *arg, FILE *out);

/*
 * Serves HTTP on <fd>, a listening, non-blocking socket now owned by the
 * returned object (closed by metrics_close, or here on failure). Returns
 * NULL with <err> filled on failure.
 */
struct metrics *metrics_open(int fd, struct ev_loop *loop, metrics_render_cb *cb, void *arg,
                             char *err, size_t errlen);

/* Closes the socket and every client. NULL: no-op. */
void metrics_close(struct metrics *m);

#endif /* AGENT_METRICS_H */
