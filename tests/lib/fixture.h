/* SPDX-License-Identifier: Apache-2.0 */
/*
 * fixture: one keyauthd under test, for the integration programs.
 *
 * An agent lives in a private temporary directory (tf_agent_init), or in a
 * directory it shares with others under a name of its own (tf_agent_named:
 * its files are "<name>.conf", "<name>.log", ...; the store file
 * "<dir>/keys.db" is shared). tf_agent_conf writes its keyauth.conf from a
 * struct tf_opts (the free ports it needs are picked on the first call and
 * kept, so a rewritten config keeps its addresses); tf_agent_start spawns it
 * and waits until every listener of that config accepts; tf_agent_stop ends
 * it with SIGTERM. tf_agent_up and tf_agent_down do the whole of a setup and
 * a teardown (tf_agent_teardown is the latter as a cmocka group teardown,
 * the agent in the group state; tf_protocol_setup is the group setup the
 * protocol programs share). Keys are made in the test (tf_key_make) and written to a store
 * file (tf_store_write), or made by keyauthctl (tf_ctl_run, tf_ctl_made).
 *
 * Every wait is bounded (scaled by TEST_TIMEOUT_MULTIPLIER) and says on
 * stderr what it waited for when it gives up; so does every other failure.
 * Nothing here prints a key: keys are named by their label or id. No cmocka
 * here: tests/lib/ is linked into the benchmarks too (see spop_expect.h for
 * the asserting helpers).
 */
#ifndef TESTS_LIB_FIXTURE_H
#define TESTS_LIB_FIXTURE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "keyfmt.h"
#include "keystore.h"
#include "proc.h"

#define TF_PATH (TP_PATH_MAX + 48)

/* Listeners (struct tf_opts.listen). */
#define TF_UNIX 1u    /* unix socket <sock> */
#define TF_TCP  2u    /* plain TCP on a free loopback port (with allow_plain_tcp) */
#define TF_TLS  4u    /* TLS on another free loopback port ("tls:" listener) */

/* A key made in the test and its store record (route and owner borrowed). */
struct tf_key {
	char key[KEY_GEN_MAX + 1];
	struct ks_entry e;
};

/* What an agent's keyauth.conf holds. Zero values leave a setting out. */
struct tf_opts {
	unsigned listen;            /* TF_UNIX | TF_TCP | TF_TLS; 0: TF_UNIX */
	const char *listen_addr;    /* this one address instead (not waited for;
	                             * allow_plain_tcp when it is plain TCP) */
	int workers;                /* 0: 1 */
	int max_connections;
	int idle_timeout;
	const char *key_prefix;
	bool pid_file;              /* pid_file in the directory */
	bool control;               /* control_socket = <ctl> */
	const char *control_path;   /* control_socket = this path instead */
	bool metrics;               /* metrics_listen = "<free port>": a bare port, loopback */
	const char *log_level;      /* log = { level; target = "stderr"; } */
	const char *store;          /* body of store = { }; NULL: path = "<store>"; */
	const char *routes;         /* body of routes = ( ); NULL: openai on /openai */
	const char *settings;       /* more settings, verbatim */
	/* Used by tf_agent_up only: the store file written before the start
	 * (none when <keys> is NULL) and its generation counter. */
	struct tf_key *const *keys;
	size_t nkeys;
	uint64_t generation;
	int nofile;                 /* tf_agent_start: RLIMIT_NOFILE (0: inherited) */
};

struct tf_agent {
	char dir[TP_PATH_MAX];
	char conf[TF_PATH];
	char store[TF_PATH];        /* "<dir>/keys.db" */
	char log[TF_PATH];          /* the agent's stderr */
	char ctl[TF_PATH];          /* the control socket, when the config has one */
	char sock[TF_PATH];         /* the unix listener's path */
	char uaddr[TF_PATH + 8];    /* "unix:<sock>" */
	char taddr[32];             /* "127.0.0.1:<port>", plain TCP */
	char tls_addr[32];          /* "127.0.0.1:<port>", TLS */
	char maddr[32];             /* "127.0.0.1:<port>", metrics */
	int mport;                  /* the metrics port */
	unsigned listen;            /* the listeners of the last config written */
	bool metrics;               /* ... and whether it had metrics_listen */
	int nofile;
	bool own_dir;               /* tf_agent_remove deletes <dir> ... */
	bool keep;                  /* ... unless something failed: kept for a look */
	pid_t pid;                  /* 0 when not running */
};

/* ---- agents ----------------------------------------------------------------- */

/* A fresh private directory "<TMPDIR>/<tag>-XXXXXX" and the paths in it
 * (keyauth.conf, keyauthd.log, agent.sock, control.sock). 0 or -1. */
int tf_agent_init(struct tf_agent *a, const char *tag);

/* An agent whose files are "<name>.conf", "<name>.log", "<name>-spop.sock",
 * "<name>-control.sock" in <dir>, which it does not own. 0 or -1. */
int tf_agent_named(struct tf_agent *a, const char *dir, const char *name);

/* (Re)writes <a->conf> from <o>. 0 or -1. */
int tf_agent_conf(struct tf_agent *a, const struct tf_opts *o);

/* Spawns keyauthd on <a->conf> (its output in <a->log>) and waits up to 5 s
 * (scaled) for each listener of the config to accept. On failure the agent
 * is killed and -1 returned, after saying which wait gave up. */
int tf_agent_start(struct tf_agent *a);

/* SIGTERM, then up to 5 s (scaled) for the exit. 0 when the agent exited
 * with status 0 (or was not running); else -1, said on stderr (killed with
 * SIGKILL at the deadline). */
int tf_agent_stop(struct tf_agent *a);

/* Removes the agent's own directory, unless KEYAUTH_TEST_KEEP is set. */
void tf_agent_remove(struct tf_agent *a);

/* A setup: tf_agent_init, the store file of <o> (if any), tf_agent_conf,
 * tf_agent_start. 0 or -1 (said on stderr; the directory is kept). */
int tf_agent_up(struct tf_agent *a, const char *tag, const struct tf_opts *o);

/* tf_agent_up with one key in the store: <k> is made (tf_key_make: route
 * openai, no owner, registered) and stored with generation <generation>;
 * the keys and generation of <o> are not used. 0 or -1. */
int tf_agent_up_key(struct tf_agent *a, const char *tag, const struct tf_opts *o,
                    struct tf_key *k, uint64_t generation);

/* A teardown: tf_agent_stop, then checks that the log holds none of the
 * registered keys, then tf_agent_remove. 0, or -1 when the stop or the check
 * failed (the directory is then kept for a look, and its path said). */
int tf_agent_down(struct tf_agent *a);

/* A cmocka group teardown for a group whose setup left its struct tf_agent
 * in *<state>: tf_agent_down on it. */
int tf_agent_teardown(void **state);

/* ---- keys and store files --------------------------------------------------- */

/* Generates a key with prefix "ka_" for <route> and <owner>, created 100 s
 * ago, no expiry. With a <label> it is registered for tf_log_has_no_key. */
int tf_key_make(struct tf_key *k, const char *route, const char *owner, const char *label);

/* Registers a key made otherwise (at most 64 keys; a pointer seen before is
 * ignored). <key> and <label> must outlive the checks. */
void tf_key_track(const char *key, const char *label);

/* 0 if the file at <log> contains none of the registered keys (empty ones
 * skipped); else -1, naming the first found by its label. */
int tf_log_has_no_key(const char *log);

/* Writes a store file at <path> with the records of <keys> and generation
 * counter <generation>. 0 or -1. */
int tf_store_write(const char *path, struct tf_key *const *keys, size_t n, uint64_t generation);

/* ---- keyauthctl ---------------------------------------------------------------- */

/* $KEYAUTHCTL, else "build/keyauthctl". */
const char *tf_keyauthctl_path(void);

/* Runs "keyauthctl -c <conf> <args...>" (NULL-terminated, at most 12) to
 * completion (bounded: 10 s scaled), its output in <out> (never printed: it
 * may hold keys). Returns its exit status, or -1. */
int tf_ctl_run(const char *conf, const char *out, ...);

/* Reads "id" and "key" of the JSON keyauthctl printed to <out> into <k>
 * (k->e.id, k->key), then removes <out>. 0 or -1. */
int tf_ctl_made(const char *out, struct tf_key *k);

/* ---- the protocol programs' agent ---------------------------------------------- */

/*
 * test_handshake, test_notify, test_connections and test_reload share one
 * agent shape: unix and TCP listeners, one worker, max_connections 64,
 * max_frame_size 16380, idle_timeout 60, key prefix "ka_", a pid file, debug
 * log; routes openai (an apiKey in X-API-Key), mistral and, with
 * <anthropic>, anthropic.
 */
struct tf_opts tf_opts_protocol(bool anthropic);

/* The keys of the protocol programs, all registered. */
struct tf_keyset {
	struct tf_key valid;        /* openai, alice */
	struct tf_key expired;      /* openai, bob, expired an hour ago */
	struct tf_key revoked;      /* openai, carol, revoked a minute ago */
	struct tf_key other;        /* mistral, dave */
	struct tf_key future;       /* openai, erin, expires tomorrow */
	struct tf_key unstored;     /* openai, nobody: never in the store */
};

/* test_handshake, test_notify and test_connections share this fixture: the
 * protocol agent with the keyset (all but <unstored> in its store). */
struct tf_protocol {
	struct tf_agent d;
	struct tf_keyset k;
};

extern struct tf_protocol tf_protocol;

/* A cmocka group setup: ignores SIGPIPE, makes tf_protocol.k and starts
 * tf_protocol.d in a directory named after the program; leaves &tf_protocol.d
 * in *<state> for tf_agent_teardown. 0 or -1. */
int tf_protocol_setup(void **state);

#endif /* TESTS_LIB_FIXTURE_H */
