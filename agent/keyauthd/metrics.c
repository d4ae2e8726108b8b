/* SPDX-License-Identifier: Apache-2.0 */
/*
 * metrics: GET /metrics over a minimal HTTP/1.x server on keyauthd's main
 * loop (see metrics.h for the contract and why no library).
 *
 * A client's life: READ (until the request head ends, METRICS_REQ_MAX
 * bytes at most) -> WRITE (the whole answer, built at once) -> DRAIN (our
 * write side shut, input discarded until EOF, so that unread request bytes
 * never turn our close into a reset that eats the answer). One timer
 * covers the three: METRICS_TIMEOUT seconds, then the client is dropped.
 * Accepting, pausing on EMFILE & co and the clients' bookkeeping: listener.c.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <ev.h>

#include "listener.h"
#include "metrics.h"


enum metrics_cl_st {
	METRICS_CL_READ = 0,   /* waiting for the end of the request head */
	METRICS_CL_WRITE,      /* answer built, being sent */
	METRICS_CL_DRAIN,      /* answer sent, write side shut, waiting for EOF */
};

struct metrics_client {
	struct listener_client lc;  /* first: socket, watchers, deadline */
	enum metrics_cl_st st;
	char req[METRICS_REQ_MAX];
	size_t req_len;
	char *out;               /* the answer, malloc'd by open_memstream */
	size_t out_len, out_off;
};

struct metrics {
	struct listener_server sv;
	metrics_render_cb *cb;
	void *arg;
};

/* ---- request parsing ------------------------------------------------------------ */

/* RFC 9110 tchar. */
static bool
http_tchar(unsigned char ch)
{
	return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
	    (ch != '\0' && strchr("!#$%&'*+-.^_`|~", ch) != NULL);
}

/* "METHOD SP request-target SP HTTP/1.x": returns METRICS_REQ_METRICS,
 * _NOT_FOUND or _BAD. */
static enum metrics_req
http_request_line(const char *p, size_t len, bool *head_only)
{
	static const char metrics_path[] = "/metrics";
	size_t i = 0, m_len, t_off, t_len;

	while (i < len && http_tchar((unsigned char)p[i]))
		i++;
	m_len = i;
	if (m_len == 0 || i >= len || p[i] != ' ')
		return METRICS_REQ_BAD;
	t_off = ++i;
	while (i < len && (unsigned char)p[i] > 0x20 && (unsigned char)p[i] < 0x7f)
		i++;
	t_len = i - t_off;
	if (t_len == 0 || i >= len || p[i] != ' ')
		return METRICS_REQ_BAD;
	i++;
	if (len - i != 8 || memcmp(p + i, "HTTP/1.", 7) != 0 || (p[i + 7] != '0' && p[i + 7] != '1'))
		return METRICS_REQ_BAD;
	*head_only = m_len == 4 && memcmp(p, "HEAD", 4) == 0;
	if (!(m_len == 3 && memcmp(p, "GET", 3) == 0) && !*head_only)
		return METRICS_REQ_NOT_FOUND;
	if (t_len < sizeof(metrics_path) - 1 ||
	    memcmp(p + t_off, metrics_path, sizeof(metrics_path) - 1) != 0)
		return METRICS_REQ_NOT_FOUND;
	if (t_len > sizeof(metrics_path) - 1 && p[t_off + sizeof(metrics_path) - 1] != '?')
		return METRICS_REQ_NOT_FOUND;
	return METRICS_REQ_METRICS;
}

/* "name: value": a token, a colon, then visible bytes, SP, HTAB or obs-text. */
static bool
http_header_line(const char *p, size_t len)
{
	size_t i = 0;

	while (i < len && http_tchar((unsigned char)p[i]))
		i++;
	if (i == 0 || i >= len || p[i] != ':')
		return false;
	for (i++; i < len; i++) {
		unsigned char ch = (unsigned char)p[i];

		if (ch != '\t' && (ch < 0x20 || ch == 0x7f))
			return false;
	}
	return true;
}

enum metrics_req
metrics_http_parse(const char *buf, size_t len, bool *head_only)
{
	enum metrics_req verdict = METRICS_REQ_BAD;
	size_t limit = len < METRICS_REQ_MAX ? len : METRICS_REQ_MAX;
	size_t pos = 0;
	unsigned line = 0;

	*head_only = false;
	for (;;) {
		const char *nl = memchr(buf + pos, '\n', limit - pos);
		size_t l_len;

		if (nl == NULL)
			return len >= METRICS_REQ_MAX ? METRICS_REQ_TOO_BIG : METRICS_REQ_INCOMPLETE;
		l_len = (size_t)(nl - (buf + pos));
		/* CRLF, or a bare LF (RFC 9112 2.2 lets a server accept it). */
		if (l_len > 0 && buf[pos + l_len - 1] == '\r')
			l_len--;
		if (line == 0) {
			verdict = http_request_line(buf + pos, l_len, head_only);
			if (verdict == METRICS_REQ_BAD)
				return verdict;
		} else if (l_len == 0) {
			return verdict;
		} else if (!http_header_line(buf + pos, l_len)) {
			/* Also obs-fold (a line starting with SP or HTAB). */
			return METRICS_REQ_BAD;
		}
		pos = (size_t)(nl - buf) + 1;
		line++;
	}
}

/* ---- clients ----------------------------------------------------------------------- */

static void
client_free(struct metrics_client *cl)
{
	listener_client_free(&cl->lc);
}

static void
client_on_free(struct listener_client *lc)
{
	free(((struct metrics_client *)lc)->out);
}

/* Builds the whole answer to <req> into cl->out. Returns 0 or -1 (no memory). */
static int
client_answer(struct metrics_client *cl, enum metrics_req req, bool head_only)
{
	static const char *const status[METRICS_REQ_ENTRIES] = {
		[METRICS_REQ_METRICS]   = "200 OK",
		[METRICS_REQ_NOT_FOUND] = "404 Not Found",
		[METRICS_REQ_BAD]       = "400 Bad Request",
		[METRICS_REQ_TOO_BIG]   = "431 Request Header Fields Too Large",
	};
	const char *type = "text/plain; charset=utf-8";
	const char *st = status[req];
	char *body = NULL;
	size_t body_len = 0;
	FILE *f;
	int ok;

	f = open_memstream(&body, &body_len);
	if (f == NULL)
		return -1;
	if (req == METRICS_REQ_METRICS) {
		struct metrics *m = cl->lc.sv->owner;

		if (m->cb(m->arg, f) == 0) {
			type = "text/plain; version=0.0.4; charset=utf-8";
		} else {
			st = "500 Internal Server Error";
			fputs("metrics unavailable\n", f);
		}
	} else {
		fprintf(f, "%s\n", st + 4);
	}
	if (fclose(f) != 0) {
		free(body);
		return -1;
	}
	f = open_memstream(&cl->out, &cl->out_len);
	if (f == NULL) {
		free(body);
		return -1;
	}
	fprintf(f, "HTTP/1.1 %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n"
	    "Cache-Control: no-store\r\nConnection: close\r\n\r\n", st, type, body_len);
	if (!head_only)
		fwrite(body, 1, body_len, f);
	ok = fclose(f) == 0;
	free(body);
	if (!ok)
		return -1;
	cl->out_off = 0;
	cl->st = METRICS_CL_WRITE;
	listener_client_watch(&cl->lc, EV_WRITE);
	return 0;
}

/* Returns 0 while the client lives, -1 once it was freed. */
static int
client_read(struct metrics_client *cl)
{
	enum metrics_req req;
	bool head_only;
	ssize_t n;

	n = recv(cl->lc.fd, cl->req + cl->req_len, sizeof(cl->req) - cl->req_len, 0);
	if (n == -1 && (errno == EAGAIN || errno == EINTR))
		return 0;
	if (n <= 0) {
		client_free(cl);
		return -1;
	}
	cl->req_len += (size_t)n;
	req = metrics_http_parse(cl->req, cl->req_len, &head_only);
	if (req == METRICS_REQ_INCOMPLETE)
		return 0;
	if (client_answer(cl, req, head_only) == -1) {
		client_free(cl);
		return -1;
	}
	return 0;
}

/* Sends what the socket takes of the answer; once all is out, shuts the
 * write side and waits for EOF (DRAIN). Frees the client on error. */
static void
client_write(struct metrics_client *cl)
{
	while (cl->out_off < cl->out_len) {
		ssize_t n = send(cl->lc.fd, cl->out + cl->out_off, cl->out_len - cl->out_off,
		    MSG_NOSIGNAL);

		if (n == -1 && (errno == EAGAIN || errno == EINTR))
			return;
		if (n <= 0) {
			client_free(cl);
			return;
		}
		cl->out_off += (size_t)n;
	}
	shutdown(cl->lc.fd, SHUT_WR);
	cl->st = METRICS_CL_DRAIN;
	listener_client_watch(&cl->lc, EV_READ);
}

static void
client_on_io(struct ev_loop *loop, ev_io *io, int revents)
{
	struct metrics_client *cl = io->data;
	char sink[4096];
	ssize_t n;

	(void)loop;
	(void)revents;
	switch (cl->st) {
	case METRICS_CL_READ:
		/* The answer usually fits the socket buffer: send it now. */
		if (client_read(cl) == 0 && cl->st == METRICS_CL_WRITE)
			client_write(cl);
		break;
	case METRICS_CL_WRITE:
		client_write(cl);
		break;
	case METRICS_CL_DRAIN:
		n = recv(cl->lc.fd, sink, sizeof(sink), 0);
		if (n == 0 || (n == -1 && errno != EAGAIN && errno != EINTR))
			client_free(cl);
		break;
	}
}

/* ---- listener ---------------------------------------------------------------------- */

static const struct listener_server_ops metrics_server_ops = {
	.event = "metrics_accept_error",
	.size = sizeof(struct metrics_client),
	.max = METRICS_MAX_CLIENTS,
	.timeout = METRICS_TIMEOUT,
	.on_io = client_on_io,
	.on_free = client_on_free,
};

struct metrics *
metrics_open(int fd, struct ev_loop *loop, metrics_render_cb *cb, void *arg, char *err,
             size_t errlen)
{
	struct metrics *m = calloc(1, sizeof(*m));

	if (m == NULL) {
		snprintf(err, errlen, "metrics: out of memory");
		close(fd);
		return NULL;
	}
	m->cb = cb;
	m->arg = arg;
	listener_server_start(&m->sv, loop, fd, &metrics_server_ops, m);
	return m;
}

void
metrics_close(struct metrics *m)
{
	if (m == NULL)
		return;
	listener_server_stop(&m->sv);
	free(m);
}
