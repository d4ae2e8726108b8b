/* SPDX-License-Identifier: Apache-2.0 */
/*
 * log: one line per event, key=value, to stderr or syslog.
 *
 * Every line starts with ts= (stderr only), level= and, on worker threads,
 * worker=; the caller supplies "event=... k=v". A line is written with one
 * write(2) so lines from several threads never interleave. Nothing here knows
 * about keys: callers log key ids, never keys or Authorization values.
 */
#ifndef AGENT_LOG_H
#define AGENT_LOG_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <syslog.h>

/* Where lines go; keyauth.conf's log.target. */
enum log_target {
	LOG_TARGET_STDERR = 0,
	LOG_TARGET_SYSLOG = 1,
};

void log_init(const char *ident, int level, enum log_target target);
void log_set(int level, enum log_target target);
int log_level(void);
/* Worker id added to lines logged by this thread (-1: none). */
void log_set_worker(int id);

/* Warnings and errors repeated word for word are limited: per thread, a text
 * is written at most 5 times a second; the repeats over that are counted and
 * reported in one "event=log_suppressed count=N of_event=E" line when the
 * thread next logs after the second is over. */
void log_msg(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void log_vmsg(int level, const char *fmt, va_list ap) __attribute__((format(printf, 2, 0)));

#define log_err(...)     log_msg(LOG_ERR, __VA_ARGS__)
#define log_warning(...) log_msg(LOG_WARNING, __VA_ARGS__)
#define log_notice(...)  log_msg(LOG_NOTICE, __VA_ARGS__)
#define log_info(...)    log_msg(LOG_INFO, __VA_ARGS__)
#define log_debug(...)   log_msg(LOG_DEBUG, __VA_ARGS__)

/* The clock of the repetition limit, in milliseconds: for tests. NULL
 * restores the default (CLOCK_MONOTONIC_COARSE). */
void log_set_clock(uint64_t (*now_ms)(void));

/* Quotes <s> for a log value: letters, digits and -_.:/@ pass, anything else
 * becomes '?', at most <max> bytes, always NUL-terminated in <out>. For data
 * that is not secret but comes from outside (routes, addresses). */
const char *log_safe(char *out, size_t outlen, const char *s, size_t len);

/* A logfmt value: <s> (<len> bytes; (size_t)-1: up to its NUL) between double
 * quotes with '"' and '\\' escaped by a backslash, \n \r \t as such and every
 * other control byte as \u00XX (a JSON string, which logfmt parsers read).
 * <always> false leaves a non-empty value without space, '=', '"', '\\' or
 * control bytes bare. Cut to fit <out> without splitting an escape; the
 * closing quote is always there. Every value that comes from outside (an
 * error text, a path, an address, a name) goes through it: LOG_Q / LOG_V
 * give a buffer that lives until the end of the enclosing statement's block.
 * Never pass a key. */
const char *log_quote(char *out, size_t outlen, const char *s, size_t len, int always);

#define LOG_QMAX 1024
#define LOG_Q(s)      log_quote((char[LOG_QMAX]){ 0 }, LOG_QMAX, (s), (size_t)-1, 1)
#define LOG_QN(s, n)  log_quote((char[LOG_QMAX]){ 0 }, LOG_QMAX, (s), (size_t)(n), 1)
#define LOG_V(s)      log_quote((char[LOG_QMAX]){ 0 }, LOG_QMAX, (s), (size_t)-1, 0)

#endif /* AGENT_LOG_H */
