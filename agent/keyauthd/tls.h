/* SPDX-License-Identifier: Apache-2.0 */
/*
 * tls: OpenSSL server contexts and non-blocking TLS I/O for keyauthd.
 *
 * A context is an SSL_CTX built in the main thread from a struct tls_conf and
 * shared read-only by the workers; OpenSSL refcounts it (every SSL holds a
 * reference), so a reload publishes a new one while established connections
 * keep theirs. The I/O calls never block: they report what the socket must
 * become ready for, as TLS_WANT_READ/TLS_WANT_WRITE, which the caller maps
 * onto its ev_io events (EV_READ/EV_WRITE have the same meaning).
 */
#ifndef AGENT_TLS_H
#define AGENT_TLS_H

#include <stddef.h>
#include <sys/types.h>
#include <time.h>

#include <openssl/ssl.h>

/* What the listener's "tls" group says; every string may be NULL. */
struct tls_conf {
	const char *cert;        /* PEM chain, leaf first (required) */
	const char *key;         /* PEM private key (required) */
	const char *ca;          /* PEM CA bundle: set = client certificates required (mTLS) */
	const char *ciphers;     /* TLS 1.2 cipher list; NULL = OpenSSL's default */
	int min_version;         /* TLS1_2_VERSION (default when 0) or TLS1_3_VERSION */
};

enum {
	TLS_WANT_READ  = 0x01,   /* same bits as EV_READ */
	TLS_WANT_WRITE = 0x02,   /* same bits as EV_WRITE */
};


/* Builds a server context: certificate and key loaded and checked against
 * each other, TLS >= min_version, renegotiation off, compression off, a
 * server-side session cache and tickets for resumption, peer verification
 * required when <ca> is set. NULL with a one-line reason in <err> (file and
 * OpenSSL's reason, never key material). Free with SSL_CTX_free. */
SSL_CTX *tls_ctx_new(const struct tls_conf *tc, char *err, size_t errlen);

struct conf;

/* The context keyauthd's TLS listeners serve for <c>: 0 with *out NULL when
 * no listener uses TLS, 0 with a new context, or -1 with the reason in
 * <err> (prefixed "tls: "): a bad file, or one not trusted (filetrust.h:
 * owned by root or the agent's user, writable by nobody else, nor its
 * directories). Main thread, at start and on every reload. */
int tls_ctx_for_conf(const struct conf *c, SSL_CTX **out, char *err, size_t errlen);

/* The notAfter of <ctx>'s certificate (the leaf HAProxy verifies), Unix
 * seconds; 0 when <ctx> is NULL or has none. tls_ctx_for_conf logs the days
 * left at every build: a warning within 30 days, an error once expired. */
time_t tls_ctx_not_after(SSL_CTX *ctx);

/* A non-blocking server SSL on <fd>. NULL on allocation failure. */
SSL *tls_conn_new(SSL_CTX *ctx, int fd);

/* Drives the handshake: 1 done, 0 in progress (*want says on what), -1
 * refused (garbage, bad or missing client certificate under mTLS, no common
 * version or cipher, socket error), -2 the peer closed before completing it
 * (a TCP probe, a client giving up): not the peer's fault, not counted. */
int tls_handshake(SSL *s, int *want);

/* Reads up to <len> bytes: > 0 read, 0 orderly EOF (close_notify or TCP EOF),
 * -1 fatal error, -2 nothing now (*want says on what). */
ssize_t tls_read(SSL *s, void *buf, size_t len, int *want);

/* Writes <len> > 0 bytes as one SSL_write (one record up to 16 KB): the byte
 * count written, -1 fatal error, -2 nothing now (*want says on what; call
 * again later with the same bytes: partial writes are enabled and the moving
 * buffer is accepted). */
ssize_t tls_write(SSL *s, const void *buf, size_t len, int *want);

/* The peer certificate's subject as a one-line RFC 2253 string, or "-" when
 * there is none; always NUL-terminated, truncated to <len>. */
void tls_peer_subject(SSL *s, char *buf, size_t len);

#endif /* AGENT_TLS_H */
