/* SPDX-License-Identifier: Apache-2.0 */
/*
 * usage: reading the per-key usage keyauthd records (usage.h), and writing
 * its state file. keyauthd's counting and merging is agent/keyauthd/
 * usage_agent.c; this file only knows the two formats at rest.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <hiredis/hiredis.h>
#include <msgpack.h>

#include "conf.h"
#include "store_redis.h"
#include "usage.h"

#define USAGE_FILE_MAX  (1UL << 30)    /* refuse to read a larger state file */

struct usage_set {
	struct usage_rec *v;     /* sorted by id, then route */
	size_t n, cap;
};

static void
u_err(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (err == NULL || errlen == 0)
		return;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

/* Adds (or merges into the record already there: counts summed, last use the
 * latest) one record with copies of <id>/<route>. 0 or -1 (out of memory). */
static int
u_add(struct usage_set *u, const char *id, size_t idlen, const char *route, size_t rlen,
      uint64_t requests, int64_t last_used)
{
	struct usage_rec *r;
	char *s;

	if (u->n == u->cap) {
		size_t cap = u->cap ? u->cap * 2 : 64;
		struct usage_rec *nv = realloc(u->v, cap * sizeof(*nv));

		if (nv == NULL)
			return -1;
		u->v = nv;
		u->cap = cap;
	}
	if ((s = malloc(idlen + 1 + rlen + 1)) == NULL)
		return -1;
	memcpy(s, id, idlen);
	s[idlen] = '\0';
	memcpy(s + idlen + 1, route, rlen);
	s[idlen + 1 + rlen] = '\0';
	r = &u->v[u->n++];
	r->id = s;
	r->route = s + idlen + 1;
	r->requests = requests;
	r->last_used = last_used;
	return 0;
}

static int
u_cmp(const void *a, const void *b)
{
	const struct usage_rec *x = a, *y = b;
	int c = strcmp(x->id, y->id);

	return c != 0 ? c : strcmp(x->route, y->route);
}

/* Sorts, and folds records of the same (id, route) into one. */
static void
u_finish(struct usage_set *u)
{
	size_t o = 0;

	if (u->n > 1)
		qsort(u->v, u->n, sizeof(*u->v), u_cmp);
	for (size_t i = 0; i < u->n; i++) {
		if (o > 0 && u_cmp(&u->v[o - 1], &u->v[i]) == 0) {
			u->v[o - 1].requests += u->v[i].requests;
			if (u->v[i].last_used > u->v[o - 1].last_used)
				u->v[o - 1].last_used = u->v[i].last_used;
			free((char *)u->v[i].id);
			continue;
		}
		u->v[o++] = u->v[i];
	}
	u->n = o;
}

void
usage_free(struct usage_set *u)
{
	if (u == NULL)
		return;
	for (size_t i = 0; i < u->n; i++)
		free((char *)u->v[i].id);
	free(u->v);
	free(u);
}

size_t
usage_count(const struct usage_set *u)
{
	return u != NULL ? u->n : 0;
}

const struct usage_rec *
usage_at(const struct usage_set *u, size_t i)
{
	return u != NULL && i < u->n ? &u->v[i] : NULL;
}

bool
usage_key(const struct usage_set *u, const char *id, uint64_t *requests, int64_t *last_used)
{
	size_t lo = 0, hi = u != NULL ? u->n : 0;
	bool seen = false;

	*requests = 0;
	*last_used = 0;
	while (lo < hi) {            /* the first record of <id> */
		size_t mid = lo + (hi - lo) / 2;

		if (strcmp(u->v[mid].id, id) < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	for (; u != NULL && lo < u->n && strcmp(u->v[lo].id, id) == 0; lo++) {
		seen = true;
		*requests += u->v[lo].requests;
		if (u->v[lo].last_used > *last_used)
			*last_used = u->v[lo].last_used;
	}
	return seen;
}

char *
usage_path(const struct conf *c)
{
	size_t len;
	char *p;

	if (c->store_redis != NULL || c->store_path == NULL)
		return NULL;
	len = strlen(c->store_path) + sizeof(".usage");
	if ((p = malloc(len)) != NULL)
		snprintf(p, len, "%s.usage", c->store_path);
	return p;
}

/* ---- the file ------------------------------------------------------------------ */

static bool
u_str(const msgpack_object *o, const char **p, size_t *len)
{
	if (o->type != MSGPACK_OBJECT_STR || o->via.str.size == 0 || o->via.str.size > 200 ||
	    memchr(o->via.str.ptr, '\0', o->via.str.size) != NULL)
		return false;
	*p = o->via.str.ptr;
	*len = o->via.str.size;
	return true;
}

static int
u_parse(struct usage_set *u, const char *buf, size_t len, char *err, size_t errlen)
{
	msgpack_unpacked m;
	const msgpack_object *list = NULL;
	size_t off = 0;
	int rc = -1;

	msgpack_unpacked_init(&m);
	if (msgpack_unpack_next(&m, buf, len, &off) != MSGPACK_UNPACK_SUCCESS ||
	    m.data.type != MSGPACK_OBJECT_MAP) {
		u_err(err, errlen, "not a usage file (msgpack map expected)");
		goto out;
	}
	for (uint32_t i = 0; i < m.data.via.map.size; i++) {
		const msgpack_object *k = &m.data.via.map.ptr[i].key, *v = &m.data.via.map.ptr[i].val;

		if (k->type != MSGPACK_OBJECT_STR)
			continue;
		if (k->via.str.size == 7 && memcmp(k->via.str.ptr, "version", 7) == 0 &&
		    (v->type != MSGPACK_OBJECT_POSITIVE_INTEGER || v->via.u64 != USAGE_FILE_VERSION)) {
			u_err(err, errlen, "unsupported usage file version");
			goto out;
		}
		if (k->via.str.size == 5 && memcmp(k->via.str.ptr, "usage", 5) == 0)
			list = v;
	}
	if (list == NULL || list->type != MSGPACK_OBJECT_ARRAY) {
		u_err(err, errlen, "no usage list");
		goto out;
	}
	for (uint32_t i = 0; i < list->via.array.size; i++) {
		const msgpack_object *r = &list->via.array.ptr[i];
		const char *id, *route;
		size_t idlen, rlen;

		if (r->type != MSGPACK_OBJECT_ARRAY || r->via.array.size < 4 ||
		    !u_str(&r->via.array.ptr[0], &id, &idlen) ||
		    !u_str(&r->via.array.ptr[1], &route, &rlen) ||
		    r->via.array.ptr[2].type != MSGPACK_OBJECT_POSITIVE_INTEGER ||
		    r->via.array.ptr[3].type != MSGPACK_OBJECT_POSITIVE_INTEGER ||
		    r->via.array.ptr[3].via.u64 > INT64_MAX) {
			u_err(err, errlen, "record %u: bad format", i);
			goto out;
		}
		if (u_add(u, id, idlen, route, rlen, r->via.array.ptr[2].via.u64,
		          (int64_t)r->via.array.ptr[3].via.u64) == -1) {
			u_err(err, errlen, "out of memory");
			goto out;
		}
	}
	rc = 0;
out:
	msgpack_unpacked_destroy(&m);
	return rc;
}

static int
u_read_file(struct usage_set *u, const char *path, char *err, size_t errlen)
{
	struct stat st;
	char *buf = NULL, msg[200];
	size_t got = 0;
	int fd, rc = -1;

	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	if (fd == -1) {
		if (errno == ENOENT)
			return 0;                /* no usage recorded yet */
		u_err(err, errlen, "%s: %s", path, strerror(errno));
		return -1;
	}
	if (fstat(fd, &st) == -1 || !S_ISREG(st.st_mode) || (size_t)st.st_size > USAGE_FILE_MAX) {
		u_err(err, errlen, "%s: not a regular file of at most 1 GB", path);
		goto out;
	}
	if (st.st_size == 0) {
		rc = 0;
		goto out;
	}
	if ((buf = malloc((size_t)st.st_size)) == NULL) {
		u_err(err, errlen, "%s: out of memory", path);
		goto out;
	}
	while (got < (size_t)st.st_size) {
		ssize_t n = read(fd, buf + got, (size_t)st.st_size - got);

		if (n == -1 && errno == EINTR)
			continue;
		if (n <= 0) {
			u_err(err, errlen, "%s: read: %s", path, n == 0 ? "short file" : strerror(errno));
			goto out;
		}
		got += (size_t)n;
	}
	if (u_parse(u, buf, got, msg, sizeof(msg)) == -1) {
		u_err(err, errlen, "%s: %s", path, msg);
		goto out;
	}
	rc = 0;
out:
	free(buf);
	close(fd);
	return rc;
}

static int
u_write_all(int fd, const char *p, size_t len)
{
	while (len > 0) {
		ssize_t n = write(fd, p, len);

		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1)
			return -1;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

int
usage_file_write(const char *path, const struct usage_rec *v, size_t n, char *err, size_t errlen)
{
	msgpack_sbuffer sb;
	msgpack_packer pk;
	const char *slash = strrchr(path, '/');
	char *tmp = NULL, dir[4096];
	size_t tmplen;
	int fd = -1, dfd, rc = -1;

	if (slash == NULL)
		strcpy(dir, ".");
	else if (slash == path)
		strcpy(dir, "/");
	else if ((size_t)(slash - path) < sizeof(dir)) {
		memcpy(dir, path, (size_t)(slash - path));
		dir[slash - path] = '\0';
	} else {
		u_err(err, errlen, "%s: path too long", path);
		return -1;
	}
	msgpack_sbuffer_init(&sb);
	msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
	msgpack_pack_map(&pk, 2);
	msgpack_pack_str_with_body(&pk, "version", 7);
	msgpack_pack_uint32(&pk, USAGE_FILE_VERSION);
	msgpack_pack_str_with_body(&pk, "usage", 5);
	msgpack_pack_array(&pk, (uint32_t)n);
	for (size_t i = 0; i < n; i++) {
		msgpack_pack_array(&pk, 4);
		msgpack_pack_str_with_body(&pk, v[i].id, strlen(v[i].id));
		msgpack_pack_str_with_body(&pk, v[i].route, strlen(v[i].route));
		msgpack_pack_uint64(&pk, v[i].requests);
		msgpack_pack_uint64(&pk, v[i].last_used > 0 ? (uint64_t)v[i].last_used : 0);
	}
	tmplen = strlen(path) + sizeof(".XXXXXX") + 1;
	if (sb.data == NULL || (tmp = malloc(tmplen)) == NULL) {
		u_err(err, errlen, "%s: out of memory", path);
		goto out;
	}
	snprintf(tmp, tmplen, "%s.XXXXXX", path);
	if ((fd = mkostemp(tmp, O_CLOEXEC)) == -1) {
		u_err(err, errlen, "%s: create temporary file: %s", path, strerror(errno));
		goto out;
	}
	if (fchmod(fd, 0600) == -1 || u_write_all(fd, sb.data, sb.size) == -1 || fsync(fd) == -1 ||
	    close(fd) == -1) {
		u_err(err, errlen, "%s: write %s: %s", path, tmp, strerror(errno));
		if (fd != -1)
			close(fd);
		unlink(tmp);
		goto out;
	}
	if (rename(tmp, path) == -1) {
		u_err(err, errlen, "%s: rename from %s: %s", path, tmp, strerror(errno));
		unlink(tmp);
		goto out;
	}
	if ((dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) != -1) {
		fsync(dfd);
		close(dfd);
	}
	rc = 0;
out:
	msgpack_sbuffer_destroy(&sb);
	free(tmp);
	return rc;
}

/* ---- Redis --------------------------------------------------------------------- */

/* HSCANs <ns><suffix> and feeds each field/value pair to the set: requests
 * when <last> is false, last use otherwise. */
static int
u_scan(redisContext *rc, struct usage_set *u, const char *ns, const char *suffix, bool last,
       char *err, size_t errlen)
{
	char cursor[32] = "0";

	do {
		redisReply *r = redisCommand(rc, "HSCAN %s%s %s COUNT 1000", ns, suffix, cursor);

		if (r == NULL || r->type != REDIS_REPLY_ARRAY || r->elements != 2 ||
		    r->element[0]->type != REDIS_REPLY_STRING ||
		    r->element[1]->type != REDIS_REPLY_ARRAY) {
			u_err(err, errlen, "redis HSCAN %s%s: %s", ns, suffix,
			      r == NULL ? rc->errstr : r->type == REDIS_REPLY_ERROR ? r->str : "bad reply");
			if (r != NULL)
				freeReplyObject(r);
			return -1;
		}
		snprintf(cursor, sizeof(cursor), "%s", r->element[0]->str);
		for (size_t i = 0; i + 1 < r->element[1]->elements; i += 2) {
			const redisReply *f = r->element[1]->element[i];
			const redisReply *val = r->element[1]->element[i + 1];
			const char *colon;
			unsigned long long x;
			char *end;

			if (f->type != REDIS_REPLY_STRING || val->type != REDIS_REPLY_STRING ||
			    (colon = memchr(f->str, ':', f->len)) == NULL || colon == f->str ||
			    colon + 1 == f->str + f->len)
				continue;
			errno = 0;
			x = strtoull(val->str, &end, 10);
			if (errno != 0 || *end != '\0' || val->str[0] == '-' || (last && x > INT64_MAX))
				continue;
			if (u_add(u, f->str, (size_t)(colon - f->str), colon + 1,
			          f->len - (size_t)(colon - f->str) - 1, last ? 0 : x,
			          last ? (int64_t)x : 0) == -1) {
				freeReplyObject(r);
				u_err(err, errlen, "out of memory");
				return -1;
			}
		}
		freeReplyObject(r);
	} while (strcmp(cursor, "0") != 0);
	return 0;
}

static int
u_read_redis(struct usage_set *u, const struct conf *c, char *err, size_t errlen)
{
	redisContext *rc = store_redis_connect(c->store_redis, NULL, err, errlen);
	int rv;

	if (rc == NULL)
		return -1;
	rv = u_scan(rc, u, c->store_redis->namespace, USAGE_REDIS_REQUESTS, false, err, errlen);
	if (rv == 0)
		rv = u_scan(rc, u, c->store_redis->namespace, USAGE_REDIS_LAST, true, err, errlen);
	store_redis_disconnect(rc);
	return rv;
}

struct usage_set *
usage_read(const struct conf *c, char *err, size_t errlen)
{
	struct usage_set *u = calloc(1, sizeof(*u));
	char *path = NULL;
	int rv;

	if (u == NULL) {
		u_err(err, errlen, "out of memory");
		return NULL;
	}
	if (c->store_redis != NULL) {
		rv = u_read_redis(u, c, err, errlen);
	} else if ((path = usage_path(c)) == NULL) {
		u_err(err, errlen, "out of memory");
		rv = -1;
	} else {
		rv = u_read_file(u, path, err, errlen);
	}
	free(path);
	if (rv == -1) {
		usage_free(u);
		return NULL;
	}
	u_finish(u);
	return u;
}
