/* SPDX-License-Identifier: Apache-2.0 */
/*
 * test_metrics: keyauthd's Prometheus endpoint (metrics_listen), scraped with
 * a plain socket — counters that follow the verdicts given (by route and
 * status, latency histogram, frames, connections, handshakes, health checks),
 * reload results, HEAD, 404 and 400 answers, an oversized request head
 * answered 431 and closed, the client bound (extra clients closed at accept
 * while the agent keeps serving) and the per-client timeout. The agent runs
 * once for the whole file, so counters are compared before and after.
 * Not covered here: the request parser case by case (test_metrics_http and
 * the fuzz target do that).
 */
#include <errno.h>
#include <limits.h>
#include <dirent.h>
#include <poll.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "fixture.h"
#include "metrics.h"
#include "proc.h"
#include "spop_client.h"

static struct tf_agent A;
static struct tf_key K;     /* the one key, route openai, generation 7 */

/* True if socket inode <ino> is a listener: state 0A in /proc/net/tcp{,6},
 * or the accepting flag (0x10000) in /proc/net/unix. */
static bool
inode_listens(unsigned long ino)
{
	static const char *const tcp[] = { "/proc/net/tcp", "/proc/net/tcp6" };
	char line[512];
	FILE *f;

	for (size_t i = 0; i < 2; i++) {
		if ((f = fopen(tcp[i], "r")) == NULL)
			continue;
		while (fgets(line, sizeof(line), f) != NULL) {
			unsigned st;
			unsigned long in;

			if (sscanf(line, "%*s %*s %*s %x %*s %*s %*s %*s %*s %lu", &st, &in) == 2 &&
			    in == ino) {
				fclose(f);
				return st == 0x0A;
			}
		}
		fclose(f);
	}
	if ((f = fopen("/proc/net/unix", "r")) != NULL) {
		while (fgets(line, sizeof(line), f) != NULL) {
			unsigned long flags, in;

			if (sscanf(line, "%*s %*s %*s %lx %*s %*s %lu", &flags, &in) == 2 && in == ino) {
				fclose(f);
				return (flags & 0x10000) != 0;
			}
		}
		fclose(f);
	}
	return false;
}

/* Connections the agent holds (its sockets that are not listeners): an
 * earlier client it has not let go of yet. -1 if /proc cannot tell. */
static int
agent_connections(pid_t pid)
{
	char dir[64], p[PATH_MAX], link[128];
	struct dirent *e;
	int n = 0;
	DIR *d;

	snprintf(dir, sizeof(dir), "/proc/%ld/fd", (long)pid);
	d = opendir(dir);
	if (d == NULL)
		return -1;
	while ((e = readdir(d)) != NULL) {
		unsigned long ino;
		ssize_t l;

		snprintf(p, sizeof(p), "%s/%s", dir, e->d_name);
		l = readlink(p, link, sizeof(link) - 1);
		if (l <= 0)
			continue;
		link[l] = '\0';
		if (sscanf(link, "socket:[%lu]", &ino) == 1 && !inode_listens(ino))
			n++;
	}
	closedir(d);
	return n;
}

static int
setup(void **state)
{
	/* metrics_listen is a bare port: the endpoint goes on loopback. */
	struct tf_opts o = { .workers = 2, .metrics = true,
	                     .routes = "  { name = \"openai\"; context = \"/openai\"; },\n"
	                               "  { name = \"mistral\"; context = \"/mistral\"; }" };

	*state = &A;
	return tf_agent_up_key(&A, "metrics", &o, &K, 7);
}

/* ---- a plain HTTP client ------------------------------------------------------ */

/* Reads until EOF (or <ms>); returns what arrived, NUL-terminated (caller
 * frees), with <*eof> telling whether the server closed. */
static char *
read_all(int fd, int ms, bool *eof)
{
	size_t len = 0, cap = 1 << 16;
	char *buf = malloc(cap + 1);
	long long deadline = tp_now_ms() + tp_scaled_ms(ms);

	assert_non_null(buf);
	*eof = false;
	while (tp_now_ms() < deadline) {
		struct pollfd p = { .fd = fd, .events = POLLIN };
		ssize_t n;

		if (poll(&p, 1, 50) != 1)
			continue;
		if (len == cap) {
			cap *= 2;
			buf = realloc(buf, cap + 1);
			assert_non_null(buf);
		}
		n = recv(fd, buf + len, cap - len, 0);
		if (n == -1 && (errno == EAGAIN || errno == EINTR))
			continue;
		if (n <= 0) {
			*eof = true;   /* EOF or reset: closed either way */
			break;
		}
		len += (size_t)n;
	}
	buf[len] = '\0';
	return buf;
}

static void
send_all(int fd, const void *p, size_t len)
{
	const char *c = p;
	long long deadline = tp_now_ms() + tp_scaled_ms(3000);

	while (len > 0) {
		ssize_t n = send(fd, c, len, MSG_NOSIGNAL);

		if (n == -1 && (errno == EAGAIN || errno == EINTR)) {
			struct pollfd pf = { .fd = fd, .events = POLLOUT };

			assert_true(tp_now_ms() < deadline);
			poll(&pf, 1, 50);
			continue;
		}
		assert_true(n > 0);
		c += n;
		len -= (size_t)n;
	}
}

/* Sends <req> as is and returns the whole answer (caller frees). */
static char *
http(const char *req, size_t len)
{
	int fd = spc_connect_fd(A.maddr, tp_scaled_ms(2000));
	bool eof;
	char *r;

	assert_true(fd >= 0);
	send_all(fd, req, len);
	r = read_all(fd, 3000, &eof);
	assert_true(eof);   /* one request per connection, then close */
	close(fd);
	return r;
}

static char *
scrape(void)
{
	static const char req[] = "GET /metrics HTTP/1.1\r\nHost: x\r\nAccept: text/plain\r\n\r\n";
	char *r = http(req, sizeof(req) - 1);

	assert_true(strncmp(r, "HTTP/1.1 200 OK\r\n", 17) == 0);
	assert_non_null(strstr(r, "\r\nContent-Type: text/plain; version=0.0.4"));
	assert_null(strstr(r, K.key));
	return r;
}

/* The value of the sample "<name> <value>" (name with its labels), or -1. */
static double
metric(const char *body, const char *name)
{
	size_t n = strlen(name);
	const char *p = body;

	while ((p = strstr(p, name)) != NULL) {
		if ((p == body || p[-1] == '\n') && p[n] == ' ')
			return strtod(p + n + 1, NULL);
		p += n;
	}
	return -1;
}

/* ---- tests -------------------------------------------------------------------------- */

static void
test_counters_follow_verdicts(void **state)
{
	struct spc_conn *c;
	struct spc_ack a;
	char *before, *after;

	(void)state;
	/* The readiness probe of the setup is one accepted connection; the
	 * worker may accept and close it after this test starts. Wait until it
	 * is counted and gone, so the deltas below are this test's alone. */
	for (long long t0 = tp_now_ms();; tp_nap_ms(20)) {
		before = scrape();
		if (metric(before, "keyauth_connections_total") >= 1 &&
		    metric(before, "keyauth_connections") == 0)
			break;
		free(before);
		assert_true(tp_now_ms() - t0 < tp_scaled_ms(3000));
	}
	assert_true(metric(before, "keyauth_keys") == 1);
	assert_true(metric(before, "keyauth_store_file_generation") == 7);
	/* The file backend is always current and connected; each load is full. */
	assert_true(metric(before, "keyauth_store_age_seconds") == 0);
	assert_true(metric(before, "keyauth_store_connected") == 1);
	assert_true(metric(before, "keyauth_store_disconnects_total") == 0);
	assert_true(metric(before, "keyauth_store_resyncs_total") == 1);
	assert_true(metric(before, "keyauth_store_records_skipped_total") == 0);
	assert_non_null(strstr(before, "# TYPE keyauth_store_resyncs_total counter\n"));
	assert_true(metric(before, "keyauth_workers") == 2);
	assert_true(metric(before, "keyauth_config_last_reload_success") == 1);
	assert_non_null(strstr(before, "# TYPE keyauth_verdict_latency_seconds histogram\n"));
	assert_non_null(strstr(before, "# TYPE keyauth_verdicts_total counter\n"));
	c = spc_open(A.uaddr, tp_scaled_ms(2000));
	assert_non_null(c);
	assert_true(spc_handshake(c, tp_scaled_ms(2000)));
	assert_int_equal(spc_query(c, "openai", K.key, &a, tp_scaled_ms(2000)), 0);
	assert_int_equal(spc_query(c, "openai", K.key, &a, tp_scaled_ms(2000)), 0);
	assert_int_equal(spc_query(c, "mistral", NULL, &a, tp_scaled_ms(2000)), 0);
	assert_int_equal(spc_query(c, "nowhere", NULL, &a, tp_scaled_ms(2000)), 0);
	after = scrape();
#define DELTA(name) (metric(after, name) - metric(before, name))
	assert_true(DELTA("keyauth_verdicts_total{route=\"openai\",status=\"ok\"}") == 2);
	assert_true(DELTA("keyauth_verdicts_total{route=\"mistral\",status=\"missing\"}") == 1);
	assert_true(DELTA("keyauth_verdicts_total{route=\"(unknown)\",status=\"unknown_route\"}") == 1);
	assert_true(DELTA("keyauth_verdicts_total{route=\"openai\",status=\"forbidden\"}") == 0);
	assert_true(DELTA("keyauth_verdicts_by_status_total{status=\"ok\"}") == 2);
	assert_true(DELTA("keyauth_verdict_latency_seconds_count") == 4);
	assert_true(DELTA("keyauth_verdict_latency_seconds_bucket{le=\"+Inf\"}") == 4);
	assert_true(DELTA("keyauth_verdict_latency_seconds_sum") > 0);
	/* buckets are cumulative */
	assert_true(metric(after, "keyauth_verdict_latency_seconds_bucket{le=\"0.025\"}") <=
	    metric(after, "keyauth_verdict_latency_seconds_count"));
	assert_true(DELTA("keyauth_frames_received_total") == 5);   /* HELLO + 4 NOTIFY */
	assert_true(DELTA("keyauth_frames_sent_total") >= 4);
	assert_true(DELTA("keyauth_handshakes_total") == 1);
	assert_true(DELTA("keyauth_connections_total") == 1);
	assert_true(metric(after, "keyauth_connections") == 1);
#undef DELTA
	free(before);
	free(after);
	spc_close(c);
}

static void
test_healthchecks_and_protocol_errors_are_counted(void **state)
{
	static const uint8_t zero_len[] = { 0, 0, 0, 0 };
	struct spc_hello_opts ho = { .versions = "2.0", .max_frame_size = 16380,
	                             .capabilities = "", .healthcheck = true };
	struct spc_conn *c;
	struct spc_frame f;
	char *before, *after;

	(void)state;
	before = scrape();
	c = spc_open(A.uaddr, tp_scaled_ms(2000));
	assert_non_null(c);
	assert_int_equal(spc_hello(c, &ho, &f, tp_scaled_ms(2000)), SPC_FRAME);
	spc_frame_free(&f);
	spc_close(c);
	c = spc_open(A.uaddr, tp_scaled_ms(2000));
	assert_non_null(c);
	assert_true(spc_handshake(c, tp_scaled_ms(2000)));
	assert_int_equal(spc_send_raw(c, zero_len, sizeof(zero_len), tp_scaled_ms(2000)), 0);
	assert_int_equal(spc_wait_eof(c, tp_scaled_ms(3000)) >= SPC_EOF, 1);
	spc_close(c);
	after = scrape();
	assert_true(metric(after, "keyauth_healthchecks_total") -
	    metric(before, "keyauth_healthchecks_total") == 1);
	assert_true(metric(after, "keyauth_protocol_errors_total{status=\"4\"}") -
	    metric(before, "keyauth_protocol_errors_total{status=\"4\"}") == 1);
	free(before);
	free(after);
}

static void
test_reload_result_is_exposed(void **state)
{
	long long deadline;
	char *r = NULL;

	(void)state;
	assert_int_equal(tp_signal(A.pid, SIGHUP), 0);
	deadline = tp_now_ms() + tp_scaled_ms(3000);
	for (;;) {
		r = scrape();
		if (metric(r, "keyauth_config_reloads_total{result=\"ok\"}") == 1)
			break;
		free(r);
		assert_true(tp_now_ms() < deadline);
		tp_nap_ms(20);
	}
	assert_true(metric(r, "keyauth_config_last_reload_timestamp_seconds") > 1e9);
	assert_true(metric(r, "keyauth_config_last_reload_success") == 1);
	assert_true(metric(r, "keyauth_store_last_load_success") == 1);
	assert_true(metric(r, "keyauth_store_loads_total{result=\"ok\"}") == 2);
	assert_true(metric(r, "keyauth_store_resyncs_total") == 2);
	free(r);
}

static void
test_other_requests_get_404_400_or_no_body(void **state)
{
	static const struct {
		const char *req;
		const char *status;
	} cases[] = {
		{ "GET / HTTP/1.1\r\n\r\n", "HTTP/1.1 404 " },
		{ "GET /metricsx HTTP/1.1\r\n\r\n", "HTTP/1.1 404 " },
		{ "POST /metrics HTTP/1.1\r\nContent-Length: 0\r\n\r\n", "HTTP/1.1 404 " },
		{ "GET /metrics?name[]=x HTTP/1.0\n\n", "HTTP/1.1 200 " },
		{ "GARBAGE\r\n\r\n", "HTTP/1.1 400 " },
		{ "GET /metrics HTTP/2.0\r\n\r\n", "HTTP/1.1 400 " },
		{ "GET /metrics HTTP/1.1\r\nno colon here\r\n\r\n", "HTTP/1.1 400 " },
		{ "GET /metrics HTTP/1.1\r\n folded: x\r\n\r\n", "HTTP/1.1 400 " },
		{ "GET /met\x01rics HTTP/1.1\r\n\r\n", "HTTP/1.1 400 " },
	};
	static const char head[] = "HEAD /metrics HTTP/1.1\r\n\r\n";
	char *r;
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		r = http(cases[i].req, strlen(cases[i].req));
		if (strncmp(r, cases[i].status, strlen(cases[i].status)) != 0)
			fail_msg("case %zu: expected \"%s\"", i, cases[i].status);
		free(r);
	}
	r = http(head, sizeof(head) - 1);
	assert_true(strncmp(r, "HTTP/1.1 200 OK\r\n", 17) == 0);
	assert_non_null(strstr(r, "\r\n\r\n"));
	assert_string_equal(strstr(r, "\r\n\r\n"), "\r\n\r\n");   /* no body */
	free(r);
}

static void
test_oversized_request_is_answered_431_and_closed(void **state)
{
	size_t len = METRICS_REQ_MAX + 1024;
	char *req = malloc(len);
	char *r;

	(void)state;
	assert_non_null(req);
	memset(req, 'a', len);
	memcpy(req, "GET /metrics HTTP/1.1\r\nX-Big: ", 30);
	r = http(req, len);   /* asserts the close */
	assert_true(strncmp(r, "HTTP/1.1 431 ", 13) == 0);
	free(r);
	free(req);
}

/* True if the server closed <fd> (EOF or reset) without sending a byte;
 * false if it is still open. Fails the test if data arrived. */
static bool
closed_silently(int fd)
{
	char b;
	ssize_t n = recv(fd, &b, 1, MSG_DONTWAIT);

	if (n == -1 && (errno == EAGAIN || errno == EWOULDBLOCK))
		return false;
	assert_true(n <= 0);
	return true;
}

static void
test_clients_are_bounded_and_time_out(void **state)
{
	enum { N = METRICS_MAX_CLIENTS + 1 };
	/* The agent starts a client's timer when it accepts it, after our
	 * connect began; the margin covers libev's cached clock. */
	const long long young_ms = (long long)(METRICS_TIMEOUT * 1000) - 500;
	int fds[N], i, closed = 0, closed_young = 0, old = 0;
	long long opened[N];
	struct spc_conn *c;
	struct spc_ack a;
	bool eof;
	char *r;
	long long t0, deadline, now;

	(void)state;
	/* The earlier tests' clients are closed on our side, but the agent
	 * holds each until it reads our EOF (it drains after answering): wait
	 * until it let go of all of them, or one of its slots would still be
	 * taken and two of ours closed at accept. */
	deadline = tp_now_ms() + tp_scaled_ms(5000);
	while (agent_connections(A.pid) != 0 && tp_now_ms() < deadline)
		tp_nap_ms(10);
	if (agent_connections(A.pid) != 0)
		fail_msg("the agent still holds %d connections after 5 s: an earlier client was "
		         "not let go", agent_connections(A.pid));
	t0 = tp_now_ms();
	for (i = 0; i < N; i++) {
		opened[i] = tp_now_ms();
		fds[i] = spc_connect_fd(A.maddr, tp_scaled_ms(2000));
		assert_true(fds[i] >= 0);
	}
	/* One over the bound is closed at accept; which one depends on when
	 * the previous test's last client is gone, so count, do not pick. */
	deadline = tp_now_ms() + tp_scaled_ms(1500);
	while (tp_now_ms() < deadline && closed == 0) {
		for (i = 0; i < N; i++)
			if (fds[i] >= 0 && closed_silently(fds[i])) {
				close(fds[i]);
				fds[i] = -1;
				closed++;
				if (tp_now_ms() - opened[i] < young_ms)
					closed_young++;
			}
		tp_nap_ms(10);
	}
	/* Exactly one over the bound. Only when opening them all outlasted
	 * the client timeout (a slow sanitizer run) may the oldest ones have
	 * timed out as well (and then the last may have found a free slot):
	 * at least one closed, at most one of those too young to time out,
	 * and no more than one plus the old enough ones. */
	now = tp_now_ms();
	for (i = 0; i < N; i++)
		if (now - opened[i] >= young_ms)
			old++;
	print_message("client bound: %d of %d closed (%d too young to time out), %d old enough to, "
	              "opened in %lld ms\n", closed, N, closed_young, old, opened[N - 1] - t0);
	if (old == 0)
		assert_int_equal(closed, 1);
	assert_true(closed >= 1);
	assert_true(closed_young <= 1);
	assert_true(closed <= 1 + old);

	/* The agent itself is not held up by them. */
	c = spc_open(A.uaddr, tp_scaled_ms(2000));
	assert_non_null(c);
	assert_true(spc_handshake(c, tp_scaled_ms(2000)));
	assert_int_equal(spc_query(c, "openai", K.key, &a, tp_scaled_ms(2000)), 0);
	assert_string_equal(a.status, "ok");
	spc_close(c);

	/* The others stay until METRICS_TIMEOUT, then are dropped unanswered;
	 * after that scrapes work again. */
	for (i = 0; i < N; i++) {
		if (fds[i] < 0)
			continue;
		r = read_all(fds[i], (int)(METRICS_TIMEOUT * 1000) + 3000, &eof);
		assert_true(eof);
		assert_string_equal(r, "");
		free(r);
		close(fds[i]);
	}
	assert_true(tp_now_ms() - t0 >= (long long)(METRICS_TIMEOUT * 1000) - 500);
	free(scrape());
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_counters_follow_verdicts),
		cmocka_unit_test(test_healthchecks_and_protocol_errors_are_counted),
		cmocka_unit_test(test_reload_result_is_exposed),
		cmocka_unit_test(test_other_requests_get_404_400_or_no_body),
		cmocka_unit_test(test_oversized_request_is_answered_431_and_closed),
		cmocka_unit_test(test_clients_are_bounded_and_time_out),
	};

	return cmocka_run_group_tests(tests, setup, tf_agent_teardown);
}
