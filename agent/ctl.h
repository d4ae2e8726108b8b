/* SPDX-License-Identifier: Apache-2.0 */
/*
 * ctl: keyauthctl's private interface.
 *
 * keyauthctl.c holds main() and the top-level command table; the commands
 * live in ctl_keys.c (key lifecycle), ctl_render.c (HAProxy files),
 * ctl_deploy.c (deploy) and ctl_util.c (helpers shared by all of them).
 * Everything here runs in one short-lived, single-threaded process. Commands
 * return an exit code (CTL_EXIT_*) and print their own messages.
 */
#ifndef AGENT_CTL_H
#define AGENT_CTL_H

#include <getopt.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

struct conf;

#define CTL_EXIT_OK     0
#define CTL_EXIT_FAIL   1        /* the command ran and failed */
#define CTL_EXIT_USAGE  2        /* bad command line; nothing was done */

#define CTL_DEFAULT_DAYS   90
#define CTL_MAX_DAYS       3650  /* ten years: anything longer is a typo */
#define CTL_DEFAULT_GRACE  (24 * 3600)

/* Options every command accepts, after or before the command words. */
#define CTL_OPT_NOW 0x100        /* --now UNIXTIME: hidden test clock */
#define CTL_COMMON_LONGOPTS \
	{ "config", required_argument, NULL, 'c' }, \
	{ "now",    required_argument, NULL, CTL_OPT_NOW }, \
	{ "help",   no_argument,       NULL, 'h' }

struct ctl_ctx {
	const char *conf_path;   /* -c, else $KEYAUTH_CONF, else CONF_DEFAULT_PATH */
	int64_t now;             /* test clock (--now or $KEYAUTH_NOW), when now_set */
	bool now_set;
	const char *prog;        /* "keyauthctl key create": for messages */
};

struct ctl_cmd {
	const char *name;
	int (*run)(struct ctl_ctx *ctx, int argc, char **argv);
	const char *summary;
};

/* ---- ctl_util.c ---------------------------------------------------------- */

/* Finds <word> in <tab> by exact name or unique prefix. NULL when absent or
 * ambiguous (*ambiguous tells which). */
const struct ctl_cmd *ctl_cmd_lookup(const struct ctl_cmd *tab, size_t n,
                                     const char *word, bool *ambiguous);

/* Handles one of CTL_COMMON_LONGOPTS' -c / --now. Returns 0, or
 * CTL_EXIT_USAGE after printing why. */
int ctl_common_opt(struct ctl_ctx *ctx, int opt, const char *arg);

/* Resets getopt for a new command line. */
void ctl_getopt_reset(void);

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

int ctl_stats_main(struct ctl_ctx *ctx, int argc, char **argv);
/* Sends "<cmd>\n" to keyauthd's control socket; the answer (caller frees)
 * or NULL with errno. */
char *ctl_control_call(const char *path, const char *cmd);

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

/* Writes <s> as a JSON string literal (quotes included). NULL -> null. */
void ctl_json_str(FILE *f, const char *s);

/* Replaces <dir>/<name> with <len> bytes of <data>: temporary file in <dir>,
 * fsync, chmod <mode>, rename, fsync of <dir>. On failure the old file is
 * untouched and <err> says why. Returns 0 or -1. */
int ctl_write_atomic(const char *dir, const char *name, const void *data, size_t len,
                     unsigned mode, char *err, size_t errlen);

/* Reads the whole file at <path> into a new NUL-terminated buffer (owned by
 * the caller). Returns 0, 1 when the file does not exist, -1 on error. */
int ctl_read_file(const char *path, char **data, size_t *len, char *err, size_t errlen);

/* ---- ctl_keys.c ---------------------------------------------------------- */

/* keyauthctl key <create|list|revoke|rotate|import|verify> ... */
int ctl_key_main(struct ctl_ctx *ctx, int argc, char **argv);

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
	const char *bind;                    /* frontend bind address */
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

/* keyauthctl haproxy [--out DIR] ... */
int ctl_haproxy_main(struct ctl_ctx *ctx, int argc, char **argv);

/* ---- ctl_deploy.c -------------------------------------------------------- */

/* The haproxy binary to check configs with: <hint> if not NULL, else
 * "haproxy" from $PATH, else /usr/sbin/haproxy. NULL when none is found. */
const char *ctl_haproxy_find(const char *hint, char *buf, size_t len);

/* Runs "<haproxy> -c -q -f <cfg>". Returns its exit status (0 = valid), or -1
 * when it could not be run; its output goes to <out> (NUL-terminated). */
int ctl_haproxy_check(const char *haproxy, const char *cfg, char *out, size_t outlen);

/* keyauthctl deploy ... */
int ctl_deploy_main(struct ctl_ctx *ctx, int argc, char **argv);

#endif /* AGENT_CTL_H */
