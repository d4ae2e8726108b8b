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

/* Runs <argv> (or "/bin/sh -c <shell>"), output captured into <out> when not
 * NULL (else inherited). Returns the exit status, 128+N for a signal, or -1. */
static int
run_child(char *const argv[], char *out, size_t outlen)
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

	return run_child(argv, out, outlen);
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

/* Checks the rendered files with haproxy -c in a private directory. Returns
 * 0 when valid, 1 when HAProxy rejected them, -1 when the check could not be
 * run (all reported). */
static int
check_rendered(const struct ctl_ctx *ctx, const struct conf *c, const struct ctl_render_opts *o,
               const char *haproxy)
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
	st = ctl_haproxy_check(haproxy, cfg_path, out, 16384);
	if (st == 0) {
		rc = 0;
	} else if (st == -1 || st == 127) {
		ctl_err(ctx, "could not run %s", haproxy);
	} else {
		ctl_err(ctx, "%s -c rejected the rendered configuration (exit %d); nothing was "
		        "written:\n%s", haproxy, st, out);
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

/* ---- keyauthctl deploy ----------------------------------------------------------- */

static const char deploy_help[] =
	"usage: keyauthctl deploy [--haproxy-dir DIR] [--reload-haproxy CMD] [--json]\n"
	"                         [--bind ADDR] [--haproxy-version 2.6|3.2] [--haproxy PATH]\n"
	"\n"
	"Makes configuration changes (routes, key names and locations, listeners) live:\n"
	"  1. validates the keyauth config (on failure nothing is written);\n"
	"  2. renders " CTL_SPOE_FILE " and " CTL_HAPROXY_FILE ";\n"
	"  3. checks them with 'haproxy -c' when haproxy is installed (on failure\n"
	"     nothing is written);\n"
	"  4. replaces the changed files in DIR atomically;\n"
	"  5. sends SIGHUP to keyauthd through the config's pid_file;\n"
	"  6. runs CMD with /bin/sh -c to reload HAProxy, if given.\n"
	"Key changes (create, revoke, rotate) need no deploy.\n"
	"\n"
	"  --haproxy-dir DIR      where the files go (default " CTL_DEFAULT_HAPROXY_DIR ")\n"
	"  --reload-haproxy CMD   e.g. 'systemctl reload haproxy'\n"
	"  --haproxy PATH         the haproxy binary for the check (default: from $PATH)\n"
	"  --bind, --haproxy-version   as for 'keyauthctl haproxy'\n"
	"  --json                 a JSON report\n"
	"\n"
	"Exit status: 0 deployed, 1 failed (see messages), 2 usage.\n"
	"\n"
	"example:\n"
	"  keyauthctl deploy --reload-haproxy 'systemctl reload haproxy'\n";

int
ctl_deploy_main(struct ctl_ctx *ctx, int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "haproxy-dir",     required_argument, NULL, 'd' },
		{ "reload-haproxy",  required_argument, NULL, 'r' },
		{ "haproxy",         required_argument, NULL, 'x' },
		{ "bind",            required_argument, NULL, 'b' },
		{ "haproxy-version", required_argument, NULL, 'v' },
		{ "json",            no_argument,       NULL, 'j' },
		CTL_COMMON_LONGOPTS,
		{ NULL, 0, NULL, 0 }
	};
	struct ctl_render_opts o = { .bind = CTL_DEFAULT_BIND, .version = CTL_HAPROXY_26 };
	const char *dirarg = CTL_DEFAULT_HAPROXY_DIR, *reload = NULL, *hint = NULL, *haproxy;
	char dir[PATH_MAX], spoe_path[PATH_MAX + 64], hbuf[PATH_MAX], err[1024], why[256];
	char path[PATH_MAX + 64];
	struct dep_file fl[2];
	const char *check = "skipped";
	char *spoe = NULL, *cfg = NULL;
	size_t spoe_len = 0, cfg_len = 0;
	struct conf *c = NULL;
	enum sig_result sig;
	long pid = 0;
	int reload_st = -2, opt, rc;
	bool json = false;

	memset(fl, 0, sizeof(fl));
	while ((opt = getopt_long(argc, argv, "c:h", longopts, NULL)) != -1) {
		switch (opt) {
		case 'd': dirarg = optarg; break;
		case 'r': reload = optarg; break;
		case 'x': hint = optarg; break;
		case 'b': o.bind = optarg; break;
		case 'v':
			if (ctl_parse_haproxy_version(optarg, &o.version) == -1)
				return ctl_usage_err(ctx, "--haproxy-version: '%s' is not 2.6..3.x", optarg);
			break;
		case 'j': json = true; break;
		case 'h': fputs(deploy_help, stdout); return CTL_EXIT_OK;
		case '?': return ctl_usage_err(ctx, "bad option");
		default:
			rc = ctl_common_opt(ctx, opt, optarg);
			if (rc != 0)
				return rc;
		}
	}
	if (optind < argc)
		return ctl_usage_err(ctx, "unexpected argument '%s'", argv[optind]);
	if (!ctl_bind_ok(o.bind))
		return ctl_usage_err(ctx, "--bind: '%s' is not an address like 127.0.0.1:8080", o.bind);

	c = ctl_conf_load(ctx);
	if (c == NULL) {
		fprintf(stderr, "%s: nothing was deployed.\n", ctx->prog);
		return CTL_EXIT_FAIL;
	}
	rc = CTL_EXIT_FAIL;
	if (realpath(dirarg, dir) == NULL) {
		ctl_err(ctx, "--haproxy-dir %s: %s; nothing was deployed", dirarg, strerror(errno));
		goto out;
	}
	snprintf(spoe_path, sizeof(spoe_path), "%s/%s", dir, CTL_SPOE_FILE);
	o.spoe_path = spoe_path;
	err[0] = '\0';
	if (ctl_render(c, &o, &spoe, &spoe_len, &cfg, &cfg_len, err, sizeof(err)) == -1) {
		ctl_err(ctx, "%s; nothing was deployed", err);
		goto out;
	}
	haproxy = ctl_haproxy_find(hint, hbuf, sizeof(hbuf));
	if (haproxy != NULL) {
		if (check_rendered(ctx, c, &o, haproxy) != 0)
			goto out;
		check = "ok";
	} else if (hint != NULL) {
		ctl_err(ctx, "--haproxy %s is not executable; nothing was deployed", hint);
		goto out;
	} else {
		fprintf(stderr, "%s: warning: haproxy not found; the files are not checked\n",
		        ctx->prog);
	}

	fl[0] = (struct dep_file){ .name = CTL_SPOE_FILE, .data = spoe, .len = spoe_len };
	fl[1] = (struct dep_file){ .name = CTL_HAPROXY_FILE, .data = cfg, .len = cfg_len };
	for (size_t i = 0; i < 2; i++) {
		int r;

		snprintf(path, sizeof(path), "%s/%s", dir, fl[i].name);
		r = ctl_read_file(path, &fl[i].old, &fl[i].oldlen, err, sizeof(err));
		if (r == -1) {
			ctl_err(ctx, "%s; nothing was deployed", err);
			goto out;
		}
		fl[i].existed = r == 0;
		fl[i].changed = !fl[i].existed || fl[i].oldlen != fl[i].len ||
		                memcmp(fl[i].old, fl[i].data, fl[i].len) != 0;
	}
	/* SPOE file first: the new haproxy.cfg may name messages only it has. */
	for (size_t i = 0; i < 2; i++) {
		if (!fl[i].changed)
			continue;
		if (ctl_write_atomic(dir, fl[i].name, fl[i].data, fl[i].len, 0644,
		                     err, sizeof(err)) == -1) {
			ctl_err(ctx, "%s", err);
			restore_files(ctx, dir, fl, 2);
			fprintf(stderr, "%s: the previous files were kept; nothing was deployed.\n",
			        ctx->prog);
			goto out;
		}
		fl[i].written = true;
	}

	sig = signal_agent(c, &pid, why, sizeof(why));
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

	if (reload != NULL) {
		char *sh[] = { (char *)"/bin/sh", (char *)"-c", (char *)reload, NULL };

		reload_st = run_child(sh, NULL, 0);
		if (reload_st != 0)
			ctl_err(ctx, "the HAProxy reload command failed (status %d); the new files are "
			        "in place", reload_st);
	}
	rc = reload_st > 0 || reload_st == -1 ? CTL_EXIT_FAIL : CTL_EXIT_OK;

	if (json) {
		fputs("{\"ok\":", stdout);
		fputs(rc == CTL_EXIT_OK ? "true" : "false", stdout);
		fputs(",\"dir\":", stdout);
		ctl_json_str(stdout, dir);
		fputs(",\"files\":[", stdout);
		for (size_t i = 0; i < 2; i++) {
			fprintf(stdout, "%s{\"name\":\"%s\",\"changed\":%s}", i > 0 ? "," : "",
			        fl[i].name, fl[i].changed ? "true" : "false");
		}
		fprintf(stdout, "],\"haproxy_check\":\"%s\",\"agent\":{\"signalled\":%s,\"pid\":",
		        check, sig == SIG_SENT ? "true" : "false");
		if (pid > 0)
			fprintf(stdout, "%ld", pid);
		else
			fputs("null", stdout);
		fputs("},\"reload\":", stdout);
		if (reload_st == -2)
			fputs("null", stdout);
		else
			fprintf(stdout, "{\"status\":%d}", reload_st);
		fputs("}\n", stdout);
	} else {
		for (size_t i = 0; i < 2; i++)
			printf("%s/%s: %s\n", dir, fl[i].name, fl[i].changed ? "changed" : "unchanged");
		printf("haproxy -c: %s\n", check);
		if (sig == SIG_SENT)
			printf("keyauthd: signalled pid %ld (SIGHUP)\n", pid);
		else
			printf("keyauthd: not signalled\n");
		if (reload_st != -2)
			printf("haproxy reload: %s (exit %d)\n", reload_st == 0 ? "ok" : "failed",
			       reload_st);
	}
out:
	for (size_t i = 0; i < 2; i++)
		free(fl[i].old);
	free(spoe);
	free(cfg);
	conf_free(c);
	return rc;
}
