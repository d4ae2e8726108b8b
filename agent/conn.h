/* SPDX-License-Identifier: Apache-2.0 */
/*
 * conn: one HAProxy connection and its SPOP state machine.
 *
 * Owned by one worker thread. Reads go into <rx>; every complete frame is
 * handled and its reply appended to <tx>; <tx> goes out with one write per
 * loop pass. The only frame this module ever sends unasked is
 * AGENT-DISCONNECT, and only through conn_error()/conn_close_graceful().
 */
#ifndef AGENT_CONN_H
#define AGENT_CONN_H

#include <stddef.h>
#include <stdint.h>

#include <ev.h>

struct worker;
struct ssl_st;
struct ssl_ctx_st;

enum conn_st {
	CONN_ST_HELLO_WAIT = 0,  /* accepted, waiting for HAPROXY-HELLO */
	CONN_ST_RUNNING,         /* handshake done, waiting for NOTIFY/DISCONNECT */
	CONN_ST_CLOSING,         /* last frame queued: flush <tx>, then close */
	CONN_ST_ENTRIES
};

struct conn {
	ev_io io;                /* fd readiness: EV_READ, plus EV_WRITE while <tx> is pending */
	ev_timer timer;          /* idle timeout, or the flush deadline while closing */
	int fd;
	enum conn_st st;
	uint32_t max_frame;      /* before HELLO: ours; after: negotiated */
	double last_active;      /* ev_now of the last frame received */
	uint8_t *rx;
	size_t rx_len, rx_cap;
	uint8_t *tx;
	size_t tx_off, tx_len, tx_cap;
	int rd_closed;           /* peer sent EOF */
	int wr_shut;             /* our write side is shut: lingering until EOF */
	uint64_t id;             /* for logs */
	struct ssl_st *ssl;      /* NULL: plain socket; else TLS (agent/tls.h) */
	int tls_ok;              /* TLS handshake done: SPOP bytes may flow */
	int tls_want;            /* TLS_WANT_READ/WRITE the last TLS call waits on */
	int tls_starved;         /* the last SSL_read wanted more input: what OpenSSL
	                          * holds is a partial record, the socket will wake us */
	struct worker *w;
	struct conn *prev, *next;
};

const char *conn_st_str(enum conn_st st);

/* Takes ownership of the accepted, non-blocking <fd>. NULL on allocation
 * failure (the fd is then closed). */
struct conn *conn_new(struct worker *w, int fd);
/* The same for a TLS listener: the handshake on <ctx> (which the SSL keeps a
 * reference to) completes before any SPOP byte is read. NULL on failure
 * (the fd is then closed). */
struct conn *conn_new_tls(struct worker *w, int fd, struct ssl_ctx_st *ctx);
/* Closes now, without sending anything. */
void conn_free(struct conn *c);
/* Shutdown path: answer every complete frame already received, queue
 * AGENT-DISCONNECT (status 0) and close once flushed. */
void conn_close_graceful(struct conn *c);

/*
 * The conversation without I/O, for the fuzz target: feeds <len> received
 * bytes through the state machine and hands every reply to <sink> as if the
 * socket took it all. Returns 0, or -1 once the connection is closing.
 */
typedef void conn_sink_cb(const struct conn *c, const uint8_t *p, size_t len);
int conn_feed(struct conn *c, const uint8_t *p, size_t len, int64_t now, conn_sink_cb *sink);

#endif /* AGENT_CONN_H */
