/* SPDX-License-Identifier: Apache-2.0 */
/*
 * proc: process and file helpers for the integration tests (see the header).
 *
 * Single-threaded test programs only: the child registry is a plain array.
 * Children are killed by pid, never by name.
 */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "proc.h"
#include "spop_client.h"

#define TP_MAX_CHILDREN 64

/* Children not yet given back by tp_wait_exit; a child reaped early by
 * tp_alive keeps its slot with its wait status. */
static pid_t tp_children[TP_MAX_CHILDREN];
static bool tp_reaped[TP_MAX_CHILDREN];
static int tp_status[TP_MAX_CHILDREN];
static bool tp_atexit_done;

static int tp_slot(pid_t pid)
{
	for (int i = 0; i < TP_MAX_CHILDREN; i++)
		if (pid > 0 && tp_children[i] == pid)
			return i;
	return -1;
}

int tp_scaled_ms(int ms)
{
	const char *s = getenv("TEST_TIMEOUT_MULTIPLIER");
	double m = s ? strtod(s, NULL) : 1.0;

	if (!(m >= 1.0))
		m = 1.0;
	if (m > 100.0)
		m = 100.0;
	return (int)(ms * m);
}

long long tp_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void tp_nap_ms(long ms)
{
	struct timespec ts = { .tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L };

	while (nanosleep(&ts, &ts) == -1 && errno == EINTR)
		;
}

/* ---- files -------------------------------------------------------------------- */

int tp_mkdtemp(const char *tag, char *out, size_t outlen)
{
	const char *tmp = getenv("TMPDIR");
	int n;

	if (!tmp || !*tmp)
		tmp = "/tmp";
	n = snprintf(out, outlen, "%s/%s-XXXXXX", tmp, tag);
	/* Unix socket paths must stay under 108 bytes: keep the directory short. */
	if (n < 0 || (size_t)n >= outlen || n > 80)
		return -1;
	return mkdtemp(out) ? 0 : -1;
}

static int tp_rm_one(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
	(void)sb;
	(void)flag;
	(void)ftw;
	return remove(path) == -1 && errno != ENOENT ? -1 : 0;
}

int tp_rmtree(const char *dir)
{
	if (!dir || !*dir)
		return 0;
	return nftw(dir, tp_rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

static int tp_write_all(int fd, const void *data, size_t len)
{
	const char *p = data;

	while (len > 0) {
		ssize_t w = write(fd, p, len);

		if (w == -1) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		p += w;
		len -= (size_t)w;
	}
	return 0;
}

int tp_write_file(const char *path, const char *content)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	int rc;

	if (fd == -1)
		return -1;
	rc = tp_write_all(fd, content, strlen(content));
	if (close(fd) == -1)
		rc = -1;
	return rc;
}

int tp_replace_file(const char *path, const void *data, size_t len)
{
	char tmp[TP_PATH_MAX + 16];
	int fd, rc;

	if (snprintf(tmp, sizeof(tmp), "%s.tpnew", path) >= (int)sizeof(tmp))
		return -1;
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd == -1)
		return -1;
	rc = tp_write_all(fd, data, len);
	if (close(fd) == -1)
		rc = -1;
	if (rc == 0 && rename(tmp, path) == -1)
		rc = -1;
	if (rc == -1)
		unlink(tmp);
	return rc;
}

/* Reads the whole file at <path> into a malloc'd buffer (NUL-terminated).
 * Returns NULL when it cannot be read. */
static char *tp_slurp(const char *path, size_t *lenp)
{
	FILE *f = fopen(path, "rb");
	char *buf = NULL;
	size_t len = 0, cap = 0;

	if (!f)
		return NULL;
	for (;;) {
		if (cap - len < 4096) {
			char *n = realloc(buf, cap ? cap * 2 : 8192);

			if (!n) {
				free(buf);
				fclose(f);
				return NULL;
			}
			buf = n;
			cap = cap ? cap * 2 : 8192;
		}
		size_t r = fread(buf + len, 1, cap - len - 1, f);

		len += r;
		if (r == 0)
			break;
	}
	fclose(f);
	buf[len] = '\0';
	*lenp = len;
	return buf;
}

bool tp_file_contains(const char *path, const void *needle, size_t needle_len)
{
	size_t len;
	char *buf = tp_slurp(path, &len);
	bool found;

	if (!buf)
		return false;
	found = memmem(buf, len, needle, needle_len) != NULL;
	free(buf);
	return found;
}

bool tp_log_contains(const char *path, const char *needle)
{
	return tp_file_contains(path, needle, strlen(needle));
}

int tp_wait_log(const char *path, const char *needle, int ms)
{
	long long deadline = tp_now_ms() + tp_scaled_ms(ms);

	for (;;) {
		if (tp_log_contains(path, needle))
			return 0;
		if (tp_now_ms() >= deadline) {
			fprintf(stderr, "proc: timed out after %d ms waiting for \"%s\" in %s\n",
			        tp_scaled_ms(ms), needle, path);
			return -1;
		}
		tp_nap_ms(10);
	}
}

int tp_count_lines(const char *path, const char *needle)
{
	size_t len;
	char *buf = tp_slurp(path, &len);
	int n = 0;

	if (!buf)
		return 0;
	for (char *line = buf; *line;) {
		char *nl = strchr(line, '\n');

		if (nl)
			*nl = '\0';
		n += strstr(line, needle) != NULL;
		if (!nl)
			break;
		line = nl + 1;
	}
	free(buf);
	return n;
}

size_t tp_file_size(const char *path)
{
	struct stat st;

	return stat(path, &st) == 0 ? (size_t)st.st_size : 0;
}

bool tp_log_line_since(const char *path, size_t from, const char *const *needles)
{
	size_t len;
	char *buf = tp_slurp(path, &len);
	bool found = false;

	if (!buf)
		return false;
	for (char *line = buf + (from < len ? from : len); *line && !found;) {
		char *nl = strchr(line, '\n');

		if (nl)
			*nl = '\0';
		found = true;
		for (size_t i = 0; needles[i]; i++)
			if (!strstr(line, needles[i]))
				found = false;
		if (!nl)
			break;
		line = nl + 1;
	}
	free(buf);
	return found;
}

/* ---- processes ------------------------------------------------------------------ */

const char *tp_keyauthd_path(void)
{
	const char *p = getenv("KEYAUTHD");

	return p && *p ? p : "build/keyauthd";
}

static void tp_forget(pid_t pid)
{
	int i = tp_slot(pid);

	if (i >= 0) {
		tp_children[i] = 0;
		tp_reaped[i] = false;
	}
}

void tp_kill_all(void)
{
	for (int i = 0; i < TP_MAX_CHILDREN; i++) {
		pid_t pid = tp_children[i];

		if (pid <= 0)
			continue;
		if (!tp_reaped[i]) {
			kill(pid, SIGKILL);
			while (waitpid(pid, NULL, 0) == -1 && errno == EINTR)
				;
		}
		tp_children[i] = 0;
		tp_reaped[i] = false;
	}
}

pid_t tp_spawn(char *const argv[], const char *log_path)
{
	pid_t parent = getpid();
	int slot = -1;
	pid_t pid;

	for (int i = 0; i < TP_MAX_CHILDREN && slot < 0; i++)
		if (tp_children[i] == 0)
			slot = i;
	if (slot < 0)
		return -1;
	if (!tp_atexit_done) {
		atexit(tp_kill_all);
		tp_atexit_done = true;
	}
	fflush(NULL);
	pid = fork();
	if (pid == -1)
		return -1;
	if (pid == 0) {
		int devnull = open("/dev/null", O_RDONLY);
		int log = open(log_path, O_WRONLY | O_CREAT | O_APPEND, 0600);

		/* Die with the test even if it aborts before its atexit runs. */
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (getppid() != parent)
			_exit(127);
		if (devnull == -1 || log == -1 || dup2(devnull, 0) == -1 || dup2(log, 1) == -1 ||
		    dup2(log, 2) == -1)
			_exit(127);
		execv(argv[0], argv);
		_exit(127);
	}
	tp_children[slot] = pid;
	tp_reaped[slot] = false;
	return pid;
}

pid_t tp_spawn_keyauthd(const char *conf_path, const char *log_path)
{
	char *argv[] = { (char *)tp_keyauthd_path(), "-c", (char *)conf_path, NULL };

	return tp_spawn(argv, log_path);
}

const char *tp_redis_server_path(void)
{
	const char *p = getenv("REDIS_SERVER");

	return p != NULL ? p : "/usr/bin/redis-server";
}

pid_t tp_redis_start(const char *dir, const char *name, int port, char *const extra[],
                     char *addr, size_t addrlen)
{
	char portstr[16], log_path[TP_PATH_MAX + 64];
	char *argv[32] = { (char *)tp_redis_server_path(), "--port", portstr, "--bind", "127.0.0.1",
	                   "--save", "", "--appendonly", "no", "--dir", (char *)dir };
	size_t n = 11;
	pid_t pid;

	if (access(argv[0], X_OK) != 0)
		return 0;
	for (size_t i = 0; extra != NULL && extra[i] != NULL; i++) {
		if (n + 1 >= sizeof(argv) / sizeof(argv[0]))
			return -1;
		argv[n++] = extra[i];
	}
	if (port <= 0 && (port = tp_free_port()) <= 0)
		return -1;
	snprintf(portstr, sizeof(portstr), "%d", port);
	snprintf(addr, addrlen, "127.0.0.1:%d", port);
	snprintf(log_path, sizeof(log_path), "%s/%s.log", dir, name);
	pid = tp_spawn(argv, log_path);
	if (pid == -1 || tp_wait_connectable(pid, addr, 5000) == -1)
		return -1;
	return pid;
}

int tp_run_keyauthd_check(const char *conf_path, const char *log_path)
{
	char *argv[] = { (char *)tp_keyauthd_path(), "-t", "-c", (char *)conf_path, NULL };
	pid_t pid = tp_spawn(argv, log_path);
	int status;

	if (pid == -1 || tp_wait_exit(pid, 10000, &status) == -1)
		return -1;
	return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

bool tp_alive(pid_t pid)
{
	int status;
	pid_t r;
	int i = tp_slot(pid);

	if (i < 0 || tp_reaped[i])
		return false;
	do
		r = waitpid(pid, &status, WNOHANG);
	while (r == -1 && errno == EINTR);
	if (r == 0)
		return true;
	/* It exited: keep its status for tp_wait_exit. */
	tp_reaped[i] = true;
	tp_status[i] = status;
	return false;
}

int tp_signal(pid_t pid, int sig)
{
	int i = tp_slot(pid);

	if (i < 0 || tp_reaped[i])
		return -1;
	return kill(pid, sig);
}

int tp_wait_exit(pid_t pid, int ms, int *status)
{
	long long deadline = tp_now_ms() + tp_scaled_ms(ms);
	int st = 0;
	int i = tp_slot(pid);

	if (i < 0)
		return -1;
	if (tp_reaped[i]) {
		if (status)
			*status = tp_status[i];
		tp_forget(pid);
		return 0;
	}
	for (;;) {
		pid_t r = waitpid(pid, &st, WNOHANG);

		if (r == pid) {
			tp_forget(pid);
			if (status)
				*status = st;
			return 0;
		}
		if (r == -1 && errno != EINTR) {
			tp_forget(pid);
			return -1;
		}
		if (tp_now_ms() >= deadline) {
			fprintf(stderr, "proc: pid %d did not exit within %d ms: SIGKILL\n",
			        (int)pid, tp_scaled_ms(ms));
			kill(pid, SIGKILL);
			while (waitpid(pid, &st, 0) == -1 && errno == EINTR)
				;
			tp_forget(pid);
			return -1;
		}
		tp_nap_ms(5);
	}
}

int tp_wait_connectable(pid_t pid, const char *addr, int ms)
{
	long long deadline = tp_now_ms() + tp_scaled_ms(ms);

	for (;;) {
		int fd = spc_connect_fd(addr, 0);

		if (fd >= 0) {
			close(fd);
			return 0;
		}
		if (!tp_alive(pid)) {
			fprintf(stderr, "proc: pid %d exited before %s accepted connections\n", (int)pid, addr);
			return -1;
		}
		if (tp_now_ms() >= deadline) {
			fprintf(stderr, "proc: timed out after %d ms waiting for %s (pid %d) to accept connections\n",
			        tp_scaled_ms(ms), addr, (int)pid);
			return -1;
		}
		tp_nap_ms(10);
	}
}

int tp_free_port(void)
{
	struct sockaddr_in sin = { .sin_family = AF_INET, .sin_port = 0,
	                           .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t sl = sizeof(sin);
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	int port = -1;

	if (fd == -1)
		return -1;
	if (bind(fd, (struct sockaddr *)&sin, sizeof(sin)) == 0 &&
	    getsockname(fd, (struct sockaddr *)&sin, &sl) == 0)
		port = ntohs(sin.sin_port);
	close(fd);
	return port;
}
