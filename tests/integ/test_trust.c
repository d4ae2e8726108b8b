/* SPDX-License-Identifier: Apache-2.0 */
/*
 * test_trust: keyauthd's listening trust boundary (security issue #17).
 *
 * SPOP does not authenticate the agent, so whoever listens at the agent's
 * address is the agent. The other local user of these cases is uid 65534
 * (nobody), a child forked here that drops to it (setresuid) and reports
 * over a pipe; tests run as root.
 *
 * - Finding 1, the address. The default layout (a unix socket in a
 *   directory like /run/keyauth, 0750, not nobody's) cannot be taken by
 *   nobody (bind: EACCES), and keyauthd refuses a socket directory nobody
 *   could write (0777, 1777, owned by nobody) or that does not exist. When
 *   the address is held anyway (a TCP port nobody bound, allow_plain_tcp; a
 *   unix path with nobody's live listener), keyauthd's error names the
 *   holder: pid, command, uid and user.
 * - Finding 2, the slots. max_connections_per_peer: nobody's connections
 *   beyond the limit are accepted and closed at once, counted (stats JSON,
 *   Prometheus) and logged at most once a second, while root's (another
 *   peer) still get their HELLO answered; nobody's slots come back when its
 *   connections close. On TCP the peer is the source address (127.0.0.1
 *   vs 127.0.0.2). hello_timeout: a connection that stays silent, or
 *   trickles a HELLO byte by byte, is closed hello_timeout after its
 *   accept; one that said HELLO stays.
 * Left out: HAProxy itself (tests/e2e/trust.test.js floods 10,000
 * connections in front of real HAProxy). No key is ever printed.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "ctl.h"
#include "fixture.h"
#include "proc.h"
#include "spop.h"
#include "spop_client.h"

#define NOBODY      65534
#define PER_PEER    8          /* max_connections_per_peer of the limit cases */
#define NB_CONNS    20         /* nobody's connections in the unix limit case */

static struct tf_agent A;
static struct tf_key K;
static char base[TP_PATH_MAX];  /* a 0755 directory of the case, or "" */

static int io_ms(void)
{
	return tp_scaled_ms(3000);
}

/* ---- a child as nobody ------------------------------------------------------- */

/*
 * A forked child that drops to uid/gid 65534 with no groups, runs a function
 * that writes one line of result into <out>, then holds what it opened until
 * the test closes <hold> (or dies: PR_SET_PDEATHSIG).
 */
struct nb_child {
	pid_t pid;
	int res;                   /* read end: the child's result line */
	int hold;                  /* write end: closed to let the child go */
};

typedef void nb_fn(void *arg, FILE *out);

static pid_t nb_pids[8];       /* for the exit-time cleanup */

static void nb_kill_all(void)
{
	for (size_t i = 0; i < sizeof(nb_pids) / sizeof(nb_pids[0]); i++)
		if (nb_pids[i] > 0) {
			kill(nb_pids[i], SIGKILL);
			waitpid(nb_pids[i], NULL, 0);
			nb_pids[i] = 0;
		}
}

static void nb_start(struct nb_child *k, nb_fn *fn, void *arg)
{
	int res[2], hold[2];
	size_t i;

	assert_int_equal(pipe2(res, O_CLOEXEC), 0);
	assert_int_equal(pipe2(hold, O_CLOEXEC), 0);
	k->pid = fork();
	assert_true(k->pid != -1);
	if (k->pid == 0) {
		FILE *out;
		char c;

		close(res[0]);
		close(hold[1]);
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		out = fdopen(res[1], "w");
		if (out == NULL || setgroups(0, NULL) == -1 ||
		    setresgid(NOBODY, NOBODY, NOBODY) == -1 || setresuid(NOBODY, NOBODY, NOBODY) == -1)
			_exit(111);
		fn(arg, out);
		fclose(out);
		while (read(hold[0], &c, 1) == -1 && errno == EINTR)
			;
		_exit(0);
	}
	close(res[1]);
	close(hold[0]);
	k->res = res[0];
	k->hold = hold[1];
	for (i = 0; i < sizeof(nb_pids) / sizeof(nb_pids[0]) && nb_pids[i] > 0; i++)
		;
	if (i < sizeof(nb_pids) / sizeof(nb_pids[0]))
		nb_pids[i] = k->pid;
}

/* The child's result line into <buf> (without the newline), waiting up to
 * <ms> scaled. 0 or -1. */
static int nb_result(struct nb_child *k, char *buf, size_t len, int ms)
{
	long long end = tp_now_ms() + tp_scaled_ms(ms);
	size_t used = 0;

	while (used + 1 < len) {
		struct pollfd p = { .fd = k->res, .events = POLLIN };
		long long left = end - tp_now_ms();
		ssize_t n;

		if (left <= 0 || poll(&p, 1, (int)left) <= 0)
			break;
		n = read(k->res, buf + used, len - 1 - used);
		if (n <= 0)
			break;
		used += (size_t)n;
		if (memchr(buf, '\n', used) != NULL)
			break;
	}
	buf[used] = '\0';
	buf[strcspn(buf, "\n")] = '\0';
	if (used == 0)
		fprintf(stderr, "test_trust: no result from the child running as nobody\n");
	return used > 0 ? 0 : -1;
}

/* Lets the child go and reaps it (SIGKILL after 5 s scaled). */
static void nb_stop(struct nb_child *k)
{
	long long end = tp_now_ms() + tp_scaled_ms(5000);

	if (k->pid <= 0)
		return;
	close(k->hold);
	close(k->res);
	while (waitpid(k->pid, NULL, WNOHANG) == 0) {
		if (tp_now_ms() >= end) {
			kill(k->pid, SIGKILL);
			waitpid(k->pid, NULL, 0);
			break;
		}
		tp_nap_ms(10);
	}
	for (size_t i = 0; i < sizeof(nb_pids) / sizeof(nb_pids[0]); i++)
		if (nb_pids[i] == k->pid)
			nb_pids[i] = 0;
	k->pid = 0;
}

/* nobody binds a unix socket at <arg> and listens: "ok", or "errno N". */
static void nb_listen_unix(void *arg, FILE *out)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd = socket(AF_UNIX, SOCK_STREAM, 0);

	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", (const char *)arg);
	if (fd == -1 || bind(fd, (struct sockaddr *)&sa, sizeof(sa)) == -1 || listen(fd, 8) == -1)
		fprintf(out, "errno %d\n", errno);
	else
		fprintf(out, "ok\n");
}

/* nobody binds 127.0.0.1:<*(int *)arg> and listens. */
static void nb_listen_tcp(void *arg, FILE *out)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((uint16_t)*(int *)arg) };
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (fd == -1 || bind(fd, (struct sockaddr *)&sa, sizeof(sa)) == -1 || listen(fd, 8) == -1)
		fprintf(out, "errno %d\n", errno);
	else
		fprintf(out, "ok\n");
}

/* nobody opens NB_CONNS connections to <arg> one after the other, each with
 * a HELLO: "answered N closed M" (kept open until released). */
static void nb_connect_many(void *arg, FILE *out)
{
	struct spc_conn *c[NB_CONNS];
	int answered = 0, closed = 0, other = 0;

	for (int i = 0; i < NB_CONNS; i++) {
		c[i] = spc_open(arg, io_ms());
		if (c[i] != NULL && spc_handshake(c[i], io_ms()))
			answered++;
		else if (c[i] != NULL && spc_wait_eof(c[i], io_ms()) == SPC_EOF)
			closed++;      /* the HELLO may also have met EPIPE first */
		else
			other++;
	}
	fprintf(out, "answered %d closed %d other %d\n", answered, closed, other);
	fflush(out);
	/* held by the child until released; freed by its exit */
}

/* ---- helpers ------------------------------------------------------------------ */

/* "<a><b>" into <out> (<len> bytes), which must hold it. */
static void join(char *out, size_t len, const char *a, const char *b)
{
	int n = snprintf(out, len, "%s%s", a, b);

	assert_true(n > 0 && (size_t)n < len);
}

/* A fresh 0755 directory (so that nobody may look up what is below it). */
static void make_base(const char *tag)
{
	assert_int_equal(tp_mkdtemp(tag, base, sizeof(base)), 0);
	assert_int_equal(chmod(base, 0755), 0);
}

static int teardown(void **state)
{
	int rc;

	(void)state;
	rc = tf_agent_down(&A);
	nb_kill_all();
	if (base[0]) {
		tp_rmtree(base);
		base[0] = '\0';
	}
	explicit_bzero(K.key, sizeof(K.key));
	return rc;
}

/* Writes a minimal keyauth.conf listening on <listen> (an address as
 * written in the file) plus <extra> settings at <conf>. */
static void write_conf(const char *conf, const char *store, const char *listen,
                       const char *extra)
{
	char text[2048];

	snprintf(text, sizeof(text),
	         "listen = [ \"%s\" ];\nworkers = 1;\n%s\nstore = { path = \"%s\"; };\n"
	         "log = { level = \"info\"; target = \"stderr\"; };\n"
	         "routes = ( { name = \"openai\"; context = \"/openai\"; } );\n",
	         listen, extra, store);
	assert_int_equal(tp_write_file(conf, text), 0);
}

/* Starts keyauthd on <conf> and expects it to fail to start: exit status 1
 * within 5 s (scaled), its log then in <log>. */
static void expect_start_fails(const char *conf, const char *log)
{
	pid_t pid = tp_spawn_keyauthd(conf, log);
	int status = 0;

	assert_true(pid > 0);
	assert_int_equal(tp_wait_exit(pid, 5000, &status), 0);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 1);
}

/* Asserts the file at <log> contains <needle>, saying what it wanted. */
static void assert_log_has(const char *log, const char *needle)
{
	if (!tp_log_contains(log, needle)) {
		print_error("%s does not contain \"%s\"\n", log, needle);
		fail();
	}
}

/* The number after "\"<name>\":" in the agent's stats JSON, or -1. */
static long long agent_stat(const char *name)
{
	char pat[64];
	char *s = ctl_control_call(A.ctl, "stats");
	const char *p;
	long long v = -1;

	if (s == NULL)
		return -1;
	snprintf(pat, sizeof(pat), "\"%s\":", name);
	if ((p = strstr(s, pat)) != NULL)
		v = strtoll(p + strlen(pat), NULL, 10);
	free(s);
	return v;
}

static int wait_stat(const char *name, long long want, int ms)
{
	long long end = tp_now_ms() + tp_scaled_ms(ms);

	while (agent_stat(name) != want) {
		if (tp_now_ms() >= end) {
			fprintf(stderr, "test_trust: stat %s is %lld, not %lld\n", name,
			        agent_stat(name), want);
			return -1;
		}
		tp_nap_ms(10);
	}
	return 0;
}

/* GET /metrics from the agent's endpoint into <buf>. 0 or -1. */
static int scrape(char *buf, size_t len)
{
	static const char req[] = "GET /metrics HTTP/1.0\r\n\r\n";
	int fd = spc_connect_fd(A.maddr, io_ms());
	size_t used = 0;

	if (fd == -1)
		return -1;
	(void)fcntl(fd, F_SETFL, 0);   /* blocking, bounded below */
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &(struct timeval){ .tv_sec = 5 }, sizeof(struct timeval));
	if (write(fd, req, sizeof(req) - 1) != (ssize_t)(sizeof(req) - 1)) {
		close(fd);
		return -1;
	}
	for (;;) {
		ssize_t n = read(fd, buf + used, len - 1 - used);

		if (n <= 0 || (used += (size_t)n) + 1 >= len)
			break;
	}
	close(fd);
	buf[used] = '\0';
	return used > 0 ? 0 : -1;
}

/* A TCP connection to <port> on 127.0.0.1 from source address <src>. */
static struct spc_conn *open_from(const char *src, int port)
{
	struct sockaddr_in from = { .sin_family = AF_INET }, to = { .sin_family = AF_INET };
	struct spc_conn *c;
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	assert_true(fd != -1);
	assert_int_equal(inet_pton(AF_INET, src, &from.sin_addr), 1);
	to.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	to.sin_port = htons((uint16_t)port);
	assert_int_equal(bind(fd, (struct sockaddr *)&from, sizeof(from)), 0);
	assert_int_equal(connect(fd, (struct sockaddr *)&to, sizeof(to)), 0);
	assert_int_equal(fcntl(fd, F_SETFL, O_NONBLOCK), 0);
	c = calloc(1, sizeof(*c));
	assert_non_null(c);
	c->fd = fd;
	return c;
}

/* ---- finding 1: the address -------------------------------------------------- */

static void test_socket_dir_keeps_impostors_out(void **state)
{
	char dir[TF_PATH], sock[TF_PATH], listen[TF_PATH + 8], conf[TF_PATH], store[TF_PATH];
	char log[TF_PATH], res[64];
	struct nb_child k;
	pid_t pid;

	(void)state;
	make_base("trust-dir");
	join(dir, sizeof(dir), base, "/run-keyauth");
	join(sock, sizeof(sock), dir, "/keyauthd.sock");
	join(listen, sizeof(listen), "unix:", sock);
	join(conf, sizeof(conf), base, "/keyauth.conf");
	join(store, sizeof(store), base, "/keys.db");
	join(log, sizeof(log), base, "/keyauthd.log");
	write_conf(conf, store, listen, "");

	/* The tmpfiles layout (here root:root 0750): nobody cannot bind there,
	 * so cannot stand in for the agent while it is away. */
	assert_int_equal(mkdir(dir, 0750), 0);
	assert_int_equal(chmod(dir, 0750), 0);
	nb_start(&k, nb_listen_unix, sock);
	assert_int_equal(nb_result(&k, res, sizeof(res), 5000), 0);
	nb_stop(&k);
	assert_string_equal(res, "errno 13");          /* EACCES */
	pid = tp_spawn_keyauthd(conf, log);
	assert_true(pid > 0);
	assert_int_equal(tp_wait_connectable(pid, listen, 5000), 0);
	{
		struct spc_conn *c = spc_open(listen, io_ms());

		assert_non_null(c);
		assert_true(spc_handshake(c, io_ms()));
		spc_close(c);
	}
	assert_int_equal(tp_signal(pid, SIGTERM), 0);
	assert_int_equal(tp_wait_exit(pid, 5000, NULL), 0);

	/* A directory others may write: nobody can take the path there (the
	 * threat), and keyauthd refuses it. */
	assert_int_equal(chmod(dir, 0777), 0);
	nb_start(&k, nb_listen_unix, sock);
	assert_int_equal(nb_result(&k, res, sizeof(res), 5000), 0);
	nb_stop(&k);
	assert_string_equal(res, "ok");
	assert_int_equal(unlink(sock), 0);
	expect_start_fails(conf, log);
	assert_log_has(log, "the socket's directory is not safe");
	assert_log_has(log, "writable by others (mode 0777)");
	assert_log_has(log, "fix: chmod go-w");
	/* sticky (like /tmp) is no excuse for the socket's own directory */
	assert_int_equal(chmod(dir, 01777), 0);
	assert_int_equal(truncate(log, 0), 0);
	expect_start_fails(conf, log);
	assert_log_has(log, "writable by others (mode 1777)");
	/* nor is a directory nobody owns */
	assert_int_equal(chmod(dir, 0750), 0);
	assert_int_equal(chown(dir, NOBODY, NOBODY), 0);
	assert_int_equal(truncate(log, 0), 0);
	expect_start_fails(conf, log);
	assert_log_has(log, "owned by uid 65534 (nobody)");
	/* a missing directory says how to make it */
	assert_int_equal(rmdir(dir), 0);
	assert_int_equal(truncate(log, 0), 0);
	expect_start_fails(conf, log);
	assert_log_has(log, "does not exist (create it");
	assert_true(tf_log_has_no_key(log) == 0);
}

/* The control socket's directory passes the same check as a listener's
 * (listener_open_unix): a 0777 one would let another user answer
 * keyauthctl stats and reload in keyauthd's place. */
static void test_control_socket_dir_is_checked(void **state)
{
	char dir[TF_PATH], sock[TF_PATH], ctl[TF_PATH], listen[TF_PATH + 8], conf[TF_PATH];
	char store[TF_PATH], log[TF_PATH], extra[TF_PATH + 32];

	(void)state;
	make_base("trust-ctl");
	join(dir, sizeof(dir), base, "/ctl");
	join(ctl, sizeof(ctl), dir, "/control.sock");
	join(sock, sizeof(sock), base, "/keyauthd.sock");
	join(listen, sizeof(listen), "unix:", sock);
	join(conf, sizeof(conf), base, "/keyauth.conf");
	join(store, sizeof(store), base, "/keys.db");
	join(log, sizeof(log), base, "/keyauthd.log");
	snprintf(extra, sizeof(extra), "control_socket = \"%s\";", ctl);
	write_conf(conf, store, listen, extra);
	assert_int_equal(mkdir(dir, 0700), 0);
	assert_int_equal(chmod(dir, 0777), 0);
	expect_start_fails(conf, log);
	assert_log_has(log, "control socket");
	assert_log_has(log, "the socket's directory is not safe");
	assert_log_has(log, "writable by others (mode 0777)");
}

static void test_tcp_holder_is_named(void **state)
{
	char addr[32], conf[TF_PATH], store[TF_PATH], log[TF_PATH], want[128], res[64];
	struct nb_child k;
	int port = tp_free_port();

	(void)state;
	make_base("trust-tcp");
	assert_true(port > 0);
	snprintf(addr, sizeof(addr), "127.0.0.1:%d", port);
	join(conf, sizeof(conf), base, "/keyauth.conf");
	join(store, sizeof(store), base, "/keys.db");
	join(log, sizeof(log), base, "/keyauthd.log");

	/* Without allow_plain_tcp a TCP listener is refused, with the reason. */
	write_conf(conf, store, addr, "");
	assert_int_equal(tp_run_keyauthd_check(conf, log), 1);
	assert_log_has(log, "is plain TCP");
	assert_log_has(log, "allow_plain_tcp = true;");
	/* With it, -t warns. */
	write_conf(conf, store, addr, "allow_plain_tcp = true;");
	assert_int_equal(truncate(log, 0), 0);
	assert_int_equal(tp_run_keyauthd_check(conf, log), 0);
	assert_log_has(log, "is plain TCP (allow_plain_tcp = true): any local user who can bind that port");

	/* nobody takes the port while the agent is away: the agent says who. */
	nb_start(&k, nb_listen_tcp, &port);
	assert_int_equal(nb_result(&k, res, sizeof(res), 5000), 0);
	assert_string_equal(res, "ok");
	assert_int_equal(truncate(log, 0), 0);
	expect_start_fails(conf, log);
	snprintf(want, sizeof(want), "%s is already in use by pid %ld (", addr, (long)k.pid);
	assert_log_has(log, want);
	assert_log_has(log, ", uid 65534 nobody)");
	assert_log_has(log, "event=plain_tcp_listener");
	nb_stop(&k);
}

static void test_unix_holder_is_named(void **state)
{
	char dir[TF_PATH], sock[TF_PATH], listen[TF_PATH + 8], conf[TF_PATH], store[TF_PATH];
	char log[TF_PATH], want[TF_PATH + 64], res[64];
	struct nb_child k;

	(void)state;
	make_base("trust-unix");
	join(dir, sizeof(dir), base, "/sock");
	join(sock, sizeof(sock), dir, "/keyauthd.sock");
	join(listen, sizeof(listen), "unix:", sock);
	join(conf, sizeof(conf), base, "/keyauth.conf");
	join(store, sizeof(store), base, "/keys.db");
	join(log, sizeof(log), base, "/keyauthd.log");
	write_conf(conf, store, listen, "");
	/* nobody listens there while the directory let it, then the directory
	 * is fixed: the live listener stays. */
	assert_int_equal(mkdir(dir, 0777), 0);
	assert_int_equal(chmod(dir, 0777), 0);
	nb_start(&k, nb_listen_unix, sock);
	assert_int_equal(nb_result(&k, res, sizeof(res), 5000), 0);
	assert_string_equal(res, "ok");
	assert_int_equal(chmod(dir, 0755), 0);
	expect_start_fails(conf, log);
	snprintf(want, sizeof(want), "%s is already in use by pid %ld (", listen, (long)k.pid);
	assert_log_has(log, want);
	assert_log_has(log, ", uid 65534 nobody): another process is listening there");
	nb_stop(&k);
	/* its socket file, nobody listening any more, is a leftover: replaced */
	{
		pid_t pid = tp_spawn_keyauthd(conf, log);

		assert_true(pid > 0);
		assert_int_equal(tp_wait_connectable(pid, listen, 5000), 0);
		assert_int_equal(tp_signal(pid, SIGTERM), 0);
		assert_int_equal(tp_wait_exit(pid, 5000, NULL), 0);
	}
}

/* ---- finding 2: the slots ------------------------------------------------------ */

static void start_agent(const char *tag, unsigned listen, const char *settings)
{
	struct tf_opts o = { .listen = listen, .max_connections = 64, .idle_timeout = 60,
	                     .control = true, .metrics = true, .log_level = "info",
	                     .settings = settings };

	assert_int_equal(tf_agent_up_key(&A, tag, &o, &K, 0), 0);
}

static void test_per_peer_limit_keeps_other_users_served(void **state)
{
	struct spc_conn *mine[PER_PEER + 1];
	struct nb_child k;
	char res[128], want[128], *prom;
	long long t0;
	int lines;

	(void)state;
	start_agent("trust-peer",  TF_UNIX,
	            "socket_mode = \"0666\";\nmax_connections_per_peer = 8;");
	/* the agent's directory: a 0755 one, so that nobody reaches the socket
	 * (0666): the limit, not the directory, is what is tested */
	assert_int_equal(chmod(A.dir, 0755), 0);

	t0 = tp_now_ms();
	nb_start(&k, nb_connect_many, A.uaddr);
	assert_int_equal(nb_result(&k, res, sizeof(res), 20000), 0);
	snprintf(want, sizeof(want), "answered %d closed %d other 0", PER_PEER, NB_CONNS - PER_PEER);
	assert_string_equal(res, want);
	/* root is another peer: served while nobody holds its PER_PEER. */
	for (int i = 0; i < PER_PEER; i++) {
		assert_non_null(mine[i] = spc_open(A.uaddr, io_ms()));
		assert_true(spc_handshake(mine[i], io_ms()));
	}
	/* ... up to its own limit. */
	assert_non_null(mine[PER_PEER] = spc_open(A.uaddr, io_ms()));
	assert_false(spc_handshake(mine[PER_PEER], io_ms()));
	assert_int_equal(wait_stat("refused_per_peer", NB_CONNS - PER_PEER + 1, 3000), 0);
	assert_int_equal(agent_stat("refused"), NB_CONNS - PER_PEER + 1);
	assert_int_equal(agent_stat("refused_max_connections"), 0);
	assert_int_equal(agent_stat("current"), 2 * PER_PEER);
	prom = malloc(1 << 20);
	assert_non_null(prom);
	assert_int_equal(scrape(prom, 1 << 20), 0);
	snprintf(want, sizeof(want), "keyauth_connections_refused_total{reason=\"per_peer\"} %d\n",
	         NB_CONNS - PER_PEER + 1);
	assert_non_null(strstr(prom, want));
	assert_non_null(strstr(prom, "keyauth_connections_refused_total{reason=\"max_connections\"} 0\n"));
	free(prom);
	/* Logged, but at most once a second whatever the number refused. */
	lines = tp_count_lines(A.log, "event=connection_refused reason=max_connections_per_peer");
	assert_true(lines >= 1);
	assert_true(lines <= 2 + (int)((tp_now_ms() - t0) / 1000));
	assert_log_has(A.log, "peer=\"uid 65534\"");

	/* nobody's slots come back when its connections close. */
	nb_stop(&k);
	spc_close(mine[PER_PEER]);
	assert_int_equal(wait_stat("current", PER_PEER, 3000), 0);
	nb_start(&k, nb_connect_many, A.uaddr);
	assert_int_equal(nb_result(&k, res, sizeof(res), 20000), 0);
	snprintf(want, sizeof(want), "answered %d closed %d other 0", PER_PEER, NB_CONNS - PER_PEER);
	assert_string_equal(res, want);
	nb_stop(&k);
	for (int i = 0; i < PER_PEER; i++) {
		struct spc_ack a;

		assert_int_equal(spc_query(mine[i], "openai", K.key, &a, io_ms()), 0);
		assert_true(a.ok);
		spc_close(mine[i]);
	}
}

/* On TCP the peer is the source address: 127.0.0.2 is not 127.0.0.1. */
static void test_per_peer_limit_counts_source_addresses(void **state)
{
	struct spc_conn *one[4 + 1], *two;
	int port;

	(void)state;
	start_agent("trust-addr", TF_TCP, "max_connections_per_peer = 4;");
	port = atoi(strrchr(A.taddr, ':') + 1);
	for (int i = 0; i < 4; i++) {
		one[i] = open_from("127.0.0.1", port);
		assert_true(spc_handshake(one[i], io_ms()));
	}
	one[4] = open_from("127.0.0.1", port);
	assert_false(spc_handshake(one[4], io_ms()));
	two = open_from("127.0.0.2", port);
	assert_true(spc_handshake(two, io_ms()));
	assert_int_equal(wait_stat("refused_per_peer", 1, 3000), 0);
	assert_log_has(A.log, "peer=\"127.0.0.1\"");
	/* one closes: 127.0.0.1 may open one more */
	spc_close(one[0]);
	spc_close(one[4]);
	assert_int_equal(wait_stat("current", 4, 3000), 0);
	one[0] = open_from("127.0.0.1", port);
	assert_true(spc_handshake(one[0], io_ms()));
	for (int i = 0; i < 4; i++)
		spc_close(one[i]);
	spc_close(two);
}

/* hello_timeout counts from the accept, whatever trickles in meanwhile. */
static void test_hello_timeout_closes_connections_that_never_hello(void **state)
{
	uint8_t hello[512];
	struct spc_hello_opts ho = { .versions = "2.0", .max_frame_size = SPOP_DEFAULT_FRAME_SIZE,
	                             .capabilities = "pipelining" };
	struct spc_conn *silent, *trickle, *ready;
	struct spc_frame f;
	long long t0, t_silent = -1, t_trickle = -1, end;
	int hn, sent = 0;
	struct spc_ack a;

	(void)state;
	start_agent("trust-hello", TF_UNIX | TF_TCP, "hello_timeout = 1;");
	hn = spc_build_hello(hello, sizeof(hello), &ho);
	assert_true(hn > 20);
	t0 = tp_now_ms();
	assert_non_null(ready = spc_open(A.uaddr, io_ms()));
	assert_true(spc_handshake(ready, io_ms()));
	assert_non_null(silent = spc_open(A.uaddr, io_ms()));
	assert_non_null(trickle = spc_open(A.taddr, io_ms()));

	/* One byte of a HELLO every 100 ms: far too slow to finish it (hn
	 * bytes would take seconds), each byte activity on the connection. */
	end = t0 + tp_scaled_ms(4000);
	while ((t_silent < 0 || t_trickle < 0) && tp_now_ms() < end) {
		if (t_trickle < 0) {
			if (sent < hn)
				(void)spc_send_raw(trickle, hello + sent++, 1, io_ms());
			if (spc_read_frame(trickle, &f, 100) == SPC_FRAME) {
				assert_int_equal(f.type, SPOP_FRM_AGENT_DISCON);
				assert_int_equal(spc_disconnect_status(f.payload, f.payload_len, NULL, 0),
				                 SPOP_ERR_TOUT);
				spc_frame_free(&f);
				t_trickle = tp_now_ms() - t0;
			}
		}
		if (t_silent < 0 && spc_read_frame(silent, &f, t_trickle < 0 ? 0 : 100) == SPC_FRAME) {
			assert_int_equal(f.type, SPOP_FRM_AGENT_DISCON);
			spc_frame_free(&f);
			t_silent = tp_now_ms() - t0;
		}
	}
	print_message("hello_timeout 1 s: silent closed after %lld ms, trickling after %lld ms "
	              "(%d of %d HELLO bytes sent)\n", t_silent, t_trickle, sent, hn);
	assert_true(t_silent >= 900 && t_trickle >= 900);
	assert_true(t_trickle < hn * 100);    /* before the HELLO could be complete */
	assert_int_equal(spc_wait_eof(silent, io_ms()), SPC_EOF);
	assert_int_equal(spc_wait_eof(trickle, io_ms()), SPC_EOF);
	assert_int_equal(wait_stat("hello_timeouts", 2, 3000), 0);
	/* the one that said HELLO is still served */
	assert_int_equal(spc_query(ready, "openai", K.key, &a, io_ms()), 0);
	assert_true(a.ok);
	spc_close(silent);
	spc_close(trickle);
	spc_close(ready);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_teardown(test_socket_dir_keeps_impostors_out, teardown),
		cmocka_unit_test_teardown(test_control_socket_dir_is_checked, teardown),
		cmocka_unit_test_teardown(test_tcp_holder_is_named, teardown),
		cmocka_unit_test_teardown(test_unix_holder_is_named, teardown),
		cmocka_unit_test_teardown(test_per_peer_limit_keeps_other_users_served, teardown),
		cmocka_unit_test_teardown(test_per_peer_limit_counts_source_addresses, teardown),
		cmocka_unit_test_teardown(test_hello_timeout_closes_connections_that_never_hello,
		                          teardown),
	};

	signal(SIGPIPE, SIG_IGN);
	atexit(nb_kill_all);
	if (geteuid() != 0) {
		print_message("test_trust: needs root (it switches a child to uid 65534)\n");
		return 1;
	}
	return cmocka_run_group_tests(tests, NULL, NULL);
}
