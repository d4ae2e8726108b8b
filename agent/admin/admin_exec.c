/* SPDX-License-Identifier: Apache-2.0 */
/*
 * admin_exec: the executor. Runs one keyauthctl at a time with a command
 * line from admin_build, an environment of its own (PATH, LC_ALL and
 * KEYAUTH_ACTOR naming the admin key for the audit log), stdin from
 * /dev/null (no op of the API carries a secret in), a deadline after which
 * keyauthctl is killed, and a bound on what it may print. Its stdout may
 * hold a new key (key create, key rotate): it is kept in memory only, wiped
 * when freed, never logged.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "admin.h"
#include "log.h"

static int64_t
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* KEYAUTH_ACTOR=keyauth-admin key_id=ID owner="OWNER" (owner's '"' and '\'
 * escaped; admin_who_set already refused control bytes). */
static void
actor_env(char *out, size_t outlen, const struct admin_who *who)
{
	size_t n, i;

	n = (size_t)snprintf(out, outlen, "KEYAUTH_ACTOR=keyauth-admin key_id=%s owner=\"", who->key_id);
	for (i = 0; who->owner[i] != '\0' && n + 3 < outlen; i++) {
		if (who->owner[i] == '"' || who->owner[i] == '\\')
			out[n++] = '\\';
		out[n++] = who->owner[i];
	}
	out[n++] = '"';
	out[n] = '\0';
}

/* Runs <argv> (argv[0] an absolute path) and collects its output. */
static int
run(const struct admin_exec_conf *x, char *const argv[], char *const envp[],
    struct admin_result *r)
{
	int out[2] = { -1, -1 }, err[2] = { -1, -1 }, status;
	int64_t deadline = now_ms() + x->timeout_ms;
	size_t cap = 4096, errlen = 0;
	bool out_open = true, err_open = true;
	pid_t pid;

	r->exit = -500;
	r->out = malloc(cap);
	if (r->out == NULL || pipe2(out, O_CLOEXEC) != 0 || pipe2(err, O_CLOEXEC) != 0)
		goto fail;
	pid = fork();
	if (pid < 0)
		goto fail;
	if (pid == 0) {
		int null = open("/dev/null", O_RDONLY);

		/* Its own process group: a deadline kills what it started too
		 * (haproxy -c, diff, a reload command). */
		setpgid(0, 0);

		if (null < 0 || dup2(null, 0) < 0 || dup2(out[1], 1) < 0 || dup2(err[1], 2) < 0)
			_exit(127);
		signal(SIGPIPE, SIG_DFL);
		execve(argv[0], argv, envp);
		_exit(127);
	}
	setpgid(pid, pid);
	close(out[1]);
	close(err[1]);
	out[1] = err[1] = -1;
	while (out_open || err_open) {
		struct pollfd p[2] = { { out_open ? out[0] : -1, POLLIN, 0 },
		                       { err_open ? err[0] : -1, POLLIN, 0 } };
		int64_t left = deadline - now_ms();
		char buf[4096];
		ssize_t n;

		if (left <= 0) {
			r->exit = -2;
			break;
		}
		if (poll(p, 2, (int)left) < 0) {
			if (errno == EINTR)
				continue;
			r->exit = -500;
			break;
		}
		if (p[0].revents) {
			n = read(out[0], buf, sizeof(buf));
			if (n <= 0) {
				out_open = false;
			} else {
				if (r->out_len + (size_t)n + 1 > ADMIN_OUT_MAX) {
					r->exit = -3;
					break;
				}
				if (r->out_len + (size_t)n + 1 > cap) {
					char *nb = malloc(cap * 2 + (size_t)n);

					if (nb == NULL) {
						r->exit = -500;
						break;
					}
					memcpy(nb, r->out, r->out_len);
					explicit_bzero(r->out, cap);
					free(r->out);
					r->out = nb;
					cap = cap * 2 + (size_t)n;
				}
				memcpy(r->out + r->out_len, buf, (size_t)n);
				r->out_len += (size_t)n;
			}
			explicit_bzero(buf, sizeof(buf));
		}
		if (p[1].revents) {
			n = read(err[0], buf, sizeof(buf));
			if (n <= 0) {
				err_open = false;
			} else if (errlen + 1 < sizeof(r->err)) {
				size_t k = (size_t)n < sizeof(r->err) - 1 - errlen ? (size_t)n :
				           sizeof(r->err) - 1 - errlen;

				memcpy(r->err + errlen, buf, k);
				errlen += k;
			}
		}
	}
	r->err[errlen] = '\0';
	r->out[r->out_len] = '\0';
	if (out_open || err_open)
		kill(-pid, SIGKILL);
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	if (!out_open && !err_open)
		r->exit = WIFEXITED(status) ? WEXITSTATUS(status) : -500;
	close(out[0]);
	close(err[0]);
	if (r->exit == 127)
		r->exit = -500;
	return 0;
fail:
	r->exit = -500;
	snprintf(r->err, sizeof(r->err), "cannot run keyauthctl: %s", strerror(errno));
	for (int i = 0; i < 2; i++) {
		if (out[i] >= 0)
			close(out[i]);
		if (err[i] >= 0)
			close(err[i]);
	}
	if (r->out == NULL)
		r->out = malloc(1);
	if (r->out != NULL)
		r->out[0] = '\0';
	return -1;
}

int
admin_exec_op(const struct admin_exec_conf *x, const struct admin_in *in,
              const struct admin_who *who, struct admin_result *r, struct admin_err *e)
{
	struct admin_argv a;
	const char *argv[ADMIN_ARGV_MAX + 5];
	char actor[512];
	char *envp[] = { "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
	                 "LC_ALL=C", actor, NULL };
	int64_t t0 = now_ms();
	size_t i;
	char *nl;

	memset(r, 0, sizeof(*r));
	if (in->route == NULL || !in->route->exec)
		return admin_err_set(e, 500, "internal", "not an executor op");
	if ((who->scopes & in->route->scope) != in->route->scope)
		return admin_err_set(e, 403, "forbidden", "this admin key lacks the scope this request needs");
	if (admin_build(in, &a, e) != 0)
		return -1;
	actor_env(actor, sizeof(actor), who);
	argv[0] = x->keyauthctl;
	argv[1] = "-c";
	argv[2] = x->conf_path;
	for (i = 0; i < a.n; i++)
		argv[3 + i] = a.v[i];
	argv[3 + a.n] = NULL;
	run(x, (char *const *)argv, envp, r);
	nl = strchr(r->err, '\n');
	if (nl != NULL)
		*nl = '\0';
	log_info("event=exec op=%s exit=%d ms=%lld admin_key_id=%s", in->route->name, r->exit,
	         (long long)(now_ms() - t0), who->key_id);
	if (r->exit < 0) {
		int st = r->exit == -2 ? 503 : 500;

		admin_result_free(r);
		return admin_err_set(e, st, st == 503 ? "timeout" : "internal",
		                     r->exit == -2 ? "keyauthctl did not finish in time" :
		                     r->exit == -3 ? "keyauthctl printed too much" : "keyauthctl could not run");
	}
	return 0;
}

int
admin_exec_serve(const struct admin_exec_conf *x, int fd, volatile sig_atomic_t *stop)
{
	while (!*stop) {
		struct admin_ipc_store *st;
		struct admin_result r;
		struct admin_err e;
		struct admin_who who;
		struct admin_in in;
		size_t len;
		char *frame;
		int rc = admin_ipc_recv(fd, &frame, &len, ADMIN_BODY_MAX * 8);

		if (rc == 1)
			return 0;
		if (rc != 0) {
			if (errno == EINTR)
				continue;
			log_err("event=ipc_error error=%s", LOG_Q("bad frame from the web process"));
			return -1;
		}
		memset(&r, 0, sizeof(r));
		if (admin_ipc_decode(frame, len, &in, &who, &st) != 0) {
			r.exit = -400;
			snprintf(r.err, sizeof(r.err), "bad_request\tmalformed request frame");
		} else if (admin_exec_op(x, &in, &who, &r, &e) != 0) {
			r.exit = -e.status;
			snprintf(r.err, sizeof(r.err), "%s\t%s", e.code, e.msg);
		}
		if (r.out == NULL)
			r.out_len = 0;
		admin_ipc_store_free(st);
		explicit_bzero(frame, len);
		free(frame);
		rc = admin_ipc_send_result(fd, &r);
		admin_result_free(&r);
		if (rc != 0)
			return -1;
	}
	return 0;
}
