/* SPDX-License-Identifier: Apache-2.0 */
/*
 * fixture: one keyauthd under test (see the header).
 */
#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "fixture.h"

#define TF_START_MS 5000
#define TF_STOP_MS  5000

/* ---- paths ------------------------------------------------------------------------ */

/* "<dir>/<stem><suffix>" into <out> (TF_PATH bytes). 0 or -1. */
static int tf_path(char *out, const char *dir, const char *stem, const char *suffix)
{
	int n = snprintf(out, TF_PATH, "%s/%s%s", dir, stem, suffix);

	return n < 0 || n >= TF_PATH ? -1 : 0;
}

/* Fills the paths of <a> from a->dir: "<name>.conf" and so on, or the names
 * of an agent alone in its directory when <name> is NULL. */
static int tf_paths(struct tf_agent *a, const char *name)
{
	int n;

	if (tf_path(a->store, a->dir, "keys.db", "") == -1 ||
	    tf_path(a->conf, a->dir, name ? name : "keyauth", ".conf") == -1 ||
	    tf_path(a->log, a->dir, name ? name : "keyauthd", ".log") == -1 ||
	    tf_path(a->sock, a->dir, name ? name : "agent", name ? "-spop.sock" : ".sock") == -1 ||
	    tf_path(a->ctl, a->dir, name ? name : "control", name ? "-control.sock" : ".sock") == -1)
		return -1;
	n = snprintf(a->uaddr, sizeof(a->uaddr), "unix:%s", a->sock);
	return n < 0 || (size_t)n >= sizeof(a->uaddr) ? -1 : 0;
}

int tf_agent_init(struct tf_agent *a, const char *tag)
{
	memset(a, 0, sizeof(*a));
	if (tp_mkdtemp(tag, a->dir, sizeof(a->dir)) == -1) {
		fprintf(stderr, "fixture: cannot create a directory for %s: %s\n", tag, strerror(errno));
		return -1;
	}
	a->own_dir = true;
	return tf_paths(a, NULL);
}

int tf_agent_named(struct tf_agent *a, const char *dir, const char *name)
{
	memset(a, 0, sizeof(*a));
	if (snprintf(a->dir, sizeof(a->dir), "%s", dir) >= (int)sizeof(a->dir))
		return -1;
	return tf_paths(a, name);
}

/* ---- the configuration -------------------------------------------------------------- */

/* A loopback port, free a moment ago, different from <a>'s other ports. */
static int tf_port(const struct tf_agent *a, char *addr, size_t len)
{
	char cand[32];

	for (int tries = 0; tries < 20; tries++) {
		int port = tp_free_port();

		if (port <= 0)
			break;
		snprintf(cand, sizeof(cand), "127.0.0.1:%d", port);
		if (strcmp(cand, a->taddr) != 0 && strcmp(cand, a->tls_addr) != 0 &&
		    strcmp(cand, a->maddr) != 0) {
			snprintf(addr, len, "%s", cand);
			return port;
		}
	}
	fprintf(stderr, "fixture: no free loopback port\n");
	return -1;
}

struct tf_buf {
	char text[8192];
	size_t len;
	bool full;
};

__attribute__((format(printf, 2, 3)))
static void tf_cat(struct tf_buf *b, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (b->full)
		return;
	va_start(ap, fmt);
	n = vsnprintf(b->text + b->len, sizeof(b->text) - b->len, fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= sizeof(b->text) - b->len)
		b->full = true;
	else
		b->len += (size_t)n;
}

int tf_agent_conf(struct tf_agent *a, const struct tf_opts *o)
{
	static struct tf_buf b;
	unsigned listen = o->listen ? o->listen : TF_UNIX;
	const char *sep = "";

	if (o->listen_addr)
		listen = 0;
	if (((listen & TF_TCP) && !a->taddr[0] && tf_port(a, a->taddr, sizeof(a->taddr)) < 0) ||
	    ((listen & TF_TLS) && !a->tls_addr[0] &&
	     tf_port(a, a->tls_addr, sizeof(a->tls_addr)) < 0) ||
	    (o->metrics && !a->mport && (a->mport = tf_port(a, a->maddr, sizeof(a->maddr))) < 0))
		return -1;
	a->listen = listen;
	a->metrics = o->metrics;
	a->nofile = o->nofile;
	memset(&b, 0, sizeof(b));
	tf_cat(&b, "# %s: keyauthd integration test\nlisten = [ ", a->conf);
	if (o->listen_addr)
		tf_cat(&b, "\"%s\"", o->listen_addr);
	if (listen & TF_UNIX) {
		tf_cat(&b, "\"%s\"", a->uaddr);
		sep = ", ";
	}
	if (listen & TF_TCP) {
		tf_cat(&b, "%s\"%s\"", sep, a->taddr);
		sep = ", ";
	}
	if (listen & TF_TLS)
		tf_cat(&b, "%s\"tls:%s\"", sep, a->tls_addr);
	tf_cat(&b, " ];\nworkers = %d;\n", o->workers ? o->workers : 1);
	/* Loopback ports of a test: the risk allow_plain_tcp names is the
	 * point of tests/integ/test_trust.c, not of the others. */
	if ((listen & TF_TCP) || (o->listen_addr && strncmp(o->listen_addr, "unix:", 5) != 0 &&
	    strncmp(o->listen_addr, "tls:", 4) != 0))
		tf_cat(&b, "allow_plain_tcp = true;\n");
	if (o->max_connections)
		tf_cat(&b, "max_connections = %d;\n", o->max_connections);
	if (o->idle_timeout)
		tf_cat(&b, "idle_timeout = %d;\n", o->idle_timeout);
	if (o->key_prefix)
		tf_cat(&b, "key_prefix = \"%s\";\n", o->key_prefix);
	if (o->pid_file)
		tf_cat(&b, "pid_file = \"%.*s.pid\";\n", (int)(strlen(a->conf) - 5), a->conf);
	if (o->control || o->control_path)
		tf_cat(&b, "control_socket = \"%s\";\n", o->control_path ? o->control_path : a->ctl);
	if (o->metrics)
		tf_cat(&b, "metrics_listen = \"%d\";\n", a->mport);
	if (o->store)
		tf_cat(&b, "store = { %s };\n", o->store);
	else
		tf_cat(&b, "store = { path = \"%s\"; };\n", a->store);
	if (o->log_level)
		tf_cat(&b, "log = { level = \"%s\"; target = \"stderr\"; };\n", o->log_level);
	if (o->settings)
		tf_cat(&b, "%s\n", o->settings);
	tf_cat(&b, "routes = (\n%s\n);\n",
	       o->routes ? o->routes : "  { name = \"openai\"; context = \"/openai\"; }");
	if (b.full || tp_write_file(a->conf, b.text) == -1) {
		fprintf(stderr, "fixture: cannot write %s%s\n", a->conf, b.full ? " (too long)" : "");
		return -1;
	}
	return 0;
}

/* ---- the process ---------------------------------------------------------------------- */

static pid_t tf_spawn(const struct tf_agent *a)
{
	char lim[64];
	char *argv[] = { "/bin/sh", "-c", lim, (char *)tp_keyauthd_path(), (char *)a->conf, NULL };

	if (a->nofile <= 0)
		return tp_spawn_keyauthd(a->conf, a->log);
	/* A shell lowers the limit and execs keyauthd: the pid registered by
	 * tp_spawn for the cleanup is keyauthd's own. */
	snprintf(lim, sizeof(lim), "ulimit -n %d && exec \"$0\" -c \"$1\"", a->nofile);
	return tp_spawn(argv, a->log);
}

int tf_agent_start(struct tf_agent *a)
{
	const char *wait[4];
	int n = 0;

	if (a->listen & TF_UNIX)
		wait[n++] = a->uaddr;
	if (a->listen & TF_TCP)
		wait[n++] = a->taddr;
	if (a->listen & TF_TLS)
		wait[n++] = a->tls_addr;
	if (a->metrics)
		wait[n++] = a->maddr;
	a->pid = tf_spawn(a);
	if (a->pid <= 0) {
		fprintf(stderr, "fixture: cannot spawn %s\n", tp_keyauthd_path());
		a->pid = 0;
		return -1;
	}
	for (int i = 0; i < n; i++) {
		if (tp_wait_connectable(a->pid, wait[i], TF_START_MS) == -1) {
			fprintf(stderr, "fixture: keyauthd (%s, %s) not ready: %s did not accept; log: %s\n",
			        tp_keyauthd_path(), a->conf, wait[i], a->log);
			tp_signal(a->pid, SIGKILL);
			tp_wait_exit(a->pid, TF_STOP_MS, NULL);
			a->pid = 0;
			return -1;
		}
	}
	return 0;
}

int tf_agent_stop(struct tf_agent *a)
{
	pid_t pid = a->pid;
	int status = 0;

	if (pid <= 0)
		return 0;
	a->pid = 0;
	tp_signal(pid, SIGTERM);
	if (tp_wait_exit(pid, TF_STOP_MS, &status) == -1) {
		fprintf(stderr, "fixture: keyauthd (%s) still running %d ms after SIGTERM: killed\n",
		        a->conf, tp_scaled_ms(TF_STOP_MS));
		return -1;
	}
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
		fprintf(stderr, "fixture: keyauthd (%s) exited with wait status 0x%x; log: %s\n",
		        a->conf, (unsigned)status, a->log);
		return -1;
	}
	return 0;
}

void tf_agent_remove(struct tf_agent *a)
{
	if (!a->own_dir || !a->dir[0] || a->keep)
		return;
	if (getenv("KEYAUTH_TEST_KEEP"))
		fprintf(stderr, "fixture: kept %s\n", a->dir);
	else
		tp_rmtree(a->dir);
	a->dir[0] = '\0';
}

int tf_agent_up(struct tf_agent *a, const char *tag, const struct tf_opts *o)
{
	if (tf_agent_init(a, tag) == -1)
		return -1;
	if ((o->keys && tf_store_write(a->store, o->keys, o->nkeys, o->generation) == -1) ||
	    tf_agent_conf(a, o) == -1 || tf_agent_start(a) == -1) {
		fprintf(stderr, "fixture: %s: setup failed; kept %s\n", tag, a->dir);
		a->keep = true;
		return -1;
	}
	return 0;
}

int tf_agent_up_key(struct tf_agent *a, const char *tag, const struct tf_opts *o,
                    struct tf_key *k, uint64_t generation)
{
	struct tf_key *keys[] = { k };
	struct tf_opts with = *o;

	with.keys = keys;
	with.nkeys = 1;
	with.generation = generation;
	if (tf_key_make(k, "openai", "", "the key") == -1)
		return -1;
	return tf_agent_up(a, tag, &with);
}

int tf_agent_down(struct tf_agent *a)
{
	int rc = tf_agent_stop(a);

	if (a->dir[0] && tf_log_has_no_key(a->log) == -1)
		rc = -1;
	if (rc != 0 && a->dir[0]) {
		fprintf(stderr, "fixture: kept %s\n", a->dir);
		a->keep = true;
	}
	tf_agent_remove(a);
	return rc;
}

int tf_agent_teardown(void **state)
{
	return *state ? tf_agent_down(*state) : 0;
}

/* ---- keys ------------------------------------------------------------------------------ */

#define TF_MAX_KEYS 64

static const char *tf_keys[TF_MAX_KEYS];
static const char *tf_labels[TF_MAX_KEYS];
static size_t tf_nkeys;

void tf_key_track(const char *key, const char *label)
{
	for (size_t i = 0; i < tf_nkeys; i++)
		if (tf_keys[i] == key)
			return;
	if (tf_nkeys < TF_MAX_KEYS) {
		tf_keys[tf_nkeys] = key;
		tf_labels[tf_nkeys] = label;
		tf_nkeys++;
	}
}

int tf_log_has_no_key(const char *log)
{
	for (size_t i = 0; i < tf_nkeys; i++) {
		if (tf_keys[i][0] && tp_log_contains(log, tf_keys[i])) {
			fprintf(stderr, "fixture: %s contains the key \"%s\" (#%zu)\n", log, tf_labels[i], i);
			return -1;
		}
	}
	return 0;
}

int tf_key_make(struct tf_key *k, const char *route, const char *owner, const char *label)
{
	memset(k, 0, sizeof(*k));
	if (keyfmt_generate("ka_", k->key, sizeof(k->key)) <= 0 || keyfmt_new_id(k->e.id) != 0) {
		fprintf(stderr, "fixture: cannot generate a key\n");
		return -1;
	}
	keyfmt_digest(k->key, strlen(k->key), k->e.digest);
	k->e.route = route;
	k->e.owner = owner;
	k->e.created = (int64_t)time(NULL) - 100;
	if (label)
		tf_key_track(k->key, label);
	return 0;
}

int tf_store_write(const char *path, struct tf_key *const *keys, size_t n, uint64_t generation)
{
	struct ks_entry v[16];
	char err[512];

	if (n > sizeof(v) / sizeof(v[0])) {
		fprintf(stderr, "fixture: %zu keys for a store: at most 16\n", n);
		return -1;
	}
	for (size_t i = 0; i < n; i++)
		v[i] = keys[i]->e;
	if (ks_file_write_gen(path, v, n, generation, err, sizeof(err)) != 0) {
		fprintf(stderr, "fixture: ks_file_write_gen %s: %s\n", path, err);
		return -1;
	}
	return 0;
}

/* ---- keyauthctl ------------------------------------------------------------------------- */

const char *tf_keyauthctl_path(void)
{
	const char *p = getenv("KEYAUTHCTL");

	return p && *p ? p : "build/keyauthctl";
}

int tf_ctl_run(const char *conf, const char *out, ...)
{
	char *argv[16];
	int argc = 0, status = 0;
	va_list ap;
	pid_t pid;

	argv[argc++] = (char *)tf_keyauthctl_path();
	argv[argc++] = "-c";
	argv[argc++] = (char *)conf;
	va_start(ap, out);
	while (argc < 15 && (argv[argc] = va_arg(ap, char *)) != NULL)
		argc++;
	va_end(ap);
	argv[argc] = NULL;
	unlink(out);
	pid = tp_spawn(argv, out);
	if (pid == -1 || tp_wait_exit(pid, 10000, &status) == -1) {
		fprintf(stderr, "fixture: keyauthctl %s did not run to completion\n", argv[3]);
		return -1;
	}
	return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

int tf_ctl_made(const char *out, struct tf_key *k)
{
	char buf[8192];
	FILE *f = fopen(out, "r");
	const char *p, *q = NULL;
	size_t n;

	if (f == NULL) {
		fprintf(stderr, "fixture: cannot read keyauthctl's output %s\n", out);
		return -1;
	}
	n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = '\0';
	/* The file held the key: gone as soon as it is read. */
	unlink(out);
	p = strstr(buf, "{\"id\":\"");
	if (p != NULL && strlen(p + 7) > KEY_ID_LEN)
		q = strstr(p, "\"key\":\"");
	n = q != NULL ? strcspn(q + 7, "\"") : 0;
	if (q == NULL || n == 0 || n >= sizeof(k->key)) {
		fprintf(stderr, "fixture: no id and key in keyauthctl's output\n");
		return -1;
	}
	memcpy(k->e.id, p + 7, KEY_ID_LEN);
	k->e.id[KEY_ID_LEN] = '\0';
	memcpy(k->key, q + 7, n);
	k->key[n] = '\0';
	return 0;
}

/* ---- the protocol programs' agent ----------------------------------------------------- */

#define TF_ROUTE_OPENAI \
	"  { name = \"openai\"; type = \"provider\"; context = \"/openai\";\n" \
	"    security = { authentication = \"apiKey\"; key_name = \"X-API-Key\";" \
	" key_location = \"header\"; }; }"
#define TF_ROUTE_MISTRAL \
	"  { name = \"mistral\"; type = \"provider\"; context = \"/mistral\"; }"
#define TF_ROUTE_ANTHROPIC \
	"  { name = \"anthropic\"; type = \"provider\"; context = \"/anthropic\"; }"

struct tf_opts tf_opts_protocol(bool anthropic)
{
	struct tf_opts o = {
		.listen = TF_UNIX | TF_TCP, .workers = 1, .max_connections = 64, .idle_timeout = 60,
		.key_prefix = "ka_", .pid_file = true, .log_level = "debug",
		.settings = "max_frame_size = 16380;",
		.routes = anthropic ? TF_ROUTE_OPENAI ",\n" TF_ROUTE_MISTRAL ",\n" TF_ROUTE_ANTHROPIC :
		                     TF_ROUTE_OPENAI ",\n" TF_ROUTE_MISTRAL,
	};

	return o;
}

struct tf_protocol tf_protocol;

int tf_protocol_setup(void **state)
{
	struct tf_keyset *k = &tf_protocol.k;
	int64_t now = (int64_t)time(NULL);
	struct tf_key *stored[] = { &k->valid, &k->expired, &k->revoked, &k->other, &k->future };
	struct tf_opts o = tf_opts_protocol(false);

	signal(SIGPIPE, SIG_IGN);
	*state = &tf_protocol.d;
	if (tf_key_make(&k->valid, "openai", "alice", "valid") == -1 ||
	    tf_key_make(&k->expired, "openai", "bob", "expired") == -1 ||
	    tf_key_make(&k->revoked, "openai", "carol", "revoked") == -1 ||
	    tf_key_make(&k->other, "mistral", "dave", "other route") == -1 ||
	    tf_key_make(&k->future, "openai", "erin", "expires tomorrow") == -1 ||
	    tf_key_make(&k->unstored, "openai", "nobody", "not stored") == -1)
		return -1;
	k->expired.e.expires = now - 3600;
	k->revoked.e.revoked = now - 60;
	k->future.e.expires = now + 86400;
	o.keys = stored;
	o.nkeys = sizeof(stored) / sizeof(stored[0]);
	return tf_agent_up(&tf_protocol.d, program_invocation_short_name, &o);
}
