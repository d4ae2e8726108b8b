/* SPDX-License-Identifier: Apache-2.0 */
/*
 * store_redis: Redis as a store backend, and the read/write helpers
 * keyauthctl shares with it.
 *
 * Loads are synchronous on the main thread (a blocking hiredis context with
 * timeouts): workers keep answering from their snapshot meanwhile, so the
 * request path never waits on Redis. Change detection is asynchronous on the
 * main loop (hiredis libev adapter): a SUBSCRIBE to <ns>:events. Pub/sub
 * rather than keyspace notifications because it needs no server-side
 * configuration (notify-keyspace-events) and one message per write, not one
 * per touched key. Events name the changed ids: after a 50 ms debounce (a
 * burst of writes costs one load) only those records are re-read and the new
 * set is built from the last one (about 0.2 s at 1M keys, against 3.5 s for
 * a full load). A "*" event and a resubscription trigger a full load, which
 * heals messages lost while disconnected. The first subscription after
 * watch() and every resync_interval only read <ns>:generation and do a full
 * load when it moved (see sr_current for why that is enough). While the
 * subscription is down no load is attempted (the last set keeps serving); a
 * reconnect is tried every second.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
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

#define SR_DEBOUNCE   0.05
#define SR_RECONNECT  1.0
#define SR_SCAN_BATCH 1000
#define SR_PASS_MAX   512
#define SR_EVENT_IDS_MAX 64      /* ids named in one event; more: "*" */
#define SR_PEND_MAX   256        /* ids awaiting an incremental load; more: full */

struct store_redis {
	struct store base;
	struct store_redis_conf rc;      /* strings owned here */
	char where[320];
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
	/* Incremental loads: the ids named by events since the last load, and
	 * the set that load returned (one reference). */
	char pend[SR_PEND_MAX][KEY_ID_LEN + 1];
	size_t npend;
	bool pend_full;                  /* an event said "*", or too many ids */
	struct ks_set *last;
};

/* ---- shared helpers ------------------------------------------------------ */

static int
read_password(const char *path, char *buf, size_t cap, char *err, size_t errlen)
{
	struct stat st;
	ssize_t n;
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);

	if (fd == -1) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return -1;
	}
	if (fstat(fd, &st) == -1 || (st.st_mode & 077) != 0 || !S_ISREG(st.st_mode)) {
		snprintf(err, errlen, "%s: must be a regular file readable only by its owner "
		         "(chmod 600)", path);
		close(fd);
		return -1;
	}
	n = read(fd, buf, cap - 1);
	close(fd);
	if (n < 0) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return -1;
	}
	buf[n] = '\0';
	while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r'))
		buf[--n] = '\0';
	return 0;
}

struct redisContext *
store_redis_connect(const struct store_redis_conf *rc, char *err, size_t errlen)
{
	struct timeval ct = { 2, 0 }, cmd = { 10, 0 };
	char pass[SR_PASS_MAX];
	redisContext *c;
	redisReply *r;

	pass[0] = '\0';
	if (rc->password_file != NULL &&
	    read_password(rc->password_file, pass, sizeof(pass), err, errlen) == -1)
		return NULL;
	if (strncmp(rc->address, "unix:", 5) == 0) {
		c = redisConnectUnixWithTimeout(rc->address + 5, ct);
	} else {
		char host[256];
		const char *colon = strrchr(rc->address, ':');
		size_t hl = (size_t)(colon - rc->address);

		if (hl >= sizeof(host))
			hl = sizeof(host) - 1;
		memcpy(host, rc->address, hl);
		host[hl] = '\0';
		if (host[0] == '[' && hl > 2 && host[hl - 1] == ']') {
			memmove(host, host + 1, hl - 2);
			host[hl - 2] = '\0';
		}
		c = redisConnectWithTimeout(host, atoi(colon + 1), ct);
	}
	if (c == NULL || c->err) {
		snprintf(err, errlen, "redis %s: %s", rc->address, c ? c->errstr : "out of memory");
		redisFree(c);
		return NULL;
	}
	redisSetTimeout(c, cmd);
	if (pass[0]) {
		/* With a username: a Redis 6 ACL user; without: the default user
		 * (requirepass). */
		if (rc->username != NULL)
			r = redisCommand(c, "AUTH %s %s", rc->username, pass);
		else
			r = redisCommand(c, "AUTH %s", pass);
		memset(pass, 0, sizeof(pass));
		if (r == NULL || r->type == REDIS_REPLY_ERROR) {
			snprintf(err, errlen, "redis %s: AUTH failed: %s", rc->address,
			         r ? r->str : c->errstr);
			goto fail;
		}
		freeReplyObject(r);
	}
	r = redisCommand(c, "SELECT %d", rc->database);
	if (r == NULL || r->type == REDIS_REPLY_ERROR) {
		snprintf(err, errlen, "redis %s: SELECT failed: %s", rc->address,
		         r ? r->str : c->errstr);
		goto fail;
	}
	freeReplyObject(r);
	return c;
fail:
	if (r != NULL)
		freeReplyObject(r);
	redisFree(c);
	return NULL;
}

static int
hexval(int ch)
{
	if (ch >= '0' && ch <= '9')
		return ch - '0';
	if (ch >= 'a' && ch <= 'f')
		return ch - 'a' + 10;
	if (ch >= 'A' && ch <= 'F')
		return ch - 'A' + 10;
	return -1;
}

static int
parse_i64(const redisReply *v, int64_t *out)
{
	char *end;
	long long x;

	if (v->type != REDIS_REPLY_STRING || v->len == 0 || v->len > 20)
		return -1;
	errno = 0;
	x = strtoll(v->str, &end, 10);
	if (errno != 0 || *end != '\0' || x < 0)
		return -1;
	*out = x;
	return 0;
}

/* Growing arrays for one read: the entries and the strings they point to
 * (ks_set_build copies both). */
struct sr_read {
	struct ks_entry *v;
	char **strs;
	size_t n, vcap, nstrs, scap;
	size_t skipped;
};

/* Room for one more entry and its two strings. */
static int
sr_grow(struct sr_read *rd)
{
	if (rd->n == rd->vcap) {
		size_t ncap = rd->vcap ? rd->vcap * 2 : 1024;
		struct ks_entry *nv = realloc(rd->v, ncap * sizeof(*nv));

		if (nv == NULL)
			return -1;
		rd->v = nv;
		rd->vcap = ncap;
	}
	if (rd->nstrs + 2 > rd->scap) {
		size_t ncap = rd->scap ? rd->scap * 2 : 2048;
		char **ns = realloc(rd->strs, ncap * sizeof(*ns));

		if (ns == NULL)
			return -1;
		rd->strs = ns;
		rd->scap = ncap;
	}
	return 0;
}

static char *
sr_keep(struct sr_read *rd, const char *s, size_t len)
{
	char *p = malloc(len + 1);

	if (p == NULL)
		return NULL;
	memcpy(p, s, len);
	p[len] = '\0';
	rd->strs[rd->nstrs++] = p;
	return p;
}

/* True if the id member can go in a log line as is: at most KEY_ID_LEN
 * base62 characters (anything else is logged as ""). */
static bool
id_printable(const redisReply *idr)
{
	return idr->type == REDIS_REPLY_STRING && idr->len <= KEY_ID_LEN &&
	    strspn(idr->str, "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ") ==
	    idr->len;
}

/* Fills one entry from HGETALL's reply. Returns 0, 1 (skipped, logged) or -1
 * (out of memory). */
static int
sr_record(struct sr_read *rd, const char *ns, const redisReply *idr, const redisReply *h)
{
	struct ks_entry e;
	char why[256];
	bool have_digest = false, have_route = false;
	int64_t rpm = 0;

	memset(&e, 0, sizeof(e));
	e.owner = "";
	why[0] = '\0';
	if (idr->type != REDIS_REPLY_STRING || idr->len != KEY_ID_LEN) {
		snprintf(why, sizeof(why), "bad id in %s:ids", ns);
		goto skip;
	}
	memcpy(e.id, idr->str, KEY_ID_LEN);
	if (h == NULL || h->type != REDIS_REPLY_ARRAY) {
		snprintf(why, sizeof(why), "not a hash");
		goto skip;
	}
	if (h->elements == 0) {
		snprintf(why, sizeof(why), "record missing");
		goto skip;
	}
	if (sr_grow(rd) == -1)
		return -1;
	for (size_t i = 0; i + 1 < h->elements; i += 2) {
		const redisReply *k = h->element[i], *v = h->element[i + 1];

		if (k->type != REDIS_REPLY_STRING || v->type != REDIS_REPLY_STRING) {
			snprintf(why, sizeof(why), "bad field");
			goto skip;
		}
		if (strcmp(k->str, "digest") == 0) {
			if (v->len != 2 * KEY_DIGEST_LEN) {
				snprintf(why, sizeof(why), "bad digest");
				goto skip;
			}
			for (size_t j = 0; j < KEY_DIGEST_LEN; j++) {
				int hi = hexval(v->str[2 * j]), lo = hexval(v->str[2 * j + 1]);

				if (hi < 0 || lo < 0) {
					snprintf(why, sizeof(why), "bad digest");
					goto skip;
				}
				e.digest[j] = (uint8_t)(hi << 4 | lo);
			}
			have_digest = true;
		} else if (strcmp(k->str, "route") == 0) {
			if ((e.route = sr_keep(rd, v->str, v->len)) == NULL)
				return -1;
			have_route = true;
		} else if (strcmp(k->str, "owner") == 0) {
			if ((e.owner = sr_keep(rd, v->str, v->len)) == NULL)
				return -1;
		} else if (strcmp(k->str, "created") == 0) {
			if (parse_i64(v, &e.created) == -1)
				goto badnum;
		} else if (strcmp(k->str, "expires") == 0) {
			if (parse_i64(v, &e.expires) == -1)
				goto badnum;
		} else if (strcmp(k->str, "revoked") == 0) {
			if (parse_i64(v, &e.revoked) == -1)
				goto badnum;
		} else if (strcmp(k->str, "rpm") == 0) {
			if (parse_i64(v, &rpm) == -1 || rpm > UINT32_MAX)
				goto badnum;
			e.rpm = (uint32_t)rpm;
		}
		/* Unknown fields are ignored: newer writers may add some. */
	}
	if (!have_digest || !have_route) {
		snprintf(why, sizeof(why), "digest or route missing");
		goto skip;
	}
	if (ks_entry_check(&e, why, sizeof(why)) == -1)
		goto skip;
	rd->v[rd->n++] = e;
	return 0;
badnum:
	snprintf(why, sizeof(why), "bad number");
skip:
	rd->skipped++;
	for (char *q = why; *q; q++)
		if (*q == '"' || *q == '\\')
			*q = '\'';
	/* The id is not a secret (it is printed by keyauthctl list); never the
	 * digest. %.*s: the id may be garbage, so it is bounded and quoted. */
	log_warning("event=store_record_skipped namespace=%s id=\"%.*s\" reason=\"%s\"",
	            ns, id_printable(idr) ? (int)idr->len : 0,
	            idr->type == REDIS_REPLY_STRING ? idr->str : "", why);
	return 1;
}

static int
cmp_digest(const void *a, const void *b)
{
	return memcmp(((const struct ks_entry *)a)->digest, ((const struct ks_entry *)b)->digest,
	              KEY_DIGEST_LEN);
}

/* Two records with one digest would make ks_set_build refuse the whole set;
 * only a hand-made or corrupted record can do that, so the later ones (in
 * digest order, ties in scan order are arbitrary) are skipped instead. */
static void
sr_drop_dup_digests(struct sr_read *rd, const char *ns)
{
	size_t w = 0;

	if (rd->n < 2)
		return;
	qsort(rd->v, rd->n, sizeof(*rd->v), cmp_digest);
	for (size_t i = 0; i < rd->n; i++) {
		if (w > 0 && memcmp(rd->v[w - 1].digest, rd->v[i].digest, KEY_DIGEST_LEN) == 0) {
			rd->skipped++;
			log_warning("event=store_record_skipped namespace=%s id=\"%s\" "
			            "reason=\"digest also used by id %s\"", ns, rd->v[i].id,
			            rd->v[w - 1].id);
			continue;
		}
		rd->v[w++] = rd->v[i];
	}
	rd->n = w;
}

/* store_redis_read, also adding the number of records skipped to <*skipped>
 * (may be NULL). */
static struct ks_set *
sr_read_all(struct redisContext *c, const char *ns, uint64_t *generation, uint64_t *skipped,
            char *err, size_t errlen)
{
	struct sr_read rd = { 0 };
	struct ks_set *set = NULL;
	redisReply *r;
	char cursor[32] = "0";

	r = redisCommand(c, "GET %s:generation", ns);
	if (r == NULL || (r->type != REDIS_REPLY_STRING && r->type != REDIS_REPLY_NIL)) {
		snprintf(err, errlen, "redis: GET generation: %s",
		         r ? (r->type == REDIS_REPLY_ERROR ? r->str : "wrong type") : c->errstr);
		if (r)
			freeReplyObject(r);
		goto out;
	}
	if (generation != NULL)
		*generation = r->type == REDIS_REPLY_STRING ? strtoull(r->str, NULL, 10) : 0;
	freeReplyObject(r);
	do {
		redisReply *ids;

		r = redisCommand(c, "SSCAN %s:ids %s COUNT %d", ns, cursor, SR_SCAN_BATCH);
		if (r == NULL || r->type != REDIS_REPLY_ARRAY || r->elements != 2 ||
		    r->element[0]->type != REDIS_REPLY_STRING ||
		    r->element[1]->type != REDIS_REPLY_ARRAY) {
			snprintf(err, errlen, "redis: SSCAN %s:ids: %s", ns,
			         r ? (r->type == REDIS_REPLY_ERROR ? r->str : "unexpected reply")
			           : c->errstr);
			if (r)
				freeReplyObject(r);
			goto out;
		}
		snprintf(cursor, sizeof(cursor), "%s", r->element[0]->str);
		ids = r->element[1];
		for (size_t i = 0; i < ids->elements; i++) {
			const redisReply *id = ids->element[i];

			if (id->type == REDIS_REPLY_STRING)
				redisAppendCommand(c, "HGETALL %s:key:%b", ns, id->str, id->len);
			else
				redisAppendCommand(c, "PING");
		}
		for (size_t i = 0; i < ids->elements; i++) {
			void *vp = NULL;
			redisReply *h;
			int rr;

			if (redisGetReply(c, &vp) != REDIS_OK) {
				snprintf(err, errlen, "redis: HGETALL: %s", c->errstr);
				freeReplyObject(r);
				goto out;
			}
			h = vp;
			rr = h->type == REDIS_REPLY_ERROR && ids->element[i]->type == REDIS_REPLY_STRING
			    ? sr_record(&rd, ns, ids->element[i], NULL)
			    : sr_record(&rd, ns, ids->element[i], h);
			freeReplyObject(h);
			if (rr == -1) {
				freeReplyObject(r);
				snprintf(err, errlen, "out of memory");
				goto out;
			}
		}
		freeReplyObject(r);
	} while (strcmp(cursor, "0") != 0);
	sr_drop_dup_digests(&rd, ns);
	set = ks_set_build(rd.v, rd.n, err, errlen);
out:
	if (skipped != NULL)
		*skipped += rd.skipped;
	for (size_t i = 0; i < rd.nstrs; i++)
		free(rd.strs[i]);
	free(rd.strs);
	free(rd.v);
	return set;
}

struct ks_set *
store_redis_read(struct redisContext *c, const char *ns, uint64_t *generation,
                 char *err, size_t errlen)
{
	return sr_read_all(c, ns, generation, NULL, err, errlen);
}

void
store_redis_disconnect(struct redisContext *c)
{
	redisFree(c);
}

int
store_redis_watch_gen(struct redisContext *c, const char *ns, char *err, size_t errlen)
{
	redisReply *r = redisCommand(c, "WATCH %s:generation", ns);
	int rc = 0;

	if (r == NULL || r->type == REDIS_REPLY_ERROR) {
		snprintf(err, errlen, "redis: WATCH: %s", r ? r->str : c->errstr);
		rc = -1;
	}
	if (r)
		freeReplyObject(r);
	return rc;
}

/* The event message: the changed ids separated by blanks, or "*" (reload
 * everything) past SR_EVENT_IDS_MAX ids. */
static void
sr_event_add(char *msg, size_t *nids, const char *id)
{
	if (*nids == 0)
		msg[0] = '\0';
	if (*nids >= SR_EVENT_IDS_MAX) {
		strcpy(msg, "*");
		return;
	}
	if (*nids > 0)
		strcat(msg, " ");
	strcat(msg, id);
	(*nids)++;
}

static bool
entry_same(const struct ks_entry *a, const struct ks_entry *b)
{
	return memcmp(a->digest, b->digest, KEY_DIGEST_LEN) == 0 &&
	    strcmp(a->route, b->route) == 0 && strcmp(a->owner, b->owner) == 0 &&
	    a->created == b->created && a->expires == b->expires &&
	    a->revoked == b->revoked && a->rpm == b->rpm;
}

int
store_redis_commit(struct redisContext *c, const char *ns, const struct ks_set *old,
                   const struct ks_entry *v, size_t n, char *err, size_t errlen)
{
	size_t queued = 0, nids = 0;
	char msg[SR_EVENT_IDS_MAX * (KEY_ID_LEN + 1) + 2];
	void *vp;
	redisReply *r;
	int rc = 0;

	for (size_t i = 0; i < n; i++)
		if (ks_entry_check(&v[i], err, errlen) == -1)
			return -1;
	redisAppendCommand(c, "MULTI");
	for (size_t i = 0; i < n; i++) {
		const struct ks_entry *o = old ? ks_find_id(old, v[i].id) : NULL;
		char hex[2 * KEY_DIGEST_LEN + 1];

		if (o != NULL && entry_same(o, &v[i]))
			continue;
		for (size_t j = 0; j < KEY_DIGEST_LEN; j++)
			snprintf(hex + 2 * j, 3, "%02x", v[i].digest[j]);
		redisAppendCommand(c, "HSET %s:key:%s digest %s route %s owner %s created %" PRId64
		                   " expires %" PRId64 " revoked %" PRId64 " rpm %" PRIu32,
		                   ns, v[i].id, hex, v[i].route, v[i].owner, v[i].created,
		                   v[i].expires, v[i].revoked, v[i].rpm);
		redisAppendCommand(c, "SADD %s:ids %s", ns, v[i].id);
		queued += 2;
		sr_event_add(msg, &nids, v[i].id);
	}
	for (size_t i = 0; old != NULL && i < ks_count(old); i++) {
		const struct ks_entry *o = ks_entry_at(old, i);
		bool kept = false;

		for (size_t j = 0; j < n && !kept; j++)
			kept = strcmp(v[j].id, o->id) == 0;
		if (kept)
			continue;
		redisAppendCommand(c, "DEL %s:key:%s", ns, o->id);
		redisAppendCommand(c, "SREM %s:ids %s", ns, o->id);
		queued += 2;
		sr_event_add(msg, &nids, o->id);
	}
	redisAppendCommand(c, "INCR %s:generation", ns);
	redisAppendCommand(c, "PUBLISH %s:events %s", ns, nids > 0 ? msg : "*");
	redisAppendCommand(c, "EXEC");
	queued += 2;
	/* MULTI's +OK, one +QUEUED per command, then EXEC's array (nil: the
	 * WATCHed generation moved). */
	for (size_t i = 0; i < queued + 2; i++) {
		if (redisGetReply(c, &vp) != REDIS_OK) {
			snprintf(err, errlen, "redis: write: %s", c->errstr);
			return -1;
		}
		r = vp;
		if (i == queued + 1) {
			if (r->type == REDIS_REPLY_NIL)
				rc = 1;
			else if (r->type != REDIS_REPLY_ARRAY) {
				snprintf(err, errlen, "redis: EXEC: %s",
				         r->type == REDIS_REPLY_ERROR ? r->str : "unexpected reply");
				rc = -1;
			}
		} else if (r->type == REDIS_REPLY_ERROR && rc == 0) {
			snprintf(err, errlen, "redis: write refused: %s", r->str);
			rc = -1;
		}
		freeReplyObject(r);
	}
	return rc;
}

int
store_redis_wait(struct redisContext *c, unsigned replicas, unsigned timeout_ms, char *err,
                 size_t errlen)
{
	/* WAIT blocks up to <timeout_ms>: the command timeout must outlast it. */
	struct timeval tv = { (time_t)(timeout_ms / 1000 + 10), 0 };
	redisReply *r;
	int n = -1;

	redisSetTimeout(c, tv);
	r = redisCommand(c, "WAIT %u %u", replicas, timeout_ms);
	if (r != NULL && r->type == REDIS_REPLY_INTEGER && r->integer >= 0)
		n = r->integer > INT32_MAX ? INT32_MAX : (int)r->integer;
	else
		snprintf(err, errlen, "redis: WAIT: %s",
		         r == NULL ? c->errstr : r->type == REDIS_REPLY_ERROR ? r->str
		                                                          : "unexpected reply");
	if (r != NULL)
		freeReplyObject(r);
	return n;
}

/* ---- the agent backend ---------------------------------------------------- */

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
		log_err("event=store_disconnected where=%s error=\"%s\" action=serve_last_set",
		        sr->where, why);
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
		sr->sync = store_redis_connect(&sr->rc, err, errlen);
	return sr->sync != NULL ? 0 : -1;
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
	r = redisCommand(sr->sync, "GET %s:generation", sr->rc.namespace);
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
	          sr->where, trigger, (unsigned long long)sr->gen);
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
			log_notice("event=store_reconnected where=%s action=resync", sr->where);
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
		sr->cb(&sr->base, sr->arg);
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
		log_err("event=store_auth_failed where=%s error=\"%s\"",
		        ((struct store_redis *)ac->data)->where, r->str);
}

static void
sr_connect_async(struct store_redis *sr)
{
	char pass[SR_PASS_MAX], err[256];
	redisAsyncContext *ac;

	pass[0] = '\0';
	if (sr->rc.password_file != NULL &&
	    read_password(sr->rc.password_file, pass, sizeof(pass), err, sizeof(err)) == -1) {
		sr_down(sr, err);
		return;
	}
	if (strncmp(sr->rc.address, "unix:", 5) == 0) {
		ac = redisAsyncConnectUnix(sr->rc.address + 5);
	} else {
		char host[256];
		const char *colon = strrchr(sr->rc.address, ':');
		size_t hl = (size_t)(colon - sr->rc.address);

		if (hl >= sizeof(host))
			hl = sizeof(host) - 1;
		memcpy(host, sr->rc.address, hl);
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
	if (pass[0] && sr->rc.username != NULL)
		redisAsyncCommand(ac, sr_on_auth, sr, "AUTH %s %s", sr->rc.username, pass);
	else if (pass[0])
		redisAsyncCommand(ac, sr_on_auth, sr, "AUTH %s", pass);
	memset(pass, 0, sizeof(pass));
	redisAsyncCommand(ac, sr_on_message, sr, "SUBSCRIBE %s:events", sr->rc.namespace);
}

static void
sr_on_debounce(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct store_redis *sr = w->data;

	(void)loop;
	(void)revents;
	sr->cb(&sr->base, sr->arg);
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
	sr->cb(&sr->base, sr->arg);
}

static void
sr_on_reconnect(struct ev_loop *loop, ev_timer *w, int revents)
{
	(void)loop;
	(void)revents;
	sr_connect_async(w->data);
}

static uint32_t
id_bit(const char *id)
{
	uint32_t h = 2166136261u;

	for (size_t i = 0; i < KEY_ID_LEN; i++)
		h = (h ^ (uint8_t)id[i]) * 16777619u;
	return h & 1023;
}

/* The last set with the pending ids re-read: their records fetched
 * (pipelined HGETALL), every other entry copied. A missing or bad record
 * drops the id, as a full load would. NULL with <err> (the caller then does a
 * full load). */
static struct ks_set *
sr_load_pending(struct store_redis *sr, char *err, size_t errlen)
{
	struct sr_read rd = { 0 };
	struct ks_entry *all = NULL;
	struct ks_set *set = NULL;
	uint64_t bits[1024 / 64] = { 0 };
	size_t n = 0, count = ks_count(sr->last);

	for (size_t i = 0; i < sr->npend; i++)
		redisAppendCommand(sr->sync, "HGETALL %s:key:%s", sr->rc.namespace, sr->pend[i]);
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
			rr = sr_record(&rd, sr->rc.namespace, &idr,
			               h->type == REDIS_REPLY_ERROR ? NULL : h);
		freeReplyObject(h);
		if (rr == -1) {
			snprintf(err, errlen, "out of memory");
			goto out;
		}
		bits[id_bit(sr->pend[i]) / 64] |= 1ull << (id_bit(sr->pend[i]) % 64);
	}
	all = malloc((count + rd.n + 1) * sizeof(*all));
	if (all == NULL) {
		snprintf(err, errlen, "out of memory");
		goto out;
	}
	for (size_t i = 0; i < count; i++) {
		const struct ks_entry *e = ks_entry_at(sr->last, i);
		uint32_t b = id_bit(e->id);
		bool pending = false;

		if (bits[b / 64] & (1ull << (b % 64)))
			for (size_t j = 0; j < sr->npend && !pending; j++)
				pending = strcmp(sr->pend[j], e->id) == 0;
		if (!pending)
			all[n++] = *e;
	}
	memcpy(all + n, rd.v, rd.n * sizeof(*all));
	set = ks_set_build(all, n + rd.n, err, errlen);
out:
	sr->records_skipped += rd.skipped;
	free(all);
	for (size_t i = 0; i < rd.nstrs; i++)
		free(rd.strs[i]);
	free(rd.strs);
	free(rd.v);
	return set;
}

static struct ks_set *
sr_load(struct store *st, char *err, size_t errlen)
{
	struct store_redis *sr = (struct store_redis *)st;
	struct ks_set *set = NULL;
	uint64_t gen = 0;
	bool full = true;

	if (sr_sync_ready(sr, err, errlen) == -1) {
		sr->load_failed = true;
		sr->gen_current = false;
		return NULL;
	}
	/* Only the ids events named, when that is all that may have changed;
	 * any failure falls back to a full load. */
	if (!sr->pend_full && sr->npend > 0 && sr->last != NULL) {
		set = sr_load_pending(sr, err, errlen);
		full = set == NULL;
	}
	if (set == NULL && !sr->sync->err)
		set = sr_read_all(sr->sync, sr->rc.namespace, &gen, &sr->records_skipped, err,
		                  errlen);
	if (set == NULL && sr->sync->err) {
		/* The connection died since the last load (a Redis restart shows
		 * only now): one retry on a fresh one. */
		redisFree(sr->sync);
		sr->sync = store_redis_connect(&sr->rc, err, errlen);
		if (sr->sync != NULL)
			set = sr_read_all(sr->sync, sr->rc.namespace, &gen, &sr->records_skipped,
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
		/* An incremental load keeps gen_current false (an event
		 * cleared it): the next check does a full load. */
		if (full) {
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
	ev_timer_init(&sr->reconnect_w, sr_on_reconnect, SR_RECONNECT, 0.);
	sr->reconnect_w.data = sr;
	ev_timer_init(&sr->resync_w, sr_on_resync, sr->rc.resync_interval,
	              sr->rc.resync_interval);
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
	free(sr->rc.address);
	free(sr->rc.password_file);
	free(sr->rc.username);
	free(sr->rc.namespace);
	free(sr);
}

static const char *
sr_where(const struct store *st)
{
	return ((const struct store_redis *)st)->where;
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
	.load = sr_load,
	.watch = sr_watch,
	.unwatch = sr_unwatch,
	.free = sr_free,
	.where = sr_where,
	.status = sr_status,
};

struct store *
store_redis_new(const struct store_redis_conf *rc, char *err, size_t errlen)
{
	struct store_redis *sr = calloc(1, sizeof(*sr));
	char pass[SR_PASS_MAX];

	if (sr == NULL) {
		snprintf(err, errlen, "store: out of memory");
		return NULL;
	}
	sr->base.ops = &store_redis_ops;
	sr->rc = *rc;
	sr->rc.address = strdup(rc->address);
	sr->rc.namespace = strdup(rc->namespace);
	sr->rc.password_file = rc->password_file ? strdup(rc->password_file) : NULL;
	sr->rc.username = rc->username ? strdup(rc->username) : NULL;
	if (sr->rc.address == NULL || sr->rc.namespace == NULL ||
	    (rc->password_file != NULL && sr->rc.password_file == NULL) ||
	    (rc->username != NULL && sr->rc.username == NULL)) {
		snprintf(err, errlen, "store: out of memory");
		sr_free(&sr->base);
		return NULL;
	}
	if (rc->password_file != NULL &&
	    read_password(rc->password_file, pass, sizeof(pass), err, errlen) == -1) {
		sr_free(&sr->base);
		return NULL;
	}
	memset(pass, 0, sizeof(pass));
	snprintf(sr->where, sizeof(sr->where), "redis:%s/%d/%s", rc->address, rc->database,
	         rc->namespace);
	return &sr->base;
}
