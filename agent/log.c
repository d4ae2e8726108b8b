/* SPDX-License-Identifier: Apache-2.0 */
/*
 * log: key=value lines to stderr or syslog. Thread-safe: the settings are
 * atomics read on each call, and each line goes out in a single write(2).
 */
#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "log.h"

static atomic_int log_lvl = LOG_INFO;
static atomic_int log_tgt = LOG_TARGET_STDERR;
static _Thread_local int log_worker = -1;
static const char *log_ident = "keyauthd";

static const char *
level_str(int level)
{
	switch (level) {
	case LOG_EMERG: case LOG_ALERT: case LOG_CRIT: case LOG_ERR:
		return "error";
	case LOG_WARNING:
		return "warning";
	case LOG_NOTICE:
		return "notice";
	case LOG_INFO:
		return "info";
	default:
		return "debug";
	}
}

void
log_init(const char *ident, int level, enum log_target target)
{
	log_ident = ident;
	log_set(level, target);
}

void
log_set(int level, enum log_target target)
{
	if (target == LOG_TARGET_SYSLOG && atomic_load(&log_tgt) != LOG_TARGET_SYSLOG)
		openlog(log_ident, LOG_PID | LOG_NDELAY, LOG_DAEMON);
	atomic_store(&log_lvl, level);
	atomic_store(&log_tgt, (int)target);
}

int
log_level(void)
{
	return atomic_load(&log_lvl);
}

void
log_set_worker(int id)
{
	log_worker = id;
}

void
log_vmsg(int level, const char *fmt, va_list ap)
{
	char line[1024];
	size_t n = 0;
	int r, saved = errno;

	if (level > atomic_load(&log_lvl))
		return;
	if (atomic_load(&log_tgt) == LOG_TARGET_STDERR) {
		struct timespec ts;
		struct tm tm;

		clock_gettime(CLOCK_REALTIME, &ts);
		gmtime_r(&ts.tv_sec, &tm);
		n = strftime(line, sizeof(line), "ts=%Y-%m-%dT%H:%M:%S", &tm);
		r = snprintf(line + n, sizeof(line) - n, ".%03ldZ ", ts.tv_nsec / 1000000);
		n += (size_t)r;
	}
	r = snprintf(line + n, sizeof(line) - n, "level=%s ", level_str(level));
	n += (size_t)r;
	if (log_worker >= 0) {
		r = snprintf(line + n, sizeof(line) - n, "worker=%d ", log_worker);
		n += (size_t)r;
	}
	r = vsnprintf(line + n, sizeof(line) - n, fmt, ap);
	if (r < 0)
		r = 0;
	n += (size_t)r;
	if (n > sizeof(line) - 2)
		n = sizeof(line) - 2;   /* truncated line: still one line */
	if (atomic_load(&log_tgt) == LOG_TARGET_SYSLOG) {
		line[n] = '\0';
		syslog(level, "%s", line);
	} else {
		line[n++] = '\n';
		/* One write per line; a failed log write has nowhere to go. */
		if (write(STDERR_FILENO, line, n) == -1)
			(void)0;
	}
	errno = saved;
}

void
log_msg(int level, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_vmsg(level, fmt, ap);
	va_end(ap);
}

const char *
log_safe(char *out, size_t outlen, const char *s, size_t len)
{
	size_t i;

	if (outlen == 0)
		return "";
	if (len > outlen - 1)
		len = outlen - 1;
	for (i = 0; i < len; i++) {
		char ch = s[i];

		if ((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
		    (ch >= '0' && ch <= '9') || (ch != '\0' && strchr("-_.:/@[]", ch) != NULL))
			out[i] = ch;
		else
			out[i] = '?';
	}
	out[len] = '\0';
	return out;
}
