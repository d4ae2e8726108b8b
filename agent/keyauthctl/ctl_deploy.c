/* SPDX-License-Identifier: Apache-2.0 */
/*
 * ctl_deploy: `keyauthctl deploy`, configuration changes to the gateway.
 *
 * Order matters: validate the config (nothing is written if it fails),
 * render, check the rendered files with `haproxy -c` in a private temporary
 * directory (nothing is written if HAProxy rejects them), replace each
 * changed file atomically (a failure puts back what was replaced), SIGHUP the
 * keyauthd named by the config's pid_file, then run the operator's HAProxy
 * reload command. Keys are data, not configuration: they never need this.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "conf.h"
#include "ctl.h"

/* ---- haproxy -c ------------------------------------------------------------- */

const char *
ctl_haproxy_find(const char *hint, char *buf, size_t len)
{
	static const char *const fallback[] = { "/usr/sbin/haproxy", "/usr/local/sbin/haproxy" };
	const char *path = getenv("PATH");

	if (hint != NULL)
		return access(hint, X_OK) == 0 ? hint : NULL;
	while (path != NULL && *path != '\0') {
		const char *end = strchr(path, ':');
		size_t n = end != NULL ? (size_t)(end - path) : strlen(path);

		if (n > 0 && (size_t)snprintf(buf, len, "%.*s/haproxy", (int)n, path) < len &&
		    access(buf, X_OK) == 0)
			return buf;
		path = end != NULL ? end + 1 : NULL;
	}
	for (size_t i = 0; i < sizeof(fallback) / sizeof(fallback[0]); i++) {
		if (access(fallback[i], X_OK) == 0) {
			snprintf(buf, len, "%s", fallback[i]);
			return buf;
		}
	}
	return NULL;
}

int
ctl_run_child(char *const argv[], char *out, size_t outlen)
{
	int pfd[2] = { -1, -1 }, status;
	size_t n = 0;
	pid_t pid;

	if (out != NULL && pipe2(pfd, O_CLOEXEC) == -1)
		return -1;
	fflush(stdout);
	fflush(stderr);
	pid = fork();
	if (pid == -1) {
		if (out != NULL) {
			close(pfd[0]);
			close(pfd[1]);
		}
		return -1;
	}
	if (pid == 0) {
		if (out != NULL) {
			dup2(pfd[1], STDOUT_FILENO);
			dup2(pfd[1], STDERR_FILENO);
		}
		execv(argv[0], argv);
		_exit(127);
	}
	if (out != NULL) {
		close(pfd[1]);
		for (;;) {
			char chunk[1024];
			ssize_t r = read(pfd[0], chunk, sizeof(chunk));

			if (r == -1 && errno == EINTR)
				continue;
			if (r <= 0)
				break;
			/* Keep the head: HAProxy reports the first error first. */
			if (n + 1 < outlen) {
				size_t take = (size_t)r < outlen - 1 - n ? (size_t)r : outlen - 1 - n;

				memcpy(out + n, chunk, take);
				n += take;
			}
		}
		close(pfd[0]);
		out[n] = '\0';
	}
	while (waitpid(pid, &status, 0) == -1) {
		if (errno != EINTR)
			return -1;
	}
	if (WIFEXITED(status))
		return WEXITSTATUS(status);
	return 128 + WTERMSIG(status);
}

int
ctl_haproxy_check(const char *haproxy, const char *cfg, char *out, size_t outlen)
{
	char *argv[] = { (char *)haproxy, (char *)"-c", (char *)"-f", (char *)cfg, NULL };

	return ctl_run_child(argv, out, outlen);
}

/* ---- deploy steps ------------------------------------------------------------- */

struct dep_file {
	const char *name;
	const char *data;            /* rendered */
	size_t len;
	char *old;                   /* previous content, NULL when there was none */
	size_t oldlen;
	bool existed;
	bool changed;
	bool written;
};

/* Checks the rendered files with haproxy -c in a private directory, with
 * everything else HAProxy loads when <svc> says how it is run (the files
 * must work together: one frontend name, one global section's worth of
 * settings). Returns 0 when valid, 1 when HAProxy rejected them, -1 when the
 * check could not be run (all reported). */
static int
check_rendered(const struct ctl_ctx *ctx, const struct conf *c, const struct ctl_render_opts *o,
               const char *haproxy, const struct ctl_svc *svc, const char *dir)
{
	struct ctl_render_opts co = *o;
	char tmpl[PATH_MAX], spoe_path[PATH_MAX + 64], cfg_path[PATH_MAX + 64];
	char err[1024], *out, *spoe = NULL, *cfg = NULL;
	const char *tmp = getenv("TMPDIR");
	size_t spoe_len, cfg_len;
	int rc = -1, st;

	out = malloc(16384);
	if (out == NULL)
		return -1;
	snprintf(tmpl, sizeof(tmpl), "%s/keyauthctl-check.XXXXXX",
	         tmp != NULL && *tmp == '/' ? tmp : "/tmp");
	if (mkdtemp(tmpl) == NULL) {
		ctl_err(ctx, "cannot create a directory for haproxy -c: %s", strerror(errno));
		free(out);
		return -1;
	}
	snprintf(spoe_path, sizeof(spoe_path), "%s/%s", tmpl, CTL_SPOE_FILE);
	snprintf(cfg_path, sizeof(cfg_path), "%s/%s", tmpl, CTL_HAPROXY_FILE);
	co.spoe_path = spoe_path;
	err[0] = '\0';
	if (ctl_render(c, &co, &spoe, &spoe_len, &cfg, &cfg_len, err, sizeof(err)) == -1 ||
	    ctl_write_atomic(tmpl, CTL_SPOE_FILE, spoe, spoe_len, 0600, err, sizeof(err)) == -1 ||
	    ctl_write_atomic(tmpl, CTL_HAPROXY_FILE, cfg, cfg_len, 0600, err, sizeof(err)) == -1) {
		ctl_err(ctx, "preparing haproxy -c: %s", err);
		goto out;
	}
	if (svc != NULL)
		st = ctl_svc_check(haproxy, svc, dir, CTL_HAPROXY_FILE, cfg_path, out, 16384);
	else
		st = ctl_haproxy_check(haproxy, cfg_path, out, 16384);
	if (st == 0) {
		rc = 0;
	} else if (st == -1 || st == 127) {
		ctl_err(ctx, "could not run %s", haproxy);
	} else {
		ctl_err(ctx, "%s -c rejected the rendered configuration%s (exit %d); nothing was "
		        "written:\n%s", haproxy, svc != NULL ? " with the files HAProxy's service "
		        "loads" : "", st, out);
		rc = 1;
	}
out:
	unlink(spoe_path);
	unlink(cfg_path);
	rmdir(tmpl);
	free(spoe);
	free(cfg);
	free(out);
	return rc;
}

/* Puts back the files already replaced, newest first. */
static void
restore_files(const struct ctl_ctx *ctx, const char *dir, struct dep_file *fl, size_t n)
{
	char err[1024], path[PATH_MAX + 64];

	for (size_t i = n; i-- > 0;) {
		if (!fl[i].written)
			continue;
		if (fl[i].existed) {
			if (ctl_write_atomic(dir, fl[i].name, fl[i].old, fl[i].oldlen, 0644,
			                     err, sizeof(err)) == -1)
				ctl_err(ctx, "could not restore %s/%s: %s", dir, fl[i].name, err);
		} else {
			snprintf(path, sizeof(path), "%s/%s", dir, fl[i].name);
			unlink(path);
		}
	}
}

enum sig_result {
	SIG_SENT = 0,
	SIG_NO_PIDFILE_CONF,         /* the config names no pid_file */
	SIG_NO_PIDFILE,              /* pid_file configured, absent: agent not running? */
	SIG_BAD_PIDFILE,             /* unreadable or not a pid */
	SIG_STALE,                   /* no such process */
	SIG_NOT_KEYAUTHD,            /* the pid belongs to another program */
	SIG_FAILED,                  /* kill() failed otherwise */
};

/* Sends SIGHUP to the keyauthd in <c>'s pid_file; <pid> and <why> say what
 * happened. The process name is checked first so a stale pid file reused by
 * another program is never signalled. */
static enum sig_result
signal_agent(const struct conf *c, long *pid, char *why, size_t whylen)
{
	char *data = NULL, comm[64], path[64], err[256];
	size_t len;
	unsigned long v;
	FILE *f;
	int r;

	*pid = 0;
	why[0] = '\0';
	if (c->pid_file == NULL)
		return SIG_NO_PIDFILE_CONF;
	r = ctl_read_file(c->pid_file, &data, &len, err, sizeof(err));
	if (r == 1)
		return SIG_NO_PIDFILE;
	if (r == -1) {
		snprintf(why, whylen, "%s", err);
		return SIG_BAD_PIDFILE;
	}
	while (len > 0 && (data[len - 1] == '\n' || data[len - 1] == ' '))
		data[--len] = '\0';
	r = ctl_parse_uint(data, 2, 4194304 /* PID_MAX_LIMIT */, &v);
	free(data);
	if (r == -1) {
		snprintf(why, whylen, "%s does not hold a pid", c->pid_file);
		return SIG_BAD_PIDFILE;
	}
	*pid = (long)v;
	if (kill((pid_t)v, 0) == -1 && errno == ESRCH)
		return SIG_STALE;
	snprintf(path, sizeof(path), "/proc/%lu/comm", v);
	f = fopen(path, "r");
	if (f != NULL) {
		bool ok = fgets(comm, sizeof(comm), f) != NULL && strncmp(comm, "keyauthd", 8) == 0;

		fclose(f);
		if (!ok) {
			comm[strcspn(comm, "\n")] = '\0';
			snprintf(why, whylen, "pid %lu is '%s', not keyauthd", v, comm);
			return SIG_NOT_KEYAUTHD;
		}
	}
	if (kill((pid_t)v, SIGHUP) == -1) {
		snprintf(why, whylen, "kill %lu: %s", v, strerror(errno));
		return errno == ESRCH ? SIG_STALE : SIG_FAILED;
	}
	return SIG_SENT;
}

/* ---- the options of haproxy and deploy ------------------------------------------ */

void
ctl_hap_opts_init(void *opts)
{
	struct ctl_hap_opts *h = opts;

	h->render.bind = NULL;       /* the config's frontend.bind */
	h->render.version = CTL_HAPROXY_26;
	h->dir = NULL;               /* deploy: the config's deploy.haproxy_dir, else
	                              * CTL_DEFAULT_HAPROXY_DIR (deploy_opts_merge) */
}

int
ctl_hap_opt(struct ctl_ctx *ctx, void *opts, int opt, const char *arg)
{
	struct ctl_hap_opts *h = opts;

	switch (opt) {
	case 'o': h->out = arg; break;
	case 'b': h->render.bind = arg; break;
	case 's': h->render.spoe_path = arg; break;
	case 'd': h->dir = arg; break;
	case 'r': h->reload = arg; break;
	case 'x': h->haproxy = arg; break;
	case 'v':
		if (ctl_parse_haproxy_version(arg, &h->render.version) == -1)
			return ctl_usage_err(ctx, "--haproxy-version: '%s' is not 2.6..3.x", arg);
		h->version_set = true;
		break;
	case 'S':
		if (strcmp(arg, "debian") != 0 && strcmp(arg, "none") != 0)
			return ctl_usage_err(ctx, "--haproxy-service: '%s' is not debian or none", arg);
		h->service = arg;
		break;
	case 'D': h->defaults = arg; break;
	case 'P': h->preview = true; break;
	case 'I': h->if_preview = arg; break;
	default:
		return ctl_usage_err(ctx, "unexpected option");
	}
	return 0;
}

/* ---- keyauthctl deploy ----------------------------------------------------------- */

static const char deploy_help[] =
	"usage: keyauthctl deploy [--haproxy-dir DIR] [--reload-haproxy HOW]\n"
	"                         [--haproxy-service debian|none] [--haproxy-defaults F]\n"
	"                         [--haproxy-version 2.6|3.2] [--haproxy PATH] [--json]\n"
	"                         [--preview | --if-preview ID]\n"
	"\n"
	"Makes configuration changes (routes, key names and locations, listeners) live:\n"
	"  1. validates the keyauth config (on failure nothing is written);\n"
	"  2. with Debian's haproxy service, makes sure it loads\n"
	"     DIR/" CTL_HAPROXY_FILE " (CONFIG, and -f in EXTRAOPTS, of its\n"
	"     defaults file); if not, says which file it loads and how to fix that,\n"
	"     and writes nothing;\n"
	"  3. asks 'haproxy -v' for the version to render for (2.6 or newer);\n"
	"  4. renders " CTL_SPOE_FILE " and " CTL_HAPROXY_FILE ";\n"
	"  5. checks them with 'haproxy -c' when haproxy is installed, together with\n"
	"     every other file the service loads (on failure nothing is written);\n"
	"  6. replaces the changed files in DIR atomically;\n"
	"  6b. applies the pending route edits (keyauthctl route set);\n"
	"  7. sends SIGHUP to keyauthd through the config's pid_file;\n"
	"  8. reloads HAProxy (HOW).\n"
	"Key changes (create, revoke, rotate) need no deploy.\n"
	"\n"
	"  --haproxy-dir DIR      where the files go (default " CTL_DEFAULT_HAPROXY_DIR ")\n"
	"  --reload-haproxy HOW   a shell command, e.g. 'systemctl reload haproxy';\n"
	"                         master:SOCKET, 'reload' on the master CLI of an\n"
	"                         HAProxy run with -W -S SOCKET (new worker confirmed);\n"
	"                         or none. Default with Debian's service: 'systemctl\n"
	"                         reload haproxy' when systemd runs, else master:SOCKET\n"
	"                         of the -S in its EXTRAOPTS; without: none\n"
	"  --haproxy-service S    debian: HAProxy runs as Debian's haproxy.service;\n"
	"                         none: it does not, what it loads is not checked.\n"
	"                         Default: debian when " CTL_DEB_DEFAULTS "\n"
	"                         or " CTL_DEB_UNIT " exists\n"
	"  --haproxy-defaults F   the service's defaults file (KEY=value lines;\n"
	"                         default " CTL_DEB_DEFAULTS ")\n"
	"  --haproxy PATH         the haproxy for -v and -c (default " CTL_DEB_HAPROXY "\n"
	"                         with Debian's service, else haproxy from $PATH)\n"
	"  --haproxy-version V    render for V (2.6 or 3.2), not what haproxy -v says\n"
	"  --json                 a JSON report\n"
	"  --preview              steps 1-5 only, with the pending route edits: prints\n"
	"                         diff -u of the installed files against the rendered\n"
	"                         ones, the routes with pending edits and a preview id;\n"
	"                         writes nothing\n"
	"  --if-preview ID        deploy only if what would be deployed still has the\n"
	"                         preview id ID (else exit 4, nothing written)\n"
	"\n"
	"The config's deploy group gives the defaults of --haproxy-dir,\n"
	"--reload-haproxy, --haproxy-service, --haproxy-defaults and --haproxy\n"
	"(haproxy_dir, reload_haproxy, haproxy_service, haproxy_defaults, haproxy;\n"
	"see keyauth.conf(5)); a flag given overrides its setting. So does keyauth-\n"
	"admin's deploy, which runs 'keyauthctl deploy' without these flags.\n"
	"\n"
	"The frontend binds frontend.bind of the keyauth config, with its tls and\n"
	"http2: deploy refuses a config without frontend.bind, and takes no --bind.\n"
	"\n"
	"Exit status: 0 deployed, 1 failed (see messages), 2 usage, 4 the preview id\n"
	"differs.\n"
	"\n"
	"examples:\n"
	"  keyauthctl deploy      # Debian's haproxy service, reloaded as it runs\n"
	"  keyauthctl deploy --haproxy-service none \\\n"
	"      --reload-haproxy master:/run/haproxy-master.sock\n"
	"  # the same, set once in keyauth.conf:\n"
	"  #   deploy = { haproxy_service = \"none\";\n"
	"  #              reload_haproxy = \"master:/run/haproxy-master.sock\"; };\n";

/* What a deploy did, for its report. */
struct dep_report {
	const char *dir;
	const struct dep_file *fl;   /* the SPOE file, then haproxy.cfg */
	const char *check;           /* haproxy -c: "ok" or "skipped" */
	enum sig_result sig;
	long pid;
	int reload_st;               /* the reload's status (0 ok); -2: none */
	long worker;                 /* master reload: the new worker's pid */
	const struct ctl_deploy_plan *plan;
	enum ctl_haproxy_version variant;
	bool ok;
};

/* Reads what <dir> holds and replaces the files that changed, the SPOE file
 * first (the new haproxy.cfg may name messages only it has). Returns 0, or
 * -1 (reported) with what was replaced put back. */
static int
install_files(const struct ctl_ctx *ctx, const char *dir, struct dep_file *fl, size_t n)
{
	char err[1024], path[PATH_MAX + 64];

	for (size_t i = 0; i < n; i++) {
		int r;

		snprintf(path, sizeof(path), "%s/%s", dir, fl[i].name);
		r = ctl_read_file(path, &fl[i].old, &fl[i].oldlen, err, sizeof(err));
		if (r == -1) {
			ctl_err(ctx, "%s; nothing was deployed", err);
			return -1;
		}
		fl[i].existed = r == 0;
		fl[i].changed = !fl[i].existed || fl[i].oldlen != fl[i].len ||
		                memcmp(fl[i].old, fl[i].data, fl[i].len) != 0;
	}
	for (size_t i = 0; i < n; i++) {
		if (!fl[i].changed)
			continue;
		if (ctl_write_atomic(dir, fl[i].name, fl[i].data, fl[i].len, 0644,
		                     err, sizeof(err)) == -1) {
			ctl_err(ctx, "%s", err);
			restore_files(ctx, dir, fl, n);
			fprintf(stderr, "%s: the previous files were kept; nothing was deployed.\n",
			        ctx->prog);
			return -1;
		}
		fl[i].written = true;
	}
	return 0;
}

/* Warns when keyauthd was not signalled, saying why. */
static void
signal_warn(const struct ctl_ctx *ctx, const struct conf *c, enum sig_result sig, long pid,
            const char *why)
{
	switch (sig) {
	case SIG_SENT:
		break;
	case SIG_NO_PIDFILE_CONF:
		fprintf(stderr, "%s: warning: the config has no pid_file; reload keyauthd yourself "
		        "(kill -HUP)\n", ctx->prog);
		break;
	case SIG_NO_PIDFILE:
		fprintf(stderr, "%s: warning: %s does not exist: keyauthd is not running? It will "
		        "read the new config when it starts\n", ctx->prog, c->pid_file);
		break;
	case SIG_STALE:
		fprintf(stderr, "%s: warning: keyauthd (pid %ld from %s) is not running\n",
		        ctx->prog, pid, c->pid_file);
		break;
	case SIG_BAD_PIDFILE:
	case SIG_NOT_KEYAUTHD:
	case SIG_FAILED:
		fprintf(stderr, "%s: warning: keyauthd not signalled: %s\n", ctx->prog, why);
		break;
	}
}

static json_t *
report_json(const struct dep_report *r)
{
	json_t *files = json_array();

	for (size_t i = 0; i < 2; i++)
		json_array_append_new(files, json_pack("{s:s,s:b}", "name", r->fl[i].name,
		                                       "changed", r->fl[i].changed));
	const struct ctl_deploy_plan *p = r->plan;
	json_t *loads = json_array(), *reload = json_null();

	for (size_t i = 0; p->debian && i < p->svc.ncfg; i++)
		json_array_append_new(loads, ctl_json_text(p->svc.cfg[i]));
	if (p->reload != NULL || p->master != NULL)
		reload = json_pack("{s:s,s:o,s:i,s:o}", "method", p->master != NULL ? "master" : "command",
		                   "target", ctl_json_text(p->master != NULL ? p->master : p->reload),
		                   "status", r->reload_st,
		                   "worker", r->worker > 0 ? json_integer(r->worker) : json_null());
	return json_pack("{s:b,s:o,s:o,s:s,s:{s:o,s:o,s:s},s:{s:s,s:o,s:o},s:{s:b,s:o},s:o}",
	                 "ok", r->ok, "dir", ctl_json_text(r->dir), "files", files,
	                 "haproxy_check", r->check,
	                 "haproxy", "path", ctl_json_text(p->haproxy),
	                 "version", p->version[0] != '\0' ? json_string(p->version) : json_null(),
	                 "rendered_for", r->variant == CTL_HAPROXY_32 ? "3.1+" : "2.6..3.0",
	                 "service", "name", p->debian ? "debian" : "none",
	                 "defaults", p->debian ? ctl_json_text(p->defaults) : json_null(),
	                 "loads", loads,
	                 "agent", "signalled", r->sig == SIG_SENT,
	                 "pid", r->pid > 0 ? json_integer(r->pid) : json_null(),
	                 "reload", reload);
}

static void
report_text(const struct dep_report *r)
{
	for (size_t i = 0; i < 2; i++)
		printf("%s/%s: %s\n", r->dir, r->fl[i].name, r->fl[i].changed ? "changed" : "unchanged");
	const struct ctl_deploy_plan *p = r->plan;

	if (p->haproxy != NULL)
		printf("haproxy: %s%s%s (rendered for %s)\n", p->haproxy,
		       p->version[0] != '\0' ? " " : "", p->version,
		       r->variant == CTL_HAPROXY_32 ? "3.1+" : "2.6..3.0");
	if (p->debian) {
		printf("haproxy service: debian (%s%s): loads", p->defaults,
		       p->svc.defaults_read ? "" : " absent: the unit's defaults");
		for (size_t i = 0; i < p->svc.ncfg; i++)
			printf(" %s", p->svc.cfg[i]);
		printf("\n");
	} else {
		printf("haproxy service: none\n");
	}
	printf("haproxy -c: %s\n", r->check);
	if (r->sig == SIG_SENT)
		printf("keyauthd: signalled pid %ld (SIGHUP)\n", r->pid);
	else
		printf("keyauthd: not signalled\n");
	if (p->master != NULL && r->reload_st == 0)
		printf("haproxy reload: ok, master socket %s, new worker pid %ld%s%s%s\n", p->master,
		       r->worker > 0 ? r->worker : 0L, p->reload_why ? " (" : "",
		       p->reload_why ? p->reload_why : "", p->reload_why ? ")" : "");
	else if (p->master != NULL)
		printf("haproxy reload: failed, master socket %s\n", p->master);
	else if (p->reload != NULL)
		printf("haproxy reload: %s (exit %d): %s%s%s%s\n", r->reload_st == 0 ? "ok" : "failed",
		       r->reload_st, p->reload, p->reload_why ? " (" : "",
		       p->reload_why ? p->reload_why : "", p->reload_why ? ")" : "");
	else if (p->reload_why != NULL)
		printf("haproxy reload: %s\n", p->reload_why);
}

/* Renders the files and checks them with haproxy -c when it is there.
 * Returns 0, or -1 (reported: nothing was deployed). */
static int
render_checked(const struct ctl_ctx *ctx, const struct conf *c, const struct ctl_render_opts *o,
               const struct ctl_deploy_plan *p, const char *dir, struct dep_file *fl,
               const char **check)
{
	char err[1024];
	char *spoe = NULL, *cfg = NULL;
	size_t spoe_len = 0, cfg_len = 0;

	err[0] = '\0';
	if (ctl_render(c, o, &spoe, &spoe_len, &cfg, &cfg_len, err, sizeof(err)) == -1) {
		ctl_err(ctx, "%s; nothing was deployed", err);
		return -1;
	}
	fl[0] = (struct dep_file){ .name = CTL_SPOE_FILE, .data = spoe, .len = spoe_len };
	fl[1] = (struct dep_file){ .name = CTL_HAPROXY_FILE, .data = cfg, .len = cfg_len };
	if (p->haproxy != NULL) {
		if (check_rendered(ctx, c, o, p->haproxy, p->debian ? &p->svc : NULL, dir) != 0)
			return -1;
		*check = "ok";
	}
	return 0;
}

/* Reloads HAProxy as <p> planned: a shell command, or the master CLI. */
static void
reload_haproxy(const struct ctl_ctx *ctx, const struct ctl_deploy_plan *p, struct dep_report *r)
{
	char msg[8192];

	if (p->reload != NULL) {
		char *sh[] = { (char *)"/bin/sh", (char *)"-c", (char *)p->reload, NULL };

		r->reload_st = ctl_run_child(sh, NULL, 0);
		if (r->reload_st != 0)
			ctl_err(ctx, "the HAProxy reload command failed (status %d); the new files are "
			        "in place", r->reload_st);
	} else if (p->master != NULL) {
		r->reload_st = ctl_master_reload(p->master, &r->worker, msg, sizeof(msg));
		if (r->reload_st == 1)
			ctl_err(ctx, "HAProxy refused the reload (master socket %s); it keeps serving "
			        "the previous configuration, the new files are in place:\n%s",
			        p->master, msg);
		else if (r->reload_st != 0)
			ctl_err(ctx, "HAProxy not reloaded: %s; the new files are in place", msg);
	}
}

/* The options deploy runs with: each flag given, else the setting of the
 * config's deploy group, else the flag's own default. A flag that names
 * Debian's service (--haproxy-defaults) or leaves it (--haproxy-service
 * none) also overrides the settings that would contradict it. */
static void
deploy_opts_merge(const struct conf *c, const struct ctl_hap_opts *h, struct ctl_hap_opts *m)
{
	const struct deploy_conf *d = c->deploy;

	*m = *h;
	if (d != NULL) {
		if (m->dir == NULL)
			m->dir = d->haproxy_dir;
		if (m->reload == NULL)
			m->reload = d->reload_haproxy;
		if (m->haproxy == NULL)
			m->haproxy = d->haproxy;
		if (m->service == NULL &&
		    !(h->defaults != NULL && d->haproxy_service != NULL &&
		      strcmp(d->haproxy_service, "none") == 0))
			m->service = d->haproxy_service;
		if (m->defaults == NULL && !(m->service != NULL && strcmp(m->service, "none") == 0))
			m->defaults = d->haproxy_defaults;
	}
	if (m->dir == NULL)
		m->dir = CTL_DEFAULT_HAPROXY_DIR;
}

/* How to name a setting in a message: the flag when given (or defaulted),
 * else the config's setting. */
static const char *
deploy_opt_name(const char *flag_val, const char *conf_val, const char *flag, const char *setting)
{
	return flag_val == NULL && conf_val != NULL ? setting : flag;
}

static int
deploy_run(struct ctl_ctx *ctx, const struct ctl_args *a)
{
	const struct ctl_hap_opts *cli = a->opts;
	struct ctl_hap_opts merged = *cli, *h = &merged;
	struct ctl_render_opts o = h->render;
	char dir[PATH_MAX], spoe_path[PATH_MAX + 64], why[256];
	struct dep_file fl[2];
	struct dep_report r = { .dir = dir, .fl = fl, .check = "skipped", .reload_st = -2 };
	struct ctl_deploy_plan *p = calloc(1, sizeof(*p));
	struct ctl_ovr_state ovr = { .lockfd = -1 };
	struct conf *c = NULL;
	int rc;

	memset(fl, 0, sizeof(fl));
	if (p == NULL) {
		ctl_err(ctx, "out of memory");
		return CTL_EXIT_FAIL;
	}
	/* A deployed gateway binds only what the config names: an address
	 * given here would be lost at the next plain deploy. */
	if (o.bind != NULL) {
		free(p);
		return ctl_usage_err(ctx, "--bind is for 'keyauthctl haproxy' previews only: deploy "
		                     "binds frontend.bind of the keyauth config (set it there)");
	}
	if (h->preview && h->if_preview != NULL) {
		free(p);
		return ctl_usage_err(ctx, "--preview and --if-preview exclude each other");
	}
	/* with the pending route edits, under their lock until the end */
	c = ctl_ovr_open(ctx, &ovr, !h->preview) == 0 ? ovr.pending : NULL;
	if (c == NULL) {
		fprintf(stderr, "%s: nothing was deployed.\n", ctx->prog);
		free(p);
		return CTL_EXIT_FAIL;
	}
	rc = CTL_EXIT_FAIL;
	deploy_opts_merge(c, cli, h);
	/* the ones the deploy group gave, told apart from the flags */
	if (cli->haproxy == NULL && h->haproxy != NULL && access(h->haproxy, X_OK) != 0) {
		ctl_err(ctx, "deploy.haproxy %s in %s: %s; nothing was deployed", h->haproxy, c->path,
		        strerror(errno));
		goto out;
	}
	if (c->frontend == NULL || c->frontend->nbind == 0) {
		ctl_err(ctx, "%s has no frontend.bind, and deploy never picks an address the config "
		        "does not name: add e.g. frontend = { bind = [ \"0.0.0.0:443\" ]; tls = { "
		        "certificate = \"/etc/haproxy/certs/gateway.pem\"; }; }; (see keyauth.conf(5)); "
		        "nothing was deployed", c->path);
		goto out;
	}
	if (realpath(h->dir, dir) == NULL) {
		ctl_err(ctx, "%s %s: %s; nothing was deployed",
		        deploy_opt_name(cli->dir, c->deploy ? c->deploy->haproxy_dir : NULL,
		                        "--haproxy-dir", "deploy.haproxy_dir"), h->dir, strerror(errno));
		goto out;
	}
	r.plan = p;
	switch (ctl_deploy_plan(ctx, h, dir, &o, p)) {
	case 0: break;
	case 1: rc = CTL_EXIT_USAGE; goto out;
	default: goto out;
	}
	if (p->debian)
		ctl_svc_chroot_warn(ctx, &p->svc, dir, c);
	snprintf(spoe_path, sizeof(spoe_path), "%s/%s", dir, CTL_SPOE_FILE);
	o.spoe_path = spoe_path;
	r.variant = o.version;
	if (render_checked(ctx, c, &o, p, dir, fl, &r.check) == -1)
		goto out;
	if (h->preview || h->if_preview) {
		rc = ctl_deploy_preview_step(ctx, &ovr, h, dir, fl[0].data, fl[0].len, fl[1].data,
		                             fl[1].len, a->json);
		if (rc != -1)
			goto out;
		rc = CTL_EXIT_FAIL;
	}
	if (install_files(ctx, dir, fl, 2) == -1)
		goto out;
	if (ctl_ovr_promote(ctx, &ovr) == -1) {
		restore_files(ctx, dir, fl, 2);
		goto out;
	}
	ctl_deploy_audit(ctx, &ovr, fl[0].changed, fl[1].changed);
	r.sig = signal_agent(c, &r.pid, why, sizeof(why));
	signal_warn(ctx, c, r.sig, r.pid, why);
	reload_haproxy(ctx, p, &r);
	rc = r.reload_st > 0 || r.reload_st == -1 ? CTL_EXIT_FAIL : CTL_EXIT_OK;
	r.ok = rc == CTL_EXIT_OK;
	if (!a->json)
		report_text(&r);
	else if (ctl_json_print(ctx, report_json(&r)) != CTL_EXIT_OK)
		rc = CTL_EXIT_FAIL;
out:
	for (size_t i = 0; i < 2; i++) {
		free(fl[i].old);
		free((char *)fl[i].data);
	}
	ctl_deploy_plan_free(p);
	free(p);
	ctl_ovr_close(&ovr);
	return rc;
}

static const struct option deploy_opts[] = {
	{ "haproxy-dir",     required_argument, NULL, 'd' },
	{ "reload-haproxy",  required_argument, NULL, 'r' },
	{ "haproxy",         required_argument, NULL, 'x' },
	{ "bind",            required_argument, NULL, 'b' },
	{ "haproxy-version", required_argument, NULL, 'v' },
	{ "haproxy-service", required_argument, NULL, 'S' },
	{ "haproxy-defaults", required_argument, NULL, 'D' },
	{ "preview",         no_argument,       NULL, 'P' },
	{ "if-preview",      required_argument, NULL, 'I' },
	CTL_JSON_LONGOPT,
	{ NULL, 0, NULL, 0 }
};

const struct ctl_cmd ctl_cmd_deploy = {
	.name = "deploy", .summary = "validate, render, install, reload agents and HAProxy",
	.help = deploy_help, .longopts = deploy_opts, .run = deploy_run, CTL_HAP_OPTS
};
