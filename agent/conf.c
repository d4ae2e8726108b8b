/* SPDX-License-Identifier: Apache-2.0 */
/*
 * conf: reads keyauthd's libconfig file into a plain struct conf.
 *
 * The only user of libconfig in the project. Every group of the file (top
 * level, store, log, each route and its security group) is walked with a
 * keyword table, so an unknown setting, a wrong type or an out-of-range
 * integer is reported the same way wherever it appears. Every error is
 * collected (the walk never stops at the first one) as "file:line: message
 * (fix)" into the caller's buffer. Runs on whatever thread calls conf_load;
 * keeps no global state.
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <sys/stat.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <syslog.h>
#include <unistd.h>

#include <libconfig.h>

#include "conf.h"
#include "tls.h"
#include "spop.h"

#define CONF_MAX_WORKERS      64
#define CONF_NAME_MAX         64     /* route names and key names */
#define CONF_CONTEXT_MAX      255    /* keeps rendered HAProxy ACL lines sane */
#define CONF_PREFIX_BODY_MAX  14     /* + '_' keeps the prefix within KEYFMT_PREFIX_MAX */
#define CONF_QUOTE_MAX        64     /* bytes of a bad value echoed in an error */

#define COUNTOF(a) (sizeof(a) / sizeof((a)[0]))

/* Load state: the conf being built and the error sink. */
struct conf_ctx {
	const char *path;              /* as given to conf_load */
	char *dir;                     /* directory of <path>, NULL for "." */
	struct conf *c;
	char *err;                     /* caller's buffer, may be NULL */
	size_t errlen;
	size_t used;                   /* bytes in err, without the NUL */
	bool full;                     /* err truncated: later errors dropped */
	unsigned nerr;
	mode_t socket_mode;
	/* lines of the main file holding an integer libconfig wrapped around
	 * (already reported; the wrapped value must not be judged again) */
	unsigned wrapped_lines[32];
	unsigned nwrapped;
	/* per route: the settings that carried name and context, for the
	 * lines of duplicate errors */
	const config_setting_t **route_name_s;
	const config_setting_t **route_ctx_s;
};

/* Expected types in keyword tables. CONF_T_INT accepts both libconfig
 * integer types; CONF_T_SEQ accepts an array or a list. */
enum conf_type {
	CONF_T_INT = 0,
	CONF_T_STRING,
	CONF_T_GROUP,
	CONF_T_SEQ,
	CONF_T_LIST,
};

struct conf_kw {
	const char *name;
	enum conf_type type;
	/* called once the type (and for integers, the range) is checked;
	 * <obj> is the object the table fills (struct conf or struct route) */
	void (*parse)(struct conf_ctx *x, const config_setting_t *s, void *obj);
	void (*set_int)(void *obj, long long v); /* CONF_T_INT only */
	long long min, max;            /* CONF_T_INT only */
	const char *example;           /* a correct line, shown on type errors */
};

/* ---- errors ---------------------------------------------------------- */

/* Appends one line to the caller's buffer. A line that does not fit is cut
 * and ends with "...", and every later line is dropped, so a reader can tell
 * the list is incomplete. */
static void conf_err_append(struct conf_ctx *x, const char *line)
{
	size_t len = strlen(line), sep = x->used ? 1 : 0, room;

	if (!x->err || !x->errlen || x->full)
		return;
	room = x->errlen - 1 - x->used;
	if (sep + len <= room) {
		if (sep)
			x->err[x->used++] = '\n';
		memcpy(x->err + x->used, line, len);
		x->used += len;
		x->err[x->used] = '\0';
		return;
	}
	x->full = true;
	if (room >= sep) {
		if (sep)
			x->err[x->used++] = '\n';
		room -= sep;
		memcpy(x->err + x->used, line, room);
		x->used += room;
	}
	x->err[x->used] = '\0';
	/* mark the cut; overwrite the tail when there is no room after it */
	for (size_t i = 0; i < 3 && i < x->used; i++)
		x->err[x->used - 1 - i] = '.';
}

static void conf_err(struct conf_ctx *x, const config_setting_t *s, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* Records "<file>:<line>: <msg>" ("<file>: <msg>" when <line> is 0). <file>
 * is NULL for the main file. */
static void conf_err_line(struct conf_ctx *x, const char *file, unsigned lineno, const char *msg)
{
	char line[PATH_MAX + 2048], name[PATH_MAX + 1];

	if (!file || strcmp(file, x->path) == 0) {
		file = x->path;
	} else if (file[0] != '/' && x->dir) {
		/* libconfig names an included file as written in "@include";
		 * it was opened relative to the main file's directory */
		snprintf(name, sizeof(name), "%s/%s", x->dir, file);
		file = name;
	}
	if (lineno)
		snprintf(line, sizeof(line), "%s:%u: %s", file, lineno, msg);
	else
		snprintf(line, sizeof(line), "%s: %s", file, msg);
	x->nerr++;
	conf_err_append(x, line);
}

/* Records one error at the line of <s> (no line when <s> is NULL or is the
 * root group). */
static void conf_err(struct conf_ctx *x, const config_setting_t *s, const char *fmt, ...)
{
	char msg[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	conf_err_line(x, s ? config_setting_source_file(s) : NULL,
		      s ? config_setting_source_line(s) : 0, msg);
}

/* Copies <s> into <buf> for an error message: non-printable bytes become
 * '?' (so an error stays on one line) and long values are cut with "...". */
static const char *conf_quote(char *buf, size_t size, const char *s)
{
	size_t i;

	for (i = 0; s[i] && i + 1 < size; i++)
		buf[i] = (s[i] >= 0x20 && s[i] < 0x7f) ? s[i] : '?';
	buf[i] = '\0';
	if (s[i] && size > 4)
		memcpy(buf + size - 4, "...", 4);
	return buf;
}

static const char *conf_type_name(int type)
{
	switch (type) {
	case CONFIG_TYPE_INT:
	case CONFIG_TYPE_INT64:  return "an integer";
	case CONFIG_TYPE_FLOAT:  return "a float";
	case CONFIG_TYPE_STRING: return "a string";
	case CONFIG_TYPE_BOOL:   return "a boolean";
	case CONFIG_TYPE_GROUP:  return "a group";
	case CONFIG_TYPE_ARRAY:  return "an array";
	case CONFIG_TYPE_LIST:   return "a list";
	default:                 return "of an unknown type";
	}
}

static const char *conf_want_name(enum conf_type t)
{
	switch (t) {
	case CONF_T_INT:    return "an integer";
	case CONF_T_STRING: return "a string";
	case CONF_T_GROUP:  return "a group { ... }";
	case CONF_T_SEQ:    return "an array [ ... ]";
	case CONF_T_LIST:   return "a list ( ... )";
	}
	return "?";
}

static bool conf_type_ok(enum conf_type want, int type)
{
	switch (want) {
	case CONF_T_INT:    return type == CONFIG_TYPE_INT || type == CONFIG_TYPE_INT64;
	case CONF_T_STRING: return type == CONFIG_TYPE_STRING;
	case CONF_T_GROUP:  return type == CONFIG_TYPE_GROUP;
	case CONF_T_SEQ:    return type == CONFIG_TYPE_ARRAY || type == CONFIG_TYPE_LIST;
	case CONF_T_LIST:   return type == CONFIG_TYPE_LIST;
	}
	return false;
}

/* ---- small helpers ---------------------------------------------------- */

/* Replaces *<dst> with a copy of <src>. Returns 0, or -1 (error recorded
 * at <s>) when out of memory. */
static int conf_set_str(struct conf_ctx *x, const config_setting_t *s, char **dst, const char *src)
{
	char *p = strdup(src);

	if (!p) {
		conf_err(x, s, "out of memory");
		return -1;
	}
	free(*dst);
	*dst = p;
	return 0;
}

/* True when <s> is 1..<max> characters of [A-Za-z0-9] plus the bytes of
 * <extra>. */
static bool conf_token_ok(const char *s, size_t max, const char *extra)
{
	size_t i;

	for (i = 0; s[i]; i++) {
		unsigned char ch = (unsigned char)s[i];

		if (i >= max)
			return false;
		if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
		      (ch >= '0' && ch <= '9') || strchr(extra, ch)))
			return false;
	}
	return i > 0;
}

/* Parses a decimal port 1..65535 made of digits only. */
static int conf_parse_port(const char *s, uint16_t *port)
{
	unsigned long v = 0;
	size_t i;

	for (i = 0; s[i]; i++) {
		if (s[i] < '0' || s[i] > '9' || i >= 5)
			return -1;
		v = v * 10 + (unsigned long)(s[i] - '0');
	}
	if (i == 0 || v < 1 || v > 65535)
		return -1;
	*port = (uint16_t)v;
	return 0;
}

/* ---- integers libconfig wraps around --------------------------------- */

/*
 * WHY: libconfig 1.5 reads an integer without the "L" suffix with strtol and
 * keeps the low 32 bits, silently: "max_frame_size = 4294967552;" loads as
 * 256 and "idle_timeout = 4294967356;" as 60. The parsed tree cannot tell,
 * so the main file is scanned once more, lexically (comments, strings and
 * names skipped), for decimal or hex integer literals outside the int32
 * range. An "L" suffix makes libconfig read 64 bits, which the range checks
 * then judge correctly. Files pulled in with @include are not scanned.
 */
static void conf_scan_wrapped_ints(struct conf_ctx *x)
{
	FILE *f = fopen(x->path, "r");
	unsigned line = 1;
	int ch, prev = 0;

	if (!f)
		return;           /* libconfig just read it; nothing to add */
	ch = getc(f);
	while (ch != EOF) {
		if (ch == '\n') {
			line++;
		} else if (ch == '#' || (ch == '/' && prev == '/')) {
			while ((ch = getc(f)) != EOF && ch != '\n')
				;
			continue;
		} else if (ch == '*' && prev == '/') {
			for (prev = 0; (ch = getc(f)) != EOF; prev = ch) {
				line += ch == '\n';
				if (ch == '/' && prev == '*')
					break;
			}
			prev = 0;
			ch = getc(f);
			continue;
		} else if (ch == '"') {
			while ((ch = getc(f)) != EOF && ch != '"') {
				line += ch == '\n';
				if (ch == '\\' && (ch = getc(f)) == '\n')
					line++;
			}
		} else if ((ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') || ch == '_' || ch == '*') {
			/* a name, which may hold digits: "r1", "key_v2" */
			while ((ch = getc(f)) != EOF && ((ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') ||
							 (ch >= '0' && ch <= '9') || ch == '_' || ch == '-' || ch == '*'))
				;
			prev = 'a';
			continue;
		} else if (ch >= '0' && ch <= '9') {
			bool neg = prev == '-', hex = false, big = false;
			unsigned long long v = 0;
			char lit[32];
			size_t n = 0;

			for (;;) {
				int d = ch >= '0' && ch <= '9' ? ch - '0' :
					ch >= 'a' && ch <= 'f' ? ch - 'a' + 10 :
					ch >= 'A' && ch <= 'F' ? ch - 'A' + 10 : 16;

				if (n == 1 && lit[0] == '0' && (ch == 'x' || ch == 'X')) {
					hex = true;
				} else if (d >= (hex ? 16 : 10)) {
					break;
				} else if (v > (1ull << 40)) {
					big = true;     /* stop before unsigned overflow */
				} else {
					v = v * (hex ? 16u : 10u) + (unsigned)d;
				}
				if (n + 1 < sizeof(lit))
					lit[n++] = (char)ch;
				ch = getc(f);
			}
			lit[n] = '\0';
			/* "L" (64 bits) and floats ("1.5", "1e3") are read right */
			if (ch == 'L' || ch == '.' || ch == 'e' || ch == 'E')
				big = false;
			else if (v > (neg ? 2147483648ull : 2147483647ull))
				big = true;
			if (big) {
				char msg[256];

				snprintf(msg, sizeof(msg),
					 "integer %s%s is out of range for every setting (libconfig would silently wrap it around; use a value within the setting's range)",
					 neg ? "-" : "", lit);
				conf_err_line(x, NULL, line, msg);
				if (x->nwrapped < COUNTOF(x->wrapped_lines))
					x->wrapped_lines[x->nwrapped++] = line;
			}
			/* skip the rest of a float or a suffix */
			while (ch != EOF && ((ch >= '0' && ch <= '9') || ch == '.' || ch == 'e' || ch == 'E' ||
					     ch == 'L' || ch == '+' || ch == '-'))
				ch = getc(f);
			prev = 0;
			continue;
		}
		prev = ch;
		ch = getc(f);
	}
	fclose(f);
}

static bool conf_int_wrapped(const struct conf_ctx *x, const config_setting_t *s)
{
	const char *file = config_setting_source_file(s);

	if (config_setting_type(s) != CONFIG_TYPE_INT || (file && strcmp(file, x->path) != 0))
		return false;
	for (unsigned i = 0; i < x->nwrapped; i++) {
		if (x->wrapped_lines[i] == config_setting_source_line(s))
			return true;
	}
	return false;
}

/* ---- the generic group walk ------------------------------------------ */

/* Checks every member of <grp> against <kws>: unknown names, wrong types and
 * out-of-range integers are errors; a valid member is handed to its parser.
 * <where> names the group in messages (" in store", ""). */
static void conf_walk(struct conf_ctx *x, const config_setting_t *grp, const char *where,
		      const struct conf_kw *kws, size_t nkws, void *obj)
{
	int n = config_setting_length(grp);

	for (int i = 0; i < n; i++) {
		const config_setting_t *s = config_setting_get_elem(grp, (unsigned)i);
		const char *name = config_setting_name(s);
		const struct conf_kw *kw = NULL;
		char q[CONF_QUOTE_MAX];

		if (!s || !name)
			continue;
		for (size_t k = 0; k < nkws; k++) {
			if (strcmp(kws[k].name, name) == 0) {
				kw = &kws[k];
				break;
			}
		}
		if (!kw) {
			char valid[512];
			size_t off = 0;

			valid[0] = '\0';
			for (size_t k = 0; k < nkws && off < sizeof(valid); k++)
				off += (size_t)snprintf(valid + off, sizeof(valid) - off, "%s%s",
							k ? ", " : "", kws[k].name);
			conf_err(x, s, "unknown setting \"%s\"%s (remove it or use one of: %s)",
				 conf_quote(q, sizeof(q), name), where, valid);
			continue;
		}
		if (!conf_type_ok(kw->type, config_setting_type(s))) {
			conf_err(x, s, "%s%s must be %s, not %s (e.g. %s)", name, where,
				 conf_want_name(kw->type), conf_type_name(config_setting_type(s)),
				 kw->example);
			continue;
		}
		if (kw->type == CONF_T_INT) {
			long long v = config_setting_get_int64(s);

			if (conf_int_wrapped(x, s))
				continue;

			if (v < kw->min || v > kw->max) {
				conf_err(x, s, "%s = %lld%s is out of range (use %lld..%lld)",
					 name, v, where, kw->min, kw->max);
				continue;
			}
			kw->set_int(obj, v);
			continue;
		}
		kw->parse(x, s, obj);
	}
}

/* ---- listen ---------------------------------------------------------- */

/* Fills <l> from "host:port", "[v6]:port" or "unix:/path". Returns 0, or -1
 * with <why> saying what is wrong. Does not own <l>'s strings on failure. */
static int conf_parse_addr(const char *a, struct listen_conf *l, const char **why)
{
	char host[INET6_ADDRSTRLEN + 1];
	unsigned char bin[sizeof(struct in6_addr)];
	const char *colon, *hs;
	size_t hlen;
	int af;

	if (strncmp(a, "unix:", 5) == 0) {
		const char *p = a + 5;

		if (p[0] != '/') {
			*why = "a unix socket path must be absolute";
			return -1;
		}
		if (strlen(p) >= sizeof(((struct sockaddr_un *)0)->sun_path)) {
			*why = "a unix socket path must be shorter than 108 bytes";
			return -1;
		}
		l->family = LISTEN_UNIX;
		l->path = strdup(p);
		return l->path ? 0 : (*why = "out of memory", -1);
	}
	if (a[0] == '[') {
		const char *end = strstr(a, "]:");

		if (!end) {
			*why = "an IPv6 address needs the form [addr]:port";
			return -1;
		}
		hs = a + 1;
		hlen = (size_t)(end - hs);
		colon = end + 1;
		af = AF_INET6;
	} else {
		colon = strrchr(a, ':');
		if (!colon) {
			*why = "the port is missing";
			return -1;
		}
		hs = a;
		hlen = (size_t)(colon - a);
		if (memchr(hs, ':', hlen)) {
			*why = "an IPv6 address must be in brackets, as [::1]:12345";
			return -1;
		}
		af = AF_INET;
	}
	if (hlen == 0 || hlen >= sizeof(host)) {
		*why = "the host must be a numeric IPv4 or IPv6 address";
		return -1;
	}
	memcpy(host, hs, hlen);
	host[hlen] = '\0';
	if (inet_pton(af, host, bin) != 1) {
		*why = af == AF_INET6 ? "not a numeric IPv6 address"
			: "the host must be a numeric IPv4 address (no host names)";
		return -1;
	}
	if (conf_parse_port(colon + 1, &l->port) == -1) {
		*why = "the port must be a number from 1 to 65535";
		return -1;
	}
	l->family = LISTEN_TCP;
	l->host = strdup(host);
	return l->host ? 0 : (*why = "out of memory", -1);
}

static void conf_listen_clear(struct listen_conf *l)
{
	free(l->addr);
	free(l->host);
	free(l->path);
	memset(l, 0, sizeof(*l));
}

/* Two listeners that would bind the same socket. */
static bool conf_listen_same(const struct listen_conf *a, const struct listen_conf *b)
{
	unsigned char ba[sizeof(struct in6_addr)], bb[sizeof(struct in6_addr)];
	int af;

	if (a->family != b->family)
		return false;
	if (a->family == LISTEN_UNIX)
		return strcmp(a->path, b->path) == 0;
	if (a->port != b->port)
		return false;
	af = strchr(a->host, ':') ? AF_INET6 : AF_INET;
	if ((strchr(b->host, ':') ? AF_INET6 : AF_INET) != af)
		return false;
	if (inet_pton(af, a->host, ba) != 1 || inet_pton(af, b->host, bb) != 1)
		return false;
	return memcmp(ba, bb, af == AF_INET6 ? 16 : 4) == 0;
}

static void conf_kw_listen(struct conf_ctx *x, const config_setting_t *s, void *obj)
{
	struct conf *c = obj;
	int n = config_setting_length(s);
	char q[CONF_QUOTE_MAX];

	for (unsigned i = 0; i < c->nlisten; i++)
		conf_listen_clear(&c->listen[i]);
	c->nlisten = 0;
	if (n == 0) {
		conf_err(x, s, "listen is empty (give at least one address, e.g. listen = [ \"127.0.0.1:12345\" ];)");
		return;
	}
	if (n > CONF_MAX_LISTENERS) {
		conf_err(x, s, "too many listen addresses: %d (at most %d)", n, CONF_MAX_LISTENERS);
		return;
	}
	for (int i = 0; i < n; i++) {
		const config_setting_t *e = config_setting_get_elem(s, (unsigned)i);
		struct listen_conf *l = &c->listen[c->nlisten];
		const char *a, *why = NULL;
		bool dup = false;

		if (config_setting_type(e) != CONFIG_TYPE_STRING) {
			conf_err(x, e, "listen entries must be strings, not %s (e.g. \"127.0.0.1:12345\")",
				 conf_type_name(config_setting_type(e)));
			continue;
		}
		a = config_setting_get_string(e);
		if (conf_parse_addr(strncmp(a, "tls:", 4) == 0 ? a + 4 : a, l, &why) == -1) {
			conf_err(x, e, "bad listen address \"%s\": %s (use \"IPv4:port\", \"[IPv6]:port\" or \"unix:/absolute/path\")",
				 conf_quote(q, sizeof(q), a), why);
			conf_listen_clear(l);
			continue;
		}
		for (unsigned j = 0; j < c->nlisten && !dup; j++)
			dup = conf_listen_same(&c->listen[j], l);
		if (dup) {
			conf_err(x, e, "duplicate listen address \"%s\" (list each address once)",
				 conf_quote(q, sizeof(q), a));
			conf_listen_clear(l);
			continue;
		}
		if (conf_set_str(x, e, &l->addr, a) == -1) {
			conf_listen_clear(l);
			continue;
		}
		l->tls = strncmp(a, "tls:", 4) == 0;
		c->nlisten++;
	}
}

static void conf_kw_socket_mode(struct conf_ctx *x, const config_setting_t *s, void *obj)
{
	const char *v = config_setting_get_string(s);
	unsigned long mode = 0;
	char q[CONF_QUOTE_MAX];
	size_t i;

	(void)obj;
	for (i = 0; v[i] >= '0' && v[i] <= '7' && i < 5; i++)
		mode = mode * 8 + (unsigned long)(v[i] - '0');
	if (i == 0 || v[i] || mode > 07777) {
		conf_err(x, s, "bad socket_mode \"%s\" (use an octal mode as a string, e.g. socket_mode = \"0660\";)",
			 conf_quote(q, sizeof(q), v));
		return;
	}
	x->socket_mode = (mode_t)mode;
}

/* ---- simple top-level settings --------------------------------------- */

static void conf_set_rate_window(void *obj, long long v)
{
	((struct conf *)obj)->rate_window_s = (unsigned)v;
}

static void conf_set_workers(void *obj, long long v)
{
	((struct conf *)obj)->workers = (unsigned)v;
}

static void conf_set_max_connections(void *obj, long long v)
{
	((struct conf *)obj)->max_connections = (unsigned)v;
}

static void conf_set_max_frame_size(void *obj, long long v)
{
	((struct conf *)obj)->max_frame_size = (uint32_t)v;
}

static void conf_set_idle_timeout(void *obj, long long v)
{
	((struct conf *)obj)->idle_timeout_ms = (unsigned)v * 1000u;
}

static void conf_kw_key_prefix(struct conf_ctx *x, const config_setting_t *s, void *obj)
{
	struct conf *c = obj;
	const char *v = config_setting_get_string(s);
	size_t len = strlen(v);
	char body[CONF_PREFIX_BODY_MAX + 1], q[CONF_QUOTE_MAX];

	if (len < 2 || len > CONF_PREFIX_BODY_MAX + 1 || v[len - 1] != '_')
		goto bad;
	memcpy(body, v, len - 1);
	body[len - 1] = '\0';
	if (!conf_token_ok(body, CONF_PREFIX_BODY_MAX, ""))
		goto bad;
	conf_set_str(x, s, &c->key_prefix, v);
	return;
bad:
	conf_err(x, s, "bad key_prefix \"%s\" (use 1 to %d letters or digits followed by \"_\", e.g. key_prefix = \"ka_\";)",
		 conf_quote(q, sizeof(q), v), CONF_PREFIX_BODY_MAX);
}

static void conf_kw_user(struct conf_ctx *x, const config_setting_t *s, void *obj)
{
	struct conf *c = obj;
	const char *v = config_setting_get_string(s);
	char q[CONF_QUOTE_MAX];

	if (v[0] == '-' || !conf_token_ok(v, 32, "._-")) {
		conf_err(x, s, "bad user \"%s\" (use an existing user name, e.g. user = \"keyauth\";, or remove the setting)",
			 conf_quote(q, sizeof(q), v));
		return;
	}
	conf_set_str(x, s, &c->user, v);
}

static void conf_kw_pid_file(struct conf_ctx *x, const config_setting_t *s, void *obj)
{
	struct conf *c = obj;
	const char *v = config_setting_get_string(s);

	if (!v[0]) {
		conf_err(x, s, "pid_file is empty (give a path, e.g. pid_file = \"/run/keyauth/keyauthd.pid\";, or remove the setting)");
		return;
	}
	conf_set_str(x, s, &c->pid_file, v);
}

static void conf_kw_control_socket(struct conf_ctx *x, const config_setting_t *s, void *obj)
{
	struct conf *c = obj;
	const char *v = config_setting_get_string(s);

	if (v[0] != '/' || strlen(v) >= 108) {
		conf_err(x, s, "control_socket must be an absolute path shorter than 108 bytes (e.g. control_socket = \"/run/keyauth/control.sock\";, or remove the setting)");
		return;
	}
	conf_set_str(x, s, &c->control_path, v);
}

/* "host:port" or a bare port, which means loopback: the metrics tell how
 * busy the gate is and which routes exist, nothing to publish by default. */
static void conf_kw_metrics_listen(struct conf_ctx *x, const config_setting_t *s, void *obj)
{
	struct conf *c = obj;
	const char *v = config_setting_get_string(s);
	char a[sizeof("127.0.0.1:65535")], q[CONF_QUOTE_MAX];
	const char *why = NULL;

	if (v[0] != '\0' && strspn(v, "0123456789") == strlen(v) && strlen(v) <= 5) {
		snprintf(a, sizeof(a), "127.0.0.1:%s", v);
		v = a;
	}
	conf_listen_clear(&c->metrics);
	if (strncmp(v, "unix:", 5) == 0)
		why = "the metrics endpoint is TCP only";
	else if (conf_parse_addr(v, &c->metrics, &why) == 0 &&
		 conf_set_str(x, s, &c->metrics.addr, v) == 0)
		return;
	if (why != NULL)
		conf_err(x, s, "bad metrics_listen \"%s\": %s (use \"127.0.0.1:9412\", \"[::1]:9412\" or a port alone for loopback, or remove the setting)",
			 conf_quote(q, sizeof(q), config_setting_get_string(s)), why);
	conf_listen_clear(&c->metrics);
}

/* ---- store and log groups --------------------------------------------- */

static void conf_kw_store_backend(struct conf_ctx *x, const config_setting_t *s, void *obj)
{
	const char *v = config_setting_get_string(s);
	char q[CONF_QUOTE_MAX];

	(void)obj;
	if (strcmp(v, "file") != 0 && strcmp(v, "redis") != 0)
		conf_err(x, s, "unsupported store backend \"%s\" (set backend = \"file\"; or backend = \"redis\";)",
			 conf_quote(q, sizeof(q), v));
}

/* The redis settings: only meaningful with backend = "redis" (conf_kw_store
 * allocates c->store_redis before the walk when it sees that backend). */
static struct store_redis_conf *conf_redis(struct conf_ctx *x, const config_setting_t *s, void *obj)
{
	struct conf *c = obj;

	if (c->store_redis == NULL)
		conf_err(x, s, "%s in store needs backend = \"redis\"; (set it or remove %s)",
			 config_setting_name(s), config_setting_name(s));
	return c->store_redis;
}

static void conf_kw_redis_address(struct conf_ctx *x, const config_setting_t *s, void *obj)
{
	struct store_redis_conf *r = conf_redis(x, s, obj);
	const char *v = config_setting_get_string(s);

	if (r == NULL)
		return;
	if (!v[0] || (strncmp(v, "unix:", 5) != 0 && strrchr(v, ':') == NULL)) {
		conf_err(x, s, "bad redis address (use \"127.0.0.1:6379\" or \"unix:/run/redis/redis.sock\")");
		return;
	}
	conf_set_str(x, s, &r->address, v);
}

static void conf_kw_redis_password_file(struct conf_ctx *x, const config_setting_t *s, void *obj)
{
	struct store_redis_conf *r = conf_redis(x, s, obj);
	const char *v = config_setting_get_string(s);

	if (r == NULL)
		return;
	if (v[0] != '/') {
		conf_err(x, s, "password_file must be an absolute path (e.g. password_file = \"/etc/keyauth/redis.pass\";)");
		return;
	}
	conf_set_str(x, s, &r->password_file, v);
}

/* Redis ACL user names may hold almost anything; ours go on a command line
 * built with %s and in log lines, so printable ASCII without blanks. */
static void conf_kw_redis_username(struct conf_ctx *x, const config_setting_t *s, void *obj)
{
	struct store_redis_conf *r = conf_redis(x, s, obj);
	const char *v = config_setting_get_string(s);

	if (r == NULL)
		return;
	for (const char *p = v; *p; p++)
		if (*p <= ' ' || *p >= 0x7f || *p == '"' || *p == '\\') {
			conf_err(x, s, "bad redis username (printable characters, no blanks or quotes, e.g. username = \"keyauth\";)");
			return;
		}
	if (!v[0] || strlen(v) > 128) {
		conf_err(x, s, "redis username must be 1..128 characters (e.g. username = \"keyauth\";)");
		return;
	}
	conf_set_str(x, s, &r->username, v);
}

static void conf_kw_redis_namespace(struct conf_ctx *x, const config_setting_t *s, void *obj)
{
	struct store_redis_conf *r = conf_redis(x, s, obj);
	const char *v = config_setting_get_string(s);

	if (r == NULL)
		return;
	for (const char *p = v; *p; p++)
		if (!isalnum((unsigned char)*p) && *p != '_' && *p != '-' && *p != ':' && *p != '.') {
			conf_err(x, s, "bad namespace (use [A-Za-z0-9_.:-], e.g. namespace = \"keyauth\";)");
			return;
		}
	if (!v[0] || strlen(v) > 64) {
		conf_err(x, s, "namespace must be 1..64 characters (e.g. namespace = \"keyauth\";)");
		return;
	}
	conf_set_str(x, s, &r->namespace, v);
}

static void conf_kw_redis_stale_action(struct conf_ctx *x, const config_setting_t *s, void *obj)
{
	struct store_redis_conf *r = conf_redis(x, s, obj);
	const char *v = config_setting_get_string(s);

	if (r == NULL)
		return;
	if (strcmp(v, "serve") == 0)
		r->stale_deny = false;
	else if (strcmp(v, "deny") == 0)
		r->stale_deny = true;
	else
		conf_err(x, s, "stale_action must be \"serve\" or \"deny\"");
}

/* Integer settings: the walk checks the range; a file-backend config has no
 * place for them, so they are checked again in conf_kw_store. */
static void conf_set_redis_db(void *obj, long long v)
{
	struct conf *c = obj;

	if (c->store_redis != NULL)
		c->store_redis->database = (int)v;
}

static void conf_set_redis_resync(void *obj, long long v)
{
	struct conf *c = obj;

	if (c->store_redis != NULL)
		c->store_redis->resync_interval = (unsigned)v;
}

static void conf_set_redis_staleness(void *obj, long long v)
{
	struct conf *c = obj;

	if (c->store_redis != NULL)
		c->store_redis->max_staleness = (unsigned)v;
}

static void conf_set_redis_write_replicas(void *obj, long long v)
{
	struct conf *c = obj;

	if (c->store_redis != NULL)
		c->store_redis->write_replicas = (unsigned)v;
}

static void conf_set_redis_write_timeout(void *obj, long long v)
{
	struct conf *c = obj;

	if (c->store_redis != NULL)
		c->store_redis->write_timeout_ms = (unsigned)v;
}

static void conf_kw_store_path(struct conf_ctx *x, const config_setting_t *s, void *obj)
{
	struct conf *c = obj;
	const char *v = config_setting_get_string(s);

	if (!v[0]) {
		conf_err(x, s, "store path is empty (e.g. path = \"/var/lib/keyauth/keys.db\";)");
		return;
	}
	conf_set_str(x, s, &c->store_path, v);
}

static const struct conf_kw conf_store_kws[] = {
	{ "backend", CONF_T_STRING, conf_kw_store_backend, NULL, 0, 0, "backend = \"file\";" },
	{ "path", CONF_T_STRING, conf_kw_store_path, NULL, 0, 0, "path = \"/var/lib/keyauth/keys.db\";" },
	{ "address", CONF_T_STRING, conf_kw_redis_address, NULL, 0, 0, "address = \"127.0.0.1:6379\";" },
	{ "database", CONF_T_INT, NULL, conf_set_redis_db, 0, 15, "database = 0;" },
	{ "username", CONF_T_STRING, conf_kw_redis_username, NULL, 0, 0, "username = \"keyauth\";" },
	{ "password_file", CONF_T_STRING, conf_kw_redis_password_file, NULL, 0, 0, "password_file = \"/etc/keyauth/redis.pass\";" },
	{ "namespace", CONF_T_STRING, conf_kw_redis_namespace, NULL, 0, 0, "namespace = \"keyauth\";" },
	{ "resync_interval", CONF_T_INT, NULL, conf_set_redis_resync, 1, 86400, "resync_interval = 60;" },
	{ "max_staleness", CONF_T_INT, NULL, conf_set_redis_staleness, 1, 604800, "max_staleness = 300;" },
	{ "stale_action", CONF_T_STRING, conf_kw_redis_stale_action, NULL, 0, 0, "stale_action = \"deny\";" },
	{ "write_replicas", CONF_T_INT, NULL, conf_set_redis_write_replicas, 0, 64, "write_replicas = 1;" },
	{ "write_timeout_ms", CONF_T_INT, NULL, conf_set_redis_write_timeout, 1, 60000, "write_timeout_ms = 1000;" },
};

static void conf_kw_store(struct conf_ctx *x, const config_setting_t *s, void *obj)
{
	struct conf *c = obj;
	const char *backend = NULL;
	static const char *const redis_only[] = { "database", "resync_interval", "max_staleness",
						  "write_replicas", "write_timeout_ms" };

	if (config_setting_lookup_string(s, "backend", &backend) == CONFIG_TRUE &&
	    strcmp(backend, "redis") == 0 && c->store_redis == NULL) {
		c->store_redis = calloc(1, sizeof(*c->store_redis));
		if (c->store_redis == NULL ||
		    conf_set_str(x, s, &c->store_redis->address, "127.0.0.1:6379") == -1 ||
		    conf_set_str(x, s, &c->store_redis->namespace, "keyauth") == -1)
			return;
		c->store_redis->resync_interval = 60;
		c->store_redis->max_staleness = 300;
		/* Fail open for max_staleness, then closed (issue 10). */
		c->store_redis->stale_deny = true;
		c->store_redis->write_timeout_ms = 1000;
	}
	if (c->store_redis == NULL)
		for (size_t i = 0; i < COUNTOF(redis_only); i++) {
			const config_setting_t *m = config_setting_get_member(s, redis_only[i]);

			if (m != NULL)
				conf_err(x, m, "%s in store needs backend = \"redis\"; (set it or remove %s)",
					 redis_only[i], redis_only[i]);
		}
	conf_walk(x, s, " in store", conf_store_kws, COUNTOF(conf_store_kws), obj);
	/* AUTH <username> <password>: an ACL user always comes with a password
	 * (a nopass user takes any, but then the setting protects nothing). */
	if (c->store_redis != NULL && c->store_redis->username != NULL &&
	    c->store_redis->password_file == NULL)
		conf_err(x, config_setting_get_member(s, "username"),
			 "username in store needs password_file (the ACL user's password, e.g. password_file = \"/etc/keyauth/redis.pass\";)");
}

static const struct {
	const char *name;
	int level;
} conf_log_levels[] = {
	{ "error", LOG_ERR },
	{ "warning", LOG_WARNING },
	{ "notice", LOG_NOTICE },
	{ "info", LOG_INFO },
	{ "debug", LOG_DEBUG },
};

static void conf_kw_log_level(struct conf_ctx *x, const config_setting_t *s, void *obj)
{
	struct conf *c = obj;
	const char *v = config_setting_get_string(s);
	char q[CONF_QUOTE_MAX];

	for (size_t i = 0; i < COUNTOF(conf_log_levels); i++) {
		if (strcmp(v, conf_log_levels[i].name) == 0) {
			c->log_level = conf_log_levels[i].level;
			return;
		}
	}
	conf_err(x, s, "bad log level \"%s\" (use \"error\", \"warning\", \"notice\", \"info\" or \"debug\")",
		 conf_quote(q, sizeof(q), v));
}

static void conf_kw_log_target(struct conf_ctx *x, const config_setting_t *s, void *obj)
{
	struct conf *c = obj;
	const char *v = config_setting_get_string(s);
	char q[CONF_QUOTE_MAX];

	if (strcmp(v, "stderr") == 0)
		c->log_target = LOG_TARGET_STDERR;
	else if (strcmp(v, "syslog") == 0)
		c->log_target = LOG_TARGET_SYSLOG;
	else
		conf_err(x, s, "bad log target \"%s\" (use \"stderr\" or \"syslog\")",
			 conf_quote(q, sizeof(q), v));
}

static const struct conf_kw conf_log_kws[] = {
	{ "level", CONF_T_STRING, conf_kw_log_level, NULL, 0, 0, "level = \"info\";" },
	{ "target", CONF_T_STRING, conf_kw_log_target, NULL, 0, 0, "target = \"stderr\";" },
};

static void conf_kw_log(struct conf_ctx *x, const config_setting_t *s, void *obj)
{
	conf_walk(x, s, " in log", conf_log_kws, COUNTOF(conf_log_kws), obj);
}

/* ---- routes ------------------------------------------------------------ */

/* Route parsers get the route being filled; the route's index in the
 * conf is recovered from the ctx when a setting's line must be kept. */
static unsigned conf_route_index(struct conf_ctx *x, const struct route *r)
{
	return (unsigned)(r - x->c->routes);
}

static void conf_kw_route_name(struct conf_ctx *x, const config_setting_t *s, void *obj)
{
	struct route *r = obj;
	const char *v = config_setting_get_string(s);
	char q[CONF_QUOTE_MAX];

	if (!conf_token_ok(v, CONF_NAME_MAX, "_-")) {
		conf_err(x, s, "bad route name \"%s\" (use 1 to %d characters of A-Z a-z 0-9 _ -)",
			 conf_quote(q, sizeof(q), v), CONF_NAME_MAX);
		return;
	}
	if (conf_set_str(x, s, &r->name, v) == -1)
		return;
	r->name_len = strlen(v);
	x->route_name_s[conf_route_index(x, r)] = s;
}

static void conf_kw_route_type(struct conf_ctx *x, const config_setting_t *s, void *obj)
{
	struct route *r = obj;
	const char *v = config_setting_get_string(s);
	char q[CONF_QUOTE_MAX];

	if (strcmp(v, "provider") == 0)
		r->type = ROUTE_PROVIDER;
	else if (strcmp(v, "proxy") == 0)
		r->type = ROUTE_PROXY;
	else
		conf_err(x, s, "bad route type \"%s\" (use \"provider\" or \"proxy\")",
			 conf_quote(q, sizeof(q), v));
}

/* A context is "/" or "/seg(/seg)*" over [A-Za-z0-9_.-], without "..". */
static const char *conf_context_problem(const char *v)
{
	size_t len = strlen(v);

	if (v[0] != '/')
		return "it must start with \"/\"";
	if (len > CONF_CONTEXT_MAX)
		return "it is longer than 255 characters";
	if (len > 1 && v[len - 1] == '/')
		return "it must not end with \"/\"";
	if (strstr(v, ".."))
		return "it must not contain \"..\"";
	if (strstr(v, "//"))
		return "it must not contain an empty segment \"//\"";
	if (!conf_token_ok(v, CONF_CONTEXT_MAX, "_./-"))
		return "only A-Z a-z 0-9 _ . / - are allowed";
	return NULL;
}

static void conf_kw_route_context(struct conf_ctx *x, const config_setting_t *s, void *obj)
{
	struct route *r = obj;
	const char *v = config_setting_get_string(s), *why;
	char q[CONF_QUOTE_MAX];

	why = conf_context_problem(v);
	if (why) {
		conf_err(x, s, "bad context \"%s\": %s (e.g. context = \"/openai\";)",
			 conf_quote(q, sizeof(q), v), why);
		return;
	}
	if (conf_set_str(x, s, &r->context, v) == -1)
		return;
	r->context_len = strlen(v);
	x->route_ctx_s[conf_route_index(x, r)] = s;
}

/* "host:port" with a DNS name or IPv4 host, or "[IPv6]:port". Only checked
 * enough to be safe to render into an HAProxy server or peer line. */
static bool conf_hostport_ok(const char *v)
{
	const char *colon = strrchr(v, ':');
	char host[256];
	uint16_t port;
	size_t hlen;
	unsigned char bin[sizeof(struct in6_addr)];

	if (!colon || colon == v || (size_t)(colon - v) >= sizeof(host) ||
	    conf_parse_port(colon + 1, &port) == -1)
		return false;
	hlen = (size_t)(colon - v);
	memcpy(host, v, hlen);
	host[hlen] = '\0';
	if (host[0] == '[' && hlen > 2 && host[hlen - 1] == ']') {
		host[hlen - 1] = '\0';
		return inet_pton(AF_INET6, host + 1, bin) == 1;
	}
	return conf_token_ok(host, sizeof(host) - 1, ".-");
}

static void conf_kw_route_upstream(struct conf_ctx *x, const config_setting_t *s, void *obj)
{
	struct route *r = obj;
	const char *v = config_setting_get_string(s);
	char q[CONF_QUOTE_MAX];

	if (!conf_hostport_ok(v)) {
		conf_err(x, s, "bad upstream \"%s\" (use \"host:port\" or \"[IPv6]:port\", e.g. upstream = \"api.openai.com:443\";)",
			 conf_quote(q, sizeof(q), v));
		return;
	}
	conf_set_str(x, s, &r->upstream, v);
}

static void conf_set_route_tunnel(void *obj, long long v)
{
	((struct route *)obj)->tunnel_timeout_s = (unsigned)v;
}

static void conf_set_route_rpm(void *obj, long long v)
{
	((struct route *)obj)->rate_limit_rpm = (uint32_t)v;
}

static void conf_kw_sec_auth(struct conf_ctx *x, const config_setting_t *s, void *obj)
{
	const char *v = config_setting_get_string(s);
	char q[CONF_QUOTE_MAX];

	(void)obj;
	if (strcmp(v, "apiKey") != 0)
		conf_err(x, s, "unsupported authentication type \"%s\": only \"apiKey\" is supported",
			 conf_quote(q, sizeof(q), v));
}

static void conf_kw_sec_key_name(struct conf_ctx *x, const config_setting_t *s, void *obj)
{
	struct route *r = obj;
	const char *v = config_setting_get_string(s);
	char q[CONF_QUOTE_MAX];

	if (!conf_token_ok(v, CONF_NAME_MAX, "_-")) {
		conf_err(x, s, "bad key_name \"%s\" (use 1 to %d characters of A-Z a-z 0-9 _ -, e.g. key_name = \"X-API-Key\";)",
			 conf_quote(q, sizeof(q), v), CONF_NAME_MAX);
		return;
	}
	conf_set_str(x, s, &r->key_name, v);
	r->set_key = true;
}

static void conf_kw_sec_key_location(struct conf_ctx *x, const config_setting_t *s, void *obj)
{
	struct route *r = obj;
	const char *v = config_setting_get_string(s);
	char q[CONF_QUOTE_MAX];

	r->set_key = true;
	if (strcmp(v, "header") == 0)
		r->key_location = KEYLOC_HEADER;
	else if (strcmp(v, "query") == 0)
		r->key_location = KEYLOC_QUERY;
	else
		conf_err(x, s, "bad key_location \"%s\" (use \"header\" or \"query\")",
			 conf_quote(q, sizeof(q), v));
}

/* carriers = [ "header:x-api-key", "bearer", "query:key" ]: ordered, the
 * first one present in a request is the key. */
static void conf_kw_sec_carriers(struct conf_ctx *x, const config_setting_t *s, void *obj)
{
	struct route *r = obj;
	int n = config_setting_length(s);
	char msg[256], q[CONF_QUOTE_MAX], a[96];

	r->set_carriers = true;
	if (n == 0) {
		conf_err(x, s, "carriers is empty (list where clients send the key, e.g. carriers = [ \"bearer\", \"header:x-api-key\" ];)");
		return;
	}
	if (n > ROUTE_MAX_CARRIERS) {
		conf_err(x, s, "too many carriers: %d (at most %d)", n, ROUTE_MAX_CARRIERS);
		return;
	}
	r->ncarriers = 0;
	for (int i = 0; i < n; i++) {
		const config_setting_t *e = config_setting_get_elem(s, (unsigned)i);
		const char *v = config_setting_get_string(e);
		struct carrier *cr = &r->carriers[r->ncarriers];

		if (v == NULL) {
			conf_err(x, e, "carriers must hold strings (e.g. carriers = [ \"bearer\", \"header:x-api-key\" ];)");
			continue;
		}
		if (*v == '\0') {
			conf_err(x, e, "empty carrier in carriers (use \"bearer\", \"header:NAME\" or \"query:NAME\")");
			continue;
		}
		if (carrier_parse(v, cr, msg, sizeof(msg)) == -1) {
			conf_err(x, e, "%s", msg);
			continue;
		}
		for (unsigned j = 0; j < r->ncarriers && cr != NULL; j++) {
			if (carrier_same(&r->carriers[j], cr)) {
				conf_err(x, e, "duplicate carrier \"%s\" (same place as \"%s\"; list each place once)",
					 conf_quote(q, sizeof(q), v), carrier_str(&r->carriers[j], a, sizeof(a)));
				cr = NULL;
			}
		}
		if (cr != NULL)
			r->ncarriers++;
	}
}

static const struct conf_kw conf_security_kws[] = {
	{ "authentication", CONF_T_STRING, conf_kw_sec_auth, NULL, 0, 0, "authentication = \"apiKey\";" },
	{ "key_name", CONF_T_STRING, conf_kw_sec_key_name, NULL, 0, 0, "key_name = \"X-API-Key\";" },
	{ "key_location", CONF_T_STRING, conf_kw_sec_key_location, NULL, 0, 0, "key_location = \"header\";" },
	{ "carriers", CONF_T_SEQ, conf_kw_sec_carriers, NULL, 0, 0,
	  "carriers = [ \"bearer\", \"header:x-api-key\" ];" },
};

static void conf_kw_route_security(struct conf_ctx *x, const config_setting_t *s, void *obj)
{
	conf_walk(x, s, " in security", conf_security_kws, COUNTOF(conf_security_kws), obj);
}

static void conf_kw_route_provider(struct conf_ctx *x, const config_setting_t *s, void *obj)
{
	struct route *r = obj;
	const char *v = config_setting_get_string(s);
	const struct provider_profile *p = provider_find(v);
	char q[CONF_QUOTE_MAX];

	if (p == NULL) {
		conf_err(x, s, "unknown provider \"%s\" (use one of %s)", conf_quote(q, sizeof(q), v),
			 provider_names());
		return;
	}
	r->provider = p;
}

static void conf_kw_route_upstream_auth(struct conf_ctx *x, const config_setting_t *s, void *obj)
{
	struct route *r = obj;
	char msg[256];

	if (upstream_auth_parse(config_setting_get_string(s), &r->upstream_auth, msg, sizeof(msg)) == -1) {
		conf_err(x, s, "%s", msg);
		return;
	}
	r->set_upauth = true;
}

static void conf_kw_route_error_format(struct conf_ctx *x, const config_setting_t *s, void *obj)
{
	struct route *r = obj;
	const char *v = config_setting_get_string(s);
	char q[CONF_QUOTE_MAX];

	if (error_format_parse(v, &r->errors) == -1) {
		conf_err(x, s, "bad error_format \"%s\" (use \"openai\", \"anthropic\" or \"google\")",
			 conf_quote(q, sizeof(q), v));
		return;
	}
	r->set_errors = true;
}

/* After a route's walk: what the file did not set comes from the provider
 * profile; the seed's key_name/key_location stand for one carrier. */
static void conf_route_settle(struct conf_ctx *x, const config_setting_t *e, struct route *r)
{
	const struct provider_profile *p = r->provider != NULL ? r->provider : provider_get(PROVIDER_GENERIC);

	r->provider = p;
	if (r->set_carriers && r->set_key) {
		conf_err(x, e, "route \"%s\" sets both carriers and key_name/key_location (keep one: carriers = [ \"header:%s\" ];)",
			 r->name ? r->name : "?", r->key_name ? r->key_name : "X-API-Key");
		return;
	}
	if (!r->set_carriers && (r->set_key || p == provider_get(PROVIDER_GENERIC))) {
		memset(&r->carriers[0], 0, sizeof(r->carriers[0]));
		r->carriers[0].loc = r->key_location;
		snprintf(r->carriers[0].name, sizeof(r->carriers[0].name), "%s", r->key_name);
		r->ncarriers = 1;
	} else if (!r->set_carriers) {
		memcpy(r->carriers, p->carriers, sizeof(r->carriers));
		r->ncarriers = p->ncarriers;
	}
	if (r->ncarriers == 0)
		return;         /* reported by the carriers walk */
	if (!r->set_key || r->set_carriers) {
		free(r->key_name);
		r->key_name = NULL;
		if (conf_set_str(x, e, &r->key_name, r->carriers[0].name) == -1)
			return;
		r->key_location = r->carriers[0].loc;
	}
	if (!r->set_upauth)
		r->upstream_auth = p->upstream;
	if (!r->set_errors)
		r->errors = p->errors;
}

static const struct conf_kw conf_route_kws[] = {
	{ "name", CONF_T_STRING, conf_kw_route_name, NULL, 0, 0, "name = \"openai\";" },
	{ "type", CONF_T_STRING, conf_kw_route_type, NULL, 0, 0, "type = \"provider\";" },
	{ "context", CONF_T_STRING, conf_kw_route_context, NULL, 0, 0, "context = \"/openai\";" },
	{ "upstream", CONF_T_STRING, conf_kw_route_upstream, NULL, 0, 0, "upstream = \"api.openai.com:443\";" },
	{ "rate_limit_rpm", CONF_T_INT, NULL, conf_set_route_rpm, 0, CONF_MAX_RPM, "rate_limit_rpm = 600;" },
	{ "provider", CONF_T_STRING, conf_kw_route_provider, NULL, 0, 0, "provider = \"anthropic\";" },
	{ "tunnel_timeout", CONF_T_INT, NULL, conf_set_route_tunnel, 1, 86400, "tunnel_timeout = 3600;" },
	{ "upstream_auth", CONF_T_STRING, conf_kw_route_upstream_auth, NULL, 0, 0,
	  "upstream_auth = \"header:api-key\";" },
	{ "error_format", CONF_T_STRING, conf_kw_route_error_format, NULL, 0, 0,
	  "error_format = \"anthropic\";" },
	{ "security", CONF_T_GROUP, conf_kw_route_security, NULL, 0, 0,
	  "security = { authentication = \"apiKey\"; key_name = \"X-API-Key\"; key_location = \"header\"; };" },
};

/* Reports routes sharing a name or a context, at the second one's line. */
static void conf_routes_check_unique(struct conf_ctx *x)
{
	const struct conf *c = x->c;
	char q[CONF_QUOTE_MAX];

	for (unsigned i = 1; i < c->nroutes; i++) {
		const struct route *r = &c->routes[i];

		for (unsigned j = 0; j < i; j++) {
			const struct route *o = &c->routes[j];

			if (r->name && o->name && strcmp(r->name, o->name) == 0) {
				conf_err(x, x->route_name_s[i],
					 "duplicate route name \"%s\" (first used at line %u; give each route its own name)",
					 conf_quote(q, sizeof(q), r->name),
					 config_setting_source_line(x->route_name_s[j]));
				break;
			}
		}
		for (unsigned j = 0; j < i; j++) {
			const struct route *o = &c->routes[j];

			if (r->context && o->context && strcmp(r->context, o->context) == 0) {
				conf_err(x, x->route_ctx_s[i],
					 "duplicate context \"%s\" (first used by route \"%s\" at line %u; give each route its own context)",
					 conf_quote(q, sizeof(q), r->context), o->name ? o->name : "?",
					 config_setting_source_line(x->route_ctx_s[j]));
				break;
			}
		}
	}
}

static void conf_kw_routes(struct conf_ctx *x, const config_setting_t *s, void *obj)
{
	struct conf *c = obj;
	int n = config_setting_length(s);

	if (n == 0) {
		conf_err(x, s, "routes is empty (define at least one route, e.g. routes = ( { name = \"openai\"; context = \"/openai\"; } );)");
		return;
	}
	if (n > CONF_MAX_ROUTES) {
		conf_err(x, s, "too many routes: %d (at most %d)", n, CONF_MAX_ROUTES);
		return;
	}
	c->routes = calloc((size_t)n, sizeof(*c->routes));
	x->route_name_s = calloc((size_t)n, sizeof(*x->route_name_s));
	x->route_ctx_s = calloc((size_t)n, sizeof(*x->route_ctx_s));
	if (!c->routes || !x->route_name_s || !x->route_ctx_s) {
		conf_err(x, s, "out of memory");
		return;
	}
	for (int i = 0; i < n; i++) {
		const config_setting_t *e = config_setting_get_elem(s, (unsigned)i);
		struct route *r = &c->routes[c->nroutes++];
		char label[CONF_QUOTE_MAX + 16], where[CONF_QUOTE_MAX + 32];
		const char *nm = NULL;

		if (config_setting_type(e) != CONFIG_TYPE_GROUP) {
			conf_err(x, e, "route #%d must be a group { ... }, not %s (e.g. { name = \"openai\"; context = \"/openai\"; })",
				 i + 1, conf_type_name(config_setting_type(e)));
			continue;
		}
		r->type = ROUTE_PROVIDER;
		r->tunnel_timeout_s = 3600;
		r->key_location = KEYLOC_HEADER;
		if (conf_set_str(x, e, &r->key_name, "X-API-Key") == -1)
			continue;
		/* errors inside a route name it, so that they can be told apart
		 * among hundreds of routes */
		if (config_setting_lookup_string(e, "name", &nm) == CONFIG_TRUE) {
			char q[CONF_QUOTE_MAX];

			snprintf(label, sizeof(label), "\"%s\"", conf_quote(q, sizeof(q), nm));
		} else {
			snprintf(label, sizeof(label), "#%d", i + 1);
		}
		snprintf(where, sizeof(where), " in route %s", label);
		conf_walk(x, e, where, conf_route_kws, COUNTOF(conf_route_kws), r);
		conf_route_settle(x, e, r);
		/* a name or context of the wrong type was reported by the walk */
		if (!config_setting_get_member(e, "name"))
			conf_err(x, e, "route %s has no name (add name = \"...\";)", label);
		if (!config_setting_get_member(e, "context"))
			conf_err(x, e, "route %s has no context (add context = \"/...\";)", label);
	}
	conf_routes_check_unique(x);
}

/* ---- HAProxy peers (rendering only) ------------------------------------ */

static void conf_kw_peer_name(struct conf_ctx *x, const config_setting_t *s, void *obj)
{
	struct haproxy_peer *p = obj;
	const char *v = config_setting_get_string(s);
	char q[CONF_QUOTE_MAX];

	if (!conf_token_ok(v, CONF_NAME_MAX, "_.-")) {
		conf_err(x, s, "bad peer name \"%s\" (use 1 to %d characters of A-Z a-z 0-9 _ . -, e.g. the node's host name)",
			 conf_quote(q, sizeof(q), v), CONF_NAME_MAX);
		return;
	}
	conf_set_str(x, s, &p->name, v);
}

static void conf_kw_peer_address(struct conf_ctx *x, const config_setting_t *s, void *obj)
{
	struct haproxy_peer *p = obj;
	const char *v = config_setting_get_string(s);
	char q[CONF_QUOTE_MAX];

	if (!conf_hostport_ok(v)) {
		conf_err(x, s, "bad peer address \"%s\" (use \"host:port\" or \"[IPv6]:port\", e.g. address = \"10.0.0.1:10000\";)",
			 conf_quote(q, sizeof(q), v));
		return;
	}
	conf_set_str(x, s, &p->address, v);
}

static const struct conf_kw conf_peer_kws[] = {
	{ "name", CONF_T_STRING, conf_kw_peer_name, NULL, 0, 0, "name = \"lb1\";" },
	{ "address", CONF_T_STRING, conf_kw_peer_address, NULL, 0, 0, "address = \"10.0.0.1:10000\";" },
};

static void conf_kw_haproxy_peers(struct conf_ctx *x, const config_setting_t *s, void *obj)
{
	struct conf *c = obj;
	int n = config_setting_length(s);
	char q[CONF_QUOTE_MAX];

	if (n > CONF_MAX_PEERS) {
		conf_err(x, s, "too many haproxy_peers: %d (at most %d)", n, CONF_MAX_PEERS);
		return;
	}
	if (n == 0)
		return;
	c->peers = calloc((size_t)n, sizeof(*c->peers));
	if (!c->peers) {
		conf_err(x, s, "out of memory");
		return;
	}
	for (int i = 0; i < n; i++) {
		const config_setting_t *e = config_setting_get_elem(s, (unsigned)i);
		struct haproxy_peer *p = &c->peers[c->npeers++];
		char where[48];

		if (config_setting_type(e) != CONFIG_TYPE_GROUP) {
			conf_err(x, e, "haproxy peer #%d must be a group, not %s (e.g. { name = \"lb1\"; address = \"10.0.0.1:10000\"; })",
				 i + 1, conf_type_name(config_setting_type(e)));
			continue;
		}
		snprintf(where, sizeof(where), " in haproxy peer #%d", i + 1);
		conf_walk(x, e, where, conf_peer_kws, COUNTOF(conf_peer_kws), p);
		if (!config_setting_get_member(e, "name") || !config_setting_get_member(e, "address")) {
			conf_err(x, e, "haproxy peer #%d needs both name and address (e.g. { name = \"lb1\"; address = \"10.0.0.1:10000\"; })",
				 i + 1);
			continue;
		}
		for (unsigned j = 0; p->name && j + 1 < c->npeers; j++) {
			if (c->peers[j].name && strcmp(c->peers[j].name, p->name) == 0) {
				conf_err(x, e, "duplicate haproxy peer name \"%s\" (give each node its own name)",
					 conf_quote(q, sizeof(q), p->name));
				break;
			}
		}
	}
}

static void conf_kw_haproxy_local_peer(struct conf_ctx *x, const config_setting_t *s, void *obj)
{
	struct conf *c = obj;
	const char *v = config_setting_get_string(s);
	char q[CONF_QUOTE_MAX];

	if (!conf_token_ok(v, CONF_NAME_MAX, "_.-")) {
		conf_err(x, s, "bad haproxy_local_peer \"%s\" (use the name of one of haproxy_peers)",
			 conf_quote(q, sizeof(q), v));
		return;
	}
	conf_set_str(x, s, &c->local_peer, v);
}

/* ---- tls (issue 11) ------------------------------------------------------ */

/* Every string member of the tls group: a non-empty path or list. */
static void conf_kw_tls_str(struct conf_ctx *x, const config_setting_t *s, void *obj)
{
	struct tls_listen_conf *t = ((struct conf *)obj)->tls;
	const char *name = config_setting_name(s), *v = config_setting_get_string(s);
	char **dst = strcmp(name, "cert") == 0 ? &t->cert : strcmp(name, "key") == 0 ? &t->key :
		     strcmp(name, "ca") == 0 ? &t->ca : strcmp(name, "ciphers") == 0 ? &t->ciphers :
		     strcmp(name, "haproxy_ca") == 0 ? &t->haproxy_ca : &t->haproxy_client_cert;

	if (!v[0]) {
		conf_err(x, s, "%s in tls is empty (give a file path, or remove the setting)", name);
		return;
	}
	conf_set_str(x, s, dst, v);
}

static void conf_kw_tls_min_version(struct conf_ctx *x, const config_setting_t *s, void *obj)
{
	struct tls_listen_conf *t = ((struct conf *)obj)->tls;
	const char *v = config_setting_get_string(s);
	char q[CONF_QUOTE_MAX];

	t->min_version = tls_parse_version(v);
	if (t->min_version == 0)
		conf_err(x, s, "bad min_version \"%s\" in tls (use \"1.2\" or \"1.3\")",
			 conf_quote(q, sizeof(q), v));
}

static const struct conf_kw conf_tls_kws[] = {
	{ "cert", CONF_T_STRING, conf_kw_tls_str, NULL, 0, 0, "cert = \"/etc/keyauth/tls/agent.pem\";" },
	{ "key", CONF_T_STRING, conf_kw_tls_str, NULL, 0, 0, "key = \"/etc/keyauth/tls/agent.key\";" },
	{ "ca", CONF_T_STRING, conf_kw_tls_str, NULL, 0, 0, "ca = \"/etc/keyauth/tls/haproxy-ca.pem\";" },
	{ "ciphers", CONF_T_STRING, conf_kw_tls_str, NULL, 0, 0, "ciphers = \"ECDHE+AESGCM:ECDHE+CHACHA20\";" },
	{ "min_version", CONF_T_STRING, conf_kw_tls_min_version, NULL, 0, 0, "min_version = \"1.2\";" },
	{ "haproxy_ca", CONF_T_STRING, conf_kw_tls_str, NULL, 0, 0, "haproxy_ca = \"/etc/haproxy/keyauth-ca.pem\";" },
	{ "haproxy_client_cert", CONF_T_STRING, conf_kw_tls_str, NULL, 0, 0,
	  "haproxy_client_cert = \"/etc/haproxy/keyauth-client.pem\";" },
};

static void conf_kw_tls(struct conf_ctx *x, const config_setting_t *s, void *obj)
{
	struct conf *c = obj;

	if (c->tls == NULL) {
		c->tls = calloc(1, sizeof(*c->tls));
		if (c->tls == NULL) {
			conf_err(x, s, "out of memory");
			return;
		}
		c->tls->min_version = TLS1_2_VERSION;
	}
	conf_walk(x, s, " in tls", conf_tls_kws, COUNTOF(conf_tls_kws), obj);
}

static const struct conf_kw conf_top_kws[] = {
	{ "listen", CONF_T_SEQ, conf_kw_listen, NULL, 0, 0, "listen = [ \"127.0.0.1:12345\" ];" },
	{ "socket_mode", CONF_T_STRING, conf_kw_socket_mode, NULL, 0, 0, "socket_mode = \"0660\";" },
	{ "workers", CONF_T_INT, NULL, conf_set_workers, 0, CONF_MAX_WORKERS, "workers = 4;" },
	{ "max_connections", CONF_T_INT, NULL, conf_set_max_connections, 1, 1000000,
	  "max_connections = 10000;" },
	{ "max_frame_size", CONF_T_INT, NULL, conf_set_max_frame_size, SPOP_MIN_FRAME_SIZE,
	  SPOP_MAX_FRAME_SIZE, "max_frame_size = 16380;" },
	{ "idle_timeout", CONF_T_INT, NULL, conf_set_idle_timeout, 0, 86400, "idle_timeout = 60;" },
	{ "key_prefix", CONF_T_STRING, conf_kw_key_prefix, NULL, 0, 0, "key_prefix = \"ka_\";" },
	{ "user", CONF_T_STRING, conf_kw_user, NULL, 0, 0, "user = \"keyauth\";" },
	{ "pid_file", CONF_T_STRING, conf_kw_pid_file, NULL, 0, 0,
	  "pid_file = \"/run/keyauth/keyauthd.pid\";" },
	{ "control_socket", CONF_T_STRING, conf_kw_control_socket, NULL, 0, 0,
	  "control_socket = \"/run/keyauth/control.sock\";" },
	{ "metrics_listen", CONF_T_STRING, conf_kw_metrics_listen, NULL, 0, 0,
	  "metrics_listen = \"127.0.0.1:9412\";" },
	{ "store", CONF_T_GROUP, conf_kw_store, NULL, 0, 0,
	  "store = { backend = \"file\"; path = \"/var/lib/keyauth/keys.db\"; };" },
	{ "log", CONF_T_GROUP, conf_kw_log, NULL, 0, 0, "log = { level = \"info\"; target = \"stderr\"; };" },
	{ "routes", CONF_T_LIST, conf_kw_routes, NULL, 0, 0,
	  "routes = ( { name = \"openai\"; context = \"/openai\"; } );" },
	{ "haproxy_peers", CONF_T_LIST, conf_kw_haproxy_peers, NULL, 0, 0,
	  "haproxy_peers = ( { name = \"lb1\"; address = \"10.0.0.1:10000\"; } );" },
	{ "haproxy_local_peer", CONF_T_STRING, conf_kw_haproxy_local_peer, NULL, 0, 0,
	  "haproxy_local_peer = \"lb1\";" },
	{ "rate_limit_window", CONF_T_INT, NULL, conf_set_rate_window, 1, 60, "rate_limit_window = 60;" },
	{ "tls", CONF_T_GROUP, conf_kw_tls, NULL, 0, 0,
	  "tls = { cert = \"/etc/keyauth/tls/agent.pem\"; key = \"/etc/keyauth/tls/agent.key\"; };" },
};

/* ---- load and free ------------------------------------------------------ */

static int conf_defaults(struct conf_ctx *x, struct conf *c)
{
	c->max_connections = 10000;
	c->rate_window_s = 60;
	c->max_frame_size = SPOP_DEFAULT_FRAME_SIZE;
	c->idle_timeout_ms = 60000;
	c->log_level = LOG_INFO;
	c->log_target = LOG_TARGET_STDERR;
	x->socket_mode = 0660;
	if (conf_set_str(x, NULL, &c->path, x->path) == -1 ||
	    conf_set_str(x, NULL, &c->store_path, "/var/lib/keyauth/keys.db") == -1 ||
	    conf_set_str(x, NULL, &c->key_prefix, "ka_") == -1)
		return -1;
	return 0;
}

/* Settles what depends on several settings once the walk is done. */
static void conf_finish(struct conf_ctx *x, struct conf *c, bool have_listen, bool have_routes)
{
	if (!have_listen) {
		struct listen_conf *l = &c->listen[0];

		l->family = LISTEN_TCP;
		l->port = 12345;
		if (conf_set_str(x, NULL, &l->addr, "127.0.0.1:12345") == 0 &&
		    conf_set_str(x, NULL, &l->host, "127.0.0.1") == 0)
			c->nlisten = 1;
	}
	for (unsigned i = 0; i < c->nlisten; i++) {
		if (c->listen[i].family == LISTEN_UNIX)
			c->listen[i].mode = x->socket_mode;
	}
	if (c->workers == 0) {
		long n = sysconf(_SC_NPROCESSORS_ONLN);

		c->workers = n < 1 ? 1 : n > CONF_MAX_WORKERS ? CONF_MAX_WORKERS : (unsigned)n;
	}
	if (c->local_peer) {
		bool found = false;

		for (unsigned i = 0; i < c->npeers; i++)
			found = found || (c->peers[i].name && strcmp(c->peers[i].name, c->local_peer) == 0);
		if (!found)
			conf_err(x, NULL, "haproxy_local_peer \"%s\" is not the name of one of haproxy_peers (add it there or remove the setting)",
				 c->local_peer);
	}
	for (unsigned i = 0; i < c->nlisten; i++)
		if (c->listen[i].tls && c->tls == NULL)
			conf_err(x, NULL, "listen \"%s\" uses TLS but there is no tls group (add tls = { cert = \"...\"; key = \"...\"; };)",
				 c->listen[i].addr);
	if (c->tls != NULL && (c->tls->cert == NULL || c->tls->key == NULL))
		conf_err(x, NULL, "tls needs both cert and key (add cert = \"...\"; key = \"...\"; to tls)");
	if (!have_routes)
		conf_err(x, NULL, "no routes defined (add routes = ( { name = \"openai\"; context = \"/openai\"; } );)");
}

/* Reports libconfig's own failure: unreadable file or syntax error. */
static void conf_err_libconfig(struct conf_ctx *x, const config_t *cfg, int saved_errno)
{
	char msg[512], ebuf[128];
	int line = config_error_line(cfg);

	if (config_error_type(cfg) == CONFIG_ERR_FILE_IO) {
		/* GNU strerror_r: reload may run beside other threads */
		snprintf(msg, sizeof(msg), "cannot read the file: %s",
			 saved_errno ? strerror_r(saved_errno, ebuf, sizeof(ebuf)) : "not a readable file");
		conf_err_line(x, NULL, 0, msg);
		return;
	}
	snprintf(msg, sizeof(msg), "%s (fix the syntax: settings are written name = value;)",
		 config_error_text(cfg) ? config_error_text(cfg) : "syntax error");
	conf_err_line(x, config_error_file(cfg), line > 0 ? (unsigned)line : 0, msg);
}

struct conf *conf_load(const char *path, char *err, size_t errlen)
{
	struct conf_ctx x = { .path = path, .err = err, .errlen = errlen };
	const config_setting_t *root;
	struct conf *c;
	config_t cfg;
	char *slash;
	int saved_errno;

	if (err && errlen)
		err[0] = '\0';
	c = calloc(1, sizeof(*c));
	if (!c) {
		conf_err(&x, NULL, "out of memory");
		return NULL;
	}
	x.c = c;
	if (conf_defaults(&x, c) == -1) {
		conf_free(c);
		return NULL;
	}

	config_init(&cfg);
	/* "@include" names are relative to the main file's directory */
	x.dir = strdup(path);
	slash = x.dir ? strrchr(x.dir, '/') : NULL;
	if (slash) {
		if (slash == x.dir)
			slash++;       /* keep "/" for a file in the root */
		*slash = '\0';
		config_set_include_dir(&cfg, x.dir);  /* libconfig copies it */
	} else {
		free(x.dir);
		x.dir = NULL;
	}
	errno = 0;
	if (config_read_file(&cfg, path) != CONFIG_TRUE) {
		saved_errno = errno;
		conf_err_libconfig(&x, &cfg, saved_errno);
		free(x.dir);
		config_destroy(&cfg);
		conf_free(c);
		return NULL;
	}
	conf_scan_wrapped_ints(&x);
	{
		struct stat st;

		/* The configuration decides who gets in (routes, store path): a
		 * file that other users may write is refused. */
		if (stat(path, &st) == 0 && (st.st_mode & (S_IWGRP | S_IWOTH)) != 0) {
			char msg[256];

			snprintf(msg, sizeof(msg), "writable by group or others (mode %04o), so "
			    "another user could change who gets in (fix: chmod 640 %s)",
			    (unsigned)(st.st_mode & 07777), path);
			conf_err_line(&x, path, 0, msg);
		}
	}
	root = config_root_setting(&cfg);
	conf_walk(&x, root, "", conf_top_kws, COUNTOF(conf_top_kws), c);
	conf_finish(&x, c, config_setting_get_member(root, "listen") != NULL,
		    config_setting_get_member(root, "routes") != NULL);
	free(x.route_name_s);
	free(x.route_ctx_s);
	free(x.dir);
	config_destroy(&cfg);
	if (x.nerr) {
		conf_free(c);
		return NULL;
	}
	return c;
}

void conf_free(struct conf *c)
{
	if (!c)
		return;
	for (unsigned i = 0; i < c->nlisten; i++)
		conf_listen_clear(&c->listen[i]);
	for (unsigned i = 0; i < c->nroutes; i++) {
		free(c->routes[i].name);
		free(c->routes[i].context);
		free(c->routes[i].key_name);
		free(c->routes[i].upstream);
	}
	free(c->routes);
	for (unsigned i = 0; i < c->npeers; i++) {
		free(c->peers[i].name);
		free(c->peers[i].address);
	}
	free(c->peers);
	free(c->local_peer);
	free(c->path);
	free(c->store_path);
	if (c->store_redis != NULL) {
		free(c->store_redis->address);
		free(c->store_redis->username);
		free(c->store_redis->password_file);
		free(c->store_redis->namespace);
		free(c->store_redis);
	}
	if (c->tls != NULL) {
		free(c->tls->cert);
		free(c->tls->key);
		free(c->tls->ca);
		free(c->tls->ciphers);
		free(c->tls->haproxy_ca);
		free(c->tls->haproxy_client_cert);
		free(c->tls);
	}
	free(c->key_prefix);
	free(c->user);
	free(c->pid_file);
	free(c->control_path);
	conf_listen_clear(&c->metrics);
	free(c);
}

/* ---- lookups ------------------------------------------------------------ */

const struct route *conf_route_find(const struct conf *c, const char *name, size_t len)
{
	for (unsigned i = 0; i < c->nroutes; i++) {
		const struct route *r = &c->routes[i];

		if (r->name_len == len && memcmp(r->name, name, len) == 0)
			return r;
	}
	return NULL;
}

const struct route *conf_route_by_context(const struct conf *c, const char *path)
{
	const struct route *best = NULL;

	for (unsigned i = 0; i < c->nroutes; i++) {
		const struct route *r = &c->routes[i];
		size_t n = r->context_len;
		char next;

		if (strncmp(path, r->context, n) != 0)
			continue;
		next = path[n];
		/* "/" ends with the boundary itself */
		if (n > 1 && next != '\0' && next != '/' && next != '?')
			continue;
		if (!best || n > best->context_len)
			best = r;
	}
	return best;
}

const char *route_type_str(enum route_type t)
{
	switch (t) {
	case ROUTE_PROVIDER: return "provider";
	case ROUTE_PROXY:    return "proxy";
	}
	return "unknown";
}

const char *key_location_str(enum key_location l)
{
	switch (l) {
	case KEYLOC_HEADER: return "header";
	case KEYLOC_QUERY:  return "query";
	}
	return "unknown";
}
