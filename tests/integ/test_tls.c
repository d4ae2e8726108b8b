/* SPDX-License-Identifier: Apache-2.0 */
/*
 * test_tls: keyauthd's TLS listeners end to end, with a blocking
 * OpenSSL client speaking SPOP (frames built by tests/lib/spop_client) and a
 * throwaway CA, server and client certificates made by the openssl CLI.
 * Covers verdicts over TLS beside a plain listener, mutual TLS, garbage and
 * stalled handshakes beside a working connection, a client below the TLS 1.2
 * floor (every refusal counted in the stats' handshake failures), and
 * certificate reload on SIGHUP (good and bad) while a TLS connection stays
 * open.
 */
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "ctl.h"
#include "fixture.h"
#include "proc.h"
#include "spop.h"
#include "spop_client.h"

#define IO_MS 5000

static char certdir[TP_PATH_MAX];

static const char *
cpath(const char *name)
{
	static char buf[32][TP_PATH_MAX + 32];
	static int i;

	i = (i + 1) % 32;
	snprintf(buf[i], sizeof(buf[i]), "%s/%s", certdir, name);
	return buf[i];
}

#define NEWKEY "-newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes"

/* ca + ca2 (a stranger), srv (CN=localhost), srv2 (CN=localhost2, for the
 * reload), cli (CN=haproxy, signed by ca). */
static int
make_certs(void)
{
	char cmd[2048];

	if (tp_mkdtemp("tlscerts", certdir, sizeof(certdir)) == -1)
		return -1;
	snprintf(cmd, sizeof(cmd),
	    "(cd %s && for ca in ca ca2; do openssl req -x509 " NEWKEY " -keyout $ca.key"
	    " -out $ca.pem -days 2 -subj /CN=test-$ca || exit 1; done && "
	    "for n in srv:localhost srv2:localhost2 cli:haproxy; do f=${n%%:*}; openssl req " NEWKEY
	    " -keyout $f.key -out $f.csr -subj /CN=${n#*:} && openssl x509 -req -in $f.csr -CA ca.pem"
	    " -CAkey ca.key -CAcreateserial -out $f.pem -days 2 || exit 1; done &&"
	    " echo garbage > bad.pem) >/dev/null 2>&1", certdir);
	return system(cmd) == 0 ? 0 : -1;
}

/* The agent's config: a plain and a TLS listener, one worker, a control
 * socket; the TLS listener serves <cert> and <key>, and asks for a client
 * certificate signed by <ca> unless it is NULL. */
static int
write_conf(struct tf_agent *d, const char *cert, const char *key, const char *ca)
{
	char tls[3 * TP_PATH_MAX + 64], cabuf[TP_PATH_MAX + 16] = "";
	struct tf_opts o = { .listen = TF_TCP | TF_TLS, .control = true, .log_level = "info",
	                     .settings = tls };

	if (ca != NULL)
		snprintf(cabuf, sizeof(cabuf), "ca = \"%s\";", ca);
	snprintf(tls, sizeof(tls), "tls = { cert = \"%s\"; key = \"%s\"; %s };", cert, key, cabuf);
	return tf_agent_conf(d, &o);
}

/* The agent's TLS counter <name> ("handshakes" or "handshake_failures")
 * from its control socket's stats; -1 if absent. */
static long long
tls_stat(const struct tf_agent *d, const char *name)
{
	char pat[64];
	char *s, *tls, *at;
	long long v = -1;

	s = ctl_control_call(d->ctl, "stats");
	if (s == NULL)
		return -1;
	snprintf(pat, sizeof(pat), "\"%s\":", name);
	tls = strstr(s, "\"tls\":{");
	if (tls != NULL && (at = strstr(tls, pat)) != NULL)
		v = strtoll(at + strlen(pat), NULL, 10);
	free(s);
	return v;
}

/* Waits up to IO_MS for the TLS counter <name> to reach <want>. */
static long long
tls_stat_wait(const struct tf_agent *d, const char *name, long long want)
{
	long long v = tls_stat(d, name);

	for (long long end = tp_now_ms() + IO_MS; v != want && tp_now_ms() < end;
	     v = tls_stat(d, name))
		tp_nap_ms(5);
	return v;
}

static int
daemon_start(struct tf_agent *d, const char *ca)
{
	if (tf_agent_init(d, "tls") == -1 || write_conf(d, cpath("srv.pem"), cpath("srv.key"), ca) == -1)
		return -1;
	return tf_agent_start(d);
}

/* Stops the daemon (a clean exit 0 is part of every test: sanitizers report
 * through the exit status) and removes its directory (kept when unclean). */
static void
daemon_stop(struct tf_agent *d)
{
	assert_int_equal(tf_agent_down(d), 0);
}

/* ---- a blocking TLS SPOP client ----------------------------------------- */

struct tcli {
	int fd;
	SSL_CTX *ctx;
	SSL *ssl;
};

/* Connects and handshakes; with <cert> presents it. 0, or -1 when the
 * handshake (or, TLS 1.3, the first read after it) was refused. */
static int
tcli_open(struct tcli *t, const char *addr, const char *cert, const char *key)
{
	struct timeval tv = { .tv_sec = IO_MS / 1000 };

	memset(t, 0, sizeof(*t));
	t->fd = spc_connect_fd(addr, IO_MS);
	assert_true(t->fd >= 0);
	assert_int_equal(fcntl(t->fd, F_SETFL, 0), 0);   /* blocking, bounded below */
	setsockopt(t->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(t->fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	t->ctx = SSL_CTX_new(TLS_client_method());
	assert_non_null(t->ctx);
	assert_int_equal(SSL_CTX_load_verify_locations(t->ctx, cpath("ca.pem"), NULL), 1);
	SSL_CTX_set_verify(t->ctx, SSL_VERIFY_PEER, NULL);
	if (cert != NULL) {
		assert_int_equal(SSL_CTX_use_certificate_file(t->ctx, cert, SSL_FILETYPE_PEM), 1);
		assert_int_equal(SSL_CTX_use_PrivateKey_file(t->ctx, key, SSL_FILETYPE_PEM), 1);
	}
	t->ssl = SSL_new(t->ctx);
	assert_non_null(t->ssl);
	SSL_set_fd(t->ssl, t->fd);
	return SSL_connect(t->ssl) == 1 ? 0 : -1;
}

static void
tcli_close(struct tcli *t)
{
	SSL_free(t->ssl);
	SSL_CTX_free(t->ctx);
	if (t->fd >= 0)
		close(t->fd);
	ERR_clear_error();
}

static int
tcli_send(struct tcli *t, const uint8_t *p, size_t len)
{
	size_t put = 0;

	return SSL_write_ex(t->ssl, p, len, &put) == 1 && put == len ? 0 : -1;
}

static int
tcli_read_exact(struct tcli *t, uint8_t *p, size_t len)
{
	while (len > 0) {
		size_t got = 0;

		if (SSL_read_ex(t->ssl, p, len, &got) != 1)
			return -1;
		p += got;
		len -= got;
	}
	return 0;
}

/* Reads one frame into <buf>; returns its type or -1. */
static int
tcli_frame(struct tcli *t, uint8_t *buf, size_t cap, struct spop_frame *f)
{
	size_t n;

	if (tcli_read_exact(t, buf, 4) == -1)
		return -1;
	n = (size_t)buf[0] << 24 | (size_t)buf[1] << 16 | (size_t)buf[2] << 8 | buf[3];
	if (n + 4 > cap || tcli_read_exact(t, buf + 4, n) == -1)
		return -1;
	if (spop_frame_next(buf, n + 4, (uint32_t)cap, f) <= 0)
		return -1;
	return f->type;
}

/* HELLO, then one keyauth NOTIFY: true when an ACK with a status came back. */
static bool
tcli_verdict(struct tcli *t, bool hello, uint64_t fid)
{
	struct spc_hello_opts ho = { .versions = "2.0", .max_frame_size = 16380,
	                             .capabilities = "pipelining" };
	uint8_t out[1024], in[16384];
	struct spop_frame f;
	struct spc_ack a;
	int n;

	if (hello) {
		n = spc_build_hello(out, sizeof(out), &ho);
		if (n <= 0 || tcli_send(t, out, (size_t)n) == -1 ||
		    tcli_frame(t, in, sizeof(in), &f) != SPOP_FRM_AGENT_HELLO)
			return false;
	}
	/* Not a real key: the verdict is a denial, which is what we check. */
	n = spc_build_keyauth(out, sizeof(out), 1, fid, NULL, "openai", "ka_notakey",
	    SPC_KEY_STRLEN);
	if (n <= 0 || tcli_send(t, out, (size_t)n) == -1 ||
	    tcli_frame(t, in, sizeof(in), &f) != SPOP_FRM_ACK)
		return false;
	memset(&a, 0, sizeof(a));
	return spc_ack_parse(f.payload, f.payload_len, &a) == 0 && a.has_status && a.has_ok &&
	    !a.ok && f.fid == fid;
}

/* The CN the server presented. */
static void
tcli_server_cn(struct tcli *t, char *buf, size_t len)
{
	X509 *x = SSL_get1_peer_certificate(t->ssl);

	buf[0] = '\0';
	if (x != NULL) {
		X509_NAME_get_text_by_NID(X509_get_subject_name(x), NID_commonName, buf, (int)len);
		X509_free(x);
	}
}

/* ---- tests ------------------------------------------------------------------ */

static void
test_verdicts_over_tls_and_plain(void **state)
{
	struct tf_agent d;
	struct tcli t;
	struct spc_conn *p;
	struct spc_ack a;

	(void)state;
	assert_int_equal(daemon_start(&d, NULL), 0);
	assert_int_equal(tcli_open(&t, d.tls_addr, NULL, NULL), 0);
	assert_true(tcli_verdict(&t, true, 1));
	assert_true(tcli_verdict(&t, false, 2));
	tcli_close(&t);
	/* The plain listener is untouched. */
	p = spc_open(d.taddr, IO_MS);
	assert_non_null(p);
	assert_true(spc_handshake(p, IO_MS));
	assert_int_equal(spc_query(p, "openai", "ka_notakey", &a, IO_MS), 0);
	assert_true(a.has_status);
	spc_close(p);
	daemon_stop(&d);
}

/* Appends frames of an unknown type (skipped by the agent, PROTOCOL.md §1.2)
 * totalling <pad> >= 11 bytes. */
static size_t
put_padding(uint8_t *p, size_t pad)
{
	size_t done = 0;

	while (pad > 0) {
		size_t n = pad > 8192 ? 8192 : pad;

		if (pad - n != 0 && pad - n < 11)
			n = pad - 11;
		memset(p + done, 0, n);
		p[done + 0] = (uint8_t)((n - 4) >> 24);
		p[done + 1] = (uint8_t)((n - 4) >> 16);
		p[done + 2] = (uint8_t)((n - 4) >> 8);
		p[done + 3] = (uint8_t)(n - 4);
		p[done + 4] = 0x30;       /* unknown frame type */
		p[done + 8] = 0x01;       /* FIN; sid 0, fid 0, zero payload */
		done += n;
		pad -= n;
	}
	return done;
}

/* 1000 NOTIFYs written as full 16 KB TLS records, after padding: the last
 * record holds NOTIFYs and is larger than <rx>, so after the socket is
 * drained, decrypted bytes still wait inside OpenSSL (the socket will not
 * signal them: conn re-feeds them) while backpressure holds; every ACK must
 * come back, in order. */
static void
test_pipelined_notifies_over_tls(void **state)
{
	struct tf_agent d;
	struct tcli t;
	uint8_t *out, in[16384];
	size_t len = 0, cap = 1000 * 128;
	struct spop_frame f;

	(void)state;
	assert_int_equal(daemon_start(&d, NULL), 0);
	assert_int_equal(tcli_open(&t, d.tls_addr, NULL, NULL), 0);
	assert_true(tcli_verdict(&t, true, 1));
	out = malloc(cap + 3 * 16384);
	assert_non_null(out);
	for (uint64_t i = 0; i < 1000; i++) {
		int n = spc_build_keyauth(out + len, cap - len, 2, i + 1, NULL, "openai",
		    "ka_notakey", SPC_KEY_STRLEN);

		assert_true(n > 0);
		len += (size_t)n;
	}
	{
		size_t pad = (16384 - len % 16384) % 16384, done;

		if (pad < 11)
			pad += 16384;
		memmove(out + pad, out, len);
		done = put_padding(out, pad);
		assert_int_equal(done, pad);
		len += pad;
		assert_int_equal(len % 16384, 0);
		for (size_t off = 0; off < len; off += 16384)
			assert_int_equal(tcli_send(&t, out + off, 16384), 0);
	}
	for (uint64_t i = 0; i < 1000; i++) {
		assert_int_equal(tcli_frame(&t, in, sizeof(in), &f), SPOP_FRM_ACK);
		assert_int_equal(f.fid, i + 1);
	}
	free(out);
	tcli_close(&t);
	daemon_stop(&d);
}

static void
test_mtls(void **state)
{
	struct tf_agent d;
	struct tcli t;

	(void)state;
	assert_int_equal(daemon_start(&d, cpath("ca.pem")), 0);
	/* No certificate: refused in the handshake, no SPOP byte exchanged
	 * (TLS 1.3 reports it on the first read). */
	if (tcli_open(&t, d.tls_addr, NULL, NULL) == 0)
		assert_false(tcli_verdict(&t, true, 1));
	tcli_close(&t);
	/* A certificate from another CA: refused too. */
	if (tcli_open(&t, d.tls_addr, cpath("ca2.pem"), cpath("ca2.key")) == 0)
		assert_false(tcli_verdict(&t, true, 1));
	tcli_close(&t);
	assert_int_equal(tp_wait_log(d.log, "event=tls_handshake_failed", IO_MS), 0);
	/* Both refusals are counted as handshake failures, nothing completed. */
	assert_int_equal(tls_stat_wait(&d, "handshake_failures", 2), 2);
	assert_int_equal(tls_stat(&d, "handshakes"), 0);
	/* HAProxy's certificate: served, its subject logged. */
	assert_int_equal(tcli_open(&t, d.tls_addr, cpath("cli.pem"), cpath("cli.key")), 0);
	assert_true(tcli_verdict(&t, true, 1));
	tcli_close(&t);
	assert_int_equal(tls_stat(&d, "handshakes"), 1);
	assert_int_equal(tls_stat(&d, "handshake_failures"), 2);
	assert_int_equal(tp_wait_log(d.log, "event=tls_client", IO_MS), 0);
	assert_true(tp_log_contains(d.log, "subject=\"CN=haproxy\""));
	daemon_stop(&d);
}

static void
test_garbage_and_half_handshakes_do_not_stall(void **state)
{
	struct tf_agent d;
	struct tcli t, half;
	int g, silent;
	uint8_t junk[64];

	(void)state;
	assert_int_equal(daemon_start(&d, NULL), 0);
	silent = spc_connect_fd(d.tls_addr, IO_MS);   /* never says anything */
	assert_true(silent >= 0);
	g = spc_connect_fd(d.tls_addr, IO_MS);
	assert_true(g >= 0);
	memset(junk, 'A', sizeof(junk));
	assert_int_equal(write(g, junk, sizeof(junk)), (ssize_t)sizeof(junk));
	/* A ClientHello whose handshake is never finished: the client reads
	 * nothing more after it. */
	half.fd = spc_connect_fd(d.tls_addr, IO_MS);
	assert_true(half.fd >= 0);
	half.ctx = SSL_CTX_new(TLS_client_method());
	half.ssl = SSL_new(half.ctx);
	{
		/* It writes to the socket and reads from an empty memory BIO
		 * ("retry", not EOF): the server's reply is never read, however
		 * fast it comes, and SSL_connect can only want it. */
		BIO *rd = BIO_new(BIO_s_mem());

		assert_non_null(rd);
		BIO_set_mem_eof_return(rd, -1);
		SSL_set_bio(half.ssl, rd, BIO_new_socket(half.fd, BIO_NOCLOSE));
	}
	assert_int_equal(SSL_connect(half.ssl), -1);
	assert_int_equal(tcli_open(&t, d.tls_addr, NULL, NULL), 0);
	for (uint64_t i = 1; i <= 20; i++)
		assert_true(tcli_verdict(&t, i == 1, i));
	{
		/* The garbage connection is closed by the agent. */
		struct spc_conn gc = { .fd = g };

		assert_int_equal(spc_wait_eof(&gc, IO_MS), 0);
		free(gc.rbuf);
	}
	/* The garbage is one handshake failure; the half handshake and the
	 * silent connection are still pending, the good one completed. */
	assert_int_equal(tls_stat_wait(&d, "handshake_failures", 1), 1);
	assert_int_equal(tls_stat(&d, "handshakes"), 1);
	tcli_close(&t);
	tcli_close(&half);
	close(g);
	close(silent);
	daemon_stop(&d);
}

/* A client that offers only TLS 1.1 (below the 1.2 floor): refused with a
 * protocol_version alert, counted as one handshake failure; a good client
 * after it is served and counted as one handshake. */
static void
test_old_protocol_version_refused_and_counted(void **state)
{
	struct tf_agent d;
	struct tcli t;
	int fd;

	(void)state;
	assert_int_equal(daemon_start(&d, NULL), 0);
	memset(&t, 0, sizeof(t));
	fd = spc_connect_fd(d.tls_addr, IO_MS);
	assert_true(fd >= 0);
	assert_int_equal(fcntl(fd, F_SETFL, 0), 0);
	{
		struct timeval tv = { .tv_sec = IO_MS / 1000 };

		setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	}
	t.fd = fd;
	t.ctx = SSL_CTX_new(TLS_client_method());
	assert_non_null(t.ctx);
	/* Security level 0 so that this OpenSSL still sends a TLS 1.1 hello. */
	SSL_CTX_set_security_level(t.ctx, 0);
	assert_int_equal(SSL_CTX_set_cipher_list(t.ctx, "DEFAULT:@SECLEVEL=0"), 1);
	assert_int_equal(SSL_CTX_set_min_proto_version(t.ctx, TLS1_VERSION), 1);
	assert_int_equal(SSL_CTX_set_max_proto_version(t.ctx, TLS1_1_VERSION), 1);
	t.ssl = SSL_new(t.ctx);
	assert_non_null(t.ssl);
	SSL_set_fd(t.ssl, t.fd);
	assert_int_not_equal(SSL_connect(t.ssl), 1);
	tcli_close(&t);
	assert_int_equal(tls_stat_wait(&d, "handshake_failures", 1), 1);
	assert_int_equal(tls_stat(&d, "handshakes"), 0);
	assert_int_equal(tcli_open(&t, d.tls_addr, NULL, NULL), 0);
	assert_true(tcli_verdict(&t, true, 1));
	tcli_close(&t);
	assert_int_equal(tls_stat_wait(&d, "handshakes", 1), 1);
	assert_int_equal(tls_stat(&d, "handshake_failures"), 1);
	daemon_stop(&d);
}

static void
test_reload_certificates(void **state)
{
	struct tf_agent d;
	struct tcli kept, t;
	char cn[64];
	size_t mark;

	(void)state;
	assert_int_equal(daemon_start(&d, NULL), 0);
	assert_int_equal(tcli_open(&kept, d.tls_addr, NULL, NULL), 0);
	assert_true(tcli_verdict(&kept, true, 1));
	tcli_server_cn(&kept, cn, sizeof(cn));
	assert_string_equal(cn, "localhost");

	/* Rotation: new connections get srv2, the open one keeps working. */
	assert_int_equal(write_conf(&d, cpath("srv2.pem"), cpath("srv2.key"), NULL), 0);
	mark = tp_file_size(d.log);
	assert_int_equal(tp_signal(d.pid, SIGHUP), 0);
	for (long long end = tp_now_ms() + IO_MS;
	     !tp_log_line_since(d.log, mark, (const char *const[]){ "event=reload result=ok", NULL }) &&
	     tp_now_ms() < end;)
		tp_nap_ms(10);
	assert_true(tp_log_line_since(d.log, mark, (const char *const[]){ "event=reload result=ok", NULL }));
	assert_true(tcli_verdict(&kept, false, 2));
	assert_int_equal(tcli_open(&t, d.tls_addr, NULL, NULL), 0);
	tcli_server_cn(&t, cn, sizeof(cn));
	assert_string_equal(cn, "localhost2");
	assert_true(tcli_verdict(&t, true, 1));
	tcli_close(&t);

	/* A broken certificate: rejected, srv2 keeps serving. */
	assert_int_equal(write_conf(&d, cpath("bad.pem"), cpath("srv2.key"), NULL), 0);
	mark = tp_file_size(d.log);
	assert_int_equal(tp_signal(d.pid, SIGHUP), 0);
	for (long long end = tp_now_ms() + IO_MS;
	     !tp_log_line_since(d.log, mark, (const char *const[]){ "result=rejected", NULL }) &&
	     tp_now_ms() < end;)
		tp_nap_ms(10);
	assert_true(tp_log_line_since(d.log, mark, (const char *const[]){ "result=rejected", NULL }));
	assert_true(tp_log_contains(d.log, "bad.pem"));
	assert_int_equal(tcli_open(&t, d.tls_addr, NULL, NULL), 0);
	tcli_server_cn(&t, cn, sizeof(cn));
	assert_string_equal(cn, "localhost2");
	assert_true(tcli_verdict(&t, true, 1));
	tcli_close(&t);
	assert_true(tcli_verdict(&kept, false, 3));
	tcli_close(&kept);
	daemon_stop(&d);
}

static void
test_tls_listener_needs_tls_group(void **state)
{
	char dir[TP_PATH_MAX], conf[TP_PATH_MAX + 16], log[TP_PATH_MAX + 16];

	(void)state;
	assert_int_equal(tp_mkdtemp("tlsconf", dir, sizeof(dir)), 0);
	snprintf(conf, sizeof(conf), "%s/k.conf", dir);
	snprintf(log, sizeof(log), "%s/k.log", dir);
	assert_int_equal(tp_write_file(conf, "listen = [ \"tls:127.0.0.1:1\" ];\n"
	    "routes = ( { name = \"openai\"; context = \"/openai\"; } );\n"), 0);
	assert_int_not_equal(tp_run_keyauthd_check(conf, log), 0);
	assert_true(tp_log_contains(log, "no tls group"));
	/* -t loads the certificate: a broken one is refused before a start. */
	{
		char text[1024];

		snprintf(text, sizeof(text), "listen = [ \"tls:127.0.0.1:1\" ];\n"
		    "store = { path = \"%s/keys.db\"; };\n"
		    "tls = { cert = \"%s\"; key = \"%s\"; };\n"
		    "routes = ( { name = \"openai\"; context = \"/openai\"; } );\n",
		    dir, cpath("bad.pem"), cpath("srv.key"));
		assert_int_equal(tp_write_file(conf, text), 0);
		assert_int_not_equal(tp_run_keyauthd_check(conf, log), 0);
		assert_true(tp_log_contains(log, "bad.pem"));
		snprintf(text, sizeof(text), "listen = [ \"tls:127.0.0.1:1\" ];\n"
		    "store = { path = \"%s/keys.db\"; };\n"
		    "tls = { cert = \"%s\"; key = \"%s\"; };\n"
		    "routes = ( { name = \"openai\"; context = \"/openai\"; } );\n",
		    dir, cpath("srv.pem"), cpath("srv.key"));
		assert_int_equal(tp_write_file(conf, text), 0);
		assert_int_equal(tp_run_keyauthd_check(conf, log), 0);
		/* The test certificates are valid 2 days: a warning with the
		 * days left (issue #17). */
		assert_true(tp_log_contains(log, "level=warning event=tls_cert_expiring"));
		assert_true(tp_log_contains(log, "days_left=1 ") || tp_log_contains(log, "days_left=2 "));
		/* A key file another user owns could be theirs: refused. */
		assert_int_equal(chown(cpath("srv.key"), 65534, 65534), 0);
		assert_int_not_equal(tp_run_keyauthd_check(conf, log), 0);
		assert_true(tp_log_contains(log, "tls: "));
		assert_true(tp_log_contains(log, "srv.key"));
		assert_int_equal(chown(cpath("srv.key"), 0, 0), 0);
		assert_int_equal(tp_run_keyauthd_check(conf, log), 0);
	}
	tp_rmtree(dir);
}

/* The notAfter of the PEM certificate at <path>, Unix seconds; 0 if unreadable. */
static time_t
cert_not_after(const char *path)
{
	FILE *f = fopen(path, "r");
	X509 *x = f != NULL ? PEM_read_X509(f, NULL, NULL, NULL) : NULL;
	struct tm tm;
	time_t t = 0;

	memset(&tm, 0, sizeof(tm));
	if (x != NULL && ASN1_TIME_to_tm(X509_get0_notAfter(x), &tm) == 1)
		t = timegm(&tm);
	X509_free(x);
	if (f != NULL)
		fclose(f);
	return t;
}

/* keyauth_tls_cert_expiry_timestamp_seconds on /metrics is the served
 * certificate's notAfter, and follows a reload to another certificate. */
static void
test_cert_expiry_gauge(void **state)
{
	static const char req[] = "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n";
	static const char name[] = "\nkeyauth_tls_cert_expiry_timestamp_seconds ";
	char tls[3 * TP_PATH_MAX + 64];
	struct tf_opts o = { .listen = TF_TLS, .metrics = true, .control = true, .settings = tls };
	struct tf_agent d;
	const char *certs[] = { "srv.pem", "week.pem" };
	char cmd[TP_PATH_MAX + 256];

	(void)state;
	/* A certificate valid 7 days, so that its notAfter differs from srv's. */
	snprintf(cmd, sizeof(cmd), "cd %s && openssl req -x509 " NEWKEY " -keyout week.key -out week.pem"
	    " -days 7 -subj /CN=localhost >/dev/null 2>&1", certdir);
	assert_int_equal(system(cmd), 0);
	assert_int_equal(tf_agent_init(&d, "tlsgauge"), 0);
	for (size_t i = 0; i < 2; i++) {
		time_t want = cert_not_after(cpath(certs[i]));
		char buf[65536], *at;
		size_t got = 0;
		long long end;
		int fd;
		ssize_t n;

		assert_true(want > 0);
		snprintf(tls, sizeof(tls), "tls = { cert = \"%s\"; key = \"%s\"; };", cpath(certs[i]),
		    cpath(i == 0 ? "srv.key" : "week.key"));
		assert_int_equal(tf_agent_conf(&d, &o), 0);
		if (i == 0) {
			assert_int_equal(tf_agent_start(&d), 0);
		} else {
			char *r = ctl_control_call(d.ctl, "reload");

			assert_non_null(r);
			free(r);
		}
		/* Bounded: the reload is applied by the time the gauge moves. */
		for (end = tp_now_ms() + tp_scaled_ms(IO_MS);; tp_nap_ms(20)) {
			fd = spc_connect_fd(d.maddr, tp_scaled_ms(2000));
			assert_true(fd >= 0);
			/* Blocking reads to EOF (the endpoint closes after one answer),
			 * bounded by a receive timeout. */
			assert_int_equal(fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK), 0);
			{
				struct timeval tv = { .tv_sec = 5 };

				setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
			}
			assert_int_equal(write(fd, req, sizeof(req) - 1), (ssize_t)(sizeof(req) - 1));
			got = 0;
			while (got < sizeof(buf) - 1 && (n = read(fd, buf + got, sizeof(buf) - 1 - got)) > 0)
				got += (size_t)n;
			close(fd);
			buf[got] = '\0';
			at = strstr(buf, name);
			if ((at != NULL && (time_t)strtoll(at + strlen(name), NULL, 10) == want) ||
			    tp_now_ms() > end)
				break;
		}
		assert_non_null(at);
		assert_int_equal((long long)strtoll(at + strlen(name), NULL, 10), (long long)want);
	}
	assert_int_equal(tf_agent_down(&d), 0);
}

static int
setup(void **state)
{
	(void)state;
	signal(SIGPIPE, SIG_IGN);
	return make_certs();
}

static int
teardown(void **state)
{
	(void)state;
	tp_kill_all();
	if (certdir[0] != '\0')
		tp_rmtree(certdir);
	return 0;
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_tls_listener_needs_tls_group),
		cmocka_unit_test(test_cert_expiry_gauge),
		cmocka_unit_test(test_verdicts_over_tls_and_plain),
		cmocka_unit_test(test_pipelined_notifies_over_tls),
		cmocka_unit_test(test_mtls),
		cmocka_unit_test(test_garbage_and_half_handshakes_do_not_stall),
		cmocka_unit_test(test_old_protocol_version_refused_and_counted),
		cmocka_unit_test(test_reload_certificates),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
