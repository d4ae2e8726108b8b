/* SPDX-License-Identifier: Apache-2.0 */
/*
 * ctl_stats: `keyauthctl stats` — asks the running keyauthd for its
 * counters over the control socket (control_socket in the configuration)
 * and prints them: the agent's JSON with --json, else one "name value" line
 * per counter (nested names joined with dots).
 */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "conf.h"
#include "ctl.h"

#define STATS_TIMEOUT_MS 5000
#define STATS_MAX        (4u << 20)

/* Sends "<cmd>\n" to the control socket at <path> and returns the answer
 * (NUL-terminated, caller frees), or NULL with errno set. */
char *
ctl_control_call(const char *path, const char *cmd)
{
	struct sockaddr_un sun;
	size_t len = 0, cap = 4096;
	char *buf = NULL;
	int fd;

	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	if (strlen(path) >= sizeof(sun.sun_path)) {
		errno = ENAMETOOLONG;
		return NULL;
	}
	strcpy(sun.sun_path, path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd == -1)
		return NULL;
	if (connect(fd, (struct sockaddr *)&sun, sizeof(sun)) == -1 ||
	    dprintf(fd, "%s\n", cmd) < 0 || (buf = malloc(cap)) == NULL)
		goto fail;
	for (;;) {
		struct pollfd p = { .fd = fd, .events = POLLIN };
		ssize_t n;

		if (poll(&p, 1, STATS_TIMEOUT_MS) != 1) {
			errno = ETIMEDOUT;
			goto fail;
		}
		if (len + 1 == cap) {
			char *nb;

			if (cap >= STATS_MAX || (nb = realloc(buf, cap * 2)) == NULL) {
				errno = EMSGSIZE;
				goto fail;
			}
			buf = nb;
			cap *= 2;
		}
		n = read(fd, buf + len, cap - len - 1);
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1)
			goto fail;
		if (n == 0)
			break;
		len += (size_t)n;
	}
	close(fd);
	buf[len] = '\0';
	return buf;
fail:
	{
		int e = errno;

		free(buf);
		close(fd);
		errno = e;
	}
	return NULL;
}

/*
 * Prints our own stats JSON (objects, strings, numbers, booleans, no
 * arrays) as "a.b.c value" lines. Not a general JSON parser: the agent's
 * output is the only input, and anything unexpected stops the walk.
 */
static const char *
flat_print(const char *p, char *prefix, size_t plen, size_t cap)
{
	if (*p != '{')
		return NULL;
	p++;
	while (*p != '\0' && *p != '}') {
		const char *k, *ke;
		size_t n;

		if (*p == ',')
			p++;
		if (*p != '"' || (ke = strchr(p + 1, '"')) == NULL)
			return NULL;
		k = p + 1;
		n = (size_t)(ke - k);
		p = ke + 1;
		if (*p++ != ':' || plen + n + 2 >= cap)
			return NULL;
		if (plen > 0)
			prefix[plen] = '.';
		memcpy(prefix + plen + (plen > 0), k, n);
		prefix[plen + (plen > 0) + n] = '\0';
		if (*p == '{') {
			p = flat_print(p, prefix, plen + (plen > 0) + n, cap);
			if (p == NULL)
				return NULL;
		} else if (*p == '"') {
			const char *e = p + 1;

			while (*e != '\0' && *e != '"')
				e += (*e == '\\' && e[1] != '\0') ? 2 : 1;
			if (*e != '"')
				return NULL;
			printf("%s %.*s\n", prefix, (int)(e - p - 1), p + 1);
			p = e + 1;
		} else {
			/* A number, or a true/false literal (store.connected). */
			size_t m = strspn(p, "0123456789.-");

			if (m == 0 && strncmp(p, "true", 4) == 0)
				m = 4;
			else if (m == 0 && strncmp(p, "false", 5) == 0)
				m = 5;
			if (m == 0)
				return NULL;
			printf("%s %.*s\n", prefix, (int)m, p);
			p += m;
		}
		prefix[plen] = '\0';
	}
	return *p == '}' ? p + 1 : NULL;
}

int
ctl_stats_main(struct ctl_ctx *ctx, int argc, char **argv)
{
	bool json = false;
	struct conf *c;
	char *ans, prefix[512] = "";
	int i;

	for (i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--json") == 0) {
			json = true;
		} else if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
			fputs("usage: keyauthctl stats [--json]\n"
			      "\n"
			      "Shows the running agent's counters (connections, frames, verdicts by status\n"
			      "and route, protocol errors, store generation and key count, reloads),\n"
			      "read from its control socket (control_socket in the configuration).\n"
			      "\n"
			      "example:\n"
			      "  keyauthctl stats --json\n", stdout);
			return CTL_EXIT_OK;
		} else {
			ctl_err(ctx, "unknown option %s (see keyauthctl stats --help)", argv[i]);
			return CTL_EXIT_USAGE;
		}
	}
	c = ctl_conf_load(ctx);
	if (c == NULL)
		return CTL_EXIT_FAIL;
	if (c->control_path == NULL) {
		ctl_err(ctx, "%s has no control_socket setting: add one (e.g. control_socket = "
		    "\"/run/keyauth/control.sock\";) and restart keyauthd", ctx->conf_path);
		conf_free(c);
		return CTL_EXIT_FAIL;
	}
	ans = ctl_control_call(c->control_path, "stats");
	if (ans == NULL) {
		ctl_err(ctx, "cannot reach keyauthd at %s: %s (is it running with this configuration?)",
		    c->control_path, strerror(errno));
		conf_free(c);
		return CTL_EXIT_FAIL;
	}
	conf_free(c);
	if (json)
		fputs(ans, stdout);
	else if (flat_print(ans, prefix, 0, sizeof(prefix)) == NULL) {
		ctl_err(ctx, "unexpected answer from keyauthd");
		free(ans);
		return CTL_EXIT_FAIL;
	}
	free(ans);
	return CTL_EXIT_OK;
}
