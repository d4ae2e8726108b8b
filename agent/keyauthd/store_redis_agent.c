/* SPDX-License-Identifier: Apache-2.0 */
/*
 * store_redis_agent: Redis as keyauthd's store backend, the asynchronous half
 * (the change feed on libev, hiredis' libev adapter). The synchronous half it
 * builds on is store_redis.c.
 *
 * Loads are synchronous on the main thread (a blocking hiredis context with
 * timeouts): workers keep answering from their snapshot meanwhile, so the
 * request path never waits on Redis. Change detection is asynchronous on the
 * main loop (hiredis libev adapter): a SUBSCRIBE to <ns>:events. Pub/sub
 * rather than keyspace notifications because it needs no server-side
 * configuration (notify-keyspace-events) and one message per write, not one
 * per touched key. Events name the changed ids: after a 50 ms debounce (a
 * burst of writes costs one load) only those records are re-read and applied
 * to the last set (ks_set_overlay: an overlay of the changes on a shared
 * base, at the cost of the changes since the base was built, whatever the
 * number of keys). Once the overlay passes ks_overlay_limit (a few thousand
 * records) a thread of the lowest priority flattens it into a new base while
 * loads go on; the ids loaded meanwhile are applied to that base
 * (ks_set_rebase) and the result is published like a load. A full load
 * drops a merge in progress; unwatch waits for it (up to about a second at
 * 1M keys). A "*" event and a resubscription trigger a full load, which
 * heals messages lost while disconnected. The first subscription after
 * watch() and every resync_interval only read <ns>:generation and do a full
 * load when it moved (see sr_current for why that is enough). While the
 * subscription is down no load is attempted (the last set keeps serving); a
 * reconnect is tried every second.
 */
#include <sys/resource.h>
#include <sys/syscall.h>

#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <ev.h>
#include <hiredis/hiredis.h>
#include <hiredis/async.h>
#include <hiredis/adapters/libev.h>

#include "conf.h"
#include "keystore.h"
#include "log.h"
#include "store.h"
#include "store_redis.h"
#include "store_redis-int.h"
#include "usage_agent.h"

#define SR_DEBOUNCE   0.05
#define SR_RECONNECT  1.0
#define SR_PEND_MAX   256        /* ids awaiting an incremental load; more: full */

struct store_redis {
	struct store_redis_client cl;    /* first: the store, its conf, keyauthctl's ops */
	struct redisContext *sync;       /* loads; reconnected on error */
	redisAsyncContext *ac;           /* subscription; NULL while down */
	struct ev_loop *loop;
	ev_timer debounce_w, resync_w, reconnect_w;
	store_changed_cb *cb;
	void *arg;
	bool connected;                  /* subscription confirmed */
	bool first_sub;                  /* no subscription confirmed since watch() */
	bool down_logged;
	bool stopping;
	bool load_failed;                /* the last load failed: the set may be behind */
	double in_sync_at;               /* ev_now / time the set was last known current; 0: never */
	uint64_t gen;                    /* <ns>:generation read by the last full load */
	bool gen_current;                /* the set is that full load's, no event since */
	uint64_t outages;
	uint64_t resyncs, resyncs_skipped, records_skipped;
	uint64_t merges;                 /* overlays merged into a new base */
	/* Incremental loads: the ids named by events since the last load, and
	 * the set that load returned (one reference). */
	char pend[SR_PEND_MAX][KEY_ID_LEN + 1];
	size_t npend;
	bool pend_full;                  /* an event said "*", or too many ids */
	struct ks_set *last;
	/* The merge of an overlay grown past ks_overlay_limit into a new base
	 * (ks_set_flatten), on a thread of the lowest priority so that the
	 * workers keep the CPU; incremental loads go on meanwhile, their ids
	 * collected, and are applied to the new base when it is ready. */
	struct {
		pthread_t th;
		bool running;
		bool stale;                  /* a full load came since: result dropped */
		struct ks_set *src;          /* the overlay merged (one reference) */
		struct ks_set *out;          /* the thread's result; NULL: failed */
		char err[256];
		char (*ids)[KEY_ID_LEN + 1]; /* ids loaded since <src> */
		size_t nids, cap;
		ev_async done_w;
	} mg;
	bool handoff;                    /* <last> is a merge's result, not published yet */
};

static void sr_connect_async(struct store_redis *sr);

static void
sr_down(struct store_redis *sr, const char *why)
{
	/* Current up to now: the subscription delivered every change so far. */
	if (sr->connected && !sr->load_failed && sr->loop != NULL)
		sr->in_sync_at = ev_now(sr->loop);
	sr->ac = NULL;
	sr->connected = false;
	if (sr->stopping)
		return;
	if (!sr->down_logged) {
		sr->down_logged = true;
		sr->outages++;
		log_err("event=store_disconnected where=%s error=%s action=serve_last_set",
		        LOG_V(sr->cl.where), LOG_Q(why));
	}
	ev_timer_stop(sr->loop, &sr->reconnect_w);
	ev_timer_set(&sr->reconnect_w, SR_RECONNECT, 0.);
	ev_timer_start(sr->loop, &sr->reconnect_w);
}

static void
sr_on_connect(const redisAsyncContext *ac, int status)
{
	struct store_redis *sr = ac->data;

	if (status != REDIS_OK)
		sr_down(sr, ac->errstr);
}

static void
sr_on_disconnect(const redisAsyncContext *ac, int status)
{
	struct store_redis *sr = ac->data;

	sr_down(sr, status == REDIS_OK ? "closed" : ac->errstr);
}

static void
sr_pend_parse(struct store_redis *sr, const char *msg)
{
	while (*msg) {
		size_t len = strcspn(msg, " ");
		bool dup = false;

		if (len != KEY_ID_LEN || strspn(msg, "0123456789abcdefghijklmnopqrstuvwxyz"
		                                     "ABCDEFGHIJKLMNOPQRSTUVWXYZ") < len ||
		    sr->npend == SR_PEND_MAX) {
			sr->pend_full = true;
			return;
		}
		for (size_t i = 0; i < sr->npend && !dup; i++)
			dup = memcmp(sr->pend[i], msg, KEY_ID_LEN) == 0;
		if (!dup) {
			memcpy(sr->pend[sr->npend], msg, KEY_ID_LEN);
			sr->pend[sr->npend++][KEY_ID_LEN] = '\0';
		}
		msg += len;
		msg += strspn(msg, " ");
	}
}

/* The blocking connection, (re)opened when it is missing or broken. 0, or -1
 * with <err>. Main thread. */
static int
sr_sync_ready(struct store_redis *sr, char *err, size_t errlen)
{
	if (sr->sync != NULL && sr->sync->err) {
		redisFree(sr->sync);
		sr->sync = NULL;
	}
	if (sr->sync == NULL)
		sr->sync = store_redis_connect(&sr->cl.rc, &sr->cl.trust, err, errlen);
	return sr->sync != NULL ? 0 : -1;
}

struct redisContext *
store_redis_agent_conn(struct store *st, char *err, size_t errlen)
{
	struct store_redis *sr = (struct store_redis *)st;

	return sr_sync_ready(sr, err, errlen) == 0 ? sr->sync : NULL;
}

/*
 * True if the set held is still current, judged by <ns>:generation alone.
 * Why that is enough: every write INCRs the generation inside the MULTI/EXEC
 * that changes the data (store_redis_commit), and a full load reads the
 * generation before its scan. So if the generation now equals the one the
 * last full load read, nothing was committed since that read, and the scan,
 * which came after it, saw every write: the set is complete. A write between
 * the read and the scan moves the generation although the set may hold it:
 * that costs a needless full load, never a wrong skip. After any event
 * (gen_current false) the set is no longer exactly that load's, so the answer
 * is "no" whatever the generation says. Changes made by hand without an INCR
 * are outside the protocol: only a resubscription or a "*" event heals them.
 * False too when the generation cannot be read (the full load that follows
 * reports why). Main thread; one blocking GET.
 */
static bool
sr_current(struct store_redis *sr)
{
	char err[256];
	redisReply *r;
	bool same;

	if (!sr->gen_current || sr->load_failed || sr_sync_ready(sr, err, sizeof(err)) == -1)
		return false;
	r = redisCommand(sr->sync, "GET %s:generation", sr->cl.rc.namespace);
	if (r == NULL)
		return false;
	same = (r->type == REDIS_REPLY_NIL && sr->gen == 0) ||
	    (r->type == REDIS_REPLY_STRING && strtoull(r->str, NULL, 10) == sr->gen);
	freeReplyObject(r);
	return same;
}

/* A full load found unnecessary by sr_current: the set is current now. */
static void
sr_skip_load(struct store_redis *sr, const char *trigger)
{
	sr->in_sync_at = ev_now(sr->loop);
	sr->resyncs_skipped++;
	log_debug("event=store_in_sync where=%s trigger=%s generation=%llu action=skip_load",
	          sr->cl.where, trigger, (unsigned long long)sr->gen);
}

static void
sr_on_message(redisAsyncContext *ac, void *reply, void *priv)
{
	struct store_redis *sr = priv;
	redisReply *r = reply;

	(void)ac;
	if (r == NULL || sr->stopping || r->type != REDIS_REPLY_ARRAY || r->elements < 1 ||
	    r->element[0]->type != REDIS_REPLY_STRING)
		return;
	if (strcmp(r->element[0]->str, "subscribe") == 0) {
		bool first = sr->first_sub;

		sr->connected = true;
		sr->first_sub = false;
		if (sr->down_logged) {
			sr->down_logged = false;
			log_notice("event=store_reconnected where=%s action=resync", sr->cl.where);
		}
		/* The first subscription follows the full load that came just
		 * before watch(). Redis registered the subscription before
		 * confirming it, so every write from now on reaches us as an
		 * event; the writes between that load and now are exactly
		 * those that moved the generation: sr_current decides, and
		 * start-up loads the set once, not twice. A resubscription
		 * always loads in full: it also heals changes made without an
		 * INCR while we were away. */
		if (first && sr_current(sr)) {
			sr_skip_load(sr, "subscribe");
			return;
		}
		sr->pend_full = true;
		sr->cb(&sr->cl.base, sr->arg);
		return;
	}
	if (strcmp(r->element[0]->str, "message") != 0)
		return;
	sr->gen_current = false;
	if (r->elements == 3 && r->element[2]->type == REDIS_REPLY_STRING)
		sr_pend_parse(sr, r->element[2]->str);
	else
		sr->pend_full = true;
	if (!ev_is_active(&sr->debounce_w)) {
		ev_timer_set(&sr->debounce_w, SR_DEBOUNCE, 0.);
		ev_timer_start(sr->loop, &sr->debounce_w);
	}
}

static void
sr_on_auth(redisAsyncContext *ac, void *reply, void *priv)
{
	redisReply *r = reply;

	(void)priv;
	if (r != NULL && r->type == REDIS_REPLY_ERROR)
		log_err("event=store_auth_failed where=%s error=%s",
		        LOG_V(((struct store_redis *)ac->data)->cl.where), LOG_Q(r->str));
}

static void
sr_connect_async(struct store_redis *sr)
{
	char pass[SR_PASS_MAX], err[1024];
	redisAsyncContext *ac;

	pass[0] = '\0';
	if (sr->cl.rc.password_file != NULL &&
	    sr_read_password(sr->cl.rc.password_file, &sr->cl.trust, pass, sizeof(pass), err,
	                     sizeof(err)) == -1) {
		sr_down(sr, err);
		return;
	}
	if (strncmp(sr->cl.rc.address, "unix:", 5) == 0) {
		ac = redisAsyncConnectUnix(sr->cl.rc.address + 5);
	} else {
		char host[256];
		const char *colon = strrchr(sr->cl.rc.address, ':');
		size_t hl = (size_t)(colon - sr->cl.rc.address);

		if (hl >= sizeof(host))
			hl = sizeof(host) - 1;
		memcpy(host, sr->cl.rc.address, hl);
		host[hl] = '\0';
		if (host[0] == '[' && hl > 2 && host[hl - 1] == ']') {
			memmove(host, host + 1, hl - 2);
			host[hl - 2] = '\0';
		}
		ac = redisAsyncConnect(host, atoi(colon + 1));
	}
	if (ac == NULL || ac->err) {
		snprintf(err, sizeof(err), "%s", ac ? ac->errstr : "out of memory");
		if (ac)
			redisAsyncFree(ac);
		sr_down(sr, err);
		return;
	}
	ac->data = sr;
	sr->ac = ac;
	redisLibevAttach(sr->loop, ac);
	redisAsyncSetConnectCallback(ac, sr_on_connect);
	redisAsyncSetDisconnectCallback(ac, sr_on_disconnect);
	if (pass[0] && sr->cl.rc.username != NULL)
		redisAsyncCommand(ac, sr_on_auth, sr, "AUTH %s %s", sr->cl.rc.username, pass);
	else if (pass[0])
		redisAsyncCommand(ac, sr_on_auth, sr, "AUTH %s", pass);
	memset(pass, 0, sizeof(pass));
	redisAsyncCommand(ac, sr_on_message, sr, "SUBSCRIBE %s:events", sr->cl.rc.namespace);
}

static void
sr_on_debounce(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct store_redis *sr = w->data;

	(void)loop;
	(void)revents;
	sr->cb(&sr->cl.base, sr->arg);
}

static void
sr_on_resync(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct store_redis *sr = w->data;

	(void)loop;
	(void)revents;
	/* Down: the reconnect will resync; a blocking load now would only time out. */
	if (!sr->connected)
		return;
	/* Events pending: the debounce loads them. Otherwise a full load
	 * only when the generation moved (sr_current): at 1M keys it costs
	 * seconds of CPU and hundreds of MB. */
	if (!ev_is_active(&sr->debounce_w) && sr->npend == 0 && !sr->pend_full &&
	    sr_current(sr)) {
		sr_skip_load(sr, "resync");
		return;
	}
	sr->pend_full = true;
	sr->cb(&sr->cl.base, sr->arg);
}

static void
sr_on_reconnect(struct ev_loop *loop, ev_timer *w, int revents)
{
	(void)loop;
	(void)revents;
	sr_connect_async(w->data);
}

/* The last set with the pending ids re-read: their records fetched
 * (pipelined HGETALL) and applied to it (ks_set_overlay: a new overlay on
 * the last set's base, at the cost of the changes, not of the whole set). A
 * missing or bad record drops the id, as a full load would. NULL with <err>
 * (the caller then does a full load). */
static struct ks_set *
sr_load_pending(struct store_redis *sr, char *err, size_t errlen)
{
	struct sr_read rd = { 0 };
	struct ks_set *set = NULL;
	const char *ids[SR_PEND_MAX];

	for (size_t i = 0; i < sr->npend; i++)
		redisAppendCommand(sr->sync, "HGETALL %s:key:%s", sr->cl.rc.namespace, sr->pend[i]);
	for (size_t i = 0; i < sr->npend; i++) {
		redisReply idr = { .type = REDIS_REPLY_STRING, .len = KEY_ID_LEN,
		                   .str = sr->pend[i] };
		void *vp = NULL;
		redisReply *h;
		int rr = 0;

		if (redisGetReply(sr->sync, &vp) != REDIS_OK) {
			snprintf(err, errlen, "redis: HGETALL: %s", sr->sync->errstr);
			goto out;
		}
		h = vp;
		/* Deleted (empty hash): simply absent now, no log line. */
		if (h->type != REDIS_REPLY_ARRAY || h->elements > 0)
			rr = sr_record(&rd, sr->cl.rc.namespace, &idr,
			               h->type == REDIS_REPLY_ERROR ? NULL : h);
		freeReplyObject(h);
		if (rr == -1) {
			snprintf(err, errlen, "out of memory");
			goto out;
		}
		ids[i] = sr->pend[i];
	}
	set = ks_set_overlay(sr->last, ids, sr->npend, rd.v, rd.n, err, errlen);
	if (set != NULL && sr->mg.running && !sr->mg.stale) {
		if (sr->mg.nids + sr->npend > sr->mg.cap) {
			size_t cap = (sr->mg.nids + sr->npend) * 2;
			char (*v)[KEY_ID_LEN + 1] = realloc(sr->mg.ids, cap * sizeof(*v));

			if (v == NULL)
				sr->mg.stale = true;     /* the next load past the limit merges again */
			else {
				sr->mg.ids = v;
				sr->mg.cap = cap;
			}
		}
		if (!sr->mg.stale) {
			memcpy(sr->mg.ids + sr->mg.nids, sr->pend, sr->npend * sizeof(*sr->pend));
			sr->mg.nids += sr->npend;
		}
	}
out:
	sr->records_skipped += rd.skipped;
	sr_read_free(&rd);
	return set;
}

static void *
sr_merge_run(void *arg)
{
	struct store_redis *sr = arg;

	/* Linux: the nice value of this thread alone. */
	setpriority(PRIO_PROCESS, (id_t)syscall(SYS_gettid), 19);
	sr->mg.out = ks_set_flatten(sr->mg.src, sr->mg.err, sizeof(sr->mg.err));
	ev_async_send(sr->loop, &sr->mg.done_w);
	return NULL;
}

/* Starts merging <set> (sr->last, an overlay past its limit) when no merge
 * runs; without a loop or a thread, merges now. The set to serve. */
static struct ks_set *
sr_merge_start(struct store_redis *sr, struct ks_set *set)
{
	const struct ks_set *base = ks_set_base(set);
	sigset_t all, old;
	struct ks_set *flat;
	char err[256];
	int rc;

	if (base == NULL || ks_overlay_size(set) <= ks_overlay_limit(ks_count(base)) ||
	    sr->mg.running)
		return set;
	if (sr->loop != NULL) {
		sr->mg.src = ks_set_ref(set);
		sr->mg.out = NULL;
		sr->mg.stale = false;
		sr->mg.nids = 0;
		sigfillset(&all);
		pthread_sigmask(SIG_BLOCK, &all, &old);
		rc = pthread_create(&sr->mg.th, NULL, sr_merge_run, sr);
		pthread_sigmask(SIG_SETMASK, &old, NULL);
		if (rc == 0) {
			sr->mg.running = true;
			return set;
		}
		ks_set_unref(sr->mg.src);
		sr->mg.src = NULL;
		log_warning("event=store_merge_thread_failed where=%s error=%s action=merge_now",
		            sr->cl.where, LOG_Q(strerror(rc)));
	}
	if ((flat = ks_set_flatten(set, err, sizeof(err))) == NULL) {
		log_err("event=store_merge_failed where=%s error=%s action=keep_overlay",
		        sr->cl.where, LOG_Q(err));
		return set;
	}
	sr->merges++;
	ks_set_unref(set);
	return flat;
}

/* The merge's new base with the records of the ids loaded since it began
 * taken from sr->last: the same keys as sr->last. NULL with <err>. */
static struct ks_set *
sr_merge_rebase(struct store_redis *sr, struct ks_set *out, char *err, size_t errlen)
{
	const char **ids = malloc((sr->mg.nids + 1) * sizeof(*ids));
	struct ks_set *set;

	if (ids == NULL) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	for (size_t i = 0; i < sr->mg.nids; i++)
		ids[i] = sr->mg.ids[i];
	set = ks_set_rebase(out, sr->last, ids, sr->mg.nids, err, errlen);
	free(ids);
	return set;
}

/* Waits for the merge thread, if one runs. */
static void
sr_merge_join(struct store_redis *sr)
{
	if (!sr->mg.running)
		return;
	pthread_join(sr->mg.th, NULL);
	sr->mg.running = false;
}

/* Drops what a merge held (none runs). */
static void
sr_merge_clear(struct store_redis *sr)
{
	ks_set_unref(sr->mg.out);
	ks_set_unref(sr->mg.src);
	sr->mg.out = sr->mg.src = NULL;
	sr->mg.nids = 0;
	sr->mg.stale = false;
}

/* The merge thread is done (main thread): its base, with what was loaded
 * meanwhile, becomes the last set, and is published (at once, or with the
 * debounced load that is due). */
static void
sr_on_merged(struct ev_loop *loop, ev_async *w, int revents)
{
	struct store_redis *sr = w->data;
	struct ks_set *set;
	char err[256];

	(void)loop;
	(void)revents;
	if (!sr->mg.running)
		return;
	sr_merge_join(sr);
	if (sr->mg.out == NULL) {
		log_err("event=store_merge_failed where=%s error=%s action=keep_overlay",
		        sr->cl.where, LOG_Q(sr->mg.err));
	} else if (!sr->mg.stale) {
		set = sr_merge_rebase(sr, sr->mg.out, err, sizeof(err));
		if (set == NULL) {
			log_err("event=store_merge_failed where=%s error=%s action=keep_overlay",
			        sr->cl.where, LOG_Q(err));
		} else {
			sr->merges++;
			log_debug("event=store_base_merged where=%s keys=%zu since=%zu merges=%llu",
			          sr->cl.where, ks_count(set), sr->mg.nids,
			          (unsigned long long)sr->merges);
			ks_set_unref(sr->last);
			sr->last = set;
			sr->handoff = true;
			if (!ev_is_active(&sr->debounce_w) && sr->cb != NULL)
				sr->cb(&sr->cl.base, sr->arg);
		}
	}
	sr_merge_clear(sr);
}

static struct ks_set *
sr_load(struct store *st, char *err, size_t errlen)
{
	struct store_redis *sr = (struct store_redis *)st;
	struct ks_set *set = NULL;
	uint64_t gen = 0;
	bool full = true;

	/* A merge's result, nothing else to load: that set (no Redis needed). */
	if (sr->handoff && !sr->pend_full && sr->npend == 0 && sr->last != NULL) {
		sr->handoff = false;
		return ks_set_ref(sr->last);
	}
	if (sr_sync_ready(sr, err, errlen) == -1) {
		sr->load_failed = true;
		sr->gen_current = false;
		return NULL;
	}
	/* Only the ids events named, when that is all that may have changed;
	 * any failure falls back to a full load. */
	if (!sr->pend_full && sr->npend > 0 && sr->last != NULL) {
		set = sr_load_pending(sr, err, errlen);
		if (set != NULL)
			set = sr_merge_start(sr, set);
		full = set == NULL;
	}
	if (set == NULL && !sr->sync->err)
		set = sr_read_all(sr->sync, sr->cl.rc.namespace, &gen, &sr->records_skipped, err,
		                  errlen);
	if (set == NULL && sr->sync->err) {
		/* The connection died since the last load (a Redis restart shows
		 * only now): one retry on a fresh one. */
		redisFree(sr->sync);
		sr->sync = store_redis_connect(&sr->cl.rc, &sr->cl.trust, err, errlen);
		if (sr->sync != NULL)
			set = sr_read_all(sr->sync, sr->cl.rc.namespace, &gen, &sr->records_skipped,
			                  err, errlen);
		if (set == NULL && sr->sync != NULL && sr->sync->err) {
			redisFree(sr->sync);
			sr->sync = NULL;
		}
	}
	sr->load_failed = set == NULL;
	if (set != NULL) {
		sr->in_sync_at = sr->loop != NULL ? ev_now(sr->loop) : ev_time();
		ks_set_unref(sr->last);
		sr->last = ks_set_ref(set);
		sr->npend = 0;
		sr->pend_full = false;
		sr->handoff = false;
		/* An incremental load keeps gen_current false (an event
		 * cleared it): the next check does a full load. */
		if (full) {
			sr->mg.stale = true;     /* a merge running is of an older set */
			sr->gen = gen;
			sr->gen_current = true;
			sr->resyncs++;
		}
	} else {
		sr->pend_full = true;
		sr->gen_current = false;
	}
	return set;
}

static int
sr_watch(struct store *st, struct ev_loop *loop, store_changed_cb *cb, void *arg)
{
	struct store_redis *sr = (struct store_redis *)st;

	sr->loop = loop;
	sr->cb = cb;
	sr->arg = arg;
	sr->stopping = false;
	sr->first_sub = true;
	ev_timer_init(&sr->debounce_w, sr_on_debounce, SR_DEBOUNCE, 0.);
	sr->debounce_w.data = sr;
	ev_async_init(&sr->mg.done_w, sr_on_merged);
	sr->mg.done_w.data = sr;
	ev_async_start(loop, &sr->mg.done_w);
	ev_timer_init(&sr->reconnect_w, sr_on_reconnect, SR_RECONNECT, 0.);
	sr->reconnect_w.data = sr;
	ev_timer_init(&sr->resync_w, sr_on_resync, sr->cl.rc.resync_interval,
	              sr->cl.rc.resync_interval);
	sr->resync_w.data = sr;
	ev_timer_start(loop, &sr->resync_w);
	sr_connect_async(sr);
	return 0;
}

static void
sr_unwatch(struct store *st)
{
	struct store_redis *sr = (struct store_redis *)st;

	if (sr->loop == NULL)
		return;
	sr->stopping = true;
	sr_merge_join(sr);
	sr_merge_clear(sr);
	ev_async_stop(sr->loop, &sr->mg.done_w);
	ev_timer_stop(sr->loop, &sr->debounce_w);
	ev_timer_stop(sr->loop, &sr->resync_w);
	ev_timer_stop(sr->loop, &sr->reconnect_w);
	if (sr->ac != NULL) {
		redisAsyncContext *ac = sr->ac;

		sr->ac = NULL;
		redisAsyncFree(ac);
	}
	sr->connected = false;
	sr->loop = NULL;
}

static void
sr_free(struct store *st)
{
	struct store_redis *sr = (struct store_redis *)st;

	sr_unwatch(st);
	redisFree(sr->sync);
	ks_set_unref(sr->last);
	free(sr->mg.ids);
	sr_client_fini(&sr->cl);
	free(sr);
}

/* Age 0 while subscribed with the last load good: every change reaches the
 * set within the 50 ms debounce. Otherwise the time since it was last known
 * current (the last good load, or the moment the subscription dropped). */
static void
sr_status(const struct store *st, double now, struct store_status *out)
{
	const struct store_redis *sr = (const struct store_redis *)st;

	out->connected = sr->connected;
	out->age = sr->connected && !sr->load_failed ? 0
	    : sr->in_sync_at > 0 ? now - sr->in_sync_at : 0;
	out->disconnects = sr->outages;
	out->resyncs = sr->resyncs;
	out->resyncs_skipped = sr->resyncs_skipped;
	out->records_skipped = sr->records_skipped;
}

static const struct store_ops store_redis_ops = {
	.name = "redis",
	.flags = STORE_F_SHARED,
	.load = sr_load,
	.watch = sr_watch,
	.unwatch = sr_unwatch,
	.status = sr_status,
	.read = sr_client_read,
	.begin = sr_client_begin,
	.commit = sr_client_commit,
	.end = sr_client_end,
	.free = sr_free,
	.where = sr_client_where,
};

/* The agent backend. Reads the password file now. NULL with <err>. */
static struct store *
store_redis_new(const struct store_redis_conf *rc, const struct ft_trust *trust, char *err,
                size_t errlen)
{
	struct store_redis *sr = calloc(1, sizeof(*sr));

	if (sr == NULL) {
		snprintf(err, errlen, "store: out of memory");
		return NULL;
	}
	if (sr_client_init(&sr->cl, &store_redis_ops, rc, trust, err, errlen) == -1) {
		sr_free(&sr->cl.base);
		return NULL;
	}
	return &sr->cl.base;
}

const struct store_role store_role_agent = { "agent", store_redis_new, NULL };
