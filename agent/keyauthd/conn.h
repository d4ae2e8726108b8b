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

#include "transport.h"

struct worker;
struct ssl_ctx_st;

enum conn_st {
	CONN_ST_HELLO_WAIT = 0,  /* accepted, waiting for HAPROXY-HELLO */
	CONN_ST_RUNNING,         /* handshake done, waiting for NOTIFY/DISCONNECT */
	CONN_ST_CLOSING,         /* last frame queued: flush <tx>, then close */
	CONN_ST_ENTRIES
};

/* struct conn.flags */
enum conn_flag {
	CONN_F_RD_CLOSED  = 1u << 0,  /* peer sent EOF (or reset) */
	CONN_F_WR_SHUT    = 1u << 1,  /* our write side is shut: lingering until EOF */
	CONN_F_HANDSHAKE  = 1u << 2,  /* transport handshake (TLS) under way: no SPOP byte yet */
	CONN_F_WANT_READ  = 1u << 3,  /* the transport's last call (a write) waits on EV_READ */
	CONN_F_WANT_WRITE = 1u << 4,  /* the transport's last call (a read) waits on EV_WRITE */
};
#define CONN_F_WANT (CONN_F_WANT_READ | CONN_F_WANT_WRITE)

/* Who a connection comes from, for max_connections_per_peer. */
enum conn_peer_kind {
	CONN_PEER_NONE = 0,      /* not counted (fuzz targets, no memory for the entry) */
	CONN_PEER_UID,           /* unix listener: the peer's uid (SO_PEERCRED) */
	CONN_PEER_IPV4,          /* TCP or TLS listener: the source address */
	CONN_PEER_IPV6,
};

struct conn_peer {
	uint8_t kind;            /* enum conn_peer_kind */
	uint8_t id[16];          /* the uid (host order) or the address; rest zero */
};

struct conn {
	ev_io io;                /* fd readiness: EV_READ, plus EV_WRITE while <tx> is pending */
	ev_timer timer;          /* idle timeout, or the flush deadline while closing */
	struct transport tr;     /* the byte stream: plain or TLS (agent/keyauthd/transport.h) */
	enum conn_st st;
	unsigned flags;          /* enum conn_flag */
	uint32_t max_frame;      /* before HELLO: ours; after: negotiated */
	double last_active;      /* ev_now of the last frame received */
	double accepted;         /* ev_now at accept: hello_timeout counts from it */
	struct conn_peer peer;   /* counted in the worker's peer table until conn_free */
	uint8_t *rx;
	size_t rx_len, rx_cap;
	uint8_t *tx;
	size_t tx_off, tx_len, tx_cap;
	uint64_t id;             /* for logs */
	struct worker *w;
	struct conn *prev, *next;
};

const char *conn_st_str(enum conn_st st);
/* <flags> as "rd_closed,wr_shut,..." ("-" for none, "?" for an unknown bit)
 * into <buf>, always NUL-terminated (truncated to <len>). Returns <buf>. */
const char *conn_flags_str(unsigned flags, char *buf, size_t len);

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
