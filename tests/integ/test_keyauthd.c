/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Integration tests for keyauthd: a real daemon (KEYAUTHD, default
 * build/keyauthd) on a unix socket and a free loopback TCP port, with a
 * temporary config and key store, driven over SPOP by tests/lib/spop_client.
 *
 * Group "protocol": one daemon for handshakes, AGENT-HELLO content, every
 * verdict status, Bearer variants, message names, 1,000 pipelined NOTIFYs,
 * malformed input (while another connection keeps being served), the TCP
 * listener and `keyauthd -t`.
 * Group "store and signals": a second daemon for store changes seen on an
 * open connection within 1 s, a corrupt store, SIGHUP with a broken and with a
 * good config, and SIGTERM with frames in flight (last: it ends the daemon).
 * Each group ends by checking that the daemon's log holds none of the keys
 * used. Not covered here: idle timeout, max_connections, write back-pressure
 * (left to unit tests and the e2e suite with real HAProxy).
 *
 * Keys are never printed: assertions compare statuses, ids and owners only.
 * Set KEYAUTH_TEST_KEEP=1 to keep the temporary directory (it holds keys).
 */
#include <errno.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "keyfmt.h"
#include "keystore.h"
#include "proc.h"
#include "spop.h"
#include "spop_client.h"

#define PREFIX "ka_"

/* ---- fixture ---------------------------------------------------------------- */

struct daemon {
	char dir[TP_PATH_MAX];
	char conf[TP_PATH_MAX];
	char store[TP_PATH_MAX];
	char log[TP_PATH_MAX];
	char unix_addr[TP_PATH_MAX + 32]; /* "unix:<dir>/agent.sock" */
	char tcp_addr[64];               /* "127.0.0.1:<port>" */
	int port;
	pid_t pid;
};

/* A generated key and its store record. */
struct tkey {
	char key[KEY_GEN_MAX + 1];
	struct ks_entry e;
};

static struct daemon d1, d2;

/* Every credential sent to a daemon, with a label for reports: the logs are
 * searched for each at the end of its group. */
#define MAX_USED 64
static const char *used_keys[MAX_USED];
static const char *used_labels[MAX_USED];
static size_t n_used;

static void track_key(const char *key, const char *label)
{
	for (size_t i = 0; i < n_used; i++)
		if (used_keys[i] == key)
			return;
	if (n_used < MAX_USED) {
		used_keys[n_used] = key;
		used_labels[n_used] = label;
		n_used++;
	}
}

static int io_ms(void)
{
	return tp_scaled_ms(3000);
}

static void make_key(struct tkey *k, const char *route, const char *owner, int64_t expires,
                     int64_t revoked, const char *label)
{
	memset(k, 0, sizeof(*k));
	assert_true(keyfmt_generate(PREFIX, k->key, sizeof(k->key)) > 0);
	keyfmt_digest(k->key, strlen(k->key), k->e.digest);
	assert_int_equal(keyfmt_new_id(k->e.id), 0);
	k->e.route = route;
	k->e.owner = owner;
	k->e.created = (int64_t)time(NULL) - 100;
	k->e.expires = expires;
	k->e.revoked = revoked;
	track_key(k->key, label);
}

static int write_store(const char *path, struct tkey *const *keys, size_t n)
{
	struct ks_entry v[16];
	char err[512];

	if (n > 16)
		return -1;
	for (size_t i = 0; i < n; i++)
		v[i] = keys[i]->e;
	if (ks_file_write(path, v, n, err, sizeof(err)) != 0) {
		print_error("ks_file_write: %s\n", err);
		return -1;
	}
	return 0;
}

static const char ROUTE_OPENAI[] =
	"  { name = \"openai\"; type = \"provider\"; context = \"/openai\";\n"
	"    security = { authentication = \"apiKey\"; key_name = \"X-API-Key\";"
	" key_location = \"header\"; }; }";
static const char ROUTE_MISTRAL[] =
	"  { name = \"mistral\"; type = \"provider\"; context = \"/mistral\"; }";
static const char ROUTE_ANTHROPIC[] =
	"  { name = \"anthropic\"; type = \"provider\"; context = \"/anthropic\"; }";

/* Writes d->conf; <extra_route> adds the "anthropic" route. */
static int write_conf(const struct daemon *d, bool extra_route)
{
	char buf[4096];
	int n = snprintf(buf, sizeof(buf),
		"# keyauthd integration test\n"
		"listen = [ \"%s\", \"%s\" ];\n"
		"workers = 1;\n"
		"max_connections = 64;\n"
		"max_frame_size = 16380;\n"
		"idle_timeout = 60;\n"
		"key_prefix = \"" PREFIX "\";\n"
		"pid_file = \"%s/keyauthd.pid\";\n"
		"store = { backend = \"file\"; path = \"%s\"; };\n"
		"log = { level = \"debug\"; target = \"stderr\"; };\n"
		"routes = (\n%s,\n%s%s%s\n);\n",
		d->unix_addr, d->tcp_addr, d->dir, d->store, ROUTE_OPENAI, ROUTE_MISTRAL,
		extra_route ? ",\n" : "", extra_route ? ROUTE_ANTHROPIC : "");

	if (n < 0 || (size_t)n >= sizeof(buf))
		return -1;
	return tp_write_file(d->conf, buf);
}

static int path_in(char *out, const struct daemon *d, const char *name)
{
	int n = snprintf(out, TP_PATH_MAX, "%s/%s", d->dir, name);

	return n < 0 || n >= TP_PATH_MAX ? -1 : 0;
}

/* Creates the directory, config and store, starts keyauthd and waits until
 * both listeners accept. */
static int daemon_start(struct daemon *d, const char *tag, struct tkey *const *keys, size_t n)
{
	memset(d, 0, sizeof(*d));
	if (tp_mkdtemp(tag, d->dir, sizeof(d->dir)) == -1 ||
	    path_in(d->conf, d, "keyauth.conf") == -1 || path_in(d->store, d, "keys.db") == -1 ||
	    path_in(d->log, d, "keyauthd.log") == -1)
		return -1;
	snprintf(d->unix_addr, sizeof(d->unix_addr), "unix:%s/agent.sock", d->dir);
	d->port = tp_free_port();
	if (d->port <= 0)
		return -1;
	snprintf(d->tcp_addr, sizeof(d->tcp_addr), "127.0.0.1:%d", d->port);
	if (write_conf(d, false) == -1 || write_store(d->store, keys, n) == -1)
		return -1;
	d->pid = tp_spawn_keyauthd(d->conf, d->log);
	if (d->pid == -1)
		return -1;
	if (tp_wait_connectable(d->pid, d->unix_addr, 5000) == -1 ||
	    tp_wait_connectable(d->pid, d->tcp_addr, 5000) == -1) {
		print_error("keyauthd (%s) did not become ready; log: %s\n", tp_keyauthd_path(),
		            d->log);
		return -1;
	}
	return 0;
}

/* Stops the daemon if still running (SIGTERM, bounded; SIGKILL after) and
 * removes its directory. Returns -1 if it had to be killed or exited badly. */
static int daemon_stop(struct daemon *d)
{
	int rc = 0, status;

	if (d->pid > 0) {
		tp_signal(d->pid, SIGTERM);
		if (tp_wait_exit(d->pid, 5000, &status) == -1) {
			print_error("keyauthd did not exit within 5 s of SIGTERM: killed\n");
			rc = -1;
		} else if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
			print_error("keyauthd exited with wait status 0x%x\n", (unsigned)status);
			rc = -1;
		}
		d->pid = 0;
	}
	if (d->dir[0]) {
		if (getenv("KEYAUTH_TEST_KEEP"))
			print_message("kept %s\n", d->dir);
		else
			tp_rmtree(d->dir);
	}
	return rc;
}

/* ---- SPOP helpers ------------------------------------------------------------- */

static struct spc_conn *open_conn(const char *addr)
{
	struct spc_conn *c = spc_open(addr, io_ms());

	assert_non_null(c);
	return c;
}

static struct spc_conn *open_ready(const char *addr)
{
	struct spc_conn *c = open_conn(addr);

	assert_true(spc_handshake(c, io_ms()));
	return c;
}

/* Sends raw <bytes> and expects AGENT-DISCONNECT with one of the statuses
 * <want_a>/<want_b>, then EOF. */
static void expect_disconnect(struct spc_conn *c, const void *bytes, size_t len, int want_a,
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

/* Checks the invariants of every keyauth ACK. */
static void check_ack_shape(const struct spc_ack *a)
{
	assert_true(a->nactions >= 2);
	assert_true(a->all_set_var_txn);
	assert_true(a->has_ok);
	assert_true(a->has_status);
	assert_false(a->wrong_type);
	assert_false(a->truncated);
}

/* One query on <c>; checks status, ok, and key_id/owner against <k> (NULL: no
 * stored key may be reported). <what> names the case (never the key). */
static void expect_verdict(struct spc_conn *c, const char *route, const char *key,
                           const char *status, const struct tkey *k, const char *what)
{
	struct spc_ack a;

	if (spc_query(c, route, key, &a, io_ms()) != 0)
		fail_msg("%s: no ACK", what);
	check_ack_shape(&a);
	if (strcmp(a.status, status) != 0)
		fail_msg("%s: status \"%s\", want \"%s\"", what, a.status, status);
	if (a.ok != (strcmp(status, "ok") == 0))
		fail_msg("%s: ok=%d with status %s", what, a.ok, status);
	assert_true(a.has_message);
	assert_true(a.message[0] != '\0');
	if (k) {
		if (!a.has_key_id || strcmp(a.key_id, k->e.id) != 0)
			fail_msg("%s: key_id \"%s\", want \"%s\"", what, a.key_id, k->e.id);
		if (!a.has_owner || strcmp(a.owner, k->e.owner) != 0)
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
static long long wait_status(struct spc_conn *c, const char *route, const char *key,
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
		tp_nap_ms(10);
	}
}

/* True if a line logged after byte <from> is an error or a warning; with
 * <what> (may be NULL), that line must also contain <what>. */
static bool new_error_line(const char *log, size_t from, const char *what)
{
	const char *const err[] = { "level=error", what, NULL };
	const char *const warn[] = { "level=warning", what, NULL };

	return tp_log_line_since(log, from, err) || tp_log_line_since(log, from, warn);
}

static void check_log_has_no_key(const struct daemon *d)
{
	assert_true(tp_file_size(d->log) > 0);
	for (size_t i = 0; i < n_used; i++)
		if (tp_log_contains(d->log, used_keys[i]))
			fail_msg("the log contains the key \"%s\" (#%zu)", used_labels[i], i);
}

/* ================================================================================
 * Group 1: protocol
 * ================================================================================ */

static struct tkey k_valid, k_expired, k_revoked, k_other, k_future, k_unstored;

static int g1_setup(void **state)
{
	int64_t now = (int64_t)time(NULL);
	struct tkey *keys[] = { &k_valid, &k_expired, &k_revoked, &k_other, &k_future };

	(void)state;
	make_key(&k_valid, "openai", "alice", 0, 0, "valid");
	make_key(&k_expired, "openai", "bob", now - 3600, 0, "expired");
	make_key(&k_revoked, "openai", "carol", 0, now - 60, "revoked");
	make_key(&k_other, "mistral", "dave", 0, 0, "other route");
	make_key(&k_future, "openai", "erin", now + 86400, 0, "expires tomorrow");
	make_key(&k_unstored, "openai", "nobody", 0, 0, "not stored");
	return daemon_start(&d1, "kad-proto", keys, 5);
}

static int g1_teardown(void **state)
{
	(void)state;
	return daemon_stop(&d1);
}

/* HAProxy 2.6: "pipelining,async" and an engine-id; the agent answers with
 * pipelining only, and serves NOTIFYs afterwards. */
static void test_hello_haproxy_26(void **state)
{
	struct spc_hello_opts o = { .versions = "2.0", .max_frame_size = 16380,
	                            .capabilities = "pipelining,async",
	                            .engine_id = "c0f397ef-7e6b-4a69-a1d0-3c1b5b1f8a11" };
	struct spc_conn *c = open_conn(d1.unix_addr);
	struct spc_agent_hello h;
	struct spc_frame f;

	(void)state;
	assert_int_equal(spc_hello(c, &o, &f, io_ms()), SPC_FRAME);
	expect_agent_hello(&f, &h);
	assert_int_equal(h.max_frame_size, 16380);
	spc_frame_free(&f);
	expect_verdict(c, "openai", k_valid.key, "ok", &k_valid, "2.6 connection");
	spc_close(c);
}

static void test_hello_haproxy_3x(void **state)
{
	struct spc_hello_opts o = { .versions = "2.0", .max_frame_size = 16380,
	                            .capabilities = "pipelining" };
	struct spc_conn *c = open_conn(d1.unix_addr);
	struct spc_agent_hello h;
	struct spc_frame f;

	(void)state;
	assert_int_equal(spc_hello(c, &o, &f, io_ms()), SPC_FRAME);
	expect_agent_hello(&f, &h);
	assert_int_equal(h.max_frame_size, 16380);
	spc_frame_free(&f);
	expect_verdict(c, "openai", k_valid.key, "ok", &k_valid, "3.x connection");
	spc_close(c);
}

/* A version list that includes 2.0 among others is accepted; no capability
 * at all is accepted too. */
static void test_hello_version_list_and_no_capabilities(void **state)
{
	struct spc_hello_opts o = { .versions = "1.0, 2.0", .max_frame_size = 16380 };
	struct spc_conn *c = open_conn(d1.unix_addr);
	struct spc_agent_hello h;
	struct spc_frame f;

	(void)state;
	assert_int_equal(spc_hello(c, &o, &f, io_ms()), SPC_FRAME);
	expect_agent_hello(&f, &h);
	spc_frame_free(&f);
	expect_verdict(c, "openai", k_valid.key, "ok", &k_valid, "no-capability connection");
	spc_close(c);
}

/* max-frame-size = min(ours, theirs); afterwards the negotiated value is the
 * limit: one byte more is DISCONNECT 3. */
static void test_agent_hello_frame_size_is_the_minimum(void **state)
{
	struct spc_hello_opts small = { .versions = "2.0", .max_frame_size = 1024,
	                                .capabilities = "pipelining" };
	struct spc_hello_opts big = { .versions = "2.0", .max_frame_size = 65532,
	                              .capabilities = "pipelining" };
	struct spc_conn *c = open_conn(d1.unix_addr);
	struct spc_agent_hello h;
	struct spc_frame f;
	uint8_t over[4 + 1025];

	(void)state;
	assert_int_equal(spc_hello(c, &big, &f, io_ms()), SPC_FRAME);
	expect_agent_hello(&f, &h);
	assert_int_equal(h.max_frame_size, 16380);
	spc_frame_free(&f);
	spc_close(c);

	c = open_conn(d1.unix_addr);
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
	struct spc_conn *c = open_conn(d1.unix_addr);
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
	struct spc_hello_opts o = { .versions = "1.0", .max_frame_size = 16380,
	                            .capabilities = "pipelining" };
	struct spc_conn *c = open_conn(d1.unix_addr);
	uint8_t buf[256];
	int n = spc_build_hello(buf, sizeof(buf), &o);

	(void)state;
	assert_true(n > 0);
	expect_disconnect(c, buf, (size_t)n, SPOP_ERR_BAD_VSN, SPOP_ERR_BAD_VSN, "version 1.0");
	spc_close(c);
}

static void test_hello_missing_max_frame_size_is_6(void **state)
{
	struct spc_hello_opts o = { .versions = "2.0", .capabilities = "pipelining" };
	struct spc_conn *c = open_conn(d1.unix_addr);
	uint8_t buf[256];
	int n = spc_build_hello(buf, sizeof(buf), &o);

	(void)state;
	assert_true(n > 0);
	expect_disconnect(c, buf, (size_t)n, SPOP_ERR_NO_FRAME_SIZE, SPOP_ERR_NO_FRAME_SIZE,
	                  "no max-frame-size");
	spc_close(c);
}

static void test_hello_max_frame_size_100_is_9(void **state)
{
	struct spc_hello_opts o = { .versions = "2.0", .max_frame_size = 100,
	                            .capabilities = "pipelining" };
	struct spc_conn *c = open_conn(d1.unix_addr);
	uint8_t buf[256];
	int n = spc_build_hello(buf, sizeof(buf), &o);

	(void)state;
	assert_true(n > 0);
	expect_disconnect(c, buf, (size_t)n, SPOP_ERR_BAD_FRAME_SIZE, SPOP_ERR_BAD_FRAME_SIZE,
	                  "max-frame-size 100");
	spc_close(c);
}

static void test_notify_before_hello_is_4(void **state)
{
	struct spc_conn *c = open_conn(d1.unix_addr);
	uint8_t buf[512];
	int n = spc_build_keyauth(buf, sizeof(buf), 1, 1, NULL, "openai", k_unstored.key,
	                          SPC_KEY_STRLEN);

	(void)state;
	assert_true(n > 0);
	expect_disconnect(c, buf, (size_t)n, SPOP_ERR_INVALID, SPOP_ERR_INVALID,
	                  "NOTIFY before HELLO");
	spc_close(c);
}

static void test_haproxy_disconnect_is_answered_then_closed(void **state)
{
	struct spc_conn *c = open_ready(d1.unix_addr);
	uint8_t buf[256];
	int n = spc_build_disconnect(buf, sizeof(buf), 0, "normal");

	(void)state;
	assert_true(n > 0);
	expect_disconnect(c, buf, (size_t)n, SPOP_ERR_NONE, SPOP_ERR_NONE, "HAPROXY-DISCONNECT");
	spc_close(c);
}

/* ---- verdicts --------------------------------------------------------------------- */

static char key_bad_crc[KEY_GEN_MAX + 1];
static char key_inner_space[KEY_GEN_MAX + 1];
static char key_ctrl[KEY_GEN_MAX + 1];
static char key_short_ours[] = PREFIX "tooShort123";
static char key_foreign[] = "sk-proj-0123456789abcdefghijABCDEFGHIJ0123456789";
static char key_256[KEY_MAX_LEN + 1];
static char key_257[KEY_MAX_LEN + 2];
static char key_utf8[] = "ka_\xc3\xa9t\xc3\xa9_caf\xc3\xa9_0123456789012345678901234567890";

static void make_odd_keys(void)
{
	size_t len = strlen(k_valid.key);

	strcpy(key_bad_crc, k_valid.key);
	key_bad_crc[len - 1] = key_bad_crc[len - 1] == 'A' ? 'B' : 'A';
	strcpy(key_inner_space, k_valid.key);
	key_inner_space[10] = ' ';
	strcpy(key_ctrl, k_valid.key);
	key_ctrl[10] = '\x01';
	memset(key_256, 'x', KEY_MAX_LEN);
	key_256[KEY_MAX_LEN] = '\0';
	memset(key_257, 'x', KEY_MAX_LEN + 1);
	key_257[KEY_MAX_LEN + 1] = '\0';
	track_key(key_bad_crc, "bad checksum");
	track_key(key_inner_space, "inner space");
	track_key(key_ctrl, "control character");
	track_key(key_short_ours, "our prefix, too short");
	track_key(key_foreign, "foreign format");
	track_key(key_256, "256 bytes");
	track_key(key_257, "257 bytes");
	track_key(key_utf8, "non-ASCII");
}

struct vcase {
	const char *what;
	const char *route;
	const char *key;
	const char *status;
	const struct tkey *match;   /* key_id/owner expected, or NULL */
};

static void test_every_verdict_status(void **state)
{
	struct spc_conn *c = open_ready(d1.unix_addr);

	(void)state;
	make_odd_keys();
	const struct vcase cases[] = {
		{ "valid key", "openai", k_valid.key, "ok", &k_valid },
		{ "key expiring tomorrow", "openai", k_future.key, "ok", &k_future },
		{ "valid key on its own route", "mistral", k_other.key, "ok", &k_other },
		{ "NULL key", "openai", NULL, "missing", NULL },
		{ "empty key", "openai", "", "missing", NULL },
		{ "blank key", "openai", " \t ", "missing", NULL },
		{ "bad checksum", "openai", key_bad_crc, "malformed", NULL },
		{ "inner space", "openai", key_inner_space, "malformed", NULL },
		{ "control character", "openai", key_ctrl, "malformed", NULL },
		{ "non-ASCII", "openai", key_utf8, "malformed", NULL },
		{ "our prefix, too short", "openai", key_short_ours, "malformed", NULL },
		{ "257 bytes", "openai", key_257, "malformed", NULL },
		{ "256 bytes, foreign", "openai", key_256, "invalid", NULL },
		{ "well formed, not stored", "openai", k_unstored.key, "invalid", NULL },
		{ "foreign format, not stored", "openai", key_foreign, "invalid", NULL },
		{ "expired", "openai", k_expired.key, "expired", &k_expired },
		{ "revoked", "openai", k_revoked.key, "revoked", &k_revoked },
		{ "other route", "openai", k_other.key, "forbidden", &k_other },
		{ "unknown route", "nope", k_valid.key, "unknown_route", NULL },
		{ "unknown route, no key", "nope", NULL, "unknown_route", NULL },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		expect_verdict(c, cases[i].route, cases[i].key, cases[i].status, cases[i].match,
		               cases[i].what);
	spc_close(c);
}

static void test_bearer_variants(void **state)
{
	struct spc_conn *c = open_ready(d1.unix_addr);
	/* What goes before and after the key. */
	static const char *const ok_forms[][2] = {
		{ "Bearer ", "" }, { "bearer ", "" }, { "BEARER ", "" }, { "bEaReR ", "" },
		{ "Bearer    ", "" }, { "Bearer\t", "" }, { "Bearer \t ", "" }, { "  Bearer ", "  " },
		{ "\tBearer ", "\t" }, { " ", " " }, { "Bearer ", " \t" },
	};
	static const char *const missing_forms[] = { "Bearer", "bearer", "Bearer ", "  Bearer\t " };
	char buf[256];

	(void)state;
	for (size_t i = 0; i < sizeof(ok_forms) / sizeof(ok_forms[0]); i++) {
		snprintf(buf, sizeof(buf), "%s%s%s", ok_forms[i][0], k_valid.key, ok_forms[i][1]);
		expect_verdict(c, "openai", buf, "ok", &k_valid, ok_forms[i][0]);
	}
	for (size_t i = 0; i < sizeof(missing_forms) / sizeof(missing_forms[0]); i++)
		expect_verdict(c, "openai", missing_forms[i], "missing", NULL, missing_forms[i]);
	/* Not a scheme: judged whole as a (foreign, unknown) key. */
	expect_verdict(c, "openai", "Bearerabc", "invalid", NULL, "Bearerabc");
	snprintf(buf, sizeof(buf), "Bearer%s", k_valid.key);
	expect_verdict(c, "openai", buf, "invalid", NULL, "Bearer<key> without a blank");
	/* The scheme is stripped once only. */
	snprintf(buf, sizeof(buf), "Bearer Bearer %s", k_valid.key);
	expect_verdict(c, "openai", buf, "malformed", NULL, "Bearer Bearer <key>");
	spc_close(c);
}

/* "keyauth-<x>" is a keyauth message; other messages are ignored; an empty
 * NOTIFY and a NOTIFY with only foreign messages still get an ACK with at least
 * one action; an absent key argument means "missing". */
static void test_message_names_and_empty_notify(void **state)
{
	struct spc_conn *c = open_ready(d1.unix_addr);
	struct spc_frame f;
	struct spc_ack a;
	uint8_t buf[2048];
	int n;

	(void)state;
	/* keyauth-openai */
	n = spc_build_keyauth(buf, sizeof(buf), 7, 3, "keyauth-openai", "openai", k_valid.key,
	                      SPC_KEY_STRLEN);
	assert_true(n > 0);
	assert_int_equal(spc_send_raw(c, buf, (size_t)n, io_ms()), 0);
	assert_int_equal(spc_read_frame(c, &f, io_ms()), SPC_FRAME);
	assert_int_equal(f.type, SPOP_FRM_ACK);
	assert_int_equal(f.sid, 7);
	assert_int_equal(f.fid, 3);
	assert_int_equal(spc_ack_parse(f.payload, f.payload_len, &a), 0);
	spc_frame_free(&f);
	check_ack_shape(&a);
	assert_string_equal(a.status, "ok");
	assert_true(a.ok);

	/* Empty NOTIFY. */
	n = spc_build_notify(buf, sizeof(buf), 8, 1, NULL, NULL, 0);
	assert_int_equal(n, 4 + 7);
	assert_int_equal(spc_send_raw(c, buf, (size_t)n, io_ms()), 0);
	assert_int_equal(spc_read_frame(c, &f, io_ms()), SPC_FRAME);
	assert_int_equal(f.type, SPOP_FRM_ACK);
	assert_int_equal(f.sid, 8);
	assert_int_equal(f.fid, 1);
	assert_int_equal(spc_ack_parse(f.payload, f.payload_len, &a), 0);
	spc_frame_free(&f);
	assert_true(a.nactions >= 1);
	assert_true(a.has_ok);
	assert_false(a.ok);

	/* Only a foreign message. */
	struct spc_arg other[1] = { { .name = "x", .value = { .type = SPOP_DATA_BOOL } } };

	other[0].value.u.b = true;
	n = spc_build_notify(buf, sizeof(buf), 9, 1, "something-else", other, 1);
	assert_true(n > 0);
	assert_int_equal(spc_send_raw(c, buf, (size_t)n, io_ms()), 0);
	assert_int_equal(spc_read_frame(c, &f, io_ms()), SPC_FRAME);
	assert_int_equal(f.type, SPOP_FRM_ACK);
	assert_int_equal(f.sid, 9);
	assert_int_equal(spc_ack_parse(f.payload, f.payload_len, &a), 0);
	spc_frame_free(&f);
	assert_true(a.nactions >= 1);
	assert_false(a.ok);

	/* "keyauthx" is not "keyauth-*": ignored, so not ok. */
	n = spc_build_keyauth(buf, sizeof(buf), 10, 1, "keyauthx", "openai", k_valid.key,
	                      SPC_KEY_STRLEN);
	assert_true(n > 0);
	assert_int_equal(spc_send_raw(c, buf, (size_t)n, io_ms()), 0);
	assert_int_equal(spc_read_frame(c, &f, io_ms()), SPC_FRAME);
	assert_int_equal(f.type, SPOP_FRM_ACK);
	assert_int_equal(spc_ack_parse(f.payload, f.payload_len, &a), 0);
	spc_frame_free(&f);
	assert_true(a.nactions >= 1);
	assert_false(a.ok);

	/* A foreign message first, then keyauth in the same NOTIFY. */
	{
		struct spop_fb b;
		uint8_t tmp[1024];
		int m = spc_build_notify(tmp, sizeof(tmp), 0, 0, "something-else", other, 1);
		int k = spc_build_keyauth(buf, sizeof(buf), 11, 2, NULL, "openai", k_valid.key,
		                          SPC_KEY_STRLEN);
		uint8_t frame[2048];

		assert_true(m > 0 && k > 0);
		/* Payloads start after 4 + 1 + 4 + sid + fid bytes: 11 for both. */
		spop_fb_begin(&b, frame, sizeof(frame), SPOP_FRM_NOTIFY, 11, 2);
		memcpy(b.p, tmp + 11, (size_t)m - 11);
		b.p += m - 11;
		memcpy(b.p, buf + 11, (size_t)k - 11);
		b.p += k - 11;
		n = spop_fb_end(&b);
		assert_true(n > 0);
		assert_int_equal(spc_send_raw(c, frame, (size_t)n, io_ms()), 0);
		assert_int_equal(spc_read_frame(c, &f, io_ms()), SPC_FRAME);
		assert_int_equal(f.type, SPOP_FRM_ACK);
		assert_int_equal(f.sid, 11);
		assert_int_equal(f.fid, 2);
		assert_int_equal(spc_ack_parse(f.payload, f.payload_len, &a), 0);
		spc_frame_free(&f);
		check_ack_shape(&a);
		assert_string_equal(a.status, "ok");
	}

	/* No "key" argument at all. */
	struct spc_arg route_only[1] = { { .name = "route", .value = { .type = SPOP_DATA_STR } } };

	route_only[0].value.u.s.ptr = (const uint8_t *)"openai";
	route_only[0].value.u.s.len = 6;
	n = spc_build_notify(buf, sizeof(buf), 12, 1, "keyauth", route_only, 1);
	assert_true(n > 0);
	assert_int_equal(spc_send_raw(c, buf, (size_t)n, io_ms()), 0);
	assert_int_equal(spc_read_frame(c, &f, io_ms()), SPC_FRAME);
	assert_int_equal(f.type, SPOP_FRM_ACK);
	assert_int_equal(spc_ack_parse(f.payload, f.payload_len, &a), 0);
	spc_frame_free(&f);
	check_ack_shape(&a);
	assert_string_equal(a.status, "missing");
	spc_close(c);
}

/* A route with several carriers sends key, key2, key3 in its
 * order; absent ones arrive as NULL. The first present one is the key. */
static struct spc_ack
query_carriers(struct spc_conn *c, uint64_t sid, const struct spop_data *k1,
               const struct spop_data *k2, const struct spop_data *k3)
{
	struct spc_arg args[4] = {
		{ .name = "route", .value = { .type = SPOP_DATA_STR } },
		{ .name = "key", .value = *k1 },
		{ .name = "key2", .value = *k2 },
		{ .name = "key3", .value = *k3 },
	};
	struct spc_frame f;
	struct spc_ack a;
	uint8_t buf[2048];
	int n;

	args[0].value.u.s.ptr = (const uint8_t *)"openai";
	args[0].value.u.s.len = 6;
	n = spc_build_notify(buf, sizeof(buf), sid, 1, "keyauth-openai", args, 4);
	assert_true(n > 0);
	assert_int_equal(spc_send_raw(c, buf, (size_t)n, io_ms()), 0);
	assert_int_equal(spc_read_frame(c, &f, io_ms()), SPC_FRAME);
	assert_int_equal(f.type, SPOP_FRM_ACK);
	assert_int_equal(f.sid, sid);
	assert_int_equal(spc_ack_parse(f.payload, f.payload_len, &a), 0);
	spc_frame_free(&f);
	check_ack_shape(&a);
	return a;
}

static void test_several_carriers_first_present_wins(void **state)
{
	struct spc_conn *c = open_ready(d1.unix_addr);
	struct spop_data none = { .type = SPOP_DATA_NULL };
	struct spop_data valid = { .type = SPOP_DATA_STR };
	struct spop_data bearer = { .type = SPOP_DATA_STR };
	struct spop_data bad = { .type = SPOP_DATA_STR };
	char bearer_buf[128];
	struct spc_ack a;

	(void)state;
	valid.u.s.ptr = (const uint8_t *)k_valid.key;
	valid.u.s.len = strlen(k_valid.key);
	snprintf(bearer_buf, sizeof(bearer_buf), "Bearer %s", k_valid.key);
	bearer.u.s.ptr = (const uint8_t *)bearer_buf;
	bearer.u.s.len = strlen(bearer_buf);
	bad.u.s.ptr = (const uint8_t *)"not-a-key";
	bad.u.s.len = 9;

	a = query_carriers(c, 21, &none, &valid, &none);
	assert_string_equal(a.status, "ok");          /* the second carrier */
	a = query_carriers(c, 22, &none, &none, &bearer);
	assert_string_equal(a.status, "ok");          /* the third, Bearer stripped */
	a = query_carriers(c, 23, &bad, &valid, &none);
	assert_string_equal(a.status, "invalid");     /* the first present wins */
	a = query_carriers(c, 24, &valid, &bad, &bad);
	assert_string_equal(a.status, "ok");
	a = query_carriers(c, 25, &none, &none, &none);
	assert_string_equal(a.status, "missing");
	spc_close(c);
}

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
	struct spc_conn *c = open_ready(d1.unix_addr);
	static const char *const want[4] = { "ok", "invalid", "missing", "forbidden" };
	static uint8_t out[PIPELINED * 160];
	static bool seen[PIPELINED];
	size_t len = 0;
	unsigned answered = 0;
	long long t0, deadline;

	(void)state;
	memset(seen, 0, sizeof(seen));
	for (unsigned i = 0; i < PIPELINED; i++) {
		const char *key = i % 4 == 0 ? k_valid.key : i % 4 == 1 ? k_unstored.key :
		                  i % 4 == 2 ? NULL : k_other.key;
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
	struct spc_conn *other = open_ready(d1.unix_addr);

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const struct bad_case *bc = &cases[i];
		struct spc_conn *c = open_conn(d1.unix_addr);
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
			                          k_unstored.key, SPC_KEY_STRLEN);

			assert_true(m > 0);
			n = (size_t)m;
			bytes[bc->patch_off] = bc->patch_val;
		}
		expect_disconnect(c, bytes, n, bc->status_a, bc->status_b, bc->what);
		spc_close(c);
		/* The already-open connection is still served. */
		expect_verdict(other, "openai", k_valid.key, "ok", &k_valid, bc->what);
	}
	spc_close(other);
}

/* A peer that vanishes mid-frame, resets, or connects and leaves does not
 * disturb the others, and is not logged as an error. */
static void test_abrupt_close_others_served(void **state)
{
	struct spc_conn *other = open_ready(d1.unix_addr);
	struct spc_conn *c;
	struct linger rst = { .l_onoff = 1, .l_linger = 0 };
	size_t from = tp_file_size(d1.log);
	uint8_t buf[512];
	int n = spc_build_keyauth(buf, sizeof(buf), 1, 1, NULL, "openai", k_unstored.key,
	                          SPC_KEY_STRLEN);

	(void)state;
	assert_true(n > 10);
	c = open_ready(d1.unix_addr);
	assert_int_equal(spc_send_raw(c, buf, (size_t)n - 5, io_ms()), 0);
	spc_close(c);
	expect_verdict(other, "openai", k_valid.key, "ok", &k_valid, "after half a frame and EOF");
	/* TCP reset with a NOTIFY unanswered. */
	c = open_ready(d1.tcp_addr);
	assert_int_equal(spc_send_raw(c, buf, (size_t)n, io_ms()), 0);
	assert_int_equal(setsockopt(c->fd, SOL_SOCKET, SO_LINGER, &rst, sizeof(rst)), 0);
	spc_close(c);
	c = open_ready(d1.tcp_addr);
	assert_int_equal(setsockopt(c->fd, SOL_SOCKET, SO_LINGER, &rst, sizeof(rst)), 0);
	assert_int_equal(spc_send_raw(c, buf, (size_t)n - 5, io_ms()), 0);
	spc_close(c);
	expect_verdict(other, "openai", k_valid.key, "ok", &k_valid, "after resets");
	/* Connect and close at once, repeatedly. */
	for (int i = 0; i < 20; i++)
		spc_close(open_conn(i % 2 ? d1.unix_addr : d1.tcp_addr));
	expect_verdict(other, "openai", k_valid.key, "ok", &k_valid, "after bare connects");
	if (new_error_line(d1.log, from, NULL))
		fail_msg("a peer's close or reset was logged as an error or warning");
	spc_close(other);
}

static void test_tcp_listener(void **state)
{
	struct spc_conn *c = open_ready(d1.tcp_addr);

	(void)state;
	expect_verdict(c, "openai", k_valid.key, "ok", &k_valid, "TCP valid");
	expect_verdict(c, "openai", k_revoked.key, "revoked", &k_revoked, "TCP revoked");
	expect_verdict(c, "openai", NULL, "missing", NULL, "TCP missing");
	spc_close(c);
}

/* SO_REUSEPORT would let a second agent share the port and silently take half
 * of HAProxy's connections: a second keyauthd on a busy address must refuse
 * to start, and the first must keep serving. */
static void test_second_agent_on_same_port_refuses_to_start(void **state)
{
	char log[TP_PATH_MAX], conf[TP_PATH_MAX], text[2 * TP_PATH_MAX + 256];
	struct spc_conn *c;
	pid_t pid;
	int status = 0;

	(void)state;
	assert_int_equal(path_in(log, &d1, "second-agent.log"), 0);
	assert_int_equal(path_in(conf, &d1, "second-agent.conf"), 0);
	snprintf(text, sizeof(text),
	    "listen = [ \"%s\" ];\nworkers = 2;\nstore = { path = \"%s\"; };\n"
	    "routes = ( { name = \"openai\"; context = \"/openai\"; } );\n",
	    d1.tcp_addr, d1.store);
	assert_int_equal(tp_write_file(conf, text), 0);
	pid = tp_spawn_keyauthd(conf, log);
	assert_true(pid > 0);
	assert_int_equal(tp_wait_exit(pid, tp_scaled_ms(5000), &status), 0);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 1);
	assert_true(tp_log_contains(log, "Address already in use"));
	c = open_ready(d1.tcp_addr);
	expect_verdict(c, "openai", k_valid.key, "ok", &k_valid, "first agent still serves");
	spc_close(c);
}

static void test_config_check_flag(void **state)
{
	char bad[TP_PATH_MAX], out_ok[TP_PATH_MAX], out_bad[TP_PATH_MAX];

	(void)state;
	assert_int_equal(path_in(bad, &d1, "broken.conf"), 0);
	assert_int_equal(path_in(out_ok, &d1, "check-ok.out"), 0);
	assert_int_equal(path_in(out_bad, &d1, "check-bad.out"), 0);
	assert_int_equal(tp_write_file(bad, "listen = [ \"127.0.0.1:1\" ;\nworkers = \"many\";\n"), 0);
	assert_int_equal(tp_run_keyauthd_check(d1.conf, out_ok), 0);
	assert_true(tp_log_contains(out_ok, "configuration OK"));
	assert_int_equal(tp_run_keyauthd_check(bad, out_bad), 1);
	assert_false(tp_log_contains(out_bad, "configuration OK"));
	/* Errors name the file and the line. */
	assert_true(tp_log_contains(out_bad, "broken.conf:"));
}

static void test_log_never_contains_a_key_1(void **state)
{
	(void)state;
	check_log_has_no_key(&d1);
}

/* ================================================================================
 * Group 2: store and signals
 * ================================================================================ */

static struct tkey s_valid, s_new, s_anthropic;
static struct spc_conn *s_conn;     /* one connection kept for the whole group */

static int g2_setup(void **state)
{
	struct tkey *keys[] = { &s_valid, &s_anthropic };

	(void)state;
	make_key(&s_valid, "openai", "frank", 0, 0, "store: valid");
	make_key(&s_new, "openai", "grace", 0, 0, "store: added later");
	make_key(&s_anthropic, "anthropic", "heidi", 0, 0, "store: route added later");
	if (daemon_start(&d2, "kad-store", keys, 2) == -1)
		return -1;
	s_conn = spc_open(d2.unix_addr, io_ms());
	if (!s_conn || !spc_handshake(s_conn, io_ms()))
		return -1;
	return 0;
}

static int g2_teardown(void **state)
{
	(void)state;
	spc_close(s_conn);
	s_conn = NULL;
	return daemon_stop(&d2);
}

static void test_store_key_created_while_connected(void **state)
{
	struct tkey *keys[] = { &s_valid, &s_anthropic, &s_new };
	long long delay;

	(void)state;
	expect_verdict(s_conn, "openai", s_new.key, "invalid", NULL, "before creation");
	assert_int_equal(write_store(d2.store, keys, 3), 0);
	delay = wait_status(s_conn, "openai", s_new.key, "ok", 3000);
	if (delay < 0)
		fail_msg("new key not accepted within 3 s");
	print_message("key creation seen after %lld ms\n", delay);
	assert_true(delay <= tp_scaled_ms(1000));
	expect_verdict(s_conn, "openai", s_new.key, "ok", &s_new, "after creation");
	expect_verdict(s_conn, "openai", s_valid.key, "ok", &s_valid, "old key after creation");
}

static void test_store_key_revoked_while_connected(void **state)
{
	struct tkey *keys[] = { &s_valid, &s_anthropic, &s_new };
	long long delay;

	(void)state;
	s_new.e.revoked = (int64_t)time(NULL);
	assert_int_equal(write_store(d2.store, keys, 3), 0);
	delay = wait_status(s_conn, "openai", s_new.key, "revoked", 3000);
	if (delay < 0)
		fail_msg("revocation not seen within 3 s");
	print_message("revocation seen after %lld ms\n", delay);
	assert_true(delay <= tp_scaled_ms(1000));
	expect_verdict(s_conn, "openai", s_new.key, "revoked", &s_new, "after revocation");
	expect_verdict(s_conn, "openai", s_valid.key, "ok", &s_valid, "old key after revocation");
}

static void test_store_corrupt_file_keeps_old_keys(void **state)
{
	static const char junk[] = "\xc1\xc1\xc1 this is not a msgpack key store \x00\xff";
	struct tkey *keys[] = { &s_valid, &s_anthropic, &s_new };
	size_t from = tp_file_size(d2.log);
	long long deadline = tp_now_ms() + tp_scaled_ms(3000);
	bool logged = false;

	(void)state;
	assert_int_equal(tp_replace_file(d2.store, junk, sizeof(junk) - 1), 0);
	/* Keep asking while the agent notices and rejects the file. */
	while (!logged && tp_now_ms() < deadline) {
		expect_verdict(s_conn, "openai", s_valid.key, "ok", &s_valid, "during corruption");
		expect_verdict(s_conn, "openai", s_new.key, "revoked", &s_new, "during corruption");
		logged = new_error_line(d2.log, from, "reject");
		if (!logged)
			tp_nap_ms(20);
	}
	if (!logged)
		fail_msg("no error or warning saying the corrupt store was rejected within 3 s");
	expect_verdict(s_conn, "openai", s_valid.key, "ok", &s_valid, "after corruption");
	expect_verdict(s_conn, "openai", s_new.key, "revoked", &s_new, "after corruption");
	/* A good file afterwards is picked up again. */
	s_new.e.revoked = 0;
	assert_int_equal(write_store(d2.store, keys, 3), 0);
	if (wait_status(s_conn, "openai", s_new.key, "ok", 3000) < 0)
		fail_msg("good store after a corrupt one not picked up within 3 s");
}

static void test_sighup_broken_config_keeps_old(void **state)
{
	size_t from = tp_file_size(d2.log);
	long long deadline = tp_now_ms() + tp_scaled_ms(3000);
	struct spc_conn *c;

	(void)state;
	assert_int_equal(tp_write_file(d2.conf, "routes = ( { name = \"openai\"; \n"), 0);
	assert_int_equal(tp_signal(d2.pid, SIGHUP), 0);
	while (!new_error_line(d2.log, from, "reject")) {
		if (tp_now_ms() >= deadline)
			fail_msg("no error saying the broken config was rejected within 3 s");
		tp_nap_ms(10);
	}
	assert_true(tp_alive(d2.pid));
	expect_verdict(s_conn, "openai", s_valid.key, "ok", &s_valid, "after a broken reload");
	expect_verdict(s_conn, "mistral", s_valid.key, "forbidden", &s_valid,
	               "old routes after a broken reload");
	c = open_ready(d2.unix_addr);
	expect_verdict(c, "openai", s_valid.key, "ok", &s_valid, "new connection, broken reload");
	spc_close(c);
	c = open_ready(d2.tcp_addr);
	expect_verdict(c, "openai", s_valid.key, "ok", &s_valid, "TCP, broken reload");
	spc_close(c);
}

static void test_sighup_good_config_adds_route(void **state)
{
	long long delay;

	(void)state;
	expect_verdict(s_conn, "anthropic", s_anthropic.key, "unknown_route", NULL,
	               "route not yet configured");
	assert_int_equal(write_conf(&d2, true), 0);
	assert_int_equal(tp_signal(d2.pid, SIGHUP), 0);
	delay = wait_status(s_conn, "anthropic", s_anthropic.key, "ok", 3000);
	if (delay < 0)
		fail_msg("new route not served within 3 s of SIGHUP");
	print_message("new route served %lld ms after SIGHUP\n", delay);
	expect_verdict(s_conn, "anthropic", s_anthropic.key, "ok", &s_anthropic, "new route");
	expect_verdict(s_conn, "anthropic", s_valid.key, "forbidden", &s_valid,
	               "other key on the new route");
	expect_verdict(s_conn, "openai", s_valid.key, "ok", &s_valid, "old route after reload");
}

#define IN_FLIGHT 100

static void test_sigterm_answers_in_flight_frames_and_exits_0(void **state)
{
	static uint8_t out[IN_FLIGHT * 160];
	bool seen[IN_FLIGHT] = { false };
	size_t len = 0;
	unsigned answered = 0;
	int status, rc;
	long long t_term = 0;

	(void)state;
	for (unsigned i = 0; i < IN_FLIGHT; i++) {
		int n = spc_build_keyauth(out + len, sizeof(out) - len, 1000 + i, i, NULL, "openai",
		                          i % 2 ? s_valid.key : s_new.key, SPC_KEY_STRLEN);

		assert_true(n > 0);
		len += (size_t)n;
	}
	assert_int_equal(spc_send_raw(s_conn, out, len, io_ms()), 0);
	/* Once the first answer is back the agent has read the burst (it was one
	 * write): every other NOTIFY is in flight when SIGTERM lands. */
	while (answered < IN_FLIGHT) {
		struct spc_frame f;
		struct spc_ack a;

		rc = spc_read_frame(s_conn, &f, io_ms());
		if (rc != SPC_FRAME)
			fail_msg("only %u of %u in-flight NOTIFYs answered (rc=%d)", answered,
			         IN_FLIGHT, rc);
		if (f.type != SPOP_FRM_ACK)
			fail_msg("frame type %u after %u ACKs", f.type, answered);
		assert_true(f.fid < IN_FLIGHT && !seen[f.fid]);
		assert_int_equal(f.sid, 1000 + f.fid);
		seen[f.fid] = true;
		assert_int_equal(spc_ack_parse(f.payload, f.payload_len, &a), 0);
		spc_frame_free(&f);
		assert_string_equal(a.status, "ok");
		if (answered++ == 0) {
			assert_int_equal(tp_signal(d2.pid, SIGTERM), 0);
			t_term = tp_now_ms();
		}
	}
	/* Then an AGENT-DISCONNECT (optional) and the close. */
	for (;;) {
		struct spc_frame f;

		rc = spc_read_frame(s_conn, &f, tp_scaled_ms(5000));
		if (rc != SPC_FRAME)
			break;
		if (f.type != SPOP_FRM_AGENT_DISCON)
			fail_msg("frame type %u after SIGTERM", f.type);
		spc_frame_free(&f);
	}
	assert_int_equal(rc, SPC_EOF);
	/* HAProxy closes its side on EOF; the agent may wait for that. */
	spc_close(s_conn);
	s_conn = NULL;
	if (tp_wait_exit(d2.pid, 5000, &status) == -1)
		fail_msg("keyauthd still running 5 s after SIGTERM (killed)");
	d2.pid = 0;
	print_message("keyauthd exited %lld ms after SIGTERM\n", tp_now_ms() - t_term);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
	assert_int_equal(spc_connect_fd(d2.unix_addr, 0), -1);
	assert_int_equal(spc_connect_fd(d2.tcp_addr, 0), -1);
}

static void test_log_never_contains_a_key_2(void **state)
{
	(void)state;
	check_log_has_no_key(&d2);
}

int main(void)
{
	const struct CMUnitTest protocol[] = {
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
		cmocka_unit_test(test_every_verdict_status),
		cmocka_unit_test(test_bearer_variants),
		cmocka_unit_test(test_message_names_and_empty_notify),
		cmocka_unit_test(test_several_carriers_first_present_wins),
		cmocka_unit_test(test_pipelined_1000_notifies),
		cmocka_unit_test(test_malformed_input_gets_disconnect_others_served),
		cmocka_unit_test(test_abrupt_close_others_served),
		cmocka_unit_test(test_tcp_listener),
		cmocka_unit_test(test_second_agent_on_same_port_refuses_to_start),
		cmocka_unit_test(test_config_check_flag),
		cmocka_unit_test(test_log_never_contains_a_key_1),
	};
	const struct CMUnitTest store[] = {
		cmocka_unit_test(test_store_key_created_while_connected),
		cmocka_unit_test(test_store_key_revoked_while_connected),
		cmocka_unit_test(test_store_corrupt_file_keeps_old_keys),
		cmocka_unit_test(test_sighup_broken_config_keeps_old),
		cmocka_unit_test(test_sighup_good_config_adds_route),
		cmocka_unit_test(test_sigterm_answers_in_flight_frames_and_exits_0),
		cmocka_unit_test(test_log_never_contains_a_key_2),
	};
	int failed = 0;

	signal(SIGPIPE, SIG_IGN);
	failed += cmocka_run_group_tests_name("keyauthd protocol", protocol, g1_setup, g1_teardown);
	failed += cmocka_run_group_tests_name("keyauthd store and signals", store, g2_setup,
	                                      g2_teardown);
	tp_kill_all();
	return failed ? 1 : 0;
}
