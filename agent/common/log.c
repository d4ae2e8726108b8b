/* SPDX-License-Identifier: Apache-2.0 */
/*
 * log: key=value lines to stderr or syslog. Thread-safe: the settings are
 * atomics read on each call, and each line goes out in a single write(2).
 */
#include <errno.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
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

/* Writes one line: prefix, then <msg>. */
static void
log_write(int level, const char *msg)
{
	char line[1024 + 128];
	size_t n = 0;
	int r;

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
	r = snprintf(line + n, sizeof(line) - n, "%s", msg);
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
}

/* ---- repetition limit ------------------------------------------------------------
 *
 * A failing disk, a full fd table or a misbehaving peer can make the same
 * warning or error fire thousands of times a second, drowning everything
 * else. Per thread (so without locks), the last LOG_REPEAT_SLOTS distinct
 * warning/error texts are remembered: within LOG_REPEAT_WINDOW_MS of its first
 * line, a text passes LOG_REPEAT_MAX times; the repeats after that are only
 * counted, and once the window is over the next log call of that thread
 * writes one "event=log_suppressed count=N of_event=E" line at the same
 * level. LIMITS: a thread that never logs again never writes that summary;
 * lines that differ in any byte (a connection id) are not repeats.
 */
#define LOG_REPEAT_MAX        5
#define LOG_REPEAT_WINDOW_MS  1000
#define LOG_REPEAT_SLOTS      8

struct log_repeat {
	uint64_t hash;                /* FNV-1a of the text; 0: free slot */
	uint64_t start_ms;            /* first line of the window */
	unsigned seen;                /* lines of this text in the window */
	uint64_t used;                /* log_rep_tick at the last line: LRU eviction */
	int level;
	char event[48];               /* the text's event= value, for the summary */
};

static _Thread_local struct log_repeat log_rep[LOG_REPEAT_SLOTS];
static _Thread_local unsigned log_rep_pending;   /* slots with suppressed lines */
static _Thread_local uint64_t log_rep_tick;

static uint64_t
log_clock_default(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static uint64_t (*_Atomic log_clock)(void) = log_clock_default;

void
log_set_clock(uint64_t (*now_ms)(void))
{
	atomic_store(&log_clock, now_ms != NULL ? now_ms : log_clock_default);
}

static uint64_t
log_hash(const char *s)
{
	uint64_t h = 14695981039346656037u;

	for (; *s != '\0'; s++)
		h = (h ^ (unsigned char)*s) * 1099511628211u;
	return h != 0 ? h : 1;
}

/* Ends <r>'s window: the summary if anything was suppressed, then frees it. */
static void
log_rep_end(struct log_repeat *r)
{
	char msg[128];

	if (r->seen > LOG_REPEAT_MAX) {
		snprintf(msg, sizeof(msg), "event=log_suppressed count=%u of_event=%s window_ms=%d",
		    r->seen - LOG_REPEAT_MAX, r->event, LOG_REPEAT_WINDOW_MS);
		log_rep_pending--;
		log_write(r->level, msg);
	}
	r->hash = 0;
}

/* True if <msg> (at <level>, a warning or worse) is a repeat to suppress. */
static bool
log_rep_suppress(int level, const char *msg, uint64_t now)
{
	struct log_repeat *r, *oldest = &log_rep[0];
	uint64_t h = log_hash(msg);
	const char *ev;
	size_t i, n;

	for (i = 0; i < LOG_REPEAT_SLOTS; i++) {
		r = &log_rep[i];
		if (r->hash != 0 && now - r->start_ms >= LOG_REPEAT_WINDOW_MS)
			log_rep_end(r);
		if (r->hash == h) {
			r->used = ++log_rep_tick;
			if (++r->seen == LOG_REPEAT_MAX + 1)
				log_rep_pending++;
			return r->seen > LOG_REPEAT_MAX;
		}
		if (oldest->hash != 0 && (r->hash == 0 || r->used < oldest->used))
			oldest = r;
	}
	if (oldest->hash != 0)
		log_rep_end(oldest);
	oldest->hash = h;
	oldest->start_ms = now;
	oldest->seen = 1;
	oldest->used = ++log_rep_tick;
	oldest->level = level;
	ev = strstr(msg, "event=");
	n = ev != NULL ? strcspn(ev + 6, " ") : 0;
	if (n >= sizeof(oldest->event))
		n = sizeof(oldest->event) - 1;
	memcpy(oldest->event, ev != NULL ? ev + 6 : "", n);
	oldest->event[n] = '\0';
	if (n == 0)
		strcpy(oldest->event, "-");
	return false;
}

/* Writes the summaries of windows that are over (any level's call). */
static void
log_rep_flush(uint64_t now)
{
	size_t i;

	for (i = 0; i < LOG_REPEAT_SLOTS && log_rep_pending > 0; i++)
		if (log_rep[i].hash != 0 && log_rep[i].seen > LOG_REPEAT_MAX &&
		    now - log_rep[i].start_ms >= LOG_REPEAT_WINDOW_MS)
			log_rep_end(&log_rep[i]);
}

/* Length of the escape starting at <p> (a backslash), or 0 if it is cut
 * before <end>. */
static size_t
log_esc_len(const char *p, const char *end)
{
	size_t n = p + 1 < end && p[1] == 'u' ? 6 : 2;

	return (size_t)(end - p) >= n ? n : 0;
}

/*
 * A line cut at <n> bytes (the buffer holding at least <n> + 2) may end
 * inside a quoted value or an escape: drops the partial escape and closes the
 * quote, so that the line still parses. Returns the new length.
 */
static size_t
log_close_cut(char *msg, size_t n)
{
	const char *end = msg + n;
	size_t i = 0, keep = 0;
	int inq = 0;

	while (i < n) {
		if (inq && msg[i] == '\\') {
			size_t e = log_esc_len(msg + i, end);

			if (e == 0)
				break;
			i += e;
		} else {
			if (msg[i] == '"')
				inq = !inq;
			i++;
		}
		keep = i;
	}
	if (inq)
		msg[keep++] = '"';
	msg[keep] = '\0';
	return keep;
}

const char *
log_quote(char *out, size_t outlen, const char *s, size_t len, int always)
{
	static const char hex[] = "0123456789abcdef";
	size_t i, o = 0;
	int bare = !always;

	if (outlen < 3)
		return outlen > 0 ? (out[0] = '\0', out) : "";
	if (s == NULL)
		s = "";
	if (len == (size_t)-1)
		len = strlen(s);
	for (i = 0; i < len && bare; i++) {
		unsigned char ch = (unsigned char)s[i];

		if (ch <= ' ' || ch == 0x7f || ch == '"' || ch == '\\' || ch == '=')
			bare = 0;
	}
	if (bare && len > 0 && len < outlen) {
		memcpy(out, s, len);
		out[len] = '\0';
		return out;
	}
	out[o++] = '"';
	for (i = 0; i < len; i++) {
		unsigned char ch = (unsigned char)s[i];
		char e[6];
		size_t n = 0;

		switch (ch) {
		case '"': case '\\': e[n++] = '\\'; e[n++] = (char)ch; break;
		case '\n': e[n++] = '\\'; e[n++] = 'n'; break;
		case '\r': e[n++] = '\\'; e[n++] = 'r'; break;
		case '\t': e[n++] = '\\'; e[n++] = 't'; break;
		default:
			if (ch < ' ' || ch == 0x7f) {
				memcpy(e, "\\u00", 4);
				e[4] = hex[ch >> 4];
				e[5] = hex[ch & 15];
				n = 6;
			} else {
				e[n++] = (char)ch;
			}
		}
		if (o + n + 2 > outlen)   /* room for the quote and the NUL */
			break;
		memcpy(out + o, e, n);
		o += n;
	}
	out[o++] = '"';
	out[o] = '\0';
	return out;
}

void
log_vmsg(int level, const char *fmt, va_list ap)
{
	char msg[1024];
	int saved = errno, r;

	if (level > atomic_load(&log_lvl))
		return;
	r = vsnprintf(msg, sizeof(msg), fmt, ap);
	if (r < 0)
		msg[0] = '\0';
	else if ((size_t)r >= sizeof(msg))
		log_close_cut(msg, sizeof(msg) - 2);
	if (level <= LOG_WARNING) {
		if (log_rep_suppress(level, msg, atomic_load(&log_clock)())) {
			errno = saved;
			return;
		}
	} else if (log_rep_pending > 0) {
		log_rep_flush(atomic_load(&log_clock)());
	}
	log_write(level, msg);
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
