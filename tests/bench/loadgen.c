/* SPDX-License-Identifier: Apache-2.0 */
/*
 * loadgen: SPOP load generator for keyauthd, playing HAProxy's side.
 *
 * Opens C connections, handshakes each as HAProxy 3.x does, then keeps D
 * keyauth NOTIFYs in flight per connection (the frame-id is the in-flight
 * slot, the stream-id a per-connection counter) until N verdicts were asked
 * for or T seconds passed, then drains. One thread, non-blocking sockets and
 * poll(); frames are built and split with spop/ through tests/lib/spop_client.
 * Every ACK is checked against the kind of key sent (valid -> ok, unknown ->
 * invalid, none -> missing). Latency is measured per NOTIFY from the batch it
 * was written in to the read that returned its ACK, into a log-linear
 * histogram (about 3% resolution).
 *
 * TLS (-T CAFILE, issue 11): every connection speaks TLS (OpenSSL, TLS 1.2 or
 * newer), the agent's certificate verified against CAFILE (and its name with
 * -H), with a client certificate for mutual TLS (-C/-K). Still non-blocking:
 * the handshake runs implicitly inside the first SSL_write/SSL_read, and a
 * write that waits on a read (or the reverse) is parked until poll() reports
 * that side. The plain path keeps its send()/recv() calls; TLS is one branch.
 * Connection set-up cost (-x N): a connection closes after N verdicts and a
 * new one replaces it (connect, TLS handshake, HELLO, ...). The latest session
 * the agent handed out is kept and offered on every later handshake (unless
 * -F: full handshakes only); how many were resumed is reported.
 *
 * Paced mode (-R RATE, issue 19): NOTIFYs leave on a schedule of RATE per
 * second in total, spread evenly (the schedule is checked after every poll
 * wake-up, which waits at most until the next NOTIFY is due) and handed to
 * the connections in turn, each still keeping at most DEPTH in flight. When
 * every slot is busy the schedule runs on: the NOTIFYs due but not sent are
 * the backlog, reported as behind_ms (the largest backlog, in milliseconds of
 * schedule) and skipped (due by the end of the run but never sent). Latency
 * is still measured from the write to the ACK, so it does not include the
 * time a NOTIFY waited in the backlog: read it with behind_ms.
 *
 * Output: one line of key=value on stdout. Keys are read from the -k file and
 * never printed. Exit 0 when every verdict came back as expected, 1 when any
 * did not (or a connection failed), 2 on a usage error.
 */
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

#include "keyfmt.h"
#include "spop.h"
#include "spop_client.h"

#define LG_NOTIFY_MAX   (KEY_MAX_LEN + 128)   /* one keyauth NOTIFY, generous */
#define LG_RBUF         (256 * 1024)
#define LG_INVALID_KEYS 64
#define LG_DRAIN_MS     10000

enum lg_kind {
	LG_VALID = 0,
	LG_INVALID,
	LG_MISSING,
	LG_KINDS
};

static const char *const lg_want[LG_KINDS] = { "ok", "invalid", "missing" };

struct lg_slot {
	uint64_t sent_ns;
	uint8_t kind;
	bool busy;
};

enum lg_state {
	LG_ST_HELLO,      /* HELLO sent, waiting for AGENT-HELLO */
	LG_ST_RUNNING,    /* NOTIFYs flowing */
	LG_ST_DEAD,       /* closed after an error */
	LG_ST_DONE,       /* closed after its -x verdicts, the run being over */
};

struct lg_conn {
	int fd;
	enum lg_state state;
	uint8_t *rbuf;
	size_t rlen;
	uint8_t *wbuf;
	size_t wlen;          /* bytes queued */
	size_t woff;          /* bytes of wbuf already sent */
	size_t wcap;
	struct lg_slot *slots;
	unsigned *free_slots; /* stack of free slot indexes */
	unsigned nfree;
	uint64_t next_sid;
	unsigned depth;       /* slots */
	SSL *ssl;             /* NULL: plain socket */
	bool wr_wants_read;   /* the last SSL_write waits for readable */
	bool rd_wants_write;  /* the last SSL_read waits for writable */
	uint64_t sent_here;   /* NOTIFYs issued on this connection (for -x) */
};

struct lg_opts {
	const char *addr;
	unsigned conns;
	unsigned depth;
	uint64_t total;       /* 0: time bound */
	double seconds;
	const char *keyfile;
	const char *route;
	const char *prefix;
	int valid_pct;
	int missing_pct;
	uint64_t seed;
	const char *ca;       /* TLS when set */
	const char *cert;     /* client certificate (mTLS) */
	const char *key;
	const char *host;     /* name to verify in the agent's certificate */
	int max_version;      /* 0: OpenSSL's highest */
	bool no_resume;       /* -F */
	uint64_t per_conn;    /* -x: verdicts per connection, 0 = unbounded */
	double rate;          /* -R: NOTIFYs per second in total, 0 = as fast as slots free */
};

/* ---- histogram ------------------------------------------------------------------ */

#define H_LINEAR 64
#define H_SUB    32
#define H_BUCKETS (H_LINEAR + 59 * H_SUB)

static uint64_t hist[H_BUCKETS];
static uint64_t hist_n, hist_max;

static unsigned h_index(uint64_t v)
{
	if (v < H_LINEAR)
		return (unsigned)v;
	unsigned msb = 63u - (unsigned)__builtin_clzll(v);
	unsigned shift = msb - 5;   /* v >> shift lands in [32, 64) */

	return H_LINEAR + (shift - 1) * H_SUB + (unsigned)((v >> shift) - H_SUB);
}

/* Middle of bucket <i> (its value when exact). */
static double h_value(unsigned i)
{
	if (i < H_LINEAR)
		return i;
	unsigned shift = (i - H_LINEAR) / H_SUB + 1;
	uint64_t low = ((uint64_t)((i - H_LINEAR) % H_SUB) + H_SUB) << shift;

	return (double)low + (double)((1ull << shift) - 1) / 2.0;
}

static void h_add(uint64_t ns)
{
	hist[h_index(ns)]++;
	hist_n++;
	if (ns > hist_max)
		hist_max = ns;
}

static double h_pct(double p)
{
	uint64_t want = (uint64_t)(p / 100.0 * (double)hist_n + 0.999999), seen = 0;

	if (hist_n == 0)
		return 0;
	if (want == 0)
		want = 1;
	for (unsigned i = 0; i < H_BUCKETS; i++) {
		seen += hist[i];
		if (seen >= want)
			return h_value(i);
	}
	return (double)hist_max;
}

/* ---- state ------------------------------------------------------------------------ */

static char **valid_keys;
static size_t n_valid;
static char invalid_keys[LG_INVALID_KEYS][KEY_GEN_MAX + 1];
static uint64_t rng_state;

static uint64_t issued, answered, wrong, lost, conn_errors;
static uint64_t by_kind[LG_KINDS];

static SSL_CTX *tls_ctx;
static SSL_SESSION *tls_sess;    /* offered on the next handshake (not with -F) */
static uint64_t connects, handshakes, resumed;
static uint64_t behind_max;      /* -R: largest backlog seen, NOTIFYs */

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static uint64_t rng(void)
{
	/* xorshift64*: fast and good enough to mix key kinds. */
	rng_state ^= rng_state >> 12;
	rng_state ^= rng_state << 25;
	rng_state ^= rng_state >> 27;
	return rng_state * 0x2545F4914F6CDD1Dull;
}

static void usage(void)
{
	fprintf(stderr,
	        "usage: loadgen -s ADDR [-c CONNS] [-d DEPTH] [-n VERDICTS | -t SECONDS]\n"
	        "               [-k KEYFILE] [-r ROUTE] [-v VALID%%] [-m MISSING%%] [-S SEED]\n"
	        "               [-x PER_CONN] [-R RATE]\n"
	        "               [-T CAFILE [-C CERT -K KEY] [-H NAME] [-V 1.2|1.3] [-F]]\n"
	        "  ADDR      unix:/path or host:port\n"
	        "  CONNS     connections (default 8)\n"
	        "  DEPTH     NOTIFYs in flight per connection (default 20)\n"
	        "  VERDICTS  total verdicts to ask for (default 1000000 unless -t)\n"
	        "  KEYFILE   valid keys, one a line (as written by mkstore)\n"
	        "  ROUTE     route to ask for (default openai)\n"
	        "  VALID%%    share of valid keys (default 80 with -k, else 0)\n"
	        "  MISSING%%  share of requests without a key (default 5); the rest\n"
	        "            carry well-formed unknown keys\n"
	        "  PER_CONN  close a connection after this many verdicts and open a new one\n"
	        "  RATE      paced: NOTIFYs per second in total, spread evenly (still at most\n"
	        "            DEPTH in flight per connection; behind_ms tells a backlog)\n"
	        "  CAFILE    speak TLS, verifying the agent's certificate against CAFILE\n"
	        "  CERT KEY  client certificate and key (PEM) for mutual TLS\n"
	        "  NAME      also check the agent's certificate is for NAME\n"
	        "  -V        highest TLS version to offer (default: OpenSSL's)\n"
	        "  -F        no session reuse: every connection does a full handshake\n");
}

/* Loads the key file; its content is never printed. */
static int load_keys(const char *path)
{
	FILE *f = fopen(path, "r");
	char line[KEY_MAX_LEN + 3];
	size_t cap = 0, lineno = 0;

	if (!f) {
		fprintf(stderr, "loadgen: %s: %s\n", path, strerror(errno));
		return -1;
	}
	while (fgets(line, sizeof(line), f)) {
		size_t len = strcspn(line, "\r\n");

		lineno++;
		if (line[len] == '\0' && !feof(f)) {
			fprintf(stderr, "loadgen: %s:%zu: line too long\n", path, lineno);
			fclose(f);
			return -1;
		}
		line[len] = '\0';
		if (len == 0)
			continue;
		if (n_valid == cap) {
			cap = cap ? cap * 2 : 1024;
			char **n = realloc(valid_keys, cap * sizeof(*n));

			if (!n) {
				fclose(f);
				return -1;
			}
			valid_keys = n;
		}
		valid_keys[n_valid] = strdup(line);
		if (!valid_keys[n_valid]) {
			fclose(f);
			return -1;
		}
		n_valid++;
	}
	explicit_bzero(line, sizeof(line));
	fclose(f);
	if (n_valid == 0) {
		fprintf(stderr, "loadgen: %s: no keys\n", path);
		return -1;
	}
	return 0;
}

static void free_keys(void)
{
	for (size_t i = 0; i < n_valid; i++) {
		explicit_bzero(valid_keys[i], strlen(valid_keys[i]));
		free(valid_keys[i]);
	}
	free(valid_keys);
	explicit_bzero(invalid_keys, sizeof(invalid_keys));
}

/* ---- TLS ------------------------------------------------------------------------- */

/* Keeps the latest session the agent handed out, to offer on the next
 * handshake, as HAProxy does for a server. (TLS 1.3 sends it after the
 * handshake, so SSL_get1_session right after connecting may not hold a
 * ticket yet; and OpenSSL's server takes a TLS 1.3 ticket once only, so
 * keeping the first session would resume every other connection.) */
static int tls_on_new_session(SSL *s, SSL_SESSION *sess)
{
	(void)s;
	SSL_SESSION_free(tls_sess);
	tls_sess = sess;
	return 1;   /* we keep the reference */
}

static void tls_print_errors(const char *what)
{
	unsigned long e;
	char buf[256];

	fprintf(stderr, "loadgen: %s\n", what);
	while ((e = ERR_get_error()) != 0) {
		ERR_error_string_n(e, buf, sizeof(buf));
		fprintf(stderr, "loadgen:   %s\n", buf);
	}
}

static int tls_setup(const struct lg_opts *o)
{
	tls_ctx = SSL_CTX_new(TLS_client_method());
	if (tls_ctx == NULL || SSL_CTX_set_min_proto_version(tls_ctx, TLS1_2_VERSION) != 1 ||
	    (o->max_version && SSL_CTX_set_max_proto_version(tls_ctx, o->max_version) != 1)) {
		tls_print_errors("TLS context");
		return -1;
	}
	if (SSL_CTX_load_verify_locations(tls_ctx, o->ca, NULL) != 1) {
		tls_print_errors(o->ca);
		return -1;
	}
	SSL_CTX_set_verify(tls_ctx, SSL_VERIFY_PEER, NULL);
	if (o->cert && (SSL_CTX_use_certificate_chain_file(tls_ctx, o->cert) != 1 ||
	                SSL_CTX_use_PrivateKey_file(tls_ctx, o->key, SSL_FILETYPE_PEM) != 1 ||
	                SSL_CTX_check_private_key(tls_ctx) != 1)) {
		tls_print_errors(o->cert);
		return -1;
	}
	/* Frames are appended to wbuf (which may move) while a record waits. */
	SSL_CTX_set_mode(tls_ctx, SSL_MODE_ENABLE_PARTIAL_WRITE |
	                 SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
	if (!o->no_resume) {
		SSL_CTX_set_session_cache_mode(tls_ctx, SSL_SESS_CACHE_CLIENT |
		                               SSL_SESS_CACHE_NO_INTERNAL_STORE);
		SSL_CTX_sess_set_new_cb(tls_ctx, tls_on_new_session);
	} else {
		SSL_CTX_set_session_cache_mode(tls_ctx, SSL_SESS_CACHE_OFF);
		SSL_CTX_set_options(tls_ctx, SSL_OP_NO_TICKET);
	}
	return 0;
}

/* SSL_get_error after a TLS call returned <r> <= 0: 1 would block (the
 * side waited on in *want_read / *want_write), 0 EOF, -1 failure. */
static int tls_wait(SSL *s, int r, bool *want_read, bool *want_write)
{
	switch (SSL_get_error(s, r)) {
	case SSL_ERROR_WANT_READ:
		*want_read = true;
		return 1;
	case SSL_ERROR_WANT_WRITE:
		*want_write = true;
		return 1;
	case SSL_ERROR_ZERO_RETURN:
		return 0;
	case SSL_ERROR_SYSCALL:
		if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) {
			*want_read = true;
			return 1;
		}
		return ERR_peek_error() == 0 && errno == 0 ? 0 : -1;
	default:
		return -1;
	}
}

/* ---- connections ------------------------------------------------------------------- */

static void conn_close(struct lg_conn *c)
{
	if (c->ssl != NULL) {
		/* Only once the handshake is done: a close_notify, no waiting. */
		if (SSL_is_init_finished(c->ssl))
			(void)SSL_shutdown(c->ssl);
		SSL_free(c->ssl);
		c->ssl = NULL;
	}
	if (c->fd >= 0)
		close(c->fd);
	c->fd = -1;
	ERR_clear_error();
}

static void conn_fail(struct lg_conn *c)
{
	if (c->state == LG_ST_DEAD || c->state == LG_ST_DONE)
		return;
	/* Whatever was in flight on it will never be answered. */
	lost += c->depth - c->nfree;
	c->state = LG_ST_DEAD;
	conn_errors++;
	conn_close(c);
}

/* Connects (again): a new socket, its SSL offering the kept session, and
 * the HELLO queued. Buffers and slots must be empty. */
static int conn_open(struct lg_conn *c, const struct lg_opts *o)
{
	struct spc_hello_opts h = { .versions = "2.0", .max_frame_size = SPOP_DEFAULT_FRAME_SIZE,
	                            .capabilities = "pipelining" };
	int n;

	c->rlen = c->wlen = c->woff = 0;
	c->wr_wants_read = c->rd_wants_write = false;
	c->sent_here = 0;
	c->fd = spc_connect_fd(o->addr, 2000);
	if (c->fd == -1) {
		fprintf(stderr, "loadgen: connect %s: %s\n", o->addr, strerror(errno));
		return -1;
	}
	connects++;
	if (tls_ctx != NULL) {
		c->ssl = SSL_new(tls_ctx);
		if (c->ssl == NULL || SSL_set_fd(c->ssl, c->fd) != 1 ||
		    (o->host && (SSL_set1_host(c->ssl, o->host) != 1 ||
		                 SSL_set_tlsext_host_name(c->ssl, o->host) != 1)) ||
		    (tls_sess != NULL && SSL_set_session(c->ssl, tls_sess) != 1)) {
			tls_print_errors("SSL_new");
			return -1;
		}
		SSL_set_connect_state(c->ssl);
	}
	n = spc_build_hello(c->wbuf, c->wcap, &h);
	if (n < 0)
		return -1;
	c->wlen = (size_t)n;
	c->state = LG_ST_HELLO;
	return 0;
}

static int conn_init(struct lg_conn *c, const struct lg_opts *o)
{
	memset(c, 0, sizeof(*c));
	c->fd = -1;
	c->depth = o->depth;
	c->wcap = (size_t)o->depth * LG_NOTIFY_MAX + 1024;
	c->rbuf = malloc(LG_RBUF);
	c->wbuf = malloc(c->wcap);
	c->slots = calloc(o->depth, sizeof(*c->slots));
	c->free_slots = malloc(o->depth * sizeof(*c->free_slots));
	if (!c->rbuf || !c->wbuf || !c->slots || !c->free_slots)
		return -1;
	for (unsigned i = 0; i < o->depth; i++)
		c->free_slots[i] = o->depth - 1 - i;
	c->nfree = o->depth;
	return conn_open(c, o);
}

static void conn_free(struct lg_conn *c)
{
	conn_close(c);
	if (c->wbuf)
		explicit_bzero(c->wbuf, c->wcap);
	free(c->rbuf);
	free(c->wbuf);
	free(c->slots);
	free(c->free_slots);
}

/* -x: a connection that had its verdicts closes once nothing is in flight,
 * and a new one takes its place while the run goes on. */
static void conn_cycle(struct lg_conn *c, const struct lg_opts *o, bool more)
{
	if (o->per_conn == 0 || c->state != LG_ST_RUNNING || c->sent_here < o->per_conn ||
	    c->nfree != c->depth)
		return;
	conn_close(c);
	if (!more) {
		c->state = LG_ST_DONE;
		return;
	}
	if (conn_open(c, o) == -1) {
		c->state = LG_ST_DEAD;
		conn_errors++;
		conn_close(c);
	}
}

/* Queues NOTIFYs into every free slot while the budget allows (and at most
 * *budget of them, which is decremented). */
static void conn_issue(struct lg_conn *c, const struct lg_opts *o, bool more, uint64_t t,
                       uint64_t *budget)
{
	while (more && *budget > 0 && c->nfree > 0 && (o->total == 0 || issued < o->total) &&
	       (o->per_conn == 0 || c->sent_here < o->per_conn)) {
		unsigned slot = c->free_slots[--c->nfree];
		unsigned r = (unsigned)(rng() % 100);
		enum lg_kind kind = r < (unsigned)o->valid_pct ? LG_VALID :
		                    r < (unsigned)(o->valid_pct + o->missing_pct) ? LG_MISSING :
		                    LG_INVALID;
		const char *key = NULL;
		int n;

		if (kind == LG_VALID)
			key = valid_keys[rng() % n_valid];
		else if (kind == LG_INVALID)
			key = invalid_keys[rng() % LG_INVALID_KEYS];
		if (c->woff > 0 && c->woff == c->wlen)
			c->woff = c->wlen = 0;
		n = spc_build_keyauth(c->wbuf + c->wlen, c->wcap - c->wlen, c->next_sid++, slot,
		                      NULL, o->route, key, SPC_KEY_STRLEN);
		if (n < 0) {
			c->free_slots[c->nfree++] = slot;
			break;   /* the write buffer is full: retry after the next flush */
		}
		c->wlen += (size_t)n;
		c->slots[slot] = (struct lg_slot){ .sent_ns = t, .kind = (uint8_t)kind, .busy = true };
		issued++;
		c->sent_here++;
		(*budget)--;
	}
}

/* -R: the NOTIFYs due at <t> by the schedule, handed out one per connection
 * in turn from *rr. Returns how many were due but found no free slot. */
static uint64_t paced_issue(struct lg_conn *conns, const struct lg_opts *o, uint64_t t0,
                            uint64_t t, unsigned *rr)
{
	uint64_t due = (uint64_t)((double)(t - t0) * o->rate / 1e9) + 1, budget;
	bool progress = true;

	if (o->total && due > o->total)
		due = o->total;
	budget = due > issued ? due - issued : 0;
	while (budget > 0 && progress) {
		progress = false;
		for (unsigned k = 0; k < o->conns && budget > 0; k++) {
			struct lg_conn *c = &conns[(*rr + k) % o->conns];
			uint64_t one = 1;

			if (c->state != LG_ST_RUNNING)
				continue;
			if (o->per_conn)
				conn_cycle(c, o, true);
			if (c->state != LG_ST_RUNNING)
				continue;
			conn_issue(c, o, true, t, &one);
			if (one == 0) {
				budget--;
				progress = true;
			}
		}
		*rr = (*rr + 1) % o->conns;
	}
	if (budget > behind_max)
		behind_max = budget;
	return budget;
}

/* One SSL_write of everything queued (partial writes on: one record per
 * 16 KB); -1 after a failure (the connection is dead). */
static int conn_flush_tls(struct lg_conn *c)
{
	size_t put = 0;
	bool wr = false;   /* waiting on writable: pending bytes poll POLLOUT anyway */
	int r;

	c->wr_wants_read = false;
	ERR_clear_error();
	r = SSL_write_ex(c->ssl, c->wbuf + c->woff, c->wlen - c->woff, &put);
	if (r == 1) {
		c->woff += put;
		return 0;
	}
	if (tls_wait(c->ssl, r, &c->wr_wants_read, &wr) != 1) {
		tls_print_errors("TLS write failed");
		conn_fail(c);
		return -1;
	}
	return 1;
}

static void conn_flush(struct lg_conn *c)
{
	if (c->ssl != NULL) {
		while (c->state != LG_ST_DEAD && c->woff < c->wlen)
			if (conn_flush_tls(c) != 0)
				break;
	}
	while (c->ssl == NULL && c->state != LG_ST_DEAD && c->woff < c->wlen) {
		ssize_t w = send(c->fd, c->wbuf + c->woff, c->wlen - c->woff, MSG_NOSIGNAL);

		if (w > 0) {
			c->woff += (size_t)w;
			continue;
		}
		if (w == -1 && (errno == EAGAIN || errno == EWOULDBLOCK))
			break;
		if (w == -1 && errno == EINTR)
			continue;
		conn_fail(c);
	}
	if (c->woff == c->wlen) {
		c->woff = c->wlen = 0;
	} else if (c->woff > c->wcap / 2) {
		memmove(c->wbuf, c->wbuf + c->woff, c->wlen - c->woff);
		c->wlen -= c->woff;
		c->woff = 0;
	}
}

static void conn_on_ack(struct lg_conn *c, const struct spop_frame *f, uint64_t t,
                        unsigned depth)
{
	struct spc_ack a;
	struct lg_slot *s;

	if (f->fid >= depth || !c->slots[f->fid].busy) {
		fprintf(stderr, "loadgen: ACK for unknown frame-id %llu\n",
		        (unsigned long long)f->fid);
		conn_fail(c);
		return;
	}
	s = &c->slots[f->fid];
	s->busy = false;
	c->free_slots[c->nfree++] = (unsigned)f->fid;
	answered++;
	by_kind[s->kind]++;
	h_add(t - s->sent_ns);
	if (spc_ack_parse(f->payload, f->payload_len, &a) != 0 || !a.has_status ||
	    strcmp(a.status, lg_want[s->kind]) != 0 || a.ok != (s->kind == LG_VALID))
		wrong++;
}

/* SSL_read with recv()'s contract: > 0 bytes, 0 EOF, -1 with errno (EAGAIN
 * when it waits; on what is in rd_wants_write / the default readable). */
static ssize_t conn_recv_tls(struct lg_conn *c, void *buf, size_t len)
{
	size_t got = 0;
	bool rd = false;
	int r;

	c->rd_wants_write = false;
	ERR_clear_error();
	r = SSL_read_ex(c->ssl, buf, len, &got);
	if (r == 1)
		return (ssize_t)got;
	r = tls_wait(c->ssl, r, &rd, &c->rd_wants_write);
	if (r == 1) {
		errno = EAGAIN;
		return -1;
	}
	if (r == -1) {
		tls_print_errors("TLS read failed");
		errno = EPROTO;
	}
	return r == 0 ? 0 : -1;
}

/* The agent answered HELLO over TLS: the handshake is over. */
static void conn_handshake_done(struct lg_conn *c)
{
	handshakes++;
	resumed += SSL_session_reused(c->ssl) == 1;
}

/* Reads and handles every complete frame. */
static void conn_read(struct lg_conn *c, unsigned depth, uint64_t t)
{
	size_t off = 0;

	for (;;) {
		ssize_t r = c->ssl == NULL ? recv(c->fd, c->rbuf + c->rlen, LG_RBUF - c->rlen, 0)
		                           : conn_recv_tls(c, c->rbuf + c->rlen, LG_RBUF - c->rlen);

		if (r > 0) {
			c->rlen += (size_t)r;
			if (c->rlen < LG_RBUF)
				continue;
			break;
		}
		if (r == -1 && (errno == EAGAIN || errno == EWOULDBLOCK))
			break;
		if (r == -1 && errno == EINTR)
			continue;
		if (r == 0)
			fprintf(stderr, "loadgen: connection closed by the agent\n");
		conn_fail(c);
		return;
	}
	while (c->state != LG_ST_DEAD) {
		struct spop_frame f;
		int n = spop_frame_next(c->rbuf + off, c->rlen - off, SPOP_DEFAULT_FRAME_SIZE, &f);

		if (n == 0)
			break;
		if (n < 0) {
			fprintf(stderr, "loadgen: bad frame from the agent (status %d)\n", -n);
			conn_fail(c);
			return;
		}
		off += (size_t)n;
		if (c->state == LG_ST_HELLO && f.type == SPOP_FRM_AGENT_HELLO) {
			c->state = LG_ST_RUNNING;
			if (c->ssl != NULL)
				conn_handshake_done(c);
		} else if (c->state == LG_ST_RUNNING && f.type == SPOP_FRM_ACK) {
			conn_on_ack(c, &f, t, depth);
		} else {
			if (f.type == SPOP_FRM_AGENT_DISCON)
				fprintf(stderr, "loadgen: AGENT-DISCONNECT status %d\n",
				        spc_disconnect_status(f.payload, f.payload_len, NULL, 0));
			else
				fprintf(stderr, "loadgen: unexpected frame type %u\n", f.type);
			conn_fail(c);
			return;
		}
	}
	if (off > 0) {
		memmove(c->rbuf, c->rbuf + off, c->rlen - off);
		c->rlen -= off;
	}
	/* Bytes OpenSSL holds are invisible to poll(): read on while it has some. */
	if (c->ssl != NULL && c->state != LG_ST_DEAD && SSL_has_pending(c->ssl))
		conn_read(c, depth, t);
}

static unsigned conn_inflight(const struct lg_conn *c, unsigned depth)
{
	return c->state == LG_ST_DEAD ? 0 : depth - c->nfree;
}

/* ---- main ---------------------------------------------------------------------------- */

static int parse_opts(int argc, char **argv, struct lg_opts *o)
{
	int ch;
	bool valid_set = false;
	char *end;

	*o = (struct lg_opts){ .conns = 8, .depth = 20, .route = "openai", .prefix = "ka_",
	                       .missing_pct = 5, .seed = (uint64_t)time(NULL) };
	while ((ch = getopt(argc, argv, "s:c:d:n:t:k:r:p:v:m:S:x:R:T:C:K:H:V:Fh")) != -1) {
		errno = 0;
		end = optarg ? optarg + strlen(optarg) : "";   /* string options, flags: nothing left */
		switch (ch) {
		case 's': o->addr = optarg; break;
		case 'c': o->conns = (unsigned)strtoul(optarg, &end, 10); break;
		case 'd': o->depth = (unsigned)strtoul(optarg, &end, 10); break;
		case 'n': o->total = strtoull(optarg, &end, 10); break;
		case 't': o->seconds = strtod(optarg, &end); break;
		case 'k': o->keyfile = optarg; break;
		case 'r': o->route = optarg; break;
		case 'p': o->prefix = optarg; break;
		case 'v': o->valid_pct = (int)strtol(optarg, &end, 10); valid_set = true; break;
		case 'm': o->missing_pct = (int)strtol(optarg, &end, 10); break;
		case 'S': o->seed = strtoull(optarg, &end, 10); break;
		case 'x': o->per_conn = strtoull(optarg, &end, 10); break;
		case 'R': o->rate = strtod(optarg, &end); break;
		case 'T': o->ca = optarg; break;
		case 'C': o->cert = optarg; break;
		case 'K': o->key = optarg; break;
		case 'H': o->host = optarg; break;
		case 'V':
			o->max_version = strcmp(optarg, "1.2") == 0 ? TLS1_2_VERSION :
			                 strcmp(optarg, "1.3") == 0 ? TLS1_3_VERSION : -1;
			if (o->max_version == -1)
				errno = EINVAL;
			break;
		case 'F': o->no_resume = true; break;
		default:
			usage();
			return -1;
		}
		if (errno || !end || *end) {
			fprintf(stderr, "loadgen: -%c: bad value\n", ch);
			return -1;
		}
	}
	if (!o->addr || optind != argc || o->conns == 0 || o->conns > 10000 || o->depth == 0 ||
	    o->depth > 100000 || (o->total && o->seconds > 0) || o->seconds < 0 ||
	    !(o->rate >= 0 && o->rate <= 1e8)) {
		usage();
		return -1;
	}
	if (!valid_set)
		o->valid_pct = o->keyfile ? 80 : 0;
	if (o->valid_pct < 0 || o->missing_pct < 0 || o->valid_pct + o->missing_pct > 100 ||
	    (o->valid_pct > 0 && !o->keyfile)) {
		fprintf(stderr, "loadgen: shares must be 0..100 in total; valid keys need -k\n");
		return -1;
	}
	if ((!o->cert != !o->key) || (!o->ca && (o->cert || o->host || o->max_version ||
	                                          o->no_resume))) {
		fprintf(stderr, "loadgen: -C and -K go together; TLS options need -T\n");
		return -1;
	}
	if (o->total == 0 && o->seconds == 0)
		o->total = 1000000;
	if (o->seed == 0)
		o->seed = 1;
	return 0;
}

int main(int argc, char **argv)
{
	struct lg_opts o;
	struct lg_conn *conns;
	struct pollfd *pfds;
	uint64_t t0, t_end_issue, t_last, drain_deadline = 0, due_end = 0;
	unsigned alive, rr = 0;
	int rc;

	if (parse_opts(argc, argv, &o) == -1)
		return 2;
	signal(SIGPIPE, SIG_IGN);
	rng_state = o.seed;
	if (o.keyfile && load_keys(o.keyfile) == -1)
		return 2;
	for (int i = 0; i < LG_INVALID_KEYS; i++)
		if (keyfmt_generate(o.prefix, invalid_keys[i], sizeof(invalid_keys[i])) < 0) {
			fprintf(stderr, "loadgen: cannot generate keys for prefix %s\n", o.prefix);
			return 2;
		}

	if (o.ca && tls_setup(&o) == -1)
		return 2;
	conns = calloc(o.conns, sizeof(*conns));
	pfds = calloc(o.conns, sizeof(*pfds));
	rc = conns && pfds ? 0 : 1;
	for (unsigned i = 0; i < o.conns && conns; i++)
		conns[i].fd = -1;
	for (unsigned i = 0; i < o.conns && rc == 0; i++)
		if (conn_init(&conns[i], &o) == -1)
			rc = 1;
	if (rc != 0)
		goto out;

	t0 = now_ns();
	t_end_issue = o.seconds > 0 ? t0 + (uint64_t)(o.seconds * 1e9) : UINT64_MAX;
	t_last = t0;
	for (;;) {
		uint64_t t = now_ns();
		bool more = t < t_end_issue && (o.total == 0 || issued < o.total);
		unsigned inflight = 0;
		uint64_t budget = UINT64_MAX, backlog = 0;
		int wait_ns = 100 * 1000000;

		if (!more && drain_deadline == 0) {
			drain_deadline = t + (uint64_t)LG_DRAIN_MS * 1000000ull;
			if (o.rate > 0) {
				/* what the schedule asked for by the end of the issue window */
				uint64_t te = t_end_issue < t ? t_end_issue : t;

				due_end = (uint64_t)ceil((double)(te - t0) * o.rate / 1e9);
				if (o.total && due_end > o.total)
					due_end = o.total;
			}
		}
		if (o.rate > 0) {
			budget = 0;   /* the per-connection pass below issues nothing */
			if (more) {
				backlog = paced_issue(conns, &o, t0, t, &rr);
				if (backlog == 0) {
					/* sleep until the next NOTIFY is due */
					uint64_t next = t0 + (uint64_t)((double)issued * 1e9 / o.rate);
					uint64_t now = now_ns();

					wait_ns = next > now ? (int)(next - now < 100000000ull ? next - now
					                                                         : 100000000ull) : 0;
				}
				if (t_end_issue > t && t_end_issue - t < (uint64_t)wait_ns)
					wait_ns = (int)(t_end_issue - t);
			}
		}
		alive = 0;
		for (unsigned i = 0; i < o.conns; i++) {
			struct lg_conn *c = &conns[i];

			if (o.per_conn)
				conn_cycle(c, &o, more);
			if (c->state == LG_ST_RUNNING)
				conn_issue(c, &o, more, t, &budget);
			conn_flush(c);
			inflight += conn_inflight(c, o.depth);
			pfds[i].fd = c->fd;   /* -1 once dead or done: poll skips it */
			pfds[i].events = POLLIN;
			if ((c->woff < c->wlen && !c->wr_wants_read) || c->rd_wants_write)
				pfds[i].events |= POLLOUT;
			pfds[i].revents = 0;
			alive += c->state != LG_ST_DEAD && c->state != LG_ST_DONE;
		}
		if (alive == 0 || (!more && inflight == 0) || (drain_deadline && t > drain_deadline)) {
			lost += inflight;
			t_last = t;
			break;
		}
		{
			struct timespec ts = { wait_ns / 1000000000, wait_ns % 1000000000 };

			rc = ppoll(pfds, o.conns, &ts, NULL);
		}
		if (rc == -1 && errno != EINTR) {
			perror("loadgen: poll");
			rc = 1;
			goto out;
		}
		t = now_ns();
		for (unsigned i = 0; i < o.conns && rc > 0; i++) {
			if ((pfds[i].revents & (POLLIN | POLLHUP | POLLERR)) ||
			    ((pfds[i].revents & POLLOUT) && conns[i].rd_wants_write))
				conn_read(&conns[i], o.depth, t);
		}
	}

	double secs = (double)(t_last - t0) / 1e9;
	uint64_t errors = wrong + lost + conn_errors;

	printf("loadgen addr=%s conns=%u depth=%u seconds=%.3f verdicts=%llu rate=%.0f "
	       "p50_us=%.1f p99_us=%.1f p999_us=%.1f max_us=%.1f ok=%llu invalid=%llu "
	       "missing=%llu errors=%llu wrong=%llu lost=%llu conn_errors=%llu",
	       o.addr, o.conns, o.depth, secs, (unsigned long long)answered,
	       secs > 0 ? (double)answered / secs : 0.0, h_pct(50) / 1e3, h_pct(99) / 1e3,
	       h_pct(99.9) / 1e3, (double)hist_max / 1e3, (unsigned long long)by_kind[LG_VALID],
	       (unsigned long long)by_kind[LG_INVALID], (unsigned long long)by_kind[LG_MISSING],
	       (unsigned long long)errors, (unsigned long long)wrong, (unsigned long long)lost,
	       (unsigned long long)conn_errors);
	if (o.rate > 0)
		printf(" target_rate=%.0f behind_ms=%.1f skipped=%llu", o.rate,
		       (double)behind_max * 1e3 / o.rate,
		       (unsigned long long)(due_end > issued ? due_end - issued : 0));
	if (o.ca || o.per_conn)
		printf(" tls=%d connects=%llu conn_rate=%.0f handshakes=%llu resumed=%llu",
		       o.ca != NULL, (unsigned long long)connects,
		       secs > 0 ? (double)connects / secs : 0.0, (unsigned long long)handshakes,
		       (unsigned long long)resumed);
	printf("\n");
	rc = errors ? 1 : 0;
out:
	for (unsigned i = 0; conns && i < o.conns; i++)
		conn_free(&conns[i]);
	free(conns);
	free(pfds);
	free_keys();
	SSL_SESSION_free(tls_sess);
	SSL_CTX_free(tls_ctx);
	return rc;
}
