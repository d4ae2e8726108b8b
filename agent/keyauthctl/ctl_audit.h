/* SPDX-License-Identifier: Apache-2.0 */
/*
 * ctl_audit: the append-only record of every change keyauthctl makes to the
 * key store (ctl_audit.c), and `keyauthctl audit`, which reads it back.
 *
 * One entry per changed key, written after the store's commit by the
 * transaction layer (ctl_keys_store.c), which knows the set before and after.
 * The file store: JSON lines in "<store path>.audit" (0600, O_APPEND, one
 * write() and an fsync per entry, the store's trust rules). Redis: the stream
 * <namespace>:audit (XADD ... MAXLEN ~ CTL_AUDIT_STREAM_MAX), the entry's JSON
 * in its field "entry". Never a key nor a digest. Single-threaded CLI code.
 */
#ifndef AGENT_CTL_AUDIT_H
#define AGENT_CTL_AUDIT_H

#include <stdbool.h>
#include <stddef.h>

#include <jansson.h>

struct conf;
struct ctl_ctx;
struct ks_entry;
struct ks_set;
struct ctl_audit;

#define CTL_AUDIT_SUFFIX     ".audit"
#define CTL_AUDIT_STREAM_MAX 1000000   /* entries kept in the Redis stream, about */

/* Opens <c>'s audit log for appending, before the store is written, so that
 * a change that could not be recorded is not made. Returns the log, or NULL
 * with <err> (the file fails the trust checks, cannot be opened, Redis is
 * unreachable). The caller closes it with ctl_audit_close. */
struct ctl_audit *ctl_audit_open(const struct ctl_ctx *ctx, const struct conf *c, char *err,
                                 size_t errlen);

/* Appends one entry per key that differs between <before> and the <n>
 * entries of <after> (added, changed or removed, matched by id). <note>: NULL
 * when the commit is known good, else why its outcome is uncertain (recorded
 * as "outcome": "unconfirmed"). Returns the number of entries written, or -1
 * with <err> (some may have been written). */
int ctl_audit_write(struct ctl_audit *a, const struct ks_set *before,
                    const struct ks_entry *after, size_t n, const char *note, char *err,
                    size_t errlen);

/* Appends one entry about no key: <change> ("route_changed", "deployed"),
 * <route> (or NULL) and <fields> ({name: {old, new}}, consumed). 0, or -1
 * with <err>. */
int ctl_audit_event(struct ctl_audit *a, const char *change, const char *route,
                    json_t *fields, char *err, size_t errlen);

/* ctl_audit_close(NULL) is a no-op. */
void ctl_audit_close(struct ctl_audit *a);

#endif /* AGENT_CTL_AUDIT_H */
