/* SPDX-License-Identifier: Apache-2.0 */
/*
 * ctl_deploy_master: `keyauthctl deploy --reload-haproxy master:SOCKET`, a
 * reload through the master CLI of an HAProxy run in master-worker mode
 * (-W/-Ws -S SOCKET, as Debian's haproxy.service runs it).
 *
 * "reload" makes the master re-execute itself and start a new worker on the
 * configuration files it was started with. HAProxy 3.x answers it with
 * "Success=1" or "Success=0" and the start-up messages once the new worker
 * is up or has failed; 2.6 closes the connection without a word. There the
 * master's counters in "show proc" ("<pid> master <reloads> [failed: <n>]")
 * tell: a reload counted and not counted as failed means a new worker
 * generation runs. Every wait is bounded.
 */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "ctl.h"

#define MASTER_TIMEOUT_MS  30000     /* a reload parses the whole configuration */
#define MASTER_ANSWER_MAX  16384

static long
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000L + ts.tv_nsec / 1000000L;
}

/* Sends "<cmd>\n" to the master CLI at <path> and reads the answer into
 * <out> (NUL-terminated) until the master closes, at most <ms> ms. Returns
 * 0, or -1 with errno (ETIMEDOUT when the answer did not end in time). */
static int
master_cmd(const char *path, const char *cmd, char *out, size_t outlen, long ms)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	long deadline = now_ms() + ms;
	size_t n = 0;
	int fd, e;

	out[0] = '\0';
	if (strlen(path) >= sizeof(sa.sun_path)) {
		errno = ENAMETOOLONG;
		return -1;
	}
	memcpy(sa.sun_path, path, strlen(path) + 1);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd == -1)
		return -1;
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == -1)
		goto fail;
	/* The master answers one command and closes once our side is shut. */
	if (send(fd, cmd, strlen(cmd), MSG_NOSIGNAL) == -1 || send(fd, "\n", 1, MSG_NOSIGNAL) == -1 ||
	    shutdown(fd, SHUT_WR) == -1)
		goto fail;
	for (;;) {
		struct pollfd p = { .fd = fd, .events = POLLIN };
		long left = deadline - now_ms();
		char chunk[1024];
		ssize_t r;

		if (left <= 0) {
			errno = ETIMEDOUT;
			goto fail;
		}
		r = poll(&p, 1, (int)left);
		if (r == -1 && errno == EINTR)
			continue;
		if (r == -1)
			goto fail;
		if (r == 0)
			continue;
		r = read(fd, chunk, sizeof(chunk));
		if (r == -1 && errno == EINTR)
			continue;
		if (r == -1 && errno != ECONNRESET)
			goto fail;
		if (r <= 0)
			break;
		if (n + 1 < outlen) {
			size_t take = (size_t)r < outlen - 1 - n ? (size_t)r : outlen - 1 - n;

			memcpy(out + n, chunk, take);
			n += take;
			out[n] = '\0';
		}
	}
	close(fd);
	return 0;
fail:
	e = errno;
	close(fd);
	errno = e;
	return -1;
}

/* What "show proc" says: the master's reload counters and the newest current
 * worker (one that has seen no reload). */
struct proc_state {
	unsigned long reloads, failed;
	long worker;
};

/* Parses a "show proc" answer. Returns 0, or -1 when it has no master line. */
static int
proc_parse(const char *txt, struct proc_state *ps)
{
	bool master = false, workers = false;

	memset(ps, 0, sizeof(*ps));
	for (const char *l = txt, *nl; l != NULL && *l != '\0'; l = nl != NULL ? nl + 1 : NULL) {
		long pid;
		unsigned long a, b;

		nl = strchr(l, '\n');
		if (*l == '#') {
			workers = strncmp(l, "# workers", 9) == 0;
			continue;
		}
		if (sscanf(l, "%ld master %lu [failed: %lu]", &pid, &a, &b) == 3) {
			ps->reloads = a;
			ps->failed = b;
			master = true;
		} else if (workers && sscanf(l, "%ld worker %lu", &pid, &a) == 2 && a == 0) {
			ps->worker = pid;
		}
	}
	return master ? 0 : -1;
}

/* Polls "show proc" until the master counts more than <before> reloads (it
 * does not answer while it re-executes itself). Returns 0 or -1 (<msg>). */
static int
wait_reload(const char *path, const struct proc_state *before, struct proc_state *after,
            char *buf, size_t buflen, char *msg, size_t msglen)
{
	long deadline = now_ms() + MASTER_TIMEOUT_MS;

	for (;;) {
		struct timespec pause = { 0, 100 * 1000000L };

		if (master_cmd(path, "show proc", buf, buflen, 2000) == 0 &&
		    proc_parse(buf, after) == 0 && after->reloads > before->reloads)
			return 0;
		if (now_ms() >= deadline) {
			snprintf(msg, msglen, "the HAProxy master at %s did not count the reload "
			         "within %d s", path, MASTER_TIMEOUT_MS / 1000);
			return -1;
		}
		nanosleep(&pause, NULL);
	}
}

int
ctl_master_reload(const char *path, long *worker, char *msg, size_t msglen)
{
	struct proc_state before, after;
	char *buf = malloc(MASTER_ANSWER_MAX);
	int rc = -1;

	*worker = 0;
	msg[0] = '\0';
	if (buf == NULL) {
		snprintf(msg, msglen, "out of memory");
		return -1;
	}
	if (master_cmd(path, "show proc", buf, MASTER_ANSWER_MAX, 5000) == -1) {
		snprintf(msg, msglen, "HAProxy master socket %s: %s", path, strerror(errno));
		goto out;
	}
	if (proc_parse(buf, &before) == -1) {
		snprintf(msg, msglen, "%s answers 'show proc' without a master line: not an "
		         "HAProxy master CLI (-S)?", path);
		goto out;
	}
	if (master_cmd(path, "reload", buf, MASTER_ANSWER_MAX, MASTER_TIMEOUT_MS) == -1) {
		snprintf(msg, msglen, "HAProxy master socket %s: reload: %s", path, strerror(errno));
		goto out;
	}
	if (strncmp(buf, "Success=", 8) == 0) {
		/* 3.x: the answer is the verdict, the start-up messages follow "--". */
		const char *logs = strstr(buf, "--\n");

		rc = buf[8] == '1' ? 0 : 1;
		if (rc == 1)
			snprintf(msg, msglen, "%s", logs != NULL ? logs + 3 : buf);
		if (master_cmd(path, "show proc", buf, MASTER_ANSWER_MAX, 5000) == 0 &&
		    proc_parse(buf, &after) == 0)
			*worker = after.worker;
		goto out;
	}
	if (buf[0] != '\0') {
		snprintf(msg, msglen, "unexpected answer to reload from %s: %.200s", path, buf);
		goto out;
	}
	if (wait_reload(path, &before, &after, buf, MASTER_ANSWER_MAX, msg, msglen) == -1)
		goto out;
	if (after.failed > before.failed) {
		snprintf(msg, msglen, "the master counts %lu failed reloads; HAProxy's own log "
		         "says why", after.failed);
		rc = 1;
		goto out;
	}
	*worker = after.worker;
	rc = 0;
out:
	free(buf);
	return rc;
}
