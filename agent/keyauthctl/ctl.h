/* SPDX-License-Identifier: Apache-2.0 */
/*
 * ctl: keyauthctl's private interface.
 *
 * keyauthctl.c holds main() and the command table; each command is one
 * struct ctl_cmd (name, summary, options, help, run) defined beside its code
 * in ctl_keys.c (key lifecycle), ctl_render.c (haproxy), ctl_deploy.c
 * (deploy; how HAProxy is run in ctl_deploy_service.c, master CLI reloads in
 * ctl_deploy_master.c) and ctl_stats.c (stats). ctl_cmd.c finds a command by its words
 * and parses its command line; ctl_json.c writes and reads JSON (jansson);
 * ctl_util.c holds helpers shared by all of them. Everything here runs in
 * one short-lived, single-threaded process. Commands return an exit code
 * (CTL_EXIT_*) and print their own messages.
 */
#ifndef AGENT_CTL_H
#define AGENT_CTL_H

#include <getopt.h>
#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

struct conf;

#define CTL_EXIT_OK     0
#define CTL_EXIT_FAIL   1        /* the command ran and failed */
#define CTL_EXIT_USAGE  2        /* bad command line; nothing was done */
#define CTL_EXIT_NOTFOUND 3      /* no such key id (or route); nothing was done */
#define CTL_EXIT_PRECOND  4      /* a precondition (If-Match, preview id) no longer holds */
/* the operation contradicts the key's state (rotating a revoked or already
 * rotated key, importing a key the store holds); nothing was done */
#define CTL_EXIT_CONFLICT 5

#define CTL_DEFAULT_DAYS   90
#define CTL_MAX_DAYS       3650  /* ten years: anything longer is a typo */
#define CTL_DEFAULT_GRACE  (24 * 3600)

/* Options every command accepts, after or before the command words. */
#define CTL_OPT_NOW 0x100        /* --now UNIXTIME: hidden test clock */
#define CTL_COMMON_LONGOPTS \
	{ "config", required_argument, NULL, 'c' }, \
	{ "now",    required_argument, NULL, CTL_OPT_NOW }, \
	{ "help",   no_argument,       NULL, 'h' }
/* A command that lists this among its options gets ctl_args.json. */
#define CTL_JSON_LONGOPT { "json", no_argument, NULL, 'j' }

struct ctl_ctx {
	const char *conf_path;   /* -c, else $KEYAUTH_CONF, else CONF_DEFAULT_PATH */
	int64_t now;             /* test clock (--now or $KEYAUTH_NOW), when now_set */
	bool now_set;
	const char *prog;        /* "keyauthctl key create": for messages */
	int argc;                /* the command line as given, for the audit log */
	char *const *argv;
};

/* ---- ctl_cmd.c: commands and their command lines ---------------------------- */

/* What a command takes besides its options. */
enum ctl_operand {
	CTL_OPERAND_NONE,        /* nothing */
	CTL_OPERAND_STDIN,       /* nothing: its input (a key) comes on stdin */
	CTL_OPERAND_ID,          /* exactly one key id */
	CTL_OPERAND_ID_OPT,      /* at most one key id (ctl_args.id NULL without) */
	CTL_OPERAND_NAME,        /* exactly one route name (in ctl_args.id) */
};

/* A parsed command line, as a command's run() gets it. */
struct ctl_args {
	const char *id;          /* CTL_OPERAND_ID: the key id */
	bool json;               /* --json, when the command lists CTL_JSON_LONGOPT */
	void *opts;              /* the command's own option values (opts_size bytes) */
};

/*
 * One command. The shared parser (ctl_cmd_run) adds CTL_COMMON_LONGOPTS and
 * -c/-h to <longopts>, handles them (-h/--help prints <help> and exits 0), and
 * --json; a bad option or operand is a usage error (exit 2). Every other
 * option goes to opt(), in command-line order, on a zeroed <opts_size>-byte
 * state that init() (if any) gave its defaults; the state is wiped and freed
 * after run().
 */
struct ctl_cmd {
	const char *name;                /* "stats", or a group and a word: "key create" */
	const char *summary;             /* one line, for 'keyauthctl --help' */
	const char *help;                /* the whole --help text */
	const struct option *longopts;   /* its own options (NULL-terminated), or NULL */
	enum ctl_operand operand;
	size_t opts_size;
	void (*init)(void *opts);
	/* One of its own options: 0, or an exit code after printing why. */
	int (*opt)(struct ctl_ctx *ctx, void *opts, int opt, const char *arg);
	int (*run)(struct ctl_ctx *ctx, const struct ctl_args *a);
};

/* Finds a command by one word of its name, exactly or by a unique prefix:
 * with <group> NULL, by its first word ("key" for "key create": the first
 * command of the group is returned); else among the commands named
 * "<group> WORD", by WORD. NULL when none or several words match
 * (*ambiguous tells which). */
const struct ctl_cmd *ctl_cmd_find(const struct ctl_cmd *const *tab, size_t n,
                                   const char *group, const char *word, bool *ambiguous);

/* The group of <cmd> ("key" for "key create") into <buf>; NULL when its
 * name is one word. */
const char *ctl_cmd_group(const struct ctl_cmd *cmd, char *buf, size_t len);

/* Parses <argv> (argv[0] is the program name for getopt's messages) for
 * <cmd> and runs it. Returns the exit code. */
int ctl_cmd_run(struct ctl_ctx *ctx, const struct ctl_cmd *cmd, int argc, char **argv);

/* The commands (keyauthctl.c lists them). */
extern const struct ctl_cmd ctl_cmd_key_create, ctl_cmd_key_list, ctl_cmd_key_revoke,
	ctl_cmd_key_rotate, ctl_cmd_key_import, ctl_cmd_key_verify, ctl_cmd_key_set,
	ctl_cmd_key_purge, ctl_cmd_key_show,
	ctl_cmd_haproxy, ctl_cmd_deploy, ctl_cmd_stats, ctl_cmd_audit;

/* ---- ctl_json.c: JSON output and input, with jansson ---------------------------- */

/* Makes every buffer jansson frees wiped first (a JSON answer may hold a new
 * key). Call before any other JSON function. */
void ctl_json_init(void);

/* <s> as a JSON string, NULL -> null. When <s> is not UTF-8, each of its
 * bytes above 0x7f becomes U+FFFD. */
json_t *ctl_json_text(const char *s);

/* RFC 3339 UTC time as a JSON string; with <zero_null>, 0 -> null. */
json_t *ctl_json_time(int64_t t, bool zero_null);

/* Prints <v> compactly on stdout, then a newline, and releases it. Returns
 * CTL_EXIT_OK, or CTL_EXIT_FAIL when <v> is NULL (it could not be built:
 * said on stderr) or stdout failed. */
int ctl_json_print(const struct ctl_ctx *ctx, json_t *v);

/* Prints the JSON object <text> as "a.b.c value" lines, nested names joined
 * with dots, array elements named by index. Returns 0, or -1 when <text> is
 * not a JSON object. */
int ctl_json_print_flat(const char *text);

/* ---- ctl_util.c ---------------------------------------------------------- */

/* Handles one of CTL_COMMON_LONGOPTS' -c / --now. Returns 0, or
 * CTL_EXIT_USAGE after printing why. */
int ctl_common_opt(struct ctl_ctx *ctx, int opt, const char *arg);

/* Prints "<prog>: <fmt>" to stderr. */
void ctl_err(const struct ctl_ctx *ctx, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/* Usage error: prints the message and a pointer to --help; returns
 * CTL_EXIT_USAGE. */
int ctl_usage_err(const struct ctl_ctx *ctx, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/* The command's clock: the test clock if set, else time(). */
int64_t ctl_now(const struct ctl_ctx *ctx);

/* Loads the configuration, printing every error. NULL on failure. */
struct conf *ctl_conf_load(const struct ctl_ctx *ctx);

/* ---- ctl_stats.c ------------------------------------------------------------ */

/* Sends "<cmd>\n" to keyauthd's control socket; the answer (caller frees)
 * or NULL with errno. */
char *ctl_control_call(const char *path, const char *cmd);

/* After ctl_control_call failed with EACCES: says who owns the socket at
 * <path> (or the directory that hides it), its mode, and whom to run as. */
void ctl_control_denied(const struct ctl_ctx *ctx, const char *path);

/* "30s", "15m", "24h", "7d" (a unit is required) -> seconds, 0..CTL_MAX_DAYS
 * days. Returns 0 or -1. */
int ctl_parse_duration(const char *s, int64_t *out);

/* Strict "YYYY-MM-DD" (a real calendar date) -> Unix time of 00:00:00 UTC
 * that day. Returns 0 or -1. */
int ctl_parse_date(const char *s, int64_t *out);

/* Positive decimal integer in [min, max]. Returns 0 or -1. */
int ctl_parse_uint(const char *s, unsigned long min, unsigned long max, unsigned long *out);

/* RFC 3339 UTC ("2025-01-31T12:00:00Z") into <buf> (>= 21 bytes). */
void ctl_fmt_time(int64_t t, char *buf, size_t len);

/* Replaces <dir>/<name> with <len> bytes of <data>: temporary file in <dir>,
 * fsync, chmod <mode>, rename, fsync of <dir>. On failure the old file is
 * untouched and <err> says why. Returns 0 or -1. */
int ctl_write_atomic(const char *dir, const char *name, const void *data, size_t len,
                     unsigned mode, char *err, size_t errlen);

/* mkdir -p: creates <path> and any missing parents, each new one with mode
 * <mode> whatever the umask. A path that exists must be a directory (or a
 * symlink to one). Returns 0 or -1 with <err> naming the component at fault. */
int ctl_mkdir_p(const char *path, unsigned mode, char *err, size_t errlen);

/* Run as root: gives <fd> (the file at <path>) the owner of its directory when
 * that is not root (the service's state directory), so that keyauthctl run
 * as the service's user can still write it. Not root: nothing to do.
 * Returns 0, or -1 with errno when the owner could not be given. */
int ctl_file_give_dir_owner(int fd, const char *path);

/* Reads the whole file at <path> into a new NUL-terminated buffer (owned by
 * the caller). Returns 0, 1 when the file does not exist, -1 on error. */
int ctl_read_file(const char *path, char **data, size_t *len, char *err, size_t errlen);

/* ---- ctl_render.c -------------------------------------------------------- */

#define CTL_SPOE_FILE     "keyauth-spoe.conf"
#define CTL_HAPROXY_FILE  "haproxy-keyauth.cfg"
#define CTL_DEFAULT_BIND  "127.0.0.1:8080"
#define CTL_DEFAULT_HAPROXY_DIR "/etc/haproxy"

enum ctl_haproxy_version {
	CTL_HAPROXY_26 = 0,      /* 2.6 .. 3.0: SPOE applets, all agent timeouts */
	CTL_HAPROXY_32 = 1,      /* 3.1+: mux_spop, only "timeout processing" */
};

struct ctl_render_opts {
	/* --bind: replaces the config's frontend.bind (its TLS and HTTP/2
	 * still apply); NULL: frontend.bind, else CTL_DEFAULT_BIND */
	const char *bind;
	const char *spoe_path;               /* the SPOE file's path, as haproxy.cfg names it */
	enum ctl_haproxy_version version;
};

/* Renders the SPOE file and haproxy.cfg for <c> into new NUL-terminated
 * buffers owned by the caller. Returns 0, or -1 with <err> when a config
 * value cannot be rendered safely. */
int ctl_render(const struct conf *c, const struct ctl_render_opts *o,
               char **spoe, size_t *spoe_len, char **cfg, size_t *cfg_len,
               char *err, size_t errlen);

/* Parses "--haproxy-version": "2.6" .. "3.0" or "3.1"+. Returns 0 or -1. */
int ctl_parse_haproxy_version(const char *s, enum ctl_haproxy_version *out);

/* True if <s> is a plausible HAProxy bind address (no spaces or quotes). */
bool ctl_bind_ok(const char *s);

/* ---- ctl_deploy.c -------------------------------------------------------- */

/* The options of 'haproxy' and 'deploy' (each takes those it lists), for
 * their ctl_cmd's init and opt. */
struct ctl_hap_opts {
	struct ctl_render_opts render;   /* --bind, --haproxy-version, --spoe-path */
	const char *out;                 /* haproxy --out DIR */
	const char *dir;                 /* deploy --haproxy-dir DIR */
	const char *reload;              /* deploy --reload-haproxy CMD */
	const char *haproxy;             /* deploy --haproxy PATH */
	const char *service;             /* deploy --haproxy-service debian|none, NULL: auto */
	const char *defaults;            /* deploy --haproxy-defaults FILE, NULL: auto */
	bool version_set;                /* --haproxy-version given: no detection */
	bool preview;                    /* deploy --preview: diff and id, no side effect */
	const char *if_preview;          /* deploy --if-preview ID, or NULL */
};
void ctl_hap_opts_init(void *opts);
int ctl_hap_opt(struct ctl_ctx *ctx, void *opts, int opt, const char *arg);
/* The struct ctl_cmd fields of a command with these options. */
#define CTL_HAP_OPTS \
	.opts_size = sizeof(struct ctl_hap_opts), .init = ctl_hap_opts_init, .opt = ctl_hap_opt

/* The haproxy binary to check configs with: <hint> if not NULL, else
 * "haproxy" from $PATH, else /usr/sbin/haproxy. NULL when none is found. */
const char *ctl_haproxy_find(const char *hint, char *buf, size_t len);

/* Runs "<haproxy> -c -q -f <cfg>". Returns its exit status (0 = valid), or -1
 * when it could not be run; its output goes to <out> (NUL-terminated). */
int ctl_haproxy_check(const char *haproxy, const char *cfg, char *out, size_t outlen);

/* Runs <argv> (argv[0] a path), its output (stdout and stderr) captured into
 * <out> (NUL-terminated, the head kept) when not NULL, else inherited.
 * Returns the exit status, 128+N for signal N, or -1 (127: exec failed). */
int ctl_run_child(char *const argv[], char *out, size_t outlen);

/* ---- ctl_deploy_service.c: how HAProxy is run ------------------------------ */

/* What Debian's haproxy.service (haproxy package) sets and runs:
 *   ExecStart=/usr/sbin/haproxy -Ws -f $CONFIG -p $PIDFILE $EXTRAOPTS
 * with CONFIG and EXTRAOPTS from /etc/default/haproxy over the unit's own. */
#define CTL_DEB_DEFAULTS   "/etc/default/haproxy"
#define CTL_DEB_UNIT       "/lib/systemd/system/haproxy.service"
#define CTL_DEB_CONFIG     "/etc/haproxy/haproxy.cfg"
#define CTL_DEB_EXTRAOPTS  "-S /run/haproxy-master.sock"
#define CTL_DEB_HAPROXY    "/usr/sbin/haproxy"
#define CTL_SVC_MAX_CFG    32

/* The configuration HAProxy's service loads, as its defaults file says. */
struct ctl_svc {
	bool defaults_read;              /* the defaults file existed and was read */
	char *config;                    /* CONFIG, as in effect */
	char *extraopts;                 /* EXTRAOPTS, as in effect */
	char *cfg[CTL_SVC_MAX_CFG];      /* every -f, in HAProxy's order (CONFIG first) */
	size_t ncfg;
	char *master;                    /* the -S unix socket's path, or NULL */
};

/* Reads the defaults file <path> (KEY=value lines, values maybe quoted, as
 * systemd's EnvironmentFile= reads them; a missing file leaves the unit's
 * values) into <s>. Returns 0, or -1 with <err>. ctl_svc_free() either way. */
int ctl_svc_load(const char *path, struct ctl_svc *s, char *err, size_t errlen);
void ctl_svc_free(struct ctl_svc *s);

/* What deploy found out about HAProxy before writing anything. */
struct ctl_deploy_plan {
	bool debian;                     /* run by Debian's haproxy.service */
	const char *defaults;            /* its defaults file */
	struct ctl_svc svc;              /* with debian: what it loads */
	const char *haproxy;             /* binary for -v and -c, NULL: none found */
	char hbuf[4096];
	char version[64];                /* from haproxy -v, "" when not run */
	const char *reload;              /* shell command to reload, or NULL */
	const char *master;              /* master CLI socket to reload through, or NULL */
	const char *reload_why;          /* how the default reload was chosen, or NULL */
};

/* Decides how deploy finds, checks and reloads HAProxy from <h> (options)
 * and what the host runs, for files going to <dir> (a real path); refuses
 * (reported, nothing written) when HAProxy's service would not load them,
 * when the haproxy binary is missing or older than 2.6. Sets <render>'s
 * version unless --haproxy-version did. Returns 0, 1 (usage error) or -1.
 * ctl_deploy_plan_free() either way. */
int ctl_deploy_plan(const struct ctl_ctx *ctx, const struct ctl_hap_opts *h, const char *dir,
                    struct ctl_render_opts *render, struct ctl_deploy_plan *p);
void ctl_deploy_plan_free(struct ctl_deploy_plan *p);

/* True when HAProxy, run as <s> says, loads <dir>/<name> (<dir> a real path):
 * a -f names that file, or a -f names <dir> (HAProxy loads a directory's
 * *.cfg files). */
bool ctl_svc_loads(const struct ctl_svc *s, const char *dir, const char *name);

/* Runs "<haproxy> -c -f ..." on every file HAProxy run as <s> loads, with
 * <tmpcfg> in place of <dir>/<name> (added where HAProxy would read it when
 * <dir> is a configuration directory). As ctl_haproxy_check returns. */
int ctl_svc_check(const char *haproxy, const struct ctl_svc *s, const char *dir,
                  const char *name, const char *tmpcfg, char *out, size_t outlen);

/* Warns when a file HAProxy loads (other than <dir>'s haproxy-keyauth.cfg)
 * chroots HAProxy while <c>'s agent listens on a unix socket, which HAProxy
 * then looks for inside the chroot, and says how to bind it in. */
void ctl_svc_chroot_warn(const struct ctl_ctx *ctx, const struct ctl_svc *s, const char *dir,
                         const struct conf *c);

/* Runs "<haproxy> -v": the version ("2.6.12-1+deb12u4") into <ver> and its
 * rendering variant into <v>. Returns 0, or -1 with <err> (not run, not
 * understood, or older than 2.6). */
int ctl_haproxy_version(const char *haproxy, enum ctl_haproxy_version *v, char *ver,
                        size_t verlen, char *err, size_t errlen);

/* ---- ctl_deploy_master.c: reloads through HAProxy's master CLI ----------- */

/* Reloads the HAProxy master whose CLI is the unix socket <path>: "reload",
 * then HAProxy 3.x's "Success=" answer, else (2.6) "show proc" until the
 * master counts the reload (bounded). Returns 0 when a new worker runs the new
 * configuration, 1 when HAProxy refused it (its messages in <msg>), -1 when
 * the socket failed (<msg> says why). <worker> gets the new worker's pid. */
int ctl_master_reload(const char *path, long *worker, char *msg, size_t msglen);

/* ---- ctl_route.c: route edits (route_overrides) ---------------------------- */

extern const struct ctl_cmd ctl_cmd_route_list, ctl_cmd_route_show, ctl_cmd_route_set;

#define CTL_ETAG_LEN 32          /* hex digits of a route's ETag */

/* The configuration with the applied and with the pending route overrides
 * (the same conf when route_overrides is not set), and the overrides' lock. */
struct ctl_ovr_state {
	struct conf *applied;
	struct conf *pending;            /* what deploy renders */
	int lockfd;                      /* flock on <path>.lock held, or -1 */
};
/* Loads both (errors printed), under the lock when <lock>. 0 or -1. */
int ctl_ovr_open(const struct ctl_ctx *ctx, struct ctl_ovr_state *s, bool lock);
void ctl_ovr_close(struct ctl_ovr_state *s);
/* The names of the routes whose pending settings differ from the applied ones. */
json_t *ctl_ovr_pending_routes(const struct ctl_ovr_state *s);
/* Makes <path>.pending the applied <path> (atomic rename): 0, or -1 (said). */
int ctl_ovr_promote(const struct ctl_ctx *ctx, const struct ctl_ovr_state *s);
struct route;
void ctl_route_etag(const struct route *r, char out[CTL_ETAG_LEN + 1]);

/* ---- ctl_deploy_preview.c: deploy --preview / --if-preview --------------------- */

/* With --preview: prints diff -u of <dir>'s installed files against the
 * rendered SPOE file <spoe> and haproxy.cfg <cfg>, the routes with pending
 * edits and the preview id (a JSON object with <json>), and returns the exit
 * code. With --if-preview ID: returns CTL_EXIT_PRECOND (said why) when the
 * preview id is no longer ID, else -1: go on deploying. The preview id is the
 * SHA-256 of the rendered files and of the pending route edits. */
int ctl_deploy_preview_step(const struct ctl_ctx *ctx, const struct ctl_ovr_state *s,
                            const struct ctl_hap_opts *h, const char *dir, const char *spoe,
                            size_t spoe_len, const char *cfg, size_t cfg_len, bool json);
/* After a deploy installed the files (<spoe_changed>, <cfg_changed>) and
 * applied the pending edits: the audit entry "deployed" (a warning when it
 * cannot be written: the deploy is done). */
void ctl_deploy_audit(const struct ctl_ctx *ctx, const struct ctl_ovr_state *s,
                      bool spoe_changed, bool cfg_changed);

#endif /* AGENT_CTL_H */
