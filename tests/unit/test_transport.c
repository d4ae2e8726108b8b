/* SPDX-License-Identifier: Apache-2.0 */
/*
 * test_transport: the plain transport (agent/keyauthd/transport.c) over a
 * non-blocking unix socketpair: bytes both ways, would-block on an empty
 * socket and on a full one, partial writes, EOF, a reset peer, the raw
 * discard; and conn_flags_str, the printer of struct conn's flags.
 */
#include <errno.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "conn.h"
#include "transport.h"

static void
pair(struct transport *t, int *peer)
{
	int sv[2];

	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv), 0);
	transport_plain_init(t, sv[0]);
	*peer = sv[1];
}

static void
test_plain_moves_bytes_both_ways(void **state)
{
	struct transport t;
	char buf[16];
	size_t n = 0;
	int peer;

	(void)state;
	pair(&t, &peer);
	assert_null(t.ops->handshake);
	assert_true(t.flags & TRANSPORT_F_READY);
	assert_int_equal(write(peer, "hello", 5), 5);
	assert_int_equal(t.ops->recv(&t, buf, sizeof(buf), &n), TR_PROGRESS);
	assert_int_equal(n, 5);
	assert_memory_equal(buf, "hello", 5);
	assert_false(t.ops->pending(&t));
	assert_int_equal(t.ops->send(&t, "world", 5, &n), TR_PROGRESS);
	assert_int_equal(n, 5);
	assert_int_equal(read(peer, buf, sizeof(buf)), 5);
	assert_memory_equal(buf, "world", 5);
	t.ops->close(&t);
	assert_int_equal(t.fd, -1);
	close(peer);
}

static void
test_plain_would_block_and_partial_writes(void **state)
{
	static char big[1 << 20];
	struct transport t;
	char buf[16];
	size_t n = 0, total = 0;
	int peer, sz = 4096;

	(void)state;
	pair(&t, &peer);
	assert_int_equal(t.ops->recv(&t, buf, sizeof(buf), &n), TR_WANT_READ);
	/* Small buffers: a 1 MB send can only be taken in part. */
	assert_int_equal(setsockopt(t.fd, SOL_SOCKET, SO_SNDBUF, &sz, sizeof(sz)), 0);
	assert_int_equal(t.ops->send(&t, big, sizeof(big), &n), TR_PROGRESS);
	assert_true(n > 0 && n < sizeof(big));
	total = n;
	while (t.ops->send(&t, big + total, sizeof(big) - total, &n) == TR_PROGRESS)
		total += n;
	assert_int_equal(t.ops->send(&t, big + total, sizeof(big) - total, &n), TR_WANT_WRITE);
	assert_true(total < sizeof(big));
	t.ops->close(&t);
	close(peer);
}

static void
test_plain_eof_reset_and_discard(void **state)
{
	struct transport t;
	char buf[16];
	size_t n = 0;
	int peer;

	(void)state;
	pair(&t, &peer);
	assert_int_equal(write(peer, "xyz", 3), 3);
	assert_int_equal(transport_discard(&t), TR_PROGRESS);
	assert_int_equal(transport_discard(&t), TR_WANT_READ);
	t.ops->shutdown(&t);   /* our write side: the peer sees EOF */
	assert_int_equal(read(peer, buf, sizeof(buf)), 0);
	close(peer);
	assert_int_equal(t.ops->recv(&t, buf, sizeof(buf), &n), TR_EOF);
	assert_int_equal(transport_discard(&t), TR_EOF);
	/* Writing to a gone peer is an error, never a SIGPIPE. */
	assert_int_equal(t.ops->send(&t, "x", 1, &n), TR_ERROR);
	t.ops->close(&t);
}

static void
test_flags_str_names_every_bit(void **state)
{
	char buf[128];

	(void)state;
	assert_string_equal(conn_flags_str(0, buf, sizeof(buf)), "-");
	assert_string_equal(conn_flags_str(CONN_F_RD_CLOSED, buf, sizeof(buf)), "rd_closed");
	assert_string_equal(conn_flags_str(CONN_F_RD_CLOSED | CONN_F_WR_SHUT | CONN_F_HANDSHAKE |
	    CONN_F_WANT_READ | CONN_F_WANT_WRITE, buf, sizeof(buf)),
	    "rd_closed,wr_shut,handshake,want_read,want_write");
	assert_string_equal(conn_flags_str(CONN_F_HANDSHAKE | CONN_F_WANT_WRITE, buf, sizeof(buf)),
	    "handshake,want_write");
	assert_string_equal(conn_flags_str(CONN_F_WR_SHUT | 1u << 31, buf, sizeof(buf)), "wr_shut,?");
}

static void
test_flags_str_truncates_and_terminates(void **state)
{
	char buf[12];

	(void)state;
	memset(buf, 'x', sizeof(buf));
	conn_flags_str(CONN_F_RD_CLOSED | CONN_F_WR_SHUT, buf, sizeof(buf));
	assert_int_equal(strlen(buf), sizeof(buf) - 1);
	assert_memory_equal(buf, "rd_closed,w", 11);
	assert_ptr_equal(conn_flags_str(CONN_F_WR_SHUT, buf, 0), buf);
	conn_flags_str(0, buf, 1);
	assert_string_equal(buf, "");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_plain_moves_bytes_both_ways),
		cmocka_unit_test(test_plain_would_block_and_partial_writes),
		cmocka_unit_test(test_plain_eof_reset_and_discard),
		cmocka_unit_test(test_flags_str_names_every_bit),
		cmocka_unit_test(test_flags_str_truncates_and_terminates),
	};

	signal(SIGPIPE, SIG_IGN);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
