/* SPDX-License-Identifier: Apache-2.0 */
/*
 * test_connections: keyauthd's connections, on one daemon (KEYAUTHD,
 * default build/keyauthd) with the protocol programs' config and keys
 * (tests/lib/fixture.c) on a unix socket and a loopback TCP port: 1,000
 * pipelined NOTIFYs (stream ids of every varint size), malformed input
 * answered by AGENT-DISCONNECT while another connection keeps being served,
 * peers that vanish, reset or just connect, the TCP listener, and a second
 * agent on the same port (refused). The teardown checks that the daemon's
 * log holds none of the keys. Not covered here: idle timeout,
 * max_connections (test_limits, test_hostile), write back-pressure (unit
 * tests and the e2e suite with real HAProxy).
 *
 * Keys are never printed: assertions compare statuses, ids and owners only.
 * Set KEYAUTH_TEST_KEEP=1 to keep the temporary directory (it holds keys).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>

#include <cmocka.h>

#include "fixture.h"
#include "spop_expect.h"

static struct tf_agent *const d1 = &tf_protocol.d;
static struct tf_keyset *const K = &tf_protocol.k;

/* ---- pipelining ----------------------------------------------------------------------- */

#define PIPELINED 1000

/* Stream ids on both sides of every varint size class, 0 and the maximum. */
static const uint64_t pipe_sids[] = {
	0, 1, 127, 128, 239, 240, 241, 2287, 2288, 264431, 264432, 33818863, 33818864,
	4294967295ull, 4328786159ull, 4328786160ull, 9223372036854775807ull,
	18446744073709551615ull,
};
#define NSIDS (sizeof(pipe_sids) / sizeof(pipe_sids[0]))

static void test_pipelined_1000_notifies(void **state)
{
	struct spc_conn *c = open_ready(d1->uaddr);
	static const char *const want[4] = { "ok", "invalid", "missing", "forbidden" };
	static uint8_t out[PIPELINED * 160];
	static bool seen[PIPELINED];
	size_t len = 0;
	unsigned answered = 0;
	long long t0, deadline;

	(void)state;
	memset(seen, 0, sizeof(seen));
	for (unsigned i = 0; i < PIPELINED; i++) {
		const char *key = i % 4 == 0 ? K->valid.key : i % 4 == 1 ? K->unstored.key :
		                  i % 4 == 2 ? NULL : K->other.key;
		/* fid = i crosses the 1/2-byte boundary at 240. */
		int n = spc_build_keyauth(out + len, sizeof(out) - len, pipe_sids[i % NSIDS], i, NULL,
		                          "openai", key, SPC_KEY_STRLEN);

		assert_true(n > 0);
		len += (size_t)n;
	}
	t0 = tp_now_ms();
	assert_int_equal(spc_send_raw(c, out, len, tp_scaled_ms(10000)), 0);
	deadline = t0 + tp_scaled_ms(10000);
	while (answered < PIPELINED) {
		struct spc_frame f;
		struct spc_ack a;
		int left = (int)(deadline - tp_now_ms());
		int rc = spc_read_frame(c, &f, left > 0 ? left : 0);

		if (rc != SPC_FRAME)
			fail_msg("only %u of %u ACKs (rc=%d)", answered, PIPELINED, rc);
		assert_int_equal(f.type, SPOP_FRM_ACK);
		if (f.fid >= PIPELINED || seen[f.fid])
			fail_msg("unexpected or repeated fid %llu", (unsigned long long)f.fid);
		if (f.sid != pipe_sids[f.fid % NSIDS])
			fail_msg("fid %llu: sid %llu, want %llu", (unsigned long long)f.fid,
			         (unsigned long long)f.sid, (unsigned long long)pipe_sids[f.fid % NSIDS]);
		seen[f.fid] = true;
		assert_int_equal(spc_ack_parse(f.payload, f.payload_len, &a), 0);
		spc_frame_free(&f);
		check_ack_shape(&a);
		if (strcmp(a.status, want[f.fid % 4]) != 0)
			fail_msg("fid %llu: status %s, want %s", (unsigned long long)f.fid, a.status,
			         want[f.fid % 4]);
		answered++;
	}
	print_message("%u pipelined NOTIFYs answered in %lld ms\n", answered, tp_now_ms() - t0);
	/* Nothing more: no duplicate or stray frame. */
	{
		struct spc_frame f;

		assert_int_equal(spc_read_frame(c, &f, 50), SPC_TIMEOUT);
	}
	spc_close(c);
}

/* ---- malformed input --------------------------------------------------------------- */

struct bad_case {
	const char *what;
	bool before_hello;
	const char *hex;         /* frame bytes (tu-style hex without quoting) */
	int status_a, status_b;
	int patch_off;           /* >0: build a valid keyauth NOTIFY, then set byte */
	uint8_t patch_val;
};

static size_t hex_to_bytes(const char *hex, uint8_t *out, size_t cap)
{
	size_t n = 0;
	int hi = -1;

	for (const char *p = hex; *p; p++) {
		int v;

		if (*p >= '0' && *p <= '9')
			v = *p - '0';
		else if (*p >= 'a' && *p <= 'f')
			v = *p - 'a' + 10;
		else
			continue;
		if (hi < 0) {
			hi = v;
		} else {
			assert_true(n < cap);
			out[n++] = (uint8_t)(hi << 4 | v);
			hi = -1;
		}
	}
	return n;
}

static void test_malformed_input_gets_disconnect_others_served(void **state)
{
	static const struct bad_case cases[] = {
		{ "zero length", false, "00000000", 4, 4, 0, 0 },
		{ "length 3", false, "00000003 03 0000", 4, 4, 0, 0 },
		{ "length 6", false, "00000006 03 00000001 00", 4, 4, 0, 0 },
		{ "oversized length", false, "00003ffd 03 00000001 01 01", 3, 3, 0, 0 },
		{ "huge length", false, "ffffffff 03 00000001 01 01", 3, 3, 0, 0 },
		{ "truncated sid varint", false, "00000007 03 00000001 f0 80", 4, 4, 0, 0 },
		/* keyauth, 2 args: route = STR with a length varint cut by the frame end */
		{ "truncated varint in payload", false,
		  "00000018 03 00000001 01 01 07 6b657961757468 02 05 726f757465 08 f0", 4, 4, 0, 0 },
		/* keyauth, NB-ARGS 5, only one argument present */
		{ "NB-ARGS past the end", false,
		  "0000001e 03 00000001 01 01 07 6b657961757468 05 05 726f757465 08 06 6f70656e6169",
		  4, 4, 0, 0 },
		{ "garbage payload", false,
		  "00000013 03 00000001 01 01 ffffffffffffffffffffffff", 4, 4, 0, 0 },
		/* argument value of reserved type 10 */
		{ "unknown data type", false,
		  "00000018 03 00000001 01 01 07 6b657961757468 01 05 726f757465 0a 01", 4, 4, 0, 0 },
		{ "FIN clear", false, NULL, 10, 10, 8, 0x00 },
		{ "type 0 (fragment)", false, NULL, 10, 10, 4, 0x00 },
		/* Before HELLO, an HTTP request reads as a huge length or as junk. */
		{ "HTTP instead of HELLO", true, "474554202f20485454502f312e310d0a0d0a", 3, 4, 0, 0 },
	};
	struct spc_conn *other = open_ready(d1->uaddr);

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const struct bad_case *bc = &cases[i];
		struct spc_conn *c = open_conn(d1->uaddr);
		uint8_t bytes[256];
		size_t n;

		if (!bc->before_hello)
			assert_true(spc_handshake(c, io_ms()));
		if (bc->hex) {
			n = hex_to_bytes(bc->hex, bytes, sizeof(bytes));
			/* Self-check of the hand-written lengths (not for the length cases). */
			if (n >= 11 && bc->status_a == 4 && bytes[4] == 3)
				assert_int_equal(((size_t)bytes[2] << 8 | bytes[3]) + 4, n);
		} else {
			int m = spc_build_keyauth(bytes, sizeof(bytes), 1, 1, NULL, "openai",
			                          K->unstored.key, SPC_KEY_STRLEN);

			assert_true(m > 0);
			n = (size_t)m;
			bytes[bc->patch_off] = bc->patch_val;
		}
		expect_disconnect(c, bytes, n, bc->status_a, bc->status_b, bc->what);
		spc_close(c);
		/* The already-open connection is still served. */
		expect_verdict(other, "openai", K->valid.key, "ok", &K->valid, bc->what);
	}
	spc_close(other);
}

/* A peer that vanishes mid-frame, resets, or connects and leaves does not
 * disturb the others, and is not logged as an error. */
static void test_abrupt_close_others_served(void **state)
{
	struct spc_conn *other = open_ready(d1->uaddr);
	struct spc_conn *c;
	struct linger rst = { .l_onoff = 1, .l_linger = 0 };
	size_t from = tp_file_size(d1->log);
	uint8_t buf[512];
	int n = spc_build_keyauth(buf, sizeof(buf), 1, 1, NULL, "openai", K->unstored.key,
	                          SPC_KEY_STRLEN);

	(void)state;
	assert_true(n > 10);
	c = open_ready(d1->uaddr);
	assert_int_equal(spc_send_raw(c, buf, (size_t)n - 5, io_ms()), 0);
	spc_close(c);
	expect_verdict(other, "openai", K->valid.key, "ok", &K->valid, "after half a frame and EOF");
	/* TCP reset with a NOTIFY unanswered. */
	c = open_ready(d1->taddr);
	assert_int_equal(spc_send_raw(c, buf, (size_t)n, io_ms()), 0);
	assert_int_equal(setsockopt(c->fd, SOL_SOCKET, SO_LINGER, &rst, sizeof(rst)), 0);
	spc_close(c);
	c = open_ready(d1->taddr);
	assert_int_equal(setsockopt(c->fd, SOL_SOCKET, SO_LINGER, &rst, sizeof(rst)), 0);
	assert_int_equal(spc_send_raw(c, buf, (size_t)n - 5, io_ms()), 0);
	spc_close(c);
	expect_verdict(other, "openai", K->valid.key, "ok", &K->valid, "after resets");
	/* Connect and close at once, repeatedly. */
	for (int i = 0; i < 20; i++)
		spc_close(open_conn(i % 2 ? d1->uaddr : d1->taddr));
	expect_verdict(other, "openai", K->valid.key, "ok", &K->valid, "after bare connects");
	if (new_error_line(d1->log, from, NULL))
		fail_msg("a peer's close or reset was logged as an error or warning");
	spc_close(other);
}

static void test_tcp_listener(void **state)
{
	struct spc_conn *c = open_ready(d1->taddr);

	(void)state;
	expect_verdict(c, "openai", K->valid.key, "ok", &K->valid, "TCP valid");
	expect_verdict(c, "openai", K->revoked.key, "revoked", &K->revoked, "TCP revoked");
	expect_verdict(c, "openai", NULL, "missing", NULL, "TCP missing");
	spc_close(c);
}

/* SO_REUSEPORT would let a second agent share the port and silently take half
 * of HAProxy's connections: a second keyauthd on a busy address must refuse
 * to start, and the first must keep serving. */
static void test_second_agent_on_same_port_refuses_to_start(void **state)
{
	struct tf_opts o = { .listen_addr = d1->taddr, .workers = 2 };
	struct tf_agent second;
	struct spc_conn *c;
	pid_t pid;
	int status = 0;

	(void)state;
	assert_int_equal(tf_agent_named(&second, d1->dir, "second-agent"), 0);
	assert_int_equal(tf_agent_conf(&second, &o), 0);   /* the same store, too */
	pid = tp_spawn_keyauthd(second.conf, second.log);
	assert_true(pid > 0);
	assert_int_equal(tp_wait_exit(pid, 5000, &status), 0);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 1);
	assert_true(tp_log_contains(second.log, "Address already in use"));
	c = open_ready(d1->taddr);
	expect_verdict(c, "openai", K->valid.key, "ok", &K->valid, "first agent still serves");
	spc_close(c);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_pipelined_1000_notifies),
		cmocka_unit_test(test_malformed_input_gets_disconnect_others_served),
		cmocka_unit_test(test_abrupt_close_others_served),
		cmocka_unit_test(test_tcp_listener),
		cmocka_unit_test(test_second_agent_on_same_port_refuses_to_start),
	};

	return cmocka_run_group_tests_name("keyauthd connections", tests, tf_protocol_setup,
	                                   tf_agent_teardown);
}
