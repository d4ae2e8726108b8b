/* SPDX-License-Identifier: Apache-2.0 */
/*
 * ctl_util: helpers shared by keyauthctl's commands.
 *
 * Messages, the common options (-c, --now), the clock, argument parsers
 * (durations, dates, counts), time output, and the atomic file writer used
 * for rendered HAProxy files. Single-threaded CLI code.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "conf.h"
#include "ctl.h"

void
ctl_err(const struct ctl_ctx *ctx, const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "%s: ", ctx->prog);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

int
ctl_usage_err(const struct ctl_ctx *ctx, const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "%s: ", ctx->prog);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "\nTry '%s --help'.\n", ctx->prog);
	return CTL_EXIT_USAGE;
}

/* Unix seconds, decimal, no sign; bounded so that adding ten years and a
 * grace period cannot overflow. */
static int
parse_unixtime(const char *s, int64_t *out)
{
	unsigned long v;

	if (ctl_parse_uint(s, 0, 253402300799UL /* 9999-12-31 */, &v) == -1)
		return -1;
	*out = (int64_t)v;
	return 0;
}

int
ctl_common_opt(struct ctl_ctx *ctx, int opt, const char *arg)
{
	switch (opt) {
	case 'c':
		ctx->conf_path = arg;
		return 0;
	case CTL_OPT_NOW:
		if (parse_unixtime(arg, &ctx->now) == -1)
			return ctl_usage_err(ctx, "--now: expected Unix seconds, got '%s'", arg);
		ctx->now_set = true;
		return 0;
	default:
		return ctl_usage_err(ctx, "unexpected option");
	}
}

int64_t
ctl_now(const struct ctl_ctx *ctx)
{
	const char *env;
	int64_t t;

	if (ctx->now_set)
		return ctx->now;
	env = getenv("KEYAUTH_NOW");
	if (env != NULL && *env != '\0' && parse_unixtime(env, &t) == 0)
		return t;
	return (int64_t)time(NULL);
}

struct conf *
ctl_conf_load(const struct ctl_ctx *ctx)
{
	char err[4096];
	struct conf *c;

	err[0] = '\0';
	c = conf_load(ctx->conf_path, err, sizeof(err));
	if (c == NULL) {
		size_t n = strlen(err);

		while (n > 0 && err[n - 1] == '\n')
			err[--n] = '\0';
		fprintf(stderr, "%s: configuration %s is not valid:\n%s\n", ctx->prog,
		        ctx->conf_path, err[0] != '\0' ? err : "(no details)");
	}
	return c;
}

int
ctl_parse_uint(const char *s, unsigned long min, unsigned long max, unsigned long *out)
{
	unsigned long v;
	char *end;

	if (s == NULL || *s < '0' || *s > '9')
		return -1;
	errno = 0;
	v = strtoul(s, &end, 10);
	if (errno != 0 || *end != '\0' || v < min || v > max)
		return -1;
	*out = v;
	return 0;
}

int
ctl_parse_duration(const char *s, int64_t *out)
{
	unsigned long v;
	int64_t unit;
	size_t len = strlen(s);
	char num[24];

	if (len < 2 || len > sizeof(num) - 1)
		return -1;
	switch (s[len - 1]) {
	case 's': unit = 1; break;
	case 'm': unit = 60; break;
	case 'h': unit = 3600; break;
	case 'd': unit = 86400; break;
	default: return -1;
	}
	memcpy(num, s, len - 1);
	num[len - 1] = '\0';
	if (ctl_parse_uint(num, 0, (unsigned long)CTL_MAX_DAYS * 86400, &v) == -1)
		return -1;
	if ((int64_t)v * unit > (int64_t)CTL_MAX_DAYS * 86400)
		return -1;
	*out = (int64_t)v * unit;
	return 0;
}

int
ctl_parse_date(const char *s, int64_t *out)
{
	struct tm tm, back;
	time_t t;
	int y, m, d;

	if (strlen(s) != 10 || s[4] != '-' || s[7] != '-')
		return -1;
	for (int i = 0; i < 10; i++)
		if (i != 4 && i != 7 && (s[i] < '0' || s[i] > '9'))
			return -1;
	y = (s[0] - '0') * 1000 + (s[1] - '0') * 100 + (s[2] - '0') * 10 + (s[3] - '0');
	m = (s[5] - '0') * 10 + (s[6] - '0');
	d = (s[8] - '0') * 10 + (s[9] - '0');
	if (y < 1970 || m < 1 || m > 12 || d < 1 || d > 31)
		return -1;
	memset(&tm, 0, sizeof(tm));
	tm.tm_year = y - 1900;
	tm.tm_mon = m - 1;
	tm.tm_mday = d;
	t = timegm(&tm);
	/* timegm normalises 2025-02-30 to March 2nd: a round trip catches it. */
	if (t == (time_t)-1 || gmtime_r(&t, &back) == NULL ||
	    back.tm_year != tm.tm_year || back.tm_mon != tm.tm_mon || back.tm_mday != d)
		return -1;
	*out = (int64_t)t;
	return 0;
}

void
ctl_fmt_time(int64_t t, char *buf, size_t len)
{
	time_t tt = (time_t)t;
	struct tm tm;

	if (gmtime_r(&tt, &tm) == NULL || strftime(buf, len, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
		snprintf(buf, len, "@%lld", (long long)t);
}

int
ctl_write_atomic(const char *dir, const char *name, const void *data, size_t len,
                 unsigned mode, char *err, size_t errlen)
{
	char tmp[PATH_MAX], dst[PATH_MAX];
	const char *p = data;
	size_t left = len;
	int fd, dfd;

	if ((size_t)snprintf(dst, sizeof(dst), "%s/%s", dir, name) >= sizeof(dst) ||
	    (size_t)snprintf(tmp, sizeof(tmp), "%s/.%s.XXXXXX", dir, name) >= sizeof(tmp)) {
		snprintf(err, errlen, "%s/%s: path too long", dir, name);
		return -1;
	}
	fd = mkstemp(tmp);
	if (fd == -1) {
		snprintf(err, errlen, "%s: cannot create a temporary file: %s", dir, strerror(errno));
		return -1;
	}
	while (left > 0) {
		ssize_t w = write(fd, p, left);

		if (w == -1) {
			if (errno == EINTR)
				continue;
			goto fail;
		}
		p += w;
		left -= (size_t)w;
	}
	if (fchmod(fd, (mode_t)mode) == -1 || fsync(fd) == -1)
		goto fail;
	if (close(fd) == -1) {
		fd = -1;
		goto fail;
	}
	fd = -1;
	if (rename(tmp, dst) == -1)
		goto fail;
	/* The rename is durable only once the directory is on disk too. */
	dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd != -1) {
		(void)fsync(dfd);
		close(dfd);
	}
	return 0;
fail:
	snprintf(err, errlen, "%s: %s", dst, strerror(errno));
	if (fd != -1)
		close(fd);
	unlink(tmp);
	return -1;
}

int
ctl_file_give_dir_owner(int fd, const char *path)
{
	char dir[PATH_MAX], *slash;
	struct stat st;

	if (geteuid() != 0 || snprintf(dir, sizeof(dir), "%s", path) >= (int)sizeof(dir))
		return 0;
	slash = strrchr(dir, '/');
	if (slash == NULL)
		snprintf(dir, sizeof(dir), ".");
	else
		*(slash == dir ? slash + 1 : slash) = '\0';
	if (stat(dir, &st) == 0 && st.st_uid != 0 && fchown(fd, st.st_uid, st.st_gid) == -1)
		return -1;
	return 0;
}

/* Makes one component; <whole> is the path the user gave, for messages. */
static int
mkdir_one(const char *p, const char *whole, mode_t mode, char *err, size_t errlen)
{
	struct stat st;

	if (mkdir(p, mode) == 0) {
		/* mkdir(2) applies the umask; the mode asked for is the one wanted. */
		if (chmod(p, mode) == -1) {
			snprintf(err, errlen, "%s: chmod: %s", p, strerror(errno));
			return -1;
		}
		return 0;
	}
	if (errno != EEXIST) {
		snprintf(err, errlen, "cannot create directory %s: %s", p, strerror(errno));
		return -1;
	}
	if (stat(p, &st) == -1) {
		snprintf(err, errlen, "%s: %s", p, strerror(errno));
		return -1;
	}
	if (!S_ISDIR(st.st_mode)) {
		if (strcmp(p, whole) == 0)
			snprintf(err, errlen, "%s exists and is not a directory", p);
		else
			snprintf(err, errlen, "%s: %s exists and is not a directory", whole, p);
		return -1;
	}
	return 0;
}

int
ctl_mkdir_p(const char *path, unsigned mode, char *err, size_t errlen)
{
	char buf[PATH_MAX];
	size_t n = strlen(path);

	if (n == 0 || n >= sizeof(buf)) {
		snprintf(err, errlen, "'%s': %s", path, n == 0 ? "empty path" : "path too long");
		return -1;
	}
	memcpy(buf, path, n + 1);
	while (n > 1 && buf[n - 1] == '/')
		buf[--n] = '\0';
	for (char *s = buf + 1; *s != '\0'; s++) {
		if (*s != '/' || s[-1] == '/')
			continue;
		*s = '\0';
		if (mkdir_one(buf, path, (mode_t)mode, err, errlen) == -1)
			return -1;
		*s = '/';
	}
	return mkdir_one(buf, buf, (mode_t)mode, err, errlen);
}

int
ctl_read_file(const char *path, char **data, size_t *len, char *err, size_t errlen)
{
	FILE *f;
	char *buf = NULL;
	size_t cap = 0, n = 0;

	f = fopen(path, "rb");
	if (f == NULL) {
		if (errno == ENOENT)
			return 1;
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return -1;
	}
	for (;;) {
		size_t r;

		if (cap - n < 4096) {
			char *nb = realloc(buf, cap + 65536);

			if (nb == NULL) {
				snprintf(err, errlen, "%s: out of memory", path);
				goto fail;
			}
			buf = nb;
			cap += 65536;
		}
		r = fread(buf + n, 1, cap - n - 1, f);
		n += r;
		if (r == 0)
			break;
	}
	if (ferror(f)) {
		snprintf(err, errlen, "%s: read error", path);
		goto fail;
	}
	fclose(f);
	buf[n] = '\0';
	*data = buf;
	*len = n;
	return 0;
fail:
	fclose(f);
	free(buf);
	return -1;
}
