/* SPDX-License-Identifier: Apache-2.0 */
/*
 * transport: the plain implementation (read() and send() on the socket) and
 * what every transport shares. The TLS one is in transport_tls.c.
 */
#include <errno.h>
#include <sys/socket.h>
#include <unistd.h>

#include "transport.h"

static enum transport_res
plain_recv(struct transport *t, void *buf, size_t len, size_t *n)
{
	ssize_t r = read(t->fd, buf, len);

	if (r > 0) {
		*n = (size_t)r;
		return TR_PROGRESS;
	}
	if (r == 0)
		return TR_EOF;
	return errno == EAGAIN || errno == EINTR ? TR_WANT_READ : TR_ERROR;
}

static enum transport_res
plain_send(struct transport *t, const void *buf, size_t len, size_t *n)
{
	ssize_t r = send(t->fd, buf, len, MSG_NOSIGNAL);

	if (r >= 0) {
		*n = (size_t)r;
		return TR_PROGRESS;
	}
	if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
		return TR_WANT_WRITE;
	return TR_ERROR;   /* EPIPE, ECONNRESET: a normal end */
}

static void
plain_shutdown(struct transport *t)
{
	shutdown(t->fd, SHUT_WR);
}

static bool
plain_pending(const struct transport *t)
{
	(void)t;
	return false;   /* nothing is read ahead: the socket says it all */
}

static void
plain_close(struct transport *t)
{
	if (t->fd != -1)
		close(t->fd);
	t->fd = -1;
}

static const struct transport_ops plain_ops = {
	.name = "plain",
	.handshake = NULL,
	.recv = plain_recv,
	.send = plain_send,
	.shutdown = plain_shutdown,
	.pending = plain_pending,
	.peer = NULL,
	.close = plain_close,
};

void
transport_plain_init(struct transport *t, int fd)
{
	t->ops = &plain_ops;
	t->fd = fd;
	t->flags = TRANSPORT_F_READY;
	t->ssl = NULL;
}

enum transport_res
transport_discard(struct transport *t)
{
	unsigned char sink[4096];
	size_t n;

	/* Raw bytes even under TLS: after our close_notify nothing the peer
	 * still sends is worth decrypting. */
	return plain_recv(t, sink, sizeof(sink), &n);
}
