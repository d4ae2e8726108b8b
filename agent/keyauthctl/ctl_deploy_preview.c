/* SPDX-License-Identifier: Apache-2.0 */
/*
 * ctl_deploy_preview: `keyauthctl deploy --preview` and `--if-preview ID`.
 *
 * A preview runs deploy's steps up to `haproxy -c` (ctl_deploy.c) with the
 * pending route edits, then shows what a deploy would change: `diff -u` of
 * the installed files against the rendered ones (diffutils' diff, run with
 * ctl_run_child: no hand-written diff), the routes with pending edits, and a
 * preview id, the SHA-256 of the rendered files and of the pending edits'
 * file. It writes nothing outside a private temporary directory, removed
 * before it returns. `deploy --if-preview ID` deploys only while the id is
 * still ID: what an operator (or the admin console) looked at is what gets
 * installed, never an edit that landed in between.
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "conf.h"
#include "ctl.h"
#include "ctl_audit.h"

#define PREVIEW_DIFF "/usr/bin/diff"
#define PREVIEW_DIFF_MAX (256 * 1024)   /* bytes of diff shown per file */

struct preview_file {
	const char *name;
	const char *data;
	size_t len;
};

static void
id_add(EVP_MD_CTX *m, const char *tag, const void *data, size_t len)
{
	unsigned char n[8];

	for (int i = 0; i < 8; i++)
		n[i] = (unsigned char)((uint64_t)len >> (8 * i));
	EVP_DigestUpdate(m, tag, strlen(tag) + 1);
	EVP_DigestUpdate(m, n, sizeof(n));
	EVP_DigestUpdate(m, data, len);
}

/* The preview id into <id>: 0 or -1 (said why). */
static int
preview_id(const struct ctl_ctx *ctx, const struct ctl_ovr_state *s,
           const struct preview_file *f, size_t n, char id[65])
{
	const struct conf_overrides *ov = s->pending->overrides;
	EVP_MD_CTX *m = EVP_MD_CTX_new();
	unsigned char md[EVP_MAX_MD_SIZE];
	char path[PATH_MAX + 32], err[512], *pend = NULL;
	unsigned mdlen = 0;
	size_t plen = 0;
	int r = 1;

	if (ov != NULL) {
		snprintf(path, sizeof(path), "%s" CONF_OVR_PENDING, ov->path);
		r = ctl_read_file(path, &pend, &plen, err, sizeof(err));
		if (r == -1) {
			ctl_err(ctx, "%s", err);
			EVP_MD_CTX_free(m);
			return -1;
		}
	}
	if (m == NULL || EVP_DigestInit_ex(m, EVP_sha256(), NULL) != 1) {
		ctl_err(ctx, "out of memory");
		EVP_MD_CTX_free(m);
		free(pend);
		return -1;
	}
	for (size_t i = 0; i < n; i++)
		id_add(m, f[i].name, f[i].data, f[i].len);
	id_add(m, "pending route edits", r == 0 ? pend : "", r == 0 ? plen : 0);
	EVP_DigestFinal_ex(m, md, &mdlen);
	EVP_MD_CTX_free(m);
	free(pend);
	for (unsigned i = 0; i < 32 && i < mdlen; i++)
		snprintf(id + 2 * i, 3, "%02x", md[i]);
	return 0;
}

/* diff -u of <dir>/<f->name> (absent: empty) against <f>'s data, written
 * into <tmp>; appended to <diff>. 0 same, 1 differs, -1 failed (said why). */
static int
preview_diff(const struct ctl_ctx *ctx, const char *dir, const char *tmp,
             const struct preview_file *f, char *buf, json_t **diff)
{
	char old[PATH_MAX + 64], new[PATH_MAX + 64], la[PATH_MAX + 96], lb[PATH_MAX + 96];
	char err[1024], *text;
	int st;

	snprintf(old, sizeof(old), "%s/%s", dir, f->name);
	snprintf(new, sizeof(new), "%s/%s", tmp, f->name);
	snprintf(la, sizeof(la), "%s (installed)", old);
	snprintf(lb, sizeof(lb), "%s (rendered)", old);
	if (ctl_write_atomic(tmp, f->name, f->data, f->len, 0600, err, sizeof(err)) == -1) {
		ctl_err(ctx, "preview: %s", err);
		return -1;
	}
	{
		char *argv[] = { (char *)PREVIEW_DIFF, (char *)"-u", (char *)"-N", (char *)"--label",
		                 la, (char *)"--label", lb, old, new, NULL };

		st = ctl_run_child(argv, buf, PREVIEW_DIFF_MAX);
	}
	unlink(new);
	if (st != 0 && st != 1) {
		ctl_err(ctx, "preview: %s -u %s failed (status %d): %s", PREVIEW_DIFF, old, st,
		        st == 127 ? "is diffutils installed?" : buf);
		return -1;
	}
	if (asprintf(&text, "%s%s", json_string_value(*diff), buf) == -1)
		return -1;
	json_decref(*diff);
	*diff = ctl_json_text(text);
	free(text);
	return st;
}

static int
preview_print(const struct ctl_ctx *ctx, const char *id, bool changed, json_t *diff,
              json_t *routes, bool json)
{
	size_t i;
	json_t *v;

	if (json)
		return ctl_json_print(ctx, json_pack("{s:s,s:b,s:O,s:O}", "preview_id", id,
		                                     "changed", changed, "diff", diff,
		                                     "routes", routes));
	fputs(json_string_value(diff), stdout);
	printf("%s\nroutes with pending edits:", changed ? "" : "the installed files are up to date");
	json_array_foreach(routes, i, v)
		printf(" %s", json_string_value(v));
	printf("%s\npreview id: %s\napply exactly this: keyauthctl deploy --if-preview %s\n",
	       json_array_size(routes) ? "" : " none", id, id);
	return CTL_EXIT_OK;
}

int
ctl_deploy_preview_step(const struct ctl_ctx *ctx, const struct ctl_ovr_state *s,
                        const struct ctl_hap_opts *h, const char *dir, const char *spoe,
                        size_t spoe_len, const char *cfg, size_t cfg_len, bool json)
{
	const struct preview_file f[2] = {
		{ CTL_SPOE_FILE, spoe, spoe_len }, { CTL_HAPROXY_FILE, cfg, cfg_len },
	};
	const char *tmpdir = getenv("TMPDIR");
	char id[65], tmp[PATH_MAX], *buf = NULL;
	json_t *diff = NULL, *routes = NULL;
	bool changed = false;
	int rc = CTL_EXIT_FAIL, d;

	if (preview_id(ctx, s, f, 2, id) == -1)
		return CTL_EXIT_FAIL;
	if (!h->preview) {
		if (strcmp(h->if_preview, id) == 0)
			return -1;
		ctl_err(ctx, "what would be deployed changed since preview %s (now %s): nothing was "
		        "written; look again with keyauthctl deploy --preview", h->if_preview, id);
		return CTL_EXIT_PRECOND;
	}
	snprintf(tmp, sizeof(tmp), "%s/keyauthctl-preview.XXXXXX",
	         tmpdir != NULL && *tmpdir == '/' ? tmpdir : "/tmp");
	if (mkdtemp(tmp) == NULL) {
		ctl_err(ctx, "cannot create a directory for the preview: %s", strerror(errno));
		return CTL_EXIT_FAIL;
	}
	buf = malloc(PREVIEW_DIFF_MAX);
	diff = json_string("");
	routes = ctl_ovr_pending_routes(s);
	if (buf == NULL || diff == NULL || routes == NULL) {
		ctl_err(ctx, "out of memory");
		goto out;
	}
	for (size_t i = 0; i < 2; i++) {
		d = preview_diff(ctx, dir, tmp, &f[i], buf, &diff);
		if (d == -1)
			goto out;
		changed = changed || d == 1;
	}
	rc = preview_print(ctx, id, changed, diff, routes, json);
out:
	rmdir(tmp);
	free(buf);
	json_decref(diff);
	json_decref(routes);
	return rc;
}

void
ctl_deploy_audit(const struct ctl_ctx *ctx, const struct ctl_ovr_state *s, bool spoe_changed,
                 bool cfg_changed)
{
	json_t *fields, *files = json_array();
	struct ctl_audit *a;
	char err[1024];

	if (spoe_changed)
		json_array_append_new(files, json_string(CTL_SPOE_FILE));
	if (cfg_changed)
		json_array_append_new(files, json_string(CTL_HAPROXY_FILE));
	fields = json_pack("{s:{s:n,s:o},s:{s:n,s:o}}", "files", "old", "new", files,
	                   "routes", "old", "new", ctl_ovr_pending_routes(s));
	a = ctl_audit_open(ctx, s->pending, err, sizeof(err));
	if (a == NULL || ctl_audit_event(a, "deployed", NULL, fields, err, sizeof(err)) == -1)
		fprintf(stderr, "%s: warning: deployed, but not recorded in the audit log: %s\n",
		        ctx->prog, err);
	if (a == NULL)
		json_decref(fields);
	ctl_audit_close(a);
}
