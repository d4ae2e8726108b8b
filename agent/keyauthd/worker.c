/* SPDX-License-Identifier: Apache-2.0 */
/*
 * worker: a thread with its own libev loop, its listeners and connections.
 *
 * TCP listeners are SO_REUSEPORT sockets, one per worker, so the kernel
 * spreads accepts without a shared lock; unix sockets are one fd watched by
 * every worker (accept4 on a non-blocking fd: losers get EAGAIN).
 * Accepting is cheap (no per-connection setup beyond two buffers) and
 * bounded: over max_connections, or over max_connections_per_peer for the
 * connection's peer, a connection is accepted and closed at once, and
 * EMFILE-like errors pause accepting (listener.c) instead of spinning on a
 * listener that stays readable, until one of this worker's connections
 * closes or LISTENER_PAUSE has passed.
 *
 * PEERS
 * max_connections alone lets one local user (any user may connect to a
 * loopback port, or to a unix socket HAProxy's group can reach) hold every
 * slot and starve HAProxy. So connections are also counted per peer: the
 * uid on a unix listener (SO_PEERCRED), the source address on TCP and TLS.
 * The counts are shared by every worker in one small hash table under a
 * mutex, touched only on accept and close (never per request).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "conf.h"
#include "conn.h"
#include "log.h"
#include "snap.h"
#include "worker.h"

#define ACCEPT_BATCH     64      /* accepts per callback: fairness with I/O */
#define DRAIN_DEADLINE   2.0     /* seconds to answer in-flight frames at stop */

atomic_uint worker_conn_count;

/* 5 us .. 25 ms: a verdict is a hash and a lookup (a few us); the upper
 * buckets catch a starved loop, which is what an operator looks for. */
const uint64_t worker_lat_bounds_ns[WORKER_LAT_BUCKETS] = {
	5000, 10000, 25000, 50000, 100000, 250000, 500000,
	1000000, 2500000, 5000000, 10000000, 25000000,
};

/* ---- per-peer counts --------------------------------------------------------------- */

#define PEER_BUCKETS 1024        /* peers are few (HAProxy hosts, local users); chains stay short */

struct peer_ent {
	struct conn_peer id;
	unsigned n;                  /* connections open now, >= 1 */
	struct peer_ent *next;
};

static pthread_mutex_t peer_lock = PTHREAD_MUTEX_INITIALIZER;
static struct peer_ent *peer_tab[PEER_BUCKETS];

/* FNV-1a over the kind and the id. */
static unsigned
peer_hash(const struct conn_peer *p)
{
	uint32_t h = 2166136261u;
	size_t i;

	h = (h ^ p->kind) * 16777619u;
	for (i = 0; i < sizeof(p->id); i++)
		h = (h ^ p->id[i]) * 16777619u;
	return h % PEER_BUCKETS;
}

static bool
peer_same(const struct conn_peer *a, const struct conn_peer *b)
{
	return a->kind == b->kind && memcmp(a->id, b->id, sizeof(a->id)) == 0;
}

/*
 * Counts one more connection for <p> unless it holds <limit> already.
 * Returns 1 when counted, 0 when over the limit, -1 when out of memory (not
 * counted: the connection is served, and <p> is then reset to
 * CONN_PEER_NONE so that its close gives nothing back).
 */
static int
peer_take(struct conn_peer *p, unsigned limit)
{
	struct peer_ent **pp, *e;
	int r = 1;

	pthread_mutex_lock(&peer_lock);
	pp = &peer_tab[peer_hash(p)];
	for (e = *pp; e != NULL && !peer_same(&e->id, p); e = e->next)
		;
	if (e != NULL && e->n >= limit) {
		r = 0;
	} else if (e != NULL) {
		e->n++;
	} else if ((e = malloc(sizeof(*e))) != NULL) {
		e->id = *p;
		e->n = 1;
		e->next = *pp;
		*pp = e;
	} else {
		p->kind = CONN_PEER_NONE;
		r = -1;
	}
	pthread_mutex_unlock(&peer_lock);
	return r;
}

void
worker_peer_release(const struct conn_peer *p)
{
	struct peer_ent **pp, *e;

	if (p->kind == CONN_PEER_NONE)
		return;
	pthread_mutex_lock(&peer_lock);
	for (pp = &peer_tab[peer_hash(p)]; (e = *pp) != NULL; pp = &e->next) {
		if (!peer_same(&e->id, p))
			continue;
		if (--e->n == 0) {
			*pp = e->next;
			free(e);
		}
		break;
	}
	pthread_mutex_unlock(&peer_lock);
}

/* Who <fd> (accepted with address <sa>) is: its uid on a unix socket, else
 * its address. CONN_PEER_NONE when the system does not say. */
static void
peer_of(int fd, const struct sockaddr *sa, socklen_t salen, struct conn_peer *p)
{
	memset(p, 0, sizeof(*p));
	if (sa->sa_family == AF_UNIX) {
		struct ucred cr;
		socklen_t len = sizeof(cr);
		uint32_t uid;

		if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cr, &len) == -1)
			return;
		uid = (uint32_t)cr.uid;
		memcpy(p->id, &uid, sizeof(uid));
		p->kind = CONN_PEER_UID;
	} else if (sa->sa_family == AF_INET && salen >= sizeof(struct sockaddr_in)) {
		memcpy(p->id, &((const struct sockaddr_in *)(const void *)sa)->sin_addr, 4);
		p->kind = CONN_PEER_IPV4;
	} else if (sa->sa_family == AF_INET6 && salen >= sizeof(struct sockaddr_in6)) {
		memcpy(p->id, &((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr, 16);
		p->kind = CONN_PEER_IPV6;
	}
}

/* "uid 65534", "127.0.0.1", "::1" or "unknown", for logs. */
static const char *
peer_str(const struct conn_peer *p, char *buf, size_t len)
{
	uint32_t uid;

	switch (p->kind) {
	case CONN_PEER_UID:
		memcpy(&uid, p->id, sizeof(uid));
		snprintf(buf, len, "uid %u", (unsigned)uid);
		return buf;
	case CONN_PEER_IPV4:
		return inet_ntop(AF_INET, p->id, buf, (socklen_t)len) ? buf : "unknown";
	case CONN_PEER_IPV6:
		return inet_ntop(AF_INET6, p->id, buf, (socklen_t)len) ? buf : "unknown";
	}
	return "unknown";
}

/* ---- refusals ------------------------------------------------------------------------ */

enum worker_refusal {
	REFUSE_MAX_CONN = 0,         /* max_connections reached */
	REFUSE_PER_PEER,             /* the peer holds max_connections_per_peer */
	REFUSE_ENTRIES
};

/* Shared by every worker, so that a flood makes one line a second per
 * reason, not one per worker: the CLOCK_MONOTONIC ms of the last line, and
 * the refusals since then. */
static _Atomic int64_t refuse_logged_ms[REFUSE_ENTRIES];
static atomic_uint_fast64_t refuse_unlogged[REFUSE_ENTRIES];

/* Counts a refusal of <why>; logs it unless a line for that reason left less
 * than a second ago (the next line counts the ones in between). */
static void
worker_refused(struct worker *w, enum worker_refusal why, const struct conn_peer *p,
               unsigned limit)
{
	static const char *const names[REFUSE_ENTRIES] = {
		[REFUSE_MAX_CONN] = "max_connections",
		[REFUSE_PER_PEER] = "max_connections_per_peer",
	};
	struct timespec ts;
	int64_t now, last;
	char who[INET6_ADDRSTRLEN + 16];

	if (why == REFUSE_MAX_CONN)
		STAT_INC(w, conn_refused);
	else
		STAT_INC(w, conn_refused_peer);
	atomic_fetch_add_explicit(&refuse_unlogged[why], 1, memory_order_relaxed);
	clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
	now = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
	last = atomic_load_explicit(&refuse_logged_ms[why], memory_order_relaxed);
	if ((last != 0 && now - last < 1000) ||
	    !atomic_compare_exchange_strong(&refuse_logged_ms[why], &last, now))
		return;
	log_warning("event=connection_refused reason=%s limit=%u peer=%s refused=%llu "
	    "note=\"accepted and closed at once; logged at most once a second, refused counts "
	    "the refusals since the previous line\"", names[why], limit,
	    LOG_Q(peer_str(p, who, sizeof(who))),
	    (unsigned long long)atomic_exchange(&refuse_unlogged[why], 0));
}

static void
worker_on_accept(struct listener *lsn, int fd, const struct sockaddr *sa, socklen_t salen)
{
	struct worker_lst *l = lsn->arg;
	struct worker *w = l->w;
	const struct conf *cf = snap_conf(w->snap);
	struct conn_peer peer;
	struct conn *c;

	peer_of(fd, sa, salen, &peer);
	if (atomic_load_explicit(&worker_conn_count, memory_order_relaxed) >=
	    cf->max_connections) {
		close(fd);
		worker_refused(w, REFUSE_MAX_CONN, &peer, cf->max_connections);
		return;
	}
	if (peer.kind != CONN_PEER_NONE && peer_take(&peer, cf->max_conn_per_peer) == 0) {
		close(fd);
		worker_refused(w, REFUSE_PER_PEER, &peer, cf->max_conn_per_peer);
		return;
	}
	if (!l->tls)
		c = conn_new(w, fd);
	else if (w->snap->cref->tls_ctx != NULL)
		c = conn_new_tls(w, fd, w->snap->cref->tls_ctx);
	else {
		c = NULL;   /* unreachable: conf refuses TLS listeners without tls */
		close(fd);
	}
	if (c == NULL) {
		worker_peer_release(&peer);
		return;
	}
	c->peer = peer;
	STAT_INC(w, conn_total);
}

/* EMFILE & co: counted; the connections open now are what frees a descriptor. */
static void
worker_on_accept_pause(struct listener_set *s, int err)
{
	struct worker *w = s->owner;

	(void)err;
	STAT_INC(w, accept_errors);
	w->nconns_at_pause = w->nconns;
}

static const struct listener_ops worker_listener_ops = {
	.event = "accept_error",
	.batch = ACCEPT_BATCH,
	.on_accept = worker_on_accept,
	.on_pause = worker_on_accept_pause,
};

static void
worker_on_drain(struct ev_loop *loop, ev_timer *t, int revents)
{
	struct worker *w = t->data;

	(void)t;
	(void)revents;
	while (w->conns != NULL)
		conn_free(w->conns);
	ev_break(loop, EVBREAK_ALL);
}

static void
worker_begin_stop(struct worker *w)
{
	struct conn *c, *next;

	w->stopping = true;
	listener_set_stop(&w->lset);
	for (c = w->conns; c != NULL; c = next) {
		next = c->next;
		conn_close_graceful(c);
	}
	ev_timer_set(&w->drain, DRAIN_DEADLINE, 0);
	ev_timer_start(w->loop, &w->drain);
}

/* Route indexes mean nothing across configurations: start counting anew. */
static void
worker_reset_route_stats(struct worker *w, const void *cref)
{
	size_t i, j;

	for (i = 0; i <= CONF_MAX_ROUTES; i++)
		for (j = 0; j < VERDICT_ENTRIES; j++)
			atomic_store_explicit(&w->st.route_verdicts[i][j], 0, memory_order_relaxed);
	atomic_store_explicit(&w->st.routes_of, cref, memory_order_release);
}

static void
worker_on_wake(struct ev_loop *loop, ev_async *a, int revents)
{
	struct worker *w = a->data;
	struct snap *s;

	(void)loop;
	(void)revents;
	s = atomic_exchange_explicit(&w->mailbox, NULL, memory_order_acq_rel);
	if (s != NULL) {
		if (s->cref != w->snap->cref)
			worker_reset_route_stats(w, s->cref);
		snap_put(w->snap);
		w->snap = s;
	}
	if (atomic_load(&w->stop) && !w->stopping)
		worker_begin_stop(w);
}

/* Ends the loop once stopping and the last connection is gone, and resumes
 * accepting paused for want of descriptors once a connection was closed. An
 * ev_prepare runs after the callbacks of a pass, so a connection freed in
 * one acts in the same pass. */
static void
worker_on_check(struct ev_loop *loop, ev_prepare *chk, int revents)
{
	struct worker *w = chk->data;

	(void)revents;
	if (w->stopping && w->conns == NULL)
		ev_break(loop, EVBREAK_ALL);
	if (listener_set_paused(&w->lset) && w->nconns < w->nconns_at_pause)
		listener_set_resume(&w->lset);
}

int
worker_init(struct worker *w, int id, struct snap *s)
{
	memset(w, 0, sizeof(*w));
	w->id = id;
	w->loop = ev_loop_new(EVFLAG_AUTO | EVFLAG_NOSIGMASK);
	if (w->loop == NULL)
		return -1;
	w->snap = snap_get(s);
	atomic_init(&w->st.routes_of, (const void *)s->cref);
	atomic_init(&w->mailbox, NULL);
	atomic_init(&w->stop, false);
	ev_async_init(&w->wake, worker_on_wake);
	w->wake.data = w;
	ev_async_start(w->loop, &w->wake);
	listener_set_init(&w->lset, w->loop, &worker_listener_ops, w);
	ev_init(&w->drain, worker_on_drain);
	w->drain.data = w;
	ev_prepare_init(&w->idle_check, worker_on_check);
	w->idle_check.data = w;
	ev_prepare_start(w->loop, &w->idle_check);
	return 0;
}

int
worker_add_listener(struct worker *w, int fd, bool shared, bool tls)
{
	struct worker_lst *l;

	if (w->nlst == WORKER_MAX_LST)
		return -1;
	l = &w->lst[w->nlst++];
	l->shared = shared;
	l->tls = tls;
	l->w = w;
	listener_add(&w->lset, &l->lsn, fd, l);
	return 0;
}

static void *
worker_main(void *arg)
{
	struct worker *w = arg;

	log_set_worker(w->id);
	listener_set_start(&w->lset);
	ev_run(w->loop, 0);
	return NULL;
}

int
worker_start(struct worker *w)
{
	int r = pthread_create(&w->thread, NULL, worker_main, w);

	if (r != 0) {
		errno = r;
		return -1;
	}
	return 0;
}

void
worker_publish(struct worker *w, struct snap *s)
{
	struct snap *old = atomic_exchange_explicit(&w->mailbox, s, memory_order_acq_rel);

	snap_put(old);
	ev_async_send(w->loop, &w->wake);
}

void
worker_stop(struct worker *w)
{
	atomic_store(&w->stop, true);
	ev_async_send(w->loop, &w->wake);
}

void
worker_join(struct worker *w)
{
	pthread_join(w->thread, NULL);
}

void
worker_destroy(struct worker *w)
{
	unsigned i;

	listener_set_stop(&w->lset);
	while (w->conns != NULL)
		conn_free(w->conns);
	for (i = 0; i < w->nlst; i++)
		if (!w->lst[i].shared)
			close(w->lst[i].lsn.fd);
	snap_put(atomic_exchange(&w->mailbox, NULL));
	snap_put(w->snap);
	w->snap = NULL;
	ev_loop_destroy(w->loop);
	w->loop = NULL;
}
