/* SPDX-License-Identifier: Apache-2.0 */
/*
 * fuzz_tls: the TLS-to-frames path of conn.c, driven through its real libev
 * callbacks on one end of a socketpair, with an in-process OpenSSL client (or
 * raw bytes) on the other. The first input byte picks the mode:
 *
 *   bits 0-1  0: raw bytes into the server's handshake (garbage ClientHello,
 *                truncated records, alerts);
 *             1: a real client completes the handshake, then sends the rest
 *                as SPOP bytes, one TLS record per chunk, and closes (EOF);
 *             2: a real handshake, then the rest as raw bytes on the socket
 *                (broken records after the handshake);
 *             3: as 1, ending with close_notify before EOF.
 *   bit 2     client limited to TLS 1.2 (else up to 1.3)
 *   bit 3     server requires client certificates (mTLS)
 *   bit 4     the client presents no certificate
 *   bit 5     chunks of 32x the size
 *
 * The rest is chunks as in fuzz_conn: a size byte (1 + b % 64) then the bytes.
 * Invariants: no crash; after the client's EOF the server closes within a
 * bounded number of loop passes (never a hang); in modes 1 and 3, when the
 * handshake succeeded, the plaintext the client receives is exactly what the
 * same bytes produce through conn_feed (the plain-TCP state machine), and
 * every frame in it is well formed; conn.c's I/O callback never runs more
 * than FZ_CALLS times in one loop pass (see fz_io_cb).
 *
 * The certificate below is a throwaway self-signed P-256 test certificate
 * (CN=fuzz-tls-test), used as server, client and CA certificate; time checks
 * are off so it never expires here. OpenSSL's randomness makes runs
 * non-deterministic byte-wise; the invariants above do not depend on it.
 */
#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <ev.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "conf.h"
#include "conn.h"
#include "keystore.h"
#include "log.h"
#include "snap.h"
#include "spop.h"
#include "tls.h"
#include "worker.h"

static const char fz_cert_pem[] =
    "-----BEGIN CERTIFICATE-----\n"
    "MIIBhjCCAS2gAwIBAgIUSQC9H7LpQLI5vzCNP6v+tbbYirgwCgYIKoZIzj0EAwIw\n"
    "GDEWMBQGA1UEAwwNZnV6ei10bHMtdGVzdDAgFw0yNjExMjgwNjM5MDdaGA8yMTI2\n"
    "MTEwNDA2MzkwN1owGDEWMBQGA1UEAwwNZnV6ei10bHMtdGVzdDBZMBMGByqGSM49\n"
    "AgEGCCqGSM49AwEHA0IABCQpLFSOulfA1X5ETPBzLnxZdqkDknHdqRUQ897dNnKT\n"
    "D9TyniscA8SaGq/QGQ1d1vRequCw3hmVlctjhNUneM6jUzBRMB0GA1UdDgQWBBQV\n"
    "1n1gacGSuS5hFdCtq5PvUa3v+DAfBgNVHSMEGDAWgBQV1n1gacGSuS5hFdCtq5Pv\n"
    "Ua3v+DAPBgNVHRMBAf8EBTADAQH/MAoGCCqGSM49BAMCA0cAMEQCIC4+7hMW1fVX\n"
    "TOOU0kWpZPTChD3x7wzsAQXfwnZtYorvAiAi5dGijiVLHiUr+ftDAgkiCON5sOYZ\n"
    "dFNcQ0TbfciQ/Q==\n"
    "-----END CERTIFICATE-----\n";

static const char fz_key_pem[] =
    "-----BEGIN PRIVATE KEY-----\n"
    "MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgOGaCL/hWtWHcT52j\n"
    "hRluY4Zelet+INOtR++l2BxW/nyhRANCAAQkKSxUjrpXwNV+REzwcy58WXapA5Jx\n"
    "3akVEPPe3TZykw/U8p4rHAPEmhqv0BkNXdb0XqrgsN4ZlZXLY4TVJ3jO\n"
    "-----END PRIVATE KEY-----\n";

#define FZ_RAW_HS      0
#define FZ_SPOP        1
#define FZ_RAW_AFTER   2
#define FZ_SPOP_NOTIFY 3

#define FZ_F_TLS12     0x04
#define FZ_F_MTLS      0x08
#define FZ_F_NO_CERT   0x10
#define FZ_F_BIG       0x20

#define FZ_PASSES      20000   /* loop passes allowed for any phase: a "hang" beyond */
#define FZ_OUT_MAX     (4u << 20)

static struct snap *fz_snap;
static struct ev_loop *fz_loop;
static SSL_CTX *fz_srv, *fz_srv_mtls, *fz_cli, *fz_cli_anon;
static int fz_tolerate_refeed;   /* see fz_io_cb */

/* A growable byte string: the plaintext one side received. */
struct fz_buf {
	uint8_t *p;
	size_t len, cap;
};

static void
fz_buf_add(struct fz_buf *b, const uint8_t *p, size_t len)
{
	if (len == 0)
		return;
	if (b->len + len > FZ_OUT_MAX)
		abort();   /* far more output than any input here can cause */
	if (b->len + len > b->cap) {
		size_t cap = b->cap != 0 ? b->cap : 4096;

		while (cap < b->len + len)
			cap *= 2;
		b->p = realloc(b->p, cap);
		if (b->p == NULL)
			abort();
		b->cap = cap;
	}
	memcpy(b->p + b->len, p, len);
	b->len += len;
}

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
fz_write_tmp(char *path, const char *text)
{
	int fd = mkstemp(path);
	size_t len = strlen(text);

	if (fd == -1 || write(fd, text, len) != (ssize_t)len)
		abort();
	close(fd);
}

/* Certificate and key as the server reads them (files), then without time
 * checks so the fixed certificate stays valid whatever the clock says. */
static SSL_CTX *
fz_server_ctx(int mtls)
{
	char cert[] = "/tmp/fuzz_tls_cert_XXXXXX";
	char key[] = "/tmp/fuzz_tls_key_XXXXXX";
	char err[512];
	struct tls_conf tc;
	SSL_CTX *ctx;

	fz_write_tmp(cert, fz_cert_pem);
	fz_write_tmp(key, fz_key_pem);
	memset(&tc, 0, sizeof(tc));
	tc.cert = cert;
	tc.key = key;
	tc.ca = mtls ? cert : NULL;
	ctx = tls_ctx_new(&tc, err, sizeof(err));
	unlink(cert);
	unlink(key);
	if (ctx == NULL) {
		fprintf(stderr, "fuzz_tls: %s\n", err);
		abort();
	}
	X509_VERIFY_PARAM_set_flags(SSL_CTX_get0_param(ctx), X509_V_FLAG_NO_CHECK_TIME);
	return ctx;
}

static SSL_CTX *
fz_client_ctx(int with_cert)
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
	BIO *b = BIO_new_mem_buf(fz_cert_pem, -1);
	X509 *x = PEM_read_bio_X509(b, NULL, NULL, NULL);
	EVP_PKEY *k;

	BIO_free(b);
	if (ctx == NULL || x == NULL || X509_STORE_add_cert(SSL_CTX_get_cert_store(ctx), x) != 1)
		abort();
	SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
	X509_VERIFY_PARAM_set_flags(SSL_CTX_get0_param(ctx), X509_V_FLAG_NO_CHECK_TIME);
	if (with_cert) {
		b = BIO_new_mem_buf(fz_key_pem, -1);
		k = PEM_read_bio_PrivateKey(b, NULL, NULL, NULL);
		BIO_free(b);
		if (k == NULL || SSL_CTX_use_certificate(ctx, x) != 1 ||
		    SSL_CTX_use_PrivateKey(ctx, k) != 1)
			abort();
		EVP_PKEY_free(k);
	}
	X509_free(x);
	return ctx;
}

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	static const char cfg[] =
	    "store = { backend = \"file\"; path = \"/nonexistent/keys.db\"; };\n"
	    "routes = ( { name = \"openai\"; context = \"/openai\"; } );\n";
	char path[] = "/tmp/fuzz_tls_XXXXXX";
	char err[1024];
	struct conf *c;
	struct conf_ref *cref;
	struct ks_set *ks;

	(void)argc;
	(void)argv;
	/* A peer that closes first must not kill the fuzzer through SSL_write. */
	signal(SIGPIPE, SIG_IGN);
	log_init("fuzz_tls", LOG_ERR, LOG_TARGET_STDERR);
	fz_write_tmp(path, cfg);
	c = conf_load(path, err, sizeof(err));
	unlink(path);
	if (c == NULL) {
		fprintf(stderr, "%s\n", err);
		abort();
	}
	cref = conf_ref_new(c);
	ks = ks_set_empty();
	fz_snap = snap_new(cref, ks, 1);
	conf_ref_put(cref);
	ks_set_unref(ks);
	/* poll(2): no kernel state kept across the fds that each run reuses. */
	fz_tolerate_refeed = getenv("FUZZ_TLS_TOLERATE_REFEED") != NULL;
	fz_loop = ev_loop_new(EVBACKEND_POLL);
	if (fz_loop == NULL)
		abort();
	fz_srv = fz_server_ctx(0);
	fz_srv_mtls = fz_server_ctx(1);
	fz_cli = fz_client_ctx(1);
	fz_cli_anon = fz_client_ctx(0);
	return 0;
}

/* ---- one run ------------------------------------------------------------- */

struct fz_run {
	struct worker w;         /* the server's worker: one connection at most */
	int cfd;                 /* client end of the socketpair */
	SSL *cli;                /* the client's TLS, NULL in raw modes */
	int cli_ok;              /* client handshake done */
	int cli_eof;             /* the client's TLS session ended (close_notify, EOF, alert) */
	struct fz_buf out;       /* plaintext the client received */
};

static struct conn *
fz_server(struct fz_run *r)
{
	return r->w.nconns > 0 ? r->w.conns : NULL;
}

/* Reads whatever the server sent: decrypted while the client's TLS session
 * is up, discarded raw before it, without it or after it ended. */
static void
fz_client_drain(struct fz_run *r)
{
	uint8_t buf[16384];

	while (r->cli != NULL && r->cli_ok && !r->cli_eof) {
		size_t got = 0;

		if (SSL_read_ex(r->cli, buf, sizeof(buf), &got) == 1) {
			fz_buf_add(&r->out, buf, got);
			continue;
		}
		if (SSL_get_error(r->cli, 0) == SSL_ERROR_WANT_READ) {
			ERR_clear_error();
			return;
		}
		ERR_clear_error();
		r->cli_eof = 1;   /* close_notify, EOF or an alert */
	}
	while (recv(r->cfd, buf, sizeof(buf), MSG_DONTWAIT) > 0)
		;
}

/*
 * conn.c's I/O callback, counted: more than FZ_CALLS calls within one pass
 * is conn.c feeding itself an event forever, which never returns to poll()
 * (a stuck worker). With FUZZ_TLS_TOLERATE_REFEED set in the environment the
 * pending event is dropped instead, to keep exploring past that known bug.
 */
#define FZ_CALLS 1000

static void (*fz_conn_cb)(struct ev_loop *, ev_io *, int);
static unsigned fz_calls;

static void
fz_io_cb(struct ev_loop *loop, ev_io *io, int revents)
{
	if (++fz_calls > FZ_CALLS) {
		if (!fz_tolerate_refeed) {
			fprintf(stderr, "fuzz_tls: conn.c re-feeds its I/O event forever"
			    " (the worker would never poll again)\n");
			abort();
		}
		ev_clear_pending(loop, io);
		return;
	}
	fz_conn_cb(loop, io, revents);
}

/* One pass of the server's loop, then the client reads. */
static void
fz_pump(struct fz_run *r)
{
	fz_calls = 0;
	ev_run(fz_loop, EVRUN_NOWAIT);
	fz_client_drain(r);
}

static int
fz_unread(int fd)
{
	int n = 0;

	if (ioctl(fd, FIONREAD, &n) == -1)
		return 0;
	return n;
}

/* Nothing left to do on either side: no bytes in flight either way, none
 * held by OpenSSL, no reply waiting in <tx>. */
static int
fz_quiet(struct fz_run *r)
{
	struct conn *c = fz_server(r);

	if (c == NULL)
		return 1;
	if (fz_unread(c->tr.fd) != 0 || fz_unread(r->cfd) != 0)
		return 0;
	/* Not SSL_has_pending(c->ssl): it is also true for a partial record,
	 * which waits for the peer. A watcher pending means more to do. */
	if (ev_pending_count(fz_loop) != 0)
		return 0;
	if (r->cli != NULL && r->cli_ok && SSL_has_pending(r->cli))
		return 0;
	return c->tx_off == c->tx_len;
}

static void
fz_settle(struct fz_run *r)
{
	struct conn *c;
	int quiet = 0;

	for (int i = 0; i < FZ_PASSES; i++) {
		fz_pump(r);
		quiet = fz_quiet(r) ? quiet + 1 : 0;
		if (quiet == 2)
			return;
	}
	c = fz_server(r);
	fprintf(stderr, "fuzz_tls: the connection never went quiet (server: %d bytes unread,"
	    " TLS pending %d, tls_ok %d, state %s, tx %zu; client: %d bytes unread)\n",
	    fz_unread(c->tr.fd), SSL_has_pending(c->tr.ssl), !(c->flags & CONN_F_HANDSHAKE), conn_st_str(c->st),
	    c->tx_len - c->tx_off, fz_unread(r->cfd));
	abort();
}

/* Client handshake, passes of the server loop in between. */
static void
fz_client_handshake(struct fz_run *r, unsigned flags)
{
	r->cli = SSL_new((flags & FZ_F_NO_CERT) ? fz_cli_anon : fz_cli);
	if (r->cli == NULL || SSL_set_fd(r->cli, r->cfd) != 1)
		abort();
	if (flags & FZ_F_TLS12)
		SSL_set_max_proto_version(r->cli, TLS1_2_VERSION);
	SSL_set_connect_state(r->cli);
	for (int i = 0; i < FZ_PASSES; i++) {
		int ret = SSL_do_handshake(r->cli);

		if (ret == 1) {
			r->cli_ok = 1;
			ERR_clear_error();
			return;
		}
		if (SSL_get_error(r->cli, ret) != SSL_ERROR_WANT_READ &&
		    SSL_get_error(r->cli, ret) != SSL_ERROR_WANT_WRITE) {
			ERR_clear_error();
			return;   /* refused (mTLS without a certificate under 1.2) */
		}
		ERR_clear_error();
		fz_calls = 0;
		ev_run(fz_loop, EVRUN_NOWAIT);
	}
	fprintf(stderr, "fuzz_tls: the handshake never finished\n");
	abort();
}

/* One TLS record of <len> bytes; 0, or -1 once the server is gone. */
static int
fz_client_send(struct fz_run *r, const uint8_t *p, size_t len)
{
	for (int i = 0; i < FZ_PASSES; i++) {
		size_t put = 0;
		int e;

		if (SSL_write_ex(r->cli, p, len, &put) == 1)
			return 0;
		e = SSL_get_error(r->cli, 0);
		ERR_clear_error();
		if (e != SSL_ERROR_WANT_WRITE && e != SSL_ERROR_WANT_READ)
			return -1;
		fz_pump(r);
	}
	fprintf(stderr, "fuzz_tls: the server stopped reading\n");
	abort();
}

/* Raw bytes onto the socket: 0, or -1 once the server is gone. */
static int
fz_raw_send(struct fz_run *r, const uint8_t *p, size_t len)
{
	for (int i = 0; len > 0; i++) {
		ssize_t n;

		if (i == FZ_PASSES) {
			fprintf(stderr, "fuzz_tls: the server stopped reading\n");
			abort();
		}
		n = send(r->cfd, p, len, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (n == -1 && errno != EAGAIN && errno != EINTR)
			return -1;
		if (n > 0) {
			p += n;
			len -= (size_t)n;
		}
		fz_pump(r);
	}
	return 0;
}

/* ---- the plain-TCP reference ----------------------------------------------- */

static struct fz_buf fz_ref_out;
static uint32_t fz_ref_max_frame;

static void
fz_ref_sink(const struct conn *c, const uint8_t *p, size_t len)
{
	fz_ref_max_frame = c->max_frame;
	fz_buf_add(&fz_ref_out, p, len);
}

/* Every frame whole, FIN set, of an agent type, within <max_frame>. */
static void
fz_check_frames(const uint8_t *p, size_t len, uint32_t max_frame)
{
	size_t off = 0;

	while (off < len) {
		struct spop_frame f;
		int n = spop_frame_next(p + off, len - off, max_frame, &f);

		if (n <= 0)
			abort();
		if (f.type != SPOP_FRM_AGENT_HELLO && f.type != SPOP_FRM_AGENT_DISCON &&
		    f.type != SPOP_FRM_ACK)
			abort();
		off += (size_t)n;
	}
}

/* The same chunks through conn_feed, as fuzz_conn does. */
static void
fz_reference(const uint8_t *data, size_t size, size_t scale)
{
	struct worker w;
	struct conn *c;
	size_t off = 0;

	memset(&w, 0, sizeof(w));
	w.snap = fz_snap;
	fz_ref_out.len = 0;
	c = conn_new(&w, -1);
	if (c == NULL)
		abort();
	fz_ref_max_frame = c->max_frame;
	while (off < size) {
		size_t chunk = (1 + data[off] % 64) * scale;

		off++;
		if (chunk > size - off)
			chunk = size - off;
		if (conn_feed(c, data + off, chunk, 1700000000, fz_ref_sink) == -1)
			break;
		off += chunk;
	}
	conn_free(c);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fz_run r;
	int sv[2];
	unsigned flags, mode;
	size_t scale, off = 1;
	int sent_all = 1, i;

	if (size == 0)
		return 0;
	flags = data[0];
	mode = flags & 3;
	scale = (flags & FZ_F_BIG) ? 32 : 1;
	memset(&r, 0, sizeof(r));
	r.w.loop = fz_loop;
	r.w.snap = fz_snap;
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv) == -1)
		abort();
	r.cfd = sv[1];
	if (conn_new_tls(&r.w, sv[0], (flags & FZ_F_MTLS) ? fz_srv_mtls : fz_srv) == NULL)
		abort();
	fz_conn_cb = r.w.conns->io.cb;
	ev_set_cb(&r.w.conns->io, fz_io_cb);

	if (mode != FZ_RAW_HS)
		fz_client_handshake(&r, flags);
	while (off < size && fz_server(&r) != NULL) {
		size_t chunk = (1 + data[off] % 64) * scale;
		int ret;

		off++;
		if (chunk > size - off)
			chunk = size - off;
		if (chunk == 0)
			break;
		if ((mode == FZ_SPOP || mode == FZ_SPOP_NOTIFY) && r.cli_ok)
			ret = fz_client_send(&r, data + off, chunk);
		else
			ret = fz_raw_send(&r, data + off, chunk);
		if (ret == -1)
			break;
		fz_pump(&r);
		off += chunk;
	}
	sent_all = off >= size;
	fz_settle(&r);
	/* Replies to everything sent are in; now the client's end. */
	if (mode == FZ_SPOP_NOTIFY && r.cli_ok && fz_server(&r) != NULL) {
		(void)SSL_shutdown(r.cli);
		ERR_clear_error();
	}
	shutdown(r.cfd, SHUT_WR);
	for (i = 0; i < FZ_PASSES && fz_server(&r) != NULL; i++)
		fz_pump(&r);
	if (fz_server(&r) != NULL) {
		fprintf(stderr, "fuzz_tls: the server kept the connection after EOF\n");
		abort();
	}
	fz_client_drain(&r);

	/* Over TLS exactly what plain TCP answers, when the server took the
	 * handshake (not the case for mTLS without a client certificate). */
	if ((mode == FZ_SPOP || mode == FZ_SPOP_NOTIFY) && r.cli_ok && sent_all &&
	    STAT_GET(&r.w, tls_handshakes) == 1) {
		fz_reference(data + 1, size - 1, scale);
		if (r.out.len != fz_ref_out.len ||
		    (r.out.len > 0 && memcmp(r.out.p, fz_ref_out.p, r.out.len) != 0)) {
			fprintf(stderr, "fuzz_tls: TLS path answered %zu bytes, plain %zu\n",
			    r.out.len, fz_ref_out.len);
			abort();
		}
		fz_check_frames(r.out.p, r.out.len, fz_ref_max_frame);
	}
	if ((flags & FZ_F_MTLS) && (flags & FZ_F_NO_CERT) && r.out.len != 0)
		abort();   /* mTLS: not one SPOP byte without a client certificate */

	if (r.cli != NULL)
		SSL_free(r.cli);
	close(r.cfd);
	free(r.out.p);
	return 0;
}
