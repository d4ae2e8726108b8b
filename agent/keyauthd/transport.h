/* SPDX-License-Identifier: Apache-2.0 */
/*
 * transport: the byte stream under one SPOP connection, plain or TLS.
 *
 * conn.c holds the conversation and talks to its stream only through these
 * operations; what a call could not do now is said as TR_WANT_READ or
 * TR_WANT_WRITE, the socket readiness it waits on (a TLS read may need a
 * write and the reverse). Nothing here blocks, allocates per call, or knows
 * about SPOP. Runs on the owning worker's thread.
 */
#ifndef AGENT_TRANSPORT_H
#define AGENT_TRANSPORT_H

#include <stdbool.h>
#include <stddef.h>

struct ssl_st;
struct ssl_ctx_st;

enum transport_res {
	TR_PROGRESS = 0,         /* bytes moved (*n > 0); for handshake: done */
	TR_WANT_READ,            /* nothing now: wait until the socket is readable */
	TR_WANT_WRITE,           /* nothing now: wait until the socket is writable */
	TR_EOF,                  /* orderly end; handshake: the peer left before finishing it */
	TR_ERROR,                /* fatal (reset, broken record); handshake: peer refused */
};

/* The implementation's own state bits in struct transport.flags. */
enum transport_flag {
	TRANSPORT_F_READY   = 1u << 0,  /* handshake done (plain: from the start) */
	TRANSPORT_F_STARVED = 1u << 1,  /* the last read wanted more input: what the
	                                 * library holds is a partial record, the
	                                 * socket will signal the rest */
};

struct transport;

struct transport_ops {
	const char *name;        /* "plain", "tls" */
	/* NULL when there is none (plain); else called until TR_PROGRESS. */
	enum transport_res (*handshake)(struct transport *t);
	/* Up to <len> > 0 bytes into <buf>, count in *n. */
	enum transport_res (*recv)(struct transport *t, void *buf, size_t len, size_t *n);
	/* One write of up to <len> > 0 bytes, count in *n. After a TR_WANT_*,
	 * call again later with the same bytes (they may have moved). */
	enum transport_res (*send)(struct transport *t, const void *buf, size_t len, size_t *n);
	/* Last words (TLS close_notify, best effort), then shut the write side. */
	void (*shutdown)(struct transport *t);
	/* Bytes already taken off the socket and readable now: the socket will
	 * not signal them again. False for a partial record (see STARVED). */
	bool (*pending)(const struct transport *t);
	/* The authenticated peer's name into <buf> (always NUL-terminated):
	 * false when the peer was not asked for one. */
	bool (*peer)(const struct transport *t, char *buf, size_t len);
	/* Frees the implementation's state and closes the fd (unless -1). */
	void (*close)(struct transport *t);
};

struct transport {
	const struct transport_ops *ops;
	int fd;                  /* non-blocking socket, or -1 (no I/O: the fuzz target) */
	unsigned flags;          /* enum transport_flag */
	struct ssl_st *ssl;      /* TLS only */
};

/* A plain socket: read() and send(). Cannot fail. */
void transport_plain_init(struct transport *t, int fd);

/* A TLS server session on <fd> under <ctx> (which it keeps a reference to):
 * the handshake comes first. -1 on allocation failure (<fd> left open). */
int transport_tls_init(struct transport *t, int fd, struct ssl_ctx_st *ctx);

/* Reads and drops raw bytes from the socket, under any transport (a closing
 * connection waiting for EOF): TR_PROGRESS, TR_WANT_READ, TR_EOF or TR_ERROR. */
enum transport_res transport_discard(struct transport *t);

#endif /* AGENT_TRANSPORT_H */
