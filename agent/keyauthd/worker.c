/* SPDX-License-Identifier: Apache-2.0 */
/*
 * worker: a thread with its own libev loop, its listeners and connections.
 *
 * TCP listeners are SO_REUSEPORT sockets, one per worker, so the kernel
 * spreads accepts without a shared lock; unix sockets are one fd watched by
 * every worker (accept4 on a non-blocking fd: losers get EAGAIN).
 * Accepting is cheap (no per-connection setup beyond two buffers) and
 * bounded: over max_connections a connection is accepted and closed at once,
 * and EMFILE-like errors pause accepting (listener.c) instead of spinning on
 * a listener that stays readable, until one of this worker's connections
 * closes or LISTENER_PAUSE has passed.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
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

static void
worker_on_accept(struct listener *lsn, int fd)
{
	struct worker_lst *l = lsn->arg;
	struct worker *w = l->w;
	struct conn *c;

	if (atomic_load_explicit(&worker_conn_count, memory_order_relaxed) >=
	    snap_conf(w->snap)->max_connections) {
		STAT_INC(w, conn_refused);
		close(fd);
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
	if (c != NULL)
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
