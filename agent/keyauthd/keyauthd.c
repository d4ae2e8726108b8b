/* SPDX-License-Identifier: Apache-2.0 */
/*
 * keyauthd: the SPOE agent. Main thread: configuration, listeners, signals,
 * store watching and snapshot publication. Worker threads: everything on the
 * request path (worker.c, conn.c).
 */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <ev.h>

#include "conf.h"
#include "control.h"
#include "filetrust.h"
#include "keystore.h"
#include "listener.h"
#include "log.h"
#include "metrics.h"
#include "snap.h"
#include "startup.h"
#include "usage_agent.h"
#include "stats.h"
#include "store.h"
#include "tls.h"
#include "worker.h"
#include "version.h"

#define KEYAUTHD_VERSION KEYAUTH_VERSION
#define LISTEN_BACKLOG   4096     /* reloads reopen every agent connection at once */

struct daemon {
	char *conf_path;
	struct conf_ref *cref;
	struct store *store;
	struct ks_set *ks;            /* last good key set */
	uint64_t gen;
	struct worker workers[WORKER_MAX];
	unsigned nworkers;
	int shared_fds[CONF_MAX_LISTENERS];
	char *unix_paths[CONF_MAX_LISTENERS];  /* removed at exit */
	char *pid_path;               /* the pid file written at start, removed at exit */
	unsigned nshared;
	struct ev_loop *loop;
	ev_signal sighup, sigterm, sigint;
	struct control *control;
	struct metrics *metrics;
	double started;               /* ev_now at start */
	uint64_t reloads_ok, reloads_rejected;
	uint64_t store_loads_ok, store_loads_rejected;
	double store_last_time;       /* ev_now of the last store load attempt */
	bool store_last_ok;
	ev_timer stale_w;             /* shared store: staleness check, 1 s */
	bool stale;                   /* shared store past max_staleness */
	struct ks_set *deny_set;      /* published instead of ks while stale, stale_action deny */
	double config_last_time;
	bool config_last_ok;
	struct usage_agent *usage;    /* per-key usage; NULL: not counted */
	ev_timer usage_w;             /* merge and write it, every USAGE_PERIOD */
};

static void
usage(FILE *f)
{
	fprintf(f,
	    "usage: keyauthd [-t] [-c FILE]\n"
	    "  -c, --config FILE  configuration file (default $KEYAUTH_CONF, else\n"
	    "                     " CONF_DEFAULT_PATH ")\n"
	    "  -t, --test         check the configuration and the key store, then exit 0 (OK) or 1\n"
	    "  -V, --version      print the version\n"
	    "  -h, --help         print this help\n"
	    "Started as root, keyauthd switches to the configuration's user after binding;\n"
	    "without one it refuses to run unless KEYAUTH_ALLOW_ROOT=1 is set.\n"
	    "example: keyauthd -t -c /etc/keyauth/keyauth.conf\n");
}

/* Logs each line of a multi-line error text. */
static void
log_lines(int level, const char *event, const char *text)
{
	const char *p = text;

	while (*p != '\0') {
		const char *nl = strchr(p, '\n');
		int len = nl != NULL ? (int)(nl - p) : (int)strlen(p);

		if (len > 0)
			log_msg(level, "event=%s error=%s", event, LOG_QN(p, len));
		p += len + (nl != NULL);
	}
}

/* ---- listeners ---------------------------------------------------------------- */

static int
open_listeners(struct daemon *d, const struct conf *c)
{
	char err[1024];
	struct ft_trust t;
	unsigned i, k;

	ft_trust_for(&t, c->user);
	for (i = 0; i < c->nlisten; i++) {
		const struct listen_conf *l = &c->listen[i];

		if (l->family == LISTEN_TCP && !l->tls)
			log_warning("event=plain_tcp_listener addr=%s allowed_by=allow_plain_tcp "
			    "note=\"" PLAIN_TCP_RISK "\"", LOG_V(l->addr));
		if (l->family == LISTEN_UNIX) {
			int fd;

			fd = listener_open(l, false, LISTEN_BACKLOG, &t, err, sizeof(err));
			if (fd == -1)
				goto fail;
			d->unix_paths[d->nshared] = strdup(l->path);
			d->shared_fds[d->nshared++] = fd;
			for (k = 0; k < d->nworkers; k++)
				worker_add_listener(&d->workers[k], fd, true, l->tls);
		} else {
			/* Bound alone first, to prove the address free (listener.h). */
			int probe = listener_open(l, false, LISTEN_BACKLOG, NULL, err, sizeof(err));

			if (probe == -1)
				goto fail;
			close(probe);
			for (k = 0; k < d->nworkers; k++) {
				int fd = listener_open(l, true, LISTEN_BACKLOG, NULL, err, sizeof(err));

				if (fd == -1)
					goto fail;
				worker_add_listener(&d->workers[k], fd, false, l->tls);
			}
		}
		log_info("event=listening addr=%s workers=%u", LOG_V(l->addr), d->nworkers);
	}
	return 0;
fail:
	log_err("event=listen_failed error=%s", LOG_Q(err));
	return -1;
}

/* ---- snapshots, reloads ---------------------------------------------------------- */

static void
publish(struct daemon *d)
{
	struct snap *s;
	unsigned i;

	s = snap_new(d->cref, d->stale && d->deny_set != NULL ? d->deny_set : d->ks, ++d->gen);
	if (s == NULL) {
		log_err("event=publish_failed error=\"out of memory\"");
		return;
	}
	usage_agent_track(d->usage, s);
	for (i = 0; i < d->nworkers; i++)
		worker_publish(&d->workers[i], snap_get(s));
	snap_put(s);
}

static int
reload_store(struct daemon *d, const char *why)
{
	char err[1024];
	struct ks_set *ks;

	ks = d->store->ops->load(d->store, err, sizeof(err));
	d->store_last_time = ev_now(d->loop);
	d->store_last_ok = ks != NULL;
	if (ks == NULL)
		d->store_loads_rejected++;
	else
		d->store_loads_ok++;
	if (ks == NULL) {
		log_lines(LOG_ERR, "store_rejected", err);
		log_err("event=store_rejected where=%s trigger=%s action=keep_previous keys=%zu",
		    LOG_V(d->store->ops->where(d->store)), why, ks_count(d->ks));
		return -1;
	}
	ks_set_unref(d->ks);
	d->ks = ks;
	if (d->stale) {
		d->stale = false;
		log_notice("event=store_fresh where=%s", LOG_V(d->store->ops->where(d->store)));
	}
	log_info("event=store_loaded where=%s trigger=%s keys=%zu generation=%llu",
	    LOG_V(d->store->ops->where(d->store)), why, ks_count(ks),
	    (unsigned long long)d->gen + 1);
	return 0;
}

static void
on_store_changed(struct store *st, void *arg)
{
	struct daemon *d = arg;

	(void)st;
	if (reload_store(d, "change") == 0)
		publish(d);
}

/* A shared store past max_staleness (disconnected, or its loads failing, for
 * longer than that since the last good load): logged once; with
 * stale_action "deny" the workers get the deny-all set until a load succeeds
 * (reload_store clears the state; its caller publishes the real set). */
static void
on_stale_tick(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct daemon *d = w->data;
	const struct store_redis_conf *rc = d->cref->conf->store_redis;
	struct store_status ss;

	(void)revents;
	if (rc == NULL || !store_has(d->store, STORE_F_SHARED) || d->stale)
		return;
	store_get_status(d->store, ev_now(loop), &ss);
	if ((ss.connected && d->store_last_ok) || ss.age <= rc->max_staleness)
		return;
	d->stale = true;
	log_err("event=store_stale where=%s age_s=%.0f max_staleness=%u action=%s",
	    LOG_V(d->store->ops->where(d->store)), ss.age, rc->max_staleness,
	    rc->stale_deny ? "deny" : "serve_last_set");
	if (rc->stale_deny) {
		if (d->deny_set == NULL)
			d->deny_set = ks_set_deny_all();
		publish(d);
	}
}

static int
listeners_equal(const struct conf *a, const struct conf *b)
{
	unsigned i;

	if (a->nlisten != b->nlisten)
		return 0;
	for (i = 0; i < a->nlisten; i++)
		if (strcmp(a->listen[i].addr, b->listen[i].addr) != 0)
			return 0;
	return 1;
}

/* Route overrides naming a route the config no longer has are ignored
 * (conf_overrides.c): said, never a reason to refuse the config. */
static void
overrides_note(const struct conf *c)
{
	for (unsigned i = 0; c->overrides != NULL && i < c->overrides->norphans; i++)
		log_warning("event=route_override_ignored route=%s reason=no_such_route "
		            "fix=\"keyauthctl route set %s --reset\"", c->overrides->orphans[i],
		            c->overrides->orphans[i]);
}

static int
reload_config(struct daemon *d)
{
	char err[4096];
	struct conf *c;
	const struct conf *old = d->cref->conf;
	struct conf_ref *cref;
	SSL_CTX *tls_ctx = NULL;

	c = conf_load(d->conf_path, err, sizeof(err));
	if (c != NULL && tls_ctx_for_conf(c, &tls_ctx, err, sizeof(err)) == -1) {
		conf_free(c);   /* bad certificate or key: the old context keeps serving */
		c = NULL;
	}
	if (c == NULL) {
		log_lines(LOG_ERR, "reload_rejected", err);
		log_err("event=reload result=rejected action=keep_running_config");
		d->reloads_rejected++;
		d->config_last_time = ev_now(d->loop);
		d->config_last_ok = false;
		return -1;
	}
	if (!listeners_equal(old, c) || old->workers != c->workers ||
	    (old->metrics.addr == NULL) != (c->metrics.addr == NULL) ||
	    (old->metrics.addr != NULL && strcmp(old->metrics.addr, c->metrics.addr) != 0) ||
	    (old->user == NULL) != (c->user == NULL) ||
	    (old->user != NULL && strcmp(old->user, c->user) != 0))
		log_warning("event=reload_partial note=\"listen, metrics_listen, workers and user changes need a restart\"");
	cref = conf_ref_new(c);
	if (cref == NULL) {
		conf_free(c);
		SSL_CTX_free(tls_ctx);
		log_err("event=reload result=rejected error=\"out of memory\"");
		d->reloads_rejected++;
		return -1;
	}
	cref->tls_ctx = tls_ctx;
	log_set(c->log_level, c->log_target);
	if (!store_same(d->store, c)) {
		struct store *st = store_open(c, &store_role_agent, err, sizeof(err));

		if (st != NULL) {
			struct store *prev = d->store;

			d->store = st;
			if (reload_store(d, "reload") == 0) {
				store_free(prev);
				st->ops->watch(st, d->loop, on_store_changed, d);
			} else {
				d->store = prev;
				store_free(st);
			}
		}
	} else {
		reload_store(d, "reload");
	}
	conf_ref_put(d->cref);
	d->cref = cref;
	publish(d);
	d->reloads_ok++;
	d->config_last_time = ev_now(d->loop);
	d->config_last_ok = true;
	log_info("event=reload result=ok routes=%u", c->nroutes);
	overrides_note(c);
	return 0;
}

/* ---- control socket: stats and reload ---------------------------------------- */

/* Fills <v> with the daemon's numbers and <sum> with the workers' counters,
 * summed now. Route counts are those of the workers already on the current
 * configuration. */
static void
stats_fill(struct daemon *d, struct stats_view *v, struct stats_sum *sum)
{
	const struct conf *c = d->cref->conf;

	stats_sum_workers(d->workers, d->nworkers, d->cref, c->nroutes, sum);
	memset(v, 0, sizeof(*v));
	v->version = KEYAUTHD_VERSION;
	v->pid = (long)getpid();
	v->now = ev_now(d->loop);
	v->started = d->started;
	v->workers = d->nworkers;
	v->conn_current = atomic_load(&worker_conn_count);
	v->conf = c;
	v->sum = sum;
	v->store_backend = d->store->ops->name;
	v->store_where = d->store->ops->where(d->store);
	v->generation = d->gen;
	v->file_generation = ks_generation(d->ks);
	v->keys = ks_count(d->ks);
	v->store_loads_ok = d->store_loads_ok;
	v->store_loads_rejected = d->store_loads_rejected;
	v->store_last_time = d->store_last_time;
	v->store_last_ok = d->store_last_ok;
	store_get_status(d->store, v->now, &v->store_status);
	if (d->store->ops->status == NULL)
		v->store_status.resyncs = d->store_loads_ok;   /* every file load is full */
	if (store_has(d->store, STORE_F_SHARED)) {
		v->store_shared = true;
		v->store_stale = d->stale;
	}
	v->reloads_ok = d->reloads_ok;
	v->reloads_rejected = d->reloads_rejected;
	v->config_last_time = d->config_last_time;
	v->tls_not_after = (double)tls_ctx_not_after(d->cref->tls_ctx);
	v->config_last_ok = d->config_last_ok;
	{
		struct usage_stats us;

		usage_agent_stats(d->usage, (int64_t)v->now, &us);
		v->usage_flushes = us.flushes;
		v->usage_flush_failures = us.flush_failures;
		v->keys_expiring_7d = us.keys_expiring_7d;
		v->keys_unused_30d = us.keys_unused_30d;
	}
}

/* The same numbers for the control socket (JSON) and /metrics (Prometheus). */
static int
render_stats(struct daemon *d, FILE *f, bool prom)
{
	struct stats_sum *sum = malloc(sizeof(*sum));   /* 70 KB of route counters */
	struct stats_view v;

	if (sum == NULL)
		return -1;
	stats_fill(d, &v, sum);
	if (prom)
		stats_render_prom(&v, f);
	else
		stats_render_json(&v, f);
	free(sum);
	return 0;
}

static int
on_metrics(void *arg, FILE *f)
{
	return render_stats(arg, f, true);
}

static int
on_control(void *arg, const char *cmd, FILE *f)
{
	struct daemon *d = arg;

	if (strcmp(cmd, "stats") == 0) {
		if (render_stats(d, f, false) == -1)
			fprintf(f, "{\"error\":\"out of memory\"}");
		return 0;
	}
	if (strcmp(cmd, "reload") == 0) {
		log_info("event=reload trigger=control");
		fprintf(f, "{\"reload\":\"%s\"}", reload_config(d) == 0 ? "ok" : "rejected");
		return 0;
	}
	return -1;
}

static void
on_sighup(struct ev_loop *loop, ev_signal *w, int revents)
{
	(void)loop;
	(void)revents;
	reload_config(w->data);
}

static void
on_usage_tick(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct daemon *d = w->data;

	(void)revents;
	usage_agent_flush(d->usage, (int64_t)ev_now(loop));
}

static void
on_sigterm(struct ev_loop *loop, ev_signal *w, int revents)
{
	(void)w;
	(void)revents;
	log_info("event=stopping signal=%d", w->signum);
	ev_break(loop, EVBREAK_ALL);
}

/* ---- main ----------------------------------------------------------------------- */

/* Root for the whole life of a network daemon is refused unless the
 * operator says so explicitly (tests, containers). */
static int
check_root(const struct conf *c, const char *path)
{
	const char *allow = getenv("KEYAUTH_ALLOW_ROOT");

	if (c->user != NULL || geteuid() != 0)
		return 0;
	if (allow == NULL || strcmp(allow, "1") != 0) {
		log_err("event=start_failed error=\"running as root without a user setting\" "
		    "note=\"set user = \\\"keyauth\\\"; in the configuration (recommended), or "
		    "start with KEYAUTH_ALLOW_ROOT=1 to run as root on purpose\" config=%s",
		    LOG_V(path));
		return -1;
	}
	log_warning("event=running_as_root allowed_by=KEYAUTH_ALLOW_ROOT "
	    "note=\"set user in the configuration\"");
	return 0;
}

/* The first key set, from the configured store. No previous set to fall
 * back on: refusing to start makes HAProxy answer 503, not a misleading
 * 401 for every key. */
static int
load_first_set(struct daemon *d, const struct conf *c)
{
	char err[8192];

	d->store = store_open(c, &store_role_agent, err, sizeof(err));
	if (d->store == NULL) {
		log_lines(LOG_ERR, "start_failed", err);
		return -1;
	}
	d->ks = d->store->ops->load(d->store, err, sizeof(err));
	if (d->ks == NULL) {
		log_lines(LOG_ERR, "start_failed", err);
		log_err("event=start_failed where=%s note=\"fix or restore the key store\"",
		    LOG_V(d->store->ops->where(d->store)));
		return -1;
	}
	log_info("event=store_loaded where=%s trigger=start keys=%zu",
	    LOG_V(d->store->ops->where(d->store)), ks_count(d->ks));
	return 0;
}

/* The workers' loops, each with the first snapshot (not started yet). */
static int
init_workers(struct daemon *d, const struct conf *c)
{
	struct snap *s = snap_new(d->cref, d->ks, ++d->gen);
	unsigned want = c->workers > WORKER_MAX ? WORKER_MAX : c->workers;

	d->usage = usage_agent_new(c, d->store, want);
	if (d->usage == NULL)
		log_err("event=usage_not_counted error=\"out of memory\"");
	if (s != NULL)
		usage_agent_track(d->usage, s);

	for (unsigned i = 0; i < want; i++) {
		if (s == NULL || worker_init(&d->workers[i], (int)i, s) == -1) {
			log_err("event=start_failed error=\"cannot create worker loop\"");
			snap_put(s);
			return -1;
		}
		d->nworkers++;
	}
	snap_put(s);
	return 0;
}

/* Listeners, the metrics endpoint, the user switch and the pid file: what
 * needs the privileges keyauthd was started with comes first. */
static int
open_endpoints(struct daemon *d, const struct conf *c)
{
	char err[8192];

	if (check_root(c, d->conf_path) == -1 || open_listeners(d, c) == -1)
		return -1;
	if (c->metrics.addr != NULL) {
		int fd = listener_open(&c->metrics, false, LISTEN_BACKLOG, NULL, err, sizeof(err));

		if (fd == -1 ||
		    (d->metrics = metrics_open(fd, d->loop, on_metrics, d, err, sizeof(err))) == NULL) {
			log_err("event=start_failed what=metrics_listen error=%s", LOG_Q(err));
			return -1;
		}
		log_info("event=listening addr=%s what=metrics", LOG_V(c->metrics.addr));
	}
	if (c->user != NULL && startup_drop_privileges(c->user) == -1)
		return -1;
	if (c->pid_file != NULL) {
		if (startup_write_pid_file(c->pid_file) == -1)
			return -1;
		d->pid_path = strdup(c->pid_file);
	}
	return 0;
}

/* Starts the worker threads with every signal blocked (the main loop takes
 * them). On failure only the started ones are left counted. */
static int
start_workers(struct daemon *d)
{
	sigset_t all, old;
	int rc = 0;

	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, &old);
	for (unsigned i = 0; i < d->nworkers; i++) {
		if (worker_start(&d->workers[i]) == -1) {
			log_err("event=start_failed what=pthread_create error=%s", LOG_Q(strerror(errno)));
			d->nworkers = i;
			rc = -1;
			break;
		}
	}
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	return rc;
}

/* Signals, the store watcher, the staleness tick and the control socket on
 * the main loop. */
static int
watch_main(struct daemon *d, const struct conf *c)
{
	char err[8192];

	ev_signal_init(&d->sighup, on_sighup, SIGHUP);
	d->sighup.data = d;
	ev_signal_start(d->loop, &d->sighup);
	ev_signal_init(&d->sigterm, on_sigterm, SIGTERM);
	ev_signal_start(d->loop, &d->sigterm);
	ev_signal_init(&d->sigint, on_sigterm, SIGINT);
	ev_signal_start(d->loop, &d->sigint);
	d->store->ops->watch(d->store, d->loop, on_store_changed, d);
	ev_timer_init(&d->stale_w, on_stale_tick, 1., 1.);
	d->stale_w.data = d;
	ev_timer_start(d->loop, &d->stale_w);     /* a no-op tick for the file backend */
	ev_timer_init(&d->usage_w, on_usage_tick, USAGE_PERIOD, USAGE_PERIOD);
	d->usage_w.data = d;
	ev_timer_start(d->loop, &d->usage_w);
	if (c->control_path != NULL) {
		struct ft_trust t;

		ft_trust_for(&t, c->user);
		d->control = control_open(c->control_path, &t, d->loop, on_control, d, err,
		    sizeof(err));
		if (d->control == NULL) {
			log_err("event=start_failed error=%s", LOG_Q(err));
			return -1;
		}
	}
	return 0;
}

/* Everything a start (failed or not) acquired. */
static void
release(struct daemon *d)
{
	/* Workers joined (or never started): the last counts, written once more. */
	usage_agent_free(d->usage);
	d->usage = NULL;
	control_close(d->control);
	metrics_close(d->metrics);
	for (unsigned i = 0; i < d->nworkers; i++)
		worker_destroy(&d->workers[i]);
	for (unsigned i = 0; i < d->nshared; i++) {
		close(d->shared_fds[i]);
		if (d->unix_paths[i] != NULL)
			unlink(d->unix_paths[i]);
		free(d->unix_paths[i]);
	}
	if (d->pid_path != NULL)
		unlink(d->pid_path);
	free(d->pid_path);
	store_free(d->store);
	ks_set_unref(d->ks);
	ks_set_unref(d->deny_set);
	conf_ref_put(d->cref);
	if (d->loop != NULL)
		ev_loop_destroy(d->loop);
}

/* Runs the agent on <c> until SIGTERM/SIGINT; returns the exit status. */
static int
run(struct daemon *d, struct conf *c)
{
	char err[8192];
	SSL_CTX *tls_ctx = NULL;
	int rc = 1;

	log_init("keyauthd", c->log_level, c->log_target);
	if (tls_ctx_for_conf(c, &tls_ctx, err, sizeof(err)) == -1) {
		fprintf(stderr, "%s\nkeyauthd: configuration %s rejected\n", err, d->conf_path);
		conf_free(c);
		return 1;
	}
	d->cref = conf_ref_new(c);
	if (d->cref == NULL) {
		conf_free(c);
		SSL_CTX_free(tls_ctx);
		log_err("event=start_failed error=\"out of memory\"");
		return 1;
	}
	d->cref->tls_ctx = tls_ctx;
	if (load_first_set(d, c) == -1)
		goto out;
	signal(SIGPIPE, SIG_IGN);
	d->loop = ev_default_loop(EVFLAG_AUTO);
	d->started = ev_now(d->loop);
	d->store_last_time = d->started;
	d->store_last_ok = true;
	d->store_loads_ok = 1;
	if (init_workers(d, c) == -1 || open_endpoints(d, c) == -1)
		goto out;
	if (start_workers(d) == -1)
		goto stop;
	if (watch_main(d, c) == -1)
		goto stop;
	log_info("event=started version=%s pid=%ld workers=%u routes=%u", KEYAUTHD_VERSION,
	    (long)getpid(), d->nworkers, c->nroutes);
	ev_run(d->loop, 0);
	rc = 0;
stop:
	for (unsigned i = 0; i < d->nworkers; i++)
		worker_stop(&d->workers[i]);
	for (unsigned i = 0; i < d->nworkers; i++)
		worker_join(&d->workers[i]);
out:
	/* Also the path of a failed start: everything is released, so the
	 * sanitizer builds see no leak and exit with the real status. */
	release(d);
	log_msg(rc == 0 ? LOG_INFO : LOG_ERR, "event=stopped status=%d", rc);
	return rc;
}

int
main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "config",  required_argument, NULL, 'c' },
		{ "test",    no_argument,       NULL, 't' },
		{ "version", no_argument,       NULL, 'V' },
		{ "help",    no_argument,       NULL, 'h' },
		{ NULL, 0, NULL, 0 }
	};
	struct daemon d;
	char err[8192];
	struct conf *c;
	bool check_only = false;
	int opt, rc;

	memset(&d, 0, sizeof(d));
	d.conf_path = getenv("KEYAUTH_CONF") != NULL ? getenv("KEYAUTH_CONF") : CONF_DEFAULT_PATH;
	while ((opt = getopt_long(argc, argv, "c:tVh", longopts, NULL)) != -1) {
		switch (opt) {
		case 'c':
			d.conf_path = optarg;
			break;
		case 't':
			check_only = true;
			break;
		case 'V':
			printf("keyauthd %s\n", KEYAUTHD_VERSION);
			return 0;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (optind != argc) {
		usage(stderr);
		return 2;
	}
	c = conf_load(d.conf_path, err, sizeof(err));
	if (c == NULL) {
		fprintf(stderr, "%s", err);
		if (err[0] != '\0' && err[strlen(err) - 1] != '\n')
			fputc('\n', stderr);
		fprintf(stderr, "keyauthd: configuration %s rejected\n", d.conf_path);
		return 1;
	}
	overrides_note(c);
	if (check_only) {
		rc = startup_check_config(c, d.conf_path);
		conf_free(c);
		return rc;
	}
	return run(&d, c);
}
