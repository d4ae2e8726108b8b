/* SPDX-License-Identifier: Apache-2.0 */
/*
 * store_redis: Redis as a store backend, the synchronous half: connection,
 * reads, MULTI/EXEC writes, and keyauthctl's store (read and transactions).
 * No libev here: the agent's change feed is store_redis_agent.c, which builds
 * on this file; keyauthctl links only this one.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <hiredis/hiredis.h>

#include "conf.h"
#include "keystore.h"
#include "log.h"
#include "store.h"
#include "store_redis.h"
#include "store_redis-int.h"

#define SR_SCAN_BATCH 1000
#define SR_EVENT_IDS_MAX 64      /* ids named in one event; more: "*" */

/* ---- connection, reads and writes ---------------------------------------- */

int
sr_read_password(const char *path, const struct ft_trust *trust, char *buf, size_t cap,
                 char *err, size_t errlen)
{
	struct ft_trust self;
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
	if (trust == NULL) {
		ft_trust_for(&self, NULL);
		trust = &self;
	}
	if (ft_check_path(trust, path, &st, err, errlen) == -1) {
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
store_redis_connect(const struct store_redis_conf *rc, const struct ft_trust *trust,
                    char *err, size_t errlen)
{
	struct timeval ct = { 2, 0 }, cmd = { 10, 0 };
	char pass[SR_PASS_MAX];
	redisContext *c;
	redisReply *r;

	pass[0] = '\0';
	if (rc->password_file != NULL &&
	    sr_read_password(rc->password_file, trust, pass, sizeof(pass), err, errlen) == -1)
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


/* Room for one more entry and its strings (route, routes, owner, alias,
 * tags). */
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
	if (rd->nstrs + 5 > rd->scap) {
		size_t ncap = rd->scap ? rd->scap * 2 : 2048;
		char **ns = realloc(rd->strs, ncap * sizeof(*ns));

		if (ns == NULL)
			return -1;
		rd->strs = ns;
		rd->scap = ncap;
	}
	return 0;
}

void
sr_read_free(struct sr_read *rd)
{
	for (size_t i = 0; i < rd->nstrs; i++)
		free(rd->strs[i]);
	free(rd->strs);
	free(rd->v);
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
int
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
		} else if (strcmp(k->str, "routes") == 0) {
			if ((e.routes = sr_keep(rd, v->str, v->len)) == NULL)
				return -1;
		} else if (strcmp(k->str, "alias") == 0) {
			if ((e.alias = sr_keep(rd, v->str, v->len)) == NULL)
				return -1;
		} else if (strcmp(k->str, "tags") == 0) {
			if ((e.tags = sr_keep(rd, v->str, v->len)) == NULL)
				return -1;
		} else if (strcmp(k->str, "rotated_from") == 0 ||
		           strcmp(k->str, "rotated_to") == 0) {
			char *to = k->str[8] == 'f' ? e.rotated_from : e.rotated_to;

			if (v->len > KEY_ID_LEN) {
				snprintf(why, sizeof(why), "bad %s", k->str);
				goto skip;
			}
			memcpy(to, v->str, v->len);
			to[v->len] = '\0';
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
		} else if (strcmp(k->str, "scopes") == 0) {
			if (parse_i64(v, &rpm) == -1 || rpm > KS_SCOPES_ALL)
				goto badnum;
			e.scopes = (uint32_t)rpm;
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
	/* The id is not a secret (it is printed by keyauthctl list); never the
	 * digest. The id may be garbage, so it is bounded and quoted. */
	log_warning("event=store_record_skipped namespace=%s id=%s reason=%s",
	            LOG_V(ns), LOG_QN(idr->type == REDIS_REPLY_STRING ? idr->str : "",
	            id_printable(idr) ? idr->len : 0), LOG_Q(why));
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
			log_warning("event=store_record_skipped namespace=%s id=%s "
			            "reason=\"digest also used by id\" other_id=%s", LOG_V(ns),
			            LOG_Q(rd->v[i].id), LOG_V(rd->v[w - 1].id));
			continue;
		}
		rd->v[w++] = rd->v[i];
	}
	rd->n = w;
}

struct ks_set *
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
	sr_read_free(&rd);
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

static const char *
sr_str(const char *s)
{
	return s != NULL ? s : "";
}

static bool
entry_same(const struct ks_entry *a, const struct ks_entry *b)
{
	return memcmp(a->digest, b->digest, KEY_DIGEST_LEN) == 0 &&
	    strcmp(a->route, b->route) == 0 && strcmp(a->owner, b->owner) == 0 &&
	    strcmp(ks_entry_routes(a), ks_entry_routes(b)) == 0 &&
	    strcmp(sr_str(a->alias), sr_str(b->alias)) == 0 &&
	    strcmp(sr_str(a->tags), sr_str(b->tags)) == 0 &&
	    strcmp(a->rotated_from, b->rotated_from) == 0 &&
	    strcmp(a->rotated_to, b->rotated_to) == 0 &&
	    a->created == b->created && a->expires == b->expires &&
	    a->revoked == b->revoked && a->rpm == b->rpm && a->scopes == b->scopes;
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

	const char **ids = NULL;

	for (size_t i = 0; i < n; i++)
		if (ks_entry_check(&v[i], err, errlen) == -1)
			return -1;
	if (old != NULL && ks_count(old) > 0 && (ids = ks_ids_sorted(v, n)) == NULL) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	redisAppendCommand(c, "MULTI");
	for (size_t i = 0; i < n; i++) {
		const struct ks_entry *o = old ? ks_find_id(old, v[i].id) : NULL;
		char hex[2 * KEY_DIGEST_LEN + 1];

		if (o != NULL && entry_same(o, &v[i]))
			continue;
		for (size_t j = 0; j < KEY_DIGEST_LEN; j++)
			snprintf(hex + 2 * j, 3, "%02x", v[i].digest[j]);
		/* Every field, empty ones too (HSET never removes a field). "route"
		 * is the first route: an older agent, which ignores "routes",
		 * allows the key there only. */
		redisAppendCommand(c, "HSET %s:key:%s digest %s route %s owner %s created %" PRId64
		                   " expires %" PRId64 " revoked %" PRId64 " rpm %" PRIu32
		                   " routes %s alias %s tags %s rotated_from %s rotated_to %s",
		                   ns, v[i].id, hex, v[i].route, v[i].owner, v[i].created,
		                   v[i].expires, v[i].revoked, v[i].rpm, ks_entry_routes(&v[i]),
		                   sr_str(v[i].alias), sr_str(v[i].tags), v[i].rotated_from,
		                   v[i].rotated_to);
		redisAppendCommand(c, "SADD %s:ids %s", ns, v[i].id);
		queued += 2;
		/* admin-route keys only, like the file's field */
		if (v[i].scopes != 0)
			redisAppendCommand(c, "HSET %s:key:%s scopes %" PRIu32, ns, v[i].id, v[i].scopes);
		else if (o != NULL && o->scopes != 0)
			redisAppendCommand(c, "HDEL %s:key:%s scopes", ns, v[i].id);
		queued += v[i].scopes != 0 || (o != NULL && o->scopes != 0);
		sr_event_add(msg, &nids, v[i].id);
	}
	for (size_t i = 0; old != NULL && i < ks_count(old); i++) {
		const struct ks_entry *o = ks_entry_at(old, i);

		if (ks_ids_has(ids, n, o->id))
			continue;
		redisAppendCommand(c, "DEL %s:key:%s", ns, o->id);
		redisAppendCommand(c, "SREM %s:ids %s", ns, o->id);
		queued += 2;
		sr_event_add(msg, &nids, o->id);
	}
	free(ids);
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

/* ---- keyauthctl's store ------------------------------------------------------
 * A transaction WATCHes the generation, reads the whole set, and writes the
 * changed records as one MULTI/EXEC (store_redis_commit), so a concurrent
 * writer makes this one fail instead of being overwritten. */

struct ks_set *
sr_client_read(struct store *st, char *err, size_t errlen)
{
	struct store_redis_client *cl = (struct store_redis_client *)st;
	struct redisContext *c = store_redis_connect(&cl->rc, &cl->trust, err, errlen);
	struct ks_set *set;

	if (c == NULL)
		return NULL;
	set = store_redis_read(c, cl->rc.namespace, NULL, err, errlen);
	store_redis_disconnect(c);
	return set;
}

struct ks_set *
sr_client_begin(struct store *st, int *locked, char *err, size_t errlen)
{
	struct store_redis_client *cl = (struct store_redis_client *)st;

	cl->tx = store_redis_connect(&cl->rc, &cl->trust, err, errlen);
	*locked = cl->tx != NULL;
	if (cl->tx == NULL)
		return NULL;
	if (store_redis_watch_gen(cl->tx, cl->rc.namespace, err, errlen) == -1)
		return NULL;
	return store_redis_read(cl->tx, cl->rc.namespace, NULL, err, errlen);
}

/* After a commit: 0 when write_replicas replicas acknowledged it, else 1
 * with <err>. */
static int
sr_client_replicated(struct store_redis_client *cl, char *err, size_t errlen)
{
	const struct store_redis_conf *rc = &cl->rc;
	int acked;

	/* Redis replicates asynchronously: without WAIT a failover right
	 * after this write could promote a replica that never saw it (a
	 * revoked key would work again). */
	acked = store_redis_wait(cl->tx, rc->write_replicas, rc->write_timeout_ms, err, errlen);
	if (acked >= 0 && (unsigned)acked >= rc->write_replicas)
		return 0;
	if (acked >= 0)
		snprintf(err, errlen, "the change is on the Redis primary at %s, but only %d of %u "
		         "replicas confirmed it within %u ms (write_replicas); a failover now could "
		         "undo it: check the replicas (INFO replication), then that the change "
		         "holds (keyauthctl key list)", rc->address, acked, rc->write_replicas,
		         rc->write_timeout_ms);
	else {
		char why[256];

		snprintf(why, sizeof(why), "%s", err);
		snprintf(err, errlen, "the change is on the Redis primary at %s, but its "
		         "replication could not be checked (%s); a failover now could undo it",
		         rc->address, why);
	}
	return 1;
}

int
sr_client_commit(struct store *st, const struct ks_set *old, const struct ks_entry *v, size_t n,
                 char *err, size_t errlen)
{
	struct store_redis_client *cl = (struct store_redis_client *)st;
	int r = store_redis_commit(cl->tx, cl->rc.namespace, old, v, n, err, errlen);

	if (r == 1)
		snprintf(err, errlen, "another writer changed the store meanwhile; run the command again");
	if (r != 0)
		return -1;
	if (cl->rc.write_replicas == 0)
		return 0;
	return sr_client_replicated(cl, err, errlen);
}

void
sr_client_end(struct store *st)
{
	struct store_redis_client *cl = (struct store_redis_client *)st;

	store_redis_disconnect(cl->tx);
	cl->tx = NULL;
}

int
sr_client_init(struct store_redis_client *cl, const struct store_ops *ops,
               const struct store_redis_conf *rc, const struct ft_trust *trust,
               char *err, size_t errlen)
{
	char pass[SR_PASS_MAX];

	cl->base.ops = ops;
	if (trust != NULL)
		cl->trust = *trust;
	else
		ft_trust_for(&cl->trust, NULL);
	cl->rc = *rc;
	cl->rc.address = strdup(rc->address);
	cl->rc.namespace = strdup(rc->namespace);
	cl->rc.password_file = rc->password_file ? strdup(rc->password_file) : NULL;
	cl->rc.username = rc->username ? strdup(rc->username) : NULL;
	if (cl->rc.address == NULL || cl->rc.namespace == NULL ||
	    (rc->password_file != NULL && cl->rc.password_file == NULL) ||
	    (rc->username != NULL && cl->rc.username == NULL)) {
		snprintf(err, errlen, "store: out of memory");
		return -1;
	}
	if (rc->password_file != NULL &&
	    sr_read_password(rc->password_file, &cl->trust, pass, sizeof(pass), err, errlen) == -1)
		return -1;
	memset(pass, 0, sizeof(pass));
	snprintf(cl->where, sizeof(cl->where), "redis:%s/%d/%s", rc->address, rc->database,
	         rc->namespace);
	return 0;
}

void
sr_client_fini(struct store_redis_client *cl)
{
	store_redis_disconnect(cl->tx);
	free(cl->rc.address);
	free(cl->rc.password_file);
	free(cl->rc.username);
	free(cl->rc.namespace);
}

static void
sr_client_free(struct store *st)
{
	sr_client_fini((struct store_redis_client *)st);
	free(st);
}

const char *
sr_client_where(const struct store *st)
{
	return ((const struct store_redis_client *)st)->where;
}

static const struct store_ops store_redis_client_ops = {
	.name = "redis",
	.flags = STORE_F_SHARED,
	.load = sr_client_read,
	.read = sr_client_read,
	.begin = sr_client_begin,
	.commit = sr_client_commit,
	.end = sr_client_end,
	.free = sr_client_free,
	.where = sr_client_where,
};

static struct store *
store_redis_client_new(const struct store_redis_conf *rc, const struct ft_trust *trust,
                       char *err, size_t errlen)
{
	struct store_redis_client *cl = calloc(1, sizeof(*cl));

	if (cl == NULL) {
		snprintf(err, errlen, "store: out of memory");
		return NULL;
	}
	if (sr_client_init(cl, &store_redis_client_ops, rc, trust, err, errlen) == -1) {
		sr_client_free(&cl->base);
		return NULL;
	}
	return &cl->base;
}

/* keyauthctl also trusts the packaged service user's files (dist/), so that
 * root may manage a store the agent, running as keyauth, owns. */
const struct store_role store_role_ctl = { "ctl", store_redis_client_new, "keyauth" };
