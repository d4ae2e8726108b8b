/* SPDX-License-Identifier: Apache-2.0 */
/*
 * transport_tls: the TLS implementation of transport.h over tls.c's
 * non-blocking calls (which keep OpenSSL's error queue empty).
 *
 * Read-ahead is on (tls.c): one read() may bring several records, and what
 * OpenSSL holds beyond what the caller had room for will not wake the socket
 * again, so pending() reports it and the caller feeds the read itself. But
 * SSL_has_pending() is also true for part of a record, which only the peer
 * can complete: feeding that would spin without ever polling (the BUG/MAJOR
 * of a partial record after the handshake). So a read that wanted more
 * input marks the transport STARVED, and pending() is false until the next
 * read returns bytes.
 */
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

#include "tls.h"
#include "transport.h"

/* tls.c's -2 "nothing now" with what it waits on. */
static enum transport_res
tls_want_res(int want)
{
	return want == TLS_WANT_WRITE ? TR_WANT_WRITE : TR_WANT_READ;
}

static enum transport_res
tls_tr_handshake(struct transport *t)
{
	int want = 0;

	switch (tls_handshake(t->ssl, &want)) {
	case 1:
		t->flags |= TRANSPORT_F_READY;
		return TR_PROGRESS;
	case 0:
		return tls_want_res(want);
	case -2:
		return TR_EOF;     /* the peer closed first: not its fault */
	default:
		return TR_ERROR;   /* refused */
	}
}

static enum transport_res
tls_tr_recv(struct transport *t, void *buf, size_t len, size_t *n)
{
	int want = 0;
	ssize_t r = tls_read(t->ssl, buf, len, &want);

	t->flags &= ~TRANSPORT_F_STARVED;
	if (r > 0) {
		*n = (size_t)r;
		return TR_PROGRESS;
	}
	if (r == -2) {
		t->flags |= TRANSPORT_F_STARVED;
		return tls_want_res(want);
	}
	return r == 0 ? TR_EOF : TR_ERROR;
}

static enum transport_res
tls_tr_send(struct transport *t, const void *buf, size_t len, size_t *n)
{
	int want = 0;
	/* One SSL_write: one record per batch up to 16 KB. */
	ssize_t r = tls_write(t->ssl, buf, len, &want);

	if (r >= 0) {
		*n = (size_t)r;
		return TR_PROGRESS;
	}
	return r == -2 ? tls_want_res(want) : TR_ERROR;
}

static void
tls_tr_shutdown(struct transport *t)
{
	if (t->flags & TRANSPORT_F_READY) {
		/* close_notify, best effort: the socket may be full. */
		ERR_clear_error();
		(void)SSL_shutdown(t->ssl);
		ERR_clear_error();
	}
	shutdown(t->fd, SHUT_WR);
}

static bool
tls_tr_pending(const struct transport *t)
{
	return !(t->flags & TRANSPORT_F_STARVED) && SSL_has_pending(t->ssl);
}

static bool
tls_tr_peer(const struct transport *t, char *buf, size_t len)
{
	if (!(SSL_get_verify_mode(t->ssl) & SSL_VERIFY_PEER))
		return false;
	tls_peer_subject(t->ssl, buf, len);
	return true;
}

static void
tls_tr_close(struct transport *t)
{
	SSL_free(t->ssl);   /* wipes its own record buffers */
	t->ssl = NULL;
	if (t->fd != -1)
		close(t->fd);
	t->fd = -1;
}

static const struct transport_ops tls_ops = {
	.name = "tls",
	.handshake = tls_tr_handshake,
	.recv = tls_tr_recv,
	.send = tls_tr_send,
	.shutdown = tls_tr_shutdown,
	.pending = tls_tr_pending,
	.peer = tls_tr_peer,
	.close = tls_tr_close,
};

int
transport_tls_init(struct transport *t, int fd, SSL_CTX *ctx)
{
	t->ssl = tls_conn_new(ctx, fd);
	if (t->ssl == NULL)
		return -1;
	t->ops = &tls_ops;
	t->fd = fd;
	t->flags = 0;
	return 0;
}
