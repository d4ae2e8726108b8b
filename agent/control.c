/* SPDX-License-Identifier: Apache-2.0 */
/*
 * control: the control socket behind `keyauthctl stats` and `reload`.
 * Main thread. Each client gets CONTROL_TIMEOUT seconds to send one line of
 * at most CONTROL_LINE_MAX bytes and read the answer; at most
 * CONTROL_MAX_CLIENTS at once (more are closed at accept).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <ev.h>

#include "control.h"
#include "log.h"

#define CONTROL_LINE_MAX    128
#define CONTROL_MAX_CLIENTS 16
#define CONTROL_TIMEOUT     5.0
#define CONTROL_BACKOFF     0.1     /* seconds accepting pauses after EMFILE & co */

struct control_client {
	ev_io io;
	ev_timer timer;
	int fd;
	char line[CONTROL_LINE_MAX + 1];
	size_t len;
	char *out;               /* answer being written */
	size_t out_len, out_off;
	struct control *ctl;
	struct control_client *next;
};

struct control {
	ev_io io;
	ev_timer backoff;        /* accepting paused after EMFILE & co */
	int fd;
	char *path;
	struct ev_loop *loop;
	control_cmd_cb *cb;
	void *arg;
	struct control_client *clients;
	unsigned nclients;
};

static void
client_free(struct control_client *cl)
{
	struct control *ctl = cl->ctl;
	struct control_client **pp;

	ev_io_stop(ctl->loop, &cl->io);
	ev_timer_stop(ctl->loop, &cl->timer);
	close(cl->fd);
	for (pp = &ctl->clients; *pp != NULL; pp = &(*pp)->next)
		if (*pp == cl) {
			*pp = cl->next;
			break;
		}
	ctl->nclients--;
	free(cl->out);
	free(cl);
}

static void
client_answer(struct control_client *cl)
{
	struct control *ctl = cl->ctl;
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
	ev_io_stop(ctl->loop, &cl->io);
	ev_io_set(&cl->io, cl->fd, EV_WRITE);
	ev_io_start(ctl->loop, &cl->io);
}

static void
client_on_io(struct ev_loop *loop, ev_io *io, int revents)
{
	struct control_client *cl = io->data;
	ssize_t n;

	(void)loop;
	if (revents & EV_READ) {
		char *nl;

		n = read(cl->fd, cl->line + cl->len, CONTROL_LINE_MAX - cl->len);
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
		n = send(cl->fd, cl->out + cl->out_off, cl->out_len - cl->out_off, MSG_NOSIGNAL);
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

static void
client_on_timer(struct ev_loop *loop, ev_timer *t, int revents)
{
	(void)loop;
	(void)revents;
	client_free(t->data);
}

static void
control_on_backoff(struct ev_loop *loop, ev_timer *t, int revents)
{
	struct control *ctl = t->data;

	(void)revents;
	ev_io_start(loop, &ctl->io);
}

static void
control_on_accept(struct ev_loop *loop, ev_io *io, int revents)
{
	struct control *ctl = io->data;
	struct control_client *cl;
	int fd;

	(void)revents;
	fd = accept4(ctl->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
	if (fd == -1) {
		/* Out of descriptors or memory: the client stays queued and the
		 * socket readable, so retrying at once would spin. */
		if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
			ev_io_stop(loop, &ctl->io);
			ev_timer_set(&ctl->backoff, CONTROL_BACKOFF, 0);
			ev_timer_start(loop, &ctl->backoff);
		}
		return;
	}
	if (ctl->nclients >= CONTROL_MAX_CLIENTS || (cl = calloc(1, sizeof(*cl))) == NULL) {
		close(fd);
		return;
	}
	cl->fd = fd;
	cl->ctl = ctl;
	cl->next = ctl->clients;
	ctl->clients = cl;
	ctl->nclients++;
	ev_io_init(&cl->io, client_on_io, fd, EV_READ);
	cl->io.data = cl;
	ev_io_start(loop, &cl->io);
	ev_timer_init(&cl->timer, client_on_timer, CONTROL_TIMEOUT, 0);
	cl->timer.data = cl;
	ev_timer_start(loop, &cl->timer);
}

struct control *
control_open(const char *path, struct ev_loop *loop, control_cmd_cb *cb, void *arg,
             char *err, size_t errlen)
{
	struct sockaddr_un sun;
	struct control *ctl;
	mode_t old;
	int fd;

	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	if (strlen(path) >= sizeof(sun.sun_path)) {
		snprintf(err, errlen, "control socket %s: path too long", path);
		return NULL;
	}
	strcpy(sun.sun_path, path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd == -1) {
		snprintf(err, errlen, "control socket %s: %s", path, strerror(errno));
		return NULL;
	}
	/* A leftover socket file from a dead agent; a live agent's control
	 * socket is protected by its listeners, which fail first. */
	unlink(path);
	old = umask(0177);
	if (bind(fd, (struct sockaddr *)&sun, sizeof(sun)) == -1 || listen(fd, 16) == -1) {
		umask(old);
		snprintf(err, errlen, "control socket %s: %s", path, strerror(errno));
		close(fd);
		return NULL;
	}
	umask(old);
	ctl = calloc(1, sizeof(*ctl));
	if (ctl == NULL || (ctl->path = strdup(path)) == NULL) {
		free(ctl);
		close(fd);
		unlink(path);
		snprintf(err, errlen, "control socket: out of memory");
		return NULL;
	}
	ctl->fd = fd;
	ctl->loop = loop;
	ctl->cb = cb;
	ctl->arg = arg;
	ev_io_init(&ctl->io, control_on_accept, fd, EV_READ);
	ctl->io.data = ctl;
	ev_io_start(loop, &ctl->io);
	ev_timer_init(&ctl->backoff, control_on_backoff, CONTROL_BACKOFF, 0);
	ctl->backoff.data = ctl;
	return ctl;
}

void
control_close(struct control *ctl)
{
	if (ctl == NULL)
		return;
	while (ctl->clients != NULL)
		client_free(ctl->clients);
	ev_io_stop(ctl->loop, &ctl->io);
	ev_timer_stop(ctl->loop, &ctl->backoff);
	close(ctl->fd);
	unlink(ctl->path);
	free(ctl->path);
	free(ctl);
}
