/* SPDX-License-Identifier: Apache-2.0 */
/*
 * worker: a thread with its own libev loop, its listeners and connections.
 *
 * TCP listeners are SO_REUSEPORT sockets, one per worker, so the kernel
 * spreads accepts without a shared lock; unix sockets are one fd watched by
 * every worker (accept4 on a non-blocking fd: losers get EAGAIN).
 * Accepting is cheap (no per-connection setup beyond two buffers) and
 * bounded: over max_connections a connection is accepted and closed at once,
 * and EMFILE-like errors pause accepting for a short while instead of
 * spinning on a listener that stays readable.
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
#define ACCEPT_BACKOFF   0.1     /* seconds accepting pauses after EMFILE & co */
#define DRAIN_DEADLINE   2.0     /* seconds to answer in-flight frames at stop */

atomic_uint worker_conn_count;

/* 5 us .. 25 ms: a verdict is a hash and a lookup (a few us); the upper
 * buckets catch a starved loop, which is what an operator looks for. */
const uint64_t worker_lat_bounds_ns[WORKER_LAT_BUCKETS] = {
	5000, 10000, 25000, 50000, 100000, 250000, 500000,
	1000000, 2500000, 5000000, 10000000, 25000000,
};

static void
worker_listeners_set(struct worker *w, int on)
{
	unsigned i;

	for (i = 0; i < w->nlst; i++) {
		if (on)
			ev_io_start(w->loop, &w->lst[i].io);
		else
			ev_io_stop(w->loop, &w->lst[i].io);
	}
}

static void
worker_on_accept(struct ev_loop *loop, ev_io *io, int revents)
{
	struct worker_lst *l = io->data;
	struct worker *w = l->w;
	struct conn *c;
	int i;

	(void)loop;
	(void)revents;
	for (i = 0; i < ACCEPT_BATCH; i++) {
		int fd = accept4(l->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);

		if (fd == -1) {
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				return;
			if (errno == EINTR || errno == ECONNABORTED || errno == EPROTO)
				continue;
			/* EMFILE, ENFILE, ENOBUFS, ENOMEM: the pending connection
			 * stays queued and the fd readable; retrying now would spin. */
			STAT_INC(w, accept_errors);
			log_warning("event=accept_error errno=%d error=\"%s\" action=pause_accept pause_ms=%d",
			    errno, strerror(errno), (int)(ACCEPT_BACKOFF * 1000));
			worker_listeners_set(w, 0);
			ev_timer_set(&w->accept_backoff, ACCEPT_BACKOFF, 0);
			ev_timer_start(w->loop, &w->accept_backoff);
			return;
		}
		if (atomic_load_explicit(&worker_conn_count, memory_order_relaxed) >=
		    snap_conf(w->snap)->max_connections) {
			STAT_INC(w, conn_refused);
			close(fd);
			continue;
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
}

static void
worker_on_backoff(struct ev_loop *loop, ev_timer *t, int revents)
{
	struct worker *w = t->data;

	(void)loop;
	(void)revents;
	if (!w->stopping)
		worker_listeners_set(w, 1);
}

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
	worker_listeners_set(w, 0);
	ev_timer_stop(w->loop, &w->accept_backoff);
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

/* Ends the loop once stopping and the last connection is gone. An
 * ev_prepare runs after the callbacks of a pass, so a connection freed in
 * one ends the loop in the same pass. */
static void
worker_on_check(struct ev_loop *loop, ev_prepare *chk, int revents)
{
	struct worker *w = chk->data;

	(void)revents;
	if (w->stopping && w->conns == NULL)
		ev_break(loop, EVBREAK_ALL);
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
	ev_init(&w->accept_backoff, worker_on_backoff);
	w->accept_backoff.data = w;
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
	l->fd = fd;
	l->shared = shared;
	l->tls = tls;
	l->w = w;
	ev_io_init(&l->io, worker_on_accept, fd, EV_READ);
	l->io.data = l;
	return 0;
}

static void *
worker_main(void *arg)
{
	struct worker *w = arg;

	log_set_worker(w->id);
	worker_listeners_set(w, 1);
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

	while (w->conns != NULL)
		conn_free(w->conns);
	for (i = 0; i < w->nlst; i++) {
		ev_io_stop(w->loop, &w->lst[i].io);
		if (!w->lst[i].shared)
			close(w->lst[i].fd);
	}
	snap_put(atomic_exchange(&w->mailbox, NULL));
	snap_put(w->snap);
	w->snap = NULL;
	ev_loop_destroy(w->loop);
	w->loop = NULL;
}
