/* SPDX-License-Identifier: Apache-2.0 */
/*
 * control: the control socket behind `keyauthctl stats` and `reload`.
 * Main thread. Each client gets CONTROL_TIMEOUT seconds to send one line of
 * at most CONTROL_LINE_MAX bytes and read the answer; at most
 * CONTROL_MAX_CLIENTS at once (more are closed at accept). The socket file,
 * accepting, pausing on EMFILE & co and the clients' bookkeeping:
 * listener.c.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <ev.h>

#include "control.h"
#include "listener.h"

#define CONTROL_LINE_MAX    128
#define CONTROL_MAX_CLIENTS 16
#define CONTROL_TIMEOUT     5.0
#define CONTROL_BACKLOG     16

struct control_client {
	struct listener_client lc;  /* first: socket, watchers, deadline */
	char line[CONTROL_LINE_MAX + 1];
	size_t len;
	char *out;               /* answer being written */
	size_t out_len, out_off;
};

struct control {
	struct listener_server sv;
	char *path;
	control_cmd_cb *cb;
	void *arg;
};

static void
client_free(struct control_client *cl)
{
	listener_client_free(&cl->lc);
}

static void
client_on_free(struct listener_client *lc)
{
	free(((struct control_client *)lc)->out);
}

static void
client_answer(struct control_client *cl)
{
	struct control *ctl = cl->lc.sv->owner;
	size_t size = 0;
	FILE *f = open_memstream(&cl->out, &size);

	if (f == NULL) {
		client_free(cl);
		return;
	}
	if (ctl->cb(ctl->arg, cl->line, f) == -1)
		fprintf(f, "{\"error\":\"unknown command; use stats or reload\"}");
	fputc('\n', f);
	fclose(f);
	cl->out_len = size;
	cl->out_off = 0;
	listener_client_watch(&cl->lc, EV_WRITE);
}

static void
client_on_io(struct ev_loop *loop, ev_io *io, int revents)
{
	struct control_client *cl = io->data;
	ssize_t n;

	(void)loop;
	if (revents & EV_READ) {
		char *nl;

		n = read(cl->lc.fd, cl->line + cl->len, CONTROL_LINE_MAX - cl->len);
		if (n == -1 && (errno == EAGAIN || errno == EINTR))
			return;
		if (n <= 0) {
			client_free(cl);
			return;
		}
		cl->len += (size_t)n;
		cl->line[cl->len] = '\0';
		nl = memchr(cl->line, '\n', cl->len);
		if (nl == NULL) {
			if (cl->len == CONTROL_LINE_MAX)
				client_free(cl);   /* no command is that long */
			return;
		}
		*nl = '\0';
		if (nl > cl->line && nl[-1] == '\r')
			nl[-1] = '\0';
		client_answer(cl);
		return;
	}
	if (revents & EV_WRITE) {
		n = send(cl->lc.fd, cl->out + cl->out_off, cl->out_len - cl->out_off, MSG_NOSIGNAL);
		if (n == -1 && (errno == EAGAIN || errno == EINTR))
			return;
		if (n <= 0) {
			client_free(cl);
			return;
		}
		cl->out_off += (size_t)n;
		if (cl->out_off == cl->out_len)
			client_free(cl);
	}
}

static const struct listener_server_ops control_server_ops = {
	.event = "control_accept_error",
	.size = sizeof(struct control_client),
	.max = CONTROL_MAX_CLIENTS,
	.timeout = CONTROL_TIMEOUT,
	.on_io = client_on_io,
	.on_free = client_on_free,
};

struct control *
control_open(const char *path, const struct ft_trust *trust, struct ev_loop *loop,
             control_cmd_cb *cb, void *arg, char *err, size_t errlen)
{
	char name[sizeof("control socket ") + 256];
	struct control *ctl;
	int fd;

	/* A leftover socket file from a dead agent is replaced; a live
	 * agent's (or anyone's) is not: opening fails, naming the path. */
	snprintf(name, sizeof(name), "control socket %s", path);
	fd = listener_open_unix(name, path, 0600, CONTROL_BACKLOG, trust, err, errlen);
	if (fd == -1)
		return NULL;
	ctl = calloc(1, sizeof(*ctl));
	if (ctl == NULL || (ctl->path = strdup(path)) == NULL) {
		free(ctl);
		close(fd);
		unlink(path);
		snprintf(err, errlen, "control socket: out of memory");
		return NULL;
	}
	ctl->cb = cb;
	ctl->arg = arg;
	listener_server_start(&ctl->sv, loop, fd, &control_server_ops, ctl);
	return ctl;
}

void
control_close(struct control *ctl)
{
	if (ctl == NULL)
		return;
	listener_server_stop(&ctl->sv);
	unlink(ctl->path);
	free(ctl->path);
	free(ctl);
}
