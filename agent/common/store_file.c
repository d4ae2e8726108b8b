/* SPDX-License-Identifier: Apache-2.0 */
/*
 * store_file: the msgpack key file as a store backend.
 *
 * Change detection has two layers: an ev_stat watcher (inotify where libev
 * has it) for a fast reaction, and a 250 ms timer that compares the file's
 * identity (inode, size, mtime, ctime), so a change is seen within 1 s even
 * where inotify misses renames. The callback fires only when the identity
 * differs from the one of the last load attempt, so one bad file is reported
 * once, not once per tick. keyauthctl's transactions lock the file and
 * rewrite it whole (see keystore.h).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <ev.h>

#include "filetrust.h"
#include "keystore.h"
#include "store.h"

#define STORE_POLL_INTERVAL 0.25

struct file_id {
	int exists;
	dev_t dev;
	ino_t ino;
	off_t size;
	struct timespec mtim;
	struct timespec ctim;
	mode_t mode;
};

struct store_file {
	struct store base;
	char *path;
	struct file_id last;     /* identity at the last load attempt */
	struct ev_loop *loop;
	ev_stat stat_w;
	ev_timer poll_w;
	store_changed_cb *cb;
	void *arg;
	int lock;                /* keyauthctl's transaction: the flock, -1 */
	struct ft_trust trust;   /* who may own the file and the directories above it */
};

static void
file_id_of(const struct stat *st, struct file_id *id)
{
	memset(id, 0, sizeof(*id));
	if (st->st_ino == 0)
		return;
	id->exists = 1;
	id->dev = st->st_dev;
	id->ino = st->st_ino;
	id->size = st->st_size;
	id->mtim = st->st_mtim;
	id->ctim = st->st_ctim;
	id->mode = st->st_mode;
}

static void
file_identity(const char *path, struct file_id *id)
{
	struct stat st;

	memset(id, 0, sizeof(*id));
	if (stat(path, &st) == -1)
		return;
	id->exists = 1;
	id->dev = st.st_dev;
	id->ino = st.st_ino;
	id->size = st.st_size;
	id->mtim = st.st_mtim;
	id->ctim = st.st_ctim;
	id->mode = st.st_mode;
}

static int
file_id_eq(const struct file_id *a, const struct file_id *b)
{
	return a->exists == b->exists && a->dev == b->dev && a->ino == b->ino &&
	    a->size == b->size && a->mode == b->mode &&
	    a->mtim.tv_sec == b->mtim.tv_sec && a->mtim.tv_nsec == b->mtim.tv_nsec &&
	    a->ctim.tv_sec == b->ctim.tv_sec && a->ctim.tv_nsec == b->ctim.tv_nsec;
}

/* The identity recorded is the one of the descriptor read: with a stat()
 * of the path before the read, a change landing between the two was judged
 * (its bytes read) under the old identity, and judged again when its own
 * event came: one bad file, two store_rejected lines (seen in the faults
 * e2e under load). A change after the read still differs from it. */
static struct ks_set *
sf_load(struct store *st, char *err, size_t errlen)
{
	struct store_file *sf = (struct store_file *)st;
	struct stat read_st;
	struct ks_set *ks = ks_set_load_stat(sf->path, NULL, &read_st, &sf->trust, err, errlen);

	if (read_st.st_ino != 0)
		file_id_of(&read_st, &sf->last);
	else    /* not opened (missing, unreadable): what the path shows now */
		file_identity(sf->path, &sf->last);
	return ks;
}

static void
sf_check(struct store_file *sf)
{
	struct file_id now;

	file_identity(sf->path, &now);
	if (!file_id_eq(&now, &sf->last))
		sf->cb(&sf->base, sf->arg);
}

static void
sf_on_stat(struct ev_loop *loop, ev_stat *w, int revents)
{
	(void)loop;
	(void)revents;
	sf_check(w->data);
}

static void
sf_on_poll(struct ev_loop *loop, ev_timer *w, int revents)
{
	(void)loop;
	(void)revents;
	sf_check(w->data);
}

static int
sf_watch(struct store *st, struct ev_loop *loop, store_changed_cb *cb, void *arg)
{
	struct store_file *sf = (struct store_file *)st;

	sf->loop = loop;
	sf->cb = cb;
	sf->arg = arg;
	ev_stat_init(&sf->stat_w, sf_on_stat, sf->path, STORE_POLL_INTERVAL);
	sf->stat_w.data = sf;
	ev_stat_start(loop, &sf->stat_w);
	ev_timer_init(&sf->poll_w, sf_on_poll, STORE_POLL_INTERVAL, STORE_POLL_INTERVAL);
	sf->poll_w.data = sf;
	ev_timer_start(loop, &sf->poll_w);
	return 0;
}

static void
sf_unwatch(struct store *st)
{
	struct store_file *sf = (struct store_file *)st;

	if (sf->loop == NULL)
		return;
	ev_stat_stop(sf->loop, &sf->stat_w);
	ev_timer_stop(sf->loop, &sf->poll_w);
	sf->loop = NULL;
}

static void
sf_free(struct store *st)
{
	struct store_file *sf = (struct store_file *)st;

	sf_unwatch(st);
	free(sf->path);
	free(sf);
}

static const char *
sf_where(const struct store *st)
{
	return ((const struct store_file *)st)->path;
}

/* ---- keyauthctl: unlocked read and transactions ----------------------------
 * A transaction holds an exclusive flock on the file, and rewrites it whole
 * with generation + 1. */

static struct ks_set *
sf_read(struct store *st, char *err, size_t errlen)
{
	struct store_file *sf = (struct store_file *)st;

	return ks_set_load_stat(sf->path, NULL, NULL, &sf->trust, err, errlen);
}

static struct ks_set *
sf_begin(struct store *st, int *locked, char *err, size_t errlen)
{
	struct store_file *sf = (struct store_file *)st;

	/* Nothing (not even the lock file) is written where another user
	 * could have planted the store: its directories are checked first. */
	if (ft_check_path(&sf->trust, sf->path, NULL, err, errlen) == -1) {
		*locked = 1;     /* not a lock failure: the store is refused */
		return NULL;
	}
	sf->lock = ks_file_lock(sf->path, err, errlen);
	*locked = sf->lock != -1;
	if (sf->lock == -1)
		return NULL;
	return ks_set_load_stat(sf->path, NULL, NULL, &sf->trust, err, errlen);
}

static int
sf_commit(struct store *st, const struct ks_set *old, const struct ks_entry *v, size_t n,
          char *err, size_t errlen)
{
	return ks_file_write_gen(((struct store_file *)st)->path, v, n, ks_generation(old) + 1,
	                         err, errlen);
}

static void
sf_end(struct store *st)
{
	struct store_file *sf = (struct store_file *)st;

	if (sf->lock != -1)
		ks_file_unlock(sf->lock);
	sf->lock = -1;
}

static const struct store_ops store_file_ops = {
	.name = "file",
	.flags = STORE_F_WATCH_FILE,
	.load = sf_load,
	.watch = sf_watch,
	.unwatch = sf_unwatch,
	.read = sf_read,
	.begin = sf_begin,
	.commit = sf_commit,
	.end = sf_end,
	.free = sf_free,
	.where = sf_where,
};

struct store *
store_file_new(const char *path, const struct ft_trust *trust)
{
	struct store_file *sf = calloc(1, sizeof(*sf));

	if (sf == NULL)
		return NULL;
	sf->base.ops = &store_file_ops;
	sf->lock = -1;
	if (trust != NULL)
		sf->trust = *trust;
	else
		ft_trust_for(&sf->trust, NULL);
	sf->path = strdup(path);
	if (sf->path == NULL) {
		free(sf);
		return NULL;
	}
	return &sf->base;
}
