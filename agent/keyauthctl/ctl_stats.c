/* SPDX-License-Identifier: Apache-2.0 */
/*
 * ctl_stats: `keyauthctl stats` — asks the running keyauthd for its
 * counters over the control socket (control_socket in the configuration)
 * and prints them: the agent's JSON with --json, else one "name value" line
 * per counter (nested names joined with dots, ctl_json_print_flat).
 */
#include <errno.h>
#include <poll.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
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

void
ctl_control_denied(const struct ctl_ctx *ctx, const char *path)
{
	char at[sizeof(((struct sockaddr_un *)0)->sun_path)], user[64];
	const struct passwd *pw;
	struct stat st;
	char *slash;

	snprintf(at, sizeof(at), "%s", path);
	/* A closed directory above hides the socket: name the nearest one seen. */
	while (stat(at, &st) == -1) {
		slash = strrchr(at, '/');
		if (slash == NULL || slash == at) {
			ctl_err(ctx, "no permission to connect to keyauthd's control socket %s: run "
			        "as the user keyauthd runs as, or root", path);
			return;
		}
		*slash = '\0';
	}
	pw = getpwuid(st.st_uid);
	if (pw != NULL)
		snprintf(user, sizeof(user), "%s", pw->pw_name);
	else
		snprintf(user, sizeof(user), "%u", (unsigned)st.st_uid);
	ctl_err(ctx, "no permission to connect to keyauthd's control socket %s: %s%s is owned by "
	        "%s, mode %04o: run as %s%s, e.g. runuser -u %s -- %s", path,
	        strcmp(at, path) == 0 ? "it" : "its directory ", strcmp(at, path) == 0 ? "" : at,
	        user, (unsigned)(st.st_mode & 07777), user, st.st_uid == 0 ? "" : " or root",
	        user, ctx->prog);
}

static const char stats_help[] =
	"usage: keyauthctl stats [--json]\n"
	"\n"
	"Shows the running agent's counters (connections, frames, verdicts by status\n"
	"and route, protocol errors, store generation and key count, reloads),\n"
	"read from its control socket (control_socket in the configuration).\n"
	"\n"
	"example:\n"
	"  keyauthctl stats --json\n";

static int
stats_run(struct ctl_ctx *ctx, const struct ctl_args *a)
{
	struct conf *c;
	char *ans;

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
	if (ans == NULL && (errno == EACCES || errno == EPERM)) {
		/* keyauthd is there, this user may not talk to it. */
		ctl_control_denied(ctx, c->control_path);
		conf_free(c);
		return CTL_EXIT_FAIL;
	}
	if (ans == NULL) {
		ctl_err(ctx, "cannot reach keyauthd at %s: %s (is it running with this configuration?)",
		    c->control_path, strerror(errno));
		conf_free(c);
		return CTL_EXIT_FAIL;
	}
	conf_free(c);
	/* --json: the agent's answer as it is. */
	if (a->json)
		fputs(ans, stdout);
	else if (ctl_json_print_flat(ans) == -1) {
		ctl_err(ctx, "unexpected answer from keyauthd");
		free(ans);
		return CTL_EXIT_FAIL;
	}
	free(ans);
	return CTL_EXIT_OK;
}

static const struct option stats_opts[] = { CTL_JSON_LONGOPT, { NULL, 0, NULL, 0 } };

const struct ctl_cmd ctl_cmd_stats = {
	.name = "stats", .summary = "the running agent's counters", .help = stats_help,
	.longopts = stats_opts, .operand = CTL_OPERAND_NONE, .run = stats_run,
};
