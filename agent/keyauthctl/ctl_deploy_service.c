/* SPDX-License-Identifier: Apache-2.0 */
/*
 * ctl_deploy_service: what `keyauthctl deploy` needs to know about how
 * HAProxy is run, so that the file it writes is one HAProxy really loads.
 *
 * Debian's haproxy.service runs "/usr/sbin/haproxy -Ws -f $CONFIG -p $PIDFILE
 * $EXTRAOPTS" with CONFIG=/etc/haproxy/haproxy.cfg and EXTRAOPTS="-S
 * /run/haproxy-master.sock", both overridden by /etc/default/haproxy. systemd
 * reads that file as KEY=value lines (EnvironmentFile=), not as a shell
 * script, and splits an unbraced $VAR at whitespace: that is what is done
 * here. A -f naming a directory makes HAProxy load the directory's
 * non-hidden *.cfg files in byte order.
 */
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "conf.h"
#include "ctl.h"

/* ---- the defaults file -------------------------------------------------------- */

/* Parses the value after "KEY=" on line <lineno> of <path> into <out> (at
 * least strlen(p)+1 bytes): double quotes (backslash escapes), single quotes
 * (literal), unquoted runs with trailing blanks removed. Returns 0 or -1. */
static int
env_value(const char *p, char *out, const char *path, int lineno, char *err, size_t errlen)
{
	size_t n = 0, keep = 0;

	while (*p == ' ' || *p == '\t')
		p++;
	while (*p != '\0' && *p != '\n') {
		char q = *p;

		if (q == '"' || q == '\'') {
			for (p++; *p != q; p++) {
				if (*p == '\0' || *p == '\n') {
					snprintf(err, errlen, "%s:%d: unterminated %c quote", path, lineno, q);
					return -1;
				}
				if (q == '"' && *p == '\\' && p[1] != '\0' && p[1] != '\n')
					p++;
				out[n++] = *p;
			}
			p++;
			keep = n;
			continue;
		}
		if (q == '\\') {
			if (p[1] == '\0' || p[1] == '\n') {
				snprintf(err, errlen, "%s:%d: a line continued with '\\' is not supported",
				         path, lineno);
				return -1;
			}
			out[n++] = p[1];
			p += 2;
			keep = n;
			continue;
		}
		out[n++] = q;
		if (q != ' ' && q != '\t' && q != '\r')
			keep = n;
		p++;
	}
	out[keep] = '\0';
	return 0;
}

/* Reads the CONFIG and EXTRAOPTS assignments of the defaults file <path>
 * into <s> (the last one wins, as for systemd). Returns 0, 1 when the file
 * does not exist, -1 with <err>. */
static int
read_defaults(const char *path, struct ctl_svc *s, char *err, size_t errlen)
{
	char *data = NULL, *line, *next;
	size_t len;
	int lineno = 0, r;

	r = ctl_read_file(path, &data, &len, err, errlen);
	if (r != 0)
		return r;
	for (line = data; line != NULL && *line != '\0'; line = next) {
		char *eq, *key, *val, **slot;
		size_t klen;

		next = strchr(line, '\n');
		if (next != NULL)
			*next++ = '\0';
		lineno++;
		while (*line == ' ' || *line == '\t')
			line++;
		if (*line == '\0' || *line == '#' || *line == ';' || *line == '\r')
			continue;
		eq = strchr(line, '=');
		if (eq == NULL) {
			snprintf(err, errlen, "%s:%d: not a KEY=value line", path, lineno);
			goto fail;
		}
		key = line;
		klen = (size_t)(eq - line);
		while (klen > 0 && (key[klen - 1] == ' ' || key[klen - 1] == '\t'))
			klen--;
		if (klen == 6 && strncmp(key, "CONFIG", 6) == 0)
			slot = &s->config;
		else if (klen == 9 && strncmp(key, "EXTRAOPTS", 9) == 0)
			slot = &s->extraopts;
		else
			continue;
		val = malloc(strlen(eq + 1) + 1);
		if (val == NULL) {
			snprintf(err, errlen, "out of memory");
			goto fail;
		}
		if (env_value(eq + 1, val, path, lineno, err, errlen) == -1) {
			free(val);
			goto fail;
		}
		free(*slot);
		*slot = val;
	}
	free(data);
	return 0;
fail:
	free(data);
	return -1;
}

/* Adds <p> (made absolute against <cdir>, HAProxy's -C) to s->cfg. */
static int
add_cfg(struct ctl_svc *s, const char *cdir, const char *p, char *err, size_t errlen)
{
	char buf[PATH_MAX];

	if (s->ncfg == CTL_SVC_MAX_CFG) {
		snprintf(err, errlen, "more than %d configuration files", CTL_SVC_MAX_CFG);
		return -1;
	}
	if (p[0] != '/' && snprintf(buf, sizeof(buf), "%s%s%s", cdir,
	                            cdir[strlen(cdir) - 1] == '/' ? "" : "/", p) < (int)sizeof(buf))
		p = buf;
	s->cfg[s->ncfg] = strdup(p);
	if (s->cfg[s->ncfg] == NULL) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	s->ncfg++;
	return 0;
}

void
ctl_svc_free(struct ctl_svc *s)
{
	free(s->config);
	free(s->extraopts);
	free(s->master);
	for (size_t i = 0; i < s->ncfg; i++)
		free(s->cfg[i]);
	memset(s, 0, sizeof(*s));
}

int
ctl_svc_load(const char *path, struct ctl_svc *s, char *err, size_t errlen)
{
	char *words = NULL, *save = NULL, *w, cdir[PATH_MAX] = "/";
	bool rest_cfg = false;
	int r;

	memset(s, 0, sizeof(*s));
	r = read_defaults(path, s, err, errlen);
	if (r == -1)
		return -1;
	s->defaults_read = r == 0;
	if (s->config == NULL && (s->config = strdup(CTL_DEB_CONFIG)) == NULL)
		goto oom;
	if (s->extraopts == NULL && (s->extraopts = strdup(CTL_DEB_EXTRAOPTS)) == NULL)
		goto oom;
	if (s->config[0] == '\0' || strpbrk(s->config, " \t") != NULL) {
		snprintf(err, errlen, "%s: CONFIG=\"%s\" is not one path", path, s->config);
		return -1;
	}
	words = strdup(s->extraopts);
	if (words == NULL)
		goto oom;
	/* -C changes the directory relative -f paths start from, whatever its
	 * place on the command line: find it first. */
	for (w = strtok_r(words, " \t", &save); w != NULL; w = strtok_r(NULL, " \t", &save)) {
		if (strcmp(w, "-C") == 0 && (w = strtok_r(NULL, " \t", &save)) != NULL)
			snprintf(cdir, sizeof(cdir), "%s", w);
	}
	strcpy(words, s->extraopts);
	if (add_cfg(s, cdir, s->config, err, errlen) == -1)
		goto fail;
	save = NULL;
	for (w = strtok_r(words, " \t", &save); w != NULL; w = strtok_r(NULL, " \t", &save)) {
		if (rest_cfg) {
			if (add_cfg(s, cdir, w, err, errlen) == -1)
				goto fail;
		} else if (strcmp(w, "--") == 0) {
			rest_cfg = true;
		} else if (strcmp(w, "-f") == 0 && (w = strtok_r(NULL, " \t", &save)) != NULL) {
			if (add_cfg(s, cdir, w, err, errlen) == -1)
				goto fail;
		} else if (strcmp(w, "-S") == 0 && (w = strtok_r(NULL, " \t", &save)) != NULL) {
			/* "-S <path>[,<bind options>]"; only a unix socket is ours to use. */
			w[strcspn(w, ",")] = '\0';
			if (strncmp(w, "unix@", 5) == 0)
				w += 5;
			free(s->master);
			s->master = strchr(w, '@') == NULL ? strdup(w) : NULL;
		}
	}
	free(words);
	return 0;
oom:
	snprintf(err, errlen, "out of memory");
fail:
	free(words);
	return -1;
}

/* ---- what HAProxy loads ---------------------------------------------------------- */

static bool
is_dir(const char *p)
{
	struct stat st;

	return stat(p, &st) == 0 && S_ISDIR(st.st_mode);
}

/* <p> resolved (<buf>, PATH_MAX bytes) when it exists; else its directory
 * resolved and its name (a file deploy is about to create); else as written. */
static const char *
resolved(const char *p, char *buf)
{
	char d[PATH_MAX], *slash;

	if (realpath(p, buf) != NULL)
		return buf;
	slash = strrchr(p, '/');
	if (slash == NULL || slash == p || (size_t)(slash - p) >= sizeof(d))
		return p;
	memcpy(d, p, (size_t)(slash - p));
	d[slash - p] = '\0';
	if (realpath(d, buf) == NULL || strlen(buf) + strlen(slash) >= PATH_MAX)
		return p;
	strcat(buf, slash);
	return buf;
}

bool
ctl_svc_loads(const struct ctl_svc *s, const char *dir, const char *name)
{
	char target[PATH_MAX + 64], t[PATH_MAX], e[PATH_MAX];
	const char *tp;

	snprintf(target, sizeof(target), "%s/%s", dir, name);
	tp = resolved(target, t);
	for (size_t i = 0; i < s->ncfg; i++) {
		const char *ep = resolved(s->cfg[i], e);

		if (strcmp(ep, is_dir(ep) ? dir : tp) == 0)
			return true;
	}
	return false;
}

/* A file HAProxy loads from a configuration directory: not hidden, *.cfg. */
static int
cfg_entry(const struct dirent *d)
{
	size_t n = strlen(d->d_name);

	return d->d_name[0] != '.' && n > 4 && strcmp(d->d_name + n - 4, ".cfg") == 0;
}

/* HAProxy sorts a directory's files bytewise (it never sets a locale). */
static int
cfg_order(const struct dirent **a, const struct dirent **b)
{
	return strcmp((*a)->d_name, (*b)->d_name);
}

struct argv_buf {
	char *v[2 * 4 * CTL_SVC_MAX_CFG + 8];
	char *own[4 * CTL_SVC_MAX_CFG];   /* strings to free */
	size_t n, nown;
};

static int
argv_add(struct argv_buf *a, const char *f, bool copy)
{
	char *p = (char *)f;

	if (a->n + 3 > sizeof(a->v) / sizeof(a->v[0]) || a->nown == sizeof(a->own) / sizeof(a->own[0]))
		return -1;
	if (copy) {
		p = strdup(f);
		if (p == NULL)
			return -1;
		a->own[a->nown++] = p;
	}
	a->v[a->n++] = (char *)"-f";
	a->v[a->n++] = p;
	return 0;
}

/* Adds the *.cfg regular files of directory <d> as HAProxy orders them,
 * <tmpcfg> standing for <name> when <d> is <dir>. */
static int
argv_add_dir(struct argv_buf *a, const char *d, const char *dir, const char *name,
             const char *tmpcfg)
{
	struct dirent **ents = NULL;
	bool ours = strcmp(d, dir) == 0, placed = false;
	int n = scandir(d, &ents, cfg_entry, cfg_order), rc = 0;

	if (n < 0)
		return argv_add(a, d, false);   /* haproxy -c says why */
	for (int i = 0; i < n; i++) {
		char p[PATH_MAX + 256];
		struct stat st;
		int cmp = ours ? strcmp(ents[i]->d_name, name) : -1;

		if (cmp > 0 && !placed) {
			rc |= argv_add(a, tmpcfg, false);
			placed = true;
		}
		snprintf(p, sizeof(p), "%s/%s", d, ents[i]->d_name);
		if (cmp == 0) {
			if (!placed)
				rc |= argv_add(a, tmpcfg, false);
			placed = true;
		} else if (stat(p, &st) == 0 && S_ISREG(st.st_mode)) {
			rc |= argv_add(a, p, true);
		}
		free(ents[i]);
	}
	free(ents);
	if (ours && !placed)
		rc |= argv_add(a, tmpcfg, false);
	return rc;
}

int
ctl_svc_check(const char *haproxy, const struct ctl_svc *s, const char *dir,
              const char *name, const char *tmpcfg, char *out, size_t outlen)
{
	char target[PATH_MAX + 64], t[PATH_MAX], e[PATH_MAX];
	struct argv_buf *a = calloc(1, sizeof(*a));
	const char *tp;
	int rc = -1;

	if (a == NULL)
		return -1;
	snprintf(target, sizeof(target), "%s/%s", dir, name);
	tp = resolved(target, t);
	a->v[a->n++] = (char *)haproxy;
	a->v[a->n++] = (char *)"-c";
	for (size_t i = 0; i < s->ncfg; i++) {
		const char *ep = resolved(s->cfg[i], e);
		int r;

		if (is_dir(ep))
			r = argv_add_dir(a, ep, dir, name, tmpcfg);
		else
			r = argv_add(a, strcmp(ep, tp) == 0 ? tmpcfg : s->cfg[i], false);
		if (r != 0) {
			snprintf(out, outlen, "too many configuration files for haproxy -c");
			goto out;
		}
	}
	a->v[a->n] = NULL;
	rc = ctl_run_child(a->v, out, outlen);
out:
	for (size_t i = 0; i < a->nown; i++)
		free(a->own[i]);
	free(a);
	return rc;
}

/* ---- haproxy -v ------------------------------------------------------------------ */

int
ctl_haproxy_version(const char *haproxy, enum ctl_haproxy_version *v, char *ver,
                    size_t verlen, char *err, size_t errlen)
{
	char out[1024], mm[16];
	char *argv[] = { (char *)haproxy, (char *)"-v", NULL };
	const char *p;
	unsigned long major, minor;
	char *end;
	int st = ctl_run_child(argv, out, sizeof(out));

	if (st != 0) {
		snprintf(err, errlen, "could not run '%s -v' (status %d)", haproxy, st);
		return -1;
	}
	out[strcspn(out, "\n")] = '\0';
	/* "HAProxy version 2.6.12-1+deb12u4 2026/10/17 - https://haproxy.org/";
	 * HAProxy before 1.9 said "HA-Proxy". */
	p = strstr(out, "HAProxy version ");
	if (p == NULL)
		p = strstr(out, "HA-Proxy version ");
	if (p != NULL)
		p = strstr(p, "version ") + 8;
	errno = 0;
	major = p != NULL ? strtoul(p, &end, 10) : 0;
	if (p == NULL || end == p || *end != '.' ||
	    (minor = strtoul(end + 1, &end, 10), errno != 0) || major > 99 || minor > 99) {
		snprintf(err, errlen, "cannot tell the version from '%s -v' ('%.200s'); give "
		         "--haproxy-version", haproxy, out);
		return -1;
	}
	snprintf(ver, verlen, "%.*s", (int)strcspn(p, " "), p);
	snprintf(mm, sizeof(mm), "%lu.%lu", major, minor);
	if (major < 2 || (major == 2 && minor < 6)) {
		snprintf(err, errlen, "%s is HAProxy %s: keyauth needs 2.6 or newer (SPOE with "
		         "SPOP 2.0 and the http-request rules it renders)", haproxy, ver);
		return -1;
	}
	if (ctl_parse_haproxy_version(mm, v) == -1 && major >= 3) {
		*v = CTL_HAPROXY_32;     /* a 4.x or later: the newest variant */
	}
	return 0;
}

/* ---- deploy's plan ------------------------------------------------------------------ */

void
ctl_deploy_plan_free(struct ctl_deploy_plan *p)
{
	ctl_svc_free(&p->svc);
}

/* Says which files Debian's service loads and how to make it load ours. */
static void
refuse_unloaded(const struct ctl_ctx *ctx, const struct ctl_deploy_plan *p, const char *dir)
{
	const struct ctl_svc *s = &p->svc;
	char loads[2048] = "";
	size_t n = 0;

	for (size_t i = 0; i < s->ncfg && n < sizeof(loads); i++)
		n += (size_t)snprintf(loads + n, sizeof(loads) - n, "%s%s%s", i > 0 ? ", " : "",
		                      s->cfg[i], is_dir(s->cfg[i]) ? "/*.cfg" : "");
	ctl_err(ctx, "HAProxy's service would not load %s/%s: Debian's haproxy.service (%s%s) "
	        "loads %s; nothing was deployed. Either:", dir, CTL_HAPROXY_FILE,
	        p->defaults, s->defaults_read ? "" : " absent, the unit's defaults", loads);
	fprintf(stderr, "  - make the service load it: in %s set\n"
	        "        EXTRAOPTS=\"%s%s-f %s/%s\"\n"
	        "    then 'systemctl restart haproxy' once (a reload keeps the command line "
	        "HAProxy started with);\n", p->defaults, s->extraopts,
	        s->extraopts[0] != '\0' ? " " : "", dir, CTL_HAPROXY_FILE);
	if (is_dir(s->cfg[0]))
		fprintf(stderr, "  - or deploy into the directory it loads: --haproxy-dir %s;\n",
		        s->cfg[0]);
	else
		fprintf(stderr, "  - or make CONFIG a directory HAProxy loads (e.g. CONFIG=/etc/haproxy/"
		        "conf.d in %s, with %s moved there) and deploy with --haproxy-dir "
		        "/etc/haproxy/conf.d;\n", p->defaults, s->cfg[0]);
	fprintf(stderr, "  - or, if Debian's haproxy.service does not run this HAProxy, "
	        "--haproxy-service none.\n");
}

static bool
is_socket(const char *path)
{
	struct stat st;

	return path != NULL && stat(path, &st) == 0 && S_ISSOCK(st.st_mode);
}

/* The reload: as asked, else with Debian's service "systemctl reload haproxy"
 * when systemd runs (its ExecReload checks, then signals the master), else
 * the service's master socket when there is one. */
static void
plan_reload(const struct ctl_hap_opts *h, struct ctl_deploy_plan *p)
{
	struct stat st;

	if (h->reload != NULL) {
		if (strcmp(h->reload, "none") == 0)
			p->reload_why = "none (as asked)";
		else if (strncmp(h->reload, "master:", 7) == 0)
			p->master = h->reload + 7;
		else
			p->reload = h->reload;
		return;
	}
	if (!p->debian)
		return;
	if (stat("/run/systemd/system", &st) == 0 && S_ISDIR(st.st_mode)) {
		p->reload = "systemctl reload haproxy";
		p->reload_why = "default: systemd runs Debian's haproxy.service";
	} else if (is_socket(p->svc.master)) {
		p->master = p->svc.master;
		p->reload_why = "default: no systemd; the service's master socket (-S)";
	} else {
		p->reload_why = "none: no systemd, and no master socket (-S in EXTRAOPTS) to be "
		                "found; reload HAProxy yourself";
	}
}

int
ctl_deploy_plan(const struct ctl_ctx *ctx, const struct ctl_hap_opts *h, const char *dir,
                struct ctl_render_opts *render, struct ctl_deploy_plan *p)
{
	char err[1024];

	memset(p, 0, sizeof(*p));
	p->defaults = h->defaults != NULL ? h->defaults : CTL_DEB_DEFAULTS;
	if (h->service != NULL && strcmp(h->service, "none") == 0) {
		if (h->defaults != NULL) {
			ctl_usage_err(ctx, "--haproxy-defaults is for Debian's service, not with "
			              "--haproxy-service none");
			return 1;
		}
	} else {
		/* Debian's haproxy package installs both the unit and its
		 * defaults file: either one says which service runs HAProxy. */
		p->debian = h->service != NULL || h->defaults != NULL ||
		            access(CTL_DEB_DEFAULTS, F_OK) == 0 || access(CTL_DEB_UNIT, F_OK) == 0;
	}
	if (h->reload != NULL && strncmp(h->reload, "master:", 7) == 0 && h->reload[7] != '/') {
		ctl_usage_err(ctx, "--reload-haproxy master:PATH takes the absolute path of "
		              "HAProxy's master socket (-S)");
		return 1;
	}
	if (p->debian) {
		if (ctl_svc_load(p->defaults, &p->svc, err, sizeof(err)) == -1) {
			ctl_err(ctx, "Debian's haproxy.service: %s; nothing was deployed", err);
			return -1;
		}
		if (!ctl_svc_loads(&p->svc, dir, CTL_HAPROXY_FILE)) {
			refuse_unloaded(ctx, p, dir);
			return -1;
		}
	}
	/* The binary the service runs is the one to ask. */
	if (h->haproxy != NULL) {
		p->haproxy = ctl_haproxy_find(h->haproxy, p->hbuf, sizeof(p->hbuf));
		if (p->haproxy == NULL) {
			ctl_err(ctx, "--haproxy %s is not executable; nothing was deployed", h->haproxy);
			return -1;
		}
	} else if (p->debian && access(CTL_DEB_HAPROXY, X_OK) == 0) {
		p->haproxy = CTL_DEB_HAPROXY;
	} else {
		p->haproxy = ctl_haproxy_find(NULL, p->hbuf, sizeof(p->hbuf));
	}
	if (p->haproxy != NULL && !h->version_set &&
	    ctl_haproxy_version(p->haproxy, &render->version, p->version, sizeof(p->version),
	                        err, sizeof(err)) == -1) {
		ctl_err(ctx, "%s; nothing was deployed", err);
		return -1;
	}
	if (p->haproxy == NULL)
		fprintf(stderr, "%s: warning: haproxy not found; the files are not checked%s\n",
		        ctx->prog, h->version_set ? "" : " and are rendered for HAProxy 2.6..3.0 "
		        "(--haproxy-version sets another)");
	plan_reload(h, p);
	return 0;
}

/* ---- chroot ------------------------------------------------------------------------- */

/* Finds a "chroot DIR" line in <path>; its directory into <root>, its line
 * number returned (0: none). HAProxy takes the keyword only in "global". */
static int
find_chroot(const char *path, char *root, size_t rootlen)
{
	char line[1024];
	int lineno = 0;
	FILE *f = fopen(path, "r");

	if (f == NULL)
		return 0;
	while (fgets(line, sizeof(line), f) != NULL) {
		const char *p = line + strspn(line, " \t");

		lineno++;
		if (strncmp(p, "chroot", 6) == 0 && (p[6] == ' ' || p[6] == '\t')) {
			p += 6 + strspn(p + 6, " \t");
			snprintf(root, rootlen, "%.*s", (int)strcspn(p, " \t\r\n#"), p);
			fclose(f);
			return root[0] != '\0' ? lineno : 0;
		}
	}
	fclose(f);
	return 0;
}

void
ctl_svc_chroot_warn(const struct ctl_ctx *ctx, const struct ctl_svc *s, const char *dir,
                    const struct conf *c)
{
	char target[PATH_MAX + 64], root[PATH_MAX], path[PATH_MAX + 256];
	const char *sock = NULL;
	int line = 0;

	for (unsigned i = 0; i < c->nlisten && sock == NULL; i++) {
		if (c->listen[i].family == LISTEN_UNIX)
			sock = c->listen[i].path;
	}
	if (sock == NULL)
		return;
	snprintf(target, sizeof(target), "%s/%s", dir, CTL_HAPROXY_FILE);
	for (size_t i = 0; i < s->ncfg && line == 0; i++) {
		struct dirent **ents = NULL;
		int n;

		if (!is_dir(s->cfg[i])) {
			if (strcmp(s->cfg[i], target) != 0)
				line = find_chroot(s->cfg[i], root, sizeof(root));
			snprintf(path, sizeof(path), "%s", s->cfg[i]);
			continue;
		}
		n = scandir(s->cfg[i], &ents, cfg_entry, cfg_order);
		for (int j = 0; j < n; j++) {
			if (line == 0 && strcmp(ents[j]->d_name, CTL_HAPROXY_FILE) != 0) {
				snprintf(path, sizeof(path), "%s/%s", s->cfg[i], ents[j]->d_name);
				line = find_chroot(path, root, sizeof(root));
			}
			free(ents[j]);
		}
		free(ents);
	}
	if (line == 0)
		return;
	fprintf(stderr, "%s: warning: HAProxy chroots to %s (%s:%d) and connects to the agent's "
	        "socket %s from inside it: every request gets 503 unless the socket is there "
	        "too. Bind its directory in with a drop-in for haproxy.service (systemctl edit "
	        "haproxy):\n    [Service]\n    BindReadOnlyPaths=%.*s:%s%.*s\n"
	        "or have keyauthd listen on loopback TCP, or remove the chroot line.\n",
	        ctx->prog, root, path, line, sock, (int)(strrchr(sock, '/') - sock), sock,
	        strcmp(root, "/") == 0 ? "" : root, (int)(strrchr(sock, '/') - sock), sock);
}
