/* SPDX-License-Identifier: Apache-2.0 */
/*
 * ctl_keys_util: what every `keyauthctl key` command uses: the common
 * options, the key read from stdin (echo off on a terminal; buffers wiped),
 * route and owner checks, and the output of a new key and of an entry.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>

#include "ctl_keys-int.h"

/* ---- helpers ---------------------------------------------------------------- */

const char *
key_entry_status(const struct ks_entry *e, int64_t now)
{
	if (e->revoked != 0)
		return "revoked";
	if (e->expires != 0 && now >= e->expires)
		return "expired";
	return "active";
}

/* Owner labels end up in logs, JSON and HAProxy variables: printable text
 * only, bounded. */
bool
key_owner_ok(const char *s)
{
	size_t n = strlen(s);

	if (n >= KS_OWNER_MAX)
		return false;
	for (const unsigned char *p = (const unsigned char *)s; *p != '\0'; p++)
		if (*p < 0x20 || *p == 0x7f)
			return false;
	return true;
}

const struct route *
key_route_lookup(const struct ctl_ctx *ctx, const struct conf *c, const char *name)
{
	const struct route *r = conf_route_find(c, name, strlen(name));

	if (r == NULL) {
		fprintf(stderr, "%s: unknown route '%s'; routes in %s:", ctx->prog, name, c->path);
		for (unsigned i = 0; i < c->nroutes && i < 20; i++)
			fprintf(stderr, " %s", c->routes[i].name);
		if (c->nroutes > 20)
			fprintf(stderr, " ...");
		if (c->nroutes == 0)
			fprintf(stderr, " (none)");
		fprintf(stderr, "\n");
	}
	return r;
}

/* Reads one key from stdin into <buf> (capacity <cap>, NUL-terminated).
 * One trailing "\n" (or "\r\n") is removed. On a terminal, echo is off and
 * one line is read. Returns 0, 1 when the input exceeds <cap> - 1 bytes, -1
 * on a read error. */
int
key_read_stdin(const struct ctl_ctx *ctx, char *buf, size_t cap, size_t *len)
{
	struct termios old, quiet;
	bool tty = isatty(STDIN_FILENO) == 1;
	bool restore = false, over = false;
	size_t n = 0;
	int rc = 0;

	if (tty) {
		fprintf(stderr, "Key (input hidden, then Enter): ");
		fflush(stderr);
		if (tcgetattr(STDIN_FILENO, &old) == 0) {
			quiet = old;
			quiet.c_lflag &= ~(tcflag_t)ECHO;
			restore = tcsetattr(STDIN_FILENO, TCSAFLUSH, &quiet) == 0;
		}
	}
	for (;;) {
		char chunk[512];
		ssize_t r = read(STDIN_FILENO, chunk, sizeof(chunk));

		if (r == -1) {
			if (errno == EINTR)
				continue;
			ctl_err(ctx, "reading the key from stdin: %s", strerror(errno));
			rc = -1;
			break;
		}
		if (r == 0)
			break;
		if (!over && n + (size_t)r <= cap - 1) {
			memcpy(buf + n, chunk, (size_t)r);
			n += (size_t)r;
		} else {
			over = true;
		}
		explicit_bzero(chunk, sizeof(chunk));
		if (tty && n > 0 && buf[n - 1] == '\n')
			break;
	}
	if (restore) {
		tcsetattr(STDIN_FILENO, TCSAFLUSH, &old);
		fputc('\n', stderr);
	}
	if (n > 0 && buf[n - 1] == '\n') {
		n--;
		if (n > 0 && buf[n - 1] == '\r')
			n--;
	}
	buf[n] = '\0';
	*len = n;
	if (rc == 0 && over)
		rc = 1;
	return rc;
}

void
key_keep_entry(struct kept_entry *k, const struct ks_entry *e)
{
	k->e = *e;
	snprintf(k->route, sizeof(k->route), "%s", e->route);
	snprintf(k->owner, sizeof(k->owner), "%s", e->owner);
	k->e.route = k->route;
	k->e.owner = k->owner;
}

/* --rpm N: 0..CONF_MAX_RPM requests per minute, 0 = no limit of the key's own
 * (the route's rate_limit_rpm, if any, then applies). */
int
key_parse_rpm(const struct ctl_ctx *ctx, const char *s, uint32_t *out)
{
	unsigned long v;

	if (ctl_parse_uint(s, 0, CONF_MAX_RPM, &v) == -1)
		return ctl_usage_err(ctx, "--rpm: '%s' is not a number of requests per minute "
		                     "between 0 (no limit) and %d", s, CONF_MAX_RPM);
	*out = (uint32_t)v;
	return 0;
}

/* "60" or "-" for tables and messages. */
const char *
key_rpm_str(uint32_t rpm, char *buf, size_t len)
{
	if (rpm == 0)
		return "-";
	snprintf(buf, len, "%u", (unsigned)rpm);
	return buf;
}

/* ---- options ------------------------------------------------------------------- */

void
key_opts_init(void *opts)
{
	struct key_opts *o = opts;

	o->owner = "";
	o->grace = CTL_DEFAULT_GRACE;
}

int
key_opt(struct ctl_ctx *ctx, void *opts, int opt, const char *arg)
{
	struct key_opts *o = opts;

	switch (opt) {
	case 'r': o->route = arg; break;
	case 'o': o->owner = arg; break;
	case 'd': o->days = arg; break;
	case 'e': o->date = arg; break;
	case 'a': o->all = true; break;
	case 'p':
		o->rpm_set = true;
		return key_parse_rpm(ctx, arg, &o->rpm);
	case 'g':
		if (ctl_parse_duration(arg, &o->grace) == -1)
			return ctl_usage_err(ctx, "--grace: '%s' is not a duration (e.g. 30s, 15m, "
			                     "24h, 7d; at most %d days)", arg, CTL_MAX_DAYS);
		break;
	default:
		return ctl_usage_err(ctx, "unexpected option");
	}
	return 0;
}

/* ---- output ------------------------------------------------------------------ */

/* Prints a just-stored key: the key alone on stdout (or a JSON object that
 * includes it), the details on stderr. Returns CTL_EXIT_OK, or CTL_EXIT_FAIL
 * when stdout could not take it (the key is stored but lost). */
int
key_print_new(const struct ctl_ctx *ctx, const char *key, const struct ks_entry *e,
              bool json, const char *note)
{
	char expires[32], rpm[16];
	int bad = 0;

	ctl_fmt_time(e->expires, expires, sizeof(expires));
	if (json) {
		bad = ctl_json_print(ctx, json_pack("{s:o,s:o,s:o,s:o,s:o,s:I,s:o}",
		    "id", ctl_json_text(e->id), "route", ctl_json_text(e->route),
		    "owner", ctl_json_text(e->owner), "created", ctl_json_time(e->created, false),
		    "expires", ctl_json_time(e->expires, true), "rpm", (json_int_t)e->rpm,
		    "key", ctl_json_text(key))) != CTL_EXIT_OK;
	} else {
		fputs(key, stdout);
		fputc('\n', stdout);
	}
	bad |= fflush(stdout) == EOF || ferror(stdout);
	fprintf(stderr, "Key id:  %s\nRoute:   %s\nOwner:   %s\nExpires: %s\nRPM:     %s\n",
	        e->id, e->route, e->owner[0] != '\0' ? e->owner : "-",
	        e->expires != 0 ? expires : "never", key_rpm_str(e->rpm, rpm, sizeof(rpm)));
	if (note != NULL)
		fprintf(stderr, "%s\n", note);
	if (bad) {
		ctl_err(ctx, "could not write the key to stdout; it is stored but lost: revoke it "
		        "with 'keyauthctl key revoke %s'", e->id);
		return CTL_EXIT_FAIL;
	}
	fprintf(stderr, "This key will not be shown again.\n");
	return CTL_EXIT_OK;
}

json_t *
key_json_entry(const struct ks_entry *e, int64_t now)
{
	return json_pack("{s:o,s:o,s:o,s:o,s:o,s:o,s:I,s:s}", "id", ctl_json_text(e->id),
	                 "route", ctl_json_text(e->route), "owner", ctl_json_text(e->owner),
	                 "created", ctl_json_time(e->created, false),
	                 "expires", ctl_json_time(e->expires, true),
	                 "revoked", ctl_json_time(e->revoked, true),
	                 "rpm", (json_int_t)e->rpm, "status", key_entry_status(e, now));
}
