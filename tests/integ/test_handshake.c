/* SPDX-License-Identifier: Apache-2.0 */
/*
 * test_handshake: keyauthd's HELLO handshake, on one daemon (KEYAUTHD,
 * default build/keyauthd) with the protocol programs' config and keys
 * (tests/lib/fixture.c): HELLOs as HAProxy 2.6 and 3.x send them, a version
 * list and no capabilities, the AGENT-HELLO's max-frame-size (the minimum of
 * both, then the limit), health checks, the refusals (unsupported version,
 * no or too small max-frame-size, NOTIFY before HELLO) and HAPROXY-DISCONNECT.
 * The teardown checks that the daemon's log holds none of the keys.
 *
 * Keys are never printed: assertions compare statuses, ids and owners only.
 * Set KEYAUTH_TEST_KEEP=1 to keep the temporary directory (it holds keys).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "fixture.h"
#include "spop_expect.h"

static struct tf_agent *const d1 = &tf_protocol.d;
static struct tf_keyset *const K = &tf_protocol.k;

/* Expects an AGENT-HELLO in <f> and returns its fields. */
static void expect_agent_hello(const struct spc_frame *f, struct spc_agent_hello *h)
{
	assert_int_equal(f->type, SPOP_FRM_AGENT_HELLO);
	assert_int_equal(f->flags, SPOP_FL_FIN);
	assert_int_equal(f->sid, 0);
	assert_int_equal(f->fid, 0);
	assert_int_equal(spc_agent_hello_parse(f->payload, f->payload_len, h), 0);
	assert_true(h->has_version);
	assert_string_equal(h->version, "2.0");
	assert_true(h->has_max_frame_size);
	assert_true(h->has_capabilities);
	assert_string_equal(h->capabilities, "pipelining");
}

/* HELLO <o> gets an AGENT-HELLO (with max-frame-size <mfs>, unless 0), and
 * then the valid key gets "ok" on that connection. */
static void hello_then_verdict(const struct spc_hello_opts *o, uint64_t mfs, const char *what)
{
	struct spc_conn *c = open_conn(d1->uaddr);
	struct spc_agent_hello h;
	struct spc_frame f;

	assert_int_equal(spc_hello(c, o, &f, io_ms()), SPC_FRAME);
	expect_agent_hello(&f, &h);
	if (mfs)
		assert_int_equal(h.max_frame_size, mfs);
	spc_frame_free(&f);
	expect_verdict(c, "openai", K->valid.key, "ok", &K->valid, what);
	spc_close(c);
}

/* <n> bytes (n > 0: built) sent on <c> get AGENT-DISCONNECT <status>, then
 * the close. */
static void refused(struct spc_conn *c, const uint8_t *buf, int n, int status, const char *what)
{
	assert_true(n > 0);
	expect_disconnect(c, buf, (size_t)n, status, status, what);
	spc_close(c);
}

/* A HELLO with <versions> and <max_frame_size> (0: none) is refused with
 * <status>. */
static void hello_refused(const char *versions, uint32_t max_frame_size, int status,
                          const char *what)
{
	struct spc_hello_opts o = { .versions = versions, .max_frame_size = max_frame_size,
	                            .capabilities = "pipelining" };
	uint8_t buf[256];

	refused(open_conn(d1->uaddr), buf, spc_build_hello(buf, sizeof(buf), &o), status, what);
}

/* HAProxy 2.6: "pipelining,async" and an engine-id; the agent answers with
 * pipelining only, and serves NOTIFYs afterwards. */
static void test_hello_haproxy_26(void **state)
{
	struct spc_hello_opts o = { .versions = "2.0", .max_frame_size = 16380,
	                            .capabilities = "pipelining,async",
	                            .engine_id = "c0f397ef-7e6b-4a69-a1d0-3c1b5b1f8a11" };

	(void)state;
	hello_then_verdict(&o, 16380, "2.6 connection");
}

static void test_hello_haproxy_3x(void **state)
{
	struct spc_hello_opts o = { .versions = "2.0", .max_frame_size = 16380,
	                            .capabilities = "pipelining" };

	(void)state;
	hello_then_verdict(&o, 16380, "3.x connection");
}

/* A version list that includes 2.0 among others is accepted; no capability
 * at all is accepted too. */
static void test_hello_version_list_and_no_capabilities(void **state)
{
	struct spc_hello_opts o = { .versions = "1.0, 2.0", .max_frame_size = 16380 };

	(void)state;
	hello_then_verdict(&o, 0, "no-capability connection");
}

/* max-frame-size = min(ours, theirs); afterwards the negotiated value is the
 * limit: one byte more is DISCONNECT 3. */
static void test_agent_hello_frame_size_is_the_minimum(void **state)
{
	struct spc_hello_opts small = { .versions = "2.0", .max_frame_size = 1024,
	                                .capabilities = "pipelining" };
	struct spc_hello_opts big = { .versions = "2.0", .max_frame_size = 65532,
	                              .capabilities = "pipelining" };
	struct spc_conn *c = open_conn(d1->uaddr);
	struct spc_agent_hello h;
	struct spc_frame f;
	uint8_t over[4 + 1025];

	(void)state;
	assert_int_equal(spc_hello(c, &big, &f, io_ms()), SPC_FRAME);
	expect_agent_hello(&f, &h);
	assert_int_equal(h.max_frame_size, 16380);
	spc_frame_free(&f);
	spc_close(c);

	c = open_conn(d1->uaddr);
	assert_int_equal(spc_hello(c, &small, &f, io_ms()), SPC_FRAME);
	expect_agent_hello(&f, &h);
	assert_int_equal(h.max_frame_size, 1024);
	spc_frame_free(&f);
	/* A NOTIFY frame of length 1025: header 03 00000001 01 01, name padding. */
	memset(over, 0, sizeof(over));
	over[2] = 0x04;
	over[3] = 0x01;  /* 0x0401 = 1025 */
	over[4] = SPOP_FRM_NOTIFY;
	over[8] = 0x01;
	over[9] = 0x01;
	over[10] = 0x01;
	expect_disconnect(c, over, sizeof(over), SPOP_ERR_TOO_BIG, SPOP_ERR_TOO_BIG,
	                  "frame one byte over the negotiated size");
	spc_close(c);
}

static void test_hello_healthcheck_gets_agent_hello_then_close(void **state)
{
	struct spc_hello_opts o = { .versions = "2.0", .max_frame_size = 16380,
	                            .capabilities = "", .healthcheck = true };
	struct spc_conn *c = open_conn(d1->uaddr);
	struct spc_agent_hello h;
	struct spc_frame f;
	uint8_t buf[128];
	int n;

	(void)state;
	n = spc_build_hello(buf, sizeof(buf), &o);
	assert_int_equal(n, 82);  /* the spop-check.vtc HELLO, byte for byte */
	assert_int_equal(spc_send_raw(c, buf, (size_t)n, io_ms()), 0);
	assert_int_equal(spc_read_frame(c, &f, io_ms()), SPC_FRAME);
	expect_agent_hello(&f, &h);
	spc_frame_free(&f);
	assert_int_equal(spc_wait_eof(c, io_ms()), SPC_EOF);
	spc_close(c);
}

static void test_hello_unsupported_version_is_8(void **state)
{
	(void)state;
	hello_refused("1.0", 16380, SPOP_ERR_BAD_VSN, "version 1.0");
}

static void test_hello_missing_max_frame_size_is_6(void **state)
{
	(void)state;
	hello_refused("2.0", 0, SPOP_ERR_NO_FRAME_SIZE, "no max-frame-size");
}

static void test_hello_max_frame_size_100_is_9(void **state)
{
	(void)state;
	hello_refused("2.0", 100, SPOP_ERR_BAD_FRAME_SIZE, "max-frame-size 100");
}

static void test_notify_before_hello_is_4(void **state)
{
	uint8_t buf[512];
	int n = spc_build_keyauth(buf, sizeof(buf), 1, 1, NULL, "openai", K->unstored.key,
	                          SPC_KEY_STRLEN);

	(void)state;
	refused(open_conn(d1->uaddr), buf, n, SPOP_ERR_INVALID, "NOTIFY before HELLO");
}

static void test_haproxy_disconnect_is_answered_then_closed(void **state)
{
	uint8_t buf[256];
	int n = spc_build_disconnect(buf, sizeof(buf), 0, "normal");

	(void)state;
	refused(open_ready(d1->uaddr), buf, n, SPOP_ERR_NONE, "HAPROXY-DISCONNECT");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_hello_haproxy_26),
		cmocka_unit_test(test_hello_haproxy_3x),
		cmocka_unit_test(test_hello_version_list_and_no_capabilities),
		cmocka_unit_test(test_agent_hello_frame_size_is_the_minimum),
		cmocka_unit_test(test_hello_healthcheck_gets_agent_hello_then_close),
		cmocka_unit_test(test_hello_unsupported_version_is_8),
		cmocka_unit_test(test_hello_missing_max_frame_size_is_6),
		cmocka_unit_test(test_hello_max_frame_size_100_is_9),
		cmocka_unit_test(test_notify_before_hello_is_4),
		cmocka_unit_test(test_haproxy_disconnect_is_answered_then_closed),
	};

	return cmocka_run_group_tests_name("keyauthd handshake", tests, tf_protocol_setup,
	                                   tf_agent_teardown);
}
