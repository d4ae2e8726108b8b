/* SPDX-License-Identifier: Apache-2.0 */
/*
 * test_tls_ctx: agent/keyauthd/tls.c against an OpenSSL client over a non-blocking
 * socketpair, with a throwaway CA, server and client certificates made by the
 * openssl CLI in a temp dir. Both ends run in this thread: pump() alternates
 * them a bounded number of times, so a handshake that cannot finish shows up
 * as a failure, never as a hang.
 */
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>
#include <openssl/err.h>
#include <openssl/ssl.h>

#include "conf.h"
#include "tls.h"

static char dir[64];

static const char *
pth(const char *name)
{
	static char buf[32][128];
	static int i;

	i = (i + 1) % 32;
	snprintf(buf[i], sizeof(buf[i]), "%s/%s", dir, name);
	return buf[i];
}

static int
sh(const char *fmt, ...)
{
	char cmd[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(cmd, sizeof(cmd), fmt, ap);
	va_end(ap);
	return system(cmd);
}

#define NEWKEY "-newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes"

static int
setup(void **state)
{
	(void)state;
	snprintf(dir, sizeof(dir), "/tmp/test_tls_ctx.XXXXXX");
	if (mkdtemp(dir) == NULL)
		return -1;
	if (sh("(cd %s && for ca in ca ca2; do openssl req -x509 " NEWKEY " -keyout $ca.key -out $ca.pem"
	    " -days 2 -subj /CN=test-$ca; done && "
	    "for n in srv:localhost cli:haproxy; do f=${n%%:*}; openssl req " NEWKEY " -keyout $f.key"
	    " -out $f.csr -subj /CN=${n#*:} && openssl x509 -req -in $f.csr -CA ca.pem -CAkey ca.key"
	    " -CAcreateserial -out $f.pem -days 2; done && "
	    "openssl req " NEWKEY " -keyout cli2.key -out cli2.csr -subj /CN=stranger && "
	    "openssl x509 -req -in cli2.csr -CA ca2.pem -CAkey ca2.key -CAcreateserial -out cli2.pem"
	    " -days 2) >/dev/null 2>&1", dir) != 0)
		return -1;
	return 0;
}

static int
teardown(void **state)
{
	(void)state;
	if (dir[0] != '\0')
		sh("rm -rf %s", dir);
	return 0;
}

struct pair {
	int fd[2];               /* [0] server, [1] client */
	SSL_CTX *sctx, *cctx;
	SSL *srv, *cli;
};

static void
pair_open(struct pair *p, const struct tls_conf *tc, const char *ccert, const char *ckey,
          int cli_max)
{
	char err[256] = "";

	memset(p, 0, sizeof(*p));
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, p->fd), 0);
	p->sctx = tls_ctx_new(tc, err, sizeof(err));
	if (p->sctx == NULL)
		fail_msg("tls_ctx_new: %s", err);
	p->srv = tls_conn_new(p->sctx, p->fd[0]);
	assert_non_null(p->srv);
	p->cctx = SSL_CTX_new(TLS_client_method());
	assert_non_null(p->cctx);
	if (cli_max != 0)
		SSL_CTX_set_max_proto_version(p->cctx, cli_max);
	assert_int_equal(SSL_CTX_load_verify_locations(p->cctx, pth("ca.pem"), NULL), 1);
	SSL_CTX_set_verify(p->cctx, SSL_VERIFY_PEER, NULL);
	if (ccert != NULL) {
		assert_int_equal(SSL_CTX_use_certificate_file(p->cctx, ccert, SSL_FILETYPE_PEM), 1);
		assert_int_equal(SSL_CTX_use_PrivateKey_file(p->cctx, ckey, SSL_FILETYPE_PEM), 1);
	}
	p->cli = SSL_new(p->cctx);
	assert_non_null(p->cli);
	SSL_set_fd(p->cli, p->fd[1]);
	SSL_set1_host(p->cli, "localhost");
	SSL_set_connect_state(p->cli);
}

static void
pair_close(struct pair *p)
{
	SSL_free(p->srv);
	SSL_free(p->cli);
	SSL_CTX_free(p->sctx);
	SSL_CTX_free(p->cctx);
	close(p->fd[0]);
	close(p->fd[1]);
}

/* Runs both handshakes: 1 both done, -1 the server refused, 0 stuck. Sets
 * *cli_done to whether the client side finished its part. */
static int
pump(struct pair *p)
{
	int sdone = 0, cdone = 0;

	for (int i = 0; i < 50 && !(sdone && cdone); i++) {
		int want = 0, r;

		if (!cdone) {
			ERR_clear_error();
			r = SSL_do_handshake(p->cli);
			if (r == 1)
				cdone = 1;
			else if (SSL_get_error(p->cli, r) != SSL_ERROR_WANT_READ &&
			    SSL_get_error(p->cli, r) != SSL_ERROR_WANT_WRITE)
				cdone = -1;
		}
		if (!sdone) {
			r = tls_handshake(p->srv, &want);
			if (r == -1)
				return -1;
			if (r == 1)
				sdone = 1;
			else
				assert_true(want == TLS_WANT_READ || want == TLS_WANT_WRITE);
		}
	}
	return sdone && cdone == 1 ? 1 : 0;
}

static void
test_version(void **state)
{
	(void)state;
	assert_int_equal(conf_tls_version("1.2"), TLS1_2_VERSION);
	assert_int_equal(conf_tls_version("1.3"), TLS1_3_VERSION);
	assert_int_equal(conf_tls_version("1.1"), 0);
	assert_int_equal(conf_tls_version(NULL), 0);
}

static void
test_ctx_errors(void **state)
{
	struct tls_conf tc = { 0 };
	char err[256];

	(void)state;
	assert_null(tls_ctx_new(&tc, err, sizeof(err)));
	assert_non_null(strstr(err, "cert and key"));
	tc.cert = pth("missing.pem");
	tc.key = pth("srv.key");
	assert_null(tls_ctx_new(&tc, err, sizeof(err)));
	assert_non_null(strstr(err, "missing.pem"));
	tc.cert = pth("srv.pem");
	tc.key = pth("cli.key");   /* another key: must not match */
	assert_null(tls_ctx_new(&tc, err, sizeof(err)));
	assert_non_null(strstr(err, "cli.key"));
	tc.key = pth("srv.key");
	tc.ciphers = "NO-SUCH-CIPHER";
	assert_null(tls_ctx_new(&tc, err, sizeof(err)));
	assert_non_null(strstr(err, "ciphers"));
	tc.ciphers = NULL;
	tc.ca = pth("missing-ca.pem");
	assert_null(tls_ctx_new(&tc, err, sizeof(err)));
	tc.ca = pth("ca.pem");
	SSL_CTX *ctx = tls_ctx_new(&tc, err, sizeof(err));
	assert_non_null(ctx);
	assert_int_equal(SSL_CTX_get_min_proto_version(ctx), TLS1_2_VERSION);
	assert_true(SSL_CTX_get_options(ctx) & SSL_OP_NO_RENEGOTIATION);
	SSL_CTX_free(ctx);
}

/* Server-only TLS: handshake, bytes both ways, EOF. */
static void
test_roundtrip(void **state)
{
	struct tls_conf tc = { .cert = pth("srv.pem"), .key = pth("srv.key") };
	struct pair p;
	uint8_t buf[64];
	char subj[128];
	int want = 0;
	size_t got = 0;

	(void)state;
	pair_open(&p, &tc, NULL, NULL, 0);
	assert_int_equal(pump(&p), 1);
	tls_peer_subject(p.srv, subj, sizeof(subj));
	assert_string_equal(subj, "-");
	/* Nothing sent yet: the server would block, on read. */
	assert_int_equal(tls_read(p.srv, buf, sizeof(buf), &want), -2);
	assert_int_equal(want, TLS_WANT_READ);
	assert_int_equal(SSL_write(p.cli, "hello", 5), 5);
	assert_int_equal(tls_read(p.srv, buf, sizeof(buf), &want), 5);
	assert_memory_equal(buf, "hello", 5);
	assert_int_equal(tls_write(p.srv, "world!", 6, &want), 6);
	for (int i = 0; i < 10 && got == 0; i++)
		(void)SSL_read_ex(p.cli, buf, sizeof(buf), &got);
	assert_int_equal(got, 6);
	assert_memory_equal(buf, "world!", 6);
	/* A TCP EOF without close_notify reads as a plain EOF. */
	shutdown(p.fd[1], SHUT_WR);
	assert_int_equal(tls_read(p.srv, buf, sizeof(buf), &want), 0);
	pair_close(&p);
}

static void
test_mtls(void **state)
{
	struct tls_conf tc = { .cert = pth("srv.pem"), .key = pth("srv.key"), .ca = pth("ca.pem") };
	struct pair p;
	char subj[128];

	(void)state;
	/* No client certificate: refused in the handshake. */
	pair_open(&p, &tc, NULL, NULL, 0);
	assert_int_equal(pump(&p), -1);
	pair_close(&p);
	/* Same under TLS 1.2, where the refusal comes at a different step. */
	pair_open(&p, &tc, NULL, NULL, TLS1_2_VERSION);
	assert_int_equal(pump(&p), -1);
	pair_close(&p);
	/* A certificate from another CA: refused. */
	pair_open(&p, &tc, pth("cli2.pem"), pth("cli2.key"), 0);
	assert_int_equal(pump(&p), -1);
	pair_close(&p);
	/* The right certificate: accepted, subject readable. */
	pair_open(&p, &tc, pth("cli.pem"), pth("cli.key"), 0);
	assert_int_equal(pump(&p), 1);
	tls_peer_subject(p.srv, subj, sizeof(subj));
	assert_string_equal(subj, "CN=haproxy");
	pair_close(&p);
}

static void
test_min_version(void **state)
{
	struct tls_conf tc = { .cert = pth("srv.pem"), .key = pth("srv.key"),
	                       .min_version = TLS1_3_VERSION };
	struct pair p;

	(void)state;
	pair_open(&p, &tc, NULL, NULL, TLS1_2_VERSION);
	assert_int_equal(pump(&p), -1);
	pair_close(&p);
}

/* Garbage instead of a ClientHello fails at once; silence only waits. */
static void
test_garbage_and_silence(void **state)
{
	struct tls_conf tc = { .cert = pth("srv.pem"), .key = pth("srv.key") };
	struct pair p;
	int want = 0;

	(void)state;
	pair_open(&p, &tc, NULL, NULL, 0);
	assert_int_equal(tls_handshake(p.srv, &want), 0);
	assert_int_equal(want, TLS_WANT_READ);
	assert_int_equal(write(p.fd[1], "\x00\x00\x00\x10garbage-garbage!", 20), 20);
	assert_int_equal(tls_handshake(p.srv, &want), -1);
	pair_close(&p);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_version),
		cmocka_unit_test(test_ctx_errors),
		cmocka_unit_test(test_roundtrip),
		cmocka_unit_test(test_mtls),
		cmocka_unit_test(test_min_version),
		cmocka_unit_test(test_garbage_and_silence),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
