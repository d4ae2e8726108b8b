/* SPDX-License-Identifier: Apache-2.0 */
/*
 * conn: the per-connection SPOP state machine of keyauthd.
 *
 * One read() into <rx>, then every complete frame is split (spop/), handled
 * according to (state, type) and answered into <tx>; <tx> leaves in one
 * write() per pass. Runs only on the owning worker's thread.
 *
 * BACKPRESSURE
 * A frame is handled only while <tx> has room for the largest reply we build
 * (CONN_REPLY_MAX) plus a DISCONNECT. When it has not, handling stops with
 * the frame still in <rx>, EV_READ is dropped and EV_WRITE armed; once <tx>
 * drains, handling resumes where it stopped. So memory per connection is
 * bounded by rx_cap + tx_cap whatever HAProxy sends, and replies keep the
 * order of the requests.
 *
 * CLOSING
 * After the last frame (DISCONNECT, health-check HELLO, protocol error) the
 * connection flushes <tx>, shuts down its write side and discards input until
 * EOF or CONN_LINGER seconds, so the peer reads our last frame before it sees
 * a reset.
 *
 * TRANSPORT
 * Bytes come and go through c->tr (agent/keyauthd/transport.h): read()/send() for a
 * plain listener, SSL_read/one SSL_write per pass for a TLS one. Until the
 * transport's handshake is done (CONN_F_HANDSHAKE) nothing else happens.
 * What a call waits on becomes the ev_io events (a TLS write may wait on a
 * read: CONN_F_WANT_*); bytes the transport has read ahead but we had no
 * room for are re-fed as EV_READ, since the socket will not signal them
 * again. A handshake that stalls is bounded by hello_timeout like a
 * silent plain connection.
 */
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <ev.h>

#include "conf.h"
#include "conn.h"
#include "conn-int.h"
#include "keystore.h"
#include "log.h"
#include "snap.h"
#include "spop.h"
#include "transport.h"
#include "verdict.h"
#include "worker.h"

#define CONN_RX_INITIAL   4096          /* grown up to max_frame + 4 when a frame needs it */
#define CONN_TX_CAP       (64 * 1024)
#define CONN_DISCON_MAX   (SPOP_DISCONNECT_MSG_MAX + 64)
#define CONN_LINGER       1.0           /* seconds to wait for EOF after our last frame */

static atomic_uint_fast64_t conn_ids;

const char *
conn_st_str(enum conn_st st)
{
	static const char *const names[CONN_ST_ENTRIES] = {
		[CONN_ST_HELLO_WAIT] = "hello_wait",
		[CONN_ST_RUNNING]    = "running",
		[CONN_ST_CLOSING]    = "closing",
	};

	return st < CONN_ST_ENTRIES ? names[st] : "?";
}

const char *
conn_flags_str(unsigned flags, char *buf, size_t len)
{
	static const char *const names[] = {
		"rd_closed", "wr_shut", "handshake", "want_read", "want_write",
	};
	size_t off = 0;

	if (len == 0)
		return buf;
	buf[0] = '\0';
	for (unsigned i = 0; flags != 0; i++, flags >>= 1) {
		const char *name = i < sizeof(names) / sizeof(names[0]) ? names[i] : "?";
		int n;

		if (!(flags & 1))
			continue;
		n = snprintf(buf + off, len - off, "%s%s", off > 0 ? "," : "", name);
		if (n < 0 || (size_t)n >= len - off)
			return buf;   /* truncated, still terminated */
		off += (size_t)n;
	}
	if (off == 0)
		snprintf(buf, len, "-");
	return buf;
}

/* Every state change goes through here: a trace at debug level. */
static void
conn_set_st(struct conn *c, enum conn_st st)
{
	if (st != c->st && log_level() >= LOG_DEBUG) {
		char fl[64];

		log_debug("event=conn_state conn=%llu from=%s to=%s flags=%s",
		    (unsigned long long)c->id, conn_st_str(c->st), conn_st_str(st),
		    conn_flags_str(c->flags, fl, sizeof(fl)));
	}
	c->st = st;
}

static void conn_on_io(struct ev_loop *loop, ev_io *io, int revents);
static void conn_on_timer(struct ev_loop *loop, ev_timer *t, int revents);

const struct conf *
conn_conf(const struct conn *c)
{
	return snap_conf(c->w->snap);
}

/*
 * When <c> is to be closed for silence, in ev_now time; 0 for never. Running:
 * idle_timeout after the last frame. Before HELLO also hello_timeout after
 * the accept, whatever arrives meanwhile: a peer that trickles bytes, or
 * stalls a TLS handshake, never holds a slot longer than that.
 */
static double
conn_deadline(const struct conn *c)
{
	const struct conf *cf = conn_conf(c);
	double dl = cf->idle_timeout_ms > 0 ? c->last_active + cf->idle_timeout_ms / 1000.0 : 0;

	if (c->st == CONN_ST_HELLO_WAIT) {
		double hello = c->accepted + cf->hello_timeout_ms / 1000.0;

		if (dl == 0 || hello < dl)
			dl = hello;
	}
	return dl;
}

/* (Re)arms <c>'s timer for conn_deadline, or stops it when there is none. */
static void
conn_arm_deadline(struct conn *c)
{
	struct ev_loop *loop = c->w->loop;
	double dl = conn_deadline(c);

	if (dl == 0) {
		ev_timer_stop(loop, &c->timer);
		return;
	}
	c->timer.repeat = dl - ev_now(loop) > 0.001 ? dl - ev_now(loop) : 0.001;
	ev_timer_again(loop, &c->timer);
}

/* The rest of conn_new(_tls) once <c->tr> holds the fd. */
static struct conn *
conn_start(struct worker *w, struct conn *c)
{
	int fd = c->tr.fd;

	c->w = w;
	c->st = CONN_ST_HELLO_WAIT;
	if (c->tr.ops->handshake != NULL)
		c->flags |= CONN_F_HANDSHAKE;
	/* Replies leave as whole batches, one send() per pass, so Nagle only
	 * holds a batch back until HAProxy's kernel ACKs the previous one:
	 * up to a delayed-ACK timeout (40 ms) of latency on TCP (measured
	 * through HAProxy: p99 38 ms without this, 4 ms with it). Unix sockets refuse the
	 * option (EOPNOTSUPP), which is fine. */
	(void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &(int){ 1 }, sizeof(int));
	c->max_frame = snap_conf(w->snap)->max_frame_size;
	c->rx_cap = c->max_frame + SPOP_LEN_PREFIX;
	if (c->rx_cap > CONN_RX_INITIAL)
		c->rx_cap = CONN_RX_INITIAL;
	c->rx = malloc(c->rx_cap);
	c->tx_cap = CONN_TX_CAP;
	c->tx = malloc(c->tx_cap);
	if (c->rx == NULL || c->tx == NULL) {
		free(c->rx);
		free(c->tx);
		c->tr.ops->close(&c->tr);
		free(c);
		return NULL;
	}
	c->id = atomic_fetch_add_explicit(&conn_ids, 1, memory_order_relaxed) + 1;
	c->next = w->conns;
	if (w->conns != NULL)
		w->conns->prev = c;
	w->conns = c;
	w->nconns++;
	atomic_fetch_add_explicit(&worker_conn_count, 1, memory_order_relaxed);

	if (w->loop != NULL) {
		c->last_active = c->accepted = ev_now(w->loop);
		ev_io_init(&c->io, conn_on_io, fd, EV_READ);
		c->io.data = c;
		ev_io_start(w->loop, &c->io);
		ev_init(&c->timer, conn_on_timer);
		c->timer.data = c;
		conn_arm_deadline(c);
	}
	return c;
}

struct conn *
conn_new(struct worker *w, int fd)
{
	struct conn *c = calloc(1, sizeof(*c));

	if (c == NULL) {
		close(fd);
		return NULL;
	}
	transport_plain_init(&c->tr, fd);
	return conn_start(w, c);
}

struct conn *
conn_new_tls(struct worker *w, int fd, struct ssl_ctx_st *ctx)
{
	struct conn *c = calloc(1, sizeof(*c));

	if (c == NULL || transport_tls_init(&c->tr, fd, ctx) == -1) {
		free(c);
		close(fd);
		return NULL;
	}
	return conn_start(w, c);
}

void
conn_free(struct conn *c)
{
	struct worker *w;

	if (c == NULL)
		return;
	w = c->w;
	if (w->loop != NULL) {
		ev_io_stop(w->loop, &c->io);
		ev_timer_stop(w->loop, &c->timer);
	}
	c->tr.ops->close(&c->tr);
	if (c->prev != NULL)
		c->prev->next = c->next;
	else
		w->conns = c->next;
	if (c->next != NULL)
		c->next->prev = c->prev;
	w->nconns--;
	atomic_fetch_sub_explicit(&worker_conn_count, 1, memory_order_relaxed);
	worker_peer_release(&c->peer);
	/* <rx> may have held keys in clear. */
	explicit_bzero(c->rx, c->rx_cap);
	free(c->rx);
	free(c->tx);
	free(c);
}

/* ---- replies ------------------------------------------------------------- */

size_t
tx_room(struct conn *c)
{
	if (c->tx_off == c->tx_len) {
		c->tx_off = c->tx_len = 0;
	} else if (c->tx_off > 0 && c->tx_cap - c->tx_len < CONN_REPLY_MAX + CONN_DISCON_MAX) {
		memmove(c->tx, c->tx + c->tx_off, c->tx_len - c->tx_off);
		c->tx_len -= c->tx_off;
		c->tx_off = 0;
	}
	return c->tx_cap - c->tx_len;
}

/* Queues AGENT-DISCONNECT(<status>) after what is already in <tx>, drops
 * unprocessed input and moves to CLOSING. The only way a connection ends
 * with an error. */
void
conn_error(struct conn *c, int status)
{
	size_t room = tx_room(c);
	int n;

	n = spop_agent_disconnect_build(c->tx + c->tx_len, room, (uint32_t)status, NULL);
	if (n > 0)
		c->tx_len += (size_t)n;
	if (status > 0 && status < 14)
		STAT_INC(c->w, proto_errors[status]);
	else if (status != 0)
		STAT_INC(c->w, proto_errors[0]);
	if (status != SPOP_ERR_NONE && conn_log_budget(c->w))
		log_msg(LOG_NOTICE, "event=protocol_error conn=%llu state=%s status=%d reason=%s",
		    (unsigned long long)c->id, conn_st_str(c->st), status, LOG_Q(spop_err_str(status)));
	c->rx_len = 0;
	conn_set_st(c, CONN_ST_CLOSING);
}

/* ---- frame handlers -------------------------------------------------------- */

static void
handle_hello(struct conn *c, const struct spop_frame *f)
{
	struct spop_hello h;
	uint32_t mfs;
	int r;

	r = spop_hello_parse(f->payload, f->payload_len, &h);
	if (r < 0) {
		conn_error(c, -r);
		return;
	}
	mfs = spop_negotiate_frame_size(conn_conf(c)->max_frame_size, h.max_frame_size);
	r = spop_agent_hello_build(c->tx + c->tx_len, tx_room(c), mfs);
	if (r < 0) {
		conn_error(c, SPOP_ERR_RES);
		return;
	}
	c->tx_len += (size_t)r;
	c->max_frame = mfs;
	STAT_INC(c->w, handshakes);
	if (h.healthcheck) {
		STAT_INC(c->w, healthchecks);
		conn_set_st(c, CONN_ST_CLOSING);
		return;
	}
	conn_set_st(c, CONN_ST_RUNNING);
	if (c->w->loop != NULL)
		conn_arm_deadline(c);
}

static void
handle_disconnect(struct conn *c, const struct spop_frame *f)
{
	struct spop_disconnect d;
	uint32_t status = SPOP_ERR_NONE;
	int n;

	if (spop_disconnect_parse(f->payload, f->payload_len, &d) == 0 && d.status <= 13)
		status = d.status;
	log_debug("event=haproxy_disconnect conn=%llu status=%u", (unsigned long long)c->id, d.status);
	n = spop_agent_disconnect_build(c->tx + c->tx_len, tx_room(c), status, NULL);
	if (n > 0)
		c->tx_len += (size_t)n;
	conn_set_st(c, CONN_ST_CLOSING);
}

/* Handles every complete frame in <rx> while <tx> has room (see BACKPRESSURE). */
static void
conn_process_frames(struct conn *c, int64_t now)
{
	size_t off = 0;

	while (c->st != CONN_ST_CLOSING && off < c->rx_len) {
		struct spop_frame f;
		int n;

		if (tx_room(c) < CONN_REPLY_MAX + CONN_DISCON_MAX)
			break;
		n = spop_frame_next(c->rx + off, c->rx_len - off, c->max_frame, &f);
		if (n == 0) {
			/* Incomplete: make room for the whole frame now that its
			 * length (already checked against max_frame) is known. */
			if (c->rx_len - off >= SPOP_LEN_PREFIX) {
				const uint8_t *p = c->rx + off;
				size_t need = ((size_t)p[0] << 24 | (size_t)p[1] << 16 |
				    (size_t)p[2] << 8 | p[3]) + SPOP_LEN_PREFIX;

				if (need > c->rx_cap) {
					uint8_t *nrx = malloc(need);

					if (nrx == NULL) {
						conn_error(c, SPOP_ERR_RES);
						return;
					}
					memcpy(nrx, c->rx + off, c->rx_len - off);
					explicit_bzero(c->rx, c->rx_cap);
					free(c->rx);
					c->rx = nrx;
					c->rx_cap = need;
					c->rx_len -= off;
					off = 0;
				}
			}
			break;
		}
		if (n < 0) {
			conn_error(c, -n);
			return;
		}
		STAT_INC(c->w, frames_in);
		switch (c->st) {
		case CONN_ST_HELLO_WAIT:
			if (f.type == SPOP_FRM_HAPROXY_HELLO)
				handle_hello(c, &f);
			else
				conn_error(c, SPOP_ERR_INVALID);
			break;
		case CONN_ST_RUNNING:
			if (f.type == SPOP_FRM_NOTIFY)
				conn_handle_notify(c, &f, now);
			else if (f.type == SPOP_FRM_HAPROXY_DISCON)
				handle_disconnect(c, &f);
			else if (f.type == SPOP_FRM_HAPROXY_HELLO)
				conn_error(c, SPOP_ERR_INVALID);
			/* Other types: skipped by their length (PROTOCOL.md §1.2). */
			break;
		default:
			break;
		}
		if (c->st == CONN_ST_CLOSING && c->rx_len == 0)
			return;   /* conn_error() dropped the input */
		off += (size_t)n;
	}
	if (off > 0) {
		memmove(c->rx, c->rx + off, c->rx_len - off);
		c->rx_len -= off;
	}
}

/* conn_process_frames, timed: the verdicts given are counted in the worker's
 * latency histogram (worker_lat_observe: two clock reads per batch). */
static void
conn_process(struct conn *c, int64_t now)
{
	struct timespec t0;

	clock_gettime(CLOCK_MONOTONIC, &t0);
	conn_process_frames(c, now);
	worker_lat_observe(c->w, &t0);
}

int
conn_feed(struct conn *c, const uint8_t *p, size_t len, int64_t now, conn_sink_cb *sink)
{
	while (len > 0 && c->st != CONN_ST_CLOSING) {
		size_t take = c->rx_cap - c->rx_len;

		if (take > len)
			take = len;
		memcpy(c->rx + c->rx_len, p, take);
		c->rx_len += take;
		p += take;
		len -= take;
		conn_process(c, now);
		sink(c, c->tx + c->tx_off, c->tx_len - c->tx_off);
		c->tx_off = c->tx_len = 0;
		/* Frames left behind by backpressure go now that <tx> is empty. */
		conn_process(c, now);
		sink(c, c->tx + c->tx_off, c->tx_len - c->tx_off);
		c->tx_off = c->tx_len = 0;
	}
	return c->st == CONN_ST_CLOSING ? -1 : 0;
}

/* ---- I/O ------------------------------------------------------------------------ */

/* The ev_io events the transport's last call waits on. */
static int
conn_want_ev(const struct conn *c)
{
	return ((c->flags & CONN_F_WANT_READ) ? EV_READ : 0) |
	    ((c->flags & CONN_F_WANT_WRITE) ? EV_WRITE : 0);
}

static void
conn_update_events(struct conn *c)
{
	int ev = 0;

	if (c->flags & CONN_F_HANDSHAKE) {
		ev = conn_want_ev(c) != 0 ? conn_want_ev(c) : EV_READ;
		goto set;
	}
	if (c->tx_off < c->tx_len)
		ev |= EV_WRITE;
	/* Read while there is room to answer; in CLOSING only after the last
	 * frame left, to drain until EOF. */
	if (c->st == CONN_ST_CLOSING) {
		if (!(ev & EV_WRITE))
			ev |= EV_READ;
	} else if (tx_room(c) >= CONN_REPLY_MAX + CONN_DISCON_MAX && c->rx_len < c->rx_cap &&
	    !(c->flags & CONN_F_RD_CLOSED)) {
		ev |= EV_READ;
	}
	if (c->st != CONN_ST_CLOSING) {
		/* A TLS write may need a read (and the reverse) mid-record. */
		ev |= conn_want_ev(c);
		/* Bytes the transport already took off the socket (read-ahead)
		 * wake nobody: feed the read again. pending() is false for part
		 * of a record, which feeding would spin on without ever polling. */
		if ((ev & EV_READ) && c->tr.ops->pending(&c->tr))
			ev_feed_event(c->w->loop, &c->io, EV_READ);
	}
set:
	if (ev != (c->io.events & (EV_READ | EV_WRITE))) {
		ev_io_stop(c->w->loop, &c->io);
		ev_io_set(&c->io, c->tr.fd, ev);
		if (ev != 0)
			ev_io_start(c->w->loop, &c->io);
	}
}

/* Writes what <tx> holds with one transport send. Returns 0, or -1 if the
 * peer is gone. */
static int
conn_flush(struct conn *c)
{
	size_t n = 0;

	if (c->tx_off == c->tx_len)
		return 0;
	c->flags &= ~CONN_F_WANT;
	switch (c->tr.ops->send(&c->tr, c->tx + c->tx_off, c->tx_len - c->tx_off, &n)) {
	case TR_PROGRESS:
		c->tx_off += n;
		if (c->tx_off == c->tx_len)
			c->tx_off = c->tx_len = 0;
		return 0;
	case TR_WANT_READ:
		c->flags |= CONN_F_WANT_READ;
		return 0;
	case TR_WANT_WRITE:
		return 0;   /* pending <tx> arms EV_WRITE anyway */
	default:
		return -1;  /* EPIPE, ECONNRESET: a normal end */
	}
}

static void
conn_enter_linger(struct conn *c)
{
	if (c->flags & CONN_F_WR_SHUT)
		return;
	c->flags |= CONN_F_WR_SHUT;
	c->tr.ops->shutdown(&c->tr);
	c->timer.repeat = CONN_LINGER;
	ev_timer_again(c->w->loop, &c->timer);
}

/* Reads into the free end of <rx>; *n is what came. */
static enum transport_res
conn_recv(struct conn *c, size_t *n)
{
	enum transport_res r;

	if (c->rx_len == c->rx_cap)   /* armed only for a write that waits on a read */
		return TR_WANT_READ;
	c->flags &= ~CONN_F_WANT;
	r = c->tr.ops->recv(&c->tr, c->rx + c->rx_len, c->rx_cap - c->rx_len, n);
	/* Only the cross case (a read that needs a write) is kept: a read
	 * waiting for input is what EV_READ already means. */
	if (r == TR_WANT_WRITE)
		c->flags |= CONN_F_WANT_WRITE;
	return r;
}

/* Advances the transport's handshake. Returns 0 (done or in progress:
 * CONN_F_HANDSHAKE says which) or -1 when the peer is refused or gone. */
static int
conn_handshake(struct conn *c)
{
	char subj[256];

	c->flags &= ~CONN_F_WANT;
	switch (c->tr.ops->handshake(&c->tr)) {
	case TR_WANT_READ:
		c->flags |= CONN_F_WANT_READ;
		return 0;
	case TR_WANT_WRITE:
		c->flags |= CONN_F_WANT_WRITE;
		return 0;
	case TR_EOF:
		return -1;   /* closed before finishing: not the peer's fault, not counted */
	case TR_ERROR:
		STAT_INC(c->w, tls_handshake_failures);
		if (conn_log_budget(c->w))
			log_notice("event=tls_handshake_failed conn=%llu", (unsigned long long)c->id);
		return -1;
	case TR_PROGRESS:
		break;
	}
	c->flags &= ~CONN_F_HANDSHAKE;
	STAT_INC(c->w, tls_handshakes);
	if (c->tr.ops->peer != NULL && c->tr.ops->peer(&c->tr, subj, sizeof(subj)) &&
	    conn_log_budget(c->w))
		log_info("event=tls_client conn=%llu subject=%s", (unsigned long long)c->id,
		    LOG_Q(subj));
	return 0;
}

/* EV_READ outside CLOSING: read and handle. Returns -1 once <c> is freed. */
static int
conn_on_readable(struct conn *c, int64_t now)
{
	size_t n = 0;

	switch (conn_recv(c, &n)) {
	case TR_PROGRESS:
		c->rx_len += n;
		c->last_active = ev_now(c->w->loop);
		conn_process(c, now);
		return 0;
	case TR_WANT_READ:
	case TR_WANT_WRITE:
		return 0;
	default:
		/* EOF, ECONNRESET: a normal close. Whatever was answered is
		 * flushed if the socket still takes it. */
		c->flags |= CONN_F_RD_CLOSED;
		if (c->tx_off == c->tx_len || conn_flush(c) == -1 || c->tx_off == c->tx_len) {
			conn_free(c);
			return -1;
		}
		return 0;
	}
}

static void
conn_on_io(struct ev_loop *loop, ev_io *io, int revents)
{
	struct conn *c = io->data;
	int64_t now = (int64_t)ev_now(loop);

	if (c->flags & CONN_F_HANDSHAKE) {
		if (conn_handshake(c) == -1) {
			conn_free(c);
			return;
		}
		if (c->flags & CONN_F_HANDSHAKE) {
			conn_update_events(c);
			return;
		}
		revents |= EV_READ;   /* HELLO may have come with the Finished */
	} else if ((revents & EV_WRITE) && (c->flags & CONN_F_WANT_WRITE)) {
		revents |= EV_READ;   /* the read that needed this write, again */
	}

	if (revents & EV_READ) {
		if (c->st == CONN_ST_CLOSING) {
			enum transport_res r = transport_discard(&c->tr);

			if (r == TR_EOF || r == TR_ERROR) {
				conn_free(c);
				return;
			}
		} else if (conn_on_readable(c, now) == -1) {
			return;
		}
	}
	if (c->tx_off < c->tx_len) {
		if (conn_flush(c) == -1) {
			conn_free(c);
			return;
		}
		/* Frames left in <rx> by backpressure can go now. */
		if (c->tx_off == c->tx_len && c->st != CONN_ST_CLOSING && c->rx_len > 0) {
			conn_process(c, now);
			if (conn_flush(c) == -1) {
				conn_free(c);
				return;
			}
		}
	}
	if ((c->flags & CONN_F_RD_CLOSED) && c->tx_off == c->tx_len) {
		conn_free(c);
		return;
	}
	if (c->st == CONN_ST_CLOSING && c->tx_off == c->tx_len)
		conn_enter_linger(c);
	conn_update_events(c);
}

static void
conn_on_timer(struct ev_loop *loop, ev_timer *t, int revents)
{
	struct conn *c = t->data;
	double dl;

	(void)revents;
	if (c->st == CONN_ST_CLOSING) {
		/* Linger or flush deadline passed. */
		conn_free(c);
		return;
	}
	dl = conn_deadline(c);
	if (dl == 0 || dl - ev_now(loop) > 0.001) {
		conn_arm_deadline(c);
		return;
	}
	if (c->st == CONN_ST_HELLO_WAIT)
		STAT_INC(c->w, hello_timeouts);
	if (c->flags & CONN_F_HANDSHAKE) {
		/* A TLS handshake never finished: nothing can be said to that
		 * peer in SPOP. */
		conn_free(c);
		return;
	}
	log_debug("event=%s conn=%llu state=%s",
	    c->st == CONN_ST_HELLO_WAIT ? "hello_timeout" : "idle_timeout",
	    (unsigned long long)c->id, conn_st_str(c->st));
	conn_error(c, SPOP_ERR_TOUT);
	/* Give the DISCONNECT CONN_LINGER seconds to leave. */
	t->repeat = CONN_LINGER;
	ev_timer_again(loop, t);
	if (conn_flush(c) == -1) {
		conn_free(c);
		return;
	}
	if (c->tx_off == c->tx_len)
		conn_enter_linger(c);
	conn_update_events(c);
}

void
conn_close_graceful(struct conn *c)
{
	struct ev_loop *loop = c->w->loop;

	if (c->flags & CONN_F_HANDSHAKE) {
		conn_free(c);   /* no SPOP session yet: nothing to say goodbye to */
		return;
	}
	if (c->st != CONN_ST_CLOSING) {
		/* Answer what already arrived, then say goodbye. */
		for (;;) {
			size_t n = 0;

			if (c->rx_len == c->rx_cap || tx_room(c) < CONN_REPLY_MAX + CONN_DISCON_MAX)
				break;
			if (conn_recv(c, &n) != TR_PROGRESS)
				break;
			c->rx_len += n;
			conn_process(c, (int64_t)ev_now(loop));
			if (c->st == CONN_ST_CLOSING)
				break;
		}
		if (c->st != CONN_ST_CLOSING) {
			conn_process(c, (int64_t)ev_now(loop));
			if (c->st != CONN_ST_CLOSING) {
				int n = spop_agent_disconnect_build(c->tx + c->tx_len, tx_room(c),
				    SPOP_ERR_NONE, "agent shutting down");

				if (n > 0)
					c->tx_len += (size_t)n;
				conn_set_st(c, CONN_ST_CLOSING);
			}
		}
	}
	if (conn_flush(c) == -1) {
		conn_free(c);
		return;
	}
	c->timer.repeat = CONN_LINGER;   /* flush deadline, then linger */
	ev_timer_again(loop, &c->timer);
	if (c->tx_off == c->tx_len)
		conn_enter_linger(c);
	conn_update_events(c);
}
