/* SPDX-License-Identifier: Apache-2.0 */
/*
 * ctl_keys-int.h: what the files of `keyauthctl key ...` share. Private to
 * ctl_keys.c (the commands that change keys), ctl_keys_read.c (list,
 * verify), ctl_keys_store.c (the store transaction) and ctl_keys_util.c
 * (options, input, output).
 */
#ifndef AGENT_CTL_KEYS_INT_H
#define AGENT_CTL_KEYS_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "conf.h"
#include "ctl.h"
#include "keystore.h"

#define STDIN_MAX 8192           /* verify: more than any header HAProxy would pass */

/* The options of every key command; each takes those it lists. */
struct key_opts {
	const char *route;           /* the first --route */
	const char *routes[KS_ROUTES_MAX];   /* every --route, checked distinct */
	size_t nroutes;
	const char *owner;           /* "" when not given */
	bool owner_set;
	const char *alias;           /* --alias ("" clears, on key set) */
	char tags[KS_TAGS_STR_MAX + 1];      /* every --tag K=V, "k=v,..." (checked) */
	size_t ntags;
	const char *untags[KS_TAGS_MAX];     /* key set --untag K */
	size_t nuntags;
	const char *days;            /* checked by expiry_from_opts */
	const char *date;            /* --expires */
	bool no_expiry;              /* --no-expiry */
	int64_t grace;               /* rotate: CTL_DEFAULT_GRACE when not given */
	uint32_t rpm;
	bool rpm_set;
	bool all;
	int64_t expiring_within;     /* list --expiring-within, when set */
	bool expiring_set;
	int64_t unused_for;          /* list --unused-for, when set */
	bool unused_set;
	int64_t older_than;          /* purge --older-than, when set */
	bool older_set;
	bool yes;                    /* revoke --yes */
	bool dry_run;                /* purge --dry-run */
	const char *out;             /* create, rotate --out FILE */
	uint32_t scopes;             /* every --scope, KS_SCOPE_* bits */
	bool scopes_set;
};

#define KEY_OPT_ROUTE   { "route",   required_argument, NULL, 'r' }
#define KEY_OPT_OWNER   { "owner",   required_argument, NULL, 'o' }
#define KEY_OPT_DAYS    { "days",    required_argument, NULL, 'd' }
#define KEY_OPT_RPM     { "rpm",     required_argument, NULL, 'p' }
#define KEY_OPT_ALIAS   { "alias",   required_argument, NULL, 'A' }
#define KEY_OPT_TAG     { "tag",     required_argument, NULL, 't' }
#define KEY_OPT_EXPIRES { "expires", required_argument, NULL, 'e' }
#define KEY_OPT_NOEXP   { "no-expiry", no_argument,     NULL, 'N' }
#define KEY_OPT_OUT     { "out",     required_argument, NULL, 'F' }
#define KEY_OPT_SCOPE   { "scope",   required_argument, NULL, 'S' }
#define KEY_OPT_END     CTL_JSON_LONGOPT, { NULL, 0, NULL, 0 }

/* The descriptor of "key WORD": WORD_help, WORD_opts and key_WORD(). */
#define KEY_CMD(word, operand_, summary_) \
	const struct ctl_cmd ctl_cmd_key_##word = { \
		.name = "key " #word, .summary = summary_, .help = word##_help, \
		.longopts = word##_opts, .operand = operand_, .opts_size = sizeof(struct key_opts), \
		.init = key_opts_init, .opt = key_opt, .run = key_##word }

void key_opts_init(void *opts);
int key_opt(struct ctl_ctx *ctx, void *opts, int opt, const char *arg);

/* ---- store transactions (ctl_keys_store.c) ---------------------------------------- */

/* The working copy of the entries during a transaction. Strings are borrowed
 * from the loaded set, the conf or argv, all of which outlive the edit. */
struct ctl_edit {
	const struct ctl_ctx *ctx;
	const struct conf *conf;
	const struct ks_set *set;    /* the store as loaded under the lock */
	struct ks_entry *v;
	size_t n;
	size_t cap;
	int64_t now;
};

#define EDIT_WRITE    0          /* write the working copy */
#define EDIT_NOCHANGE 1          /* nothing to write; success */
#define EDIT_FAIL     (-1)       /* the callback printed why */
#define EDIT_NOTFOUND (-2)       /* no such key id (printed): exit CTL_EXIT_NOTFOUND */
#define EDIT_USAGE    (-3)       /* refused as invalid input (printed): exit CTL_EXIT_USAGE */
#define EDIT_CONFLICT (-4)       /* contradicts the key's state (printed): exit CTL_EXIT_CONFLICT */

typedef int ctl_edit_fn(struct ctl_edit *ed, void *arg);

struct ks_entry *key_edit_find(struct ctl_edit *ed, const char *id);
/* A zeroed entry at the end of the working copy; NULL (printed) on ENOMEM. */
struct ks_entry *key_edit_append(struct ctl_edit *ed);
/* A new key and entry for <route>/<owner>, appended to the working copy. The
 * key goes to <key> (KEY_GEN_MAX + 1 bytes). */
struct ks_entry *key_edit_new(struct ctl_edit *ed, const char *route, const char *owner,
                              int64_t expires, uint32_t rpm, char *key, size_t keycap);

/* Loads the configuration into <*c> (the caller frees it, also on failure)
 * and reads the whole set of its store, unlocked; NULL after printing why. */
struct ks_set *key_store_read(const struct ctl_ctx *ctx, struct conf **c);

/* key_store_edit_note's "written, but not confirmed by enough replicas". */
#define STORE_UNCONFIRMED 100

/* Runs <fn> as one locked read-modify-write of the store: CTL_EXIT_OK,
 * CTL_EXIT_FAIL (printed), or STORE_UNCONFIRMED with <note> (not printed). */
int key_store_edit_note(const struct ctl_ctx *ctx, const struct conf *c, ctl_edit_fn *fn,
                        void *arg, char *note, size_t notelen);
/* Prints key_store_edit_note's <note>; the exit code of an unconfirmed change. */
int key_unconfirmed_print(const struct ctl_ctx *ctx, const char *note);
/* key_store_edit_note for commands that print nothing of their own first. */
int key_store_edit(const struct ctl_ctx *ctx, const struct conf *c, ctl_edit_fn *fn, void *arg);

/* ---- helpers (ctl_keys_util.c) ------------------------------------------------------ */

/* An entry copied out of a transaction: its strings are borrowed from the
 * loaded set, which is gone once key_store_edit returns. */
struct kept_entry {
	struct ks_entry e;
	char route[KS_ROUTE_MAX + 1];
	char routes[KS_ROUTES_STR_MAX + 1];
	char owner[KS_OWNER_MAX + 1];
	char alias[KS_ALIAS_MAX + 1];
	char tags[KS_TAGS_STR_MAX + 1];
};

void key_keep_entry(struct kept_entry *k, const struct ks_entry *e);
/* "active", "grace" (rotated away, not expired yet), "expired" or
 * "revoked" at <now>. */
const char *key_entry_status(const struct ks_entry *e, int64_t now);
/* Printable text only, bounded. */
bool key_owner_ok(const char *s);
/* The route <name> of <c>, or NULL after listing the routes there are. */
const struct route *key_route_lookup(const struct ctl_ctx *ctx, const struct conf *c,
                                     const char *name);
/* One key from stdin (see ctl_keys_util.c): 0, 1 (too long) or -1. */
int key_read_stdin(const struct ctl_ctx *ctx, char *buf, size_t cap, size_t *len);
int key_parse_rpm(const struct ctl_ctx *ctx, const char *s, uint32_t *out);
/* "60" or "-" for tables and messages. */
const char *key_rpm_str(uint32_t rpm, char *buf, size_t len);
/* --out FILE: creates FILE for the new key, mode 0600, refusing an existing
 * file or a symlink (O_EXCL), before the store changes. The fd, or -1
 * (printed). */
int key_out_open(const struct ctl_ctx *ctx, const char *path);
/* Prints a new key once (text or JSON), with <note> (may be NULL). With
 * <out_fd> >= 0 (key_out_open's, closed here) the key goes to that file
 * <out_path> instead, and the JSON names the file instead of holding the key. */
int key_print_new(const struct ctl_ctx *ctx, const char *key, const struct ks_entry *e,
                  bool json, const char *note, int out_fd, const char *out_path);
/* The end of a command that makes a key (create, rotate): the file of
 * --out opened first (an existing one refuses the command before the store
 * changes), the transaction <fn>, then <key> (filled by <fn>, with its record
 * <made>) printed once, with the note <note_fn> writes (may be NULL), to
 * stdout or that file; a key file left empty is removed. The exit status. */
int key_make(const struct ctl_ctx *ctx, const struct conf *c, const struct key_opts *o,
             bool json, ctl_edit_fn *fn, void *arg, const char *key, const struct ks_entry *made,
             void (*note_fn)(const void *arg, char *buf, size_t len));
/* --days / --expires / --no-expiry into an expiry time (0: never): 0 or an
 * exit code (printed). ctl_keys.c. */
int expiry_from_opts(const struct ctl_ctx *ctx, const char *days, const char *date, bool never,
                     int64_t now, int64_t *expires);
/* The admin-key rules (issue #22) for a key on the routes <routes>
 * (','-joined) with <scopes>: a key bound to the admin route is bound to it
 * alone and has at least one scope; scopes on any other key are refused.
 * 0, or CTL_EXIT_USAGE after printing why (ctl_keys_show.c). */
int key_scopes_check(const struct ctl_ctx *ctx, const struct conf *c, const char *routes,
                     uint32_t scopes);
/* The key's scopes as a JSON array of names ([] when none). */
json_t *key_json_scopes(uint32_t scopes);
/* Does <e> carry the labels <o> selects: --owner, and every --tag? */
bool key_labels_match(const struct key_opts *o, const struct ks_entry *e);
/* key revoke --owner/--tag (ctl_keys_bulk.c). */
int key_revoke_bulk(struct ctl_ctx *ctx, const struct ctl_args *args);
json_t *key_json_entry(const struct ks_entry *e, int64_t now);
/* key_json_entry with the usage columns (requests, last_used: 0 = never). */
json_t *key_json_entry_usage(const struct ks_entry *e, int64_t now, uint64_t requests,
                             int64_t last_used);
/* True while <e> still opens doors at <now>: "active" or "grace". */
bool key_entry_usable(const struct ks_entry *e, int64_t now);
/* "7d" and the like: N followed by s, m, h, d or w -> seconds. 0, or a
 * usage error (exit 2) naming <opt>. */
int key_parse_span(const struct ctl_ctx *ctx, const char *opt, const char *s, int64_t *out);
/* Checks the routes of <o> against <c>: 0, or CTL_EXIT_USAGE (printed). */
int key_routes_check(const struct ctl_ctx *ctx, const struct conf *c, const struct key_opts *o);
/* The routes of <o> joined with ',' into <buf> (KS_ROUTES_STR_MAX + 1). */
void key_routes_join(const struct key_opts *o, char *buf, size_t len);
/* Does <e> carry the tag "k=v" <kv>? */
bool key_entry_has_tagkv(const struct ks_entry *e, const char *kv);

#endif /* AGENT_CTL_KEYS_INT_H */
