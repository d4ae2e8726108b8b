/* SPDX-License-Identifier: Apache-2.0 */
/*
 * spop_expect: cmocka expectations on what keyauthd answers over SPOP, shared
 * by the integration programs.
 *
 * Header-only, on purpose: these assert (cmocka), and the objects of
 * tests/lib/ are also linked into the benchmarks, which have no cmocka. Every
 * wait is bounded (io_ms(), scaled by TEST_TIMEOUT_MULTIPLIER). Failures name
 * the case by <what>, never by the key.
 */
#ifndef TESTS_LIB_SPOP_EXPECT_H
#define TESTS_LIB_SPOP_EXPECT_H

#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "fixture.h"
#include "proc.h"
#include "spop.h"
#include "spop_client.h"

/* The bound of one exchange: 3 s, scaled. */
static inline int io_ms(void)
{
	return tp_scaled_ms(3000);
}

static inline struct spc_conn *open_conn(const char *addr)
{
	struct spc_conn *c = spc_open(addr, io_ms());

	assert_non_null(c);
	return c;
}

/* A connection past its HELLO (as HAProxy 3.x sends it). */
static inline struct spc_conn *open_ready(const char *addr)
{
	struct spc_conn *c = open_conn(addr);

	assert_true(spc_handshake(c, io_ms()));
	return c;
}

/* Sends raw <bytes> and expects AGENT-DISCONNECT with one of the statuses
 * <want_a>/<want_b>, then EOF. */
static inline void expect_disconnect(struct spc_conn *c, const void *bytes, size_t len, int want_a,
                                     int want_b, const char *what)
{
	struct spc_frame f;
	int rc, status;

	/* The agent may close before it has read everything: its answer is
	 * still readable after EPIPE/ECONNRESET. */
	if (len && spc_send_raw(c, bytes, len, io_ms()) == -1 && errno != EPIPE &&
	    errno != ECONNRESET)
		fail_msg("%s: send failed (errno %d)", what, errno);
	rc = spc_read_frame(c, &f, io_ms());
	if (rc != SPC_FRAME)
		fail_msg("%s: expected AGENT-DISCONNECT, got rc=%d", what, rc);
	if (f.type != SPOP_FRM_AGENT_DISCON)
		fail_msg("%s: expected AGENT-DISCONNECT, got frame type %u", what, f.type);
	assert_int_equal(f.flags & SPOP_FL_FIN, SPOP_FL_FIN);
	assert_int_equal(f.sid, 0);
	assert_int_equal(f.fid, 0);
	status = spc_disconnect_status(f.payload, f.payload_len, NULL, 0);
	spc_frame_free(&f);
	if (status != want_a && status != want_b)
		fail_msg("%s: DISCONNECT status %d, want %d", what, status, want_a);
	rc = spc_wait_eof(c, io_ms());
	if (rc != SPC_EOF)
		fail_msg("%s: connection not closed after DISCONNECT (rc=%d)", what, rc);
}

/* Checks the invariants of every keyauth ACK. */
static inline void check_ack_shape(const struct spc_ack *a)
{
	assert_true(a->nactions >= 2);
	assert_true(a->all_set_var_txn);
	assert_true(a->has_ok);
	assert_true(a->has_status);
	assert_false(a->wrong_type);
	assert_false(a->truncated);
}

/* One query on <c>; checks status, ok, and key_id/owner against <k> (NULL: no
 * stored key may be reported). <what> names the case (never the key).
 * Allowed answers carry no message and, on these routes (no identity
 * headers), no owner: only what HAProxy's rendered rules read (issue 19). */
static inline void expect_verdict(struct spc_conn *c, const char *route, const char *key,
                                  const char *status, const struct tf_key *k, const char *what)
{
	struct spc_ack a;

	if (spc_query(c, route, key, &a, io_ms()) != 0)
		fail_msg("%s: no ACK", what);
	check_ack_shape(&a);
	if (strcmp(a.status, status) != 0)
		fail_msg("%s: status \"%s\", want \"%s\"", what, a.status, status);
	if (a.ok != (strcmp(status, "ok") == 0))
		fail_msg("%s: ok=%d with status %s", what, a.ok, status);
	if (a.ok) {
		if (a.has_message)
			fail_msg("%s: an allowed answer carries a message", what);
		if (a.has_owner)
			fail_msg("%s: an allowed answer carries the owner (no rule reads it)", what);
	} else {
		assert_true(a.has_message);
		assert_true(a.message[0] != '\0');
	}
	if (k) {
		if (!a.has_key_id || strcmp(a.key_id, k->e.id) != 0)
			fail_msg("%s: key_id \"%s\", want \"%s\"", what, a.key_id, k->e.id);
		if (!a.ok && (!a.has_owner || strcmp(a.owner, k->e.owner) != 0))
			fail_msg("%s: owner \"%s\", want \"%s\"", what, a.owner, k->e.owner);
	} else if (a.has_key_id) {
		fail_msg("%s: unexpected key_id \"%s\"", what, a.key_id);
	}
	/* The reason text is shown to clients: it must not echo the key. */
	if (key && strlen(key) >= 8 && strstr(a.message, key))
		fail_msg("%s: message echoes the key", what);
}

/* Queries until the status is <status> or <ms> (scaled) pass; returns the
 * delay in ms, or -1. */
static inline long long wait_status(struct spc_conn *c, const char *route, const char *key,
                                    const char *status, int ms)
{
	long long t0 = tp_now_ms(), deadline = t0 + tp_scaled_ms(ms);
	struct spc_ack a;

	for (;;) {
		if (spc_query(c, route, key, &a, io_ms()) != 0)
			fail_msg("no ACK while waiting for status %s", status);
		if (strcmp(a.status, status) == 0)
			return tp_now_ms() - t0;
		if (tp_now_ms() >= deadline)
			return -1;
		tp_nap_ms(5);
	}
}

/* True if a line logged after byte <from> is an error or a warning; with
 * <what> (may be NULL), that line must also contain <what>. */
static inline bool new_error_line(const char *log, size_t from, const char *what)
{
	const char *const err[] = { "level=error", what, NULL };
	const char *const warn[] = { "level=warning", what, NULL };

	return tp_log_line_since(log, from, err) || tp_log_line_since(log, from, warn);
}

/* The agent wrote a log, and it holds none of the keys registered with the
 * fixture (tf_key_make, tf_key_track). */
static inline void check_log_has_no_key(const struct tf_agent *a)
{
	assert_true(tp_file_size(a->log) > 0);
	if (tf_log_has_no_key(a->log) != 0)
		fail_msg("the log %s contains a key (named above)", a->log);
}

#endif /* TESTS_LIB_SPOP_EXPECT_H */
