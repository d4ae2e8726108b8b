/* SPDX-License-Identifier: Apache-2.0 */
/*
 * tls: OpenSSL server contexts and non-blocking TLS I/O for keyauthd.
 *
 * Contexts are built once per (re)load in the main thread; the per-call
 * helpers run on worker threads. OpenSSL's error queue is per thread and
 * SSL_get_error() reads it: a stale entry from an earlier connection would
 * turn WANT_READ into a fatal error. Every helper here therefore leaves the
 * queue empty when a call fails (a call that succeeds adds nothing), rather
 * than clearing it before every call, which costs ~3% of a TLS verdict.
 *
 * Read-ahead is on: one read() brings a whole record (and whatever follows)
 * instead of a 5-byte header then the body; transport_tls.c reports the
 * bytes OpenSSL holds (SSL_has_pending) to conn.c. Record buffers stay allocated for the life of
 * the connection (no SSL_MODE_RELEASE_BUFFERS: freeing and reallocating them
 * per record cost 2-3%), and SSL_OP_CLEANSE_PLAINTEXT wipes them when they
 * are freed, since the plaintext holds clients' keys.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "conf.h"
#include "filetrust.h"
#include "log.h"
#include "tls.h"

/* An agent certificate this close to its end gets a warning at every start
 * and reload: HAProxy refuses an expired one, and then every request is 503. */
#define TLS_EXPIRY_WARN_DAYS 30

/* Session IDs from one keyauthd resume only in the same service. */
static const unsigned char tls_sid_ctx[] = "keyauthd";

/* "what path: OpenSSL's reason" into <err>, then empties the queue. */
static void
tls_err(char *err, size_t errlen, const char *what, const char *path)
{
	unsigned long e = ERR_peek_last_error();
	char reason[160] = "unknown error";

	if (e != 0)
		ERR_error_string_n(e, reason, sizeof(reason));
	if (errlen > 0)
		snprintf(err, errlen, "%s %s: %s", what, path != NULL ? path : "-", reason);
	ERR_clear_error();
}

SSL_CTX *
tls_ctx_new(const struct tls_conf *tc, char *err, size_t errlen)
{
	SSL_CTX *ctx;
	int minv = tc->min_version != 0 ? tc->min_version : TLS1_2_VERSION;

	ERR_clear_error();
	if (tc->cert == NULL || tc->key == NULL) {
		if (errlen > 0)
			snprintf(err, errlen, "tls needs both cert and key");
		return NULL;
	}
	ctx = SSL_CTX_new(TLS_server_method());
	if (ctx == NULL) {
		tls_err(err, errlen, "SSL_CTX_new", NULL);
		return NULL;
	}
	if (SSL_CTX_set_min_proto_version(ctx, minv) != 1) {
		tls_err(err, errlen, "min_version", NULL);
		goto fail;
	}
	/* No renegotiation (a CPU sink for a peer that asks in a loop), no
	 * compression (CRIME), EOF without close_notify is a plain EOF: HAProxy
	 * may just close. Single DH use is OpenSSL's default for (EC)DHE. */
	SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION |
	    SSL_OP_CIPHER_SERVER_PREFERENCE | SSL_OP_IGNORE_UNEXPECTED_EOF |
	    SSL_OP_CLEANSE_PLAINTEXT);
	/* conn.c keeps unsent bytes in its own buffer, which moves on memmove. */
	SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE |
	    SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
	SSL_CTX_set_read_ahead(ctx, 1);
	if (tc->ciphers != NULL && SSL_CTX_set_cipher_list(ctx, tc->ciphers) != 1) {
		tls_err(err, errlen, "ciphers", tc->ciphers);
		goto fail;
	}
	if (SSL_CTX_use_certificate_chain_file(ctx, tc->cert) != 1) {
		tls_err(err, errlen, "cert", tc->cert);
		goto fail;
	}
	if (SSL_CTX_use_PrivateKey_file(ctx, tc->key, SSL_FILETYPE_PEM) != 1) {
		tls_err(err, errlen, "key", tc->key);
		goto fail;
	}
	if (SSL_CTX_check_private_key(ctx) != 1) {
		tls_err(err, errlen, "key does not match cert", tc->key);
		goto fail;
	}
	/* Resumption: a server-side cache for TLS 1.2 session IDs; tickets
	 * (OpenSSL's default, keys per context) serve TLS 1.3 and 1.2. */
	SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_SERVER);
	SSL_CTX_set_session_id_context(ctx, tls_sid_ctx, sizeof(tls_sid_ctx) - 1);
	if (tc->ca != NULL) {
		STACK_OF(X509_NAME) *names;

		if (SSL_CTX_load_verify_locations(ctx, tc->ca, NULL) != 1) {
			tls_err(err, errlen, "ca", tc->ca);
			goto fail;
		}
		names = SSL_load_client_CA_file(tc->ca);
		if (names != NULL)
			SSL_CTX_set_client_CA_list(ctx, names);
		SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, NULL);
	}
	ERR_clear_error();
	return ctx;
fail:
	SSL_CTX_free(ctx);
	return NULL;
}

time_t
tls_ctx_not_after(SSL_CTX *ctx)
{
	X509 *leaf = ctx != NULL ? SSL_CTX_get0_certificate(ctx) : NULL;
	const ASN1_TIME *na = leaf != NULL ? X509_get0_notAfter(leaf) : NULL;
	struct tm tm;

	memset(&tm, 0, sizeof(tm));
	if (na == NULL || ASN1_TIME_to_tm(na, &tm) != 1) {
		ERR_clear_error();
		return 0;
	}
	return timegm(&tm);
}

/* The days left on the certificate HAProxy will verify, at every (re)load:
 * info when far, a warning within TLS_EXPIRY_WARN_DAYS, an error once past. */
static void
tls_log_expiry(SSL_CTX *ctx, const char *cert)
{
	time_t end = tls_ctx_not_after(ctx), now = time(NULL);
	long long left = end != 0 ? ((long long)end - (long long)now) / 86400 : 0;
	char when[32] = "-";
	struct tm tm;

	if (end == 0)
		return;
	if (gmtime_r(&end, &tm) != NULL)
		strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", &tm);
	if (end <= now)
		log_err("event=tls_cert_expired cert=%s not_after=%s "
		    "note=\"HAProxy refuses an expired agent certificate: renew it and reload\"",
		    LOG_V(cert), when);
	else if (left < TLS_EXPIRY_WARN_DAYS)
		log_warning("event=tls_cert_expiring cert=%s days_left=%lld not_after=%s "
		    "note=\"renew it and reload (SIGHUP) before then, or HAProxy refuses the agent\"",
		    LOG_V(cert), left, when);
	else
		log_info("event=tls_cert cert=%s days_left=%lld not_after=%s", LOG_V(cert), left,
		    when);
}

/* The TLS files decide who may pose as the agent (cert and key) or as
 * HAProxy (ca): trusted like the configuration (filetrust.h). */
static int
tls_files_trusted(const struct conf *c, char *err, size_t errlen)
{
	const char *files[] = { c->tls->cert, c->tls->key, c->tls->ca };
	struct ft_trust t;
	char why[512];

	ft_trust_for(&t, c->user);
	for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
		if (files[i] == NULL)
			continue;
		if (ft_check_path(&t, files[i], NULL, why, sizeof(why)) == -1) {
			if (errlen > 0)
				snprintf(err, errlen, "tls: %s", why);
			return -1;
		}
	}
	return 0;
}

int
tls_ctx_for_conf(const struct conf *c, SSL_CTX **out, char *err, size_t errlen)
{
	struct tls_conf tc;
	char why[400];
	bool any = false;

	*out = NULL;
	for (unsigned i = 0; i < c->nlisten; i++)
		any = any || c->listen[i].tls;
	if (!any || c->tls == NULL)
		return 0;
	if (tls_files_trusted(c, err, errlen) == -1)
		return -1;
	tc.cert = c->tls->cert;
	tc.key = c->tls->key;
	tc.ca = c->tls->ca;
	tc.ciphers = c->tls->ciphers;
	tc.min_version = c->tls->min_version;
	*out = tls_ctx_new(&tc, why, sizeof(why));
	if (*out == NULL) {
		if (errlen > 0)
			snprintf(err, errlen, "tls: %s", why);
		return -1;
	}
	tls_log_expiry(*out, tc.cert);
	return 0;
}

SSL *
tls_conn_new(SSL_CTX *ctx, int fd)
{
	SSL *s = SSL_new(ctx);

	if (s == NULL) {
		ERR_clear_error();
		return NULL;
	}
	if (SSL_set_fd(s, fd) != 1) {
		SSL_free(s);
		ERR_clear_error();
		return NULL;
	}
	SSL_set_accept_state(s);
	return s;
}

/* Maps SSL_get_error after a call that returned <r> <= 0: -2 would block
 * (with *want), 0 EOF, -1 fatal. */
static int
tls_classify(SSL *s, int r, int *want)
{
	switch (SSL_get_error(s, r)) {
	case SSL_ERROR_WANT_READ:
		*want = TLS_WANT_READ;
		return -2;
	case SSL_ERROR_WANT_WRITE:
		*want = TLS_WANT_WRITE;
		return -2;
	case SSL_ERROR_ZERO_RETURN:
		return 0;
	case SSL_ERROR_SYSCALL:
		if (errno == EAGAIN || errno == EINTR) {
			*want = TLS_WANT_READ;
			return -2;
		}
		return -1;
	default:
		return -1;
	}
}

int
tls_handshake(SSL *s, int *want)
{
	int r;

	r = SSL_do_handshake(s);
	if (r == 1)
		return 1;
	r = tls_classify(s, r, want);
	ERR_clear_error();
	return r == -2 ? 0 : r == 0 ? -2 : -1;
}

ssize_t
tls_read(SSL *s, void *buf, size_t len, int *want)
{
	size_t got = 0;
	int r;

	r = SSL_read_ex(s, buf, len, &got);
	if (r == 1)
		return (ssize_t)got;
	r = tls_classify(s, 0, want);
	ERR_clear_error();
	return r;
}

ssize_t
tls_write(SSL *s, const void *buf, size_t len, int *want)
{
	size_t put = 0;
	int r;

	r = SSL_write_ex(s, buf, len, &put);
	if (r == 1)
		return (ssize_t)put;
	r = tls_classify(s, 0, want);
	ERR_clear_error();
	return r == 0 ? -1 : r;   /* close_notify received while writing: done */
}

void
tls_peer_subject(SSL *s, char *buf, size_t len)
{
	X509 *peer = SSL_get_peer_certificate(s);
	BIO *b;
	int n;

	if (len == 0)
		return;
	snprintf(buf, len, "-");
	if (peer == NULL)
		return;
	b = BIO_new(BIO_s_mem());
	if (b != NULL && X509_NAME_print_ex(b, X509_get_subject_name(peer), 0,
	    XN_FLAG_RFC2253 & ~ASN1_STRFLGS_ESC_MSB) >= 0) {
		n = BIO_read(b, buf, (int)(len - 1 < 0x7fffffff ? len - 1 : 0x7fffffff));
		buf[n > 0 ? n : 0] = '\0';
		if (n <= 0)
			snprintf(buf, len, "-");
	}
	BIO_free(b);
	X509_free(peer);
}
